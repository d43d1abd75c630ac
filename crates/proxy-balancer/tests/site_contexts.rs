//! Apache's contexts served by the site: `<VirtualHost>` selection by address and Host,
//! per-server routes and settings, `<Location>`/`<LocationMatch>` ProxyPass, ProxyPassMatch,
//! and the balancer-manager of a virtual host. Each test says what Apache 2.4.71 did with
//! the same configuration on loopback (backends answering with their name and the path
//! they got).

use std::time::Duration;

use proxy_balancer::apache_config::parse;
use proxy_balancer::server::{Server, ServerHandle};
use proxy_balancer::site::Site;
use proxy_balancer_test::{start_demo_backends, TestBackend, TestClient, TestResponse};

const LOOPBACK: std::net::SocketAddr = std::net::SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    0,
));

async fn serve(text: &str) -> ServerHandle {
    let config = parse(text).expect("a valid config");
    let site = Site::from_config(&config).expect("buildable");
    Server::new()
        .listen(LOOPBACK, site)
        .await
        .expect("a loopback port")
}

fn client() -> TestClient {
    TestClient::new().with_timeout(Duration::from_secs(5))
}

/// `GET path` with `Host: host`.
async fn get(server: &ServerHandle, host: &str, path: &str) -> TestResponse {
    let request = http::Request::get(format!("http://{}{path}", server.local_addr()))
        .header(http::header::HOST, host)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("a valid request");
    client().request(request).await.expect("an answer")
}

/// The backend that answered, and the path and query it got.
fn seen(r: &TestResponse, backends: &[TestBackend]) -> (String, String) {
    let name = r.header("x-backend").unwrap_or("-").to_owned();
    let path = backends
        .iter()
        .find(|b| b.name() == name)
        .and_then(TestBackend::last_request)
        .map_or_else(|| "-".to_owned(), |q| q.path_and_query);
    (name, path)
}

/// Apache (Listen 127.0.0.1:18200, the same vhosts on `*:18200`):
/// - `Host: a.example` → a.example's balancer; `A.EXAMPLE:99` too (case and port ignored);
/// - `Host: unknown` and `Host: 127.0.0.1` → the first vhost, a.example;
/// - `Host: zz.b.example` (`ServerAlias *.b.example`), `wz.example` (`w?.example`) →
///   b.example; `wzz.example` → a.example (the default);
/// - b.example's `ProxyPreserveHost On` sends `Host: b.example` to the member; a.example
///   sends the member's own host (the main server's Off).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_based_virtual_hosts_have_their_own_balancers_and_settings() {
    let b = start_demo_backends(3).await.expect("loopback ports");
    let text = format!(
        r#"
ServerName main.example
<Proxy "balancer://main">
    BalancerMember "{}"
</Proxy>
ProxyPass "/main" "balancer://main/"
<VirtualHost *>
    ServerName a.example
    <Proxy "balancer://a">
        BalancerMember "{}"
    </Proxy>
    ProxyPass "/" "balancer://a/"
</VirtualHost>
<VirtualHost *:*>
    ServerName b.example
    ServerAlias *.b.example w?.example
    ProxyPreserveHost On
    <Proxy "balancer://b">
        BalancerMember "{}"
    </Proxy>
    ProxyPass "/" "balancer://b/"
</VirtualHost>
"#,
        b[0].url(),
        b[1].url(),
        b[2].url()
    );
    let server = serve(&text).await;
    for (host, expected) in [
        ("a.example", "backend-2"),
        ("A.EXAMPLE:99", "backend-2"),
        ("unknown", "backend-2"),
        ("127.0.0.1", "backend-2"),
        ("b.example", "backend-3"),
        ("zz.b.example", "backend-3"),
        ("wz.example", "backend-3"),
        ("wzz.example", "backend-2"),
    ] {
        let r = get(&server, host, "/x").await;
        assert_eq!(r.status, 200, "{host}");
        assert_eq!(
            seen(&r, &b),
            (expected.to_owned(), "/x".to_owned()),
            "{host}"
        );
    }
    let r = get(&server, "b.example", "/x").await;
    assert_eq!(r.status, 200);
    let host = b[2]
        .last_request()
        .and_then(|q| q.header("host").map(str::to_owned));
    assert_eq!(host.as_deref(), Some("b.example"));
    let r = get(&server, "a.example", "/x").await;
    assert_eq!(r.status, 200);
    let host = b[1]
        .last_request()
        .and_then(|q| q.header("host").map(str::to_owned));
    assert_eq!(
        host.as_deref(),
        Some(b[1].url().trim_start_matches("http://"))
    );
    assert_eq!(
        b[0].hits(),
        0,
        "the main server is never selected: a vhost has the address"
    );
    server.shutdown().await.expect("stops cleanly");
}

