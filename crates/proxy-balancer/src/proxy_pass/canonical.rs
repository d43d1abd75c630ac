//! The request path as Apache matches and forwards it: every escape decoded and dot segments
//! removed for matching ([`RequestPath::matched`]), then re-encoded by mod_proxy's rules for
//! the member ([`RequestPath::forwarded`]).

use std::borrow::Cow;

use http::StatusCode;

/// What to do with `%2F` (an encoded `/`) in a request path.
///
/// # Apache
///
/// `AllowEncodedSlashes Off|On|NoDecode` (server context), `Off` by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EncodedSlashes {
    /// `AllowEncodedSlashes Off`: a path holding `%2F` is answered 404 (Apache's AH00026).
    #[default]
    Refuse,
    /// `AllowEncodedSlashes On`: `%2F` is decoded to `/` like any escape, and the path is
    /// normalised again (`/.%2F` is `/`).
    Decode,
    /// `AllowEncodedSlashes NoDecode`: `%2F` is accepted and kept encoded, both for matching
    /// (it is not a segment separator) and in what the member receives.
    Keep,
}

/// Why a request path cannot be served, with Apache's answer ([`status`](Self::status)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathRefusal {
    /// `%2F` (under `AllowEncodedSlashes Off`) or `%00` (always) in the path: 404, as
    /// Apache's `ap_unescape_url`, so that an encoded `/` cannot reach another resource than
    /// the one matched (`/private%2fx`, `/x/..%2fprivate`).
    EncodedSlashOrNul,
    /// A `%` not followed by two hexadecimal digits: 400, as Apache (AH10244).
    BadEscape,
    /// A `..` segment climbing above the root (`/..`, `/a/../..`): 400, as Apache (AH10244).
    AboveRoot,
}

impl PathRefusal {
    /// The status Apache answers: 404 for [`EncodedSlashOrNul`](Self::EncodedSlashOrNul),
    /// 400 otherwise.
    #[must_use]
    pub const fn status(self) -> StatusCode {
        match self {
            Self::EncodedSlashOrNul => StatusCode::NOT_FOUND,
            Self::BadEscape | Self::AboveRoot => StatusCode::BAD_REQUEST,
        }
    }
}

impl std::fmt::Display for PathRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::EncodedSlashOrNul => "encoded '/' or NUL in the request path",
            Self::BadEscape => "a '%' not followed by two hexadecimal digits in the request path",
            Self::AboveRoot => "a '..' segment climbs above the root of the request path",
        })
    }
}

impl std::error::Error for PathRefusal {}

