//! The slow-member experiment (issue #18): 4 loopback HTTP members, one answering 10× slower
//! than the others; a fixed number of clients sending requests back to back; for each
//! balancer, p50 and p99 of the request latency and the share of requests the slow member
//! received. Not criterion: one table, printed at the end.
//!
//! Contenders, each over the same 4 members and the same HTTP member client (ours,
//! `MakeHttpMember`):
//! - our `Balancer` with `lbmethod=byrequests`, `bybusyness`, `p2c` and `p2c-ewma`;
//! - `tower PeakEwma`: tower's `p2c::Balance` over `tower::load::PeakEwma`-wrapped members
//!   (decay 10 s as ours; default RTT 1 ms, under every sample, so that each member's first
//!   answer is a peak and sets its estimate: the most favourable setting for tower, whose
//!   docs' 30 ms default would take ~11 s of decay before the slow member stands out);
//! - `tower MemberLoad`: the same `Balance` over our `load::MemberLoad`-wrapped members.
//!
//! tower's members are one-member `Balancer`s (so the same HTTP client and pool), and the
//! `Balance` sits behind `tower::buffer::Buffer`, how a `Balance` (neither `Clone` nor
//! shareable) is served to concurrent clients.
//!
//! Rounds are interleaved (every contender once per round, in turn) so that a change of the
//! machine's load falls on all of them; each contender warms up once before the first round
//! (estimates start from real answers). Everything runs on one 2-thread tokio runtime:
//! clients, balancers and members.
//!
//! Environment (defaults in brackets): `SLOW_MEMBER_SECS` total measured time [60],
//! `SLOW_MEMBER_ROUNDS` [5], `SLOW_MEMBER_CLIENTS` concurrent clients [8],
//! `SLOW_MEMBER_FAST_MS` [1] and `SLOW_MEMBER_SLOW_MS` [10], the members' delays. Without
//! `--bench` (as `cargo test --benches` runs it) a 2-second smoke run.
//!
//! ```sh
//! cargo bench -p benches --bench slow_member
//! ```

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use proxy_balancer::client::MakeHttpMember;
use proxy_balancer::load::MemberLoad;
use proxy_balancer::{Balancer, BalancerParams, BalancerStore, BoxError, MemberParams};
use proxy_balancer_test::TestBackend;
use tokio::time::Instant;
use tower::balance::p2c::Balance;
use tower::buffer::Buffer;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PeakEwma};
use tower::{Service, ServiceExt};

type Req = Request<Full<Bytes>>;
type Ours = Balancer<MakeHttpMember<Full<Bytes>>>;

