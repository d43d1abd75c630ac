//! The server's client timeouts, keep-alive rules and connection cap, against raw
//! loopback clients that behave as attackers do: silent, dripping, idle, not reading.
//!
//! Real sockets and short limits in real time (tokio's paused clock would jump over the
//! socket waits); every wait is bounded.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use proxy_balancer::server::{ClientLimits, ReadTimeout, RequestBody, Server, ServerHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tower::service_fn;

/// Every wait in these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(10);

const LOOPBACK: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    0,
));

/// The addresses an in-memory connection says it has.
const IN_MEMORY: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    80,
));

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n";

/// A server answering `hello` to everything, with `limits`.
async fn hello_server(limits: ClientLimits) -> ServerHandle {
    let service = service_fn(|_: Request<RequestBody>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello"))))
    });
    Server::new()
        .limits(limits)
        .listen(LOOPBACK, service)
        .await
        .expect("a loopback port")
}

/// A server answering `hello` after `delay`, whose shutdown drains for up to 8 s (the
/// shutdown tests).
async fn draining_hello_server(delay: Duration) -> ServerHandle {
    let service = service_fn(move |_: Request<RequestBody>| async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello"))))
    });
    Server::new()
        .drain(Duration::from_secs(8))
        .listen(LOOPBACK, service)
        .await
        .expect("a loopback port")
}

/// Short limits: header 500 ms (up to 1.5 s at 1 byte/s), keep-alive 500 ms, TimeOut 500 ms.
fn short() -> ClientLimits {
    ClientLimits::new()
        .header_timeout(
            ReadTimeout::new(Duration::from_millis(500))
                .max(Duration::from_millis(1500))
                .min_rate(1),
        )
        .keep_alive_timeout(Duration::from_millis(500))
        .timeout(Duration::from_millis(500))
}

