//! The manager with a shared store (`BalancerManagerBuilder::shared`), against an in-memory
//! `SharedEdits` that applies edits to the store as a real one does, and can be made
//! unavailable or conflicting: what is checked before the store is asked, who is recorded,
//! the answers for each outcome, what the page, XML, JSON and metrics show, and `w_ttl`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use parking_lot::Mutex;
use proxy_balancer_core::{BalancerParams, BalancerStore, MemberParams};
use proxy_balancer_manager::edit::GrowthSlots;
use proxy_balancer_manager::shared::{
    BoxFuture, ChangeRecord, SharedEditError, SharedEditRequest, SharedEdits, SharedStatus,
    Submitted,
};
use proxy_balancer_manager::{BalancerManager, LocalAddr, PeerAddr, RemoteUser};
use tower::ServiceExt;

/// What the fake store does with the next edit.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Take,
    Unavailable,
    Uncertain,
    Conflict,
}

/// A shared store in memory: applies each edit to the one store it shares, keeps the last
/// change of each member, counts revisions.
struct Fake {
    store: Arc<BalancerStore>,
    slots: GrowthSlots,
    mode: Mutex<Mode>,
    revision: Mutex<u64>,
    requests: Mutex<Vec<SharedEditRequest>>,
    changes: Mutex<Vec<(Option<String>, ChangeRecord)>>,
}

impl SharedEdits for Fake {
    fn submit(
        &self,
        request: SharedEditRequest,
    ) -> BoxFuture<'_, Result<Submitted, SharedEditError>> {
        Box::pin(async move {
            self.requests.lock().push(request.clone());
            match *self.mode.lock() {
                Mode::Unavailable => {
                    return Err(SharedEditError::Unavailable {
                        reason: "etcd at http://127.0.0.1:1 did not answer".to_owned(),
                    })
                }
                Mode::Uncertain => {
                    return Err(SharedEditError::Uncertain {
                        reason: "deadline exceeded".to_owned(),
                    })
                }
                Mode::Conflict => {
                    return Err(SharedEditError::Conflict {
                        reason: "member changed by another instance".to_owned(),
                    })
                }
                Mode::Take => {}
            }
            let applied = request.edit.apply(&self.store, self.slots).map_err(|e| {
                SharedEditError::Refused {
                    reason: e.to_string(),
                }
            })?;
            let mut revision = self.revision.lock();
            *revision += 1;
            let changed: Vec<String> = applied.changed.iter().map(|c| (*c).to_owned()).collect();
            let mut record = ChangeRecord::new(
                format!("{} via a", request.by),
                SystemTime::now(),
                *revision,
            );
            record.changed.clone_from(&changed);
            record.expires = request.ttl.map(|t| SystemTime::now() + t);
            self.changes
                .lock()
                .push((request.edit.member_url.clone(), record));
            // As etcd's engine does, a flag with a TTL is not listed in `changed`: the
            // manager's answer still says `status` changed.
            let listed = if request.ttl.is_some() {
                Vec::new()
            } else {
                changed
            };
            Ok(Submitted::new(*revision, listed, applied.lb_reset))
        })
    }

    fn status(&self) -> SharedStatus {
        let mut status = SharedStatus::new(
            "etcd http://127.0.0.1:2379 prefix /proxy-balancer/",
            "a",
            *self.mode.lock() != Mode::Unavailable,
        );
        status.revision = *self.revision.lock();
        if *self.mode.lock() == Mode::Unavailable {
            status.last_error = Some("connection refused".to_owned());
        }
        status
    }

    fn last_change(&self, _balancer: &str, member: Option<&str>) -> Option<ChangeRecord> {
        self.changes
            .lock()
            .iter()
            .rev()
            .find(|(m, _)| m.as_deref() == member)
            .map(|(_, c)| c.clone())
    }
}

fn setup() -> (Arc<BalancerStore>, Arc<Fake>, BalancerManager) {
    let mut params = BalancerParams::new("app");
    params.set("nonce", "n").expect("valid");
    params.set("growth", "1").expect("valid");
    let members = ["http://127.0.0.1:8001", "http://127.0.0.1:8002"]
        .map(|u| MemberParams::new(u).expect("valid"));
    let now = tokio::time::Instant::now().into_std();
    let store = Arc::new(BalancerStore::new(params, members, now).expect("valid"));
    let fake = Arc::new(Fake {
        store: Arc::clone(&store),
        slots: GrowthSlots::of(&store),
        mode: Mutex::new(Mode::Take),
        revision: Mutex::new(0),
        requests: Mutex::new(Vec::new()),
        changes: Mutex::new(Vec::new()),
    });
    let manager = BalancerManager::builder("/balancer-manager")
        .balancer(Arc::clone(&store))
        .shared(Arc::clone(&fake) as Arc<dyn SharedEdits>)
        .build();
    (store, fake, manager)
}

