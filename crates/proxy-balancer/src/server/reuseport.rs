//! Listeners for per-core serving: [`bind_reuseport`] binds one address `n` times with
//! `SO_REUSEPORT`, one listener per worker thread, and [`ClientLimits::for_worker`] gives
//! each worker its share of the connection cap.
//!
//! Per-core serving: `n` threads, each with a current-thread tokio runtime, its own
//! listener from [`bind_reuseport`], and its own [`Site::worker`](crate::site::Site::worker)
//! (the balancer state shared, the member connection pools its own). Linux spreads the
//! incoming connections over the listeners (a hash of the connection's addresses and
//! ports), so each connection lives on one thread from its accept to its end: no work
//! stealing, no task or member connection handed between threads.

use std::io;
use std::net::SocketAddr;

use super::ClientLimits;

/// The listen backlog of each listener (tokio's `TcpListener::bind` uses the same).
const BACKLOG: i32 = 1024;

/// Binds `addr` `n` times with `SO_REUSEPORT` (and `SO_REUSEADDR`, as tokio's
/// `TcpListener::bind` sets it), for `n` workers each accepting on its own listener; Linux
/// spreads the connections over them. Port 0 picks one port for all of them (read it with
/// `local_addr` on any).
///
/// The listeners are non-blocking, ready for
/// [`tokio::net::TcpListener::from_std`] inside each worker's runtime.
///
/// An address already listened on is refused (`AddrInUse`), also by another process that
/// bound it with `SO_REUSEPORT` (which would otherwise share the traffic with it without a
/// word): the address is first bound once without `SO_REUSEPORT` to check it is free.
///
/// ```
/// use proxy_balancer::server::bind_reuseport;
///
/// # fn main() -> std::io::Result<()> {
/// let listeners = bind_reuseport("127.0.0.1:0".parse().expect("an address"), 2)?;
/// let addr = listeners[0].local_addr()?;
/// assert_eq!(listeners[1].local_addr()?, addr);
/// // A second server on the same address is refused, as a plain bind would be.
/// assert!(bind_reuseport(addr, 2).is_err());
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// `n` is 0 (`InvalidInput`); the address is in use or cannot be bound; the system has no
/// `SO_REUSEPORT` (`Unsupported`: not Unix, or Solaris and illumos).
pub fn bind_reuseport(addr: SocketAddr, n: usize) -> io::Result<Vec<std::net::TcpListener>> {
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bind_reuseport: at least one listener",
        ));
    }
    imp::bind(addr, n)
}

impl ClientLimits {
    /// The limits of worker `index` of `workers` serving one address on listeners of their
    /// own ([`bind_reuseport`]): the same, but for the connection cap, which is split so
    /// that the workers' caps add up to this one's ([`max_connections`](Self::max_connections),
    /// or the cap derived from the open-file limit when it is `None`: call
    /// [`raise_nofile_limit`](super::raise_nofile_limit) first); the first `cap % workers`
    /// workers get one more. Each worker gets at least 1.
    ///
    /// Split, not one counter for all: each worker's accept loop counts, and at its cap
    /// closes the idle connections of, its own connections only, without a lock or an
    /// atomic shared by the threads on each accept. A worker at its share closes its own
    /// idle connections first, as one server does at its cap.
    ///
    /// The cost: the kernel spreads connections over the listeners by a hash of their
    /// addresses, even on average but not connection by connection, so near the cap one
    /// worker can reach its share (and make clients wait, or close its idle connections)
    /// while the total is still below the cap: with 2 workers and a cap of 100, the review
    /// saw a worker at its 50 with 95 clients in all. Give the cap room for it (raise the
    /// open-file limit), or serve from one runtime.
    ///
    /// ```
    /// use proxy_balancer::server::ClientLimits;
    ///
    /// let limits = ClientLimits::new().max_connections(Some(1001));
    /// let caps: Vec<_> = (0..4)
    ///     .map(|i| limits.for_worker(i, 4).get_max_connections())
    ///     .collect();
    /// assert_eq!(caps, [Some(251), Some(250), Some(250), Some(250)]);
    /// ```
    #[must_use]
    pub fn for_worker(&self, index: usize, workers: usize) -> Self {
        let workers = workers.max(1);
        let Some(cap) = self
            .max_connections
            .or_else(super::nofile::derived_max_connections)
        else {
            // No cap (an unlimited open-file limit): none for the workers either.
            return self.clone();
        };
        let share = cap / workers + usize::from(index < cap % workers);
        self.clone().max_connections(Some(share.max(1)))
    }
}

