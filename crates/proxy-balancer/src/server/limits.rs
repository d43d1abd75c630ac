//! What the server allows a client: timeouts, sizes and the connection cap, with Apache's
//! names and defaults.

use std::time::Duration;

/// A read timeout with a minimum rate, as `mod_reqtimeout`'s `RequestReadTimeout` gives one
/// for the request head (`header=`) and for the body (`body=`).
///
/// The client has `initial` to send; each `min_rate` bytes received add a second, up to
/// `max` (none: no upper bound). A `ReadTimeout` with `initial` zero is off.
///
/// ```
/// use std::time::Duration;
///
/// use proxy_balancer::server::ReadTimeout;
///
/// // RequestReadTimeout header=20-40,MinRate=500
/// let header = ReadTimeout::new(Duration::from_secs(20))
///     .max(Duration::from_secs(40))
///     .min_rate(500);
/// assert_eq!(header.deadline_after(0), Some(Duration::from_secs(20)));
/// assert_eq!(header.deadline_after(5_000), Some(Duration::from_secs(30)));
/// assert_eq!(header.deadline_after(50_000), Some(Duration::from_secs(40)));
/// assert_eq!(ReadTimeout::OFF.deadline_after(0), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadTimeout {
    initial: Duration,
    max: Option<Duration>,
    min_rate: Option<u32>,
}

// ===== impl ReadTimeout =====

impl ReadTimeout {
    /// No timeout (`header=0`, `body=0`).
    pub const OFF: Self = Self {
        initial: Duration::ZERO,
        max: None,
        min_rate: None,
    };

    /// A fixed timeout of `initial` (`header=20`), not extended by the bytes received.
    #[must_use]
    pub const fn new(initial: Duration) -> Self {
        Self {
            initial,
            max: None,
            min_rate: None,
        }
    }

    /// The most the timeout may grow to with [`min_rate`](Self::min_rate)
    /// (`header=20-40`: 40 s).
    #[must_use]
    pub const fn max(mut self, max: Duration) -> Self {
        self.max = Some(max);
        self
    }

    /// Each `bytes_per_second` bytes received add one second to the timeout
    /// (`MinRate=500`). Zero means no extension.
    #[must_use]
    pub const fn min_rate(mut self, bytes_per_second: u32) -> Self {
        self.min_rate = if bytes_per_second == 0 {
            None
        } else {
            Some(bytes_per_second)
        };
        self
    }

    /// The initial timeout (zero: off).
    #[must_use]
    pub const fn initial(&self) -> Duration {
        self.initial
    }

    /// The upper bound, if any.
    #[must_use]
    pub const fn max_timeout(&self) -> Option<Duration> {
        self.max
    }

    /// The minimum rate in bytes per second, if any.
    #[must_use]
    pub const fn rate(&self) -> Option<u32> {
        self.min_rate
    }

    /// Whether this timeout is off (`initial` zero).
    #[must_use]
    pub const fn is_off(&self) -> bool {
        self.initial.is_zero()
    }

    /// How long after the start of the read the client may take, having sent `received`
    /// bytes so far; `None` when the timeout is off.
    #[must_use]
    pub fn deadline_after(&self, received: u64) -> Option<Duration> {
        if self.is_off() {
            return None;
        }
        let extension = self.min_rate.map_or(Duration::ZERO, |rate| {
            Duration::from_secs(received / u64::from(rate))
        });
        let total = self.initial.saturating_add(extension);
        Some(
            self.max
                .map_or(total, |max| total.min(max.max(self.initial))),
        )
    }
}

