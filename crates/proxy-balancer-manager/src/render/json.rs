//! The JSON view, for scripts.

use std::fmt::Write as _;

use proxy_balancer_core::Member;

use super::selection::{balancer_facts, json_object, member_facts};
use super::{json_opt_str, json_str, label, load_factor, BalancerView, View};

/// The same facts as JSON, for scripts: balancers with their parameters and members with
/// their flags, counters and health check.
///
/// Shape (one line, no spaces):
///
/// ```text
/// {"server":…,"balancers":[{"name":"web","full_name":"balancer://web","nonce":…,
///   "lbmethod":"byrequests","timeout_secs":0,"max_attempts":1,"max_attempts_set":false,
///   "sticky_session":null|{"cookie":…,"url_param":…},"no_failover":false,
///   "scolon_path_delim":false,"growth":0,"max_members":2,"used":2,
///   "members":[{"url":…,"scheme":…,"hostname":…,"port":8001,"route":null|…,
///     "redirect":null|…,"load_factor":1.00,"lb_set":0,"retry_secs":60,
///     "flags":"D","status":"Init Dis","usable":false,"elected":0,"busy":0,"lbstatus":0,
///     "transferred":0,"read":0,"retries":0,"consecutive_failures":0,
///     "health":null|{"method":…,"uri":…,"interval_ms":…,"passes":…,"fails":…,
///                    "expr":null|…,"last_passed":null|true|false}}]}]}
/// ```
///
/// Beyond Apache, each balancer has, after `"used"` (and `"unavailable"`),
/// `"selection":{…}` with the selection's parameters that are set and their state:
/// `"hash_key"`, `"hash_ring"` (lbmethod=hash); `"ewma_decay_ms"` (p2c-ewma);
/// with ejection on, the `"eject_*"` parameters set and `"ejected"`; with a panic
/// threshold, `"panic_threshold"`, `"in_panic"` and `"panic_picks"`; the retry budget's
/// parameters when not the default, `"retry_budget_percent"` (a number, or `"Off"`),
/// `"retry_budget_min_per_sec"`, `"retry_budget_window_ms"`; and with the budget in the view
/// ([`BalancerView::retry_budget`]), `"retries_allowed"`, `"retries_refused"`. Each member has,
/// after `"health"`, `"selection":{…}` with `"slow_start_ms"` and `"slow_start_share"`
/// (while it ramps), `"rtt_ms"` (p2c-ewma) and, with ejection on, `"ejections"` and
/// `"ejected_for_ms"` (while ejected); `{}` when none applies.
///
/// With a shared store ([`View::shared`]) the document also has, after `"server"`,
/// `"shared":{"backend":…,"instance":…,"connected":true,"since":"2026-…Z","revision":N,
/// "last_error":null|…}`, and each balancer and member ends with
/// `"last_change":null|{"by":…,"at":"2026-…Z","changed":["status"],"expires":null|"…Z",
/// "revision":N}`.
///
/// `flags` are Apache's `status=` letters; `status` is the manager label without its
/// trailing space. Strings escape `"`, `\`, control characters and also `<`, `>`, `&` (as
/// `\u00XX`), so the document can be embedded in HTML.
///
/// ```
/// # use std::time::Instant;
/// # use proxy_balancer_core::{BalancerParams, BalancerStore, MemberParams};
/// use proxy_balancer_manager::render::{json, BalancerView, View};
/// # let store = BalancerStore::new(
/// #     BalancerParams::new("web"),
/// #     [MemberParams::new("http://127.0.0.1:8001")?.with_status("D".parse()?)],
/// #     Instant::now(),
/// # )?;
/// let snapshot = store.snapshot();
/// let balancers = [BalancerView::new(&snapshot, "")];
/// let view = View { balancers: &balancers, mount: "/bm", server: "proxy-balancer", shared: None };
/// let doc = json(&view);
/// assert!(doc.contains(r#""flags":"D","status":"Init Dis","usable":false"#));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub fn json(view: &View<'_>) -> String {
    json_inner(view, None)
}

/// [`json`] plus, per balancer, `"unavailable":N`: the requests it answered with 503 (the
/// same figure as `proxy_balancer_unavailable_total` in [`prometheus`](fn@super::prometheus)).
///
/// ```
/// # use std::time::Instant;
/// # use proxy_balancer_core::{BalancerParams, BalancerStore};
/// use proxy_balancer_manager::render::{json_with_unavailable, BalancerView, View};
/// # let store = BalancerStore::new(BalancerParams::new("web"), [], Instant::now())?;
/// let snapshot = store.snapshot();
/// let balancers = [BalancerView::new(&snapshot, "")];
/// let view = View { balancers: &balancers, mount: "/bm", server: "proxy-balancer", shared: None };
/// assert!(json_with_unavailable(&view, &|_| 7).contains(r#""unavailable":7"#));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub fn json_with_unavailable(view: &View<'_>, unavailable: &dyn Fn(&str) -> u64) -> String {
    json_inner(view, Some(unavailable))
}

