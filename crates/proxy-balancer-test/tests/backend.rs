//! Integration tests of the loopback test kit, against real sockets on 127.0.0.1.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, SET_COOKIE};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use proxy_balancer_test::{init_tracing, BoxError, Mode, TestBackend, TestClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

/// Bound on every wait for a condition that should hold within milliseconds.
const WAIT: Duration = Duration::from_secs(3);
/// Pause between two checks of a condition.
const POLL: Duration = Duration::from_millis(10);

/// Waits (bounded) until `check` holds; fails the test otherwise.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let waited = timeout(WAIT, async {
        // Bounded twice: by the timeout and by the count.
        for _ in 0..1000 {
            if check() {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
    })
    .await;
    assert!(waited.is_ok() && check(), "timed out waiting until {what}");
}

/// Connects once, bounded, and returns the outcome.
async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    timeout(WAIT, TcpStream::connect(addr))
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")))
}

/// Waits (bounded) until connecting to `addr` is refused.
async fn eventually_refused(addr: SocketAddr) {
    for _ in 0..300 {
        match connect(addr).await {
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return,
            _ => tokio::time::sleep(POLL).await,
        }
    }
    panic!("{addr} still accepts connections");
}

/// The error and all its sources, for assertions and for the record.
fn chain(error: &BoxError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// The first error of type `T` in the source chain of `error` (itself included).
fn source_of<T: std::error::Error + 'static>(error: &BoxError) -> Option<&T> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error.as_ref());
    // Bounded: source chains are short, and this one is at most 16 deep.
    for _ in 0..16 {
        let inner = current?;
        if let Some(found) = inner.downcast_ref::<T>() {
            return Some(found);
        }
        current = inner.source();
    }
    None
}

#[tokio::test]
async fn default_response_names_the_backend() {
    init_tracing();
    let backend = TestBackend::start("alpha").await.unwrap();
    assert_eq!(backend.name(), "alpha");
    assert!(backend.addr().ip().is_loopback());
    assert_eq!(
        backend.url(),
        format!("http://127.0.0.1:{}", backend.addr().port())
    );

    let response = TestClient::new().get(&backend.url()).await.unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.header("x-backend"), Some("alpha"));
    assert_eq!(response.text(), "alpha");
    assert_eq!(backend.hits(), 1);
    assert_eq!(backend.health_hits(), 0);
}

#[tokio::test]
async fn builder_sets_initial_behaviour() {
    init_tracing();
    let backend = TestBackend::builder("b")
        .status(201)
        .body("custom")
        .header(SET_COOKIE, HeaderValue::from_static("JSESSIONID=abc.b"))
        .health_status(503)
        .health_body("down")
        .start()
        .await
        .unwrap();
    let client = TestClient::new();

    let response = client.get(&backend.url()).await.unwrap();
    assert_eq!(response.status, StatusCode::CREATED);
    assert_eq!(response.text(), "custom");
    assert_eq!(response.header("set-cookie"), Some("JSESSIONID=abc.b"));

    let health = client
        .get(&format!("{}/health", backend.url()))
        .await
        .unwrap();
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health.text(), "down");
}

#[tokio::test]
async fn status_delay_and_body_size_change_at_runtime() {
    init_tracing();
    let backend = TestBackend::start("b").await.unwrap();
    let client = TestClient::new();

    backend.set_status(503);
    let response = client.get(&backend.url()).await.unwrap();
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.text(), "b");

    backend.set_status(200);
    backend.set_body_size(100_000);
    let response = client.get(&backend.url()).await.unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.body.len(), 100_000);
    assert!(response.body.iter().all(|&b| b == b'x'));

    backend.set_body_size(0);
    assert!(client.get(&backend.url()).await.unwrap().body.is_empty());

    backend.set_delay(Duration::from_millis(150));
    let started = Instant::now();
    let response = client.get(&backend.url()).await.unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(150));

    backend.set_header(SET_COOKIE, HeaderValue::from_static("route=b"));
    backend.set_delay(Duration::ZERO);
    let response = client.get(&backend.url()).await.unwrap();
    assert_eq!(response.header("set-cookie"), Some("route=b"));
    backend.clear_headers();
    let response = client.get(&backend.url()).await.unwrap();
    assert_eq!(response.header("set-cookie"), None);
    assert_eq!(backend.hits(), 6);
}

