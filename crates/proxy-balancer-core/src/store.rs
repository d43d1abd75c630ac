//! The shared store of one balancer: one swappable snapshot, serialised writers.

use std::collections::HashSet;
use std::time::Instant;

use crate::error::{ConfigError, PickError};
use crate::lbmethod::LbMethodKind;
use crate::member::{InFlight, Member, MemberId, MemberState};
use crate::params::{BalancerParams, MemberParams, MemberUrl};
use crate::snapshot::{BalancerSnapshot, PickRequest, Picked, Shared};
use crate::sync::{Arc, AtomicU64, SnapshotCell, WriterLock};

/// The state of one balancer, shared by every request and every editor.
///
/// Readers (every pick) do one lock-free snapshot load plus atomic operations on the
/// members' state. Writers (configuration changes, the manager) are serialised by a mutex
/// that no reader ever takes, build a new snapshot and swap it in; the next pick sees it.
/// A member's [`MemberState`] is carried from snapshot to snapshot, so its counters, flags
/// and in-flight requests are never reset by an edit of another member or of its own
/// parameters.
///
/// ```
/// use std::time::Instant;
/// use proxy_balancer_core::{BalancerParams, BalancerStore, MemberParams, PickRequest};
///
/// let now = Instant::now();
/// let store = BalancerStore::new(
///     BalancerParams::new("mycluster"),
///     [MemberParams::new("http://127.0.0.1:8001")?, MemberParams::new("http://127.0.0.1:8002")?],
///     now,
/// )?;
/// let picked = store.pick(&PickRequest::new(), now)?;
/// assert_eq!(picked.member().url(), "http://127.0.0.1:8001");
/// assert_eq!(picked.member().state().busy(), 1);
/// drop(picked);
///
/// // Reconfigure: the next pick sees it; counters carry over.
/// let id = store.snapshot().members()[1].id();
/// store.update_member(id, |m| m.set("loadfactor", "3"))??;
/// assert_eq!(store.snapshot().members()[0].state().elected(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct BalancerStore {
    current: SnapshotCell<BalancerSnapshot>,
    writer: WriterLock,
    /// Written only under `writer`.
    next_id: parking_lot::Mutex<u32>,
    epoch: Instant,
    changes: Arc<AtomicU64>,
    /// Requests in flight on the members, counted while the lbmethod is bybusyness.
    inflight: Arc<InFlight>,
    /// Requests answered 503 because no member could take them (for metrics).
    unavailable: AtomicU64,
}

impl BalancerStore {
    /// A store holding a balancer with these parameters and members, in this order.
    /// `now` anchors the members' error times.
    ///
    /// # Errors
    ///
    /// [`ConfigError::DuplicateMember`] when two members have the same URL.
    pub fn new(
        params: BalancerParams,
        members: impl IntoIterator<Item = MemberParams>,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        let changes = Arc::new(AtomicU64::new(0));
        let inflight = Arc::new(InFlight::new(counts_in_flight(&params)));
        let mut built: Vec<Member> = Vec::new();
        // A set of the URLs so far: start-up stays linear in the members (a scan of `built`
        // per member took 38 s for 100 000 members).
        let mut urls: HashSet<MemberUrl> = HashSet::new();
        for (i, params) in members.into_iter().enumerate() {
            if !urls.insert(params.url.clone()) {
                return Err(ConfigError::DuplicateMember {
                    url: params.url.to_string(),
                });
            }
            let id = MemberId(u32::try_from(i).unwrap_or(u32::MAX));
            let state = Arc::new(MemberState::new_in(
                params.status,
                now,
                Arc::clone(&changes),
                Arc::clone(&inflight),
            ));
            built.push(Member::new(id, params, state));
        }
        let next = u32::try_from(built.len()).unwrap_or(u32::MAX);
        let shared = Shared {
            epoch: now,
            changes: Arc::clone(&changes),
            inflight: Arc::clone(&inflight),
        };
        Ok(Self {
            current: SnapshotCell::new(Arc::new(BalancerSnapshot::new(params, built, shared))),
            writer: WriterLock::default(),
            next_id: parking_lot::Mutex::new(next),
            epoch: now,
            changes,
            inflight,
            unavailable: AtomicU64::new(0),
        })
    }

    /// The current snapshot. Cheap (one atomic load); do not keep the guard across an
    /// `.await` — use [`BalancerStore::snapshot`] for that.
    #[cfg(not(loom))]
    pub fn load(&self) -> arc_swap::Guard<Arc<BalancerSnapshot>> {
        self.current.load()
    }

    /// The current snapshot, as an `Arc` that can be kept.
    #[must_use]
    pub fn snapshot(&self) -> Arc<BalancerSnapshot> {
        self.current.load_full()
    }

    /// Picks a member on the current snapshot: see [`BalancerSnapshot::pick`].
    ///
    /// # Errors
    ///
    /// [`PickError`] when no member can take the request.
    pub fn pick(&self, request: &PickRequest<'_>, now: Instant) -> Result<Picked, PickError> {
        self.current.load().pick(request, now)
    }

