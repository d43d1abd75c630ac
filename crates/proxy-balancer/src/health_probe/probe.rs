//! One probe: connect, send Apache's request, read and judge the answer.

use std::fmt;
use std::io;

use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::HeaderMap;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::core::MemberUrl;
use crate::proxy_pass::join_text;

use super::config::{ProbeConfig, ProbeMethod};

/// Bound on the status line and headers of a probe response: a health endpoint that
/// sends more is broken, and the bound keeps a hostile one from growing the buffer.
const MAX_HEAD: usize = 16 * 1024;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 4096;

/// Why a probe failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProbeFailure {
    /// The TCP connection could not be made (refused, unreachable, bad address).
    Connect,
    /// The probe did not finish within its timeout.
    Timeout,
    /// Reading or writing failed after connecting, or the peer closed early.
    Io,
    /// The TLS handshake with an `https`, `wss` or `h2` member failed (a certificate not
    /// trusted, for another name, expired; no TLS client: the `http-client` feature is off).
    Tls,
    /// The answer is not an HTTP/1.x response (or its head is over 16 KiB).
    InvalidResponse,
    /// The response was read, and the condition (default: status 200 to 399) failed it.
    Condition,
}

impl ProbeFailure {
    /// A short description: `connect failed`, `timed out` …
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect failed",
            Self::Timeout => "timed out",
            Self::Io => "i/o error",
            Self::Tls => "tls handshake failed",
            Self::InvalidResponse => "invalid response",
            Self::Condition => "condition failed",
        }
    }
}

impl fmt::Display for ProbeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeOutcome {
    status: Option<u16>,
    failure: Option<ProbeFailure>,
}

impl ProbeOutcome {
    pub(crate) const fn pass(status: Option<u16>) -> Self {
        Self {
            status,
            failure: None,
        }
    }

    pub(crate) const fn fail(status: Option<u16>, failure: ProbeFailure) -> Self {
        Self {
            status,
            failure: Some(failure),
        }
    }

    /// Whether the probe passed.
    #[must_use]
    pub const fn passed(&self) -> bool {
        self.failure.is_none()
    }

    /// The response status, for an HTTP probe that got one.
    #[must_use]
    pub const fn status(&self) -> Option<u16> {
        self.status
    }

    /// Why the probe failed, if it did.
    #[must_use]
    pub const fn failure(&self) -> Option<ProbeFailure> {
        self.failure
    }
}

// ===== request =====

/// The request line's target: `*` for OPTIONS, else the member's path followed by `hcuri`
/// exactly as given (Apache concatenates; `health` stays `health`), `/` if both are empty.
pub(crate) fn request_target(url: &MemberUrl, method: ProbeMethod, uri: &str) -> String {
    if matches!(method, ProbeMethod::Options | ProbeMethod::Options11) {
        return "*".to_owned();
    }
    join_text("", url.path(), uri, None)
}

/// The exact bytes Apache's mod_proxy_hcheck writes: request line, `Host: host:port`
/// (always with the port), `Connection: close` for HTTP/1.1, blank line.
pub(crate) fn request_bytes(url: &MemberUrl, method: ProbeMethod, uri: &str) -> Option<String> {
    let verb = method.http_method()?;
    let target = request_target(url, method, uri);
    let (host, port) = (url.host(), url.port());
    Some(if method.is_http11() {
        format!("{verb} {target} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n")
    } else {
        format!("{verb} {target} HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n")
    })
}

// ===== probe =====

impl ProbeConfig {
    /// Probes the member at `url` once, as configured, bounded by [`timeout`](Self::timeout).
    /// Never panics on what the peer sends: anything that is not a valid answer fails.
    ///
    /// An `https`, `wss` or `h2` member is probed over TLS (with [`ProbeConfig::with_tls`]'s
    /// client, else the system's trust store), for every method: `hcmethod=TCP` passes once
    /// the handshake has (Apache's TCP check stops at the TCP connect; a member whose
    /// certificate the requests would refuse is taken out here), the HTTP methods send their
    /// request inside TLS (ALPN `http/1.1`). A failed handshake is
    /// [`ProbeFailure::Tls`], the reason logged at debug level.
    pub async fn probe(&self, url: &MemberUrl) -> ProbeOutcome {
        match tokio::time::timeout(self.timeout, self.probe_unbounded(url)).await {
            Ok(outcome) => outcome,
            Err(_) => ProbeOutcome::fail(None, ProbeFailure::Timeout),
        }
    }

