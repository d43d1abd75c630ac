//! The chaos suite (issue #8): the reverse proxy of [`examples::site`], built from Apache
//! configuration text, under steady concurrent load while a scripted driver kills, slows,
//! breaks, health-fails and disables its members through their test controls and the
//! balancer-manager, always leaving at least one member healthy.
//!
//! What it checks, over real loopback sockets:
//!
//! 1. no client sees an error: every GET is answered 200 by a backend (failover,
//!    `failonstatus=500` and idempotent retries hide every fault), and every failure is
//!    recorded with its time and message;
//! 2. every member's `busy` count is back to 0 at the end;
//! 3. after its fault is lifted, each member serves clients again within a stated bound
//!    (see [`recovery_bound`]), and at the end every member is usable and served traffic in
//!    the last, calm phase;
//! 4. nothing leaks: the runtime's alive tasks return to the baseline taken before the proxy
//!    started, the backends' open connections return to 0, and the proxy stops without
//!    waiting for a lingering inbound connection.
//!
//! A recovery is measured from the clients' side: from the lift to the first 200 that the
//! member's backend serves to a client (so its `hits()` grew, and the answer got through).
//! The sticky clients keep the cookie of their home member rather than adopting the
//! `Set-Cookie` of a failover, so a member is used again as soon as the balancer may pick
//! it. Cookie-less (balanced) traffic must come back too, within one more [`SLACK`]: in
//! Apache it can lag by seconds, because its sticky accounting adds every usable member's
//! load factor to its `lbstatus` on each sticky request, so a member that was out comes back
//! behind its peers by the sticky requests it missed; here the health probe resets
//! `lbstatus` when it enables a member, as the balancer-manager does.
//!
//! It runs about 15 s of load (plus a second of set-up and teardown) and prints a summary:
//! requests served, per-member hits, failover attempts and the recovery times. Set
//! `RUST_LOG` (e.g. `RUST_LOG=proxy_balancer=info`) to see the proxy's own log.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use examples::site::Site;
use http_body_util::Full;
use proxy_balancer::{BalancerStore, Member};
use proxy_balancer_apache_config::parse;
use proxy_balancer_test::{Mode, TestBackend, TestClient};
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Members (and backends) of `balancer://chaos`.
const MEMBERS: usize = 4;
/// Client tasks, each with its own keep-alive connection pool.
const CLIENTS: usize = 8;
/// Clients `0..STICKY_CLIENTS` are sticky: client `i` always sends `ROUTEID=.n{i+1}`, the
/// route of its home member (sessions whose state lives there), so it fails over while its
/// home is out and comes back as soon as the balancer takes its home back. The others never
/// send a cookie: every one of their requests is balanced by `byrequests`.
const STICKY_CLIENTS: usize = 4;
/// Bounds the requests of one client whatever the machine's speed.
const MAX_REQUESTS_PER_CLIENT: u64 = 500_000;

/// The members' `retry`: how long a member in error (`E`) is left alone.
const RETRY: Duration = Duration::from_secs(1);
/// The members' `hcinterval`.
const HC_INTERVAL: Duration = Duration::from_millis(100);
/// The members' `hcpasses` (and `hcfails`).
const HC_PASSES: u32 = 2;
/// The members' `timeout`, in seconds: the slow fault stays well below it.
const MEMBER_TIMEOUT_SECS: u64 = 2;
/// The delay of the slow fault.
const SLOW: Duration = Duration::from_millis(300);

/// How long the clients send requests, from the start of the script.
const LOAD: Duration = Duration::from_millis(15_300);
/// The calm phase: no fault after the script's last step (13.2 s), and every member back
/// by 13.2 s + the largest recovery bound (0.5 s). Every member must serve clients
/// between this point and the end of the load.
const CALM_FROM: Duration = Duration::from_millis(13_800);
/// Bounds one client request: above the slow member's delay and a few failovers.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// A member whose fault was lifted this long ago counts as healthy for the script's
/// invariant: more than its retry window (1 s) and its probe recovery (0.3 s).
const SETTLE: Duration = Duration::from_millis(1_500);
/// How long a recovery watcher waits before giving up (and failing the test): well past the
/// largest bound, and short enough that the last watchers end with the load.
const WATCH_LIMIT: Duration = Duration::from_secs(2);
/// How long the teardown may take to get back to the baseline (tasks, connections, busy).
const TEARDOWN_LIMIT: Duration = Duration::from_secs(5);
/// Scheduling slack for a loaded 2-core machine (other builds running): timer wheel
/// granularity, the probes' loopback round trips and the next request's, each delayed by a
/// busy runtime. On such a machine the probe-bound recoveries take 100–220 ms (two passes
/// one `hcinterval` apart, plus the phase of the last failed probe) and a client is served
/// a few ms after the member is usable; see the summary.
const SLACK: Duration = Duration::from_millis(200);

