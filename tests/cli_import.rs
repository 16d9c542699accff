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
        (vec!["import", "roads", duplicate], "is not a dataset: grids, components, zones"),
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

/// The tiny city's components as a Shapefile in EPSG:4549 beside its .dbf (GBK text, written
/// by the dbase writer), .prj and .cpg; returns the .shp path.
fn components_shapefile(city: &citygrid::model::City, dir: &std::path::Path) -> std::path::PathBuf {
    use shapefile::dbase::{FieldValue, Record, TableWriterBuilder, encoding::EncodingRs};
    let gk = citygrid::crs::Crs::parse("EPSG:4549").unwrap();
    let shp = dir.join("部件.shp");
    let mut shapes = shapefile::ShapeWriter::from_path(&shp).unwrap();
    let mut table = TableWriterBuilder::with_encoding(EncodingRs::from(encoding_rs::GBK))
        .add_character_field("code".try_into().unwrap(), 20)
        .add_character_field("name".try_into().unwrap(), 50)
        .add_character_field("grid".try_into().unwrap(), 20)
        .build_with_file_dest(dir.join("部件.dbf"))
        .unwrap();
    for c in &city.components {
        let (x, y) = gk.from_wgs84(c.location.x, c.location.y).unwrap();
        shapes.write_shape(&shapefile::Point::new(x, y)).unwrap();
        let mut record = Record::default();
        record.insert("code".into(), FieldValue::Character(Some(c.code.to_string())));
        record.insert("name".into(), FieldValue::Character(Some(city.names.get(c.name).to_string())));
        record.insert("grid".into(), FieldValue::Character(c.grid.map(|g| city.grid(g).code.to_string())));
        table.write_record(&record).unwrap();
    }
    shapes.finalize().unwrap();
    table.finalize().unwrap();
    std::fs::write(dir.join("部件.prj"), PRJ_4549).unwrap();
    std::fs::write(dir.join("部件.cpg"), "GBK").unwrap();
    shp
}

const PRJ_4549: &str = r#"PROJCS["CGCS2000_3_Degree_GK_CM_120E",GEOGCS["GCS_China_Geodetic_Coordinate_System_2000",DATUM["D_China_2000",SPHEROID["CGCS2000",6378137.0,298.257222101]],PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]],PROJECTION["Gauss_Kruger"],PARAMETER["False_Easting",500000.0],PARAMETER["False_Northing",0.0],PARAMETER["Central_Meridian",120.0],PARAMETER["Scale_Factor",1.0],PARAMETER["Latitude_Of_Origin",0.0],UNIT["Meter",1.0]]"#;

#[test]
fn a_bare_shp_is_read_with_its_siblings_and_refused_without_its_dbf() {
    let dir = tempfile::tempdir().unwrap();
    let world = common::tiny_world(dir.path()).load();
    let shp = components_shapefile(&world.city, dir.path());
    let (code, out) = run(&["validate", shp.to_str().unwrap(), "--json"], dir.path());
    assert_eq!(code, 0, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((report["crs_source"].as_str(), report["errors"].as_u64()), (Some("file"), Some(0)), "{report}");
    assert_eq!(report["accepted"].as_u64(), Some(world.city.components.len() as u64), "{report}");
    std::fs::remove_file(dir.path().join("部件.dbf")).unwrap();
    let (code, out) = run(&["import", "components", shp.to_str().unwrap()], dir.path());
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("a Shapefile needs its .dbf"), "{out}");
    assert_eq!(Store::open(dir.path()).unwrap().versions().get("components"), Some(1));
}

/// The tiny city's grids as GeoJSON, unit grid `bow_tie` replaced by a bow-tie over its box.
fn grids_geojson(city: &citygrid::model::City, bow_tie: usize) -> String {
    let features: Vec<Value> = city
        .grids
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let geometry = if i == bow_tie {
                let b = geo::BoundingRect::bounding_rect(&g.geometry).unwrap();
                let (lo, hi) = (b.min(), b.max());
                json!({"type": "Polygon", "coordinates": [[[lo.x, lo.y], [hi.x, hi.y], [hi.x, lo.y], [lo.x, hi.y], [lo.x, lo.y]]]})
            } else {
                let ring: Vec<[f64; 2]> = g.geometry.0[0].exterior().0.iter().map(|c| [c.x, c.y]).collect();
                json!({"type": "Polygon", "coordinates": [ring]})
            };
            json!({"type": "Feature", "geometry": geometry, "properties": {"code": g.code.to_string(), "name": g.name,
                   "parent": g.parent.map(|p| city.grid(p).code.to_string())}})
        })
        .collect();
    json!({"type": "FeatureCollection", "features": features}).to_string()
}

