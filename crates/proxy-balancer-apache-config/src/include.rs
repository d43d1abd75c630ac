//! Reading a configuration from its files: `Include`/`IncludeOptional` (with wildcards),
//! `ServerRoot`, `Define`/`UnDefine` and `${VAR}`, applied as Apache applies them while it
//! reads its configuration, before the directives reach the parser.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::ast::{Config, Span};
use crate::error::{ParseError, ParseErrorKind, ParseErrors};
use crate::lexer::{logical_lines_in, word, words, LogicalLine, Piece, Token};
use crate::parser::Parser;

/// How deep `Include`s may nest: Apache's `AP_MAX_INCLUDE_DEPTH`.
pub const MAX_INCLUDE_DEPTH: usize = 128;

/// What [`parse_file_with`] starts from: the `ServerRoot`, the names defined (Apache's
/// `-D NAME` and `Define`) and the environment `${VAR}` reads.
///
/// ```
/// use proxy_balancer_apache_config::FileOptions;
///
/// let options = FileOptions::new()
///     .server_root("/etc/apache2")
///     .define("APACHE_LOG_DIR", Some("/var/log/apache2"))
///     .environment([("APACHE_RUN_USER", "www-data")]);
/// # let _ = options;
/// ```
#[derive(Clone, Debug, Default)]
pub struct FileOptions {
    server_root: Option<PathBuf>,
    defines: Vec<(String, Option<String>)>,
    environment: Option<HashMap<String, String>>,
}

impl FileOptions {
    /// The defaults: `ServerRoot` is the main file's directory, nothing is defined, and
    /// `${VAR}` reads the process environment.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The `ServerRoot` relative `Include` paths start from until a `ServerRoot` directive
    /// changes it (Apache's `-d`).
    #[must_use]
    pub fn server_root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.server_root = Some(dir.into());
        self
    }

    /// Defines a name as `Define name [value]` would at the top of the main file (Apache's
    /// `-D name`); with a value, `${name}` becomes it.
    #[must_use]
    pub fn define(mut self, name: &str, value: Option<&str>) -> Self {
        self.defines
            .push((name.to_owned(), value.map(str::to_owned)));
        self
    }

    /// The environment `${VAR}` reads (after the `Define`d values) instead of the process
    /// environment, e.g. the values of Debian's `/etc/apache2/envvars`.
    #[must_use]
    pub fn environment<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.environment = Some(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }
}

/// Parses the configuration in file `path` and the files it includes, with the default
/// [`FileOptions`]: `ServerRoot` is the directory of `path` (not Apache's compiled-in
/// default, e.g. `/etc/apache2` on Debian) until a `ServerRoot` directive changes it, and
/// `${VAR}` reads the process environment.
///
/// # Errors
///
/// As [`parse_file_with`].
///
/// ```
/// let dir = std::env::temp_dir().join(format!("pb-doc-parse-file-{}", std::process::id()));
/// std::fs::create_dir_all(dir.join("sites-enabled"))?;
/// std::fs::write(
///     dir.join("httpd.conf"),
///     "Define PORT 8080\nIncludeOptional sites-enabled/*.conf\nIncludeOptional conf.d/*.conf\n",
/// )?;
/// std::fs::write(
///     dir.join("sites-enabled/app.conf"),
///     "<Proxy balancer://app>\n  BalancerMember http://10.0.0.1:${PORT}\n</Proxy>\n",
/// )?;
/// let config = proxy_balancer_apache_config::parse_file(dir.join("httpd.conf"))?;
/// let member = &config.balancers[0].members[0];
/// assert_eq!(member.url, "http://10.0.0.1:8080");
/// assert!(config.files[member.span.file as usize].ends_with("sites-enabled/app.conf"));
///
/// std::fs::write(dir.join("httpd.conf"), "Include conf.d/*.conf\n")?;
/// let err = proxy_balancer_apache_config::parse_file(dir.join("httpd.conf")).unwrap_err();
/// assert!(err.to_string().ends_with(
///     "httpd.conf:1:9: could not open directory conf.d: No such file or directory (os error 2)"
/// ), "{err}");
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parse_file(path: impl AsRef<Path>) -> Result<Config, ParseErrors> {
    parse_file_with(path, &FileOptions::new())
}

