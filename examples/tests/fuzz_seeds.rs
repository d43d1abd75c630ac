//! The fuzz targets' seeds and past crashes, run on stable as ordinary tests: each target's
//! check (`fuzz/src/lib.rs`, compiled here as a module) over `fuzz/seeds/<target>/`,
//! `fuzz/regressions/<target>/` and the inputs generated in code.

#[path = "../../fuzz/src/lib.rs"]
#[allow(unreachable_pub, dead_code)]
mod fuzz_checks;

use std::path::Path;

fn run(target: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    match fuzz_checks::run_seeds(&root, target) {
        Ok(n) => assert!(n > 0, "{target}: no seeds found"),
        Err(failures) => panic!(
            "{} failing inputs:\n{}",
            failures.len(),
            failures.join("\n")
        ),
    }
}

#[test]
fn apache_config_seeds() {
    run("apache_config");
}

#[test]
fn hcexpr_seeds() {
    run("hcexpr");
}

#[test]
fn manager_query_seeds() {
    run("manager_query");
}

#[test]
fn member_params_seeds() {
    run("member_params");
}

#[test]
fn status_flags_seeds() {
    run("status_flags");
}

#[test]
fn sticky_route_seeds() {
    run("sticky_route");
}

#[test]
fn every_target_has_a_test_here() {
    let here = include_str!("fuzz_seeds.rs");
    for target in fuzz_checks::TARGETS {
        assert!(here.contains(&format!("run(\"{target}\")")), "{target}");
    }
    let targets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/fuzz_targets");
    let mut files: Vec<String> = std::fs::read_dir(targets)
        .expect("fuzz/fuzz_targets")
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".rs")
                .map(str::to_owned)
        })
        .collect();
    files.sort();
    assert_eq!(
        files,
        fuzz_checks::TARGETS,
        "fuzz_targets/ and TARGETS differ"
    );
}
