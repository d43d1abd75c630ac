use http::header::COOKIE;
use http::{HeaderMap, HeaderValue, Uri};
use proptest::prelude::*;
use proxy_balancer_core::{BalancerParams, StickySession};

use super::{FoundRoute, RouteExtractor, RouteSource};

const URL: Option<RouteSource> = Some(RouteSource::Url);
const COOKIE_SRC: Option<RouteSource> = Some(RouteSource::Cookie);

fn extractor(sticky: &str, separator: Option<char>, scolon: bool) -> RouteExtractor {
    let sticky: StickySession = sticky.parse().unwrap();
    RouteExtractor::new(&sticky, separator, scolon)
}

fn headers(cookies: &[&[u8]]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for cookie in cookies {
        map.append(COOKIE, HeaderValue::from_bytes(cookie).unwrap());
    }
    map
}

/// One row: settings, request, and the expected (source, name, route).
struct Case {
    what: &'static str,
    sticky: &'static str,
    sep: Option<char>,
    scolon: bool,
    uri: &'static str,
    cookies: &'static [&'static [u8]],
    want: Option<(RouteSource, &'static str, &'static str)>,
}

const fn case(
    what: &'static str,
    sticky: &'static str,
    uri: &'static str,
    cookies: &'static [&'static [u8]],
    source: Option<RouteSource>,
    name: &'static str,
    route: &'static str,
) -> Case {
    Case {
        what,
        sticky,
        sep: Some('.'),
        scolon: false,
        uri,
        cookies,
        want: match source {
            Some(source) => Some((source, name, route)),
            None => None,
        },
    }
}

const fn with(mut c: Case, sep: Option<char>, scolon: bool) -> Case {
    c.sep = sep;
    c.scolon = scolon;
    c
}

const JS: &str = "JSESSIONID|jsessionid";
const NONE: Option<RouteSource> = None;

