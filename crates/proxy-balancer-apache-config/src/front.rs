//! The client-facing limits of the server: core's `Timeout`, `KeepAlive`,
//! `KeepAliveTimeout`, `MaxKeepAliveRequests`, `LimitRequestLine`, `LimitRequestFieldSize`,
//! `LimitRequestFields`, `LimitRequestBody`, and mod_reqtimeout's `RequestReadTimeout`,
//! read with Apache's syntax and valid ranges.

use std::fmt::Write as _;
use std::time::Duration;

use crate::ast::Span;
use crate::error::{ParseError, ParseErrorKind};
use crate::lexer::Token;

/// What a server allows its clients, as the configuration gives it ([`Config::front`]);
/// `None` where a directive is not given (the server's default, Apache's, applies).
///
/// Read in server context only: written inside a `<VirtualHost>`, `<Proxy>` or
/// `<Location>` block these directives are checked and listed in [`Config::skipped`].
///
/// [`Config::front`]: crate::Config::front
/// [`Config::skipped`]: crate::Config::skipped
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FrontLimits {
    /// `Timeout` (`TimeOut`): each read from and write to the client.
    pub timeout: Option<Duration>,
    /// `KeepAlive On|Off`.
    pub keep_alive: Option<bool>,
    /// `KeepAliveTimeout num[ms]`.
    pub keep_alive_timeout: Option<Duration>,
    /// `MaxKeepAliveRequests` (0: unlimited).
    pub max_keep_alive_requests: Option<u32>,
    /// `RequestReadTimeout header=…`.
    pub header_timeout: Option<ReadTimeoutStage>,
    /// `RequestReadTimeout body=…`.
    pub body_timeout: Option<ReadTimeoutStage>,
    /// `RequestReadTimeout handshake=N` (a fixed time, for HTTPS listeners; `handshake=0`,
    /// the default, leaves it `None`).
    pub handshake_timeout: Option<Duration>,
    /// `LimitRequestLine`, in bytes.
    pub limit_request_line: Option<u32>,
    /// `LimitRequestFieldSize`, in bytes.
    pub limit_request_field_size: Option<u32>,
    /// `LimitRequestFields` (0: unlimited).
    pub limit_request_fields: Option<u32>,
    /// `LimitRequestBody`, in bytes (0: unlimited).
    pub limit_request_body: Option<u64>,
}

/// One stage of `RequestReadTimeout`: `header=20-40,MinRate=500`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadTimeoutStage {
    /// The initial timeout in seconds (0: no limit, the stage is off).
    pub timeout: u32,
    /// The most the timeout may grow to with `min_rate`, in seconds.
    pub max_timeout: Option<u32>,
    /// Bytes per second that add one second to the timeout.
    pub min_rate: Option<u32>,
}

/// The directives read here, lower-case.
pub(crate) const DIRECTIVES: &[&str] = &[
    "Timeout",
    "KeepAlive",
    "KeepAliveTimeout",
    "MaxKeepAliveRequests",
    "RequestReadTimeout",
    "LimitRequestLine",
    "LimitRequestFieldSize",
    "LimitRequestFields",
    "LimitRequestBody",
];

/// Whether `lower` (a lower-case directive name) is read here.
pub(crate) fn is_front_directive(lower: &str) -> bool {
    DIRECTIVES.iter().any(|d| d.eq_ignore_ascii_case(lower))
}

impl FrontLimits {
    /// Sets what `other` gives (a later directive overrides an earlier one).
    pub(crate) fn merge(&mut self, other: &Self) {
        macro_rules! take {
            ($($field:ident),*) => {$(
                if other.$field.is_some() {
                    self.$field = other.$field;
                }
            )*};
        }
        take!(
            timeout,
            keep_alive,
            keep_alive_timeout,
            max_keep_alive_requests,
            header_timeout,
            body_timeout,
            handshake_timeout,
            limit_request_line,
            limit_request_field_size,
            limit_request_fields,
            limit_request_body
        );
    }
}

/// One directive, as the [`FrontLimits`] it sets.
type Setting = FrontLimits;

fn set(apply: impl FnOnce(&mut FrontLimits)) -> FrontLimits {
    let mut f = FrontLimits::default();
    apply(&mut f);
    f
}

/// An invalid value at `span` (shared by the directive readers of this crate).
pub(crate) fn invalid(span: Span, message: impl Into<String>) -> ParseError {
    ParseError::new(span, ParseErrorKind::InvalidValue, message.into())
}