// ===== the script =====

/// What the driver does to a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// The backend stops (connections refused, open ones closed); lifted by a restart on
    /// the same port.
    Kill,
    /// The backend answers 500, in `failonstatus`: the member goes to `E` and the request
    /// to another member.
    Status500,
    /// The backend resets every connection after reading a request (`/health` too).
    Reset,
    /// The backend closes every connection without answering (`/health` too).
    CloseWithoutResponse,
    /// The backend answers bytes that are not HTTP (`/health` too).
    Garbage,
    /// The backend answers after [`SLOW`], below the member `timeout`.
    Slow,
    /// `/health` answers 500: after `hcfails` probes the member gets `C`.
    HealthFail,
    /// Disabled through the balancer-manager (`w_status_D=1`), re-enabled with
    /// `w_status_D=0`.
    Disabled,
}

#[derive(Clone, Copy, Debug)]
enum Change {
    Apply(Fault),
    Lift(Fault),
    /// The balancer-manager's `w_lf`.
    LoadFactor(u8),
}

#[derive(Clone, Copy, Debug)]
struct Step {
    /// When, from the start of the load.
    at: Duration,
    /// Which member (and backend), 0-based.
    member: usize,
    change: Change,
}

const fn step(at_ms: u64, member: usize, change: Change) -> Step {
    Step {
        at: Duration::from_millis(at_ms),
        member,
        change,
    }
}

/// The fault script: deterministic, every kind of fault at least once, on every member, two
/// storms with three members faulty at once, and a member whose load factor changes (which
/// rebuilds its client). [`check_script`] proves that some member is always healthy.
fn script() -> Vec<Step> {
    use Change::{Apply, Lift, LoadFactor};
    use Fault::{
        CloseWithoutResponse, Disabled, Garbage, HealthFail, Kill, Reset, Slow, Status500,
    };
    vec![
        step(1_000, 0, Apply(Kill)),
        step(1_800, 1, Apply(Status500)),
        step(2_500, 0, Lift(Kill)),
        step(3_000, 2, Apply(Reset)),
        step(3_300, 1, Lift(Status500)),
        step(4_200, 2, Lift(Reset)),
        step(4_800, 3, Apply(Slow)),
        step(4_900, 0, Apply(HealthFail)),
        step(5_600, 3, Lift(Slow)),
        step(5_800, 1, Apply(Disabled)),
        step(5_900, 2, LoadFactor(3)),
        step(6_300, 0, Lift(HealthFail)),
        step(7_100, 3, Apply(Garbage)),
        step(7_300, 1, Lift(Disabled)),
        step(7_800, 0, Apply(CloseWithoutResponse)),
        step(8_100, 3, Lift(Garbage)),
        step(8_600, 0, Lift(CloseWithoutResponse)),
        // Storm: three members faulty; n3 (load factor 3 since 5.9 s) carries everything.
        step(10_100, 0, Apply(Reset)),
        step(10_100, 1, Apply(Status500)),
        step(10_200, 3, Apply(Kill)),
        step(10_800, 3, Lift(Kill)),
        step(10_900, 0, Lift(Reset)),
        step(11_100, 1, Lift(Status500)),
        step(11_200, 2, LoadFactor(1)),
        // Storm: the former carrier dies while another member is disabled.
        step(12_600, 2, Apply(Kill)),
        step(12_600, 1, Apply(Disabled)),
        step(13_200, 2, Lift(Kill)),
        step(13_200, 1, Lift(Disabled)),
    ]
}

