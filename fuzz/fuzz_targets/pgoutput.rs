//! The pgoutput decoder and the CopyData frame parser on arbitrary bytes: errors are
//! fine, panics are not. The first byte picks the protocol version and streaming mode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgcdc_source::pgoutput::{parse_frame, DecodeOptions, Decoder, Frame, Message};

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let options = DecodeOptions {
        protocol_version: u32::from(head % 4) + 1,
        streaming_parallel: head & 0x80 != 0,
    };
    if let Ok(Frame::XLogData { data, .. }) = parse_frame(rest) {
        let _ = Decoder::new(options).decode(data);
    }
    // The same bytes as a sequence of messages, split at 0xff bytes, through one stateful
    // decoder (Stream Start/Stop change how the next ones parse).
    let mut decoder = Decoder::new(options);
    for msg in rest.split(|b| *b == 0xff) {
        match decoder.decode(msg) {
            Ok(Message::Insert { new, .. }) => {
                for v in new.iter() {
                    std::hint::black_box(v);
                }
            }
            Ok(Message::Update { old, new, .. }) => {
                if let Some((_, old)) = old {
                    for v in old.iter() {
                        std::hint::black_box(v);
                    }
                }
                for v in new.iter() {
                    std::hint::black_box(v);
                }
            }
            Ok(Message::Relation(r)) => {
                for c in r.columns() {
                    std::hint::black_box(c);
                }
            }
            Ok(Message::Truncate { rel_ids, .. }) => {
                for id in rel_ids.iter() {
                    std::hint::black_box(id);
                }
            }
            _ => {}
        }
    }
});