#[rustfmt::skip]
const CASES: &[Case] = &[
    // The separator.
    case("dot then route", "ROUTEID", "/", &[b"ROUTEID=.node1"], COOKIE_SRC, "ROUTEID", "node1"),
    case("tomcat", JS, "/", &[b"JSESSIONID=6736BCF34.node1"], COOKIE_SRC, "JSESSIONID", "node1"),
    case("after the first separator", "ROUTEID", "/", &[b"ROUTEID=.node1.node2"], COOKIE_SRC, "ROUTEID", "node1.node2"),
    case("no separator: not sticky", "ROUTEID", "/", &[b"ROUTEID=node2"], NONE, "", ""),
    case("empty route", "ROUTEID", "/", &[b"ROUTEID=abc."], NONE, "", ""),
    case("only the separator", "ROUTEID", "/", &[b"ROUTEID=."], NONE, "", ""),
    with(case("weblogic !", JS, "/", &[b"JSESSIONID=abc!node2"], COOKIE_SRC, "JSESSIONID", "node2"), Some('!'), false),
    with(case("weblogic ! with a dot", JS, "/", &[b"JSESSIONID=a.b!node2"], COOKIE_SRC, "JSESSIONID", "node2"), Some('!'), false),
    with(case("weblogic ! but only a dot", JS, "/", &[b"JSESSIONID=abc.node2"], NONE, "", ""), Some('!'), false),
    with(case("Off: whole value", "ROUTEID", "/", &[b"ROUTEID=node2"], COOKIE_SRC, "ROUTEID", "node2"), None, false),
    with(case("Off: the dot stays", "ROUTEID", "/", &[b"ROUTEID=.node2"], COOKIE_SRC, "ROUTEID", ".node2"), None, false),
    with(case("Off: empty", "ROUTEID", "/", &[b"ROUTEID="], NONE, "", ""), None, false),
    with(case("Off: query", JS, "/?jsessionid=n1", &[], URL, "jsessionid", "n1"), None, false),
    // The query.
    case("query first param", JS, "/app?jsessionid=ABC.node2&x=1", &[], URL, "jsessionid", "node2"),
    case("query after &", JS, "/app?x=1&jsessionid=ABC.node2", &[], URL, "jsessionid", "node2"),
    case("query after ;", JS, "/app?x=1;jsessionid=ABC.node2", &[], URL, "jsessionid", "node2"),
    case("query value ends at /", JS, "/app?jsessionid=ABC.node2/x", &[], URL, "jsessionid", "node2"),
    case("query value ends at ?", JS, "/app?jsessionid=ABC.node2?x", &[], URL, "jsessionid", "node2"),
    case("query value runs past ; by default", JS, "/app?jsessionid=ABC.node2;x=1", &[], URL, "jsessionid", "node2;x=1"),
    with(case("query value ends at ; with scolonpathdelim", JS, "/app?jsessionid=ABC.node2;x=1", &[], URL, "jsessionid", "node2"), Some('.'), true),
    case("query look-alike (differs from Apache)", JS, "/app?myjsessionid=ABC.node2", &[], NONE, "", ""),
    case("query look-alike after &", JS, "/app?x=1&myjsessionid=ABC.node2", &[], NONE, "", ""),
    case("query longer name", JS, "/app?jsessionidx=ABC.node2", &[], NONE, "", ""),
    case("query name without =", JS, "/app?jsessionid&x=ABC.node2", &[], NONE, "", ""),
    case("query look-alike, then the real one", JS, "/app?myjsessionid=A.n9&jsessionid=A.n1", &[], URL, "jsessionid", "n1"),
    case("query name in a value", JS, "/app?x=jsessionid=A.n9", &[], NONE, "", ""),
    case("query empty value, then another", JS, "/app?jsessionid=&jsessionid=A.n1", &[], URL, "jsessionid", "n1"),
    case("query empty value", JS, "/app?jsessionid=&x=1", &[], NONE, "", ""),
    case("query %-encoded name", JS, "/app?%6Asessionid=A.n1", &[], NONE, "", ""),
    case("query case-sensitive", JS, "/app?JSESSIONID=A.n1", &[], NONE, "", ""),
    case("query no separator", JS, "/app?jsessionid=ABC", &[], NONE, "", ""),
    // Path parameters.
    case("path param", JS, "/app;jsessionid=ABC.node2/x", &[], URL, "jsessionid", "node2"),
    case("path param at the end", JS, "/app;jsessionid=abc.node2", &[], URL, "jsessionid", "node2"),
    case("path param runs past ; by default", JS, "/app;jsessionid=abc.node2;foo=bar", &[], URL, "jsessionid", "node2;foo=bar"),
    with(case("path param ends at ; with scolonpathdelim", JS, "/app;jsessionid=abc.node2;foo=bar", &[], URL, "jsessionid", "node2"), Some('.'), true),
    case("path param after another", JS, "/app;foo=bar;jsessionid=abc.node2", &[], URL, "jsessionid", "node2"),
    case("path param before the query", JS, "/app;jsessionid=abc.node1?jsessionid=abc.node2", &[], URL, "jsessionid", "node1"),
    case("path segment is not a parameter (differs from Apache)", JS, "/s3/jsessionid=abc.node2/x", &[], NONE, "", ""),
    case("path look-alike", JS, "/app;myjsessionid=abc.node2", &[], NONE, "", ""),
    case("path empty value", JS, "/app;jsessionid=/x", &[], NONE, "", ""),
    case("path %-encoded name", JS, "/app;%6Asessionid=abc.node2", &[], NONE, "", ""),
    // URL against cookie.
    case("URL wins over the cookie", JS, "/app?jsessionid=A.url", &[b"JSESSIONID=A.cookie"], URL, "jsessionid", "url"),
    case("path wins over the cookie", JS, "/app;jsessionid=A.url", &[b"JSESSIONID=A.cookie"], URL, "jsessionid", "url"),
    case("empty URL value falls back to the cookie", JS, "/app?jsessionid=", &[b"JSESSIONID=A.cookie"], COOKIE_SRC, "JSESSIONID", "cookie"),
    case("URL value without separator decides (Apache)", JS, "/app?jsessionid=A", &[b"JSESSIONID=A.cookie"], NONE, "", ""),
    case("one name for both: URL", "ROUTEID", "/?ROUTEID=.n1", &[b"ROUTEID=.n2"], URL, "ROUTEID", "n1"),
    case("cookie name in the URL is not the URL name", JS, "/app?JSESSIONID=A.n1", &[], NONE, "", ""),
    case("URL name as a cookie is ignored (Apache)", JS, "/", &[b"jsessionid=A.n1"], NONE, "", ""),
    // Cookie names.
    case("look-alike cookie", "ROUTEID", "/", &[b"XROUTEID=.node1"], NONE, "", ""),
    case("longer cookie name", "ROUTEID", "/", &[b"ROUTEIDX=.node1"], NONE, "", ""),
    case("look-alike, then the real one", "ROUTEID", "/", &[b"XROUTEID=.n9; ROUTEID=.n1"], COOKIE_SRC, "ROUTEID", "n1"),
    case("cookie case-sensitive", "ROUTEID", "/", &[b"routeid=.node1"], NONE, "", ""),
    case("%-encoded cookie name", "ROUTEID", "/", &[b"%52OUTEID=.node1"], NONE, "", ""),
    case("name inside a value", "ROUTEID", "/", &[b"a=ROUTEID=.n9; ROUTEID=.n1"], COOKIE_SRC, "ROUTEID", "n1"),
    case("name inside a value only", "ROUTEID", "/", &[b"a=ROUTEID=.n9"], NONE, "", ""),
    // Cookie syntax.
    case("after ;", "ROUTEID", "/", &[b"a=b;ROUTEID=.n1"], COOKIE_SRC, "ROUTEID", "n1"),
    case("after , and spaces", "ROUTEID", "/", &[b"a=b ,  ROUTEID=.n1"], COOKIE_SRC, "ROUTEID", "n1"),
    case("value ends at ,", "ROUTEID", "/", &[b"ROUTEID=.n1,a=b"], COOKIE_SRC, "ROUTEID", "n1"),
    case("tabs", "ROUTEID", "/", &[b"a=b;\tROUTEID\t=\t.n1\t;c"], COOKIE_SRC, "ROUTEID", "n1"),
    case("spaces around =", "ROUTEID", "/", &[b"ROUTEID =  .n1  ; a=b"], COOKIE_SRC, "ROUTEID", "n1"),
    case("quoted", "ROUTEID", "/", &[b"ROUTEID=\".n1\""], COOKIE_SRC, "ROUTEID", "n1"),
    case("quoted with spaces", "ROUTEID", "/", &[b"ROUTEID = \"abc.n1\" ; a=b"], COOKIE_SRC, "ROUTEID", "n1"),
    case("lone quote kept", "ROUTEID", "/", &[b"ROUTEID=\"abc.n1"], COOKIE_SRC, "ROUTEID", "n1"),
    case("= in the value", "ROUTEID", "/", &[b"ROUTEID=a=b.n1"], COOKIE_SRC, "ROUTEID", "n1"),
    case("cookie without =", "ROUTEID", "/", &[b"ROUTEID"], NONE, "", ""),
    case("cookie without =, then the real one", "ROUTEID", "/", &[b"ROUTEID; ROUTEID=.n1"], COOKIE_SRC, "ROUTEID", "n1"),
    case("garbage without =", "ROUTEID", "/", &[b"garbage; ROUTEID=.n1; more"], COOKIE_SRC, "ROUTEID", "n1"),
    case("empty value", "ROUTEID", "/", &[b"ROUTEID="], NONE, "", ""),
    case("empty value, then the real one", "ROUTEID", "/", &[b"ROUTEID=; ROUTEID=.n1"], COOKIE_SRC, "ROUTEID", "n1"),
    case("empty quoted value", "ROUTEID", "/", &[b"ROUTEID=\"\""], NONE, "", ""),
    case("blank value", "ROUTEID", "/", &[b"ROUTEID=   ;"], NONE, "", ""),
    case("first non-empty value decides (Apache)", "ROUTEID", "/", &[b"ROUTEID=abc; ROUTEID=.n1"], NONE, "", ""),
    case("empty header", "ROUTEID", "/", &[b""], NONE, "", ""),
    case("only separators", "ROUTEID", "/", &[b";;,, ;"], NONE, "", ""),
    // Several Cookie headers.
    case("second header", "ROUTEID", "/", &[b"a=1; b=2", b"ROUTEID=.n3"], COOKIE_SRC, "ROUTEID", "n3"),
    case("first header wins", "ROUTEID", "/", &[b"ROUTEID=.n1", b"ROUTEID=.n2"], COOKIE_SRC, "ROUTEID", "n1"),
    case("empty in the first header", "ROUTEID", "/", &[b"ROUTEID=", b"ROUTEID=.n2"], COOKIE_SRC, "ROUTEID", "n2"),
    // Bytes that are not visible ASCII.
    case("non-UTF-8 header skipped", "ROUTEID", "/", &[b"ROUTEID=.n\xff1"], NONE, "", ""),
    case("non-UTF-8 header, then a good one", "ROUTEID", "/", &[b"ROUTEID=.n\xff1", b"ROUTEID=.n2"], COOKIE_SRC, "ROUTEID", "n2"),
    case("UTF-8 but not ASCII skipped", "ROUTEID", "/", &[b"ROUTEID=.n\xc3\xa91"], NONE, "", ""),
    // Nothing.
    case("no cookie, no URL", JS, "/app/x?y=1", &[], NONE, "", ""),
];

