//! Load reports for `lbmethod=heartbeat`: Apache's mod_heartbeat datagrams and an API for
//! any other source.
//!
//! Origin servers running Apache's mod_heartbeat send a UDP datagram every second,
//! `v=1&ready=75&busy=0`: how many of their slots are idle and how many serve requests.
//! A [`HeartbeatListener`] receives them (unicast, or multicast when its address is a
//! multicast group), finds the members the sender is, and records the report with
//! [`MemberState::report_load`](crate::MemberState::report_load) at tokio's clock. A balancer
//! with `lbmethod=heartbeat` ([`Heartbeat`](crate::core::lbmethod::Heartbeat)) then favours
//! the members with the most idle capacity.
//!
//! Reports from anything else (a response header, a metrics scrape) go through [`report`].
//!
//! # Finding the member
//!
//! A datagram from IP address `a` is for the members whose URL host is `a` (an IP address,
//! as in Apache, which compares the worker's host name with the sender's address; a host
//! name never matches). The port is the datagram's `port=` key if it has one (Apache's
//! mod_heartmonitor reads it too), else the port configured for `a` with
//! [`HeartbeatListenerBuilder::port_for`]; without either, every member at `a` matches
//! (Apache assumes port 80 there).
//!
//! # Apache
//!
//! | Apache | here |
//! | --- | --- |
//! | mod_heartmonitor `HeartbeatListen addr:port` | [`HeartbeatListener::bind`] |
//! | mod_heartbeat `HeartbeatAddress addr:port` (on the origin servers) | the senders; anything that sends `v=1&ready=N&busy=M` |
//! | mod_lbmethod_heartbeat `lbmethod=heartbeat` | [`Heartbeat`](crate::core::lbmethod::Heartbeat) |
//! | `HeartbeatMaxServers`, `HeartbeatStorage` | not needed: reports live in each member's state |
//!
//! # Examples
//!
//! Listening with the defaults:
//!
//! ```no_run
//! use std::sync::Arc;
//! use proxy_balancer::heartbeat::HeartbeatListener;
//! use proxy_balancer::{BalancerParams, BalancerStore, MemberParams};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut params = BalancerParams::new("hb");
//! params.set("lbmethod", "heartbeat")?;
//! let members = [MemberParams::new("http://10.0.0.1:8080")?, MemberParams::new("http://10.0.0.2:8080")?];
//! let now = tokio::time::Instant::now().into_std();
//! let store = Arc::new(BalancerStore::new(params, members, now)?);
//!
//! let listener = HeartbeatListener::bind("239.0.0.1:27999".parse()?, Arc::clone(&store)).await?;
//! // ... serve; the listener stops when dropped, or:
//! listener.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Customized: the multicast interface, a port for senders that do not send one, and a
//! report from another source:
//!
//! ```no_run
//! use std::net::{IpAddr, Ipv4Addr};
//! use std::sync::Arc;
//! use proxy_balancer::heartbeat::{report, HeartbeatListener};
//! use proxy_balancer::{BalancerParams, BalancerStore, MemberParams};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let mut params = BalancerParams::new("hb");
//! # params.set("lbmethod", "heartbeat")?;
//! # let members = [MemberParams::new("http://10.0.0.1:8080")?, MemberParams::new("http://backend-2:8080")?];
//! # let store = Arc::new(BalancerStore::new(params, members, tokio::time::Instant::now().into_std())?);
//! let listener = HeartbeatListener::builder("239.0.0.1:27999".parse()?)
//!     .multicast_interface_v4(Ipv4Addr::new(10, 0, 0, 254))
//!     .port_for(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 8080)
//!     .bind(Arc::clone(&store))
//!     .await?;
//!
//! // backend-2 is named, not addressed: it reports through a response header instead.
//! report(&store, "http://backend-2:8080", 12, 4);
//! println!("{:?}", listener.stats());
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{BalancerStore, Member, MemberId};

