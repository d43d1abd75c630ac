//! The logging directives: `ErrorLog`, `CustomLog`/`TransferLog`, `LogFormat` and
//! `LogLevel`, read in server context, and what they resolve to ([`Config::logs`]).
//!
//! # Apache
//!
//! mod_log_config's `CustomLog file format|nickname`, `TransferLog file` and
//! `LogFormat format [nickname]`, and core's `ErrorLog file` and
//! `LogLevel [level] [module:level …]`. What a reverse proxy cannot do is refused by
//! [`Config::logs`] (and reported by the doctor's `not-applied` rule) rather than dropped:
//! piped logs (`|cmd`), `syslog:`, conditional logs (`env=`, `expr=`), and `${VAR}` in a
//! file name (not expanded here). Written inside a
//! `<VirtualHost>` these directives are checked and listed in [`Config::skipped`] (every
//! request goes to the server's logs; the doctor's `no-effect` rule says so). A relative
//! file name is relative to the working directory (there is no `ServerRoot`).
//!
//! ## Levels
//!
//! Apache's levels map to `tracing`'s:
//!
//! | Apache | tracing |
//! | --- | --- |
//! | `emerg`, `alert`, `crit`, `error` | `error` |
//! | `warn` | `warn` |
//! | `notice`, `info` | `info` |
//! | `debug` | `debug` |
//! | `trace1` … `trace8` | `trace` |
//!
//! and the modules of `LogLevel module:level` to the proxy's parts (tracing targets, see
//! [`module_targets`]): `core`, `http`, `http2`, `reqtimeout` → the server; `proxy`,
//! `proxy_http` → forwarding, the member client, retry windows, error answers and the site;
//! `proxy_balancer` and the `lbmethod_*` modules → the balancer, sticky routes, the core and
//! the balancer-manager; `proxy_hcheck` → health probes; `heartmonitor`, `heartbeat` →
//! heartbeats; `log_config` → the access log.

use std::fmt;

use crate::ast::{Config, Span};

/// An Apache log level (`LogLevel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum LogLevel {
    /// `emerg`.
    Emerg,
    /// `alert`.
    Alert,
    /// `crit`.
    Crit,
    /// `error`.
    Error,
    /// `warn`, Apache's default.
    Warn,
    /// `notice`.
    Notice,
    /// `info`.
    Info,
    /// `debug`.
    Debug,
    /// `trace1` to `trace8`.
    Trace(u8),
}

impl LogLevel {
    /// Reads a level name as Apache does (case-insensitive).
    ///
    /// ```
    /// use proxy_balancer_apache_config::LogLevel;
    ///
    /// assert_eq!(LogLevel::parse("Trace2"), Some(LogLevel::Trace(2)));
    /// assert_eq!(LogLevel::parse("trace2").map(LogLevel::tracing_level), Some("trace"));
    /// assert_eq!(LogLevel::parse("notice").map(LogLevel::tracing_level), Some("info"));
    /// assert_eq!(LogLevel::parse("loud"), None);
    /// ```
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        Some(match lower.as_str() {
            "emerg" => Self::Emerg,
            "alert" => Self::Alert,
            "crit" => Self::Crit,
            "error" => Self::Error,
            "warn" => Self::Warn,
            "notice" => Self::Notice,
            "info" => Self::Info,
            "debug" => Self::Debug,
            _ => match lower.strip_prefix("trace")?.parse::<u8>() {
                Ok(n @ 1..=8) => Self::Trace(n),
                _ => return None,
            },
        })
    }

    /// The `tracing` level this level maps to (see the [module docs](self)), as a filter
    /// directive names it: `error`, `warn`, `info`, `debug` or `trace`.
    #[must_use]
    pub const fn tracing_level(self) -> &'static str {
        match self {
            Self::Emerg | Self::Alert | Self::Crit | Self::Error => "error",
            Self::Warn => "warn",
            Self::Notice | Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace(_) => "trace",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Emerg => f.write_str("emerg"),
            Self::Alert => f.write_str("alert"),
            Self::Crit => f.write_str("crit"),
            Self::Error => f.write_str("error"),
            Self::Warn => f.write_str("warn"),
            Self::Notice => f.write_str("notice"),
            Self::Info => f.write_str("info"),
            Self::Debug => f.write_str("debug"),
            Self::Trace(n) => write!(f, "trace{n}"),
        }
    }
}

