//! byrequests without scanning: the cycle of picks, worked out once and then handed out.
//!
//! Apache's byrequests visits every candidate on every pick (N atomic additions). But as
//! long as the candidates and their load factors stay the same, its picks repeat with a
//! period of `sum(lbf) / gcd(lbf)`. A [`Schedule`] simulates that cycle once, from the
//! members' current `lbstatus`, and then a pick is one atomic increment of a cursor and one
//! table read, whatever the number of members.
//!
//! While a schedule is active the members' `lbstatus` atomics are left alone; the picks it
//! hands out are added to them when it is deactivated (before a sticky pick, a pick that
//! must skip members, a flag change or a reconfiguration). Since every update of `lbstatus`
//! is an addition, the order in which those additions land does not matter: no pick is ever
//! lost from the accounting, and a single thread sees exactly Apache's sequence.
//!
//! Concurrency: one word holds `ACTIVE | generation | cursor`. A pick takes a slot with one
//! `fetch_add`; a slot taken while `ACTIVE` is set is a pick of the active cycle, and the
//! deactivation (`fetch_and(!ACTIVE)`) learns exactly how many were taken. Rebuilding the
//! table follows the seqlock pattern (generation bumped, fence, table written, word
//! published), so a reader that raced a rebuild sees a changed generation and falls back to
//! the scan.
//!
//! One race costs a pick's worth of `lbstatus`: a pick that took a slot and then finds the
//! slot's member just became unusable (or the table rebuilt under it) falls back to the
//! scan, and its slot stays counted. It needs a flag change or a full rebuild within the
//! few nanoseconds of one pick, and skews the weights by one pick per occurrence, within
//! the "off by at most the number of concurrent pickers" that concurrent picks allow.
//!
//! Slow start (beyond Apache): a cycle has fixed weights, so none is built while a
//! candidate's weight ramps (`BalancerSnapshot::plain_candidates` declines); every ramp
//! starts with a flag change or a new snapshot, which ends the cycle it would skew. The
//! cycle's deadline is also the earliest end of an outlier ejection, so that the scan
//! lifts it on time; a set in panic (`panic=`) is never served from a cycle.
//!
//! The loom models in `loom_schedule.rs` check these protocols.

use crate::member::Hot;
use crate::sync::{fence, AtomicBool, AtomicU32, AtomicU64, CachePadded, Ordering};

const ACTIVE: u64 = 1 << 63;
const GEN_SHIFT: u32 = 48;
const GEN_MASK: u64 = 0x7fff << GEN_SHIFT;
const CURSOR_MASK: u64 = (1 << GEN_SHIFT) - 1;
/// A cursor this high is near the generation bits: stop and rebuild (2^47 picks is years
/// at a million requests a second, so this never costs anything in practice).
const CURSOR_LIMIT: u64 = 1 << 47;
/// Longest cycle kept: 4096 slots (16 KiB) covers integer load factors over hundreds of
/// members; longer cycles (many decimal factors) keep the scan.
pub(crate) const MAX_PERIOD: usize = 4096;
/// Upper bound on the work of one build (cycle length × candidates): a few milliseconds,
/// done once per stable member set, after enough scans to pay for it.
const MAX_BUILD_WORK: usize = 1 << 23;
/// Plain picks in a row, with no flag change or sticky pick between them, before a cycle
/// is built: a balancer whose members flap keeps scanning instead of rebuilding. A long
/// cycle needs a longer streak (see [`BUILD_COST_RATIO`]).
#[cfg(not(loom))]
const STREAK_TO_BUILD: u32 = 32;
/// Short under loom, so a model reaches the fast path in a few operations.
#[cfg(loom)]
const STREAK_TO_BUILD: u32 = 2;
/// A cycle of P picks over N candidates costs about P × N steps to build, P / 8 scans'
/// worth: it is built only after P / 8 scans in a row, so building never costs more than
/// an eighth of the scanning it replaces.
const BUILD_COST_RATIO: u32 = 8;

/// The candidates of the active cycle and their load factors, for the deactivation.
#[derive(Debug, Default)]
struct Cycle {
    /// (member index, lbf) in evaluation order.
    candidates: Vec<(u32, i64)>,
    total: i64,
    /// Scratch for the deactivation, one entry per member index (allocated with the cycle,
    /// so that ending a cycle on the pick path allocates nothing).
    counts: Vec<i64>,
}

/// A byrequests cycle for one snapshot. See the module docs.
pub(crate) struct Schedule {
    /// Written by every pick: on lines of its own, away from what picks only read.
    word: CachePadded<AtomicU64>,
    /// Read by every pick, written when a cycle starts or ends: whether one is active.
    active_hint: AtomicBool,
    /// Held by whoever builds or deactivates; a pick never waits for it.
    claim: AtomicBool,
    period: AtomicU32,
    changes_at_build: AtomicU64,
    /// Nanoseconds since the epoch after which a member in error may be retried.
    deadline: AtomicU64,
    /// Written by every scanning pick.
    streak: CachePadded<AtomicU32>,
    /// The streak a build needs (grows for long cycles; `u32::MAX`: never worth it),
    /// valid while the balancer's change counter is `needed_changes`.
    streak_needed: AtomicU32,
    needed_changes: AtomicU64,
    /// Set when the snapshot is replaced: no more cycles are built on it.
    retired: AtomicBool,
    order: Box<[AtomicU32]>,
    cycle: parking_lot::Mutex<Cycle>,
}

