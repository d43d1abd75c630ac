//! The built-in member client: a pool of HTTP/1.1 connections per member (hyper's
//! connection-level client), set up from the member's Apache parameters.
//!
//! The pool is a stack of idle connections behind a mutex that no request holds across an
//! `await`: a request takes the most recently used one, or opens a new connection, and the
//! connection goes back once its response has been read to the end ([`MemberBody`]). A request whose pooled connection turns out closed before the request went out
//! (the member closed an idle keep-alive connection) is sent again on a new connection;
//! once written, it is not (the balancer decides on retries).
//!
//! | Apache worker parameter | here |
//! | --- | --- |
//! | `connectiontimeout` (default `timeout`) | connect timeout; a connect that takes longer is a connect failure, so the request fails over |
//! | `timeout` | how long to wait for the response head, counted from the last piece of the request body the client sent (time spent waiting for a slow client is not the member's: the client's own limits bound it); past it the request fails with a 504 ([`ErrorKind::Timeout`](crate::ErrorKind::Timeout)) |
//! | `max` | the most idle connections kept (Apache's is a hard cap on connections; ours caps the pool) |
//! | `ttl` | how long an idle connection is kept |
//! | `disablereuse=On` | no connection is kept: a new one per request |
//! | `keepalive=On` | TCP keep-alive probes on member connections |
//!
//! `https` members need a TLS connector, which this client does not carry yet: their
//! requests fail with [`ErrorKind::Upstream`](crate::ErrorKind::Upstream).
//!
//! # Strict HTTP toward members
//!
//! What a member answers is checked as Apache's mod_proxy_http checks it:
//!
//! | the member's answer | here | Apache |
//! | --- | --- | --- |
//! | both `Transfer-Encoding` and `Content-Length` | framed by `Transfer-Encoding` (RFC 9112 §6.3): `Content-Length` is dropped, the connection closed after the response, a warning logged | same (AH01107) |
//! | `101 Switching Protocols` (the forwarded request never asks for an upgrade, and this client tunnels none) | 502 ([`ErrorKind::Upstream`](crate::ErrorKind::Upstream)), the connection closed, nothing relayed | 502, AH00898 `Unexpected Upgrade` |
//! | interim responses (`100 Continue` unasked, `102 Processing`, `103 Early Hints`) | skipped: the client gets the final response only | as with `SetEnv proxy-interim-response Suppress` |
//! | not HTTP: a bad status line, an invalid `Content-Length`, two different ones | 502 ([`ErrorKind::Upstream`](crate::ErrorKind::Upstream)), the error names the member | 502 |
//!
//! A request whose body fails on the client's side while it is sent (a
//! [`RequestBodyError`](crate::RequestBodyError) in the body's error chain: broken framing,
//! a client too slow or gone, a body over `LimitRequestBody`) fails with
//! [`ErrorKind::Client`](crate::ErrorKind::Client): answered with the client's status
//! (400, 408, 413), not retried on another member, the member not blamed, and that
//! member connection is not reused (Apache's AH10154).

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::uri::Scheme;
use http::HeaderValue;
use http::{header, Request, Response, StatusCode, Uri};
use http_body::Body;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use pin_project_lite::pin_project;
use proxy_balancer_core::Member;
use std::sync::Arc;
use tokio::net::TcpStream;
use tower_service::Service;

use crate::balancer::{MakeMember, ReplayBody};
use crate::error::{BoxError, Error};
use crate::proxy_pass::{join_uri, HopRules, PreserveHost};

/// Without a `timeout`, how long to wait for a member's answer: Apache's default
/// `ProxyTimeout` (the server `Timeout`, 60 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a pooled connection that finished its last response may take to be ready for
/// the next request before it is dropped for a new one.
const READY_WAIT: Duration = Duration::from_secs(1);
/// Interval of TCP keep-alive probes with `keepalive=On` (the kernel's default is hours).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);

/// Makes an [`HttpMember`] for each member, for a [`Balancer`](crate::Balancer) over HTTP
/// backends.
///
/// The member gets its own authority as `Host` (Apache's default, `ProxyPreserveHost Off`),
/// unless the request carries the [`PreserveHost`] extension that the forwarding layer
/// ([`ForwardLayer`](crate::proxy_pass::ForwardLayer)) puts there for
/// `ProxyPreserveHost On`: then its `Host` is kept.
pub struct MakeHttpMember<B> {
    /// Options for members by URL, and for the others.
    options: Arc<MemberOptions>,
    _body: PhantomData<fn(B)>,
}

/// The client options of a [`MakeHttpMember`]'s members: one default, and per member URL.
#[derive(Clone, Debug, Default)]
struct MemberOptions {
    default: ClientOptions,
    by_url: std::collections::HashMap<String, ClientOptions>,
}

