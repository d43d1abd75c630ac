//! Property tests of the pick: exact byrequests cycles, and never a member the rules exclude.
#![expect(clippy::unwrap_used, reason = "test helpers unwrap like tests do")]

use std::time::Instant;

use proptest::prelude::*;
use proxy_balancer_core::{
    BalancerParams, BalancerStore, LbSet, LoadFactor, MemberParams, PickRequest, StatusFlags,
};

/// Some instant to start from: the code under test takes `now` as an argument and never
/// reads the clock itself.
#[expect(clippy::disallowed_methods, reason = "tests need a starting instant")]
fn t0() -> Instant {
    Instant::now()
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[derive(Clone, Debug)]
struct Spec {
    lbf: u32,
    set: u8,
    flags: StatusFlags,
}

fn build(specs: &[Spec], now: Instant) -> BalancerStore {
    let mut params = BalancerParams::new("prop");
    params.force_recovery = false;
    let members = specs.iter().enumerate().map(|(i, s)| {
        // An initial E would be cleared by the first retry check; errors are set below.
        MemberParams::new(&format!("http://m{i}"))
            .unwrap()
            .with_load_factor(LoadFactor::from_lbf(s.lbf).unwrap())
            .with_lb_set(LbSet::new(s.set).unwrap())
            .with_status(s.flags.difference(StatusFlags::IN_ERROR))
    });
    let store = BalancerStore::new(params, members, now).unwrap();
    for (m, s) in store.snapshot().members().iter().zip(specs) {
        if s.flags.contains(StatusFlags::IN_ERROR) {
            m.mark_error(now);
        }
    }
    store
}

/// The candidates Apache's `find_best_worker` would choose among, by index.
fn model_candidates(specs: &[Spec]) -> Vec<usize> {
    use StatusFlags as F;
    let mut sets: Vec<u8> = specs.iter().map(|s| s.set).collect();
    sets.sort_unstable();
    sets.dedup();
    for set in sets {
        let in_set = || specs.iter().enumerate().filter(move |(_, s)| s.set == set);
        let usable = |s: &Spec| {
            s.flags.is_usable()
                || (s.flags.contains(F::IN_ERROR)
                    && s.flags.contains(F::IGNORE_ERRORS)
                    && !s.flags.difference(F::IN_ERROR).intersects(F::UNUSABLE))
        };
        let mut regular = Vec::new();
        let mut spares = Vec::new();
        let mut standbys = Vec::new();
        let mut unusable = 0;
        for (i, s) in in_set() {
            if s.flags.contains(F::DRAIN) {
                if !s.flags.intersects(F::HOT_SPARE | F::HOT_STANDBY) {
                    unusable += 1;
                }
                continue;
            }
            if s.flags.contains(F::HOT_SPARE) {
                if usable(s) {
                    spares.push(i);
                }
            } else if s.flags.contains(F::HOT_STANDBY) {
                if usable(s) {
                    standbys.push(i);
                }
            } else if usable(s) {
                regular.push(i);
            } else {
                unusable += 1;
            }
        }
        regular.extend(spares.into_iter().take(unusable));
        if !regular.is_empty() {
            return regular;
        }
        if !standbys.is_empty() {
            return standbys;
        }
    }
    Vec::new()
}

fn flags_strategy() -> impl Strategy<Value = StatusFlags> {
    prop_oneof![
        6 => Just(StatusFlags::EMPTY),
        8 => (0u32..=0xff).prop_map(StatusFlags::from_bits_truncate),
    ]
}

fn spec_strategy(max_lf: u32) -> impl Strategy<Value = Spec> {
    (1..=max_lf, 0u8..3, flags_strategy()).prop_map(|(lf, set, flags)| Spec {
        lbf: lf * 100,
        set,
        flags,
    })
}

fn index_of(url: &str) -> usize {
    url.trim_start_matches("http://m").parse().unwrap()
}

proptest! {
    /// Over one full cycle, byrequests gives every usable member exactly its share.
    #[test]
    fn byrequests_cycle_is_exact(lfs in prop::collection::vec(1u32..=20, 1..=12)) {
        let now = t0();
        let specs: Vec<Spec> = lfs.iter().map(|&lf| Spec { lbf: lf * 100, set: 0, flags: StatusFlags::EMPTY }).collect();
        let store = build(&specs, now);
        let total: u64 = specs.iter().map(|s| u64::from(s.lbf)).sum();
        let g = specs.iter().fold(0, |g, s| gcd(g, u64::from(s.lbf)));
        let period = total / g;
        let mut counts = vec![0u64; specs.len()];
        for _ in 0..period {
            let p = store.pick(&PickRequest::new(), now).unwrap();
            counts[index_of(p.member().url())] += 1;
        }
        for (c, s) in counts.iter().zip(&specs) {
            prop_assert_eq!(*c, u64::from(s.lbf) / g);
        }
        store.settle();
        for m in store.snapshot().members() {
            prop_assert_eq!(m.state().lbstatus(), 0);
        }
    }

    /// Decimal load factors (2.25 and the like) keep exact cycles too.
    #[test]
    fn byrequests_decimal_factors(lbfs in prop::collection::vec(100u32..=400, 1..=4)) {
        let now = t0();
        let specs: Vec<Spec> = lbfs.iter().map(|&lbf| Spec { lbf, set: 0, flags: StatusFlags::EMPTY }).collect();
        let store = build(&specs, now);
        let total: u64 = specs.iter().map(|s| u64::from(s.lbf)).sum();
        let g = specs.iter().fold(0, |g, s| gcd(g, u64::from(s.lbf)));
        let mut counts = vec![0u64; specs.len()];
        for _ in 0..total / g {
            let p = store.pick(&PickRequest::new(), now).unwrap();
            counts[index_of(p.member().url())] += 1;
        }
        for (c, s) in counts.iter().zip(&specs) {
            prop_assert_eq!(*c, u64::from(s.lbf) / g);
        }
    }

    /// Whatever the flags and lbsets: only the members Apache's rules allow are picked
    /// (never disabled, stopped, erroring within retry, draining without route, or
    /// health-failed; spares one-for-one; standbys only when the set has nothing else;
    /// lowest set first), and over a cycle of the candidates each gets exactly its share.
    #[test]
    fn only_allowed_members_and_exact_shares(specs in prop::collection::vec(spec_strategy(6), 1..=10)) {
        let now = t0();
        let store = build(&specs, now);
        let candidates = model_candidates(&specs);
        if candidates.is_empty() {
            prop_assert!(store.pick(&PickRequest::new(), now).is_err());
            return Ok(());
        }
        let total: u64 = candidates.iter().map(|&i| u64::from(specs[i].lbf)).sum();
        let g = candidates.iter().fold(0, |g, &i| gcd(g, u64::from(specs[i].lbf)));
        let mut counts = vec![0u64; specs.len()];
        for _ in 0..total / g {
            let p = store.pick(&PickRequest::new(), now).unwrap();
            let i = index_of(p.member().url());
            prop_assert!(candidates.contains(&i), "picked {} ({:?}), candidates {:?}", i, specs[i], candidates);
            let flags = p.member().flags();
            prop_assert!(flags.is_usable() && !flags.contains(StatusFlags::DRAIN));
            counts[i] += 1;
        }
        for &i in &candidates {
            prop_assert_eq!(counts[i], u64::from(specs[i].lbf) / g);
        }
    }

    /// bybusyness and bytraffic never pick outside the candidates either.
    #[test]
    fn other_methods_respect_the_rules(
        specs in prop::collection::vec(spec_strategy(6), 1..=10),
        method in prop_oneof![Just("bybusyness"), Just("bytraffic")],
        hold in prop::collection::vec(any::<bool>(), 40),
    ) {
        let now = t0();
        let store = build(&specs, now);
        store.update_params(|p| p.set("lbmethod", method)).unwrap();
        let candidates = model_candidates(&specs);
        let mut held = Vec::new();
        for keep in hold {
            match store.pick(&PickRequest::new(), now) {
                Ok(p) => {
                    let i = index_of(p.member().url());
                    prop_assert!(candidates.contains(&i));
                    p.member().state().add_read(100 + i as u64);
                    if keep { held.push(p); }
                }
                Err(_) => prop_assert!(candidates.is_empty()),
            }
        }
        drop(held);
        for m in store.snapshot().members() {
            prop_assert_eq!(m.state().busy(), 0);
        }
    }

    /// Status strings never panic the parser and round-trip when valid.
    #[test]
    fn status_parser_never_panics(s in ".{0,16}") {
        if let Ok(f) = s.parse::<StatusFlags>() {
            prop_assert_eq!(f.to_string().parse::<StatusFlags>().unwrap(), f);
        }
    }

    /// Load factor text never panics the parser; valid values round-trip.
    #[test]
    fn load_factor_parser(s in "[0-9.]{0,8}|.{0,8}", lbf in 100u32..=10_000) {
        let _ = s.parse::<LoadFactor>();
        let lf = LoadFactor::from_lbf(lbf).unwrap();
        prop_assert_eq!(lf.to_string().parse::<LoadFactor>().unwrap(), lf);
    }
}
