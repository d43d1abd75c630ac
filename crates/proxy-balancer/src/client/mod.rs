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
//! `https`, `wss` and `h2` members are reached over TLS (rustls): with the
//! [`TlsClient`] given to [`ClientOptions::with_tls`], else one trusting the system's store
//! ([`TlsClient::system`]). A handshake that fails (a certificate not trusted, for another
//! name, expired; a member asking for a client certificate it does not get) is a connect
//! error ([`ErrorKind::Connect`](crate::ErrorKind::Connect)): the member goes into error
//! and the request fails over, the reason is logged.
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

mod body;
mod clock;
mod connect;
mod future;
mod gate;
mod pool;
mod tls;

pub use body::MemberBody;
pub use future::HttpMemberFuture;
pub use tls::{RevocationCheck, TlsClient, TlsClientBuilder, TlsError, TlsVersion};

use body::Release;
use clock::{BodyClock, ClockedBody};
use connect::Connector;
use gate::{ContinueGate, Hop};
use pool::Pool;

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
pub(super) struct MemberOptions {
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientOptions {
    response_field_size: Option<usize>,
    io_buffer_size: Option<usize>,
    receive_buffer_size: Option<usize>,
    /// For `https`, `wss` and `h2` members; `None`: [`TlsClient::system`].
    tls: Option<TlsClient>,
}

impl ClientOptions {
    /// No limits (see the type's docs).
    #[must_use]
    pub const fn new() -> Self {
        Self {
            response_field_size: None,
            io_buffer_size: None,
            receive_buffer_size: None,
            tls: None,
        }
    }

    /// How TLS members (`https`, `wss`, `h2`) are spoken to. `None` (the default): the
    /// system's trust store, with SNI and no client certificate ([`TlsClient::system`]).
    #[must_use]
    pub fn with_tls(mut self, tls: Option<TlsClient>) -> Self {
        self.tls = tls;
        self
    }

    /// The TLS client set with [`with_tls`](Self::with_tls).
    #[must_use]
    pub const fn tls(&self) -> Option<&TlsClient> {
        self.tls.as_ref()
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
            .unwrap_or(&self.options.default)
            .clone()
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
pub(super) struct Target {
    /// Why the member's requests cannot be sent (a TLS member without a TLS client).
    unusable: Option<String>,
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
        // A TLS member without a client of its own trusts the system's store; one that
        // cannot be had fails the member's requests with the reason.
        let (tls, unusable) = if url.tls() {
            match options.tls.clone().map_or_else(TlsClient::system, Ok) {
                Ok(tls) => (Some(tls), None),
                Err(error) => (None, Some(format!("no TLS client for the member: {error}"))),
            }
        } else {
            (None, None)
        };
        Self {
            pool: Arc::new(Pool {
                idle: Mutex::new(Vec::new()),
                max_idle,
                ttl: params.ttl,
                connector: Connector {
                    host: url.connect_host().to_owned(),
                    port: url.port(),
                    connect_timeout: params.connection_timeout.or(params.timeout),
                    keepalive: params.keepalive,
                    receive_buffer: options.receive_buffer_size,
                    tls,
                    member: member.url().to_owned(),
                },
                member: member.url().to_owned(),
                options,
            }),
            target: Arc::new(Target {
                unusable,
                host: host_header,
                base_path: url.path().to_owned(),
                timeout: params.timeout.unwrap_or(DEFAULT_TIMEOUT),
            }),
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
        if let Some(reason) = &self.target.unusable {
            return HttpMemberFuture::failed(Error::connect(reason.clone()));
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
        HttpMemberFuture::new(Box::pin(sending), self.target.timeout, clock)
    }
}

#[cfg(test)]
mod tests {
    use super::connect::connect_stream;
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
            let c = &m.pool.connector;
            assert_eq!((c.host.as_str(), c.port), (host, port), "{url}");
            assert_eq!(m.target.host.as_ref().unwrap(), host_header, "{url}");
        }
        let m = member("http://[::1]:8080/app");
        assert_eq!(
            m.member_target("/x?y".parse().unwrap()).unwrap(),
            "/app/x?y"
        );
    }
}
