//! The balancer-manager against DNS rebinding (a change needs a `Host` that names this
//! server), the JSON API's structured answers, and views that take unrelated parameters.
//! In process, with the `PeerAddr` and `LocalAddr` proxy-balancer's server puts in every
//! request.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use proxy_balancer_core::{BalancerParams, BalancerStore, MemberParams, StatusFlags};
use proxy_balancer_manager::{BalancerManager, BalancerManagerBuilder, LocalAddr, PeerAddr};
use serde_json::Value;
use tower::ServiceExt;

const MEMBER: &str = "http%3A%2F%2F127.0.0.1%3A8001";
const PAGE: &str = "/balancer-manager";
const API: &str = "/balancer-manager/api";

/// The address clients reach in most of these tests.
const LISTEN: &str = "127.0.0.1:8080";

fn store(settings: &[(&str, &str)]) -> Arc<BalancerStore> {
    let mut params = BalancerParams::new("app");
    for (k, v) in settings {
        params.set(k, v).expect("valid");
    }
    let members = ["http://127.0.0.1:8001", "http://127.0.0.1:8002"]
        .map(|u| MemberParams::new(u).expect("valid"));
    let now = tokio::time::Instant::now().into_std();
    Arc::new(BalancerStore::new(params, members, now).expect("valid"))
}

fn setup(
    configure: impl FnOnce(BalancerManagerBuilder) -> BalancerManagerBuilder,
) -> (Arc<BalancerStore>, BalancerManager) {
    let store = store(&[]);
    let manager = configure(BalancerManager::builder(PAGE).balancer(Arc::clone(&store))).build();
    (store, manager)
}

/// A request as it reaches the manager.
struct Call<'a> {
    method: &'a str,
    uri: &'a str,
    body: String,
    /// `None`: no `Host` header.
    host: Option<&'a str>,
    /// `None`: no `LocalAddr` (a server other than ours).
    local: Option<&'a str>,
    peer: &'a str,
    headers: Vec<(&'a str, &'a str)>,
}

impl<'a> Call<'a> {
    fn new(method: &'a str, uri: &'a str, body: impl Into<String>) -> Self {
        Self {
            method,
            uri,
            body: body.into(),
            host: Some(LISTEN),
            local: Some(LISTEN),
            peer: "127.0.0.1:50000",
            headers: Vec::new(),
        }
    }

    fn host(mut self, host: &'a str) -> Self {
        self.host = Some(host);
        self
    }

    fn local(mut self, local: Option<&'a str>) -> Self {
        self.local = local;
        self
    }

    fn header(mut self, name: &'a str, value: &'a str) -> Self {
        self.headers.push((name, value));
        self
    }

