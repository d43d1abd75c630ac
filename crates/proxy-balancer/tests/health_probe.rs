//! Health probes over real loopback backends: flags set and cleared, the exact requests
//! Apache sends, conditions, templates, consecutive counts, recovery time and shutdown.
//!
//! Every test that asserts when something happens runs on tokio's paused clock
//! (`start_paused`): time moves only when every task waits on a timer, and then straight to
//! the next deadline. A probe's loopback connect, write and read are ready as soon as the
//! peer (a task of the same runtime) has acted, so a probe takes no time on that clock and
//! the schedule is exact: a bound there is the behaviour's, with no slack for the machine.
//! The other tests assert flags, counts and bytes, never durations.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use parking_lot::Mutex;
use proxy_balancer::client::MakeHttpMember;
use proxy_balancer::health_probe::expr::HcExpr;
use proxy_balancer::health_probe::{
    HealthMonitor, HealthProbe, ProbeConfig, ProbeDefinitions, ProbeFailure, ProbeMethod,
};
use proxy_balancer::{
    Balancer, BalancerParams, BalancerStore, MemberParams, MemberUrl, StatusFlags,
};
use proxy_balancer_test::{Mode, TestBackend};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};
use tower::ServiceExt;

/// Every wait in these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(20);

/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(5);

async fn backend(name: &str) -> TestBackend {
    TestBackend::start(name).await.expect("bind 127.0.0.1:0")
}

fn store_of(urls: &[String]) -> Arc<BalancerStore> {
    let members = urls.iter().map(|u| {
        let mut m = MemberParams::new(u).expect("a loopback url");
        m.set("retry", "60").expect("valid");
        m.set("connectiontimeout", "1").expect("valid");
        m
    });
    Arc::new(
        BalancerStore::new(
            BalancerParams::new("balancer://hc"),
            members,
            Instant::now().into_std(),
        )
        .expect("distinct members"),
    )
}

fn config(method: ProbeMethod, interval_ms: u64, fails: u32, passes: u32) -> ProbeConfig {
    let mut c = ProbeConfig::new(method);
    c.uri = "/health".into();
    c.interval = Duration::from_millis(interval_ms);
    c.fails = fails;
    c.passes = passes;
    c.timeout = Duration::from_secs(1);
    c
}

/// Polls `cond` until it holds; the time it took. Panics after [`BOUND`].
async fn wait_for(what: &str, cond: impl FnMut() -> bool) -> Duration {
    proxy_balancer_test::wait_for(what, BOUND, POLL, cond).await
}

fn flags(store: &BalancerStore, i: usize) -> StatusFlags {
    store.snapshot().members()[i].flags()
}

/// How long after `from` the std instant `at` (as the monitor records them) is.
fn since(from: Instant, at: Option<std::time::Instant>) -> Duration {
    at.expect("recorded") - from.into_std()
}

