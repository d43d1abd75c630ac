//! Every kind of parse error, with its line, column and hint.

use proxy_balancer_apache_config::{parse, ParseError, ParseErrorKind, Span};

fn errors(text: &str) -> Vec<ParseError> {
    parse(text).expect_err("an error").into_vec()
}

fn one(text: &str) -> ParseError {
    let mut e = errors(text);
    assert_eq!(e.len(), 1, "{e:?}");
    e.remove(0)
}

fn at(line: u32, column: u32) -> Span {
    Span::new(line, column)
}

const HEAD: &str = "<Proxy balancer://app>\n";

#[test]
fn unknown_parameter_with_did_you_mean_at_line_12_column_30() {
    let text = format!(
        "{}<Proxy balancer://app>\n    BalancerMember http://a:80 hcpath=/health\n</Proxy>\n",
        "# filler\n".repeat(10)
    );
    let e = one(&text);
    assert_eq!(e.kind, ParseErrorKind::UnknownParameter);
    assert_eq!(e.span, at(12, 32));
    assert_eq!(e.hint.as_deref(), Some("did you mean \"hcuri\"?"));
    let text = format!(
        "{}<Proxy balancer://app>\nBalancerMember http://a:8080 hcpath=/health\n</Proxy>\n",
        "\n".repeat(10)
    );
    assert_eq!(
        one(&text).to_string(),
        "line 12, column 30: unknown parameter \"hcpath\" (did you mean \"hcuri\"?)"
    );
}

#[test]
fn did_you_mean_cases() {
    let e = one(&format!(
        "{HEAD}BalancerMember http://a loadfacter=2\n</Proxy>"
    ));
    assert_eq!(e.hint.as_deref(), Some("did you mean \"loadfactor\"?"));
    assert_eq!(e.span, at(2, 25));
    let e = one(&format!("{HEAD}ProxySet stickysesion=JSESSIONID\n</Proxy>"));
    assert_eq!(e.hint.as_deref(), Some("did you mean \"stickysession\"?"));
    assert_eq!(e.span, at(2, 10));
    let e = one(&format!("{HEAD}ProxySet loadfactor=2\n</Proxy>"));
    assert!(e.hint.unwrap().contains("member parameter"));
    let e = one(&format!(
        "{HEAD}BalancerMember http://a nofailover=On\n</Proxy>"
    ));
    assert!(e.hint.unwrap().contains("balancer parameter"));
    let e = one(&format!("{HEAD}  BalancerMembr http://a\n</Proxy>"));
    assert_eq!(e.kind, ParseErrorKind::UnknownDirective);
    assert_eq!(e.span, at(2, 3));
    assert_eq!(e.hint.as_deref(), Some("did you mean \"BalancerMember\"?"));
    let e = one("ProxyPas / balancer://app\n<Proxy balancer://app>\n</Proxy>");
    assert_eq!(e.hint.as_deref(), Some("did you mean \"ProxyPass\"?"));
    let e = one("ProxyHCTemplate t hcpath=/x");
    assert_eq!(e.hint.as_deref(), Some("did you mean \"hcuri\"?"));
    let e = one(&format!(
        "{HEAD}BalancerMember http://a zzzzzzzz=1\n</Proxy>"
    ));
    assert_eq!(e.hint, None);
}

