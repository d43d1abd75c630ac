//! Logical lines (comments dropped, `\` continuations joined) and words (quotes unescaped),
//! each character keeping its place in the text.

use crate::ast::Span;
use crate::error::{ParseError, ParseErrorKind};

/// A logical line: its characters and, for each, where it was written.
#[derive(Debug, Default)]
pub(crate) struct LogicalLine {
    pub(crate) chars: Vec<char>,
    pub(crate) spans: Vec<Span>,
}

impl LogicalLine {
    /// The place of character `i`, or just after the last one.
    pub(crate) fn span_at(&self, i: usize) -> Span {
        match self.spans.get(i) {
            Some(s) => *s,
            None => self.spans.last().map_or_else(Span::default, |s| Span {
                line: s.line,
                column: s.column.saturating_add(1),
            }),
        }
    }

    /// The index of the first non-blank character at or after `i`.
    pub(crate) fn skip_blank(&self, mut i: usize) -> usize {
        while self.chars.get(i).is_some_and(|c| c.is_whitespace()) {
            i += 1;
        }
        i
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Splits `text` into logical lines. Comment lines (`#` after optional blanks) and blank
/// lines are dropped; a line ending in `\` (before trailing blanks) goes on with the next
/// one, as Apache's `ap_cfg_getline` does.
pub(crate) fn logical_lines(text: &str) -> Vec<LogicalLine> {
    let mut out = Vec::new();
    let mut cur = LogicalLine::default();
    for (n, raw) in text.split('\n').enumerate() {
        let line_no = to_u32(n + 1);
        let trimmed = raw.trim_end();
        let (body, more) = match trimmed.strip_suffix('\\') {
            Some(b) => (b, true),
            None => (trimmed, false),
        };
        for (col, c) in body.chars().enumerate() {
            cur.chars.push(c);
            cur.spans.push(Span {
                line: line_no,
                column: to_u32(col + 1),
            });
        }
        if !more {
            let line = std::mem::take(&mut cur);
            let first = line.skip_blank(0);
            if line.chars.get(first).is_some_and(|c| *c != '#') {
                out.push(line);
            }
        }
    }
    let first = cur.skip_blank(0);
    if cur.chars.get(first).is_some_and(|c| *c != '#') {
        out.push(cur);
    }
    out
}

/// A word of a directive.
#[derive(Clone, Debug)]
pub(crate) struct Token {
    /// The text, quotes removed and `\"` unescaped.
    pub(crate) text: String,
    /// Where it starts (its opening quote if quoted).
    pub(crate) span: Span,
    /// Whether it was quoted.
    pub(crate) quoted: bool,
}

/// Reads one word starting at `i` (not blank). Returns it and the index after it.
pub(crate) fn word(line: &LogicalLine, mut i: usize) -> Result<(Token, usize), ParseError> {
    let span = line.span_at(i);
    let mut text = String::new();
    let first = line.chars[i];
    if first == '"' || first == '\'' {
        i += 1;
        loop {
            match line.chars.get(i) {
                None => {
                    return Err(ParseError::new(
                        span,
                        ParseErrorKind::Syntax,
                        format!("unterminated quote {first}"),
                    )
                    .with_hint(Some(format!("close the value with {first}"))));
                }
                Some('\\') if line.chars.get(i + 1) == Some(&first) => {
                    text.push(first);
                    i += 2;
                }
                Some(c) if *c == first => {
                    i += 1;
                    break;
                }
                Some(c) => {
                    text.push(*c);
                    i += 1;
                }
            }
        }
        Ok((
            Token {
                text,
                span,
                quoted: true,
            },
            i,
        ))
    } else {
        while let Some(c) = line.chars.get(i) {
            if c.is_whitespace() {
                break;
            }
            text.push(*c);
            i += 1;
        }
        Ok((
            Token {
                text,
                span,
                quoted: false,
            },
            i,
        ))
    }
}

/// All the words from `i` to the end of the line.
pub(crate) fn words(line: &LogicalLine, mut i: usize) -> Result<Vec<Token>, ParseError> {
    let mut out = Vec::new();
    loop {
        i = line.skip_blank(i);
        if i >= line.chars.len() {
            return Ok(out);
        }
        let (tok, next) = word(line, i)?;
        out.push(tok);
        i = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_words() {
        let text = "# c\n  Foo a \"b c\" \\\n   'd\\'e'\r\n\n\t# x\nBar";
        let lines = logical_lines(text);
        assert_eq!(lines.len(), 2);
        let w = words(&lines[0], 0).unwrap();
        let texts: Vec<_> = w.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(texts, ["Foo", "a", "b c", "d'e"]);
        assert_eq!(w[0].span, Span { line: 2, column: 3 });
        assert_eq!(w[3].span, Span { line: 3, column: 4 });
        assert_eq!(lines[1].spans[0], Span { line: 6, column: 1 });
        let bad = logical_lines("X \"open");
        let err = words(&bad[0], 0).unwrap_err();
        assert_eq!(err.span, Span { line: 1, column: 3 });
    }
}