    async fn send(self, manager: &BalancerManager) -> Answer {
        let mut builder = Request::builder().method(self.method).uri(self.uri);
        if let Some(host) = self.host {
            builder = builder.header(header::HOST, host);
        }
        for (k, v) in &self.headers {
            builder = builder.header(*k, *v);
        }
        let mut request = builder
            .body(Full::new(Bytes::from(self.body)))
            .expect("valid");
        let peer: SocketAddr = self.peer.parse().expect("an address");
        request.extensions_mut().insert(PeerAddr(peer));
        if let Some(local) = self.local {
            let local: SocketAddr = local.parse().expect("an address");
            request.extensions_mut().insert(LocalAddr(local));
        }
        let response = manager.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("full")
            .to_bytes();
        Answer {
            status,
            content_type,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    content_type: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        assert_eq!(self.content_type, "application/json", "{}", self.body);
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The JSON API's error answer, checked for its shape: `{"ok":false,"error":{"kind",
    /// "message","param"}}` and nothing else (or `applied` too, for `not_saved`). Returns
    /// the kind and the message.
    fn api_error(&self) -> (String, String) {
        let doc = self.json();
        let top = doc.as_object().expect("an object");
        assert_eq!(top.get("ok"), Some(&Value::Bool(false)), "{}", self.body);
        let error = top["error"].as_object().expect("error is an object");
        let mut keys: Vec<&str> = error.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["kind", "message", "param"], "{}", self.body);
        assert!(error["param"].is_null() || error["param"].is_string());
        let kind = error["kind"].as_str().expect("a kind").to_owned();
        let message = error["message"].as_str().expect("a message").to_owned();
        assert!(!message.is_empty());
        // No Rust Debug output of a struct or an Option in an answer.
        for debug in [
            "Some(",
            "Applied {",
            "StatusFlags(",
            "MemberId(",
            "EditError",
        ] {
            assert!(!message.contains(debug), "{debug} in {message}");
        }
        (kind, message)
    }
}

fn disable_form(nonce: &str) -> String {
    format!("b=app&w={MEMBER}&w_status_D=1&nonce={nonce}")
}

fn disabled(store: &BalancerStore) -> bool {
    store.snapshot().members()[0]
        .flags()
        .contains(StatusFlags::DISABLED)
}

#[tokio::test]
async fn a_post_with_another_host_is_refused_and_changes_nothing() {
    let (store, manager) = setup(|b| b);
    let nonce = manager.nonce("app").expect("managed");
    for host in [
        "evil.example",
        "evil.example:8080",
        "127.0.0.1.evil.example:8080",
        "0.0.0.0:8080",
    ] {
        // The page: a short HTML document saying why, without the nonces.
        let r = Call::new("POST", PAGE, disable_form(&nonce))
            .host(host)
            .send(&manager)
            .await;
        assert_eq!(r.status, 403, "{host}: {}", r.body);
        assert!(r.content_type.starts_with("text/html"), "{host}");
        assert!(
            r.body.contains("does not name this server") && r.body.contains("server_names"),
            "{host}: {}",
            r.body
        );
        assert!(!r.body.contains(&nonce), "{host}: a refusal shows no nonce");
        // The JSON API: a structured refusal.
        let r = Call::new("POST", API, disable_form(&nonce))
            .host(host)
            .send(&manager)
            .await;
        assert_eq!(r.status, 403, "{host}");
        let (kind, message) = r.api_error();
        assert_eq!(kind, "host_not_this_server", "{host}");
        assert!(message.contains("127.0.0.1:8080"), "{message}");
        assert!(!disabled(&store), "{host}: nothing changed");
    }
    assert_eq!(manager.changes(), 0);
}

#[tokio::test]
async fn a_post_naming_the_address_reached_is_taken() {
    for (listen, host) in [
        ("127.0.0.1:8080", "127.0.0.1:8080"),
        ("127.0.0.1:8080", "localhost:8080"),
        ("127.0.0.1:8080", "LocalHost.:8080"),
        ("127.0.0.1:43117", "127.0.0.1:43117"),
        ("[::1]:8080", "[::1]:8080"),
        ("[::ffff:127.0.0.1]:8080", "127.0.0.1:8080"),
    ] {
        let (store, manager) = setup(|b| b);
        let nonce = manager.nonce("app").expect("managed");
        let r = Call::new("POST", PAGE, disable_form(&nonce))
            .host(host)
            .local(Some(listen))
            .send(&manager)
            .await;
        assert_eq!(r.status, 200, "{listen} {host}: {}", r.body);
        assert!(disabled(&store), "{listen} {host}");
    }
}

#[tokio::test]
async fn the_right_port_at_another_address_or_another_port_is_refused() {
    for (listen, host) in [
        ("192.0.2.10:8080", "192.0.2.11:8080"),
        ("192.0.2.10:8080", "127.0.0.1:8080"),
        ("192.0.2.10:8080", "localhost:8080"),
        ("127.0.0.1:8080", "10.0.0.1:8080"),
        ("127.0.0.1:8080", "127.0.0.1:8081"),
    ] {
        let (store, manager) = setup(|b| b);
        let nonce = manager.nonce("app").expect("managed");
        let r = Call::new("POST", API, disable_form(&nonce))
            .host(host)
            .local(Some(listen))
            .send(&manager)
            .await;
        assert_eq!(r.status, 403, "{listen} {host}: {}", r.body);
        assert_eq!(r.api_error().0, "host_not_this_server");
        assert!(!disabled(&store), "{listen} {host}");
    }
    // The address reached, not loopback: taken.
    let (store, manager) = setup(|b| b);
    let nonce = manager.nonce("app").expect("managed");
    let r = Call::new("POST", API, disable_form(&nonce))
        .host("192.0.2.10:8080")
        .local(Some("192.0.2.10:8080"))
        .send(&manager)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(disabled(&store));
}

#[tokio::test]
async fn a_configured_name_is_taken() {
    let listen = Some("192.0.2.10:8080");
    for (host, expected) in [
        ("proxy.example.com", 200),
        ("PROXY.example.com:8080", 200),
        ("proxy.example.com:443", 200),
        ("a.b.example.net:8080", 200),
        ("fwd.example.org:9000", 200),
        ("proxy.example.com:9000", 403),
        ("example.net:8080", 403),
        ("proxy.example.com.evil.example", 403),
    ] {
        let (store, manager) = setup(|b| {
            b.server_names(["proxy.example.com", "*.example.net"])
                .server_names(["http://fwd.example.org:9000"])
        });
        assert!(manager.refused_server_names().is_empty());
        let nonce = manager.nonce("app").expect("managed");
        let r = Call::new("POST", API, disable_form(&nonce))
            .host(host)
            .local(listen)
            .send(&manager)
            .await;
        assert_eq!(r.status, expected, "{host}: {}", r.body);
        assert_eq!(disabled(&store), expected == 200, "{host}");
    }
}

#[tokio::test]
async fn another_sites_origin_is_refused_with_a_good_host() {
    let (store, manager) = setup(|b| b.server_names(["proxy.example.com"]));
    let nonce = manager.nonce("app").expect("managed");
    for (name, value) in [
        ("origin", "http://evil.example"),
        ("origin", "http://evil.example:8080"),
        ("origin", "null"),
        ("referer", "http://evil.example/balancer-manager"),
        // Another of this server's names is another origin for the browser.
        ("origin", "http://proxy.example.com:8080"),
    ] {
        let r = Call::new("POST", API, disable_form(&nonce))
            .header(name, value)
            .send(&manager)
            .await;
        assert_eq!(r.status, 403, "{name}: {value}");
        assert_eq!(r.api_error().0, "cross_origin", "{name}: {value}");
        let r = Call::new("POST", PAGE, disable_form(&nonce))
            .header(name, value)
            .send(&manager)
            .await;
        assert_eq!(r.status, 403, "{name}: {value}");
        assert!(r.body.contains("names another site"), "{}", r.body);
        assert!(!disabled(&store), "{name}: {value}");
    }
    // The page's own form: the origin is the verified host.
    let r = Call::new("POST", PAGE, disable_form(&nonce))
        .host("proxy.example.com")
        .header("origin", "http://proxy.example.com")
        .header("referer", "http://proxy.example.com/balancer-manager?b=app")
        .send(&manager)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(disabled(&store));
}

#[tokio::test]
async fn without_a_local_address_or_names_changes_are_refused_loudly() {
    let (store, manager) = setup(|b| b);
    let nonce = manager.nonce("app").expect("managed");
    for host in [LISTEN, "localhost", "proxy.example.com"] {
        let r = Call::new("POST", API, disable_form(&nonce))
            .host(host)
            .local(None)
            .send(&manager)
            .await;
        assert_eq!(r.status, 403, "{host}");
        let (kind, message) = r.api_error();
        assert_eq!(kind, "server_names_not_configured");
        assert!(
            message.contains("LocalAddr")
                && message.contains("BalancerManagerBuilder::server_names"),
            "{message}"
        );
        let r = Call::new("POST", PAGE, disable_form(&nonce))
            .host(host)
            .local(None)
            .send(&manager)
            .await;
        assert_eq!(r.status, 403);
        assert!(r.body.contains("server_names"), "{}", r.body);
    }
    assert!(!disabled(&store));
    // Read-only views are served as before.
    let r = Call::new("GET", API, "").local(None).send(&manager).await;
    assert_eq!(r.status, 200);

    // With names configured, and still no LocalAddr: the names, any port.
    let (store, manager) = setup(|b| b.server_names(["proxy.example.com"]));
    let r = Call::new("POST", API, disable_form(&nonce))
        .host(LISTEN)
        .local(None)
        .send(&manager)
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.api_error().0, "host_not_this_server");
    let nonce = manager.nonce("app").expect("managed");
    let r = Call::new("POST", API, disable_form(&nonce))
        .host("proxy.example.com:8443")
        .local(None)
        .send(&manager)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(disabled(&store));
}