/// What a [`Server`](super::Server) allows each client: Apache's front-door limits and
/// timeouts, with Apache's defaults.
///
/// | setter | Apache directive | default |
/// | --- | --- | --- |
/// | [`header_timeout`](Self::header_timeout) | `RequestReadTimeout header=` | 20–40 s, MinRate 500 |
/// | [`body_timeout`](Self::body_timeout) | `RequestReadTimeout body=` | 20 s, MinRate 500 |
/// | [`handshake_timeout`](Self::handshake_timeout) | `RequestReadTimeout handshake=` (HTTPS only) | `TimeOut` |
/// | [`keep_alive`](Self::keep_alive) | `KeepAlive` | on |
/// | [`keep_alive_timeout`](Self::keep_alive_timeout) | `KeepAliveTimeout` | 5 s |
/// | [`max_keep_alive_requests`](Self::max_keep_alive_requests) | `MaxKeepAliveRequests` | 100 (0: unlimited) |
/// | [`timeout`](Self::timeout) | `TimeOut` (each write; head reads when `header=0`) | 60 s |
/// | [`max_connections`](Self::max_connections) | (`MaxRequestWorkers`, closest) | from `RLIMIT_NOFILE` |
/// | [`limit_request_line`](Self::limit_request_line) | `LimitRequestLine` | 8,190 bytes |
/// | [`limit_request_field_size`](Self::limit_request_field_size) | `LimitRequestFieldSize` | 8,190 bytes |
/// | [`limit_request_fields`](Self::limit_request_fields) | `LimitRequestFields` | 100 |
/// | [`limit_request_body`](Self::limit_request_body) | `LimitRequestBody` | 1 GiB (Apache 2.4.54+; 0: unlimited) |
/// | [`limit_request_head`](Self::limit_request_head) | (none; nginx `large_client_header_buffers`) | 32 KiB |
///
/// ```
/// use std::time::Duration;
///
/// use proxy_balancer::server::{ClientLimits, Server};
///
/// let limits = ClientLimits::default()
///     .keep_alive_timeout(Duration::from_secs(2))
///     .limit_request_body(10 << 20);
/// let server = Server::new().limits(limits);
/// # let _ = server;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientLimits {
    pub(crate) header_timeout: ReadTimeout,
    pub(crate) handshake_timeout: Option<Duration>,
    pub(crate) body_timeout: ReadTimeout,
    pub(crate) keep_alive: bool,
    pub(crate) keep_alive_timeout: Duration,
    pub(crate) max_keep_alive_requests: u32,
    pub(crate) timeout: Duration,
    pub(crate) max_connections: Option<usize>,
    pub(crate) limit_request_line: usize,
    pub(crate) limit_request_field_size: usize,
    pub(crate) limit_request_fields: usize,
    pub(crate) limit_request_body: u64,
    pub(crate) limit_request_head: usize,
}

/// Apache's `LimitRequestLine` and `LimitRequestFieldSize` default.
pub const DEFAULT_LIMIT_REQUEST_LINE: usize = 8190;
/// Apache's `LimitRequestFields` default.
pub const DEFAULT_LIMIT_REQUEST_FIELDS: usize = 100;
/// Apache's `LimitRequestBody` default since 2.4.54 (1 GiB).
pub const DEFAULT_LIMIT_REQUEST_BODY: u64 = 1 << 30;
/// The default cap on a whole request head, [`ClientLimits::limit_request_head`]: 32 KiB,
/// nginx's default (`large_client_header_buffers 4 8k`), twice HAProxy's 16 KiB buffer.
/// It holds a request line and a header field each at Apache's 8,190-byte maximum with
/// room to spare, and keeps memory bounded: 1,000 slow clients each holding an
/// unfinished head hold at most about 32 MB of buffers.
pub const DEFAULT_LIMIT_REQUEST_HEAD: usize = 32 * 1024;
/// hyper's smallest read buffer; a head cap below it is raised to it.
pub(crate) const MIN_LIMIT_REQUEST_HEAD: usize = 8192;

// ===== impl ClientLimits =====

impl ClientLimits {
    /// Apache's defaults (see the table above).
    #[must_use]
    pub const fn new() -> Self {
        Self {
            header_timeout: ReadTimeout::new(Duration::from_secs(20))
                .max(Duration::from_secs(40))
                .min_rate(500),
            body_timeout: ReadTimeout::new(Duration::from_secs(20)).min_rate(500),
            handshake_timeout: None,
            keep_alive: true,
            keep_alive_timeout: Duration::from_secs(5),
            max_keep_alive_requests: 100,
            timeout: Duration::from_secs(60),
            max_connections: None,
            limit_request_line: DEFAULT_LIMIT_REQUEST_LINE,
            limit_request_field_size: DEFAULT_LIMIT_REQUEST_LINE,
            limit_request_fields: DEFAULT_LIMIT_REQUEST_FIELDS,
            limit_request_body: DEFAULT_LIMIT_REQUEST_BODY,
            limit_request_head: DEFAULT_LIMIT_REQUEST_HEAD,
        }
    }