#[test]
fn a_grid_layer_that_would_cut_a_hole_exits_2_unless_its_findings_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let world = common::tiny_world(dir.path()).load();
    let city = &world.city;
    assert!(city.grids.iter().all(|g| g.geometry.0.len() == 1 && g.geometry.0[0].interiors().is_empty()));
    // Components that record no grid, so that the hole orphans none.
    let components = dir.path().join("components.geojson");
    std::fs::write(&components, components_geojson(city, |x, y| (x, y), false).replace(r#""所在网格":""#, r#""ignored":""#)).unwrap();
    let (code, out) = run(&["import", "components", components.to_str().unwrap()], dir.path());
    assert_eq!(code, 0, "{out}");
    let victim = city.grids.iter().position(|g| g.level as usize == city.hierarchy.unit_level()).unwrap();
    let grids = dir.path().join("grids.geojson");
    std::fs::write(&grids, grids_geojson(city, victim)).unwrap();
    let grids = grids.to_str().unwrap();
    let (code, out) = run(&["import", "grids", grids], dir.path());
    assert_eq!(code, 2, "{out}");
    let first = out.lines().next().unwrap();
    assert!(first.contains("REJECTED") && first.contains(&format!("feature {victim} ({})", city.grids[victim].code)), "{out}");
    assert!(first.contains("--accept-findings"), "{out}");
    assert!(out.contains("uncovered:") && out.contains("invalid_geometry"), "{out}");
    assert_eq!(Store::open(dir.path()).unwrap().versions().get("grids"), Some(1));
    let (code, out) = run(&["validate", grids, "--accept-findings", "--json"], dir.path());
    assert_eq!(code, 0, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((report["layer"].as_str(), report["errors"].as_u64(), report["counts"]["uncovered"].as_u64()), (Some("grids"), Some(1), Some(1)), "{report}");
    let (code, out) = run(&["import", "grids", grids, "--accept-findings"], dir.path());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("grid findings accepted") && out.contains("imported: grids version 2"), "{out}");
    assert_eq!(Store::open(dir.path()).unwrap().versions().get("grids"), Some(2));
}

/// `validate` checks a file as the import would: a file with no CRS of its own is read in the
/// city's CRS (settings `crs`), and its report is the one `import --dry-run` prints.
#[test]
fn validate_reads_a_file_without_crs_in_the_citys_crs_and_reports_as_a_dry_run_import() {
    let dir = tempfile::tempdir().unwrap();
    let world = common::tiny_world(dir.path()).load();
    let mut meta = world.meta.clone();
    meta.crs = Some("EPSG:4549".into());
    let settings = dir.path().join("city.settings.toml");
    std::fs::write(&settings, meta.to_toml()).unwrap();
    let (code, out) = run(&["import", "city", settings.to_str().unwrap()], dir.path());
    assert_eq!(code, 0, "{out}");
    let gk = citygrid::crs::Crs::parse("EPSG:4549").unwrap();
    let metres = dir.path().join("metres.geojson");
    std::fs::write(&metres, components_geojson(&world.city, |x, y| gk.from_wgs84(x, y).unwrap(), false)).unwrap();
    let metres = metres.to_str().unwrap();

    let (code, out) = run(&["validate", metres, "--json"], dir.path());
    assert_eq!(code, 0, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["errors"].as_u64(), Some(0), "{report}");
    assert!(report["crs"].as_str().unwrap().contains("4549"), "{report}");
    assert_eq!(report["accepted_layer"], true, "{report}");

    let (code, validated) = run(&["validate", metres], dir.path());
    assert_eq!(code, 0, "{validated}");
    let (code, dry) = run(&["import", "components", metres, "--dry-run"], dir.path());
    assert_eq!(code, 0, "{dry}");
    assert!(dry.starts_with(&validated), "validate:\n{validated}\nimport --dry-run:\n{dry}");
    assert_eq!(Store::open(dir.path()).unwrap().versions().get("components"), Some(1), "nothing stored");
}
