//! The pick against a plain model of Apache's algorithm (APACHE-ALGORITHMS.md §2, §3, §5,
//! §6, §8.1), run side by side over random operations: the same member for every pick and
//! the same `lbstatus` afterwards. This pins the byrequests fast path (a precomputed cycle)
//! to Apache's sequence through flag changes, errors, retries and sticky picks.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proxy_balancer_core::{
    BalancerParams, BalancerStore, LbSet, LoadFactor, MemberParams, PickRequest, Route,
    StatusFlags as F,
};

/// Some instant to start from: the code under test takes `now` as an argument and never
/// reads the clock itself.
#[expect(clippy::disallowed_methods, reason = "tests need a starting instant")]
fn t0() -> Instant {
    Instant::now()
}

const RETRY: u64 = 10;

#[derive(Clone, Debug)]
struct ModelMember {
    lbf: i64,
    set: u8,
    flags: F,
    lbstatus: i64,
    error_time: Option<u64>,
}

#[derive(Debug)]
struct Model {
    members: Vec<ModelMember>,
    force_recovery: bool,
}

impl Model {
    fn try_recover(&mut self, i: usize, now: u64) -> bool {
        let m = &mut self.members[i];
        if m.flags.contains(F::IN_ERROR) && !m.flags.contains(F::STOPPED) {
            let due = m.flags.contains(F::IGNORE_ERRORS)
                || m.error_time.map_or(true, |t| now > t + RETRY);
            if due {
                m.flags = m.flags.difference(F::IN_ERROR);
            }
        }
        self.members[i].flags.is_usable()
    }

    fn force_recovery(&mut self, now: u64) {
        for i in 0..self.members.len() {
            if !self.members[i].flags.contains(F::IN_ERROR) {
                return;
            }
            self.try_recover(i, now);
            if !self.members[i].flags.contains(F::IN_ERROR) {
                return;
            }
        }
        if self.force_recovery {
            for m in &mut self.members {
                m.flags = m.flags.difference(F::IN_ERROR);
            }
        }
    }

    fn byrequests(&mut self, candidates: &[usize]) -> Option<usize> {
        let mut best: Option<usize> = None;
        let mut total = 0;
        for &i in candidates {
            self.members[i].lbstatus += self.members[i].lbf;
            total += self.members[i].lbf;
            if best.map_or(true, |b| {
                self.members[i].lbstatus > self.members[b].lbstatus
            }) {
                best = Some(i);
            }
        }
        if let Some(b) = best {
            self.members[b].lbstatus -= total;
        }
        best
    }

    fn balance(&mut self, now: u64) -> Option<usize> {
        let mut sets: Vec<u8> = self.members.iter().map(|m| m.set).collect();
        sets.sort_unstable();
        sets.dedup();
        for set in sets {
            let mut regular = Vec::new();
            let mut spares = Vec::new();
            let mut standbys = Vec::new();
            let mut unusable = 0;
            for i in 0..self.members.len() {
                let flags = self.members[i].flags;
                if self.members[i].set != set {
                    continue;
                }
                if flags.contains(F::DRAIN) {
                    if !flags.intersects(F::HOT_SPARE | F::HOT_STANDBY) {
                        unusable += 1;
                    }
                    continue;
                }
                let usable = flags.is_usable() || self.try_recover(i, now);
                if flags.contains(F::HOT_SPARE) {
                    if usable {
                        spares.push(i);
                    }
                } else if flags.contains(F::HOT_STANDBY) {
                    if usable {
                        standbys.push(i);
                    }
                } else if usable {
                    regular.push(i);
                } else {
                    unusable += 1;
                }
            }
            regular.extend(spares.into_iter().take(unusable));
            if let Some(b) = self.byrequests(&regular) {
                return Some(b);
            }
            if let Some(b) = self.byrequests(&standbys) {
                return Some(b);
            }
        }
        None
    }

    fn pick(&mut self, route: Option<usize>, now: u64) -> Option<usize> {
        self.force_recovery(now);
        if let Some(r) = route {
            // Every member i has route "r{i}": the route names one member.
            let usable = self.members[r].flags.is_usable() || self.try_recover(r, now);
            if usable {
                let mut total = 0;
                for m in &mut self.members {
                    if m.flags.is_usable() {
                        m.lbstatus += m.lbf;
                        total += m.lbf;
                    }
                }
                self.members[r].lbstatus -= total;
                return Some(r);
            }
        }
        self.balance(now)
    }
}

#[derive(Clone, Debug)]
enum Op {
    Picks(usize),
    Sticky(usize),
    Insert(usize, F),
    Remove(usize, F),
    Error(usize),
    Advance(u64),
    Settle,
    /// Moves a member to another lbset: a new snapshot, lbstatus kept (the old snapshot's
    /// byrequests cycle is folded into it).
    MoveSet(usize, u8),
    /// Gives a member another load factor: a new snapshot, and Apache sets every member's
    /// lbstatus to its own load factor.
    SetFactor(usize, u32),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let flag = prop_oneof![
        Just(F::DISABLED),
        Just(F::HOT_STANDBY),
        Just(F::HOT_SPARE),
        Just(F::DRAIN),
        Just(F::STOPPED),
        Just(F::HC_FAILED),
        Just(F::IGNORE_ERRORS),
    ];
    prop_oneof![
        10 => (1usize..=90).prop_map(Op::Picks),
        2 => (0usize..6).prop_map(Op::Sticky),
        2 => ((0usize..6), flag.clone()).prop_map(|(i, f)| Op::Insert(i, f)),
        3 => ((0usize..6), flag).prop_map(|(i, f)| Op::Remove(i, f)),
        2 => (0usize..6).prop_map(Op::Error),
        2 => (0u64..=12).prop_map(Op::Advance),
        1 => Just(Op::Settle),
        1 => ((0usize..6), (0u8..=1)).prop_map(|(i, set)| Op::MoveSet(i, set)),
        1 => ((0usize..6), (1u32..=4)).prop_map(|(i, lf)| Op::SetFactor(i, lf)),
    ]
}