const LISTEN: &str = "127.0.0.1:8080";

async fn send(
    manager: &BalancerManager,
    method: &str,
    uri: &str,
    body: &str,
    user: Option<&str>,
) -> (StatusCode, String) {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, LISTEN)
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("valid");
    let local: SocketAddr = LISTEN.parse().expect("an address");
    request.extensions_mut().insert(LocalAddr(local));
    let peer: SocketAddr = "127.0.0.1:50000".parse().expect("an address");
    request.extensions_mut().insert(PeerAddr(peer));
    if let Some(user) = user {
        request.extensions_mut().insert(RemoteUser(user.to_owned()));
    }
    let response = manager.clone().oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let text =
        String::from_utf8_lossy(&body.collect().await.expect("full").to_bytes()).into_owned();
    (parts.status, text)
}

const DISABLE: &str = "b=app&w=http%3A%2F%2F127.0.0.1%3A8001&nonce=n&w_status_D=1";

#[tokio::test]
async fn an_edit_goes_through_the_shared_store_with_who_asked() {
    let (store, fake, manager) = setup();
    assert!(manager.is_shared());
    let (status, body) = send(
        &manager,
        "POST",
        "/balancer-manager/api",
        DISABLE,
        Some("alice"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        r#"{"ok":true,"applied":{"balancer":"app","member":"http://127.0.0.1:8001","changed":["status"],"flags":{"before":"","after":"D"},"added":null,"lb_reset":false,"revision":1,"ttl_secs":null}}"#
    );
    assert!(!store.snapshot().members()[0].is_usable());
    let requests = fake.requests.lock().clone();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].balancer, "app");
    assert_eq!(requests[0].by, "alice@127.0.0.1");
    assert_eq!(requests[0].ttl, None);
    assert_eq!(manager.changes(), 1);

    // Without a user: the address alone. The page says where it went.
    let enable = "b=app&w=http%3A%2F%2F127.0.0.1%3A8001&nonce=n&w_status_D=0";
    let (status, page) = send(&manager, "POST", "/balancer-manager", enable, None).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("changes applied through the shared store (revision 2)"),
        "{page}"
    );
    assert_eq!(fake.requests.lock()[1].by, "127.0.0.1");
    // The member's last change, on the page, in the XML and the JSON.
    assert!(page.contains("<th>Last change</th>"), "{page}");
    assert!(page.contains("status by 127.0.0.1 via a at "), "{page}");
    assert!(page.contains("Shared edits: etcd http://127.0.0.1:2379 prefix /proxy-balancer/ (instance a): connected since "), "{page}");
    assert!(!page.contains("shared-down"));
    let (_, xml) = send(&manager, "GET", "/balancer-manager?xml=1", "", None).await;
    assert!(
        xml.contains("<httpd:changedby>127.0.0.1 via a</httpd:changedby>"),
        "{xml}"
    );
    assert!(
        xml.contains("<httpd:connected>On</httpd:connected>"),
        "{xml}"
    );
    assert!(xml.contains("<httpd:revision>2</httpd:revision>"), "{xml}");
    let (_, json) = send(&manager, "GET", "/balancer-manager/api", "", None).await;
    let doc: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(doc["shared"]["connected"], true);
    assert_eq!(doc["shared"]["instance"], "a");
    assert_eq!(doc["shared"]["revision"], 2);
    let member = &doc["balancers"][0]["members"][0];
    assert_eq!(member["last_change"]["by"], "127.0.0.1 via a");
    assert_eq!(member["last_change"]["changed"][0], "status");
    assert_eq!(member["last_change"]["revision"], 2);
    assert!(doc["balancers"][0]["members"][1]["last_change"].is_null());
    // A change of the balancer's own settings is shown under its table, and in the JSON.
    let (status, _) = send(
        &manager,
        "POST",
        "/balancer-manager/api",
        "b=app&nonce=n&b_lbm=bybusyness",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (_, page) = send(&manager, "GET", "/balancer-manager", "", None).await;
    assert!(
        page.contains("<p>Last change of the balancer's settings: lbmethod by 127.0.0.1 via a at "),
        "{page}"
    );
    let (_, json) = send(&manager, "GET", "/balancer-manager/api", "", None).await;
    let doc: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(doc["balancers"][0]["last_change"]["changed"][0], "lbmethod");
    let (_, metrics) = send(&manager, "GET", "/balancer-manager/metrics", "", None).await;
    assert!(metrics.contains("proxy_balancer_shared_connected{backend=\"etcd http://127.0.0.1:2379 prefix /proxy-balancer/\",instance=\"a\"} 1\n"), "{metrics}");
    assert!(
        metrics.contains("proxy_balancer_shared_revision{"),
        "{metrics}"
    );
}

