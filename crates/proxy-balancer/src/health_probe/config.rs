//! What to probe and how: [`ProbeMethod`], [`ProbeConfig`], [`Condition`] and the named
//! conditions and templates of [`ProbeDefinitions`].

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use http::HeaderMap;

use crate::core::{HcMethod, HcParams, MemberParams, ParamError};

use super::expr::HcExpr;

/// Apache's `hcinterval` default: 30 seconds.
pub(crate) const DEFAULT_INTERVAL: Duration = HcParams::DEFAULT_INTERVAL;

/// Apache refuses a shorter `hcinterval`; see [`HcParams::MIN_INTERVAL`].
pub(crate) const MIN_INTERVAL: Duration = HcParams::MIN_INTERVAL;

/// Probe timeout when the member sets neither `connectiontimeout` nor `timeout`. Apache
/// falls back to the server's `Timeout` (60 s); a health check that takes that long is a
/// failed one, and a shorter bound frees the probe slot for other members.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How much of a response body a body condition sees: enough for any status page, small
/// enough that a huge body never costs more than this per probe.
pub(crate) const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// How a member is probed (`hcmethod`).
///
/// # Apache
///
/// `hcmethod=TCP|OPTIONS|HEAD|GET|OPTIONS11|HEAD11|GET11`, case-insensitive; `None` (the
/// default) means no probe and is handled by [`ProbeMethod::from_apache`]. The plain HTTP
/// forms send HTTP/1.0, the `11` forms HTTP/1.1 with `Connection: close`.
///
/// ```
/// use proxy_balancer::health_probe::ProbeMethod;
///
/// assert_eq!("get11".parse::<ProbeMethod>()?, ProbeMethod::Get11);
/// assert_eq!(ProbeMethod::from_apache("None")?, None);
/// assert!("CPING".parse::<ProbeMethod>().is_err());
/// # Ok::<(), proxy_balancer::health_probe::ProbeConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProbeMethod {
    /// `TCP`: connect, then close. Passes when the connection is accepted.
    Tcp,
    /// `OPTIONS`: `OPTIONS * HTTP/1.0`.
    Options,
    /// `HEAD`: `HEAD <uri> HTTP/1.0`.
    Head,
    /// `GET`: `GET <uri> HTTP/1.0`.
    Get,
    /// `OPTIONS11`: `OPTIONS * HTTP/1.1`.
    Options11,
    /// `HEAD11`: `HEAD <uri> HTTP/1.1`.
    Head11,
    /// `GET11`: `GET <uri> HTTP/1.1`.
    Get11,
}

impl ProbeMethod {
    /// Parses an `hcmethod` value as Apache does (case-insensitive); `None` gives
    /// `Ok(None)`: no probe.
    ///
    /// # Errors
    ///
    /// [`ProbeConfigError::UnknownMethod`], listing the valid names, for anything else
    /// (also `CPING` and `PROVIDER`, which Apache accepts only with other modules).
    pub fn from_apache(value: &str) -> Result<Option<Self>, ProbeConfigError> {
        let method: HcMethod = value.parse().map_err(|_| ProbeConfigError::UnknownMethod {
            value: value.to_owned(),
        })?;
        Ok(Self::from_hc_method(method))
    }

    /// The probe of an `hcmethod`; `None` for [`HcMethod::None`] (no probe).
    #[must_use]
    pub const fn from_hc_method(method: HcMethod) -> Option<Self> {
        Some(match method {
            HcMethod::Tcp => Self::Tcp,
            HcMethod::Options => Self::Options,
            HcMethod::Head => Self::Head,
            HcMethod::Get => Self::Get,
            HcMethod::Options11 => Self::Options11,
            HcMethod::Head11 => Self::Head11,
            HcMethod::Get11 => Self::Get11,
            _ => return None,
        })
    }

    /// The `hcmethod` this probe is.
    #[must_use]
    pub const fn hc_method(self) -> HcMethod {
        match self {
            Self::Tcp => HcMethod::Tcp,
            Self::Options => HcMethod::Options,
            Self::Head => HcMethod::Head,
            Self::Get => HcMethod::Get,
            Self::Options11 => HcMethod::Options11,
            Self::Head11 => HcMethod::Head11,
            Self::Get11 => HcMethod::Get11,
        }
    }

