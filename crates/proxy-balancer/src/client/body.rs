use super::*;

use crate::retry_window::BodyOutcome;

/// Returns a connection to its pool.
pub(super) type Release = Box<dyn FnOnce() + Send + Sync>;

/// The body of a member's answer through [`HttpMember`]: hyper's, which returns its
/// connection to the member's pool once read to the end (a body dropped before its end
/// closes the connection instead), passed on in pieces of at most `iobuffersize`; or the
/// proxy's own (`ProxyErrorOverride`).
///
/// Each wait for the member's next piece is bounded by the member's `timeout`, as Apache's
/// per-read socket timeout: a member that stalls longer ends the body with an
/// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) error, so the server aborts the
/// client's response (an HTTP/1.1 client sees it cut short, an HTTP/2 client a reset
/// stream, never a complete answer), the member's connection is closed and its busy count
/// released. Time the client takes to read is not counted: the wait runs only while the
/// body is asked for its next piece.
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
        /// `timeout`: the longest wait for the member's next frame; `None`: no limit.
        timeout: Option<Duration>,
        /// The wait in progress for the member's next frame (made at the first wait).
        wait: Option<Pin<Box<tokio::time::Sleep>>>,
        /// Whether `wait` runs for the current frame.
        waiting: bool,
        /// Where a stalled body is reported (the balancer's `failontimeout`).
        outcome: Option<BodyOutcome>,
        /// The body ended with an error: nothing more comes.
        failed: bool,
    },
    Own(Option<bytes::Bytes>),
}

impl MemberBody {
    pub(super) fn member(inner: Incoming, release: Option<Release>, piece: Option<usize>) -> Self {
        Self {
            kind: BodyKind::Member {
                inner,
                release,
                piece,
                rest: bytes::Bytes::new(),
                timeout: None,
                wait: None,
                waiting: false,
                outcome: None,
                failed: false,
            },
        }
    }

    /// Bounds each wait for the member's next frame by `timeout` (the member's), and
    /// reports a stalled body to `outcome`.
    pub(super) fn set_timeout(&mut self, limit: Duration, verdict: Option<BodyOutcome>) {
        if let BodyKind::Member {
            timeout, outcome, ..
        } = &mut self.kind
        {
            *timeout = Some(limit);
            *outcome = verdict;
        }
    }

    pub(super) fn own(body: bytes::Bytes) -> Self {
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
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Error>>> {
        // Every field is Unpin (hyper's `Incoming` is).
        let (inner, release, piece, rest, timeout, wait, waiting, outcome, failed) =
            match &mut self.get_mut().kind {
                BodyKind::Own(body) => {
                    return Poll::Ready(body.take().map(|b| Ok(http_body::Frame::data(b))))
                }
                BodyKind::Member {
                    inner,
                    release,
                    piece,
                    rest,
                    timeout,
                    wait,
                    waiting,
                    outcome,
                    failed,
                } => (
                    inner, release, *piece, rest, *timeout, wait, waiting, outcome, failed,
                ),
            };
        if *failed {
            return Poll::Ready(None);
        }
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
        let Poll::Ready(mut frame) = inner.as_mut().poll_frame(cx) else {
            // Waiting for the member: Apache's `timeout` bounds each read.
            let Some(limit) = timeout else {
                return Poll::Pending;
            };
            let deadline = tokio::time::Instant::now() + limit;
            let sleep = wait.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if !*waiting {
                sleep.as_mut().reset(deadline);
                *waiting = true;
            }
            ready!(sleep.as_mut().poll(cx));
            // Stalled: the connection cannot be reused (dropping it closes it).
            *failed = true;
            drop(release.take());
            let error = Error::timeout(format!(
                "the member sent no more of its body within its timeout ({limit:?})"
            ));
            let error = match outcome.take() {
                Some(outcome) => outcome.report(error),
                None => error,
            };
            tracing::error!(
                apache_id = "AH01110",
                member = error.member().unwrap_or(""),
                "error reading response: the member's body stalled past its timeout"
            );
            return Poll::Ready(Some(Err(error)));
        };
        *waiting = false;
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
            Some(Err(_)) => {
                *failed = true;
                drop(release.take());
            }
        }
        Poll::Ready(frame.map(|f| f.map_err(Error::upstream)))
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Member {
                inner,
                rest,
                failed,
                ..
            } => *failed || (rest.is_empty() && inner.is_end_stream()),
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