/// A vhost on another port than the one listened on is never selected, as in Apache
/// (`<VirtualHost *:1>` with Apache listening on 18200: every request went to the main
/// server); `Site::unreachable_virtual_hosts` names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_virtual_host_on_another_port_is_unreachable_and_reported() {
    let b = start_demo_backends(2).await.expect("loopback ports");
    let text = format!(
        "<Proxy balancer://main>\n BalancerMember {}\n</Proxy>\nProxyPass / balancer://main/\n\
         <VirtualHost *:1>\n ServerName a.example\n <Proxy balancer://a>\n  BalancerMember {}\n </Proxy>\n ProxyPass / balancer://a/\n</VirtualHost>\n",
        b[0].url(),
        b[1].url()
    );
    let config = parse(&text).expect("a valid config");
    let site = Site::from_config(&config).expect("buildable");
    let unreachable = site.unreachable_virtual_hosts(&[LOOPBACK]);
    assert_eq!(unreachable.len(), 1);
    assert!(unreachable[0].to_string().contains("<VirtualHost *:1>"));
    assert!(site
        .unreachable_virtual_hosts(&["0.0.0.0:1".parse().expect("an address")])
        .is_empty());
    let server = Server::new()
        .listen(LOOPBACK, site)
        .await
        .expect("a loopback port");
    let r = get(&server, "a.example", "/x").await;
    assert_eq!(seen(&r, &b).0, "backend-1");
    server.shutdown().await.expect("stops cleanly");
}

/// Apache: with `ProxyPassInherit Off` the main server's `ProxyPass /main` is not served in
/// the vhost (its own `ProxyPass /` takes `/main/x`); with it On (c.example) `/main/x`
/// goes to the main balancer, and the inherited lines are tried first (a main-server
/// `ProxyPass /` took every request of a vhost with its own `ProxyPass /`). A vhost's own
/// `balancer://app` is used only when it inherits no main-server `balancer://app`: with
/// inheritance Apache sent the vhost's requests to the main server's app members (the
/// parser refuses that configuration), with `BalancerInherit Off` + `ProxyPassInherit Off`
/// to its own; `BalancerInherit Off` alone still inherits (c.example).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_pass_inherit_and_balancer_inherit_as_apache() {
    let b = start_demo_backends(3).await.expect("loopback ports");
    let text = format!(
        r#"
<Proxy "balancer://app">
    BalancerMember "{}"
</Proxy>
ProxyPass "/main" "balancer://app/main"
<VirtualHost *>
    ServerName inherits.example
    ProxyPass "/" "balancer://app/"
</VirtualHost>
<VirtualHost *>
    ServerName own.example
    BalancerInherit Off
    ProxyPassInherit Off
    <Proxy "balancer://app">
        BalancerMember "{}"
    </Proxy>
    ProxyPass "/" "balancer://app/"
</VirtualHost>
<VirtualHost *>
    ServerName c.example
    BalancerInherit Off
    <Proxy "balancer://own">
        BalancerMember "{}"
    </Proxy>
    ProxyPass "/own" "balancer://own"
</VirtualHost>
"#,
        b[0].url(),
        b[1].url(),
        b[2].url()
    );
    let config = parse(&text).expect("a valid config");
    let site = Site::from_config(&config).expect("buildable");
    assert_eq!(site.stores().len(), 3, "the main app is one store, shared");
    let server = Server::new()
        .listen(LOOPBACK, site)
        .await
        .expect("a loopback port");
    let cases = [
        ("inherits.example", "/x", "backend-1", "/x"),
        ("inherits.example", "/main/x", "backend-1", "/main/x"),
        ("own.example", "/x", "backend-2", "/x"),
        ("own.example", "/main/x", "backend-2", "/main/x"),
        ("c.example", "/own/x", "backend-3", "/x"),
        ("c.example", "/main/x", "backend-1", "/main/x"),
    ];
    for (host, path, backend, got) in cases {
        let r = get(&server, host, path).await;
        assert_eq!(r.status, 200, "{host}{path}");
        assert_eq!(
            seen(&r, &b),
            (backend.to_owned(), got.to_owned()),
            "{host}{path}"
        );
    }
    assert_eq!(get(&server, "c.example", "/x").await.status, 404);
    server.shutdown().await.expect("stops cleanly");
}

