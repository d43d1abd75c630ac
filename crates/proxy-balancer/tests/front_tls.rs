//! HTTPS on the listener: `Server::tls` and the site's `SSLEngine On` virtual hosts, with
//! certificates made at test time (rcgen), a rustls client (tokio-rustls) and hyper's
//! HTTP/1.1 and HTTP/2 clients over it.
//!
//! What Apache 2.4.71 did on loopback with the same shapes of configuration (two
//! `<VirtualHost 127.0.0.1:18501>` with `SSLEngine On` and certificates for `a.test` and
//! `b.test`, mod_http2 loaded):
//! - SNI `b.test` → b's certificate; SNI `a.test`, an unknown SNI and no SNI → a's, the
//!   first virtual host's (AH02044 "No matching SSL virtual host for servername … found
//!   (using default/first virtual host)");
//! - ALPN `h2,http/1.1`: `http/1.1` without a `Protocols` line, `h2` with
//!   `Protocols h2 http/1.1`. proxy-balancer offers h2 always (its cleartext port takes h2c
//!   by prior knowledge too; there is no `Protocols` directive here);
//! - a plain `GET / HTTP/1.1` on the TLS port → `400 Bad Request`, "You're speaking plain
//!   HTTP to an SSL-enabled server port";
//! - `RequestHeader set X-Https "%{HTTPS}s"` → `on`; `RequestHeader set X-Forwarded-Proto
//!   https env=HTTPS` → sent (mod_ssl sets `HTTPS=on` before mod_headers' fixups);
//! - a client that opened the connection and sent nothing was closed after 92 s
//!   (`TimeOut` 60 s and `RequestReadTimeout handshake=0`, the defaults); here the whole
//!   handshake has `TimeOut` (or `handshake=`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use proxy_balancer::apache_config::parse;
use proxy_balancer::server::{ClientLimits, Server, ServerHandle, ServerTls};
use proxy_balancer::site::Site;
use proxy_balancer_test::TestBackend;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

/// Every network step of these tests finishes within this.
const STEP: Duration = Duration::from_secs(5);

/// A CA and the certificates it signed, written to a directory of their own.
struct Pki {
    dir: PathBuf,
    ca: CertificateDer<'static>,
    /// The DER of each leaf, by name.
    leaves: Vec<(String, CertificateDer<'static>)>,
}

impl Pki {
    /// A CA, and for each name a certificate (`NAME.pem`) and its key (`NAME.key`).
    fn new(tag: &str, names: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("pb-front-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let ca_key = rcgen::KeyPair::generate().expect("a key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "front_tls test CA");
        let ca = params.self_signed(&ca_key).expect("a CA");
        std::fs::write(dir.join("ca.pem"), ca.pem()).expect("written");
        let mut leaves = Vec::new();
        for name in names {
            let key = rcgen::KeyPair::generate().expect("a key");
            let cert = rcgen::CertificateParams::new(vec![(*name).to_owned()])
                .expect("params")
                .signed_by(&key, &ca, &ca_key)
                .expect("a leaf");
            std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).expect("written");
            std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).expect("written");
            leaves.push(((*name).to_owned(), cert.der().clone()));
        }
        Self {
            dir,
            ca: ca.der().clone(),
            leaves,
        }
    }

    fn leaf(&self, name: &str) -> &CertificateDer<'static> {
        &self
            .leaves
            .iter()
            .find(|(n, _)| n == name)
            .expect("a leaf of that name")
            .1
    }

    /// The lines of a server with `SSLEngine On` and `name`'s certificate.
    fn ssl_lines(&self, name: &str) -> String {
        format!(
            "SSLEngine On\nSSLCertificateFile {0}/{name}.pem\nSSLCertificateKeyFile {0}/{name}.key\n",
            self.dir.display()
        )
    }

    /// A client trusting the CA, offering `alpn`.
    fn connector(&self, alpn: &[&[u8]]) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).expect("the CA");
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        TlsConnector::from(Arc::new(config))
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Serves `text` on a loopback port with the TLS `Site::tls_for` gives that port.
async fn serve_site(text: &str, limits: ClientLimits) -> (ServerHandle, SocketAddr) {
    let config = parse(text).expect("a valid config");
    let site = Site::from_config(&config).expect("buildable");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("an address");
    let tls = site
        .tls_for(addr)
        .expect("one kind of server on the port")
        .expect("TLS on the port");
    let server = Server::new()
        .limits(limits)
        .tls(tls)
        .spawn(listener, site)
        .expect("serving");
    (server, addr)
}