/// The one argument of `directive`, or a syntax error (shared by the directive readers).
pub(crate) fn one<'a>(
    span: Span,
    directive: &str,
    args: &'a [Token],
) -> Result<&'a Token, ParseError> {
    match args {
        [one] => Ok(one),
        _ => Err(ParseError::new(
            span,
            ParseErrorKind::Syntax,
            format!("{directive} takes one argument"),
        )),
    }
}

/// Reads one of [`DIRECTIVES`] (`lower` is its lower-case name).
pub(crate) fn parse(span: Span, lower: &str, args: &[Token]) -> Result<Setting, ParseError> {
    match lower {
        "timeout" => {
            let v = one(span, "Timeout", args)?;
            match time_value(&v.text) {
                Some(d) if !d.is_zero() => Ok(set(|f| f.timeout = Some(d))),
                _ => Err(invalid(
                    v.span,
                    format!(
                        "invalid value \"{}\" for Timeout: must be whole seconds (or ms, mi, h with a suffix), at least 1 ms",
                        v.text
                    ),
                )),
            }
        }
        "keepalive" => {
            let v = one(span, "KeepAlive", args)?;
            let on = if v.text.eq_ignore_ascii_case("on") {
                true
            } else if v.text.eq_ignore_ascii_case("off") {
                false
            } else {
                return Err(invalid(
                    v.span,
                    format!(
                        "invalid value \"{}\" for KeepAlive: must be On or Off",
                        v.text
                    ),
                ));
            };
            Ok(set(|f| f.keep_alive = Some(on)))
        }
        "keepalivetimeout" => {
            let v = one(span, "KeepAliveTimeout", args)?;
            let d = time_value(&v.text).ok_or_else(|| {
                invalid(
                    v.span,
                    format!(
                        "invalid value \"{}\" for KeepAliveTimeout: must be whole seconds, or milliseconds with ms (5, 500ms)",
                        v.text
                    ),
                )
            })?;
            Ok(set(|f| f.keep_alive_timeout = Some(d)))
        }
        "maxkeepaliverequests" => {
            let n = count(span, "MaxKeepAliveRequests", args, "0 for unlimited")?;
            Ok(set(|f| f.max_keep_alive_requests = Some(n)))
        }
        "limitrequestline" => {
            let n = count(span, "LimitRequestLine", args, "bytes")?;
            Ok(set(|f| f.limit_request_line = Some(n)))
        }
        "limitrequestfieldsize" => {
            let n = count(span, "LimitRequestFieldSize", args, "bytes")?;
            Ok(set(|f| f.limit_request_field_size = Some(n)))
        }
        "limitrequestfields" => {
            let n = count(span, "LimitRequestFields", args, "0 for unlimited")?;
            Ok(set(|f| f.limit_request_fields = Some(n)))
        }
        "limitrequestbody" => {
            let v = one(span, "LimitRequestBody", args)?;
            // Apache reads an off_t: 0 (unlimited) to 2^63 - 1.
            match v.text.parse::<u64>() {
                Ok(n) if i64::try_from(n).is_ok() => {
                    Ok(set(|f| f.limit_request_body = Some(n)))
                }
                _ => Err(invalid(
                    v.span,
                    format!(
                        "invalid value \"{}\" for LimitRequestBody: must be a number of bytes, 0 for unlimited",
                        v.text
                    ),
                )),
            }
        }
        _ => request_read_timeout(span, args),
    }
}

/// A non-negative integer that fits Apache's `int`.
fn count(span: Span, directive: &str, args: &[Token], unit: &str) -> Result<u32, ParseError> {
    let v = one(span, directive, args)?;
    match v.text.parse::<u32>() {
        Ok(n) if i32::try_from(n).is_ok() => Ok(n),
        _ => Err(invalid(
            v.span,
            format!(
                "invalid value \"{}\" for {directive}: must be a non-negative integer ({unit}), at most {}",
                v.text,
                i32::MAX
            ),
        )),
    }
}

/// Apache's `ap_timeout_parameter_parse` with seconds as the default unit: a whole number
/// with an optional `ms`, `s`, `mi` or `h` suffix.
fn time_value(text: &str) -> Option<Duration> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let n: u64 = number.parse().ok()?;
    match unit.to_ascii_lowercase().as_str() {
        "" | "s" => Some(Duration::from_secs(n)),
        "ms" => Some(Duration::from_millis(n)),
        "mi" => Some(Duration::from_secs(n.checked_mul(60)?)),
        "h" => Some(Duration::from_secs(n.checked_mul(3600)?)),
        _ => None,
    }
}

