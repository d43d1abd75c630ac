//! A reverse proxy with Apache's balancer semantics, configured in Apache's syntax.
//!
//! ```text
//! cargo run --release --example reverse-proxy
//! cargo run --release --example reverse-proxy -- --listen 127.0.0.1:9000 --backends 5 --threads 1
//! cargo run --release --example reverse-proxy -- --config balancers.conf --threads 4
//! cargo run --release --example reverse-proxy -- --config balancers.conf
//! cargo run --release --example reverse-proxy -- --check balancers.conf [--format json]
//! ```
//!
//! Without `--config` it starts demo backends on 127.0.0.1 (random ports) and serves the
//! embedded default configuration over them (printed at start: `balancer://demo`,
//! byrequests, sticky on `ROUTEID` with the route cookie), on 127.0.0.1:8080. With
//! `--config FILE` it serves the balancers and `ProxyPass` lines of an Apache httpd
//! configuration (`Listen` lines are not used: `--listen` picks the address; it speaks
//! HTTPS when the server that address reaches has `SSLEngine On`, as Apache decides it:
//! the first `<VirtualHost>` of the address, else the main server; the client's SNI picks
//! the certificate among the virtual hosts of the address). `--check FILE`
//! is the start-up of `--config FILE` without the listening: it reports the parse errors,
//! what in the configuration will hurt or is not applied, and why `--config` would not
//! start (exit status 2 exactly when `--config` would not start; 1 when it would, with
//! warnings or errors to fix; 0 when nothing was found).
//! Ctrl-C stops it, letting open requests finish. A `BalancerShare etcd http://…:2379`
//! line shares the balancer-manager's edits with the other instances running the same
//! configuration (docs/fleet.md).
//!
//! Threads (`--threads N`, by default one per CPU this process may run on): with one, the
//! whole proxy runs on one thread (a current-thread runtime). With more, per core
//! (`--runtime per-core`, the default): N threads, each with a current-thread runtime, its
//! own listener on the address (`SO_REUSEPORT`: Linux spreads the connections over them)
//! and its own member connection pools, so that a connection and the member connections
//! its requests use stay on one thread; the balancers' state (the members' status,
//! `lbstatus`, busy and elected counts), the balancer-manager, the health probes, the
//! heartbeat listener, the access logs' writer and the connection cap (split between the
//! threads) are shared, so the balancing is the same as with one thread. `--runtime
//! work-stealing` runs one tokio multi-thread runtime with N workers instead (one listener,
//! one pool per member, tasks moved between threads): worth it when a few connections
//! (HTTP/2 clients multiplexing many requests) carry the load, which per core would keep
//! on as many threads, or when the proxy shares its CPUs with other busy processes (a
//! worker's connections wait while its thread is descheduled; no other thread takes them:
//! on a 2-core VM shared with builds, `--threads 2` per core served 0.88× the requests of
//! work-stealing at 1.05× its CPU per request, p99 1.34×).
//!
//! Logs, as Apache writes them: an error log (the configuration's `ErrorLog` file, else
//! standard error; level from `LogLevel`, or `--log-level`, which wins; Apache's default
//! `warn`), lines such as
//! `[2026-12-04T11:25:36.123456Z] [proxy_balancer:error] [pid 42] AH01114: failed to make
//! connection to backend member=http://10.0.0.1:8080` (the module as `LogLevel` names it);
//! and an access log per
//! `CustomLog` (or `TransferLog`), else the `combined` format on standard output.

