//! TLS to members (issue #15, section 1): `https://` members reached over rustls, from
//! Apache's `SSLProxy*` directives (through `Site::from_config`) and from the library API
//! (`TlsClient::builder`). The members are rustls (tokio-rustls) HTTP/1.1 servers on
//! 127.0.0.1:0 with certificates made at test time by rcgen.
//!
//! What Apache 2.4.71 did on loopback (mod_ssl, an https backend served by Apache itself with
//! a certificate for `localhost` signed by a test CA made with openssl; proxy vhosts on
//! 127.0.0.1:18110-18116):
//!
//! * no `SSLProxyEngine`, `ProxyPass / https://localhost:18101/` (and a balancer of one
//!   https member): `apache2 -t` says Syntax OK and Apache starts; each request gets a
//!   **500**, the error log says `AH01961: failed to enable ssl support [Hint: if using
//!   mod_ssl, see SSLProxyEngine]` and `AH00961: https: failed to enable ssl support for
//!   127.0.0.1:18101 (localhost)`. Here the site refuses to start instead (line and column
//!   of the member, AH00961 named): the same mistake, said once, before traffic.
//! * `SSLProxyEngine on`, no `SSLProxyVerify` (Apache's default `none`): 200, the test CA
//!   unknown to Apache. Here an unset `SSLProxyVerify` verifies (safer): the same member
//!   fails until its CA is given or `SSLProxyVerify none` is written.
//! * `SSLProxyVerify require` with `SSLProxyCACertificateFile` of another CA: **500**, the
//!   log says `AH02276: Certificate Verification: Error (20): unable to get local issuer
//!   certificate`, `AH02003: SSL Proxy connect failed`, `AH00898: Error during SSL Handshake
//!   with remote server`. With the right CA: 200.
//! * `SSLProxyVerify` unset (none) and a member certificate for `other.example` reached as
//!   `https://localhost`: **500**, `AH02411: SSL Proxy: Peer certificate does not match for
//!   hostname localhost`: the name is checked even without verification (so it is here).
//! * `SSLProxyVerify require`, the right CA, `SSLProxyCheckPeerName off`, the
//!   `other.example` certificate: 200.
//!
//! * a balancer of a member whose certificate is for another name and a good one (verify
//!   none): the first request **500** (AH02411, AH00898), the bad member then in error and
//!   the next requests 200: Apache does not fail over on a failed handshake.
//!
//! Here a failed handshake is a connect error: the member goes into error (`E`) and the
//! request fails over to another member, so no client sees it (safer than Apache's 500).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use parking_lot::Mutex;
use proxy_balancer::apache_config::parse;
use proxy_balancer::client::{ClientOptions, MakeHttpMember, TlsClient};
use proxy_balancer::server::{Server, ServerHandle};
use proxy_balancer::site::{Site, SiteError};
use proxy_balancer::{Balancer, BalancerParams, BalancerStore, MemberParams, StatusFlags};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tower::ServiceExt;

/// Every wait in these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(10);

// ===== certificates =====

/// A CA made by rcgen.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("CA");
        Self { cert, key }
    }

    /// A certificate for `names` (DNS names or IP addresses), signed by this CA: (chain PEM,
    /// key PEM).
    fn issue(&self, names: &[&str]) -> (String, String) {
        self.issue_dated(names, None)
    }

    /// As [`Ca::issue`], valid only from January 1st of the first year to that of the
    /// second, when given.
    fn issue_dated(&self, names: &[&str], years: Option<(i32, i32)>) -> (String, String) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("params");
        if let Some((from, to)) = years {
            params.not_before = rcgen::date_time_ymd(from, 1, 1);
            params.not_after = rcgen::date_time_ymd(to, 1, 1);
        }
        let key = KeyPair::generate().expect("key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("signed");
        (cert.pem(), key.serialize_pem())
    }

    fn pem(&self) -> String {
        self.cert.pem()
    }
}

/// A directory for this test's PEM files, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("pb-tls-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ===== the TLS member =====

