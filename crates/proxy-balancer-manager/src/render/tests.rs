use std::time::Instant;

use proxy_balancer_core::{
    BalancerParams, BalancerStore, Member, MemberParams, Route, StatusFlags, StickySession,
};

use super::*;

#[expect(clippy::disallowed_methods, reason = "tests need a starting instant")]
fn now() -> Instant {
    Instant::now()
}

const HOSTILE: &str = "<script>alert(\"x&y\")</script>'";

fn member(url: &str, status: &str) -> MemberParams {
    let mut p = MemberParams::new(url).unwrap();
    p.status.apply(status).unwrap();
    p
}

/// A balancer with members in the states Ok, Dis, Err, Stby and HcFl, the first with a
/// hostile route and redirect.
fn store() -> BalancerStore {
    let mut params = BalancerParams::new("web");
    params.growth = 2;
    params.sticky_session = Some(StickySession::with_names("JSESSIONID", "jsessionid").unwrap());
    let members = [
        member("http://127.0.0.1:8001", "")
            .with_route(Route::new(HOSTILE).unwrap())
            .with_redirect(Route::new("r&2").unwrap()),
        member("http://127.0.0.1:8002", "D"),
        member("http://[::1]:8003", ""),
        member("https://backend.example", "H"),
        member("http://127.0.0.1:8005", "C"),
    ];
    let store = BalancerStore::new(params, members, now()).unwrap();
    let snap = store.snapshot();
    snap.members()[2].mark_error(now());
    let m = &snap.members()[0];
    let _busy = m.begin_request();
    m.state().add_transferred(1536);
    m.state().add_read(5 * 1024 * 1024);
    store
}

fn health(m: &Member) -> Option<HealthView> {
    m.url().ends_with("8005").then(|| HealthView {
        method: "GET".into(),
        uri: format!("/health?{HOSTILE}"),
        interval_ms: 5000,
        passes: 1,
        fails: 2,
        expr: Some("ok&<expr>".into()),
        last_passed: Some(false),
    })
}

