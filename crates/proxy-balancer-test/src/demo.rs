//! The demo: backends on loopback and an Apache-style configuration over them. What the
//! `reverse-proxy` example serves without `--config`, and what the end-to-end suites run.

use crate::TestBackend;

/// Starts `n` demo backends on 127.0.0.1 (named `backend-1` …).
///
/// # Errors
///
/// If a loopback port cannot be bound.
pub async fn start_demo_backends(n: usize) -> std::io::Result<Vec<TestBackend>> {
    let mut backends = Vec::with_capacity(n);
    for i in 1..=n {
        backends.push(TestBackend::start(format!("backend-{i}")).await?);
    }
    Ok(backends)
}

/// The embedded default configuration, in Apache httpd's syntax, over the given demo
/// backends: `balancer://demo`, byrequests, routes `node1` …, sticky on `ROUTEID` with
/// Apache's route-cookie recipe, health checks every 2 s, and the balancer-manager for
/// loopback clients.
#[must_use]
pub fn demo_config(backends: &[TestBackend]) -> String {
    let mut text = String::from(
        "# The reverse-proxy example's embedded default, in Apache httpd's syntax.\n\
         # Give your own with --config FILE; check one with --check FILE.\n\
         <Proxy \"balancer://demo\">\n",
    );
    for (i, backend) in backends.iter().enumerate() {
        text.push_str(&format!(
            "    BalancerMember \"{}\" route=node{} retry=5 connectiontimeout=1 hcmethod=GET hcuri=/health hcinterval=2\n",
            backend.url(),
            i + 1
        ));
    }
    text.push_str(
        "    ProxySet lbmethod=byrequests stickysession=ROUTEID\n\
         </Proxy>\n\
         ProxyPass        \"/\" \"balancer://demo/\"\n\
         ProxyPassReverse \"/\" \"balancer://demo/\"\n\
         Header add Set-Cookie \"ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/\" env=BALANCER_ROUTE_CHANGED\n\
         <Location \"/balancer-manager\">\n\
         \x20   SetHandler balancer-manager\n\
         \x20   Require ip 127.0.0.1 ::1\n\
         </Location>\n",
    );
    text
}
