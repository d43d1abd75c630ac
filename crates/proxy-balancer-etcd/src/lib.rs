//! Balancer-manager edits shared by a fleet of proxy-balancer instances through etcd v3.
//!
//! An [`EtcdShare`] is the balancer-manager's
//! [`SharedEdits`](proxy_balancer_manager::shared::SharedEdits): an edit made through any
//! instance's manager is written to etcd (compare-and-swap on the key's revision, so two
//! instances editing the same member both land), applied at once on that instance, and
//! applied by every other instance when its watch sees it (well under a second). What each
//! request changes (busy counts, `lbstatus`, error windows, health results) stays local:
//! the pick path never sees etcd, it reads the store as before.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::{Duration, Instant};
//!
//! use proxy_balancer_core::{BalancerParams, BalancerStore, MemberParams};
//! use proxy_balancer_etcd::EtcdShare;
//! use proxy_balancer_manager::edit::{parse_form, Edit};
//! use proxy_balancer_manager::shared::{SharedEditRequest, SharedEdits};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # #[expect(clippy::disallowed_methods, reason = "doc example")]
//! # let now = Instant::now();
//! let store = Arc::new(BalancerStore::new(
//!     BalancerParams::new("app"),
//!     [MemberParams::new("http://10.0.0.5:8080")?, MemberParams::new("http://10.0.0.6:8080")?],
//!     now,
//! )?);
//! let share = EtcdShare::builder(["http://127.0.0.1:2379"])
//!     .instance("proxy-a")
//!     .balancer(Arc::clone(&store))
//!     .start()
//!     .await?;
//!
//! // What the balancer-manager does with a POST (BalancerManagerBuilder::shared does it
//! // for you): drain a member for ten minutes, on every instance.
//! let form = parse_form(b"b=app&w=http://10.0.0.5:8080&w_status_N=1")?;
//! let request = SharedEditRequest::new("app", Edit::from_form(&form)?, "ops@10.0.0.1")
//!     .with_ttl(Some(Duration::from_secs(600)));
//! let submitted = share.submit(request).await?;
//! println!("in etcd at revision {}", submitted.revision);
//! println!("{:?}", share.last_change("app", Some("http://10.0.0.5:8080")));
//! # Ok(())
//! # }
//! ```
//!
//! # The data in etcd
//!
//! Everything lives under a prefix (default `/proxy-balancer/`), one key per balancer's
//! settings and one per member, so an operator can read and write it with `etcdctl`. A
//! value is the balancer-manager's own form fields, form-encoded, as its POST takes them,
//! plus who and when. The manager's own validation ([`Edit::from_form`]) reads it: a value
//! the manager would refuse is refused here too.
//!
//! | key | value: fields | meaning |
//! | --- | --- | --- |
//! | `<prefix><balancer>/balancer` | `b_lbm`, `b_tmo`, `b_max`, `b_sforce`, `b_ss` | the balancer's settings |
//! | `<prefix><balancer>/member/<url>` | `w_lf`, `w_ls`, `w_wr`, `w_rr`, `w_status_I\|N\|D\|H\|R\|S`, `w_hm`, `w_hi`, `w_hp`, `w_hf`, `w_hu`, `w_he` | a member's operator state; a member only etcd has is added |
//! | `<prefix><balancer>/lapse/<url>` | `w_status_I\|N\|D\|H\|R\|S` | flags that lapse: the key is bound to an etcd lease (a drain with `w_ttl`) |
//!
//! `<balancer>` is the name without `balancer://`; `<url>` is the member's URL as the
//! manager shows it (`http://10.0.0.5:8080`). The fields that say who and when are `by`
//! (who asked), `via` (through which instance), `at` (Unix seconds), `changed` (what the
//! edit changed, comma-separated) and, on a lapse key, `expires` (Unix seconds); they are
//! optional, and a value written by hand shows as changed by `etcd` when it was seen.
//!
//! A key holds the fields that differ from the configuration; what it does not name keeps
//! the configured value. Each edit merges its fields into the key's value. So:
//!
//! ```text
//! # Disable a member on every instance:
//! etcdctl put /proxy-balancer/app/member/http://10.0.0.5:8080 'w_status_D=1'
//! # Add a member that no configuration names (it serves at once: add w_status_D=1 to add
//! # it disabled, as the manager's "Add New Worker" does):
//! etcdctl put /proxy-balancer/app/member/http://10.0.0.7:8080 'w_lf=2'
//! # Back to the configured state (or, for a member only etcd had, removed: requests in
//! # flight on it finish):
//! etcdctl del /proxy-balancer/app/member/http://10.0.0.5:8080
//! # A drain that lapses after 10 minutes, even if no instance is up then:
//! etcdctl lease grant 600
//! etcdctl put --lease=<ID> /proxy-balancer/app/lapse/http://10.0.0.5:8080 'w_status_N=1'
//! # Everything, with revisions:
//! etcdctl get --prefix /proxy-balancer/ -w json
//! ```
//!
//! A member's URL in a key is written exactly as the manager shows it (a key naming
//! `HTTP://A:1` is refused with the form to use). Keys of balancers this instance does not
//! serve are left alone (another part of the fleet may serve them).
//!
//! A manager edit with `w_ttl` writes the flags it sets to the member's lapse key, bound to
//! a new lease of that many seconds, and leaves the member key's flags (and so the
//! configuration's) as they were: when the lease ends, etcd deletes the lapse key (whether
//! or not the instance that wrote it is still up) and every instance returns to what held
//! before: a member that was disabled for good stays disabled. An edit without `w_ttl`
//! of the same flags takes them off the lapse key: the later edit wins. The lease of a lapse
//! key an edit replaces or deletes is revoked (unless a key written by hand still uses it).
//!
//! Flags `E` (set by failures) and `C` (a health-check result) are this instance's own and
//! are refused in etcd; a manager edit of `C` is applied on the instance that got it only.
//!
//! Whoever can write under the prefix decides where every instance sends traffic (a member
//! key adds a backend): keep etcd on a trusted network, as this crate speaks plain HTTP/2 to
//! it without authentication for now.
//!
//! A value that cannot be used (an unknown field, a value out of range, a malformed key) is
//! logged (warn), listed by [`EtcdShare::problems`] and in the status' `last_error`, and
//! ignored as a whole: the key's last good value (or the configuration) stays in force.
//! Nothing written to etcd can make an instance panic or apply half a value.
//!
//! # When etcd is down
//!
//! A stopped or killed etcd is noticed at once (its connections close), a hung or
//! unreachable one within 15 s (HTTP/2 keep-alives every 10 s: etcd refuses them more often
//! than every 5 s), and a submit never waits longer than twice
//! [`request_timeout`](EtcdShareBuilder::request_timeout) (default 2 s). (A write whose
//! answer is lost on the way back may still have been taken by etcd: the instances then
//! apply it from their watch, as any other change; the page shows it.)
//!
//! Each instance keeps serving with the last state it saw. [`SharedEdits::status`] says
//! `connected: false`, since when and the last error; one warning is logged per outage and
//! one info line when etcd is back. [`SharedEdits::submit`] refuses at once with
//! [`SharedEditError::Unavailable`] (a 503 on the manager's page) instead of letting
//! instances diverge. The watch reconnects (backing off from 100 ms to 2 s) and resumes
//! from the last revision it applied; when etcd has compacted that history meanwhile, it
//! reads the whole prefix again and reconciles (keys deleted meanwhile are reverted). An
//! instance started while etcd is down serves its configuration, says so, and applies
//! etcd's state when etcd answers.
//!
//! # Members added through etcd
//!
//! A member only etcd has starts with the defaults of a `BalancerMember` line that names
//! just its URL (load factor 1, no health check), then takes its key's fields: put
//! `w_hm=GET&w_hu=/health&w_hi=5000` in its key to have the health probes (which follow
//! the store) check it.
//!
//! A member added because its key is in etcd is not counted against `growth` here (etcd is
//! the fleet's authority: an instance refusing it would diverge), but it does take one of
//! the manager's [`GrowthSlots`](proxy_balancer_manager::edit::GrowthSlots), so a manager
//! with few slots may refuse to add more by its form.
//!
//! # Not done
//!
//! TLS and authentication to etcd are not supported yet (an `https://` endpoint is refused
//! at [`EtcdShareBuilder::start`]).
//!
//! [`Edit::from_form`]: proxy_balancer_manager::edit::Edit::from_form
//! [`SharedEdits::status`]: proxy_balancer_manager::shared::SharedEdits::status
//! [`SharedEdits::submit`]: proxy_balancer_manager::shared::SharedEdits::submit
//! [`SharedEditError::Unavailable`]: proxy_balancer_manager::shared::SharedEditError::Unavailable