/// Apache 2.4.71, the same lines (member paths as it sent them):
/// `/srv/x` → app `/srv/x`; `/both/x` → other `/fromloc/x` (the Location beats the
/// server's ProxyPass); `/l/x` → other `/l1/x`; `/l/sub/x` → third `/l2/x` and
/// `/l/sub/deeper/x` → third `/l2/deeper/x` with `X-Deep: yes` (the last matching
/// Location with a ProxyPass wins; Header lines of every matching Location apply);
/// `/lm/ab/c%20d?x=1` → app `/lm-c%20d/ab?x=1`; `/pm/a%20b.gif?q` → app
/// `/gifs/a%20b.png?q`; `/z/a%20b.jpg?x` → other `/jpgs/z/a%20b.jpg?x` (no `$`: the
/// whole path appended); `/nq/x?a=1` → app `/nq/x?a=1` (`noquery` does not drop the query
/// for HTTP); `/private1`, `/private1/`, `/private1/f` → `/p1…`, `/private1other` 404,
/// `/private2` 404, `/private2/f` → `/p2/f`; `<Location /ex> ProxyPass !` 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locations_and_proxy_pass_match_route_as_apache() {
    let b = start_demo_backends(3).await.expect("loopback ports");
    let text = format!(
        r#"
<Proxy "balancer://app">
    BalancerMember "{}"
</Proxy>
<Proxy "balancer://other">
    BalancerMember "{}"
</Proxy>
<Proxy "balancer://third">
    BalancerMember "{}"
</Proxy>
ProxyPass "/srv" "balancer://app/srv"
ProxyPass "/both" "balancer://app/both"
ProxyPass "/ex" "balancer://app/ex"
<Location "/both">
    ProxyPass "balancer://other/fromloc"
</Location>
<Location "/l">
    ProxyPass "balancer://other/l1"
</Location>
<Location "/l/sub">
    ProxyPass "balancer://third/l2"
</Location>
<Location "/l/sub/deeper">
    Header set X-Deep yes
</Location>
<Location "/ex">
    ProxyPass "!"
</Location>
<LocationMatch "^/lm/(\w+)/(.*)$">
    ProxyPass "balancer://app/lm-$2/$1"
</LocationMatch>
ProxyPassMatch "^/pm/(.*)\.gif$" "balancer://app/gifs/$1.png"
ProxyPassMatch "\.jpg$" "balancer://other/jpgs"
ProxyPass "/nq" "balancer://app/nq" noquery
<Location "/private1">
    ProxyPass "balancer://app/p1"
</Location>
<Location "/private2/">
    ProxyPass "balancer://app/p2/"
</Location>
"#,
        b[0].url(),
        b[1].url(),
        b[2].url()
    );
    let server = serve(&text).await;
    let cases = [
        ("/srv/x", "backend-1", "/srv/x"),
        ("/both/x", "backend-2", "/fromloc/x"),
        ("/both", "backend-2", "/fromloc"),
        ("/l/x", "backend-2", "/l1/x"),
        ("/l/sub/x", "backend-3", "/l2/x"),
        ("/l/sub/deeper/x", "backend-3", "/l2/deeper/x"),
        ("/lm/ab/c%20d?x=1", "backend-1", "/lm-c%20d/ab?x=1"),
        ("/pm/a%20b.gif?q", "backend-1", "/gifs/a%20b.png?q"),
        ("/z/a%20b.jpg?x", "backend-2", "/jpgs/z/a%20b.jpg?x"),
        ("/nq/x?a=1", "backend-1", "/nq/x?a=1"),
        ("/private1", "backend-1", "/p1"),
        ("/private1/", "backend-1", "/p1/"),
        ("/private1/f", "backend-1", "/p1/f"),
        ("/private2/", "backend-1", "/p2/"),
        ("/private2/f", "backend-1", "/p2/f"),
    ];
    for (path, backend, got) in cases {
        let r = get(&server, "localhost", path).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(seen(&r, &b), (backend.to_owned(), got.to_owned()), "{path}");
        let deep = r.header("x-deep");
        assert_eq!(deep.is_some(), path.starts_with("/l/sub/deeper"), "{path}");
    }
    for path in ["/private1other", "/private2", "/ex/x"] {
        assert_eq!(get(&server, "localhost", path).await.status, 404, "{path}");
    }
    server.shutdown().await.expect("stops cleanly");
}

