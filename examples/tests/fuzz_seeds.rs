//! The fuzz targets' seeds and past crashes, run on stable as ordinary tests: each target's
//! check (`fuzz/src/lib.rs`, compiled here as a module) over `fuzz/seeds/<target>/`,
//! `fuzz/regressions/<target>/` and the inputs generated in code.
//!
//! Every target (each file in `fuzz/fuzz_targets/`, each `[[bin]]` of `fuzz/Cargo.toml`) must
//! have a non-empty seeds directory. A target's regressions directory appears with its first
//! crash; until then it is absent, and every directory
//! under `fuzz/regressions/` must name a target so that none is silently never replayed.

#[path = "../../fuzz/src/lib.rs"]
#[allow(unreachable_pub, dead_code)]
mod fuzz_checks;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

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
fn front_door_seeds() {
    run("front_door");
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
    let mut files: Vec<String> = std::fs::read_dir(fuzz_dir().join("fuzz_targets"))
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

/// The `[[bin]]` targets of `fuzz/Cargo.toml`, as (name, path).
fn cargo_bins() -> Vec<(String, String)> {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    let mut bins = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
            if in_bin {
                bins.push((String::new(), String::new()));
            }
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"').to_owned();
        match (in_bin, key.trim(), bins.last_mut()) {
            (true, "name", Some(bin)) => bin.0 = value,
            (true, "path", Some(bin)) => bin.1 = value,
            _ => {}
        }
    }
    bins
}

/// Every fuzz target has seeds: deleting or emptying `fuzz/seeds/<target>/` fails here (and in
/// that target's test above), and a target added to `fuzz_targets/` or `Cargo.toml` alone
/// fails too.
#[test]
fn every_target_has_non_empty_seeds() {
    let mut bins = cargo_bins();
    bins.sort();
    assert_eq!(
        bins.iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>(),
        fuzz_checks::TARGETS,
        "fuzz/Cargo.toml's [[bin]] names and TARGETS differ"
    );
    for (name, path) in &bins {
        assert_eq!(
            path,
            &format!("fuzz_targets/{name}.rs"),
            "{name}'s [[bin]] path"
        );
        assert!(fuzz_dir().join(path).is_file(), "{path}");
    }
    for target in fuzz_checks::TARGETS {
        let dir = fuzz_dir().join("seeds").join(target);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{target} has no seeds directory {}: {e}", dir.display()));
        let with_content = entries
            .flatten()
            .filter(|e| e.metadata().is_ok_and(|m| m.is_file() && m.len() > 0))
            .count();
        assert!(
            with_content > 0,
            "{}: no non-empty seed file",
            dir.display()
        );
    }
}

/// `fuzz/regressions/` holds one directory per target that has crashed, named after it (a
/// misnamed directory would never be replayed); each is replayed by that target's test above.
#[test]
fn regressions_are_filed_under_a_target() {
    let Ok(entries) = std::fs::read_dir(fuzz_dir().join("regressions")) else {
        return; // no crash found yet
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            entry.path().is_dir() && fuzz_checks::TARGETS.contains(&name.as_str()),
            "fuzz/regressions/{name} is not a target's directory: {:?}",
            fuzz_checks::TARGETS
        );
    }
}