#[test]
fn invalid_values() {
    let text = format!(
        "{HEAD}BalancerMember http://a loadfactor=0 lbset=100 retry=500ms hcmethod=POST \
         hcinterval=50ms hcuri={} iobuffersize=100 flushwait=2000 status=Q\n</Proxy>",
        "u".repeat(64)
    );
    let e = errors(&text);
    assert_eq!(e.len(), 9, "{e:#?}");
    assert!(e.iter().all(|e| e.kind == ParseErrorKind::InvalidValue));
    assert_eq!(e[0].span, at(2, 25));
    assert!(e[0].message.contains("loadfactor"), "{}", e[0]);
    assert!(e[4].message.contains("100ms"), "{}", e[4]);
    let e = errors(&format!(
        "{HEAD}ProxySet growth=0 maxattempts=-1 failonstatus=99 lbmethod=roundrobin nonce={}\n</Proxy>",
        "n".repeat(37)
    ));
    assert_eq!(e.len(), 5);
    let e = errors("BalancerGrowth 1001\nBalancerPersist maybe\nProxyTimeout 0\nBalancerInherit");
    assert_eq!(e.len(), 4);
    assert_eq!(e[0].span, at(1, 16));
    assert_eq!(e[3].kind, ParseErrorKind::Syntax);
    let e = one("ProxyPass /x http://a:80 mapping=other");
    assert_eq!(e.span, at(1, 26));
    let e = one(&format!("{HEAD}BalancerMember nohost\n</Proxy>"));
    assert_eq!((e.kind, e.span), (ParseErrorKind::InvalidValue, at(2, 16)));
    let e = one("ProxyPass /x nowhere");
    assert_eq!(e.span, at(1, 14));
}

#[test]
fn member_outside_balancer() {
    let e = one("\n  BalancerMember http://a:80");
    assert_eq!(e.kind, ParseErrorKind::MemberOutsideBalancer);
    assert_eq!(e.span, at(2, 3));
    let e = one("<Proxy *>\nBalancerMember http://a:80\n</Proxy>");
    assert_eq!(e.kind, ParseErrorKind::MemberOutsideBalancer);
    assert!(parse("BalancerMember balancer://x http://a:80").is_ok());
}

#[test]
fn undefined_balancer_template_and_expr() {
    let e = one("ProxyPass / balancer://nowhere/ lbmethod=bybusyness");
    assert_eq!(e.kind, ParseErrorKind::UndefinedBalancer);
    assert_eq!(e.span, at(1, 13));
    assert_eq!(
        e.to_string(),
        "line 1, column 13: balancer \"balancer://nowhere\" is not defined \
         (add a <Proxy \"balancer://nowhere\"> block with BalancerMember lines)"
    );
    // Defined after the ProxyPass: fine, as in Apache.
    assert!(parse("ProxyPass / balancer://later/\n<Proxy balancer://LATER>\n</Proxy>").is_ok());
    let e = one(&format!(
        "{HEAD}BalancerMember http://a hctemplate=nope\n</Proxy>"
    ));
    assert_eq!(
        (e.kind, e.span),
        (ParseErrorKind::UndefinedTemplate, at(2, 25))
    );
    let e = one(&format!(
        "{HEAD}BalancerMember http://a hcexpr=ok\n</Proxy>\nProxyHCExpr ok {{%{{REQUEST_STATUS}} =~ /^2/}}"
    ));
    assert_eq!(e.kind, ParseErrorKind::UndefinedExpr);
    assert!(e.hint.unwrap().contains("defined later, on line 4"));
    let e = one("ProxyHCTemplate t hcexpr=missing");
    assert_eq!((e.kind, e.span), (ParseErrorKind::UndefinedExpr, at(1, 19)));
}

