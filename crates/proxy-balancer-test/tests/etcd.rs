//! The etcd harness against the real etcd: it starts on its own loopback ports, keeps its data
//! across a kill and a restart on the same ports, and removes its directory when dropped.
//! SKIPPED (loudly) without etcd, unless `PROXY_BALANCER_REQUIRE_TEST_DEPS=1`.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use proxy_balancer_test::{etcd_binary_or_skip, EtcdServer, TestClient};

/// A put or a range through etcd's JSON gateway (`/v3/kv/...`; keys and values in base64:
/// `a2V5` is `key`, `dmFsdWU=` is `value`).
async fn gateway(client: &TestClient, endpoint: &str, call: &str, body: &str) -> String {
    let request = Request::post(format!("{endpoint}/v3/kv/{call}"))
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("a request");
    let response = client.request(request).await.expect("etcd answers");
    assert_eq!(response.status, 200, "{}", response.text());
    response.text().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_starts_is_killed_and_restarts_with_its_data_or_skipped_without_it() {
    if etcd_binary_or_skip("the etcd harness test").is_none() {
        return;
    }
    let mut etcd = EtcdServer::start().await.expect("etcd starts");
    let endpoint = etcd.endpoint();
    let dir = etcd.data_dir().to_path_buf();
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
    assert!(dir.is_dir());
    let client = TestClient::new()
        .without_keep_alive()
        .with_timeout(Duration::from_secs(2));
    gateway(
        &client,
        &endpoint,
        "put",
        r#"{"key":"a2V5","value":"dmFsdWU="}"#,
    )
    .await;

    etcd.kill();
    assert!(!etcd.is_running());
    assert!(
        client.get(&format!("{endpoint}/health")).await.is_err(),
        "a killed etcd does not answer"
    );

    etcd.restart().await.expect("etcd restarts");
    assert_eq!(etcd.endpoint(), endpoint, "the same port");
    let range = gateway(&client, &endpoint, "range", r#"{"key":"a2V5"}"#).await;
    assert!(range.contains("dmFsdWU="), "the data survived: {range}");

    // The helpers an operator's etcdctl stands for.
    let first = etcd.put("/pb/k", "w_status_D=1&by=ops").await.expect("put");
    assert!(first > 1, "a revision: {first}");
    let range = gateway(&client, &endpoint, "range", r#"{"key":"L3BiL2s="}"#).await;
    assert!(
        range.contains("d19zdGF0dXNfRD0xJmJ5PW9wcw=="),
        "the value, base64: {range}"
    );
    let deleted = etcd.delete("/pb/k").await.expect("delete");
    assert_eq!(deleted, first + 1);
    etcd.compact(deleted).await.expect("compact");
    assert!(etcd.compact(deleted).await.is_err(), "compacted already");

    drop(etcd);
    assert!(!dir.exists(), "the directory is removed on drop");
}
