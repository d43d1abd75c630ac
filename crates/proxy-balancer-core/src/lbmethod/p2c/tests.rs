use std::time::Duration;

use super::*;
use crate::flags::StatusFlags as F;
use crate::member::{MemberId, MemberState};
use crate::params::{LoadFactor, MemberParams};
use crate::sync::Arc;
use crate::{BalancerParams, BalancerStore, PickRequest};

#[expect(clippy::disallowed_methods, reason = "tests need a starting instant")]
fn t0() -> Instant {
    Instant::now()
}

/// Members with these flags and load factors (×1), all in one set.
struct Set {
    members: Vec<Member>,
    hot: Vec<Hot>,
    indices: Vec<u32>,
    now: Instant,
}

impl Set {
    fn new(flags: &[F]) -> Self {
        Self::weighted(&flags.iter().map(|&f| (f, 1.0)).collect::<Vec<_>>())
    }

    fn weighted(members: &[(F, f64)]) -> Self {
        let now = t0();
        let members: Vec<Member> = members
            .iter()
            .enumerate()
            .map(|(i, &(flags, lf))| {
                let params = MemberParams::new(&format!("http://m{i}"))
                    .unwrap()
                    .with_load_factor(LoadFactor::new(lf).unwrap());
                let id = MemberId(u32::try_from(i).unwrap());
                Member::new(id, params, Arc::new(MemberState::new(flags, now)))
            })
            .collect();
        let hot = members.iter().map(Hot::of).collect();
        let indices = (0..u32::try_from(members.len()).unwrap()).collect();
        Self {
            members,
            hot,
            indices,
            now,
        }
    }

    fn regular<'a>(&'a self, spare_limit: usize, tried: &'a [MemberId]) -> Candidates<'a> {
        Candidates::regular(
            (&self.members, &self.hot),
            &self.indices,
            spare_limit,
            tried,
            self.now,
        )
    }

    fn standby<'a>(&'a self) -> Candidates<'a> {
        Candidates::standby((&self.members, &self.hot), &self.indices, &[], self.now)
    }
}

/// A generator that plays `draws` as `(n, value)`: each call must ask for that `n`.
fn script(draws: &[(u32, u32)]) -> impl FnMut(u32) -> u32 + '_ {
    let mut next = draws.iter();
    move |n| {
        let &(want, value) = next.next().expect("no more draws scripted");
        assert_eq!(n, want, "the range asked for");
        assert!(value < n);
        value
    }
}

/// Runs `sample_two` and checks every scripted draw was used.
fn sample(c: &Candidates<'_>, draws: &[(u32, u32)]) -> Option<(u32, Option<u32>)> {
    let mut used = 0;
    let mut s = script(draws);
    let got = c.sample_two(&mut |n| {
        used += 1;
        s(n)
    });
    assert_eq!(used, draws.len(), "draws used");
    got
}

#[test]
fn two_distinct_draws_in_o1() {
    let set = Set::new(&[F::EMPTY; 4]);
    let c = set.regular(0, &[]);
    assert_eq!(sample(&c, &[(4, 2), (3, 0)]), Some((2, Some(0))));
    assert_eq!(
        sample(&c, &[(4, 1), (3, 1)]),
        Some((1, Some(2))),
        "skips the first"
    );
    assert_eq!(sample(&c, &[(4, 3), (3, 2)]), Some((3, Some(2))));
    assert_eq!(sample(&c, &[(4, 0), (3, 0)]), Some((0, Some(1))));
}

