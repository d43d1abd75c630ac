//! TLS to members (`https://`, `wss://`, `h2://`) with rustls.

use std::fmt;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::connect::Alpn;

/// How the member client speaks TLS to a member: the rustls configuration (trust anchors,
/// client certificate, protocol versions), with the ALPN protocols set per connection.
///
/// [`TlsClient::system`] trusts the system's certificate store; [`TlsClient::new`] takes any
/// rustls [`ClientConfig`](rustls::ClientConfig).
///
/// ```no_run
/// use proxy_balancer::client::{ClientOptions, TlsClient};
///
/// let options = ClientOptions::new().with_tls(Some(TlsClient::system()?));
/// # drop(options);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct TlsClient {
    /// With ALPN `http/1.1`.
    http1: Arc<rustls::ClientConfig>,
    /// With ALPN `h2`.
    h2: Arc<rustls::ClientConfig>,
}

impl TlsClient {
    /// A client from a rustls configuration; its ALPN protocols are replaced per connection
    /// (`http/1.1`, or `h2` for `h2://` members).
    #[must_use]
    pub fn new(config: rustls::ClientConfig) -> Self {
        let mut http1 = config.clone();
        http1.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut h2 = config;
        h2.alpn_protocols = vec![b"h2".to_vec()];
        Self {
            http1: Arc::new(http1),
            h2: Arc::new(h2),
        }
    }

    /// A client that verifies members against the system's trust store (the certificates
    /// `rustls-native-certs` finds: `/etc/ssl/certs` on Debian), with SNI, no client
    /// certificate. Built once per process and shared.
    ///
    /// # Errors
    ///
    /// The system store has no certificate rustls can use.
    pub fn system() -> Result<Self, TlsError> {
        static SYSTEM: OnceLock<Result<TlsClient, TlsError>> = OnceLock::new();
        SYSTEM
            .get_or_init(|| {
                let found = rustls_native_certs::load_native_certs();
                let mut roots = rustls::RootCertStore::empty();
                let (added, _ignored) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(TlsError(format!(
                        "no usable certificate in the system's trust store{}",
                        found
                            .errors
                            .first()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    )));
                }
                let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|e| TlsError(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
                Ok(Self::new(config))
            })
            .clone()
    }

    /// The TLS handshake over `stream`, for `server_name` (the SNI and the name the
    /// certificate must carry), offering `alpn`.
    pub(crate) async fn connect(
        &self,
        server_name: &str,
        stream: TcpStream,
        alpn: Alpn,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let name = ServerName::try_from(server_name.to_owned()).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{server_name:?} is not a TLS server name: {e}"),
            )
        })?;
        let config = match alpn {
            Alpn::Http1 => &self.http1,
            Alpn::H2 => &self.h2,
        };
        tokio_rustls::TlsConnector::from(Arc::clone(config))
            .connect(name, stream)
            .await
    }
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient").finish_non_exhaustive()
    }
}

impl PartialEq for TlsClient {
    /// The same configuration (not an equal one).
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.http1, &other.http1)
    }
}

impl Eq for TlsClient {}

/// A TLS client cannot be made: the reason, in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsError(pub(crate) String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}
