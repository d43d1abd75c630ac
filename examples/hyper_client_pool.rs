//! Members are any tower services: the balancer over your own HTTP client.
//!
//! ```text
//! cargo run --example hyper-client-pool
//! ```
//!
//! The balancer does not need its built-in client. Here the application has its own
//! hyper-util `Client` (one connection pool shared by every member, with its own settings),
//! and the balancer gets a closure `|member: &Member| -> S` that makes each member's service:
//! point the request at the member's URL, send it with the shared client, and say which
//! failures mean "could not connect" so the balancer fails over.
//!
//! It starts three demo backends on 127.0.0.1, sends a few requests through the balancer
//! and prints who answered each, stops one backend to show the failover, and exits.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body, Incoming};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use proxy_balancer::balancer::{BalancerOptions, ReplayBody};
use proxy_balancer::client::member_uri;
use proxy_balancer::{Balancer, BalancerInfo, BoxError, Error, Member};
use tower::{Service, ServiceExt};

/// The application's own client: one pool for all members, bodies boxed so it can send any.
pub(crate) type UserClient = Client<HttpConnector, BoxBody<Bytes, BoxError>>;

/// How long the client waits for a TCP connect: a member that takes longer counts as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The application's client, set up as the application likes it.
pub(crate) fn user_client() -> UserClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    Client::builder(TokioExecutor::new()).build(connector)
}

/// One member's service: the request goes to the member's URL (its path prefixed) through
/// the shared `client`.
///
/// [`Error::classify`] tells the balancer which failures to fail over on (connect errors)
/// and which are 502s (the rest).
pub(crate) fn member_service<B>(
    client: &UserClient,
    member: &Member,
) -> impl Service<Request<ReplayBody<B>>, Response = Response<Incoming>, Error = Error> + Clone
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let client = client.clone();
    let member = member.clone();
    tower::service_fn(move |mut request: Request<ReplayBody<B>>| {
        let client = client.clone();
        let target = member_uri(&member, request.uri());
        async move {
            *request.uri_mut() = target?;
            // `ProxyPreserveHost Off`: the client sets the member's own `Host` from the URI.
            request.headers_mut().remove(header::HOST);
            // The balancer's replayable body is boxed into the client's body type.
            let request = request.map(BodyExt::boxed);
            // Connect failures make the balancer fail over; the rest are 502s.
            client.request(request).await.map_err(Error::classify)
        }
    })
}

/// The balancer's answer to one `GET path`: the member that answered, per the balancer's
/// [`BalancerInfo`], and the `X-Backend` header of the demo backend.
pub(crate) async fn get<S, B>(balancer: &S, path: &str) -> Result<(String, String), BoxError>
where
    S: Service<Request<Empty<Bytes>>, Response = Response<B>> + Clone,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    let request = Request::get(path).body(Empty::new())?;
    let response = balancer
        .clone()
        .oneshot(request)
        .await
        .map_err(Into::into)?;
    let member = response
        .extensions()
        .get::<BalancerInfo>()
        .map_or_else(String::new, |info| info.worker_name().to_owned());
    let backend = response
        .headers()
        .get("x-backend")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    response.into_body().collect().await.map_err(Into::into)?;
    Ok((member, backend))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let backends = examples::start_demo_backends(3).await?;
    let store = examples::demo_store(&backends)?;

    let client = user_client();
    let make_member = move |member: &Member| member_service::<Empty<Bytes>>(&client, member);
    // A kept-alive connection to a member that just stopped can fail after the request was
    // written; idempotent requests then go to another member too.
    let options = BalancerOptions::default().retry_idempotent(true);
    let balancer = Balancer::with_options(Arc::clone(&store), make_member, options);

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "balancer://demo over the application's own hyper-util client:"
    )?;
    for _ in 0..3 {
        let (member, backend) = get(&balancer, "/hello").await?;
        writeln!(out, "  GET /hello  answered by {member} ({backend})")?;
    }

    writeln!(
        out,
        "stopping {} ({})",
        backends[1].url(),
        backends[1].name()
    )?;
    backends[1].stop().await;
    for _ in 0..3 {
        let (member, backend) = get(&balancer, "/hello").await?;
        writeln!(out, "  GET /hello  answered by {member} ({backend})")?;
    }

    writeln!(out, "members now:")?;
    for member in store.snapshot().members() {
        writeln!(out, "  {}  {}", member.url(), member.flags().label())?;
    }
    Ok(())
}
