//! Edits: Apache's balancer-manager query API, parsed, validated and applied all together.
//!
//! A request goes through three steps, each of which can refuse it:
//!
//! 1. [`parse_form`] (a POST body) or [`parse_query`] (a GET query) decodes
//!    `application/x-www-form-urlencoded` text into a [`Form`].
//! 2. [`Edit::from_form`] reads every change parameter (`w_lf`, `w_status_D`, `b_lbm`, …) into
//!    typed values. An unknown parameter or a bad value refuses the whole request.
//! 3. [`Edit::apply`] checks the edit against the balancer's current state (the member
//!    exists, a growth slot is free, …) and only then changes it.
//!
//! So one request's changes apply all together or not at all: a valid `w_lf` next to an
//! invalid `w_ls` changes nothing. The nonce is checked with [`nonce_matches`] before
//! applying.
//!
//! ```
//! use std::time::Instant;
//! use proxy_balancer_core::{BalancerParams, BalancerStore, MemberParams, StatusFlags};
//! use proxy_balancer_manager::edit::{nonce_matches, parse_form, Edit, GrowthSlots};
//!
//! let mut params = BalancerParams::new("mycluster");
//! params.set("nonce", "s3cret")?;
//! let member = MemberParams::new("http://127.0.0.1:8001")?.with_status(StatusFlags::DISABLED);
//! let store = BalancerStore::new(params, [member], Instant::now())?;
//! let slots = GrowthSlots::of(&store); // at start: every member is a configured one
//!
//! let form = parse_form(b"b=mycluster&w=http%3A%2F%2F127.0.0.1%3A8001&nonce=s3cret&w_status_D=0&w_lf=2")?;
//! assert!(nonce_matches(&store.snapshot().params().nonce, form.nonce(), ""));
//! let edit = Edit::from_form(&form)?;
//! let applied = edit.apply(&store, slots)?;
//! assert_eq!(applied.changed, ["loadfactor", "status"]);
//! assert!(applied.lb_reset, "the member became usable");
//! assert!(store.snapshot().members()[0].is_usable());
//!
//! // Out of range: refused with the parameter and the value, nothing changed.
//! let err = Edit::from_form(&parse_form(b"b=mycluster&w=http://127.0.0.1:8001&w_lf=2&w_ls=100")?)
//!     .unwrap_err();
//! assert_eq!(err.to_string(), "invalid value \"100\" for `w_ls`: must be between 0 and 99");
//! assert_eq!(err.status(), 400);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Apache
//!
//! Parameters and ranges are those of Apache 2.4's balancer-manager. Differences:
//!
//! - Values are percent-decoded once; Apache decodes them twice, so `%2541` is `A` there and
//!   `%41` here.
//! - A body of up to [`MAX_FORM_BYTES`] is read whole, and a larger one is refused. Apache
//!   reads the first 1024 bytes and drops the rest without a word.
//! - Parameter names match without regard to case, as in Apache's tables. A parameter given
//!   twice is an error. Apache takes the first.
//! - An unknown parameter, a malformed value or a value out of range refuses the request with
//!   the reason. Apache skips that field and applies the others.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use http::StatusCode;
use proxy_balancer_core::{
    BalancerParams, BalancerSnapshot, BalancerStore, HcExprName, HcParams, HcUri, LbMethodKind,
    LbSet, LoadFactor, MemberId, MemberParams, MemberUrl, Nonce, ParamError, Route, StatusFlags,
    StickySession,
};

/// The largest form body or query string accepted, in bytes.
///
/// 16 KiB holds every field of the manager's forms many times over (Apache reads only 1024
/// bytes) while keeping a hostile request cheap to refuse. Callers should stop reading a body
/// after `MAX_FORM_BYTES + 1` bytes and pass what they have, which [`parse_form`] refuses.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

/// The shortest health-check interval the manager accepts (`w_hi`), as in Apache
/// (`HCHECK_WATHCHDOG_INTERVAL`, 100 ms).
const MIN_HC_INTERVAL: Duration = HcParams::MIN_INTERVAL;

/// The longest `b_tmo` the manager accepts, in seconds, as in Apache.
const MAX_BALANCER_TIMEOUT: u32 = 7200;

/// The highest `b_max` the manager accepts, as in Apache.
const MAX_MAX_ATTEMPTS: u32 = 99;

// ===== errors =====

