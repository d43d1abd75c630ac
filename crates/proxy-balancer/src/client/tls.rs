//! TLS to members (`https://`, `wss://`, `h2://`) with rustls.
//!
//! [`TlsClient::builder`] makes the client from what Apache's `SSLProxy*` directives say:
//! trust anchors (the system store, a PEM bundle, a directory of PEM files), a client
//! certificate for mTLS, whether the member's certificate is verified, whether its name and
//! its dates are checked, and the protocol versions.
//!
//! | Apache | here |
//! | --- | --- |
//! | `SSLProxyVerify require` (or `optional`) | [`TlsClientBuilder::verify`]`(true)` (the default) |
//! | `SSLProxyVerify none` (or `optional_no_ca`) | [`TlsClientBuilder::verify`]`(false)`: the chain is not verified; the name and the dates still are, as Apache does |
//! | `SSLProxyCACertificateFile` / `…Path` | [`TlsClientBuilder::ca_file`] / [`TlsClientBuilder::ca_dir`] |
//! | `SSLProxyCheckPeerName`, `SSLProxyCheckPeerCN` | [`TlsClientBuilder::check_name`] |
//! | `SSLProxyCheckPeerExpire` | [`TlsClientBuilder::check_expiry`] (with the chain verified, the dates are checked anyway, as Apache) |
//! | `SSLProxyMachineCertificateFile` / `…ChainFile` | [`TlsClientBuilder::client_cert_file`] / [`TlsClientBuilder::client_chain_file`] |
//! | `SSLProxyProtocol` | [`TlsClientBuilder::versions`] (TLS 1.2 and 1.3: rustls has no older version) |
//! | `SSLProxyCARevocationFile` / `…Path`, `SSLProxyCARevocationCheck` | [`TlsClientBuilder::crl_file`], [`TlsClientBuilder::crl_dir`], [`TlsClientBuilder::crl_check`] |
//!
//! Whatever is turned off, the handshake's own signatures are always verified against the
//! member's certificate (the member proves it holds the certificate's key); with
//! verification off, anyone who can answer on the member's address with a certificate for
//! its name is taken for it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::connect::Alpn;

/// How the member client speaks TLS to a member: the rustls configuration (trust anchors,
/// client certificate, protocol versions), with the ALPN protocols set per connection.
///
/// [`TlsClient::system`] trusts the system's certificate store; [`TlsClient::builder`]
/// makes one from Apache's `SSLProxy*` settings; [`TlsClient::new`] takes any rustls
/// [`ClientConfig`](rustls::ClientConfig).
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

    /// A builder: by default the member's certificate is verified against the system's
    /// trust store, with its name and dates checked, TLS 1.2 and 1.3, no client
    /// certificate.
    ///
    /// ```
    /// use proxy_balancer::client::{TlsClient, TlsVersion};
    ///
    /// // A private CA's bundle, a client certificate for mTLS (certificate and key in one
    /// // PEM file, as Apache's SSLProxyMachineCertificateFile), TLS 1.3 only.
    /// let dir = std::env::temp_dir().join(format!("pb-tls-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let ca = rcgen::generate_simple_self_signed(vec!["ca.example".to_owned()])?;
    /// std::fs::write(dir.join("ca.pem"), ca.cert.pem())?;
    /// let me = rcgen::generate_simple_self_signed(vec!["proxy.example".to_owned()])?;
    /// std::fs::write(dir.join("me.pem"), me.cert.pem() + &me.key_pair.serialize_pem())?;
    ///
    /// let tls = TlsClient::builder()
    ///     .ca_file(dir.join("ca.pem"))
    ///     .client_cert_file(dir.join("me.pem"))
    ///     .versions(&[TlsVersion::Tls13])
    ///     .build()?;
    /// # drop(tls);
    ///
    /// // A file that is not there is an error that names it.
    /// let err = TlsClient::builder().ca_file(dir.join("missing.pem")).build().unwrap_err();
    /// assert!(err.to_string().contains("missing.pem"), "{err}");
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> TlsClientBuilder {
        TlsClientBuilder::default()
    }

    /// A client that verifies members against the system's trust store (the certificates
    /// `rustls-native-certs` finds: `/etc/ssl/certs` on Debian), with SNI, no client
    /// certificate. Built once per process and shared.
    ///
    /// # Errors
    ///
    /// The system store has no certificate rustls can use ([`TlsError::NoSystemRoots`]).
    pub fn system() -> Result<Self, TlsError> {
        static SYSTEM: OnceLock<Result<TlsClient, TlsError>> = OnceLock::new();
        SYSTEM
            .get_or_init(|| TlsClientBuilder::default().build())
            .clone()
    }

    /// The TLS handshake over `stream`, for `server_name` (the SNI, none for an IP address,
    /// and the name the certificate must carry), offering `alpn`.
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

