use super::*;

use crate::retry_window::BodyOutcome;

/// The boxed send of one request.
type Sending = Pin<Box<dyn Future<Output = Result<Response<MemberBody>, Error>> + Send>>;

/// The `ping` probe of one request: how long the member has to answer `100 Continue`.
pub(super) struct Ping {
    pub(super) limit: Duration,
    pub(super) gate: Arc<ContinueGate>,
    pub(super) sleep: Pin<Box<tokio::time::Sleep>>,
}

pin_project! {
    /// The future of [`HttpMember`].
    pub struct HttpMemberFuture {
        sending: Option<Sending>,
        // The member's `timeout`, pushed back while the request body waits for the client.
        #[pin]
        sleep: Option<tokio::time::Sleep>,
        timeout: Duration,
        clock: Option<Arc<BodyClock>>,
        ping: Option<Ping>,
        failed: Option<Error>,
    }
}

impl HttpMemberFuture {
    /// The send of one request, bounded by the member's `timeout` as `clock` says, and by
    /// `ping` for its `100 Continue`.
    pub(super) fn new(
        sending: Sending,
        timeout: Duration,
        clock: Option<Arc<BodyClock>>,
        ping: Option<Ping>,
    ) -> Self {
        Self {
            sending: Some(sending),
            sleep: Some(tokio::time::sleep(timeout)),
            timeout,
            clock,
            ping,
            failed: None,
        }
    }

    pub(super) const fn failed(error: Error) -> Self {
        Self {
            sending: None,
            sleep: None,
            timeout: Duration::ZERO,
            clock: None,
            ping: None,
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
            return Poll::Ready(result.map(|response| answer(response, *this.timeout)));
        }
        if let Some(ping) = this.ping {
            // `ping`: the member must say `100 Continue` in time, or the request goes
            // elsewhere (its body was not sent: it can be).
            if !ping.gate.opened() && ping.sleep.as_mut().poll(cx).is_ready() {
                *this.sending = None;
                return Poll::Ready(Err(Error::connect(format!(
                    "no 100 Continue from the member within ping ({:?})",
                    ping.limit
                ))));
            }
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

/// The member's answer as the client gets it: in the proxy's own HTTP version (the server
/// speaks its own: a member answering `HTTP/1.0` must not make an HTTP/1.1 client's answer
/// `HTTP/1.0`), its body's reads bounded by `timeout`, and a [`BodyOutcome`] for the
/// member's [`RetryWindow`](crate::retry_window::RetryWindow) when a body is to come.
fn answer(mut response: Response<MemberBody>, timeout: Duration) -> Response<MemberBody> {
    *response.version_mut() = http::Version::HTTP_11;
    if !response.body().is_end_stream() {
        let outcome = BodyOutcome::new();
        response
            .body_mut()
            .set_timeout(timeout, Some(outcome.clone()));
        response.extensions_mut().insert(outcome);
    }
    response
}
