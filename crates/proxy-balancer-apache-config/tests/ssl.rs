//! mod_ssl's `SSLProxy*` directives (issue #15): read per server, merged into virtual hosts
//! as mod_ssl merges them, checked as Apache checks them, and what the doctor says.

use proxy_balancer_apache_config::doctor::{check, Severity};
use proxy_balancer_apache_config::{parse, SslProxyVerify, SslRevocationCheck};

/// A file that exists, for the directives that need one.
fn existing_file() -> String {
    let path = std::env::temp_dir().join(format!("pb-ssl-conf-{}.pem", std::process::id()));
    std::fs::write(&path, "").expect("write");
    path.display().to_string()
}

#[test]
fn read_per_server_and_merged() {
    let file = existing_file();
    let dir = std::env::temp_dir().display().to_string();
    let config = parse(&format!(
        "SSLProxyEngine on\nSSLProxyVerify require\nSSLProxyCACertificateFile {file}\n\
         SSLProxyCheckPeerExpire off\nSSLProxyProtocol all -SSLv3\n\
         SSLProxyCARevocationCheck chain\nSSLProxyCARevocationFile {file}\n\
         <VirtualHost *:443>\n  SSLProxyVerify none\n  SSLProxyCACertificatePath {dir}\n\
         SSLProxyMachineCertificateFile {file}\n  SSLProxyCheckPeerName off\n</VirtualHost>\n"
    ))
    .expect("parses");
    let main = config.host_settings(None).ssl_proxy;
    assert!(main.engine_on());
    assert!(main.verifies());
    assert!(main.checks_name());
    assert!(!main.checks_expiry());
    assert_eq!(
        main.protocol
            .as_ref()
            .map(|p| (p.value.tls12, p.value.tls13)),
        Some((true, true))
    );
    assert_eq!(
        main.ca_revocation_check.as_ref().map(|c| c.value),
        Some(SslRevocationCheck::Chain)
    );
    assert_eq!(main.verify.as_ref().map(|v| v.span.line), Some(2));
    let vhost = config.host_settings(Some(0)).ssl_proxy;
    assert!(vhost.engine_on(), "inherited");
    assert!(!vhost.verifies(), "its own");
    assert_eq!(
        vhost.verify.as_ref().map(|v| v.value),
        Some(SslProxyVerify::None)
    );
    assert!(!vhost.checks_name());
    assert!(!vhost.checks_expiry(), "inherited");
    assert!(vhost.ca_certificate_file.is_some() && vhost.ca_certificate_path.is_some());
    assert!(vhost.machine_certificate_file.is_some());
    // Spans aside (to compare servers' settings).
    assert_ne!(main, vhost);
    let zeroed = main.without_spans();
    assert_eq!(zeroed.verify.as_ref().map(|v| v.span.line), Some(0));
    assert_eq!(
        zeroed.verify.map(|v| v.value),
        Some(SslProxyVerify::Require)
    );
}

#[test]
fn defaults_are_safe() {
    let config = parse("SSLProxyEngine On\n").expect("parses");
    let ssl = config.host_settings(None).ssl_proxy;
    assert!(ssl.verifies(), "unset verifies (Apache: none)");
    assert!(ssl.checks_name() && ssl.checks_expiry());
    let none = parse("SSLProxyEngine Off\n").expect("parses");
    assert!(!none.host_settings(None).ssl_proxy.engine_on());
}

/// Apache 2.4.21+: either check off turns the name check off, except CN on + Name off.
#[test]
fn peer_name_and_cn() {
    let checks = |text: &str| parse(text).expect("parses").server.ssl_proxy.checks_name();
    assert!(checks(""));
    assert!(!checks("SSLProxyCheckPeerName off\n"));
    assert!(!checks("SSLProxyCheckPeerCN off\n"));
    assert!(checks(
        "SSLProxyCheckPeerCN on\nSSLProxyCheckPeerName off\n"
    ));
    assert!(!checks(
        "SSLProxyCheckPeerCN off\nSSLProxyCheckPeerName on\n"
    ));
}

