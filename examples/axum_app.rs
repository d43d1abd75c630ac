//! The balancer inside an axum app: the app answers its own routes and sends everything
//! else to a `balancer://` cluster, as Apache's `ProxyPass "/" "balancer://demo/"` next to
//! locally served paths.
//!
//! ```text
//! cargo run --example axum-app
//! cargo run --example axum-app -- --listen 127.0.0.1:3000 --run-for 30
//! ```
//!
//! It starts three demo backends on 127.0.0.1 (random ports) and an axum app on
//! 127.0.0.1:3000 whose `GET /hello` answers from the app itself; every other request goes
//! to the balancer, which is the router's fallback service. Ctrl-C stops it.
//!
//! Two adapters make the balancer an axum service:
//!
//! - [`ErrorResponseLayer`] turns the balancer's errors into Apache's responses (503 with
//!   `Retry-After`, 502, 504), because axum services must be `Infallible`;
//! - the built-in client is typed on axum's request body, `MakeHttpMember<axum::body::Body>`.
//!   That body is `Send` but not `Sync`, which is enough: the balancer keeps it behind a
//!   mutex, so the balancer itself is `Send + Sync` as axum asks.
//!
//! The response body needs no adapter: axum turns any `http::Response` with a `Bytes` body
//! into its own response.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use clap::Parser;
use examples::{bind, demo_store, shutdown_signal, start_demo_backends, BoxError};
use proxy_balancer::balancer::BalancerOptions;
use proxy_balancer::client::MakeHttpMember;
use proxy_balancer::{Balancer, BalancerStore, ErrorResponseLayer};
use tokio::net::TcpListener;

/// An axum app with a proxy_balancer `Balancer` as its fallback service.
#[derive(Debug, Parser)]
#[command(name = "axum-app", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Stop after this many seconds instead of waiting for Ctrl-C (for scripts).
    #[arg(long, value_name = "SECONDS")]
    run_for: Option<u64>,
}

/// What `GET /hello` answers: served by the app, never by a backend.
pub(crate) const HELLO: &str = "hello from the axum app\n";

/// The app: `GET /hello` from the app itself, everything else through the balancer over the
/// members of `store`.
pub(crate) fn app(store: Arc<BalancerStore>) -> Router {
    // Idempotent requests go to another member when a kept-alive connection to a member
    // that just went away fails, as the reverse-proxy example does.
    let options = BalancerOptions::default().retry_idempotent(true);
    let balancer = Balancer::with_options(store, MakeHttpMember::<Body>::new(), options);
    let proxy = tower::ServiceBuilder::new()
        .layer(ErrorResponseLayer::new())
        .service(balancer);
    Router::new()
        .route("/hello", get(|| async { HELLO }))
        .fallback_service(proxy)
}

/// Serves the app over `store` on `listener` until `shutdown` completes, then lets open
/// requests finish.
pub(crate) async fn serve(
    listener: TcpListener,
    store: Arc<BalancerStore>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BoxError> {
    axum::serve(listener, app(store))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let backends = start_demo_backends(3).await?;
    let store = demo_store(&backends)?;
    let (listener, addr) = bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;

    let mut out = std::io::stdout().lock();
    writeln!(out, "axum app listening on http://{addr}/")?;
    writeln!(out, "  GET /hello  answered by the app")?;
    writeln!(out, "  anything else  balancer://demo (byrequests) over:")?;
    for backend in &backends {
        writeln!(out, "    {}  ({})", backend.url(), backend.name())?;
    }
    writeln!(out, "try:  curl -i http://{addr}/hello")?;
    writeln!(out, "      curl -i http://{addr}/anything")?;
    writeln!(out, "Ctrl-C stops it.")?;
    drop(out);

    let shutdown = shutdown_signal(args.run_for.map(Duration::from_secs));
    serve(listener, store, shutdown).await
}
