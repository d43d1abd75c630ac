//! The power of two random choices (beyond Apache): `lbmethod=p2c` and `lbmethod=p2c-ewma`.
//!
//! A pick draws two distinct candidates uniformly at random and keeps the cheaper one
//! (Mitzenmacher's "power of two choices": the most loaded member's excess falls from
//! log n / log log n to log log n, for the cost of reading two members instead of all).
//!
//! - `p2c` weighs requests in flight per load factor
//!   (`busy / lbf`; `slowstart` applies as below);
//! - `p2c-ewma` weighs the member's peak-EWMA round-trip time times its requests in flight
//!   plus one, per load factor (`rtt × (busy + 1) / lbf`), as tower's `PeakEwma`
//!   and linkerd do. The round-trip time is
//!   [`MemberState::rtt_estimate`](crate::MemberState::rtt_estimate): the time from the
//!   member's call to its response head, recorded by the balancer for every request (a
//!   failed call records a penalty, so failing fast never looks fast), decaying with
//!   `ewmadecay` (default 10 s).
//!
//! # Slow start
//!
//! A drawn member whose `slowstart` ramps takes part in the comparison with a probability
//! equal to its ramp (a second draw below 1000 against
//! [`Member::slow_start_share`](crate::Member::slow_start_share) in thousandths); when it
//! stays out, the other member is chosen. So its share of picks grows with the ramp, from
//! almost none to its full share, on an idle balancer as under load. (Scaling the cost by
//! the ramp instead, as a weight, does not: with nothing in flight `p2c` ties a ramping
//! member with every idle one, a full share at once, and `p2c-ewma` charges it 1 ÷ ramp
//! times its peers' cost, no request at all until the ramp ends and then a full share:
//! the burst slow start exists to avoid.) Costs are compared with the plain load factor.
//!
//! # Ties
//!
//! The first member drawn wins a tie. The draw is uniform, so tied members (every member
//! while nothing is in flight, under `p2c`) share the picks evenly.
//!
//! # A member without a sample
//!
//! A member that has answered no request yet (new, or never chosen) has no estimate. tower
//! gives it a fixed default (1 s in its docs, linkerd 30 ms): too high and a new member
//! starves until the default decays (about 45 s from 1 s against 10 ms members), too low
//! (0) and it takes every request until its first answer. Here it is given the **other
//! candidate's** estimate, so the two are compared by requests in flight per load factor
//! alone: a new member takes its share by `p2c`'s rule until its first answer, whatever the
//! members' latency scale. When neither has a sample, the same holds.
//!
//! # Randomness
//!
//! A thread-local wyrand generator, seeded once per thread from std's `RandomState` (the
//! operating system's randomness): no lock, no allocation, no cache line shared between
//! threads. The draw itself is O(1) in the common case
//! ([`Candidates`](crate::lbmethod::Candidates) samples an entry of the set and checks it).

use std::cell::Cell;
use std::hash::{BuildHasher, RandomState};
use std::time::Instant;

use crate::lbmethod::{Candidates, LbMethod};
use crate::member::{Hot, Member};

/// `lbmethod=p2c` (beyond Apache): of two candidates drawn at random, the one with fewer
/// requests in flight per load factor; a tie goes to the first drawn.
///
/// ```
/// use std::time::Instant;
/// use proxy_balancer_core::{BalancerParams, BalancerStore, MemberParams, PickRequest};
///
/// let mut params = BalancerParams::new("b");
/// params.set("lbmethod", "p2c")?;
/// let members = ["http://a", "http://b", "http://c"].map(MemberParams::new);
/// # #[expect(clippy::disallowed_methods, reason = "doc example")]
/// let now = Instant::now();
/// let store = BalancerStore::new(params, members.into_iter().collect::<Result<Vec<_>, _>>()?, now)?;
/// // Two requests held on two members: the third goes to the idle one, whichever two
/// // are drawn (an idle member is less busy than either busy one).
/// let first = store.pick(&PickRequest::new(), now)?;
/// let second = store.pick(&PickRequest::new(), now)?;
/// assert_ne!(first.member().id(), second.member().id(), "the busy one loses");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct P2c;

impl LbMethod for P2c {
    fn name(&self) -> &str {
        "p2c"
    }

    fn choose<'a>(&self, candidates: Candidates<'a>) -> Option<&'a Member> {
        choose(&candidates, &mut random_below, Rule::Busy)
    }
}