#[tokio::test]
async fn a_host_that_is_not_a_host_or_missing_is_refused() {
    let (store, manager) = setup(|b| b);
    let nonce = manager.nonce("app").expect("managed");
    for host in ["a b", "user@127.0.0.1:8080", "127.0.0.1:80x", "[::1"] {
        let r = Call::new("POST", API, disable_form(&nonce))
            .host(host)
            .send(&manager)
            .await;
        assert_eq!(r.status, 403, "{host}");
        assert_eq!(r.api_error().0, "bad_host", "{host}");
    }
    let mut call = Call::new("POST", API, disable_form(&nonce));
    call.host = None;
    let r = call.send(&manager).await;
    assert_eq!(
        (r.status, r.api_error().0.as_str()),
        (StatusCode::FORBIDDEN, "bad_host")
    );
    // The target's authority (HTTP/2 `:authority`, an absolute-form target) is the host.
    let r = Call::new(
        "POST",
        "http://evil.example:8080/balancer-manager/api",
        disable_form(&nonce),
    )
    .send(&manager)
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.api_error().0, "host_not_this_server");
    assert!(!disabled(&store));
}

#[tokio::test]
async fn the_json_answer_to_a_change_is_structured() {
    let (store, manager) = setup(|b| b);
    let nonce = manager.nonce("app").expect("managed");
    let r = Call::new(
        "POST",
        API,
        format!("b=app&w={MEMBER}&w_status_D=1&w_lf=2&nonce={nonce}"),
    )
    .send(&manager)
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let doc = r.json();
    assert_eq!(
        doc,
        serde_json::json!({
            "ok": true,
            "applied": {
                "balancer": "app",
                "member": "http://127.0.0.1:8001",
                "changed": ["loadfactor", "status"],
                "flags": {"before": "", "after": "D"},
                "added": null,
                "lb_reset": false,
            }
        })
    );
    assert!(disabled(&store));
    // Re-enabled: the lbstatus is reset.
    let r = Call::new(
        "POST",
        API,
        format!("b=app&w={MEMBER}&w_status_D=0&nonce={nonce}"),
    )
    .send(&manager)
    .await;
    let doc = r.json();
    assert_eq!(
        doc["applied"]["flags"],
        serde_json::json!({"before": "D", "after": ""})
    );
    assert_eq!(doc["applied"]["lb_reset"], true);

    // Adding a member names it; a balancer change names no member.
    let grow = store_with_growth();
    let manager = BalancerManager::builder(PAGE)
        .balancer(Arc::clone(&grow))
        .build();
    let nonce = manager.nonce("app").expect("managed");
    let r = Call::new(
        "POST",
        API,
        format!(
            "b=app&b_wyes=1&b_nwrkr=http%3A%2F%2F127.0.0.1%3A8003&b_lbm=bybusyness&nonce={nonce}"
        ),
    )
    .send(&manager)
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        serde_json::json!({
            "ok": true,
            "applied": {
                "balancer": "app",
                "member": null,
                "changed": ["lbmethod"],
                "flags": null,
                "added": "http://127.0.0.1:8003",
                "lb_reset": true,
            }
        })
    );
}

