//! The site's part of `ProxyVia`, `ProxyErrorOverride`, `ProxyBadHeader`,
//! `Proxy100Continue`, `ProxyIOBufferSize`, the worker keys `iobuffersize`,
//! `receivebuffersize`, `responsefieldsize`, `acquire`, `ping`, `addressttl` and `upgrade`, `HeartbeatListen`/`HeartbeatMaxServers`,
//! `BalancerPersist` and `ProxyHCTPsize`: what the site builds from them.
//!
//! | directive | applied by |
//! | --- | --- |
//! | `ProxyVia`, `ProxyErrorOverride`, `ProxyBadHeader`, `Proxy100Continue` (per server) | [`hop_options`]: the forwarding layer's [`HopOptions`], read by the member client |
//! | `ProxyIOBufferSize`, `iobuffersize`, `receivebuffersize`, `responsefieldsize`, `acquire`, `ping`, `addressttl`, `upgrade`, `Timeout` (a tunnel's idle floor) | [`member_client`]: the member client's [`ClientOptions`] (`max`, `timeout` and `connectiontimeout` are the member's own [`MemberParams`]) |
//! | `HeartbeatListen`, `HeartbeatMaxServers` | [`heartbeat`]: one listener feeding every balancer |
//! | `ProxyHCTPsize` | [`spawn_probes`]: one [`ProbePool`] for every balancer's probes |
//! | `BalancerPersist On` | [`persist_file`]: the manager's state file under `DefaultRuntimeDir` |

use std::path::PathBuf;
use std::sync::Arc;

use crate::apache_config::keys::parse_time;
use crate::apache_config::{Config, HostSettings, Param, ProxyBadHeader, ProxyTarget, ProxyVia};
use crate::client::{AddressTtl, ClientOptions, MakeHttpMember, Upgrades};
use crate::health_probe::{HealthProbe, ProbeDefinitions, ProbePool};
use crate::heartbeat::HeartbeatListener;
use crate::proxy_pass::{ErrorOverride, HopOptions, Via};
use crate::server::RequestBody;
use crate::{BalancerStore, MemberParams};

use super::member_tls::TlsClients;
use super::SiteError;

/// Apache's default `responsefieldsize`: a member's header line of 8192 bytes or more is a
/// 502.
pub(super) const DEFAULT_RESPONSE_FIELD_SIZE: usize = 8192;

/// Apache's default `ProxyHCTPsize`.
pub(super) const DEFAULT_HC_TPSIZE: usize = 16;

/// The name of the balancer-manager's state file in `DefaultRuntimeDir`.
pub(super) const PERSIST_FILE: &str = "proxy-balancer-manager.state";

/// The hop rules of one server (its [`HostSettings`], merged as
/// [`Config::host_settings`] merges them): `ProxyVia`, `ProxyErrorOverride`,
/// `ProxyBadHeader`, `Proxy100Continue`. The site gives them to the server's
/// [`ForwardedHeaders`](crate::proxy_pass::ForwardedHeaders) with `with_hop`.
///
/// `ProxyBadHeader StartBody` is refused by the parser (hyper's client cannot make a header
/// line the start of the body); should it reach here, it acts as `IsError`.
#[must_use]
pub(super) fn hop_options(settings: &HostSettings) -> HopOptions {
    let via = match settings.proxy_via {
        Some(ProxyVia::On) => Via::On,
        Some(ProxyVia::Full) => Via::Full,
        Some(ProxyVia::Block) => Via::Block,
        _ => Via::Off,
    };
    let error_override = settings
        .proxy_error_override
        .as_ref()
        .filter(|o| o.on)
        .map(|o| ErrorOverride::codes(o.codes.iter().copied()));
    HopOptions::new()
        .with_via(via)
        .with_error_override(error_override)
        .with_ignore_bad_headers(settings.proxy_bad_header == Some(ProxyBadHeader::Ignore))
        .with_expect_continue(settings.proxy_100_continue.unwrap_or(true))
}

