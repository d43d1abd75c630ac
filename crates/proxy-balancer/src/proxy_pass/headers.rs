use std::io::Write as _;
use std::net::IpAddr;

use http::header::{
    Entry, HeaderMap, HeaderName, HeaderValue, CONNECTION, HOST, PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};

use super::mapping::is_valid_authority;

/// The hop-by-hop headers a proxy never forwards (RFC 9110 section 7.6.1, and the ones
/// Apache's mod_proxy drops), as header names: removing by name skips parsing the text of
/// each one on every request. A `static`, not a `const`: a `const` array would be built and
/// dropped at every use.
static HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    // Non-standard, sent by some old clients and proxies; Apache removes it too.
    HeaderName::from_static("proxy-connection"),
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_SERVER: HeaderName = HeaderName::from_static("x-forwarded-server");

/// How the forwarding layer ([`ForwardLayer`](super::ForwardLayer), [`forward_request`](super::forward_request))
/// and [`prepare_request_headers`] set `Host` and the `X-Forwarded-*` headers.
///
/// [`Default`] is Apache's default: `ProxyPreserveHost Off`, `ProxyAddHeaders On`, and no
/// server name, which leaves out `X-Forwarded-Server` (Apache always sends its
/// `ServerName` there; we do not guess one).
///
/// ```
/// use proxy_balancer::proxy_pass::ForwardedHeaders;
///
/// let opts = ForwardedHeaders::new()
///     .with_preserve_host(true)
///     .with_server_name("proxy1.example.com");
/// assert!(opts.preserve_host());
/// assert!(opts.add_headers());
/// assert_eq!(opts.server_name(), Some("proxy1.example.com"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedHeaders {
    preserve_host: bool,
    add_headers: bool,
    server_name: Option<String>,
    /// `ProxyVia`, `ProxyErrorOverride`, `ProxyBadHeader`, `Proxy100Continue`.
    hop: super::hop::HopOptions,
}

// ===== impl ForwardedHeaders =====

impl ForwardedHeaders {
    /// Apache's defaults: the member's authority as `Host`, `X-Forwarded-For` and
    /// `X-Forwarded-Host` added, no `X-Forwarded-Server`.
    pub const fn new() -> Self {
        Self {
            preserve_host: false,
            add_headers: true,
            server_name: None,
            hop: super::hop::HopOptions::new(),
        }
    }

    /// The per-server rules of the hop (`ProxyVia`, `ProxyErrorOverride`,
    /// `ProxyBadHeader`, `Proxy100Continue`).
    #[must_use]
    pub fn with_hop(mut self, hop: super::hop::HopOptions) -> Self {
        self.hop = hop;
        self
    }

    /// The per-server rules of the hop.
    pub const fn hop(&self) -> &super::hop::HopOptions {
        &self.hop
    }

    /// Keep the client's `Host` (`true`) or send the member's authority (`false`, the
    /// default).
    ///
    /// # Apache
    ///
    /// `ProxyPreserveHost On|Off`.
    #[must_use]
    pub fn with_preserve_host(mut self, preserve_host: bool) -> Self {
        self.preserve_host = preserve_host;
        self
    }

    /// Add the `X-Forwarded-*` headers (`true`, the default) or not.
    ///
    /// # Apache
    ///
    /// `ProxyAddHeaders On|Off`.
    #[must_use]
    pub fn with_add_headers(mut self, add_headers: bool) -> Self {
        self.add_headers = add_headers;
        self
    }

    /// The name of this proxy, sent as `X-Forwarded-Server` (and used as `Host` when
    /// `preserve_host` is on but the client sent none). A name that is not a valid header
    /// value is not sent.
    ///
    /// # Apache
    ///
    /// `ServerName`.
    #[must_use]
    pub fn with_server_name(mut self, server_name: impl Into<String>) -> Self {
        self.server_name = Some(server_name.into());
        self
    }

    /// Whether the client's `Host` is kept (Apache's `ProxyPreserveHost`).
    pub const fn preserve_host(&self) -> bool {
        self.preserve_host
    }

    /// Whether the `X-Forwarded-*` headers are added (Apache's `ProxyAddHeaders`).
    pub const fn add_headers(&self) -> bool {
        self.add_headers
    }

    /// The name sent as `X-Forwarded-Server` (Apache's `ServerName`), if any.
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }
}

