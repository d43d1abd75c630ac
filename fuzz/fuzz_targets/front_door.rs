//! Fuzz target `front_door`: the property is [`proxy_balancer_fuzz::front_door`]'s.
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| proxy_balancer_fuzz::front_door(data));

/// On stable: runs the target's seeds and past crashes.
#[cfg(not(fuzzing))]
fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    match proxy_balancer_fuzz::run_seeds(&root, "front_door") {
        Ok(n) => eprintln!("front_door: {n} inputs passed"),
        Err(failures) => panic!("{}", failures.join("\n")),
    }
}
