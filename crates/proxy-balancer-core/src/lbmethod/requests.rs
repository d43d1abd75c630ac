use crate::lbmethod::{Candidates, LbMethod};
use crate::member::{Hot, Member};
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

    fn choose<'a>(&self, mut candidates: Candidates<'a>) -> Option<&'a Member> {
        let index = round(&mut candidates, |_| true)?;
        Some(candidates.member(index))
    }
}

/// One byrequests decision among the candidates that `keep` admits: each one's `lbstatus`
/// grows by its load factor, the highest (the earliest on a tie) wins and gives back the
/// total. Returns the winner's position.
///
/// Each weighs with its [`Hot::effective_lbf`]: its load factor, less while its slow start
/// ramps.
pub(crate) fn round(candidates: &mut Candidates<'_>, keep: impl Fn(&Hot) -> bool) -> Option<u32> {
    let now = candidates.now();
    let mut best: Option<(u32, &Hot, i64)> = None;
    let mut total = 0;
    while let Some((index, hot)) = candidates.next_hot() {
        if !keep(hot) {
            continue;
        }
        let lbf = hot.effective_lbf(now);
        let score = hot
            .state
            .lbstatus_atomic()
            .fetch_add(lbf, Ordering::Relaxed)
            + lbf;
        total += lbf;
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
