//! The lbmethods: how a member is chosen among the candidates of a pick.
//!
//! The pick ([`BalancerSnapshot::pick`](crate::BalancerSnapshot::pick)) works out which
//! members may take the request (lbsets, hot spares, hot standbys, drain, retry windows,
//! members already tried) and hands them, in Apache's order, to the lbmethod as
//! [`Candidates`]. The lbmethod chooses one.
//!
//! | Apache `lbmethod=` | type | rule |
//! | --- | --- | --- |
//! | `byrequests` (default) | [`ByRequests`] | smooth weighted round robin on `lbstatus`, exactly Apache's |
//! | `bytraffic` | [`ByTraffic`] | least bytes (sent + read) per load factor |
//! | `bybusyness` | [`ByBusyness`] | fewest requests in flight; ties by the byrequests score |
//! | `heartbeat` | [`Heartbeat`] | smooth weighted round robin on the members' reported `ready` slots; byrequests without fresh reports |
//! | `hash` (beyond Apache) | [`Hash`](struct@Hash) | consistent hashing of a request key ([`HashKey`](crate::HashKey)) over a Maglev table or nginx's ketama points ([`HashRing`](crate::HashRing)) |
//! | `p2c` (beyond Apache) | [`P2c`] | the less busy of two random candidates, per load factor |
//! | `p2c-ewma` (beyond Apache) | [`P2cEwma`] | the lower of two random candidates' peak-EWMA latency × (requests in flight + 1), as tower and linkerd |
//!
//! Write your own by implementing [`LbMethod`] and using [`LbMethodKind::Custom`].

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use crate::error::ParamError;
use crate::member::{Hot, Member, MemberId};
use crate::ring::Ring;
use crate::sync::Ordering;

mod busyness;
pub(crate) mod hash;
mod heartbeat;
mod p2c;
mod requests;
mod traffic;

pub use crate::member::LoadReport;
pub use busyness::ByBusyness;
pub use hash::Hash;
pub use heartbeat::Heartbeat;
pub use p2c::{P2c, P2cEwma};
pub use requests::ByRequests;
pub use traffic::ByTraffic;

/// A load-balancing method.
///
/// `choose` is called once per balanced pick with the candidates in Apache's evaluation
/// order (the set's usable regular members in configuration order, then the spares that
/// replace unusable members; or the set's hot standbys). It may update member state (the
/// built-in methods keep `lbstatus` as Apache does). Ties should go to the earlier
/// candidate, as in Apache.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Instant;
/// use proxy_balancer_core::lbmethod::{Candidates, LbMethod};
/// use proxy_balancer_core::{BalancerParams, BalancerStore, LbMethodKind, Member, MemberParams, PickRequest};
///
/// /// Always the first candidate: a primary/backup pair without weights.
/// #[derive(Debug)]
/// struct First;
///
/// impl LbMethod for First {
///     fn name(&self) -> &str {
///         "first"
///     }
///     fn choose<'a>(&self, mut candidates: Candidates<'a>) -> Option<&'a Member> {
///         candidates.next()
///     }
/// }
///
/// let mut params = BalancerParams::new("pair");
/// params.lb_method = LbMethodKind::Custom(Arc::new(First));
/// let members = [MemberParams::new("http://primary")?, MemberParams::new("http://backup")?];
/// let now = Instant::now();
/// let store = BalancerStore::new(params, members, now)?;
/// assert_eq!(store.pick(&PickRequest::new(), now)?.member().url(), "http://primary");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait LbMethod: fmt::Debug + Send + Sync + 'static {
    /// The method's name, as `lbmethod=` would give it.
    fn name(&self) -> &str;

    /// Chooses one of the candidates, or none.
    fn choose<'a>(&self, candidates: Candidates<'a>) -> Option<&'a Member>;

    /// Called after a sticky pick sent a request to `chosen` without balancing. The default
    /// does Apache's accounting (every usable member's `lbstatus` grows by its load factor and
    /// the chosen member's shrinks by the total), so that byrequests and bybusyness make up
    /// for sticky traffic later.
    fn account_sticky(&self, members: &[Member], chosen: &Member) {
        account_sticky_lbstatus(members, chosen, None);
    }
}

