//! `addressttl`: a member's host name is resolved once and its addresses kept for the TTL
//! (by default until the proxy stops, as Apache's `-1`), instead of a `getaddrinfo` for
//! every new connection. When every kept address fails to connect, the name is resolved
//! again at once (as Apache does), and the new addresses are tried if they differ.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

/// How long the addresses a member's host name resolves to are kept.
///
/// ```
/// use std::time::Duration;
/// use proxy_balancer::client::{AddressTtl, ClientOptions};
///
/// // addressttl=30: resolved again when a connection opens 30 s or more after the last time.
/// let options = ClientOptions::new().with_address_ttl(Some(AddressTtl::For(Duration::from_secs(30))));
/// assert_eq!(AddressTtl::from_apache(-1), Some(AddressTtl::Forever));
/// assert_eq!(AddressTtl::from_apache(0), Some(AddressTtl::For(Duration::ZERO)));
/// # drop(options);
/// ```
///
/// # Apache
///
/// The worker's `addressttl` (seconds; `-1`, the default: until restart).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddressTtl {
    /// Until the proxy stops: Apache's `-1` and its default.
    Forever,
    /// For this long; zero: resolved for every new connection (and, as in Apache, no
    /// connection is reused).
    For(Duration),
}

impl AddressTtl {
    /// Apache's value: `-1` is [`Forever`](Self::Forever), 0 or more seconds
    /// [`For`](Self::For); below `-1`, `None`.
    #[must_use]
    pub fn from_apache(seconds: i64) -> Option<Self> {
        match seconds {
            -1 => Some(Self::Forever),
            n => u64::try_from(n)
                .ok()
                .map(|n| Self::For(Duration::from_secs(n))),
        }
    }
}

/// The addresses of one member's host name, resolved as `addressttl` says.
pub(crate) struct Resolver {
    host: String,
    pub(super) port: u16,
    ttl: AddressTtl,
    /// The host is an IP address: nothing to resolve.
    literal: Option<SocketAddr>,
    cache: Mutex<Option<Cached>>,
    /// Resolutions made (for tests and the debug view).
    lookups: AtomicU64,
}

struct Cached {
    addresses: Arc<[SocketAddr]>,
    /// `None`: kept until the proxy stops.
    expires: Option<tokio::time::Instant>,
}

impl Resolver {
    pub(crate) fn new(host: &str, port: u16, ttl: AddressTtl) -> Self {
        Self {
            host: host.to_owned(),
            port,
            ttl,
            literal: host
                .parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, port)),
            cache: Mutex::new(None),
            lookups: AtomicU64::new(0),
        }
    }

    /// How many times the host name was resolved.
    pub(crate) fn lookups(&self) -> u64 {
        self.lookups.load(Ordering::Relaxed)
    }

    /// The addresses to connect to: the kept ones while they are fresh, else resolved now.
    ///
    /// # Errors
    ///
    /// The name does not resolve.
    pub(crate) async fn addresses(&self) -> io::Result<Arc<[SocketAddr]>> {
        if let Some(addr) = self.literal {
            return Ok(Arc::from([addr]));
        }
        let now = tokio::time::Instant::now();
        if let Some(cached) = &*self.cache.lock() {
            if cached.expires.map_or(true, |expires| now < expires) {
                return Ok(Arc::clone(&cached.addresses));
            }
        }
        self.resolve().await
    }

    /// After every address in `tried` failed to connect: resolves the name again, and
    /// returns the new addresses if they differ (as Apache does before giving up).
    pub(crate) async fn refresh(&self, tried: &[SocketAddr]) -> Option<Arc<[SocketAddr]>> {
        if self.literal.is_some() || self.ttl == AddressTtl::For(Duration::ZERO) {
            // Resolved for this very connection.
            return None;
        }
        let fresh = self.resolve().await.ok()?;
        (*fresh != *tried).then_some(fresh)
    }

    async fn resolve(&self) -> io::Result<Arc<[SocketAddr]>> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        let addresses: Arc<[SocketAddr]> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await?
            .collect();
        if addresses.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} resolves to no address", self.host),
            ));
        }
        let expires = match self.ttl {
            AddressTtl::Forever => None,
            AddressTtl::For(ttl) if ttl.is_zero() => return Ok(addresses),
            AddressTtl::For(ttl) => tokio::time::Instant::now().checked_add(ttl),
        };
        *self.cache.lock() = Some(Cached {
            addresses: Arc::clone(&addresses),
            expires,
        });
        Ok(addresses)
    }
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("host", &self.host)
            .field("ttl", &self.ttl)
            .field("lookups", &self.lookups())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `localhost` resolves on any machine; the count says when it was resolved.
    #[tokio::test(start_paused = true)]
    async fn addresses_are_kept_for_the_ttl() {
        let forever = Resolver::new("localhost", 80, AddressTtl::Forever);
        for _ in 0..3 {
            let addresses = forever.addresses().await.expect("localhost resolves");
            assert!(
                addresses.iter().all(|a| a.ip().is_loopback()),
                "{addresses:?}"
            );
        }
        assert_eq!(forever.lookups(), 1, "-1: resolved once");

        let every = Resolver::new("localhost", 80, AddressTtl::For(Duration::ZERO));
        for _ in 0..3 {
            every.addresses().await.expect("localhost resolves");
        }
        assert_eq!(every.lookups(), 3, "0: resolved for every connection");

        let ttl = Resolver::new("localhost", 80, AddressTtl::For(Duration::from_secs(30)));
        ttl.addresses().await.expect("localhost resolves");
        tokio::time::advance(Duration::from_secs(29)).await;
        ttl.addresses().await.expect("localhost resolves");
        assert_eq!(ttl.lookups(), 1, "within the ttl");
        tokio::time::advance(Duration::from_secs(2)).await;
        ttl.addresses().await.expect("localhost resolves");
        assert_eq!(ttl.lookups(), 2, "resolved again past the ttl");
    }

    #[tokio::test]
    async fn an_ip_address_is_not_resolved() {
        let r = Resolver::new("127.0.0.1", 8080, AddressTtl::For(Duration::ZERO));
        let addresses = r.addresses().await.expect("an address");
        assert_eq!(&*addresses, &["127.0.0.1:8080".parse().unwrap()]);
        assert_eq!(r.lookups(), 0);
        assert_eq!(AddressTtl::from_apache(-2), None);
        assert_eq!(
            AddressTtl::from_apache(5),
            Some(AddressTtl::For(Duration::from_secs(5)))
        );
    }
}
