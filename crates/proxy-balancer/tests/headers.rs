//! mod_headers on the site, compared with Apache httpd 2.4.71: each test's configuration
//! was run on loopback in Apache (mod_proxy, mod_proxy_http, mod_proxy_balancer,
//! mod_headers) with two Python members sending the same headers as the test members here,
//! and what Apache answered is written beside each assertion.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use http_body_util::Full;
use proxy_balancer::apache_config::parse;
use proxy_balancer::server::{Server, ServerHandle};
use proxy_balancer::site::Site;
use proxy_balancer_test::{TestBackend, TestClient, TestResponse};

/// Where the proxy under test listens: loopback, a port the system picks.
const LOOPBACK: std::net::SocketAddr = std::net::SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    0,
));

/// Two members sending what the Python members of the Apache runs sent: `X-Member`, `X-A:
/// member`, `X-List: a, b`, `Set-Cookie: m=1; Path=/`.
async fn members() -> [TestBackend; 2] {
    let member = |name: &'static str| {
        TestBackend::builder(name)
            .header(
                HeaderName::from_static("x-member"),
                HeaderValue::from_static(name),
            )
            .header(
                HeaderName::from_static("x-a"),
                HeaderValue::from_static("member"),
            )
            .header(
                HeaderName::from_static("x-list"),
                HeaderValue::from_static("a, b"),
            )
            .header(
                HeaderName::from_static("set-cookie"),
                HeaderValue::from_static("m=1; Path=/"),
            )
            .start()
    };
    let (b1, b2) = tokio::join!(member("b1"), member("b2"));
    [b1.expect("a loopback port"), b2.expect("a loopback port")]
}

/// A port nothing listens on (bound, then closed).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    listener.local_addr().expect("bound").port()
}

/// The Apache configuration of the runs: a sticky balancer of the two members, one whose
/// only member is down, an exclusion; then the `Header` lines under test.
fn config(members: &[TestBackend; 2], dead: u16, rules: &str) -> String {
    format!(
        "<Proxy \"balancer://c\">\n  BalancerMember {} route=n1\n  BalancerMember {} route=n2\n  \
         ProxySet stickysession=ROUTEID\n</Proxy>\n\
         <Proxy \"balancer://dead\">\n  BalancerMember http://127.0.0.1:{dead} route=d1 retry=60\n</Proxy>\n\
         ProxyPass /excluded !\nProxyPass /app balancer://c\nProxyPass /dead balancer://dead\n{rules}",
        members[0].url(),
        members[1].url()
    )
}

async fn serve(text: &str) -> ServerHandle {
    let config = parse(text).unwrap_or_else(|e| panic!("{e}"));
    let site = Site::from_config(&config).unwrap_or_else(|e| panic!("{e}"));
    Server::new()
        .listen(LOOPBACK, site)
        .await
        .expect("a loopback port")
}