    /// Apache's name of the method (`TCP`, `GET11` …).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        self.hc_method().as_str()
    }

    /// The HTTP method sent, `None` for [`ProbeMethod::Tcp`].
    #[must_use]
    pub const fn http_method(self) -> Option<&'static str> {
        match self {
            Self::Tcp => None,
            Self::Options | Self::Options11 => Some("OPTIONS"),
            Self::Head | Self::Head11 => Some("HEAD"),
            Self::Get | Self::Get11 => Some("GET"),
        }
    }

    /// Whether the request is HTTP/1.1 (the `11` forms).
    #[must_use]
    pub const fn is_http11(self) -> bool {
        matches!(self, Self::Options11 | Self::Head11 | Self::Get11)
    }

    /// Whether the response carries no body (`HEAD`).
    pub(crate) const fn is_head(self) -> bool {
        matches!(self, Self::Head | Self::Head11)
    }
}

impl FromStr for ProbeMethod {
    type Err = ProbeConfigError;

    /// Parses one of the seven probing methods; `None` is refused here (it means "no
    /// probe"; see [`ProbeMethod::from_apache`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_apache(s)?.ok_or_else(|| ProbeConfigError::UnknownMethod {
            value: s.to_owned(),
        })
    }
}

impl fmt::Display for ProbeMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ===== Condition =====

/// What a response must look like for an HTTP probe to pass.
///
/// # Apache
///
/// Without `hcexpr`, a status from 200 to 399 passes ([`Condition::Default`]); with
/// `hcexpr=name`, the `ProxyHCExpr name {...}` expression decides ([`Condition::Expr`]).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum Condition {
    /// A status from 200 to 399 passes (Apache's default).
    #[default]
    Default,
    /// An `hcexpr` condition on status, headers and body.
    Expr(HcExpr),
}

impl Condition {
    /// Whether the condition reads the response body (only then is it read).
    #[must_use]
    pub fn uses_body(&self) -> bool {
        match self {
            Self::Default => false,
            Self::Expr(expr) => expr.uses_body(),
        }
    }

    /// Whether a response with this status, headers and body passes.
    #[must_use]
    pub fn passes(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> bool {
        match self {
            Self::Default => (200..400).contains(&status),
            Self::Expr(expr) => expr.eval(&super::expr::ProbeResponse {
                status,
                headers,
                body,
            }),
        }
    }
}

impl From<HcExpr> for Condition {
    fn from(expr: HcExpr) -> Self {
        Self::Expr(expr)
    }
}

// ===== ProbeDefinitions =====

/// Named conditions and templates that `hcexpr=` and `hctemplate=` refer to.
///
/// # Apache
///
/// `ProxyHCExpr name {expr}` is [`with_expr`](Self::with_expr); `ProxyHCTemplate name
/// k=v …` is [`with_template`](Self::with_template).
///
/// ```
/// use proxy_balancer::health_probe::{Condition, ProbeConfig, ProbeDefinitions, ProbeMethod};
///
/// let defs = ProbeDefinitions::new()
///     .with_expr("status_ok", Condition::Default)
///     .with_template("web", [("hcmethod", "GET"), ("hcuri", "/health"), ("hcfails", "2")]);
/// let config = ProbeConfig::from_params(&[("hctemplate", "web"), ("hcinterval", "5")], &defs)?
///     .expect("hcmethod is set by the template");
/// assert_eq!(config.method, ProbeMethod::Get);
/// assert_eq!((config.fails, config.interval.as_secs()), (2, 5));
/// # Ok::<(), proxy_balancer::health_probe::ProbeConfigError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ProbeDefinitions {
    exprs: HashMap<String, Condition>,
    templates: HashMap<String, Vec<(String, String)>>,
}

impl ProbeDefinitions {
    /// No conditions, no templates.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Defines a named condition (`ProxyHCExpr name {...}`), replacing one of that name.
    #[must_use]
    pub fn with_expr(mut self, name: impl Into<String>, condition: impl Into<Condition>) -> Self {
        self.exprs.insert(name.into(), condition.into());
        self
    }

