//! The reverse proxy serving HTTPS on `--listen` when the configuration's server for that
//! address has `SSLEngine On` (certificates made at test time by rcgen), run as a binary.
//! Apache 2.4.71 with the same configuration on loopback answered the same way: the
//! virtual host's certificate, the member's answer, `HTTPS=on` seen by mod_headers.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use proxy_balancer_test::TestBackend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

/// Every wait in this test is bounded by this.
const BOUND: Duration = Duration::from_secs(20);

/// The `reverse-proxy` example binary (built through cargo, a no-op when fresh).
fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    if let Ok(cargo) = std::env::var("CARGO") {
        let mut build = Command::new(cargo);
        build.args(["build", "-p", "examples", "--example", "reverse-proxy"]);
        if dir.ends_with("release") {
            build.arg("--release");
        }
        assert!(
            build.status().expect("cargo runs").success(),
            "cannot build"
        );
    }
    dir.join("examples").join("reverse-proxy")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reverse_proxy_serves_https_when_the_configuration_says_sslengine_on() {
    let dir = std::env::temp_dir().join(format!("proxy-https-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let cert = rcgen::generate_simple_self_signed(vec!["a.test".to_owned()]).expect("a cert");
    std::fs::write(dir.join("a.pem"), cert.cert.pem()).expect("written");
    std::fs::write(dir.join("a.key"), cert.key_pair.serialize_pem()).expect("written");
    let member = TestBackend::start("m").await.expect("a backend");
    // Relative file names start from ServerRoot: the configuration's directory.
    let config = dir.join("https.conf");
    std::fs::write(
        &config,
        format!(
            "<VirtualHost *>\n  ServerName a.test\n  SSLEngine On\n  SSLCertificateFile a.pem\n  \
             SSLCertificateKeyFile a.key\n  RequestHeader set X-Https \"%{{HTTPS}}s\"\n  \
             ProxyPass / {}/\n</VirtualHost>\n",
            member.url()
        ),
    )
    .expect("written");
    let out_path = dir.join("stdout");
    let mut child = Command::new(binary())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--run-for",
            "60",
            "--threads",
            "1",
        ])
        .args(["--no-access-log", "--config"])
        .arg(&config)
        .stdout(std::fs::File::create(&out_path).expect("a file"))
        .stderr(Stdio::null())
        .spawn()
        .expect("the proxy starts");
    // proxy-balancer listening on https://127.0.0.1:PORT/, serving …
    let deadline = Instant::now() + BOUND;
    let addr = loop {
        let text = std::fs::read_to_string(&out_path).unwrap_or_default();
        if let Some(addr) = text
            .split("https://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        {
            break addr;
        }
        assert!(Instant::now() < deadline, "no https address in {text:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).expect("the cert");
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let answer = timeout(BOUND, async {
        let tcp = TcpStream::connect(addr).await.expect("connects");
        let name = rustls::pki_types::ServerName::try_from("a.test").expect("a name");
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(client))
            .connect(name, tcp)
            .await
            .expect("a handshake with a.test's certificate");
        tls.write_all(b"GET /x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
            .await
            .expect("sent");
        let mut answer = Vec::new();
        let _ = tls.read_to_end(&mut answer).await;
        String::from_utf8_lossy(&answer).into_owned()
    })
    .await
    .expect("answered in time");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = member.last_request().expect("proxied");
    assert_eq!(seen.path_and_query, "/x");
    assert_eq!(seen.header("x-https"), Some("on"));
}
