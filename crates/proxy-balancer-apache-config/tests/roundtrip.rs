//! `parse(config.render()) == config` for generated configurations (spans aside).

use std::time::Duration;

use proptest::prelude::*;
use proxy_balancer_apache_config::{
    parse, AllowEncodedSlashes, BalancerConfig, Config, Context, CookieRewrite, HcExpr, HcTemplate,
    HeaderAction, HeaderCondition, HeaderDirective, HostSettings, LocationConfig, ManagerLocation,
    MemberConfig, Param, ProxyPassConfig, ProxyPassReverseConfig, ProxyTarget, ServerName, Span,
    VirtualHostConfig,
};

fn param(key: &str, value: String) -> Param {
    Param {
        key: key.to_owned(),
        value,
        span: Span::default(),
    }
}

fn name() -> impl Strategy<Value = String> {
    // Not `v…`: the virtual hosts' balancers are `vb0` … (no clash with the main server's).
    "[a-u][a-z0-9_-]{0,10}"
}

fn member_param(templates: usize, exprs: usize) -> impl Strategy<Value = Param> {
    prop_oneof![
        (1u32..100, 0u32..100).prop_map(|(w, f)| param("loadfactor", format!("{w}.{f:02}"))),
        (0u8..=99).prop_map(|n| param("lbset", n.to_string())),
        "[A-Za-z0-9.-]{1,20}".prop_map(|r| param("route", r)),
        "[A-Za-z0-9.-]{1,20}".prop_map(|r| param("Redirect", r)),
        (0u32..1000).prop_map(|n| param("retry", n.to_string())),
        prop::sample::select(vec!["+H", "D", "-H+D+S", "s-e", "+R", "N"])
            .prop_map(|s| param("status", s.to_owned())),
        (1u32..1000).prop_map(|n| param("connectiontimeout", format!("{n}ms"))),
        (1u32..1000).prop_map(|n| param("timeout", n.to_string())),
        prop::sample::select(vec!["On", "off"]).prop_map(|v| param("keepalive", v.to_owned())),
        prop::sample::select(vec!["TCP", "get", "HEAD11", "OPTIONS"])
            .prop_map(|v| param("hcmethod", v.to_owned())),
        (100u32..100_000).prop_map(|n| param("hcinterval", format!("{n}ms"))),
        (0u32..10).prop_map(|n| param("hcfails", n.to_string())),
        // No whitespace: the core refuses it in `hcuri` (it would break the request line);
        // quoting of values with spaces is exercised by `secret`.
        "/[a-z/\"?=&]{0,30}".prop_map(|u| param("hcuri", u)),
        (512u32..100_000).prop_map(|n| param("iobuffersize", n.to_string())),
        "[a-z0-9 ]{1,20}".prop_map(|s| param("secret", s)),
        (0..templates.max(1)).prop_map(move |i| if templates > 0 {
            param("hctemplate", format!("t{i}"))
        } else {
            param("hcpasses", i.to_string())
        }),
        (0..exprs.max(1)).prop_map(move |i| if exprs > 0 {
            param("hcexpr", format!("e{i}"))
        } else {
            param("min", i.to_string())
        }),
    ]
}

fn balancer_param() -> impl Strategy<Value = Param> {
    prop_oneof![
        prop::sample::select(vec!["byrequests", "bytraffic", "bybusyness"])
            .prop_map(|v| param("lbmethod", v.to_owned())),
        (0u32..10).prop_map(|n| param("maxattempts", n.to_string())),
        prop::sample::select(vec!["On", "Off"]).prop_map(|v| param("nofailover", v.to_owned())),
        ("[A-Z]{1,10}", prop::option::of("[a-z]{1,10}")).prop_map(|(c, u)| param(
            "stickysession",
            match u {
                Some(u) => format!("{c}|{u}"),
                None => c,
            }
        )),
        prop::sample::select(vec![".", "~", "Off"])
            .prop_map(|v| param("stickysessionsep", v.to_owned())),
        prop::collection::vec(100u16..600, 1..4).prop_map(|codes| param(
            "failonstatus",
            codes
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(",")
        )),
        (1u8..=100).prop_map(|n| param("growth", n.to_string())),
        "[a-z0-9]{1,36}".prop_map(|v| param("nonce", v)),
    ]
}

fn url() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["http", "https"]),
        "[a-z][a-z0-9.-]{0,12}",
        1u16..,
        "(/[a-z0-9]{1,5}){0,2}",
    )
        .prop_map(|(s, h, p, path)| format!("{s}://{h}:{p}{path}"))
}

