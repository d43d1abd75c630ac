//! What a configuration says, directive by directive, with where each thing was written.
//!
//! Values are kept as written (unquoted); they were checked when the text was parsed, and
//! [`Config::balancers`] turns them into the core's types.

use std::time::Duration;

pub use crate::front::{FrontLimits, ReadTimeoutStage};
pub use crate::ssl_server::{AlpnProtocols, SslFile, SslProtocols, SslServer, SslVerifyClient};

/// A place in the configuration: the file, and 1-based line and column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    /// The file: an index in [`Config::files`]; 0 for the text given to
    /// [`parse`](crate::parse) or the main file given to [`parse_file`](crate::parse_file).
    pub file: u32,
    /// The line, from 1.
    pub line: u32,
    /// The column (in characters), from 1.
    pub column: u32,
}

impl Span {
    /// A place in the main text (file 0).
    ///
    /// ```
    /// let span = proxy_balancer_apache_config::Span::new(3, 7);
    /// assert_eq!((span.file, span.line, span.column), (0, 3, 7));
    /// ```
    #[must_use]
    pub const fn new(line: u32, column: u32) -> Self {
        Self {
            file: 0,
            line,
            column,
        }
    }
}

/// Where a directive was written: in the main server or a `<VirtualHost>`, and possibly in a
/// `<Location>`/`<LocationMatch>` block.
///
/// # Apache
///
/// A directive in server context belongs to the main server and, where Apache merges it
/// (`ProxyPassInherit`, `BalancerInherit`, the per-server settings a `<VirtualHost>` does not
/// set), to every virtual host. A directive in a `<Location>` applies to the requests whose
/// path the location matches, in that server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Context {
    /// The `<VirtualHost>` (an index in [`Config::virtual_hosts`]); `None` for the main
    /// server.
    pub vhost: Option<usize>,
    /// The `<Location>`/`<LocationMatch>` (an index in [`Config::locations`]); `None`
    /// outside one.
    pub location: Option<usize>,
}

/// The settings of one server, the main one ([`Config::server`]) or a `<VirtualHost>`
/// ([`VirtualHostConfig::settings`]): `None` where the directive was not given there (a
/// virtual host then takes the main server's value, and the main server Apache's default).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostSettings {
    /// `ServerName`, the last one given (as in Apache).
    pub server_name: Option<ServerName>,
    /// `ServerAlias` names, lower-cased, in order (`*` and `?` wildcards kept); a
    /// `<VirtualHost>` only.
    pub server_aliases: Vec<String>,
    /// `ProxyPreserveHost On|Off`: send the client's `Host` header to the backend instead
    /// of the backend URL's host (Apache's default is Off).
    pub proxy_preserve_host: Option<bool>,
    /// `ProxyAddHeaders On|Off`: add `X-Forwarded-For`, `X-Forwarded-Host` and
    /// `X-Forwarded-Server` to proxied requests (Apache's default is On).
    pub proxy_add_headers: Option<bool>,
    /// `AllowEncodedSlashes` (Apache's default is `Off`).
    pub allow_encoded_slashes: Option<AllowEncodedSlashes>,
    /// `ProxyPassInherit On|Off`: whether a virtual host also gets the main server's
    /// `ProxyPass` lines (Apache's default is On).
    pub proxy_pass_inherit: Option<bool>,
    /// `BalancerInherit On|Off`: whether a virtual host also gets the main server's
    /// balancers (Apache's default is On).
    pub balancer_inherit: Option<bool>,
    /// `ProxyVia Off|On|Full|Block`: the `Via` header on requests to members and on their
    /// responses (Apache's default is `Off`).
    pub proxy_via: Option<ProxyVia>,
    /// `ProxyErrorOverride On|Off [code …]`: a member's error answer replaced by the
    /// proxy's own (Apache's default is `Off`).
    pub proxy_error_override: Option<ProxyErrorOverride>,
    /// `ProxyBadHeader IsError|Ignore|StartBody`: what a malformed header line in a
    /// member's answer does (Apache's default is `IsError`).
    pub proxy_bad_header: Option<ProxyBadHeader>,
    /// `Proxy100Continue On|Off`: forward `Expect: 100-continue` to the member and relay its
    /// `100 Continue` (Apache's default is `On`, since 2.4.40).
    pub proxy_100_continue: Option<bool>,
    /// `ProxyIOBufferSize bytes`: the largest piece of a member's body relayed at once, the
    /// default of the workers' `iobuffersize` (Apache's default is 8192).
    pub proxy_io_buffer_size: Option<u32>,
    /// mod_ssl's `SSLEngine`, `SSLCertificateFile` …: HTTPS on the listener. A virtual host
    /// takes each one it does not give from the main server (mod_ssl's merge).
    pub ssl: SslServer,
    /// mod_ssl's `SSLProxy*` directives: TLS toward `https://`, `wss://` and `h2://`
    /// members ([`crate::ssl`]).
    pub ssl_proxy: crate::ssl::SslProxySettings,
}

