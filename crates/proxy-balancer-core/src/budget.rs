//! The retry budget of `retry_idempotent` (beyond Apache): a token bucket over a sliding
//! window, as tower's `TpsBudget` and finagle's `RetryBudget`, kept lock-free.

use std::fmt;
use std::time::{Duration, Instant};

use crate::selection::RetryBudgetParams;
use crate::sync::{AtomicI64, AtomicU64, Ordering};

/// The window is cut into this many slots; a deposit leaves the budget when its slot is
/// this many slots old (so the window slides in steps of a tenth of itself, as tower's).
const SLOTS: u32 = 10;

/// What one retry costs, in hundredths of a retry (a deposit of `percent` hundredths per
/// request allows `percent` retries per 100 requests).
const RETRY_COST: i64 = 100;

/// The retry budget of one balancer: every request deposits a share of a retry, every
/// retry withdraws a whole one, and a retry with nothing left to withdraw is refused.
///
/// Over any window (`retrybudgetwindow`, default 10 s) the retries allowed are at most
/// `percent` % of the requests deposited in it plus `min_per_sec` × the window's seconds
/// (tower's `TpsBudget` with the same parameters allows the same). A deposit counts for
/// one window, in steps of a tenth of it.
///
/// Every operation is a few atomic operations on a ring of ten slots, each holding a slot
/// number and the hundredths of a retry deposited (less those withdrawn) in it; a slot is
/// reused when its number is a window old. Nothing locks and nothing allocates; the time
/// is the caller's `now`. Two withdrawals racing for the last retry may both succeed (as in
/// tower's): the budget can be overdrawn by the number of concurrent withdrawals, never
/// more.
///
/// [`BalancerStore::retry_budget`](crate::BalancerStore::retry_budget) holds one per
/// balancer and follows its `retrybudget*` parameters; the counters of retries allowed and
/// refused live across changes of the parameters.
///
/// ```
/// use std::time::{Duration, Instant};
/// use proxy_balancer_core::{RetryBudget, RetryBudgetParams};
///
/// let start = Instant::now();
/// // 20 % of the requests, and no floor.
/// let mut params = RetryBudgetParams::DEFAULT;
/// params.min_per_sec = 0;
/// let budget = RetryBudget::new(Some(params), start);
/// assert!(!budget.withdraw(start)); // nothing deposited yet
/// for _ in 0..10 {
///     budget.deposit(start);
/// }
/// assert!(budget.withdraw(start)); // 10 requests: 2 retries
/// assert!(budget.withdraw(start));
/// assert!(!budget.withdraw(start));
/// assert_eq!((budget.allowed(), budget.refused()), (2, 2));
///
/// // A window later the deposits are gone.
/// for _ in 0..5 {
///     budget.deposit(start);
/// }
/// assert!(!budget.withdraw(start + Duration::from_secs(10)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Apache
///
/// Beyond Apache: mod_proxy_balancer's retries are bounded by `maxattempts` per request
/// only, so a brown-out multiplies the load on the members still answering. The budget
/// bounds only our `retry_idempotent` retries; Apache's failover after a failed connection
/// (nothing reached the member) is not counted.
pub struct RetryBudget {
    /// The ring: each slot is a slot number and a balance (see [`pack`]).
    slots: Box<[AtomicU64]>,
    epoch: Instant,
    /// The parameters in force: the slot length in nanoseconds (0: no budget, every retry
    /// allowed), hundredths deposited per request, and the floor in hundredths.
    slot_nanos: AtomicU64,
    deposit: AtomicI64,
    reserve: AtomicI64,
    allowed: AtomicU64,
    refused: AtomicU64,
    /// The second (since `epoch`, plus one) of the last refusal reported; 0: none yet.
    reported: AtomicU64,
}

/// A slot: its number in the high half, its (signed) balance in the low half (added: the
/// halves do not overlap).
fn pack(number: u32, balance: i32) -> u64 {
    (u64::from(number) << 32) + u64::from(balance as u32)
}

fn unpack(slot: u64) -> (u32, i32) {
    ((slot >> 32) as u32, slot as u32 as i32)
}

