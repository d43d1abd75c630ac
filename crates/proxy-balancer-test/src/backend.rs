//! The programmable loopback backend.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};

use crate::shared_stream::SharedStream;

/// Header naming the backend that answered.
const BACKEND_HEADER: HeaderName = HeaderName::from_static("x-backend");

/// The path answered with the separately programmable health status and body.
const HEALTH_PATH: &str = "/health";

/// What the backend writes for [`Mode::Garbage`]: a line no HTTP/1.x parser accepts as a
/// status line, ended like a header block so a client does not wait for more.
const GARBAGE: &[u8] = b"NOT HTTP\r\n\r\n";

/// How many received requests [`TestBackend::requests`] keeps: enough for any assertion,
/// small enough that a benchmark sending millions of requests does not grow without bound.
const MAX_RECORDED: usize = 4096;

/// Listen backlog: a burst of concurrent test connections must not be refused.
const BACKLOG: u32 = 1024;

/// How often [`TestBackend::restart`] tries to bind the old port before giving up, and how
/// long it waits between tries: together about one second, long enough for the kernel to
/// release a just-closed listener, short enough to fail a test quickly.
const REBIND_ATTEMPTS: u32 = 50;
const REBIND_PAUSE: Duration = Duration::from_millis(20);

/// How long [`TestBackend::stop`] waits for the server task to close everything before it
/// aborts it: closing loopback sockets takes microseconds, so this only bounds a bug.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How a [`TestBackend`] treats a request, after it has read it completely.
///
/// Set with [`TestBackend::set_mode`]. The mode (like every other setting) is read when the
/// request head arrives; the delay of [`TestBackend::set_delay`] applies in every mode,
/// before the backend answers or fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Mode {
    /// Answer normally (status, headers, body as programmed). Keeps the connection alive.
    #[default]
    Normal,
    /// Close the TCP connection (FIN) without writing a single byte.
    CloseWithoutResponse,
    /// Reset the TCP connection (`SO_LINGER` 0, then close: the peer gets an RST).
    Reset,
    /// Write bytes that are not HTTP (`"NOT HTTP\r\n\r\n"`), then close the connection.
    Garbage,
}

/// One request a [`TestBackend`] received, as recorded for assertions.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// The request method.
    pub method: Method,
    /// The request target's path and query, e.g. `/a/b?x=1`.
    pub path_and_query: String,
    /// The request headers as received (including `Host` and any `X-Forwarded-*`).
    pub headers: HeaderMap,
    /// The full request body.
    pub body: Bytes,
    /// The address of the peer that sent it (for a proxied request: the proxy).
    pub peer: SocketAddr,
}

impl RecordedRequest {
    /// The value of header `name` if it is present and valid UTF-8 (the first one if repeated).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The path without the query.
    #[must_use]
    pub fn path(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map_or(self.path_and_query.as_str(), |(path, _)| path)
    }
}

/// What the response body is made of.
#[derive(Debug, Clone)]
enum BodyKind {
    /// The backend's name.
    Name,
    /// That many bytes of `b'x'`.
    Size(usize),
    /// These exact bytes.
    Fixed(Bytes),
}

/// Everything programmable, read once per request.
#[derive(Debug, Clone)]
struct Behaviour {
    status: StatusCode,
    delay: Duration,
    body: BodyKind,
    mode: Mode,
    headers: HeaderMap,
    health_status: StatusCode,
    health_body: Bytes,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            status: StatusCode::OK,
            delay: Duration::ZERO,
            body: BodyKind::Name,
            mode: Mode::Normal,
            headers: HeaderMap::new(),
            health_status: StatusCode::OK,
            health_body: Bytes::from_static(b"OK"),
        }
    }
}

/// State shared by the handle, the accept task and the connection tasks; lives across
/// `stop`/`restart`.
#[derive(Debug)]
struct Shared {
    name: String,
    behaviour: Mutex<Behaviour>,
    hits: AtomicU64,
    health_hits: AtomicU64,
    open_connections: AtomicUsize,
    requests: Mutex<VecDeque<RecordedRequest>>,
}

