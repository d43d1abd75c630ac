//! Paths as Apache matches and forwards them, through a real `Server` and `Site` on loopback:
//! raw request lines over a `TcpStream` (an HTTP client would normalise them first), a
//! `ProxyPass "/private" "!"` exclusion that encodings do not bypass, the path each member
//! receives, the balancer-manager's mount, `AllowEncodedSlashes` and `nocanon`.

use std::net::SocketAddr;
use std::time::Duration;

use proxy_balancer::apache_config::parse;
use proxy_balancer::server::{Server, ServerHandle};
use proxy_balancer::site::Site;
use proxy_balancer_test::{start_demo_backends, TestBackend};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Where the proxy under test listens: loopback, a port the system picks.
const LOOPBACK: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    0,
));

/// Bound on one raw exchange: loopback answers in milliseconds.
const EXCHANGE: Duration = Duration::from_secs(10);

/// The part of an answer the tests look at.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// The `x-backend` header the demo members set: who answered.
    backend: Option<String>,
}

/// Sends `GET {target} HTTP/1.1` as written and reads the answer head.
async fn get_raw(addr: SocketAddr, target: &str) -> Answer {
    timeout(EXCHANGE, async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request =
            format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("request written");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("answer read");
        let text = String::from_utf8_lossy(&answer);
        let head = text.split("\r\n\r\n").next().unwrap_or_default();
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("a status line for {target}: {text:?}"));
        let backend = lines.find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("x-backend")
                .then(|| value.trim().to_owned())
        });
        Answer { status, backend }
    })
    .await
    .expect("bounded exchange")
}

async fn serve(config: &str) -> ServerHandle {
    let config = parse(config).expect("a valid config");
    let site = Site::from_config(&config).expect("buildable");
    Server::new()
        .listen(LOOPBACK, site)
        .await
        .expect("a loopback port")
}

fn config(member: &TestBackend, extra: &str) -> String {
    format!(
        r#"
{extra}
<Proxy "balancer://app">
    BalancerMember "{}"
</Proxy>
<Location "/balancer-manager">
    SetHandler balancer-manager
    Require ip 127.0.0.1
</Location>
ProxyPass "/private" "!"
ProxyPass "/raw" "balancer://app/raw" nocanon
ProxyPass "/" "balancer://app/"
"#,
        member.url()
    )
}