/// A TLS connection to `addr` for `sni` (an IP address: no SNI sent).
async fn connect(
    connector: &TlsConnector,
    addr: SocketAddr,
    sni: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = timeout(STEP, TcpStream::connect(addr)).await??;
    let name = ServerName::try_from(sni.to_owned()).expect("a server name");
    timeout(STEP, connector.connect(name, tcp)).await?
}

/// The certificate the server presented.
fn presented(tls: &tokio_rustls::client::TlsStream<TcpStream>) -> CertificateDer<'static> {
    tls.get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("a certificate")
        .clone()
        .into_owned()
}

/// `GET path` with `Host: host` over `tls`, in HTTP/2 when ALPN chose it: status,
/// version, `Location`.
async fn get(
    tls: tokio_rustls::client::TlsStream<TcpStream>,
    host: &str,
    path: &str,
) -> (StatusCode, Version, Option<String>) {
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(tls);
    let response = if h2 {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .expect("an h2 connection");
        tokio::spawn(conn);
        let request = Request::get(format!("https://{host}{path}"))
            .body(Empty::<Bytes>::new())
            .expect("a request");
        timeout(STEP, send.send_request(request)).await
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .expect("an HTTP/1.1 connection");
        tokio::spawn(conn);
        let request = Request::get(path)
            .header(http::header::HOST, host)
            .body(Empty::<Bytes>::new())
            .expect("a request");
        timeout(STEP, send.send_request(request)).await
    }
    .expect("in time")
    .expect("an answer");
    let status = response.status();
    let version = response.version();
    let location = response
        .headers()
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let _ = timeout(STEP, response.into_body().collect()).await;
    (status, version, location)
}

/// Two name-based virtual hosts on one port, each with its own certificate: SNI picks it,
/// the first's otherwise (as Apache, see the module docs); HTTP/1.1 and h2 by ALPN; the
/// member learns the request was HTTPS through mod_ssl's `HTTPS` (`env=HTTPS`,
/// `%{HTTPS}s`), and a `Location` the member sends comes back as `https://`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_the_virtual_host_certificate_and_alpn_the_protocol() {
    let pki = Pki::new("sni", &["a.test", "b.test"]);
    let a = TestBackend::start("a").await.expect("a backend");
    let b = TestBackend::start("b").await.expect("a backend");
    a.set_header(
        http::header::LOCATION,
        http::HeaderValue::from_str(&format!("{}/moved", a.url())).expect("a value"),
    );
    let text = format!(
        "<VirtualHost *>\nServerName a.test\n{a_ssl}\
         RequestHeader set X-Forwarded-Proto https env=HTTPS\n\
         RequestHeader set X-Https \"%{{HTTPS}}s\"\n\
         ProxyPass / {a}/\nProxyPassReverse / {a}/\n</VirtualHost>\n\
         <VirtualHost *>\nServerName b.test\n{b_ssl}ProxyPass / {b}/\n</VirtualHost>\n",
        a_ssl = pki.ssl_lines("a.test"),
        b_ssl = pki.ssl_lines("b.test"),
        a = a.url(),
        b = b.url(),
    );
    let (server, addr) = serve_site(&text, ClientLimits::new()).await;
    let h1 = pki.connector(&[b"http/1.1"]);
    let h2 = pki.connector(&[b"h2", b"http/1.1"]);

    // SNI b.test: b's certificate, b's routes, over h2.
    let tls = connect(&h2, addr, "b.test").await.expect("a handshake");
    assert_eq!(&presented(&tls), pki.leaf("b.test"));
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (status, version, _) = get(tls, "b.test", "/x").await;
    assert_eq!((status, version), (StatusCode::OK, Version::HTTP_2));
    assert_eq!(
        b.last_request().map(|r| r.path_and_query),
        Some("/x".to_owned())
    );

    // SNI a.test over HTTP/1.1: a's certificate; the member sees that it was HTTPS, and
    // its Location comes back as the client's https origin.
    let tls = connect(&h1, addr, "a.test").await.expect("a handshake");
    assert_eq!(&presented(&tls), pki.leaf("a.test"));
    let (status, version, location) = get(tls, "a.test", "/y").await;
    assert_eq!((status, version), (StatusCode::OK, Version::HTTP_11));
    let seen = a.last_request().expect("a request at a");
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert_eq!(seen.header("x-https"), Some("on"));
    assert_eq!(location.as_deref(), Some("https://a.test/moved"));

    // An unknown name and no SNI at all: the first virtual host's certificate.
    let tls = connect(&h1, addr, "c.test").await;
    let error = tls
        .expect_err("a's certificate does not name c.test")
        .to_string();
    assert!(error.contains("certificate"), "{error}");
    let mut any_name = pki.connector(&[]);
    let tls = connect(&any_name, addr, "127.0.0.1").await;
    assert!(
        tls.is_err(),
        "no SNI: a's certificate, which names a.test only"
    );
    // Checked by certificate rather than by name: a client that accepts a.test's
    // certificate for the unknown name.
    any_name = insecure_connector(pki.leaf("a.test").clone());
    let tls = connect(&any_name, addr, "c.test")
        .await
        .expect("a handshake");
    assert_eq!(&presented(&tls), pki.leaf("a.test"));
    let tls = connect(&any_name, addr, "127.0.0.1")
        .await
        .expect("a handshake");
    assert_eq!(&presented(&tls), pki.leaf("a.test"));

    timeout(STEP, server.shutdown())
        .await
        .expect("in time")
        .expect("stopped");
}