async fn get(front: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> TestResponse {
    let mut request = http::Request::get(format!("http://{front}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::new())).expect("valid");
    TestClient::new()
        .with_timeout(Duration::from_secs(5))
        .request(request)
        .await
        .expect("an answer")
}

fn all<'a>(r: &'a TestResponse, name: &str) -> Vec<&'a str> {
    r.headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .collect()
}

/// The two tables: `always` acts on a table of its own sent before the member's headers,
/// on every answer; onsuccess on the member's headers (any status it sent), never on the
/// proxy's answers. Apache's trap kept: `always unset` leaves the member's header, `always
/// set` of one the member sends gives two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_and_onsuccess_tables_as_apache() {
    let members = members().await;
    let rules = "Header always set X-Always \"a\"\n\
                 Header set X-Success \"s\"\n\
                 Header always unset X-A\n\
                 Header always set X-Member \"always\"\n\
                 Header always add X-List \"c\"\n\
                 Header add Set-Cookie \"ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/; Secure; HttpOnly; SameSite=Strict\" env=BALANCER_ROUTE_CHANGED\n\
                 Header always set X-Env \"%{BALANCER_NAME}e|%{BALANCER_WORKER_NAME}e|%{BALANCER_WORKER_ROUTE}e|%{BALANCER_ROUTE_CHANGED}e|%{BALANCER_SESSION_STICKY}e|%{BALANCER_SESSION_ROUTE}e|%{HOME}e|%{SSL_PROTOCOL}s\"\n";
    let dead = closed_port();
    let running = serve(&config(&members, dead, rules)).await;
    let front = running.local_addr();
    let (w1, w2) = (members[0].url(), members[1].url());

    // Apache, member 200:
    //   X-Always: a / X-Member: always / X-List: c / X-Env: balancer://c|http://127.0.0.1:18310|n1|1|(null)|(null)|(null)|(null)
    //   X-Member: b1 / X-A: member / X-List: a, b / Set-Cookie: m=1; Path=/ / X-Success: s
    //   Set-Cookie: ROUTEID=.n1; path=/; Secure; HttpOnly; SameSite=Strict
    let r = get(front, "/app/x", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(all(&r, "x-always"), ["a"]);
    assert_eq!(all(&r, "x-member"), ["always", "b1"]);
    assert_eq!(all(&r, "x-list"), ["c", "a, b"]);
    assert_eq!(
        all(&r, "x-a"),
        ["member"],
        "always unset leaves the member's"
    );
    assert_eq!(all(&r, "x-success"), ["s"]);
    assert_eq!(
        all(&r, "set-cookie"),
        [
            "m=1; Path=/",
            "ROUTEID=.n1; path=/; Secure; HttpOnly; SameSite=Strict"
        ]
    );
    assert_eq!(
        all(&r, "x-env"),
        [format!("balancer://c|{w1}|n1|1|(null)|(null)|(null)|(null)").as_str()]
    );

    // Apache, member 500 (passed through): the same two tables.
    members[1].set_status(500);
    let r = get(front, "/app/x", &[]).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(all(&r, "x-member"), ["always", "b2"]);
    assert_eq!(all(&r, "x-success"), ["s"]);
    assert_eq!(
        all(&r, "set-cookie"),
        [
            "m=1; Path=/",
            "ROUTEID=.n2; path=/; Secure; HttpOnly; SameSite=Strict"
        ]
    );
    members[1].set_status(200);

    // Apache, sticky to n2: X-Env: balancer://c|http://127.0.0.1:18311|n2|(null)|ROUTEID|n2|(null)|(null),
    // no route cookie.
    let r = get(front, "/app/x", &[("cookie", "ROUTEID=.n2")]).await;
    assert_eq!(all(&r, "x-member"), ["always", "b2"]);
    assert_eq!(all(&r, "set-cookie"), ["m=1; Path=/"]);
    assert_eq!(
        all(&r, "x-env"),
        [format!("balancer://c|{w2}|n2|(null)|ROUTEID|n2|(null)|(null)").as_str()]
    );

    // Apache, the proxy's 503 (the member refuses connections): the always table only:
    //   X-Always: a / X-Member: always / X-List: c
    //   X-Env: balancer://dead|http://127.0.0.1:18319|d1|(null)|(null)|(null)|(null)|(null)
    // (the values of the last member tried, kept for the error answer).
    let r = get(front, "/dead/x", &[]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(all(&r, "x-always"), ["a"]);
    assert_eq!(all(&r, "x-member"), ["always"]);
    assert_eq!(all(&r, "x-list"), ["c"]);
    assert!(all(&r, "x-success").is_empty());
    assert!(all(&r, "set-cookie").is_empty());
    assert_eq!(
        all(&r, "x-env"),
        [
            format!(
                "balancer://dead|http://127.0.0.1:{dead}|d1|(null)|(null)|(null)|(null)|(null)"
            )
            .as_str()
        ]
    );

    // Apache, ProxyPass /excluded ! (404): the always table, every variable (null).
    let r = get(front, "/excluded", &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(all(&r, "x-always"), ["a"]);
    assert_eq!(all(&r, "x-list"), ["c"]);
    assert!(all(&r, "x-success").is_empty());
    assert_eq!(
        all(&r, "x-env"),
        ["(null)|(null)|(null)|(null)|(null)|(null)|(null)|(null)"]
    );

    // Apache, a bad escape (400) and an encoded slash (404): the always table, as above.
    for (path, status) in [
        ("/app/a%zz", StatusCode::BAD_REQUEST),
        ("/app/a%2Fb", StatusCode::NOT_FOUND),
    ] {
        let r = get(front, path, &[]).await;
        assert_eq!(r.status, status, "{path}");
        assert_eq!(all(&r, "x-member"), ["always"], "{path}");
        assert!(all(&r, "x-success").is_empty(), "{path}");
    }
    running.shutdown().await.expect("stops cleanly");
}

/// Every action, condition and format, with `RequestHeader` before the forwarding
/// headers, as Apache ran this configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_conditions_and_formats_as_apache() {
    let members = members().await;
    let rules = r#"Header edit X-List "^(a), (b)$" "$2-$1-&-\$"
Header edit* X-A "m" "M"
Header edit* X-Member "^b" "B"
Header always echo ^X-E
Header echo ^X-O
Header merge X-List "b"
Header merge X-M2 "q"
Header append Set-Cookie "z=1"
Header setifempty X-A "new"
Header setifempty X-New "new"
Header set X-Time "%t %D %% %"
Header set X-St "yes" "expr=%{REQUEST_STATUS} == 500"
Header always set X-ASt "yes" "expr=%{REQUEST_STATUS} -ge 500"
Header set X-R "yes" "expr=resp('X-Member') == 'b1'"
Header set X-NotChanged "yes" env=!BALANCER_ROUTE_CHANGED
Header unset X-Member env=BALANCER_SESSION_ROUTE
RequestHeader set X-Forwarded-For "1.2.3.4"
RequestHeader append X-Req "r2"
RequestHeader add X-Env "%{BALANCER_NAME}e"
RequestHeader edit User-Agent "^curl" "CURL"
RequestHeader unset X-Drop
RequestHeader set Host "changed.example"
"#;
    let running = serve(&config(&members, closed_port(), rules)).await;
    let front = running.local_addr();
    let sent = [
        ("x-req", "r1"),
        ("x-drop", "1"),
        ("x-echo", "e"),
        ("x-other", "o"),
        ("user-agent", "curl/7.88.1"),
    ];

    // Apache, member 200:
    //   Set-Cookie: m=1; Path=/, z=1 / X-Echo: e / X-Env: (null) / X-List: b-a-&-$, b
    //   X-A: MeMber / X-Member: B1 / X-Other: o / X-M2: q / X-New: new
    //   X-Time: t=1796395434711565 D=4488 % %   (no X-St, X-ASt, X-R, X-NotChanged)
    // and b1 received: X-Req: r1, r2 / X-Forwarded-For: 1.2.3.4, 127.0.0.1 / X-Env: (null)
    //   User-Agent: CURL/7.88.1 / X-Forwarded-Host: changed.example / Host: its own / no X-Drop
    let r = get(front, "/app/x", &sent).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(all(&r, "set-cookie"), ["m=1; Path=/, z=1"]);
    assert_eq!(all(&r, "x-echo"), ["e"]);
    assert_eq!(
        all(&r, "x-env"),
        ["(null)"],
        "echoed after RequestHeader added it"
    );
    assert_eq!(all(&r, "x-other"), ["o"]);
    assert_eq!(all(&r, "x-list"), ["b-a-&-$, b"]);
    assert_eq!(all(&r, "x-a"), ["MeMber"]);
    assert_eq!(all(&r, "x-member"), ["B1"]);
    assert_eq!(all(&r, "x-m2"), ["q"]);
    assert_eq!(all(&r, "x-new"), ["new"]);
    let time = all(&r, "x-time");
    let parts: Vec<&str> = time[0].split(' ').collect();
    assert_eq!(parts.len(), 4, "{time:?}");
    assert!(parts[0]
        .strip_prefix("t=")
        .is_some_and(|t| t.len() >= 16 && t.bytes().all(|b| b.is_ascii_digit())));
    assert!(parts[1]
        .strip_prefix("D=")
        .is_some_and(|d| d.parse::<u64>().is_ok()));
    assert_eq!(&parts[2..], ["%", "%"]);
    for absent in ["x-st", "x-ast", "x-r", "x-notchanged", "x-drop"] {
        assert!(all(&r, absent).is_empty(), "{absent}");
    }
    let seen = members[0].last_request().expect("b1 answered");
    assert_eq!(seen.header("x-req"), Some("r1, r2"));
    assert_eq!(seen.header("x-forwarded-for"), Some("1.2.3.4, 127.0.0.1"));
    assert_eq!(seen.header("x-env"), Some("(null)"));
    assert_eq!(seen.header("user-agent"), Some("CURL/7.88.1"));
    assert_eq!(seen.header("x-forwarded-host"), Some("changed.example"));
    assert_eq!(
        seen.header("host"),
        members[0].url().strip_prefix("http://")
    );
    assert_eq!(seen.header("x-drop"), None);

    // Apache, member 500: X-St: yes and X-ASt: yes besides the above.
    members[1].set_status(500);
    let r = get(front, "/app/x", &sent).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(all(&r, "x-st"), ["yes"]);
    assert_eq!(all(&r, "x-ast"), ["yes"]);
    assert_eq!(all(&r, "x-member"), ["B2"]);
    members[1].set_status(200);

    // Apache, sticky to n1: X-NotChanged: yes, and no X-Member (unset on
    // BALANCER_SESSION_ROUTE).
    let r = get(front, "/app/x", &[("cookie", "ROUTEID=.n1")]).await;
    assert_eq!(all(&r, "x-notchanged"), ["yes"]);
    assert!(all(&r, "x-member").is_empty());

    // Apache, the proxy's 503: X-ASt: yes / X-Echo: e / X-Env: (null) (the always echo;
    // the onsuccess one, ^X-O, not).
    let r = get(front, "/dead/x", &sent).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(all(&r, "x-ast"), ["yes"]);
    assert_eq!(all(&r, "x-echo"), ["e"]);
    assert_eq!(all(&r, "x-env"), ["(null)"]);
    assert!(all(&r, "x-other").is_empty());
    assert!(all(&r, "x-time").is_empty());
    running.shutdown().await.expect("stops cleanly");
}

/// The documented route-cookie recipe sends its attributes byte for byte, as Apache, and
/// the cookie keeps the session on its member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_cookie_recipe_keeps_every_attribute() {
    let members = members().await;
    let rules = "Header add Set-Cookie \"ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/app; Max-Age=3600; Domain=example.test; Secure; HttpOnly; SameSite=Strict\" env=BALANCER_ROUTE_CHANGED\n";
    let running = serve(&config(&members, closed_port(), rules)).await;
    let front = running.local_addr();
    let r = get(front, "/app/x", &[]).await;
    // Apache: Set-Cookie: ROUTEID=.n1; path=/app; Max-Age=3600; Domain=example.test; Secure; HttpOnly; SameSite=Strict
    assert_eq!(
        all(&r, "set-cookie"),
        [
            "m=1; Path=/",
            "ROUTEID=.n1; path=/app; Max-Age=3600; Domain=example.test; Secure; HttpOnly; SameSite=Strict"
        ]
    );
    for _ in 0..3 {
        let r = get(front, "/app/x", &[("cookie", "ROUTEID=.n1")]).await;
        assert_eq!(all(&r, "x-member"), ["b1"]);
        assert_eq!(all(&r, "set-cookie"), ["m=1; Path=/"], "the route held");
    }
    running.shutdown().await.expect("stops cleanly");
}

/// `expr=` conditions reading the request (`REQUEST_URI`, `REQUEST_METHOD`, `req()`,
/// `%{HTTP_USER_AGENT}`, `%{req:…}`, `env()`), on `Header` and `RequestHeader`; the request
/// headers read are named in `Vary`, as Apache's ap_expr does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expressions_read_the_request_as_apache() {
    let members = members().await;
    let rules = r#"Header set X-U "yes" "expr=%{REQUEST_URI} == '/app/x'"
Header set X-M "yes" "expr=%{REQUEST_METHOD} == 'GET' && req('X-Q') == 'q'"
Header set X-H "yes" "expr=%{HTTP_USER_AGENT} =~ /curl/"
Header set X-E "yes" "expr=env('BALANCER_NAME') == 'balancer://c'"
Header always set X-E2 "yes" "expr=%{env:BALANCER_WORKER_ROUTE} == 'n1'"
Header set X-RQ "yes" "expr=%{req:X-Added} == 'r'"
RequestHeader set X-Added "r" "expr=%{REQUEST_URI} =~ m#^/app#"
RequestHeader set X-RE "yes" "expr=reqenv('BALANCER_NAME') == ''"
"#;
    let running = serve(&config(&members, closed_port(), rules)).await;
    let front = running.local_addr();
    let curl = ("user-agent", "curl/7.88.1");

    // Apache: X-E2: yes / X-U: yes / Vary: X-Q,User-Agent,X-Added / X-M: yes / X-H: yes /
    // X-E: yes / X-RQ: yes; b1 received X-Added: r and X-RE: yes.
    let r = get(front, "/app/x", &[("x-q", "q"), curl]).await;
    for yes in ["x-e2", "x-u", "x-m", "x-h", "x-e", "x-rq"] {
        assert_eq!(all(&r, yes), ["yes"], "{yes}");
    }
    assert_eq!(all(&r, "vary"), ["X-Q,User-Agent,X-Added"]);
    let seen = members[0].last_request().expect("b1 answered");
    assert_eq!(seen.header("x-added"), Some("r"));
    assert_eq!(seen.header("x-re"), Some("yes"));

    // Apache, POST /app/y (to b2): Vary: User-Agent,X-Added (the && stopped before
    // req('X-Q')) / X-H / X-E / X-RQ; no X-U, X-M, X-E2.
    let request = http::Request::post(format!("http://{front}/app/y"))
        .header(curl.0, curl.1)
        .body(Full::new(Bytes::new()))
        .expect("valid");
    let r = TestClient::new()
        .with_timeout(Duration::from_secs(5))
        .request(request)
        .await
        .expect("an answer");
    assert_eq!(all(&r, "x-member"), ["b2"]);
    assert_eq!(all(&r, "vary"), ["User-Agent,X-Added"]);
    for yes in ["x-h", "x-e", "x-rq"] {
        assert_eq!(all(&r, yes), ["yes"], "{yes}");
    }
    for absent in ["x-u", "x-m", "x-e2"] {
        assert!(all(&r, absent).is_empty(), "{absent}");
    }
    running.shutdown().await.expect("stops cleanly");

    // Apache, the member's own Vary joined as fixup_vary leaves it:
    //   Header set X-M "yes" "expr=req('X-Q') == 'q'" and a member sending
    //   "Vary: Accept-Encoding, Cookie" give "Vary: Accept-Encoding,Cookie,X-Q".
    for m in &members {
        m.set_header(
            http::header::VARY,
            HeaderValue::from_static("Accept-Encoding, Cookie"),
        );
    }
    let running = serve(&config(
        &members,
        closed_port(),
        "Header set X-M \"yes\" \"expr=req('X-Q') == 'q'\"\n",
    ))
    .await;
    let r = get(running.local_addr(), "/app/vary", &[]).await;
    assert_eq!(all(&r, "vary"), ["Accept-Encoding,Cookie,X-Q"]);
    assert!(all(&r, "x-m").is_empty());
    running.shutdown().await.expect("stops cleanly");
}