/// Where a log goes, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogDestination {
    /// A file name.
    File(String),
    /// `|command` (a piped log): refused by [`Config::logs`].
    Pipe(String),
    /// `syslog` or `syslog:facility` (`ErrorLog` only): refused by [`Config::logs`].
    Syslog(String),
}

impl LogDestination {
    fn parse(text: &str) -> Self {
        if let Some(command) = text.strip_prefix('|') {
            Self::Pipe(command.trim_start_matches('$').trim().to_owned())
        } else if text == "syslog" || text.starts_with("syslog:") {
            Self::Syslog(text.to_owned())
        } else {
            Self::File(text.to_owned())
        }
    }

    fn as_written(&self) -> String {
        match self {
            Self::File(path) => path.clone(),
            Self::Pipe(command) => format!("|{command}"),
            Self::Syslog(text) => text.clone(),
        }
    }
}

/// An `ErrorLog destination`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorLogConfig {
    /// Where the error log goes.
    pub destination: LogDestination,
    /// Where the directive starts.
    pub span: Span,
}

/// A `CustomLog destination format [env=…|expr=…]` or a `TransferLog destination`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomLogConfig {
    /// Where the access log goes.
    pub destination: LogDestination,
    /// A `LogFormat` nickname or a format string, as written; `None` for `TransferLog`
    /// (the last `LogFormat` without a nickname, else `common`).
    pub format: Option<String>,
    /// `env=…` or `expr=…` as written: refused by [`Config::logs`].
    pub condition: Option<String>,
    /// Where the directive starts.
    pub span: Span,
}

/// A `LogFormat format [nickname]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFormatConfig {
    /// The format string, as written (unquoted).
    pub format: String,
    /// The nickname it defines; without one the format is `TransferLog`'s.
    pub nickname: Option<String>,
    /// Where the directive starts.
    pub span: Span,
}

/// A `LogLevel [level] [module:level …]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLevelConfig {
    /// The level of everything not named.
    pub level: Option<LogLevel>,
    /// `module:level` pairs, the module as written (`proxy`, `mod_proxy.c`, `proxy_module`).
    pub modules: Vec<(String, LogLevel)>,
    /// Where the directive starts.
    pub span: Span,
}

/// The logging directives of a configuration's server context ([`Config::logs`] resolves
/// them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogDirectives {
    /// `ErrorLog`: the last one, as in Apache.
    pub error_log: Option<ErrorLogConfig>,
    /// `CustomLog` and `TransferLog`, in order (each is written).
    pub custom_logs: Vec<CustomLogConfig>,
    /// `LogFormat`, in order.
    pub log_formats: Vec<LogFormatConfig>,
    /// `LogLevel`, in order (later lines win for what they name).
    pub log_levels: Vec<LogLevelConfig>,
}

/// An access log to write ([`Logs::access_logs`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccessLogSpec {
    /// The file to append to.
    pub path: String,
    /// The format string (a nickname resolved): parse it with
    /// `proxy_balancer::access_log::LogFormat`.
    pub format: String,
    /// Where the `CustomLog` starts.
    pub span: Span,
}

/// What the logging directives ask for ([`Config::logs`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Logs {
    /// The error log's file; `None`: the default (standard error).
    pub error_log: Option<String>,
    /// The access logs, each with its resolved format.
    pub access_logs: Vec<AccessLogSpec>,
    /// The global level (`LogLevel level`), when given.
    pub level: Option<LogLevel>,
    /// Per-module levels, module names normalized (`mod_proxy.c` → `proxy`), the last one
    /// for each module.
    pub module_levels: Vec<(String, LogLevel)>,
}