/// The member client of the site: each member's `iobuffersize`, `receivebuffersize` and
/// `responsefieldsize` (from its `BalancerMember` line, or the `ProxyPass` of a plain-URL
/// worker), with `ProxyIOBufferSize` of the server that defines it as the default
/// `iobuffersize`, and Apache's 8192 as the default `responsefieldsize`.
///
/// A URL that is a member of several balancers gets the options of its last line (Apache
/// shares one worker per URL too).
#[must_use]
pub(super) fn member_client(config: &Config, tls: &TlsClients) -> MakeHttpMember<RequestBody> {
    let main_io = config.server.proxy_io_buffer_size;
    // `Timeout`: a tunnel's idle limit is the larger of it and the member's `timeout`.
    let client_timeout = config.front.timeout;
    let mut make = MakeHttpMember::new().with_default_options(
        ClientOptions::new()
            .with_response_field_size(Some(DEFAULT_RESPONSE_FIELD_SIZE))
            .with_io_buffer_size(main_io.map(|n| n as usize))
            .with_client_timeout(client_timeout)
            // SSLProxy* (site/member_tls.rs): a member the balancer-manager adds gets the
            // TLS client of the configuration's TLS members when they all share one.
            .with_tls(super::member_tls::shared_client(tls)),
    );
    let mut add = |url: &str, params: &[Param], vhost: Option<usize>| {
        let Ok(member) = MemberParams::new(url) else {
            return;
        };
        let io = config.host_settings(vhost).proxy_io_buffer_size;
        let options = worker_options(params, io).with_client_timeout(client_timeout);
        // SSLProxy* (site/member_tls.rs): the TLS client of the server the member is used
        // from.
        let options = options.with_tls(tls.get(member.url.as_str()).cloned());
        make = std::mem::take(&mut make).with_member_options(member.url.as_str(), options);
    };
    for balancer in &config.balancers {
        for member in &balancer.members {
            add(&member.url, &member.params, balancer.context.vhost);
        }
    }
    for pass in &config.proxy_passes {
        if let ProxyTarget::Url(url) = &pass.target {
            add(url, &pass.params, pass.context.vhost);
        }
    }
    make
}

/// One worker's options from its parameters (checked by the parser: sizes 0 or at least
/// 512; `acquire` and `ping` at least 1 ms; `addressttl` -1 or more).
fn worker_options(params: &[Param], server_io: Option<u32>) -> ClientOptions {
    let text = |key: &str| {
        params
            .iter()
            .rev()
            .find(|p| p.key.eq_ignore_ascii_case(key))
            .map(|p| p.value.trim())
    };
    let value = |key: &str| text(key).and_then(|v| v.parse::<usize>().ok());
    // `acquire` is in milliseconds by default, `ping` in seconds (both take `ms`).
    let acquire = text("acquire").and_then(|v| parse_time(v, true));
    let ping = text("ping").and_then(|v| parse_time(v, false));
    let address_ttl = text("addressttl")
        .and_then(|v| v.parse::<i64>().ok())
        .and_then(AddressTtl::from_apache);
    let field = value("responsefieldsize")
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_RESPONSE_FIELD_SIZE);
    ClientOptions::new()
        .with_response_field_size(Some(field))
        .with_io_buffer_size(
            value("iobuffersize")
                .filter(|&n| n > 0)
                .or(server_io.map(|n| n as usize)),
        )
        .with_receive_buffer_size(value("receivebuffersize").filter(|&n| n > 0))
        .with_acquire(acquire.filter(|t| !t.is_zero()))
        .with_ping(ping.filter(|t| !t.is_zero()))
        .with_address_ttl(address_ttl)
        .with_upgrades(upgrades(params))
}

/// `upgrade=`: the protocol upgrades the member takes (the parser checked it is not empty;
/// without it, WebSocket for `ws://` and `wss://` members).
fn upgrades(params: &[Param]) -> Upgrades {
    params
        .iter()
        .rev()
        .find(|p| p.key.eq_ignore_ascii_case("upgrade"))
        .map_or_else(Upgrades::new, |p| Upgrades::from_param(&p.value))
}

/// The health probes of the balancers, all drawing on one [`ProbePool`] of
/// `ProxyHCTPsize` (16 by default; 0: one check at a time).
///
/// # Errors
///
/// A balancer's probe cannot start ([`SiteError::Probe`]).
pub(super) fn spawn_probes(
    config: &Config,
    stores: &[Arc<BalancerStore>],
    defs: &Arc<ProbeDefinitions>,
    tls: &TlsClients,
) -> Result<Vec<HealthProbe>, SiteError> {
    let pool = ProbePool::new(
        config
            .proxy_hc_tpsize
            .map_or(DEFAULT_HC_TPSIZE, |n| n as usize),
    );
    stores
        .iter()
        .map(|store| {
            // SSLProxy* (site/tls.rs): the members of one balancer share their server's
            // TLS client; the probes of its https members use it too.
            let member_tls = store
                .snapshot()
                .members()
                .iter()
                .find_map(|m| tls.get(m.url()).cloned());
            HealthProbe::builder(Arc::clone(store))
                .pool(&pool)
                .tls(member_tls)
                .spawn_with(Arc::clone(defs))
                .map_err(|source| SiteError::Probe {
                    name: store.snapshot().params().name.clone(),
                    source,
                })
        })
        .collect()
}

