//! Decoder tests: hand-built messages of every type, every strict prefix rejected,
//! arbitrary bytes never panic, and encode → decode round trips.

use super::*;
use proptest::prelude::*;

use super::encode::W;

const V1: DecodeOptions = DecodeOptions {
    protocol_version: 1,
    streaming_parallel: false,
};
const V4P: DecodeOptions = DecodeOptions {
    protocol_version: 4,
    streaming_parallel: true,
};

fn all_messages() -> Vec<(Vec<u8>, DecodeOptions, bool)> {
    let row = [
        TupleValue::Text(b"42"),
        TupleValue::Null,
        TupleValue::UnchangedToast,
        TupleValue::Binary(&[0, 1]),
    ];
    let rel = W::default()
        .u8(b'R')
        .u32(16384)
        .s("public")
        .s("t")
        .u8(b'd')
        .u16(2)
        .u8(1)
        .s("id")
        .u32(23)
        .i32(-1)
        .u8(0)
        .s("v")
        .u32(1700)
        .i32(0x000c_0006);
    vec![
        (W::default().u8(b'B').u64(0x10).u64(99).u32(7).0, V1, false),
        (
            W::default().u8(b'C').u8(0).u64(0x10).u64(0x20).u64(99).0,
            V1,
            false,
        ),
        (W::default().u8(b'O').u64(5).s("origin").0, V1, false),
        (rel.0, V1, false),
        (
            W::default()
                .u8(b'R')
                .u32(9)
                .u32(16384)
                .s("")
                .s("t")
                .u8(b'f')
                .u16(0)
                .0,
            V4P,
            true,
        ),
        (
            W::default().u8(b'Y').u32(16400).s("public").s("mood").0,
            V1,
            false,
        ),
        (
            W::default().u8(b'I').u32(16384).u8(b'N').tuple(&row).0,
            V1,
            false,
        ),
        (
            W::default()
                .u8(b'I')
                .u32(9)
                .u32(16384)
                .u8(b'N')
                .tuple(&row)
                .0,
            V4P,
            true,
        ),
        (
            W::default()
                .u8(b'U')
                .u32(16384)
                .u8(b'K')
                .tuple(&row[..1])
                .u8(b'N')
                .tuple(&row)
                .0,
            V1,
            false,
        ),
        (
            W::default().u8(b'U').u32(16384).u8(b'N').tuple(&row).0,
            V1,
            false,
        ),
        (
            W::default().u8(b'D').u32(16384).u8(b'O').tuple(&row).0,
            V1,
            false,
        ),
        (
            W::default().u8(b'T').i32(2).u8(3).u32(1).u32(2).0,
            V1,
            false,
        ),
        (
            W::default()
                .u8(b'M')
                .u8(1)
                .u64(77)
                .s("pfx")
                .i32(3)
                .u8(b'a')
                .u8(b'b')
                .u8(b'c')
                .0,
            V1,
            false,
        ),
        (W::default().u8(b'S').u32(9).u8(1).0, V4P, false),
        (W::default().u8(b'E').0, V4P, true),
        (
            W::default().u8(b'c').u32(9).u8(0).u64(1).u64(2).u64(3).0,
            V4P,
            false,
        ),
        (W::default().u8(b'A').u32(9).u32(10).0, V1, false),
        (
            W::default().u8(b'A').u32(9).u32(10).u64(5).u64(6).0,
            V4P,
            false,
        ),
        (
            W::default().u8(b'b').u64(1).u64(2).u64(3).u32(4).s("gid").0,
            V1,
            false,
        ),
        (
            W::default()
                .u8(b'P')
                .u8(0)
                .u64(1)
                .u64(2)
                .u64(3)
                .u32(4)
                .s("gid")
                .0,
            V1,
            false,
        ),
        (
            W::default()
                .u8(b'p')
                .u8(0)
                .u64(1)
                .u64(2)
                .u64(3)
                .u32(4)
                .s("gid")
                .0,
            V1,
            false,
        ),
        (
            W::default()
                .u8(b'K')
                .u8(0)
                .u64(1)
                .u64(2)
                .u64(3)
                .u32(4)
                .s("gid")
                .0,
            V1,
            false,
        ),
        (
            W::default()
                .u8(b'r')
                .u8(0)
                .u64(1)
                .u64(2)
                .u64(3)
                .u64(4)
                .u32(5)
                .s("gid")
                .0,
            V1,
            false,
        ),
    ]
}

