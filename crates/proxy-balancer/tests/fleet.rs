//! A fleet: three reverse-proxy instances (three `Site`s from one Apache configuration with
//! `BalancerShare`, each served on its own loopback port) over one real etcd and real
//! loopback members, with a client loop on each instance. Issue #17's "Done when": a
//! disable through A's manager stops B's and C's traffic to that member within 1 s with no
//! client error; concurrent edits through A and B are never lost; etcd killed for 5 s:
//! serving goes on, the page says so, edits are refused with 503 and resume after; a member
//! added in etcd (with etcdctl, as an operator would) is probed and served by all; the
//! propagation latency over 100 edits.
//!
//! Skips loudly without the `etcd` binary (fails with `PROXY_BALANCER_REQUIRE_TEST_DEPS=1`).
#![cfg(feature = "etcd")]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request};
use http_body_util::Full;
use parking_lot::Mutex;
use proxy_balancer::apache_config::parse;
use proxy_balancer::server::{Server, ServerHandle};
use proxy_balancer::site::Site;
use proxy_balancer::BalancerStore;
use proxy_balancer_test::{EtcdServer, TestBackend, TestClient};
use tokio::time::Instant;

/// Every wait of these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(15);

/// The bound of the issue: an edit reaches every instance within this.
const PROPAGATION: Duration = Duration::from_secs(1);

/// One instance of the fleet: its site, served on its own port.
struct Instance {
    site: Site,
    server: Option<ServerHandle>,
    addr: SocketAddr,
}

impl Instance {
    fn store(&self) -> &Arc<BalancerStore> {
        &self.site.stores()[0]
    }