fn cookie_rewrites() -> impl Strategy<Value = Vec<CookieRewrite>> {
    prop::collection::vec(
        ("[a-z./ ${}]{0,12}", "[a-z./ ${}]{0,12}", any::<bool>()).prop_map(
            |(internal, public, interpolate)| CookieRewrite {
                internal,
                public,
                interpolate,
                context: Default::default(),
                span: Span::default(),
            },
        ),
        0..3,
    )
}

/// The site directives: `ServerName`, `ProxyPreserveHost`, `ProxyAddHeaders` and the cookie
/// rewrites.
#[expect(
    clippy::type_complexity,
    reason = "a strategy's tuple, named where it is used"
)]
fn site() -> impl Strategy<
    Value = (
        Option<ServerName>,
        Option<bool>,
        Option<bool>,
        Vec<CookieRewrite>,
        Vec<CookieRewrite>,
    ),
> {
    let server_name = (
        prop::option::of(prop::sample::select(vec!["http", "https"])),
        prop_oneof!["[a-z0-9][a-z0-9.-]{0,20}", "\\[[0-9a-f:]{1,10}\\]"],
        prop::option::of(1u16..),
    )
        .prop_map(|(scheme, host, port)| ServerName {
            scheme: scheme.map(str::to_owned),
            host,
            port,
            span: Span::default(),
        });
    (
        prop::option::of(server_name),
        prop::option::of(any::<bool>()),
        prop::option::of(any::<bool>()),
        cookie_rewrites(),
        cookie_rewrites(),
    )
}

fn base() -> impl Strategy<Value = Config> {
    (0usize..3, 0usize..3).prop_flat_map(|(nt, ne)| {
        let exprs = prop::collection::vec(
            "[a-zA-Z0-9%{}_ =~/^'\"()!-]{1,40}"
                .prop_map(|s| s.trim().to_owned())
                .prop_filter("non-empty", |s| !s.is_empty()),
            ne,
        );
        let templates = prop::collection::vec(
            prop::collection::vec(
                prop_oneof![
                    prop::sample::select(vec!["TCP", "GET"])
                        .prop_map(|v| param("hcmethod", v.to_owned())),
                    (0u32..10).prop_map(|n| param("hcpasses", n.to_string())),
                    (1u32..100).prop_map(|n| param("hcinterval", n.to_string())),
                ],
                0..4,
            ),
            nt,
        );
        let balancers = prop::collection::btree_map(
            name(),
            (
                prop::collection::vec(
                    (url(), prop::collection::vec(member_param(nt, ne), 0..5)),
                    0..4,
                ),
                prop::collection::vec(balancer_param(), 0..4),
                prop::collection::vec(
                    (
                        "/[a-z]{0,6}",
                        "(/[a-z]{1,4})?",
                        prop::collection::vec(balancer_param(), 0..3),
                    ),
                    0..3,
                ),
            ),
            0..4,
        );
        let others = (
            prop::collection::vec(
                prop_oneof![
                    (
                        "/[a-z]{0,6}",
                        url(),
                        prop::collection::vec(member_param(nt, ne), 0..4)
                    )
                        .prop_map(|(p, u, params)| (
                            p,
                            ProxyTarget::Url(u),
                            params
                        )),
                    "/[a-z]{0,6}".prop_map(|p| (p, ProxyTarget::Exclude, Vec::new())),
                ],
                0..3,
            ),
            prop::collection::vec(("/[a-z]{0,6}", url()), 0..3),
            prop::collection::vec(header(), 0..3),
            prop::collection::vec(
                (
                    "/[a-z-]{1,12}",
                    prop::collection::vec("(ip|host) [a-z0-9./]{1,12}", 0..3),
                ),
                0..2,
            ),
            (
                prop::option::of(0u32..=1000),
                prop::option::of(any::<bool>()),
                prop::option::of(any::<bool>()),
                prop::option::of(1u64..10_000),
            ),
        );
        (exprs, templates, balancers, others, site()).prop_map(
            |(
                exprs,
                templates,
                balancers,
                (plain, reverses, headers, locations, globals),
                site,
            )| {
                let mut c = Config::default();
                (
                    c.server.server_name,
                    c.server.proxy_preserve_host,
                    c.server.proxy_add_headers,
                    c.proxy_pass_reverse_cookie_domains,
                    c.proxy_pass_reverse_cookie_paths,
                ) = site;
                c.hc_exprs = exprs
                    .into_iter()
                    .enumerate()
                    .map(|(i, expr)| HcExpr {
                        name: format!("e{i}"),
                        expr,
                        span: Span::default(),
                    })
                    .collect();
                c.hc_templates = templates
                    .into_iter()
                    .enumerate()
                    .map(|(i, params)| HcTemplate {
                        name: format!("t{i}"),
                        params,
                        span: Span::default(),
                    })
                    .collect();
                for (n, (members, own, passes)) in balancers {
                    let name = format!("balancer://{n}");
                    let mut seen = std::collections::HashSet::new();
                    let members = members
                        .into_iter()
                        .filter(|(u, _)| seen.insert(u.clone()))
                        .map(|(url, params)| MemberConfig {
                            url,
                            params,
                            span: Span::default(),
                        })
                        .collect();
                    let mut params = own;
                    for (path, sub, pp) in passes {
                        params.extend(pp.iter().cloned());
                        c.proxy_passes.push(ProxyPassConfig {
                            path,
                            target: ProxyTarget::Balancer {
                                name: name.clone(),
                                path: sub,
                            },
                            params: pp,
                            nocanon: false,
                            regex: false,
                            noquery: false,
                            interpolate: false,
                            context: Default::default(),
                            span: Span::default(),
                        });
                    }
                    c.balancers.push(BalancerConfig {
                        name,
                        params,
                        members,
                        context: Default::default(),
                        span: Span::default(),
                    });
                }
                for (path, target, params) in plain {
                    c.proxy_passes.push(ProxyPassConfig {
                        path,
                        target,
                        params,
                        nocanon: false,
                        regex: false,
                        noquery: false,
                        interpolate: false,
                        context: Default::default(),
                        span: Span::default(),
                    });
                }
                c.proxy_pass_reverses = reverses
                    .into_iter()
                    .map(|(path, target)| ProxyPassReverseConfig {
                        path,
                        target,
                        context: Default::default(),
                        span: Span::default(),
                    })
                    .collect();
                c.headers = headers;
                for (path, requires) in locations {
                    let mut location = LocationConfig::default();
                    location.path.clone_from(&path);
                    c.manager_locations.push(ManagerLocation {
                        path,
                        requires,
                        context: Context {
                            vhost: None,
                            location: Some(c.locations.len()),
                        },
                        span: Span::default(),
                    });
                    c.locations.push(location);
                }
                (
                    c.balancer_growth,
                    c.balancer_persist,
                    c.server.balancer_inherit,
                ) = (globals.0, globals.1, globals.2);
                c.proxy_timeout = globals.3.map(Duration::from_secs);
                c
            },
        )
    })
}

