//! The site's health probes and balancer-manager, from the configuration.

use std::sync::Arc;

use crate::apache_config::{Config, ManagerLocation};
use crate::health_probe::expr::HcExpr;
use crate::health_probe::{HealthProbe, ProbeDefinitions};
use crate::manager::BalancerManager;
use crate::BalancerStore;

use super::SiteError;

/// The `ProxyHCExpr` conditions of the configuration, for the probes and the manager's
/// `w_he` edits (the members' other health-check parameters are in the stores).
///
/// # Errors
///
/// If an expression does not parse.
pub(super) fn probe_definitions(config: &Config) -> Result<ProbeDefinitions, SiteError> {
    let mut defs = ProbeDefinitions::new();
    for e in &config.hc_exprs {
        let expr = HcExpr::parse(&e.expr).map_err(|err| SiteError::HealthCheck {
            line: e.span.line,
            reason: format!("ProxyHCExpr {}: {err}", e.name),
        })?;
        defs = defs.with_expr(e.name.clone(), expr);
    }
    Ok(defs)
}

/// The balancer-manager of a `<Location …> SetHandler balancer-manager` in one server,
/// admitting the networks of its `Require ip …` lines (loopback when it has none; everyone
/// with `Require all granted`), showing the balancers visible in that server, and taking
/// changes whose Host is one of the server's `names` (`ServerName`, `ServerAlias`).
pub(super) fn manager<'a>(
    location: &ManagerLocation,
    names: &[String],
    stores: impl Iterator<Item = (&'a Arc<BalancerStore>, &'a HealthProbe)>,
    persist: Option<&std::path::Path>,
    defs: &ProbeDefinitions,
    shared: Option<&Arc<dyn crate::manager::shared::SharedEdits>>,
) -> Result<BalancerManager, SiteError> {
    // The balancers read tokio's clock: the page reckons slow starts, RTTs and ejections
    // with the same one.
    let mut builder =
        BalancerManager::builder(&location.path).clock(|| tokio::time::Instant::now().into_std());
    for require in &location.requires {
        let mut words = require.split_whitespace();
        match words.next().map(str::to_ascii_lowercase).as_deref() {
            Some("ip") => {
                for net in words {
                    let bad = |why: &str| SiteError::Manager {
                        line: location.span.line,
                        reason: format!("Require ip {net}: {why}"),
                    };
                    let (addr, prefix) = match net.split_once('/') {
                        Some((a, p)) => (a, Some(p)),
                        None => (net, None),
                    };
                    let addr: std::net::IpAddr =
                        addr.parse().map_err(|_| bad("not an address"))?;
                    let most = if addr.is_ipv4() { 32 } else { 128 };
                    let prefix = match prefix {
                        None => most,
                        Some(p) => p
                            .parse::<u8>()
                            .ok()
                            .filter(|&p| p <= most)
                            .ok_or_else(|| bad("the prefix length is not a number up to 32 (IPv4) or 128 (IPv6)"))?,
                    };
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
            // Anything else would be ignored, and the manager then open to loopback:
            // refused, so that an access rule is never silently weaker than written.
            _ => {
                return Err(SiteError::Manager {
                    line: location.span.line,
                    reason: format!(
                        "Require {require}: the balancer-manager supports `Require ip ADDR[/PREFIX] …` and `Require all granted`"
                    ),
                })
            }
        }
    }
    // A change must come with a Host naming this server (DNS rebinding): the address the
    // client reached, and the ServerName and aliases.
    if !names.is_empty() {
        builder = builder.server_names(names.iter().cloned());
    }
    builder = builder.hc_expr_names(defs.expr_names());
    // BalancerPersist On (extras::persist_file).
    if let Some(path) = persist {
        builder = builder.persist(path);
    }
    for (store, probe) in stores {
        builder = builder.balancer_with_health(Arc::clone(store), Arc::new(probe.monitor()));
    }
    // BalancerShare (shared.rs): edits go through the fleet's store.
    if let Some(shared) = shared {
        builder = builder.shared(Arc::clone(shared));
    }
    let manager = builder.build();
    if let Some(refused) = manager.refused_server_names().first() {
        return Err(SiteError::Manager {
            line: location.span.line,
            reason: format!("ServerName as the manager's name: {refused}"),
        });
    }
    Ok(manager)
}
