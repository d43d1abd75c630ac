//! Parse errors: where, what, and a hint such as "did you mean".

use std::fmt;
use std::path::{Path, PathBuf};

use crate::ast::Span;

/// What kind of mistake a [`ParseError`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// Text that cannot be read: an unterminated quote, a missing `>`, a missing argument.
    Syntax,
    /// A directive name close to a balancer directive inside a `<Proxy>` block
    /// (`BalancerMembr`).
    UnknownDirective,
    /// A `key=value` whose key is not a parameter there (`hcpath`).
    UnknownParameter,
    /// A known parameter or directive argument with a value out of range or malformed.
    InvalidValue,
    /// A `BalancerMember` outside a `<Proxy balancer://…>` block without a balancer URL.
    MemberOutsideBalancer,
    /// A `ProxyPass` (or `ProxySet`) to a balancer that has no `<Proxy>` block, member or
    /// `ProxySet`.
    UndefinedBalancer,
    /// `hctemplate=name` where no `ProxyHCTemplate name` comes before.
    UndefinedTemplate,
    /// `hcexpr=name` where no `ProxyHCExpr name` comes before.
    UndefinedExpr,
    /// A block (`<Proxy>`, `<Location>` …) that is never closed.
    UnclosedBlock,
    /// A closing tag (`</Proxy>`) that closes nothing or the wrong block.
    UnmatchedClose,
    /// Two members of one balancer with the same URL.
    DuplicateMember,
    /// A directive or parameter Apache accepts that proxy-balancer refuses, saying why
    /// (`ProxyRequests On`, `ProxyRemote`; see [`registry`](crate::registry)).
    Unsupported,
    /// An `Include` whose file or directory is missing or unreadable, whose wildcard
    /// matches nothing, that includes itself, or nested deeper than 128.
    Include,
}

/// One mistake in a configuration, with its place and, when one helps, a hint.
///
/// Its `Display` is `line 12, column 30: unknown parameter "hcpath" (did you mean "hcuri"?)`
/// for a text given to [`parse`](crate::parse), and
/// `/etc/apache2/sites-enabled/app.conf:12:30: unknown parameter …` for a file read by
/// [`parse_file`](crate::parse_file) (just `path: …` when the file itself could not be read).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{}{}", Place(self), .message, HintSuffix(.hint.as_deref()))]
pub struct ParseError {
    /// Where the mistake is (the key of a parameter, the start of a directive).
    pub span: Span,
    /// What kind of mistake it is.
    pub kind: ParseErrorKind,
    /// What is wrong, in lower case without a trailing period.
    pub message: String,
    /// How to fix it, e.g. `did you mean "hcuri"?`.
    pub hint: Option<String>,
    /// The file the mistake is in ([`Config::files`](crate::Config::files) at
    /// `span.file`), for [`parse_file`](crate::parse_file); `None` for [`parse`](crate::parse).
    pub path: Option<PathBuf>,
}

impl ParseError {
    pub(crate) fn new(span: Span, kind: ParseErrorKind, message: impl Into<String>) -> Self {
        Self {
            span,
            kind,
            message: message.into(),
            hint: None,
            path: None,
        }
    }

    /// The file the mistake is in, when it was read from one.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    #[must_use]
    pub(crate) fn with_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }
}

/// `line L, column C: `, `path:L:C: `, or `path: ` for a whole file.
struct Place<'a>(&'a ParseError);

impl fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        match &e.path {
            Some(path) if e.span.line == 0 => write!(f, "{}: ", path.display()),
            Some(path) => write!(f, "{}:{}:{}: ", path.display(), e.span.line, e.span.column),
            None => write!(f, "line {}, column {}: ", e.span.line, e.span.column),
        }
    }
}

struct HintSuffix<'a>(Option<&'a str>);

impl fmt::Display for HintSuffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(hint) => write!(f, " ({hint})"),
            None => Ok(()),
        }
    }
}

/// Every mistake found in a configuration, in the order of the text (at least one).
///
/// Its `Display` writes one error per line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", Lines(.0))]
pub struct ParseErrors(Vec<ParseError>);

impl ParseErrors {
    pub(crate) fn new(mut errors: Vec<ParseError>) -> Self {
        errors.sort_by_key(|e| e.span);
        Self(errors)
    }

    /// Each error with its file's path (`files[span.file]`).
    pub(crate) fn with_paths(mut self, files: &[PathBuf]) -> Self {
        for e in &mut self.0 {
            e.path = usize::try_from(e.span.file)
                .ok()
                .and_then(|i| files.get(i))
                .cloned();
        }
        self
    }

    /// The errors, in the order of the text (file by file, in the order of
    /// [`Config::files`](crate::Config::files)).
    #[must_use]
    pub fn errors(&self) -> &[ParseError] {
        &self.0
    }

    /// How many errors there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always `false`: a `ParseErrors` holds at least one error.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// An iterator over the errors.
    pub fn iter(&self) -> std::slice::Iter<'_, ParseError> {
        self.0.iter()
    }

    /// The errors as a vector.
    #[must_use]
    pub fn into_vec(self) -> Vec<ParseError> {
        self.0
    }

    /// The errors as a JSON array in the shape of [`doctor::to_json`](crate::doctor::to_json)'s
    /// findings: `{"severity":"error","rule":"parse","line":…,"column":…,"what":…}` each,
    /// with `"file":…` first for an error in a file read by [`parse_file`](crate::parse_file).
    #[must_use]
    pub fn to_json(&self) -> String {
        let mut out = String::from("[");
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('{');
            if let Some(path) = &e.path {
                out.push_str("\"file\":");
                crate::json::json_string(&mut out, &path.display().to_string());
                out.push(',');
            }
            out.push_str(&format!(
                "\"severity\":\"error\",\"rule\":\"parse\",\"line\":{},\"column\":{},\"what\":",
                e.span.line, e.span.column
            ));
            crate::json::json_string(&mut out, &e.to_string());
            out.push('}');
        }
        out.push(']');
        out
    }
}

impl IntoIterator for ParseErrors {
    type Item = ParseError;
    type IntoIter = std::vec::IntoIter<ParseError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a ParseErrors {
    type Item = &'a ParseError;
    type IntoIter = std::slice::Iter<'a, ParseError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

struct Lines<'a>(&'a [ParseError]);

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}
