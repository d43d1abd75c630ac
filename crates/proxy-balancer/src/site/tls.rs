//! HTTPS on the listener, from mod_ssl's `SSLEngine`, `SSLCertificateFile`,
//! `SSLCertificateKeyFile`, `SSLCertificateChainFile`, `SSLProtocol`,
//! `SSLHonorCipherOrder`, `SSLVerifyClient` and `SSLCACertificateFile`: the certificates
//! are read when the site is built, and
//! [`Site::tls_for`](super::Site::tls_for) gives the [`ServerTls`] of a listening address.
//!
//! # Apache
//!
//! Seen on Apache 2.4.71, loopback, two `<VirtualHost 127.0.0.1:18501>` with
//! `SSLEngine On` and certificates for `a.test` and `b.test`: SNI `b.test` got b's
//! certificate, SNI `a.test` a's; an unknown SNI and no SNI got the first virtual host's
//! (the default of the address, AH02044 "No matching SSL virtual host for servername …
//! found (using default/first virtual host)"). mod_ssl's merge gives a virtual host the
//! main server's `SSLEngine` and certificate when it has none of its own.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::apache_config::{Config, SslFile, SslServer, SslVerifyClient};
use crate::server::{load_certified_key, ServerTls, ServerTlsError};

use super::vhost::VhostTable;
use super::SiteError;

/// One server's HTTPS: its certificate and how its handshake goes.
#[derive(Clone, Debug)]
struct ServerCert {
    key: Arc<CertifiedKey>,
    tls12: bool,
    tls13: bool,
    honor_cipher_order: bool,
    /// `Protocols`: the ALPN list offered (`None`: h2 and http/1.1).
    alpn: Option<Vec<Vec<u8>>>,
    /// `SSLVerifyClient optional|require`: the verifier, and what it was made from (to
    /// tell servers of one port apart).
    verify: Option<(Arc<dyn ClientCertVerifier>, SslVerifyClient, PathBuf)>,
}

impl ServerCert {
    /// What client certificates this server asks for, comparable between servers.
    fn verify_key(&self) -> Option<(SslVerifyClient, &Path)> {
        self.verify
            .as_ref()
            .map(|(_, level, ca)| (*level, ca.as_path()))
    }
}

/// The HTTPS of each server of a site (`[0]` the main server, `[i + 1]` the virtual host
/// `i`): `None` where `SSLEngine` is not On.
#[derive(Clone, Debug, Default)]
pub(super) struct SiteTls {
    servers: Vec<Option<ServerCert>>,
    /// The line of each server's `SSLEngine` (or of its `<VirtualHost>`), for messages.
    lines: Vec<u32>,
}

impl SiteTls {
    /// Reads the certificates of every server with `SSLEngine On`.
    ///
    /// # Errors
    ///
    /// `SSLEngine On` without `SSLCertificateFile`; a file that cannot be read or holds no
    /// certificate or key; a key that does not match its certificate: each at the
    /// directive's line and column.
    pub(super) fn load(config: &Config) -> Result<Self, SiteError> {
        let mut servers = Vec::with_capacity(config.virtual_hosts.len() + 1);
        let mut lines = Vec::with_capacity(config.virtual_hosts.len() + 1);
        for vhost in std::iter::once(None).chain((0..config.virtual_hosts.len()).map(Some)) {
            let ssl = config.host_settings(vhost).ssl;
            let line = vhost
                .and_then(|i| config.virtual_hosts.get(i))
                .map_or_else(|| ssl.engine.map_or(0, |(_, s)| s.line), |v| v.span.line);
            lines.push(line);
            servers.push(if ssl.is_on() {
                Some(server_cert(config, &ssl)?)
            } else {
                None
            });
        }
        Ok(Self { servers, lines })
    }

    /// Whether no server has `SSLEngine On`.
    pub(super) fn is_empty(&self) -> bool {
        self.servers.iter().all(Option::is_none)
    }

