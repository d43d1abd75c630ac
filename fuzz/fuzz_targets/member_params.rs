//! Fuzzes `MemberParams::set` and `BalancerParams::set` with `key=value` text: never a panic.
#![cfg_attr(fuzzing, no_main)]

use proxy_balancer_core::{BalancerParams, MemberParams, MemberUrl};

fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = MemberUrl::new(text);
    let mut member = MemberParams::new("http://fuzz").expect("a valid url");
    let mut balancer = BalancerParams::new("fuzz");
    for pair in text.split_whitespace() {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let _ = member.set(key, value);
        let _ = balancer.set(key, value);
    }
}

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));

#[cfg(not(fuzzing))]
fn main() {
    check(b"loadfactor=2.25 lbset=3 route=a status=+H-D stickysession=A|b");
}