use std::fmt::Write as _;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use examples::{
    bind, check_file, demo_config, json_escape, log_plan, shutdown_signal, start_demo_backends,
    BoxError, Report,
};
use proxy_balancer::access_log::{AccessLogLayer, AccessLogWriter, LogFormat, DEFAULT_QUEUE};
use proxy_balancer::apache_config::{parse, Config};
use proxy_balancer::server::{bind_reuseport, ClientLimits, Server, ServerError};
use proxy_balancer::site::Site;
use tower::{Layer, ServiceExt};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// A reverse proxy with Apache httpd's mod_proxy_balancer semantics.
#[derive(Debug, Parser)]
#[command(name = "reverse-proxy", version)]
struct Args {
    /// Address to listen on (HTTPS when the configuration gives the server this address
    /// reaches `SSLEngine On`).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Serve this Apache httpd configuration instead of the embedded demo.
    #[arg(long, value_name = "FILE", conflicts_with = "check")]
    config: Option<PathBuf>,
    /// Check this Apache httpd configuration as --config would start it, without
    /// listening, and exit (0 clean, 1 warnings or errors to fix, 2 --config would not
    /// start).
    #[arg(long, value_name = "FILE")]
    check: Option<PathBuf>,
    /// Output of --check.
    #[arg(long, value_enum, default_value_t = Format::Text, requires = "check")]
    format: Format,
    /// How many demo backends to start (the embedded default configuration).
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=64))]
    backends: u16,
    /// Threads serving requests (default: one per CPU this process may run on). 1 runs
    /// everything on one thread, the cheapest per request when the proxy has one CPU;
    /// more run as --runtime says.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
    /// How more than one thread serve: per-core (each thread its own runtime, listener
    /// and member connections; the balancer state shared) or work-stealing (one tokio
    /// multi-thread runtime).
    #[arg(long, value_enum, default_value_t = Runtime::PerCore)]
    runtime: Runtime,
    /// Stop after this many seconds instead of waiting for Ctrl-C (for scripts).
    #[arg(long, value_name = "SECONDS")]
    run_for: Option<u64>,
    /// Where `BalancerPersist On` keeps the balancer-manager's state (wins over the
    /// configuration's `DefaultRuntimeDir`); delete its file to reset the state.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// The error log's level, as Apache's `LogLevel` (`warn`, `debug`, `trace2`,
    /// `"info proxy:debug"`); wins over the configuration's `LogLevel`.
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Write no access log, whatever the configuration's `CustomLog` lines say (for load
    /// tests against proxies configured without one).
    #[arg(long)]
    no_access_log: bool,
}

/// How `--threads N` (N > 1) run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Runtime {
    /// N threads, each with a current-thread runtime, an `SO_REUSEPORT` listener and
    /// member connection pools of its own; the balancer state shared.
    PerCore,
    /// One tokio multi-thread runtime with N workers, one listener, one pool per member.
    WorkStealing,
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

/// `--check`: [`check_config`] on the file (the start-up of `--config` without the
/// listening): parse errors, the doctor's findings and why `--config` would not start,
/// all in one run. Exit status: 2 when `--config` would not start (an unreadable file
/// too), 1 when it would, with warnings or errors to fix, 0 when nothing was found.
fn check(args: &Args) -> Result<ExitCode, BoxError> {
    let Some(path) = &args.check else {
        return Ok(ExitCode::SUCCESS);
    };
    let mut out = std::io::stdout().lock();
    // A file that cannot be read is an error (2), not "warnings only" (1).
    match read(path) {
        Ok(_) => {}
        Err(why) => {
            match args.format {
                Format::Text => writeln!(out, "{}: error: {why}", path.display())?,
                Format::Json => writeln!(
                    out,
                    "[{{\"severity\":\"error\",\"rule\":\"read\",\"line\":0,\"column\":0,\"what\":\"{}\"}}]",
                    json_escape(&why.to_string())
                )?,
            }
            return Ok(ExitCode::from(2));
        }
    };
    // Read as `--config` reads it: with its `Include`s, `Define`s and `${VAR}`s.
    let report = check_file(path, args.log_level.as_deref(), !args.no_access_log);
    match args.format {
        Format::Text => write!(out, "{}", report.to_text(&path.display().to_string()))?,
        Format::Json => writeln!(out, "{}", report.to_json())?,
    }
    Ok(ExitCode::from(report.exit_code()))
}

/// A request through the proxy makes a few dozen small allocations (hyper, http, tokio);
/// mimalloc serves them faster than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<ExitCode, Report> {
    let args = Args::parse();
    if args.check.is_some() {
        return Ok(check(&args)?);
    }
    // One thread per CPU the process may run on (its affinity and cgroup quota count):
    // as many workers as can run at once, and one, the cheapest, under `taskset -c 1`.
    let threads = args.threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        usize::from,
    );
    // One thread: a current-thread runtime, with no cross-thread hand-offs (about a tenth
    // less CPU per request than a one-worker multi-thread runtime). More, per core: this
    // thread's current-thread runtime runs what is shared (the probes, the heartbeat
    // listener, the demo backends, the signals) and the workers run on threads of their
    // own (`serve_per_core`). More, work-stealing: tokio's multi-thread runtime.
    let runtime = match (threads, args.runtime) {
        (1, _) | (_, Runtime::PerCore) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        (n, Runtime::WorkStealing) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()?,
    };
    let per_core = (threads > 1 && args.runtime == Runtime::PerCore).then_some(threads);
    runtime.block_on(serve_proxy(args, per_core))
}