impl RetryBudget {
    /// A budget with these parameters (`None`: no budget, every retry is allowed and
    /// counted), whose time starts at `now`.
    #[must_use]
    pub fn new(params: Option<RetryBudgetParams>, now: Instant) -> Self {
        let budget = Self {
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            epoch: now,
            slot_nanos: AtomicU64::new(0),
            deposit: AtomicI64::new(0),
            reserve: AtomicI64::new(0),
            allowed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            reported: AtomicU64::new(0),
        };
        budget.configure(params.as_ref());
        budget
    }

    /// Follows new parameters. The counters of retries allowed and refused carry on; the
    /// deposits made carry on too, unless the window's length changed or the budget was
    /// off (then it starts afresh, its slots no longer meaning the same time).
    pub fn configure(&self, params: Option<&RetryBudgetParams>) {
        let Some(params) = params else {
            self.slot_nanos.store(0, Ordering::Relaxed);
            return;
        };
        let slot = params.window / SLOTS;
        let slot_nanos = u64::try_from(slot.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.deposit
            .store(i64::from(params.percent), Ordering::Relaxed);
        let reserve = i64::from(params.min_per_sec)
            .saturating_mul(i64::try_from(params.window.as_secs()).unwrap_or(i64::MAX))
            .saturating_mul(RETRY_COST);
        self.reserve.store(reserve, Ordering::Relaxed);
        if self.slot_nanos.swap(slot_nanos, Ordering::Relaxed) != slot_nanos {
            for slot in self.slots.iter() {
                slot.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Whether a budget is in force (`retrybudget` is not `Off`).
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.slot_nanos.load(Ordering::Relaxed) != 0
    }

    /// The number of the slot `now` falls in (wrapping; compared by wrapping difference).
    fn slot_number(&self, now: Instant, slot_nanos: u64) -> u32 {
        let elapsed = now.saturating_duration_since(self.epoch).as_nanos();
        (elapsed / u128::from(slot_nanos)) as u32
    }

    /// Adds `amount` hundredths to the slot of `number`, starting the slot afresh when it
    /// holds an older one.
    fn add(&self, number: u32, amount: i64) {
        let slot = &self.slots[(number % SLOTS) as usize];
        let mut current = slot.load(Ordering::Relaxed);
        loop {
            let (held, balance) = unpack(current);
            // A slot ahead of `number` (a caller whose `now` is late) takes it as its own.
            let base = if (number.wrapping_sub(held) as i32) > 0 {
                0
            } else {
                i64::from(balance)
            };
            let balance = base
                .saturating_add(amount)
                .clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
            let number = later(number, held);
            match slot.compare_exchange_weak(
                current,
                pack(number, balance),
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// The hundredths of a retry available at slot `number`: the floor plus every slot of
    /// the last window.
    fn balance(&self, number: u32) -> i64 {
        let mut sum = self.reserve.load(Ordering::Relaxed);
        for slot in self.slots.iter() {
            let (held, balance) = unpack(slot.load(Ordering::Acquire));
            let age = number.wrapping_sub(held) as i32;
            if age < SLOTS as i32 {
                sum = sum.saturating_add(i64::from(balance));
            }
        }
        sum
    }

    /// A request is being sent: it adds its share of a retry to the budget.
    pub fn deposit(&self, now: Instant) {
        let slot_nanos = self.slot_nanos.load(Ordering::Relaxed);
        let amount = self.deposit.load(Ordering::Relaxed);
        if slot_nanos == 0 || amount == 0 {
            return;
        }
        self.add(self.slot_number(now, slot_nanos), amount);
    }

    /// A request is to be retried: whether the budget allows it (then it is withdrawn).
    /// Both outcomes are counted; with no budget every retry is allowed.
    pub fn withdraw(&self, now: Instant) -> bool {
        let slot_nanos = self.slot_nanos.load(Ordering::Relaxed);
        let allowed = slot_nanos == 0 || {
            let number = self.slot_number(now, slot_nanos);
            let allowed = self.balance(number) >= RETRY_COST;
            if allowed {
                self.add(number, -RETRY_COST);
            }
            allowed
        };
        let counter = if allowed {
            &self.allowed
        } else {
            &self.refused
        };
        counter.fetch_add(1, Ordering::Relaxed);
        allowed
    }

    /// The retries the budget holds at `now` (whole ones; 0 with no budget).
    #[must_use]
    pub fn available(&self, now: Instant) -> u64 {
        let slot_nanos = self.slot_nanos.load(Ordering::Relaxed);
        if slot_nanos == 0 {
            return 0;
        }
        let balance = self.balance(self.slot_number(now, slot_nanos));
        u64::try_from(balance / RETRY_COST).unwrap_or(0)
    }

    /// Retries allowed since the balancer started.
    #[must_use]
    pub fn allowed(&self) -> u64 {
        self.allowed.load(Ordering::Relaxed)
    }

    /// Retries refused since the balancer started: the client got the failure.
    #[must_use]
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Whether a refusal at `now` should be reported (logged): true for the first call in
    /// each second, so that a brown-out does not flood the log.
    pub fn report_refusal(&self, now: Instant) -> bool {
        let second = now.saturating_duration_since(self.epoch).as_secs() + 1;
        let last = self.reported.load(Ordering::Relaxed);
        last < second
            && self
                .reported
                .compare_exchange(last, second, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// The later of two wrapping slot numbers: `a` moved forward by how far `b` is ahead of it,
/// if it is.
fn later(a: u32, b: u32) -> u32 {
    let ahead = (b.wrapping_sub(a) as i32).max(0);
    a.wrapping_add(ahead as u32)
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field(
                "slot",
                &Duration::from_nanos(self.slot_nanos.load(Ordering::Relaxed)),
            )
            .field("allowed", &self.allowed())
            .field("refused", &self.refused())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[expect(clippy::disallowed_methods, reason = "tests need a starting instant")]
    fn t0() -> Instant {
        Instant::now()
    }

    fn params(percent: u16, min_per_sec: u32, window_secs: u64) -> RetryBudgetParams {
        let mut params = RetryBudgetParams::DEFAULT;
        params.percent = percent;
        params.min_per_sec = min_per_sec;
        params.window = Duration::from_secs(window_secs);
        params
    }

    fn at(start: Instant, millis: u64) -> Instant {
        start + Duration::from_millis(millis)
    }

    /// Withdraws until refused (at most `bound` times); the retries allowed.
    fn drain(budget: &RetryBudget, now: Instant, bound: u32) -> u32 {
        (0..bound).take_while(|_| budget.withdraw(now)).count() as u32
    }

    #[test]
    fn percent_of_requests_exactly() {
        let start = t0();
        let budget = RetryBudget::new(Some(params(20, 0, 10)), start);
        for _ in 0..50 {
            budget.deposit(start);
        }
        assert_eq!(budget.available(start), 10);
        assert_eq!(drain(&budget, start, 100), 10);
        assert_eq!((budget.allowed(), budget.refused()), (10, 1));
        assert_eq!(budget.available(start), 0);
    }

    #[test]
    fn one_retry_needs_a_whole_one() {
        let start = t0();
        let budget = RetryBudget::new(Some(params(25, 0, 10)), start);
        for _ in 0..3 {
            budget.deposit(start);
        }
        // 75 hundredths: not a retry.
        assert!(!budget.withdraw(start));
        budget.deposit(start);
        // Exactly 100: one.
        assert!(budget.withdraw(start));
        assert!(!budget.withdraw(start));
        assert_eq!((budget.allowed(), budget.refused()), (1, 2));
    }

    #[test]
    fn more_than_one_retry_per_request() {
        let start = t0();
        let budget = RetryBudget::new(Some(params(250, 0, 10)), start);
        budget.deposit(start);
        budget.deposit(start);
        assert_eq!(drain(&budget, start, 100), 5);
    }

    #[test]
    fn floor_is_min_per_sec_over_the_window() {
        let start = t0();
        let budget = RetryBudget::new(Some(params(20, 3, 5)), start);
        assert_eq!(budget.available(start), 15);
        assert_eq!(drain(&budget, start, 100), 15);
        // The floor's withdrawals leave with their slot: a window later it is whole again.
        assert_eq!(budget.available(at(start, 4_999)), 0);
        assert_eq!(budget.available(at(start, 5_000)), 15);
        assert_eq!(drain(&budget, at(start, 5_000), 100), 15);
    }

    #[test]
    fn deposits_leave_after_a_window_in_tenths() {
        let start = t0();
        // Deposited at 0.95 s: slot 0, gone at 10 s.
        let early = RetryBudget::new(Some(params(100, 0, 10)), start);
        early.deposit(at(start, 950));
        assert_eq!(early.available(at(start, 9_999)), 1);
        assert_eq!(early.available(at(start, 10_000)), 0);
        // Deposited at 1.05 s: slot 1, still there at 10.5 s, gone at 11 s.
        let late = RetryBudget::new(Some(params(100, 0, 10)), start);
        late.deposit(at(start, 1_050));
        assert_eq!(late.available(at(start, 10_500)), 1);
        assert!(late.withdraw(at(start, 10_999)));
        late.deposit(at(start, 1_050));
        assert!(!late.withdraw(at(start, 11_000)));
    }

    #[test]
    fn a_slot_reused_a_window_later_starts_afresh() {
        let start = t0();
        let budget = RetryBudget::new(Some(params(100, 0, 10)), start);
        budget.deposit(at(start, 500));
        budget.deposit(at(start, 500));
        // Slot 10 is the ring's slot 0 again: the old deposits do not add to it.
        budget.deposit(at(start, 10_500));
        assert_eq!(budget.available(at(start, 10_500)), 1);
        // And withdrawals made in a slot leave with it.
        assert!(budget.withdraw(at(start, 10_500)));
        budget.deposit(at(start, 15_000));
        assert_eq!(budget.available(at(start, 20_500)), 1);
    }

    #[test]
    fn a_late_clock_adds_to_the_newer_slot() {
        let start = t0();
        let budget = RetryBudget::new(Some(params(100, 0, 10)), start);
        budget.deposit(at(start, 10_500));
        // A caller whose `now` was read before: slot 0, held by slot 10.
        budget.deposit(at(start, 500));
        assert_eq!(budget.available(at(start, 10_500)), 2);
        assert_eq!(budget.available(at(start, 500)), 2);
        assert_eq!(budget.available(at(start, 19_999)), 2);
        assert_eq!(budget.available(at(start, 20_000)), 0);
    }

    #[test]
    fn before_the_epoch_is_slot_zero() {
        let start = t0() + Duration::from_secs(5);
        let budget = RetryBudget::new(Some(params(100, 0, 10)), start);
        budget.deposit(start - Duration::from_secs(5));
        assert_eq!(budget.available(at(start, 999)), 1);
        assert_eq!(budget.available(at(start, 10_000)), 0);
    }

    #[test]
    fn off_allows_every_retry_and_counts_it() {
        let start = t0();
        let budget = RetryBudget::new(None, start);
        assert!(!budget.is_enabled());
        budget.deposit(start);
        assert_eq!(budget.available(start), 0);
        assert_eq!(drain(&budget, start, 7), 7);
        assert_eq!((budget.allowed(), budget.refused()), (7, 0));
    }

    #[test]
    fn zero_percent_is_the_floor_alone() {
        let start = t0();
        let budget = RetryBudget::new(Some(params(0, 1, 2)), start);
        assert!(budget.is_enabled());
        for _ in 0..100 {
            budget.deposit(start);
        }
        assert_eq!(drain(&budget, start, 100), 2);
    }

    #[test]
    fn configure_keeps_counters_and_deposits_unless_the_window_changes() {
        let start = t0();
        let budget = RetryBudget::new(Some(params(100, 0, 10)), start);
        for _ in 0..4 {
            budget.deposit(start);
        }
        assert!(budget.withdraw(start));
        assert!(!RetryBudget::new(Some(params(100, 0, 10)), start).withdraw(start));
        // A new percent and floor: the deposits stay, the floor is the new one.
        budget.configure(Some(&params(50, 1, 10)));
        assert_eq!(budget.available(start), 13);
        budget.deposit(start);
        assert_eq!(budget.available(start), 13);
        budget.deposit(start);
        assert_eq!(budget.available(start), 14);
        // Off: every retry allowed, deposits ignored; on again: afresh, the floor alone.
        budget.configure(None);
        assert!(!budget.is_enabled());
        budget.deposit(start);
        assert!(budget.withdraw(start));
        budget.configure(Some(&params(50, 1, 10)));
        assert_eq!(budget.available(start), 10);
        // A new window: afresh, the floor alone.
        budget.configure(Some(&params(50, 1, 20)));
        assert_eq!(budget.available(start), 20);
        assert_eq!((budget.allowed(), budget.refused()), (2, 0));
    }

    #[test]
    fn a_slot_saturates_instead_of_wrapping() {
        let start = t0();
        let budget = RetryBudget::new(Some(params(1000, 0, 10)), start);
        let number = 0;
        budget.add(number, i64::from(i32::MAX) - 10);
        budget.deposit(start);
        assert_eq!(budget.balance(number), i64::from(i32::MAX));
        budget.add(number, i64::from(i32::MIN) * 3);
        assert_eq!(budget.balance(number), i64::from(i32::MIN));
    }

    #[test]
    fn slots_pack_and_unpack() {
        for (number, balance) in [
            (0, 0),
            (1, -1),
            (7, 100),
            (u32::MAX, i32::MIN),
            (3, i32::MAX),
        ] {
            assert_eq!(unpack(pack(number, balance)), (number, balance));
        }
        assert_eq!(pack(1, 2), (1 << 32) + 2);
        assert_eq!(pack(0, -1), u64::from(u32::MAX));
    }

    #[test]
    fn refusals_are_reported_once_a_second() {
        let start = t0();
        let budget = RetryBudget::new(None, start);
        assert!(budget.report_refusal(start));
        assert!(!budget.report_refusal(at(start, 999)));
        assert!(budget.report_refusal(at(start, 1_000)));
        assert!(!budget.report_refusal(at(start, 1_500)));
        assert!(!budget.report_refusal(start));
        assert!(budget.report_refusal(at(start, 3_000)));
    }

    #[test]
    fn the_store_holds_one_that_follows_its_params() {
        let start = t0();
        let store = crate::BalancerStore::new(crate::BalancerParams::new("b"), [], start).unwrap();
        assert_eq!(store.retry_budget().available(start), 100);
        store.retry_budget().deposit(start);
        store
            .update_params(|p| p.set("retrybudgetmin", "1"))
            .unwrap();
        assert_eq!(store.retry_budget().available(start), 10);
        store
            .update_params(|p| p.set("retrybudget", "100"))
            .unwrap();
        store.retry_budget().deposit(start);
        assert_eq!(store.retry_budget().available(start), 11);
        assert!(store.retry_budget().withdraw(start));
        store
            .update_params(|p| p.set("retrybudget", "off"))
            .unwrap();
        assert!(!store.retry_budget().is_enabled());
        assert_eq!(store.retry_budget().allowed(), 1);
    }

    #[test]
    fn later_wraps() {
        assert_eq!(later(5, 3), 5);
        assert_eq!(later(3, 5), 5);
        assert_eq!(later(4, 4), 4);
        assert_eq!(later(1, u32::MAX), 1);
        assert_eq!(later(u32::MAX, 1), 1);
    }

    #[test]
    fn shared_across_threads() {
        let start = t0();
        let budget = std::sync::Arc::new(RetryBudget::new(Some(params(10, 0, 10)), start));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let budget = std::sync::Arc::clone(&budget);
                std::thread::spawn(move || {
                    for _ in 0..1_000 {
                        budget.deposit(start);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(budget.available(start), 400);
    }

    #[test]
    fn debug_shows_the_counters() {
        let start = t0();
        let budget = RetryBudget::new(Some(params(20, 1, 10)), start);
        assert!(budget.withdraw(start));
        let shown = format!("{budget:?}");
        assert!(shown.contains("slot: 1s"), "{shown}");
        assert!(shown.contains("allowed: 1"), "{shown}");
        assert!(shown.contains("refused: 0"), "{shown}");
    }
}
