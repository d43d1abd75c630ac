//! The [doctor](crate::doctor)'s rules for the selection beyond Apache: `lbmethod=hash`,
//! `p2c-ewma`, outlier ejection, the panic threshold and the retry budget (our own
//! `ProxySet` parameters, which Apache refuses).
//!
//! A parameter that is read and then has no effect (a `hashkey` on a byrequests balancer)
//! is reported, and so are the combinations whose result operators do not expect.

use proxy_balancer_core::{BalancerParams, HashKey, LbMethodKind};

use crate::ast::{BalancerConfig, Param};
use crate::doctor::{Finding, Severity};

/// The balancer's parameters as the balancer runs them: every `key=value` applied in order
/// (values the core refuses are the parser's errors, skipped here).
fn effective(b: &BalancerConfig) -> BalancerParams {
    let mut params = BalancerParams::new(&b.name);
    for p in &b.params {
        let _ = params.set(&p.key, &p.value);
    }
    params
}

/// The last `key=` given on the balancer.
fn given<'a>(b: &'a BalancerConfig, key: &str) -> Option<&'a Param> {
    b.params
        .iter()
        .rev()
        .find(|p| p.key.eq_ignore_ascii_case(key))
}

/// Every rule of this module, for one balancer.
pub(crate) fn doctor(b: &BalancerConfig, out: &mut Vec<Finding>) {
    let params = effective(b);
    selection_no_effect(b, &params, out);
    ejectmax_too_low(b, &params, out);
    hashkey_client(b, &params, out);
    hash_with_sticky(b, &params, out);
    ejection_with_failonstatus(b, &params, out);
    panic_overrides_forcerecovery(b, &params, out);
    retrybudget_off(b, &params, out);
}

/// `selection-no-effect`: a parameter of ours that is read and then not used, because what
/// it tunes is not on: `hashkey`/`hashring` without `lbmethod=hash`, `ewmadecay` without
/// `lbmethod=p2c-ewma`, `ejectwindow`/`ejectminrequests` without `ejectsuccessrate`, the
/// ejection's length and cap without an ejection rule, the retry budget with
/// `maxattempts=0` (no retry is ever made).
fn selection_no_effect(b: &BalancerConfig, params: &BalancerParams, out: &mut Vec<Finding>) {
    let method = params.lb_method.name().to_owned();
    let o = &params.outlier;
    let mut unused: Vec<(&str, bool, String)> = vec![
        (
            "hashkey",
            params.lb_method != LbMethodKind::Hash,
            format!(
                "it is read by lbmethod=hash only, and {} balances with lbmethod={method}",
                b.name
            ),
        ),
        (
            "hashring",
            params.lb_method != LbMethodKind::Hash,
            format!(
                "it is read by lbmethod=hash only, and {} balances with lbmethod={method}",
                b.name
            ),
        ),
        (
            "ewmadecay",
            params.lb_method != LbMethodKind::P2cEwma,
            format!(
                "it is read by lbmethod=p2c-ewma only, and {} balances with lbmethod={method}",
                b.name
            ),
        ),
        (
            "ejectwindow",
            o.success_rate.is_none(),
            "it is the window of ejectsuccessrate, which is not set".to_owned(),
        ),
        (
            "ejectminrequests",
            o.success_rate.is_none(),
            "it is the minimum of ejectsuccessrate, which is not set".to_owned(),
        ),
        (
            "ejecttime",
            !o.is_enabled(),
            "no member is ever ejected: neither ejectconsecutive nor ejectsuccessrate is set"
                .to_owned(),
        ),
        (
            "ejectmaxtime",
            !o.is_enabled(),
            "no member is ever ejected: neither ejectconsecutive nor ejectsuccessrate is set"
                .to_owned(),
        ),
        (
            "ejectmax",
            !o.is_enabled(),
            "no member is ever ejected: neither ejectconsecutive nor ejectsuccessrate is set"
                .to_owned(),
        ),
        (
            "retrybudgetmin",
            params.max_attempts == Some(0),
            "maxattempts=0: a failed request is never tried again, so there is nothing to budget"
                .to_owned(),
        ),
        (
            "retrybudgetwindow",
            params.max_attempts == Some(0),
            "maxattempts=0: a failed request is never tried again, so there is nothing to budget"
                .to_owned(),
        ),
    ];
    unused.push((
        "retrybudget",
        params.max_attempts == Some(0) && params.retry_budget.is_some(),
        "maxattempts=0: a failed request is never tried again, so there is nothing to budget"
            .to_owned(),
    ));
    for (key, ignored, why) in unused {
        let Some(p) = given(b, key).filter(|_| ignored) else {
            continue;
        };
        out.push(Finding {
            severity: Severity::Warning,
            rule: "selection-no-effect",
            span: p.span,
            what: format!("{key}={} on {} has no effect: {why}", p.value, b.name),
            causes: "the line is read and then ignored: the behaviour it describes does not happen, \
                     and whoever reads the configuration expects it to"
                .into(),
            fix: match key {
                "hashkey" | "hashring" => format!("set lbmethod=hash on {}, or remove {key}", b.name),
                "ewmadecay" => format!("set lbmethod=p2c-ewma on {}, or remove ewmadecay", b.name),
                "ejectwindow" | "ejectminrequests" => {
                    format!("set ejectsuccessrate=P (e.g. 80) on {}, or remove {key}", b.name)
                }
                "ejecttime" | "ejectmaxtime" | "ejectmax" => format!(
                    "turn ejection on with ejectconsecutive=N (e.g. 5) or ejectsuccessrate=P on {}, or remove {key}",
                    b.name
                ),
                _ => "remove maxattempts=0 (or set it to 1 or more) so that failed idempotent requests are retried within the budget, or remove the retry budget's parameters".to_owned(),
            },
        });
    }
}