#[test]
fn admission_rejects_what_the_walk_would_skip() {
    let rejected = [
        F::DISABLED,
        F::DRAIN,
        F::HOT_STANDBY,
        F::HOT_SPARE,
        F::IN_ERROR,
        F::STOPPED,
        F::EMPTY, // tried
    ];
    let mut flags = rejected.to_vec();
    flags.push(F::EMPTY); // 7: a candidate
    flags.push(F::EMPTY); // 8: a candidate
    let set = Set::new(&flags);
    let tried = [MemberId(6)];
    let c = set.regular(0, &tried);
    for r in 0..7 {
        // A rejected draw, then member 7; the second draw: 8 (position 7 after skipping 7).
        assert_eq!(
            sample(&c, &[(9, r), (9, 7), (8, 7)]),
            Some((7, Some(8))),
            "member {r} is rejected"
        );
        // As a second draw too.
        let at = if r < 7 { r } else { r - 1 };
        assert_eq!(
            sample(&c, &[(9, 8), (8, at), (8, 7)]),
            Some((8, Some(7))),
            "member {r} is rejected second"
        );
    }
    // Four rejections: the candidates (7 and 8) are counted and walked to ranks 1 and 0.
    assert_eq!(
        sample(&c, &[(9, 0), (9, 1), (9, 2), (9, 3), (2, 1), (1, 0)]),
        Some((8, Some(7)))
    );
    // A first draw, then four rejected second draws: the walk.
    assert_eq!(
        sample(
            &c,
            &[(9, 7), (8, 0), (8, 1), (8, 2), (8, 3), (2, 0), (1, 0)]
        ),
        Some((7, Some(8)))
    );
    // Nothing tried: member 6 is a candidate.
    let c = set.regular(0, &[]);
    assert_eq!(sample(&c, &[(9, 6), (8, 6)]), Some((6, Some(7))));
}

#[test]
fn standbys_are_sampled_as_standbys() {
    let set = Set::new(&[
        F::EMPTY,
        F::HOT_STANDBY,
        F::HOT_STANDBY | F::HOT_SPARE,
        F::HOT_STANDBY,
    ]);
    let c = set.standby();
    assert_eq!(sample(&c, &[(4, 1), (3, 2)]), Some((1, Some(3))));
    assert_eq!(
        sample(&c, &[(4, 0), (4, 2), (4, 3), (3, 0), (3, 1)]),
        Some((3, Some(1))),
        "a regular member and a spare are not standbys"
    );
    let c = set.regular(0, &[]);
    assert_eq!(
        sample(&c, &[(4, 3), (4, 0), (3, 0), (3, 1), (3, 2), (3, 0)]),
        Some((0, None))
    );
}

#[test]
fn spares_standing_in_are_walked() {
    // Member 0 is unusable: one spare stands in, so 1 and the first spare (2) are the
    // candidates; the second spare (3) is not.
    let set = Set::new(&[F::IN_ERROR, F::EMPTY, F::HOT_SPARE, F::HOT_SPARE]);
    let c = set.regular(1, &[]);
    assert_eq!(sample(&c, &[(2, 1), (1, 0)]), Some((2, Some(1))));
    assert_eq!(sample(&c, &[(2, 0), (1, 0)]), Some((1, Some(2))));
}

#[test]
fn one_or_no_candidate() {
    let set = Set::new(&[F::EMPTY]);
    assert_eq!(sample(&set.regular(0, &[]), &[]), Some((0, None)));
    let set = Set::new(&[F::DISABLED, F::EMPTY]);
    // Two entries, one candidate: the second draws fail, the walk finds the one.
    assert_eq!(
        sample(
            &set.regular(0, &[]),
            &[(2, 1), (1, 0), (1, 0), (1, 0), (1, 0)]
        ),
        Some((1, None))
    );
    let set = Set::new(&[F::DISABLED, F::STOPPED]);
    assert_eq!(
        sample(&set.regular(0, &[]), &[(2, 0), (2, 1), (2, 0), (2, 1)]),
        None
    );
    assert_eq!(sample(&Set::new(&[]).regular(0, &[]), &[]), None);
}