impl TlsClient {
    /// [`connect`](Self::connect) with ALPN `http/1.1` (the health probes).
    #[cfg(feature = "health-probe")]
    pub(crate) async fn connect_http1(
        &self,
        server_name: &str,
        stream: TcpStream,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        self.connect(server_name, stream, Alpn::Http1).await
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

/// A TLS protocol version rustls speaks (Apache's `SSLProxyProtocol` names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsVersion {
    /// `TLSv1.2`.
    Tls12,
    /// `TLSv1.3`.
    Tls13,
}

/// Which certificates a revocation list is checked for (Apache's
/// `SSLProxyCARevocationCheck chain|leaf`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RevocationCheck {
    /// Every certificate of the chain; a certificate no list covers fails.
    Chain,
    /// The member's own certificate only; it fails if no list covers it.
    Leaf,
}

/// Builds a [`TlsClient`]; see [`TlsClient::builder`]. Files are read by
/// [`build`](Self::build).
#[derive(Clone, Debug)]
#[must_use]
pub struct TlsClientBuilder {
    system_roots: Option<bool>,
    ca_files: Vec<PathBuf>,
    ca_dirs: Vec<PathBuf>,
    ca_pems: Vec<Vec<u8>>,
    verify: bool,
    check_name: bool,
    check_expiry: bool,
    client_files: Vec<PathBuf>,
    client_dirs: Vec<PathBuf>,
    client_pem: Option<Vec<u8>>,
    chain_files: Vec<PathBuf>,
    versions: Vec<TlsVersion>,
    crl_files: Vec<PathBuf>,
    crl_dirs: Vec<PathBuf>,
    crl_check: Option<RevocationCheck>,
}

impl Default for TlsClientBuilder {
    fn default() -> Self {
        Self {
            system_roots: None,
            ca_files: Vec::new(),
            ca_dirs: Vec::new(),
            ca_pems: Vec::new(),
            verify: true,
            check_name: true,
            check_expiry: true,
            client_files: Vec::new(),
            client_dirs: Vec::new(),
            client_pem: None,
            chain_files: Vec::new(),
            versions: vec![TlsVersion::Tls12, TlsVersion::Tls13],
            crl_files: Vec::new(),
            crl_dirs: Vec::new(),
            crl_check: None,
        }
    }
}

impl TlsClientBuilder {
    /// Whether the system's trust store is trusted. By default it is when no CA file,
    /// directory or PEM is given, and not otherwise (Apache trusts only the configured CAs).
    pub fn system_roots(mut self, on: bool) -> Self {
        self.system_roots = Some(on);
        self
    }

