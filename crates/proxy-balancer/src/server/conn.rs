//! One client connection: its IO deadlines (header, keep-alive, write), its request count,
//! and what tells the connection cap that it is idle.
//!
//! [`ConnIo`] wraps the client's stream and decides, at each read, which deadline applies
//! (none once a `101 Switching Protocols` made the connection a tunnel: the tunnel's idle
//! timeout bounds it);
//! [`ConnService`] counts a request as in flight from its dispatch until its response body
//! ([`ConnBody`]) has been written to the end or dropped. The two share a [`ConnState`]
//! through atomics only: the request path takes no lock.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use atomic_waker::AtomicWaker;
use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderValue, CONNECTION};
use http::{Request, Response, Version};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::ClientLimits;

/// What HTTP/1.1 clients get when their request head is not in within the header timeout
/// (mod_reqtimeout's answer), before the connection closes.
const REQUEST_TIMEOUT_408: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// The start of the HTTP/2 connection preface (`PRI * HTTP/2.0`): how a connection is
/// known to speak h2 (prior knowledge, the only h2 a cleartext server sees).
const H2_PREFACE_START: &[u8] = b"PRI";

/// HTTP/2's whole connection preface: what [`ConnIo::first_bytes`] tells HTTP/2 by.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The room for a connection's first read: hyper's own first read buffer's size, so that
/// a whole ordinary request head comes in one read.
const FIRST_READ: usize = 8192;

// The phases a connection goes through, as published for the connection cap.
/// Accepted, no byte received yet.
const FRESH: u8 = 0;
/// Between requests (keep-alive), no byte of the next request received.
const IDLE: u8 = 1;
/// Receiving a request head.
const HEAD: u8 = 2;
/// At least one request in flight.
const BUSY: u8 = 3;

/// The deadlines [`ConnIo`] enforces, copied from [`ClientLimits`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct IoLimits {
    header: super::ReadTimeout,
    keep_alive: Duration,
    timeout: Duration,
}

impl IoLimits {
    pub(crate) const fn new(limits: &ClientLimits) -> Self {
        Self {
            header: limits.header_timeout,
            keep_alive: limits.keep_alive_timeout,
            timeout: limits.timeout,
        }
    }
}

/// What a connection's IO and its requests share.
#[derive(Debug, Default)]
pub(crate) struct ConnState {
    /// Requests dispatched whose response body has not ended or been dropped.
    in_flight: AtomicU32,
    /// Requests whose response has ended: [`ConnIo`] notices a change to start the
    /// keep-alive wait.
    completed: AtomicU32,
    /// Requests dispatched on this connection (`MaxKeepAliveRequests`).
    dispatched: AtomicU32,
    /// The phase as [`ConnIo`] last saw it (`FRESH`, `IDLE`, `HEAD`, `BUSY`).
    phase: AtomicU8,
    /// [`ConnIo`]'s pending read while a request is in flight.
    reader: AtomicWaker,
    /// Set by the connection cap's relief; the connection task closes if still idle.
    relief: AtomicBool,
    /// The connection task, woken by the relief.
    task: AtomicWaker,
    /// A `101 Switching Protocols` went out: the connection is (about to be) a tunnel, whose
    /// reads have no deadline here (the tunnel's idle timeout bounds it) and which is never
    /// idle for the relief.
    upgraded: AtomicBool,
    /// [`ConnIo`] was dropped: the connection is closed (for a tunnel, its end).
    closed: tokio::sync::Notify,
    /// The server stops: the connection ends gracefully.
    stopping: AtomicBool,
}

impl ConnState {
    /// Whether the connection cap may close this connection: no request in flight and no
    /// byte of a next request received (Apache's event MPM closes such keep-alive
    /// connections when it runs out of room).
    pub(crate) fn is_idle(&self) -> bool {
        !self.upgraded.load(Ordering::Acquire)
            && self.in_flight.load(Ordering::Acquire) == 0
            && matches!(self.phase.load(Ordering::Acquire), FRESH | IDLE)
    }

    /// Asks the connection task to close if the connection is still idle when it runs.
    pub(crate) fn relieve(&self) {
        self.relief.store(true, Ordering::Release);
        self.task.wake();
    }

    /// Whether a request's first bytes came in since the accept (an HTTP/2 preface does
    /// not count: that connection has no request yet).
    pub(crate) fn began(&self) -> bool {
        self.phase.load(Ordering::Acquire) != FRESH
    }