/// A rustls HTTP/1.1 server on 127.0.0.1:0 answering every request `200` with its name as
/// the body (`/health` answers 503 while `healthy` is false). It records the SNI of each
/// handshake and counts the failed ones.
struct TlsMember {
    addr: SocketAddr,
    name: &'static str,
    sni: Arc<Mutex<Vec<Option<String>>>>,
    failed_handshakes: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    healthy: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Drop for TlsMember {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsMember {
    /// `cert`: (chain PEM, key PEM); `client_ca`: require a client certificate from it.
    async fn start(name: &'static str, cert: &(String, String), client_ca: Option<&Ca>) -> Self {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.0.as_bytes())
            .collect::<Result<_, _>>()
            .expect("chain");
        let key = PrivateKeyDer::from_pem_slice(cert.1.as_bytes()).expect("key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .expect("versions");
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(ca.cert.der().clone()).expect("root");
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .expect("verifier");
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(chain, key).expect("server config");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("bound");
        let sni = Arc::new(Mutex::new(Vec::new()));
        let failed_handshakes = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let healthy = Arc::new(AtomicBool::new(true));
        let (s, f, r, h) = (
            Arc::clone(&sni),
            Arc::clone(&failed_handshakes),
            Arc::clone(&requests),
            Arc::clone(&healthy),
        );
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, s, f, r, h) = (
                    acceptor.clone(),
                    Arc::clone(&s),
                    Arc::clone(&f),
                    Arc::clone(&r),
                    Arc::clone(&h),
                );
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        f.fetch_add(1, Ordering::SeqCst);
                        return;
                    };
                    s.lock()
                        .push(tls.get_ref().1.server_name().map(str::to_owned));
                    serve_http1(&mut tls, name, &r, &h).await;
                });
            }
        });
        Self {
            addr,
            name,
            sni,
            failed_handshakes,
            requests,
            healthy,
            task,
        }
    }

    /// `https://localhost:PORT`.
    fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }
}

/// Answers the requests of one connection (heads only: the tests send no bodies).
async fn serve_http1<S>(stream: &mut S, name: &str, requests: &AtomicUsize, healthy: &AtomicBool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        buf.drain(..end);
        requests.fetch_add(1, Ordering::SeqCst);
        let status = if head.starts_with("get /health") && !healthy.load(Ordering::SeqCst) {
            "503 Service Unavailable"
        } else {
            "200 OK"
        };
        let close = head.contains("connection: close");
        let answer = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{}\r\n{name}",
            name.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        if stream.write_all(answer.as_bytes()).await.is_err() || close {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

// ===== the proxy =====

async fn serve(text: &str) -> (ServerHandle, Site) {
    let config = parse(text).expect("a valid config");
    let site = Site::from_config(&config).expect("buildable");
    let handle = Server::new()
        .listen("127.0.0.1:0".parse().expect("addr"), site.clone())
        .await
        .expect("a loopback port");
    (handle, site)
}

/// `GET path` through the proxy: (status, body).
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    timeout(BOUND, async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out).await;
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
        (status, body)
    })
    .await
    .expect("answered in time")
}

/// The flags of the member whose URL has this port, in the site's first store.
fn flags(site: &Site, port: u16) -> StatusFlags {
    let snapshot = site.stores()[0].snapshot();
    snapshot
        .members()
        .iter()
        .find(|m| m.url().ends_with(&format!(":{port}")))
        .map(|m| m.flags())
        .expect("the member")
}

// ===== through Site::from_config =====

/// `SSLProxyVerify require` with the members' CA: the request passes, over TLS, with the
/// member's host as SNI.
#[tokio::test]
async fn verified_member_with_sni() {
    let ca = Ca::new("test CA");
    let member = TlsMember::start("m1", &ca.issue(&["localhost"]), None).await;
    let dir = Dir::new("verified");
    let ca_file = dir.write("ca.pem", &ca.pem());
    let (proxy, _site) = serve(&format!(
        "SSLProxyEngine On\nSSLProxyVerify require\nSSLProxyCACertificateFile {ca_file}\n\
         ProxyPass / {}/\n",
        member.url()
    ))
    .await;
    assert_eq!(get(proxy.local_addr(), "/a").await, (200, "m1".to_owned()));
    assert_eq!(member.sni.lock().as_slice(), [Some("localhost".to_owned())]);
    // Unset SSLProxyVerify verifies too (against the CA file given).
    let (unset, _site) = serve(&format!(
        "SSLProxyEngine On\nSSLProxyCACertificateFile {ca_file}\nProxyPass / {}/\n",
        member.url()
    ))
    .await;
    assert_eq!(get(unset.local_addr(), "/b").await, (200, "m1".to_owned()));
    proxy.shutdown().await.expect("stops");
    unset.shutdown().await.expect("stops");
}