/// Apache: a main-server `<Location /balancer-manager>` answers in every vhost and lists
/// the balancers visible there (c.example, BalancerInherit Off but ProxyPassInherit On:
/// app and its own; with both Off only its own); a vhost's `<Location /vm>` manager
/// answers in that vhost only (a.example proxied `/vm` to its members).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_of_a_virtual_host_serves_there_with_its_balancers() {
    let b = start_demo_backends(3).await.expect("loopback ports");
    let text = format!(
        r#"
<Proxy "balancer://app">
    BalancerMember "{}"
</Proxy>
ProxyPass "/balancer-manager" "!"
<Location "/balancer-manager">
    SetHandler balancer-manager
    Require ip 127.0.0.1
</Location>
<VirtualHost *>
    ServerName a.example
    ProxyPass "/" "balancer://app/"
</VirtualHost>
<VirtualHost *>
    ServerName c.example
    ServerAlias *.c.example
    BalancerInherit Off
    ProxyPassInherit Off
    <Proxy "balancer://own">
        BalancerMember "{}"
    </Proxy>
    <Proxy "balancer://app">
        BalancerMember "{}"
    </Proxy>
    ProxyPass "/own" "balancer://own/"
    <Location "/vm">
        SetHandler balancer-manager
    </Location>
</VirtualHost>
"#,
        b[0].url(),
        b[1].url(),
        b[2].url()
    );
    let server = serve(&text).await;
    let page = get(&server, "a.example", "/balancer-manager").await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains(&b[0].url()));
    let page = get(&server, "x.c.example", "/balancer-manager").await;
    assert_eq!(page.status, 200);
    let text = page.text();
    assert!(
        text.contains("balancer://own") && text.contains(&b[2].url()),
        "{text}"
    );
    assert!(
        !text.contains(&b[0].url()),
        "the main app is not inherited: {text}"
    );
    let vm = get(&server, "c.example", "/vm").await;
    assert_eq!(vm.status, 200);
    assert!(vm.text().contains("balancer://own"));
    let elsewhere = get(&server, "a.example", "/vm").await;
    assert_eq!(
        seen(&elsewhere, &b),
        ("backend-1".to_owned(), "/vm".to_owned())
    );
    server.shutdown().await.expect("stops cleanly");
}

/// Forms the site does not serve are refused with their line.
#[tokio::test]
async fn unserved_forms_are_refused_with_their_line() {
    for (text, needle) in [
        (
            "<Proxy balancer://a>\n BalancerMember http://127.0.0.1:9\n</Proxy>\nProxyPass /x balancer://a/x interpolate\n",
            "line 4",
        ),
        (
            "<Proxy balancer://a>\n BalancerMember http://127.0.0.1:9\n</Proxy>\nProxyPass /x balancer://a/x mapping=servlet\n",
            "mapping=servlet",
        ),
        (
            "<Proxy balancer://a>\n BalancerMember http://127.0.0.1:9\n</Proxy>\n<VirtualHost www.example:80>\n ProxyPass / balancer://a/\n</VirtualHost>\n",
            "line 4",
        ),
    ] {
        let config = parse(text).expect("valid Apache");
        let err = Site::from_config(&config).expect_err("refused");
        assert!(err.to_string().contains(needle), "{err}");
    }
}

