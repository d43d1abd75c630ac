//! HTTP/2 members (`h2c://` with prior knowledge, `h2://` over TLS with ALPN `h2`), as
//! Apache's mod_proxy_http2: a pool of multiplexed connections per member.
//!
//! One connection carries many requests at once: a request takes the oldest connection
//! with a stream to spare under the member's `SETTINGS_MAX_CONCURRENT_STREAMS`, and another
//! connection is opened only when every one is full, or gone (closed, or told to go away).
//! Requests that arrive together while the first connection is being opened wait for it
//! rather than each opening one. Balancing stays per request: the balancer picks a member
//! for each request, whatever connection it then goes on.
//!
//! | Apache worker parameter | here |
//! | --- | --- |
//! | `connectiontimeout` (default `timeout`) | bounds the TCP connect and TLS handshake: a connect failure, the request fails over |
//! | `timeout` | the wait for the response head, as for HTTP/1.1 members ([`HttpMemberFuture`]) |
//! | `ttl` | a connection without open streams for longer is closed |
//! | `disablereuse=On` | a new connection per request, closed after it |
//! | `max` | the most connections to the member; once all are full, a request shares the least busy one (its stream waits for a free slot on it) |
//!
//! The member's GOAWAY (for streams above its last-stream-id) and `REFUSED_STREAM` say the
//! request was not processed: they are connect failures
//! ([`ErrorKind::Connect`](crate::ErrorKind::Connect)), so the request may fail over even
//! when it is not idempotent; first, the request goes once more on another connection to
//! the same member (a member closing an idle connection, or restarting, is not put in
//! error for it). Other failures after the request went out are not retried.

use std::sync::atomic::AtomicUsize;

use hyper::client::conn::http2;
use hyper_util::rt::TokioExecutor;

use super::connect::{Alpn, Connector};
use super::*;

/// The streams one connection takes before the member's SETTINGS say otherwise: RFC 9113
/// §6.5.2 asks servers to allow at least 100.
const INITIAL_MAX_STREAMS: usize = 100;

/// The HTTP/2 connections of one member.
pub(super) struct H2Pool<B> {
    /// Oldest first.
    conns: Mutex<Vec<Arc<H2Conn<B>>>>,
    /// One connect at a time: requests that find no room wait for the connection being
    /// opened and share it.
    connecting: tokio::sync::Mutex<()>,
    /// `max`: the most connections kept.
    max_conns: Option<usize>,
    /// `ttl`: how long a connection without open streams is kept.
    ttl: Option<Duration>,
    /// `disablereuse=On`: one connection per request.
    disable_reuse: bool,
    connector: Connector,
    /// The member's `SETTINGS_MAX_CONCURRENT_STREAMS` as last seen on any of its
    /// connections: what a new connection is assumed to allow until its SETTINGS arrive.
    known_max_streams: Arc<AtomicUsize>,
    /// The member's URL, for logs and errors.
    member: String,
    options: ClientOptions,
}

/// One HTTP/2 connection to a member.
struct H2Conn<B> {
    sender: http2::SendRequest<B>,
    /// Streams open on it: sent, and their answer not yet read to its end.
    open: AtomicUsize,
    /// The member's `SETTINGS_MAX_CONCURRENT_STREAMS`, as the connection's task last saw it.
    max_streams: Arc<AtomicUsize>,
    /// The member said GOAWAY, or refused a stream: no new request goes on it.
    gone: AtomicBool,
    /// When its last stream ended, in nanoseconds since `born` (for `ttl`).
    idle_since: AtomicU64,
    born: tokio::time::Instant,
}

impl<B> H2Conn<B> {
    fn has_room(&self) -> bool {
        self.open.load(Ordering::Acquire) < self.max_streams.load(Ordering::Acquire).max(1)
    }

    fn usable(&self, now: tokio::time::Instant, ttl: Option<Duration>) -> bool {
        if self.sender.is_closed() || self.gone.load(Ordering::Acquire) {
            return false;
        }
        let Some(ttl) = ttl else {
            return true;
        };
        if self.open.load(Ordering::Acquire) > 0 {
            return true;
        }
        let idle_since = self.born + Duration::from_nanos(self.idle_since.load(Ordering::Acquire));
        now.saturating_duration_since(idle_since) <= ttl
    }
}