    /// Asks the connection task to end the connection gracefully (the server stops).
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.task.wake();
    }

    /// Whether the server stops.
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Whether a `101 Switching Protocols` went out on this connection.
    pub(crate) fn upgraded(&self) -> bool {
        self.upgraded.load(Ordering::Acquire)
    }

    /// Completes once the connection's IO is dropped (at once if it already was).
    pub(crate) async fn io_closed(&self) {
        self.closed.notified().await;
    }

    /// For the connection task: whether the relief asked it to close and the connection
    /// is still idle. Registers the task to be woken by the next relief (lock-free).
    pub(crate) fn relieved(&self, cx: &Context<'_>) -> bool {
        self.task.register(cx.waker());
        self.relief.swap(false, Ordering::AcqRel) && self.is_idle()
    }
}

// ===== ConnIo =====

/// Where the connection is, as [`ConnIo`] tracks it.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Accepted at the given instant; nothing received.
    Fresh { since: Instant },
    /// The previous response ended at the given instant; nothing of the next request.
    Idle { since: Instant },
    /// A request head started at `start`; `bytes` received so far, the last at `last`.
    Head {
        start: Instant,
        last: Instant,
        bytes: u64,
    },
    /// A request in flight: no read deadline here (the body timeout is the request
    /// body's).
    Busy,
}

pin_project! {
    /// The client's stream with the connection's deadlines; see the module docs.
    pub(crate) struct ConnIo<I> {
        #[pin]
        inner: I,
        state: Arc<ConnState>,
        limits: IoLimits,
        phase: Phase,
        completed_seen: u32,
        h2: Option<bool>,
        // How many bytes of `PRI` the reads so far matched (until `h2` is decided).
        preface_seen: u8,
        read_deadline: Option<Instant>,
        read_sleep: Pin<Box<Sleep>>,
        write_armed: bool,
        // Made at the first write that waits (a client that reads slowly): most
        // connections never need it.
        write_sleep: Option<Pin<Box<Sleep>>>,
        alive: Alive,
        // The bytes `first_bytes` read, handed to the next reads before the stream's.
        prefix: Bytes,
    }
}

/// Tells [`ConnState::io_closed`] when the connection's IO is dropped (hyper's, or a
/// tunnel's after an upgrade).
struct Alive(Arc<ConnState>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.closed.notify_one();
    }
}

