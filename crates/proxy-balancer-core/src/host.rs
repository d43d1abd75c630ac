//! The syntax of a `Host` (or a URI authority's host and port), as Apache's
//! `HttpProtocolOptions Strict` reads it.

use std::net::Ipv6Addr;

/// Whether a Host value is `host[:port]` as Apache's `HttpProtocolOptions Strict` accepts
/// it (`fix_hostname` and `strict_hostname_check`, checked against Apache 2.4): a bracketed
/// IPv6 address, or a name of letters, digits, `-`, `_` and `.` with no `..` (one trailing
/// dot allowed) that, if it is only digits and dots, is four dotted numbers without leading
/// zeros, and otherwise has a last label starting with a letter; then an optional `:` and a
/// port from 1 to 65535.
///
/// The server's admission and the balancer-manager's check of a change's `Host` both use
/// it, so that one grammar decides what names a host.
///
/// ```
/// use proxy_balancer_core::host::is_valid_host;
///
/// assert!(is_valid_host(b"example.com:8080"));
/// assert!(is_valid_host(b"[::1]"));
/// assert!(!is_valid_host(b"1.2.3"));
/// assert!(!is_valid_host(b"h:0"));
/// ```
#[must_use]
pub fn is_valid_host(value: &[u8]) -> bool {
    if let Some(literal) = value.strip_prefix(b"[") {
        let Some(end) = literal.iter().position(|&b| b == b']') else {
            return false;
        };
        let ipv6 = std::str::from_utf8(&literal[..end])
            .ok()
            .and_then(|s| s.parse::<Ipv6Addr>().ok());
        return ipv6.is_some() && optional_port(&literal[end + 1..]);
    }
    let (name, port) = match value.iter().position(|&b| b == b':') {
        Some(colon) => (&value[..colon], &value[colon..]),
        None => (value, &value[value.len()..]),
    };
    valid_name(name) && optional_port(port)
}

/// Nothing, or `:` and a port from 1 to 65535 (leading zeros allowed, as Apache's).
fn optional_port(rest: &[u8]) -> bool {
    let Some(digits) = rest.strip_prefix(b":") else {
        return rest.is_empty();
    };
    !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && (1..=u32::from(u16::MAX)).contains(&digits.iter().fold(0_u32, |port, &d| {
            port.saturating_mul(10).saturating_add(u32::from(d - b'0'))
        }))
}

fn valid_name(name: &[u8]) -> bool {
    // One trailing dot (the root) is dropped, as Apache does.
    let name = name.strip_suffix(b".").unwrap_or(name);
    if name.is_empty() || name.windows(2).any(|pair| pair == b"..") {
        return false;
    }
    if !name
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return false;
    }
    if name.iter().all(|&b| b.is_ascii_digit() || b == b'.') {
        // Dotted decimal: four numbers, none with a leading zero.
        return name.iter().filter(|&&b| b == b'.').count() == 3
            && name
                .split(|&b| b == b'.')
                .all(|part| matches!(part, [_] | [b'1'..=b'9', ..]));
    }
    // A name: its last label starts with a letter (RFC 1123 §2.1).
    match name.iter().rposition(|&b| b == b'.') {
        Some(dot) => name.get(dot + 1).is_some_and(u8::is_ascii_alphabetic),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::is_valid_host as valid_host;

    /// Each value was sent to Apache 2.4 (`HttpProtocolOptions Strict`, the default): the
    /// good ones were served, the bad ones answered 400.
    #[test]
    fn host_syntax_as_apache_strict() {
        for good in [
            "example.com",
            "EXAMPLE.com.",
            "a-b_c.example",
            "localhost:8080",
            "x:65535",
            "x:00080",
            "x:000001",
            "127.0.0.1",
            "127.0.0.1:80",
            "1.2.3.4.",
            "1.2.3.256",
            "[::1]",
            "[2001:db8::1]:443",
            "[::ffff:1.2.3.4]",
            "1.2.3.x",
            ".a",
            "a.",
            "-a",
            "_",
            "0.0.0.0",
            "a.B1",
            "a.b.",
        ] {
            assert!(valid_host(good.as_bytes()), "{good} should be valid");
        }
        for bad in [
            "",
            ".",
            "..",
            "a b",
            "x/y",
            "x\\y",
            "h:port",
            "h:",
            "h:0",
            "h:1:2",
            "h:+1",
            "h:65536",
            "h:99999999999999999999999",
            "h:-1",
            "a..b",
            "a..",
            "a,b",
            "a@b",
            "a!b",
            "a%41",
            "a.1b",
            "x.1",
            "1.2.3",
            "1.2.3.",
            ".1.2.3",
            "01.2.3.4",
            "1.02.3.4",
            "12345",
            "[::1",
            "[::1]x",
            "[::1]:x",
            "[::1]:",
            "[example.com]",
            "[v1.x]",
            "[fe80::1%25eth0]",
            "::1",
            "é.example",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad:?} should be refused");
        }
    }

    proptest! {
        #[test]
        fn host_check_never_panics(value in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = valid_host(&value);
        }

        #[test]
        fn host_shaped_input_never_panics(value in "[\\[\\]:.0-9a-fA-F_%-]{0,40}") {
            let _ = valid_host(value.as_bytes());
        }

        #[test]
        fn names_and_ports_that_fit_the_grammar_pass(
            labels in proptest::collection::vec("[a-z][a-z0-9-]{0,10}", 1..5),
            port in proptest::option::of(1..=u16::MAX),
        ) {
            let mut host = labels.join(".");
            if let Some(port) = port {
                host = format!("{host}:{port}");
            }
            prop_assert!(valid_host(host.as_bytes()), "{}", host);
        }

    }
}
