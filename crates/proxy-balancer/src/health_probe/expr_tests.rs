use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;

use super::*;

fn headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("x-ready", HeaderValue::from_static("yes"));
    headers.insert("x-num", HeaderValue::from_static("42"));
    headers.insert("content-type", HeaderValue::from_static("text/plain"));
    headers.insert("x-bytes", HeaderValue::from_bytes(b"a\xffb").unwrap());
    headers
}

const BODY: &[u8] = b"OK all good\n";

fn eval_with(expr: &str, status: u16, body: &[u8]) -> bool {
    let headers = headers();
    let parsed = HcExpr::parse(expr).unwrap_or_else(|e| panic!("{expr:?}: {e}"));
    parsed.eval(&ProbeResponse {
        status,
        headers: &headers,
        body,
    })
}

#[test]
fn evaluates_every_operator() {
    let cases: &[(&str, bool)] = &[
        // Regex match.
        ("%{REQUEST_STATUS} =~ /^[234]/", true),
        ("%{REQUEST_STATUS} !~ /^[234]/", false),
        ("%{REQUEST_STATUS} =~ /^5/", false),
        ("%{REQUEST_STATUS} !~ /^5/", true),
        ("hc('body') =~ /all good/", true),
        ("hc('body') !~ /Under maintenance/", true),
        ("hc('body') =~ /ALL GOOD/", false),
        ("hc('body') =~ /ALL GOOD/i", true),
        ("hc('body') =~ m#all good#", true),
        ("hc('body') =~ m|^OK|", true),
        ("hc(\"BODY\") =~ /OK/", true),
        ("'a/b' =~ /^a\\/b$/", true),
        ("'a#b' =~ m#^a\\#b$#", true),
        ("%{resp:Content-Type} =~ /^text\\//", true),
        ("%{resp:X-Bytes} =~ /^a\u{fffd}b$/", true),
        // String equality.
        ("%{REQUEST_STATUS} == 200", true),
        ("%{REQUEST_STATUS} == '200'", true),
        ("%{REQUEST_STATUS} == \"200\"", true),
        ("%{REQUEST_STATUS} = 200", true),
        ("%{REQUEST_STATUS} == 204", false),
        ("%{REQUEST_STATUS} != 200", false),
        ("%{REQUEST_STATUS} != 204", true),
        ("%{REQUEST_STATUS}==200", true),
        ("'%{REQUEST_STATUS}' == 200", true),
        ("\"s=%{REQUEST_STATUS}!\" == 's=200!'", true),
        ("'a\\'b' == \"a'b\"", true),
        ("'' == ''", true),
        // Headers.
        ("%{resp:X-Ready} == 'yes'", true),
        ("%{resp:x-ready} == yes", true),
        ("%{RESP:X-READY} == yes", true),
        ("resp('X-Ready') == 'yes'", true),
        ("%{resp:Missing} == ''", true),
        ("%{resp:Missing} != ''", false),
        // Integer comparisons.
        ("%{REQUEST_STATUS} -eq 200", true),
        ("%{REQUEST_STATUS} -eq 0200", true),
        ("%{REQUEST_STATUS} -ne 200", false),
        ("%{REQUEST_STATUS} -lt 300", true),
        ("%{REQUEST_STATUS} -lt 200", false),
        ("%{REQUEST_STATUS} -le 200", true),
        ("%{REQUEST_STATUS} -le 199", false),
        ("%{REQUEST_STATUS} -gt 199", true),
        ("%{REQUEST_STATUS} -gt 200", false),
        ("%{REQUEST_STATUS} -ge 200", true),
        ("%{REQUEST_STATUS} -ge 201", false),
        ("%{resp:X-Num} -gt 41", true),
        ("%{resp:Missing} -eq 0", true),
        ("%{resp:Content-Type} -eq 0", true),
        ("-1 -lt 0", true),
        ("' 12%{resp:Missing}abc' -eq 12", true),
        ("'99999999999999999999' -eq 9223372036854775807", true),
        // Lists.
        ("%{REQUEST_STATUS} -in {'200','204'}", true),
        ("%{REQUEST_STATUS} -in { 200 , 204 }", true),
        ("%{REQUEST_STATUS} -in {'204'}", false),
        ("%{resp:X-Ready} -in {'no', \"yes\"}", true),
        // Constants and negation.
        ("true", true),
        ("false", false),
        ("!true", false),
        ("!false", true),
        ("!!true", true),
        ("! ! false", false),
        ("(true)", true),
        ("((false))", false),
        ("true == true", true),
        // The directive's braces.
        ("{%{REQUEST_STATUS} =~ /^[234]/}", true),
        (" { false } ", false),
        // Whitespace of all kinds.
        ("\t%{REQUEST_STATUS}\n==\r\n200 ", true),
    ];
    for &(expr, expected) in cases {
        assert_eq!(eval_with(expr, 200, BODY), expected, "{expr}");
    }
}