#[test]
fn syntax_and_blocks() {
    let e = one(&format!("{HEAD}BalancerMember \"http://a\n</Proxy>"));
    assert_eq!((e.kind, e.span), (ParseErrorKind::Syntax, at(2, 16)));
    let e = one("<Proxy balancer://x>\nBalancerMember http://a");
    assert_eq!((e.kind, e.span), (ParseErrorKind::UnclosedBlock, at(1, 1)));
    let e = one("</Proxy>");
    assert_eq!(e.kind, ParseErrorKind::UnmatchedClose);
    let e = errors("<VirtualHost *:80>\n<Proxy balancer://x>\n</VirtualHost>\n</Proxy>");
    assert!(e
        .iter()
        .any(|e| (e.kind, e.span) == (ParseErrorKind::UnmatchedClose, at(3, 1))));
    let e = errors("<Proxy balancer://x\n</Proxy>");
    assert_eq!((e[0].kind, e[0].span), (ParseErrorKind::Syntax, at(1, 1)));
    let e = one(&format!("{HEAD}BalancerMember http://a route\n</Proxy>"));
    assert_eq!((e.kind, e.span), (ParseErrorKind::Syntax, at(2, 25)));
    let e = one("ProxySet lbmethod=byrequests");
    assert_eq!(e.kind, ParseErrorKind::Syntax);
    let e = one("ProxyHCExpr broken no braces");
    assert_eq!((e.kind, e.span), (ParseErrorKind::Syntax, at(1, 20)));
    let e = one(&format!(
        "{HEAD}BalancerMember http://a\nBalancerMember HTTP://A/\n</Proxy>"
    ));
    assert_eq!(
        (e.kind, e.span),
        (ParseErrorKind::DuplicateMember, at(3, 16))
    );
}

#[test]
fn all_errors_are_reported_in_text_order() {
    let text = "ProxyPass / balancer://x/\nBalancerMember http://a\n<Proxy balancer://y>\n\
                BalancerMember http://b loadfacter=1 lbset=x\n</Proxy>";
    let e = errors(text);
    let lines: Vec<u32> = e.iter().map(|e| e.span.line).collect();
    assert_eq!(lines, [1, 2, 4, 4]);
    let all = parse(text).unwrap_err().to_string();
    assert_eq!(all.lines().count(), 4);
}

