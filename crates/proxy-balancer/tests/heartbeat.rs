//! The heartbeat lbmethod fed by real mod_heartbeat datagrams over loopback UDP, by the
//! report API, and the listener's lifetime.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use proxy_balancer::heartbeat::{report, HeartbeatListener, HeartbeatStats};
use proxy_balancer::{BalancerParams, BalancerStore, MemberParams, PickRequest};
use tokio::net::UdpSocket;

/// Every wait in these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(10);

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

fn heartbeat_store(urls: &[&str]) -> Arc<BalancerStore> {
    let mut params = BalancerParams::new("hb");
    params.set("lbmethod", "heartbeat").expect("supported");
    let members = urls
        .iter()
        .map(|u| MemberParams::new(u).expect("valid url"));
    Arc::new(BalancerStore::new(params, members, now()).expect("valid store"))
}

/// Counts picks per member URL.
fn pick_counts(store: &BalancerStore, n: usize) -> Vec<(String, usize)> {
    let mut counts: Vec<(String, usize)> = store
        .snapshot()
        .members()
        .iter()
        .map(|m| (m.url().to_owned(), 0))
        .collect();
    for _ in 0..n {
        let picked = store
            .pick(&PickRequest::new(), now())
            .expect("a usable member");
        let url = picked.member().url();
        counts
            .iter_mut()
            .find(|(u, _)| u == url)
            .expect("a member of the snapshot")
            .1 += 1;
    }
    counts
}

async fn sender() -> UdpSocket {
    UdpSocket::bind((LOCALHOST, 0))
        .await
        .expect("loopback socket")
}