/// Connection options of one member's client: Apache's worker parameters
/// `responsefieldsize`, `iobuffersize` and `receivebuffersize`. [`Default`]: no limit on a
/// header line, hyper's adaptive read buffer, the system's receive buffer.
///
/// ```
/// use proxy_balancer::client::{ClientOptions, MakeHttpMember};
///
/// let options = ClientOptions::new()
///     .with_response_field_size(Some(8192))
///     .with_io_buffer_size(Some(16384))
///     .with_receive_buffer_size(Some(65536));
/// let make = MakeHttpMember::<http_body_util::Empty<bytes::Bytes>>::new()
///     .with_default_options(options.clone())
///     .with_member_options("http://127.0.0.1:8001", options);
/// # drop(make);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientOptions {
    response_field_size: Option<usize>,
    io_buffer_size: Option<usize>,
    receive_buffer_size: Option<usize>,
}

impl ClientOptions {
    /// No limits (see the type's docs).
    #[must_use]
    pub const fn new() -> Self {
        Self {
            response_field_size: None,
            io_buffer_size: None,
            receive_buffer_size: None,
        }
    }

    /// A member's answer with a header line (`name: value`) of this many bytes or more is
    /// a 502 ([`ErrorKind::Upstream`](crate::ErrorKind::Upstream)), as Apache's AH10124.
    ///
    /// # Apache
    ///
    /// The worker's `responsefieldsize` (Apache's default 8192).
    #[must_use]
    pub const fn with_response_field_size(mut self, size: Option<usize>) -> Self {
        self.response_field_size = size;
        self
    }

    /// The largest piece of a member's body relayed at once: bigger reads are passed on
    /// in pieces of this size. `None` or 0: as read (hyper's adaptive buffer).
    ///
    /// # Apache
    ///
    /// The worker's `iobuffersize`, else `ProxyIOBufferSize` (Apache's default 8192).
    #[must_use]
    pub const fn with_io_buffer_size(mut self, size: Option<usize>) -> Self {
        self.io_buffer_size = size;
        self
    }

    /// `SO_RCVBUF` of the member connections, set before connecting. `None` or 0: the
    /// system's default.
    ///
    /// # Apache
    ///
    /// The worker's `receivebuffersize` (`ProxyReceiveBufferSize`).
    #[must_use]
    pub const fn with_receive_buffer_size(mut self, size: Option<usize>) -> Self {
        self.receive_buffer_size = size;
        self
    }

    /// `responsefieldsize`.
    #[must_use]
    pub const fn response_field_size(&self) -> Option<usize> {
        self.response_field_size
    }

    /// `iobuffersize`.
    #[must_use]
    pub const fn io_buffer_size(&self) -> Option<usize> {
        self.io_buffer_size
    }

    /// `receivebuffersize`.
    #[must_use]
    pub const fn receive_buffer_size(&self) -> Option<usize> {
        self.receive_buffer_size
    }
}

impl<B> MakeHttpMember<B> {
    /// The maker of [`HttpMember`]s, with default [`ClientOptions`].
    #[must_use]
    pub fn new() -> Self {
        Self {
            options: Arc::new(MemberOptions::default()),
            _body: PhantomData,
        }
    }

    /// The options of members without options of their own.
    #[must_use]
    pub fn with_default_options(mut self, options: ClientOptions) -> Self {
        Arc::make_mut(&mut self.options).default = options;
        self
    }

    /// The options of the member with this URL (as [`Member::url`] gives it).
    #[must_use]
    pub fn with_member_options(mut self, url: impl Into<String>, options: ClientOptions) -> Self {
        Arc::make_mut(&mut self.options)
            .by_url
            .insert(url.into(), options);
        self
    }

    /// The options a member gets.
    #[must_use]
    pub fn options_for(&self, url: &str) -> ClientOptions {
        self.options
            .by_url
            .get(url)
            .copied()
            .unwrap_or(self.options.default)
    }
}

impl<B> Default for MakeHttpMember<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B> Clone for MakeHttpMember<B> {
    fn clone(&self) -> Self {
        Self {
            options: Arc::clone(&self.options),
            _body: PhantomData,
        }
    }
}

impl<B> fmt::Debug for MakeHttpMember<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MakeHttpMember")
            .field("options", &self.options)
            .finish()
    }
}

impl<B> MakeMember for MakeHttpMember<B>
where
    B: Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Service = HttpMember<B>;

    fn make_member(&self, member: &Member) -> HttpMember<B> {
        HttpMember::with_options(member, self.options_for(member.url()))
    }
}

/// The pooled HTTP client of one member. See the [module docs](self).
pub struct HttpMember<B> {
    pool: Arc<Pool<ClockedBody<ReplayBody<B>>>>,
    /// Shared by the clones (the balancer clones the member's service per request).
    target: Arc<Target>,
}

/// Where and how a member's requests go.
#[derive(Debug)]
struct Target {
    scheme: Scheme,
    /// `Host` for the member: [`MemberUrl::authority`](crate::core::MemberUrl::authority).
    host: Option<HeaderValue>,
    base_path: String,
    timeout: Duration,
}

impl<B> Clone for HttpMember<B> {
    fn clone(&self) -> Self {
        Self {
            pool: Arc::clone(&self.pool),
            target: Arc::clone(&self.target),
        }
    }
}

