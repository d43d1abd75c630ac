//! The [`Site`](super::Site)'s response future.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use http_body_util::Either;
use pin_project_lite::pin_project;
use tower::util::Oneshot;

use super::headers::{HeaderRules, RequestNotes};
use super::{ProxyBody, ProxyFuture};
use crate::manager::BalancerManager;
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
            inner: ProxyFuture,
            rules: HeaderRules,
            notes: RequestNotes,
        },
        Manager {
            #[pin]
            inner: ManagerOneshot,
            rules: HeaderRules,
            notes: RequestNotes,
        },
        Ready {
            response: Option<Response<ProxyBody>>,
        },
    }
}

impl ResponseFuture {
    /// A request sent to a route's stack. `rules` are the route's `Header` lines and
    /// `notes` what [`HeaderRules::on_request`] kept of the request: a member's answer gets
    /// the onsuccess and the always rules, an answer the stack wrote (502, 503, 504) the
    /// always rules only.
    pub(super) const fn proxy(inner: ProxyFuture, rules: HeaderRules, notes: RequestNotes) -> Self {
        Self {
            kind: Kind::Proxy {
                inner,
                rules,
                notes,
            },
        }
    }

    /// A request for the balancer-manager: its pages are a handler's answers, so they get
    /// both tables, as in Apache.
    pub(super) const fn manager(
        inner: ManagerOneshot,
        rules: HeaderRules,
        notes: RequestNotes,
    ) -> Self {
        Self {
            kind: Kind::Manager {
                inner,
                rules,
                notes,
            },
        }
    }

    /// An answer the site wrote (404, 400): the always rules apply to it, as to Apache's
    /// error responses.
    pub(super) fn ready(
        mut response: Response<ProxyBody>,
        rules: &HeaderRules,
        notes: &RequestNotes,
    ) -> Self {
        rules.on_response(&mut response, false, notes);
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
            KindProj::Proxy {
                inner,
                rules,
                notes,
            } => {
                // The member's hop-by-hop headers were removed by the route's `Reverse`
                // (a tunnelled 101 keeps `Connection: Upgrade` and its `Upgrade`).
                let mut response = ready!(inner.poll(cx))?;
                // A member's answer (its body is the member's), or one the stack wrote.
                let proxied = matches!(response.body(), Either::Left(_));
                rules.on_response(&mut response, proxied, notes);
                Poll::Ready(Ok(response))
            }
            KindProj::Manager {
                inner,
                rules,
                notes,
            } => {
                let mut response = ready!(inner.poll(cx))?.map(Either::Right);
                rules.on_response(&mut response, true, notes);
                Poll::Ready(Ok(response))
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