/// The longest datagram read, as Apache's mod_heartmonitor (`MAX_MSG_LEN`): a report is
/// about 30 bytes, so anything longer is not one.
const MAX_DATAGRAM: usize = 1000;

/// The pause after a failed receive, so that a socket error that repeats does not spin.
const RECV_ERROR_PAUSE: Duration = Duration::from_millis(10);

/// Records a load report for the member with this URL at tokio's clock, for sources other
/// than datagrams (a response header, a scrape). Returns the member's id, or `None` when
/// the balancer has no member with this URL.
///
/// ```
/// use proxy_balancer::heartbeat::report;
/// use proxy_balancer::{BalancerParams, BalancerStore, MemberParams};
///
/// let members = [MemberParams::new("http://backend-1:8080")?];
/// let now = tokio::time::Instant::now().into_std();
/// let store = BalancerStore::new(BalancerParams::new("hb"), members, now)?;
/// assert!(report(&store, "http://backend-1:8080", 40, 10).is_some());
/// assert!(report(&store, "http://unknown", 40, 10).is_none());
/// let snapshot = store.snapshot();
/// let last = snapshot.members()[0].state().load_report().expect("reported");
/// assert_eq!((last.ready(), last.busy()), (40, 10));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Inside a tokio runtime with a paused clock, the report is stamped with the paused time.
pub fn report(store: &BalancerStore, member_url: &str, ready: u32, busy: u32) -> Option<MemberId> {
    let now = tokio::time::Instant::now().into_std();
    let snapshot = store.load();
    let member = snapshot.member_by_url(member_url)?;
    member.state().report_load(ready, busy, now);
    Some(member.id())
}

// ===== impl HeartbeatMessage =====

/// One mod_heartbeat datagram: `v=1&ready=N&busy=M`, optionally `&port=P`.
///
/// Parsing is lenient as Apache's: keys in any order, unknown keys ignored, the first of
/// repeated keys wins, surrounding whitespace ignored. `ready` and `busy` are required and
/// must be decimal numbers (larger than `u32::MAX` reads as `u32::MAX`); `v`, if present,
/// must be `1`; `port`, if present, must be a port number.
///
/// ```
/// use proxy_balancer::heartbeat::HeartbeatMessage;
///
/// let m = HeartbeatMessage::parse(b"busy=3&v=1&ready=75&x=y").expect("valid");
/// assert_eq!((m.ready(), m.busy(), m.port()), (75, 3, None));
/// assert_eq!(HeartbeatMessage::parse(b"v=1&ready=1&busy=0&port=8080").and_then(|m| m.port()), Some(8080));
/// assert!(HeartbeatMessage::parse(b"v=2&ready=1&busy=0").is_none());
/// assert!(HeartbeatMessage::parse(b"ready=lots&busy=0").is_none());
/// assert!(HeartbeatMessage::parse(b"\xff\xfe").is_none());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeartbeatMessage {
    ready: u32,
    busy: u32,
    port: Option<u16>,
}

