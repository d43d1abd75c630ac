//! The retry budget of `retry_idempotent` (beyond Apache) over real loopback members that
//! drop idempotent requests once they have read them: retries stay within the budget over
//! a run, and every retry the budget refused is a failure the client saw.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use proxy_balancer::balancer::BalancerOptions;
use proxy_balancer::client::MakeHttpMember;
use proxy_balancer::{Balancer, BalancerParams, BalancerStore, MemberParams};
use proxy_balancer_test::{Mode, TestBackend};
use tower::ServiceExt;

/// Every wait in these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(20);

type HttpBalancer = Balancer<MakeHttpMember<Full<Bytes>>>;

/// Three members, the first dropping every request after reading it; the balancer retries
/// idempotent requests under `budget` (`ProxySet` lines).
async fn setup(budget: &[(&str, &str)]) -> (Vec<TestBackend>, Arc<BalancerStore>, HttpBalancer) {
    let mut backends = Vec::new();
    for i in 0..3 {
        backends.push(
            TestBackend::start(format!("backend-{i}"))
                .await
                .expect("bind 127.0.0.1:0"),
        );
    }
    backends[0].set_mode(Mode::CloseWithoutResponse);
    let mut params = BalancerParams::new("budget");
    for (key, value) in budget {
        params.set(key, value).expect("a valid budget");
    }
    let members = backends
        .iter()
        .map(|b| MemberParams::new(&b.url()).expect("a loopback url"));
    let store = Arc::new(
        BalancerStore::new(params, members, tokio::time::Instant::now().into_std())
            .expect("distinct members"),
    );
    let options = BalancerOptions::default().retry_idempotent(true);
    let balancer = Balancer::with_options(Arc::clone(&store), MakeHttpMember::new(), options);
    (backends, store, balancer)
}

/// One GET, its body read to the end; `Err` for anything but a 200.
async fn get(balancer: HttpBalancer) -> Result<(), String> {
    let request = Request::get("/item")
        .body(Full::new(Bytes::new()))
        .expect("valid");
    let response = tokio::time::timeout(BOUND, balancer.oneshot(request))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| format!("{e} ({:?})", e.kind()))?;
    if response.status() != 200 {
        return Err(format!("status {}", response.status()));
    }
    response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// What a run of `clients` × `per_client` GETs did.
#[derive(Debug)]
struct Run {
    requests: u64,
    client_errors: u64,
    /// Requests the dropping member read (first tries and retries alike).
    dropped: u64,
    allowed: u64,
    refused: u64,
    elapsed: Duration,
}

async fn run(budget: &[(&str, &str)], clients: u64, per_client: u64) -> Run {
    let (backends, store, balancer) = setup(budget).await;
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let balancer = balancer.clone();
        tasks.push(tokio::spawn(async move {
            let mut errors = 0;
            for _ in 0..per_client {
                if get(balancer.clone()).await.is_err() {
                    errors += 1;
                }
            }
            errors
        }));
    }
    let mut client_errors = 0;
    for task in tasks {
        client_errors += task.await.expect("the client task ends");
    }
    let run = Run {
        requests: clients * per_client,
        client_errors,
        dropped: backends[0].hits(),
        allowed: store.retry_budget().allowed(),
        refused: store.retry_budget().refused(),
        elapsed: started.elapsed(),
    };
    for backend in &backends {
        backend.stop().await;
    }
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stay_within_the_budget_and_refusals_are_the_clients_failures() {
    let clients = 8;
    // 20 % of the requests plus 1 a second, over 10 s.
    let budget = [
        ("retrybudget", "20"),
        ("retrybudgetmin", "1"),
        ("retrybudgetwindow", "10"),
    ];
    let on = run(&budget, clients, 75).await;
    let off = run(&[("retrybudget", "Off")], clients, 75).await;
    eprintln!(
        "retry budget on:  {on:?}, retries/requests {:.3}\n\
         retry budget off: {off:?}, retries/requests {:.3}",
        on.allowed as f64 / on.requests as f64,
        off.allowed as f64 / off.requests as f64,
    );

    // Without a budget, every request the member dropped is retried and none fails.
    assert_eq!(off.client_errors, 0);
    assert_eq!(off.refused, 0);
    assert_eq!(off.allowed, off.dropped);
    assert!(
        off.dropped * 4 > off.requests,
        "about a third dropped: {off:?}"
    );

    // With it: at most 20 % of the requests plus the floor (10 per window the run spans),
    // overdrawn by at most one retry per client racing for the last one.
    let floor = 10 * (on.elapsed.as_secs() / 10 + 1);
    assert!(
        on.allowed <= on.requests / 5 + floor + clients,
        "retries over the budget: {on:?}"
    );
    // Every dropped request was either retried or refused, and every refusal is a
    // failure the client saw.
    assert_eq!(on.allowed + on.refused, on.dropped, "{on:?}");
    assert_eq!(on.refused, on.client_errors, "{on:?}");
    assert!(on.refused > 0, "the budget was spent: {on:?}");
    assert!(on.allowed < off.allowed, "{on:?} against {off:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_budget_refuses_every_retry_and_counts_each() {
    let on = run(&[("retrybudget", "0"), ("retrybudgetmin", "0")], 2, 30).await;
    assert_eq!(on.allowed, 0, "{on:?}");
    assert_eq!(on.refused, on.dropped, "{on:?}");
    assert_eq!(on.client_errors, on.dropped, "{on:?}");
    assert!(on.dropped > 0, "{on:?}");
}
