//! What a request's line needs, captured as it goes, and the line itself.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use http::header::{CONNECTION, CONTENT_LENGTH, DATE, HOST, SET_COOKIE, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri, Version};

use super::format::{push_escaped, BalancerVar, DurationUnit, Field, Item, LogFormat};
use super::writer::AccessLogWriter;
use crate::balancer::BalancerInfo;
use crate::{LocalAddr, PeerAddr};

/// What every [`AccessLog`](super::AccessLog) of one layer shares.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) format: LogFormat,
    pub(super) writer: AccessLogWriter,
    pub(super) server_name: Option<Arc<str>>,
}

/// One request on its way: filled from the request, then the response head, then the
/// body's bytes; written once.
pub(super) struct Record {
    shared: Arc<Shared>,
    begin: SystemTime,
    started: tokio::time::Instant,
    peer: Option<SocketAddr>,
    local: Option<SocketAddr>,
    method: Method,
    uri: Uri,
    version: Version,
    host: Option<HeaderValue>,
    request_headers: Vec<Option<HeaderValue>>,
    request_keep_alive: bool,
    status: u16,
    response_headers: Vec<Option<HeaderValue>>,
    response_close: bool,
    balancer: Option<BalancerInfo>,
    pub(super) bytes: u64,
    /// The response head's size, for `%O`.
    head_bytes: u64,
}

/// All values of `name`, joined with `, ` when there are several (Apache merges repeated
/// request headers so).
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<HeaderValue> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    let Some(second) = values.next() else {
        return Some(first.clone());
    };
    let mut all = first.as_bytes().to_vec();
    for value in std::iter::once(second).chain(values) {
        all.extend_from_slice(b", ");
        all.extend_from_slice(value.as_bytes());
    }
    HeaderValue::from_bytes(&all).ok()
}

/// Whether a `Connection` header lists `token`.
fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers.get_all(CONNECTION).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

impl Record {
    pub(super) fn new<B>(shared: &Arc<Shared>, request: &Request<B>) -> Box<Self> {
        let format = &shared.format;
        let headers = request.headers();
        let request_keep_alive = match request.version() {
            Version::HTTP_09 => false,
            Version::HTTP_10 => connection_has(headers, "keep-alive"),
            Version::HTTP_11 => !connection_has(headers, "close"),
            _ => true,
        };
        Box::new(Self {
            shared: Arc::clone(shared),
            begin: SystemTime::now(),
            started: tokio::time::Instant::now(),
            peer: request.extensions().get::<PeerAddr>().map(|p| p.0),
            local: request.extensions().get::<LocalAddr>().map(|l| l.0),
            method: request.method().clone(),
            uri: request.uri().clone(),
            version: request.version(),
            host: headers.get(HOST).cloned(),
            request_headers: format
                .request_headers
                .iter()
                .map(|name| joined(headers, name))
                .collect(),
            request_keep_alive,
            status: 0,
            response_headers: Vec::new(),
            response_close: false,
            balancer: None,
            bytes: 0,
            head_bytes: 0,
        })
    }

    pub(super) fn on_response<B: http_body::Body>(&mut self, response: &Response<B>) {
        let format = &self.shared.format;
        let headers = response.headers();
        self.status = response.status().as_u16();
        self.response_headers = format
            .response_headers
            .iter()
            .map(|name| {
                if name == SET_COOKIE {
                    joined(headers, name)
                } else {
                    headers.get(name).cloned()
                }
            })
            .collect();
        self.response_close = connection_has(headers, "close");
        if format.needs_head_bytes {
            self.head_bytes = head_bytes(response);
        }
        if format.needs_balancer {
            self.balancer = response.extensions().get::<BalancerInfo>().cloned();
        }
    }

    /// The service failed: no response (hyper closes the connection); logged as Apache
    /// logs a request that ended in an internal error, 500.
    pub(super) fn on_error(mut self: Box<Self>) {
        self.status = 500;
        self.finish(false);
    }

