//! The selection beyond Apache as every document shows it: the new balancer parameters that
//! are set (hash key and ring, outlier ejection, panic threshold, retry budget, EWMA decay)
//! with their live state, and per member its slow start, RTT estimate and ejections.
//!
//! Each fact has one name per format (the XML element and HTML column title, the JSON key)
//! and one value, so the page, XML and JSON say the same thing.

use std::fmt::Write as _;
use std::time::Duration;

use proxy_balancer_core::{LbMethodKind, Member, RetryBudgetParams};

use super::{json_str, BalancerView};

/// A fact's value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    /// A whole number.
    Count(u64),
    /// A number with decimals (shares, milliseconds of an RTT).
    Decimal(f64),
    /// A duration, shown in milliseconds.
    Millis(Duration),
    /// On or Off (`true`/`false` in JSON).
    Flag(bool),
    /// Text.
    Text(String),
}

impl Value {
    /// As shown on the page and in the XML.
    pub(crate) fn text(&self) -> String {
        match self {
            Self::Count(n) => n.to_string(),
            Self::Decimal(x) => format!("{x:.3}"),
            Self::Millis(d) => d.as_millis().to_string(),
            Self::Flag(b) => super::on_off(*b).to_owned(),
            Self::Text(s) => s.clone(),
        }
    }

    /// As a JSON value.
    pub(crate) fn json(&self) -> String {
        match self {
            Self::Flag(b) => b.to_string(),
            Self::Text(s) => json_str(s),
            other => other.text(),
        }
    }
}

/// One fact: its XML element (also the page's column title), its JSON key and its value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Fact {
    pub(crate) xml: &'static str,
    pub(crate) json: &'static str,
    pub(crate) value: Value,
}

fn fact(xml: &'static str, json: &'static str, value: Value) -> Fact {
    Fact { xml, json, value }
}

/// The balancer's facts, in a fixed order, only those that are set: `hashkey` and
/// `hashring` (lbmethod=hash), `ewmadecay` (p2c-ewma), the `eject*` parameters and
/// `ejected` (when ejection is on), `panic`, `inpanic` and `panicpicks` (with a panic
/// threshold), the retry budget's parameters when they are not the default (`retrybudget`,
/// `retrybudgetmin`, `retrybudgetwindow`; `retrybudget` alone, `Off`, when there is none)
/// and, when the view has the budget, `retriesallowed` and `retriesrefused`.
pub(crate) fn balancer_facts(b: &BalancerView<'_>) -> Vec<Fact> {
    let p = b.snapshot.params();
    let mut facts = Vec::new();
    match p.lb_method {
        LbMethodKind::Hash => {
            facts.push(fact(
                "hashkey",
                "hash_key",
                Value::Text(p.hash_key.to_string()),
            ));
            facts.push(fact(
                "hashring",
                "hash_ring",
                Value::Text(p.hash_ring.to_string()),
            ));
        }
        LbMethodKind::P2cEwma => {
            facts.push(fact(
                "ewmadecay",
                "ewma_decay_ms",
                Value::Millis(p.ewma_decay),
            ));
        }
        _ => {}
    }
    let o = &p.outlier;
    if o.is_enabled() {
        if let Some(n) = o.consecutive_5xx {
            facts.push(fact(
                "ejectconsecutive",
                "eject_consecutive",
                Value::Count(u64::from(n)),
            ));
        }
        if let Some(rate) = o.success_rate {
            facts.push(fact(
                "ejectsuccessrate",
                "eject_success_rate",
                Value::Count(u64::from(rate)),
            ));
            facts.push(fact(
                "ejectwindow",
                "eject_window_ms",
                Value::Millis(o.window),
            ));
            facts.push(fact(
                "ejectminrequests",
                "eject_min_requests",
                Value::Count(u64::from(o.min_requests)),
            ));
        }
        facts.push(fact(
            "ejecttime",
            "eject_time_ms",
            Value::Millis(o.eject_time),
        ));
        facts.push(fact(
            "ejectmaxtime",
            "eject_max_time_ms",
            Value::Millis(o.max_eject_time),
        ));
        facts.push(fact(
            "ejectmax",
            "eject_max_percent",
            Value::Count(u64::from(o.max_ejected_percent)),
        ));
        facts.push(fact(
            "ejected",
            "ejected",
            Value::Count(b.snapshot.ejected() as u64),
        ));
    }
    if let Some(threshold) = p.panic_threshold {
        facts.push(fact(
            "panic",
            "panic_threshold",
            Value::Count(u64::from(threshold)),
        ));
        if let Some(now) = b.now {
            facts.push(fact(
                "inpanic",
                "in_panic",
                Value::Flag(b.snapshot.in_panic(now)),
            ));
        }
        facts.push(fact(
            "panicpicks",
            "panic_picks",
            Value::Count(b.snapshot.panics()),
        ));
    }
    // The budget is on by default: its parameters are shown when they are not tower's.
    match &p.retry_budget {
        Some(budget) if *budget == RetryBudgetParams::DEFAULT => {}
        Some(budget) => {
            facts.push(fact(
                "retrybudget",
                "retry_budget_percent",
                Value::Count(u64::from(budget.percent)),
            ));
            facts.push(fact(
                "retrybudgetmin",
                "retry_budget_min_per_sec",
                Value::Count(u64::from(budget.min_per_sec)),
            ));
            facts.push(fact(
                "retrybudgetwindow",
                "retry_budget_window_ms",
                Value::Millis(budget.window),
            ));
        }
        None => facts.push(fact(
            "retrybudget",
            "retry_budget_percent",
            Value::Text("Off".to_owned()),
        )),
    }
    if let Some(budget) = b.retry_budget {
        facts.push(fact(
            "retriesallowed",
            "retries_allowed",
            Value::Count(budget.allowed()),
        ));
        facts.push(fact(
            "retriesrefused",
            "retries_refused",
            Value::Count(budget.refused()),
        ));
    }
    facts
}