#[tokio::test]
async fn delay_longer_than_the_client_timeout_times_out() {
    init_tracing();
    let backend = TestBackend::builder("slow")
        .delay(Duration::from_secs(2))
        .start()
        .await
        .unwrap();
    let client = TestClient::new().with_timeout(Duration::from_millis(100));
    assert_eq!(client.timeout(), Duration::from_millis(100));

    let error = client.get(&backend.url()).await.unwrap_err();
    assert!(
        error.is::<tokio::time::error::Elapsed>(),
        "{}",
        chain(&error)
    );
    assert_eq!(backend.hits(), 1);
}

#[tokio::test]
async fn close_without_response_fails_the_request() {
    init_tracing();
    let backend = TestBackend::start("b").await.unwrap();
    backend.set_mode(Mode::CloseWithoutResponse);
    assert_eq!(backend.mode(), Mode::CloseWithoutResponse);

    let error = TestClient::new().get(&backend.url()).await.unwrap_err();
    // What hyper does: "connection closed before message completed".
    eprintln!("CloseWithoutResponse: {}", chain(&error));
    let hyper =
        source_of::<hyper::Error>(&error).unwrap_or_else(|| panic!("not hyper: {}", chain(&error)));
    assert!(hyper.is_incomplete_message(), "{}", chain(&error));
    assert_eq!(backend.hits(), 1);
    eventually("the closed connection is gone", || {
        backend.open_connections() == 0
    })
    .await;
}

#[tokio::test]
async fn reset_fails_the_request() {
    init_tracing();
    let backend = TestBackend::start("b").await.unwrap();
    backend.set_mode(Mode::Reset);

    let error = TestClient::new().get(&backend.url()).await.unwrap_err();
    let text = chain(&error);
    eprintln!("Reset: {text}");
    // What hyper does: an I/O error while reading the response head
    // ("connection error: Connection reset by peer (os error 104)").
    let io = source_of::<io::Error>(&error).unwrap_or_else(|| panic!("not I/O: {text}"));
    assert_eq!(io.kind(), io::ErrorKind::ConnectionReset, "{text}");
    assert_eq!(backend.hits(), 1);
}

#[tokio::test]
async fn raw_socket_sees_each_mode_on_the_wire() {
    init_tracing();
    let backend = TestBackend::start("b").await.unwrap();
    let request = b"GET /x HTTP/1.1\r\nHost: test\r\n\r\n";

    async fn exchange(addr: SocketAddr, request: &[u8]) -> io::Result<Vec<u8>> {
        let mut stream = connect(addr).await?;
        stream.write_all(request).await?;
        let mut received = Vec::new();
        timeout(WAIT, stream.read_to_end(&mut received))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "read timed out"))??;
        Ok(received)
    }

    backend.set_mode(Mode::CloseWithoutResponse);
    assert_eq!(exchange(backend.addr(), request).await.unwrap(), b"");

    backend.set_mode(Mode::Garbage);
    assert_eq!(
        exchange(backend.addr(), request).await.unwrap(),
        b"NOT HTTP\r\n\r\n"
    );

    backend.set_mode(Mode::Reset);
    let error = exchange(backend.addr(), request).await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
    assert_eq!(backend.hits(), 3);
}

#[tokio::test]
async fn garbage_fails_the_request_without_panic() {
    init_tracing();
    let backend = TestBackend::start("b").await.unwrap();
    backend.set_mode(Mode::Garbage);

    let result = TestClient::new().get(&backend.url()).await;
    // What hyper does: a parse error on the status line ("invalid HTTP version parsed").
    let error = result.unwrap_err();
    eprintln!("Garbage: {}", chain(&error));
    let hyper =
        source_of::<hyper::Error>(&error).unwrap_or_else(|| panic!("not hyper: {}", chain(&error)));
    assert!(hyper.is_parse(), "{}", chain(&error));
    assert_eq!(backend.hits(), 1);
}

#[tokio::test]
async fn failure_modes_then_normal_again_on_a_pooled_client() {
    init_tracing();
    let backend = TestBackend::start("b").await.unwrap();
    let client = TestClient::new();
    assert_eq!(client.get(&backend.url()).await.unwrap().status, 200);

    for mode in [Mode::CloseWithoutResponse, Mode::Reset, Mode::Garbage] {
        backend.set_mode(mode);
        assert!(client.get(&backend.url()).await.is_err(), "{mode:?}");
        backend.set_mode(Mode::Normal);
        let response = client.get(&backend.url()).await.unwrap();
        assert_eq!(response.text(), "b", "after {mode:?}");
    }
    assert_eq!(backend.hits(), 7);
}