fn store_with_growth() -> Arc<BalancerStore> {
    store(&[("growth", "1")])
}

#[tokio::test]
async fn every_refusal_of_the_json_api_is_structured() {
    let (store, manager) = setup(|b| b.hc_expr_names(["ok"]));
    let nonce = manager.nonce("app").expect("managed");
    let get_change = format!("{API}?b=app&w_status_D=1");
    let too_large = format!("b=app&w_wr={}&nonce={nonce}", "x".repeat(17 * 1024));
    let cases: Vec<(Call<'_>, u16, &str, Option<&str>)> = vec![
        (
            Call::new("POST", API, disable_form(&nonce)).host("evil.example"),
            403,
            "host_not_this_server",
            None,
        ),
        (
            Call::new("POST", API, disable_form(&nonce)).host("a b"),
            403,
            "bad_host",
            None,
        ),
        (
            Call::new("POST", API, disable_form(&nonce)).local(None),
            403,
            "server_names_not_configured",
            None,
        ),
        (
            Call::new("POST", API, disable_form(&nonce)).header("origin", "http://evil.example"),
            403,
            "cross_origin",
            None,
        ),
        (
            Call {
                peer: "10.1.2.3:5000",
                ..Call::new("POST", API, disable_form(&nonce))
            },
            403,
            "client_not_allowed",
            None,
        ),
        (Call::new("PUT", API, ""), 405, "method_not_allowed", None),
        (
            Call::new("GET", &get_change, ""),
            405,
            "method_not_allowed",
            None,
        ),
        (
            Call::new("GET", "/balancer-manager/api?_=%zz", ""),
            400,
            "malformed",
            None,
        ),
        (Call::new("POST", API, too_large), 400, "too_large", None),
        (
            Call::new("POST", API, "b=app&w_lf=%zz"),
            400,
            "malformed",
            None,
        ),
        (
            Call::new("POST", API, "w=x&w_lf=2"),
            400,
            "missing",
            Some("b"),
        ),
        (
            Call::new("POST", API, format!("b=nope&nonce={nonce}")),
            404,
            "unknown_balancer",
            None,
        ),
        (
            Call::new("POST", API, format!("b=app&w={MEMBER}&w_status_D=1")),
            403,
            "bad_nonce",
            Some("nonce"),
        ),
        (
            Call::new(
                "POST",
                API,
                format!("b=app&w={MEMBER}&w_status_D=1&nonce=wrong"),
            ),
            403,
            "bad_nonce",
            Some("nonce"),
        ),
        (
            Call::new(
                "POST",
                API,
                format!("b=app&w={MEMBER}&w_lf=1&w_lf=2&nonce={nonce}"),
            ),
            400,
            "duplicate",
            Some("w_lf"),
        ),
        (
            Call::new("POST", API, format!("b=app&pretty=1&nonce={nonce}")),
            400,
            "unknown_parameters",
            Some("pretty"),
        ),
        (
            Call::new(
                "POST",
                API,
                format!("b=app&w={MEMBER}&w_ls=100&nonce={nonce}"),
            ),
            400,
            "invalid_value",
            Some("w_ls"),
        ),
        (
            Call::new("POST", API, format!("b=app&w_lf=2&nonce={nonce}")),
            400,
            "missing",
            Some("w"),
        ),
        (
            Call::new(
                "POST",
                API,
                format!("b=app&w=http%3A%2F%2Fnope&w_lf=2&nonce={nonce}"),
            ),
            404,
            "unknown_member",
            None,
        ),
        (
            Call::new(
                "POST",
                API,
                format!("b=app&b_wyes=1&b_nwrkr={MEMBER}&nonce={nonce}"),
            ),
            400,
            "duplicate_member",
            None,
        ),
        (
            Call::new(
                "POST",
                API,
                format!("b=app&b_wyes=1&b_nwrkr=http%3A%2F%2F127.0.0.1%3A8009&nonce={nonce}"),
            ),
            400,
            "no_free_slot",
            None,
        ),
        (
            Call::new(
                "POST",
                API,
                format!("b=app&w={MEMBER}&w_hm=GET&nonce={nonce}"),
            ),
            400,
            "no_health_checks",
            Some("w_hm"),
        ),
    ];
    for (call, status, kind, param) in cases {
        let label = format!("{} {} {:?}", call.method, call.uri, call.host);
        let r = call.send(&manager).await;
        assert_eq!(r.status.as_u16(), status, "{label}: {}", r.body);
        assert_eq!(r.api_error().0, kind, "{label}: {}", r.body);
        assert_eq!(r.json()["error"]["param"].as_str(), param, "{label}");
    }
    assert_eq!(manager.changes(), 0);
    assert!(store.snapshot().members()[0].is_usable());
}

