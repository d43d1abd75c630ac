//! Finding the session route in a request: Apache's `find_session_route`.
//!
//! The rules are documented on [`RouteExtractor`].

use http::header::COOKIE;
use http::{HeaderMap, Uri};
use proxy_balancer_core::{BalancerParams, StickySession};

/// Where a session route was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteSource {
    /// In the URL (query parameter or `;name=value` path parameter).
    Url,
    /// In a `Cookie` header.
    Cookie,
}

/// A session route found in a request, borrowed from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FoundRoute<'a> {
    /// The name it was found under (`BALANCER_SESSION_STICKY`).
    pub name: &'a str,
    /// Where.
    pub source: RouteSource,
    /// The route: the part of the value after the separator.
    pub route: &'a str,
}

/// Reads the session route of requests, per a balancer's `stickysession`,
/// `stickysessionsep` and `scolonpathdelim`.
///
/// The balancer's `stickysession=COOKIE` (or `COOKIE|param`) names where the session value
/// is; `stickysessionsep` (default `.`) separates the session id from the route, and
/// `scolonpathdelim` lets `;` end the URL parameter's value. [`RouteExtractor::extract`]
/// applies these rules, borrowing from the request and allocating nothing:
///
/// 1. **The URL first.** `;name=value` path parameters (`/app;jsessionid=ABC.node2/x`), then
///    the query (`?jsessionid=ABC.node2&x=1`). The name is case-sensitive and matches only
///    at a parameter boundary: after `;` in the path; at the start of the query or after
///    `&` or `;` in it. The value ends at the first `&`, `?`, `#` or `/` (and `;` with
///    `scolonpathdelim`). Names are not %-decoded.
/// 2. **Then the cookies**, in every `Cookie` header in order. The cookie name is
///    case-sensitive and matches only at the start of a cookie (the start of the header, or
///    after `;` or `,` and optional whitespace); spaces may surround `=`; the value ends at
///    `;` or `,`, surrounding whitespace is trimmed and surrounding double quotes removed. A
///    header that is not visible ASCII is skipped. With `COOKIE|param`, a cookie named
///    `param` is ignored, as in Apache.
/// 3. **The separator.** The first non-empty value found decides, as in Apache: if it holds
///    no separator, the request is not sticky (no later value is looked at). Otherwise the
///    route is the text after the *first* separator (`.node1.node2` → `node1.node2`). With
///    `stickysessionsep=Off` the whole value is the route. An empty route is no route.
///
/// Empty values (`ROUTEID=`, `?jsessionid=&…`, `ROUTEID=""`) count as absent: the search
/// goes on to the next occurrence.
///
/// # Where this differs from Apache
///
/// * Apache finds the URL parameter by substring search, so `?myjsessionid=abc.node2` matches
///   `jsessionid`, and its value runs on past `/` (`/s3/jsessionid=abc.node2/x` gives the
///   route `node2/x`). Here the name matches only at a parameter boundary and `/` ends the
///   value: look-alike names gave wrong routes.
/// * Apache reads only the first `Cookie` header line; here every `Cookie` header is read
///   (HTTP/2 clients may send one header per cookie).
/// * Apache also accepts the cookie name after whitespace inside another cookie's value
///   (`a=x ROUTEID=.n1`); here it must start a cookie.
/// * Apache takes the first occurrence even when its value is empty (and is then not sticky);
///   here an empty value is skipped.
///
/// # Example
///
/// ```
/// use http::{header::COOKIE, HeaderMap, HeaderValue, Uri};
/// use proxy_balancer::sticky_route::{RouteExtractor, RouteSource};
/// use proxy_balancer::BalancerParams;
///
/// let mut params = BalancerParams::new("balancer://mycluster");
/// params.set("stickysession", "JSESSIONID|jsessionid")?;
/// let extractor = RouteExtractor::from_params(&params).expect("stickysession is set");
///
/// // Tomcat's session cookie: the route follows the first `.`.
/// let mut headers = HeaderMap::new();
/// headers.insert(COOKIE, HeaderValue::from_static("lang=en; JSESSIONID=6736BCF34.node1"));
/// let uri = Uri::from_static("/app/cart");
/// let found = extractor.extract(&uri, &headers).expect("sticky");
/// assert_eq!((found.name, found.source, found.route), ("JSESSIONID", RouteSource::Cookie, "node1"));
///
/// // The URL wins over the cookie.
/// let uri = Uri::from_static("/app;jsessionid=6736BCF34.node2/cart?x=1");
/// let found = extractor.extract(&uri, &headers).expect("sticky");
/// assert_eq!((found.name, found.source, found.route), ("jsessionid", RouteSource::Url, "node2"));
///
/// // A value without the separator is not sticky, as in Apache.
/// headers.insert(COOKIE, HeaderValue::from_static("JSESSIONID=6736BCF34"));
/// assert_eq!(extractor.extract(&Uri::from_static("/app"), &headers), None);
/// # Ok::<(), proxy_balancer::ParamError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteExtractor {
    cookie: Box<str>,
    url_param: Box<str>,
    separator: Option<char>,
    scolon_path_delim: bool,
}

impl RouteExtractor {
    /// An extractor for these settings: `separator` is `stickysessionsep` (`None` for `Off`),
    /// `scolon_path_delim` is `scolonpathdelim`.
    #[must_use]
    pub fn new(sticky: &StickySession, separator: Option<char>, scolon_path_delim: bool) -> Self {
        Self {
            cookie: sticky.cookie().into(),
            url_param: sticky.url_param().into(),
            separator,
            scolon_path_delim,
        }
    }

