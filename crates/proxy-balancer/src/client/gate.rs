use super::*;

/// What one request carries for the answer: the forwarding layer's rules, the gate of an
/// `Expect: 100-continue` body, the clock of the member's `timeout`, and the plan of a
/// protocol upgrade sent to the member.
pub(super) struct Hop {
    pub(super) rules: Option<Arc<HopRules>>,
    pub(super) gate: Option<Arc<ContinueGate>>,
    /// The member's time (its `timeout`): stopped while the request waits for a free
    /// connection (`max`), as Apache's wait for one is not bounded by `timeout`.
    pub(super) clock: Option<Arc<BodyClock>>,
    pub(super) tunnel: Option<super::upgrade::Plan>,
}

/// Holds a request body back until the member's `100 Continue` (`Proxy100Continue On`):
/// the client's `100 Continue` goes out when its body is first read, so the client then
/// gets it when the member sent it, as through Apache.
#[derive(Default)]
pub(super) struct ContinueGate {
    /// 0: waiting; 1: open (the member said 100); 2: refused (it answered without it).
    pub(super) state: std::sync::atomic::AtomicU8,
    pub(super) waker: atomic_waker_lite::Waker,
}

impl ContinueGate {
    pub(super) fn open(&self) {
        let _ = self
            .state
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire);
        self.waker.wake();
    }

    pub(super) fn refuse(&self) {
        let _ = self
            .state
            .compare_exchange(0, 2, Ordering::AcqRel, Ordering::Acquire);
        self.waker.wake();
    }

    pub(super) fn opened(&self) -> bool {
        self.state.load(Ordering::Acquire) == 1
    }
}

/// A one-waker slot (a mutex: registration happens once per body, not per frame).
mod atomic_waker_lite {
    use parking_lot::Mutex;
    use std::task::Waker as TaskWaker;

    #[derive(Default)]
    pub(crate) struct Waker(Mutex<Option<TaskWaker>>);

    impl Waker {
        pub(crate) fn register(&self, waker: &TaskWaker) {
            *self.0.lock() = Some(waker.clone());
        }

        pub(crate) fn wake(&self) {
            if let Some(waker) = self.0.lock().take() {
                waker.wake();
            }
        }
    }
}