/// A member whose certificate comes from another CA fails its handshake: a connect error,
/// the member in error, every request served by the good member (no client error).
#[tokio::test]
async fn wrong_ca_is_refused_and_fails_over() {
    let ca = Ca::new("test CA");
    let other = Ca::new("other CA");
    let bad = TlsMember::start("bad", &other.issue(&["localhost"]), None).await;
    let good = TlsMember::start("good", &ca.issue(&["localhost"]), None).await;
    let dir = Dir::new("wrongca");
    let ca_file = dir.write("ca.pem", &ca.pem());
    let (proxy, site) = serve(&format!(
        "SSLProxyEngine On\nSSLProxyVerify require\nSSLProxyCACertificateFile {ca_file}\n\
         <Proxy balancer://app>\n  BalancerMember {}\n  BalancerMember {}\n</Proxy>\n\
         ProxyPass / balancer://app/\n",
        bad.url(),
        good.url()
    ))
    .await;
    for i in 0..6 {
        assert_eq!(
            get(proxy.local_addr(), &format!("/{i}")).await,
            (200, "good".to_owned()),
            "request {i}"
        );
    }
    assert!(
        flags(&site, bad.addr.port()).contains(StatusFlags::IN_ERROR),
        "{:?}",
        flags(&site, bad.addr.port())
    );
    assert!(flags(&site, good.addr.port()).is_empty());
    assert_eq!(bad.requests.load(Ordering::SeqCst), 0, "nothing sent to it");
    assert!(bad.failed_handshakes.load(Ordering::SeqCst) >= 1);
    proxy.shutdown().await.expect("stops");
}

/// `SSLProxyVerify none` is Apache's behaviour: a certificate of an unknown CA passes, one
/// for another name does not (the name is still checked); unset verifies.
#[tokio::test]
async fn verify_none_and_unset() {
    let unknown = Ca::new("unknown CA");
    let member = TlsMember::start("m", &unknown.issue(&["localhost"]), None).await;
    let misnamed = TlsMember::start("x", &unknown.issue(&["other.example"]), None).await;
    let (none, _s1) = serve(&format!(
        "SSLProxyEngine On\nSSLProxyVerify none\nProxyPass /m/ {}/\nProxyPass /x/ {}/\n",
        member.url(),
        misnamed.url()
    ))
    .await;
    assert_eq!(get(none.local_addr(), "/m/").await, (200, "m".to_owned()));
    let (status, _) = get(none.local_addr(), "/x/").await;
    assert!(status >= 500, "a certificate for another name: {status}");
    assert_eq!(misnamed.requests.load(Ordering::SeqCst), 0);
    // Unset: verified against the system's store, which does not know this CA (a machine
    // without a store refuses the site instead, saying so).
    let text = format!("SSLProxyEngine On\nProxyPass / {}/\n", member.url());
    let config = parse(&text).expect("parses");
    match Site::from_config(&config) {
        Ok(site) => {
            let unset = Server::new()
                .listen("127.0.0.1:0".parse().expect("addr"), site)
                .await
                .expect("a loopback port");
            let (status, _) = get(unset.local_addr(), "/").await;
            assert!(
                status >= 500,
                "unknown CA with SSLProxyVerify unset: {status}"
            );
            unset.shutdown().await.expect("stops");
        }
        Err(e) => assert!(e.to_string().contains("trust store"), "{e}"),
    }
    none.shutdown().await.expect("stops");
}

/// `SSLProxyCheckPeerName off` takes a certificate for another name (chain verified);
/// on (the default), it is refused.
#[tokio::test]
async fn check_peer_name_off() {
    let ca = Ca::new("test CA");
    let member = TlsMember::start("other", &ca.issue(&["other.example"]), None).await;
    let dir = Dir::new("peername");
    let ca_file = dir.write("ca.pem", &ca.pem());
    let base =
        format!("SSLProxyEngine On\nSSLProxyVerify require\nSSLProxyCACertificateFile {ca_file}\n");
    let (off, _s1) = serve(&format!(
        "{base}SSLProxyCheckPeerName off\nProxyPass / {}/\n",
        member.url()
    ))
    .await;
    assert_eq!(get(off.local_addr(), "/").await, (200, "other".to_owned()));
    let (on, _s2) = serve(&format!("{base}ProxyPass / {}/\n", member.url())).await;
    let (status, _) = get(on.local_addr(), "/").await;
    assert!(status >= 500, "{status}");
    off.shutdown().await.expect("stops");
    on.shutdown().await.expect("stops");
}