#![doc(test(attr(deny(warnings))))]

mod doc;
mod rpc;
mod share;

pub use share::{EtcdShare, EtcdShareBuilder, KeyProblem, DEFAULT_PREFIX};

/// A setting [`EtcdShareBuilder::start`] refused. etcd being unreachable is not one of
/// them: see the [crate docs](crate#when-etcd-is-down).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EtcdError {
    /// No endpoint was given.
    #[error("no etcd endpoint given: give at least one http://host:port")]
    NoEndpoints,
    /// An endpoint is not an `http://host:port` URL.
    #[error("bad etcd endpoint {endpoint:?}: {reason}")]
    BadEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The prefix cannot be used.
    #[error("bad etcd prefix {prefix:?}: {reason}")]
    BadPrefix {
        /// The prefix as given.
        prefix: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The instance name cannot be used.
    #[error("bad instance name {instance:?}: {reason}")]
    BadInstance {
        /// The name as given.
        instance: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No balancer was given to share.
    #[error("no balancer to share: give at least one with EtcdShareBuilder::balancer")]
    NoBalancers,
    /// Two balancers given have the same name.
    #[error("balancer {name} is given twice")]
    DuplicateBalancer {
        /// The name, without `balancer://`.
        name: String,
    },
    /// A balancer's name cannot be a part of a key (it is empty or holds a `/`).
    #[error("balancer name {name:?} cannot be shared: it is empty or holds a '/'")]
    BadBalancerName {
        /// The name, without `balancer://`.
        name: String,
    },
    /// [`EtcdShareBuilder::start`] was called outside a tokio runtime (its watch is a
    /// tokio task).
    #[error("the etcd share must be started inside a tokio runtime")]
    NoRuntime,
}