/// Why a balancer-manager request was refused. Nothing was changed.
///
/// [`EditError::status`] gives the HTTP status to answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EditError {
    /// The form is longer than [`MAX_FORM_BYTES`].
    #[error("form too large: {len} bytes, the limit is {limit}")]
    TooLarge {
        /// The length received.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The form is not valid `application/x-www-form-urlencoded` text.
    #[error("malformed form at byte {offset}: {reason}")]
    Malformed {
        /// Byte offset of the problem in the body or query.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A parameter appears more than once.
    #[error("parameter `{param}` is given more than once")]
    Duplicate {
        /// The parameter's name.
        param: String,
    },
    /// Parameters that the balancer-manager does not know.
    #[error("unknown parameters: {}", .params.join(", "))]
    UnknownParameters {
        /// Their names, in the order given.
        params: Vec<String>,
    },
    /// A parameter's value is malformed or out of range.
    #[error("invalid value {value:?} for `{param}`: {reason}")]
    InvalidValue {
        /// The manager's parameter name, e.g. `w_lf`.
        param: Cow<'static, str>,
        /// The value as given.
        value: String,
        /// What is wrong and what is expected.
        reason: Cow<'static, str>,
    },
    /// A parameter that these changes need is missing, e.g. `w` for a member change.
    #[error("missing parameter `{param}`, needed by `{needed_by}`")]
    Missing {
        /// The missing parameter.
        param: &'static str,
        /// A parameter that needs it.
        needed_by: String,
    },
    /// No balancer has this name.
    #[error("no balancer named {name:?}")]
    UnknownBalancer {
        /// The name as given in `b`.
        name: String,
    },
    /// The balancer has no member with this URL.
    #[error("no member {url:?} in this balancer")]
    UnknownMember {
        /// The URL as given in `w`.
        url: String,
    },
    /// `b_nwrkr` names a member the balancer already has.
    #[error("member {url:?} already exists")]
    DuplicateMember {
        /// The URL.
        url: String,
    },
    /// Adding a member needs a free `growth` slot and there is none.
    #[error("no free slot to add member {url:?}: growth is {growth}, {used} used")]
    NoFreeSlot {
        /// The URL that was to be added.
        url: String,
        /// The balancer's `growth`.
        growth: u8,
        /// Slots already used.
        used: usize,
    },
    /// The `nonce` parameter is missing or does not match the balancer's.
    #[error("missing or wrong nonce for balancer {balancer:?}")]
    BadNonce {
        /// The balancer's name.
        balancer: String,
    },
}

impl EditError {
    /// The HTTP status to answer with: 404 for an unknown balancer or member, 403 for a bad
    /// nonce, 400 for anything else (bad input).
    ///
    /// ```
    /// use proxy_balancer_manager::edit::EditError;
    ///
    /// let err = EditError::UnknownBalancer { name: "nope".into() };
    /// assert_eq!(err.status(), 404);
    /// ```
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnknownBalancer { .. } | Self::UnknownMember { .. } => StatusCode::NOT_FOUND,
            Self::BadNonce { .. } => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn invalid(
        param: impl Into<Cow<'static, str>>,
        value: &str,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::InvalidValue {
            param: param.into(),
            value: value.to_owned(),
            reason: reason.into(),
        }
    }

    /// A core [`ParamError`] restated for the manager parameter `param`.
    fn from_param(param: &'static str, value: &str, err: ParamError) -> Self {
        let reason = match err {
            ParamError::InvalidValue { reason, .. } => reason,
            other => Cow::Owned(other.to_string()),
        };
        Self::invalid(param, value, reason)
    }
}

// ===== form =====

/// The decoded parameters of one request, every key kept in order.
///
/// ```
/// use proxy_balancer_manager::edit::parse_query;
///
/// let form = parse_query("b=mycluster&xml=1&w_status_D=")?;
/// assert_eq!(form.b(), Some("mycluster"));
/// assert!(form.xml());
/// assert_eq!(form.get("W_STATUS_D"), Some(""));
/// assert!(form.has_changes());
/// # Ok::<(), proxy_balancer_manager::edit::EditError>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// The value of the first parameter with this name (ASCII case-insensitive, as Apache's
    /// tables are).
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// `b`: the balancer's name, without `balancer://`.
    #[must_use]
    pub fn b(&self) -> Option<&str> {
        self.get("b")
    }

    /// `w`: the member's URL.
    #[must_use]
    pub fn w(&self) -> Option<&str> {
        self.get("w")
    }

    /// `nonce`.
    #[must_use]
    pub fn nonce(&self) -> Option<&str> {
        self.get("nonce")
    }

    /// Whether `xml` is present (with any value): the answer is XML.
    #[must_use]
    pub fn xml(&self) -> bool {
        self.get("xml").is_some()
    }

    /// Whether any parameter other than `b`, `w`, `nonce` and `xml` is present: the request
    /// asks for a change (so a GET carrying it is refused).
    #[must_use]
    pub fn has_changes(&self) -> bool {
        self.pairs.iter().any(|(k, _)| !is_selector(k))
    }

    /// Every parameter, in the order given, names as given.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// How many parameters there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there is no parameter.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

impl fmt::Debug for Form {
    /// Shows the names only: a nonce should not end up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.pairs.iter().map(|(k, _)| k))
            .finish()
    }
}

fn is_selector(key: &str) -> bool {
    ["b", "w", "nonce", "xml", "refresh"]
        .iter()
        .any(|s| key.eq_ignore_ascii_case(s))
}