/// A client trusting the CA that presents `name`'s certificate from `from`.
fn client_with_cert(trusting: &Pki, from: &Pki, name: &str) -> TlsConnector {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusting.ca.clone()).expect("the CA");
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(from.dir.join(format!("{name}.key")))
        .expect("the key");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_client_auth_cert(vec![from.leaf(name).clone()], key)
    .expect("a client certificate");
    TlsConnector::from(Arc::new(config))
}

/// Whether a GET over a new connection with `connector` is answered: with TLS 1.3 a refused
/// client certificate shows on the first read, not in the client's handshake.
async fn answered(connector: &TlsConnector, addr: SocketAddr) -> bool {
    let Ok(tls) = connect(connector, addr, "a.test").await else {
        return false;
    };
    let Ok((mut send, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await
    else {
        return false;
    };
    tokio::spawn(conn);
    let request = Request::get("/")
        .header(http::header::HOST, "a.test")
        .body(Empty::<Bytes>::new())
        .expect("a request");
    matches!(
        timeout(STEP, send.send_request(request)).await,
        Ok(Ok(response)) if response.status() == StatusCode::OK
    )
}

/// `SSLVerifyClient require` with `SSLCACertificateFile`: a client certificate the CA
/// signed is needed; `optional`: a client without one is served too, one from another CA
/// is not. (Apache 2.4.71 on loopback, `SSLVerifyClient require` and
/// `SSLCACertificateFile` in the `<VirtualHost>`: curl without a certificate failed (exit
/// 56, the connection closed in the handshake), with the CA's client certificate got 200;
/// `optional` without a certificate got 200.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_checked_as_ssl_verify_client_says() {
    let pki = Pki::new("mtls", &["a.test", "client.test"]);
    let other = Pki::new("mtls-other", &["client.test"]);
    let member = TestBackend::start("m").await.expect("a backend");
    for (level, without_cert) in [("require", false), ("optional", true)] {
        let text = format!(
            "<VirtualHost *>\nServerName a.test\n{}SSLVerifyClient {level}\n\
             SSLCACertificateFile {}/ca.pem\nProxyPass / {}/\n</VirtualHost>\n",
            pki.ssl_lines("a.test"),
            pki.dir.display(),
            member.url(),
        );
        let (server, addr) = serve_site(&text, ClientLimits::new()).await;
        assert!(
            answered(&client_with_cert(&pki, &pki, "client.test"), addr).await,
            "{level}: the CA's client"
        );
        assert_eq!(
            answered(&pki.connector(&[]), addr).await,
            without_cert,
            "{level}: no client certificate"
        );
        assert!(
            !answered(&client_with_cert(&pki, &other, "client.test"), addr).await,
            "{level}: another CA's client"
        );
        timeout(STEP, server.shutdown())
            .await
            .expect("in time")
            .expect("stopped");
    }
    // Without the CAs: a start error at the SSLVerifyClient line.
    let config = parse(&format!(
        "{}SSLVerifyClient require\n",
        pki.ssl_lines("a.test")
    ))
    .expect("parsed");
    let e = Site::from_config(&config).expect_err("refused").to_string();
    assert!(e.starts_with("line 4:1: SSLVerifyClient needs"), "{e}");
}

/// A client that accepts exactly `expected` for any name (to see which certificate a name
/// the server does not know gets).
fn insecure_connector(expected: CertificateDer<'static>) -> TlsConnector {
    #[derive(Debug)]
    struct Pinned(CertificateDer<'static>, Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for Pinned {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            if end_entity.as_ref() == self.0.as_ref() {
                Ok(rustls::client::danger::ServerCertVerified::assertion())
            } else {
                Err(rustls::Error::General("another certificate".into()))
            }
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.1.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.1.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.1.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned(expected, provider)))
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// `Protocols http/1.1` (Apache's default, which proxy-balancer applies when written): ALPN
/// offers no h2; `Protocols h2 http/1.1`: h2 (Apache 2.4.71 with mod_http2: ALPN
/// `http/1.1` and `h2` respectively).
#[tokio::test]
async fn protocols_decides_what_alpn_offers() {
    let pki = Pki::new("alpn", &["a.test"]);
    let member = TestBackend::start("m").await.expect("a backend");
    for (line, chosen) in [
        ("Protocols http/1.1", &b"http/1.1"[..]),
        ("Protocols h2 http/1.1", &b"h2"[..]),
        ("", &b"h2"[..]),
    ] {
        let text = format!(
            "{}{line}\nProxyPass / {}/\n",
            pki.ssl_lines("a.test"),
            member.url()
        );
        let (server, addr) = serve_site(&text, ClientLimits::new()).await;
        let tls = connect(&pki.connector(&[b"h2", b"http/1.1"]), addr, "a.test")
            .await
            .expect("a handshake");
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(chosen), "{line}");
        let (status, ..) = get(tls, "a.test", "/").await;
        assert_eq!(status, StatusCode::OK, "{line}");
        timeout(STEP, server.shutdown())
            .await
            .expect("in time")
            .expect("stopped");
    }
}

