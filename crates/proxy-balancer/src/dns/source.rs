//! One DNS source: what to ask ([`DnsSource`]), and one answer turned into members.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::{ResolveError, TokioResolver};
use proxy_balancer_core::{LbSet, LoadFactor, MemberParams, MemberUrl};

use super::DnsError;

/// The most members one source gives: a larger answer is cut there (with a warning). A
/// DNS answer over TCP can hold a few thousand records; a balancer of more members than
/// this is more likely a misconfigured name than a fleet.
pub(super) const MAX_MEMBERS: usize = 256;

/// How long one query waits for the nameserver before trying again (hickory's default
/// is 5 s). Short, so that a failing nameserver is seen (and the last set kept) quickly.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// A DNS resolver for discovery: the system's (`/etc/resolv.conf`), or nameservers of
/// your choice. Queries go over UDP, and over TCP when an answer is truncated. Both A and
/// AAAA records are asked for. Cloning is cheap (the resolver is shared).
///
/// ```
/// use proxy_balancer::dns::DnsResolver;
///
/// let resolver = DnsResolver::with_nameservers(&["127.0.0.1:5353".parse()?]);
/// # drop(resolver);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct DnsResolver {
    inner: TokioResolver,
    nameservers: Vec<SocketAddr>,
}

impl DnsResolver {
    /// The system's resolver configuration (`/etc/resolv.conf` on Unix: its nameservers,
    /// search domains, `ndots`), without `/etc/hosts`.
    ///
    /// # Errors
    ///
    /// [`DnsError::Config`] when the system configuration cannot be read.
    pub fn system() -> Result<Self, DnsError> {
        let mut builder = TokioResolver::builder_tokio().map_err(|e| DnsError::Config {
            reason: format!("cannot read the system's resolver configuration: {e}"),
        })?;
        discovery_opts(builder.options_mut());
        let inner = builder.build();
        let nameservers = inner
            .config()
            .name_servers()
            .iter()
            .map(|n| n.socket_addr)
            .collect();
        Ok(Self { inner, nameservers })
    }

    /// These nameservers, asked in turn, over UDP (TCP when the answer is truncated); no
    /// search domains: names are asked as written.
    #[must_use]
    pub fn with_nameservers(nameservers: &[SocketAddr]) -> Self {
        let mut config = ResolverConfig::new();
        for &addr in nameservers {
            config.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
            config.add_name_server(NameServerConfig::new(addr, Protocol::Tcp));
        }
        let mut builder =
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default());
        discovery_opts(builder.options_mut());
        Self {
            inner: builder.build(),
            nameservers: nameservers.to_vec(),
        }
    }

    /// The nameservers asked.
    #[must_use]
    pub fn nameservers(&self) -> &[SocketAddr] {
        &self.nameservers
    }

    /// The addresses of `name` (A and AAAA), and the smallest TTL of the records.
    pub(super) async fn addresses(&self, name: &str) -> Result<(Vec<IpAddr>, Duration), Lookup> {
        let lookup = self.inner.lookup_ip(name).await.map_err(Lookup::from)?;
        let ttl = min_ttl(lookup.as_lookup().records().iter().map(|r| r.ttl()));
        let mut ips: Vec<IpAddr> = lookup.iter().collect();
        ips.sort_unstable();
        ips.dedup();
        Ok((ips, ttl))
    }

    /// The SRV records of `name`: (priority, weight, port, target), and their smallest TTL.
    async fn srv(&self, name: &str) -> Result<(Vec<(u16, u16, u16, String)>, Duration), Lookup> {
        let lookup = self.inner.srv_lookup(name).await.map_err(Lookup::from)?;
        let ttl = min_ttl(lookup.as_lookup().records().iter().map(|r| r.ttl()));
        let records = lookup
            .iter()
            .map(|srv| {
                (
                    srv.priority(),
                    srv.weight(),
                    srv.port(),
                    srv.target().to_ascii(),
                )
            })
            .collect();
        Ok((records, ttl))
    }

    /// Forgets what the resolver cached: each round asks the nameserver (the round's
    /// timing already follows the records' TTL).
    pub(super) fn clear_cache(&self) {
        self.inner.clear_cache();
    }
}