/// The keywords `nocanon`, `noquery`, `interpolate`.
fn flags() -> impl Strategy<Value = (bool, bool, bool)> {
    (any::<bool>(), any::<bool>(), any::<bool>())
}

fn header() -> impl Strategy<Value = HeaderDirective> {
    (
        any::<bool>(),
        prop::sample::select(vec!["add", "set", "append", "merge", "setifempty", "unset"]),
        "[A-Za-z-]{1,12}",
        // A value mod_headers reads back as written: no `%` format (an unknown one is an
        // error), no `\n`/`\r` escape (refused).
        "[ -~]{0,40}".prop_filter("a plain value", |v| {
            !v.ends_with('\\') && !v.contains('%') && !v.contains("\\n") && !v.contains("\\r")
        }),
        prop::option::of("!?[A-Z_]{1,12}"),
    )
        .prop_map(|(always, action, name, value, env)| HeaderDirective {
            request: false,
            always,
            action: match action {
                "add" => HeaderAction::Add,
                "set" => HeaderAction::Set,
                "append" => HeaderAction::Append,
                "merge" => HeaderAction::Merge,
                "setifempty" => HeaderAction::SetIfEmpty,
                _ => HeaderAction::Unset,
            },
            name,
            value: if action == "unset" {
                String::new()
            } else {
                value
            },
            replacement: None,
            condition: env.map(|env: String| match env.strip_prefix('!') {
                Some(name) => HeaderCondition::Env {
                    name: name.to_owned(),
                    negated: true,
                },
                None => HeaderCondition::Env {
                    name: env,
                    negated: false,
                },
            }),
            context: Context::default(),
            span: Span::default(),
        })
}

/// A `ProxyPass` as generated: target, parameters, keywords, and (in a plain `<Location>`)
/// whether it is a `ProxyPassMatch`.
type PassGen = (ProxyTarget, Vec<Param>, (bool, bool, bool), bool);