    /// How long a client may take to send a request head (`RequestReadTimeout header=`),
    /// from its first byte, or from the connection's start for the first request.
    #[must_use]
    pub const fn header_timeout(mut self, timeout: ReadTimeout) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// How long an HTTPS client ([`Server::tls`](super::Server::tls)) may take to finish
    /// its TLS handshake, from the accept (`RequestReadTimeout handshake=`); by default
    /// [`timeout`](Self::timeout) (`TimeOut`, 60 s). The first request head's time
    /// ([`header_timeout`](Self::header_timeout)) starts when the handshake is done.
    ///
    /// # Apache
    ///
    /// With the default `handshake=0`, Apache bounds each read of the handshake by
    /// `TimeOut`; here the whole handshake is bounded by it, so a client dripping one byte
    /// a minute does not hold the connection.
    #[must_use]
    pub const fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = Some(timeout);
        self
    }

    /// The time a TLS handshake may take.
    pub(crate) fn tls_handshake_limit(&self) -> Duration {
        self.handshake_timeout.unwrap_or(self.timeout)
    }

    /// How long a client may take to send a request body (`RequestReadTimeout body=`),
    /// from the moment the body is first read.
    #[must_use]
    pub const fn body_timeout(mut self, timeout: ReadTimeout) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// Whether a connection may carry more than one request (`KeepAlive On|Off`).
    #[must_use]
    pub const fn keep_alive(mut self, on: bool) -> Self {
        self.keep_alive = on;
        self
    }

    /// How long an idle connection waits for its next request (`KeepAliveTimeout`).
    #[must_use]
    pub const fn keep_alive_timeout(mut self, timeout: Duration) -> Self {
        self.keep_alive_timeout = timeout;
        self
    }

    /// How many requests one connection may carry (`MaxKeepAliveRequests`; 0: unlimited).
    #[must_use]
    pub const fn max_keep_alive_requests(mut self, requests: u32) -> Self {
        self.max_keep_alive_requests = requests;
        self
    }

    /// The longest wait for each write to the client (`TimeOut`): a client that stops
    /// reading its response is closed once a write has waited this long. Reads have their
    /// own deadlines (header, keep-alive, the request body's); with the header timeout off
    /// (`header=0`) this bounds each read of a request head instead, as in Apache.
    #[must_use]
    pub const fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The most client connections open at once; `None` (the default) derives it from the
    /// open-file limit when the server starts: (`RLIMIT_NOFILE` soft limit − 64) / 2, which
    /// leaves one descriptor per client for a member connection and 64 for listeners, logs
    /// and configuration files (no limit: no cap). `Some(0)` counts as 1.
    ///
    /// At the cap the server stops accepting (new clients wait in the listen backlog) and
    /// closes the connections that are idle, no request in flight and no byte of a next
    /// one received, as Apache's event MPM closes keep-alive connections under pressure;
    /// the same happens when accept fails for want of descriptors (`EMFILE`, `ENFILE`).
    /// Call [`raise_nofile_limit`](super::raise_nofile_limit) first to have room.
    #[must_use]
    pub const fn max_connections(mut self, connections: Option<usize>) -> Self {
        self.max_connections = connections;
        self
    }

    /// The longest request line, in bytes (`LimitRequestLine`).
    #[must_use]
    pub const fn limit_request_line(mut self, bytes: usize) -> Self {
        self.limit_request_line = bytes;
        self
    }

    /// The longest header field, name and value, in bytes (`LimitRequestFieldSize`).
    #[must_use]
    pub const fn limit_request_field_size(mut self, bytes: usize) -> Self {
        self.limit_request_field_size = bytes;
        self
    }

    /// The most header fields in a request (`LimitRequestFields`).
    #[must_use]
    pub const fn limit_request_fields(mut self, fields: usize) -> Self {
        self.limit_request_fields = fields;
        self
    }

    /// The largest request body, in bytes (`LimitRequestBody`; 0: unlimited).
    #[must_use]
    pub const fn limit_request_body(mut self, bytes: u64) -> Self {
        self.limit_request_body = bytes;
        self
    }

    /// The largest request head (request line and header fields together), in bytes; a
    /// larger head is answered 431 and the connection closed. Default 32 KiB
    /// ([`DEFAULT_LIMIT_REQUEST_HEAD`]); values below 8 KiB are raised to 8 KiB (hyper's
    /// smallest read buffer). Apache has no such cap (only one line at a time,
    /// `LimitRequestLine` and `LimitRequestFieldSize`, times `LimitRequestFields`, up to
    /// 800 KB); nginx caps a head at 32 KiB and HAProxy at 16 KiB. This is what bounds the
    /// memory a slow client can hold with an unfinished head. For HTTP/2 it is the
    /// advertised `SETTINGS_MAX_HEADER_LIST_SIZE`.
    #[must_use]
    pub const fn limit_request_head(mut self, bytes: usize) -> Self {
        self.limit_request_head = bytes;
        self
    }

    /// The request head cap ([`limit_request_head`](Self::limit_request_head)).
    #[must_use]
    pub const fn get_limit_request_head(&self) -> usize {
        if self.limit_request_head < MIN_LIMIT_REQUEST_HEAD {
            MIN_LIMIT_REQUEST_HEAD
        } else {
            self.limit_request_head
        }
    }

    /// `RequestReadTimeout header=`.
    #[must_use]
    pub const fn get_header_timeout(&self) -> ReadTimeout {
        self.header_timeout
    }

    /// `RequestReadTimeout body=`.
    #[must_use]
    pub const fn get_body_timeout(&self) -> ReadTimeout {
        self.body_timeout
    }

    /// `KeepAlive`.
    #[must_use]
    pub const fn get_keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// `KeepAliveTimeout`.
    #[must_use]
    pub const fn get_keep_alive_timeout(&self) -> Duration {
        self.keep_alive_timeout
    }

    /// `MaxKeepAliveRequests`.
    #[must_use]
    pub const fn get_max_keep_alive_requests(&self) -> u32 {
        self.max_keep_alive_requests
    }

    /// `TimeOut`.
    #[must_use]
    pub const fn get_timeout(&self) -> Duration {
        self.timeout
    }

    /// The connection cap, if set.
    #[must_use]
    pub const fn get_max_connections(&self) -> Option<usize> {
        self.max_connections
    }

    /// `LimitRequestLine`.
    #[must_use]
    pub const fn get_limit_request_line(&self) -> usize {
        self.limit_request_line
    }

    /// `LimitRequestFieldSize`.
    #[must_use]
    pub const fn get_limit_request_field_size(&self) -> usize {
        self.limit_request_field_size
    }

    /// `LimitRequestFields`.
    #[must_use]
    pub const fn get_limit_request_fields(&self) -> usize {
        self.limit_request_fields
    }

    /// `LimitRequestBody`.
    #[must_use]
    pub const fn get_limit_request_body(&self) -> u64 {
        self.limit_request_body
    }
}