/// A request path as Apache sees it: the path as sent ([`raw`](Self::raw)), the decoded,
/// normalised path `ProxyPass` lines, `!` exclusions and `<Location>`s match
/// ([`matched`](Self::matched), Apache's `r->uri`), and the path the member receives
/// ([`forwarded`](Self::forwarded)).
///
/// [`parse`](Self::parse) does what Apache 2.4 does before its translate phase:
/// 1. `ap_normalize_path`: escapes of unreserved characters (`A`–`Z`, `a`–`z`, `0`–`9`, `-`,
///    `.`, `_`, `~`) decoded, `.` and `..` segments removed (also spelled `%2e`), runs of `/`
///    merged (`MergeSlashes On`, Apache's default); a bad escape or a `..` above the root is
///    refused (400);
/// 2. `ap_unescape_url`: every other escape decoded, `%00` refused (404), `%2F` as
///    [`EncodedSlashes`] says (404 by default); after decoding `%2F` the path is normalised
///    again.
///
/// The decoded path is bytes: `%FF` or a lone `%C3` are kept as they are, never lost or
/// replaced, and [`forwarded`](Self::forwarded) encodes them again.
///
/// A plain path (no `%`, no `.` or `..` segment, no `//`) is not copied: parsing it does not
/// allocate, nor does forwarding it when it holds only characters Apache sends as they are.
///
/// ```
/// use proxy_balancer::proxy_pass::{EncodedSlashes, PathRefusal, RequestPath};
///
/// let path = RequestPath::parse("/%70rivate/./a%20b/../caf%C3%A9")?;
/// assert_eq!(path.matched(), "/private/café".as_bytes());
/// assert_eq!(path.forwarded(), "/private/caf%C3%A9");
///
/// assert_eq!(RequestPath::parse("/private%2Fx").unwrap_err(), PathRefusal::EncodedSlashOrNul);
/// assert_eq!(RequestPath::parse("/x/../../etc").unwrap_err(), PathRefusal::AboveRoot);
/// assert_eq!(RequestPath::parse("/x%zz").unwrap_err().status(), 400);
///
/// // AllowEncodedSlashes NoDecode: accepted, and kept encoded.
/// let kept = RequestPath::parse_with("/a%2fb", EncodedSlashes::Keep)?;
/// assert_eq!(kept.matched(), b"/a%2fb");
/// assert_eq!(kept.forwarded(), "/a%2fb");
/// # Ok::<(), PathRefusal>(())
/// ```
///
/// # Apache
///
/// `ap_process_request_internal` (server/request.c) for matching, `ap_proxy_canonenc_ex`
/// (modules/proxy/proxy_util.c, as mod_proxy_http and mod_proxy_balancer call it) for what
/// is forwarded. The `nocanon` flag of `ProxyPass` forwards [`raw`](Self::raw) instead
/// ([`ProxyPass::with_nocanon`](super::ProxyPass::with_nocanon)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPath<'a> {
    raw: &'a str,
    matched: Cow<'a, [u8]>,
    slashes: EncodedSlashes,
}

// ===== impl RequestPath =====

impl<'a> RequestPath<'a> {
    /// Parses a request path (`Uri::path`, without the query) as Apache does with
    /// `AllowEncodedSlashes Off`; see the [type docs](Self).
    ///
    /// # Errors
    ///
    /// [`PathRefusal`] for `%2F`, `%00`, bad escapes and `..` above the root.
    pub fn parse(raw: &'a str) -> Result<Self, PathRefusal> {
        Self::parse_with(raw, EncodedSlashes::Refuse)
    }

    /// Parses a request path with the given `AllowEncodedSlashes` mode.
    ///
    /// A path not starting with `/` (`*` of `OPTIONS *`) is kept as it is and matches no
    /// `ProxyPass` line.
    ///
    /// ```
    /// use proxy_balancer::proxy_pass::{EncodedSlashes, RequestPath};
    ///
    /// // AllowEncodedSlashes On: decoded, then normalised again.
    /// let path = RequestPath::parse_with("/x/..%2Fprivate", EncodedSlashes::Decode)?;
    /// assert_eq!(path.matched(), b"/private");
    /// # Ok::<(), proxy_balancer::proxy_pass::PathRefusal>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`PathRefusal`] for `%2F` (unless `slashes` accepts it), `%00`, bad escapes and `..`
    /// above the root.
    pub fn parse_with(raw: &'a str, slashes: EncodedSlashes) -> Result<Self, PathRefusal> {
        let matched = if is_plain(raw) {
            Cow::Borrowed(raw.as_bytes())
        } else {
            Cow::Owned(decode(raw, slashes)?)
        };
        Ok(Self {
            raw,
            matched,
            slashes,
        })
    }

    /// The path as the client sent it.
    #[must_use]
    pub const fn raw(&self) -> &'a str {
        self.raw
    }

    /// The decoded, normalised path that `ProxyPass` lines and the balancer-manager's mount
    /// match (Apache's `r->uri`). Bytes: a decoded path need not be UTF-8.
    #[must_use]
    pub fn matched(&self) -> &[u8] {
        &self.matched
    }

    /// The `AllowEncodedSlashes` mode the path was parsed with.
    #[must_use]
    pub const fn encoded_slashes(&self) -> EncodedSlashes {
        self.slashes
    }

    /// The whole [`matched`](Self::matched) path encoded for the member, as
    /// [`encode_path`] does.
    ///
    /// ```
    /// use proxy_balancer::proxy_pass::RequestPath;
    ///
    /// let path = RequestPath::parse("/a%20b/%7e%41;x=1/%22q%22")?;
    /// assert_eq!(path.forwarded(), "/a%20b/~A;x=1/%22q%22");
    /// # Ok::<(), proxy_balancer::proxy_pass::PathRefusal>(())
    /// ```
    #[must_use]
    pub fn forwarded(&self) -> Cow<'_, str> {
        encode_path(&self.matched, self.slashes)
    }
}

