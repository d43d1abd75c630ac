//! `ProxyPassReverseCookieDomain` and `ProxyPassReverseCookiePath`: the `Domain` and `Path`
//! attributes of the cookies a member sets, rewritten for the front.

use http::header::{HeaderMap, HeaderValue, SET_COOKIE};

/// The `ProxyPassReverseCookieDomain` and `ProxyPassReverseCookiePath` lines of a context:
/// rewrites the `Domain` and `Path` attributes of `Set-Cookie` values from the member's
/// names to the front's.
///
/// - `ProxyPassReverseCookieDomain internal public`: a `Domain` attribute whose value is
///   `internal` (ignoring ASCII case and a leading `.`) gets the value `public`.
/// - `ProxyPassReverseCookiePath internal public`: a `Path` attribute whose value starts
///   with `internal` gets that prefix replaced by `public` (`/app/admin` becomes
///   `/admin` for `ProxyPassReverseCookiePath /app /`). The prefix is compared
///   case-sensitively and must end at a path segment boundary, as for
///   [`reverse_url`](super::reverse_url).
///
/// Attribute names compare case-insensitively, whitespace around names and values is
/// ignored, and the first line that matches wins, as in Apache. Only the attributes after
/// the first `;` are looked at; the cookie's name and value are never changed.
///
/// Where we differ from Apache's `ap_proxy_cookie_reverse_map`, on purpose:
/// - Apache finds `domain=` and `path=` anywhere, also inside the cookie's value
///   (`s=path=/x`); we look at attributes only;
/// - Apache matches the domain by prefix (`internal.example.org` matches
///   `ProxyPassReverseCookieDomain internal public`); we need the whole name;
/// - Apache replaces the whole path when its prefix matches (`/app/admin` becomes `/` in
///   the example above), which widens the cookie to the whole site; we replace the prefix
///   only, and only at a segment boundary (`/apple` does not match `/app`).
///
/// ```
/// use proxy_balancer::proxy_pass::ProxyPassReverseCookie;
///
/// // ProxyPassReverseCookieDomain backend.internal www.example.com
/// // ProxyPassReverseCookiePath   /app /
/// let cookies = ProxyPassReverseCookie::new()
///     .with_domain("backend.internal", "www.example.com")
///     .with_path("/app", "/");
/// let reversed = cookies.reverse(b"s=1; Domain=backend.internal; Path=/app/admin; HttpOnly");
/// assert_eq!(
///     reversed.as_deref(),
///     Some(&b"s=1; Domain=www.example.com; Path=/admin; HttpOnly"[..])
/// );
/// assert_eq!(cookies.reverse(b"s=1; Path=/other"), None);
/// ```
///
/// # Apache
///
/// `ProxyPassReverseCookieDomain` and `ProxyPassReverseCookiePath` (without `interpolate`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyPassReverseCookie {
    domains: Vec<(String, String)>,
    paths: Vec<(String, String)>,
}

// ===== impl ProxyPassReverseCookie =====