/// `ProxyVia`: the `Via` header mod_proxy adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyVia {
    /// `Off` (the default): no `Via` added; a client's `Via` passes as sent.
    Off,
    /// `On`: `Via: 1.1 name[:port]` added to requests and responses.
    On,
    /// `Full`: as `On`, with the server version as a comment.
    Full,
    /// `Block`: the request's `Via` removed, none added.
    Block,
}

/// `ProxyErrorOverride On|Off [code …]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ProxyErrorOverride {
    /// `On`.
    pub on: bool,
    /// The statuses overridden (each 400 to 599); empty: every 4xx and 5xx.
    pub codes: Vec<u16>,
}

/// `ProxyBadHeader`: a member's header line that is not `name: value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyBadHeader {
    /// `IsError` (the default): the answer is a 502.
    IsError,
    /// `Ignore`: the line is skipped.
    Ignore,
    /// `StartBody`: the line and what follows are the body.
    StartBody,
}

/// `HeartbeatListen addr:port` (mod_heartmonitor).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeartbeatListen {
    /// The address to receive heartbeats on (a multicast group or a unicast address).
    pub addr: std::net::SocketAddr,
    /// Where the directive is.
    pub span: Span,
}

/// A `<VirtualHost addr …>` block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VirtualHostConfig {
    /// Its addresses as written (`*:80`, `10.0.0.1:8080`, `[::1]`, `_default_:443`).
    pub addresses: Vec<String>,
    /// Its settings (`ServerName`, `ServerAlias`, `ProxyPreserveHost` …).
    pub settings: HostSettings,
    /// Where the block starts.
    pub span: Span,
}

/// A `<Location path>`, `<Location ~ regex>` or `<LocationMatch regex>` block: every one
/// is listed in [`Config::locations`], and the directives this crate applies inside
/// (`ProxyPass`, `ProxyPassMatch`, `ProxyPassReverse`, `Header`, the cookie rewrites,
/// `SetHandler balancer-manager`) point to it with [`Context::location`].
///
/// # Apache
///
/// core's `<Location>`: a `ProxyPass` inside takes one argument, the target; the location's
/// path is its path (a regular expression in a `<LocationMatch>` or `<Location ~>`, which
/// the parser checks with the `regex` crate).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocationConfig {
    /// The path, or the regular expression, as written.
    pub path: String,
    /// `<LocationMatch>` or `<Location ~ …>`: `path` is a regular expression.
    pub regex: bool,
    /// The `<VirtualHost>` it is in (an index in [`Config::virtual_hosts`]), if any.
    pub vhost: Option<usize>,
    /// Where the block starts.
    pub span: Span,
}

/// One `key=value` parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    /// The key as written (Apache's keys are case-insensitive).
    pub key: String,
    /// The value, unquoted.
    pub value: String,
    /// Where the key starts.
    pub span: Span,
}

/// A `BalancerMember url key=value …`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberConfig {
    /// The member URL as written.
    pub url: String,
    /// Its parameters in order (worker parameters, `loadfactor`, and the `hc*` ones).
    pub params: Vec<Param>,
    /// Where the directive starts.
    pub span: Span,
}

