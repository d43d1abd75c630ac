//! Validating: every change parameter of a [`Form`] read into a typed [`Edit`].

use std::time::Duration;

use proxy_balancer_core::{
    HcExprName, HcParams, HcUri, LbMethodKind, LbSet, LoadFactor, MemberUrl, Route, StatusFlags,
    StickySession,
};

use super::{BalancerEdit, Edit, EditError, Form, HcMethod, HealthEdit, MemberEdit, Update};

/// The shortest health-check interval the manager accepts (`w_hi`), as in Apache
/// (`HCHECK_WATHCHDOG_INTERVAL`, 100 ms).
const MIN_HC_INTERVAL: Duration = HcParams::MIN_INTERVAL;

/// The longest `b_tmo` the manager accepts, in seconds, as in Apache.
const MAX_BALANCER_TIMEOUT: u32 = 7200;

/// The highest `b_max` the manager accepts, as in Apache.
const MAX_MAX_ATTEMPTS: u32 = 99;

/// The longest `w_ttl` the manager accepts, in seconds: a week. A drain for a maintenance
/// window is hours; a longer one is a decision to take without a timer (an edit without
/// `w_ttl`), and a typo such as an extra digit is caught.
pub(crate) const MAX_TTL_SECS: u32 = 7 * 24 * 3600;

// ===== impl Edit =====

impl Edit {
    /// Reads and validates every change parameter of `form`.
    ///
    /// Values: `w_lf` 1 to 100 with decimals; `w_ls` 0 to 99; `w_wr`, `w_rr` a route, empty
    /// clears; `w_status_I|N|D|H|R|S|C` `1` sets, `0` or empty clears; `w_hm` a method name;
    /// `w_hi` milliseconds, at least 100; `w_hp`, `w_hf` at least 1; `w_hu`, `w_he` text,
    /// empty clears; `b_lbm` an lbmethod; `b_tmo` 0 to 7200; `b_max` 0 to 99; `b_sforce` 0
    /// or 1; `b_ss` a sticky session name, `-` or empty clears; `b_wyes=1` adds the member
    /// `b_nwrkr` (without `b_wyes=1`, `b_nwrkr` is ignored: it is the "Add New Worker" text
    /// box, sent with every balancer form); `w_ttl` (ours) whole seconds, 1 to 604800 (a
    /// week), with at least one `w_status_X=1`: how long the flags it sets hold (see
    /// [`Edit::ttl`]).
    ///
    /// ```
    /// use proxy_balancer_manager::edit::{parse_form, Edit, EditError};
    ///
    /// let edit = Edit::from_form(&parse_form(b"b=c&w=http://a&w_ls=2&w_status_H=1")?)?;
    /// assert_eq!(edit.member.lb_set.map(|s| s.get()), Some(2));
    ///
    /// let err = Edit::from_form(&parse_form(b"b=c&w_bogus=1&x=2")?).unwrap_err();
    /// assert_eq!(err.to_string(), "unknown parameters: w_bogus, x");
    /// # Ok::<(), EditError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`EditError::UnknownParameters`] naming every unknown parameter (checked first),
    /// [`EditError::Duplicate`], [`EditError::InvalidValue`] naming the parameter and value,
    /// [`EditError::Missing`] for a change without the `b` (or, for member changes, `w`) it
    /// applies to.
    pub fn from_form(form: &Form) -> Result<Self, EditError> {
        let unknown: Vec<String> = form
            .iter()
            .filter(|(k, _)| !is_known(k))
            .map(|(k, _)| k.to_owned())
            .collect();
        if !unknown.is_empty() {
            return Err(EditError::UnknownParameters { params: unknown });
        }
        for (i, (k, _)) in form.pairs.iter().enumerate() {
            if form.pairs[..i]
                .iter()
                .any(|(seen, _)| seen.eq_ignore_ascii_case(k))
            {
                return Err(EditError::Duplicate { param: k.clone() });
            }
        }

        let mut edit = Self {
            balancer_name: form.b().map(str::to_owned),
            member_url: form.w().map(str::to_owned),
            ..Self::default()
        };
        let mut add_requested = false;
        for (key, value) in form.iter() {
            let lower = key.to_ascii_lowercase();
            edit.read(&lower, value, &mut add_requested)?;
        }
        if matches!(edit.health.method, Some(HcMethod::Tcp | HcMethod::None)) {
            edit.health.expr = Some(Update::Clear);
        }
        if let Some(value) = form.get("w_ttl") {
            edit.ttl = Some(read_ttl(value, &edit)?);
        }
        if add_requested {
            let url = form.get("b_nwrkr").unwrap_or("");
            let url = MemberUrl::new(url).map_err(|e| EditError::from_param("b_nwrkr", url, e))?;
            edit.add_member = Some(url);
        }

        let first_change = |prefix: &str| {
            form.iter()
                .map(|(k, _)| k)
                .find(|k| k.to_ascii_lowercase().starts_with(prefix))
                .map(str::to_owned)
        };
        if (!edit.member.is_empty() || !edit.health.is_empty()) && edit.member_url.is_none() {
            return Err(EditError::Missing {
                param: "w",
                needed_by: first_change("w_").unwrap_or_default(),
            });
        }
        if !edit.is_empty() && edit.balancer_name.is_none() {
            let needed_by = first_change("w_")
                .or_else(|| first_change("b_"))
                .unwrap_or_default();
            return Err(EditError::Missing {
                param: "b",
                needed_by,
            });
        }
        Ok(edit)
    }