/// Checks the script: steps in order, every lift matches an applied fault, every fault is
/// lifted by the end, no fault hits a member within [`SETTLE`] of its last lift (so each
/// recovery is measured whole), no slow member overlaps another member's recovery (a
/// client waiting [`SLOW`] for an answer would delay noticing it), and after every step
/// some member is healthy (no fault, and none lifted within [`SETTLE`]).
fn check_script(steps: &[Step]) {
    let mut active: [Vec<Fault>; MEMBERS] = Default::default();
    let mut lifted: [Option<Duration>; MEMBERS] = [None; MEMBERS];
    let mut last = Duration::ZERO;
    let mut slow_since = None;
    let mut slow_periods = Vec::new();
    let mut recovery_windows = Vec::new();
    for s in steps {
        assert!(s.at >= last, "script out of order at {s:?}");
        assert!(s.member < MEMBERS, "no member {} in {s:?}", s.member);
        last = s.at;
        match s.change {
            Change::Apply(f) => {
                assert!(
                    lifted[s.member].map_or(true, |at| s.at >= at + SETTLE),
                    "{s:?} cuts the member's recovery short"
                );
                active[s.member].push(f);
                if f == Fault::Slow {
                    slow_since = Some(s.at);
                }
            }
            Change::Lift(f) => {
                let i = active[s.member]
                    .iter()
                    .position(|a| *a == f)
                    .unwrap_or_else(|| panic!("{s:?} lifts a fault that is not applied"));
                active[s.member].remove(i);
                lifted[s.member] = Some(s.at);
                if f == Fault::Slow {
                    let since = slow_since.take().expect("invariant: applied before");
                    slow_periods.push((since, s.at));
                } else {
                    recovery_windows.push((s.at, s.at + recovery_bound(f)));
                }
            }
            Change::LoadFactor(_) => {}
        }
        let healthy = (0..MEMBERS)
            .any(|m| active[m].is_empty() && lifted[m].map_or(true, |at| s.at >= at + SETTLE));
        assert!(healthy, "no healthy member after {s:?}");
    }
    assert!(
        active.iter().all(Vec::is_empty),
        "faults never lifted: {active:?}"
    );
    for (from, to) in &slow_periods {
        for (lift, end) in &recovery_windows {
            assert!(
                end <= from || lift >= to,
                "a slow member ({from:?}..{to:?}) overlaps a recovery ({lift:?}..{end:?})"
            );
        }
    }
    assert!(
        HC_INTERVAL * (HC_PASSES + 1) < RETRY,
        "the probes are the faster way back"
    );
    assert!(last + recovery_bound(Fault::Kill) <= CALM_FROM);
    assert!(CALM_FROM + Duration::from_secs(1) <= LOAD);
    assert!(last + WATCH_LIMIT <= LOAD + Duration::from_millis(100));
}

/// How soon after a fault is lifted the member must serve a client again.
///
/// - A member re-enabled by the manager (`D` cleared) is usable at once: only the next
///   request stands between, [`SLACK`].
/// - A slow member never leaves, but the answers in flight at the lift still wait [`SLOW`]
///   (the delay is read when a request arrives), and the sticky client of that member may
///   be waiting for one of them: [`SLOW`] + [`SLACK`].
/// - Every other fault leaves the member in error (`E`: refused connections, `failonstatus`)
///   or health-failed (`C`: the probes failed; the reset, close and garbage modes fail
///   `/health` too). Passing probes clear both after `hcpasses` passes in a row, and only
///   they clear `C`. The last failed probe can end just after the lift (it was in flight);
///   each probe starts one `hcinterval` after the previous one ended, so the member is back
///   `hcpasses × hcinterval` after that; one more `hcinterval` covers the probes' own round
///   trips and a supervisor waking late: 300 ms. Then the next request: + [`SLACK`].
///   `E` alone would also end with the retry window (`retry=1s`), later than the probes.
fn recovery_bound(fault: Fault) -> Duration {
    match fault {
        Fault::Disabled => SLACK,
        Fault::Slow => SLOW + SLACK,
        Fault::Kill
        | Fault::Status500
        | Fault::Reset
        | Fault::CloseWithoutResponse
        | Fault::Garbage
        | Fault::HealthFail => HC_INTERVAL * (HC_PASSES + 1) + SLACK,
    }
}