/// A running server task and the means to stop it.
#[derive(Debug)]
struct Running {
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// A real hyper HTTP/1.1 backend on `127.0.0.1`, programmable while it runs.
///
/// By default it answers every request with status `200`, header `X-Backend: <name>` and body
/// `<name>`; path `/health` (any method, any query) answers the separately programmable health
/// status and body (default `200`, `OK`). Connections are kept alive.
///
/// All setters take `&self` and apply to the next request head that arrives, on any
/// connection. Counters and settings survive [`stop`](Self::stop) and
/// [`restart`](Self::restart). Dropping the backend stops its server task and closes every
/// connection it holds.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
///
/// use proxy_balancer_test::{TestBackend, TestClient};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), proxy_balancer_test::BoxError> {
/// let slow = TestBackend::builder("slow")
///     .status(503)
///     .delay(Duration::from_millis(50))
///     .start()
///     .await?;
/// let response = TestClient::new().get(&format!("{}/x?y=1", slow.url())).await?;
/// assert_eq!(response.status, 503);
/// assert_eq!(slow.requests()[0].path_and_query, "/x?y=1");
/// # Ok(())
/// # }
/// ```
pub struct TestBackend {
    shared: Arc<Shared>,
    addr: SocketAddr,
    running: Mutex<Option<Running>>,
}

/// Builds a [`TestBackend`] with non-default behaviour from the start.
///
/// Every setting can also be changed later through the backend's setters.
#[derive(Debug)]
#[must_use]
pub struct TestBackendBuilder {
    name: String,
    behaviour: Behaviour,
}

// ===== impl TestBackendBuilder =====

impl TestBackendBuilder {
    /// The response status (default `200`). See [`TestBackend::set_status`].
    ///
    /// # Panics
    ///
    /// If `status` is not a valid HTTP status code (100 to 999).
    #[track_caller]
    pub fn status(mut self, status: u16) -> Self {
        self.behaviour.status = status_code(status);
        self
    }

    /// The delay before the response head (default none). See [`TestBackend::set_delay`].
    pub const fn delay(mut self, delay: Duration) -> Self {
        self.behaviour.delay = delay;
        self
    }

    /// A body of `size` bytes instead of the name. See [`TestBackend::set_body_size`].
    pub fn body_size(mut self, size: usize) -> Self {
        self.behaviour.body = BodyKind::Size(size);
        self
    }

    /// This exact body instead of the name. See [`TestBackend::set_body`].
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.behaviour.body = BodyKind::Fixed(body.into());
        self
    }

    /// The failure mode (default [`Mode::Normal`]). See [`TestBackend::set_mode`].
    pub const fn mode(mut self, mode: Mode) -> Self {
        self.behaviour.mode = mode;
        self
    }

    /// An extra response header. See [`TestBackend::set_header`].
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.behaviour.headers.insert(name, value);
        self
    }

    /// The status of `/health` (default `200`). See [`TestBackend::set_health_status`].
    ///
    /// # Panics
    ///
    /// If `status` is not a valid HTTP status code (100 to 999).
    #[track_caller]
    pub fn health_status(mut self, status: u16) -> Self {
        self.behaviour.health_status = status_code(status);
        self
    }

    /// The body of `/health` (default `OK`). See [`TestBackend::set_health_body`].
    pub fn health_body(mut self, body: &str) -> Self {
        self.behaviour.health_body = Bytes::copy_from_slice(body.as_bytes());
        self
    }

    /// Binds `127.0.0.1:0` and starts serving.
    ///
    /// # Errors
    ///
    /// If the listener cannot be created or bound.
    pub async fn start(self) -> io::Result<TestBackend> {
        let listener = bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            name: self.name,
            behaviour: Mutex::new(self.behaviour),
            hits: AtomicU64::new(0),
            health_hits: AtomicU64::new(0),
            open_connections: AtomicUsize::new(0),
            requests: Mutex::new(VecDeque::new()),
        });
        let running = spawn_server(listener, Arc::clone(&shared));
        tracing::debug!(name = %shared.name, %addr, "test backend started");
        Ok(TestBackend {
            shared,
            addr,
            running: Mutex::new(Some(running)),
        })
    }
}