/// A server with one certificate ([`ServerTls::from_pem`]) answering "ok".
async fn serve_ok(pki: &Pki, name: &str, limits: ClientLimits) -> ServerHandle {
    let cert = std::fs::read(pki.dir.join(format!("{name}.pem"))).expect("the cert");
    let key = std::fs::read(pki.dir.join(format!("{name}.key"))).expect("the key");
    let tls = ServerTls::from_pem(&cert, &key).expect("a TLS config");
    let service = tower::service_fn(|request: Request<proxy_balancer::server::RequestBody>| {
        let tls = request
            .extensions()
            .get::<proxy_balancer::TlsInfo>()
            .cloned();
        async move {
            let body = format!(
                "sni={:?}",
                tls.as_ref()
                    .and_then(|t| t.server_name().map(str::to_owned))
            );
            Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
                Bytes::from(body),
            )))
        }
    });
    Server::new()
        .limits(limits)
        .tls(tls)
        .listen("127.0.0.1:0".parse().expect("an address"), service)
        .await
        .expect("serving")
}

/// Plain HTTP to the TLS port: answered `400` in clear, as mod_ssl does, and closed.
#[tokio::test]
async fn plain_http_on_the_tls_port_is_answered_400() {
    let pki = Pki::new("plain", &["a.test"]);
    let server = serve_ok(&pki, "a.test", ClientLimits::new()).await;
    let mut tcp = TcpStream::connect(server.local_addr())
        .await
        .expect("connected");
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .expect("sent");
    let mut answer = Vec::new();
    timeout(STEP, tcp.read_to_end(&mut answer))
        .await
        .expect("closed in time")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(
        answer.contains("You're speaking plain HTTP to an SSL-enabled server port"),
        "{answer}"
    );
    // Bytes that are neither a TLS record nor a request line: closed without an answer,
    // as OpenSSL closes (found by the review: they got the plain-HTTP 400).
    let mut garbage = TcpStream::connect(server.local_addr())
        .await
        .expect("connected");
    garbage.write_all(&[0u8; 16]).await.expect("sent");
    let mut answer = Vec::new();
    let _ = timeout(STEP, garbage.read_to_end(&mut answer))
        .await
        .expect("closed in time");
    assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
    // The server goes on.
    let tls = connect(&pki.connector(&[]), server.local_addr(), "a.test")
        .await
        .expect("a handshake");
    let (status, ..) = get(tls, "a.test", "/").await;
    assert_eq!(status, StatusCode::OK);
    timeout(STEP, server.shutdown())
        .await
        .expect("in time")
        .expect("stopped");
}