    /// Trusts the CA certificates of a PEM bundle (`SSLProxyCACertificateFile`).
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_files.push(path.into());
        self
    }

    /// Trusts the CA certificates of every PEM file in a directory
    /// (`SSLProxyCACertificatePath`; OpenSSL's hash links are not needed, and files that hold
    /// no certificate are passed over).
    pub fn ca_dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_dirs.push(path.into());
        self
    }

    /// Trusts the CA certificates of PEM text.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pems.push(pem.into());
        self
    }

    /// Whether the member's certificate chain is verified against the trust anchors (on by
    /// default). Off is Apache's `SSLProxyVerify none`: any certificate is taken, its name
    /// and dates still checked unless turned off too.
    pub fn verify(mut self, on: bool) -> Self {
        self.verify = on;
        self
    }

    /// Whether the certificate must be for the member's host (on by default; Apache's
    /// `SSLProxyCheckPeerName`).
    pub fn check_name(mut self, on: bool) -> Self {
        self.check_name = on;
        self
    }

    /// Whether an expired or not yet valid member certificate is refused when the chain is
    /// not verified (on by default; Apache's `SSLProxyCheckPeerExpire`). With the chain
    /// verified ([`verify`](Self::verify)), the dates are part of the verification and are
    /// checked whatever this says, as Apache 2.4.71 does (`SSLProxyVerify require` with
    /// `SSLProxyCheckPeerExpire off` refused an expired certificate on loopback: OpenSSL's
    /// "certificate has expired").
    pub fn check_expiry(mut self, on: bool) -> Self {
        self.check_expiry = on;
        self
    }

    /// The client certificate for members that ask for one (mTLS), from a PEM file holding
    /// the certificate, its chain and its unencrypted private key (Apache's
    /// `SSLProxyMachineCertificateFile`), in any order: the certificate for the key is the
    /// client's, the others its chain.
    pub fn client_cert_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.client_files.push(path.into());
        self
    }

    /// As [`client_cert_file`](Self::client_cert_file) for every file of a directory
    /// (`SSLProxyMachineCertificatePath`); one certificate and key in all.
    pub fn client_cert_dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.client_dirs.push(path.into());
        self
    }

    /// As [`client_cert_file`](Self::client_cert_file), from PEM text.
    pub fn client_cert_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.client_pem = Some(pem.into());
        self
    }

    /// CA certificates sent after the client certificate
    /// (`SSLProxyMachineCertificateChainFile`).
    pub fn client_chain_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.chain_files.push(path.into());
        self
    }

    /// The protocol versions offered (TLS 1.2 and 1.3 by default).
    pub fn versions(mut self, versions: &[TlsVersion]) -> Self {
        self.versions = versions.to_vec();
        self
    }

    /// Certificate revocation lists, PEM (`SSLProxyCARevocationFile`).
    pub fn crl_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.crl_files.push(path.into());
        self
    }

    /// Every PEM revocation list in a directory (`SSLProxyCARevocationPath`).
    pub fn crl_dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.crl_dirs.push(path.into());
        self
    }

    /// Which certificates the revocation lists are checked for
    /// (`SSLProxyCARevocationCheck`; `None`, the default: not checked).
    pub fn crl_check(mut self, check: Option<RevocationCheck>) -> Self {
        self.crl_check = check;
        self
    }

    /// Reads the files and makes the client.
    ///
    /// # Errors
    ///
    /// A file cannot be read ([`TlsError::Read`]) or holds no usable PEM
    /// ([`TlsError::Pem`]), the client certificate has no key or several
    /// ([`TlsError::ClientCert`]), no trust anchor is left ([`TlsError::NoSystemRoots`],
    /// [`TlsError::Pem`]), no version is offered, or rustls refuses the result
    /// ([`TlsError::Config`]).
    pub fn build(self) -> Result<TlsClient, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
            (TlsVersion::Tls12, &rustls::version::TLS12),
            (TlsVersion::Tls13, &rustls::version::TLS13),
        ]
        .into_iter()
        .filter(|(v, _)| self.versions.contains(v))
        .map(|(_, v)| v)
        .collect();
        if versions.is_empty() {
            return Err(TlsError::Config(
                "no TLS version left to offer (rustls speaks TLS 1.2 and 1.3)".to_owned(),
            ));
        }
        let roots = self.roots()?;
        let crls = self.crls()?;
        let chain = if self.verify {
            let roots = Arc::new(roots.ok_or_else(|| {
                TlsError::Config("no trust anchor to verify members with".to_owned())
            })?);
            let mut verifier =
                WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider));
            if let Some(check) = self.crl_check {
                if crls.is_empty() {
                    return Err(TlsError::Config(
                        "revocation checking needs a revocation list (SSLProxyCARevocationFile or SSLProxyCARevocationPath)".to_owned(),
                    ));
                }
                verifier = verifier.with_crls(crls);
                if check == RevocationCheck::Leaf {
                    verifier = verifier.only_check_end_entity_revocation();
                }
            }
            Some(
                verifier
                    .build()
                    .map_err(|e| TlsError::Config(e.to_string()))?,
            )
        } else {
            None
        };
        let verifier = Arc::new(MemberVerifier {
            chain,
            check_name: self.check_name,
            check_expiry: self.check_expiry,
            algorithms: provider.signature_verification_algorithms,
        });
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&versions)
            .map_err(|e| TlsError::Config(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match self.client_cert()? {
            Some((certs, extra, key, path)) => {
                let certified = certified_key(&certs, &extra, &key, &provider)
                    .map_err(|reason| TlsError::ClientCert { path, reason })?;
                builder.with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(
                    certified,
                )))
            }
            None => builder.with_no_client_auth(),
        };
        Ok(TlsClient::new(config))
    }

    /// The trust anchors; `None` when verification is off and none were given.
    fn roots(&self) -> Result<Option<rustls::RootCertStore>, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        let given =
            !(self.ca_files.is_empty() && self.ca_dirs.is_empty() && self.ca_pems.is_empty());
        for path in &self.ca_files {
            let bytes = read(path)?;
            add_anchors(&mut roots, &bytes, Some(path))?;
        }
        for dir in &self.ca_dirs {
            let before = roots.len();
            for path in dir_files(dir)? {
                let bytes = read(&path)?;
                // Not every file of a CA directory is a certificate (CRLs, notes).
                let _ = add_anchors(&mut roots, &bytes, Some(&path));
            }
            if roots.len() == before {
                return Err(TlsError::Pem {
                    path: Some(dir.clone()),
                    reason: "no CA certificate in this directory".to_owned(),
                });
            }
        }
        for pem in &self.ca_pems {
            add_anchors(&mut roots, pem, None)?;
        }
        if self.system_roots.unwrap_or(!given) && (self.verify || given) {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 && !given {
                return Err(TlsError::NoSystemRoots(
                    found
                        .errors
                        .first()
                        .map(ToString::to_string)
                        .unwrap_or_else(|| "no certificate found".to_owned()),
                ));
            }
        }
        Ok((!roots.is_empty()).then_some(roots))
    }

    fn crls(&self) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
        let mut crls = Vec::new();
        for path in &self.crl_files {
            let found = pem_items(&read(path)?, SectionKind::Crl, Some(path))?;
            if found.is_empty() {
                return Err(TlsError::Pem {
                    path: Some(path.clone()),
                    reason: "no X509 CRL in this file".to_owned(),
                });
            }
            crls.extend(found.into_iter().map(CertificateRevocationListDer::from));
        }
        for dir in &self.crl_dirs {
            for path in dir_files(dir)? {
                if let Ok(found) = pem_items(&read(&path)?, SectionKind::Crl, Some(&path)) {
                    crls.extend(found.into_iter().map(CertificateRevocationListDer::from));
                }
            }
        }
        Ok(crls)
    }

    /// The client's certificates (the one for the key among them, in any order), the
    /// chain file's, the key, and the key's file, if a client certificate is configured.
    #[allow(clippy::type_complexity)]
    fn client_cert(
        &self,
    ) -> Result<
        Option<(
            Vec<CertificateDer<'static>>,
            Vec<CertificateDer<'static>>,
            PrivateKeyDer<'static>,
            Option<PathBuf>,
        )>,
        TlsError,
    > {
        let mut sources: Vec<(Vec<u8>, Option<PathBuf>)> = Vec::new();
        for path in &self.client_files {
            sources.push((read(path)?, Some(path.clone())));
        }
        for dir in &self.client_dirs {
            for path in dir_files(dir)? {
                sources.push((read(&path)?, Some(path)));
            }
        }
        if let Some(pem) = &self.client_pem {
            sources.push((pem.clone(), None));
        }
        if sources.is_empty() {
            if let Some(path) = self.chain_files.first() {
                return Err(TlsError::ClientCert {
                    path: Some(path.clone()),
                    reason: "a certificate chain without a client certificate".to_owned(),
                });
            }
            return Ok(None);
        }
        let mut chain = Vec::new();
        let mut key: Option<(PrivateKeyDer<'static>, Option<PathBuf>)> = None;
        for (bytes, path) in &sources {
            if String::from_utf8_lossy(bytes).contains("ENCRYPTED") {
                return Err(TlsError::ClientCert {
                    path: path.clone(),
                    reason:
                        "the private key is encrypted: it must be unencrypted, as Apache requires"
                            .to_owned(),
                });
            }
            let certs = pem_items(bytes, SectionKind::Certificate, path.as_deref())?;
            let mut keys = Vec::new();
            for item in <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(bytes) {
                let (kind, der) = item.map_err(|e| pem_error(path.as_deref(), &e))?;
                let k = match kind {
                    SectionKind::PrivateKey => PrivateKeyDer::Pkcs8(der.into()),
                    SectionKind::RsaPrivateKey => PrivateKeyDer::Pkcs1(der.into()),
                    SectionKind::EcPrivateKey => PrivateKeyDer::Sec1(der.into()),
                    _ => continue,
                };
                keys.push(k);
            }
            if certs.is_empty() && keys.is_empty() && path.is_some() && !self.client_dirs.is_empty()
            {
                continue; // a file of the directory that holds neither
            }
            chain.extend(certs.into_iter().map(CertificateDer::from));
            for k in keys {
                if let Some((_, first)) = &key {
                    return Err(TlsError::ClientCert {
                        path: path.clone().or_else(|| first.clone()),
                        reason: "more than one private key: one client certificate and its key are supported".to_owned(),
                    });
                }
                key = Some((k, path.clone()));
            }
        }
        let Some((key, key_path)) = key else {
            return Err(TlsError::ClientCert {
                path: sources.first().and_then(|(_, p)| p.clone()),
                reason:
                    "no private key (the file must hold the certificate and its unencrypted key)"
                        .to_owned(),
            });
        };
        if chain.is_empty() {
            return Err(TlsError::ClientCert {
                path: key_path,
                reason: "no certificate for the private key".to_owned(),
            });
        }
        let key_path = key_path.or_else(|| sources.first().and_then(|(_, p)| p.clone()));
        let mut extra = Vec::new();
        for path in &self.chain_files {
            let certs = pem_items(&read(path)?, SectionKind::Certificate, Some(path))?;
            if certs.is_empty() {
                return Err(TlsError::Pem {
                    path: Some(path.clone()),
                    reason: "no certificate in this file".to_owned(),
                });
            }
            extra.extend(certs.into_iter().map(CertificateDer::from));
        }
        Ok(Some((chain, extra, key, key_path)))
    }
}

