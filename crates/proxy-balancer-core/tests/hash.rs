//! Property tests of `lbmethod=hash`: remapping when a member leaves or joins, spread across
//! equal members, weights, the rules that decide the candidates, independence of the
//! configuration order, and ketama's points against pingora-ketama (nginx's).
#![expect(clippy::unwrap_used, reason = "test helpers unwrap like tests do")]

use std::net::SocketAddr;
use std::time::Instant;

use proptest::prelude::*;
use proxy_balancer_core::{
    BalancerParams, BalancerStore, LbSet, LoadFactor, MemberId, MemberParams, PickRequest,
    StatusFlags,
};

/// Keys per measurement (the figure).
const KEYS: usize = 100_000;

#[expect(clippy::disallowed_methods, reason = "tests need a starting instant")]
fn t0() -> Instant {
    Instant::now()
}

fn key(i: usize) -> Vec<u8> {
    format!("user-{i}").into_bytes()
}

/// `count` keys, made once per test.
fn keys(count: usize) -> Vec<Vec<u8>> {
    (0..count).map(key).collect()
}

fn url(i: usize) -> String {
    format!("http://10.1.{}.{}:8080", i / 256, i % 256)
}

fn store(ring: &str, members: &[(String, u32)], now: Instant) -> BalancerStore {
    let mut params = BalancerParams::new("hash");
    params.set("lbmethod", "hash").unwrap();
    params.set("hashring", ring).unwrap();
    params.force_recovery = false;
    let members = members.iter().map(|(u, lbf)| {
        MemberParams::new(u)
            .unwrap()
            .with_load_factor(LoadFactor::from_lbf(*lbf).unwrap())
    });
    BalancerStore::new(params, members, now).unwrap()
}

fn equal(n: usize) -> Vec<(String, u32)> {
    (0..n).map(|i| (url(i), 100)).collect()
}

/// The member each key is sent to, by the number in its URL (see [`url`]).
fn mapping(store: &BalancerStore, keys: &[Vec<u8>], now: Instant) -> Vec<u16> {
    let snapshot = store.snapshot();
    let numbers: Vec<u16> = snapshot.members().iter().map(|m| number(m.url())).collect();
    keys.iter()
        .map(|k| {
            let picked = snapshot.pick(&PickRequest::new().with_key(k), now).unwrap();
            numbers[picked.position()]
        })
        .collect()
}

/// The number of a member made by [`url`].
fn number(url: &str) -> u16 {
    let host = url
        .trim_start_matches("http://10.1.")
        .trim_end_matches(":8080");
    let (hi, lo) = host.split_once('.').unwrap();
    hi.parse::<u16>().unwrap() * 256 + lo.parse::<u16>().unwrap()
}

fn moved(a: &[u16], b: &[u16]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x != y).count()
}

/// The largest deviation of a member's share of `keys` from the equal share, as a fraction
/// of the equal share.
fn spread(map: &[u16], n: usize) -> f64 {
    let mut counts = std::collections::HashMap::new();
    for u in map {
        *counts.entry(*u).or_insert(0usize) += 1;
    }
    assert_eq!(counts.len(), n, "every member gets keys");
    let fair = map.len() as f64 / n as f64;
    counts
        .values()
        .map(|&c| (c as f64 - fair).abs() / fair)
        .fold(0.0, f64::max)
}

/// The member counts the remap and spread tests run at: 3…64 sampled, so that the file
/// runs in seconds in a debug build (the full sweep: `full_sweep`, ignored by default).
const SAMPLED: [usize; 6] = [3, 4, 7, 16, 33, 64];

