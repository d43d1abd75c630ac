use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LOCATION, LOCATION};

use super::error::ProxyPassError;
use super::mapping::{parse_balancer_url, validate_front_prefix, ProxyPass};

/// Whether a backend URL is `balancer://…` (any case).
fn is_balancer_url(url: &str) -> bool {
    const SCHEME: &str = "balancer://";
    url.get(..SCHEME.len())
        .is_some_and(|s| s.eq_ignore_ascii_case(SCHEME))
}

/// The response headers `ProxyPassReverse` rewrites, as Apache does: `Location`,
/// `Content-Location` and `URI`.
const URI_HEADER: &str = "uri";

/// One `ProxyPassReverse "/front" "balancer://name/backend"` line: rewrites the URLs a
/// member puts in `Location`, `Content-Location` and `URI` so that they point at this
/// proxy instead of the member.
///
/// A value starting with *member URL + backend path* has that part replaced by
/// *front origin + front prefix*: with `ProxyPassReverse "/app" "balancer://mycluster/back"`
/// and the member `http://10.0.0.2:8080`, `http://10.0.0.2:8080/back/x?y` becomes
/// `https://www.example.com/app/x?y`. Relative values (`/login`) and URLs of other hosts
/// are left alone. See [`reverse_url`] for the exact rules and how they differ from Apache.
///
/// Apache compares the value with every member of the balancer; here the caller passes the
/// member that answered, which is the one whose URLs show up in practice.
///
/// # Apache
///
/// `ProxyPassReverse "/app" "balancer://mycluster/app"`; the front origin is what Apache
/// takes from `ServerName`/`Host` (`UseCanonicalName`) when it makes the URL absolute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProxyPassReverse {
    front_prefix: String,
    /// The balancer, for a `balancer://` line; empty for a plain URL.
    balancer: String,
    backend_path: String,
    /// For a plain URL line (`ProxyPassReverse "/app" "http://backend/app/"`): the URL,
    /// without a trailing `/` (then `backend_path` is `/`), rewritten whichever member
    /// answered, as Apache does.
    url: Option<String>,
}

// ===== impl ProxyPassReverse =====

impl ProxyPassReverse {
    /// Parses the two arguments of a `ProxyPassReverse` line.
    ///
    /// # Errors
    ///
    /// [`ProxyPassError::InvalidFrontPrefix`] and [`ProxyPassError::InvalidBackendUrl`] as
    /// for [`ProxyPass::new`], except that a backend URL without a path is accepted after
    /// any prefix (Apache's `ProxyPassReverse "/" "balancer://mycluster"` works).
    ///
    /// The backend URL may also be a plain `http://` or `https://` URL
    /// (`ProxyPassReverse "/app/" "http://backend:8080/app/"`): then a value starting with
    /// that URL is rewritten whichever member answered, as Apache does for plain URLs.
    ///
    /// ```
    /// use proxy_balancer::proxy_pass::ProxyPassReverse;
    ///
    /// let line = ProxyPassReverse::new("/app/", "http://Backend:8080/base/")?;
    /// assert_eq!(line.url(), Some("http://backend:8080/base"));
    /// assert_eq!(
    ///     line.reverse_url("http://backend:8080/base/login", "http://10.0.0.9", "https://www.example.com").as_deref(),
    ///     Some("https://www.example.com/app/login")
    /// );
    /// # Ok::<(), proxy_balancer::proxy_pass::ProxyPassError>(())
    /// ```
    ///
    /// # Apache
    ///
    /// `ProxyPassReverse "<front_prefix>" "<backend_url>"`.
    pub fn new(front_prefix: &str, backend_url: &str) -> Result<Self, ProxyPassError> {
        validate_front_prefix(front_prefix)?;
        if !is_balancer_url(backend_url) {
            let url = proxy_balancer_core::MemberUrl::new(backend_url).map_err(|_| {
                ProxyPassError::InvalidBackendUrl {
                    url: backend_url.to_owned(),
                    reason: "must be balancer://name[/path] or an http:// or https:// url",
                }
            })?;
            let backend_path = if backend_url.ends_with('/') { "/" } else { "" };
            return Ok(Self {
                front_prefix: front_prefix.to_owned(),
                balancer: String::new(),
                backend_path: backend_path.to_owned(),
                url: Some(url.as_str().trim_end_matches('/').to_owned()),
            });
        }
        let (balancer, backend_path) = parse_balancer_url(backend_url)?;
        Ok(Self {
            front_prefix: front_prefix.to_owned(),
            balancer,
            backend_path,
            url: None,
        })
    }