#[test]
fn members_leaving_during_the_walk_are_skipped() {
    let set = Set::new(&[F::DISABLED, F::DISABLED, F::EMPTY, F::EMPTY, F::EMPTY]);
    let c = set.regular(0, &[]);
    let disable = |i: usize| {
        set.members[i].state().insert_flags(F::DISABLED);
    };
    // Four rejected draws, then the walk: ranks 2 (member 4, which leaves meanwhile) and 0.
    let mut calls = 0;
    let got = c.sample_two(&mut |n| {
        calls += 1;
        match calls {
            1..=4 => 0,
            5 => {
                assert_eq!(n, 3);
                disable(4);
                2
            }
            _ => 0,
        }
    });
    assert_eq!(got, Some((2, None)), "the second drawn, alone");
    // Both drawn ranks leave, and nothing else is left.
    let mut calls = 0;
    let got = c.sample_two(&mut |n| {
        calls += 1;
        match calls {
            1..=4 => 0,
            5 => {
                assert_eq!(n, 2);
                disable(2);
                disable(3);
                0
            }
            _ => 0,
        }
    });
    assert_eq!(got, None, "nothing left");
}

#[test]
fn an_iterated_candidates_walks() {
    let set = Set::new(&[F::EMPTY; 3]);
    let mut c = set.regular(0, &[]);
    assert!(c.next().is_some());
    // Candidates already past member 0: the walk over the remaining two.
    assert_eq!(sample(&c, &[(2, 0), (1, 0)]), Some((1, Some(2))));
}

fn busy(set: &Set, i: usize, n: usize) -> Vec<crate::BusyGuard> {
    (0..n).map(|_| set.members[i].begin_request()).collect()
}

fn pick(set: &Set, rule: Rule, draws: &[(u32, u32)]) -> u32 {
    choose(&set.regular(0, &[]), &mut script(draws), rule)
        .unwrap()
        .id()
        .get()
}

#[test]
fn p2c_prefers_fewer_in_flight_per_weight() {
    let set = Set::weighted(&[(F::EMPTY, 1.0), (F::EMPTY, 1.0), (F::EMPTY, 2.0)]);
    let _b0 = busy(&set, 0, 2);
    let _b1 = busy(&set, 1, 1);
    assert_eq!(
        pick(&set, Rule::Busy, &[(3, 0), (2, 0)]),
        1,
        "1 < 2 in flight"
    );
    assert_eq!(pick(&set, Rule::Busy, &[(3, 1), (2, 0)]), 1);
    // Member 2 has load factor 2: 2 in flight there weigh as 1 on member 1: a tie, to the
    // first drawn.
    let _b2 = busy(&set, 2, 2);
    assert_eq!(
        pick(&set, Rule::Busy, &[(3, 1), (2, 1)]),
        1,
        "tie: first drawn"
    );
    assert_eq!(
        pick(&set, Rule::Busy, &[(3, 2), (2, 1)]),
        2,
        "tie: first drawn"
    );
    // 3 on member 2 (1.5 per weight) lose to member 1's 1, beat member 0's 2.
    let _b2b = busy(&set, 2, 1);
    assert_eq!(pick(&set, Rule::Busy, &[(3, 2), (2, 1)]), 1);
    assert_eq!(pick(&set, Rule::Busy, &[(3, 0), (2, 1)]), 2);
    assert_eq!(pick(&set, Rule::Busy, &[(3, 2), (2, 0)]), 2);
}