/// The client's certified key: the certificate of `certs` whose public key is the key's
/// first (Apache takes the certificate and the key in either order, and CA certificates
/// beside them), the others of `certs` then `extra` after it.
fn certified_key(
    certs: &[CertificateDer<'static>],
    extra: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
    provider: &CryptoProvider,
) -> Result<rustls::sign::CertifiedKey, String> {
    let mut last = String::from("no certificate");
    for i in 0..certs.len() {
        let mut chain = Vec::with_capacity(certs.len() + extra.len());
        chain.push(certs[i].clone());
        chain.extend(
            certs
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, c)| c.clone()),
        );
        chain.extend(extra.iter().cloned());
        match rustls::sign::CertifiedKey::from_der(chain, key.clone_key(), provider) {
            Ok(certified) => return Ok(certified),
            Err(e) => last = e.to_string(),
        }
    }
    Err(format!("no certificate matches the private key ({last})"))
}

/// Reads a whole file.
fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// The regular files of a directory (following links), sorted by name.
fn dir_files(dir: &Path) -> Result<Vec<PathBuf>, TlsError> {
    let entries = std::fs::read_dir(dir).map_err(|e| TlsError::Read {
        path: dir.to_owned(),
        reason: e.to_string(),
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

fn pem_error(path: Option<&Path>, error: &rustls::pki_types::pem::Error) -> TlsError {
    TlsError::Pem {
        path: path.map(Path::to_owned),
        reason: format!("not valid PEM: {error}"),
    }
}

/// The DER of every PEM section of `kind`.
fn pem_items(
    bytes: &[u8],
    kind: SectionKind,
    path: Option<&Path>,
) -> Result<Vec<Vec<u8>>, TlsError> {
    let mut out = Vec::new();
    for item in <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(bytes) {
        let (k, der) = item.map_err(|e| pem_error(path, &e))?;
        if k == kind {
            out.push(der);
        }
    }
    Ok(out)
}

/// Adds every certificate of a PEM text as a trust anchor; at least one must be usable.
fn add_anchors(
    roots: &mut rustls::RootCertStore,
    bytes: &[u8],
    path: Option<&Path>,
) -> Result<(), TlsError> {
    let certs = pem_items(bytes, SectionKind::Certificate, path)?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.map(Path::to_owned),
            reason: "no certificate (-----BEGIN CERTIFICATE-----) in it".to_owned(),
        });
    }
    for der in certs {
        roots
            .add(CertificateDer::from(der))
            .map_err(|e| TlsError::Pem {
                path: path.map(Path::to_owned),
                reason: format!("a certificate rustls cannot use as a trust anchor: {e}"),
            })?;
    }
    Ok(())
}

