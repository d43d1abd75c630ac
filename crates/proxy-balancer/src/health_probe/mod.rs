//! Active health checks, as Apache's mod_proxy_hcheck: background tokio tasks probe the
//! members; one that fails `hcfails` probes in a row gets `C` (`HcFl`) and is not picked,
//! one that then passes `hcpasses` probes in a row is back (`C` cleared, and an `E` set by
//! traffic too, as Apache does). Every change is seen by the very next pick.
//!
//! [`HealthProbe::spawn`] starts the tasks over a [`BalancerStore`](crate::BalancerStore),
//! asking a closure for each member's [`ProbeConfig`] (members without one are not probed);
//! dropping the [`HealthProbe`] or awaiting [`HealthProbe::shutdown`] ends them. At most 16
//! probes run at once (Apache's `ProxyHCTPsize`; see [`HealthProbe::builder`]), each
//! member's first probe is delayed by a stable jitter within its interval so that many
//! members do not probe in lockstep, stopped (`S`) members are skipped, and members added or
//! removed by reconfiguration are followed within 100 ms. Counters per member (probes,
//! passes, failures, last result and status, last change) are read through a
//! [`HealthMonitor`].
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
//! | `hcuri=/health` | [`ProbeConfig::uri`] | appended to the member URL's path as is (`health` is sent as `health`) |
//! | `hcinterval=30` (`200ms`) | [`ProbeConfig::interval`] | pause after a probe ends; at least 100 ms |
//! | `hcpasses=1`, `hcfails=1` | [`ProbeConfig::passes`], [`ProbeConfig::fails`] | results **in a row** (0 acts as 1) |
//! | `hcexpr=name`, `ProxyHCExpr name {…}` | [`Condition`], [`ProbeDefinitions::with_expr`], [`expr`] | default: status 200–399 passes |
//! | `hctemplate=name`, `ProxyHCTemplate name k=v …` | [`ProbeDefinitions::with_template`] | the template's parameters, where `hctemplate` stands |
//! | `ProxyHCTPsize 16` | [`HealthProbeBuilder::concurrency`] | probes in flight at once |
//! | worker `connectiontimeout` / `timeout` | [`ProbeConfig::with_member_timeouts`] | bound on one probe (default 5 s) |
//! | `AH03303` "Health check DISABLING" / `AH03302` "ENABLING" | `tracing` events with `apache_id` | warn / info |
//!
//! # Where this differs from Apache 2.4.71
//!
//! Apache counts `hcfails` and `hcpasses` cumulatively: three isolated failures among twenty
//! passes disable a member with `hcfails=3`. Here they count results in a row, as Apache's
//! own documentation says: a pass ends a run of failures and a failure ends a run of
//! passes, so a flaky probe now and then never disables a healthy member. An `https`
//! member is probed with TCP (this crate has no TLS client of its own).
//!
//! # Examples
//!
//! Apache's defaults: `hcmethod=GET hcuri=/health`, every 30 seconds.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use proxy_balancer::health_probe::{HealthProbe, ProbeConfig, ProbeMethod};
//! use proxy_balancer::{BalancerParams, BalancerStore, MemberParams};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let members = [MemberParams::new("http://127.0.0.1:8081")?];
//! let now = tokio::time::Instant::now().into_std();
//! let store = Arc::new(BalancerStore::new(BalancerParams::new("balancer://app"), members, now)?);
//!
//! let probe = HealthProbe::spawn(Arc::clone(&store), |member| {
//!     let mut config = ProbeConfig::new(ProbeMethod::Get).with_member_timeouts(member.params());
//!     config.uri = "/health".into();
//!     Some(config)
//! });
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
//! use proxy_balancer::health_probe::{HealthProbe, ProbeConfig, ProbeDefinitions};
//! use proxy_balancer::{BalancerParams, BalancerStore, MemberParams};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! // ProxyHCExpr in_service {hc('body') !~ /Under maintenance/}
//! // ProxyHCTemplate tpl hcmethod=GET hcuri=/health hcexpr=in_service hcinterval=200ms
//! let defs = ProbeDefinitions::new()
//!     .with_expr("in_service", HcExpr::parse("hc('body') !~ /Under maintenance/")?)
//!     .with_template(
//!         "tpl",
//!         [("hcmethod", "GET"), ("hcuri", "/health"), ("hcexpr", "in_service"), ("hcinterval", "200ms")],
//!     );
//! // BalancerMember http://127.0.0.1:8081 hctemplate=tpl hcfails=3 hcpasses=2
//! let config = ProbeConfig::from_params(&[("hctemplate", "tpl"), ("hcfails", "3"), ("hcpasses", "2")], &defs)?;
//!
//! let members = [MemberParams::new("http://127.0.0.1:8081")?];
//! let now = tokio::time::Instant::now().into_std();
//! let store = Arc::new(BalancerStore::new(BalancerParams::new("balancer://app"), members, now)?);
//! let probe = HealthProbe::builder(Arc::clone(&store))
//!     .concurrency(8)
//!     .spawn(move |member| config.clone().map(|c| c.with_member_timeouts(member.params())));
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
pub use runner::{HealthMonitor, HealthProbe, HealthProbeBuilder};
pub use state::MemberHealth;
