//! Apache httpd balancer configuration for proxy-balancer: bring your `httpd.conf` as it is.
//!
//! [`parse`] reads the balancing part of an Apache configuration: `<Proxy "balancer://…">`
//! blocks with `BalancerMember` and `ProxySet`, `ProxyPass`/`ProxyPassReverse`,
//! `ProxyHCTemplate`/`ProxyHCExpr`, `BalancerGrowth`/`BalancerPersist`/`BalancerInherit`,
//! `ProxyTimeout`, `Header … %{BALANCER_…}e` response headers and balancer-manager
//! `<Location>`s, through `<VirtualHost>` and `<IfModule>` blocks; and, in server context,
//! what a reverse proxy site applies to each request: `ProxyPreserveHost`,
//! `ProxyAddHeaders`, `ProxyPassReverseCookieDomain`, `ProxyPassReverseCookiePath` and
//! `ServerName`; the [`logs`] directives (`ErrorLog`, `CustomLog`, `TransferLog`,
//! `LogFormat`, `LogLevel`; [`Config::logs`]); and what the server allows its clients
//! ([`FrontLimits`]): `Timeout`, `KeepAlive`, `KeepAliveTimeout`, `MaxKeepAliveRequests`,
//! `RequestReadTimeout` (header and body stages; a non-zero `handshake=` is refused: there
//! is no TLS here), `LimitRequestLine`, `LimitRequestFieldSize`, `LimitRequestFields`,
//! `LimitRequestBody`. Every other directive
//! (`LoadModule`, `Listen` …) is listed in [`Config::skipped`], so a whole `httpd.conf` can
//! be given. Every parameter is checked as Apache checks it at start-up, and every mistake is
//! reported with its line and column and, for near misses, a "did you mean".
//!
//! [`parse_file`] reads a configuration from its files as Apache does: `Include` and
//! `IncludeOptional` (wildcards, directories, relative to `ServerRoot`), `Define` and
//! `${VAR}`, so that a Debian-style `apache2.conf` with its `sites-enabled/` loads; every
//! [`Span`] then names its file ([`Config::files`], [`Config::file_of`]) and every error
//! displays as `path:line:column: …`.
//!
//! [`Config::balancers`] turns the result into the core's
//! [`BalancerParams`](proxy_balancer_core::BalancerParams) and
//! [`MemberParams`](proxy_balancer_core::MemberParams), and
//! [`Config::url_worker_balancer`] does the same for a `ProxyPass` to a plain URL (a balancer
//! of one member); [`Config::render`] writes Apache
//! syntax back; [`doctor`] finds the misconfigurations that cause outages.
//!
//! ```
//! use proxy_balancer_apache_config::{parse, ProxyTarget};
//!
//! let config = parse(
//!     r#"
//! LoadModule proxy_balancer_module modules/mod_proxy_balancer.so
//! <Proxy "balancer://MyCluster">
//!     BalancerMember "http://10.0.0.1:8080" route=node1 hcmethod=GET hcuri=/health
//!     BalancerMember http://10.0.0.2:8080 route=node2 \
//!         loadfactor=2
//!     ProxySet stickysession=ROUTEID
//! </Proxy>
//! ProxyPass "/app" "balancer://mycluster/app" lbmethod=bybusyness
//! "#,
//! )?;
//! let cluster = &config.balancers[0];
//! assert_eq!(cluster.name, "balancer://mycluster");
//! assert_eq!(cluster.members.len(), 2);
//! assert_eq!(cluster.members[1].span.line, 5);
//! assert!(matches!(
//!     &config.proxy_passes[0].target,
//!     ProxyTarget::Balancer { name, path } if name == "balancer://mycluster" && path == "/app"
//! ));
//! assert_eq!(config.skipped[0].directive, "LoadModule");
//!
//! // Into the core's types, to build the balancer stores.
//! let balancers = config.balancers()?;
//! let (params, members) = &balancers[0];
//! assert_eq!(params.sticky_session.as_ref().map(|s| s.cookie()), Some("ROUTEID"));
//! assert_eq!(members[1].load_factor.lbf(), 200);
//!
//! // Back to Apache syntax, and the same configuration again (skipped directives aside).
//! let mut expected = config.without_spans();
//! expected.skipped.clear();
//! assert_eq!(parse(&config.render())?.without_spans(), expected);
//!
//! // Mistakes are all reported, with a place and a hint.
//! let err = parse("<Proxy balancer://x>\nBalancerMember http://a loadfacter=2 lbset=100\n</Proxy>")
//!     .unwrap_err();
//! assert_eq!(err.len(), 2);
//! assert_eq!(
//!     err.errors()[0].to_string(),
//!     "line 2, column 25: unknown parameter \"loadfacter\" (did you mean \"loadfactor\"?)"
//! );
//! # Ok::<(), proxy_balancer_apache_config::ParseErrors>(())
//! ```
//!
//! # Apache rules kept
//!
//! * Directive names and parameter keys are case-insensitive; balancer names are
//!   lower-cased, and `balancer://name/anything` names the balancer `balancer://name`.
//! * Only whole lines are comments (`#` after optional blanks); a line ending in `\` goes
//!   on with the next one; a word may be quoted with `"` or `'`, and `\"` is a quote inside.
//! * With [`parse_file`], `${VAR}` is replaced in the whole line before it is split into
//!   words (Apache's `ap_resolve_env`), and `Include`d files are read where the `Include`
//!   stands, in the order Apache reads them. [`parse`] reads one text: `Include` there is
//!   listed in [`Config::skipped`].
//! * On a `ProxyPass` to a balancer every key is a balancer parameter; on a plain URL every
//!   key is a worker parameter. `ProxySet url` applies to the member with that URL.
//! * `hctemplate=` and `hcexpr=` must name a `ProxyHCTemplate`/`ProxyHCExpr` written before.
//! * `<Location>` blocks other than the balancer manager and blocks such as `<Directory>`
//!   are skipped; `<VirtualHost>` and `<If…>` blocks are read as if top-level, except that
//!   `ProxyPreserveHost`, `ProxyAddHeaders`, `ProxyPassReverseCookieDomain`,
//!   `ProxyPassReverseCookiePath` and `ServerName` apply to the whole server only outside
//!   `<VirtualHost>` and `<Proxy>` blocks (elsewhere they are checked and listed in
//!   [`Config::skipped`]).
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod ast;
mod context;
mod convert;
pub mod doctor;
mod error;
mod front;
mod include;
mod json;
pub mod keys;
mod lexer;
pub mod logs;
mod parser;
mod render;

pub use ast::*;
pub use error::{ParseError, ParseErrorKind, ParseErrors};
pub use include::{parse_file, parse_file_with, FileOptions, MAX_INCLUDE_DEPTH};
pub use logs::{
    AccessLogSpec, CustomLogConfig, ErrorLogConfig, LogConfigError, LogDestination, LogDirectives,
    LogFormatConfig, LogLevel, LogLevelConfig, Logs,
};
pub use parser::parse;
