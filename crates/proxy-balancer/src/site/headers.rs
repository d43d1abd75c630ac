//! mod_headers on the site's responses: the `Header` directives, filled from the
//! `BALANCER_*` values of the response's [`BalancerInfo`], and Apache's route-cookie recipe
//! recognised so that the sticky layer's [`RouteCookie`] serves it.
//!
//! As in Apache, a directive without `always` applies to the answers that went through the
//! proxy (a member's response); an answer the proxy wrote itself (503, 502, 504) gets only
//! the `always` ones, with every `BALANCER_*` value unset.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Response};

use crate::apache_config::{Config, HeaderDirective};
use crate::balancer::BalancerInfo;
use crate::sticky_route::{RouteCookie, SameSite};

/// Apache's documented route-cookie recipe as a [`RouteCookie`]:
/// `Header add Set-Cookie "NAME=.%{BALANCER_WORKER_ROUTE}e; path=/; …" env=BALANCER_ROUTE_CHANGED`,
/// with the attributes `path`, `max-age`, `secure`, `httponly` and `samesite` (any
/// case). A recipe with another attribute (`domain`, `expires`…) is not taken: it is
/// applied as the `Header` line it is, so nothing it says is lost.
fn recipe(h: &HeaderDirective) -> Option<RouteCookie> {
    if !h.name.eq_ignore_ascii_case("set-cookie")
        || h.env.as_deref() != Some("BALANCER_ROUTE_CHANGED")
        || h.action == "set"
    {
        return None;
    }
    let mut parts = h.value.split(';');
    let (name, value) = parts.next()?.trim().split_once('=')?;
    // `.%{BALANCER_WORKER_ROUTE}e`: the separator the extractor reads back, then the route.
    let route = value.trim().strip_prefix('.')?;
    if route != "%{BALANCER_WORKER_ROUTE}e" || name.trim().is_empty() {
        return None;
    }
    let mut cookie = RouteCookie::new().name(name.trim());
    for attribute in parts {
        let (key, value) = match attribute.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (attribute.trim(), None),
        };
        cookie = match (key.to_ascii_lowercase().as_str(), value) {
            ("", None) => cookie,
            ("path", Some(path)) if !path.is_empty() => cookie.path(path),
            ("max-age", Some(age)) => cookie.max_age(Duration::from_secs(age.parse().ok()?)),
            ("secure", None) => cookie.secure(true),
            ("httponly", None) => cookie.http_only(true),
            ("samesite", Some(v)) => cookie.same_site(match v.to_ascii_lowercase().as_str() {
                "strict" => SameSite::Strict,
                "lax" => SameSite::Lax,
                "none" => SameSite::None,
                _ => return None,
            }),
            _ => return None,
        };
    }
    Some(cookie)
}

/// Whether a `Header` directive is Apache's route-cookie recipe, served by the sticky
/// layer's [`RouteCookie`] instead of by [`apply_headers`].
pub(super) fn is_route_cookie(h: &HeaderDirective) -> bool {
    recipe(h).is_some()
}

/// The route cookie of Apache's documented recipe, if the configuration has it.
pub(super) fn route_cookie(config: &Config) -> Option<RouteCookie> {
    config.headers.iter().find_map(recipe)
}

/// The value of one of Apache's `BALANCER_*` variables for a response; `None` when unset.
fn balancer_var<'a>(info: Option<&'a BalancerInfo>, name: &str) -> Option<&'a str> {
    let info = info?;
    match name {
        "BALANCER_NAME" => Some(info.balancer_name()),
        "BALANCER_WORKER_NAME" => Some(info.worker_name()),
        "BALANCER_WORKER_ROUTE" => Some(info.worker_route()),
        "BALANCER_SESSION_STICKY" => info.session_sticky(),
        "BALANCER_SESSION_ROUTE" => info.session_route(),
        "BALANCER_ROUTE_CHANGED" => info.route_changed().then_some("1"),
        _ => None,
    }
}

/// Fills `%{VAR}e` references from the `BALANCER_*` values (`(null)` when unset, as Apache
/// prints them).
fn fill(template: &str, info: Option<&BalancerInfo>) -> String {
    let mut value = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("%{") {
        value.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}e") else {
            value.push_str(&rest[start..]);
            return value;
        };
        value.push_str(balancer_var(info, &after[..end]).unwrap_or("(null)"));
        rest = &after[end + 2..];
    }
    value.push_str(rest);
    value
}

