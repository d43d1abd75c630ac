//! The site's part of DNS discovery: `BalancerMember … discover=dns|srv` lines and
//! `ProxyDiscoverNameserver` (see [`apache_config::discovery`](crate::apache_config::discovery)).
//!
//! One [`DnsDiscovery`] task per balancer with discover lines, per process (the site
//! built by [`Site::from_config`](super::Site::from_config); [`Site::worker`](super::Site::worker)
//! shares it), asking every discover line of the balancer; each member set it finds goes
//! to the balancer's store through a [`MemberSetSync`] (its default drain,
//! [`DEFAULT_DRAIN`](crate::discover::DEFAULT_DRAIN)): members that stay keep their
//! state, vanished ones drain and finish their requests in flight; the configured members
//! and those the balancer-manager adds are not the sync's, and stay. The tasks stop with
//! the last clone of the site. [`Site::validate`](super::Site::validate) (`--check`) builds the sources
//! (every check) but starts nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::apache_config::discovery::Discover;
use crate::apache_config::Config;
use crate::discover::MemberSetSync;
use crate::dns::{DnsDiscovery, DnsHandle, DnsResolver, DnsSource};
use crate::BalancerStore;

use super::SiteError;

/// Starts the discovery of each balancer with discover lines (`dry`: checks only).
/// `balancer_stores[i]` is the store of `config.balancers[i]` (`None`: hidden).
///
/// # Errors
///
/// A discover line that cannot be discovered ([`SiteError::Params`], with its line);
/// ([`SiteError::Discovery`]) the system's resolver configuration that cannot be read,
/// `BalancerPersist On` (the manager's state file would keep discovered members), or
/// `BalancerShare` (a shared key would add a discovered member where no discovery drains it).
pub(super) fn spawn(
    config: &Config,
    stores: &[Arc<BalancerStore>],
    balancer_stores: &[Option<usize>],
    dry: bool,
) -> Result<Vec<DnsHandle>, SiteError> {
    let found = config.discovered_members().map_err(SiteError::Params)?;
    let Some(first) = found.first() else {
        return Ok(Vec::new());
    };
    if config.balancer_persist == Some(true) {
        // The manager's state file counts every member past the configured ones as its
        // own: discovered members would be saved as added by hand, and come back after a
        // restart as members no discovery removes.
        return Err(SiteError::Discovery {
            line: first.span.line,
            reason: "discover= members with BalancerPersist On are not supported: the balancer-manager's state file would keep the discovered members as members added by hand, and bring them back after a restart whatever DNS says".to_owned(),
        });
    }
    if config.balancer_share.is_some() {
        // Discovered members are each instance's own (each resolves the name itself), while
        // a shared member key adds its member on every instance: an instance that has not
        // discovered the member (starting, or after DNS dropped it) would add it with bare
        // parameters, and its discovery would then leave it alone, never drained.
        return Err(SiteError::Discovery {
            line: first.span.line,
            reason: "discover= members with BalancerShare are not supported yet: discovered members are each instance's own, and an etcd key for one (written by any manager edit of it) would add it with bare parameters on instances that have not discovered it, where no discovery would ever drain it; list the members, or give the discovered balancers to instances that do not share".to_owned(),
        });
    }
    let resolver = match &config.discover_nameservers {
        Some(ns) => DnsResolver::with_nameservers(&ns.addrs),
        None => DnsResolver::system().map_err(|e| SiteError::Discovery {
            line: first.span.line,
            reason: format!("{e} (name the nameservers with ProxyDiscoverNameserver)"),
        })?,
    };
    // Balancer index → its sources, in line order.
    let mut by_balancer: BTreeMap<usize, Vec<DnsSource>> = BTreeMap::new();
    for f in found {
        // The member client's options are found by URL, and a discovered member's URL is
        // its address: it gets the main server's `ProxyIOBufferSize`, so a virtual host's
        // own would not reach it.
        let vhost = config
            .balancers
            .get(f.balancer)
            .and_then(|b| b.context.vhost);
        let io = config.host_settings(vhost).proxy_io_buffer_size;
        if vhost.is_some() && io != config.server.proxy_io_buffer_size {
            return Err(SiteError::Discovery {
                line: f.span.line,
                reason: "discover= members of a <VirtualHost> whose ProxyIOBufferSize differs from the main server's are not supported: discovered members get the main server's; set it in the main server, or list the members".to_owned(),
            });
        }
        let template = f.template;
        let source = match &f.discover {
            Discover::Srv { name } => DnsSource::srv(template, name.as_deref()),
            _ => DnsSource::address(template),
        }
        .map_err(|e| SiteError::Discovery {
            line: f.span.line,
            reason: e.to_string(),
        })?;
        by_balancer.entry(f.balancer).or_default().push(source);
    }
    if dry {
        return Ok(Vec::new());
    }
    let mut handles = Vec::new();
    for (balancer, sources) in by_balancer {
        // A virtual host's balancer hidden by an inherited one has no store (the site
        // warned about it): nothing to feed.
        let Some(store) = balancer_stores
            .get(balancer)
            .copied()
            .flatten()
            .and_then(|i| stores.get(i))
        else {
            continue;
        };
        // The configured members (and the manager's) are not the sync's: they stay.
        let mut discovery = DnsDiscovery::new(resolver.clone());
        for source in sources {
            discovery = discovery.source(source);
        }
        handles.push(discovery.spawn(MemberSetSync::new(Arc::clone(store))));
    }
    Ok(handles)
}
