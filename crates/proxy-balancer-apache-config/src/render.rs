//! Apache syntax back from a [`Config`].

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use crate::ast::{
    AllowEncodedSlashes, Config, HeaderAction, HeaderCondition, Param, ProxyTarget, Span,
};

/// A word as Apache reads it back: quoted when it is empty, holds blanks or starts with a
/// quote (or `<`).
///
/// A word ending in `\` is quoted too, although that cannot be read back either (`\"` is an
/// escaped quote): unquoted at the end of a line it would join the next line instead, which is
/// worse than an error. Use [`inner_word`] for a word that another follows on its line.
fn word(s: &str) -> Cow<'_, str> {
    if s.ends_with('\\') {
        Cow::Owned(quoted(s))
    } else {
        inner_word(s)
    }
}

/// A word that another word follows on its line: as [`word`], but a word ending in `\` is
/// written as it is, which reads back (only a `\` at the end of a line continues it).
fn inner_word(s: &str) -> Cow<'_, str> {
    // Apache reads an unquoted word up to the next blank, quotes inside it included.
    let plain =
        !s.is_empty() && !s.starts_with(['"', '\'', '<']) && !s.chars().any(char::is_whitespace);
    if plain {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(quoted(s))
    }
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\\\""))
}

/// ` key=value …`, ending its line.
fn params<'a>(out: &mut String, params: impl IntoIterator<Item = &'a Param>) {
    let mut params = params.into_iter().peekable();
    while let Some(p) = params.next() {
        out.push(' ');
        let text = format!("{}={}", p.key, p.value);
        if params.peek().is_some() {
            out.push_str(&inner_word(&text));
        } else {
            out.push_str(&word(&text));
        }
    }
}

/// The balancer parameters that did not come from a `ProxyPass` (those are written there).
fn own_params<'a>(config: &Config, name: &str, all: &'a [Param]) -> Vec<&'a Param> {
    let mut own: Vec<Option<&Param>> = all.iter().map(Some).collect();
    let from_passes = config
        .proxy_passes
        .iter()
        .filter(|pp| matches!(&pp.target, ProxyTarget::Balancer { name: n, .. } if n == name));
    let from_passes: Vec<&Param> = from_passes.flat_map(|pp| &pp.params).collect();
    for p in from_passes.iter().rev() {
        if let Some(slot) = own
            .iter_mut()
            .rev()
            .find(|slot| slot.is_some_and(|o| o.key == p.key && o.value == p.value))
        {
            *slot = None;
        }
    }
    own.into_iter().flatten().collect()
}