// ===== impl TestBackend =====

impl TestBackend {
    /// Starts a backend named `name` with the default behaviour on `127.0.0.1:0`.
    ///
    /// # Errors
    ///
    /// If the listener cannot be created or bound.
    pub async fn start(name: impl Into<String>) -> io::Result<Self> {
        Self::builder(name).start().await
    }

    /// A builder for a backend named `name` that starts with non-default behaviour.
    pub fn builder(name: impl Into<String>) -> TestBackendBuilder {
        TestBackendBuilder {
            name: name.into(),
            behaviour: Behaviour::default(),
        }
    }

    /// The name given at start, sent in `X-Backend` and as the default body.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The address the backend listens on (the same across [`restart`](Self::restart)).
    #[must_use]
    pub const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sets the status of every response but `/health`'s.
    ///
    /// # Panics
    ///
    /// If `status` is not a valid HTTP status code (100 to 999).
    #[track_caller]
    pub fn set_status(&self, status: u16) {
        let status = status_code(status);
        self.shared.behaviour.lock().status = status;
    }

    /// Waits this long after reading a request before writing the response head (or, in the
    /// failure modes, before failing). Applies to `/health` too.
    pub fn set_delay(&self, delay: Duration) {
        self.shared.behaviour.lock().delay = delay;
    }

    /// Answers with a body of `size` bytes (all `b'x'`) instead of the name.
    pub fn set_body_size(&self, size: usize) {
        self.shared.behaviour.lock().body = BodyKind::Size(size);
    }

    /// Answers with exactly `body` instead of the name.
    pub fn set_body(&self, body: impl Into<Bytes>) {
        self.shared.behaviour.lock().body = BodyKind::Fixed(body.into());
    }

    /// Sets how requests are treated: answered, or failed in one of the ways of [`Mode`].
    /// Applies to `/health` too.
    pub fn set_mode(&self, mode: Mode) {
        self.shared.behaviour.lock().mode = mode;
    }

    /// The current [`Mode`].
    #[must_use]
    pub fn mode(&self) -> Mode {
        self.shared.behaviour.lock().mode
    }

    /// Adds (or replaces) a header sent with every normal response, e.g. a `Set-Cookie`.
    pub fn set_header(&self, name: HeaderName, value: HeaderValue) {
        self.shared.behaviour.lock().headers.insert(name, value);
    }

    /// Removes every header added by [`set_header`](Self::set_header).
    pub fn clear_headers(&self) {
        self.shared.behaviour.lock().headers.clear();
    }

    /// Sets the status of `/health` responses.
    ///
    /// # Panics
    ///
    /// If `status` is not a valid HTTP status code (100 to 999).
    #[track_caller]
    pub fn set_health_status(&self, status: u16) {
        let status = status_code(status);
        self.shared.behaviour.lock().health_status = status;
    }

    /// Sets the body of `/health` responses.
    pub fn set_health_body(&self, body: &str) {
        self.shared.behaviour.lock().health_body = Bytes::copy_from_slice(body.as_bytes());
    }

    /// How many requests were received (every path and mode, `/health` included), since the
    /// start or the last [`reset_counters`](Self::reset_counters).
    #[must_use]
    pub fn hits(&self) -> u64 {
        self.shared.hits.load(Ordering::SeqCst)
    }

    /// How many of the [`hits`](Self::hits) were for `/health`.
    #[must_use]
    pub fn health_hits(&self) -> u64 {
        self.shared.health_hits.load(Ordering::SeqCst)
    }

