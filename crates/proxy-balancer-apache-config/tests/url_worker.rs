//! `ProxyPass path "http://host:port/base" key=value …`: a plain URL as a one-member
//! balancer (`Config::url_worker_balancer`, `Config::url_worker_balancers`).

use std::time::Duration;

use proxy_balancer_apache_config::{
    parse, Config, Param, ParseErrorKind, ProxyPassConfig, ProxyTarget, Span,
};
use proxy_balancer_core::{LbMethodKind, StatusFlags};

fn at(line: u32, column: u32) -> Span {
    Span::new(line, column)
}

fn hand_built(url: &str, kv: &[(&str, &str)]) -> (Config, ProxyPassConfig) {
    let pass = ProxyPassConfig {
        path: "/x".into(),
        target: ProxyTarget::Url(url.into()),
        params: kv
            .iter()
            .zip(20..)
            .map(|((k, v), column)| Param {
                key: (*k).into(),
                value: (*v).into(),
                span: at(1, column),
            })
            .collect(),
        nocanon: false,
        regex: false,
        noquery: false,
        interpolate: false,
        context: Default::default(),
        span: at(1, 1),
    };
    let mut config = Config::default();
    config.proxy_passes.push(pass.clone());
    (config, pass)
}

#[test]
fn worker_params_go_to_the_one_member() {
    let config = parse(
        "ProxyTimeout 30\n\
         ProxyPass \"/app\" \"http://Backend.internal:8080/base/\" route=r1 loadfactor=2 \
         status=+H retry=5 connectiontimeout=250ms timeout=7 max=20 keepalive=On \
         hcmethod=GET hcuri=/health ping=1\n\
         ProxyPass /plain http://10.0.0.9\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let pass = &config.proxy_passes[0];
    // The syntax tree keeps every worker parameter, the core's and the others.
    let keys: Vec<&str> = pass.params.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "route",
            "loadfactor",
            "status",
            "retry",
            "connectiontimeout",
            "timeout",
            "max",
            "keepalive",
            "hcmethod",
            "hcuri",
            "ping"
        ]
    );
    let (params, members) = config.url_worker_balancer(pass).unwrap();
    assert_eq!(params.name, "balancer://http://backend.internal:8080/base");
    // Apache's balancer defaults: nothing on the ProxyPass is a balancer parameter.
    assert_eq!(params.lb_method, LbMethodKind::ByRequests);
    assert_eq!(params.max_attempts, None);
    assert_eq!(params.sticky_session, None);
    assert_eq!(params.timeout, Duration::ZERO);
    let [m] = members.as_slice() else {
        panic!("{members:?}")
    };
    assert_eq!(m.url.as_str(), "http://backend.internal:8080/base");
    assert_eq!(m.route.as_ref().map(|r| r.as_str()), Some("r1"));
    assert_eq!(m.load_factor.lbf(), 200);
    assert_eq!(m.status, StatusFlags::HOT_STANDBY);
    assert_eq!(m.retry, Duration::from_secs(5));
    assert_eq!(m.connection_timeout, Some(Duration::from_millis(250)));
    assert_eq!(m.timeout, Some(Duration::from_secs(7)));
    assert_eq!((m.max, m.keepalive), (Some(20), true));

    // Without timeout=, the server's ProxyTimeout.
    let (params, members) = config.url_worker_balancer(&config.proxy_passes[1]).unwrap();
    assert_eq!(params.name, "balancer://http://10.0.0.9");
    assert_eq!(members[0].timeout, Some(Duration::from_secs(30)));
    assert_eq!(members[0].retry, Duration::from_secs(60));
}

