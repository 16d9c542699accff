//! `citygrid tile-sizes` through the real binary on the tiny demo city: the tiles it measures
//! and their sizes against a brute force over every candidate tile, encoded by the library
//! as the server encodes them; the budget's exit status; refusals.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::f64::consts::PI;
use std::process::{Command, Output};

use citygrid::crs::Datum;
use citygrid::tiles::Layer;
use geo::BoundingRect;
use serde_json::Value;

fn run(args: &[&str], data: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_citygrid")).arg("tile-sizes").args(args).arg("--data").arg(data).output().unwrap()
}

/// The XYZ tile of a WGS84 point (Web Mercator), computed here independently of the library.
fn tile_of(lon: f64, lat: f64, z: u8) -> (u32, u32) {
    let phi = lat.to_radians();
    let w = [(lon + 180.0) / 360.0, (1.0 - (phi.tan() + 1.0 / phi.cos()).ln() / PI) / 2.0];
    let n = f64::from(1u32 << z);
    ((w[0] * n).floor() as u32, (w[1] * n).floor() as u32)
}

#[test]
fn every_zoom_reports_its_largest_tile_as_the_server_encodes_it() {
    let dir = tempfile::tempdir().unwrap();
    let world = common::tiny_world(dir.path()).load();
    let out = run(&["--json"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["max_bytes"], 500 * 1024);
    assert_eq!(report["within_budget"], true);
    let zooms = report["zooms"].as_array().unwrap();
    let max_zoom = world.tiles.config().max_zoom;
    assert_eq!(zooms.len(), usize::from(max_zoom) + 1, "one entry per zoom 0..={max_zoom}");
    let size = |z: u8, x: u32, y: u32, datum: Datum| world.tiles.encode(&world.city, &Layer::ALL, z, x, y, datum).unwrap().map_or(0, |b| b.len());
    let mut sampled_zooms = 0;
    for (z, entry) in (0..=max_zoom).zip(zooms) {
        assert_eq!(entry["zoom"], z);
        // Brute force: the tiles holding a component or a grid's bounding-box centre.
        let mut weight: HashMap<(u32, u32), usize> = HashMap::new();
        for c in &world.city.components {
            *weight.entry(tile_of(c.location.x, c.location.y, z)).or_default() += 1;
        }
        for outline in world.city.grids.iter().map(|g| &g.geometry).chain(world.city.zones.iter().map(|z| &z.geometry)) {
            let c = outline.bounding_rect().unwrap().center();
            weight.entry(tile_of(c.x, c.y, z)).or_default();
        }
        assert_eq!(entry["candidates"], weight.len(), "z{z}");
        assert_eq!(entry["densest_components"], *weight.values().max().unwrap(), "z{z}");
        let largest = &entry["largest"];
        let (x, y) = (largest["x"].as_u64().unwrap() as u32, largest["y"].as_u64().unwrap() as u32);
        let datum: Datum = largest["datum"].as_str().unwrap().parse().unwrap();
        assert_eq!(largest["bytes"], size(z, x, y, datum), "z{z}: the largest tile's size is its encoding's");
        assert_eq!(largest["components"], weight[&(x, y)], "z{z}");
        if weight.len() <= 300 {
            // Every candidate measured: the largest is the brute-force largest over both datums.
            assert_eq!(entry["measured"], weight.len(), "z{z}");
            let max = weight.keys().map(|&(x, y)| size(z, x, y, Datum::Wgs84).max(size(z, x, y, Datum::Gcj02))).max().unwrap();
            assert_eq!(largest["bytes"], max, "z{z}");
        } else {
            // A sample: the 100 densest are in it, so the largest is at least the densest tile's size.
            sampled_zooms += 1;
            assert!(entry["measured"].as_u64().unwrap() < weight.len() as u64, "z{z}");
            let densest = weight.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))).unwrap().0;
            assert!(largest["bytes"].as_u64().unwrap() >= size(z, densest.0, densest.1, Datum::Wgs84) as u64, "z{z}");
        }
        assert!(entry["median_bytes"].as_u64().unwrap() <= largest["bytes"].as_u64().unwrap(), "z{z}");
    }
    assert!(sampled_zooms > 0, "the tiny city has zooms with more than 300 candidate tiles");
}

#[test]
fn a_tile_over_the_budget_exits_2_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    common::write_tiny(dir.path());
    let out = run(&["--max-kb", "1", "--layers", "components,grids", "--datum", "gcj02"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let (stdout, stderr) = (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
    assert!(stdout.contains("layers grids,components, budget 1 KB"), "{stdout}");
    assert!(stdout.contains("OVER BUDGET") && stdout.contains("gcj02"), "{stdout}");
    assert!(stderr.contains("over the budget of 1 KB: "), "{stderr}");
    // Only the zooms over the budget are named, each by its largest tile.
    let named: BTreeSet<&str> = stderr.lines().last().unwrap().split(": ").nth(1).unwrap().split(", ").collect();
    let over_lines = stdout.lines().filter(|l| l.ends_with("OVER BUDGET")).count();
    assert_eq!(named.len(), over_lines, "{stderr}\n{stdout}");
    let json = run(&["--max-kb", "1", "--json"], dir.path());
    assert_eq!(json.status.code(), Some(2));
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["within_budget"], false);
}

#[test]
fn unknown_layers_datums_and_empty_directories_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let empty = run(&[], dir.path());
    assert_ne!(empty.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&empty.stderr).contains("no city"), "{}", String::from_utf8_lossy(&empty.stderr));
    // A new city before any layer: nothing to measure, said as such.
    let init = Command::new(env!("CARGO_BIN_EXE_citygrid")).args(["init", "--name", "x", "--crs", "EPSG:4549", "--data"]).arg(dir.path()).output().unwrap();
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let new_city = run(&[], dir.path());
    assert_eq!(new_city.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&new_city.stderr).contains("no grids, zones or components yet"), "{}", String::from_utf8_lossy(&new_city.stderr));
    let dir = tempfile::tempdir().unwrap();
    common::write_tiny(dir.path());
    let layer = run(&["--layers", "grids,roads"], dir.path());
    assert_eq!(layer.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&layer.stderr).contains("no tile layer \"roads\""), "{}", String::from_utf8_lossy(&layer.stderr));
    let datum = run(&["--datum", "mars"], dir.path());
    assert_eq!(datum.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&datum.stderr).contains("--datum: unknown crs \"mars\""), "{}", String::from_utf8_lossy(&datum.stderr));
}
