//! Parsing: a POST body or a GET query decoded into a [`Form`].

use std::fmt;

use super::EditError;

/// The largest form body or query string accepted, in bytes.
///
/// 16 KiB holds every field of the manager's forms many times over (Apache reads only 1024
/// bytes) while keeping a hostile request cheap to refuse. Callers should stop reading a body
/// after `MAX_FORM_BYTES + 1` bytes and pass what they have, which [`parse_form`] refuses.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

// ===== form =====

/// The decoded parameters of one request, every key kept in order.
///
/// ```
/// use proxy_balancer_manager::edit::parse_query;
///
/// let form = parse_query("b=mycluster&xml=1&w_status_D=")?;
/// assert_eq!(form.b(), Some("mycluster"));
/// assert!(form.xml());
/// assert_eq!(form.get("W_STATUS_D"), Some(""));
/// assert!(form.has_changes());
/// # Ok::<(), proxy_balancer_manager::edit::EditError>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Form {
    pub(super) pairs: Vec<(String, String)>,
}

impl Form {
    /// The value of the first parameter with this name (ASCII case-insensitive, as Apache's
    /// tables are).
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// `b`: the balancer's name, without `balancer://`.
    #[must_use]
    pub fn b(&self) -> Option<&str> {
        self.get("b")
    }

    /// `w`: the member's URL.
    #[must_use]
    pub fn w(&self) -> Option<&str> {
        self.get("w")
    }

    /// `nonce`.
    #[must_use]
    pub fn nonce(&self) -> Option<&str> {
        self.get("nonce")
    }

    /// Whether `xml` is present (with any value): the answer is XML.
    #[must_use]
    pub fn xml(&self) -> bool {
        self.get("xml").is_some()
    }

    /// Whether the form asks for a change: a parameter whose name starts with `w_` or `b_`
    /// (every change parameter of Apache's balancer-manager does, and so does a misspelt
    /// one), whatever its case. `b`, `w`, `nonce`, `xml`, `refresh` and parameters the
    /// manager does not know (`pretty=1`, a cache-buster `_=1733300000`) are not changes: a
    /// GET carrying only those is served; one carrying a change is refused.
    ///
    /// ```
    /// use proxy_balancer_manager::edit::parse_query;
    ///
    /// assert!(!parse_query("b=app&pretty=1&_=1733300000")?.has_changes());
    /// assert!(parse_query("b=app&W_STATUS_D=1")?.has_changes());
    /// assert!(parse_query("b=app&w_bogus=1")?.has_changes());
    /// # Ok::<(), proxy_balancer_manager::edit::EditError>(())
    /// ```
    #[must_use]
    pub fn has_changes(&self) -> bool {
        self.pairs.iter().any(|(k, _)| is_change(k))
    }

    /// Every parameter, in the order given, names as given.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// How many parameters there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there is no parameter.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

impl fmt::Debug for Form {
    /// Shows the names only: a nonce should not end up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.pairs.iter().map(|(k, _)| k))
            .finish()
    }
}

/// Whether `key` names a change: `w_…` or `b_…`, in any case.
fn is_change(key: &str) -> bool {
    key.get(..2)
        .is_some_and(|p| p.eq_ignore_ascii_case("w_") || p.eq_ignore_ascii_case("b_"))
}

/// Parses a POST body of type `application/x-www-form-urlencoded`: `&`-separated
/// `key=value` pairs, `+` for a space and `%XX` escapes, decoded once. A pair without `=`
/// has an empty value; empty pairs (`a=1&&b=2`) are skipped. Every key is kept.
///
/// ```
/// use proxy_balancer_manager::edit::parse_form;
///
/// let form = parse_form(b"w=http%3A%2F%2Fa%3A8001&w_wr=node+1&nonce")?;
/// assert_eq!(form.w(), Some("http://a:8001"));
/// assert_eq!(form.get("w_wr"), Some("node 1"));
/// assert_eq!(form.nonce(), Some(""));
/// assert!(parse_form(b"w_lf=%zz").is_err());
/// # Ok::<(), proxy_balancer_manager::edit::EditError>(())
/// ```
///
/// # Errors
///
/// [`EditError::TooLarge`] beyond [`MAX_FORM_BYTES`]; [`EditError::Malformed`] for a bad
/// `%` escape, text that is not UTF-8 once decoded, or an empty name (`=x`).
///
/// # Apache
///
/// Apache decodes values twice and reads only the first 1024 bytes; see the
/// [module docs](super).
pub fn parse_form(body: &[u8]) -> Result<Form, EditError> {
    if body.len() > MAX_FORM_BYTES {
        return Err(EditError::TooLarge {
            len: body.len(),
            limit: MAX_FORM_BYTES,
        });
    }
    let mut pairs = Vec::new();
    let mut start = 0;
    for piece in body.split(|&b| b == b'&') {
        let offset = start;
        start += piece.len() + 1;
        if piece.is_empty() {
            continue;
        }
        let (key, value, value_offset) = match piece.iter().position(|&b| b == b'=') {
            Some(i) => (&piece[..i], &piece[i + 1..], offset + i + 1),
            None => (piece, &piece[piece.len()..], offset + piece.len()),
        };
        if key.is_empty() {
            return Err(EditError::Malformed {
                offset,
                reason: "a parameter has no name",
            });
        }
        pairs.push((decode(key, offset)?, decode(value, value_offset)?));
    }
    Ok(Form { pairs })
}

/// Parses a GET query string (without the `?`) like [`parse_form`].
///
/// Unlike Apache, which keeps only `b`, `w`, `nonce` and `xml` of a GET, every key is kept so
/// that the caller can see with [`Form::has_changes`] that a change was asked for, and refuse
/// it. Other parameters (`pretty=1`, a cache-buster) are kept and are not changes.
///
/// ```
/// use proxy_balancer_manager::edit::parse_query;
///
/// assert!(!parse_query("b=mycluster&xml=1")?.has_changes());
/// assert!(parse_query("b=mycluster&w_status_D=0")?.has_changes());
/// # Ok::<(), proxy_balancer_manager::edit::EditError>(())
/// ```
///
/// # Errors
///
/// As [`parse_form`].
pub fn parse_query(query: &str) -> Result<Form, EditError> {
    parse_form(query.as_bytes())
}

/// Decodes one name or value; `offset` is where it starts in the whole form.
fn decode(text: &[u8], offset: usize) -> Result<String, EditError> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |j: usize| text.get(j).and_then(|&b| (b as char).to_digit(16));
                let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
                    return Err(EditError::Malformed {
                        offset: offset + i,
                        reason: "`%` must be followed by two hex digits",
                    });
                };
                // Two hex digits make at most 255.
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(u8::MAX));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|e| EditError::Malformed {
        offset: offset + e.utf8_error().valid_up_to(),
        reason: "the decoded text is not UTF-8",
    })
}