/// Apache's sticky accounting (mod_proxy_balancer, "no lbmethod update hook"). With the
/// time of the pick (the built-in methods), a member whose slow start ramps weighs with its
/// [`Member::effective_lbf`], so sticky traffic elsewhere gives it no more credit than its
/// ramp allows; without (the trait's default, for custom methods), with its load factor.
pub(crate) fn account_sticky_lbstatus(members: &[Member], chosen: &Member, now: Option<Instant>) {
    let mut total = 0;
    for m in members {
        if m.is_usable() {
            let lbf = now.map_or_else(|| m.lbf(), |now| m.effective_lbf(now));
            m.state()
                .lbstatus_atomic()
                .fetch_add(lbf, Ordering::Relaxed);
            total += lbf;
        }
    }
    chosen
        .state()
        .lbstatus_atomic()
        .fetch_sub(total, Ordering::Relaxed);
}

/// The lbmethod of a balancer: one of Apache's, or your own.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum LbMethodKind {
    /// `lbmethod=byrequests` (the default).
    #[default]
    ByRequests,
    /// `lbmethod=bytraffic`.
    ByTraffic,
    /// `lbmethod=bybusyness`.
    ByBusyness,
    /// `lbmethod=heartbeat`, with its report age limit.
    Heartbeat(Heartbeat),
    /// `lbmethod=hash` (beyond Apache): consistent hashing of the request's key.
    Hash,
    /// `lbmethod=p2c` (beyond Apache): the less busy of two random candidates.
    P2c,
    /// `lbmethod=p2c-ewma` (beyond Apache): two random candidates compared by peak-EWMA
    /// latency times requests in flight.
    P2cEwma,
    /// A user-defined method.
    Custom(Arc<dyn LbMethod>),
}

impl LbMethodKind {
    /// The method's name (`byrequests`, `bytraffic`, `bybusyness`, `heartbeat`, `hash`,
    /// `p2c`, `p2c-ewma` or the custom name).
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Self::ByRequests => "byrequests",
            Self::ByTraffic => "bytraffic",
            Self::ByBusyness => "bybusyness",
            Self::Heartbeat(_) => "heartbeat",
            Self::Hash => "hash",
            Self::P2c => "p2c",
            Self::P2cEwma => "p2c-ewma",
            Self::Custom(m) => m.name(),
        }
    }

    pub(crate) fn choose<'a>(&self, candidates: Candidates<'a>) -> Option<&'a Member> {
        match self {
            Self::ByRequests => ByRequests.choose(candidates),
            Self::ByTraffic => ByTraffic.choose(candidates),
            Self::ByBusyness => ByBusyness.choose(candidates),
            Self::Heartbeat(m) => m.choose(candidates),
            Self::Hash => Hash.choose(candidates),
            Self::P2c => P2c.choose(candidates),
            Self::P2cEwma => P2cEwma.choose(candidates),
            Self::Custom(m) => m.choose(candidates),
        }
    }

    pub(crate) fn account_sticky(&self, members: &[Member], chosen: &Member, now: Instant) {
        match self {
            Self::Custom(m) => m.account_sticky(members, chosen),
            Self::Heartbeat(m) => m.account_sticky(members, chosen),
            _ => account_sticky_lbstatus(members, chosen, Some(now)),
        }
    }
}

impl PartialEq for LbMethodKind {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Custom(a), Self::Custom(b)) => Arc::ptr_eq(a, b),
            (Self::Heartbeat(a), Self::Heartbeat(b)) => a == b,
            (Self::Custom(_), _) | (_, Self::Custom(_)) => false,
            _ => self.name() == other.name(),
        }
    }
}

impl fmt::Debug for LbMethodKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Custom(m) => f.debug_tuple("Custom").field(m).finish(),
            Self::Heartbeat(m) => f.debug_tuple("Heartbeat").field(m).finish(),
            _ => f.write_str(self.name()),
        }
    }
}

impl fmt::Display for LbMethodKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LbMethodKind {
    type Err = ParamError;

