//! Why a configuration cannot be served.

use std::fmt;

use crate::apache_config::ParseErrors;
use crate::proxy_pass::ProxyPassError;
use crate::ConfigError;

/// Why [`Site::from_config`](super::Site::from_config) refused a configuration. Nothing of
/// a refused configuration runs: no probe is started, no port is bound.
#[derive(Debug)]
#[non_exhaustive]
pub enum SiteError {
    /// A balancer's or a member's parameters do not convert (each error names its line).
    Params(ParseErrors),
    /// A balancer's member set is refused by the store (a duplicate member, too many).
    Balancer {
        /// The balancer, `balancer://name`.
        name: String,
        /// Why.
        source: ConfigError,
    },
    /// A `ProxyPass` line cannot be served.
    ProxyPass {
        /// Its line in the configuration.
        line: u32,
        /// What is wrong with it.
        reason: String,
    },
    /// A directive the site would not apply as written (a `Header` form it does not
    /// support, `interpolate`): refused rather than dropped.
    Unsupported {
        /// Its line in the configuration.
        line: u32,
        /// What is not supported.
        reason: String,
    },
    /// A `ProxyPass` path or URL is not a valid mapping.
    Mapping {
        /// Its line in the configuration.
        line: u32,
        /// Why.
        source: ProxyPassError,
    },
    /// A member's health check (`hc*` parameters, `ProxyHCExpr`, `ProxyHCTemplate`) is
    /// invalid.
    HealthCheck {
        /// The line of the member or the definition.
        line: u32,
        /// What is wrong.
        reason: String,
    },
    /// A balancer's health probe cannot start (a member names an `hcexpr` that no
    /// `ProxyHCExpr` defines).
    Probe {
        /// The balancer, `balancer://name`.
        name: String,
        /// Why.
        source: crate::health_probe::ProbeConfigError,
    },
    /// TLS cannot be set up as written. Toward members: a TLS member in a server without
    /// `SSLProxyEngine On` (Apache's AH00961), an `SSLProxy*` file that cannot be read or
    /// used, a member reached with two different settings. On the listener: `SSLEngine On`
    /// without a certificate, a certificate or key file that cannot be read, a key that
    /// does not match its certificate.
    Tls {
        /// The line of the directive or member.
        line: u32,
        /// Its column.
        column: u32,
        /// What is wrong.
        reason: String,
    },
    /// The balancer-manager's `<Location>` is invalid (a `Require ip` that is not a network).
    Manager {
        /// The line of the `<Location>`.
        line: u32,
        /// What is wrong.
        reason: String,
    },
    /// DNS discovery cannot start (`discover=`, `ProxyDiscoverNameserver`): the system's
    /// resolver configuration cannot be read, or `BalancerPersist On` is set.
    Discovery {
        /// The line of the discover member.
        line: u32,
        /// What is wrong.
        reason: String,
    },
}

impl fmt::Display for SiteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Params(errors) => write!(f, "{errors}"),
            Self::Balancer { name, source } => write!(f, "{name}: {source}"),
            Self::ProxyPass { line, reason }
            | Self::Unsupported { line, reason }
            | Self::HealthCheck { line, reason }
            | Self::Manager { line, reason }
            | Self::Discovery { line, reason } => write!(f, "line {line}: {reason}"),
            Self::Mapping { line, source } => write!(f, "line {line}: ProxyPass: {source}"),
            Self::Probe { name, source } => write!(f, "{name}: health checks: {source}"),
            Self::Tls {
                line,
                column,
                reason,
            } => write!(f, "line {line}:{column}: {reason}"),
        }
    }
}

impl std::error::Error for SiteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Params(errors) => Some(errors),
            Self::Balancer { source, .. } => Some(source),
            Self::Mapping { source, .. } => Some(source),
            Self::Probe { source, .. } => Some(source),
            Self::ProxyPass { .. }
            | Self::Unsupported { .. }
            | Self::HealthCheck { .. }
            | Self::Manager { .. }
            | Self::Discovery { .. }
            | Self::Tls { .. } => None,
        }
    }
}