#[test]
fn every_message_type_decodes() {
    for (buf, opts, in_stream) in all_messages() {
        decode(&buf, &opts, in_stream)
            .unwrap_or_else(|e| panic!("{:?}: {e}", buf.first().map(|b| *b as char)));
    }
}

#[test]
fn every_strict_prefix_is_an_error_and_trailing_bytes_too() {
    for (buf, opts, in_stream) in all_messages() {
        for n in 0..buf.len() {
            assert!(
                decode(&buf[..n], &opts, in_stream).is_err(),
                "prefix {n} of {:?} decoded",
                buf[0] as char
            );
        }
        let mut longer = buf.clone();
        longer.push(0);
        assert!(decode(&longer, &opts, in_stream).is_err());
    }
}

#[test]
fn insert_values_are_borrowed_and_unchanged_toast_is_not_null() {
    let row = [
        TupleValue::Text(b"42"),
        TupleValue::Null,
        TupleValue::UnchangedToast,
        TupleValue::Binary(&[0, 1]),
    ];
    let buf = W::default().u8(b'I').u32(5).u8(b'N').tuple(&row).0;
    let Message::Insert { xid, rel_id, new } = decode(&buf, &V1, false).unwrap() else {
        panic!()
    };
    assert_eq!((xid, rel_id, new.len()), (None, 5, 4));
    assert_eq!(new.iter().collect::<Vec<_>>(), row.to_vec());
}

#[test]
fn streamed_changes_carry_their_xid_and_the_decoder_tracks_blocks() {
    let mut d = Decoder::new(DecodeOptions {
        protocol_version: 2,
        streaming_parallel: false,
    });
    let start = W::default().u8(b'S').u32(900).u8(1).0;
    let ins = W::default()
        .u8(b'I')
        .u32(901)
        .u32(5)
        .u8(b'N')
        .tuple(&[TupleValue::Text(b"x")])
        .0;
    let stop = W::default().u8(b'E').0;
    assert_eq!(
        d.decode(&start).unwrap(),
        Message::StreamStart {
            xid: 900,
            first_segment: true
        }
    );
    assert!(d.in_stream());
    let Message::Insert { xid, rel_id, .. } = d.decode(&ins).unwrap() else {
        panic!()
    };
    assert_eq!((xid, rel_id), (Some(901), 5));
    assert_eq!(d.decode(&stop).unwrap(), Message::StreamStop);
    assert!(!d.in_stream());
    // Outside the block the same bytes are a different (invalid) layout.
    assert!(d.decode(&ins).is_err());
}

#[test]
fn relation_columns_and_truncate_ids_iterate() {
    let buf = all_messages()[3].0.clone();
    let Message::Relation(r) = decode(&buf, &V1, false).unwrap() else {
        panic!()
    };
    let cols: Vec<_> = r.columns().collect();
    assert_eq!(
        (r.namespace, r.name, r.replica_identity, cols.len()),
        ("public", "t", b'd', 2)
    );
    assert_eq!(
        cols[1],
        RelationColumn {
            flags: 0,
            name: "v",
            type_oid: 1700,
            type_modifier: 0x000c_0006
        }
    );
    let t = W::default().u8(b'T').i32(2).u8(1).u32(7).u32(8).0;
    let Message::Truncate {
        rel_ids, options, ..
    } = decode(&t, &V1, false).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (options, rel_ids.iter().collect::<Vec<_>>()),
        (1, vec![7, 8])
    );
    let neg = W::default().u8(b'T').i32(-1).u8(0).0;
    assert!(decode(&neg, &V1, false).is_err());
}

