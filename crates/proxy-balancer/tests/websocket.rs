//! WebSocket through the reverse proxy, over real loopback sockets: a tokio-tungstenite echo
//! member, a tokio-tungstenite client, and the site built from an Apache configuration
//! ([`Site::from_config`]) served by [`Server`].
//!
//! What Apache 2.4.71 did with the same cases on loopback (mod_proxy_http, python members;
//! `src/client/upgrade.rs` has the whole table):
//! - `BalancerMember http://… upgrade=websocket`, `Upgrade: websocket`: the member got
//!   `Connection: Upgrade` and `Upgrade: websocket`; its 101 reached the client with
//!   `Connection: Upgrade`, `Upgrade: websocket` and its other headers; bytes echoed; the
//!   balancer-manager showed `Busy` 1 during the tunnel and 0 after;
//! - a `ws://` member without `upgrade=`: the same;
//! - an `http://` member without `upgrade=`: the member got neither header and answered
//!   426, relayed without `Upgrade`;
//! - `Upgrade: foo` against `upgrade=websocket`: a plain request (no `Upgrade`);
//! - a member answering 200 to an upgrade request: relayed as a 200;
//! - a member answering 101 with `Upgrade: foo` to a `websocket` request: 502, AH00898
//!   `Unexpected Upgrade: foo (expecting websocket)`;
//! - a silent tunnel: closed after the larger of the worker's `timeout` and `Timeout`
//!   (`timeout=2`, `Timeout 5`: 5.00 s; `timeout=8`: 8.01 s).
//!
//! Apache does not count a tunnel's bytes for `bytraffic` (the manager's `To`/`From` stayed
//! at the request head and status line); here they are counted both ways.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use proxy_balancer::apache_config::parse;
use proxy_balancer::server::{Server, ServerHandle};
use proxy_balancer::site::Site;
use proxy_balancer::BalancerStore;
use proxy_balancer_test::wait_for;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Every wait in these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(10);
/// How often a condition is looked at while waiting for it.
const POLL: Duration = Duration::from_millis(10);

// ===== the member =====

/// A WebSocket echo member: it reads each request head itself (kept for the test to look
/// at), answers an upgrade with tungstenite's accept key and echoes every message (`bye`
/// makes it close the connection), and answers a request without `Upgrade` with
/// `426 Upgrade Required`. Paths starting `/plain` get a `200` whatever they ask;
/// `/foo101` gets a 101 that names `foo`.
struct EchoMember {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Drop for EchoMember {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EchoMember {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("bound");
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&heads);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_member(stream, Arc::clone(&seen)));
            }
        });
        Self { addr, heads, task }
    }

    /// The request heads received so far.
    fn heads(&self) -> Vec<String> {
        self.heads.lock().clone()
    }
}

/// The value of header `name` in a request head.
fn header(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}

async fn serve_member<S>(mut stream: S, heads: Arc<Mutex<Vec<String>>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 64 * 1024 || stream.read_exact(&mut byte).await.is_err() {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    heads.lock().push(head.clone());
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let key = header(&head, "sec-websocket-key");
    let upgrade = header(&head, "upgrade");
    if path.starts_with("/foo101") {
        let _ = stream
            .write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: Upgrade\r\n\r\n",
            )
            .await;
        tokio::time::sleep(BOUND).await;
        return;
    }
    let (Some(key), Some(_), false) = (key, upgrade, path.starts_with("/plain")) else {
        let (status, body) = if path.starts_with("/plain") {
            ("200 OK", "plain\n")
        } else {
            ("426 Upgrade Required", "upgrade required\n")
        };
        let answer = format!(
            "HTTP/1.1 {status}\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(answer.as_bytes()).await;
        return;
    };
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\nX-Member: echo\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    if stream.write_all(answer.as_bytes()).await.is_err() {
        return;
    }
    let mut ws = WebSocketStream::from_raw_socket(stream, Role::Server, None).await;
    while let Some(Ok(message)) = ws.next().await {
        let echo = match message {
            Message::Text(text) if text.as_str() == "bye" => return,
            Message::Close(_) => return,
            Message::Text(_) | Message::Binary(_) => message,
            _ => continue,
        };
        if ws.send(echo).await.is_err() {
            return;
        }
    }
}

// ===== the proxy =====

/// The site of `config` (with `{member}` replaced) served on a loopback port.
struct Proxy {
    addr: SocketAddr,
    site: Site,
    server: Option<ServerHandle>,
}

impl Proxy {
    async fn start(config: &str) -> Self {
        Self::start_with(config, Server::new()).await
    }

    async fn start_with(config: &str, server: Server) -> Self {
        let config = parse(config).expect("a valid configuration");
        let site = Site::from_config(&config).expect("the site builds");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let server = server
            .spawn(listener, site.clone())
            .expect("the server starts");
        Self {
            addr: server.local_addr(),
            site,
            server: Some(server),
        }
    }

    /// The store of balancer `name`.
    fn store(&self, name: &str) -> Arc<BalancerStore> {
        self.site
            .stores()
            .iter()
            .find(|s| s.snapshot().params().name.ends_with(name))
            .cloned()
            .expect("a balancer of that name")
    }

    /// The busy count, transferred and read bytes of the balancer's first member.
    fn member_counts(&self, name: &str) -> (u64, u64, u64) {
        let store = self.store(name);
        let snapshot = store.snapshot();
        let state = snapshot.members()[0].state();
        (state.busy(), state.transferred(), state.read())
    }

    async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            let _ = timeout(BOUND, server.shutdown()).await;
        }
    }
}

