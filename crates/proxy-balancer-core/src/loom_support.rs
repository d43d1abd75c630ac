//! What the loom models share: the checker with a preemption bound, and an instant.
//!
//! Writing a model that has teeth: loom tries another order of two threads' operations
//! only when it sees them conflict, and it checks a write (a store or a read-modify-write)
//! against the last access to that atomic only. If the writing thread read the atomic just
//! before (`mark_error` reads the flags, then sets `E`), a reader that ran earlier in the
//! first schedule is never reordered after the write, and the model passes whatever the
//! code does. A read is checked against the last write, so let the first schedule run the
//! writes before the reads: put the reading side on the spawned thread and the writing
//! side on the model's main thread (loom runs the main thread first). Then plant the bug
//! the model is for and check that it fails.

use std::time::Instant;

/// Runs `f` under loom, exploring every interleaving with at most `preemptions` forced
/// thread switches (2 or 3 keeps each model within seconds; bugs that need more
/// preemptions than that are rare, loom's docs say).
pub(crate) fn model(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemptions);
    builder.check(f);
}

/// Some instant to start from: the code under test takes `now` as an argument.
#[expect(clippy::disallowed_methods, reason = "the models need some instant")]
pub(crate) fn t0() -> Instant {
    Instant::now()
}