#[test]
fn table() {
    for c in CASES {
        let ex = extractor(c.sticky, c.sep, c.scolon);
        let uri: Uri = c.uri.parse().unwrap();
        let map = headers(c.cookies);
        let got = ex.extract(&uri, &map);
        let want = c.want.map(|(source, name, route)| FoundRoute {
            name,
            source,
            route,
        });
        assert_eq!(got, want, "case {:?}", c.what);
    }
}

#[test]
fn from_params_uses_the_balancer_settings() {
    let mut params = BalancerParams::new("balancer://c");
    assert_eq!(RouteExtractor::from_params(&params), None);
    params
        .set("stickysession", "JSESSIONID|jsessionid")
        .unwrap();
    let ex = RouteExtractor::from_params(&params).unwrap();
    assert_eq!(
        (
            ex.cookie_name(),
            ex.url_param(),
            ex.separator(),
            ex.scolon_path_delim()
        ),
        ("JSESSIONID", "jsessionid", Some('.'), false)
    );
    params.set("stickysessionsep", "!").unwrap();
    params.set("scolonpathdelim", "On").unwrap();
    let ex = RouteExtractor::from_params(&params).unwrap();
    assert_eq!((ex.separator(), ex.scolon_path_delim()), (Some('!'), true));
    params.set("stickysessionsep", "Off").unwrap();
    assert_eq!(
        RouteExtractor::from_params(&params).unwrap().separator(),
        None
    );
}

