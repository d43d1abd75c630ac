//! Fuzz target `manager_query`: the property is [`proxy_balancer_fuzz::manager_query`]'s.
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| proxy_balancer_fuzz::manager_query(data));

/// On stable: runs the target's seeds and past crashes.
#[cfg(not(fuzzing))]
fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    match proxy_balancer_fuzz::run_seeds(&root, "manager_query") {
        Ok(n) => eprintln!("manager_query: {n} inputs passed"),
        Err(failures) => panic!("{}", failures.join("\n")),
    }
}
