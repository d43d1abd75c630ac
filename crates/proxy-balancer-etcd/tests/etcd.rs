//! The engine against a real etcd on loopback (the system's `/usr/bin/etcd`, started by the
//! test kit with its own ports and data directory). Each test is SKIPPED (passes, saying so
//! on stderr) without etcd, unless `PROXY_BALANCER_REQUIRE_TEST_DEPS=1`: then it fails.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use proxy_balancer_core::{BalancerParams, BalancerStore, MemberParams, StatusFlags};
use proxy_balancer_etcd::EtcdShare;
use proxy_balancer_manager::edit::{parse_form, Edit};
use proxy_balancer_manager::shared::{SharedEditError, SharedEditRequest, SharedEdits};
use proxy_balancer_test::{etcd_binary_or_skip, wait_for, EtcdServer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

const M1: &str = "http://127.0.0.1:9001";
const M2: &str = "http://127.0.0.1:9002";
const M3: &str = "http://127.0.0.1:9003";
const PREFIX: &str = "/pb-test/";
const POLL: Duration = Duration::from_millis(1);

/// The balancer `app` as a configuration gives it: two members, `M2` with load factor 5.
fn store() -> Arc<BalancerStore> {
    let m1 = MemberParams::new(M1).expect("a URL");
    let mut m2 = MemberParams::new(M2).expect("a URL");
    m2.set("loadfactor", "5").expect("a load factor");
    Arc::new(
        BalancerStore::new(
            BalancerParams::new("app"),
            [m1, m2],
            Instant::now().into_std(),
        )
        .expect("a store"),
    )
}

async fn start(endpoint: &str, instance: &str, store: &Arc<BalancerStore>) -> EtcdShare {
    EtcdShare::builder([endpoint])
        .prefix(PREFIX)
        .instance(instance)
        .balancer(Arc::clone(store))
        .request_timeout(Duration::from_millis(500))
        .start()
        .await
        .expect("valid settings")
}

/// Two instances, `a` and `b`, each with its own store as the configuration gives it, on
/// one etcd.
async fn two_instances(
    etcd: &EtcdServer,
) -> (Arc<BalancerStore>, EtcdShare, Arc<BalancerStore>, EtcdShare) {
    let (store_a, store_b) = (store(), store());
    let a = start(&etcd.endpoint(), "a", &store_a).await;
    let b = start(&etcd.endpoint(), "b", &store_b).await;
    (store_a, a, store_b, b)
}

/// Instance `a` reaching etcd through a [`Relay`] the test can cut.
async fn behind_a_relay(etcd: &EtcdServer) -> (Relay, Arc<BalancerStore>, EtcdShare) {
    let target: SocketAddr = etcd
        .endpoint()
        .trim_start_matches("http://")
        .parse()
        .expect("an address");
    let relay = Relay::start(target).await;
    let store = store();
    let share = start(&format!("http://{}", relay.addr), "a", &store).await;
    (relay, store, share)
}

fn key(member: &str) -> String {
    format!("{PREFIX}app/member/{member}")
}

fn edit(form: &str) -> Edit {
    Edit::from_form(&parse_form(form.as_bytes()).expect("a form")).expect("a valid edit")
}

fn request(form: &str, by: &str) -> SharedEditRequest {
    SharedEditRequest::new("app", edit(form), by)
}

fn flags(store: &BalancerStore, url: &str) -> Option<StatusFlags> {
    store.snapshot().member_by_url(url).map(|m| m.flags())
}

fn has(store: &BalancerStore, url: &str, flag: StatusFlags) -> bool {
    flags(store, url).is_some_and(|f| f.contains(flag))
}

fn lf(store: &BalancerStore, url: &str) -> Option<String> {
    store
        .snapshot()
        .member_by_url(url)
        .map(|m| m.params().load_factor.to_string())
}

fn ls(store: &BalancerStore, url: &str) -> Option<u8> {
    store
        .snapshot()
        .member_by_url(url)
        .map(|m| m.params().lb_set.get())
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let i = (sorted.len() * p / 100).min(sorted.len().saturating_sub(1));
    sorted.get(i).copied().unwrap_or_default()
}

async fn etcd_or_skip(test: &str) -> Option<EtcdServer> {
    etcd_binary_or_skip(test)?;
    Some(EtcdServer::start().await.expect("etcd starts"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_in_etcd_is_applied_at_start_or_skipped_without_etcd() {
    let Some(etcd) = etcd_or_skip("the_state_in_etcd_is_applied_at_start").await else {
        return;
    };
    etcd.put(&key(M1), "w_status_D=1&by=ops")
        .await
        .expect("put");
    etcd.put(&key(M3), "w_lf=2").await.expect("put");
    etcd.put(&format!("{PREFIX}app/balancer"), "b_lbm=bybusyness&b_tmo=7")
        .await
        .expect("put");
    etcd.put(&format!("{PREFIX}other/balancer"), "b_lbm=bytraffic")
        .await
        .expect("put");
    let store = store();
    let share = start(&etcd.endpoint(), "a", &store).await;

    // `start` waited for the first read: applied before it returned.
    assert!(has(&store, M1, StatusFlags::DISABLED));
    assert_eq!(
        lf(&store, M3).as_deref(),
        Some("2"),
        "a member only etcd has"
    );
    assert!(store
        .snapshot()
        .member_by_url(M3)
        .is_some_and(|m| m.is_usable()));
    let snapshot = store.snapshot();
    assert_eq!(snapshot.params().lb_method.name(), "bybusyness");
    assert_eq!(snapshot.params().timeout, Duration::from_secs(7));
    let status = share.status();
    assert!(status.connected, "{status:?}");
    assert!(status.revision >= 4, "{status:?}");
    assert_eq!(status.instance, "a");
    assert!(status.backend.contains(&etcd.endpoint()), "{status:?}");
    let record = share.last_change("app", Some(M1)).expect("a record");
    assert_eq!(record.by, "ops");
    assert!(share.last_change("app", Some(M2)).is_none());
    assert!(share.problems().is_empty(), "{:?}", share.problems());
    share.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_reach_another_instance_within_a_second_or_skipped_without_etcd() {
    let Some(etcd) = etcd_or_skip("edits_reach_another_instance_within_a_second").await else {
        return;
    };
    let (store_a, a, store_b, b) = two_instances(&etcd).await;

    let mut local = Vec::new();
    let mut remote = Vec::new();
    for i in 0..100 {
        let set = i % 2 == 0;
        let form = format!("b=app&w={M1}&w_status_D={}", u8::from(set));
        let t0 = Instant::now();
        let submitted = a.submit(request(&form, "ops")).await.expect("taken");
        // Applied here before submit returned, not on the watch's echo.
        assert_eq!(has(&store_a, M1, StatusFlags::DISABLED), set);
        assert!(
            submitted.changed.iter().any(|c| c == "status"),
            "{submitted:?}"
        );
        local.push(t0.elapsed());
        wait_for(
            "the edit on the other instance",
            Duration::from_secs(1),
            POLL,
            || has(&store_b, M1, StatusFlags::DISABLED) == set,
        )
        .await;
        remote.push(t0.elapsed());
    }
    local.sort();
    remote.sort();
    let line = format!(
        "propagation over 100 edits: submit on A p50 {:?} p99 {:?}; put to applied on B p50 {:?} p99 {:?}",
        percentile(&local, 50),
        percentile(&local, 99),
        percentile(&remote, 50),
        percentile(&remote, 99),
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("{line}\n").as_bytes());
    assert!(percentile(&remote, 99) < Duration::from_secs(1), "{line}");

    // Who and when, on both instances.
    let record = b.last_change("app", Some(M1)).expect("a record");
    assert_eq!(record.by, "ops via a");
    assert!(record.changed.iter().any(|c| c == "status"));
    assert!(record.at <= SystemTime::now());
    assert_eq!(
        Some(record.revision),
        a.last_change("app", Some(M1)).map(|r| r.revision)
    );
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_edits_of_one_member_are_never_lost_or_skipped_without_etcd() {
    let Some(etcd) = etcd_or_skip("concurrent_edits_of_one_member_are_never_lost").await else {
        return;
    };
    let (store_a, a, store_b, b) = two_instances(&etcd).await;
    let (mut both, mut conflicts) = (0, 0);
    for round in 0..50u8 {
        let lf_form = format!("b=app&w={M1}&w_lf={}", round + 1);
        let ls_form = format!("b=app&w={M1}&w_ls={round}");
        let (ra, rb) = tokio::join!(
            a.submit(request(&lf_form, "alice")),
            b.submit(request(&ls_form, "bob"))
        );
        for r in [&ra, &rb] {
            match r {
                Ok(_) => {}
                Err(SharedEditError::Conflict { .. }) => conflicts += 1,
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        if ra.is_ok() && rb.is_ok() {
            both += 1;
        }
        // What was taken is in force on both instances: neither edit undid the other.
        let want_lf = ra.is_ok().then(|| (round + 1).to_string());
        let want_ls = rb.is_ok().then_some(round);
        for store in [&store_a, &store_b] {
            wait_for(
                "both edits on both instances",
                Duration::from_secs(1),
                POLL,
                || {
                    want_lf
                        .as_ref()
                        .map_or(true, |w| lf(store, M1).as_ref() == Some(w))
                        && want_ls.map_or(true, |w| ls(store, M1) == Some(w))
                },
            )
            .await;
        }
    }
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!(
            "CAS: 50 rounds of two concurrent edits of one member: both landed in {both}, \
             {conflicts} refused as conflicts, 0 lost; {} races lost and merged again\n",
            a.lost_races() + b.lost_races()
        )
        .as_bytes(),
    );
    assert!(both >= 25, "most rounds merge: {both} of 50");
    // Both reads go out before either write: the compare-and-swap was put to work.
    assert!(
        a.lost_races() + b.lost_races() > 0,
        "no race was lost: nothing was tested"
    );
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_killed_for_5_s_edits_refused_then_resumed_or_skipped_without_etcd() {
    let Some(mut etcd) = etcd_or_skip("etcd_killed_for_5_s").await else {
        return;
    };
    let (store_a, a, store_b, b) = two_instances(&etcd).await;
    a.submit(request(&format!("b=app&w={M1}&w_status_D=1"), "ops"))
        .await
        .expect("taken");
    wait_for("the edit on B", Duration::from_secs(1), POLL, || {
        has(&store_b, M1, StatusFlags::DISABLED)
    })
    .await;

    etcd.kill();
    let killed = Instant::now();
    for share in [&a, &b] {
        wait_for("the outage seen", Duration::from_secs(5), POLL, || {
            !share.status().connected
        })
        .await;
    }
    let seen = killed.elapsed();
    let status = a.status();
    assert!(status.last_error.is_some(), "{status:?}");
    assert!(
        status.since >= SystemTime::now() - Duration::from_secs(6),
        "{status:?}"
    );

    // Refused at once; the state seen last still in force.
    let t0 = Instant::now();
    let refused = a
        .submit(request(&format!("b=app&w={M1}&w_status_D=0"), "ops"))
        .await
        .expect_err("refused while etcd is down");
    let refusal = t0.elapsed();
    assert!(
        matches!(refused, SharedEditError::Unavailable { .. }),
        "{refused}"
    );
    assert_eq!(refused.status(), 503);
    assert!(refusal < Duration::from_millis(100), "{refusal:?}");
    assert!(has(&store_a, M1, StatusFlags::DISABLED));
    assert!(has(&store_b, M1, StatusFlags::DISABLED));

    tokio::time::sleep(Duration::from_secs(5).saturating_sub(killed.elapsed())).await;
    etcd.restart().await.expect("etcd restarts");
    let restarted = Instant::now();
    for share in [&a, &b] {
        wait_for("the watch resumed", Duration::from_secs(5), POLL, || {
            share.status().connected
        })
        .await;
    }
    let resumed = restarted.elapsed();
    assert!(a.status().last_error.is_none());
    a.submit(request(&format!("b=app&w={M1}&w_status_D=0"), "ops"))
        .await
        .expect("taken again");
    wait_for(
        "the edit after the outage on B",
        Duration::from_secs(1),
        POLL,
        || !has(&store_b, M1, StatusFlags::DISABLED),
    )
    .await;
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("etcd killed 5 s: outage seen after {seen:?}, an edit refused in {refusal:?}, watch resumed {resumed:?} after the restart\n").as_bytes(),
    );
    a.stop();
    b.stop();
}

/// A TCP relay to etcd that can be cut (its connections reset, new ones closed) and
/// restored: one instance loses etcd while etcd goes on.
struct Relay {
    addr: SocketAddr,
    open: Arc<AtomicBool>,
    conns: Arc<parking_lot::Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = listener.local_addr().expect("bound");
        let open = Arc::new(AtomicBool::new(true));
        let conns = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let (o, c) = (Arc::clone(&open), Arc::clone(&conns));
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !o.load(Ordering::Acquire) {
                    continue; // dropped: closed at once
                }
                c.lock().push(tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        Self {
            addr,
            open,
            conns,
            accept,
        }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::Release);
        for task in self.conns.lock().drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::Release);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_compaction_the_prefix_is_read_again_and_reconciled_or_skipped_without_etcd() {
    let Some(etcd) = etcd_or_skip("after_a_compaction_the_prefix_is_read_again").await else {
        return;
    };
    let (relay, store, share) = behind_a_relay(&etcd).await;
    etcd.put(&key(M1), "w_status_D=1").await.expect("put");
    etcd.put(&key(M3), "").await.expect("put");
    wait_for("the keys applied", Duration::from_secs(1), POLL, || {
        has(&store, M1, StatusFlags::DISABLED) && flags(&store, M3).is_some()
    })
    .await;

    relay.cut();
    wait_for("the instance cut off", Duration::from_secs(5), POLL, || {
        !share.status().connected
    })
    .await;
    // Meanwhile: M1's key deleted, M3's deleted, M2 stopped; the history compacted.
    etcd.delete(&key(M1)).await.expect("delete");
    etcd.delete(&key(M3)).await.expect("delete");
    let last = etcd.put(&key(M2), "w_status_S=1").await.expect("put");
    etcd.compact(last).await.expect("compact");
    assert!(
        has(&store, M1, StatusFlags::DISABLED),
        "the last state seen, while cut off"
    );

    relay.restore();
    wait_for(
        "reconciled after the re-read",
        Duration::from_secs(5),
        POLL,
        || {
            share.status().connected
                && !has(&store, M1, StatusFlags::DISABLED)
                && flags(&store, M3).is_none()
                && has(&store, M2, StatusFlags::STOPPED)
        },
    )
    .await;
    assert!(share.revision() >= last);
    assert_eq!(
        lf(&store, M2).as_deref(),
        Some("5"),
        "the configured load factor kept"
    );
    share.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_value_is_reported_and_ignored_whole_or_skipped_without_etcd() {
    let Some(etcd) = etcd_or_skip("a_bad_value_is_reported_and_ignored_whole").await else {
        return;
    };
    let store = store();
    let share = start(&etcd.endpoint(), "a", &store).await;
    etcd.put(&key(M1), "w_lf=3").await.expect("put");
    wait_for("the good value", Duration::from_secs(1), POLL, || {
        lf(&store, M1).as_deref() == Some("3")
    })
    .await;

    let bad = [
        (key(M1), "w_lf=300&w_status_D=1"),
        (key(M2), "w_bogus=1"),
        (key(M2), "w_status_C=1"),
        (format!("{PREFIX}app/member/not a url"), ""),
        (format!("{PREFIX}app/nonsense"), "x"),
        (format!("{PREFIX}app/balancer"), "b_lbm=roundrobin"),
        (format!("{PREFIX}app/lapse/{M1}"), "w_lf=2"),
    ];
    for (k, v) in &bad {
        etcd.put(k, v).await.expect("put");
    }
    wait_for(
        "the bad values reported",
        Duration::from_secs(1),
        POLL,
        || share.problems().len() == 6,
    )
    .await;
    let problems = share.problems();
    let m1 = problems
        .iter()
        .find(|p| p.key == key(M1))
        .expect("M1's value reported");
    assert!(m1.reason.contains("w_lf"), "{m1:?}");
    // Nothing of the bad value applied: not the flag beside the bad load factor.
    assert_eq!(lf(&store, M1).as_deref(), Some("3"));
    assert!(!has(&store, M1, StatusFlags::DISABLED));
    assert_eq!(lf(&store, M2).as_deref(), Some("5"));
    assert_eq!(store.snapshot().params().lb_method.name(), "byrequests");
    let status = share.status();
    assert!(status.connected);
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("ignored")),
        "{status:?}"
    );

    // A good value again clears the report.
    etcd.put(&key(M1), "w_lf=4").await.expect("put");
    wait_for("the good value again", Duration::from_secs(1), POLL, || {
        lf(&store, M1).as_deref() == Some("4") && !share.problems().iter().any(|p| p.key == key(M1))
    })
    .await;
    share.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_put_in_etcd_is_added_and_removed_with_its_key_or_skipped_without_etcd() {
    let Some(etcd) = etcd_or_skip("a_member_put_in_etcd_is_added").await else {
        return;
    };
    let (store_a, a, store_b, b) = two_instances(&etcd).await;
    etcd.put(&key(M3), "w_lf=2").await.expect("put");
    etcd.put(&key(M2), "w_lf=9&w_status_H=1")
        .await
        .expect("put");
    for store in [&store_a, &store_b] {
        wait_for("the member added", Duration::from_secs(1), POLL, || {
            store
                .snapshot()
                .member_by_url(M3)
                .is_some_and(|m| m.is_usable())
                && lf(store, M3).as_deref() == Some("2")
                && lf(store, M2).as_deref() == Some("9")
        })
        .await;
    }
    // Its requests in flight are kept across its removal.
    let snapshot = store_a.snapshot();
    let busy = snapshot.member_by_url(M3).expect("present").begin_request();
    etcd.delete(&key(M3)).await.expect("delete");
    etcd.delete(&key(M2)).await.expect("delete");
    for store in [&store_a, &store_b] {
        wait_for(
            "removed, and back to the configuration",
            Duration::from_secs(1),
            POLL,
            || {
                store.snapshot().member_by_url(M3).is_none()
                    && lf(store, M2).as_deref() == Some("5")
                    && !has(store, M2, StatusFlags::HOT_STANDBY)
            },
        )
        .await;
    }
    drop(busy);

    // Added through a manager: disabled, as Apache adds it.
    a.submit(request(
        "b=app&b_wyes=1&b_nwrkr=http://127.0.0.1:9004",
        "ops",
    ))
    .await
    .expect("taken");
    assert!(has(
        &store_a,
        "http://127.0.0.1:9004",
        StatusFlags::DISABLED
    ));
    wait_for("added on B", Duration::from_secs(1), POLL, || {
        has(&store_b, "http://127.0.0.1:9004", StatusFlags::DISABLED)
    })
    .await;
    let again = b
        .submit(request(
            "b=app&b_wyes=1&b_nwrkr=http://127.0.0.1:9004",
            "ops",
        ))
        .await
        .expect_err("added already");
    assert!(matches!(again, SharedEditError::Conflict { .. }), "{again}");
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_with_a_ttl_lapse_even_when_their_instance_is_gone_or_skipped_without_etcd() {
    let Some(etcd) = etcd_or_skip("flags_with_a_ttl_lapse").await else {
        return;
    };
    let (store_a, a, store_b, b) = two_instances(&etcd).await;
    let refused = a
        .submit(
            request(&format!("b=app&w={M1}&w_lf=2"), "ops").with_ttl(Some(Duration::from_secs(2))),
        )
        .await
        .expect_err("a TTL without flags set");
    assert!(
        matches!(refused, SharedEditError::Refused { .. }),
        "{refused}"
    );

    let t0 = Instant::now();
    let submitted = a
        .submit(
            request(&format!("b=app&w={M1}&w_status_N=1"), "ops")
                .with_ttl(Some(Duration::from_secs(2))),
        )
        .await
        .expect("taken");
    assert_eq!(submitted.changed, ["status"], "{submitted:?}");
    assert!(
        has(&store_a, M1, StatusFlags::DRAIN),
        "applied here at once"
    );
    wait_for("the drain on B", Duration::from_secs(1), POLL, || {
        has(&store_b, M1, StatusFlags::DRAIN)
    })
    .await;
    let record = b.last_change("app", Some(M1)).expect("a record");
    let expires = record.expires.expect("an expiry");
    let left = expires
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    assert!(left <= Duration::from_secs(3), "{record:?}");
    // The instance that set it is gone: the lease lapses in etcd all the same.
    a.stop();
    drop(a);
    wait_for("the drain lapsed", Duration::from_secs(6), POLL, || {
        !has(&store_b, M1, StatusFlags::DRAIN)
    })
    .await;
    let lapsed = t0.elapsed();
    assert!(lapsed >= Duration::from_millis(1500), "{lapsed:?}");
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("a 2 s drain lapsed on B after {lapsed:?}\n").as_bytes(),
    );
    assert!(b
        .last_change("app", Some(M1))
        .map_or(true, |r| r.expires.is_none()));
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_starts_without_waiting_and_ready_waits_for_the_first_read_or_skipped_without_etcd() {
    let Some(etcd) = etcd_or_skip("spawn_starts_without_waiting").await else {
        return;
    };
    etcd.put(&key(M1), "w_status_D=1").await.expect("put");
    let store = store();
    let share = EtcdShare::builder([etcd.endpoint()])
        .prefix(PREFIX)
        .balancer(Arc::clone(&store))
        .spawn()
        .expect("valid settings");
    assert!(
        share.ready(Duration::from_secs(5)).await,
        "{:?}",
        share.status()
    );
    assert!(has(&store, M1, StatusFlags::DISABLED));
    assert!(!share.instance().is_empty(), "a default instance name");
    share.stop();
    let refused = share
        .submit(request(&format!("b=app&w={M1}&w_lf=2"), "ops"))
        .await
        .expect_err("stopped");
    assert!(
        matches!(refused, SharedEditError::Unavailable { .. }),
        "{refused}"
    );
}

/// Bad settings are refused at once, with what to do; no etcd needed.
#[tokio::test(flavor = "current_thread")]
async fn bad_settings_are_refused_with_the_reason() {
    use proxy_balancer_etcd::EtcdError;

    let err = |b: proxy_balancer_etcd::EtcdShareBuilder| b.spawn().expect_err("refused");
    let none: [&str; 0] = [];
    assert_eq!(
        err(EtcdShare::builder(none).balancer(store())),
        EtcdError::NoEndpoints
    );
    for endpoint in [
        "https://127.0.0.1:2379",
        "127.0.0.1",
        "http://127.0.0.1:2379/v3",
        "ftp://x:1",
    ] {
        let e = err(EtcdShare::builder([endpoint]).balancer(store()));
        assert!(
            matches!(e, EtcdError::BadEndpoint { .. }),
            "{endpoint}: {e}"
        );
    }
    let https = err(EtcdShare::builder(["https://127.0.0.1:2379"]).balancer(store()));
    assert!(https.to_string().contains("TLS"), "{https}");
    for prefix in ["", "/", "/a\n"] {
        let e = err(EtcdShare::builder(["127.0.0.1:2379"])
            .prefix(prefix)
            .balancer(store()));
        assert!(matches!(e, EtcdError::BadPrefix { .. }), "{prefix:?}: {e}");
    }
    assert_eq!(
        err(EtcdShare::builder(["127.0.0.1:2379"])),
        EtcdError::NoBalancers
    );
    let twice = err(EtcdShare::builder(["127.0.0.1:2379"])
        .balancer(store())
        .balancer(store()));
    assert!(
        matches!(twice, EtcdError::DuplicateBalancer { .. }),
        "{twice}"
    );
    let e = err(EtcdShare::builder(["127.0.0.1:2379"])
        .instance("")
        .balancer(store()));
    assert!(matches!(e, EtcdError::BadInstance { .. }), "{e}");

    // A prefix without its final '/' gets one.
    let share = EtcdShare::builder(["127.0.0.1:9"])
        .prefix("/fleet")
        .balancer(store())
        .spawn()
        .expect("valid settings");
    assert_eq!(share.prefix(), "/fleet/");
    let debug = format!("{share:?}");
    assert!(
        debug.starts_with("EtcdShare { status: SharedStatus {"),
        "{debug}"
    );
    assert!(debug.contains("connected: false"), "{debug}");
    share.stop();
}

#[test]
fn spawn_outside_a_tokio_runtime_is_refused() {
    let err = EtcdShare::builder(["127.0.0.1:2379"])
        .balancer(store())
        .spawn()
        .expect_err("no runtime");
    assert_eq!(err, proxy_balancer_etcd::EtcdError::NoRuntime);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_while_cut_off_are_replayed_when_the_watch_resumes_or_skipped_without_etcd() {
    let Some(etcd) = etcd_or_skip("changes_made_while_cut_off_are_replayed").await else {
        return;
    };
    let (relay, store, share) = behind_a_relay(&etcd).await;
    etcd.put(&key(M1), "w_status_D=1").await.expect("put");
    wait_for("applied", Duration::from_secs(1), POLL, || {
        has(&store, M1, StatusFlags::DISABLED)
    })
    .await;
    relay.cut();
    wait_for("cut off", Duration::from_secs(5), POLL, || {
        !share.status().connected
    })
    .await;
    // 50 writes while cut off, the last ones undoing the first.
    for i in 0..25 {
        etcd.put(&key(M2), &format!("w_ls={i}")).await.expect("put");
        etcd.put(&key(M3), "").await.expect("put");
        etcd.delete(&key(M3)).await.expect("delete");
    }
    let last = etcd.delete(&key(M1)).await.expect("delete");
    relay.restore();
    wait_for("replayed", Duration::from_secs(5), POLL, || {
        share.status().connected
            && !has(&store, M1, StatusFlags::DISABLED)
            && ls(&store, M2) == Some(24)
            && flags(&store, M3).is_none()
    })
    .await;
    wait_for(
        "the revision caught up",
        Duration::from_secs(1),
        POLL,
        || share.revision() >= last,
    )
    .await;
    share.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_endpoints_a_dead_one_is_passed_over_or_skipped_without_etcd() {
    let Some(etcd) = etcd_or_skip("with_two_endpoints_a_dead_one_is_passed_over").await else {
        return;
    };
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        format!("http://{}", l.local_addr().expect("bound"))
    };
    etcd.put(&key(M1), "w_status_D=1").await.expect("put");
    let store = store();
    let share = EtcdShare::builder([dead, etcd.endpoint()])
        .prefix(PREFIX)
        .balancer(Arc::clone(&store))
        .request_timeout(Duration::from_millis(500))
        .start()
        .await
        .expect("valid settings");
    wait_for(
        "connected through the live endpoint",
        Duration::from_secs(5),
        POLL,
        || share.status().connected && has(&store, M1, StatusFlags::DISABLED),
    )
    .await;
    for i in 0..10 {
        share
            .submit(request(&format!("b=app&w={M1}&w_ls={i}"), "ops"))
            .await
            .expect("taken through the live endpoint");
    }
    share.stop();
}

/// An idle watch stays connected (6 s): etcd answers HTTP/2 pings sent more often than every 5 s
/// with GOAWAY `too_many_pings` (a 1 s keep-alive lost the watch after 4 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_watch_stays_connected_or_skipped_without_etcd() {
    let Some(etcd) = etcd_or_skip("an_idle_watch_stays_connected").await else {
        return;
    };
    let store = store();
    let share = start(&etcd.endpoint(), "a", &store).await;
    assert!(share.status().connected);
    let since = share.status().since;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(6) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let status = share.status();
        assert!(
            status.connected && status.since == since,
            "lost after {:?} idle: {status:?}",
            t0.elapsed()
        );
    }
    share.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_without_ttl_overrides_a_lapsing_flag_or_skipped_without_etcd() {
    let Some(etcd) = etcd_or_skip("an_edit_without_ttl_overrides_a_lapsing_flag").await else {
        return;
    };
    let (store_a, a, store_b, b) = two_instances(&etcd).await;
    let ttl = Some(Duration::from_secs(60));
    a.submit(request(&format!("b=app&w={M1}&w_status_N=1&w_status_H=1"), "ops").with_ttl(ttl))
        .await
        .expect("taken");
    wait_for(
        "both lapsing flags on B",
        Duration::from_secs(1),
        POLL,
        || has(&store_b, M1, StatusFlags::DRAIN) && has(&store_b, M1, StatusFlags::HOT_STANDBY),
    )
    .await;
    // B clears N for good: N goes at once; H still lapses later.
    let cleared = b
        .submit(request(&format!("b=app&w={M1}&w_status_N=0"), "ops"))
        .await
        .expect("taken");
    assert_eq!(cleared.changed, ["status"], "{cleared:?}");
    wait_for(
        "N cleared on A, H kept",
        Duration::from_secs(1),
        POLL,
        || !has(&store_a, M1, StatusFlags::DRAIN) && has(&store_a, M1, StatusFlags::HOT_STANDBY),
    )
    .await;
    let record = a.last_change("app", Some(M1)).expect("a record");
    assert!(record.expires.is_some(), "H still lapses: {record:?}");
    // And H cleared too: the lapse key is gone, nothing lapses any more.
    b.submit(request(&format!("b=app&w={M1}&w_status_H=0"), "ops"))
        .await
        .expect("taken");
    wait_for("H cleared on A", Duration::from_secs(1), POLL, || {
        !has(&store_a, M1, StatusFlags::HOT_STANDBY)
    })
    .await;
    let record = a.last_change("app", Some(M1)).expect("a record");
    assert_eq!((record.expires, record.by.as_str()), (None, "ops via b"));
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balancer_settings_are_shared_and_revert_with_their_key_or_skipped_without_etcd() {
    let Some(etcd) = etcd_or_skip("balancer_settings_are_shared").await else {
        return;
    };
    let (store_a, a, store_b, b) = two_instances(&etcd).await;
    let configured = store_a.snapshot().params().max_attempts;
    let submitted = a
        .submit(request(
            "b=app&b_lbm=bybusyness&b_max=3&b_ss=ROUTEID",
            "ops",
        ))
        .await
        .expect("taken");
    assert!(
        submitted.lb_reset,
        "a new lbmethod restarts the cycle: {submitted:?}"
    );
    for store in [&store_a, &store_b] {
        wait_for("the settings on both", Duration::from_secs(1), POLL, || {
            let s = store.snapshot();
            s.params().lb_method.name() == "bybusyness"
                && s.params().max_attempts == Some(3)
                && s.params().sticky_session.is_some()
        })
        .await;
    }
    assert_eq!(
        b.last_change("balancer://app", None).map(|r| r.by),
        Some("ops via a".to_owned())
    );
    etcd.delete(&format!("{PREFIX}app/balancer"))
        .await
        .expect("delete");
    for store in [&store_a, &store_b] {
        wait_for(
            "the configured settings back",
            Duration::from_secs(1),
            POLL,
            || {
                let s = store.snapshot();
                s.params().lb_method.name() == "byrequests"
                    && s.params().max_attempts == configured
                    && s.params().sticky_session.is_none()
            },
        )
        .await;
    }
    assert!(b.last_change("app", None).is_none());
    a.stop();
    b.stop();
}

/// A hung etcd (frozen: connections open, no answer) never hangs a manager's POST: the
/// submit is refused within twice the request timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_etcd_never_hangs_a_submit_or_skipped_without_etcd() {
    let Some(etcd) = etcd_or_skip("a_hung_etcd_never_hangs_a_submit").await else {
        return;
    };
    let store = store();
    let share = start(&etcd.endpoint(), "a", &store).await;
    etcd.pause().expect("SIGSTOP");
    let t0 = Instant::now();
    let refused = share
        .submit(request(&format!("b=app&w={M1}&w_status_D=1"), "ops"))
        .await
        .expect_err("no answer");
    let took = t0.elapsed();
    etcd.resume().expect("SIGCONT");
    assert!(
        matches!(refused, SharedEditError::Unavailable { .. }),
        "{refused}"
    );
    assert!(took < Duration::from_millis(1500), "{took:?}: {refused}");
    assert!(!has(&store, M1, StatusFlags::DISABLED), "nothing applied");
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("a hung etcd: a submit refused after {took:?} (request timeout 500 ms)\n")
            .as_bytes(),
    );
    // The timeout may have marked the link down: edits are refused at once until the
    // engine has reconnected (its backoff is at most 2 s), then taken.
    wait_for("the link back up", Duration::from_secs(5), POLL, || {
        share.status().connected
    })
    .await;
    share
        .submit(request(&format!("b=app&w={M1}&w_status_D=1"), "ops"))
        .await
        .expect("taken once etcd answers");
    assert!(has(&store, M1, StatusFlags::DISABLED));
    share.stop();
}

/// Waits (at most 3 s) until etcd holds `n` leases; returns how many it holds.
async fn leases_become(etcd: &EtcdServer, n: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let count = etcd.lease_count().await.expect("etcd answers");
        if count == n || Instant::now() >= deadline {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Each `w_ttl` edit grants a lease. The lease of a lapse key the next edit replaces, or
/// deletes, is revoked: otherwise every edit leaves one in etcd until its TTL (up to a
/// week), and an operator re-arming a drain accumulates thousands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_and_deleted_lapse_keys_leave_no_lease_behind_or_skipped_without_etcd() {
    let Some(etcd) = etcd_or_skip("replaced_and_deleted_lapse_keys_leave_no_lease_behind").await
    else {
        return;
    };
    let store_a = store();
    let a = start(&etcd.endpoint(), "a", &store_a).await;
    let ttl = Some(Duration::from_secs(600));
    for _ in 0..3 {
        a.submit(request(&format!("b=app&w={M1}&w_status_N=1"), "ops").with_ttl(ttl))
            .await
            .expect("taken");
    }
    assert!(has(&store_a, M1, StatusFlags::DRAIN));
    assert_eq!(leases_become(&etcd, 1).await, 1, "one lapse key, one lease");
    // An edit of another member's flags leaves M1's lapse (and its lease) alone.
    a.submit(request(&format!("b=app&w={M2}&w_status_D=1"), "ops"))
        .await
        .expect("taken");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(etcd.lease_count().await.expect("etcd answers"), 1);
    assert!(has(&store_a, M1, StatusFlags::DRAIN));
    // The drain cleared for good: its lapse key is deleted, and its lease revoked.
    a.submit(request(&format!("b=app&w={M1}&w_status_N=0"), "ops"))
        .await
        .expect("taken");
    assert!(!has(&store_a, M1, StatusFlags::DRAIN));
    assert_eq!(leases_become(&etcd, 0).await, 0, "no lease left");
    a.stop();
}

/// A member this instance had without etcd (here the configuration's; in a site, one a
/// `discover=dns` source added) and that another source then removed (DNS dropped it) is
/// not brought back by the next write of its key: its key holds the operator's state for
/// it, not a request to add it. Otherwise the fleet keeps sending traffic to a backend
/// DNS has dropped, and the discovery source skips it as foreign when it comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_removed_by_another_source_is_not_added_back_by_its_key_or_skipped_without_etcd() {
    let Some(etcd) = etcd_or_skip("a_member_removed_by_another_source").await else {
        return;
    };
    let store_a = store();
    let a = start(&etcd.endpoint(), "a", &store_a).await;
    a.submit(request(&format!("b=app&w={M2}&w_lf=3"), "ops"))
        .await
        .expect("taken");
    assert_eq!(lf(&store_a, M2).as_deref(), Some("3"));
    // The discovery source drops it.
    let id = store_a
        .snapshot()
        .member_by_url(M2)
        .map(|m| m.id())
        .expect("present");
    store_a.remove_member(id).expect("removed");
    // Another instance's edit of it (or a hand-written value) reaches this one.
    etcd.put(&key(M2), "w_lf=4").await.expect("put");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        store_a.snapshot().member_by_url(M2).is_none(),
        "a member DNS dropped came back through etcd"
    );
    // A member only etcd has is still added.
    etcd.put(&key(M3), "w_lf=2").await.expect("put");
    wait_for("M3 added", Duration::from_secs(1), POLL, || {
        store_a.snapshot().member_by_url(M3).is_some()
    })
    .await;
    a.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapse_returns_to_what_held_before_it_or_skipped_without_etcd() {
    let Some(etcd) = etcd_or_skip("a_lapse_returns_to_what_held_before_it").await else {
        return;
    };
    // M2 is configured disabled (`status=+D`); M1 is disabled for good through etcd.
    let configured = || {
        let m1 = MemberParams::new(M1).expect("a URL");
        let m2 = MemberParams::new(M2)
            .expect("a URL")
            .with_status(StatusFlags::DISABLED);
        Arc::new(
            BalancerStore::new(
                BalancerParams::new("app"),
                [m1, m2],
                Instant::now().into_std(),
            )
            .expect("a store"),
        )
    };
    let (store_a, store_b) = (configured(), configured());
    let a = start(&etcd.endpoint(), "a", &store_a).await;
    let b = start(&etcd.endpoint(), "b", &store_b).await;
    a.submit(request(&format!("b=app&w={M1}&w_status_D=1"), "ops"))
        .await
        .expect("taken");
    // Both then drained and disabled for 1 s.
    let ttl = Some(Duration::from_secs(1));
    for m in [M1, M2] {
        a.submit(request(&format!("b=app&w={m}&w_status_D=1&w_status_N=1"), "ops").with_ttl(ttl))
            .await
            .expect("taken");
    }
    wait_for("both drained on B", Duration::from_secs(1), POLL, || {
        has(&store_b, M1, StatusFlags::DRAIN) && has(&store_b, M2, StatusFlags::DRAIN)
    })
    .await;
    wait_for(
        "the drains lapsed on B",
        Duration::from_secs(8),
        POLL,
        || !has(&store_b, M1, StatusFlags::DRAIN) && !has(&store_b, M2, StatusFlags::DRAIN),
    )
    .await;
    // What held before the timed edit holds again: neither came back enabled.
    for (store, who) in [(&store_a, "A"), (&store_b, "B")] {
        assert!(
            has(store, M1, StatusFlags::DISABLED),
            "M1 disabled for good on {who}"
        );
        assert!(
            has(store, M2, StatusFlags::DISABLED),
            "M2 configured disabled on {who}"
        );
    }
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ttl_on_a_local_flag_is_refused_and_nothing_changes_or_skipped_without_etcd() {
    let Some(etcd) = etcd_or_skip("a_ttl_on_a_local_flag_is_refused").await else {
        return;
    };
    let store = store();
    let share = start(&etcd.endpoint(), "a", &store).await;
    let refused = share
        .submit(
            request(&format!("b=app&w={M1}&w_status_D=1&w_status_C=1"), "ops")
                .with_ttl(Some(Duration::from_secs(600))),
        )
        .await
        .expect_err("C cannot lapse");
    assert!(
        matches!(&refused, SharedEditError::Refused { reason } if reason.contains("w_status_C")),
        "{refused}"
    );
    assert_eq!(
        flags(&store, M1),
        Some(StatusFlags::EMPTY),
        "nothing applied"
    );
    share.stop();
}