impl<B> fmt::Debug for HttpMember<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpMember")
            .field("host", &self.target.host)
            .field("base_path", &self.target.base_path)
            .field("timeout", &self.target.timeout)
            .field("idle", &self.pool.idle.lock().len())
            .finish_non_exhaustive()
    }
}

impl<B> HttpMember<B>
where
    B: Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    /// The client for `member`, set up from its parameters.
    ///
    /// `Host` is the member's authority unless the request carries [`PreserveHost`] and a
    /// `Host` (see [`MakeHttpMember`]).
    #[must_use]
    pub fn new(member: &Member) -> Self {
        Self::with_options(member, ClientOptions::new())
    }

    /// The client for `member` with these connection options.
    #[must_use]
    pub fn with_options(member: &Member, options: ClientOptions) -> Self {
        let params = member.params();
        let url = &params.url;
        // The URL was checked when the member was made: its Host value is valid.
        let host_header = HeaderValue::from_str(url.authority()).ok();
        let max_idle = if params.disable_reuse {
            0
        } else {
            params.max.map_or(usize::MAX, |max| max as usize)
        };
        Self {
            pool: Arc::new(Pool {
                idle: Mutex::new(Vec::new()),
                max_idle,
                ttl: params.ttl,
                connect_timeout: params.connection_timeout.or(params.timeout),
                keepalive: params.keepalive,
                host: url.connect_host().to_owned(),
                port: url.port(),
                member: member.url().to_owned(),
                options,
            }),
            target: Arc::new(Target {
                scheme: if url.scheme() == "https" {
                    Scheme::HTTPS
                } else {
                    Scheme::HTTP
                },
                host: host_header,
                base_path: url.path().to_owned(),
                timeout: params.timeout.unwrap_or(DEFAULT_TIMEOUT),
            }),
        }
    }
}

/// A member's idle connections (each with its last response read to the end), most
/// recently used last.
struct Pool<B> {
    idle: Mutex<Vec<Pooled<B>>>,
    /// `max`; 0 with `disablereuse=On`.
    max_idle: usize,
    ttl: Option<Duration>,
    connect_timeout: Option<Duration>,
    keepalive: bool,
    host: String,
    port: u16,
    /// The member's URL, for logs and errors.
    member: String,
    options: ClientOptions,
}

struct Pooled<B> {
    sender: SendRequest<B>,
    since: tokio::time::Instant,
    /// Made to skip malformed header lines (`ProxyBadHeader Ignore`).
    lenient: bool,
}

