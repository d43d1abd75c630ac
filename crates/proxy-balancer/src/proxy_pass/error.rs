use std::error::Error;
use std::fmt;

/// Why a [`ProxyPass`](super::ProxyPass) or [`ProxyPassReverse`](super::ProxyPassReverse)
/// could not be built, or why a request could not be mapped to a member.
///
/// Each variant carries the offending input, so a config check or a log line can name it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyPassError {
    /// The front prefix (the first `ProxyPass` argument) is not a URL path such as `/app`.
    InvalidFrontPrefix {
        /// The prefix as given.
        prefix: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The backend URL (the second `ProxyPass` argument) is not `balancer://name[/path]`.
    InvalidBackendUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A member URL is not `scheme://host[:port][/path]`.
    InvalidMemberUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The request path cannot be proxied, whatever the prefix (it climbs above the root
    /// with `..` segments).
    InvalidRequestPath {
        /// The request path as received.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The request path does not start with the front prefix.
    NoMatch {
        /// The request path as received.
        path: String,
        /// The front prefix it was compared with.
        prefix: String,
    },
    /// Member URL, mapped path and query did not make a valid URI (for example, too long).
    InvalidMappedUri {
        /// The text that failed to parse as a URI.
        uri: String,
    },
}

impl fmt::Display for ProxyPassError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidFrontPrefix { prefix, reason } => {
                write!(f, "invalid ProxyPass front prefix {prefix:?}: {reason}")
            }
            Self::InvalidBackendUrl { url, reason } => {
                write!(f, "invalid ProxyPass backend url {url:?}: {reason}")
            }
            Self::InvalidMemberUrl { url, reason } => {
                write!(f, "invalid member url {url:?}: {reason}")
            }
            Self::InvalidRequestPath { path, reason } => {
                write!(f, "request path {path:?} cannot be proxied: {reason}")
            }
            Self::NoMatch { path, prefix } => {
                write!(
                    f,
                    "request path {path:?} does not match ProxyPass prefix {prefix:?}"
                )
            }
            Self::InvalidMappedUri { uri } => write!(f, "mapped uri {uri:?} is not a valid uri"),
        }
    }
}

impl Error for ProxyPassError {}
