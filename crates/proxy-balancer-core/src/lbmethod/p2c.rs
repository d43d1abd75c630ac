use crate::lbmethod::{Candidates, LbMethod};
use crate::member::Member;

/// `lbmethod=p2c` (beyond Apache): the less busy of two random candidates.
///
/// SKELETON: bybusyness until the sampling lands.
#[derive(Clone, Copy, Debug, Default)]
pub struct P2c;

impl LbMethod for P2c {
    fn name(&self) -> &str {
        "p2c"
    }

    fn choose<'a>(&self, candidates: Candidates<'a>) -> Option<&'a Member> {
        super::ByBusyness.choose(candidates)
    }
}

/// `lbmethod=p2c-ewma` (beyond Apache): two random candidates compared by peak-EWMA
/// latency × (requests in flight + 1).
///
/// SKELETON: bybusyness until the estimate lands.
#[derive(Clone, Copy, Debug, Default)]
pub struct P2cEwma;

impl LbMethod for P2cEwma {
    fn name(&self) -> &str {
        "p2c-ewma"
    }

    fn choose<'a>(&self, candidates: Candidates<'a>) -> Option<&'a Member> {
        super::ByBusyness.choose(candidates)
    }
}