#[tokio::test]
async fn refused_before_the_store_is_asked_when_this_instance_would_refuse() {
    let (_, fake, manager) = setup();
    for (body, status, kind) in [
        (
            "b=app&w=http%3A%2F%2F127.0.0.1%3A9&nonce=n&w_status_D=1",
            404,
            "unknown_member",
        ),
        (
            "b=app&w=http%3A%2F%2F127.0.0.1%3A8001&nonce=bad&w_status_D=1",
            403,
            "bad_nonce",
        ),
        (
            "b=app&nonce=n&b_wyes=1&b_nwrkr=http%3A%2F%2F127.0.0.1%3A8002",
            400,
            "duplicate_member",
        ),
        (
            "b=app&w=http%3A%2F%2F127.0.0.1%3A8001&nonce=n&w_lf=0",
            400,
            "invalid_value",
        ),
    ] {
        let (got, text) = send(&manager, "POST", "/balancer-manager/api", body, None).await;
        assert_eq!(got.as_u16(), status, "{body}: {text}");
        assert!(
            text.contains(&format!("\"kind\":\"{kind}\"")),
            "{body}: {text}"
        );
    }
    assert!(fake.requests.lock().is_empty(), "nothing reached the store");
}

#[tokio::test]
async fn unavailable_is_503_with_a_clear_message_and_a_banner() {
    let (store, fake, manager) = setup();
    *fake.mode.lock() = Mode::Unavailable;
    let (status, body) = send(&manager, "POST", "/balancer-manager/api", DISABLE, None).await;
    assert_eq!(status, 503, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["error"]["kind"], "store_unavailable");
    let message = doc["error"]["message"].as_str().expect("a message");
    assert!(
        message.starts_with("the shared store is unavailable: etcd at http://127.0.0.1:1 did not answer; the edit was not made"),
        "{message}"
    );
    assert!(store.snapshot().members()[0].is_usable(), "nothing changed");
    assert_eq!(manager.changes(), 0);
    // The page: the message, and the banner.
    let (status, page) = send(&manager, "POST", "/balancer-manager", DISABLE, None).await;
    assert_eq!(status, 503);
    assert!(page.contains("the shared store is unavailable"), "{page}");
    assert!(
        page.contains("<div id=\"shared-down\" role=\"alert\""),
        "{page}"
    );
    assert!(page.contains("Last error: connection refused"), "{page}");
    let (_, page) = send(&manager, "GET", "/balancer-manager", "", None).await;
    assert!(
        page.contains("The shared store is unreachable (since "),
        "{page}"
    );
    let (_, metrics) = send(&manager, "GET", "/balancer-manager/metrics", "", None).await;
    assert!(metrics.contains("instance=\"a\"} 0\n"), "{metrics}");
}

#[tokio::test]
async fn a_conflict_is_409() {
    let (store, fake, manager) = setup();
    *fake.mode.lock() = Mode::Conflict;
    let (status, body) = send(&manager, "POST", "/balancer-manager/api", DISABLE, None).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("\"kind\":\"conflict\""), "{body}");
    assert!(
        body.contains("conflicting edit: member changed by another instance"),
        "{body}"
    );
    assert!(store.snapshot().members()[0].is_usable());
}

#[tokio::test]
async fn an_unconfirmed_write_is_504_and_says_it_may_have_landed() {
    let (_store, fake, manager) = setup();
    *fake.mode.lock() = Mode::Uncertain;
    let (status, body) = send(&manager, "POST", "/balancer-manager/api", DISABLE, None).await;
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("\"kind\":\"store_uncertain\""), "{body}");
    assert!(body.contains("it may still have been made"), "{body}");
    assert!(!body.contains("was not made"), "{body}");
}

#[tokio::test]
async fn w_ttl_reaches_the_store_and_is_shown() {
    let (_, fake, manager) = setup();
    let body = format!("{DISABLE}&w_ttl=600");
    let (status, text) = send(&manager, "POST", "/balancer-manager/api", &body, None).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"ttl_secs\":600"), "{text}");
    assert!(text.contains("\"changed\":[\"status\"]"), "{text}");
    assert_eq!(fake.requests.lock()[0].ttl, Some(Duration::from_secs(600)));
    assert_eq!(
        fake.requests.lock()[0].edit.ttl,
        Some(Duration::from_secs(600))
    );
    let (_, page) = send(
        &manager,
        "GET",
        "/balancer-manager?b=app&w=http%3A%2F%2F127.0.0.1%3A8001",
        "",
        None,
    )
    .await;
    assert!(page.contains("; lapses "), "{page}");
    assert!(
        page.contains("name=\"w_ttl\""),
        "the member form offers it: {page}"
    );
    for (ttl, why) in [
        ("0", "must be from 1 to 604800 seconds"),
        ("604801", "must be from 1 to 604800 seconds"),
        ("soon", "must be a whole number of seconds"),
    ] {
        let body = format!("{DISABLE}&w_ttl={ttl}");
        let (status, text) = send(&manager, "POST", "/balancer-manager/api", &body, None).await;
        assert_eq!(status, 400, "{ttl}: {text}");
        assert!(text.contains(why), "{ttl}: {text}");
        assert!(text.contains("\"param\":\"w_ttl\""), "{ttl}: {text}");
    }
    // Nothing set: nothing to lapse.
    let body = "b=app&w=http%3A%2F%2F127.0.0.1%3A8001&nonce=n&w_status_D=0&w_ttl=60";
    let (status, text) = send(&manager, "POST", "/balancer-manager/api", body, None).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("give it with a w_status_X=1"), "{text}");
}