/// `SSLProxy*` in a `<Proxy "balancer://…">` section apply to its members over the
/// server's. Apache 2.4.71 on loopback: `SSLProxyVerify require` and the CA in the
/// `<VirtualHost>`, `SSLProxyEngine on` and `SSLProxyCheckPeerName off` in the section, a
/// member certificate for `other.example`: 200; a section's `SSLProxyCACertificateFile`
/// replacing the server's (of another CA): 200.
#[tokio::test]
async fn proxy_section_settings() {
    let ca = Ca::new("test CA");
    let other = Ca::new("other CA");
    let misnamed = TlsMember::start("x", &ca.issue(&["other.example"]), None).await;
    let member = TlsMember::start("m", &ca.issue(&["localhost"]), None).await;
    let dir = Dir::new("section");
    let ca_file = dir.write("ca.pem", &ca.pem());
    let other_file = dir.write("other.pem", &other.pem());
    let (proxy, _site) = serve(&format!(
        "SSLProxyVerify require\nSSLProxyCACertificateFile {other_file}\n\
         <Proxy balancer://x>\n  SSLProxyEngine on\n  SSLProxyCheckPeerName off\n  \
         SSLProxyCACertificateFile {ca_file}\n  BalancerMember {}\n</Proxy>\n\
         <Proxy balancer://m>\n  SSLProxyEngine on\n  SSLProxyCACertificateFile {ca_file}\n  \
         BalancerMember {}\n</Proxy>\n\
         ProxyPass /x/ balancer://x/\nProxyPass /m/ balancer://m/\n",
        misnamed.url(),
        member.url()
    ))
    .await;
    assert_eq!(get(proxy.local_addr(), "/x/").await, (200, "x".to_owned()));
    assert_eq!(get(proxy.local_addr(), "/m/").await, (200, "m".to_owned()));
    proxy.shutdown().await.expect("stops");
    // Without the section's CA, the server's (another CA) refuses the member.
    let (proxy, _site) = serve(&format!(
        "SSLProxyVerify require\nSSLProxyCACertificateFile {other_file}\n\
         <Proxy balancer://m>\n  SSLProxyEngine on\n  BalancerMember {}\n</Proxy>\n\
         ProxyPass / balancer://m/\n",
        member.url()
    ))
    .await;
    let (status, _) = get(proxy.local_addr(), "/").await;
    assert!(status >= 500, "{status}");
    proxy.shutdown().await.expect("stops");
}

/// A member the balancer-manager adds (`BalancerGrowth`) is reached with the TLS client the
/// configuration's TLS members share.
#[tokio::test]
async fn added_member_gets_the_shared_client() {
    let ca = Ca::new("test CA");
    let first = TlsMember::start("first", &ca.issue(&["localhost"]), None).await;
    let added = TlsMember::start("added", &ca.issue(&["localhost"]), None).await;
    let dir = Dir::new("growth");
    let ca_file = dir.write("ca.pem", &ca.pem());
    let (proxy, site) = serve(&format!(
        "BalancerGrowth 1\nSSLProxyEngine On\nSSLProxyCACertificateFile {ca_file}\n\
         <Proxy balancer://app>\n  BalancerMember {}\n</Proxy>\nProxyPass / balancer://app/\n",
        first.url()
    ))
    .await;
    let store = &site.stores()[0];
    store
        .add_member(MemberParams::new(&added.url()).expect("url"))
        .expect("room for one");
    store.snapshot().members()[0]
        .state()
        .insert_flags(StatusFlags::DISABLED);
    assert_eq!(
        get(proxy.local_addr(), "/").await,
        (200, "added".to_owned())
    );
    proxy.shutdown().await.expect("stops");
}