async fn answered_by(balancer: &Balancer<MakeHttpMember<Full<Bytes>>>) -> String {
    let request = Request::get("/x")
        .body(Full::new(Bytes::new()))
        .expect("valid");
    let response = timeout(BOUND, balancer.clone().oneshot(request))
        .await
        .expect("bounded")
        .expect("a usable member");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

// ===== scripted raw peer =====

/// A raw HTTP peer: records every request's bytes and answers each connection with the
/// next status of its script (then `then`), closing afterwards.
struct Scripted {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Scripted {
    async fn start(script: &[u16], then: u16, body: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
        let recorded = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                // Up to the blank line, or until a TCP probe closes.
                for _ in 0..64 {
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                if buf.is_empty() {
                    continue;
                }
                recorded
                    .lock()
                    .push(String::from_utf8_lossy(&buf).into_owned());
                let status = script.lock().pop_front().unwrap_or(then);
                let response = format!(
                    "HTTP/1.0 {status} X\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            }
        });
        Self {
            url,
            requests,
            task,
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().clone()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ===== tests =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_health_sets_c_and_the_member_is_not_picked_then_passes_clear_it() {
    let a = backend("a").await;
    let b = backend("b").await;
    let store = store_of(&[a.url(), b.url()]);
    let probe = HealthProbe::spawn(Arc::clone(&store), |_| {
        Some(config(ProbeMethod::Get, 100, 2, 2))
    });
    let monitor = probe.monitor();
    let balancer = Balancer::new(Arc::clone(&store), MakeHttpMember::new());
    wait_for("first probes", || {
        a.health_hits() >= 1 && b.health_hits() >= 1
    })
    .await;
    assert!(store.snapshot().members().iter().all(|m| m.is_usable()));

    a.set_health_status(500);
    let down = wait_for("C on a", || {
        flags(&store, 0).contains(StatusFlags::HC_FAILED)
    })
    .await;
    eprintln!("hcfails=2, hcinterval=100ms: C set {down:?} after /health began failing");
    let id = store.snapshot().members()[0].id();
    let health = monitor.member(id).expect("probed");
    assert!(health.failures >= 2, "{health:?}");
    assert_eq!(health.last_status(), Some(500));
    assert_eq!(health.last_passed(), Some(false));
    assert_eq!(health.disabled, 1);
    assert!(health.last_change.is_some());
    assert_eq!(flags(&store, 0).label().to_string().trim(), "Init HcFl");
    for _ in 0..6 {
        assert_eq!(answered_by(&balancer).await, "b", "a is in C");
    }

    a.set_health_status(200);
    let up = wait_for("C cleared on a", || {
        store.snapshot().members()[0].is_usable()
    })
    .await;
    eprintln!("hcpasses=2, hcinterval=100ms: C cleared {up:?} after /health recovered");
    let mut seen_a = false;
    for _ in 0..6 {
        seen_a |= answered_by(&balancer).await == "a";
    }
    assert!(seen_a, "a is picked again");
    assert_eq!(monitor.member(id).expect("probed").enabled, 1);
    probe.shutdown().await;
}

/// On the paused clock: `hcpasses` passes clear an `E` that `retry=60` would keep for a
/// minute, at the time the probe schedule says.
#[tokio::test(start_paused = true)]
async fn passing_probes_clear_an_error_set_by_traffic() {
    const INTERVAL_MS: u64 = 100;
    const INTERVAL: Duration = Duration::from_millis(INTERVAL_MS);
    const PASSES: u32 = 2;
    let a = backend("a").await;
    let store = store_of(&[a.url()]);
    let member = store.snapshot().members()[0].clone();
    member.mark_error(Instant::now().into_std());
    assert!(!member.is_usable(), "retry=60 keeps it in E");
    let started = Instant::now();
    let probe = HealthProbe::spawn(Arc::clone(&store), |_| {
        Some(config(ProbeMethod::Get, INTERVAL_MS, 1, PASSES))
    });
    wait_for("E cleared", || member.is_usable()).await;
    let health = probe.member(member.id()).expect("probed");
    let took = since(started, health.last_change);
    eprintln!("E set by traffic cleared by {PASSES} passes after {took:?} (retry=60)");
    assert_eq!(
        (health.probes, health.passes, health.enabled),
        (2, 2, 1),
        "cleared by the second pass"
    );
    // The first probe comes within one interval (its jitter), the second one interval
    // after it.
    assert!(
        took >= INTERVAL * (PASSES - 1) && took < INTERVAL * PASSES,
        "{took:?}"
    );
    assert!(!member.flags().contains(StatusFlags::HC_FAILED));
    probe.shutdown().await;
}

/// On the paused clock: a probe starts one interval after the previous one ended, so after
/// the listener closes `hcfails` refused connects set `C` within `hcfails` intervals, and
/// after it is back `hcpasses` passes clear it within `hcpasses` intervals; each count of
/// intervals includes the wait for the first probe after the change (at most one).
#[tokio::test(start_paused = true)]
async fn tcp_probe_of_a_stopped_backend_sets_c_and_recovery_is_bounded() {
    const INTERVAL_MS: u64 = 200;
    const INTERVAL: Duration = Duration::from_millis(INTERVAL_MS);
    const FAILS: u32 = 2;
    const PASSES: u32 = 2;
    let a = backend("a").await;
    let store = store_of(&[a.url()]);
    let probe = HealthProbe::spawn(Arc::clone(&store), |m| {
        Some(config(ProbeMethod::Tcp, INTERVAL_MS, FAILS, PASSES).with_member_timeouts(m.params()))
    });
    let monitor = probe.monitor();
    let id = store.snapshot().members()[0].id();
    wait_for("a first TCP probe", || {
        monitor.member(id).is_some_and(|h| h.passes >= 1)
    })
    .await;
    assert_eq!(a.hits(), 0, "TCP probes send no request");

    // The listener closes somewhere between these two instants; the port stays the
    // backend's (connects are refused), so no other test's socket can take it meanwhile.
    let stopping = Instant::now();
    a.take_down().await.expect("the port held");
    let stopped = Instant::now();
    wait_for("C", || flags(&store, 0).contains(StatusFlags::HC_FAILED)).await;
    let health = monitor.member(id).expect("probed");
    let (earliest, down) = (
        since(stopping, health.last_change),
        since(stopped, health.last_change),
    );
    eprintln!("TCP {FAILS}/{PASSES} at {INTERVAL:?}: C {down:?} after the listener closed");
    assert_eq!(
        health.last.and_then(|o| o.failure()),
        Some(ProbeFailure::Connect)
    );
    assert_eq!(health.disabled, 1);
    assert!(
        earliest >= INTERVAL * (FAILS - 1) && down <= INTERVAL * FAILS,
        "C {down:?} after the close: not within {FAILS} intervals of {INTERVAL:?}"
    );

    let restarting = Instant::now();
    a.bring_up().await.expect("the held port bound again");
    let restarted = Instant::now();
    wait_for("usable", || store.snapshot().members()[0].is_usable()).await;
    let health = monitor.member(id).expect("probed");
    let (earliest, up) = (
        since(restarting, health.last_change),
        since(restarted, health.last_change),
    );
    eprintln!("TCP {FAILS}/{PASSES} at {INTERVAL:?}: usable {up:?} after the listener came back");
    assert_eq!(health.enabled, 1);
    assert_eq!(health.last_passed(), Some(true));
    assert!(
        earliest >= INTERVAL * (PASSES - 1) && up <= INTERVAL * PASSES,
        "recovery {up:?}: not within {PASSES} intervals of {INTERVAL:?}"
    );
    probe.shutdown().await;
}

#[tokio::test]
async fn a_body_condition_fails_a_200_under_maintenance() {
    let a = backend("a").await;
    let defs = ProbeDefinitions::new().with_expr(
        "in_service",
        HcExpr::parse("hc('body') !~ /Under maintenance/").expect("parses"),
    );
    let c = ProbeConfig::from_params(
        &[
            ("hcmethod", "GET"),
            ("hcuri", "/health"),
            ("hcexpr", "in_service"),
        ],
        &defs,
    )
    .expect("valid")
    .expect("a method");
    let url = MemberUrl::new(&a.url()).expect("url");
    assert!(c.probe(&url).await.passed());
    a.set_health_body("Sorry: Under maintenance until 5pm");
    let outcome = c.probe(&url).await;
    assert_eq!(outcome.status(), Some(200));
    assert_eq!(outcome.failure(), Some(ProbeFailure::Condition));
    a.set_health_body("OK");
    assert!(c.probe(&url).await.passed());

    // Only the first body_limit bytes are seen.
    let mut limited = c.clone();
    limited.body_limit = 4;
    a.set_health_body("OK, Under maintenance");
    assert!(limited.probe(&url).await.passed());
    assert!(!c.probe(&url).await.passed());
}

#[tokio::test]
async fn head_with_ok234_passes_a_404_and_the_default_passes_only_2xx_3xx() {
    let a = backend("a").await;
    let url = MemberUrl::new(&a.url()).expect("url");
    let defs = ProbeDefinitions::new().with_expr(
        "ok234",
        HcExpr::parse("%{REQUEST_STATUS} =~ /^[234]/").expect("parses"),
    );
    let ok234 = ProbeConfig::from_params(
        &[
            ("hcmethod", "HEAD"),
            ("hcuri", "/health"),
            ("hcexpr", "ok234"),
        ],
        &defs,
    )
    .expect("valid")
    .expect("a method");
    let plain = config(ProbeMethod::Head, 1000, 1, 1);
    for (status, with_expr, default) in [
        (200, true, true),
        (302, true, true),
        (404, true, false),
        (500, false, false),
    ] {
        a.set_health_status(status);
        assert_eq!(
            ok234.probe(&url).await.passed(),
            with_expr,
            "ok234, {status}"
        );
        let outcome = plain.probe(&url).await;
        assert_eq!(outcome.passed(), default, "default, {status}");
        assert_eq!(outcome.status(), Some(status));
    }
    let last = a.last_request().expect("recorded");
    assert_eq!((last.method.as_str(), last.path()), ("HEAD", "/health"));
}

#[tokio::test]
async fn templates_resolve_and_the_request_is_apaches() {
    let a = backend("a").await;
    let defs = ProbeDefinitions::new().with_template(
        "tpl",
        [
            ("hcmethod", "GET11"),
            ("hcuri", "/health"),
            ("hcinterval", "5"),
        ],
    );
    let c = ProbeConfig::from_params(&[("hctemplate", "tpl"), ("hcfails", "3")], &defs)
        .expect("valid")
        .expect("the template sets a method");
    assert_eq!(
        (c.method, c.fails, c.interval),
        (ProbeMethod::Get11, 3, Duration::from_secs(5))
    );
    let url = MemberUrl::new(&a.url()).expect("url");
    assert!(c.probe(&url).await.passed());
    let request = a.last_request().expect("recorded");
    assert_eq!(
        (request.method.as_str(), request.path()),
        ("GET", "/health")
    );
    let port = url.authority().rsplit_once(':').expect("a port").1;
    assert_eq!(
        request.header("host"),
        Some(format!("127.0.0.1:{port}").as_str())
    );
    assert_eq!(request.header("connection"), Some("close"));
}

#[tokio::test]
async fn the_exact_bytes_apache_sends() {
    let peer = Scripted::start(&[], 200, "").await;
    let host = peer.url.trim_start_matches("http://").to_owned();
    let probe = |method, uri: &str, member: &str| {
        let mut c = ProbeConfig::new(method);
        c.uri = uri.to_owned();
        c.timeout = Duration::from_secs(5);
        let url = MemberUrl::new(member).expect("url");
        async move { c.probe(&url).await }
    };
    let member = peer.url.clone();
    let slash = format!("{}/", peer.url);
    let cases = [
        (
            ProbeMethod::Get,
            "/health",
            member.as_str(),
            "GET /health HTTP/1.0\r\nHost: {h}\r\n\r\n",
        ),
        (
            ProbeMethod::Head,
            "/health",
            member.as_str(),
            "HEAD /health HTTP/1.0\r\nHost: {h}\r\n\r\n",
        ),
        (
            ProbeMethod::Options,
            "/health",
            member.as_str(),
            "OPTIONS * HTTP/1.0\r\nHost: {h}\r\n\r\n",
        ),
        (
            ProbeMethod::Get11,
            "/health",
            member.as_str(),
            "GET /health HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n\r\n",
        ),
        (
            ProbeMethod::Get,
            "health",
            member.as_str(),
            "GET health HTTP/1.0\r\nHost: {h}\r\n\r\n",
        ),
        (
            ProbeMethod::Get,
            "/health",
            slash.as_str(),
            "GET /health HTTP/1.0\r\nHost: {h}\r\n\r\n",
        ),
    ];
    for (i, (method, uri, member, expected)) in cases.into_iter().enumerate() {
        assert!(probe(method, uri, member).await.passed(), "{method} {uri}");
        assert_eq!(peer.requests()[i], expected.replace("{h}", &host));
    }
}

/// On the paused clock, so that the hang ends exactly at the probe's timeout.
#[tokio::test(start_paused = true)]
async fn garbage_and_hangs_fail_without_panicking() {
    let a = backend("a").await;
    let url = MemberUrl::new(&a.url()).expect("url");
    a.set_mode(Mode::Garbage);
    let c = config(ProbeMethod::Get, 1000, 1, 1);
    assert_eq!(
        c.probe(&url).await.failure(),
        Some(ProbeFailure::InvalidResponse)
    );
    a.set_mode(Mode::CloseWithoutResponse);
    assert_eq!(c.probe(&url).await.failure(), Some(ProbeFailure::Io));

    // A peer that accepts and never answers: bounded by the probe timeout.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url =
        MemberUrl::new(&format!("http://{}", listener.local_addr().expect("addr"))).expect("url");
    let hold = tokio::spawn(async move {
        let held = listener.accept().await;
        tokio::time::sleep(BOUND).await;
        drop(held);
    });
    let mut c = config(ProbeMethod::Get, 1000, 1, 1);
    c.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let outcome = timeout(BOUND, c.probe(&url)).await.expect("bounded");
    assert_eq!(outcome.failure(), Some(ProbeFailure::Timeout));
    let took = started.elapsed();
    // The probe ends when its timeout expires: the timer's resolution is 1 ms.
    assert!(
        took >= c.timeout && took <= c.timeout + Duration::from_millis(1),
        "{took:?}"
    );
    hold.abort();
}

/// On the paused clock, so that every probe's result is seen before the next one (polled
/// every 5 ms, probed every 100 ms).
#[tokio::test(start_paused = true)]
async fn counts_are_consecutive_not_cumulative() {
    // the README's "Where we differ from Apache": with hcfails=2, P F P F P F P F never disables (Apache
    // 2.4.71 would, its counter being cumulative); then F F does.
    let script = [200, 500, 200, 500, 200, 500, 200, 500, 200, 500, 500];
    let peer = Scripted::start(&script, 200, "").await;
    let store = store_of(std::slice::from_ref(&peer.url));
    let probe = HealthProbe::spawn(Arc::clone(&store), |_| {
        Some(config(ProbeMethod::Get, 100, 2, 1))
    });
    let monitor: HealthMonitor = probe.monitor();
    let id = store.snapshot().members()[0].id();
    let mut max_seen = 0;
    wait_for("the alternating part of the script", || {
        let h = monitor.member(id).unwrap_or_default();
        max_seen = max_seen.max(h.probes);
        assert!(
            h.probes >= 10 || !flags(&store, 0).contains(StatusFlags::HC_FAILED),
            "disabled during alternating results: {h:?}"
        );
        h.probes >= 10
    })
    .await;
    assert_eq!(monitor.member(id).expect("probed").disabled, 0);
    wait_for("two failures in a row", || {
        flags(&store, 0).contains(StatusFlags::HC_FAILED)
    })
    .await;
    assert_eq!(monitor.member(id).expect("probed").probes, 11);
    wait_for("a pass enables again (hcpasses=1)", || {
        store.snapshot().members()[0].is_usable()
    })
    .await;
    assert!(max_seen >= 10);
    probe.shutdown().await;
}

/// On the paused clock: "no probe after shutdown" is checked over exactly four intervals.
#[tokio::test(start_paused = true)]
async fn shutdown_and_drop_end_every_task() {
    let a = backend("a").await;
    let store = store_of(&[a.url()]);
    let probe = HealthProbe::spawn(Arc::clone(&store), |_| {
        Some(config(ProbeMethod::Get, 100, 1, 1))
    });
    let monitor = probe.monitor();
    wait_for("two probes", || a.health_hits() >= 2).await;
    assert!(monitor.live_tasks() >= 1);
    probe.shutdown().await;
    assert_eq!(monitor.live_tasks(), 0, "shutdown waits for every task");
    let hits = a.health_hits();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(a.health_hits(), hits, "no probe after shutdown");

    let probe = HealthProbe::spawn(Arc::clone(&store), |_| {
        Some(config(ProbeMethod::Get, 100, 1, 1))
    });
    let monitor = probe.monitor();
    wait_for("more probes", || a.health_hits() >= hits + 2).await;
    drop(probe);
    wait_for("tasks gone after drop", || monitor.live_tasks() == 0).await;
    let hits = a.health_hits();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(a.health_hits(), hits, "no probe after drop");
}

/// On the paused clock: time moves only when every task waits on a timer, so once the
/// supervisor has forgotten a removed member, no probe of it is in flight.
#[tokio::test(start_paused = true)]
async fn reconfiguration_is_followed_and_stopped_members_are_skipped() {
    let a = backend("a").await;
    let b = backend("b").await;
    let s = backend("s").await;
    let store = store_of(&[a.url()]);
    let probe = HealthProbe::spawn(Arc::clone(&store), |_| {
        Some(config(ProbeMethod::Get, 100, 1, 1))
    });
    wait_for("a probed", || a.health_hits() >= 1).await;

    let b_id = store
        .add_member(MemberParams::new(&b.url()).expect("url"))
        .expect("added");
    let mut stopped = MemberParams::new(&s.url()).expect("url");
    stopped.set("status", "+S").expect("valid");
    store.add_member(stopped).expect("added");
    wait_for("b probed once added", || b.health_hits() >= 2).await;

    store.remove_member(b_id).expect("removed");
    // The supervisor forgets b within its 100 ms tick, and starts no probe of it after; a
    // probe of b in flight at the removal ended before the clock moved on to that tick.
    // Then b must see no more.
    wait_for("b forgotten", || probe.member(b_id).is_none()).await;
    let hits = b.health_hits();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(b.health_hits(), hits, "a removed member is not probed");
    assert!(probe.member(b_id).is_none(), "its counters are gone");
    assert_eq!(s.health_hits(), 0, "a stopped member is not probed");
    probe.shutdown().await;
}

/// On the paused clock: each member's first probe comes at its jitter, within the first
/// interval, and the jitters spread the members over it.
#[tokio::test(start_paused = true)]
async fn many_members_probe_spread_over_the_interval_within_the_bound() {
    const INTERVAL: Duration = Duration::from_secs(1);
    let mut peers = Vec::new();
    for _ in 0..8 {
        peers.push(Scripted::start(&[], 200, "").await);
    }
    let urls: Vec<String> = peers.iter().map(|p| p.url.clone()).collect();
    let store = store_of(&urls);
    let started = Instant::now();
    let probe = HealthProbe::builder(Arc::clone(&store))
        .concurrency(2)
        .spawn(|_| Some(config(ProbeMethod::Get, 1000, 1, 1)));
    let monitor = probe.monitor();
    // When each member's first probe ended, as the monitor recorded it: a member's second
    // probe comes a whole interval later, long after the next poll.
    let mut firsts = Vec::new();
    wait_for("every member probed once", || {
        for (id, h) in monitor.members() {
            if h.probes >= 1 && !firsts.iter().any(|(i, _)| *i == id) {
                assert_eq!(h.probes, 1, "a second probe before the first was seen");
                firsts.push((id, since(started, h.last_probe)));
            }
        }
        firsts.len() == peers.len()
    })
    .await;
    let last = firsts.iter().map(|(_, t)| *t).max().expect("eight");
    let first = firsts.iter().map(|(_, t)| *t).min().expect("eight");
    eprintln!("first probes of 8 members over {INTERVAL:?} spread from {first:?} to {last:?}");
    assert!(last < INTERVAL, "within one interval: {last:?}");
    assert!(
        last - first >= Duration::from_millis(100),
        "not in lockstep"
    );
    probe.shutdown().await;
}

/// The schedule under tokio's paused clock: probes of a refused port (which fail at once,
/// without waiting on a real timer) come one interval apart, and `hcfails` of them in a row
/// set `C` after about `fails` intervals, the first one jittered within one interval.
#[tokio::test(start_paused = true)]
async fn probes_follow_the_interval_on_a_paused_clock() {
    // Port 1 on loopback: nothing listens there, connecting is refused at once.
    let store = store_of(&["http://127.0.0.1:1".to_owned()]);
    let probe = HealthProbe::spawn(Arc::clone(&store), |_| {
        let mut c = config(ProbeMethod::Tcp, 10_000, 3, 1);
        c.timeout = Duration::from_secs(1);
        Some(c)
    });
    let id = store.snapshot().members()[0].id();
    let probes = |probe: &HealthProbe| probe.member(id).map_or(0, |h| h.probes);

    // Within the first interval: at most the jittered first probe.
    tokio::time::sleep(Duration::from_millis(9_900)).await;
    assert!(
        probes(&probe) <= 1,
        "{} probes in the first interval",
        probes(&probe)
    );
    // After four intervals: three or four probes, never more (one per interval).
    tokio::time::sleep(Duration::from_secs(30)).await;
    let n = probes(&probe);
    assert!(
        (3..=4).contains(&n),
        "{n} probes in 40 s at a 10 s interval"
    );
    assert!(
        store.snapshot().members()[0]
            .flags()
            .contains(StatusFlags::HC_FAILED),
        "three failures in a row set C"
    );
    probe.shutdown().await;
}

/// Beyond Apache: sticky traffic during a member's health outage does not leave it behind
/// its peers in byrequests when it comes back (the probe resets lbstatus on ENABLING).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_back_from_a_health_outage_is_not_starved_by_sticky_debt() {
    use proxy_balancer::core::PickRequest;
    let backends = [backend("a").await, backend("b").await, backend("c").await];
    let mut params = BalancerParams::new("balancer://debt");
    params.set("stickysession", "ROUTEID").expect("valid");
    let members = backends.iter().map(|b| {
        let mut m = MemberParams::new(&b.url()).expect("a loopback url");
        m.set("route", b.name()).expect("valid");
        m
    });
    let store = Arc::new(
        BalancerStore::new(params, members, Instant::now().into_std()).expect("distinct members"),
    );
    let probe = HealthProbe::spawn(Arc::clone(&store), |_| {
        Some(config(ProbeMethod::Get, 50, 1, 1))
    });
    backends[2].set_health_status(500);
    wait_for("C on c", || {
        flags(&store, 2).contains(StatusFlags::HC_FAILED)
    })
    .await;
    // 1000 sessions stuck to a while c is out: Apache's accounting adds b's load factor to
    // its lbstatus on each of them, and not c's.
    let now = Instant::now().into_std();
    for _ in 0..1000 {
        let picked = store
            .pick(&PickRequest::new().with_route("a"), now)
            .expect("a is usable");
        assert_eq!(picked.member().route(), Some("a"));
    }
    backends[2].set_health_status(200);
    wait_for("c usable again", || {
        store.snapshot().members()[2].is_usable()
    })
    .await;
    // The next balanced round takes c: one of the next three picks (Apache: pick 335).
    let routes: Vec<String> = (0..3)
        .map(|_| {
            let picked = store
                .pick(&PickRequest::new(), Instant::now().into_std())
                .expect("usable members");
            picked.member().route().unwrap_or("-").to_owned()
        })
        .collect();
    assert!(routes.iter().any(|r| r == "c"), "{routes:?}");
    probe.shutdown().await;
}
