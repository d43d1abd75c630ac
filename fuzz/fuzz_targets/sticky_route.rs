//! Fuzz target `sticky_route`: the property is [`proxy_balancer_fuzz::sticky_route`]'s,
//! with allocations counted by this binary's global allocator (extraction must make none).
#![cfg_attr(fuzzing, no_main)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts allocations, to check that extraction makes none.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: delegates to `System`, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.load(Ordering::Relaxed)
}

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| proxy_balancer_fuzz::sticky_route(data, &allocations));

/// On stable: runs the target's seeds and past crashes, counting allocations too.
#[cfg(not(fuzzing))]
fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in proxy_balancer_fuzz::seed_dirs(&root, "sticky_route") {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let data = std::fs::read(entry.path()).expect("a readable seed");
            proxy_balancer_fuzz::sticky_route(&data, &allocations);
        }
    }
    match proxy_balancer_fuzz::run_seeds(&root, "sticky_route") {
        Ok(n) => eprintln!("sticky_route: {n} inputs passed"),
        Err(failures) => panic!("{}", failures.join("\n")),
    }
}
