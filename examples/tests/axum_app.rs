//! The axum-app example, served on loopback and driven by a real client: the app's own
//! route, balancing and failover through the router's fallback, and Apache's 503.

use std::time::Duration;

use bytes::Bytes;
use examples::{bind, demo_store, start_demo_backends};
use http::Request;
use http_body_util::Full;
use proxy_balancer_test::TestClient;

#[expect(
    dead_code,
    reason = "the example's `main` and its arguments are not used here"
)]
#[path = "../axum_app.rs"]
mod axum_app;

/// The example's app served on a loopback port until [`App::stop`].
struct App {
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), examples::BoxError>>,
}

impl App {
    async fn start(store: std::sync::Arc<proxy_balancer::BalancerStore>) -> Self {
        let (listener, addr) = bind("127.0.0.1:0".parse().expect("an address"))
            .await
            .expect("a loopback port");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(axum_app::serve(listener, store, async {
            let _ = stopped.await;
        }));
        Self { addr, stop, server }
    }

    /// Stops it and waits, bounded, for open requests to finish.
    async fn stop(self) {
        self.stop.send(()).expect("the server is running");
        tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .expect("stops within the bound")
            .expect("no panic")
            .expect("no error");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_answers_its_route_and_balances_the_rest() {
    let backends = start_demo_backends(3).await.expect("loopback ports");
    let store = demo_store(&backends).expect("valid demo");
    let app = App::start(store).await;
    let addr = app.addr;
    let client = TestClient::new().with_timeout(Duration::from_secs(5));

    // The app's own route: no backend sees it.
    let response = client
        .get(&format!("http://{addr}/hello"))
        .await
        .expect("an answer");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "hello from the axum app\n");
    assert!(response.header("x-backend").is_none());
    assert!(backends.iter().all(|b| b.hits() == 0));

    // Everything else is balanced, path and query untouched.
    let url = format!("http://{addr}/api/items?page=2");
    let mut names = Vec::new();
    for _ in 0..6 {
        let response = client.get(&url).await.expect("an answer");
        assert_eq!(response.status, 200);
        names.push(
            response
                .header("x-backend")
                .expect("set by the backend")
                .to_owned(),
        );
    }
    assert_eq!(names, ["backend-1", "backend-2", "backend-3"].repeat(2));
    let seen = backends[0].last_request().expect("one request");
    assert_eq!(seen.path_and_query, "/api/items?page=2");

    // A request body goes through axum's body type to the member.
    let post = Request::post(format!("http://{addr}/submit"))
        .body(Full::new(Bytes::from_static(b"name=value")))
        .expect("a valid request");
    let response = client.request(post).await.expect("an answer");
    assert_eq!(response.status, 200);
    let backend = backends
        .iter()
        .find(|b| Some(b.name()) == response.header("x-backend"))
        .expect("one of ours answered");
    assert_eq!(backend.last_request().expect("the post").body, "name=value");

    // A backend goes away: no client-visible error, and it gets nothing more.
    backends[1]
        .take_down()
        .await
        .expect("the port is held while down");
    for _ in 0..6 {
        let response = client.get(&url).await.expect("an answer");
        assert_eq!(response.status, 200);
        assert_ne!(response.header("x-backend"), Some("backend-2"));
    }

    // All gone: Apache's 503 with Retry-After, through the app; its own route still works.
    for backend in [&backends[0], &backends[2]] {
        backend
            .take_down()
            .await
            .expect("the port is held while down");
    }
    let response = client.get(&url).await.expect("an answer");
    assert_eq!(response.status, 503);
    assert!(response.header("retry-after").is_some());
    let response = client
        .get(&format!("http://{addr}/hello"))
        .await
        .expect("an answer");
    assert_eq!(response.status, 200);

    drop(client);
    app.stop().await;
}

/// A WebSocket passes through the app to a member (the app's members take
/// `upgrade=websocket`): messages echo, the member is busy during the tunnel and not after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_passes_through_the_app() {
    use futures_util::{SinkExt, StreamExt};
    use proxy_balancer::{BalancerParams, BalancerStore, MemberParams};
    use tokio_tungstenite::tungstenite::Message;