fn pass_gen() -> impl Strategy<Value = PassGen> {
    (
        prop_oneof![url().prop_map(ProxyTarget::Url), Just(ProxyTarget::Exclude),],
        prop::option::of(prop::sample::select(vec!["servlet", "encoded"])),
        prop::option::of(0u32..100),
        flags(),
        any::<bool>(),
    )
        .prop_map(|(target, mapping, retry, flags, is_match)| {
            let mut params = Vec::new();
            if !matches!(target, ProxyTarget::Exclude) {
                if let Some(r) = retry {
                    params.push(param("retry", r.to_string()));
                }
                if let Some(m) = mapping {
                    params.push(param("mapping", m.to_owned()));
                }
            }
            (target, params, flags, is_match)
        })
}

/// A `<Location>`/`<LocationMatch>` and what it holds (maybe nothing).
#[derive(Clone, Debug)]
struct LocationGen {
    path: String,
    regex: bool,
    manager: Option<Vec<String>>,
    passes: Vec<PassGen>,
    reverses: Vec<String>,
    headers: Vec<HeaderDirective>,
    cookies: Vec<CookieRewrite>,
}

fn location_gen() -> impl Strategy<Value = LocationGen> {
    (
        prop_oneof![
            "/[a-z]{1,6}".prop_map(|p| (p, false)),
            "\\^/[a-z]{1,4}(/\\(\\.\\*\\))?".prop_map(|p| (p, true)),
        ],
        prop::option::of(prop::collection::vec("ip 127\\.0\\.0\\.[0-9]", 0..2)),
        prop::collection::vec(pass_gen(), 0..2),
        prop::collection::vec(url(), 0..2),
        prop::collection::vec(header(), 0..2),
        cookie_rewrites(),
    )
        .prop_map(
            |((path, regex), manager, passes, reverses, headers, cookies)| LocationGen {
                path,
                regex,
                manager,
                passes,
                reverses,
                headers,
                cookies,
            },
        )
}

/// A virtual host's balancer: member URLs, `ProxySet` parameters, and its `ProxyPass` lines
/// (path, balancer parameters).
type VhostBalancerGen = (Vec<String>, Vec<Param>, Vec<(String, Vec<Param>)>);

/// A `<VirtualHost>`: its settings, balancers (`vb0` …, members and parameters), its own
/// `ProxyPass`/`ProxyPassMatch` lines and locations.
#[derive(Clone, Debug)]
struct VhostGen {
    addresses: Vec<String>,
    settings: HostSettings,
    balancers: Vec<VhostBalancerGen>,
    passes: Vec<(String, bool, PassGen)>,
    headers: Vec<HeaderDirective>,
    locations: Vec<LocationGen>,
}

fn vhost_gen() -> impl Strategy<Value = VhostGen> {
    let settings = (
        prop::option::of("[a-z][a-z0-9.-]{0,12}"),
        prop::collection::vec("[a-z*?][a-z0-9.*?-]{0,10}", 0..3),
        prop::option::of(any::<bool>()),
        prop::option::of(any::<bool>()),
        prop::option::of(prop::sample::select(vec![
            AllowEncodedSlashes::On,
            AllowEncodedSlashes::Off,
            AllowEncodedSlashes::NoDecode,
        ])),
        prop::option::of(any::<bool>()),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(name, aliases, preserve, add, slashes, ppi, bi)| {
            let mut h = HostSettings::default();
            h.server_name = name.map(|host| ServerName {
                scheme: None,
                host,
                port: None,
                span: Span::default(),
            });
            h.server_aliases = aliases;
            h.proxy_preserve_host = preserve;
            h.proxy_add_headers = add;
            h.allow_encoded_slashes = slashes;
            h.proxy_pass_inherit = ppi;
            h.balancer_inherit = bi;
            h
        });
    (
        prop::collection::vec(
            prop::sample::select(vec!["*:80", "127.0.0.1:8080", "[::1]:81", "_default_:443"]),
            1..3,
        ),
        settings,
        prop::collection::vec(
            (
                prop::collection::vec(url(), 1..3),
                prop::collection::vec(balancer_param(), 0..2),
                prop::collection::vec(
                    ("/[a-z]{0,6}", prop::collection::vec(balancer_param(), 0..2)),
                    0..2,
                ),
            ),
            0..3,
        ),
        prop::collection::vec(
            ("/[a-z]{0,6}(\\(\\.\\*\\))?", any::<bool>(), pass_gen()),
            0..3,
        ),
        prop::collection::vec(header(), 0..2),
        prop::collection::vec(location_gen(), 0..2),
    )
        .prop_map(
            |(addresses, settings, balancers, passes, headers, locations)| VhostGen {
                addresses: addresses.into_iter().map(str::to_owned).collect(),
                settings,
                balancers,
                passes,
                headers,
                locations,
            },
        )
}