/// A client that starts a handshake and stalls is closed at the handshake timeout, and
/// meanwhile other clients are accepted and served (the handshake is not in the accept
/// loop). A client that does not trust the certificate fails its handshake; the server
/// goes on.
#[tokio::test]
async fn a_stalled_handshake_is_cut_and_does_not_block_accepts() {
    let pki = Pki::new("stall", &["a.test"]);
    let limits = ClientLimits::new().handshake_timeout(Duration::from_millis(400));
    let server = serve_ok(&pki, "a.test", limits).await;
    let addr = server.local_addr();
    let started = tokio::time::Instant::now();
    let mut stalled = TcpStream::connect(addr).await.expect("connected");
    // The start of a TLS record, and nothing more.
    stalled.write_all(&[0x16, 0x03, 0x01]).await.expect("sent");
    let mut silent = TcpStream::connect(addr).await.expect("connected");

    // Served while the two stall.
    let tls = connect(&pki.connector(&[b"http/1.1"]), addr, "a.test")
        .await
        .expect("a handshake");
    let (status, ..) = get(tls, "a.test", "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "not held up"
    );

    for stream in [&mut stalled, &mut silent] {
        let mut rest = Vec::new();
        let read = timeout(STEP, stream.read_to_end(&mut rest))
            .await
            .expect("closed in time");
        // Closed, perhaps with a TLS alert or a reset; never an HTTP answer.
        assert!(!rest.starts_with(b"HTTP/"), "{read:?}");
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(350) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );

    // A client with another CA fails its handshake; the next one is served.
    let other = Pki::new("stall-other", &["a.test"]);
    assert!(connect(&other.connector(&[]), addr, "a.test")
        .await
        .is_err());
    let tls = connect(&pki.connector(&[]), addr, "a.test")
        .await
        .expect("a handshake");
    let (status, ..) = get(tls, "a.test", "/").await;
    assert_eq!(status, StatusCode::OK);
    timeout(STEP, server.shutdown())
        .await
        .expect("in time")
        .expect("stopped");
}