/// mod_headers on the response: each directive whose `env=` condition holds (`env=!VAR`:
/// does not hold) is applied with its value filled. A value that cannot be a header (a
/// control character from a filled variable) is not set.
pub(super) fn apply_headers<B>(directives: &[HeaderDirective], response: &mut Response<B>) {
    let info = response.extensions().get::<BalancerInfo>().cloned();
    let proxied = info.is_some();
    for h in directives {
        if !proxied && !h.always {
            continue;
        }
        let applies = match h.env.as_deref() {
            None => true,
            Some(cond) => match cond.strip_prefix('!') {
                Some(var) => balancer_var(info.as_ref(), var).is_none(),
                None => balancer_var(info.as_ref(), cond).is_some(),
            },
        };
        if !applies {
            continue;
        }
        let Ok(name) = HeaderName::from_bytes(h.name.as_bytes()) else {
            continue;
        };
        let headers = response.headers_mut();
        if h.action == "unset" {
            headers.remove(&name);
            continue;
        }
        let filled = fill(&h.value, info.as_ref());
        let old = headers.get(&name).and_then(|v| v.to_str().ok());
        let value = match (h.action.as_str(), old) {
            ("append", Some(old)) => format!("{old}, {filled}"),
            // merge: appended unless the value is already one of the header's tokens.
            ("merge", Some(old)) if old.split(',').any(|t| t.trim() == filled) => continue,
            ("merge", Some(old)) => format!("{old}, {filled}"),
            ("setifempty", Some(_)) => continue,
            _ => filled,
        };
        let Ok(value) = HeaderValue::from_str(&value) else {
            continue;
        };
        if h.action == "add" {
            headers.append(name, value);
        } else {
            headers.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apache_config::parse;

    fn directive(line: &str) -> HeaderDirective {
        let config = parse(line).expect("a valid Header line");
        config.headers.into_iter().next().expect("one Header")
    }

    #[test]
    fn the_recipe_keeps_every_security_attribute() {
        let h = directive(
            r#"Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/app; Secure; HttpOnly; SameSite=Strict; Max-Age=60" env=BALANCER_ROUTE_CHANGED"#,
        );
        let cookie = recipe(&h).expect("the recipe");
        let expected = RouteCookie::new()
            .name("ROUTEID")
            .path("/app")
            .secure(true)
            .http_only(true)
            .same_site(SameSite::Strict)
            .max_age(Duration::from_secs(60));
        assert_eq!(cookie, expected);
    }

    #[test]
    fn a_recipe_with_an_attribute_we_cannot_map_stays_a_header_line() {
        for line in [
            r#"Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/; Domain=example.com" env=BALANCER_ROUTE_CHANGED"#,
            r#"Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; SameSite=Sometimes" env=BALANCER_ROUTE_CHANGED"#,
            r#"Header add Set-Cookie "ROUTEID=x%{BALANCER_WORKER_ROUTE}e" env=BALANCER_ROUTE_CHANGED"#,
            r#"Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e""#,
        ] {
            assert!(!is_route_cookie(&directive(line)), "{line}");
        }
    }

    #[test]
    fn unset_merge_and_setifempty_as_mod_headers() {
        let directives = [
            directive("Header always unset Server"),
            directive("Header always merge X-M b"),
            directive("Header always merge X-N a"),
            directive("Header always setifempty X-S new"),
            directive("Header always setifempty X-T new"),
        ];
        let mut response = Response::new(());
        let headers = response.headers_mut();
        headers.insert("server", HeaderValue::from_static("member/1"));
        headers.insert("x-m", HeaderValue::from_static("a"));
        headers.insert("x-n", HeaderValue::from_static("a, c"));
        headers.insert("x-s", HeaderValue::from_static("old"));
        apply_headers(&directives, &mut response);
        let headers = response.headers();
        assert!(headers.get("server").is_none());
        assert_eq!(headers["x-m"], "a, b");
        assert_eq!(headers["x-n"], "a, c", "a is already there");
        assert_eq!(headers["x-s"], "old");
        assert_eq!(headers["x-t"], "new");
    }

    #[test]
    fn answers_the_proxy_wrote_get_only_the_always_headers() {
        let directives = [
            directive(r#"Header always set X-Always "1""#),
            directive(r#"Header set X-Success "1""#),
            directive(r#"Header always set X-Worker "%{BALANCER_WORKER_NAME}e""#),
        ];
        let mut response = Response::new(());
        apply_headers(&directives, &mut response);
        assert_eq!(response.headers()["x-always"], "1");
        assert!(response.headers().get("x-success").is_none());
        assert_eq!(response.headers()["x-worker"], "(null)");
    }
}
