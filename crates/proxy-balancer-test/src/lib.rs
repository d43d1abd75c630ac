//! Loopback test kit for `proxy-balancer`: programmable HTTP backends, a small client and
//! tracing setup, used by the balancer's integration tests, the examples and the benches.
//!
//! - [`TestBackend`]: a real hyper HTTP/1.1 server on `127.0.0.1:0`. By default it answers
//!   every request with `200`, header `X-Backend: <name>` and body `<name>`. Its status, delay,
//!   body, extra headers, `/health` answer and failure [`Mode`] can be changed while it runs;
//!   it counts hits and open connections and records the requests it received. It can hold
//!   every response until the test releases them, and be taken down (connections are then
//!   refused, the port kept) and brought up again on the same port.
//! - [`TestClient`]: a keep-alive hyper-util client whose every request is bounded by a
//!   timeout, returning a fully read [`TestResponse`].
//! - [`init_tracing`]: installs a test-friendly `tracing` subscriber once.
//! - [`EtcdServer`]: a real etcd (the system's `/usr/bin/etcd`) on loopback ports with its own
//!   data directory, which can be killed and restarted; [`etcd_binary_or_skip`] skips a test
//!   loudly without it (or fails it when `PROXY_BALANCER_REQUIRE_TEST_DEPS=1`).
//!
//! Nothing here talks to anything but `127.0.0.1`, and every server task stops when its
//! [`TestBackend`] is stopped or dropped.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use proxy_balancer_test::{Mode, TestBackend, TestClient};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), proxy_balancer_test::BoxError> {
//! proxy_balancer_test::init_tracing();
//! let backend = TestBackend::start("alpha").await?;
//! let client = TestClient::new().with_timeout(Duration::from_secs(2));
//!
//! let response = client.get(&backend.url()).await?;
//! assert_eq!(response.status, 200);
//! assert_eq!(response.text(), "alpha");
//! assert_eq!(response.headers["x-backend"], "alpha");
//!
//! // Make the backend fail: it reads the request, then resets the connection.
//! backend.set_mode(Mode::Reset);
//! assert!(client.get(&backend.url()).await.is_err());
//! assert_eq!(backend.hits(), 2);
//!
//! // Take it down (refused, the port kept) and bring it back on the same port.
//! backend.take_down().await?;
//! backend.bring_up().await?;
//! backend.set_mode(Mode::Normal);
//! assert_eq!(client.get(&backend.url()).await?.status, 200);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod backend;
mod body;
mod client;
mod demo;
mod etcd;
mod shared_stream;
mod trace;
mod wait;

pub use backend::{Mode, RecordedRequest, TestBackend, TestBackendBuilder};
pub use body::ChannelBody;
pub use client::{TestClient, TestResponse};
pub use demo::{demo_config, start_demo_backends};
pub use etcd::{etcd_binary, etcd_binary_or_skip, EtcdServer, REQUIRE_DEPS};
pub use trace::init_tracing;
pub use wait::wait_for;

/// The boxed error type returned by [`TestClient`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
