//! The chaos suite (issue #8): the reverse proxy of [`proxy_balancer::site`], built from Apache
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
//! 3. after its fault is lifted, each member comes back within the probe rounds its recovery
//!    needs and serves clients again at once (see [`Recovery`]), and at the end every member
//!    is usable and served traffic in the last, calm phase;
//! 4. nothing leaks: the runtime's alive tasks return to the baseline taken before the proxy
//!    started, the backends' open connections return to 0, and the proxy stops without
//!    waiting for a lingering inbound connection.
//!
//! A recovery is checked in the units of the mechanisms behind it, not in milliseconds, so
//! that a slow machine (slower probes, slower requests) cannot fail it: the member must be
//! usable again before more of its probes have ended since the lift than `hcpasses` passes in
//! a row need; then the first request its sticky client sends must be served by it (the
//! sticky clients keep the cookie of their home member rather than adopting the
//! `Set-Cookie` of a failover, so a member is used again as soon as the balancer may pick
//! it); and cookie-less (balanced) traffic must reach it again within a few rounds of
//! `byrequests` ([`BALANCED_WITHIN`]). In Apache that last one can lag by seconds, because
//! its sticky accounting adds every usable member's load factor to its `lbstatus` on each
//! sticky request, so a member that was out comes back behind its peers by the sticky
//! requests it missed; here the health probe resets `lbstatus` when it enables a member, as
//! the balancer-manager does. The summary prints the times too.
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
use http_body_util::Full;
use proxy_balancer::apache_config::parse;
use proxy_balancer::health_probe::HealthMonitor;
use proxy_balancer::server::Server;
use proxy_balancer::site::Site;
use proxy_balancer::{BalancerStore, Member};
use proxy_balancer_test::{Mode, TestBackend, TestClient};
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Where the proxy under test listens: loopback, a port the system picks.
const LOOPBACK: std::net::SocketAddr = std::net::SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    0,
));

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
/// How long the teardown may take to get back to the baseline (tasks, connections, busy).
const TEARDOWN_LIMIT: Duration = Duration::from_secs(5);
/// How long the proxy of [`Server`] waits for open connections when it stops (its
/// `DRAIN`).
const PROXY_DRAIN: Duration = Duration::from_secs(5);
/// The script's margin for a probe round trip and a client's next request, in planning
/// when each member is back (see [`recovery_bound`]). No assertion uses it: on an idle
/// 2-core machine the probe-bound recoveries take 100–220 ms (two passes one `hcinterval`
/// apart, plus the phase of the last failed probe) and a client is served a few ms after
/// the member is usable; see the summary.
const SLACK: Duration = Duration::from_millis(200);
/// How many cookie-less requests sent after a member is usable again may go to other
/// members before one reaches it. `byrequests` gives a member its load factor's share of all
/// picks, sticky ones included (Apache's sticky accounting counts them as picks): at the
/// script's widest weighting (3 + 1 + 1 + 1) one pick in 6. Its sticky client sends one
/// request in 8, which leaves it one in 24 of all requests: one in 12 of the cookie-less
/// ones. 64 is five such rounds; a member left behind by the sticky requests it missed
/// (Apache's lag, see the module docs) waits for hundreds.
const BALANCED_WITHIN: usize = 64;

// ===== the script =====

/// What the driver does to a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// The backend stops (connections refused, open ones closed) but keeps its port, so no
    /// other socket takes it meanwhile; lifted by serving on it again.
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
}

/// How soon after a fault is lifted the member is expected to serve a client again, for
/// planning the script (recoveries must not overlap a slow member, and all must be over by
/// [`CALM_FROM`]); the test checks recoveries in probes and requests instead (see
/// [`Recovery`]).
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
    /// By client: when its request in flight was sent, in µs since `origin`; [`IDLE`] while
    /// it has none.
    in_flight: Vec<AtomicU64>,
    failures: Mutex<Vec<Failure>>,
}

/// A client without a request in flight, in [`Observed::in_flight`].
const IDLE: u64 = u64::MAX;