    /// The plain URL of a line that names one (`http://backend:8080/app`, no trailing
    /// `/`); `None` for a `balancer://` line.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// The URL prefix values are compared with: the line's own URL, or for a balancer
    /// line the member that answered.
    pub(super) fn member_url<'a>(&'a self, answered: &'a str) -> &'a str {
        self.url.as_deref().unwrap_or(answered)
    }

    /// The front prefix, the first argument (`/app`).
    pub fn front_prefix(&self) -> &str {
        &self.front_prefix
    }

    /// The balancer whose members' URLs are rewritten, lowercased (`balancer://mycluster`);
    /// empty for a plain URL line.
    pub fn balancer_name(&self) -> &str {
        &self.balancer
    }

    /// The path part of the backend URL (`/app`, or empty).
    pub fn backend_path(&self) -> &str {
        &self.backend_path
    }

    /// Rewrites one URL sent by the member at `member_url`; `None` when it does not start
    /// with that member's URL and the backend path (leave the value as it is).
    ///
    /// `front_origin` is `scheme://host[:port]` of the incoming request
    /// (`https://www.example.com`); pass `""` to get a relative reference (`/app/x`),
    /// which RFC 9110 allows in `Location`.
    pub fn reverse_url(&self, url: &str, member_url: &str, front_origin: &str) -> Option<String> {
        reverse_url(
            url,
            self.member_url(member_url),
            &self.backend_path,
            &self.front_base(front_origin),
        )
    }

    /// Rewrites the `Location`, `Content-Location` and `URI` values sent by the member at
    /// `member_url` (see [`reverse_url`](Self::reverse_url)); returns how many values
    /// changed. Never panics, whatever the values hold.
    pub fn reverse_headers(
        &self,
        headers: &mut HeaderMap,
        member_url: &str,
        front_origin: &str,
    ) -> usize {
        reverse_headers(
            headers,
            self.member_url(member_url),
            &self.backend_path,
            &self.front_base(front_origin),
        )
    }

    fn front_base(&self, front_origin: &str) -> String {
        let origin = front_origin.trim_end_matches('/');
        let mut base = String::with_capacity(origin.len() + self.front_prefix.len());
        base.push_str(origin);
        base.push_str(&self.front_prefix);
        base
    }
}

impl From<&ProxyPass> for ProxyPassReverse {
    fn from(pass: &ProxyPass) -> Self {
        let (front_prefix, balancer, backend_path) = pass.parts();
        Self {
            front_prefix: front_prefix.to_owned(),
            balancer: balancer.to_owned(),
            backend_path: backend_path.to_owned(),
            url: None,
        }
    }
}

// ===== free functions =====

/// Rewrites one URL a member sent: when `url` starts with `member_url` followed by
/// `backend_prefix`, that part is replaced by `front_base`; otherwise `None`.
///
/// - `member_url`: the member's URL (`http://10.0.0.2:8080` or `http://h:1/base`); a
///   trailing `/` is ignored, and scheme and host compare case-insensitively, as in Apache.
/// - `backend_prefix`: the path of the backend URL (`/app`; `""` or `"/"` for none); it
///   compares case-sensitively. To rewrite a plain backend URL prefix
///   (`ProxyPassReverse "/app" "http://backend/app"`), pass it as `member_url` with an
///   empty `backend_prefix`.
/// - `front_base`: what replaces them, the front origin and prefix
///   (`https://www.example.com/app`), or just the prefix (`/app`) for a relative result.
///
/// Where we differ from Apache's `ap_proxy_location_reverse_map`, on purpose:
/// - the member URL must end where a URL part ends (`/`, `?`, `#` or the end): Apache's
///   plain prefix test turns `http://h:10/x` into a front URL when the member is `http://h:1`;
/// - a backend prefix not ending in `/` must likewise end at a segment boundary: Apache
///   turns `http://h/backup` into `/frontup` for `ProxyPassReverse "/front"
///   "balancer://x/back"`, a URL that its own `ProxyPass "/front"` would not match;
/// - when `front_base` ends with `/` and the rest starts with `/`, one of them is dropped
///   (Apache does that only for a front prefix of exactly `/` and no backend path);
/// - a trailing `/` on the member URL is ignored in every case (Apache ignores it only
///   when the backend URL has a path).
///
/// # Apache
///
/// `ProxyPassReverse`, applied to one URL.
pub fn reverse_url(
    url: &str,
    member_url: &str,
    backend_prefix: &str,
    front_base: &str,
) -> Option<String> {
    let reversed = reverse_bytes(url.as_bytes(), member_url, backend_prefix, front_base)?;
    String::from_utf8(reversed).ok()
}