impl HeartbeatMessage {
    /// Parses a datagram; `None` when it is not a valid report.
    #[must_use]
    pub fn parse(datagram: &[u8]) -> Option<Self> {
        if datagram.len() > MAX_DATAGRAM {
            return None;
        }
        let text = std::str::from_utf8(datagram).ok()?.trim();
        let (mut v, mut ready, mut busy, mut port) = (None, None, None, None);
        for pair in text.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match key {
                "v" => &mut v,
                "ready" => &mut ready,
                "busy" => &mut busy,
                "port" => &mut port,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        if v.is_some_and(|v| v != "1") {
            return None;
        }
        let port = match port {
            Some(p) => Some(p.parse::<u16>().ok()?),
            None => None,
        };
        Some(Self {
            ready: parse_count(ready?)?,
            busy: parse_count(busy?)?,
            port,
        })
    }

    /// Idle slots (`ready`).
    #[must_use]
    pub const fn ready(&self) -> u32 {
        self.ready
    }

    /// Slots serving requests (`busy`).
    #[must_use]
    pub const fn busy(&self) -> u32 {
        self.busy
    }

    /// The sender's serving port (`port`), if it said.
    #[must_use]
    pub const fn port(&self) -> Option<u16> {
        self.port
    }
}

/// A decimal count, saturating at `u32::MAX`.
fn parse_count(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = s.trim_start_matches('0');
    if digits.len() > 10 {
        return Some(u32::MAX);
    }
    Some(u32::try_from(digits.parse::<u64>().unwrap_or(0)).unwrap_or(u32::MAX))
}

/// A member's address when its host is an IP address: the IP and the port (explicit, or
/// the scheme's default).
fn member_addr(member: &Member) -> Option<(IpAddr, u16)> {
    let url = &member.params().url;
    let ip: IpAddr = url.connect_host().parse().ok()?;
    let port = url.port();
    Some((ip.to_canonical(), port))
}

// ===== impl HeartbeatListener =====

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    applied: AtomicU64,
    rejected: AtomicU64,
    unmatched: AtomicU64,
}

/// What a [`HeartbeatListener`] has received so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeartbeatStats {
    /// Datagrams received.
    pub received: u64,
    /// Valid reports recorded for at least one member.
    pub applied: u64,
    /// Datagrams that were not valid reports (ignored).
    pub rejected: u64,
    /// Valid reports from a sender that is no member (ignored).
    pub unmatched: u64,
}

/// Receives mod_heartbeat datagrams and records them as members' load reports. See the
/// [module docs](self).
///
/// The receiving task ends when the listener is dropped or [`shut down`](Self::shutdown).
///
/// # Apache
///
/// mod_heartmonitor's `HeartbeatListen`.
pub struct HeartbeatListener {
    local_addr: SocketAddr,
    counters: Arc<Counters>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl HeartbeatListener {
    /// Listens on `addr` with the defaults (see [`HeartbeatListenerBuilder`]), recording
    /// reports into `store`'s members. Must be called within a tokio runtime.
    ///
    /// # Errors
    ///
    /// The socket could not be bound or the multicast group joined.
    pub async fn bind(addr: SocketAddr, store: Arc<BalancerStore>) -> io::Result<Self> {
        Self::builder(addr).bind(store).await
    }

    /// A listener on `addr` with more settings.
    pub fn builder(addr: SocketAddr) -> HeartbeatListenerBuilder {
        HeartbeatListenerBuilder {
            addr,
            interface_v4: Ipv4Addr::UNSPECIFIED,
            interface_v6: 0,
            ports: HashMap::new(),
            max_servers: None,
        }
    }

    /// The address the socket is bound to (the port chosen when binding port 0).
    #[must_use]
    pub const fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// What the listener has received so far.
    #[must_use]
    pub fn stats(&self) -> HeartbeatStats {
        let c = &self.counters;
        HeartbeatStats {
            received: c.received.load(Ordering::Relaxed),
            applied: c.applied.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            unmatched: c.unmatched.load(Ordering::Relaxed),
        }
    }

    /// Stops the receiving task and waits until it has ended and closed its socket.
    pub async fn shutdown(mut self) {
        drop(self.stop.take());
        if let Some(task) = self.task.take() {
            // The task never panics; a cancelled runtime is the only other outcome.
            let _ = task.await;
        }
    }
}

impl Drop for HeartbeatListener {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl fmt::Debug for HeartbeatListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeartbeatListener")
            .field("local_addr", &self.local_addr)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Settings of a [`HeartbeatListener`]; from [`HeartbeatListener::builder`].
#[derive(Clone, Debug)]
#[must_use = "call bind to start the listener"]
pub struct HeartbeatListenerBuilder {
    addr: SocketAddr,
    interface_v4: Ipv4Addr,
    interface_v6: u32,
    ports: HashMap<IpAddr, u16>,
    max_servers: Option<usize>,
}

impl HeartbeatListenerBuilder {
    /// Track at most `n` senders: reports from further sender addresses are ignored
    /// (counted as unmatched). `None` (the default): no limit.
    ///
    /// # Apache
    ///
    /// `HeartbeatMaxServers` (the slots of its shared memory; 0, its flat-file storage,
    /// has no limit).
    pub const fn max_servers(mut self, n: Option<usize>) -> Self {
        self.max_servers = n;
        self
    }