impl Default for ForwardedHeaders {
    fn default() -> Self {
        Self::new()
    }
}

// ===== free functions =====

/// Whether `name` is a hop-by-hop header that [`strip_hop_by_hop`] always removes
/// (`Connection`, `Keep-Alive`, `Proxy-Authenticate`, `Proxy-Authorization`,
/// `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`).
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    hop_index(name.as_str().as_bytes()).is_some()
}

/// The position in [`HOP_BY_HOP`] of a lowercase header name, or of a `Connection` token in
/// any case.
fn hop_index(name: &[u8]) -> Option<usize> {
    // Lengths first: most names are of none of these lengths.
    let candidates: &[usize] = match name.len() {
        2 => &[5],
        7 => &[6, 8],
        10 => &[0, 1],
        16 => &[4],
        17 => &[7],
        18 => &[2],
        19 => &[3],
        _ => return None,
    };
    candidates
        .iter()
        .copied()
        .find(|&i| HOP_BY_HOP[i].as_str().as_bytes().eq_ignore_ascii_case(name))
}

/// [`hop_index`] of a header name, which is lowercase: compared as it is, most names
/// ruled out by their length alone.
fn hop_name_index(name: &HeaderName) -> Option<usize> {
    let name = name.as_str();
    let i = match name.len() {
        2 => 5,
        7 if name.as_bytes().first() == Some(&b't') => 6,
        7 => 8,
        10 if name.as_bytes().first() == Some(&b'c') => 0,
        10 => 1,
        16 => 4,
        17 => 7,
        18 => 2,
        19 => 3,
        _ => return None,
    };
    (HOP_BY_HOP[i].as_str() == name).then_some(i)
}

