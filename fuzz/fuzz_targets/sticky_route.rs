//! Fuzzes session-route extraction from the URL and `Cookie` headers: never a panic, never an
//! allocation, and a route found is a non-empty slice of the request that follows the
//! separator (or `=`, a quote or whitespace with `stickysessionsep=Off`).
//!
//! Input: the first byte picks the settings (bits 0-2 the separator, bit 3
//! `scolonpathdelim`, bit 4 the names); the rest is split at `\n`: the first line is the URI,
//! the others are `Cookie` header values.
#![cfg_attr(fuzzing, no_main)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue, Uri};
use proxy_balancer::sticky_route::{RouteExtractor, RouteSource};
use proxy_balancer::StickySession;

/// Counts allocations, to check that extraction makes none.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: delegates to `System`, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

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

fn check(data: &[u8]) {
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

    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let found = extractor.extract(&uri, &headers);
    let after = ALLOCATIONS.load(Ordering::Relaxed);
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

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));

#[cfg(not(fuzzing))]
fn main() {
    let seeds: &[&[u8]] = &[
        b"\x00/\nROUTEID=.node1",
        b"\x10/\nJSESSIONID=6736BCF34.node1",
        b"\x11/\nJSESSIONID=abc!node2",
        b"\x06/\nROUTEID=node2",
        b"\x06/\nROUTEID=.node2",
        b"\x00/\nROUTEID=.node1.node2",
        b"\x00/\nROUTEID=node2",
        b"\x10/app?x=1&jsessionid=ABC.node2&y=2",
        b"\x10/app?myjsessionid=ABC.node2",
        b"\x10/app;jsessionid=abc.node2;foo=bar",
        b"\x18/app;jsessionid=abc.node2;foo=bar",
        b"\x10/s3/jsessionid=abc.node2/x",
        b"\x10/app?jsessionid=A.url\nJSESSIONID=A.cookie",
        b"\x10/app?jsessionid=\nJSESSIONID=A.cookie",
        b"\x00/\nXROUTEID=.n9; ROUTEID=.n1",
        b"\x00/\na=1\nROUTEID=.n3",
        b"\x00/\nROUTEID; ROUTEID=; ROUTEID=\"\"; ROUTEID = \".n1\" , x",
        b"\x00/\nROUTEID=.n\xff1\nROUTEID=.n2",
        b"\x00/\n%52OUTEID=.n1; routeid=.n2",
        b"\x00\xff\xfe\n\x00\x7f",
        b"\x1f",
        b"(\n\nROUTEID\t\t=+ROUTEID./@",
        b"",
    ];
    for seed in seeds {
        check(seed);
    }
    let mut big = b"\x00/\nbig=".to_vec();
    big.extend(std::iter::repeat_n(b'x', 8192));
    big.extend_from_slice(b"; ROUTEID=.n1");
    check(&big);
    let mut many = b"\x00/\n".to_vec();
    for i in 0..100 {
        many.extend_from_slice(format!("c{i}=v.{i}; ").as_bytes());
    }
    many.extend_from_slice(b"ROUTEID=.n1");
    check(&many);
}
