//! The reverse proxy's logs, running the binary: `CustomLog` and `ErrorLog` files,
//! `LogLevel`, the Apache ids of member failures, and `--check` output free of log noise.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{timeout, Instant};

/// Every wait in these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(20);

/// The `reverse-proxy` example binary, beside this test's directory. Built once per test
/// run through cargo (a no-op when fresh: `cargo test` builds the examples, but not when
/// only this test was asked for, and a stale binary would test old code).
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

/// A temporary directory of this test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("proxy-logs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temp dir");
    dir
}

/// The proxy, stopped (killed by its handle) when dropped.
struct Proxy {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the proxy on `config`; its address is read from the first line it prints (to a
/// file: a pipe closed early would end the proxy with EPIPE).
async fn start(config: &Path, extra: &[&str]) -> Proxy {
    let out_path = config.with_extension("stdout");
    let out = std::fs::File::create(&out_path).expect("a stdout file");
    let child = Command::new(binary())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--run-for",
            "60",
            "--threads",
            "1",
            "--config",
        ])
        .arg(config)
        .args(extra)
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .expect("the proxy starts");
    // proxy-balancer listening on http://127.0.0.1:PORT/, serving …
    let text = wait_for(&out_path, |t| t.contains('\n')).await;
    let addr = text
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no address in {text:?}"));
    Proxy { child, addr }
}

/// One request on a new connection: the status.
async fn get(addr: SocketAddr, path: &str) -> u16 {
    timeout(BOUND, async {
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: proxy\r\nUser-Agent: logs-test\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.expect("writes");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("reads");
        let answer = String::from_utf8_lossy(&answer).into_owned();
        answer
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"))
    })
    .await
    .expect("answered in time")
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

/// A member that reads the request and closes without answering: a 502.
async fn broken_member() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(async move {
        // Bounded: the test makes one or two requests.
        for _ in 0..8 {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 1024];
            let _ = timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
        }
    });
    addr
}

