//! text, json, bytea and uuid.

use super::*;

#[test]
fn text_and_json_must_be_utf8() {
    let a = one(ValueKind::Text, "héllo, 世界 😀").unwrap();
    assert_eq!(a.as_string::<i32>().value(0), "héllo, 世界 😀");
    let a = one(ValueKind::Text, "").unwrap();
    assert!(a.is_valid(0));
    assert_eq!(a.as_string::<i32>().value(0), "");
    let j = "{\"a\": [1, 2.5, null], \"e\": \"😀\\u0001\"}";
    assert_eq!(
        one(ValueKind::Json, j).unwrap().as_string::<i32>().value(0),
        j
    );
    for bad in [&[0xff, 0xfe][..], b"ok\xc3", b"\xed\xa0\x80", b"\xc0\xaf"] {
        for kind in [ValueKind::Text, ValueKind::Json, ValueKind::NumericString] {
            let e = one_with(kind.clone(), bad, &pol()).unwrap_err();
            assert!(matches!(e, ValueError::Invalid { .. }), "{e}");
        }
    }
}

#[test]
fn bytea_hex() {
    let bin = |t: &str| one(ValueKind::Bytea, t).map(|a| a.as_binary::<i32>().value(0).to_vec());
    // PostgreSQL 15 prints '\xDEADbeef'::bytea as \xdeadbeef and ''::bytea as \x.
    assert_eq!(bin("\\xdeadbeef").unwrap(), [0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(bin("\\xDEADbeef").unwrap(), [0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(bin("\\x").unwrap(), Vec::<u8>::new());
    assert_eq!(bin("\\x00ff").unwrap(), [0, 255]);
    let big: Vec<u8> = (0..2000u32).map(|i| (i * 7 % 256) as u8).collect();
    let text: String = std::iter::once("\\x".to_string())
        .chain(big.iter().map(|b| format!("{b:02x}")))
        .collect();
    assert_eq!(bin(&text).unwrap(), big, "longer than the decode buffer");
    for bad in [
        "", "deadbeef", "\\xabc", "\\xgg", "\\x0g", "\\X00", "\\x 00", "x00", "\\",
    ] {
        assert!(bin(bad).is_err(), "{bad:?}");
    }
    // A bad value in the middle leaves no bytes behind for the next one.
    let mut b = ColumnBuilder::new(ValueKind::Bytea, 2);
    b.append_text(b"\\x01", &pol()).unwrap();
    assert!(b.append_text(b"\\x0203zz", &pol()).is_err());
    b.append_text(b"\\x04", &pol()).unwrap();
    let a = b.finish();
    let a = a.as_binary::<i32>();
    assert_eq!(
        (a.len(), a.value(0), a.value(1)),
        (2, &[1u8][..], &[4u8][..])
    );
}

#[test]
fn uuids() {
    let u = |t: &str| one(ValueKind::Uuid, t).map(|a| a.as_fixed_size_binary().value(0).to_vec());
    let expect = [
        0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a,
        0x11,
    ];
    assert_eq!(u("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap(), expect);
    assert_eq!(u("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11").unwrap(), expect);
    assert_eq!(u("00000000-0000-0000-0000-000000000000").unwrap(), [0; 16]);
    assert_eq!(
        u("ffffffff-ffff-ffff-ffff-ffffffffffff").unwrap(),
        [255; 16]
    );
    for bad in [
        "",
        "a0eebc99",
        "a0eebc999c0b4ef8bb6d6bb9bd380a11",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111",
        "a0eebc9-99c0b-4ef8-bb6d-6bb9bd380a11",
        "a0eebc99-9c0b-4ef8-bb6d_6bb9bd380a11",
        "g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1}",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1\u{e9}",
    ] {
        assert!(u(bad).is_err(), "{bad:?}");
    }
}
