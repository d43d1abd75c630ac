//! The concurrency shim: `std`/`parking_lot`/`arc-swap` normally, loom under `cfg(loom)`.
//!
//! Everything in this crate that is shared between threads goes through this module, so
//! that a loom model can check *our* protocol (counter updates, flag transitions, snapshot
//! replacement). loom cannot see inside `ArcSwap`, so under `cfg(loom)` the snapshot cell is a
//! small `RwLock<Arc<T>>` with the same `load`/`store`/`rcu` surface.

#[cfg(not(loom))]
pub(crate) use std::sync::{
    atomic::{fence, AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering},
    Arc,
};

#[cfg(loom)]
pub(crate) use loom::sync::{
    atomic::{fence, AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering},
    Arc,
};

#[cfg(not(loom))]
pub(crate) use std::{hint::spin_loop, thread::yield_now};

#[cfg(loom)]
pub(crate) use loom::{hint::spin_loop, thread::yield_now};

/// A mutex for writers that must serialise (reconfiguration). Never taken on the pick path.
#[cfg(not(loom))]
#[derive(Debug, Default)]
pub(crate) struct WriterLock(parking_lot::Mutex<()>);

#[cfg(not(loom))]
impl WriterLock {
    pub(crate) fn lock(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.0.lock()
    }
}

#[cfg(loom)]
#[derive(Debug, Default)]
pub(crate) struct WriterLock(loom::sync::Mutex<()>);

#[cfg(loom)]
impl WriterLock {
    pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, ()> {
        self.0
            .lock()
            .expect("invariant: no writer panics while holding the lock")
    }
}

/// The one swappable pointer of a balancer: the current member snapshot.
#[cfg(not(loom))]
pub(crate) struct SnapshotCell<T>(arc_swap::ArcSwap<T>);

#[cfg(not(loom))]
impl<T> SnapshotCell<T> {
    pub(crate) fn new(value: Arc<T>) -> Self {
        Self(arc_swap::ArcSwap::new(value))
    }

    /// A cheap, lock-free read. Do not keep the guard across an `.await`.
    pub(crate) fn load(&self) -> arc_swap::Guard<Arc<T>> {
        self.0.load()
    }

    pub(crate) fn load_full(&self) -> Arc<T> {
        self.0.load_full()
    }

    pub(crate) fn store(&self, value: Arc<T>) {
        self.0.store(value);
    }
}

#[cfg(loom)]
pub(crate) struct SnapshotCell<T>(loom::sync::RwLock<Arc<T>>);

#[cfg(loom)]
impl<T> SnapshotCell<T> {
    pub(crate) fn new(value: Arc<T>) -> Self {
        Self(loom::sync::RwLock::new(value))
    }

    pub(crate) fn load(&self) -> Arc<T> {
        Arc::clone(&self.0.read().expect("invariant: no panics under the lock"))
    }

    pub(crate) fn load_full(&self) -> Arc<T> {
        self.load()
    }

    pub(crate) fn store(&self, value: Arc<T>) {
        *self.0.write().expect("invariant: no panics under the lock") = value;
    }
}

impl<T> std::fmt::Debug for SnapshotCell<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotCell").finish_non_exhaustive()
    }
}

/// Keeps a value on cache lines of its own, so that writes to it do not slow down reads of
/// its neighbours (false sharing). 128 bytes on x86-64 and aarch64, whose prefetchers pull
/// lines in pairs, 64 elsewhere.
#[cfg_attr(any(target_arch = "x86_64", target_arch = "aarch64"), repr(align(128)))]
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    repr(align(64))
)]
#[derive(Debug, Default)]
pub(crate) struct CachePadded<T>(pub(crate) T);

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}