    /// The HTTPS of connections accepted on `listen`: `None` when the servers it reaches
    /// speak plain HTTP.
    pub(super) fn for_listen(
        &self,
        vhosts: &Arc<VhostTable>,
        listen: std::net::SocketAddr,
    ) -> Result<Option<ServerTls>, SiteError> {
        let servers = vhosts.servers_for(listen);
        let tls_of = |i: usize| self.servers.get(i).and_then(Option::as_ref);
        let line_of = |i: usize| self.lines.get(i).copied().unwrap_or(0);
        if listen.ip().is_unspecified() {
            // A virtual host of an exact address is reached through this listener too, but
            // the handshake is the `*` servers': one with SSLEngine On would be served with
            // another's certificate, or in clear.
            if let Some(&exact) = vhosts
                .exact_ip_servers(listen.port())
                .iter()
                .find(|&&i| tls_of(i).is_some())
            {
                return Err(SiteError::Unsupported {
                    line: line_of(exact),
                    reason: format!(
                        "this <VirtualHost> of an IP address has SSLEngine On, and {listen} reaches it through a listener of any address, whose TLS is decided by the <VirtualHost *> servers: listen on its address"
                    ),
                });
            }
        }
        let default = servers.first().copied().unwrap_or(0);
        let Some(first) = tls_of(default) else {
            // A plain default: an SSL virtual host beside it would be served in clear.
            if let Some(&ssl) = servers.iter().find(|&&i| tls_of(i).is_some()) {
                return Err(SiteError::Unsupported {
                    line: line_of(ssl),
                    reason: format!(
                        "this <VirtualHost> has SSLEngine On, but the first server of {listen} (line {}) does not: a port speaks TLS or not as its first (default) virtual host says (as Apache decides it); give them different ports, or SSLEngine On to every one",
                        line_of(default)
                    ),
                });
            }
            return Ok(None);
        };
        if let Some(&plain) = servers.iter().find(|&&i| tls_of(i).is_none()) {
            return Err(SiteError::Unsupported {
                line: line_of(plain),
                reason: format!(
                    "this server has no SSLEngine On, but shares {listen} with servers that speak TLS (the first on line {}): its clients would be served over TLS with another's certificate; give it its own port, or SSLEngine On and a certificate",
                    line_of(default)
                ),
            });
        }
        // One handshake per port: servers asking differently for client certificates
        // cannot share it (the one that requires them would fail open for the others'
        // clients).
        if let Some(&other) = servers
            .iter()
            .find(|&&i| tls_of(i).map(ServerCert::verify_key) != Some(first.verify_key()))
        {
            return Err(SiteError::Unsupported {
                line: line_of(other),
                reason: format!(
                    "this server's SSLVerifyClient/SSLCACertificateFile differ from those of the first server of {listen} (line {}): client certificates are asked for in the handshake, before the virtual host is known, so every server of a port must ask alike; give it its own port",
                    line_of(default)
                ),
            });
        }
        let by_name: Vec<(usize, Arc<CertifiedKey>)> = servers
            .iter()
            .filter_map(|&i| tls_of(i).map(|c| (i, Arc::clone(&c.key))))
            .collect();
        let resolver = SniResolver {
            vhosts: Arc::clone(vhosts),
            by_name,
            default: Arc::clone(&first.key),
        };
        // The default server's versions and order (rustls picks them before the SNI
        // lookup; OpenSSL keeps the first context's protocol options too).
        let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
            first.tls13.then_some(&rustls::version::TLS13),
            first.tls12.then_some(&rustls::version::TLS12),
        ]
        .into_iter()
        .flatten()
        .collect();
        let unsupported = |e: String| SiteError::Unsupported {
            line: line_of(default),
            reason: e,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| unsupported(ServerTlsError::Rustls(e).to_string()))?;
        let builder = match &first.verify {
            Some((verifier, ..)) => builder.with_client_cert_verifier(Arc::clone(verifier)),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(Arc::new(resolver));
        config.ignore_client_order = first.honor_cipher_order;
        match &first.alpn {
            // An empty list (`Protocols h2c`): no ALPN; clients speak HTTP/1.1.
            Some(alpn) if alpn.is_empty() => Ok(Some(ServerTls::from_arc(Arc::new(config)))),
            Some(alpn) => {
                config.alpn_protocols.clone_from(alpn);
                Ok(Some(ServerTls::new(config)))
            }
            None => Ok(Some(ServerTls::new(config))),
        }
    }
}