    async fn probe_unbounded(&self, url: &MemberUrl) -> ProbeOutcome {
        let Ok(stream) = TcpStream::connect((url.connect_host(), url.port())).await else {
            return ProbeOutcome::fail(None, ProbeFailure::Connect);
        };
        if !url.tls() {
            return self.exchange(url, stream).await;
        }
        #[cfg(feature = "http-client")]
        {
            let tls = match self
                .tls
                .clone()
                .map_or_else(crate::client::TlsClient::system, Ok)
            {
                Ok(tls) => tls,
                Err(error) => {
                    tracing::warn!(member = %url, %error, "health check: no TLS client");
                    return ProbeOutcome::fail(None, ProbeFailure::Tls);
                }
            };
            match tls.connect_http1(url.connect_host(), stream).await {
                Ok(stream) => self.exchange(url, stream).await,
                Err(error) => {
                    tracing::debug!(member = %url, %error, "health check: TLS handshake failed");
                    ProbeOutcome::fail(None, ProbeFailure::Tls)
                }
            }
        }
        #[cfg(not(feature = "http-client"))]
        {
            drop(stream);
            tracing::warn!(member = %url, "health check: no TLS client (the http-client feature is off)");
            ProbeOutcome::fail(None, ProbeFailure::Tls)
        }
    }

    /// Sends the request over a connected `stream` and judges the answer.
    async fn exchange<S>(&self, url: &MemberUrl, mut stream: S) -> ProbeOutcome
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let Some(request) = request_bytes(url, self.method, &self.uri) else {
            // TCP: connected is passed; the stream closes when dropped.
            return ProbeOutcome::pass(None);
        };
        if stream.write_all(request.as_bytes()).await.is_err() {
            return ProbeOutcome::fail(None, ProbeFailure::Io);
        }
        let mut reader = Reader {
            stream,
            buf: Vec::with_capacity(READ_CHUNK),
            pos: 0,
        };
        let head = match reader.read_head().await {
            Ok(head) => head,
            Err(failure) => return ProbeOutcome::fail(None, failure),
        };
        let Some((status, headers)) = parse_head(&head) else {
            return ProbeOutcome::fail(None, ProbeFailure::InvalidResponse);
        };
        let wants_body = self.condition.uses_body()
            && !self.method.is_head()
            && !matches!(status, 204 | 304)
            && !(100..200).contains(&status);
        let body = if wants_body {
            match reader.read_body(&headers, self.body_limit).await {
                Ok(body) => body,
                Err(failure) => return ProbeOutcome::fail(Some(status), failure),
            }
        } else {
            Vec::new()
        };
        if self.condition.passes(status, &headers, &body) {
            ProbeOutcome::pass(Some(status))
        } else {
            ProbeOutcome::fail(Some(status), ProbeFailure::Condition)
        }
    }
}

/// Parses `HTTP/1.x NNN reason` and the header lines. `None` for anything else.
pub(crate) fn parse_head(head: &[u8]) -> Option<(u16, HeaderMap)> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let status_line = lines.next()?;
    let rest = status_line.strip_prefix("HTTP/1.")?;
    let mut parts = rest.splitn(3, ' ');
    let minor = parts.next()?;
    if minor.len() != 1 || !minor.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let status: u16 = code.parse().ok()?;
    if !(100..=999).contains(&status) {
        return None;
    }
    let mut headers = HeaderMap::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
        let value = HeaderValue::from_str(value.trim()).ok()?;
        headers.append(name, value);
    }
    Some((status, headers))
}

/// A buffered reader over the probe connection.
struct Reader<S> {
    stream: S,
    buf: Vec<u8>,
    pos: usize,
}