#[test]
fn hundred_cookies() {
    let ex = extractor("ROUTEID", Some('.'), false);
    let uri = Uri::from_static("/");
    let others: Vec<String> = (0..99).map(|i| format!("c{i}=v{i}.x")).collect();
    let mut map = HeaderMap::new();
    map.insert(COOKIE, HeaderValue::from_str(&others.join("; ")).unwrap());
    assert_eq!(ex.extract(&uri, &map), None);
    for at in [0, 50, 99] {
        let mut all = others.clone();
        all.insert(at, "ROUTEID=abc.node7".to_owned());
        map.insert(COOKIE, HeaderValue::from_str(&all.join("; ")).unwrap());
        assert_eq!(ex.extract(&uri, &map).unwrap().route, "node7", "at {at}");
    }
    // 100 Cookie headers, the route in the last.
    let mut map = HeaderMap::new();
    for other in &others {
        map.append(COOKIE, HeaderValue::from_str(other).unwrap());
    }
    map.append(COOKIE, HeaderValue::from_static("ROUTEID=.last"));
    assert_eq!(ex.extract(&uri, &map).unwrap().route, "last");
}

#[test]
fn eight_kib_cookies() {
    let ex = extractor("ROUTEID", Some('.'), false);
    let uri = Uri::from_static("/");
    let big = "x".repeat(8 * 1024);
    let mut map = HeaderMap::new();
    let mut found = |value: String| {
        map.insert(COOKIE, HeaderValue::from_str(&value).unwrap());
        ex.extract(&uri, &map).map(|f| f.route.to_owned())
    };
    assert_eq!(
        found(format!("big={big}; ROUTEID=.n1")),
        Some("n1".to_owned())
    );
    assert_eq!(found(format!("ROUTEID={big}.n1")), Some("n1".to_owned()));
    assert_eq!(found(format!("ROUTEID=.{big}")), Some(big.clone()));
    assert_eq!(found(format!("ROUTEID={big}")), None);
    assert_eq!(found(format!("X{big}=.n1")), None);
}

#[test]
fn long_url() {
    let ex = extractor(JS, Some('.'), false);
    let pad = "a".repeat(8 * 1024);
    let uri: Uri = format!("/{pad};x={pad}?q={pad}&jsessionid={pad}.node4&z={pad}")
        .parse()
        .unwrap();
    let map = HeaderMap::new();
    let found = ex.extract(&uri, &map).unwrap();
    assert_eq!((found.source, found.route), (RouteSource::Url, "node4"));
}

// --- proptests ---

/// Cookie octets (RFC 6265) with `=` allowed: no whitespace, `"`, `,`, `;` or `\`.
fn cookie_text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(0x21u8..0x7f, 0..=max).prop_map(|bytes| {
        bytes
            .into_iter()
            .filter(|b| !b"\",;\\".contains(b))
            .map(char::from)
            .collect()
    })
}

fn cookie_name() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9_-]{0,12}"
}

/// Separators that may appear in a cookie value.
fn separator() -> impl Strategy<Value = Option<char>> {
    prop_oneof![
        4 => prop::sample::select(vec!['.', '!', ':', '~', '_', '-', '=', '|', 'x']).prop_map(Some),
        1 => Just(None),
    ]
}

