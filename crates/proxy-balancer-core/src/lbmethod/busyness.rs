use crate::lbmethod::{Candidates, LbMethod};
use crate::member::{Hot, Member};
use crate::sync::Ordering;

/// `lbmethod=bybusyness`: the candidate with the fewest requests in flight; ties are
/// broken by the byrequests score.
///
/// # Where we differ from Apache
///
/// Apache adds every candidate's load factor to its `lbstatus` on every pick, also for
/// members that were skipped because they were busier. A slow member avoided under load
/// piles up credit and, once the busy counts tie again, receives a long burst (40 requests
/// in a row were observed on Apache 2.4.71), the opposite of the method's purpose. Here only
/// the members tied on the lowest busy count take part in the tie-break round, so no credit
/// piles up.
#[derive(Clone, Copy, Debug, Default)]
pub struct ByBusyness;

impl LbMethod for ByBusyness {
    fn name(&self) -> &str {
        "bybusyness"
    }

    fn choose<'a>(&self, candidates: Candidates<'a>) -> Option<&'a Member> {
        // Pass 1: the lowest busy count (and a fallback should counts move under us).
        let mut least: Option<(u32, u64)> = None;
        let mut scan = candidates.clone();
        while let Some((index, hot)) = scan.next_hot() {
            let busy = hot.state.busy();
            if least.map_or(true, |(_, b)| busy < b) {
                least = Some((index, busy));
            }
        }
        let (fallback, min_busy) = least?;
        // Pass 2: a byrequests round among the members tied on that count.
        let mut best: Option<(u32, &Hot, i64)> = None;
        let mut total = 0;
        let mut scan = candidates.clone();
        while let Some((index, hot)) = scan.next_hot() {
            if hot.state.busy() != min_busy {
                continue;
            }
            let score = hot
                .state
                .lbstatus_atomic()
                .fetch_add(hot.lbf, Ordering::Relaxed)
                + hot.lbf;
            total += hot.lbf;
            if best.map_or(true, |(_, _, b)| score > b) {
                best = Some((index, hot, score));
            }
        }
        match best {
            Some((index, hot, _)) => {
                hot.state
                    .lbstatus_atomic()
                    .fetch_sub(total, Ordering::Relaxed);
                Some(candidates.member(index))
            }
            None => Some(candidates.member(fallback)),
        }
    }
}
