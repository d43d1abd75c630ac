use std::net::SocketAddr;

/// The address of the client at the other end of the connection, put in a request's
/// extensions by the server that accepted it.
///
/// The parts that need the client's address read it from there: the forwarding layer for
/// `X-Forwarded-For` (`proxy_balancer::proxy_pass::ForwardLayer`) and the
/// balancer-manager's access rule (`proxy_balancer_manager`), which refuses every request
/// without it. It lives in this crate so that both can name the same type.
///
/// ```
/// use std::net::SocketAddr;
///
/// use proxy_balancer_core::PeerAddr;
///
/// let addr: SocketAddr = "192.0.2.7:50000".parse()?;
/// let peer = PeerAddr::from(addr);
/// assert_eq!(peer.0.ip().to_string(), "192.0.2.7");
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
///
/// # Apache
///
/// The connection's `client_addr` (`%{REMOTE_ADDR}`), as `X-Forwarded-For` and
/// `Require ip` see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerAddr(pub SocketAddr);

impl From<SocketAddr> for PeerAddr {
    fn from(addr: SocketAddr) -> Self {
        Self(addr)
    }
}

/// The local address a connection was accepted on (the listener's address, or the one the
/// client reached), put in a request's extensions by the server that accepted it.
///
/// The balancer-manager reads it to tell whether a request's `Host` names this server
/// (a defence against DNS rebinding).
///
/// ```
/// use proxy_balancer_core::LocalAddr;
///
/// let local = LocalAddr("127.0.0.1:8080".parse()?);
/// assert_eq!(local.0.port(), 8080);
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
///
/// # Apache
///
/// The connection's `local_addr` (`%{SERVER_ADDR}`, `%{SERVER_PORT}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LocalAddr(pub SocketAddr);

impl From<SocketAddr> for LocalAddr {
    fn from(addr: SocketAddr) -> Self {
        Self(addr)
    }
}

/// That a connection came over TLS, put in a request's extensions by the server that
/// accepted it (absent on a plain connection): the request's scheme is `https`.
///
/// The parts that write the front scheme read it: the `ProxyPassReverse` layer (a
/// `Location` rewritten to `https://`), the balancer-manager's `Origin` check (an
/// `http://` origin is another site than an HTTPS page), mod_headers' `%{HTTPS}s`. It
/// lives in this crate so that all of them can name the same type. Cloning it does not
/// allocate (the server name is shared).
///
/// ```
/// use std::sync::Arc;
///
/// use proxy_balancer_core::TlsInfo;
///
/// let tls = TlsInfo::new(Some(Arc::from("www.example.com")), true);
/// assert_eq!(tls.server_name(), Some("www.example.com"));
/// assert!(tls.is_h2());
/// ```
///
/// # Apache
///
/// mod_ssl's `HTTPS=on`, `SSL_TLS_SNI` and the ALPN protocol of the connection; the
/// request's scheme (`ap_http_scheme`) is `https`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TlsInfo {
    server_name: Option<std::sync::Arc<str>>,
    h2: bool,
}

impl TlsInfo {
    /// A TLS connection for `server_name` (the SNI the client sent, if any), speaking h2
    /// when ALPN chose it (`h2`).
    #[must_use]
    pub const fn new(server_name: Option<std::sync::Arc<str>>, h2: bool) -> Self {
        Self { server_name, h2 }
    }

    /// The server name the client asked for in its handshake (SNI), if it sent one.
    #[must_use]
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// Whether ALPN chose `h2`.
    #[must_use]
    pub const fn is_h2(&self) -> bool {
        self.h2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_info_keeps_the_sni_and_the_alpn_choice() {
        let info = TlsInfo::new(Some(std::sync::Arc::from("a.test")), true);
        assert_eq!((info.server_name(), info.is_h2()), (Some("a.test"), true));
        let info = TlsInfo::new(None, false);
        assert_eq!((info.server_name(), info.is_h2()), (None, false));
    }
}