#[tokio::test]
async fn stop_refuses_connections_and_restart_serves_again() {
    init_tracing();
    let backend = TestBackend::start("b").await.unwrap();
    let addr = backend.addr();
    let client = TestClient::new();
    backend.set_status(202);
    assert_eq!(client.get(&backend.url()).await.unwrap().status, 202);
    assert!(backend.is_running());

    backend.stop().await;
    assert!(!backend.is_running());
    assert_eq!(backend.open_connections(), 0);
    let error = connect(addr).await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
    let error = client.get(&backend.url()).await.unwrap_err();
    let hyper_client = error
        .downcast_ref::<hyper_util::client::legacy::Error>()
        .unwrap_or_else(|| panic!("{}", chain(&error)));
    assert!(hyper_client.is_connect(), "{}", chain(&error));
    backend.stop().await; // stopping twice is fine

    backend.restart().await.unwrap();
    assert!(backend.is_running());
    assert_eq!(backend.addr(), addr);
    let response = client.get(&backend.url()).await.unwrap();
    assert_eq!(response.status, 202, "behaviour kept");
    assert_eq!(backend.hits(), 2, "counters kept");

    // Restarting a running backend restarts it.
    backend.restart().await.unwrap();
    assert_eq!(client.get(&backend.url()).await.unwrap().status, 202);
    assert_eq!(backend.hits(), 3);
}

/// Whether another socket (with `SO_REUSEADDR`, as test listeners have) can bind `addr`.
fn port_is_free(addr: SocketAddr) -> bool {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket.bind(addr).is_ok()
}

#[tokio::test]
async fn take_down_refuses_connections_keeps_the_port_and_bring_up_serves_again() {
    init_tracing();
    let backend = TestBackend::start("b").await.unwrap();
    let addr = backend.addr();
    let client = TestClient::new();
    backend.set_status(202);
    assert_eq!(client.get(&backend.url()).await.unwrap().status, 202);
    let mut idle = connect(addr).await.unwrap();
    eventually("two connections are open", || {
        backend.open_connections() == 2
    })
    .await;

    backend.take_down().await.unwrap();
    assert!(!backend.is_running());
    assert_eq!(backend.open_connections(), 0);
    // Refused, exactly as a stopped server: a member connect failure for the balancer.
    let error = connect(addr).await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
    let error = client.get(&backend.url()).await.unwrap_err();
    let hyper_client = error
        .downcast_ref::<hyper_util::client::legacy::Error>()
        .unwrap_or_else(|| panic!("{}", chain(&error)));
    assert!(hyper_client.is_connect(), "{}", chain(&error));
    // The open connections were closed: EOF or reset, no hang.
    let mut buf = Vec::new();
    let read = timeout(WAIT, idle.read_to_end(&mut buf)).await.unwrap();
    assert!(read.is_err() || buf.is_empty(), "{read:?} {buf:?}");
    // Nobody else can take the port meanwhile.
    assert!(!port_is_free(addr), "the port is kept while down");
    let other = tokio::net::TcpListener::bind(addr).await;
    assert!(other.is_err(), "{other:?}");
    backend.take_down().await.unwrap(); // twice is fine

    backend.bring_up().await.unwrap();
    assert!(backend.is_running());
    assert_eq!(backend.addr(), addr);
    let response = client.get(&backend.url()).await.unwrap();
    assert_eq!(response.status, 202, "behaviour kept");
    assert_eq!(backend.hits(), 2, "counters kept");
    backend.bring_up().await.unwrap(); // up already: nothing happens
    assert_eq!(client.get(&backend.url()).await.unwrap().status, 202);

    // `stop` after `take_down` gives the port back.
    backend.take_down().await.unwrap();
    backend.stop().await;
    assert!(port_is_free(addr), "stop gives the port back");
}