/// An expired member certificate. Apache 2.4.71 on loopback (a certificate valid in 2020
/// only, signed by the test CA): `SSLProxyVerify` unset (none): 500, `AH02004: SSL Proxy:
/// Peer certificate is expired`; with `SSLProxyCheckPeerExpire off`: 200; `SSLProxyVerify
/// require` with the CA: 500 (`AH02276: … certificate has expired`), and still 500 with
/// `SSLProxyCheckPeerExpire off` (OpenSSL's verification checks the dates). The same here.
#[tokio::test]
async fn expired_certificate() {
    let ca = Ca::new("test CA");
    let member = TlsMember::start(
        "old",
        &ca.issue_dated(&["localhost"], Some((2020, 2021))),
        None,
    )
    .await;
    let dir = Dir::new("expired");
    let ca_file = dir.write("ca.pem", &ca.pem());
    let cases = [
        ("SSLProxyVerify none\n", false),
        ("SSLProxyVerify none\nSSLProxyCheckPeerExpire off\n", true),
        ("SSLProxyVerify require\n", false),
        (
            "SSLProxyVerify require\nSSLProxyCheckPeerExpire off\n",
            false,
        ),
    ];
    for (lines, passes) in cases {
        let (proxy, _site) = serve(&format!(
            "SSLProxyEngine On\nSSLProxyCACertificateFile {ca_file}\n{lines}ProxyPass / {}/\n",
            member.url()
        ))
        .await;
        let (status, body) = get(proxy.local_addr(), "/").await;
        if passes {
            assert_eq!((status, body.as_str()), (200, "old"), "{lines}");
        } else {
            assert!(status >= 500, "{lines}: {status}");
        }
        proxy.shutdown().await.expect("stops");
    }
}

/// A member that requires a client certificate: without `SSLProxyMachineCertificateFile`
/// the handshake fails; with it (certificate and key in one PEM file, as Apache's), the
/// request passes.
#[tokio::test]
async fn mutual_tls() {
    let ca = Ca::new("test CA");
    let clients = Ca::new("client CA");
    let member = TlsMember::start("mtls", &ca.issue(&["localhost"]), Some(&clients)).await;
    let dir = Dir::new("mtls");
    let ca_file = dir.write("ca.pem", &ca.pem());
    let (cert, key) = clients.issue(&["proxy.example"]);
    // Key first, a CA certificate, then the client's: Apache takes any order.
    let machine = dir.write("proxy.pem", &format!("{key}{}{cert}", clients.pem()));
    let base =
        format!("SSLProxyEngine On\nSSLProxyVerify require\nSSLProxyCACertificateFile {ca_file}\n");
    let (without, _s1) = serve(&format!("{base}ProxyPass / {}/\n", member.url())).await;
    let (status, _) = get(without.local_addr(), "/").await;
    assert!(status >= 500, "no client certificate: {status}");
    assert_eq!(member.requests.load(Ordering::SeqCst), 0);
    let (with, _s2) = serve(&format!(
        "{base}SSLProxyMachineCertificateFile {machine}\nProxyPass / {}/\n",
        member.url()
    ))
    .await;
    assert_eq!(get(with.local_addr(), "/").await, (200, "mtls".to_owned()));
    without.shutdown().await.expect("stops");
    with.shutdown().await.expect("stops");
}

