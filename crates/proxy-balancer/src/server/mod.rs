//! Serving a tower service: HTTP/1.1 and HTTP/2 (h2c, prior knowledge) on one listener,
//! or HTTPS with ALPN h2 and http/1.1 ([`Server::tls`]), the client's address in every
//! request, and a graceful shutdown.
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
//! # What a client is allowed
//!
//! [`ClientLimits`] (Apache's names and defaults) is enforced on every connection:
//!
//! - a new connection must send its first request head within `RequestReadTimeout
//!   header=` (20 s, from the accept, as mod_reqtimeout counts); a head being received has
//!   that long from its first byte, extended by a second per `MinRate` bytes up to the
//!   maximum (40 s), so a request line dripped a byte at a time is cut at 40 s. An
//!   HTTP/1.1 client that sent part of a head is answered `408 Request Timeout` before the
//!   close; a silent connection is just closed;
//! - between requests, a connection waits `KeepAliveTimeout` (5 s) for the first byte of
//!   the next; an HTTP/2 connection with no open stream closes after it too;
//! - while a request is in flight (from its dispatch until its response body is written or
//!   dropped) reads have no deadline here (the request body has its own); every write
//!   waiting longer than `TimeOut` (60 s), a client that stops reading its response,
//!   closes the connection;
//! - `KeepAlive Off`, `MaxKeepAliveRequests` (the last response says `Connection: close`),
//!   `LimitRequestFields` (hyper's `max_headers`, 431 beyond), a cap on the whole head
//!   ([`ClientLimits::limit_request_head`], 32 KiB, 431 beyond; the HTTP/2 header list
//!   limit too), 100 concurrent HTTP/2 streams (Apache's `H2MaxSessionStreams`);
//! - a `101 Switching Protocols` (a WebSocket tunnelled to a member, see
//!   [`ClientOptions::with_upgrades`](crate::client::ClientOptions::with_upgrades)) hands the
//!   connection to the tunnel: no read deadline here (the tunnel's idle timeout bounds it),
//!   writes still bounded by `TimeOut`, and the connection keeps its slot under the cap
//!   until the tunnel ends;
//! - at most [`ClientLimits::max_connections`] connections (derived from the open-file
//!   limit by default; see [`raise_nofile_limit`]): at the cap the server stops accepting
//!   and closes idle connections, so idle clients cannot lock others out.
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

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;
use tower_service::Service;

use crate::error::BoxError;
use crate::{LocalAddr, PeerAddr};

mod body;
mod conn;
mod limits;
mod nofile;
pub mod request;
mod reuseport;
mod tls;

pub use body::RequestBody;
pub use request::{Admit, AdmitLayer};

use conn::{ConnIo, ConnService, ConnState, IoLimits};
pub use limits::{
    ClientLimits, ReadTimeout, DEFAULT_LIMIT_REQUEST_BODY, DEFAULT_LIMIT_REQUEST_FIELDS,
    DEFAULT_LIMIT_REQUEST_HEAD, DEFAULT_LIMIT_REQUEST_LINE,
};
pub use nofile::{raise_nofile_limit, NofileLimitError};
pub use reuseport::bind_reuseport;
pub use tls::{load_certified_key, ServerTls, ServerTlsError};

/// How long open connections may take to finish after a shutdown, by default.
const DEFAULT_DRAIN: Duration = Duration::from_secs(5);

/// How long the accept loop waits after an accept error before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// At most one warning about the connection cap in this time, so an attack does not flood
/// the error log.
const CAP_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// While at the cap, how often the idle connections are told again to close.
const RELIEF_RETRY: Duration = Duration::from_millis(100);

/// Apache's `H2MaxSessionStreams` default: streams one HTTP/2 client may have open at once.
const H2_MAX_CONCURRENT_STREAMS: u32 = 100;

/// At the connection cap, a TLS handshake in progress for longer than this is closed by the
/// relief, as an idle connection is (a client that opened the connection and sent no
/// complete ClientHello holds a slot and nothing else); a younger one is let finish.
const HANDSHAKE_GRACE: Duration = Duration::from_secs(1);

/// Serves a tower service over HTTP/1.1 and h2c; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct Server {
    drain: Duration,
    nodelay: bool,
    limits: ClientLimits,
    tls: Option<ServerTls>,
}

// ===== impl Server =====

impl Server {
    /// A server with the defaults: connections drained for up to 5 seconds at shutdown,
    /// `TCP_NODELAY` on accepted connections, Apache's [`ClientLimits`].
    #[must_use]
    pub const fn new() -> Self {
        Self {
            drain: DEFAULT_DRAIN,
            nodelay: true,
            limits: ClientLimits::new(),
            tls: None,
        }
    }

