//! Waiting for a condition in a test, bounded.

use std::time::Duration;

use tokio::time::Instant;

/// Polls `cond` every `poll` until it holds, and returns how long that took (on tokio's
/// clock, so a paused clock measures virtual time). Panics, naming `what`, after `bound`.
///
/// ```
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let mut polls = 0;
/// let took = proxy_balancer_test::wait_for(
///     "the third poll",
///     Duration::from_secs(1),
///     Duration::from_millis(5),
///     || {
///         polls += 1;
///         polls == 3
///     },
/// )
/// .await;
/// // On a paused clock: two sleeps of 5 ms.
/// assert_eq!(took, Duration::from_millis(10));
/// # }
/// ```
///
/// # Panics
///
/// When `cond` does not hold within `bound`.
pub async fn wait_for(
    what: &str,
    bound: Duration,
    poll: Duration,
    mut cond: impl FnMut() -> bool,
) -> Duration {
    let start = Instant::now();
    let waited = tokio::time::timeout(bound, async {
        while !cond() {
            tokio::time::sleep(poll).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "timed out after {bound:?} waiting for {what}"
    );
    start.elapsed()
}