    /// Parses Apache's `lbmethod=` names (case-insensitive). `heartbeat` gets the default
    /// report age limit ([`Heartbeat::new`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "byrequests" => Ok(Self::ByRequests),
            "bytraffic" => Ok(Self::ByTraffic),
            "bybusyness" => Ok(Self::ByBusyness),
            "heartbeat" => Ok(Self::Heartbeat(Heartbeat::new())),
            "hash" => Ok(Self::Hash),
            "p2c" => Ok(Self::P2c),
            "p2c-ewma" => Ok(Self::P2cEwma),
            _ => Err(ParamError::invalid(
                "lbmethod",
                s,
                "unknown lbmethod; expected byrequests, bytraffic, bybusyness, heartbeat, \
                 hash, p2c or p2c-ewma",
            )),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Phase {
    Regular,
    Spares { left: usize },
    Standby,
}

/// The members that may take a balanced request, in Apache's evaluation order.
///
/// An iterator that can be cloned to walk the candidates more than once (as bybusyness
/// does). Each member's usability is read again as it is yielded, so a member that fails
/// while a pick is in progress is not chosen.
#[derive(Clone)]
pub struct Candidates<'a> {
    members: &'a [Member],
    hot: &'a [Hot],
    indices: &'a [u32],
    pos: usize,
    phase: Phase,
    spare_limit: usize,
    tried: &'a [MemberId],
    now: Instant,
    key: Option<&'a [u8]>,
    /// The lbset is in panic (`panic=`): regular members kept out only by `E`, `C` or `J`
    /// are candidates too.
    panic: bool,
    /// The lbset's table, for `lbmethod=hash`.
    ring: Option<&'a Ring>,
}

impl<'a> Candidates<'a> {
    pub(crate) fn regular(
        (members, hot): (&'a [Member], &'a [Hot]),
        indices: &'a [u32],
        spare_limit: usize,
        tried: &'a [MemberId],
        now: Instant,
    ) -> Self {
        Self {
            members,
            hot,
            indices,
            pos: 0,
            phase: Phase::Regular,
            spare_limit,
            tried,
            now,
            key: None,
            panic: false,
            ring: None,
        }
    }

    pub(crate) fn standby(
        (members, hot): (&'a [Member], &'a [Hot]),
        indices: &'a [u32],
        tried: &'a [MemberId],
        now: Instant,
    ) -> Self {
        Self {
            members,
            hot,
            indices,
            pos: 0,
            phase: Phase::Standby,
            spare_limit: 0,
            tried,
            now,
            key: None,
            panic: false,
            ring: None,
        }
    }

    /// Sets the request's key ([`PickRequest::key`](crate::PickRequest::key)).
    pub(crate) const fn with_key(mut self, key: Option<&'a [u8]>) -> Self {
        self.key = key;
        self
    }

    /// Balances over the regular members kept out only by `E`, `C` or `J` too (the panic
    /// threshold).
    pub(crate) const fn with_panic(mut self, panic: bool) -> Self {
        self.panic = panic;
        self
    }

    /// Whether these candidates are a set in panic (`panic=`, beyond Apache): its regular
    /// members in error, failing their health check or ejected are among them.
    #[must_use]
    pub const fn in_panic(&self) -> bool {
        self.panic
    }

    /// Sets the lbset's hash table (`lbmethod=hash`).
    pub(crate) const fn with_ring(mut self, ring: Option<&'a Ring>) -> Self {
        self.ring = ring;
        self
    }

    /// The lbset's hash table, when the balancer's lbmethod is `hash`.
    pub(crate) const fn ring(&self) -> Option<&'a Ring> {
        self.ring
    }

    /// The request's key, for request-aware methods such as [`Hash`](struct@Hash): the bytes the
    /// balancer took from the request as the balancer's `hashkey` says (the client address,
    /// a header, a cookie, the path or the URI), or what the caller of
    /// [`BalancerSnapshot::pick`](crate::BalancerSnapshot::pick) set. `None` when the
    /// request has no such key.
    #[must_use]
    pub const fn key(&self) -> Option<&'a [u8]> {
        self.key
    }

    /// The time of the pick (the `now` given to
    /// [`BalancerSnapshot::pick`](crate::BalancerSnapshot::pick)), for methods that weigh
    /// time, such as [`Heartbeat`] with its report age limit.
    #[must_use]
    pub const fn now(&self) -> Instant {
        self.now
    }
}

