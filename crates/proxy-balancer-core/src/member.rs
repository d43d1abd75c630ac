//! Members: their identity, parameters and shared per-member state.

use std::fmt;
use std::time::{Duration, Instant};

use crate::flags::{AtomicFlags, StatusFlags};
use crate::outlier::{EjectReason, Ejection, OutlierState, Outliers};
use crate::params::MemberParams;
use crate::selection::OutlierParams;
use crate::sync::{Arc, AtomicI64, AtomicU32, AtomicU64, CachePadded, Ordering};

/// A member's identity within one balancer store. It stays the same when the member's
/// parameters change and is never reused for another member.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct MemberId(pub(crate) u32);

impl MemberId {
    /// The id as a number (its position in the order members were added).
    #[must_use]
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Bits of `busy` in the packed counter: 16 million requests in flight on one member. Past
/// that the count would carry into `elected`, which is a statistic only.
const BUSY_BITS: u32 = 24;
const BUSY_MASK: u64 = (1 << BUSY_BITS) - 1;
const ELECTED_ONE: u64 = 1 << BUSY_BITS;

/// [`InFlight::mode`]: the tracked count is exact (no untracked request can be in flight).
const TRUSTED: u64 = 1;
/// [`InFlight::mode`]: picks and requests count themselves in [`InFlight::count`].
const TRACK: u64 = 2;
/// [`InFlight::mode`]: one generation (bumped whenever tracking is switched).
const GENERATION_ONE: u64 = 4;
/// `usable_since`: the member became usable through a change that carries no time; the
/// first pick that weighs it stamps the time (a value `encode` reaches after 584 years).
pub(crate) const PENDING: u64 = u64::MAX;

/// Both flags, `TRACK | TRUSTED` (a literal: the bits are disjoint, so `|` and `^` give the
/// same value and no test could tell a mutation of the expression).
const TRACK_TRUSTED: u64 = 3;

/// The requests in flight on all the members of one store, in one word, for bybusyness: when
/// it is 0, every member's busy count is 0 and they all tie, so a pick is a byrequests round
/// over all candidates, which the precomputed cycle serves without reading every member.
///
/// Counting costs two atomic additions on a shared line per request, so it is on only while
/// the store's lbmethod is bybusyness (`TRACK`); a request begun while it was off is not
/// counted and releases nothing. After tracking is switched on, such a request may still be
/// in flight, so the count is not trusted (`TRUSTED` clear) until a pick sees every member's
/// busy count at 0 ([`InFlight::verify`]).
///
/// Orderings: a request's busy count is incremented (`SeqCst`) before it reads `mode`
/// (`SeqCst`), and the switch stores `mode` (`SeqCst`) before the snapshot that verifies is
/// published. So a request that read "not tracking" has its busy increment before the
/// verifier's reads in the single order of `SeqCst` operations: the verifier sees it, unless
/// it was released. The loom model `loom_counters::loom_inflight_trust` checks this; loom
/// treats `SeqCst` accesses as `AcqRel` (its README) but models `SeqCst` fences, so under
/// loom a fence stands beside each of these accesses (without them the model fails, as loom
/// warns it would).
#[derive(Debug)]
pub(crate) struct InFlight {
    /// Tracked requests in flight: incremented after a member's busy count and decremented
    /// before it, so it never counts a request that is not busy on its member.
    count: CachePadded<AtomicU64>,
    /// `generation × GENERATION_ONE | TRACK | TRUSTED`; read by every pick and request.
    mode: CachePadded<AtomicU64>,
}

impl InFlight {
    /// A store's count, with no request in flight yet (so trusted).
    pub(crate) fn new(track: bool) -> Self {
        Self {
            count: CachePadded(AtomicU64::new(0)),
            mode: CachePadded(AtomicU64::new(if track { TRACK_TRUSTED } else { 0 })),
        }
    }

    /// Switches counting on or off (writers only, serialised by the store). A switch starts
    /// a new generation, untrusted: requests begun before it may be uncounted.
    pub(crate) fn set_tracking(&self, track: bool) {
        let mode = self.mode.load(Ordering::SeqCst);
        if (mode & TRACK != 0) == track {
            return;
        }
        let next = (mode & !TRACK_TRUSTED).wrapping_add(GENERATION_ONE);
        self.mode
            .store(if track { next + TRACK } else { next }, Ordering::SeqCst);
        #[cfg(loom)]
        crate::sync::fence(Ordering::SeqCst);
    }