/// Verifies a member's certificate as the settings say (see the module docs); the
/// handshake's signatures are always verified.
#[derive(Debug)]
struct MemberVerifier {
    /// The chain verifier; `None`: the chain is not verified (`SSLProxyVerify none`).
    chain: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
    check_expiry: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for MemberVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The certificate must at least parse (whatever is checked).
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        let Some(chain) = &self.chain else {
            if self.check_expiry {
                let (not_before, not_after) = validity(end_entity.as_ref()).ok_or(
                    rustls::Error::InvalidCertificate(CertificateError::BadEncoding),
                )?;
                if now.as_secs() < not_before {
                    return Err(rustls::Error::InvalidCertificate(
                        CertificateError::NotValidYet,
                    ));
                }
                if now.as_secs() > not_after {
                    return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
                }
            }
            if self.check_name {
                rustls::client::verify_server_name(&parsed, server_name)?;
            }
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            // The name is checked last, once the chain is verified.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        false
    }
}

// ===== a certificate's validity, from its DER =====

/// One DER element at the start of `der`: (tag, content, rest).
fn der_element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, after) = rest.split_at(n);
        rest = after;
        bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    if rest.len() < len {
        return None;
    }
    let (content, after) = rest.split_at(len);
    Some((tag, content, after))
}