/// Parses a POST body of type `application/x-www-form-urlencoded`: `&`-separated
/// `key=value` pairs, `+` for a space and `%XX` escapes, decoded once. A pair without `=`
/// has an empty value; empty pairs (`a=1&&b=2`) are skipped. Every key is kept.
///
/// ```
/// use proxy_balancer_manager::edit::parse_form;
///
/// let form = parse_form(b"w=http%3A%2F%2Fa%3A8001&w_wr=node+1&nonce")?;
/// assert_eq!(form.w(), Some("http://a:8001"));
/// assert_eq!(form.get("w_wr"), Some("node 1"));
/// assert_eq!(form.nonce(), Some(""));
/// assert!(parse_form(b"w_lf=%zz").is_err());
/// # Ok::<(), proxy_balancer_manager::edit::EditError>(())
/// ```
///
/// # Errors
///
/// [`EditError::TooLarge`] beyond [`MAX_FORM_BYTES`]; [`EditError::Malformed`] for a bad
/// `%` escape, text that is not UTF-8 once decoded, or an empty name (`=x`).
///
/// # Apache
///
/// Apache decodes values twice and reads only the first 1024 bytes; see the
/// [module docs](self).
pub fn parse_form(body: &[u8]) -> Result<Form, EditError> {
    if body.len() > MAX_FORM_BYTES {
        return Err(EditError::TooLarge {
            len: body.len(),
            limit: MAX_FORM_BYTES,
        });
    }
    let mut pairs = Vec::new();
    let mut start = 0;
    for piece in body.split(|&b| b == b'&') {
        let offset = start;
        start += piece.len() + 1;
        if piece.is_empty() {
            continue;
        }
        let (key, value, value_offset) = match piece.iter().position(|&b| b == b'=') {
            Some(i) => (&piece[..i], &piece[i + 1..], offset + i + 1),
            None => (piece, &piece[piece.len()..], offset + piece.len()),
        };
        if key.is_empty() {
            return Err(EditError::Malformed {
                offset,
                reason: "a parameter has no name",
            });
        }
        pairs.push((decode(key, offset)?, decode(value, value_offset)?));
    }
    Ok(Form { pairs })
}

/// Parses a GET query string (without the `?`) like [`parse_form`].
///
/// Unlike Apache, which keeps only `b`, `w`, `nonce` and `xml` of a GET, every key is kept so
/// that the caller can see with [`Form::has_changes`] that a change was asked for, and refuse
/// it.
///
/// ```
/// use proxy_balancer_manager::edit::parse_query;
///
/// assert!(!parse_query("b=mycluster&xml=1")?.has_changes());
/// assert!(parse_query("b=mycluster&w_status_D=0")?.has_changes());
/// # Ok::<(), proxy_balancer_manager::edit::EditError>(())
/// ```
///
/// # Errors
///
/// As [`parse_form`].
pub fn parse_query(query: &str) -> Result<Form, EditError> {
    parse_form(query.as_bytes())
}

/// Decodes one name or value; `offset` is where it starts in the whole form.
fn decode(text: &[u8], offset: usize) -> Result<String, EditError> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |j: usize| text.get(j).and_then(|&b| (b as char).to_digit(16));
                let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
                    return Err(EditError::Malformed {
                        offset: offset + i,
                        reason: "`%` must be followed by two hex digits",
                    });
                };
                // Two hex digits make at most 255.
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(u8::MAX));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|e| EditError::Malformed {
        offset: offset + e.utf8_error().valid_up_to(),
        reason: "the decoded text is not UTF-8",
    })
}

// ===== nonce =====

/// Whether the `nonce` parameter `given` lets a request change balancer `balancer_nonce`.
///
/// - [`Nonce::Disabled`] (`nonce=None`): no check, always true.
/// - [`Nonce::Fixed`]: `given` must equal the configured nonce.
/// - [`Nonce::Auto`]: `given` must equal `auto`, the nonce generated for this balancer at
///   start. An empty `auto` never matches.
///
/// The comparison takes the same time wherever the strings differ.
///
/// ```
/// use proxy_balancer_core::Nonce;
/// use proxy_balancer_manager::edit::nonce_matches;
///
/// assert!(nonce_matches(&Nonce::Fixed("s3cret".into()), Some("s3cret"), ""));
/// assert!(!nonce_matches(&Nonce::Fixed("s3cret".into()), Some("s3creT"), ""));
/// assert!(!nonce_matches(&Nonce::Auto, None, "7f0c…"));
/// assert!(nonce_matches(&Nonce::Disabled, None, ""));
/// ```
///
/// # Apache
///
/// With `nonce=None` Apache refuses every change; we turn the check off, as its docs say
/// (see the README, "Where we differ from Apache").
#[must_use]
pub fn nonce_matches(balancer_nonce: &Nonce, given: Option<&str>, auto: &str) -> bool {
    let expected = match balancer_nonce {
        Nonce::Disabled => return true,
        Nonce::Fixed(s) => s.as_str(),
        Nonce::Auto => auto,
        _ => return false,
    };
    match given {
        Some(given) if !expected.is_empty() => {
            constant_time_eq(expected.as_bytes(), given.as_bytes())
        }
        _ => false,
    }
}

/// Compares without an early exit on the first difference (the length is not secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

// ===== edit =====

/// A change to an optional text parameter: set it, or clear it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Update<T> {
    /// Set to this value.
    Set(T),
    /// Clear (an empty value in the form; `-` for `b_ss`).
    Clear,
}

impl<T> Update<T> {
    /// The value as an `Option`: `None` for [`Update::Clear`].
    #[must_use]
    pub fn into_option(self) -> Option<T> {
        match self {
            Self::Set(v) => Some(v),
            Self::Clear => None,
        }
    }
}

/// A health-check method (`w_hm`, Apache's `hcmethod`): the core's, shared with the probes
/// and the configuration reader.
pub use proxy_balancer_core::HcMethod;

