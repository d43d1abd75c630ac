//! What the renderers show of a fleet's shared store: the link's status (a banner on the
//! page while it is down) and each member's last change.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::shared::{ChangeRecord, SharedEdits, SharedStatus};

use super::{esc, json_opt_str, json_str, prom_label, BalancerView};

/// `2026-12-05T00:10:00Z`: a time as RFC 3339 in UTC, to the second (`-` before 1970).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let Ok(since) = t.duration_since(UNIX_EPOCH) else {
        return "-".to_owned();
    };
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Seconds since the Unix epoch (0 before it).
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A change as one line of text: `status, loadfactor by alice@10.0.0.5 at 2026-… (rev 42;
/// lapses 2026-…)`.
pub(crate) fn change_text(c: &ChangeRecord) -> String {
    let what = if c.changed.is_empty() {
        "change".to_owned()
    } else {
        c.changed.join(", ")
    };
    let mut out = format!(
        "{what} by {} at {} (revision {})",
        c.by,
        rfc3339(c.at),
        c.revision
    );
    if let Some(expires) = c.expires {
        let _ = write!(out, "; lapses {}", rfc3339(expires));
    }
    out
}

/// The page's line about the shared store, and a banner while it cannot be reached.
pub(crate) fn html_status(o: &mut String, shared: &dyn SharedEdits) {
    let s = shared.status();
    if !s.connected {
        let _ = writeln!(
            o,
            "<div id=\"shared-down\" role=\"alert\" style=\"border: 2px solid #b00; background-color: #fee; padding: 0.5em;\">\
             <strong>The shared store is unreachable (since {}): edits are refused; this instance serves with the state it last saw (revision {}).</strong>{}</div>",
            esc(&rfc3339(s.since)),
            s.revision,
            s.last_error
                .as_deref()
                .map(|e| format!("<br>Last error: {}", esc(e)))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(
        o,
        "<dl id=\"shared\"><dt>Shared edits: {} (instance {}): {} since {}, revision {}{}</dt></dl>",
        esc(&s.backend),
        esc(&s.instance),
        if s.connected { "connected" } else { "disconnected" },
        esc(&rfc3339(s.since)),
        s.revision,
        match (&s.last_error, s.connected) {
            (Some(e), true) => format!(", last error: {}", esc(e)),
            _ => String::new(),
        }
    );
}

/// A balancer's last change of its own settings, under its table.
pub(crate) fn html_balancer_change(o: &mut String, shared: &dyn SharedEdits, b: &BalancerView<'_>) {
    if let Some(c) = shared.last_change(b.short_name(), None) {
        let _ = writeln!(
            o,
            "<p>Last change of the balancer's settings: {}</p>",
            esc(&change_text(&c))
        );
    }
}

/// `"shared":null|{…}` (without the key).
pub(crate) fn json_status(shared: Option<&dyn SharedEdits>) -> String {
    let Some(shared) = shared else {
        return "null".to_owned();
    };
    let s: SharedStatus = shared.status();
    format!(
        "{{\"backend\":{},\"instance\":{},\"connected\":{},\"since\":{},\"revision\":{},\"last_error\":{}}}",
        json_str(&s.backend),
        json_str(&s.instance),
        s.connected,
        json_str(&rfc3339(s.since)),
        s.revision,
        json_opt_str(s.last_error.as_deref()),
    )
}

/// A change record as JSON: `{"by":…,"at":…,"changed":[…],"expires":null|…,"revision":N}`.
pub(crate) fn json_change(c: Option<&ChangeRecord>) -> String {
    let Some(c) = c else {
        return "null".to_owned();
    };
    let changed: Vec<String> = c.changed.iter().map(|x| json_str(x)).collect();
    format!(
        "{{\"by\":{},\"at\":{},\"changed\":[{}],\"expires\":{},\"revision\":{}}}",
        json_str(&c.by),
        json_str(&rfc3339(c.at)),
        changed.join(","),
        c.expires
            .map_or_else(|| "null".to_owned(), |e| json_str(&rfc3339(e))),
        c.revision
    )
}

/// The shared store's metrics: connected, revision, since.
pub(crate) fn prometheus(o: &mut String, shared: &dyn SharedEdits) {
    let s = shared.status();
    let labels = format!(
        "backend=\"{}\",instance=\"{}\"",
        prom_label(&s.backend),
        prom_label(&s.instance)
    );
    for (name, kind, help, value) in [
        (
            "proxy_balancer_shared_connected",
            "gauge",
            "1 while the shared store is reachable and watched; 0 while this instance serves with the state it last saw and refuses edits.",
            u64::from(s.connected),
        ),
        (
            "proxy_balancer_shared_revision",
            "gauge",
            "The last revision of the shared store applied on this instance.",
            s.revision,
        ),
        (
            "proxy_balancer_shared_since_seconds",
            "gauge",
            "Since when (Unix time) the link to the shared store has been as proxy_balancer_shared_connected says.",
            unix_secs(s.since),
        ),
    ] {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        let _ = writeln!(o, "{name}{{{labels}}} {value}");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn dates_are_rfc3339_utc() {
        let at = |secs| UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(rfc3339(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(at(1_796_429_445)), "2026-12-05T00:10:45Z");
        assert_eq!(rfc3339(at(4_107_542_399)), "2100-02-28T23:59:59Z");
        assert_eq!(rfc3339(UNIX_EPOCH - Duration::from_secs(1)), "-");
        assert_eq!(unix_secs(at(42)), 42);
    }

    #[test]
    fn a_change_in_words() {
        let mut c = ChangeRecord::new("alice@10.0.0.5 via a", UNIX_EPOCH, 42);
        assert_eq!(
            change_text(&c),
            "change by alice@10.0.0.5 via a at 1970-01-01T00:00:00Z (revision 42)"
        );
        c.changed = vec!["status".into(), "loadfactor".into()];
        c.expires = Some(UNIX_EPOCH + Duration::from_secs(60));
        assert_eq!(
            change_text(&c),
            "status, loadfactor by alice@10.0.0.5 via a at 1970-01-01T00:00:00Z (revision 42); lapses 1970-01-01T00:01:00Z"
        );
        assert_eq!(
            json_change(Some(&c)),
            r#"{"by":"alice@10.0.0.5 via a","at":"1970-01-01T00:00:00Z","changed":["status","loadfactor"],"expires":"1970-01-01T00:01:00Z","revision":42}"#
        );
        assert_eq!(json_change(None), "null");
    }
}