#[tokio::test]
async fn restart_after_stop_never_shares_the_port_with_the_socket_that_took_it() {
    init_tracing();
    let backend = TestBackend::start("b").await.unwrap();
    let addr = backend.addr();
    backend.stop().await;
    // Another backend takes the port meanwhile, with the same socket options.
    let other = tokio::net::TcpSocket::new_v4().unwrap();
    other.set_reuseaddr(true).unwrap();
    #[cfg(target_os = "linux")]
    other.set_reuseport(true).unwrap();
    other.bind(addr).unwrap();
    let _other = other.listen(16).unwrap();

    let error = backend.restart().await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::AddrInUse, "{error}");
    assert!(!backend.is_running());
}

#[tokio::test]
async fn restart_of_a_running_backend_keeps_its_port_throughout() {
    init_tracing();
    let backend = TestBackend::start("b").await.unwrap();
    let client = TestClient::new();
    for round in 0..20 {
        backend.restart().await.unwrap();
        assert_eq!(
            client.get(&backend.url()).await.unwrap().status,
            200,
            "{round}"
        );
    }
    assert_eq!(backend.hits(), 20);
}

#[tokio::test]
async fn hang_reads_the_request_and_never_answers() {
    init_tracing();
    let backend = TestBackend::builder("b")
        .mode(Mode::Hang)
        .start()
        .await
        .unwrap();
    let client = TestClient::new().with_timeout(Duration::from_millis(300));

    let error = client.get(&backend.url()).await.unwrap_err();
    assert!(
        error.is::<tokio::time::error::Elapsed>(),
        "{}",
        chain(&error)
    );
    assert_eq!(backend.hits(), 1, "the request was read");
    // A raw connection: the request is read, nothing comes back, the connection stays open.
    let mut stream = connect(backend.addr()).await.unwrap();
    stream
        .write_all(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    eventually("the request is read", || backend.hits() == 2).await;
    let mut byte = [0_u8; 1];
    let read = timeout(Duration::from_millis(300), stream.read(&mut byte)).await;
    assert!(read.is_err(), "no answer, no close: {read:?}");

    backend.set_mode(Mode::Normal);
    assert_eq!(client.get(&backend.url()).await.unwrap().status, 200);
    // Stopping closes the hanging connection.
    backend.stop().await;
    let read = timeout(WAIT, stream.read(&mut byte)).await.unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_responses_wait_for_the_release() {
    init_tracing();
    let backend = TestBackend::start("b").await.unwrap();
    let client = TestClient::new();
    backend.hold_responses();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let client = client.clone();
        let url = backend.url();
        tasks.spawn(async move { client.get(&url).await });
    }
    eventually("three requests are held", || {
        backend.held_responses() == 3 && backend.hits() == 3
    })
    .await;
    assert_eq!(
        backend.open_connections(),
        3,
        "one connection per request in flight"
    );
    assert!(
        tasks.try_join_next().is_none(),
        "nothing answered while held"
    );

    backend.release_responses();
    let mut answered = 0;
    while let Some(joined) = timeout(WAIT, tasks.join_next()).await.unwrap() {
        assert_eq!(joined.unwrap().unwrap().status, 200);
        answered += 1;
    }
    assert_eq!(answered, 3);
    assert_eq!(backend.held_responses(), 0);
    // Released: the next ones go through at once.
    assert_eq!(client.get(&backend.url()).await.unwrap().status, 200);
}

#[tokio::test]
async fn stop_closes_open_connections() {
    init_tracing();
    let backend = TestBackend::builder("b")
        .delay(Duration::from_secs(30))
        .start()
        .await
        .unwrap();
    let mut idle = connect(backend.addr()).await.unwrap();
    let mut busy = connect(backend.addr()).await.unwrap();
    busy.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    eventually("both connections are open and the request arrived", || {
        backend.open_connections() == 2 && backend.hits() == 1
    })
    .await;

    backend.stop().await;
    assert_eq!(backend.open_connections(), 0);
    for stream in [&mut idle, &mut busy] {
        let mut buf = Vec::new();
        // EOF or reset, but no hang and no response.
        let read = timeout(WAIT, stream.read_to_end(&mut buf)).await.unwrap();
        assert!(read.is_err() || buf.is_empty(), "{read:?} {buf:?}");
    }
}

#[tokio::test]
async fn requests_and_health_hits_are_recorded() {
    init_tracing();
    let backend = TestBackend::start("b").await.unwrap();
    let client = TestClient::new();

    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("{}/a/b?x=1&y=2", backend.url()))
        .header("x-forwarded-for", "192.0.2.7")
        .body(Full::new(Bytes::from_static(b"payload")))
        .unwrap();
    assert_eq!(client.request(request).await.unwrap().status, 200);

    backend.set_health_status(500);
    backend.set_health_body("sick");
    let health = client
        .get(&format!("{}/health?probe=1", backend.url()))
        .await
        .unwrap();
    assert_eq!(health.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(health.text(), "sick");
    assert_eq!(health.header("x-backend"), Some("b"));

    assert_eq!(backend.hits(), 2);
    assert_eq!(backend.health_hits(), 1);
    let requests = backend.requests();
    assert_eq!(requests.len(), 2);
    let first = &requests[0];
    assert_eq!(first.method, Method::POST);
    assert_eq!(first.path_and_query, "/a/b?x=1&y=2");
    assert_eq!(first.path(), "/a/b");
    assert_eq!(first.header("x-forwarded-for"), Some("192.0.2.7"));
    assert_eq!(
        first.header("host"),
        Some(backend.addr().to_string().as_str())
    );
    assert_eq!(first.body, "payload");
    assert!(first.peer.ip().is_loopback());
    let last = backend.last_request().unwrap();
    assert_eq!(last.path(), "/health");
    assert_eq!(last.method, Method::GET);

    backend.reset_counters();
    assert_eq!((backend.hits(), backend.health_hits()), (0, 0));
    assert!(backend.requests().is_empty());
}

#[tokio::test]
async fn open_connections_return_to_zero_when_the_client_is_dropped() {
    init_tracing();
    let backend = TestBackend::start("b").await.unwrap();
    let client = TestClient::new();
    let responses = futures_join(&client, &backend.url(), 5).await;
    assert!(responses.iter().all(|r| r.status == 200));
    assert!(backend.open_connections() >= 1);
    assert_eq!(backend.hits(), 5);

    drop(client);
    eventually("the dropped client's connections are closed", || {
        backend.open_connections() == 0
    })
    .await;
}

/// Sends `n` concurrent GETs.
async fn futures_join(
    client: &TestClient,
    url: &str,
    n: usize,
) -> Vec<proxy_balancer_test::TestResponse> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let client = client.clone();
        let url = url.to_owned();
        tasks.spawn(async move { client.get(&url).await });
    }
    let mut responses = Vec::new();
    while let Some(joined) = timeout(WAIT, tasks.join_next())
        .await
        .expect("requests finish in time")
    {
        responses.push(
            joined
                .expect("task not panicked")
                .expect("request succeeds"),
        );
    }
    responses
}

