//! Per-core serving: two worker threads, each with a current-thread runtime, its own
//! `SO_REUSEPORT` listener on one address and its own `Site::worker`, over real loopback
//! members. The balancer state they share stays exact (byrequests shares, busy counts,
//! `lbstatus`), a balancer-manager edit through one worker holds in the other, and no
//! member connection is used by both.
#![cfg(target_os = "linux")]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use proxy_balancer::apache_config::parse;
use proxy_balancer::server::{bind_reuseport, RequestBody, Server};
use proxy_balancer::site::{ProxyBody, Site};
use proxy_balancer::BalancerStore;
use proxy_balancer_test::TestBackend;
use tokio::time::{timeout, Instant};

/// Every wait in these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(20);

/// The workers serving one address, each on a thread of its own.
struct Workers {
    addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    /// `n` workers, each serving `site.worker()` on its own thread, runtime and listener;
    /// each tags the requests it forwards and the responses it sends with `x-worker: i`.
    fn start(site: &Site, n: usize) -> Self {
        let listeners = bind_reuseport(SocketAddr::from(([127, 0, 0, 1], 0)), n).expect("binds");
        let addr = listeners[0].local_addr().expect("an address");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let threads = listeners
            .into_iter()
            .enumerate()
            .map(|(i, listener)| {
                let site = site.worker();
                let mut stopped = stopped.clone();
                std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime");
                    runtime.block_on(async move {
                        let listener =
                            tokio::net::TcpListener::from_std(listener).expect("a listener");
                        let tag = HeaderValue::from(i);
                        let back = tag.clone();
                        let service = tower::ServiceBuilder::new()
                            .map_request(move |mut r: Request<RequestBody>| {
                                r.headers_mut().insert("x-worker", tag.clone());
                                r
                            })
                            .map_response(move |mut r: Response<ProxyBody>| {
                                r.headers_mut().insert("x-worker", back.clone());
                                r
                            })
                            .service(site);
                        let shutdown = async move {
                            let _ = stopped.wait_for(|stop| *stop).await;
                        };
                        Server::new()
                            .drain(Duration::from_secs(2))
                            .serve(listener, service, shutdown)
                            .await
                            .expect("serves");
                    });
                })
            })
            .collect();
        Self {
            addr,
            stop,
            threads,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let threads = self.threads;
        tokio::task::spawn_blocking(move || {
            for thread in threads {
                thread.join().expect("a worker ends without panicking");
            }
        })
        .await
        .expect("joined");
    }
}

/// One keep-alive client connection.
struct Conn {
    send: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    addr: SocketAddr,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Self {
        let stream = timeout(BOUND, tokio::net::TcpStream::connect(addr))
            .await
            .expect("in time")
            .expect("connects");
        let (send, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        Self { send, addr }
    }

    /// A request on this connection: status, `x-worker`, body.
    async fn send(&mut self, request: Request<Full<Bytes>>) -> (u16, usize, String) {
        timeout(BOUND, async {
            self.send.ready().await.expect("ready");
            let response = self.send.send_request(request).await.expect("an answer");
            let status = response.status().as_u16();
            let worker = response
                .headers()
                .get("x-worker")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .expect("x-worker");
            let body = response.into_body().collect().await.expect("a body");
            (
                status,
                worker,
                String::from_utf8_lossy(&body.to_bytes()).into_owned(),
            )
        })
        .await
        .expect("answered in time")
    }

    async fn get(&mut self, path: &str) -> (u16, usize) {
        let request = Request::get(path)
            .header("host", self.addr.to_string())
            .body(Full::default())
            .expect("a request");
        let (status, worker, _) = self.send(request).await;
        (status, worker)
    }

    /// A connection the kernel gave to `worker` (new connections until one lands there).
    async fn to_worker(addr: SocketAddr, worker: usize) -> Self {
        for _ in 0..200 {
            let mut conn = Self::open(addr).await;
            if conn.get("/").await.1 == worker {
                return conn;
            }
        }
        panic!("no connection reached worker {worker} in 200 tries");
    }
}

async fn backends(n: usize) -> Vec<TestBackend> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(
            TestBackend::start(format!("m{}", i + 1))
                .await
                .expect("a loopback port"),
        );
    }
    out
}

fn site(members: &[TestBackend]) -> Site {
    let mut text = "<Proxy balancer://app>\n".to_owned();
    for (i, member) in members.iter().enumerate() {
        text.push_str(&format!(
            "  BalancerMember {} loadfactor={}\n",
            member.url(),
            i + 1
        ));
    }
    text.push_str(
        "  ProxySet lbmethod=byrequests\n</Proxy>\nProxyPass / balancer://app/\n\
         <Location /balancer-manager>\n  SetHandler balancer-manager\n</Location>\n",
    );
    Site::from_config(&parse(&text).expect("parses")).expect("builds")
}

