use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use http::uri::{Authority, PathAndQuery};
use http::Uri;

use super::canonical::{encode_path, RequestPath};
use super::error::ProxyPassError;
use super::join::{join_text, join_uri};
use super::reverse::ProxyPassReverse;

/// The scheme of a balancer URL, as Apache spells it (`BALANCER_PREFIX`).
const BALANCER_SCHEME: &str = "balancer://";

/// One `ProxyPass "/front" "balancer://name/backend"` line: which request paths go to a
/// balancer, and which path the chosen member receives.
///
/// # Matching
///
/// [`matches`](Self::matches) follows Apache 2.4's `alias_match` (mod_proxy): the prefix is
/// compared byte for byte with the request path, a run of `/` in the prefix matches any
/// non-empty run of `/` in the path, and the last segment of the prefix must match a whole
/// segment. So `/app` matches `/app`, `/app/`, `/app/x` and `/app//x`, but **not** `/apple`
/// (Apache 2.4 does not match it either); `/app/` matches `/app/x` but not `/app`.
/// Matching is case-sensitive. Several `ProxyPass` lines are tried in config order and the
/// first match wins, so list longer prefixes first, as in Apache.
///
/// [`matches`](Self::matches) and [`map_path`](Self::map_path) take the path as received,
/// still percent-encoded, and only remove dot segments (`.`, `..`, also spelled `%2e`);
/// a path that climbs above the root is an error. The site matches as Apache does instead:
/// [`matches_request`](Self::matches_request) and [`forward_path`](Self::forward_path) take
/// a [`RequestPath`], decoded and normalised (`/%70rivate` is `/private`, `%2F` refused unless
/// `AllowEncodedSlashes` says otherwise), and forward it encoded by mod_proxy's rules, or as
/// sent with [`nocanon`](Self::with_nocanon).
///
/// # Mapping
///
/// [`map`](Self::map) builds the member URI as Apache does (`proxy_trans`, then
/// mod_proxy_balancer's `rewrite_url`): member URL + backend path + the rest of the request
/// path after the matched prefix + `?` + the original query. The pieces are concatenated
/// without adding or removing slashes, so the trailing slashes of the two arguments
/// should agree, as Apache's docs ask ([`has_trailing_slash_mismatch`] spots the lines
/// that do not). Two choices of ours:
/// - a `/` at the end of the member URL is dropped (`http://h:1/` acts as `http://h:1`);
///   Apache would send `//path`;
/// - a front prefix ending in `/` with a backend URL without a path
///   (`ProxyPass "/" "balancer://mycluster"`) is rejected by [`new`](Self::new): Apache
///   accepts it, then glues the request path to the balancer name
///   (`balancer://myclustera/b`) and fails every request.
///
/// Not supported here: `ProxyPass /path !` exclusions (the site has them), `ProxyPassMatch`,
/// and the flags other than `nocanon` (`noquery`, `mapping=servlet`, worker parameters).
///
/// [`has_trailing_slash_mismatch`]: Self::has_trailing_slash_mismatch
///
/// # Apache
///
/// `ProxyPass "/app" "balancer://mycluster/app"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProxyPass {
    front_prefix: String,
    balancer: String,
    backend_path: String,
    /// The `nocanon` flag: forward the path as sent.
    nocanon: bool,
}

// ===== impl ProxyPass =====

impl ProxyPass {
    /// Parses the two arguments of a `ProxyPass` line.
    ///
    /// `front_prefix` is a URL path (`/`, `/app`, `/app/`); `backend_url` is
    /// `balancer://name` optionally followed by a path. The balancer name is lowercased, as
    /// Apache does, so `balancer://MyCluster` and `balancer://mycluster` are one balancer.
    ///
    /// # Errors
    ///
    /// [`ProxyPassError::InvalidFrontPrefix`] when the prefix does not start with `/`,
    /// holds `?`, `#`, a dot segment or characters not allowed in a URL path;
    /// [`ProxyPassError::InvalidBackendUrl`] when the URL is not `balancer://name[/path]`,
    /// or has no path while the prefix ends with `/`.
    ///
    /// # Apache
    ///
    /// `ProxyPass "<front_prefix>" "<backend_url>"`.
    pub fn new(front_prefix: &str, backend_url: &str) -> Result<Self, ProxyPassError> {
        validate_front_prefix(front_prefix)?;
        let (balancer, backend_path) = parse_balancer_url(backend_url)?;
        if backend_path.is_empty() && front_prefix.ends_with('/') {
            return Err(ProxyPassError::InvalidBackendUrl {
                url: backend_url.to_owned(),
                reason: "has no path while the front prefix ends with '/', so request \
                         paths would run into the balancer name; add a trailing '/'",
            });
        }
        Ok(Self {
            front_prefix: front_prefix.to_owned(),
            balancer,
            backend_path,
            nocanon: false,
        })
    }