    /// Counts a request whose busy count was just incremented, if tracking; returns whether
    /// it was counted (its release must then be counted too).
    fn enter(&self) -> bool {
        #[cfg(loom)]
        crate::sync::fence(Ordering::SeqCst);
        if self.mode.load(Ordering::SeqCst) & TRACK == 0 {
            return false;
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Releases a counted request (before its busy count is decremented).
    fn leave(&self) {
        self.count.fetch_sub(1, Ordering::Release);
    }

    /// Requests counted in flight now.
    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// Whether the count is trusted: tracking is on and no uncounted request is in flight.
    pub(crate) fn is_trusted(&self) -> bool {
        self.mode.load(Ordering::Relaxed) & TRACK_TRUSTED == TRACK_TRUSTED
    }

    /// Trusts the count from now on if tracking is on and every one of `states` has no
    /// request in flight (then no uncounted request is left). Returns whether it is trusted.
    pub(crate) fn verify<'a>(&self, states: impl IntoIterator<Item = &'a MemberState>) -> bool {
        let mode = self.mode.load(Ordering::SeqCst);
        if mode & TRACK_TRUSTED != TRACK {
            return mode & TRACK_TRUSTED == TRACK_TRUSTED;
        }
        #[cfg(loom)]
        crate::sync::fence(Ordering::SeqCst);
        for state in states {
            if state.load.busy_elected.load(Ordering::SeqCst) & BUSY_MASK != 0 {
                return false;
            }
        }
        // Fails if tracking was switched meanwhile: that generation needs its own check.
        self.mode
            .compare_exchange(mode, mode + TRUSTED, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
    }
}

/// What a pick reads and writes of a member, together on one cache line (a pick that
/// writes `busy` has the line anyway, and a scan reads flags and counters in one go), on
/// lines of its own so that neighbouring members never share them.
#[derive(Debug, Default)]
struct Load {
    flags: AtomicFlags,
    /// `busy` in the low [`BUSY_BITS`] bits, `elected` above: a pick counts both with one
    /// atomic addition.
    busy_elected: AtomicU64,
    lbstatus: AtomicI64,
    // --- Peak-EWMA round-trip time (p2c-ewma): see `MemberState::observe_rtt`. ---
    /// The estimate in nanoseconds as of `rtt_at` (before the decay of reads).
    rtt: AtomicU64,
    /// When `rtt` was last updated: nanoseconds since `epoch` plus one; 0 means "no sample".
    rtt_at: AtomicU64,
    /// `1 / ewmadecay` in 1/ns, as `f64` bits (set by every snapshot of the store).
    rtt_decay_inv: AtomicU64,
    // --- end of peak-EWMA ---
    transferred: AtomicU64,
    read: AtomicU64,
    /// The last load report (heartbeat): `ready` in the high 32 bits, `busy` in the low.
    reported: AtomicU64,
    /// When `reported` was written: nanoseconds since `epoch` plus one; 0 means "never".
    reported_at: AtomicU64,
}

/// The per-member state that every snapshot shares: status flags and counters.
///
/// It lives in its own `Arc`, kept when the balancer is reconfigured, so changing a load
/// factor or adding a member never resets another member's counters nor loses a request in
/// flight. Every field is an atomic: reading and updating never takes a lock.
///
/// # Apache
///
/// The fields of `proxy_worker_shared` that change while serving: `status`, `lbstatus`,
/// `busy`, `elected`, `transferred`, `read`, `error_time`, `retries`.
pub struct MemberState {
    load: CachePadded<Load>,
    /// Nanoseconds since `epoch` plus one; 0 means "never in error".
    error_time: AtomicU64,
    retries: AtomicU64,
    /// Errors in a row (reset by a success), for the growing retry window.
    failures: AtomicU32,
    /// When the member last became usable (slow start): nanoseconds since `epoch` plus one;
    /// 0 means "usable since the store was made" (no ramp); [`PENDING`]: it became usable
    /// through a change that carries no time (the first pick that weighs it stamps it).
    pub(crate) usable_since: AtomicU64,
    /// Outlier ejection's counters (beyond Apache).
    pub(crate) outlier: OutlierState,
    /// The store's count of ejected members.
    pub(crate) outliers: Arc<Outliers>,
    epoch: Instant,
    /// The balancer's change counter, bumped on every flag change of any of its members, so
    /// that a pick can tell in one load whether the set of usable members may have changed.
    changes: Arc<AtomicU64>,
    /// The store's count of requests in flight (bybusyness); the loom models read it.
    pub(crate) inflight: Arc<InFlight>,
}

impl MemberState {
    #[cfg(test)]
    pub(crate) fn new(flags: StatusFlags, epoch: Instant) -> Self {
        Self::new_in(
            flags,
            epoch,
            Arc::new(AtomicU64::new(0)),
            Arc::new(InFlight::new(false)),
            Arc::new(Outliers::new(1)),
        )
    }

    /// A member's state in a store. `flags` never holds `J` (only an ejection sets it, and
    /// counts it).
    pub(crate) fn new_in(
        flags: StatusFlags,
        epoch: Instant,
        changes: Arc<AtomicU64>,
        inflight: Arc<InFlight>,
        outliers: Arc<Outliers>,
    ) -> Self {
        Self {
            load: CachePadded(Load {
                flags: AtomicFlags::new(flags.difference(StatusFlags::EJECTED)),
                rtt_decay_inv: AtomicU64::new(decay_inv_bits(crate::DEFAULT_EWMA_DECAY)),
                ..Load::default()
            }),
            error_time: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            usable_since: AtomicU64::new(0),
            outlier: OutlierState::new(),
            outliers,
            epoch,
            changes,
            inflight,
        }
    }

    /// A member added to a running store: its slow start ramps from the first pick that
    /// weighs it.
    pub(crate) fn added(self) -> Self {
        self.usable_since.store(PENDING, Ordering::Release);
        self
    }

    /// The current status flags.
    #[must_use]
    pub fn flags(&self) -> StatusFlags {
        self.load.flags.load()
    }

    /// Sets flags (as the manager's `w_status_X=1` does); returns the flags before.
    ///
    /// Setting [`StatusFlags::IN_ERROR`] this way records no error time, so the member is
    /// retried on its next selection, as an initial `status=+E` is in Apache.
    /// [`StatusFlags::EJECTED`] is left out: only an ejection sets it
    /// ([`Self::note_outcome`]), so that the store's count of ejected members stays exact.
    pub fn insert_flags(&self, flags: StatusFlags) -> StatusFlags {
        let flags = flags.difference(StatusFlags::EJECTED);
        let before = self.load.flags.insert(flags);
        self.note_change(before, before.union(flags));
        before
    }

    /// Clears flags (as the manager's `w_status_X=0` does); returns the flags before.
    ///
    /// Clearing [`StatusFlags::EJECTED`] ends an ejection early (the store's count of
    /// ejected members follows).
    pub fn remove_flags(&self, flags: StatusFlags) -> StatusFlags {
        let before = self.load.flags.remove(flags);
        if before.intersection(flags).contains(StatusFlags::EJECTED) {
            self.outliers.release();
        }
        self.note_change(before, before.difference(flags));
        before
    }

    /// Every flag change goes through here: it bumps the balancer's change counter and, on
    /// an unusable → usable transition, starts the member's slow start (stamped by the first
    /// pick that weighs it, as this change carries no time).
    fn note_change(&self, before: StatusFlags, after: StatusFlags) {
        if before != after {
            if !before.is_usable() && after.is_usable() {
                self.usable_since.store(PENDING, Ordering::Release);
            }
            self.changes.fetch_add(1, Ordering::Release);
        }
    }

    /// Whether the member may receive requests now (none of `D`, `S`, `E`, `C`). An `E`
    /// member whose retry window has passed is not usable until [`Self::try_recover`]
    /// clears the flag, as in Apache.
    #[must_use]
    pub fn is_usable(&self) -> bool {
        self.flags().is_usable()
    }

    /// Puts the member in error at `now` (Apache: `E` set, `error_time = now`), unless it
    /// ignores errors (`+I`). Returns whether it is now in error.
    ///
    /// A member whose retry failed is re-armed by this: its window starts again at `now`.
    pub fn mark_error(&self, now: Instant) -> bool {
        if self.flags().contains(StatusFlags::IGNORE_ERRORS) {
            return false;
        }
        self.error_time.store(self.encode(now), Ordering::Release);
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.load.flags.insert(StatusFlags::IN_ERROR);
        // Also when E was set already: the retry window moved.
        self.changes.fetch_add(1, Ordering::Release);
        true
    }

    /// Apache's `try_recover`: clears `E` when `retry` has passed since the error (or the
    /// member ignores errors), unless the member is stopped. Returns whether the member is
    /// usable afterwards. `D`, `S` and `C` are never cleared here.
    pub fn try_recover(&self, retry: Duration, now: Instant) -> bool {
        let flags = self.flags();
        if flags.contains(StatusFlags::IN_ERROR) && !flags.contains(StatusFlags::STOPPED) {
            let seen = self.error_time.load(Ordering::Acquire);
            let due = flags.contains(StatusFlags::IGNORE_ERRORS)
                || seen == 0
                || now > self.epoch + Duration::from_nanos(seen - 1) + retry;
            if due {
                self.clear_error();
                if self.is_usable() {
                    self.mark_usable_since(now);
                }
                // An error marked since `seen` was read (a request still in flight on the
                // member failed meanwhile) has its own window: put its `E` back.
                // `mark_error` stores the time before it sets `E`, so if our clear came
                // after that `E`, this load sees the new time. (Apache has the same race,
                // unsynchronised; found by the loom model `retry_races_a_new_error`.)
                if self.error_time.load(Ordering::Acquire) != seen {
                    self.insert_flags(StatusFlags::IN_ERROR);
                }
            }
        }
        self.is_usable()
    }

    /// Notes a request the member answered: its run of errors ends, so a growing retry
    /// window starts again from `retry`.
    pub fn note_success(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
    }

    /// Errors in a row since the member last answered.
    #[must_use]
    pub fn consecutive_failures(&self) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The retry window after the current run of errors: `retry` as Apache, or, with a
    /// `retry_max`, `retry` doubled for each error in a row after the first, up to
    /// `retry_max`.
    #[must_use]
    pub fn retry_window(&self, retry: Duration, retry_max: Option<Duration>) -> Duration {
        let Some(max) = retry_max else {
            return retry;
        };
        let doublings = self.consecutive_failures().saturating_sub(1).min(32);
        retry
            .checked_mul(1 << doublings)
            .unwrap_or(Duration::MAX)
            .min(max.max(retry))
    }

    /// Clears `E` now, whatever the retry window, counting a retry if it was set (as a
    /// passing health check or a forced recovery does in Apache).
    pub fn clear_error(&self) {
        let before = self.load.flags.remove(StatusFlags::IN_ERROR);
        if before.contains(StatusFlags::IN_ERROR) {
            self.retries.fetch_add(1, Ordering::Relaxed);
            self.note_change(before, before.difference(StatusFlags::IN_ERROR));
        }
    }

    /// When the member was last put in error, if ever.
    #[must_use]
    pub fn error_time(&self) -> Option<Instant> {
        match self.error_time.load(Ordering::Acquire) {
            0 => None,
            n => Some(self.epoch + Duration::from_nanos(n - 1)),
        }
    }

    /// The end of the retry window in nanoseconds since the epoch, for a member in error
    /// that may be retried: `Some(0)` when it may be retried at once, `None` when it is not
    /// in error or is stopped.
    pub(crate) fn retry_deadline_nanos(&self, retry: Duration) -> Option<u64> {
        let flags = self.flags();
        if !flags.contains(StatusFlags::IN_ERROR) || flags.contains(StatusFlags::STOPPED) {
            return None;
        }
        if flags.contains(StatusFlags::IGNORE_ERRORS) {
            return Some(0);
        }
        match self.error_time.load(Ordering::Acquire) {
            0 => Some(0),
            n => {
                let retry = u64::try_from(retry.as_nanos()).unwrap_or(u64::MAX);
                Some((n - 1).saturating_add(retry))
            }
        }
    }

    fn encode(&self, now: Instant) -> u64 {
        let nanos = now.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(nanos)
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    /// Requests assigned to the member and not finished yet.
    #[must_use]
    pub fn busy(&self) -> u64 {
        self.load.busy_elected.load(Ordering::Relaxed) & BUSY_MASK
    }

    /// Times the member was chosen (sticky or balanced).
    #[must_use]
    pub fn elected(&self) -> u64 {
        self.load.busy_elected.load(Ordering::Relaxed) >> BUSY_BITS
    }

    /// The byrequests/bybusyness score (Apache's `lbstatus`).
    ///
    /// With byrequests, steady traffic is served from a precomputed cycle whose picks are
    /// added here when the cycle ends (on a sticky pick, a flag change, a reconfiguration, or
    /// [`BalancerStore::settle`](crate::BalancerStore::settle)); settle first to read the
    /// value Apache would show.
    #[must_use]
    pub fn lbstatus(&self) -> i64 {
        self.load.lbstatus.load(Ordering::Relaxed)
    }

    /// Bytes sent to the member (request line, headers and body), for bytraffic.
    #[must_use]
    pub fn transferred(&self) -> u64 {
        self.load.transferred.load(Ordering::Relaxed)
    }

    /// Bytes read from the member (status line without CRLF, and body), for bytraffic.
    #[must_use]
    pub fn read(&self) -> u64 {
        self.load.read.load(Ordering::Relaxed)
    }

    /// Times `E` was cleared by a retry or a forced recovery.
    #[must_use]
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Counts bytes sent to the member.
    pub fn add_transferred(&self, bytes: u64) {
        self.load.transferred.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts bytes read from the member.
    pub fn add_read(&self, bytes: u64) {
        self.load.read.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Records a load report (Apache's heartbeat: `ready` idle slots, `busy` slots serving)
    /// received at `now`, replacing the previous one. Used by `lbmethod=heartbeat`
    /// ([`Heartbeat`](crate::lbmethod::Heartbeat)).
    ///
    /// # Apache
    ///
    /// What mod_heartmonitor stores for each origin server from its `v=1&ready=N&busy=M`
    /// datagrams.
    pub fn report_load(&self, ready: u32, busy: u32, now: Instant) {
        let packed = (u64::from(ready) << 32) | u64::from(busy);
        self.load.reported.store(packed, Ordering::Relaxed);
        self.load
            .reported_at
            .store(self.encode(now), Ordering::Release);
    }

    /// The last load report, if the member ever sent one
    /// ([`MemberState::report_load`]).
    #[must_use]
    pub fn load_report(&self) -> Option<LoadReport> {
        let at = self.load.reported_at.load(Ordering::Acquire);
        if at == 0 {
            return None;
        }
        let packed = self.load.reported.load(Ordering::Relaxed);
        Some(LoadReport {
            ready: (packed >> 32) as u32,
            busy: packed as u32,
            seen: self.epoch + Duration::from_nanos(at - 1),
        })
    }

    /// The `ready` count of a report at most `max_age` old at `now`, for the heartbeat scan
    /// (no `Instant` arithmetic beyond one subtraction).
    pub(crate) fn fresh_ready(&self, now: Instant, max_age: Duration) -> Option<u32> {
        let at = self.load.reported_at.load(Ordering::Acquire);
        if at == 0 {
            return None;
        }
        let now = self.encode(now);
        let max_age = u64::try_from(max_age.as_nanos()).unwrap_or(u64::MAX);
        if now.saturating_sub(at) > max_age {
            return None;
        }
        Some((self.load.reported.load(Ordering::Relaxed) >> 32) as u32)
    }

    /// When the member last became usable again (or was added to a running store), if
    /// that is what its slow start ramps from; `None` when it has been usable since the
    /// store was made, or became usable through a change that carries no time (a manager
    /// edit, a passing health check) and no pick weighed it since (the first that does
    /// stamps it: see [`Member::slow_start_share`]).
    #[must_use]
    pub fn usable_since(&self) -> Option<Instant> {
        match self.usable_since.load(Ordering::Acquire) {
            0 | PENDING => None,
            n => Some(self.epoch + Duration::from_nanos(n - 1)),
        }
    }

    /// Notes that the member became usable at `now`: its slow start ramps from here.
    pub(crate) fn mark_usable_since(&self, now: Instant) {
        self.usable_since.store(self.encode(now), Ordering::Release);
    }

    /// The share of its weight the member gets at `now` under a slow start of
    /// `slow_start_nanos` (0: none), in thousandths: 1000 once the ramp is over, else the
    /// elapsed part of the period, at least 1.
    pub(crate) fn ramp_permille(&self, slow_start_nanos: u64, now: Instant) -> u32 {
        if slow_start_nanos == 0 {
            return 1000;
        }
        let mut since = self.usable_since.load(Ordering::Acquire);
        if since == 0 {
            return 1000;
        }
        let now = self.encode(now);
        if since == PENDING {
            // The first pick to weigh the member since it became usable starts its ramp.
            since = match self.usable_since.compare_exchange(
                PENDING,
                now,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => now,
                Err(actual) => actual,
            };
        }
        let elapsed = now.saturating_sub(since);
        if elapsed >= slow_start_nanos {
            return 1000;
        }
        let permille = u128::from(elapsed) * 1000 / u128::from(slow_start_nanos);
        u32::try_from(permille).unwrap_or(1000).max(1)
    }

    // ===== outlier ejection (beyond Apache) =====

    /// Judges one answer for outlier ejection (Envoy's model, see
    /// [`OutlierParams`]): `failed` is a 5xx from the member, or a failure on its behalf
    /// (connect error, timeout, an answer cut short). Counts it in the member's run of
    /// failures and in the success-rate window, evaluates the window when it has ended,
    /// and ejects the member when a rule says so and fewer than
    /// [`OutlierParams::max_ejected`] of the store's members are ejected. Returns the
    /// ejection that began, if any (the caller logs it).
    ///
    /// Lock-free; nothing happens when no rule is on.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use proxy_balancer_core::{BalancerParams, BalancerStore, MemberParams, StatusFlags};
    ///
    /// let now = Instant::now();
    /// let mut params = BalancerParams::new("app");
    /// params.set("ejectconsecutive", "3")?;
    /// params.set("ejecttime", "10")?;
    /// let members = [MemberParams::new("http://a")?, MemberParams::new("http://b")?];
    /// let store = BalancerStore::new(params, members, now)?;
    /// let snapshot = store.snapshot();
    /// let (a, outlier) = (snapshot.members()[0].state(), &snapshot.params().outlier);
    /// assert!(a.note_outcome(true, outlier, now).is_none());
    /// assert!(a.note_outcome(true, outlier, now).is_none());
    /// let ejection = a.note_outcome(true, outlier, now).expect("3 failures in a row");
    /// assert_eq!(ejection.duration, Duration::from_secs(10));
    /// assert!(a.flags().contains(StatusFlags::EJECTED));
    /// assert_eq!(a.ejected_until(), Some(now + Duration::from_secs(10)));
    /// assert_eq!(store.ejected(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn note_outcome(
        &self,
        failed: bool,
        params: &OutlierParams,
        now: Instant,
    ) -> Option<Ejection> {
        if !params.is_enabled() {
            return None;
        }
        let o = &self.outlier;
        let mut reason = None;
        if failed {
            let run = o
                .consecutive
                .fetch_add(1, Ordering::Relaxed)
                .saturating_add(1);
            if params.consecutive_5xx.is_some_and(|n| run >= n) {
                reason = Some(EjectReason::Consecutive(run));
            }
        } else if o.consecutive.load(Ordering::Relaxed) != 0 {
            o.consecutive.store(0, Ordering::Relaxed);
        }
        o.window.fetch_add(
            crate::outlier::ONE_ANSWER + u64::from(failed),
            Ordering::Relaxed,
        );
        let now_n = self.encode(now);
        let start = o.window_start.load(Ordering::Acquire);
        let window = u64::try_from(params.window.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        if start == 0 {
            let _ = o
                .window_start
                .compare_exchange(0, now_n, Ordering::AcqRel, Ordering::Relaxed);
        } else if now_n.saturating_sub(start) >= window
            && o.window_start
                .compare_exchange(start, now_n, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            // This thread ended the window: it alone evaluates it.
            let counts = o.window.swap(0, Ordering::AcqRel);
            let (answers, failures) = (counts >> 32, counts & crate::outlier::FAILURES_MASK);
            // Envoy's decay: one ejection less in the multiplier per window the member
            // spent in balancing (an ejection restarts the window, so time out does not
            // count).
            let windows = (now_n - start) / window;
            let _ = o
                .streak
                .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |k| {
                    (k != 0).then(|| k.saturating_sub(u32::try_from(windows).unwrap_or(u32::MAX)))
                });
            if let Some(rate) = params.success_rate {
                if reason.is_none()
                    && crate::outlier::below_rate(answers, failures, rate, params.min_requests)
                {
                    reason = Some(EjectReason::SuccessRate {
                        answers: u32::try_from(answers).unwrap_or(u32::MAX),
                        failures: u32::try_from(failures).unwrap_or(u32::MAX),
                    });
                }
            }
        }
        self.eject(reason?, params, now)
    }

    /// Ejects the member for its next ejection time, if it is not ejected already and a
    /// slot is free under `ejectmax`.
    fn eject(&self, reason: EjectReason, params: &OutlierParams, now: Instant) -> Option<Ejection> {
        if self.flags().contains(StatusFlags::EJECTED)
            || self.outlier.removed.load(Ordering::Acquire)
            || !self.outliers.reserve(params)
        {
            return None;
        }
        let o = &self.outlier;
        let streak = o
            .streak
            .load(Ordering::Acquire)
            .saturating_add(1)
            .min(crate::outlier::MAX_STREAK);
        let duration = crate::outlier::ejection_time(params, streak);
        // The end first: a pick that sees the flag must see its end, never an old one.
        let until = now
            .checked_add(duration)
            .map_or(u64::MAX - 1, |t| self.encode(t));
        o.until.store(until, Ordering::Release);
        let before = self.load.flags.insert(StatusFlags::EJECTED);
        if before.contains(StatusFlags::EJECTED) {
            // Another thread ejected it meanwhile.
            self.outliers.release();
            return None;
        }
        // Removed from its store meanwhile (`left_store`): whichever of the two clears the
        // flag releases the slot. The flag's read-modify-writes order them: if the removal's
        // clear came first, our insert saw it, and with it `removed`.
        if o.removed.load(Ordering::Acquire) {
            self.remove_flags(StatusFlags::EJECTED);
            return None;
        }
        o.streak.store(streak, Ordering::Release);
        o.ejections.fetch_add(1, Ordering::Relaxed);
        // Judged afresh when it is back: a new run and a new window.
        o.consecutive.store(0, Ordering::Relaxed);
        o.window_start.store(0, Ordering::Release);
        o.window.store(0, Ordering::Relaxed);
        self.changes.fetch_add(1, Ordering::Release);
        Some(Ejection {
            reason,
            duration,
            streak,
        })
    }

    /// The member left its store (its requests in flight may still finish): it is never
    /// ejected again, and an ejection it has ends, freeing its slot under `ejectmax`.
    pub(crate) fn left_store(&self) {
        self.outlier.removed.store(true, Ordering::Release);
        self.remove_flags(StatusFlags::EJECTED);
    }

    /// Ends the member's ejection if its time has passed at `now` (lazily, at pick time);
    /// returns whether this call ended it. Its slow start, if any, ramps from `now`.
    pub(crate) fn lift_ejection(&self, now: Instant) -> bool {
        if !self.flags().contains(StatusFlags::EJECTED)
            || self.encode(now) < self.outlier.until.load(Ordering::Acquire)
        {
            return false;
        }
        let before = self.load.flags.remove(StatusFlags::EJECTED);
        if !before.contains(StatusFlags::EJECTED) {
            return false;
        }
        self.outliers.release();
        self.note_change(before, before.difference(StatusFlags::EJECTED));
        if self.is_usable() {
            self.mark_usable_since(now);
        }
        true
    }

    /// While the member is ejected ([`StatusFlags::EJECTED`]), when its ejection ends (it
    /// is lifted by the first pick after that); `None` when it is not ejected.
    #[must_use]
    pub fn ejected_until(&self) -> Option<Instant> {
        if !self.flags().contains(StatusFlags::EJECTED) {
            return None;
        }
        match self.outlier.until.load(Ordering::Acquire) {
            0 => None,
            n => Some(self.epoch + Duration::from_nanos(n - 1)),
        }
    }

    /// How many times the member was ejected (outlier ejection), in total.
    #[must_use]
    pub fn ejections(&self) -> u64 {
        self.outlier.ejections.load(Ordering::Relaxed)
    }

    /// The end of the member's ejection in nanoseconds since the epoch, minus one (the
    /// last instant it is still out), for the byrequests cycle's deadline; `None` when it
    /// is not ejected.
    pub(crate) fn ejection_deadline_nanos(&self) -> Option<u64> {
        if !self.flags().contains(StatusFlags::EJECTED) {
            return None;
        }
        Some(self.outlier.until.load(Ordering::Acquire).saturating_sub(2))
    }

    pub(crate) fn lbstatus_atomic(&self) -> &AtomicI64 {
        &self.load.lbstatus
    }

    pub(crate) fn set_lbstatus(&self, value: i64) {
        self.load.lbstatus.store(value, Ordering::Relaxed);
    }

    /// Returns whether the store counted the request in `inflight` (the store's, passed by
    /// the snapshot so that a pick reads no other line of this state). `SeqCst`: see
    /// [`InFlight`] (a locked addition on x86-64 either way).
    fn elect_and_busy_inc(&self, inflight: &InFlight) -> bool {
        debug_assert!(std::ptr::eq(inflight, &*self.inflight));
        self.load
            .busy_elected
            .fetch_add(ELECTED_ONE + 1, Ordering::SeqCst);
        inflight.enter()
    }

    fn busy_inc(&self) -> bool {
        self.load.busy_elected.fetch_add(1, Ordering::SeqCst);
        self.inflight.enter()
    }

    fn busy_dec(&self, counted: bool) {
        if counted {
            self.inflight.leave();
        }
        self.load.busy_elected.fetch_sub(1, Ordering::Release);
    }
}

// ===== Peak-EWMA round-trip time (lbmethod=p2c-ewma) =====

/// `1 / decay` in 1/ns as `f64` bits (a zero decay, refused by `ewmadecay=`, counts as 1 ns).
pub(crate) fn decay_inv_bits(decay: Duration) -> u64 {
    (1.0 / duration_nanos(decay).max(1.0)).to_bits()
}

/// A duration in nanoseconds, as `f64` (exact up to 2^53 ns, 104 days).
pub(crate) fn duration_nanos(d: Duration) -> f64 {
    d.as_secs() as f64 * 1e9 + f64::from(d.subsec_nanos())
}

/// Peak-EWMA's update: a sample above the estimate replaces it (the peak); otherwise the
/// estimate moves toward the sample, keeping `exp(-elapsed / decay)` of itself.
pub(crate) fn peak_ewma(estimate: f64, sample: f64, elapsed_nanos: f64, decay_inv: f64) -> f64 {
    if sample > estimate {
        return sample;
    }
    let keep = (-elapsed_nanos * decay_inv).exp();
    estimate * keep + sample * (1.0 - keep)
}

impl MemberState {
    /// Records a round-trip time measured at `now`: the time from the call of the member to
    /// its response head (the balancer records one for every request; an error records a
    /// penalty, see [`MemberState::observe_failure`]).
    ///
    /// Beyond Apache: peak-EWMA as tower's and linkerd's (after Finagle's). A sample above
    /// the estimate replaces it, so one slow answer is felt at once; a lower sample moves
    /// the estimate toward it, keeping `exp(-elapsed / ewmadecay)` of the old value, where
    /// `elapsed` is the time since the last sample. Between samples, the estimate decays
    /// toward zero as it is read ([`MemberState::rtt_estimate`]), so a member avoided for
    /// being slow is tried again once its estimate has faded.
    ///
    /// Lock-free: a compare-and-swap loop on the estimate, so two concurrent samples are
    /// both applied (a peak is never overwritten by a blend computed from the value before
    /// it); the time of the last sample is a second word, advanced with `fetch_max`. What
    /// a race can lose: a sample that races with the member's very first one may take its
    /// place instead of blending with it, and a sample that lands between another's
    /// estimate and time stores decays from a slightly older time (by the few nanoseconds
    /// between the two stores).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use proxy_balancer_core::{BalancerParams, BalancerStore, MemberParams};
    ///
    /// # #[expect(clippy::disallowed_methods, reason = "doc example")]
    /// let t0 = Instant::now();
    /// let store = BalancerStore::new(BalancerParams::new("b"), [MemberParams::new("http://a")?], t0)?;
    /// let snapshot = store.snapshot();
    /// let state = snapshot.members()[0].state();
    /// assert_eq!(state.rtt_estimate(t0), None, "no sample yet");
    /// state.observe_rtt(Duration::from_millis(10), t0);
    /// state.observe_rtt(Duration::from_millis(2), t0); // the peak stays
    /// assert_eq!(state.rtt_estimate(t0), Some(Duration::from_millis(10)));
    /// // Read 10 s later (`ewmadecay`'s default): e^-1 of it is left.
    /// let later = state.rtt_estimate(t0 + Duration::from_secs(10)).unwrap();
    /// assert_eq!(later.as_micros(), 3678);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn observe_rtt(&self, rtt: Duration, now: Instant) {
        let sample = duration_nanos(rtt);
        let at = self.encode(now);
        let decay_inv = f64::from_bits(self.load.rtt_decay_inv.load(Ordering::Relaxed));
        let mut current = self.load.rtt.load(Ordering::Acquire);
        loop {
            let then = self.load.rtt_at.load(Ordering::Acquire);
            let next = if then == 0 {
                sample
            } else {
                let elapsed = at.saturating_sub(then) as f64;
                peak_ewma(current as f64, sample, elapsed, decay_inv)
            };
            match self.load.rtt.compare_exchange_weak(
                current,
                next as u64,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        self.load.rtt_at.fetch_max(at, Ordering::Release);
    }

    /// Records a failed call that took `elapsed` (an error, a timeout, or an answer judged
    /// a failure) as a round-trip time no better than [`FAILURE_RTT_FLOOR`] and twice the
    /// current estimate: a member that fails fast (a refused connection, a quick 5xx) must
    /// not look fast to `p2c-ewma`.
    pub fn observe_failure(&self, elapsed: Duration, now: Instant) {
        let doubled = self
            .rtt_estimate(now)
            .map_or(Duration::ZERO, |e| e.saturating_mul(2));
        self.observe_rtt(elapsed.max(doubled).max(FAILURE_RTT_FLOOR), now);
    }

    /// The member's round-trip time estimate at `now` ([`MemberState::observe_rtt`]),
    /// decayed since the last sample; `None` before the first sample.
    #[must_use]
    pub fn rtt_estimate(&self, now: Instant) -> Option<Duration> {
        self.rtt_nanos(now).map(|n| Duration::from_nanos(n as u64))
    }

    /// [`MemberState::rtt_estimate`] in nanoseconds (the pick's cost reads this).
    pub(crate) fn rtt_nanos(&self, now: Instant) -> Option<f64> {
        let at = self.load.rtt_at.load(Ordering::Acquire);
        if at == 0 {
            return None;
        }
        let estimate = self.load.rtt.load(Ordering::Acquire) as f64;
        let elapsed = self.encode(now).saturating_sub(at);
        if elapsed == 0 {
            return Some(estimate);
        }
        let decay_inv = f64::from_bits(self.load.rtt_decay_inv.load(Ordering::Relaxed));
        Some(estimate * (-(elapsed as f64) * decay_inv).exp())
    }

    /// Sets the decay of the estimate (`ewmadecay`); every snapshot of the store sets it.
    pub(crate) fn set_rtt_decay(&self, decay: Duration) {
        self.load
            .rtt_decay_inv
            .store(decay_inv_bits(decay), Ordering::Relaxed);
    }
}

/// The least round-trip time a failed call records ([`MemberState::observe_failure`]):
/// 1 s, tower's default for a member it knows nothing about.
pub const FAILURE_RTT_FLOOR: Duration = Duration::from_secs(1);

// ===== end of peak-EWMA =====

impl fmt::Debug for MemberState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemberState")
            .field("flags", &self.flags())
            .field("lbstatus", &self.lbstatus())
            .field("busy", &self.busy())
            .field("elected", &self.elected())
            .field("transferred", &self.transferred())
            .field("read", &self.read())
            .field("error_time", &self.error_time())
            .field("retries", &self.retries())
            .field("load_report", &self.load_report())
            .finish()
    }
}

/// A member's last load report: what Apache's mod_heartmonitor keeps for an origin server.
///
/// See [`MemberState::report_load`] and [`MemberState::load_report`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadReport {
    ready: u32,
    busy: u32,
    seen: Instant,
}

impl LoadReport {
    /// Idle slots the member reported (mod_heartbeat's `ready`).
    #[must_use]
    pub const fn ready(&self) -> u32 {
        self.ready
    }

    /// Slots serving requests the member reported (mod_heartbeat's `busy`); not the
    /// balancer's own [`MemberState::busy`] count.
    #[must_use]
    pub const fn busy(&self) -> u32 {
        self.busy
    }

    /// When the report was received.
    #[must_use]
    pub const fn seen(&self) -> Instant {
        self.seen
    }

    /// How old the report is at `now` (zero if `now` is earlier).
    #[must_use]
    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.seen)
    }
}

/// What a scan reads of a member, kept in one contiguous array per snapshot so that a pick
/// touches one pointer per member instead of two.
#[derive(Debug)]
pub(crate) struct Hot {
    pub(crate) state: Arc<MemberState>,
    pub(crate) lbf: i64,
    pub(crate) id: MemberId,
    /// The member's `slowstart` in nanoseconds; 0 without one.
    pub(crate) slow_start: u64,
}

impl Hot {
    pub(crate) fn of(member: &Member) -> Self {
        Self {
            state: Arc::clone(&member.0.state),
            lbf: member.lbf(),
            id: member.id(),
            slow_start: member.0.params.slow_start.map_or(0, |d| {
                u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
            }),
        }
    }

