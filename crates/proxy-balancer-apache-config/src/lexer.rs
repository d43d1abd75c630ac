//! Logical lines (comments dropped, `\` continuations joined) and words (quotes unescaped).
//!
//! Lines are read one at a time from the text; a logical line keeps its text and, per
//! physical piece, where the piece was written; a place (line and column in characters) is
//! computed per word, not kept per character, so reading a configuration takes about the
//! memory of its text.

use std::cell::Cell;

use crate::ast::Span;
use crate::error::{ParseError, ParseErrorKind};

/// Where a run of a logical line's text was written.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Piece {
    /// The byte offset in [`LogicalLine::text`] where the run starts.
    pub(crate) start: usize,
    /// The line of its first character, from 1.
    pub(crate) line: u32,
    /// The column of its first character (in characters), from 1.
    pub(crate) column: u32,
    /// Whether every character of the run is at `column` (the value of a `${VAR}`, placed
    /// where the `$` was written) rather than one column after the other.
    pub(crate) fixed: bool,
}

/// A logical line: its text and where each run of it was written.
#[derive(Debug, Default)]
pub(crate) struct LogicalLine {
    /// The text, continuations joined (without the `\`).
    pub(crate) text: String,
    /// The runs, by increasing `start`; the first starts at 0.
    pub(crate) pieces: Vec<Piece>,
    /// The file (an index in [`Config::files`](crate::Config::files); 0 for the main text).
    pub(crate) file: u32,
    /// The last place computed: (piece, byte offset, column), so that places asked for in
    /// the order of the text cost their distance, not the line's length.
    cache: Cell<(usize, usize, u32)>,
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl LogicalLine {
    pub(crate) fn new(text: String, pieces: Vec<Piece>, file: u32) -> Self {
        Self {
            text,
            pieces,
            file,
            cache: Cell::new((usize::MAX, 0, 0)),
        }
    }

    /// The length of the text in bytes.
    pub(crate) fn len(&self) -> usize {
        self.text.len()
    }

    /// The character at byte offset `i`, if `i` is in the text at a character boundary.
    pub(crate) fn char_at(&self, i: usize) -> Option<char> {
        self.text.get(i..).and_then(|s| s.chars().next())
    }

    /// The place of the character at byte offset `i`, or just after the last one.
    pub(crate) fn span_at(&self, i: usize) -> Span {
        let at = |line: u32, column: u32| Span {
            file: self.file,
            line,
            column,
        };
        let end = i >= self.text.len();
        let i = i.min(self.text.len());
        let k = self
            .pieces
            .partition_point(|p| p.start <= i)
            .saturating_sub(1);
        let Some(piece) = self.pieces.get(k) else {
            return Span {
                file: self.file,
                ..Span::default()
            };
        };
        if piece.fixed {
            let column = if end {
                piece.column.saturating_add(1)
            } else {
                piece.column
            };
            return at(piece.line, column);
        }
        let (ck, cb, cc) = self.cache.get();
        let (from, mut column) = if ck == k && cb <= i {
            (cb, cc)
        } else {
            (piece.start, piece.column)
        };
        let count = self.text.get(from..i).map_or(0, |s| s.chars().count());
        column = column.saturating_add(to_u32(count));
        self.cache.set((k, i, column));
        at(piece.line, column)
    }

    /// The byte offset of the first non-blank character at or after `i`.
    pub(crate) fn skip_blank(&self, i: usize) -> usize {
        let Some(rest) = self.text.get(i..) else {
            return self.text.len();
        };
        match rest.char_indices().find(|(_, c)| !c.is_whitespace()) {
            Some((j, _)) => i + j,
            None => self.text.len(),
        }
    }
}

/// One physical line split off the text: `(line number, body without trailing blanks and
/// `\`, whether it goes on)`.
fn physical(raw: &str) -> (&str, bool) {
    let trimmed = raw.trim_end();
    match trimmed.strip_suffix('\\') {
        Some(b) => (b, true),
        None => (trimmed, false),
    }
}

/// Whether a logical line is kept: not blank, not a comment (`#` after optional blanks).
fn kept(text: &str) -> bool {
    text.trim_start().chars().next().is_some_and(|c| c != '#')
}

/// The logical lines of `text`, lazily. Comment lines (`#` after optional blanks) and blank
/// lines are dropped; a line ending in `\` (before trailing blanks) goes on with the next
/// one, as Apache's `ap_cfg_getline` does.
pub(crate) fn logical_lines(text: &str) -> LogicalLines<'_> {
    logical_lines_in(text, 0)
}

/// [`logical_lines`] of the text of file `file`.
pub(crate) fn logical_lines_in(text: &str, file: u32) -> LogicalLines<'_> {
    LogicalLines {
        rest: Some(text),
        line_no: 0,
        file,
    }
}

/// The iterator of [`logical_lines`].
#[derive(Debug)]
pub(crate) struct LogicalLines<'a> {
    rest: Option<&'a str>,
    line_no: usize,
    file: u32,
}

