//! `lbmethod=hash` (beyond Apache): consistent hashing of a request key.
//!
//! The balancer takes the key out of the request as its `hashkey` says (the client's IP
//! address, a header, a cookie, the path or the URI: [`HashKey`](crate::HashKey)) and the
//! pick maps it through the lbset's table ([`ring`](crate::ring): Maglev by default,
//! nginx's ketama points with `hashring=ketama`). The same key reaches the same member for as
//! long as that member may take it.
//!
//! # Candidates
//!
//! Everything that decides which members may take a balanced request applies as for every
//! method: the lowest lbset with a usable member, the status flags (`disabled`, `stopped`,
//! in error, drain), hot spares (Apache's rule: one per unusable regular member), hot
//! standbys, and the members this request already tried. The pick starts at the key's slot
//! and walks forward to the first member that is one of the candidates; so a member that
//! leaves (becomes unusable, drains or is removed) moves only the keys it had, and they
//! come back when it does.
//!
//! # Slow start
//!
//! A member whose slow start is ramping (`slowstart=`) keeps a key only if a second hash of
//! the key, independent of its slot, falls within the ramp's share (`hash mod 1000 <
//! ramp‰`); other keys walk on to the next member. So the member gets its share of keys
//! gradually, the same keys for every instance, and a key it has kept stays as the ramp
//! grows.
//!
//! # Requests without a key
//!
//! A request without the key (no such header or cookie, no client address) is balanced as
//! byrequests would among the same candidates.
//!
//! # Limits
//!
//! The walk looks at up to 256 table entries (Maglev's entries are spread across members,
//! so that is ample unless nearly every member is out); past that, or if the table is
//! missing (the method used as [`LbMethodKind::Custom`](crate::LbMethodKind::Custom)), the
//! key goes to the candidate with the highest rendezvous score (the hash of the key and the
//! member's URL), which is consistent too.

use crate::lbmethod::{Candidates, LbMethod};
use crate::member::Member;
use crate::ring::{key_hash, Ring, SEED_RAMP, SEED_SCORE};

/// How many table entries a pick looks at before scanning the candidates.
const WALK_LIMIT: usize = 256;

/// `lbmethod=hash` (beyond Apache): consistent hashing of the request's key (see the
/// [module](self)).
///
/// ```
/// use std::time::Instant;
/// use proxy_balancer_core::{BalancerParams, BalancerStore, MemberParams, PickRequest};
///
/// let mut params = BalancerParams::new("users");
/// params.set("lbmethod", "hash")?;
/// params.set("hashkey", "header:X-User")?;
/// let members = ["http://a", "http://b", "http://c"].map(|u| MemberParams::new(u).unwrap());
/// let now = Instant::now();
/// let store = BalancerStore::new(params, members, now)?;
/// let first = store.pick(&PickRequest::new().with_key(b"alice"), now)?.member().url().to_owned();
/// for _ in 0..10 {
///     let again = store.pick(&PickRequest::new().with_key(b"alice"), now)?;
///     assert_eq!(again.member().url(), first);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Hash;

impl LbMethod for Hash {
    fn name(&self) -> &str {
        "hash"
    }

    fn choose<'a>(&self, candidates: Candidates<'a>) -> Option<&'a Member> {
        let Some(key) = candidates.key() else {
            return super::ByRequests.choose(candidates);
        };
        if let Some(ring) = candidates.ring() {
            let len = ring.len();
            let start = ring.start(key);
            let now = candidates.now();
            let mut draw = None;
            for step in 0..len.min(WALK_LIMIT) {
                let mut i = start + step;
                if i >= len {
                    i -= len;
                }
                let index = ring.entry(i);
                if !candidates.admits(index) {
                    continue;
                }
                let ramp = candidates.hot(index).ramp_permille(now);
                if ramp >= 1000 || *draw.get_or_insert_with(|| ramp_draw(key)) < ramp {
                    return Some(candidates.member(index));
                }
            }
        }
        rendezvous(candidates, key)
    }
}

/// The pick without the scan of the lbsets, when it cannot differ from the full one: the
/// member at the key's slot of the lowest lbset's table is a regular member (not a spare or
/// standby) that is usable, not draining, not tried and not ramping past the key. Then the
/// lowest lbset has a usable regular member, so its candidates are the ones the pick walks,
/// and the walk stops at its first entry. `None`: take the full pick.
pub(crate) fn fast_pick<'a>(
    (members, hot): (&'a [Member], &'a [crate::member::Hot]),
    ring: &Ring,
    key: &[u8],
    tried: &[crate::MemberId],
    now: std::time::Instant,
) -> Option<&'a Member> {
    use crate::flags::StatusFlags as F;
    let index = ring.entry(ring.start(key)) as usize;
    let h = &hot[index];
    let flags = h.state.flags();
    if !flags.is_usable()
        || flags.intersects(F::DRAIN.union(F::HOT_SPARE).union(F::HOT_STANDBY))
        || (!tried.is_empty() && tried.contains(&h.id))
    {
        return None;
    }
    let ramp = h.ramp_permille(now);
    (ramp >= 1000 || ramp_draw(key) < ramp).then(|| &members[index])
}

/// The key's slow-start draw: 0 to 999, independent of its slot.
fn ramp_draw(key: &[u8]) -> u32 {
    (key_hash(key, SEED_RAMP) % 1000) as u32
}

/// The candidate with the highest rendezvous score for `key`, among those whose slow start
/// admits the key (all of them if none does).
fn rendezvous<'a>(mut candidates: Candidates<'a>, key: &[u8]) -> Option<&'a Member> {
    let draw = ramp_draw(key);
    let seed = key_hash(key, SEED_SCORE);
    let now = candidates.now();
    // (admitted by the ramp, score): the greatest wins.
    let mut best: Option<((bool, u64), u32)> = None;
    while let Some((index, hot)) = candidates.next_hot() {
        let member = candidates.member(index);
        let admitted = draw < hot.ramp_permille(now);
        let score = (admitted, key_hash(member.url().as_bytes(), seed));
        if best.map_or(true, |(b, _)| score > b) {
            best = Some((score, index));
        }
    }
    best.map(|(_, index)| candidates.member(index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramp_draw_is_below_1000_and_stable() {
        for i in 0u32..1000 {
            let key = i.to_le_bytes();
            assert!(ramp_draw(&key) < 1000);
            assert_eq!(ramp_draw(&key), ramp_draw(&key));
        }
        assert_eq!(u64::from(ramp_draw(b"k")), key_hash(b"k", SEED_RAMP) % 1000);
    }
}
