//! The `?xml=1` document, in Apache's schema.

use std::fmt::Write as _;

use proxy_balancer_core::Member;

use super::selection::{balancer_facts, member_facts, Fact};
use super::{esc, load_factor, on_off, HealthView, View};
use crate::shared::ChangeRecord;

/// The `?xml=1` document in Apache's schema (namespace `http://httpd.apache.org`).
///
/// Elements, in Apache's order: `httpd:manager` › `httpd:balancers` › `httpd:balancer` with
/// `name` (`balancer://…`), `nonce`, `stickysession` and `nofailover` (when sticky),
/// `timeout`, `maxattempts` (when set), `lbmethod`, `scolonpathdelim` (when sticky) and
/// `httpd:workers` › `httpd:worker` with `name`, `scheme`, `hostname`, `loadfactor`, `port`,
/// `min`, `smax`, `max`, `ttl`, `timeout` (when set), `keepalive` (when On), `status`
/// (Apache's label, trailing space included), `retries`, `lbstatus`, `loadfactor` (again,
/// as Apache does), `transferred`, `read`, `elected`, `route`, `redirect`, `busy`, `lbset`,
/// `disablereuse` (when On), `connectiontimeout` (ms, when set) and `retry` (seconds).
///
/// Beyond Apache, the selection's parameters that are set follow `scolonpathdelim` (or
/// `lbmethod`): `hashkey` and `hashring` (lbmethod=hash), `ewmadecay` (ms, p2c-ewma), with
/// ejection on the `eject*` parameters that are set (`ejectconsecutive`,
/// `ejectsuccessrate`, `ejectwindow` ms, `ejectminrequests`, `ejecttime` ms, `ejectmaxtime`
/// ms, `ejectmax` %) and `ejected` (members ejected now), with a panic threshold `panic`
/// (%), `inpanic` (On/Off) and `panicpicks`, then the retry budget's parameters when not
/// the default (`retrybudget`, % or `Off`; `retrybudgetmin`; `retrybudgetwindow`, ms) and,
/// with the budget in the view ([`BalancerView::retry_budget`](super::BalancerView)),
/// `retriesallowed` and `retriesrefused`. A worker's `retry` is followed by `slowstart` (ms) and, while it
/// ramps, `slowstartshare` (0 to 1); `rtt` (ms, with p2c-ewma once measured); and with
/// ejection on, `ejections` and, while ejected, `ejectedfor` (ms left).
///
/// ```
/// # use std::time::Instant;
/// # use proxy_balancer_core::{BalancerParams, BalancerStore, MemberParams};
/// use proxy_balancer_manager::render::{xml, BalancerView, View};
/// # let store = BalancerStore::new(
/// #     BalancerParams::new("web"),
/// #     [MemberParams::new("http://127.0.0.1:8001")?],
/// #     Instant::now(),
/// # )?;
/// let snapshot = store.snapshot();
/// let balancers = [BalancerView::new(&snapshot, "n0nce")];
/// let view = View { balancers: &balancers, mount: "/bm", server: "proxy-balancer", shared: None };
/// let doc = xml(&view);
/// assert!(doc.starts_with("<?xml version='1.0' encoding='UTF-8' ?>\n<httpd:manager xmlns:httpd='http://httpd.apache.org'>"));
/// assert!(doc.contains("<httpd:hostname>127.0.0.1</httpd:hostname>"));
/// assert!(doc.contains("<httpd:port>8001</httpd:port>"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Apache
///
/// `balancer_display_page` with `xml`. Differences: `httpd:nonce` follows the name (as in
/// recent 2.4 releases; the 2.4 source read for this did not print it); `error_time` (an
/// RFC 822 date) is left out because members keep a monotonic time; `min` is 0, `smax` and
/// `max` are `max=` or 0 for unlimited; `retry` is always printed; the AJP-only elements
/// (`flushpackets`, `flushwait`, `ping`) and `acquire`, `recv_buffer_size` and
/// `io_buffer_size` are never printed. Beyond Apache (which prints no health-check
/// elements), a member with a health check ends with `hcmethod`, `hcinterval` (ms),
/// `hcpasses`, `hcfails`, `hcuri` and `hcexpr` (empty when none).
/// With a shared store ([`View::shared`]), a worker with a recorded change ends with
/// `changedby`, `changedat` (RFC 3339), `changed` (comma-separated), `changerevision` and
/// `changeexpires` (when its flags lapse), and `httpd:balancers` is followed by
/// `httpd:shared` with `backend`, `instance`, `connected` (On/Off), `since`, `revision` and
/// `lasterror` (when there is one).
/// Every text value is XML-escaped (Apache escapes only some).
#[must_use]
pub fn xml(view: &View<'_>) -> String {
    let mut o = String::with_capacity(4096);
    o.push_str("<?xml version='1.0' encoding='UTF-8' ?>\n");
    o.push_str("<httpd:manager xmlns:httpd='http://httpd.apache.org'>\n");
    o.push_str("  <httpd:balancers>\n");
    for b in view.balancers {
        let p = b.snapshot.params();
        o.push_str("    <httpd:balancer>\n");
        let _ = writeln!(o, "      <httpd:name>{}</httpd:name>", esc(&p.name));
        let _ = writeln!(o, "      <httpd:nonce>{}</httpd:nonce>", esc(b.nonce));
        if let Some(s) = &p.sticky_session {
            let _ = writeln!(
                o,
                "      <httpd:stickysession>{}</httpd:stickysession>",
                esc(s.cookie())
            );
            let _ = writeln!(
                o,
                "      <httpd:nofailover>{}</httpd:nofailover>",
                on_off(p.no_failover)
            );
        }
        let _ = writeln!(
            o,
            "      <httpd:timeout>{}</httpd:timeout>",
            p.timeout.as_secs()
        );
        if let Some(n) = p.max_attempts {
            let _ = writeln!(o, "      <httpd:maxattempts>{n}</httpd:maxattempts>");
        }
        let _ = writeln!(
            o,
            "      <httpd:lbmethod>{}</httpd:lbmethod>",
            esc(p.lb_method.name())
        );
        if p.sticky_session.is_some() {
            let _ = writeln!(
                o,
                "      <httpd:scolonpathdelim>{}</httpd:scolonpathdelim>",
                on_off(p.scolon_path_delim)
            );
        }
        for f in balancer_facts(b) {
            let _ = writeln!(
                o,
                "      <httpd:{0}>{1}</httpd:{0}>",
                f.xml,
                esc(&f.value.text())
            );
        }
        o.push_str("      <httpd:workers>\n");
        for m in b.snapshot.members() {
            let change = view
                .shared
                .and_then(|s| s.last_change(b.short_name(), Some(m.url())));
            let facts = member_facts(b, m);
            xml_worker(&mut o, m, &facts, (b.health)(m).as_ref(), change.as_ref());
        }
        o.push_str("      </httpd:workers>\n");
        o.push_str("    </httpd:balancer>\n");
    }
    o.push_str("  </httpd:balancers>\n");
    if let Some(shared) = view.shared {
        let s = shared.status();
        o.push_str("  <httpd:shared>\n");
        let el = |o: &mut String, name: &str, value: &dyn std::fmt::Display| {
            let _ = writeln!(o, "    <httpd:{name}>{value}</httpd:{name}>");
        };
        el(&mut o, "backend", &esc(&s.backend));
        el(&mut o, "instance", &esc(&s.instance));
        el(&mut o, "connected", &on_off(s.connected));
        el(&mut o, "since", &super::shared::rfc3339(s.since));
        el(&mut o, "revision", &s.revision);
        if let Some(e) = &s.last_error {
            el(&mut o, "lasterror", &esc(e));
        }
        o.push_str("  </httpd:shared>\n");
    }
    o.push_str("</httpd:manager>");
    o
}