fn member_strategy() -> impl Strategy<Value = (u32, u8, F)> {
    let flags = prop_oneof![
        6 => Just(F::EMPTY),
        1 => Just(F::HOT_STANDBY),
        1 => Just(F::HOT_SPARE),
        1 => Just(F::DRAIN),
        1 => Just(F::DISABLED),
    ];
    (1u32..=4, 0u8..=1, flags)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn pick_matches_apache_model(
        members in prop::collection::vec(member_strategy(), 1..=6),
        ops in prop::collection::vec(op_strategy(), 1..=40),
        force_recovery in any::<bool>(),
    ) {
        let start = t0();
        let mut params = BalancerParams::new("model");
        params.force_recovery = force_recovery;
        let store = BalancerStore::new(
            params,
            members.iter().enumerate().map(|(i, &(lf, set, flags))| {
                MemberParams::new(&format!("http://m{i}"))
                    .unwrap()
                    .with_load_factor(LoadFactor::from_lbf(lf * 100).unwrap())
                    .with_lb_set(LbSet::new(set).unwrap())
                    .with_route(Route::new(&format!("r{i}")).unwrap())
                    .with_retry(Duration::from_secs(RETRY))
                    .with_status(flags)
            }),
            start,
        )
        .unwrap();
        let mut model = Model {
            members: members
                .iter()
                .map(|&(lf, set, flags)| ModelMember {
                    lbf: i64::from(lf) * 100,
                    set,
                    flags,
                    lbstatus: 0,
                    error_time: None,
                })
                .collect(),
            force_recovery,
        };
        let n = members.len();
        let snapshot = store.snapshot();
        // Member states live on across snapshots: the first snapshot's are every later one's.
        let state = |i: usize| snapshot.members()[i].state();
        let mut secs = 0u64;
        let mut picks = 0usize;
        for op in ops {
            let now = start + Duration::from_secs(secs);
            match op {
                Op::Picks(k) => {
                    for _ in 0..k {
                        let got = store
                            .pick(&PickRequest::new(), now)
                            .ok()
                            .map(|p| p.member().url()[8..].parse::<usize>().unwrap());
                        let want = model.pick(None, secs);
                        picks += 1;
                        prop_assert_eq!(got, want, "pick {}", picks);
                    }
                }
                Op::Sticky(r) => {
                    let r = r % n;
                    let route = format!("r{r}");
                    let got = store
                        .pick(&PickRequest::new().with_route(&route), now)
                        .ok()
                        .map(|p| p.member().url()[8..].parse::<usize>().unwrap());
                    let want = model.pick(Some(r), secs);
                    prop_assert_eq!(got, want, "sticky pick for {}", route);
                }
                Op::Insert(i, f) => {
                    state(i % n).insert_flags(f);
                    let m = &mut model.members[i % n];
                    m.flags = m.flags.union(f);
                }
                Op::Remove(i, f) => {
                    state(i % n).remove_flags(f);
                    let m = &mut model.members[i % n];
                    m.flags = m.flags.difference(f);
                }
                Op::Error(i) => {
                    state(i % n).mark_error(now);
                    let m = &mut model.members[i % n];
                    if !m.flags.contains(F::IGNORE_ERRORS) {
                        m.flags = m.flags.union(F::IN_ERROR);
                        m.error_time = Some(secs);
                    }
                }
                Op::Advance(s) => secs += s,
                Op::MoveSet(i, set) => {
                    let id = snapshot.members()[i % n].id();
                    store
                        .update_member(id, |m| m.lb_set = LbSet::new(set).unwrap())
                        .unwrap();
                    model.members[i % n].set = set;
                }
                Op::SetFactor(i, lf) => {
                    let id = snapshot.members()[i % n].id();
                    let lbf = LoadFactor::from_lbf(lf * 100).unwrap();
                    store.update_member(id, |m| m.load_factor = lbf).unwrap();
                    let changed = model.members[i % n].lbf != i64::from(lf) * 100;
                    model.members[i % n].lbf = i64::from(lf) * 100;
                    if changed {
                        for m in &mut model.members {
                            m.lbstatus = m.lbf;
                        }
                    }
                }
                Op::Settle => {
                    store.settle();
                    for i in 0..n {
                        prop_assert_eq!(state(i).lbstatus(), model.members[i].lbstatus, "member {}", i);
                    }
                }
            }
            for i in 0..n {
                prop_assert_eq!(state(i).flags(), model.members[i].flags, "flags of member {}", i);
            }
        }
        store.settle();
        for i in 0..n {
            prop_assert_eq!(state(i).lbstatus(), model.members[i].lbstatus, "member {} at the end", i);
        }
    }
}
