//! `lbmethod=hash` through a site built from Apache configuration lines, served on
//! loopback: the same key always reaches the same member, and disabling a member through
//! the balancer-manager moves only its keys.

use std::collections::HashMap;
use std::time::Duration;

use proxy_balancer::apache_config::parse;
use proxy_balancer::server::{Server, ServerHandle};
use proxy_balancer::site::Site;
use proxy_balancer_test::{start_demo_backends, TestBackend, TestClient};

const LOOPBACK: std::net::SocketAddr = std::net::SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    0,
));

/// Keys per run: enough for every member to get some, few enough for a debug build.
const KEYS: usize = 60;

async fn serve(backends: &[TestBackend], hashkey: &str) -> ServerHandle {
    let mut text = String::from("<Proxy \"balancer://users\">\n");
    for b in backends {
        text.push_str(&format!("    BalancerMember \"{}\"\n", b.url()));
    }
    text.push_str(&format!(
        "    ProxySet lbmethod=hash hashkey={hashkey}\n\
         </Proxy>\n\
         ProxyPass \"/\" \"balancer://users/\"\n\
         <Location \"/balancer-manager\">\n\
         \x20   SetHandler balancer-manager\n\
         \x20   Require ip 127.0.0.1 ::1\n\
         </Location>\n"
    ));
    let config = parse(&text).expect("a valid config");
    let site = Site::from_config(&config).expect("buildable");
    Server::new()
        .listen(LOOPBACK, site)
        .await
        .expect("a loopback port")
}

fn get_with(
    url: &str,
    header: Option<(&str, String)>,
) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let mut request = http::Request::get(url);
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    request
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("valid")
}

/// The backend each key's request reached.
async fn backends_of(
    client: &TestClient,
    front: std::net::SocketAddr,
    header: impl Fn(usize) -> (&'static str, String),
) -> Vec<String> {
    let mut seen = Vec::with_capacity(KEYS);
    for i in 0..KEYS {
        let r = client
            .request(get_with(&format!("http://{front}/x"), Some(header(i))))
            .await
            .expect("an answer");
        assert_eq!(r.status, 200);
        seen.push(
            r.header("x-backend")
                .expect("the backend's name")
                .to_owned(),
        );
    }
    seen
}

async fn manager_post(
    client: &TestClient,
    front: std::net::SocketAddr,
    member: &str,
    disable: bool,
) {
    let manager = format!("http://{front}/balancer-manager");
    let api = client
        .get(&format!("{manager}/api"))
        .await
        .expect("an answer");
    let json = api.text().into_owned();
    let nonce = json
        .split("\"nonce\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the nonce in the JSON view")
        .to_owned();
    let member = member.replace(':', "%3A").replace('/', "%2F");
    let form = format!(
        "b=users&w={member}&w_status_D={}&nonce={nonce}",
        u8::from(disable)
    );
    let post = http::Request::post(&manager)
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(http_body_util::Full::new(bytes::Bytes::from(form)))
        .expect("valid");
    let r = client.request(post).await.expect("an answer");
    assert_eq!(r.status, 200, "{}", r.text());
}

async fn same_key_same_member_and_disable_moves_only_its_keys(
    hashkey: &str,
    header: impl Fn(usize) -> (&'static str, String) + Copy,
) {
    let backends = start_demo_backends(4).await.expect("loopback ports");
    let running = serve(&backends, hashkey).await;
    let front = running.local_addr();
    let client = TestClient::new().with_timeout(Duration::from_secs(5));

    let first = backends_of(&client, front, header).await;
    assert_eq!(
        backends_of(&client, front, header).await,
        first,
        "the same key, the same member"
    );
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for b in &first {
        *counts.entry(b.as_str()).or_default() += 1;
    }
    assert!(
        counts.len() >= 3,
        "keys spread over the members: {counts:?}"
    );

    // Disable the member with the most keys through the balancer-manager.
    let (busiest, _) = counts.iter().max_by_key(|(_, c)| **c).expect("keys");
    let busiest = (*busiest).to_owned();
    let index = backends
        .iter()
        .position(|b| b.name() == busiest)
        .expect("a backend of ours");
    manager_post(&client, front, &backends[index].url(), true).await;
    let after = backends_of(&client, front, header).await;
    for (b, a) in first.iter().zip(&after) {
        assert_ne!(*a, busiest, "a disabled member gets no key");
        if *b != busiest {
            assert_eq!(a, b, "only the disabled member's keys move");
        }
    }
    // Enabled again: every key is back.
    manager_post(&client, front, &backends[index].url(), false).await;
    assert_eq!(backends_of(&client, front, header).await, first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_header() {
    same_key_same_member_and_disable_moves_only_its_keys("header:X-User", |i| {
        ("x-user", format!("user-{i}"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_cookie() {
    same_key_same_member_and_disable_moves_only_its_keys("cookie:SESSION", |i| {
        ("cookie", format!("theme=dark; SESSION=s{i}"))
    })
    .await;
}

/// `hashkey=client`: every request of one client (one address) reaches one member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_client_address() {
    let backends = start_demo_backends(3).await.expect("loopback ports");
    let running = serve(&backends, "client").await;
    let front = running.local_addr();
    let client = TestClient::new().with_timeout(Duration::from_secs(5));
    // Different headers and paths, one client address: one member.
    let mut seen = Vec::new();
    for i in 0..12 {
        let r = client
            .request(get_with(
                &format!("http://{front}/p{i}"),
                Some(("x-user", format!("user-{i}"))),
            ))
            .await
            .expect("an answer");
        assert_eq!(r.status, 200);
        seen.push(r.header("x-backend").expect("named").to_owned());
    }
    assert!(seen.iter().all(|b| *b == seen[0]), "{seen:?}");
    // Without the client's address a request would be byrequests; the server always puts
    // it in, so the count of the other members stays 0.
    let others = backends
        .iter()
        .filter(|b| b.name() != seen[0])
        .map(TestBackend::hits)
        .sum::<u64>();
    assert_eq!(others, 0);
}
