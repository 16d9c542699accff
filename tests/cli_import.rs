//! `citygrid import` and `citygrid validate` through the real binary on the tiny demo city.

mod common;

use std::process::Command;

use serde_json::{Value, json};

use citygrid::store::Store;

fn run(args: &[&str], data: &std::path::Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_citygrid")).args(args).arg("--data").arg(data).output().unwrap();
    (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap())
}

/// The tiny city's components as a GeoJSON FeatureCollection, every coordinate mapped by `f`.
fn components_geojson(city: &citygrid::model::City, f: impl Fn(f64, f64) -> (f64, f64), duplicate: bool) -> String {
    let mut features: Vec<Value> = city
        .components
        .iter()
        .map(|c| {
            let (x, y) = f(c.location.x, c.location.y);
            json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [x, y]},
                   "properties": {"部件标识码": c.code.to_string(), "所在网格": c.grid.map(|g| city.grid(g).code.to_string())}})
        })
        .collect();
    if duplicate {
        features.push(features[0].clone());
    }
    json!({"type": "FeatureCollection", "features": features}).to_string()
}

#[test]
fn import_stores_a_new_version_and_validate_reports_without_storing() {
    let dir = tempfile::tempdir().unwrap();
    let world = common::tiny_world(dir.path()).load();
    let file = dir.path().join("survey.geojson");
    std::fs::write(&file, components_geojson(&world.city, |x, y| (x, y), false)).unwrap();
    let file = file.to_str().unwrap();

    let (code, out) = run(&["validate", file, "--json"], dir.path());
    assert_eq!(code, 0, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((report["layer"].as_str(), report["crs_source"].as_str(), report["errors"].as_u64()), (Some("components"), Some("assumed"), Some(0)));
    assert_eq!(Store::open(dir.path()).unwrap().versions().get("components"), Some(1), "validate stores nothing");

    let (code, out) = run(&["import", "components", file, "--dry-run"], dir.path());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("dry run"), "{out}");
    assert_eq!(Store::open(dir.path()).unwrap().versions().get("components"), Some(1));

    let (code, out) = run(&["import", "components", file], dir.path());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("accepted") && out.contains("imported: components version 2 is current (was 1)"), "{out}");
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.versions().get("components"), Some(2));
    assert!(store.dataset("components").unwrap().versions[1].source.starts_with("citygrid import components"));
}

#[test]
fn rejected_imports_exit_2_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let world = common::tiny_world(dir.path()).load();
    let gk = citygrid::crs::Crs::parse("EPSG:4549").unwrap();
    let metres = dir.path().join("metres.geojson");
    std::fs::write(&metres, components_geojson(&world.city, |x, y| gk.from_wgs84(x, y).unwrap(), false)).unwrap();
    let duplicate = dir.path().join("dup.geojson");
    std::fs::write(&duplicate, components_geojson(&world.city, |x, y| (x, y), true)).unwrap();
    let (metres, duplicate) = (metres.to_str().unwrap(), duplicate.to_str().unwrap());
    for (args, needle) in [
        (vec!["import", "components", metres], "--crs"),
        (vec!["import", "components", metres, "--crs", "EPSG:99999"], "99999"),
        (vec!["import", "components", duplicate, "--strict"], "duplicate_code"),
        (vec!["import", "roads", duplicate], "grids and components"),
        (vec!["validate", duplicate, "--strict"], "REJECTED"),
    ] {
        let (code, out) = run(&args, dir.path());
        assert_eq!(code, 2, "{args:?}: {out}");
        assert!(out.contains(needle), "{args:?}: {out}");
        assert_eq!(Store::open(dir.path()).unwrap().versions().get("components"), Some(1), "{args:?}");
    }
    // With the CRS given, the same file imports.
    let (code, out) = run(&["import", "components", metres, "--crs", "EPSG:4549"], dir.path());
    assert_eq!(code, 0, "{out}");
}
