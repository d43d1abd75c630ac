//! `Include`/`IncludeOptional`, `ServerRoot`, `Define`/`UnDefine` and `${VAR}` in
//! [`parse_file`], each as Apache 2.4.71 behaves (checked with `apache2 -t` on loopback-free
//! configurations: the messages quoted are Apache's).

use std::path::{Path, PathBuf};

use proxy_balancer_apache_config::{
    parse, parse_file, parse_file_with, FileOptions, ParseErrorKind,
};

/// A fresh directory with these files (`path`, `text`).
fn tree(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pb-include-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write");
    }
    dir
}

fn member(url: &str) -> String {
    format!("<Proxy balancer://b>\nBalancerMember {url}\n</Proxy>\n")
}

fn member_urls(config: &proxy_balancer_apache_config::Config) -> Vec<String> {
    config
        .balancers
        .iter()
        .flat_map(|b| b.members.iter().map(|m| m.url.clone()))
        .collect()
}

fn file_name(config: &proxy_balancer_apache_config::Config, file: u32) -> String {
    config.files[file as usize]
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[test]
fn wildcards_in_the_last_and_in_directory_components_sorted() {
    let dir = tree(
        "glob",
        &[
            (
                "main.conf",
                "Include sites/*/*.conf\nInclude extra/b?.conf\n",
            ),
            ("sites/b/z.conf", &member("http://b-z")),
            ("sites/a/y.conf", &member("http://a-y")),
            ("sites/a/x.conf", &member("http://a-x")),
            ("sites/a/.hidden.conf", "Bogus line\n"),
            ("sites/a/notes.txt", "Bogus line\n"),
            (
                "sites/c.conf",
                "Bogus: a file where a directory is matched\n",
            ),
            ("extra/b1.conf", &member("http://e-1")),
            ("extra/b10.conf", "Bogus: two characters\n"),
        ],
    );
    let config = parse_file(dir.join("main.conf")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        member_urls(&config),
        ["http://a-x", "http://a-y", "http://b-z", "http://e-1"]
    );
    let m = &config.balancers[0].members[2];
    assert_eq!(file_name(&config, m.span.file), "z.conf");
    assert_eq!((m.span.line, m.span.column), (2, 1));
}

#[test]
fn a_directory_includes_every_file_under_it_sorted_hidden_ones_too() {
    let dir = tree(
        "dir",
        &[
            ("main.conf", "Include conf.d\n"),
            ("conf.d/b.conf", &member("http://b")),
            ("conf.d/a/inner.conf", &member("http://a-inner")),
            ("conf.d/.c", &member("http://hidden")),
        ],
    );
    let config = parse_file(dir.join("main.conf")).unwrap_or_else(|e| panic!("{e}"));
    // Apache: `.c` < `a` < `b.conf` (strcmp), and directories are read recursively.
    assert_eq!(
        member_urls(&config),
        ["http://hidden", "http://a-inner", "http://b"]
    );
}

#[test]
fn include_errors_name_the_file_line_and_column() {
    let dir = tree(
        "missing",
        &[
            ("main.conf", "ServerName x\n  Include sub/part.conf\n"),
            (
                "sub/part.conf",
                "Include nothing/*.conf\nInclude sub/*.none\n",
            ),
        ],
    );
    let err = parse_file(dir.join("main.conf")).unwrap_err();
    let texts: Vec<String> = err.iter().map(ToString::to_string).collect();
    let part = dir.join("sub/part.conf");
    // Apache: "Include/IncludeOptional: Could not open directory …/nothing: No such file or
    // directory" (it stops there; here every mistake is reported, as everywhere in the crate).
    assert_eq!(err.len(), 2, "{err}");
    assert_eq!(err.errors()[0].kind, ParseErrorKind::Include);
    assert_eq!(
        texts[0],
        format!(
            "{}:1:9: could not open directory nothing: No such file or directory (os error 2)",
            part.display()
        )
    );

    std::fs::write(&part, "Include sub/*.none\n").expect("write");
    let err = parse_file(dir.join("main.conf")).unwrap_err();
    // Apache: "No matches for the wildcard '*.none' in '…/sub', failing".
    assert_eq!(
        err.to_string(),
        format!(
            "{}:1:9: no matches for the wildcard '*.none' in 'sub', failing",
            part.display()
        )
    );

    std::fs::write(dir.join("main.conf"), "Include gone.conf\n").expect("write");
    let err = parse_file(dir.join("main.conf")).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "{}:1:9: could not open configuration file {}",
            dir.join("main.conf").display(),
            dir.join("gone.conf").display()
        )),
        "{err}"
    );

    let err = parse_file(dir.join("absent.conf")).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "{}: could not open",
            dir.join("absent.conf").display()
        )),
        "{err}"
    );
}

#[test]
fn include_optional_skips_what_is_missing() {
    let dir = tree(
        "optional",
        &[(
            "main.conf",
            "IncludeOptional gone.conf\nIncludeOptional nodir/*.conf\nIncludeOptional conf/*.none\n\
             IncludeOptional conf/*/*.conf\n",
        ), ("conf/keep", "")],
    );
    let config = parse_file(dir.join("main.conf")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.files.len(), 1);
}