    /// Defines a named parameter set (`ProxyHCTemplate name k=v …`), replacing one of that
    /// name. Its keys are checked when a member uses it.
    #[must_use]
    pub fn with_template<K, V>(
        mut self,
        name: impl Into<String>,
        params: impl IntoIterator<Item = (K, V)>,
    ) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        let params = params
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self.templates.insert(name.into(), params);
        self
    }

    /// The condition named `name`, if defined.
    #[must_use]
    pub fn expr(&self, name: &str) -> Option<&Condition> {
        self.exprs.get(name)
    }

    /// The parameters of the template named `name`, if defined.
    #[must_use]
    pub fn template(&self, name: &str) -> Option<&[(String, String)]> {
        self.templates.get(name).map(Vec::as_slice)
    }

    /// The names of the defined conditions, sorted: what `hcexpr=` (and the
    /// balancer-manager's `w_he`) may name.
    #[must_use]
    pub fn expr_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.exprs.keys().cloned().collect();
        names.sort_unstable();
        names
    }

    /// Whether a condition named `name` is defined.
    #[must_use]
    pub fn has_expr(&self, name: &str) -> bool {
        self.exprs.contains_key(name)
    }

    fn condition(&self, name: &str) -> Result<&Condition, ProbeConfigError> {
        self.exprs
            .get(name)
            .ok_or_else(|| ProbeConfigError::UnknownExpr {
                name: name.to_owned(),
            })
    }

    /// Sets one `hc*` parameter of a member as a `BalancerMember` line does: `hctemplate`
    /// applies the named template's parameters in place ([`HcParams::apply_template`]),
    /// `hcexpr` must name a defined condition, and the rest go to [`HcParams::set`].
    /// Building a store's members this way keeps the resolved values in the store, the one
    /// place the probes and the balancer-manager read them from.
    ///
    /// ```
    /// use proxy_balancer::health_probe::{Condition, ProbeDefinitions};
    /// use proxy_balancer::{HcMethod, MemberParams};
    ///
    /// let defs = ProbeDefinitions::new()
    ///     .with_expr("ok", Condition::Default)
    ///     .with_template("web", [("hcmethod", "GET"), ("hcuri", "/health")]);
    /// let mut member = MemberParams::new("http://127.0.0.1:8081")?;
    /// // BalancerMember http://127.0.0.1:8081 hctemplate=web hcexpr=ok hcinterval=5
    /// for (k, v) in [("hctemplate", "web"), ("hcexpr", "ok"), ("hcinterval", "5")] {
    ///     defs.apply(&mut member.hc, k, v)?;
    /// }
    /// assert_eq!((member.hc.method, member.hc.uri.as_str()), (HcMethod::Get, "/health"));
    /// assert!(defs.apply(&mut member.hc, "hcexpr", "nope").is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ProbeConfigError::UnknownTemplate`], [`ProbeConfigError::UnknownExpr`], or the
    /// core's refusal of the value; nothing changes then.
    pub fn apply(&self, hc: &mut HcParams, key: &str, value: &str) -> Result<(), ProbeConfigError> {
        match key.trim().to_ascii_lowercase().as_str() {
            "hctemplate" => {
                let template =
                    self.template(value)
                        .ok_or_else(|| ProbeConfigError::UnknownTemplate {
                            name: value.to_owned(),
                        })?;
                let mut scratch = hc.clone();
                scratch.apply_template(template.iter().map(|(k, v)| (k, v)))?;
                self.check(&scratch)?;
                *hc = scratch;
                Ok(())
            }
            "hcexpr" if !value.is_empty() => {
                self.condition(value)?;
                Ok(hc.set(key, value)?)
            }
            _ => Ok(hc.set(key, value)?),
        }
    }

    /// Checks that `hc`'s `hcexpr`, if any, names a defined condition.
    ///
    /// # Errors
    ///
    /// [`ProbeConfigError::UnknownExpr`].
    pub fn check(&self, hc: &HcParams) -> Result<(), ProbeConfigError> {
        match &hc.expr {
            Some(name) => self.condition(name.as_str()).map(|_| ()),
            None => Ok(()),
        }
    }
}

// ===== ProbeConfig =====

