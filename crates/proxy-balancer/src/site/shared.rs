//! `BalancerShare`: the site's balancers shared with a fleet through etcd (the `etcd`
//! feature), one share per process, handed to every balancer-manager of the site.
//!
//! The share is started when the site is built ([`Site::from_config`] is not `async`: the
//! engine connects and reads etcd in a task of the runtime the site is built in). Until its
//! first read of etcd is done the site serves the configuration's state, the manager's page
//! says the store is not connected yet, and edits are refused with 503, as while etcd is
//! down. It stops when the last clone of the site (and of its managers) is dropped: when a
//! server that served it has shut down and the application drops its copy.

use std::sync::Arc;

use crate::apache_config::shared::BalancerShare;
use crate::apache_config::Config;
use crate::manager::shared::SharedEdits;
use crate::BalancerStore;

use super::{Site, SiteError};

impl Site {
    /// The fleet's shared store of `BalancerShare` (the `etcd` feature), when the
    /// configuration has one: the same for every [`Site::worker`] and every
    /// balancer-manager of the site (one per process). Its
    /// [`status`](SharedEdits::status) says whether etcd is reached now.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let config = proxy_balancer::apache_config::parse(
    ///     "<Proxy balancer://app>\n  BalancerMember http://127.0.0.1:9\n</Proxy>\n",
    /// )?;
    /// let site = proxy_balancer::site::Site::from_config(&config)?;
    /// assert!(site.shared().is_none(), "no BalancerShare line");
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn shared(&self) -> Option<&Arc<dyn SharedEdits>> {
        self.share.as_ref()
    }
}

/// The balancers a share covers: the `<Proxy balancer://…>` ones (not the balancer of one
/// member made for a `ProxyPass` to a plain URL), each once.
fn shared_stores(
    stores: &[Arc<BalancerStore>],
    balancer_stores: &[Option<usize>],
) -> Vec<Arc<BalancerStore>> {
    let mut out: Vec<Arc<BalancerStore>> = Vec::new();
    for &i in balancer_stores.iter().flatten() {
        if let Some(store) = stores.get(i) {
            if !out.iter().any(|s| Arc::ptr_eq(s, store)) {
                out.push(Arc::clone(store));
            }
        }
    }
    out
}

/// Checks a `BalancerShare` line against the rest of the configuration and, unless `dry`
/// ([`Site::validate`]), starts the share over the site's balancers.
///
/// # Errors
///
/// [`SiteError::Unsupported`] on the line: built without the `etcd` feature; with
/// `BalancerPersist On` and a manager; with no balancer to share; with two balancers of the
/// same name (in two `<VirtualHost>`s: etcd's keys name balancers); outside a tokio runtime.
pub(super) fn start(
    config: &Config,
    stores: &[Arc<BalancerStore>],
    balancer_stores: &[Option<usize>],
    hc_expr_names: Vec<String>,
    dry: bool,
) -> Result<Option<Arc<dyn SharedEdits>>, SiteError> {
    let Some((share, shared)) = check(config, stores, balancer_stores, cfg!(feature = "etcd"))?
    else {
        return Ok(None);
    };
    if dry {
        return Ok(None);
    }
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(SiteError::Unsupported {
            line: share.span.line,
            reason: "BalancerShare: the site must be built inside a tokio runtime (the share watches etcd in a task)".to_owned(),
        });
    }
    engine::start(share, shared, hc_expr_names).map(Some)
}

/// A `BalancerShare` line and the stores it shares.
type Sharing<'c> = (&'c BalancerShare, Vec<Arc<BalancerStore>>);

