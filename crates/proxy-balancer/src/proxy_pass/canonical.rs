//! The request path as matched and forwarded: percent-encoded unreserved characters
//! decoded, encoded `/` and NUL refused.

use std::borrow::Cow;

/// Why a request path cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathRefusal {
    /// `%2F` or `%00` in the path: Apache answers 404 (`AllowEncodedSlashes Off`, and a NUL
    /// is never a path character), so an encoded `/` cannot reach a different resource
    /// than the one matched (`/private%2fx`, `/x/..%2fprivate`).
    EncodedSlashOrNul,
    /// A `%` not followed by two hexadecimal digits: 400, as Apache.
    BadEscape,
}

/// The path as a `ProxyPass` line matches it and the member receives it: `%XX` escapes of
/// unreserved characters (`A`–`Z`, `a`–`z`, `0`–`9`, `-`, `.`, `_`, `~`) decoded, which
/// RFC 3986 §6.2.2.2 says changes nothing, so that `/%70rivate` is `/private` to an
/// exclusion as it is to the member; every other escape is kept as sent.
///
/// ```
/// use proxy_balancer::proxy_pass::{canonical_path, PathRefusal};
///
/// assert_eq!(canonical_path("/%70rivate/a%20b").as_deref(), Ok("/private/a%20b"));
/// assert_eq!(canonical_path("/private%2Fx"), Err(PathRefusal::EncodedSlashOrNul));
/// assert_eq!(canonical_path("/x%zz"), Err(PathRefusal::BadEscape));
/// ```
///
/// # Errors
///
/// [`PathRefusal`] for `%2F`, `%00` and bad escapes.
///
/// # Apache
///
/// Apache decodes the whole path before matching (`ap_unescape_url`), refuses `%2F`
/// (`AllowEncodedSlashes Off`) and `%00` with 404, and a bad escape with 400. We decode only
/// what cannot change the meaning, and forward the rest as sent (like `nocanon`).
pub fn canonical_path(path: &str) -> Result<Cow<'_, str>, PathRefusal> {
    let bytes = path.as_bytes();
    if !bytes.contains(&b'%') {
        return Ok(Cow::Borrowed(path));
    }
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let Some(rest) = path.get(i..) else {
            return Err(PathRefusal::BadEscape);
        };
        if !rest.starts_with('%') {
            let next = rest.find('%').map_or(path.len(), |n| i + n);
            out.push_str(path.get(i..next).ok_or(PathRefusal::BadEscape)?);
            i = next;
            continue;
        }
        let hex = path.get(i + 1..i + 3).ok_or(PathRefusal::BadEscape)?;
        let value = u8::from_str_radix(hex, 16).map_err(|_| PathRefusal::BadEscape)?;
        // `from_str_radix` takes a sign: "+f" is not an escape.
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(PathRefusal::BadEscape);
        }
        match value {
            b'/' | 0 => return Err(PathRefusal::EncodedSlashOrNul),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(value));
            }
            _ => {
                out.push('%');
                out.push_str(hex);
            }
        }
        i += 3;
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn unreserved_escapes_are_decoded_others_kept() {
        for (path, expected) in [
            ("/plain", "/plain"),
            ("/%70rivate", "/private"),
            ("/priv%61te/x", "/private/x"),
            ("/%7e%7Euser", "/~~user"),
            ("/a%20b%3Fc", "/a%20b%3Fc"),
            ("/%2e%2E/x", "/../x"),
            ("/caf%C3%A9", "/caf%C3%A9"),
        ] {
            assert_eq!(canonical_path(path).as_deref(), Ok(expected), "{path}");
        }
    }

    #[test]
    fn encoded_slash_nul_and_bad_escapes_are_refused() {
        for path in ["/a%2fb", "/a%2Fb", "/x/..%2fprivate", "/private%00", "/%00"] {
            assert_eq!(
                canonical_path(path),
                Err(PathRefusal::EncodedSlashOrNul),
                "{path}"
            );
        }
        for path in ["/%", "/%4", "/%zz", "/a%+f", "/%-1"] {
            assert_eq!(canonical_path(path), Err(PathRefusal::BadEscape), "{path}");
        }
    }

    proptest! {
        /// Never panics; what it returns has no escape of an unreserved character, `/` or NUL,
        /// and decoding it once more changes nothing.
        #[test]
        fn canonical_is_stable(path in "(/|[a-z]|%[0-9a-fA-F]{2}|%|[ -~]){0,40}") {
            if let Ok(once) = canonical_path(&path) {
                let twice = canonical_path(&once).map(Cow::into_owned);
                prop_assert_eq!(twice.as_deref(), Ok(&*once));
            }
        }
    }
}