impl Observed {
    /// Microseconds since `origin`, as [`Observed::in_flight`] counts.
    fn micros(&self, t: Instant) -> u64 {
        u64::try_from((t - self.origin).as_micros()).unwrap_or(IDLE - 1)
    }

    /// Whether every client request sent before `t` has been answered: then every effect
    /// of a fault lifted at `t` on the proxy (an error marked on its member by one of these
    /// requests, which the proxy does before it answers) has happened.
    fn answered_all_sent_before(&self, t: Instant) -> bool {
        let t = self.micros(t);
        self.in_flight.iter().all(|c| c.load(Ordering::SeqCst) >= t)
    }
}

/// One request of a client, in the order sent.
#[derive(Debug)]
struct Sent {
    at: Instant,
    answered: Instant,
    /// The member (by position) whose backend served it; `None`: it failed.
    served: Option<usize>,
}

#[derive(Debug, Default)]
struct ClientStats {
    id: usize,
    /// Every request, in the order sent.
    log: Vec<Sent>,
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
    let mut stats = ClientStats {
        id,
        ..ClientStats::default()
    };
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
        observed.in_flight[id].store(observed.micros(sent), Ordering::SeqCst);
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
        observed.in_flight[id].store(IDLE, Ordering::SeqCst);
        stats.log.push(Sent {
            at: sent,
            answered: Instant::now(),
            served: outcome.as_ref().ok().copied(),
        });
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

/// One lifted fault and how its member came back.
///
/// The fault's last effects on the proxy come a little after the lift: requests that reached
/// the backend before it may still mark the member in error (`E`) when their answers (a
/// 500, a reset) get back to the proxy. So the watcher first waits until every client
/// request sent before the lift has been answered (`quiet_at`), and looks from there.
///
/// What is checked, by [`Recovery::check`]:
/// - `probes_while_down` ≤ `hcpasses`: a member held down by its probes (`C`) or by errors
///   (`E`) is usable again once `hcpasses` probes in a row have passed; one more probe may
///   end with the fault's result (it was in flight at the lift), so it is never seen down
///   once `hcpasses` + 1 probes have ended since `quiet_at`. A member re-enabled by the
///   manager (whose answer comes after the change) or only slowed is never seen down.
/// - The first request its sticky client sent after the member was seen usable was served
///   by it: its route leads there as soon as the balancer may pick it.
/// - Of the cookie-less requests sent after that, one of the first [`BALANCED_WITHIN`]
///   reached it.
///
/// None of these depends on how fast the machine is: slower probes or requests only move
/// the moment they happen.
#[derive(Debug)]
struct Recovery {
    member: usize,
    fault: Fault,
    /// Since the start of the load.
    lifted_at: Duration,
    lifted: Instant,
    /// When every client request sent before the lift had been answered; `None`: not before
    /// the load ended.
    quiet_at: Option<Instant>,
    /// When the watcher first saw the member usable after `quiet_at` (flags clear); `None`:
    /// not before the load ended.
    usable_at: Option<Instant>,
    /// The most probes of the member that had ended since `quiet_at` while it was still
    /// seen down.
    probes_while_down: u64,
    /// Filled in from the clients' logs after the load.
    clients: ClientView,
}

/// What the clients' logs say about a recovery.
#[derive(Debug, Default)]
struct ClientView {
    /// The first request of the member's sticky client sent after it was usable: when it
    /// was answered, and by whom. `None`: none was sent before the load ended.
    home: Option<(Instant, Option<usize>)>,
    /// When the member first served any client after the lift (for the summary).
    served: Option<Instant>,
    /// How many cookie-less requests sent after the member was usable went elsewhere
    /// before one reached it, and when that one was answered; `None`: none reached it.
    balanced: Option<(usize, Instant)>,
}

impl Recovery {
    /// Reads the clients' logs (see [`ClientView`]).
    fn read_logs(&mut self, stats: &[ClientStats]) {
        let Some(usable_at) = self.usable_at else {
            return;
        };
        let m = self.member;
        let home = stats
            .iter()
            .find(|s| s.id < STICKY_CLIENTS && s.id % MEMBERS == m)
            .expect("every member has a sticky client");
        self.clients.home = home
            .log
            .iter()
            .find(|r| r.at >= usable_at)
            .map(|r| (r.answered, r.served));
        self.clients.served = stats
            .iter()
            .flat_map(|s| &s.log)
            .filter(|r| r.served == Some(m) && r.answered >= self.lifted)
            .map(|r| r.answered)
            .min();
        let mut balanced: Vec<&Sent> = stats
            .iter()
            .filter(|s| s.id >= STICKY_CLIENTS)
            .flat_map(|s| &s.log)
            .filter(|r| r.at >= usable_at)
            .collect();
        balanced.sort_by_key(|r| r.at);
        self.clients.balanced = balanced
            .iter()
            .position(|r| r.served == Some(m))
            .map(|i| (i, balanced[i].answered));
    }

