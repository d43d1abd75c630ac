//! Parameters of the selection beyond Apache: the hash key and ring of `lbmethod=hash`,
//! outlier ejection, the panic threshold, the retry budget and peak-EWMA's decay.
//!
//! Each is our documented extension of Apache's `ProxySet` syntax; Apache refuses these
//! names, so a configuration that uses them is ours alone.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::ParamError;

/// `hashkey=`: what `lbmethod=hash` hashes.
///
/// | text | key |
/// | --- | --- |
/// | `client` (default) | the client's IP address (its bytes; the port is left out) |
/// | `header:NAME` | the value of the request header `NAME` (the first one) |
/// | `cookie:NAME` | the value of the cookie `NAME` |
/// | `path` | the request's path |
/// | `uri` | the request's path and query |
///
/// A request without the key (no such header or cookie, no client address) is balanced as
/// byrequests would among the same candidates.
///
/// ```
/// use proxy_balancer_core::HashKey;
///
/// let key: HashKey = "cookie:SESSION".parse()?;
/// assert_eq!(key, HashKey::Cookie("SESSION".into()));
/// assert_eq!(key.to_string(), "cookie:SESSION");
/// assert_eq!("Header:X-User".parse::<HashKey>()?, HashKey::Header("x-user".into()));
/// assert!("cookie:".parse::<HashKey>().is_err());
/// # Ok::<(), proxy_balancer_core::ParamError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
#[non_exhaustive]
pub enum HashKey {
    /// The client's IP address.
    #[default]
    Client,
    /// A request header's value; the name is kept lower-case.
    Header(Box<str>),
    /// A cookie's value.
    Cookie(Box<str>),
    /// The request's path.
    Path,
    /// The request's path and query.
    Uri,
}

impl FromStr for HashKey {
    type Err = ParamError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, name) = match s.split_once(':') {
            Some((kind, name)) => (kind, Some(name)),
            None => (s, None),
        };
        let bad = |why: &str| ParamError::invalid("hashkey", s, why.to_owned());
        let valid_name = |name: &str| {
            !name.is_empty()
                && name.len() <= 256
                && name
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"\"(),/:;<=>?@[\\]{}".contains(&b))
        };
        match (kind.to_ascii_lowercase().as_str(), name) {
            ("client", None) => Ok(Self::Client),
            ("path", None) => Ok(Self::Path),
            ("uri", None) => Ok(Self::Uri),
            ("header", Some(name)) if valid_name(name) => {
                Ok(Self::Header(name.to_ascii_lowercase().into()))
            }
            ("cookie", Some(name)) if valid_name(name) => Ok(Self::Cookie(name.into())),
            ("header" | "cookie", _) => Err(bad(
                "needs a name after the colon: 1 to 256 visible characters, no separators",
            )),
            _ => Err(bad(
                "expected client, path, uri, header:NAME or cookie:NAME",
            )),
        }
    }
}

impl fmt::Display for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Client => f.write_str("client"),
            Self::Header(name) => write!(f, "header:{name}"),
            Self::Cookie(name) => write!(f, "cookie:{name}"),
            Self::Path => f.write_str("path"),
            Self::Uri => f.write_str("uri"),
        }
    }
}

/// `hashring=`: how `lbmethod=hash` maps keys to members.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
#[non_exhaustive]
pub enum HashRing {
    /// `maglev` (default): Google's Maglev table. Every member gets its share of the table
    /// to within one slot, and a lookup is one index.
    #[default]
    Maglev,
    /// `ketama`: the points of nginx's `hash … consistent` (160 per unit of weight, CRC32),
    /// so that keys land where an nginx in front of the same members sends them.
    Ketama,
}

impl FromStr for HashRing {
    type Err = ParamError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "maglev" => Ok(Self::Maglev),
            "ketama" => Ok(Self::Ketama),
            _ => Err(ParamError::invalid(
                "hashring",
                s,
                "expected maglev or ketama",
            )),
        }
    }
}

impl fmt::Display for HashRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Maglev => "maglev",
            Self::Ketama => "ketama",
        })
    }
}