/// Member parameter changes: `w_lf`, `w_ls`, `w_wr`, `w_rr` and `w_status_X`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberEdit {
    /// `w_lf`: Apache's `loadfactor`.
    pub load_factor: Option<LoadFactor>,
    /// `w_ls`: Apache's `lbset`.
    pub lb_set: Option<LbSet>,
    /// `w_wr`: Apache's `route`.
    pub route: Option<Update<Route>>,
    /// `w_rr`: Apache's `redirect`.
    pub redirect: Option<Update<Route>>,
    /// `w_status_X=1`: flags to set.
    pub set_flags: StatusFlags,
    /// `w_status_X=0` or empty: flags to clear.
    pub clear_flags: StatusFlags,
}

impl MemberEdit {
    /// Whether nothing is changed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    fn has_params(&self) -> bool {
        self.load_factor.is_some()
            || self.lb_set.is_some()
            || self.route.is_some()
            || self.redirect.is_some()
    }
}

/// Health-check changes of a member: `w_hm`, `w_hi`, `w_hp`, `w_hf`, `w_hu`, `w_he`.
///
/// [`Edit::apply`] writes them into the member's [`HcParams`] in the store, with the
/// member's other changes, in one new snapshot; the health probes follow the store. Whether
/// a `w_he` name is a defined condition is checked with [`Edit::check_hc_exprs`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealthEdit {
    /// `w_hm`: Apache's `hcmethod`.
    pub method: Option<HcMethod>,
    /// `w_hi`: Apache's `hcinterval`, at least 100 ms (the form gives milliseconds).
    pub interval: Option<Duration>,
    /// `w_hp`: Apache's `hcpasses`, at least 1.
    pub passes: Option<u32>,
    /// `w_hf`: Apache's `hcfails`, at least 1.
    pub fails: Option<u32>,
    /// `w_hu`: Apache's `hcuri` (empty clears it).
    pub uri: Option<HcUri>,
    /// `w_he`: Apache's `hcexpr` (the name of a `ProxyHCExpr`). Cleared when `w_hm` is
    /// `TCP` or `NONE`, as Apache does.
    pub expr: Option<Update<HcExprName>>,
}

impl HealthEdit {
    /// Whether nothing is changed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Writes the changes; returns the Apache names of those that changed.
    fn write(&self, hc: &mut HcParams) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if let Some(m) = self.method {
            if hc.method != m {
                hc.method = m;
                changed.push("hcmethod");
            }
        }
        if let Some(i) = self.interval {
            if hc.interval != i {
                hc.interval = i;
                changed.push("hcinterval");
            }
        }
        if let Some(n) = self.passes {
            if hc.passes != n {
                hc.passes = n;
                changed.push("hcpasses");
            }
        }
        if let Some(n) = self.fails {
            if hc.fails != n {
                hc.fails = n;
                changed.push("hcfails");
            }
        }
        if let Some(uri) = &self.uri {
            if hc.uri != *uri {
                hc.uri = uri.clone();
                changed.push("hcuri");
            }
        }
        if let Some(update) = &self.expr {
            let new = update.clone().into_option();
            if hc.expr != new {
                hc.expr = new;
                changed.push("hcexpr");
            }
        }
        changed
    }
}

/// Balancer parameter changes: `b_lbm`, `b_tmo`, `b_max`, `b_sforce`, `b_ss`.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct BalancerEdit {
    /// `b_lbm`: Apache's `lbmethod`.
    pub lb_method: Option<LbMethodKind>,
    /// `b_tmo`: Apache's `timeout`, 0 to 7200 s.
    pub timeout: Option<Duration>,
    /// `b_max`: Apache's `maxattempts`, 0 to 99.
    pub max_attempts: Option<u32>,
    /// `b_sforce`: Apache's `nofailover`.
    pub no_failover: Option<bool>,
    /// `b_ss`: Apache's `stickysession` (`-` clears it).
    pub sticky_session: Option<Update<StickySession>>,
}

impl BalancerEdit {
    /// Whether nothing is changed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The typed, validated changes of one balancer-manager request.
///
/// Build it with [`Edit::from_form`], apply it with [`Edit::apply`]; see the
/// [module docs](self).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Edit {
    /// `b`: the balancer's name as given, without `balancer://`.
    pub balancer_name: Option<String>,
    /// `w`: the member's URL as given.
    pub member_url: Option<String>,
    /// Changes to member `w`.
    pub member: MemberEdit,
    /// Health-check changes to member `w`.
    pub health: HealthEdit,
    /// Changes to balancer `b`.
    pub balancer: BalancerEdit,
    /// `b_wyes=1` with `b_nwrkr=URL`: a member to add (it starts disabled).
    pub add_member: Option<MemberUrl>,
}

