//! A small keep-alive HTTP/1.1 client with a timeout on every request.

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::BoxError;

/// The default bound on one request, response body included: far above any loopback answer,
/// far below a test harness's patience.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// An HTTP/1.1 client over hyper-util's legacy pooled `Client`, for tests.
///
/// Connections are kept alive and reused unless built with
/// [`without_keep_alive`](Self::without_keep_alive). Each request, including reading the
/// whole response body, is bounded by [`timeout`](Self::timeout) (default 5 s); when it runs
/// out the error is a [`tokio::time::error::Elapsed`]. Clones share the connection pool;
/// dropping the last clone closes its idle connections.
///
/// # Example
///
/// ```no_run
/// use proxy_balancer_test::{TestBackend, TestClient};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), proxy_balancer_test::BoxError> {
/// let backend = TestBackend::start("a").await?;
/// let response = TestClient::new().get(&backend.url()).await?;
/// assert_eq!(response.text(), "a");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TestClient {
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

/// A response read to the end by [`TestClient`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TestResponse {
    /// The response status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The whole response body.
    pub body: Bytes,
}

// ===== impl TestClient =====

impl TestClient {
    /// A keep-alive client with the default 5 s timeout.
    #[must_use]
    pub fn new() -> Self {
        Self::with_pool(None)
    }

    /// A client that opens a new connection for every request (no idle connection is kept).
    #[must_use]
    pub fn without_keep_alive(self) -> Self {
        Self {
            timeout: self.timeout,
            ..Self::with_pool(Some(0))
        }
    }

    /// A client that speaks HTTP/2 only, with prior knowledge (h2c: no upgrade, no TLS),
    /// as gRPC clients and `curl --http2-prior-knowledge` do. The request's URI authority
    /// travels as `:authority`; no `Host` header is sent.
    #[must_use]
    pub fn h2c() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder.http2_only(true);
        Self {
            client: builder.build(connector),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Bounds each request, response body included, by `timeout`.
    #[must_use]
    pub const fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The bound on each request.
    #[must_use]
    pub const fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends `GET url` and reads the whole response.
    ///
    /// # Errors
    ///
    /// If `url` is not a valid URI, the request fails (connection refused, closed, reset, not
    /// HTTP, ...) or the timeout runs out.
    pub async fn get(&self, url: &str) -> Result<TestResponse, BoxError> {
        let uri: Uri = url.parse()?;
        let request = Request::get(uri).body(Full::new(Bytes::new()))?;
        self.request(request).await
    }

    /// Sends `request` and reads the whole response.
    ///
    /// # Errors
    ///
    /// If the request fails (connection refused, closed, reset, not HTTP, ...) or the timeout
    /// runs out.
    pub async fn request(&self, request: Request<Full<Bytes>>) -> Result<TestResponse, BoxError> {
        tokio::time::timeout(self.timeout, async {
            let response = self.client.request(request).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, BoxError>(TestResponse {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        })
        .await?
    }

    fn with_pool(max_idle_per_host: Option<usize>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let mut builder = Client::builder(TokioExecutor::new());
        if let Some(max) = max_idle_per_host {
            builder.pool_max_idle_per_host(max);
        }
        Self {
            client: builder.build(connector),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl Default for TestClient {
    fn default() -> Self {
        Self::new()
    }
}

// ===== impl TestResponse =====

impl TestResponse {
    /// The body as text (invalid UTF-8 replaced by `U+FFFD`).
    #[must_use]
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// The value of header `name` if it is present and valid UTF-8 (the first one if repeated).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
