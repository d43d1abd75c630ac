//! The data model: keys under the prefix ([`Key`]) and their values ([`Doc`]): the manager's
//! form fields, form-encoded, plus who and when.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proxy_balancer_core::{MemberUrl, StatusFlags};
use proxy_balancer_manager::edit::{parse_form, Edit, Update};
use proxy_balancer_manager::shared::ChangeRecord;

/// The status flags shared through etcd: those an operator sets (`I`, `N`, `D`, `H`, `R`,
/// `S`). `E` is set by failures only and `C` is a health result: both stay local.
pub(crate) const SHARED_FLAGS: StatusFlags = StatusFlags::IGNORE_ERRORS
    .union(StatusFlags::DRAIN)
    .union(StatusFlags::DISABLED)
    .union(StatusFlags::STOPPED)
    .union(StatusFlags::HOT_STANDBY)
    .union(StatusFlags::HOT_SPARE);

/// The member parameters a member's document may hold (with `w_status_X` for the
/// [`SHARED_FLAGS`]).
const MEMBER_PARAMS: [&str; 10] = [
    "w_lf", "w_ls", "w_wr", "w_rr", "w_hm", "w_hi", "w_hp", "w_hf", "w_hu", "w_he",
];

/// The balancer parameters the balancer's document may hold.
const BALANCER_PARAMS: [&str; 5] = ["b_lbm", "b_tmo", "b_max", "b_sforce", "b_ss"];

/// The fields of a document that say who and when, not what.
const META: [&str; 5] = ["by", "via", "at", "changed", "expires"];

// ===== keys =====

/// What a key under the prefix holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum KeyKind {
    /// `<balancer>/balancer`: the balancer's settings.
    Balancer,
    /// `<balancer>/member/<url>`: a member's operator state (its presence adds the member
    /// where it is not configured).
    Member(String),
    /// `<balancer>/lapse/<url>`: flags that lapse, bound to an etcd lease.
    Lapse(String),
}

/// A key under the prefix, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Key {
    pub(crate) balancer: String,
    pub(crate) kind: KeyKind,
}

impl Key {
    pub(crate) fn balancer(balancer: &str) -> Self {
        Self {
            balancer: balancer.to_owned(),
            kind: KeyKind::Balancer,
        }
    }

    pub(crate) fn member(balancer: &str, url: &str) -> Self {
        Self {
            balancer: balancer.to_owned(),
            kind: KeyKind::Member(url.to_owned()),
        }
    }

    pub(crate) fn lapse(balancer: &str, url: &str) -> Self {
        Self {
            balancer: balancer.to_owned(),
            kind: KeyKind::Lapse(url.to_owned()),
        }
    }

    /// Parses `full` (a key read from etcd) under `prefix`. Member URLs are given in their
    /// canonical form (as the store writes them).
    pub(crate) fn parse(prefix: &str, full: &str) -> Result<Self, String> {
        let rest = full
            .strip_prefix(prefix)
            .ok_or_else(|| format!("not under the prefix {prefix}"))?;
        let (balancer, what) = rest.split_once('/').ok_or_else(|| {
            "expected <balancer>/balancer, <balancer>/member/<url> or <balancer>/lapse/<url>"
                .to_owned()
        })?;
        if balancer.is_empty() {
            return Err("the balancer's name is empty".to_owned());
        }
        let kind = if what == "balancer" {
            KeyKind::Balancer
        } else if let Some(url) = what.strip_prefix("member/") {
            KeyKind::Member(key_url(url)?)
        } else if let Some(url) = what.strip_prefix("lapse/") {
            KeyKind::Lapse(key_url(url)?)
        } else {
            return Err(format!(
                "unknown key kind {what:?}: expected balancer, member/<url> or lapse/<url>"
            ));
        };
        Ok(Self {
            balancer: balancer.to_owned(),
            kind,
        })
    }

