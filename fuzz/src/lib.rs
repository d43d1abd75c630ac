//! The checks behind the fuzz targets, one function per target, and the seed runner that
//! replays each target's corpus on stable.
//!
//! The same file is compiled three ways: by `cargo fuzz` (the targets in `fuzz_targets/` call
//! these functions), by the targets' plain `main` on stable (`cargo run --bin NAME` from
//! `fuzz/`), and by the main workspace's `examples/tests/fuzz_seeds.rs` (through `#[path]`),
//! which runs every seed and every past crash as an ordinary `cargo test`. It therefore names
//! the crates only through `proxy_balancer`, `proxy_balancer_apache_config`, `tokio`, `parking_lot`,
//! `proxy_balancer_manager` and `http`.
//!
//! Seeds live in `fuzz/seeds/<target>/`; inputs that once failed go to
//! `fuzz/regressions/<target>/` and stay there. The corpus a fuzz run grows
//! (`fuzz/corpus/<target>/`) is not committed.

use std::path::{Path, PathBuf};

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue, Uri};
use proxy_balancer::health_probe::expr::{HcExpr, ProbeResponse};
use proxy_balancer::sticky_route::{RouteExtractor, RouteSource};
use proxy_balancer::{BalancerParams, MemberParams, MemberUrl, StatusFlags, StickySession};
use proxy_balancer_apache_config::{parse, Config};
use proxy_balancer_manager::edit::{parse_form, Edit};

mod front_door;

pub use front_door::front_door;

/// The fuzz targets, by name (the names of `fuzz_targets/*.rs`).
pub const TARGETS: [&str; 7] = [
    "apache_config",
    "front_door",
    "hcexpr",
    "manager_query",
    "member_params",
    "status_flags",
    "sticky_route",
];

/// Runs the check of `target` on `data`: returns normally, or panics where the fuzzer would
/// report a crash.
///
/// # Panics
///
/// When `data` breaks the target's property, or `target` is not one of [`TARGETS`].
pub fn check(target: &str, data: &[u8]) {
    match target {
        "apache_config" => apache_config(data),
        "front_door" => front_door(data),
        "hcexpr" => hcexpr(data),
        "manager_query" => manager_query(data),
        "member_params" => member_params(data),
        "status_flags" => status_flags(data),
        "sticky_route" => sticky_route(data, &|| 0),
        _ => panic!("no fuzz target named {target}"),
    }
}

/// The `status=` parser never panics, and what it accepts renders back the same.
pub fn status_flags(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(flags) = text.parse::<StatusFlags>() {
            let again: StatusFlags = flags.to_string().parse().expect("rendered flags parse");
            assert_eq!(again, flags);
            let _ = flags.label().to_string();
        }
    }
}

/// `MemberParams::set`, `BalancerParams::set` and `MemberUrl::new` with `key=value` text:
/// never a panic.
pub fn member_params(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = MemberUrl::new(text);
    let mut member = MemberParams::new("http://fuzz").expect("a valid url");
    let mut balancer = BalancerParams::new("fuzz");
    for pair in text.split_whitespace() {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let _ = member.set(key, value);
        let _ = balancer.set(key, value);
    }
}

const SEPARATORS: [Option<char>; 8] = [
    Some('.'),
    Some('!'),
    Some(':'),
    Some('~'),
    Some('='),
    Some('x'),
    None,
    Some('.'),
];

/// Whether `inner` is a slice of `outer`'s memory.
fn within(inner: &str, outer: &str) -> bool {
    let (i, o) = (inner.as_ptr() as usize, outer.as_ptr() as usize);
    i >= o && i + inner.len() <= o + outer.len()
}

