//! Fuzz target `status_flags`: the property is [`proxy_balancer_fuzz::status_flags`]'s.
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| proxy_balancer_fuzz::status_flags(data));

/// On stable: runs the target's seeds and past crashes.
#[cfg(not(fuzzing))]
fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    match proxy_balancer_fuzz::run_seeds(&root, "status_flags") {
        Ok(n) => eprintln!("status_flags: {n} inputs passed"),
        Err(failures) => panic!("{}", failures.join("\n")),
    }
}