type Client = WebSocketStream<TcpStream>;

/// A WebSocket client through the proxy at `path`.
async fn connect(
    proxy: SocketAddr,
    path: &str,
) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
    let stream = TcpStream::connect(proxy).await.expect("the proxy accepts");
    let url = format!("ws://{proxy}{path}");
    let (ws, response) = timeout(BOUND, tokio_tungstenite::client_async(url, stream))
        .await
        .expect("the handshake ends within the bound")?;
    assert_eq!(response.status(), 101);
    Ok(ws)
}

/// Sends `text` and reads its echo.
async fn echo(ws: &mut Client, text: &str) -> String {
    ws.send(Message::text(text)).await.expect("sent");
    match timeout(BOUND, ws.next())
        .await
        .expect("an echo within the bound")
    {
        Some(Ok(Message::Text(echoed))) => echoed.as_str().to_owned(),
        other => panic!("no echo: {other:?}"),
    }
}

/// A raw HTTP/1.1 exchange with the proxy: the request head and the answer's text up to
/// the end of its head (and whatever body came with it).
async fn raw(proxy: SocketAddr, head: &str) -> String {
    let mut stream = TcpStream::connect(proxy).await.expect("the proxy accepts");
    stream.write_all(head.as_bytes()).await.expect("sent");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            let n = stream.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&answer);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = header(head, "content-length").and_then(|l| l.parse().ok());
                if !length.is_some_and(|l: usize| body.len() < l) {
                    break;
                }
            }
        }
    };
    timeout(BOUND, read)
        .await
        .expect("an answer within the bound");
    String::from_utf8_lossy(&answer).into_owned()
}

/// Three echo members, one per balancer (a URL shared by two balancers would share its
/// parameters): `upgrade=websocket`, `ws://`, and a plain `http://` member.
struct Members {
    up: EchoMember,
    ws: EchoMember,
    plain: EchoMember,
}

impl Members {
    async fn start() -> Self {
        Self {
            up: EchoMember::start().await,
            ws: EchoMember::start().await,
            plain: EchoMember::start().await,
        }
    }
}

fn config(members: &Members, extra: &str) -> String {
    let (up, ws, plain) = (members.up.addr, members.ws.addr, members.plain.addr);
    format!(
        r#"
        {extra}
        <Proxy "balancer://up">
            BalancerMember "http://{up}" upgrade=websocket
        </Proxy>
        <Proxy "balancer://wsm">
            BalancerMember "ws://{ws}"
        </Proxy>
        <Proxy "balancer://plain">
            BalancerMember "http://{plain}"
        </Proxy>
        ProxyPass "/up/" "balancer://up/"
        ProxyPass "/wsm/" "balancer://wsm/"
        ProxyPass "/plain/" "balancer://plain/"
        "#
    )
}

