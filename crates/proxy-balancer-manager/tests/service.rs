//! The balancer-manager Service end to end (in process): page, query API with the nonce,
//! the GET guidance, origin and access checks, XML, JSON, metrics, adding members.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use std::time::Duration;

use proxy_balancer_core::{
    BalancerParams, BalancerStore, HcMethod, HealthReport, MemberId, MemberParams, StatusFlags,
};
use proxy_balancer_manager::{BalancerManager, LocalAddr, PeerAddr};
use tower::ServiceExt;

const MEMBER: &str = "http%3A%2F%2F127.0.0.1%3A8001";

fn setup(balancer: &[(&str, &str)]) -> (Arc<BalancerStore>, BalancerManager) {
    let mut params = BalancerParams::new("app");
    for (k, v) in balancer {
        params.set(k, v).expect("valid");
    }
    let members = ["http://127.0.0.1:8001", "http://127.0.0.1:8002"]
        .map(|u| MemberParams::new(u).expect("valid"));
    let now = tokio::time::Instant::now().into_std();
    let store = Arc::new(BalancerStore::new(params, members, now).expect("valid"));
    let manager = BalancerManager::builder("/balancer-manager")
        .balancer(Arc::clone(&store))
        .build();
    (store, manager)
}

async fn send(
    manager: &BalancerManager,
    method: &str,
    uri: &str,
    body: &str,
    peer: Option<&str>,
    headers: &[(&str, &str)],
) -> (StatusCode, String, Response<()>) {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, LISTEN)
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("valid");
    // As proxy-balancer's server does: the address the client reached.
    let local: SocketAddr = LISTEN.parse().expect("an address");
    request.extensions_mut().insert(LocalAddr(local));
    for (k, v) in headers {
        let name = header::HeaderName::from_bytes(k.as_bytes()).expect("valid name");
        request
            .headers_mut()
            .insert(name, v.parse().expect("valid header"));
    }
    if let Some(peer) = peer {
        let addr: SocketAddr = peer.parse().expect("an address");
        request.extensions_mut().insert(PeerAddr(addr));
    }
    let response = manager.clone().oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let text =
        String::from_utf8_lossy(&body.collect().await.expect("full").to_bytes()).into_owned();
    (parts.status, text, Response::from_parts(parts, ()))
}

const LOCAL: Option<&str> = Some("127.0.0.1:50000");

/// The address the clients of these tests reach, and the `Host` they give.
const LISTEN: &str = "127.0.0.1:8080";

#[tokio::test]
async fn the_page_and_its_views() {
    let (_, manager) = setup(&[]);
    let (status, page, r) = send(&manager, "GET", "/balancer-manager", "", LOCAL, &[]).await;
    assert_eq!(status, 200);
    assert!(r.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(
        page.contains("http://127.0.0.1:8001") && page.contains("Init Ok"),
        "{page:.300}"
    );
    let (status, xml, _) = send(&manager, "GET", "/balancer-manager?xml=1", "", LOCAL, &[]).await;
    assert_eq!(status, 200);
    assert!(
        xml.contains("<httpd:balancer>") && xml.contains("balancer://app"),
        "{xml:.300}"
    );
    let (status, json, _) = send(&manager, "GET", "/balancer-manager/api", "", LOCAL, &[]).await;
    assert_eq!(status, 200);
    assert!(
        json.starts_with('{') && json.contains("127.0.0.1:8002"),
        "{json:.300}"
    );
    let (status, metrics, _) =
        send(&manager, "GET", "/balancer-manager/metrics", "", LOCAL, &[]).await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("proxy_balancer_member_elected_total"),
        "{metrics:.300}"
    );
    let (status, _, _) = send(&manager, "PUT", "/balancer-manager", "", LOCAL, &[]).await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn changes_need_a_post_with_the_nonce() {
    let (store, manager) = setup(&[]);
    let nonce = manager.nonce("app").expect("managed");
    let member = || store.snapshot().members()[0].clone();
    // The troubleshooting guides' GET: refused with the curl line that works.
    let uri = format!("/balancer-manager?b=app&w={MEMBER}&w_status_D=1&nonce={nonce}");
    let (status, body, _) = send(&manager, "GET", &uri, "", LOCAL, &[]).await;
    assert_eq!(status, 405);
    assert!(body.contains("curl -X POST"), "{body}");
    assert!(member().is_usable());
    // No nonce, a wrong nonce: 403, nothing changed.
    for form in [
        format!("b=app&w={MEMBER}&w_status_D=1"),
        format!("b=app&w={MEMBER}&w_status_D=1&nonce=wrong"),
    ] {
        let (status, _, _) = send(&manager, "POST", "/balancer-manager", &form, LOCAL, &[]).await;
        assert_eq!(status, 403, "{form}");
        assert!(member().is_usable());
    }
    // The right nonce: applied, and seen by the very next pick.
    let form = format!("b=app&w={MEMBER}&w_status_D=1&nonce={nonce}");
    let (status, _, _) = send(&manager, "POST", "/balancer-manager", &form, LOCAL, &[]).await;
    assert_eq!(status, 200);
    assert!(member().flags().contains(StatusFlags::DISABLED));
    // Re-enabled with w_status_D=0, through the JSON API.
    let form = format!("b=app&w={MEMBER}&w_status_D=0&nonce={nonce}");
    let (status, body, _) =
        send(&manager, "POST", "/balancer-manager/api", &form, LOCAL, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ok\":true"));
    assert!(member().is_usable());
    // All or nothing: a valid w_lf with an invalid w_ls changes nothing.
    let form = format!("b=app&w={MEMBER}&w_lf=3&w_ls=100&nonce={nonce}");
    let (status, _, _) = send(&manager, "POST", "/balancer-manager", &form, LOCAL, &[]).await;
    assert_eq!(status, 400);
    assert_eq!(member().params().load_factor.lbf(), 100);
}