impl<B> Pool<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// The most recently used idle connection: one that can take a request now if there is
    /// one (closed and expired ones are dropped on the way), else one whose last response
    /// was read to the end and whose connection is about to say it is ready again.
    fn checkout(&self, lenient: bool) -> Option<(SendRequest<B>, bool)> {
        let mut idle = self.idle.lock();
        let now = self.ttl.map(|_| tokio::time::Instant::now());
        let mut i = idle.len();
        while i > 0 {
            i -= 1;
            let entry = &idle[i];
            let expired = match (self.ttl, now) {
                (Some(ttl), Some(now)) => now.saturating_duration_since(entry.since) > ttl,
                _ => false,
            };
            if entry.sender.is_closed() || expired {
                drop(idle.swap_remove(i));
            } else if entry.lenient == lenient && entry.sender.is_ready() {
                return Some((idle.swap_remove(i).sender, true));
            }
        }
        let last = idle.iter().rposition(|entry| entry.lenient == lenient)?;
        Some((idle.remove(last).sender, false))
    }

    /// Keeps `sender` for the next requests (its response read to the end), unless the pool
    /// is full or the connection closed.
    fn checkin(&self, sender: SendRequest<B>, lenient: bool) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock();
        if idle.len() < self.max_idle {
            idle.push(Pooled {
                sender,
                since: tokio::time::Instant::now(),
                lenient,
            });
        }
    }

    /// A pooled connection ready for a request, if the pool has one. One whose connection
    /// has not said it is ready yet gets [`READY_WAIT`] to do so (it has finished its last
    /// response, so it takes microseconds unless the connection is going away).
    async fn pooled(&self, lenient: bool) -> Option<SendRequest<B>> {
        while let Some((mut sender, ready)) = self.checkout(lenient) {
            if ready {
                return Some(sender);
            }
            if let Ok(Ok(())) = tokio::time::timeout(READY_WAIT, sender.ready()).await {
                return Some(sender);
            }
        }
        None
    }

    /// A new connection to the member (bounded by `connectiontimeout`), its protocol task
    /// spawned.
    async fn connect(&self, lenient: bool) -> Result<SendRequest<B>, Error> {
        let receive_buffer = self.options.receive_buffer_size.filter(|&n| n > 0);
        let connecting = connect_stream(self.host.as_str(), self.port, receive_buffer);
        let stream = match self.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, connecting)
                .await
                .map_err(Error::connect)?,
            None => connecting.await,
        }
        .map_err(Error::connect)?;
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on a member connection");
        }
        if self.keepalive {
            let keepalive = socket2::TcpKeepalive::new().with_time(KEEPALIVE_INTERVAL);
            if let Err(error) = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive) {
                tracing::debug!(%error, "cannot set TCP keep-alive on a member connection");
            }
        }
        let (sender, connection) = hyper::client::conn::http1::Builder::new()
            // ProxyBadHeader Ignore: a header line that is no `name: value` is skipped.
            .ignore_invalid_headers_in_responses(lenient)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(Error::upstream)?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "member connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// Sends `request` on a pooled connection, or on a new one when none is idle or the
    /// pooled one was closed before the request went out. The connection comes back with
    /// the response, to be returned when its body has been read.
    async fn send(
        self: Arc<Self>,
        mut request: Request<B>,
        hop: Hop,
    ) -> Result<Response<MemberBody>, Error> {
        let lenient = hop.rules.as_ref().is_some_and(|r| r.ignore_bad_headers);
        if let Some(mut sender) = self.pooled(lenient).await {
            match sender.try_send_request(request).await {
                Ok(response) => return self.wrap(response, sender, &hop),
                Err(mut failed) => match failed.take_message() {
                    // Not written: the connection was gone; a new one below.
                    Some(unsent) => request = unsent,
                    None => return Err(Error::from_member(Box::new(failed.into_error()))),
                },
            }
        }
        // Boxed: the connect and handshake futures are large and rarely needed; keeping
        // them out of this future keeps every request's state small.
        let mut sender = Box::pin(self.connect(lenient)).await?;
        match sender.try_send_request(request).await {
            Ok(response) => self.wrap(response, sender, &hop),
            Err(failed) => Err(Error::from_member(Box::new(failed.into_error()))),
        }
    }

    /// The response with a body that returns the connection to the pool at its end; an
    /// error for a `101 Switching Protocols` or a header line over `responsefieldsize`; a
    /// response framed by both `Transfer-Encoding` and `Content-Length` loses the latter
    /// and its connection is closed at its end. `ProxyVia` and `ProxyErrorOverride` are
    /// applied here.
    fn wrap(
        self: &Arc<Self>,
        mut response: Response<Incoming>,
        sender: SendRequest<B>,
        hop: &Hop,
    ) -> Result<Response<MemberBody>, Error> {
        // An `Expect: 100-continue` answered without `100 Continue`: the body was never
        // sent, so the connection cannot take another request (Apache closes it too).
        let gate = hop.gate.as_ref().filter(|gate| !gate.opened());
        if let Some(gate) = gate {
            gate.refuse();
        }
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            // The forwarded request asked for no upgrade (the forwarding layer strips
            // `Upgrade`) and this client tunnels none: the connection now speaks something
            // else. Dropping `sender` closes it.
            tracing::error!(
                apache_id = "AH00898",
                member = %self.member,
                upgrade = ?response.headers().get(header::UPGRADE),
                "unexpected 101 Switching Protocols from the member"
            );
            return Err(Error::upstream(
                "unexpected 101 Switching Protocols: no upgrade was asked for",
            )
            .with_member(&self.member, Some("AH00898")));
        }
        if let Some(limit) = self.options.response_field_size.filter(|&n| n > 0) {
            // Apache reads each header line into a buffer of `responsefieldsize` bytes
            // (with its terminating NUL): a line of that length or more is refused.
            if let Some((name, _)) = response
                .headers()
                .iter()
                .find(|(name, value)| name.as_str().len() + 2 + value.len() >= limit)
            {
                tracing::warn!(
                    apache_id = "AH10124",
                    member = %self.member,
                    header = %name,
                    "header size is over the limit allowed by ResponseFieldSize ({limit} bytes)"
                );
                return Err(Error::upstream(format!(
                    "the member's {name} header line is over responsefieldsize ({limit} bytes)"
                ))
                .with_member(&self.member, Some("AH10124")));
            }
        }
        if let Some(rules) = &hop.rules {
            if let Some(error_override) = &rules.error_override {
                if error_override.overrides(response.status()) {
                    // ProxyErrorOverride: the member's answer is replaced by the proxy's own
                    // error page; its body is not read (the connection closes).
                    return Ok(own_error(response.status()));
                }
            }
            if let Some(via) = &rules.response_via {
                response.headers_mut().append(header::VIA, via.clone());
            }
        }
        let headers = response.headers_mut();
        // RFC 9112 §6.3: Transfer-Encoding frames the body (hyper decodes it so) and a
        // Content-Length beside it must go; the connection is not reused, as the member's
        // idea of where the message ends is in doubt (Apache's AH01107).
        let framing_ok = !(headers.contains_key(header::TRANSFER_ENCODING)
            && headers.remove(header::CONTENT_LENGTH).is_some());
        if !framing_ok {
            tracing::warn!(
                apache_id = "AH01107",
                member = %self.member,
                "the member answered with Transfer-Encoding and Content-Length: \
                 Content-Length dropped, connection closed after the response"
            );
        }
        let reuse = framing_ok && gate.is_none();
        let lenient = hop.rules.as_ref().is_some_and(|r| r.ignore_bad_headers);
        let piece = self.options.io_buffer_size.filter(|&n| n > 0);
        if response.body().is_end_stream() {
            if reuse {
                self.checkin(sender, lenient);
            }
            return Ok(response.map(|inner| MemberBody::member(inner, None, piece)));
        }
        let release: Release = if reuse {
            let pool = Arc::clone(self);
            Box::new(move || pool.checkin(sender, lenient))
        } else {
            // Kept to the body's end, then dropped: hyper closes the connection once its
            // last sender is gone and its response is read.
            Box::new(move || drop(sender))
        };
        Ok(response.map(|inner| MemberBody::member(inner, Some(release), piece)))
    }
}

