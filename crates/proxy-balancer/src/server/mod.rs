//! Serving a tower service: HTTP/1.1 and HTTP/2 (h2c, prior knowledge) on one listener,
//! the client's address in every request, and a graceful shutdown.
//!
//! What every deployment of a reverse proxy needs and would otherwise re-implement around
//! hyper: [`Server::serve`] accepts connections, serves each with hyper-util's automatic
//! HTTP/1.1-or-HTTP/2 connection builder, puts the client's address in each request as a
//! [`PeerAddr`] extension (read by the [`proxy_pass`](crate::proxy_pass) forwarding for `X-Forwarded-For`
//! and by the balancer-manager's access rule), and when the shutdown future completes stops
//! accepting and lets open connections finish for up to [`Server::drain`].
//! [`Server::spawn`] runs it as a task with a [`ServerHandle`] to stop it.
//!
//! Accept errors (out of file descriptors, a connection reset before it was accepted) are
//! logged and the server goes on after 10 ms, as Apache's and nginx's accept loops do; they
//! never end the server.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//!
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use proxy_balancer::server::{RequestBody, Server};
//! use proxy_balancer::PeerAddr;
//! use tower::service_fn;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! // A service that says who is asking.
//! let service = service_fn(|request: Request<RequestBody>| async move {
//!     let peer = request.extensions().get::<PeerAddr>().map(|p| p.0.ip().to_string());
//!     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(peer.unwrap_or_default()))))
//! });
//! let server = Server::new().listen("127.0.0.1:0".parse()?, service).await?;
//!
//! // ... the server answers on server.local_addr() until:
//! server.shutdown().await?;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_service::Service;

use crate::error::BoxError;
use crate::{LocalAddr, PeerAddr};

mod body;
mod limits;
pub mod request;

pub use body::RequestBody;
pub use request::{Admit, AdmitLayer};

pub use limits::{
    ClientLimits, ReadTimeout, DEFAULT_LIMIT_REQUEST_BODY, DEFAULT_LIMIT_REQUEST_FIELDS,
    DEFAULT_LIMIT_REQUEST_LINE,
};

/// How long open connections may take to finish after a shutdown, by default.
const DEFAULT_DRAIN: Duration = Duration::from_secs(5);

/// How long the accept loop waits after an accept error before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Serves a tower service over HTTP/1.1 and h2c; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct Server {
    drain: Duration,
    nodelay: bool,
    limits: ClientLimits,
}

// ===== impl Server =====