/// The discovery's resolver options on top of a configuration's.
fn discovery_opts(opts: &mut ResolverOpts) {
    // Both families: a member set is every address, not the first family that answers.
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    // /etc/hosts would answer for a name without a TTL and hide the DNS's changes.
    opts.use_hosts_file = ResolveHosts::Never;
    opts.timeout = QUERY_TIMEOUT;
    opts.attempts = 1;
    opts.try_tcp_on_error = true;
}

impl fmt::Debug for DnsResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsResolver")
            .field("nameservers", &self.nameservers)
            .finish_non_exhaustive()
    }
}

/// The smallest TTL of records (0 without records).
fn min_ttl(ttls: impl Iterator<Item = u32>) -> Duration {
    Duration::from_secs(u64::from(ttls.min().unwrap_or(0)))
}

/// A lookup that did not give records.
#[derive(Debug)]
pub(super) enum Lookup {
    /// NXDOMAIN, or the name exists without records of the type (NODATA): the DNS says
    /// there is nothing.
    Empty,
    /// No answer, SERVFAIL, REFUSED, a malformed answer: the DNS could not say.
    Failed(String),
}

impl From<ResolveError> for Lookup {
    fn from(e: ResolveError) -> Self {
        // hickory reports SERVFAIL and REFUSED as "no records found" too: only NXDOMAIN
        // and an empty NOERROR answer say the name has nothing.
        let empty = e.proto().is_some_and(|p| {
            matches!(
                p.kind(),
                ProtoErrorKind::NoRecordsFound {
                    response_code: ResponseCode::NXDomain | ResponseCode::NoError,
                    ..
                }
            )
        });
        if empty {
            Self::Empty
        } else {
            Self::Failed(e.to_string())
        }
    }
}

/// What records a [`DnsSource`] reads.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DnsRecords {
    /// The A and AAAA records of the URL's host: one member per address, on the URL's
    /// port.
    Address,
    /// The SRV records of this name (`_http._tcp.api.internal`): one member per address
    /// of each target, on the record's port; the weight gives `loadfactor`, the priority
    /// `lbset`.
    Srv(String),
}

/// One name to discover members from, and the member every discovered one is made from.
///
/// The template's URL names the host to resolve (`http://api.internal:8080/app`); each
/// discovered member is the template with the host replaced by an address
/// (`http://10.0.0.7:8080/app`, `http://[fd00::7]:8080/app`), and, for SRV, the port by
/// the record's port, `loadfactor` and `lbset` by the record's weight and priority. Every
/// other parameter (`retry`, `timeout`, `hc*`, `status` …) is the template's.
///
/// ```
/// use proxy_balancer::core::MemberParams;
/// use proxy_balancer::dns::DnsSource;
///
/// let a = DnsSource::address(MemberParams::new("http://api.internal:8080/app")?)?;
/// assert_eq!(a.name(), "api.internal");
/// let srv = DnsSource::srv(MemberParams::new("http://api.internal/app")?, None)?;
/// assert_eq!(srv.name(), "_http._tcp.api.internal");
/// // An address has nothing to resolve; an https member's certificate would be checked
/// // against the address: both refused.
/// assert!(DnsSource::address(MemberParams::new("http://10.0.0.1")?).is_err());
/// assert!(DnsSource::address(MemberParams::new("https://api.internal")?).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsSource {
    template: MemberParams,
    records: DnsRecords,
}

impl DnsSource {
    /// Members from the A and AAAA records of the template URL's host.
    ///
    /// # Errors
    ///
    /// [`DnsError::Template`] when the host is an IP address, or the member speaks TLS
    /// (see [`DnsSource::check_template`]).
    pub fn address(template: MemberParams) -> Result<Self, DnsError> {
        Self::check_template(&template)?;
        Ok(Self {
            template,
            records: DnsRecords::Address,
        })
    }