    /// Applies `edit` to a copy of the current state and swaps the result in.
    fn write<T>(
        &self,
        edit: impl FnOnce(
            &BalancerSnapshot,
            &mut BalancerParams,
            &mut Vec<Member>,
        ) -> Result<T, ConfigError>,
    ) -> Result<T, ConfigError> {
        let _serialised = self.writer.lock();
        let current = self.current.load_full();
        let mut params = current.params().clone();
        let mut members = current.members().to_vec();
        let out = edit(&current, &mut params, &mut members)?;
        // Before the snapshot is published: its picks see the count's new mode.
        self.inflight.set_tracking(counts_in_flight(&params));
        let shared = Shared {
            epoch: self.epoch,
            changes: Arc::clone(&self.changes),
            inflight: Arc::clone(&self.inflight),
        };
        self.current
            .store(Arc::new(BalancerSnapshot::new(params, members, shared)));
        // Picks still running on the old snapshot see its cycle ended and scan; its picks
        // are in `lbstatus` from here on.
        current.retire();
        self.changes.fetch_add(1, crate::sync::Ordering::Release);
        Ok(out)
    }

    /// Adds a member at the end of the configuration order. It starts with its configured
    /// `status` flags and fresh counters.
    ///
    /// # Errors
    ///
    /// [`ConfigError::DuplicateMember`] if a member already has this URL.
    pub fn add_member(&self, params: MemberParams) -> Result<MemberId, ConfigError> {
        self.write(|_, _, members| {
            if members.iter().any(|m| m.params().url == params.url) {
                return Err(ConfigError::DuplicateMember {
                    url: params.url.to_string(),
                });
            }
            let mut next = self.next_id.lock();
            let id = MemberId(*next);
            *next = next.saturating_add(1);
            let state = Arc::new(MemberState::new_in(
                params.status,
                self.epoch,
                Arc::clone(&self.changes),
                Arc::clone(&self.inflight),
            ));
            members.push(Member::new(id, params, state));
            Ok(id)
        })
    }

    /// Edits a member's parameters; its state and counters carry over. `status` is not
    /// re-applied: flags change through [`MemberState::insert_flags`] and
    /// [`MemberState::remove_flags`]. The closure's result is returned, so it can be a
    /// `Result` from [`MemberParams::set`].
    ///
    /// # Apache
    ///
    /// A changed load factor sets every member's `lbstatus` to its own load factor, as the
    /// balancer-manager does.
    ///
    /// # Errors
    ///
    /// [`ConfigError::UnknownMember`], or [`ConfigError::DuplicateMember`] if the new URL is
    /// another member's.
    pub fn update_member<T>(
        &self,
        id: MemberId,
        edit: impl FnOnce(&mut MemberParams) -> T,
    ) -> Result<T, ConfigError> {
        self.write(|_, _, members| {
            let index = members
                .iter()
                .position(|m| m.id() == id)
                .ok_or(ConfigError::UnknownMember { id })?;
            let old = &members[index];
            let mut params = old.params().clone();
            let out = edit(&mut params);
            if members
                .iter()
                .any(|m| m.id() != id && m.params().url == params.url)
            {
                return Err(ConfigError::DuplicateMember {
                    url: params.url.to_string(),
                });
            }
            let lf_changed = params.load_factor != old.params().load_factor;
            members[index] = Member::new(id, params, Arc::clone(old.state_arc()));
            Ok((out, lf_changed))
        })
        .map(|(out, lf_changed)| {
            if lf_changed {
                for m in self.current.load().members() {
                    m.state().set_lbstatus(m.lbf());
                }
            }
            out
        })
    }

    /// Removes a member. Requests in flight on it finish normally.
    ///
    /// # Errors
    ///
    /// [`ConfigError::UnknownMember`].
    pub fn remove_member(&self, id: MemberId) -> Result<MemberParams, ConfigError> {
        self.write(|_, _, members| {
            let index = members
                .iter()
                .position(|m| m.id() == id)
                .ok_or(ConfigError::UnknownMember { id })?;
            Ok(members.remove(index).params().clone())
        })
    }

    /// Edits the balancer's parameters. The closure's result is returned.
    ///
    /// # Apache
    ///
    /// Changing the lbmethod resets every member's `lbstatus` to 0.
    pub fn update_params<T>(&self, edit: impl FnOnce(&mut BalancerParams) -> T) -> T {
        let result = self.write(|current, params, _| {
            let out = edit(params);
            Ok((out, params.lb_method != current.params().lb_method))
        });
        match result {
            Ok((out, method_changed)) => {
                if method_changed {
                    self.reset_lb();
                }
                out
            }
            Err(_) => unreachable!("invariant: editing parameters cannot fail"),
        }
    }

    /// Counts a request answered 503 because no member could take it (the balancer service
    /// calls this).
    pub fn note_unavailable(&self) {
        self.unavailable
            .fetch_add(1, crate::sync::Ordering::Relaxed);
    }

    /// Requests answered 503 because no member could take them.
    #[must_use]
    pub fn unavailable(&self) -> u64 {
        self.unavailable.load(crate::sync::Ordering::Relaxed)
    }

    /// [`BalancerSnapshot::settle`] on the current snapshot: folds the byrequests fast
    /// path's picks into `lbstatus`, e.g. before showing it.
    pub fn settle(&self) {
        self.current.load().settle();
    }

    /// Resets every member's `lbstatus` to 0, starting the lbmethod's cycle afresh (the
    /// manager's reset). Busy counts are left alone: they count requests still in flight.
    pub fn reset_lb(&self) {
        let current = self.current.load();
        current.settle();
        for m in current.members() {
            m.state().set_lbstatus(0);
        }
    }
}

/// Whether a balancer with these parameters counts its requests in flight ([`InFlight`]):
/// only bybusyness reads the count.
fn counts_in_flight(params: &BalancerParams) -> bool {
    matches!(params.lb_method, LbMethodKind::ByBusyness)
}