    /// The line with (or without) the `nocanon` flag: [`forward_path`](Self::forward_path)
    /// sends the rest of the path as the client sent it, not decoded and encoded again.
    ///
    /// As Apache, the flag is ignored for a request whose path as sent does not match the
    /// prefix the way its decoded form does (`/%61pp/x` against `/app`, or `//app`): the
    /// canonical form is sent then, and a warning (AH01136) logged.
    ///
    /// ```
    /// use proxy_balancer::proxy_pass::{ProxyPass, RequestPath};
    ///
    /// let pass = ProxyPass::new("/app", "balancer://x/app")?.with_nocanon(true);
    /// let path = RequestPath::parse("/app/a%2Cb/%7e")?;
    /// assert_eq!(pass.forward_path(&path).as_deref(), Some("/app/a%2Cb/%7e"));
    /// let canon = ProxyPass::new("/app", "balancer://x/app")?;
    /// assert_eq!(canon.forward_path(&path).as_deref(), Some("/app/a,b/~"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Apache
    ///
    /// The `nocanon` keyword of `ProxyPass`.
    #[must_use]
    pub fn with_nocanon(mut self, nocanon: bool) -> Self {
        self.nocanon = nocanon;
        self
    }

    /// Whether the line has the `nocanon` flag ([`with_nocanon`](Self::with_nocanon)).
    pub fn is_nocanon(&self) -> bool {
        self.nocanon
    }

    /// The front prefix, the first argument (`/app`).
    pub fn front_prefix(&self) -> &str {
        &self.front_prefix
    }

    /// The balancer this line sends requests to, lowercased (`balancer://mycluster`).
    pub fn balancer_name(&self) -> &str {
        &self.balancer
    }

    /// The path part of the backend URL (`/app` for `balancer://mycluster/app`, empty for
    /// `balancer://mycluster`).
    pub fn backend_path(&self) -> &str {
        &self.backend_path
    }

    /// Whether exactly one of the two arguments ends with `/` (`"/app/"` with
    /// `"balancer://x/app"`, or `"/app"` with `"balancer://x/app/"`).
    ///
    /// Such a line works, but maps `/app/y` to `/appy` or `/app//y`; Apache's docs warn
    /// about it. A config check can report it.
    pub fn has_trailing_slash_mismatch(&self) -> bool {
        !self.backend_path.is_empty()
            && self.front_prefix.ends_with('/') != self.backend_path.ends_with('/')
    }

    /// Whether this line handles a request with this path (see the
    /// [type docs](Self#matching)).
    ///
    /// `path` is the path of the request URI without the query, as [`Uri::path`] returns
    /// it. An empty path, `*`, or a path climbing above the root matches nothing.
    pub fn matches(&self, path: &str) -> bool {
        normalize_path(path)
            .is_some_and(|p| alias_match(p.as_bytes(), &self.front_prefix).is_some())
    }

