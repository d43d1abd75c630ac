//! The parameter names Apache knows, validation of the ones the core does not model, and
//! "did you mean" suggestions.

use std::time::Duration;

/// Worker parameters the core's [`MemberParams`](proxy_balancer_core::MemberParams) models.
pub const CORE_MEMBER_KEYS: &[&str] = &[
    "loadfactor",
    "lbset",
    "route",
    "redirect",
    "retry",
    "status",
    "connectiontimeout",
    "timeout",
    "max",
    "ttl",
    "disablereuse",
    "enablereuse",
    "keepalive",
    // Beyond Apache (registry: proxy-balancer's own).
    "slowstart",
];

/// The health-check parameters of mod_proxy_hcheck.
pub const HC_KEYS: &[&str] = &[
    "hcmethod",
    "hcinterval",
    "hcpasses",
    "hcfails",
    "hcuri",
    "hctemplate",
    "hcexpr",
];

/// Apache's other worker parameters: validated and kept on the member; what the proxy does
/// with each (applied, refused, reported as not applied) is in
/// [`registry`](crate::registry).
pub const OTHER_WORKER_KEYS: &[&str] = &[
    "ping",
    "acquire",
    "min",
    "smax",
    "flushpackets",
    "flushwait",
    "iobuffersize",
    "receivebuffersize",
    "responsefieldsize",
    "addressttl",
    "secret",
    "upgrade",
    "mapping",
    "flusher",
];

/// Balancer parameters (`ProxySet balancer://…`, `ProxyPass … balancer://…`).
pub const BALANCER_KEYS: &[&str] = &[
    "lbmethod",
    "maxattempts",
    "nofailover",
    "stickysession",
    "stickysessionsep",
    "scolonpathdelim",
    "timeout",
    "failonstatus",
    "failontimeout",
    "nonce",
    "growth",
    "forcerecovery",
    // Beyond Apache (registry: proxy-balancer's own).
    "hashkey",
    "hashring",
    "ejectconsecutive",
    "ejectsuccessrate",
    "ejectwindow",
    "ejectminrequests",
    "ejecttime",
    "ejectmaxtime",
    "ejectmax",
    "panic",
    "retrybudget",
    "retrybudgetmin",
    "retrybudgetwindow",
    "ewmadecay",
];

/// Names operators write for a parameter that has another name; edit distance misses these.
const ALIASES: &[(&str, &str)] = &[
    ("hcpath", "hcuri"),
    ("hcurl", "hcuri"),
    ("hcurl_path", "hcuri"),
    ("hccheck", "hcmethod"),
    ("hcinterval_ms", "hcinterval"),
    ("weight", "loadfactor"),
    ("lbfactor", "loadfactor"),
    ("sticky", "stickysession"),
    ("stickycookie", "stickysession"),
    ("connecttimeout", "connectiontimeout"),
    ("retries", "maxattempts"),
];

/// Whether `key` (lower-case) is any worker parameter Apache accepts on a `BalancerMember`.
pub(crate) fn is_worker_key(key: &str) -> bool {
    CORE_MEMBER_KEYS.contains(&key) || HC_KEYS.contains(&key) || OTHER_WORKER_KEYS.contains(&key)
}