#[test]
fn slow_start_admits_by_the_ramp() {
    let mut set = Set::weighted(&[(F::EMPTY, 1.0), (F::EMPTY, 1.0)]);
    // Member 1 ramps: a quarter of its 10 s slow start has passed (250 in thousandths).
    set.hot[1].slow_start = 10_000_000_000;
    set.members[1].state().mark_usable_since(set.now);
    set.now += Duration::from_millis(2500);
    assert_eq!(set.hot[1].ramp_permille(set.now), 250);
    // Costs compare plain load factors: the ramp is no weight.
    assert_eq!(weight(&set.hot[1], set.now), 100);
    assert_eq!(weight(&set.hot[0], set.now), 100);
    for rule in [Rule::Busy, Rule::Ewma] {
        // Drawn first (a tie goes to it) and admitted: 249 < 250.
        assert_eq!(pick(&set, rule, &[(2, 1), (1, 0), (1000, 249)]), 1);
        // Drawn first but out: 250 is not below 250; the other wins the tie.
        assert_eq!(pick(&set, rule, &[(2, 1), (1, 0), (1000, 250)]), 0);
        // Member 0 takes part without a draw; member 1 drawn second, admitted, loses the tie.
        assert_eq!(pick(&set, rule, &[(2, 0), (1, 0), (1000, 0)]), 0);
    }
    // Admitted, it is compared by in flight: 1 against 3.
    let _b0 = busy(&set, 0, 3);
    let _b1 = busy(&set, 1, 1);
    assert_eq!(pick(&set, Rule::Busy, &[(2, 0), (1, 0), (1000, 10)]), 1);
    assert_eq!(pick(&set, Rule::Busy, &[(2, 0), (1, 0), (1000, 900)]), 0);
    // Once the ramp is over, no draw.
    set.now += Duration::from_secs(10);
    assert_eq!(pick(&set, Rule::Busy, &[(2, 0), (1, 0)]), 1);
}

/// The share of picks of a member that ramps follows the ramp, idle and under load.
#[test]
fn a_ramping_members_share_follows_the_ramp() {
    for method in ["p2c", "p2c-ewma"] {
        let (store, now) = make_store(method, 3);
        let snapshot = store.snapshot();
        let ramping = snapshot.members()[2].id();
        store
            .update_member(ramping, |m| m.set("slowstart", "10"))
            .unwrap()
            .unwrap();
        let snapshot = store.snapshot();
        snapshot.members()[2].state().mark_usable_since(now);
        let mut shares = Vec::new();
        for tenth in [1u32, 5, 9] {
            let at = now + Duration::from_secs(u64::from(tenth));
            let mut hits = 0u32;
            for _ in 0..6_000 {
                let p = snapshot.pick(&PickRequest::new(), at).unwrap();
                hits += u32::from(p.position() == 2);
            }
            shares.push(f64::from(hits) / 6_000.0);
        }
        // Idle: a full share is 1/3; at a ramp r, about r/3 (a tie goes to the first drawn).
        let full = 1.0 / 3.0;
        for (share, r) in shares.iter().zip([0.1, 0.5, 0.9]) {
            assert!(
                (share - r * full).abs() < 0.03,
                "{method}: share {share:.3} at ramp {r}: {shares:?}"
            );
        }
    }
}

#[test]
fn ewma_weighs_latency_times_in_flight() {
    let set = Set::weighted(&[(F::EMPTY, 1.0), (F::EMPTY, 1.0), (F::EMPTY, 2.0)]);
    let ms = Duration::from_millis;
    let now = set.now;
    set.members[0].state().observe_rtt(ms(1), now);
    set.members[1].state().observe_rtt(ms(10), now);
    assert_eq!(pick(&set, Rule::Ewma, &[(3, 1), (2, 0)]), 0, "1 ms < 10 ms");
    assert_eq!(pick(&set, Rule::Ewma, &[(3, 0), (2, 0)]), 0);
    // 9 in flight on the fast member: 10 × 1 ms ties 10 ms: the first drawn.
    let _b0 = busy(&set, 0, 9);
    assert_eq!(
        pick(&set, Rule::Ewma, &[(3, 1), (2, 0)]),
        1,
        "tie: first drawn"
    );
    assert_eq!(
        pick(&set, Rule::Ewma, &[(3, 0), (2, 0)]),
        0,
        "tie: first drawn"
    );
    let _b0b = busy(&set, 0, 1);
    assert_eq!(
        pick(&set, Rule::Ewma, &[(3, 0), (2, 0)]),
        1,
        "11 ms > 10 ms"
    );
    // Member 2 (load factor 2, no sample) takes member 1's 10 ms: 2 in flight → 30/2 = 15
    // ms > 10 ms.
    let _b2 = busy(&set, 2, 2);
    assert_eq!(pick(&set, Rule::Ewma, &[(3, 2), (2, 1)]), 1);
    // 1 in flight on member 2: (1 + 1) × 10 / 2 = 10 ms: a tie.
    drop(_b2);
    let _b2 = busy(&set, 2, 1);
    assert_eq!(
        pick(&set, Rule::Ewma, &[(3, 2), (2, 1)]),
        2,
        "tie: first drawn"
    );
    assert_eq!(
        pick(&set, Rule::Ewma, &[(3, 1), (2, 1)]),
        1,
        "tie: first drawn"
    );
    // Against member 0 (10 in flight, 1 ms: 11 ms), member 2 takes 1 ms: 2 × 1 / 2 = 1 ms.
    assert_eq!(pick(&set, Rule::Ewma, &[(3, 0), (2, 1)]), 2);
}