    /// Whether this line handles a request path, matched as Apache does: on its decoded,
    /// normalised form ([`RequestPath::matched`]).
    ///
    /// ```
    /// use proxy_balancer::proxy_pass::{ProxyPass, RequestPath};
    ///
    /// let private = ProxyPass::new("/private", "balancer://x/private")?;
    /// for sent in ["/private/x", "/%70rivate/x", "/x/../private", "/priv%61te"] {
    ///     assert!(private.matches_request(&RequestPath::parse(sent)?), "{sent}");
    /// }
    /// assert!(!private.matches_request(&RequestPath::parse("/privateer")?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn matches_request(&self, path: &RequestPath<'_>) -> bool {
        alias_match(path.matched(), &self.front_prefix).is_some()
    }

    /// The path (without query) to ask the member for, before the member URL's own path,
    /// when this line matches `path` ([`matches_request`](Self::matches_request)): backend
    /// path + the rest of the matched path encoded by mod_proxy's rules
    /// ([`encode_path`](super::encode_path)), or the rest as sent with
    /// [`nocanon`](Self::with_nocanon). `None` when the line does not match.
    ///
    /// Borrows when the line maps a path to itself (`ProxyPass "/" "balancer://x/"`) and
    /// the path needs no encoding.
    ///
    /// ```
    /// use proxy_balancer::proxy_pass::{ProxyPass, RequestPath};
    ///
    /// let pass = ProxyPass::new("/app", "balancer://x/v2")?;
    /// let path = RequestPath::parse("/app/./a%20b/../%C3%A9t%c3%a9")?;
    /// assert_eq!(pass.forward_path(&path).as_deref(), Some("/v2/%C3%A9t%C3%A9"));
    /// assert_eq!(pass.forward_path(&RequestPath::parse("/b")?), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Apache
    ///
    /// `ap_proxy_trans_match` (mod_proxy.c), then the canon handler of the scheme
    /// (`ap_proxy_canonenc_ex` in mod_proxy_http). Unlike Apache, the backend path written
    /// in the `ProxyPass` target is sent as written (Apache encodes a `%` in it again).
    pub fn forward_path<'p>(&self, path: &'p RequestPath<'_>) -> Option<Cow<'p, str>> {
        let matched = path.matched();
        let len = alias_match(matched, &self.front_prefix)?;
        let backend = self.backend_path.as_bytes();
        if self.nocanon {
            let raw = path.raw();
            if alias_match(raw.as_bytes(), &self.front_prefix) == Some(len) {
                let rest = raw.get(len..)?;
                if raw.as_bytes().get(..len) == Some(backend) {
                    return Some(Cow::Borrowed(raw));
                }
                return Some(Cow::Owned(format!("{}{rest}", self.backend_path)));
            }
            tracing::warn!(
                apache_id = "AH01136",
                path = raw,
                "Unescaped URL path matched ProxyPass; ignoring unsafe nocanon"
            );
        }
        let slashes = path.encoded_slashes();
        if matched.get(..len) == Some(backend) && encode_path(backend, slashes).len() == len {
            return Some(encode_path(matched, slashes));
        }
        let rest = encode_path(matched.get(len..)?, slashes);
        let mut mapped = String::with_capacity(self.backend_path.len() + rest.len());
        mapped.push_str(&self.backend_path);
        mapped.push_str(&rest);
        Some(Cow::Owned(mapped))
    }

    /// The path (without query) to ask the member for, before the member URL's own path:
    /// backend path + what follows the front prefix.
    ///
    /// # Errors
    ///
    /// [`ProxyPassError::NoMatch`] when the path does not match the front prefix;
    /// [`ProxyPassError::InvalidRequestPath`] when it climbs above the root.
    pub fn map_path(&self, path: &str) -> Result<String, ProxyPassError> {
        let normalized =
            normalize_path(path).ok_or_else(|| ProxyPassError::InvalidRequestPath {
                path: path.to_owned(),
                reason: "'..' segments climb above the root",
            })?;
        let matched = alias_match(normalized.as_bytes(), &self.front_prefix).ok_or_else(|| {
            ProxyPassError::NoMatch {
                path: path.to_owned(),
                prefix: self.front_prefix.clone(),
            }
        })?;
        let rest = &normalized[matched..];
        let mut mapped = String::with_capacity(self.backend_path.len() + rest.len());
        mapped.push_str(&self.backend_path);
        mapped.push_str(rest);
        Ok(mapped)
    }

    /// The absolute URI to send to the member whose URL is `member_base`
    /// (`http://127.0.0.1:8001` or `http://h:1/base`): member URL + backend path + rest of
    /// the request path + the original query (see the [type docs](Self#mapping)).
    ///
    /// `uri` is the request URI as received, in origin form (`/app/x?q`) or absolute form.
    ///
    /// # Errors
    ///
    /// [`ProxyPassError::NoMatch`] or [`ProxyPassError::InvalidRequestPath`] as
    /// [`map_path`](Self::map_path); [`ProxyPassError::InvalidMemberUrl`] when `member_base`
    /// is not `scheme://authority[/path]` without query; [`ProxyPassError::InvalidMappedUri`]
    /// when the result does not parse as a URI.
    ///
    /// # Apache
    ///
    /// mod_proxy's `proxy_trans` followed by mod_proxy_balancer's `rewrite_url`.
    pub fn map(&self, uri: &Uri, member_base: &str) -> Result<Uri, ProxyPassError> {
        let (origin, base_path) = split_member_url(member_base)?;
        let path = self.map_path(uri.path())?;
        let query = uri.query();
        join_uri(origin, base_path, &path, query).map_err(|_| ProxyPassError::InvalidMappedUri {
            uri: join_text(origin, base_path, &path, query),
        })
    }

    /// The `ProxyPassReverse` line with the same two arguments, the usual companion of a
    /// `ProxyPass` line.
    pub fn reverse(&self) -> ProxyPassReverse {
        ProxyPassReverse::from(self)
    }

    pub(super) fn parts(&self) -> (&str, &str, &str) {
        (&self.front_prefix, &self.balancer, &self.backend_path)
    }
}