#[test]
fn balancer_parameters_on_a_plain_url_are_refused_as_apache_does() {
    // Apache: "ProxyPass unknown Worker parameter".
    for key in [
        "lbmethod=bybusyness",
        "stickysession=ROUTEID",
        "maxattempts=1",
    ] {
        let errors = parse(&format!("ProxyPass /x http://a:80 {key}"))
            .unwrap_err()
            .into_vec();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].kind, ParseErrorKind::UnknownParameter);
        assert_eq!(errors[0].span, at(1, 26));
        assert!(
            errors[0]
                .hint
                .as_deref()
                .is_some_and(|h| h.contains("balancer parameter")),
            "{key}: {}",
            errors[0]
        );
    }
    // The same in a hand-built configuration, at conversion.
    let (config, pass) = hand_built("http://a:80", &[("retry", "1"), ("LbMethod", "bybusyness")]);
    let errors = config.url_worker_balancer(&pass).unwrap_err().into_vec();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].kind, ParseErrorKind::UnknownParameter);
    assert_eq!(errors[0].span, at(1, 21));
    assert_eq!(
        errors[0].to_string(),
        "line 1, column 21: unknown parameter \"LbMethod\" \
         (\"lbmethod\" is a balancer parameter, not a worker one)"
    );
}

#[test]
fn unknown_and_invalid_params_are_errors_never_dropped() {
    let (config, pass) = hand_built(
        "http://a:80",
        &[
            ("retry", "soon"),
            ("hcinterval", "1ms"),
            ("zzz", "1"),
            ("hcuri", "/ok"),
        ],
    );
    let errors = config.url_worker_balancer(&pass).unwrap_err().into_vec();
    let kinds: Vec<(ParseErrorKind, Span)> = errors.iter().map(|e| (e.kind, e.span)).collect();
    assert_eq!(
        kinds,
        [
            (ParseErrorKind::InvalidValue, at(1, 20)),
            (ParseErrorKind::InvalidValue, at(1, 21)),
            (ParseErrorKind::UnknownParameter, at(1, 22)),
        ]
    );
    assert!(errors[0].to_string().contains("retry"), "{}", errors[0]);
    assert!(
        errors[1].to_string().contains("hcinterval"),
        "{}",
        errors[1]
    );
}

#[test]
fn only_plain_urls_the_core_can_run() {
    let config = parse(
        "<Proxy balancer://b>\nBalancerMember http://m:80\n</Proxy>\n\
         ProxyPass /b balancer://b/sub\nProxyPass /no !\nProxyPass /ajp ajp://tomcat:8009/\n",
    )
    .unwrap();
    for (i, line, what) in [(0, 4, "balancer://b/sub"), (1, 5, "!")] {
        let e = config
            .url_worker_balancer(&config.proxy_passes[i])
            .unwrap_err()
            .into_vec();
        assert_eq!(e[0].kind, ParseErrorKind::InvalidValue);
        assert_eq!(e[0].span, at(line, 1));
        assert!(e[0].message.contains(what), "{}", e[0]);
    }
    let e = config
        .url_worker_balancer(&config.proxy_passes[2])
        .unwrap_err()
        .into_vec();
    assert_eq!(
        (e[0].kind, e[0].span),
        (ParseErrorKind::InvalidValue, at(6, 1))
    );
    assert!(e[0].message.contains("http"), "{}", e[0]);
    // All of them: the ajp one is an error, the others are not plain urls and are left out.
    assert_eq!(config.url_worker_balancers().unwrap_err().len(), 1);
}

#[test]
fn one_worker_per_url_the_first_pass_defines_it() {
    let config = parse(
        "ProxyPass /a http://b:80 retry=1\n\
         ProxyPass /b balancer://x\n\
         ProxyPass /c HTTP://B:80/ retry=9\n\
         ProxyPass /d http://other:80\n\
         <Proxy balancer://x>\nBalancerMember http://b:80\n</Proxy>\n",
    )
    .unwrap();
    let workers = config.url_worker_balancers().unwrap();
    let names: Vec<&str> = workers.iter().map(|(p, _)| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["balancer://http://b:80", "balancer://http://other:80"]
    );
    // Apache ignores the later pass's parameters (worker sharing, AH01146).
    assert_eq!(workers[0].1[0].retry, Duration::from_secs(1));
    // Its own conversion still names the same balancer.
    let (params, _) = config.url_worker_balancer(&config.proxy_passes[2]).unwrap();
    assert_eq!(params.name, names[0]);
    // Never the name of a configured balancer.
    let configured = config.balancers().unwrap();
    assert!(configured
        .iter()
        .all(|(p, _)| !names.contains(&p.name.as_str())));
}