impl<I> std::fmt::Debug for ConnIo<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnIo")
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl<I> ConnIo<I> {
    pub(crate) fn new(inner: I, state: Arc<ConnState>, limits: IoLimits) -> Self {
        let now = Instant::now();
        Self {
            inner,
            state: Arc::clone(&state),
            limits,
            phase: Phase::Fresh { since: now },
            completed_seen: 0,
            h2: None,
            preface_seen: 0,
            read_deadline: None,
            read_sleep: Box::pin(tokio::time::sleep_until(now)),
            write_armed: false,
            write_sleep: None,
            alive: Alive(state),
            prefix: Bytes::new(),
        }
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> ConnIo<I> {
    /// Reads the connection's first bytes, under the same deadlines as any read, until
    /// they tell HTTP/2 (its preface, prior knowledge) from HTTP/1.x (anything else), as
    /// hyper-util's `auto` builder decides; the bytes are read again by the next reads.
    /// `None` when the client closed before sending anything.
    pub(crate) async fn first_bytes(&mut self) -> io::Result<Option<bool>> {
        use tokio::io::AsyncReadExt;
        let mut first = BytesMut::with_capacity(FIRST_READ);
        let h2 = loop {
            if self.read_buf(&mut first).await? == 0 {
                if first.is_empty() {
                    return Ok(None);
                }
                break false;
            }
            let len = first.len().min(H2_PREFACE.len());
            if first[..len] != H2_PREFACE[..len] {
                break false;
            }
            if len == H2_PREFACE.len() {
                break true;
            }
        };
        self.prefix = first.freeze();
        // The whole preface decides, not the per-read guess of `received` (a `PRI`
        // request line is HTTP/1.1).
        self.h2 = Some(h2);
        Ok(Some(h2))
    }
}

fn timed_out(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what)
}

impl<I: AsyncRead + AsyncWrite> ConnIo<I> {
    /// Brings the phase up to date with the requests (dispatched, completed).
    fn refresh(self: Pin<&mut Self>) {
        let this = self.project();
        // A tunnel (after a 101) is never between requests: no read deadline here.
        if this.state.in_flight.load(Ordering::Acquire) > 0 || this.state.upgraded() {
            *this.phase = Phase::Busy;
            this.state.phase.store(BUSY, Ordering::Release);
            return;
        }
        let completed = this.state.completed.load(Ordering::Acquire);
        if completed != *this.completed_seen || matches!(this.phase, Phase::Busy) {
            *this.completed_seen = completed;
            *this.phase = Phase::Idle {
                since: Instant::now(),
            };
            this.state.phase.store(IDLE, Ordering::Release);
        }
    }

    /// Counts `n` bytes just received.
    fn received(self: Pin<&mut Self>, first: &[u8]) {
        let this = self.project();
        let n = first.len() as u64;
        if this.h2.is_none() && !first.is_empty() {
            // Decided once three bytes are in, whatever the reads that brought them (a
            // preface sent a byte at a time is still HTTP/2), or on a mismatch.
            let want = &H2_PREFACE_START[usize::from(*this.preface_seen)..];
            let len = first.len().min(want.len());
            if first[..len] != want[..len] {
                *this.h2 = Some(false);
            } else if len == want.len() {
                *this.h2 = Some(true);
            } else {
                // `len` < 3 here.
                *this.preface_seen += len as u8;
            }
        }
        let now = Instant::now();
        match this.phase {
            // HTTP/2 control frames (SETTINGS, PING, WINDOW_UPDATE) between streams do not
            // start a request: an h2 connection without a stream stays idle and closes
            // after the keep-alive timeout (the first stream within the header timeout).
            Phase::Fresh { .. } | Phase::Idle { .. } if *this.h2 == Some(true) => {}
            // mod_reqtimeout counts the first request's header time from the accept.
            Phase::Fresh { since } => {
                *this.phase = Phase::Head {
                    start: *since,
                    last: now,
                    bytes: n,
                };
                this.state.phase.store(HEAD, Ordering::Release);
            }
            Phase::Idle { .. } => {
                *this.phase = Phase::Head {
                    start: now,
                    last: now,
                    bytes: n,
                };
                this.state.phase.store(HEAD, Ordering::Release);
            }
            Phase::Head { last, bytes, .. } => {
                *last = now;
                *bytes = bytes.saturating_add(n);
            }
            Phase::Busy => {}
        }
    }

    /// When the current read must have completed, if ever.
    fn read_deadline(&self) -> Option<Instant> {
        let limits = &self.limits;
        let header_initial = if limits.header.is_off() {
            limits.timeout
        } else {
            limits.header.initial()
        };
        match self.phase {
            Phase::Fresh { since } => Some(since + header_initial),
            Phase::Idle { since } => Some(since + limits.keep_alive),
            Phase::Head { start, last, bytes } => match limits.header.deadline_after(bytes) {
                Some(after) => Some(start + after),
                // Without a header timeout, TimeOut bounds each read (Apache's core).
                None => Some(last + limits.timeout),
            },
            Phase::Busy => None,
        }
    }
}

impl<I: AsyncRead + AsyncWrite> AsyncRead for ConnIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            // Counted when first read.
            let prefix = self.as_mut().project().prefix;
            let n = prefix.len().min(buf.remaining());
            buf.put_slice(&prefix[..n]);
            if n == prefix.len() {
                // Frees the first read's buffer.
                *prefix = Bytes::new();
            } else {
                prefix.advance(n);
            }
            return Poll::Ready(Ok(()));
        }
        self.as_mut().refresh();
        let before = buf.filled().len();
        match self.as_mut().project().inner.poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let filled = &buf.filled()[before..];
                self.as_mut().received(filled);
                return Poll::Ready(Ok(()));
            }
            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
            Poll::Pending => {}
        }
        // The end of the last request in flight wakes this read to start the keep-alive
        // wait: hyper may not read again on its own until the client sends.
        self.state.reader.register(cx.waker());
        let Some(deadline) = self.read_deadline() else {
            return Poll::Pending;
        };
        let this = self.as_mut().project();
        if *this.read_deadline != Some(deadline) {
            *this.read_deadline = Some(deadline);
            this.read_sleep.as_mut().reset(deadline);
        }
        ready!(this.read_sleep.as_mut().poll(cx));
        match *this.phase {
            Phase::Head { .. } => {
                if *this.h2 != Some(true) {
                    // Best effort, as Apache does: the client that sent part of a head
                    // learns why the connection closes.
                    let _ = this.inner.poll_write(cx, REQUEST_TIMEOUT_408);
                }
                Poll::Ready(Err(timed_out("request header read timeout")))
            }
            Phase::Idle { .. } => Poll::Ready(Err(timed_out("keep-alive timeout"))),
            Phase::Fresh { .. } | Phase::Busy => {
                Poll::Ready(Err(timed_out("no request within the header timeout")))
            }
        }
    }
}

