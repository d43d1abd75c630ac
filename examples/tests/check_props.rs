//! `--check` predicts `--config`: for generated configurations (members with valid and
//! invalid URLs and parameters, health-check expressions, `ProxyPass` to balancers, URLs and
//! undefined balancers, `Header` lines), the check passes (exit status 0 or 1) exactly when
//! the configuration parses and `Site::from_config` builds it.

use examples::check_config;
use proptest::prelude::*;
use proxy_balancer::apache_config::parse;
use proxy_balancer::site::Site;

fn member_url() -> impl Strategy<Value = String> {
    prop_oneof![
        (1u16..4).prop_map(|p| format!("http://127.0.0.1:{p}")),
        (1u16..4).prop_map(|p| format!("http://127.0.0.1:{p}/app")),
        Just("https://127.0.0.1:9".to_owned()),
        Just("ajp://127.0.0.1:9".to_owned()),
        Just("ws://127.0.0.1:9".to_owned()),
        Just("http://127.0.0.1:99999".to_owned()),
        Just("http://u@127.0.0.1:9".to_owned()),
        Just("http://127.0.0.1:9/a\u{1}b".to_owned()),
    ]
}

fn member_param() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        (1u8..4).prop_map(|r| format!(" route=n{r}")),
        Just(" loadfactor=2".to_owned()),
        Just(" loadfactor=0".to_owned()),
        Just(" retry=5".to_owned()),
        Just(" status=+H".to_owned()),
        Just(" status=X".to_owned()),
        Just(" hcmethod=GET hcuri=/health".to_owned()),
        Just(" hcmethod=GET hcexpr=ok".to_owned()),
        Just(" hcmethod=GET hcexpr=bad".to_owned()),
        Just(" hcmethod=GET hcexpr=deep".to_owned()),
        Just(" hcmethod=GET hcexpr=missing".to_owned()),
        Just(" ping=1".to_owned()),
        Just(" max=4 ttl=30".to_owned()),
        Just(" hcpath=/".to_owned()),
    ]
}

fn proxy_pass() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("ProxyPass / balancer://app/".to_owned()),
        Just("ProxyPass /a balancer://app/a stickysession=ROUTEID".to_owned()),
        Just("ProxyPass /b balancer://other/".to_owned()),
        Just("ProxyPass /c http://127.0.0.1:5/c".to_owned()),
        Just("ProxyPass /d ftp://127.0.0.1/d".to_owned()),
        Just("ProxyPass e http://127.0.0.1:5/e".to_owned()),
        Just("ProxyPass /f !".to_owned()),
        Just("ProxyPass /g http://127.0.0.1:5/g ping=1".to_owned()),
    ]
}

fn header() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("Header add Set-Cookie \"ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/\" env=BALANCER_ROUTE_CHANGED".to_owned()),
        Just("Header set X-Served-By \"%{BALANCER_WORKER_NAME}e\"".to_owned()),
        Just("Header echo ^X-".to_owned()),
        Just("Header always unset X-Powered-By".to_owned()),
    ]
}

fn config() -> impl Strategy<Value = String> {
    (
        prop::collection::vec((member_url(), member_param()), 1..4),
        prop::collection::vec(proxy_pass(), 0..3),
        header(),
        any::<bool>(),
    )
        .prop_map(|(members, passes, header, hcexprs)| {
            let mut text = String::new();
            if hcexprs {
                let deep = format!(
                    "{}%{{REQUEST_STATUS}} = 200{}",
                    "(".repeat(70),
                    ")".repeat(70)
                );
                text.push_str("ProxyHCExpr ok {%{REQUEST_STATUS} =~ /^2/}\n");
                text.push_str("ProxyHCExpr bad {%{REQUEST_STATUS} =~ }\n");
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