impl fmt::Display for ProxyPass {
    /// Renders the Apache line, `ProxyPass "/app" "balancer://mycluster/app"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ProxyPass \"{}\" \"{}{}\"",
            self.front_prefix, self.balancer, self.backend_path
        )?;
        if self.nocanon {
            f.write_str(" nocanon")?;
        }
        Ok(())
    }
}

// ===== parsing helpers =====

/// Checks the first argument of `ProxyPass`/`ProxyPassReverse`.
pub(super) fn validate_front_prefix(prefix: &str) -> Result<(), ProxyPassError> {
    let invalid = |reason| ProxyPassError::InvalidFrontPrefix {
        prefix: prefix.to_owned(),
        reason,
    };
    if !prefix.starts_with('/') {
        return Err(invalid("must start with '/'"));
    }
    if prefix.contains(['?', '#']) {
        return Err(invalid("must not contain '?' or '#'"));
    }
    if PathAndQuery::from_str(prefix).is_err() {
        return Err(invalid("is not a valid url path"));
    }
    if prefix
        .split('/')
        .any(|segment| dot_segment(segment).is_some())
    {
        return Err(invalid(
            "must not contain '.' or '..' segments, which requests never have once normalised",
        ));
    }
    Ok(())
}

/// Splits `balancer://Name/path` into (`balancer://name`, `/path`).
pub(super) fn parse_balancer_url(url: &str) -> Result<(String, String), ProxyPassError> {
    let invalid = |reason| ProxyPassError::InvalidBackendUrl {
        url: url.to_owned(),
        reason,
    };
    let has_scheme = url
        .get(..BALANCER_SCHEME.len())
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case(BALANCER_SCHEME));
    if !has_scheme {
        return Err(invalid(
            "must start with 'balancer://' (direct worker urls are not supported here)",
        ));
    }
    let rest = &url[BALANCER_SCHEME.len()..];
    let (name, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if name.is_empty() {
        return Err(invalid("has no balancer name"));
    }
    if name.contains('@') || !is_valid_authority(name) {
        return Err(invalid("balancer name is not a valid host name"));
    }
    if path.contains(['?', '#']) {
        return Err(invalid("must not contain '?' or '#'"));
    }
    if !path.is_empty() && PathAndQuery::from_str(path).is_err() {
        return Err(invalid("path is not a valid url path"));
    }
    let balancer = format!("{BALANCER_SCHEME}{}", name.to_ascii_lowercase());
    Ok((balancer, path.to_owned()))
}