/// Encodes a decoded path (a [`RequestPath::matched`] or a part of it) for the member, as
/// Apache's `ap_proxy_canonenc_ex` does for a reverse-proxied path: letters, digits, `/` and
/// `~$-_.+!*'(),;:@&=` are sent as they are, every other byte as `%XX` with uppercase hex.
/// Under [`EncodedSlashes::Keep`] an escape of `/` left in the path is sent as it is and any
/// other `%` is encoded (`%25`).
///
/// Borrows when nothing needs encoding.
///
/// ```
/// use proxy_balancer::proxy_pass::{encode_path, EncodedSlashes};
///
/// assert_eq!(encode_path(b"/a/b", EncodedSlashes::Refuse), "/a/b");
/// assert_eq!(encode_path("/a b/é".as_bytes(), EncodedSlashes::Refuse), "/a%20b/%C3%A9");
/// assert_eq!(encode_path(b"/50%/\xff", EncodedSlashes::Refuse), "/50%25/%FF");
/// assert_eq!(encode_path(b"/a%2Fb%41", EncodedSlashes::Keep), "/a%2Fb%2541");
/// ```
///
/// # Apache
///
/// `ap_proxy_canonenc_ex(…, enc_path, flags, PROXYREQ_REVERSE)`, with
/// `PROXY_CANONENC_NOENCODEDSLASHENCODING` under `AllowEncodedSlashes NoDecode`. Where
/// Apache answers 400 (a `%` not followed by two hexadecimal digits in the decoded path,
/// under `NoDecode`, as in `/a%25zz`), the `%` is encoded here.
#[must_use]
pub fn encode_path(path: &[u8], slashes: EncodedSlashes) -> Cow<'_, str> {
    let keep_slash = |i: usize| {
        slashes == EncodedSlashes::Keep
            && path.get(i) == Some(&b'%')
            && path.get(i + 1) == Some(&b'2')
            && path
                .get(i + 2)
                .is_some_and(|b| b.eq_ignore_ascii_case(&b'f'))
    };
    let first = path
        .iter()
        .enumerate()
        .position(|(i, &b)| !sent_as_is(b) && !keep_slash(i));
    let Some(first) = first else {
        // Only bytes sent as they are: ASCII, so UTF-8.
        return String::from_utf8_lossy(path);
    };
    let mut out = String::with_capacity(path.len() + 16);
    out.extend(path[..first].iter().map(|&b| char::from(b)));
    let mut i = first;
    while let Some(&b) = path.get(i) {
        if keep_slash(i) {
            out.extend(path[i..i + 3].iter().map(|&b| char::from(b)));
            i += 3;
            continue;
        }
        if sent_as_is(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
            out.push(char::from(HEX_UPPER[usize::from(b & 0x0f)]));
        }
        i += 1;
    }
    Cow::Owned(out)
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Whether `ap_proxy_canonenc_ex` sends a path byte as it is: alphanumerics, the reserved
/// `/` and the `enc_path` allowed set `~$-_.+!*'(),;:@&=`.
const fn sent_as_is(b: u8) -> bool {
    matches!(b,
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'/'
        | b'~' | b'$' | b'-' | b'_' | b'.' | b'+' | b'!' | b'*' | b'\''
        | b'(' | b')' | b',' | b';' | b':' | b'@' | b'&' | b'=')
}

/// RFC 3986's unreserved characters (Apache's `T_URI_UNRESERVED`).
const fn is_unreserved(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~')
}

