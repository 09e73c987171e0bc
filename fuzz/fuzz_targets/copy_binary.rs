//! The binary COPY parsers on arbitrary bytes fed in two pieces: the snapshot's
//! (`CopyBinary`) and the SQL pages' (`PeekRows`, rows of lsn and data). No panic, and
//! fields always lie inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgcdc_source::peek::PeekRows;
use pgcdc_source::snapshot::CopyBinary;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).min(rest.len());
    let pieces = [&rest[..cut], &rest[cut..]];
    let mut peek = PeekRows::new();
    'peek: for piece in pieces {
        peek.push(piece);
        loop {
            match peek.next_row() {
                Ok(Some((_, range))) => assert!(peek.data(range).len() <= rest.len()),
                Ok(None) => break,
                Err(_) => break 'peek,
            }
        }
    }
    let mut parser = CopyBinary::new();
    let mut fields = 0usize;
    for piece in pieces {
        let r: Result<(), pgcdc_source::Error> = parser.feed(piece, |row| {
            for f in row.iter().flatten() {
                assert!(f.len() <= rest.len());
                fields += 1;
            }
            Ok(())
        });
        if r.is_err() {
            return;
        }
    }
    std::hint::black_box((fields, parser.finished(), peek.finished()));
});
