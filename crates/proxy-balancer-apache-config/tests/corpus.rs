//! Configurations in the shapes of Apache's manual and common guides: they all parse, go
//! into the core's types, and render back to the same configuration.

use std::path::Path;
use std::time::Duration;

use proxy_balancer_apache_config::{parse, Config, ProxyTarget};

fn load(name: &str) -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("a corpus file");
    match parse(&text) {
        Ok(config) => config,
        Err(e) => panic!("{name}:\n{e}"),
    }
}

fn member_param<'a>(config: &'a Config, b: usize, m: usize, key: &str) -> Option<&'a str> {
    config.balancers[b].members[m]
        .params
        .iter()
        .find(|p| p.key == key)
        .map(|p| p.value.as_str())
}

#[test]
fn every_corpus_file_parses_converts_and_round_trips() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("conf") {
            continue;
        }
        count += 1;
        let name = path.file_name().unwrap().to_str().unwrap();
        let config = load(name);
        config.balancers().unwrap_or_else(|e| panic!("{name}: {e}"));
        let rendered = config.render();
        let again = parse(&rendered).unwrap_or_else(|e| panic!("{name}: {e}\n{rendered}"));
        // Rendering writes a balancer's own parameters before its ProxyPass ones, so a
        // ProxySet written after the ProxyPass moves: compare the parameters sorted.
        let normal = |c: &Config| {
            let mut c = c.without_spans();
            c.skipped.clear();
            for b in &mut c.balancers {
                b.params
                    .sort_by(|x, y| (&x.key, &x.value).cmp(&(&y.key, &y.value)));
            }
            c
        };
        assert_eq!(normal(&again), normal(&config), "{name}:\n{rendered}");
    }
    assert!(count >= 6, "corpus files found: {count}");
}

#[test]
fn sticky_routes() {
    let c = load("sticky_routes.conf");
    assert_eq!(c.balancers.len(), 2);
    assert_eq!(member_param(&c, 0, 1, "route"), Some("2"));
    assert_eq!(c.headers.len(), 3);
    let cookie = &c.headers[0];
    assert_eq!(
        (
            cookie.action.as_str(),
            cookie.name.as_str(),
            cookie.condition.clone()
        ),
        (
            "add",
            "Set-Cookie",
            Some(proxy_balancer_apache_config::HeaderCondition::Env {
                name: "BALANCER_ROUTE_CHANGED".into(),
                negated: false
            })
        )
    );
    assert_eq!(cookie.value, "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/");
    assert!(c.headers[1].always);
    let balancers = c.balancers().unwrap();
    let tomcats = &balancers[1].0;
    assert_eq!(
        tomcats.sticky_session.as_ref().map(|s| s.url_param()),
        Some("jsessionid")
    );
    assert!(tomcats.scolon_path_delim);
    assert_eq!(c.proxy_pass_reverses.len(), 2);
}

#[test]
fn lbsets_with_hot_standby() {
    let c = load("lbset_standby.conf");
    let balancers = c.balancers().unwrap();
    let (params, members) = &balancers[0];
    assert_eq!(members.len(), 6);
    assert_eq!(members[1].load_factor.lbf(), 150);
    assert_eq!(members[5].lb_set.get(), 2);
    assert_eq!(params.fail_on_status, vec![502, 503]);
    assert!(!params.force_recovery);
    assert_eq!(params.timeout, Duration::from_secs(5));
    assert_eq!(c.proxy_passes[1].target, ProxyTarget::Exclude);
    assert!(
        matches!(&c.proxy_passes[2].target, ProxyTarget::Url(u) if u.starts_with("http://legacy"))
    );
    assert_eq!(c.proxy_passes[2].params.len(), 3);
    assert_eq!(c.proxy_timeout, Some(Duration::from_secs(60)));
    // ProxyTimeout is every member's default timeout.
    assert_eq!(members[0].timeout, Some(Duration::from_secs(60)));
}

#[test]
fn timeout_is_the_members_default_without_proxy_timeout() {
    let text = "Timeout 10\n<Proxy balancer://b>\nBalancerMember http://a:1\nBalancerMember http://b:1 timeout=3\n</Proxy>\n";
    let c = proxy_balancer_apache_config::parse(text).expect("valid");
    let balancers = c.balancers().expect("valid");
    let timeouts: Vec<_> = balancers[0].1.iter().map(|m| m.timeout).collect();
    assert_eq!(
        timeouts,
        [Some(Duration::from_secs(10)), Some(Duration::from_secs(3))]
    );
    // ProxyTimeout wins over Timeout.
    let c = proxy_balancer_apache_config::parse(&format!("ProxyTimeout 7\n{text}")).expect("valid");
    let first = c.balancers().expect("valid")[0].1[0].timeout;
    assert_eq!(first, Some(Duration::from_secs(7)));
}

