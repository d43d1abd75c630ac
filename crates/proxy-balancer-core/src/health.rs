//! A member's health-check parameters (mod_proxy_hcheck's `hc*`), typed and validated, and
//! the [`HealthReport`] through which a prober tells others what it saw.
//!
//! The parameters live in [`MemberParams::hc`](crate::MemberParams::hc), so they are in the
//! snapshot like every other member parameter: a prober reads them from there, and an edit
//! (the balancer-manager's `w_hi`, …) publishes a new snapshot that the prober follows.

use std::fmt;
use std::time::Duration;

use crate::error::ParamError;
use crate::hcmethod::HcMethod;
use crate::member::MemberId;

/// Apache keeps `hcuri` in a 64-byte shared-memory field (`PROXY_WORKER_RFC1035_NAME_SIZE`)
/// with its NUL: at most 63 bytes.
const MAX_URI_LEN: usize = 63;

/// Apache keeps `hcexpr` in a 16-byte shared-memory field (`PROXY_WORKER_MAX_SCHEME_SIZE`)
/// with its NUL: at most 15 bytes.
const MAX_EXPR_NAME_LEN: usize = 15;

/// A health-check URI (`hcuri`): up to 63 bytes, without whitespace or control characters;
/// empty (the default) probes the member's own path.
///
/// It is appended to the member URL's path as is: `health` without a slash is sent as
/// `health`, as Apache does.
///
/// ```
/// use proxy_balancer_core::HcUri;
///
/// assert_eq!(HcUri::new("/health")?.as_str(), "/health");
/// assert!(HcUri::new("").is_ok_and(|u| u.is_empty()));
/// assert!(HcUri::new("/a b").is_err());
/// assert!(HcUri::new(&"u".repeat(64)).is_err());
/// # Ok::<(), proxy_balancer_core::ParamError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct HcUri(Option<Box<str>>);

impl HcUri {
    /// A health-check URI.
    ///
    /// # Errors
    ///
    /// [`ParamError::InvalidValue`] naming `hcuri` for 64 bytes or more, whitespace or
    /// control characters.
    pub fn new(uri: &str) -> Result<Self, ParamError> {
        if uri.len() > MAX_URI_LEN {
            return Err(ParamError::invalid(
                "hcuri",
                uri,
                "must be shorter than 64 bytes",
            ));
        }
        if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ParamError::invalid(
                "hcuri",
                uri,
                "must not contain whitespace or control characters",
            ));
        }
        Ok(Self((!uri.is_empty()).then(|| uri.into())))
    }

    /// No URI: the member's own path is probed.
    pub const EMPTY: Self = Self(None);

    /// The URI text (empty when not set).
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.0.as_deref().unwrap_or("")
    }

    /// Whether no URI is set.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.0.is_none()
    }
}

impl fmt::Display for HcUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for HcUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HcUri({:?})", self.as_str())
    }
}

/// The name of a health-check condition (`hcexpr=name`, defined by `ProxyHCExpr name
/// {…}`): 1 to 15 bytes without whitespace or control characters.
///
/// The core checks only the name's form; whether a condition of that name is defined is
/// checked by whoever holds the definitions (the health probes), when the store is built
/// and when the balancer-manager edits it.
///
/// ```
/// use proxy_balancer_core::HcExprName;
///
/// assert_eq!(HcExprName::new("in_service")?.as_str(), "in_service");
/// assert!(HcExprName::new("").is_err());
/// assert!(HcExprName::new("a_much_too_long_name").is_err());
/// # Ok::<(), proxy_balancer_core::ParamError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HcExprName(Box<str>);

impl HcExprName {
    /// A condition name.
    ///
    /// # Errors
    ///
    /// [`ParamError::InvalidValue`] naming `hcexpr` for an empty name, one longer than 15
    /// bytes (Apache's limit), or one with whitespace or control characters.
    pub fn new(name: &str) -> Result<Self, ParamError> {
        if name.is_empty() {
            return Err(ParamError::invalid("hcexpr", name, "must not be empty"));
        }
        if name.len() > MAX_EXPR_NAME_LEN {
            return Err(ParamError::invalid(
                "hcexpr",
                name,
                "must be at most 15 bytes long",
            ));
        }
        if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ParamError::invalid(
                "hcexpr",
                name,
                "must not contain whitespace or control characters",
            ));
        }
        Ok(Self(name.into()))
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HcExprName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for HcExprName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HcExprName({:?})", &*self.0)
    }
}

