//! DNS discovery against an in-process DNS server (hickory-server on 127.0.0.1, UDP and
//! TCP, port 0) whose answers the tests change: members follow the records within their
//! TTL (1 s), a removed member's requests in flight finish, SRV weights and ports, a
//! failing DNS keeps the last set; and the same from an Apache configuration through the
//! site. Members are distinct loopback addresses (127.0.0.2, 127.0.0.3 …) on one port.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use hickory_server::authority::MessageResponseBuilder;
use hickory_server::proto::op::{Header, ResponseCode};
use hickory_server::proto::rr::rdata::{A, AAAA, SRV};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::ServerFuture;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use proxy_balancer::core::{BalancerParams, MemberParams};
use proxy_balancer::discover::MemberSetSync;
use proxy_balancer::dns::{DnsDiscovery, DnsHandle, DnsResolver, DnsSource};
use proxy_balancer::server::{Server, ServerHandle};
use proxy_balancer::BalancerStore;
use proxy_balancer_test::TestClient;
use tokio::net::{TcpListener, UdpSocket};

/// Every wait in this file is bounded by this.
const BOUND: Duration = Duration::from_secs(8);

// ===== the DNS server =====

/// What the test DNS server answers; changed by the tests while it runs.
#[derive(Default)]
struct ZoneData {
    a: HashMap<String, Vec<Ipv4Addr>>,
    aaaa: HashMap<String, Vec<std::net::Ipv6Addr>>,
    /// name → (priority, weight, port, target)
    srv: HashMap<String, Vec<(u16, u16, u16, String)>>,
    /// Answer SERVFAIL to everything (a failing nameserver).
    servfail: bool,
    queries: u64,
}

#[derive(Clone, Default)]
struct Zone(Arc<Mutex<ZoneData>>);

/// The TTL of every record: 1 s, so that changes are seen within a second or two.
const TTL: u32 = 1;

impl Zone {
    fn set_a(&self, name: &str, ips: &[Ipv4Addr]) {
        self.0.lock().a.insert(fqdn(name), ips.to_vec());
    }

    fn set_aaaa(&self, name: &str, ips: &[std::net::Ipv6Addr]) {
        self.0.lock().aaaa.insert(fqdn(name), ips.to_vec());
    }

    fn remove(&self, name: &str) {
        let mut z = self.0.lock();
        z.a.remove(&fqdn(name));
        z.aaaa.remove(&fqdn(name));
        z.srv.remove(&fqdn(name));
    }

    fn set_srv(&self, name: &str, records: &[(u16, u16, u16, &str)]) {
        let records = records
            .iter()
            .map(|&(p, w, port, t)| (p, w, port, fqdn(t)))
            .collect();
        self.0.lock().srv.insert(fqdn(name), records);
    }

    fn set_servfail(&self, on: bool) {
        self.0.lock().servfail = on;
    }

    fn queries(&self) -> u64 {
        self.0.lock().queries
    }

    fn answer(&self, name: &str, kind: RecordType) -> Result<Vec<Record>, ResponseCode> {
        let mut z = self.0.lock();
        z.queries += 1;
        if z.servfail {
            return Err(ResponseCode::ServFail);
        }
        let owner = Name::from_ascii(name).map_err(|_| ResponseCode::FormErr)?;
        let exists =
            z.a.contains_key(name) || z.aaaa.contains_key(name) || z.srv.contains_key(name);
        let records: Vec<Record> = match kind {
            RecordType::A => {
                z.a.get(name)
                    .into_iter()
                    .flatten()
                    .map(|ip| Record::from_rdata(owner.clone(), TTL, RData::A(A(*ip))))
                    .collect()
            }
            RecordType::AAAA => z
                .aaaa
                .get(name)
                .into_iter()
                .flatten()
                .map(|ip| Record::from_rdata(owner.clone(), TTL, RData::AAAA(AAAA(*ip))))
                .collect(),
            RecordType::SRV => z
                .srv
                .get(name)
                .into_iter()
                .flatten()
                .filter_map(|(p, w, port, t)| {
                    let target = Name::from_ascii(t).ok()?;
                    Some(Record::from_rdata(
                        owner.clone(),
                        TTL,
                        RData::SRV(SRV::new(*p, *w, *port, target)),
                    ))
                })
                .collect(),
            _ => Vec::new(),
        };
        if records.is_empty() && !exists {
            return Err(ResponseCode::NXDomain);
        }
        Ok(records)
    }
}

