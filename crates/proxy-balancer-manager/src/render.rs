//! Rendering of the balancer-manager: the HTML page, Apache's XML, JSON and Prometheus text.
//!
//! Every function here is pure: it takes a [`View`] of the balancers (their current
//! [`BalancerSnapshot`]s plus the few facts the manager keeps beside them) and returns the
//! document as a `String`. The Service chooses the content type:
//!
//! | function | content type |
//! | --- | --- |
//! | [`html`] | `text/html; charset=utf-8` |
//! | [`xml`] | `text/xml; charset=utf-8` |
//! | [`json`] | `application/json` |
//! | [`prometheus`] | `text/plain; version=0.0.4; charset=utf-8` |
//!
//! Everything taken from configuration or edits (names, URLs, routes, sticky session names,
//! nonces, health-check URIs and expressions) is escaped for the target format.
//!
//! ```
//! use std::time::Instant;
//! use proxy_balancer_core::{BalancerParams, BalancerStore, MemberParams};
//! use proxy_balancer_manager::render::{self, BalancerView, View};
//!
//! let store = BalancerStore::new(
//!     BalancerParams::new("mycluster"),
//!     [MemberParams::new("http://127.0.0.1:8001")?],
//!     Instant::now(),
//! )?;
//! let snapshot = store.snapshot();
//! let balancers = [BalancerView::new(&snapshot, "secret")];
//! let view = View { balancers: &balancers, mount: "/balancer-manager", server: "proxy-balancer" };
//!
//! let page = render::html(&view, None, Some(10));
//! assert!(page.contains("<td>Init Ok</td>"));
//! assert!(render::xml(&view).contains("<httpd:status>Init Ok </httpd:status>"));
//! assert!(render::json(&view).contains(r#""status":"Init Ok""#));
//! let metrics = render::prometheus(&view, &|_| 0);
//! assert!(metrics.contains("proxy_balancer_unavailable_total{balancer=\"mycluster\"} 0"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Apache
//!
//! `balancer_display_page` in `mod_proxy_balancer.c`: the HTML page and, with `?xml=1`, the
//! XML document. JSON and Prometheus output have no Apache equivalent.

use std::fmt::Write as _;

use proxy_balancer_core::{BalancerSnapshot, HcMethod, Member, StatusFlags};

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;

/// What the renderers show: every balancer, where the manager is mounted and the server line.
///
/// See the [module docs](self) for an example.
#[derive(Clone, Copy)]
pub struct View<'a> {
    /// The balancers, in display order.
    pub balancers: &'a [BalancerView<'a>],
    /// The path the manager is mounted at, e.g. `/balancer-manager`: the target of the forms
    /// and the base of the member links.
    pub mount: &'a str,
    /// The "Server Version" line of the page, e.g. `proxy-balancer 0.1.0`.
    pub server: &'a str,
}

/// One balancer as the manager shows it.
///
/// See the [module docs](self) for an example.
#[derive(Clone, Copy)]
pub struct BalancerView<'a> {
    /// The balancer's current snapshot (parameters, members and their counters).
    pub snapshot: &'a BalancerSnapshot,
    /// The effective nonce to put in forms and links; empty when checks are off
    /// (`nonce=None`).
    pub nonce: &'a str,
    /// How many members were added through the manager (`b_wyes`): the page shows
    /// `MaxMembers N [M Used]` with N = configured members + `growth`, M = current members.
    pub added: usize,
    /// The health-check settings and last result of a member, `None` when it has no
    /// health check (the HC columns and form fields are then left out).
    pub health: &'a dyn Fn(&Member) -> Option<HealthView>,
}

impl std::fmt::Debug for View<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View")
            .field("balancers", &self.balancers)
            .field("mount", &self.mount)
            .field("server", &self.server)
            .finish()
    }
}

impl std::fmt::Debug for BalancerView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BalancerView")
            .field("name", &self.snapshot.params().name)
            .field("nonce", &self.nonce)
            .field("added", &self.added)
            .finish_non_exhaustive()
    }
}

fn no_health(_: &Member) -> Option<HealthView> {
    None
}