// ===== tests =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_websocket_tunnels_holds_the_member_busy_and_counts_bytes() {
    let members = Members::start().await;
    let proxy = Proxy::start(&config(&members, "")).await;
    let mut ws = connect(proxy.addr, "/up/chat").await.expect("upgraded");
    assert_eq!(echo(&mut ws, "hello").await, "hello");
    assert_eq!(echo(&mut ws, "again").await, "again");
    let (busy, sent, read) = proxy.member_counts("up");
    assert_eq!(busy, 1, "busy during the tunnel");
    // A 10 000-byte message goes to the member and comes back: both counts grow by it.
    let big = "x".repeat(10_000);
    assert_eq!(echo(&mut ws, &big).await, big);
    let (_, sent_after, read_after) = proxy.member_counts("up");
    assert!(
        sent_after >= sent + 10_000,
        "transferred {sent} -> {sent_after}"
    );
    assert!(read_after >= read + 10_000, "read {read} -> {read_after}");
    // The member saw the upgrade as Apache sends it.
    let heads = members.up.heads();
    let head = heads.last().expect("a request");
    assert!(head.starts_with("GET /chat HTTP/1.1"), "{head}");
    assert_eq!(header(head, "connection").as_deref(), Some("Upgrade"));
    assert_eq!(header(head, "upgrade").as_deref(), Some("websocket"));
    ws.close(None).await.expect("closed");
    wait_for("busy 0 after the tunnel", BOUND, POLL, || {
        proxy.member_counts("up").0 == 0
    })
    .await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ws_member_tunnels_without_the_parameter() {
    let members = Members::start().await;
    let proxy = Proxy::start(&config(&members, "")).await;
    let mut ws = connect(proxy.addr, "/wsm/").await.expect("upgraded");
    assert_eq!(echo(&mut ws, "over ws://").await, "over ws://");
    assert_eq!(proxy.member_counts("wsm").0, 1);
    // The member closes: the tunnel ends and the count is released.
    ws.send(Message::text("bye")).await.expect("sent");
    let end = timeout(BOUND, ws.next()).await.expect("the tunnel ends");
    assert!(!matches!(end, Some(Ok(Message::Text(_)))), "{end:?}");
    wait_for("busy 0 after the member closed", BOUND, POLL, || {
        proxy.member_counts("wsm").0 == 0
    })
    .await;
    // A plain request to a ws:// member is a plain request.
    let answer = raw(
        proxy.addr,
        "GET /wsm/plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_upgrade_the_member_sees_no_upgrade() {
    let members = Members::start().await;
    let proxy = Proxy::start(&config(&members, "")).await;
    // An http:// member without upgrade=: the handshake fails with the member's 426.
    let refused = connect(proxy.addr, "/plain/chat").await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 426);
            // Relayed without the member's Upgrade (it takes none).
            assert!(response.headers().get("upgrade").is_none());
        }
        other => panic!("not refused: {:?}", other.map(|_| ())),
    }
    let head = members.plain.heads().pop().expect("a request");
    assert!(header(&head, "upgrade").is_none(), "{head}");
    assert!(
        !header(&head, "connection").is_some_and(|c| c.to_ascii_lowercase().contains("upgrade")),
        "{head}"
    );
    assert_eq!(proxy.member_counts("plain").0, 0);
    // `Upgrade: foo` against upgrade=websocket: a plain request; the member's 426 names
    // websocket, which the member takes: passed on with Connection: Upgrade (as Apache).
    let answer = raw(
        proxy.addr,
        "GET /up/x HTTP/1.1\r\nHost: x\r\nUpgrade: foo\r\nConnection: Upgrade\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 426"), "{answer}");
    assert_eq!(header(&answer, "upgrade").as_deref(), Some("websocket"));
    assert_eq!(header(&answer, "connection").as_deref(), Some("Upgrade"));
    let head = members.up.heads().pop().expect("a request");
    assert!(header(&head, "upgrade").is_none(), "{head}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_does_not_switch_or_switches_to_another_protocol() {
    let members = Members::start().await;
    let proxy = Proxy::start(&config(&members, "")).await;
    let upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    // A 200 to an upgrade request: relayed as any answer.
    let answer = raw(
        proxy.addr,
        &format!("GET /up/plain HTTP/1.1\r\nHost: x\r\n{upgrade}\r\n"),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("plain\n"), "{answer}");
    // `Upgrade` without `Connection: Upgrade`: tunnelled, as Apache 2.4.71 does; the 101
    // names the protocol as the client wrote it.
    let answer = raw(
        proxy.addr,
        "GET /up/bare HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    assert_eq!(header(&answer, "connection").as_deref(), Some("Upgrade"));
    assert_eq!(header(&answer, "upgrade").as_deref(), Some("WebSocket"));
    assert_eq!(header(&answer, "x-member").as_deref(), Some("echo"));
    let head = members.up.heads().pop().expect("a request");
    assert_eq!(header(&head, "connection").as_deref(), Some("Upgrade"));
    assert_eq!(header(&head, "upgrade").as_deref(), Some("WebSocket"));
    // A 101 naming another protocol: 502 (AH00898), nothing relayed.
    let answer = raw(
        proxy.addr,
        &format!("GET /up/foo101 HTTP/1.1\r\nHost: x\r\n{upgrade}\r\n"),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    wait_for("busy 0", BOUND, POLL, || proxy.member_counts("up").0 == 0).await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_tunnel_closes_after_the_idle_timeout() {
    let members = Members::start().await;
    // Timeout 1 and the member's timeout 1: the tunnel's idle limit is 1 s.
    let proxy = Proxy::start(&config(&members, "Timeout 1\nProxyTimeout 1")).await;
    let mut ws = connect(proxy.addr, "/up/idle").await.expect("upgraded");
    assert_eq!(echo(&mut ws, "before").await, "before");
    let started = tokio::time::Instant::now();
    let end = timeout(BOUND, ws.next())
        .await
        .expect("closed within the bound");
    let waited = started.elapsed();
    assert!(!matches!(end, Some(Ok(Message::Text(_)))), "{end:?}");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "closed after {waited:?}"
    );
    wait_for("busy 0 after the idle close", BOUND, POLL, || {
        proxy.member_counts("up").0 == 0
    })
    .await;
    proxy.stop().await;
}

/// After the 101 the front connection is a tunnel: neither the keep-alive timeout nor the
/// header timeout of the server cuts it (only the tunnel's idle limit, 60 s here), and
/// `KeepAlive Off` does not turn its `Connection: Upgrade` into `close`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_front_timeouts_do_not_cut_a_tunnel() {
    use proxy_balancer::server::{ClientLimits, ReadTimeout};
    let members = Members::start().await;
    // `KeepAlive Off` too: the 101 keeps `Connection: Upgrade` (no `close` put on it).
    let limits = ClientLimits::new()
        .keep_alive(false)
        .keep_alive_timeout(Duration::from_millis(300))
        .header_timeout(ReadTimeout::new(Duration::from_millis(300)));
    let proxy = Proxy::start_with(&config(&members, ""), Server::new().limits(limits)).await;
    let mut ws = connect(proxy.addr, "/up/long").await.expect("upgraded");
    assert_eq!(echo(&mut ws, "one").await, "one");
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(echo(&mut ws, "still open").await, "still open");
    assert_eq!(proxy.member_counts("up").0, 1);
    drop(ws);
    wait_for("busy 0", BOUND, POLL, || proxy.member_counts("up").0 == 0).await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_drops_mid_tunnel_frees_the_member() {
    let members = Members::start().await;
    let proxy = Proxy::start(&config(&members, "")).await;
    let mut ws = connect(proxy.addr, "/up/drop").await.expect("upgraded");
    assert_eq!(echo(&mut ws, "hi").await, "hi");
    assert_eq!(proxy.member_counts("up").0, 1);
    // Gone without a close frame: the TCP connection just closes.
    drop(ws);
    wait_for("busy 0 after the client went away", BOUND, POLL, || {
        proxy.member_counts("up").0 == 0
    })
    .await;
    proxy.stop().await;
}

/// A `wss://` member: the echo member behind rustls, with a certificate for 127.0.0.1 made
/// at test time (rcgen); the proxy trusts exactly that certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wss_member_tunnels_over_tls() {
    use proxy_balancer::client::{ClientOptions, MakeHttpMember, TlsClient};
    use proxy_balancer::proxy_pass::{ForwardedHeaders, ReverseLayer};
    use proxy_balancer::server::RequestBody;
    use proxy_balancer::{BalancerParams, MemberParams, ServiceBuilderExt};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("a certificate");
    let cert = CertificateDer::from(certified.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let server_config = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .expect("a server configuration");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let member_addr = listener.local_addr().expect("bound");
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&heads);
    let member = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    serve_member(tls, seen).await;
                }
            });
        }
    });

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("the member's certificate");
    let client_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let options = ClientOptions::new().with_tls(Some(TlsClient::new(client_config)));
    let store = Arc::new(
        BalancerStore::new(
            BalancerParams::new("balancer://tls"),
            [MemberParams::new(&format!("wss://{member_addr}")).expect("a wss URL")],
            tokio::time::Instant::now().into_std(),
        )
        .expect("a store"),
    );
    let stack = tower::ServiceBuilder::new()
        .error_responses()
        .reverse(ReverseLayer::new())
        .forward(ForwardedHeaders::new())
        .balancer(Arc::clone(&store))
        .service(MakeHttpMember::<RequestBody>::new().with_default_options(options));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let server = Server::new().spawn(listener, stack).expect("serves");
    let busy = || store.snapshot().members()[0].state().busy();

    let mut ws = connect(server.local_addr(), "/secure")
        .await
        .expect("upgraded");
    assert_eq!(echo(&mut ws, "over TLS").await, "over TLS");
    assert_eq!(busy(), 1);
    let head = heads.lock().last().cloned().expect("a request");
    assert_eq!(header(&head, "upgrade").as_deref(), Some("websocket"));
    ws.close(None).await.expect("closed");
    wait_for("busy 0 after the tunnel", BOUND, POLL, || busy() == 0).await;
    member.abort();
    let _ = timeout(BOUND, server.shutdown()).await;
}
