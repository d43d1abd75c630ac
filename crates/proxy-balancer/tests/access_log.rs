//! The access log over a real server on loopback: the `combined` line of each request, `%D`,
//! and a stalled writer that never holds a request.

use std::alloc::System;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use proxy_balancer::access_log::{AccessLogLayer, AccessLogWriter, FormatError, LogFormat};
use proxy_balancer::server::{RequestBody, Server, ServerHandle};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};
use tower::{service_fn, Layer, ServiceExt};

/// Every wait in these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(10);

/// A fresh log file path for one test.
fn log_path(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "proxy-balancer-access-{name}-{}.log",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    path
}

/// A server answering `/` with `hello world`, `/empty` with nothing, `/slow` after 50 ms,
/// behind `layer`.
async fn serve(layer: &AccessLogLayer) -> ServerHandle {
    let service = layer.layer(service_fn(|request: Request<RequestBody>| async move {
        let body = match request.uri().path() {
            "/empty" => "",
            "/slow" => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                "slow"
            }
            _ => "hello world",
        };
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
    }));
    Server::new()
        .listen(SocketAddr::from(([127, 0, 0, 1], 0)), service)
        .await
        .expect("a loopback port")
}

/// Sends `head` (a whole request) on a new connection and reads the answer to its end.
async fn exchange(addr: SocketAddr, head: &str) -> String {
    timeout(BOUND, async {
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        stream.write_all(head.as_bytes()).await.expect("writes");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("reads");
        String::from_utf8_lossy(&answer).into_owned()
    })
    .await
    .expect("answered in time")
}