    /// The local interface that joins an IPv4 multicast group (default: any, chosen by
    /// the system). Used only when the address is a multicast group.
    pub const fn multicast_interface_v4(mut self, interface: Ipv4Addr) -> Self {
        self.interface_v4 = interface;
        self
    }

    /// The index of the interface that joins an IPv6 multicast group (default 0: chosen
    /// by the system). Used only when the address is a multicast group.
    pub const fn multicast_interface_v6(mut self, index: u32) -> Self {
        self.interface_v6 = index;
        self
    }

    /// Reports from `sender` without a `port=` key are for its member on `port`; for a
    /// host that runs several members, or whose member is not on the default port.
    pub fn port_for(mut self, sender: IpAddr, port: u16) -> Self {
        self.ports.insert(sender.to_canonical(), port);
        self
    }

    /// Binds the socket (joining the multicast group if the address is one) and starts
    /// the receiving task. Must be called within a tokio runtime.
    ///
    /// For a multicast group the socket binds the unspecified address on the group's port,
    /// without `SO_REUSEADDR`: one listener per port and host.
    ///
    /// # Errors
    ///
    /// The socket could not be bound or the multicast group joined.
    #[allow(clippy::unused_async)] // Kept async: binding may wait in a later version.
    pub async fn bind(self, store: Arc<BalancerStore>) -> io::Result<HeartbeatListener> {
        self.bind_now(vec![store])
    }

    /// Binds at once (the socket is bound without waiting), recording reports into the
    /// members of every balancer in `stores` (Apache's one `HeartbeatListen` feeds every
    /// `lbmethod=heartbeat` balancer). Must be called within a tokio runtime.
    ///
    /// # Errors
    ///
    /// The socket could not be bound or the multicast group joined.
    pub fn bind_now(self, stores: Vec<Arc<BalancerStore>>) -> io::Result<HeartbeatListener> {
        let std_socket = match self.addr.ip() {
            IpAddr::V4(group) if group.is_multicast() => {
                let socket = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, self.addr.port()))?;
                socket.join_multicast_v4(&group, &self.interface_v4)?;
                socket
            }
            IpAddr::V6(group) if group.is_multicast() => {
                let socket = std::net::UdpSocket::bind((Ipv6Addr::UNSPECIFIED, self.addr.port()))?;
                socket.join_multicast_v6(&group, self.interface_v6)?;
                socket
            }
            _ => std::net::UdpSocket::bind(self.addr)?,
        };
        std_socket.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(std_socket)?;
        let local_addr = socket.local_addr()?;
        let counters = Arc::new(Counters::default());
        let (stop, stopped) = oneshot::channel();
        let receiver = Receiver {
            socket,
            stores,
            max_servers: self.max_servers,
            senders: std::collections::HashSet::new(),
            ports: self.ports,
            counters: Arc::clone(&counters),
        };
        let task = tokio::spawn(receiver.run(stopped));
        Ok(HeartbeatListener {
            local_addr,
            counters,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// The receiving task's state.
struct Receiver {
    socket: UdpSocket,
    stores: Vec<Arc<BalancerStore>>,
    /// `HeartbeatMaxServers`.
    max_servers: Option<usize>,
    /// The senders tracked so far (with a `max_servers`).
    senders: std::collections::HashSet<IpAddr>,
    ports: HashMap<IpAddr, u16>,
    counters: Arc<Counters>,
}

impl Receiver {
    async fn run(mut self, mut stopped: oneshot::Receiver<()>) {
        // One byte more than a report may have, to tell a long datagram from a full one.
        let mut buf = [0u8; MAX_DATAGRAM + 1];
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((len, from)) => self.handle(&buf[..len], from),
                    Err(error) => {
                        tracing::debug!(%error, "heartbeat receive failed");
                        tokio::time::sleep(RECV_ERROR_PAUSE).await;
                    }
                },
            }
        }
    }

