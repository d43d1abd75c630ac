use super::*;

/// Returns a connection to its pool.
pub(super) type Release = Box<dyn FnOnce() + Send + Sync>;

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
    pub(super) fn member(inner: Incoming, release: Option<Release>, piece: Option<usize>) -> Self {
        Self {
            kind: BodyKind::Member {
                inner,
                release,
                piece,
                rest: bytes::Bytes::new(),
            },
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
