//! The built-in member client: a pool of HTTP/1.1 connections per member (hyper's
//! connection-level client), set up from the member's Apache parameters; for `h2c://` and
//! `h2://` members, a pool of multiplexed HTTP/2 connections instead (see
//! [HTTP/2 members](#http2-members)).
//!
//! The pool is a stack of idle connections behind a mutex that no request holds across an
//! `await`: a request takes the most recently used one, or opens a new connection, and the
//! connection goes back once its response has been read to the end ([`MemberBody`]). A request whose pooled connection turns out closed before the request went out
//! (the member closed an idle keep-alive connection) is sent again on a new connection;
//! once written, it is not (the balancer decides on retries).
//!
//! | Apache worker parameter | here |
//! | --- | --- |
//! | `connectiontimeout` (default `timeout`) | connect timeout; a connect that takes longer is a connect failure: the member is put in error and the request fails over |
//! | `timeout` | bounds each wait on the member, as Apache's per-read socket timeout: for the response head, counted from the last piece of the request body the client sent (time spent waiting for a slow client is not the member's: the client's own limits bound it; a member that stops taking the body runs out of time), past it a 504 ([`ErrorKind::Timeout`](crate::ErrorKind::Timeout)); and for each piece of the response body ([`MemberBody`]): past it the client's response is cut short, and with `failontimeout=On` the member is put in error |
//! | `max` | a hard cap on the member's open connections, idle and in use (Apache's connection pool `hmax`); `max=0`: no cap |
//! | `acquire` ([`ClientOptions::with_acquire`]) | how long a request waits for one of the `max` connections; past it a connect failure (503 unless another member takes it; the member is put in error, AH00941), as Apache; without it a request waits as long as it takes |
//! | `ping` ([`ClientOptions::with_ping`]) | requests with a body go with `Expect: 100-continue` and their body held; no `100 Continue` within `ping`: a connect failure (the member in error, the request to another member) |
//! | `addressttl` ([`ClientOptions::with_address_ttl`]) | how long the member's resolved addresses are kept (by default until the proxy stops; with `disablereuse=On`, resolved per connection; `0`: per connection, and no connection is reused, as Apache); when they all fail, resolved again |
//! | `ttl` | how long an idle connection is kept |
//! | `disablereuse=On` | no connection is kept: a new one per request |
//! | `keepalive=On` | TCP keep-alive probes on member connections |
//! | `upgrade` (and `ws://`, `wss://` members) | which protocol upgrades (WebSocket) are sent on and tunnelled ([`Upgrades`]) |
//!
//! The client answers in the proxy's own HTTP version: a member's `HTTP/1.0` answer reaches
//! an HTTP/1.1 client as `HTTP/1.1`, and an HTTP/2 client's as HTTP/2.
//!
//! `https`, `wss` and `h2` members are reached over TLS (rustls): with the
//! [`TlsClient`] given to [`ClientOptions::with_tls`], else one trusting the system's store
//! ([`TlsClient::system`]). A handshake that fails (a certificate not trusted, for another
//! name, expired; a member asking for a client certificate it does not get) is a connect
//! error ([`ErrorKind::Connect`](crate::ErrorKind::Connect)): the member goes into error
//! and the request fails over, the reason is logged.
//!
//! # HTTP/2 members
//!
//! `h2c://` members are spoken to in HTTP/2 with prior knowledge, `h2://` members over TLS
//! with ALPN `h2` (a member whose TLS does not select `h2` is a connect failure), as
//! Apache's mod_proxy_http2. Each member has a pool of HTTP/2 connections, each carrying
//! many requests at once: a request takes the oldest connection with a stream to spare
//! under the member's `SETTINGS_MAX_CONCURRENT_STREAMS` (as last read from the
//! connection), and another connection is opened only when all are full or gone; requests
//! that arrive together while a connection is opened wait for it and share it. The
//! balancer still picks a member per request.
//!
//! | Apache worker parameter | for HTTP/2 members |
//! | --- | --- |
//! | `connectiontimeout`, `timeout`, `keepalive` | as above |
//! | `ttl` | a connection without open streams for longer is closed |
//! | `disablereuse=On` | one connection per request |
//! | `max` | the most connections to the member (not streams): once all are full, a request goes on the least busy one and its stream waits there for a free slot |
//!
//! The request goes in absolute form (`:scheme`, and `:authority` from the `Host` the
//! member would get, with no `Host` header), whatever the client spoke, always with
//! `TE: trailers`, as from Apache's mod_proxy_http2; trailers pass both ways, so gRPC works
//! through the proxy. The
//! answer goes to the client in the client's own HTTP version. An `Expect: 100-continue`
//! is answered by the proxy (the body goes with the request). A member's GOAWAY (for a
//! stream it did not take) or `REFUSED_STREAM` means the request was not processed: a
//! connect failure ([`ErrorKind::Connect`](crate::ErrorKind::Connect)), so the request
//! fails over, even a POST (its body is replayed within the balancer's replay limit, as
//! for any connect failure; a body read past it is not); other HTTP/2 errors once the
//! request went out are not retried. When that happens on a kept connection (a member
//! closing it, as servers do after so many requests), the request first goes once more on
//! another connection to the same member, as Apache's mod_proxy_http2 retries an
//! untouched stream: the member is not put in error for closing a connection.
//!
//! # Strict HTTP toward members
//!
//! What a member answers is checked as Apache's mod_proxy_http checks it:
//!
//! | the member's answer | here | Apache |
//! | --- | --- | --- |
//! | both `Transfer-Encoding` and `Content-Length` | framed by `Transfer-Encoding` (RFC 9112 §6.3): `Content-Length` is dropped, the connection closed after the response, a warning logged | same (AH01107) |
//! | `101 Switching Protocols` to a request that asked for no upgrade the member takes, or naming another protocol than the one asked for | 502 ([`ErrorKind::Upstream`](crate::ErrorKind::Upstream)), the connection closed, nothing relayed | 502, AH00898 `Unexpected Upgrade` |
//! | `101 Switching Protocols` to an upgrade the member takes ([`ClientOptions::with_upgrades`]) | the client's connection and the member's joined, bytes copied both ways until either side closes or the tunnel is idle | same (mod_proxy_http's tunnel) |
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
mod h2;
mod limit;
mod pool;
mod resolve;
mod tls;
mod upgrade;

