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

/// `lbmethod=hash` (beyond Apache): consistent hashing of the request's key (the tables,
/// the key hash and what moves when members change: `docs/selection.md`).
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
            let draw = ramp_draw(key);
            for step in 0..len.min(WALK_LIMIT) {
                let mut i = start + step;
                if i >= len {
                    i -= len;
                }
                let index = ring.entry(i);
                if candidates.admits(index) && draw < candidates.hot(index).ramp_permille(now) {
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
/// and the walk stops at its first entry. Returns the member's position in the snapshot;
/// `None`: take the full pick.
pub(crate) fn fast_index(
    hot: &[crate::member::Hot],
    ring: &Ring,
    key: &[u8],
    tried: &[crate::MemberId],
    now: std::time::Instant,
) -> Option<usize> {
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
    (ramp_draw(key) < h.ramp_permille(now)).then_some(index)
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
    let members = candidates.clone();
    std::iter::from_fn(|| candidates.next_hot())
        .max_by_key(|&(index, hot)| {
            let url = members.member(index).url().as_bytes();
            (draw < hot.ramp_permille(now), key_hash(url, seed))
        })
        .map(|(index, _)| members.member(index))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::{
        BalancerParams, BalancerStore, LbMethodKind, LbSet, LoadFactor, MemberId, MemberParams,
        PickRequest, StatusFlags as F,
    };

    #[expect(clippy::disallowed_methods, reason = "tests need a starting instant")]
    fn t0() -> Instant {
        Instant::now()
    }

    /// Members `http://m0`…, each with its flags and lbset.
    fn store(ring: &str, specs: &[(F, u8)], now: Instant) -> BalancerStore {
        let mut params = BalancerParams::new("h");
        params.set("lbmethod", "hash").unwrap();
        params.set("hashring", ring).unwrap();
        let members = specs.iter().enumerate().map(|(i, &(flags, set))| {
            MemberParams::new(&format!("http://m{i}"))
                .unwrap()
                .with_lb_set(LbSet::new(set).unwrap())
                .with_status(flags)
        });
        BalancerStore::new(params, members, now).unwrap()
    }

    fn keys() -> Vec<[u8; 4]> {
        (0u32..2000).map(u32::to_le_bytes).collect()
    }

    /// The member number each key goes to.
    fn map(store: &BalancerStore, tried: &[MemberId], now: Instant) -> Vec<usize> {
        let snapshot = store.snapshot();
        keys()
            .iter()
            .map(|k| {
                let request = PickRequest::new().with_key(k).with_tried(tried);
                snapshot.pick(&request, now).unwrap().position()
            })
            .collect()
    }

    /// The member each key goes to by walking the lowest lbset's table by hand: the first
    /// entry whose member is in `allowed`.
    fn walked(store: &BalancerStore, allowed: &[usize]) -> Vec<usize> {
        let snapshot = store.snapshot();
        let ring = snapshot.ring(0).unwrap();
        keys()
            .iter()
            .map(|k| {
                let start = ring.start(k);
                (0..ring.len())
                    .map(|s| ring.entry((start + s) % ring.len()) as usize)
                    .find(|e| allowed.contains(e))
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn ramp_draw_is_pinned_and_below_1000() {
        for i in 0u32..1000 {
            assert!(ramp_draw(&i.to_le_bytes()) < 1000);
        }
        assert_eq!(u64::from(ramp_draw(b"k")), key_hash(b"k", SEED_RAMP) % 1000);
        assert_eq!(ramp_draw(b"k"), 920);
    }

    #[test]
    fn a_disabled_member_moves_only_its_keys_along_the_table() {
        let now = t0();
        for ring in ["maglev", "ketama"] {
            let s = store(ring, &[(F::EMPTY, 0); 4], now);
            let before = map(&s, &[], now);
            assert_eq!(before, walked(&s, &[0, 1, 2, 3]), "{ring}");
            for i in 0..4 {
                assert!(before.contains(&i), "{ring}: member {i} gets keys");
            }
            s.snapshot().members()[1].state().insert_flags(F::DISABLED);
            let after = map(&s, &[], now);
            assert_eq!(after, walked(&s, &[0, 2, 3]), "{ring}");
            for (b, a) in before.iter().zip(&after) {
                assert_ne!(*a, 1);
                if *b != 1 {
                    assert_eq!(a, b);
                }
            }
        }
    }

    #[test]
    fn drained_and_tried_members_are_walked_past() {
        let now = t0();
        let s = store(
            "ketama",
            &[(F::EMPTY, 0), (F::DRAIN, 0), (F::EMPTY, 0)],
            now,
        );
        assert_eq!(map(&s, &[], now), walked(&s, &[0, 2]));
        let s = store("ketama", &[(F::EMPTY, 0); 3], now);
        let tried = [s.snapshot().members()[2].id()];
        assert_eq!(map(&s, &tried, now), walked(&s, &[0, 1]));
    }

    #[test]
    fn spares_replace_unusable_regulars_in_order() {
        let now = t0();
        let r = F::HOT_SPARE;
        let specs = [
            (F::EMPTY, 0),
            (F::EMPTY, 0),
            (r, 0),
            (r, 0),
            (r.union(F::HOT_STANDBY), 0),
        ];
        let s = store("maglev", &specs, now);
        assert_eq!(map(&s, &[], now), walked(&s, &[0, 1]));
        s.snapshot().members()[0].state().insert_flags(F::STOPPED);
        assert_eq!(map(&s, &[], now), walked(&s, &[1, 2]));
        s.snapshot().members()[1].state().insert_flags(F::DISABLED);
        assert_eq!(map(&s, &[], now), walked(&s, &[2, 3]));
        // The first spare tried: the next one takes its place.
        let tried = [s.snapshot().members()[2].id()];
        assert_eq!(map(&s, &tried, now), walked(&s, &[3, 4]));
    }

    #[test]
    fn standbys_only_when_nothing_else() {
        let now = t0();
        let h = F::HOT_STANDBY;
        let specs = [(F::EMPTY, 0), (h, 0), (h, 0), (h.union(F::HOT_SPARE), 0)];
        let s = store("maglev", &specs, now);
        assert_eq!(map(&s, &[], now), walked(&s, &[0]));
        // A spare and standby both is a spare: it replaces the disabled member.
        s.snapshot().members()[0].state().insert_flags(F::DISABLED);
        assert!(map(&s, &[], now).iter().all(|&m| m == 3));
        s.snapshot().members()[3].state().insert_flags(F::DISABLED);
        assert_eq!(map(&s, &[], now), walked(&s, &[1, 2]));
    }

    #[test]
    fn the_lowest_lbset_first() {
        let now = t0();
        let s = store(
            "maglev",
            &[(F::EMPTY, 1), (F::EMPTY, 0), (F::EMPTY, 0)],
            now,
        );
        assert_eq!(map(&s, &[], now), walked(&s, &[1, 2]));
        let snapshot = s.snapshot();
        snapshot.members()[1].state().insert_flags(F::DISABLED);
        snapshot.members()[2].state().insert_flags(F::DISABLED);
        assert!(map(&s, &[], now).iter().all(|&m| m == 0));
    }

    #[test]
    fn the_fast_pick_takes_the_slot_member_only_when_it_may() {
        let now = t0();
        let s = store("maglev", &[(F::EMPTY, 0); 3], now);
        let snapshot = s.snapshot();
        let ring = snapshot.ring(0).unwrap();
        let key = b"user-1";
        let slot = ring.entry(ring.start(key)) as usize;
        let fast = |tried: &[MemberId]| {
            fast_index(snapshot.hot_members().1, ring, key, tried, now)
                .map(|i| snapshot.members()[i].id())
        };
        let member = &snapshot.members()[slot];
        assert_eq!(fast(&[]), Some(member.id()));
        let other = snapshot.members()[(slot + 1) % 3].id();
        assert_eq!(fast(&[other]), Some(member.id()));
        assert_eq!(fast(&[member.id()]), None);
        for flag in [F::DRAIN, F::HOT_SPARE, F::HOT_STANDBY, F::DISABLED] {
            member.state().insert_flags(flag);
            assert_eq!(fast(&[]), None, "{flag:?}");
            member.state().remove_flags(flag);
        }
    }

    /// Slow start: a ramping member keeps the keys whose draw is below its ramp, more of
    /// them as the ramp grows, and no others.
    #[test]
    fn slow_start_keeps_keys_under_the_ramp() {
        let now = t0();
        let mut params = BalancerParams::new("h");
        params.set("lbmethod", "hash").unwrap();
        let members = (0..3).map(|i| {
            let mut m = MemberParams::new(&format!("http://m{i}")).unwrap();
            m.slow_start = Some(Duration::from_secs(1000));
            m
        });
        let s = BalancerStore::new(params, members, now).unwrap();
        let full = map(&s, &[], now);
        let ramping = s.snapshot().members()[0].clone();
        let mut kept_before = 0;
        for elapsed in [1u64, 250, 500, 920, 921, 999] {
            ramping.state().mark_usable_since(now);
            let at = now + Duration::from_secs(elapsed);
            let ramp = s.snapshot().hot_members().1[0].ramp_permille(at);
            assert_eq!(u64::from(ramp), elapsed);
            let mapped = map(&s, &[], at);
            let mut kept = 0;
            for ((k, f), m) in keys().iter().zip(&full).zip(&mapped) {
                if *f == 0 {
                    let keeps = ramp_draw(k) < ramp;
                    assert_eq!(*m == 0, keeps, "ramp {ramp}");
                    kept += usize::from(keeps);
                } else {
                    assert_eq!(m, f, "other members keep their keys");
                }
            }
            assert!(kept >= kept_before);
            kept_before = kept;
        }
        // The draw of b"k" is 920: kept from a ramp of 921 on, not at 920.
        let key: &[u8] = b"k";
        let owner = s
            .snapshot()
            .pick(&PickRequest::new().with_key(key), now)
            .unwrap()
            .position();
        let ramping = s.snapshot().members()[owner].clone();
        ramping.state().mark_usable_since(now);
        for (elapsed, keeps) in [(920, false), (921, true)] {
            let at = now + Duration::from_secs(elapsed);
            let p = s
                .snapshot()
                .pick(&PickRequest::new().with_key(key), at)
                .unwrap();
            assert_eq!(p.position() == owner, keeps, "at {elapsed}");
        }
    }

    /// Without a table (the method used as a custom lbmethod), rendezvous hashing: stable,
    /// and a member that leaves moves only its keys.
    #[test]
    fn rendezvous_without_a_table() {
        let now = t0();
        let mut params = BalancerParams::new("h");
        params.lb_method = LbMethodKind::Custom(Arc::new(Hash));
        let members = (0..4).map(|i| {
            MemberParams::new(&format!("http://m{i}"))
                .unwrap()
                .with_load_factor(LoadFactor::new(1.0).unwrap())
        });
        let s = BalancerStore::new(params, members, now).unwrap();
        let before = map(&s, &[], now);
        for i in 0..4 {
            assert!(before.contains(&i));
        }
        assert_eq!(before[..4], [3, 1, 3, 1]);
        s.snapshot().members()[2].state().insert_flags(F::DISABLED);
        for (b, a) in before.iter().zip(&map(&s, &[], now)) {
            assert_ne!(*a, 2);
            if *b != 2 {
                assert_eq!(a, b);
            }
        }
    }

    /// Rendezvous and slow start: a ramping member wins a key only if the key's draw is
    /// under its ramp.
    #[test]
    fn rendezvous_respects_the_ramp() {
        let now = t0();
        let mut params = BalancerParams::new("h");
        params.lb_method = LbMethodKind::Custom(Arc::new(Hash));
        let members = (0..3).map(|i| {
            let mut m = MemberParams::new(&format!("http://m{i}")).unwrap();
            m.slow_start = Some(Duration::from_secs(1000));
            m
        });
        let s = BalancerStore::new(params, members, now).unwrap();
        let key: &[u8] = b"k";
        let pick = |at| {
            s.snapshot()
                .pick(&PickRequest::new().with_key(key), at)
                .unwrap()
                .position()
        };
        let owner = pick(now);
        s.snapshot().members()[owner].state().mark_usable_since(now);
        // The draw of b"k" is 920.
        for (elapsed, keeps) in [(1, false), (920, false), (921, true)] {
            let at = now + Duration::from_secs(elapsed);
            assert_eq!(pick(at) == owner, keeps, "at {elapsed}");
        }
    }

    /// Spares with members tried: a tried regular member is replaced by a spare, a tried
    /// spare by the next one.
    #[test]
    fn spares_and_tried_members() {
        let now = t0();
        let r = F::HOT_SPARE;
        let specs = [(F::DISABLED, 0), (F::EMPTY, 0), (r, 0), (r, 0), (r, 0)];
        let s = store("maglev", &specs, now);
        let ids: Vec<MemberId> = s.snapshot().members().iter().map(Member::id).collect();
        assert_eq!(map(&s, &[ids[1]], now), walked(&s, &[2, 3]));
        assert_eq!(map(&s, &[ids[2]], now), walked(&s, &[1, 3]));
        // Only standbys and a standby spare: the standby phase leaves the spare out.
        let h = F::HOT_STANDBY;
        let s = store("maglev", &[(h, 0), (h.union(r), 0)], now);
        assert!(map(&s, &[], now).iter().all(|&m| m == 0));
    }

    /// The walk of a table crosses its end back to the start.
    #[test]
    fn the_walk_wraps() {
        let now = t0();
        let s = store("ketama", &[(F::EMPTY, 0); 2], now);
        let snapshot = s.snapshot();
        let ring = snapshot.ring(0).unwrap();
        let last = ring.entry(ring.len() - 1) as usize;
        let first_other = (0..ring.len())
            .map(|i| ring.entry(i) as usize)
            .find(|&e| e != last)
            .unwrap();
        snapshot.members()[last].state().insert_flags(F::DISABLED);
        // Keys past the last point start at the first point; a key at the last point walks
        // over the end.
        let at_last = (0u32..100_000)
            .map(u32::to_le_bytes)
            .find(|k| ring.start(k) == ring.len() - 1)
            .unwrap();
        let p = snapshot
            .pick(&PickRequest::new().with_key(&at_last), now)
            .unwrap();
        assert_eq!(p.position(), first_other);
    }

    /// A request without a key is a byrequests round.
    #[test]
    fn no_key_is_byrequests() {
        let now = t0();
        let s = store("maglev", &[(F::EMPTY, 0); 3], now);
        let snapshot = s.snapshot();
        let picks: Vec<usize> = (0..6)
            .map(|_| snapshot.pick(&PickRequest::new(), now).unwrap().position())
            .collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }
}
