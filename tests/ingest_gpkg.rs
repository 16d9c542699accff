//! GeoPackage survey layers over HTTP (`PUT /v1/layers/{name}`) on the tiny demo city: the
//! demo's components and grids written as GeoPackages in Gauss-Krüger EPSG:4549 — by hand
//! here (rusqlite + blobs following the spec) and, where `ogr2ogr` is installed, by GDAL from
//! a GeoJSON — come back within 1 mm with equal attributes (Chinese names); every bad
//! GeoPackage is a clear 4xx that stores nothing.

mod common;

use std::path::Path;

use axum::http::StatusCode;
use rusqlite::Connection;
use rusqlite::types::Value as Sql;
use serde_json::{Value, json};

use citygrid::crs::Crs;
use citygrid::model::City;
use citygrid::store::Store;
use common::ingest::{assert_unchanged, metres, put, server};

const GPKG: &str = "application/geopackage+sqlite3";

// ---- the demo city's layers as attribute rows ---------------------------------------------------

fn unit(city: &City, u: Option<citygrid::model::UnitId>) -> Option<String> {
    u.map(|u| city.units.get(u).name.to_string())
}

fn date(d: Option<chrono::NaiveDate>) -> Option<String> {
    d.map(|d| d.to_string())
}

/// A component's attributes under the usual Chinese column names, in column order.
const COMPONENT_COLUMNS: [&str; 11] = ["标识码", "小类", "名称", "主管部门", "权属单位", "养护单位", "状态", "所在网格", "初始日期", "变更日期", "精度"];

fn component_row(city: &City, c: &citygrid::model::Component) -> Vec<Option<String>> {
    vec![
        Some(c.code.to_string()),
        Some(c.class.to_string()),
        Some(city.names.get(c.name).to_string()),
        unit(city, c.dept),
        unit(city, c.owner),
        unit(city, c.maintainer),
        Some(c.status.zh().to_string()),
        c.grid.map(|g| city.grid(g).code.to_string()),
        date(c.created),
        date(c.updated),
        c.accuracy.map(|a| a.as_str().to_string()),
    ]
}

/// Grid attributes under our own names; `level` an INTEGER column.
const GRID_COLUMNS: [(&str, &str); 9] = [
    ("code", "TEXT"),
    ("name", "TEXT"),
    ("level", "INTEGER"),
    ("parent", "TEXT"),
    ("unit", "TEXT"),
    ("chief_name", "TEXT"),
    ("chief_phone", "TEXT"),
    ("valid_from", "DATE"),
    ("valid_to", "DATE"),
];

fn grid_row(city: &City, g: &citygrid::model::Grid) -> Vec<Sql> {
    let text = |v: Option<String>| v.map_or(Sql::Null, Sql::Text);
    vec![
        Sql::Text(g.code.to_string()),
        Sql::Text(g.name.to_string()),
        Sql::Integer(i64::from(g.level) + 1),
        text(g.parent.map(|p| city.grid(p).code.to_string())),
        text(unit(city, g.unit)),
        text(g.chief.as_ref().map(|c| c.name.to_string())),
        text(g.chief.as_ref().map(|c| c.phone.to_string())),
        text(date(g.valid_from)),
        text(date(g.valid_to)),
    ]
}

fn gk(crs: &Crs, c: geo_types::Coord<f64>) -> (f64, f64) {
    crs.from_wgs84(c.x, c.y).unwrap()
}

// ---- GeoPackages by hand (OGC 12-128r18) -----------------------------------------------------

/// A GeoPackage geometry blob: little-endian header with an XY envelope, then ISO WKB.
fn blob(wkb: Vec<u8>, points: &[(f64, f64)]) -> Vec<u8> {
    let mut out = b"GP\x00\x03".to_vec(); // version 0, envelope code 1, little-endian
    out.extend(4549i32.to_le_bytes());
    let (mut minx, mut maxx, mut miny, mut maxy) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points {
        (minx, maxx, miny, maxy) = (minx.min(x), maxx.max(x), miny.min(y), maxy.max(y));
    }
    for v in [minx, maxx, miny, maxy] {
        out.extend(v.to_le_bytes());
    }
    out.extend(wkb);
    out
}

fn wkb_point((x, y): (f64, f64)) -> Vec<u8> {
    let mut out = vec![1];
    out.extend(1u32.to_le_bytes());
    out.extend(x.to_le_bytes());
    out.extend(y.to_le_bytes());
    out
}

