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
use tokio::sync::{mpsc, oneshot, watch};
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

/// How often [`TestBackend::restart`] (or [`TestBackend::bring_up`]) tries to bind the old
/// port of a backend that gave it back with [`TestBackend::stop`] before giving up, and how
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
    /// Never answer: the request is read (and counted), then nothing is written and the
    /// connection stays open until the client closes it or the backend stops. For client
    /// timeouts.
    Hang,
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
    /// `true` while responses are held ([`TestBackend::hold_responses`]).
    hold: watch::Sender<bool>,
    /// How many requests wait for [`TestBackend::release_responses`] right now.
    held: AtomicUsize,
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
/// connection. Counters and settings survive [`take_down`](Self::take_down),
/// [`stop`](Self::stop) and their way back up. Dropping the backend stops its server task,
/// closes every connection it holds and gives its port back.
///
/// # Down and up again
///
/// [`take_down`](Self::take_down) closes the listener and every connection but keeps the
/// port: connecting is refused (as by a stopped server), and no other socket can take the
/// port meanwhile, so [`bring_up`](Self::bring_up) serves on it again without a race. Use
/// this pair whenever the backend comes back. [`stop`](Self::stop) gives the port back; a
/// later [`restart`](Self::restart) must win it again against every other socket that binds
/// a random port meanwhile (other tests in the same process do), so keep `stop` for a backend
/// that stays down.
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
    /// While taken down: a bound socket that does not listen, keeping the port (connects to
    /// it are refused).
    held_port: Mutex<Option<TcpSocket>>,
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
            hold: watch::Sender::new(false),
            held: AtomicUsize::new(0),
        });
        let running = spawn_server(listener, Arc::clone(&shared));
        tracing::debug!(name = %shared.name, %addr, "test backend started");
        Ok(TestBackend {
            shared,
            addr,
            running: Mutex::new(Some(running)),
            held_port: Mutex::new(None),
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

    /// The address the backend listens on (the same across [`bring_up`](Self::bring_up) and
    /// [`restart`](Self::restart)).
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

    /// Holds every request from now on: it is read and recorded (counted in
    /// [`hits`](Self::hits)), then waits, before the delay and the mode, until
    /// [`release_responses`](Self::release_responses). For tests that need requests in flight
    /// at the same time whatever the machine's speed.
    pub fn hold_responses(&self) {
        self.shared.hold.send_replace(true);
    }

    /// Lets every held request go on, and the next ones through without waiting.
    pub fn release_responses(&self) {
        self.shared.hold.send_replace(false);
    }

    /// How many requests are held right now (see [`hold_responses`](Self::hold_responses)).
    #[must_use]
    pub fn held_responses(&self) -> usize {
        self.shared.held.load(Ordering::SeqCst)
    }

    /// How many TCP connections to this backend are open right now.
    #[must_use]
    pub fn open_connections(&self) -> usize {
        self.shared.open_connections.load(Ordering::SeqCst)
    }

    /// Whether the backend is accepting connections (started, and neither stopped nor taken
    /// down).
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.running.lock().is_some()
    }

    /// Takes the backend down without giving its port back: closes the listener and every
    /// open connection and waits until they are closed. Afterwards connecting to
    /// [`addr`](Self::addr) is refused, as after [`stop`](Self::stop), but the port stays
    /// bound (by a socket that does not listen) until [`bring_up`](Self::bring_up), so no
    /// other socket can take it meanwhile. Does nothing if the backend is down or stopped.
    ///
    /// On a platform without `SO_REUSEPORT` this is [`stop`](Self::stop), port given back.
    ///
    /// # Errors
    ///
    /// If the port cannot be held; the backend then still runs.
    pub async fn take_down(&self) -> io::Result<()> {
        if !self.is_running() {
            return Ok(());
        }
        let SocketAddr::V4(addr) = self.addr else {
            return Err(io::Error::other("invariant: test backends bind IPv4"));
        };
        // Bound while the listener still has the port: there is no moment without an owner.
        let held = hold_port(addr)?;
        *self.held_port.lock() = held;
        self.shut().await;
        tracing::debug!(name = %self.shared.name, addr = %self.addr, "test backend taken down");
        Ok(())
    }

    /// Serves again on the same address, with the same behaviour and counters, after
    /// [`take_down`](Self::take_down) (the port was kept: binding it cannot fail for another
    /// socket having taken it) or [`stop`](Self::stop) (the port was given back: see
    /// [`restart`](Self::restart)). Does nothing if the backend runs.
    ///
    /// # Errors
    ///
    /// If the port cannot be bound again.
    pub async fn bring_up(&self) -> io::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let SocketAddr::V4(addr) = self.addr else {
            return Err(io::Error::other("invariant: test backends bind IPv4"));
        };
        let held = self.held_port.lock().take();
        let listener = if held.is_some() {
            // The held socket shares the port with a listener that sets `SO_REUSEPORT` too.
            bind(addr)?
        } else {
            rebind(addr).await?
        };
        // The listener has the port now.
        drop(held);
        let running = spawn_server(listener, Arc::clone(&self.shared));
        if let Some(old) = self.running.lock().replace(running) {
            // Only reachable if two calls raced: keep the newest server.
            old.task.abort();
        }
        tracing::debug!(name = %self.shared.name, %addr, "test backend up again");
        Ok(())
    }

    /// Closes the listener and every open connection, waits until they are closed, and gives
    /// the port back. Afterwards connecting to [`addr`](Self::addr) is refused. Does nothing
    /// if stopped (but gives back a port kept by [`take_down`](Self::take_down)).
    ///
    /// For a backend that comes back later, prefer [`take_down`](Self::take_down): see
    /// [`restart`](Self::restart).
    pub async fn stop(&self) {
        self.shut().await;
        drop(self.held_port.lock().take());
        tracing::debug!(name = %self.shared.name, addr = %self.addr, "test backend stopped");
    }

    /// Brings the backend down and up again on the same address, with the same behaviour and
    /// counters: a running backend is [taken down](Self::take_down), keeping its port, then
    /// [brought up](Self::bring_up); one taken down is brought up.
    ///
    /// After [`stop`](Self::stop) the port was given back, and this binds it again, retrying
    /// for about a second: that fails if another socket took the port meanwhile, which any
    /// test binding `127.0.0.1:0` or opening a connection in the same process may do. Use
    /// [`take_down`](Self::take_down) and [`bring_up`](Self::bring_up) instead of `stop` and
    /// `restart` for a backend that comes back.
    ///
    /// # Errors
    ///
    /// If the port cannot be bound again, e.g. because another socket took it meanwhile.
    pub async fn restart(&self) -> io::Result<()> {
        if let Err(e) = self.take_down().await {
            tracing::debug!(name = %self.shared.name, error = %e, "cannot hold the port; stopping");
            self.shut().await;
        }
        self.bring_up().await
    }

    /// Stops the server task: closes the listener and every connection.
    async fn shut(&self) {
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
    }
}

