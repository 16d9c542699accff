//! Shared helpers for integration tests.
#![allow(dead_code)]

use std::path::Path;

use citygrid::demo::{DemoSpec, Preset, generate};
use citygrid::store::Store;
use citygrid::world::{World, WorldHandle};

/// Writes the tiny demo city (seed 1) into `dir`.
pub fn write_tiny(dir: &Path) {
    let demo = generate(&DemoSpec { preset: Preset::Tiny, components: None, seed: 1 }, &|_, _| {}).unwrap();
    let meta = demo.meta();
    let mut store = Store::open(dir).unwrap();
    store.save_city(&meta, &demo.city, Some(&demo.rules_csv), "test", &|_, _| {}).unwrap();
}

/// A world handle on the tiny demo city, stored in and loaded back from `dir`.
pub fn tiny_world(dir: &Path) -> WorldHandle {
    write_tiny(dir);
    let loaded = Store::open(dir).unwrap().load_city(&|_, _| {}).unwrap();
    WorldHandle::new(World::new(loaded))
}
pub mod http;
pub mod ingest;
pub mod mvt;
pub mod pg;
pub mod server;
