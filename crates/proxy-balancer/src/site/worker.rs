//! A site per worker thread: [`Site::worker`], for per-core serving (one current-thread
//! runtime and one `SO_REUSEPORT` listener per core, see
//! [`bind_reuseport`](crate::server::bind_reuseport)). What is shared and what is each
//! worker's own is in [`Site::worker`]'s docs.

use std::sync::Arc;

use crate::client::MakeHttpMember;
use crate::server::RequestBody;

use super::{LocationRoute, ProxyService, Route, ServerRoutes, Site, Target};

impl Site {
    /// The site for one more worker thread: the same configuration, balancer stores,
    /// balancer-manager, health probes and heartbeat listener (shared, not copied), with
    /// member connection pools of its own.
    ///
    /// | shared (one copy for every worker) | the worker's own |
    /// | --- | --- |
    /// | the [`BalancerStore`](crate::BalancerStore)s: members, `lbstatus`, busy and elected counts, errors, flags | the member connection pools (an [`HttpMember`](crate::client::HttpMember) per member and route) |
    /// | the balancer-manager (an edit through any worker applies to all; one nonce) | each balancer's view of its members (rebuilt from the shared store when it changes) |
    /// | the health probes and the `HeartbeatListen` listener (run once, where the site was built) | |
    /// | the routes, `Header` rules, virtual hosts, TLS settings (read-only) | |
    ///
    /// So the balancing is exact across workers (one byrequests cycle, one busy count per
    /// member), while no member connection is used from two threads: a connection is
    /// opened, and its task spawned, in the runtime of the worker whose request needed it,
    /// and goes back to that worker's pool only. A member's `max` bounds the connections of
    /// each worker's pool (as Apache's `max` bounds each child process's pool): with `N`
    /// workers a member may have up to `N × max` connections open.
    ///
    /// Serve each worker's site on its own thread and runtime (a current-thread runtime
    /// per core, each with its own [`SO_REUSEPORT`](crate::server::bind_reuseport)
    /// listener); keep the site it came from (or any clone) alive as long as the workers
    /// run, or give it to one of them: the health probes stop with the last clone of any
    /// of them. The probes and the heartbeat listener run in the runtime the first site
    /// was built in.
    ///
    /// A clone ([`Clone::clone`]) shares the member pools too: that is what one
    /// multi-thread runtime wants, not one runtime per core.
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// use proxy_balancer::apache_config::parse;
    /// use proxy_balancer::server::{bind_reuseport, Server};
    /// use proxy_balancer::site::Site;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let config = parse(
    ///     "<Proxy balancer://app>\n  BalancerMember http://127.0.0.1:8001\n\
    ///      BalancerMember http://127.0.0.1:8002\n</Proxy>\nProxyPass / balancer://app/\n",
    /// )?;
    /// // The shared parts (probes, heartbeat) run here, in a runtime of their own.
    /// let control = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// let site = control.block_on(async { Site::from_config(&config) })?;
    ///
    /// // Two workers, each a thread with its own runtime, listener and member pools.
    /// let listeners = bind_reuseport("127.0.0.1:0".parse()?, 2)?;
    /// let (stop, stopped) = tokio::sync::watch::channel(false);
    /// let workers: Vec<_> = listeners
    ///     .into_iter()
    ///     .map(|listener| {
    ///         let site = site.worker();
    ///         let mut stopped = stopped.clone();
    ///         std::thread::spawn(move || -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    ///             let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    ///             runtime.block_on(async move {
    ///                 let listener = tokio::net::TcpListener::from_std(listener)?;
    ///                 let shutdown = async move {
    ///                     let _ = stopped.wait_for(|stop| *stop).await;
    ///                 };
    ///                 Server::new().serve(listener, site, shutdown).await?;
    ///                 Ok(())
    ///             })
    ///         })
    ///     })
    ///     .collect();
    /// // The same members, the same state: one store seen by every worker.
    /// assert!(Arc::ptr_eq(&site.stores()[0], &site.worker().stores()[0]));
    ///
    /// // ... serves until:
    /// stop.send(true)?;
    /// for worker in workers {
    ///     worker.join().expect("no panic")?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn worker(&self) -> Self {
        Self {
            servers: self
                .servers
                .iter()
                .map(|server| server.for_worker(&self.client))
                .collect(),
            vhosts: Arc::clone(&self.vhosts),
            probes: Arc::clone(&self.probes),
            discovery: Arc::clone(&self.discovery),
            stores: Arc::clone(&self.stores),
            heartbeat: self.heartbeat.clone(),
            tls: Arc::clone(&self.tls),
            client: self.client.clone(),
            // One share per process (shared.rs).
            share: self.share.clone(),
        }
    }
}