impl ProxyPassReverseCookie {
    /// No rewriting: [`reverse`](Self::reverse) always returns `None`.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            domains: Vec::new(),
            paths: Vec::new(),
        }
    }

    /// Adds a line rewriting the cookie domain `internal` to `public`.
    ///
    /// # Apache
    ///
    /// `ProxyPassReverseCookieDomain internal public`.
    #[must_use]
    pub fn with_domain(mut self, internal: impl Into<String>, public: impl Into<String>) -> Self {
        self.domains.push((internal.into(), public.into()));
        self
    }

    /// Adds a line rewriting cookie paths under `internal` to the same paths under
    /// `public`.
    ///
    /// # Apache
    ///
    /// `ProxyPassReverseCookiePath internal public`.
    #[must_use]
    pub fn with_path(mut self, internal: impl Into<String>, public: impl Into<String>) -> Self {
        self.paths.push((internal.into(), public.into()));
        self
    }

    /// Whether there is no line at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty() && self.paths.is_empty()
    }

    /// The `(internal, public)` pairs of the `ProxyPassReverseCookieDomain` lines.
    pub fn domains(&self) -> impl Iterator<Item = (&str, &str)> {
        self.domains.iter().map(|(i, p)| (i.as_str(), p.as_str()))
    }

    /// The `(internal, public)` pairs of the `ProxyPassReverseCookiePath` lines.
    pub fn paths(&self) -> impl Iterator<Item = (&str, &str)> {
        self.paths.iter().map(|(i, p)| (i.as_str(), p.as_str()))
    }

    /// One `Set-Cookie` value rewritten, or `None` when no attribute matched (leave it as
    /// it is). Any bytes are accepted; this never panics.
    #[must_use]
    pub fn reverse(&self, set_cookie: &[u8]) -> Option<Vec<u8>> {
        rewrite(set_cookie, &self.domains, &self.paths)
    }

    /// Rewrites every `Set-Cookie` value of `headers`; returns how many changed. A result
    /// that would not be a valid header value leaves that value as it is.
    pub fn reverse_headers(&self, headers: &mut HeaderMap) -> usize {
        if self.is_empty() {
            return 0;
        }
        let mut changed = 0;
        let values = headers
            .iter_mut()
            .filter_map(|(name, value)| (name == SET_COOKIE).then_some(value));
        for value in values {
            let Some(reversed) = self.reverse(value.as_bytes()) else {
                continue;
            };
            if let Ok(mut new_value) = HeaderValue::from_bytes(&reversed) {
                new_value.set_sensitive(value.is_sensitive());
                *value = new_value;
                changed += 1;
            }
        }
        changed
    }
}

// ===== free functions =====

/// `Set-Cookie` value `set_cookie` with a `Domain` of `internal` changed to `public`; `None`
/// when it has no such attribute. See [`ProxyPassReverseCookie`] for the rules.
///
/// # Apache
///
/// `ProxyPassReverseCookieDomain internal public`, applied to one value.
#[must_use]
pub fn reverse_cookie_domain(set_cookie: &str, internal: &str, public: &str) -> Option<String> {
    let lines = [(internal.to_owned(), public.to_owned())];
    let reversed = rewrite(set_cookie.as_bytes(), &lines, &[])?;
    String::from_utf8(reversed).ok()
}

/// `Set-Cookie` value `set_cookie` with a `Path` under `internal` moved under `public`;
/// `None` when it has no such attribute. See [`ProxyPassReverseCookie`] for the rules.
///
/// # Apache
///
/// `ProxyPassReverseCookiePath internal public`, applied to one value.
#[must_use]
pub fn reverse_cookie_path(set_cookie: &str, internal: &str, public: &str) -> Option<String> {
    let lines = [(internal.to_owned(), public.to_owned())];
    let reversed = rewrite(set_cookie.as_bytes(), &[], &lines)?;
    String::from_utf8(reversed).ok()
}

/// The byte range of the value of each `Domain` or `Path` attribute, and what replaces it.
fn rewrite(
    value: &[u8],
    domains: &[(String, String)],
    paths: &[(String, String)],
) -> Option<Vec<u8>> {
    if domains.is_empty() && paths.is_empty() {
        return None;
    }
    // (start, end, replacement) of attribute values, in order.
    let mut edits: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    let mut start = 0;
    let mut first = true;
    for part in value.split(|b| *b == b';') {
        let part_start = start;
        start += part.len() + 1;
        if std::mem::take(&mut first) {
            // The cookie's own name=value.
            continue;
        }
        let Some(eq) = part.iter().position(|b| *b == b'=') else {
            continue;
        };
        let (name, rest) = part.split_at(eq);
        let raw = rest.get(1..).unwrap_or_default();
        let lead = raw.iter().take_while(|b| is_ows(**b)).count();
        let trail = raw.iter().rev().take_while(|b| is_ows(**b)).count();
        let attr = raw
            .get(lead..raw.len().saturating_sub(trail))
            .unwrap_or_default();
        let value_start = part_start + eq + 1 + lead;
        let value_end = value_start + attr.len();
        let name = trim_ows(name);
        let replacement = if name.eq_ignore_ascii_case(b"domain") {
            reverse_domain(attr, domains)
        } else if name.eq_ignore_ascii_case(b"path") {
            reverse_path(attr, paths)
        } else {
            None
        };
        if let Some(replacement) = replacement {
            edits.push((value_start, value_end, replacement));
        }
    }
    if edits.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(value.len() + 16);
    let mut at = 0;
    for (from, to, replacement) in edits {
        out.extend_from_slice(value.get(at..from)?);
        out.extend_from_slice(&replacement);
        at = to;
    }
    out.extend_from_slice(value.get(at..)?);
    Some(out)
}

