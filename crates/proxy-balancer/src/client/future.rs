use super::*;

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
    /// The send of one request, bounded by the member's `timeout` as `clock` says.
    pub(super) fn new(sending: Sending, timeout: Duration, clock: Option<Arc<BodyClock>>) -> Self {
        Self {
            sending: Some(sending),
            sleep: Some(tokio::time::sleep(timeout)),
            timeout,
            clock,
            failed: None,
        }
    }

    pub(super) const fn failed(error: Error) -> Self {
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