    /// The full key under `prefix`.
    pub(crate) fn path(&self, prefix: &str) -> String {
        match &self.kind {
            KeyKind::Balancer => format!("{prefix}{}/balancer", self.balancer),
            KeyKind::Member(url) => format!("{prefix}{}/member/{url}", self.balancer),
            KeyKind::Lapse(url) => format!("{prefix}{}/lapse/{url}", self.balancer),
        }
    }

    /// The member's URL, for a member or lapse key.
    pub(crate) fn url(&self) -> Option<&str> {
        match &self.kind {
            KeyKind::Balancer => None,
            KeyKind::Member(url) | KeyKind::Lapse(url) => Some(url),
        }
    }
}

/// A member URL as the store writes it.
pub(crate) fn canonical_url(url: &str) -> Result<String, String> {
    MemberUrl::new(url)
        .map(|u| u.to_string())
        .map_err(|e| format!("bad member URL {url:?}: {e}"))
}

/// A member URL in a key: exactly as the store writes it, so that one member has one key.
fn key_url(url: &str) -> Result<String, String> {
    let canonical = canonical_url(url)?;
    if canonical != url {
        return Err(format!(
            "write the member's URL as the manager shows it: {canonical}, not {url}"
        ));
    }
    Ok(canonical)
}

// ===== documents =====

/// A key's value: the manager's form fields (`w_lf=2&w_status_D=1`, `b_lbm=bybusyness`) and
/// who/when (`by`, `via`, `at`, `changed`, `expires`), form-encoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Doc {
    /// Parameter name (canonical case: `w_status_D`, `w_lf`) and value, in order.
    pub(crate) fields: Vec<(String, String)>,
    pub(crate) by: Option<String>,
    pub(crate) via: Option<String>,
    /// Unix seconds.
    pub(crate) at: Option<u64>,
    pub(crate) changed: Vec<String>,
    /// Unix seconds.
    pub(crate) expires: Option<u64>,
}

impl Doc {
    /// Reads a value written by this crate or by hand: only the parameters `kind` allows,
    /// each once; the values are checked by [`Doc::edit`].
    pub(crate) fn parse(text: &[u8], kind: &KeyKind) -> Result<Self, String> {
        let form = parse_form(text).map_err(|e| e.to_string())?;
        let mut doc = Self::default();
        for (name, value) in form.iter() {
            let lower = name.to_ascii_lowercase();
            if META.contains(&lower.as_str()) {
                match lower.as_str() {
                    "by" => doc.by = Some(value.to_owned()),
                    "via" => doc.via = Some(value.to_owned()),
                    "at" => doc.at = Some(parse_secs("at", value)?),
                    "expires" => doc.expires = Some(parse_secs("expires", value)?),
                    _ => {
                        doc.changed = value
                            .split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect();
                    }
                }
                continue;
            }
            let canonical = canonical_param(&lower, kind).ok_or_else(|| {
                format!(
                    "`{name}` is not allowed in {}: {}",
                    kind_words(kind),
                    allowed_words(kind)
                )
            })?;
            if doc.fields.iter().any(|(n, _)| *n == canonical) {
                return Err(format!("`{name}` is given twice"));
            }
            doc.fields.push((canonical, value.to_owned()));
        }
        Ok(doc)
    }

    /// The document's fields as an [`Edit`] of member `url` (or of the balancer's settings)
    /// of `balancer`, validated by the manager's own [`Edit::from_form`].
    pub(crate) fn edit(&self, balancer: &str, url: Option<&str>) -> Result<Edit, String> {
        let mut text = String::new();
        push_pair(&mut text, "b", balancer);
        if let Some(url) = url {
            push_pair(&mut text, "w", url);
        }
        for (name, value) in &self.fields {
            push_pair(&mut text, name, value);
        }
        let form = parse_form(text.as_bytes()).map_err(|e| e.to_string())?;
        Edit::from_form(&form).map_err(|e| e.to_string())
    }

