//! The open-file limit: raising it, and the connection cap derived from it.

use std::fmt;

/// Descriptors kept out of the derived connection cap: listeners, log files, the
/// configuration, the resolver, health probes.
const RESERVED_FDS: u64 = 64;

/// Raises this process's open-file limit (`RLIMIT_NOFILE`) to its hard limit and returns
/// the new soft limit; every client connection takes a descriptor, and a proxied request
/// one more for its member connection. Call it once at start, before
/// [`Server::serve`](super::Server::serve) derives its connection cap from the limit.
///
/// ```
/// # #[cfg(unix)]
/// # {
/// let limit = proxy_balancer::server::raise_nofile_limit()?;
/// assert!(limit > 0);
/// # }
/// # Ok::<(), proxy_balancer::server::NofileLimitError>(())
/// ```
///
/// # Errors
///
/// When the limit cannot be changed, or on a platform without `setrlimit`.
pub fn raise_nofile_limit() -> Result<u64, NofileLimitError> {
    imp::raise()
}

/// The connection cap derived from the open-file limit: (soft limit − 64) / 2, at least 1;
/// `None` when the limit is infinite or unknown.
pub(crate) fn derived_max_connections() -> Option<usize> {
    let limit = imp::current()?;
    let cap = (limit.saturating_sub(RESERVED_FDS) / 2).max(1);
    Some(usize::try_from(cap).unwrap_or(usize::MAX))
}

/// Why [`raise_nofile_limit`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub struct NofileLimitError {
    source: std::io::Error,
}

impl fmt::Display for NofileLimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot raise the open-file limit: {}", self.source)
    }
}

impl std::error::Error for NofileLimitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

#[cfg(unix)]
mod imp {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

    use super::NofileLimitError;

    pub(super) fn current() -> Option<u64> {
        getrlimit(Resource::Nofile).current
    }

    pub(super) fn raise() -> Result<u64, NofileLimitError> {
        let limit = getrlimit(Resource::Nofile);
        if limit.current == limit.maximum {
            return Ok(limit.current.unwrap_or(u64::MAX));
        }
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        )
        .map_err(|errno| NofileLimitError {
            source: errno.into(),
        })?;
        Ok(getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX))
    }
}

#[cfg(not(unix))]
mod imp {
    use super::NofileLimitError;

    pub(super) const fn current() -> Option<u64> {
        None
    }

    pub(super) fn raise() -> Result<u64, NofileLimitError> {
        Err(NofileLimitError {
            source: std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "no setrlimit on this platform",
            ),
        })
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn raising_reaches_the_hard_limit_and_the_cap_follows() {
        let raised = raise_nofile_limit().unwrap();
        let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
        assert_eq!(Some(raised), hard.or(Some(u64::MAX)));
        if raised != u64::MAX {
            let cap = derived_max_connections().unwrap() as u64;
            assert_eq!(cap, ((raised - RESERVED_FDS) / 2).max(1));
        }
    }
}
