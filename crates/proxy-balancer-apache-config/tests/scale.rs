//! Start-up stays linear in members and balancers: parsing and converting, and building the
//! stores, of 4× the members take well under 16× (what a quadratic step gives) the time.
//! Ratios, not absolute times, so that a slow or busy machine does not fail it; the bound
//! is 8× (linear code measures ×4 to ×6 here, the cache and the allocator working harder
//! on larger inputs; the quadratic duplicate check this guards against measured ×28).

use std::time::{Duration, Instant};

use proxy_balancer_apache_config::parse;
use proxy_balancer_core::BalancerStore;

/// `balancers` balancers of `members` members each, with a ProxyPass each.
fn config(balancers: usize, members: usize) -> String {
    let mut text = String::new();
    for b in 0..balancers {
        text.push_str(&format!("<Proxy \"balancer://c{b}\">\n"));
        for m in 0..members {
            text.push_str(&format!(
                "    BalancerMember http://10.{}.{}.{}:{} route=r{m}\n",
                b % 250,
                (m / 250) % 250,
                m % 250,
                8000 + m / 62_500
            ));
        }
        text.push_str("    ProxySet stickysession=ROUTEID\n</Proxy>\n");
        text.push_str(&format!("ProxyPass \"/app{b}/\" \"balancer://c{b}/\"\n"));
    }
    text
}

/// The time to parse and convert, and the time to build every store: the fastest of three
/// runs each.
#[allow(clippy::disallowed_methods)] // wall time is what is measured
fn start_up(text: &str) -> (Duration, Duration) {
    let mut best = (Duration::MAX, Duration::MAX);
    for _ in 0..3 {
        let start = Instant::now();
        let config = parse(text).expect("the generated configuration parses");
        let balancers = config.balancers().expect("it converts");
        let parsed = start.elapsed();
        let start = Instant::now();
        for (params, members) in balancers {
            BalancerStore::new(params, members, start).expect("no duplicate member");
        }
        best = (best.0.min(parsed), best.1.min(start.elapsed()));
    }
    best
}

fn assert_linear(what: &str, small: &str, large: &str) {
    let (small, large) = (start_up(small), start_up(large));
    for (step, t_small, t_large) in [
        ("parse and convert", small.0, large.0),
        ("build the stores", small.1, large.1),
    ] {
        let ratio = t_large.as_secs_f64() / t_small.as_secs_f64().max(1e-6);
        eprintln!("{what}, {step}: {t_small:?} → {t_large:?} (×{ratio:.1} for ×4 members)");
        assert!(
            ratio < 8.0,
            "{what}, {step}: 4× the members took ×{ratio:.1} the time ({t_small:?} → \
             {t_large:?}): it is not linear"
        );
    }
}

#[test]
fn start_up_is_linear_in_members_and_balancers() {
    assert_linear("one balancer", &config(1, 10_000), &config(1, 40_000));
    assert_linear("balancers of 1000", &config(10, 1000), &config(40, 1000));
}