    fn handle(&mut self, datagram: &[u8], from: SocketAddr) {
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        let Some(message) = HeartbeatMessage::parse(datagram) else {
            self.counters.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%from, len = datagram.len(), "ignoring a datagram that is no heartbeat");
            return;
        };
        let now = tokio::time::Instant::now().into_std();
        let ip = from.ip().to_canonical();
        let port = message.port().or_else(|| self.ports.get(&ip).copied());
        if let Some(max) = self.max_servers {
            if !self.senders.contains(&ip) {
                if self.senders.len() >= max {
                    self.counters.unmatched.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%from, max, "ignoring a heartbeat: HeartbeatMaxServers senders already tracked");
                    return;
                }
                self.senders.insert(ip);
            }
        }
        let mut matched = false;
        for store in &self.stores {
            let snapshot = store.load();
            for member in snapshot.members() {
                let Some((host, member_port)) = member_addr(member) else {
                    continue;
                };
                if host == ip && port.map_or(true, |p| p == member_port) {
                    member
                        .state()
                        .report_load(message.ready(), message.busy(), now);
                    matched = true;
                }
            }
        }
        if matched {
            self.counters.applied.fetch_add(1, Ordering::Relaxed);
        } else {
            self.counters.unmatched.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%from, ?port, "ignoring a heartbeat from a sender that is no member");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_lenient() {
        let m = HeartbeatMessage::parse(b"  v=1&ready=75&busy=0\n").unwrap();
        assert_eq!((m.ready(), m.busy(), m.port()), (75, 0, None));
        let m = HeartbeatMessage::parse(b"&&busy=2&&ready=1&ready=9&foo&=x").unwrap();
        assert_eq!((m.ready(), m.busy()), (1, 2), "the first of repeated keys");
        let m = HeartbeatMessage::parse(b"ready=99999999999999999999&busy=007").unwrap();
        assert_eq!((m.ready(), m.busy()), (u32::MAX, 7));
    }

    #[test]
    fn parse_rejects() {
        for bad in [
            &b""[..],
            b"v=1",
            b"v=1&ready=1",
            b"v=1&busy=1",
            b"v=1&ready=&busy=1",
            b"v=1&ready=-1&busy=1",
            b"v=1&ready=+1&busy=1",
            b"v=1&ready=1 &busy=1",
            b"v=x&ready=1&busy=1",
            b"v=1&ready=1&busy=1&port=70000",
            b"\0\0\0",
            b"\xc3\x28",
        ] {
            assert_eq!(HeartbeatMessage::parse(bad), None, "{bad:?}");
        }
        let long = format!("v=1&ready=1&busy=1&pad={}", "x".repeat(MAX_DATAGRAM));
        assert_eq!(HeartbeatMessage::parse(long.as_bytes()), None);
    }

    #[test]
    fn member_addresses() {
        let member = |url: &str| {
            let store = BalancerStore::new(
                crate::BalancerParams::new("x"),
                [crate::MemberParams::new(url).unwrap()],
                tokio::time::Instant::now().into_std(),
            )
            .unwrap();
            member_addr(&store.snapshot().members()[0])
        };
        let v4 = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(member("http://10.0.0.1"), Some((v4, 80)));
        assert_eq!(member("https://10.0.0.1"), Some((v4, 443)));
        assert_eq!(member("http://10.0.0.1:8080/app"), Some((v4, 8080)));
        assert_eq!(
            member("http://[::1]:81"),
            Some((IpAddr::V6(Ipv6Addr::LOCALHOST), 81))
        );
        assert_eq!(member("http://backend"), None);
    }
}