/// `RequestReadTimeout [handshake=…] [header=…] [body=…]`, each
/// `timeout[-maxtimeout][,MinRate=rate]`, as mod_reqtimeout reads it.
fn request_read_timeout(span: Span, args: &[Token]) -> Result<Setting, ParseError> {
    if args.is_empty() {
        return Err(ParseError::new(
            span,
            ParseErrorKind::Syntax,
            "RequestReadTimeout takes one or more stage=timeout[-maxtimeout][,MinRate=rate]",
        ));
    }
    let mut header = None;
    let mut body = None;
    let mut handshake = None;
    for arg in args {
        let Some((stage, value)) = arg.text.split_once('=') else {
            return Err(invalid(
                arg.span,
                format!(
                    "invalid RequestReadTimeout parameter \"{}\": expected handshake=, header= or body=",
                    arg.text
                ),
            ));
        };
        let parsed = stage_value(value).map_err(|why| {
            invalid(
                arg.span,
                format!("invalid RequestReadTimeout value \"{}\": {why}", arg.text),
            )
        })?;
        match stage.to_ascii_lowercase().as_str() {
            "header" => header = Some(parsed),
            "body" => body = Some(parsed),
            "handshake" if parsed.timeout == 0 => {}
            "handshake" if parsed.max_timeout.is_some() || parsed.min_rate.is_some() => {
                return Err(invalid(
                    arg.span,
                    format!(
                        "RequestReadTimeout \"{}\" is not applied: the handshake's bytes are not counted here, so handshake= takes a fixed time (handshake=10)",
                        arg.text
                    ),
                ));
            }
            "handshake" => {
                handshake = Some(Duration::from_secs(u64::from(parsed.timeout)));
            }
            _ => {
                return Err(invalid(
                    arg.span,
                    format!(
                        "unknown RequestReadTimeout stage \"{stage}\": expected handshake, header or body"
                    ),
                ));
            }
        }
    }
    Ok(set(|f| {
        f.header_timeout = header;
        f.body_timeout = body;
        f.handshake_timeout = handshake;
    }))
}

/// `timeout[-maxtimeout][,MinRate=rate]`, with mod_reqtimeout's checks.
fn stage_value(value: &str) -> Result<ReadTimeoutStage, String> {
    let (times, rate) = match value.split_once(',') {
        Some((times, option)) => {
            let Some((key, rate)) = option.split_once('=') else {
                return Err(format!(
                    "expected MinRate=rate after the comma, found \"{option}\""
                ));
            };
            if !key.eq_ignore_ascii_case("minrate") {
                return Err(format!("unknown option \"{key}\", expected MinRate"));
            }
            match rate.parse::<u32>() {
                Ok(r) if r > 0 && i32::try_from(r).is_ok() => (times, Some(r)),
                _ => {
                    return Err(format!(
                        "MinRate \"{rate}\" must be a positive integer (bytes per second)"
                    ))
                }
            }
        }
        None => (value, None),
    };
    let seconds = |t: &str| {
        t.parse::<u32>()
            .ok()
            .filter(|n| i32::try_from(*n).is_ok())
            .ok_or_else(|| format!("timeout \"{t}\" must be whole seconds"))
    };
    let (timeout, max_timeout) = match times.split_once('-') {
        Some((initial, max)) => (seconds(initial)?, Some(seconds(max)?)),
        None => (seconds(times)?, None),
    };
    if let Some(max) = max_timeout {
        if max <= timeout {
            return Err("the maximum timeout must be larger than the initial timeout".to_owned());
        }
        if rate.is_none() {
            return Err("a timeout range needs MinRate".to_owned());
        }
    }
    Ok(ReadTimeoutStage {
        timeout,
        max_timeout,
        min_rate: rate,
    })
}

