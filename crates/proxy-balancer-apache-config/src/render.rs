//! Apache syntax back from a [`Config`].

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use crate::ast::{
    AllowEncodedSlashes, BalancerConfig, Config, Context, HeaderAction, HeaderCondition,
    HostSettings, Param, ProxyPassConfig, ProxyTarget, Span,
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
    // A `<` starts a block only at the start of a line: a word starting with one is quoted
    // for the reader's sake, unless it ends in `\` (which no quoted word can: `\"` is an
    // escaped quote).
    let plain = !s.is_empty()
        && !s.starts_with(['"', '\''])
        && (!s.starts_with('<') || s.ends_with('\\'))
        && !s.chars().any(char::is_whitespace);
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

/// The balancer parameters that did not come from a `ProxyPass` of its server (those are
/// written there).
fn own_params<'a>(config: &Config, b: &BalancerConfig, all: &'a [Param]) -> Vec<&'a Param> {
    let mut own: Vec<Option<&Param>> = all.iter().map(Some).collect();
    let from_passes = config.proxy_passes.iter().filter(|pp| {
        pp.context.vhost == b.context.vhost
            && matches!(&pp.target, ProxyTarget::Balancer { name: n, .. } if *n == b.name)
    });
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

fn on_off(b: bool) -> &'static str {
    if b {
        "On"
    } else {
        "Off"
    }
}

/// A `ProxyPass`/`ProxyPassMatch` line: `path` is `None` inside a `<Location>` (the
/// one-argument form).
fn proxy_pass(out: &mut String, indent: &str, pp: &ProxyPassConfig, in_location: Option<bool>) {
    let target_word = if pp.params.is_empty() && !(pp.nocanon || pp.noquery || pp.interpolate) {
        word
    } else {
        inner_word
    };
    out.push_str(indent);
    match in_location {
        // The path is the location's: `ProxyPassMatch` reads it as a regular expression
        // (a `ProxyPass` in a `<LocationMatch>` does only when it has a wildcard).
        Some(_) => {
            out.push_str(if pp.regex {
                "ProxyPassMatch "
            } else {
                "ProxyPass "
            });
        }
        None => {
            out.push_str(if pp.regex {
                "ProxyPassMatch "
            } else {
                "ProxyPass "
            });
            out.push_str(&inner_word(&pp.path));
            out.push(' ');
        }
    }
    match &pp.target {
        ProxyTarget::Balancer { name, path } => {
            out.push_str(&target_word(&format!("{name}{path}")));
        }
        ProxyTarget::Url(url) => out.push_str(&target_word(url)),
        ProxyTarget::Exclude => out.push('!'),
    }
    let flags = [
        (pp.nocanon, "nocanon"),
        (pp.noquery, "noquery"),
        (pp.interpolate, "interpolate"),
    ];
    let any_flag = flags.iter().any(|(on, _)| *on);
    if any_flag {
        for p in &pp.params {
            out.push(' ');
            out.push_str(&inner_word(&format!("{}={}", p.key, p.value)));
        }
        for (_, flag) in flags.iter().filter(|(on, _)| *on) {
            out.push(' ');
            out.push_str(flag);
        }
    } else {
        params(out, &pp.params);
    }
    out.push('\n');
}