/// Outlier ejection (beyond Apache; Envoy's model, opt-in): a member that answers too many
/// 5xx is taken out of balancing for a while, whatever `failonstatus` says.
///
/// `ProxySet` parameters: `ejectconsecutive=N` (N failures in a row),
/// `ejectsuccessrate=P` with `ejectwindow=S` and `ejectminrequests=N` (fewer than P % of
/// the answers in a window of S seconds succeeded, over at least N answers),
/// `ejecttime=S` (the first ejection's length; the k-th in a row lasts k times as long, up
/// to `ejectmaxtime=S`) and `ejectmax=P` (at most P % of the balancer's members are ejected
/// at once).
///
/// - **What fails**: an answer with a 5xx status, or a failure on the member's behalf
///   (connect error, timeout, reset, garbage); the client's own failures (its body) are
///   not counted. Every other answer succeeds. Envoy's default counts the same
///   (`split_external_local_origin_errors: false`).
/// - **The window**: counted per member, lock-free; judged by the first answer after the
///   window's end (a member that gets no traffic is not judged).
/// - **Ejected**: the member gets the flag [`StatusFlags::EJECTED`](crate::StatusFlags::EJECTED)
///   (`J`, manager text `Ejct`) and takes no balanced request, nor sticky one. The first
///   pick after its time lifts it (and logs it); with `slowstart` it then ramps. The
///   manager's `w_status_J=0` lifts it early.
/// - **ejectmax**: a store-wide count of ejected members, reserved by a compare-and-swap
///   before the flag is set, so the limit holds under any concurrency. Rounded down:
///   with `ejectmax=50`, one of 2 or 3 members, none of 1.
/// - **The multiplier** k: one more per ejection; one less for each window the member
///   spends in balancing, as Envoy decrements its ejection count per interval.
///
/// # Where we differ from Envoy
///
/// Envoy's `success_rate` rule is statistical (a member below the mean by a number of
/// standard deviations); `ejectsuccessrate` is an absolute threshold, Envoy's
/// `failure_percentage` rule (`ejectsuccessrate=80` is `failure_percentage_threshold: 20`).
/// Envoy ejects at least one host whatever `max_ejection_percent` says; here 50 % of one
/// member is none. Envoy sweeps every interval on a timer; here the window is judged by
/// the member's next answer, and an ejection ends at the next pick (no background task).
///
/// ```
/// use std::time::Duration;
/// use proxy_balancer_core::BalancerParams;
///
/// let mut params = BalancerParams::new("app");
/// params.set("ejectsuccessrate", "80")?;
/// params.set("ejectwindow", "30")?;
/// params.set("ejecttime", "10")?;
/// assert!(params.outlier.is_enabled());
/// assert_eq!(params.outlier.success_rate, Some(80));
/// assert_eq!(params.outlier.eject_time, Duration::from_secs(10));
/// assert_eq!(params.outlier.max_ejected(4), 2); // ejectmax=50 by default
/// # Ok::<(), proxy_balancer_core::ParamError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub struct OutlierParams {
    /// `ejectconsecutive`: 5xx answers in a row that eject (default none).
    pub consecutive_5xx: Option<u32>,
    /// `ejectsuccessrate`: the lowest share of non-5xx answers, in percent (default none).
    pub success_rate: Option<u8>,
    /// `ejectwindow`: the window of the success rate (default 10 s).
    pub window: Duration,
    /// `ejectminrequests`: answers a window needs before its rate counts (default 20).
    pub min_requests: u32,
    /// `ejecttime`: how long the first ejection lasts (default 30 s).
    pub eject_time: Duration,
    /// `ejectmaxtime`: the longest ejection (default 300 s).
    pub max_eject_time: Duration,
    /// `ejectmax`: the most members ejected at once, in percent of the balancer's members,
    /// rounded down (default 50).
    pub max_ejected_percent: u8,
}

impl OutlierParams {
    /// No ejection, and the defaults of the other fields.
    pub const OFF: Self = Self {
        consecutive_5xx: None,
        success_rate: None,
        window: Duration::from_secs(10),
        min_requests: 20,
        eject_time: Duration::from_secs(30),
        max_eject_time: Duration::from_secs(300),
        max_ejected_percent: 50,
    };

    /// Whether any ejection rule is on.
    #[must_use]
    pub const fn is_enabled(&self) -> bool {
        self.consecutive_5xx.is_some() || self.success_rate.is_some()
    }

    /// The most members of `members` that may be ejected at once.
    #[must_use]
    pub const fn max_ejected(&self, members: usize) -> usize {
        members * self.max_ejected_percent as usize / 100
    }
}

impl Default for OutlierParams {
    fn default() -> Self {
        Self::OFF
    }
}

/// The retry budget of `retry_idempotent` (as tower's `TpsBudget`): retries may add at most
/// `percent` % of the requests of the last `window`, plus `min_per_sec` retries a second.
///
/// `ProxySet` parameters: `retrybudget=P` (percent, 0–1000, or `Off`),
/// `retrybudgetmin=N` (retries a second always allowed) and `retrybudgetwindow=S`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub struct RetryBudgetParams {
    /// Retries allowed per 100 requests (default 20).
    pub percent: u16,
    /// Retries a second allowed whatever the traffic (default 10).
    pub min_per_sec: u32,
    /// How long a request's deposit counts (default 10 s).
    pub window: Duration,
}

impl RetryBudgetParams {
    /// tower's defaults: 20 %, 10 a second, over 10 s.
    pub const DEFAULT: Self = Self {
        percent: 20,
        min_per_sec: 10,
        window: Duration::from_secs(10),
    };
}

impl Default for RetryBudgetParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Peak-EWMA's default decay (`ewmadecay=`): 10 s, as tower's and linkerd's.
pub const DEFAULT_EWMA_DECAY: Duration = Duration::from_secs(10);

/// A whole number in a range, for the parameters above.
pub(crate) fn parse_number<T>(
    param: &'static str,
    value: &str,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ParamError>
where
    T: FromStr + PartialOrd + fmt::Display + Copy,
{
    match value.trim().parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(ParamError::invalid(
            param,
            value,
            format!(
                "must be a whole number from {} to {}",
                range.start(),
                range.end()
            ),
        )),
    }
}