#[test]
fn precedence() {
    let cases: &[(&str, bool)] = &[
        ("true || false && false", true),
        ("(true || false) && false", false),
        ("false && true || true", true),
        ("false && (true || true)", false),
        ("!true || true", true),
        ("!(true || true)", false),
        ("!false && false", false),
        ("true && !false", true),
        ("! 'a' == 'b'", true),
        ("!%{REQUEST_STATUS} == 200", false),
        (
            "!%{REQUEST_STATUS} == 200 || %{REQUEST_STATUS} == 200",
            true,
        ),
        ("false || false || true", true),
        ("true && true && false", false),
        (
            "%{REQUEST_STATUS} -in {'200','204'} && %{resp:X-Ready} == 'yes'",
            true,
        ),
        (
            "%{REQUEST_STATUS} -in {'200','204'} && %{resp:X-Ready} == 'no'",
            false,
        ),
    ];
    for &(expr, expected) in cases {
        assert_eq!(eval_with(expr, 200, BODY), expected, "{expr}");
    }
}

#[test]
fn apache_observations() {
    // Obs. h4: `ok234` made a 404 pass.
    assert!(eval_with("%{REQUEST_STATUS} =~ /^[234]/", 404, b""));
    assert!(!eval_with("%{REQUEST_STATUS} =~ /^[234]/", 503, b""));
    // Obs. h4: a 200 "Under maintenance" failed the body check.
    let up = "hc('body') !~ /Under maintenance/";
    assert!(!eval_with(up, 200, b"<h1>Under maintenance</h1>"));
    assert!(eval_with(up, 200, b"OK"));
    assert!(eval_with(up, 200, b"\xff\xfe not utf-8"));
}

#[test]
fn uses_body_only_when_read() {
    for (expr, uses) in [
        ("%{REQUEST_STATUS} =~ /^[234]/", false),
        ("%{resp:X-Ready} == 'hc(body)'", false),
        ("hc('body') =~ /x/", true),
        ("true || 'x%{REQUEST_STATUS}' -in {hc('body')}", true),
    ] {
        assert_eq!(HcExpr::parse(expr).unwrap().uses_body(), uses, "{expr}");
    }
}

#[test]
fn display_and_clone_keep_the_source() {
    let expr: HcExpr = "hc('body') !~ /Under maintenance/".parse().unwrap();
    let copy = expr.clone();
    assert_eq!(copy.to_string(), "hc('body') !~ /Under maintenance/");
    assert_eq!(copy.as_str(), expr.as_str());
    assert!(Arc::ptr_eq(&expr.inner, &copy.inner));
}