/// Parses the configuration in file `path` and the files it includes, as Apache reads it:
///
/// * `Include path` reads a file, every file of a directory (and of its subdirectories,
///   sorted by name, hidden ones too), or the files a wildcard (`*`, `?`, `[…]`, in the last
///   component or in directory ones) matches, sorted by name; a wildcard does not match a
///   leading `.`. A relative path starts from `ServerRoot`. A missing file, a wildcard that
///   matches nothing, an unreadable file, a cycle or nesting deeper than 128 is an error at
///   the `Include` line. `IncludeOptional` is the same but a missing path or a wildcard
///   matching nothing is skipped.
/// * `ServerRoot dir` changes where the following relative paths start (it must be a
///   directory; relative, it starts from the current directory, as in Apache).
/// * `Define name [value]` and `UnDefine name`; `${name}` anywhere in a line is the
///   defined value, or else the environment variable; an undefined one is left as written
///   and listed in [`Config::undefined_variables`] (Apache's warning AH00111).
///
/// Every span of the result names its file: an index in [`Config::files`] (0 is `path`).
///
/// # Errors
///
/// [`ParseErrors`] as [`parse`](crate::parse) gives them, and for the include mistakes
/// above; each error's [`ParseError::path`] is its file, and its `Display` is
/// `path:line:column: …`.
pub fn parse_file_with(
    path: impl AsRef<Path>,
    options: &FileOptions,
) -> Result<Config, ParseErrors> {
    let (config, errors) = parse_file_partial(path, options);
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(ParseErrors::new(errors))
    }
}

/// [`parse_file_with`] that also returns what it read when it finds errors (as
/// [`parse_partial`](crate::parse_partial) does for a text): for `--check`, which reports
/// the parse errors and the doctor's findings in one run. The errors are in text order,
/// each with its file's path.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("pb-partial-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// std::fs::write(dir.join("httpd.conf"), "ProxyTimeout 5\nProxyTimeout x\n")?;
/// let (config, errors) = proxy_balancer_apache_config::parse_file_partial(
///     dir.join("httpd.conf"),
///     &proxy_balancer_apache_config::FileOptions::new(),
/// );
/// assert_eq!(errors.len(), 1);
/// assert_eq!(config.proxy_timeout, Some(std::time::Duration::from_secs(5)));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub fn parse_file_partial(
    path: impl AsRef<Path>,
    options: &FileOptions,
) -> (Config, Vec<ParseError>) {
    let path = path.as_ref();
    let server_root = options.server_root.clone().unwrap_or_else(|| {
        path.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    });
    let mut vars = HashMap::new();
    for (name, value) in &options.defines {
        if let Some(value) = value {
            vars.insert(name.clone(), value.clone());
        }
    }
    let mut reader = Reader {
        parser: Parser::new(),
        files: Vec::new(),
        stack: Vec::new(),
        server_root,
        vars,
        environment: options.environment.clone(),
        errors: Vec::new(),
        undefined: Vec::new(),
    };
    reader.file(path, None);
    let Reader {
        parser,
        files,
        mut errors,
        undefined,
        server_root,
        ..
    } = reader;
    let (mut config, parse_errors) = parser.finish_partial();
    errors.extend(parse_errors);
    let errors = ParseErrors::new(errors).with_paths(&files).into_vec();
    config.files = files;
    config.undefined_variables = undefined;
    config.server_root = Some(server_root);
    (config, errors)
}

impl Config {
    /// The file `span` is in, for a configuration read by [`parse_file`] (`None` for
    /// [`parse`](crate::parse)): to write `path:line:column` in messages.
    ///
    /// ```
    /// let config = proxy_balancer_apache_config::parse("ProxyTimeout 5\n")?;
    /// assert_eq!(config.file_of(proxy_balancer_apache_config::Span::new(1, 1)), None);
    /// # Ok::<(), proxy_balancer_apache_config::ParseErrors>(())
    /// ```
    #[must_use]
    pub fn file_of(&self, span: Span) -> Option<&Path> {
        usize::try_from(span.file)
            .ok()
            .and_then(|i| self.files.get(i))
            .map(PathBuf::as_path)
    }
}

/// A file being read: its path as resolved (for messages) and as canonical (for cycles).
#[derive(Debug)]
struct Open {
    shown: PathBuf,
    canonical: PathBuf,
}

#[derive(Debug)]
struct Reader {
    parser: Parser,
    files: Vec<PathBuf>,
    stack: Vec<Open>,
    server_root: PathBuf,
    vars: HashMap<String, String>,
    environment: Option<HashMap<String, String>>,
    errors: Vec<ParseError>,
    undefined: Vec<(String, Span)>,
}

