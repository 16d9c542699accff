//! Shared by the fuzz targets: the global allocator that refuses any single allocation over
//! 256 MiB (`citygrid::fuzzing::CappedAllocator`), and the call of a target by name.

#[global_allocator]
static ALLOCATOR: citygrid::fuzzing::CappedAllocator = citygrid::fuzzing::CappedAllocator;

/// Runs target `name` on `data` (see `citygrid::fuzzing`).
pub fn run(name: &str, data: &[u8]) {
    assert!(citygrid::fuzzing::run(name, data), "no fuzz target {name}");
}