impl Edit {
    /// Reads and validates every change parameter of `form`.
    ///
    /// Values: `w_lf` 1 to 100 with decimals; `w_ls` 0 to 99; `w_wr`, `w_rr` a route, empty
    /// clears; `w_status_I|N|D|H|R|S|C` `1` sets, `0` or empty clears; `w_hm` a method name;
    /// `w_hi` milliseconds, at least 100; `w_hp`, `w_hf` at least 1; `w_hu`, `w_he` text,
    /// empty clears; `b_lbm` an lbmethod; `b_tmo` 0 to 7200; `b_max` 0 to 99; `b_sforce` 0
    /// or 1; `b_ss` a sticky session name, `-` or empty clears; `b_wyes=1` adds the member
    /// `b_nwrkr` (without `b_wyes=1`, `b_nwrkr` is ignored: it is the "Add New Worker" text
    /// box, sent with every balancer form).
    ///
    /// ```
    /// use proxy_balancer_manager::edit::{parse_form, Edit, EditError};
    ///
    /// let edit = Edit::from_form(&parse_form(b"b=c&w=http://a&w_ls=2&w_status_H=1")?)?;
    /// assert_eq!(edit.member.lb_set.map(|s| s.get()), Some(2));
    ///
    /// let err = Edit::from_form(&parse_form(b"b=c&w_bogus=1&x=2")?).unwrap_err();
    /// assert_eq!(err.to_string(), "unknown parameters: w_bogus, x");
    /// # Ok::<(), EditError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`EditError::UnknownParameters`] naming every unknown parameter (checked first),
    /// [`EditError::Duplicate`], [`EditError::InvalidValue`] naming the parameter and value,
    /// [`EditError::Missing`] for a change without the `b` (or, for member changes, `w`) it
    /// applies to.
    pub fn from_form(form: &Form) -> Result<Self, EditError> {
        let unknown: Vec<String> = form
            .iter()
            .filter(|(k, _)| !is_known(k))
            .map(|(k, _)| k.to_owned())
            .collect();
        if !unknown.is_empty() {
            return Err(EditError::UnknownParameters { params: unknown });
        }
        for (i, (k, _)) in form.pairs.iter().enumerate() {
            if form.pairs[..i]
                .iter()
                .any(|(seen, _)| seen.eq_ignore_ascii_case(k))
            {
                return Err(EditError::Duplicate { param: k.clone() });
            }
        }

        let mut edit = Self {
            balancer_name: form.b().map(str::to_owned),
            member_url: form.w().map(str::to_owned),
            ..Self::default()
        };
        let mut add_requested = false;
        for (key, value) in form.iter() {
            let lower = key.to_ascii_lowercase();
            edit.read(&lower, value, &mut add_requested)?;
        }
        if matches!(edit.health.method, Some(HcMethod::Tcp | HcMethod::None)) {
            edit.health.expr = Some(Update::Clear);
        }
        if add_requested {
            let url = form.get("b_nwrkr").unwrap_or("");
            let url = MemberUrl::new(url).map_err(|e| EditError::from_param("b_nwrkr", url, e))?;
            edit.add_member = Some(url);
        }

        let first_change = |prefix: &str| {
            form.iter()
                .map(|(k, _)| k)
                .find(|k| k.to_ascii_lowercase().starts_with(prefix))
                .map(str::to_owned)
        };
        if (!edit.member.is_empty() || !edit.health.is_empty()) && edit.member_url.is_none() {
            return Err(EditError::Missing {
                param: "w",
                needed_by: first_change("w_").unwrap_or_default(),
            });
        }
        if !edit.is_empty() && edit.balancer_name.is_none() {
            let needed_by = first_change("w_")
                .or_else(|| first_change("b_"))
                .unwrap_or_default();
            return Err(EditError::Missing {
                param: "b",
                needed_by,
            });
        }
        Ok(edit)
    }

