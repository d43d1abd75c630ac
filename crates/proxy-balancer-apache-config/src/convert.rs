//! From the syntax tree to the core's parameter types.

use std::collections::HashSet;

use proxy_balancer_core::{BalancerParams, MemberParams};

use crate::ast::{BalancerConfig, Config, Param, ProxyPassConfig, ProxyTarget, Span};
use crate::error::{ParseError, ParseErrorKind, ParseErrors};
use crate::keys::{self, BALANCER_KEYS, CORE_MEMBER_KEYS, HC_KEYS, OTHER_WORKER_KEYS};

/// A balancer as the core's types.
type Converted = (BalancerParams, Vec<MemberParams>);

impl Config {
    /// The balancers as the core's types, in configuration order, to build stores from.
    ///
    /// Each balancer's parameters are applied in order (later ones win, as in Apache), and
    /// each member's core parameters too, its health-check parameters among them
    /// ([`MemberParams::hc`]): `hctemplate=name` applies the `ProxyHCTemplate`'s parameters
    /// where it stands ([`HcParams::apply_template`](proxy_balancer_core::HcParams::apply_template)),
    /// so the store holds the resolved values. An `hcexpr` is kept by name; the health probes,
    /// which hold the `ProxyHCExpr` conditions, check it when they start. The worker
    /// parameters the core does not model stay in the syntax tree
    /// ([`MemberConfig::params`](crate::MemberConfig)). A member without `timeout` gets
    /// [`Config::proxy_timeout`], or without it the server's `Timeout`, as Apache's workers
    /// do.
    ///
    /// # Errors
    ///
    /// [`ParseErrors`] for what the syntax accepts but the core cannot run: a member URL
    /// that is not `http://` or `https://` (Apache's `ajp://`, `fcgi://` …), or two members
    /// of one balancer with the same normalised URL. In a [`Config`] built by hand rather than
    /// parsed, a parameter unknown where it is given, or an invalid value, is an error too.
    ///
    /// ```
    /// let config = proxy_balancer_apache_config::parse(
    ///     r#"<Proxy "balancer://App">
    ///            BalancerMember http://10.0.0.1:8080 route=a loadfactor=2
    ///            ProxySet lbmethod=bybusyness
    ///        </Proxy>"#,
    /// )?;
    /// let balancers = config.balancers()?;
    /// let (params, members) = &balancers[0];
    /// assert_eq!(params.name, "balancer://app");
    /// assert_eq!(members[0].load_factor.lbf(), 200);
    ///
    /// let config = proxy_balancer_apache_config::parse(
    ///     r#"ProxyHCTemplate web hcmethod=GET hcuri=/health hcinterval=5
    ///        <Proxy "balancer://app">
    ///            BalancerMember http://10.0.0.1:8080 hctemplate=web hcinterval=200ms
    ///        </Proxy>"#,
    /// )?;
    /// let hc = &config.balancers()?[0].1[0].hc;
    /// assert_eq!((hc.method.as_str(), hc.uri.as_str()), ("GET", "/health"));
    /// assert_eq!(hc.interval.as_millis(), 200, "set after the template, so it wins");
    /// # Ok::<(), proxy_balancer_apache_config::ParseErrors>(())
    /// ```
    pub fn balancers(&self) -> Result<Vec<Converted>, ParseErrors> {
        let mut errors = Vec::new();
        let out = self
            .balancers
            .iter()
            .map(|b| self.convert_balancer(b, &mut errors))
            .collect();
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(ParseErrors::new(errors))
        }
    }

    /// A `ProxyPass path "http://host:port/base" key=value …` to a plain URL as a balancer of
    /// one member, so that it runs on the same machinery as `balancer://` targets.
    ///
    /// # Apache
    ///
    /// Apache makes a plain URL a worker of its own, and every `key=value` on such a
    /// `ProxyPass` is a *worker* parameter (`timeout`, `retry`, `connectiontimeout`, `hc*` …);
    /// a balancer parameter such as `lbmethod` or `stickysession` there is an error
    /// ("ProxyPass unknown Worker parameter"), which [`parse`](crate::parse) already reports.
    /// So the parameters all go to the member, as on a `BalancerMember`: the core's ones set
    /// its [`MemberParams`], the `hc*` and other worker parameters stay in
    /// [`ProxyPassConfig::params`]. Without `timeout` the member gets
    /// [`Config::proxy_timeout`]. The balancer has Apache's defaults (one member: no failover).
    ///
    /// The balancer is named `balancer://` followed by the member's normalised URL (scheme and
    /// host lower-cased, no trailing `/`), e.g. `balancer://http://backend:8080/base`: the
    /// same for every `ProxyPass` to that URL, and never the name of a configured balancer
    /// (those have no `/` after `balancer://`). The member URL keeps the target's path; the
    /// `ProxyPass` path mapping is the caller's, from [`ProxyPassConfig::path`] and the
    /// target as written.
    ///
    /// # Errors
    ///
    /// [`ParseErrors`] when the target is not a plain URL (a `balancer://` one, or `!`), when
    /// the URL is not one the core can run (`ajp://`, a query …, see
    /// [`MemberUrl::new`](proxy_balancer_core::MemberUrl::new)), and, in a [`Config`] built by
    /// hand, for a parameter that is not a worker parameter or has an invalid value. Nothing
    /// is dropped silently.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let config = proxy_balancer_apache_config::parse(
    ///     "ProxyTimeout 30\nProxyPass /app http://Backend:8080/base/ retry=5 hcmethod=GET\n",
    /// )?;
    /// let (params, members) = config.url_worker_balancer(&config.proxy_passes[0])?;
    /// assert_eq!(params.name, "balancer://http://backend:8080/base");
    /// assert_eq!(members.len(), 1);
    /// assert_eq!(members[0].url.as_str(), "http://backend:8080/base");
    /// assert_eq!(members[0].retry, Duration::from_secs(5));
    /// assert_eq!(members[0].timeout, Some(Duration::from_secs(30)));
    /// # Ok::<(), proxy_balancer_apache_config::ParseErrors>(())
    /// ```
    pub fn url_worker_balancer(&self, pass: &ProxyPassConfig) -> Result<Converted, ParseErrors> {
        let ProxyTarget::Url(url) = &pass.target else {
            let target = match &pass.target {
                ProxyTarget::Balancer { name, path } => format!("{name}{path}"),
                _ => "!".to_owned(),
            };
            return Err(ParseErrors::new(vec![ParseError::new(
                pass.span,
                ParseErrorKind::InvalidValue,
                format!(
                    "ProxyPass {} {target} is not to a plain url: it has no worker of its own",
                    pass.path
                ),
            )
            .with_hint(Some(
                "use Config::balancers for balancer:// targets; ! is not proxied".to_owned(),
            ))]));
        };
        let mut errors = Vec::new();
        let member = self.convert_member(url, &pass.params, pass.span, &mut errors);
        match member {
            Some(member) if errors.is_empty() => {
                let mut params = BalancerParams::new("");
                params.name = format!("balancer://{}", member.url);
                Ok((params, vec![member]))
            }
            _ => Err(ParseErrors::new(errors)),
        }
    }

    /// [`Config::url_worker_balancer`] for every `ProxyPass` to a plain URL: one balancer per
    /// distinct worker URL, in the order of first use.
    ///
    /// # Apache
    ///
    /// Apache shares one worker between every `ProxyPass` to the same URL: the first one
    /// defines it, and the parameters of the later ones are ignored with a warning
    /// (`AH01146 Ignoring parameter … because of worker sharing`). So here the first
    /// `ProxyPass` to a URL gives the parameters and the later ones map to the same balancer
    /// name.
    ///
    /// # Errors
    ///
    /// Every error [`Config::url_worker_balancer`] gives for these `ProxyPass`es.
    ///
    /// ```
    /// let config = proxy_balancer_apache_config::parse(
    ///     "ProxyPass /a http://b:80 retry=1\nProxyPass /c http://B:80/ retry=9\nProxyPass /d !\n",
    /// )?;
    /// let workers = config.url_worker_balancers()?;
    /// assert_eq!(workers.len(), 1);
    /// assert_eq!(workers[0].1[0].retry.as_secs(), 1);
    /// # Ok::<(), proxy_balancer_apache_config::ParseErrors>(())
    /// ```
    pub fn url_worker_balancers(&self) -> Result<Vec<Converted>, ParseErrors> {
        let mut errors = Vec::new();
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for pass in &self.proxy_passes {
            if !matches!(pass.target, ProxyTarget::Url(_)) {
                continue;
            }
            match self.url_worker_balancer(pass) {
                Ok(converted) => {
                    if seen.insert(converted.0.name.clone()) {
                        out.push(converted);
                    }
                }
                Err(e) => errors.extend(e),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(ParseErrors::new(errors))
        }
    }

    fn convert_balancer(&self, b: &BalancerConfig, errors: &mut Vec<ParseError>) -> Converted {
        let mut params = BalancerParams::new(&b.name);
        // `BalancerGrowth` is the default of each balancer's `growth` (a `growth=` on the
        // balancer wins); the core takes at most 100.
        if let Some(growth) = self.balancer_growth {
            params.growth = u8::try_from(growth.min(100)).unwrap_or(100);
        }
        for p in &b.params {
            if let Err(e) = params.set(&p.key, &p.value) {
                errors.push(ParseError::new(
                    p.span,
                    ParseErrorKind::InvalidValue,
                    e.to_string(),
                ));
            }
        }
        let mut seen = HashSet::new();
        let mut members = Vec::with_capacity(b.members.len());
        for m in &b.members {
            // A discover= line is a template, not a member (discovery.rs).
            if crate::discovery::is_discovered(m) {
                continue;
            }
            let Some(member) = self.convert_member(&m.url, &m.params, m.span, errors) else {
                continue;
            };
            if !seen.insert(member.url.clone()) {
                errors.push(ParseError::new(
                    m.span,
                    ParseErrorKind::DuplicateMember,
                    format!("member \"{}\" is already in {}", member.url, b.name),
                ));
                continue;
            }
            members.push(member);
        }
        (params, members)
    }

    /// A worker (a `BalancerMember`, or a `ProxyPass` to a plain URL) as the core's member:
    /// its core parameters applied in order, the others checked, the server's `ProxyTimeout`
    /// as its default `timeout`. `None` when the URL is not one the core runs.
    pub(crate) fn convert_member(
        &self,
        url: &str,
        params: &[Param],
        span: Span,
        errors: &mut Vec<ParseError>,
    ) -> Option<MemberParams> {
        let mut member = match MemberParams::new(url) {
            Ok(member) => member,
            Err(e) => {
                errors.push(ParseError::new(
                    span,
                    ParseErrorKind::InvalidValue,
                    e.to_string(),
                ));
                return None;
            }
        };
        for p in params {
            let key = p.key.to_ascii_lowercase();
            if crate::discovery::is_key(&key) {
                // discovery.rs: the line is a template, read by `Config::discovered_members`.
                continue;
            }
            let result = if key == "hctemplate" {
                // The template's parameters apply where it stands: later ones win.
                match self.hc_templates.iter().find(|t| t.name == p.value) {
                    Some(t) => member
                        .hc
                        .apply_template(t.params.iter().map(|tp| (&tp.key, &tp.value)))
                        .map_err(|e| e.to_string()),
                    None => Err(format!("unknown health check template: {}", p.value)),
                }
            } else if CORE_MEMBER_KEYS.contains(&key.as_str()) || HC_KEYS.contains(&key.as_str()) {
                member.set(&key, &p.value).map_err(|e| e.to_string())
            } else if OTHER_WORKER_KEYS.contains(&key.as_str()) {
                keys::check_extra(&key, &p.value).map_err(|reason| {
                    format!(
                        "invalid value \"{}\" for parameter `{key}`: {reason}",
                        p.value
                    )
                })
            } else {
                let hint = BALANCER_KEYS
                    .contains(&key.as_str())
                    .then(|| format!("\"{key}\" is a balancer parameter, not a worker one"));
                errors.push(
                    ParseError::new(
                        p.span,
                        ParseErrorKind::UnknownParameter,
                        format!("unknown parameter \"{}\"", p.key),
                    )
                    .with_hint(hint),
                );
                continue;
            };
            if let Err(message) = result {
                errors.push(ParseError::new(
                    p.span,
                    ParseErrorKind::InvalidValue,
                    message,
                ));
            }
        }
        if member.timeout.is_none() {
            // Apache: ProxyTimeout defaults to Timeout.
            member.timeout = self.proxy_timeout.or(self.front.timeout);
        }
        Some(member)
    }
}
