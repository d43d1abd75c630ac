//! Prometheus metrics, in the text exposition format.

use std::fmt::Write as _;

use proxy_balancer_core::{LbMethodKind, Member};

use super::{flag, prom_label, HealthView, View};

/// Every status letter, in Apache's display order, then ours (`J`: ejected).
const LETTERS: [char; 9] = ['I', 'N', 'D', 'S', 'E', 'H', 'R', 'C', 'J'];

/// Metrics in the Prometheus text exposition format (version 0.0.4).
///
/// Per member, labelled `balancer` (name without `balancer://`) and `member` (its URL):
///
/// | metric | type | value |
/// | --- | --- | --- |
/// | `proxy_balancer_member_elected_total` | counter | times chosen (Apache's Elected) |
/// | `proxy_balancer_member_busy` | gauge | requests in flight (Busy) |
/// | `proxy_balancer_member_transferred_bytes_total` | counter | bytes sent to it (To) |
/// | `proxy_balancer_member_read_bytes_total` | counter | bytes read from it (From) |
/// | `proxy_balancer_member_errors_total` | counter | Apache's `retries`: times the member left the error state (a retry or a forced recovery). Not the number of failed requests. |
/// | `proxy_balancer_member_status` | gauge | 1 or 0 per `flag` label, one of `I N D S E H R C J` (`J`: ejected, beyond Apache) |
/// | `proxy_balancer_member_usable` | gauge | 1 when the member may receive requests |
/// | `proxy_balancer_member_health_up` | gauge | last health check passed (1) or failed (0); only for members with a health check that has run |
/// | `proxy_balancer_member_ejections_total` | counter | times outlier ejection ejected the member (beyond Apache) |
/// | `proxy_balancer_member_slow_start_share` | gauge | the share of its weight the member gets, 0 to 1 (1 once ramped); only for members with `slowstart` (beyond Apache) |
/// | `proxy_balancer_member_rtt_seconds` | gauge | the peak-EWMA round-trip estimate; only with `lbmethod=p2c-ewma`, once measured (beyond Apache) |
///
/// Per balancer, `proxy_balancer_unavailable_total{balancer=…}` (counter) is
/// `unavailable(name)`: the requests answered 503 because no member could take them.
/// Beyond Apache, per balancer: `proxy_balancer_retries_total` and
/// `proxy_balancer_retries_refused_total` (counters: `retry_idempotent` retries made, and
/// refused by the retry budget; with [`BalancerView::retry_budget`](super::BalancerView)),
/// `proxy_balancer_ejected_members` (gauge), `proxy_balancer_panic_picks_total` (counter:
/// picks made in panic) and `proxy_balancer_in_panic` (gauge, 1 or 0; for balancers with a
/// `panic` threshold, reckoned at [`BalancerView::now`](super::BalancerView)).
///
/// With a shared store ([`View::shared`]), labelled `backend` and `instance`:
/// `proxy_balancer_shared_connected` (gauge, 1 or 0), `proxy_balancer_shared_revision`
/// (gauge, the last revision applied here) and `proxy_balancer_shared_since_seconds` (gauge,
/// Unix time since when the link has been as it is).
///
/// ```
/// # use std::time::Instant;
/// # use proxy_balancer_core::{BalancerParams, BalancerStore, MemberParams};
/// use proxy_balancer_manager::render::{prometheus, BalancerView, View};
/// # let store = BalancerStore::new(
/// #     BalancerParams::new("web"),
/// #     [MemberParams::new("http://127.0.0.1:8001")?],
/// #     Instant::now(),
/// # )?;
/// let snapshot = store.snapshot();
/// let balancers = [BalancerView::new(&snapshot, "")];
/// let view = View { balancers: &balancers, mount: "/bm", server: "proxy-balancer", shared: None };
/// let text = prometheus(&view, &|name| if name == "web" { 3 } else { 0 });
/// assert!(text.contains(
///     "proxy_balancer_member_status{balancer=\"web\",member=\"http://127.0.0.1:8001\",flag=\"D\"} 0\n"
/// ));
/// assert!(text.contains("proxy_balancer_unavailable_total{balancer=\"web\"} 3\n"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub fn prometheus(view: &View<'_>, unavailable: &dyn Fn(&str) -> u64) -> String {
    let mut o = String::with_capacity(4096);
    let members: Vec<Row<'_>> = view
        .balancers
        .iter()
        .flat_map(|b| {
            let bl = prom_label(b.short_name());
            b.snapshot
                .members()
                .iter()
                .map(move |m| (bl.clone(), prom_label(m.url()), m, (b.health)(m)))
        })
        .collect();
    for (name, kind, help, value) in FAMILIES {
        header(&mut o, name, kind, help);
        for (b, u, m, _) in &members {
            let _ = writeln!(o, "{name}{{balancer=\"{b}\",member=\"{u}\"}} {}", value(m));
        }
    }
    status(&mut o, &members);
    usable(&mut o, &members);
    health_up(&mut o, &members);
    selection_members(&mut o, view, &members);
    unavailable_total(&mut o, view, unavailable);
    selection_balancers(&mut o, view);
    if let Some(shared) = view.shared {
        super::shared::prometheus(&mut o, shared);
    }
    o
}