/// Apache 2.4.71, member answering `302 Location: http://member/app/login`: through
/// `<Location /app>` with a one-argument `ProxyPassReverse` the client got
/// `Location: http://front/app/login`; through `<Location /h>` (no reverse line) the
/// member's URL unchanged. `/h/x/y` got the server's `X-S`, then `/h`'s `X-A` and
/// `/h/x`'s `X-B` (every matching location's Header lines, in order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn location_reverse_and_header_lines_apply_to_their_requests() {
    let b = start_demo_backends(1).await.expect("loopback ports");
    b[0].set_status(302);
    let login = format!("{}/app/login", b[0].url());
    b[0].set_header(
        http::header::LOCATION,
        http::HeaderValue::from_str(&login).expect("a valid value"),
    );
    let text = format!(
        r#"
<Proxy "balancer://app">
    BalancerMember "{}"
</Proxy>
Header set X-S s
<Location "/app">
    ProxyPass "balancer://app/app"
    ProxyPassReverse "balancer://app/app"
</Location>
<Location "/h">
    ProxyPass "balancer://app/h"
    Header set X-A a
</Location>
<Location "/h/x">
    Header set X-B b
</Location>
"#,
        b[0].url()
    );
    let server = serve(&text).await;
    let r = get(&server, "front.example", "/app/x").await;
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("http://front.example/app/login"));
    assert_eq!(r.header("x-s"), Some("s"));
    assert_eq!(r.header("x-a"), None);
    let r = get(&server, "front.example", "/h/x/y").await;
    assert_eq!(r.header("location"), Some(login.as_str()));
    let headers: Vec<Option<&str>> = ["x-s", "x-a", "x-b"].iter().map(|h| r.header(h)).collect();
    assert_eq!(headers, [Some("s"), Some("a"), Some("b")]);
    let r = get(&server, "front.example", "/h/y").await;
    assert_eq!((r.header("x-a"), r.header("x-b")), (Some("a"), None));
    server.shutdown().await.expect("stops cleanly");
}

/// Apache 2.4.71: a main-server `<Location /loc>` ProxyPass serves in a vhost with
/// `ProxyPassInherit Off` (locations are merged into every vhost; the flag is about the
/// server's `ProxyPass` lines), and the main server's manager lists the main server's
/// balancers, then the vhost's (`zed`, then `aaa`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn main_locations_apply_in_a_vhost_without_proxy_pass_inherit() {
    let b = start_demo_backends(2).await.expect("loopback ports");
    let text = format!(
        r#"
<Proxy "balancer://zed">
    BalancerMember "{}"
</Proxy>
<Location "/loc">
    ProxyPass "balancer://zed/loc"
</Location>
<Location "/balancer-manager">
    SetHandler balancer-manager
    Require ip 127.0.0.1
</Location>
<VirtualHost *>
    ServerName a.example
    ProxyPassInherit Off
    <Proxy "balancer://aaa">
        BalancerMember "{}"
    </Proxy>
    ProxyPass "/own" "balancer://aaa"
</VirtualHost>
"#,
        b[0].url(),
        b[1].url()
    );
    let server = serve(&text).await;
    let r = get(&server, "a.example", "/loc/x").await;
    assert_eq!(seen(&r, &b), ("backend-1".to_owned(), "/loc/x".to_owned()));
    let r = get(&server, "a.example", "/own/x").await;
    assert_eq!(seen(&r, &b), ("backend-2".to_owned(), "/x".to_owned()));
    let page = get(&server, "a.example", "/balancer-manager").await;
    let text = page.text();
    let zed = text.find("balancer://zed");
    let aaa = text.find("balancer://aaa");
    assert!(zed.is_some() && aaa.is_some() && zed < aaa, "{text}");
    server.shutdown().await.expect("stops cleanly");
}

