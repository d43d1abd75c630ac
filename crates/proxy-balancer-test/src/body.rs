//! A request body that a test feeds frame by frame.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use tokio::sync::mpsc;

/// A body whose frames (data and trailers) the test sends through a channel, when it wants:
/// for bodies that arrive slowly, never end, or are read by several attempts. It ends when
/// the sender is dropped; [`ChannelBody::empty`] is empty from the start.
///
/// # Example
///
/// ```
/// use bytes::Bytes;
/// use http_body::Frame;
/// use http_body_util::BodyExt;
/// use proxy_balancer_test::ChannelBody;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (tx, body) = ChannelBody::new(4);
/// tx.send(Frame::data(Bytes::from("one"))).await.expect("the body is alive");
/// drop(tx);
/// assert_eq!(body.collect().await.expect("infallible").to_bytes(), "one");
/// # }
/// ```
#[derive(Debug)]
pub struct ChannelBody(Option<mpsc::Receiver<Frame<Bytes>>>);

impl ChannelBody {
    /// A body and the sender of its frames; `capacity` frames may wait unread.
    #[must_use]
    pub fn new(capacity: usize) -> (mpsc::Sender<Frame<Bytes>>, Self) {
        let (tx, rx) = mpsc::channel(capacity);
        (tx, Self(Some(rx)))
    }

    /// A body with no frame, at its end from the start.
    #[must_use]
    pub const fn empty() -> Self {
        Self(None)
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.0 {
            Some(rx) => rx.poll_recv(cx).map(|frame| frame.map(Ok)),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }
}
