//! The DNS-rebinding defence over real TCP: the manager served by hyper on 127.0.0.1:0 with
//! the `PeerAddr` and `LocalAddr` of each accepted connection (as proxy-balancer's server
//! puts them), spoken to with raw requests as a rebound browser page and an operator would
//! send them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use proxy_balancer_core::{BalancerParams, BalancerStore, MemberParams, StatusFlags};
use proxy_balancer_manager::{BalancerManager, LocalAddr, PeerAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

/// Every exchange ends well within this on loopback.
const EXCHANGE: Duration = Duration::from_secs(10);

/// Connections the test server accepts before it stops by itself.
const MAX_CONNECTIONS: usize = 32;

/// Serves `manager` on 127.0.0.1:0; returns its address.
async fn serve(manager: BalancerManager) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(async move {
        for _ in 0..MAX_CONNECTIONS {
            let Ok((stream, peer)) = listener.accept().await else {
                return;
            };
            let local = stream.local_addr().expect("connected");
            let service = manager
                .clone()
                .map_request(move |mut request: Request<Incoming>| {
                    request.extensions_mut().insert(PeerAddr(peer));
                    request.extensions_mut().insert(LocalAddr(local));
                    request
                });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                    .await;
            });
        }
    });
    addr
}

/// Sends `head` (lines without the final blank line; `Connection: close` and the body's
/// length are added) and `body`; returns the status and the body of the answer.
async fn exchange(addr: SocketAddr, head: &str, body: &str) -> (u16, String) {
    let run = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request = format!(
            "{head}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("read");
        String::from_utf8_lossy(&answer).into_owned()
    };
    let answer = tokio::time::timeout(EXCHANGE, run)
        .await
        .expect("answered in time");
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn setup() -> (Arc<BalancerStore>, BalancerManager) {
    let members = [MemberParams::new("http://127.0.0.1:8001").expect("valid")];
    let now = tokio::time::Instant::now().into_std();
    let store =
        Arc::new(BalancerStore::new(BalancerParams::new("app"), members, now).expect("valid"));
    let manager = BalancerManager::builder("/balancer-manager")
        .balancer(Arc::clone(&store))
        .build();
    (store, manager)
}

fn kind(body: &str) -> String {
    let doc: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    doc["error"]["kind"].as_str().unwrap_or("").to_owned()
}

#[tokio::test]
async fn a_rebound_page_cannot_post_and_the_operator_can() {
    let (store, manager) = setup();
    let nonce = manager.nonce("app").expect("managed");
    let addr = serve(manager).await;
    let port = addr.port();
    let form = format!("b=app&w=http%3A%2F%2F127.0.0.1%3A8001&w_status_D=1&nonce={nonce}");
    let disabled = || {
        store.snapshot().members()[0]
            .flags()
            .contains(StatusFlags::DISABLED)
    };

    // A page of evil.example, rebound to 127.0.0.1: its own origin, a foreign Host.
    let (status, body) = exchange(
        addr,
        &format!(
            "POST /balancer-manager/api HTTP/1.1\r\nHost: evil.example:{port}\r\nOrigin: http://evil.example:{port}"
        ),
        &form,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(kind(&body), "host_not_this_server");
    // Through the page's endpoint: the same, in HTML.
    let (status, body) = exchange(
        addr,
        &format!("POST /balancer-manager HTTP/1.1\r\nHost: evil.example:{port}"),
        &form,
    )
    .await;
    assert_eq!(status, 403);
    assert!(body.contains("does not name this server"), "{body}");
    // Two Host headers, one of them right; an absolute-form target naming another host.
    let (status, body) = exchange(
        addr,
        &format!(
            "POST /balancer-manager/api HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nHost: evil.example"
        ),
        &form,
    )
    .await;
    // hyper lets both through; the manager refuses.
    assert_eq!(status, 403, "{body}");
    assert_eq!(kind(&body), "bad_host");
    let (status, body) = exchange(
        addr,
        &format!(
            "POST http://evil.example:{port}/balancer-manager/api HTTP/1.1\r\nHost: 127.0.0.1:{port}"
        ),
        &form,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(kind(&body), "host_not_this_server");
    assert!(!disabled(), "no refused request changed anything");

    // Views are served, with a cache-buster too.
    let (status, _) = exchange(
        addr,
        &format!("GET /balancer-manager?_=1733300000 HTTP/1.1\r\nHost: evil.example:{port}"),
        "",
    )
    .await;
    assert_eq!(status, 200);

    // The operator's curl, to the address it listens on: taken.
    let (status, body) = exchange(
        addr,
        &format!("POST /balancer-manager/api HTTP/1.1\r\nHost: 127.0.0.1:{port}"),
        &form,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["applied"]["changed"], serde_json::json!(["status"]));
    assert!(disabled());
}