fn with_view<T>(f: impl FnOnce(&View<'_>) -> T) -> T {
    let store = store();
    let snapshot = store.snapshot();
    let hostile = BalancerStore::new(
        BalancerParams::new("x\"<b>&'"),
        [member("http://127.0.0.1:9001", "")],
        now(),
    )
    .unwrap();
    let hostile_snap = hostile.snapshot();
    let balancers = [
        BalancerView {
            snapshot: &snapshot,
            nonce: "n0nce",
            added: 1,
            health: &health,
            retry_budget: None,
            now: None,
        },
        BalancerView::new(&hostile_snap, "a\"b<c>&d"),
    ];
    let view = View {
        balancers: &balancers,
        mount: "/balancer-manager",
        server: "proxy-balancer <test>",
        shared: None,
    };
    f(&view)
}

fn assert_no_raw_hostile(doc: &str) {
    assert!(!doc.contains("<script"), "raw <script in output");
    assert!(!doc.contains("x\"<b>"), "raw hostile balancer name");
    assert!(!doc.contains("<expr>"), "raw hostile expr");
}

#[test]
fn html_shows_members_and_escapes() {
    let page = with_view(|v| html(v, None, Some(5)));
    assert!(page.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
    assert_no_raw_hostile(&page);
    assert!(page.contains("&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;&#39;"));
    assert!(page.contains("proxy-balancer &lt;test&gt;"));
    for label in [
        "<td>Init Ok</td>",
        "<td>Init Dis</td>",
        "<td>Init Err</td>",
        "<td>Init Stby Ok</td>",
        "<td>Init HcFl</td>",
    ] {
        assert!(page.contains(label), "missing {label}");
    }
    // MaxMembers: 4 configured + growth 2, 5 used; a slot is free so the add field shows.
    assert!(page.contains("<td>6 [5 Used]</td>"));
    assert!(page.contains("name=\"b_nwrkr\""));
    assert!(page.contains("<td>JSESSIONID | jsessionid</td>"));
    // Member link with encoded URL and the nonce.
    assert!(page.contains(
        "href=\"/balancer-manager?b=web&amp;w=http%3A%2F%2F127.0.0.1%3A8002&amp;nonce=n0nce\""
    ));
    // Byte counters as apr_strfsize.
    assert!(page.contains("<td>1.5K</td><td>5.0M</td>"));
    // HC columns: the failed check of the last member.
    assert!(page.contains("<th>HC Method</th>"));
    assert!(page.contains("<td>GET</td><td>5000ms</td><td>1</td><td>2</td>"));
    assert!(page.contains("<td>Failed</td>"));
    // Balancer forms carry each balancer's nonce, escaped.
    assert!(page.contains("<input type=\"hidden\" name=\"nonce\" value=\"n0nce\">"));
    assert!(
        page.contains("<input type=\"hidden\" name=\"nonce\" value=\"a&quot;b&lt;c&gt;&amp;d\">")
    );
    assert!(page.contains("<option value=\"byrequests\" selected>"));
    assert!(!page.contains("name=\"w_lf\""));
}

#[test]
fn html_member_form() {
    let page = with_view(|v| html(v, Some(("web", "http://127.0.0.1:8002")), None));
    assert!(!page.contains("http-equiv"));
    assert!(page.contains("Edit worker settings for http://127.0.0.1:8002"));
    assert!(page.contains("name=\"w_lf\" id=\"w_lf\" type=\"text\" value=\"1.00\""));
    assert!(page.contains("<input name=\"w_status_D\" value=\"1\" type=\"radio\" checked>"));
    assert!(page.contains("<input name=\"w_status_S\" value=\"0\" type=\"radio\" checked>"));
    assert!(page.contains("<input type=\"hidden\" name=\"w\" value=\"http://127.0.0.1:8002\">"));
    assert!(page.contains("<input type=\"hidden\" name=\"b\" value=\"web\">"));
    // No health check on this member.
    assert!(!page.contains("name=\"w_hm\""));

    let page = with_view(|v| html(v, Some(("web", "http://127.0.0.1:8001")), None));
    assert!(page.contains("name=\"w_wr\" id=\"w_wr\" type=\"text\" value=\"&lt;script&gt;"));
    assert_no_raw_hostile(&page);

    let page = with_view(|v| html(v, Some(("web", "http://127.0.0.1:8005")), None));
    assert!(page.contains("<option value=\"GET\" selected>GET</option>"));
    assert!(page.contains("name=\"w_hi\" id=\"w_hi\" type=\"text\" value=\"5000\""));
    assert!(page.contains("name=\"w_he\" id=\"w_he\" type=\"text\" value=\"ok&amp;&lt;expr&gt;\""));
    assert!(page.contains("<input name=\"w_status_C\" value=\"1\" type=\"radio\" checked>"));
    assert_no_raw_hostile(&page);

    // Unknown selection: no member form, no panic.
    let page = with_view(|v| html(v, Some(("nope", "http://x")), None));
    assert!(!page.contains("w_lf"));
}

#[test]
fn html_without_free_slot_or_nonce() {
    let store = BalancerStore::new(
        BalancerParams::new("solo"),
        [member("http://127.0.0.1:1", "")],
        now(),
    )
    .unwrap();
    let snap = store.snapshot();
    let balancers = [BalancerView::new(&snap, "")];
    let view = View {
        balancers: &balancers,
        mount: "/bm",
        server: "s",
        shared: None,
    };
    let page = html(&view, None, None);
    assert!(page.contains("<td>1 [1 Used]</td>"));
    assert!(!page.contains("b_nwrkr"));
    assert!(!page.contains("name=\"nonce\""));
    assert!(!page.contains("nonce="));
    assert!(page.contains("<td>(None)</td>"));
}

/// Checks that tags balance and that no text contains a raw `<` or a bare `&`.
fn check_xml(doc: &str) {
    let body = doc
        .strip_prefix("<?xml version='1.0' encoding='UTF-8' ?>\n")
        .expect("xml declaration");
    let mut stack: Vec<&str> = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find('<') {
        let text = &rest[..start];
        check_text(text);
        let end = rest[start..].find('>').expect("unclosed tag") + start;
        let tag = &rest[start + 1..end];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop(), Some(name), "mismatched close tag");
        } else {
            let name = tag.split_whitespace().next().unwrap();
            assert!(name.starts_with("httpd:"), "unexpected tag {name}");
            stack.push(name);
        }
        rest = &rest[end + 1..];
    }
    check_text(rest);
    assert!(stack.is_empty(), "unclosed {stack:?}");
}

