//! Fuzzes `hcexpr` conditions (ProxyHCExpr): parsing arbitrary UTF-8 never panics, an error's
//! column lies within the input (or just past its end), and a condition that parses evaluates
//! against a fixed probe response without panicking, with `!(e)` giving the opposite answer.
#![cfg_attr(fuzzing, no_main)]

use http::{HeaderMap, HeaderValue};
use proxy_balancer::health_probe::expr::{HcExpr, ProbeResponse};

fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let expr = match HcExpr::parse(text) {
        Ok(expr) => expr,
        Err(err) => {
            assert!(
                err.column >= 1 && err.column <= text.chars().count() + 1,
                "{err}"
            );
            return;
        }
    };
    assert_eq!(expr.to_string(), text);
    let mut headers = HeaderMap::new();
    headers.insert("x-ready", HeaderValue::from_static("yes"));
    headers.insert("x-num", HeaderValue::from_static("42"));
    headers.insert(
        "x-bytes",
        HeaderValue::from_bytes(b"a\xffb").expect("valid value"),
    );
    for (status, body) in [(200, &b"OK all good"[..]), (503, b"Under \xff maintenance")] {
        let response = ProbeResponse {
            status,
            headers: &headers,
            body,
        };
        let value = expr.eval(&response);
        // Wrapping can push nesting past the limit; only then may it fail to parse.
        if let Ok(negated) = HcExpr::parse(&format!("!({text}\n)")) {
            assert_eq!(negated.eval(&response), !value, "{text}");
        }
    }
}

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));

#[cfg(not(fuzzing))]
fn main() {
    let seeds: &[&str] = &[
        "%{REQUEST_STATUS} =~ /^[234]/",
        "hc('body') !~ /Under maintenance/",
        "%{REQUEST_STATUS} -in {'200','204'} && %{resp:X-Ready} == 'yes'",
        "{%{REQUEST_STATUS} =~ /^[234]/}",
        "!(%{REQUEST_STATUS} -ge 500) || resp('X-Num') -lt 10",
        "hc('body') =~ m#all\\#good#i && '%{REQUEST_STATUS}/x' =~ /^2..\\/x$/",
        "%{resp:X-Bytes} =~ /\u{fffd}/",
        "' 12abc%{resp:missing}' -eq 12 && -1 -lt 0",
        "true || false && !false",
        "%{REQUEST_STATUS} =~ 200",
        "hc('body') =~ /(unclosed/",
        "hc('body') =~ /(((a{100}){100}){100})/",
        "%{REQUEST_STATUS} -eq abc",
        "'é' == 'x' )",
        "%{resp:Bad Header} == 1",
        "(((((",
        "!!!!!",
        "%{",
        "'\\",
        "m",
        "",
    ];
    for seed in seeds {
        check(seed.as_bytes());
    }
    check(format!("{}true{}", "(".repeat(64), ")".repeat(64)).as_bytes());
    check(format!("{}true{}", "(".repeat(65), ")".repeat(65)).as_bytes());
    check(
        vec!["%{REQUEST_STATUS} == 200"; 5000]
            .join(" && ")
            .as_bytes(),
    );
    check(b"\xff\xfe");
}