/// Adds a location and what it holds, in the order `render` writes them.
fn add_location(c: &mut Config, vhost: Option<usize>, l: LocationGen) {
    let index = c.locations.len();
    let context = Context {
        vhost,
        location: Some(index),
    };
    let mut location = LocationConfig::default();
    location.path.clone_from(&l.path);
    location.regex = l.regex;
    location.vhost = vhost;
    c.locations.push(location);
    if let Some(requires) = l.manager {
        c.manager_locations.push(ManagerLocation {
            path: l.path.clone(),
            requires,
            context,
            span: Span::default(),
        });
    }
    for (target, params, (nocanon, noquery, interpolate), is_match) in l.passes {
        c.proxy_passes.push(ProxyPassConfig {
            path: l.path.clone(),
            target,
            params,
            nocanon,
            // `ProxyPassMatch` (rendered so in a `<LocationMatch>`, where a `ProxyPass` reads
            // the path as a regular expression only when it has a wildcard, as in Apache).
            regex: is_match || l.regex,
            noquery,
            interpolate,
            context,
            span: Span::default(),
        });
    }
    for target in l.reverses {
        c.proxy_pass_reverses.push(ProxyPassReverseConfig {
            path: l.path.clone(),
            target,
            context,
            span: Span::default(),
        });
    }
    for mut h in l.headers {
        h.context = context;
        c.headers.push(h);
    }
    for mut r in l.cookies {
        r.context = context;
        c.proxy_pass_reverse_cookie_paths.push(r);
    }
}

/// The base configuration (main server) plus locations in it and virtual hosts, in the
/// order `render` writes them.
fn config() -> impl Strategy<Value = Config> {
    (
        base(),
        prop::collection::vec(location_gen(), 0..3),
        prop::collection::vec(vhost_gen(), 0..3),
    )
        .prop_map(|(mut c, locations, vhosts)| {
            for l in locations {
                add_location(&mut c, None, l);
            }
            for (v, g) in vhosts.into_iter().enumerate() {
                let mut vh = VirtualHostConfig::default();
                vh.addresses = g.addresses;
                vh.settings = g.settings;
                c.virtual_hosts.push(vh);
                let context = Context {
                    vhost: Some(v),
                    location: None,
                };
                for (b, (urls, own, passes)) in g.balancers.into_iter().enumerate() {
                    let name = format!("balancer://vb{b}");
                    let mut seen = std::collections::HashSet::new();
                    let members = urls
                        .into_iter()
                        .filter(|u| seen.insert(u.clone()))
                        .map(|url| MemberConfig {
                            url,
                            params: Vec::new(),
                            span: Span::default(),
                        })
                        .collect();
                    let mut params = own;
                    for (path, pp) in passes {
                        params.extend(pp.iter().cloned());
                        c.proxy_passes.push(ProxyPassConfig {
                            path,
                            target: ProxyTarget::Balancer {
                                name: name.clone(),
                                path: String::new(),
                            },
                            params: pp,
                            nocanon: false,
                            regex: false,
                            noquery: false,
                            interpolate: false,
                            context,
                            span: Span::default(),
                        });
                    }
                    c.balancers.push(BalancerConfig {
                        name,
                        params,
                        members,
                        context,
                        span: Span::default(),
                    });
                }
                for (path, regex, (target, params, (nocanon, noquery, interpolate), _)) in g.passes
                {
                    c.proxy_passes.push(ProxyPassConfig {
                        path: if regex { format!("^{path}") } else { path },
                        target,
                        params,
                        nocanon,
                        regex,
                        noquery,
                        interpolate,
                        context,
                        span: Span::default(),
                    });
                }
                for mut h in g.headers {
                    h.context = context;
                    c.headers.push(h);
                }
                for l in g.locations {
                    add_location(&mut c, Some(v), l);
                }
            }
            c
        })
}

proptest! {
    #[test]
    fn parse_render_round_trip(config in config()) {
        let text = config.render();
        let parsed = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(parsed.without_spans(), config, "{}", text);
        prop_assert_eq!(format!("{parsed}"), text.as_str());
        // Every plain-url ProxyPass converts to a one-member balancer.
        for pass in parsed.proxy_passes.iter().filter(|p| matches!(p.target, ProxyTarget::Url(_))) {
            let (_, members) = parsed
                .url_worker_balancer(pass)
                .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            prop_assert_eq!(members.len(), 1);
        }
    }
}
