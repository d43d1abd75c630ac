//! Fuzzes the Apache config parser: it never panics, and what it accepts renders back to
//! the same configuration.
#![cfg_attr(fuzzing, no_main)]

use proxy_balancer_apache_config::parse;

fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(config) = parse(&text) else {
        return;
    };
    let _ = config.balancers();
    let rendered = config.render();
    let again = parse(&rendered).expect("a rendered config parses");
    let mut expected = config.without_spans();
    expected.skipped.clear();
    // A ProxySet after a ProxyPass moves before it when rendered: compare sorted params.
    let sorted = |mut c: proxy_balancer_apache_config::Config| {
        for b in &mut c.balancers {
            b.params
                .sort_by(|x, y| (&x.key, &x.value).cmp(&(&y.key, &y.value)));
        }
        c
    };
    assert_eq!(
        sorted(again.without_spans()),
        sorted(expected),
        "{rendered}"
    );
}

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));

#[cfg(not(fuzzing))]
fn main() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crates/proxy-balancer-apache-config/tests/corpus"
    );
    let mut seeds = 0;
    for entry in std::fs::read_dir(dir).expect("the corpus directory") {
        let path = entry.expect("a corpus entry").path();
        let data = std::fs::read(&path).expect("a corpus file");
        check(&data);
        // Every prefix too: truncated configs must fail cleanly or round-trip.
        for cut in (0..data.len()).step_by(97) {
            check(&data[..cut]);
        }
        seeds += 1;
    }
    for seed in [
        &b""[..],
        b"<Proxy",
        b"<Proxy \"balancer://x\">\nBalancerMember http://a \"route=\\\"\"\n</Proxy>",
        b"ProxyHCExpr x {}}",
        b"\\\n\\",
        b"\xff\xfe<\x00",
    ] {
        check(seed);
    }
    assert!(seeds >= 6, "corpus files: {seeds}");
}
