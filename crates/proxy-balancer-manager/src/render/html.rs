//! The balancer-manager page: the status tables and the balancer and member edit forms.

use std::fmt::Write as _;

use proxy_balancer_core::{HcMethod, Member};

use super::selection::{self, Fact};
use super::{
    esc, flag, label, load_factor, on_off, strfsize, url_encode, BalancerView, HealthView, View,
};

/// The flags the manager can set or clear, in the order of Apache's edit form.
const EDITABLE: [(char, &str); 7] = [
    ('I', "Ignore Errors"),
    ('N', "Draining Mode"),
    ('D', "Disabled"),
    ('H', "Hot Standby"),
    ('R', "Hot Spare"),
    ('C', "HC Fail"),
    ('S', "Stopped"),
];

/// The lbmethods offered by the balancer form: Apache's four, then ours.
const LB_METHODS: [&str; 7] = [
    "byrequests",
    "bytraffic",
    "bybusyness",
    "heartbeat",
    "hash",
    "p2c",
    "p2c-ewma",
];

const STYLE: &str = "table { border-width: 1px; border-spacing: 3px; border-style: solid; \
border-color: gray; border-collapse: collapse; background-color: white; text-align: center; }\n\
th { border-width: 1px; padding: 2px; border-style: dotted; border-color: gray; \
background-color: lightgray; text-align: center; }\n\
td { border-width: 1px; padding: 2px; border-style: dotted; border-color: gray; \
background-color: white; text-align: center; }\n";

/// The balancer-manager page, laid out like Apache's.
///
/// Per balancer: a table of its parameters (MaxMembers, StickySession, DisableFailover,
/// Timeout, FailoverAttempts, Method, Path, Active), a table of its members (Worker URL as a
/// link to the member edit form, Route, RouteRedir, Factor, Set, Status, Elected, Busy, Load,
/// To, From, and the health-check columns when any member has a health check) and the
/// balancer edit form (`b_lbm`, `b_tmo`, `b_max`, `b_sforce`, `b_ss`, and `b_nwrkr` with
/// `b_wyes` while a `growth` slot is free).
///
/// `selected` is `(balancer name without balancer://, member URL)`, as in the `b` and `w`
/// query parameters; when it names a member, the page ends with that member's edit form
/// (`w_lf`, `w_ls`, `w_wr`, `w_rr`, `w_status_X`, and `w_hm` … `w_he` when it has a health
/// check; with a shared store, `w_ttl`). Forms POST to `view.mount` and carry `b`, `w` and
/// `nonce` as hidden fields (no
/// `nonce` field when the nonce is empty). `auto_refresh` adds
/// `<meta http-equiv="refresh" content="N">`.
///
/// Beyond Apache: under the parameters, a table of the selection's parameters that are set
/// (the hash key and ring, the EWMA decay, ejection, the panic threshold and whether the
/// balancer is in panic, the retry budget with its retries and refusals: the facts of
/// [`xml`](fn@super::xml)); the member table has, after From, the columns Slow start,
/// Slow start share, RTT, Ejections and Ejected for when some member has them (`-` for the
/// others). The `b_lbm` choices include `hash`, `p2c` and `p2c-ewma`.
///
/// Plain HTML without JavaScript; every shown value is HTML-escaped. The Path column shows
/// `-` (a balancer does not know where it is mounted) and Active always `Yes`.
///
/// ```
/// # use std::time::Instant;
/// # use proxy_balancer_core::{BalancerParams, BalancerStore, MemberParams};
/// use proxy_balancer_manager::render::{html, BalancerView, View};
/// # let store = BalancerStore::new(
/// #     BalancerParams::new("web"),
/// #     [MemberParams::new("http://127.0.0.1:8001")?],
/// #     Instant::now(),
/// # )?;
/// let snapshot = store.snapshot();
/// let balancers = [BalancerView::new(&snapshot, "n0nce")];
/// let view = View { balancers: &balancers, mount: "/bm", server: "proxy-balancer", shared: None };
/// let page = html(&view, Some(("web", "http://127.0.0.1:8001")), None);
/// assert!(page.contains("name=\"w_lf\""));
/// assert!(page.contains("<input type=\"hidden\" name=\"nonce\" value=\"n0nce\">"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Apache
///
/// `balancer_display_page` without `xml`. Apache shows the balancer form only when `b` is
/// given; this page shows it under every balancer, so it works without following a link.
#[must_use]
pub fn html(view: &View<'_>, selected: Option<(&str, &str)>, auto_refresh: Option<u32>) -> String {
    let mut o = String::with_capacity(8192);
    o.push_str("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\n");
    if let Some(secs) = auto_refresh {
        let _ = writeln!(o, "<meta http-equiv=\"refresh\" content=\"{secs}\">");
    }
    o.push_str("<title>Balancer Manager</title>\n<style>\n");
    o.push_str(STYLE);
    o.push_str("</style>\n</head>\n<body><h1>Load Balancer Manager</h1>\n\n");
    let _ = writeln!(o, "<dl><dt>Server Version: {}</dt></dl>", esc(view.server));
    if let Some(shared) = view.shared {
        super::shared::html_status(&mut o, shared);
    }
    let mount = esc(view.mount);
    for b in view.balancers {
        html_balancer(&mut o, view, b, &mount);
    }
    if let Some((bname, wurl)) = selected {
        let found = view
            .balancers
            .iter()
            .find(|b| b.short_name().eq_ignore_ascii_case(bname))
            .and_then(|b| b.snapshot.member_by_url(wurl).map(|m| (b, m)));
        if let Some((b, m)) = found {
            html_member_form(&mut o, b, m, &mount, view.shared.is_some());
        }
    }
    o.push_str("</body></html>\n");
    o
}

