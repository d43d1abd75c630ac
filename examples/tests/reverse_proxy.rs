//! The reverse proxy's embedded demo, served on loopback and driven by a real client.

use std::time::Duration;

use examples::{demo_store, start_demo_backends};
use proxy_balancer::server::Server;
use proxy_balancer::site::Site;
use proxy_balancer::sticky_route::RouteCookie;
use proxy_balancer_test::TestClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_balances_fails_over_and_stops_cleanly() {
    let backends = start_demo_backends(3).await.expect("loopback ports");
    let store = demo_store(&backends).expect("valid demo");
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let running = Server::new()
        .listen(loopback, Site::single(store, Some(RouteCookie::new())))
        .await
        .expect("a loopback port");
    let addr = running.local_addr();
    let client = TestClient::new().with_timeout(Duration::from_secs(5));
    let url = format!("http://{addr}/hello");

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
    // The backends see the path.
    assert_eq!(
        backends[0]
            .last_request()
            .expect("one request")
            .path_and_query,
        "/hello"
    );

    // The first visit got its route cookie; a request with it sticks and gets none.
    let sticky = http::Request::get(&url)
        .header(http::header::COOKIE, "ROUTEID=.node3")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("valid");
    for _ in 0..3 {
        let response = client.request(sticky.clone()).await.expect("an answer");
        assert_eq!(response.header("x-backend"), Some("backend-3"));
        assert_eq!(response.header("set-cookie"), None);
    }
    let fresh = client.get(&url).await.expect("an answer");
    assert!(
        fresh
            .header("set-cookie")
            .is_some_and(|c| c.starts_with("ROUTEID=.node")),
        "a balanced request gets its route cookie"
    );

    // A backend goes away: no client-visible error.
    backends[1]
        .take_down()
        .await
        .expect("the port is held while down");
    for _ in 0..6 {
        let response = client.get(&url).await.expect("an answer");
        assert_eq!(response.status, 200);
        assert_ne!(response.header("x-backend"), Some("backend-2"));
    }
    // All gone: Apache's 503 with Retry-After.
    for backend in [&backends[0], &backends[2]] {
        backend
            .take_down()
            .await
            .expect("the port is held while down");
    }
    let response = client.get(&url).await.expect("an answer");
    assert_eq!(response.status, 503);
    assert!(response.header("retry-after").is_some());

    running.shutdown().await.expect("stops cleanly");
}

// ===== `--check`: the start-up of `--config` without the listening =====

mod check {
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::OnceLock;

    use examples::check_config;
    use proxy_balancer::apache_config::parse;
    use proxy_balancer::site::Site;

    /// The `reverse-proxy` example binary, built once through cargo (see tests/logs.rs).
    fn binary() -> PathBuf {
        static BUILT: OnceLock<PathBuf> = OnceLock::new();
        BUILT
            .get_or_init(|| {
                let exe = std::env::current_exe().expect("the test's path");
                let dir = exe
                    .parent()
                    .and_then(Path::parent)
                    .expect("target/<profile>/deps");
                if let Ok(cargo) = std::env::var("CARGO") {
                    let status = Command::new(cargo)
                        .args(["build", "-p", "examples", "--example", "reverse-proxy"])
                        .status()
                        .expect("cargo runs");
                    assert!(status.success(), "cannot build the reverse-proxy example");
                }
                dir.join("examples").join("reverse-proxy")
            })
            .clone()
    }