/// Removes the hop-by-hop headers: every header named in a `Connection` value, then the
/// fixed list of [`is_hop_by_hop`]. For requests and responses alike.
///
/// `Connection` values are split at commas and whitespace, as Apache does; tokens that are
/// not header names are ignored, and values need not be UTF-8.
///
/// Because `Upgrade` and `Connection` go, a WebSocket upgrade must be decided before
/// calling this: [`forward_request`](super::forward_request) keeps the requested protocol as
/// an [`UpgradeProtocol`](super::UpgradeProtocol) extension for the member client (Apache
/// needs `upgrade=` or a `ws://` member for the same reason).
///
/// # Apache
///
/// `ap_proxy_clear_connection` and the hop-by-hop filter of mod_proxy_http.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the message's few names: which of the fixed list are present (most
    // messages carry none, or only `Connection`).
    let mut present = 0u16;
    for name in headers.keys() {
        if let Some(i) = hop_name_index(name) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    // The names `Connection` lists: fixed ones join the mask, others are collected (no
    // allocation for the usual `Connection: keep-alive`).
    let mut named = Vec::new();
    if present & 1 != 0 {
        for value in headers.get_all(CONNECTION) {
            // The usual value, without splitting it.
            let value = value.as_bytes();
            if value.eq_ignore_ascii_case(b"keep-alive") {
                present |= 1 << 1;
                continue;
            }
            let tokens = value
                .split(|b| *b == b',' || b.is_ascii_whitespace())
                .filter(|token| !token.is_empty());
            for token in tokens {
                match hop_index(token) {
                    Some(i) => present |= 1 << i,
                    None => named.extend(HeaderName::from_bytes(token).ok()),
                }
            }
        }
    }
    for name in named {
        headers.remove(name);
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
}

/// Removes a member answer's hop-by-hop headers ([`strip_hop_by_hop`]), then, when the
/// member client put an [`UpgradeProtocol`](super::UpgradeProtocol) on it (a tunnelled
/// `101 Switching Protocols`, or an answer naming a protocol the member takes), sets
/// `Connection: Upgrade` and that `Upgrade`, as Apache's mod_proxy_http writes them.
pub(crate) fn strip_response_hop_by_hop(headers: &mut HeaderMap, extensions: &http::Extensions) {
    strip_hop_by_hop(headers);
    if let Some(super::UpgradeProtocol(protocol)) = extensions.get::<super::UpgradeProtocol>() {
        headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(UPGRADE, protocol.clone());
    }
}

/// Prepares the headers of a request for the hop to a member.
///
/// In this order:
/// 1. remembers the client's `Host`;
/// 2. [`strip_hop_by_hop`]; a client cannot remove the headers added below by naming them
///    in `Connection`, and `Host` comes back in step 4 even if `Connection` named it;
/// 3. when [`add_headers`](ForwardedHeaders::add_headers) is on: appends `client_ip` to
///    `X-Forwarded-For`, the client's `Host` to `X-Forwarded-Host`, and the server name
///    (if set) to `X-Forwarded-Server`. Appending joins any existing values into one with
///    `", "`, as Apache's `apr_table_mergen` does; a missing `client_ip` or `Host` adds
///    nothing;
/// 4. sets `Host`: with [`preserve_host`](ForwardedHeaders::preserve_host) off, to
///    `member_authority` (`127.0.0.1:8001`) minus any `user@` and a `:80` port, as Apache
///    leaves out port 80 (an authority that does not parse counts as invalid); with it on, to the client's `Host`, or when there was none, to
///    the server name, or else to the member's authority. A value that is not a valid
///    header value removes `Host`, letting the HTTP client derive it from the URI.
///
/// For HTTP/2 requests, whose authority is in the URI rather than `Host`, insert a `Host`
/// built from the URI's authority before calling this.
///
/// This sees a header map only, so it cannot mark the request: the built-in member client
/// ([`HttpMember`](crate::client::HttpMember)) sets `Host` to the member's authority
/// unless the request also carries [`PreserveHost`](super::PreserveHost).
/// [`forward_request`](super::forward_request) and [`ForwardLayer`](super::ForwardLayer)
/// take the whole request and do both, and read the `:authority` themselves.
///
/// # Apache
///
/// `ProxyPreserveHost`, `ProxyAddHeaders` and the request side of mod_proxy_http
/// (`ap_proxy_create_hdrbrgd`).
pub fn prepare_request_headers(
    headers: &mut HeaderMap,
    opts: &ForwardedHeaders,
    client_ip: Option<IpAddr>,
    member_authority: &str,
) {
    let client_host = headers.get(HOST).cloned();
    strip_hop_by_hop(headers);
    add_forwarded(headers, opts, client_ip, client_host.as_ref());

    let member_host = || {
        let host = member_host(member_authority);
        is_valid_authority(host)
            .then(|| HeaderValue::from_str(host).ok())
            .flatten()
    };
    let host = if opts.preserve_host {
        client_host
            .or_else(|| {
                opts.server_name()
                    .and_then(|n| HeaderValue::from_str(n).ok())
            })
            .or_else(member_host)
    } else {
        member_host()
    };
    match host {
        Some(host) => {
            headers.insert(HOST, host);
        }
        None => {
            // An empty authority is the caller leaving Host to the member client: no news.
            if !member_authority.is_empty() {
                tracing::debug!(
                    member_authority,
                    "no valid Host for the member; Host removed"
                );
            }
            headers.remove(HOST);
        }
    }
}

/// Step 3 of [`prepare_request_headers`], shared with the forwarding layer: when
/// `ProxyAddHeaders` is on, appends `client_ip` to `X-Forwarded-For`, `client_host` to
/// `X-Forwarded-Host` and the server name to `X-Forwarded-Server`.
pub(super) fn add_forwarded(
    headers: &mut HeaderMap,
    opts: &ForwardedHeaders,
    client_ip: Option<IpAddr>,
    client_host: Option<&HeaderValue>,
) {
    if !opts.add_headers {
        return;
    }
    if let Some(ip) = client_ip {
        // An address is at most 45 bytes (IPv4-mapped IPv6); written without a String, an
        // IPv4 one without the formatting machinery (a tenth of its instructions).
        let mut buf = [0u8; 48];
        let len = match ip {
            IpAddr::V4(v4) => write_ipv4(&mut buf, v4),
            IpAddr::V6(_) => {
                let mut cursor = std::io::Cursor::new(&mut buf[..]);
                match write!(cursor, "{ip}") {
                    Ok(()) => usize::try_from(cursor.position()).unwrap_or(0),
                    Err(_) => 0,
                }
            }
        };
        if len > 0 {
            append_merged(
                headers,
                X_FORWARDED_FOR,
                HeaderValue::from_bytes(buf.get(..len).unwrap_or_default()),
            );
        }
    }
    if let Some(host) = client_host {
        // The client's value itself (a reference count, no copy) when `from_bytes` would
        // take its bytes, as it did.
        let valid = host
            .as_bytes()
            .iter()
            .all(|&b| (b >= 32 && b != 127) || b == b'\t');
        let value = if valid {
            let mut value = host.clone();
            value.set_sensitive(false);
            Ok(value)
        } else {
            HeaderValue::from_bytes(host.as_bytes())
        };
        append_merged(headers, X_FORWARDED_HOST, value);
    }
    if let Some(name) = opts.server_name() {
        append_merged(
            headers,
            X_FORWARDED_SERVER,
            HeaderValue::from_bytes(name.as_bytes()),
        );
    }
}

/// Writes an IPv4 address in dotted decimal (what its `Display` writes) at the start of
/// `buf`; returns its length (at most 15).
fn write_ipv4(buf: &mut [u8; 48], ip: std::net::Ipv4Addr) -> usize {
    let mut len = 0;
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            buf[len] = b'.';
            len += 1;
        }
        if octet >= 100 {
            buf[len] = b'0' + octet / 100;
            len += 1;
        }
        if octet >= 10 {
            buf[len] = b'0' + octet / 10 % 10;
            len += 1;
        }
        buf[len] = b'0' + octet % 10;
        len += 1;
    }
    len
}