impl Logs {
    /// A `tracing-subscriber` `EnvFilter` for the levels (see the [module docs](self) for
    /// the map), or `None` when no `LogLevel` was given. Modules with no counterpart here
    /// are left out (the doctor's `no-effect` rule names them).
    ///
    /// ```
    /// let config = proxy_balancer_apache_config::parse("LogLevel info proxy_balancer:trace2\n")?;
    /// let logs = config.logs()?;
    /// assert_eq!(
    ///     logs.tracing_filter().as_deref(),
    ///     Some("info,proxy_balancer::balancer=trace,proxy_balancer::sticky_route=trace,\
    ///           proxy_balancer_core=trace,proxy_balancer_manager=trace")
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn tracing_filter(&self) -> Option<String> {
        if self.level.is_none() && self.module_levels.is_empty() {
            return None;
        }
        let mut filter = self
            .level
            .unwrap_or(LogLevel::Warn)
            .tracing_level()
            .to_owned();
        for (module, level) in &self.module_levels {
            for target in module_targets(module).unwrap_or_default() {
                filter.push(',');
                filter.push_str(target);
                filter.push('=');
                filter.push_str(level.tracing_level());
            }
        }
        Some(filter)
    }
}

/// The proxy's tracing targets for an Apache module name (`proxy`, `mod_proxy.c` and
/// `proxy_module` alike); `None` for a module with no counterpart here.
///
/// ```
/// use proxy_balancer_apache_config::logs::module_targets;
///
/// assert_eq!(module_targets("mod_proxy_hcheck.c"), Some(&["proxy_balancer::health_probe"][..]));
/// assert_eq!(module_targets("ssl"), None);
/// ```
#[must_use]
pub fn module_targets(module: &str) -> Option<&'static [&'static str]> {
    const SERVER: &[&str] = &["proxy_balancer::server"];
    const PROXY: &[&str] = &[
        "proxy_balancer::proxy_pass",
        "proxy_balancer::client",
        "proxy_balancer::retry_window",
        "proxy_balancer::error",
        "proxy_balancer::site",
    ];
    const BALANCER: &[&str] = &[
        "proxy_balancer::balancer",
        "proxy_balancer::sticky_route",
        "proxy_balancer_core",
        "proxy_balancer_manager",
    ];
    Some(match normalize_module(module).as_str() {
        "core" | "http" | "http2" | "reqtimeout" => SERVER,
        "proxy" | "proxy_http" => PROXY,
        "proxy_balancer"
        | "lbmethod_byrequests"
        | "lbmethod_bytraffic"
        | "lbmethod_bybusyness"
        | "lbmethod_heartbeat" => BALANCER,
        "proxy_hcheck" => &["proxy_balancer::health_probe"],
        "heartmonitor" | "heartbeat" => &["proxy_balancer::heartbeat"],
        "log_config" => &["proxy_balancer::access_log"],
        _ => return None,
    })
}

/// `mod_proxy.c` and `proxy_module` → `proxy`, as Apache's `LogLevel` reads them.
fn normalize_module(module: &str) -> String {
    let lower = module.to_ascii_lowercase();
    let name = lower.strip_prefix("mod_").unwrap_or(&lower);
    let name = name.strip_suffix(".c").unwrap_or(name);
    let name = name.strip_suffix("_module").unwrap_or(name);
    name.to_owned()
}

/// Apache's default nicknames (`httpd.conf`), so `CustomLog file combined` works without
/// the `LogFormat` lines.
const NICKNAMES: &[(&str, &str)] = &[
    ("common", "%h %l %u %t \"%r\" %>s %b"),
    (
        "combined",
        "%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\"",
    ),
];