/// Applies [`reverse_url`] to every `Location`, `Content-Location` and `URI` value in
/// `headers`; returns how many values changed.
///
/// Values that are not UTF-8, do not match, or would not make a valid header value are left
/// as they are; this never panics.
///
/// # Apache
///
/// `ProxyPassReverse`, applied to a response.
pub fn reverse_headers(
    headers: &mut HeaderMap,
    member_url: &str,
    backend_prefix: &str,
    front_base: &str,
) -> usize {
    let mut rewritten = 0;
    for (name, value) in headers.iter_mut() {
        if !is_reversed_header(name) {
            continue;
        }
        let Some(reversed) =
            reverse_bytes(value.as_bytes(), member_url, backend_prefix, front_base)
        else {
            continue;
        };
        match HeaderValue::from_bytes(&reversed) {
            Ok(mut new_value) => {
                new_value.set_sensitive(value.is_sensitive());
                *value = new_value;
                rewritten += 1;
            }
            Err(_) => {
                tracing::debug!(
                    header = %name,
                    front_base,
                    "ProxyPassReverse result is not a valid header value; left unchanged"
                );
            }
        }
    }
    rewritten
}

/// [`reverse_headers`] with the `lines` that `applies` keeps: each value is rewritten by the
/// first of them that matches it, as Apache does. `front_origin` as for
/// [`ProxyPassReverse::reverse_url`]. Nothing is allocated unless the response has a header
/// to rewrite.
pub(super) fn reverse_headers_lines(
    headers: &mut HeaderMap,
    lines: &[ProxyPassReverse],
    applies: impl Fn(&ProxyPassReverse) -> bool,
    member_url: &str,
    front_origin: &str,
) -> usize {
    if lines.is_empty() || !headers.keys().any(is_reversed_header) {
        return 0;
    }
    let lines: Vec<(&ProxyPassReverse, String)> = lines
        .iter()
        .filter(|line| applies(line))
        .map(|line| (line, line.front_base(front_origin)))
        .collect();
    let mut rewritten = 0;
    for (name, value) in headers.iter_mut() {
        if !is_reversed_header(name) {
            continue;
        }
        let reversed = lines.iter().find_map(|(line, base)| {
            reverse_bytes(
                value.as_bytes(),
                line.member_url(member_url),
                &line.backend_path,
                base,
            )
        });
        let Some(reversed) = reversed else {
            continue;
        };
        if let Ok(mut new_value) = HeaderValue::from_bytes(&reversed) {
            new_value.set_sensitive(value.is_sensitive());
            *value = new_value;
            rewritten += 1;
        }
    }
    rewritten
}

fn is_reversed_header(name: &HeaderName) -> bool {
    name == LOCATION || name == CONTENT_LOCATION || name.as_str() == URI_HEADER
}

/// Whether `rest` starts where a URL part ends.
fn at_boundary(rest: &[u8]) -> bool {
    matches!(rest.first(), None | Some(b'/' | b'?' | b'#'))
}

/// [`reverse_url`] on bytes, so that header values need not be UTF-8.
fn reverse_bytes(
    value: &[u8],
    member_url: &str,
    backend_prefix: &str,
    front_base: &str,
) -> Option<Vec<u8>> {
    let member = member_url.trim_end_matches('/').as_bytes();
    if member.is_empty() {
        return None;
    }
    let head = value.get(..member.len())?;
    if !head.eq_ignore_ascii_case(member) {
        return None;
    }
    let after_member = &value[member.len()..];
    if !at_boundary(after_member) {
        return None;
    }
    // Apache treats a backend path of "/" as no path at all.
    let urlpart = if backend_prefix == "/" {
        ""
    } else {
        backend_prefix
    };
    let rest = after_member.strip_prefix(urlpart.as_bytes())?;
    if !urlpart.is_empty() && !urlpart.ends_with('/') && !at_boundary(rest) {
        return None;
    }
    let base = front_base.as_bytes();
    let rest = match rest.split_first() {
        Some((b'/', tail)) if base.ends_with(b"/") => tail,
        _ => rest,
    };
    let mut reversed = Vec::with_capacity(base.len() + rest.len() + 1);
    reversed.extend_from_slice(base);
    reversed.extend_from_slice(rest);
    if reversed.is_empty() {
        reversed.push(b'/');
    }
    Some(reversed)
}