    /// The share of its weight the member gets at `now` (slow start), in thousandths.
    pub(crate) fn ramp_permille(&self, now: Instant) -> u32 {
        self.state.ramp_permille(self.slow_start, now)
    }

    /// The load factor the member weighs with at `now`: `lbf`, or less while its slow start
    /// ramps (at least 1).
    pub(crate) fn effective_lbf(&self, now: Instant) -> i64 {
        if self.slow_start == 0 {
            return self.lbf;
        }
        scale(self.lbf, self.ramp_permille(now))
    }
}

/// A weight at `permille` thousandths of its value, at least 1 (HAProxy rounds a ramping
/// server's weight up, so that it always gets some traffic).
pub(crate) fn scale(weight: i64, permille: u32) -> i64 {
    if permille >= 1000 {
        return weight;
    }
    (weight * i64::from(permille) / 1000).max(1)
}

/// Aligned so that the `Arc`'s reference counts, updated by every pick that keeps the member,
/// are not on the lines that hold what picks read.
#[cfg_attr(any(target_arch = "x86_64", target_arch = "aarch64"), repr(align(128)))]
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    repr(align(64))
)]
struct MemberInner {
    id: MemberId,
    params: MemberParams,
    state: Arc<MemberState>,
}

/// One member of a balancer as a snapshot sees it: its id, its parameters (immutable in
/// this snapshot) and its shared [`MemberState`]. Cheap to clone.
#[derive(Clone)]
pub struct Member(Arc<MemberInner>);