#[test]
fn health_checks_with_templates_and_exprs() {
    let c = load("hcheck.conf");
    assert_eq!(c.hc_exprs.len(), 3);
    assert_eq!(c.hc_exprs[0].expr, "%{REQUEST_STATUS} =~ /^[234]/");
    assert_eq!(
        c.hc_exprs[2].expr,
        "hc('body') !~ /Under \"maintenance\"/ && %{REQUEST_STATUS} -lt 500"
    );
    assert_eq!(c.hc_templates[1].params.len(), 6);
    assert_eq!(member_param(&c, 0, 2, "loadfactor"), Some("2"));
    assert_eq!(c.balancers[0].members[2].params[1].span.line, 12);
    assert_eq!(member_param(&c, 0, 3, "upgrade"), Some("websocket"));
}

#[test]
fn manager_location() {
    let c = load("manager.conf");
    assert_eq!(c.manager_locations.len(), 1);
    let m = &c.manager_locations[0];
    assert_eq!(m.path, "/balancer-manager");
    assert_eq!(
        m.requires,
        ["ip 10.0.0.0/8 192.168.0.0/16", "host admin.example.com"]
    );
    assert_eq!(
        (
            c.balancer_persist,
            c.server.balancer_inherit,
            c.balancer_growth
        ),
        (Some(true), Some(false), Some(10))
    );
    // The server-status location is kept (a context with nothing applied), and what it
    // holds is listed as skipped, not an error (before contexts were read, the block itself
    // was listed as "<Location").
    assert_eq!(c.locations[1].path, "/status");
    let skipped: Vec<(&str, u32)> = c
        .skipped
        .iter()
        .map(|s| (s.directive.as_str(), s.span.line))
        .collect();
    assert!(skipped.contains(&("SetHandler", 19)), "{skipped:?}");
    assert!(skipped.contains(&("Require", 20)), "{skipped:?}");
}

#[test]
fn whole_httpd_conf() {
    let c = load("httpd.conf");
    assert_eq!(c.balancers.len(), 1);
    assert_eq!(c.balancers[0].members.len(), 3);
    assert_eq!(c.proxy_timeout, Some(Duration::from_secs(30)));
    let skipped: Vec<&str> = c.skipped.iter().map(|s| s.directive.as_str()).collect();
    for d in ["ServerRoot", "Listen", "LoadModule", "Directory"] {
        assert!(skipped.contains(&d), "{d} not in {skipped:?}");
    }
    // Apache's default `ProxyRequests Off` and `Require all granted` in the <Proxy> block
    // change nothing here: accepted, not listed (the registry's defaults).
    for d in ["ProxyRequests", "Require"] {
        assert!(!skipped.contains(&d), "{d} in {skipped:?}");
    }
    assert_eq!(c.manager_locations[0].requires, ["ip 127.0.0.1", "ip ::1"]);
    // Server context, also inside <IfModule>.
    assert_eq!(c.server.proxy_preserve_host, Some(true));
    let server_name = c.server.server_name.as_ref().expect("ServerName");
    assert_eq!(
        (server_name.host.as_str(), server_name.port),
        ("www.example.com", Some(80))
    );
}

#[test]
fn virtual_hosts() {
    let c = load("vhost.conf");
    let names: Vec<&str> = c.balancers.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["balancer://shopcluster", "balancer://api"]);
    assert_eq!(c.balancers[0].params.len(), 3);
    assert_eq!(c.manager_locations[0].path, "/manager");
    assert_eq!(member_param(&c, 1, 1, "loadfactor"), Some("4"));
    let balancers = c.balancers().unwrap();
    assert_eq!(balancers[0].0.max_attempts, Some(1));
    assert_eq!(balancers[1].1[1].load_factor.lbf(), 400);
    // A <VirtualHost>'s ServerName is its own, not the server's.
    assert_eq!(c.server.server_name, None);
    let names: Vec<&str> = c
        .virtual_hosts
        .iter()
        .filter_map(|v| v.settings.server_name.as_ref().map(|n| n.host.as_str()))
        .collect();
    assert_eq!(names, ["shop.example.com", "api.example.com"]);
    assert!(c.skipped.iter().all(|s| s.directive != "ServerName"));
    // Each balancer, ProxyPass and location belongs to its virtual host.
    let vhosts: Vec<Option<usize>> = c.balancers.iter().map(|b| b.context.vhost).collect();
    assert_eq!(vhosts, [Some(0), Some(1)]);
    let vhosts: Vec<Option<usize>> = c.proxy_passes.iter().map(|p| p.context.vhost).collect();
    assert_eq!(vhosts, [Some(0), Some(1)]);
    assert_eq!(c.locations[0].vhost, Some(0));
    assert_eq!(c.manager_locations[0].context.location, Some(0));
    assert_eq!(
        c.balancer_in(Some(1), "balancer://api")
            .map(|b| b.members.len()),
        Some(2)
    );
    assert!(c.balancer_in(Some(0), "balancer://api").is_none());
    // The virtual hosts' logs are not applied (one set of logs for the process).
    assert!(c
        .skipped
        .iter()
        .any(|s| s.directive == "ErrorLog" && s.in_block));
}
