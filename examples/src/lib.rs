//! Code the examples share, kept in a library so that tests can run it: the reverse
//! proxy's server, the site it builds from an Apache configuration, and its embedded demo
//! (backends on loopback and an Apache-style configuration over them).

pub mod site;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use proxy_balancer::balancer::BalancerOptions;
use proxy_balancer::client::MakeHttpMember;
use proxy_balancer::error::ErrorResponse;
use proxy_balancer::proxy_pass::strip_hop_by_hop;
use proxy_balancer::sticky_route::{RouteCookie, StickyRoute, StickyRouteLayer};
use proxy_balancer::{Balancer, BalancerParams, BalancerStore, ErrorResponseLayer, MemberParams};
use proxy_balancer_test::TestBackend;
use tokio::net::TcpListener;

/// A boxed error, what the examples return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The service a proxy serves: sticky routes, the balancer over HTTP members, and errors
/// turned into Apache's responses.
pub type ProxyService = ErrorResponse<StickyRoute<Balancer<MakeHttpMember<Incoming>>>>;

/// What an example's `main` returns on error: shows the error's message, not its `Debug`.
pub struct Report(BoxError);

impl<E: Into<BoxError>> From<E> for Report {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl std::fmt::Debug for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Completes after `run_for` if given, else at Ctrl-C (or never, if Ctrl-C cannot be
/// watched): when a server example stops.
pub async fn shutdown_signal(run_for: Option<Duration>) {
    match run_for {
        Some(d) => tokio::time::sleep(d).await,
        None => {
            if let Err(error) = tokio::signal::ctrl_c().await {
                tracing::warn!(%error, "cannot wait for Ctrl-C; running until killed");
                std::future::pending::<()>().await;
            }
        }
    }
}

/// How long connections may take to finish after a shutdown is asked for.
const DRAIN: Duration = Duration::from_secs(5);

/// Starts `n` demo backends on 127.0.0.1 (named `backend-1` …).
///
/// # Errors
///
/// If a loopback port cannot be bound.
pub async fn start_demo_backends(n: usize) -> std::io::Result<Vec<TestBackend>> {
    let mut backends = Vec::with_capacity(n);
    for i in 1..=n {
        backends.push(TestBackend::start(format!("backend-{i}")).await?);
    }
    Ok(backends)
}

/// The embedded default configuration, in Apache httpd's syntax, over the given demo
/// backends: what `reverse-proxy` serves without `--config`.
#[must_use]
pub fn demo_config(backends: &[TestBackend]) -> String {
    let mut text = String::from(
        "# The reverse-proxy example's embedded default, in Apache httpd's syntax.\n\
         # Give your own with --config FILE; check one with --check FILE.\n\
         <Proxy \"balancer://demo\">\n",
    );
    for (i, backend) in backends.iter().enumerate() {
        text.push_str(&format!(
            "    BalancerMember \"{}\" route=node{} retry=5 connectiontimeout=1 hcmethod=GET hcuri=/health hcinterval=2\n",
            backend.url(),
            i + 1
        ));
    }
    text.push_str(
        "    ProxySet lbmethod=byrequests stickysession=ROUTEID\n\
         </Proxy>\n\
         ProxyPass        \"/\" \"balancer://demo/\"\n\
         ProxyPassReverse \"/\" \"balancer://demo/\"\n\
         Header add Set-Cookie \"ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/\" env=BALANCER_ROUTE_CHANGED\n\
         <Location \"/balancer-manager\">\n\
         \x20   SetHandler balancer-manager\n\
         \x20   Require ip 127.0.0.1 ::1\n\
         </Location>\n",
    );
    text
}

/// The embedded default balancer: `balancer://demo` over the given backends, routes
/// `node1` …, sticky on `ROUTEID`, members retried after 5 s.
///
/// # Errors
///
/// If a backend URL is not a valid member URL (never for loopback backends).
pub fn demo_store(backends: &[TestBackend]) -> Result<Arc<BalancerStore>, BoxError> {
    let mut params = BalancerParams::new("balancer://demo");
    params.set("stickysession", "ROUTEID")?;
    let mut members = Vec::with_capacity(backends.len());
    for (i, backend) in backends.iter().enumerate() {
        let mut member = MemberParams::new(&backend.url())?;
        member.set("route", &format!("node{}", i + 1))?;
        member.set("retry", "5")?;
        member.set("connectiontimeout", "1")?;
        members.push(member);
    }
    let now = tokio::time::Instant::now().into_std();
    Ok(Arc::new(BalancerStore::new(params, members, now)?))
}

/// The proxy service over a store: the session route read from the request (and the route
/// cookie set when it changes, as Apache's `Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/" env=BALANCER_ROUTE_CHANGED`),
/// the balancer with the built-in HTTP client, idempotent requests retried on another
/// member, errors answered as Apache does.
#[must_use]
pub fn proxy_service(store: Arc<BalancerStore>) -> ProxyService {
    let options = BalancerOptions::default().retry_idempotent(true);
    let balancer = Balancer::with_options(Arc::clone(&store), MakeHttpMember::new(), options);
    tower::ServiceBuilder::new()
        .layer(ErrorResponseLayer::new())
        .layer(StickyRouteLayer::new(store).with_cookie(RouteCookie::new()))
        .service(balancer)
}

/// Serves `service` on `listener` (HTTP/1.1 and HTTP/2) until `shutdown` completes, then
/// lets open connections finish for up to 5 seconds.
///
/// # Errors
///
/// Never today; the signature leaves room for fatal listener errors.
pub async fn serve(
    listener: TcpListener,
    service: impl Into<site::Site>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), BoxError> {
    let service: site::Site = service.into();
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: wait a little, go on.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                // Answers go out as soon as they are written (as HAProxy, nginx and Apache
                // do): no waiting on Nagle for the ack of the previous answer.
                if let Err(error) = stream.set_nodelay(true) {
                    tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
                }
                let hyper_service = TowerToHyperService::new(forwarding(&service, peer));
                let connection = builder
                    .serve_connection(TokioIo::new(stream), hyper_service)
                    .into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {DRAIN:?}; closing");
    }
    Ok(())
}

/// What every request gets before the site routes it: the client's address (for the
/// balancer-manager's access rule and `X-Forwarded-For`), and hop-by-hop headers removed
/// from the response.
fn forwarding(
    service: &site::Site,
    peer: SocketAddr,
) -> impl tower::Service<
    http::Request<Incoming>,
    Response = http::Response<site::ProxyBody>,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone {
    use tower::ServiceExt;
    // The client's address, for the balancer-manager's access rule and the proxy headers.
    service
        .for_peer(peer)
        .map_response(|mut response: http::Response<_>| {
            strip_hop_by_hop(response.headers_mut());
            response
        })
}

/// A site served on a loopback port chosen by the system, for tests and tools; see
/// [`Running::stop`].
#[derive(Debug)]
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), BoxError>>,
}

/// Serves `site` on 127.0.0.1 at a port the system picks.
///
/// # Errors
///
/// If no loopback port can be bound.
pub async fn start(site: impl Into<site::Site>) -> Result<Running, BoxError> {
    let (listener, addr) = bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, site.into(), async {
        let _ = stopped.await;
    }));
    Ok(Running { addr, stop, task })
}

impl Running {
    /// Stops serving and waits for open connections to finish (bounded by the drain time
    /// plus a margin).
    ///
    /// # Errors
    ///
    /// If the server failed, panicked, or did not stop in time.
    pub async fn stop(self) -> Result<(), BoxError> {
        let _ = self.stop.send(());
        match tokio::time::timeout(DRAIN + Duration::from_secs(5), self.task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(format!("the server task failed: {join}").into()),
            Err(_) => Err("the server did not stop in time".into()),
        }
    }
}

/// Binds `listen` and returns the listener with its actual address (port 0 picks one).
///
/// # Errors
///
/// If the address cannot be bound.
pub async fn bind(listen: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}