    /// The response future was dropped before the response head: logged with nginx's 499
    /// ("client closed request"; Apache would have waited for the member and logged its
    /// status) and `%X` `X`.
    pub(super) fn on_abandoned(mut self: Box<Self>) {
        self.status = 499;
        self.finish(false);
    }

    /// Whether the response has no body to send whatever its body says (so a body dropped
    /// unread is not an abort): `HEAD`, 1xx, 204, 304.
    pub(super) fn bodiless(&self) -> bool {
        self.method == Method::HEAD || self.status < 200 || self.status == 204 || self.status == 304
    }

    /// Renders and queues the line. `complete`: the response body ended (else it was
    /// dropped or failed: `%X` is `X`).
    pub(super) fn finish(self: Box<Self>, complete: bool) {
        let line = self.render(complete);
        self.shared.writer.send(line);
    }

    fn render(&self, complete: bool) -> String {
        let elapsed = self.started.elapsed();
        let end = self.begin + elapsed;
        let mut out = String::with_capacity(256);
        for item in self.shared.format.items.iter() {
            match item {
                Item::Literal(text) => out.push_str(text),
                Item::Field { field, condition } => {
                    if condition.as_ref().is_some_and(|c| !c.holds(self.status)) {
                        out.push('-');
                        continue;
                    }
                    self.field(&mut out, field, complete, elapsed, end);
                }
            }
        }
        out.push('\n');
        out
    }

    fn field(
        &self,
        out: &mut String,
        field: &Field,
        complete: bool,
        elapsed: std::time::Duration,
        end: SystemTime,
    ) {
        let dash_or = |out: &mut String, value: Option<&[u8]>| match value {
            Some(value) => push_escaped(out, value),
            None => out.push('-'),
        };
        match field {
            Field::ClientIp => match self.peer {
                Some(peer) => {
                    let _ = write!(out, "{}", peer.ip());
                }
                None => out.push('-'),
            },
            Field::LocalIp => match self.local {
                Some(local) => {
                    let _ = write!(out, "{}", local.ip());
                }
                None => out.push('-'),
            },
            Field::Dash => out.push('-'),
            Field::Time(format) => format.render(out, self.begin, end),
            Field::RequestLine => {
                push_escaped(out, self.method.as_str().as_bytes());
                out.push(' ');
                self.push_target(out);
                out.push(' ');
                out.push_str(protocol(self.version));
            }
            Field::Status => {
                let _ = write!(out, "{}", self.status);
            }
            Field::BytesClf if self.bytes == 0 => out.push('-'),
            Field::BytesClf | Field::Bytes => {
                let _ = write!(out, "{}", self.bytes);
            }
            Field::BytesSent => {
                let _ = write!(out, "{}", self.head_bytes + self.bytes);
            }
            Field::Duration(unit) => {
                let _ = match unit {
                    DurationUnit::Seconds => write!(out, "{}", elapsed.as_secs()),
                    DurationUnit::Millis => write!(out, "{}", elapsed.as_millis()),
                    DurationUnit::Micros => write!(out, "{}", elapsed.as_micros()),
                };
            }
            Field::Method => push_escaped(out, self.method.as_str().as_bytes()),
            Field::Path => push_escaped(out, self.uri.path().as_bytes()),
            Field::Query => {
                if let Some(query) = self.uri.query() {
                    out.push('?');
                    push_escaped(out, query.as_bytes());
                }
            }
            Field::Protocol => out.push_str(protocol(self.version)),
            Field::ServerName => match &self.shared.server_name {
                Some(name) => push_escaped(out, name.as_bytes()),
                None => match self.local {
                    Some(local) => {
                        let _ = write!(out, "{}", local.ip());
                    }
                    None => out.push('-'),
                },
            },
            Field::Host => {
                let host = self
                    .host
                    .as_ref()
                    .map(HeaderValue::as_bytes)
                    .or_else(|| self.uri.host().map(str::as_bytes))
                    .map(strip_port);
                match host {
                    Some(host) => push_escaped(out, host),
                    None => self.field(out, &Field::ServerName, complete, elapsed, end),
                }
            }
            Field::LocalPort => match self.local {
                Some(local) => {
                    let _ = write!(out, "{}", local.port());
                }
                None => out.push('-'),
            },
            Field::RemotePort => match self.peer {
                Some(peer) => {
                    let _ = write!(out, "{}", peer.port());
                }
                None => out.push('-'),
            },
            Field::Pid => {
                let _ = write!(out, "{}", std::process::id());
            }
            Field::RequestHeader(i) => dash_or(
                out,
                self.request_headers
                    .get(*i)
                    .and_then(Option::as_ref)
                    .map(HeaderValue::as_bytes),
            ),
            Field::ResponseHeader(i) => dash_or(
                out,
                self.response_headers
                    .get(*i)
                    .and_then(Option::as_ref)
                    .map(HeaderValue::as_bytes),
            ),
            Field::BalancerEnv(var) => {
                let value = self.balancer.as_ref().and_then(|info| match var {
                    BalancerVar::Name => Some(info.balancer_name()),
                    BalancerVar::WorkerName => Some(info.worker_name()),
                    BalancerVar::WorkerRoute => Some(info.worker_route()),
                    BalancerVar::SessionSticky => info.session_sticky(),
                    BalancerVar::SessionRoute => info.session_route(),
                    BalancerVar::RouteChanged => info.route_changed().then_some("1"),
                });
                dash_or(out, value.map(str::as_bytes));
            }
            Field::ConnectionStatus => out.push(if !complete {
                'X'
            } else if self.request_keep_alive && !self.response_close {
                '+'
            } else {
                '-'
            }),
        }
    }

