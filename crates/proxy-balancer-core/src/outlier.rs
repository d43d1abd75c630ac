//! Outlier ejection's state (beyond Apache, Envoy's model): the store-wide count of ejected
//! members and each member's counters. The rules are [`OutlierParams`]; the member's side
//! is [`MemberState::note_outcome`](crate::MemberState::note_outcome).

use std::time::Duration;

use crate::selection::OutlierParams;
use crate::sync::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// One answer in the packed window counter: answers in the high 32 bits, failures in the
/// low 32 bits, so that one addition counts both.
pub(crate) const ONE_ANSWER: u64 = 1 << 32;
/// The failures of a packed window counter.
pub(crate) const FAILURES_MASK: u64 = 0xffff_ffff;
/// Ejections in a row counted at most: the k-th ejection lasts k × `ejecttime` up to
/// `ejectmaxtime`, so past this the multiplier cannot grow a capped time anyway (an
/// `ejecttime` of 1 s reaches the longest `ejectmaxtime` accepted within it).
pub(crate) const MAX_STREAK: u32 = 1 << 16;

/// What every member state of one store shares for ejection and the panic threshold.
#[derive(Debug)]
pub(crate) struct Outliers {
    /// Members ejected now (flag `J` set), changed only together with a flag: a slot is
    /// reserved by a compare-and-swap below the limit before the flag is set.
    pub(crate) ejected: AtomicU64,
    /// Members of the current snapshot: the base of `ejectmax`.
    pub(crate) members: AtomicU64,
    /// Balanced picks made in panic (the panic threshold's counter).
    pub(crate) panics: AtomicU64,
}

impl Outliers {
    pub(crate) fn new(members: usize) -> Self {
        Self {
            ejected: AtomicU64::new(0),
            members: AtomicU64::new(u64::try_from(members).unwrap_or(u64::MAX)),
            panics: AtomicU64::new(0),
        }
    }