impl Member {
    pub(crate) fn new(id: MemberId, params: MemberParams, state: Arc<MemberState>) -> Self {
        Self(Arc::new(MemberInner { id, params, state }))
    }

    /// The member's id.
    #[must_use]
    pub fn id(&self) -> MemberId {
        self.0.id
    }

    /// The member's parameters in this snapshot.
    #[must_use]
    pub fn params(&self) -> &MemberParams {
        &self.0.params
    }

    /// The member's shared state and counters.
    #[must_use]
    pub fn state(&self) -> &MemberState {
        &self.0.state
    }

    pub(crate) fn state_arc(&self) -> &Arc<MemberState> {
        &self.0.state
    }

    /// The member URL (Apache's worker name).
    #[must_use]
    pub fn url(&self) -> &str {
        self.0.params.url.as_str()
    }

    /// The member's `route`, if any.
    #[must_use]
    pub fn route(&self) -> Option<&str> {
        self.0.params.route.as_ref().map(crate::Route::as_str)
    }

    /// The ×100 load factor.
    #[must_use]
    pub fn lbf(&self) -> i64 {
        i64::from(self.0.params.load_factor.lbf())
    }

    /// The current status flags.
    #[must_use]
    pub fn flags(&self) -> StatusFlags {
        self.0.state.flags()
    }

