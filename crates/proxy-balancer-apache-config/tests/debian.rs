//! A Debian-style configuration (`tests/corpus/debian/`: Debian's `apache2.conf`, `envvars`,
//! `ports.conf`, `mods-enabled/`, `conf-enabled/`, `sites-enabled/` with the default site and
//! a balancer site) reads as Apache 2.4 reads it: `Include`/`IncludeOptional` with wildcards
//! relative to `ServerRoot`, `Define` and `${VAR}` from the environment; and the same
//! verdict as `apache2 -t` (loads, or is refused for the same reason).
//!
//! Apache's verdicts, from `apache2 -t -d tests/corpus/debian -f FILE` (Apache 2.4.71, the
//! `envvars` exported), are recorded below; `apache2_gives_the_recorded_verdicts` runs it
//! again where `apache2` is installed (and fails without it when
//! `PROXY_BALANCER_REQUIRE_TEST_DEPS=1`).

use std::path::{Path, PathBuf};
use std::process::Command;

use proxy_balancer_apache_config::{
    parse_file, parse_file_with, FileOptions, ParseErrorKind, ProxyTarget,
};

const REQUIRE_DEPS: &str = "PROXY_BALANCER_REQUIRE_TEST_DEPS";

/// `apache2 -t` on `apache2.conf`: exit 0, `Syntax OK`.
const APACHE_OK: &str = "Syntax OK";
/// `apache2 -t` on `broken-include.conf`: exit 1, the reason after the file and line.
const APACHE_MISSING_INCLUDE: (&str, &str) = (
    "Syntax error on line 3 of",
    "broken-include.conf: Could not open configuration file",
);
/// `apache2 -t` on `broken-typo.conf`: exit 1.
const APACHE_TYPO: (&str, &str) = (
    "Syntax error on line 4 of",
    "Invalid command 'BalancerMembr', perhaps misspelled",
);

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/debian")
}

/// The `export NAME=value` lines of the fixture's `envvars`.
fn envvars() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(fixture().join("envvars")).expect("envvars is readable");
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn options() -> FileOptions {
    FileOptions::new().environment(envvars())
}

#[test]
fn the_debian_configuration_loads_as_apache_says() {
    let config = parse_file_with(fixture().join("apache2.conf"), &options())
        .unwrap_or_else(|e| panic!("Apache says {APACHE_OK:?}; here:\n{e}"));
    let names: Vec<String> = config
        .files
        .iter()
        .map(|f| f.strip_prefix(fixture()).unwrap_or(f).display().to_string())
        .collect();
    // The main file, then each include in Apache's order: sorted within a wildcard.
    assert_eq!(names[0], "apache2.conf");
    assert_eq!(names[1], "mods-enabled/alias.load");
    let position = |n: &str| names.iter().position(|x| x == n);
    assert!(position("mods-enabled/proxy_balancer.load") < position("mods-enabled/alias.conf"));
    assert!(position("ports.conf") < position("conf-enabled/charset.conf"));
    assert!(
        position("sites-enabled/000-default.conf") < position("sites-enabled/010-balancer.conf")
    );
    assert_eq!(
        names.last().map(String::as_str),
        Some("sites-enabled/010-balancer.conf")
    );
    assert_eq!(config.undefined_variables, []);

    // The balancer site: Define'd ${APP_PORT}, a continuation line, spans in its file.
    let app = &config.balancers[0];
    assert_eq!(app.name, "balancer://app");
    let urls: Vec<&str> = app.members.iter().map(|m| m.url.as_str()).collect();
    assert_eq!(urls, ["http://10.0.0.11:8080", "http://10.0.0.12:8080"]);
    let site = config.file_of(app.members[1].span).expect("a file");
    assert!(site.ends_with("sites-enabled/010-balancer.conf"));
    assert_eq!(
        (app.members[1].span.line, app.members[1].span.column),
        (14, 3)
    );
    assert!(config.proxy_passes.iter().any(|p| matches!(
        &p.target,
        ProxyTarget::Balancer { name, .. } if name == "balancer://app"
    )));
    // ${APACHE_LOG_DIR} from envvars.
    let logs = format!("{:?}", config.log_directives);
    assert!(logs.contains("/tmp/error.log"), "{logs}");
    assert!(config.balancers().is_ok());
}