/// The experiment's settings, from the environment.
struct Settings {
    secs: f64,
    rounds: usize,
    clients: usize,
    fast: Duration,
    slow: Duration,
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Settings {
    fn from_env() -> Self {
        let full = std::env::args().any(|a| a == "--bench");
        Self {
            secs: if full {
                env("SLOW_MEMBER_SECS", 60.0)
            } else {
                2.0
            },
            rounds: env("SLOW_MEMBER_ROUNDS", 5_usize).max(1),
            clients: env("SLOW_MEMBER_CLIENTS", 8_usize).max(1),
            fast: Duration::from_millis(env("SLOW_MEMBER_FAST_MS", 1)),
            slow: Duration::from_millis(env("SLOW_MEMBER_SLOW_MS", 10)),
        }
    }
}

/// What one contender measured over all its rounds.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: u64,
    slow_hits: u64,
    hits: u64,
    busy_time: Duration,
    round_p99: Vec<Duration>,
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// A contender: something to send a request through.
enum Contender {
    Ours(Ours),
    Tower(Buffer<Req, <TowerBalance<PeakMember> as Service<Req>>::Future>),
    TowerMemberLoad(Buffer<Req, <TowerBalance<LoadMember> as Service<Req>>::Future>),
}

type OneMember = Balancer<MakeHttpMember<Full<Bytes>>>;
type PeakMember = PeakEwma<OneMember, CompleteOnResponse>;
type LoadMember = MemberLoad<OneMember>;
type TowerBalance<S> = Balance<ServiceList<Vec<S>>, Req>;

fn now_std() -> std::time::Instant {
    Instant::now().into_std()
}

fn store(method: &str, urls: &[String]) -> Arc<BalancerStore> {
    let mut params = BalancerParams::new("slow-member");
    params.set("lbmethod", method).expect("a known lbmethod");
    let members = urls
        .iter()
        .map(|u| MemberParams::new(u).expect("a loopback url"));
    Arc::new(BalancerStore::new(params, members, now_std()).expect("distinct urls"))
}

/// One member's own balancer: the HTTP client the others use, for tower's members.
fn one_member(url: &str) -> OneMember {
    Balancer::new(
        store("byrequests", &[url.to_owned()]),
        MakeHttpMember::new(),
    )
}

/// Sends requests from `clients` tasks until `until`; the latency of each is pushed.
async fn run<S, RB>(service: &S, clients: usize, until: Instant, tally: &mut Tally)
where
    S: Service<Req, Response = Response<RB>> + Clone + Send + 'static,
    S::Error: Into<BoxError> + Send,
    S::Future: Send,
    RB: Body + Send + 'static,
    RB::Data: Send,
    RB::Error: Send,
{
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(8192);
                let mut errors = 0u64;
                while Instant::now() < until {
                    let request = Request::get("/").body(Full::new(Bytes::new()));
                    let request = request.expect("a valid request");
                    let start = Instant::now();
                    let ok = match service.clone().oneshot(request).await {
                        Ok(response) => response.into_body().collect().await.is_ok(),
                        Err(_) => false,
                    };
                    if ok {
                        latencies.push(start.elapsed());
                    } else {
                        errors += 1;
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    for task in tasks {
        let (latencies, errors) = task.await.expect("a client task does not panic");
        tally.latencies.extend(latencies);
        tally.errors += errors;
    }
}

impl Contender {
    async fn round(&self, clients: usize, span: Duration, tally: &mut Tally) {
        let until = Instant::now() + span;
        match self {
            Self::Ours(s) => run(s, clients, until, tally).await,
            Self::Tower(s) => run(s, clients, until, tally).await,
            Self::TowerMemberLoad(s) => run(s, clients, until, tally).await,
        }
    }
}

async fn experiment(settings: &Settings) -> Result<(), BoxError> {
    let mut backends = Vec::new();
    for i in 0..4 {
        let backend = TestBackend::start(format!("m{i}")).await?;
        backend.set_delay(if i == 3 { settings.slow } else { settings.fast });
        backends.push(backend);
    }
    let urls: Vec<String> = backends.iter().map(TestBackend::url).collect();
    let decay_ns = proxy_balancer::core::DEFAULT_EWMA_DECAY.as_nanos() as f64;

    let mut contenders: Vec<(&str, Contender)> = Vec::new();
    for method in ["byrequests", "bybusyness", "p2c", "p2c-ewma"] {
        let balancer = Balancer::new(store(method, &urls), MakeHttpMember::new());
        contenders.push((method, Contender::Ours(balancer)));
    }
    let peak: Vec<PeakMember> = urls
        .iter()
        .map(|u| {
            let default_rtt = Duration::from_millis(1);
            PeakEwma::new(
                one_member(u),
                default_rtt,
                decay_ns,
                CompleteOnResponse::default(),
            )
        })
        .collect();
    let tower = Buffer::new(Balance::new(ServiceList::new::<Req>(peak)), 1024);
    contenders.push(("tower PeakEwma", Contender::Tower(tower)));
    let shared = store("p2c-ewma", &urls);
    let snapshot = shared.snapshot();
    let loads: Vec<LoadMember> = snapshot
        .members()
        .iter()
        .map(|m| MemberLoad::new(one_member(m.url()), m.clone()))
        .collect();
    let tower_ml = Buffer::new(Balance::new(ServiceList::new::<Req>(loads)), 1024);
    contenders.push(("tower MemberLoad", Contender::TowerMemberLoad(tower_ml)));

    let span = Duration::from_secs_f64(settings.secs / (settings.rounds * contenders.len()) as f64);
    let warm_up = span.min(Duration::from_millis(500));
    let mut tallies: Vec<Tally> = contenders.iter().map(|_| Tally::default()).collect();
    for (_, contender) in &contenders {
        contender
            .round(settings.clients, warm_up, &mut Tally::default())
            .await;
    }
    for _ in 0..settings.rounds {
        for ((_, contender), tally) in contenders.iter().zip(tallies.iter_mut()) {
            let before: Vec<u64> = backends.iter().map(TestBackend::hits).collect();
            let from = tally.latencies.len();
            let start = Instant::now();
            contender.round(settings.clients, span, tally).await;
            tally.busy_time += start.elapsed();
            let after: Vec<u64> = backends.iter().map(TestBackend::hits).collect();
            tally.slow_hits += after[3] - before[3];
            tally.hits += after.iter().sum::<u64>() - before.iter().sum::<u64>();
            let mut this_round = tally.latencies[from..].to_vec();
            this_round.sort_unstable();
            tally.round_p99.push(percentile(&this_round, 99));
        }
    }

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "\nslow member: 4 loopback members, delays {:?} ×3 and {:?}; {} clients; {} rounds of {:.1} s each",
        settings.fast, settings.slow, settings.clients, settings.rounds, span.as_secs_f64()
    )?;
    writeln!(
        out,
        "| balancer | requests | req/s | p50 | p99 | slow member's share | p99 per round | errors |"
    )?;
    writeln!(
        out,
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |"
    )?;
    let mut p99s = Vec::new();
    for ((name, _), tally) in contenders.iter().zip(tallies.iter_mut()) {
        tally.latencies.sort_unstable();
        let (p50, p99) = (
            percentile(&tally.latencies, 50),
            percentile(&tally.latencies, 99),
        );
        p99s.push((*name, p99));
        let share = tally.slow_hits as f64 / tally.hits.max(1) as f64;
        let rounds: Vec<String> = tally
            .round_p99
            .iter()
            .map(|d| format!("{:.2}", d.as_secs_f64() * 1e3))
            .collect();
        writeln!(
            out,
            "| {name} | {} | {:.0} | {:.2} ms | {:.2} ms | {:.1} % | {} | {} |",
            tally.latencies.len(),
            tally.latencies.len() as f64 / tally.busy_time.as_secs_f64(),
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            share * 100.0,
            rounds.join(" "),
            tally.errors,
        )?;
    }
    let p99_of = |name: &str| {
        p99s.iter()
            .find(|(n, _)| *n == name)
            .map_or(Duration::ZERO, |(_, d)| *d)
    };
    let (ours, tower) = (p99_of("p2c-ewma"), p99_of("tower PeakEwma"));
    writeln!(
        out,
        "\ntarget: our p2c-ewma p99 ≤ tower's: {:.2} ms vs {:.2} ms ({:.2}×): {}",
        ours.as_secs_f64() * 1e3,
        tower.as_secs_f64() * 1e3,
        ours.as_secs_f64() / tower.as_secs_f64().max(f64::MIN_POSITIVE),
        if ours <= tower { "met" } else { "missed" }
    )?;
    for backend in &backends {
        backend.stop().await;
    }
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(experiment(&settings))
}