/// A member's facts, only those that apply: `slowstart` and, while it ramps,
/// `slowstartshare`; `rtt` (ms, the peak-EWMA estimate, with p2c-ewma once measured);
/// `ejections` and, while ejected, `ejectedfor` (ms left), when the balancer ejects.
pub(crate) fn member_facts(b: &BalancerView<'_>, m: &Member) -> Vec<Fact> {
    let p = b.snapshot.params();
    let mut facts = Vec::new();
    if let Some(slow_start) = m.params().slow_start {
        facts.push(fact(
            "slowstart",
            "slow_start_ms",
            Value::Millis(slow_start),
        ));
        if let Some(share) = b.now.and_then(|now| m.slow_start_share(now)) {
            facts.push(fact(
                "slowstartshare",
                "slow_start_share",
                Value::Decimal(share),
            ));
        }
    }
    if p.lb_method == LbMethodKind::P2cEwma {
        if let Some(rtt) = b.now.and_then(|now| m.state().rtt_estimate(now)) {
            facts.push(fact(
                "rtt",
                "rtt_ms",
                Value::Decimal(rtt.as_secs_f64() * 1000.0),
            ));
        }
    }
    if p.outlier.is_enabled() {
        facts.push(fact(
            "ejections",
            "ejections",
            Value::Count(m.state().ejections()),
        ));
        if let (Some(until), Some(now)) = (m.state().ejected_until(), b.now) {
            facts.push(fact(
                "ejectedfor",
                "ejected_for_ms",
                Value::Millis(until.saturating_duration_since(now)),
            ));
        }
    }
    facts
}

/// Every member fact name, in display order (the page's columns).
const MEMBER_COLUMNS: [&str; 5] = [
    "slowstart",
    "slowstartshare",
    "rtt",
    "ejections",
    "ejectedfor",
];

/// The page's titles of the facts.
pub(crate) fn title(xml: &str) -> &'static str {
    match xml {
        "hashkey" => "Hash key",
        "hashring" => "Hash ring",
        "ewmadecay" => "EWMA decay (ms)",
        "ejectconsecutive" => "Eject after 5xx in a row",
        "ejectsuccessrate" => "Eject below success %",
        "ejectwindow" => "Eject window (ms)",
        "ejectminrequests" => "Eject min requests",
        "ejecttime" => "Eject time (ms)",
        "ejectmaxtime" => "Eject max time (ms)",
        "ejectmax" => "Eject max %",
        "ejected" => "Ejected",
        "panic" => "Panic below %",
        "inpanic" => "In panic",
        "panicpicks" => "Panic picks",
        "retrybudget" => "Retry budget %",
        "retrybudgetmin" => "Retries/s floor",
        "retrybudgetwindow" => "Retry budget window (ms)",
        "retriesallowed" => "Retries",
        "retriesrefused" => "Retries refused",
        "slowstart" => "Slow start (ms)",
        "slowstartshare" => "Slow start share",
        "rtt" => "RTT (ms)",
        "ejections" => "Ejections",
        "ejectedfor" => "Ejected for (ms)",
        _ => "",
    }
}

/// The member columns the page shows: those some member of `facts` has.
pub(crate) fn member_columns(facts: &[Vec<Fact>]) -> Vec<&'static str> {
    MEMBER_COLUMNS
        .iter()
        .copied()
        .filter(|c| facts.iter().flatten().any(|f| f.xml == *c))
        .collect()
}

/// `"key":value,…` of the facts, as one JSON object.
pub(crate) fn json_object(facts: &[Fact]) -> String {
    let mut o = String::from("{");
    for (i, f) in facts.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        let _ = write!(o, "\"{}\":{}", f.json, f.value.json());
    }
    o.push('}');
    o
}
