//! Code the examples share, kept in a library so that tests can run it: what an example's
//! `main` returns, when it stops, and the demo balancer the axum and client-pool examples
//! use. The proxy itself is the library's ([`proxy_balancer::site`],
//! [`proxy_balancer::server`]); the demo backends and configuration are the test kit's
//! ([`proxy_balancer_test::demo_config`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use proxy_balancer::{BalancerParams, BalancerStore, MemberParams};
use proxy_balancer_test::TestBackend;
pub use proxy_balancer_test::{demo_config, start_demo_backends};
use tokio::net::TcpListener;

/// A boxed error, what the examples return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What an example's `main` returns on error: shows the error's message, not its `Debug`.
pub struct Report(BoxError);

impl<E: Into<BoxError>> From<E> for Report {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl std::fmt::Debug for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Completes after `run_for` if given, else at Ctrl-C (or never, if Ctrl-C cannot be
/// watched): when a server example stops.
pub async fn shutdown_signal(run_for: Option<Duration>) {
    match run_for {
        Some(d) => tokio::time::sleep(d).await,
        None => {
            if let Err(error) = tokio::signal::ctrl_c().await {
                tracing::warn!(%error, "cannot wait for Ctrl-C; running until killed");
                std::future::pending::<()>().await;
            }
        }
    }
}

/// The demo balancer as a store, without a configuration: `balancer://demo` over the given
/// backends, routes `node1` …, sticky on `ROUTEID`, members retried after 5 s.
///
/// # Errors
///
/// If a backend URL is not a valid member URL (never for loopback backends).
pub fn demo_store(backends: &[TestBackend]) -> Result<Arc<BalancerStore>, BoxError> {
    let mut params = BalancerParams::new("balancer://demo");
    params.set("stickysession", "ROUTEID")?;
    let mut members = Vec::with_capacity(backends.len());
    for (i, backend) in backends.iter().enumerate() {
        let mut member = MemberParams::new(&backend.url())?;
        member.set("route", &format!("node{}", i + 1))?;
        member.set("retry", "5")?;
        member.set("connectiontimeout", "1")?;
        members.push(member);
    }
    let now = tokio::time::Instant::now().into_std();
    Ok(Arc::new(BalancerStore::new(params, members, now)?))
}

/// Binds `listen` and returns the listener with its actual address (port 0 picks one).
///
/// # Errors
///
/// If the address cannot be bound.
pub async fn bind(listen: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}