fn include_error(span: Span, message: impl Into<String>) -> ParseError {
    ParseError::new(span, ParseErrorKind::Include, message)
}

impl Reader {
    /// Reads file `path`, included from `from` (`None` for the main file).
    fn file(&mut self, path: &Path, from: Option<Span>) {
        let at = from.unwrap_or_default();
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            self.errors.push(include_error(
                at,
                format!(
                    "exceeded maximum include depth of {MAX_INCLUDE_DEPTH}, there appears to be a recursion"
                ),
            ));
            return;
        }
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if let Some(i) = self.stack.iter().position(|o| o.canonical == canonical) {
            let chain: Vec<String> = self.stack[i..]
                .iter()
                .map(|o| o.shown.display().to_string())
                .chain(std::iter::once(path.display().to_string()))
                .collect();
            self.errors.push(
                include_error(
                    at,
                    format!("{} includes itself: {}", path.display(), chain.join(" → ")),
                )
                .with_hint(Some("remove the Include that closes the cycle".to_owned())),
            );
            return;
        }
        if from.is_none() {
            // The main file is file 0, whether it can be read or not.
            self.files.push(path.to_path_buf());
        }
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                self.errors.push(include_error(
                    at,
                    format!("could not open configuration file {}: {e}", path.display()),
                ));
                return;
            }
        };
        let index = if from.is_none() {
            0
        } else {
            self.files.push(path.to_path_buf());
            u32::try_from(self.files.len() - 1).unwrap_or(u32::MAX)
        };
        self.stack.push(Open {
            shown: path.to_path_buf(),
            canonical,
        });
        for line in logical_lines_in(&text, index) {
            let line = self.expand(line);
            if let Err(e) = self.line(&line) {
                self.errors.push(e);
            }
        }
        self.stack.pop();
    }

    /// Applies a read-time directive, or hands the line to the parser.
    fn line(&mut self, line: &LogicalLine) -> Result<(), ParseError> {
        let start = line.skip_blank(0);
        if line.char_at(start) == Some('<') {
            self.parser.line(line);
            return Ok(());
        }
        let (name, next) = word(line, start)?;
        let lower = name.text.to_ascii_lowercase();
        match lower.as_str() {
            "include" | "includeoptional" => {
                let args = words(line, next)?;
                let [arg] = args.as_slice() else {
                    return Err(ParseError::new(
                        name.span,
                        ParseErrorKind::Syntax,
                        format!(
                            "{} takes one argument: the file, directory or wildcard to include",
                            name.text
                        ),
                    ));
                };
                self.include(arg, lower == "includeoptional");
                Ok(())
            }
            "define" => {
                let args = words(line, next)?;
                let (var, value) = match args.as_slice() {
                    [var] => (var, None),
                    [var, value] => (var, Some(value)),
                    _ => {
                        return Err(ParseError::new(
                            name.span,
                            ParseErrorKind::Syntax,
                            "Define takes 1-2 arguments: a name, optionally a value",
                        ))
                    }
                };
                check_var_name(var)?;
                if let Some(value) = value {
                    self.vars.insert(var.text.clone(), value.text.clone());
                }
                Ok(())
            }
            "undefine" => {
                let args = words(line, next)?;
                let [var] = args.as_slice() else {
                    return Err(ParseError::new(
                        name.span,
                        ParseErrorKind::Syntax,
                        "UnDefine takes one argument: a name",
                    ));
                };
                check_var_name(var)?;
                self.vars.remove(&var.text);
                Ok(())
            }
            "serverroot" => {
                let args = words(line, next)?;
                let [dir] = args.as_slice() else {
                    return Err(ParseError::new(
                        name.span,
                        ParseErrorKind::Syntax,
                        "ServerRoot takes one argument: a directory",
                    ));
                };
                let path = PathBuf::from(&dir.text);
                if !path.is_dir() {
                    return Err(ParseError::new(
                        dir.span,
                        ParseErrorKind::InvalidValue,
                        format!("ServerRoot must be a valid directory: {}", dir.text),
                    ));
                }
                self.server_root = path;
                Ok(())
            }
            _ => {
                self.parser.line(line);
                Ok(())
            }
        }
    }

    /// `Include`/`IncludeOptional` of `arg`.
    fn include(&mut self, arg: &Token, optional: bool) {
        let written = Path::new(&arg.text);
        let full = if written.is_absolute() {
            written.to_path_buf()
        } else {
            self.server_root.join(written)
        };
        if !has_wildcard(&arg.text) {
            if optional && !full.exists() {
                return;
            }
            self.path(&full, arg.span);
            return;
        }
        // The components up to the first one with a wildcard are a fixed directory.
        let mut base = PathBuf::new();
        let mut rest: Vec<String> = Vec::new();
        for component in full.components() {
            let text = component.as_os_str().to_string_lossy().into_owned();
            if rest.is_empty() && !has_wildcard(&text) {
                base.push(component);
            } else {
                rest.push(text);
            }
        }
        if let Err(e) = self.glob(&base, &rest, optional, arg.span) {
            if !optional {
                self.errors.push(e);
            }
        }
    }

    /// A path without wildcards: a file, or every file under a directory, sorted.
    fn path(&mut self, path: &Path, span: Span) {
        if path.is_dir() {
            match sorted_entries(path) {
                Ok(entries) => {
                    for (name, _) in entries {
                        self.path(&path.join(name), span);
                    }
                }
                Err(e) => self.errors.push(include_error(
                    span,
                    format!("could not open directory {}: {e}", self.shown(path)),
                )),
            }
        } else {
            self.file(path, Some(span));
        }
    }

    /// The files under `dir` matching the components `rest` (the first has a wildcard).
    fn glob(
        &mut self,
        dir: &Path,
        rest: &[String],
        optional: bool,
        span: Span,
    ) -> Result<(), ParseError> {
        let Some((pattern, more)) = rest.split_first() else {
            self.path(dir, span);
            return Ok(());
        };
        if !has_wildcard(pattern) {
            let next = dir.join(pattern);
            if more.is_empty() {
                if optional && !next.exists() {
                    return Ok(());
                }
                self.path(&next, span);
                return Ok(());
            }
            return self.glob(&next, more, optional, span);
        }
        let entries = sorted_entries(dir).map_err(|e| {
            include_error(
                span,
                format!("could not open directory {}: {e}", self.shown(dir)),
            )
        })?;
        let mut matched = false;
        for (name, is_dir) in entries {
            if !fnmatch(pattern, &name) || (!more.is_empty() && !is_dir) {
                continue;
            }
            matched = true;
            self.glob(&dir.join(&name), more, optional, span)?;
        }
        if !matched && !optional {
            return Err(include_error(
                span,
                format!(
                    "no matches for the wildcard '{pattern}' in '{}', failing",
                    self.shown(dir)
                ),
            ));
        }
        Ok(())
    }

    /// `path` as the operator wrote it: relative to `ServerRoot` when under it.
    fn shown(&self, path: &Path) -> String {
        path.strip_prefix(&self.server_root)
            .ok()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(path)
            .display()
            .to_string()
    }

    /// The line with every `${VAR}` replaced by its value; undefined ones stay.
    fn expand(&mut self, line: LogicalLine) -> LogicalLine {
        if !line.text.contains("${") {
            return line;
        }
        let text = line.text.as_str();
        let mut out = String::with_capacity(text.len());
        let mut pieces: Vec<Piece> = Vec::new();
        // Copies text[a..b] keeping each physical piece's place.
        let copy = |out: &mut String, pieces: &mut Vec<Piece>, a: usize, b: usize| {
            let mut i = a;
            while i < b {
                let k = line
                    .pieces
                    .partition_point(|p| p.start <= i)
                    .saturating_sub(1);
                // The next piece starts after `i` (the last one starting at or before it
                // was taken), so the loop moves on.
                let end = line.pieces.get(k + 1).map_or(b, |p| p.start.min(b));
                let span = line.span_at(i);
                let fixed = line.pieces.get(k).is_some_and(|p| p.fixed);
                pieces.push(Piece {
                    start: out.len(),
                    line: span.line,
                    column: span.column,
                    fixed,
                });
                out.push_str(&text[i..end]);
                i = end;
            }
        };
        let mut done = 0;
        let mut search = 0;
        while let Some(found) = text[search..].find("${") {
            let start = search + found;
            let Some(close) = text[start + 2..].find('}') else {
                break;
            };
            let end = start + 2 + close + 1;
            let name = &text[start + 2..end - 1];
            let value = self
                .vars
                .get(name)
                .cloned()
                .or_else(|| match &self.environment {
                    Some(env) => env.get(name).cloned(),
                    None => std::env::var(name).ok(),
                });
            match value {
                Some(value) => {
                    copy(&mut out, &mut pieces, done, start);
                    let span = line.span_at(start);
                    pieces.push(Piece {
                        start: out.len(),
                        line: span.line,
                        column: span.column,
                        fixed: true,
                    });
                    out.push_str(&value);
                    done = end;
                }
                None => {
                    // Apache warns (AH00111), except for names with `:` (RewriteMap's
                    // `${map:key}`), and leaves the text as written.
                    if !name.contains(':') {
                        self.undefined.push((name.to_owned(), line.span_at(start)));
                    }
                }
            }
            search = end;
        }
        copy(&mut out, &mut pieces, done, text.len());
        if pieces.is_empty() {
            pieces = line.pieces.clone();
        }
        LogicalLine::new(out, pieces, line.file)
    }
}

