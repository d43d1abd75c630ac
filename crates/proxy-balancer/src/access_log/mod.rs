//! An access log in Apache's `LogFormat` syntax: one line per request, written when the
//! response body has ended (or was dropped), off the request path.
//!
//! [`AccessLogLayer`] wraps a service; each request's line is rendered from a
//! [`LogFormat`] parsed once at start-up (an unknown or unsupported `%` directive is a
//! [`FormatError`] naming it) and queued to an [`AccessLogWriter`], a bounded queue to a
//! thread that appends to a file or writes to standard output. A request never waits for
//! the log: when the queue is full the line is dropped and counted
//! ([`AccessLogWriter::dropped`]).
//!
//! Put the layer outermost (around the whole site) so that every answer is logged,
//! including the ones the proxy writes itself (404, 503), and serve it with
//! [`Server`](crate::server::Server), whose [`PeerAddr`](crate::PeerAddr) and
//! [`LocalAddr`](crate::LocalAddr) extensions give `%h` and `%p`. The layer is generic over
//! the request body type.
//!
//! # Apache
//!
//! mod_log_config's `CustomLog file format` and `LogFormat`, with the `common` and
//! `combined` nicknames of Apache's default configuration; [`LogFormat`] lists the
//! directives. Differences: times are UTC (`+0000`; Apache writes local time), `%b` counts
//! the body bytes the proxy handed to the connection, and a line that cannot be queued is
//! dropped and counted instead of holding the request (Apache's buffered log blocks the
//! worker on a slow disk).
//!
//! # Examples
//!
//! The default, `combined` to standard output:
//!
//! ```
//! use std::convert::Infallible;
//!
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use proxy_balancer::access_log::{AccessLogLayer, AccessLogWriter, LogFormat};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let layer = AccessLogLayer::new(LogFormat::combined(), AccessLogWriter::stdout(1024)?);
//! let service = ServiceBuilder::new().layer(layer).service(service_fn(
//!     |_req: Request<Full<Bytes>>| async {
//!         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("hello"))))
//!     },
//! ));
//! let response = service.oneshot(Request::new(Full::new(Bytes::new()))).await?;
//! // The line is written once the body has been read (or dropped):
//! // - - - [04/Dec/2026:11:25:36 +0000] "GET / HTTP/1.1" 200 5 "-" "-"
//! assert_eq!(response.into_body().collect().await?.to_bytes(), "hello");
//! # Ok(())
//! # }
//! ```
//!
//! A format of your own, to a file, with the server name `%v` gives:
//!
//! ```
//! use std::time::Duration;
//!
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use proxy_balancer::access_log::{AccessLogLayer, AccessLogWriter, LogFormat};
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let path = std::env::temp_dir().join(format!("access-doc-{}.log", std::process::id()));
//! let format: LogFormat = r#"%v "%r" %>s %b %{X-Id}o"#.parse()?;
//! let writer = AccessLogWriter::file(&path, 1024)?;
//! let layer = AccessLogLayer::new(format, writer.clone()).server_name("www.example.com");
//! let service = layer.layer(service_fn(|_req: Request<Full<Bytes>>| async {
//!     let response = Response::builder().header("x-id", "7").body(Full::new(Bytes::new()));
//!     Ok::<_, http::Error>(response?)
//! }));
//! let request = Request::post("/form?a=1").body(Full::new(Bytes::new()))?;
//! service.oneshot(request).await?.into_body().collect().await?;
//!
//! // The writer thread appends the line soon after.
//! let mut text = String::new();
//! for _ in 0..200 {
//!     text = std::fs::read_to_string(&path)?;
//!     if !text.is_empty() {
//!         break;
//!     }
//!     tokio::time::sleep(Duration::from_millis(10)).await;
//! }
//! assert_eq!(text, "www.example.com \"POST /form?a=1 HTTP/1.1\" 200 - 7\n");
//! assert_eq!(writer.dropped(), 0);
//! # std::fs::remove_file(&path).ok();
//! # Ok(())
//! # }
//! ```

mod format;
pub mod future;
mod record;
#[cfg(test)]
mod tests;
mod time;
mod writer;

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

pub use self::format::{nickname, FormatError, LogFormat, COMBINED, COMMON};
pub use self::future::{AccessLogBody, ResponseFuture};
use self::record::{Record, Shared};
pub use self::writer::{AccessLogWriter, DEFAULT_QUEUE};

/// A [`Layer`] writing an access-log line for each request; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct AccessLogLayer {
    shared: Arc<Shared>,
}

// ===== impl AccessLogLayer =====

impl AccessLogLayer {
    /// Lines in `format`, sent to `writer`.
    #[must_use]
    pub fn new(format: LogFormat, writer: AccessLogWriter) -> Self {
        Self {
            shared: Arc::new(Shared {
                format,
                writer,
                server_name: None,
            }),
        }
    }

    /// The name `%v` writes (Apache's `ServerName`); without one, the local address the
    /// request reached.
    #[must_use]
    pub fn server_name(self, name: impl Into<Arc<str>>) -> Self {
        Self {
            shared: Arc::new(Shared {
                format: self.shared.format.clone(),
                writer: self.shared.writer.clone(),
                server_name: Some(name.into()),
            }),
        }
    }

    /// The writer (for its [`dropped`](AccessLogWriter::dropped) count).
    #[must_use]
    pub fn writer(&self) -> &AccessLogWriter {
        &self.shared.writer
    }

    /// The format.
    #[must_use]
    pub fn format(&self) -> &LogFormat {
        &self.shared.format
    }
}

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessLog {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// Writes an access-log line for each request; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct AccessLog<S> {
    inner: S,
    shared: Arc<Shared>,
}

// ===== impl AccessLog =====

impl<S> AccessLog<S> {
    /// Wraps `inner`, with [`AccessLogLayer::new`]'s settings.
    pub fn new(inner: S, format: LogFormat, writer: AccessLogWriter) -> Self {
        AccessLogLayer::new(format, writer).layer(inner)
    }

    /// The writer (for its [`dropped`](AccessLogWriter::dropped) count).
    pub fn writer(&self) -> &AccessLogWriter {
        &self.shared.writer
    }
}

wrapper_accessors!(AccessLog);

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AccessLog<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body,
{
    type Response = Response<AccessLogBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let record = Record::new(&self.shared, &request);
        ResponseFuture::new(self.inner.call(request), record)
    }
}
