//! A real etcd on loopback for the tests of the shared store: [`EtcdServer`], and
//! [`etcd_binary_or_skip`], which skips a test loudly when etcd is not installed (or fails it
//! when `PROXY_BALANCER_REQUIRE_TEST_DEPS=1`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{BoxError, TestClient};

/// Set to `1` to make a missing test prerequisite (here the `etcd` binary) fail the test
/// instead of skipping it. CI sets it. Any other value than `0` or `1` fails the test: a
/// misspelt setting must not pass for `0`.
pub const REQUIRE_DEPS: &str = "PROXY_BALANCER_REQUIRE_TEST_DEPS";

/// How long [`EtcdServer::start`] and [`EtcdServer::restart`] wait for etcd to answer.
const READY_BOUND: Duration = Duration::from_secs(15);

/// How many times [`EtcdServer::start`] picks new ports when etcd does not come up (another
/// process took a port between our probe and etcd's bind).
const START_ATTEMPTS: usize = 3;

/// Distinguishes the data directories of the servers of one test process.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// The etcd binary: `/usr/bin/etcd`, else `etcd` found on `PATH`.
#[must_use]
pub fn etcd_binary() -> Option<PathBuf> {
    let usr = Path::new("/usr/bin/etcd");
    if usr.is_file() {
        return Some(usr.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("etcd"))
            .find(|p| p.is_file())
    })
}

/// The etcd binary, or `None` after saying on stderr (past libtest's capture) that `test` is
/// SKIPPED and passes without running. With `PROXY_BALANCER_REQUIRE_TEST_DEPS=1` a missing
/// etcd panics instead, naming the package to install.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let Some(_etcd) = proxy_balancer_test::etcd_binary_or_skip("my_test") else {
///     return;
/// };
/// let etcd = proxy_balancer_test::EtcdServer::start().await.expect("etcd starts");
/// println!("etcd at {}", etcd.endpoint());
/// # }
/// ```
///
/// # Panics
///
/// When etcd is missing and `PROXY_BALANCER_REQUIRE_TEST_DEPS=1`, or when that variable is
/// set to anything but `0` or `1`.
#[must_use]
pub fn etcd_binary_or_skip(test: &str) -> Option<PathBuf> {
    let required = match std::env::var(REQUIRE_DEPS).as_deref() {
        Ok("1") => true,
        Ok("0") | Err(std::env::VarError::NotPresent) => false,
        other => panic!("{REQUIRE_DEPS} must be 0 or 1, not {other:?}"),
    };
    if let Some(binary) = etcd_binary() {
        return Some(binary);
    }
    let what = "etcd not found (/usr/bin/etcd or on PATH); install it with \
                `apt-get install etcd-server`";
    assert!(!required, "{REQUIRE_DEPS}=1 and {test} cannot run: {what}");
    // libtest captures eprintln! of a passing test; stderr written to directly shows.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {test} did not run and passes anyway: {what} \
         (set {REQUIRE_DEPS}=1 to fail instead)"
    );
    None
}