/// Connects to `host:port`, with `SO_RCVBUF` set before the connection is made (so that
/// the window scaling the kernel offers follows it) when `receive_buffer` is given.
async fn connect_stream(
    host: &str,
    port: u16,
    receive_buffer: Option<usize>,
) -> std::io::Result<TcpStream> {
    let Some(size) = receive_buffer else {
        return TcpStream::connect((host, port)).await;
    };
    let size = u32::try_from(size).unwrap_or(u32::MAX);
    let mut last = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        if let Err(error) = socket.set_recv_buffer_size(size) {
            tracing::debug!(%error, "cannot set SO_RCVBUF on a member connection");
        }
        match socket.connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{host} resolves to no address"),
        )
    }))
}

/// The proxy's own answer for a status (`ProxyErrorOverride`): the one the proxy writes for
/// its own errors, `404 Not Found` in plain text.
fn own_error(status: StatusCode) -> Response<MemberBody> {
    let body = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("error")
    );
    let mut response = Response::new(MemberBody::own(bytes::Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// What one request carries for the answer: the forwarding layer's rules, and the gate of
/// an `Expect: 100-continue` body.
struct Hop {
    rules: Option<Arc<HopRules>>,
    gate: Option<Arc<ContinueGate>>,
}

/// Holds a request body back until the member's `100 Continue` (`Proxy100Continue On`):
/// the client's `100 Continue` goes out when its body is first read, so the client then
/// gets it when the member sent it, as through Apache.
#[derive(Default)]
struct ContinueGate {
    /// 0: waiting; 1: open (the member said 100); 2: refused (it answered without it).
    state: std::sync::atomic::AtomicU8,
    waker: atomic_waker_lite::Waker,
}

impl ContinueGate {
    fn open(&self) {
        let _ = self
            .state
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire);
        self.waker.wake();
    }

    fn refuse(&self) {
        let _ = self
            .state
            .compare_exchange(0, 2, Ordering::AcqRel, Ordering::Acquire);
        self.waker.wake();
    }

    fn opened(&self) -> bool {
        self.state.load(Ordering::Acquire) == 1
    }
}

/// A one-waker slot (a mutex: registration happens once per body, not per frame).
mod atomic_waker_lite {
    use parking_lot::Mutex;
    use std::task::Waker as TaskWaker;

    #[derive(Default)]
    pub(super) struct Waker(Mutex<Option<TaskWaker>>);

    impl Waker {
        pub(super) fn register(&self, waker: &TaskWaker) {
            *self.0.lock() = Some(waker.clone());
        }

        pub(super) fn wake(&self) {
            if let Some(waker) = self.0.lock().take() {
                waker.wake();
            }
        }
    }
}

/// Returns a connection to its pool.
type Release = Box<dyn FnOnce() + Send + Sync>;

/// The body of a member's answer through [`HttpMember`]: hyper's, which returns its
/// connection to the member's pool once read to the end (a body dropped before its end
/// closes the connection instead), passed on in pieces of at most `iobuffersize`; or the
/// proxy's own (`ProxyErrorOverride`).
pub struct MemberBody {
    kind: BodyKind,
}

enum BodyKind {
    Member {
        inner: Incoming,
        release: Option<Release>,
        /// `iobuffersize`: the largest piece passed on.
        piece: Option<usize>,
        /// The rest of a frame larger than `piece`.
        rest: bytes::Bytes,
    },
    Own(Option<bytes::Bytes>),
}

impl MemberBody {
    fn member(inner: Incoming, release: Option<Release>, piece: Option<usize>) -> Self {
        Self {
            kind: BodyKind::Member {
                inner,
                release,
                piece,
                rest: bytes::Bytes::new(),
            },
        }
    }

    fn own(body: bytes::Bytes) -> Self {
        Self {
            kind: BodyKind::Own(Some(body)),
        }
    }
}

impl fmt::Debug for MemberBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            BodyKind::Member { inner, release, .. } => f
                .debug_struct("MemberBody")
                .field("inner", inner)
                .field("pooled", &release.is_some())
                .finish(),
            BodyKind::Own(body) => f.debug_struct("MemberBody").field("own", body).finish(),
        }
    }
}