/// The `BalancerShare` line and the stores it shares, if the configuration has one that
/// can work (`built`: whether the `etcd` feature is built in). See [`start`]'s errors.
fn check<'c>(
    config: &'c Config,
    stores: &[Arc<BalancerStore>],
    balancer_stores: &[Option<usize>],
    built: bool,
) -> Result<Option<Sharing<'c>>, SiteError> {
    let Some(share) = &config.balancer_share else {
        return Ok(None);
    };
    let line = share.span.line;
    let refuse = |reason: String| Err(SiteError::Unsupported { line, reason });
    if !built {
        return refuse("BalancerShare needs proxy-balancer built with the `etcd` feature (it is in `full`): cargo build --features proxy-balancer/etcd".to_owned());
    }
    if config.balancer_persist == Some(true) && !config.manager_locations.is_empty() {
        return refuse("BalancerShare with BalancerPersist On: the shared store keeps the manager's edits, and a file of this instance's own would bring back a state the fleet has left; remove BalancerPersist On".to_owned());
    }
    let shared = shared_stores(stores, balancer_stores);
    if shared.is_empty() {
        return refuse(
            "BalancerShare without a <Proxy balancer://…>: there is nothing to share".to_owned(),
        );
    }
    let mut names: Vec<String> = shared
        .iter()
        .map(|s| s.snapshot().params().name.clone())
        .collect();
    names.sort();
    if let Some(pair) = names.windows(2).find(|w| w[0] == w[1]) {
        return refuse(format!(
            "BalancerShare: two balancers are named {} (in different <VirtualHost>s); etcd's keys name balancers, so each shared balancer needs a name of its own: rename one",
            pair[0]
        ));
    }
    Ok(Some((share, shared)))
}

#[cfg(not(feature = "etcd"))]
mod engine {
    use std::sync::Arc;

    use crate::apache_config::shared::BalancerShare;
    use crate::manager::shared::SharedEdits;
    use crate::BalancerStore;

    use super::SiteError;

    /// Never called: [`super::start`] refuses the line without the feature.
    pub(super) fn start(
        share: &BalancerShare,
        _stores: Vec<Arc<BalancerStore>>,
        _hc_expr_names: Vec<String>,
    ) -> Result<Arc<dyn SharedEdits>, SiteError> {
        Err(SiteError::Unsupported {
            line: share.span.line,
            reason: "BalancerShare needs proxy-balancer built with the `etcd` feature".to_owned(),
        })
    }
}

#[cfg(feature = "etcd")]
mod engine {
    use std::sync::Arc;

    use proxy_balancer_etcd::EtcdShare;

    use crate::apache_config::shared::BalancerShare;
    use crate::manager::shared::SharedEdits;
    use crate::BalancerStore;

    use super::SiteError;

    /// The engine, started in a task of the current runtime without waiting for etcd
    /// ([`EtcdShareBuilder::spawn`](proxy_balancer_etcd::EtcdShareBuilder::spawn)): until
    /// its first read the site serves the configuration and edits are refused. It stops
    /// when the last clone (the site's, the managers') is dropped.
    pub(super) fn start(
        line: &BalancerShare,
        stores: Vec<Arc<BalancerStore>>,
        hc_expr_names: Vec<String>,
    ) -> Result<Arc<dyn SharedEdits>, SiteError> {
        let mut builder = EtcdShare::builder(line.endpoints.iter().cloned())
            .prefix(line.prefix.clone())
            .hc_expr_names(hc_expr_names);
        if let Some(instance) = &line.instance {
            builder = builder.instance(instance.clone());
        }
        for store in stores {
            builder = builder.balancer(store);
        }
        let share = builder.spawn().map_err(|e| SiteError::Unsupported {
            line: line.span.line,
            reason: format!("BalancerShare: {e}"),
        })?;
        tracing::info!(
            line = line.span.line,
            instance = share.instance(),
            prefix = share.prefix(),
            "BalancerShare: the balancer-manager's edits are shared through etcd"
        );
        Ok(Arc::new(share))
    }
}

