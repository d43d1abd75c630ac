use std::net::IpAddr;

use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LOCATION, HOST, LOCATION, TE,
    TRANSFER_ENCODING, UPGRADE,
};
use http::Uri;

use super::*;

const MEMBER: &str = "http://127.0.0.1:8001";

fn pass(front: &str, backend: &str) -> ProxyPass {
    ProxyPass::new(front, backend).unwrap()
}

fn map(p: &ProxyPass, uri: &str, member: &str) -> Result<String, ProxyPassError> {
    let uri: Uri = uri.parse().unwrap();
    p.map(&uri, member).map(|u| u.to_string())
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

fn values(headers: &HeaderMap, name: &str) -> Vec<Vec<u8>> {
    headers
        .get_all(name)
        .iter()
        .map(|v| v.as_bytes().to_vec())
        .collect()
}

// ===== ProxyPass::new =====

#[test]
fn new_parses_balancer_name_and_backend_path() {
    let cases = [
        ("/", "balancer://mycluster/", "balancer://mycluster", "/"),
        (
            "/app",
            "balancer://mycluster/app",
            "balancer://mycluster",
            "/app",
        ),
        ("/test", "balancer://mycluster", "balancer://mycluster", ""),
        (
            "/app/",
            "BALANCER://MyCluster/App/",
            "balancer://mycluster",
            "/App/",
        ),
        (
            "/a%20b",
            "balancer://c-1.x/p%2Fq",
            "balancer://c-1.x",
            "/p%2Fq",
        ),
    ];
    for (front, backend, name, path) in cases {
        let p = ProxyPass::new(front, backend).unwrap();
        assert_eq!(p.front_prefix(), front, "{backend}");
        assert_eq!(p.balancer_name(), name, "{backend}");
        assert_eq!(p.backend_path(), path, "{backend}");
    }
}

#[test]
fn new_rejects_bad_front_prefix() {
    for front in [
        "",
        "app",
        "*",
        "/a?b",
        "/a#b",
        "/a b",
        "/a/../b",
        "/./a",
        "/a/%2e%2E",
    ] {
        let err = ProxyPass::new(front, "balancer://x/").unwrap_err();
        assert!(
            matches!(err, ProxyPassError::InvalidFrontPrefix { ref prefix, .. } if prefix == front),
            "{front:?}: {err:?}"
        );
    }
}

#[test]
fn new_rejects_bad_backend_url() {
    let cases = [
        ("/", "http://127.0.0.1:8001/"),
        ("/", "balancer:/x/"),
        ("/", "balancer:///"),
        ("/", "balancer://"),
        ("/", "balancer://a b/"),
        ("/", "balancer://user@x/"),
        ("/", "balancer://x/?q"),
        ("/", "balancer://x/#f"),
        ("/", "balancer://x/a b"),
        ("/", "!"),
        ("/", "bal"),
        ("/", "balancer://é/"),
        // A front prefix ending in '/' needs a backend path, or paths glue to the name.
        ("/", "balancer://mycluster"),
        ("/app/", "balancer://mycluster"),
    ];
    for (front, backend) in cases {
        let err = ProxyPass::new(front, backend).unwrap_err();
        assert!(
            matches!(err, ProxyPassError::InvalidBackendUrl { ref url, .. } if url == backend),
            "{backend:?}: {err:?}"
        );
    }
}

#[test]
fn error_messages_are_lowercase_without_period() {
    let errors = [
        ProxyPass::new("app", "balancer://x/").unwrap_err(),
        ProxyPass::new("/", "http://x/").unwrap_err(),
        pass("/", "balancer://x/")
            .map(&Uri::from_static("/a"), "nope")
            .unwrap_err(),
        pass("/app", "balancer://x/app").map_path("/b").unwrap_err(),
        pass("/", "balancer://x/").map_path("/..").unwrap_err(),
        ProxyPassError::InvalidMappedUri {
            uri: "x".to_owned(),
        },
    ];
    for err in errors {
        let msg = err.to_string();
        let first = msg.chars().next().unwrap();
        assert!(first.is_lowercase() && !msg.ends_with('.'), "{msg}");
    }
}

#[test]
fn display_renders_the_apache_line() {
    let p = pass("/app", "balancer://MyCluster/app");
    assert_eq!(
        p.to_string(),
        r#"ProxyPass "/app" "balancer://mycluster/app""#
    );
}

#[test]
fn trailing_slash_mismatch() {
    let cases = [
        ("/", "balancer://x/", false),
        ("/app", "balancer://x/app", false),
        ("/app/", "balancer://x/app/", false),
        ("/test", "balancer://x", false),
        ("/app/", "balancer://x/app", true),
        ("/app", "balancer://x/app/", true),
        ("/app", "balancer://x/", true),
    ];
    for (front, backend, mismatch) in cases {
        assert_eq!(
            pass(front, backend).has_trailing_slash_mismatch(),
            mismatch,
            "{front} {backend}"
        );
    }
}

// ===== ProxyPass::matches =====

#[test]
fn matches_follows_apache_alias_match() {
    let cases = [
        ("/", "/", true),
        ("/", "/a/b", true),
        ("/", "//a", true),
        ("/", "", false),
        ("/", "*", false),
        ("/app", "/app", true),
        ("/app", "/app/", true),
        ("/app", "/app/x", true),
        ("/app", "/app//x", true),
        ("/app", "//app/x", true),
        // Apache 2.4 checks that the last prefix segment matched all the way.
        ("/app", "/apple", false),
        ("/app", "/ap", false),
        ("/app", "/App", false),
        ("/app", "/app;jsessionid=1", false),
        ("/app", "/x/app", false),
        ("/app", "", false),
        ("/app/", "/app/x", true),
        ("/app/", "/app/", true),
        ("/app/", "/app", false),
        ("/app/", "/apple", false),
        ("/a//b", "/a/b/c", true),
        ("/a/b", "/a///b", true),
        // Percent-encoded paths are matched as received.
        ("/a%20b", "/a%20b/x", true),
        ("/app", "/%61pp", false),
        // Dot segments are removed first, as Apache's normalisation does.
        ("/app", "/app/../admin", false),
        ("/app", "/app/%2e%2e/admin", false),
        ("/admin", "/app/../admin", true),
        ("/app", "/x/../app/y", true),
        ("/app", "/app/./y", true),
        ("/", "/..", false),
        ("/", "/a/../..", false),
    ];
    for (front, path, expected) in cases {
        let p = pass(front, "balancer://x/");
        assert_eq!(p.matches(path), expected, "{front:?} vs {path:?}");
    }
}

// ===== ProxyPass::map =====

#[test]
fn map_builds_member_uri() {
    let cases = [
        // Root mapping.
        (
            "/",
            "balancer://x/",
            "/a/b?q",
            MEMBER,
            "http://127.0.0.1:8001/a/b?q",
        ),
        ("/", "balancer://x/", "/", MEMBER, "http://127.0.0.1:8001/"),
        (
            "/",
            "balancer://x/",
            "http://front.example/",
            MEMBER,
            "http://127.0.0.1:8001/",
        ),
        (
            "/",
            "balancer://x/",
            "http://front.example",
            MEMBER,
            "http://127.0.0.1:8001/",
        ),
        // Sub-path mapping.
        (
            "/app",
            "balancer://x/app",
            "/app/y",
            MEMBER,
            "http://127.0.0.1:8001/app/y",
        ),
        (
            "/app",
            "balancer://x/app",
            "/app",
            MEMBER,
            "http://127.0.0.1:8001/app",
        ),
        (
            "/app",
            "balancer://x/app",
            "/app/",
            MEMBER,
            "http://127.0.0.1:8001/app/",
        ),
        (
            "/app/",
            "balancer://x/app/",
            "/app/y",
            MEMBER,
            "http://127.0.0.1:8001/app/y",
        ),
        (
            "/app",
            "balancer://x/other",
            "/app/y?a=1&b",
            MEMBER,
            "http://127.0.0.1:8001/other/y?a=1&b",
        ),
        // Apache's canonical example: no backend path.
        (
            "/test",
            "balancer://x",
            "/test/y",
            MEMBER,
            "http://127.0.0.1:8001/y",
        ),
        (
            "/test",
            "balancer://x",
            "/test",
            MEMBER,
            "http://127.0.0.1:8001/",
        ),
        // Doubled slashes in the request are absorbed by the prefix.
        (
            "/app/",
            "balancer://x/app/",
            "/app//y",
            MEMBER,
            "http://127.0.0.1:8001/app/y",
        ),
        (
            "/",
            "balancer://x/",
            "//a",
            MEMBER,
            "http://127.0.0.1:8001/a",
        ),
        // Mismatched trailing slashes concatenate literally, as in Apache.
        (
            "/app/",
            "balancer://x/app",
            "/app/y",
            MEMBER,
            "http://127.0.0.1:8001/appy",
        ),
        (
            "/app",
            "balancer://x/app/",
            "/app/y",
            MEMBER,
            "http://127.0.0.1:8001/app//y",
        ),
        // Query strings, including an empty one.
        (
            "/",
            "balancer://x/",
            "/a?",
            MEMBER,
            "http://127.0.0.1:8001/a?",
        ),
        (
            "/",
            "balancer://x/",
            "/a?x=%2F&y=1",
            MEMBER,
            "http://127.0.0.1:8001/a?x=%2F&y=1",
        ),
        // Percent-encoding is kept as is.
        (
            "/",
            "balancer://x/",
            "/a%2Fb/c%20d",
            MEMBER,
            "http://127.0.0.1:8001/a%2Fb/c%20d",
        ),
        (
            "/app",
            "balancer://x/app",
            "/app/%C3%A9",
            MEMBER,
            "http://127.0.0.1:8001/app/%C3%A9",
        ),
        // Dot segments are removed.
        (
            "/",
            "balancer://x/",
            "/a/./b/../c",
            MEMBER,
            "http://127.0.0.1:8001/a/c",
        ),
        (
            "/",
            "balancer://x/",
            "/a/b/..",
            MEMBER,
            "http://127.0.0.1:8001/a/",
        ),
        // Member base paths; a trailing '/' on the member URL is dropped.
        (
            "/app",
            "balancer://x/app",
            "/app/y",
            "http://h:1/base",
            "http://h:1/base/app/y",
        ),
        (
            "/app",
            "balancer://x/app",
            "/app/y",
            "http://h:1/base/",
            "http://h:1/base/app/y",
        ),
        (
            "/test",
            "balancer://x",
            "/test",
            "http://h:1/base",
            "http://h:1/base",
        ),
        ("/", "balancer://x/", "/a", "http://h:1/", "http://h:1/a"),
        (
            "/",
            "balancer://x/",
            "/a",
            "https://[::1]:8443",
            "https://[::1]:8443/a",
        ),
        ("/", "balancer://x/", "/a", "HTTP://H:1", "http://H:1/a"),
    ];
    for (front, backend, uri, member, expected) in cases {
        let p = pass(front, backend);
        assert_eq!(
            map(&p, uri, member).as_deref(),
            Ok(expected),
            "{front} {backend}: {uri} on {member}"
        );
    }
}

#[test]
fn map_rejects_paths_that_do_not_match() {
    let cases = [
        ("/app", "/apple"),
        ("/app", "/"),
        ("/app", "/b/app"),
        ("/app/", "/app"),
        ("/app", "/app/../admin"),
    ];
    for (front, uri) in cases {
        let p = pass(front, "balancer://x/app");
        assert!(
            matches!(map(&p, uri, MEMBER), Err(ProxyPassError::NoMatch { .. })),
            "{front} {uri}"
        );
    }
    let err = pass("/app", "balancer://x/app")
        .map_path("/apple")
        .unwrap_err();
    assert_eq!(
        err,
        ProxyPassError::NoMatch {
            path: "/apple".to_owned(),
            prefix: "/app".to_owned()
        }
    );
}

#[test]
fn map_rejects_empty_path_and_above_root() {
    let p = pass("/", "balancer://x/");
    assert!(matches!(
        p.map_path(""),
        Err(ProxyPassError::NoMatch { .. })
    ));
    assert!(matches!(
        p.map_path("*"),
        Err(ProxyPassError::NoMatch { .. })
    ));
    for path in ["/..", "/a/../../b", "/%2e%2e/etc/passwd", "/.%2E/x"] {
        assert!(
            matches!(
                p.map_path(path),
                Err(ProxyPassError::InvalidRequestPath { .. })
            ),
            "{path}"
        );
    }
}

#[test]
fn map_rejects_bad_member_url() {
    let p = pass("/", "balancer://x/");
    for member in [
        "",
        "127.0.0.1:8001",
        "://h",
        "http://",
        "http:///path",
        "http://h:1?x",
        "http://h:1/#f",
        "http://h h",
        "http://h:99999",
        "http://h/a b",
    ] {
        assert!(
            matches!(
                map(&p, "/a", member),
                Err(ProxyPassError::InvalidMemberUrl { ref url, .. }) if url == member
            ),
            "{member:?}"
        );
    }
}

#[test]
fn map_reports_too_long_uri() {
    let p = pass("/", "balancer://x/");
    // Each part is a valid URI on its own; together they pass http's length limit.
    let member = format!("http://h/{}", "a".repeat(40_000));
    let uri = format!("/{}", "b".repeat(40_000));
    let err = map(&p, &uri, &member).unwrap_err();
    assert!(
        matches!(err, ProxyPassError::InvalidMappedUri { .. }),
        "{err:?}"
    );
}

#[test]
fn map_path_is_backend_path_plus_rest() {
    let p = pass("/app", "balancer://x/back");
    assert_eq!(p.map_path("/app/y").unwrap(), "/back/y");
    assert_eq!(p.map_path("/app").unwrap(), "/back");
}

// ===== ProxyPassReverse =====

#[test]
fn reverse_url_rewrites_member_urls() {
    let cases = [
        // (member, backend prefix, front base, value, expected)
        (
            MEMBER,
            "",
            "https://www.example.com",
            "http://127.0.0.1:8001/login",
            Some("https://www.example.com/login"),
        ),
        (
            MEMBER,
            "/",
            "https://www.example.com/",
            "http://127.0.0.1:8001/login",
            Some("https://www.example.com/login"),
        ),
        (
            MEMBER,
            "/",
            "https://www.example.com/",
            "http://127.0.0.1:8001",
            Some("https://www.example.com/"),
        ),
        (
            MEMBER,
            "/app",
            "https://f/app",
            "http://127.0.0.1:8001/app/x?y=1",
            Some("https://f/app/x?y=1"),
        ),
        (
            MEMBER,
            "/app",
            "https://f/app",
            "http://127.0.0.1:8001/app",
            Some("https://f/app"),
        ),
        (
            MEMBER,
            "/app",
            "https://f/app",
            "http://127.0.0.1:8001/app?z",
            Some("https://f/app?z"),
        ),
        (
            MEMBER,
            "/back",
            "https://f/front",
            "http://127.0.0.1:8001/back/x",
            Some("https://f/front/x"),
        ),
        (
            MEMBER,
            "/app/",
            "https://f/",
            "http://127.0.0.1:8001/app/x",
            Some("https://f/x"),
        ),
        // Scheme and host compare case-insensitively, the path case-sensitively.
        (
            MEMBER,
            "/app",
            "https://f/app",
            "HTTP://127.0.0.1:8001/app/x",
            Some("https://f/app/x"),
        ),
        (
            MEMBER,
            "/app",
            "https://f/app",
            "http://127.0.0.1:8001/App/x",
            None,
        ),
        // Member URL with a base path and a trailing '/'.
        (
            "http://h:1/base/",
            "/app",
            "https://f/app",
            "http://h:1/base/app/x",
            Some("https://f/app/x"),
        ),
        // A relative result when the front base has no origin.
        (
            MEMBER,
            "/app",
            "/app",
            "http://127.0.0.1:8001/app/x",
            Some("/app/x"),
        ),
        (MEMBER, "", "", "http://127.0.0.1:8001", Some("/")),
        // Percent-encoding kept.
        (
            MEMBER,
            "",
            "https://f",
            "http://127.0.0.1:8001/a%20b",
            Some("https://f/a%20b"),
        ),
        // No match: other hosts, other ports, relative values, other paths.
        (MEMBER, "", "https://f", "http://127.0.0.2:8001/x", None),
        (MEMBER, "", "https://f", "https://127.0.0.1:8001/x", None),
        (MEMBER, "/app", "https://f/app", "/app/x", None),
        (MEMBER, "/app", "https://f/app", "app/x", None),
        (MEMBER, "/app", "https://f/app", "", None),
        (
            MEMBER,
            "/app",
            "https://f/app",
            "http://127.0.0.1:8001/other",
            None,
        ),
        (
            MEMBER,
            "/app",
            "https://f/app",
            "http://127.0.0.1:8001",
            None,
        ),
        ("", "", "https://f", "http://127.0.0.1:8001/x", None),
    ];
    for (member, backend, front, value, expected) in cases {
        assert_eq!(
            reverse_url(value, member, backend, front).as_deref(),
            expected,
            "{value:?} with {member} {backend:?} -> {front}"
        );
    }
}

#[test]
fn differs_from_apache_member_url_must_end_at_a_boundary() {
    // Apache's plain prefix test would rewrite port 10 for the member on port 1.
    assert_eq!(
        reverse_url("http://h:10/x", "http://h:1", "", "https://f"),
        None
    );
    assert_eq!(
        reverse_url("http://h:1x/", "http://h:1", "", "https://f"),
        None
    );
    assert_eq!(
        reverse_url("http://h:1#top", "http://h:1", "", "https://f"),
        Some("https://f#top".to_owned())
    );
}

#[test]
fn differs_from_apache_backend_prefix_must_end_at_a_segment() {
    // Apache turns this into "/frontup", which its ProxyPass "/front" would not match.
    assert_eq!(
        reverse_url("http://h/backup", "http://h", "/back", "/front"),
        None
    );
    assert_eq!(
        reverse_url("http://h/back/up", "http://h", "/back", "/front"),
        Some("/front/up".to_owned())
    );
}

#[test]
fn differs_from_apache_no_double_slash_after_front_base() {
    // ProxyPassReverse "/" "balancer://x/app": Apache would give "//x".
    let r = ProxyPassReverse::new("/", "balancer://x/app").unwrap();
    assert_eq!(
        r.reverse_url("http://h/app/x", "http://h", "https://f"),
        Some("https://f/x".to_owned())
    );
}

#[test]
fn differs_from_apache_member_url_trailing_slash_ignored() {
    // Without a backend path Apache compares "http://h/" whole and gives "/testx".
    let r = ProxyPassReverse::new("/test", "balancer://x").unwrap();
    assert_eq!(
        r.reverse_url("http://h/x", "http://h/", ""),
        Some("/test/x".to_owned())
    );
    // And ProxyPass does not send "//x" for a member "http://h/".
    assert_eq!(
        map(&pass("/", "balancer://x/"), "/x", "http://h/").unwrap(),
        "http://h/x"
    );
}

#[test]
fn reverse_headers_rewrites_location_content_location_and_uri() {
    let r = pass("/app", "balancer://mycluster/app").reverse();
    let mut headers = HeaderMap::new();
    headers.insert(
        LOCATION,
        HeaderValue::from_static("http://127.0.0.1:8001/app/a"),
    );
    headers.insert(
        CONTENT_LOCATION,
        HeaderValue::from_static("http://127.0.0.1:8001/app/b"),
    );
    headers.append(
        "uri",
        HeaderValue::from_static("http://127.0.0.1:8001/app/c"),
    );
    headers.append("uri", HeaderValue::from_static("/relative"));
    headers.insert(
        "link",
        HeaderValue::from_static("http://127.0.0.1:8001/app/d"),
    );
    headers.insert(
        "refresh",
        HeaderValue::from_static("0; url=http://127.0.0.1:8001/app/e"),
    );

    let changed = r.reverse_headers(&mut headers, MEMBER, "https://www.example.com/");
    assert_eq!(changed, 3);
    assert_eq!(headers[LOCATION], "https://www.example.com/app/a");
    assert_eq!(headers[CONTENT_LOCATION], "https://www.example.com/app/b");
    assert_eq!(
        values(&headers, "uri"),
        [
            b"https://www.example.com/app/c".to_vec(),
            b"/relative".to_vec()
        ]
    );
    // Other headers are not ProxyPassReverse's business.
    assert_eq!(headers["link"], "http://127.0.0.1:8001/app/d");
    assert_eq!(headers["refresh"], "0; url=http://127.0.0.1:8001/app/e");
}

#[test]
fn reverse_headers_leaves_relative_and_foreign_locations_alone() {
    let r = pass("/", "balancer://mycluster/").reverse();
    for value in [
        "/login",
        "login",
        "https://other.example/x",
        "http://127.0.0.1:80010/x",
        "",
    ] {
        let mut headers = HeaderMap::new();
        headers.insert(LOCATION, HeaderValue::from_str(value).unwrap());
        assert_eq!(
            r.reverse_headers(&mut headers, MEMBER, "https://f"),
            0,
            "{value}"
        );
        assert_eq!(headers[LOCATION], value);
    }
}

#[test]
fn reverse_headers_never_panics_on_odd_values() {
    let odd: [&[u8]; 6] = [
        b"http://127.0.0.1:8001/\xff\xfe",
        b"\xff",
        b"http://127.0.0.1:800",
        b"http://127.0.0.1:8001\x80",
        b"   ",
        b"http://127.0.0.1:8001/a\tb",
    ];
    for value in odd {
        let mut headers = HeaderMap::new();
        headers.insert(LOCATION, HeaderValue::from_bytes(value).unwrap());
        let _ = reverse_headers(&mut headers, MEMBER, "", "https://f");
    }
    // Non-UTF-8 bytes after a matching member URL are carried over.
    let mut headers = HeaderMap::new();
    headers.insert(
        LOCATION,
        HeaderValue::from_bytes(b"http://127.0.0.1:8001/caf\xe9").unwrap(),
    );
    assert_eq!(reverse_headers(&mut headers, MEMBER, "", "https://f"), 1);
    assert_eq!(headers[LOCATION].as_bytes(), b"https://f/caf\xe9");
    // A front base that cannot be a header value leaves the value unchanged.
    let mut headers = HeaderMap::new();
    headers.insert(
        LOCATION,
        HeaderValue::from_static("http://127.0.0.1:8001/x"),
    );
    assert_eq!(reverse_headers(&mut headers, MEMBER, "", "https://f\n"), 0);
    assert_eq!(headers[LOCATION], "http://127.0.0.1:8001/x");
}

#[test]
fn reverse_from_proxy_pass_keeps_the_arguments() {
    let p = pass("/app", "balancer://MyCluster/back");
    let r = p.reverse();
    assert_eq!(
        r,
        ProxyPassReverse::new("/app", "balancer://mycluster/back").unwrap()
    );
    assert_eq!(r.front_prefix(), "/app");
    assert_eq!(r.balancer_name(), "balancer://mycluster");
    assert_eq!(r.backend_path(), "/back");
    // ProxyPassReverse accepts a backend without a path after "/", as Apache does.
    let r = ProxyPassReverse::new("/", "balancer://x").unwrap();
    assert_eq!(
        r.reverse_url("http://h/a", "http://h", "https://f"),
        Some("https://f/a".to_owned())
    );
    assert!(ProxyPassReverse::new("x", "balancer://x").is_err());
    // A plain URL is a line of its own (Apache's `ProxyPassReverse "/" "http://x/"`); other
    // schemes are refused.
    let plain = ProxyPassReverse::new("/", "http://x/").unwrap();
    assert_eq!((plain.url(), plain.balancer_name()), (Some("http://x"), ""));
    assert_eq!(
        plain
            .reverse_url("http://x/a?b", "http://member", "https://f")
            .as_deref(),
        Some("https://f/a?b"),
        "the line's URL, not the member's, is what is rewritten"
    );
    assert_eq!(
        plain.reverse_url("http://member/a", "http://member", "https://f"),
        None
    );
    assert!(ProxyPassReverse::new("/", "ftp://x").is_err());
    assert!(ProxyPassReverse::new("/", "x").is_err());
}

// ===== hop-by-hop headers =====

/// The hop-by-hop headers, spelled out independently of the implementation.
const HOP_NAMES: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

#[test]
fn strip_hop_by_hop_removes_fixed_list_and_connection_tokens() {
    let mut headers = HeaderMap::new();
    for name in HOP_NAMES {
        headers.append(name, HeaderValue::from_static("x"));
    }
    headers.insert(
        CONNECTION,
        HeaderValue::from_static("Keep-Alive, X-Custom ,x-other"),
    );
    headers.append(
        CONNECTION,
        HeaderValue::from_static("x-third x-fourth,,close"),
    );
    for name in [
        "x-custom", "x-other", "x-third", "x-fourth", "x-kept", "accept",
    ] {
        headers.append(name, HeaderValue::from_static("1"));
    }
    strip_hop_by_hop(&mut headers);
    let left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
    assert_eq!(left, ["x-kept", "accept"]);
}

#[test]
fn strip_hop_by_hop_ignores_odd_connection_values() {
    let mut headers = HeaderMap::new();
    headers.insert(
        CONNECTION,
        HeaderValue::from_bytes(b"\xff\xfe, x-a, b@d, ").unwrap(),
    );
    headers.insert("x-a", HeaderValue::from_static("1"));
    headers.insert("x-b", HeaderValue::from_static("1"));
    strip_hop_by_hop(&mut headers);
    assert!(!headers.contains_key(CONNECTION) && !headers.contains_key("x-a"));
    assert!(headers.contains_key("x-b"));
}

/// The plain definition: remove every header a `Connection` value names, then the fixed list.
fn strip_reference(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(|v| {
            v.as_bytes()
                .split(|b| *b == b',' || b.is_ascii_whitespace())
        })
        .filter_map(|t| HeaderName::from_bytes(t).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_NAMES {
        headers.remove(name);
    }
}

proptest::proptest! {
    #[test]
    fn strip_hop_by_hop_matches_the_plain_definition(
        names in proptest::collection::vec(
            proptest::sample::select(vec![
                "connection", "keep-alive", "te", "upgrade", "trailer", "proxy-connection",
                "transfer-encoding", "x-a", "x-b", "accept", "host",
            ]),
            0..8,
        ),
        connection in proptest::collection::vec(
            proptest::sample::select(vec![
                "Keep-Alive", "close", "x-a", "X-B", "TE", "upgrade", "", " ", ",", "b@d",
                "Proxy-Connection", "host",
            ]),
            0..5,
        ),
    ) {
        let mut headers = HeaderMap::new();
        for name in &names {
            headers.append(*name, HeaderValue::from_static("v"));
        }
        if !connection.is_empty() {
            let value = connection.join(", ");
            headers.append(CONNECTION, HeaderValue::from_str(&value).expect("visible ASCII"));
        }
        let mut expected = headers.clone();
        strip_reference(&mut expected);
        strip_hop_by_hop(&mut headers);
        proptest::prop_assert_eq!(headers, expected);
    }
}

#[test]
fn is_hop_by_hop_names() {
    for name in [CONNECTION, TE, TRANSFER_ENCODING, UPGRADE] {
        assert!(is_hop_by_hop(&name), "{name}");
    }
    assert!(is_hop_by_hop(&HeaderName::from_static("keep-alive")));
    assert!(!is_hop_by_hop(&HOST));
    assert!(!is_hop_by_hop(&HeaderName::from_static("x-forwarded-for")));
}

// ===== prepare_request_headers =====

fn request(host: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(host) = host {
        headers.insert(HOST, HeaderValue::from_str(host).unwrap());
    }
    headers.insert("accept", HeaderValue::from_static("*/*"));
    headers
}

#[test]
fn defaults_are_apache_defaults() {
    let opts = ForwardedHeaders::default();
    assert_eq!(opts, ForwardedHeaders::new());
    assert!(!opts.preserve_host());
    assert!(opts.add_headers());
    assert_eq!(opts.server_name(), None);

    let mut headers = request(Some("www.example.com"));
    prepare_request_headers(&mut headers, &opts, ip("192.0.2.1"), "127.0.0.1:8001");
    assert_eq!(headers[HOST], "127.0.0.1:8001");
    assert_eq!(headers["x-forwarded-for"], "192.0.2.1");
    assert_eq!(headers["x-forwarded-host"], "www.example.com");
    assert!(!headers.contains_key("x-forwarded-server"));
    assert_eq!(headers["accept"], "*/*");
}

#[test]
fn host_follows_preserve_host() {
    let cases = [
        // (preserve_host, server name, client Host, member authority, expected Host)
        (
            false,
            None,
            Some("www.example.com"),
            "127.0.0.1:8001",
            Some("127.0.0.1:8001"),
        ),
        (false, None, None, "127.0.0.1:8001", Some("127.0.0.1:8001")),
        // Apache leaves out port 80, and userinfo never goes into Host.
        (false, None, Some("f"), "backend:80", Some("backend")),
        (false, None, Some("f"), "[::1]:80", Some("[::1]")),
        (false, None, Some("f"), "backend:8080", Some("backend:8080")),
        (
            false,
            None,
            Some("f"),
            "user:pw@backend:8081",
            Some("backend:8081"),
        ),
        (false, None, Some("f"), "bad host", None),
        (false, None, Some("f"), "", None),
        (
            true,
            None,
            Some("www.example.com"),
            "127.0.0.1:8001",
            Some("www.example.com"),
        ),
        (true, Some("proxy1"), None, "127.0.0.1:8001", Some("proxy1")),
        (true, None, None, "127.0.0.1:8001", Some("127.0.0.1:8001")),
    ];
    for (preserve, server, client_host, member, expected) in cases {
        let mut opts = ForwardedHeaders::new().with_preserve_host(preserve);
        if let Some(server) = server {
            opts = opts.with_server_name(server);
        }
        let mut headers = request(client_host);
        prepare_request_headers(&mut headers, &opts, None, member);
        let host = headers.get(HOST).map(|h| h.to_str().unwrap());
        assert_eq!(
            host, expected,
            "{preserve} {server:?} {client_host:?} {member}"
        );
        assert_eq!(
            headers.get_all(HOST).iter().count(),
            usize::from(expected.is_some())
        );
    }
}

#[test]
fn x_forwarded_for_appends_to_existing_values() {
    let opts = ForwardedHeaders::default();
    let cases: [(&[&str], Option<&str>, Option<&str>); 6] = [
        (&[], Some("192.0.2.1"), Some("192.0.2.1")),
        (
            &["203.0.113.9"],
            Some("192.0.2.1"),
            Some("203.0.113.9, 192.0.2.1"),
        ),
        (
            &["10.0.0.1, 10.0.0.2", "10.0.0.3"],
            Some("::1"),
            Some("10.0.0.1, 10.0.0.2, 10.0.0.3, ::1"),
        ),
        (&[" "], Some("192.0.2.1"), Some("192.0.2.1")),
        (&["203.0.113.9"], None, Some("203.0.113.9")),
        (&[], None, None),
    ];
    for (existing, client, expected) in cases {
        let mut headers = request(Some("f"));
        for value in existing {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        prepare_request_headers(&mut headers, &opts, client.and_then(ip), "m:1");
        let got: Vec<Vec<u8>> = values(&headers, "x-forwarded-for");
        let expected: Vec<Vec<u8>> = expected.iter().map(|e| e.as_bytes().to_vec()).collect();
        assert_eq!(got, expected, "{existing:?} + {client:?}");
    }
}

#[test]
fn x_forwarded_host_and_server_append() {
    let opts = ForwardedHeaders::new().with_server_name("proxy1.example.com");
    let mut headers = request(Some("www.example.com"));
    headers.insert(
        "x-forwarded-host",
        HeaderValue::from_static("edge.example.com"),
    );
    headers.insert("x-forwarded-server", HeaderValue::from_static("edge1"));
    prepare_request_headers(&mut headers, &opts, ip("192.0.2.1"), "m:1");
    assert_eq!(
        headers["x-forwarded-host"],
        "edge.example.com, www.example.com"
    );
    assert_eq!(headers["x-forwarded-server"], "edge1, proxy1.example.com");
}

#[test]
fn add_headers_off_adds_nothing() {
    let opts = ForwardedHeaders::new()
        .with_add_headers(false)
        .with_server_name("proxy1");
    let mut headers = request(Some("www.example.com"));
    prepare_request_headers(&mut headers, &opts, ip("192.0.2.1"), "m:1");
    for name in ["x-forwarded-for", "x-forwarded-host", "x-forwarded-server"] {
        assert!(!headers.contains_key(name), "{name}");
    }
    assert_eq!(headers[HOST], "m:1");
}

#[test]
fn invalid_server_name_is_not_sent() {
    let opts = ForwardedHeaders::new()
        .with_preserve_host(true)
        .with_server_name("bad\nname");
    let mut headers = request(None);
    prepare_request_headers(&mut headers, &opts, None, "m:1");
    assert!(!headers.contains_key("x-forwarded-server"));
    assert_eq!(headers[HOST], "m:1");
}

#[test]
fn prepare_strips_hop_by_hop_before_adding() {
    let opts = ForwardedHeaders::new().with_preserve_host(true);
    let mut headers = request(Some("www.example.com"));
    // A client naming Host and X-Forwarded-For in Connection cannot drop the proxy's own.
    headers.insert(
        CONNECTION,
        HeaderValue::from_static("host, x-forwarded-for, x-secret, upgrade"),
    );
    headers.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
    headers.insert("x-secret", HeaderValue::from_static("1"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(TE, HeaderValue::from_static("trailers"));
    headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    prepare_request_headers(&mut headers, &opts, ip("192.0.2.1"), "m:1");
    assert_eq!(headers[HOST], "www.example.com");
    assert_eq!(headers["x-forwarded-for"], "192.0.2.1");
    assert_eq!(headers["x-forwarded-host"], "www.example.com");
    for name in ["connection", "x-secret", "upgrade", "te", "keep-alive"] {
        assert!(!headers.contains_key(name), "{name}");
    }
}

#[test]
fn prepare_never_panics_on_non_utf8_values() {
    let opts = ForwardedHeaders::new().with_server_name("p");
    let mut headers = HeaderMap::new();
    headers.insert(HOST, HeaderValue::from_bytes(b"h\xe9te").unwrap());
    headers.insert(
        "x-forwarded-for",
        HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
    );
    headers.insert(
        "x-forwarded-host",
        HeaderValue::from_bytes(b"\x80").unwrap(),
    );
    headers.insert(CONNECTION, HeaderValue::from_bytes(b"\xff, x-a").unwrap());
    prepare_request_headers(&mut headers, &opts, ip("192.0.2.1"), "m:1");
    assert_eq!(
        headers["x-forwarded-for"].as_bytes(),
        b"\xff\xfe, 192.0.2.1"
    );
    assert_eq!(headers["x-forwarded-host"].as_bytes(), b"\x80, h\xe9te");
    assert_eq!(headers[HOST], "m:1");

    let opts = opts.with_preserve_host(true);
    let mut headers = HeaderMap::new();
    headers.insert(HOST, HeaderValue::from_bytes(b"h\xe9te").unwrap());
    prepare_request_headers(&mut headers, &opts, None, "m:1");
    assert_eq!(headers[HOST].as_bytes(), b"h\xe9te");
}

// ===== internals =====

#[test]
fn dot_segments_are_recognised() {
    let cases = [
        (".", Some(1)),
        ("..", Some(2)),
        ("%2e", Some(1)),
        ("%2E%2e", Some(2)),
        (".%2E", Some(2)),
        ("...", None),
        ("", None),
        ("a", None),
        (".a", None),
        ("%2", None),
        ("%2f", None),
    ];
    for (segment, expected) in cases {
        assert_eq!(mapping::dot_segment(segment), expected, "{segment:?}");
    }
}

#[test]
fn normalize_path_removes_dot_segments() {
    let cases = [
        ("/a/b", Some("/a/b")),
        ("/a/./b", Some("/a/b")),
        ("/a/b/../c", Some("/a/c")),
        ("/a/b/..", Some("/a/")),
        ("/a/b/.", Some("/a/b/")),
        ("/./", Some("/")),
        ("/..", None),
        ("/a/../../b", None),
        ("/a//../b", Some("/a/b")),
        ("*", Some("*")),
        ("", Some("")),
    ];
    for (path, expected) in cases {
        assert_eq!(
            mapping::normalize_path(path).as_deref(),
            expected,
            "{path:?}"
        );
    }
}

// ===== ProxyPass::matches_request, forward_path, nocanon =====

#[test]
fn forward_path_maps_the_matched_path_and_encodes_it() {
    use super::{EncodedSlashes, RequestPath};
    let cases = [
        ("/", "balancer://x/", "/a%20b/./c", Some("/a%20b/c")),
        (
            "/app",
            "balancer://x/app",
            "/%61pp/%c3%a9",
            Some("/app/%C3%A9"),
        ),
        ("/app", "balancer://x/v2", "/app/x/../y", Some("/v2/y")),
        ("/app", "balancer://x/v2", "/app", Some("/v2")),
        ("/test", "balancer://x", "/test/y", Some("/y")),
        ("/app/", "balancer://x/app", "/app/y", Some("/appy")),
        ("/app", "balancer://x/app/", "/app/y", Some("/app//y")),
        ("/app", "balancer://x/app", "/apple", None),
        ("/app", "balancer://x/app", "/x/../apple", None),
        ("/private", "balancer://x/p", "/priv%61te/%7e", Some("/p/~")),
    ];
    for (front, backend, sent, expected) in cases {
        let p = pass(front, backend);
        let path = RequestPath::parse(sent).unwrap();
        assert_eq!(p.forward_path(&path).as_deref(), expected, "{front} {sent}");
        assert_eq!(
            p.matches_request(&path),
            expected.is_some(),
            "{front} {sent}"
        );
    }
    // NoDecode: the kept `%2F` is not a separator and is sent as it came.
    let p = pass("/a", "balancer://x/b");
    let path = RequestPath::parse_with("/a/x%2Fy", EncodedSlashes::Keep).unwrap();
    assert_eq!(p.forward_path(&path).as_deref(), Some("/b/x%2Fy"));
    let path = RequestPath::parse_with("/a%2Fx", EncodedSlashes::Keep).unwrap();
    assert!(!p.matches_request(&path));
}

#[test]
fn nocanon_sends_the_rest_as_sent_unless_the_raw_path_matches_otherwise() {
    use super::RequestPath;
    let p = pass("/app", "balancer://x/v2").with_nocanon(true);
    assert!(p.is_nocanon());
    assert_eq!(
        p.to_string(),
        r#"ProxyPass "/app" "balancer://x/v2" nocanon"#
    );
    for (sent, expected) in [
        ("/app/a%2cb/./c", "/v2/a%2cb/./c"),
        ("/app", "/v2"),
        // The raw path does not match `/app` over the same length: canonical form.
        ("/%61pp/a%2cb", "/v2/a,b"),
        ("//app/a%2cb", "/v2/a,b"),
        ("/x/../app/a%2cb", "/v2/a,b"),
    ] {
        let path = RequestPath::parse(sent).unwrap();
        assert_eq!(p.forward_path(&path).as_deref(), Some(expected), "{sent}");
    }
    let same = pass("/", "balancer://x/").with_nocanon(true);
    let path = RequestPath::parse("/a%7e/./b").unwrap();
    assert!(matches!(
        same.forward_path(&path),
        Some(std::borrow::Cow::Borrowed("/a%7e/./b"))
    ));
}

/// `TE` goes as a hop-by-hop header, except that a `TE` naming `trailers` comes back as
/// `TE: trailers`, the one value HTTP/2 allows (gRPC needs it on the way to its member).
#[test]
fn forward_request_keeps_te_trailers_only() {
    let cases: [(&[&str], Option<&str>); 5] = [
        (&["trailers"], Some("trailers")),
        (&["deflate, Trailers"], Some("trailers")),
        (&["gzip", "trailers;q=1"], None),
        (&["gzip"], None),
        (&[], None),
    ];
    for (sent, kept) in cases {
        let mut builder = http::Request::get("/");
        for value in sent {
            builder = builder.header(TE, *value);
        }
        let mut request = builder.body(()).expect("a request");
        forward_request(&mut request, &ForwardedHeaders::new());
        let got: Vec<_> = request.headers().get_all(TE).iter().collect();
        match kept {
            Some(value) => assert_eq!(got, [value], "{sent:?}"),
            None => assert!(got.is_empty(), "{sent:?}: {got:?}"),
        }
    }
}