/// A balancer: its `<Proxy "balancer://name">` block, the `ProxySet`s and `ProxyPass`
/// parameters that apply to it, and its members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BalancerConfig {
    /// `balancer://name`, lower-cased as Apache does.
    pub name: String,
    /// Balancer parameters in the order they were given (`ProxySet`, `ProxyPass … key=value`).
    pub params: Vec<Param>,
    /// The members in configuration order.
    pub members: Vec<MemberConfig>,
    /// Where it was defined: the main server or a `<VirtualHost>` (`location` is `None`).
    /// Two balancers of one name in different virtual hosts are different balancers.
    pub context: Context,
    /// Where the balancer was first defined.
    pub span: Span,
}

/// Where a `ProxyPass` sends requests.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyTarget {
    /// `balancer://name/sub`: a balancer (lower-cased name) and the path after it.
    Balancer {
        /// `balancer://name`.
        name: String,
        /// The path after the name (`/sub`, or empty).
        path: String,
    },
    /// A plain backend URL (a worker of its own).
    Url(String),
    /// `ProxyPass path !`: not proxied.
    Exclude,
}

/// A `ProxyPass path target key=value …` (or `ProxyPassMatch regex target …`, `ProxyPass ~
/// regex target …`, or the one-argument `ProxyPass target …` of a `<Location>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyPassConfig {
    /// The front path prefix, or the regular expression when [`ProxyPassConfig::regex`];
    /// inside a `<Location>`, the location's path.
    pub path: String,
    /// Where it goes.
    pub target: ProxyTarget,
    /// Its parameters (balancer parameters for a balancer target, worker parameters for a
    /// URL), and `mapping=encoded|servlet`, a keyword of `ProxyPass` itself.
    pub params: Vec<Param>,
    /// The `nocanon` keyword: the path is forwarded as the client sent it, not decoded and
    /// encoded again (Apache's `proxy-nocanon`).
    pub nocanon: bool,
    /// `ProxyPassMatch`, `ProxyPass ~`, or a `ProxyPass` in a `<LocationMatch>`/`<Location
    /// ~>` whose pattern has a wildcard (`*`, `?`, `[…]`, as Apache decides): `path` is a
    /// regular expression (checked with the `regex` crate) and the target may use its
    /// groups as `$1` … `$9`.
    ///
    /// # Apache
    ///
    /// The expression is searched in the path (not anchored unless it says so); the target
    /// with `$n` replaced is the backend URL, and when the replacement changes nothing (no
    /// `$` in the target) the whole request path is appended to it (mod_proxy's
    /// `ap_proxy_trans_match`: `ProxyPassMatch \.gif$ balancer://foo` forwards
    /// `/a/b.gif` to `balancer://foo/a/b.gif`).
    pub regex: bool,
    /// The `noquery` keyword: the query string is not forwarded.
    pub noquery: bool,
    /// The `interpolate` keyword: `${VAR}` in the path and target is replaced from the
    /// environment (with `ProxyPassInterpolateEnv On`).
    pub interpolate: bool,
    /// Where it was written: main server or `<VirtualHost>`, and `<Location>`.
    pub context: Context,
    /// Where the directive starts.
    pub span: Span,
}

/// `AllowEncodedSlashes On|Off|NoDecode`: what a `%2F` in a request path does.
///
/// # Apache
///
/// Core's `AllowEncodedSlashes` (server or virtual host context): `Off` (the default)
/// answers 404, `On` decodes it, `NoDecode` accepts it and keeps it encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AllowEncodedSlashes {
    /// `Off`: a path with `%2F` is answered 404.
    Off,
    /// `On`: `%2F` is decoded to `/`.
    On,
    /// `NoDecode`: `%2F` is accepted and kept encoded.
    NoDecode,
}