#[cfg(all(test, feature = "etcd"))]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::apache_config::parse;
    use crate::manager::shared::SharedEditError;
    use crate::manager::shared::SharedEditRequest;
    use crate::site::{Site, SiteError};

    /// A loopback port nothing listens on (bound, read, closed).
    fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        listener.local_addr().expect("an address").port()
    }

    const MANAGER: &str = "<Location /balancer-manager>\n  SetHandler balancer-manager\n  Require ip 127.0.0.1\n</Location>\n";

    fn refused(text: &str) -> (u32, String) {
        let config = parse(text).expect("parses");
        match Site::from_config(&config) {
            Err(SiteError::Unsupported { line, reason }) => (line, reason),
            other => panic!("{text}: {other:?}"),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn refused_with_its_line_where_it_cannot_work() {
        let (line, reason) = refused(&format!(
            "<Proxy balancer://app>\n  BalancerMember http://127.0.0.1:9\n</Proxy>\nBalancerShare etcd http://127.0.0.1:1\nBalancerPersist On\nDefaultRuntimeDir /tmp\n{MANAGER}"
        ));
        assert_eq!(line, 4);
        assert!(reason.contains("BalancerPersist On"), "{reason}");
        let (line, reason) = refused("BalancerShare etcd http://127.0.0.1:1\n");
        assert_eq!(line, 1);
        assert!(reason.contains("nothing to share"), "{reason}");
        let (_, reason) = refused(
            "BalancerShare etcd http://127.0.0.1:1\n\
             <VirtualHost 127.0.0.1:80>\n<Proxy balancer://app>\n  BalancerMember http://127.0.0.1:9\n</Proxy>\n</VirtualHost>\n\
             <VirtualHost 127.0.0.1:81>\n<Proxy balancer://app>\n  BalancerMember http://127.0.0.1:10\n</Proxy>\n</VirtualHost>\n",
        );
        assert!(
            reason.contains("two balancers are named balancer://app"),
            "{reason}"
        );
        // `validate` checks the same, without starting anything.
        let config = parse("BalancerShare etcd http://127.0.0.1:1\n").expect("parses");
        assert!(Site::validate(&config).is_err());
    }

    /// With etcd unreachable the site is built and serves; its one share (in every manager
    /// and every worker) says it is not connected and refuses edits with 503.
    #[tokio::test(flavor = "current_thread")]
    async fn one_share_per_process_in_every_manager_and_worker() {
        let text = format!(
            "BalancerShare etcd http://127.0.0.1:{} instance=solo\n<Proxy balancer://app>\n  BalancerMember http://127.0.0.1:9\n</Proxy>\nProxyPass / balancer://app/\n{MANAGER}",
            closed_port()
        );
        let config = parse(&text).expect("parses");
        let site = Site::from_config(&config).expect("builds while etcd is down");
        let share = Arc::clone(site.shared().expect("a share"));
        let worker = site.worker();
        assert!(Arc::ptr_eq(
            &share,
            worker.shared().expect("the same share")
        ));
        let manager = site.manager().expect("a manager");
        assert!(manager.is_shared());
        assert!(Arc::ptr_eq(
            &share,
            manager.shared().expect("the manager's")
        ));
        let status = share.status();
        assert!(!status.connected);
        assert_eq!(status.instance, "solo");
        assert!(
            status.backend.starts_with("etcd http://127.0.0.1:"),
            "{status:?}"
        );
        let form = crate::manager::edit::parse_form(b"b=app&w=http://127.0.0.1:9&w_status_D=1")
            .expect("a form");
        let edit = crate::manager::edit::Edit::from_form(&form).expect("an edit");
        let refused = tokio::time::timeout(
            Duration::from_secs(10),
            share.submit(SharedEditRequest::new("app", edit, "test")),
        )
        .await
        .expect("answers in time");
        assert!(
            matches!(refused, Err(SharedEditError::Unavailable { .. })),
            "{refused:?}"
        );
        assert!(site.stores()[0].snapshot().members()[0].is_usable());
    }
}

#[cfg(test)]
mod without_the_feature {
    use std::sync::Arc;

    use crate::apache_config::parse;
    use crate::site::SiteError;
    use crate::BalancerStore;

    /// Built without the `etcd` feature, the line is refused, naming the feature (and
    /// `Site::validate`, which `--check` runs, says so too).
    #[test]
    fn the_line_is_refused_naming_the_feature() {
        let config = parse(
            "<Proxy balancer://app>\n  BalancerMember http://127.0.0.1:9\n</Proxy>\nBalancerShare etcd http://127.0.0.1:1\n",
        )
        .expect("parses");
        let (params, members) = config.balancers().expect("valid").remove(0);
        let now = tokio::time::Instant::now().into_std();
        let store = Arc::new(BalancerStore::new(params, members, now).expect("a store"));
        let stores = [Arc::clone(&store)];
        match super::check(&config, &stores, &[Some(0)], false) {
            Err(SiteError::Unsupported { line: 4, reason }) => {
                assert!(reason.contains("the `etcd` feature"), "{reason}");
            }
            other => panic!("{:?}", other.map(|o| o.is_some())),
        }
        let shared = super::check(&config, &stores, &[Some(0)], true)
            .expect("with the feature")
            .expect("a share");
        assert!(Arc::ptr_eq(&shared.1[0], &store));
        assert_eq!(shared.0.span.line, 4);
    }
}