/// One member leaving (removed from the balancer, or disabled) or joining moves at most
/// 1/N + 2 % of 100,000 keys, and a disabled member moves only its own keys, which come
/// back when it does.
fn remap(ring: &str, sizes: impl IntoIterator<Item = usize>) {
    let now = t0();
    let all = keys(KEYS);
    let few = &all[..10_000];
    let mut worst: (f64, usize, &str) = (0.0, 0, "");
    for n in sizes {
        let base = store(ring, &equal(n), now);
        let before = mapping(&base, &all, now);
        let bound = KEYS as f64 * (1.0 / n as f64 + 0.02);
        let gone = url(n / 2);
        let gone_number = number(&gone);
        let less: Vec<(String, u32)> = equal(n).into_iter().filter(|(u, _)| *u != gone).collect();
        let removed = mapping(&store(ring, &less, now), &all, now);
        let m = moved(&before, &removed);
        assert!(m as f64 <= bound, "{ring} N={n}: removal moved {m} keys");
        let excess = m as f64 / KEYS as f64 - 1.0 / n as f64;
        if excess > worst.0 {
            worst = (excess, n, "removal");
        }
        assert!(removed.iter().all(|&r| r != gone_number));
        let more = mapping(&store(ring, &equal(n + 1), now), &all, now);
        let m = moved(&before, &more);
        assert!(m as f64 <= bound, "{ring} N={n}: a join moved {m} keys");
        let excess = m as f64 / KEYS as f64 - 1.0 / n as f64;
        if excess > worst.0 {
            worst = (excess, n, "join");
        }
        // Disabled: exactly its keys move, and nothing else.
        let member = base.snapshot().member_by_url(&gone).unwrap().clone();
        member.state().insert_flags(StatusFlags::DISABLED);
        let disabled = mapping(&base, few, now);
        for (b, d) in before.iter().zip(&disabled) {
            assert_ne!(*d, gone_number);
            if *b != gone_number {
                assert_eq!(b, d, "{ring} N={n}: a key of another member moved");
            }
        }
        member.state().remove_flags(StatusFlags::DISABLED);
        assert_eq!(mapping(&base, few, now), before[..few.len()]);
    }
    eprintln!(
        "{ring}: worst remap above 1/N: {:.4} at N={} ({})",
        worst.0, worst.1, worst.2
    );
}

#[test]
fn maglev_remaps_at_most_one_nth_plus_2_percent() {
    remap("maglev", SAMPLED);
}

#[test]
fn ketama_remaps_at_most_one_nth_plus_2_percent() {
    remap("ketama", SAMPLED);
}

/// Every N from 3 to 64 (a minute in a debug build; seconds with `--release`): `cargo test
/// -p proxy-balancer-core --release --test hash -- --ignored --nocapture`.
#[test]
#[ignore = "the full sweep of N = 3…64; the sampled tests run by default"]
fn full_sweep() {
    remap("maglev", 3..=64);
    remap("ketama", 3..=64);
    spreads(3..=64);
}

fn spreads(sizes: impl IntoIterator<Item = usize>) {
    let now = t0();
    let all = keys(KEYS);
    let mut worst = (0.0, 0);
    for n in sizes {
        let s = spread(&mapping(&store("maglev", &equal(n), now), &all, now), n);
        assert!(
            s <= 0.10,
            "N={n}: a member is {:.1} % off its share",
            s * 100.0
        );
        worst = if s > worst.0 { (s, n) } else { worst };
    }
    eprintln!(
        "maglev: worst spread ±{:.2} % at N={}",
        worst.0 * 100.0,
        worst.1
    );
}

/// Maglev spreads 100,000 keys within ±10 % across equal members.
#[test]
fn maglev_spreads_within_10_percent() {
    spreads(SAMPLED);
}

/// Ketama's spread, measured and reported (160 points per member cannot reach ±10 %): the
/// figure is printed; the assertion only guards against a broken table.
#[test]
fn ketama_spread_is_measured() {
    let now = t0();
    let all = keys(KEYS);
    let mut worst = (0.0, 0);
    for n in [3, 4, 8, 16, 32, 64] {
        let s = spread(&mapping(&store("ketama", &equal(n), now), &all, now), n);
        worst = if s > worst.0 { (s, n) } else { worst };
    }
    eprintln!(
        "ketama: worst spread ±{:.2} % at N={}",
        worst.0 * 100.0,
        worst.1
    );
    assert!(worst.0 < 0.6, "ketama spread {worst:?}");
}

