//! TLS on the listener: [`ServerTls`], what [`Server::tls`](super::Server::tls) serves
//! HTTPS with (rustls), and the handshake each connection's task runs.
//!
//! The handshake runs in the connection's own task, never in the accept loop (a slow
//! client does not hold up the others), within [`ClientLimits::handshake_timeout`]; a
//! handshake that fails or stalls is logged at debug and the connection closed. A client
//! that speaks plain HTTP to the TLS port is answered `400 Bad Request` in plain text, as
//! Apache's mod_ssl answers it ("You're speaking plain HTTP to an SSL-enabled server
//! port"). ALPN offers `h2` and `http/1.1` unless the rustls configuration names its own
//! protocols; the request then carries a [`TlsInfo`] (SNI, whether h2 was chosen), which
//! makes its scheme `https` for the parts that write it.
//!
//! [`ClientLimits::handshake_timeout`]: super::ClientLimits::handshake_timeout

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::server::ResolvesServerCert;
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::TlsInfo;

/// The first byte of a TLS record carrying a handshake message (the ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// What a client that speaks plain HTTP to the TLS port is answered (mod_ssl's reason, in
/// plain text).
const PLAIN_HTTP_400: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 115\r\nConnection: close\r\n\r\nYou're speaking plain HTTP to an SSL-enabled server port.\nInstead use the HTTPS scheme to access this URL, please.\n";

/// How long a plain-HTTP client's request is read before its `400` is sent, and how long
/// the connection lingers after, so that the answer is not lost to a reset.
const PLAIN_HTTP_LINGER: Duration = Duration::from_secs(1);

/// The ALPN protocols offered when the configuration gives none: HTTP/2 first.
const DEFAULT_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// HTTPS on a [`Server`](super::Server): a rustls [`ServerConfig`] shared by every
/// connection.
///
/// ```
/// use proxy_balancer::server::{Server, ServerTls};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
/// let tls = ServerTls::from_pem(
///     cert.cert.pem().as_bytes(),
///     cert.key_pair.serialize_pem().as_bytes(),
/// )?;
/// assert_eq!(tls.config().alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
/// let server = Server::new().tls(tls);
/// # let _ = server;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("alpn_protocols", &self.config.alpn_protocols)
            .finish_non_exhaustive()
    }
}

// ===== impl ServerTls =====

impl ServerTls {
    /// Serves with `config` as given, except that ALPN offers `h2` and `http/1.1` when it
    /// names no protocol.
    #[must_use]
    pub fn new(mut config: ServerConfig) -> Self {
        if config.alpn_protocols.is_empty() {
            config.alpn_protocols = DEFAULT_ALPN.iter().map(|p| p.to_vec()).collect();
        }
        Self {
            config: Arc::new(config),
        }
    }

    /// Serves with a shared configuration as it is (its ALPN list included: an empty one
    /// offers no protocol, and the client speaks HTTP/1.1).
    #[must_use]
    pub const fn from_arc(config: Arc<ServerConfig>) -> Self {
        Self { config }
    }

    /// One certificate for every client: the chain (the server's certificate first) and
    /// its private key, in PEM; TLS 1.2 and 1.3, no client certificates.
    ///
    /// # Errors
    ///
    /// No certificate or no key in the PEM, a key rustls cannot use, or a key that does not
    /// belong to the certificate.
    pub fn from_pem(chain: &[u8], key: &[u8]) -> Result<Self, ServerTlsError> {
        let chain = certs_from_pem(chain, None)?;
        let key = key_from_pem(key, None)?;
        let key = certified_key(chain, &key)?;
        Self::with_resolver(
            Arc::new(rustls::sign::SingleCertAndKey::from(key)),
            &[&rustls::version::TLS13, &rustls::version::TLS12],
        )
    }

    /// A configuration whose certificate `resolver` picks per handshake (by SNI, say),
    /// offering the protocol `versions`; ALPN `h2` and `http/1.1`.
    ///
    /// # Errors
    ///
    /// When `versions` is empty.
    pub fn with_resolver(
        resolver: Arc<dyn ResolvesServerCert>,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Result<Self, ServerTlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(ServerTlsError::Rustls)?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
        Ok(Self::new(config))
    }

    /// The rustls configuration.
    #[must_use]
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }
}

/// Reads a certificate chain and its key from PEM files (as `SSLCertificateFile`,
/// `SSLCertificateKeyFile` and `SSLCertificateChainFile` name them) into a rustls
/// [`CertifiedKey`], checking that the key belongs to the certificate. `key` `None`: the
/// key is in the certificate file. The chain file's certificates follow the certificate
/// file's.
///
/// ```
/// use proxy_balancer::server::{load_certified_key, ServerTlsError};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("pb-load-key-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let a = rcgen::generate_simple_self_signed(vec!["a.example".into()])?;
/// let b = rcgen::generate_simple_self_signed(vec!["b.example".into()])?;
/// std::fs::write(dir.join("a.pem"), a.cert.pem())?;
/// std::fs::write(dir.join("a.key"), a.key_pair.serialize_pem())?;
/// std::fs::write(dir.join("b.key"), b.key_pair.serialize_pem())?;
/// let key = load_certified_key(&dir.join("a.pem"), Some(&dir.join("a.key")), None)?;
/// assert_eq!(key.cert.len(), 1);
/// // b's key is not a's.
/// let wrong = load_certified_key(&dir.join("a.pem"), Some(&dir.join("b.key")), None);
/// assert!(matches!(wrong, Err(ServerTlsError::KeyMismatch)));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// A file that cannot be read, holds no certificate or no key, or a key that does not
/// match the certificate.
pub fn load_certified_key(
    cert: &Path,
    key: Option<&Path>,
    chain: Option<&Path>,
) -> Result<CertifiedKey, ServerTlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| ServerTlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let mut certs = certs_from_pem(&cert_pem, Some(cert))?;
    if let Some(chain) = chain {
        let chain_pem = read(chain)?;
        certs.extend(certs_from_pem(&chain_pem, Some(chain))?);
    }
    let key = match key {
        Some(path) => key_from_pem(&read(path)?, Some(path))?,
        None => key_from_pem(&cert_pem, Some(cert))?,
    };
    certified_key(certs, &key)
}

