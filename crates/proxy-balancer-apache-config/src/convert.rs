//! From the syntax tree to the core's parameter types.

use std::collections::HashSet;

use proxy_balancer_core::{BalancerParams, MemberParams};

use crate::ast::Config;
use crate::error::{ParseError, ParseErrorKind, ParseErrors};
use crate::keys::{CORE_MEMBER_KEYS, HC_KEYS};

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
    /// [`Config::proxy_timeout`], as Apache's workers do.
    ///
    /// # Errors
    ///
    /// [`ParseErrors`] for what the syntax accepts but the core cannot run: a member URL
    /// that is not `http://` or `https://` (Apache's `ajp://`, `fcgi://` …), or two members
    /// of one balancer with the same normalised URL.
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
    pub fn balancers(&self) -> Result<Vec<(BalancerParams, Vec<MemberParams>)>, ParseErrors> {
        let mut errors = Vec::new();
        let mut out = Vec::with_capacity(self.balancers.len());
        for b in &self.balancers {
            let mut params = BalancerParams::new(&b.name);
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
                let mut member = match MemberParams::new(&m.url) {
                    Ok(member) => member,
                    Err(e) => {
                        errors.push(ParseError::new(
                            m.span,
                            ParseErrorKind::InvalidValue,
                            e.to_string(),
                        ));
                        continue;
                    }
                };
                if !seen.insert(member.url.clone()) {
                    errors.push(ParseError::new(
                        m.span,
                        ParseErrorKind::DuplicateMember,
                        format!("member \"{}\" is already in {}", member.url, b.name),
                    ));
                    continue;
                }
                for p in &m.params {
                    let key = p.key.to_ascii_lowercase();
                    let result = if key == "hctemplate" {
                        match self.hc_templates.iter().find(|t| t.name == p.value) {
                            Some(t) => member
                                .hc
                                .apply_template(t.params.iter().map(|tp| (&tp.key, &tp.value)))
                                .map_err(|e| e.to_string()),
                            None => Err(format!("unknown health check template: {}", p.value)),
                        }
                    } else if CORE_MEMBER_KEYS.contains(&key.as_str())
                        || HC_KEYS.contains(&key.as_str())
                    {
                        member.set(&key, &p.value).map_err(|e| e.to_string())
                    } else {
                        Ok(())
                    };
                    if let Err(e) = result {
                        errors.push(ParseError::new(p.span, ParseErrorKind::InvalidValue, e));
                    }
                }
                if member.timeout.is_none() {
                    member.timeout = self.proxy_timeout;
                }
                members.push(member);
            }
            out.push((params, members));
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(ParseErrors::new(errors))
        }
    }
}