fn reverse_domain(domain: &[u8], lines: &[(String, String)]) -> Option<Vec<u8>> {
    let bare = domain.strip_prefix(b".").unwrap_or(domain);
    lines.iter().find_map(|(internal, public)| {
        let internal = internal.as_bytes();
        let internal = internal.strip_prefix(b".").unwrap_or(internal);
        (!internal.is_empty() && bare.eq_ignore_ascii_case(internal))
            .then(|| public.as_bytes().to_vec())
    })
}

fn reverse_path(path: &[u8], lines: &[(String, String)]) -> Option<Vec<u8>> {
    lines.iter().find_map(|(internal, public)| {
        let internal = internal.as_bytes();
        if internal.is_empty() {
            return None;
        }
        let rest = path.strip_prefix(internal)?;
        let boundary = internal.ends_with(b"/") || rest.is_empty() || rest.starts_with(b"/");
        if !boundary {
            return None;
        }
        let public = public.as_bytes();
        let rest = match rest.split_first() {
            Some((b'/', tail)) if public.ends_with(b"/") => tail,
            _ => rest,
        };
        let mut out = Vec::with_capacity(public.len() + rest.len() + 1);
        out.extend_from_slice(public);
        out.extend_from_slice(rest);
        if out.is_empty() {
            out.push(b'/');
        }
        Some(out)
    })
}

const fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_ows(bytes: &[u8]) -> &[u8] {
    let lead = bytes.iter().take_while(|b| is_ows(**b)).count();
    let trail = bytes.iter().rev().take_while(|b| is_ows(**b)).count();
    bytes
        .get(lead..bytes.len().saturating_sub(trail))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn apache() -> ProxyPassReverseCookie {
        ProxyPassReverseCookie::new()
            .with_domain("backend.internal", "www.example.com")
            .with_path("/app", "/public")
    }

    fn rev(value: &str) -> Option<String> {
        apache()
            .reverse(value.as_bytes())
            .map(|v| String::from_utf8(v).expect("utf-8 in, utf-8 out"))
    }

    #[test]
    fn domain_and_path_are_rewritten_together() {
        assert_eq!(
            rev("s=1; Domain=backend.internal; Path=/app").as_deref(),
            Some("s=1; Domain=www.example.com; Path=/public")
        );
        assert_eq!(
            rev("s=1; path=/app/x; domain=backend.internal; Secure").as_deref(),
            Some("s=1; path=/public/x; domain=www.example.com; Secure")
        );
    }

    #[test]
    fn attribute_names_and_domains_ignore_case_paths_do_not() {
        assert_eq!(
            rev("s=1;DOMAIN=Backend.Internal").as_deref(),
            Some("s=1;DOMAIN=www.example.com")
        );
        assert_eq!(rev("s=1; PaTh=/app").as_deref(), Some("s=1; PaTh=/public"));
        assert_eq!(rev("s=1; Path=/APP"), None);
    }

    #[test]
    fn whitespace_around_names_and_values_is_kept_outside_the_edit() {
        assert_eq!(
            rev("s=1;  Domain = .backend.internal ;Path=/app/ ").as_deref(),
            Some("s=1;  Domain = www.example.com ;Path=/public/ ")
        );
    }

    #[test]
    fn only_whole_domains_and_segment_prefixes_match() {
        assert_eq!(rev("s=1; Domain=backend.internal.evil"), None);
        assert_eq!(rev("s=1; Domain=x.backend.internal"), None);
        assert_eq!(rev("s=1; Path=/apple"), None);
        assert_eq!(rev("s=1; Path=/"), None);
    }

    #[test]
    fn the_cookie_value_itself_is_never_touched() {
        assert_eq!(rev("path=/app; x=1"), None);
        assert_eq!(rev("s=domain=backend.internal"), None);
        assert_eq!(rev(""), None);
        assert_eq!(rev(";;;="), None);
    }

    #[test]
    fn root_paths_join_without_double_slashes() {
        let to_root = ProxyPassReverseCookie::new().with_path("/app", "/");
        assert_eq!(
            to_root.reverse(b"s=1; Path=/app/admin").as_deref(),
            Some(&b"s=1; Path=/admin"[..])
        );
        assert_eq!(
            to_root.reverse(b"s=1; Path=/app").as_deref(),
            Some(&b"s=1; Path=/"[..])
        );
        let from_root = ProxyPassReverseCookie::new().with_path("/", "/front/");
        assert_eq!(
            from_root.reverse(b"s=1; Path=/x").as_deref(),
            Some(&b"s=1; Path=/front/x"[..])
        );
    }

    #[test]
    fn first_matching_line_wins() {
        let lines = ProxyPassReverseCookie::new()
            .with_path("/app", "/one")
            .with_path("/app", "/two");
        assert_eq!(
            lines.reverse(b"s=1; Path=/app").as_deref(),
            Some(&b"s=1; Path=/one"[..])
        );
        assert_eq!(
            ProxyPassReverseCookie::new().reverse(b"s=1; Path=/app"),
            None
        );
    }

    #[test]
    fn free_functions_apply_one_line() {
        assert_eq!(
            reverse_cookie_domain("a=b; Domain=int", "int", "pub").as_deref(),
            Some("a=b; Domain=pub")
        );
        assert_eq!(
            reverse_cookie_path("a=b; Path=/int/x", "/int", "/pub").as_deref(),
            Some("a=b; Path=/pub/x")
        );
        assert_eq!(
            reverse_cookie_path("a=b; Path=/int/x", "/other", "/pub"),
            None
        );
    }

    #[test]
    fn headers_are_rewritten_and_invalid_results_skipped() {
        let mut headers = HeaderMap::new();
        headers.append(SET_COOKIE, HeaderValue::from_static("a=1; Path=/app"));
        headers.append(SET_COOKIE, HeaderValue::from_static("b=2; Path=/other"));
        headers.append(
            SET_COOKIE,
            HeaderValue::from_bytes(b"c=\xff; Domain=backend.internal").expect("opaque bytes"),
        );
        assert_eq!(apache().reverse_headers(&mut headers), 2);
        let values: Vec<_> = headers.get_all(SET_COOKIE).iter().collect();
        assert_eq!(values[0], "a=1; Path=/public");
        assert_eq!(values[1], "b=2; Path=/other");
        assert_eq!(values[2].as_bytes(), b"c=\xff; Domain=www.example.com");

        let bad = ProxyPassReverseCookie::new().with_path("/app", "/a\nb");
        let mut headers = HeaderMap::new();
        headers.append(SET_COOKIE, HeaderValue::from_static("a=1; Path=/app"));
        assert_eq!(bad.reverse_headers(&mut headers), 0);
        assert_eq!(headers[SET_COOKIE], "a=1; Path=/app");
    }

    proptest! {
        #[test]
        fn never_panics_on_any_bytes(value in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = apache().reverse(&value);
        }

        #[test]
        fn valid_header_values_stay_valid(
            value in "[ -~]{0,40}(; ?(Domain|PATH|path|domain) ?= ?(\\.?backend\\.internal|/app(/[a-z]{0,3})?|/apple|x)){0,3}[ -~]{0,10}",
        ) {
            prop_assume!(HeaderValue::from_str(&value).is_ok());
            if let Some(out) = apache().reverse(value.as_bytes()) {
                prop_assert!(HeaderValue::from_bytes(&out).is_ok(), "{:?}", String::from_utf8_lossy(&out));
                prop_assert_ne!(out, value.as_bytes().to_vec());
            }
        }

        #[test]
        fn without_matching_attributes_nothing_changes(value in "[a-z=; ]{0,60}") {
            prop_assert_eq!(apache().reverse(value.as_bytes()), None);
        }
    }
}