    /// What went wrong, if anything (see the type's docs).
    fn check(&self) -> Option<String> {
        let what = format!(
            "n{} after {:?} was lifted at {:.2} s",
            self.member + 1,
            self.fault,
            self.lifted_at.as_secs_f64()
        );
        if self.quiet_at.is_none() {
            return Some(format!(
                "{what}: requests sent before the lift were still unanswered at the end"
            ));
        }
        if self.usable_at.is_none() {
            return Some(format!("{what}: never usable again"));
        }
        let probes_allowed = match self.fault {
            Fault::Disabled | Fault::Slow => 0,
            _ => u64::from(HC_PASSES),
        };
        if self.probes_while_down > probes_allowed {
            return Some(format!(
                "{what}: still down after {} of its probes had ended (at most {probes_allowed})",
                self.probes_while_down
            ));
        }
        match self.clients.home {
            None => return Some(format!("{what}: its sticky client sent nothing after")),
            Some((_, served)) if served != Some(self.member) => {
                return Some(format!(
                    "{what}: its sticky client's first request after it was usable was served \
                     by {}",
                    served.map_or_else(|| "no one".to_owned(), |i| format!("n{}", i + 1))
                ));
            }
            Some(_) => {}
        }
        match self.clients.balanced {
            Some((before, _)) if before < BALANCED_WITHIN => None,
            Some((before, _)) => Some(format!(
                "{what}: {before} cookie-less requests went elsewhere before one reached it \
                 (at most {BALANCED_WITHIN})"
            )),
            None => Some(format!("{what}: no cookie-less request reached it")),
        }
    }
}

/// Waits until the fault lifted for `recovery` has no effect left (see [`Recovery`]), then
/// until its member is usable, counting its probes that end meanwhile; or until the load
/// ends.
async fn watch(
    observed: Arc<Observed>,
    monitor: HealthMonitor,
    state: Member,
    mut recovery: Recovery,
) -> Recovery {
    let until = observed.origin + LOAD;
    let probes = || monitor.member(state.id()).map_or(0, |h| h.probes);
    // Each loop is bounded by the load's end; the count bounds are for the loops' sake
    // (2 ms sleeps).
    for _ in 0..LOAD.as_millis() {
        if observed.answered_all_sent_before(recovery.lifted) {
            recovery.quiet_at = Some(Instant::now());
            break;
        }
        if Instant::now() >= until {
            return recovery;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Read after the quiet point: a probe that ends in between is not counted (in the
    // member's favour).
    let probes_at_quiet = probes();
    for _ in 0..LOAD.as_millis() {
        // The count first: a probe changes the flags before it is counted, so the flags
        // read next reflect every probe counted here.
        let ended = probes() - probes_at_quiet;
        if state.is_usable() {
            recovery.usable_at = Some(Instant::now());
            break;
        }
        recovery.probes_while_down = ended;
        if Instant::now() >= until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    recovery
}

async fn apply(fault: Fault, backend: &TestBackend, manager: &Manager) -> Result<(), String> {
    match fault {
        Fault::Kill => backend
            .take_down()
            .await
            .map_err(|e| format!("take down {}: {e}", backend.name()))?,
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
            .bring_up()
            .await
            .map_err(|e| format!("bring up {}: {e}", backend.name()))?,
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
    monitor: &HealthMonitor,
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
                let result = lift(fault, backend, manager).await;
                if result.is_ok() && active[s.member].is_empty() {
                    let lifted = Instant::now();
                    let recovery = Recovery {
                        member: s.member,
                        fault,
                        lifted_at: lifted - observed.origin,
                        lifted,
                        quiet_at: None,
                        usable_at: None,
                        probes_while_down: 0,
                        clients: ClientView::default(),
                    };
                    driven.watchers.spawn(watch(
                        Arc::clone(observed),
                        monitor.clone(),
                        store.snapshot().members()[s.member].clone(),
                        recovery,
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
    let backends = proxy_balancer_test::start_demo_backends(MEMBERS)
        .await
        .expect("loopback ports");
    let baseline_tasks = alive_tasks();

    let site = Site::from_config(&parse(&config(&backends)).expect("the config parses"))
        .expect("the site builds");
    let store = Arc::clone(&site.stores()[0]);
    let urls: Vec<String> = members(&store).iter().map(|m| m.url().to_owned()).collect();
    let expected: Vec<String> = backends.iter().map(TestBackend::url).collect();
    assert_eq!(urls, expected, "members in backend order");
    let monitor = site.probes()[0].monitor();
    let running = Server::new()
        .listen(LOOPBACK, site)
        .await
        .expect("a loopback port");
    let addr = running.local_addr();
    let manager = Manager::connect(addr).await;

    let observed = Arc::new(Observed {
        origin: Instant::now(),
        names: backends.iter().map(|b| b.name().to_owned()).collect(),
        served: (0..MEMBERS).map(|_| AtomicU64::new(0)).collect(),
        served_balanced: (0..MEMBERS).map(|_| AtomicU64::new(0)).collect(),
        in_flight: (0..CLIENTS).map(|_| AtomicU64::new(IDLE)).collect(),
        failures: Mutex::new(Vec::new()),
    });
    let until = observed.origin + LOAD;
    let mut clients = JoinSet::new();
    for id in 0..CLIENTS {
        clients.spawn(client(id, addr, Arc::clone(&observed), until));
    }

    let mut driven = drive(&steps, &store, &monitor, &backends, &manager, &observed).await;
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
        let mut r = r.expect("a watcher does not panic");
        r.read_logs(&stats);
        recoveries.push(r);
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
    running.shutdown().await.expect("the proxy stops cleanly");
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
    let since = |from: Instant, t: Option<Instant>| t.map(|t| t.saturating_duration_since(from));
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
        let c = &r.clients;
        let _ = writeln!(
            summary,
            "  recovery n{} after {:?} lifted at {:.2} s: quiet {}, usable {} ({} probes ended \
             while down), serving {} (planned {} ms), sticky client's next request {} by {}, \
             first balanced request {} after {} elsewhere",
            r.member + 1,
            r.fault,
            r.lifted_at.as_secs_f64(),
            ms(since(r.lifted, r.quiet_at)),
            ms(since(r.lifted, r.usable_at)),
            r.probes_while_down,
            ms(since(r.lifted, c.served)),
            recovery_bound(r.fault).as_millis(),
            ms(since(r.lifted, c.home.map(|h| h.0))),
            c.home
                .and_then(|h| h.1)
                .map_or_else(|| "no one".to_owned(), |i| format!("n{}", i + 1)),
            ms(since(r.lifted, c.balanced.map(|b| b.1))),
            c.balanced
                .map_or_else(|| "-".to_owned(), |b| b.0.to_string()),
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
    // 3. Every member back in use within the probes and requests its recovery needs, and
    // in use at the end.
    for m in 0..MEMBERS {
        assert!(
            recoveries.iter().any(|r| r.member == m),
            "n{} never had a fault lifted",
            m + 1
        );
    }
    let wrong: Vec<String> = recoveries.iter().filter_map(Recovery::check).collect();
    assert!(wrong.is_empty(), "recoveries: {wrong:#?}");
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
    // 4. Nothing leaked. The proxy waits up to its drain time for open connections to
    // finish: stopping sooner means none lingered.
    assert!(
        stop_took < PROXY_DRAIN,
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