impl Schedule {
    pub(crate) fn new() -> Self {
        Self {
            word: CachePadded(AtomicU64::new(0)),
            active_hint: AtomicBool::new(false),
            claim: AtomicBool::new(false),
            period: AtomicU32::new(1),
            changes_at_build: AtomicU64::new(u64::MAX),
            deadline: AtomicU64::new(0),
            streak: CachePadded(AtomicU32::new(0)),
            streak_needed: AtomicU32::new(STREAK_TO_BUILD),
            needed_changes: AtomicU64::new(u64::MAX),
            retired: AtomicBool::new(false),
            order: (0..MAX_PERIOD).map(|_| AtomicU32::new(0)).collect(),
            cycle: parking_lot::Mutex::new(Cycle::default()),
        }
    }

    /// A pick from the active cycle, if there is one and nothing changed since it was
    /// built. `changes` is the balancer's change counter now, `now_nanos` the time.
    pub(crate) fn try_pick(&self, hot: &[Hot], changes: u64, now_nanos: u64) -> Option<u32> {
        if !self.active_hint.load(Ordering::Relaxed)
            || self.changes_at_build.load(Ordering::Relaxed) != changes
            || now_nanos > self.deadline.load(Ordering::Relaxed)
        {
            return None;
        }
        let w = self.word.fetch_add(1, Ordering::AcqRel);
        let cursor = w & CURSOR_MASK;
        if w & ACTIVE == 0 || cursor >= CURSOR_LIMIT {
            return None;
        }
        let period = u64::from(self.period.load(Ordering::Relaxed)).max(1);
        let slot = usize::try_from(cursor % period).ok()?;
        let index = self.order.get(slot)?.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if self.word.load(Ordering::Relaxed) & GEN_MASK != w & GEN_MASK {
            // Rebuilt while we read: this slot was counted as a pick of the old cycle.
            return None;
        }
        let flags = hot.get(usize::try_from(index).ok()?)?.state.flags();
        if flags.is_usable() && !flags.contains(crate::StatusFlags::DRAIN) {
            Some(index)
        } else {
            None
        }
    }

    /// Whether a cycle is active (a cheap check: the word itself decides).
    pub(crate) fn is_active(&self) -> bool {
        self.active_hint.load(Ordering::Relaxed)
    }

    /// Whether [`try_pick`](Self::try_pick) can serve picks now: the hint and the word
    /// both say the cycle is active (for tests, which must see the cycle really serve).
    #[cfg(test)]
    pub(crate) fn is_serving(&self) -> bool {
        self.is_active() && self.word.load(Ordering::Relaxed) & ACTIVE != 0
    }

    /// Restarts the count of plain picks: the caller is about to do something a cycle does
    /// not model (a sticky pick, a pick that skips members).
    pub(crate) fn reset_streak(&self) {
        if self.streak.load(Ordering::Relaxed) != 0 {
            self.streak.store(0, Ordering::Relaxed);
        }
    }

    /// Ends the active cycle, if any, and adds the picks it handed out to the members'
    /// `lbstatus`. If another thread holds the claim (building or deactivating), returns at
    /// once: the caller's scan then works on `lbstatus` as it is, which only changes the
    /// order of additions, never their sum.
    pub(crate) fn deactivate(&self, members: &[Hot]) {
        if !self.is_active() || !self.try_claim() {
            return;
        }
        self.deactivate_claimed(members);
        self.release_claim();
    }

    /// For a snapshot that is being replaced: deactivates the cycle for good, waiting for
    /// the claim if needed (a writer may wait; a pick never does).
    pub(crate) fn retire(&self, members: &[Hot]) {
        let mut spins = 0u32;
        while !self.try_claim() {
            spins = spins.saturating_add(1);
            if spins < 64 {
                crate::sync::spin_loop();
            } else {
                crate::sync::yield_now();
            }
        }
        self.retired.store(true, Ordering::Relaxed);
        self.deactivate_claimed(members);
        self.release_claim();
    }

    fn deactivate_claimed(&self, members: &[Hot]) {
        self.active_hint.store(false, Ordering::Relaxed);
        let w = self.word.fetch_and(!ACTIVE, Ordering::AcqRel);
        if w & ACTIVE != 0 {
            self.streak.store(0, Ordering::Relaxed);
            let period = u64::from(self.period.load(Ordering::Relaxed)).max(1);
            let taken = (w & CURSOR_MASK) % period;
            let mut cycle = self.cycle.lock();
            let Cycle {
                candidates,
                total,
                counts,
            } = &mut *cycle;
            // Picks of whole cycles add nothing (the build checked that a cycle returns to
            // its start); the partial cycle adds `taken × lbf − total × count` per member.
            counts.fill(0);
            for slot in &self.order[..usize::try_from(taken).unwrap_or(0)] {
                if let Some(count) = counts.get_mut(slot.load(Ordering::Relaxed) as usize) {
                    *count += 1;
                }
            }
            let taken = i64::try_from(taken).unwrap_or(0);
            for &(index, lbf) in candidates.iter() {
                if let (Some(m), Some(&count)) =
                    (members.get(index as usize), counts.get(index as usize))
                {
                    let delta = taken * lbf - *total * count;
                    m.state
                        .lbstatus_atomic()
                        .fetch_add(delta, Ordering::Relaxed);
                }
            }
        }
    }