pub use body::MemberBody;
pub use future::HttpMemberFuture;
pub use resolve::AddressTtl;
pub use tls::{RevocationCheck, TlsClient, TlsClientBuilder, TlsError, TlsVersion};
pub use upgrade::Upgrades;

use body::Release;
use clock::{BodyClock, ClockedBody};
use connect::Connector;
use future::Ping;
use gate::{ContinueGate, Hop};
use h2::H2Pool;
use limit::ConnLimit;
use pool::Pool;
use resolve::Resolver;

use crate::balancer::{MakeMember, ReplayBody};
use crate::error::{BoxError, Error};
use crate::proxy_pass::{join_uri, HopRules, PreserveHost, UpgradeProtocol};

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
    acquire: Option<Duration>,
    ping: Option<Duration>,
    address_ttl: Option<AddressTtl>,
    /// For `https`, `wss` and `h2` members; `None`: [`TlsClient::system`].
    tls: Option<TlsClient>,
    /// `upgrade=`.
    upgrades: Upgrades,
    /// The front server's `Timeout`, the floor of a tunnel's idle limit.
    client_timeout: Option<Duration>,
}

impl ClientOptions {
    /// No limits (see the type's docs).
    #[must_use]
    pub const fn new() -> Self {
        Self {
            response_field_size: None,
            io_buffer_size: None,
            receive_buffer_size: None,
            acquire: None,
            ping: None,
            address_ttl: None,
            tls: None,
            upgrades: Upgrades::new(),
            client_timeout: None,
        }
    }

    /// How long a request waits for a free connection when the member's `max`
    /// connections are all open (in use): past it the request fails as a connect failure
    /// (503 unless another member takes it, and the member is put in error, as Apache's
    /// AH00941). `None` (the default): it waits as long as it takes, as Apache without
    /// `acquire`. Without `max` there is no cap, so no wait.
    ///
    /// # Apache
    ///
    /// The worker's `acquire` (milliseconds).
    #[must_use]
    pub const fn with_acquire(mut self, acquire: Option<Duration>) -> Self {
        self.acquire = acquire;
        self
    }