impl ServerRoutes {
    /// The same server with a fresh balancer (its own member services) in every route.
    fn for_worker(&self, client: &MakeHttpMember<RequestBody>) -> Self {
        Self {
            // Shared: one manager (one nonce, one persisted state) for every worker.
            managers: self.managers.clone(),
            locations: self
                .locations
                .iter()
                .map(|location| LocationRoute {
                    matcher: location.matcher.clone(),
                    route: location.route.as_ref().map(|r| r.for_worker(client)),
                    own_headers: location.own_headers.clone(),
                    slot: location.slot,
                    headers: location.headers.clone(),
                    own_reverse: location.own_reverse.clone(),
                    reverse: Arc::clone(&location.reverse),
                })
                .collect(),
            routes: self.routes.iter().map(|r| r.for_worker(client)).collect(),
            headers: self.headers.clone(),
            header_lines: self.header_lines.clone(),
            // What was combined so far; each worker learns its own from here.
            combinations: arc_swap::ArcSwap::new(self.combinations.load_full()),
            reverse: self.reverse.clone(),
            forwarded: Arc::clone(&self.forwarded),
            encoded_slashes: self.encoded_slashes,
        }
    }
}

impl Route {
    fn for_worker(&self, client: &MakeHttpMember<RequestBody>) -> Self {
        Self {
            pass: self.pass.clone(),
            target: match &self.target {
                Target::Balancer(service) => Target::Balancer(fresh_members(service, client)),
                Target::Excluded => Target::Excluded,
            },
        }
    }
}

/// `service` (the same error answers and sticky routes, cookie included) over a new
/// balancer on the same store, whose member services are made anew by `client`: new
/// pools, no connection shared with `service`'s.
fn fresh_members(service: &ProxyService, client: &MakeHttpMember<RequestBody>) -> ProxyService {
    let store = Arc::clone(service.get_ref().get_ref().store());
    let mut fresh = service.clone();
    *fresh.get_mut().get_mut() = super::member_balancer(store, client.clone());
    fresh
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::apache_config::parse;

    /// Every route's balancer of a worker is over the site's store, but is another
    /// balancer (its own member services); the manager is the same one.
    #[tokio::test(flavor = "current_thread")]
    async fn a_worker_shares_the_stores_and_manager_not_the_balancers() {
        let config = parse(
            "<Proxy balancer://app>\n  BalancerMember http://127.0.0.1:9\n</Proxy>\n\
             ProxyPass /x !\nProxyPass / balancer://app/\n\
             <Location /api>\n  ProxyPass balancer://app/api\n</Location>\n\
             <Location /balancer-manager>\n  SetHandler balancer-manager\n</Location>\n",
        )
        .expect("parses");
        let site = Site::from_config(&config).expect("builds");
        let worker = site.worker();
        assert!(Arc::ptr_eq(&site.stores, &worker.stores));
        assert!(Arc::ptr_eq(&site.probes, &worker.probes));
        let (Some(a), Some(b)) = (site.manager(), worker.manager()) else {
            panic!("a manager in both");
        };
        assert_eq!(a.nonce("app"), b.nonce("app"));
        // Every route of the worker has a balancer over the same store (whether its member
        // services are its own is tests/workers.rs's: two threads, real connections).
        let stores = |site: &Site| -> Vec<Arc<crate::BalancerStore>> {
            let server = &site.servers[0];
            server
                .routes
                .iter()
                .chain(server.locations.iter().filter_map(|l| l.route.as_ref()))
                .filter_map(|r| match &r.target {
                    Target::Balancer(s) => Some(Arc::clone(s.get_ref().get_ref().store())),
                    Target::Excluded => None,
                })
                .collect()
        };
        let (ours, theirs) = (stores(&site), stores(&worker));
        assert_eq!(ours.len(), 2);
        assert_eq!(theirs.len(), 2);
        for (a, b) in ours.iter().zip(&theirs) {
            assert!(Arc::ptr_eq(a, b));
            assert!(Arc::ptr_eq(a, &site.stores[0]));
        }
        assert_eq!(worker.servers[0].routes.len(), site.servers[0].routes.len());
    }
}