/// Weights: a member of load factor w gets w / Σw of the keys (Maglev, within 10 % of its
/// share).
#[test]
fn maglev_respects_weights() {
    let now = t0();
    let members: Vec<(String, u32)> = (0..6).map(|i| (url(i), 100 * (1 + i as u32 % 3))).collect();
    let total: u32 = members.iter().map(|m| m.1).sum();
    let map = mapping(&store("maglev", &members, now), &keys(KEYS), now);
    for (u, lbf) in &members {
        let got = map.iter().filter(|&&m| m == number(u)).count() as f64;
        let want = KEYS as f64 * f64::from(*lbf) / f64::from(total);
        assert!(
            (got - want).abs() <= want * 0.1,
            "{u}: {got} keys, want {want}"
        );
    }
}

/// Ketama weights: 160 points per unit of weight (loadfactor 1.5 counts as 2).
#[test]
fn ketama_respects_weights() {
    let now = t0();
    let members = vec![(url(0), 100), (url(1), 150), (url(2), 300)];
    let map = mapping(&store("ketama", &members, now), &keys(KEYS), now);
    let share = |i: u16| map.iter().filter(|&&m| m == i).count() as f64 / KEYS as f64;
    // 1 : 2 : 3 of the points; ketama's arcs are uneven, so a loose check of the order.
    assert!(share(0) < share(1) && share(1) < share(2));
    assert!((share(2) - 0.5).abs() < 0.1, "{}", share(2));
}

/// Two balancers listing the same members in different orders map every key alike.
#[test]
fn mapping_does_not_depend_on_configuration_order() {
    let now = t0();
    for ring in ["maglev", "ketama"] {
        let members: Vec<(String, u32)> = (0..9)
            .map(|i| (url(i), 100 + 50 * (i as u32 % 4)))
            .collect();
        let mut reversed = members.clone();
        reversed.reverse();
        let mut shuffled = members.clone();
        shuffled.rotate_left(4);
        let k = keys(20_000);
        let a = mapping(&store(ring, &members, now), &k, now);
        assert_eq!(a, mapping(&store(ring, &reversed, now), &k, now));
        assert_eq!(a, mapping(&store(ring, &shuffled, now), &k, now));
    }
}

/// `hashring=ketama` sends keys where pingora-ketama (nginx's `hash … consistent`) does.
#[test]
fn ketama_agrees_with_pingora() {
    let now = t0();
    let cases: [Vec<(String, u32)>; 3] = [
        vec![
            ("http://127.0.0.1:7777".into(), 100),
            ("http://127.0.0.1:7778".into(), 100),
        ],
        (0..10).map(|i| (url(i), 100)).collect(),
        (0..7).map(|i| (url(i), 100 * (1 + i as u32 % 3))).collect(),
    ];
    for members in cases {
        let buckets: Vec<pingora_ketama::Bucket> = members
            .iter()
            .map(|(u, lbf)| {
                let addr: SocketAddr = u.trim_start_matches("http://").parse().unwrap();
                pingora_ketama::Bucket::new(addr, lbf / 100)
            })
            .collect();
        let continuum = pingora_ketama::Continuum::new(&buckets);
        let ours = store("ketama", &members, now);
        let k = keys(20_000);
        let snapshot = ours.snapshot();
        for key in &k {
            let got = snapshot
                .pick(&PickRequest::new().with_key(key), now)
                .unwrap();
            let want = continuum.node(key).unwrap();
            assert_eq!(got.member().url(), format!("http://{want}"));
        }
        // The samples of pingora-ketama's test that match nginx.
        if members.len() == 2 {
            let pick = |k: &[u8]| {
                let p = ours.pick(&PickRequest::new().with_key(k), now).unwrap();
                p.member().url().to_owned()
            };
            assert_eq!(pick(b"/some/path"), "http://127.0.0.1:7778");
            assert_eq!(pick(b"/some/longer/path"), "http://127.0.0.1:7777");
            assert_eq!(pick(b"/g"), "http://127.0.0.1:7777");
        }
    }
}

/// A request without a key is balanced as byrequests among the same candidates.
#[test]
fn no_key_is_byrequests() {
    let now = t0();
    let s = store("maglev", &[(url(0), 100), (url(1), 200)], now);
    let mut counts = [0; 2];
    for _ in 0..300 {
        let p = s.pick(&PickRequest::new(), now).unwrap();
        counts[usize::from(p.member().url() == url(1))] += 1;
    }
    assert_eq!(counts, [100, 200]);
}

