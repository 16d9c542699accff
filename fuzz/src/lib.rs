//! Shared by the fuzz targets: a global allocator that refuses any single allocation larger
//! than [`MAX_ALLOCATION`]. A reader that sizes a buffer from what a tiny input claims (a
//! `.dbf` announcing 4 billion records) then aborts with "memory allocation of N bytes
//! failed", and libFuzzer keeps the input as a crash: without a sanitizer, Linux would grant
//! such an allocation lazily and libFuzzer's RSS limit would never see it.

use std::alloc::{GlobalAlloc, Layout, System};

/// The largest single allocation a reader may make while fuzzed (the inputs are kilobytes).
pub const MAX_ALLOCATION: usize = 256 << 20;

struct Capped;

// SAFETY: every call is passed to the system allocator, or refused with a null pointer (which
// the caller treats as an allocation failure) before reaching it.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION { std::ptr::null_mut() } else { unsafe { System.alloc(layout) } }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION { std::ptr::null_mut() } else { unsafe { System.alloc_zeroed(layout) } }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > MAX_ALLOCATION { std::ptr::null_mut() } else { unsafe { System.realloc(ptr, layout, new_size) } }
    }
}

#[global_allocator]
static ALLOCATOR: Capped = Capped;

/// Runs target `name` on `data` (see `citygrid::fuzzing`).
pub fn run(name: &str, data: &[u8]) {
    assert!(citygrid::fuzzing::run(name, data), "no fuzz target {name}");
}
