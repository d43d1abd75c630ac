use std::time::Duration;

use crate::lbmethod::{ByRequests, Candidates, LbMethod};
use crate::member::{Hot, Member};
use crate::sync::Ordering;

/// `lbmethod=heartbeat`: favours the members that report the most idle capacity.
///
/// Members report their load ([`MemberState::report_load`](crate::MemberState::report_load)):
/// how many slots are `ready` (idle) and how many `busy`, as Apache's mod_heartbeat sends
/// them (`v=1&ready=75&busy=0`). The facade crate's `heartbeat` module receives those
/// datagrams and offers an API for other sources.
///
/// The rule, for the candidates of a pick (lbsets, spares and standbys are worked out
/// before, as for every method):
///
/// 1. Members whose last report is older than the age limit ([`Heartbeat::max_age`],
///    10 s by default) at the pick's [`Candidates::now`], or that never reported, are left
///    out.
/// 2. Members reporting `ready=0` are starting up (or full) and are left out too.
/// 3. Among the rest, a smooth weighted round robin whose weights are the reported `ready`
///    counts, on the byrequests `lbstatus` bookkeeping: each one's `lbstatus` grows by its
///    `ready`, the highest (the earlier on a tie) wins and gives back the total. A member
///    reporting three times the ready slots of another gets three times its picks,
///    interleaved.
/// 4. If no candidate is left, [`ByRequests`] chooses among all the candidates.
///
/// Beyond Apache: a member whose slow start (`slowstart=`) ramps weighs with that share of
/// its `ready` count (at least 1).
///
/// Sticky picks do no `lbstatus` accounting here: a member's reports already show the
/// sticky traffic it serves.
///
/// ```
/// use std::time::{Duration, Instant};
/// use proxy_balancer_core::lbmethod::Heartbeat;
/// use proxy_balancer_core::{BalancerParams, BalancerStore, LbMethodKind, MemberParams, PickRequest};
///
/// let mut params = BalancerParams::new("hb");
/// params.set("lbmethod", "heartbeat")?;
/// assert_eq!(params.lb_method, LbMethodKind::Heartbeat(Heartbeat::new()));
/// // or with another age limit:
/// params.lb_method = LbMethodKind::Heartbeat(Heartbeat::with_max_age(Duration::from_secs(3)));
///
/// let members = [MemberParams::new("http://10.0.0.1")?, MemberParams::new("http://10.0.0.2")?];
/// let now = Instant::now();
/// let store = BalancerStore::new(params, members, now)?;
/// let snapshot = store.snapshot();
/// snapshot.members()[0].state().report_load(1, 9, now);
/// snapshot.members()[1].state().report_load(3, 7, now);
///
/// let picks: Vec<_> = (0..4)
///     .map(|_| store.pick(&PickRequest::new(), now).map(|p| p.member().url().to_owned()))
///     .collect::<Result<_, _>>()?;
/// assert_eq!(picks.iter().filter(|u| *u == "http://10.0.0.2").count(), 3);
///
/// // Three seconds later the reports are stale: byrequests takes over.
/// let later = now + Duration::from_secs(4);
/// let picks: Vec<_> = (0..4)
///     .map(|_| store.pick(&PickRequest::new(), later).map(|p| p.member().url().to_owned()))
///     .collect::<Result<_, _>>()?;
/// assert_eq!(picks.iter().filter(|u| *u == "http://10.0.0.2").count(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Where we differ from Apache
///
/// mod_lbmethod_heartbeat draws a random number over the sum of the `ready` counts, so it
/// favours capacity on average but may pick any member with capacity at any time. Here the
/// same proportions are reached deterministically, without bursts, as byrequests does with
/// load factors. Apache ignores `loadfactor` with this method, and so do we.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    max_age: Duration,
}

impl Heartbeat {
    /// The default report age limit: 10 seconds, Apache's `HB_MAX_LASTSEEN` (mod_heartbeat
    /// sends a report every second, so this survives a few lost datagrams).
    pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(10);

    /// The heartbeat method with the default age limit ([`Heartbeat::DEFAULT_MAX_AGE`]).
    #[must_use]
    pub const fn new() -> Self {
        Self::with_max_age(Self::DEFAULT_MAX_AGE)
    }