/// Where the proxy listens: one listener, or one per worker thread (per core).
enum Listeners {
    One(tokio::net::TcpListener),
    PerCore(Vec<std::net::TcpListener>),
}

/// Serves the configuration (or the demo) until Ctrl-C or `--run-for`: on this runtime, or
/// on `per_core` worker threads of their own.
async fn serve_proxy(args: Args, per_core: Option<usize>) -> Result<ExitCode, Report> {
    // The demo backends live as long as the proxy.
    let (text, origin, _backends) = match &args.config {
        // Read by `parse_file` below, with its `Include`s.
        Some(path) => (String::new(), path.display().to_string(), Vec::new()),
        None => {
            let backends = start_demo_backends(usize::from(args.backends)).await?;
            (
                demo_config(&backends),
                "the embedded default".to_owned(),
                backends,
            )
        }
    };
    // A file: with its `Include`s, `Define`s and `${VAR}`s; each error names its file.
    let mut config = match &args.config {
        Some(path) => proxy_balancer::apache_config::parse_file(path).map_err(|e| e.to_string())?,
        None => parse(&text).map_err(|e| format!("{origin}:\n{e}"))?,
    };
    if let Some(dir) = &args.state_dir {
        config.default_runtime_dir = Some(dir.clone());
    }
    let access_logs = init_logs(&config, args.log_level.as_deref(), !args.no_access_log)?;
    // Room for clients: every connection takes a descriptor (the connection cap is derived
    // from this limit when the server starts).
    match proxy_balancer::server::raise_nofile_limit() {
        Ok(limit) => tracing::info!(limit, "open-file limit"),
        Err(error) => tracing::warn!(%error, "open-file limit not raised"),
    }
    let limits = ClientLimits::from_config(&config);
    let site = Site::from_config(&config)?;
    let cannot = |e: std::io::Error| format!("cannot listen on {}: {e}", args.listen);
    let (listeners, addr) = match per_core {
        None => {
            let (listener, addr) = bind(args.listen).await.map_err(cannot)?;
            (Listeners::One(listener), addr)
        }
        Some(n) => {
            let listeners = bind_reuseport(args.listen, n).map_err(cannot)?;
            let addr = listeners
                .first()
                .ok_or("no listener")?
                .local_addr()
                .map_err(cannot)?;
            (Listeners::PerCore(listeners), addr)
        }
    };
    // A <VirtualHost *:80> served on --listen 127.0.0.1:8080 is never selected (Apache's
    // rule): say so rather than let every request fall to the main server in silence.
    for vhost in site.unreachable_virtual_hosts(&[addr]) {
        tracing::warn!("{vhost}");
    }
    // SSLEngine On in the servers this address reaches: HTTPS here (ALPN h2, http/1.1).
    let tls = site.tls_for(addr)?;
    if tls.is_none() && site.has_tls() {
        tracing::warn!(
            "the servers with SSLEngine On are not the ones {addr} reaches: serving plain HTTP there"
        );
    }
    let scheme = if tls.is_some() { "https" } else { "http" };

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "proxy-balancer listening on {scheme}://{addr}/, serving {origin}:"
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
    // A private CA or a certificate for a name: curl needs to be told (`--cacert`,
    // `--resolve`), which the banner cannot guess.
    let curl = if tls.is_some() {
        "curl -i --cacert YOUR-CA.pem"
    } else {
        "curl -i"
    };
    writeln!(out, "try:  {curl} {scheme}://{addr}/")?;
    // The sticky hint of the first balancer with a session cookie and a routed member.
    let sticky = site.stores().iter().find_map(|store| {
        let snapshot = store.snapshot();
        let sep = snapshot.params().sticky_session_sep;
        let cookie = snapshot
            .params()
            .sticky_session
            .as_ref()?
            .cookie()
            .to_owned();
        // The second routed member (the first is where a first visit often lands).
        let mut routes = snapshot.members().iter().filter_map(|m| m.route());
        let first = routes.next()?;
        let route = routes.next().unwrap_or(first).to_owned();
        let value = sep.map_or(route.clone(), |sep| format!("{sep}{route}"));
        Some((cookie, value))
    });
    if let Some((cookie, value)) = sticky {
        writeln!(
            out,
            "      {curl} --cookie {cookie}={value} {scheme}://{addr}/"
        )?;
    }
    // BalancerShare: the manager's edits go through etcd to every instance (docs/fleet.md).
    if let Some(shared) = site.shared() {
        let status = shared.status();
        writeln!(
            out,
            "Balancer-manager edits shared with the fleet: {} (instance {}).",
            status.backend, status.instance
        )?;
    }
    if let Listeners::PerCore(listeners) = &listeners {
        writeln!(
            out,
            "{} worker threads, each with its own listener and member connections; the balancers' state shared.",
            listeners.len()
        )?;
    }
    writeln!(out, "Ctrl-C stops it.")?;
    drop(out);

    let shutdown = shutdown_signal(args.run_for.map(Duration::from_secs));
    let server = Server::new();
    let server = match tls {
        Some(tls) => server.tls(tls),
        None => server,
    };
    match listeners {
        Listeners::One(listener) => {
            serve_site(
                server.limits(limits),
                listener,
                site,
                &access_logs,
                shutdown,
            )
            .await?;
        }
        Listeners::PerCore(listeners) => {
            serve_per_core(listeners, &server, &limits, &site, &access_logs, shutdown).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Serves `site` on `listener` behind the access logs until `shutdown`.
async fn serve_site(
    server: Server,
    listener: tokio::net::TcpListener,
    site: Site,
    access_logs: &[AccessLogLayer],
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServerError> {
    match access_logs {
        [] => server.serve(listener, site, shutdown).await,
        // The usual case: one access log, no boxing on the request path.
        [one] => server.serve(listener, one.layer(site), shutdown).await,
        several => {
            let service = several.iter().fold(
                tower::util::BoxCloneSyncService::new(site.map_response(|r| r.map(box_body))),
                |inner, layer| {
                    tower::util::BoxCloneSyncService::new(
                        layer.layer(inner).map_response(|r| r.map(box_body)),
                    )
                },
            );
            server.serve(listener, service, shutdown).await
        }
    }
}

/// Per core: one thread per listener, each with a current-thread runtime serving its own
/// [`Site::worker`] (its own member connection pools; the stores, manager, probes and
/// heartbeat listener shared) with its share of the connection cap
/// ([`ClientLimits::for_worker`]: the total stays the configured or derived one) and the
/// shared access logs (one writer thread each, fed by every worker). Until `shutdown`
/// (Ctrl-C, `--run-for`), or until a worker ends on its own (an error): then every worker
/// stops accepting and drains its connections, and this waits for all of them.
async fn serve_per_core(
    listeners: Vec<std::net::TcpListener>,
    server: &Server,
    limits: &ClientLimits,
    site: &Site,
    access_logs: &[AccessLogLayer],
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), BoxError> {
    let workers = listeners.len();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (done, mut ended) = tokio::sync::mpsc::unbounded_channel::<(usize, Result<(), String>)>();
    let mut threads = Vec::with_capacity(workers);
    for (index, listener) in listeners.into_iter().enumerate() {
        let server = server.clone().limits(limits.for_worker(index, workers));
        let site = site.worker();
        let access_logs = access_logs.to_vec();
        let mut stopped = stopped.clone();
        let done = done.clone();
        let thread = std::thread::Builder::new()
            .name(format!("proxy-worker-{index}"))
            .spawn(move || {
                let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| format!("cannot start a runtime: {e}"))?;
                    runtime.block_on(async move {
                        let listener = tokio::net::TcpListener::from_std(listener)
                            .map_err(|e| e.to_string())?;
                        let shutdown = async move {
                            // A dropped sender (the main thread gone) stops it too.
                            let _ = stopped.wait_for(|stop| *stop).await;
                        };
                        serve_site(server, listener, site, &access_logs, shutdown)
                            .await
                            .map_err(|e| e.to_string())
                    })
                }));
                let result = served.unwrap_or_else(|_| Err("panicked".to_owned()));
                let _ = done.send((index, result));
            })?;
        threads.push(thread);
    }
    drop(done);
    let mut failure = None;
    let mut note = |(index, result): (usize, Result<(), String>)| {
        if let Err(why) = result {
            tracing::error!("worker {index}: {why}");
            failure.get_or_insert(format!("worker {index}: {why}"));
        }
    };
    tokio::select! {
        () = shutdown => {}
        Some(first) = ended.recv() => note(first),
    }
    let _ = stop.send(true);
    // Waited here, on the runtime, so that what runs on it (the probes, the demo
    // backends) goes on while the workers drain.
    while let Some(next) = ended.recv().await {
        note(next);
    }
    for thread in threads {
        let _ = thread.join();
    }
    failure.map_or(Ok(()), |why| Err(why.into()))
}

