//! The configuration loader on arbitrary text: a `pgcdc.toml` (or dlt's files, when the
//! first byte is odd), then NUL-separated `--set KEY=VALUE` overrides. It must never
//! panic, and an accepted configuration never shows its password in `Debug`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgcdc::config::Config;

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
    if let Ok(cfg) = Config::from_text(doc, first & 1 == 1, &[], &sets) {
        let shown = format!("{cfg:?}");
        for secret in cfg.secrets() {
            if secret.len() >= 4 {
                assert!(!shown.contains(&secret), "a secret in Debug output");
            }
        }
    }
});