#[tokio::test]
async fn an_edit_applied_but_not_saved_says_both() {
    let dir = std::env::temp_dir().join(format!("pb-no-such-dir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = store(&[]);
    let manager = BalancerManager::builder(PAGE)
        .balancer(Arc::clone(&store))
        .persist(dir.join("state"))
        .build();
    let nonce = manager.nonce("app").expect("managed");
    let r = Call::new("POST", API, disable_form(&nonce))
        .send(&manager)
        .await;
    assert_eq!(r.status, 500, "{}", r.body);
    let (kind, message) = r.api_error();
    assert_eq!(kind, "not_saved");
    assert!(message.starts_with("applied, but cannot save"), "{message}");
    assert_eq!(
        r.json()["applied"]["changed"],
        serde_json::json!(["status"])
    );
    assert!(disabled(&store));
}

#[tokio::test]
async fn views_take_unrelated_parameters() {
    let (store, manager) = setup(|b| b);
    for uri in [
        "/balancer-manager?pretty=1",
        "/balancer-manager?_=1733300000",
        "/balancer-manager?b=app&_=123&refresh=5",
        "/balancer-manager?xml=1&_=123",
        "/balancer-manager/api?pretty=1",
        "/balancer-manager/api?_=123",
        "/balancer-manager/metrics?_=123",
    ] {
        let r = Call::new("GET", uri, "").send(&manager).await;
        assert_eq!(r.status, 200, "{uri}: {}", r.body);
    }
    let r = Call::new("GET", "/balancer-manager?xml=1&_=123", "")
        .send(&manager)
        .await;
    assert!(r.content_type.starts_with("text/xml"), "{}", r.content_type);
    let r = Call::new("GET", "/balancer-manager/api?pretty=1", "")
        .send(&manager)
        .await;
    assert_eq!(r.json()["balancers"][0]["name"], "app");
    // Served whatever the Host: a view changes nothing.
    let r = Call::new("GET", "/balancer-manager?_=1", "")
        .host("evil.example")
        .send(&manager)
        .await;
    assert_eq!(r.status, 200);
    assert!(!disabled(&store));
}

#[tokio::test]
async fn an_edit_without_its_nonce_is_still_refused() {
    let (store, manager) = setup(|b| b);
    let nonce = manager.nonce("app").expect("managed");
    // A GET carrying a change, with or without unrelated parameters and the nonce: 405.
    for query in [
        format!("b=app&w={MEMBER}&w_status_D=1"),
        format!("pretty=1&b=app&w={MEMBER}&w_status_D=1&_=123"),
        format!("b=app&w={MEMBER}&W_STATUS_D=1&nonce={nonce}&_=1"),
        format!("b=app&w={MEMBER}&w_bogus=1"),
    ] {
        for mount in [PAGE, API] {
            let uri = format!("{mount}?{query}");
            let r = Call::new("GET", &uri, "").send(&manager).await;
            assert_eq!(r.status, 405, "{uri}");
        }
    }
    // A POST with unrelated query parameters still needs its nonce in the form.
    let r = Call::new(
        "POST",
        "/balancer-manager/api?pretty=1&_=123",
        format!("b=app&w={MEMBER}&w_status_D=1"),
    )
    .send(&manager)
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.api_error().0, "bad_nonce");
    // The changes of a POST are read from its body only, never from its query.
    let uri = format!("/balancer-manager/api?b=app&w={MEMBER}&w_status_D=1&nonce={nonce}");
    let r = Call::new("POST", &uri, "").send(&manager).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.api_error().0, "missing");
    assert!(!disabled(&store));
    assert_eq!(manager.changes(), 0);
}