    /// The request-target of `%r`: as sent for HTTP/1 (origin form, or the absolute form
    /// of a proxy request), the path and query for HTTP/2 and later (as Apache logs them).
    fn push_target(&self, out: &mut String) {
        let origin_form = self.uri.scheme().is_none() || self.version >= Version::HTTP_2;
        if origin_form {
            match self.uri.path_and_query() {
                Some(pq) => push_escaped(out, pq.as_str().as_bytes()),
                None => out.push_str(self.uri.path()),
            }
        } else {
            let target = self.uri.to_string();
            push_escaped(out, target.as_bytes());
        }
    }
}

/// The response head's size as hyper writes it in HTTP/1.1: `HTTP/1.1 200 OK`, each
/// header, the `date` it adds when missing, the `content-length` (of an exact size hint)
/// or `transfer-encoding: chunked` it adds when neither is given, and the empty line.
fn head_bytes<B: http_body::Body>(response: &Response<B>) -> u64 {
    /// `date: Fri, 04 Dec 2026 11:25:36 GMT\r\n`.
    const DATE_LINE: usize = "date: ".len() + 29 + 2;
    let status = response.status();
    let reason = status.canonical_reason().unwrap_or("");
    let mut size = "HTTP/1.1 200 \r\n".len() + reason.len();
    let headers = response.headers();
    for (name, value) in headers {
        size += name.as_str().len() + 2 + value.len() + 2;
    }
    if !headers.contains_key(DATE) {
        size += DATE_LINE;
    }
    let bodiless = status.is_informational()
        || status == http::StatusCode::NO_CONTENT
        || status == http::StatusCode::NOT_MODIFIED;
    if !bodiless
        && !headers.contains_key(CONTENT_LENGTH)
        && !headers.contains_key(TRANSFER_ENCODING)
    {
        size += match response.body().size_hint().exact() {
            Some(n) => {
                "content-length: ".len() + n.checked_ilog10().map_or(1, |d| d as usize + 1) + 2
            }
            None => "transfer-encoding: chunked\r\n".len(),
        };
    }
    (size + 2) as u64
}

/// `host[:port]` → `host` (an IPv6 literal keeps its brackets).
fn strip_port(host: &[u8]) -> &[u8] {
    let end = match host.iter().rposition(|&b| b == b':') {
        Some(colon) if !host[colon..].contains(&b']') => colon,
        _ => host.len(),
    };
    &host[..end]
}

const fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}