    /// The value to write.
    pub(crate) fn encode(&self) -> String {
        let mut text = String::new();
        for (name, value) in &self.fields {
            push_pair(&mut text, name, value);
        }
        if let Some(by) = &self.by {
            push_pair(&mut text, "by", by);
        }
        if let Some(via) = &self.via {
            push_pair(&mut text, "via", via);
        }
        if let Some(at) = self.at {
            push_pair(&mut text, "at", &at.to_string());
        }
        if !self.changed.is_empty() {
            push_pair(&mut text, "changed", &self.changed.join(","));
        }
        if let Some(expires) = self.expires {
            push_pair(&mut text, "expires", &expires.to_string());
        }
        text
    }

    /// Sets `name` to `value`, replacing an earlier value.
    pub(crate) fn set(&mut self, name: &str, value: String) {
        match self.fields.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value,
            None => self.fields.push((name.to_owned(), value)),
        }
    }

    /// Removes `name`.
    pub(crate) fn remove(&mut self, name: &str) {
        self.fields.retain(|(n, _)| n != name);
    }

    /// Whether the document sets nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Merges the member part (parameters, health-check parameters) of `edit` into this
    /// document; returns the names of what it sets.
    pub(crate) fn merge_member(&mut self, edit: &Edit) -> Vec<&'static str> {
        let mut names = Vec::new();
        let m = &edit.member;
        if let Some(lf) = m.load_factor {
            self.set("w_lf", lf.to_string());
            names.push("loadfactor");
        }
        if let Some(ls) = m.lb_set {
            self.set("w_ls", ls.to_string());
            names.push("lbset");
        }
        if let Some(route) = &m.route {
            self.set("w_wr", update_text(route));
            names.push("route");
        }
        if let Some(redirect) = &m.redirect {
            self.set("w_rr", update_text(redirect));
            names.push("redirect");
        }
        let h = &edit.health;
        if let Some(method) = h.method {
            self.set("w_hm", method.to_string());
            names.push("hcmethod");
        }
        if let Some(interval) = h.interval {
            self.set("w_hi", interval.as_millis().to_string());
            names.push("hcinterval");
        }
        if let Some(n) = h.passes {
            self.set("w_hp", n.to_string());
            names.push("hcpasses");
        }
        if let Some(n) = h.fails {
            self.set("w_hf", n.to_string());
            names.push("hcfails");
        }
        if let Some(uri) = &h.uri {
            self.set("w_hu", uri.to_string());
            names.push("hcuri");
        }
        if let Some(expr) = &h.expr {
            self.set("w_he", update_text(expr));
            names.push("hcexpr");
        }
        names
    }

    /// Merges flags set and cleared (only the [`SHARED_FLAGS`]); returns whether any.
    pub(crate) fn merge_flags(&mut self, set: StatusFlags, clear: StatusFlags) -> bool {
        let mut any = false;
        for flag in SHARED_FLAGS.iter() {
            let name = flag_param(flag);
            if set.contains(flag) {
                self.set(&name, "1".to_owned());
                any = true;
            } else if clear.contains(flag) {
                self.set(&name, "0".to_owned());
                any = true;
            }
        }
        any
    }

    /// Removes the flags in `flags` (a later edit without a TTL overrides a lapsing one).
    pub(crate) fn remove_flags(&mut self, flags: StatusFlags) -> bool {
        let before = self.fields.len();
        for flag in flags.iter() {
            self.remove(&flag_param(flag));
        }
        self.fields.len() != before
    }

    /// Merges the balancer part of `edit`; returns the names of what it sets.
    pub(crate) fn merge_balancer(&mut self, edit: &Edit) -> Vec<&'static str> {
        let mut names = Vec::new();
        let b = &edit.balancer;
        if let Some(method) = &b.lb_method {
            self.set("b_lbm", method.to_string());
            names.push("lbmethod");
        }
        if let Some(timeout) = b.timeout {
            self.set("b_tmo", timeout.as_secs().to_string());
            names.push("timeout");
        }
        if let Some(n) = b.max_attempts {
            self.set("b_max", n.to_string());
            names.push("maxattempts");
        }
        if let Some(no_failover) = b.no_failover {
            self.set("b_sforce", if no_failover { "1" } else { "0" }.to_owned());
            names.push("nofailover");
        }
        if let Some(ss) = &b.sticky_session {
            self.set("b_ss", update_text(ss));
            names.push("stickysession");
        }
        names
    }

    /// Who and when, as the manager shows it. `applied_at` stands in for a value written
    /// without `at`.
    pub(crate) fn record(&self, revision: i64, applied_at: SystemTime) -> ChangeRecord {
        let by = match (&self.by, &self.via) {
            (Some(by), Some(via)) => format!("{by} via {via}"),
            (Some(by), None) => by.clone(),
            (None, Some(via)) => format!("via {via}"),
            (None, None) => "etcd".to_owned(),
        };
        let at = self.at.map_or(applied_at, from_secs);
        let mut record = ChangeRecord::new(by, at, u64::try_from(revision).unwrap_or(0));
        record.changed.clone_from(&self.changed);
        record.expires = self.expires.map(from_secs);
        record
    }
}

