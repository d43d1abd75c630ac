//! mod_headers' `Header` and `RequestHeader` lines, read as Apache reads them.
//!
//! ```text
//! Header [always|onsuccess] add|set|append|merge|setifempty|unset|edit|edit*|echo|note name [value] [replacement] [condition]
//! RequestHeader             add|set|append|merge|setifempty|unset|edit|edit*           name [value] [replacement] [condition]
//! ```
//!
//! Each form is read, or refused with its line and column and why:
//!
//! | form | state |
//! | --- | --- |
//! | `add`, `set`, `append`, `merge`, `setifempty` name value | applied |
//! | `unset` name | applied |
//! | `edit`, `edit*` name regex replacement | applied (the regex is compiled when the site is built; `$0`…`$9` in the replacement) |
//! | `echo` regex (`Header` only) | applied (request headers whose names match, copied to the response) |
//! | `note` name notename | refused: there is no notes table (it feeds mod_log_config's `%{…}n`) |
//! | `always`, `onsuccess` (`Header` only) | applied: the two tables of Apache |
//! | `env=VAR`, `env=!VAR` | applied |
//! | `expr=…` condition | applied where the site can evaluate it, refused when the site is built otherwise |
//! | `early` | refused: early rules run before the request is read, for testing only |
//! | value `%%`, `%t`, `%D`, `%{VAR}e`, `%{VAR}s`, `\t` `\\` escapes | applied |
//! | value `%l`, `%i`, `%b` | refused: server load is not measured |
//! | value `\n`, `\r` escapes | refused: a line break cannot be sent in a header |
//! | value `expr=…` | refused: string expressions are not supported |
//! | an unknown action or format, a missing or extra argument, `env=` without a name | refused, as Apache refuses them |
//! | a rule in a `<Proxy>` block | checked, then kept in `Config::skipped` (a site refuses it: Apache applies it to that block's requests only) |

use crate::ast::{Context, FormatPart, HeaderAction, HeaderCondition, HeaderDirective, Span};
use crate::error::{ParseError, ParseErrorKind};
use crate::lexer::Token;

/// Apache's own message for an unknown action, quoted in ours.
const ACTIONS: &str = "add, set, setifempty, append, merge, unset, echo, note, edit or edit*";

fn syntax(span: Span, message: impl Into<String>) -> ParseError {
    ParseError::new(span, ParseErrorKind::Syntax, message.into())
}

fn invalid(span: Span, message: impl Into<String>) -> ParseError {
    ParseError::new(span, ParseErrorKind::InvalidValue, message.into())
}

