//! Members discovered from DNS: the `discover=` parameter of a `BalancerMember`, and the
//! `ProxyDiscoverNameserver` directive (neither is Apache's).
//!
//! ```text
//! ProxyDiscoverNameserver 10.0.0.2 10.0.0.3:5353
//! <Proxy "balancer://api">
//!     BalancerMember "http://api.internal:8080/app" discover=dns retry=5 hcmethod=GET hcuri=/health
//!     BalancerMember "http://api.internal/app" discover=srv
//!     BalancerMember "http://static-1:8080"
//! </Proxy>
//! ```
//!
//! | form | members |
//! | --- | --- |
//! | `discover=dns` | one per A and AAAA record of the URL's host, on the URL's port and path, with the line's other parameters |
//! | `discover=srv` | one per address of each target of the SRV records of `_http._tcp.HOST` (`_https` would be TLS, which is refused), on the record's port; the record's weight gives `loadfactor` (the largest weight of a priority is 100, the others in proportion, at least 1) and its priority `lbset` (the lowest priority is set 0, the next 1 …) |
//! | `discover=srv:NAME` | the same for the SRV records of `NAME` (`_grpc._tcp.api.internal`) |
//!
//! A discover line is not itself a member: [`Config::balancers`] leaves it out, and
//! [`Config::discovered_members`] gives its template. Refused, with the line and column:
//! an unknown form; a host that is an IP address (nothing to resolve); a TLS member
//! (`https`, `wss`, `h2`: its certificate would be checked against the address); `route`
//! or `redirect` (every discovered member would carry the same route); `loadfactor` or
//! `lbset` with `discover=srv` (the records give them); and the worker options the member
//! client looks up by URL (`iobuffersize`, `receivebuffersize`, `responsefieldsize`,
//! `acquire`, `ping`, `addressttl`, `upgrade`), which discovered members would not get.
//! `discover=` on a `ProxyPass` or `ProxySet` line is refused too: it belongs on a
//! `BalancerMember`.
//!
//! `ProxyDiscoverNameserver` (main server only) names the nameservers asked, as IP
//! addresses with an optional port (53 by default), over UDP and TCP; without it the
//! system's resolver configuration (`/etc/resolv.conf`) is used.
//!
//! ```
//! use proxy_balancer_apache_config::discovery::Discover;
//!
//! let config = proxy_balancer_apache_config::parse(
//!     "ProxyDiscoverNameserver 127.0.0.1:5353\n\
//!      <Proxy balancer://api>\n\
//!        BalancerMember http://api.internal:8080 discover=dns retry=5\n\
//!        BalancerMember http://static:8080\n\
//!      </Proxy>\n",
//! )?;
//! let found = config.discovered_members()?;
//! assert_eq!(found[0].discover, Discover::Dns);
//! assert_eq!(found[0].template.retry.as_secs(), 5);
//! assert_eq!(config.balancers()?[0].1.len(), 1, "the discover line is no member itself");
//! let ns = config.discover_nameservers.as_ref().map(|n| n.addrs.clone());
//! assert_eq!(ns, Some(vec!["127.0.0.1:5353".parse()?]));
//!
//! let err = proxy_balancer_apache_config::parse(
//!     "<Proxy balancer://api>\n  BalancerMember https://api.internal discover=dns\n</Proxy>\n",
//! )
//! .unwrap_err();
//! assert!(err.to_string().contains("line 2"), "{err}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::net::{IpAddr, SocketAddr};

use proxy_balancer_core::MemberParams;

use crate::ast::{Config, MemberConfig, Param, Span};
use crate::doctor::{Finding, Severity};
use crate::error::{ParseError, ParseErrorKind, ParseErrors};
use crate::lexer::Token;

/// The member parameters of this module (lower-case).
pub const DISCOVERY_KEYS: &[&str] = &["discover"];

/// Worker options the member client finds by the member's URL: a discovered member (whose
/// URL holds its address) would not get them, so they are refused on a discover line.
const BY_URL_KEYS: &[&str] = &[
    "iobuffersize",
    "receivebuffersize",
    "responsefieldsize",
    "acquire",
    "ping",
    "addressttl",
    "upgrade",
];

/// Whether `key` (any case) is a parameter of this module.
pub(crate) fn is_key(key: &str) -> bool {
    DISCOVERY_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key))
}