/// Waits (bounded) until no member of `store` has a request in flight.
async fn idle(store: &BalancerStore) {
    let deadline = Instant::now() + BOUND;
    loop {
        let snapshot = store.snapshot();
        let busy: Vec<u64> = snapshot
            .members()
            .iter()
            .map(|m| m.state().busy())
            .collect();
        if busy.iter().all(|&b| b == 0) {
            return;
        }
        assert!(Instant::now() < deadline, "busy counts stay {busy:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_exact_member_state() {
    let members = backends(3).await;
    let site = site(&members);
    let store = Arc::clone(&site.stores()[0]);
    let workers = Workers::start(&site, 2);
    let addr = workers.addr;

    // K requests over 32 connections at once, byrequests over loadfactors 1, 2, 3.
    const CONNS: usize = 32;
    const EACH: usize = 30;
    const K: u64 = (CONNS * EACH) as u64;
    let clients: Vec<_> = (0..CONNS)
        .map(|_| {
            tokio::spawn(async move {
                let mut conn = Conn::open(addr).await;
                let mut seen = [0_u64; 2];
                for _ in 0..EACH {
                    let (status, worker) = conn.get("/").await;
                    assert_eq!(status, 200);
                    seen[worker] += 1;
                }
                seen
            })
        })
        .collect();
    let mut per_worker = [0_u64; 2];
    for client in clients {
        let seen = client.await.expect("a client");
        per_worker[0] += seen[0];
        per_worker[1] += seen[1];
    }
    assert_eq!(per_worker[0] + per_worker[1], K);
    assert!(
        per_worker.iter().all(|&n| n > 0),
        "the kernel spread 32 connections over both listeners: {per_worker:?}"
    );

    // The shared state is exact: byrequests' shares to the request (K is a whole number
    // of 1 + 2 + 3 cycles), every busy count back to 0, lbstatus back to 0 after whole
    // cycles.
    idle(&store).await;
    store.settle();
    let snapshot = store.snapshot();
    let elected: Vec<u64> = snapshot
        .members()
        .iter()
        .map(|m| m.state().elected())
        .collect();
    assert_eq!(elected, [K / 6, 2 * K / 6, 3 * K / 6]);
    let hits: Vec<u64> = members.iter().map(TestBackend::hits).collect();
    assert_eq!(hits, elected, "each election is one request to the member");
    let lbstatus: Vec<i64> = snapshot
        .members()
        .iter()
        .map(|m| m.state().lbstatus())
        .collect();
    assert_eq!(lbstatus, [0, 0, 0]);
    // Both workers forwarded to every member.
    for member in &members {
        let from: HashSet<String> = member
            .requests()
            .iter()
            .filter_map(|r| r.header("x-worker").map(str::to_owned))
            .collect();
        assert_eq!(from.len(), 2, "{}: {from:?}", member.name());
    }

    // A balancer-manager edit through worker 0 holds in worker 1: the third member
    // disabled, no request through worker 1 reaches it.
    let manager = site.manager().expect("a manager");
    let nonce = manager.nonce("app").expect("managed");
    let mut through_0 = Conn::to_worker(addr, 0).await;
    let form = format!(
        "b=app&w={}&w_status_D=1&nonce={nonce}",
        members[2].url().replace(':', "%3A").replace('/', "%2F")
    );
    let post = Request::post("/balancer-manager")
        .header("host", addr.to_string())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form)))
        .expect("a request");
    let (status, worker, body) = through_0.send(post).await;
    assert_eq!((status, worker), (200, 0), "{body}");
    let before = members[2].hits();
    let mut through_1 = Conn::to_worker(addr, 1).await;
    for _ in 0..30 {
        assert_eq!(through_1.get("/").await, (200, 1));
    }
    assert_eq!(
        members[2].hits(),
        before,
        "the disabled member gets nothing"
    );
    idle(&store).await;

    drop((through_0, through_1));
    workers.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_worker_has_its_own_member_connections() {
    let members = backends(1).await;
    let site = site(&members);
    let workers = Workers::start(&site, 2);
    let addr = workers.addr;
    // One connection on each worker, taking turns, so that a pool shared by the workers
    // would hand the member connection one worker just released to the other.
    let mut on = [
        Conn::to_worker(addr, 0).await,
        Conn::to_worker(addr, 1).await,
    ];
    for round in 0..40 {
        let worker = round % 2;
        assert_eq!(on[worker].get("/").await, (200, worker));
    }
    // Which workers used each member connection (the proxy's port toward the member).
    let mut users: HashMap<u16, HashSet<String>> = HashMap::new();
    for request in members[0].requests() {
        let worker = request.header("x-worker").expect("tagged").to_owned();
        users.entry(request.peer.port()).or_default().insert(worker);
    }
    let shared: Vec<_> = users.iter().filter(|(_, w)| w.len() > 1).collect();
    assert!(
        shared.is_empty(),
        "member connections used by both workers: {shared:?}"
    );
    let opened_by = |worker: &str| users.values().filter(|w| w.contains(worker)).count();
    assert!(opened_by("0") >= 1 && opened_by("1") >= 1, "{users:?}");
    // Kept alive: each worker reused its own (a few connections, not one per request).
    assert!(users.len() <= 4, "{users:?}");

    drop(on);
    workers.stop().await;
}