/// Session-route extraction from the URL and `Cookie` headers: never a panic, never an
/// allocation (`allocations` reads an allocation counter; the fuzz target counts with its
/// global allocator, the stable runner passes a constant), and a route found is a non-empty
/// slice of the request that follows the separator (or `=`, a quote or whitespace with
/// `stickysessionsep=Off`).
///
/// Input: the first byte picks the settings (bits 0-2 the separator, bit 3
/// `scolonpathdelim`, bit 4 the names); the rest is split at `\n`: the first line is the URI,
/// the others are `Cookie` header values.
pub fn sticky_route(data: &[u8], allocations: &dyn Fn() -> usize) {
    let Some((&settings, rest)) = data.split_first() else {
        return;
    };
    let separator = SEPARATORS[usize::from(settings & 7)];
    let scolon = settings & 8 != 0;
    let names = if settings & 16 == 0 {
        "ROUTEID"
    } else {
        "JSESSIONID|jsessionid"
    };
    let sticky: StickySession = names.parse().expect("valid names");
    let extractor = RouteExtractor::new(&sticky, separator, scolon);

    let mut lines = rest.split(|&b| b == b'\n');
    let uri = lines
        .next()
        .and_then(|line| Uri::try_from(line).ok())
        .unwrap_or_else(|| Uri::from_static("/"));
    let mut headers = HeaderMap::new();
    for line in lines {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(COOKIE, value);
        }
    }

    let before = allocations();
    let found = extractor.extract(&uri, &headers);
    let after = allocations();
    assert_eq!(before, after, "extraction allocated");

    let Some(found) = found else {
        return;
    };
    assert!(!found.route.is_empty());
    // The text the route came from, and the route's offset in it.
    let source = match found.source {
        RouteSource::Url => {
            assert_eq!(found.name, sticky.url_param());
            [uri.path(), uri.query().unwrap_or("")]
                .into_iter()
                .find(|text| within(found.route, text))
                .expect("the route is in the URL")
        }
        RouteSource::Cookie => {
            assert_eq!(found.name, sticky.cookie());
            headers
                .get_all(COOKIE)
                .iter()
                .filter_map(|value| value.to_str().ok())
                .find(|text| within(found.route, text))
                .expect("the route is in a Cookie header")
        }
        _ => unreachable!("a new source"),
    };
    assert!(source.contains(found.name), "the name is in the source");
    let offset = found.route.as_ptr() as usize - source.as_ptr() as usize;
    let preceding = source[..offset]
        .chars()
        .next_back()
        .expect("a name precedes");
    match separator {
        Some(sep) => assert_eq!(preceding, sep),
        None => assert!(matches!(preceding, '=' | '"' | ' ' | '\t'), "{preceding:?}"),
    }
}

/// The Apache config parser never panics, and what it accepts renders back to the same
/// configuration.
pub fn apache_config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(config) = parse(&text) else {
        return;
    };
    let _ = config.balancers();
    let rendered = config.render();
    let again = parse(&rendered).expect("a rendered config parses");
    let mut expected = config.without_spans();
    expected.skipped.clear();
    // A ProxySet after a ProxyPass moves before it when rendered: compare sorted params.
    let sorted = |mut c: Config| {
        for b in &mut c.balancers {
            b.params
                .sort_by(|x, y| (&x.key, &x.value).cmp(&(&y.key, &y.value)));
        }
        c
    };
    assert_eq!(
        sorted(again.without_spans()),
        sorted(expected),
        "{rendered}"
    );
}

/// `hcexpr` conditions (ProxyHCExpr): parsing arbitrary UTF-8 never panics, an error's column
/// lies within the input (or just past its end), a condition that parses prints back as
/// written and evaluates against fixed probe responses without panicking, with `!(e)` giving
/// the opposite answer.
pub fn hcexpr(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let expr = match HcExpr::parse(text) {
        Ok(expr) => expr,
        Err(err) => {
            assert!(
                err.column >= 1 && err.column <= text.chars().count() + 1,
                "{err}"
            );
            return;
        }
    };
    assert_eq!(expr.to_string(), text);
    let mut headers = HeaderMap::new();
    headers.insert("x-ready", HeaderValue::from_static("yes"));
    headers.insert("x-num", HeaderValue::from_static("42"));
    headers.insert(
        "x-bytes",
        HeaderValue::from_bytes(b"a\xffb").expect("valid value"),
    );
    for (status, body) in [(200, &b"OK all good"[..]), (503, b"Under \xff maintenance")] {
        let response = ProbeResponse {
            status,
            headers: &headers,
            body,
        };
        let value = expr.eval(&response);
        // Wrapping can push nesting past the limit; only then may it fail to parse.
        if let Ok(negated) = HcExpr::parse(&format!("!({text}\n)")) {
            assert_eq!(negated.eval(&response), !value, "{text}");
        }
    }
}

