//! The outage is logged once (a warning), however many retries, and the recovery once (an
//! info line), against a real etcd. In a test binary of its own: tracing caches whether a
//! log line is wanted per call site, for the whole process, and a subscriber set for one
//! test's thread is not asked when another test's thread reaches the line first.
//! SKIPPED (loudly) without etcd, unless `PROXY_BALANCER_REQUIRE_TEST_DEPS=1`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proxy_balancer_core::{BalancerParams, BalancerStore, MemberParams, StatusFlags};
use proxy_balancer_etcd::EtcdShare;
use proxy_balancer_manager::edit::{parse_form, Edit};
use proxy_balancer_manager::shared::{SharedEditError, SharedEditRequest, SharedEdits};
use proxy_balancer_test::{etcd_binary_or_skip, wait_for, EtcdServer};
use tokio::time::Instant;

const M1: &str = "http://127.0.0.1:9001";
const PREFIX: &str = "/pb-test/";
const POLL: Duration = Duration::from_millis(1);

fn store() -> Arc<BalancerStore> {
    Arc::new(
        BalancerStore::new(
            BalancerParams::new("app"),
            [MemberParams::new(M1).expect("a URL")],
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

fn key(member: &str) -> String {
    format!("{PREFIX}app/member/{member}")
}

fn request(form: &str, by: &str) -> SharedEditRequest {
    let edit = Edit::from_form(&parse_form(form.as_bytes()).expect("a form")).expect("an edit");
    SharedEditRequest::new("app", edit, by)
}

fn has(store: &BalancerStore, url: &str, flag: StatusFlags) -> bool {
    store
        .snapshot()
        .member_by_url(url)
        .is_some_and(|m| m.flags().contains(flag))
}

async fn etcd_or_skip(test: &str) -> Option<EtcdServer> {
    etcd_binary_or_skip(test)?;
    Some(EtcdServer::start().await.expect("etcd starts"))
}

/// Counts this crate's outage warnings and recovery lines.
#[derive(Default, Clone)]
struct OutageLog {
    warnings: Arc<AtomicUsize>,
    recoveries: Arc<AtomicUsize>,
}

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for OutageLog {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if !event.metadata().target().starts_with("proxy_balancer_etcd") {
            return;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let level = *event.metadata().level();
        if level == tracing::Level::WARN && message.0.contains("unreachable") {
            self.warnings.fetch_add(1, Ordering::Relaxed);
        }
        if level == tracing::Level::INFO && message.0.contains("reachable again") {
            self.recoveries.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One thread: the engine's task logs through this test's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn started_while_etcd_is_down_it_serves_the_configuration_then_connects_or_skipped_without_etcd(
) {
    use tracing_subscriber::layer::SubscriberExt;

    let log = OutageLog::default();
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(log.clone()));
    let Some(mut etcd) = etcd_or_skip("started_while_etcd_is_down").await else {
        return;
    };
    etcd.put(&key(M1), "w_status_D=1").await.expect("put");
    etcd.kill();

    let store = store();
    let t0 = Instant::now();
    let share = start(&etcd.endpoint(), "a", &store).await;
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    let status = share.status();
    assert!(!status.connected, "{status:?}");
    assert!(status.last_error.is_some(), "{status:?}");
    assert!(
        !has(&store, M1, StatusFlags::DISABLED),
        "the configuration's state"
    );
    let refused = share
        .submit(request(&format!("b=app&w={M1}&w_lf=2"), "ops"))
        .await
        .expect_err("refused");
    assert!(
        matches!(refused, SharedEditError::Unavailable { .. }),
        "{refused}"
    );

    // Several retries while down (100, 200, 400, 800 ms…): one warning all the same.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    etcd.restart().await.expect("etcd starts");
    wait_for(
        "connected, and etcd's state applied",
        Duration::from_secs(5),
        POLL,
        || share.status().connected && has(&store, M1, StatusFlags::DISABLED),
    )
    .await;
    assert_eq!(
        log.warnings.load(Ordering::Relaxed),
        1,
        "one warning per outage"
    );
    assert_eq!(
        log.recoveries.load(Ordering::Relaxed),
        1,
        "one line on recovery"
    );
    share.stop();
}
