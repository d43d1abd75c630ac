//! The cost of one request through the whole balancer service, all in-process: our
//! `proxy_balancer::Balancer` against a bare `tower::service_fn` and tower's p2c balancer.
//!
//! Every figure is one request, start to end: `ServiceExt::ready`, `call`, awaiting the
//! response, and reading its body to the end (for the balancer, the end of the body is what
//! releases the member's busy count). Members answer `Response<Full<Bytes>>` (`"ok"`) at once.
//! Measured in the same run, so that figures can be read as ratios:
//! - `layer/bare_service_fn`: one such member on its own, the baseline; the balancer's own
//!   cost is its figure minus this one;
//! - `layer/balancer/{3,16}`: our `Balancer` (byrequests, load factor 1) over 3 and 16
//!   members made by `|member: &Member| service_fn(...)`; `layer/balancer_no_info/16`, the
//!   same over 16 with `BalancerOptions::balancer_info(false)` (no extension per response);
//! - with `--features peers`: `layer/tower_p2c/{3,16}`, tower's `p2c::Balance` over the same
//!   members (`PendingRequests`, always ready), and `layer/tower_p2c_buffer/{3,16}`, the same
//!   behind `tower::buffer::Buffer`, which is how a `Balance` (neither `Clone` nor shareable)
//!   is usually served.
//!
//! Futures run on a current-thread tokio runtime: each sample is one `block_on` that times
//! `iters` requests in a row (what criterion's `to_async` does, but able to borrow the
//! service mutably). Only `Buffer` ever yields to the runtime: its worker is a task on the
//! same thread.

use std::convert::Infallible;
use std::fmt::Debug;
use std::future::{ready, Ready};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion};
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Empty, Full};
use proxy_balancer::balancer::{BalancerOptions, ReplayBody};
use proxy_balancer::{Balancer, BalancerParams, BalancerStore, Member, MemberParams};
use tokio::runtime::Runtime;
use tower::{service_fn, Service, ServiceExt};

/// Member counts: a small pool and a typical one.
const SIZES: [usize; 2] = [3, 16];
/// Kept short: the machine is small and shared, and only ratios within one run matter.
const WARM_UP: Duration = Duration::from_secs(1);
/// See [`WARM_UP`].
const MEASUREMENT: Duration = Duration::from_secs(2);

fn configure<M: criterion::measurement::Measurement>(group: &mut BenchmarkGroup<'_, M>) {
    group.warm_up_time(WARM_UP).measurement_time(MEASUREMENT);
}

/// The request every benchmark sends.
type Req = Request<Empty<Bytes>>;

/// Every member's answer: a 200 with a two-byte body, ready at once.
fn answer<B>(_request: Request<B>) -> Ready<Result<Response<Full<Bytes>>, Infallible>> {
    ready(Ok(Response::new(Full::new(Bytes::from_static(b"ok")))))
}

/// `http://127.0.0.x:80` (loopback). Nothing is sent: members are in-process.
fn member_url(i: usize) -> String {
    format!("http://127.0.0.{}:80", i + 1)
}

/// The clock is read once, at setup (the balancer reads tokio's clock on its own).
#[expect(
    clippy::disallowed_methods,
    reason = "benchmarks read the clock once at setup and pass `now` in, as the core expects"
)]
fn setup_now() -> Instant {
    Instant::now()
}

fn runtime() -> Runtime {
    // The time driver only in case a pick ever had to wait for a member (none does here).
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("invariant: a current-thread runtime builds")
}

/// One request: ready, call, await the response, read the body to its end.
async fn one_request<S, B>(service: &mut S)
where
    S: Service<Req, Response = Response<B>>,
    S::Error: Debug,
    B: Body + Unpin,
    B::Error: Debug,
{
    let ready = service.ready().await.expect("members are always ready");
    let response = ready
        .call(Request::new(Empty::new()))
        .await
        .expect("members always answer");
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        black_box(frame.expect("the body never fails"));
    }
}

/// Wall time of `iters` requests in a row, in one `block_on`.
#[expect(
    clippy::disallowed_methods,
    reason = "a benchmark measures wall time around the runtime, not inside it"
)]
fn time_requests<S, B>(runtime: &Runtime, service: &mut S, iters: u64) -> Duration
where
    S: Service<Req, Response = Response<B>>,
    S::Error: Debug,
    B: Body + Unpin,
    B::Error: Debug,
{
    runtime.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            one_request(service).await;
        }
        start.elapsed()
    })
}

fn bare(c: &mut Criterion, runtime: &Runtime) {
    let mut group = c.benchmark_group("layer");
    configure(&mut group);
    let mut service = service_fn(answer::<Empty<Bytes>>);
    group.bench_function("bare_service_fn", |b| {
        b.iter_custom(|iters| time_requests(runtime, &mut service, iters));
    });
    group.finish();
}

