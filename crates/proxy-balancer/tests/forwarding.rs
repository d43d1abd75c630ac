//! The forwarding layers over real sockets: a client, a hyper front server running
//! `ReverseLayer` + `ForwardLayer` + a `Balancer` over `MakeHttpMember`, and a loopback
//! `TestBackend` member that records the requests it receives.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, Version};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use proxy_balancer::client::MakeHttpMember;
use proxy_balancer::proxy_pass::{ForwardLayer, ForwardedHeaders, ProxyPassReverse, ReverseLayer};
use proxy_balancer::{Balancer, BalancerParams, BalancerStore, MemberParams, PeerAddr};
use proxy_balancer_test::{RecordedRequest, TestBackend};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tower::{ServiceBuilder, ServiceExt};

/// Every wait in these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(10);

/// The host the client asks the front for.
const FRONT_HOST: &str = "www.example.test";

/// A member behind a front server; the server stops when this is dropped.
struct Front {
    member: TestBackend,
    addr: SocketAddr,
    server: JoinHandle<()>,
}

impl Drop for Front {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Front {
    /// `host:port` of the member, as `ProxyPreserveHost Off` sends it.
    fn member_authority(&self) -> String {
        self.member.url().trim_start_matches("http://").to_owned()
    }

    /// The request the member saw last.
    fn seen(&self) -> RecordedRequest {
        self.member
            .last_request()
            .expect("the member got the request")
    }
}

/// Starts a member and a front server (HTTP/1.1 and h2c) forwarding to it with `forward`
/// and rewriting responses with `reverse`.
async fn front(forward: ForwardedHeaders, reverse: ReverseLayer) -> Front {
    let member = TestBackend::start("member")
        .await
        .expect("bind 127.0.0.1:0");
    let store = Arc::new(
        BalancerStore::new(
            BalancerParams::new("balancer://front"),
            [MemberParams::new(&member.url()).expect("a loopback url")],
            tokio::time::Instant::now().into_std(),
        )
        .expect("one member"),
    );
    let service = ServiceBuilder::new()
        .layer(reverse)
        .layer(ForwardLayer::new(forward))
        .service(Balancer::new(store, MakeHttpMember::<Incoming>::new()));
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("bound");
    let server = tokio::spawn(async move {
        let builder = auto::Builder::new(TokioExecutor::new());
        // Bounded: no test opens more connections than this.
        for _ in 0..64 {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let service = service
                .clone()
                .map_request(move |mut request: Request<Incoming>| {
                    request.extensions_mut().insert(PeerAddr(peer));
                    request
                });
            let connection = builder
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                .into_owned();
            tokio::spawn(async move {
                let _ = connection.await;
            });
        }
    });
    Front {
        member,
        addr,
        server,
    }
}

/// Sends `request` to the front over a new HTTP/1.1 connection; the response, body read.
async fn send_h1(front: &Front, request: Request<Empty<Bytes>>) -> Response<Bytes> {
    timeout(BOUND, async {
        let stream = TcpStream::connect(front.addr).await.expect("connect");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        let response = sender.send_request(request).await.expect("a response");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("a body").to_bytes();
        Response::from_parts(parts, body)
    })
    .await
    .expect("bounded")
}

fn get(path: &str) -> http::request::Builder {
    Request::get(path).header(header::HOST, FRONT_HOST)
}

fn empty(builder: http::request::Builder) -> Request<Empty<Bytes>> {
    builder.body(Empty::new()).expect("a valid request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_never_reach_the_member() {
    let front = front(ForwardedHeaders::new(), ReverseLayer::new()).await;
    let request = get("/hop")
        .header(header::CONNECTION, "keep-alive, X-Secret")
        .header("x-secret", "1")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        .header(header::TE, "trailers")
        .header(header::TRAILER, "x-checksum")
        .header(header::PROXY_AUTHORIZATION, "Basic Zm9vOmJhcg==")
        .header("x-end-to-end", "kept");
    let response = send_h1(&front, empty(request)).await;
    assert_eq!(response.status(), 200);
    let seen = front.seen();
    for name in [
        "connection",
        "x-secret",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "proxy-authorization",
        "transfer-encoding",
        "upgrade",
    ] {
        assert_eq!(seen.header(name), None, "{name} reached the member");
    }
    assert_eq!(seen.header("x-end-to-end"), Some("kept"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_of_the_member_never_reach_the_client() {
    let front = front(ForwardedHeaders::new(), ReverseLayer::new()).await;
    front
        .member
        .set_header(header::CONNECTION, HeaderValue::from_static("x-member-hop"));
    front.member.set_header(
        HeaderName::from_static("x-member-hop"),
        HeaderValue::from_static("1"),
    );
    front.member.set_header(
        HeaderName::from_static("keep-alive"),
        HeaderValue::from_static("timeout=5"),
    );
    let response = send_h1(&front, empty(get("/"))).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("x-member-hop"), None);
    assert_eq!(response.headers().get("keep-alive"), None);
    assert_eq!(response.headers()["x-backend"], "member");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_headers_as_mod_proxy_adds_them() {
    let opts = ForwardedHeaders::new().with_server_name("proxy1.example.test");
    let front = front(opts, ReverseLayer::new()).await;

    let response = send_h1(&front, empty(get("/first"))).await;
    assert_eq!(response.status(), 200);
    let seen = front.seen();
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-host"), Some(FRONT_HOST));
    assert_eq!(
        seen.header("x-forwarded-server"),
        Some("proxy1.example.test")
    );

    // Behind another proxy: ours are appended, as apr_table_mergen does.
    let request = get("/second")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-host", "edge.example.test");
    send_h1(&front, empty(request)).await;
    let seen = front.seen();
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(
        seen.header("x-forwarded-host"),
        Some("edge.example.test, www.example.test")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_add_headers_off_sends_none() {
    let opts = ForwardedHeaders::new()
        .with_add_headers(false)
        .with_server_name("proxy1.example.test");
    let front = front(opts, ReverseLayer::new()).await;
    send_h1(&front, empty(get("/"))).await;
    let seen = front.seen();
    for name in ["x-forwarded-for", "x-forwarded-host", "x-forwarded-server"] {
        assert_eq!(seen.header(name), None, "{name} with ProxyAddHeaders Off");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_preserve_host_on_sends_the_clients_host_off_the_members() {
    let off = front(ForwardedHeaders::new(), ReverseLayer::new()).await;
    send_h1(&off, empty(get("/"))).await;
    assert_eq!(
        off.seen().header("host"),
        Some(off.member_authority().as_str())
    );

    let on = front(
        ForwardedHeaders::new().with_preserve_host(true),
        ReverseLayer::new(),
    )
    .await;
    send_h1(&on, empty(get("/"))).await;
    assert_eq!(on.seen().header("host"), Some(FRONT_HOST));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_redirect_is_rewritten_to_the_front_url() {
    let reverse = ReverseLayer::new()
        .with_reverse(ProxyPassReverse::new("/", "balancer://front/").expect("a valid line"));
    let front = front(ForwardedHeaders::new(), reverse).await;
    let location = format!("{}/login?next=%2F", front.member.url());
    front.member.set_status(302);
    front.member.set_header(
        header::LOCATION,
        HeaderValue::from_str(&location).expect("a valid value"),
    );
    front.member.set_header(
        header::CONTENT_LOCATION,
        HeaderValue::from_static("http://elsewhere.test/x"),
    );
    let response = send_h1(&front, empty(get("/account"))).await;
    assert_eq!(response.status(), 302);
    assert_eq!(
        response.headers()[header::LOCATION],
        "http://www.example.test/login?next=%2F"
    );
    assert_eq!(
        response.headers()[header::CONTENT_LOCATION],
        "http://elsewhere.test/x",
        "another host's URL is left alone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_cookies_get_the_front_domain_and_path() {
    let reverse = ReverseLayer::new()
        .with_cookie_domain("backend.internal", FRONT_HOST)
        .with_cookie_path("/app", "/");
    let front = front(ForwardedHeaders::new(), reverse).await;
    front.member.set_header(
        header::SET_COOKIE,
        HeaderValue::from_static("s=1; Domain=backend.internal; Path=/app; HttpOnly"),
    );
    let response = send_h1(&front, empty(get("/"))).await;
    assert_eq!(
        response.headers()[header::SET_COOKIE],
        "s=1; Domain=www.example.test; Path=/; HttpOnly"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_request_forwards_its_authority_as_x_forwarded_host() {
    let reverse = ReverseLayer::new()
        .with_reverse(ProxyPassReverse::new("/", "balancer://front/").expect("a valid line"));
    let front = front(ForwardedHeaders::new(), reverse).await;
    front.member.set_header(
        header::LOCATION,
        HeaderValue::from_str(&format!("{}/h2/next", front.member.url())).expect("valid"),
    );
    let response = timeout(BOUND, async {
        let stream = TcpStream::connect(front.addr).await.expect("connect");
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .expect("h2c prior-knowledge handshake");
        tokio::spawn(connection);
        // :authority only: hyper's HTTP/2 client sends no Host header.
        let request = Request::get("http://www.example.test:8443/h2")
            .version(Version::HTTP_2)
            .body(Empty::<Bytes>::new())
            .expect("valid");
        let response = sender.send_request(request).await.expect("a response");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("a body").to_bytes();
        Response::from_parts(parts, body)
    })
    .await
    .expect("bounded");
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(
        response.headers()[header::LOCATION],
        "http://www.example.test:8443/h2/next"
    );
    let seen = front.seen();
    assert_eq!(seen.path_and_query, "/h2");
    assert_eq!(
        seen.header("x-forwarded-host"),
        Some("www.example.test:8443")
    );
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("host"), Some(front.member_authority().as_str()));
}