impl<'a> Candidates<'a> {
    /// The next candidate's position and hot state (for the built-in methods: no pointer
    /// chase through the member's parameters).
    pub(crate) fn next_hot(&mut self) -> Option<(u32, &'a Hot)> {
        let index = self.next_index()?;
        Some((index, &self.hot[index as usize]))
    }

    /// The member at a position yielded by [`Candidates::next_hot`].
    pub(crate) fn member(&self, index: u32) -> &'a Member {
        &self.members[index as usize]
    }

    /// The hot state of the member at a position of the snapshot's member list.
    pub(crate) fn hot(&self, index: u32) -> &'a Hot {
        &self.hot[index as usize]
    }

    /// Whether the member at `index` (a position of one of this lbset's members in the
    /// snapshot's member list) is one of the candidates: whether a fresh walk of these
    /// candidates would yield it, whatever this one has yielded already. Allocates nothing;
    /// O(1) except for a hot spare, whose admission counts the usable spares before it
    /// (Apache's rule: the first usable spares, one per unusable regular member).
    pub(crate) fn admits(&self, index: u32) -> bool {
        use crate::flags::StatusFlags as F;
        let hot = &self.hot[index as usize];
        let flags = hot.state.flags();
        // In panic, the regular members that only E, C or J keep out are candidates (as in
        // `next_index`).
        let regular = !flags.intersects(F::HOT_SPARE.union(F::HOT_STANDBY));
        let out = if self.panic && regular && !matches!(self.phase, Phase::Standby) {
            flags.difference(F::PANIC_USABLE)
        } else {
            flags
        };
        if !out.is_usable() || flags.contains(F::DRAIN) {
            return false;
        }
        if !self.tried.is_empty() && self.tried.contains(&hot.id) {
            return false;
        }
        match self.phase {
            Phase::Standby => flags.contains(F::HOT_STANDBY) && !flags.contains(F::HOT_SPARE),
            Phase::Regular | Phase::Spares { .. } => {
                if flags.contains(F::HOT_SPARE) {
                    self.spare_rank(index) < self.spare_limit
                } else {
                    !flags.contains(F::HOT_STANDBY)
                }
            }
        }
    }

    /// How many usable, untried spares come before the member at `index` in this lbset.
    fn spare_rank(&self, index: u32) -> usize {
        use crate::flags::StatusFlags as F;
        self.indices
            .iter()
            .take_while(|&&i| i != index)
            .filter(|&&i| {
                let hot = &self.hot[i as usize];
                let flags = hot.state.flags();
                flags.is_usable()
                    && !flags.contains(F::DRAIN)
                    && flags.contains(F::HOT_SPARE)
                    && (self.tried.is_empty() || !self.tried.contains(&hot.id))
            })
            .count()
    }

    /// The candidates' positions in the snapshot's member list.
    pub(crate) fn into_indices(mut self) -> Vec<u32> {
        std::iter::from_fn(|| self.next_index()).collect()
    }

    fn next_index(&mut self) -> Option<u32> {
        use crate::flags::StatusFlags as F;
        loop {
            let Some(&index) = self.indices.get(self.pos) else {
                match self.phase {
                    Phase::Regular if self.spare_limit > 0 => {
                        self.phase = Phase::Spares {
                            left: self.spare_limit,
                        };
                        self.pos = 0;
                        continue;
                    }
                    _ => return None,
                }
            };
            self.pos += 1;
            let hot = &self.hot[index as usize];
            let flags = hot.state.flags();
            // In panic, the regular members that only E, C or J keep out are candidates.
            let out = if self.panic && matches!(self.phase, Phase::Regular) {
                flags.difference(F::PANIC_USABLE)
            } else {
                flags
            };
            if !out.is_usable() || flags.contains(F::DRAIN) {
                continue;
            }
            let wanted = match self.phase {
                Phase::Regular => !flags.intersects(F::HOT_SPARE.union(F::HOT_STANDBY)),
                Phase::Spares { .. } => flags.contains(F::HOT_SPARE),
                Phase::Standby => flags.contains(F::HOT_STANDBY) && !flags.contains(F::HOT_SPARE),
            };
            if !wanted || (!self.tried.is_empty() && self.tried.contains(&hot.id)) {
                continue;
            }
            if let Phase::Spares { left } = &mut self.phase {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
            }
            return Some(index);
        }
    }
}