#[test]
fn error_columns() {
    let deep_parens = format!("{}true{}", "(".repeat(65), ")".repeat(65));
    let deep_nots = format!("{}true", "!".repeat(65));
    let cases: &[(&str, usize, &str)] = &[
        ("", 1, "empty expression"),
        ("   ", 4, "empty expression"),
        ("%{REQUEST_STATUS} =~ 200", 22, "expected a regex after =~"),
        ("%{REQUEST_STATUS} !~", 21, "expected a regex after !~"),
        ("%{NOPE} == 1", 1, "unknown variable %{NOPE}"),
        ("%{REQUEST_STATUS", 1, "unterminated `%{`"),
        ("%{resp:Bad Header} == 1", 8, "invalid header name"),
        ("hc('head') =~ /x/", 4, "unknown hc() argument"),
        ("hc(body) =~ /x/", 4, "expected a quoted argument"),
        ("foo('x') == 1", 1, "unknown function foo()"),
        ("'abc", 1, "unterminated string"),
        ("hc('body') =~ /abc", 15, "unterminated regex"),
        ("hc('body') =~ /(a/", 15, "invalid regex: unclosed group"),
        ("hc('body') =~ /x/g", 18, "unknown regex flag `g`"),
        ("%{REQUEST_STATUS} -xx 1", 19, "unknown operator -xx"),
        (
            "%{REQUEST_STATUS} -eq abc",
            23,
            "expected an integer after -eq",
        ),
        ("abc -lt 1", 1, "expected an integer before -lt"),
        ("%{REQUEST_STATUS} -in 200", 23, "expected `{` after -in"),
        ("%{REQUEST_STATUS} -in {}", 24, "expected a term"),
        (
            "%{REQUEST_STATUS} -in {'200' '204'}",
            30,
            "expected `,` or `}`",
        ),
        ("(true", 6, "expected `)` to close column 1"),
        ("true)", 5, "unmatched `)`"),
        ("true &&", 8, "expected a condition"),
        ("true true", 6, "expected `&&`, `||` or the end"),
        ("%{REQUEST_STATUS}", 18, "expected an operator"),
        ("%{REQUEST_STATUS} == ", 22, "expected a term"),
        ("== 200", 1, "expected a term"),
        ("!= 200", 1, "expected a term"),
        ("{true", 6, "expected `}`"),
        ("'é' == 'x' )", 12, "unmatched `)`"),
        (&deep_parens, 65, "nesting deeper than 64 levels"),
        (&deep_nots, 65, "nesting deeper than 64 levels"),
    ];
    for &(expr, column, message) in cases {
        let err = HcExpr::parse(expr).expect_err(expr);
        assert_eq!(err.column, column, "{expr}: {err}");
        assert!(err.message.contains(message), "{expr}: {err}");
        assert_eq!(err.to_string(), format!("column {column}: {}", err.message));
    }
}

#[test]
fn depth_limit_is_inclusive_and_long_inputs_parse() {
    let parens = format!("{}true{}", "(".repeat(64), ")".repeat(64));
    assert!(eval_with(&parens, 200, b""));
    let nots = format!("{}true", "!".repeat(64));
    assert!(eval_with(&nots, 200, b""));
    // Long flat chains do not nest: no depth error, no deep recursion.
    let chain = vec!["%{REQUEST_STATUS} == 200"; 20_000].join(" && ");
    assert!(eval_with(&chain, 200, b""));
    let chain = vec!["false"; 20_000].join(" || ");
    assert!(!eval_with(&chain, 200, b""));
    let long_string = format!("'{}' =~ /^x+$/", "x".repeat(100_000));
    assert!(eval_with(&long_string, 200, b""));
}

#[test]
fn huge_regex_is_an_error() {
    let err = HcExpr::parse("hc('body') =~ /(((a{100}){100}){100})/").unwrap_err();
    assert_eq!(err.column, 15);
    assert!(err.message.starts_with("invalid regex"), "{err}");
}

#[test]
fn atoi_like_apache() {
    for (s, n) in [
        ("", 0),
        ("abc", 0),
        ("42", 42),
        (" \t42x", 42),
        ("+7", 7),
        ("-7", -7),
        ("-", 0),
        ("99999999999999999999", i64::MAX),
        ("-99999999999999999999", i64::MIN),
    ] {
        assert_eq!(atoi64(s), n, "{s:?}");
    }
}

// ===== properties =====

/// A well-formed condition, with a model of its value.
#[derive(Debug, Clone)]
enum Gen {
    Bool(bool),
    StatusEq(u16),
    StatusLt(u16),
    StatusIn(Vec<u16>),
    StatusRe(u8),
    BodyRe(String, bool),
    Header(bool),
    Not(Box<Self>),
    And(Box<Self>, Box<Self>),
    Or(Box<Self>, Box<Self>),
}

impl Gen {
    fn model(&self, status: u16, body: &str) -> bool {
        match self {
            Self::Bool(b) => *b,
            Self::StatusEq(n) => status == *n,
            Self::StatusLt(n) => status < *n,
            Self::StatusIn(list) => list.contains(&status),
            Self::StatusRe(d) => status.to_string().starts_with(char::from(b'0' + d)),
            Self::BodyRe(word, negate) => body.contains(word.as_str()) != *negate,
            Self::Header(yes) => *yes,
            Self::Not(g) => !g.model(status, body),
            Self::And(a, b) => a.model(status, body) && b.model(status, body),
            Self::Or(a, b) => a.model(status, body) || b.model(status, body),
        }
    }