fn check_var_name(var: &Token) -> Result<(), ParseError> {
    if var.text.contains(':') {
        return Err(ParseError::new(
            var.span,
            ParseErrorKind::InvalidValue,
            "variable name must not contain ':'",
        ));
    }
    Ok(())
}

/// The entries of `dir` but `.` and `..`, sorted by name (byte order, as Apache's `strcmp`),
/// with whether each is a directory.
fn sorted_entries(dir: &Path) -> std::io::Result<Vec<(String, bool)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = entry.path().is_dir();
        out.push((name, is_dir));
    }
    out.sort();
    Ok(out)
}

/// Whether a path has a wildcard (`*`, `?`, or `[` closed by `]`), as APR's `apr_fnmatch_test`.
fn has_wildcard(path: &str) -> bool {
    let mut chars = path.chars();
    let mut open = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' => return true,
            '[' => open = true,
            ']' if open => return true,
            _ => {}
        }
    }
    false
}

/// Shell wildcard matching of one path component (`fnmatch` with `FNM_PERIOD`): `*`, `?`,
/// `[abc]`, `[a-z]`, `[!…]`/`[^…]`, `\` escapes; a leading `.` must be matched by a `.`.
pub(crate) fn fnmatch(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = name.chars().collect();
    if s.first() == Some(&'.') && p.first() != Some(&'.') {
        let escaped_dot = p.first() == Some(&'\\') && p.get(1) == Some(&'.');
        if !escaped_dot {
            return false;
        }
    }
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, si));
                pi += 1;
                continue;
            }
            Some('?') => Some(pi + 1),
            Some('[') => class(&p, pi, s[si]),
            Some('\\') if pi + 1 < p.len() => (p[pi + 1] == s[si]).then_some(pi + 2),
            Some(c) => (*c == s[si]).then_some(pi + 1),
            None => None,
        };
        match (step, star) {
            (Some(next), _) => {
                pi = next;
                si += 1;
            }
            (None, Some((sp, ss))) => {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            (None, None) => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Matches `c` against the class starting at `p[at]` (`[`): the index after the class, or
/// `None` when it does not match. A `[` without its `]` is a plain character.
fn class(p: &[char], at: usize, c: char) -> Option<usize> {
    let mut i = at + 1;
    let negate = matches!(p.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let lo = match p.get(i) {
            None => return (c == '[').then_some(at + 1),
            Some(']') if !first => break,
            Some('\\') => {
                i += 1;
                *p.get(i)?
            }
            Some(x) => *x,
        };
        first = false;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|x| *x != ']') {
            let hi = p[i + 2];
            matched |= lo <= c && c <= hi;
            i += 3;
        } else {
            matched |= lo == c;
            i += 1;
        }
    }
    (matched != negate).then_some(i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(fnmatch("*.conf", "a.conf"));
        assert!(!fnmatch("*.conf", ".hidden.conf"));
        assert!(fnmatch(".*", ".hidden"));
        assert!(fnmatch("?.load", "x.load"));
        assert!(!fnmatch("?.load", "xy.load"));
        assert!(fnmatch("[a-c]*", "b1"));
        assert!(!fnmatch("[!a-c]*", "b1"));
        assert!(fnmatch("a\\*", "a*"));
        assert!(!fnmatch("a\\*", "ab"));
        assert!(fnmatch("*a*b*", "xxaxxbxx"));
        assert!(!fnmatch("*a*b", "xxaxxbxxc"));
        assert!(fnmatch("[", "["));
        assert!(has_wildcard("sites-enabled/*.conf"));
        assert!(has_wildcard("a/[xy]"));
        assert!(!has_wildcard("a/[x"));
        assert!(!has_wildcard("a\\*b"));
    }
}
