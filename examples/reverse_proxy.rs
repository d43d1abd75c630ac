//! A reverse proxy with Apache's balancer semantics, configured in Apache's syntax.
//!
//! ```text
//! cargo run --release --example reverse-proxy
//! cargo run --release --example reverse-proxy -- --listen 127.0.0.1:9000 --backends 5 --threads 1
//! cargo run --release --example reverse-proxy -- --config balancers.conf
//! cargo run --release --example reverse-proxy -- --check balancers.conf [--format json]
//! ```
//!
//! Without `--config` it starts demo backends on 127.0.0.1 (random ports) and serves the
//! embedded default configuration over them (printed at start: `balancer://demo`,
//! byrequests, sticky on `ROUTEID` with the route cookie), on 127.0.0.1:8080. With
//! `--config FILE` it serves the balancers and `ProxyPass` lines of an Apache httpd
//! configuration (`Listen` lines are not used: `--listen` picks the address). `--check FILE`
//! reports what in a configuration will hurt (exit status 0 clean, 1 warnings, 2 errors).
//! Ctrl-C stops it, letting open requests finish.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use examples::{bind, demo_config, shutdown_signal, start_demo_backends, BoxError, Report};
use proxy_balancer::apache_config::{doctor, parse};
use proxy_balancer::server::{ClientLimits, Server};
use proxy_balancer::site::Site;

/// A reverse proxy with Apache httpd's mod_proxy_balancer semantics.
#[derive(Debug, Parser)]
#[command(name = "reverse-proxy", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Serve this Apache httpd configuration instead of the embedded demo.
    #[arg(long, value_name = "FILE", conflicts_with = "check")]
    config: Option<PathBuf>,
    /// Check this Apache httpd configuration and exit (0 clean, 1 warnings, 2 errors).
    #[arg(long, value_name = "FILE")]
    check: Option<PathBuf>,
    /// Output of --check.
    #[arg(long, value_enum, default_value_t = Format::Text, requires = "check")]
    format: Format,
    /// How many demo backends to start (the embedded default configuration).
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=64))]
    backends: u16,
    /// Threads serving requests (default: one per CPU). 1 runs everything on one thread,
    /// the cheapest per request when the proxy has one CPU.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
    /// Stop after this many seconds instead of waiting for Ctrl-C (for scripts).
    #[arg(long, value_name = "SECONDS")]
    run_for: Option<u64>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    /// For people.
    Text,
    /// For programs.
    Json,
}

fn read(path: &PathBuf) -> Result<String, BoxError> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()).into())
}

/// `--check`: the parser's errors, or the doctor's findings; the exit status says which.
fn check(path: &PathBuf, format: Format) -> Result<ExitCode, BoxError> {
    let text = read(path)?;
    let mut out = std::io::stdout().lock();
    match parse(&text) {
        Err(errors) => {
            match format {
                Format::Text => {
                    for e in errors.iter() {
                        writeln!(out, "{}: error: {e}", path.display())?;
                    }
                }
                Format::Json => writeln!(out, "{}", errors.to_json())?,
            }
            Ok(ExitCode::from(2))
        }
        Ok(config) => {
            let findings = doctor::check(&config);
            match format {
                Format::Text => {
                    for f in &findings {
                        writeln!(out, "{}: {f}", path.display())?;
                    }
                    if findings.is_empty() {
                        writeln!(out, "{}: no problem found", path.display())?;
                    }
                }
                Format::Json => writeln!(out, "{}", doctor::to_json(&findings))?,
            }
            let code = doctor::exit_code(&findings);
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(2)))
        }
    }
}

/// A request through the proxy makes a few dozen small allocations (hyper, http, tokio);
/// mimalloc serves them faster than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<ExitCode, Report> {
    let args = Args::parse();
    if let Some(path) = &args.check {
        return Ok(check(path, args.format)?);
    }
    // One thread: a current-thread runtime, with no cross-thread hand-offs (about a tenth
    // less CPU per request than a one-worker multi-thread runtime). More: tokio's
    // work-stealing runtime with that many workers.
    let runtime = match args.threads {
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(n))
            .enable_all()
            .build()?,
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
    };
    runtime.block_on(serve_proxy(args))
}

/// Serves the configuration (or the demo) until Ctrl-C or `--run-for`.
async fn serve_proxy(args: Args) -> Result<ExitCode, Report> {
    // The demo backends live as long as the proxy.
    let (text, origin, _backends) = match &args.config {
        Some(path) => (read(path)?, path.display().to_string(), Vec::new()),
        None => {
            let backends = start_demo_backends(usize::from(args.backends)).await?;
            (
                demo_config(&backends),
                "the embedded default".to_owned(),
                backends,
            )
        }
    };
    let config = parse(&text).map_err(|e| format!("{origin}:\n{e}"))?;
    // Room for clients: every connection takes a descriptor (the connection cap is derived
    // from this limit when the server starts).
    match proxy_balancer::server::raise_nofile_limit() {
        Ok(limit) => tracing::info!(limit, "open-file limit"),
        Err(error) => tracing::warn!(%error, "open-file limit not raised"),
    }
    let limits = ClientLimits::from_config(&config);
    let site = Site::from_config(&config)?;
    let (listener, addr) = bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "proxy-balancer listening on http://{addr}/, serving {origin}:"
    )?;
    if args.config.is_none() {
        for line in text.lines() {
            writeln!(out, "    {line}")?;
        }
    }
    for store in site.stores() {
        let snapshot = store.snapshot();
        let params = snapshot.params();
        writeln!(out, "{} ({}):", params.name, params.lb_method)?;
        for member in snapshot.members() {
            writeln!(
                out,
                "  {}  route={}  {}",
                member.url(),
                member.route().unwrap_or(""),
                member.flags().label()
            )?;
        }
    }
    writeln!(out, "try:  curl -i http://{addr}/")?;
    writeln!(out, "      curl -i --cookie ROUTEID=.node2 http://{addr}/")?;
    writeln!(out, "Ctrl-C stops it.")?;
    drop(out);

    let shutdown = shutdown_signal(args.run_for.map(Duration::from_secs));
    Server::new()
        .limits(limits)
        .serve(listener, site, shutdown)
        .await?;
    Ok(ExitCode::SUCCESS)
}