impl<'a> LogicalLines<'a> {
    fn next_physical(&mut self) -> Option<(u32, &'a str)> {
        let rest = self.rest?;
        let (raw, rest) = match rest.split_once('\n') {
            Some((raw, rest)) => (raw, Some(rest)),
            None => (rest, None),
        };
        self.rest = rest;
        self.line_no += 1;
        Some((to_u32(self.line_no), raw))
    }
}

impl<'a> Iterator for LogicalLines<'a> {
    type Item = LogicalLine;

    fn next(&mut self) -> Option<LogicalLine> {
        loop {
            let (line_no, raw) = self.next_physical()?;
            let (body, mut more) = physical(raw);
            let first = Piece {
                start: 0,
                line: line_no,
                column: 1,
                fixed: false,
            };
            if !more {
                if kept(body) {
                    return Some(LogicalLine::new(body.to_owned(), vec![first], self.file));
                }
                continue;
            }
            let mut text = body.to_owned();
            let mut pieces = vec![first];
            while more {
                let Some((line_no, raw)) = self.next_physical() else {
                    break;
                };
                let (body, m) = physical(raw);
                more = m;
                pieces.push(Piece {
                    start: text.len(),
                    line: line_no,
                    column: 1,
                    fixed: false,
                });
                text.push_str(body);
            }
            if kept(&text) {
                return Some(LogicalLine::new(text, pieces, self.file));
            }
        }
    }
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

/// Reads one word starting at byte offset `i` (not blank). Returns it and the offset after
/// it.
pub(crate) fn word(line: &LogicalLine, i: usize) -> Result<(Token, usize), ParseError> {
    let span = line.span_at(i);
    let rest = line.text.get(i..).unwrap_or("");
    let mut chars = rest.char_indices().peekable();
    let first = chars.peek().map_or(' ', |(_, c)| *c);
    if first == '"' || first == '\'' {
        chars.next();
        let mut text = String::new();
        loop {
            match chars.next() {
                None => {
                    return Err(ParseError::new(
                        span,
                        ParseErrorKind::Syntax,
                        format!("unterminated quote {first}"),
                    )
                    .with_hint(Some(format!("close the value with {first}"))));
                }
                Some((_, '\\')) if chars.peek().map(|(_, c)| *c) == Some(first) => {
                    text.push(first);
                    chars.next();
                }
                Some((j, c)) if c == first => {
                    return Ok((
                        Token {
                            text,
                            span,
                            quoted: true,
                        },
                        i + j + c.len_utf8(),
                    ));
                }
                Some((_, c)) => text.push(c),
            }
        }
    } else {
        let end = rest
            .char_indices()
            .find(|(_, c)| c.is_whitespace())
            .map_or(rest.len(), |(j, _)| j);
        Ok((
            Token {
                text: rest[..end].to_owned(),
                span,
                quoted: false,
            },
            i + end,
        ))
    }
}

/// All the words from byte offset `i` to the end of the line.
pub(crate) fn words(line: &LogicalLine, mut i: usize) -> Result<Vec<Token>, ParseError> {
    let mut out = Vec::new();
    loop {
        i = line.skip_blank(i);
        if i >= line.len() {
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

    fn at(line: u32, column: u32) -> Span {
        Span::new(line, column)
    }

    #[test]
    fn lines_and_words() {
        let text = "# c\n  Foo a \"b c\" \\\n   'd\\'e'\r\n\n\t# x\nBar";
        let lines: Vec<_> = logical_lines(text).collect();
        assert_eq!(lines.len(), 2);
        let w = words(&lines[0], 0).unwrap();
        let texts: Vec<_> = w.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(texts, ["Foo", "a", "b c", "d'e"]);
        assert_eq!(w[0].span, at(2, 3));
        assert_eq!(w[3].span, at(3, 4));
        assert_eq!(lines[1].span_at(0), at(6, 1));
        let bad: Vec<_> = logical_lines("X \"open").collect();
        let err = words(&bad[0], 0).unwrap_err();
        assert_eq!(err.span, at(1, 3));
    }

    #[test]
    fn columns_count_characters() {
        let lines: Vec<_> = logical_lines("Été «a» b\nX é \\\n  ü z").collect();
        let w = words(&lines[0], 0).unwrap();
        assert_eq!(w[1].span, at(1, 5));
        assert_eq!(w[2].span, at(1, 9));
        let w = words(&lines[1], 0).unwrap();
        assert_eq!(w[2].span, at(3, 3));
        assert_eq!(w[3].span, at(3, 5));
        // Out of order, the cache does not mislead.
        assert_eq!(lines[1].span_at(2), at(2, 3));
        // Just after the end.
        assert_eq!(lines[1].span_at(lines[1].len()), at(3, 6));
    }

    #[test]
    fn continued_comment_and_trailing_backslash() {
        // A comment goes on with a `\`, as in Apache; a `\` on the last line ends it.
        let lines: Vec<_> = logical_lines("# a \\\nStill comment\nA b \\").collect();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].text, "A b ");
    }
}
