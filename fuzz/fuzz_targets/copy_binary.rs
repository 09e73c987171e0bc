//! The binary COPY parser on arbitrary bytes fed in two pieces: no panic, and fields
//! always lie inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgcdc_source::snapshot::CopyBinary;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).min(rest.len());
    let mut parser = CopyBinary::new();
    let mut fields = 0usize;
    for piece in [&rest[..cut], &rest[cut..]] {
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
    std::hint::black_box((fields, parser.finished()));
});