/// `notBefore` and `notAfter` of an X.509 certificate, in seconds since the epoch; `None`
/// if the DER is not a certificate.
fn validity(der: &[u8]) -> Option<(u64, u64)> {
    let (0x30, cert, _) = der_element(der)? else {
        return None;
    };
    let (0x30, tbs, _) = der_element(cert)? else {
        return None;
    };
    let mut rest = tbs;
    let (tag, _, after) = der_element(rest)?;
    if tag == 0xa0 {
        rest = after; // version
    }
    for _ in 0..3 {
        // serialNumber, signature, issuer
        rest = der_element(rest)?.2;
    }
    let (0x30, times, _) = der_element(rest)? else {
        return None;
    };
    let (t1, not_before, after) = der_element(times)?;
    let (t2, not_after, _) = der_element(after)?;
    Some((der_time(t1, not_before)?, der_time(t2, not_after)?))
}

/// A UTCTime (`YYMMDDHHMMSSZ`, tag 0x17) or GeneralizedTime (`YYYYMMDDHHMMSSZ`, tag 0x18).
fn der_time(tag: u8, text: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |s: &str| s.parse::<u64>().ok();
    let (year, rest) = match (tag, text.len()) {
        (0x17, 12) => {
            let yy = num(&text[..2])?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        (0x18, 14) => (num(&text[..4])?, &text[4..]),
        _ => return None,
    };
    let (month, day) = (num(&rest[..2])?, num(&rest[2..4])?);
    let (hour, minute, second) = (num(&rest[4..6])?, num(&rest[6..8])?, num(&rest[8..10])?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
        || year < 1970
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

/// A TLS client cannot be made: which file, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsError {
    /// A file or directory cannot be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The system's reason.
        reason: String,
    },
    /// PEM text that is not valid, or holds nothing usable.
    Pem {
        /// The file, if the PEM came from one.
        path: Option<PathBuf>,
        /// What is wrong.
        reason: String,
    },
    /// The client certificate (mTLS) is unusable: no key, several, an encrypted one.
    ClientCert {
        /// The file, if known.
        path: Option<PathBuf>,
        /// What is wrong.
        reason: String,
    },
    /// The system's trust store has no usable certificate.
    NoSystemRoots(String),
    /// rustls refuses the configuration (no version left, no trust anchor …).
    Config(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| format!("{}: ", p.display()))
                .unwrap_or_default()
        };
        match self {
            Self::Read { path, reason } => write!(f, "cannot read {}: {reason}", path.display()),
            Self::Pem { path, reason } => write!(f, "{}{reason}", place(path)),
            Self::ClientCert { path, reason } => {
                write!(f, "{}client certificate: {reason}", place(path))
            }
            Self::NoSystemRoots(why) => {
                write!(
                    f,
                    "no usable certificate in the system's trust store: {why}"
                )
            }
            Self::Config(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for TlsError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(der_time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(der_time(0x18, b"20000301000000Z"), Some(951_868_800));
        assert_eq!(der_time(0x17, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(der_time(0x17, b"4912312359Z"), None);
        assert_eq!(der_time(0x18, b"2000130100000Z"), None);
        assert_eq!(der_time(0x17, b"70010100000xZ"), None);
    }

    #[test]
    fn validity_of_a_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["a.example".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2001, 2, 3);
        params.not_after = rcgen::date_time_ymd(2030, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(validity(cert.der()), Some((981_158_400, 1_893_456_000)));
        assert_eq!(validity(b"\x30\x03\x02\x01\x00"), None);
        assert_eq!(validity(b""), None);
        assert_eq!(validity(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }

    #[test]
    fn builder_errors_name_the_file() {
        let err = TlsClient::builder()
            .ca_pem(b"not pem".to_vec())
            .build()
            .unwrap_err();
        assert!(matches!(err, TlsError::Pem { .. }), "{err}");
        let err = TlsClient::builder().versions(&[]).build().unwrap_err();
        assert!(matches!(err, TlsError::Config(_)), "{err}");
        let key = rcgen::KeyPair::generate().unwrap();
        let err = TlsClient::builder()
            .client_cert_pem(key.serialize_pem())
            .build()
            .unwrap_err();
        assert!(matches!(err, TlsError::ClientCert { .. }), "{err}");
    }
}