impl<'a> BalancerView<'a> {
    /// A view with no members added through the manager and no health checks.
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use proxy_balancer_core::{BalancerParams, BalancerStore};
    /// use proxy_balancer_manager::render::BalancerView;
    /// # let store = BalancerStore::new(BalancerParams::new("c"), [], Instant::now())?;
    /// let snapshot = store.snapshot();
    /// let view = BalancerView::new(&snapshot, "");
    /// assert_eq!(view.added, 0);
    /// # Ok::<(), proxy_balancer_core::ConfigError>(())
    /// ```
    #[must_use]
    pub fn new(snapshot: &'a BalancerSnapshot, nonce: &'a str) -> Self {
        Self {
            snapshot,
            nonce,
            added: 0,
            health: &no_health,
        }
    }

    /// The balancer's name without `balancer://`, as used in the `b` parameter.
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use proxy_balancer_core::{BalancerParams, BalancerStore};
    /// # use proxy_balancer_manager::render::BalancerView;
    /// # let store = BalancerStore::new(BalancerParams::new("balancer://Web"), [], Instant::now())?;
    /// # let snapshot = store.snapshot();
    /// assert_eq!(BalancerView::new(&snapshot, "").short_name(), "web");
    /// # Ok::<(), proxy_balancer_core::ConfigError>(())
    /// ```
    #[must_use]
    pub fn short_name(&self) -> &'a str {
        let name = self.snapshot.params().name.as_str();
        name.strip_prefix("balancer://").unwrap_or(name)
    }

    /// `(MaxMembers, Used)` as Apache shows them: configured members + `growth`, and the
    /// current number of members.
    fn slots(&self) -> (usize, usize) {
        let used = self.snapshot.members().len();
        let configured = used.saturating_sub(self.added);
        (
            configured + usize::from(self.snapshot.params().growth),
            used,
        )
    }

    fn has_free_slot(&self) -> bool {
        let (max, used) = self.slots();
        used < max
    }
}

/// A member's health-check settings and last result (Apache's mod_proxy_hcheck columns).
///
/// ```
/// use proxy_balancer_manager::render::HealthView;
///
/// let hc = HealthView {
///     method: "GET".into(),
///     uri: "/health".into(),
///     interval_ms: 5000,
///     passes: 1,
///     fails: 3,
///     expr: None,
///     last_passed: Some(true),
/// };
/// assert_eq!(hc.interval_ms, 5000);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthView {
    /// `hcmethod`: `TCP`, `OPTIONS`, `HEAD`, `GET` …
    pub method: String,
    /// `hcuri`.
    pub uri: String,
    /// `hcinterval`, in milliseconds.
    pub interval_ms: u64,
    /// `hcpasses`: passes needed to clear the `C` flag.
    pub passes: u32,
    /// `hcfails`: failures needed to set the `C` flag.
    pub fails: u32,
    /// `hcexpr`: the name of the condition, if any.
    pub expr: Option<String>,
    /// The result of the last check, `None` before the first one.
    pub last_passed: Option<bool>,
}

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

/// Every status letter, in Apache's display order.
const LETTERS: [char; 8] = ['I', 'N', 'D', 'S', 'E', 'H', 'R', 'C'];

/// The lbmethods offered by the balancer form.
const LB_METHODS: [&str; 4] = ["byrequests", "bytraffic", "bybusyness", "heartbeat"];

// ---------------------------------------------------------------------------------------------
// Escaping and small formatters

/// Escapes text for HTML and XML content and quoted attribute values: `& < > " '`.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query-string value (everything but RFC 3986 unreserved characters).
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A JSON string literal. `<`, `>` and `&` are written as `\u00XX` too, so the document is
/// safe to embed in HTML.
pub(crate) fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}') => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_opt_str(s: Option<&str>) -> String {
    s.map_or_else(|| "null".to_owned(), json_str)
}

/// A Prometheus label value: `\`, `"` and newlines escaped.
fn prom_label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A load factor as Apache prints it (`%.2f` of lbfactor / 100).
fn load_factor(m: &Member) -> String {
    let lbf = m.params().load_factor.lbf();
    format!("{}.{:02}", lbf / 100, lbf % 100)
}

/// A byte count the way Apache's `apr_strfsize` shows it: `973`, `1.2K`, `35M` …
fn strfsize(bytes: u64) -> String {
    if bytes < 973 {
        return bytes.to_string();
    }
    let mut remain = bytes;
    for unit in ['K', 'M', 'G', 'T', 'P', 'E'] {
        let frac = remain % 1024;
        remain /= 1024;
        if remain >= 973 {
            continue;
        }
        if remain < 9 || (remain == 9 && frac < 973) {
            let mut tenths = (frac * 10 + 512) / 1024;
            let mut whole = remain;
            if tenths >= 10 {
                whole += 1;
                tenths = 0;
            }
            return format!("{whole}.{tenths}{unit}");
        }
        if frac >= 512 {
            remain += 1;
        }
        return format!("{remain}{unit}");
    }
    format!("{remain}E")
}