    /// Whether the member may receive requests now.
    #[must_use]
    pub fn is_usable(&self) -> bool {
        self.0.state.is_usable()
    }

    /// [`MemberState::try_recover`] with this member's retry window (`retry`, grown up to
    /// `retry_max` if set); first, an outlier ejection whose time has passed at `now` is
    /// lifted (and logged).
    pub fn try_recover(&self, now: Instant) -> bool {
        if self.0.state.lift_ejection(now) {
            tracing::info!(
                member = self.url(),
                ejections = self.0.state.ejections(),
                "outlier ejection over: member back in balancing"
            );
        }
        self.0.state.try_recover(self.retry_window(), now)
    }

    /// The load factor the member weighs with at `now`: [`Self::lbf`], or less while its
    /// slow start ramps (at least 1).
    #[must_use]
    pub fn effective_lbf(&self, now: Instant) -> i64 {
        scale(
            self.lbf(),
            self.0.state.ramp_permille(self.slow_start_nanos(), now),
        )
    }

    fn slow_start_nanos(&self) -> u64 {
        self.0.params.slow_start.map_or(0, |d| {
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
        })
    }

    /// The member's current retry window: see [`MemberState::retry_window`].
    #[must_use]
    pub fn retry_window(&self) -> Duration {
        let params = &self.0.params;
        self.0.state.retry_window(params.retry, params.retry_max)
    }