/// Text made of URI-ish characters, including every delimiter that matters here.
fn uri_text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9;=&?/.%!~#_-]{0,40}"
}

proptest! {
    #[test]
    fn never_panics(
        sticky in prop::sample::select(vec!["ROUTEID", "JSESSIONID|jsessionid", "a", "a|b"]),
        sep in separator(),
        scolon in any::<bool>(),
        path in uri_text(),
        query in prop::option::of(uri_text()),
        raw_uri in prop::collection::vec(any::<u8>(), 0..40),
        cookies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..60), 0..4),
    ) {
        let ex = extractor(sticky, sep, scolon);
        let mut map = HeaderMap::new();
        for cookie in &cookies {
            if let Ok(value) = HeaderValue::from_bytes(cookie) {
                map.append(COOKIE, value);
            }
        }
        let text = match &query {
            Some(q) => format!("/{path}?{q}"),
            None => format!("/{path}"),
        };
        let uris = [Uri::try_from(text.as_str()), Uri::try_from(raw_uri.as_slice())];
        for uri in uris.iter().flatten() {
            if let Some(found) = ex.extract(uri, &map) {
                prop_assert!(!found.route.is_empty());
                match found.source {
                    RouteSource::Url => prop_assert_eq!(found.name, ex.url_param()),
                    RouteSource::Cookie => prop_assert_eq!(found.name, ex.cookie_name()),
                }
            }
        }
    }

    #[test]
    fn finds_the_route_among_other_cookies(
        name in cookie_name(),
        sep in separator(),
        id in cookie_text(24),
        route in "[A-Za-z0-9_-]{1,20}",
        others in prop::collection::vec((cookie_name(), cookie_text(20)), 0..12),
        at in any::<prop::sample::Index>(),
        quoted in any::<bool>(),
        joins in prop::collection::vec(
            prop::sample::select(vec!["; ", ";", ", ", " ;  ", ";\t", "\n"]), 12),
    ) {
        let id: String = match sep {
            Some(sep) => id.chars().filter(|&c| c != sep).collect(),
            None => String::new(),
        };
        let value = match sep {
            Some(sep) => format!("{id}{sep}{route}"),
            None => route.clone(),
        };
        let value = if quoted { format!("\"{value}\"") } else { value };
        let mut cookies: Vec<String> = others
            .iter()
            .filter(|(n, _)| *n != name)
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        cookies.insert(at.index(cookies.len() + 1), format!("{name}={value}"));

        // Join with random separators; "\n" starts a new Cookie header.
        let mut map = HeaderMap::new();
        let mut header = String::new();
        for (i, cookie) in cookies.iter().enumerate() {
            if i > 0 {
                let join = joins[i % joins.len()];
                if join == "\n" {
                    map.append(COOKIE, HeaderValue::from_str(&header).unwrap());
                    header.clear();
                } else {
                    header.push_str(join);
                }
            }
            header.push_str(cookie);
        }
        map.append(COOKIE, HeaderValue::from_str(&header).unwrap());

        let sticky: StickySession = name.parse().unwrap();
        let ex = RouteExtractor::new(&sticky, sep, false);
        let uri = Uri::from_static("/app");
        let found = ex.extract(&uri, &map);
        prop_assert_eq!(
            found,
            Some(FoundRoute { name: &name, source: RouteSource::Cookie, route: &route })
        );
    }

    #[test]
    fn finds_the_route_among_other_query_params(
        sep in separator(),
        scolon in any::<bool>(),
        id in "[A-Za-z0-9.!~:_=-]{0,16}",
        route in "[A-Za-z0-9_-]{1,20}",
        others in prop::collection::vec(("[a-z]{1,8}", "[A-Za-z0-9.=%-]{0,12}"), 0..8),
        at in any::<prop::sample::Index>(),
    ) {
        let name = "jsessionid";
        let id: String = match sep {
            Some(sep) => id.chars().filter(|&c| c != sep).collect(),
            None => String::new(),
        };
        let value = match sep {
            Some(sep) => format!("{id}{sep}{route}"),
            None => route.clone(),
        };
        let mut params: Vec<String> = others
            .iter()
            .filter(|(n, _)| n != name)
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        params.insert(at.index(params.len() + 1), format!("{name}={value}"));
        let uri: Uri = format!("/app/x?{}", params.join("&")).parse().unwrap();
        let ex = extractor("JSESSIONID|jsessionid", sep, scolon);
        let map = headers(&[b"JSESSIONID=a.cookie"]);
        let found = ex.extract(&uri, &map);
        prop_assert_eq!(
            found,
            Some(FoundRoute { name, source: RouteSource::Url, route: &route })
        );
    }
}
