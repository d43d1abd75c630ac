//! loom models of outlier ejection's store-wide count: ejections racing for the last slot
//! under `ejectmax`, and an ejection lifted twice at once (by the pick and by the manager),
//! never leave the count off the members flagged `J`.

use std::time::{Duration, Instant};

use loom::thread;

use crate::loom_support::{model, t0};
use crate::member::{InFlight, MemberState};
use crate::outlier::Outliers;
use crate::selection::OutlierParams;
use crate::sync::{Arc, AtomicU64};
use crate::StatusFlags;

fn states(n: usize, epoch: Instant) -> (Vec<Arc<MemberState>>, Arc<Outliers>) {
    let outliers = Arc::new(Outliers::new(n));
    let changes = Arc::new(AtomicU64::new(0));
    let inflight = Arc::new(InFlight::new(false));
    let states = (0..n)
        .map(|_| {
            Arc::new(MemberState::new_in(
                StatusFlags::EMPTY,
                epoch,
                Arc::clone(&changes),
                Arc::clone(&inflight),
                Arc::clone(&outliers),
            ))
        })
        .collect();
    (states, outliers)
}

/// One failure ejects, for 10 s; at most half of the members.
fn params() -> OutlierParams {
    let mut p = OutlierParams::OFF;
    p.consecutive_5xx = Some(1);
    p.eject_time = Duration::from_secs(10);
    p
}

fn flagged(states: &[Arc<MemberState>]) -> u64 {
    states
        .iter()
        .filter(|s| s.flags().contains(StatusFlags::EJECTED))
        .count() as u64
}

/// Two members of two fail at once (one slot under `ejectmax=50`) while the manager lifts
/// the first one's ejection: the count never exceeds the limit and ends equal to the flags.
#[test]
fn loom_ejections_race_for_the_last_slot() {
    let epoch = t0();
    model(2, move || {
        let (states, outliers) = states(2, epoch);
        let p = params();
        let other = {
            let (b, outliers) = (Arc::clone(&states[1]), Arc::clone(&outliers));
            thread::spawn(move || {
                let _ = b.note_outcome(true, &p, epoch);
                assert!(outliers.ejected() <= 1);
            })
        };
        let ejected_a = states[0].note_outcome(true, &p, epoch).is_some();
        assert!(outliers.ejected() <= 1);
        states[0].remove_flags(StatusFlags::EJECTED);
        other.join().expect("no panic");
        assert!(outliers.ejected() <= 1);
        assert_eq!(outliers.ejected(), flagged(&states));
        assert!(!states[0].flags().contains(StatusFlags::EJECTED));
        // The slot was never lost: if a did not get it, b did.
        assert!(ejected_a || states[1].flags().contains(StatusFlags::EJECTED));
    });
}

/// The pick lifts an ejection whose time has passed while the manager clears `J` on the
/// same member: one slot is released, not two (another member's stays counted).
#[test]
fn loom_a_lift_races_the_manager() {
    let epoch = t0();
    model(3, move || {
        let (states, outliers) = states(4, epoch);
        let p = params();
        assert!(states[0].note_outcome(true, &p, epoch).is_some());
        assert!(states[1].note_outcome(true, &p, epoch).is_some());
        let later = epoch + Duration::from_secs(11);
        let pick = {
            let a = Arc::clone(&states[0]);
            thread::spawn(move || a.lift_ejection(later))
        };
        let before = states[0].remove_flags(StatusFlags::EJECTED);
        let lifted = pick.join().expect("no panic");
        assert!(
            lifted != before.contains(StatusFlags::EJECTED),
            "exactly one of them ended it"
        );
        assert_eq!(outliers.ejected(), 1, "b is still out");
        assert_eq!(flagged(&states), 1);
    });
}

/// A member leaves its store while a request still in flight on it fails: however the two
/// interleave, it ends without `J` and its slot under `ejectmax` is free.
#[test]
fn loom_a_removal_races_an_ejection() {
    let epoch = t0();
    model(3, move || {
        let (states, outliers) = states(4, epoch);
        let p = params();
        let failing = {
            let a = Arc::clone(&states[0]);
            thread::spawn(move || {
                let _ = a.note_outcome(true, &p, epoch);
            })
        };
        states[0].left_store();
        failing.join().expect("no panic");
        assert!(!states[0].flags().contains(StatusFlags::EJECTED));
        assert_eq!(outliers.ejected(), 0);
    });
}
