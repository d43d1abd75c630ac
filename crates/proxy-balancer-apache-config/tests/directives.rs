//! The directives a reverse proxy site applies: `ProxyPreserveHost`, `ProxyAddHeaders`,
//! `ProxyPassReverseCookieDomain`, `ProxyPassReverseCookiePath` and `ServerName`.

use proxy_balancer_apache_config::{
    parse, CookieRewrite, HeaderCondition, ParseErrorKind, ServerName, Span,
};

/// Every directive name of Apache's manual.
const APACHE_DIRECTIVES: &str = include_str!("../src/apache_directives.txt");

#[test]
fn no_apache_directive_is_taken_for_a_typo() {
    let mut wrong = Vec::new();
    for name in APACHE_DIRECTIVES.lines().filter(|l| !l.starts_with('#')) {
        let text = format!("{name} x");
        if let Err(errors) = parse(&text) {
            wrong.extend(
                errors
                    .iter()
                    .filter(|e| e.kind == ParseErrorKind::UnknownDirective)
                    .map(|e| format!("{name}: {e}")),
            );
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

fn at(line: u32, column: u32) -> Span {
    Span::new(line, column)
}

fn one_error(text: &str) -> proxy_balancer_apache_config::ParseError {
    let errors = parse(text).expect_err("an error").into_vec();
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors.into_iter().next().expect("one error")
}

const SITE: &str = "\
ServerName https://www.example.com:443
<IfModule mod_proxy.c>
    proxypreservehost on
    ProxyAddHeaders Off
</IfModule>
ProxyPassReverseCookieDomain backend.internal www.example.com
ProxyPassReverseCookiePath \"/app\" \"/\" Interpolate
ProxyPassReverseCookiePath /old /new
";

#[test]
fn server_context_directives_are_read() {
    let c = parse(SITE).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.server.server_name,
        Some(ServerName {
            scheme: Some("https".into()),
            host: "www.example.com".into(),
            port: Some(443),
            span: at(1, 1),
        })
    );
    assert_eq!(c.server.proxy_preserve_host, Some(true));
    assert_eq!(c.server.proxy_add_headers, Some(false));
    assert_eq!(
        c.proxy_pass_reverse_cookie_domains,
        [CookieRewrite {
            internal: "backend.internal".into(),
            public: "www.example.com".into(),
            interpolate: false,
            context: Default::default(),
            span: at(6, 1),
        }]
    );
    let paths: Vec<(&str, &str, bool)> = c
        .proxy_pass_reverse_cookie_paths
        .iter()
        .map(|r| (r.internal.as_str(), r.public.as_str(), r.interpolate))
        .collect();
    assert_eq!(paths, [("/app", "/", true), ("/old", "/new", false)]);
    assert!(c.skipped.is_empty(), "{:?}", c.skipped);
}

#[test]
fn defaults_are_none_and_the_last_one_wins() {
    let c = parse("").unwrap();
    assert_eq!(
        (
            c.server.proxy_preserve_host,
            c.server.proxy_add_headers,
            &c.server.server_name
        ),
        (None, None, &None)
    );
    let c = parse("ProxyPreserveHost On\nProxyPreserveHost Off\nServerName a\nServerName b:8080\n")
        .unwrap();
    assert_eq!(c.server.proxy_preserve_host, Some(false));
    let s = c.server.server_name.unwrap();
    assert_eq!(
        (s.scheme, s.host.as_str(), s.port, s.span),
        (None, "b", Some(8080), at(4, 1))
    );
    let s = parse("ServerName [::1]:8443")
        .unwrap()
        .server
        .server_name
        .unwrap();
    assert_eq!((s.host.as_str(), s.port), ("[::1]", Some(8443)));
    let s = parse("ServerName 10.0.0.1")
        .unwrap()
        .server
        .server_name
        .unwrap();
    assert_eq!((s.host.as_str(), s.port), ("10.0.0.1", None));
}

#[test]
fn bad_values_are_errors_with_their_place() {
    let e = one_error("# site\n  ProxyPreserveHost Maybe\n");
    assert_eq!(e.kind, ParseErrorKind::InvalidValue);
    assert_eq!(e.span, at(2, 21));
    assert_eq!(
        e.to_string(),
        "line 2, column 21: invalid value \"Maybe\" for ProxyPreserveHost: must be On or Off"
    );
    let e = one_error("ProxyAddHeaders yes");
    assert_eq!(
        e.to_string(),
        "line 1, column 17: invalid value \"yes\" for ProxyAddHeaders: must be On or Off"
    );
    let e = one_error("ProxyAddHeaders");
    assert_eq!(e.kind, ParseErrorKind::Syntax);
    assert_eq!(e.span, at(1, 1));
    let e = one_error("ProxyPreserveHost On Off");
    assert_eq!(
        e.to_string(),
        "line 1, column 1: ProxyPreserveHost takes one argument"
    );

    let e = one_error("ProxyPassReverseCookieDomain a");
    assert_eq!(e.kind, ParseErrorKind::Syntax);
    let e = one_error("ProxyPassReverseCookiePath / /x interpolat");
    assert_eq!(e.kind, ParseErrorKind::InvalidValue);
    assert_eq!(e.span, at(1, 33));
    let e = one_error("ProxyPassReverseCookieDomain a b interpolate x");
    assert_eq!(e.kind, ParseErrorKind::Syntax);

    for (text, column) in [
        ("ServerName *.example.com", 12),
        ("ServerName a:0", 12),
        ("ServerName a:65536", 12),
        ("ServerName a:80x", 12),
        ("ServerName a:", 12),
        ("ServerName :80", 12),
        ("ServerName http://", 12),
        ("ServerName ://a", 12),
        ("ServerName a/b", 12),
        ("ServerName [::1", 12),
        ("ServerName [::1]x", 12),
        ("ServerName \"a b\"", 12),
    ] {
        let e = one_error(text);
        assert_eq!(e.kind, ParseErrorKind::InvalidValue, "{text}: {e}");
        assert_eq!(e.span, at(1, column), "{text}: {e}");
        assert!(e.to_string().contains("for ServerName: "), "{text}: {e}");
    }
    assert!(one_error("ServerName a.example b.example")
        .to_string()
        .contains("ServerName takes one argument"));
    let e = one_error("ServerName *.example.com");
    assert!(e.message.contains("ServerAlias"), "{e}");
}

#[test]
fn typos_get_a_did_you_mean() {
    let e = one_error("ProxyPreserveHots On");
    assert_eq!(e.kind, ParseErrorKind::UnknownDirective);
    assert_eq!(
        e.hint.as_deref(),
        Some("did you mean \"ProxyPreserveHost\"?")
    );
    let e = one_error("ProxyPassReverseCookieDomian a b");
    assert_eq!(
        e.hint.as_deref(),
        Some("did you mean \"ProxyPassReverseCookieDomain\"?")
    );
}

#[test]
fn outside_server_context_they_are_checked_and_skipped() {
    let text = "\
<VirtualHost *:80>
    ServerName shop.example.com
    ProxyPreserveHost On
    ProxyAddHeaders Off
    ProxyPassReverseCookieDomain a b
    ProxyPassReverseCookiePath /a /b
    <IfModule mod_proxy.c>
        ProxyPreserveHost On
    </IfModule>
</VirtualHost>
<Proxy balancer://app>
    BalancerMember http://a:80
    ProxyPreserveHost On
    ProxyPassReverseCookiePath /a /b
</Proxy>
<Proxy *>
    ProxyAddHeaders Off
</Proxy>
<Location /app>
    ProxyPreserveHost On
</Location>
<Directory /srv>
    ProxyPreserveHost On
</Directory>
";
    let c = parse(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (
            c.server.proxy_preserve_host,
            c.server.proxy_add_headers,
            &c.server.server_name,
            c.proxy_pass_reverse_cookie_domains.len(),
            c.proxy_pass_reverse_cookie_paths.len()
        ),
        // The <VirtualHost>'s cookie rewrites are its own (context.vhost), the <Proxy>
        // block's are not applied.
        (None, None, &None, 1, 1)
    );
    // Since contexts are read: the <VirtualHost>'s settings are its own, not skipped.
    let v = &c.virtual_hosts[0].settings;
    assert_eq!(
        (
            v.server_name.as_ref().map(|n| n.host.as_str()),
            v.proxy_preserve_host,
            v.proxy_add_headers
        ),
        (Some("shop.example.com"), Some(true), Some(false))
    );
    assert_eq!(
        c.proxy_pass_reverse_cookie_domains[0].context.vhost,
        Some(0)
    );
    assert_eq!(c.proxy_pass_reverse_cookie_paths[0].context.vhost, Some(0));
    let skipped: Vec<(&str, u32)> = c
        .skipped
        .iter()
        .map(|s| (s.directive.as_str(), s.span.line))
        .collect();
    assert_eq!(
        skipped,
        [
            ("ProxyPreserveHost", 13),
            ("ProxyPassReverseCookiePath", 14),
            ("<Proxy", 16),
            ("ProxyAddHeaders", 17),
            // (The <Location> block itself is in `locations` since contexts are read.)
            ("ProxyPreserveHost", 20),
            ("Directory", 22),
            // A directive of ours inside the unread <Directory> is listed too (the doctor
            // names it), not dropped in silence.
            ("ProxyPreserveHost", 23),
        ]
    );
    // Checked in a <VirtualHost> and a <Proxy> block too.
    let e = one_error("<VirtualHost *:80>\nProxyPreserveHost Maybe\n</VirtualHost>");
    assert_eq!(e.span, at(2, 19));
    let e = one_error("<Proxy balancer://x>\nServerName a:0\n</Proxy>");
    assert_eq!(e.span, at(2, 1));
    // As in Apache: "ServerName not allowed in <Proxy> context".
    assert_eq!(
        e.to_string(),
        "line 2, column 1: ServerName is not allowed in a <Proxy> block \
         (move it to the server or <VirtualHost> it names)"
    );
}

#[test]
fn they_round_trip() {
    let c = parse(SITE).unwrap();
    let text = c.render();
    assert_eq!(
        text,
        "ServerName https://www.example.com:443\n\
         ProxyPreserveHost On\n\
         ProxyAddHeaders Off\n\
         ProxyPassReverseCookieDomain backend.internal www.example.com\n\
         ProxyPassReverseCookiePath /app / interpolate\n\
         ProxyPassReverseCookiePath /old /new\n"
    );
    assert_eq!(parse(&text).unwrap().without_spans(), c.without_spans());
    let c = parse("ServerName \"[::1]\"\nProxyPassReverseCookiePath \"/a b\" \"\"\n").unwrap();
    assert_eq!(
        parse(&c.render()).unwrap().without_spans(),
        c.without_spans()
    );
}

mod no_panic {
    use proptest::prelude::*;

    const DIRECTIVES: &[&str] = &[
        "ProxyPreserveHost",
        "ProxyAddHeaders",
        "ProxyPassReverseCookieDomain",
        "ProxyPassReverseCookiePath",
        "ServerName",
    ];

    proptest! {
        #[test]
        fn on_any_arguments(
            d in prop::sample::select(DIRECTIVES),
            args in prop::collection::vec(prop_oneof![any::<String>(), "[ -~]{0,12}"], 0..4),
            ctx in prop::sample::select(vec!["", "<VirtualHost *>", "<Proxy balancer://x>", "<IfModule x>"]),
        ) {
            let args: Vec<String> = args.iter().map(|a| format!("\"{}\"", a.replace('"', "\\\""))).collect();
            let mut text = format!("{ctx}\n{d} {}\n", args.join(" "));
            if let Some(tag) = ctx.strip_prefix('<').and_then(|t| t.split_whitespace().next()) {
                text.push_str(&format!("</{tag}>\n"));
            }
            if let Ok(c) = proxy_balancer_apache_config::parse(&text) {
                let again = proxy_balancer_apache_config::parse(&c.render())
                    .map_err(|e| TestCaseError::fail(format!("{e}\n{}", c.render())))?;
                let mut expected = c.without_spans();
                expected.skipped.clear();
                prop_assert_eq!(again.without_spans(), expected);
            }
        }

        #[test]
        fn on_any_text(
            d in prop::sample::select(DIRECTIVES),
            rest in prop_oneof![any::<String>(), "[ -~]{0,40}"],
        ) {
            if let Ok(c) = proxy_balancer_apache_config::parse(&format!("{d} {rest}")) {
                let again = proxy_balancer_apache_config::parse(&c.render())
                    .map_err(|e| TestCaseError::fail(format!("{e}\n{}", c.render())))?;
                let mut expected = c.without_spans();
                expected.skipped.clear();
                prop_assert_eq!(again.without_spans(), expected);
            }
        }
    }
}

/// Found by `no_panic::on_any_text`: a word ending in `\` or holding a quote, which reads
/// back unquoted when another word follows it (quoted, `\"` would be an escaped quote).
#[test]
fn words_ending_in_a_backslash_round_trip_inside_a_line() {
    for text in [
        "ProxyPassReverseCookieDomain 0\\ a",
        "ProxyPassReverseCookieDomain #\"\\ a",
        "ProxyPassReverseCookiePath a b\\ interpolate",
        "ProxyPass 0\\ http://a:80 retry=1",
        "ProxyPassReverse /a\\ http://a:80",
        "<Proxy balancer://x>\nBalancerMember http://a:80 secret=x\\ route=r\nProxySet nonce=n\\ lbmethod=bybusyness\n</Proxy>",
        "ProxyHCTemplate t\\ hcmethod=GET",
    ] {
        let c = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let again = parse(&c.render()).unwrap_or_else(|e| panic!("{}: {e}", c.render()));
        assert_eq!(again.without_spans(), c.without_spans(), "{text}");
    }
}

/// `Header`: every action Apache has is read (`note` and `early` are refused, see the
/// parser's own tests); an action Apache does not have is an error, as `apache2 -t` says.
#[test]
fn header_actions() {
    let c = parse(
        "Header merge X-M b\nHeader setifempty X-S 1\nHeader unset X-U env=!KEEP\n\
         Header edit X-E ^a b\nHeader always echo X-\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let read: Vec<(&str, &str, &str, Option<HeaderCondition>)> = c
        .headers
        .iter()
        .map(|h| {
            (
                h.action.as_str(),
                h.name.as_str(),
                h.value.as_str(),
                h.condition.clone(),
            )
        })
        .collect();
    let keep = HeaderCondition::Env {
        name: "KEEP".into(),
        negated: true,
    };
    assert_eq!(
        read,
        [
            ("merge", "X-M", "b", None),
            ("setifempty", "X-S", "1", None),
            ("unset", "X-U", "", Some(keep)),
            ("edit", "X-E", "^a", None),
            ("echo", "X-", "", None),
        ]
    );
    assert_eq!(c.headers[3].replacement.as_deref(), Some("b"));
    assert!(c.headers[4].always);
    assert!(c.skipped.is_empty());

    let err = parse("Header frobnicate X-T 1\n").expect_err("not an Apache action");
    let text = err.to_string();
    assert!(
        text.contains("unknown Header action \"frobnicate\""),
        "{text}"
    );
    assert!(parse("Header\n").is_err());
}
