//! Request and response bodies of the balancer: a request body that can be sent again,
//! and a response body that counts bytes and releases the member's busy count.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use proxy_balancer_core::{BusyGuard, Member};

use crate::error::BoxError;

struct Replay<B> {
    /// The client's body, still to be read.
    body: Option<Pin<Box<B>>>,
    /// What has been read so far, while it fits the limit.
    chunks: Vec<Bytes>,
    len: usize,
    limit: usize,
    /// Read more than `limit`: the body cannot be sent again.
    overflowed: bool,
    trailers: Option<HeaderMap>,
    ended: bool,
    /// The attempt whose copy may read; older copies (a failed attempt's, still held by a
    /// client) get nothing more.
    current: u64,
}

/// A request body that the balancer can send again to another member.
///
/// The first attempt reads the client's body and keeps what it reads, up to a limit; a later
/// attempt replays the kept bytes, then goes on reading. A body that was never read (the
/// connection failed first) can always be sent again; one read past the limit cannot.
pub struct ReplayBody<B> {
    /// `None` for a body that is empty from the start (most GETs): nothing to keep, no lock.
    shared: Option<Arc<parking_lot::Mutex<Replay<B>>>>,
    attempt: u64,
    /// Chunks of `shared.chunks` replayed so far by this copy.
    replayed: usize,
    trailers_sent: bool,
    hint: SizeHint,
    /// Counts bytes sent for bytraffic.
    member: Option<Member>,
}

impl<B> ReplayBody<B>
where
    B: Body,
{
    pub(crate) fn new(body: B, limit: usize) -> Self {
        let hint = body.size_hint();
        let ended = body.is_end_stream();
        if ended {
            return Self {
                shared: None,
                attempt: 0,
                replayed: 0,
                trailers_sent: false,
                hint,
                member: None,
            };
        }
        Self {
            shared: Some(Arc::new(parking_lot::Mutex::new(Replay {
                body: (!ended).then(|| Box::pin(body)),
                chunks: Vec::new(),
                len: 0,
                limit,
                overflowed: false,
                trailers: None,
                ended,
                current: 0,
            }))),
            attempt: 0,
            replayed: 0,
            trailers_sent: false,
            hint,
            member: None,
        }
    }
}

impl<B> ReplayBody<B> {
    /// A copy for the next attempt, counting what it sends to `member`; `None` if the body
    /// cannot be sent again.
    pub(crate) fn next_attempt(&self, member: &Member) -> Option<Self> {
        let Some(shared_arc) = &self.shared else {
            return Some(Self {
                shared: None,
                attempt: 0,
                replayed: 0,
                trailers_sent: false,
                hint: self.hint,
                member: None,
            });
        };
        let mut shared = shared_arc.lock();
        if shared.overflowed {
            return None;
        }
        shared.current += 1;
        Some(Self {
            shared: Some(Arc::clone(shared_arc)),
            attempt: shared.current,
            replayed: 0,
            trailers_sent: false,
            hint: self.hint,
            member: Some(member.clone()),
        })
    }

    /// Whether what was read so far is kept (the body can be sent again).
    pub(crate) fn can_replay(&self) -> bool {
        self.shared.as_ref().map_or(true, |s| !s.lock().overflowed)
    }
}

impl<B> Body for ReplayBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let Some(shared) = &this.shared else {
            return Poll::Ready(None);
        };
        let mut shared = shared.lock();
        if shared.current != this.attempt {
            return Poll::Ready(Some(Err(
                "request body taken over by a later attempt".into()
            )));
        }
        if let Some(chunk) = shared.chunks.get(this.replayed) {
            let chunk = chunk.clone();
            this.replayed += 1;
            count_sent(this.member.as_ref(), chunk.len());
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if shared.ended {
            if !this.trailers_sent {
                this.trailers_sent = true;
                if let Some(trailers) = shared.trailers.clone() {
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
            }
            return Poll::Ready(None);
        }
        let Some(body) = shared.body.as_mut() else {
            return Poll::Ready(None);
        };
        match body.as_mut().poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                shared.ended = true;
                shared.body = None;
                this.trailers_sent = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                shared.overflowed = true;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => {
                    let len = data.len();
                    if !shared.overflowed && shared.len + len <= shared.limit {
                        shared.len += len;
                        shared.chunks.push(data.clone());
                        this.replayed += 1;
                    } else {
                        shared.overflowed = true;
                        shared.chunks = Vec::new();
                    }
                    count_sent(this.member.as_ref(), len);
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Err(frame) => {
                    if let Some(trailers) = frame.trailers_ref() {
                        shared.trailers = Some(trailers.clone());
                    }
                    shared.ended = true;
                    shared.body = None;
                    this.trailers_sent = true;
                    Poll::Ready(Some(Ok(frame)))
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        let Some(shared) = &self.shared else {
            return true;
        };
        let shared = shared.lock();
        shared.current == self.attempt
            && shared.ended
            && self.replayed >= shared.chunks.len()
            && (self.trailers_sent || shared.trailers.is_none())
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

fn count_sent(member: Option<&Member>, len: usize) {
    if let Some(m) = member {
        m.state().add_transferred(len as u64);
    }
}

impl<B> fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayBody")
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// A member's response body on its way to the client. Counts the bytes read from the
    /// member (for bytraffic) and releases the member's busy count when the body ends,
    /// fails or is dropped, so a client that goes away never leaks it.
    pub struct BalancedBody<B> {
        #[pin]
        inner: B,
        busy: Option<BusyGuard>,
    }
}

impl<B> BalancedBody<B> {
    pub(crate) fn new(inner: B, busy: Option<BusyGuard>) -> Self {
        Self { inner, busy }
    }

    /// The member's body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// The member's body, unwrapped; the busy count is released.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B> Body for BalancedBody<B>
where
    B: Body,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        use bytes::Buf;
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(busy)) = (frame.data_ref(), this.busy.as_ref()) {
                    busy.member().state().add_read(data.remaining() as u64);
                }
            }
            Poll::Ready(None | Some(Err(_))) => {
                this.busy.take();
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> fmt::Debug for BalancedBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalancedBody")
            .field("member", &self.busy.as_ref().map(|b| b.member().url()))
            .finish_non_exhaustive()
    }
}