#[tokio::test]
async fn origin_and_access_rules() {
    let (store, manager) = setup(&[]);
    let nonce = manager.nonce("app").expect("managed");
    let form = format!("b=app&w={MEMBER}&w_status_D=1&nonce={nonce}");
    // Another site's form: refused.
    let (status, _, _) = send(
        &manager,
        "POST",
        "/balancer-manager",
        &form,
        LOCAL,
        &[("origin", "http://evil.example")],
    )
    .await;
    assert_eq!(status, 403);
    assert!(store.snapshot().members()[0].is_usable());
    // The page's own form (Referer names this server): applied.
    let (status, _, _) = send(
        &manager,
        "POST",
        "/balancer-manager",
        &form,
        LOCAL,
        &[("referer", "http://127.0.0.1:8080/balancer-manager?b=app")],
    )
    .await;
    assert_eq!(status, 200);
    // Not loopback, or no peer known: 403 by default.
    let (status, _, _) = send(
        &manager,
        "GET",
        "/balancer-manager",
        "",
        Some("10.1.2.3:5000"),
        &[],
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, _) = send(&manager, "GET", "/balancer-manager", "", None, &[]).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn nonce_none_turns_the_check_off() {
    let (store, manager) = setup(&[("nonce", "None")]);
    let form = format!("b=app&w={MEMBER}&w_status_D=1");
    let (status, _, _) = send(&manager, "POST", "/balancer-manager", &form, LOCAL, &[]).await;
    assert_eq!(status, 200);
    assert!(!store.snapshot().members()[0].is_usable());
}

#[tokio::test]
async fn adding_members_needs_growth() {
    let (_, manager) = setup(&[]);
    let nonce = manager.nonce("app").expect("managed");
    let form = format!("b=app&b_wyes=1&b_nwrkr=http%3A%2F%2F127.0.0.1%3A8003&nonce={nonce}");
    let (status, _, _) = send(&manager, "POST", "/balancer-manager", &form, LOCAL, &[]).await;
    assert_eq!(status, 400, "no growth: no free slot");
    let (store, manager) = setup(&[("growth", "1")]);
    let nonce = manager.nonce("app").expect("managed");
    let form = format!("b=app&b_wyes=1&b_nwrkr=http%3A%2F%2F127.0.0.1%3A8003&nonce={nonce}");
    let (status, _, _) = send(&manager, "POST", "/balancer-manager", &form, LOCAL, &[]).await;
    assert_eq!(status, 200);
    let snapshot = store.snapshot();
    assert_eq!(snapshot.members().len(), 3);
    assert!(
        snapshot.members()[2]
            .flags()
            .contains(StatusFlags::DISABLED),
        "starts disabled"
    );
    // The slot is used: a second add is refused.
    let form = format!("b=app&b_wyes=1&b_nwrkr=http%3A%2F%2F127.0.0.1%3A8004&nonce={nonce}");
    let (status, _, _) = send(&manager, "POST", "/balancer-manager", &form, LOCAL, &[]).await;
    assert_eq!(status, 400);
    drop(store);
}

#[tokio::test]
async fn what_is_shown_is_escaped() {
    let (_, manager) = setup(&[]);
    let nonce = manager.nonce("app").expect("managed");
    let form = format!("b=app&w={MEMBER}&w_wr=%3Cscript%3E&nonce={nonce}");
    let (status, _, _) = send(&manager, "POST", "/balancer-manager", &form, LOCAL, &[]).await;
    assert_eq!(status, 200);
    let (_, page, _) = send(&manager, "GET", "/balancer-manager", "", LOCAL, &[]).await;
    assert!(!page.contains("<script>"));
    assert!(page.contains("&lt;script&gt;"));
}

#[tokio::test]
async fn edits_persist_across_restarts() {
    let dir = std::env::temp_dir().join(format!("pb-persist-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let file = dir.join("state");
    let _ = std::fs::remove_file(&file);
    let build = |store: &Arc<BalancerStore>| {
        BalancerManager::builder("/balancer-manager")
            .balancer_with_health(Arc::clone(store), Arc::new(Report))
            .hc_expr_names(["ok234"])
            .persist(&file)
            .build()
    };
    let fresh = || {
        let mut params = BalancerParams::new("app");
        params.set("growth", "2").expect("valid");
        let members = ["http://127.0.0.1:8001", "http://127.0.0.1:8002"]
            .map(|u| MemberParams::new(u).expect("valid"));
        let now = tokio::time::Instant::now().into_std();
        Arc::new(BalancerStore::new(params, members, now).expect("valid"))
    };

    let store = fresh();
    let manager = build(&store);
    assert!(manager.persist_report().is_empty());
    let nonce = manager.nonce("app").expect("managed");
    for form in [
        format!("b=app&w={MEMBER}&w_status_D=1&w_lf=2.5&w_wr=node1&nonce={nonce}"),
        format!("b=app&b_lbm=bybusyness&b_ss=ROUTEID&nonce={nonce}"),
        format!("b=app&b_wyes=1&b_nwrkr=http%3A%2F%2F127.0.0.1%3A8003&nonce={nonce}"),
        format!(
            "b=app&w={MEMBER}&w_hm=GET11&w_hi=500&w_hu=%2Fready&w_hf=3&w_he=ok234&nonce={nonce}"
        ),
    ] {
        let (status, body, _) =
            send(&manager, "POST", "/balancer-manager/api", &form, LOCAL, &[]).await;
        assert_eq!(status, 200, "{body}");
    }
    assert!(file.exists());

    // A restart: the configuration's store is built afresh; the saved edits come back.
    let store = fresh();
    let manager = build(&store);
    assert_eq!(manager.persist_report(), [] as [String; 0]);
    let snapshot = store.snapshot();
    assert_eq!(snapshot.params().lb_method.name(), "bybusyness");
    assert_eq!(
        snapshot
            .params()
            .sticky_session
            .as_ref()
            .map(|s| s.cookie().to_owned()),
        Some("ROUTEID".to_owned())
    );
    let first = &snapshot.members()[0];
    assert!(first.flags().contains(StatusFlags::DISABLED));
    assert_eq!(first.params().load_factor.lbf(), 250);
    assert_eq!(first.route(), Some("node1"));
    assert_eq!(snapshot.members().len(), 3, "the added member is back");
    let hc = &first.params().hc;
    assert_eq!(hc.method, HcMethod::Get11);
    assert_eq!(hc.interval, Duration::from_millis(500));
    assert_eq!((hc.uri.as_str(), hc.passes, hc.fails), ("/ready", 1, 3));
    assert_eq!(hc.expr.as_ref().map(|e| e.as_str()), Some("ok234"));
    assert_eq!(
        snapshot.members()[1].params().hc,
        MemberParams::new("http://127.0.0.1:8002")
            .expect("valid")
            .hc,
        "untouched: the defaults"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_access_rule_is_a_replaceable_layer() {
    use proxy_balancer_manager::AccessLayer;
    let members = [MemberParams::new("http://127.0.0.1:8001").expect("valid")];
    let now = tokio::time::Instant::now().into_std();
    let store =
        Arc::new(BalancerStore::new(BalancerParams::new("app"), members, now).expect("valid"));
    // The manager admits everyone; the layer admits 10.0.0.0/8 only.
    let manager = BalancerManager::builder("/balancer-manager")
        .balancer(store)
        .allow_all()
        .build();
    let guarded = tower::ServiceBuilder::new()
        .layer(AccessLayer::networks([(
            "10.0.0.0".parse().expect("an address"),
            8,
        )]))
        .service(manager);
    for (peer, expected) in [
        ("10.1.2.3:1", 200),
        ("127.0.0.1:1", 403),
        ("192.0.2.1:1", 403),
    ] {
        let mut request = Request::get("/balancer-manager")
            .body(Full::new(Bytes::new()))
            .expect("valid");
        request
            .extensions_mut()
            .insert(PeerAddr(peer.parse().expect("an address")));
        let response = guarded.clone().oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), expected, "{peer}");
    }
}

#[tokio::test]
async fn health_settings_need_a_balancer_with_health_checks() {
    let (store, manager) = setup(&[]);
    let nonce = manager.nonce("app").expect("managed");
    let form = format!("b=app&w={MEMBER}&w_hm=GET&w_hi=500&nonce={nonce}");
    let (status, body, _) =
        send(&manager, "POST", "/balancer-manager/api", &form, LOCAL, &[]).await;
    assert_eq!(status, 400);
    assert!(
        body.contains("w_hm: this balancer has no health checks"),
        "{body}"
    );
    assert_eq!(
        store.snapshot().members()[0].params().hc.method,
        HcMethod::None
    );
    // All or nothing: the status change in the same form was not applied either.
    let form = format!("b=app&w={MEMBER}&w_status_D=1&w_hi=500&nonce={nonce}");
    let (status, _, _) = send(&manager, "POST", "/balancer-manager", &form, LOCAL, &[]).await;
    assert_eq!(status, 400);
    assert!(store.snapshot().members()[0].is_usable());
}

/// A fixed health report: member 0 passed, the others not probed yet.
#[derive(Debug)]
struct Report;

impl HealthReport for Report {
    fn last_passed(&self, member: MemberId) -> Option<bool> {
        (member.get() == 0).then_some(true)
    }
}

fn setup_health() -> (Arc<BalancerStore>, BalancerManager) {
    let mut probed = MemberParams::new("http://127.0.0.1:8001").expect("valid");
    probed.set("hcmethod", "GET").expect("valid");
    probed.set("hcexpr", "in_service").expect("valid");
    let members = [
        probed,
        MemberParams::new("http://127.0.0.1:8002").expect("valid"),
    ];
    let now = tokio::time::Instant::now().into_std();
    let store =
        Arc::new(BalancerStore::new(BalancerParams::new("app"), members, now).expect("valid"));
    let manager = BalancerManager::builder("/balancer-manager")
        .balancer_with_health(Arc::clone(&store), Arc::new(Report))
        .hc_expr_names(["in_service", "ok234"])
        .build();
    (store, manager)
}

#[tokio::test]
async fn health_settings_are_edited_in_the_store_and_shown_everywhere() {
    let (store, manager) = setup_health();
    let nonce = manager.nonce("app").expect("managed");
    // Shown from the store: hcexpr on the page, the XML and the JSON; the result from the report.
    let (_, page, _) = send(&manager, "GET", "/balancer-manager", "", LOCAL, &[]).await;
    assert!(page.contains("<td>GET</td><td>30000ms</td><td>1</td><td>1</td><td></td><td>in_service</td><td>Passed</td>"), "{page}");
    assert!(
        page.contains(
            "<td>NONE</td><td>30000ms</td><td>1</td><td>1</td><td></td><td></td><td>-</td>"
        ),
        "{page}"
    );
    let (_, xml, _) = send(&manager, "GET", "/balancer-manager?xml=1", "", LOCAL, &[]).await;
    assert!(
        xml.contains("<httpd:hcexpr>in_service</httpd:hcexpr>"),
        "{xml}"
    );
    let (_, json, _) = send(&manager, "GET", "/balancer-manager/api", "", LOCAL, &[]).await;
    assert!(
        json.contains(r#""expr":"in_service","last_passed":true"#),
        "{json}"
    );

    let form =
        format!("b=app&w={MEMBER}&w_hi=250&w_hu=%2Fready&w_hp=2&w_hf=3&w_he=ok234&nonce={nonce}");
    let (status, body, _) =
        send(&manager, "POST", "/balancer-manager/api", &form, LOCAL, &[]).await;
    assert_eq!(status, 200, "{body}");
    let hc = store.snapshot().members()[0].params().hc.clone();
    assert_eq!(hc.interval, Duration::from_millis(250));
    assert_eq!((hc.uri.as_str(), hc.passes, hc.fails), ("/ready", 2, 3));
    assert_eq!(hc.expr.as_ref().map(|e| e.as_str()), Some("ok234"));

    // An unknown expr name, or a bad value: refused with the reason, nothing changed.
    for (bad, reason) in [
        ("w_he=nope&w_hi=500", "unknown health check condition expr"),
        ("w_hi=99&w_hu=%2Fx", "must be at least 100 ms"),
        ("w_hm=POST", "w_hm"),
    ] {
        let form = format!("b=app&w={MEMBER}&{bad}&nonce={nonce}");
        let (status, body, _) =
            send(&manager, "POST", "/balancer-manager/api", &form, LOCAL, &[]).await;
        assert_eq!(status, 400, "{bad}");
        assert!(body.contains(reason), "{bad}: {body}");
        assert_eq!(store.snapshot().members()[0].params().hc, hc, "{bad}");
    }

    // A member without checks can be given some, as with mod_proxy_hcheck loaded.
    let form = format!("b=app&w=http%3A%2F%2F127.0.0.1%3A8002&w_hm=TCP&nonce={nonce}");
    let (status, _, _) = send(&manager, "POST", "/balancer-manager", &form, LOCAL, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        store.snapshot().members()[1].params().hc.method,
        HcMethod::Tcp
    );
}

#[tokio::test]
async fn unavailable_is_read_from_the_store() {
    let (store, manager) = setup(&[]);
    store.note_unavailable();
    store.note_unavailable();
    let (_, json, _) = send(&manager, "GET", "/balancer-manager/api", "", LOCAL, &[]).await;
    assert!(json.contains(r#""unavailable":2"#), "{json}");
    let (_, metrics, _) = send(&manager, "GET", "/balancer-manager/metrics", "", LOCAL, &[]).await;
    assert!(
        metrics.contains("proxy_balancer_unavailable_total{balancer=\"app\"} 2\n"),
        "{metrics}"
    );
}

/// A balancer to manage: its name, its `key=value` settings and its one member's URL.
type BalancerSpec<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

/// Two or more balancers under one manager, each with its own nonce settings.
fn setup_many(balancers: &[BalancerSpec<'_>]) -> (Vec<Arc<BalancerStore>>, BalancerManager) {
    let now = tokio::time::Instant::now().into_std();
    let mut builder = BalancerManager::builder("/balancer-manager");
    let mut stores = Vec::new();
    for (name, settings, member) in balancers {
        let mut params = BalancerParams::new(name);
        for (k, v) in *settings {
            params.set(k, v).expect("valid");
        }
        let members = [MemberParams::new(member).expect("valid")];
        let store = Arc::new(BalancerStore::new(params, members, now).expect("valid"));
        builder = builder.balancer(Arc::clone(&store));
        stores.push(store);
    }
    (stores, builder.build())
}

/// A nonce is the nonce of one balancer: the other managed balancer's nonce (generated or
/// fixed), or a balancer with checks off beside it, never lets a change through.
#[tokio::test]
async fn a_nonce_opens_only_its_own_balancer() {
    for (label, app, web) in [
        ("generated nonces", &[][..], &[][..]),
        (
            "fixed nonces",
            &[("nonce", "app-s3cret")][..],
            &[("nonce", "web-s3cret")][..],
        ),
    ] {
        let (stores, manager) = setup_many(&[
            ("app", app, "http://127.0.0.1:8001"),
            ("web", web, "http://127.0.0.1:8002"),
        ]);
        let disabled = |i: usize| {
            stores[i].snapshot().members()[0]
                .flags()
                .contains(StatusFlags::DISABLED)
        };
        let app_nonce = manager.nonce("app").expect("managed");
        let web_nonce = manager.nonce("web").expect("managed");
        assert!(!app_nonce.is_empty() && !web_nonce.is_empty(), "{label}");
        assert_ne!(
            app_nonce, web_nonce,
            "{label}: each balancer has its own nonce"
        );
        let targets = [
            (
                "app",
                0,
                "http%3A%2F%2F127.0.0.1%3A8001",
                &app_nonce,
                &web_nonce,
            ),
            (
                "web",
                1,
                "http%3A%2F%2F127.0.0.1%3A8002",
                &web_nonce,
                &app_nonce,
            ),
        ];
        // Swapped: each balancer's edit carries the other's nonce. Refused, nothing changed,
        // on the page's endpoint and on the JSON API.
        for (b, _, w, _, other) in targets {
            for mount in ["/balancer-manager", "/balancer-manager/api"] {
                let form = format!("b={b}&w={w}&w_status_D=1&nonce={other}");
                let (status, body, _) = send(&manager, "POST", mount, &form, LOCAL, &[]).await;
                assert_eq!(
                    status, 403,
                    "{label}: {b} with the other nonce at {mount}: {body}"
                );
                assert!(
                    !disabled(0) && !disabled(1),
                    "{label}: {b} changed by {mount}"
                );
            }
        }
        // Its own nonce: applied to that balancer only.
        for (b, i, w, own, _) in targets {
            let form = format!("b={b}&w={w}&w_status_D=1&nonce={own}");
            let (status, body, _) =
                send(&manager, "POST", "/balancer-manager", &form, LOCAL, &[]).await;
            assert_eq!(status, 200, "{label}: {b} with its own nonce: {body}");
            assert!(disabled(i), "{label}: {b} applied");
        }
    }

    // A balancer with checks off (nonce=None) beside one with a nonce opens only itself.
    let (stores, manager) = setup_many(&[
        ("open", &[("nonce", "None")], "http://127.0.0.1:8001"),
        ("app", &[], "http://127.0.0.1:8002"),
    ]);
    let w = "http%3A%2F%2F127.0.0.1%3A8002";
    for nonce in ["", "&nonce=", "&nonce=x"] {
        let form = format!("b=app&w={w}&w_status_D=1{nonce}");
        let (status, _, _) = send(&manager, "POST", "/balancer-manager", &form, LOCAL, &[]).await;
        assert_eq!(status, 403, "{form}");
        assert!(stores[1].snapshot().members()[0].is_usable(), "{form}");
    }
    let form = "b=open&w=http%3A%2F%2F127.0.0.1%3A8001&w_status_D=1";
    let (status, _, _) = send(&manager, "POST", "/balancer-manager", form, LOCAL, &[]).await;
    assert_eq!(status, 200);
    assert!(!stores[0].snapshot().members()[0].is_usable());
}

#[tokio::test]
async fn the_selection_is_shown_from_the_store_and_the_new_methods_are_chosen() {
    let (store, manager) = setup(&[
        ("lbmethod", "p2c"),
        ("ejectconsecutive", "1"),
        ("panic", "80"),
        ("retrybudget", "0"),
        ("retrybudgetmin", "0"),
    ]);
    let now = tokio::time::Instant::now().into_std();
    {
        let snap = store.snapshot();
        let outlier = &snap.params().outlier;
        assert!(snap.members()[0]
            .state()
            .note_outcome(true, outlier, now)
            .is_some());
    }
    assert!(!store.retry_budget().withdraw(now));
    let (_, json, _) = send(&manager, "GET", "/balancer-manager/api", "", LOCAL, &[]).await;
    for part in [
        r#""ejected":1,"panic_threshold":80,"in_panic":true"#,
        r#""retry_budget_percent":0,"retry_budget_min_per_sec":0,"retry_budget_window_ms":10000,"retries_allowed":0,"retries_refused":1}"#,
        r#""selection":{"ejections":1,"ejected_for_ms":"#,
    ] {
        assert!(json.contains(part), "missing {part} in {json}");
    }
    let (_, metrics, _) = send(&manager, "GET", "/balancer-manager/metrics", "", LOCAL, &[]).await;
    for line in [
        "proxy_balancer_retries_refused_total{balancer=\"app\"} 1\n",
        "proxy_balancer_in_panic{balancer=\"app\"} 1\n",
        "proxy_balancer_ejected_members{balancer=\"app\"} 1\n",
    ] {
        assert!(metrics.contains(line), "missing {line} in {metrics}");
    }
    // The form's lbmethod: p2c-ewma, then shown with its decay.
    let nonce = manager.nonce("app").expect("managed");
    let form = format!("b=app&b_lbm=p2c-ewma&nonce={nonce}");
    let (status, body, _) = send(&manager, "POST", "/balancer-manager", &form, LOCAL, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<option value=\"p2c-ewma\" selected>p2c-ewma</option>"));
    assert!(body.contains("<th>EWMA decay (ms)</th>"), "{body}");
    assert_eq!(
        store.snapshot().params().lb_method,
        proxy_balancer_core::LbMethodKind::P2cEwma
    );
}