/// A member's health-check parameters: mod_proxy_hcheck's `hcmethod`, `hcuri`,
/// `hcinterval`, `hcpasses`, `hcfails` and `hcexpr`, with Apache's defaults. `hctemplate`
/// is not kept: a template's parameters are applied where it stands
/// ([`HcParams::apply_template`]), and the resolved values are what is kept.
///
/// ```
/// use std::time::Duration;
///
/// use proxy_balancer_core::{HcMethod, HcParams};
///
/// let mut hc = HcParams::default();
/// assert_eq!(hc.method, HcMethod::None); // no health check unless asked for
/// // ProxyHCTemplate web hcmethod=GET hcuri=/health hcfails=3
/// hc.apply_template([("hcmethod", "GET"), ("hcuri", "/health"), ("hcfails", "3")])?;
/// hc.set("hcinterval", "200ms")?;
/// assert_eq!(hc.method, HcMethod::Get);
/// assert_eq!((hc.uri.as_str(), hc.interval, hc.fails), ("/health", Duration::from_millis(200), 3));
/// assert!(hc.set("hcinterval", "99ms").is_err());
/// # Ok::<(), proxy_balancer_core::ParamError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub struct HcParams {
    /// `hcmethod`: how the member is probed (default `NONE`: not probed).
    pub method: HcMethod,
    /// `hcuri`: appended to the member URL's path for the probe (default empty).
    pub uri: HcUri,
    /// `hcinterval`: the pause between probes (default 30 s, at least 100 ms).
    pub interval: Duration,
    /// `hcpasses`: passes in a row that bring a failed member back (default 1; 0 acts as 1).
    pub passes: u32,
    /// `hcfails`: failures in a row that take a member out (default 1; 0 acts as 1).
    pub fails: u32,
    /// `hcexpr`: the name of the condition a response must meet (default none: a status
    /// from 200 to 399 passes).
    pub expr: Option<HcExprName>,
}

impl HcParams {
    /// Apache's default `hcinterval`: 30 seconds.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);

    /// The shortest `hcinterval` Apache accepts ("Interval must be a positive value greater
    /// than 100ms"): its health-check watchdog runs every 100 ms, so a shorter period could
    /// not be kept anyway.
    pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

    /// Apache's defaults: `hcmethod=NONE` (no health check), empty `hcuri`,
    /// `hcinterval=30`, `hcpasses=1`, `hcfails=1`, no `hcexpr`.
    pub const DEFAULT: Self = Self {
        method: HcMethod::None,
        uri: HcUri::EMPTY,
        interval: Self::DEFAULT_INTERVAL,
        passes: 1,
        fails: 1,
        expr: None,
    };

    /// Whether the member is probed at all (`hcmethod` is not `NONE`).
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.method != HcMethod::None
    }

    /// `hcpasses` as used: at least 1.
    #[must_use]
    pub fn passes_needed(&self) -> u32 {
        self.passes.max(1)
    }

    /// `hcfails` as used: at least 1.
    #[must_use]
    pub fn fails_needed(&self) -> u32 {
        self.fails.max(1)
    }

    /// Sets one `hc*` parameter from its Apache name (case-insensitive) and text.
    ///
    /// Values: `hcmethod` one of [`HcMethod::NAMES`] (any case); `hcuri` see [`HcUri`];
    /// `hcinterval` a whole number of seconds or with a unit (`200ms`, `2s`, `1mi`, `1h`),
    /// at least 100 ms; `hcpasses`, `hcfails` a whole number, 0 or more; `hcexpr` a
    /// condition name ([`HcExprName`]), empty clears it.
    ///
    /// # Errors
    ///
    /// [`ParamError::InvalidValue`] for a bad value, and for `hctemplate`, which needs the
    /// template's parameters ([`HcParams::apply_template`]);
    /// [`ParamError::UnknownParameter`] for any other name.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ParamError> {
        match key.trim().to_ascii_lowercase().as_str() {
            "hcmethod" => self.method = value.parse()?,
            "hcuri" => self.uri = HcUri::new(value)?,
            "hcinterval" => self.interval = parse_interval(value)?,
            "hcpasses" => self.passes = parse_count("hcpasses", value)?,
            "hcfails" => self.fails = parse_count("hcfails", value)?,
            "hcexpr" if value.is_empty() => self.expr = None,
            "hcexpr" => self.expr = Some(HcExprName::new(value)?),
            "hctemplate" => {
                return Err(ParamError::invalid(
                    "hctemplate",
                    value,
                    "a template is resolved when the configuration is loaded: apply its \
                     parameters with HcParams::apply_template",
                ))
            }
            _ => {
                return Err(ParamError::UnknownParameter {
                    param: key.to_owned(),
                })
            }
        }
        Ok(())
    }

    /// Applies the parameters of a template (`ProxyHCTemplate name k=v …`) in order, as
    /// `hctemplate=name` does where it stands: parameters set after it override the
    /// template's, as in Apache.
    ///
    /// Nothing changes if any of them is refused.
    ///
    /// # Errors
    ///
    /// As [`HcParams::set`]; a template cannot use `hctemplate` itself.
    pub fn apply_template<K, V>(
        &mut self,
        params: impl IntoIterator<Item = (K, V)>,
    ) -> Result<(), ParamError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut scratch = self.clone();
        for (key, value) in params {
            let (key, value) = (key.as_ref(), value.as_ref());
            if key.trim().eq_ignore_ascii_case("hctemplate") {
                return Err(ParamError::invalid(
                    "hctemplate",
                    value,
                    "a template cannot use another template",
                ));
            }
            scratch.set(key, value)?;
        }
        *self = scratch;
        Ok(())
    }
}

