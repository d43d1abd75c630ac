//! The client's address, as a request extension.

use std::net::SocketAddr;

/// The address of the client a request came from, put in the request's extensions by the
/// server that accepted the connection (`proxy_balancer::server` does).
///
/// Read by whatever decides on the client's address: `X-Forwarded-For`, and the
/// balancer-manager's access rule (which refuses every request that has none).
///
/// ```
/// use proxy_balancer_core::PeerAddr;
///
/// // What a server does for each request: `request.extensions_mut().insert(peer)`.
/// let peer = PeerAddr("192.0.2.7:50000".parse()?);
/// assert_eq!(peer.0.ip().to_string(), "192.0.2.7");
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerAddr(pub SocketAddr);