/// At the connection cap, connections that opened and never finished their handshake are
/// closed by the relief (as idle plain connections are), so that they cannot keep real
/// clients out for the whole handshake timeout (found by the review: 120 silent
/// connections locked a cap of 96 out for 60 s).
#[tokio::test]
async fn handshakes_that_linger_at_the_connection_cap_are_closed() {
    let pki = Pki::new("cap", &["a.test"]);
    let limits = ClientLimits::new()
        .max_connections(Some(3))
        .handshake_timeout(Duration::from_secs(30));
    let server = serve_ok(&pki, "a.test", limits).await;
    let addr = server.local_addr();
    // Three slots taken: two silent, one with a partial record.
    let mut held = Vec::new();
    for partial in [false, false, true] {
        let mut stream = TcpStream::connect(addr).await.expect("connected");
        if partial {
            stream.write_all(&[0x16, 0x03, 0x01]).await.expect("sent");
        }
        held.push(stream);
    }
    let started = tokio::time::Instant::now();
    let tls = timeout(
        Duration::from_secs(10),
        connect(&pki.connector(&[]), addr, "a.test"),
    )
    .await
    .expect("served long before the handshake timeout")
    .expect("a handshake");
    let (status, ..) = get(tls, "a.test", "/").await;
    assert_eq!(status, StatusCode::OK);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    // The lingering ones were closed, never answered.
    for stream in &mut held {
        let mut rest = Vec::new();
        let read = timeout(STEP, stream.read_to_end(&mut rest))
            .await
            .expect("closed in time");
        assert!(!rest.starts_with(b"HTTP/"), "{read:?}");
    }
    timeout(STEP, server.shutdown())
        .await
        .expect("in time")
        .expect("stopped");
}

/// The request carries the client's SNI ([`proxy_balancer::TlsInfo`]).
#[tokio::test]
async fn the_request_knows_its_tls_connection() {
    let pki = Pki::new("info", &["a.test"]);
    let server = serve_ok(&pki, "a.test", ClientLimits::new()).await;
    let tls = connect(&pki.connector(&[b"h2"]), server.local_addr(), "a.test")
        .await
        .expect("a handshake");
    let io = TokioIo::new(tls);
    let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .expect("h2");
    tokio::spawn(conn);
    let response = timeout(
        STEP,
        send.send_request(
            Request::get("https://a.test/")
                .body(Empty::<Bytes>::new())
                .expect("a request"),
        ),
    )
    .await
    .expect("in time")
    .expect("an answer");
    let body = timeout(STEP, response.into_body().collect())
        .await
        .expect("in time")
        .expect("a body")
        .to_bytes();
    assert_eq!(&body[..], b"sni=Some(\"a.test\")");
    timeout(STEP, server.shutdown())
        .await
        .expect("in time")
        .expect("stopped");
}

/// What cannot be served is a start error at its line and column: a certificate file that
/// cannot be read, a key that is not the certificate's, `SSLEngine On` without a
/// certificate; a port that would mix TLS and plain servers.
#[tokio::test]
async fn certificate_problems_are_start_errors_with_their_place() {
    let pki = Pki::new("errors", &["a.test", "b.test"]);
    let dir = pki.dir.display();
    let error = |text: &str| {
        let config = parse(text).expect("parsed");
        Site::from_config(&config).expect_err("refused").to_string()
    };
    let e = error(&format!(
        "SSLEngine On\nSSLCertificateFile {dir}/missing.pem\nSSLCertificateKeyFile {dir}/a.test.key\n"
    ));
    assert!(e.starts_with("line 2:20: cannot read "), "{e}");
    assert!(e.contains("missing.pem"), "{e}");
    let e = error(&format!(
        "SSLEngine On\nSSLCertificateFile {dir}/a.test.pem\nSSLCertificateKeyFile {dir}/b.test.key\n"
    ));
    assert!(
        e.starts_with("line 3:23: the private key does not match"),
        "{e}"
    );
    let e = error(&format!(
        "SSLEngine On\nSSLCertificateFile {dir}/a.test.key\nSSLCertificateKeyFile {dir}/a.test.key\n"
    ));
    assert!(
        e.starts_with("line 2:20: ") && e.contains("no certificate"),
        "{e}"
    );
    let e = error("<VirtualHost *:443>\n  SSLEngine On\n</VirtualHost>\n");
    assert!(
        e.starts_with("line 2:3: SSLEngine On needs a certificate"),
        "{e}"
    );
    // Validation (`--check`) reads them too.
    let config = parse(&format!(
        "SSLEngine On\nSSLCertificateFile {dir}/a.test.pem\nSSLCertificateKeyFile {dir}/nope.key\n"
    ))
    .expect("parsed");
    let e = Site::validate(&config).expect_err("refused").to_string();
    assert!(e.starts_with("line 3:23: cannot read "), "{e}");

    // One port, an SSL virtual host first and a plain one after: refused for that port.
    let config = parse(&format!(
        "<VirtualHost *:8443>\nServerName a.test\n{}</VirtualHost>\n\
         <VirtualHost *:8443>\nServerName b.test\n</VirtualHost>\n",
        pki.ssl_lines("a.test")
    ))
    .expect("parsed");
    let site = Site::from_config(&config).expect("buildable");
    let e = site
        .tls_for("127.0.0.1:8443".parse().expect("an address"))
        .expect_err("mixed")
        .to_string();
    assert!(
        e.starts_with("line 7: this server has no SSLEngine On"),
        "{e}"
    );
    assert!(site
        .tls_for("127.0.0.1:8080".parse().expect("an address"))
        .expect("the main server")
        .is_none());

    // An SSL virtual host of an exact address, reached through 0.0.0.0: refused (its
    // handshake would be the main server's, in clear); on its own address: served.
    let config = parse(&format!(
        "<VirtualHost 127.0.0.1:8443>\nServerName a.test\n{}</VirtualHost>\n",
        pki.ssl_lines("a.test")
    ))
    .expect("parsed");
    let site = Site::from_config(&config).expect("buildable");
    let e = site
        .tls_for("0.0.0.0:8443".parse().expect("an address"))
        .expect_err("behind a wildcard listener")
        .to_string();
    assert!(
        e.starts_with("line 1: this <VirtualHost> of an IP address"),
        "{e}"
    );
    assert!(site
        .tls_for("127.0.0.1:8443".parse().expect("an address"))
        .expect("its address")
        .is_some());
}

