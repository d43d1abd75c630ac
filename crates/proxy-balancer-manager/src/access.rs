//! The access rule as a Layer: admit clients by network, refuse the rest with 403.

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower_layer::Layer;
use tower_service::Service;

use crate::service::{in_network, PeerAddr};

/// Admits the clients of some networks (by the [`PeerAddr`] the server puts in the request)
/// and answers the others 403. [`AccessLayer::loopback`] is the balancer-manager's default;
/// use this layer to put the manager (built with `.allow_all()`) behind a rule of your own,
/// or any other admin endpoint behind the same rule.
#[derive(Clone, Debug)]
pub struct AccessLayer {
    allow: Arc<[(IpAddr, u8)]>,
}

impl AccessLayer {
    /// Loopback only (`127.0.0.0/8` and `::1`).
    #[must_use]
    pub fn loopback() -> Self {
        Self::networks([
            (IpAddr::from([127, 0, 0, 0]), 8),
            (IpAddr::from(std::net::Ipv6Addr::LOCALHOST), 128),
        ])
    }

    /// These networks (address and prefix length, as `Require ip 10.0.0.0/8`).
    #[must_use]
    pub fn networks(networks: impl IntoIterator<Item = (IpAddr, u8)>) -> Self {
        Self {
            allow: networks.into_iter().collect(),
        }
    }
}

impl<S> Layer<S> for AccessLayer {
    type Service = Access<S>;
    fn layer(&self, inner: S) -> Access<S> {
        Access {
            inner,
            allow: Arc::clone(&self.allow),
        }
    }
}

/// The service of [`AccessLayer`].
#[derive(Clone, Debug)]
pub struct Access<S> {
    inner: S,
    allow: Arc<[(IpAddr, u8)]>,
}

impl<S, B> Service<Request<B>> for Access<S>
where
    S: Service<Request<B>, Response = Response<Full<Bytes>>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let admitted = request
            .extensions()
            .get::<PeerAddr>()
            .is_some_and(|p| self.allow.iter().any(|&(n, l)| in_network(p.0.ip(), n, l)));
        if admitted {
            Box::pin(self.inner.call(request))
        } else {
            Box::pin(async {
                let mut r = Response::new(Full::new(Bytes::from_static(
                    b"this endpoint is not open to this client\n",
                )));
                *r.status_mut() = StatusCode::FORBIDDEN;
                Ok(r)
            })
        }
    }
}