    /// Serves HTTPS: every connection [`serve`](Self::serve) accepts speaks TLS with
    /// `tls` (ALPN `h2` and `http/1.1`), and its requests carry a [`TlsInfo`]
    /// (their scheme is `https`).
    ///
    /// The handshake runs in the connection's task, not in the accept loop, within
    /// [`ClientLimits::handshake_timeout`]; a failed or stalled one is logged at debug and
    /// the connection closed; a client speaking plain HTTP to the port is answered
    /// `400 Bad Request` (as Apache's mod_ssl). The connection cap counts a connection from
    /// its accept; one still in its handshake is not closed by the cap's relief (its
    /// handshake time bounds it).
    ///
    /// [`TlsInfo`]: crate::TlsInfo
    #[must_use]
    pub fn tls(mut self, tls: ServerTls) -> Self {
        self.tls = Some(tls);
        self
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
    /// Each connection is served as by [`serve_connection`](Self::serve_connection), and
    /// at most [`ClientLimits::max_connections`] are open at once (see there for what
    /// happens at the cap).
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
        let front = Arc::new(Front::new(&self.limits));
        let cap = self
            .limits
            .max_connections
            .or_else(nofile::derived_max_connections)
            .unwrap_or(Semaphore::MAX_PERMITS)
            .clamp(1, Semaphore::MAX_PERMITS);
        let slots = Arc::new(Semaphore::new(cap));
        let mut last_warning: Option<tokio::time::Instant> = None;
        tokio::pin!(shutdown);
        loop {
            // A slot first: at the cap, close the idle connections and wait for one to end;
            // new clients wait in the listen backlog.
            let permit = if let Ok(permit) = Arc::clone(&slots).try_acquire_owned() {
                permit
            } else {
                let acquire = Arc::clone(&slots).acquire_owned();
                tokio::pin!(acquire);
                let permit = loop {
                    front.relieve(&mut last_warning, cap, "connection cap reached");
                    tokio::select! {
                        permit = &mut acquire => break permit.ok(),
                        // Connections accepted just before may not have registered yet (their
                        // task not run), so not have heard the relief: tell them again.
                        () = tokio::time::sleep(RELIEF_RETRY) => {}
                        () = &mut shutdown => break None,
                    }
                };
                let Some(permit) = permit else { break };
                permit
            };
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            if is_out_of_descriptors(&error) {
                                front.relieve(&mut last_warning, cap, "out of file descriptors");
                            } else {
                                tracing::warn!(%error, "accept failed");
                            }
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
                    if let Some(tls) = &self.tls {
                        // The handshake in the connection's task: a slow client does not
                        // hold up the accepts. A shutdown waits for it (up to the drain).
                        let (tls, front, service) =
                            (tls.clone(), Arc::clone(&front), service.clone());
                        let watcher = graceful.watcher();
                        let limit = self.limits.tls_handshake_limit();
                        tokio::spawn(async move {
                            // At the cap, the relief may close a handshake that lingers.
                            let relief = front.handshaking(peer);
                            let handshake = tls::handshake(&tls, stream, peer, limit);
                            let done = tokio::select! {
                                done = handshake => done,
                                () = relief.notified() => {
                                    tracing::debug!(%peer, "TLS handshake closed at the connection cap");
                                    None
                                }
                            };
                            drop(relief);
                            let Some((stream, info)) = done else {
                                return;
                            };
                            let service = service.map_request(move |mut r: Request<Incoming>| {
                                r.extensions_mut().insert(info.clone());
                                r
                            });
                            front.run(stream, peer, local, service, Some(watcher), permit).await;
                        });
                        continue;
                    }
                    tokio::spawn(Arc::clone(&front).run(
                        stream,
                        peer,
                        local,
                        service.clone(),
                        Some(graceful.watcher()),
                        permit,
                    ));
                }
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        // Connections that have not sent their first bytes yet close now (they are not
        // hyper's yet, so its graceful shutdown cannot tell them).
        front.stop();
        if tokio::time::timeout(self.drain, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(drain = ?self.drain, "connections still open after the drain time; closing");
        }
        Ok(())
    }