impl Config {
    /// Writes the configuration back in Apache syntax.
    ///
    /// Global directives come first, then `ProxyHCExpr` and `ProxyHCTemplate` (Apache needs
    /// them before their use), the `<Proxy>` blocks with their members and a `ProxySet` for
    /// the balancer parameters not given on a `ProxyPass`, the `ProxyPass`,
    /// `ProxyPassReverse`, `ProxyPassReverseCookieDomain`, `ProxyPassReverseCookiePath` and
    /// `Header` directives, and the manager locations. Skipped
    /// directives are not written. [`parse`](crate::parse) reads the text back to the same
    /// configuration (see [`Config::without_spans`]).
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Some(t) = self.proxy_timeout {
            let _ = writeln!(out, "ProxyTimeout {}", t.as_secs());
        }
        if let Some(n) = self.balancer_growth {
            let _ = writeln!(out, "BalancerGrowth {n}");
        }
        let on_off = |b: bool| if b { "On" } else { "Off" };
        if let Some(b) = self.balancer_persist {
            let _ = writeln!(out, "BalancerPersist {}", on_off(b));
        }
        if let Some(b) = self.server.balancer_inherit {
            let _ = writeln!(out, "BalancerInherit {}", on_off(b));
        }
        if let Some(s) = &self.server.server_name {
            out.push_str("ServerName ");
            let mut text = String::new();
            if let Some(scheme) = &s.scheme {
                let _ = write!(text, "{scheme}://");
            }
            text.push_str(&s.host);
            if let Some(port) = s.port {
                let _ = write!(text, ":{port}");
            }
            out.push_str(&word(&text));
            out.push('\n');
        }
        crate::logs::render(&self.log_directives, &mut out, |s| word(s).into_owned());
        crate::front::render(&self.front, &mut out);
        if let Some(b) = self.server.proxy_preserve_host {
            let _ = writeln!(out, "ProxyPreserveHost {}", on_off(b));
        }
        if let Some(b) = self.server.proxy_add_headers {
            let _ = writeln!(out, "ProxyAddHeaders {}", on_off(b));
        }
        if let Some(mode) = self.server.allow_encoded_slashes {
            let mode = match mode {
                AllowEncodedSlashes::On => "On",
                AllowEncodedSlashes::NoDecode => "NoDecode",
                AllowEncodedSlashes::Off => "Off",
            };
            let _ = writeln!(out, "AllowEncodedSlashes {mode}");
        }
        for e in &self.hc_exprs {
            let _ = writeln!(out, "ProxyHCExpr {} {{{}}}", word(&e.name), e.expr);
        }
        for t in &self.hc_templates {
            out.push_str("ProxyHCTemplate ");
            out.push_str(&if t.params.is_empty() {
                word(&t.name)
            } else {
                inner_word(&t.name)
            });
            params(&mut out, &t.params);
            out.push('\n');
        }
        for b in &self.balancers {
            let _ = writeln!(out, "<Proxy {}>", quoted(&b.name));
            for m in &b.members {
                out.push_str("    BalancerMember ");
                out.push_str(&if m.params.is_empty() {
                    word(&m.url)
                } else {
                    inner_word(&m.url)
                });
                params(&mut out, &m.params);
                out.push('\n');
            }
            let own = own_params(self, &b.name, &b.params);
            if !own.is_empty() {
                out.push_str("    ProxySet");
                params(&mut out, own);
                out.push('\n');
            }
            out.push_str("</Proxy>\n");
        }
        for pp in &self.proxy_passes {
            let target_word = if pp.params.is_empty() {
                word
            } else {
                inner_word
            };
            out.push_str("ProxyPass ");
            out.push_str(&inner_word(&pp.path));
            out.push(' ');
            match &pp.target {
                ProxyTarget::Balancer { name, path } => {
                    out.push_str(&target_word(&format!("{name}{path}")));
                }
                ProxyTarget::Url(url) => out.push_str(&target_word(url)),
                ProxyTarget::Exclude => out.push('!'),
            }
            params(&mut out, &pp.params);
            if pp.nocanon {
                out.push_str(" nocanon");
            }
            out.push('\n');
        }
        for r in &self.proxy_pass_reverses {
            let _ = writeln!(
                out,
                "ProxyPassReverse {} {}",
                inner_word(&r.path),
                word(&r.target)
            );
        }
        for (directive, rewrites) in [
            (
                "ProxyPassReverseCookieDomain",
                &self.proxy_pass_reverse_cookie_domains,
            ),
            (
                "ProxyPassReverseCookiePath",
                &self.proxy_pass_reverse_cookie_paths,
            ),
        ] {
            for r in rewrites {
                let _ = write!(out, "{directive} {} ", inner_word(&r.internal));
                if r.interpolate {
                    let _ = write!(out, "{} interpolate", inner_word(&r.public));
                } else {
                    out.push_str(&word(&r.public));
                }
                out.push('\n');
            }
        }
        for h in &self.headers {
            out.push_str(h.directive());
            out.push(' ');
            if h.always {
                out.push_str("always ");
            }
            let _ = write!(out, "{} {}", h.action, inner_word(&h.name));
            // `unset` and `echo` take no value.
            if !matches!(h.action, HeaderAction::Unset | HeaderAction::Echo) {
                out.push(' ');
                out.push_str(&quoted(&h.value));
            }
            if let Some(replacement) = &h.replacement {
                out.push(' ');
                out.push_str(&quoted(replacement));
            }
            match &h.condition {
                Some(HeaderCondition::Env { name, negated }) => {
                    let bang = if *negated { "!" } else { "" };
                    out.push(' ');
                    out.push_str(&word(&format!("env={bang}{name}")));
                }
                Some(HeaderCondition::Expr(expr)) => {
                    out.push(' ');
                    out.push_str(&quoted(&format!("expr={expr}")));
                }
                None => {}
            }
            out.push('\n');
        }
        for l in &self.manager_locations {
            let _ = writeln!(out, "<Location {}>", quoted(&l.path));
            out.push_str("    SetHandler balancer-manager\n");
            for r in &l.requires {
                let _ = writeln!(out, "    Require {r}");
            }
            out.push_str("</Location>\n");
        }
        out
    }

    /// A copy with every [`Span`] set to its default, to compare configurations by content.
    ///
    /// ```
    /// use proxy_balancer_apache_config::parse;
    ///
    /// let a = parse("<Proxy balancer://x>\nBalancerMember http://a:80\n</Proxy>")?;
    /// let b = parse("\n\n<Proxy balancer://X>\n  BalancerMember http://a:80\n</Proxy>")?;
    /// assert_ne!(a, b);
    /// assert_eq!(a.without_spans(), b.without_spans());
    /// # Ok::<(), proxy_balancer_apache_config::ParseErrors>(())
    /// ```
    #[must_use]
    pub fn without_spans(&self) -> Self {
        let z = Span::default();
        let mut c = self.clone();
        let zero_params = |ps: &mut Vec<Param>| ps.iter_mut().for_each(|p| p.span = z);
        for b in &mut c.balancers {
            b.span = z;
            zero_params(&mut b.params);
            for m in &mut b.members {
                m.span = z;
                zero_params(&mut m.params);
            }
        }
        for p in &mut c.proxy_passes {
            p.span = z;
            zero_params(&mut p.params);
        }
        c.proxy_pass_reverses.iter_mut().for_each(|r| r.span = z);
        c.proxy_pass_reverse_cookie_domains
            .iter_mut()
            .chain(&mut c.proxy_pass_reverse_cookie_paths)
            .for_each(|r| r.span = z);
        if let Some(s) = &mut c.server.server_name {
            s.span = z;
        }
        for t in &mut c.hc_templates {
            t.span = z;
            zero_params(&mut t.params);
        }
        c.hc_exprs.iter_mut().for_each(|e| e.span = z);
        c.headers.iter_mut().for_each(|h| h.span = z);
        c.manager_locations.iter_mut().for_each(|l| l.span = z);
        c.skipped.iter_mut().for_each(|s| s.span = z);
        crate::logs::zero_spans(&mut c.log_directives);
        c
    }
}

impl fmt::Display for Config {
    /// The same text as [`Config::render`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}
