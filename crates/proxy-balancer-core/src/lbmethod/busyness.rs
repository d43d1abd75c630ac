use crate::lbmethod::{Candidates, LbMethod};
use crate::member::Member;

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
///
/// # Cost
///
/// While no request is in flight on any member, every member ties at 0 and a pick is a
/// byrequests round over all candidates: the store then serves it from the byrequests cycle
/// (one atomic increment, whatever the number of members), told by a store-wide count of
/// requests in flight that bybusyness balancers keep. With requests in flight a pick reads
/// every candidate.
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
        let mut tied = candidates.clone();
        let index = super::requests::round(&mut tied, |hot| hot.state.busy() == min_busy)
            .unwrap_or(fallback);
        Some(candidates.member(index))
    }
}
