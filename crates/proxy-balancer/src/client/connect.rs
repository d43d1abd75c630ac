//! Opening a connection to a member: TCP (with the member's socket options), then TLS for
//! `https`, `wss` and `h2` members.

use super::*;

use std::io;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::resolve::Resolver;
use super::tls::TlsClient;

/// The application protocol a connection is opened for (TLS's ALPN offer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code)] // `H2`: the h2 member pool (issue #15, in progress).
pub(crate) enum Alpn {
    /// `http/1.1`.
    Http1,
    /// `h2`.
    H2,
}

/// A connection to a member: plain TCP or TLS over TCP.
pub(crate) enum MemberStream {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl MemberStream {
    /// Whether TLS negotiated `h2` (ALPN).
    #[allow(dead_code)]
    pub(crate) fn negotiated_h2(&self) -> bool {
        match self {
            Self::Tcp(_) => false,
            Self::Tls(tls) => tls.get_ref().1.alpn_protocol() == Some(b"h2"),
        }
    }
}

impl AsyncRead for MemberStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MemberStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// How to reach one member: its address, socket options and TLS.
pub(crate) struct Connector {
    pub(crate) host: String,
    /// The addresses of `host`, kept for `addressttl`.
    pub(crate) resolver: Resolver,
    /// `connectiontimeout` (else `timeout`): bounds the TCP connect and the TLS handshake.
    pub(crate) connect_timeout: Option<Duration>,
    /// `keepalive=On`.
    pub(crate) keepalive: bool,
    /// `receivebuffersize`.
    pub(crate) receive_buffer: Option<usize>,
    /// For `https`, `wss` and `h2` members; `None` for the others.
    pub(crate) tls: Option<TlsClient>,
    /// The member's URL, for logs and errors.
    pub(crate) member: String,
}

impl Connector {
    /// A new connection (bounded by `connectiontimeout`): a failure is a connect error
    /// ([`ErrorKind::Connect`](crate::ErrorKind::Connect)), so the request may fail over.
    pub(crate) async fn connect(&self, alpn: Alpn) -> Result<MemberStream, Error> {
        let connecting = self.connect_unbounded(alpn);
        match self.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, connecting)
                .await
                .map_err(Error::connect)?,
            None => connecting.await,
        }
    }

    async fn connect_unbounded(&self, alpn: Alpn) -> Result<MemberStream, Error> {
        let receive_buffer = self.receive_buffer.filter(|&n| n > 0);
        let stream = connect_stream(&self.resolver, receive_buffer)
            .await
            .map_err(Error::connect)?;
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on a member connection");
        }
        if self.keepalive {
            let keepalive = socket2::TcpKeepalive::new().with_time(KEEPALIVE_INTERVAL);
            if let Err(error) = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive) {
                tracing::debug!(%error, "cannot set TCP keep-alive on a member connection");
            }
        }
        let Some(tls) = &self.tls else {
            return Ok(MemberStream::Tcp(stream));
        };
        match tls.connect(&self.host, stream, alpn).await {
            Ok(tls) => Ok(MemberStream::Tls(Box::new(tls))),
            Err(error) => {
                tracing::error!(
                    member = %self.member,
                    %error,
                    "TLS handshake with the member failed"
                );
                Err(Error::connect(error).with_member(&self.member, None))
            }
        }
    }
}

/// Connects to the member's host (its addresses as [`Resolver`] keeps them, in order),
/// with `SO_RCVBUF` set before the connection is made (so that the window scaling the
/// kernel offers follows it) when `receive_buffer` is given. When every address fails, the
/// name is resolved again and new addresses, if any, are tried once (as Apache does).
pub(super) async fn connect_stream(
    resolver: &Resolver,
    receive_buffer: Option<usize>,
) -> std::io::Result<TcpStream> {
    let addresses = resolver.addresses().await?;
    let error = match connect_any(&addresses, receive_buffer).await {
        Ok(stream) => return Ok(stream),
        Err(error) => error,
    };
    match resolver.refresh(&addresses).await {
        Some(fresh) => connect_any(&fresh, receive_buffer).await,
        None => Err(error),
    }
}

/// Connects to the first of `addresses` that takes the connection.
async fn connect_any(
    addresses: &[std::net::SocketAddr],
    receive_buffer: Option<usize>,
) -> std::io::Result<TcpStream> {
    let size = receive_buffer.map(|size| u32::try_from(size).unwrap_or(u32::MAX));
    let mut last = None;
    for &addr in addresses {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        if let Some(size) = size {
            if let Err(error) = socket.set_recv_buffer_size(size) {
                tracing::debug!(%error, "cannot set SO_RCVBUF on a member connection");
            }
        }
        match socket.connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no address to connect to")
    }))
}