/// `ejectmax-too-low`: ejection is on but `ejectmax` % of the balancer's members rounds
/// down to none, so no member is ever ejected (Envoy's `max_ejection_percent` rounds the
/// same way).
fn ejectmax_too_low(b: &BalancerConfig, params: &BalancerParams, out: &mut Vec<Finding>) {
    let o = &params.outlier;
    let n = b.members.len();
    if !o.is_enabled() || n == 0 || o.max_ejected(n) > 0 {
        return;
    }
    let span = given(b, "ejectmax")
        .or_else(|| given(b, "ejectconsecutive"))
        .or_else(|| given(b, "ejectsuccessrate"))
        .map_or(b.span, |p| p.span);
    let needed = 100_usize.div_ceil(n);
    out.push(Finding {
        severity: Severity::Warning,
        rule: "ejectmax-too-low",
        span,
        what: format!(
            "{} ejects at most {} % of its {n} members: none",
            b.name, o.max_ejected_percent
        ),
        causes:
            "outlier ejection is on but can never eject a member: a member answering 5xx keeps \
                 its share of the requests"
                .into(),
        fix: format!(
            "set ejectmax={needed} or more (one member of {n}), or add members; or remove the \
             eject* parameters"
        ),
    });
}

/// `hashkey-client`: `lbmethod=hash` on the client address (`hashkey=client`, the default).
///
/// Clients that reach the proxy through another proxy or load balancer (a CDN, a cloud load
/// balancer, an ingress) all have its address: every request hashes to the same member.
fn hashkey_client(b: &BalancerConfig, params: &BalancerParams, out: &mut Vec<Finding>) {
    if params.lb_method != LbMethodKind::Hash || params.hash_key != HashKey::Client {
        return;
    }
    // An invalid hashkey left the default here, but it is an error of its own: the
    // balancer never runs on the client address.
    if given(b, "hashkey").is_some_and(|p| p.value.parse::<HashKey>().is_err()) {
        return;
    }
    let span = given(b, "hashkey")
        .or_else(|| given(b, "lbmethod"))
        .map_or(b.span, |p| p.span);
    out.push(Finding {
        severity: Severity::Note,
        rule: "hashkey-client",
        span,
        what: format!("{} hashes the client's IP address (hashkey=client)", b.name),
        causes: "when clients come through another proxy or load balancer (a CDN, a cloud load \
                 balancer, an ingress), every request has its address: one member gets all the \
                 traffic and the others none; many clients behind one NAT land on one member too"
            .into(),
        fix:
            "behind a proxy, hash what identifies the client: hashkey=header:X-Forwarded-For (set \
              by the proxy in front), or a session cookie (hashkey=cookie:NAME)"
                .into(),
    });
}