    /// Members from SRV records: of `name`, or without it of `_SCHEME._tcp.HOST` (the
    /// template's host; `_http` for `http`, `ws` and `h2c` members).
    ///
    /// # Errors
    ///
    /// As [`DnsSource::address`], and for an empty `name`.
    pub fn srv(template: MemberParams, name: Option<&str>) -> Result<Self, DnsError> {
        Self::check_template(&template)?;
        let name = match name {
            Some(name) if name.trim().is_empty() => {
                return Err(DnsError::Template {
                    reason: "the SRV name is empty".to_owned(),
                })
            }
            Some(name) => name.trim().to_owned(),
            None => format!(
                "_{}._tcp.{}",
                template.url.http_scheme(),
                template.url.connect_host()
            ),
        };
        Ok(Self {
            template,
            records: DnsRecords::Srv(name),
        })
    }

    /// Whether `template` can be discovered: its host must be a name, and the member must
    /// not speak TLS. A discovered member's URL holds its address, so its `Host` header is
    /// `address:port` and a TLS member's certificate would be checked against the address
    /// (and SNI would carry none): rather than fail every handshake (or turn name checks
    /// off), TLS members are refused.
    ///
    /// # Errors
    ///
    /// [`DnsError::Template`] saying which.
    pub fn check_template(template: &MemberParams) -> Result<(), DnsError> {
        let url = &template.url;
        if url.connect_host().parse::<IpAddr>().is_ok() {
            return Err(DnsError::Template {
                reason: format!("{url}: the host is an IP address: there is no name to resolve"),
            });
        }
        if url.tls() {
            return Err(DnsError::Template {
                reason: format!(
                    "{url}: a discovered member is reached by its address, so its TLS certificate would be checked against the address rather than {}: TLS members are not discovered yet: list each TLS member by a name its certificate has (a member of its own), or discover plain http members",
                    url.connect_host()
                ),
            });
        }
        Ok(())
    }

    /// The name asked: the URL's host, or the SRV name.
    #[must_use]
    pub fn name(&self) -> &str {
        match &self.records {
            DnsRecords::Address => self.template.url.connect_host(),
            DnsRecords::Srv(name) => name,
        }
    }

    /// What records are read.
    #[must_use]
    pub fn records(&self) -> &DnsRecords {
        &self.records
    }

    /// The member each discovered one is made from.
    #[must_use]
    pub fn template(&self) -> &MemberParams {
        &self.template
    }

    /// Asks the DNS once.
    pub(super) async fn lookup(&self, resolver: &DnsResolver) -> Result<Answer, Lookup> {
        match &self.records {
            DnsRecords::Address => {
                let (ips, ttl) = resolver.addresses(self.name()).await?;
                let port = self.template.url.port();
                let members = ips
                    .into_iter()
                    .filter_map(|ip| self.member(ip, port))
                    .collect::<Vec<_>>();
                Ok(Answer::new(members, ttl))
            }
            DnsRecords::Srv(name) => {
                let (records, ttl) = resolver.srv(name).await?;
                self.srv_members(resolver, records, ttl).await
            }
        }
    }

    /// The members of SRV records: each target's addresses, looked up together.
    async fn srv_members(
        &self,
        resolver: &DnsResolver,
        records: Vec<(u16, u16, u16, String)>,
        ttl: Duration,
    ) -> Result<Answer, Lookup> {
        // RFC 2782: a lone target of "." says the service is not offered here.
        let records: Vec<_> = records
            .into_iter()
            .filter(|(_, _, _, target)| target != "." && !target.is_empty())
            .take(MAX_MEMBERS)
            .collect();
        let targets: HashSet<&str> = records.iter().map(|r| r.3.as_str()).collect();
        let mut lookups = tokio::task::JoinSet::new();
        for target in targets {
            let resolver = resolver.clone();
            let target = target.to_owned();
            lookups.spawn(async move {
                let result = resolver.addresses(&target).await;
                (target, result)
            });
        }
        let mut addresses = BTreeMap::new();
        let mut ttl = ttl;
        while let Some(joined) = lookups.join_next().await {
            let Ok((target, result)) = joined else {
                return Err(Lookup::Failed("a target lookup did not finish".to_owned()));
            };
            match result {
                Ok((ips, target_ttl)) => {
                    ttl = ttl.min(target_ttl);
                    addresses.insert(target, ips);
                }
                // A target without address is left out (others may have some).
                Err(Lookup::Empty) => {
                    addresses.insert(target, Vec::new());
                }
                Err(failed @ Lookup::Failed(_)) => return Err(failed),
            }
        }
        let factors = srv_load_factors(&records);
        let sets = srv_lb_sets(&records);
        let mut members = Vec::new();
        for (i, (_, _, port, target)) in records.iter().enumerate() {
            for &ip in addresses.get(target).map_or(&[][..], Vec::as_slice) {
                if let Some(mut member) = self.member(ip, *port) {
                    member.load_factor = factors[i];
                    member.lb_set = sets[i];
                    members.push(member);
                }
            }
        }
        Ok(Answer::new(members, ttl))
    }