/// How a `BalancerMember` line's members are discovered.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Discover {
    /// `discover=dns`: the A and AAAA records of the URL's host.
    Dns,
    /// `discover=srv` (`name` `None`: `_http._tcp.HOST`) or `discover=srv:NAME`.
    Srv {
        /// The SRV name, when written.
        name: Option<String>,
    },
}

impl Discover {
    /// Reads a `discover=` value: `dns`, `srv` or `srv:NAME` (any case).
    ///
    /// # Errors
    ///
    /// What is wrong with the value, for the parser's error.
    pub fn parse(value: &str) -> Result<Self, String> {
        let v = value.trim();
        if v.eq_ignore_ascii_case("dns") {
            return Ok(Self::Dns);
        }
        if v.eq_ignore_ascii_case("srv") {
            return Ok(Self::Srv { name: None });
        }
        if let Some((kind, name)) = v.split_once(':') {
            if kind.eq_ignore_ascii_case("srv") {
                let name = name.trim();
                let valid = !name.is_empty()
                    && name.len() <= 253
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
                if !valid {
                    return Err(format!("\"{name}\" is not a DNS name"));
                }
                return Ok(Self::Srv {
                    name: Some(name.to_owned()),
                });
            }
        }
        Err("must be dns, srv or srv:NAME".to_owned())
    }
}

/// A `BalancerMember … discover=` line: where it is and the member its discovered members
/// are made from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiscoveredMember {
    /// The balancer, as an index in [`Config::balancers`](crate::Config::balancers).
    pub balancer: usize,
    /// The line, as an index in the balancer's [`members`](crate::BalancerConfig::members).
    pub member: usize,
    /// How its members are found.
    pub discover: Discover,
    /// The member each discovered one is made from: the line's URL and parameters
    /// (`timeout` defaulted as any member's).
    pub template: MemberParams,
    /// The `BalancerMember` line.
    pub span: Span,
}

/// `ProxyDiscoverNameserver`: the nameservers discovery asks.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiscoverNameservers {
    /// Their addresses (port 53 unless written).
    pub addrs: Vec<SocketAddr>,
    /// The directive.
    pub span: Span,
}

/// The `discover=` parameter of a member line, if any (the last one).
#[must_use]
pub fn member_discover(params: &[Param]) -> Option<&Param> {
    params.iter().rev().find(|p| is_key(&p.key))
}

/// Whether a member line is a discover line (whose members come from DNS).
#[must_use]
pub fn is_discovered(member: &MemberConfig) -> bool {
    member_discover(&member.params).is_some()
}