/// `w_status_X` for flag `X`.
pub(crate) fn flag_param(flag: StatusFlags) -> String {
    format!("w_status_{flag}")
}

fn update_text<T: std::fmt::Display>(update: &Update<T>) -> String {
    match update {
        Update::Set(v) => v.to_string(),
        // `Update` is non-exhaustive: anything else clears, as `Clear` does.
        _ => String::new(),
    }
}

/// The canonical name of `lower` if a document of `kind` may hold it.
fn canonical_param(lower: &str, kind: &KeyKind) -> Option<String> {
    if let Some(letter) = lower.strip_prefix("w_status_") {
        if matches!(kind, KeyKind::Balancer) {
            return None;
        }
        let mut chars = letter.chars();
        let flag = match (chars.next(), chars.next()) {
            (Some(c), None) => StatusFlags::from_letter(c)?,
            _ => return None,
        };
        return SHARED_FLAGS.contains(flag).then(|| flag_param(flag));
    }
    let allowed: &[&str] = match kind {
        KeyKind::Balancer => &BALANCER_PARAMS,
        KeyKind::Member(_) => &MEMBER_PARAMS,
        KeyKind::Lapse(_) => &[],
    };
    allowed.contains(&lower).then(|| lower.to_owned())
}

fn kind_words(kind: &KeyKind) -> &'static str {
    match kind {
        KeyKind::Balancer => "a balancer's settings",
        KeyKind::Member(_) => "a member's state",
        KeyKind::Lapse(_) => "a member's lapsing flags",
    }
}

fn allowed_words(kind: &KeyKind) -> &'static str {
    match kind {
        KeyKind::Balancer => "b_lbm, b_tmo, b_max, b_sforce, b_ss (and by, at)",
        KeyKind::Member(_) => {
            "w_lf, w_ls, w_wr, w_rr, w_hm, w_hi, w_hp, w_hf, w_hu, w_he, \
             w_status_I|N|D|H|R|S (and by, at)"
        }
        KeyKind::Lapse(_) => "w_status_I|N|D|H|R|S (and by, at, expires)",
    }
}

/// The last second of the year 9999: a later time is a mistake, and would overflow a
/// `SystemTime` on some platforms.
const MAX_SECS: u64 = 253_402_300_799;

fn parse_secs(name: &str, value: &str) -> Result<u64, String> {
    value
        .trim()
        .parse()
        .ok()
        .filter(|s| *s <= MAX_SECS)
        .ok_or_else(|| {
            format!(
                "`{name}` must be a Unix time in whole seconds (up to year 9999), not {value:?}"
            )
        })
}

/// Unix seconds now.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn from_secs(secs: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_secs(secs.min(MAX_SECS)))
        .unwrap_or(UNIX_EPOCH)
}

/// Appends `name=value`, percent-encoded, to a form.
fn push_pair(text: &mut String, name: &str, value: &str) {
    if !text.is_empty() {
        text.push('&');
    }
    encode_into(text, name);
    text.push('=');
    encode_into(text, value);
}

