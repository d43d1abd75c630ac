//! The reverse proxy built from Apache configuration text: two balancers behind ProxyPass
//! prefixes, an exclusion, the route cookie, served on loopback.

use std::time::Duration;

use proxy_balancer::apache_config::parse;
use proxy_balancer::server::Server;
use proxy_balancer::site::Site;
use proxy_balancer_test::start_demo_backends;
use proxy_balancer_test::TestClient;

/// Where the proxy under test listens: loopback, a port the system picks.
const LOOPBACK: std::net::SocketAddr = std::net::SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    0,
));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_with_two_balancers_is_served_by_prefix() {
    let backends = start_demo_backends(4).await.expect("loopback ports");
    let text = format!(
        r#"
# shop and api, as an operator would write them
LoadModule proxy_module modules/mod_proxy.so
Listen 80
<Proxy "balancer://shop">
    BalancerMember "{}" route=s1
    BalancerMember "{}" route=s2
    ProxySet stickysession=SHOPID
</Proxy>
<Proxy balancer://api>
    BalancerMember {} loadfactor=1
    BalancerMember {} loadfactor=3
</Proxy>
ProxyPass /shop/static !
ProxyPass /shop balancer://shop/shop
ProxyPass /api  balancer://api/v2 maxattempts=1
Header add Set-Cookie "SHOPID=.%{{BALANCER_WORKER_ROUTE}}e; path=/shop" env=BALANCER_ROUTE_CHANGED
Header always set X-Balancer "%{{BALANCER_NAME}}e %{{BALANCER_WORKER_ROUTE}}e %{{BALANCER_SESSION_ROUTE}}e"
Header add X-Route-Changed "yes" env=BALANCER_ROUTE_CHANGED
"#,
        backends[0].url(),
        backends[1].url(),
        backends[2].url(),
        backends[3].url()
    );
    let config = parse(&text).expect("a valid config");
    let site = Site::from_config(&config).expect("buildable");
    assert_eq!(site.stores().len(), 2);
    let running = Server::new()
        .listen(LOOPBACK, site)
        .await
        .expect("a loopback port");
    let addr = running.local_addr();
    let client = TestClient::new().with_timeout(Duration::from_secs(5));

    // /shop goes to the shop balancer, sticky with its cookie.
    let r = client
        .get(&format!("http://{addr}/shop/cart"))
        .await
        .expect("an answer");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-backend"), Some("backend-1"));
    // The Header line's value as written, byte for byte as Apache sends it.
    assert_eq!(r.header("set-cookie"), Some("SHOPID=.s1; path=/shop"));
    // Headers filled from the BALANCER_* values, `(null)` when unset, as Apache prints.
    assert_eq!(r.header("x-balancer"), Some("balancer://shop s1 (null)"));
    assert_eq!(r.header("x-route-changed"), Some("yes"));
    let sticky = http::Request::get(format!("http://{addr}/shop/cart"))
        .header(http::header::COOKIE, "SHOPID=.s2")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("valid");
    let r = client.request(sticky).await.expect("an answer");
    assert_eq!(r.header("x-backend"), Some("backend-2"));
    assert_eq!(r.header("x-balancer"), Some("balancer://shop s2 s2"));
    assert_eq!(r.header("x-route-changed"), None, "the route held");
    assert_eq!(r.header("set-cookie"), None);
    let seen = backends[0].last_request().expect("seen");
    assert_eq!(seen.path_and_query, "/shop/cart");
    // The client's address and the Host it asked for, as mod_proxy adds them.
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(
        seen.header("x-forwarded-host"),
        Some(addr.to_string().as_str())
    );
    // /api is mapped onto /v2 of the api balancer, 1:3 by load factor.
    let mut api = Vec::new();
    for _ in 0..4 {
        let r = client
            .get(&format!("http://{addr}/api/items?x=1"))
            .await
            .expect("an answer");
        api.push(r.header("x-backend").unwrap_or("-").to_owned());
        assert_eq!(r.header("set-cookie"), None, "no stickysession on api");
    }
    assert_eq!(api.iter().filter(|b| *b == "backend-4").count(), 3);
    assert_eq!(
        backends[3].last_request().expect("seen").path_and_query,
        "/v2/items?x=1"
    );
    // Excluded and unmatched paths are 404s from the proxy itself.
    for path in ["/shop/static/logo.png", "/elsewhere"] {
        let r = client
            .get(&format!("http://{addr}{path}"))
            .await
            .expect("an answer");
        assert_eq!(r.status, 404, "{path}");
    }

    running.shutdown().await.expect("stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_from_the_config_take_a_failing_member_out_and_back() {
    use proxy_balancer::StatusFlags;
    let backends = start_demo_backends(2).await.expect("loopback ports");
    let text = format!(
        r#"
ProxyHCExpr ok234 {{%{{REQUEST_STATUS}} =~ /^[234]/}}
ProxyHCTemplate quick hcmethod=GET hcuri=/health hcinterval=100ms hcpasses=1 hcfails=1
<Proxy balancer://app>
    BalancerMember {} hctemplate=quick
    BalancerMember {} hctemplate=quick hcexpr=ok234
</Proxy>
ProxyPass / balancer://app/
"#,
        backends[0].url(),
        backends[1].url()
    );
    let config = parse(&text).expect("a valid config");
    let site = Site::from_config(&config).expect("buildable");
    assert_eq!(site.probes().len(), 1);
    let store = std::sync::Arc::clone(&site.stores()[0]);
    let first = store.snapshot().members()[0].clone();
    let second = store.snapshot().members()[1].clone();

    // /health answers 500 on the first backend: its probe fails, it gets HcFl.
    backends[0].set_health_status(500);
    // A 404 passes the second member's ok234 condition.
    backends[1].set_health_status(404);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !first.flags().contains(StatusFlags::HC_FAILED) {
        assert!(tokio::time::Instant::now() < deadline, "never marked HcFl");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(second.is_usable(), "404 passes ok234: {:?}", second.flags());
    assert_eq!(first.flags().label().to_string(), "Init HcFl ");

    // Back to 200: the probe clears HcFl.
    backends[0].set_health_status(200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !first.is_usable() {
        assert!(tokio::time::Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(site);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_re_enables_a_member_with_a_post() {
    use proxy_balancer_test::demo_config;
    let backends = start_demo_backends(2).await.expect("loopback ports");
    let running = serve_config(&demo_config(&backends)).await;
    let addr = running.local_addr();
    let client = TestClient::new().with_timeout(Duration::from_secs(5));
    let manager = format!("http://{addr}/balancer-manager");

    let api = client
        .get(&format!("{manager}/api"))
        .await
        .expect("an answer");
    assert_eq!(api.status, 200);
    let json = api.text().into_owned();
    let nonce = json
        .split("\"nonce\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the nonce in the JSON view")
        .to_owned();
    let member = backends[1].url().replace(':', "%3A").replace('/', "%2F");
    let post = |form: String| {
        http::Request::post(&manager)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(http_body_util::Full::new(bytes::Bytes::from(form)))
            .expect("valid")
    };

    // Disable backend-2 through the manager: the next requests all go to backend-1.
    let r = client
        .request(post(format!(
            "b=demo&w={member}&w_status_D=1&nonce={nonce}"
        )))
        .await
        .expect("an answer");
    assert_eq!(r.status, 200, "{}", r.text());
    for _ in 0..4 {
        let r = client
            .get(&format!("http://{addr}/"))
            .await
            .expect("an answer");
        assert_eq!(r.header("x-backend"), Some("backend-1"));
    }
    // The fix the guides give, as a GET: refused with the curl line that works.
    let r = client
        .get(&format!(
            "{manager}?b=demo&w={member}&w_status_D=0&nonce={nonce}"
        ))
        .await
        .expect("an answer");
    assert_eq!(r.status, 405);
    assert!(r.text().contains("curl -X POST"));
    // Re-enabled with a POST: backend-2 serves again.
    let r = client
        .request(post(format!(
            "b=demo&w={member}&w_status_D=0&nonce={nonce}"
        )))
        .await
        .expect("an answer");
    assert_eq!(r.status, 200);
    let mut seen = Vec::new();
    for _ in 0..4 {
        let r = client
            .get(&format!("http://{addr}/"))
            .await
            .expect("an answer");
        seen.push(r.header("x-backend").unwrap_or("-").to_owned());
    }
    assert!(seen.iter().any(|b| b == "backend-2"), "{seen:?}");

    running.shutdown().await.expect("stops cleanly");
}

/// `ProxyPass` to a plain URL: Apache's worker, served as a one-member balancer with the
/// line's worker parameters; the path after the prefix is joined to the URL's path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_url_proxy_pass_is_served_with_its_worker_parameters() {
    let backends = start_demo_backends(2).await.expect("loopback ports");
    let text = format!(
        "ProxyPass /plain/ {}/base/ retry=7\nProxyPass /bare {} connectiontimeout=1\n",
        backends[0].url(),
        backends[1].url()
    );
    let config = parse(&text).expect("a valid config");
    let site = Site::from_config(&config).expect("buildable");
    assert_eq!(site.stores().len(), 2, "one worker per URL");
    let member = site.stores()[0].snapshot().members()[0].clone();
    assert_eq!(member.params().retry, Duration::from_secs(7));
    assert!(site.manager().is_none());
    let running = Server::new()
        .listen(LOOPBACK, site)
        .await
        .expect("a loopback port");
    let addr = running.local_addr();
    let client = TestClient::new().with_timeout(Duration::from_secs(5));

    let r = client
        .get(&format!("http://{addr}/plain/a/b?q=1"))
        .await
        .expect("an answer");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-backend"), Some("backend-1"));
    let seen = backends[0].last_request().expect("one request");
    assert_eq!(seen.path_and_query, "/base/a/b?q=1");

    let r = client
        .get(&format!("http://{addr}/bare/x"))
        .await
        .expect("an answer");
    assert_eq!(r.header("x-backend"), Some("backend-2"));
    assert_eq!(
        backends[1]
            .last_request()
            .expect("one request")
            .path_and_query,
        "/x",
        "the prefix is replaced by the URL (which has no path), as Apache maps it"
    );
    // Outside both prefixes: 404, nothing forwarded.
    let r = client
        .get(&format!("http://{addr}/other"))
        .await
        .expect("an answer");
    assert_eq!(r.status, 404);
    running.shutdown().await.expect("stops cleanly");
}

/// Starts a site from configuration text on a loopback port.
async fn serve_config(text: &str) -> proxy_balancer::server::ServerHandle {
    let config = parse(text).expect("a valid config");
    let site = Site::from_config(&config).expect("buildable");
    Server::new()
        .listen(LOOPBACK, site)
        .await
        .expect("a loopback port")
}

/// A request with extra headers, through an HTTP/1.1 client.
fn get_with(
    url: &str,
    headers: &[(&str, &str)],
) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let mut request = http::Request::get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("a valid request")
}

/// The hop to the member as mod_proxy makes it, from the configuration's directives:
/// hop-by-hop headers (those `Connection` names too) removed, `X-Forwarded-For`/`-Host`/
/// `-Server` added, the member's authority as `Host`; then `ProxyPreserveHost On` and
/// `ProxyAddHeaders Off`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configuration_decides_the_forwarded_headers() {
    let backends = start_demo_backends(1).await.expect("loopback ports");
    let member = backends[0].url();
    let member_authority = member.trim_start_matches("http://").to_owned();
    let client = TestClient::new().with_timeout(Duration::from_secs(5));
    let hop = [
        ("connection", "keep-alive, x-secret-hop"),
        ("x-secret-hop", "1"),
        ("keep-alive", "timeout=5"),
        ("te", "gzip"),
        ("proxy-connection", "keep-alive"),
        ("upgrade", "websocket"),
        ("x-forwarded-for", "198.51.100.1"),
        ("host", "www.example.com"),
    ];

    // Apache's defaults, with a ServerName.
    let running = serve_config(&format!(
        "ServerName proxy1.example.com\n<Proxy balancer://b>\n BalancerMember {member}\n</Proxy>\nProxyPass / balancer://b/\n"
    ))
    .await;
    let url = format!("http://{}/x", running.local_addr());
    let r = client
        .request(get_with(&url, &hop))
        .await
        .expect("an answer");
    assert_eq!(r.status, 200);
    let seen = backends[0].last_request().expect("one request").headers;
    for name in [
        "connection",
        "x-secret-hop",
        "keep-alive",
        "te",
        "proxy-connection",
        "upgrade",
    ] {
        assert!(seen.get(name).is_none(), "{name} reached the member");
    }
    assert_eq!(seen["x-forwarded-for"], "198.51.100.1, 127.0.0.1");
    assert_eq!(seen["x-forwarded-host"], "www.example.com");
    assert_eq!(seen["x-forwarded-server"], "proxy1.example.com");
    assert_eq!(seen["host"], member_authority.as_str());
    running.shutdown().await.expect("stops cleanly");

    // ProxyPreserveHost On, ProxyAddHeaders Off.
    let running = serve_config(&format!(
        "ProxyPreserveHost On\nProxyAddHeaders Off\n<Proxy balancer://b>\n BalancerMember {member}\n</Proxy>\nProxyPass / balancer://b/\n"
    ))
    .await;
    let url = format!("http://{}/x", running.local_addr());
    let r = client
        .request(get_with(&url, &[("host", "www.example.com")]))
        .await
        .expect("an answer");
    assert_eq!(r.status, 200);
    let seen = backends[0].last_request().expect("one request").headers;
    assert_eq!(seen["host"], "www.example.com");
    for name in ["x-forwarded-for", "x-forwarded-host", "x-forwarded-server"] {
        assert!(
            seen.get(name).is_none(),
            "{name} sent with ProxyAddHeaders Off"
        );
    }
    running.shutdown().await.expect("stops cleanly");
}

/// `ProxyPassReverse` (a balancer line and a plain-URL line) and
/// `ProxyPassReverseCookieDomain`/`Path` from the configuration, on a member's redirect and
/// cookie; hop-by-hop headers of the member's answer end at the proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configuration_rewrites_redirects_and_cookies() {
    use http::{HeaderName, HeaderValue};
    let backends = start_demo_backends(1).await.expect("loopback ports");
    let member = backends[0].url();
    let running = serve_config(&format!(
        "<Proxy balancer://b>\n BalancerMember {member}/back\n</Proxy>\n\
         ProxyPass /app/ balancer://b/\n\
         ProxyPassReverse /app/ balancer://b/\n\
         ProxyPassReverse /app/legacy/ http://old.internal/\n\
         ProxyPassReverseCookieDomain backend.internal www.example.com\n\
         ProxyPassReverseCookiePath /back /app\n"
    ))
    .await;
    let front = running.local_addr();
    let client = TestClient::new().with_timeout(Duration::from_secs(5));
    let set = |name: &'static str, value: String| {
        backends[0].set_header(
            HeaderName::from_static(name),
            HeaderValue::from_str(&value).expect("a header value"),
        );
    };

    set("location", format!("{member}/back/login?next=1"));
    set(
        "set-cookie",
        "s=1; Domain=backend.internal; Path=/back/cart; HttpOnly".to_owned(),
    );
    set("keep-alive", "timeout=5".to_owned());
    let r = client
        .request(get_with(
            &format!("http://{front}/app/x"),
            &[("host", "www.example.com")],
        ))
        .await
        .expect("an answer");
    assert_eq!(r.status, 200);
    assert_eq!(
        backends[0]
            .last_request()
            .expect("one request")
            .path_and_query,
        "/back/x"
    );
    assert_eq!(
        r.header("location"),
        Some("http://www.example.com/app/login?next=1")
    );
    assert_eq!(
        r.header("set-cookie"),
        Some("s=1; Domain=www.example.com; Path=/app/cart; HttpOnly")
    );
    assert!(
        r.header("keep-alive").is_none(),
        "a hop-by-hop header reached the client"
    );

    // A plain-URL line rewrites that URL whichever member answered.
    backends[0].clear_headers();
    set("location", "http://old.internal/page".to_owned());
    let r = client
        .request(get_with(
            &format!("http://{front}/app/y"),
            &[("host", "www.example.com")],
        ))
        .await
        .expect("an answer");
    assert_eq!(
        r.header("location"),
        Some("http://www.example.com/app/legacy/page")
    );
    running.shutdown().await.expect("stops cleanly");
}

/// An HTTP/2 client (h2c, prior knowledge) sends no `Host`: its `:authority` becomes
/// `X-Forwarded-Host`, as mod_proxy does with mod_http2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_clients_authority_is_forwarded_as_x_forwarded_host() {
    let backends = start_demo_backends(1).await.expect("loopback ports");
    let member = backends[0].url();
    let running = serve_config(&format!(
        "<Proxy balancer://b>\n BalancerMember {member}\n</Proxy>\nProxyPass / balancer://b/\n"
    ))
    .await;
    let front = running.local_addr();
    let r = TestClient::h2c()
        .with_timeout(Duration::from_secs(5))
        .get(&format!("http://{front}/h2"))
        .await
        .expect("an answer");
    assert_eq!(r.status, 200);
    let seen = backends[0].last_request().expect("one request").headers;
    assert_eq!(seen["x-forwarded-host"], front.to_string().as_str());
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen["host"], member.trim_start_matches("http://"));
    running.shutdown().await.expect("stops cleanly");
}