#[cfg(all(
    unix,
    not(any(
        target_os = "solaris",
        target_os = "illumos",
        target_os = "cygwin",
        target_os = "nuttx"
    ))
))]
mod imp {
    use std::io;
    use std::net::SocketAddr;

    use socket2::{Domain, Protocol, Socket, Type};

    use super::BACKLOG;

    pub(super) fn bind(addr: SocketAddr, n: usize) -> io::Result<Vec<std::net::TcpListener>> {
        // Free? Bound without SO_REUSEPORT, as a plain listener: refused where anyone
        // listens, with or without SO_REUSEPORT. Port 0 gets its port here.
        let probe = socket(addr)?;
        probe.bind(&addr.into())?;
        let addr = probe
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("the bound address is not an IP address"))?;
        drop(probe);
        (0..n)
            .map(|_| {
                let socket = socket(addr)?;
                socket.set_reuse_port(true)?;
                socket.bind(&addr.into())?;
                socket.listen(BACKLOG)?;
                socket.set_nonblocking(true)?;
                Ok(socket.into())
            })
            .collect()
    }

    fn socket(addr: SocketAddr) -> io::Result<Socket> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        Ok(socket)
    }
}

#[cfg(not(all(
    unix,
    not(any(
        target_os = "solaris",
        target_os = "illumos",
        target_os = "cygwin",
        target_os = "nuttx"
    ))
)))]
mod imp {
    use std::io;
    use std::net::SocketAddr;

    pub(super) fn bind(_addr: SocketAddr, _n: usize) -> io::Result<Vec<std::net::TcpListener>> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "SO_REUSEPORT is not available on this system",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_split_and_adds_up() {
        for (cap, workers) in [(10, 3), (1000, 2), (7, 7), (64, 5)] {
            let limits = ClientLimits::new().max_connections(Some(cap));
            let shares: Vec<usize> = (0..workers)
                .map(|i| {
                    limits
                        .for_worker(i, workers)
                        .get_max_connections()
                        .expect("a cap")
                })
                .collect();
            assert_eq!(shares.iter().sum::<usize>(), cap, "{shares:?}");
            let (min, max) = (shares.iter().min(), shares.iter().max());
            assert!(max.zip(min).is_some_and(|(a, b)| a - b <= 1), "{shares:?}");
        }
        // At least one each; zero workers is one.
        let one = ClientLimits::new().max_connections(Some(1));
        assert_eq!(one.for_worker(1, 2).get_max_connections(), Some(1));
        assert_eq!(one.for_worker(0, 0).get_max_connections(), Some(1));
        // The other limits stay.
        let limits = ClientLimits::new()
            .max_connections(Some(4))
            .keep_alive_timeout(std::time::Duration::from_secs(2));
        assert_eq!(
            limits.for_worker(0, 2).get_keep_alive_timeout(),
            std::time::Duration::from_secs(2)
        );
    }

    #[test]
    fn the_derived_cap_is_split_too() {
        let Some(cap) = super::super::nofile::derived_max_connections() else {
            return;
        };
        let limits = ClientLimits::new();
        let total: usize = (0..3)
            .map(|i| limits.for_worker(i, 3).get_max_connections().unwrap_or(0))
            .sum();
        assert_eq!(total, cap.max(3));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn listeners_share_one_port_and_a_taken_one_is_refused() {
        assert_eq!(
            bind_reuseport("127.0.0.1:0".parse().expect("an address"), 0)
                .map(|l| l.len())
                .map_err(|e| e.kind()),
            Err(io::ErrorKind::InvalidInput)
        );
        let listeners =
            bind_reuseport("127.0.0.1:0".parse().expect("an address"), 3).expect("binds");
        assert_eq!(listeners.len(), 3);
        let addr = listeners[0].local_addr().expect("an address");
        assert_ne!(addr.port(), 0);
        for l in &listeners {
            assert_eq!(l.local_addr().expect("an address"), addr);
        }
        // Taken (by our SO_REUSEPORT listeners, or a plain one): refused.
        assert_eq!(
            bind_reuseport(addr, 1)
                .map(|l| l.len())
                .map_err(|e| e.kind()),
            Err(io::ErrorKind::AddrInUse)
        );
        let plain = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        let taken = plain.local_addr().expect("an address");
        assert_eq!(
            bind_reuseport(taken, 2)
                .map(|l| l.len())
                .map_err(|e| e.kind()),
            Err(io::ErrorKind::AddrInUse)
        );
        // Connections reach the listeners (the kernel picks which).
        for l in &listeners {
            l.set_nonblocking(false).expect("blocking");
        }
        let _client = std::net::TcpStream::connect(addr).expect("connects");
        drop(listeners);
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "closed with them"
        );
    }
}