/// The balancer-manager's form/query parser: arbitrary bytes never panic, and what parses as
/// a form builds an `Edit` or a clean error.
pub fn manager_query(data: &[u8]) {
    if let Ok(form) = parse_form(data) {
        let has_changes = form.has_changes();
        match Edit::from_form(&form) {
            Ok(edit) => assert!(has_changes || edit.is_empty()),
            Err(err) => {
                let _ = (err.to_string(), err.status());
            }
        }
    }
}

/// Inputs made by code rather than kept as files: large or repetitive ones.
fn generated(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    match target {
        "hcexpr" => {
            for depth in [64, 65] {
                let nested = format!("{}true{}", "(".repeat(depth), ")".repeat(depth));
                out.push((format!("nested {depth}"), nested.into_bytes()));
            }
            let long = vec!["%{REQUEST_STATUS} == 200"; 5000].join(" && ");
            out.push(("5000 conditions".to_owned(), long.into_bytes()));
        }
        "manager_query" => out.push(("20000 ampersands".to_owned(), vec![b'&'; 20_000])),
        "sticky_route" => {
            let mut big = b"\x00/\nbig=".to_vec();
            big.extend_from_slice(&[b'x'; 8192]);
            big.extend_from_slice(b"; ROUTEID=.n1");
            out.push(("an 8 KiB cookie".to_owned(), big));
            let mut many = b"\x00/\n".to_vec();
            for i in 0..100 {
                many.extend_from_slice(format!("c{i}=v.{i}; ").as_bytes());
            }
            many.extend_from_slice(b"ROUTEID=.n1");
            out.push(("100 cookies".to_owned(), many));
        }
        _ => {}
    }
    out
}

/// The directories holding `target`'s seeds and past crashes, under the repository root.
#[must_use]
pub fn seed_dirs(root: &Path, target: &str) -> Vec<PathBuf> {
    let mut dirs = vec![
        root.join("fuzz/seeds").join(target),
        root.join("fuzz/regressions").join(target),
    ];
    if target == "apache_config" {
        dirs.push(root.join("crates/proxy-balancer-apache-config/tests/corpus"));
    }
    dirs
}

/// Runs every seed, past crash and generated input of `target` (for the config parser, also
/// every 97th prefix of each file: truncated configs must fail cleanly or round-trip). Returns
/// how many inputs ran, or the names of the inputs that failed with their panic messages.
///
/// # Errors
///
/// The inputs that broke the target's property, or a seed directory that is missing, empty or
/// cannot be read (a missing `fuzz/regressions/<target>/` is fine: no crash found yet).
pub fn run_seeds(root: &Path, target: &str) -> Result<usize, Vec<String>> {
    let mut inputs: Vec<(String, Vec<u8>)> = generated(target);
    let mut failures = Vec::new();
    let regressions = root.join("fuzz/regressions").join(target);
    for dir in seed_dirs(root, target) {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            // No crash found yet for this target: no regressions directory. A missing seeds
            // directory is a failure.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir == regressions => continue,
            Err(e) => {
                failures.push(format!("{}: {e}", dir.display()));
                continue;
            }
        };
        let mut files = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                // A fixture tree (apache-config's `tests/corpus/debian/`): its files are
                // read through `parse_file` by their own tests.
                continue;
            }
            match std::fs::read(&path) {
                Ok(data) => {
                    if target == "apache_config" {
                        for cut in (0..data.len()).step_by(97) {
                            inputs.push((
                                format!("{} (first {cut} bytes)", path.display()),
                                data[..cut].to_vec(),
                            ));
                        }
                    }
                    inputs.push((path.display().to_string(), data));
                    files += 1;
                }
                Err(e) => failures.push(format!("{}: {e}", path.display())),
            }
        }
        if files == 0 && dir != regressions {
            failures.push(format!("{}: no inputs", dir.display()));
        }
    }
    for (name, data) in &inputs {
        let outcome = std::panic::catch_unwind(|| check(target, data));
        if let Err(panic) = outcome {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failures.push(format!("{target}: {name}: {message}"));
        }
    }
    if failures.is_empty() {
        Ok(inputs.len())
    } else {
        Err(failures)
    }
}