    /// The template on `ip:port`; `None` for an address no member can have.
    fn member(&self, ip: IpAddr, port: u16) -> Option<MemberParams> {
        if !usable(ip) || port == 0 {
            tracing::warn!(
                name = self.name(),
                address = %ip,
                port,
                "DNS discovery: an answer names an address or port no member can have (unspecified, multicast, broadcast, port 0): left out"
            );
            return None;
        }
        let url = &self.template.url;
        let host = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        let text = format!("{}://{host}:{port}{}", url.scheme(), url.path());
        match MemberUrl::new(&text) {
            Ok(url) => {
                let mut member = self.template.clone();
                member.url = url;
                Some(member)
            }
            Err(error) => {
                tracing::warn!(%error, url = %text, "a discovered address makes no member URL");
                None
            }
        }
    }
}

/// Whether a member can be at `ip`: not the unspecified address (a connection to
/// `0.0.0.0` reaches this host), not multicast or broadcast.
pub(super) fn usable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    }
}

/// The members of one answer, and how long they hold.
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) members: Vec<MemberParams>,
    pub(super) ttl: Duration,
}

impl Answer {
    fn new(mut members: Vec<MemberParams>, ttl: Duration) -> Self {
        // One member per URL (two SRV records naming one target and port: the first).
        let mut seen = HashSet::new();
        members.retain(|m| seen.insert(m.url.clone()));
        if members.len() > MAX_MEMBERS {
            tracing::warn!(
                count = members.len(),
                "a DNS answer gives more than {MAX_MEMBERS} members: the first {MAX_MEMBERS} are used"
            );
            members.truncate(MAX_MEMBERS);
        }
        Self { members, ttl }
    }
}

/// SRV weights as `loadfactor`s (1 to 100): within each priority, the largest weight is
/// 100 and the others in proportion, rounded, at least 1 (a weight of 0 is 1: RFC 2782
/// gives it "a very small chance"); when every weight of a priority is 0, all are 1
/// (equal shares).
pub(super) fn srv_load_factors(records: &[(u16, u16, u16, String)]) -> Vec<LoadFactor> {
    let mut max_weight: BTreeMap<u16, u16> = BTreeMap::new();
    for (priority, weight, _, _) in records {
        let max = max_weight.entry(*priority).or_insert(0);
        *max = (*max).max(*weight);
    }
    records
        .iter()
        .map(|(priority, weight, _, _)| {
            let max = max_weight.get(priority).copied().unwrap_or(0);
            let factor = if max == 0 {
                1
            } else {
                (u32::from(*weight) * 100 + u32::from(max) / 2) / u32::from(max)
            };
            // 1..=100 is `loadfactor`'s range, times 100 as the core keeps it.
            LoadFactor::from_lbf(factor.clamp(1, 100) * 100).unwrap_or(LoadFactor::ONE)
        })
        .collect()
}

/// SRV priorities as `lbset`s: the lowest priority is set 0, the next 1 … (RFC 2782:
/// lower priorities are tried first, as lower lbsets are), capped at 99.
pub(super) fn srv_lb_sets(records: &[(u16, u16, u16, String)]) -> Vec<LbSet> {
    let mut priorities: Vec<u16> = records.iter().map(|r| r.0).collect();
    priorities.sort_unstable();
    priorities.dedup();
    records
        .iter()
        .map(|(priority, _, _, _)| {
            let rank = priorities.partition_point(|p| p < priority).min(99);
            LbSet::new(u8::try_from(rank).unwrap_or(99)).unwrap_or_default()
        })
        .collect()
}