#[test]
fn apache_syntax_details() {
    let c = parse(
        "<proxy 'balancer://Mixed/'>\n\
         \tbalancermember \"http://a:80\" \"secret=a b\" ROUTE=x \\\n\
         \t  LoadFactor=2\n\
         </PROXY>\n\
         Header always append Via \"lb \\\"one\\\"\"\n\
         Header unset Server\n\
         Header set X-A \"1\" expr=%{REQUEST_STATUS}\n\
         proxypass / balancer://MIXED/Sub\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.balancers[0].name, "balancer://mixed");
    let m = &c.balancers[0].members[0];
    assert_eq!(m.params[0].value, "a b");
    assert_eq!(m.params[2].span, at(3, 4));
    // `unset` is read (no value), and so is the `expr=` condition.
    assert_eq!(c.headers.len(), 3);
    assert_eq!(c.headers[0].value, "lb \"one\"");
    assert_eq!(
        (c.headers[1].action.as_str(), c.headers[1].name.as_str()),
        ("unset", "Server")
    );
    assert_eq!(
        c.headers[2].condition,
        Some(proxy_balancer_apache_config::HeaderCondition::Expr(
            "%{REQUEST_STATUS}".into()
        ))
    );
    assert!(c.skipped.is_empty());
    assert_eq!(
        c.proxy_passes[0].target,
        proxy_balancer_apache_config::ProxyTarget::Balancer {
            name: "balancer://mixed".into(),
            path: "/Sub".into()
        }
    );
}

#[test]
fn errors_stop_at_one_hundred() {
    let text = format!(
        "{HEAD}BalancerMember http://a {}\n</Proxy>",
        "zz=1 ".repeat(500)
    );
    assert_eq!(parse(&text).unwrap_err().len(), 100);
}

#[test]
fn core_conversion_errors() {
    let c = parse("<Proxy balancer://x>\nBalancerMember ajp://a:8009\n</Proxy>").unwrap();
    let e = c.balancers().unwrap_err();
    assert_eq!(e.errors()[0].span, at(2, 1));
}

#[test]
fn no_panic_on_large_inputs() {
    for text in [
        "<".repeat(1 << 20),
        "\"".repeat(1 << 20),
        "\\\n".repeat(1 << 19),
        format!(
            "BalancerMember balancer://x http://a {}",
            "k=v ".repeat(1 << 18)
        ),
        "<Proxy balancer://x>\n".repeat(1 << 15),
        format!("ProxyHCExpr x {{{}}}", "}".repeat(1 << 20)),
        "{\u{0}é\u{202e}\r\n".repeat(1 << 17),
    ] {
        let _ = parse(&text);
    }
}

/// How much the per-unit parse time may grow from `n` units to `GROWTH * n`: many lines.
const LINES_BOUND: f64 = 3.0;
/// The same for one long line, whose characters and their places are held together
/// (12 bytes a character): once that outgrows the CPU's L2 cache the time per character
/// roughly doubles, measured 1.8-2.4x in a debug build on a 2 MiB L2 (see the test's docs).
const ONE_LINE_BOUND: f64 = 4.0;
const GROWTH: usize = 16;

/// An input shape for the scaling test: its name, `n` (the small size), whether it parses
/// (checked on every run, so that an early stop cannot pass for speed), the per-unit bound,
/// and the input of `n` units.
type Shape = (&'static str, usize, bool, f64, fn(usize) -> String);

/// Inputs of `n` units (lines, or characters of one line) in the shapes a quadratic step
/// would hurt: many members, many balancers, comments, continuations, one long line, many
/// words, nested opens past the error limit, a long `hcexpr`. Sized so that `GROWTH * n`
/// units parse in about 15 ms in a debug build.
fn scaling_shapes() -> Vec<Shape> {
    vec![
        ("member lines", 64, true, LINES_BOUND, |n| {
            let mut s = String::from("<Proxy balancer://app>\n");
            for i in 0..n {
                s += &format!(
                    "BalancerMember http://10.0.{}.{}:8080 route=r{i} loadfactor=2 retry=5\n",
                    i >> 8 & 255,
                    i & 255
                );
            }
            s + "</Proxy>\nProxyPass / balancer://app/\n"
        }),
        ("balancer blocks", 40, true, LINES_BOUND, |n| {
            let mut s = String::new();
            for i in 0..n {
                s += &format!(
                    "<Proxy balancer://b{i}>\nBalancerMember http://a{i}:80\n\
                     ProxySet lbmethod=bybusyness\n</Proxy>\nProxyPass /p{i} balancer://b{i}/\n"
                );
            }
            s
        }),
        ("comment lines", 700, true, LINES_BOUND, |n| {
            "# a comment\n\n".repeat(n)
        }),
        ("continuation lines", 3000, true, LINES_BOUND, |n| {
            format!(
                "<Proxy balancer://app>\nBalancerMember http://a:80 \\\n{}route=r1\n</Proxy>\n",
                "  \\\n".repeat(n)
            )
        }),
        ("nested <Proxy> lines", 250, false, LINES_BOUND, |n| {
            "<Proxy balancer://x>\n".repeat(n)
        }),
        ("one line of <", 8000, false, ONE_LINE_BOUND, |n| {
            "<".repeat(n)
        }),
        ("one line of quotes", 8000, true, ONE_LINE_BOUND, |n| {
            "\"".repeat(n)
        }),
        ("parameters on one line", 1000, true, ONE_LINE_BOUND, |n| {
            format!(
                "<Proxy balancer://x>\nBalancerMember http://a {}\n</Proxy>\n",
                "retry=5 ".repeat(n)
            )
        }),
        ("a long hcexpr", 8000, true, ONE_LINE_BOUND, |n| {
            format!("ProxyHCExpr x {{{}}}", "}".repeat(n))
        }),
    ]
}

/// The parser takes time linear in its input: per unit (line, or character of one long
/// line), parsing `GROWTH * n` = 16n units once costs less than [`LINES_BOUND`] = 3 times (4
/// for one long line, [`ONE_LINE_BOUND`]) what parsing n units 16 times costs.
///
/// The bound: a linear parser gives a ratio near 1 (1.0-1.7 measured for many lines in a
/// debug build, from hash-map growth and cache misses on the larger input; up to 2.4 for one
/// long line, from leaving the L2 cache); a quadratic step gives about 16 once it dominates,
/// and still more than 3 as long as it is over 15% of the work at the small size (over 25%
/// for the bound of 4).
///
/// Against a loaded machine: the two timed blocks (one large parse, 16 small ones) last
/// about as long, so a preemption is as likely in either; they are interleaved, so that load
/// lasting through the measurement slows both alike; each keeps its fastest of 3 runs, which
/// absorbs a hiccup; and a shape is measured up to 3 times, passing on the first measurement
/// within its bound (a quadratic parser fails all 3; one measured past twice the bound is
/// not retried). About 1 s in a debug build.
#[test]
fn parse_time_per_unit_does_not_grow_with_input_size() {
    use std::time::{Duration, Instant};
    /// Parses `text` `times` times; keeps the time in `best` if it is the fastest yet.
    #[expect(
        clippy::disallowed_methods,
        reason = "measures the parser's real time; no runtime or clock to pass in here"
    )]
    fn timed(text: &str, times: usize, best: &mut Duration) -> bool {
        let start = Instant::now();
        let mut parsed = true;
        for _ in 0..times {
            parsed &= std::hint::black_box(parse(std::hint::black_box(text))).is_ok();
        }
        *best = (*best).min(start.elapsed());
        parsed
    }
    let mut failed = Vec::new();
    for (shape, n, parses, bound, make) in scaling_shapes() {
        let (small, large) = (make(n), make(n * GROWTH));
        let mut ratios = Vec::new();
        let mut passed = false;
        for _attempt in 0..3 {
            let (mut best_small, mut best_large) = (Duration::MAX, Duration::MAX);
            for _ in 0..3 {
                assert_eq!(
                    timed(&small, GROWTH, &mut best_small),
                    parses,
                    "{shape}, n={n}"
                );
                assert_eq!(
                    timed(&large, 1, &mut best_large),
                    parses,
                    "{shape}, {GROWTH}n"
                );
            }
            let ratio = best_large.as_secs_f64() / best_small.as_secs_f64();
            ratios.push(format!(
                "{ratio:.2} ({best_large:.1?} for {GROWTH}n={}, {best_small:.1?} for {GROWTH} x n)",
                n * GROWTH
            ));
            passed = ratio < bound;
            // Within the bound; or far past it, which no hiccup explains: no retry.
            if passed || ratio >= 2.0 * bound {
                break;
            }
        }
        eprintln!("{shape}: {}", ratios.join("; "));
        if !passed {
            failed.push((shape, bound, ratios));
        }
    }
    assert!(
        failed.is_empty(),
        "per-unit parse time grew past its bound from n to {GROWTH}n units: {failed:#?}"
    );
}

#[test]
fn parse_errors_as_json_in_the_doctors_shape() {
    let errors = parse("<Proxy \"balancer://x\">\nBalancerMember http://a loadfacter=2\nBalancerMember http://b retry=x\n</Proxy>\n")
        .expect_err("two mistakes");
    let json = errors.to_json();
    assert!(
        json.starts_with("[{\"severity\":\"error\",\"rule\":\"parse\",\"line\":2,\"column\":"),
        "{json}"
    );
    assert!(json.contains("\"line\":3,"), "{json}");
    assert!(
        json.contains("(did you mean \\\"loadfactor\\\"?)"),
        "{json}"
    );
    assert_eq!(json.matches("{\"severity\"").count(), errors.len());
    assert!(json.ends_with("}]"));
}

#[test]
fn a_misspelt_client_limit_is_suggested() {
    let e = one("KeepAliveTimout 5\n");
    assert_eq!(
        e.hint.as_deref(),
        Some("did you mean \"KeepAliveTimeout\"?")
    );
}