/// The `Host` Apache sends to a member: its authority without userinfo, and without the
/// port when that port is 80.
fn member_host(authority: &str) -> &str {
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    host_port.strip_suffix(":80").unwrap_or(host_port)
}

/// Appends `value` to the header `name`, joining existing values into one with `", "`
/// (one lookup of `name` when it is absent, the usual case).
fn append_merged(
    headers: &mut HeaderMap,
    name: HeaderName,
    value: Result<HeaderValue, http::header::InvalidHeaderValue>,
) {
    let Ok(ours) = value else {
        tracing::debug!(header = %name, "value is not a valid header value; not added");
        return;
    };
    let mut entry = match headers.entry(name) {
        Entry::Vacant(vacant) => {
            vacant.insert(ours);
            return;
        }
        Entry::Occupied(entry) => entry,
    };
    let mut merged = Vec::new();
    for existing in entry.iter() {
        let existing = existing.as_bytes();
        if existing.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        merged.extend_from_slice(existing);
        merged.extend_from_slice(b", ");
    }
    if merged.is_empty() {
        entry.insert(ours);
        return;
    }
    merged.extend_from_slice(ours.as_bytes());
    // Existing values and ours are valid header bytes, so the join is too; should it not
    // be, our value alone is still right.
    let merged = HeaderValue::from_bytes(&merged).unwrap_or(ours);
    entry.insert(merged);
}

#[cfg(test)]
mod tests {
    use super::{hop_index, hop_name_index, write_ipv4, HOP_BY_HOP};

    #[test]
    fn hop_name_index_is_hop_index_on_header_names() {
        let names = HOP_BY_HOP.iter().cloned().chain(
            [
                "host",
                "tee",
                "trailers",
                "content-length",
                "content-md5",
                "keep_alive",
                "x-connection",
                "uPGRADE",
                "proxy-connectiox",
                "x",
                "te",
            ]
            .into_iter()
            .filter_map(|n| http::HeaderName::from_bytes(n.as_bytes()).ok()),
        );
        for name in names {
            assert_eq!(
                hop_name_index(&name),
                hop_index(name.as_str().as_bytes()),
                "{name}"
            );
        }
    }

    #[test]
    fn write_ipv4_writes_what_display_writes() {
        for ip in [
            [0, 0, 0, 0],
            [255, 255, 255, 255],
            [10, 0, 100, 9],
            [192, 168, 1, 10],
            [1, 20, 199, 99],
            [127, 0, 0, 1],
        ] {
            let ip = std::net::Ipv4Addr::from(ip);
            let mut buf = [0u8; 48];
            let len = write_ipv4(&mut buf, ip);
            assert_eq!(&buf[..len], ip.to_string().as_bytes());
        }
    }

    #[test]
    fn hop_index_finds_every_name_in_any_case_and_nothing_else() {
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_index(name.as_str().as_bytes()), Some(i), "{name}");
            let upper = name.as_str().to_ascii_uppercase();
            assert_eq!(hop_index(upper.as_bytes()), Some(i), "{upper}");
        }
        for other in [
            "host",
            "tee",
            "trailers",
            "content-length",
            "keep_alive",
            "",
        ] {
            assert_eq!(hop_index(other.as_bytes()), None, "{other}");
        }
    }
}