/// The file's lines once it has `n` of them.
async fn wait_lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + BOUND;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "only {} lines: {text:?}",
            lines.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn combined_lines_say_who_asked_what_and_what_was_sent() {
    let path = log_path("combined");
    let writer = AccessLogWriter::file(&path, 64).expect("opens the file");
    let layer = AccessLogLayer::new(LogFormat::parse("combined").expect("a nickname"), writer);
    let server = serve(&layer).await;
    let addr = server.local_addr();

    let answer = exchange(
        addr,
        "GET /hello?x=1 HTTP/1.1\r\nHost: front\r\nReferer: http://ref.example/page\r\n\
         User-Agent: evil \"agent\"\\1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.ends_with("hello world"), "{answer}");
    let first = wait_lines(&path, 1).await;
    let answer = exchange(addr, "HEAD /empty HTTP/1.0\r\nHost: front\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    let answer = exchange(
        addr,
        "GET /empty HTTP/1.1\r\nHost: front\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let lines = wait_lines(&path, 3).await;
    assert_eq!(lines[0], first[0]);

    // 127.0.0.1 - - [04/Dec/2026:11:25:36 +0000] "GET /hello?x=1 HTTP/1.1" 200 11 "…" "…"
    let (head, time_and_rest) = lines[0].split_once('[').expect("a time");
    assert_eq!(head, "127.0.0.1 - - ");
    let (time, rest) = time_and_rest.split_once("] ").expect("a closed time");
    let bytes = time.as_bytes();
    assert_eq!(time.len(), "04/Dec/2026:11:25:36 +0000".len(), "{time}");
    assert_eq!((bytes[2], bytes[6], bytes[11]), (b'/', b'/', b':'));
    assert!(time.ends_with(" +0000"));
    assert_eq!(
        rest,
        r#""GET /hello?x=1 HTTP/1.1" 200 11 "http://ref.example/page" "evil \"agent\"\\1""#
    );
    // A HEAD sends no body, an empty body neither: `-`; absent headers are `-`.
    assert!(
        lines[1].ends_with(r#""HEAD /empty HTTP/1.0" 200 - "-" "-""#),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].ends_with(r#""GET /empty HTTP/1.1" 200 - "-" "-""#),
        "{}",
        lines[2]
    );
    assert_eq!(layer.writer().dropped(), 0);
    server.shutdown().await.expect("stops");
    let _ = std::fs::remove_file(&path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_is_the_time_taken() {
    let path = log_path("duration");
    let writer = AccessLogWriter::file(&path, 64).expect("opens the file");
    let format: LogFormat = "%D %{ms}T %T %>s %b".parse().expect("valid");
    let layer = AccessLogLayer::new(format, writer);
    let server = serve(&layer).await;
    let started = Instant::now();
    let answer = exchange(
        server.local_addr(),
        "GET /slow HTTP/1.1\r\nHost: front\r\nConnection: close\r\n\r\n",
    )
    .await;
    let took = started.elapsed();
    assert!(answer.ends_with("slow"), "{answer}");
    let lines = wait_lines(&path, 1).await;
    let fields: Vec<&str> = lines[0].split(' ').collect();
    let micros: u128 = fields[0].parse().expect("%D is a number");
    let millis: u128 = fields[1].parse().expect("%{ms}T is a number");
    assert!(micros >= 50_000, "the handler slept 50 ms: {micros} µs");
    assert!(micros <= took.as_micros(), "{micros} µs > {took:?}");
    assert_eq!(millis, micros / 1000);
    assert_eq!(fields[2..], ["0", "200", "4"]);
    server.shutdown().await.expect("stops");
    let _ = std::fs::remove_file(&path);
}

/// `%O` against what the client really read, on a kept-alive connection (hyper adds the
/// `date` and `content-length` headers itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_sent_are_the_bytes_on_the_wire() {
    let path = log_path("bytes-sent");
    let writer = AccessLogWriter::file(&path, 64).expect("opens the file");
    let layer = AccessLogLayer::new("%O %b".parse().expect("valid"), writer);
    let server = serve(&layer).await;
    let read = timeout(BOUND, async {
        let mut stream = TcpStream::connect(server.local_addr())
            .await
            .expect("connects");
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: front\r\n\r\n")
            .await
            .expect("writes");
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        // The head, then the 11 bytes of `hello world`.
        while !answer.ends_with(b"hello world") {
            let n = stream.read(&mut buf).await.expect("reads");
            assert!(n > 0, "closed early: {answer:?}");
            answer.extend_from_slice(&buf[..n]);
        }
        answer.len()
    })
    .await
    .expect("answered in time");
    let lines = wait_lines(&path, 1).await;
    assert_eq!(lines[0], format!("{read} 11"));
    server.shutdown().await.expect("stops");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn an_unknown_directive_is_refused_at_construction() {
    let err = "%h %l %u %t \"%r\" %>s %Q"
        .parse::<LogFormat>()
        .unwrap_err();
    assert_eq!(
        err,
        FormatError::Unknown {
            directive: "%Q".to_owned(),
            at: 21
        }
    );
    assert_eq!(
        err.to_string(),
        "unknown log format directive %Q (at byte 21)"
    );
    // A nickname that is not one is a literal format: Apache would log the word itself.
    assert_eq!(
        LogFormat::parse("combind").expect("plain text").as_str(),
        "combind"
    );
}

/// A writer that blocks its first write until the test opens the gate.
struct Gate {
    open: mpsc::Receiver<()>,
    opened: bool,
    out: Vec<u8>,
    done: mpsc::Sender<Vec<u8>>,
}

impl Write for Gate {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.opened {
            let _ = self.open.recv();
            self.opened = true;
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.done.send(std::mem::take(&mut self.out));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_writer_never_holds_a_request() {
    const QUEUE: usize = 4;
    const REQUESTS: usize = 40;
    let (open, gate) = mpsc::channel();
    let (done, written) = mpsc::channel();
    let stalled = Gate {
        open: gate,
        opened: false,
        out: Vec::new(),
        done,
    };
    // Lines longer than the writer thread's 8 KiB buffer go straight to the gate: the
    // thread blocks on the first one, before taking any other from the queue.
    let writer = AccessLogWriter::new(stalled, QUEUE).expect("a thread");
    let format: LogFormat = format!("%r %>s {}", "x".repeat(9000))
        .parse()
        .expect("valid");
    let layer = AccessLogLayer::new(format, writer.clone());
    let server = serve(&layer).await;
    let addr = server.local_addr();

    let started = Instant::now();
    for i in 0..REQUESTS {
        let answer = exchange(
            addr,
            &format!("GET /{i} HTTP/1.1\r\nHost: front\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(answer.ends_with("hello world"), "request {i}: {answer}");
    }
    let took = started.elapsed();
    // The writer is stuck on the first line; at most QUEUE more wait; the rest are dropped.
    let dropped = writer.dropped();
    assert!(
        dropped >= (REQUESTS - QUEUE - 1) as u64,
        "dropped {dropped} of {REQUESTS}"
    );
    assert!(
        took < Duration::from_secs(5),
        "{REQUESTS} requests took {took:?}"
    );

    // Open the gate: what was queued is written, and nothing else.
    open.send(()).expect("the writer waits");
    server.shutdown().await.expect("stops");
    drop(layer);
    drop(writer);
    let out = tokio::task::spawn_blocking(move || written.recv_timeout(BOUND))
        .await
        .expect("joins")
        .expect("the writer thread ends once every handle is gone");
    let lines = String::from_utf8_lossy(&out).lines().count() as u64;
    assert_eq!(lines + dropped, REQUESTS as u64);
    assert!(String::from_utf8_lossy(&out).starts_with("GET /0 HTTP/1.1 200 xxx"));
}

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// What the layer costs a request in allocations: the record, the captured request headers
/// and the line (a few more when a test-made header value is cloned for the first time).
/// Measured against the same service without the layer.
#[test]
fn the_layer_allocates_a_few_times_per_request() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let service = service_fn(|_request: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello"))))
    });
    let writer = AccessLogWriter::new(std::io::sink(), 4096).expect("a thread");
    let logged = AccessLogLayer::new(LogFormat::combined(), writer.clone()).layer(service);
    let request = || {
        Request::get("/page?x=1")
            .header("referer", HeaderValue::from_static("http://ref.example/"))
            .header("user-agent", HeaderValue::from_static("curl/8"))
            .body(Full::new(Bytes::new()))
            .expect("valid")
    };
    let count = |run: &dyn Fn()| {
        // The allocator is global: take the least of a few rounds of 100.
        (0..5)
            .map(|_| {
                let region = Region::new(GLOBAL);
                for _ in 0..100 {
                    run();
                }
                region.change().allocations
            })
            .min()
            .unwrap_or(usize::MAX)
    };
    let bare = count(&|| {
        runtime.block_on(async {
            let response = service.oneshot(request()).await.expect("infallible");
            drop(response.into_body().collect().await);
        });
    });
    let with_log = count(&|| {
        runtime.block_on(async {
            let response = logged.clone().oneshot(request()).await.expect("infallible");
            drop(response.into_body().collect().await);
        });
    });
    let per_request = (with_log.saturating_sub(bare)) as f64 / 100.0;
    eprintln!("access log: {per_request} allocations per request (bare service: {bare} per 100)");
    assert!(per_request <= 4.0, "{per_request} allocations per request");
    assert!(writer.dropped() < 500);
}