    pub(crate) fn set_members(&self, members: usize) {
        self.members.store(
            u64::try_from(members).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Reserves one ejection slot if fewer than `params.max_ejected(members)` are taken.
    pub(crate) fn reserve(&self, params: &OutlierParams) -> bool {
        let members = usize::try_from(self.members.load(Ordering::Relaxed)).unwrap_or(usize::MAX);
        let max = u64::try_from(params.max_ejected(members)).unwrap_or(u64::MAX);
        let mut taken = self.ejected.load(Ordering::Relaxed);
        loop {
            if taken >= max {
                return false;
            }
            match self.ejected.compare_exchange_weak(
                taken,
                taken + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => taken = now,
            }
        }
    }

    /// Gives back a slot (an ejection lifted, or a reservation that lost a race).
    pub(crate) fn release(&self) {
        // Never below zero: a slot is released only by whoever cleared the flag it was
        // reserved for.
        let _ = self
            .ejected
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    pub(crate) fn ejected(&self) -> u64 {
        self.ejected.load(Ordering::Acquire)
    }
}

/// One member's ejection counters (all atomics; written only when an answer is judged or
/// an ejection starts or ends, never by a pick).
#[derive(Debug)]
pub(crate) struct OutlierState {
    /// 5xx (or failures on the member's behalf) in a row.
    pub(crate) consecutive: AtomicU32,
    /// `answers << 32 | failures` in the current window.
    pub(crate) window: AtomicU64,
    /// When the current window began: nanoseconds since the epoch plus one; 0: none yet.
    pub(crate) window_start: AtomicU64,
    /// The current or last ejection's end: nanoseconds since the epoch plus one; 0: never.
    pub(crate) until: AtomicU64,
    /// Ejections in a row (the multiplier of `ejecttime`); one less for each window that
    /// ends with the member in balancing, as Envoy's.
    pub(crate) streak: AtomicU32,
    /// Ejections ever.
    pub(crate) ejections: AtomicU64,
    /// The member left its store: it is never ejected again (no pick would lift it, and
    /// its slot under `ejectmax` would be held for good).
    pub(crate) removed: AtomicBool,
}

impl OutlierState {
    pub(crate) fn new() -> Self {
        Self {
            consecutive: AtomicU32::new(0),
            window: AtomicU64::new(0),
            window_start: AtomicU64::new(0),
            until: AtomicU64::new(0),
            streak: AtomicU32::new(0),
            ejections: AtomicU64::new(0),
            removed: AtomicBool::new(false),
        }
    }
}

/// Why a member was ejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EjectReason {
    /// `ejectconsecutive`: this many failed answers in a row.
    Consecutive(u32),
    /// `ejectsuccessrate`: the window's answers and how many of them failed.
    SuccessRate {
        /// Answers judged in the window.
        answers: u32,
        /// Of them, failures.
        failures: u32,
    },
}

/// An ejection that just began ([`MemberState::note_outcome`](crate::MemberState::note_outcome)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Ejection {
    /// What ejected the member.
    pub reason: EjectReason,
    /// How long it is out: `ejecttime` × its ejections in a row, at most `ejectmaxtime`.
    pub duration: Duration,
    /// Its ejections in a row, this one included.
    pub streak: u32,
}

/// The length of the `streak`-th ejection in a row: `ejecttime × streak`, capped at
/// `ejectmaxtime` (or at `ejecttime`, should the maximum be shorter).
pub(crate) fn ejection_time(params: &OutlierParams, streak: u32) -> Duration {
    params
        .eject_time
        .checked_mul(streak.max(1))
        .unwrap_or(Duration::MAX)
        .min(params.max_eject_time.max(params.eject_time))
}

/// Whether a window of `answers` with `failures` among them is below `success_rate` %,
/// with at least `min_requests` answers.
pub(crate) fn below_rate(answers: u64, failures: u64, success_rate: u8, min_requests: u32) -> bool {
    answers >= u64::from(min_requests.max(1))
        && (answers.saturating_sub(failures)) * 100 < u64::from(success_rate) * answers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> OutlierParams {
        let mut p = OutlierParams::OFF;
        p.eject_time = Duration::from_secs(30);
        p.max_eject_time = Duration::from_secs(100);
        p
    }

    #[test]
    fn ejection_time_grows_and_caps() {
        let p = params();
        let secs = Duration::from_secs;
        assert_eq!(ejection_time(&p, 0), secs(30));
        assert_eq!(ejection_time(&p, 1), secs(30));
        assert_eq!(ejection_time(&p, 2), secs(60));
        assert_eq!(ejection_time(&p, 3), secs(90));
        assert_eq!(ejection_time(&p, 4), secs(100));
        assert_eq!(ejection_time(&p, u32::MAX), secs(100));
        let mut short_max = p;
        short_max.max_eject_time = secs(10);
        assert_eq!(
            ejection_time(&short_max, 3),
            secs(30),
            "never below ejecttime"
        );
    }

    #[test]
    fn rate_threshold_is_strict_and_needs_volume() {
        // 80 %: 16 of 20 good is not below, 15 of 20 is.
        assert!(!below_rate(20, 4, 80, 20));
        assert!(below_rate(20, 5, 80, 20));
        assert!(!below_rate(19, 19, 80, 20), "too few answers");
        assert!(below_rate(1, 1, 80, 0), "at least one answer");
        assert!(!below_rate(0, 0, 80, 0));
        assert!(!below_rate(10, 0, 100, 1));
        assert!(below_rate(10, 1, 100, 1));
        assert!(!below_rate(10, 10, 0, 1), "0 % never ejects");
    }

    #[test]
    fn reserve_stops_at_the_limit() {
        let o = Outliers::new(4);
        let mut p = params();
        p.max_ejected_percent = 50;
        assert!(o.reserve(&p));
        assert!(o.reserve(&p));
        assert!(!o.reserve(&p), "2 of 4 at 50 %");
        assert_eq!(o.ejected(), 2);
        o.release();
        assert_eq!(o.ejected(), 1);
        assert!(o.reserve(&p));
        o.release();
        o.release();
        o.release();
        assert_eq!(o.ejected(), 0, "never below zero");
        o.set_members(1);
        assert!(!o.reserve(&p), "half of one member is none");
    }

    #[test]
    fn packing_constants() {
        assert_eq!(ONE_ANSWER & FAILURES_MASK, 0);
        assert_eq!(ONE_ANSWER - 1, FAILURES_MASK);
        assert_eq!(MAX_STREAK, 65_536);
    }
}