/// `hash-with-sticky`: `lbmethod=hash` with `stickysession`: a request with a route goes to
/// its route's member first (as with every lbmethod); the hash decides only for the others.
fn hash_with_sticky(b: &BalancerConfig, params: &BalancerParams, out: &mut Vec<Finding>) {
    if params.lb_method != LbMethodKind::Hash || params.sticky_session.is_none() {
        return;
    }
    let span = given(b, "stickysession").map_or(b.span, |p| p.span);
    out.push(Finding {
        severity: Severity::Note,
        rule: "hash-with-sticky",
        span,
        what: format!("{} has lbmethod=hash and stickysession", b.name),
        causes:
            "sticky routes win first: a request whose cookie or URL names a route goes to that \
                 member whatever its key hashes to, so requests with one key can reach several \
                 members (and a member that leaves moves its sessions, not only its keys)"
                .into(),
        fix: "keep both only if the sessions must stay where they started; otherwise remove \
              stickysession and let the hash keep each key on one member"
            .into(),
    });
}

/// `ejection-with-failonstatus`: outlier ejection together with `failonstatus`. A listed
/// status puts the member in error at once, for `retry` seconds (Apache's behaviour), before
/// a run of 5xx or a success rate can eject it; the two take members out on different
/// clocks.
fn ejection_with_failonstatus(b: &BalancerConfig, params: &BalancerParams, out: &mut Vec<Finding>) {
    if !params.outlier.is_enabled() {
        return;
    }
    let Some(p) = given(b, "failonstatus") else {
        return;
    };
    out.push(Finding {
        severity: Severity::Note,
        rule: "ejection-with-failonstatus",
        span: p.span,
        what: format!(
            "{} has outlier ejection and failonstatus={}",
            b.name, p.value
        ),
        causes:
            "a status listed in failonstatus puts the member in error on its first occurrence, \
                 for the member's retry seconds and with no cap on how many members it takes out; \
                 ejection counts the 5xx answers (listed or not) and takes out at most ejectmax % \
                 of the members, for ejecttime: a listed 5xx never waits for ejection"
                .into(),
        fix: "for 5xx statuses, rely on ejection (remove them from failonstatus) so that the cap \
              and the growing ejection time apply; keep failonstatus for statuses that mean the \
              member must leave at once (e.g. 503 from a member in maintenance)"
            .into(),
    });
}

/// `panic-overrides-forcerecovery`: `panic` with `forcerecovery=Off`. Below the threshold
/// (and so when no member is usable) the balancer balances over every member, those in
/// error included: what `forcerecovery=Off` asks not to do.
fn panic_overrides_forcerecovery(
    b: &BalancerConfig,
    params: &BalancerParams,
    out: &mut Vec<Finding>,
) {
    let Some(threshold) = params.panic_threshold else {
        return;
    };
    if params.force_recovery {
        return;
    }
    let span = given(b, "forcerecovery").map_or(b.span, |p| p.span);
    out.push(Finding {
        severity: Severity::Warning,
        rule: "panic-overrides-forcerecovery",
        span,
        what: format!("{} has forcerecovery=Off and panic={threshold}", b.name),
        causes: "when fewer than the panic threshold of members are usable, requests go to every \
                 member, those in error and failing their health check included: forcerecovery=Off \
                 (wait for each member's retry when all are in error) does not hold"
            .into(),
        fix:
            "choose one: remove panic to keep members in error alone until their retry, or remove \
              forcerecovery=Off (panic already covers the case of no usable member)"
                .into(),
    });
}

/// `retrybudget-off`: `retrybudget=Off`. Retries of idempotent requests are bounded by
/// `maxattempts` per request only (Apache's behaviour), so a brown-out can multiply the
/// load on the members still answering.
fn retrybudget_off(b: &BalancerConfig, params: &BalancerParams, out: &mut Vec<Finding>) {
    if params.retry_budget.is_some() || params.max_attempts == Some(0) {
        return;
    }
    let Some(p) = given(b, "retrybudget") else {
        return;
    };
    out.push(Finding {
        severity: Severity::Note,
        rule: "retrybudget-off",
        span: p.span,
        what: format!("{} has no retry budget (retrybudget=Off)", b.name),
        causes: "when members fail requests once sent, every idempotent request can be retried up \
                 to maxattempts times: a brown-out of some members multiplies the load on the others \
                 (a retry storm)"
            .into(),
        fix: "remove retrybudget=Off: the default budget lets retries add at most 20 % of the \
              requests plus 10 a second (tower's and finagle's default)"
            .into(),
    });
}