/// Why [`Config::logs`] refuses the logging directives: what the reverse proxy cannot do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogConfigError {
    /// `ErrorLog "|cmd"` or `CustomLog "|cmd" …`.
    #[error("line {}: {directive} to a pipe (|{command}) is not supported: write to a file and rotate it outside (logrotate copytruncate, or a fifo read by your command)", .span.line)]
    Piped {
        /// `ErrorLog` or `CustomLog`.
        directive: &'static str,
        /// The command.
        command: String,
        /// Where the directive starts.
        span: Span,
    },
    /// `ErrorLog syslog[:facility]`.
    #[error("line {}: ErrorLog {destination} is not supported: give a file (stderr is the default; journald collects it under systemd)", .span.line)]
    Syslog {
        /// As written.
        destination: String,
        /// Where the directive starts.
        span: Span,
    },
    /// A file name with a `${VAR}` (Debian's `${APACHE_LOG_DIR}`): variables are not
    /// expanded here.
    #[error("line {}: {directive} {path}: variables (${{…}}) are not expanded here: write the path out", .span.line)]
    Variable {
        /// `ErrorLog`, `CustomLog` or `TransferLog`.
        directive: &'static str,
        /// As written.
        path: String,
        /// Where the directive starts.
        span: Span,
    },
    /// `CustomLog file format env=…` or `expr=…`.
    #[error("line {}: CustomLog with the condition {condition} is not supported: every request is logged; drop the condition", .span.line)]
    Condition {
        /// As written.
        condition: String,
        /// Where the directive starts.
        span: Span,
    },
    /// `CustomLog file word` where the word is no nickname and has no `%`: Apache would log
    /// the word itself on every line.
    #[error("line {}: CustomLog format \"{name}\" is not a LogFormat nickname (known: {known})", .span.line)]
    UnknownNickname {
        /// As written.
        name: String,
        /// The nicknames defined, comma-separated.
        known: String,
        /// Where the directive starts.
        span: Span,
    },
}

impl LogConfigError {
    /// Where the directive starts.
    #[must_use]
    pub const fn span(&self) -> Span {
        match self {
            Self::Piped { span, .. }
            | Self::Syslog { span, .. }
            | Self::Condition { span, .. }
            | Self::Variable { span, .. }
            | Self::UnknownNickname { span, .. } => *span,
        }
    }
}