    /// While the member's slow start ramps at `now`, the share of its weight it gets (0 to 1);
    /// `None` without a slow start or once the ramp is over.
    #[must_use]
    pub fn slow_start_share(&self, now: Instant) -> Option<f64> {
        match self.0.state.ramp_permille(self.slow_start_nanos(), now) {
            1000 => None,
            p => Some(f64::from(p) / 1000.0),
        }
    }

    /// [`MemberState::mark_error`].
    pub fn mark_error(&self, now: Instant) -> bool {
        self.0.state.mark_error(now)
    }

    /// Counts one more request in flight on this member until the guard is dropped.
    pub fn begin_request(&self) -> BusyGuard {
        let counted = self.0.state.busy_inc();
        BusyGuard {
            member: self.clone(),
            counted,
        }
    }

    /// Counts the member as elected and one more request in flight on it (also in
    /// `inflight`, its store's count, if that is tracking).
    pub(crate) fn elect(&self, inflight: &InFlight) -> BusyGuard {
        let counted = self.0.state.elect_and_busy_inc(inflight);
        BusyGuard {
            member: self.clone(),
            counted,
        }
    }
}

impl fmt::Debug for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Member")
            .field("id", &self.0.id)
            .field("url", &self.url())
            .field("route", &self.route())
            .field("flags", &self.flags())
            .finish_non_exhaustive()
    }
}