// ===== what the clients saw =====

/// One request that did not get a 200 from a backend.
#[derive(Debug)]
struct Failure {
    /// Since the start of the load.
    at: Duration,
    client: usize,
    seq: u64,
    cookie: Option<String>,
    message: String,
}

/// Shared by the clients, the driver and the watchers.
struct Observed {
    origin: Instant,
    /// The backends' names, by member position.
    names: Vec<String>,
    /// Responses each backend served to clients (200, its name in `X-Backend` and body).
    served: Vec<AtomicU64>,
    /// Of those, the ones to clients without a cookie (balanced by `byrequests`).
    served_balanced: Vec<AtomicU64>,
    failures: Mutex<Vec<Failure>>,
}

#[derive(Debug, Default)]
struct ClientStats {
    ok: u64,
    /// Sticky requests answered by their home member.
    sticky_home: u64,
    /// Sticky requests answered by another member (their home was out).
    sticky_away: u64,
}

/// The error and its sources, on one line.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let _ = write!(text, ": {e}");
        source = e.source();
    }
    text
}

/// One client: GETs in a loop on its own keep-alive connection until `until`.
async fn client(
    id: usize,
    addr: SocketAddr,
    observed: Arc<Observed>,
    until: Instant,
) -> ClientStats {
    let client = TestClient::new().with_timeout(CLIENT_TIMEOUT);
    let home = (id < STICKY_CLIENTS).then_some(id % MEMBERS);
    let cookie = home.map(|m| format!("ROUTEID=.n{}", m + 1));
    let mut stats = ClientStats::default();
    let mut seq = 0;
    while Instant::now() < until && seq < MAX_REQUESTS_PER_CLIENT {
        seq += 1;
        let mut request = http::Request::get(format!("http://{addr}/c{id}/{seq}"));
        if let Some(c) = &cookie {
            request = request.header(http::header::COOKIE, c.as_str());
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .expect("a valid request");
        let sent = Instant::now();
        let outcome = match client.request(request).await {
            Err(e) => Err(chain(&*e)),
            Ok(r) => {
                let backend = r.header("x-backend").unwrap_or("").to_owned();
                match observed.names.iter().position(|n| *n == backend) {
                    Some(i) if r.status == 200 && r.text() == backend => Ok(i),
                    _ => Err(format!(
                        "{} from {backend:?}: {:?}",
                        r.status,
                        r.text().chars().take(200).collect::<String>()
                    )),
                }
            }
        };
        match outcome {
            Ok(i) => {
                observed.served[i].fetch_add(1, Ordering::SeqCst);
                stats.ok += 1;
                match home {
                    None => {
                        observed.served_balanced[i].fetch_add(1, Ordering::SeqCst);
                    }
                    Some(h) if h == i => stats.sticky_home += 1,
                    Some(_) => stats.sticky_away += 1,
                }
            }
            Err(message) => observed.failures.lock().await.push(Failure {
                at: sent - observed.origin,
                client: id,
                seq,
                cookie: cookie.clone(),
                message,
            }),
        }
    }
    stats
}

// ===== the driver =====

/// The balancer-manager, spoken to over HTTP as an operator would.
struct Manager {
    client: TestClient,
    url: String,
    nonce: String,
}

impl Manager {
    async fn connect(addr: SocketAddr) -> Self {
        let client = TestClient::new().with_timeout(CLIENT_TIMEOUT);
        let url = format!("http://{addr}/balancer-manager");
        let api = client
            .get(&format!("{url}/api"))
            .await
            .expect("the manager's JSON view");
        assert_eq!(api.status, 200, "{}", api.text());
        let json: serde_json::Value = serde_json::from_slice(&api.body).expect("JSON");
        let nonce = json["balancers"][0]["nonce"]
            .as_str()
            .expect("the nonce in the JSON view")
            .to_owned();
        Self { client, url, nonce }
    }

    /// POSTs one member edit to the JSON API; an error says why it was refused.
    async fn edit(&self, member_url: &str, change: &str) -> Result<(), String> {
        let member = member_url.replace(':', "%3A").replace('/', "%2F");
        let form = format!("b=chaos&w={member}&{change}&nonce={}", self.nonce);
        let request = http::Request::post(format!("{}/api", self.url))
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(Full::new(Bytes::from(form)))
            .expect("a valid request");
        let r = self
            .client
            .request(request)
            .await
            .map_err(|e| format!("{change}: {}", chain(&*e)))?;
        if r.status == 200 && r.text().contains("\"ok\":true") {
            Ok(())
        } else {
            Err(format!("{change}: {} {}", r.status, r.text()))
        }
    }
}

/// One lifted fault and how long until its member served a client again.
#[derive(Debug)]
struct Recovery {
    member: usize,
    fault: Fault,
    /// Since the start of the load.
    lifted_at: Duration,
    /// When the member was usable again (flags clear); `None`: not within
    /// [`WATCH_LIMIT`].
    usable: Option<Duration>,
    /// When it served a client again; `None`: not within [`WATCH_LIMIT`].
    took: Option<Duration>,
    /// When it served a client without a cookie again (a `byrequests` pick, not the route
    /// of a sticky client): for the summary only, see the test's docs.
    balanced: Option<Duration>,
}

/// Waits until backend `member` serves a client response counted after `baseline` (all
/// clients, balanced clients), and notes when the member became usable.
async fn watch(
    observed: Arc<Observed>,
    state: Member,
    member: usize,
    fault: Fault,
    baseline: (u64, u64),
    lifted: Instant,
) -> Recovery {
    let lifted_at = lifted - observed.origin;
    let (mut usable, mut took, mut balanced) = (None, None, None);
    while lifted.elapsed() <= WATCH_LIMIT {
        let elapsed = lifted.elapsed();
        if usable.is_none() && state.is_usable() {
            usable = Some(elapsed);
        }
        if took.is_none() && observed.served[member].load(Ordering::SeqCst) > baseline.0 {
            took = Some(elapsed);
        }
        if balanced.is_none()
            && observed.served_balanced[member].load(Ordering::SeqCst) > baseline.1
        {
            balanced = Some(elapsed);
        }
        if took.is_some() && balanced.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Recovery {
        member,
        fault,
        lifted_at,
        usable,
        took,
        balanced,
    }
}

async fn apply(fault: Fault, backend: &TestBackend, manager: &Manager) -> Result<(), String> {
    match fault {
        Fault::Kill => backend.stop().await,
        Fault::Status500 => backend.set_status(500),
        Fault::Reset => backend.set_mode(Mode::Reset),
        Fault::CloseWithoutResponse => backend.set_mode(Mode::CloseWithoutResponse),
        Fault::Garbage => backend.set_mode(Mode::Garbage),
        Fault::Slow => backend.set_delay(SLOW),
        Fault::HealthFail => backend.set_health_status(500),
        Fault::Disabled => manager.edit(&backend.url(), "w_status_D=1").await?,
    }
    Ok(())
}

async fn lift(fault: Fault, backend: &TestBackend, manager: &Manager) -> Result<(), String> {
    match fault {
        Fault::Kill => backend
            .restart()
            .await
            .map_err(|e| format!("restart {}: {e}", backend.name()))?,
        Fault::Status500 => backend.set_status(200),
        Fault::Reset | Fault::CloseWithoutResponse | Fault::Garbage => {
            backend.set_mode(Mode::Normal);
        }
        Fault::Slow => backend.set_delay(Duration::ZERO),
        Fault::HealthFail => backend.set_health_status(200),
        Fault::Disabled => manager.edit(&backend.url(), "w_status_D=0").await?,
    }
    Ok(())
}

/// What the driver reports.
#[derive(Debug, Default)]
struct Driven {
    /// The recovery watchers, still running (the last ones end with the load).
    watchers: JoinSet<Recovery>,
    errors: Vec<String>,
    /// The largest delay between a step's time and when it ran (a loaded machine).
    worst_lateness: Duration,
}

/// Runs the script against the backends and the manager; starts a watcher for every member
/// whose last fault is lifted.
async fn drive(
    steps: &[Step],
    store: &BalancerStore,
    backends: &[TestBackend],
    manager: &Manager,
    observed: &Arc<Observed>,
) -> Driven {
    let mut driven = Driven::default();
    let mut active: [Vec<Fault>; MEMBERS] = Default::default();
    for s in steps {
        tokio::time::sleep_until(observed.origin + s.at).await;
        driven.worst_lateness = driven
            .worst_lateness
            .max(observed.origin.elapsed().saturating_sub(s.at));
        let backend = &backends[s.member];
        let result = match s.change {
            Change::Apply(fault) => {
                active[s.member].push(fault);
                apply(fault, backend, manager).await
            }
            Change::Lift(fault) => {
                active[s.member].retain(|f| *f != fault);
                let baseline = (
                    observed.served[s.member].load(Ordering::SeqCst),
                    observed.served_balanced[s.member].load(Ordering::SeqCst),
                );
                let result = lift(fault, backend, manager).await;
                if result.is_ok() && active[s.member].is_empty() {
                    driven.watchers.spawn(watch(
                        Arc::clone(observed),
                        store.snapshot().members()[s.member].clone(),
                        s.member,
                        fault,
                        baseline,
                        Instant::now(),
                    ));
                }
                result
            }
            Change::LoadFactor(lf) => manager.edit(&backend.url(), &format!("w_lf={lf}")).await,
        };
        if let Err(e) = result {
            driven
                .errors
                .push(format!("{:?} {s:?}: {e}", observed.origin.elapsed()));
        }
    }
    driven
}

// ===== helpers =====

/// Polls `condition` every 10 ms for up to `limit`; returns whether it held and how long
/// it took.
async fn settle(limit: Duration, mut condition: impl FnMut() -> bool) -> (bool, Duration) {
    let start = Instant::now();
    loop {
        if condition() {
            return (true, start.elapsed());
        }
        if start.elapsed() > limit {
            return (false, start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The balancer's members now.
fn members(store: &BalancerStore) -> Vec<Member> {
    store.snapshot().members().to_vec()
}

/// The counters' values now.
fn counts(counters: &[AtomicU64]) -> Vec<u64> {
    counters.iter().map(|c| c.load(Ordering::SeqCst)).collect()
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

fn config(backends: &[TestBackend]) -> String {
    let mut text = String::from("<Proxy \"balancer://chaos\">\n");
    for (i, b) in backends.iter().enumerate() {
        let _ = writeln!(
            text,
            "    BalancerMember \"{}\" route=n{} retry={} connectiontimeout=1 timeout={MEMBER_TIMEOUT_SECS} \
             hcmethod=GET hcuri=/health hcinterval={}ms hcpasses={HC_PASSES} hcfails={HC_PASSES}",
            b.url(),
            i + 1,
            RETRY.as_secs(),
            HC_INTERVAL.as_millis(),
        );
    }
    text.push_str(
        "    ProxySet lbmethod=byrequests stickysession=ROUTEID failonstatus=500 maxattempts=3\n\
         </Proxy>\n\
         ProxyPass \"/\" \"balancer://chaos/\"\n\
         Header add Set-Cookie \"ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/\" env=BALANCER_ROUTE_CHANGED\n\
         <Location \"/balancer-manager\">\n\
         \x20   SetHandler balancer-manager\n\
         \x20   Require ip 127.0.0.1\n\
         </Location>\n",
    );
    text
}

// ===== the test =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_served_while_members_fail_and_recover() {
    if std::env::var_os("RUST_LOG").is_some() {
        proxy_balancer_test::init_tracing();
    }
    let wall = Instant::now();
    let steps = script();
    check_script(&steps);

    // The backends first: their tasks are part of the baseline.
    let backends = examples::start_demo_backends(MEMBERS)
        .await
        .expect("loopback ports");
    let baseline_tasks = alive_tasks();

    let site = Site::from_config(&parse(&config(&backends)).expect("the config parses"))
        .expect("the site builds");
    let store = Arc::clone(&site.stores()[0]);
    let urls: Vec<String> = members(&store).iter().map(|m| m.url().to_owned()).collect();
    let expected: Vec<String> = backends.iter().map(TestBackend::url).collect();
    assert_eq!(urls, expected, "members in backend order");
    let running = examples::start(site).await.expect("a loopback port");
    let addr = running.addr;
    let manager = Manager::connect(addr).await;

    let observed = Arc::new(Observed {
        origin: Instant::now(),
        names: backends.iter().map(|b| b.name().to_owned()).collect(),
        served: (0..MEMBERS).map(|_| AtomicU64::new(0)).collect(),
        served_balanced: (0..MEMBERS).map(|_| AtomicU64::new(0)).collect(),
        failures: Mutex::new(Vec::new()),
    });
    let until = observed.origin + LOAD;
    let mut clients = JoinSet::new();
    for id in 0..CLIENTS {
        clients.spawn(client(id, addr, Arc::clone(&observed), until));
    }

    let mut driven = drive(&steps, &store, &backends, &manager, &observed).await;
    drop(manager);

    // The calm phase: every member must serve clients in it.
    tokio::time::sleep_until(observed.origin + CALM_FROM).await;
    let calm = counts(&observed.served);
    let calm_balanced = counts(&observed.served_balanced);

    let mut stats = Vec::new();
    let joined = tokio::time::timeout(LOAD + CLIENT_TIMEOUT * 2, async {
        while let Some(s) = clients.join_next().await {
            stats.push(s.expect("a client does not panic"));
        }
    })
    .await;
    assert!(joined.is_ok(), "the clients did not stop in time");
    let load_time = observed.origin.elapsed();
    let mut recoveries = Vec::new();
    while let Some(r) = driven.watchers.join_next().await {
        recoveries.push(r.expect("a watcher does not panic"));
    }
    recoveries.sort_by_key(|r| (r.lifted_at, r.member));
    let served_now = counts(&observed.served);
    let balanced_now = counts(&observed.served_balanced);
    let at_end = members(&store);
    let usable: Vec<bool> = at_end.iter().map(Member::is_usable).collect();
    let flags: Vec<String> = at_end.iter().map(|m| m.flags().to_string()).collect();

    // Busy back to 0 once the clients are done (a response body is released just after
    // its last byte went out, hence the short wait).
    let busy = || -> Vec<u64> { members(&store).iter().map(|m| m.state().busy()).collect() };
    let (busy_idle, _) = settle(TEARDOWN_LIMIT, || busy().iter().all(|b| *b == 0)).await;
    let busy_after_load = busy();

    // Stop the proxy; the clients are gone, so no inbound connection should hold it up.
    let stopping = Instant::now();
    running.stop().await.expect("the proxy stops cleanly");
    let stop_took = stopping.elapsed();
    // The site (its balancer, member clients and health probes) went with the server task.
    let (tasks_back, tasks_took) = settle(TEARDOWN_LIMIT, || alive_tasks() <= baseline_tasks).await;
    let tasks_after = alive_tasks();
    let (connections_closed, connections_took) = settle(TEARDOWN_LIMIT, || {
        backends.iter().all(|b| b.open_connections() == 0)
    })
    .await;
    let open_connections: Vec<usize> = backends.iter().map(TestBackend::open_connections).collect();
    let busy_after_stop = busy();
    let unavailable = store.unavailable();

    // ===== summary =====
    let failures = observed.failures.lock().await;
    let served: u64 = stats.iter().map(|s| s.ok).sum();
    let request_hits: Vec<u64> = backends
        .iter()
        .map(|b| b.hits() - b.health_hits())
        .collect();
    let attempts: u64 = request_hits.iter().sum();
    let ms = |t: Option<Duration>| {
        t.map_or_else(|| "never".to_owned(), |t| format!("{} ms", t.as_millis()))
    };
    let mut summary = String::new();
    let _ = writeln!(
        summary,
        "chaos: {CLIENTS} clients for {:.1} s: {served} requests served ({:.0}/s), {} failed; \
         sticky requests served at home {}, elsewhere {}",
        load_time.as_secs_f64(),
        served as f64 / load_time.as_secs_f64(),
        failures.len(),
        stats.iter().map(|s| s.sticky_home).sum::<u64>(),
        stats.iter().map(|s| s.sticky_away).sum::<u64>(),
    );
    let _ = writeln!(
        summary,
        "  failover: {} more attempts reached a backend than requests were served (500s \
         retried, resets, closes, garbage; refused connects not counted)",
        attempts.saturating_sub(served)
    );
    for (i, b) in backends.iter().enumerate() {
        let m = &at_end[i];
        let _ = writeln!(
            summary,
            "  n{} {}: served {} ({} balanced; calm phase {}, {} balanced), backend hits {} + {} \
             probes, elected {}, retries (E cleared) {}, lbstatus {}, flags {:?}",
            i + 1,
            b.name(),
            served_now[i],
            balanced_now[i],
            served_now[i] - calm[i],
            balanced_now[i] - calm_balanced[i],
            request_hits[i],
            b.health_hits(),
            m.state().elected(),
            m.state().retries(),
            m.state().lbstatus(),
            flags[i],
        );
    }
    for r in &recoveries {
        let _ = writeln!(
            summary,
            "  recovery n{} after {:?} lifted at {:.2} s: usable {}, serving {} (bound {} ms), \
             first balanced request {}",
            r.member + 1,
            r.fault,
            r.lifted_at.as_secs_f64(),
            ms(r.usable),
            ms(r.took),
            recovery_bound(r.fault).as_millis(),
            ms(r.balanced),
        );
    }
    let _ = writeln!(
        summary,
        "  script: worst step lateness {} ms; teardown: proxy stop {} ms, tasks {tasks_after} \
         (baseline {baseline_tasks}) after {} ms, backend connections {open_connections:?} \
         after {} ms; wall time {:.1} s",
        driven.worst_lateness.as_millis(),
        stop_took.as_millis(),
        tasks_took.as_millis(),
        connections_took.as_millis(),
        wall.elapsed().as_secs_f64(),
    );
    eprint!("{summary}");

    // ===== assertions =====
    // 1. No client-visible error.
    let mut shown = String::new();
    for f in failures.iter().take(20) {
        let _ = writeln!(
            shown,
            "  {:>7.3} s client {} #{} cookie {:?}: {}",
            f.at.as_secs_f64(),
            f.client,
            f.seq,
            f.cookie,
            f.message
        );
    }
    assert!(
        failures.is_empty(),
        "{} requests failed (first 20):\n{shown}",
        failures.len()
    );
    assert!(
        driven.errors.is_empty(),
        "driver errors: {:?}",
        driven.errors
    );
    assert_eq!(unavailable, 0, "requests answered 503");
    // 2. Busy counters back to 0.
    assert!(busy_idle, "busy after the load: {busy_after_load:?}");
    assert_eq!(
        busy_after_stop, [0; MEMBERS],
        "busy after the proxy stopped"
    );
    // 3. Every member back in use within its bound, and in use at the end.
    for m in 0..MEMBERS {
        assert!(
            recoveries.iter().any(|r| r.member == m),
            "n{} never had a fault lifted",
            m + 1
        );
    }
    for r in &recoveries {
        let bound = recovery_bound(r.fault);
        assert!(
            r.took.is_some_and(|t| t <= bound),
            "n{} not back within {} ms after {:?} was lifted at {:.2} s: usable after {}, \
             serving after {}",
            r.member + 1,
            bound.as_millis(),
            r.fault,
            r.lifted_at.as_secs_f64(),
            ms(r.usable),
            ms(r.took),
        );
    }
    for r in &recoveries {
        let bound = recovery_bound(r.fault) + SLACK;
        assert!(
            r.balanced.is_some_and(|t| t <= bound),
            "n{} took no balanced (cookie-less) request within {} ms after {:?} was lifted at \
             {:.2} s: first balanced request {}",
            r.member + 1,
            bound.as_millis(),
            r.fault,
            r.lifted_at.as_secs_f64(),
            ms(r.balanced),
        );
    }
    assert_eq!(
        usable, [true; MEMBERS],
        "usable at the end (flags {flags:?})"
    );
    for m in 0..MEMBERS {
        assert!(
            served_now[m] > calm[m],
            "n{} served nothing in the calm phase",
            m + 1
        );
    }
    // 4. Nothing leaked.
    assert!(
        stop_took < Duration::from_secs(2),
        "the proxy took {stop_took:?} to stop: an inbound connection lingered"
    );
    assert!(
        tasks_back,
        "tasks alive: {tasks_after}, baseline {baseline_tasks}"
    );
    assert!(
        connections_closed,
        "backend connections still open: {open_connections:?}"
    );
}