/// One member as the metrics label it: balancer label, member label, the member and its
/// health check.
type Row<'a> = (String, String, &'a Member, Option<HealthView>);

/// How a [`FAMILIES`] value is read from a member.
type Value = fn(&Member) -> u64;

/// The metric families with one plain value per member: name, type, help and value.
const FAMILIES: [(&str, &str, &str, Value); 5] = [
    (
        "proxy_balancer_member_elected_total",
        "counter",
        "Times the member was chosen for a request (Apache's Elected).",
        |m| m.state().elected(),
    ),
    (
        "proxy_balancer_member_busy",
        "gauge",
        "Requests in flight on the member (Apache's Busy).",
        |m| m.state().busy(),
    ),
    (
        "proxy_balancer_member_transferred_bytes_total",
        "counter",
        "Bytes sent to the member (Apache's To).",
        |m| m.state().transferred(),
    ),
    (
        "proxy_balancer_member_read_bytes_total",
        "counter",
        "Bytes read from the member (Apache's From).",
        |m| m.state().read(),
    ),
    (
        "proxy_balancer_member_errors_total",
        "counter",
        "Times the member left the error state by a retry or recovery (Apache's retries).",
        |m| m.state().retries(),
    ),
];

/// The `# HELP` and `# TYPE` lines of a metric family.
fn header(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// `proxy_balancer_member_status`: one sample per member and status letter.
fn status(o: &mut String, members: &[Row<'_>]) {
    let name = "proxy_balancer_member_status";
    header(
        o,
        name,
        "gauge",
        "1 when the member has the status flag (Apache's status letters I N D S E H R C, and J: ejected, beyond Apache).",
    );
    for (b, u, m, _) in members {
        let flags = m.flags();
        for letter in LETTERS {
            let _ = writeln!(
                o,
                "{name}{{balancer=\"{b}\",member=\"{u}\",flag=\"{letter}\"}} {}",
                u8::from(flags.contains(flag(letter)))
            );
        }
    }
}

/// `proxy_balancer_member_usable`.
fn usable(o: &mut String, members: &[Row<'_>]) {
    let name = "proxy_balancer_member_usable";
    header(o, name, "gauge", "1 when the member may receive requests.");
    for (b, u, m, _) in members {
        let _ = writeln!(
            o,
            "{name}{{balancer=\"{b}\",member=\"{u}\"}} {}",
            u8::from(m.is_usable())
        );
    }
}

/// `proxy_balancer_member_health_up`, only for members whose health check has run.
fn health_up(o: &mut String, members: &[Row<'_>]) {
    let name = "proxy_balancer_member_health_up";
    header(
        o,
        name,
        "gauge",
        "1 when the member's last health check passed, 0 when it failed.",
    );
    for (b, u, _, hc) in members {
        if let Some(passed) = hc.as_ref().and_then(|h| h.last_passed) {
            let _ = writeln!(
                o,
                "{name}{{balancer=\"{b}\",member=\"{u}\"}} {}",
                u8::from(passed)
            );
        }
    }
}

/// `proxy_balancer_unavailable_total`, per balancer.
fn unavailable_total(o: &mut String, view: &View<'_>, unavailable: &dyn Fn(&str) -> u64) {
    let name = "proxy_balancer_unavailable_total";
    header(
        o,
        name,
        "counter",
        "Requests the balancer answered with 503 because no member could take them.",
    );
    for b in view.balancers {
        let _ = writeln!(
            o,
            "{name}{{balancer=\"{}\"}} {}",
            prom_label(b.short_name()),
            unavailable(b.short_name())
        );
    }
}

/// The member metrics of the selection beyond Apache.
fn selection_members(o: &mut String, view: &View<'_>, members: &[Row<'_>]) {
    let name = "proxy_balancer_member_ejections_total";
    header(
        o,
        name,
        "counter",
        "Times outlier ejection ejected the member (beyond Apache).",
    );
    for (b, u, m, _) in members {
        let _ = writeln!(
            o,
            "{name}{{balancer=\"{b}\",member=\"{u}\"}} {}",
            m.state().ejections()
        );
    }
    // The time-dependent ones, per balancer view (each has its own `now`).
    let rows = || {
        view.balancers.iter().flat_map(|bv| {
            let bl = prom_label(bv.short_name());
            bv.snapshot
                .members()
                .iter()
                .map(move |m| (bv, bl.clone(), prom_label(m.url()), m))
        })
    };
    let name = "proxy_balancer_member_slow_start_share";
    header(
        o,
        name,
        "gauge",
        "The share of its weight a member with slowstart gets, 0 to 1 (beyond Apache).",
    );
    for (bv, b, u, m) in rows() {
        if m.params().slow_start.is_none() {
            continue;
        }
        if let Some(now) = bv.now {
            let share = m.slow_start_share(now).unwrap_or(1.0);
            let _ = writeln!(o, "{name}{{balancer=\"{b}\",member=\"{u}\"}} {share}");
        }
    }
    let name = "proxy_balancer_member_rtt_seconds";
    header(
        o,
        name,
        "gauge",
        "The member's peak-EWMA round-trip estimate, with lbmethod=p2c-ewma (beyond Apache).",
    );
    for (bv, b, u, m) in rows() {
        if bv.snapshot.params().lb_method != LbMethodKind::P2cEwma {
            continue;
        }
        if let Some(rtt) = bv.now.and_then(|now| m.state().rtt_estimate(now)) {
            let _ = writeln!(
                o,
                "{name}{{balancer=\"{b}\",member=\"{u}\"}} {}",
                rtt.as_secs_f64()
            );
        }
    }
}

/// The balancer metrics of the selection beyond Apache.
fn selection_balancers(o: &mut String, view: &View<'_>) {
    let per_balancer =
        |o: &mut String,
         name: &str,
         kind: &str,
         help: &str,
         value: &dyn Fn(&super::BalancerView<'_>) -> Option<u64>| {
            header(o, name, kind, help);
            for b in view.balancers {
                if let Some(v) = value(b) {
                    let _ = writeln!(
                        o,
                        "{name}{{balancer=\"{}\"}} {v}",
                        prom_label(b.short_name())
                    );
                }
            }
        };
    per_balancer(
        o,
        "proxy_balancer_retries_total",
        "counter",
        "Retries of idempotent requests made (retry_idempotent, beyond Apache).",
        &|b| b.retry_budget.map(|r| r.allowed()),
    );
    per_balancer(
        o,
        "proxy_balancer_retries_refused_total",
        "counter",
        "Retries of idempotent requests the retry budget refused (beyond Apache).",
        &|b| b.retry_budget.map(|r| r.refused()),
    );
    per_balancer(
        o,
        "proxy_balancer_ejected_members",
        "gauge",
        "Members ejected by outlier ejection now (beyond Apache).",
        &|b| Some(b.snapshot.ejected() as u64),
    );
    per_balancer(
        o,
        "proxy_balancer_panic_picks_total",
        "counter",
        "Picks made in panic, over every member (the panic threshold, beyond Apache).",
        &|b| Some(b.snapshot.panics()),
    );
    per_balancer(
        o,
        "proxy_balancer_in_panic",
        "gauge",
        "1 while the balancer is below its panic threshold (beyond Apache).",
        &|b| {
            b.snapshot.params().panic_threshold?;
            b.now.map(|now| u64::from(b.snapshot.in_panic(now)))
        },
    );
}