/// A `ProxyPassReverse path url` (or the one-argument `ProxyPassReverse url` of a
/// `<Location>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyPassReverseConfig {
    /// The front path prefix (inside a `<Location>`, the location's path).
    pub path: String,
    /// The backend URL (or `balancer://name/sub`).
    pub target: String,
    /// Where it was written: main server or `<VirtualHost>`, and `<Location>`.
    pub context: Context,
    /// Where the directive starts.
    pub span: Span,
}

/// A `ProxyPassReverseCookieDomain internal public [interpolate]` or
/// `ProxyPassReverseCookiePath internal public [interpolate]`: how to rewrite the `domain=`
/// or `path=` of the `Set-Cookie` headers a backend sends.
///
/// # Apache
///
/// mod_proxy's `ProxyPassReverseCookieDomain` and `ProxyPassReverseCookiePath`: a cookie
/// attribute equal to (domain) or starting with (path) `internal` is rewritten to `public`.
/// Apache takes any third word as `interpolate`; here a third word other than `interpolate`
/// (any case) is an error, being most likely a mistake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookieRewrite {
    /// The backend's value (`internal-domain`, `internal-path`), as written.
    pub internal: String,
    /// The value clients see (`public-domain`, `public-path`), as written.
    pub public: String,
    /// The third argument `interpolate` was given (`${VAR}` in the values is replaced from
    /// the environment when `ProxyPassInterpolateEnv On`).
    pub interpolate: bool,
    /// Where it was written: main server or `<VirtualHost>`, and `<Location>`.
    pub context: Context,
    /// Where the directive starts.
    pub span: Span,
}

/// A `ServerName [scheme://]host[:port]`: the name the server gives itself.
///
/// # Apache
///
/// core's `ServerName`. mod_proxy sends `host` as `X-Forwarded-Server` (with
/// `ProxyAddHeaders On`), and Apache builds self-referential URLs from all three parts.
/// Checked as Apache does (no `*` or `?` wildcard: that is `ServerAlias`; a port from 1 to
/// 65535), except that the port must be all digits (Apache's `atoi` reads `80x` as 80) and
/// a bracketed IPv6 address is taken (Apache refuses it as a wildcard pattern).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerName {
    /// The scheme before `://`, lower-cased, if one was given (`https`).
    pub scheme: Option<String>,
    /// The host name or address as written (an IPv6 address keeps its brackets).
    pub host: String,
    /// The port after `:`, if one was given (1 to 65535).
    pub port: Option<u16>,
    /// Where the directive starts.
    pub span: Span,
}

/// A `ProxyHCTemplate name key=value …`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HcTemplate {
    /// The template's name.
    pub name: String,
    /// Its `hc*` parameters.
    pub params: Vec<Param>,
    /// Where the directive starts.
    pub span: Span,
}

/// A `ProxyHCExpr name {expression}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HcExpr {
    /// The expression's name.
    pub name: String,
    /// The expression between the braces, as written.
    pub expr: String,
    /// Where the directive starts.
    pub span: Span,
}

/// A `Header` or `RequestHeader` line of mod_headers, as Apache reads it.
///
/// `Header [always|onsuccess] action name [value] [replacement] [condition]` and
/// `RequestHeader action name [value] [replacement] [condition]`. The parser checks every
/// argument as Apache does when it starts (the action, the number of arguments, the value's
/// `%` formats, the condition's form) and refuses, with the line and column, what Apache
/// refuses and the forms proxy-balancer cannot apply (`early`, `note`, a value `expr=`, the
/// `%l`/`%i`/`%b` server-load formats). What needs a compiler (the `edit` and `echo` regular
/// expressions, an `expr=` condition) is checked when a site is built.
///
/// # Apache
///
/// mod_headers' `Header` and `RequestHeader`. A `Header` rule acts on the "onsuccess" table
/// (the member's response headers) unless `always` is given, when it acts on the "always"
/// table (headers the server adds to every response, errors included); a `RequestHeader`
/// rule acts on the request before it is proxied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderDirective {
    /// `RequestHeader` (the request's headers) rather than `Header` (the response's).
    pub request: bool,
    /// `always` was given (a `Header` only): the rule acts on Apache's "always" table.
    pub always: bool,
    /// What the rule does.
    pub action: HeaderAction,
    /// The header name as written, without a trailing `:` and what follows it (Apache
    /// drops it); for `echo`, the regular expression over request header names.
    pub name: String,
    /// The value as written, with its `%{VAR}e` references; for `edit`/`edit*`, the
    /// regular expression; empty for `unset` and `echo`.
    pub value: String,
    /// For `edit`/`edit*`, the replacement as written (it may use `$1` … and `%` formats).
    pub replacement: Option<String>,
    /// `env=VAR`, `env=!VAR` or `expr=…`, if given.
    pub condition: Option<HeaderCondition>,
    /// Where it was written: main server or `<VirtualHost>`, and `<Location>`.
    pub context: Context,
    /// Where the directive starts.
    pub span: Span,
}