/// `request` over a new HTTP/1.1 TLS connection to `a.test`: the status and the body.
async fn send(
    connector: &TlsConnector,
    addr: SocketAddr,
    request: Request<http_body_util::Full<Bytes>>,
) -> (StatusCode, String) {
    let tls = connect(connector, addr, "a.test")
        .await
        .expect("a handshake");
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("an HTTP/1.1 connection");
    tokio::spawn(conn);
    let response = timeout(STEP, send.send_request(request))
        .await
        .expect("in time")
        .expect("an answer");
    let status = response.status();
    let body = timeout(STEP, response.into_body().collect())
        .await
        .expect("in time")
        .expect("a body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Over TLS the balancer-manager takes a change from its own https page, and refuses one
/// whose `Origin` is an `http://` page (another origin, one a network attacker can write).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_refuses_a_change_from_a_clear_text_page_over_tls() {
    let pki = Pki::new("manager", &["a.test"]);
    let backends = proxy_balancer_test::start_demo_backends(2)
        .await
        .expect("loopback ports");
    let text = format!(
        "ServerName a.test\n{}{}",
        pki.ssl_lines("a.test"),
        proxy_balancer_test::demo_config(&backends)
    );
    let (server, addr) = serve_site(&text, ClientLimits::new()).await;
    let client = pki.connector(&[b"http/1.1"]);
    let get = Request::get("/balancer-manager/api")
        .header(http::header::HOST, "a.test")
        .body(http_body_util::Full::new(Bytes::new()))
        .expect("a request");
    let (status, json) = send(&client, addr, get).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let nonce = json
        .split("\"nonce\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the nonce")
        .to_owned();
    let member = backends[1].url().replace(':', "%3A").replace('/', "%2F");
    let post = |origin: &str| {
        Request::post("/balancer-manager/api")
            .header(http::header::HOST, "a.test")
            .header(http::header::ORIGIN, origin)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(http_body_util::Full::new(Bytes::from(format!(
                "b=demo&w={member}&w_status_D=1&nonce={nonce}"
            ))))
            .expect("a request")
    };
    let (status, body) = send(&client, addr, post("http://a.test")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("cross_origin"), "{body}");
    let (status, body) = send(&client, addr, post("https://a.test")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    timeout(STEP, server.shutdown())
        .await
        .expect("in time")
        .expect("stopped");
}