    /// Apache's 100-continue probe: a request with a body is sent with
    /// `Expect: 100-continue` and its body held until the member answers `100 Continue`
    /// (or its final answer); a member that says nothing within `ping` fails the request
    /// as a connect failure, so the member is put in error and the request, whose body
    /// was not sent, goes to another member. Requests without a body are not probed, as
    /// in Apache. `None` (the default): no probe.
    ///
    /// # Apache
    ///
    /// The worker's `ping` (seconds, or `ms`), for HTTP members.
    #[must_use]
    pub const fn with_ping(mut self, ping: Option<Duration>) -> Self {
        self.ping = ping;
        self
    }

    /// How long the addresses a member's host name resolves to are kept. `None` (the
    /// default): Apache's, until the proxy stops (with `disablereuse=On`: resolved for
    /// each connection).
    ///
    /// # Apache
    ///
    /// The worker's `addressttl` (`-1`: [`AddressTtl::Forever`]).
    #[must_use]
    pub const fn with_address_ttl(mut self, ttl: Option<AddressTtl>) -> Self {
        self.address_ttl = ttl;
        self
    }

    /// `acquire`.
    #[must_use]
    pub const fn acquire(&self) -> Option<Duration> {
        self.acquire
    }

    /// `ping`.
    #[must_use]
    pub const fn ping(&self) -> Option<Duration> {
        self.ping
    }

    /// `addressttl`.
    #[must_use]
    pub const fn address_ttl(&self) -> Option<AddressTtl> {
        self.address_ttl
    }

    /// Which protocol upgrades (WebSocket) go to the member and are tunnelled when it
    /// answers `101 Switching Protocols` ([`Upgrades`]; the default: WebSocket for `ws://`
    /// and `wss://` members, none for the others).
    ///
    /// A tunnel holds the member's busy count until it ends (through the balancer's
    /// [`TunnelHold`](crate::balancer::TunnelHold)), counts its bytes both ways for
    /// `bytraffic`, and closes when nothing moves either way for the larger of the member's
    /// `timeout` and the [client timeout](Self::with_client_timeout). The front server must
    /// serve with upgrades ([`Server`](crate::server::Server) and `axum::serve` do).
    ///
    /// # Apache
    ///
    /// The worker's `upgrade` parameter (mod_proxy_http, 2.4.47 and later), and mod_proxy_wstunnel's
    /// `ws://` and `wss://` members.
    #[must_use]
    pub fn with_upgrades(mut self, upgrades: Upgrades) -> Self {
        self.upgrades = upgrades;
        self
    }

    /// The upgrades set with [`with_upgrades`](Self::with_upgrades).
    #[must_use]
    pub const fn upgrades(&self) -> &Upgrades {
        &self.upgrades
    }

    /// The front server's timeout toward clients: a tunnel is closed once nothing moved
    /// for the larger of it and the member's `timeout`. `None`: Apache's default, 60 s.
    ///
    /// # Apache
    ///
    /// The server's `Timeout` (mod_proxy_http sets the tunnel's timeout to the larger of
    /// the client's and the member's socket timeouts).
    #[must_use]
    pub const fn with_client_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.client_timeout = timeout;
        self
    }

    /// The client timeout set with [`with_client_timeout`](Self::with_client_timeout).
    #[must_use]
    pub const fn client_timeout(&self) -> Option<Duration> {
        self.client_timeout
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
    /// in pieces of this size. `None` or 0: as read (hyper's adaptive buffer). Also the
    /// read buffer of each way of a WebSocket tunnel (`None` or 0: 8 KiB).
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
    /// For `h2c` and `h2` members: their requests go here, not to `pool`.
    h2: Option<Arc<H2Pool<ClockedBody<ReplayBody<B>>>>>,
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
    /// The member (an HTTP/2 request's body copy for a second connection counts its bytes).
    member: Member,
    /// `http` or `https`: the `:scheme` of an HTTP/2 member's requests.
    scheme: &'static str,
    base_path: String,
    timeout: Duration,
    /// `ping`: how long the member has to answer `100 Continue` to a request with a body.
    ping: Option<Duration>,
}