    /// Serves one connection, `io`, from the client at `peer` that reached `local`, with
    /// the same [`ClientLimits`] as [`serve`](Self::serve) (timeouts, keep-alive, head and
    /// header caps, HTTP/2 settings; the connection cap is [`serve`](Self::serve)'s).
    /// Ends when the connection ends; no graceful shutdown.
    ///
    /// Any byte stream works: a TCP or Unix stream, a TLS stream, or an in-memory
    /// [`tokio::io::duplex`] pipe (for tests and fuzzing).
    ///
    /// ```
    /// use std::convert::Infallible;
    ///
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use http_body_util::Full;
    /// use proxy_balancer::server::{RequestBody, Server};
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// use tower::service_fn;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let service = service_fn(|_: Request<RequestBody>| async {
    ///     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("hi"))))
    /// });
    /// let (mut client, server_io) = tokio::io::duplex(64 * 1024);
    /// let addr = "127.0.0.1:80".parse()?;
    /// let served = tokio::spawn(async move {
    ///     Server::new().serve_connection(server_io, addr, addr, service).await
    /// });
    /// client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await?;
    /// let mut answer = Vec::new();
    /// client.read_to_end(&mut answer).await?;
    /// assert!(answer.starts_with(b"HTTP/1.1 200 OK"));
    /// served.await??;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// When the connection ends in an error: an IO error, a timeout, a protocol error.
    pub async fn serve_connection<I, S, B>(
        &self,
        io: I,
        peer: SocketAddr,
        local: SocketAddr,
        service: S,
    ) -> Result<(), BoxError>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let front = Arc::new(Front::new(&self.limits));
        let service = Admit::new(service, &self.limits);
        let (connection, _state) = front.connection(io, peer, local, service, None);
        connection.await
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

pin_project_lite::pin_project! {
    /// Runs a connection to its end; when the server stops ([`ConnState::stop`]), asks it
    /// once to end gracefully (hyper answers the requests in flight, then closes) and runs
    /// it on. One atomic load per poll: no waiter list to lock on every wake-up.
    struct Graceful<'a, C> {
        #[pin]
        connection: C,
        state: &'a ConnState,
        shutdown: Option<fn(Pin<&mut C>)>,
    }
}

impl<'a, C: Future> Graceful<'a, C> {
    fn new(connection: C, state: &'a ConnState, shutdown: fn(Pin<&mut C>)) -> Self {
        Self {
            connection,
            state,
            shutdown: Some(shutdown),
        }
    }
}

impl<C: Future> Future for Graceful<'_, C> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        // Polled before the shutdown applies: bytes already read (the head the server's
        // first-bytes read holds) start their request, which the shutdown then lets finish
        // instead of closing a connection that looks idle to hyper.
        let polled = this.connection.as_mut().poll(cx);
        if polled.is_pending() && this.state.stopping() {
            if let Some(shutdown) = this.shutdown.take() {
                shutdown(this.connection.as_mut());
                return this.connection.poll(cx);
            }
        }
        polled
    }
}

/// Whether an accept error means the process or the system is out of descriptors.
fn is_out_of_descriptors(error: &std::io::Error) -> bool {
    // EMFILE and ENFILE on Linux and the BSDs.
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    matches!(error.raw_os_error(), Some(EMFILE | ENFILE))
}

/// What every connection of one server shares: hyper's builders with the limits applied,
/// the per-connection deadlines, and the signal that closes idle connections.
#[derive(Debug)]
struct Front {
    /// HTTP/1.x connections, chosen by the connection's first bytes (not the h2 preface).
    h1: hyper::server::conn::http1::Builder,
    /// HTTP/2 connections (prior knowledge: the first bytes are the h2 preface).
    h2: hyper::server::conn::http2::Builder<TokioExecutor>,
    /// Set when the server stops: connections still waiting for their first bytes close.
    stopping: std::sync::atomic::AtomicBool,
    stop: tokio::sync::Notify,
    io_limits: IoLimits,
    max_keep_alive_requests: u32,
    /// The open connections (of [`Server::serve`]), for the connection cap's relief; locked
    /// when a connection opens or ends and at the cap, never on the request path.
    open: parking_lot::Mutex<HashMap<u64, Arc<ConnState>>>,
    next_id: AtomicU64,
    /// Connections closed by the relief since the last warning.
    relieved: AtomicU64,
    /// TLS handshakes in progress (of [`Server::serve`]): when each began, and how the
    /// relief closes it. Locked when a handshake begins or ends and at the cap.
    handshakes: parking_lot::Mutex<HashMap<u64, (tokio::time::Instant, Arc<tokio::sync::Notify>)>>,
}

// ===== impl Front =====