#[test]
fn frames_split_into_xlogdata_and_keepalive() {
    let w = W::default().u8(b'w').u64(1).u64(2).u64(3).u8(b'B').0;
    assert_eq!(
        parse_frame(&w).unwrap(),
        Frame::XLogData {
            wal_start: Lsn(1),
            wal_end: Lsn(2),
            send_time: 3,
            data: b"B"
        }
    );
    let k = W::default().u8(b'k').u64(9).u64(3).u8(1).0;
    assert_eq!(
        parse_frame(&k).unwrap(),
        Frame::Keepalive {
            wal_end: Lsn(9),
            send_time: 3,
            reply_requested: true
        }
    );
    for n in 0..k.len() {
        assert!(parse_frame(&k[..n]).is_err());
    }
    assert!(parse_frame(b"z").is_err());
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..40)
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..200), v in 1u32..5, par: bool, s: bool) {
        let opts = DecodeOptions { protocol_version: v, streaming_parallel: par };
        let _ = decode(&buf, &opts, s);
        let _ = parse_frame(&buf);
        if let Ok(Message::Insert { new, .. }) = decode(&buf, &opts, s) {
            let _ = new.iter().count();
        }
    }

    #[test]
    fn mutated_valid_messages_never_panic(i in 0usize..23, pos: usize, byte: u8) {
        let all = all_messages();
        let (mut buf, opts, s) = all[i % all.len()].clone();
        let n = buf.len();
        buf[pos % n] = byte;
        if let Ok(m) = decode(&buf, &opts, s) {
            if let Message::Relation(r) = m { let _ = r.columns().count(); }
            if let Message::Update { new, old, .. } = m { let _ = new.iter().count(); let _ = old.map(|o| o.1.iter().count()); }
        }
    }

    #[test]
    fn rows_round_trip(vals in proptest::collection::vec(prop_oneof![
        Just(None), Just(Some(None)), value().prop_map(|v| Some(Some(v)))
    ], 0..20), rel in any::<u32>(), key in proptest::option::of(value())) {
        let row: Vec<TupleValue<'_>> = vals.iter().map(|v| match v {
            None => TupleValue::Null,
            Some(None) => TupleValue::UnchangedToast,
            Some(Some(b)) => TupleValue::Text(b),
        }).collect();
        let mut w = W::default().u8(b'U').u32(rel);
        let key_row = key.as_ref().map(|k| vec![TupleValue::Text(k.as_slice())]);
        if let Some(k) = &key_row { w = w.u8(b'K').tuple(k); }
        let buf = w.u8(b'N').tuple(&row).0;
        let Message::Update { rel_id, old, new, .. } = decode(&buf, &V1, false).unwrap() else { panic!() };
        prop_assert_eq!(rel_id, rel);
        prop_assert_eq!(new.iter().collect::<Vec<_>>(), row);
        prop_assert_eq!(old.map(|o| o.1.iter().collect::<Vec<_>>()), key_row);
    }

    #[test]
    fn relations_round_trip(cols in proptest::collection::vec(("[a-z_]{1,10}", any::<u32>(), any::<i32>(), 0u8..2), 0..10)) {
        let mut w = W::default().u8(b'R').u32(1).s("s").s("t").u8(b'i').u16(cols.len() as u16);
        for (name, oid, typmod, flags) in &cols { w = w.u8(*flags).s(name).u32(*oid).i32(*typmod); }
        let Message::Relation(r) = decode(&w.0, &V1, false).unwrap() else { panic!() };
        let got: Vec<_> = r.columns().map(|c| (c.name.to_string(), c.type_oid, c.type_modifier, c.flags)).collect();
        prop_assert_eq!(got, cols);
    }
}