/// One request in flight on a member (Apache's `busy`). Dropping it releases the count, so
/// a request that is cancelled, fails or ends always gives it back.
#[must_use = "the request counts as busy only while the guard lives"]
pub struct BusyGuard {
    member: Member,
    /// Whether the store's [`InFlight`] count includes this request.
    counted: bool,
}

impl BusyGuard {
    /// The member the request is on.
    #[must_use]
    pub fn member(&self) -> &Member {
        &self.member
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.member.0.state.busy_dec(self.counted);
    }
}

impl fmt::Debug for BusyGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BusyGuard").field(&self.member.id()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[expect(clippy::disallowed_methods, reason = "tests need a starting instant")]
    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn retry_window() {
        let t0 = t0();
        let s = MemberState::new(StatusFlags::EMPTY, t0);
        let retry = Duration::from_secs(10);
        assert!(s.mark_error(t0 + Duration::from_secs(1)));
        assert!(!s.try_recover(retry, t0 + Duration::from_secs(5)));
        assert!(
            !s.try_recover(retry, t0 + Duration::from_secs(11)),
            "strictly after"
        );
        assert!(s.try_recover(retry, t0 + Duration::from_millis(11_001)));
        assert_eq!(s.retries(), 1);
        // a failed retry re-arms the window
        assert!(s.mark_error(t0 + Duration::from_secs(12)));
        assert!(!s.try_recover(retry, t0 + Duration::from_secs(20)));
        assert!(s.try_recover(retry, t0 + Duration::from_secs(23)));
        assert_eq!(s.retries(), 2);
    }

    #[test]
    fn growing_retry_window() {
        let t0 = t0();
        let s = MemberState::new(StatusFlags::EMPTY, t0);
        let (retry, max) = (Duration::from_secs(10), Some(Duration::from_secs(60)));
        let secs = Duration::from_secs;
        assert_eq!(
            s.retry_window(retry, None),
            secs(10),
            "Apache's fixed window by default"
        );
        let mut now = t0;
        for expected in [10, 20, 40, 60, 60] {
            s.mark_error(now);
            assert_eq!(s.retry_window(retry, max), secs(expected));
            assert!(!s.try_recover(s.retry_window(retry, max), now + secs(expected)));
            now += secs(expected) + Duration::from_millis(1);
            assert!(
                s.try_recover(s.retry_window(retry, max), now),
                "retried after {expected}s"
            );
        }
        assert_eq!(s.retry_window(retry, None), secs(10));
        s.note_success();
        assert_eq!(s.consecutive_failures(), 0);
        s.mark_error(now);
        assert_eq!(
            s.retry_window(retry, max),
            secs(10),
            "a success starts over"
        );
    }

    #[test]
    fn ignore_errors_and_stopped() {
        let t0 = t0();
        let i = MemberState::new(StatusFlags::IGNORE_ERRORS, t0);
        assert!(!i.mark_error(t0));
        assert!(i.is_usable());
        let s = MemberState::new(StatusFlags::STOPPED | StatusFlags::IN_ERROR, t0);
        assert!(!s.try_recover(Duration::ZERO, t0 + Duration::from_secs(100)));
        assert!(s.flags().contains(StatusFlags::IN_ERROR));
        // an initial +E has no error time: cleared by the first retry check
        let e = MemberState::new(StatusFlags::IN_ERROR, t0);
        assert!(e.try_recover(Duration::from_secs(60), t0));
    }

    fn member_in(inflight: &Arc<InFlight>, t0: Instant) -> Member {
        let state = MemberState::new_in(
            StatusFlags::EMPTY,
            t0,
            Arc::new(AtomicU64::new(0)),
            Arc::clone(inflight),
            Arc::new(Outliers::new(1)),
        );
        Member::new(
            MemberId(0),
            MemberParams::new("http://a").unwrap(),
            Arc::new(state),
        )
    }

    #[test]
    fn inflight_counts_only_while_tracking() {
        let t0 = t0();
        let inflight = Arc::new(InFlight::new(true));
        assert!(inflight.is_trusted(), "a new store has nothing in flight");
        let m = member_in(&inflight, t0);
        let g1 = m.elect(&inflight);
        let g2 = m.begin_request();
        assert_eq!(inflight.count(), 2);
        drop(g1);
        assert_eq!(inflight.count(), 1);
        // Switched off: new requests are not counted, counted ones still leave.
        inflight.set_tracking(false);
        assert!(!inflight.is_trusted());
        let g3 = m.elect(&inflight);
        let g4 = m.begin_request();
        assert_eq!(inflight.count(), 1);
        drop(g2);
        assert_eq!(inflight.count(), 0);
        drop(g3);
        assert_eq!(inflight.count(), 0, "an uncounted request releases nothing");
        assert!(!inflight.verify([m.state()]), "not tracking: never trusted");
        // Switched on with an uncounted request in flight: not trusted until it ends.
        inflight.set_tracking(true);
        assert!(!inflight.is_trusted());
        assert!(!inflight.verify([m.state()]));
        assert!(!inflight.is_trusted());
        drop(g4);
        assert_eq!(m.state().busy(), 0);
        assert!(inflight.verify([m.state()]));
        assert!(inflight.is_trusted());
        assert!(inflight.verify([m.state()]), "stays trusted");
    }

    #[test]
    fn inflight_switches_start_generations() {
        let inflight = InFlight::new(false);
        assert!(!inflight.is_trusted());
        inflight.set_tracking(false);
        assert_eq!(
            inflight.mode.load(Ordering::Relaxed),
            0,
            "no switch, no change"
        );
        inflight.set_tracking(true);
        assert_eq!(
            inflight.mode.load(Ordering::Relaxed),
            GENERATION_ONE | TRACK
        );
        assert!(inflight.verify([]));
        assert_eq!(
            inflight.mode.load(Ordering::Relaxed),
            GENERATION_ONE | TRACK | TRUSTED
        );
        inflight.set_tracking(true);
        assert!(inflight.is_trusted(), "no switch keeps the trust");
        inflight.set_tracking(false);
        assert_eq!(inflight.mode.load(Ordering::Relaxed), 2 * GENERATION_ONE);
        inflight.set_tracking(true);
        assert_eq!(
            inflight.mode.load(Ordering::Relaxed),
            (3 * GENERATION_ONE) | TRACK
        );
    }

    #[test]
    fn track_trusted_is_both_flags() {
        assert_eq!(TRACK_TRUSTED, TRACK | TRUSTED);
        assert_eq!(TRACK & TRUSTED, 0);
    }

    #[test]
    fn busy_guard_debug_names_its_member() {
        let m = Member::new(
            MemberId(3),
            MemberParams::new("http://a").unwrap(),
            Arc::new(MemberState::new(StatusFlags::EMPTY, t0())),
        );
        assert_eq!(format!("{:?}", m.begin_request()), "BusyGuard(MemberId(3))");
    }

    // ----- peak-EWMA -----

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn peak_ewma_math() {
        let inv = 1.0 / 10e9; // 10 s
        assert_eq!(
            peak_ewma(5.0, 7.0, 1e9, inv),
            7.0,
            "a higher sample is the peak"
        );
        assert_eq!(
            peak_ewma(5.0, 5.0, 1e9, inv),
            5.0,
            "an equal sample keeps it"
        );
        // An equal sample blends (it is no peak): told apart by the blend's rounding.
        let keep = (-7e9 * inv).exp();
        let blend = 0.3 * keep + 0.3 * (1.0 - keep);
        assert_ne!(blend, 0.3);
        assert_eq!(peak_ewma(0.3, 0.3, 7e9, inv), blend);
        assert_eq!(
            peak_ewma(8.0, 2.0, 0.0, inv),
            8.0,
            "no time passed: all kept"
        );
        // 10 s later e^-1 of the estimate is kept, the rest is the sample.
        let keep = (-1.0f64).exp();
        let got = peak_ewma(8.0, 2.0, 10e9, inv);
        assert!(
            (got - (8.0 * keep + 2.0 * (1.0 - keep))).abs() < 1e-9,
            "{got}"
        );
        let got = peak_ewma(8.0, 2.0, 5e9, inv);
        let keep = (-0.5f64).exp();
        assert!(
            (got - (8.0 * keep + 2.0 * (1.0 - keep))).abs() < 1e-9,
            "{got}"
        );
        assert!((duration_nanos(Duration::new(2, 5)) - 2_000_000_005.0).abs() < 0.5);
        assert_eq!(
            f64::from_bits(decay_inv_bits(Duration::from_secs(2))),
            0.5e-9
        );
        assert_eq!(f64::from_bits(decay_inv_bits(Duration::ZERO)), 1.0);
    }

    #[test]
    fn rtt_estimate_peaks_blends_and_decays() {
        let t0 = t0();
        let s = MemberState::new(StatusFlags::EMPTY, t0);
        assert_eq!(s.rtt_estimate(t0), None);
        assert_eq!(s.rtt_nanos(t0 + ms(5)), None);
        s.observe_rtt(ms(4), t0 + ms(1));
        assert_eq!(s.rtt_estimate(t0 + ms(1)), Some(ms(4)), "the first sample");
        s.observe_rtt(ms(10), t0 + ms(1));
        assert_eq!(s.rtt_estimate(t0 + ms(1)), Some(ms(10)), "the peak");
        s.observe_rtt(ms(2), t0 + ms(1));
        assert_eq!(s.rtt_estimate(t0 + ms(1)), Some(ms(10)), "no time: kept");
        // 10 s (the default decay) after the last sample: read decays toward zero.
        let t10 = t0 + ms(1) + Duration::from_secs(10);
        let read = s.rtt_estimate(t10).unwrap();
        assert_eq!(read.as_micros(), 3678, "{read:?}");
        // A lower sample then blends: e^-1 of 10 ms + (1 - e^-1) of 2 ms.
        s.observe_rtt(ms(2), t10);
        let got = s.rtt_estimate(t10).unwrap().as_micros();
        assert_eq!(got, 4943, "blend");
        // The decay is the store's `ewmadecay`.
        s.set_rtt_decay(Duration::from_secs(1));
        let got = s
            .rtt_estimate(t10 + Duration::from_secs(1))
            .unwrap()
            .as_micros();
        assert_eq!(got, 1818, "e^-1 of 4.943 ms");
        // Time never goes back: an older sample does not move the sample time back.
        s.observe_rtt(ms(1), t0);
        let got = s
            .rtt_estimate(t10 + Duration::from_secs(1))
            .unwrap()
            .as_micros();
        assert_eq!(got, 1818, "kept whole, decaying from the later time");
    }

    #[test]
    fn failures_never_look_fast() {
        let t0 = t0();
        let s = MemberState::new(StatusFlags::EMPTY, t0);
        s.observe_failure(Duration::from_micros(50), t0);
        assert_eq!(s.rtt_estimate(t0), Some(FAILURE_RTT_FLOOR), "the floor");
        s.observe_failure(ms(10), t0);
        assert_eq!(
            s.rtt_estimate(t0),
            Some(2 * FAILURE_RTT_FLOOR),
            "twice the estimate"
        );
        s.observe_failure(Duration::from_secs(5), t0);
        assert_eq!(
            s.rtt_estimate(t0),
            Some(Duration::from_secs(5)),
            "the time it took"
        );
        assert_eq!(FAILURE_RTT_FLOOR, Duration::from_secs(1));
    }

    #[test]
    fn concurrent_peaks_are_kept() {
        let t0 = t0();
        let s = Arc::new(MemberState::new(StatusFlags::EMPTY, t0));
        s.observe_rtt(ms(1), t0);
        let threads: Vec<_> = (0..4u64)
            .map(|i| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    for j in 0..1000u64 {
                        let rtt = if i == 0 && j == 500 { ms(50) } else { ms(1) };
                        s.observe_rtt(rtt, t0 + Duration::from_nanos(j));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Samples 1 µs apart at most keep nearly all of the 50 ms peak.
        let got = s.rtt_estimate(t0 + Duration::from_nanos(1000)).unwrap();
        assert!(got > ms(49), "{got:?}");
    }

    #[test]
    fn busy_guard_releases() {
        let t0 = t0();
        let m = Member::new(
            MemberId(0),
            MemberParams::new("http://a").unwrap(),
            Arc::new(MemberState::new(StatusFlags::EMPTY, t0)),
        );
        let g1 = m.begin_request();
        let g2 = m.begin_request();
        assert_eq!(m.state().busy(), 2);
        drop(g1);
        assert_eq!(g2.member().state().busy(), 1);
        drop(g2);
        assert_eq!(m.state().busy(), 0);
    }
}