impl Front {
    fn new(limits: &ClientLimits) -> Self {
        let head = limits.get_limit_request_head();
        // LimitRequestFields 0 is unlimited in Apache; a head cannot hold more fields than
        // one per 4 bytes ("a:\r\n"), and hyper allocates room for the maximum per head.
        let fields = if limits.limit_request_fields == 0 {
            head / 4
        } else {
            limits.limit_request_fields
        };
        let mut h1 = hyper::server::conn::http1::Builder::new();
        h1
            // `KeepAlive Off` is ConnService's (every response says `Connection: close`,
            // so hyper closes after it): hyper's own switch would append `close` to a
            // 101's `Connection: Upgrade`, which strict WebSocket clients refuse.
            .keep_alive(true)
            .max_headers(fields)
            // hyper's read buffer: the whole head must fit, so this caps it (431 beyond).
            .max_buf_size(head)
            // The header timeout is ConnIo's (with MinRate), not hyper's fixed one.
            .header_read_timeout(None)
            // A client that closes (or only shuts its write side) before its answer is
            // gone: its request is dropped at once, so that no busy count or member
            // connection outlives it (nginx's `proxy_ignore_client_abort off`; Apache runs
            // such a request to its end). `printf … | nc -N` waits for nothing.
            .half_close(false);
        let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        h2.max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
            .max_header_list_size(u32::try_from(head).unwrap_or(u32::MAX));
        Self {
            h1,
            h2,
            stopping: std::sync::atomic::AtomicBool::new(false),
            stop: tokio::sync::Notify::new(),
            io_limits: IoLimits::new(limits),
            max_keep_alive_requests: if limits.keep_alive {
                limits.max_keep_alive_requests
            } else {
                1
            },
            open: parking_lot::Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            relieved: AtomicU64::new(0),
            handshakes: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    /// The connection for `io`: its first bytes read (HTTP/2's preface or not), then
    /// hyper's HTTP/1.x or HTTP/2 connection, with the deadlines and the request accounting,
    /// watched by `watcher` for a graceful shutdown; and the state that says whether it is
    /// idle.
    ///
    /// The first bytes are read here, not by hyper-util's `auto` builder: its 24-byte first
    /// read made hyper read the rest of the first head into a buffer it had to double (16 KiB
    /// kept for the connection's life instead of 8 KiB).
    fn connection<I, S, B>(
        self: &Arc<Self>,
        io: I,
        peer: SocketAddr,
        local: SocketAddr,
        service: S,
        watcher: Option<Watcher>,
    ) -> (
        impl Future<Output = Result<(), BoxError>> + Send + 'static,
        Arc<ConnState>,
    )
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let state = Arc::new(ConnState::default());
        let service = service.map_request(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(PeerAddr(peer));
            request.extensions_mut().insert(LocalAddr(local));
            request
        });
        let service = ConnService::new(service, Arc::clone(&state), self.max_keep_alive_requests);
        let mut io = ConnIo::new(io, Arc::clone(&state), self.io_limits);
        let front = Arc::clone(self);
        let shared = Arc::clone(&state);
        let connection = async move {
            // Held until the connection ends: the server's shutdown waits for it (at most
            // its drain time). The shutdown itself is told by `front.stopped()`.
            let _watching = watcher;
            let h2 = {
                let first = io.first_bytes();
                tokio::pin!(first);
                let read = tokio::select! {
                    biased;
                    h2 = &mut first => Some(h2?),
                    () = front.stopped() => None,
                };
                match read {
                    Some(h2) => h2,
                    // Stopped before a byte: nothing to answer.
                    None if !shared.began() => None,
                    // Part of a head (or of the preface) is in: read the rest (under the
                    // header timeout) and answer it, as a connection already known to be
                    // HTTP/1.1 is (its request is served, with `Connection: close`).
                    None => first.await?,
                }
            };
            let Some(h2) = h2 else {
                // Closed (or the server stopped) before a byte.
                return Ok(());
            };
            let service = TowerToHyperService::new(service);
            if h2 {
                // Boxed: an HTTP/1.x connection's task does not carry room for it.
                let connection = Box::pin(front.h2.serve_connection(TokioIo::new(io), service));
                Graceful::new(connection, &shared, |c| {
                    c.get_mut().as_mut().graceful_shutdown()
                })
                .await
            } else {
                // With upgrades: a `101 Switching Protocols` (a WebSocket tunnel through a
                // member) hands the connection to the tunnel once written.
                let connection = front
                    .h1
                    .serve_connection(TokioIo::new(io), service)
                    .with_upgrades();
                Graceful::new(connection, &shared, |c| c.graceful_shutdown()).await
            }
            .map_err(BoxError::from)
        };
        (connection, state)
    }

