//! The one joiner of a member's base path with a request's path and query.

use http::uri::InvalidUri;
use http::Uri;

/// The URI a request goes to on a member: `origin` (`http://10.0.0.1:8080`, or empty for the
/// origin form), then the member's `base_path` (empty or `/base`, without a trailing `/`),
/// the request's `path`, and `?query` when there is one. When base path and path are both
/// empty the path is `/`.
///
/// The parts are joined as they are, as Apache does: nothing is decoded, normalised or
/// escaped here (the path was normalised where it was matched).
///
/// ```
/// use proxy_balancer::proxy_pass::join_uri;
///
/// let uri = join_uri("http://10.0.0.1:8080", "/app", "/x", Some("y=1"))?;
/// assert_eq!(uri, "http://10.0.0.1:8080/app/x?y=1");
/// assert_eq!(join_uri("", "/app", "/x", None)?, "/app/x");
/// assert_eq!(join_uri("http://b", "", "", Some("q"))?, "http://b/?q");
/// assert!(join_uri("", "", "/a b", None).is_err());
/// # Ok::<(), http::uri::InvalidUri>(())
/// ```
///
/// # Errors
///
/// [`InvalidUri`] when the joined text does not parse as a URI.
///
/// # Apache
///
/// The concatenation in mod_proxy_balancer's `rewrite_url` and mod_proxy_http's request
/// line.
pub fn join_uri(
    origin: &str,
    base_path: &str,
    path: &str,
    query: Option<&str>,
) -> Result<Uri, InvalidUri> {
    Uri::try_from(join_text(origin, base_path, path, query))
}

/// [`join_uri`]'s text, not parsed: for request lines written as they are (the health
/// probes' `hcuri` is concatenated as given) and for error messages.
pub(crate) fn join_text(origin: &str, base_path: &str, path: &str, query: Option<&str>) -> String {
    let mut text = String::with_capacity(
        origin.len() + base_path.len() + path.len().max(1) + query.map_or(0, |q| q.len() + 1),
    );
    text.push_str(origin);
    text.push_str(base_path);
    text.push_str(path);
    if text.len() == origin.len() {
        text.push('/');
    }
    if let Some(query) = query {
        text.push('?');
        text.push_str(query);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_origin_base_path_and_query() {
        for (origin, base, path, query, joined) in [
            ("http://h:1", "", "/", None, "http://h:1/"),
            ("http://h:1", "", "", None, "http://h:1/"),
            ("http://h:1", "/base", "", None, "http://h:1/base"),
            (
                "http://h:1",
                "/base",
                "/x",
                Some("a=1&b"),
                "http://h:1/base/x?a=1&b",
            ),
            ("http://h:1", "", "/x", Some(""), "http://h:1/x?"),
            (
                "http://[::1]:8080",
                "/b",
                "/x",
                None,
                "http://[::1]:8080/b/x",
            ),
            ("", "", "/x", Some("q"), "/x?q"),
            ("", "", "", None, "/"),
            ("", "", "", Some("q"), "/?q"),
            ("", "/base", "/x%20y", None, "/base/x%20y"),
        ] {
            assert_eq!(join_text(origin, base, path, query), joined);
            let uri = join_uri(origin, base, path, query).unwrap();
            assert_eq!(uri.to_string(), joined);
        }
    }

    #[test]
    fn text_is_kept_as_given() {
        // A health probe's `hcuri` without a leading `/` stays as it is.
        assert_eq!(join_text("", "", "health", None), "health");
        assert_eq!(join_text("", "/app", "health?x", None), "/apphealth?x");
    }

    #[test]
    fn refuses_what_is_not_a_uri() {
        assert!(join_uri("", "", "/a b", None).is_err());
        assert!(join_uri("", "", "/a", Some("b\nc")).is_err());
        assert!(join_uri("nope://", "", "", None).is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_what_it_returns_parses(
            origin in proptest::sample::select(vec![
                "", "http://h", "http://h:8080", "https://[::1]:8443", "http://10.0.0.1",
            ]),
            base in "(/[a-zA-Z0-9%._~-]{0,8}){0,3}",
            path in "\\PC{0,40}",
            query in proptest::option::of("\\PC{0,20}"),
        ) {
            let text = join_text(origin, &base, &path, query.as_deref());
            proptest::prop_assert!(text.len() >= origin.len() + base.len() + path.len());
            if let Ok(uri) = join_uri(origin, &base, &path, query.as_deref()) {
                let again: Result<Uri, _> = uri.to_string().parse();
                proptest::prop_assert!(again.is_ok(), "{uri} does not parse again");
            }
        }

        #[test]
        fn valid_paths_always_join(
            origin in proptest::sample::select(vec!["", "http://h:1", "http://[::1]"]),
            base in "(/[a-z0-9]{1,6}){0,2}",
            path in "(/[a-zA-Z0-9%._~!$&'()*+,;=:@-]{0,8}){0,4}",
            query in proptest::option::of("[a-zA-Z0-9=&%/?._~-]{0,16}"),
        ) {
            let uri = join_uri(origin, &base, &path, query.as_deref());
            proptest::prop_assert!(uri.is_ok(), "{origin} {base} {path} {query:?}");
            let uri = uri.unwrap_or_default();
            let expected_path = if base.is_empty() && path.is_empty() { "/".to_owned() } else { format!("{base}{path}") };
            proptest::prop_assert_eq!(uri.path(), expected_path.as_str());
            proptest::prop_assert_eq!(uri.query(), query.as_deref());
        }
    }
}