/// How one member is probed: the member's `hc*` parameters.
///
/// Build it with [`ProbeConfig::new`] and set fields, or from Apache's `hc*` parameters with
/// [`ProbeConfig::from_params`]. See the [module docs](super).
///
/// ```
/// use std::time::Duration;
///
/// use proxy_balancer::health_probe::{ProbeConfig, ProbeMethod};
///
/// let mut config = ProbeConfig::new(ProbeMethod::Get);
/// config.uri = "/health".into();
/// config.interval = Duration::from_secs(5);
/// config.fails = 3;
/// assert_eq!(config.passes, 1);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProbeConfig {
    /// `hcmethod`: how to probe.
    pub method: ProbeMethod,
    /// `hcuri`: appended to the member URL's path, as is (`health` without a slash is sent
    /// as `health`, as Apache does). Empty: the member's path, or `/`.
    pub uri: String,
    /// `hcinterval`: the pause between the end of one probe and the start of the next
    /// (default 30 s; shorter than 100 ms is taken as 100 ms).
    pub interval: Duration,
    /// `hcpasses`: passes in a row that bring a failed member back (default 1; 0 acts as 1).
    pub passes: u32,
    /// `hcfails`: failures in a row that take a member out (default 1; 0 acts as 1).
    pub fails: u32,
    /// Bound on a whole probe: connect, request and response (default 5 s; see
    /// [`ProbeConfig::with_member_timeouts`]).
    pub timeout: Duration,
    /// `hcexpr`: what a response must look like to pass (default: status 200 to 399).
    pub condition: Condition,
    /// How many body bytes a body condition sees at most (default 64 KiB).
    pub body_limit: usize,
    /// The TLS client for `https`, `wss` and `h2` members ([`ProbeConfig::with_tls`]).
    #[cfg(feature = "http-client")]
    pub(crate) tls: Option<crate::client::TlsClient>,
}

impl ProbeConfig {
    /// A config with `method` and Apache's defaults for the rest.
    #[must_use]
    pub fn new(method: ProbeMethod) -> Self {
        Self {
            method,
            uri: String::new(),
            interval: DEFAULT_INTERVAL,
            passes: 1,
            fails: 1,
            timeout: DEFAULT_TIMEOUT,
            condition: Condition::Default,
            body_limit: DEFAULT_BODY_LIMIT,
            #[cfg(feature = "http-client")]
            tls: None,
        }
    }

    /// The TLS client the probes of an `https`, `wss` or `h2` member speak through; `None`
    /// (the default): the system's trust store
    /// ([`TlsClient::system`](crate::client::TlsClient::system)).
    #[cfg(feature = "http-client")]
    #[must_use]
    pub fn with_tls(mut self, tls: Option<crate::client::TlsClient>) -> Self {
        self.tls = tls;
        self
    }

    /// Reads Apache's `hc*` parameters of a `BalancerMember` line: `hcmethod`, `hcuri`,
    /// `hcinterval` (seconds, or with a unit: `200ms`, `2s`, `1mi`, `1h`), `hcpasses`,
    /// `hcfails`, `hcexpr` and `hctemplate` (resolved through `defs`, applied where it
    /// stands: later parameters override the template's, as in Apache). Keys are
    /// case-insensitive. Returns `Ok(None)` when the method is `None` or not given: no
    /// probe, as Apache's default.
    ///
    /// The values are read by the core's [`HcParams::set`], as for a member's parameters
    /// in a store; see [`ProbeConfig::from_member`] for those.
    ///
    /// # Errors
    ///
    /// [`ProbeConfigError`] for an unknown key, method, condition or template, or a bad
    /// value (an `hcinterval` under 100 ms among them).
    pub fn from_params(
        params: &[(&str, &str)],
        defs: &ProbeDefinitions,
    ) -> Result<Option<Self>, ProbeConfigError> {
        let mut hc = HcParams::default();
        for (key, value) in params {
            defs.apply(&mut hc, key, value)?;
        }
        Self::from_hc(&hc, defs)
    }

    /// The probe of health-check parameters as a store holds them; `Ok(None)` for
    /// `hcmethod=NONE` (no probe). The timeout stays the default 5 s; see
    /// [`ProbeConfig::from_member`] for one taken from the member.
    ///
    /// # Errors
    ///
    /// [`ProbeConfigError::UnknownExpr`] if `hcexpr` names no condition of `defs`.
    pub fn from_hc(
        hc: &HcParams,
        defs: &ProbeDefinitions,
    ) -> Result<Option<Self>, ProbeConfigError> {
        let Some(method) = ProbeMethod::from_hc_method(hc.method) else {
            return Ok(None);
        };
        let mut config = Self::new(method);
        hc.uri.as_str().clone_into(&mut config.uri);
        config.interval = hc.interval;
        config.passes = hc.passes;
        config.fails = hc.fails;
        if let Some(name) = &hc.expr {
            config.condition = defs.condition(name.as_str())?.clone();
        }
        Ok(Some(config))
    }