/// What the member received for `target`: the answer must be the member's.
async fn member_path(addr: SocketAddr, member: &TestBackend, target: &str) -> String {
    let answer = get_raw(addr, target).await;
    assert_eq!(answer.status, 200, "{target}");
    assert_eq!(answer.backend.as_deref(), Some(member.name()), "{target}");
    member
        .last_request()
        .expect("the member got it")
        .path_and_query
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encodings_and_dot_segments_do_not_bypass_an_exclusion() {
    let backends = start_demo_backends(1).await.expect("loopback ports");
    let running = serve(&config(&backends[0], "")).await;
    let addr = running.local_addr();
    for (target, status) in [
        ("/private/x", 404),
        ("/%70rivate/x", 404),
        ("/private%2fx", 404),
        ("/x/..%2fprivate", 404),
        ("/private%00", 404),
        ("/x/../private", 404),
        ("/./private", 404),
        ("/x/%2e%2e/private", 404),
        ("/x/.%2E/private", 404),
        ("/priv%61te", 404),
        ("//private", 404),
        // Above the root, and bad escapes: 400, as Apache.
        ("/%2e%2e/private", 400),
        ("/../private", 400),
        ("/private%zz", 400),
        ("/%", 400),
    ] {
        let answer = get_raw(addr, target).await;
        assert_eq!(answer.status, status, "{target}");
        assert_eq!(answer.backend, None, "{target} reached the member");
    }
    assert_eq!(backends[0].hits(), 0, "no refused path reached the member");
    running.shutdown().await.expect("stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_member_receives_the_path_apache_sends() {
    let backends = start_demo_backends(1).await.expect("loopback ports");
    let member = &backends[0];
    let running = serve(&config(member, "")).await;
    let addr = running.local_addr();
    for (target, seen) in [
        ("/plain/path", "/plain/path"),
        ("/a%20b", "/a%20b"),
        ("/%C3%A9t%C3%A9", "/%C3%A9t%C3%A9"),
        // Lowercase hex is sent uppercase; unreserved and allowed characters decoded.
        ("/%c3%a9", "/%C3%A9"),
        ("/%7e%41%2c%3b", "/~A,;"),
        ("/a%3Fb%23c", "/a%3Fb%23c"),
        ("/100%25", "/100%25"),
        ("/a/./b/../c", "/a/c"),
        ("/a/b/..", "/a/"),
        ("//a///b", "/a/b"),
        ("/privateer", "/privateer"),
        // The query goes as sent.
        ("/q?x=%2F&y=%20&z=%zz", "/q?x=%2F&y=%20&z=%zz"),
        ("/a/../q?", "/q?"),
    ] {
        assert_eq!(member_path(addr, member, target).await, seen, "{target}");
    }
    running.shutdown().await.expect("stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_mount_is_matched_on_the_normalised_path() {
    let backends = start_demo_backends(1).await.expect("loopback ports");
    let member = &backends[0];
    let running = serve(&config(member, "")).await;
    let addr = running.local_addr();
    for target in [
        "/balancer-manager",
        "/x/../balancer-manager",
        "/balancer-m%61nager",
        "//balancer-manager",
    ] {
        let answer = get_raw(addr, target).await;
        assert_eq!(answer.status, 200, "{target}");
        assert_eq!(answer.backend, None, "{target} went to the member");
    }
    assert_eq!(member.hits(), 0);
    assert_eq!(
        member_path(addr, member, "/balancer-manager/../app").await,
        "/app"
    );
    running.shutdown().await.expect("stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_encoded_slashes_on_decodes_and_normalises_again() {
    let backends = start_demo_backends(1).await.expect("loopback ports");
    let member = &backends[0];
    let running = serve(&config(member, "AllowEncodedSlashes On")).await;
    let addr = running.local_addr();
    assert_eq!(member_path(addr, member, "/a%2Fb").await, "/a/b");
    assert_eq!(member_path(addr, member, "/a/.%2F%2Fb").await, "/a/b");
    for (target, status) in [
        ("/private%2Fx", 404),
        ("/x/..%2Fprivate", 404),
        ("/a%00", 404),
        ("/a%2F%zz", 400),
    ] {
        let answer = get_raw(addr, target).await;
        assert_eq!(answer.status, status, "{target}");
        assert_eq!(answer.backend, None, "{target}");
    }
    assert_eq!(member.hits(), 2);
    running.shutdown().await.expect("stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_encoded_slashes_nodecode_keeps_them_encoded() {
    let backends = start_demo_backends(1).await.expect("loopback ports");
    let member = &backends[0];
    let running = serve(&config(member, "AllowEncodedSlashes NoDecode")).await;
    let addr = running.local_addr();
    assert_eq!(member_path(addr, member, "/a%2Fb").await, "/a%2Fb");
    assert_eq!(member_path(addr, member, "/a%2fb%20c").await, "/a%2fb%20c");
    // `%2F` is not a separator: `/x/..%2Fprivate` is a segment `..%2Fprivate` under `/x`,
    // and `/private%2Fx` is not under `/private` (as Apache's `alias_match` on `r->uri`).
    assert_eq!(
        member_path(addr, member, "/x/..%2Fprivate").await,
        "/x/..%2Fprivate"
    );
    assert_eq!(
        member_path(addr, member, "/private%2Fx").await,
        "/private%2Fx"
    );
    for target in ["/%70rivate/x", "/private%00", "/x/../private"] {
        assert_eq!(get_raw(addr, target).await.status, 404, "{target}");
    }
    assert_eq!(member.hits(), 4);
    running.shutdown().await.expect("stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nocanon_forwards_the_path_as_sent() {
    let backends = start_demo_backends(1).await.expect("loopback ports");
    let member = &backends[0];
    let running = serve(&config(member, "")).await;
    let addr = running.local_addr();
    // `ProxyPass "/raw" … nocanon`: the rest as sent, even dot segments and lowercase hex.
    for (target, seen) in [
        ("/raw/a%2cb/%7e?q=%41", "/raw/a%2cb/%7e?q=%41"),
        ("/raw/a%c3%a9", "/raw/a%c3%a9"),
        ("/raw/x/./y", "/raw/x/./y"),
        // The path as sent does not match `/raw` as the decoded one does: Apache ignores
        // nocanon (AH01136) and sends the canonical form.
        ("/r%61w/a%2cb", "/raw/a,b"),
        ("//raw/a%2cb", "/raw/a,b"),
    ] {
        assert_eq!(member_path(addr, member, target).await, seen, "{target}");
    }
    // nocanon does not open the exclusion, nor let `%2F` through.
    assert_eq!(get_raw(addr, "/raw/../private").await.status, 404);
    assert_eq!(get_raw(addr, "/raw/a%2Fb").await.status, 404);
    // Without nocanon, the same rest is canonical.
    assert_eq!(member_path(addr, member, "/x/a%2cb/%7e").await, "/x/a,b/~");
    running.shutdown().await.expect("stops cleanly");
}
