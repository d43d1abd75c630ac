//! What a configuration says, directive by directive, with where each thing was written.
//!
//! Values are kept as written (unquoted); they were checked when the text was parsed, and
//! [`Config::balancers`] turns them into the core's types.

use std::time::Duration;

pub use crate::front::{FrontLimits, ReadTimeoutStage};

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

/// A `<Location path>`, `<Location ~ regex>` or `<LocationMatch regex>` block holding
/// directives this crate applies (`ProxyPass`, `ProxyPassReverse`, `Header`,
/// `SetHandler balancer-manager`).
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

/// A `ProxyPass path target key=value …`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyPassConfig {
    /// The front path prefix.
    pub path: String,
    /// Where it goes.
    pub target: ProxyTarget,
    /// Its parameters (balancer parameters for a balancer target).
    pub params: Vec<Param>,
    /// The `nocanon` keyword: the path is forwarded as the client sent it, not decoded and
    /// encoded again (Apache's `proxy-nocanon`).
    pub nocanon: bool,
    /// `ProxyPassMatch` (or `ProxyPass` in a `<LocationMatch>`): `path` is a regular
    /// expression and the target may use its groups as `$1` … `$9`.
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

/// A `ProxyPassReverse path url`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyPassReverseConfig {
    /// The front path prefix.
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

/// A `Header [always] add|set|append NAME "value" [env=VAR]` directive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderDirective {
    /// `always` was given.
    pub always: bool,
    /// `add`, `set`, `append`, `merge`, `setifempty` or `unset`, lower-cased.
    pub action: String,
    /// The header name as written.
    pub name: String,
    /// The value as written, with its `%{VAR}e` references.
    pub value: String,
    /// The `env=VAR` condition, if any (`!VAR` negations kept as written).
    pub env: Option<String>,
    /// Where it was written: main server or `<VirtualHost>`, and `<Location>`.
    pub context: Context,
    /// Where the directive starts.
    pub span: Span,
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
    /// A server-level directive this crate reads and applies (`ProxyPreserveHost`,
    /// `ServerName`, `AllowEncodedSlashes`, the logging directives, the client limits …),
    /// written inside a `<VirtualHost>`, `<Proxy>` or `<Location>` block: checked, not
    /// applied, and named by the doctor's `no-effect` rule.
    pub in_block: bool,
}

/// Everything a configuration says about balancing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The balancers, in the order they were first defined.
    pub balancers: Vec<BalancerConfig>,
    /// The `ProxyPass` directives in order.
    pub proxy_passes: Vec<ProxyPassConfig>,
    /// The `ProxyPassReverse` directives in order.
    pub proxy_pass_reverses: Vec<ProxyPassReverseConfig>,
    /// The `ProxyHCTemplate`s.
    pub hc_templates: Vec<HcTemplate>,
    /// The `ProxyHCExpr`s.
    pub hc_exprs: Vec<HcExpr>,
    /// The `Header` directives.
    pub headers: Vec<HeaderDirective>,
    /// The balancer-manager locations.
    pub manager_locations: Vec<ManagerLocation>,
    /// `BalancerGrowth`: the default `growth` of every balancer ([`Config::balancers`]
    /// applies it, capped at the core's 100).
    pub balancer_growth: Option<u32>,
    /// `BalancerPersist`: not applied by the reverse proxy (persistence needs a file: the
    /// manager's `persist`); the doctor's `no-effect` rule and the site's start-up log say so.
    pub balancer_persist: Option<bool>,
    /// `ProxyTimeout`.
    pub proxy_timeout: Option<Duration>,
    /// The main server's settings (`ServerName`, `ProxyPreserveHost`, `ProxyAddHeaders`,
    /// `AllowEncodedSlashes`, `ProxyPassInherit`, `BalancerInherit`), the defaults of every
    /// `<VirtualHost>`.
    pub server: HostSettings,
    /// The `<VirtualHost>` blocks, in order (the first one for an address is its default).
    pub virtual_hosts: Vec<VirtualHostConfig>,
    /// The `<Location>`/`<LocationMatch>` blocks holding directives this crate applies, in
    /// order ([`Context::location`] indexes them).
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
    /// `ProxyPreserveHost`, `ProxyAddHeaders`, `ProxyPassReverseCookieDomain`,
    /// `ProxyPassReverseCookiePath`, `ServerName` and the logging directives are read in server context only: written
    /// inside a `<VirtualHost>`, `<Proxy>` or `<Location>` block they are checked (outside
    /// `<Location>`) and listed here, not applied to the whole server (`ServerName` in a
    /// `<Proxy>` block is an error, as in Apache).
    pub skipped: Vec<Skipped>,
    /// The files read, for [`parse_file`](crate::parse_file): the main file first, then each
    /// included file in the order it was read; [`Span::file`] indexes this list. Empty for
    /// [`parse`](crate::parse).
    pub files: Vec<std::path::PathBuf>,
    /// The `${VAR}`s that were neither `Define`d nor in the environment, left as written
    /// ([`parse_file`](crate::parse_file) only), with where each was used. Apache warns
    /// about each one at start-up: `AH00111: Config variable ${VAR} is not defined`.
    pub undefined_variables: Vec<(String, Span)>,
}