impl<S: AsyncRead + Unpin> Reader<S> {
    /// Reads more bytes into the buffer; `Ok(false)` at end of stream.
    async fn fill(&mut self) -> io::Result<bool> {
        let start = self.buf.len();
        self.buf.resize(start + READ_CHUNK, 0);
        let n = self.stream.read(&mut self.buf[start..]).await;
        let n = n.inspect_err(|_| self.buf.truncate(start))?;
        self.buf.truncate(start + n);
        Ok(n > 0)
    }

    /// The status line and headers, up to and without the blank line.
    async fn read_head(&mut self) -> Result<Vec<u8>, ProbeFailure> {
        let mut searched = 0;
        loop {
            if let Some(end) = find_head_end(&self.buf, searched) {
                let (head_len, total) = end;
                let head = self.buf[..head_len].to_vec();
                self.pos = total;
                return Ok(head);
            }
            searched = self.buf.len().saturating_sub(3);
            if self.buf.len() > MAX_HEAD {
                return Err(ProbeFailure::InvalidResponse);
            }
            match self.fill().await {
                Ok(true) => {}
                // Closed before the head ended: nothing usable was sent.
                Ok(false) if self.buf.is_empty() => return Err(ProbeFailure::Io),
                Ok(false) => return Err(ProbeFailure::InvalidResponse),
                Err(_) => return Err(ProbeFailure::Io),
            }
        }
    }

    /// The body, framed by `Transfer-Encoding: chunked`, `Content-Length` or the end of the
    /// stream, cut at `limit` bytes.
    async fn read_body(
        &mut self,
        headers: &HeaderMap,
        limit: usize,
    ) -> Result<Vec<u8>, ProbeFailure> {
        let chunked = headers.get_all(TRANSFER_ENCODING).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.to_ascii_lowercase().contains("chunked"))
        });
        if chunked {
            return self.read_chunked(limit).await;
        }
        let length = match headers.get(CONTENT_LENGTH) {
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .ok_or(ProbeFailure::InvalidResponse)?,
            ),
            None => None,
        };
        let want = length.map_or(limit, |l| l.min(limit));
        while self.buf.len() - self.pos < want {
            match self.fill().await {
                Ok(true) => {}
                // Close-delimited body: what arrived is the body.
                Ok(false) if length.is_none() => break,
                Ok(false) | Err(_) => return Err(ProbeFailure::Io),
            }
        }
        let end = (self.pos + want).min(self.buf.len());
        Ok(self.buf[self.pos..end].to_vec())
    }

    async fn read_chunked(&mut self, limit: usize) -> Result<Vec<u8>, ProbeFailure> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line().await?;
            let size = line.split(';').next().unwrap_or("").trim();
            let size =
                usize::from_str_radix(size, 16).map_err(|_| ProbeFailure::InvalidResponse)?;
            if size == 0 || body.len() >= limit {
                return Ok(body);
            }
            let take = size.min(limit - body.len());
            while self.buf.len() - self.pos < take {
                if !self.fill().await.map_err(|_| ProbeFailure::Io)? {
                    return Err(ProbeFailure::Io);
                }
            }
            body.extend_from_slice(&self.buf[self.pos..self.pos + take]);
            if take < size {
                // Cut at the limit: the rest is not needed.
                return Ok(body);
            }
            self.pos += take;
            // The CRLF after the chunk data.
            let _ = self.read_line().await?;
        }
    }

    /// One line (without its line end), bounded by [`MAX_HEAD`].
    async fn read_line(&mut self) -> Result<String, ProbeFailure> {
        loop {
            if let Some(i) = self.buf[self.pos..].iter().position(|&b| b == b'\n') {
                let line = &self.buf[self.pos..self.pos + i];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let line = String::from_utf8_lossy(line).into_owned();
                self.pos += i + 1;
                return Ok(line);
            }
            if self.buf.len() - self.pos > MAX_HEAD {
                return Err(ProbeFailure::InvalidResponse);
            }
            if !self.fill().await.map_err(|_| ProbeFailure::Io)? {
                return Err(ProbeFailure::Io);
            }
        }
    }
}

/// Finds the blank line ending a head, searching from `from`: `(head length, head length
/// plus the blank line)`. Accepts bare `\n` line ends.
fn find_head_end(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some((i + 1, i + 2));
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some((i + 1, i + 3));
            }
        }
        i += 1;
    }
    None
}
