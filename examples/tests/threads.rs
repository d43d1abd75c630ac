//! `--threads N` of the reverse proxy, running the binary: per core (a thread, runtime and
//! `SO_REUSEPORT` listener per worker) and work-stealing, each starting, serving the demo
//! and stopping on `--run-for`.
#![cfg(target_os = "linux")]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

/// Every wait in these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(20);

/// The `reverse-proxy` example binary, built once per test run through cargo (as in
/// tests/logs.rs).
fn binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("the test's path");
            let dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("target/<profile>/deps");
            let binary = dir.join("examples").join("reverse-proxy");
            if let Ok(cargo) = std::env::var("CARGO") {
                let mut build = Command::new(cargo);
                build.args(["build", "-p", "examples", "--example", "reverse-proxy"]);
                if dir.ends_with("release") {
                    build.arg("--release");
                }
                let status = build.status().expect("cargo runs");
                assert!(status.success(), "cannot build the reverse-proxy example");
            }
            assert!(binary.exists(), "no {}", binary.display());
            binary
        })
        .clone()
}

/// The file's text once `done` holds for it.
async fn wait_for(path: &Path, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + BOUND;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if done(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "{}: {text:?}", path.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `count` requests on one keep-alive connection: the `x-backend` of each answer.
async fn requests(addr: SocketAddr, count: usize) -> Vec<String> {
    timeout(BOUND, async {
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        let mut backends = Vec::with_capacity(count);
        let mut buffer = Vec::new();
        for i in 0..count {
            let close = if i + 1 == count {
                "Connection: close\r\n"
            } else {
                ""
            };
            let head = format!("GET / HTTP/1.1\r\nHost: proxy\r\n{close}\r\n");
            stream.write_all(head.as_bytes()).await.expect("writes");
            // One answer: its head, then its Content-Length bytes.
            let (head_end, length) = loop {
                let text = String::from_utf8_lossy(&buffer).into_owned();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (name, value) = l.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse::<usize>().ok())?
                        })
                        .expect("a Content-Length");
                    break (end + 4, length);
                }
                let mut chunk = [0; 4096];
                let n = stream.read(&mut chunk).await.expect("reads");
                assert!(n > 0, "closed early: {text:?}");
                buffer.extend_from_slice(&chunk[..n]);
            };
            while buffer.len() < head_end + length {
                let mut chunk = [0; 4096];
                let n = stream.read(&mut chunk).await.expect("reads");
                assert!(n > 0, "closed in a body");
                buffer.extend_from_slice(&chunk[..n]);
            }
            let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            let backend = head
                .lines()
                .find_map(|l| l.strip_prefix("x-backend: "))
                .expect("x-backend")
                .to_owned();
            backends.push(backend);
            buffer.drain(..head_end + length);
        }
        backends
    })
    .await
    .expect("answered in time")
}

/// The names of the process's threads.
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .map(|name| name.trim().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_threads_start_serve_and_stop_on_run_for() {
    let dir = std::env::temp_dir().join(format!("proxy-threads-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temp dir");
    for runtime in ["per-core", "work-stealing"] {
        let out_path = dir.join(format!("{runtime}.stdout"));
        let out = std::fs::File::create(&out_path).expect("a stdout file");
        let run_for = Duration::from_secs(3);
        let started = Instant::now();
        let mut child = Command::new(binary())
            .args([
                "--listen",
                "127.0.0.1:0",
                "--threads",
                "2",
                "--runtime",
                runtime,
            ])
            .args([
                "--run-for",
                &run_for.as_secs().to_string(),
                "--no-access-log",
            ])
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .expect("the proxy starts");
        // proxy-balancer listening on http://127.0.0.1:PORT/, serving …
        let text = wait_for(&out_path, |t| t.contains("Ctrl-C stops it.")).await;
        let addr: SocketAddr = text
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no address in {text:?}"));
        let per_core = runtime == "per-core";
        assert_eq!(text.contains("2 worker threads"), per_core, "{text}");
        if per_core {
            // Two workers, each a thread of its own.
            let names = thread_names(child.id());
            for worker in ["proxy-worker-0", "proxy-worker-1"] {
                assert!(names.iter().any(|n| n == worker), "{names:?}");
            }
        }
        // 16 connections at once, each with 6 requests: all answered, over the 3 demo
        // backends in byrequests' turn (the shared cycle: every backend gets a third).
        let clients: Vec<_> = (0..16).map(|_| tokio::spawn(requests(addr, 6))).collect();
        let mut counts = std::collections::BTreeMap::<String, usize>::new();
        for client in clients {
            for backend in client.await.expect("a client") {
                *counts.entry(backend).or_default() += 1;
            }
        }
        let counts: Vec<usize> = counts.into_values().collect();
        assert_eq!(counts, [32, 32, 32], "{runtime}");
        // --run-for: it stops by itself, cleanly, soon after.
        let status = timeout(BOUND, tokio::task::spawn_blocking(move || child.wait()))
            .await
            .expect("stops in time")
            .expect("joined")
            .expect("a status");
        assert!(status.success(), "{runtime}: {status}");
        assert!(
            started.elapsed() >= run_for,
            "{runtime}: stopped before --run-for"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