impl<B> Clone for HttpMember<B> {
    fn clone(&self) -> Self {
        Self {
            pool: Arc::clone(&self.pool),
            h2: self.h2.clone(),
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
            .field(
                "h2_connections",
                &self.h2.as_ref().map(|h2| h2.connections()),
            )
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
    pub fn with_options(member: &Member, mut options: ClientOptions) -> Self {
        let params = member.params();
        // A ws:// or wss:// member takes WebSocket upgrades unless `upgrade=` says otherwise.
        options.upgrades = std::mem::take(&mut options.upgrades)
            .for_scheme(params.url.protocol() == proxy_balancer_core::MemberProtocol::WebSocket);
        let url = &params.url;
        // The URL was checked when the member was made: its Host value is valid.
        let host_header = HeaderValue::from_str(url.authority()).ok();
        // `addressttl=0` resolves for every connection, and so, as in Apache, reuses none.
        let no_reuse =
            params.disable_reuse || options.address_ttl == Some(AddressTtl::For(Duration::ZERO));
        let max_idle = if no_reuse {
            0
        } else {
            params.max.map_or(usize::MAX, |max| max as usize)
        };
        // `max=0` is no cap, as Apache's (no connection pool is made for it).
        let limit = Arc::new(ConnLimit::new(
            params.max.filter(|&n| n > 0),
            options.acquire,
            member.url().to_owned(),
        ));
        let ping = options.ping;
        // Apache resolves for each connection when reuse is off and no addressttl is set.
        let address_ttl = options.address_ttl.unwrap_or(if params.disable_reuse {
            AddressTtl::For(Duration::ZERO)
        } else {
            AddressTtl::Forever
        });
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
        let connector = || Connector {
            host: url.connect_host().to_owned(),
            resolver: Resolver::new(url.connect_host(), url.port(), address_ttl),
            connect_timeout: params.connection_timeout.or(params.timeout),
            keepalive: params.keepalive,
            receive_buffer: options.receive_buffer_size,
            tls: tls.clone(),
            member: member.url().to_owned(),
        };
        // h2c and h2 members: one multiplexed pool (mod_proxy_http2).
        let h2 = (url.protocol() == proxy_balancer_core::MemberProtocol::Http2)
            .then(|| Arc::new(H2Pool::new(connector(), params, options.clone())));
        Self {
            pool: Arc::new(Pool {
                idle: Mutex::new(Vec::new()),
                max_idle,
                limit,
                ttl: params.ttl,
                connector: connector(),
                member: member.url().to_owned(),
                options,
            }),
            h2,
            target: Arc::new(Target {
                unusable,
                host: host_header,
                member: member.clone(),
                scheme: url.http_scheme(),
                base_path: url.path().to_owned(),
                timeout: params.timeout.unwrap_or(DEFAULT_TIMEOUT),
                ping,
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
        if let Some(h2) = &self.h2 {
            return self.call_h2(Arc::clone(h2), request);
        }
        // The client's `TE: trailers` is for HTTP/2 members (gRPC); an HTTP/1.1 member
        // gets no `TE`, as from Apache's mod_proxy_http.
        request.headers_mut().remove(header::TE);
        // Only a body still to come from the client needs the clock (most GETs have none),
        // or a request that may wait for one of the member's `max` connections.
        let has_body = !request.body().is_end_stream();
        let clock = (has_body || self.pool.limit.is_capped()).then(|| Arc::new(BodyClock::new()));
        let rules = request.extensions().get::<Arc<HopRules>>().cloned();
        // `ping`: a request with a body asks the member for `100 Continue` (Apache's probe
        // of a hung member), whether the client asked or not.
        let ping = self.target.ping.filter(|_| has_body);
        if ping.is_some() {
            request
                .headers_mut()
                .insert(header::EXPECT, HeaderValue::from_static("100-continue"));
        }
        // Proxy100Continue On (or `ping`): the body waits for the member's `100 Continue`.
        let gate = (has_body
            && (ping.is_some() || rules.as_ref().is_some_and(|r| r.expect_continue)))
        .then(|| Arc::new(ContinueGate::default()));
        if let Some(gate) = &gate {
            let gate = Arc::clone(gate);
            hyper::ext::on_informational(&mut request, move |response| {
                if response.status() == StatusCode::CONTINUE {
                    gate.open();
                }
            });
        }
        // A protocol upgrade the member takes goes with `Connection: Upgrade`; any other
        // goes as a plain request.
        let idle = self
            .target
            .timeout
            .max(self.pool.options.client_timeout.unwrap_or(DEFAULT_TIMEOUT));
        let tunnel = upgrade::prepare(&mut request, &self.pool.options, idle);
        let request = request.map(|inner| ClockedBody {
            inner,
            clock: clock.clone().filter(|_| has_body),
            gate: gate.clone(),
            continue_wait: None,
            continue_anyway: ping.is_none(),
        });
        let probe = match (ping, &gate) {
            (Some(limit), Some(gate)) => Some(Ping {
                limit,
                gate: Arc::clone(gate),
                sleep: Box::pin(tokio::time::sleep(limit)),
            }),
            _ => None,
        };
        let hop = Hop {
            rules,
            gate,
            clock: clock.clone(),
            tunnel,
        };
        let sending = Arc::clone(&self.pool).send(request, hop);
        HttpMemberFuture::new(Box::pin(sending), self.target.timeout, clock, probe)
    }
}

impl<B> HttpMember<B>
where
    B: Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    /// Sends a request (its target and `Host` set) to an HTTP/2 member: in absolute form,
    /// `Host` giving `:authority` (and no `Host` header), with `TE: trailers`, whatever
    /// HTTP version the client spoke.
    fn call_h2(
        &self,
        h2: Arc<H2Pool<ClockedBody<ReplayBody<B>>>>,
        mut request: Request<ReplayBody<B>>,
    ) -> HttpMemberFuture {
        *request.version_mut() = http::Version::HTTP_2;
        let authority = request
            .headers()
            .get(header::HOST)
            .and_then(|host| http::uri::Authority::try_from(host.as_bytes()).ok());
        let Some(authority) = authority else {
            return HttpMemberFuture::failed(Error::upstream(
                "the request's Host is no valid :authority for the HTTP/2 member",
            ));
        };
        let mut parts = std::mem::take(request.uri_mut()).into_parts();
        parts.scheme = Some(if self.target.scheme == "https" {
            http::uri::Scheme::HTTPS
        } else {
            http::uri::Scheme::HTTP
        });
        parts.authority = Some(authority);
        match Uri::from_parts(parts) {
            Ok(uri) => *request.uri_mut() = uri,
            Err(e) => return HttpMemberFuture::failed(Error::upstream(e)),
        }
        let headers = request.headers_mut();
        // `:authority` says it (RFC 9113 §8.3.1); Apache's mod_proxy_http2 sends no `Host`.
        headers.remove(header::HOST);
        // The proxy takes trailers whatever the client said (it passes them on, or drops
        // them for a client that cannot have them): `TE: trailers` always, as from Apache's
        // mod_proxy_http2 (gRPC members want it).
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        // No `100 Continue` wait toward HTTP/2 members: the body goes with the request, and
        // the client's expectation is answered by the proxy (the server sends its `100`
        // when the body is read).
        headers.remove(header::EXPECT);
        let has_body = !request.body().is_end_stream();
        let clock = has_body.then(|| Arc::new(BodyClock::new()));
        let rules = request.extensions().get::<Arc<HopRules>>().cloned();
        // A stream that a kept connection's GOAWAY or REFUSED_STREAM left unprocessed goes
        // once more on another connection to the same member (as Apache's mod_proxy_http2
        // does), from a copy of the head and of the body as far as it is kept: a member
        // closing an idle connection is not put in error for it.
        let (parts, template) = request.into_parts();
        let first = template.next_attempt(&self.target.member);
        let head = (
            parts.method.clone(),
            parts.uri.clone(),
            parts.headers.clone(),
        );
        let member = self.target.member.clone();
        let retry_clock = clock.clone();
        let (body, again) = match first {
            Some(first) => (first, Some(template)),
            // Not replayable (not seen here: the balancer hands out replayable copies).
            None => (template, None),
        };
        let again = move || {
            let body = again?.next_attempt(&member)?;
            let (method, uri, headers) = head;
            let mut request = Request::new(ClockedBody {
                inner: body,
                clock: retry_clock,
                gate: None,
                continue_wait: None,
                continue_anyway: true,
            });
            *request.method_mut() = method;
            *request.uri_mut() = uri;
            *request.version_mut() = http::Version::HTTP_2;
            *request.headers_mut() = headers;
            Some(request)
        };
        let request = Request::from_parts(
            parts,
            ClockedBody {
                inner: body,
                clock: clock.clone(),
                gate: None,
                continue_wait: None,
                continue_anyway: true,
            },
        );
        let hop = Hop {
            rules,
            gate: None,
            clock: clock.clone(),
            tunnel: None,
        };
        let sending = h2.send(request, hop, again);
        // No `ping` toward HTTP/2 members: mod_proxy_http2's is a PING frame, not sent here.
        HttpMemberFuture::new(Box::pin(sending), self.target.timeout, clock, None)
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
        let resolver = Resolver::new("127.0.0.1", port, AddressTtl::Forever);
        let stream = connect_stream(&resolver, Some(65536)).await.unwrap();
        let size = socket2::SockRef::from(&stream).recv_buffer_size().unwrap();
        assert!(size >= 65536, "SO_RCVBUF {size}");
        let small = connect_stream(&resolver, Some(4096)).await.unwrap();
        let size = socket2::SockRef::from(&small).recv_buffer_size().unwrap();
        assert!(size < 65536, "SO_RCVBUF {size}");
    }

    /// `addressttl`: `localhost` is resolved once by default, for every connection with
    /// `disablereuse=On` (Apache's rule), and once again with an explicit `addressttl=-1`.
    #[tokio::test]
    async fn a_members_name_is_resolved_as_addressttl_says() {
        use tower::ServiceExt;
        let backend = proxy_balancer_test::TestBackend::start("named")
            .await
            .unwrap();
        let port = backend
            .url()
            .rsplit(':')
            .next()
            .unwrap()
            .parse::<u16>()
            .unwrap();
        let lookups = |params: &'static [(&'static str, &'static str)], ttl: Option<AddressTtl>| {
            let params = params.to_vec();
            async move {
                let mut member = MemberParams::new(&format!("http://localhost:{port}")).unwrap();
                for (k, v) in params {
                    member.set(k, v).unwrap();
                }
                let store = BalancerStore::new(
                    BalancerParams::new("t"),
                    [member],
                    tokio::time::Instant::now().into_std(),
                )
                .unwrap();
                let m = store.snapshot().members()[0].clone();
                let client = HttpMember::<http_body_util::Empty<bytes::Bytes>>::with_options(
                    &m,
                    ClientOptions::new().with_address_ttl(ttl),
                );
                for _ in 0..3 {
                    let body = ReplayBody::new(http_body_util::Empty::new(), 0);
                    let request = Request::get("/").body(body).unwrap();
                    let response = client.clone().oneshot(request).await.unwrap();
                    assert_eq!(response.status(), 200);
                    http_body_util::BodyExt::collect(response.into_body())
                        .await
                        .unwrap();
                }
                client.pool.connector.resolver.lookups()
            }
        };
        assert_eq!(lookups(&[], None).await, 1, "kept until the proxy stops");
        assert_eq!(
            lookups(&[("disablereuse", "On")], None).await,
            3,
            "per connection"
        );
        let forever = lookups(&[("disablereuse", "On")], Some(AddressTtl::Forever)).await;
        assert_eq!(forever, 1, "addressttl=-1 set");
        // As Apache, which then turns reuse off (a connection per request).
        let zero = lookups(&[], Some(AddressTtl::For(Duration::ZERO))).await;
        assert_eq!(zero, 3, "addressttl=0: per connection, and no reuse");
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
            assert_eq!((c.host.as_str(), c.resolver.port), (host, port), "{url}");
            assert_eq!(m.target.host.as_ref().unwrap(), host_header, "{url}");
        }
        let m = member("http://[::1]:8080/app");
        assert_eq!(
            m.member_target("/x?y".parse().unwrap()).unwrap(),
            "/app/x?y"
        );
    }
}
