//! Active health checks, as Apache's mod_proxy_hcheck: background tokio tasks probe the
//! members; one that fails `hcfails` probes in a row gets `C` (`HcFl`) and is not picked,
//! one that then passes `hcpasses` probes in a row is back (`C` cleared, and an `E` set by
//! traffic too, as Apache does). Every change is seen by the very next pick.
//!
//! [`HealthProbe::spawn_with`] starts the tasks over a [`BalancerStore`](crate::BalancerStore):
//! each member is probed as its own health-check parameters say, [`MemberParams::hc`]
//! ([`HcParams`]: `hcmethod`, `hcuri`, `hcinterval`, `hcpasses`, `hcfails`, `hcexpr`, typed
//! and validated by the core), with the named conditions of a [`ProbeDefinitions`]
//! (`ProxyHCExpr`). The store is the one source of truth: the probes follow its snapshots, so
//! an edit (the balancer-manager's `w_hi`, `w_hu` …) changes the running probe, members added
//! with a method get probes and removed ones stop, all within 100 ms. Members with
//! `hcmethod=NONE` (the default) are not probed. [`HealthProbe::spawn`] takes a closure giving
//! each member's [`ProbeConfig`] instead, for configurations that do not come from the store.
//! Dropping the [`HealthProbe`] or awaiting [`HealthProbe::shutdown`] ends the tasks. At most
//! 16 probes run at once (Apache's `ProxyHCTPsize`; see [`HealthProbe::builder`]), each
//! member's first probe is delayed by a stable jitter within its interval so that many
//! members do not probe in lockstep, and stopped (`S`) members are skipped. Counters per
//! member (probes, passes, failures, last result and status, last change) are read through a
//! [`HealthMonitor`], which is also the core's [`HealthReport`] the balancer-manager shows.
//!
//! [`MemberParams::hc`]: crate::MemberParams::hc
//! [`HcParams`]: crate::HcParams
//! [`HealthReport`]: crate::HealthReport
//!
//! # Apache
//!
//! | Apache | here | what is sent / done |
//! | --- | --- | --- |
//! | `hcmethod=TCP` | [`ProbeMethod::Tcp`] | connect, then close |
//! | `hcmethod=OPTIONS` | [`ProbeMethod::Options`] | `OPTIONS * HTTP/1.0`, `Host: host:port` |
//! | `hcmethod=HEAD` | [`ProbeMethod::Head`] | `HEAD <path><hcuri> HTTP/1.0`, `Host: host:port` |
//! | `hcmethod=GET` | [`ProbeMethod::Get`] | `GET <path><hcuri> HTTP/1.0`, `Host: host:port` |
//! | `hcmethod=OPTIONS11` / `HEAD11` / `GET11` | [`ProbeMethod::Options11`] … | the same as HTTP/1.1 with `Connection: close` |
//! | `BalancerMember … hc*=…` | [`MemberParams::hc`], set by [`MemberParams::set`](crate::MemberParams::set) | read by [`ProbeConfig::from_member`] |
//! | `hcuri=/health` | [`HcParams::uri`](crate::HcParams::uri), [`ProbeConfig::uri`] | appended to the member URL's path as is (`health` is sent as `health`) |
//! | `hcinterval=30` (`200ms`) | [`HcParams::interval`](crate::HcParams::interval), [`ProbeConfig::interval`] | pause after a probe ends; at least 100 ms |
//! | `hcpasses=1`, `hcfails=1` | [`ProbeConfig::passes`], [`ProbeConfig::fails`] | results **in a row** (0 acts as 1) |
//! | `hcexpr=name`, `ProxyHCExpr name {…}` | [`HcParams::expr`](crate::HcParams::expr), [`Condition`], [`ProbeDefinitions::with_expr`], [`expr`] | default: status 200–399 passes |
//! | `hctemplate=name`, `ProxyHCTemplate name k=v …` | [`ProbeDefinitions::apply`], [`HcParams::apply_template`](crate::HcParams::apply_template) | the template's parameters, where `hctemplate` stands; the store keeps the resolved values |
//! | `ProxyHCTPsize 16` | [`HealthProbeBuilder::concurrency`] | probes in flight at once |
//! | worker `connectiontimeout` / `timeout` | [`ProbeConfig::with_member_timeouts`] | bound on one probe (default 5 s) |
//! | `AH03303` "Health check DISABLING" / `AH03302` "ENABLING" | `tracing` events with `apache_id` | warn / info |
//!
//! # Where this differs from Apache 2.4.71
//!
//! Apache counts `hcfails` and `hcpasses` cumulatively: three isolated failures among twenty
//! passes disable a member with `hcfails=3`. Here they count results in a row, as Apache's
//! own documentation says: a pass ends a run of failures and a failure ends a run of
//! passes, so a flaky probe now and then never disables a healthy member. An `https`,
//! `wss` or `h2` member is probed inside TLS, with the TLS client of its requests
//! ([`HealthProbeBuilder::tls`]; the `http-client` feature), for every method:
//! `hcmethod=TCP` passes once the TLS handshake has (Apache's stops at the TCP connect),
//! so a member whose certificate the requests would refuse is taken out by its probes too.
//!
//! # Examples
//!
//! Apache's defaults but for `hcmethod=GET hcuri=/health`: every 30 seconds, one failure
//! takes the member out, one pass brings it back.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use proxy_balancer::health_probe::{HealthProbe, ProbeDefinitions};
//! use proxy_balancer::{BalancerParams, BalancerStore, MemberParams};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! // BalancerMember http://127.0.0.1:8081 hcmethod=GET hcuri=/health
//! let mut member = MemberParams::new("http://127.0.0.1:8081")?;
//! member.set("hcmethod", "GET")?;
//! member.set("hcuri", "/health")?;
//! let now = tokio::time::Instant::now().into_std();
//! let store = Arc::new(BalancerStore::new(BalancerParams::new("balancer://app"), [member], now)?);
//!
//! let probe = HealthProbe::spawn_with(Arc::clone(&store), Arc::new(ProbeDefinitions::new()))?;
//! // ... serve with a Balancer over `store` ...
//! probe.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Customized from Apache's parameters: a template, a body condition, 200 ms probes,
//! three failures in a row to disable, two passes to enable, 8 probes at once.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use proxy_balancer::health_probe::expr::HcExpr;
//! use proxy_balancer::health_probe::{HealthProbe, ProbeDefinitions};
//! use proxy_balancer::{BalancerParams, BalancerStore, MemberParams};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! // ProxyHCExpr in_service {hc('body') !~ /Under maintenance/}
//! // ProxyHCTemplate tpl hcmethod=GET hcuri=/health hcexpr=in_service hcinterval=200ms
//! let defs = Arc::new(
//!     ProbeDefinitions::new()
//!         .with_expr("in_service", HcExpr::parse("hc('body') !~ /Under maintenance/")?)
//!         .with_template(
//!             "tpl",
//!             [("hcmethod", "GET"), ("hcuri", "/health"), ("hcexpr", "in_service"), ("hcinterval", "200ms")],
//!         ),
//! );
//! // BalancerMember http://127.0.0.1:8081 hctemplate=tpl hcfails=3 hcpasses=2
//! let mut member = MemberParams::new("http://127.0.0.1:8081")?;
//! for (k, v) in [("hctemplate", "tpl"), ("hcfails", "3"), ("hcpasses", "2")] {
//!     defs.apply(&mut member.hc, k, v)?;
//! }
//!
//! let now = tokio::time::Instant::now().into_std();
//! let store = Arc::new(BalancerStore::new(BalancerParams::new("balancer://app"), [member], now)?);
//! let probe = HealthProbe::builder(Arc::clone(&store))
//!     .concurrency(8)
//!     .spawn_with(Arc::clone(&defs))?;
//! let monitor = probe.monitor();
//! for (id, health) in monitor.members() {
//!     println!("{id}: {} probes, last status {:?}", health.probes, health.last_status());
//! }
//! drop(probe); // the tasks end
//! # Ok(())
//! # }
//! ```

mod config;
pub mod expr;
mod probe;
mod runner;
mod state;

#[cfg(test)]
mod tests;

pub use config::{Condition, ProbeConfig, ProbeConfigError, ProbeDefinitions, ProbeMethod};
pub use probe::{ProbeFailure, ProbeOutcome};
pub use runner::{HealthMonitor, HealthProbe, HealthProbeBuilder, ProbePool};
pub use state::MemberHealth;