/// The status label without Apache's trailing space.
fn label(flags: StatusFlags) -> String {
    flags.label().to_string().trim_end().to_owned()
}

fn flag(letter: char) -> StatusFlags {
    StatusFlags::from_letter(letter).unwrap_or(StatusFlags::EMPTY)
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

fn on_off(b: bool) -> &'static str {
    if b {
        "On"
    } else {
        "Off"
    }
}

// ---------------------------------------------------------------------------------------------
// HTML

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
/// check). Forms POST to `view.mount` and carry `b`, `w` and `nonce` as hidden fields (no
/// `nonce` field when the nonce is empty). `auto_refresh` adds
/// `<meta http-equiv="refresh" content="N">`.
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
/// let view = View { balancers: &balancers, mount: "/bm", server: "proxy-balancer" };
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
            html_member_form(&mut o, b, m, &mount);
        }
    }
    o.push_str("</body></html>\n");
    o
}

fn html_balancer(o: &mut String, view: &View<'_>, b: &BalancerView<'_>, mount: &str) {
    let p = b.snapshot.params();
    let short = b.short_name();
    let nonce_q = if b.nonce.is_empty() {
        String::new()
    } else {
        format!("&amp;nonce={}", url_encode(b.nonce))
    };
    let base = format!("{}?b={}", esc(view.mount), url_encode(short));
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

    let members = b.snapshot.members();
    let health: Vec<Option<HealthView>> = members.iter().map(|m| (b.health)(m)).collect();
    let any_hc = health.iter().any(Option::is_some);
    o.push_str(
        "<table><tr><th>Worker URL</th><th>Route</th><th>RouteRedir</th><th>Factor</th>\
         <th>Set</th><th>Status</th><th>Elected</th><th>Busy</th><th>Load</th><th>To</th>\
         <th>From</th>",
    );
    if any_hc {
        o.push_str(
            "<th>HC Method</th><th>HC Interval</th><th>Passes</th><th>Fails</th>\
             <th>HC uri</th><th>HC Expr</th><th>HC Result</th>",
        );
    }
    o.push_str("</tr>\n");
    for (m, hc) in members.iter().zip(&health) {
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
        if any_hc {
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
                None => o.push_str(
                    "<td>-</td><td>-</td><td>-</td><td>-</td><td>-</td><td>-</td><td>-</td>",
                ),
            }
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</table>\n");
    html_balancer_form(o, b, mount);
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

fn html_member_form(o: &mut String, b: &BalancerView<'_>, m: &Member, mount: &str) {
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

// ---------------------------------------------------------------------------------------------
// XML

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
/// let view = View { balancers: &balancers, mount: "/bm", server: "proxy-balancer" };
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
        o.push_str("      <httpd:workers>\n");
        for m in b.snapshot.members() {
            xml_worker(&mut o, m, (b.health)(m).as_ref());
        }
        o.push_str("      </httpd:workers>\n");
        o.push_str("    </httpd:balancer>\n");
    }
    o.push_str("  </httpd:balancers>\n");
    o.push_str("</httpd:manager>");
    o
}

fn xml_worker(o: &mut String, m: &Member, health: Option<&HealthView>) {
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
    if let Some(h) = health {
        el(o, "hcmethod", &esc(&h.method));
        el(o, "hcinterval", &h.interval_ms);
        el(o, "hcpasses", &h.passes);
        el(o, "hcfails", &h.fails);
        el(o, "hcuri", &esc(&h.uri));
        el(o, "hcexpr", &esc(h.expr.as_deref().unwrap_or("")));
    }
    o.push_str("        </httpd:worker>\n");
}

// ---------------------------------------------------------------------------------------------
// JSON

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
/// let view = View { balancers: &balancers, mount: "/bm", server: "proxy-balancer" };
/// let doc = json(&view);
/// assert!(doc.contains(r#""flags":"D","status":"Init Dis","usable":false"#));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub fn json(view: &View<'_>) -> String {
    json_inner(view, None)
}