    /// The heartbeat method ignoring reports older than `max_age`.
    #[must_use]
    pub const fn with_max_age(max_age: Duration) -> Self {
        Self { max_age }
    }

    /// Reports older than this are ignored.
    #[must_use]
    pub const fn max_age(&self) -> Duration {
        self.max_age
    }
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self::new()
    }
}

impl LbMethod for Heartbeat {
    fn name(&self) -> &str {
        "heartbeat"
    }

    fn choose<'a>(&self, candidates: Candidates<'a>) -> Option<&'a Member> {
        let now = candidates.now();
        let mut scan = candidates.clone();
        // A member whose slow start ramps weighs with that share of its `ready`.
        let weight = |hot: &Hot| {
            hot.state
                .fresh_ready(now, self.max_age)
                .filter(|&ready| ready > 0)
                .map(|ready| crate::member::scale(i64::from(ready), hot.ramp_permille(now)))
        };
        match weighted_round(&mut scan, weight) {
            Some(index) => Some(candidates.member(index)),
            None => ByRequests.choose(candidates),
        }
    }

    fn account_sticky(&self, _members: &[Member], _chosen: &Member) {}
}

/// One smooth weighted round among the candidates that `weight` gives a weight: each one's
/// `lbstatus` grows by its weight, the highest (the earliest on a tie) wins and gives back
/// the total. Returns the winner's position; `None` (and no `lbstatus` change) when no
/// candidate has a weight.
fn weighted_round(
    candidates: &mut Candidates<'_>,
    weight: impl Fn(&Hot) -> Option<i64>,
) -> Option<u32> {
    let mut best: Option<(u32, &Hot, i64)> = None;
    let mut total = 0i64;
    while let Some((index, hot)) = candidates.next_hot() {
        let Some(w) = weight(hot) else {
            continue;
        };
        let score = hot.state.lbstatus_atomic().fetch_add(w, Ordering::Relaxed) + w;
        total += w;
        if best.map_or(true, |(_, _, b)| score > b) {
            best = Some((index, hot, score));
        }
    }
    let (index, hot, _) = best?;
    hot.state
        .lbstatus_atomic()
        .fetch_sub(total, Ordering::Relaxed);
    Some(index)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::{
        BalancerParams, BalancerStore, LbMethodKind, MemberParams, PickRequest, StatusFlags,
    };

    #[expect(clippy::disallowed_methods, reason = "tests need a starting instant")]
    fn t0() -> Instant {
        Instant::now()
    }

    fn store(n: usize, method: Heartbeat, now: Instant) -> BalancerStore {
        let mut params = BalancerParams::new("hb");
        params.lb_method = LbMethodKind::Heartbeat(method);
        let members =
            (0..n).map(|i| MemberParams::new(&format!("http://10.0.0.{i}")).expect("valid url"));
        BalancerStore::new(params, members, now).expect("valid store")
    }

    /// The last character of each picked URL, `n` picks at `now`.
    fn picks(store: &BalancerStore, n: usize, now: Instant) -> String {
        (0..n)
            .map(|_| {
                let p = store.pick(&PickRequest::new(), now).expect("a member");
                p.member().url().chars().last().expect("non-empty")
            })
            .collect()
    }

    fn report(store: &BalancerStore, i: usize, ready: u32, busy: u32, now: Instant) {
        store.snapshot().members()[i]
            .state()
            .report_load(ready, busy, now);
    }

    #[test]
    fn weights_follow_ready() {
        let t0 = t0();
        let s = store(2, Heartbeat::new(), t0);
        report(&s, 0, 10, 0, t0);
        report(&s, 1, 30, 0, t0);
        let got = picks(&s, 400, t0);
        assert_eq!(got.matches('0').count(), 100);
        assert_eq!(got.matches('1').count(), 300);
        // smooth: never more than three of 1 in a row
        assert!(!got.contains("1111"), "{got}");
        // interleaved from the start
        assert_eq!(&got[..4], "1011");
    }

    #[test]
    fn weights_change_with_reports() {
        let t0 = t0();
        let s = store(2, Heartbeat::new(), t0);
        report(&s, 0, 5, 0, t0);
        report(&s, 1, 5, 0, t0);
        let got = picks(&s, 10, t0);
        assert_eq!(got.matches('0').count(), 5);
        report(&s, 0, 1, 9, t0);
        report(&s, 1, 4, 6, t0);
        let got = picks(&s, 50, t0);
        assert_eq!(got.matches('1').count(), 40, "{got}");
    }

    #[test]
    fn stale_and_missing_reports_ignored() {
        let t0 = t0();
        let s = store(3, Heartbeat::with_max_age(Duration::from_secs(5)), t0);
        report(&s, 0, 50, 0, t0);
        report(&s, 1, 1, 0, t0 + Duration::from_secs(4));
        // member 2 never reports
        let now = t0 + Duration::from_secs(6);
        assert_eq!(picks(&s, 5, now), "11111", "0 is stale, 2 never reported");
        // exactly max_age old is still fresh
        let s = store(2, Heartbeat::with_max_age(Duration::from_secs(5)), t0);
        report(&s, 0, 1, 0, t0);
        assert_eq!(picks(&s, 3, t0 + Duration::from_secs(5)), "000");
        assert_eq!(
            s.snapshot().members()[0]
                .state()
                .load_report()
                .map(|r| r.ready()),
            Some(1)
        );
    }

    #[test]
    fn ready_zero_skipped_while_others_have_capacity() {
        let t0 = t0();
        let s = store(3, Heartbeat::new(), t0);
        report(&s, 0, 0, 0, t0);
        report(&s, 1, 2, 8, t0);
        report(&s, 2, 0, 10, t0);
        assert_eq!(picks(&s, 6, t0), "111111");
    }

    #[test]
    fn falls_back_to_byrequests() {
        let t0 = t0();
        let s = store(3, Heartbeat::new(), t0);
        // nobody reported: byrequests over all three
        assert_eq!(picks(&s, 6, t0), "012012");
        // everyone full or starting: byrequests too
        for i in 0..3 {
            report(&s, i, 0, 5, t0);
        }
        assert_eq!(picks(&s, 3, t0), "012");
        // all stale
        for i in 0..3 {
            report(&s, i, 7, 0, t0);
        }
        let late = t0 + Heartbeat::DEFAULT_MAX_AGE + Duration::from_millis(1);
        assert_eq!(picks(&s, 3, late), "012");
    }

    #[test]
    fn never_picks_unusable_members() {
        let t0 = t0();
        let s = store(2, Heartbeat::new(), t0);
        report(&s, 0, 100, 0, t0);
        report(&s, 1, 1, 0, t0);
        s.snapshot().members()[0]
            .state()
            .insert_flags(StatusFlags::DISABLED);
        assert_eq!(picks(&s, 4, t0), "1111");
    }

    #[test]
    fn parse_lbmethod_heartbeat() {
        let mut p = BalancerParams::new("x");
        p.set("lbmethod", "HeartBeat").expect("supported");
        assert_eq!(p.lb_method, LbMethodKind::Heartbeat(Heartbeat::new()));
        assert_eq!(p.lb_method.name(), "heartbeat");
        assert_eq!(p.lb_method.to_string(), "heartbeat");
        assert_ne!(
            p.lb_method,
            LbMethodKind::Heartbeat(Heartbeat::with_max_age(Duration::from_secs(1)))
        );
        assert_ne!(p.lb_method, LbMethodKind::ByRequests);
    }

    #[test]
    fn report_round_trip() {
        let t0 = t0();
        let s = store(1, Heartbeat::new(), t0);
        let st = s.snapshot();
        let state = st.members()[0].state();
        assert_eq!(state.load_report(), None);
        state.report_load(u32::MAX, 7, t0 + Duration::from_secs(1));
        let r = state.load_report().expect("reported");
        assert_eq!((r.ready(), r.busy()), (u32::MAX, 7));
        assert_eq!(r.seen(), t0 + Duration::from_secs(1));
        assert_eq!(r.age(t0 + Duration::from_secs(3)), Duration::from_secs(2));
        assert_eq!(r.age(t0), Duration::ZERO);
    }
}
