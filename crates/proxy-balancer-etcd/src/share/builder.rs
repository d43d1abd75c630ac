//! [`EtcdShareBuilder`]: the settings, checked, and the engine started.

use super::*;

// ===== builder =====

/// Builds an [`EtcdShare`]; see [`EtcdShare::builder`].
#[derive(Debug)]
#[must_use]
pub struct EtcdShareBuilder {
    pub(super) endpoints: Vec<String>,
    pub(super) prefix: String,
    pub(super) instance: Option<String>,
    pub(super) balancers: Vec<Arc<BalancerStore>>,
    pub(super) request_timeout: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) start_wait: Duration,
    pub(super) hc_expr_names: Option<Vec<String>>,
}

impl EtcdShareBuilder {
    /// The key prefix under which the fleet's state lives (default
    /// [`DEFAULT_PREFIX`], `/proxy-balancer/`). A `/` is added at the end if missing.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// This instance's name in the fleet, written with each of its edits (`via=`). Default:
    /// the `HOSTNAME` environment variable, else the host's name (`/proc/sys/kernel/hostname`,
    /// what `hostname` prints), else `proxy-balancer-<pid>`.
    pub fn instance(mut self, name: impl Into<String>) -> Self {
        self.instance = Some(name.into());
        self
    }

    /// A balancer to share (by its name: `balancer://app` is `app` under the prefix). Call
    /// it once per balancer. Give the store as built from the configuration: its members'
    /// state then is what deleting their key in etcd returns them to.
    pub fn balancer(mut self, store: Arc<BalancerStore>) -> Self {
        self.balancers.push(store);
        self
    }

    /// The bound on each call to etcd (default 2 s): [`SharedEdits::submit`] answers within
    /// about twice this, also when etcd hangs.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The bound on opening a connection to etcd (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long [`start`](Self::start) waits for the first full read of the prefix (default
    /// 2 s). When etcd does not answer by then, `start` returns anyway: the instance serves
    /// the configuration's state, [`SharedEdits::status`] says it is not connected, and the
    /// state in etcd is applied when etcd answers.
    pub fn start_wait(mut self, wait: Duration) -> Self {
        self.start_wait = wait;
        self
    }

    /// The health-check conditions (`ProxyHCExpr` names) a `w_he` in etcd may name, as
    /// given to the manager's `hc_expr_names`. Without it, any well-formed name is taken.
    pub fn hc_expr_names(mut self, names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.hc_expr_names = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Starts the engine: reads the prefix once (waiting at most
    /// [`start_wait`](Self::start_wait)) and applies it, then watches it in a tokio task.
    ///
    /// # Errors
    ///
    /// [`EtcdError`] for a bad setting: no endpoint, an endpoint that is not an
    /// `http://host:port` URL, a bad prefix or instance name, no balancer or the same one
    /// twice, or no tokio runtime. etcd being down is not an error.
    pub async fn start(self) -> Result<EtcdShare, EtcdError> {
        let wait = self.start_wait;
        let share = self.spawn()?;
        share.ready(wait).await;
        Ok(share)
    }

    /// Starts the engine without waiting: for code that is not `async` (a site built from a
    /// configuration inside a runtime). The settings are checked now; the first read of
    /// etcd happens in the engine's task, and until it is done the instance serves its
    /// configuration's state, [`SharedEdits::status`] says it is not connected yet and
    /// [`SharedEdits::submit`] refuses. [`EtcdShare::ready`] waits for that first read.
    /// [`start_wait`](Self::start_wait) is not used.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start); [`EtcdError::NoRuntime`] when called outside a tokio
    /// runtime.
    pub fn spawn(self) -> Result<EtcdShare, EtcdError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| EtcdError::NoRuntime)?;
        let endpoints = check_endpoints(&self.endpoints)?;
        let prefix = check_prefix(&self.prefix)?;
        let instance = match self.instance {
            Some(name) => check_instance(name)?,
            None => default_instance(),
        };
        if self.balancers.is_empty() {
            return Err(EtcdError::NoBalancers);
        }
        let mut balancers = BTreeMap::new();
        for store in self.balancers {
            let name = short_name(&store.snapshot().params().name);
            if name.contains('/') || name.is_empty() {
                return Err(EtcdError::BadBalancerName { name });
            }
            if balancers.contains_key(&name) {
                return Err(EtcdError::DuplicateBalancer { name });
            }
            balancers.insert(
                name,
                Entry {
                    store,
                    base: None,
                    doc: None,
                    members: BTreeMap::new(),
                },
            );
        }
        let client =
            Client::new(&endpoints, self.connect_timeout, self.request_timeout).map_err(|e| {
                EtcdError::BadEndpoint {
                    endpoint: endpoints.join(","),
                    reason: e.to_string(),
                }
            })?;
        let backend = format!("etcd {} prefix {prefix}", endpoints.join(","));
        let (stop, stopped) = watch::channel(false);
        let (first_tx, first) = watch::channel(false);
        let inner = Arc::new(Inner {
            prefix,
            instance,
            backend,
            client,
            request_timeout: self.request_timeout,
            hc_expr_names: self.hc_expr_names,
            stopping: AtomicBool::new(false),
            lost_races: AtomicU64::new(0),
            state: Mutex::new(State {
                balancers,
                revision: 0,
                connected: false,
                ever_connected: false,
                since: SystemTime::now(),
                last_error: Some("connecting to etcd".to_owned()),
                outage_logged: false,
                problems: BTreeMap::new(),
                seen: HashMap::new(),
            }),
        });
        runtime.spawn(run(Arc::clone(&inner), stopped, first_tx));
        Ok(EtcdShare {
            handle: Arc::new(Handle { inner, stop, first }),
        })
    }
}

