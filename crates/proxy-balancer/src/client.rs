//! The built-in member client: a pooled HTTP/1.1 client per member (hyper-util's), set up
//! from the member's Apache parameters.
//!
//! | Apache worker parameter | here |
//! | --- | --- |
//! | `connectiontimeout` (default `timeout`) | connect timeout; a connect that takes longer is a connect failure, so the request fails over |
//! | `timeout` | how long to wait for the response head; past it the request fails with a 504 ([`ErrorKind::Timeout`](crate::ErrorKind::Timeout)) |
//! | `max` | the most idle connections kept (Apache's is a hard cap on connections; ours caps the pool) |
//! | `ttl` | how long an idle connection is kept |
//! | `disablereuse=On` | no connection is kept: a new one per request |
//! | `keepalive=On` | TCP keep-alive probes on member connections |
//!
//! `https` members need a TLS connector, which this client does not carry yet: their
//! requests fail with [`ErrorKind::Upstream`](crate::ErrorKind::Upstream).

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{header, Request, Response, Uri};
use http_body::Body;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use pin_project_lite::pin_project;
use proxy_balancer_core::Member;
use tower_service::Service;

use crate::balancer::{MakeMember, ReplayBody};
use crate::error::{BoxError, Error};

/// Without a `timeout`, how long to wait for a member's answer: Apache's default
/// `ProxyTimeout` (the server `Timeout`, 60 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Interval of TCP keep-alive probes with `keepalive=On` (the kernel's default is hours).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);

/// Makes an [`HttpMember`] for each member, for a [`Balancer`](crate::Balancer) over HTTP
/// backends.
pub struct MakeHttpMember<B> {
    preserve_host: bool,
    _body: PhantomData<fn(B)>,
}

impl<B> MakeHttpMember<B> {
    /// Apache's defaults (`ProxyPreserveHost Off`: the member gets its own host in `Host`).
    #[must_use]
    pub const fn new() -> Self {
        Self {
            preserve_host: false,
            _body: PhantomData,
        }
    }

    /// `ProxyPreserveHost On`: the client's `Host` goes to the member unchanged.
    #[must_use]
    pub const fn preserve_host(mut self, preserve: bool) -> Self {
        self.preserve_host = preserve;
        self
    }
}

impl<B> Default for MakeHttpMember<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B> Clone for MakeHttpMember<B> {
    fn clone(&self) -> Self {
        Self {
            preserve_host: self.preserve_host,
            _body: PhantomData,
        }
    }
}

impl<B> fmt::Debug for MakeHttpMember<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MakeHttpMember")
            .field("preserve_host", &self.preserve_host)
            .finish()
    }
}

impl<B> MakeMember for MakeHttpMember<B>
where
    B: Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Service = HttpMember<B>;

    fn make_member(&self, member: &Member) -> HttpMember<B> {
        HttpMember::new(member, self.preserve_host)
    }
}

/// The pooled HTTP client of one member. See the [module docs](self).
pub struct HttpMember<B> {
    client: Client<HttpConnector, ReplayBody<B>>,
    scheme: Scheme,
    authority: Option<Authority>,
    base_path: String,
    timeout: Duration,
    preserve_host: bool,
}

impl<B> Clone for HttpMember<B> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            scheme: self.scheme.clone(),
            authority: self.authority.clone(),
            base_path: self.base_path.clone(),
            timeout: self.timeout,
            preserve_host: self.preserve_host,
        }
    }
}

impl<B> fmt::Debug for HttpMember<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpMember")
            .field("authority", &self.authority)
            .field("base_path", &self.base_path)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<B> HttpMember<B>
where
    B: Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    /// The client for `member`, set up from its parameters.
    #[must_use]
    pub fn new(member: &Member, preserve_host: bool) -> Self {
        let params = member.params();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(params.connection_timeout.or(params.timeout));
        if params.keepalive {
            connector.set_keepalive(Some(KEEPALIVE_INTERVAL));
        }
        let mut builder = Client::builder(TokioExecutor::new());
        builder.pool_timer(TokioTimer::new());
        if let Some(ttl) = params.ttl {
            builder.pool_idle_timeout(ttl);
        }
        if params.disable_reuse {
            builder.pool_max_idle_per_host(0);
        } else if let Some(max) = params.max {
            builder.pool_max_idle_per_host(max as usize);
        }
        let url = &params.url;
        Self {
            client: builder.build(connector),
            scheme: if url.scheme() == "https" {
                Scheme::HTTPS
            } else {
                Scheme::HTTP
            },
            authority: url.authority().parse().ok(),
            base_path: url.path().to_owned(),
            timeout: params.timeout.unwrap_or(DEFAULT_TIMEOUT),
            preserve_host,
        }
    }
}