    /// The requests received, oldest first (the last 4096 at most).
    #[must_use]
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().iter().cloned().collect()
    }

    /// The most recent request received.
    #[must_use]
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.shared.requests.lock().back().cloned()
    }

    /// Zeroes [`hits`](Self::hits) and [`health_hits`](Self::health_hits) and forgets the
    /// recorded requests. The behaviour settings are kept.
    pub fn reset_counters(&self) {
        self.shared.hits.store(0, Ordering::SeqCst);
        self.shared.health_hits.store(0, Ordering::SeqCst);
        self.shared.requests.lock().clear();
    }

    /// How many TCP connections to this backend are open right now.
    #[must_use]
    pub fn open_connections(&self) -> usize {
        self.shared.open_connections.load(Ordering::SeqCst)
    }

    /// Whether the backend is accepting connections (started and not stopped).
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.running.lock().is_some()
    }

    /// Closes the listener and every open connection, and waits until they are closed.
    /// Afterwards connecting to [`addr`](Self::addr) is refused. Does nothing if stopped.
    pub async fn stop(&self) {
        let running = self.running.lock().take();
        let Some(Running { shutdown, mut task }) = running else {
            return;
        };
        // An error means the task already ended.
        let _ = shutdown.send(());
        if tokio::time::timeout(STOP_TIMEOUT, &mut task).await.is_err() {
            tracing::warn!(name = %self.shared.name, "test backend did not stop in time; aborting");
            task.abort();
            let _ = tokio::time::timeout(STOP_TIMEOUT, task).await;
        }
        tracing::debug!(name = %self.shared.name, addr = %self.addr, "test backend stopped");
    }

    /// Stops the backend if it runs, then binds the same address again (retrying for about a
    /// second) and serves with the same behaviour and counters.
    ///
    /// # Errors
    ///
    /// If the port cannot be bound again, e.g. because another socket took it meanwhile.
    pub async fn restart(&self) -> io::Result<()> {
        self.stop().await;
        let SocketAddr::V4(addr) = self.addr else {
            return Err(io::Error::other("invariant: test backends bind IPv4"));
        };
        let mut attempt = 1;
        let listener = loop {
            match bind(addr) {
                Ok(listener) => break listener,
                Err(e) if attempt < REBIND_ATTEMPTS => {
                    tracing::debug!(%addr, attempt, error = %e, "rebinding test backend");
                    attempt += 1;
                    tokio::time::sleep(REBIND_PAUSE).await;
                }
                Err(e) => return Err(e),
            }
        };
        let running = spawn_server(listener, Arc::clone(&self.shared));
        if let Some(old) = self.running.lock().replace(running) {
            // Only reachable if two restarts raced: keep the newest server.
            old.task.abort();
        }
        tracing::debug!(name = %self.shared.name, %addr, "test backend restarted");
        Ok(())
    }
}

impl fmt::Debug for TestBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestBackend")
            .field("name", &self.shared.name)
            .field("addr", &self.addr)
            .field("running", &self.is_running())
            .field("hits", &self.hits())
            .field("open_connections", &self.open_connections())
            .finish_non_exhaustive()
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        if let Some(Running { shutdown, task }) = self.running.get_mut().take() {
            drop(shutdown);
            // Aborting the accept task drops its `JoinSet`, which aborts every connection.
            task.abort();
        }
    }
}

// ===== server =====

/// Creates a listener on `addr` with `SO_REUSEADDR`, so a restart can rebind the port while
/// old connections linger in `TIME_WAIT`.
fn bind(addr: SocketAddrV4) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr.into())?;
    socket.listen(BACKLOG)
}

fn spawn_server(listener: TcpListener, shared: Arc<Shared>) -> Running {
    let (shutdown, shutdown_rx) = oneshot::channel();
    let task = tokio::spawn(accept_loop(listener, shared, shutdown_rx));
    Running { shutdown, task }
}