/// A header rule the site would not apply where it is written (a `<Proxy>` block) refuses
/// the configuration with its line, as does a regex that does not compile.
#[tokio::test]
async fn a_rule_the_site_cannot_place_refuses_the_configuration() {
    for (text, says) in [
        (
            "<Proxy balancer://b>\n BalancerMember http://127.0.0.1:9\n RequestHeader set X v\n</Proxy>\nProxyPass / balancer://b/\n",
            "line 3: RequestHeader: not applied inside a <Proxy> block",
        ),
        (
            "<Proxy balancer://b>\n BalancerMember http://127.0.0.1:9\n</Proxy>\nProxyPass / balancer://b/\n<Files \"*.cgi\">\n Header set X-Files 1\n</Files>\n",
            "line 6: Header: not applied inside a <Proxy> block or a <Directory>/<Files> section",
        ),
        (
            "<Proxy balancer://b>\n BalancerMember http://127.0.0.1:9\n</Proxy>\nProxyPass / balancer://b/\nRequestHeader edit* X \"a{2,1}\" b\n",
            "line 5: RequestHeader edit* X: the regular expression \"a{2,1}\" does not compile",
        ),
    ] {
        let config = parse(text).expect("valid Apache");
        let error = Site::from_config(&config).expect_err(text).to_string();
        assert!(error.starts_with(says), "{text}: {error}");
    }
}

/// `Header echo` alone echoes every request header. Apache 2.4.71, `curl -H X-Q:q -H
/// User-Agent:ua`: Host: 127.0.0.1:18300 / Accept: */* / X-Q: q / User-Agent: ua.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_alone_echoes_every_request_header() {
    let members = members().await;
    let running = serve(&config(&members, closed_port(), "Header echo\n")).await;
    let front = running.local_addr();
    let r = get(front, "/app/x", &[("x-q", "q"), ("user-agent", "ua")]).await;
    assert_eq!(all(&r, "x-q"), ["q"]);
    assert_eq!(all(&r, "user-agent"), ["ua"]);
    assert_eq!(all(&r, "host"), [front.to_string().as_str()]);
    running.shutdown().await.expect("stops cleanly");
}