fn fqdn(name: &str) -> String {
    let name = name.to_ascii_lowercase();
    if name.ends_with('.') {
        name
    } else {
        format!("{name}.")
    }
}

struct Handler(Zone);

#[async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let builder = MessageResponseBuilder::from_message_request(request);
        let mut header = Header::response_from_request(request.header());
        header.set_authoritative(true);
        let Ok(info) = request.request_info() else {
            header.set_response_code(ResponseCode::FormErr);
            return header.into();
        };
        let name = info.query.name().to_string().to_ascii_lowercase();
        let sent = match self.0.answer(&name, info.query.query_type()) {
            Ok(records) => {
                let message = builder.build(header, records.iter(), [], [], []);
                response.send_response(message).await
            }
            Err(code) => {
                let message = builder.error_msg(request.header(), code);
                response.send_response(message).await
            }
        };
        sent.unwrap_or_else(|_| {
            let mut header = Header::new();
            header.set_response_code(ResponseCode::ServFail);
            header.into()
        })
    }
}

/// A DNS server on 127.0.0.1 (UDP and TCP on one port) answering from `zone`.
async fn dns_server(zone: &Zone) -> (SocketAddr, ServerFuture<Handler>) {
    let udp = UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("a loopback socket");
    let addr = udp.local_addr().expect("a loopback socket");
    let tcp = TcpListener::bind(addr).await.expect("a loopback socket");
    let mut server = ServerFuture::new(Handler(zone.clone()));
    server.register_socket(udp);
    server.register_listener(tcp, Duration::from_secs(5));
    (addr, server)
}

// ===== the members =====

/// A backend on one address: answers its name, counts its hits, waits `delay` first.
#[derive(Clone)]
struct Backend {
    name: String,
    hits: Arc<AtomicU64>,
    delay_ms: Arc<AtomicU64>,
    stop: Arc<tokio::sync::Notify>,
}

impl Backend {
    async fn start(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let backend = Self {
            name: addr.ip().to_string(),
            hits: Arc::default(),
            delay_ms: Arc::default(),
            stop: Arc::default(),
        };
        let b = backend.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    () = b.stop.notified() => return,
                };
                let Ok((stream, _)) = accepted else { continue };
                let b = b.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |_req| {
                        let b = b.clone();
                        async move {
                            let delay = b.delay_ms.load(Ordering::Relaxed);
                            if delay > 0 {
                                tokio::time::sleep(Duration::from_millis(delay)).await;
                            }
                            b.hits.fetch_add(1, Ordering::Relaxed);
                            Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(
                                b.name.clone(),
                            ))))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(backend)
    }

    fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// Backends on 127.0.0.2 … 127.0.0.(1 + n), all on one port (found free on the first).
async fn backends(n: u8) -> (u16, Vec<Backend>) {
    for _ in 0..20 {
        let probe = TcpListener::bind((ip(2), 0))
            .await
            .expect("a loopback socket");
        let port = probe.local_addr().expect("a loopback socket").port();
        drop(probe);
        let mut out = Vec::new();
        for i in 0..n {
            match Backend::start(SocketAddr::new(IpAddr::V4(ip(2 + i)), port)).await {
                Ok(b) => out.push(b),
                Err(_) => break,
            }
        }
        if out.len() == usize::from(n) {
            return (port, out);
        }
        for b in &out {
            b.stop.notify_waiters();
        }
    }
    panic!("no port free on 127.0.0.2 … 127.0.0.{}", 1 + n);
}

