//! Finding the session route in a request: a typical Cookie header of 5 cookies (with and
//! without the route), a route in the query, and the baseline of merely looking the Cookie
//! header up.
//!
//! Target (issue 4): ≤ 100 ns per extraction from a 5-cookie header.

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use http::{header, HeaderMap, HeaderValue, Uri};
use proxy_balancer::sticky_route::RouteExtractor;
use proxy_balancer::BalancerParams;

/// Kept short: the machine is small and shared, and only ratios within one run matter.
const WARM_UP: Duration = Duration::from_secs(1);
/// See [`WARM_UP`].
const MEASUREMENT: Duration = Duration::from_secs(2);

fn headers(cookie: &'static str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::USER_AGENT, HeaderValue::from_static("curl/8.0"));
    h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
    h.insert(header::COOKIE, HeaderValue::from_static(cookie));
    h
}

fn extraction(c: &mut Criterion) {
    let mut params = BalancerParams::new("bench");
    params
        .set("stickysession", "JSESSIONID|jsessionid")
        .expect("invariant: a valid name");
    let extractor = RouteExtractor::from_params(&params).expect("invariant: sticky");
    let uri: Uri = "/shop/cart?item=42&qty=1"
        .parse()
        .expect("invariant: valid");
    let uri_route: Uri = "/shop/cart?item=42&jsessionid=6736BCF34.node2"
        .parse()
        .expect("invariant: valid");
    let with_route =
        headers("_ga=GA1.2.3; theme=dark; JSESSIONID=6736BCF34.node1; lang=en; consent=yes");
    let without_route = headers("_ga=GA1.2.3; theme=dark; cart=17; lang=en; consent=yes");

    let mut group = c.benchmark_group("sticky");
    group.warm_up_time(WARM_UP).measurement_time(MEASUREMENT);
    group.bench_function("cookie_5_with_route", |b| {
        b.iter(|| {
            black_box(extractor.extract(black_box(&uri), black_box(&with_route)))
                .map(|f| f.route.len())
        });
    });
    group.bench_function("cookie_5_without_route", |b| {
        b.iter(|| {
            black_box(extractor.extract(black_box(&uri), black_box(&without_route))).is_none()
        });
    });
    group.bench_function("query_route", |b| {
        b.iter(|| {
            black_box(extractor.extract(black_box(&uri_route), black_box(&without_route)))
                .map(|f| f.route.len())
        });
    });
    group.bench_function("baseline_cookie_lookup", |b| {
        b.iter(|| {
            black_box(&with_route)
                .get(header::COOKIE)
                .map(HeaderValue::len)
        });
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    extraction(&mut c);
    c.final_summary();
}