/// Waits (bounded) until the listener's stats satisfy `done`.
async fn wait_for(listener: &HeartbeatListener, done: impl Fn(&HeartbeatStats) -> bool) {
    tokio::time::timeout(BOUND, async {
        for _ in 0..2_000 {
            if done(&listener.stats()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("stats never got there: {:?}", listener.stats());
    })
    .await
    .expect("bounded wait");
}

#[tokio::test]
async fn datagrams_and_api_reports_drive_picks() {
    let store = heartbeat_store(&[
        "http://127.0.0.1:18081",
        "http://127.0.0.1:18082",
        "http://backend-3:8080",
    ]);
    let listener = HeartbeatListener::builder((LOCALHOST, 0).into())
        .port_for(LOCALHOST, 18082)
        .bind(Arc::clone(&store))
        .await
        .unwrap();
    let to = listener.local_addr();
    let tx = sender().await;
    // Member 1 says which port it serves; member 2 does not, as Apache's mod_heartbeat,
    // and is found through the port map; member 3 is a host name and reports by API.
    tx.send_to(b"v=1&ready=10&busy=0&port=18081", to)
        .await
        .unwrap();
    tx.send_to(b"busy=5&ready=30&v=1", to).await.unwrap();
    assert!(report(&store, "http://backend-3:8080", 0, 50).is_some());
    wait_for(&listener, |s| s.applied == 2).await;

    let counts = pick_counts(&store, 400);
    assert_eq!(
        counts.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
        [100, 300, 0],
        "ready 10 : 30 : 0 (starting up)"
    );
    let snapshot = store.snapshot();
    let second = snapshot.members()[1].state().load_report().unwrap();
    assert_eq!((second.ready(), second.busy()), (30, 5));

    // New reports change the weights at once.
    tx.send_to(b"v=1&ready=20&busy=0&port=18081", to)
        .await
        .unwrap();
    tx.send_to(b"v=1&ready=0&busy=35", to).await.unwrap();
    wait_for(&listener, |s| s.applied == 4).await;
    assert_eq!(
        pick_counts(&store, 10)
            .iter()
            .map(|(_, n)| *n)
            .collect::<Vec<_>>(),
        [10, 0, 0]
    );
    listener.shutdown().await;
}

#[tokio::test]
async fn bad_datagrams_are_ignored() {
    let store = heartbeat_store(&["http://127.0.0.1:18081", "http://127.0.0.1:18082"]);
    let listener = HeartbeatListener::bind((LOCALHOST, 0).into(), Arc::clone(&store))
        .await
        .unwrap();
    let to = listener.local_addr();
    let tx = sender().await;
    let long = vec![b'x'; 1500];
    let garbage: [&[u8]; 7] = [
        b"",
        b"hello",
        b"v=1&ready=1",
        b"v=2&ready=1&busy=0",
        b"v=1&ready=many&busy=0",
        b"\xff\x00\xfe&ready=1&busy=1",
        &long,
    ];
    for g in garbage {
        tx.send_to(g, to).await.unwrap();
    }
    // Valid, but for a port no member has.
    tx.send_to(b"v=1&ready=5&busy=0&port=9", to).await.unwrap();
    wait_for(&listener, |s| s.rejected == 7 && s.unmatched == 1).await;
    assert!(store
        .snapshot()
        .members()
        .iter()
        .all(|m| m.state().load_report().is_none()));

    // Still listening, and without a port (nor a port map) every member at the sender's
    // address takes the report.
    tx.send_to(b"v=1&ready=5&busy=1", to).await.unwrap();
    wait_for(&listener, |s| s.applied == 1).await;
    assert!(store
        .snapshot()
        .members()
        .iter()
        .all(|m| m.state().load_report().map(|r| r.ready()) == Some(5)));
    let stats = listener.stats();
    assert_eq!(
        (
            stats.received,
            stats.applied,
            stats.rejected,
            stats.unmatched
        ),
        (9, 1, 7, 1)
    );
}

#[tokio::test]
async fn listener_stops_on_drop_and_shutdown() {
    let store = heartbeat_store(&["http://127.0.0.1:18081"]);

    // Shutdown waits for the task, which closes the socket: the port can be bound again.
    let listener = HeartbeatListener::bind((LOCALHOST, 0).into(), Arc::clone(&store))
        .await
        .unwrap();
    let addr = listener.local_addr();
    listener.shutdown().await;
    let rebound = UdpSocket::bind(addr).await.expect("socket closed");
    drop(rebound);

    // Dropping the listener ends the task too (soon after: it is aborted).
    let listener = HeartbeatListener::bind(addr, Arc::clone(&store))
        .await
        .unwrap();
    drop(listener);
    let rebound: UdpSocket = tokio::time::timeout(BOUND, async {
        for _ in 0..2_000 {
            if let Ok(s) = UdpSocket::bind(addr).await {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the dropped listener kept its socket");
    })
    .await
    .expect("bounded wait");
    // Datagrams now reach the test's socket, not a leftover listener.
    let tx = sender().await;
    tx.send_to(b"v=1&ready=1&busy=0", addr).await.unwrap();
    let mut buf = [0u8; 64];
    let (len, _) = tokio::time::timeout(BOUND, rebound.recv_from(&mut buf))
        .await
        .expect("bounded wait")
        .unwrap();
    assert_eq!(&buf[..len], b"v=1&ready=1&busy=0");
    assert!(store.snapshot().members()[0]
        .state()
        .load_report()
        .is_none());
}

#[tokio::test(start_paused = true)]
async fn stale_reports_fall_back_to_byrequests() {
    let store = heartbeat_store(&["http://10.0.0.1", "http://10.0.0.2"]);
    report(&store, "http://10.0.0.1", 1, 0).unwrap();
    report(&store, "http://10.0.0.2", 3, 0).unwrap();
    let counts: Vec<usize> = pick_counts(&store, 8).iter().map(|(_, n)| *n).collect();
    assert_eq!(counts, [2, 6]);

    tokio::time::advance(Duration::from_secs(10)).await;
    let counts: Vec<usize> = pick_counts(&store, 8).iter().map(|(_, n)| *n).collect();
    assert_eq!(counts, [2, 6], "10 s old is still fresh");

    tokio::time::advance(Duration::from_millis(1)).await;
    let counts: Vec<usize> = pick_counts(&store, 8).iter().map(|(_, n)| *n).collect();
    assert_eq!(counts, [4, 4], "stale: byrequests, equal load factors");

    // A fresh report from one member: only it has known capacity.
    report(&store, "http://10.0.0.1", 2, 0).unwrap();
    let counts: Vec<usize> = pick_counts(&store, 8).iter().map(|(_, n)| *n).collect();
    assert_eq!(counts, [8, 0]);
}