/// The hosts of a member set, sorted.
fn hosts(members: &[MemberParams]) -> Vec<String> {
    let mut out: Vec<String> = members
        .iter()
        .map(|m| m.url.connect_host().to_owned())
        .collect();
    out.sort();
    out
}

/// Waits (bounded) until the discovery's last set has these hosts.
async fn wait_hosts(handle: &DnsHandle, want: &[&str]) {
    let waited = tokio::time::timeout(BOUND, async {
        loop {
            if hosts(&handle.members()) == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "the member set did not become {want:?} within {BOUND:?}: {:?} ({handle:?})",
        hosts(&handle.members())
    );
}

// ===== the tests =====

/// The A records grow and shrink; the member set follows within the TTL (1 s) plus a
/// round.
#[tokio::test]
async fn the_member_set_follows_the_a_records() {
    let zone = Zone::default();
    zone.set_a("api.test", &[ip(2)]);
    let (dns, _server) = dns_server(&zone).await;
    let template = MemberParams::new("http://api.test:8080/app").unwrap();
    let handle = DnsDiscovery::new(DnsResolver::with_nameservers(&[dns]))
        .source(DnsSource::address(template).unwrap())
        .spawn_with(|_| {});
    wait_hosts(&handle, &["127.0.0.2"]).await;
    let m = handle.members();
    assert_eq!(
        m[0].url.as_str(),
        "http://127.0.0.2:8080/app",
        "the URL's port and path"
    );

    zone.set_a("api.test", &[ip(2), ip(3), ip(4)]);
    let start = tokio::time::Instant::now();
    wait_hosts(&handle, &["127.0.0.2", "127.0.0.3", "127.0.0.4"]).await;
    // Both families: AAAA records are members too.
    zone.set_aaaa("api.test", &[std::net::Ipv6Addr::LOCALHOST]);
    wait_hosts(&handle, &["127.0.0.2", "127.0.0.3", "127.0.0.4", "::1"]).await;
    assert!(
        handle
            .members()
            .iter()
            .any(|m| m.url.as_str() == "http://[::1]:8080/app"),
        "{:?}",
        handle.members()
    );
    zone.set_aaaa("api.test", &[]);
    zone.set_a("api.test", &[ip(4)]);
    wait_hosts(&handle, &["127.0.0.4"]).await;
    let took = start.elapsed();
    assert!(took < Duration::from_secs(6), "three changes took {took:?}");
    assert_eq!(handle.failures(), 0);
}

/// SRV: targets resolved to addresses, ports from the records, weights as loadfactor,
/// priorities as lbset.
#[tokio::test]
async fn srv_records_give_ports_weights_and_sets() {
    let zone = Zone::default();
    zone.set_a("a.test", &[ip(2)]);
    zone.set_a("b.test", &[ip(3), ip(4)]);
    zone.set_srv(
        "_http._tcp.api.test",
        &[
            (10, 30, 8001, "a.test"),
            (10, 10, 8002, "b.test"),
            (20, 0, 8003, "a.test"),
        ],
    );
    let (dns, _server) = dns_server(&zone).await;
    let template = MemberParams::new("http://api.test/app").unwrap();
    let handle = DnsDiscovery::new(DnsResolver::with_nameservers(&[dns]))
        .source(DnsSource::srv(template, None).unwrap())
        .spawn_with(|_| {});
    wait_hosts(
        &handle,
        &["127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.4"],
    )
    .await;
    let mut got: Vec<(String, u32, u8)> = handle
        .members()
        .iter()
        .map(|m| {
            (
                m.url.as_str().to_owned(),
                m.load_factor.lbf() / 100,
                m.lb_set.get(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("http://127.0.0.2:8001/app".to_owned(), 100, 0),
            ("http://127.0.0.2:8003/app".to_owned(), 1, 1),
            ("http://127.0.0.3:8002/app".to_owned(), 33, 0),
            ("http://127.0.0.4:8002/app".to_owned(), 33, 0),
        ]
    );
}

/// A failing nameserver (SERVFAIL) keeps the last set, counted and readable; an NXDOMAIN
/// keeps it for the grace, then empties it; answers bring it back.
#[tokio::test]
async fn failures_keep_the_last_set_and_a_name_gone_empties_it_after_the_grace() {
    let zone = Zone::default();
    zone.set_a("api.test", &[ip(2), ip(3)]);
    let (dns, _server) = dns_server(&zone).await;
    let template = MemberParams::new("http://api.test:8080").unwrap();
    let handle = DnsDiscovery::new(DnsResolver::with_nameservers(&[dns]))
        .source(DnsSource::address(template).unwrap())
        .refresh_bounds(Duration::from_millis(100), Duration::from_secs(60))
        .empty_grace(Duration::from_millis(800))
        .spawn_with(|_| {});
    wait_hosts(&handle, &["127.0.0.2", "127.0.0.3"]).await;

    zone.set_servfail(true);
    let failing = tokio::time::timeout(BOUND, async {
        while handle.failures() < 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(failing.is_ok(), "no failures seen: {handle:?}");
    assert!(handle.in_outage());
    assert!(handle.last_error().is_some_and(|e| e.contains("api.test")));
    assert_eq!(hosts(&handle.members()), ["127.0.0.2", "127.0.0.3"], "kept");

    zone.set_servfail(false);
    zone.remove("api.test");
    let empties = handle.empty_answers();
    // The first empty answer: still kept (for the grace).
    let asked = tokio::time::timeout(BOUND, async {
        while handle.empty_answers() == empties {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(asked.is_ok(), "not asked again: {handle:?}");
    assert_eq!(
        hosts(&handle.members()),
        ["127.0.0.2", "127.0.0.3"],
        "kept within the grace"
    );
    assert!(
        !handle.in_outage(),
        "an NXDOMAIN is an answer, not an outage"
    );
    wait_hosts(&handle, &[]).await;
    assert!(handle.empty_answers() > 0);

    zone.set_a("api.test", &[ip(5)]);
    wait_hosts(&handle, &["127.0.0.5"]).await;
}

/// `spawn(MemberSetSync)`: the store follows the records; its configured member is not
/// the sync's and stays; a vanished member drains, then goes.
#[tokio::test]
async fn the_store_follows_through_a_member_set_sync() {
    let zone = Zone::default();
    zone.set_a("api.test", &[ip(2), ip(3)]);
    let (dns, _server) = dns_server(&zone).await;
    let store = Arc::new(
        BalancerStore::new(
            BalancerParams::new("balancer://api"),
            [MemberParams::new("http://127.0.0.9:8080").unwrap()],
            tokio::time::Instant::now().into_std(),
        )
        .unwrap(),
    );
    let urls = || {
        let mut u: Vec<String> = store
            .snapshot()
            .members()
            .iter()
            .map(|m| m.url().to_owned())
            .collect();
        u.sort();
        u
    };
    let template = MemberParams::new("http://api.test:8080").unwrap();
    let handle = DnsDiscovery::new(DnsResolver::with_nameservers(&[dns]))
        .source(DnsSource::address(template).unwrap())
        .spawn(MemberSetSync::new(Arc::clone(&store)).with_drain(Duration::from_millis(300)));
    let want = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let followed = |list: Vec<String>| {
        let urls = &urls;
        async move {
            tokio::time::timeout(BOUND, async {
                while urls() != list {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await
            .is_ok()
        }
    };
    assert!(
        followed(want(&[
            "http://127.0.0.2:8080",
            "http://127.0.0.3:8080",
            "http://127.0.0.9:8080"
        ]))
        .await,
        "{:?}",
        urls()
    );
    zone.set_a("api.test", &[ip(3)]);
    assert!(
        followed(want(&["http://127.0.0.3:8080", "http://127.0.0.9:8080"])).await,
        "drained, then removed: {:?}",
        urls()
    );
    let sync = handle.sync().expect("spawned into a sync");
    assert_eq!(sync.members(), 1);
}

/// Dropping the handle stops the lookups.
#[tokio::test]
async fn dropping_the_handle_stops_the_lookups() {
    let zone = Zone::default();
    zone.set_a("api.test", &[ip(2)]);
    let (dns, _server) = dns_server(&zone).await;
    let template = MemberParams::new("http://api.test:8080").unwrap();
    let handle = DnsDiscovery::new(DnsResolver::with_nameservers(&[dns]))
        .source(DnsSource::address(template).unwrap())
        .refresh_bounds(Duration::from_millis(50), Duration::from_millis(50))
        .spawn_with(|_| {});
    wait_hosts(&handle, &["127.0.0.2"]).await;
    drop(handle);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let queries = zone.queries();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        zone.queries(),
        queries,
        "no lookup after the handle is gone"
    );
}

// ===== through the site, from an Apache configuration =====

/// A site from `config`, served on 127.0.0.1:0; its base URL.
async fn serve(config: &str) -> (proxy_balancer::site::Site, ServerHandle, String) {
    let config = proxy_balancer::apache_config::parse(config).expect("the configuration parses");
    proxy_balancer::site::Site::validate(&config).expect("--check passes");
    let site = proxy_balancer::site::Site::from_config(&config).expect("the site builds");
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback socket");
    let server = Server::new()
        .spawn(listener, site.clone())
        .expect("serving");
    let base = format!("http://{}", server.local_addr());
    (site, server, base)
}

/// GET `url`: status and body, bounded.
async fn get(client: &TestClient, url: &str) -> (u16, String) {
    let r = tokio::time::timeout(BOUND, client.get(url))
        .await
        .expect("an answer within the bound")
        .expect("an answer");
    (r.status.as_u16(), r.text().into_owned())
}

/// Sends requests (bounded) until every one of `n` in a row is answered by one of
/// `want`, and each of `want` answered at least once; returns how long that took.
async fn until_served_by(client: &TestClient, url: &str, want: &[&str]) -> Duration {
    let start = tokio::time::Instant::now();
    let mut seen = std::collections::HashSet::new();
    let mut in_a_row = 0;
    for _ in 0..2_000 {
        let (status, body) = get(client, url).await;
        if status == 200 && want.contains(&body.as_str()) {
            in_a_row += 1;
            seen.insert(body);
        } else {
            in_a_row = 0;
            seen.clear();
        }
        if in_a_row >= 3 * want.len() && seen.len() == want.len() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < BOUND,
            "not served by exactly {want:?} within {BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not served by exactly {want:?} within 2000 requests");
}

/// The test: `discover=dns` from an Apache configuration with
/// `ProxyDiscoverNameserver`; a record set that grows and shrinks moves traffic within the
/// TTL (1 s, plus a round), a removed member's request in flight finishes with 200, and a
/// failing nameserver leaves the traffic where it was.
#[tokio::test]
async fn a_growing_and_shrinking_record_set_moves_traffic_through_the_site() {
    let zone = Zone::default();
    zone.set_a("api.test", &[ip(2)]);
    let (dns, _dns_server) = dns_server(&zone).await;
    let (port, backends) = backends(3).await;
    let (site, server, base) = serve(&format!(
        "ProxyDiscoverNameserver {dns}\n\
         <Proxy balancer://api>\n\
           BalancerMember http://api.test:{port} discover=dns retry=0\n\
         </Proxy>\n\
         ProxyPass / balancer://api/\n"
    ))
    .await;
    assert_eq!(site.discovery().len(), 1, "one task for the balancer");
    assert_eq!(site.worker().discovery().len(), 1, "shared by the workers");
    let client = TestClient::new();
    let url = format!("{base}/x");
    until_served_by(&client, &url, &["127.0.0.2"]).await;

    zone.set_a("api.test", &[ip(2), ip(3), ip(4)]);
    let grew = until_served_by(&client, &url, &["127.0.0.2", "127.0.0.3", "127.0.0.4"]).await;
    zone.set_a("api.test", &[ip(2)]);
    let shrank = until_served_by(&client, &url, &["127.0.0.2"]).await;
    eprintln!("traffic moved: grew in {grew:?}, shrank in {shrank:?} (TTL 1 s)");
    // TTL 1 s: asked again within about a second, then the next requests see it.
    assert!(grew < Duration::from_millis(2_500), "grew in {grew:?}");
    assert!(
        shrank < Duration::from_millis(2_500),
        "shrank in {shrank:?}"
    );

    // A request in flight on 127.0.0.2 when it leaves the records finishes with 200.
    backends[0].delay_ms.store(1_500, Ordering::Relaxed);
    let slow = {
        let client = TestClient::new();
        let url = url.clone();
        tokio::spawn(async move { get(&client, &url).await })
    };
    let store = Arc::clone(&site.stores()[0]);
    let busy = tokio::time::timeout(BOUND, async {
        while store
            .snapshot()
            .members()
            .iter()
            .all(|m| m.state().busy() == 0)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(busy.is_ok(), "the slow request is in flight");
    zone.set_a("api.test", &[ip(3)]);
    until_served_by(&client, &url, &["127.0.0.3"]).await;
    let (status, body) = tokio::time::timeout(BOUND, slow).await.unwrap().unwrap();
    assert_eq!(
        (status, body.as_str()),
        (200, "127.0.0.2"),
        "the removed member's request finished"
    );
    backends[0].delay_ms.store(0, Ordering::Relaxed);

    // The nameserver fails: the members stay, the traffic too.
    zone.set_servfail(true);
    let handle = site.discovery()[0].clone();
    let failing = tokio::time::timeout(BOUND, async {
        while handle.failures() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(failing.is_ok(), "no failure seen: {handle:?}");
    for _ in 0..5 {
        assert_eq!(get(&client, &url).await, (200, "127.0.0.3".to_owned()));
    }
    assert!(handle.in_outage());
    assert!(backends[1].hits() > 0);
    server.shutdown().await.unwrap();
    drop(site);
}

/// `discover=srv:NAME` through the site: ports from the records, weights 2:1 give exactly
/// 2:1 of the requests (byrequests over loadfactors 100 and 50), configured members stay.
#[tokio::test]
async fn srv_weights_share_the_traffic_through_the_site() {
    let zone = Zone::default();
    let (port, backends) = backends(3).await;
    zone.set_a("a.test", &[ip(2)]);
    zone.set_a("b.test", &[ip(3)]);
    zone.set_srv(
        "_web._tcp.api.test",
        &[(10, 2, port, "a.test"), (10, 1, port, "b.test")],
    );
    let (dns, _dns_server) = dns_server(&zone).await;
    let (site, server, base) = serve(&format!(
        "ProxyDiscoverNameserver {dns}\n\
         <Proxy balancer://api>\n\
           BalancerMember http://api.test discover=srv:_web._tcp.api.test\n\
           BalancerMember http://127.0.0.4:{port} lbset=1\n\
         </Proxy>\n\
         ProxyPass / balancer://api/\n"
    ))
    .await;
    let store = Arc::clone(&site.stores()[0]);
    let settled = tokio::time::timeout(BOUND, async {
        while store.snapshot().members().len() < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        settled.is_ok(),
        "3 members: {:?}",
        store.snapshot().members()
    );
    let client = TestClient::new();
    let url = format!("{base}/");
    let mut counts: HashMap<String, u32> = HashMap::new();
    for _ in 0..30 {
        let (status, body) = get(&client, &url).await;
        assert_eq!(status, 200);
        *counts.entry(body).or_default() += 1;
    }
    assert_eq!(counts.get("127.0.0.2"), Some(&20), "{counts:?}");
    assert_eq!(counts.get("127.0.0.3"), Some(&10), "{counts:?}");
    assert_eq!(backends[2].hits(), 0, "lbset 1 is the spare");
    server.shutdown().await.unwrap();
}

/// `--check` (`Site::validate`) starts no lookup; the doctor reports the line.
#[tokio::test]
async fn check_starts_nothing_and_reports_the_line() {
    let zone = Zone::default();
    zone.set_a("api.test", &[ip(2)]);
    let (dns, _dns_server) = dns_server(&zone).await;
    let config = proxy_balancer::apache_config::parse(&format!(
        "ProxyDiscoverNameserver {dns}\n\
         <Proxy balancer://api>\n\
           BalancerMember http://api.test:8080 discover=dns\n\
         </Proxy>\n\
         ProxyPass / balancer://api/\n"
    ))
    .unwrap();
    proxy_balancer::site::Site::validate(&config).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(zone.queries(), 0, "--check asks no nameserver");
    // BalancerPersist On would save discovered members as the manager's: refused.
    let persist = proxy_balancer::apache_config::parse(
        "BalancerPersist On\n<Proxy balancer://api>\n  BalancerMember http://api.test:8080 discover=dns\n</Proxy>\n",
    )
    .unwrap();
    let refused = proxy_balancer::site::Site::validate(&persist)
        .unwrap_err()
        .to_string();
    assert!(
        refused.starts_with("line 3: ") && refused.contains("BalancerPersist"),
        "{refused}"
    );
    // BalancerShare would add a discovered member, through its key, on instances that did
    // not discover it: refused.
    let shared = proxy_balancer::apache_config::parse(
        "BalancerShare etcd http://127.0.0.1:2379
<Proxy balancer://api>
  BalancerMember http://api.test:8080 discover=dns
</Proxy>
<Location /balancer-manager>
  SetHandler balancer-manager
</Location>
",
    )
    .unwrap();
    let refused = proxy_balancer::site::Site::validate(&shared)
        .unwrap_err()
        .to_string();
    assert!(
        refused.starts_with("line 3: ") && refused.contains("BalancerShare"),
        "{refused}"
    );
    // A virtual host's own ProxyIOBufferSize would not reach discovered members (the
    // member client finds options by URL): refused.
    let io = proxy_balancer::apache_config::parse(
        "<VirtualHost *:80>\n  ProxyIOBufferSize 16384\n  <Proxy balancer://api>\n    BalancerMember http://api.test:8080 discover=dns\n  </Proxy>\n  ProxyPass / balancer://api/\n</VirtualHost>\n",
    )
    .unwrap();
    let refused = proxy_balancer::site::Site::validate(&io)
        .unwrap_err()
        .to_string();
    assert!(
        refused.starts_with("line 4: ") && refused.contains("ProxyIOBufferSize"),
        "{refused}"
    );
    let findings = proxy_balancer::apache_config::doctor::check(&config);
    let f = findings
        .iter()
        .find(|f| f.rule == "discovered-members")
        .expect("reported");
    assert_eq!(f.span.line, 3);
}

/// The lookups stop with the last clone of the site (a worker's clone included).
#[tokio::test]
async fn the_lookups_stop_with_the_site() {
    let zone = Zone::default();
    zone.set_a("api.test", &[ip(2)]);
    let (dns, _dns_server) = dns_server(&zone).await;
    let config = proxy_balancer::apache_config::parse(&format!(
        "ProxyDiscoverNameserver {dns}\n\
         <Proxy balancer://api>\n\
           BalancerMember http://api.test:8080 discover=dns\n\
         </Proxy>\n\
         ProxyPass / balancer://api/\n"
    ))
    .unwrap();
    let site = proxy_balancer::site::Site::from_config(&config).unwrap();
    let worker = site.worker();
    drop(site);
    let asked = tokio::time::timeout(BOUND, async {
        while zone.queries() < 4 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        asked.is_ok(),
        "asked again on the TTL while a worker's site lives"
    );
    assert_eq!(worker.stores()[0].snapshot().members().len(), 1);
    drop(worker);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let queries = zone.queries();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        zone.queries(),
        queries,
        "no lookup once the last site is gone"
    );
}