/// Accepts connections until told to stop (or the handle is gone), then closes the listener
/// and every connection.
async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            // A message or a dropped sender: both mean stop.
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let guard = ConnectionGuard::new(Arc::clone(&shared));
                    connections.spawn(serve_connection(stream, peer, Arc::clone(&shared), guard));
                }
                Err(e) => {
                    // E.g. too many open files: back off instead of spinning.
                    tracing::warn!(name = %shared.name, error = %e, "test backend accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// Counts an open connection for as long as it lives.
struct ConnectionGuard(Arc<Shared>);

impl ConnectionGuard {
    fn new(shared: Arc<Shared>) -> Self {
        shared.open_connections.fetch_add(1, Ordering::SeqCst);
        Self(shared)
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves one connection with hyper until it ends or a request asks for a failure mode, then
/// carries out that failure on the raw socket.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    _guard: ConnectionGuard,
) {
    let stream = Arc::new(stream);
    // Capacity 1: the first failing request ends the connection.
    let (fail_tx, mut fail_rx) = mpsc::channel::<Mode>(1);
    let service =
        service_fn(move |request| handle(Arc::clone(&shared), peer, fail_tx.clone(), request));
    let connection = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(SharedStream(Arc::clone(&stream))), service);

    let mode = tokio::select! {
        result = connection => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "test backend connection ended with an error");
            }
            return;
        }
        Some(mode) = fail_rx.recv() => mode,
    };

    // hyper's connection (and with it the other reference to the stream) is dropped now.
    let Ok(mut stream) = Arc::try_unwrap(stream) else {
        tracing::warn!(%peer, "invariant: the stream is not shared after the connection ends");
        return;
    };
    match mode {
        Mode::Normal | Mode::CloseWithoutResponse => {}
        Mode::Reset => {
            if let Err(e) = stream.set_zero_linger() {
                tracing::warn!(%peer, error = %e, "test backend could not set SO_LINGER 0");
            }
        }
        Mode::Garbage => {
            if let Err(e) = stream.write_all(GARBAGE).await {
                tracing::debug!(%peer, error = %e, "test backend could not write garbage");
            }
            let _ = stream.shutdown().await;
        }
    }
    tracing::debug!(%peer, ?mode, "test backend closing connection");
    drop(stream);
}

/// Answers one request, or asks the connection task to fail the connection.
async fn handle(
    shared: Arc<Shared>,
    peer: SocketAddr,
    fail: mpsc::Sender<Mode>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let behaviour = shared.behaviour.lock().clone();
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), ToString::to_string);
    let is_health = parts.uri.path() == HEALTH_PATH;

    shared.hits.fetch_add(1, Ordering::SeqCst);
    if is_health {
        shared.health_hits.fetch_add(1, Ordering::SeqCst);
    }
    {
        let mut requests = shared.requests.lock();
        if requests.len() == MAX_RECORDED {
            requests.pop_front();
        }
        requests.push_back(RecordedRequest {
            method: parts.method,
            path_and_query,
            headers: parts.headers,
            body,
            peer,
        });
    }

    if !behaviour.delay.is_zero() {
        tokio::time::sleep(behaviour.delay).await;
    }

    if behaviour.mode != Mode::Normal {
        // Errors only if the connection task is gone, which ends this future anyway.
        let _ = fail.send(behaviour.mode).await;
        // The connection task drops this future together with the connection.
        return std::future::pending().await;
    }

    let (status, body) = if is_health {
        (behaviour.health_status, behaviour.health_body)
    } else {
        let body = match behaviour.body {
            BodyKind::Name => Bytes::copy_from_slice(shared.name.as_bytes()),
            BodyKind::Size(size) => Bytes::from(vec![b'x'; size]),
            BodyKind::Fixed(bytes) => bytes,
        };
        (behaviour.status, body)
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.extend(behaviour.headers);
    if let Ok(name) = HeaderValue::from_str(&shared.name) {
        headers.insert(BACKEND_HEADER, name);
    }
    headers
        .entry(CONTENT_TYPE)
        .or_insert(HeaderValue::from_static("text/plain"));
    Ok(response)
}

#[track_caller]
fn status_code(status: u16) -> StatusCode {
    match StatusCode::from_u16(status) {
        Ok(status) => status,
        Err(e) => panic!("invalid test backend status {status}: {e}"),
    }
}
