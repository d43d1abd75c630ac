//! End to end in a real headless Chromium, driven through WebDriver (chromedriver): the
//! demo proxy's balancer-manager page lists the members, a member is disabled through its
//! form, the next requests avoid it, and a screenshot of the page is saved to
//! `target/browser/balancer-manager.png`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`apt-get install chromium chromium-driver`;
//! `.ci/run` installs them), found on `PATH`. Without them the test is SKIPPED: it passes
//! without running and says so on stderr, past libtest's capture (its name ends in
//! `or_skipped_without_it`). With `PROXY_BALANCER_REQUIRE_TEST_DEPS=1` (CI sets it) a missing
//! prerequisite fails the test instead, naming what is missing and how to install it. Any
//! other value than `0` or `1` fails the test: a misspelt setting must not pass for `0`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use proxy_balancer::apache_config::parse;
use proxy_balancer::server::Server;
use proxy_balancer::site::Site;
use proxy_balancer_test::TestClient;
use proxy_balancer_test::{demo_config, start_demo_backends};

/// Where the proxy under test listens: loopback, a port the system picks.
const LOOPBACK: std::net::SocketAddr = std::net::SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    0,
));

/// Set to `1` to make a missing prerequisite fail the test instead of skipping it.
const REQUIRE_DEPS: &str = "PROXY_BALANCER_REQUIRE_TEST_DEPS";

/// The whole browser part, however it ends: a hung browser fails the test, never blocks it.
const BROWSER_BUDGET: Duration = Duration::from_secs(90);

/// `name` found on `PATH`, if it is there.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// The Chromium binary and chromedriver, found on `PATH`; or what is missing, with its
/// Debian package.
fn prerequisites() -> Result<(PathBuf, PathBuf), Vec<&'static str>> {
    let chromium = on_path("chromium");
    let chromedriver = on_path("chromedriver");
    match (chromium, chromedriver) {
        (Some(chromium), Some(chromedriver)) => Ok((chromium, chromedriver)),
        (chromium, chromedriver) => Err([
            chromium
                .is_none()
                .then_some("chromium (Debian package chromium)"),
            chromedriver
                .is_none()
                .then_some("chromedriver (Debian package chromium-driver)"),
        ]
        .into_iter()
        .flatten()
        .collect()),
    }
}

/// A loopback port free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a loopback port")
        .port()
}

/// chromedriver (and the Chromium it starts) and the browser's profile directory: the
/// whole process group is killed and the directory removed when this drops, also when the
/// test fails.
struct Driver {
    child: Child,
    port: u16,
    profile: PathBuf,
}

impl Driver {
    async fn start(chromedriver: &Path) -> Self {
        use std::os::unix::process::CommandExt;
        let port = free_port();
        let profile = std::env::temp_dir().join(format!(
            "proxy-balancer-browser-{}-{port}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("a profile directory");
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so that Chromium goes with it.
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let driver = Self {
            child,
            port,
            profile,
        };
        driver.wait_listening(Duration::from_secs(20)).await;
        driver
    }

    async fn wait_listening(&self, within: Duration) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let listening = async {
            while tokio::net::TcpStream::connect(addr).await.is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(within, listening)
            .await
            .unwrap_or_else(|_| panic!("chromedriver not listening on {addr} after {within:?}"));
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group: chromedriver and the browser processes it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The capabilities for Debian's Chromium, headless, with what this closed network needs.
fn chromium_capabilities(
    chromium: &Path,
    profile: &Path,
) -> serde_json::Map<String, serde_json::Value> {
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect::<Vec<_>>();
    let caps = serde_json::json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": chromium, "args": args },
    });
    match caps {
        serde_json::Value::Object(map) => map,
        _ => unreachable!("an object"),
    }
}

/// The table row (`<tr>…</tr>`) of the member whose link text is `url`, from the page source.
fn member_row<'a>(source: &'a str, url: &str) -> Option<&'a str> {
    let link = format!(">{url}</a></td>");
    source.split("<tr>").find(|row| row.contains(&link))
}

/// Where the screenshot goes: `target/browser/` of the workspace (or of `CARGO_TARGET_DIR`).
fn screenshot_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
            PathBuf::from,
        )
        .join("browser")
}