    /// Counts a plain balanced pick made by scanning; after enough of them in a row, builds
    /// a cycle over `candidates` (member indices in evaluation order).
    ///
    /// `changes` must have been read before the candidates were worked out, so that a flag
    /// change during the build leaves the cycle unused. `deadline` is the earliest end of a
    /// retry window among the members in error.
    pub(crate) fn note_scan_pick(
        &self,
        members: &[Hot],
        candidates: impl FnOnce() -> Option<(Vec<u32>, u64)>,
        changes: u64,
    ) {
        let needed = if self.needed_changes.load(Ordering::Relaxed) == changes {
            self.streak_needed.load(Ordering::Relaxed)
        } else {
            STREAK_TO_BUILD
        };
        if needed == u32::MAX || self.is_active() {
            return;
        }
        let streak = self
            .streak
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if streak < needed {
            return;
        }
        if !self.try_claim() {
            return;
        }
        if !self.is_active() && !self.retired.load(Ordering::Relaxed) {
            if let Some((candidates, deadline)) = candidates() {
                self.build(members, &candidates, changes, deadline, streak);
            }
        }
        // Built or not, the next attempt needs a new streak: a build that failed (a start
        // state off the cycle, or one torn by concurrent scans) must not be retried on
        // every pick.
        self.streak.store(0, Ordering::Relaxed);
        self.release_claim();
    }

    fn build(&self, members: &[Hot], candidates: &[u32], changes: u64, deadline: u64, streak: u32) {
        let mut lbf = Vec::with_capacity(candidates.len());
        let mut state = Vec::with_capacity(candidates.len());
        for &i in candidates {
            let Some(m) = members.get(i as usize) else {
                return;
            };
            lbf.push(m.lbf);
            state.push(m.state.lbstatus());
        }
        let total: i64 = lbf.iter().sum();
        let gcd = lbf.iter().fold(0, |g, &l| gcd(g, l));
        if candidates.is_empty() || gcd <= 0 {
            return;
        }
        let Ok(period) = usize::try_from(total / gcd) else {
            return;
        };
        if period > MAX_PERIOD || period.saturating_mul(candidates.len()) > MAX_BUILD_WORK {
            // Never worth it for this set: stop trying until the set changes.
            self.set_needed(u32::MAX, changes);
            return;
        }
        let needed = u32::try_from(period)
            .unwrap_or(u32::MAX)
            .div_ceil(BUILD_COST_RATIO)
            .max(STREAK_TO_BUILD);
        if streak < needed {
            self.set_needed(needed, changes);
            return;
        }
        // Seqlock: a new generation, not active, before the table is rewritten.
        let generation = ((self.word.load(Ordering::Relaxed) & GEN_MASK) >> GEN_SHIFT) + 1;
        let gen_bits = (generation << GEN_SHIFT) & GEN_MASK;
        self.word.store(gen_bits, Ordering::Relaxed);
        fence(Ordering::Release);
        let start = state.clone();
        for slot in &self.order[..period] {
            // One byrequests decision, exactly as `ByRequests::choose`.
            let mut best = 0;
            for k in 0..state.len() {
                state[k] += lbf[k];
                if k > 0 && state[k] > state[best] {
                    best = k;
                }
            }
            state[best] -= total;
            slot.store(candidates[best], Ordering::Relaxed);
        }
        if state != start {
            // This start state does not lie on the cycle: keep scanning.
            return;
        }
        *self.cycle.lock() = Cycle {
            candidates: candidates.iter().copied().zip(lbf).collect(),
            total,
            counts: vec![0; members.len()],
        };
        self.period
            .store(u32::try_from(period).unwrap_or(1), Ordering::Relaxed);
        self.changes_at_build.store(changes, Ordering::Relaxed);
        self.deadline.store(deadline, Ordering::Relaxed);
        self.word.store(ACTIVE | gen_bits, Ordering::Release);
        self.active_hint.store(true, Ordering::Relaxed);
    }

    fn set_needed(&self, needed: u32, changes: u64) {
        self.streak_needed.store(needed, Ordering::Relaxed);
        self.needed_changes.store(changes, Ordering::Relaxed);
    }

    fn try_claim(&self) -> bool {
        self.claim
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    fn release_claim(&self) {
        self.claim.store(false, Ordering::Release);
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl std::fmt::Debug for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schedule")
            .field("active", &self.is_active())
            .field("period", &self.period.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