/// `SSLCertificateFile` and its key and chain, read; the directives' protocol settings.
fn server_cert(config: &Config, ssl: &SslServer) -> Result<ServerCert, SiteError> {
    let engine = ssl.engine.map(|(_, span)| span).unwrap_or_default();
    let Some(cert) = &ssl.certificate_file else {
        return Err(SiteError::Tls {
            line: engine.line,
            column: engine.column,
            reason: "SSLEngine On needs a certificate: add SSLCertificateFile (and SSLCertificateKeyFile) to this server (Apache: AH02572: Failed to configure at least one certificate and key)".to_owned(),
        });
    };
    let path = |file: &SslFile| resolve(config.server_root.as_deref(), &file.path);
    let key = ssl.certificate_key_file.as_ref();
    let chain = ssl.certificate_chain_file.as_ref();
    let loaded = load_certified_key(
        &path(cert),
        key.map(path).as_deref(),
        chain.map(path).as_deref(),
    );
    let key = loaded.map_err(|e| {
        // The line the error is about: the file that failed, else the certificate's.
        let span = match &e {
            ServerTlsError::Read { path: p, .. } | ServerTlsError::Pem { path: Some(p), .. } => {
                [Some(cert), key, chain]
                    .into_iter()
                    .flatten()
                    .find(|f| path(f) == *p)
                    .map_or(cert.span, |f| f.span)
            }
            ServerTlsError::KeyMismatch => key.map_or(cert.span, |k| k.span),
            _ => cert.span,
        };
        SiteError::Tls {
            line: span.line,
            column: span.column,
            reason: e.to_string(),
        }
    })?;
    let (tls12, tls13) = ssl.protocol.map_or((true, true), |p| (p.tls12, p.tls13));
    Ok(ServerCert {
        key: Arc::new(key),
        tls12,
        tls13,
        honor_cipher_order: ssl.honor_cipher_order.unwrap_or(false),
        alpn: ssl.protocols.map(|p| {
            [
                p.h2.then(|| b"h2".to_vec()),
                p.http11.then(|| b"http/1.1".to_vec()),
            ]
            .into_iter()
            .flatten()
            .collect()
        }),
        verify: client_verifier(config, ssl)?,
    })
}

/// `SSLVerifyClient optional|require` with `SSLCACertificateFile`: rustls's WebPKI client
/// verifier over those CAs.
#[allow(clippy::type_complexity)]
fn client_verifier(
    config: &Config,
    ssl: &SslServer,
) -> Result<Option<(Arc<dyn ClientCertVerifier>, SslVerifyClient, PathBuf)>, SiteError> {
    let Some((level, span)) = ssl.verify_client else {
        return Ok(None);
    };
    if level == SslVerifyClient::None {
        return Ok(None);
    }
    let Some(ca) = &ssl.ca_certificate_file else {
        return Err(SiteError::Tls {
            line: span.line,
            column: span.column,
            reason: "SSLVerifyClient needs the CAs client certificates must chain to: add SSLCACertificateFile (SSLCACertificatePath is not read)".to_owned(),
        });
    };
    let error = |reason: String| SiteError::Tls {
        line: ca.span.line,
        column: ca.span.column,
        reason,
    };
    let path = resolve(config.server_root.as_deref(), &ca.path);
    let pem =
        std::fs::read(&path).map_err(|e| error(format!("cannot read {}: {e}", path.display())))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| error(format!("{}: {e}", path.display())))?;
        roots.add(cert).map_err(|e| {
            error(format!(
                "{}: a CA certificate rustls cannot use: {e}",
                path.display()
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(error(format!(
            "{}: no certificate (-----BEGIN CERTIFICATE-----) in it",
            path.display()
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    let builder = if level == SslVerifyClient::Optional {
        builder.allow_unauthenticated()
    } else {
        builder
    };
    let verifier = builder
        .build()
        .map_err(|e| error(format!("{}: {e}", path.display())))?;
    Ok(Some((verifier, level, path)))
}

/// A file name as Apache's `ap_server_root_relative` reads it.
fn resolve(server_root: Option<&Path>, path: &Path) -> PathBuf {
    match server_root {
        Some(root) if path.is_relative() => root.join(path),
        _ => path.to_owned(),
    }
}

/// Picks the certificate by the client's SNI among the servers of the address, as
/// mod_ssl's `ssl_find_vhost`: the first whose `ServerName` or `ServerAlias` matches; no
/// SNI, or a name none has: the default (first) server's.
#[derive(Debug)]
struct SniResolver {
    vhosts: Arc<VhostTable>,
    by_name: Vec<(usize, Arc<CertifiedKey>)>,
    default: Arc<CertifiedKey>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let chosen = hello.server_name().and_then(|name| {
            let name = name.trim_end_matches('.').as_bytes();
            self.by_name
                .iter()
                .find(|(server, _)| self.vhosts.names(*server, name))
        });
        Some(Arc::clone(chosen.map_or(&self.default, |(_, key)| key)))
    }
}
