//! `BalancerPersist`: the manager's edits saved to a file and applied again at start.
//!
//! The file holds one manager form per line (the same query API a POST uses), so loading
//! goes through the same validation as an edit: balancer settings, members added through
//! the manager, then each member's settings and flags. It is written to a temporary file
//! beside it and renamed over it, so a crash never leaves half a file.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use proxy_balancer_core::{BalancerSnapshot, HcParams, StatusFlags};

use crate::edit::{parse_form, Edit, GrowthSlots};

/// Percent-encodes a form value (everything but unreserved characters).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The lines that bring a balancer back to its current state.
pub(crate) fn lines(snapshot: &BalancerSnapshot, slots: GrowthSlots, out: &mut String) {
    let params = snapshot.params();
    let name = params
        .name
        .strip_prefix("balancer://")
        .unwrap_or(&params.name);
    let b = encode(name);
    let _ = write!(
        out,
        "b={b}&b_lbm={}&b_tmo={}&b_sforce={}&b_ss={}",
        encode(params.lb_method.name()),
        params.timeout.as_secs(),
        u8::from(params.no_failover),
        params
            .sticky_session
            .as_ref()
            .map_or_else(|| "-".to_owned(), |s| encode(&s.to_string())),
    );
    if let Some(max) = params.max_attempts {
        let _ = write!(out, "&b_max={max}");
    }
    out.push('\n');
    let configured = snapshot.members().len() - slots.used(snapshot);
    for member in snapshot.members().iter().skip(configured) {
        let _ = writeln!(out, "b={b}&b_wyes=1&b_nwrkr={}", encode(member.url()));
    }
    for member in snapshot.members() {
        let p = member.params();
        let flags = member.flags();
        let _ = write!(
            out,
            "b={b}&w={}&w_lf={}&w_ls={}&w_wr={}&w_rr={}",
            encode(member.url()),
            encode(&p.load_factor.to_string()),
            p.lb_set.get(),
            p.route
                .as_ref()
                .map_or(String::new(), |r| encode(r.as_str())),
            p.redirect
                .as_ref()
                .map_or(String::new(), |r| encode(r.as_str())),
        );
        // The health-check parameters, in the ranges the manager's fields accept (a
        // configured `hcpasses=0` acts as 1, and is saved so).
        let hc = &p.hc;
        let _ = write!(
            out,
            "&w_hm={}&w_hi={}&w_hp={}&w_hf={}&w_hu={}&w_he={}",
            hc.method.as_str(),
            hc.interval
                .max(HcParams::MIN_INTERVAL)
                .as_millis()
                .min(u128::from(u32::MAX)),
            hc.passes_needed(),
            hc.fails_needed(),
            encode(hc.uri.as_str()),
            hc.expr
                .as_ref()
                .map_or(String::new(), |e| encode(e.as_str())),
        );
        for (letter, flag) in [
            ('I', StatusFlags::IGNORE_ERRORS),
            ('N', StatusFlags::DRAIN),
            ('D', StatusFlags::DISABLED),
            ('H', StatusFlags::HOT_STANDBY),
            ('R', StatusFlags::HOT_SPARE),
            ('S', StatusFlags::STOPPED),
            ('C', StatusFlags::HC_FAILED),
        ] {
            let _ = write!(out, "&w_status_{letter}={}", u8::from(flags.contains(flag)));
        }
        out.push('\n');
    }
}

/// Writes `text` to `path` atomically: a temporary file beside it, then a rename.
pub(crate) fn save(path: &Path, text: &str) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Applies the saved lines to the balancers; returns what could not be applied.
pub(crate) fn load(
    path: &Path,
    apply: &mut dyn FnMut(&str, &Edit) -> Result<(), String>,
) -> Vec<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => return vec![format!("cannot read {}: {e}", path.display())],
    };
    let mut problems = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let result = parse_form(line.as_bytes())
            .map_err(|e| e.to_string())
            .and_then(|form| {
                let b = form.b().unwrap_or("").to_owned();
                let edit = Edit::from_form(&form).map_err(|e| e.to_string())?;
                apply(&b, &edit)
            });
        if let Err(e) = result {
            problems.push(format!("{}:{}: {e}", path.display(), n + 1));
        }
    }
    problems
}
