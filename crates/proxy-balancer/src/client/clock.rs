use super::*;

/// The client's side of a request body on its way to a member, for the member's `timeout`:
/// whether the body waits for the client now, and when it last got something from it.
pub(super) struct BodyClock {
    pub(super) base: tokio::time::Instant,
    /// When the body last got a frame (or its end) from the client, in nanoseconds since
    /// `base`.
    pub(super) last: AtomicU64,
    /// The body waits for the client: the member is not the one keeping the request.
    pub(super) waiting: AtomicBool,
}

impl BodyClock {
    pub(super) fn new() -> Self {
        Self {
            base: tokio::time::Instant::now(),
            last: AtomicU64::new(0),
            waiting: AtomicBool::new(false),
        }
    }

    /// The body got a frame or its end from the client at `now`.
    pub(super) fn got(&self, now: tokio::time::Instant) {
        let nanos =
            u64::try_from(now.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX);
        // Before `waiting` is cleared: whoever sees it cleared sees this time.
        self.last.store(nanos, Ordering::Release);
        self.waiting.store(false, Ordering::Release);
    }

    /// Since when the member's time runs, as seen at `now`: `now` while the body waits for
    /// the client, else the last time the body got something from the client.
    pub(super) fn member_time_since(&self, now: tokio::time::Instant) -> tokio::time::Instant {
        if self.waiting.load(Ordering::Acquire) {
            return now;
        }
        self.base + Duration::from_nanos(self.last.load(Ordering::Acquire))
    }
}

pin_project! {
    /// A request body that tells its [`BodyClock`] when it waits for the client and when
    /// it gets something from it.
    pub(super) struct ClockedBody<B> {
        #[pin]
        pub(super) inner: B,
        pub(super) clock: Option<Arc<BodyClock>>,
        // `Proxy100Continue On`: nothing is read from the client before the member's 100.
        pub(super) gate: Option<Arc<ContinueGate>>,
        // How long the body still waits for that 100 ([`CONTINUE_WAIT`]); set when it
        // first waits.
        pub(super) continue_wait: Option<Pin<Box<tokio::time::Sleep>>>,
        // Whether the body goes without the 100 after [`CONTINUE_WAIT`]; with `ping` it
        // does not (the request fails at `ping` instead).
        pub(super) continue_anyway: bool,
    }
}

/// How long a body held for the member's `100 Continue` waits before it is sent anyway: a
/// member that ignores `Expect` (an HTTP/1.0 server, or one that waits for the body
/// before answering) would otherwise hold the request until its `timeout`. RFC 9110
/// §10.1.1 asks a client not to wait indefinitely; one second is curl's wait.
const CONTINUE_WAIT: Duration = Duration::from_secs(1);

impl<B: Body> Body for ClockedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        let this = self.project();
        if let Some(gate) = this.gate {
            match gate.state.load(Ordering::Acquire) {
                1 => {}
                // Answered without a 100: the body is not sent (the connection closes).
                2 => return Poll::Ready(None),
                _ => {
                    gate.waker.register(cx.waker());
                    match gate.state.load(Ordering::Acquire) {
                        1 => {}
                        2 => return Poll::Ready(None),
                        _ if !*this.continue_anyway => {
                            if let Some(clock) = this.clock {
                                // Waiting for the member, not for the client.
                                clock.got(tokio::time::Instant::now());
                            }
                            return Poll::Pending;
                        }
                        _ => {
                            let wait = this
                                .continue_wait
                                .get_or_insert_with(|| Box::pin(tokio::time::sleep(CONTINUE_WAIT)));
                            if wait.as_mut().poll(cx).is_ready() {
                                // No 100 in time: the body goes anyway.
                                gate.open();
                            } else {
                                if let Some(clock) = this.clock {
                                    // Waiting for the member, not for the client.
                                    clock.got(tokio::time::Instant::now());
                                }
                                return Poll::Pending;
                            }
                        }
                    }
                }
            }
        }
        let polled = this.inner.poll_frame(cx);
        if let Some(clock) = this.clock {
            if polled.is_pending() {
                clock.waiting.store(true, Ordering::Release);
            } else {
                clock.got(tokio::time::Instant::now());
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