    /// `--check` on `text` (with `--format json` if `json`): exit status and stdout.
    fn run_check(name: &str, text: &str, json: bool) -> (i32, String) {
        let dir = std::env::temp_dir().join(format!("proxy-check-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let path = dir.join("proxy.conf");
        std::fs::write(&path, text).expect("writes the config");
        let mut command = Command::new(binary());
        command.arg("--check").arg(&path);
        if json {
            command.args(["--format", "json"]);
        }
        let output = command.output().expect("runs");
        let _ = std::fs::remove_dir_all(&dir);
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    }

    /// `--check` beside a running proxy: the heartbeat port it holds does not make the
    /// check fail (the check does not bind it), where `--config` would.
    #[test]
    fn check_does_not_bind_the_heartbeat_port() {
        let held = std::net::UdpSocket::bind("127.0.0.1:0").expect("a port");
        let port = held.local_addr().expect("its address").port();
        let text = format!("{MEMBERS}HeartbeatListen 127.0.0.1:{port}\n");
        let (code, out) = run_check("heartbeat", &text, false);
        assert!(code <= 1, "{out}");
        drop(held);
    }

    /// `--check` reads a file as `--config` does: its `Include`s are read (a balancer
    /// defined in an included file is found), and an error in an included file names that
    /// file.
    #[test]
    fn includes_are_read_as_config_reads_them() {
        let dir = std::env::temp_dir().join(format!("proxy-check-include-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("conf.d")).expect("a temp dir");
        std::fs::write(
            dir.join("conf.d/app.conf"),
            "<Proxy balancer://app>\n  BalancerMember http://127.0.0.1:9\n</Proxy>\n",
        )
        .expect("writes");
        let main = dir.join("proxy.conf");
        std::fs::write(
            &main,
            "IncludeOptional conf.d/*.conf\nProxyPass / balancer://app/\n",
        )
        .expect("writes");
        let check = |path: &std::path::Path| {
            let output = Command::new(binary())
                .arg("--check")
                .arg(path)
                .output()
                .expect("runs");
            (
                output.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&output.stdout).into_owned(),
            )
        };
        let (code, out) = check(&main);
        // The doctor's finding on the member names the included file it is in.
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains("conf.d/app.conf: line 2: warning [no-health-check]"),
            "{out}"
        );
        std::fs::write(
            dir.join("conf.d/app.conf"),
            "<Proxy balancer://app>\n  BalancerMember http://127.0.0.1:9 retyr=5\n</Proxy>\n",
        )
        .expect("writes");
        let (code, out) = check(&main);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(code, 2, "{out}");
        assert!(
            out.contains("app.conf:2:37: unknown parameter \"retyr\""),
            "{out}"
        );
    }

    /// Whether `--config` would start: the parse and the site build, as `serve_proxy` does.
    fn config_starts(text: &str) -> bool {
        let Ok(config) = parse(text) else {
            return false;
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async { Site::from_config(&config).is_ok() })
    }

    const MEMBERS: &str = "<Proxy balancer://app>\n  BalancerMember http://127.0.0.1:9 hcmethod=GET hcuri=/\n</Proxy>\nProxyPass / balancer://app/\n";

    /// Each of these passed `--check` (exit 0 or 1) and was then refused by `--config`.
    #[test]
    fn what_config_refuses_check_refuses() {
        let deep = format!(
            "({})",
            "(".repeat(70) + "%{REQUEST_STATUS} = 200" + &")".repeat(70)
        );
        let cases = [
            (
                "bad-hcexpr",
                "ProxyHCExpr bad {%{REQUEST_STATUS} =~ }\n<Proxy balancer://app>\n  BalancerMember http://127.0.0.1:9 hcmethod=GET hcexpr=bad\n</Proxy>\nProxyPass / balancer://app/\n".to_owned(),
                "ProxyHCExpr bad",
            ),
            (
                "ajp-member",
                "<Proxy balancer://app>\n  BalancerMember ajp://127.0.0.1:9 hcmethod=GET\n</Proxy>\nProxyPass / balancer://app/\n".to_owned(),
                "ajp://",
            ),
            (
                "fcgi-member",
                "<Proxy balancer://app>\n  BalancerMember fcgi://127.0.0.1:9 hcmethod=GET\n</Proxy>\nProxyPass / balancer://app/\n".to_owned(),
                "fcgi://",
            ),
            (
                // Apache starts and answers 500 per request (AH00961): refused at start here.
                "https-without-sslproxyengine",
                "<Proxy balancer://app>\n  BalancerMember https://127.0.0.1:9 hcmethod=GET\n</Proxy>\nProxyPass / balancer://app/\n".to_owned(),
                "AH00961",
            ),
            ("plain-url", "ProxyPass /x ftp://127.0.0.1/x\n".to_owned(), "ftp://"),
            ("relative-path", "ProxyPass x http://127.0.0.1/x\n".to_owned(), "must start with '/'"),
            ("control-char", "ProxyPass /x http://127.0.0.1:9/a\u{1}b\n".to_owned(), "control characters"),
            (
                "deep-hcexpr",
                format!("ProxyHCExpr deep {{{deep}}}\n<Proxy balancer://app>\n  BalancerMember http://127.0.0.1:9 hcmethod=GET hcexpr=deep\n</Proxy>\nProxyPass / balancer://app/\n"),
                "nesting deeper than 64",
            ),
        ];
        for (name, text, why) in cases {
            assert!(!config_starts(&text), "{name}: --config starts");
            let (code, out) = run_check(name, &text, false);
            assert_eq!(code, 2, "{name}: {out}");
            assert!(
                out.contains("--config would not start") && out.contains(why),
                "{name}: {out}"
            );
            let (code, out) = run_check(name, &text, true);
            assert_eq!(code, 2, "{name}: {out}");
            let json: serde_json::Value = serde_json::from_str(&out).expect("JSON only");
            let last = json
                .as_array()
                .and_then(|a| a.last())
                .expect("one item at least");
            assert_eq!(last["rule"], "start", "{name}: {out}");
        }
        // And a configuration that starts passes.
        assert!(config_starts(MEMBERS));
        let (code, out) = run_check("fine", MEMBERS, false);
        assert_eq!(code, 0, "{out}");
        assert!(out.ends_with("no problem found\n"), "{out}");
    }

    /// Parse errors no longer hide the doctor: both come in one run, in the order of the
    /// text, in text and in JSON.
    #[test]
    fn parse_errors_and_findings_in_one_run() {
        let text = "<Proxy balancer://app>\n  BalancerMember http://127.0.0.1:9 retry=300 hcmethod=GET\n</Proxy>\nProxyPass /app\nProxyPass / balancer://app/\n";
        let (code, out) = run_check("both", text, false);
        assert_eq!(code, 2, "{out}");
        let retry = out.find("[retry-too-long]").expect("the doctor's finding");
        let parse = out
            .find("line 4, column 1: ProxyPass takes")
            .expect("the parse error");
        assert!(retry < parse, "in the order of the text: {out}");
        let (code, out) = run_check("both-json", text, true);
        assert_eq!(code, 2, "{out}");
        let json: serde_json::Value = serde_json::from_str(&out).expect("JSON only");
        let rules: Vec<&str> = json
            .as_array()
            .expect("an array")
            .iter()
            .filter_map(|f| f["rule"].as_str())
            .collect();
        assert_eq!(rules, ["retry-too-long", "parse"], "{out}");
    }

    /// What is read and not applied is said, with its severity; the exit status says
    /// whether `--config` would start.
    #[test]
    fn not_applied_is_reported_and_refused_is_refused() {
        // A Require outside the manager fails open: an error, but the proxy starts.
        let text = format!(
            "{MEMBERS}<Location /admin>\n  Require ip 10.0.0.0/8\n</Location>\nProxyStatus On\n"
        );
        assert!(config_starts(&text));
        let report = check_config(&text, None, true);
        assert!(report.starts());
        assert_eq!(report.exit_code(), 1);
        let (code, out) = run_check("require", &text, false);
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains("line 6: error [not-applied]: Require is not applied by proxy-balancer"),
            "{out}"
        );
        assert!(out.contains("fails open"), "{out}");
        assert!(
            out.ends_with("--config would start, with the 2 findings above\n"),
            "{out}"
        );
        assert!(
            out.contains("line 8: note [not-applied]: ProxyStatus"),
            "{out}"
        );
        // Notes alone: exit 0.
        let report = check_config(&format!("{MEMBERS}ProxyStatus On\n"), None, true);
        assert_eq!(report.exit_code(), 0, "{}", report.to_text("x"));
        // Refused: a line:column error, and --config does not start.
        let text = format!("{MEMBERS}ProxyRemote * http://firewall:81\n");
        assert!(!config_starts(&text));
        let (code, out) = run_check("remote", &text, false);
        assert_eq!(code, 2, "{out}");
        assert!(
            out.contains("line 5, column 1: ProxyRemote is refused by proxy-balancer"),
            "{out}"
        );
        // A worker parameter that is read and not applied (a note: exit 0).
        let text = MEMBERS.replace("hcuri=/", "hcuri=/ smax=1");
        let (code, out) = run_check("smax", &text, false);
        assert_eq!(code, 0, "{out}");
        assert!(
            out.contains(
                "smax= on the members of balancer://app (line 2) is not applied by proxy-balancer"
            ),
            "{out}"
        );
    }

    /// `--check` touches no log file: one that exists is not truncated, one that does not
    /// is not left behind; a log `--config` cannot open is a refusal.
    #[test]
    fn log_files_are_checked_without_being_changed() {
        let dir = std::env::temp_dir().join(format!("proxy-check-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let existing = dir.join("error.log");
        std::fs::write(&existing, "kept\n").expect("writes");
        let missing = dir.join("access.log");
        let text = format!(
            "ErrorLog {}\nCustomLog {} combined\n{MEMBERS}",
            existing.display(),
            missing.display()
        );
        let report = check_config(&text, None, true);
        assert!(report.starts(), "{}", report.to_text("x"));
        assert_eq!(std::fs::read_to_string(&existing).expect("reads"), "kept\n");
        assert!(!missing.exists());
        let text = format!(
            "CustomLog {}/no/such/dir/a.log combined\n{MEMBERS}",
            dir.display()
        );
        let report = check_config(&text, None, true);
        assert!(!report.starts());
        assert!(report
            .refusal
            .is_some_and(|r| r.line == 1 && r.what.contains("CustomLog")));
        // Without access logs (--no-access-log), that line does not stop the start.
        assert!(check_config(&text, None, false).starts());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