fn check_endpoints(endpoints: &[String]) -> Result<Vec<String>, EtcdError> {
    if endpoints.is_empty() {
        return Err(EtcdError::NoEndpoints);
    }
    endpoints
        .iter()
        .map(|e| {
            let e = e.trim();
            let url = if e.contains("://") {
                e.to_owned()
            } else {
                format!("http://{e}")
            };
            let bad = |reason: &str| EtcdError::BadEndpoint {
                endpoint: e.to_owned(),
                reason: reason.to_owned(),
            };
            let uri: http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
            match uri.scheme_str() {
                Some("http") => {}
                Some("https") => {
                    return Err(bad(
                        "TLS to etcd is not supported yet: use http:// on a trusted network \
                         (or a local TLS-terminating proxy)",
                    ))
                }
                _ => return Err(bad("expected http://host:port")),
            }
            if uri.port_u16().is_none() || uri.host().map_or(true, str::is_empty) {
                return Err(bad("expected http://host:port"));
            }
            if uri.path() != "/" && !uri.path().is_empty() {
                return Err(bad("an endpoint has no path"));
            }
            Ok(url.trim_end_matches('/').to_owned())
        })
        .collect()
}

fn check_prefix(prefix: &str) -> Result<String, EtcdError> {
    let bad = |reason: &str| EtcdError::BadPrefix {
        prefix: prefix.to_owned(),
        reason: reason.to_owned(),
    };
    if prefix.trim().is_empty() || prefix == "/" {
        return Err(bad(
            "the prefix must name a part of the key space (e.g. /proxy-balancer/)",
        ));
    }
    if prefix.chars().any(char::is_control) {
        return Err(bad("control characters are not allowed"));
    }
    Ok(if prefix.ends_with('/') {
        prefix.to_owned()
    } else {
        format!("{prefix}/")
    })
}

fn check_instance(name: String) -> Result<String, EtcdError> {
    if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        return Err(EtcdError::BadInstance {
            instance: name,
            reason: "1 to 128 characters, none a control character".to_owned(),
        });
    }
    Ok(name)
}

fn default_instance() -> String {
    instance_from(
        std::env::var("HOSTNAME").ok(),
        std::fs::read_to_string(KERNEL_HOSTNAME).ok(),
        std::process::id(),
    )
}

/// Where Linux gives the host's name (what `hostname` prints), read when `HOSTNAME` is not
/// in the environment (bash does not export it, systemd does not set it).
const KERNEL_HOSTNAME: &str = "/proc/sys/kernel/hostname";

/// The default instance name: `HOSTNAME` from the environment, else the host's name, else
/// `proxy-balancer-<pid>`; a name that is not a valid instance name is passed over.
fn instance_from(env: Option<String>, kernel: Option<String>, pid: u32) -> String {
    env.and_then(|h| check_instance(h).ok())
        .or_else(|| kernel.and_then(|h| check_instance(h.trim().to_owned()).ok()))
        .unwrap_or_else(|| format!("proxy-balancer-{pid}"))
}

#[cfg(test)]
mod default_instance_tests {
    use super::instance_from;

    #[test]
    fn the_environment_then_the_host_name_then_the_pid() {
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(instance_from(s("pod-7"), s("web-1\n"), 42), "pod-7");
        assert_eq!(instance_from(None, s("web-1\n"), 42), "web-1");
        // Not a valid name (a control character): passed over.
        assert_eq!(instance_from(s("a\u{7}b"), s("web-1"), 42), "web-1");
        assert_eq!(instance_from(None, s(""), 42), "proxy-balancer-42");
        assert_eq!(instance_from(None, None, 42), "proxy-balancer-42");
    }
}
