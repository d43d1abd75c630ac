//! The routes of one server: `<Location>` matching, and `ProxyPassMatch` (a regular
//! expression with `$1` … `$9` in the target).

use std::borrow::Cow;

use regex::bytes::{Captures, Regex};

use crate::proxy_pass::{encode_path, ProxyPass, RequestPath};

use super::SiteError;

/// How a `<Location>` matches a request path (Apache's location walk, on the decoded,
/// normalised path).
#[derive(Clone, Debug)]
pub(super) enum LocationMatcher {
    /// `<Location "/private1">` matches `/private1`, `/private1/` and below, not
    /// `/private1other`; `<Location "/private2/">` matches `/private2/` and below only.
    Prefix(String),
    /// `<LocationMatch re>` or `<Location ~ re>`.
    Regex(Regex),
}

impl LocationMatcher {
    /// The matcher of a location path as written.
    ///
    /// # Errors
    ///
    /// A regular expression that does not compile; a wildcard (`*`, `?`, `[`) in a plain
    /// path, which Apache matches with `fnmatch` (not supported here).
    pub(super) fn new(path: &str, regex: bool, line: u32) -> Result<Self, SiteError> {
        if regex {
            return compile(path, line, "<LocationMatch>").map(Self::Regex);
        }
        if path.contains(['*', '?', '[']) {
            return Err(SiteError::Unsupported {
                line,
                reason: format!(
                    "<Location \"{path}\">: wildcards in a location path are not supported; use <LocationMatch> with a regular expression"
                ),
            });
        }
        // Apache merges runs of `/` in the location path, as in request paths.
        let mut merged = String::with_capacity(path.len());
        for c in path.chars() {
            if !(c == '/' && merged.ends_with('/')) {
                merged.push(c);
            }
        }
        Ok(Self::Prefix(merged))
    }

    /// Whether the location applies to a matched path ([`RequestPath::matched`]).
    pub(super) fn matches(&self, path: &[u8]) -> bool {
        match self {
            Self::Prefix(prefix) => path.strip_prefix(prefix.as_bytes()).is_some_and(|rest| {
                prefix.ends_with('/') || rest.is_empty() || rest.starts_with(b"/")
            }),
            Self::Regex(regex) => regex.is_match(path),
        }
    }
}

fn compile(pattern: &str, line: u32, what: &str) -> Result<Regex, SiteError> {
    Regex::new(pattern).map_err(|err| SiteError::Unsupported {
        line,
        reason: format!("{what} \"{pattern}\": the regular expression does not compile: {err}"),
    })
}

/// A `ProxyPassMatch regex balancer://name/path$1` (or a `ProxyPass` inside a
/// `<LocationMatch>`): the regular expression is matched against the decoded, normalised
/// path, `$0` … `$9` and `&` in the target replaced by the groups, and the result encoded
/// as mod_proxy encodes a path. A target without substitution gets the whole path appended
/// (`ProxyPassMatch "\.jpg$" "balancer://x/jpgs"` sends `/z/a.jpg` as `/jpgs/z/a.jpg`), as
/// Apache does. Checked against Apache 2.4.71 on loopback.
#[derive(Clone, Debug)]
pub(super) struct RegexPass {
    regex: Regex,
    /// The path part of the target after the balancer name, with its `$n` as written.
    template: String,
}

impl RegexPass {
    pub(super) fn new(pattern: &str, template: &str, line: u32) -> Result<Self, SiteError> {
        Ok(Self {
            regex: compile(pattern, line, "ProxyPassMatch")?,
            template: template.to_owned(),
        })
    }

    pub(super) fn matches(&self, path: &RequestPath<'_>) -> bool {
        self.regex.is_match(path.matched())
    }

    /// The path for the member, or `None` when the expression does not match.
    pub(super) fn forward_path<'p>(&self, path: &'p RequestPath<'_>) -> Option<Cow<'p, str>> {
        let matched = path.matched();
        let captures = self.regex.captures(matched)?;
        let substituted = substitute(self.template.as_bytes(), &captures);
        let whole = if substituted == self.template.as_bytes() {
            // No substitution: Apache appends the whole path to the target.
            let mut whole = substituted;
            whole.extend_from_slice(matched);
            whole
        } else {
            substituted
        };
        Some(Cow::Owned(
            encode_path(&whole, path.encoded_slashes()).into_owned(),
        ))
    }
}