#[test]
fn cycles_and_depth_are_errors() {
    let dir = tree(
        "cycle",
        &[
            ("main.conf", "Include a.conf\n"),
            ("a.conf", "ServerName a\nInclude b.conf\n"),
            ("b.conf", "Include a.conf\n"),
        ],
    );
    let err = parse_file(dir.join("main.conf")).unwrap_err();
    assert_eq!(err.len(), 1, "{err}");
    let e = &err.errors()[0];
    assert_eq!(e.kind, ParseErrorKind::Include);
    assert!(e.path().is_some_and(|p| p.ends_with("b.conf")));
    assert!(e.message.contains("includes itself"), "{e}");

    // 129 files, each including the next: Apache's limit is 128 levels.
    let mut files: Vec<(String, String)> = (0..130)
        .map(|i| (format!("d{i}.conf"), format!("Include d{}.conf\n", i + 1)))
        .collect();
    files.push(("d130.conf".to_owned(), String::new()));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let dir = tree("depth", &refs);
    let err = parse_file(dir.join("d0.conf")).unwrap_err();
    assert!(
        err.to_string().contains("maximum include depth of 128"),
        "{err}"
    );
}

#[test]
fn server_root_and_options() {
    let dir = tree(
        "root",
        &[
            ("etc/main.conf", "ServerRoot ROOT\nInclude sites/one.conf\n"),
            ("sites/one.conf", &member("http://${HOST}:${PORT}")),
        ],
    );
    let main = dir.join("etc/main.conf");
    let text = std::fs::read_to_string(&main)
        .expect("read")
        .replace("ROOT", &dir.display().to_string());
    std::fs::write(&main, text).expect("write");
    let options = FileOptions::new()
        .define("PORT", Some("81"))
        .environment([("HOST", "h"), ("PORT", "99")]);
    let config = parse_file_with(&main, &options).unwrap_or_else(|e| panic!("{e}"));
    // A Define'd value wins over the environment, as in Apache.
    assert_eq!(member_urls(&config), ["http://h:81"]);

    // Without the ServerRoot line, relative paths start from the given ServerRoot.
    std::fs::write(&main, "Include sites/one.conf\n").expect("write");
    let config = parse_file_with(&main, &options.clone().server_root(&dir)).expect("loads");
    assert_eq!(member_urls(&config), ["http://h:81"]);
    // …and by default from the main file's directory (etc/), where sites/ is not.
    assert!(parse_file_with(&main, &options).is_err());

    std::fs::write(&main, "ServerRoot /nonexistent/pb\n").expect("write");
    let err = parse_file(&main).unwrap_err();
    assert!(
        err.to_string()
            .contains("ServerRoot must be a valid directory"),
        "{err}"
    );
}

#[test]
fn define_undefine_and_variables_in_place() {
    let dir = tree(
        "define",
        &[(
            "main.conf",
            "Define P 80\nDefine FLAG\n<Proxy balancer://b>\n  BalancerMember http://a:${P} ro=${NOPE}\n\
             UnDefine P\n  BalancerMember http://b:${P}\n</Proxy>\nDefine a:b 1\n",
        )],
    );
    let err = parse_file_with(
        dir.join("main.conf"),
        &FileOptions::new().environment([("X", "1")]),
    )
    .unwrap_err();
    let texts: Vec<String> = err.iter().map(|e| e.message.clone()).collect();
    // `Define a:b` is refused ("Variable name must not contain ':'"); `ro=${NOPE}` stays as
    // written and is then an unknown parameter at its own column; `http://b:${P}` after
    // UnDefine is left as written (not a valid port).
    assert!(
        texts.iter().any(|t| t.contains("must not contain ':'")),
        "{texts:?}"
    );
    let ro = err
        .iter()
        .find(|e| e.kind == ParseErrorKind::UnknownParameter)
        .expect("ro= is unknown");
    assert_eq!((ro.span.line, ro.span.column), (4, 32));

    // A value in the middle of a line: the words after it keep their columns in the text.
    std::fs::write(
        dir.join("main.conf"),
        "Define P 80\n<Proxy balancer://b>\n  BalancerMember http://a:${P} loadfactr=2\n</Proxy>\n",
    )
    .expect("write");
    let err = parse_file(dir.join("main.conf")).unwrap_err();
    assert_eq!(
        (err.errors()[0].span.line, err.errors()[0].span.column),
        (3, 32)
    );
}

#[test]
fn parse_of_a_text_is_unchanged() {
    // No file: `Include` is listed as skipped and the error display has no path.
    let config = parse("Include other.conf\n").expect("parses");
    assert_eq!(config.skipped[0].directive, "Include");
    assert!(config.files.is_empty());
    let err =
        parse("<Proxy balancer://b>\nBalancerMember http://a loadfactr=2\n</Proxy>\n").unwrap_err();
    assert!(err.to_string().starts_with("line 2, column 25: "), "{err}");
    assert!(err.errors()[0].path().is_none());
    assert!(!err.to_json().contains("\"file\""));
}

#[test]
fn json_errors_name_their_file() {
    let dir = tree("json", &[("main.conf", "Include gone.conf\n")]);
    let err = parse_file(dir.join("main.conf")).unwrap_err();
    let json = err.to_json();
    assert!(json.starts_with("[{\"file\":\""), "{json}");
    assert!(
        json.contains("main.conf\",\"severity\":\"error\""),
        "{json}"
    );
    let _ = Path::new(&dir);
}