    /// Reads one parameter (`key` lower-cased) into `self`.
    fn read(&mut self, key: &str, value: &str, add: &mut bool) -> Result<(), EditError> {
        let param: &'static str = match KNOWN.iter().find(|k| **k == key) {
            Some(k) => k,
            None => {
                if let Some(letter) = key.strip_prefix("w_status_") {
                    return self.read_flag(key, letter, value);
                }
                return Ok(());
            }
        };
        match param {
            "w_lf" | "w_ls" | "w_wr" | "w_rr" => self.member.read(param, value),
            "w_hm" | "w_hi" | "w_hp" | "w_hf" | "w_hu" | "w_he" => self.health.read(param, value),
            "b_lbm" | "b_tmo" | "b_max" | "b_sforce" | "b_ss" => self.balancer.read(param, value),
            "b_wyes" => {
                *add = match value.trim() {
                    "1" => true,
                    "0" | "" => false,
                    _ => return Err(EditError::invalid(param, value, "must be 1 or 0")),
                };
                Ok(())
            }
            // b, w, nonce, xml, b_nwrkr (read with b_wyes) and w_ttl (read once the flags
            // are known).
            _ => Ok(()),
        }
    }

    fn read_flag(&mut self, key: &str, letter: &str, value: &str) -> Result<(), EditError> {
        let flag = letter
            .chars()
            .next()
            .and_then(StatusFlags::from_letter)
            .filter(|_| letter.len() == 1);
        let Some(flag) = flag else {
            return Err(EditError::UnknownParameters {
                params: vec![key.to_owned()],
            });
        };
        // The canonical name, `w_status_D`, whatever the case given.
        let param = format!("w_status_{}", letter.to_ascii_uppercase());
        if flag == StatusFlags::IN_ERROR {
            return Err(EditError::invalid(
                param,
                value,
                "the error flag E is set by failures only and cannot be changed",
            ));
        }
        match value.trim() {
            "1" => self.member.set_flags |= flag,
            "0" | "" => self.member.clear_flags |= flag,
            _ => {
                return Err(EditError::invalid(
                    param,
                    value,
                    "must be 1 (set) or 0 (clear)",
                ))
            }
        }
        Ok(())
    }

    /// Checks that a `w_he` condition name is one of those defined (`known`): the core
    /// checks only a name's form, the conditions are held by the health probes. The
    /// [`BalancerManager`](crate::BalancerManager) calls this before [`Edit::apply`] with
    /// the names given to
    /// [`BalancerManagerBuilder::hc_expr_names`](crate::BalancerManagerBuilder::hc_expr_names).
    ///
    /// ```
    /// use proxy_balancer_manager::edit::{parse_form, Edit};
    ///
    /// let edit = Edit::from_form(&parse_form(b"b=c&w=http://a&w_he=in_service")?)?;
    /// assert!(edit.check_hc_exprs(|name| name == "in_service").is_ok());
    /// let err = edit.check_hc_exprs(|_| false).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "invalid value \"in_service\" for `w_he`: unknown health check condition expr"
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`EditError::InvalidValue`] naming `w_he` for an unknown name.
    pub fn check_hc_exprs(&self, known: impl Fn(&str) -> bool) -> Result<(), EditError> {
        match &self.health.expr {
            Some(Update::Set(name)) if !known(name.as_str()) => Err(EditError::invalid(
                "w_he",
                name.as_str(),
                "unknown health check condition expr",
            )),
            _ => Ok(()),
        }
    }
}

// ===== impl MemberEdit =====