/// A stream taken on a connection: the connection's count of open streams goes down when
/// this is dropped (the answer read to its end, failed, or dropped). Holds the connection,
/// so that a connection of `disablereuse=On` lives as long as its one stream.
pub(super) struct H2Stream<B> {
    conn: Arc<H2Conn<B>>,
}

impl<B> H2Stream<B> {
    fn take(conn: &Arc<H2Conn<B>>) -> Self {
        conn.open.fetch_add(1, Ordering::AcqRel);
        Self {
            conn: Arc::clone(conn),
        }
    }
}

impl<B> Drop for H2Stream<B> {
    fn drop(&mut self) {
        let nanos = u64::try_from(self.conn.born.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.conn.idle_since.store(nanos, Ordering::Release);
        self.conn.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<B> H2Pool<B> {
    pub(super) fn new(
        connector: Connector,
        member: &proxy_balancer_core::MemberParams,
        options: ClientOptions,
    ) -> Self {
        Self {
            conns: Mutex::new(Vec::new()),
            connecting: tokio::sync::Mutex::new(()),
            max_conns: member.max.map(|max| (max as usize).max(1)),
            ttl: member.ttl,
            disable_reuse: member.disable_reuse,
            known_max_streams: Arc::new(AtomicUsize::new(INITIAL_MAX_STREAMS)),
            member: connector.member.clone(),
            connector,
            options,
        }
    }

    /// The number of connections kept (for `Debug`).
    pub(super) fn connections(&self) -> usize {
        self.conns.lock().len()
    }
}

impl<B> H2Pool<B>
where
    B: Body + Unpin + Send + Sync + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// A stream on a kept connection: the oldest one with room, or, with `max`
    /// connections open and all full, the least busy one. `None`: a new connection is
    /// needed.
    fn pick(&self) -> Option<(http2::SendRequest<B>, H2Stream<B>)> {
        let now = tokio::time::Instant::now();
        let mut conns = self.conns.lock();
        conns.retain(|conn| conn.usable(now, self.ttl));
        let conn = match conns.iter().find(|conn| conn.has_room()) {
            Some(conn) => conn,
            None if self.max_conns.is_some_and(|max| conns.len() >= max) => conns
                .iter()
                .min_by_key(|conn| conn.open.load(Ordering::Acquire))?,
            None => return None,
        };
        Some((conn.sender.clone(), H2Stream::take(conn)))
    }

    /// A stream on a new connection, or on one another request opened meanwhile.
    async fn open(&self) -> Result<(http2::SendRequest<B>, H2Stream<B>), Error> {
        if self.disable_reuse {
            let conn = self.connect().await?;
            return Ok((conn.sender.clone(), H2Stream::take(&conn)));
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(found) = self.pick() {
            return Ok(found);
        }
        let conn = self.connect().await?;
        let taken = (conn.sender.clone(), H2Stream::take(&conn));
        self.conns.lock().push(conn);
        Ok(taken)
    }

    /// A new HTTP/2 connection (TCP and TLS bounded by `connectiontimeout`), its protocol
    /// task spawned.
    async fn connect(&self) -> Result<Arc<H2Conn<B>>, Error> {
        let stream = self.connector.connect(Alpn::H2).await?;
        if self.connector.tls.is_some() && !stream.negotiated_h2() {
            tracing::error!(
                member = %self.member,
                "the member did not agree to HTTP/2: TLS ALPN did not select h2"
            );
            return Err(Error::connect(
                "the h2 member did not select HTTP/2 in the TLS handshake (ALPN)",
            )
            .with_member(&self.member, None));
        }
        let known_max = self.known_max_streams.load(Ordering::Acquire);
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .initial_max_send_streams(known_max)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Error::connect(e).with_member(&self.member, None))?;
        let max_streams = Arc::new(AtomicUsize::new(known_max));
        let seen = Arc::clone(&max_streams);
        let known = Arc::clone(&self.known_max_streams);
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let ended = std::future::poll_fn(|cx| {
                let polled = connection.as_mut().poll(cx);
                let max = connection.current_max_send_streams();
                if seen.swap(max, Ordering::AcqRel) != max {
                    known.store(max, Ordering::Release);
                }
                polled
            })
            .await;
            if let Err(error) = ended {
                tracing::debug!(%error, "HTTP/2 member connection ended with an error");
            }
        });
        Ok(Arc::new(H2Conn {
            sender,
            open: AtomicUsize::new(0),
            max_streams,
            gone: AtomicBool::new(false),
            idle_since: AtomicU64::new(0),
            born: tokio::time::Instant::now(),
        }))
    }