/// Sends `request` over one h2c (prior knowledge) connection to `addr`; the response with
/// its body read.
async fn send_h2c<B>(
    addr: std::net::SocketAddr,
    request: http::Request<B>,
) -> http::Response<bytes::Bytes>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::BodyExt;
    tokio::time::timeout(Duration::from_secs(10), async {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .expect("h2c prior-knowledge handshake");
        tokio::spawn(connection);
        let response = sender.send_request(request).await.expect("a response");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("a body").to_bytes();
        http::Response::from_parts(parts, body)
    })
    .await
    .expect("bounded")
}

/// An HTTP/2 upload with no length (a stream) reaches the member whole, sent as HTTP/1.1
/// (chunked), as Apache sends every request to a member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_upload_without_a_length_reaches_the_member_whole() {
    let backends = start_demo_backends(1).await.expect("loopback ports");
    let member = backends[0].url();
    let running = serve_config(&format!(
        "<Proxy balancer://b>\n BalancerMember {member}\n</Proxy>\nProxyPass /up/ balancer://b/in/\n"
    ))
    .await;
    let front = running.local_addr();
    let (frames, body) = proxy_balancer_test::ChannelBody::new(4);
    let request = http::Request::post(format!("http://{front}/up/file"))
        .version(http::Version::HTTP_2)
        .body(body)
        .expect("a valid request");
    let sending = tokio::spawn(send_h2c(front, request));
    for part in ["hel", "lo"] {
        frames
            .send(http_body::Frame::data(bytes::Bytes::from(part)))
            .await
            .expect("the body is read");
    }
    drop(frames);
    let response = sending.await.expect("no panic");
    assert_eq!(response.status(), 200);
    let seen = backends[0].last_request().expect("one request");
    assert_eq!(seen.path_and_query, "/in/file");
    assert_eq!(seen.body, "hello");
    running.shutdown().await.expect("stops cleanly");
}