impl Config {
    /// What the logging directives ask for: the error log's file, the access logs with
    /// their formats resolved (nicknames defined anywhere in the file, as Apache resolves
    /// them when it opens the logs, and Apache's default `common` and `combined`), and the
    /// levels. See the [`logs`](crate::logs) module.
    ///
    /// # Errors
    ///
    /// The first [`LogConfigError`]: a piped or syslog log, a conditional `CustomLog`, a
    /// format that is no nickname and no format.
    ///
    /// ```
    /// let config = proxy_balancer_apache_config::parse(
    ///     "ErrorLog /var/log/proxy/error.log\n\
    ///      LogFormat \"%h %>s\" short\n\
    ///      CustomLog /var/log/proxy/access.log short\n\
    ///      CustomLog /var/log/proxy/combined.log combined\n\
    ///      LogLevel warn proxy:debug\n",
    /// )?;
    /// let logs = config.logs()?;
    /// assert_eq!(logs.error_log.as_deref(), Some("/var/log/proxy/error.log"));
    /// assert_eq!(logs.access_logs[0].format, "%h %>s");
    /// assert!(logs.access_logs[1].format.ends_with("\"%{User-Agent}i\""));
    ///
    /// let piped = proxy_balancer_apache_config::parse("CustomLog \"|/usr/bin/rotatelogs x 86400\" common\n")?;
    /// assert!(piped.logs().unwrap_err().to_string().contains("pipe"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn logs(&self) -> Result<Logs, LogConfigError> {
        match self.log_refusals().into_iter().next() {
            Some(error) => Err(error),
            None => Ok(self.resolve_logs()),
        }
    }

    /// Every reason [`Config::logs`] would refuse (the doctor lists them all).
    pub(crate) fn log_refusals(&self) -> Vec<LogConfigError> {
        let logs = &self.log_directives;
        let mut out = Vec::new();
        if let Some(e) = &logs.error_log {
            match &e.destination {
                LogDestination::Pipe(command) => out.push(LogConfigError::Piped {
                    directive: "ErrorLog",
                    command: command.clone(),
                    span: e.span,
                }),
                LogDestination::Syslog(text) => out.push(LogConfigError::Syslog {
                    destination: text.clone(),
                    span: e.span,
                }),
                LogDestination::File(path) if path.contains("${") => {
                    out.push(LogConfigError::Variable {
                        directive: "ErrorLog",
                        path: path.clone(),
                        span: e.span,
                    });
                }
                LogDestination::File(_) => {}
            }
        }
        for c in &logs.custom_logs {
            if let LogDestination::File(path) = &c.destination {
                if path.contains("${") {
                    out.push(LogConfigError::Variable {
                        directive: if c.format.is_some() {
                            "CustomLog"
                        } else {
                            "TransferLog"
                        },
                        path: path.clone(),
                        span: c.span,
                    });
                }
            }
            if let LogDestination::Pipe(command) = &c.destination {
                out.push(LogConfigError::Piped {
                    directive: "CustomLog",
                    command: command.clone(),
                    span: c.span,
                });
            }
            if let Some(condition) = &c.condition {
                out.push(LogConfigError::Condition {
                    condition: condition.clone(),
                    span: c.span,
                });
            }
            if let Some(format) = &c.format {
                if !format.contains('%') && self.nickname(format).is_none() {
                    let mut known: Vec<&str> = NICKNAMES.iter().map(|(n, _)| *n).collect();
                    known.extend(
                        logs.log_formats
                            .iter()
                            .filter_map(|f| f.nickname.as_deref()),
                    );
                    out.push(LogConfigError::UnknownNickname {
                        name: format.clone(),
                        known: known.join(", "),
                        span: c.span,
                    });
                }
            }
        }
        out
    }

    /// A nickname's format: the last `LogFormat` defining it, else Apache's default.
    fn nickname(&self, name: &str) -> Option<&str> {
        self.log_directives
            .log_formats
            .iter()
            .rev()
            .find(|f| f.nickname.as_deref() == Some(name))
            .map(|f| f.format.as_str())
            .or_else(|| NICKNAMES.iter().find(|(n, _)| *n == name).map(|(_, f)| *f))
    }

    fn resolve_logs(&self) -> Logs {
        let logs = &self.log_directives;
        let error_log = logs.error_log.as_ref().and_then(|e| match &e.destination {
            LogDestination::File(path) => Some(path.clone()),
            _ => None,
        });
        let transfer_format = logs
            .log_formats
            .iter()
            .rev()
            .find(|f| f.nickname.is_none())
            .map_or(NICKNAMES[0].1, |f| f.format.as_str());
        let access_logs = logs
            .custom_logs
            .iter()
            .filter_map(|c| {
                let LogDestination::File(path) = &c.destination else {
                    return None;
                };
                let format = match &c.format {
                    None => transfer_format,
                    Some(format) => self.nickname(format).unwrap_or(format),
                };
                Some(AccessLogSpec {
                    path: path.clone(),
                    format: format.to_owned(),
                    span: c.span,
                })
            })
            .collect();
        let mut level = None;
        let mut module_levels: Vec<(String, LogLevel)> = Vec::new();
        for l in &logs.log_levels {
            if l.level.is_some() {
                level = l.level;
            }
            for (module, module_level) in &l.modules {
                let module = normalize_module(module);
                module_levels.retain(|(m, _)| *m != module);
                module_levels.push((module, *module_level));
            }
        }
        Logs {
            error_log,
            access_logs,
            level,
            module_levels,
        }
    }
}