    /// Reads one parameter (`key` lower-cased) into `self`.
    fn read(&mut self, key: &str, value: &str, add: &mut bool) -> Result<(), EditError> {
        let param: &'static str = match KNOWN.iter().find(|k| **k == key) {
            Some(k) => k,
            None => {
                if let Some(letter) = key.strip_prefix("w_status_") {
                    return self.read_flag(key, letter, value);
                }
                return Ok(());
            }
        };
        let t = value.trim();
        match param {
            "w_lf" => {
                let lf = t
                    .parse::<LoadFactor>()
                    .map_err(|e| EditError::from_param(param, value, e))?;
                self.member.load_factor = Some(lf);
            }
            "w_ls" => {
                let ls = t
                    .parse::<LbSet>()
                    .map_err(|e| EditError::from_param(param, value, e))?;
                self.member.lb_set = Some(ls);
            }
            "w_wr" | "w_rr" => {
                let update = if value.is_empty() {
                    Update::Clear
                } else {
                    Update::Set(
                        Route::new(value).map_err(|e| EditError::from_param(param, value, e))?,
                    )
                };
                if param == "w_wr" {
                    self.member.route = Some(update);
                } else {
                    self.member.redirect = Some(update);
                }
            }
            "w_hm" => {
                let method: HcMethod = value.parse().map_err(|_| {
                    EditError::invalid(param, value, format!("expected one of {}", HcMethod::NAMES))
                })?;
                self.health.method = Some(method);
            }
            "w_hi" => {
                let ms = parse_number(param, value, "must be a whole number of milliseconds")?;
                let interval = Duration::from_millis(u64::from(ms));
                if interval < MIN_HC_INTERVAL {
                    return Err(EditError::invalid(param, value, "must be at least 100 ms"));
                }
                self.health.interval = Some(interval);
            }
            "w_hp" | "w_hf" => {
                let n = parse_number(param, value, "must be a whole number, at least 1")?;
                if n == 0 {
                    return Err(EditError::invalid(param, value, "must be at least 1"));
                }
                if param == "w_hp" {
                    self.health.passes = Some(n);
                } else {
                    self.health.fails = Some(n);
                }
            }
            "w_hu" => {
                let uri = HcUri::new(value).map_err(|e| EditError::from_param(param, value, e))?;
                self.health.uri = Some(uri);
            }
            "w_he" => {
                let update = if value.is_empty() {
                    Update::Clear
                } else {
                    Update::Set(
                        HcExprName::new(value)
                            .map_err(|e| EditError::from_param(param, value, e))?,
                    )
                };
                self.health.expr = Some(update);
            }
            "b_lbm" => {
                let method = t
                    .parse::<LbMethodKind>()
                    .map_err(|e| EditError::from_param(param, value, e))?;
                self.balancer.lb_method = Some(method);
            }
            "b_tmo" => {
                let s = parse_number(param, value, "must be a whole number of seconds")?;
                if s > MAX_BALANCER_TIMEOUT {
                    return Err(EditError::invalid(
                        param,
                        value,
                        "must be between 0 and 7200",
                    ));
                }
                self.balancer.timeout = Some(Duration::from_secs(u64::from(s)));
            }
            "b_max" => {
                let n = parse_number(param, value, "must be a whole number from 0 to 99")?;
                if n > MAX_MAX_ATTEMPTS {
                    return Err(EditError::invalid(param, value, "must be between 0 and 99"));
                }
                self.balancer.max_attempts = Some(n);
            }
            "b_sforce" => {
                self.balancer.no_failover = Some(match t {
                    "1" => true,
                    "0" => false,
                    _ => return Err(EditError::invalid(param, value, "must be 0 or 1")),
                });
            }
            "b_ss" => {
                let update = if t.is_empty() || t == "-" {
                    Update::Clear
                } else {
                    Update::Set(
                        t.parse::<StickySession>()
                            .map_err(|e| EditError::from_param(param, value, e))?,
                    )
                };
                self.balancer.sticky_session = Some(update);
            }
            "b_wyes" => {
                *add = match t {
                    "1" => true,
                    "0" | "" => false,
                    _ => return Err(EditError::invalid(param, value, "must be 1 or 0")),
                };
            }
            // b, w, nonce, xml and b_nwrkr (read with b_wyes).
            _ => {}
        }
        Ok(())
    }

    fn read_flag(&mut self, key: &str, letter: &str, value: &str) -> Result<(), EditError> {
        let flag = letter
            .chars()
            .next()
            .and_then(StatusFlags::from_letter)
            .filter(|_| letter.len() == 1);
        let Some(flag) = flag else {
            return Err(EditError::UnknownParameters {
                params: vec![key.to_owned()],
            });
        };
        // The canonical name, `w_status_D`, whatever the case given.
        let param = format!("w_status_{}", letter.to_ascii_uppercase());
        if flag == StatusFlags::IN_ERROR {
            return Err(EditError::invalid(
                param,
                value,
                "the error flag E is set by failures only and cannot be changed",
            ));
        }
        match value.trim() {
            "1" => self.member.set_flags |= flag,
            "0" | "" => self.member.clear_flags |= flag,
            _ => {
                return Err(EditError::invalid(
                    param,
                    value,
                    "must be 1 (set) or 0 (clear)",
                ))
            }
        }
        Ok(())
    }

    /// Whether the edit changes nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.member.is_empty()
            && self.health.is_empty()
            && self.balancer.is_empty()
            && self.add_member.is_none()
    }

    /// Applies the edit to `store`, the balancer named `b`: all of it, or nothing.
    ///
    /// First every check against the current state: the store's balancer is `b`, member
    /// `w` exists (when the edit changes it), a member to add is not there yet and a growth
    /// slot is free ([`GrowthSlots`]). Then, in order: the new member is added (disabled, as
    /// Apache adds it), member `w`'s parameters change in one
    /// [`BalancerStore::update_member`], the balancer's in one
    /// [`BalancerStore::update_params`], and the flags are set and cleared.
    ///
    /// ```
    /// use std::time::Instant;
    /// use proxy_balancer_core::{BalancerParams, BalancerStore, StatusFlags};
    /// use proxy_balancer_manager::edit::{parse_form, Edit, GrowthSlots};
    ///
    /// let mut params = BalancerParams::new("c");
    /// params.set("growth", "1")?;
    /// let store = BalancerStore::new(params, [], Instant::now())?;
    /// let slots = GrowthSlots::of(&store);
    /// let add = Edit::from_form(&parse_form(b"b=c&b_wyes=1&b_nwrkr=http://new:80")?)?;
    /// let id = add.apply(&store, slots)?.added.expect("added");
    /// let snapshot = store.snapshot();
    /// assert_eq!(snapshot.member(id).map(|m| m.flags()), Some(StatusFlags::DISABLED));
    /// // The only slot is used now.
    /// let again = Edit::from_form(&parse_form(b"b=c&b_wyes=1&b_nwrkr=http://other:80")?)?;
    /// assert_eq!(again.apply(&store, slots).unwrap_err().status(), 400);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Apache
    ///
    /// A changed `w_lf` sets every member's `lbstatus` afresh (the core does it); a changed
    /// `b_lbm`, or member `w` going from unusable to usable, resets the balancer's
    /// `lbstatus` ([`BalancerStore::reset_lb`]).
    ///
    /// # Errors
    ///
    /// [`EditError::UnknownBalancer`], [`EditError::UnknownMember`],
    /// [`EditError::DuplicateMember`], [`EditError::NoFreeSlot`]. If another writer removes
    /// member `w` between the checks and the writes, the member added by this edit is
    /// removed again and [`EditError::UnknownMember`] is returned.
    pub fn apply(&self, store: &BalancerStore, slots: GrowthSlots) -> Result<Applied, EditError> {
        let mut applied = Applied::default();
        if self.is_empty() {
            return Ok(applied);
        }
        let snapshot = store.snapshot();
        if let Some(name) = &self.balancer_name {
            if BalancerParams::new(name).name != snapshot.params().name {
                return Err(EditError::UnknownBalancer { name: name.clone() });
            }
        }
        let url = self.member_url.as_deref().unwrap_or("");
        let target = if self.member.is_empty() && self.health.is_empty() {
            None
        } else {
            let member = snapshot
                .member_by_url(url)
                .ok_or_else(|| EditError::UnknownMember {
                    url: url.to_owned(),
                })?;
            Some(member.id())
        };
        if let Some(new) = &self.add_member {
            if snapshot.members().iter().any(|m| m.params().url == *new) {
                return Err(EditError::DuplicateMember {
                    url: new.to_string(),
                });
            }
            let used = slots.used(&snapshot);
            let growth = snapshot.params().growth;
            if used >= usize::from(growth) {
                return Err(EditError::NoFreeSlot {
                    url: new.to_string(),
                    growth,
                    used,
                });
            }
        }

        // Writes. Only the first two can fail, and only if another writer got in between;
        // the second undoes the first then.
        if let Some(new) = &self.add_member {
            let params = MemberParams::from_url(new.clone()).with_status(StatusFlags::DISABLED);
            let id = store
                .add_member(params)
                .map_err(|_| EditError::DuplicateMember {
                    url: new.to_string(),
                })?;
            applied.added = Some(id);
        }
        if let Some(id) = target {
            applied.member = Some(id);
            if self.member.has_params() || !self.health.is_empty() {
                let result = store.update_member(id, |p| {
                    let mut changed = self.member.write(p);
                    changed.extend(self.health.write(&mut p.hc));
                    changed
                });
                match result {
                    Ok(changed) => applied.changed.extend(changed),
                    Err(_) => {
                        if let Some(added) = applied.added {
                            // Undo: the edit applies all together or not at all.
                            let _ = store.remove_member(added);
                        }
                        return Err(EditError::UnknownMember {
                            url: url.to_owned(),
                        });
                    }
                }
            }
        }
        if !self.balancer.is_empty() {
            let (changed, method_changed) = store.update_params(|p| self.balancer.write(p));
            applied.changed.extend(changed);
            applied.lb_reset |= method_changed;
        }
        if let (Some(id), false) = (target, self.flag_changes_empty()) {
            if let Some(member) = snapshot.member(id) {
                let state = member.state();
                let before = state.insert_flags(self.member.set_flags);
                state.remove_flags(self.member.clear_flags);
                let after = state.flags();
                if before != after {
                    applied.changed.push("status");
                }
                applied.flags = Some((before, after));
                if !before.is_usable() && after.is_usable() {
                    store.reset_lb();
                    applied.lb_reset = true;
                }
            }
        }
        Ok(applied)
    }

    /// Checks that a `w_he` condition name is one of those defined (`known`): the core
    /// checks only a name's form, the conditions are held by the health probes. The
    /// [`BalancerManager`](crate::BalancerManager) calls this before [`Edit::apply`] with
    /// the names given to
    /// [`BalancerManagerBuilder::hc_expr_names`](crate::BalancerManagerBuilder::hc_expr_names).
    ///
    /// ```
    /// use proxy_balancer_manager::edit::{parse_form, Edit};
    ///
    /// let edit = Edit::from_form(&parse_form(b"b=c&w=http://a&w_he=in_service")?)?;
    /// assert!(edit.check_hc_exprs(|name| name == "in_service").is_ok());
    /// let err = edit.check_hc_exprs(|_| false).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "invalid value \"in_service\" for `w_he`: unknown health check condition expr"
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`EditError::InvalidValue`] naming `w_he` for an unknown name.
    pub fn check_hc_exprs(&self, known: impl Fn(&str) -> bool) -> Result<(), EditError> {
        match &self.health.expr {
            Some(Update::Set(name)) if !known(name.as_str()) => Err(EditError::invalid(
                "w_he",
                name.as_str(),
                "unknown health check condition expr",
            )),
            _ => Ok(()),
        }
    }

    fn flag_changes_empty(&self) -> bool {
        self.member.set_flags.is_empty() && self.member.clear_flags.is_empty()
    }
}