/// A big-endian ISO WKB MultiPolygon (GDAL writes little-endian; both are read).
fn wkb_multipolygon(polygons: &[Vec<Vec<(f64, f64)>>]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend(6u32.to_be_bytes());
    out.extend((polygons.len() as u32).to_be_bytes());
    for rings in polygons {
        out.push(0);
        out.extend(3u32.to_be_bytes());
        out.extend((rings.len() as u32).to_be_bytes());
        for ring in rings {
            out.extend((ring.len() as u32).to_be_bytes());
            for &(x, y) in ring {
                out.extend(x.to_be_bytes());
                out.extend(y.to_be_bytes());
            }
        }
    }
    out
}

const GPKG_DDL: &str = "
    PRAGMA application_id = 1196444487; PRAGMA user_version = 10400;
    CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY, organization TEXT NOT NULL,
        organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, description TEXT);
    INSERT INTO gpkg_spatial_ref_sys VALUES ('Undefined cartesian SRS', -1, 'NONE', -1, 'undefined', NULL),
        ('Undefined geographic SRS', 0, 'NONE', 0, 'undefined', NULL),
        ('WGS 84 geodetic', 4326, 'EPSG', 4326, 'GEOGCS[\"WGS 84\"]', NULL),
        ('CGCS2000 / 3-degree Gauss-Kruger CM 120E', 4549, 'EPSG', 4549, 'PROJCS[\"CGCS2000 / 3-degree Gauss-Kruger CM 120E\"]', NULL);
    CREATE TABLE gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL, identifier TEXT UNIQUE,
        description TEXT DEFAULT '', last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
        min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER);
    CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL, column_name TEXT NOT NULL, geometry_type_name TEXT NOT NULL,
        srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL, CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name));
";

/// Adds a feature table `table` (`fid`, `geom`, then `columns`) registered in the GeoPackage
/// tables with `srs_id`, and its rows.
fn add_table(db: &Connection, table: &str, geometry_type: &str, srs_id: i64, columns: &[(&str, &str)], rows: Vec<(Vec<u8>, Vec<Sql>)>) {
    let defs: String = columns.iter().map(|(n, t)| format!(", \"{n}\" {t}")).collect();
    db.execute_batch(&format!("CREATE TABLE \"{table}\" (fid INTEGER PRIMARY KEY AUTOINCREMENT, geom {geometry_type}{defs});")).unwrap();
    db.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier, srs_id) VALUES (?1, 'features', ?1, ?2)", rusqlite::params![table, srs_id])
        .unwrap();
    db.execute("INSERT INTO gpkg_geometry_columns VALUES (?1, 'geom', ?2, ?3, 0, 0)", rusqlite::params![table, geometry_type, srs_id]).unwrap();
    let names: String = columns.iter().map(|(n, _)| format!(", \"{n}\"")).collect();
    let marks: String = columns.iter().enumerate().map(|(i, _)| format!(", ?{}", i + 2)).collect();
    let mut insert = db.prepare(&format!("INSERT INTO \"{table}\" (geom{names}) VALUES (?1{marks})")).unwrap();
    for (geom, values) in rows {
        let mut params = vec![Sql::Blob(geom)];
        params.extend(values);
        insert.execute(rusqlite::params_from_iter(params)).unwrap();
    }
}

fn new_gpkg(path: &Path) -> Connection {
    let db = Connection::open(path).unwrap();
    db.execute_batch("PRAGMA synchronous = OFF;").unwrap(); // a test file: no fsync per row
    db.execute_batch(GPKG_DDL).unwrap();
    db
}

fn components_rows(city: &City, crs: &Crs) -> Vec<(Vec<u8>, Vec<Sql>)> {
    city.components
        .iter()
        .map(|c| {
            let p = gk(crs, c.location);
            (blob(wkb_point(p), &[p]), component_row(city, c).into_iter().map(|v| v.map_or(Sql::Null, Sql::Text)).collect())
        })
        .collect()
}