impl MemberEdit {
    /// Reads one of `w_lf`, `w_ls`, `w_wr`, `w_rr`.
    fn read(&mut self, param: &'static str, value: &str) -> Result<(), EditError> {
        let t = value.trim();
        match param {
            "w_lf" => {
                let lf = t
                    .parse::<LoadFactor>()
                    .map_err(|e| EditError::from_param(param, value, e))?;
                self.load_factor = Some(lf);
            }
            "w_ls" => {
                let ls = t
                    .parse::<LbSet>()
                    .map_err(|e| EditError::from_param(param, value, e))?;
                self.lb_set = Some(ls);
            }
            "w_wr" | "w_rr" => {
                let update = if value.is_empty() {
                    Update::Clear
                } else {
                    Update::Set(
                        Route::new(value).map_err(|e| EditError::from_param(param, value, e))?,
                    )
                };
                if param == "w_wr" {
                    self.route = Some(update);
                } else {
                    self.redirect = Some(update);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

// ===== impl HealthEdit =====

impl HealthEdit {
    /// Reads one of `w_hm`, `w_hi`, `w_hp`, `w_hf`, `w_hu`, `w_he`.
    fn read(&mut self, param: &'static str, value: &str) -> Result<(), EditError> {
        match param {
            "w_hm" => {
                let method: HcMethod = value.parse().map_err(|_| {
                    EditError::invalid(param, value, format!("expected one of {}", HcMethod::NAMES))
                })?;
                self.method = Some(method);
            }
            "w_hi" => {
                let ms = parse_number(param, value, "must be a whole number of milliseconds")?;
                let interval = Duration::from_millis(u64::from(ms));
                if interval < MIN_HC_INTERVAL {
                    return Err(EditError::invalid(param, value, "must be at least 100 ms"));
                }
                self.interval = Some(interval);
            }
            "w_hp" | "w_hf" => {
                let n = parse_number(param, value, "must be a whole number, at least 1")?;
                if n == 0 {
                    return Err(EditError::invalid(param, value, "must be at least 1"));
                }
                if param == "w_hp" {
                    self.passes = Some(n);
                } else {
                    self.fails = Some(n);
                }
            }
            "w_hu" => {
                let uri = HcUri::new(value).map_err(|e| EditError::from_param(param, value, e))?;
                self.uri = Some(uri);
            }
            "w_he" => {
                let update = if value.is_empty() {
                    Update::Clear
                } else {
                    Update::Set(
                        HcExprName::new(value)
                            .map_err(|e| EditError::from_param(param, value, e))?,
                    )
                };
                self.expr = Some(update);
            }
            _ => {}
        }
        Ok(())
    }
}

// ===== impl BalancerEdit =====

impl BalancerEdit {
    /// Reads one of `b_lbm`, `b_tmo`, `b_max`, `b_sforce`, `b_ss`.
    fn read(&mut self, param: &'static str, value: &str) -> Result<(), EditError> {
        let t = value.trim();
        match param {
            "b_lbm" => {
                let method = t
                    .parse::<LbMethodKind>()
                    .map_err(|e| EditError::from_param(param, value, e))?;
                self.lb_method = Some(method);
            }
            "b_tmo" => {
                let s = parse_number(param, value, "must be a whole number of seconds")?;
                if s > MAX_BALANCER_TIMEOUT {
                    return Err(EditError::invalid(
                        param,
                        value,
                        "must be between 0 and 7200",
                    ));
                }
                self.timeout = Some(Duration::from_secs(u64::from(s)));
            }
            "b_max" => {
                let n = parse_number(param, value, "must be a whole number from 0 to 99")?;
                if n > MAX_MAX_ATTEMPTS {
                    return Err(EditError::invalid(param, value, "must be between 0 and 99"));
                }
                self.max_attempts = Some(n);
            }
            "b_sforce" => {
                self.no_failover = Some(match t {
                    "1" => true,
                    "0" => false,
                    _ => return Err(EditError::invalid(param, value, "must be 0 or 1")),
                });
            }
            "b_ss" => {
                let update = if t.is_empty() || t == "-" {
                    Update::Clear
                } else {
                    Update::Set(
                        t.parse::<StickySession>()
                            .map_err(|e| EditError::from_param(param, value, e))?,
                    )
                };
                self.sticky_session = Some(update);
            }
            _ => {}
        }
        Ok(())
    }
}

/// The manager's parameter names, lower-case (`w_status_X` is checked apart).
const KNOWN: [&str; 23] = [
    "b", "w", "nonce", "xml", "refresh", "w_lf", "w_ls", "w_wr", "w_rr", "w_hm", "w_hi", "w_hp",
    "w_hf", "w_hu", "w_he", "b_lbm", "b_tmo", "b_max", "b_sforce", "b_ss", "b_wyes", "b_nwrkr",
    "w_ttl",
];

/// `w_ttl`: whole seconds, 1 to [`MAX_TTL_SECS`], on an edit that sets flags (the flags it
/// sets are what lapses).
fn read_ttl(value: &str, edit: &Edit) -> Result<Duration, EditError> {
    let secs = parse_number(
        "w_ttl",
        value,
        "must be a whole number of seconds, from 1 to 604800 (a week)",
    )?;
    if secs == 0 || secs > MAX_TTL_SECS {
        return Err(EditError::invalid(
            "w_ttl",
            value,
            "must be from 1 to 604800 seconds (a week)",
        ));
    }
    if edit.member.set_flags.is_empty() {
        return Err(EditError::invalid(
            "w_ttl",
            value,
            "w_ttl is how long the flags this edit sets hold: give it with a w_status_X=1",
        ));
    }
    Ok(Duration::from_secs(u64::from(secs)))
}

fn is_known(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    KNOWN.contains(&lower.as_str())
        || lower.strip_prefix("w_status_").is_some_and(|l| {
            let mut chars = l.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => StatusFlags::from_letter(c).is_some(),
                _ => false,
            }
        })
}

fn parse_number(param: &'static str, value: &str, reason: &'static str) -> Result<u32, EditError> {
    let t = value.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EditError::invalid(param, value, reason));
    }
    // All digits: too long a number is out of every range here.
    Ok(t.parse::<u32>().unwrap_or(u32::MAX))
}