/// Over HTTP/2, a `ProxyPass` that changes the path keeps the client's authority: it is
/// `X-Forwarded-Host`, the `Host` with `ProxyPreserveHost On`, and the front origin of a
/// rewritten redirect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_request_keeps_its_authority_through_a_path_mapping() {
    use http::{HeaderName, HeaderValue};
    let backends = start_demo_backends(1).await.expect("loopback ports");
    let member = backends[0].url();
    backends[0].set_header(
        HeaderName::from_static("location"),
        HeaderValue::from_str(&format!("{member}/base/next")).expect("a header value"),
    );
    let running = serve_config(&format!(
        "ProxyPreserveHost On\n<Proxy balancer://b>\n BalancerMember {member}\n</Proxy>\n\
         ProxyPass /app/ balancer://b/base/\nProxyPassReverse /app/ balancer://b/base/\n"
    ))
    .await;
    let front = running.local_addr();
    let request = http::Request::get(format!("http://{front}/app/a?q=1"))
        .version(http::Version::HTTP_2)
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("a valid request");
    let response = send_h2c(front, request).await;
    assert_eq!(response.status(), 200);
    let seen = backends[0].last_request().expect("one request");
    assert_eq!(seen.path_and_query, "/base/a?q=1");
    assert_eq!(seen.headers["host"], front.to_string().as_str());
    assert_eq!(seen.headers["x-forwarded-host"], front.to_string().as_str());
    assert_eq!(
        response.headers()["location"],
        format!("http://{front}/app/next").as_str()
    );
    running.shutdown().await.expect("stops cleanly");
}