/// These directives as configuration text (for `Config`'s `Display`).
pub(crate) fn render(front: &FrontLimits, out: &mut String) {
    let time = |d: Duration| {
        if d.subsec_millis() == 0 {
            d.as_secs().to_string()
        } else {
            format!("{}ms", d.as_millis())
        }
    };
    if let Some(d) = front.timeout {
        let _ = writeln!(out, "Timeout {}", time(d));
    }
    if let Some(on) = front.keep_alive {
        let _ = writeln!(out, "KeepAlive {}", if on { "On" } else { "Off" });
    }
    if let Some(d) = front.keep_alive_timeout {
        let _ = writeln!(out, "KeepAliveTimeout {}", time(d));
    }
    if let Some(n) = front.max_keep_alive_requests {
        let _ = writeln!(out, "MaxKeepAliveRequests {n}");
    }
    let stage = |name: &str, s: &ReadTimeoutStage| {
        let mut text = format!("{name}={}", s.timeout);
        if let Some(max) = s.max_timeout {
            let _ = write!(text, "-{max}");
        }
        if let Some(rate) = s.min_rate {
            let _ = write!(text, ",MinRate={rate}");
        }
        text
    };
    let stages: Vec<String> = [
        ("header", &front.header_timeout),
        ("body", &front.body_timeout),
    ]
    .into_iter()
    .filter_map(|(name, s)| s.as_ref().map(|s| stage(name, s)))
    .collect();
    if !stages.is_empty() {
        let _ = writeln!(out, "RequestReadTimeout {}", stages.join(" "));
    }
    for (name, value) in [
        ("LimitRequestLine", front.limit_request_line),
        ("LimitRequestFieldSize", front.limit_request_field_size),
        ("LimitRequestFields", front.limit_request_fields),
    ] {
        if let Some(n) = value {
            let _ = writeln!(out, "{name} {n}");
        }
    }
    if let Some(n) = front.limit_request_body {
        let _ = writeln!(out, "LimitRequestBody {n}");
    }
}

#[cfg(test)]
mod tests {
    use crate::{parse as parse_config, ParseErrorKind};

    use super::*;

    fn front(text: &str) -> FrontLimits {
        parse_config(text).expect("valid").front
    }

    fn error(text: &str) -> String {
        let errors = parse_config(text).expect_err("invalid");
        errors.to_string()
    }

    #[test]
    fn apache_defaults_written_out_are_read() {
        let f = front(
            "Timeout 60\nKeepAlive On\nKeepAliveTimeout 5\nMaxKeepAliveRequests 100\n\
             RequestReadTimeout handshake=0 header=20-40,MinRate=500 body=20,MinRate=500\n\
             LimitRequestLine 8190\nLimitRequestFieldSize 8190\nLimitRequestFields 100\n\
             LimitRequestBody 1073741824\n",
        );
        assert_eq!(f.timeout, Some(Duration::from_secs(60)));
        assert_eq!(f.keep_alive, Some(true));
        assert_eq!(f.keep_alive_timeout, Some(Duration::from_secs(5)));
        assert_eq!(f.max_keep_alive_requests, Some(100));
        assert_eq!(
            f.header_timeout,
            Some(ReadTimeoutStage {
                timeout: 20,
                max_timeout: Some(40),
                min_rate: Some(500)
            })
        );
        assert_eq!(
            f.body_timeout,
            Some(ReadTimeoutStage {
                timeout: 20,
                max_timeout: None,
                min_rate: Some(500)
            })
        );
        assert_eq!(f.limit_request_line, Some(8190));
        assert_eq!(f.limit_request_field_size, Some(8190));
        assert_eq!(f.limit_request_fields, Some(100));
        assert_eq!(f.limit_request_body, Some(1 << 30));
    }

    #[test]
    fn time_values_take_apache_suffixes() {
        assert_eq!(
            front("KeepAliveTimeout 300ms").keep_alive_timeout,
            Some(Duration::from_millis(300))
        );
        assert_eq!(front("Timeout 2mi").timeout, Some(Duration::from_secs(120)));
        assert_eq!(
            front("KeepAliveTimeout 0").keep_alive_timeout,
            Some(Duration::ZERO)
        );
        assert!(
            error("Timeout 0").contains("at least 1 ms"),
            "{}",
            error("Timeout 0")
        );
        assert!(error("Timeout soon").contains("invalid value \"soon\" for Timeout"));
        assert!(error("KeepAliveTimeout 5x").contains("KeepAliveTimeout"));
        assert!(error("KeepAliveTimeout -1").contains("KeepAliveTimeout"));
        assert!(error("KeepAlive maybe").contains("must be On or Off"));
    }

    #[test]
    fn limits_are_non_negative_integers() {
        assert_eq!(front("LimitRequestFields 0").limit_request_fields, Some(0));
        assert_eq!(
            front("MaxKeepAliveRequests 0").max_keep_alive_requests,
            Some(0)
        );
        for line in [
            "LimitRequestLine -1",
            "LimitRequestFieldSize 8k",
            "LimitRequestFields 3000000000",
            "MaxKeepAliveRequests many",
            "LimitRequestBody -5",
            "LimitRequestBody 10000000000000000000",
        ] {
            let e = error(line);
            let directive = line.split(' ').next().unwrap();
            assert!(e.contains(directive), "{line}: {e}");
        }
        assert!(error("LimitRequestLine 1 2").contains("takes one argument"));
    }

