//! The [`Site`](super::Site)'s response future.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use http_body_util::Either;
use pin_project_lite::pin_project;
use tower::util::Oneshot;

use super::{headers::apply_headers, ProxyBody, ProxyOneshot};
use crate::apache_config::HeaderDirective;
use crate::manager::BalancerManager;
use crate::proxy_pass::strip_hop_by_hop;
use crate::server::RequestBody;

type ManagerOneshot = Oneshot<BalancerManager, Request<RequestBody>>;

pin_project! {
    /// The response future of [`Site`](super::Site): a proxied request, the
    /// balancer-manager's answer, or an answer the site wrote (404).
    pub struct ResponseFuture {
        #[pin]
        kind: Kind,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind {
        Proxy {
            #[pin]
            inner: ProxyOneshot,
            headers: Arc<[HeaderDirective]>,
        },
        Manager {
            #[pin]
            inner: ManagerOneshot,
        },
        Ready {
            response: Option<Response<ProxyBody>>,
        },
    }
}

impl ResponseFuture {
    pub(super) fn proxy(inner: ProxyOneshot, headers: Arc<[HeaderDirective]>) -> Self {
        Self {
            kind: Kind::Proxy { inner, headers },
        }
    }

    pub(super) fn manager(inner: ManagerOneshot) -> Self {
        Self {
            kind: Kind::Manager { inner },
        }
    }

    pub(super) fn ready(response: Response<ProxyBody>) -> Self {
        Self {
            kind: Kind::Ready {
                response: Some(response),
            },
        }
    }
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<ProxyBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Proxy { inner, headers } => {
                let mut response = ready!(inner.poll(cx))?;
                // The member's hop-by-hop headers end at the proxy.
                strip_hop_by_hop(response.headers_mut());
                apply_headers(headers, &mut response);
                Poll::Ready(Ok(response))
            }
            KindProj::Manager { inner } => {
                let response = ready!(inner.poll(cx))?;
                Poll::Ready(Ok(response.map(Either::Right)))
            }
            KindProj::Ready { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // Polled again after it completed: a caller's bug; answer as a closed
                // future would, never panic.
                None => Poll::Pending,
            },
        }
    }
}