impl<B> HttpMember<B> {
    fn member_uri(&self, uri: &Uri) -> Result<Uri, BoxError> {
        let authority = self
            .authority
            .clone()
            .ok_or("the member URL has no valid authority")?;
        join(self.scheme.clone(), authority, &self.base_path, uri)
    }
}

/// The URI a request for `uri` goes to on `member`: the member's scheme and authority, its
/// path prefix, then `uri`'s path and query (`http://10.0.0.1:8080/app` and `/x?y` give
/// `http://10.0.0.1:8080/app/x?y`). For member services of your own.
///
/// # Errors
///
/// [`ErrorKind::Upstream`](crate::ErrorKind::Upstream) if the result is not a valid URI.
pub fn member_uri(member: &Member, uri: &Uri) -> Result<Uri, Error> {
    let url = &member.params().url;
    let scheme = if url.scheme() == "https" {
        Scheme::HTTPS
    } else {
        Scheme::HTTP
    };
    let authority: Authority = url.authority().parse().map_err(Error::upstream)?;
    join(scheme, authority, url.path(), uri).map_err(Error::upstream)
}

fn join(scheme: Scheme, authority: Authority, base_path: &str, uri: &Uri) -> Result<Uri, BoxError> {
    let path = uri.path_and_query().map_or("/", PathAndQuery::as_str);
    let path_and_query: PathAndQuery = if base_path.is_empty() {
        path.parse()?
    } else {
        format!("{base_path}{path}").parse()?
    };
    Ok(Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query(path_and_query)
        .build()?)
}

impl<B> Service<Request<ReplayBody<B>>> for HttpMember<B>
where
    B: Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Incoming>;
    type Error = Error;
    type Future = HttpMemberFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<ReplayBody<B>>) -> Self::Future {
        if self.scheme == Scheme::HTTPS {
            return HttpMemberFuture::failed(Error::upstream(
                "https members need a TLS connector, which the built-in client lacks",
            ));
        }
        match self.member_uri(request.uri()) {
            Ok(uri) => *request.uri_mut() = uri,
            Err(e) => return HttpMemberFuture::failed(Error::upstream(e)),
        }
        if !self.preserve_host {
            // hyper-util sets Host from the URI when there is none.
            request.headers_mut().remove(header::HOST);
        }
        HttpMemberFuture {
            inner: Some(tokio::time::timeout(
                self.timeout,
                self.client.request(request),
            )),
            failed: None,
        }
    }
}

pin_project! {
    /// The future of [`HttpMember`].
    pub struct HttpMemberFuture {
        #[pin]
        inner: Option<tokio::time::Timeout<hyper_util::client::legacy::ResponseFuture>>,
        failed: Option<Error>,
    }
}

impl HttpMemberFuture {
    const fn failed(error: Error) -> Self {
        Self {
            inner: None,
            failed: Some(error),
        }
    }
}

impl fmt::Debug for HttpMemberFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpMemberFuture").finish_non_exhaustive()
    }
}

impl Future for HttpMemberFuture {
    type Output = Result<Response<Incoming>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            return Poll::Ready(Err(this
                .failed
                .take()
                .unwrap_or_else(|| Error::upstream("polled after completion"))));
        };
        Poll::Ready(match ready!(inner.poll(cx)) {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(Error::from_member(Box::new(e))),
            Err(elapsed) => Err(Error::timeout(elapsed)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proxy_balancer_core::{BalancerParams, BalancerStore, MemberParams};

    #[test]
    fn member_uris() {
        let store = BalancerStore::new(
            BalancerParams::new("t"),
            [
                MemberParams::new("http://10.0.0.1:8080/app").unwrap(),
                MemberParams::new("http://b").unwrap(),
            ],
            tokio::time::Instant::now().into_std(),
        )
        .unwrap();
        let snapshot = store.snapshot();
        let [a, b] = [&snapshot.members()[0], &snapshot.members()[1]];
        let uri: Uri = "/x?y=1".parse().unwrap();
        assert_eq!(
            member_uri(a, &uri).unwrap(),
            "http://10.0.0.1:8080/app/x?y=1"
        );
        assert_eq!(member_uri(b, &uri).unwrap(), "http://b/x?y=1");
        let absolute: Uri = "http://front/z".parse().unwrap();
        assert_eq!(member_uri(b, &absolute).unwrap(), "http://b/z");
    }
}