impl Config {
    /// The `BalancerMember … discover=` lines of every balancer, with their templates.
    ///
    /// # Errors
    ///
    /// [`ParseErrors`] for what the parser refuses too (a [`Config`] built by hand): an
    /// unknown form, a template that cannot be discovered (see the [module docs](self)).
    pub fn discovered_members(&self) -> Result<Vec<DiscoveredMember>, ParseErrors> {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for (b, balancer) in self.balancers.iter().enumerate() {
            for (m, member) in balancer.members.iter().enumerate() {
                let Some(param) = member_discover(&member.params) else {
                    continue;
                };
                let found = check_member(&member.url, &member.params);
                if !found.is_empty() {
                    errors.extend(found);
                    continue;
                }
                let Ok(discover) = Discover::parse(&param.value) else {
                    continue;
                };
                let mut member_errors = Vec::new();
                let Some(template) = self.convert_member(
                    &member.url,
                    &member.params,
                    member.span,
                    &mut member_errors,
                ) else {
                    errors.extend(member_errors);
                    continue;
                };
                if !member_errors.is_empty() {
                    errors.extend(member_errors);
                    continue;
                }
                out.push(DiscoveredMember {
                    balancer: b,
                    member: m,
                    discover,
                    template,
                    span: member.span,
                });
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(ParseErrors::new(errors))
        }
    }
}

/// The checks of a discover line (none without `discover=`): each error at the parameter
/// concerned.
pub(crate) fn check_member(url: &str, params: &[Param]) -> Vec<ParseError> {
    let Some(param) = member_discover(params) else {
        return Vec::new();
    };
    let refuse = |span: Span, message: String, hint: &str| {
        ParseError::new(span, ParseErrorKind::InvalidValue, message)
            .with_hint(Some(hint.to_owned()))
    };
    let discover = match Discover::parse(&param.value) {
        Ok(d) => d,
        Err(reason) => {
            return vec![refuse(
            param.span,
            format!(
                "invalid value \"{}\" for parameter `discover`: {reason}",
                param.value
            ),
            "discover=dns (A/AAAA records), discover=srv (_http._tcp.HOST) or discover=srv:NAME",
        )]
        }
    };
    let mut errors = Vec::new();
    if let Ok(parsed) = MemberParams::new(url) {
        let url = &parsed.url;
        if url.connect_host().parse::<IpAddr>().is_ok() {
            errors.push(refuse(
                param.span,
                format!(
                    "discover= on {url}: the host is an IP address: there is no name to resolve"
                ),
                "write the DNS name the members are found under, or drop discover=",
            ));
        }
        if url.tls() {
            errors.push(ParseError::new(
                param.span,
                ParseErrorKind::Unsupported,
                format!(
                    "discover= on {url}: a discovered member is reached by its address, so its TLS certificate would be checked against the address rather than {}: TLS members are not discovered",
                    url.connect_host()
                ),
            ).with_hint(Some("list the TLS members by name, one BalancerMember each".to_owned())));
        }
    }
    for p in params {
        let key = p.key.to_ascii_lowercase();
        let message = match key.as_str() {
            "route" | "redirect" => format!(
                "`{key}` on a discover= line: every discovered member would carry the same {key}"
            ),
            "loadfactor" | "lbset" if matches!(discover, Discover::Srv { .. }) => format!(
                "`{key}` with discover=srv: the SRV records give each member's {key} (weight and priority)"
            ),
            k if BY_URL_KEYS.contains(&k) => format!(
                "`{key}` on a discover= line is not applied to discovered members (the member client finds it by the member's URL, which holds the address)"
            ),
            _ => continue,
        };
        errors.push(
            ParseError::new(p.span, ParseErrorKind::Unsupported, message)
                .with_hint(Some(format!("remove {key}= from the discover= line"))),
        );
    }
    errors
}

/// The error for `discover=` where it does not belong (`ProxyPass`, `ProxySet`).
pub(crate) fn misplaced(p: &Param) -> ParseError {
    ParseError::new(
        p.span,
        ParseErrorKind::Unsupported,
        "discover= is a BalancerMember parameter: members are discovered into a balancer",
    )
    .with_hint(Some(
        "write <Proxy \"balancer://name\"> with BalancerMember \"URL\" discover=dns, and ProxyPass to balancer://name".to_owned(),
    ))
}

/// `ProxyDiscoverNameserver ADDR[:PORT] …`.
pub(crate) fn nameservers(span: Span, args: &[Token]) -> Result<DiscoverNameservers, ParseError> {
    if args.is_empty() {
        return Err(ParseError::new(
            span,
            ParseErrorKind::Syntax,
            "ProxyDiscoverNameserver takes one or more IP addresses, each with an optional port",
        ));
    }
    let mut addrs = Vec::with_capacity(args.len());
    for a in args {
        let text = a.text.trim();
        let addr = text.parse::<SocketAddr>().ok().or_else(|| {
            text.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, 53))
        });
        match addr {
            Some(addr) if addr.port() != 0 => addrs.push(addr),
            _ => {
                return Err(ParseError::new(
                    a.span,
                    ParseErrorKind::InvalidValue,
                    format!(
                        "invalid value \"{}\" for ProxyDiscoverNameserver: must be an IP address with an optional port (10.0.0.2, 10.0.0.2:5353, [fd00::2]:53)",
                        a.text
                    ),
                )
                .with_hint(Some("a nameserver is named by its address: a host name would itself need resolving".to_owned())));
            }
        }
    }
    Ok(DiscoverNameservers { addrs, span })
}

