//! Fuzzes the balancer-manager form/query parser: arbitrary bytes never panic, and what
//! parses as a form builds an `Edit` or a clean error.
#![cfg_attr(fuzzing, no_main)]

use proxy_balancer_manager::edit::{parse_form, Edit};

fn check(data: &[u8]) {
    if let Ok(form) = parse_form(data) {
        let has_changes = form.has_changes();
        match Edit::from_form(&form) {
            Ok(edit) => assert!(has_changes || edit.is_empty()),
            Err(err) => {
                let _ = (err.to_string(), err.status());
            }
        }
    }
}

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));

#[cfg(not(fuzzing))]
fn main() {
    for seed in [
        "",
        "b=c&w=http%3A%2F%2F127.0.0.1%3A8001&nonce=x&w_status_D=0",
        "b=c&w=http://a&w_lf=2.5&w_ls=99&w_wr=n1&w_rr=&w_status_E=1",
        "b=c&w=http://a&w_hm=GET11&w_hi=100&w_hp=1&w_hf=1&w_hu=/up&w_he=ok",
        "b=c&b_lbm=bybusyness&b_tmo=7200&b_max=99&b_sforce=1&b_ss=-",
        "b=c&b_wyes=1&b_nwrkr=http%3A%2F%2F127.0.0.1%3A8003",
        "a=%&=x&&+%zz%C3%A9",
        "w_lf=1&W_LF=2&xml",
    ] {
        check(seed.as_bytes());
    }
    check(&[b'&'; 20_000]);
    check(b"\xff=\xfe");
}
