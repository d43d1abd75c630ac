use crate::lbmethod::{Candidates, LbMethod};
use crate::member::Member;

/// `lbmethod=bytraffic`: Apache's weighted traffic counting.
///
/// The candidate with the fewest bytes per load factor wins, counting
/// `transferred / lbf + read / lbf` in integer arithmetic as Apache does; ties go to the
/// earlier member. A member whose slow start ramps divides by its
/// [`Member::effective_lbf`] (beyond Apache), so it looks busier until its ramp ends. The byte counters are fed by whoever forwards the requests
/// ([`MemberState::add_transferred`](crate::MemberState::add_transferred) and
/// [`MemberState::add_read`](crate::MemberState::add_read)).
#[derive(Clone, Copy, Debug, Default)]
pub struct ByTraffic;

impl LbMethod for ByTraffic {
    fn name(&self) -> &str {
        "bytraffic"
    }

    fn choose<'a>(&self, mut candidates: Candidates<'a>) -> Option<&'a Member> {
        let now = candidates.now();
        let mut best: Option<(u32, u64)> = None;
        while let Some((index, hot)) = candidates.next_hot() {
            let lbf = hot.effective_lbf(now).unsigned_abs().max(1);
            let traffic = hot.state.transferred() / lbf + hot.state.read() / lbf;
            if best.map_or(true, |(_, b)| traffic < b) {
                best = Some((index, traffic));
            }
        }
        best.map(|(index, _)| candidates.member(index))
    }
}