impl Server {
    /// A server with the defaults: connections drained for up to 5 seconds at shutdown,
    /// `TCP_NODELAY` on accepted connections.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            drain: DEFAULT_DRAIN,
            nodelay: true,
            limits: ClientLimits::new(),
        }
    }

    /// What each client is allowed: timeouts, sizes, the connection cap
    /// ([`ClientLimits`], Apache's defaults unless set).
    #[must_use]
    pub fn limits(mut self, limits: ClientLimits) -> Self {
        self.limits = limits;
        self
    }

    /// How long open connections may take to finish after the shutdown future completes;
    /// the ones still open then are closed.
    #[must_use]
    pub const fn drain(mut self, drain: Duration) -> Self {
        self.drain = drain;
        self
    }

    /// Whether accepted connections get `TCP_NODELAY` (default on: answers go out as soon
    /// as they are written, as HAProxy, nginx and Apache send them, not after the ack of
    /// the previous segment).
    #[must_use]
    pub const fn nodelay(mut self, nodelay: bool) -> Self {
        self.nodelay = nodelay;
        self
    }

    /// Serves `service` on `listener` until `shutdown` completes, then stops accepting and
    /// lets open connections finish for up to the [drain](Self::drain) time.
    ///
    /// Every request carries the client's [`PeerAddr`] and the [`LocalAddr`] it reached.
    /// Requests are first checked by [`Admit`] (Host, Transfer-Encoding, the
    /// `LimitRequest*` limits; refused ones are answered without calling `service`), and
    /// their body is a [`RequestBody`] read under the body timeout and `LimitRequestBody`.
    ///
    /// # Errors
    ///
    /// If the listener's address cannot be read (accept errors are logged and retried).
    pub async fn serve<S, B>(
        &self,
        listener: TcpListener,
        service: S,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServerError>
    where
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let local = listener.local_addr().map_err(ServerError::Listener)?;
        // Requests are checked (Host, Transfer-Encoding, LimitRequest*) before the service
        // sees them, and their bodies read under the body timeout and LimitRequestBody.
        let service = Admit::new(service, &self.limits);
        let graceful = GracefulShutdown::new();
        let builder = auto::Builder::new(TokioExecutor::new());
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            tracing::warn!(%error, "accept failed");
                            tokio::time::sleep(ACCEPT_BACKOFF).await;
                            continue;
                        }
                    };
                    if self.nodelay {
                        if let Err(error) = stream.set_nodelay(true) {
                            tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
                        }
                    }
                    let local = stream.local_addr().unwrap_or(local);
                    let service = service.clone().map_request(move |mut request: Request<Incoming>| {
                        request.extensions_mut().insert(PeerAddr(peer));
                        request.extensions_mut().insert(LocalAddr(local));
                        request
                    });
                    let connection = builder
                        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
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
        if tokio::time::timeout(self.drain, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(drain = ?self.drain, "connections still open after the drain time; closing");
        }
        Ok(())
    }

    /// Binds `addr` and serves `service` there in a task: [`spawn`](Self::spawn) on a new
    /// listener. Port 0 takes a port the system picks ([`ServerHandle::local_addr`] says
    /// which).
    ///
    /// # Errors
    ///
    /// If `addr` cannot be bound.
    pub async fn listen<S, B>(
        self,
        addr: SocketAddr,
        service: S,
    ) -> Result<ServerHandle, ServerError>
    where
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(ServerError::Listener)?;
        self.spawn(listener, service)
    }

    /// Serves `service` on `listener` in a task until [`ServerHandle::shutdown`] (or until
    /// the handle is dropped).
    ///
    /// # Errors
    ///
    /// If the listener's address cannot be read.
    pub fn spawn<S, B>(self, listener: TcpListener, service: S) -> Result<ServerHandle, ServerError>
    where
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let addr = listener.local_addr().map_err(ServerError::Listener)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let drain = self.drain;
        let task = tokio::spawn(async move {
            self.serve(listener, service, async {
                // A dropped handle stops the server too.
                let _ = stopped.await;
            })
            .await
        });
        Ok(ServerHandle {
            addr,
            drain,
            stop,
            task,
        })
    }
}

impl Default for Server {
    fn default() -> Self {
        Self::new()
    }
}

/// A server running in a task ([`Server::spawn`]): where it listens, and how to stop it.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    drain: Duration,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), ServerError>>,
}

// ===== impl ServerHandle =====

impl ServerHandle {
    /// The address the server listens on (the port the system picked, for port 0).
    #[must_use]
    pub const fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and waits for open connections to finish (at most the drain time,
    /// plus a second for the task to end).
    ///
    /// # Errors
    ///
    /// If the server task failed or panicked, or did not end in time.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        let _ = self.stop.send(());
        match tokio::time::timeout(self.drain + Duration::from_secs(1), self.task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(ServerError::Task(join.to_string())),
            Err(_) => Err(ServerError::Task(format!(
                "did not stop within {:?}",
                self.drain + Duration::from_secs(1)
            ))),
        }
    }
}

/// Why a [`Server`] could not start or stop.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerError {
    /// The address could not be bound, or the listener's address could not be read.
    Listener(std::io::Error),
    /// The server task failed, panicked, or did not stop in time.
    Task(String),
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Listener(e) => write!(f, "cannot listen: {e}"),
            Self::Task(why) => write!(f, "the server task failed: {why}"),
        }
    }
}

impl std::error::Error for ServerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Listener(e) => Some(e),
            Self::Task(_) => None,
        }
    }
}