impl HeaderDirective {
    /// The `%` formats of the value (of the replacement for `edit`/`edit*`), as mod_headers
    /// reads them: literal text (with `\t`, `\\` … unescaped), `%%`, `%t`, `%D`,
    /// `%{VAR}e` and `%{VAR}s`.
    ///
    /// # Errors
    ///
    /// A message (without a place) for what the parser refuses in a value: an unknown
    /// format (`%x`, as Apache), `%l`, `%i`, `%b` (server load, not measured here), a
    /// `\n` or `\r` escape (a line break cannot be sent in a header), or a value
    /// `expr=` (not supported).
    ///
    /// ```
    /// use proxy_balancer_apache_config::{parse, FormatPart};
    ///
    /// let config = parse(r#"Header set X-Who "%{BALANCER_WORKER_NAME}e at %t""#)?;
    /// let parts = config.headers[0].format().expect("parsed");
    /// assert_eq!(
    ///     parts,
    ///     [
    ///         FormatPart::Env("BALANCER_WORKER_NAME".into()),
    ///         FormatPart::Text(" at ".into()),
    ///         FormatPart::RequestTime,
    ///     ]
    /// );
    /// # Ok::<(), proxy_balancer_apache_config::ParseErrors>(())
    /// ```
    pub fn format(&self) -> Result<Vec<FormatPart>, String> {
        match self.action {
            HeaderAction::Unset | HeaderAction::Echo => Ok(Vec::new()),
            HeaderAction::Edit | HeaderAction::EditAll => {
                crate::header::parse_format(self.replacement.as_deref().unwrap_or(""))
            }
            _ => crate::header::parse_format(&self.value),
        }
    }

    /// The directive's name: `Header` or `RequestHeader`.
    #[must_use]
    pub const fn directive(&self) -> &'static str {
        if self.request {
            "RequestHeader"
        } else {
            "Header"
        }
    }
}

/// What a `Header`/`RequestHeader` rule does (mod_headers' actions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeaderAction {
    /// `add`: a new value, beside any the header has.
    Add,
    /// `set`: the header's only value.
    Set,
    /// `append`: `, value` after the header's first value (the value, if it has none).
    Append,
    /// `merge`: as `append`, unless the value is already one of the first value's
    /// comma-separated tokens.
    Merge,
    /// `setifempty`: set, if the header is not there.
    SetIfEmpty,
    /// `unset`: removed.
    Unset,
    /// `edit`: the first match of the regular expression in each value replaced.
    Edit,
    /// `edit*`: every match replaced.
    EditAll,
    /// `echo` (`Header` only): the request headers whose names match the regular
    /// expression, copied to the response.
    Echo,
}

impl HeaderAction {
    /// The action as Apache spells it (`setifempty`, `edit*`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Set => "set",
            Self::Append => "append",
            Self::Merge => "merge",
            Self::SetIfEmpty => "setifempty",
            Self::Unset => "unset",
            Self::Edit => "edit",
            Self::EditAll => "edit*",
            Self::Echo => "echo",
        }
    }
}

impl std::fmt::Display for HeaderAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a `Header`/`RequestHeader` rule applies.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeaderCondition {
    /// `env=VAR` (the variable is set) or `env=!VAR` (it is not).
    Env {
        /// The variable's name, as written.
        name: String,
        /// `env=!VAR`.
        negated: bool,
    },
    /// `expr=…`: an `ap_expr` condition, as written (checked when a site is built).
    Expr(String),
}

