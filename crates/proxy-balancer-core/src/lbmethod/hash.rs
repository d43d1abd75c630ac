use crate::lbmethod::{Candidates, LbMethod};
use crate::member::Member;

/// `lbmethod=hash` (beyond Apache): consistent hashing of the request's key.
///
/// SKELETON: balances as byrequests until the ring lands.
#[derive(Clone, Copy, Debug, Default)]
pub struct Hash;

impl LbMethod for Hash {
    fn name(&self) -> &str {
        "hash"
    }

    fn choose<'a>(&self, candidates: Candidates<'a>) -> Option<&'a Member> {
        super::ByRequests.choose(candidates)
    }
}
