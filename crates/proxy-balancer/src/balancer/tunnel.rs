//! A member's busy count kept past its response, for a tunnel (`101 Switching Protocols`).

use std::fmt;
use std::sync::Arc;

use proxy_balancer_core::{BusyGuard, Member};

/// Keeps a member's busy count for as long as a tunnel lasts: the WebSocket (or other
/// upgraded) connection a `101 Switching Protocols` opens outlives its response, which has
/// no body to carry the count.
///
/// A member service that answers 101 and goes on copying bytes puts one in the response's
/// extensions and keeps a clone for the tunnel (the built-in client does); the
/// [`Balancer`](super::Balancer) hands it the member's busy count instead of the response
/// body. The count is released when the tunnel calls [`finish`](Self::finish), or when the
/// last clone is dropped (a tunnel task that is cancelled or panics leaks nothing).
/// [`member`](Self::member) names the member, for counting the tunnel's bytes.
///
/// ```
/// use proxy_balancer::balancer::TunnelHold;
///
/// let hold = TunnelHold::new();
/// assert!(hold.member().is_none()); // no balancer has handed it a count yet
/// hold.finish();
/// ```
///
/// # Apache
///
/// mod_proxy_http runs the tunnel inside the request, so the member stays busy until it
/// ends (observed on Apache 2.4.71: `Busy` 1 in the balancer-manager during a WebSocket
/// tunnel, 0 after).
#[derive(Clone, Default)]
pub struct TunnelHold(Arc<parking_lot::Mutex<Hold>>);

#[derive(Default)]
struct Hold {
    guard: Option<BusyGuard>,
    finished: bool,
}

impl TunnelHold {
    /// A hold with no count yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps `guard` until the tunnel ends; a tunnel that already ended releases it at once.
    pub(crate) fn hold(&self, guard: BusyGuard) {
        let mut hold = self.0.lock();
        if !hold.finished {
            hold.guard = Some(guard);
        }
    }

    /// The member whose count is held, once the balancer has handed it over.
    #[must_use]
    pub fn member(&self) -> Option<Member> {
        self.0.lock().guard.as_ref().map(|g| g.member().clone())
    }

    /// The tunnel has ended: the busy count is released (and any handed over later too).
    pub fn finish(&self) {
        let guard = {
            let mut hold = self.0.lock();
            hold.finished = true;
            hold.guard.take()
        };
        drop(guard);
    }
}

impl fmt::Debug for TunnelHold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hold = self.0.lock();
        f.debug_struct("TunnelHold")
            .field("member", &hold.guard.as_ref().map(|g| g.member().url()))
            .field("finished", &hold.finished)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hold says whom it holds and whether the tunnel ended (logs and `Debug` of
    /// responses show it).
    #[test]
    fn a_hold_shows_its_state() {
        let hold = TunnelHold::new();
        assert_eq!(
            format!("{hold:?}"),
            "TunnelHold { member: None, finished: false }"
        );
        hold.finish();
        assert_eq!(
            format!("{hold:?}"),
            "TunnelHold { member: None, finished: true }"
        );
    }
}