impl Default for HcParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// `hcpasses`/`hcfails`: a whole number, 0 or more (Apache's `atoi`, minus its silence on
/// garbage).
fn parse_count(param: &'static str, value: &str) -> Result<u32, ParamError> {
    value
        .trim()
        .parse::<u32>()
        .map_err(|_| ParamError::invalid(param, value, "must be a whole number, 0 or more"))
}

/// Apache's `ap_timeout_parameter_parse` with the default unit seconds: `30`, `30s`,
/// `200ms`, `2mi`, `1h`; at least 100 ms.
fn parse_interval(value: &str) -> Result<Duration, ParamError> {
    let v = value.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let bad = || {
        ParamError::invalid(
            "hcinterval",
            value,
            "must be a whole number of seconds, or with a unit: ms, s, mi, h",
        )
    };
    let n = digits.parse::<u64>().map_err(|_| bad())?;
    let t = match unit.to_ascii_lowercase().as_str() {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "mi" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(bad()),
    };
    if t < HcParams::MIN_INTERVAL {
        return Err(ParamError::invalid(
            "hcinterval",
            value,
            "interval must be a positive value greater than 100ms",
        ));
    }
    Ok(t)
}

/// What a prober saw of members' health, for those who show it (the balancer-manager): a
/// capability the health probes implement, so that a reader need not depend on them.
///
/// ```
/// use proxy_balancer_core::{HealthReport, MemberId};
///
/// #[derive(Debug)]
/// struct AllGood;
///
/// impl HealthReport for AllGood {
///     fn last_passed(&self, _member: MemberId) -> Option<bool> {
///         Some(true)
///     }
/// }
/// fn shown(report: &dyn HealthReport, member: MemberId) -> &'static str {
///     match report.last_passed(member) {
///         Some(true) => "Passed",
///         Some(false) => "Failed",
///         None => "-",
///     }
/// }
/// # let _ = (shown, AllGood);
/// ```
pub trait HealthReport: Send + Sync + fmt::Debug {
    /// Whether member `member`'s last health check passed: `None` before its first check,
    /// or when it is not probed.
    fn last_passed(&self, member: MemberId) -> Option<bool>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_uris_show_their_text() {
        let mut hc = HcParams::default();
        assert!(hc.uri.is_empty());
        hc.set("hcuri", "/health?x=1").unwrap();
        hc.set("hcexpr", "ok200").unwrap();
        assert!(!hc.uri.is_empty());
        assert_eq!(hc.uri.to_string(), "/health?x=1");
        assert_eq!(format!("{:?}", hc.uri), "HcUri(\"/health?x=1\")");
        let expr = hc.expr.as_ref().unwrap();
        assert_eq!(expr.to_string(), "ok200");
        assert_eq!(format!("{expr:?}"), "HcExprName(\"ok200\")");
    }

    #[test]
    fn passes_and_fails_needed_are_at_least_one() {
        let mut hc = HcParams::default();
        hc.set("hcpasses", "3").unwrap();
        hc.set("hcfails", "4").unwrap();
        assert_eq!((hc.passes_needed(), hc.fails_needed()), (3, 4));
        hc.set("hcpasses", "0").unwrap();
        hc.set("hcfails", "0").unwrap();
        assert_eq!((hc.passes_needed(), hc.fails_needed()), (1, 1));
    }

    #[test]
    fn defaults_are_apaches() {
        let hc = HcParams::default();
        assert_eq!(hc.method, HcMethod::None);
        assert!(!hc.is_enabled());
        assert!(hc.uri.is_empty());
        assert_eq!(hc.interval, Duration::from_secs(30));
        assert_eq!((hc.passes, hc.fails), (1, 1));
        assert_eq!(hc.expr, None);
    }

