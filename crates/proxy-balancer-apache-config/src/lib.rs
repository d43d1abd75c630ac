//! Apache httpd balancer configuration for proxy-balancer: bring your `httpd.conf` as it is.
//!
//! [`parse`] reads the balancing part of an Apache configuration: `<Proxy "balancer://…">`
//! blocks with `BalancerMember` and `ProxySet`, `ProxyPass`/`ProxyPassMatch`/
//! `ProxyPassReverse`, `ProxyHCTemplate`/`ProxyHCExpr`, `BalancerGrowth`/`BalancerPersist`/
//! `BalancerInherit`/`ProxyPassInherit`, `ProxyTimeout`, `Header … %{BALANCER_…}e` response
//! headers and balancer-manager `<Location>`s, in the contexts Apache has: the main server,
//! `<VirtualHost>` blocks ([`Config::virtual_hosts`], each with its own settings) and
//! `<Location>`/`<LocationMatch>` blocks ([`Config::locations`]); every scoped directive
//! carries its [`Context`], and [`Config::host_settings`], [`Config::balancer_in`],
//! [`Config::server_proxy_passes`] … say what applies in which server as Apache merges the
//! main server into a virtual host. Per server: what a reverse proxy site applies to each
//! request: `ServerName`, `ServerAlias`, `ProxyPreserveHost`, `ProxyAddHeaders`,
//! `AllowEncodedSlashes`, `ProxyPassReverseCookieDomain`, `ProxyPassReverseCookiePath`,
//! and HTTPS on the listener (mod_ssl's `SSLEngine`, `SSLCertificateFile` …, `Protocols`:
//! [`SslServer`]); for the whole process: the [`logs`] directives (`ErrorLog`, `CustomLog`, `TransferLog`,
//! `LogFormat`, `LogLevel`; [`Config::logs`]) and what the server allows its clients
//! ([`FrontLimits`]): `Timeout`, `KeepAlive`, `KeepAliveTimeout`, `MaxKeepAliveRequests`,
//! `RequestReadTimeout` (header, body and, for HTTPS, a fixed `handshake=` stage),
//! `LimitRequestLine`, `LimitRequestFieldSize`, `LimitRequestFields`,
//! `LimitRequestBody`; per server too, mod_ssl's `SSLProxy*` directives for TLS to
//! `https://` members ([`ssl`], [`HostSettings::ssl_proxy`]; an unset `SSLProxyVerify`
//! verifies, where Apache's default does not). Every other directive
//! (`LoadModule`, `Listen` …) is listed in [`Config::skipped`], so a whole `httpd.conf` can
//! be given; what the proxy does with each directive and parameter of Apache's proxy modules
//! (applied, refused, or reported by the [`doctor`] as not applied) is in [`registry`]. Every parameter is checked as Apache checks it at start-up, and every mistake is
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
//! * `<VirtualHost addr …>` is a server of its own: its `ServerName`, `ServerAlias` (several
//!   names a line, lower-cased, wildcards kept; outside a virtual host an error, as in
//!   Apache), `ProxyPreserveHost`, `ProxyAddHeaders`, `AllowEncodedSlashes`,
//!   `ProxyPassInherit` and `BalancerInherit` are its [`VirtualHostConfig::settings`]; a
//!   `<VirtualHost>` inside another, or without an address, is an error as in Apache. The
//!   logging directives and the client limits apply to the whole process and are read in
//!   the main server only (elsewhere listed in [`Config::skipped`] with
//!   [`Skipped::in_block`]).
//! * A balancer belongs to the server it is defined in (`<Proxy>`, `BalancerMember
//!   balancer://…`, `ProxySet balancer://…`): two virtual hosts may each have a
//!   `balancer://app`. A `ProxyPass` names its server's balancer, else the main server's when
//!   the virtual host inherits balancers (`BalancerInherit` or `ProxyPassInherit` On, the
//!   default). A balancer defined both in the main server and in a virtual host that inherits
//!   is refused: Apache would run the main server's members there (checked on loopback), and
//!   so are balancer parameters on a virtual host's `ProxyPass` to the main server's balancer.
//!   `ProxySet balancer://…` and `ProxySet url` outside `<Proxy>` look in their own server,
//!   and the balancer must exist there already (Apache's "ProxySet can not find").
//! * `<Location path>`, `<Location ~ regex>` and `<LocationMatch regex>` hold the
//!   one-argument `ProxyPass target …` (and `ProxyPassMatch`; the location's path is its
//!   path, a regular expression in a `<LocationMatch>`), the one-argument
//!   `ProxyPassReverse url`, `Header`, the cookie rewrites, `ProxySet` and the manager's
//!   `SetHandler balancer-manager` with its `Require` lines; other directives there are
//!   listed in [`Config::skipped`]. Apache's errors are kept: a path on a `ProxyPass` in a
//!   location, a `<Location>` or `<Proxy>` inside a location (or a `<Location>` inside
//!   `<Proxy>`), `ServerName`, `ServerAlias`, `AllowEncodedSlashes`, `BalancerMember` and
//!   the inherit directives there.
//! * Regular expressions (`<LocationMatch>`, `<Location ~>`, `ProxyPassMatch`, `ProxyPass ~`)
//!   are checked with the `regex` crate, which the site matches with: what it lacks of PCRE
//!   (lookaround, backreferences, atomic groups, possessive quantifiers) is refused with
//!   the feature named.
//! * `ProxyPass` keywords `nocanon`, `noquery` and `interpolate` are read anywhere after the
//!   target, in any case; `mapping=encoded|servlet` is a `ProxyPass` keyword (an error on a
//!   `BalancerMember`, as in Apache).
//! * `ProxySet` and `BalancerMember` inside `<ProxyMatch>` are refused (Apache applies them
//!   to a worker named by the regular expression's text); `Header` inside a `<Proxy>` block
//!   is listed in [`Config::skipped`], not applied to the whole server. Blocks such as
//!   `<Directory>` are skipped; `<IfModule>` and the other `<If…>` blocks are read as if
//!   their content were not in a block.
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod ast;
mod context;
mod convert;
pub mod discovery;
pub mod doctor;
mod error;
mod front;
mod header;
mod include;
mod json;
pub mod keys;
mod lexer;
pub mod logs;
mod parser;
pub mod registry;
mod render;
mod selection;
pub mod shared;
pub mod ssl;
mod ssl_server;

pub use ast::*;
pub use error::{ParseError, ParseErrorKind, ParseErrors};
pub use include::{
    parse_file, parse_file_partial, parse_file_with, FileOptions, MAX_INCLUDE_DEPTH,
};
pub use logs::{
    AccessLogSpec, CustomLogConfig, ErrorLogConfig, LogConfigError, LogDestination, LogDirectives,
    LogFormatConfig, LogLevel, LogLevelConfig, Logs,
};
pub use parser::{parse, parse_partial};
pub use ssl::{SslProtocols, SslProxySettings, SslProxyVerify, SslRevocationCheck, SslSetting};