#[test]
fn ewma_without_samples_compares_in_flight() {
    let set = Set::new(&[F::EMPTY, F::EMPTY]);
    let _b0 = busy(&set, 0, 3);
    assert_eq!(
        pick(&set, Rule::Ewma, &[(2, 0), (1, 0)]),
        1,
        "neither has a sample"
    );
    let _b1 = busy(&set, 1, 3);
    assert_eq!(pick(&set, Rule::Ewma, &[(2, 0), (1, 0)]), 0, "tie");
    assert_eq!(pick(&set, Rule::Ewma, &[(2, 1), (1, 0)]), 1, "tie");
    // Member 1 gets a sample: member 0 is charged it, so in flight still decide.
    set.members[1]
        .state()
        .observe_rtt(Duration::from_secs(5), set.now);
    let _b1b = busy(&set, 1, 1);
    assert_eq!(
        pick(&set, Rule::Ewma, &[(2, 1), (1, 0)]),
        0,
        "3 < 4 in flight"
    );
    assert_eq!(pick(&set, Rule::Ewma, &[(2, 0), (1, 0)]), 0);
    set.members[0]
        .state()
        .observe_rtt(Duration::from_secs(10), set.now);
    assert_eq!(pick(&set, Rule::Ewma, &[(2, 0), (1, 0)]), 1, "40 s > 20 s");
}

#[test]
fn the_generator() {
    let mut state = 1;
    assert_eq!(wyrand(&mut state), 0xcdef_1695_e1f8_ed2c);
    assert_eq!(wyrand(&mut state), 0x61d6_d24b_1c9a_ad40);
    assert_eq!(wyrand(&mut state), 0x8cf8_80c2_2eeb_fadf);
    assert_eq!(state, 16_240_640_158_330_268_814);
    assert_eq!(below(u64::MAX, 10), 9);
    assert_eq!(below(0, 10), 0);
    assert_eq!(below(1 << 63, 10), 5);
    assert_eq!(below(0xffff_ffff, 7), 0, "the low bits do not count");
    let mut counts = [0u32; 4];
    for _ in 0..40_000 {
        counts[random_below(4) as usize] += 1;
    }
    for c in counts {
        assert!((9_400..10_600).contains(&c), "{counts:?}");
    }
    assert_ne!(STATE.with(Cell::get), 0, "seeded");
    // Seeded once: the next draws continue the thread's sequence.
    let mut state = STATE.with(Cell::get);
    for _ in 0..4 {
        assert_eq!(random_below(1 << 31), below(wyrand(&mut state), 1 << 31));
    }
    // Another thread has its own sequence.
    let here: Vec<u32> = (0..8).map(|_| random_below(1 << 30)).collect();
    let there = std::thread::spawn(|| (0..8).map(|_| random_below(1 << 30)).collect::<Vec<_>>())
        .join()
        .unwrap();
    assert_ne!(here, there);
}