/// Reads a `Header` (`request == false`) or `RequestHeader` line: `span` is the
/// directive's, `directive` its name as written, `args` the words after it.
pub(crate) fn parse(
    span: Span,
    directive: &str,
    request: bool,
    args: &[Token],
) -> Result<HeaderDirective, ParseError> {
    let mut words = args.iter();
    let mut action_token = words.next();
    let mut always = false;
    if !request {
        if let Some(first) = action_token {
            if first.text.eq_ignore_ascii_case("always") {
                always = true;
                action_token = words.next();
            } else if first.text.eq_ignore_ascii_case("onsuccess") {
                action_token = words.next();
            }
        }
    }
    let action_span = action_token.map_or(span, |t| t.span);
    let action_text = action_token.map_or("", |t| t.text.as_str());
    let action = match action_text.to_ascii_lowercase().as_str() {
        "add" => Some(HeaderAction::Add),
        "set" => Some(HeaderAction::Set),
        "append" => Some(HeaderAction::Append),
        "merge" => Some(HeaderAction::Merge),
        "setifempty" => Some(HeaderAction::SetIfEmpty),
        "unset" => Some(HeaderAction::Unset),
        "edit" => Some(HeaderAction::Edit),
        "edit*" => Some(HeaderAction::EditAll),
        "echo" => Some(HeaderAction::Echo),
        // Checked below, after its arguments, as Apache does.
        "note" => None,
        _ => {
            let what = if action_text.is_empty() {
                format!("{directive} needs an action")
            } else {
                format!("unknown {directive} action \"{action_text}\"")
            };
            return Err(syntax(action_span, format!("{what}: expected {ACTIONS}")));
        }
    };
    if request && action_text.eq_ignore_ascii_case("note") {
        return Err(syntax(
            action_span,
            "RequestHeader does not take the note action (Apache refuses it too)",
        ));
    }
    let name = words.next();
    let mut value = words.next();
    let subs = words.next();
    let mut clause = words.next();
    if let Some(extra) = words.next() {
        return Err(syntax(
            extra.span,
            format!("{directive} has too many arguments"),
        ));
    }
    let mut replacement = None;
    match action {
        Some(HeaderAction::Edit | HeaderAction::EditAll) => {
            let Some(subs) = subs else {
                return Err(syntax(
                    span,
                    format!(
                        "{directive} {action_text} needs a header name, a regular expression and a replacement"
                    ),
                ));
            };
            replacement = Some(subs);
        }
        _ => {
            if let Some(extra) = clause {
                return Err(syntax(
                    extra.span,
                    format!("{directive} {action_text} has too many arguments"),
                ));
            }
            clause = subs;
        }
    }
    match action {
        Some(HeaderAction::Unset | HeaderAction::Echo) => {
            if let Some(v) = value.take() {
                if let Some(extra) = clause {
                    return Err(syntax(
                        extra.span,
                        format!(
                            "{directive} {action_text} takes a header name and an optional condition: too many arguments"
                        ),
                    ));
                }
                clause = Some(v);
            }
            if request && action == Some(HeaderAction::Echo) {
                return Err(syntax(
                    action_span,
                    "echo is a Header action only (Apache refuses it on RequestHeader)",
                ));
            }
        }
        _ if value.is_none() => {
            return Err(syntax(
                span,
                format!("{directive} {action_text} needs a header name and a value"),
            ));
        }
        _ => {}
    }
    let condition = clause.map(condition).transpose()?;
    // `Header echo` alone: Apache's empty regex, which every request header name matches.
    let empty;
    let name = match name {
        None if action == Some(HeaderAction::Echo) => {
            empty = Token {
                text: String::new(),
                span,
                quoted: false,
            };
            Some(&empty)
        }
        name => name,
    };
    let Some(name) = name else {
        return Err(syntax(
            span,
            format!("{directive} {action_text} needs a header name"),
        ));
    };
    let Some(action) = action else {
        // `note` (its arguments are right): Apache copies a header into the request's notes.
        return Err(invalid(
            action_span,
            "Header note is not supported: proxy-balancer keeps no notes table (Apache's notes feed mod_log_config's %{…}n and other modules)",
        ));
    };
    // Apache ignores what follows a `:` in the name (`Header set X-A: v`).
    let name_text = match name.text.split_once(':') {
        Some((before, _)) => before.to_owned(),
        None => name.text.clone(),
    };
    if action != HeaderAction::Echo && !is_token(&name_text) {
        return Err(invalid(
            name.span,
            format!(
                "\"{name_text}\" is not a header name that can be sent (letters, digits and !#$%&'*+-.^_`|~ only)"
            ),
        ));
    }
    let value_text = value.map_or(String::new(), |v| v.text.clone());
    let directive_out = HeaderDirective {
        request,
        always,
        action,
        name: name_text,
        value: value_text,
        replacement: replacement.map(|r| r.text.clone()),
        condition,
        context: Context::default(),
        span,
    };
    let format_at = match action {
        HeaderAction::Edit | HeaderAction::EditAll => replacement.map_or(span, |r| r.span),
        _ => value.map_or(span, |v| v.span),
    };
    directive_out
        .format()
        .map_err(|message| invalid(format_at, message))?;
    Ok(directive_out)
}

/// `env=VAR`, `env=!VAR`, `expr=…`, or `early` (refused).
fn condition(clause: &Token) -> Result<HeaderCondition, ParseError> {
    let text = clause.text.as_str();
    if text.eq_ignore_ascii_case("early") {
        return Err(invalid(
            clause.span,
            "early is not supported: Apache runs early rules before the request is read, for testing only; drop it",
        ));
    }
    let prefix = |p: &str| {
        text.get(..p.len())
            .filter(|head| head.eq_ignore_ascii_case(p))
            .map(|_| &text[p.len()..])
    };
    if let Some(var) = prefix("env=") {
        let (negated, name) = match var.strip_prefix('!') {
            Some(name) => (true, name),
            None => (false, var),
        };
        if name.is_empty() {
            return Err(syntax(
                clause.span,
                "missing environment variable name: the condition is env=VAR or env=!VAR",
            ));
        }
        return Ok(HeaderCondition::Env {
            name: name.to_owned(),
            negated,
        });
    }
    if let Some(expr) = prefix("expr=") {
        if expr.trim().is_empty() {
            return Err(syntax(clause.span, "expr= needs an expression"));
        }
        return Ok(HeaderCondition::Expr(expr.to_owned()));
    }
    Err(syntax(
        clause.span,
        format!("unknown condition \"{text}\": expected env=VAR, env=!VAR or expr=…"),
    ))
}