#[cfg(feature = "apache-config")]
#[cfg_attr(docsrs, doc(cfg(feature = "apache-config")))]
impl ClientLimits {
    /// The limits an Apache configuration gives (`Timeout`, `KeepAlive`,
    /// `KeepAliveTimeout`, `MaxKeepAliveRequests`, `RequestReadTimeout header= body=`,
    /// `LimitRequestLine`, `LimitRequestFieldSize`, `LimitRequestFields`,
    /// `LimitRequestBody`, in server context), Apache's defaults for the others. The
    /// parser has checked the values; nothing here fails.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use proxy_balancer::apache_config::parse;
    /// use proxy_balancer::server::ClientLimits;
    ///
    /// let config = parse("KeepAliveTimeout 2\nRequestReadTimeout header=10-30,MinRate=1000\n")?;
    /// let limits = ClientLimits::from_config(&config);
    /// assert_eq!(limits.get_keep_alive_timeout(), Duration::from_secs(2));
    /// assert_eq!(limits.get_header_timeout().max_timeout(), Some(Duration::from_secs(30)));
    /// assert_eq!(limits.get_timeout(), Duration::from_secs(60));
    /// # Ok::<(), proxy_balancer::apache_config::ParseErrors>(())
    /// ```
    #[must_use]
    pub fn from_config(config: &proxy_balancer_apache_config::Config) -> Self {
        fn stage(s: proxy_balancer_apache_config::ReadTimeoutStage) -> ReadTimeout {
            if s.timeout == 0 {
                return ReadTimeout::OFF;
            }
            let mut t = ReadTimeout::new(Duration::from_secs(u64::from(s.timeout)));
            if let Some(max) = s.max_timeout {
                t = t.max(Duration::from_secs(u64::from(max)));
            }
            if let Some(rate) = s.min_rate {
                t = t.min_rate(rate);
            }
            t
        }
        let f = &config.front;
        let mut limits = Self::new();
        if let Some(t) = f.timeout {
            limits.timeout = t;
        }
        if let Some(on) = f.keep_alive {
            limits.keep_alive = on;
        }
        if let Some(t) = f.keep_alive_timeout {
            limits.keep_alive_timeout = t;
        }
        if let Some(n) = f.max_keep_alive_requests {
            limits.max_keep_alive_requests = n;
        }
        if let Some(s) = f.header_timeout {
            limits.header_timeout = stage(s);
        }
        if let Some(s) = f.body_timeout {
            limits.body_timeout = stage(s);
        }
        if let Some(t) = f.handshake_timeout {
            limits.handshake_timeout = Some(t);
        }
        let size = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
        if let Some(n) = f.limit_request_line {
            limits.limit_request_line = size(n);
        }
        if let Some(n) = f.limit_request_field_size {
            limits.limit_request_field_size = size(n);
        }
        if let Some(n) = f.limit_request_fields {
            limits.limit_request_fields = size(n);
        }
        if let Some(n) = f.limit_request_body {
            limits.limit_request_body = n;
        }
        limits
    }
}

