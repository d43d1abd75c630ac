use crate::lbmethod::{Candidates, LbMethod};
use crate::member::Member;
use crate::sync::Ordering;

/// `lbmethod=byrequests`: Apache's weighted request counting (a smooth weighted round
/// robin).
///
/// Every candidate's `lbstatus` grows by its load factor; the highest wins (the earlier
/// member on a tie) and gives back the sum of the candidates' load factors. With load
/// factors 1, 2, 3 the picks are C B A C B C, over and over, exactly as Apache's.
///
/// The updates are atomic additions, so concurrent picks never lose a count: the sum of
/// all `lbstatus` values stays what it would be after the same picks made one by one, and
/// a cycle's counts are off by at most the number of concurrent pickers.
#[derive(Clone, Copy, Debug, Default)]
pub struct ByRequests;

impl LbMethod for ByRequests {
    fn name(&self) -> &str {
        "byrequests"
    }

    fn choose<'a>(&self, candidates: Candidates<'a>) -> Option<&'a Member> {
        let mut best: Option<(&'a Member, i64)> = None;
        let mut total = 0;
        for m in candidates {
            let lbf = m.lbf();
            let score = m
                .state()
                .lbstatus_atomic()
                .fetch_add(lbf, Ordering::Relaxed)
                + lbf;
            total += lbf;
            if best.map_or(true, |(_, b)| score > b) {
                best = Some((m, score));
            }
        }
        let (chosen, _) = best?;
        chosen
            .state()
            .lbstatus_atomic()
            .fetch_sub(total, Ordering::Relaxed);
        Some(chosen)
    }
}