/// The `HeartbeatListen` listener, feeding the load reports of every balancer in `stores`
/// (those with `lbmethod=heartbeat` use them), tracking at most `HeartbeatMaxServers`
/// senders (10 by default; 0, Apache's flat-file storage, without limit). `None` without
/// the directive: `lbmethod=heartbeat` then has no report and balances as `byrequests`,
/// as Apache's does without `mod_heartmonitor`.
///
/// # Errors
///
/// The address cannot be bound ([`SiteError::Unsupported`] with the directive's line).
pub(super) fn heartbeat(
    config: &Config,
    stores: &[Arc<BalancerStore>],
) -> Result<Option<Arc<HeartbeatListener>>, SiteError> {
    let Some(listen) = &config.heartbeat_listen else {
        return Ok(None);
    };
    let max = match config.heartbeat_max_servers {
        Some(0) => None,
        Some(n) => Some(n as usize),
        None => Some(10),
    };
    HeartbeatListener::builder(listen.addr)
        .max_servers(max)
        .bind_now(stores.to_vec())
        .map(|listener| Some(Arc::new(listener)))
        .map_err(|error| SiteError::Unsupported {
            line: listen.span.line,
            reason: format!("HeartbeatListen {}: cannot listen: {error}", listen.addr),
        })
}

/// Where the balancer-manager keeps its state with `BalancerPersist On`:
/// `DefaultRuntimeDir/proxy-balancer-manager.state` (Apache keeps it in shared-memory
/// files under its run-time directory). The site passes it to
/// [`BalancerManagerBuilder::persist`](crate::manager::BalancerManagerBuilder::persist).
/// Deleting the file (with the proxy stopped) resets the state to the configuration's.
///
/// At start the saved edits are applied over the configuration, except that the
/// configuration wins where they disagree on what exists: lines for a balancer or member
/// that is no longer configured are dropped (and the file rewritten without them), where
/// Apache would keep showing the stale member.
///
/// # Errors
///
/// `BalancerPersist On` with a balancer-manager but no `DefaultRuntimeDir` (nor one set by
/// the application): [`SiteError::Manager`] on the manager's line.
pub(super) fn persist_file(config: &Config) -> Result<Option<PathBuf>, SiteError> {
    if config.balancer_persist != Some(true) {
        return Ok(None);
    }
    let Some(location) = config.manager_locations.first() else {
        // Nothing edits the balancers: nothing to keep.
        return Ok(None);
    };
    match &config.default_runtime_dir {
        Some(dir) => Ok(Some(dir.join(PERSIST_FILE))),
        None => Err(SiteError::Manager {
            line: location.span.line,
            reason: "BalancerPersist On needs a directory for the manager's state: set DefaultRuntimeDir (or the application's state directory option)".to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_options_follow_the_keys_and_the_server_default() {
        let param = |key: &str, value: &str| Param {
            key: key.to_owned(),
            value: value.to_owned(),
            span: crate::apache_config::Span::default(),
        };
        let o = worker_options(&[], None);
        assert_eq!(o.response_field_size(), Some(8192));
        assert_eq!(o.io_buffer_size(), None);
        let o = worker_options(&[], Some(4096));
        assert_eq!(o.io_buffer_size(), Some(4096));
        let o = worker_options(
            &[
                param("IOBufferSize", "1024"),
                param("receivebuffersize", "65536"),
                param("responsefieldsize", "100"),
            ],
            Some(4096),
        );
        assert_eq!(o.io_buffer_size(), Some(1024));
        assert_eq!(o.receive_buffer_size(), Some(65536));
        assert_eq!(o.response_field_size(), Some(100));
        assert_eq!(o.acquire(), None);
        assert_eq!(o.ping(), None);
        assert_eq!(o.address_ttl(), None);
        let o = worker_options(
            &[
                param("acquire", "500"),
                param("ping", "2"),
                param("addressttl", "-1"),
            ],
            None,
        );
        assert_eq!(o.acquire(), Some(std::time::Duration::from_millis(500)));
        assert_eq!(o.ping(), Some(std::time::Duration::from_secs(2)));
        assert_eq!(o.address_ttl(), Some(AddressTtl::Forever));
        let o = worker_options(&[param("ping", "250ms"), param("AddressTTL", "30")], None);
        assert_eq!(o.ping(), Some(std::time::Duration::from_millis(250)));
        assert_eq!(
            o.address_ttl(),
            Some(AddressTtl::For(std::time::Duration::from_secs(30)))
        );
    }
}