impl Default for ClientLimits {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_timeout_grows_with_the_bytes_up_to_its_max() {
        let header = ClientLimits::new().get_header_timeout();
        assert_eq!(header.deadline_after(0), Some(Duration::from_secs(20)));
        assert_eq!(header.deadline_after(499), Some(Duration::from_secs(20)));
        assert_eq!(header.deadline_after(500), Some(Duration::from_secs(21)));
        assert_eq!(
            header.deadline_after(1 << 40),
            Some(Duration::from_secs(40))
        );
    }

    #[test]
    fn body_timeout_has_no_max() {
        let body = ClientLimits::new().get_body_timeout();
        assert_eq!(
            body.deadline_after(500_000),
            Some(Duration::from_secs(1020))
        );
    }

    #[cfg(feature = "apache-config")]
    #[test]
    fn every_directive_of_the_config_is_applied() {
        let config = proxy_balancer_apache_config::parse(
            "Timeout 30\nKeepAlive Off\nKeepAliveTimeout 1500ms\nMaxKeepAliveRequests 7\n\
             RequestReadTimeout header=0 body=5-9,MinRate=100\nLimitRequestLine 4000\n\
             LimitRequestFieldSize 100\nLimitRequestFields 0\nLimitRequestBody 42\n",
        )
        .unwrap();
        let limits = ClientLimits::from_config(&config);
        let expected = ClientLimits::new()
            .timeout(Duration::from_secs(30))
            .keep_alive(false)
            .keep_alive_timeout(Duration::from_millis(1500))
            .max_keep_alive_requests(7)
            .header_timeout(ReadTimeout::OFF)
            .body_timeout(
                ReadTimeout::new(Duration::from_secs(5))
                    .max(Duration::from_secs(9))
                    .min_rate(100),
            )
            .limit_request_line(4000)
            .limit_request_field_size(100)
            .limit_request_fields(0)
            .limit_request_body(42);
        assert_eq!(limits, expected);
        let none = proxy_balancer_apache_config::parse("").unwrap();
        assert_eq!(ClientLimits::from_config(&none), ClientLimits::new());
    }

    #[test]
    fn a_zero_rate_does_not_extend() {
        let fixed = ReadTimeout::new(Duration::from_secs(3)).min_rate(0);
        assert_eq!(
            fixed.deadline_after(1_000_000),
            Some(Duration::from_secs(3))
        );
    }
}