    /// Sends `request` on a stream of a kept connection, or of a new one when none has
    /// room or the kept one was closed before the request went out. A request that a
    /// GOAWAY or REFUSED_STREAM left unprocessed goes once more, as `again` makes it
    /// (`None`: its body cannot be sent again), on a new connection.
    pub(super) async fn send(
        self: Arc<Self>,
        mut request: Request<B>,
        hop: Hop,
        again: impl FnOnce() -> Option<Request<B>> + Send,
    ) -> Result<Response<MemberBody>, Error> {
        // Used once: after a kept connection's refusal, or a new one's.
        let mut again = Some(again);
        if let Some((mut sender, stream)) = (!self.disable_reuse).then(|| self.pick()).flatten() {
            match sender.try_send_request(request).await {
                Ok(response) => return self.wrap(response, stream, &hop),
                Err(mut failed) => match failed.take_message() {
                    // Not sent: the connection was gone; a new one below.
                    Some(unsent) => {
                        stream.conn.gone.store(true, Ordering::Release);
                        request = unsent;
                    }
                    None => {
                        let error = self.failed(&stream, failed.into_error());
                        if error.kind() != crate::ErrorKind::Connect {
                            return Err(error);
                        }
                        drop(stream);
                        match again.take().and_then(|again| again()) {
                            Some(copy) => request = copy,
                            None => return Err(error),
                        }
                    }
                },
            }
        }
        loop {
            // Boxed: connecting is rare, and its future large.
            let (mut sender, stream) = Box::pin(self.open()).await?;
            match sender.try_send_request(request).await {
                Ok(response) => return self.wrap(response, stream, &hop),
                Err(mut failed) => {
                    if let Some(unsent) = failed.take_message() {
                        // Not sent: the new connection closed at once (its GOAWAY came
                        // before the request went out). Once more on another, as below.
                        if again.take().is_some() {
                            request = unsent;
                            continue;
                        }
                        return Err(
                            Error::connect(failed.into_error()).with_member(&self.member, None)
                        );
                    }
                    let error = self.failed(&stream, failed.into_error());
                    if error.kind() != crate::ErrorKind::Connect {
                        return Err(error);
                    }
                    drop(stream);
                    // A new connection's GOAWAY or REFUSED_STREAM (a member restarting, or
                    // one that refused this stream) left the request unprocessed too: once
                    // more on another new connection, unless a kept one's refusal used the
                    // retry already; then the member fails (and the request may fail over).
                    match again.take().and_then(|again| again()) {
                        Some(copy) => request = copy,
                        None => return Err(error),
                    }
                }
            }
        }
    }

    /// The error of a request that went to the member; a GOAWAY or a refused stream
    /// retires its connection (no new request goes on it).
    fn failed(&self, stream: &H2Stream<B>, error: hyper::Error) -> Error {
        let error = Error::from_member(Box::new(error));
        if error.kind() == crate::ErrorKind::Connect {
            stream.conn.gone.store(true, Ordering::Release);
            tracing::info!(
                member = %self.member,
                error = ?std::error::Error::source(&error),
                "the HTTP/2 member did not process the request (GOAWAY or REFUSED_STREAM)"
            );
        }
        error
    }

    /// The response, with a body that ends its stream at its end. A header line over
    /// `responsefieldsize` is an error; `ProxyVia` and `ProxyErrorOverride` are applied.
    fn wrap(
        &self,
        mut response: Response<Incoming>,
        stream: H2Stream<B>,
        hop: &Hop,
    ) -> Result<Response<MemberBody>, Error> {
        if let Some(own) =
            super::pool::screen_head(&self.member, &self.options, &mut response, hop)?
        {
            // ProxyErrorOverride: the stream is reset when its body is dropped.
            return Ok(own);
        }
        let piece = self.options.io_buffer_size.filter(|&n| n > 0);
        if response.body().is_end_stream() {
            drop(stream);
            return Ok(response.map(|inner| MemberBody::member(inner, None, piece)));
        }
        // Called at the body's end, dropped if it fails or is dropped: either way the
        // stream is no longer counted.
        let release: Release = Box::new(move || drop(stream));
        Ok(response.map(|inner| MemberBody::member(inner, Some(release), piece)))
    }
}
