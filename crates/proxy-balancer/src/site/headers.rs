//! mod_headers on the site's responses: the `Header` directives, filled from the
//! `BALANCER_*` values of the response's [`BalancerInfo`], and Apache's route-cookie recipe
//! recognised so that the sticky layer's [`RouteCookie`] serves it.

use http::Response;

use crate::apache_config::{Config, HeaderDirective};
use crate::balancer::BalancerInfo;
use crate::sticky_route::RouteCookie;

/// Whether a `Header` directive is Apache's documented route-cookie recipe (served by the
/// sticky layer's [`RouteCookie`]).
pub(super) fn is_route_cookie(h: &HeaderDirective) -> bool {
    h.name.eq_ignore_ascii_case("set-cookie")
        && h.env.as_deref() == Some("BALANCER_ROUTE_CHANGED")
        && h.value.contains("%{BALANCER_WORKER_ROUTE}e")
}

/// The value of one of Apache's `BALANCER_*` variables for a response; `None` when unset.
fn balancer_var<'a>(info: &'a BalancerInfo, name: &str) -> Option<&'a str> {
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
fn fill(template: &str, info: &BalancerInfo) -> String {
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
/// does not hold) is applied with its value filled.
pub(super) fn apply_headers<B>(directives: &[HeaderDirective], response: &mut Response<B>) {
    let Some(info) = response.extensions().get::<BalancerInfo>().cloned() else {
        return;
    };
    for h in directives {
        let applies = match h.env.as_deref() {
            None => true,
            Some(cond) => match cond.strip_prefix('!') {
                Some(var) => balancer_var(&info, var).is_none(),
                None => balancer_var(&info, cond).is_some(),
            },
        };
        if !applies {
            continue;
        }
        let filled = fill(&h.value, &info);
        let Ok(name) = http::HeaderName::from_bytes(h.name.as_bytes()) else {
            continue;
        };
        let headers = response.headers_mut();
        let value = match (
            h.action.as_str(),
            headers.get(&name).and_then(|v| v.to_str().ok()),
        ) {
            ("append", Some(old)) => format!("{old}, {filled}"),
            _ => filled,
        };
        let Ok(value) = http::HeaderValue::from_str(&value) else {
            continue;
        };
        if h.action == "add" {
            headers.append(name, value);
        } else {
            headers.insert(name, value);
        }
    }
}

/// The route cookie of Apache's documented recipe, if the configuration has it.
pub(super) fn route_cookie(config: &Config) -> Option<RouteCookie> {
    config.headers.iter().find_map(|h| {
        if !is_route_cookie(h) {
            return None;
        }
        let (pair, attributes) = h.value.split_once(';').unwrap_or((&h.value, ""));
        let (name, value) = pair.trim().split_once('=')?;
        if !value.contains("%{BALANCER_WORKER_ROUTE}e") {
            return None;
        }
        let mut cookie = RouteCookie::new().name(name.trim());
        for attribute in attributes.split(';') {
            if let Some((k, v)) = attribute.trim().split_once('=') {
                if k.trim().eq_ignore_ascii_case("path") {
                    cookie = cookie.path(v.trim());
                }
            }
        }
        Some(cookie)
    })
}