fn balancer(c: &mut Criterion, runtime: &Runtime) {
    let mut group = c.benchmark_group("layer");
    configure(&mut group);
    let now = setup_now();
    for n in SIZES {
        let members = (0..n).map(|i| {
            MemberParams::new(&member_url(i)).expect("invariant: the bench URLs are valid")
        });
        let store = Arc::new(
            BalancerStore::new(BalancerParams::new("bench"), members, now)
                .expect("invariant: URLs are distinct"),
        );
        let mut service = Balancer::new(Arc::clone(&store), |_member: &Member| {
            service_fn(answer::<ReplayBody<Empty<Bytes>>>)
        });
        group.bench_function(BenchmarkId::new("balancer", n), |b| {
            b.iter_custom(|iters| time_requests(runtime, &mut service, iters));
        });
        // Every request was balanced and every busy count released at the body's end.
        let snapshot = store.snapshot();
        for member in snapshot.members() {
            assert_eq!(member.state().busy(), 0, "{} left busy", member.url());
        }
    }
    // 16 members again, without the `BalancerInfo` extension on responses (the opt-out).
    let mut service = balancer_of(16, BalancerOptions::default().balancer_info(false));
    group.bench_function(BenchmarkId::new("balancer_no_info", 16), |b| {
        b.iter_custom(|iters| time_requests(runtime, &mut service, iters));
    });
    group.finish();
}

/// Our balancer over `n` members (byrequests, load factor 1) with `options`.
fn balancer_of(
    n: usize,
    options: BalancerOptions,
) -> impl Service<Req, Response = Response<impl Body<Error: Debug> + Unpin>, Error: Debug> {
    let members = (0..n)
        .map(|i| MemberParams::new(&member_url(i)).expect("invariant: the bench URLs are valid"));
    let store = Arc::new(
        BalancerStore::new(BalancerParams::new("bench"), members, setup_now())
            .expect("invariant: URLs are distinct"),
    );
    Balancer::with_options(
        store,
        |_member: &Member| service_fn(answer::<ReplayBody<Empty<Bytes>>>),
        options,
    )
}

#[cfg(feature = "peers")]
mod peers {
    //! tower's p2c balancer over the same members, bare and behind a `Buffer`.

    use bytes::Bytes;
    use criterion::{BenchmarkId, Criterion};
    use http_body_util::Empty;
    use tokio::runtime::Runtime;
    use tower::balance::p2c::Balance;
    use tower::buffer::Buffer;
    use tower::discover::ServiceList;
    use tower::load::{CompleteOnResponse, PendingRequests};
    use tower::service_fn;

    use super::{answer, configure, time_requests, Req, SIZES};

    /// Room for far more requests than are ever in flight here (one).
    const BUFFER_BOUND: usize = 1024;

    /// `balance(16)` for `LAYER_OVERHEAD_COUNT` (see `count_only`).
    pub(super) fn count_p2c(runtime: &Runtime, count: u64) {
        let members: Vec<_> = (0..16)
            .map(|_| {
                PendingRequests::new(
                    service_fn(answer::<Empty<Bytes>>),
                    CompleteOnResponse::default(),
                )
            })
            .collect();
        let mut balance = Balance::new(ServiceList::new::<Req>(members));
        std::hint::black_box(time_requests(runtime, &mut balance, count));
    }

    pub(super) fn tower_p2c(c: &mut Criterion, runtime: &Runtime) {
        let mut group = c.benchmark_group("layer");
        configure(&mut group);
        for n in SIZES {
            let balance = || {
                let members: Vec<_> = (0..n)
                    .map(|_| {
                        PendingRequests::new(
                            service_fn(answer::<Empty<Bytes>>),
                            CompleteOnResponse::default(),
                        )
                    })
                    .collect();
                Balance::new(ServiceList::new::<Req>(members))
            };

            let mut bare = balance();
            group.bench_function(BenchmarkId::new("tower_p2c", n), |b| {
                b.iter_custom(|iters| time_requests(runtime, &mut bare, iters));
            });

            // The buffer's worker task is spawned on (and only runs inside) this runtime.
            let mut buffered = {
                let _entered = runtime.enter();
                Buffer::new(balance(), BUFFER_BOUND)
            };
            group.bench_function(BenchmarkId::new("tower_p2c_buffer", n), |b| {
                b.iter_custom(|iters| time_requests(runtime, &mut buffered, iters));
            });
        }
        group.finish();
    }
}

/// `LAYER_OVERHEAD_COUNT=N`: sends N requests through the balancer over 16 members (or, with
/// `LAYER_OVERHEAD_WHAT=bare`, `no_info` or `p2c`: the bare member, the balancer without
/// its `BalancerInfo` extension, tower's bare p2c) and exits,
/// without criterion, for an instruction count that the machine's load does not disturb:
/// `valgrind --tool=callgrind` with two values of N, the difference divided by theirs.
fn count_only(runtime: &Runtime) -> bool {
    let Some(count) = std::env::var("LAYER_OVERHEAD_COUNT")
        .ok()
        .and_then(|n| n.parse::<u64>().ok())
    else {
        return false;
    };
    match std::env::var("LAYER_OVERHEAD_WHAT").as_deref() {
        Ok("bare") => {
            let mut service = service_fn(answer::<Empty<Bytes>>);
            black_box(time_requests(runtime, &mut service, count));
        }
        #[cfg(feature = "peers")]
        Ok("p2c") => peers::count_p2c(runtime, count),
        Ok("no_info") => {
            let options = BalancerOptions::default().balancer_info(false);
            black_box(time_requests(runtime, &mut balancer_of(16, options), count));
        }
        _ => {
            let options = BalancerOptions::default();
            black_box(time_requests(runtime, &mut balancer_of(16, options), count));
        }
    }
    true
}

fn main() {
    let runtime = runtime();
    if count_only(&runtime) {
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    bare(&mut c, &runtime);
    balancer(&mut c, &runtime);
    #[cfg(feature = "peers")]
    peers::tower_p2c(&mut c, &runtime);
    c.final_summary();
}
