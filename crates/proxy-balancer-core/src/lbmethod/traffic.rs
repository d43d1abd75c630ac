use crate::lbmethod::{Candidates, LbMethod};
use crate::member::Member;

/// `lbmethod=bytraffic`: Apache's weighted traffic counting.
///
/// The candidate with the fewest bytes per load factor wins, counting
/// `transferred / lbf + read / lbf` in integer arithmetic as Apache does; ties go to the
/// earlier member. The byte counters are fed by whoever forwards the requests
/// ([`MemberState::add_transferred`](crate::MemberState::add_transferred) and
/// [`MemberState::add_read`](crate::MemberState::add_read)).
#[derive(Clone, Copy, Debug, Default)]
pub struct ByTraffic;

impl LbMethod for ByTraffic {
    fn name(&self) -> &str {
        "bytraffic"
    }

    fn choose<'a>(&self, candidates: Candidates<'a>) -> Option<&'a Member> {
        let mut best: Option<(&'a Member, u64)> = None;
        for m in candidates {
            let lbf = m.lbf().unsigned_abs();
            let state = m.state();
            let traffic = state.transferred() / lbf + state.read() / lbf;
            if best.map_or(true, |(_, b)| traffic < b) {
                best = Some((m, traffic));
            }
        }
        best.map(|(m, _)| m)
    }
}