/// An https member in a server without `SSLProxyEngine On` refuses the site (Apache: 500
/// per request, AH00961), with the member's line and column; `Site::validate` (`--check`)
/// says the same. In a `<VirtualHost>` that has it, the main server's balancer is fine.
#[tokio::test]
async fn https_member_without_engine_is_refused() {
    let text = "<Proxy balancer://app>\n  BalancerMember https://a.example\n</Proxy>\n\
                ProxyPass / balancer://app/\n";
    let config = parse(text).expect("parses");
    let err = Site::from_config(&config).expect_err("refused");
    assert!(
        matches!(
            err,
            SiteError::Tls {
                line: 2,
                column: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("AH00961"), "{err}");
    assert!(err.to_string().contains("SSLProxyEngine On"), "{err}");
    assert!(Site::validate(&config).is_err());
    let plain = parse("ProxyPass / https://a.example/\n").expect("parses");
    let err = Site::from_config(&plain).expect_err("refused");
    assert!(matches!(err, SiteError::Tls { line: 1, .. }), "{err:?}");
    let in_vhost = parse(
        "<Proxy balancer://app>\n  BalancerMember https://a.example\n</Proxy>\n\
         <VirtualHost *:443>\n  SSLProxyEngine On\n  ProxyPass / balancer://app/\n</VirtualHost>\n",
    )
    .expect("parses");
    Site::from_config(&in_vhost).expect("the vhost has SSLProxyEngine On");
}

/// A CA file that holds no certificate refuses the site with the directive's line and
/// column; one that is not there is a parse error at its place.
#[tokio::test]
async fn unusable_files_are_config_errors() {
    let dir = Dir::new("files");
    let junk = dir.write("junk.pem", "not a certificate\n");
    let config = parse(&format!(
        "SSLProxyEngine On\nSSLProxyCACertificateFile {junk}\nProxyPass / https://localhost:9/\n"
    ))
    .expect("parses");
    let err = Site::from_config(&config).expect_err("refused");
    assert!(
        matches!(
            err,
            SiteError::Tls {
                line: 2,
                column: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("junk.pem"), "{err}");
    let missing = dir.0.join("missing.pem");
    let err = parse(&format!(
        "SSLProxyEngine On\nSSLProxyCACertificateFile {}\n",
        missing.display()
    ))
    .expect_err("refused");
    let first = &err.errors()[0];
    assert_eq!((first.span.line, first.span.column), (2, 27), "{first}");
}

/// A probe over TLS (`hcmethod=GET`) takes a member out (`C`) when its health page fails
/// and back in when it passes; a member whose certificate is refused fails its probes.
#[tokio::test]
async fn probe_over_tls() {
    let ca = Ca::new("test CA");
    let other = Ca::new("other CA");
    let member = TlsMember::start("m", &ca.issue(&["localhost"]), None).await;
    let refused = TlsMember::start("r", &other.issue(&["localhost"]), None).await;
    let dir = Dir::new("probe");
    let ca_file = dir.write("ca.pem", &ca.pem());
    let hc = "hcmethod=GET hcuri=/health hcinterval=100ms";
    let (proxy, site) = serve(&format!(
        "SSLProxyEngine On\nSSLProxyCACertificateFile {ca_file}\n\
         <Proxy balancer://app>\n  BalancerMember {} {hc}\n  BalancerMember {} {hc}\n</Proxy>\n\
         ProxyPass / balancer://app/\n",
        member.url(),
        refused.url()
    ))
    .await;
    let (m, r) = (member.addr.port(), refused.addr.port());
    let wait = |what: &'static str, cond: Box<dyn Fn() -> bool>| {
        proxy_balancer_test::wait_for(what, BOUND, Duration::from_millis(20), cond)
    };
    wait(
        "the refused member out",
        Box::new(|| flags(&site, r).contains(StatusFlags::HC_FAILED)),
    )
    .await;
    assert!(!flags(&site, m).contains(StatusFlags::HC_FAILED));
    let requests = Arc::clone(&member.requests);
    wait(
        "the member probed over TLS",
        Box::new(move || requests.load(Ordering::SeqCst) >= 1),
    )
    .await;
    member.healthy.store(false, Ordering::SeqCst);
    wait(
        "the member out",
        Box::new(|| flags(&site, m).contains(StatusFlags::HC_FAILED)),
    )
    .await;
    member.healthy.store(true, Ordering::SeqCst);
    wait(
        "the member back",
        Box::new(|| !flags(&site, m).contains(StatusFlags::HC_FAILED)),
    )
    .await;
    assert_eq!(refused.requests.load(Ordering::SeqCst), 0);
    assert_eq!(member.name, "m");
    proxy.shutdown().await.expect("stops");
}

// ===== through the library API =====

type Client = Balancer<MakeHttpMember<Full<Bytes>>>;

fn client(urls: &[String], tls: TlsClient) -> Client {
    let members = urls
        .iter()
        .map(|u| MemberParams::new(u).expect("a loopback url"));
    let store = BalancerStore::new(
        BalancerParams::new("balancer://api"),
        members,
        tokio::time::Instant::now().into_std(),
    )
    .expect("members");
    let make = MakeHttpMember::new().with_default_options(ClientOptions::new().with_tls(Some(tls)));
    Balancer::new(Arc::new(store), make)
}

async fn call(client: &Client) -> Result<(u16, String), proxy_balancer::Error> {
    let request = http::Request::get("/api")
        .body(Full::new(Bytes::new()))
        .expect("valid");
    let response = timeout(BOUND, client.clone().oneshot(request))
        .await
        .expect("bounded")?;
    let status = response.status().as_u16();
    let body = timeout(BOUND, response.into_body().collect())
        .await
        .expect("bounded")
        .expect("a body")
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// `TlsClient::builder` with a CA in PEM: a good member passes, one from another CA is a
/// connect error and the balancer fails over; a client certificate from PEM text.
#[tokio::test]
async fn library_api() {
    let ca = Ca::new("test CA");
    let other = Ca::new("other CA");
    let clients = Ca::new("client CA");
    let bad = TlsMember::start("bad", &other.issue(&["localhost"]), None).await;
    let good = TlsMember::start("good", &ca.issue(&["localhost"]), Some(&clients)).await;
    let (cert, key) = clients.issue(&["proxy.example"]);
    let tls = TlsClient::builder()
        .ca_pem(ca.pem())
        .client_cert_pem(format!("{key}{cert}"))
        .build()
        .expect("a client");
    let balancer = client(&[bad.url(), good.url()], tls);
    for _ in 0..4 {
        assert_eq!(
            call(&balancer).await.expect("served"),
            (200, "good".to_owned())
        );
    }
    assert_eq!(bad.requests.load(Ordering::SeqCst), 0);
    // Alone, the bad member's failure is a connect error, its reason in the log.
    let alone = client(
        &[bad.url()],
        TlsClient::builder()
            .ca_pem(ca.pem())
            .build()
            .expect("a client"),
    );
    let log = Arc::new(Mutex::new(String::new()));
    let guard = tracing::subscriber::set_default(Capture(Arc::clone(&log)));
    let err = call(&alone).await.expect_err("refused");
    drop(guard);
    let log = log.lock().clone();
    assert!(
        log.contains("TLS handshake with the member failed") && log.contains(&bad.url()),
        "{log}"
    );
    assert!(log.contains("invalid peer certificate"), "{log}");
    assert!(
        matches!(
            err.kind(),
            proxy_balancer::ErrorKind::Connect | proxy_balancer::ErrorKind::NoMember
        ),
        "{err:?}"
    );
    // By IP address: no SNI, and the certificate must name the address.
    let by_ip = TlsMember::start("ip", &ca.issue(&["127.0.0.1"]), None).await;
    let ip = client(
        &[format!("https://127.0.0.1:{}", by_ip.addr.port())],
        TlsClient::builder()
            .ca_pem(ca.pem())
            .build()
            .expect("a client"),
    );
    assert_eq!(call(&ip).await.expect("served"), (200, "ip".to_owned()));
    assert_eq!(by_ip.sni.lock().as_slice(), [None]);
}

/// A tracing subscriber keeping the events' messages and fields as text (the tests run on
/// tokio's current-thread runtime, so a thread's default subscriber sees their tasks).
struct Capture(Arc<Mutex<String>>);

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={value:?} ", field.name()));
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = String::new();
        event.record(&mut Fields(&mut line));
        let mut log = self.0.lock();
        log.push_str(&line);
        log.push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Every `hcmethod` probes an https member over TLS: with the member's TLS client they
/// pass (the HTTP ones get the member's answer); with a client that does not trust its CA
/// they fail as `Tls`, `hcmethod=TCP` included (the handshake is part of the check).
#[tokio::test]
async fn every_probe_method_over_tls() {
    use proxy_balancer::health_probe::{ProbeConfig, ProbeFailure, ProbeMethod};
    let ca = Ca::new("test CA");
    let member = TlsMember::start("m", &ca.issue(&["localhost"]), None).await;
    let url = MemberParams::new(&member.url()).expect("url").url;
    let trusting = TlsClient::builder()
        .ca_pem(ca.pem())
        .build()
        .expect("client");
    let methods = [
        ProbeMethod::Tcp,
        ProbeMethod::Options,
        ProbeMethod::Head,
        ProbeMethod::Get,
        ProbeMethod::Options11,
        ProbeMethod::Head11,
        ProbeMethod::Get11,
    ];
    for method in methods {
        let before = member.requests.load(Ordering::SeqCst);
        let outcome = ProbeConfig::new(method)
            .with_tls(Some(trusting.clone()))
            .probe(&url)
            .await;
        assert!(outcome.passed(), "{method:?}: {outcome:?}");
        if method == ProbeMethod::Tcp {
            assert_eq!(outcome.status(), None);
        } else {
            assert_eq!(outcome.status(), Some(200), "{method:?}");
            assert_eq!(
                member.requests.load(Ordering::SeqCst),
                before + 1,
                "{method:?}"
            );
        }
        let refused = ProbeConfig::new(method)
            .with_tls(Some(
                TlsClient::builder()
                    .ca_pem(Ca::new("x").pem())
                    .build()
                    .expect("client"),
            ))
            .probe(&url)
            .await;
        assert_eq!(refused.failure(), Some(ProbeFailure::Tls), "{method:?}");
    }
    assert_eq!(member.name, "m");
}