    fn nonce(&self) -> String {
        self.site
            .manager()
            .and_then(|m| m.nonce("app"))
            .expect("a manager for app")
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// etcd, the members and the three instances.
struct Fleet {
    etcd: EtcdServer,
    backends: Vec<TestBackend>,
    instances: Vec<Instance>,
    prefix: String,
    client: TestClient,
}

/// The configuration every instance reads: one text, each instance's name set apart (as a
/// `Define` or a template would).
fn config_text(endpoint: &str, prefix: &str, members: &[String]) -> String {
    let mut text = format!(
        "BalancerShare etcd {endpoint} prefix={prefix} instance=a\n<Proxy \"balancer://app\">\n"
    );
    for m in members {
        text.push_str(&format!(
            "    BalancerMember \"{m}\" hcmethod=GET hcuri=/health hcinterval=200ms\n"
        ));
    }
    text.push_str(
        "</Proxy>\nProxyPass \"/\" \"balancer://app/\"\n\
         <Location \"/balancer-manager\">\n    SetHandler balancer-manager\n    Require ip 127.0.0.1\n</Location>\n\
         ProxyPass \"/balancer-manager\" \"!\"\n",
    );
    text
}

impl Fleet {
    /// `None` (after saying so) when etcd is not installed.
    async fn start(test: &str, members: usize) -> Option<Self> {
        proxy_balancer_test::etcd_binary_or_skip(test)?;
        let etcd = EtcdServer::start().await.expect("etcd starts");
        let mut backends = Vec::new();
        for i in 0..members {
            backends.push(
                TestBackend::start(format!("backend-{}", i + 1))
                    .await
                    .expect("a loopback port"),
            );
        }
        let prefix = format!("/{test}/");
        let urls: Vec<String> = backends.iter().map(TestBackend::url).collect();
        let config = parse(&config_text(&etcd.endpoint(), &prefix, &urls)).expect("a valid config");
        let mut instances = Vec::new();
        for name in ["a", "b", "c"] {
            let mut config = config.clone();
            if let Some(share) = &mut config.balancer_share {
                share.instance = Some(name.to_owned());
            }
            let site = Site::from_config(&config).expect("builds");
            let server = Server::new()
                .listen(SocketAddr::from(([127, 0, 0, 1], 0)), site.clone())
                .await
                .expect("a loopback port");
            let addr = server.local_addr();
            instances.push(Instance {
                site,
                server: Some(server),
                addr,
            });
        }
        let fleet = Self {
            etcd,
            backends,
            instances,
            prefix,
            client: TestClient::new().with_timeout(Duration::from_secs(5)),
        };
        fleet.wait_connected().await;
        Some(fleet)
    }

    /// Until every instance's share has read etcd.
    async fn wait_connected(&self) {
        let shares: Vec<_> = self
            .instances
            .iter()
            .map(|i| Arc::clone(i.site.shared().expect("shared")))
            .collect();
        proxy_balancer_test::wait_for(
            "every instance connected to etcd",
            BOUND,
            Duration::from_millis(10),
            || shares.iter().all(|s| s.status().connected),
        )
        .await;
    }

    /// A POST of `form` (the nonce added) to instance `i`'s manager API: status and body.
    async fn post(&self, i: usize, form: &str) -> (u16, String) {
        let instance = &self.instances[i];
        let body = format!("{form}&nonce={}", instance.nonce());
        let request = Request::post(instance.url("/balancer-manager/api"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))
            .expect("a request");
        let response = self.client.request(request).await.expect("an answer");
        (response.status.as_u16(), response.text().into_owned())
    }

    /// `put key value` against this fleet's etcd, as an operator would: through etcd's
    /// JSON gateway (`curl -d '{"key":…,"value":…}' http://etcd:2379/v3/kv/put`, keys and
    /// values in base64), which is what `etcdctl put key value` does over gRPC (Debian's
    /// `etcd-server`, which CI installs, has no etcdctl).
    async fn etcd_put(&self, key: &str, value: &str) {
        let body = format!(
            "{{\"key\":\"{}\",\"value\":\"{}\"}}",
            base64(key.as_bytes()),
            base64(value.as_bytes())
        );
        let request = Request::post(format!("{}/v3/kv/put", self.etcd.endpoint()))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("a request");
        let response = self.client.request(request).await.expect("etcd answers");
        assert_eq!(response.status, 200, "put: {}", response.text());
        assert!(
            response.text().contains("\"revision\""),
            "{}",
            response.text()
        );
    }

    async fn shutdown(mut self) {
        for i in &mut self.instances {
            if let Some(server) = i.server.take() {
                server.shutdown().await.expect("stops");
            }
        }
    }
}

/// Per instance: each request's start (since the load began) and the member that served it.
type Seen = Vec<Vec<(Duration, String)>>;

/// A client loop on each instance: what each request's start time was, which member
/// served it, and every client-visible error.
struct Load {
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicU64>,
    ok: Arc<AtomicU64>,
    /// Per instance: (start since `t0`, backend name).
    seen: Arc<Mutex<Seen>>,
    t0: Instant,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    first_error: Arc<Mutex<Option<String>>>,
}

impl Load {
    fn start(fleet: &Fleet) -> Self {
        let t0 = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(AtomicU64::new(0));
        let ok = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(Mutex::new(vec![Vec::new(); fleet.instances.len()]));
        let first_error = Arc::new(Mutex::new(None));
        let tasks = fleet
            .instances
            .iter()
            .enumerate()
            .map(|(i, instance)| {
                let url = instance.url("/load");
                let (stop, errors, ok, seen, first_error) = (
                    Arc::clone(&stop),
                    Arc::clone(&errors),
                    Arc::clone(&ok),
                    Arc::clone(&seen),
                    Arc::clone(&first_error),
                );
                let client = TestClient::new().with_timeout(Duration::from_secs(5));
                tokio::spawn(async move {
                    // Bounded: at most this many requests, or until told to stop.
                    for _ in 0..200_000 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let start = t0.elapsed();
                        match client.get(&url).await {
                            Ok(r) if r.status == 200 => {
                                ok.fetch_add(1, Ordering::Relaxed);
                                let backend = r.header("x-backend").unwrap_or("?").to_owned();
                                seen.lock()[i].push((start, backend));
                            }
                            other => {
                                errors.fetch_add(1, Ordering::Relaxed);
                                let what = match other {
                                    Ok(r) => format!("status {}: {}", r.status, r.text()),
                                    Err(e) => e.to_string(),
                                };
                                first_error
                                    .lock()
                                    .get_or_insert(format!("instance {i}: {what}"));
                            }
                        }
                        // A steady load, not a flood: the two cores are shared.
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                })
            })
            .collect();
        Self {
            stop,
            errors,
            ok,
            seen,
            t0,
            tasks,
            first_error,
        }
    }

    async fn stop(self) -> (u64, u64, Seen) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            tokio::time::timeout(BOUND, t)
                .await
                .expect("the loop ends")
                .expect("no panic");
        }
        let errors = self.errors.load(Ordering::Relaxed);
        assert_eq!(
            errors,
            0,
            "client-visible errors; the first: {:?}",
            self.first_error.lock()
        );
        let seen = self.seen.lock().clone();
        (self.ok.load(Ordering::Relaxed), errors, seen)
    }
}