/// A path Apache would leave unchanged: starts with `/`, no `%`, no `.` or `..` segment, no
/// empty segment but the last (`//`). Not starting with `/` (`*`) is also kept as is.
fn is_plain(raw: &str) -> bool {
    if !raw.starts_with('/') {
        return true;
    }
    if raw.contains('%') {
        return false;
    }
    let mut segments = raw[1..].split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if segment == "." || segment == ".." || (segment.is_empty() && !last) {
            return false;
        }
    }
    true
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The byte an escape at `i` (`%XX`) stands for.
fn escape_at(path: &[u8], i: usize) -> Option<u8> {
    let hi = hex_value(*path.get(i + 1)?)?;
    let lo = hex_value(*path.get(i + 2)?)?;
    Some((hi << 4) | lo)
}

/// Apache's `ap_process_request_internal` path steps on an absolute path (see
/// [`RequestPath::parse`]).
fn decode(raw: &str, slashes: EncodedSlashes) -> Result<Vec<u8>, PathRefusal> {
    let mut path = raw.as_bytes().to_vec();
    let Normalised {
        bad_escape,
        above_root,
    } = normalize(&mut path, true);
    if bad_escape {
        return Err(PathRefusal::BadEscape);
    }
    if above_root {
        return Err(PathRefusal::AboveRoot);
    }
    unescape(&mut path, slashes)?;
    if slashes == EncodedSlashes::Decode {
        // Decoded slashes may have made new `//` or dot segments (`/.%2F`); Apache
        // normalises again and ignores a `..` at the root there.
        normalize(&mut path, false);
    }
    Ok(path)
}

struct Normalised {
    bad_escape: bool,
    above_root: bool,
}

/// Apache's `ap_normalize_path` with `AP_NORMALIZE_NOT_ABOVE_ROOT` and
/// `AP_NORMALIZE_MERGE_SLASHES`, and `AP_NORMALIZE_DECODE_UNRESERVED` if `decode_unreserved`,
/// in place on a path starting with `/`. A `..` at the root is dropped (and reported).
fn normalize(path: &mut Vec<u8>, decode_unreserved: bool) -> Normalised {
    let mut result = Normalised {
        bad_escape: false,
        above_root: false,
    };
    // `at(i)` is the byte at `i`, 0 past the end (Apache's NUL terminator).
    fn at(path: &[u8], i: usize) -> u8 {
        path.get(i).copied().unwrap_or(0)
    }
    let slash_or_end = |b: u8| b == b'/' || b == 0;
    let (mut l, mut w) = (1, 1);
    while l < path.len() {
        if decode_unreserved && path[l] == b'%' {
            match escape_at(path, l) {
                Some(c) if is_unreserved(c) => {
                    l += 2;
                    path[l] = c;
                }
                Some(_) => {}
                None => result.bad_escape = true,
            }
        }
        if path[w - 1] == b'/' {
            if path[l] == b'/' {
                while at(path, l) == b'/' {
                    l += 1;
                }
                continue;
            }
            if path[l] == b'.' {
                if slash_or_end(at(path, l + 1)) {
                    l += 1;
                    if l < path.len() {
                        l += 1;
                    }
                    continue;
                }
                let mut n = l + 1;
                let second_dot = at(path, n) == b'.'
                    || (decode_unreserved
                        && at(path, n) == b'%'
                        && {
                            n += 1;
                            at(path, n) == b'2'
                        }
                        && {
                            n += 1;
                            at(path, n) == b'e' || at(path, n) == b'E'
                        });
                if second_dot && slash_or_end(at(path, n + 1)) {
                    if w > 1 {
                        loop {
                            w -= 1;
                            if w == 0 || path[w - 1] == b'/' {
                                break;
                            }
                        }
                    } else {
                        result.above_root = true;
                    }
                    l = n + 1;
                    if l < path.len() {
                        l += 1;
                    }
                    continue;
                }
            }
        }
        path[w] = path[l];
        w += 1;
        l += 1;
    }
    path.truncate(w);
    result
}

