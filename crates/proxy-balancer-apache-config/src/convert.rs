//! From the syntax tree to the core's parameter types.

use std::collections::HashSet;

use proxy_balancer_core::{BalancerParams, MemberParams};

use crate::ast::Config;
use crate::error::{ParseError, ParseErrorKind, ParseErrors};
use crate::keys::CORE_MEMBER_KEYS;

impl Config {
    /// The balancers as the core's types, in configuration order, to build stores from.
    ///
    /// Each balancer's parameters are applied in order (later ones win, as in Apache), and
    /// each member's core parameters too; the `hc*` and other worker parameters the core does
    /// not model stay in the syntax tree ([`MemberConfig::params`](crate::MemberConfig)). A
    /// member without `timeout` gets [`Config::proxy_timeout`], as Apache's workers do.
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
                    if CORE_MEMBER_KEYS.contains(&key.as_str()) {
                        if let Err(e) = member.set(&key, &p.value) {
                            errors.push(ParseError::new(
                                p.span,
                                ParseErrorKind::InvalidValue,
                                e.to_string(),
                            ));
                        }
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