impl fmt::Debug for TestBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestBackend")
            .field("name", &self.shared.name)
            .field("addr", &self.addr)
            .field("running", &self.is_running())
            .field("port_held", &self.held_port.lock().is_some())
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
/// old connections linger in `TIME_WAIT`, and `SO_REUSEPORT` where there is one, so that
/// [`hold_port`] can share the port with it.
fn bind(addr: SocketAddrV4) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    set_reuseport(&socket)?;
    socket.bind(addr.into())?;
    socket.listen(BACKLOG)
}

/// [`bind`] of a port that was given back, retrying for about a second while it is in use.
async fn rebind(addr: SocketAddrV4) -> io::Result<TcpListener> {
    let mut attempt = 1;
    loop {
        match bind_exclusive(addr) {
            Ok(listener) => return Ok(listener),
            Err(e) if attempt < REBIND_ATTEMPTS => {
                tracing::debug!(%addr, attempt, error = %e, "rebinding test backend");
                attempt += 1;
                tokio::time::sleep(REBIND_PAUSE).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// [`bind`], failing while any other socket has the port: first binds it without
/// `SO_REUSEPORT`. Without that check, the listener of another backend that took the port
/// meanwhile (with `SO_REUSEPORT`, as [`bind`] sets it) would share it with this one, and the
/// kernel would spread the connections over both.
fn bind_exclusive(addr: SocketAddrV4) -> io::Result<TcpListener> {
    let probe = TcpSocket::new_v4()?;
    probe.set_reuseaddr(true)?;
    probe.bind(addr.into())?;
    drop(probe);
    bind(addr)
}

/// A socket bound to the port of a running listener on `addr` (whose `SO_REUSEPORT` it
/// shares) that never listens: once the listener closes, the port stays taken (only a socket
/// with `SO_REUSEPORT` of the same user may bind it, as [`bind`] does) while connects to it
/// are refused, no listener being there. `None` where there is no `SO_REUSEPORT`.
fn hold_port(addr: SocketAddrV4) -> io::Result<Option<TcpSocket>> {
    let socket = TcpSocket::new_v4()?;
    if !set_reuseport(&socket)? {
        return Ok(None);
    }
    socket.bind(addr.into())?;
    Ok(Some(socket))
}

/// Sets `SO_REUSEPORT`; whether the platform has it.
#[cfg(all(
    unix,
    not(any(
        target_os = "solaris",
        target_os = "illumos",
        target_os = "cygwin",
        target_os = "nuttx"
    ))
))]
fn set_reuseport(socket: &TcpSocket) -> io::Result<bool> {
    socket.set_reuseport(true)?;
    Ok(true)
}

/// Sets `SO_REUSEPORT`; whether the platform has it.
#[cfg(not(all(
    unix,
    not(any(
        target_os = "solaris",
        target_os = "illumos",
        target_os = "cygwin",
        target_os = "nuttx"
    ))
)))]
fn set_reuseport(_socket: &TcpSocket) -> io::Result<bool> {
    Ok(false)
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
        // `Hang` never gets here: its request future stays pending.
        Mode::Normal | Mode::CloseWithoutResponse | Mode::Hang => {}
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

    wait_while_held(&shared).await;

    if !behaviour.delay.is_zero() {
        tokio::time::sleep(behaviour.delay).await;
    }

    if behaviour.mode == Mode::Hang {
        // Read, never answered; the connection stays open until the client or a stop ends it.
        return std::future::pending().await;
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

/// Waits while responses are held ([`TestBackend::hold_responses`]), counted in `held`.
async fn wait_while_held(shared: &Shared) {
    let mut hold = shared.hold.subscribe();
    if !*hold.borrow_and_update() {
        return;
    }
    let _held = HeldGuard::new(shared);
    // An error means the sender is gone, which it is not while `shared` lives.
    let _ = hold.wait_for(|held| !held).await;
}

/// Counts a held request for as long as it waits (also if its connection is closed).
struct HeldGuard<'a>(&'a Shared);

impl<'a> HeldGuard<'a> {
    fn new(shared: &'a Shared) -> Self {
        shared.held.fetch_add(1, Ordering::SeqCst);
        Self(shared)
    }
}

impl Drop for HeldGuard<'_> {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::SeqCst);
    }
}

#[track_caller]
fn status_code(status: u16) -> StatusCode {
    match StatusCode::from_u16(status) {
        Ok(status) => status,
        Err(e) => panic!("invalid test backend status {status}: {e}"),
    }
}