fn check_text(text: &str) {
    assert!(!text.contains('>'), "raw > in {text:?}");
    for (i, _) in text.match_indices('&') {
        let ent = &text[i..];
        assert!(
            ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                .iter()
                .any(|e| ent.starts_with(e)),
            "bare & in {text:?}"
        );
    }
}

#[test]
fn xml_schema_and_escaping() {
    let doc = with_view(xml);
    check_xml(&doc);
    assert_no_raw_hostile(&doc);
    assert!(doc.starts_with(
        "<?xml version='1.0' encoding='UTF-8' ?>\n<httpd:manager xmlns:httpd='http://httpd.apache.org'>\n  <httpd:balancers>\n    <httpd:balancer>\n      <httpd:name>balancer://web</httpd:name>\n      <httpd:nonce>n0nce</httpd:nonce>\n      <httpd:stickysession>JSESSIONID</httpd:stickysession>\n      <httpd:nofailover>Off</httpd:nofailover>\n      <httpd:timeout>0</httpd:timeout>\n      <httpd:lbmethod>byrequests</httpd:lbmethod>\n      <httpd:scolonpathdelim>Off</httpd:scolonpathdelim>\n      <httpd:workers>\n        <httpd:worker>\n          <httpd:name>http://127.0.0.1:8001</httpd:name>\n          <httpd:scheme>http</httpd:scheme>\n          <httpd:hostname>127.0.0.1</httpd:hostname>\n          <httpd:loadfactor>1.00</httpd:loadfactor>\n          <httpd:port>8001</httpd:port>\n"
    ));
    assert!(doc.contains("<httpd:status>Init Dis </httpd:status>"));
    assert!(doc.contains("<httpd:status>Init Err </httpd:status>"));
    assert!(doc.contains("<httpd:status>Init Stby Ok </httpd:status>"));
    assert!(doc.contains("<httpd:status>Init HcFl </httpd:status>"));
    assert!(doc.contains("<httpd:hostname>[::1]</httpd:hostname>\n          <httpd:loadfactor>1.00</httpd:loadfactor>\n          <httpd:port>8003</httpd:port>"));
    assert!(doc.contains("<httpd:hostname>backend.example</httpd:hostname>\n          <httpd:loadfactor>1.00</httpd:loadfactor>\n          <httpd:port>443</httpd:port>"));
    assert!(doc.contains("<httpd:transferred>1536</httpd:transferred>"));
    assert!(doc.contains("<httpd:redirect>r&amp;2</httpd:redirect>"));
    assert!(doc.contains("<httpd:retry>60</httpd:retry>"));
    // Health-check elements, only for the member with a health check, after `retry`.
    assert!(doc.contains("<httpd:retry>60</httpd:retry>\n          <httpd:hcmethod>GET</httpd:hcmethod>\n          <httpd:hcinterval>5000</httpd:hcinterval>\n          <httpd:hcpasses>1</httpd:hcpasses>\n          <httpd:hcfails>2</httpd:hcfails>\n"));
    assert!(
        doc.contains("<httpd:hcexpr>ok&amp;&lt;expr&gt;</httpd:hcexpr>\n        </httpd:worker>")
    );
    assert_eq!(doc.matches("<httpd:hcmethod>").count(), 1);
    assert!(doc.contains("<httpd:nonce>a&quot;b&lt;c&gt;&amp;d</httpd:nonce>"));
    assert!(doc.ends_with("</httpd:manager>"));
    for el in [
        "name",
        "scheme",
        "hostname",
        "loadfactor",
        "port",
        "min",
        "smax",
        "max",
        "ttl",
        "status",
        "retries",
        "lbstatus",
        "transferred",
        "read",
        "elected",
        "route",
        "redirect",
        "busy",
        "lbset",
        "retry",
    ] {
        assert!(
            doc.contains(&format!("          <httpd:{el}>")),
            "missing {el}"
        );
    }
}