/// A member nobody listens on: refused, a 503.
async fn down_member() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    listener.local_addr().expect("bound")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_log_and_error_log_are_written_with_apache_ids() {
    let dir = temp_dir("files");
    let access = dir.join("access.log");
    let errors = dir.join("error.log");
    let transfer = dir.join("transfer.log");
    let broken = broken_member().await;
    let down = down_member().await;
    let config = dir.join("proxy.conf");
    std::fs::write(
        &config,
        format!(
            "ErrorLog {errors}\n\
             CustomLog {access} combined\n\
             LogFormat \"%>s %m %U\"\n\
             TransferLog {transfer}\n\
             LogLevel warn\n\
             <Proxy balancer://broken>\n  BalancerMember http://{broken}\n</Proxy>\n\
             <Proxy balancer://down>\n  BalancerMember http://{down}\n</Proxy>\n\
             ProxyPass /broken balancer://broken\n\
             ProxyPass /down balancer://down\n",
            errors = errors.display(),
            access = access.display(),
            transfer = transfer.display(),
        ),
    )
    .expect("writes the config");
    let proxy = start(&config, &[]).await;

    assert_eq!(get(proxy.addr, "/broken/x?y=1").await, 502);
    assert_eq!(get(proxy.addr, "/down/z").await, 503);

    let text = wait_for(&access, |t| t.lines().count() >= 2).await;
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("127.0.0.1 - - ["), "{}", lines[0]);
    assert!(
        lines[0].ends_with(r#""GET /broken/x?y=1 HTTP/1.1" 502 16 "-" "logs-test""#),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains(r#""GET /down/z HTTP/1.1" 503 "#),
        "{}",
        lines[1]
    );

    // A second access log, in its own format (TransferLog: the last LogFormat without a
    // nickname).
    wait_for(&transfer, |t| t == "502 GET /broken/x\n503 GET /down/z\n").await;

    let text = wait_for(&errors, |t| t.contains("AH01102") && t.contains("AH01114")).await;
    let bad_gateway = text
        .lines()
        .find(|l| l.contains("AH01102"))
        .expect("the 502's line");
    // The module as `LogLevel` names it (the error answer is mod_proxy's), the pid, the id.
    assert!(
        bad_gateway.contains("] [proxy:error] [pid "),
        "{bad_gateway}"
    );
    assert!(bad_gateway.contains("] AH01102: "), "{bad_gateway}");
    assert!(bad_gateway.contains(&broken.to_string()), "{bad_gateway}");
    let refused = text
        .lines()
        .find(|l| l.contains("AH01114"))
        .expect("the 503's line");
    assert!(refused.contains(&down.to_string()), "{refused}");
    assert!(
        refused.contains("] [proxy_balancer:error] [pid "),
        "{refused}"
    );
    // LogLevel warn: nothing below.
    assert!(
        !text.contains(":info]") && !text.contains(":debug]"),
        "{text}"
    );
    drop(proxy);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_level_flag_wins_and_bad_levels_are_refused() {
    let dir = temp_dir("level");
    let errors = dir.join("error.log");
    let access = dir.join("access.log");
    let down = down_member().await;
    let config = dir.join("proxy.conf");
    std::fs::write(
        &config,
        format!(
            "ErrorLog {errors}\nCustomLog {access} \"%>s %U\"\nLogLevel warn\n\
             <Proxy balancer://down>\n  BalancerMember http://{down}\n</Proxy>\n\
             ProxyPass /down balancer://down\n",
            errors = errors.display(),
            access = access.display(),
        ),
    )
    .expect("writes the config");
    // The configuration says warn, the flag debug: the flag wins (the 503's answer is
    // logged at debug).
    let proxy = start(&config, &["--log-level", "debug"]).await;
    assert_eq!(get(proxy.addr, "/down/a").await, 503);
    assert_eq!(get(proxy.addr, "/down/b").await, 503);
    wait_for(&access, |t| t == "503 /down/a\n503 /down/b\n").await;
    let text = wait_for(&errors, |t| t.contains("AH01114") && t.contains(":debug]")).await;
    assert!(text.contains("answering an error response"), "{text}");
    drop(proxy);

    // --no-access-log: the CustomLog file is not even created.
    std::fs::remove_file(&access).expect("written above");
    let proxy = start(&config, &["--no-access-log"]).await;
    assert_eq!(get(proxy.addr, "/down/c").await, 503);
    wait_for(&errors, |t| t.matches("AH01114").count() >= 2).await;
    assert!(!access.exists());
    drop(proxy);

    let output = Command::new(binary())
        .args(["--listen", "127.0.0.1:0", "--run-for", "1", "--config"])
        .arg(&config)
        .args(["--log-level", "loud"])
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--log-level loud"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_output_stays_clean_json() {
    let dir = temp_dir("check");
    let config = dir.join("proxy.conf");
    std::fs::write(
        &config,
        "ErrorLog syslog\nCustomLog /tmp/x.log combined env=!quiet\nLogLevel debug ssl:warn\n\
         <Proxy balancer://app>\n  BalancerMember http://127.0.0.1:9 hcmethod=GET hcuri=/\n</Proxy>\n\
         ProxyPass / balancer://app/\n",
    )
    .expect("writes the config");
    let output = Command::new(binary())
        .arg("--check")
        .arg(&config)
        .args(["--format", "json"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2), "refused logs are errors");
    let findings: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("stdout is JSON only");
    let rules: Vec<&str> = findings
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|f| f["rule"].as_str())
        .collect();
    assert_eq!(
        rules,
        ["not-applied", "not-applied", "no-effect", "start"],
        "{findings}"
    );
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_of_a_file_that_cannot_be_read_is_an_error() {
    let dir = temp_dir("check-unreadable");
    let missing = dir.join("missing \"quoted\".conf");
    let output = Command::new(binary())
        .arg("--check")
        .arg(&missing)
        .args(["--format", "json"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2), "unreadable is an error");
    let findings: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("stdout is JSON only");
    assert_eq!(findings[0]["rule"], "read", "{findings}");
    assert!(
        findings[0]["what"]
            .as_str()
            .is_some_and(|w| w.contains("cannot read")),
        "{findings}"
    );
    let text = Command::new(binary())
        .arg("--check")
        .arg(&dir)
        .output()
        .expect("runs");
    assert_eq!(text.status.code(), Some(2), "a directory is an error");
    assert!(String::from_utf8_lossy(&text.stdout).contains("error: cannot read"));
    let _ = std::fs::remove_dir_all(&dir);
}
