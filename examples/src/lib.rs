//! Code the examples share, kept in a library so that tests can run it: what an example's
//! `main` returns, when it stops, and the demo balancer the axum and client-pool examples
//! use. The proxy itself is the library's ([`proxy_balancer::site`],
//! [`proxy_balancer::server`]); the demo backends and configuration are the test kit's
//! ([`proxy_balancer_test::demo_config`]).

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use proxy_balancer::access_log::LogFormat;
use proxy_balancer::apache_config::doctor::{self, Finding};
use proxy_balancer::apache_config::{
    parse, parse_partial, Config, LogConfigError, ParseError, Span,
};
use proxy_balancer::site::{Site, SiteError};
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

// ===== the start-up plan, shared by `--config` and `--check` =====

/// What the reverse proxy's logs will be, worked out from the configuration (and
/// `--log-level`) without opening anything: the part of the start-up that can refuse a
/// configuration before any file is touched.
#[derive(Debug)]
pub struct LogPlan {
    /// The error log's tracing filter (`warn` by default).
    pub filter: String,
    /// The `ErrorLog` file, if not standard error.
    pub error_log: Option<String>,
    /// The access logs: format, file, and the line of their `CustomLog`.
    pub access_logs: Vec<(LogFormat, String, u32)>,
}

/// The [`LogPlan`] of a configuration: `ErrorLog`, `LogLevel` (or `log_level`, which wins,
/// in `LogLevel` syntax), `CustomLog`/`TransferLog` and their formats (none when `access`
/// is false: `--no-access-log`).
///
/// # Errors
///
/// What `--config` refuses: a log it does not write (piped, syslog, `env=`), a format that
/// does not parse, a `--log-level` that is no `LogLevel`.
pub fn log_plan(
    config: &Config,
    log_level: Option<&str>,
    access: bool,
) -> Result<LogPlan, BoxError> {
    let logs = config.logs()?;
    let filter = match log_level {
        // Read as a `LogLevel` line, so the names and the module map are Apache's.
        Some(level) => {
            let line = format!("LogLevel {}", level.replace(',', " "));
            let parsed = parse(&line).map_err(|e| format!("--log-level {level}: {e}"))?;
            parsed.logs()?.tracing_filter()
        }
        None => logs.tracing_filter(),
    };
    let filter = filter.unwrap_or_else(|| "warn".to_owned());
    tracing_subscriber::EnvFilter::try_new(&filter)?;
    let access_logs = logs
        .access_logs
        .iter()
        .filter(|_| access)
        .map(|spec| {
            let format = LogFormat::parse(&spec.format)
                .map_err(|e| format!("line {}: CustomLog format: {e}", spec.span.line))?;
            Ok((format, spec.path.clone(), spec.span.line))
        })
        .collect::<Result<_, BoxError>>()?;
    Ok(LogPlan {
        filter,
        error_log: logs.error_log,
        access_logs,
    })
}

/// Whether `--config` could open `path` to append to it (creating it if missing), checked
/// without changing it: an existing file is opened for appending and closed; a missing one
/// is created and removed at once (so nothing is left where `--config` would not have
/// written), in a directory that must exist.
///
/// # Errors
///
/// Why it cannot be opened.
pub fn check_log_file(path: &str) -> std::io::Result<()> {
    let p = Path::new(path);
    match std::fs::metadata(p) {
        Ok(meta) if meta.is_dir() => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "is a directory",
        )),
        Ok(_) => OpenOptions::new().append(true).open(p).map(drop),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            OpenOptions::new().append(true).create_new(true).open(p)?;
            std::fs::remove_file(p)
        }
        Err(e) => Err(e),
    }
}

// ===== `--check` =====

/// Why `--config` would not start, past the parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The configuration line it is about (0 when it is about no one line).
    pub line: u32,
    /// Why, as `--config` says it.
    pub what: String,
}

/// What `--check` found: the parse errors, the doctor's findings on what was read (also
/// when there are parse errors), and why `--config` would not start, if it would not.
#[derive(Debug)]
pub struct CheckReport {
    /// The parse errors, in the order of the text.
    pub parse_errors: Vec<ParseError>,
    /// The doctor's findings, in the order of the text.
    pub findings: Vec<Finding>,
    /// Why `--config` would stop past a clean parse (conversion, logs, site), if it would.
    pub refusal: Option<Refusal>,
    /// The files read ([`Config::files`]: the checked file first, then those it includes),
    /// to name the file of a finding in an included one. Empty for a text.
    pub files: Vec<std::path::PathBuf>,
}

