//! Fuzz target `apache_config`: the property is [`proxy_balancer_fuzz::apache_config`]'s.
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| proxy_balancer_fuzz::apache_config(data));

/// On stable: runs the target's seeds and past crashes.
#[cfg(not(fuzzing))]
fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    match proxy_balancer_fuzz::run_seeds(&root, "apache_config") {
        Ok(n) => eprintln!("apache_config: {n} inputs passed"),
        Err(failures) => panic!("{}", failures.join("\n")),
    }
}