/// Apache 2.4.71 (Listen 127.0.0.1:18200): with `<VirtualHost *:18200>` a.example and
/// `<VirtualHost 127.0.0.1>` ip.example, every request to 127.0.0.1 went to ip.example,
/// `Host: a.example` included: a virtual host naming the address exactly beats `*`, and
/// names are matched among those only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exact_address_beats_a_wildcard_one() {
    let b = start_demo_backends(2).await.expect("loopback ports");
    let text = format!(
        r#"
<VirtualHost *>
    ServerName a.example
    <Proxy "balancer://a">
        BalancerMember "{}"
    </Proxy>
    ProxyPass "/" "balancer://a/"
</VirtualHost>
<VirtualHost 127.0.0.1:*>
    ServerName ip.example
    <Proxy "balancer://ip">
        BalancerMember "{}"
    </Proxy>
    ProxyPass "/" "balancer://ip/"
</VirtualHost>
"#,
        b[0].url(),
        b[1].url()
    );
    let server = serve(&text).await;
    for host in ["a.example", "ip.example", "other"] {
        let r = get(&server, host, "/x").await;
        assert_eq!(seen(&r, &b).0, "backend-2", "{host}");
    }
    server.shutdown().await.expect("stops cleanly");
}

/// Apache 2.4.71 (Listen 127.0.0.1:18200): `<VirtualHost 127.0.0.1>` a.example and
/// `<VirtualHost 127.0.0.1:18200>` b.example: `Host: a.example` went to b.example, the
/// address with the port being matched before the address with any port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exact_port_beats_any_port_on_the_same_address() {
    let b = start_demo_backends(2).await.expect("loopback ports");
    let listener = tokio::net::TcpListener::bind(LOOPBACK)
        .await
        .expect("a loopback port");
    let port = listener.local_addr().expect("bound").port();
    let text = format!(
        r#"
<VirtualHost 127.0.0.1>
    ServerName a.example
    <Proxy "balancer://a">
        BalancerMember "{}"
    </Proxy>
    ProxyPass "/" "balancer://a/"
</VirtualHost>
<VirtualHost 127.0.0.1:{port}>
    ServerName b.example
    <Proxy "balancer://b">
        BalancerMember "{}"
    </Proxy>
    ProxyPass "/" "balancer://b/"
</VirtualHost>
"#,
        b[0].url(),
        b[1].url()
    );
    let config = parse(&text).expect("a valid config");
    let site = Site::from_config(&config).expect("buildable");
    let server = Server::new().spawn(listener, site).expect("serving");
    for host in ["a.example", "b.example"] {
        let r = get(&server, host, "/x").await;
        assert_eq!(seen(&r, &b).0, "backend-2", "{host}");
    }
    server.shutdown().await.expect("stops cleanly");
}

/// Apache 2.4.71 (Listen 127.0.0.1:18200): `<VirtualHost *:*>` x.example, then
/// `<VirtualHost *:18200>` y.example: every Host went to y.example (`*` with the port is
/// matched before `*` with any port). `unreachable_virtual_hosts` names x.example.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_with_the_port_beats_one_with_any_port() {
    let b = start_demo_backends(2).await.expect("loopback ports");
    let listener = tokio::net::TcpListener::bind(LOOPBACK)
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("bound");
    let port = addr.port();
    let text = format!(
        r#"
<Proxy "balancer://x">
    BalancerMember "{}"
</Proxy>
<Proxy "balancer://y">
    BalancerMember "{}"
</Proxy>
<VirtualHost *:*>
    ServerName x.example
    ProxyPass "/" "balancer://x/"
</VirtualHost>
<VirtualHost *:{port}>
    ServerName y.example
    ProxyPass "/" "balancer://y/"
</VirtualHost>
"#,
        b[0].url(),
        b[1].url()
    );
    let config = parse(&text).expect("a valid config");
    let site = Site::from_config(&config).expect("buildable");
    let unreachable = site.unreachable_virtual_hosts(&[addr]);
    assert_eq!(unreachable.iter().map(|u| u.index).collect::<Vec<_>>(), [0]);
    let server = Server::new().spawn(listener, site).expect("serving");
    for host in ["x.example", "y.example", "other"] {
        let r = get(&server, host, "/x").await;
        assert_eq!(seen(&r, &b).0, "backend-2", "{host}");
    }
    server.shutdown().await.expect("stops cleanly");
}