/// A response body of any kind, for a stack of several access logs.
type AnyBody = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, BoxError>;

fn box_body<B>(body: B) -> AnyBody
where
    B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    use http_body_util::BodyExt;
    body.map_err(Into::into).boxed_unsync()
}

/// Installs the error log and opens the access logs the configuration asks for (Apache's
/// `ErrorLog`, `LogLevel`, `CustomLog`/`TransferLog`, `LogFormat`): the error log on
/// standard error unless `ErrorLog` names a file, at `--log-level`, else `LogLevel`, else
/// `warn`; the access logs of the `CustomLog` lines, else `combined` on standard output
/// (none when `access` is false: `--no-access-log`).
fn init_logs(
    config: &Config,
    log_level: Option<&str>,
    access: bool,
) -> Result<Vec<AccessLogLayer>, BoxError> {
    let plan = log_plan(config, log_level, access)?;
    let filter = EnvFilter::try_new(&plan.filter)?;
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .event_format(ApacheErrorFormat);
    match &plan.error_log {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("ErrorLog {path}: {e}"))?;
            // One `write` per line on an O_APPEND file: lines never interleave.
            subscriber
                .with_writer(std::sync::Arc::new(file))
                .try_init()?;
        }
        None => subscriber.with_writer(std::io::stderr).try_init()?,
    }

    if !access {
        return Ok(Vec::new());
    }
    let server_name = config.server.server_name.as_ref().map(|s| s.host.clone());
    let layer = |format: LogFormat, writer: AccessLogWriter| {
        let layer = AccessLogLayer::new(format, writer);
        match &server_name {
            Some(name) => layer.server_name(name.as_str()),
            None => layer,
        }
    };
    if plan.access_logs.is_empty() {
        return Ok(vec![layer(
            LogFormat::combined(),
            AccessLogWriter::stdout(DEFAULT_QUEUE)?,
        )]);
    }
    plan.access_logs
        .into_iter()
        .map(|(format, path, line)| {
            let writer = AccessLogWriter::file(&path, DEFAULT_QUEUE)
                .map_err(|e| format!("line {line}: CustomLog {e}"))?;
            Ok(layer(format, writer))
        })
        .collect()
}