/// A minimal JSON parser: returns the rest after one value, or panics.
fn json_value(s: &str) -> &str {
    let s = s.trim_start();
    match s.as_bytes().first().copied() {
        Some(b'{') => {
            let mut s = s[1..].trim_start();
            if let Some(r) = s.strip_prefix('}') {
                return r;
            }
            loop {
                s = json_string(s.trim_start());
                s = s.trim_start().strip_prefix(':').expect("colon");
                s = json_value(s).trim_start();
                if let Some(r) = s.strip_prefix(',') {
                    s = r;
                } else {
                    return s.strip_prefix('}').expect("object end");
                }
            }
        }
        Some(b'[') => {
            let mut s = s[1..].trim_start();
            if let Some(r) = s.strip_prefix(']') {
                return r;
            }
            loop {
                s = json_value(s).trim_start();
                if let Some(r) = s.strip_prefix(',') {
                    s = r;
                } else {
                    return s.strip_prefix(']').expect("array end");
                }
            }
        }
        Some(b'"') => json_string(s),
        _ => {
            for lit in ["true", "false", "null"] {
                if let Some(r) = s.strip_prefix(lit) {
                    return r;
                }
            }
            let end = s
                .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
                .unwrap_or(s.len());
            assert!(end > 0, "bad value at {s:?}");
            s[..end].parse::<f64>().expect("number");
            &s[end..]
        }
    }
}

fn json_string(s: &str) -> &str {
    let mut chars = s.strip_prefix('"').expect("string").char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return &s[i + 2..],
            '\\' => match chars.next().expect("escape").1 {
                'u' => {
                    for _ in 0..4 {
                        assert!(chars.next().unwrap().1.is_ascii_hexdigit());
                    }
                }
                e => assert!("\"\\/bfnrt".contains(e), "bad escape {e}"),
            },
            c => assert!(u32::from(c) >= 0x20, "control char in string"),
        }
    }
    panic!("unterminated string")
}

fn check_json(doc: &str) {
    assert_eq!(json_value(doc), "", "trailing data");
}