    /// The text and its precedence (1 `||`, 2 `&&`, 3 the rest), with only
    /// the parentheses needed.
    fn render(&self) -> (String, u8) {
        fn wrap((text, prec): (String, u8), min: u8) -> String {
            if prec < min {
                format!("({text})")
            } else {
                text
            }
        }
        match self {
            Self::Bool(b) => (b.to_string(), 3),
            Self::StatusEq(n) => (format!("%{{REQUEST_STATUS}} == '{n}'"), 3),
            Self::StatusLt(n) => (format!("%{{REQUEST_STATUS}} -lt {n}"), 3),
            Self::StatusIn(list) => {
                let items: Vec<String> = list.iter().map(|n| format!("'{n}'")).collect();
                (
                    format!("%{{REQUEST_STATUS}} -in {{{}}}", items.join(",")),
                    3,
                )
            }
            Self::StatusRe(d) => (format!("%{{REQUEST_STATUS}} =~ /^{d}/"), 3),
            Self::BodyRe(word, negate) => {
                let op = if *negate { "!~" } else { "=~" };
                (format!("hc('body') {op} /{word}/"), 3)
            }
            Self::Header(yes) => {
                let op = if *yes { "==" } else { "!=" };
                (format!("%{{resp:X-Ready}} {op} \"yes\""), 3)
            }
            Self::Not(g) => (format!("!{}", wrap(g.render(), 3)), 3),
            Self::And(a, b) => (
                format!("{} && {}", wrap(a.render(), 2), wrap(b.render(), 2)),
                2,
            ),
            Self::Or(a, b) => (format!("{} || {}", a.render().0, b.render().0), 1),
        }
    }
}

fn gen_expr() -> impl Strategy<Value = Gen> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Gen::Bool),
        (100u16..600).prop_map(Gen::StatusEq),
        (100u16..600).prop_map(Gen::StatusLt),
        prop::collection::vec(100u16..600, 1..4).prop_map(Gen::StatusIn),
        (1u8..6).prop_map(Gen::StatusRe),
        ("[a-z]{1,3}", any::<bool>()).prop_map(|(w, n)| Gen::BodyRe(w, n)),
        any::<bool>().prop_map(Gen::Header),
    ];
    leaf.prop_recursive(6, 48, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|g| Gen::Not(Box::new(g))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Gen::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| Gen::Or(Box::new(a), Box::new(b))),
        ]
    })
}

fn parse_and_eval(input: &str) {
    let headers = headers();
    if let Ok(expr) = HcExpr::parse(input) {
        let _ = expr.eval(&ProbeResponse {
            status: 200,
            headers: &headers,
            body: BODY,
        });
        assert_eq!(expr.as_str(), input);
    }
}

proptest! {
    #[test]
    fn never_panics_on_any_string(input in any::<String>()) {
        parse_and_eval(&input);
    }

    #[test]
    fn never_panics_on_expression_like_strings(
        input in r#"[%{}()'"/\\!=~&|,:#m a-zA-Z0-9_.é-]{0,80}"#
    ) {
        parse_and_eval(&input);
    }

    #[test]
    fn never_panics_on_mutated_expressions(
        g in gen_expr(),
        cut in any::<prop::sample::Index>(),
        junk in r#"[%{}()'"/\\!=~&|-]{0,3}"#,
    ) {
        let text = g.render().0;
        let at = cut.index(text.len() + 1);
        parse_and_eval(&format!("{}{junk}{}", &text[..at], &text[at..]));
    }

    #[test]
    fn eval_follows_the_model_and_not_negates(
        g in gen_expr(),
        status in 100u16..600,
        body in "[a-z ]{0,40}",
    ) {
        let headers = headers();
        let response = ProbeResponse { status, headers: &headers, body: body.as_bytes() };
        let text = g.render().0;
        let expr = HcExpr::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        let value = expr.eval(&response);
        prop_assert_eq!(value, g.model(status, &body), "{}", text);
        let negated = HcExpr::parse(&format!("!({text})")).unwrap();
        prop_assert_eq!(negated.eval(&response), !value, "{}", text);
        let not_gen = Gen::Not(Box::new(g)).render().0;
        prop_assert_eq!(HcExpr::parse(&not_gen).unwrap().eval(&response), !value, "{}", not_gen);
    }
}