    /// The extractor of a balancer, if it has `stickysession`.
    #[must_use]
    pub fn from_params(params: &BalancerParams) -> Option<Self> {
        let sticky = params.sticky_session.as_ref()?;
        Some(Self::new(
            sticky,
            params.sticky_session_sep,
            params.scolon_path_delim,
        ))
    }

    /// The cookie name (case-sensitive).
    #[must_use]
    pub fn cookie_name(&self) -> &str {
        &self.cookie
    }

    /// The URL parameter name (case-sensitive).
    #[must_use]
    pub fn url_param(&self) -> &str {
        &self.url_param
    }

    /// The separator before the route (`stickysessionsep`); `None` is `Off`.
    #[must_use]
    pub fn separator(&self) -> Option<char> {
        self.separator
    }

    /// Whether `;` ends the URL parameter's value (`scolonpathdelim`).
    #[must_use]
    pub fn scolon_path_delim(&self) -> bool {
        self.scolon_path_delim
    }

    /// The session route of a request: the URL first, then the cookies.
    ///
    /// `None` when the request carries no non-empty session value, when the first such value
    /// holds no separator, or when the route after the separator is empty.
    #[must_use]
    pub fn extract<'a>(&'a self, uri: &'a Uri, headers: &'a HeaderMap) -> Option<FoundRoute<'a>> {
        let (name, source, value) = if let Some(value) = self.url_value(uri) {
            (&*self.url_param, RouteSource::Url, value)
        } else {
            (
                &*self.cookie,
                RouteSource::Cookie,
                self.cookie_value(headers)?,
            )
        };
        let route = self.route_in(value)?;
        Some(FoundRoute {
            name,
            source,
            route,
        })
    }

    /// The route in a session value: the text after the first separator, or the whole value
    /// with `stickysessionsep=Off`. `None` when there is no separator or the route is empty.
    ///
    /// ```
    /// # use proxy_balancer::{sticky_route::RouteExtractor, StickySession};
    /// let sticky: StickySession = "ROUTEID".parse()?;
    /// let dot = RouteExtractor::new(&sticky, Some('.'), false);
    /// assert_eq!(dot.route_in(".node1.node2"), Some("node1.node2"));
    /// assert_eq!(dot.route_in("node2"), None);
    /// let off = RouteExtractor::new(&sticky, None, false);
    /// assert_eq!(off.route_in(".node2"), Some(".node2"));
    /// # Ok::<(), proxy_balancer::ParamError>(())
    /// ```
    #[must_use]
    pub fn route_in<'v>(&self, value: &'v str) -> Option<&'v str> {
        let route = match self.separator {
            Some(sep) => value.split_once(sep)?.1,
            None => value,
        };
        (!route.is_empty()).then_some(route)
    }

    /// The first non-empty value of the URL parameter: in the path's `;` parameters, then in
    /// the query.
    fn url_value<'u>(&self, uri: &'u Uri) -> Option<&'u str> {
        self.param_value(uri.path(), false, |b| b == b';')
            .or_else(|| self.param_value(uri.query()?, true, |b| matches!(b, b'&' | b';')))
    }

    /// The first non-empty value of `url_param` in `text`, where a name may start at the
    /// beginning (if `at_start`) or after a byte for which `boundary` holds.
    fn param_value<'u>(
        &self,
        text: &'u str,
        at_start: bool,
        boundary: impl Fn(u8) -> bool,
    ) -> Option<&'u str> {
        let after_boundaries = text
            .bytes()
            .enumerate()
            .filter(|&(_, b)| boundary(b))
            .map(|(i, _)| i + 1);
        let mut starts = at_start.then_some(0).into_iter().chain(after_boundaries);
        starts.find_map(|start| {
            // `start` follows an ASCII byte (or is 0), so it is a char boundary.
            let value = text[start..]
                .strip_prefix(&*self.url_param)?
                .strip_prefix('=')?;
            let end = value
                .find(|c| {
                    matches!(c, '&' | '?' | '#' | '/') || (c == ';' && self.scolon_path_delim)
                })
                .unwrap_or(value.len());
            let value = &value[..end];
            (!value.is_empty()).then_some(value)
        })
    }

    /// The first non-empty value of the session cookie, across all `Cookie` headers.
    fn cookie_value<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        cookie_value(headers, &self.cookie)
    }
}

/// The first non-empty value of the cookie `name` across all `Cookie` headers (quotes
/// around it removed), without allocating: the session cookie of sticky routes and the
/// `hashkey=cookie:NAME` of `lbmethod=hash`.
pub(crate) fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|header| header.to_str().ok())
        .find_map(|header| header.split([';', ',']).find_map(|c| cookie_in(c, name)))
}

/// The value of one `name=value` cookie, if it is the cookie `name` and not empty.
fn cookie_in<'h>(cookie: &'h str, name: &str) -> Option<&'h str> {
    let value = cookie
        .trim_start_matches(is_ows)
        .strip_prefix(name)?
        .trim_start_matches(is_ows)
        .strip_prefix('=')?
        .trim_matches(is_ows);
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    (!value.is_empty()).then_some(value)
}

/// Optional whitespace in a header value (RFC 9110's OWS: space or tab).
fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

#[cfg(test)]
#[path = "extract_tests.rs"]
mod tests;