fn grids_rows(city: &City, crs: &Crs) -> Vec<(Vec<u8>, Vec<Sql>)> {
    city.grids
        .iter()
        .map(|g| {
            let polygons: Vec<Vec<Vec<(f64, f64)>>> = g
                .geometry
                .0
                .iter()
                .map(|p| std::iter::once(p.exterior()).chain(p.interiors()).map(|r| r.0.iter().map(|c| gk(crs, *c)).collect()).collect())
                .collect();
            let points: Vec<(f64, f64)> = polygons.iter().flatten().flatten().copied().collect();
            (blob(wkb_multipolygon(&polygons), &points), grid_row(city, g))
        })
        .collect()
}

fn components_gpkg(dir: &Path, city: &City, crs: &Crs) -> Vec<u8> {
    let path = dir.join("components.gpkg");
    let db = new_gpkg(&path);
    let columns: Vec<(&str, &str)> = COMPONENT_COLUMNS.iter().map(|n| (*n, "TEXT")).collect();
    add_table(&db, "城管部件", "POINT", 4549, &columns, components_rows(city, crs));
    drop(db);
    std::fs::read(&path).unwrap()
}

fn grids_gpkg(dir: &Path, city: &City, crs: &Crs) -> Vec<u8> {
    let path = dir.join("grids.gpkg");
    let db = new_gpkg(&path);
    add_table(&db, "单元网格", "MULTIPOLYGON", 4549, &GRID_COLUMNS, grids_rows(city, crs));
    drop(db);
    std::fs::read(&path).unwrap()
}

// ---- comparing what is served with the original ------------------------------------------

fn assert_same_components(original: &City, served: &City, what: &str) {
    assert_eq!(served.components.len(), original.components.len(), "{what}");
    for c in &original.components {
        let s = served.component_by_code(c.code).unwrap_or_else(|| panic!("{what}: {} lost", c.code));
        assert!(metres(c.location, s.location) < 0.001, "{what}: {} moved {} m", c.code, metres(c.location, s.location));
        assert_eq!(component_row(original, c), component_row(served, s), "{what}");
    }
}

fn assert_same_grids(original: &City, served: &City, what: &str) {
    assert_eq!(served.grids.len(), original.grids.len(), "{what}");
    for (g, s) in original.grids.iter().zip(&served.grids) {
        assert_eq!(grid_row(original, g), grid_row(served, s), "{what}");
        assert_eq!(g.geometry.0.len(), s.geometry.0.len(), "{what}: {}", g.code);
        for (a, b) in g.geometry.0.iter().zip(&s.geometry.0) {
            assert_eq!(a.interiors().len(), b.interiors().len(), "{what}: {}", g.code);
            for (ra, rb) in std::iter::once(a.exterior()).chain(a.interiors()).zip(std::iter::once(b.exterior()).chain(b.interiors())) {
                assert_eq!(ra.0.len(), rb.0.len(), "{what}: {}", g.code);
                for (p, q) in ra.0.iter().zip(&rb.0) {
                    assert!(metres(*p, *q) < 0.001, "{what}: grid {} vertex moved {} m", g.code, metres(*p, *q));
                }
            }
        }
    }
}

fn assert_imported(answer: &Value, what: &str) {
    let report = &answer["report"];
    assert_eq!((report["errors"].as_u64(), report["dropped"].as_u64()), (Some(0), Some(0)), "{what}: {report}");
    assert_eq!(report["crs_source"], "file", "{what}: {report}");
    assert!(report["crs"].as_str().unwrap().contains("4549"), "{what}: {report}");
}

// ---- tests -----------------------------------------------------------------------------------