#[derive(Clone, Debug)]
struct Spec {
    lbf: u32,
    set: u8,
    flags: StatusFlags,
}

fn build(specs: &[Spec], ring: &str, now: Instant) -> BalancerStore {
    let mut params = BalancerParams::new("prop");
    params.set("lbmethod", "hash").unwrap();
    params.set("hashring", ring).unwrap();
    params.force_recovery = false;
    let members = specs.iter().enumerate().map(|(i, s)| {
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

/// The candidates Apache's `find_best_worker` would choose among, by index (as in
/// `pick_props.rs`), leaving out the members in `tried`.
fn model_candidates(specs: &[Spec], tried: &[usize]) -> Vec<usize> {
    use StatusFlags as F;
    let mut sets: Vec<u8> = specs.iter().map(|s| s.set).collect();
    sets.sort_unstable();
    sets.dedup();
    for set in sets {
        let usable = |i: usize, s: &Spec| {
            !tried.contains(&i)
                && (s.flags.is_usable()
                    || (s.flags.contains(F::IN_ERROR)
                        && s.flags.contains(F::IGNORE_ERRORS)
                        && !s.flags.difference(F::IN_ERROR).intersects(F::UNUSABLE)))
        };
        let (mut regular, mut spares, mut standbys, mut unusable) =
            (Vec::new(), Vec::new(), Vec::new(), 0);
        for (i, s) in specs.iter().enumerate().filter(|(_, s)| s.set == set) {
            if s.flags.contains(F::DRAIN) {
                if !s.flags.intersects(F::HOT_SPARE | F::HOT_STANDBY) {
                    unusable += 1;
                }
                continue;
            }
            if s.flags.contains(F::HOT_SPARE) {
                if usable(i, s) {
                    spares.push(i);
                }
            } else if s.flags.contains(F::HOT_STANDBY) {
                if usable(i, s) {
                    standbys.push(i);
                }
            } else if usable(i, s) {
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

fn spec_strategy() -> impl Strategy<Value = Spec> {
    (1u32..=4, 0u8..3, flags_strategy()).prop_map(|(lf, set, flags)| Spec {
        lbf: lf * 100,
        set,
        flags,
    })
}

fn index_of(url: &str) -> usize {
    url.trim_start_matches("http://m").parse().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Whatever the flags, lbsets, spares, standbys and tried members: a hash pick is one of
    /// the candidates Apache's rules give (never disabled, stopped, in error, draining or
    /// tried), every candidate gets keys, and the same key always gets the same member.
    #[test]
    fn only_candidates_and_all_of_them(
        specs in prop::collection::vec(spec_strategy(), 1..=10),
        tried_mask in 0u16..1024,
        ketama in any::<bool>(),
    ) {
        let now = t0();
        let ring = if ketama { "ketama" } else { "maglev" };
        let store = build(&specs, ring, now);
        let snapshot = store.snapshot();
        let tried: Vec<usize> = (0..specs.len()).filter(|i| tried_mask & (1 << i) != 0).collect();
        let tried_ids: Vec<MemberId> = tried.iter().map(|&i| snapshot.members()[i].id()).collect();
        let candidates = model_candidates(&specs, &tried);
        let mut seen = vec![false; specs.len()];
        for k in 0..1500usize {
            let key = k.to_le_bytes();
            let request = PickRequest::new().with_key(&key).with_tried(&tried_ids);
            match snapshot.pick(&request, now) {
                Ok(p) => {
                    let i = index_of(p.member().url());
                    prop_assert!(candidates.contains(&i), "picked {} ({:?}), candidates {:?}", i, specs[i], candidates);
                    seen[i] = true;
                    drop(p);
                    let again = snapshot.pick(&request, now).unwrap();
                    prop_assert_eq!(index_of(again.member().url()), i);
                }
                Err(_) => prop_assert!(candidates.is_empty()),
            }
        }
        for &i in &candidates {
            prop_assert!(seen[i], "candidate {} never picked; candidates {:?}", i, candidates);
        }
    }
}