/// `lbmethod=p2c-ewma` (beyond Apache): of two candidates drawn at random, the one with the
/// lower peak-EWMA round-trip time × (requests in flight + 1) per load factor; a
/// tie goes to the first drawn. The estimate, its decay and the default of a member without
/// one: `docs/selection.md`.
///
/// ```
/// use std::time::{Duration, Instant};
/// use proxy_balancer_core::{BalancerParams, BalancerStore, MemberParams, PickRequest};
///
/// let mut params = BalancerParams::new("b");
/// params.set("lbmethod", "p2c-ewma")?;
/// let members = [MemberParams::new("http://fast")?, MemberParams::new("http://slow")?];
/// # #[expect(clippy::disallowed_methods, reason = "doc example")]
/// let now = Instant::now();
/// let store = BalancerStore::new(params, members, now)?;
/// let snapshot = store.snapshot();
/// snapshot.members()[0].state().observe_rtt(Duration::from_millis(1), now);
/// snapshot.members()[1].state().observe_rtt(Duration::from_millis(10), now);
/// for _ in 0..5 {
///     // Both are drawn (there are two); each pick is released at once: 1 ms < 10 ms.
///     let picked = store.pick(&PickRequest::new(), now)?;
///     assert_eq!(picked.member().url(), "http://fast");
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct P2cEwma;

impl LbMethod for P2cEwma {
    fn name(&self) -> &str {
        "p2c-ewma"
    }

    fn choose<'a>(&self, candidates: Candidates<'a>) -> Option<&'a Member> {
        choose(&candidates, &mut random_below, Rule::Ewma)
    }
}

/// What the two candidates are compared by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    Busy,
    Ewma,
}

/// Draws two candidates with `random` and keeps the cheaper by `rule` (the first on a tie).
fn choose<'a>(
    candidates: &Candidates<'a>,
    random: &mut impl FnMut(u32) -> u32,
    rule: Rule,
) -> Option<&'a Member> {
    let (first, second) = candidates.sample_two(random)?;
    let Some(second) = second else {
        return Some(candidates.member(first));
    };
    let now = candidates.now();
    let (a, b) = (candidates.hot(first), candidates.hot(second));
    // Slow start: a ramping member takes part with a probability equal to its ramp.
    let second_wins = match (takes_part(a, now, random), takes_part(b, now, random)) {
        (true, false) => false,
        (false, true) => true,
        _ => match rule {
            Rule::Busy => busy_less(b, a, now),
            Rule::Ewma => ewma_less(b, a, now),
        },
    };
    Some(candidates.member(if second_wins { second } else { first }))
}

/// Whether a drawn member takes part in the comparison at `now`: always, unless its slow
/// start ramps; then with a probability equal to the ramp (one more draw).
fn takes_part(hot: &Hot, now: Instant, random: &mut impl FnMut(u32) -> u32) -> bool {
    let ramp = hot.ramp_permille(now);
    ramp >= 1000 || random(1000) < ramp
}

/// Whether `x` has strictly fewer requests in flight per load factor than `y`.
fn busy_less(x: &Hot, y: &Hot, now: Instant) -> bool {
    let (lx, ly) = (weight(x, now), weight(y, now));
    // busy < 2^24 and lbf ≤ 10^4: the products fit in a u64.
    x.state.busy() * ly < y.state.busy() * lx
}

/// Whether `x`'s peak-EWMA cost (rtt × (busy + 1) / lbf) is strictly lower than `y`'s. A
/// member without an estimate takes the other's (neither: equal).
fn ewma_less(x: &Hot, y: &Hot, now: Instant) -> bool {
    let (rx, ry) = match (x.state.rtt_nanos(now), y.state.rtt_nanos(now)) {
        (Some(rx), Some(ry)) => (rx, ry),
        (Some(r), None) | (None, Some(r)) => (r, r),
        (None, None) => (1.0, 1.0),
    };
    let cost_x = rx * (x.state.busy() + 1) as f64 * weight(y, now) as f64;
    let cost_y = ry * (y.state.busy() + 1) as f64 * weight(x, now) as f64;
    cost_x < cost_y
}

/// The load factor (slow start applies through [`takes_part`]), at least 1.
fn weight(hot: &Hot, _now: Instant) -> u64 {
    u64::try_from(hot.lbf).unwrap_or(1).max(1)
}

// ----- the generator -----

thread_local! {
    /// wyrand's state; 0 until the thread's first draw seeds it.
    static STATE: Cell<u64> = const { Cell::new(0) };
}

/// A number below `n` (`n` ≥ 1) from the thread's generator.
fn random_below(n: u32) -> u32 {
    STATE.with(|cell| {
        let mut state = cell.get();
        if state == 0 {
            // std's RandomState keys come from the OS once per thread; never 0.
            state = RandomState::new().hash_one(0x5eed_u64).max(1);
        }
        let r = wyrand(&mut state);
        cell.set(state);
        below(r, n)
    })
}

/// One step of wyrand (Wang Yi's generator: one addition and one 64×64→128 multiplication;
/// passes BigCrush and PractRand).
fn wyrand(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0xa076_1d64_78bd_642f);
    let t = u128::from(*state) * u128::from(*state ^ 0xe703_7ed1_a0b4_28db);
    ((t >> 64) as u64) ^ (t as u64)
}

/// Maps 64 random bits to a number below `n` by multiplication (Lemire): the top 32 bits
/// times `n`, shifted down; the bias is below n / 2^32.
fn below(r: u64, n: u32) -> u32 {
    (((r >> 32) * u64::from(n)) >> 32) as u32
}

#[cfg(test)]
mod tests;