#[tokio::test]
async fn hand_made_geopackages_in_gauss_kruger_round_trip_within_a_millimetre() {
    let s = server();
    let original = s.handle.load();
    let city = &original.city;
    let crs = Crs::parse("EPSG:4549").unwrap();
    let files = tempfile::tempdir().unwrap();
    let components = components_gpkg(files.path(), city, &crs);
    for (what, ct) in [("components, application/geopackage+sqlite3", GPKG), ("components, sniffed", "application/octet-stream")] {
        let (status, answer) = put(&s.app, "/v1/layers/components", Some(ct), components.clone()).await;
        assert_eq!(status, StatusCode::OK, "{what}: {answer}");
        assert_imported(&answer, what);
        assert_eq!(answer["report"]["fields"][0], json!({"field": "code", "column": "标识码"}), "{what}");
        assert_same_components(city, &s.handle.load().city, what);
    }
    let (status, answer) = put(&s.app, "/v1/layers/grids", Some(GPKG), grids_gpkg(files.path(), city, &crs)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_imported(&answer, "grids");
    let served = s.handle.load();
    assert_same_grids(city, &served.city, "grids");
    assert_eq!(served.city.components.len(), city.components.len(), "the components are kept");
}

#[test]
fn attributes_are_text_in_table_order_without_the_fid_and_blobs() {
    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("types.gpkg");
    let db = new_gpkg(&path);
    let columns = [("名称", "TEXT"), ("数量", "INTEGER"), ("面积", "REAL"), ("整数实数", "REAL"), ("照片", "BLOB"), ("备注", "TEXT")];
    let p = (500_000.0, 4_400_000.0);
    let rows = vec![
        (blob(wkb_point(p), &[p]), vec![Sql::Text("井盖".into()), Sql::Integer(42), Sql::Real(12.5), Sql::Real(3.0), Sql::Blob(vec![0xFF, 0xD8]), Sql::Null]),
        (b"not a blob".to_vec(), vec![Sql::Null, Sql::Integer(-7), Sql::Null, Sql::Null, Sql::Null, Sql::Text("坏几何".into())]),
    ];
    add_table(&db, "部件", "POINT", 0, &columns, rows);
    drop(db);
    let layer = citygrid::ingest::read_layer(std::fs::File::open(&path).unwrap(), None, &Default::default()).unwrap();
    assert_eq!(layer.format, citygrid::ingest::Format::GeoPackage);
    assert_eq!(layer.columns, ["名称", "数量", "面积", "整数实数", "照片", "备注"], "no fid, no geom");
    assert_eq!(layer.declared_crs, None, "srs_id 0 is undefined");
    let f = &layer.features[0];
    let text = |v: &[&str]| v.iter().map(|s| (!s.is_empty()).then(|| s.to_string())).collect::<Vec<_>>();
    assert_eq!(f.values, text(&["井盖", "42", "12.5", "3", "", ""]));
    assert_eq!(f.geometry, Some(geo_types::Geometry::Point(geo_types::Point::new(p.0, p.1))));
    let bad = &layer.features[1];
    assert_eq!((bad.index, bad.geometry.is_none()), (1, true));
    assert_eq!(bad.problem.as_ref().map(|p| p.0), Some(citygrid::ingest::IssueKind::InvalidGeometry), "{:?}", bad.problem);
    assert_eq!(bad.values, text(&["", "-7", "", "", "", "坏几何"]));
}

#[tokio::test]
async fn bad_geopackages_are_clear_4xx_and_change_nothing() {
    let s = server();
    let world = s.handle.load();
    let city = &world.city;
    let crs = Crs::parse("EPSG:4549").unwrap();
    let files = tempfile::tempdir().unwrap();
    let good = components_gpkg(files.path(), city, &crs);
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let plain = files.path().join("plain.sqlite");
    Connection::open(&plain).unwrap().execute_batch("CREATE TABLE t (a TEXT); INSERT INTO t VALUES ('x');").unwrap();
    let empty = files.path().join("empty.gpkg");
    let db = new_gpkg(&empty);
    db.execute_batch(
        "CREATE TABLE 说明 (fid INTEGER PRIMARY KEY, text TEXT);
                      INSERT INTO gpkg_contents (table_name, data_type, identifier) VALUES ('说明', 'attributes', '说明');",
    )
    .unwrap();
    drop(db);
    let several = files.path().join("several.gpkg");
    let db = new_gpkg(&several);
    let columns: Vec<(&str, &str)> = COMPONENT_COLUMNS.iter().map(|n| (*n, "TEXT")).collect();
    add_table(&db, "城管部件", "POINT", 4549, &columns, components_rows(city, &crs));
    add_table(&db, "部件_旧", "POINT", 4549, &columns, components_rows(city, &crs));
    drop(db);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("garbage", garbage, "not an SQLite database"),
        ("truncated", good[..good.len() / 2].to_vec(), "truncated"),
        ("truncated mid-page", good[..good.len() - 100].to_vec(), "truncated"),
        ("an SQLite database that is not a GeoPackage", std::fs::read(&plain).unwrap(), "no gpkg_contents"),
        ("no feature table", std::fs::read(&empty).unwrap(), "no feature table"),
        ("several feature tables", std::fs::read(&several).unwrap(), "ogr2ogr -f GPKG one.gpkg in.gpkg <table>"),
    ];
    for (what, body, says) in cases {
        let (status, answer) = put(&s.app, "/v1/layers/components", Some(GPKG), body).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("unreadable_layer")), "{what}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("GeoPackage") && message.contains(says), "{what}: {message}");
        if what == "several feature tables" {
            assert!(message.contains("\"城管部件\"") && message.contains("\"部件_旧\""), "{message}");
        }
        assert_unchanged(&s, what).await;
    }
}