#[test]
fn a_missing_include_is_refused_as_apache_refuses_it() {
    let err = parse_file_with(fixture().join("broken-include.conf"), &options()).unwrap_err();
    assert_eq!(err.len(), 1, "{err}");
    let e = &err.errors()[0];
    assert_eq!(e.kind, ParseErrorKind::Include);
    assert_eq!((e.span.line, e.span.column), (3, 9));
    let text = e.to_string();
    assert!(
        text.ends_with(&format!(
            "broken-include.conf:3:9: could not open configuration file {}: No such file or directory (os error 2)",
            fixture().join("conf-local/override.conf").display()
        )),
        "{text}"
    );
    assert!(APACHE_MISSING_INCLUDE
        .1
        .contains("Could not open configuration file"));
}

#[test]
fn a_typo_is_refused_as_apache_refuses_it() {
    let err = parse_file_with(fixture().join("broken-typo.conf"), &options()).unwrap_err();
    assert_eq!(err.len(), 1, "{err}");
    let e = &err.errors()[0];
    assert_eq!(e.kind, ParseErrorKind::UnknownDirective);
    assert_eq!((e.span.line, e.span.column), (4, 2));
    assert!(e.path().is_some_and(|p| p.ends_with("broken-typo.conf")));
    assert!(e.to_string().contains("BalancerMembr"), "{e}");
    assert!(APACHE_TYPO.1.contains("'BalancerMembr'"));
}

#[test]
fn without_envvars_the_variables_stay_as_written_and_are_listed() {
    // As Apache started without apache2ctl: AH00111 "Config variable ${…} is not defined".
    let config = parse_file_with(
        fixture().join("apache2.conf"),
        &FileOptions::new().environment(Vec::<(String, String)>::new()),
    )
    .expect("undefined variables are warnings, as in Apache");
    let names: Vec<&str> = config
        .undefined_variables
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert!(names.contains(&"APACHE_RUN_DIR"), "{names:?}");
    assert!(names.contains(&"APACHE_LOG_DIR"), "{names:?}");
    let (_, span) = &config.undefined_variables[0];
    assert_eq!(
        config.files[span.file as usize],
        fixture().join("apache2.conf")
    );
}

#[test]
fn parse_file_reads_the_default_server_root() {
    // ServerRoot defaults to the main file's directory: the includes are found.
    let config = parse_file(fixture().join("apache2.conf")).expect("it loads");
    assert!(config.files.len() > 20);
}

/// Runs `apache2 -t` on each fixture file and checks the recorded verdicts. SKIPPED
/// (passes, with a line on stderr) without `apache2`, unless
/// `PROXY_BALANCER_REQUIRE_TEST_DEPS=1`: then it fails.
#[test]
fn apache2_gives_the_recorded_verdicts() {
    let required = match std::env::var(REQUIRE_DEPS).as_deref() {
        Ok("1") => true,
        Ok("0") | Err(std::env::VarError::NotPresent) => false,
        other => panic!("{REQUIRE_DEPS} must be 0 or 1, not {other:?}"),
    };
    let apache = ["/usr/sbin/apache2", "/usr/local/sbin/apache2"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    let Some(apache) = apache else {
        assert!(
            !required,
            "{REQUIRE_DEPS}=1 and apache2 is not installed (apt-get install apache2)"
        );
        eprintln!("SKIPPED: apache2 is not installed; the recorded verdicts were not re-checked");
        return;
    };
    let run = |file: &str| {
        let out = Command::new(&apache)
            .arg("-t")
            .arg("-d")
            .arg(fixture())
            .arg("-f")
            .arg(file)
            .envs(envvars())
            .output()
            .expect("apache2 runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, text) = run("apache2.conf");
    assert!(ok && text.contains(APACHE_OK), "{text}");
    for (file, (place, reason)) in [
        ("broken-include.conf", APACHE_MISSING_INCLUDE),
        ("broken-typo.conf", APACHE_TYPO),
    ] {
        let (ok, text) = run(file);
        assert!(!ok, "{file}: {text}");
        assert!(
            text.contains(place) && text.contains(reason),
            "{file}: {text}"
        );
    }
}