/// In Chromium: the manager page lists the members, a member is disabled through its form,
/// the next requests avoid it. SKIPPED (passes without running, with a line on stderr) when
/// chromium or chromedriver is missing, unless `PROXY_BALANCER_REQUIRE_TEST_DEPS=1`: then it
/// fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_is_disabled_through_the_manager_page_in_chromium_or_skipped_without_it() {
    let required = match std::env::var(REQUIRE_DEPS).as_deref() {
        Ok("1") => true,
        Ok("0") | Err(std::env::VarError::NotPresent) => false,
        other => panic!("{REQUIRE_DEPS} must be 0 or 1, not {other:?}"),
    };
    let (chromium, chromedriver) = match prerequisites() {
        Ok(found) => found,
        Err(missing) => {
            let what = format!(
                "{} not found on PATH; install with `apt-get install chromium chromium-driver`",
                missing.join(" and ")
            );
            assert!(
                !required,
                "{REQUIRE_DEPS}=1 and the browser test cannot run: {what}"
            );
            // libtest captures eprintln! of a passing test; stderr written to directly shows.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: the browser test did not run and passes anyway: {what} \
                 (set {REQUIRE_DEPS}=1 to fail instead)"
            );
            return;
        }
    };

    let backends = start_demo_backends(2).await.expect("loopback ports");
    let config = parse(&demo_config(&backends)).expect("the demo parses");
    let site = Site::from_config(&config).expect("buildable");
    let running = Server::new()
        .listen(LOOPBACK, site)
        .await
        .expect("a loopback port");
    let addr = running.local_addr();

    let driver = Driver::start(&chromedriver).await;
    let mut builder = ClientBuilder::new(HttpConnector::new());
    builder.capabilities(chromium_capabilities(&chromium, &driver.profile));
    let browser = tokio::time::timeout(Duration::from_secs(30), builder.connect(&driver.url()))
        .await
        .expect("a WebDriver session within 30 s")
        .expect("a WebDriver session");

    let member = backends[1].url();
    let manager = format!("http://{addr}/balancer-manager");
    // The browser steps give their outcome rather than panic, so that the session is
    // always closed (and Chromium quits) before the test reports.
    let outcome = tokio::time::timeout(
        BROWSER_BUDGET,
        disable_in_browser(&browser, &manager, &member),
    )
    .await
    .unwrap_or_else(|_| Err(format!("the browser steps took over {BROWSER_BUDGET:?}")));
    let _ = tokio::time::timeout(Duration::from_secs(10), browser.close()).await;
    drop(driver);
    let png = outcome.expect("the page disabled the member");

    // The next requests all avoid the disabled member.
    let client = TestClient::new().with_timeout(Duration::from_secs(5));
    for _ in 0..4 {
        let r = client
            .get(&format!("http://{addr}/"))
            .await
            .expect("an answer");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-backend"), Some("backend-1"));
    }

    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).expect("target/browser");
    let path = dir.join("balancer-manager.png");
    std::fs::write(&path, &png).expect("the screenshot written");
    let written = std::fs::metadata(&path).expect("the screenshot").len();
    assert!(written > 1000, "{} is only {written} bytes", path.display());
    eprintln!("screenshot: {}", path.display());

    running.shutdown().await.expect("stops cleanly");
}

/// Opens the manager, checks both members are `Init Ok`, follows `member`'s link, sets its
/// Disabled status in the member form and submits it, checks the page shows `Init Dis`.
/// Returns a PNG screenshot of the page after the change.
async fn disable_in_browser(
    browser: &Client,
    manager: &str,
    member: &str,
) -> Result<Vec<u8>, String> {
    let e = |what: &'static str| move |err: fantoccini::error::CmdError| format!("{what}: {err}");

    browser.goto(manager).await.map_err(e("open the manager"))?;
    let source = browser.source().await.map_err(e("page source"))?;
    let rows: Vec<&str> = source
        .split("<tr>")
        .filter(|r| r.contains("<td>Init Ok</td>"))
        .collect();
    if rows.len() != 2 {
        return Err(format!("expected 2 members `Init Ok`, page:\n{source}"));
    }

    // The member's link, as an operator would follow it (it carries the nonce).
    browser
        .find(Locator::LinkText(member))
        .await
        .map_err(e("the member's link"))?
        .click()
        .await
        .map_err(e("follow the member's link"))?;
    let url = browser.current_url().await.map_err(e("current URL"))?;
    if !url.query().unwrap_or("").contains("nonce=") {
        return Err(format!("the member link has no nonce: {url}"));
    }

    let form = browser
        .find(Locator::XPath("//form[.//input[@name='w_status_D']]"))
        .await
        .map_err(e("the member form"))?;
    form.find(Locator::Css("input[name='w_status_D'][value='1']"))
        .await
        .map_err(e("the Disabled radio"))?
        .click()
        .await
        .map_err(e("check Disabled"))?;
    form.find(Locator::Css("input[type='submit']"))
        .await
        .map_err(e("the Submit button"))?
        .click()
        .await
        .map_err(e("submit"))?;

    // The answer to the POST: the member is disabled, the other one untouched.
    let shown = async {
        loop {
            let source = browser.source().await.map_err(e("page source"))?;
            let disabled =
                member_row(&source, member).is_some_and(|r| r.contains("<td>Init Dis</td>"));
            let others_ok = source
                .split("<tr>")
                .filter(|r| r.contains("<td>Init Ok</td>"))
                .count()
                == 1;
            if disabled && others_ok {
                return Ok::<(), String>(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    match tokio::time::timeout(Duration::from_secs(10), shown).await {
        Ok(result) => result?,
        Err(_) => {
            let source = browser.source().await.unwrap_or_default();
            return Err(format!("{member} not shown `Init Dis`; page:\n{source}"));
        }
    }
    browser.screenshot().await.map_err(e("screenshot"))
}