    /// The probe of a member: its [`MemberParams::hc`] through [`ProbeConfig::from_hc`],
    /// with the member's timeouts ([`ProbeConfig::with_member_timeouts`]). This is what
    /// [`HealthProbe::spawn_with`](super::HealthProbe::spawn_with) runs for each member.
    ///
    /// ```
    /// use proxy_balancer::health_probe::{ProbeConfig, ProbeDefinitions, ProbeMethod};
    /// use proxy_balancer::MemberParams;
    ///
    /// let mut member = MemberParams::new("http://127.0.0.1:8081")?;
    /// assert!(ProbeConfig::from_member(&member, &ProbeDefinitions::new())?.is_none());
    /// member.set("hcmethod", "GET")?;
    /// member.set("hcuri", "/health")?;
    /// member.set("timeout", "2")?;
    /// let config = ProbeConfig::from_member(&member, &ProbeDefinitions::new())?.expect("probed");
    /// assert_eq!((config.method, config.uri.as_str()), (ProbeMethod::Get, "/health"));
    /// assert_eq!(config.timeout.as_secs(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`ProbeConfig::from_hc`].
    pub fn from_member(
        member: &MemberParams,
        defs: &ProbeDefinitions,
    ) -> Result<Option<Self>, ProbeConfigError> {
        Ok(Self::from_hc(&member.hc, defs)?.map(|c| c.with_member_timeouts(member)))
    }

    /// Takes the probe timeout from the member's parameters: for a TCP probe its
    /// `connectiontimeout` (else `timeout`), for an HTTP probe its `timeout` (else
    /// `connectiontimeout`); when neither is set, the current value stays (default 5 s).
    ///
    /// # Apache
    ///
    /// mod_proxy_hcheck connects with the worker's connection timeout and reads with its
    /// `timeout`.
    #[must_use]
    pub fn with_member_timeouts(mut self, member: &MemberParams) -> Self {
        let t = if self.method == ProbeMethod::Tcp {
            member.connection_timeout.or(member.timeout)
        } else {
            member.timeout.or(member.connection_timeout)
        };
        if let Some(t) = t {
            self.timeout = t;
        }
        self
    }

    /// `hcpasses` as used: at least 1.
    pub(crate) fn passes_needed(&self) -> u32 {
        self.passes.max(1)
    }

    /// `hcfails` as used: at least 1.
    pub(crate) fn fails_needed(&self) -> u32 {
        self.fails.max(1)
    }

    /// `hcinterval` as used: at least 100 ms.
    pub(crate) fn effective_interval(&self) -> Duration {
        self.interval.max(MIN_INTERVAL)
    }
}

// ===== ProbeConfigError =====

/// A bad `hc*` parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProbeConfigError {
    /// `hcmethod` names no method.
    UnknownMethod {
        /// The value given.
        value: String,
    },
    /// A parameter that is not one of the `hc*` parameters.
    UnknownParameter {
        /// The key given.
        param: String,
    },
    /// A value the core refuses (see [`HcParams::set`]): the error names the parameter
    /// and the value; an `hcinterval` under 100 ms is one.
    Param(ParamError),
    /// `hcexpr` names no defined condition.
    UnknownExpr {
        /// The name given.
        name: String,
    },
    /// `hctemplate` names no defined template.
    UnknownTemplate {
        /// The name given.
        name: String,
    },
}

impl fmt::Display for ProbeConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownMethod { value } => {
                write!(f, "unknown hcmethod `{value}`; valid: {}", HcMethod::NAMES)
            }
            Self::UnknownParameter { param } => {
                write!(f, "unknown health check parameter `{param}`")
            }
            Self::Param(e) => e.fmt(f),
            Self::UnknownExpr { name } => {
                write!(f, "unknown health check condition expr: {name}")
            }
            Self::UnknownTemplate { name } => {
                write!(f, "unknown health check template: {name}")
            }
        }
    }
}

impl std::error::Error for ProbeConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Param(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ParamError> for ProbeConfigError {
    /// An `hcmethod` error is [`ProbeConfigError::UnknownMethod`], an unknown name
    /// [`ProbeConfigError::UnknownParameter`], the rest [`ProbeConfigError::Param`].
    fn from(e: ParamError) -> Self {
        match e {
            ParamError::InvalidValue { param, value, .. } if param == "hcmethod" => {
                Self::UnknownMethod { value }
            }
            ParamError::UnknownParameter { param } => Self::UnknownParameter { param },
            e => Self::Param(e),
        }
    }
}
