//! Rendering of the balancer-manager: the HTML page, Apache's XML, JSON and Prometheus text.
//!
//! Every function here is pure: it takes a [`View`] of the balancers (their current
//! [`BalancerSnapshot`]s plus the few facts the manager keeps beside them) and returns the
//! document as a `String`. The Service chooses the content type:
//!
//! | function | content type |
//! | --- | --- |
//! | [`html`](fn@html) | `text/html; charset=utf-8` |
//! | [`xml`](fn@xml) | `text/xml; charset=utf-8` |
//! | [`json`](fn@json) | `application/json` |
//! | [`prometheus`](fn@prometheus) | `text/plain; version=0.0.4; charset=utf-8` |
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
//! let view = View {
//!     balancers: &balancers,
//!     mount: "/balancer-manager",
//!     server: "proxy-balancer",
//!     shared: None,
//! };
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

use std::time::Instant;

use proxy_balancer_core::{BalancerSnapshot, Member, RetryBudget, StatusFlags};

mod html;
mod json;
mod prometheus;
mod selection;
mod shared;
mod xml;

pub use self::html::html;
pub use self::json::{json, json_with_unavailable};
pub use self::prometheus::prometheus;
pub use self::xml::xml;

#[cfg(test)]
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
    /// The fleet's shared store, when edits are shared
    /// ([`BalancerManagerBuilder::shared`](crate::BalancerManagerBuilder::shared)): every
    /// document then shows its status ([`SharedEdits::status`](crate::shared::SharedEdits::status);
    /// a banner on the page while it is down) and each member's last change
    /// ([`SharedEdits::last_change`](crate::shared::SharedEdits::last_change)). `None`: an
    /// instance alone, and the documents are as Apache's.
    pub shared: Option<&'a dyn crate::shared::SharedEdits>,
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
    /// Beyond Apache: the balancer's retry budget
    /// ([`BalancerStore::retry_budget`](proxy_balancer_core::BalancerStore::retry_budget)),
    /// whose counts of retries allowed and refused the documents show; `None` leaves them
    /// out.
    pub retry_budget: Option<&'a RetryBudget>,
    /// When the view was taken: what the time-dependent facts are reckoned at (a member's
    /// slow-start share, RTT estimate and ejection time left, whether the balancer is in
    /// panic). `None` leaves them out.
    pub now: Option<Instant>,
}

impl std::fmt::Debug for View<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View")
            .field("balancers", &self.balancers)
            .field("mount", &self.mount)
            .field("server", &self.server)
            .field("shared", &self.shared.map(|s| s.status()))
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
            retry_budget: None,
            now: None,
        }
    }

    /// The view with the balancer's retry budget, whose counts the documents then show.
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use proxy_balancer_core::{BalancerParams, BalancerStore};
    /// use proxy_balancer_manager::render::{json, BalancerView, View};
    /// let now = Instant::now();
    /// # let store = BalancerStore::new(BalancerParams::new("c"), [], now)?;
    /// let snapshot = store.snapshot();
    /// let b = [BalancerView::new(&snapshot, "").with_retry_budget(store.retry_budget()).at(now)];
    /// let view = View { balancers: &b, mount: "/bm", server: "s", shared: None };
    /// assert!(json(&view).contains(r#""retries_allowed":0,"retries_refused":0"#));
    /// # Ok::<(), proxy_balancer_core::ConfigError>(())
    /// ```
    #[must_use]
    pub fn with_retry_budget(mut self, budget: &'a RetryBudget) -> Self {
        self.retry_budget = Some(budget);
        self
    }

    /// The view reckoned at `now` (see [`BalancerView::now`]).
    #[must_use]
    pub fn at(mut self, now: Instant) -> Self {
        self.now = Some(now);
        self
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

// ---------------------------------------------------------------------------------------------
// Escaping and small formatters

/// Escapes text for HTML and XML content and quoted attribute values: `& < > " '`. The
/// characters XML 1.0 does not allow at all (control characters but tab, LF and CR;
/// U+FFFE, U+FFFF), which text from outside may hold (a user name, a value written in etcd
/// by hand), become U+FFFD: escaped or not, one of them would make the whole document
/// ill-formed.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c < ' ' || matches!(c, '\u{fffe}' | '\u{ffff}') => out.push('\u{fffd}'),
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

fn on_off(b: bool) -> &'static str {
    if b {
        "On"
    } else {
        "Off"
    }
}