/// One balancer: its heading, its parameters, its members and its edit form.
fn html_balancer(o: &mut String, view: &View<'_>, b: &BalancerView<'_>, mount: &str) {
    let nonce_q = if b.nonce.is_empty() {
        String::new()
    } else {
        format!("&amp;nonce={}", url_encode(b.nonce))
    };
    let base = format!("{}?b={}", esc(view.mount), url_encode(b.short_name()));
    html_balancer_table(o, b, &base, &nonce_q);
    if let Some(shared) = view.shared {
        super::shared::html_balancer_change(o, shared, b);
    }
    html_member_table(o, view, b, &base, &nonce_q);
    html_balancer_form(o, b, mount);
}

/// The balancer's heading (a link to it) and the table of its parameters.
fn html_balancer_table(o: &mut String, b: &BalancerView<'_>, base: &str, nonce_q: &str) {
    let p = b.snapshot.params();
    let _ = writeln!(
        o,
        "<hr>\n<h3>LoadBalancer Status for <a href=\"{base}{nonce_q}\">{}</a></h3>",
        esc(&p.name)
    );
    o.push_str(
        "<table><tr><th>MaxMembers</th><th>StickySession</th><th>DisableFailover</th>\
         <th>Timeout</th><th>FailoverAttempts</th><th>Method</th><th>Path</th><th>Active</th></tr>\n<tr>",
    );
    let (max, used) = b.slots();
    let _ = write!(o, "<td>{max} [{used} Used]</td>");
    let _ = write!(
        o,
        "<td>{}</td>",
        sticky_text(b).map_or_else(|| "(None)".to_owned(), |s| esc(&s))
    );
    let _ = write!(o, "<td>{}</td>", on_off(p.no_failover));
    let _ = write!(o, "<td>{}</td>", p.timeout.as_secs());
    let _ = write!(o, "<td>{}</td>", b.snapshot.max_attempts());
    let _ = write!(o, "<td>{}</td>", esc(p.lb_method.name()));
    o.push_str("<td>-</td><td>Yes</td></tr>\n</table>\n<br>\n");
    let facts = selection::balancer_facts(b);
    if !facts.is_empty() {
        o.push_str("<table><tr>");
        for f in &facts {
            let _ = write!(o, "<th>{}</th>", selection::title(f.xml));
        }
        o.push_str("</tr>\n<tr>");
        for f in &facts {
            let _ = write!(o, "<td>{}</td>", esc(&f.value.text()));
        }
        o.push_str("</tr>\n</table>\n<br>\n");
    }
}