// ===== Random sampling (p2c, p2c-ewma) =====

/// Draws of a random candidate before [`Candidates::sample_two`] walks the candidates
/// instead: with half the set unusable, 1 pick in 16 walks.
const SAMPLE_TRIES: u32 = 4;

impl<'a> Candidates<'a> {
    /// Two distinct candidates drawn uniformly at random, as positions in the snapshot's
    /// member list: the first drawn and, if there are two or more candidates, the second.
    /// `random(n)` returns a number below `n` (`n` ≥ 1).
    ///
    /// O(1) in the common case (regular members or standbys, no spare standing in): a
    /// random entry of the set with an O(1) admission check (usable, not draining, the
    /// right role, not tried), [`SAMPLE_TRIES`] draws at most for each; after that, and
    /// whenever spares stand in for unusable members (which spares count depends on the
    /// order), the candidates are counted and walked to two random ranks, without
    /// allocating. Must be called on candidates not yet iterated.
    pub(crate) fn sample_two(
        &self,
        random: &mut impl FnMut(u32) -> u32,
    ) -> Option<(u32, Option<u32>)> {
        let len = u32::try_from(self.indices.len()).unwrap_or(u32::MAX);
        // Spares standing in (`spare_limit` > 0) are walked: which of them count depends
        // on the order. Standbys have no spare limit.
        let direct = self.pos == 0 && len > 1 && self.spare_limit == 0;
        if direct {
            if let Some(first) = (0..SAMPLE_TRIES)
                .map(|_| random(len))
                .find(|&at| self.admits(self.indices[at as usize]))
            {
                for _ in 0..SAMPLE_TRIES {
                    // A position other than the first's, uniformly.
                    let mut at = random(len - 1);
                    if at >= first {
                        at += 1;
                    }
                    let index = self.indices[at as usize];
                    if self.admits(index) {
                        return Some((self.indices[first as usize], Some(index)));
                    }
                }
            }
        }
        self.sample_two_by_walk(random)
    }

    /// [`Candidates::sample_two`] by counting the candidates and walking to two ranks.
    fn sample_two_by_walk(
        &self,
        random: &mut impl FnMut(u32) -> u32,
    ) -> Option<(u32, Option<u32>)> {
        let mut count = self.clone();
        let mut n = 0u32;
        let mut only = None;
        while let Some(index) = count.next_index() {
            n += 1;
            only = Some(index);
        }
        if n < 2 {
            return only.map(|index| (index, None));
        }
        let first = random(n);
        let mut second = random(n - 1);
        if second >= first {
            second += 1;
        }
        let (mut a, mut b) = (None, None);
        let mut walk = self.clone();
        let mut rank = 0;
        while let Some(index) = walk.next_index() {
            if rank == first {
                a = Some(index);
            } else if rank == second {
                b = Some(index);
            }
            rank += 1;
        }
        // A member that became unusable since the count shortens the walk.
        match (a, b) {
            (Some(a), b) => Some((a, b)),
            (None, Some(b)) => Some((b, None)),
            (None, None) => self.clone().next_index().map(|index| (index, None)),
        }
    }
}

// ===== end of random sampling =====

impl<'a> Iterator for Candidates<'a> {
    type Item = &'a Member;

    fn next(&mut self) -> Option<&'a Member> {
        let index = self.next_index()?;
        Some(&self.members[index as usize])
    }
}

impl fmt::Debug for Candidates<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.clone().map(Member::id))
            .finish()
    }
}