#[test]
fn protocols() {
    let protocols = |text: &str| {
        parse(&format!("SSLProxyProtocol {text}\n")).map(|c| {
            c.server
                .ssl_proxy
                .protocol
                .map(|p| (p.value.tls12, p.value.tls13))
        })
    };
    assert_eq!(protocols("all").expect("ok"), Some((true, true)));
    assert_eq!(
        protocols("all -SSLv3 -TLSv1 -TLSv1.1").expect("ok"),
        Some((true, true))
    );
    assert_eq!(protocols("-all +TLSv1.3").expect("ok"), Some((false, true)));
    assert_eq!(
        protocols("TLSv1.2 TLSv1.3").expect("ok"),
        Some((true, true))
    );
    assert_eq!(protocols("TLSv1.2").expect("ok"), Some((true, false)));
    assert_eq!(protocols("all -TLSv1.2").expect("ok"), Some((false, true)));
    // Versions rustls does not have, enabled by name: refused at their place.
    for (text, column) in [("+TLSv1.1", 18), ("TLSv1", 18), ("TLSv1.2 SSLv3", 26)] {
        let err = protocols(text).expect_err(text);
        let e = &err.errors()[0];
        assert_eq!(e.span.column, column, "{text}: {e}");
        assert!(e.to_string().contains("rustls"), "{e}");
    }
    let err = protocols("-all").expect_err("nothing left");
    assert!(err.to_string().contains("no protocol"), "{err}");
    let err = protocols("TLSv9").expect_err("unknown");
    assert!(err.to_string().contains("TLSv9"), "{err}");
}

#[test]
fn bad_values_are_errors_with_their_place() {
    let err = parse("SSLProxyVerify sometimes\n").expect_err("bad");
    assert_eq!(err.errors()[0].span.column, 16);
    let err = parse("SSLProxyEngine maybe\n").expect_err("bad");
    assert_eq!(err.errors()[0].span.column, 16);
    let err = parse("SSLProxyCACertificateFile ca.pem\n").expect_err("relative");
    assert!(err.to_string().contains("relative"), "{err}");
    let err = parse("SSLProxyCACertificateFile /nonexistent/ca.pem\n").expect_err("missing");
    assert!(err.to_string().contains("does not exist"), "{err}");
    let err = parse("SSLProxyCACertificatePath /nonexistent/dir\n").expect_err("missing");
    assert!(err.to_string().contains("directory"), "{err}");
    let err = parse("SSLProxyCARevocationCheck chain no_crl_for_cert_ok\n").expect_err("flag");
    assert_eq!(err.errors()[0].span.column, 33);
}

#[test]
fn contexts() {
    // A <Proxy "balancer://…"> section (Apache 2.4.30+): over the server's settings.
    let config = parse(
        "SSLProxyVerify require\n<Proxy balancer://app>\n  SSLProxyEngine on\n  \
         SSLProxyVerify none\n  BalancerMember https://a.example\n</Proxy>\n\
         <Proxy balancer://other>\n  BalancerMember https://b.example\n</Proxy>\n",
    )
    .expect("parses");
    let app = config.balancer_ssl_proxy(None, Some(0));
    assert!(app.engine_on() && !app.verifies());
    assert_eq!(app.verify.as_ref().map(|v| v.span.line), Some(4));
    let other = config.balancer_ssl_proxy(None, Some(1));
    assert!(!other.engine_on() && other.verifies());
    assert_eq!(config.host_settings(None).ssl_proxy, other);
    // A <Proxy> of a URL: refused (no per-worker settings here).
    let err = parse("<Proxy https://a.example/>\n  SSLProxyVerify none\n</Proxy>\n")
        .expect_err("refused");
    assert_eq!(err.errors()[0].span.line, 2);
    assert!(err.to_string().contains("not supported"), "{err}");
    let err = parse("<ProxyMatch ^https://>\n  SSLProxyVerify none\n</ProxyMatch>\n")
        .expect_err("refused");
    assert_eq!(err.errors()[0].span.line, 2);
    // In a block that is not read (a <Directory>): listed as not applied there, for the
    // doctor's no-effect rule.
    let config = parse("<Directory /srv>\n  SSLProxyVerify none\n</Directory>\n").expect("parses");
    assert!(config
        .skipped
        .iter()
        .any(|s| s.directive == "SSLProxyVerify" && s.in_block && s.span.line == 2));
    // A <Location>: not allowed, as in Apache.
    let err = parse("<Location /a>\n  SSLProxyEngine on\n</Location>\n").expect_err("refused");
    assert!(err.to_string().contains("not allowed"), "{err}");
}

