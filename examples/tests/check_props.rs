//! `--check` predicts `--config`: for generated configurations (members with valid and
//! invalid URLs and parameters, health-check expressions, `ProxyPass` to balancers, URLs and
//! undefined balancers, `Header` lines), the check passes (exit status 0 or 1) exactly when
//! the configuration parses and `Site::from_config` builds it.

use examples::check_config;
use proptest::prelude::*;
use proxy_balancer::apache_config::parse;
use proxy_balancer::site::Site;

fn member_url() -> impl Strategy<Value = String> {
    // Mostly valid, so that both verdicts are common.
    prop_oneof![
        20 => (1u16..60).prop_map(|p| format!("http://127.0.0.1:{p}")),
        20 => (1u16..60).prop_map(|p| format!("http://127.0.0.1:{p}/app")),
        1 => Just("https://127.0.0.1:9".to_owned()),
        1 => Just("ajp://127.0.0.1:9".to_owned()),
        1 => Just("ws://127.0.0.1:9".to_owned()),
        1 => Just("http://127.0.0.1:99999".to_owned()),
        1 => Just("http://u@127.0.0.1:9".to_owned()),
        1 => Just("http://127.0.0.1:9/a\u{1}b".to_owned()),
    ]
}

fn member_param() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just(String::new()),
        6 => (1u8..4).prop_map(|r| format!(" route=n{r}")),
        6 => Just(" loadfactor=2".to_owned()),
        1 => Just(" loadfactor=0".to_owned()),
        6 => Just(" retry=5".to_owned()),
        6 => Just(" status=+H".to_owned()),
        1 => Just(" status=X".to_owned()),
        6 => Just(" hcmethod=GET hcuri=/health".to_owned()),
        6 => Just(" hcmethod=GET hcexpr=ok".to_owned()),
        1 => Just(" hcmethod=GET hcexpr=bad".to_owned()),
        1 => Just(" hcmethod=GET hcexpr=deep".to_owned()),
        1 => Just(" hcmethod=GET hcexpr=missing".to_owned()),
        6 => Just(" ping=1".to_owned()),
        6 => Just(" max=4 ttl=30".to_owned()),
        1 => Just(" hcpath=/".to_owned()),
    ]
}

fn proxy_pass() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just("ProxyPass / balancer://app/".to_owned()),
        6 => Just("ProxyPass /a balancer://app/a stickysession=ROUTEID".to_owned()),
        1 => Just("ProxyPass /b balancer://other/".to_owned()),
        6 => Just("ProxyPass /c http://127.0.0.1:5/c".to_owned()),
        1 => Just("ProxyPass /d ftp://127.0.0.1/d".to_owned()),
        1 => Just("ProxyPass e http://127.0.0.1:5/e".to_owned()),
        6 => Just("ProxyPass /f !".to_owned()),
        6 => Just("ProxyPass /g http://127.0.0.1:5/g ping=1".to_owned()),
    ]
}

fn header() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just(String::new()),
        6 => Just("Header add Set-Cookie \"ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/\" env=BALANCER_ROUTE_CHANGED".to_owned()),
        6 => Just("Header set X-Served-By \"%{BALANCER_WORKER_NAME}e\"".to_owned()),
        1 => Just("Header echo ^X-".to_owned()),
        6 => Just("Header always unset X-Powered-By".to_owned()),
    ]
}

fn config() -> impl Strategy<Value = String> {
    (
        prop::collection::vec((member_url(), member_param()), 1..4),
        prop::collection::vec(proxy_pass(), 0..3),
        header(),
        // Which of the expressions `ok`, `bad` and `deep` are defined.
        (
            prop::bool::weighted(0.8),
            prop::bool::weighted(0.1),
            prop::bool::weighted(0.1),
        ),
    )
        .prop_map(|(members, passes, header, (ok, bad, deep))| {
            let mut text = String::new();
            if ok {
                text.push_str("ProxyHCExpr ok {%{REQUEST_STATUS} =~ /^2/}\n");
            }
            if bad {
                text.push_str("ProxyHCExpr bad {%{REQUEST_STATUS} =~ }\n");
            }
            if deep {
                let deep = format!(
                    "{}%{{REQUEST_STATUS}} = 200{}",
                    "(".repeat(70),
                    ")".repeat(70)
                );
                text.push_str(&format!("ProxyHCExpr deep {{{deep}}}\n"));
            }
            text.push_str("<Proxy balancer://app>\n");
            for (url, param) in members {
                text.push_str(&format!("  BalancerMember {url}{param}\n"));
            }
            text.push_str("</Proxy>\n");
            for pass in passes {
                text.push_str(&pass);
                text.push('\n');
            }
            text.push_str(&header);
            text.push('\n');
            text
        })
}

/// What `--config` does before it listens, for these configurations (no log directives).
fn config_starts(runtime: &tokio::runtime::Runtime, text: &str) -> bool {
    let Ok(config) = parse(text) else {
        return false;
    };
    runtime.block_on(async { Site::from_config(&config).is_ok() })
}

proptest! {
    // Each case builds a site (probes started and stopped): a few hundred stay fast.
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn check_passes_exactly_when_the_site_builds(text in config()) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let starts = config_starts(&runtime, &text);
        let report = check_config(&text, None, true);
        prop_assert_eq!(report.exit_code() <= 1, starts, "{}\n{}", text, report.to_text("config"));
        prop_assert_eq!(report.starts(), starts);
        // A refusal always says why; parse errors and findings never hide each other.
        if !starts {
            prop_assert!(!report.parse_errors.is_empty() || report.refusal.is_some());
        }
    }
}
