//! Parsing a generated 10,000-line Apache configuration, against the baseline of merely
//! splitting the same text into lines and words.
//!
//! Target (issue 7): ≤ 50 ms for 10,000 lines.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use proxy_balancer_apache_config::parse;

/// Kept short: the machine is small and shared, and only ratios within one run matter.
const WARM_UP: Duration = Duration::from_secs(1);
/// See [`WARM_UP`].
const MEASUREMENT: Duration = Duration::from_secs(2);

/// About 10,000 lines: balancers of 20 members with routes and health checks, their
/// `ProxyPass` lines, comments, headers and skipped directives.
fn config_text() -> String {
    let mut text = String::from(
        "ServerRoot /srv/httpd\nListen 80\nProxyHCExpr ok {%{REQUEST_STATUS} =~ /^[23]/}\n\
         ProxyHCTemplate tpl hcmethod=GET hcuri=/health hcexpr=ok hcinterval=5\n",
    );
    let mut b = 0;
    while text.lines().count() < 10_000 {
        let _ = writeln!(text, "# balancer {b}\n<Proxy \"balancer://cluster{b}\">");
        for m in 0..20 {
            let _ = writeln!(
                text,
                "    BalancerMember \"http://10.{}.{}.{m}:8080\" route=n{m} loadfactor={} \\\n        lbset={} hctemplate=tpl retry=5 timeout=30",
                b / 250,
                b % 250,
                1 + m % 4,
                m % 3
            );
        }
        let _ = writeln!(
            text,
            "    ProxySet lbmethod=bybusyness stickysession=JSESSIONID|jsessionid\n</Proxy>\n\
             ProxyPass \"/app{b}\" \"balancer://cluster{b}/app\" maxattempts=2\n\
             ProxyPassReverse /app{b} balancer://cluster{b}/app\n\
             Header add Set-Cookie \"ROUTEID=.%{{BALANCER_WORKER_ROUTE}}e; path=/app{b}\" env=BALANCER_ROUTE_CHANGED\n\
             LogLevel warn"
        );
        b += 1;
    }
    text
}

fn parsing(c: &mut Criterion) {
    let text = config_text();
    let lines = text.lines().count();
    let config = parse(&text).expect("invariant: the generated config is valid");
    assert!(lines >= 10_000 && config.balancers.len() > 100);

    let mut group = c.benchmark_group("config_parse");
    group.warm_up_time(WARM_UP).measurement_time(MEASUREMENT);
    group.bench_function(format!("parse_{lines}_lines"), |b| {
        b.iter(|| parse(black_box(&text)).map(|c| c.balancers.len()));
    });
    group.bench_function(format!("baseline_split_words_{lines}_lines"), |b| {
        b.iter(|| {
            black_box(&text)
                .lines()
                .map(|l| l.split_whitespace().count())
                .sum::<usize>()
        });
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    parsing(&mut c);
    c.final_summary();
}
