//! The configuration loader on arbitrary text: a `pgcdc.toml` (or dlt's files, when the
//! first byte is odd), then NUL-separated `--set KEY=VALUE` overrides. It must never
//! panic; and the database password, given as `PGPASSWORD`, never shows in the accepted
//! configuration's `Debug` output.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgcdc::config::Config;

/// A password no input contains by chance.
const MARKER: &str = "Zq7-fuzz-password-marker";

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let mut parts = text.split('\0');
    let doc = parts.next().unwrap_or_default();
    let sets: Vec<String> = parts.take(4).map(str::to_string).collect();
    let dlt = first & 1 == 1;
    let _ = Config::from_text(doc, dlt, &[], &sets);
    if text.contains(MARKER) {
        return;
    }
    let env = [("PGPASSWORD".to_string(), MARKER.to_string())];
    if let Ok(cfg) = Config::from_text(doc, dlt, &env, &sets) {
        assert!(!format!("{cfg:?}").contains(MARKER), "the password in Debug output");
    }
});