proptest::proptest! {
    /// Whatever form and `Host` a client sends, the JSON API answers JSON of the documented
    /// shape (`ok` true exactly when the status is 200), and the page answers without a
    /// panic.
    #[test]
    fn any_form_gets_a_structured_answer(
        form in proptest::collection::vec(
            (
                proptest::sample::select(vec![
                    "b", "w", "nonce", "w_lf", "w_ls", "w_wr", "w_status_D", "w_status_E",
                    "w_hm", "w_hi", "b_lbm", "b_tmo", "b_wyes", "b_nwrkr", "pretty", "_", "",
                ]),
                "[-a-zA-Z0-9%+.:/=&<>\"\\\\]{0,12}",
            ),
            0..6,
        ),
        host in proptest::sample::select(vec![
            "127.0.0.1:8080", "evil.example", "a b", "localhost:8080", "[::1]:8080", "",
        ]),
        with_nonce in proptest::bool::ANY,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let (_, manager) = setup(|b| b);
            let nonce = manager.nonce("app").expect("managed");
            let mut body: Vec<String> = form.iter().map(|(k, v)| format!("{k}={v}")).collect();
            if with_nonce {
                body.push(format!("nonce={nonce}"));
            }
            let body = body.join("&");
            let r = Call::new("POST", API, body.clone()).host(host).send(&manager).await;
            let doc = r.json();
            let ok = doc["ok"].as_bool().expect("ok is a boolean");
            assert_eq!(ok, r.status == 200, "{}", r.body);
            if ok {
                assert!(doc["applied"]["changed"].is_array(), "{}", r.body);
            } else {
                let _ = r.api_error();
            }
            let r = Call::new("POST", PAGE, body).host(host).send(&manager).await;
            assert!(r.content_type.starts_with("text/html"), "{r:?}");
        });
    }
}