fn certs_from_pem(
    pem: &[u8],
    path: Option<&Path>,
) -> Result<Vec<CertificateDer<'static>>, ServerTlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServerTlsError::Pem {
            path: path.map(Path::to_owned),
            why: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(ServerTlsError::Pem {
            path: path.map(Path::to_owned),
            why: "no certificate (-----BEGIN CERTIFICATE-----) in it".to_owned(),
        });
    }
    Ok(certs)
}

fn key_from_pem(pem: &[u8], path: Option<&Path>) -> Result<PrivateKeyDer<'static>, ServerTlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| ServerTlsError::Pem {
        path: path.map(Path::to_owned),
        why: match e {
            rustls_pki_types::pem::Error::NoItemsFound => {
                "no private key (PKCS#8, PKCS#1 or SEC1 PEM) in it".to_owned()
            }
            e => e.to_string(),
        },
    })
}

fn certified_key(
    certs: Vec<CertificateDer<'static>>,
    key: &PrivateKeyDer<'static>,
) -> Result<CertifiedKey, ServerTlsError> {
    let signing =
        rustls::crypto::ring::sign::any_supported_type(key).map_err(ServerTlsError::Rustls)?;
    let certified = CertifiedKey::new(certs, signing);
    certified.keys_match().map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => ServerTlsError::KeyMismatch,
        e => ServerTlsError::Rustls(e),
    })?;
    Ok(certified)
}

/// Why a [`ServerTls`] or a certificate could not be made.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerTlsError {
    /// A file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file (or PEM text) holds no certificate or key, or bad PEM.
    Pem {
        /// The file, when there is one.
        path: Option<PathBuf>,
        /// What is wrong.
        why: String,
    },
    /// The private key does not belong to the certificate.
    KeyMismatch,
    /// rustls refused the key or the configuration.
    Rustls(rustls::Error),
}

impl fmt::Display for ServerTlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            Self::Pem {
                path: Some(path),
                why,
            } => write!(f, "{}: {why}", path.display()),
            Self::Pem { path: None, why } => write!(f, "PEM: {why}"),
            Self::KeyMismatch => f.write_str(
                "the private key does not match the certificate (its public key is another)",
            ),
            Self::Rustls(e) => write!(f, "TLS: {e}"),
        }
    }
}

impl std::error::Error for ServerTlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            Self::Rustls(e) => Some(e),
            Self::Pem { .. } | Self::KeyMismatch => None,
        }
    }
}

/// Runs the TLS handshake of an accepted connection within `limit`: the stream and what
/// the request should know of it, or `None` (logged at debug) when the client failed,
/// stalled or spoke plain HTTP (answered `400`).
pub(super) async fn handshake(
    tls: &ServerTls,
    stream: TcpStream,
    peer: SocketAddr,
    limit: Duration,
) -> Option<(TlsStream<TcpStream>, TlsInfo)> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut first = [0u8; 1];
    match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
        Ok(Ok(1..)) if first[0] == TLS_HANDSHAKE_RECORD => {}
        // An HTTP method starts with a letter (mod_ssl answers a request line that way);
        // other bytes are neither TLS nor HTTP: closed without a word, as OpenSSL does.
        Ok(Ok(1..)) if !first[0].is_ascii_alphabetic() => {
            tracing::debug!(%peer, byte = first[0], "neither TLS nor HTTP on the TLS port: closed");
            return None;
        }
        Ok(Ok(1..)) => {
            tracing::debug!(%peer, "plain HTTP on the TLS port: answered 400");
            answer_plain_http(stream).await;
            return None;
        }
        Ok(Ok(_)) => return None,
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "TLS connection failed before its handshake");
            return None;
        }
        Err(_) => {
            tracing::debug!(%peer, ?limit, "TLS handshake not started in time: closed");
            return None;
        }
    }
    let acceptor = TlsAcceptor::from(Arc::clone(&tls.config));
    match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => {
            let (_, session) = stream.get_ref();
            let info = TlsInfo::new(
                session.server_name().map(Arc::from),
                session.alpn_protocol() == Some(b"h2"),
            );
            Some((stream, info))
        }
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, ?limit, "TLS handshake not done in time: closed");
            None
        }
    }
}

/// mod_ssl's answer to plain HTTP on a TLS port: read what the client sent (so that the
/// close is not a reset that loses the answer), answer `400`, linger briefly.
async fn answer_plain_http(mut stream: TcpStream) {
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(PLAIN_HTTP_LINGER, stream.read(&mut buf)).await;
    if stream.write_all(PLAIN_HTTP_400).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    let _ = tokio::time::timeout(PLAIN_HTTP_LINGER, async {
        while matches!(stream.read(&mut buf).await, Ok(1..)) {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::PLAIN_HTTP_400;

    #[test]
    fn the_plain_http_answer_says_its_length() {
        let text = std::str::from_utf8(PLAIN_HTTP_400).expect("ASCII");
        let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|n| n.parse::<usize>().ok());
        assert_eq!(length, Some(body.len()));
    }
}