/// Parses the arguments of a logging directive (server context is the caller's business).
pub(crate) fn parse_directive(
    directive: &str,
    lower: &str,
    args: &[String],
    span: Span,
) -> Result<LogItem, String> {
    match lower {
        "errorlog" => match args {
            [destination] => Ok(LogItem::ErrorLog(ErrorLogConfig {
                destination: LogDestination::parse(destination),
                span,
            })),
            _ => Err(format!("{directive} takes one argument, a file name")),
        },
        "transferlog" => match args {
            [destination] => Ok(LogItem::CustomLog(CustomLogConfig {
                destination: LogDestination::parse(destination),
                format: None,
                condition: None,
                span,
            })),
            _ => Err(format!("{directive} takes one argument, a file name")),
        },
        "customlog" => match args {
            [destination, format, rest @ ..] if rest.len() <= 1 => {
                Ok(LogItem::CustomLog(CustomLogConfig {
                    destination: LogDestination::parse(destination),
                    format: Some(format.clone()),
                    condition: rest.first().cloned(),
                    span,
                }))
            }
            _ => Err(format!(
                "{directive} takes a file name, a format or nickname, and an optional env= or expr= condition"
            )),
        },
        "logformat" => match args {
            [format] => Ok(LogItem::LogFormat(LogFormatConfig {
                format: format.clone(),
                nickname: None,
                span,
            })),
            [format, nickname] => Ok(LogItem::LogFormat(LogFormatConfig {
                format: format.clone(),
                nickname: Some(nickname.clone()),
                span,
            })),
            _ => Err(format!(
                "{directive} takes a format and an optional nickname"
            )),
        },
        _ => {
            if args.is_empty() {
                return Err(format!("{directive} takes a level and module:level pairs"));
            }
            let mut level = None;
            let mut modules = Vec::new();
            for arg in args {
                let (module, name) = match arg.rsplit_once(':') {
                    Some((module, name)) => (Some(module), name),
                    None => (None, arg.as_str()),
                };
                let Some(parsed) = LogLevel::parse(name) else {
                    return Err(format!(
                        "invalid value \"{arg}\" for {directive}: the level must be one of emerg, alert, crit, error, warn, notice, info, debug, trace1 … trace8"
                    ));
                };
                match module {
                    Some("") => {
                        return Err(format!(
                            "invalid value \"{arg}\" for {directive}: a module name is missing before :"
                        ))
                    }
                    Some(module) => modules.push((module.to_owned(), parsed)),
                    None => level = Some(parsed),
                }
            }
            Ok(LogItem::LogLevel(LogLevelConfig {
                level,
                modules,
                span,
            }))
        }
    }
}

/// One parsed logging directive.
#[derive(Debug)]
pub(crate) enum LogItem {
    ErrorLog(ErrorLogConfig),
    CustomLog(CustomLogConfig),
    LogFormat(LogFormatConfig),
    LogLevel(LogLevelConfig),
}

impl LogItem {
    pub(crate) fn apply(self, logs: &mut LogDirectives) {
        match self {
            Self::ErrorLog(e) => logs.error_log = Some(e),
            Self::CustomLog(c) => logs.custom_logs.push(c),
            Self::LogFormat(f) => logs.log_formats.push(f),
            Self::LogLevel(l) => logs.log_levels.push(l),
        }
    }
}

/// Writes the logging directives back (for [`Config::render`]).
pub(crate) fn render(logs: &LogDirectives, out: &mut String, word: impl Fn(&str) -> String) {
    if let Some(e) = &logs.error_log {
        out.push_str(&format!("ErrorLog {}\n", word(&e.destination.as_written())));
    }
    for l in &logs.log_levels {
        out.push_str("LogLevel");
        if let Some(level) = l.level {
            out.push_str(&format!(" {level}"));
        }
        for (module, level) in &l.modules {
            out.push_str(&format!(" {module}:{level}"));
        }
        out.push('\n');
    }
    for f in &logs.log_formats {
        out.push_str(&format!("LogFormat {}", word(&f.format)));
        if let Some(nickname) = &f.nickname {
            out.push_str(&format!(" {}", word(nickname)));
        }
        out.push('\n');
    }
    for c in &logs.custom_logs {
        match &c.format {
            None => out.push_str(&format!(
                "TransferLog {}",
                word(&c.destination.as_written())
            )),
            Some(format) => out.push_str(&format!(
                "CustomLog {} {}",
                word(&c.destination.as_written()),
                word(format)
            )),
        }
        if let Some(condition) = &c.condition {
            out.push_str(&format!(" {}", word(condition)));
        }
        out.push('\n');
    }
}

/// Zeroes the spans (for [`Config::without_spans`]).
pub(crate) fn zero_spans(logs: &mut LogDirectives) {
    let z = Span::default();
    if let Some(e) = &mut logs.error_log {
        e.span = z;
    }
    logs.custom_logs.iter_mut().for_each(|c| c.span = z);
    logs.log_formats.iter_mut().for_each(|f| f.span = z);
    logs.log_levels.iter_mut().for_each(|l| l.span = z);
}
