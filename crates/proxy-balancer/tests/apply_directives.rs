//! Directives once parsed and dropped, now applied (issue #14): `ProxyVia`,
//! `ProxyErrorOverride`, `ProxyBadHeader`, `Proxy100Continue`, `responsefieldsize`,
//! `iobuffersize`, `HeartbeatListen`, `BalancerPersist`, `ProxyHCTPsize`. Each over real
//! loopback sockets: the site on 127.0.0.1:0, raw members writing fixed bytes, a raw client.
//!
//! What Apache 2.4.71 did with the same directives, on loopback (ServerName
//! `via-on.example`, a member on 127.0.0.1), is written beside each test.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use proxy_balancer::apache_config::parse;
use proxy_balancer::client::{ClientOptions, MakeHttpMember};
use proxy_balancer::server::{Server, ServerHandle};
use proxy_balancer::site::Site;
use proxy_balancer::{Balancer, BalancerParams, BalancerStore, MemberParams, StatusFlags};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tower::ServiceExt;

/// Every wait in these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(10);

/// A member answering each request with what `answer` makes of the request head it read
/// (the head is also kept). Stops when dropped.
struct RawMember {
    addr: SocketAddr,
    heads: Arc<parking_lot::Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Drop for RawMember {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Answer = fn(&str) -> Vec<u8>;

impl RawMember {
    async fn start(answer: Answer) -> Self {
        Self::start_with(answer, false).await
    }

    /// With `continue_first`, a request with `Expect: 100-continue` gets `100 Continue`;
    /// the body (6 bytes) is then read and echoed after the head.
    async fn start_with(answer: Answer, continue_first: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("bound");
        let heads = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let seen = Arc::clone(&heads);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let end = loop {
                        if let Some(end) = find(&buf, b"\r\n\r\n") {
                            break end;
                        }
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    seen.lock().push(head.clone());
                    let mut out = Vec::new();
                    if continue_first {
                        if head.to_ascii_lowercase().contains("expect: 100-continue") {
                            let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await;
                        }
                        let mut body = buf[end + 4..].to_vec();
                        while body.len() < 6 {
                            match timeout(Duration::from_secs(2), stream.read(&mut chunk)).await {
                                Ok(Ok(n)) if n > 0 => body.extend_from_slice(&chunk[..n]),
                                _ => break,
                            }
                        }
                        let text = format!("{head}\r\n\r\nBODY:{}", String::from_utf8_lossy(&body));
                        out.extend_from_slice(
                            format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                                text.len()
                            )
                            .as_bytes(),
                        );
                    } else {
                        out = answer(&head);
                    }
                    let _ = stream.write_all(&out).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self { addr, heads, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn last_head(&self) -> String {
        self.heads.lock().last().cloned().unwrap_or_default()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The request head echoed as the body, with a member `Via`.
fn echo_with_via(head: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nVia: 1.1 upstream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{head}",
        head.len()
    )
    .into_bytes()
}

/// The status of the path `/status/NNN`, with a member header and body.
fn status_of_path(head: &str) -> Vec<u8> {
    let path = head.split(' ').nth(1).unwrap_or("/");
    let code = path.strip_prefix("/status/").unwrap_or("200");
    let body = format!("member body {code}");
    format!(
        "HTTP/1.1 {code} X\r\nContent-Type: text/plain\r\nX-Member: yes\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A header line that is no `name: value`.
fn bad_header(_: &str) -> Vec<u8> {
    b"HTTP/1.1 200 OK\r\nX-A: 1\r\nthis is not a header\r\nX-B: 2\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
        .to_vec()
}

/// `X-Long` of the length in the path (`/long/91`).
fn long_header(head: &str) -> Vec<u8> {
    let path = head.split(' ').nth(1).unwrap_or("/");
    let n: usize = path
        .strip_prefix("/long/")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    format!(
        "HTTP/1.1 200 OK\r\nX-Long: {}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        "a".repeat(n)
    )
    .into_bytes()
}

/// 417 at once, without reading any body.
fn expectation_failed(_: &str) -> Vec<u8> {
    b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
}

async fn serve(text: &str) -> ServerHandle {
    let config = parse(text).expect("a valid config");
    let site = Site::from_config(&config).expect("buildable");
    Server::new()
        .listen("127.0.0.1:0".parse().expect("addr"), site)
        .await
        .expect("a loopback port")
}

/// Sends raw request bytes and reads the whole answer (the request asks for
/// `Connection: close`).
async fn raw(addr: SocketAddr, request: &str) -> String {
    timeout(BOUND, async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .expect("answered in time")
}

fn get(path: &str, host: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n")
}

fn via_lines(answer: &str) -> Vec<&str> {
    let head = answer.split("\r\n\r\n").next().unwrap_or("");
    head.lines()
        .filter_map(|l| {
            l.split_once(':')
                .filter(|(n, _)| n.eq_ignore_ascii_case("via"))
                .map(|(_, v)| v.trim())
        })
        .collect()
}

// ===== ProxyVia =====

/// Apache 2.4.71, `ProxyVia On`, `Host: 127.0.0.1:18601`: the member got
/// `Via: 1.1 via-on.example:18601` (a client's `Via: 1.0 client` became
/// `1.0 client, 1.1 via-on.example:18601`), and the answer had the member's
/// `Via: 1.1 upstream` then `Via: 1.1 via-on.example:18601` on a line of its own.
/// `Host: foo` (no port) gave `1.1 via-on.example`; `Full` added ` (Apache/2.4.71)`;
/// `Block` removed the client's `Via` from the request, added none, and left the member's
/// on the answer.
#[tokio::test]
async fn proxy_via_on_full_and_block_as_apache() {
    let member = RawMember::start(echo_with_via).await;
    let base = format!("ServerName via-on.example\nProxyPass / {}/\n", member.url());

    let on = serve(&format!("{base}ProxyVia On\n")).await;
    let answer = raw(
        on.local_addr(),
        &get("/x", "front:18601", "Via: 1.0 client\r\n"),
    )
    .await;
    assert!(
        member
            .last_head()
            .contains("\r\nvia: 1.0 client, 1.1 via-on.example:18601"),
        "{}",
        member.last_head()
    );
    assert_eq!(
        via_lines(&answer),
        ["1.1 upstream", "1.1 via-on.example:18601"],
        "{answer}"
    );
    let _ = raw(on.local_addr(), &get("/x", "foo", "")).await;
    assert!(
        member
            .last_head()
            .contains("\r\nvia: 1.1 via-on.example\r\n")
            || member.last_head().ends_with("via: 1.1 via-on.example")
    );
    on.shutdown().await.expect("stops");

    let full = serve(&format!("{base}ProxyVia Full\n")).await;
    let answer = raw(full.local_addr(), &get("/x", "front:99", "")).await;
    let ours = format!(
        "1.1 via-on.example:99 (proxy-balancer/{})",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(via_lines(&answer), ["1.1 upstream", ours.as_str()]);
    full.shutdown().await.expect("stops");

    let block = serve(&format!("{base}ProxyVia Block\n")).await;
    let answer = raw(
        block.local_addr(),
        &get("/x", "front:99", "Via: 1.0 client\r\n"),
    )
    .await;
    assert!(!member.last_head().to_ascii_lowercase().contains("via:"));
    assert_eq!(via_lines(&answer), ["1.1 upstream"]);
    block.shutdown().await.expect("stops");

    // Off (the default): the client's Via passes as sent, nothing added.
    let off = serve(&base).await;
    let answer = raw(off.local_addr(), &get("/x", "front", "Via: 1.0 client\r\n")).await;
    assert!(member.last_head().contains("\r\nvia: 1.0 client"));
    assert_eq!(via_lines(&answer), ["1.1 upstream"]);
    off.shutdown().await.expect("stops");
}

// ===== ProxyErrorOverride =====

/// Apache 2.4.71, `ProxyErrorOverride On`: the member's `404 X` (with `X-Member` and its
/// body) was answered 404 with Apache's own HTML page and none of the member's headers;
/// 401, 500, 503 likewise; 200 passed as sent. `ProxyErrorOverride On 503 404`: 404 and
/// 503 replaced, 500 passed with the member's body. Our own page is the proxy's plain-text
/// error page (as for its own 502/503), not Apache's HTML.
#[tokio::test]
async fn proxy_error_override_replaces_member_errors() {
    let member = RawMember::start(status_of_path).await;
    let all = serve(&format!(
        "ProxyErrorOverride On\nProxyPass / {}/\n",
        member.url()
    ))
    .await;
    for code in [404, 401, 500, 503] {
        let answer = raw(all.local_addr(), &get(&format!("/status/{code}"), "f", "")).await;
        assert!(answer.starts_with(&format!("HTTP/1.1 {code} ")), "{answer}");
        assert!(!answer.contains("x-member"), "{answer}");
        assert!(!answer.contains("member body"), "{answer}");
    }
    let answer = raw(all.local_addr(), &get("/status/404", "f", "")).await;
    assert!(answer.ends_with("404 Not Found\n"), "{answer}");
    let answer = raw(all.local_addr(), &get("/status/200", "f", "")).await;
    assert!(answer.contains("member body 200"), "{answer}");
    all.shutdown().await.expect("stops");

    let some = serve(&format!(
        "ProxyErrorOverride On 503 404\nProxyPass / {}/\n",
        member.url()
    ))
    .await;
    let answer = raw(some.local_addr(), &get("/status/500", "f", "")).await;
    assert!(answer.contains("member body 500"), "{answer}");
    let answer = raw(some.local_addr(), &get("/status/503", "f", "")).await;
    assert!(!answer.contains("member body"), "{answer}");
    some.shutdown().await.expect("stops");

    // Off (the default): the member's error passes as sent.
    let off = serve(&format!("ProxyPass / {}/\n", member.url())).await;
    let answer = raw(off.local_addr(), &get("/status/404", "f", "")).await;
    assert!(answer.contains("member body 404"), "{answer}");
    off.shutdown().await.expect("stops");
}

// ===== ProxyBadHeader =====

/// Apache 2.4.71 with a member line `this is not a header`: `IsError` (the default) 502
/// (AH01106); `Ignore` 200 with `X-A` and `X-B`, the line skipped (AH01100); `StartBody`
/// 200 with the line and the rest as a chunked body (AH01098): refused here, as hyper's
/// client cannot do that.
#[tokio::test]
async fn proxy_bad_header_is_error_or_ignore_and_start_body_refused() {
    let member = RawMember::start(bad_header).await;
    let is_error = serve(&format!("ProxyPass / {}/\n", member.url())).await;
    let answer = raw(is_error.local_addr(), &get("/", "f", "")).await;
    assert!(answer.starts_with("HTTP/1.1 502 "), "{answer}");
    is_error.shutdown().await.expect("stops");

    let ignore = serve(&format!(
        "ProxyBadHeader Ignore\nProxyPass / {}/\n",
        member.url()
    ))
    .await;
    let answer = raw(ignore.local_addr(), &get("/", "f", "")).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(
        answer.contains("x-a: 1") && answer.contains("x-b: 2"),
        "{answer}"
    );
    assert!(answer.ends_with("hello"), "{answer}");
    ignore.shutdown().await.expect("stops");

    let refused = parse("ProxyBadHeader StartBody\n").expect_err("refused");
    let text = refused.to_string();
    assert!(
        text.contains("line 1, column 16") && text.contains("StartBody is not supported"),
        "{text}"
    );
}

// ===== responsefieldsize =====

/// Apache 2.4.71, `responsefieldsize=100`: `X-Long: ` and 91 bytes (a 99-byte line) 200;
/// 92 bytes (100) 502, AH10124 "header size is over the limit allowed by
/// ResponseFieldSize (100 bytes)".
#[tokio::test]
async fn responsefieldsize_refuses_a_long_member_header_line() {
    let member = RawMember::start(long_header).await;
    let site = serve(&format!(
        "ProxyPass / {}/ responsefieldsize=100\n",
        member.url()
    ))
    .await;
    let answer = raw(site.local_addr(), &get("/long/91", "f", "")).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    let answer = raw(site.local_addr(), &get("/long/92", "f", "")).await;
    assert!(answer.starts_with("HTTP/1.1 502 "), "{answer}");
    site.shutdown().await.expect("stops");

    // Apache's default, 8192.
    let default = serve(&format!("ProxyPass / {}/\n", member.url())).await;
    let answer = raw(default.local_addr(), &get("/long/8000", "f", "")).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    let answer = raw(default.local_addr(), &get("/long/9000", "f", "")).await;
    assert!(answer.starts_with("HTTP/1.1 502 "), "{answer}");
    default.shutdown().await.expect("stops");
}

// ===== Proxy100Continue =====

/// Sends a POST with `Expect: 100-continue`, its body only after a `100 Continue` came
/// back (none within 2 s: the body is not sent). Returns the whole answer.
async fn post_expecting(addr: SocketAddr) -> (String, bool) {
    timeout(BOUND, async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(
                b"POST /expect HTTP/1.1\r\nHost: f\r\nExpect: 100-continue\r\nContent-Length: 6\r\nConnection: close\r\n\r\n",
            )
            .await
            .expect("write");
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        let continued = loop {
            match timeout(Duration::from_secs(2), stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => {
                    got.extend_from_slice(&chunk[..n]);
                    if got.starts_with(b"HTTP/1.1 100 ") && find(&got, b"\r\n\r\n").is_some() {
                        break true;
                    }
                    if find(&got, b"\r\n\r\n").is_some() {
                        break false;
                    }
                }
                _ => break false,
            }
        };
        if continued {
            stream.write_all(b"abcdef").await.expect("body");
        }
        let _ = stream.read_to_end(&mut got).await;
        (String::from_utf8_lossy(&got).into_owned(), continued)
    })
    .await
    .expect("answered in time")
}

/// Apache 2.4.71: `Proxy100Continue On` (the default) forwarded `Expect: 100-continue`,
/// relayed the member's `100 Continue`, then the body; a member answering 417 at once gave
/// the client 417 and the body was never sent. `Off`: the member got no `Expect`, Apache
/// sent the 100 itself.
#[tokio::test]
async fn proxy_100_continue_forwards_or_answers_the_expectation() {
    let member = RawMember::start_with(echo_with_via, true).await;
    let on = serve(&format!("ProxyPass / {}/\n", member.url())).await;
    let (answer, continued) = post_expecting(on.local_addr()).await;
    assert!(continued, "{answer}");
    assert!(answer.contains("BODY:abcdef"), "{answer}");
    assert!(
        member
            .last_head()
            .to_ascii_lowercase()
            .contains("expect: 100-continue"),
        "{}",
        member.last_head()
    );
    on.shutdown().await.expect("stops");

    let off = serve(&format!(
        "Proxy100Continue Off\nProxyPass / {}/\n",
        member.url()
    ))
    .await;
    let (answer, continued) = post_expecting(off.local_addr()).await;
    assert!(continued, "{answer}");
    assert!(answer.contains("BODY:abcdef"), "{answer}");
    assert!(!member.last_head().to_ascii_lowercase().contains("expect:"));
    off.shutdown().await.expect("stops");

    let refusing = RawMember::start(expectation_failed).await;
    let on = serve(&format!("ProxyPass / {}/\n", refusing.url())).await;
    let (answer, continued) = post_expecting(on.local_addr()).await;
    assert!(!continued, "{answer}");
    assert!(answer.starts_with("HTTP/1.1 417 "), "{answer}");
    on.shutdown().await.expect("stops");
}

// ===== iobuffersize =====

/// `iobuffersize=1024`: a member body written at once reaches the proxy's client in pieces
/// of at most 1024 bytes (Apache reads the member in `iobuffersize` pieces).
#[tokio::test]
async fn iobuffersize_bounds_the_pieces_relayed() {
    let member = RawMember::start(|_| {
        let body = "z".repeat(100_000);
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    })
    .await;
    let members = [MemberParams::new(&member.url()).expect("url")];
    let now = tokio::time::Instant::now().into_std();
    let store =
        Arc::new(BalancerStore::new(BalancerParams::new("io"), members, now).expect("store"));
    let make = MakeHttpMember::<Full<Bytes>>::new()
        .with_default_options(ClientOptions::new().with_io_buffer_size(Some(1024)));
    let balancer = Balancer::new(store, make);
    let response = timeout(
        BOUND,
        balancer.oneshot(
            http::Request::get("/")
                .body(Full::new(Bytes::new()))
                .expect("req"),
        ),
    )
    .await
    .expect("in time")
    .expect("answered");
    let mut body = response.into_body();
    let (mut total, mut largest) = (0, 0);
    while let Some(frame) = timeout(BOUND, body.frame()).await.expect("in time") {
        if let Ok(data) = frame.expect("frame").into_data() {
            total += data.len();
            largest = largest.max(data.len());
        }
    }
    assert_eq!(total, 100_000);
    assert!(largest <= 1024, "largest piece {largest}");
}

// ===== HeartbeatListen =====

/// `HeartbeatListen` starts the listener (Apache's mod_heartmonitor): a datagram from
/// 127.0.0.1 with `port=` is the load report of that member of a `lbmethod=heartbeat`
/// balancer.
#[tokio::test]
async fn heartbeat_listen_feeds_lbmethod_heartbeat() {
    let config = parse(
        "HeartbeatListen 127.0.0.1:0\n\
         <Proxy balancer://hb>\n\
         BalancerMember http://127.0.0.1:18691\n\
         BalancerMember http://127.0.0.1:18692\n\
         ProxySet lbmethod=heartbeat\n\
         </Proxy>\n\
         ProxyPass / balancer://hb/\n",
    )
    .expect("valid");
    let site = Site::from_config(&config).expect("buildable");
    let listener = site.heartbeat().expect("listening");
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    sender
        .send_to(b"v=1&ready=40&busy=2&port=18692", listener.local_addr())
        .expect("sent");
    let store = Arc::clone(&site.stores()[0]);
    let reported = timeout(BOUND, async {
        loop {
            let snapshot = store.snapshot();
            if let Some(report) = snapshot.members()[1].state().load_report() {
                return (report.ready(), report.busy());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the report arrives");
    assert_eq!(reported, (40, 2));
    assert!(store.snapshot().members()[0]
        .state()
        .load_report()
        .is_none());

    // Without HeartbeatListen, nothing listens.
    let config = parse("<Proxy balancer://hb>\nBalancerMember http://127.0.0.1:1\n</Proxy>\n")
        .expect("valid");
    assert!(Site::from_config(&config)
        .expect("buildable")
        .heartbeat()
        .is_none());
}

// ===== BalancerPersist =====

/// `BalancerPersist On` keeps the manager's state in `DefaultRuntimeDir`; saved state for
/// a member the configuration no longer has is dropped (Apache would keep showing it), and
/// without a directory the configuration is refused.
#[tokio::test]
async fn balancer_persist_applies_saved_state_and_the_config_wins() {
    let dir = std::env::temp_dir().join(format!("pb-persist-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let config_text = |members: &[&str]| {
        let mut text = format!(
            "BalancerPersist On\nDefaultRuntimeDir {}\n<Proxy balancer://app>\n",
            dir.display()
        );
        for m in members {
            text.push_str(&format!("BalancerMember {m}\n"));
        }
        text.push_str(
            "</Proxy>\nProxyPass / balancer://app/\n<Location /balancer-manager>\nSetHandler balancer-manager\n</Location>\n",
        );
        text
    };
    let file = dir.join("proxy-balancer-manager.state");
    // The state a manager edit leaves: member 2 disabled.
    std::fs::write(
        &file,
        "b=app&w=http%3A%2F%2F127.0.0.1%3A18692&w_status_D=1\n",
    )
    .expect("state");
    let both = parse(&config_text(&[
        "http://127.0.0.1:18691",
        "http://127.0.0.1:18692",
    ]))
    .expect("valid");
    let site = Site::from_config(&both).expect("buildable");
    let snapshot = site.stores()[0].snapshot();
    assert!(snapshot.members()[1]
        .flags()
        .contains(StatusFlags::DISABLED));
    assert!(!snapshot.members()[0]
        .flags()
        .contains(StatusFlags::DISABLED));
    drop(site);

    // The configuration drops member 2: its saved line goes, and stays gone when it comes
    // back.
    let one = parse(&config_text(&["http://127.0.0.1:18691"])).expect("valid");
    let site = Site::from_config(&one).expect("buildable");
    assert_eq!(site.stores()[0].snapshot().members().len(), 1);
    drop(site);
    let saved = std::fs::read_to_string(&file).expect("rewritten");
    assert!(!saved.contains("18692"), "{saved}");
    let site = Site::from_config(&both).expect("buildable");
    assert!(!site.stores()[0].snapshot().members()[1]
        .flags()
        .contains(StatusFlags::DISABLED));
    drop(site);
    let _ = std::fs::remove_dir_all(&dir);

    // No directory for the state: refused, naming the manager's line.
    let mut no_dir = both;
    no_dir.default_runtime_dir = None;
    let error = Site::from_config(&no_dir).expect_err("refused");
    assert!(error.to_string().contains("BalancerPersist"), "{error}");
}

// ===== ProxyHCTPsize =====

/// Starts a member whose health endpoint answers after 1.2 s (longer than the 1 s
/// `hcinterval`, so that unbounded checks of two members overlap whatever their start
/// spread), counting the checks in
/// flight across all such members in `now`/`max`.
async fn slow_health(now: Arc<AtomicUsize>, max: Arc<AtomicUsize>) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("bound");
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let (now, max) = (Arc::clone(&now), Arc::clone(&max));
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let in_flight = now.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(in_flight, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1200)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (addr, task)
}

/// `ProxyHCTPsize 0`: one check at a time across every balancer (Apache: "no threadpool
/// is used at all, resulting in serialized health checks"); 16 (the default) lets the
/// checks of two balancers overlap.
#[tokio::test]
async fn proxy_hc_tpsize_bounds_the_checks_server_wide() {
    for (size, expected_max) in [("0", 1), ("16", 2)] {
        let (now, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (a, task_a) = slow_health(Arc::clone(&now), Arc::clone(&max)).await;
        let (b, task_b) = slow_health(Arc::clone(&now), Arc::clone(&max)).await;
        let config = parse(&format!(
            "ProxyHCTPsize {size}\n\
             <Proxy balancer://a>\nBalancerMember http://{a} hcmethod=GET hcinterval=1\n</Proxy>\n\
             <Proxy balancer://b>\nBalancerMember http://{b} hcmethod=GET hcinterval=1\n</Proxy>\n"
        ))
        .expect("valid");
        let site = Site::from_config(&config).expect("buildable");
        // The first checks of both members, and more.
        tokio::time::sleep(Duration::from_millis(3000)).await;
        drop(site);
        task_a.abort();
        task_b.abort();
        assert_eq!(
            max.load(Ordering::SeqCst),
            expected_max,
            "ProxyHCTPsize {size}"
        );
    }
}