/// What the site would not apply as written refuses the configuration, naming the line:
/// never a rule silently dropped.
#[tokio::test]
async fn a_directive_the_site_cannot_apply_refuses_the_configuration() {
    let base = "<Proxy balancer://b>\n BalancerMember http://127.0.0.1:9\n</Proxy>\nProxyPass / balancer://b/\n";
    for (extra, says) in [
        // Header edit and expr= are applied now; what cannot be compiled is refused.
        ("Header edit X-A ( b\n", "line 5: Header edit X-A"),
        ("Header set X-A 1 \"expr=%{REMOTE_ADDR} == '::1'\"\n", "line 5: Header set X-A"),
        ("ProxyPassReverseCookiePath /a /b interpolate\n", "line 5: ProxyPassReverseCookiePath"),
        (
            "<Location /balancer-manager>\n SetHandler balancer-manager\n Require host example.com\n</Location>\n",
            "line 5: Require host example.com",
        ),
        (
            "<Location /balancer-manager>\n SetHandler balancer-manager\n Require ip 10.0.0.0/33\n</Location>\n",
            "line 5: Require ip 10.0.0.0/33",
        ),
    ] {
        let config = parse(&format!("{base}{extra}")).expect("valid Apache");
        let error = Site::from_config(&config).expect_err(extra).to_string();
        assert!(error.starts_with(says), "{extra}: {error}");
    }
}