/// Standard base64 with padding (etcd's JSON gateway takes keys and values so).
fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(TABLE[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A loopback port free a moment ago.
fn free_port() -> Result<u16, BoxError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A single-member etcd on `127.0.0.1`, with its own client and peer ports and its own data
/// directory under the system's temporary directory. It can be killed (SIGKILL: as a crash)
/// and restarted on the same ports with the same data; dropping it kills it and removes its
/// directory.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), proxy_balancer_test::BoxError> {
/// use proxy_balancer_test::EtcdServer;
///
/// let mut etcd = EtcdServer::start().await?;
/// let endpoint = etcd.endpoint(); // "http://127.0.0.1:<port>"
/// etcd.kill();
/// // … etcd is down: clients see connection refused …
/// etcd.restart().await?; // same ports, same data
/// # let _ = endpoint;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct EtcdServer {
    binary: PathBuf,
    client_port: u16,
    peer_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl EtcdServer {
    /// Starts etcd on free loopback ports and waits (at most 15 s) until it answers
    /// `/health`.
    ///
    /// # Errors
    ///
    /// When etcd is not installed, cannot be started, or does not answer in time (the error
    /// carries the end of its log).
    pub async fn start() -> Result<Self, BoxError> {
        let binary = etcd_binary()
            .ok_or("etcd not found (/usr/bin/etcd or on PATH): apt-get install etcd-server")?;
        let mut last_error: BoxError = "etcd was not started".into();
        for _ in 0..START_ATTEMPTS {
            let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let dir = std::env::temp_dir().join(format!(
                "proxy-balancer-etcd-{}-{id}-{nanos}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir)?;
            let mut server = Self {
                binary: binary.clone(),
                client_port: free_port()?,
                peer_port: free_port()?,
                dir,
                child: None,
            };
            match server.spawn_and_wait().await {
                Ok(()) => return Ok(server),
                // Dropping `server` kills it and removes its directory; try new ports.
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    /// The client URL, `http://127.0.0.1:<port>`.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The data directory (removed when this drops).
    #[must_use]
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the process is running (started and not killed).
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills etcd (SIGKILL, as a crash) and waits for the process to end. The ports and
    /// data are kept for [`restart`](Self::restart). Does nothing when it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes etcd (SIGSTOP): its connections stay open and nothing answers, as a hung
    /// or partitioned etcd. [`resume`](Self::resume) thaws it.
    ///
    /// # Errors
    ///
    /// When it is not running or `kill` fails.
    pub fn pause(&self) -> Result<(), BoxError> {
        self.signal("-STOP")
    }

    /// Thaws etcd after [`pause`](Self::pause) (SIGCONT).
    ///
    /// # Errors
    ///
    /// When it is not running or `kill` fails.
    pub fn resume(&self) -> Result<(), BoxError> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> Result<(), BoxError> {
        let child = self.child.as_ref().ok_or("etcd is not running")?;
        let status = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill {signal} {} failed: {status}", child.id()).into())
        }
    }

    /// Starts etcd again on the same ports with the same data (killing it first if it
    /// runs), and waits (at most 15 s) until it answers.
    ///
    /// # Errors
    ///
    /// When it cannot be started or does not answer in time.
    pub async fn restart(&mut self) -> Result<(), BoxError> {
        self.kill();
        self.spawn_and_wait().await
    }

    /// Puts `value` at `key`, as `etcdctl put` would (through etcd's JSON gateway), and
    /// returns the revision of the write.
    ///
    /// # Errors
    ///
    /// When etcd does not take it.
    pub async fn put(&self, key: &str, value: &str) -> Result<u64, BoxError> {
        let body = format!(
            r#"{{"key":"{}","value":"{}"}}"#,
            base64(key.as_bytes()),
            base64(value.as_bytes())
        );
        self.gateway("put", &body).await
    }

    /// Deletes `key`, as `etcdctl del` would, and returns the revision after it.
    ///
    /// # Errors
    ///
    /// When etcd does not take it.
    pub async fn delete(&self, key: &str) -> Result<u64, BoxError> {
        let body = format!(r#"{{"key":"{}"}}"#, base64(key.as_bytes()));
        self.gateway("deleterange", &body).await
    }

    /// Compacts etcd's history up to `revision`, as `etcdctl compact` would: a watch
    /// resuming from an earlier revision is then refused.
    ///
    /// # Errors
    ///
    /// When etcd does not take it.
    pub async fn compact(&self, revision: u64) -> Result<(), BoxError> {
        let body = format!(r#"{{"revision":"{revision}","physical":true}}"#);
        self.gateway("compaction", &body).await.map(drop)
    }

    /// How many leases etcd holds, as `etcdctl lease list` would count them.
    ///
    /// # Errors
    ///
    /// When etcd does not answer.
    pub async fn lease_count(&self) -> Result<usize, BoxError> {
        let text = self.gateway_text("lease/leases", "{}").await?;
        Ok(text.matches("\"ID\"").count())
    }

    /// Calls `/v3/kv/<call>` with a JSON body; returns the header's revision.
    async fn gateway(&self, call: &str, body: &str) -> Result<u64, BoxError> {
        let text = self.gateway_text(&format!("kv/{call}"), body).await?;
        // `"revision":"123"` in the header (int64 is a string in etcd's JSON).
        let revision = text
            .split("\"revision\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        Ok(revision)
    }

    /// Calls `/v3/<path>` with a JSON body; returns the answer's text.
    async fn gateway_text(&self, call: &str, body: &str) -> Result<String, BoxError> {
        let request = http::Request::post(format!("{}/v3/{call}", self.endpoint())).body(
            http_body_util::Full::new(bytes::Bytes::from(body.to_owned())),
        )?;
        let response = TestClient::new()
            .without_keep_alive()
            .with_timeout(Duration::from_secs(5))
            .request(request)
            .await?;
        let text = response.text();
        if response.status != 200 {
            return Err(format!("etcd refused {call}: {} {text}", response.status).into());
        }
        Ok(text.into_owned())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("etcd.log")
    }

    async fn spawn_and_wait(&mut self) -> Result<(), BoxError> {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let child = Command::new(&self.binary)
            .arg("--name")
            .arg("pb-test")
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .arg("--listen-client-urls")
            .arg(&client)
            .arg("--advertise-client-urls")
            .arg(&client)
            .arg("--listen-peer-urls")
            .arg(&peer)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer)
            .arg("--initial-cluster")
            .arg(format!("pb-test={peer}"))
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--logger")
            .arg("zap")
            .arg("--log-level")
            .arg("warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        let health = format!("{client}/health");
        let http = TestClient::new()
            .without_keep_alive()
            .with_timeout(Duration::from_millis(500));
        let deadline = tokio::time::Instant::now() + READY_BOUND;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(exit)) = child.try_wait() {
                    self.child = None;
                    return Err(format!("etcd exited ({exit}): {}", self.log_tail()).into());
                }
            }
            if let Ok(r) = http.get(&health).await {
                if r.status == 200 && r.text().contains("true") {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                self.kill();
                return Err(format!(
                    "etcd did not answer {health} within {READY_BOUND:?}: {}",
                    self.log_tail()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines of etcd's log, for an error.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