impl MemberEdit {
    /// Writes the parameter changes; returns the Apache names of those that changed.
    fn write(&self, p: &mut MemberParams) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if let Some(lf) = self.load_factor {
            if p.load_factor != lf {
                p.load_factor = lf;
                changed.push("loadfactor");
            }
        }
        if let Some(ls) = self.lb_set {
            if p.lb_set != ls {
                p.lb_set = ls;
                changed.push("lbset");
            }
        }
        for (update, field, name) in [
            (&self.route, &mut p.route, "route"),
            (&self.redirect, &mut p.redirect, "redirect"),
        ] {
            if let Some(update) = update {
                let new = update.clone().into_option();
                if *field != new {
                    *field = new;
                    changed.push(name);
                }
            }
        }
        changed
    }
}

impl BalancerEdit {
    /// Writes the changes; returns the Apache names of those that changed and whether the
    /// lbmethod did.
    fn write(&self, p: &mut BalancerParams) -> (Vec<&'static str>, bool) {
        let mut changed = Vec::new();
        let mut method_changed = false;
        if let Some(method) = &self.lb_method {
            // By name: a form re-sending `heartbeat` keeps the configured report age.
            if method.name() != p.lb_method.name() {
                p.lb_method = method.clone();
                changed.push("lbmethod");
                method_changed = true;
            }
        }
        if let Some(t) = self.timeout {
            if p.timeout != t {
                p.timeout = t;
                changed.push("timeout");
            }
        }
        if let Some(n) = self.max_attempts {
            if p.max_attempts != Some(n) {
                p.max_attempts = Some(n);
                changed.push("maxattempts");
            }
        }
        if let Some(b) = self.no_failover {
            if p.no_failover != b {
                p.no_failover = b;
                changed.push("nofailover");
            }
        }
        if let Some(update) = &self.sticky_session {
            let new = update.clone().into_option();
            if p.sticky_session != new {
                p.sticky_session = new;
                changed.push("stickysession");
            }
        }
        (changed, method_changed)
    }
}