#[tokio::test]
async fn without_keep_alive_leaves_no_connection_open() {
    init_tracing();
    let backend = TestBackend::start("b").await.unwrap();
    let client = TestClient::new().without_keep_alive();
    for _ in 0..3 {
        assert_eq!(client.get(&backend.url()).await.unwrap().status, 200);
    }
    eventually("no connection stays open", || {
        backend.open_connections() == 0
    })
    .await;
    assert_eq!(backend.hits(), 3);
}

#[tokio::test]
async fn dropping_the_backend_ends_its_task() {
    init_tracing();
    let backend = TestBackend::start("b").await.unwrap();
    let addr = backend.addr();
    let mut open = connect(addr).await.unwrap();
    eventually("the connection is accepted", || {
        backend.open_connections() == 1
    })
    .await;

    drop(backend);
    eventually_refused(addr).await;
    let mut buf = Vec::new();
    let read = timeout(WAIT, open.read_to_end(&mut buf)).await.unwrap();
    assert!(read.is_err() || buf.is_empty(), "{read:?} {buf:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_on_a_multi_thread_runtime() {
    init_tracing();
    let backend = TestBackend::start("b").await.unwrap();
    let client = TestClient::new();
    let responses = futures_join(&client, &backend.url(), 20).await;
    assert_eq!(responses.len(), 20);
    assert!(responses.iter().all(|r| r.text() == "b"));
    assert_eq!(backend.hits(), 20);
}

#[tokio::test]
#[should_panic(expected = "invalid test backend status")]
async fn invalid_status_panics_at_the_call_site() {
    let backend = TestBackend::start("b").await.unwrap();
    backend.set_status(1000);
}

#[test]
fn init_tracing_is_idempotent() {
    init_tracing();
    init_tracing();
}