#[tokio::test]
async fn without_a_shared_store_w_ttl_is_refused_and_nothing_changes() {
    let mut params = BalancerParams::new("app");
    params.set("nonce", "n").expect("valid");
    let now = tokio::time::Instant::now().into_std();
    let store = Arc::new(
        BalancerStore::new(
            params,
            [MemberParams::new("http://127.0.0.1:8001").expect("valid")],
            now,
        )
        .expect("valid"),
    );
    let manager = BalancerManager::builder("/balancer-manager")
        .balancer(Arc::clone(&store))
        .build();
    assert!(!manager.is_shared());
    let body = format!("{DISABLE}&w_ttl=600");
    let (status, text) = send(&manager, "POST", "/balancer-manager/api", &body, None).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("\"kind\":\"needs_shared_store\""), "{text}");
    assert!(text.contains("w_ttl needs a shared store"), "{text}");
    assert!(store.snapshot().members()[0].is_usable());
    // The page and the JSON are as without sharing: no shared key, no last-change column.
    let (_, json) = send(&manager, "GET", "/balancer-manager/api", "", None).await;
    assert!(!json.contains("\"shared\""), "{json}");
    assert!(!json.contains("last_change"), "{json}");
    let (_, page) = send(
        &manager,
        "GET",
        "/balancer-manager?b=app&w=http%3A%2F%2F127.0.0.1%3A8001",
        "",
        None,
    )
    .await;
    assert!(
        !page.contains("Last change") && !page.contains("w_ttl"),
        "{page}"
    );
}

#[tokio::test]
async fn persist_is_not_used_with_a_shared_store() {
    let dir = std::env::temp_dir().join(format!("pb-shared-persist-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join("state");
    std::fs::write(
        &file,
        "b=app&w=http%3A%2F%2F127.0.0.1%3A8001&w_status_D=1\n",
    )
    .expect("written");
    let (store, fake, _) = setup();
    let manager = BalancerManager::builder("/balancer-manager")
        .balancer(Arc::clone(&store))
        .persist(&file)
        .shared(fake as Arc<dyn SharedEdits>)
        .build();
    assert!(
        store.snapshot().members()[0].is_usable(),
        "the file was not applied"
    );
    assert_eq!(manager.persist_report().len(), 1);
    assert!(
        manager.persist_report()[0].starts_with("BalancerPersist is not used with a shared store")
    );
    let (status, _) = send(&manager, "POST", "/balancer-manager/api", DISABLE, None).await;
    assert_eq!(status, 200);
    let kept = std::fs::read_to_string(&file).expect("still there");
    assert_eq!(
        kept, "b=app&w=http%3A%2F%2F127.0.0.1%3A8001&w_status_D=1\n",
        "not rewritten"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Who made a change is text from outside (an authentication layer's user, a value written
/// in etcd by hand): a control character in it must not make the XML ill-formed (XML 1.0
/// allows none but tab, LF and CR, not even as `&#1;`), nor reach the page raw.
#[tokio::test]
async fn control_characters_in_who_do_not_break_the_xml() {
    let (_, _, manager) = setup();
    let (status, body) = send(
        &manager,
        "POST",
        "/balancer-manager/api",
        DISABLE,
        Some("mal\u{1}lory\u{0}\u{1b}[31m\u{fffe}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, xml) = send(&manager, "GET", "/balancer-manager?xml=1", "", None).await;
    let bad = |c: char| {
        (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{fffe}' | '\u{ffff}')
    };
    assert!(!xml.contains(bad), "{xml:?}");
    assert!(
        xml.contains("<httpd:changedby>mal\u{fffd}lory\u{fffd}\u{fffd}[31m\u{fffd}@127.0.0.1 via a</httpd:changedby>"),
        "{xml}"
    );
    let (_, page) = send(&manager, "GET", "/balancer-manager", "", None).await;
    assert!(!page.contains(bad), "{page:?}");
}