fn xml_worker(
    o: &mut String,
    m: &Member,
    facts: &[Fact],
    health: Option<&HealthView>,
    change: Option<&ChangeRecord>,
) {
    let mp = m.params();
    let st = m.state();
    let (host, port) = (mp.url.host(), mp.url.port());
    let lf = load_factor(m);
    let max = mp.max.unwrap_or(0);
    let el = |o: &mut String, name: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(o, "          <httpd:{name}>{value}</httpd:{name}>");
    };
    o.push_str("        <httpd:worker>\n");
    el(o, "name", &esc(m.url()));
    el(o, "scheme", &esc(mp.url.scheme()));
    el(o, "hostname", &esc(host));
    el(o, "loadfactor", &lf);
    el(o, "port", &port);
    el(o, "min", &0);
    el(o, "smax", &max);
    el(o, "max", &max);
    el(o, "ttl", &mp.ttl.map_or(0, |t| t.as_secs()));
    if let Some(t) = mp.timeout {
        el(o, "timeout", &t.as_secs());
    }
    if mp.keepalive {
        el(o, "keepalive", &"On");
    }
    el(o, "status", &esc(&m.flags().label().to_string()));
    el(o, "retries", &st.retries());
    el(o, "lbstatus", &st.lbstatus());
    el(o, "loadfactor", &lf);
    el(o, "transferred", &st.transferred());
    el(o, "read", &st.read());
    el(o, "elected", &st.elected());
    el(o, "route", &esc(m.route().unwrap_or("")));
    el(
        o,
        "redirect",
        &esc(mp.redirect.as_ref().map_or("", |r| r.as_str())),
    );
    el(o, "busy", &st.busy());
    el(o, "lbset", &mp.lb_set.get());
    if mp.disable_reuse {
        el(o, "disablereuse", &"On");
    }
    if let Some(t) = mp.connection_timeout {
        el(o, "connectiontimeout", &t.as_millis());
    }
    el(o, "retry", &mp.retry.as_secs());
    for f in facts {
        el(o, f.xml, &esc(&f.value.text()));
    }
    if let Some(h) = health {
        el(o, "hcmethod", &esc(&h.method));
        el(o, "hcinterval", &h.interval_ms);
        el(o, "hcpasses", &h.passes);
        el(o, "hcfails", &h.fails);
        el(o, "hcuri", &esc(&h.uri));
        el(o, "hcexpr", &esc(h.expr.as_deref().unwrap_or("")));
    }
    if let Some(c) = change {
        el(o, "changedby", &esc(&c.by));
        el(o, "changedat", &super::shared::rfc3339(c.at));
        el(o, "changed", &esc(&c.changed.join(",")));
        el(o, "changerevision", &c.revision);
        if let Some(e) = c.expires {
            el(o, "changeexpires", &super::shared::rfc3339(e));
        }
    }
    o.push_str("        </httpd:worker>\n");
}