// ---- GDAL's own GeoPackages ----------------------------------------------------------------------

/// Runs `ogr2ogr -f GPKG` on a GeoJSON; `None` (with a message) when GDAL is not installed.
fn ogr2ogr(dir: &Path, name: &str, geojson: &Value) -> Option<Vec<u8>> {
    let source = dir.join(format!("{name}.geojson"));
    std::fs::write(&source, geojson.to_string()).unwrap();
    let target = dir.join(format!("{name}.gpkg"));
    let status = match std::process::Command::new("ogr2ogr").arg("-f").arg("GPKG").arg(&target).arg(&source).args(["-nln", name]).status() {
        Ok(status) => status,
        Err(e) => {
            eprintln!("SKIPPED: the ogr2ogr GeoPackage checks need GDAL's ogr2ogr (apt-get install gdal-bin): {e}");
            return None;
        }
    };
    assert!(status.success(), "ogr2ogr failed: {status}");
    Some(std::fs::read(&target).unwrap())
}

fn geojson(features: Vec<Value>) -> Value {
    json!({"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::4549"}}, "features": features})
}

#[tokio::test]
async fn geopackages_written_by_ogr2ogr_round_trip_within_a_millimetre() {
    let s = server();
    let original = s.handle.load();
    let city = &original.city;
    let crs = Crs::parse("EPSG:4549").unwrap();
    let files = tempfile::tempdir().unwrap();
    let components: Vec<Value> = city
        .components
        .iter()
        .map(|c| {
            let properties: serde_json::Map<String, Value> =
                COMPONENT_COLUMNS.iter().zip(component_row(city, c)).map(|(k, v)| (k.to_string(), json!(v))).collect();
            let (x, y) = gk(&crs, c.location);
            json!({"type": "Feature", "properties": properties, "geometry": {"type": "Point", "coordinates": [x, y]}})
        })
        .collect();
    let Some(components) = ogr2ogr(files.path(), "城管部件", &geojson(components)) else { return };
    let (status, answer) = put(&s.app, "/v1/layers/components", Some(GPKG), components).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_imported(&answer, "ogr2ogr components");
    assert_same_components(city, &s.handle.load().city, "ogr2ogr components");

    let grids: Vec<Value> = city
        .grids
        .iter()
        .map(|g| {
            let properties: serde_json::Map<String, Value> = GRID_COLUMNS
                .iter()
                .zip(grid_row(city, g))
                .map(|((k, _), v)| {
                    let v = match v {
                        Sql::Text(t) => json!(t),
                        Sql::Integer(n) => json!(n),
                        _ => Value::Null,
                    };
                    (k.to_string(), v)
                })
                .collect();
            let polygons: Vec<Vec<Vec<[f64; 2]>>> = g
                .geometry
                .0
                .iter()
                .map(|p| std::iter::once(p.exterior()).chain(p.interiors()).map(|r| r.0.iter().map(|c| gk(&crs, *c).into()).collect()).collect())
                .collect();
            json!({"type": "Feature", "properties": properties, "geometry": {"type": "MultiPolygon", "coordinates": polygons}})
        })
        .collect();
    let grids = ogr2ogr(files.path(), "单元网格", &geojson(grids)).expect("ogr2ogr ran for the components");
    let (status, answer) = put(&s.app, "/v1/layers/grids", Some(GPKG), grids).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_imported(&answer, "ogr2ogr grids");
    assert_same_grids(city, &s.handle.load().city, "ogr2ogr grids");
}

