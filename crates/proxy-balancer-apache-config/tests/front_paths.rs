//! What the reverse proxy needs to match and forward paths as Apache: `AllowEncodedSlashes`
//! and the `nocanon` keyword of `ProxyPass`.

use proxy_balancer_apache_config::doctor::check;
use proxy_balancer_apache_config::{parse, AllowEncodedSlashes, ProxyTarget};

#[test]
fn allow_encoded_slashes_is_read_in_server_context() {
    for (text, mode) in [
        ("AllowEncodedSlashes On", AllowEncodedSlashes::On),
        ("AllowEncodedSlashes off", AllowEncodedSlashes::Off),
        (
            "allowencodedslashes NoDecode",
            AllowEncodedSlashes::NoDecode,
        ),
        (
            "AllowEncodedSlashes nodecode",
            AllowEncodedSlashes::NoDecode,
        ),
        (
            "<IfModule mod_proxy.c>\nAllowEncodedSlashes On\n</IfModule>",
            AllowEncodedSlashes::On,
        ),
        (
            "AllowEncodedSlashes On\nAllowEncodedSlashes NoDecode",
            AllowEncodedSlashes::NoDecode,
        ),
    ] {
        let c = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(c.server.allow_encoded_slashes, Some(mode), "{text}");
        assert!(c.skipped.is_empty(), "{text}: {:?}", c.skipped);
    }
    assert_eq!(parse("").expect("empty").server.allow_encoded_slashes, None);
}

#[test]
fn allow_encoded_slashes_refuses_other_values_and_is_the_vhosts_own_in_a_vhost() {
    for text in [
        "AllowEncodedSlashes Yes",
        "AllowEncodedSlashes",
        "AllowEncodedSlashes On Off",
    ] {
        let errors = parse(text).expect_err(text).into_vec();
        assert_eq!(errors.len(), 1, "{text}: {errors:?}");
        assert_eq!(errors[0].span.line, 1, "{text}");
    }
    let err = parse("AllowEncodedSlashes Yes").expect_err("invalid");
    assert!(
        err.to_string().contains("must be On, Off or NoDecode"),
        "{err}"
    );
    // In a <VirtualHost>, it is that virtual host's, not the whole server's.
    let c = parse("<VirtualHost *:80>\nAllowEncodedSlashes On\n</VirtualHost>\n").expect("valid");
    assert_eq!(c.server.allow_encoded_slashes, None);
    assert_eq!(
        c.virtual_hosts[0].settings.allow_encoded_slashes,
        Some(AllowEncodedSlashes::On)
    );
    assert!(c.skipped.is_empty(), "{:?}", c.skipped);
}

#[test]
fn nocanon_is_a_proxypass_keyword() {
    let c = parse(
        "<Proxy balancer://app>\nBalancerMember http://127.0.0.1:8001\n</Proxy>\n\
         ProxyPass /raw balancer://app/raw nocanon lbmethod=byrequests\n\
         ProxyPass /u http://127.0.0.1:8002/ NoCanon retry=1\n\
         ProxyPass /x !\n\
         ProxyPass / balancer://app/\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let flags: Vec<bool> = c.proxy_passes.iter().map(|p| p.nocanon).collect();
    assert_eq!(flags, [true, true, false, false]);
    // The keyword is not a parameter: the others are kept.
    assert_eq!(c.proxy_passes[0].params.len(), 1);
    assert_eq!(c.proxy_passes[0].params[0].key, "lbmethod");
    assert_eq!(c.proxy_passes[1].params[0].key, "retry");
    assert!(matches!(
        c.proxy_passes[0].target,
        ProxyTarget::Balancer { ref path, .. } if path == "/raw"
    ));
    // Other bare words are still errors.
    assert!(parse("ProxyPass / http://127.0.0.1:8001/ noquery-typo").is_err());
}

#[test]
fn both_are_rendered_and_read_back() {
    let text = "AllowEncodedSlashes NoDecode\n\
                <Proxy balancer://app>\nBalancerMember http://127.0.0.1:8001\n</Proxy>\n\
                ProxyPass /raw balancer://app/raw nocanon\n\
                ProxyPass / balancer://app/\n";
    let c = parse(text).expect("valid");
    let rendered = c.render();
    assert!(
        rendered.contains("AllowEncodedSlashes NoDecode"),
        "{rendered}"
    );
    assert!(rendered.contains(" nocanon"), "{rendered}");
    let again = parse(&rendered).unwrap_or_else(|e| panic!("{e}\n{rendered}"));
    assert_eq!(again.without_spans(), c.without_spans());
}

#[test]
fn the_doctor_reports_neither_as_not_applied() {
    let c = parse(
        "AllowEncodedSlashes On\n\
         <Proxy balancer://app>\nBalancerMember http://127.0.0.1:8001 hcmethod=GET hcuri=/h\n</Proxy>\n\
         ProxyPass /raw balancer://app/raw nocanon\n",
    )
    .expect("valid");
    let findings = check(&c);
    // No finding at all about the two lines (1 and 5), `not-applied` or other.
    assert!(
        findings
            .iter()
            .all(|f| f.rule != "not-applied" && f.span.line != 1 && f.span.line != 5),
        "{findings:?}"
    );
}