/// Error-log lines close to Apache's:
/// `[time] [target:level] [pid N] AH01114: message key=value …`.
struct ApacheErrorFormat;

impl<S, N> FormatEvent<S, N> for ApacheErrorFormat
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        writer.write_char('[')?;
        SystemTime.format_time(&mut writer)?;
        let level = meta.level().as_str().to_ascii_lowercase();
        write!(
            writer,
            "] [{}:{level}] [pid {}] ",
            apache_module(meta.target()),
            std::process::id()
        )?;
        let mut fields = ApacheFields::default();
        event.record(&mut fields);
        if let Some(id) = &fields.apache_id {
            write!(writer, "{id}: ")?;
        }
        writer.write_str(&fields.message)?;
        writer.write_str(&fields.rest)?;
        writeln!(writer)
    }
}

/// The Apache module a tracing target stands for, as `LogLevel module:level` names it
/// (`proxy_balancer::retry_window` is `proxy`); other targets as they are.
fn apache_module(target: &str) -> &str {
    const MODULES: [&str; 6] = [
        "core",
        "proxy",
        "proxy_balancer",
        "proxy_hcheck",
        "heartmonitor",
        "log_config",
    ];
    let under = |prefix: &str| {
        target == prefix
            || target
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with("::"))
    };
    MODULES
        .into_iter()
        .find(|module| {
            proxy_balancer::apache_config::logs::module_targets(module)
                .unwrap_or_default()
                .iter()
                .any(|prefix| under(prefix))
        })
        .unwrap_or(target)
}

/// An event's fields: Apache's message id, the message, the rest as ` key=value`.
#[derive(Default)]
struct ApacheFields {
    apache_id: Option<String>,
    message: String,
    rest: String,
}

impl tracing::field::Visit for ApacheFields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "apache_id" => self.apache_id = Some(value.to_owned()),
            "message" => self.message.push_str(value),
            name => {
                let _ = write!(self.rest, " {name}={value}");
            }
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "apache_id" => self.apache_id = Some(format!("{value:?}")),
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            name => {
                let _ = write!(self.rest, " {name}={value:?}");
            }
        }
    }
}