#[test]
fn json_parses_and_escapes() {
    let doc = with_view(json);
    check_json(&doc);
    assert_no_raw_hostile(&doc);
    assert!(!doc.contains('<') && !doc.contains('>') && !doc.contains('&'));
    assert!(doc.contains(r#""route":"\u003cscript\u003ealert(\"x\u0026y\")\u003c/script\u003e'""#));
    assert!(doc.contains(r#""flags":"D","status":"Init Dis","usable":false"#));
    assert!(doc.contains(r#""flags":"E","status":"Init Err","usable":false"#));
    assert!(doc.contains(r#""flags":"H","status":"Init Stby Ok","usable":true"#));
    assert!(doc.contains(r#""flags":"C","status":"Init HcFl","usable":false"#));
    assert!(doc.contains(r#""last_passed":false"#));
    assert!(doc.contains(r#""max_members":6,"used":5"#));
    let with = with_view(|v| json_with_unavailable(v, &|n| if n == "web" { 4 } else { 0 }));
    check_json(&with);
    assert!(with.contains(r#""unavailable":4"#));
}

#[test]
fn json_exact_small_case() {
    let store = BalancerStore::new(
        BalancerParams::new("a"),
        [member("http://h:1", "DS")],
        now(),
    )
    .unwrap();
    let snap = store.snapshot();
    let balancers = [BalancerView::new(&snap, "n\n")];
    let view = View {
        balancers: &balancers,
        mount: "/",
        server: "s\\",
        shared: None,
    };
    assert_eq!(
        json(&view),
        concat!(
            r#"{"server":"s\\","balancers":[{"name":"a","full_name":"balancer://a","nonce":"n\n","#,
            r#""lbmethod":"byrequests","timeout_secs":0,"max_attempts":0,"max_attempts_set":false,"#,
            r#""sticky_session":null,"no_failover":false,"scolon_path_delim":false,"growth":0,"#,
            r#""max_members":1,"used":1,"selection":{},"members":[{"url":"http://h:1","scheme":"http","#,
            r#""hostname":"h","port":1,"route":null,"redirect":null,"load_factor":1.00,"lb_set":0,"#,
            r#""retry_secs":60,"flags":"DS","status":"Init Dis Stop","usable":false,"elected":0,"#,
            r#""busy":0,"lbstatus":0,"transferred":0,"read":0,"retries":0,"consecutive_failures":0,"#,
            r#""health":null,"selection":{}}]}]}"#
        )
    );
    check_json(&json(&view));
}

#[test]
fn prometheus_well_formed() {
    let text = with_view(|v| prometheus(v, &|n| if n == "web" { 9 } else { 0 }));
    let mut families = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(kind == "counter" || kind == "gauge");
            assert!(!families.contains(&name), "family {name} twice");
            families.push(name);
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        // name{labels} value
        let brace = line.find('{').expect("labels");
        let name = &line[..brace];
        assert_eq!(Some(&name), families.last(), "sample outside its family");
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        let close = line.rfind("} ").expect("label end");
        let value = &line[close + 2..];
        value.parse::<u64>().expect("integer value");
        // Label values: quoted, with only \\, \" and \n escapes.
        let labels = &line[brace + 1..close];
        let mut chars = labels.chars().peekable();
        while chars.peek().is_some() {
            let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
            assert!(!key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
            assert_eq!(chars.next(), Some('"'));
            loop {
                match chars.next().expect("unterminated label") {
                    '\\' => assert!(matches!(chars.next(), Some('\\' | '"' | 'n'))),
                    '"' => break,
                    c => assert_ne!(c, '\n'),
                }
            }
            if chars.peek() == Some(&',') {
                chars.next();
            }
        }
    }
    assert!(text.contains(
        "proxy_balancer_member_status{balancer=\"web\",member=\"http://127.0.0.1:8002\",flag=\"D\"} 1\n"
    ));
    assert!(text.contains(
        "proxy_balancer_member_status{balancer=\"web\",member=\"http://127.0.0.1:8001\",flag=\"D\"} 0\n"
    ));
    assert!(text.contains(
        "proxy_balancer_member_health_up{balancer=\"web\",member=\"http://127.0.0.1:8005\"} 0\n"
    ));
    assert_eq!(text.matches("proxy_balancer_member_health_up{").count(), 1);
    assert!(text.contains(
        "proxy_balancer_member_transferred_bytes_total{balancer=\"web\",member=\"http://127.0.0.1:8001\"} 1536\n"
    ));
    assert!(text.contains("proxy_balancer_unavailable_total{balancer=\"web\"} 9\n"));
    assert!(text.contains("proxy_balancer_unavailable_total{balancer=\"x\\\"<b>&'\"} 0\n"));
    assert!(text.contains(
        "proxy_balancer_member_errors_total{balancer=\"web\",member=\"http://[::1]:8003\"} 0\n"
    ));
}

#[test]
fn helpers() {
    assert_eq!(strfsize(0), "0");
    assert_eq!(strfsize(972), "972");
    assert_eq!(strfsize(1024), "1.0K");
    assert_eq!(strfsize(1536), "1.5K");
    assert_eq!(strfsize(20 * 1024), "20K");
    assert_eq!(strfsize(5 * 1024 * 1024), "5.0M");
    assert_eq!(strfsize(u64::MAX), "16E");
    assert_eq!(url_encode("http://a b/&"), "http%3A%2F%2Fa%20b%2F%26");
    assert_eq!(prom_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    assert_eq!(label(StatusFlags::EMPTY), "Init Ok");
}

// ===== the selection beyond Apache =====

/// Three balancers at `t0 + 6.001 s`: `hash` on a header with ejection (one member ejected) and
/// a panic threshold; `p2c-ewma` with an RTT measured and a member in its slow start; and
/// byrequests with the retry budget Off.
struct Selection {
    hash: BalancerStore,
    ewma: BalancerStore,
    plain: BalancerStore,
    at: Instant,
}

fn selection() -> Selection {
    let t0 = now();
    let at = t0 + std::time::Duration::from_millis(6_001);
    let mut params = BalancerParams::new("hashed");
    for (k, v) in [
        ("lbmethod", "hash"),
        ("hashkey", "header:X-User"),
        ("hashring", "ketama"),
        ("ejectconsecutive", "2"),
        ("ejecttime", "30"),
        ("ejectmax", "50"),
        ("panic", "60"),
    ] {
        params.set(k, v).unwrap();
    }
    let hash = BalancerStore::new(
        params,
        [
            member("http://127.0.0.1:8001", ""),
            member("http://127.0.0.1:8002", ""),
        ],
        t0,
    )
    .unwrap();
    {
        let snap = hash.snapshot();
        let outlier = &snap.params().outlier;
        let a = snap.members()[0].state();
        assert!(a.note_outcome(true, outlier, t0).is_none());
        assert!(a.note_outcome(true, outlier, t0).is_some(), "ejected");
    }
    let mut params = BalancerParams::new("ewma");
    params.set("lbmethod", "p2c-ewma").unwrap();
    params.set("ewmadecay", "5").unwrap();
    params.set("retrybudget", "30").unwrap();
    let ewma = BalancerStore::new(params, [member("http://127.0.0.1:9001", "")], t0).unwrap();
    let mut slow = member("http://127.0.0.1:9002", "");
    slow.set("slowstart", "20").unwrap();
    slow.set("retry", "1").unwrap();
    ewma.add_member(slow).unwrap();
    {
        // Back from an error 5 s before `at`: a quarter of its 20 s ramp.
        let snap = ewma.snapshot();
        let m = &snap.members()[1];
        m.mark_error(t0);
        assert!(m.try_recover(at - std::time::Duration::from_secs(5)));
    }
    ewma.snapshot().members()[0]
        .state()
        .observe_rtt(std::time::Duration::from_millis(12), at);
    ewma.retry_budget().withdraw(at);
    let mut params = BalancerParams::new("plain");
    params.set("retrybudget", "Off").unwrap();
    let plain = BalancerStore::new(params, [member("http://127.0.0.1:7001", "")], t0).unwrap();
    Selection {
        hash,
        ewma,
        plain,
        at,
    }
}

fn with_selection<T>(f: impl FnOnce(&View<'_>) -> T) -> T {
    let s = selection();
    let snaps = [s.hash.snapshot(), s.ewma.snapshot(), s.plain.snapshot()];
    let stores = [&s.hash, &s.ewma, &s.plain];
    let balancers: Vec<BalancerView<'_>> = snaps
        .iter()
        .zip(stores)
        .map(|(snap, store)| {
            BalancerView::new(snap, "")
                .with_retry_budget(store.retry_budget())
                .at(s.at)
        })
        .collect();
    let view = View {
        balancers: &balancers,
        mount: "/bm",
        server: "proxy-balancer",
        shared: None,
    };
    f(&view)
}

#[test]
fn xml_shows_the_selection_parameters_that_are_set() {
    let doc = with_selection(xml);
    for line in [
        "<httpd:lbmethod>hash</httpd:lbmethod>\n      <httpd:hashkey>header:x-user</httpd:hashkey>\n      <httpd:hashring>ketama</httpd:hashring>\n",
        "<httpd:ejectconsecutive>2</httpd:ejectconsecutive>\n      <httpd:ejecttime>30000</httpd:ejecttime>\n      <httpd:ejectmaxtime>300000</httpd:ejectmaxtime>\n      <httpd:ejectmax>50</httpd:ejectmax>\n      <httpd:ejected>1</httpd:ejected>\n",
        "<httpd:panic>60</httpd:panic>\n      <httpd:inpanic>On</httpd:inpanic>\n      <httpd:panicpicks>0</httpd:panicpicks>\n",
        "<httpd:panicpicks>0</httpd:panicpicks>\n      <httpd:retriesallowed>0</httpd:retriesallowed>\n      <httpd:retriesrefused>0</httpd:retriesrefused>\n      <httpd:workers>",
        "<httpd:ewmadecay>5000</httpd:ewmadecay>\n      <httpd:retrybudget>30</httpd:retrybudget>",
        "<httpd:retriesallowed>1</httpd:retriesallowed>",
        "<httpd:retrybudget>Off</httpd:retrybudget>\n      <httpd:retriesallowed>0</httpd:retriesallowed>",
        // Members: ejection, RTT, slow start.
        "<httpd:retry>60</httpd:retry>\n          <httpd:ejections>1</httpd:ejections>\n          <httpd:ejectedfor>23999</httpd:ejectedfor>\n        </httpd:worker>",
        "<httpd:retry>60</httpd:retry>\n          <httpd:ejections>0</httpd:ejections>\n        </httpd:worker>",
        "<httpd:retry>60</httpd:retry>\n          <httpd:rtt>12.000</httpd:rtt>\n        </httpd:worker>",
        "<httpd:retry>1</httpd:retry>\n          <httpd:slowstart>20000</httpd:slowstart>\n          <httpd:slowstartshare>0.250</httpd:slowstartshare>\n        </httpd:worker>",
    ] {
        assert!(doc.contains(line), "missing {line} in\n{doc}");
    }
    // Not set, not shown: no hash key outside lbmethod=hash, no ejection facts without it.
    assert_eq!(doc.matches("<httpd:hashkey>").count(), 1);
    assert_eq!(doc.matches("<httpd:ejections>").count(), 2);
    assert_eq!(doc.matches("<httpd:ewmadecay>").count(), 1);
    assert_eq!(doc.matches("<httpd:panic>").count(), 1);
}

#[test]
fn json_shows_the_selection_parameters_that_are_set() {
    let doc = with_selection(json);
    for part in [
        r#""used":2,"selection":{"hash_key":"header:x-user","hash_ring":"ketama","eject_consecutive":2,"eject_time_ms":30000,"eject_max_time_ms":300000,"eject_max_percent":50,"ejected":1,"panic_threshold":60,"in_panic":true,"panic_picks":0,"retries_allowed":0,"retries_refused":0},"members""#,
        r#""selection":{"ewma_decay_ms":5000,"retry_budget_percent":30,"retry_budget_min_per_sec":10,"retry_budget_window_ms":10000,"retries_allowed":1,"retries_refused":0}"#,
        r#""selection":{"retry_budget_percent":"Off","retries_allowed":0,"retries_refused":0}"#,
        r#""health":null,"selection":{"ejections":1,"ejected_for_ms":23999}}"#,
        r#""health":null,"selection":{"rtt_ms":12.000}}"#,
        r#""health":null,"selection":{"slow_start_ms":20000,"slow_start_share":0.250}}"#,
        r#""health":null,"selection":{}}"#,
    ] {
        assert!(doc.contains(part), "missing {part} in\n{doc}");
    }
    let parsed: serde_json::Value = serde_json::from_str(&doc).expect("valid JSON");
    assert_eq!(parsed["balancers"][0]["members"][0]["flags"], "J");
    assert_eq!(parsed["balancers"][0]["members"][0]["status"], "Init Ejct");
}

#[test]
fn html_shows_the_selection_and_offers_the_new_methods() {
    let page = with_selection(|v| html(v, None, None));
    for method in ["hash", "p2c", "p2c-ewma"] {
        assert!(
            page.contains(&format!("<option value=\"{method}\">{method}</option>"))
                || page.contains(&format!(
                    "<option value=\"{method}\" selected>{method}</option>"
                ))
        );
    }
    assert!(page.contains("<option value=\"hash\" selected>hash</option>"));
    assert!(page.contains("<th>Hash key</th><th>Hash ring</th><th>Eject after 5xx in a row</th>"));
    assert!(page.contains("<td>header:x-user</td><td>ketama</td><td>2</td>"));
    assert!(page.contains("<th>Panic below %</th><th>In panic</th><th>Panic picks</th>"));
    assert!(page.contains("<td>60</td><td>On</td><td>0</td>"));
    assert!(page.contains("<th>EWMA decay (ms)</th><th>Retry budget %</th><th>Retries/s floor</th><th>Retry budget window (ms)</th><th>Retries</th><th>Retries refused</th></tr>\n<tr><td>5000</td><td>30</td><td>10</td><td>10000</td><td>1</td><td>0</td></tr>"));
    // Member columns: only those some member has, `-` for the others.
    assert!(page.contains("<th>From</th><th>Ejections</th><th>Ejected for (ms)</th></tr>"));
    assert!(page.contains("<td>Init Ejct</td>"));
    assert!(page.contains("<td>1</td><td>23999</td></tr>"));
    assert!(page.contains("<td>0</td><td>-</td></tr>"));
    assert!(page.contains(
        "<th>From</th><th>Slow start (ms)</th><th>Slow start share</th><th>RTT (ms)</th></tr>"
    ));
    assert!(page.contains("<td>-</td><td>-</td><td>12.000</td></tr>"));
    assert!(page.contains("<td>20000</td><td>0.250</td><td>-</td></tr>"));
    assert!(page.contains("<td>Off</td><td>0</td><td>0</td></tr>"));
}

#[test]
fn metrics_show_the_selection() {
    let text = with_selection(|v| prometheus(v, &|_| 0));
    for line in [
        "proxy_balancer_member_status{balancer=\"hashed\",member=\"http://127.0.0.1:8001\",flag=\"J\"} 1\n",
        "proxy_balancer_member_status{balancer=\"hashed\",member=\"http://127.0.0.1:8002\",flag=\"J\"} 0\n",
        "proxy_balancer_member_ejections_total{balancer=\"hashed\",member=\"http://127.0.0.1:8001\"} 1\n",
        "proxy_balancer_member_ejections_total{balancer=\"ewma\",member=\"http://127.0.0.1:9001\"} 0\n",
        "proxy_balancer_member_slow_start_share{balancer=\"ewma\",member=\"http://127.0.0.1:9002\"} 0.25\n",
        "proxy_balancer_member_rtt_seconds{balancer=\"ewma\",member=\"http://127.0.0.1:9001\"} 0.012\n",
        "proxy_balancer_retries_total{balancer=\"ewma\"} 1\n",
        "proxy_balancer_retries_refused_total{balancer=\"hashed\"} 0\n",
        "proxy_balancer_ejected_members{balancer=\"hashed\"} 1\n",
        "proxy_balancer_ejected_members{balancer=\"plain\"} 0\n",
        "proxy_balancer_panic_picks_total{balancer=\"hashed\"} 0\n",
        "proxy_balancer_in_panic{balancer=\"hashed\"} 1\n",
        "# TYPE proxy_balancer_retries_refused_total counter\n",
        "# TYPE proxy_balancer_in_panic gauge\n",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    assert!(!text.contains("proxy_balancer_in_panic{balancer=\"plain\"}"));
    assert!(!text.contains("proxy_balancer_member_slow_start_share{balancer=\"ewma\",member=\"http://127.0.0.1:9001\"}"));
    assert!(!text.contains("proxy_balancer_member_rtt_seconds{balancer=\"hashed\""));
}

#[test]
fn without_a_clock_or_budget_the_time_dependent_facts_are_left_out() {
    let s = selection();
    let snap = s.hash.snapshot();
    let b = [BalancerView::new(&snap, "")];
    let view = View {
        balancers: &b,
        mount: "/bm",
        server: "s",
        shared: None,
    };
    let doc = xml(&view);
    assert!(!doc.contains("<httpd:inpanic>"));
    assert!(!doc.contains("<httpd:ejectedfor>"));
    assert!(!doc.contains("<httpd:retriesallowed>"));
    assert!(doc.contains("<httpd:ejections>1</httpd:ejections>"));
}
