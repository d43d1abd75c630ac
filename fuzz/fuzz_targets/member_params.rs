//! Fuzz target `member_params`: the property is [`proxy_balancer_fuzz::member_params`]'s.
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| proxy_balancer_fuzz::member_params(data));

/// On stable: runs the target's seeds and past crashes.
#[cfg(not(fuzzing))]
fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    match proxy_balancer_fuzz::run_seeds(&root, "member_params") {
        Ok(n) => eprintln!("member_params: {n} inputs passed"),
        Err(failures) => panic!("{}", failures.join("\n")),
    }
}