fn member_flags(store: &BalancerStore, url: &str) -> Option<String> {
    store
        .snapshot()
        .member_by_url(url)
        .map(|m| m.flags().to_string())
}

/// Standard base64 with padding, as etcd's JSON gateway reads keys and values.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn base64_as_etcd_reads_it() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(
        base64(b"/p/app/member/http://h:1"),
        "L3AvYXBwL21lbWJlci9odHRwOi8vaDox"
    );
}

fn enc(url: &str) -> String {
    url.replace(':', "%3A").replace('/', "%2F")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disable_through_a_stops_traffic_from_b_and_c_within_a_second() {
    let Some(fleet) = Fleet::start("fleet_disable", 3).await else {
        return;
    };
    let load = Load::start(&fleet);
    // Traffic flows to every member from every instance first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let target = fleet.backends[0].url();
    let sent = load.t0.elapsed();
    let (status, body) = fleet
        .post(0, &format!("b=app&w={}&w_status_D=1", enc(&target)))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"revision\":"), "{body}");
    // Every store shows it within the bound.
    let stores: Vec<_> = fleet
        .instances
        .iter()
        .map(|i| Arc::clone(i.store()))
        .collect();
    let took = proxy_balancer_test::wait_for(
        "the disable on B and C",
        PROPAGATION,
        Duration::from_millis(2),
        || {
            stores
                .iter()
                .all(|s| member_flags(s, &target).is_some_and(|f| f.contains('D')))
        },
    )
    .await;
    eprintln!("disable seen on every instance after {took:?}");
    // The load goes on a while, then: nothing started after sent + 1 s went to the member.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (ok, _, seen) = load.stop().await;
    assert!(ok > 100, "a real load: {ok} requests");
    for (i, requests) in seen.iter().enumerate() {
        let before = requests
            .iter()
            .filter(|(at, b)| *at < sent && b == "backend-1")
            .count();
        assert!(before > 0, "instance {i} served backend-1 before the edit");
        let late: Vec<_> = requests
            .iter()
            .filter(|(at, b)| *at > sent + PROPAGATION && b == "backend-1")
            .collect();
        assert!(
            late.is_empty(),
            "instance {i} still sent to backend-1: {late:?}"
        );
    }
    // The page of C says who did it, through which instance.
    let page = fleet
        .client
        .get(&fleet.instances[2].url("/balancer-manager"))
        .await
        .expect("the page");
    let text = page.text();
    assert!(text.contains("status by 127.0.0.1 via a at "), "{text}");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_edits_through_a_and_b_are_never_lost() {
    let Some(fleet) = Fleet::start("fleet_concurrent", 2).await else {
        return;
    };
    let target = fleet.backends[1].url();
    let w = enc(&target);
    let stores: Vec<_> = fleet
        .instances
        .iter()
        .map(|i| Arc::clone(i.store()))
        .collect();
    let (mut both, mut refused) = (0, 0);
    for round in 0..24_u32 {
        // A sets the load factor, B the lbset, of the same member, at the same time.
        let lf = 2 + round % 40;
        let ls = 1 + round % 9;
        let (form_a, form_b) = (
            format!("b=app&w={w}&w_lf={lf}"),
            format!("b=app&w={w}&w_ls={ls}"),
        );
        let (a, b) = tokio::join!(fleet.post(0, &form_a), fleet.post(1, &form_b));
        for (status, body) in [&a, &b] {
            assert!(
                *status == 200 || *status == 409,
                "round {round}: {status} {body}"
            );
        }
        assert!(
            a.0 == 200 || b.0 == 200,
            "round {round}: both refused: {a:?} {b:?}"
        );
        if a.0 == 200 && b.0 == 200 {
            both += 1;
        } else {
            refused += 1;
        }
        // Every instance converges on what was taken: nothing taken is lost.
        let want_lf = (a.0 == 200).then_some(lf * 100);
        let want_ls = (b.0 == 200).then_some(ls);
        proxy_balancer_test::wait_for(
            &format!("round {round} on every instance"),
            PROPAGATION * 2,
            Duration::from_millis(2),
            || {
                stores.iter().all(|s| {
                    let snapshot = s.snapshot();
                    let Some(m) = snapshot.member_by_url(&target) else {
                        return false;
                    };
                    want_lf.map_or(true, |lf| m.params().load_factor.lbf() == lf)
                        && want_ls.map_or(true, |ls| u32::from(m.params().lb_set.get()) == ls)
                })
            },
        )
        .await;
    }
    eprintln!("24 rounds: both landed {both}, one refused {refused}");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_down_for_five_seconds_serving_goes_on_and_edits_resume() {
    let Some(mut fleet) = Fleet::start("fleet_outage", 2).await else {
        return;
    };
    let load = Load::start(&fleet);
    tokio::time::sleep(Duration::from_millis(300)).await;
    fleet.etcd.kill();
    let killed = Instant::now();
    let shares: Vec<_> = fleet
        .instances
        .iter()
        .map(|i| Arc::clone(i.site.shared().expect("shared")))
        .collect();
    proxy_balancer_test::wait_for(
        "every instance sees etcd down",
        Duration::from_secs(4),
        Duration::from_millis(20),
        || shares.iter().all(|s| !s.status().connected),
    )
    .await;
    // The page says so; an edit is refused with 503 and why.
    let page = fleet
        .client
        .get(&fleet.instances[0].url("/balancer-manager"))
        .await
        .expect("the page");
    assert!(
        page.text().contains("id=\"shared-down\""),
        "{}",
        page.text()
    );
    let target = fleet.backends[0].url();
    let (status, body) = fleet
        .post(0, &format!("b=app&w={}&w_status_D=1", enc(&target)))
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"kind\":\"store_unavailable\""), "{body}");
    assert!(body.contains("the shared store is unavailable"), "{body}");
    assert!(
        fleet
            .instances
            .iter()
            .all(|i| member_flags(i.store(), &target).is_some_and(|f| !f.contains('D'))),
        "nothing changed anywhere"
    );
    let down = Duration::from_secs(5).saturating_sub(killed.elapsed());
    tokio::time::sleep(down).await;
    fleet.etcd.restart().await.expect("etcd back");
    fleet.wait_connected().await;
    // Edits work again, and every instance converges.
    let (status, body) = fleet
        .post(1, &format!("b=app&w={}&w_status_D=1", enc(&target)))
        .await;
    assert_eq!(status, 200, "{body}");
    let stores: Vec<_> = fleet
        .instances
        .iter()
        .map(|i| Arc::clone(i.store()))
        .collect();
    proxy_balancer_test::wait_for(
        "the edit after the outage on every instance",
        PROPAGATION,
        Duration::from_millis(2),
        || {
            stores
                .iter()
                .all(|s| member_flags(s, &target).is_some_and(|f| f.contains('D')))
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (ok, errors, _) = load.stop().await;
    eprintln!("outage run: {ok} requests, {errors} errors");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_added_in_etcd_is_probed_and_served_by_all() {
    let Some(fleet) = Fleet::start("fleet_added", 2).await else {
        return;
    };
    // A member no configuration names, failing its health check at first.
    let new = TestBackend::builder("backend-new")
        .health_status(500)
        .start()
        .await
        .expect("a loopback port");
    let url = new.url();
    let key = format!("{}app/member/{url}", fleet.prefix);
    fleet.etcd_put(&key, "w_hm=GET&w_hu=/health&w_hi=200").await;
    let stores: Vec<_> = fleet
        .instances
        .iter()
        .map(|i| Arc::clone(i.store()))
        .collect();
    // Probed: each instance's check fails, and the member is out of service (C).
    proxy_balancer_test::wait_for(
        "the new member probed and failing on every instance",
        Duration::from_secs(5),
        Duration::from_millis(10),
        || {
            stores
                .iter()
                .all(|s| member_flags(s, &url).is_some_and(|f| f.contains('C')))
        },
    )
    .await;
    assert!(new.health_hits() >= 3, "{} checks", new.health_hits());
    // Healthy: every instance serves it.
    new.set_health_status(200);
    let load = Load::start(&fleet);
    proxy_balancer_test::wait_for(
        "the new member in service on every instance",
        Duration::from_secs(5),
        Duration::from_millis(10),
        || {
            stores
                .iter()
                .all(|s| member_flags(s, &url).is_some_and(|f| !f.contains('C')))
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (_, _, seen) = load.stop().await;
    for (i, requests) in seen.iter().enumerate() {
        assert!(
            requests.iter().any(|(_, b)| b == "backend-new"),
            "instance {i} never served the new member"
        );
    }
    // The manager shows who added it: etcd itself.
    let json = fleet
        .client
        .get(&fleet.instances[1].url("/balancer-manager/api"))
        .await
        .expect("the JSON view");
    assert!(json.text().contains(&url), "{}", json.text());
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propagation_latency_over_a_hundred_edits() {
    let Some(fleet) = Fleet::start("fleet_latency", 2).await else {
        return;
    };
    let target = fleet.backends[0].url();
    let w = enc(&target);
    let (b, c) = (
        Arc::clone(fleet.instances[1].store()),
        Arc::clone(fleet.instances[2].store()),
    );
    let mut latencies = Vec::with_capacity(200);
    for i in 0..100_u32 {
        // Alternating values: each edit is a change.
        let lf = 2 + i % 2;
        let sent = Instant::now();
        let (status, body) = fleet.post(0, &format!("b=app&w={w}&w_lf={lf}")).await;
        assert_eq!(status, 200, "edit {i}: {body}");
        let shows = |s: &BalancerStore| {
            s.snapshot()
                .member_by_url(&target)
                .is_some_and(|m| m.params().load_factor.lbf() == lf * 100)
        };
        let mut pending: HashMap<usize, &Arc<BalancerStore>> = [(1, &b), (2, &c)].into();
        let deadline = sent + BOUND;
        while !pending.is_empty() && Instant::now() < deadline {
            pending.retain(|_, s| {
                if shows(s) {
                    latencies.push(sent.elapsed());
                    false
                } else {
                    true
                }
            });
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        assert!(
            pending.is_empty(),
            "edit {i} never reached {:?}",
            pending.keys()
        );
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let (p50, p99) = (at(0.50), at(0.99));
    eprintln!(
        "propagation over 100 edits through A to B and C (POST sent to store updated): p50 {p50:?}, p99 {p99:?}, max {:?}",
        latencies.last().copied().unwrap_or_default()
    );
    assert!(p99 < PROPAGATION, "p99 {p99:?}");
    fleet.shutdown().await;
}