/// Apache's `ap_unescape_url_ex` with `AP_UNESCAPE_URL_KEEP_UNRESERVED` and the slash flag
/// `AllowEncodedSlashes` gives, on a normalised path (so without bad escapes).
fn unescape(path: &mut Vec<u8>, slashes: EncodedSlashes) -> Result<(), PathRefusal> {
    let Some(start) = path.iter().position(|&b| b == b'%') else {
        return Ok(());
    };
    let mut refused = false;
    let (mut x, mut y) = (start, start);
    while y < path.len() {
        if path[y] != b'%' {
            path[x] = path[y];
        } else if let Some(decoded) = escape_at(path, y) {
            let keep = decoded == b'/' && slashes == EncodedSlashes::Keep;
            if decoded == 0 || (decoded == b'/' && slashes == EncodedSlashes::Refuse) {
                refused = true;
                path[x] = decoded;
                y += 2;
            } else if keep {
                path.copy_within(y..y + 3, x);
                x += 2;
                y += 2;
            } else {
                path[x] = decoded;
                y += 2;
            }
        } else {
            // Never after `normalize`, which refuses bad escapes first.
            return Err(PathRefusal::BadEscape);
        }
        x += 1;
        y += 1;
    }
    path.truncate(x);
    if refused {
        Err(PathRefusal::EncodedSlashOrNul)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn matched(raw: &str, slashes: EncodedSlashes) -> Result<Vec<u8>, PathRefusal> {
        RequestPath::parse_with(raw, slashes).map(|p| p.matched().to_vec())
    }

    #[test]
    fn matched_is_decoded_and_normalised_as_apache() {
        for (raw, expected) in [
            ("/", "/"),
            ("/plain/path", "/plain/path"),
            ("/%70rivate/x", "/private/x"),
            ("/a%20b", "/a b"),
            ("/%C3%A9t%C3%A9", "/été"),
            ("/a/./b/../c", "/a/c"),
            ("/x/../private", "/private"),
            ("/./private", "/private"),
            ("/x/%2e%2e/private", "/private"),
            ("/x/.%2E/private", "/private"),
            ("/x/%2E./private", "/private"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/a/..", "/"),
            ("//a///b/", "/a/b/"),
            ("/a/.../b", "/a/.../b"),
            ("/a/.b/..c", "/a/.b/..c"),
            ("/.well-known/x", "/.well-known/x"),
            // A decoded `%2e` is data after the first pass: `%252e` is `%2e`, not a dot.
            ("/%252e%252e/x", "/%2e%2e/x"),
            ("/a%25", "/a%"),
            ("*", "*"),
        ] {
            assert_eq!(
                matched(raw, EncodedSlashes::Refuse).as_deref(),
                Ok(expected.as_bytes()),
                "{raw}"
            );
        }
        // Not UTF-8: kept as bytes.
        assert_eq!(
            matched("/%FF%C3", EncodedSlashes::Refuse).as_deref(),
            Ok(&b"/\xff\xc3"[..])
        );
    }

    #[test]
    fn refusals_as_apache() {
        for (raw, refusal) in [
            ("/private%2fx", PathRefusal::EncodedSlashOrNul),
            ("/x/..%2fprivate", PathRefusal::EncodedSlashOrNul),
            ("/private%00", PathRefusal::EncodedSlashOrNul),
            ("/%", PathRefusal::BadEscape),
            ("/%4", PathRefusal::BadEscape),
            ("/%zz", PathRefusal::BadEscape),
            ("/a%+f", PathRefusal::BadEscape),
            // A bad escape wins over an encoded slash (400 before 404, as Apache).
            ("/%2f%zz", PathRefusal::BadEscape),
            ("/..", PathRefusal::AboveRoot),
            ("/%2e%2e/private", PathRefusal::AboveRoot),
            ("/a/../..", PathRefusal::AboveRoot),
            ("/../a", PathRefusal::AboveRoot),
        ] {
            let got = RequestPath::parse(raw).map(|p| p.matched().to_vec());
            assert_eq!(got, Err(refusal), "{raw}");
        }
        assert_eq!(
            PathRefusal::EncodedSlashOrNul.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(PathRefusal::AboveRoot.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn allow_encoded_slashes_on_and_nodecode() {
        let on = EncodedSlashes::Decode;
        assert_eq!(matched("/a%2fb", on).as_deref(), Ok(&b"/a/b"[..]));
        assert_eq!(
            matched("/x/..%2Fprivate", on).as_deref(),
            Ok(&b"/private"[..])
        );
        assert_eq!(matched("/.%2F/a", on).as_deref(), Ok(&b"/a"[..]));
        // Apache ignores a `..` at the root in the second pass.
        assert_eq!(matched("/..%2Fa", on).as_deref(), Ok(&b"/a"[..]));
        assert_eq!(
            matched("/a%00", on).as_deref(),
            Err(&PathRefusal::EncodedSlashOrNul)
        );
        let keep = EncodedSlashes::Keep;
        assert_eq!(matched("/a%2fb%20", keep).as_deref(), Ok(&b"/a%2fb "[..]));
        assert_eq!(
            matched("/x/..%2Fprivate", keep).as_deref(),
            Ok(&b"/x/..%2Fprivate"[..])
        );
        let path = RequestPath::parse_with("/a%2fb%20%25", keep).unwrap();
        assert_eq!(path.forwarded(), "/a%2fb%20%25");
    }

    #[test]
    fn forwarded_is_apache_canonenc() {
        for (raw, expected) in [
            ("/plain", "/plain"),
            ("/a%20b", "/a%20b"),
            ("/%c3%a9", "/%C3%A9"),
            ("/a/./b/../c", "/a/c"),
            ("/%41%7e%2d", "/A~-"),
            ("/a%3Fb%23c", "/a%3Fb%23c"),
            ("/a%3bb%3D%2B%24", "/a;b=+$"),
            ("/a\"b", "/a%22b"),
            ("/a{b}|c", "/a%7Bb%7D%7Cc"),
            ("/%FF", "/%FF"),
            ("/100%25", "/100%25"),
        ] {
            let path = RequestPath::parse(raw).unwrap();
            assert_eq!(path.forwarded(), expected, "{raw}");
        }
    }

    #[test]
    fn plain_paths_borrow() {
        for raw in ["/", "/a/b", "/a/b/", "/.well-known/x", "/a;b=c"] {
            let path = RequestPath::parse(raw).unwrap();
            assert!(matches!(path.matched, Cow::Borrowed(_)), "{raw}");
            assert!(matches!(path.forwarded(), Cow::Borrowed(_)), "{raw}");
        }
    }

    proptest! {
        /// Never panics, in any mode; the forwarded form is a valid URI path, parses to the
        /// same matched path (matching is idempotent on the normalised form), and forwarding
        /// it again changes nothing.
        #[test]
        fn request_path_is_idempotent(
            path in "/(/|\\.|\\.\\.|[a-z]|%[0-9a-fA-F]{2}|%2[eEfF]|%|%00|[ -~]|é){0,40}",
            mode in prop_oneof![
                Just(EncodedSlashes::Refuse),
                Just(EncodedSlashes::Decode),
                Just(EncodedSlashes::Keep),
            ],
        ) {
            let Ok(first) = RequestPath::parse_with(&path, mode) else {
                return Ok(());
            };
            let forwarded = first.forwarded().into_owned();
            prop_assert!(forwarded.parse::<http::uri::PathAndQuery>().is_ok(), "{}", forwarded);
            let second = RequestPath::parse_with(&forwarded, mode);
            prop_assert_eq!(
                second.as_ref().map(RequestPath::matched),
                Ok(first.matched()),
                "{} -> {}", path, forwarded
            );
            if let Ok(second) = second {
                prop_assert_eq!(second.forwarded(), forwarded.as_str());
            }
        }
    }
}