/// The table of the balancer's members, with the health-check columns when any member has
/// a health check.
fn html_member_table(
    o: &mut String,
    view: &View<'_>,
    b: &BalancerView<'_>,
    base: &str,
    nonce_q: &str,
) {
    let members = b.snapshot.members();
    let health: Vec<Option<HealthView>> = members.iter().map(|m| (b.health)(m)).collect();
    let any_hc = health.iter().any(Option::is_some);
    let facts: Vec<Vec<Fact>> = members
        .iter()
        .map(|m| selection::member_facts(b, m))
        .collect();
    let columns = selection::member_columns(&facts);
    o.push_str(
        "<table><tr><th>Worker URL</th><th>Route</th><th>RouteRedir</th><th>Factor</th>\
         <th>Set</th><th>Status</th><th>Elected</th><th>Busy</th><th>Load</th><th>To</th>\
         <th>From</th>",
    );
    for c in &columns {
        let _ = write!(o, "<th>{}</th>", selection::title(c));
    }
    if any_hc {
        o.push_str(
            "<th>HC Method</th><th>HC Interval</th><th>Passes</th><th>Fails</th>\
             <th>HC uri</th><th>HC Expr</th><th>HC Result</th>",
        );
    }
    if view.shared.is_some() {
        o.push_str("<th>Last change</th>");
    }
    o.push_str("</tr>\n");
    for ((m, hc), facts) in members.iter().zip(&health).zip(&facts) {
        html_member_row(o, m, base, nonce_q);
        for c in &columns {
            let shown = facts
                .iter()
                .find(|f| f.xml == *c)
                .map_or_else(|| "-".to_owned(), |f| esc(&f.value.text()));
            let _ = write!(o, "<td>{shown}</td>");
        }
        if any_hc {
            html_health_cells(o, hc.as_ref());
        }
        if let Some(shared) = view.shared {
            let change = shared
                .last_change(b.short_name(), Some(m.url()))
                .map_or_else(|| "-".to_owned(), |c| super::shared::change_text(&c));
            let _ = write!(o, "<td>{}</td>", esc(&change));
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</table>\n");
}

/// A member's row up to its health-check cells: URL (a link to its edit form), route,
/// parameters, status and counters. The caller closes the row.
fn html_member_row(o: &mut String, m: &Member, base: &str, nonce_q: &str) {
    let st = m.state();
    let _ = write!(
        o,
        "<tr><td><a href=\"{base}&amp;w={}{nonce_q}\">{}</a></td>",
        url_encode(m.url()),
        esc(m.url())
    );
    let _ = write!(
        o,
        "<td>{}</td><td>{}</td>",
        esc(m.route().unwrap_or("")),
        esc(m.params().redirect.as_ref().map_or("", |r| r.as_str()))
    );
    let _ = write!(
        o,
        "<td>{}</td><td>{}</td><td>{}</td>",
        load_factor(m),
        m.params().lb_set.get(),
        esc(&label(m.flags()))
    );
    let _ = write!(
        o,
        "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
        st.elected(),
        st.busy(),
        st.lbstatus(),
        strfsize(st.transferred()),
        strfsize(st.read())
    );
}

/// A member's seven health-check cells, `-` in each when it has no health check.
fn html_health_cells(o: &mut String, hc: Option<&HealthView>) {
    match hc {
        Some(h) => {
            let result = match h.last_passed {
                Some(true) => "Passed",
                Some(false) => "Failed",
                None => "-",
            };
            let _ = write!(
                o,
                "<td>{}</td><td>{}ms</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{result}</td>",
                esc(&h.method),
                h.interval_ms,
                h.passes,
                h.fails,
                esc(&h.uri),
                esc(h.expr.as_deref().unwrap_or(""))
            );
        }
        None => {
            o.push_str("<td>-</td><td>-</td><td>-</td><td>-</td><td>-</td><td>-</td><td>-</td>")
        }
    }
}

fn hidden(o: &mut String, name: &str, value: &str) {
    let _ = writeln!(
        o,
        "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
        esc(value)
    );
}

fn radio(o: &mut String, name: &str, on: bool) {
    let (c1, c0) = if on {
        (" checked", "")
    } else {
        ("", " checked")
    };
    let _ = write!(
        o,
        "<td><label>On <input name=\"{name}\" value=\"1\" type=\"radio\"{c1}></label><br>\
         <label>Off <input name=\"{name}\" value=\"0\" type=\"radio\"{c0}></label></td>"
    );
}

fn text_input(o: &mut String, label: &str, name: &str, value: &str) {
    let _ = writeln!(
        o,
        "<tr><td><label for=\"{name}\">{label}</label></td><td><input name=\"{name}\" id=\"{name}\" type=\"text\" value=\"{}\"></td></tr>",
        esc(value)
    );
}

fn form_start(o: &mut String, mount: &str) {
    let _ = writeln!(
        o,
        "<form method=\"POST\" enctype=\"application/x-www-form-urlencoded\" action=\"{mount}\">\n<table>"
    );
}

fn form_end(o: &mut String, b: &BalancerView<'_>, member: Option<&Member>) {
    o.push_str(
        "<tr><td colspan=\"2\"><input type=\"submit\" value=\"Submit\"></td></tr>\n</table>\n",
    );
    if let Some(m) = member {
        hidden(o, "w", m.url());
    }
    hidden(o, "b", b.short_name());
    if !b.nonce.is_empty() {
        hidden(o, "nonce", b.nonce);
    }
    o.push_str("</form>\n");
}

fn html_balancer_form(o: &mut String, b: &BalancerView<'_>, mount: &str) {
    let p = b.snapshot.params();
    let _ = writeln!(o, "<h3>Edit balancer settings for {}</h3>", esc(&p.name));
    form_start(o, mount);
    o.push_str("<tr><td><label for=\"b_lbm\">LBmethod:</label></td><td><select name=\"b_lbm\" id=\"b_lbm\">\n");
    let current = p.lb_method.name();
    let custom = !LB_METHODS.contains(&current);
    for name in LB_METHODS.iter().copied().chain(custom.then_some(current)) {
        let sel = if name == current { " selected" } else { "" };
        let _ = writeln!(o, "<option value=\"{0}\"{sel}>{0}</option>", esc(name));
    }
    o.push_str("</select></td></tr>\n");
    text_input(o, "Timeout:", "b_tmo", &p.timeout.as_secs().to_string());
    text_input(
        o,
        "Failover Attempts:",
        "b_max",
        &b.snapshot.max_attempts().to_string(),
    );
    o.push_str("<tr><td>Disable Failover:</td>");
    radio(o, "b_sforce", p.no_failover);
    o.push_str("</tr>\n");
    let sticky = p
        .sticky_session
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "<tr><td><label for=\"b_ss\">Sticky Session:</label></td><td><input name=\"b_ss\" id=\"b_ss\" size=\"64\" type=\"text\" value=\"{}\"> (Use '-' to delete)</td></tr>",
        esc(&sticky)
    );
    if b.has_free_slot() {
        o.push_str(
            "<tr><td><label for=\"b_nwrkr\">Add New Worker:</label></td><td><input name=\"b_nwrkr\" id=\"b_nwrkr\" size=\"32\" type=\"text\"> \
             <label>Are you sure? <input name=\"b_wyes\" id=\"b_wyes\" type=\"checkbox\" value=\"1\"></label></td></tr>\n",
        );
    }
    form_end(o, b, None);
}

fn html_member_form(o: &mut String, b: &BalancerView<'_>, m: &Member, mount: &str, shared: bool) {
    let _ = writeln!(
        o,
        "<hr>\n<h3>Edit worker settings for {}</h3>",
        esc(m.url())
    );
    form_start(o, mount);
    text_input(o, "Load factor:", "w_lf", &load_factor(m));
    text_input(o, "LB Set:", "w_ls", &m.params().lb_set.get().to_string());
    text_input(o, "Route:", "w_wr", m.route().unwrap_or(""));
    text_input(
        o,
        "Route Redirect:",
        "w_rr",
        m.params().redirect.as_ref().map_or("", |r| r.as_str()),
    );
    o.push_str("<tr><td>Status:</td><td><table><tr>");
    for (_, title) in EDITABLE {
        let _ = write!(o, "<th>{title}</th>");
    }
    o.push_str("</tr>\n<tr>");
    let flags = m.flags();
    for (letter, _) in EDITABLE {
        radio(
            o,
            &format!("w_status_{letter}"),
            flags.contains(flag(letter)),
        );
    }
    o.push_str("</tr></table></td></tr>\n");
    if shared {
        o.push_str(
            "<tr><td><label for=\"w_ttl\">Flags set lapse after (seconds, empty: never):</label></td>\
             <td><input name=\"w_ttl\" id=\"w_ttl\" type=\"text\" value=\"\"></td></tr>\n",
        );
    }
    if let Some(h) = (b.health)(m) {
        o.push_str("<tr><td><label for=\"w_hm\">HC Method:</label></td><td><select name=\"w_hm\" id=\"w_hm\">\n");
        let names = HcMethod::ALL.map(HcMethod::as_str);
        let known = names.iter().any(|x| x.eq_ignore_ascii_case(&h.method));
        let extra = (!known).then_some(h.method.as_str());
        for name in names.into_iter().chain(extra) {
            let sel = if name.eq_ignore_ascii_case(&h.method) {
                " selected"
            } else {
                ""
            };
            let _ = writeln!(o, "<option value=\"{0}\"{sel}>{0}</option>", esc(name));
        }
        o.push_str("</select></td></tr>\n");
        text_input(o, "HC Expr:", "w_he", h.expr.as_deref().unwrap_or(""));
        text_input(o, "HC Interval (ms):", "w_hi", &h.interval_ms.to_string());
        text_input(o, "HC Passes trigger:", "w_hp", &h.passes.to_string());
        text_input(o, "HC Fails trigger:", "w_hf", &h.fails.to_string());
        text_input(o, "HC uri:", "w_hu", &h.uri);
    }
    form_end(o, b, Some(m));
}

fn sticky_text(b: &BalancerView<'_>) -> Option<String> {
    b.snapshot.params().sticky_session.as_ref().map(|s| {
        if s.cookie() == s.url_param() {
            s.cookie().to_owned()
        } else {
            format!("{} | {}", s.cookie(), s.url_param())
        }
    })
}
