//! One-time tracing setup for tests.

use std::sync::Once;

use tracing_subscriber::EnvFilter;

/// Installs a `tracing-subscriber` fmt subscriber that writes through the test harness's
/// captured output, filtered by `RUST_LOG` (default `warn`).
///
/// Safe to call from every test: only the first call installs anything, and if some other
/// global subscriber is already set this does nothing.
pub fn init_tracing() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
        // An error only means another global subscriber is already installed: keep it.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}
