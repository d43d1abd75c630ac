//! Edits: Apache's balancer-manager query API, parsed, validated and applied all together.
//!
//! A request goes through three steps, each of which can refuse it:
//!
//! 1. [`parse_form`] (a POST body) or [`parse_query`] (a GET query) decodes
//!    `application/x-www-form-urlencoded` text into a [`Form`].
//! 2. [`Edit::from_form`] reads every change parameter (`w_lf`, `w_status_D`, `b_lbm`, …) into
//!    typed values. An unknown parameter or a bad value refuses the whole request.
//! 3. [`Edit::apply`] checks the edit against the balancer's current state (the member
//!    exists, a growth slot is free, …) and only then changes it. [`Edit::check`] makes the
//!    same checks without changing anything (a manager sharing its edits checks them here
//!    before handing them to the shared store).
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
use std::time::Duration;

use proxy_balancer_core::{
    HcExprName, HcUri, LbMethodKind, LbSet, LoadFactor, MemberUrl, Route, StatusFlags,
    StickySession,
};

mod apply;
mod error;
mod nonce;
mod parse;
mod validate;

pub use self::apply::{Applied, GrowthSlots};
pub use self::error::EditError;
pub use self::nonce::nonce_matches;
pub use self::parse::{parse_form, parse_query, Form, MAX_FORM_BYTES};

#[cfg(test)]
mod tests;

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
}

/// Health-check changes of a member: `w_hm`, `w_hi`, `w_hp`, `w_hf`, `w_hu`, `w_he`.
///
/// [`Edit::apply`] writes them into the member's [`HcParams`](proxy_balancer_core::HcParams) in the store, with the
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
    /// `w_ttl=SECONDS` (proxy-balancer's, not Apache's): the flags this edit sets
    /// (`w_status_X=1`) lapse after this long, e.g. a drain for a maintenance window. Only a
    /// shared store ([`SharedEdits`](crate::shared::SharedEdits)) carries it out; the
    /// [`BalancerManager`](crate::BalancerManager) refuses it without one, and
    /// [`Edit::apply`] does not read it.
    pub ttl: Option<Duration>,
}

impl Edit {
    /// Whether the edit changes nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.member.is_empty()
            && self.health.is_empty()
            && self.balancer.is_empty()
            && self.add_member.is_none()
    }
}
