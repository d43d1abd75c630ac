//! `ErrorLog`, `CustomLog`, `TransferLog`, `LogFormat` and `LogLevel`: read in server
//! context, resolved by `Config::logs`, refused loudly where the proxy cannot follow them.

use proxy_balancer_apache_config::doctor::check;
use proxy_balancer_apache_config::{
    parse, LogConfigError, LogDestination, LogLevel, ParseErrorKind,
};

#[test]
fn server_level_logging_is_read_and_resolved() {
    let config = parse(
        r#"
ErrorLog "/var/log/proxy/error.log"
LogFormat "%h %l %u %t \"%r\" %>s %b" common
LogFormat "%a %>s %D" timing
LogFormat "%h %>s"
CustomLog /var/log/proxy/access.log combined
CustomLog /var/log/proxy/timing.log timing
CustomLog /var/log/proxy/inline.log "%h \"%r\" %>s"
TransferLog /var/log/proxy/transfer.log
LogLevel info
LogLevel proxy:debug mod_proxy_balancer.c:trace2 proxy:warn
"#,
    )
    .unwrap();
    // Applied: no longer skipped.
    assert!(config.skipped.is_empty(), "{:?}", config.skipped);
    let logs = config.logs().unwrap();
    assert_eq!(logs.error_log.as_deref(), Some("/var/log/proxy/error.log"));
    let access: Vec<(&str, &str)> = logs
        .access_logs
        .iter()
        .map(|a| (a.path.as_str(), a.format.as_str()))
        .collect();
    assert_eq!(
        access,
        [
            (
                "/var/log/proxy/access.log",
                r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i""#
            ),
            ("/var/log/proxy/timing.log", "%a %>s %D"),
            ("/var/log/proxy/inline.log", r#"%h "%r" %>s"#),
            // TransferLog: the last LogFormat without a nickname.
            ("/var/log/proxy/transfer.log", "%h %>s"),
        ]
    );
    assert_eq!(logs.access_logs[1].span.line, 7);
    assert_eq!(logs.level, Some(LogLevel::Info));
    // The last level for each module, names normalized.
    assert_eq!(
        logs.module_levels,
        [
            ("proxy_balancer".to_owned(), LogLevel::Trace(2)),
            ("proxy".to_owned(), LogLevel::Warn)
        ]
    );
    let filter = logs.tracing_filter().unwrap();
    assert!(
        filter.starts_with("info,proxy_balancer::balancer=trace,"),
        "{filter}"
    );
    assert!(filter.contains(",proxy_balancer::client=warn"), "{filter}");
    assert!(check(&config).is_empty(), "{:?}", check(&config));
}

#[test]
fn without_logging_directives_the_defaults_apply() {
    let logs = parse("ServerName proxy.example\n").unwrap().logs().unwrap();
    assert_eq!(logs.error_log, None);
    assert!(logs.access_logs.is_empty());
    assert_eq!(logs.tracing_filter(), None);
    // Modules only: Apache's global default, warn.
    let logs = parse("LogLevel proxy_hcheck:debug\n")
        .unwrap()
        .logs()
        .unwrap();
    assert_eq!(
        logs.tracing_filter().as_deref(),
        Some("warn,proxy_balancer::health_probe=debug")
    );
}

#[test]
fn what_the_proxy_cannot_do_is_refused_and_reported() {
    let config = parse(
        r#"
ErrorLog syslog:local7
CustomLog "|/usr/bin/rotatelogs /var/log/access.%Y 86400" combined
CustomLog /var/log/a.log combined env=!dontlog
CustomLog /var/log/b.log combnied
TransferLog ${APACHE_LOG_DIR}/access.log
"#,
    )
    .unwrap();
    let err = config.logs().unwrap_err();
    assert!(matches!(err, LogConfigError::Syslog { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "line 2: ErrorLog syslog:local7 is not supported: give a file (stderr is the default; journald collects it under systemd)"
    );
    assert_eq!(
        config.log_directives.custom_logs[0].destination,
        LogDestination::Pipe("/usr/bin/rotatelogs /var/log/access.%Y 86400".to_owned())
    );
    let findings = check(&config);
    let refused: Vec<(u32, &str)> = findings
        .iter()
        .filter(|f| f.rule == "not-applied")
        .map(|f| (f.span.line, f.what.as_str()))
        .collect();
    assert_eq!(refused.len(), 5, "{refused:?}");
    assert_eq!(
        refused[4].1,
        "TransferLog ${APACHE_LOG_DIR}/access.log: variables (${…}) are not expanded here: write the path out"
    );
    assert_eq!(refused[0].0, 2);
    assert!(refused[1].1.contains("pipe"), "{}", refused[1].1);
    assert!(refused[2].1.contains("env=!dontlog"), "{}", refused[2].1);
    assert!(
        refused[3]
            .1
            .contains("\"combnied\" is not a LogFormat nickname"),
        "{}",
        refused[3].1
    );
}

#[test]
fn inside_a_virtual_host_they_are_checked_and_reported_not_applied() {
    let config = parse(
        r#"
<VirtualHost *:80>
    ErrorLog /var/log/vhost-error.log
    CustomLog /var/log/vhost-access.log combined
    LogLevel debug ssl:warn
</VirtualHost>
ErrorLogFormat "[%t] %M"
LogLevel warn ssl:info
"#,
    )
    .unwrap();
    let logs = config.logs().unwrap();
    assert_eq!(logs.error_log, None);
    assert!(logs.access_logs.is_empty());
    assert_eq!(logs.level, Some(LogLevel::Warn));
    let skipped: Vec<u32> = config.skipped.iter().map(|s| s.span.line).collect();
    assert_eq!(skipped, [3, 4, 5, 7]);
    let no_effect: Vec<u32> = check(&config)
        .iter()
        .filter(|f| f.rule == "no-effect")
        .map(|f| f.span.line)
        .collect();
    // The three block lines, ErrorLogFormat, and ssl:info.
    assert_eq!(no_effect, [3, 4, 5, 7, 8]);
    // A bad level is an error even in a block, as in Apache.
    assert!(parse("<VirtualHost *:80>\nLogLevel loud\n</VirtualHost>\n").is_err());
}

#[test]
fn mistakes_are_parse_errors() {
    for (text, kind, message) in [
        (
            "LogLevel verbose\n",
            ParseErrorKind::InvalidValue,
            "invalid value \"verbose\" for LogLevel",
        ),
        (
            "LogLevel proxy:trace9\n",
            ParseErrorKind::InvalidValue,
            "invalid value \"proxy:trace9\"",
        ),
        (
            "LogLevel :debug\n",
            ParseErrorKind::InvalidValue,
            "a module name is missing",
        ),
        (
            "LogLevel\n",
            ParseErrorKind::Syntax,
            "LogLevel takes a level",
        ),
        (
            "CustomLog /var/log/a.log\n",
            ParseErrorKind::Syntax,
            "CustomLog takes a file name",
        ),
        (
            "ErrorLog a b\n",
            ParseErrorKind::Syntax,
            "ErrorLog takes one argument",
        ),
        (
            "LogFormat\n",
            ParseErrorKind::Syntax,
            "LogFormat takes a format",
        ),
    ] {
        let errors = parse(text).unwrap_err();
        let e = &errors.errors()[0];
        assert_eq!(e.kind, kind, "{text}");
        assert!(e.message.contains(message), "{text}: {}", e.message);
    }
    // A near miss of a logging directive gets a hint.
    let errors = parse("CustomLg /var/log/a.log combined\n").unwrap_err();
    assert_eq!(
        errors.errors()[0].hint.as_deref(),
        Some("did you mean \"CustomLog\"?")
    );
}

#[test]
fn rendered_back_they_read_the_same() {
    let config = parse(
        r#"
ErrorLog "/var/log/my proxy/error.log"
LogLevel info proxy:trace3
LogFormat "%h \"%r\" %>s %{User-Agent}i" mine
LogFormat "%h %>s"
CustomLog /var/log/access.log mine
CustomLog "|/bin/logger" common env=x
TransferLog /var/log/transfer.log
"#,
    )
    .unwrap();
    let again = parse(&config.render()).unwrap();
    assert_eq!(again.without_spans(), config.without_spans());
}