impl Config {
    /// Writes the configuration back in Apache syntax.
    ///
    /// Global directives come first, then `ProxyHCExpr` and `ProxyHCTemplate` (Apache needs
    /// them before their use); then, for the main server and then for each `<VirtualHost>`
    /// block (with its settings): the `<Proxy>` blocks with their members and a `ProxySet`
    /// for the balancer parameters not given on a `ProxyPass`, the `ProxyPass`,
    /// `ProxyPassMatch`, `ProxyPassReverse`, `ProxyPassReverseCookieDomain`,
    /// `ProxyPassReverseCookiePath` and `Header` directives, and the `<Location>` blocks
    /// with theirs (the manager handler, the one-argument `ProxyPass` …). Skipped
    /// directives are not written. [`parse`](crate::parse) reads the text back to the same
    /// configuration (see [`Config::without_spans`]) when its lists are in this order (a
    /// server's directives after the main server's, a location's after its server's).
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Some(t) = self.proxy_timeout {
            let _ = writeln!(out, "ProxyTimeout {}", t.as_secs());
        }
        if let Some(n) = self.balancer_growth {
            let _ = writeln!(out, "BalancerGrowth {n}");
        }
        if let Some(b) = self.balancer_persist {
            let _ = writeln!(out, "BalancerPersist {}", on_off(b));
        }
        if let Some(s) = &self.balancer_share {
            out.push_str(&s.render());
        }
        self.render_settings(&mut out, "", &self.server, true);
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
        self.render_server(&mut out, None);
        for (i, v) in self.virtual_hosts.iter().enumerate() {
            out.push_str("<VirtualHost");
            for a in &v.addresses {
                out.push(' ');
                out.push_str(&inner_word(a));
            }
            out.push_str(">\n");
            self.render_settings(&mut out, "    ", &v.settings, false);
            self.render_server(&mut out, Some(i));
            out.push_str("</VirtualHost>\n");
        }
        out
    }

    /// A server's settings; `main`: the process-wide ones too (logs, client limits).
    fn render_settings(&self, out: &mut String, indent: &str, h: &HostSettings, main: bool) {
        if let Some(b) = h.balancer_inherit {
            let _ = writeln!(out, "{indent}BalancerInherit {}", on_off(b));
        }
        if let Some(b) = h.proxy_pass_inherit {
            let _ = writeln!(out, "{indent}ProxyPassInherit {}", on_off(b));
        }
        if let Some(s) = &h.server_name {
            out.push_str(indent);
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
        if !h.server_aliases.is_empty() {
            out.push_str(indent);
            out.push_str("ServerAlias");
            for a in &h.server_aliases {
                out.push(' ');
                out.push_str(&inner_word(a));
            }
            out.push('\n');
        }
        if main {
            crate::logs::render(&self.log_directives, out, |s| word(s).into_owned());
            crate::front::render(&self.front, out);
        }
        if let Some(b) = h.proxy_preserve_host {
            let _ = writeln!(out, "{indent}ProxyPreserveHost {}", on_off(b));
        }
        if let Some(b) = h.proxy_add_headers {
            let _ = writeln!(out, "{indent}ProxyAddHeaders {}", on_off(b));
        }
        if let Some(mode) = h.allow_encoded_slashes {
            let mode = match mode {
                AllowEncodedSlashes::On => "On",
                AllowEncodedSlashes::NoDecode => "NoDecode",
                AllowEncodedSlashes::Off => "Off",
            };
            let _ = writeln!(out, "{indent}AllowEncodedSlashes {mode}");
        }
    }

    /// The balancers and directives of one server (the main one: `None`), then its
    /// `<Location>` blocks.
    fn render_server(&self, out: &mut String, vhost: Option<usize>) {
        let indent = if vhost.is_some() { "    " } else { "" };
        for b in self.balancers.iter().filter(|b| b.context.vhost == vhost) {
            let _ = writeln!(out, "{indent}<Proxy {}>", quoted(&b.name));
            for m in &b.members {
                out.push_str(indent);
                out.push_str("    BalancerMember ");
                out.push_str(&if m.params.is_empty() {
                    word(&m.url)
                } else {
                    inner_word(&m.url)
                });
                params(out, &m.params);
                out.push('\n');
            }
            let own = own_params(self, b, &b.params);
            if !own.is_empty() {
                out.push_str(indent);
                out.push_str("    ProxySet");
                params(out, own);
                out.push('\n');
            }
            let _ = writeln!(out, "{indent}</Proxy>");
        }
        let here = Context {
            vhost,
            location: None,
        };
        self.render_scoped(out, indent, here, None);
        for (i, l) in self.locations.iter().enumerate() {
            if l.vhost != vhost {
                continue;
            }
            let tag = if l.regex { "LocationMatch" } else { "Location" };
            let _ = writeln!(out, "{indent}<{tag} {}>", quoted(&l.path));
            let inner = format!("{indent}    ");
            for m in self
                .manager_locations
                .iter()
                .filter(|m| m.context.location == Some(i))
            {
                let _ = writeln!(out, "{inner}SetHandler balancer-manager");
                for r in &m.requires {
                    let _ = writeln!(out, "{inner}Require {r}");
                }
            }
            let here = Context {
                vhost,
                location: Some(i),
            };
            self.render_scoped(out, &inner, here, Some(l.regex));
            let _ = writeln!(out, "{indent}</{tag}>");
        }
        // Manager locations built without a `LocationConfig` (by hand).
        for l in self
            .manager_locations
            .iter()
            .filter(|m| m.context.location.is_none() && m.context.vhost == vhost)
        {
            let _ = writeln!(out, "{indent}<Location {}>", quoted(&l.path));
            let _ = writeln!(out, "{indent}    SetHandler balancer-manager");
            for r in &l.requires {
                let _ = writeln!(out, "{indent}    Require {r}");
            }
            let _ = writeln!(out, "{indent}</Location>");
        }
    }

    /// The `ProxyPass`, `ProxyPassReverse`, cookie and `Header` lines of one context;
    /// `in_location`: inside a location, whether it is a regular expression.
    fn render_scoped(
        &self,
        out: &mut String,
        indent: &str,
        here: Context,
        in_location: Option<bool>,
    ) {
        for pp in self.proxy_passes.iter().filter(|p| p.context == here) {
            proxy_pass(out, indent, pp, in_location);
        }
        for r in self
            .proxy_pass_reverses
            .iter()
            .filter(|r| r.context == here)
        {
            if in_location.is_some() {
                let _ = writeln!(out, "{indent}ProxyPassReverse {}", word(&r.target));
            } else {
                let _ = writeln!(
                    out,
                    "{indent}ProxyPassReverse {} {}",
                    inner_word(&r.path),
                    word(&r.target)
                );
            }
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
            for r in rewrites.iter().filter(|r| r.context == here) {
                let _ = write!(out, "{indent}{directive} {} ", inner_word(&r.internal));
                if r.interpolate {
                    let _ = write!(out, "{} interpolate", inner_word(&r.public));
                } else {
                    out.push_str(&word(&r.public));
                }
                out.push('\n');
            }
        }
        for h in self.headers.iter().filter(|h| h.context == here) {
            out.push_str(indent);
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
        c.server.ssl_proxy.zero_spans();
        c.balancer_ssl_proxy
            .iter_mut()
            .for_each(|(_, s)| s.zero_spans());
        for t in &mut c.hc_templates {
            t.span = z;
            zero_params(&mut t.params);
        }
        c.hc_exprs.iter_mut().for_each(|e| e.span = z);
        c.headers.iter_mut().for_each(|h| h.span = z);
        c.manager_locations.iter_mut().for_each(|l| l.span = z);
        c.locations.iter_mut().for_each(|l| l.span = z);
        for v in &mut c.virtual_hosts {
            v.span = z;
            if let Some(s) = &mut v.settings.server_name {
                s.span = z;
            }
            v.settings.ssl_proxy.zero_spans();
        }
        c.skipped.iter_mut().for_each(|s| s.span = z);
        if let Some(s) = &mut c.balancer_share {
            s.span = z;
        }
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