/// Splits a member URL into its origin (`http://h:1`) and its path without trailing `/`.
pub(super) fn split_member_url(url: &str) -> Result<(&str, &str), ProxyPassError> {
    let invalid = |reason| ProxyPassError::InvalidMemberUrl {
        url: url.to_owned(),
        reason,
    };
    if url.contains(['?', '#']) {
        return Err(invalid("must not contain '?' or '#'"));
    }
    let Some(scheme_end) = url.find("://") else {
        return Err(invalid("must be scheme://host[:port][/path]"));
    };
    let authority_start = scheme_end + 3;
    let origin_end = url[authority_start..]
        .find('/')
        .map_or(url.len(), |i| authority_start + i);
    let (origin, path) = url.split_at(origin_end);
    if scheme_end == 0 || origin_end == authority_start {
        return Err(invalid("must be scheme://host[:port][/path]"));
    }
    let valid_origin = Uri::from_str(origin).is_ok_and(|uri| {
        uri.scheme().is_some()
            && uri
                .authority()
                .is_some_and(|a| is_valid_authority(a.as_str()))
    });
    if !valid_origin {
        return Err(invalid("scheme or authority is not valid"));
    }
    let path = path.trim_end_matches('/');
    if !path.is_empty() && PathAndQuery::from_str(path).is_err() {
        return Err(invalid("path is not a valid url path"));
    }
    Ok((origin, path))
}

/// Whether `authority` parses as `[userinfo@]host[:port]` with a port that fits in `u16`.
pub(super) fn is_valid_authority(authority: &str) -> bool {
    let Ok(parsed) = Authority::from_str(authority) else {
        return false;
    };
    // After an IPv6 literal's ']', or in the whole text otherwise, a ':' announces a port.
    let after_host = authority.rsplit(']').next().unwrap_or(authority);
    !after_host.contains(':') || parsed.port_u16().is_some()
}

// ===== matching helpers =====

/// Apache 2.4's `alias_match` (mod_proxy.c): the number of bytes of `path` matched by
/// `prefix`, or `None`.
pub(super) fn alias_match(path: &[u8], prefix: &str) -> Option<usize> {
    let prefix = prefix.as_bytes();
    let (mut p, mut a) = (0, 0);
    while a < prefix.len() && p < path.len() {
        if prefix[a] == b'/' {
            // Any run of '/' in the prefix matches any non-empty run of '/' in the path.
            if path[p] != b'/' {
                return None;
            }
            while a < prefix.len() && prefix[a] == b'/' {
                a += 1;
            }
            while p < path.len() && path[p] == b'/' {
                p += 1;
            }
        } else {
            if path[p] != prefix[a] {
                return None;
            }
            p += 1;
            a += 1;
        }
    }
    // The path ended before the prefix ("/" against "/examples").
    if a < prefix.len() {
        return None;
    }
    // The last prefix segment must match a whole path segment ("/app" is not "/apple").
    if prefix.last() != Some(&b'/') && p < path.len() && path[p] != b'/' {
        return None;
    }
    (p > 0).then_some(p)
}

/// How many dots a path segment stands for (`.`, `..`, or those spelled with `%2e`).
pub(super) fn dot_segment(segment: &str) -> Option<usize> {
    let mut rest = segment.as_bytes();
    let mut dots = 0;
    while !rest.is_empty() {
        if rest[0] == b'.' {
            rest = &rest[1..];
        } else if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(b"%2e") {
            rest = &rest[3..];
        } else {
            return None;
        }
        dots += 1;
    }
    matches!(dots, 1 | 2).then_some(dots)
}

/// Removes dot segments (RFC 3986 section 5.2.4) from an absolute path; `None` when `..`
/// climbs above the root. Paths without dot segments, or not starting with `/`, are
/// returned as they are.
pub(super) fn normalize_path(path: &str) -> Option<Cow<'_, str>> {
    if !path.starts_with('/') || !path.split('/').any(|s| dot_segment(s).is_some()) {
        return Some(Cow::Borrowed(path));
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    let mut kept: Vec<&str> = Vec::with_capacity(segments.len());
    for (i, segment) in segments.into_iter().enumerate() {
        match dot_segment(segment) {
            Some(1) => {}
            Some(_) => {
                kept.pop()?;
            }
            None => {
                kept.push(segment);
                continue;
            }
        }
        // A trailing dot segment leaves the path ending with '/' ("/a/b/.." is "/a/").
        if i == last {
            kept.push("");
        }
    }
    Some(Cow::Owned(format!("/{}", kept.join("/"))))
}