/// One piece of a `Header` value, as mod_headers' format reads it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FormatPart {
    /// Literal text (escapes resolved; `%%` and a lone `%` at the end are a `%`).
    Text(String),
    /// `%t`: when the request was received, `t=` and microseconds since the epoch.
    RequestTime,
    /// `%D`: how long the request has taken so far, `D=` and microseconds.
    Duration,
    /// `%{VAR}e`: an environment variable, `(null)` when it is not set.
    Env(String),
    /// `%{VAR}s`: a TLS variable, `(null)` when there is none.
    Ssl(String),
}

/// A `<Location "/path">` block with `SetHandler balancer-manager`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagerLocation {
    /// The location path.
    pub path: String,
    /// Each `Require …` line inside, without the word `Require` (e.g. `ip 127.0.0.1`).
    pub requires: Vec<String>,
    /// Where it was written: main server or `<VirtualHost>`, and `<Location>`.
    pub context: Context,
    /// Where the block starts.
    pub span: Span,
}

/// A directive that was read but is not about balancing (`LoadModule`, `Listen` …).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The directive's name as written.
    pub directive: String,
    /// Where it starts.
    pub span: Span,
    /// A directive this crate reads and applies elsewhere, written where it is not applied:
    /// a per-server setting (`ProxyPreserveHost`, `ProxyAddHeaders`, the cookie rewrites)
    /// inside a `<Proxy>` block or a `<Location>`, or a whole-process one (the logging
    /// directives, the client limits) inside a `<VirtualHost>`, `<Proxy>` or `<Location>`:
    /// checked, not applied, and named by the doctor's `no-effect` rule.
    pub in_block: bool,
}