/// The file a finding is in when it is not the checked one (an included file).
fn included_file(files: &[std::path::PathBuf], span: Span) -> Option<&std::path::Path> {
    usize::try_from(span.file)
        .ok()
        .filter(|&i| i > 0)
        .and_then(|i| files.get(i))
        .map(std::path::PathBuf::as_path)
}

impl CheckReport {
    /// Whether `--config` would start with this configuration (and get as far as binding).
    #[must_use]
    pub fn starts(&self) -> bool {
        self.parse_errors.is_empty() && self.refusal.is_none()
    }

    /// `--check`'s exit status: 2 when `--config` would not start; else 1 with warnings or
    /// errors found (things that will hurt when it runs), 0 otherwise (notes at most).
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        if !self.starts() {
            2
        } else if doctor::exit_code(&self.findings) > 0 {
            1
        } else {
            0
        }
    }

    /// For people: one block per error or finding, `origin: …`, then the verdict: why
    /// `--config` would not start, or that it would (`origin: no problem found` when
    /// nothing was found).
    #[must_use]
    pub fn to_text(&self, origin: &str) -> String {
        let mut out = String::new();
        let mut items: Vec<(Span, String)> = self
            .parse_errors
            .iter()
            .map(|e| (e.span, format!("{origin}: error: {e}\n")))
            .chain(self.findings.iter().map(|f| {
                let text = match included_file(&self.files, f.span) {
                    Some(file) => format!("{}: {f}\n", file.display()),
                    None => format!("{origin}: {f}\n"),
                };
                (f.span, text)
            }))
            .collect();
        items.sort_by_key(|(span, _)| *span);
        for (_, text) in items {
            out.push_str(&text);
        }
        if let Some(refusal) = &self.refusal {
            out.push_str(&format!(
                "{origin}: error: --config would not start: {}\n",
                refusal.what
            ));
        }
        if self.starts() {
            match self.findings.len() {
                0 => out.push_str(&format!("{origin}: no problem found\n")),
                1 => out.push_str(&format!(
                    "{origin}: --config would start, with the finding above\n"
                )),
                n => out.push_str(&format!(
                    "{origin}: --config would start, with the {n} findings above\n"
                )),
            }
        }
        out
    }

    /// For programs: one JSON array of objects with `severity`, `rule`, `line`, `column`,
    /// `what` (and `causes`, `fix` for the doctor's findings): the parse errors (rule
    /// `parse`) and findings in the order of the text, then why `--config` would not start
    /// (rule `start`), if it would not.
    #[must_use]
    pub fn to_json(&self) -> String {
        let mut items: Vec<(Span, String)> = self
            .parse_errors
            .iter()
            .map(|e| {
                (
                    e.span,
                    format!(
                        "{{\"severity\":\"error\",\"rule\":\"parse\",\"line\":{},\"column\":{},\"what\":\"{}\"}}",
                        e.span.line,
                        e.span.column,
                        json_escape(&e.to_string())
                    ),
                )
            })
            .chain(self.findings.iter().map(|f| {
                let one = doctor::to_json(std::slice::from_ref(f));
                let inner = one
                    .strip_prefix('[')
                    .and_then(|s| s.strip_suffix(']'))
                    .unwrap_or("{}");
                let inner = match (included_file(&self.files, f.span), inner.strip_prefix('{')) {
                    (Some(file), Some(rest)) => format!(
                        "{{\"file\":\"{}\",{rest}",
                        json_escape(&file.display().to_string())
                    ),
                    _ => inner.to_owned(),
                };
                (f.span, inner)
            }))
            .collect();
        items.sort_by_key(|(span, _)| *span);
        let mut parts: Vec<String> = items.into_iter().map(|(_, s)| s).collect();
        if let Some(r) = &self.refusal {
            parts.push(format!(
                "{{\"severity\":\"error\",\"rule\":\"start\",\"line\":{},\"column\":0,\"what\":\"{}\",\"causes\":\"--config would not start\",\"fix\":\"see the message\"}}",
                r.line,
                json_escape(&r.what)
            ));
        }
        format!("[{}]", parts.join(","))
    }
}