#[test]
fn a_geopackage_left_in_wal_mode_is_read() {
    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("wal.gpkg");
    let db = new_gpkg(&path);
    let mode: String = db.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    let p = (500_000.0, 4_400_000.0);
    add_table(&db, "部件", "POINT", 4549, &[("名称", "TEXT")], vec![(blob(wkb_point(p), &[p]), vec![Sql::Text("井盖".into())])]);
    db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
    drop(db);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!((bytes[18], bytes[19]), (2, 2), "the header says WAL");
    // Only the main file is uploaded: no -wal, no -shm beside the temp copy.
    let layer = citygrid::ingest::read_layer(&bytes[..], Some(citygrid::ingest::Format::GeoPackage), &Default::default()).unwrap();
    assert_eq!(layer.declared_crs.as_deref(), Some("EPSG:4549"));
    assert_eq!(layer.features.len(), 1);
    assert_eq!(layer.features[0].values, [Some("井盖".to_string())]);
}

#[test]
fn an_integer_key_not_named_fid_is_kept_as_an_attribute() {
    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("objectid.gpkg");
    let db = new_gpkg(&path);
    let p = (500_000.0, 4_400_000.0);
    db.execute_batch(
        "CREATE TABLE 部件 (OBJECTID INTEGER PRIMARY KEY, geom POINT, 名称 TEXT);
         INSERT INTO gpkg_contents (table_name, data_type, identifier, srs_id) VALUES ('部件', 'features', '部件', 4549);
         INSERT INTO gpkg_geometry_columns VALUES ('部件', 'geom', 'POINT', 4549, 0, 0);",
    )
    .unwrap();
    for id in [7, 3] {
        db.execute("INSERT INTO 部件 VALUES (?1, ?2, '井盖')", rusqlite::params![id, blob(wkb_point(p), &[p])]).unwrap();
    }
    drop(db);
    let layer = citygrid::ingest::read_layer(std::fs::File::open(&path).unwrap(), None, &Default::default()).unwrap();
    assert_eq!(layer.columns, ["OBJECTID", "名称"]);
    let values: Vec<_> = layer.features.iter().map(|f| f.values.clone()).collect();
    assert_eq!(values, [[Some("3".to_string()), Some("井盖".to_string())], [Some("7".to_string()), Some("井盖".to_string())]], "in key order");
}

#[test]
fn citygrid_import_takes_a_gpkg_file_by_its_extension() {
    let dir = tempfile::tempdir().unwrap();
    let world = common::tiny_world(dir.path()).load();
    let crs = Crs::parse("EPSG:4549").unwrap();
    let files = tempfile::tempdir().unwrap();
    let run = |file: &Path| {
        let out =
            std::process::Command::new(env!("CARGO_BIN_EXE_citygrid")).args(["import", "components"]).arg(file).arg("--data").arg(dir.path()).output().unwrap();
        (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap())
    };
    let survey = files.path().join("城管部件.gpkg");
    std::fs::write(&survey, components_gpkg(files.path(), &world.city, &crs)).unwrap();
    let (code, out) = run(&survey);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("imported: components version 2 is current (was 1)"), "{out}");
    let plain = files.path().join("plain.gpkg");
    Connection::open(&plain).unwrap().execute_batch("CREATE TABLE t (a TEXT);").unwrap();
    let (code, out) = run(&plain);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("REJECTED") && out.contains("not a GeoPackage"), "{out}");
    assert_eq!(Store::open(dir.path()).unwrap().versions().get("components"), Some(2));
}

#[test]
fn a_corrupted_geopackage_is_an_error_or_per_feature_problems_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let world = common::tiny_world(dir.path()).load();
    let crs = Crs::parse("EPSG:4549").unwrap();
    let good = components_gpkg(dir.path(), &world.city, &crs);
    let (mut errors, mut read) = (0, 0);
    for i in 0..300usize {
        let mut bad = good.clone();
        let at = (i * 7919 + 100) % bad.len(); // past the 100-byte header, spread over the pages
        bad[at] ^= 0x5A;
        bad[(at + 1) % good.len()] ^= 0xFF;
        match citygrid::ingest::read_layer(&bad[..], Some(citygrid::ingest::Format::GeoPackage), &Default::default()) {
            Ok(layer) => {
                read += 1;
                assert!(layer.features.iter().all(|f| f.geometry.is_some() != f.problem.is_some()));
            }
            Err(e) => {
                errors += 1;
                if errors % 10 == 1 {
                    eprintln!("byte {at}: {e}");
                }
                assert!(e.to_string().contains("GeoPackage"), "{e}");
            }
        }
    }
    eprintln!("{errors} refused, {read} read");
    assert_eq!(errors + read, 300);
}