fn encode_into(text: &mut String, s: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':' | b'/' | b',')
        {
            text.push(char::from(b));
        } else {
            let _ = write!(text, "%{b:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_print_back() {
        let p = "/pb/";
        let key = Key::parse(p, "/pb/app/member/http://10.0.0.5:8080").expect("a member key");
        assert_eq!(key, Key::member("app", "http://10.0.0.5:8080"));
        assert_eq!(key.path(p), "/pb/app/member/http://10.0.0.5:8080");
        assert_eq!(
            Key::parse(p, "/pb/app/balancer").expect("balancer"),
            Key::balancer("app")
        );
        assert_eq!(
            Key::parse(p, "/pb/app/lapse/http://a:1").expect("lapse"),
            Key::lapse("app", "http://a:1")
        );
        for bad in [
            "/pb/app",
            "/pb//balancer",
            "/pb/app/other",
            "/pb/app/member/not a url",
            "/pb/app/member/HTTP://A:1",
            "/other/app/balancer",
        ] {
            assert!(Key::parse(p, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_document_round_trips_and_becomes_the_managers_edit() {
        let kind = KeyKind::Member("http://a:1".to_owned());
        let doc = Doc::parse(
            b"W_LF=2.5&w_status_d=1&w_wr=node%2D1&by=ops%40host&at=1700000000&changed=status",
            &kind,
        )
        .expect("valid");
        assert_eq!(doc.by.as_deref(), Some("ops@host"));
        assert_eq!(doc.at, Some(1_700_000_000));
        let again = Doc::parse(doc.encode().as_bytes(), &kind).expect("its own encoding");
        assert_eq!(again, doc);
        let edit = doc.edit("app", Some("http://a:1")).expect("valid values");
        assert_eq!(edit.member.set_flags, StatusFlags::DISABLED);
        assert_eq!(
            edit.member.load_factor.map(|lf| lf.to_string()).as_deref(),
            Some("2.5")
        );
        // The crate docs' example of a probed member.
        let probed = Doc::parse(b"w_hm=GET&w_hu=/health&w_hi=5000", &kind)
            .and_then(|d| d.edit("app", Some("http://a:1")))
            .expect("the docs' example");
        assert_eq!(probed.health.interval, Some(Duration::from_secs(5)));
        assert_eq!(
            probed.health.method.map(|m| m.to_string()).as_deref(),
            Some("GET")
        );
    }

    #[test]
    fn bad_documents_are_refused_with_the_reason() {
        let member = KeyKind::Member("http://a:1".to_owned());
        for (text, why) in [
            (&b"w_status_C=1"[..], "not allowed"),
            (b"w_status_E=1", "not allowed"),
            (b"b_lbm=byrequests", "not allowed"),
            (b"w=http://other", "not allowed"),
            (b"nonce=x", "not allowed"),
            (b"w_lf=1&w_lf=2", "twice"),
            (b"at=yesterday", "Unix time"),
            (b"at=18446744073709551615", "Unix time"),
            (b"at=253402300800", "Unix time"),
            (b"w_lf=%zz", "malformed"),
        ] {
            let err = Doc::parse(text, &member).expect_err("refused");
            assert!(err.contains(why), "{err}");
        }
        let doc = Doc::parse(b"w_lf=1000", &member).expect("well-formed");
        let err = doc
            .edit("app", Some("http://a:1"))
            .expect_err("out of range");
        assert!(err.contains("w_lf"), "{err}");
        let lapse = KeyKind::Lapse("http://a:1".to_owned());
        assert!(Doc::parse(b"w_lf=2", &lapse).is_err());
        assert!(Doc::parse(b"w_status_D=1&expires=5", &lapse).is_ok());
    }

    #[test]
    fn an_edit_merges_into_a_document() {
        let form = parse_form(
            b"b=app&w=http://a:1&w_lf=3&w_ls=1&w_wr=&w_status_D=1&w_status_H=0&w_status_C=1&w_hi=1500",
        )
        .expect("form");
        let edit = Edit::from_form(&form).expect("edit");
        let mut doc = Doc::parse(b"w_lf=2&w_rr=x", &KeyKind::Member(String::new())).expect("doc");
        let names = doc.merge_member(&edit);
        assert_eq!(names, ["loadfactor", "lbset", "route", "hcinterval"]);
        assert!(doc.merge_flags(edit.member.set_flags, edit.member.clear_flags));
        assert_eq!(
            doc.encode(),
            "w_lf=3&w_rr=x&w_ls=1&w_wr=&w_hi=1500&w_status_D=1&w_status_H=0"
        );

        let form =
            parse_form(b"b=app&b_lbm=bybusyness&b_tmo=5&b_max=2&b_sforce=1&b_ss=JSESSIONID|js")
                .expect("form");
        let edit = Edit::from_form(&form).expect("edit");
        let mut doc = Doc::default();
        doc.merge_balancer(&edit);
        let back = Doc::parse(doc.encode().as_bytes(), &KeyKind::Balancer)
            .expect("parses")
            .edit("app", None)
            .expect("valid");
        assert_eq!(back.balancer, edit.balancer);
        // The lbmethods beyond Apache travel as the form gives them.
        for method in ["hash", "p2c", "p2c-ewma"] {
            let form = parse_form(format!("b=app&b_lbm={method}").as_bytes()).expect("form");
            let edit = Edit::from_form(&form).expect("edit");
            let mut doc = Doc::default();
            doc.merge_balancer(&edit);
            let back = Doc::parse(doc.encode().as_bytes(), &KeyKind::Balancer)
                .expect("parses")
                .edit("app", None)
                .expect("valid");
            assert_eq!(back.balancer, edit.balancer, "{method}");
        }
    }

    #[test]
    fn the_record_says_who_through_which_instance_and_when() {
        let doc = Doc {
            by: Some("ops".to_owned()),
            via: Some("a".to_owned()),
            at: Some(10),
            expires: Some(20),
            changed: vec!["status".to_owned()],
            ..Doc::default()
        };
        let r = doc.record(7, SystemTime::now());
        assert_eq!(r.by, "ops via a");
        assert_eq!(r.at, from_secs(10));
        assert_eq!(r.expires, Some(from_secs(20)));
        assert_eq!(r.revision, 7);
        assert_eq!(r.changed, ["status"]);
        let by_hand = Doc::default().record(3, UNIX_EPOCH);
        assert_eq!((by_hand.by.as_str(), by_hand.at), ("etcd", UNIX_EPOCH));
    }

    proptest::proptest! {
        /// Any bytes, as a value of any kind of key: refused with a reason or taken, never
        /// a panic; what is taken becomes the manager's edit or is refused by it.
        #[test]
        fn any_value_is_refused_or_taken_never_a_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            kind in 0..3u8,
        ) {
            let kind = match kind {
                0 => KeyKind::Balancer,
                1 => KeyKind::Member("http://a:1".to_owned()),
                _ => KeyKind::Lapse("http://a:1".to_owned()),
            };
            if let Ok(doc) = Doc::parse(&bytes, &kind) {
                let url = (kind != KeyKind::Balancer).then_some("http://a:1");
                let _ = doc.edit("app", url);
                let again = Doc::parse(doc.encode().as_bytes(), &kind);
                proptest::prop_assert_eq!(again, Ok(doc));
            }
        }

        /// Known fields with any text: the same.
        #[test]
        fn known_fields_with_any_values_never_panic(
            fields in proptest::collection::vec(
                (proptest::sample::select(vec![
                    "w_lf", "w_ls", "w_wr", "w_rr", "w_hm", "w_hi", "w_hp", "w_hf", "w_hu",
                    "w_he", "w_status_D", "w_status_N", "at", "expires", "by",
                ]), ".{0,12}"),
                0..6,
            ),
        ) {
            let mut text = String::new();
            for (name, value) in &fields {
                push_pair(&mut text, name, value);
            }
            let kind = KeyKind::Member("http://a:1".to_owned());
            if let Ok(doc) = Doc::parse(text.as_bytes(), &kind) {
                let _ = doc.edit("app", Some("http://a:1"));
                let _ = doc.record(1, SystemTime::now());
            }
        }
    }
}