/// The closest known name to `word` among `candidates`, for a "did you mean".
///
/// Known confusions (`hcpath` for `hcuri`) come first; otherwise the candidate at the
/// smallest edit distance, if it is at most 2 (or a third of the word for long words).
///
/// ```
/// use proxy_balancer_apache_config::keys::{did_you_mean, HC_KEYS};
///
/// assert_eq!(did_you_mean("hcpath", HC_KEYS), Some("hcuri"));
/// assert_eq!(did_you_mean("hcintervall", HC_KEYS), Some("hcinterval"));
/// assert_eq!(did_you_mean("colour", HC_KEYS), None);
/// ```
#[must_use]
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    if let Some((_, to)) = ALIASES.iter().find(|(from, _)| *from == lower) {
        if let Some(c) = candidates.iter().find(|c| *c == to) {
            return Some(c);
        }
    }
    // Long inputs cannot be near a short name; skip them to keep the cost bounded.
    if lower.len() > 64 {
        return None;
    }
    let len = lower.chars().count();
    let limit = 2.max(len / 3);
    candidates
        .iter()
        // The distance is at least the difference in length: skip far ones cheaply.
        .filter(|c| c.len().abs_diff(len) <= limit)
        .map(|c| (edit_distance(&lower, &c.to_ascii_lowercase()), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// An Apache time value (`ap_timeout_parameter_parse`): digits and an optional unit `ms`,
/// `s`, `mi` or `h`; without a unit, `default_ms` says whether the number is milliseconds
/// (`acquire`) or seconds (`ping`, `timeout`).
///
/// ```
/// use std::time::Duration;
/// use proxy_balancer_apache_config::keys::parse_time;
///
/// assert_eq!(parse_time("500", true), Some(Duration::from_millis(500)));
/// assert_eq!(parse_time("500ms", false), Some(Duration::from_millis(500)));
/// assert_eq!(parse_time("2", false), Some(Duration::from_secs(2)));
/// assert_eq!(parse_time("2x", false), None);
/// ```
#[must_use]
pub fn parse_time(value: &str, default_ms: bool) -> Option<Duration> {
    let v = value.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let unit = unit.to_ascii_lowercase();
    match unit.as_str() {
        "" if default_ms => Some(Duration::from_millis(n)),
        "" | "s" => Some(Duration::from_secs(n)),
        "ms" => Some(Duration::from_millis(n)),
        "mi" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

fn on_off(value: &str) -> bool {
    value.eq_ignore_ascii_case("on") || value.eq_ignore_ascii_case("off")
}

/// Checks a health-check or other non-core worker parameter (lower-case `key`).
/// `Err` carries the reason; `hctemplate`/`hcexpr` references are checked by the parser.
pub(crate) fn check_extra(key: &str, value: &str) -> Result<(), String> {
    let v = value.trim();
    let int = |min: i64, max: i64, what: &str| match v.parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(()),
        _ => Err(what.to_owned()),
    };
    let short = |what: &str| {
        if v.chars().count() < 64 {
            Ok(())
        } else {
            Err(format!("{what} must be shorter than 64 characters"))
        }
    };
    let non_empty = || {
        if v.is_empty() {
            Err("must not be empty".to_owned())
        } else {
            Ok(())
        }
    };
    match key {
        // The health-check values are the core's (`HcParams::set`), so that what this
        // accepts is what the store will hold.
        "hcmethod" | "hcinterval" | "hcpasses" | "hcfails" | "hcuri" | "hcexpr" => {
            if key == "hcexpr" {
                non_empty()?;
            }
            proxy_balancer_core::HcParams::default()
                .set(key, value)
                .map_err(|e| match e {
                    proxy_balancer_core::ParamError::InvalidValue { reason, .. } => {
                        reason.into_owned()
                    }
                    other => other.to_string(),
                })
        }
        "min" | "smax" | "responsefieldsize" => {
            int(0, i64::from(i32::MAX), "must be a whole number, 0 or more")
        }
        "hctemplate" | "upgrade" | "flusher" => non_empty(),
        "secret" => short("the secret"),
        "ping" => match parse_time(v, false) {
            Some(t) if !t.is_zero() => Ok(()),
            _ => Err("must be at least 1 ms (seconds, or `ms`)".to_owned()),
        },
        "acquire" => match parse_time(v, true) {
            Some(t) if !t.is_zero() => Ok(()),
            _ => Err("must be at least 1 ms (milliseconds by default)".to_owned()),
        },
        "flushpackets" => {
            if on_off(v) || v.eq_ignore_ascii_case("auto") {
                Ok(())
            } else {
                Err("must be on, off or auto".to_owned())
            }
        }
        "flushwait" => int(0, 1000, "must be from 0 to 1000 (ms)"),
        "iobuffersize" | "receivebuffersize" => match v.parse::<i64>() {
            Ok(0) => Ok(()),
            Ok(n) if (512..=i64::from(i32::MAX)).contains(&n) => Ok(()),
            _ => Err("must be 0 or at least 512".to_owned()),
        },
        "addressttl" => int(-1, i64::from(i32::MAX), "must be -1 or whole seconds"),
        "mapping" => {
            if v.eq_ignore_ascii_case("encoded") || v.eq_ignore_ascii_case("servlet") {
                Ok(())
            } else {
                Err("must be encoded or servlet".to_owned())
            }
        }
        _ => Err("unknown parameter".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let all: Vec<&str> = CORE_MEMBER_KEYS
            .iter()
            .chain(HC_KEYS)
            .chain(OTHER_WORKER_KEYS)
            .copied()
            .collect();
        assert_eq!(did_you_mean("hcpath", &all), Some("hcuri"));
        assert_eq!(did_you_mean("loadfacter", &all), Some("loadfactor"));
        assert_eq!(did_you_mean("LOADFACTR", &all), Some("loadfactor"));
        assert_eq!(
            did_you_mean("stickysesion", BALANCER_KEYS),
            Some("stickysession")
        );
        assert_eq!(did_you_mean("zzzzzzzz", &all), None);
        assert_eq!(did_you_mean(&"x".repeat(10_000), &all), None);
    }

    #[test]
    fn extras() {
        assert!(check_extra("hcinterval", "200ms").is_ok());
        assert!(check_extra("hcinterval", "99ms").is_err());
        assert!(check_extra("hcinterval", "5").is_ok());
        assert!(check_extra("hcmethod", "get11").is_ok());
        assert!(check_extra("hcmethod", "POST").is_err());
        assert!(check_extra("hcuri", &"u".repeat(64)).is_err());
        assert!(check_extra("hcuri", &"u".repeat(63)).is_ok());
        assert!(check_extra("hcinterval", "1mi").is_ok());
        assert!(check_extra("hcpasses", "-1").is_err());
        assert!(check_extra("hcexpr", "").is_err());
        assert!(check_extra("hcexpr", &"e".repeat(16)).is_err());
        assert!(check_extra("iobuffersize", "100").is_err());
        assert!(check_extra("iobuffersize", "0").is_ok());
        assert!(check_extra("flushwait", "1001").is_err());
        assert!(check_extra("addressttl", "-1").is_ok());
        assert!(check_extra("addressttl", "-2").is_err());
        assert!(check_extra("acquire", "0").is_err());
        assert!(check_extra("mapping", "servlet").is_ok());
        assert!(check_extra("flushpackets", "Auto").is_ok());
    }
}