/// `ProxyPass /private !` holds against encodings, as Apache's: an escaped unreserved
/// character is the character (404 like the plain path), an encoded `/` or NUL is 404, a bad
/// escape 400; the member gets the decoded path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exclusion_holds_against_encodings() {
    let backends = start_demo_backends(1).await.expect("loopback ports");
    let member = backends[0].url();
    let running = serve_config(&format!(
        "<Proxy balancer://b>\n BalancerMember {member}\n</Proxy>\n\
         ProxyPass /private !\nProxyPass / balancer://b/\n"
    ))
    .await;
    let front = running.local_addr();
    let client = TestClient::new().with_timeout(Duration::from_secs(5));
    for (path, status) in [
        ("/private/x", 404),
        ("/%70rivate/x", 404),
        ("/priv%61te", 404),
        ("/private%2fx", 404),
        ("/x/..%2fprivate", 404),
        ("/private%00", 404),
        ("/x%zz", 400),
    ] {
        let r = client
            .get(&format!("http://{front}{path}"))
            .await
            .expect("an answer");
        assert_eq!(r.status, status, "{path}");
    }
    assert_eq!(backends[0].hits(), 0, "nothing reached the member");
    let r = client
        .get(&format!("http://{front}/%41pp/a%20b?q=%70"))
        .await
        .expect("an answer");
    assert_eq!(r.status, 200);
    assert_eq!(
        backends[0]
            .last_request()
            .expect("one request")
            .path_and_query,
        "/App/a%20b?q=%70",
        "unreserved characters decoded in the path; the query as sent"
    );
    running.shutdown().await.expect("stops cleanly");
}
