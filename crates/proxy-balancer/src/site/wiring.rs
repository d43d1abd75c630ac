//! The site's health probes and balancer-manager, from the configuration.

use std::collections::HashMap;
use std::sync::Arc;

use crate::apache_config::Config;
use crate::health_probe::expr::HcExpr;
use crate::health_probe::{HealthProbe, ProbeConfig, ProbeDefinitions};
use crate::manager::render::HealthView;
use crate::manager::{BalancerManager, HealthFn};
use crate::{BalancerStore, Member, MemberUrl};

use super::SiteError;

/// Starts the health probes the configuration asks for: each member's `hc*` parameters,
/// with its `ProxyHCTemplate`s and `ProxyHCExpr`s.
///
/// # Errors
///
/// If an expression does not parse or a member's `hc*` parameters are invalid.
pub(super) fn spawn_probes(
    config: &Config,
    stores: &[Arc<BalancerStore>],
) -> Result<(Vec<HealthProbe>, Vec<Option<HealthFn>>), SiteError> {
    let mut defs = ProbeDefinitions::new();
    for e in &config.hc_exprs {
        let expr = HcExpr::parse(&e.expr).map_err(|err| SiteError::HealthCheck {
            line: e.span.line,
            reason: format!("ProxyHCExpr {}: {err}", e.name),
        })?;
        defs = defs.with_expr(e.name.clone(), expr);
    }
    for t in &config.hc_templates {
        defs = defs.with_template(
            t.name.clone(),
            t.params.iter().map(|p| (p.key.clone(), p.value.clone())),
        );
    }
    // Each member's hc* parameters, by normalised URL.
    let mut per_member: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for balancer in &config.balancers {
        for member in &balancer.members {
            let hc: Vec<(String, String)> = member
                .params
                .iter()
                .filter(|p| p.key.to_ascii_lowercase().starts_with("hc"))
                .map(|p| (p.key.clone(), p.value.clone()))
                .collect();
            if hc.is_empty() {
                continue;
            }
            let url = MemberUrl::new(&member.url)
                .map_err(|err| SiteError::HealthCheck {
                    line: member.span.line,
                    reason: format!("{}: {err}", member.url),
                })?
                .to_string();
            // Check now, so that a bad value is an error at start rather than no probe.
            let pairs: Vec<(&str, &str)> =
                hc.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            ProbeConfig::from_params(&pairs, &defs).map_err(|err| SiteError::HealthCheck {
                line: member.span.line,
                reason: format!("{}: {err}", member.url),
            })?;
            per_member.insert(url, hc);
        }
    }
    let per_member = Arc::new(per_member);
    let defs = Arc::new(defs);
    let probe_config = {
        let (per_member, defs) = (Arc::clone(&per_member), Arc::clone(&defs));
        Arc::new(move |member: &Member| {
            let hc = per_member.get(member.url())?;
            let pairs: Vec<(&str, &str)> =
                hc.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let config = ProbeConfig::from_params(&pairs, &defs).ok().flatten()?;
            Some(config.with_member_timeouts(member.params()))
        })
    };
    let mut probes = Vec::new();
    let mut health: Vec<Option<HealthFn>> = Vec::new();
    for store in stores {
        let probed = store
            .snapshot()
            .members()
            .iter()
            .any(|m| per_member.contains_key(m.url()));
        if !probed {
            health.push(None);
            continue;
        }
        let configs = Arc::clone(&probe_config);
        let probe = HealthProbe::spawn(Arc::clone(store), move |member| configs(member));
        let monitor = probe.monitor();
        let configs = Arc::clone(&probe_config);
        health.push(Some(Arc::new(move |member: &Member| {
            let config = configs(member)?;
            Some(HealthView {
                method: config.method.as_str().to_owned(),
                uri: config.uri.clone(),
                interval_ms: u64::try_from(config.interval.as_millis()).unwrap_or(u64::MAX),
                passes: config.passes,
                fails: config.fails,
                expr: None,
                last_passed: monitor.member(member.id()).and_then(|h| h.last_passed()),
            })
        })));
        probes.push(probe);
    }
    Ok((probes, health))
}

/// The balancer-manager of the configuration's first `<Location …> SetHandler
/// balancer-manager`, admitting the networks of its `Require ip …` lines (loopback when it
/// has none; everyone with `Require all granted`).
pub(super) fn manager(
    config: &Config,
    stores: &[Arc<BalancerStore>],
    health: &[Option<HealthFn>],
) -> Result<Option<BalancerManager>, SiteError> {
    let Some(location) = config.manager_locations.first() else {
        return Ok(None);
    };
    let mut builder = BalancerManager::builder(&location.path);
    for require in &location.requires {
        let mut words = require.split_whitespace();
        match words.next().map(str::to_ascii_lowercase).as_deref() {
            Some("ip") => {
                for net in words {
                    let (addr, prefix) = match net.split_once('/') {
                        Some((a, p)) => (a, p.parse::<u8>().ok()),
                        None => (net, None),
                    };
                    let addr: std::net::IpAddr = addr.parse().map_err(|_| SiteError::Manager {
                        line: location.span.line,
                        reason: format!("Require ip {net}: not an address"),
                    })?;
                    let prefix = prefix.unwrap_or(if addr.is_ipv4() { 32 } else { 128 });
                    builder = builder.allow(addr, prefix);
                }
            }
            Some("all")
                if words
                    .next()
                    .is_some_and(|w| w.eq_ignore_ascii_case("granted")) =>
            {
                builder = builder
                    .allow(std::net::Ipv4Addr::UNSPECIFIED.into(), 0)
                    .allow(std::net::Ipv6Addr::UNSPECIFIED.into(), 0);
            }
            _ => {}
        }
    }
    let counted: Vec<Arc<BalancerStore>> = stores.to_vec();
    builder = builder.unavailable_counter(Arc::new(move |name: &str| {
        counted
            .iter()
            .find(|s| {
                let full = s.snapshot().params().name.clone();
                full == name || full.strip_prefix("balancer://") == Some(name)
            })
            .map_or(0, |s| s.unavailable())
    }));
    for (store, health) in stores.iter().zip(health) {
        builder = match health {
            Some(h) => builder.balancer_with_health(Arc::clone(store), Arc::clone(h)),
            None => builder.balancer(Arc::clone(store)),
        };
    }
    Ok(Some(builder.build()))
}
