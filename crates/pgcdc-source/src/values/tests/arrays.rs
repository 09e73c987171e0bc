//! Arrays as Lists: quoting, NULL elements, dimensions, bounds, element kinds.

use super::*;

fn list_of(element: ValueKind) -> ValueKind {
    ValueKind::List {
        element: Box::new(element),
    }
}

#[test]
fn arrays_parse_into_lists_with_null_elements_and_escapes() {
    let mut b = ColumnBuilder::new(list_of(ValueKind::Text), 4);
    let p = pol();
    if let Err(e) = b.append_text(br#"{a,"b c",NULL,"NULL","","q\"\\",x}"#, &p) {
        panic!("{e}");
    }
    b.append_null();
    b.append_text(b"{}", &p).unwrap();
    b.append_text(b"{nUlL}", &p).unwrap();
    let a = b.finish();
    let l = a.as_list::<i32>();
    assert_eq!(l.len(), 4);
    assert!(l.is_null(1));
    let first = l.value(0);
    let s = first.as_string::<i32>();
    let got: Vec<Option<&str>> = (0..s.len())
        .map(|i| s.is_valid(i).then(|| s.value(i)))
        .collect();
    assert_eq!(
        got,
        vec![
            Some("a"),
            Some("b c"),
            None,
            Some("NULL"),
            Some(""),
            Some("q\"\\"),
            Some("x")
        ]
    );
    assert_eq!(l.value(2).len(), 0);
    assert!(l.value(3).is_null(0));
}

#[test]
fn a_list_of_a_decimal_arrow_rejects_takes_only_nulls() {
    // Found by the `values` fuzz target: this panicked in ListArray::new.
    let mut b = ColumnBuilder::new(
        list_of(ValueKind::Decimal128 {
            precision: 0,
            scale: 0,
        }),
        1,
    );
    assert!(matches!(
        b.append_text(b"{}", &pol()),
        Err(ValueError::UnsupportedDecimal { .. })
    ));
    b.append_null();
    assert_eq!(b.finish().len(), 1);
}

#[test]
fn array_elements_use_their_kinds_parser() {
    let mut b = ColumnBuilder::new(list_of(ValueKind::Int32), 2);
    b.append_text(b"{1,-2,NULL,2147483647}", &pol()).unwrap();
    let a = b.finish();
    let v = a.as_list::<i32>().value(0);
    let ints = v.as_primitive::<Int32Type>();
    assert_eq!(ints.value(1), -2);
    assert!(ints.is_null(2));
    assert_eq!(ints.value(3), i32::MAX);
    let mut b = ColumnBuilder::new(list_of(ValueKind::Int32), 2);
    assert!(b.append_text(b"{1,2147483648}", &pol()).is_err());
}

#[test]
fn malformed_and_unrepresentable_arrays_are_errors_not_panics() {
    for bad in [
        &b""[..],
        b"{",
        b"}",
        b"1,2",
        b"{1,,2}",
        b"{1,}",
        b"{\"unterminated}",
        b"{\"esc\\",
        b"{a\"b}",
        b"{1}x",
    ] {
        let mut b = ColumnBuilder::new(list_of(ValueKind::Text), 1);
        assert!(
            b.append_text(bad, &pol()).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    let mut b = ColumnBuilder::new(list_of(ValueKind::Int32), 1);
    let e = b
        .append_text(b"{{1,2},{3,4}}", &pol())
        .unwrap_err()
        .to_string();
    assert!(e.contains("types.arrays"), "{e}");
    let e = b
        .append_text(b"[0:1]={1,2}", &pol())
        .unwrap_err()
        .to_string();
    assert!(e.contains("types.arrays"), "{e}");
}

proptest! {
    #[test]
    fn any_text_array_round_trips(elems in proptest::collection::vec(proptest::option::of(".*"), 0..8)) {
        // array_out's quoting rules, applied by hand.
        let quote = |e: &Option<String>| match e {
            None => "NULL".to_string(),
            Some(v) => {
                let special = v.is_empty() || v.eq_ignore_ascii_case("NULL")
                    || v.chars().any(|c| "{},\"\\ \t\n\r\x0b\x0c".contains(c));
                if special {
                    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
                } else {
                    v.clone()
                }
            }
        };
        let text = format!("{{{}}}", elems.iter().map(quote).collect::<Vec<_>>().join(","));
        let mut b = ColumnBuilder::new(list_of(ValueKind::Text), 1);
        b.append_text(text.as_bytes(), &pol()).unwrap();
        let a = b.finish();
        let v = a.as_list::<i32>().value(0);
        let s = v.as_string::<i32>();
        let got: Vec<Option<String>> = (0..s.len()).map(|i| s.is_valid(i).then(|| s.value(i).to_string())).collect();
        prop_assert_eq!(got, elems);
    }
}