/// [`json`] plus, per balancer, `"unavailable":N`: the requests it answered with 503 (the
/// same figure as `proxy_balancer_unavailable_total` in [`prometheus`]).
///
/// ```
/// # use std::time::Instant;
/// # use proxy_balancer_core::{BalancerParams, BalancerStore};
/// use proxy_balancer_manager::render::{json_with_unavailable, BalancerView, View};
/// # let store = BalancerStore::new(BalancerParams::new("web"), [], Instant::now())?;
/// let snapshot = store.snapshot();
/// let balancers = [BalancerView::new(&snapshot, "")];
/// let view = View { balancers: &balancers, mount: "/bm", server: "proxy-balancer" };
/// assert!(json_with_unavailable(&view, &|_| 7).contains(r#""unavailable":7"#));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub fn json_with_unavailable(view: &View<'_>, unavailable: &dyn Fn(&str) -> u64) -> String {
    json_inner(view, Some(unavailable))
}

fn json_inner(view: &View<'_>, unavailable: Option<&dyn Fn(&str) -> u64>) -> String {
    let mut o = String::with_capacity(4096);
    let _ = write!(o, "{{\"server\":{},\"balancers\":[", json_str(view.server));
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
        o.push_str(",\"members\":[");
        for (j, m) in b.snapshot.members().iter().enumerate() {
            if j > 0 {
                o.push(',');
            }
            json_member(&mut o, b, m);
        }
        o.push_str("]}");
    }
    o.push_str("]}");
    o
}

fn json_member(o: &mut String, b: &BalancerView<'_>, m: &Member) {
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
    o.push('}');
}

// ---------------------------------------------------------------------------------------------
// Prometheus

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
/// | `proxy_balancer_member_status` | gauge | 1 or 0 per `flag` label, one of `I N D S E H R C` |
/// | `proxy_balancer_member_usable` | gauge | 1 when the member may receive requests |
/// | `proxy_balancer_member_health_up` | gauge | last health check passed (1) or failed (0); only for members with a health check that has run |
///
/// Per balancer, `proxy_balancer_unavailable_total{balancer=…}` (counter) is
/// `unavailable(name)`: the requests answered 503 because no member could take them.
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
/// let view = View { balancers: &balancers, mount: "/bm", server: "proxy-balancer" };
/// let text = prometheus(&view, &|name| if name == "web" { 3 } else { 0 });
/// assert!(text.contains(
///     "proxy_balancer_member_status{balancer=\"web\",member=\"http://127.0.0.1:8001\",flag=\"D\"} 0\n"
/// ));
/// assert!(text.contains("proxy_balancer_unavailable_total{balancer=\"web\"} 3\n"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub fn prometheus(view: &View<'_>, unavailable: &dyn Fn(&str) -> u64) -> String {
    type Value = fn(&Member) -> u64;
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
    let mut o = String::with_capacity(4096);
    let members: Vec<(String, String, &Member, Option<HealthView>)> = view
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
    let header = |o: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    for (name, kind, help, value) in FAMILIES {
        header(&mut o, name, kind, help);
        for (b, u, m, _) in &members {
            let _ = writeln!(o, "{name}{{balancer=\"{b}\",member=\"{u}\"}} {}", value(m));
        }
    }
    let name = "proxy_balancer_member_status";
    header(
        &mut o,
        name,
        "gauge",
        "1 when the member has the status flag (Apache's status letters I N D S E H R C).",
    );
    for (b, u, m, _) in &members {
        let flags = m.flags();
        for letter in LETTERS {
            let _ = writeln!(
                o,
                "{name}{{balancer=\"{b}\",member=\"{u}\",flag=\"{letter}\"}} {}",
                u8::from(flags.contains(flag(letter)))
            );
        }
    }
    let name = "proxy_balancer_member_usable";
    header(
        &mut o,
        name,
        "gauge",
        "1 when the member may receive requests.",
    );
    for (b, u, m, _) in &members {
        let _ = writeln!(
            o,
            "{name}{{balancer=\"{b}\",member=\"{u}\"}} {}",
            u8::from(m.is_usable())
        );
    }
    let name = "proxy_balancer_member_health_up";
    header(
        &mut o,
        name,
        "gauge",
        "1 when the member's last health check passed, 0 when it failed.",
    );
    for (b, u, _, hc) in &members {
        if let Some(passed) = hc.as_ref().and_then(|h| h.last_passed) {
            let _ = writeln!(
                o,
                "{name}{{balancer=\"{b}\",member=\"{u}\"}} {}",
                u8::from(passed)
            );
        }
    }
    let name = "proxy_balancer_unavailable_total";
    header(
        &mut o,
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
    o
}