    const BOUND: Duration = Duration::from_secs(10);
    // A tokio-tungstenite echo member.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let member_addr = listener.local_addr().expect("bound");
    let member = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(message)) = ws.next().await {
                    if message.is_close() {
                        return;
                    }
                    if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    let store = std::sync::Arc::new(
        BalancerStore::new(
            BalancerParams::new("balancer://demo"),
            [MemberParams::new(&format!("http://{member_addr}")).expect("a member URL")],
            tokio::time::Instant::now().into_std(),
        )
        .expect("a store"),
    );
    let busy = || store.snapshot().members()[0].state().busy();
    let app = App::start(std::sync::Arc::clone(&store)).await;

    let stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("the app accepts");
    let url = format!("ws://{}/chat", app.addr);
    let (mut ws, response) =
        tokio::time::timeout(BOUND, tokio_tungstenite::client_async(url, stream))
            .await
            .expect("within the bound")
            .expect("upgraded through the app");
    assert_eq!(response.status(), 101);
    for text in ["hello", "through axum"] {
        ws.send(Message::text(text)).await.expect("sent");
        let echoed = tokio::time::timeout(BOUND, ws.next())
            .await
            .expect("an echo within the bound");
        match echoed {
            Some(Ok(Message::Text(echoed))) => assert_eq!(echoed.as_str(), text),
            other => panic!("no echo: {other:?}"),
        }
    }
    assert_eq!(busy(), 1, "busy during the tunnel");
    ws.close(None).await.expect("closed");
    proxy_balancer_test::wait_for(
        "busy 0 after the tunnel",
        BOUND,
        Duration::from_millis(10),
        || busy() == 0,
    )
    .await;
    member.abort();
    app.stop().await;
}

/// The README's axum snippet is the example's `app`, word for word.
#[test]
fn the_readme_shows_the_examples_app() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let example = std::fs::read_to_string(root.join("examples/axum_app.rs")).expect("the example");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("the README");
    let begin = example.find("// README: begin").expect("the begin marker");
    let code_start = begin + example[begin..].find('\n').expect("a line") + 1;
    let code_end = example.find("// README: end").expect("the end marker");
    let snippet = &example[code_start..code_end];
    assert!(
        readme.contains(&format!("```rust\n{snippet}```")),
        "README.md must show examples/axum_app.rs's app between its markers, as is"
    );
}

/// The app built from the README's snippet forwards as mod_proxy does: hop-by-hop headers
/// never reach a member, X-Forwarded-For (from axum's ConnectInfo) and X-Forwarded-Host are
/// added, the member's Host is sent, a member's redirect is rewritten to the front URL, and
/// the route cookie is set and then followed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_app_forwards_as_mod_proxy_does() {
    use http::{HeaderName, HeaderValue};
    let backends = start_demo_backends(3).await.expect("loopback ports");
    let store = demo_store(&backends).expect("valid demo");
    let app = App::start(store).await;
    let addr = app.addr;
    let client = TestClient::new().with_timeout(Duration::from_secs(5));
    let member = backends[0].url();
    backends[0].set_header(
        HeaderName::from_static("location"),
        HeaderValue::from_str(&format!("{member}/login")).expect("a header value"),
    );
    backends[0].set_header(
        HeaderName::from_static("keep-alive"),
        HeaderValue::from_static("timeout=5"),
    );

    let request = Request::get(format!("http://{addr}/page"))
        .header("host", "www.example.com")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret")
        .header("proxy-connection", "keep-alive")
        .body(Full::new(Bytes::new()))
        .expect("a valid request");
    let response = client.request(request).await.expect("an answer");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-backend"), Some("backend-1"));
    let seen = backends[0].last_request().expect("one request").headers;
    for name in ["connection", "x-hop", "proxy-connection"] {
        assert!(seen.get(name).is_none(), "{name} reached the member");
    }
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen["x-forwarded-host"], "www.example.com");
    assert_eq!(seen["host"], member.trim_start_matches("http://"));
    assert_eq!(
        response.header("location"),
        Some("http://www.example.com/login")
    );
    assert!(response.header("keep-alive").is_none());
    let cookie = response.header("set-cookie").expect("the route cookie");
    assert_eq!(cookie, "ROUTEID=.node1; Path=/");

    // The cookie sticks.
    for _ in 0..3 {
        let request = Request::get(format!("http://{addr}/page"))
            .header("cookie", "ROUTEID=.node1")
            .body(Full::new(Bytes::new()))
            .expect("a valid request");
        let response = client.request(request).await.expect("an answer");
        assert_eq!(response.header("x-backend"), Some("backend-1"));
        assert!(response.header("set-cookie").is_none());
    }

    app.stop().await;
}