    #[test]
    fn request_read_timeout_follows_mod_reqtimeout() {
        let f = front("RequestReadTimeout header=0 body=10");
        assert_eq!(f.header_timeout.unwrap().timeout, 0);
        assert_eq!(f.body_timeout.unwrap().min_rate, None);
        // A later line sets only the stages it names.
        let f = front("RequestReadTimeout header=5-10,minrate=100\nRequestReadTimeout body=7");
        assert_eq!(f.header_timeout.unwrap().max_timeout, Some(10));
        assert_eq!(f.body_timeout.unwrap().timeout, 7);
        // The handshake stage, for HTTPS listeners: a fixed time; 0 is the default.
        let f = front("RequestReadTimeout handshake=5 header=20-40,MinRate=500");
        assert_eq!(f.handshake_timeout, Some(Duration::from_secs(5)));
        assert_eq!(
            front("RequestReadTimeout handshake=0").handshake_timeout,
            None
        );
        for (line, why) in [
            ("RequestReadTimeout header=20-40", "needs MinRate"),
            (
                "RequestReadTimeout header=40-20,MinRate=1",
                "larger than the initial",
            ),
            ("RequestReadTimeout header=20,MinRate=0", "positive integer"),
            ("RequestReadTimeout header=20,Rate=5", "expected MinRate"),
            ("RequestReadTimeout header=x", "whole seconds"),
            (
                "RequestReadTimeout trailer=5",
                "unknown RequestReadTimeout stage",
            ),
            (
                "RequestReadTimeout 0",
                "expected handshake=, header= or body=",
            ),
            (
                "RequestReadTimeout handshake=5-10,MinRate=100",
                "handshake= takes a fixed time",
            ),
            ("RequestReadTimeout", "takes one or more"),
        ] {
            let e = error(line);
            assert!(e.contains(why), "{line}: {e}");
        }
        // handshake=0 is the default, and what this server does.
        assert_eq!(
            front("RequestReadTimeout handshake=0"),
            FrontLimits::default()
        );
    }

    #[test]
    fn inside_a_virtual_host_they_are_listed_as_skipped() {
        let config =
            parse_config("<VirtualHost *:80>\nKeepAliveTimeout 1\n</VirtualHost>\n").unwrap();
        assert_eq!(config.front, FrontLimits::default());
        assert_eq!(
            config.skipped[config.skipped.len() - 1].directive,
            "KeepAliveTimeout"
        );
    }

    #[test]
    fn inside_a_block_the_doctor_says_they_have_no_effect() {
        let config = parse_config(
            "KeepAliveTimeout 3\n<VirtualHost *:80>\nLimitRequestBody 10\n</VirtualHost>\n",
        )
        .unwrap();
        let findings = crate::doctor::check(&config);
        let no_effect: Vec<_> = findings.iter().filter(|f| f.rule == "no-effect").collect();
        assert_eq!(no_effect.len(), 1, "{findings:?}");
        assert_eq!(no_effect[0].span.line, 3);
        assert!(no_effect[0].what.starts_with("LimitRequestBody inside"));
    }

    #[test]
    fn rendered_and_read_again_they_are_the_same() {
        let text = "Timeout 30\nKeepAlive Off\nKeepAliveTimeout 1500ms\nMaxKeepAliveRequests 7\n\
                    RequestReadTimeout header=5-10,MinRate=100 body=0\nLimitRequestLine 4000\n\
                    LimitRequestFieldSize 100\nLimitRequestFields 0\nLimitRequestBody 42\n";
        let config = parse_config(text).unwrap();
        let again = parse_config(&config.to_string()).unwrap();
        assert_eq!(again.front, config.front);
        assert_eq!(
            again.front.keep_alive_timeout,
            Some(Duration::from_millis(1500))
        );
    }

    #[test]
    fn errors_are_invalid_values_with_a_line() {
        let errors = parse_config("\n\nKeepAliveTimeout never").unwrap_err();
        let first = errors.iter().next().unwrap();
        assert_eq!(first.kind, ParseErrorKind::InvalidValue);
        assert_eq!(first.span.line, 3);
    }
}