fn json_inner(view: &View<'_>, unavailable: Option<&dyn Fn(&str) -> u64>) -> String {
    let mut o = String::with_capacity(4096);
    let _ = write!(o, "{{\"server\":{},", json_str(view.server));
    if view.shared.is_some() {
        let _ = write!(o, "\"shared\":{},", super::shared::json_status(view.shared));
    }
    o.push_str("\"balancers\":[");
    for (i, b) in view.balancers.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        let p = b.snapshot.params();
        let (max, used) = b.slots();
        let _ = write!(
            o,
            "{{\"name\":{},\"full_name\":{},\"nonce\":{},\"lbmethod\":{},\"timeout_secs\":{},\
             \"max_attempts\":{},\"max_attempts_set\":{},\"sticky_session\":",
            json_str(b.short_name()),
            json_str(&p.name),
            json_str(b.nonce),
            json_str(p.lb_method.name()),
            p.timeout.as_secs(),
            b.snapshot.max_attempts(),
            p.max_attempts.is_some(),
        );
        match &p.sticky_session {
            Some(s) => {
                let _ = write!(
                    o,
                    "{{\"cookie\":{},\"url_param\":{}}}",
                    json_str(s.cookie()),
                    json_str(s.url_param())
                );
            }
            None => o.push_str("null"),
        }
        let _ = write!(
            o,
            ",\"no_failover\":{},\"scolon_path_delim\":{},\"growth\":{},\"max_members\":{max},\"used\":{used}",
            p.no_failover, p.scolon_path_delim, p.growth
        );
        if let Some(f) = unavailable {
            let _ = write!(o, ",\"unavailable\":{}", f(b.short_name()));
        }
        let _ = write!(o, ",\"selection\":{}", json_object(&balancer_facts(b)));
        if let Some(shared) = view.shared {
            let change = shared.last_change(b.short_name(), None);
            let _ = write!(
                o,
                ",\"last_change\":{}",
                super::shared::json_change(change.as_ref())
            );
        }
        o.push_str(",\"members\":[");
        for (j, m) in b.snapshot.members().iter().enumerate() {
            if j > 0 {
                o.push(',');
            }
            json_member(&mut o, view, b, m);
        }
        o.push_str("]}");
    }
    o.push_str("]}");
    o
}

fn json_member(o: &mut String, view: &View<'_>, b: &BalancerView<'_>, m: &Member) {
    let mp = m.params();
    let st = m.state();
    let (host, port) = (mp.url.host(), mp.url.port());
    let flags = m.flags();
    let _ = write!(
        o,
        "{{\"url\":{},\"scheme\":{},\"hostname\":{},\"port\":{port},\"route\":{},\"redirect\":{},\
         \"load_factor\":{},\"lb_set\":{},\"retry_secs\":{},\"flags\":{},\"status\":{},\
         \"usable\":{},\"elected\":{},\"busy\":{},\"lbstatus\":{},\"transferred\":{},\"read\":{},\
         \"retries\":{},\"consecutive_failures\":{},\"health\":",
        json_str(m.url()),
        json_str(mp.url.scheme()),
        json_str(host),
        json_opt_str(m.route()),
        json_opt_str(mp.redirect.as_ref().map(|r| r.as_str())),
        load_factor(m),
        mp.lb_set.get(),
        mp.retry.as_secs(),
        json_str(&flags.to_string()),
        json_str(&label(flags)),
        flags.is_usable(),
        st.elected(),
        st.busy(),
        st.lbstatus(),
        st.transferred(),
        st.read(),
        st.retries(),
        st.consecutive_failures(),
    );
    match (b.health)(m) {
        Some(h) => {
            let last = h
                .last_passed
                .map_or("null", |p| if p { "true" } else { "false" });
            let _ = write!(
                o,
                "{{\"method\":{},\"uri\":{},\"interval_ms\":{},\"passes\":{},\"fails\":{},\
                 \"expr\":{},\"last_passed\":{last}}}",
                json_str(&h.method),
                json_str(&h.uri),
                h.interval_ms,
                h.passes,
                h.fails,
                json_opt_str(h.expr.as_deref()),
            );
        }
        None => o.push_str("null"),
    }
    let _ = write!(o, ",\"selection\":{}", json_object(&member_facts(b, m)));
    if let Some(shared) = view.shared {
        let change = shared.last_change(b.short_name(), Some(m.url()));
        let _ = write!(
            o,
            ",\"last_change\":{}",
            super::shared::json_change(change.as_ref())
        );
    }
    o.push('}');
}