/// Reads until the server closes; what was read and when it closed. A reset counts as
/// closed.
async fn read_until_closed(stream: &mut TcpStream) -> (Vec<u8>, Instant) {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(BOUND, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server did not close within {BOUND:?}");
    (received, Instant::now())
}

/// Reads one whole response whose body is `hello` (5 bytes, Content-Length).
async fn read_hello(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(BOUND, async {
        while !received.ends_with(b"\r\n\r\nhello") {
            let n = stream.read(&mut buf).await.expect("a response");
            assert!(n > 0, "closed before a whole response: {received:?}");
            received.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("a response in time");
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_at_the_header_timeout() {
    let server = hello_server(short()).await;
    let start = Instant::now();
    let mut client = TcpStream::connect(server.local_addr()).await.unwrap();
    let (received, closed) = read_until_closed(&mut client).await;
    let after = closed - start;
    assert!(received.is_empty(), "nothing said to a silent client");
    assert!(
        after >= Duration::from_millis(450) && after < Duration::from_secs(3),
        "closed after {after:?}, header timeout 500 ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dripped_request_line_is_cut_at_the_maximum_though_bytes_keep_coming() {
    // One byte each 50 ms is 20 bytes/s, far above MinRate 1: the timeout grows with every
    // byte, up to its maximum of 1.5 s.
    let server = hello_server(short()).await;
    let start = Instant::now();
    let client = TcpStream::connect(server.local_addr()).await.unwrap();
    let (mut reader, mut writer) = client.into_split();
    let reading = tokio::spawn(async move {
        let mut buf = [0u8; 1024];
        let mut received = Vec::new();
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
        (received, Instant::now())
    });
    let line = b"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    for byte in line.iter().cycle().take(200) {
        if reading.is_finished() || writer.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (received, closed) = tokio::time::timeout(BOUND, reading)
        .await
        .expect("closed in time")
        .unwrap();
    let after = closed - start;
    assert!(
        after >= Duration::from_millis(1400) && after < Duration::from_secs(4),
        "closed after {after:?}, header timeout at most 1.5 s"
    );
    if !received.is_empty() {
        assert!(received.starts_with(b"HTTP/1.1 408"), "{received:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_head_is_answered_408_at_the_header_timeout() {
    let server = hello_server(short()).await;
    let mut client = TcpStream::connect(server.local_addr()).await.unwrap();
    let start = Instant::now();
    client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    let (received, closed) = read_until_closed(&mut client).await;
    // 16 bytes at MinRate 1 byte/s: 500 ms + 16 s, capped at 1.5 s.
    let after = closed - start;
    assert!(
        after >= Duration::from_millis(1400) && after < Duration::from_secs(4),
        "closed after {after:?}"
    );
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 408 Request Timeout"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_above_min_rate_is_served_past_the_initial_timeout() {
    // Initial 500 ms, +1 s per 100 bytes, up to 5 s: a 1.5 KB head sent at about 1 KB/s
    // takes 1.5 s, three times the initial timeout, and is served.
    let limits = ClientLimits::new().header_timeout(
        ReadTimeout::new(Duration::from_millis(500))
            .max(Duration::from_secs(5))
            .min_rate(100),
    );
    let server = hello_server(limits).await;
    let mut head = b"GET / HTTP/1.1\r\nHost: test\r\nX-Pad: ".to_vec();
    head.extend(std::iter::repeat_n(b'a', 1500));
    head.extend_from_slice(b"\r\n\r\n");
    let mut client = TcpStream::connect(server.local_addr()).await.unwrap();
    let start = Instant::now();
    for chunk in head.chunks(100) {
        client.write_all(chunk).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(start.elapsed() > Duration::from_millis(1000));
    let answer = read_hello(&mut client).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_closes_and_a_prompt_request_is_served() {
    let server = hello_server(short()).await;
    let mut client = TcpStream::connect(server.local_addr()).await.unwrap();
    client.write_all(GET).await.unwrap();
    read_hello(&mut client).await;
    // Prompt: a second request 200 ms later is served on the same connection.
    tokio::time::sleep(Duration::from_millis(200)).await;
    client.write_all(GET).await.unwrap();
    read_hello(&mut client).await;
    // Then idle: closed at the keep-alive timeout (500 ms), well before the header timeout
    // maximum would allow.
    let idle = Instant::now();
    let (received, closed) = read_until_closed(&mut client).await;
    assert!(received.is_empty());
    let after = closed - idle;
    assert!(
        after >= Duration::from_millis(450) && after < Duration::from_millis(1400),
        "idle connection closed after {after:?}, KeepAliveTimeout 500 ms"
    );
}

/// An endless response body that records when it is dropped.
struct Endless {
    dropped: Arc<AtomicBool>,
}

impl Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        static CHUNK: [u8; 64 * 1024] = [b'x'; 64 * 1024];
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&CHUNK)))))
    }
}

impl Drop for Endless {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_after_timeout() {
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&dropped);
    let service = service_fn(move |_: Request<RequestBody>| {
        let dropped = Arc::clone(&flag);
        async move { Ok::<_, Infallible>(Response::new(Endless { dropped })) }
    });
    let server = Server::new()
        .limits(short().header_timeout(ReadTimeout::new(Duration::from_secs(30))))
        .listen(LOOPBACK, service)
        .await
        .unwrap();
    let mut client = TcpStream::connect(server.local_addr()).await.unwrap();
    client.write_all(GET).await.unwrap();
    let start = Instant::now();
    // Never read: the socket buffers fill, the server's write waits, TimeOut (500 ms) ends
    // the connection and drops the response body.
    let took = proxy_balancer_test::wait_for(
        "the response body dropped",
        BOUND,
        Duration::from_millis(20),
        || dropped.load(Ordering::SeqCst),
    )
    .await;
    assert!(
        took >= Duration::from_millis(450) && start.elapsed() < Duration::from_secs(5),
        "closed after {took:?}, TimeOut 500 ms"
    );
    drop(client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_keep_alive_requests_closes_after_the_nth_response() {
    let server = hello_server(ClientLimits::new().max_keep_alive_requests(3)).await;
    let mut client = TcpStream::connect(server.local_addr()).await.unwrap();
    for i in 1..=3 {
        client.write_all(GET).await.unwrap();
        let answer = read_hello(&mut client).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert_eq!(
            answer.to_ascii_lowercase().contains("connection: close"),
            i == 3,
            "response {i}: {answer}"
        );
    }
    let (received, _) = read_until_closed(&mut client).await;
    assert!(received.is_empty(), "closed after the third response");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_keep_alive_requests_closes_an_http_1_0_keep_alive_client_cleanly() {
    // ApacheBench's requests: HTTP/1.0 with Connection: Keep-Alive.
    const GET_10: &[u8] = b"GET / HTTP/1.0\r\nHost: test\r\nConnection: Keep-Alive\r\n\r\n";
    let server = hello_server(ClientLimits::new().max_keep_alive_requests(2)).await;
    let mut client = TcpStream::connect(server.local_addr()).await.unwrap();
    client.write_all(GET_10).await.unwrap();
    let first = read_hello(&mut client).await.to_ascii_lowercase();
    assert!(first.contains("connection: keep-alive"), "{first}");
    client.write_all(GET_10).await.unwrap();
    let second = read_hello(&mut client).await.to_ascii_lowercase();
    assert!(second.contains("connection: close"), "{second}");
    assert!(!second.contains("keep-alive"), "no mixed signal: {second}");
    let (received, _) = read_until_closed(&mut client).await;
    assert!(received.is_empty(), "closed after the second response");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_off_closes_after_one_response() {
    let server = hello_server(ClientLimits::new().keep_alive(false)).await;
    let mut client = TcpStream::connect(server.local_addr()).await.unwrap();
    // Two pipelined requests: only the first is answered.
    client.write_all(&[GET, GET].concat()).await.unwrap();
    let (received, _) = read_until_closed(&mut client).await;
    let text = String::from_utf8_lossy(&received);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 1, "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_idle_connections_make_room() {
    // Apache's default header timeout (20 s): a new client must not wait for it.
    let server = hello_server(ClientLimits::new().max_connections(Some(4))).await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(server.local_addr()).await.unwrap());
    }
    // Let the server accept them all.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    let mut client = TcpStream::connect(server.local_addr()).await.unwrap();
    client.write_all(GET).await.unwrap();
    let answer = read_hello(&mut client).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "answered after {:?}",
        start.elapsed()
    );
    // The idle ones were closed to make room.
    let mut closed = 0;
    for stream in &mut idle {
        let mut buf = [0u8; 16];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await
        {
            closed += 1;
        }
    }
    assert!(closed >= 1, "no idle connection was closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_a_connection_with_a_request_in_flight_is_kept() {
    // One slot; its connection has a request in flight (a slow answer): it is not idle,
    // so it is kept and the new client waits for it.
    let service = service_fn(|_: Request<RequestBody>| async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello"))))
    });
    let server = Server::new()
        .limits(ClientLimits::new().max_connections(Some(1)))
        .listen(LOOPBACK, service)
        .await
        .unwrap();
    let mut busy = TcpStream::connect(server.local_addr()).await.unwrap();
    busy.write_all(GET).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut late = TcpStream::connect(server.local_addr()).await.unwrap();
    late.write_all(GET).await.unwrap();
    let answer = read_hello(&mut busy).await;
    assert!(
        answer.starts_with("HTTP/1.1 200 OK"),
        "the busy one is served"
    );
    drop(busy);
    let answer = read_hello(&mut late).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "then the late one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_h2_connection_is_closed_at_the_keep_alive_timeout() {
    let server = hello_server(short()).await;
    let stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("an h2 handshake");
    let connection = tokio::spawn(connection);
    let request = Request::get("http://test/")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = tokio::time::timeout(BOUND, sender.send_request(request))
        .await
        .expect("in time")
        .expect("a response");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"hello");
    let idle = Instant::now();
    let ended = tokio::time::timeout(BOUND, connection).await;
    assert!(ended.is_ok(), "the idle h2 connection is closed");
    let after = idle.elapsed();
    assert!(
        after >= Duration::from_millis(400) && after < Duration::from_secs(3),
        "closed after {after:?}, KeepAliveTimeout 500 ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_header_fields_are_refused() {
    let server = hello_server(ClientLimits::new().limit_request_fields(3)).await;
    let mut client = TcpStream::connect(server.local_addr()).await.unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n")
        .await
        .unwrap();
    let (received, _) = read_until_closed(&mut client).await;
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_above_the_cap_is_refused() {
    let server = hello_server(ClientLimits::new().limit_request_head(16 * 1024)).await;
    let mut client = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut head = b"GET / HTTP/1.1\r\nHost: t\r\n".to_vec();
    for i in 0..10 {
        head.extend_from_slice(format!("X-Pad-{i}: ").as_bytes());
        head.extend(std::iter::repeat_n(b'a', 4000));
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let _ = client.write_all(&head).await;
    let (received, _) = read_until_closed(&mut client).await;
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_slow_client_leaves_no_busy_count_on_the_member() {
    use proxy_balancer::apache_config::parse;
    use proxy_balancer::site::Site;
    use proxy_balancer_test::TestBackend;

    let backend = TestBackend::start("slow-reader").await.unwrap();
    backend.set_body_size(32 << 20);
    let config = parse(&format!(
        "<Proxy balancer://b>\n BalancerMember {}\n</Proxy>\nProxyPass / balancer://b/\n",
        backend.url()
    ))
    .unwrap();
    let site = Site::from_config(&config).unwrap();
    let store = Arc::clone(&site.stores()[0]);
    let server = Server::new()
        .limits(short().header_timeout(ReadTimeout::new(Duration::from_secs(30))))
        .listen(LOOPBACK, site)
        .await
        .unwrap();
    let busy = || -> u64 {
        store
            .snapshot()
            .members()
            .iter()
            .map(|m| m.state().busy())
            .sum()
    };
    let mut client = TcpStream::connect(server.local_addr()).await.unwrap();
    client.write_all(GET).await.unwrap();
    proxy_balancer_test::wait_for("the member busy", BOUND, Duration::from_millis(10), || {
        busy() == 1
    })
    .await;
    // The client never reads: TimeOut closes it, and the member's busy count goes back.
    proxy_balancer_test::wait_for(
        "the busy count back to 0",
        BOUND,
        Duration::from_millis(20),
        || busy() == 0,
    )
    .await;
    drop(client);
}

// ===== Apache's defaults, on tokio's paused clock over an in-memory connection =====

/// Serves one in-memory connection with Apache's default limits; the client's end.
fn serve_in_memory() -> (
    tokio::io::DuplexStream,
    tokio::task::JoinHandle<Result<(), proxy_balancer::BoxError>>,
) {
    let (client, server_io) = tokio::io::duplex(1 << 16);
    let addr = IN_MEMORY;
    let served = tokio::spawn(async move {
        let service = service_fn(|_: Request<RequestBody>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello"))))
        });
        Server::new()
            .serve_connection(server_io, addr, addr, service)
            .await
    });
    (client, served)
}

#[tokio::test(start_paused = true)]
async fn apache_defaults_a_silent_connection_closes_at_20_s() {
    let (mut client, served) = serve_in_memory();
    let start = Instant::now();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(100), client.read(&mut buf))
        .await
        .expect("closed")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert_eq!(start.elapsed().as_secs(), 20);
    assert!(served.await.unwrap().is_err(), "ended by the timeout");
}

/// Sends `chunk` each second until the server ends the connection; how long that took and
/// what the server answered.
async fn drip_in_memory(chunk: &[u8]) -> (u64, Vec<u8>) {
    let (client, served) = serve_in_memory();
    let (mut reader, mut writer) = tokio::io::split(client);
    let start = Instant::now();
    for _ in 0..100 {
        if served.is_finished() || writer.write_all(chunk).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut answer = Vec::new();
    let _ = reader.read_to_end(&mut answer).await;
    (start.elapsed().as_secs(), answer)
}

#[tokio::test(start_paused = true)]
async fn apache_defaults_a_line_dripped_below_min_rate_is_cut_at_20_s() {
    // One byte a second is far below MinRate 500: no extension, as in Apache.
    let (took, answer) = drip_in_memory(b"a").await;
    assert!((20..=21).contains(&took), "cut after {took} s");
    assert!(answer.starts_with(b"HTTP/1.1 408"), "{answer:?}");
}

#[tokio::test(start_paused = true)]
async fn apache_defaults_a_head_dripped_above_min_rate_is_cut_at_the_40_s_maximum() {
    // 600 bytes a second: each 500 add a second, so the timeout keeps growing, but never
    // past 40 s (24 KB by then, under the 32 KiB head cap).
    let (took, answer) = drip_in_memory(&[b'a'; 600]).await;
    assert!((40..=41).contains(&took), "cut after {took} s");
    assert!(answer.starts_with(b"HTTP/1.1 408"), "{answer:?}");
}

#[tokio::test(start_paused = true)]
async fn apache_defaults_an_idle_keep_alive_connection_closes_at_5_s() {
    let (mut client, _served) = serve_in_memory();
    client.write_all(GET).await.unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    while !received.ends_with(b"hello") {
        let n = client.read(&mut buf).await.unwrap();
        assert!(n > 0);
        received.extend_from_slice(&buf[..n]);
    }
    let idle = Instant::now();
    let n = client.read(&mut buf).await.unwrap_or(0);
    assert_eq!(n, 0);
    assert_eq!(idle.elapsed().as_secs(), 5);
}

#[tokio::test(start_paused = true)]
async fn apache_defaults_a_client_that_stops_reading_is_closed_at_60_s() {
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&dropped);
    let (mut client, server_io) = tokio::io::duplex(1 << 16);
    let addr = IN_MEMORY;
    let served = tokio::spawn(async move {
        let service = service_fn(move |_: Request<RequestBody>| {
            let dropped = Arc::clone(&flag);
            async move { Ok::<_, Infallible>(Response::new(Endless { dropped })) }
        });
        Server::new()
            .serve_connection(server_io, addr, addr, service)
            .await
    });
    client.write_all(GET).await.unwrap();
    let start = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(100), served)
        .await
        .expect("ended")
        .unwrap();
    assert!(result.is_err(), "ended by the write timeout");
    assert_eq!(start.elapsed().as_secs(), 60);
    assert!(
        dropped.load(Ordering::SeqCst),
        "the response body was dropped"
    );
}

/// A client that closes its side before its answer is gone: the request is dropped at once
/// (nginx's `proxy_ignore_client_abort off`), so that nothing it held (a member's busy
/// count, a member connection) waits for the answer nobody will read.
#[tokio::test]
async fn a_client_that_closes_before_its_answer_drops_its_request() {
    struct Held(Arc<AtomicBool>);
    impl Drop for Held {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&dropped);
    // An answer that never comes, as a hung member's.
    let service = service_fn(move |_: Request<RequestBody>| {
        let held = Held(Arc::clone(&flag));
        async move {
            std::future::pending::<()>().await;
            drop(held);
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
        }
    });
    let server = Server::new()
        .limits(short())
        .listen(LOOPBACK, service)
        .await
        .expect("a loopback port");
    let mut stream = TcpStream::connect(server.local_addr())
        .await
        .expect("connect");
    stream.write_all(GET).await.expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !dropped.load(Ordering::SeqCst),
        "dropped before the client left"
    );
    stream.shutdown().await.expect("half-close");
    let started = Instant::now();
    while !dropped.load(Ordering::SeqCst) {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the request outlived its client"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.shutdown().await.expect("stops");
}

/// The server reads a connection's first bytes itself (HTTP/2's preface or not): a
/// connection that has sent nothing does not hold up a shutdown, which closes it at once.
#[tokio::test]
async fn a_shutdown_closes_a_connection_that_sent_nothing_at_once() {
    let server = draining_hello_server(Duration::ZERO).await;
    let mut stream = TcpStream::connect(server.local_addr())
        .await
        .expect("connect");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    server.shutdown().await.expect("stops");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the shutdown waited {:?} for a silent connection",
        started.elapsed()
    );
    let (received, _) = read_until_closed(&mut stream).await;
    assert!(received.is_empty(), "{received:?}");
}

/// A shutdown lets a request in flight finish, then closes its connection.
#[tokio::test]
async fn a_shutdown_answers_the_request_in_flight() {
    let server = draining_hello_server(Duration::from_millis(300)).await;
    let mut stream = TcpStream::connect(server.local_addr())
        .await
        .expect("connect");
    stream.write_all(GET).await.expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopped = tokio::spawn(server.shutdown());
    let (received, _) = read_until_closed(&mut stream).await;
    let received = String::from_utf8_lossy(&received);
    assert!(received.starts_with("HTTP/1.1 200"), "{received}");
    assert!(received.ends_with("hello"), "{received}");
    stopped.await.expect("joins").expect("stops");
}

/// A head that starts like HTTP/2's preface (`P`, then `ROPFIND`) and comes in pieces is
/// served as HTTP/1.1 once its bytes differ from the preface.
#[tokio::test]
async fn a_head_in_pieces_that_starts_like_the_h2_preface_is_http1() {
    let server = hello_server(ClientLimits::new()).await;
    let mut stream = TcpStream::connect(server.local_addr())
        .await
        .expect("connect");
    for piece in [
        &b"P"[..],
        b"ROPFIND / HTTP/1.1\r\nHo",
        b"st: test\r\nConnection: close\r\n\r\n",
    ] {
        stream.write_all(piece).await.expect("write");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (received, _) = read_until_closed(&mut stream).await;
    let received = String::from_utf8_lossy(&received);
    assert!(received.starts_with("HTTP/1.1 200"), "{received}");
    assert!(received.ends_with("hello"), "{received}");
    server.shutdown().await.expect("stops");
}

/// A head whose first byte could still start HTTP/2's preface (`P`) when the server stops
/// is read to its end and answered, as one that starts `G` is (found by the review: the
/// connection was closed without an answer).
#[tokio::test]
async fn a_shutdown_answers_a_head_begun_with_p() {
    let server = draining_hello_server(Duration::ZERO).await;
    let mut stream = TcpStream::connect(server.local_addr())
        .await
        .expect("connect");
    stream.write_all(b"P").await.expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopped = tokio::spawn(server.shutdown());
    tokio::time::sleep(Duration::from_millis(100)).await;
    stream
        .write_all(b"UT /x HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n")
        .await
        .expect("write");
    let (received, _) = read_until_closed(&mut stream).await;
    let received = String::from_utf8_lossy(&received);
    assert!(received.starts_with("HTTP/1.1 200"), "{received}");
    assert!(received.ends_with("hello"), "{received}");
    stopped.await.expect("joins").expect("stops");
}

/// HTTP/2's preface sent a byte, then the rest: still HTTP/2, so a header timeout closes
/// it without HTTP/1.1's 408 bytes inside the HTTP/2 connection (found by the review: the
/// per-read guess saw `RI…` and took it for HTTP/1.1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preface_in_pieces_gets_no_http1_408() {
    let server = hello_server(short()).await;
    let mut stream = TcpStream::connect(server.local_addr())
        .await
        .expect("connect");
    stream.write_all(b"P").await.expect("write");
    tokio::time::sleep(Duration::from_millis(50)).await;
    stream
        .write_all(b"RI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .expect("write");
    let (received, _) = read_until_closed(&mut stream).await;
    assert!(
        !received.windows(8).any(|w| w == b"HTTP/1.1"),
        "HTTP/1.1 bytes in an HTTP/2 connection: {:?}",
        String::from_utf8_lossy(&received)
    );
    server.shutdown().await.expect("stops");
}