    #[test]
    fn good_values() {
        let mut hc = HcParams::default();
        hc.set("HCMethod", "get11").unwrap();
        assert_eq!(hc.method, HcMethod::Get11);
        assert!(hc.is_enabled());
        hc.set("hcuri", "/health").unwrap();
        assert_eq!(hc.uri.as_str(), "/health");
        hc.set("hcuri", "").unwrap();
        assert!(hc.uri.is_empty());
        for (text, expected) in [
            ("100ms", Duration::from_millis(100)),
            ("200ms", Duration::from_millis(200)),
            ("5", Duration::from_secs(5)),
            ("2s", Duration::from_secs(2)),
            ("1mi", Duration::from_secs(60)),
            ("1H", Duration::from_secs(3600)),
            (" 7 ", Duration::from_secs(7)),
        ] {
            hc.set("hcinterval", text).unwrap();
            assert_eq!(hc.interval, expected, "{text}");
        }
        hc.set("hcpasses", "0").unwrap();
        hc.set("hcfails", "4294967295").unwrap();
        assert_eq!((hc.passes, hc.fails), (0, u32::MAX));
        assert_eq!((hc.passes_needed(), hc.fails_needed()), (1, u32::MAX));
        hc.set("hcexpr", "ok234").unwrap();
        assert_eq!(hc.expr.as_ref().map(HcExprName::as_str), Some("ok234"));
        hc.set("hcexpr", &"e".repeat(15)).unwrap();
        hc.set("hcexpr", "").unwrap();
        assert_eq!(hc.expr, None);
        hc.set("hcuri", &"u".repeat(63)).unwrap();
    }

    #[test]
    fn bad_values_name_the_parameter_and_change_nothing() {
        let mut hc = HcParams::default();
        let before = hc.clone();
        for (key, value) in [
            ("hcmethod", "CPING"),
            ("hcmethod", "PROVIDER"),
            ("hcmethod", ""),
            ("hcinterval", "99ms"),
            ("hcinterval", "0"),
            ("hcinterval", "-1"),
            ("hcinterval", "5x"),
            ("hcinterval", ""),
            ("hcinterval", "99999999999999999999"),
            ("hcpasses", "-1"),
            ("hcpasses", "x"),
            ("hcfails", "4294967296"),
            ("hcfails", ""),
            ("hcuri", "/a b"),
            ("hcuri", "/a\u{7}"),
            ("hcuri", &"u".repeat(64)),
            ("hcexpr", &"e".repeat(16)),
            ("hcexpr", "a b"),
            ("hctemplate", "web"),
        ] {
            let err = hc.set(key, value).unwrap_err();
            assert_eq!(err.param(), key, "{key}={value}");
            assert!(
                matches!(err, ParamError::InvalidValue { .. }),
                "{key}={value}"
            );
        }
        assert_eq!(hc, before);
        assert!(hc
            .set("hcinterval", "50ms")
            .unwrap_err()
            .to_string()
            .contains("greater than 100ms"));
        assert!(matches!(
            hc.set("hcbogus", "1"),
            Err(ParamError::UnknownParameter { .. })
        ));
    }

    #[test]
    fn templates_apply_in_place_and_all_or_nothing() {
        let mut hc = HcParams::default();
        hc.set("hcfails", "2").unwrap();
        hc.apply_template([("hcmethod", "HEAD"), ("hcfails", "4")])
            .unwrap();
        assert_eq!((hc.method, hc.fails), (HcMethod::Head, 4));
        let before = hc.clone();
        let err = hc
            .apply_template([("hcuri", "/x"), ("hcpasses", "x")])
            .unwrap_err();
        assert_eq!(err.param(), "hcpasses");
        assert_eq!(hc, before, "nothing applied");
        let err = hc.apply_template([("hctemplate", "other")]).unwrap_err();
        assert_eq!(err.param(), "hctemplate");
        assert!(hc.apply_template([("loadfactor", "2")]).is_err());
    }

    proptest::proptest! {
        /// Any key and value: no panic; a refused value changes nothing, an accepted one
        /// reads back the same through the parameter's own type.
        #[test]
        fn set_never_panics_and_refusals_change_nothing(
            key in proptest::prop_oneof![
                proptest::strategy::Just("hcmethod".to_owned()),
                proptest::strategy::Just("hcuri".to_owned()),
                proptest::strategy::Just("hcinterval".to_owned()),
                proptest::strategy::Just("hcpasses".to_owned()),
                proptest::strategy::Just("hcfails".to_owned()),
                proptest::strategy::Just("hcexpr".to_owned()),
                "\\PC{0,12}",
            ],
            value in "\\PC{0,80}",
        ) {
            let mut hc = HcParams::default();
            hc.set("hcuri", "/before").unwrap();
            let before = hc.clone();
            match hc.set(&key, &value) {
                Ok(()) => match key.as_str() {
                    "hcuri" => proptest::prop_assert_eq!(hc.uri.as_str(), value.as_str()),
                    "hcexpr" if !value.is_empty() => {
                        proptest::prop_assert_eq!(hc.expr.as_ref().map(HcExprName::as_str), Some(value.as_str()));
                    }
                    "hcinterval" => proptest::prop_assert!(hc.interval >= HcParams::MIN_INTERVAL),
                    _ => {}
                },
                Err(_) => proptest::prop_assert_eq!(hc, before),
            }
        }
    }
}