/// Whether `name` is an HTTP field name (RFC 9110's `token`).
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// mod_headers' `parse_format_string`: literal text with escapes, and `%` formats.
pub(crate) fn parse_format(mut s: &str) -> Result<Vec<FormatPart>, String> {
    if s.starts_with("expr=") {
        return Err(
            "a value expr= is not supported: write the value with %{VAR}e formats".to_owned(),
        );
    }
    let mut parts = Vec::new();
    let mut text = String::new();
    while !s.is_empty() {
        let Some(rest) = s.strip_prefix('%') else {
            // Literal text up to the next `%`, with mod_headers' escapes.
            let end = s.find('%').unwrap_or(s.len());
            let mut chars = s[..end].chars().peekable();
            while let Some(c) = chars.next() {
                if c != '\\' {
                    text.push(c);
                    continue;
                }
                match chars.peek() {
                    Some('\\') => text.push('\\'),
                    Some('t') => text.push('\t'),
                    Some('n' | 'r') => return Err(
                        "a \\n or \\r escape puts a line break in the header, which cannot be sent"
                            .to_owned(),
                    ),
                    // Kept as written, and the next character read as usual.
                    _ => {
                        text.push('\\');
                        continue;
                    }
                }
                chars.next();
            }
            s = &s[end..];
            continue;
        };
        // `%%`, and a `%` at the end, are a `%`.
        if rest.is_empty() || rest.starts_with('%') {
            text.push('%');
            s = rest.get(1..).unwrap_or("");
            continue;
        }
        let (arg, rest) = match rest.strip_prefix('{') {
            Some(after) => match after.find('}') {
                Some(close) => (&after[..close], &after[close + 1..]),
                None => (after, ""),
            },
            None => ("", rest),
        };
        let Some(tag) = rest.chars().next() else {
            return Err("unrecognized header format %: a %{…} needs a letter after it (e for an environment variable)".to_owned());
        };
        let part = match tag {
            'e' => FormatPart::Env(arg.to_owned()),
            's' => FormatPart::Ssl(arg.to_owned()),
            't' => FormatPart::RequestTime,
            'D' => FormatPart::Duration,
            'l' | 'i' | 'b' => {
                return Err(format!(
                    "%{tag} (the server's load, idle or busy share) is not supported: it is not measured"
                ))
            }
            other => {
                return Err(format!(
                    "unrecognized header format %{other}: expected %%, %t, %D, %{{VAR}}e or %{{VAR}}s"
                ))
            }
        };
        if !text.is_empty() {
            parts.push(FormatPart::Text(std::mem::take(&mut text)));
        }
        parts.push(part);
        s = &rest[tag.len_utf8()..];
    }
    if !text.is_empty() {
        parts.push(FormatPart::Text(text));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    fn one(line: &str) -> HeaderDirective {
        let config = parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(config.headers.len(), 1, "{line}");
        config.headers.into_iter().next().expect("one")
    }

    fn error(line: &str) -> String {
        match parse(line) {
            Ok(c) => panic!("{line}: accepted as {:?}", c.headers),
            Err(e) => e.to_string(),
        }
    }

    /// Every form `apache2 -t` (2.4.71) accepts, read.
    #[test]
    fn the_forms_apache_accepts() {
        let h = one("Header set X v");
        assert_eq!(
            (
                h.request,
                h.always,
                h.action,
                h.name.as_str(),
                h.value.as_str()
            ),
            (false, false, HeaderAction::Set, "X", "v")
        );
        assert_eq!(h.condition, None);
        assert_eq!(
            one("Header set X: v").name,
            "X",
            "Apache drops what follows ':'"
        );
        let h = one("Header always set X v env=FOO");
        assert!(h.always);
        assert_eq!(
            h.condition,
            Some(HeaderCondition::Env {
                name: "FOO".into(),
                negated: false
            })
        );
        let h = one("Header onsuccess set X v ENV=!FOO");
        assert!(!h.always);
        assert_eq!(
            h.condition,
            Some(HeaderCondition::Env {
                name: "FOO".into(),
                negated: true
            })
        );
        assert_eq!(
            one(r#"Header set X v "expr=%{REQUEST_STATUS} == 200""#).condition,
            Some(HeaderCondition::Expr("%{REQUEST_STATUS} == 200".into()))
        );
        assert_eq!(one("Header ALWAYS SET X v").action, HeaderAction::Set);
        let h = one("Header unset X env=A");
        assert_eq!((h.action, h.value.as_str()), (HeaderAction::Unset, ""));
        assert!(h.condition.is_some());
        assert_eq!(one("Header echo").name, "", "every request header");
        let h = one("Header echo ^X- env=A");
        assert_eq!((h.action, h.name.as_str()), (HeaderAction::Echo, "^X-"));
        let h = one("Header edit* X ^a b env=A");
        assert_eq!(
            (h.action, h.value.as_str(), h.replacement.as_deref()),
            (HeaderAction::EditAll, "^a", Some("b"))
        );
        for (line, action) in [
            ("Header add X v", HeaderAction::Add),
            ("Header append X v", HeaderAction::Append),
            ("Header merge X v", HeaderAction::Merge),
            ("Header setifempty X v", HeaderAction::SetIfEmpty),
            ("Header edit X a b", HeaderAction::Edit),
        ] {
            assert_eq!(one(line).action, action, "{line}");
        }
        let h = one("RequestHeader set X v env=!A");
        assert!(h.request);
        assert_eq!(h.directive(), "RequestHeader");
        assert_eq!(one("RequestHeader edit X a b").action, HeaderAction::Edit);
        let h = one(
            r#"Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/; Secure; HttpOnly; SameSite=Strict" env=BALANCER_ROUTE_CHANGED"#,
        );
        assert_eq!(
            h.format().expect("formats"),
            [
                FormatPart::Text("ROUTEID=.".into()),
                FormatPart::Env("BALANCER_WORKER_ROUTE".into()),
                FormatPart::Text("; path=/; Secure; HttpOnly; SameSite=Strict".into()),
            ]
        );
    }

    #[test]
    fn value_formats_as_mod_headers_reads_them() {
        let format = |v: &str| parse_format(v);
        assert_eq!(format("%"), Ok(vec![FormatPart::Text("%".into())]));
        assert_eq!(format("a%%b"), Ok(vec![FormatPart::Text("a%b".into())]));
        assert_eq!(
            format("%t %D %{A}s %e"),
            Ok(vec![
                FormatPart::RequestTime,
                FormatPart::Text(" ".into()),
                FormatPart::Duration,
                FormatPart::Text(" ".into()),
                FormatPart::Ssl("A".into()),
                FormatPart::Text(" ".into()),
                FormatPart::Env(String::new()),
            ])
        );
        assert_eq!(
            format(r"a\tb\\c\d\"),
            Ok(vec![FormatPart::Text("a\tb\\c\\d\\".into())])
        );
        assert_eq!(format(""), Ok(vec![]));
    }

    /// Every form `apache2 -t` refuses, refused, with Apache's meaning.
    #[test]
    fn the_forms_apache_refuses() {
        for (line, expected) in [
            // Apache: "first argument must be 'add', 'set', …"
            (
                "Header",
                "line 1, column 1: Header needs an action: expected add",
            ),
            ("Header always", "line 1, column 1: Header needs an action"),
            (
                "Header foo X v",
                "line 1, column 8: unknown Header action \"foo\"",
            ),
            (
                "Header always always set X v",
                "column 15: unknown Header action \"always\"",
            ),
            (
                "RequestHeader always set X v",
                "unknown RequestHeader action \"always\"",
            ),
            // Apache: "Header requires three arguments"
            (
                "Header set",
                "line 1, column 1: Header set needs a header name and a value",
            ),
            ("Header set X", "Header set needs a header name and a value"),
            (
                "Header note X",
                "Header note needs a header name and a value",
            ),
            // Apache: "error: missing environment variable name …"
            (
                "Header set X v env=",
                "column 16: missing environment variable name",
            ),
            ("Header set X v env=!", "missing environment variable name"),
            // Apache: "Can't parse envclause/expression: …"
            ("Header set X v expr=", "expr= needs an expression"),
            // Apache: "Unknown parameter: bogus"
            (
                "Header set X v bogus",
                "column 16: unknown condition \"bogus\"",
            ),
            ("Header unset X v", "unknown condition \"v\""),
            // Apache: "Too many arguments to directive"
            (
                "Header set X v env=A extra",
                "column 22: Header set has too many arguments",
            ),
            // Apache: "header unset takes two arguments"
            (
                "Header unset X env=A B",
                "column 22: Header unset takes a header name",
            ),
            ("Header echo ^X- v env=A", "Header echo takes a header name"),
            // Apache: "Header edit requires a match and a substitution"
            (
                "Header edit X",
                "Header edit needs a header name, a regular expression",
            ),
            ("Header edit X ^a", "Header edit needs"),
            // Apache: "Header has too many arguments"
            (
                "Header edit X ^a b env=A more",
                "column 26: Header has too many arguments",
            ),
            // Apache: "Unrecognized header format %x"
            (
                "Header set X %x",
                "column 14: unrecognized header format %x",
            ),
            (r#"Header set X "%{FOO""#, "unrecognized header format %:"),
            ("Header set X %{FOO}", "unrecognized header format %:"),
            (
                "Header edit X a %q",
                "column 17: unrecognized header format %q",
            ),
            // Apache: "Header echo only valid on Header directives"
            ("RequestHeader echo X", "echo is a Header action only"),
            // Apache: "RequestHeader does not support the 'note' action"
            (
                "RequestHeader note X n",
                "RequestHeader does not take the note action",
            ),
        ] {
            let e = error(line);
            assert!(e.contains(expected), "{line}: {e}");
        }
    }

    /// Every form reads back from its rendering.
    #[test]
    fn every_form_renders_and_reads_back() {
        let text = r#"Header always edit* X-A "^(a)" "$1 \$ %{BALANCER_NAME}e" "expr=%{REQUEST_STATUS} -ge 500"
Header echo ^X- env=!A
Header echo
Header onsuccess unset X-B env=C
RequestHeader setifempty X-C "a \"q\" %t" "expr=req('X-D') == 'd'"
RequestHeader merge X-E v
"#;
        let c = parse(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.headers.len(), 6);
        let again = parse(&c.render()).unwrap_or_else(|e| panic!("{}: {e}", c.render()));
        assert_eq!(again.without_spans(), c.without_spans(), "{}", c.render());
    }

    /// In a `<Proxy>` block a rule is checked and kept aside, not applied to every request.
    #[test]
    fn in_a_proxy_block_kept_aside() {
        let c = parse(
            "<Proxy balancer://b>\n BalancerMember http://a\n Header set X v\n RequestHeader unset Y\n</Proxy>\n",
        )
        .expect("valid");
        assert!(c.headers.is_empty());
        let skipped: Vec<(&str, u32)> = c
            .skipped
            .iter()
            .map(|s| (s.directive.as_str(), s.span.line))
            .collect();
        assert_eq!(skipped, [("Header", 3), ("RequestHeader", 4)]);
        assert!(parse("<Proxy balancer://b>\n Header set X %x\n</Proxy>\n").is_err());
    }

    /// Forms Apache accepts that proxy-balancer refuses, each saying why.
    #[test]
    fn the_forms_refused_here_say_why() {
        for (line, expected) in [
            ("Header set X v early", "column 16: early is not supported"),
            ("RequestHeader unset X EARLY", "early is not supported"),
            (
                "Header note X notename",
                "column 8: Header note is not supported",
            ),
            ("Header set X %t%D%l", "column 14: %l (the server's load"),
            ("Header set X %i", "%i (the server's load"),
            ("Header set X %b", "%b (the server's load"),
            (r#"Header set X "a\nb""#, "a \\n or \\r escape"),
            (
                r#"Header set X "expr=%{REQUEST_URI}""#,
                "a value expr= is not supported",
            ),
            (r#"Header set "" v"#, "column 12: \"\" is not a header name"),
            (r#"Header set "X Y" v"#, "\"X Y\" is not a header name"),
            ("Header set X-\u{dc} v", "\"X-\u{dc}\" is not a header name"),
            // Apache unsets a header named "": nothing.
            ("Header unset", "column 1: Header unset needs a header name"),
        ] {
            let e = error(line);
            assert!(e.contains(expected), "{line}: {e}");
        }
    }
}