impl<I: AsyncWrite> ConnIo<I> {
    /// Applies `TimeOut` to a pending write: a client that stops reading its response is
    /// closed once a write has waited that long.
    fn write_deadline<T>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let this = self.project();
        if result.is_ready() {
            *this.write_armed = false;
            return result;
        }
        let deadline = Instant::now() + this.limits.timeout;
        let sleep = this
            .write_sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !*this.write_armed {
            *this.write_armed = true;
            sleep.as_mut().reset(deadline);
        }
        ready!(sleep.as_mut().poll(cx));
        Poll::Ready(Err(timed_out("write timeout (client not reading)")))
    }
}

impl<I: AsyncWrite> AsyncWrite for ConnIo<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = self.as_mut().project().inner.poll_write(cx, buf);
        self.write_deadline(cx, result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = self.as_mut().project().inner.poll_write_vectored(cx, bufs);
        self.write_deadline(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = self.as_mut().project().inner.poll_flush(cx);
        self.write_deadline(cx, result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = self.as_mut().project().inner.poll_shutdown(cx);
        self.write_deadline(cx, result)
    }
}

// ===== ConnService =====

/// Counts a request in flight from its dispatch until its response body ends or is
/// dropped; the `MaxKeepAliveRequests`-th response on an HTTP/1 connection says
/// `Connection: close`.
#[derive(Clone, Debug)]
pub(crate) struct ConnService<S> {
    inner: S,
    state: Arc<ConnState>,
    max_requests: u32,
}

impl<S> ConnService<S> {
    pub(crate) const fn new(inner: S, state: Arc<ConnState>, max_requests: u32) -> Self {
        Self {
            inner,
            state,
            max_requests,
        }
    }
}

/// A request in flight; dropped when its response has ended or been dropped.
#[derive(Debug)]
struct InFlight(Arc<ConnState>);

impl InFlight {
    fn start(state: &Arc<ConnState>) -> (Self, u32) {
        state.in_flight.fetch_add(1, Ordering::AcqRel);
        let n = state
            .dispatched
            .fetch_add(1, Ordering::AcqRel)
            .wrapping_add(1);
        (Self(Arc::clone(state)), n)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.completed.fetch_add(1, Ordering::AcqRel);
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.reader.wake();
        }
    }
}

impl<S, ReqBody, B> Service<Request<ReqBody>> for ConnService<S>
where
    S: Service<Request<ReqBody>, Response = Response<B>>,
{
    type Response = Response<ConnBody<B>>;
    type Error = S::Error;
    type Future = ConnFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let (guard, n) = InFlight::start(&self.state);
        let close = (self.max_requests != 0
            && n >= self.max_requests
            && request.version() <= Version::HTTP_11)
            .then(|| request.version());
        ConnFuture {
            inner: self.inner.call(request),
            guard: Some(guard),
            close,
            state: Arc::clone(&self.state),
        }
    }
}

pin_project! {
    /// [`ConnService`]'s future.
    pub(crate) struct ConnFuture<F> {
        #[pin]
        inner: F,
        guard: Option<InFlight>,
        // The request's version when this response must close the connection.
        close: Option<Version>,
        state: Arc<ConnState>,
    }
}

impl<F> std::fmt::Debug for ConnFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ConnFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ConnBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        let switching = response.status() == http::StatusCode::SWITCHING_PROTOCOLS;
        if switching {
            // hyper hands the connection to the upgrade once this is written.
            this.state.upgraded.store(true, Ordering::Release);
        }
        let guard = this.guard.take();
        let (mut parts, body) = response.into_parts();
        // A 101 keeps its `Connection: Upgrade`: the connection ends with the tunnel anyway.
        if let Some(version) = this.close.filter(|_| !switching) {
            parts
                .headers
                .insert(CONNECTION, HeaderValue::from_static("close"));
            if version == Version::HTTP_10 {
                // hyper appends `keep-alive` to the `Connection` of an HTTP/1.1 response to
                // an HTTP/1.0 keep-alive request ("close, keep-alive"), and such a client
                // keeps the connection; answered as HTTP/1.0, it is closed cleanly.
                parts.version = Version::HTTP_10;
            }
        }
        Poll::Ready(Ok(Response::from_parts(
            parts,
            ConnBody { inner: body, guard },
        )))
    }
}

pin_project! {
    /// A response body that ends its request's time in flight when it ends or is dropped.
    pub(crate) struct ConnBody<B> {
        #[pin]
        inner: B,
        guard: Option<InFlight>,
    }
}

impl<B> std::fmt::Debug for ConnBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnBody").finish_non_exhaustive()
    }
}

impl<B: Body> Body for ConnBody<B>
where
    B::Data: Buf,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if !matches!(frame, Some(Ok(_))) {
            this.guard.take();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