/// Apache's `ap_pregsub`: `&` and `$0` are the whole match, `$1` … `$9` the groups (empty
/// when a group did not take part), `\c` is `c`.
fn substitute(template: &[u8], captures: &Captures<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(template.len() + 32);
    let mut i = 0;
    while let Some(&c) = template.get(i) {
        i += 1;
        let group = match c {
            b'&' => Some(0),
            b'$' => match template.get(i) {
                Some(d) if d.is_ascii_digit() => {
                    i += 1;
                    Some(usize::from(d - b'0'))
                }
                _ => None,
            },
            _ => None,
        };
        match group {
            Some(n) => {
                if let Some(m) = captures.get(n) {
                    out.extend_from_slice(m.as_bytes());
                }
            }
            None if c == b'\\' && i < template.len() => {
                out.push(template[i]);
                i += 1;
            }
            None => out.push(c),
        }
    }
    out
}

/// What a route matches: a prefix (`ProxyPass`, or one in a `<Location>`) or a regular
/// expression.
#[derive(Clone, Debug)]
pub(super) enum Pass {
    Prefix(ProxyPass),
    Regex(RegexPass),
}

impl Pass {
    pub(super) fn matches(&self, path: &RequestPath<'_>) -> bool {
        match self {
            Self::Prefix(pass) => pass.matches_request(path),
            Self::Regex(pass) => pass.matches(path),
        }
    }

    pub(super) fn forward_path<'p>(&self, path: &'p RequestPath<'_>) -> Option<Cow<'p, str>> {
        match self {
            Self::Prefix(pass) => pass.forward_path(path),
            Self::Regex(pass) => pass.forward_path(path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forward(pattern: &str, template: &str, sent: &str) -> Option<String> {
        let pass = RegexPass::new(pattern, template, 1).ok()?;
        let path = RequestPath::parse(sent).ok()?;
        pass.forward_path(&path).map(Cow::into_owned)
    }

    #[test]
    fn regex_targets_substitute_as_apache() {
        // What Apache 2.4.71 sent to the member, on loopback.
        assert_eq!(
            forward(r"^/pm/(.*)\.gif$", "/gifs/$1.png", "/pm/a%20b.gif").as_deref(),
            Some("/gifs/a%20b.png")
        );
        assert_eq!(
            forward(r"\.jpg$", "/jpgs", "/z/a%20b.jpg").as_deref(),
            Some("/jpgs/z/a%20b.jpg")
        );
        assert_eq!(
            forward(r"^/nd/", "", "/nd/a%20b").as_deref(),
            Some("/nd/a%20b")
        );
        assert_eq!(
            forward(r"^/lm/(\w+)/(.*)$", "/lm-$2/$1", "/lm/ab/c%20d").as_deref(),
            Some("/lm-c%20d/ab")
        );
        assert_eq!(forward(r"^/x$", "/y", "/z"), None);
        assert_eq!(
            forward(r"^/(a)(b)?", r"/\$1&$2", "/a").as_deref(),
            Some("/$1/a")
        );
    }

    #[test]
    fn locations_match_as_apaches_core_docs_say() {
        let one = LocationMatcher::new("/private1", false, 1).ok();
        let two = LocationMatcher::new("/private2/", false, 1).ok();
        let (Some(one), Some(two)) = (one, two) else {
            panic!("valid locations");
        };
        for p in ["/private1", "/private1/", "/private1/file.txt"] {
            assert!(one.matches(p.as_bytes()), "{p}");
        }
        assert!(!one.matches(b"/private1other"));
        assert!(!two.matches(b"/private2"));
        assert!(two.matches(b"/private2/") && two.matches(b"/private2/file.txt"));
        assert!(LocationMatcher::new("/a*", false, 1).is_err());
    }
}