/// Everything a configuration says about balancing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The balancers, in the order they were first named (defined, or named by a
    /// `ProxyPass` of their server), each in the server it belongs to
    /// ([`BalancerConfig::context`]; see [`Config::balancer_in`]).
    pub balancers: Vec<BalancerConfig>,
    /// The `ProxyPass` directives in order.
    pub proxy_passes: Vec<ProxyPassConfig>,
    /// The `ProxyPassReverse` directives in order.
    pub proxy_pass_reverses: Vec<ProxyPassReverseConfig>,
    /// The `ProxyHCTemplate`s.
    pub hc_templates: Vec<HcTemplate>,
    /// The `ProxyHCExpr`s.
    pub hc_exprs: Vec<HcExpr>,
    /// The `Header` and `RequestHeader` directives, in order.
    pub headers: Vec<HeaderDirective>,
    /// The balancer-manager locations (each also in [`Config::locations`], which its
    /// [`Context::location`] indexes).
    pub manager_locations: Vec<ManagerLocation>,
    /// `BalancerGrowth`: the default `growth` of every balancer ([`Config::balancers`]
    /// applies it, capped at the core's 100).
    pub balancer_growth: Option<u32>,
    /// `BalancerPersist On|Off`: whether the balancer-manager's changes survive a restart
    /// (Apache's default is `Off`); the state directory is the application's choice.
    pub balancer_persist: Option<bool>,
    /// `BalancerShare` (proxy-balancer's own): the manager's edits shared with a fleet
    /// through etcd; see [`shared`](crate::shared).
    pub balancer_share: Option<crate::shared::BalancerShare>,
    /// `ProxyTimeout`.
    pub proxy_timeout: Option<Duration>,
    /// `HeartbeatListen`: where the heartbeats of mod_heartbeat senders are received, for
    /// the balancers with `lbmethod=heartbeat`.
    pub heartbeat_listen: Option<HeartbeatListen>,
    /// `ProxyDiscoverNameserver`: the nameservers DNS discovery asks (main server only;
    /// see [`discovery`](crate::discovery)).
    pub discover_nameservers: Option<crate::discovery::DiscoverNameservers>,
    /// `HeartbeatMaxServers`: how many senders are tracked (Apache's default is 10; 0 means
    /// Apache's flat-file storage, which has no limit).
    pub heartbeat_max_servers: Option<u32>,
    /// `DefaultRuntimeDir`: where run-time state is kept; the site keeps the
    /// balancer-manager's `BalancerPersist` state there. An application may set it (a
    /// `--state-dir` option) before building the site.
    pub default_runtime_dir: Option<std::path::PathBuf>,
    /// `ServerRoot` as [`parse_file`](crate::parse_file) ended with (the main file's
    /// directory unless a `ServerRoot` line changed it); `None` for [`parse`](crate::parse).
    /// Relative file names (`SSLCertificateFile`) start from it, as in Apache.
    pub server_root: Option<std::path::PathBuf>,
    /// `ProxyHCTPsize`: how many health checks run at once, server-wide (Apache's default
    /// is 16; 0 runs them one at a time).
    pub proxy_hc_tpsize: Option<u32>,
    /// The main server's settings (`ServerName`, `ProxyPreserveHost`, `ProxyAddHeaders`,
    /// `AllowEncodedSlashes`, `ProxyPassInherit`, `BalancerInherit`), the defaults of every
    /// `<VirtualHost>`.
    pub server: HostSettings,
    /// The `<VirtualHost>` blocks, in order (the first one for an address is its default).
    pub virtual_hosts: Vec<VirtualHostConfig>,
    /// The `<Location>`/`<LocationMatch>` blocks, in order ([`Context::location`] indexes
    /// them).
    pub locations: Vec<LocationConfig>,
    /// The `ProxyPassReverseCookieDomain` directives in order.
    pub proxy_pass_reverse_cookie_domains: Vec<CookieRewrite>,
    /// The `ProxyPassReverseCookiePath` directives in order.
    pub proxy_pass_reverse_cookie_paths: Vec<CookieRewrite>,
    /// `ErrorLog`, `CustomLog`, `TransferLog`, `LogFormat` and `LogLevel` in server
    /// context ([`Config::logs`] resolves them; see [`logs`](crate::logs)).
    pub log_directives: crate::logs::LogDirectives,
    /// What the server allows its clients: `Timeout`, `KeepAlive`, `KeepAliveTimeout`,
    /// `MaxKeepAliveRequests`, `RequestReadTimeout`, `LimitRequest*` (server context).
    pub front: FrontLimits,
    /// Directives that are not about balancing, skipped.
    ///
    /// The per-server settings (`ServerName`, `ProxyPreserveHost`, `ProxyAddHeaders`,
    /// `AllowEncodedSlashes`, the cookie rewrites …) apply to the main server or the
    /// `<VirtualHost>` they are written in; inside a `<Proxy>` block (and `ProxyPreserveHost`
    /// / `ProxyAddHeaders` inside a `<Location>`) they are checked and listed here with
    /// [`Skipped::in_block`]. The logging directives and the client limits are read in the
    /// main server only: elsewhere they are listed here the same way. A `<Location>` that
    /// holds nothing applied (`SetHandler server-status` …) is listed as `<Location`.
    pub skipped: Vec<Skipped>,
    /// The files read, for [`parse_file`](crate::parse_file): the main file first, then each
    /// included file in the order it was read; [`Span::file`] indexes this list. Empty for
    /// [`parse`](crate::parse).
    pub files: Vec<std::path::PathBuf>,
    /// The `${VAR}`s that were neither `Define`d nor in the environment, left as written
    /// ([`parse_file`](crate::parse_file) only), with where each was used. Apache warns
    /// about each one at start-up: `AH00111: Config variable ${VAR} is not defined`.
    pub undefined_variables: Vec<(String, Span)>,
    /// The `SSLProxy*` lines of `<Proxy "balancer://…">` sections (Apache 2.4.30+): (the
    /// balancer, an index in [`Config::balancers`]; its settings). They apply to that
    /// balancer's members over the server's ([`Config::balancer_ssl_proxy`]).
    pub balancer_ssl_proxy: Vec<(usize, crate::ssl::SslProxySettings)>,
}
