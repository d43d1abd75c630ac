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
//! The proxy is the README's axum snippet, the app's [`app`] function: errors answered as
//! Apache does (axum services must be `Infallible`), `ProxyPassReverse` on the members'
//! redirects, the hop to the members as mod_proxy makes it (hop-by-hop headers removed,
//! `X-Forwarded-For` from axum's `ConnectInfo`, `X-Forwarded-Host`), sticky sessions with
//! the route cookie, idempotent requests retried on another member, WebSocket upgrades
//! tunnelled to the members (Apache's `upgrade=websocket`: `axum::serve` serves with
//! upgrades, the client joins the two connections once the member answers 101, and the
//! member stays busy until the tunnel closes), and the built-in client typed on axum's body. That body is `Send` but not `Sync`, which is enough: the balancer
//! keeps it behind a mutex, so the stack is `Send + Sync` as axum asks.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use examples::{bind, demo_store, shutdown_signal, start_demo_backends, BoxError};
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

// README: begin (the README's axum snippet is this text; tests/axum_app.rs checks it)
use std::sync::Arc;

use axum::{body::Body, routing::get, Router};
use proxy_balancer::balancer::BalancerOptions;
use proxy_balancer::client::{ClientOptions, MakeHttpMember, Upgrades};
use proxy_balancer::proxy_pass::{
    ForwardedHeaders, ProxyPassError, ProxyPassReverse, ReverseLayer,
};
use proxy_balancer::sticky_route::RouteCookie;
use proxy_balancer::{BalancerStore, ServiceBuilderExt};
use tower::ServiceBuilder;

/// `GET /hello` from the app; everything else to `balancer://demo`, as Apache's
/// `ProxyPass "/" "balancer://demo/"`, `ProxyPassReverse` and route-cookie recipe, with
/// WebSockets tunnelled to the members (`upgrade=websocket`).
/// Serve it with `.into_make_service_with_connect_info::<SocketAddr>()`.
fn app(store: Arc<BalancerStore>) -> Result<Router, ProxyPassError> {
    let websocket = ClientOptions::new().with_upgrades(Upgrades::from_param("websocket"));
    let proxy = ServiceBuilder::new()
        .error_responses() // 503 with Retry-After, 502, 504
        .reverse(ReverseLayer::new().with_reverse(ProxyPassReverse::new("/", "balancer://demo/")?))
        .forward(ForwardedHeaders::new()) // hop-by-hop out, X-Forwarded-* in
        .sticky_route_with_cookie(Arc::clone(&store), RouteCookie::new())
        .balancer_with(store, BalancerOptions::default().retry_idempotent(true))
        .service(MakeHttpMember::<Body>::new().with_default_options(websocket));
    Ok(Router::new()
        .route("/hello", get(|| async { "hello from the axum app\n" }))
        .fallback_service(proxy))
}
// README: end

/// Serves the app over `store` on `listener` until `shutdown` completes, then lets open
/// requests finish.
pub(crate) async fn serve(
    listener: TcpListener,
    store: Arc<BalancerStore>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BoxError> {
    let app = app(store)?.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
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