/// The manager's parameter names, lower-case (`w_status_X` is checked apart).
const KNOWN: [&str; 21] = [
    "b", "w", "nonce", "xml", "w_lf", "w_ls", "w_wr", "w_rr", "w_hm", "w_hi", "w_hp", "w_hf",
    "w_hu", "w_he", "b_lbm", "b_tmo", "b_max", "b_sforce", "b_ss", "b_wyes", "b_nwrkr",
];

fn is_known(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    KNOWN.contains(&lower.as_str())
        || lower.strip_prefix("w_status_").is_some_and(|l| {
            let mut chars = l.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => StatusFlags::from_letter(c).is_some(),
                _ => false,
            }
        })
}

fn parse_number(param: &'static str, value: &str, reason: &'static str) -> Result<u32, EditError> {
    let t = value.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EditError::invalid(param, value, reason));
    }
    // All digits: too long a number is out of every range here.
    Ok(t.parse::<u32>().unwrap_or(u32::MAX))
}

// ===== growth slots =====

/// How many of a balancer's `growth` slots are used: how many members the manager may still
/// add.
///
/// A slot is used by each member present whose [`MemberId`] is not one of the configured
/// members'. Ids are handed out in order and never reused, so the configured members are
/// those with ids below the count taken at start ([`GrowthSlots::of`] right after building
/// the store, or [`GrowthSlots::new`] with the number of configured members). A member added
/// by the manager and removed again frees its slot (Apache cannot remove members).
///
/// ```
/// use std::time::Instant;
/// use proxy_balancer_core::{BalancerParams, BalancerStore, MemberParams};
/// use proxy_balancer_manager::edit::GrowthSlots;
///
/// let mut params = BalancerParams::new("c");
/// params.set("growth", "2")?;
/// let store = BalancerStore::new(params, [MemberParams::new("http://a")?], Instant::now())?;
/// let slots = GrowthSlots::of(&store);
/// store.add_member(MemberParams::new("http://b")?)?;
/// let snapshot = store.snapshot();
/// assert_eq!((slots.used(&snapshot), slots.free(&snapshot)), (1, 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrowthSlots {
    configured: u32,
}

impl GrowthSlots {
    /// Slots for a store built with `configured` members (ids 0 to `configured - 1`).
    #[must_use]
    pub const fn new(configured: u32) -> Self {
        Self { configured }
    }

    /// Slots for `store` as it is now: every member present counts as configured. Call it
    /// once, when the store is built, and keep the value.
    #[must_use]
    pub fn of(store: &BalancerStore) -> Self {
        let snapshot = store.snapshot();
        let next = snapshot
            .members()
            .iter()
            .map(|m| m.id().get().saturating_add(1))
            .max()
            .unwrap_or(0);
        Self::new(next)
    }

    /// How many members added beyond the configured ones are present.
    #[must_use]
    pub fn used(&self, snapshot: &BalancerSnapshot) -> usize {
        snapshot
            .members()
            .iter()
            .filter(|m| m.id().get() >= self.configured)
            .count()
    }

    /// How many members may still be added: `growth` minus [`GrowthSlots::used`].
    #[must_use]
    pub fn free(&self, snapshot: &BalancerSnapshot) -> usize {
        usize::from(snapshot.params().growth).saturating_sub(self.used(snapshot))
    }
}

// ===== applied =====

/// What [`Edit::apply`] changed, for logs and persistence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Applied {
    /// Apache names of the parameters whose value changed (`loadfactor`, `lbset`, `route`,
    /// `redirect`, `hcmethod`, `hcinterval`, `hcpasses`, `hcfails`, `hcuri`, `hcexpr`,
    /// `status`, `lbmethod`, `timeout`, `maxattempts`, `nofailover`, `stickysession`),
    /// member ones first. A parameter given with its current value is
    /// not listed.
    pub changed: Vec<&'static str>,
    /// Member `w`, when the edit was about it.
    pub member: Option<MemberId>,
    /// Member `w`'s flags before and after, when the edit set or cleared any.
    pub flags: Option<(StatusFlags, StatusFlags)>,
    /// The member added with `b_wyes=1`.
    pub added: Option<MemberId>,
    /// Whether the balancer's `lbstatus` was reset (new lbmethod, or member `w` became
    /// usable).
    pub lb_reset: bool,
}

impl Applied {
    /// Whether nothing changed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.added.is_none()
    }
}

#[cfg(test)]
#[path = "edit_tests.rs"]
mod tests;