/// The doctor's `discovered-members` rule: a note per discover line saying what runs; a
/// warning when its balancer has `stickysession` (discovered members have no `route`).
pub(crate) fn doctor(config: &Config, out: &mut Vec<Finding>) {
    for balancer in &config.balancers {
        let sticky = balancer
            .params
            .iter()
            .any(|p| p.key.eq_ignore_ascii_case("stickysession"));
        for m in balancer.members.iter().filter(|m| is_discovered(m)) {
            // A refused line is the parser's to report.
            if !check_member(&m.url, &m.params).is_empty() {
                continue;
            }
            let Some(Ok(discover)) = member_discover(&m.params).map(|p| Discover::parse(&p.value))
            else {
                continue;
            };
            let host = MemberParams::new(&m.url)
                .map(|p| p.url.connect_host().to_owned())
                .unwrap_or_default();
            let asked = match &discover {
                Discover::Dns => format!("the A and AAAA records of {host}"),
                Discover::Srv { name: Some(n) } => format!("the SRV records of {n}"),
                Discover::Srv { name: None } => format!("the SRV records of _http._tcp.{host}"),
            };
            let resolver = config.discover_nameservers.as_ref().map_or_else(
                || "the system's resolver (/etc/resolv.conf)".to_owned(),
                |n| {
                    let list: Vec<String> = n.addrs.iter().map(ToString::to_string).collect();
                    format!("ProxyDiscoverNameserver {}", list.join(" "))
                },
            );
            out.push(Finding {
                severity: if sticky { Severity::Warning } else { Severity::Note },
                rule: "discovered-members",
                span: m.span,
                what: format!(
                    "{} in {} is not a member itself: its members are {asked}, asked through {resolver}",
                    m.url, balancer.name
                ),
                causes: if sticky {
                    "discovered members have no route, so stickysession cannot pin a session to one of them: sessions move between them".to_owned()
                } else {
                    "the members follow the records (asked again as their TTL says, 1 s to 60 s); a failed lookup keeps the last members; a name without records keeps them 30 s, then removes them. Requests carry Host: ADDRESS:PORT unless ProxyPreserveHost On".to_owned()
                },
                fix: if sticky {
                    "list the members that need routes by name, one BalancerMember each with route=, or drop stickysession".to_owned()
                } else {
                    "nothing to change; see docs/discovery.md".to_owned()
                },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor;

    fn parse_err(text: &str) -> String {
        crate::parse(text).unwrap_err().to_string()
    }

    fn in_balancer(member: &str) -> String {
        format!("<Proxy balancer://api>\n  BalancerMember {member}\n</Proxy>\n")
    }

    /// A TLS discover line is a parse error whatever the SSLProxy* lines say: the doctor
    /// does not also advise `SSLProxyEngine On`, which would not make it start. A TLS
    /// member listed by name still gets that advice.
    #[test]
    fn a_tls_discover_line_gets_no_ssl_proxy_engine_advice() {
        let text = format!(
            "{}ProxyPass / balancer://api/\n",
            in_balancer("https://api.internal discover=dns")
        );
        let (config, errors) = crate::parse_partial(&text);
        assert!(
            errors.iter().any(|e| e.to_string().contains("TLS")),
            "{errors:?}"
        );
        let rules: Vec<&str> = doctor::check(&config).iter().map(|f| f.rule).collect();
        assert!(!rules.contains(&"ssl-proxy-engine-off"), "{rules:?}");

        let listed = format!(
            "{}ProxyPass / balancer://api/\n",
            in_balancer("https://api.internal")
        );
        let config = crate::parse(&listed).expect("valid");
        let rules: Vec<&str> = doctor::check(&config).iter().map(|f| f.rule).collect();
        assert!(rules.contains(&"ssl-proxy-engine-off"), "{rules:?}");
    }

    #[test]
    fn forms_are_read() {
        assert_eq!(Discover::parse("DNS"), Ok(Discover::Dns));
        assert_eq!(Discover::parse("srv"), Ok(Discover::Srv { name: None }));
        assert_eq!(
            Discover::parse("srv:_grpc._tcp.api.internal"),
            Ok(Discover::Srv {
                name: Some("_grpc._tcp.api.internal".into())
            })
        );
        for bad in ["", "a", "srv:", "srv:a b", "srv:a/b", "mdns"] {
            assert!(Discover::parse(bad).is_err(), "{bad}");
        }
    }

    /// Each refusal names the line and column of the parameter concerned.
    #[test]
    fn bad_lines_are_refused_with_line_and_column() {
        let cases = [
            (
                "http://api.internal discover=dsn",
                "line 2, column 38",
                "must be dns, srv",
            ),
            (
                "http://10.0.0.1 discover=dns",
                "line 2, column 34",
                "IP address",
            ),
            (
                "https://api.internal discover=dns",
                "line 2, column 39",
                "TLS",
            ),
            (
                "http://api.internal discover=dns route=a",
                "line 2, column 51",
                "same route",
            ),
            (
                "http://api.internal discover=srv lbset=1",
                "line 2, column 51",
                "SRV records give",
            ),
            (
                "http://api.internal discover=dns addressttl=5",
                "line 2, column 51",
                "not applied",
            ),
        ];
        for (member, at, says) in cases {
            let err = parse_err(&in_balancer(member));
            assert!(err.contains(at) && err.contains(says), "{member}: {err}");
        }
        let err = parse_err("ProxyPass /a http://api.internal discover=dns\n");
        assert!(err.contains("BalancerMember parameter"), "{err}");
        let err = parse_err("ProxyDiscoverNameserver ns1.example\n");
        assert!(
            err.contains("line 1, column 25") && err.contains("IP address"),
            "{err}"
        );
        let err = parse_err("ProxyDiscoverNameserver\n");
        assert!(err.contains("one or more"), "{err}");
        let err = parse_err("ProxyDiscoverNameserver 10.0.0.1:0\n");
        assert!(err.contains("ProxyDiscoverNameserver"), "{err}");
    }

    #[test]
    fn nameservers_and_templates() {
        let config = crate::parse(
            "ProxyDiscoverNameserver 10.0.0.2 [fd00::2] 10.0.0.3:5353\n\
             <Proxy balancer://api>\n\
               BalancerMember http://api.internal/app discover=srv loadfactor=3\n\
               BalancerMember http://api.internal:8080/app discover=dns lbset=1 hcmethod=GET\n\
               BalancerMember http://static:8080\n\
             </Proxy>\n",
        );
        let err = config.unwrap_err().to_string();
        assert!(err.contains("loadfactor"), "{err}");
        let config = crate::parse(
            "ProxyDiscoverNameserver 10.0.0.2 [fd00::2] 10.0.0.3:5353\n\
             <Proxy balancer://api>\n\
               BalancerMember http://api.internal/app discover=srv:_web._tcp.api.internal\n\
               BalancerMember http://api.internal:8080/app discover=dns lbset=1 hcmethod=GET\n\
               BalancerMember http://static:8080\n\
             </Proxy>\n",
        )
        .unwrap();
        let ns = config.discover_nameservers.clone().unwrap();
        let want: Vec<SocketAddr> = vec![
            "10.0.0.2:53".parse().unwrap(),
            "[fd00::2]:53".parse().unwrap(),
            "10.0.0.3:5353".parse().unwrap(),
        ];
        assert_eq!(ns.addrs, want);
        let found = config.discovered_members().unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[0].discover,
            Discover::Srv {
                name: Some("_web._tcp.api.internal".into())
            }
        );
        assert_eq!((found[1].balancer, found[1].member), (0, 1));
        assert_eq!(found[1].template.lb_set.get(), 1);
        assert_eq!(
            found[1].template.url.as_str(),
            "http://api.internal:8080/app"
        );
        let members = &config.balancers().unwrap()[0].1;
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].url.as_str(), "http://static:8080");

        let findings = doctor::check(&config);
        let ours: Vec<_> = findings
            .iter()
            .filter(|f| f.rule == "discovered-members")
            .collect();
        assert_eq!(ours.len(), 2);
        assert_eq!(ours[0].severity, Severity::Note);
        assert!(
            ours[0].what.contains("_web._tcp.api.internal"),
            "{}",
            ours[0]
        );
        assert!(
            ours[1].what.contains("ProxyDiscoverNameserver"),
            "{}",
            ours[1]
        );
    }

    #[test]
    fn sticky_balancers_are_warned() {
        let config = crate::parse(
            "<Proxy balancer://api>\n\
               BalancerMember http://api.internal:8080 discover=dns\n\
               ProxySet stickysession=ROUTEID\n\
             </Proxy>\n",
        )
        .unwrap();
        let f: Vec<_> = doctor::check(&config)
            .into_iter()
            .filter(|f| f.rule == "discovered-members")
            .collect();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(f[0].causes.contains("no route"));
        assert!(f[0].what.contains("/etc/resolv.conf"));
    }
}