fn make_store(method: &str, n: usize) -> (BalancerStore, Instant) {
    let mut params = BalancerParams::new("b");
    params.set("lbmethod", method).unwrap();
    params.set("ewmadecay", "1").unwrap();
    let now = t0();
    let members = (0..n).map(|i| MemberParams::new(&format!("http://m{i}")).unwrap());
    (BalancerStore::new(params, members, now).unwrap(), now)
}

#[test]
fn idle_picks_spread_evenly() {
    for method in ["p2c", "p2c-ewma"] {
        let (store, now) = make_store(method, 4);
        let mut counts = [0u32; 4];
        for _ in 0..8_000 {
            let p = store.pick(&PickRequest::new(), now).unwrap();
            counts[p.position()] += 1;
        }
        for c in counts {
            assert!((1_800..2_200).contains(&c), "{method}: {counts:?}");
        }
    }
}

#[test]
fn picks_avoid_the_slow_and_the_busy() {
    let (store, now) = make_store("p2c-ewma", 4);
    let snapshot = store.snapshot();
    for (i, m) in snapshot.members().iter().enumerate() {
        let rtt = if i == 3 { 10 } else { 1 };
        m.state().observe_rtt(Duration::from_millis(rtt), now);
    }
    let mut held = Vec::new();
    let mut slow = 0;
    for _ in 0..30 {
        let p = store.pick(&PickRequest::new(), now).unwrap();
        slow += usize::from(p.position() == 3);
        held.push(p);
    }
    // 30 held: ~10 on each fast member before 10 ms × 1 ties 1 ms × 10.
    assert!(slow <= 3, "{slow}");
    // The store's ewmadecay (1 s) reached the members: e^-1 of 10 ms a second later.
    let later = snapshot.members()[3]
        .state()
        .rtt_estimate(now + Duration::from_secs(1));
    assert_eq!(later.unwrap().as_micros(), 3678);
}

#[test]
fn names() {
    assert_eq!(P2c.name(), "p2c");
    assert_eq!(P2cEwma.name(), "p2c-ewma");
    let (store, now) = make_store("p2c", 1);
    assert_eq!(store.pick(&PickRequest::new(), now).unwrap().position(), 0);
    let (store, now) = make_store("p2c-ewma", 1);
    assert_eq!(store.pick(&PickRequest::new(), now).unwrap().position(), 0);
}

/// In panic (`panic=`), the admission check that hash's walk and p2c's draw share admits
/// the regular members that only `E` or `C` keep out, as the walk (`next_index`) does; never
/// `D`, a spare in error, nor a standby in error; and without panic, none of them.
#[test]
fn panic_admits_what_the_walk_yields() {
    let set = Set::new(&[
        F::IN_ERROR,
        F::HC_FAILED,
        F::DISABLED,
        F::HOT_SPARE | F::IN_ERROR,
        F::EMPTY,
        F::HOT_STANDBY | F::IN_ERROR,
    ]);
    let admitted = |c: &Candidates<'_>| (0..6).filter(|&i| c.admits(i)).collect::<Vec<u32>>();
    let walked = |c: &Candidates<'_>| {
        let mut c = c.clone();
        std::iter::from_fn(|| c.next_index()).collect::<Vec<u32>>()
    };
    // Spares stand in for up to one unusable member.
    let calm = set.regular(1, &[]);
    assert_eq!(admitted(&calm), [4]);
    assert_eq!(walked(&calm), [4]);
    let panic = set.regular(1, &[]).with_panic(true);
    assert_eq!(
        admitted(&panic),
        [0, 1, 4],
        "E and C regulars, not D nor the spare"
    );
    assert_eq!(walked(&panic), [0, 1, 4]);
    // The standby phase is never relaxed.
    let standby = set.standby().with_panic(true);
    assert_eq!(admitted(&standby), Vec::<u32>::new());
    assert_eq!(walked(&standby), Vec::<u32>::new());
}