/// `text` as the inside of a JSON string.
#[must_use]
pub fn json_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// The line a [`SiteError`] is about (0 when it is about a balancer as a whole).
fn site_error_line(error: &SiteError) -> u32 {
    match error {
        SiteError::Params(errors) => errors.errors().first().map_or(0, |e| e.span.line),
        SiteError::ProxyPass { line, .. }
        | SiteError::Unsupported { line, .. }
        | SiteError::Mapping { line, .. }
        | SiteError::HealthCheck { line, .. }
        | SiteError::Manager { line, .. }
        | SiteError::Tls { line, .. } => *line,
        _ => 0,
    }
}

/// `--check`: the start-up of `--config` without the listening. The same parse (every
/// error, and the doctor's findings on what was read), the same log plan and log files
/// (checked without being changed: [`check_log_file`]), the same site build
/// ([`Site::validate`]: the build of [`Site::from_config`] without binding the heartbeat
/// port or touching the persisted state, in a runtime of its own, dropped at once: its health probes
/// never send a request). [`CheckReport::starts`] says whether `--config` would start.
///
/// `log_level` is `--log-level`; `access_logs` is false with `--no-access-log`.
///
/// ```
/// let report = examples::check_config(
///     "<Proxy balancer://app>\n  BalancerMember fcgi://127.0.0.1:9\n</Proxy>\nProxyPass / balancer://app/\n",
///     None,
///     true,
/// );
/// assert!(!report.starts());
/// assert_eq!(report.exit_code(), 2);
/// ```
#[must_use]
pub fn check_config(text: &str, log_level: Option<&str>, access_logs: bool) -> CheckReport {
    let (config, parse_errors) = parse_partial(text);
    report(&config, parse_errors, log_level, access_logs)
}

/// [`check_config`] on a file read as `--config FILE` reads it
/// ([`parse_file`](proxy_balancer::apache_config::parse_file): its `Include`s,
/// `Define`s and `${VAR}`s, each error naming its file), so that `--check` and `--config`
/// see the same configuration.
#[must_use]
pub fn check_file(
    path: &std::path::Path,
    log_level: Option<&str>,
    access_logs: bool,
) -> CheckReport {
    let (config, mut parse_errors) = proxy_balancer::apache_config::parse_file_partial(
        path,
        &proxy_balancer::apache_config::FileOptions::new(),
    );
    // The report names the checked file once; an error in a file it includes keeps its
    // path (`path:line:column`).
    for e in &mut parse_errors {
        if e.span.file == 0 {
            e.path = None;
        }
    }
    report(&config, parse_errors, log_level, access_logs)
}

/// The report on what was read: the doctor's findings, and why `--config` would not
/// start (after parse errors it would not: they are the reason).
fn report(
    config: &Config,
    parse_errors: Vec<ParseError>,
    log_level: Option<&str>,
    access_logs: bool,
) -> CheckReport {
    let findings = doctor::check(config);
    let refusal = if parse_errors.is_empty() {
        start_refusal(config, log_level, access_logs)
    } else {
        None
    };
    CheckReport {
        parse_errors,
        findings,
        refusal,
        files: config.files.clone(),
    }
}

/// What `--config` does before it binds, in its order, stopping at the first refusal.
fn start_refusal(config: &Config, log_level: Option<&str>, access_logs: bool) -> Option<Refusal> {
    let refused = |line: u32, what: String| Some(Refusal { line, what });
    let plan = match log_plan(config, log_level, access_logs) {
        Ok(plan) => plan,
        Err(e) => {
            let line = e
                .downcast_ref::<LogConfigError>()
                .map_or(0, |e| e.span().line);
            return refused(line, e.to_string());
        }
    };
    if let Some(path) = &plan.error_log {
        if let Err(e) = check_log_file(path) {
            return refused(0, format!("ErrorLog {path}: {e}"));
        }
    }
    for (_, path, line) in &plan.access_logs {
        if let Err(e) = check_log_file(path) {
            return refused(*line, format!("line {line}: CustomLog {path}: {e}"));
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return refused(0, format!("cannot start a runtime: {e}")),
    };
    // Site::validate: the heartbeat port is not bound and the persisted state is not
    // rewritten, so that --check beside the running proxy neither fails nor changes it.
    let built = runtime.block_on(async { Site::validate(config) });
    match built {
        Ok(()) => None,
        Err(e) => refused(site_error_line(&e), e.to_string()),
    }
}
