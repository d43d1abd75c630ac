//! A reverse proxy with Apache's balancer semantics.
//!
//! ```text
//! cargo run --release --example reverse-proxy
//! cargo run --release --example reverse-proxy -- --listen 127.0.0.1:9000 --backends 5
//! ```
//!
//! Without a configuration it starts demo backends on 127.0.0.1 (random ports), a balancer
//! over them (`balancer://demo`, byrequests, sticky on `ROUTEID`), and listens on
//! 127.0.0.1:8080. Ctrl-C stops it, letting open requests finish.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use examples::{bind, demo_store, proxy_service, serve, start_demo_backends, BoxError};

/// A reverse proxy with Apache httpd's mod_proxy_balancer semantics.
#[derive(Debug, Parser)]
#[command(name = "reverse-proxy", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// How many demo backends to start (the embedded default configuration).
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=64))]
    backends: u16,
    /// Stop after this many seconds instead of waiting for Ctrl-C (for scripts).
    #[arg(long, value_name = "SECONDS")]
    run_for: Option<u64>,
}

/// Shows an error's message (not its `Debug` form) when `main` returns it.
struct Report(BoxError);

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

#[tokio::main]
async fn main() -> Result<(), Report> {
    let args = Args::parse();
    let backends = start_demo_backends(usize::from(args.backends)).await?;
    let store = demo_store(&backends)?;
    let (listener, addr) = bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;

    let mut out = std::io::stdout().lock();
    writeln!(out, "proxy-balancer listening on http://{addr}/")?;
    writeln!(out, "balancer://demo (byrequests, stickysession=ROUTEID):")?;
    for (backend, member) in backends.iter().zip(store.snapshot().members()) {
        writeln!(
            out,
            "  {}  route={}  ({})",
            member.url(),
            member.route().unwrap_or(""),
            backend.name()
        )?;
    }
    writeln!(out, "try:  curl -i http://{addr}/")?;
    writeln!(out, "      curl -i --cookie ROUTEID=.node2 http://{addr}/")?;
    writeln!(out, "Ctrl-C stops it.")?;
    drop(out);

    let run_for = args.run_for.map(Duration::from_secs);
    let shutdown = async move {
        match run_for {
            Some(d) => tokio::time::sleep(d).await,
            None => {
                if let Err(error) = tokio::signal::ctrl_c().await {
                    tracing::warn!(%error, "cannot wait for Ctrl-C; running until killed");
                    std::future::pending::<()>().await;
                }
            }
        }
    };
    serve(listener, proxy_service(store), shutdown).await?;
    Ok(())
}