impl Body for MemberBody {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, hyper::Error>>> {
        // Every field is Unpin (hyper's `Incoming` is).
        let (inner, release, piece, rest) = match &mut self.get_mut().kind {
            BodyKind::Own(body) => {
                return Poll::Ready(body.take().map(|b| Ok(http_body::Frame::data(b))))
            }
            BodyKind::Member {
                inner,
                release,
                piece,
                rest,
            } => (inner, release, *piece, rest),
        };
        if let Some(size) = piece {
            if !rest.is_empty() {
                let take = size.min(rest.len());
                let out = rest.split_to(take);
                if rest.is_empty() && inner.is_end_stream() {
                    if let Some(release) = release.take() {
                        release();
                    }
                }
                return Poll::Ready(Some(Ok(http_body::Frame::data(out))));
            }
        }
        let mut inner = Pin::new(inner);
        let mut frame = ready!(inner.as_mut().poll_frame(cx));
        if let (Some(size), Some(Ok(f))) = (piece, &mut frame) {
            if let Some(data) = f.data_mut() {
                if data.len() > size {
                    *rest = data.split_off(size);
                }
            }
        }
        match &frame {
            Some(Ok(_)) if !inner.is_end_stream() || !rest.is_empty() => {}
            // The end (a server may stop polling once `is_end_stream` says so).
            Some(Ok(_)) | None => {
                if let Some(release) = release.take() {
                    release();
                }
            }
            // The connection cannot be reused.
            Some(Err(_)) => drop(release.take()),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Member { inner, rest, .. } => rest.is_empty() && inner.is_end_stream(),
            BodyKind::Own(body) => body.is_none(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match &self.kind {
            BodyKind::Member { inner, rest, .. } => {
                let hint = inner.size_hint();
                let extra = rest.len() as u64;
                let mut out = http_body::SizeHint::new();
                out.set_lower(hint.lower() + extra);
                if let Some(upper) = hint.upper() {
                    out.set_upper(upper + extra);
                }
                out
            }
            BodyKind::Own(body) => {
                http_body::SizeHint::with_exact(body.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

impl<B> HttpMember<B> {
    /// The request target on the member, in origin form: its path prefix, then `uri`'s path
    /// and query (`uri` itself when the member has no prefix and `uri` is in origin form).
    fn member_target(&self, uri: Uri) -> Result<Uri, BoxError> {
        if self.target.base_path.is_empty() && uri.scheme().is_none() && uri.authority().is_none() {
            return Ok(uri);
        }
        Ok(join_uri(
            "",
            &self.target.base_path,
            uri.path(),
            uri.query(),
        )?)
    }
}

/// The URI a request for `uri` goes to on `member`: the member's scheme and authority, its
/// path prefix, then `uri`'s path and query (`http://10.0.0.1:8080/app` and `/x?y` give
/// `http://10.0.0.1:8080/app/x?y`). For member services of your own.
///
/// # Errors
///
/// [`ErrorKind::Upstream`](crate::ErrorKind::Upstream) if the result is not a valid URI.
pub fn member_uri(member: &Member, uri: &Uri) -> Result<Uri, Error> {
    let url = &member.params().url;
    join_uri(url.origin(), url.path(), uri.path(), uri.query()).map_err(Error::upstream)
}

impl<B> Service<Request<ReplayBody<B>>> for HttpMember<B>
where
    B: Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<MemberBody>;
    type Error = Error;
    type Future = HttpMemberFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<ReplayBody<B>>) -> Self::Future {
        if self.target.scheme == Scheme::HTTPS {
            return HttpMemberFuture::failed(Error::upstream(
                "https members need a TLS connector, which the built-in client lacks",
            ));
        }
        // The member connection speaks HTTP/1.1, whatever the client spoke (as Apache's
        // mod_proxy_http sends): a body without a length from an HTTP/2 client goes
        // chunked, and an HTTP/1.0 client's request is not downgraded.
        *request.version_mut() = http::Version::HTTP_11;
        let uri = std::mem::take(request.uri_mut());
        match self.member_target(uri) {
            Ok(target) => *request.uri_mut() = target,
            Err(e) => return HttpMemberFuture::failed(Error::upstream(e)),
        }
        let Some(host) = &self.target.host else {
            return HttpMemberFuture::failed(Error::upstream(
                "the member URL has no valid authority",
            ));
        };
        // ProxyPreserveHost On, decided by the forwarding layer, keeps the client's Host.
        let preserve = request.extensions().get::<PreserveHost>().is_some()
            && request.headers().contains_key(header::HOST);
        if !preserve {
            request.headers_mut().insert(header::HOST, host.clone());
        }
        // Only a body still to come from the client needs the clock (most GETs have none).
        let has_body = !request.body().is_end_stream();
        let clock = has_body.then(|| Arc::new(BodyClock::new()));
        let rules = request.extensions().get::<Arc<HopRules>>().cloned();
        // Proxy100Continue On: the body waits for the member's `100 Continue`.
        let gate = (has_body && rules.as_ref().is_some_and(|r| r.expect_continue))
            .then(|| Arc::new(ContinueGate::default()));
        if let Some(gate) = &gate {
            let gate = Arc::clone(gate);
            hyper::ext::on_informational(&mut request, move |response| {
                if response.status() == StatusCode::CONTINUE {
                    gate.open();
                }
            });
        }
        let request = request.map(|inner| ClockedBody {
            inner,
            clock: clock.clone(),
            gate: gate.clone(),
            continue_wait: None,
        });
        let sending = Arc::clone(&self.pool).send(request, Hop { rules, gate });
        HttpMemberFuture {
            sending: Some(Box::pin(sending)),
            sleep: Some(tokio::time::sleep(self.target.timeout)),
            timeout: self.target.timeout,
            clock,
            failed: None,
        }
    }
}

/// The client's side of a request body on its way to a member, for the member's `timeout`:
/// whether the body waits for the client now, and when it last got something from it.
struct BodyClock {
    base: tokio::time::Instant,
    /// When the body last got a frame (or its end) from the client, in nanoseconds since
    /// `base`.
    last: AtomicU64,
    /// The body waits for the client: the member is not the one keeping the request.
    waiting: AtomicBool,
}

impl BodyClock {
    fn new() -> Self {
        Self {
            base: tokio::time::Instant::now(),
            last: AtomicU64::new(0),
            waiting: AtomicBool::new(false),
        }
    }

    /// The body got a frame or its end from the client at `now`.
    fn got(&self, now: tokio::time::Instant) {
        let nanos =
            u64::try_from(now.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX);
        // Before `waiting` is cleared: whoever sees it cleared sees this time.
        self.last.store(nanos, Ordering::Release);
        self.waiting.store(false, Ordering::Release);
    }

    /// Since when the member's time runs, as seen at `now`: `now` while the body waits for
    /// the client, else the last time the body got something from the client.
    fn member_time_since(&self, now: tokio::time::Instant) -> tokio::time::Instant {
        if self.waiting.load(Ordering::Acquire) {
            return now;
        }
        self.base + Duration::from_nanos(self.last.load(Ordering::Acquire))
    }
}

pin_project! {
    /// A request body that tells its [`BodyClock`] when it waits for the client and when
    /// it gets something from it.
    struct ClockedBody<B> {
        #[pin]
        inner: B,
        clock: Option<Arc<BodyClock>>,
        // `Proxy100Continue On`: nothing is read from the client before the member's 100.
        gate: Option<Arc<ContinueGate>>,
        // How long the body still waits for that 100 ([`CONTINUE_WAIT`]); set when it
        // first waits.
        continue_wait: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

/// How long a body held for the member's `100 Continue` waits before it is sent anyway: a
/// member that ignores `Expect` (an HTTP/1.0 server, or one that waits for the body
/// before answering) would otherwise hold the request until its `timeout`. RFC 9110
/// §10.1.1 asks a client not to wait indefinitely; one second is curl's wait.
const CONTINUE_WAIT: Duration = Duration::from_secs(1);

impl<B: Body> Body for ClockedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        let this = self.project();
        if let Some(gate) = this.gate {
            match gate.state.load(Ordering::Acquire) {
                1 => {}
                // Answered without a 100: the body is not sent (the connection closes).
                2 => return Poll::Ready(None),
                _ => {
                    gate.waker.register(cx.waker());
                    match gate.state.load(Ordering::Acquire) {
                        1 => {}
                        2 => return Poll::Ready(None),
                        _ => {
                            let wait = this
                                .continue_wait
                                .get_or_insert_with(|| Box::pin(tokio::time::sleep(CONTINUE_WAIT)));
                            if wait.as_mut().poll(cx).is_ready() {
                                // No 100 in time: the body goes anyway.
                                gate.open();
                            } else {
                                if let Some(clock) = this.clock {
                                    // Waiting for the member, not for the client.
                                    clock.got(tokio::time::Instant::now());
                                }
                                return Poll::Pending;
                            }
                        }
                    }
                }
            }
        }
        let polled = this.inner.poll_frame(cx);
        if let Some(clock) = this.clock {
            if polled.is_pending() {
                clock.waiting.store(true, Ordering::Release);
            } else {
                clock.got(tokio::time::Instant::now());
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The boxed send of one request.
type Sending = Pin<Box<dyn Future<Output = Result<Response<MemberBody>, Error>> + Send>>;

pin_project! {
    /// The future of [`HttpMember`].
    pub struct HttpMemberFuture {
        sending: Option<Sending>,
        // The member's `timeout`, pushed back while the request body waits for the client.
        #[pin]
        sleep: Option<tokio::time::Sleep>,
        timeout: Duration,
        clock: Option<Arc<BodyClock>>,
        failed: Option<Error>,
    }
}

impl HttpMemberFuture {
    const fn failed(error: Error) -> Self {
        Self {
            sending: None,
            sleep: None,
            timeout: Duration::ZERO,
            clock: None,
            failed: Some(error),
        }
    }
}

impl fmt::Debug for HttpMemberFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpMemberFuture").finish_non_exhaustive()
    }
}

impl Future for HttpMemberFuture {
    type Output = Result<Response<MemberBody>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let (Some(sending), Some(mut sleep)) = (this.sending.as_mut(), this.sleep.as_pin_mut())
        else {
            return Poll::Ready(Err(this
                .failed
                .take()
                .unwrap_or_else(|| Error::upstream("polled after completion"))));
        };
        if let Poll::Ready(result) = sending.as_mut().poll(cx) {
            *this.sending = None;
            return Poll::Ready(result);
        }
        // Apache's `timeout` bounds each wait on the member; time the request body spent
        // waiting for the client is not the member's (the client's own limits bound it).
        loop {
            ready!(sleep.as_mut().poll(cx));
            let now = tokio::time::Instant::now();
            let deadline = this
                .clock
                .as_ref()
                .map(|clock| clock.member_time_since(now) + *this.timeout);
            match deadline {
                Some(deadline) if deadline > now => sleep.as_mut().reset(deadline),
                _ => {
                    return Poll::Ready(Err(Error::timeout(
                        "the member did not answer within its timeout",
                    )))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proxy_balancer_core::{BalancerParams, BalancerStore, MemberParams};

    /// The member's time runs from the client's last frame, and not at all while the body
    /// waits for the client.
    #[tokio::test(start_paused = true)]
    async fn the_body_clock_runs_the_members_time_from_the_clients_last_frame() {
        use tokio::time::{advance, Instant};
        let start = Instant::now();
        let clock = BodyClock::new();
        assert_eq!(clock.member_time_since(start), start);
        advance(Duration::from_secs(3)).await;
        clock.waiting.store(true, Ordering::Release);
        let now = Instant::now();
        assert_eq!(clock.member_time_since(now), now, "waiting for the client");
        advance(Duration::from_secs(2)).await;
        clock.got(Instant::now());
        advance(Duration::from_secs(4)).await;
        assert_eq!(
            clock.member_time_since(Instant::now()),
            start + Duration::from_secs(5)
        );
    }

    /// `receivebuffersize`: SO_RCVBUF is set on the member socket before it connects
    /// (Linux reports twice the size asked for).
    #[tokio::test]
    async fn receive_buffer_size_is_set_before_connecting() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stream = connect_stream("127.0.0.1", port, Some(65536))
            .await
            .unwrap();
        let size = socket2::SockRef::from(&stream).recv_buffer_size().unwrap();
        assert!(size >= 65536, "SO_RCVBUF {size}");
        let small = connect_stream("127.0.0.1", port, Some(4096)).await.unwrap();
        let size = socket2::SockRef::from(&small).recv_buffer_size().unwrap();
        assert!(size < 65536, "SO_RCVBUF {size}");
    }

    #[test]
    fn member_uris() {
        let store = BalancerStore::new(
            BalancerParams::new("t"),
            [
                MemberParams::new("http://10.0.0.1:8080/app").unwrap(),
                MemberParams::new("http://b").unwrap(),
            ],
            tokio::time::Instant::now().into_std(),
        )
        .unwrap();
        let snapshot = store.snapshot();
        let [a, b] = [&snapshot.members()[0], &snapshot.members()[1]];
        let uri: Uri = "/x?y=1".parse().unwrap();
        assert_eq!(
            member_uri(a, &uri).unwrap(),
            "http://10.0.0.1:8080/app/x?y=1"
        );
        assert_eq!(member_uri(b, &uri).unwrap(), "http://b/x?y=1");
        let absolute: Uri = "http://front/z".parse().unwrap();
        assert_eq!(member_uri(b, &absolute).unwrap(), "http://b/z");
    }

    #[test]
    fn member_address_and_host_come_from_the_member_url() {
        let member = |url: &str| {
            let store = BalancerStore::new(
                BalancerParams::new("t"),
                [MemberParams::new(url).unwrap()],
                tokio::time::Instant::now().into_std(),
            )
            .unwrap();
            let m = store.snapshot().members()[0].clone();
            HttpMember::<http_body_util::Empty<bytes::Bytes>>::new(&m)
        };
        // (url, address to connect to, Host)
        for (url, host, port, host_header) in [
            ("http://a", "a", 80, "a"),
            ("http://a:80", "a", 80, "a"),
            ("http://a:8080", "a", 8080, "a:8080"),
            // Was port 80 for https: the scheme's default is 443.
            ("https://a", "a", 443, "a"),
            ("https://a:80", "a", 80, "a:80"),
            ("http://[::1]:8080/app", "::1", 8080, "[::1]:8080"),
            ("http://[::1]", "::1", 80, "[::1]"),
        ] {
            let m = member(url);
            assert_eq!((m.pool.host.as_str(), m.pool.port), (host, port), "{url}");
            assert_eq!(m.target.host.as_ref().unwrap(), host_header, "{url}");
        }
        let m = member("http://[::1]:8080/app");
        assert_eq!(
            m.member_target("/x?y".parse().unwrap()).unwrap(),
            "/app/x?y"
        );
    }
}
