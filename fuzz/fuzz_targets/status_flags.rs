//! Fuzzes the `status=` parser: it never panics, and what it accepts renders back the same.
#![cfg_attr(fuzzing, no_main)]

use proxy_balancer_core::StatusFlags;

fn check(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(flags) = text.parse::<StatusFlags>() {
            let again: StatusFlags = flags.to_string().parse().expect("rendered flags parse");
            assert_eq!(again, flags);
            let _ = flags.label().to_string();
        }
    }
}

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));

#[cfg(not(fuzzing))]
fn main() {
    for seed in ["", "D", "+H-D", "-H+D+S", "s-e", "X", "+-+-"] {
        check(seed.as_bytes());
    }
}