#[test]
fn doctor_findings() {
    let rules = |text: &str| {
        let config = parse(text).expect("parses");
        check(&config)
            .into_iter()
            .filter(|f| f.rule.starts_with("ssl-") || f.what.contains("SSLProxy"))
            .map(|f| (f.rule, f.severity, f.span.line))
            .collect::<Vec<_>>()
    };
    let balancer = "<Proxy balancer://app>\n  BalancerMember https://a.example\n</Proxy>\n";
    // No SSLProxyEngine: AH00961, an error on the member's line.
    assert_eq!(
        rules(&format!("{balancer}ProxyPass / balancer://app/\n")),
        [("ssl-proxy-engine-off", Severity::Error, 2)]
    );
    // Engine on, SSLProxyVerify unset: a note on what differs from Apache.
    assert_eq!(
        rules(&format!(
            "SSLProxyEngine on\n{balancer}ProxyPass / balancer://app/\n"
        )),
        [("ssl-proxy-verify-default", Severity::Note, 3)]
    );
    // Once per server, not per member.
    assert_eq!(
        rules(
            "SSLProxyEngine on\n<Proxy balancer://app>\n  BalancerMember https://a.example\n  \
             BalancerMember https://b.example\n</Proxy>\nProxyPass / balancer://app/\n"
        ),
        [("ssl-proxy-verify-default", Severity::Note, 3)]
    );
    // SSLProxyVerify none: a warning on its line.
    assert_eq!(
        rules(&format!(
            "SSLProxyEngine on\nSSLProxyVerify none\n{balancer}ProxyPass / balancer://app/\n"
        )),
        [("ssl-proxy-verify-none", Severity::Warning, 2)]
    );
    // require: nothing to say. A plain http member: nothing either.
    assert!(rules(&format!(
        "SSLProxyEngine on\nSSLProxyVerify require\n{balancer}ProxyPass / balancer://app/\n"
    ))
    .is_empty());
    assert!(rules("ProxyPass / http://a.example/\n").is_empty());
    // A <VirtualHost> inherits SSLProxyEngine (mod_ssl's merge); one that turns it off
    // cannot use the main server's https balancer.
    let found = rules(&format!(
        "SSLProxyEngine on\nSSLProxyVerify require\n{balancer}<VirtualHost *:80>\n  ProxyPass / balancer://app/\n</VirtualHost>\n"
    ));
    assert!(found.is_empty(), "{found:?}");
    let found = rules(&format!(
        "SSLProxyEngine on\nSSLProxyVerify require\n{balancer}<VirtualHost *:80>\n  SSLProxyEngine off\n  ProxyPass / balancer://app/\n</VirtualHost>\n"
    ));
    assert_eq!(found, [("ssl-proxy-engine-off", Severity::Error, 4)]);
}

#[test]
fn cipher_suite_and_depth_are_reported_not_applied() {
    let config = parse("SSLProxyCipherSuite HIGH:!aNULL\nSSLProxyVerifyDepth 3\n").expect("parses");
    let found: Vec<_> = check(&config)
        .into_iter()
        .map(|f| (f.rule, f.severity, f.span.line))
        .collect();
    assert_eq!(
        found,
        [
            ("not-applied", Severity::Warning, 1),
            ("not-applied", Severity::Note, 2)
        ]
    );
}