    /// Runs one connection until it ends, or until the relief finds it idle.
    ///
    /// The connection is made here, not handed in: an argument of an `async fn` keeps its
    /// room in the task beside the local it is moved to (the connection's ≈ 1.7 KB twice).
    async fn run<I, S, B>(
        self: Arc<Self>,
        io: I,
        peer: SocketAddr,
        local: SocketAddr,
        service: S,
        watcher: Option<Watcher>,
        permit: OwnedSemaphorePermit,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let _slot = permit;
        let (connection, state) = self.connection(io, peer, local, service, watcher);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.open.lock().insert(id, Arc::clone(&state));
        // Registered after the server stopped: `stop` did not see it.
        if self.stopping.load(Ordering::Acquire) {
            state.stop();
        }
        let _registered = Registered { front: &self, id };
        match (Relievable {
            connection,
            state: &state,
        })
        .await
        {
            Some(Ok(())) if state.upgraded() => {
                // The connection is a tunnel now: it keeps its slot under the connection
                // cap (and stays registered, never idle) until the tunnel closes it.
                state.io_closed().await;
            }
            Some(Ok(())) => {}
            Some(Err(error)) => {
                // A request hyper could not read (bad syntax, a head over the cap) is worth
                // an operator's look, as Apache logs AH00566-like lines; a client that went
                // away is not.
                let unreadable = error
                    .downcast_ref::<hyper::Error>()
                    .is_some_and(|e| e.is_parse() || e.is_parse_too_large());
                if unreadable {
                    tracing::info!(%peer, %error, "request not readable: answered 400 or 431");
                } else {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
            }
            None => {
                self.relieved.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, "idle connection closed to make room");
            }
        }
    }

    /// At the cap or out of descriptors: close the idle connections, and say so at most
    /// once per [`CAP_WARNING_INTERVAL`].
    fn relieve(&self, last_warning: &mut Option<tokio::time::Instant>, cap: usize, why: &str) {
        for state in self.open.lock().values() {
            if state.is_idle() {
                state.relieve();
            }
        }
        let now = tokio::time::Instant::now();
        for (since, close) in self.handshakes.lock().values() {
            if now.saturating_duration_since(*since) >= HANDSHAKE_GRACE {
                // A permit is kept if the task is not waiting yet.
                close.notify_one();
            }
        }
        let now = tokio::time::Instant::now();
        if last_warning.map_or(true, |last| {
            now.duration_since(last) >= CAP_WARNING_INTERVAL
        }) {
            *last_warning = Some(now);
            let relieved = self.relieved.swap(0, Ordering::Relaxed);
            tracing::warn!(
                max_connections = cap,
                idle_closed_since_last_warning = relieved,
                "{why}: closing idle client connections; new clients wait in the listen backlog"
            );
        }
    }
}

impl Front {
    /// Tells the open connections that the server stops: those still waiting for their
    /// first bytes close, the others end gracefully.
    fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.stop.notify_waiters();
        for state in self.open.lock().values() {
            state.stop();
        }
    }

    /// Completes once [`stop`](Self::stop) was called.
    async fn stopped(&self) {
        let notified = self.stop.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.stopping.load(Ordering::Acquire) {
            return;
        }
        notified.await;
    }

    /// Registers a TLS handshake in progress for the relief; it is taken out when the
    /// returned guard drops.
    fn handshaking(self: &Arc<Self>, peer: SocketAddr) -> Handshaking {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let close = Arc::new(tokio::sync::Notify::new());
        self.handshakes
            .lock()
            .insert(id, (tokio::time::Instant::now(), Arc::clone(&close)));
        tracing::trace!(%peer, "TLS handshake begins");
        Handshaking {
            front: Arc::clone(self),
            id,
            close,
        }
    }
}

/// A TLS handshake registered in [`Front::handshakes`]; see [`Front::handshaking`].
struct Handshaking {
    front: Arc<Front>,
    id: u64,
    close: Arc<tokio::sync::Notify>,
}

impl Handshaking {
    /// Completes when the relief closes the handshake.
    async fn notified(&self) {
        self.close.notified().await;
    }
}

impl Drop for Handshaking {
    fn drop(&mut self) {
        self.front.handshakes.lock().remove(&self.id);
    }
}

/// Takes a connection out of [`Front::open`] when its task ends.
struct Registered<'a> {
    front: &'a Front,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.front.open.lock().remove(&self.id);
    }
}

pin_project_lite::pin_project! {
    /// A connection that ends early (`None`) when the relief finds it idle.
    struct Relievable<'a, C> {
        #[pin]
        connection: C,
        state: &'a ConnState,
    }
}

impl<C: Future> Future for Relievable<'_, C> {
    type Output = Option<C::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.connection.poll(cx) {
            return Poll::Ready(Some(output));
        }
        if this.state.relieved(cx) {
            return Poll::Ready(None);
        }
        Poll::Pending
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
