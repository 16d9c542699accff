//! Survey layer imports over HTTP (`PUT /v1/layers/{name}`) on the tiny demo city: round trips
//! through every format (and Gauss-Krüger EPSG:4549) give back the same features within 1 mm;
//! every bad input is a clear 4xx in the error format, stores nothing and leaves the previous
//! version served; readers during imports see one version or the other.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use citygrid::crs::Crs;
use citygrid::model::City;

use common::ingest::{assert_unchanged, get, metres, put, server, server_with_limit, versions};

// ---- writing the demo city's layers out, as GIS staff would deliver them -------------------

fn unit(city: &City, u: Option<citygrid::model::UnitId>) -> Value {
    u.map_or(Value::Null, |u| json!(city.units.get(u).name))
}

fn date(d: Option<chrono::NaiveDate>) -> Value {
    d.map_or(Value::Null, |d| json!(d.to_string()))
}

/// A component's attributes under our own field names.
fn component_properties(city: &City, c: &citygrid::model::Component) -> Value {
    json!({
        "code": c.code.to_string(), "class": c.class.to_string(), "name": city.names.get(c.name),
        "dept": unit(city, c.dept), "owner": unit(city, c.owner), "maintainer": unit(city, c.maintainer),
        "status": c.status.zh(), "grid": c.grid.map(|g| city.grid(g).code.to_string()),
        "created": date(c.created), "updated": date(c.updated), "accuracy": c.accuracy.map(|a| a.as_str()),
    })
}

fn grid_properties(city: &City, g: &citygrid::model::Grid, suffix: &str) -> Value {
    json!({
        "code": g.code.to_string(), "name": format!("{}{suffix}", g.name), "level": g.level + 1,
        "parent": g.parent.map(|p| city.grid(p).code.to_string()), "unit": unit(city, g.unit),
        "chief_name": g.chief.as_ref().map(|c| c.name.clone()), "chief_phone": g.chief.as_ref().map(|c| c.phone.clone()),
        "valid_from": date(g.valid_from), "valid_to": date(g.valid_to),
    })
}

/// (x, y) of a lon/lat in `crs` (easting first), or the lon/lat itself.
fn project(crs: Option<&Crs>, lon: f64, lat: f64) -> [f64; 2] {
    match crs {
        Some(crs) => {
            let (x, y) = crs.from_wgs84(lon, lat).unwrap();
            [x, y]
        }
        None => [lon, lat],
    }
}

fn components_features(city: &City, crs: Option<&Crs>) -> Vec<Value> {
    city.components
        .iter()
        .map(|c| {
            json!({"type": "Feature", "properties": component_properties(city, c),
                        "geometry": {"type": "Point", "coordinates": project(crs, c.location.x, c.location.y)}})
        })
        .collect()
}

fn grids_features(city: &City, crs: Option<&Crs>, suffix: &str) -> Vec<Value> {
    city.grids
        .iter()
        .map(|g| {
            let polygons: Vec<Value> = g
                .geometry
                .0
                .iter()
                .map(|p| {
                    let ring = |r: &geo_types::LineString<f64>| r.0.iter().map(|c| project(crs, c.x, c.y)).collect::<Vec<_>>();
                    let mut rings = vec![ring(p.exterior())];
                    rings.extend(p.interiors().iter().map(ring));
                    json!(rings)
                })
                .collect();
            json!({"type": "Feature", "properties": grid_properties(city, g, suffix),
                   "geometry": {"type": "MultiPolygon", "coordinates": polygons}})
        })
        .collect()
}

fn collection(features: Vec<Value>, crs: Option<&str>) -> String {
    let mut fc = json!({"type": "FeatureCollection", "features": features});
    if let Some(name) = crs {
        fc["crs"] = json!({"type": "name", "properties": {"name": name}});
    }
    fc.to_string()
}

fn ndjson(features: Vec<Value>) -> String {
    features.iter().map(|f| format!("{f}\n")).collect()
}

/// Components as CSV with the usual Chinese column names; coordinates either 经度/纬度 or, in a
/// Gauss-Krüger CRS, surveyor's `X` (northing) then `Y` (easting).
fn components_csv(city: &City, crs: Option<&Crs>) -> String {
    let mut out = csv::Writer::from_writer(Vec::new());
    let coords = if crs.is_some() { ["X", "Y"] } else { ["经度", "纬度"] };
    let header = ["标识码", "小类", "名称", "主管部门", "权属单位", "养护单位", "状态", "所在网格", "初始日期", "变更日期", "精度"];
    out.write_record(header.iter().chain(coords.iter())).unwrap();
    for c in &city.components {
        let p = component_properties(city, c);
        let text = |k: &str| p[k].as_str().unwrap_or("").to_owned();
        let [x, y] = project(crs, c.location.x, c.location.y);
        let (first, second) = if crs.is_some() { (y, x) } else { (x, y) }; // X = northing
        let mut row: Vec<String> =
            ["code", "class", "name", "dept", "owner", "maintainer", "status", "grid", "created", "updated", "accuracy"].map(text).to_vec();
        row.push(first.to_string());
        row.push(second.to_string());
        out.write_record(&row).unwrap();
    }
    String::from_utf8(out.into_inner().unwrap()).unwrap()
}

/// Components as a FlatGeobuf in EPSG:4549 written by the flatgeobuf crate (not our store),
/// with Chinese column names.
fn components_fgb_4549(city: &City, gk: &Crs) -> Vec<u8> {
    use flatgeobuf::{ColumnType, FgbCrs, FgbWriter, FgbWriterOptions, GeometryType};
    use geozero::{ColumnValue, PropertyProcessor};
    let options = FgbWriterOptions { crs: FgbCrs { org: Some("EPSG"), code: 4549, ..Default::default() }, ..Default::default() };
    let mut fgb = FgbWriter::create_with_options("部件", GeometryType::Point, options).unwrap();
    let columns = [
        ("标识码", "code"),
        ("小类", "class"),
        ("名称", "name"),
        ("主管部门", "dept"),
        ("权属单位", "owner"),
        ("养护单位", "maintainer"),
        ("状态", "status"),
        ("所在网格", "grid"),
        ("初始日期", "created"),
        ("变更日期", "updated"),
        ("精度", "accuracy"),
    ];
    for (name, _) in columns {
        fgb.add_column(name, ColumnType::String, |_, _| {});
    }
    for c in &city.components {
        let p = component_properties(city, c);
        let [x, y] = project(Some(gk), c.location.x, c.location.y);
        fgb.add_feature_geom(geo_types::Geometry::Point(geo_types::Point::new(x, y)), |feat| {
            for (i, (name, ours)) in columns.iter().enumerate() {
                if let Some(v) = p[*ours].as_str() {
                    feat.property(i, name, &ColumnValue::String(v)).unwrap();
                }
            }
        })
        .unwrap();
    }
    let mut out = Vec::new();
    fgb.write(&mut out).unwrap();
    out
}

/// CGCS2000 3-degree Gauss-Krüger CM 120E (EPSG:4549) as ESRI WKT, as ArcGIS writes it in a .prj
/// (`projinfo EPSG:4549 -o WKT1_ESRI`).
const PRJ_4549: &str = r#"PROJCS["CGCS2000_3_Degree_GK_CM_120E",GEOGCS["GCS_China_Geodetic_Coordinate_System_2000",DATUM["D_China_2000",SPHEROID["CGCS2000",6378137.0,298.257222101]],PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]],PROJECTION["Gauss_Kruger"],PARAMETER["False_Easting",500000.0],PARAMETER["False_Northing",0.0],PARAMETER["Central_Meridian",120.0],PARAMETER["Scale_Factor",1.0],PARAMETER["Latitude_Of_Origin",0.0],UNIT["Meter",1.0]]"#;

/// The files of a Shapefile written by the `shapefile` crate: (.shp, .shx, .dbf). `columns`:
/// (DBF field name, our property name, 'C' text, 'N' number or 'D' date).
fn shapefile_parts<S: shapefile::record::EsriShape>(shapes: &[S], properties: &[Value], columns: &[(&str, &str, char)]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    use shapefile::dbase::{Date, FieldValue, Record, TableWriterBuilder};
    let (mut shp, mut shx, mut dbf) = (std::io::Cursor::new(Vec::new()), std::io::Cursor::new(Vec::new()), std::io::Cursor::new(Vec::new()));
    // GBK (936), as Chinese GIS exports write their .dbf text.
    let mut builder = TableWriterBuilder::with_encoding(shapefile::dbase::encoding::EncodingRs::from(encoding_rs::GBK));
    for &(name, _, kind) in columns {
        let name = name.try_into().unwrap();
        builder = match kind {
            'C' => builder.add_character_field(name, 100),
            'N' => builder.add_numeric_field(name, 10, 0),
            _ => builder.add_date_field(name),
        };
    }
    let mut table = builder.build_with_dest(&mut dbf);
    let mut shapes_out = shapefile::ShapeWriter::with_shx(&mut shp, &mut shx);
    for (shape, p) in shapes.iter().zip(properties) {
        let mut record = Record::default();
        for &(name, ours, kind) in columns {
            let value = match kind {
                'C' => FieldValue::Character(p[ours].as_str().map(str::to_owned)),
                'N' => FieldValue::Numeric(p[ours].as_f64()),
                _ => FieldValue::Date(p[ours].as_str().map(|d| {
                    let d = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
                    use chrono::Datelike;
                    Date::new(d.day(), d.month(), d.year() as u32).unwrap()
                })),
            };
            record.insert(name.to_owned(), value);
        }
        shapes_out.write_shape(shape).unwrap();
        table.write_record(&record).unwrap();
    }
    shapes_out.finalize().unwrap();
    table.finalize().unwrap();
    drop((shapes_out, table));
    (shp.into_inner(), shx.into_inner(), dbf.into_inner())
}

/// A ZIP of `entries` (deflated), as GIS staff send a Shapefile.
fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut out = std::io::Cursor::new(Vec::new());
    let mut z = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        z.start_file(*name, options).unwrap();
        z.write_all(data).unwrap();
    }
    z.finish().unwrap();
    out.into_inner()
}

/// A zipped Shapefile of (.shp, .shx, .dbf) in EPSG:4549 with its .prj and a .cpg of `cpg`.
fn zipped(name: &str, (shp, shx, dbf): &(Vec<u8>, Vec<u8>, Vec<u8>), cpg: &str) -> Vec<u8> {
    zip(&[
        (&format!("{name}/{name}.shp"), shp),
        (&format!("{name}/{name}.shx"), shx),
        (&format!("{name}/{name}.dbf"), dbf),
        (&format!("{name}/{name}.prj"), PRJ_4549.as_bytes()),
        (&format!("{name}/{name}.cpg"), cpg.as_bytes()),
    ])
}

const COMPONENT_DBF: [(&str, &str, char); 11] = [
    ("code", "code", 'C'),
    ("class", "class", 'C'),
    ("name", "name", 'C'),
    ("dept", "dept", 'C'),
    ("owner", "owner", 'C'),
    ("maintainer", "maintainer", 'C'),
    ("status", "status", 'C'),
    ("grid", "grid", 'C'),
    ("created", "created", 'D'),
    ("updated", "updated", 'D'),
    ("accuracy", "accuracy", 'C'),
];

/// Components as a Shapefile in EPSG:4549 with GBK attributes.
fn components_shapefile_4549(city: &City, gk: &Crs) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let points: Vec<shapefile::Point> = city
        .components
        .iter()
        .map(|c| {
            let [x, y] = project(Some(gk), c.location.x, c.location.y);
            shapefile::Point::new(x, y)
        })
        .collect();
    let properties: Vec<Value> = city.components.iter().map(|c| component_properties(city, c)).collect();
    shapefile_parts(&points, &properties, &COMPONENT_DBF)
}

/// Grids as a Shapefile in EPSG:4549 (outer rings clockwise, holes counter-clockwise, as the
/// writer orders them) with GBK attributes.
fn grids_shapefile_4549(city: &City, gk: &Crs) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    use shapefile::PolygonRing;
    let ring = |r: &geo_types::LineString<f64>| -> Vec<shapefile::Point> {
        r.0.iter()
            .map(|c| {
                let [x, y] = project(Some(gk), c.x, c.y);
                shapefile::Point::new(x, y)
            })
            .collect()
    };
    let polygons: Vec<shapefile::Polygon> = city
        .grids
        .iter()
        .map(|g| {
            let mut rings = Vec::new();
            for p in &g.geometry.0 {
                rings.push(PolygonRing::Outer(ring(p.exterior())));
                rings.extend(p.interiors().iter().map(|h| PolygonRing::Inner(ring(h))));
            }
            shapefile::Polygon::with_rings(rings)
        })
        .collect();
    let properties: Vec<Value> = city.grids.iter().map(|g| grid_properties(city, g, "")).collect();
    let columns = [
        ("code", "code", 'C'),
        ("name", "name", 'C'),
        ("level", "level", 'N'),
        ("parent", "parent", 'C'),
        ("unit", "unit", 'C'),
        ("chief_name", "chief_name", 'C'),
        ("chief_phone", "chief_phone", 'C'),
        ("valid_from", "valid_from", 'D'),
        ("valid_to", "valid_to", 'D'),
    ];
    shapefile_parts(&polygons, &properties, &columns)
}

// ---- comparing what is served with the original ------------------------------------------

/// Metres between two lon/lat points (small distances).
fn assert_same_components(original: &City, served: &City, what: &str) {
    assert_eq!(served.components.len(), original.components.len(), "{what}");
    for c in &original.components {
        let s = served.component_by_code(c.code).unwrap_or_else(|| panic!("{what}: {} lost", c.code));
        assert!(metres(c.location, s.location) < 0.001, "{what}: {} moved {} m", c.code, metres(c.location, s.location));
        assert_eq!(component_properties(original, c), component_properties(served, s), "{what}");
    }
}

fn assert_same_grids(original: &City, served: &City, what: &str) {
    assert_eq!(served.grids.len(), original.grids.len(), "{what}");
    for (g, s) in original.grids.iter().zip(&served.grids) {
        assert_eq!(grid_properties(original, g, ""), grid_properties(served, s, ""), "{what}");
        assert_eq!(g.geometry.0.len(), s.geometry.0.len(), "{what}: {}", g.code);
        for (a, b) in g.geometry.0.iter().zip(&s.geometry.0) {
            assert_eq!(a.exterior().0.len(), b.exterior().0.len(), "{what}: {}", g.code);
            for (p, q) in a.exterior().0.iter().zip(&b.exterior().0) {
                assert!(metres(*p, *q) < 0.001, "{what}: grid {} vertex moved {} m", g.code, metres(*p, *q));
            }
        }
    }
}

#[tokio::test]
async fn components_round_trip_through_every_format_and_gauss_kruger() {
    let s = server();
    let original = s.handle.load();
    let city = &original.city;
    let gk = Crs::parse("EPSG:4549").unwrap();
    let fgb = std::fs::read(s.dir.path().join("layers/components/1.fgb")).unwrap();
    let uploads: Vec<(&str, &str, Vec<u8>)> = vec![
        ("GeoJSON", "application/geo+json", collection(components_features(city, None), None).into_bytes()),
        ("NDJSON", "application/x-ndjson", ndjson(components_features(city, None)).into_bytes()),
        ("CSV 经度/纬度", "text/csv", components_csv(city, None).into_bytes()),
        ("FlatGeobuf, sniffed", "application/octet-stream", fgb),
        ("GeoJSON EPSG:4549", "application/geo+json", collection(components_features(city, Some(&gk)), Some("urn:ogc:def:crs:EPSG::4549")).into_bytes()),
    ];
    for (i, (what, ct, body)) in uploads.into_iter().enumerate() {
        let (status, answer) = put(&s.app, "/v1/layers/components", Some(ct), body).await;
        assert_eq!(status, StatusCode::OK, "{what}: {answer}");
        assert_eq!(answer["report"]["accepted"], city.components.len(), "{what}");
        assert_eq!(answer["report"]["errors"], 0, "{what}: {}", answer["report"]);
        assert_eq!(answer["report"]["rules_problem"], Value::Null, "{what}");
        assert_eq!(answer["switched"]["current"], i as u64 + 2, "{what}");
        let served = s.handle.load();
        assert_eq!(served.versions.get("components"), Some(i as u64 + 2));
        assert_eq!(served.versions.get("units"), Some(1), "{what}: no new unit, no new register");
        assert_same_components(city, &served.city, what);
    }
    // Someone else's FlatGeobuf: EPSG:4549 in its header, Chinese column names.
    let (status, answer) = put(&s.app, "/v1/layers/components", Some("application/flatgeobuf"), components_fgb_4549(city, &gk)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!((answer["report"]["crs_source"].as_str(), answer["report"]["errors"].as_u64()), (Some("file"), Some(0)), "{}", answer["report"]);
    assert!(answer["report"]["crs"].as_str().unwrap().contains("4549"));
    assert_eq!(answer["report"]["fields"][0], json!({"field": "code", "column": "标识码"}));
    assert_eq!(answer["report"]["fields"][7], json!({"field": "grid", "column": "所在网格"}));
    assert_same_components(city, &s.handle.load().city, "FlatGeobuf EPSG:4549");
    // CSV in Gauss-Krüger with the surveyor's X (northing) first, CRS given in the query.
    let (status, answer) = put(&s.app, "/v1/layers/components?crs=EPSG:4549", Some("text/csv"), components_csv(city, Some(&gk))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["report"]["crs_source"], "given");
    assert_same_components(city, &s.handle.load().city, "CSV X/Y EPSG:4549");
}

#[tokio::test]
async fn grids_round_trip_in_wgs84_gauss_kruger_and_flatgeobuf() {
    let s = server();
    let original = s.handle.load();
    let city = &original.city;
    let gk = Crs::parse("EPSG:4549").unwrap();
    let fgb = std::fs::read(s.dir.path().join("layers/grids/1.fgb")).unwrap();
    let uploads: Vec<(&str, String, &str, Vec<u8>)> = vec![
        ("GeoJSON", "/v1/layers/grids".into(), "application/geo+json", collection(grids_features(city, None, ""), None).into_bytes()),
        (
            "GeoJSON EPSG:4549 by query",
            "/v1/layers/grids?crs=EPSG:4549".into(),
            "application/geo+json",
            collection(grids_features(city, Some(&gk), ""), None).into_bytes(),
        ),
        ("FlatGeobuf", "/v1/layers/grids".into(), "application/flatgeobuf", fgb),
    ];
    for (what, uri, ct, body) in uploads {
        let (status, answer) = put(&s.app, &uri, Some(ct), body).await;
        assert_eq!(status, StatusCode::OK, "{what}: {answer}");
        assert_eq!((answer["report"]["errors"].as_u64(), answer["report"]["warnings"].as_u64()), (Some(0), Some(0)), "{what}: {}", answer["report"]);
        assert_eq!(answer["report"]["rules_problem"], Value::Null, "{what}: the list still fits");
        let topology = &answer["report"]["topology"];
        assert_eq!(topology["counts"]["overlaps"], 0, "{what}: {topology}");
        assert_eq!(topology["counts"]["gaps"], 0, "{what}: {topology}");
        assert_eq!(topology["counts"]["outside_parent"], 0, "{what}: {topology}");
        let served = s.handle.load();
        assert_same_grids(city, &served.city, what);
        assert_eq!(served.city.components.len(), city.components.len(), "{what}: the components are kept");
        assert_eq!(served.versions.get("components"), Some(1));
    }
}

#[tokio::test]
async fn components_and_grids_round_trip_as_a_zipped_shapefile_in_gauss_kruger_with_gbk_attributes() {
    let s = server();
    let original = s.handle.load();
    let city = &original.city;
    let gk = Crs::parse("EPSG:4549").unwrap();
    let parts = components_shapefile_4549(city, &gk);
    assert!(std::str::from_utf8(&parts.2).is_err(), "the .dbf holds GBK bytes, not UTF-8");
    let (status, answer) = put(&s.app, "/v1/layers/components", Some("application/zip"), zipped("部件", &parts, "GBK")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let report = &answer["report"];
    assert_eq!((report["accepted"].as_u64(), report["errors"].as_u64()), (Some(city.components.len() as u64), Some(0)), "{report}");
    assert_eq!(report["crs_source"], "file", "{report}");
    assert!(report["crs"].as_str().unwrap().contains("4549"), "the .prj's ESRI WKT is EPSG:4549: {report}");
    assert_same_components(city, &s.handle.load().city, "zipped Shapefile EPSG:4549, GBK");
    // Sniffed from its bytes (PK\3\4) when the type says nothing.
    let (status, answer) = put(&s.app, "/v1/layers/components", Some("application/octet-stream"), zipped("c", &parts, "936")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_same_components(city, &s.handle.load().city, "zipped Shapefile, sniffed");

    let parts = grids_shapefile_4549(city, &gk);
    let (status, answer) = put(&s.app, "/v1/layers/grids", Some("application/x-zip-compressed"), zipped("网格", &parts, "GBK")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let report = &answer["report"];
    assert_eq!((report["errors"].as_u64(), report["warnings"].as_u64()), (Some(0), Some(0)), "{report}");
    assert_eq!(report["topology"]["counts"]["overlaps"], 0, "{report}");
    assert_eq!(report["topology"]["counts"]["gaps"], 0, "{report}");
    let served = s.handle.load();
    assert_same_grids(city, &served.city, "zipped Shapefile grids EPSG:4549, GBK");
    assert!(served.city.grids.iter().any(|g| g.name.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))), "Chinese names came through");
}

#[tokio::test]
async fn bad_zipped_shapefiles_are_clear_4xx_and_change_nothing() {
    let s = server();
    let city = &s.handle.load().city;
    let gk = Crs::parse("EPSG:4549").unwrap();
    let (shp, shx, dbf) = components_shapefile_4549(city, &gk);
    let prj = PRJ_4549.as_bytes();
    let good = zip(&[("a.shp", &shp), ("a.shx", &shx), ("a.dbf", &dbf), ("a.prj", prj), ("a.cpg", b"GBK")]);
    // 300 MB of zeros deflate to ~300 KB: past the 20× / 256 MiB cap of a small upload.
    let bomb = {
        use std::io::Write;
        let mut out = std::io::Cursor::new(Vec::new());
        let mut z = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated).large_file(false);
        z.start_file("a.shp", options).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..300 {
            z.write_all(&zeros).unwrap();
        }
        z.start_file("a.dbf", options).unwrap();
        z.write_all(&dbf).unwrap();
        z.finish().unwrap();
        out.into_inner()
    };
    assert!(bomb.len() < 1 << 20, "{}", bomb.len());
    // (what, body, a piece of the message)
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not a zip", b"PK\x03\x04 but nothing more".to_vec(), "not a readable ZIP"),
        ("truncated zip", good[..good.len() / 2].to_vec(), "not a readable ZIP"),
        ("no .shp", zip(&[("a.dbf", &dbf), ("a.prj", prj)]), "no .shp"),
        ("no .dbf", zip(&[("a.shp", &shp), ("a.shx", &shx), ("a.prj", prj)]), "a Shapefile needs its .dbf: zip the .shp, .shx, .dbf, .prj and .cpg together"),
        ("two layers", zip(&[("a.shp", &shp), ("a.dbf", &dbf), ("b.shp", &shp), ("b.dbf", &dbf)]), "2 Shapefiles (a.shp, b.shp)"),
        (
            "GBK declared as UTF-8",
            zip(&[("a.shp", &shp), ("a.dbf", &dbf), ("a.prj", prj), ("a.cpg", b"UTF-8")]),
            "the .cpg says UTF-8 but the attributes are GBK: fix the .cpg (GBK) or re-export as UTF-8",
        ),
        ("zip bomb", bomb, "more than the limit"),
    ];
    for (what, body, expected) in cases {
        let (status, answer) = put(&s.app, "/v1/layers/components", Some("application/zip"), body).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("unreadable_layer")), "{what}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{what}: {message}");
        assert_eq!(answer["error"]["details"]["format"], "shapefile", "{what}");
        assert_unchanged(&s, what).await;
    }
    // The GBK-as-UTF-8 refusal names the field and the record.
    let (_, answer) = put(&s.app, "/v1/layers/components", Some("application/zip"), zip(&[("a.shp", &shp), ("a.dbf", &dbf), ("a.cpg", b"UTF-8")])).await;
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("field \"name\" of record 0"), "{message}");
    // A GeoPackage header and nothing else: read as a GeoPackage, refused as truncated.
    let (status, answer) = put(&s.app, "/v1/layers/components", Some("application/geopackage+sqlite3"), b"SQLite format 3\0".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("GeoPackage"), "{answer}");
    assert_unchanged(&s, "GeoPackage").await;
}

#[tokio::test]
async fn bad_uploads_are_clear_4xx_and_change_nothing() {
    let s = server();
    let city = &s.handle.load().city;
    let good = collection(components_features(city, None), None);
    let gk = Crs::parse("EPSG:4549").unwrap();
    let metres = collection(components_features(city, Some(&gk)), None);
    // Swapped: the northing in the easting column (x_column names the easting).
    let swapped_csv = components_csv(city, Some(&gk));
    let mut duplicate = components_features(city, None);
    duplicate.push(duplicate[0].clone());
    let mut unknown_class = components_features(city, None);
    unknown_class[0]["properties"]["code"] = json!(format!("{}2199{}", &unknown_class[0]["properties"]["code"].as_str().unwrap()[..6], "999999"));
    unknown_class[0]["properties"]["class"] = json!("2199");
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    // (what, query, content type, body, status, error code)
    type Case<'a> = (&'a str, String, Option<&'a str>, Vec<u8>, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        ("truncated GeoJSON", "".into(), Some("application/geo+json"), good.as_bytes()[..good.len() / 2].to_vec(), StatusCode::BAD_REQUEST, "unreadable_layer"),
        ("binary garbage, sniffed", "".into(), Some("application/octet-stream"), garbage.clone(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        ("binary garbage as GeoJSON", "".into(), Some("application/geo+json"), garbage.clone(), StatusCode::BAD_REQUEST, "unreadable_layer"),
        ("binary garbage as FlatGeobuf", "".into(), Some("application/flatgeobuf"), garbage, StatusCode::BAD_REQUEST, "unreadable_layer"),
        ("wrong content type", "".into(), Some("image/png"), good.clone().into_bytes(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        ("a ZIP of nothing", "".into(), Some("application/zip"), b"PK\x03\x04".to_vec(), StatusCode::BAD_REQUEST, "unreadable_layer"),
        ("unknown CRS", "?crs=EPSG:99999".into(), Some("application/geo+json"), good.clone().into_bytes(), StatusCode::BAD_REQUEST, "unknown_crs"),
        ("metres without a CRS", "".into(), Some("application/geo+json"), metres.into_bytes(), StatusCode::BAD_REQUEST, "crs_required"),
        (
            "CRS conflict",
            "?crs=EPSG:4548".into(),
            Some("application/geo+json"),
            collection(components_features(city, Some(&gk)), Some("EPSG:4549")).into_bytes(),
            StatusCode::BAD_REQUEST,
            "crs_conflict",
        ),
        (
            "swapped CSV axes",
            "?crs=EPSG:4549&x_column=X&y_column=Y".into(),
            Some("text/csv"),
            swapped_csv.into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "layer_rejected",
        ),
        (
            "duplicate codes, strict",
            "?strict=true".into(),
            Some("application/geo+json"),
            collection(duplicate, None).into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "layer_rejected",
        ),
        (
            "unknown class, strict",
            "?strict=true".into(),
            Some("application/geo+json"),
            collection(unknown_class, None).into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "layer_rejected",
        ),
        ("bad flag", "?strict=yes".into(), Some("application/geo+json"), good.clone().into_bytes(), StatusCode::BAD_REQUEST, "invalid_parameter"),
        (
            "a layer sent as the unit register",
            "/../units".into(),
            Some("application/geo+json"),
            good.into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "dataset_rejected",
        ),
    ];
    for (what, query, ct, body, status, code) in cases {
        let uri = if query.starts_with('/') { "/v1/layers/units".to_owned() } else { format!("/v1/layers/components{query}") };
        let (got, answer) = put(&s.app, &uri, ct, body).await;
        assert_eq!((got, answer["error"]["code"].as_str()), (status, Some(code)), "{what}: {answer}");
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty(), "{what}");
        assert_unchanged(&s, what).await;
        if code == "layer_rejected" {
            let report = &answer["error"]["details"]["report"];
            assert_eq!(report["accepted_layer"], false, "{what}");
            let kind = match what {
                "swapped CSV axes" => "outside_crs_area",
                "duplicate codes, strict" => "duplicate_code",
                _ => "unknown_class",
            };
            assert!(report["counts"][kind].as_u64().unwrap() >= 1, "{what}: {report}");
            let issue = report["issues"].as_array().unwrap().iter().find(|i| i["kind"] == kind).unwrap();
            assert!(issue["feature"].is_u64() && issue["code"].is_string(), "{what}: {issue}");
        }
    }
    let (status, answer) = put(&s.app, "/v1/layers/components", None, Vec::new()).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("unsupported_media_type")), "empty body");
    assert_unchanged(&s, "empty body").await;
}

#[tokio::test]
async fn an_upload_over_the_limit_is_413_and_writes_need_the_token() {
    let s = server_with_limit(1);
    let body = vec![b' '; (1 << 20) + 10];
    let (status, answer) = put(&s.app, "/v1/layers/components", Some("application/geo+json"), body).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")), "{answer}");
    assert_eq!(answer["error"]["details"]["limit_bytes"], 1 << 20);
    assert_unchanged(&s, "over the limit").await;
    let req = Request::builder().method("PUT").uri("/v1/layers/components").body(Body::from("{}")).unwrap();
    let response = s.app.clone().oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_unchanged(&s, "no token").await;
}

#[tokio::test]
async fn invalid_features_are_dropped_by_default_and_a_dry_run_stores_nothing() {
    let s = server();
    let city = &s.handle.load().city;
    let mut features = components_features(city, None);
    features[0]["properties"]["class"] = json!("2199"); // unknown class (and not the code's)
    features[0]["properties"]["maintainer"] = json!("只在被丢弃的部件里的单位");
    features[3]["properties"]["maintainer"] = json!("新养护单位");
    features[1]["geometry"]["coordinates"] = json!([0.5]); // too few numbers
    features.push(features[2].clone()); // duplicate
    let body = collection(features, None);
    let (status, answer) = put(&s.app, "/v1/layers/components?dry_run=true", Some("application/geo+json"), body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!((answer["dry_run"].as_bool(), answer["switched"].is_null()), (Some(true), true));
    assert_unchanged(&s, "dry run").await;
    let (status, answer) = put(&s.app, "/v1/layers/components", Some("application/geo+json"), body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let report = &answer["report"];
    assert_eq!((report["dropped"].as_u64(), report["errors"].as_u64()), (Some(3), Some(3)), "{report}");
    assert_eq!(report["accepted"], city.components.len() - 2);
    assert_eq!(report["counts"]["invalid_geometry"], 1);
    assert_eq!(report["counts"]["duplicate_code"], 1);
    assert_eq!(report["topology"], Value::Null, "topology QA is not run here");
    let served = s.handle.load();
    assert_eq!(served.city.components.len(), city.components.len() - 2);
    assert!(served.city.component_by_code(city.components[0].code).is_none());
    // A kept feature's new unit makes a new unit register; a dropped feature's unit is not in it.
    assert_eq!(served.versions.get("units"), Some(2));
    assert!(served.city.units.find("新养护单位").is_some());
    assert!(served.city.units.find("只在被丢弃的部件里的单位").is_none());
}

#[tokio::test]
async fn a_grids_import_that_orphans_kept_components_is_rejected() {
    let s = server();
    let city = &s.handle.load().city;
    let unit_level = city.hierarchy.unit_level() as u8;
    // Leave out a unit grid that components record.
    let used = city.components.iter().find_map(|c| c.grid).unwrap();
    let features: Vec<Value> = grids_features(city, None, "")
        .into_iter()
        .zip(&city.grids)
        .filter(|(_, g)| !(g.level == unit_level && city.grid_by_code(g.code) == Some(used)))
        .map(|(f, _)| f)
        .collect();
    let (status, answer) = put(&s.app, "/v1/layers/grids", Some("application/geo+json"), collection(features, None)).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("layer_rejected")), "{answer}");
    let report = &answer["error"]["details"]["report"];
    assert!(report["rejection"].as_str().unwrap().contains("current components"), "{report}");
    assert!(report["issues"].as_array().unwrap().iter().any(|i| i["scope"] == "current_components" && i["kind"] == "unknown_grid"));
    assert_unchanged(&s, "orphaning grids").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_see_one_version_or_the_other_while_imports_switch_layers() {
    let s = server();
    let city = &s.handle.load().city;
    let bodies = [collection(grids_features(city, None, " v2"), None), collection(grids_features(city, None, ""), None)];
    let (lon, lat) = {
        let c = city.components.iter().find(|c| c.grid.is_some()).unwrap();
        (c.location.x, c.location.y)
    };
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (app, stop, seen) = (s.app.clone(), stop.clone(), seen.clone());
            tokio::spawn(async move {
                let uri = format!("/v1/locate?lon={lon}&lat={lat}");
                while !stop.load(Ordering::Relaxed) {
                    let (status, body) = get(&app, &uri).await;
                    assert_eq!(status, StatusCode::OK, "{body}");
                    let chain = body["chain"].as_array().unwrap();
                    let v2 = chain[0]["name"].as_str().unwrap().ends_with(" v2");
                    for e in chain {
                        assert_eq!(e["name"].as_str().unwrap().ends_with(" v2"), v2, "mixed answer: {body}");
                    }
                    // Versions 2, 4, 6 are the renamed ones.
                    let version = body["versions"]["grids"].as_u64().unwrap();
                    assert_eq!(v2, version % 2 == 0, "the names are of the version the answer names: {body}");
                    seen[v2 as usize].fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for round in 0..6 {
        let (status, answer) = put(&s.app, "/v1/layers/grids", Some("application/geo+json"), bodies[round % 2].clone()).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.expect("a reader failed");
    }
    let (v1, v2) = (seen[0].load(Ordering::Relaxed), seen[1].load(Ordering::Relaxed));
    assert!(v1 > 0 && v2 > 0, "both versions were served during the test: {v1} / {v2}");
    assert_eq!(versions(&s).get("grids"), Some(7));
}

#[tokio::test]
async fn a_grids_import_that_breaks_the_responsibility_list_warns_or_under_strict_is_rejected() {
    let s = server();
    let city = &s.handle.load().city;
    // The demo list has a rule scoped to community 320506001001. First components that record
    // no grid (so none is orphaned), then grids without that community.
    let mut components = components_features(city, None);
    for f in &mut components {
        f["properties"]["grid"] = Value::Null;
    }
    let (status, answer) = put(&s.app, "/v1/layers/components", Some("application/geo+json"), collection(components, None)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["report"]["rules_problem"], Value::Null, "{}", answer["report"]);
    let grids: Vec<Value> =
        grids_features(city, None, "").into_iter().filter(|f| !f["properties"]["code"].as_str().unwrap().starts_with("320506001001")).collect();
    let body = collection(grids, None);
    let (status, answer) = put(&s.app, "/v1/layers/grids?strict=true", Some("application/geo+json"), body.clone()).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("layer_rejected")), "{answer}");
    // The missing community is a hole in its street: strict refuses on topology already.
    let report = &answer["error"]["details"]["report"];
    assert!(report["rejection"].as_str().unwrap().contains("topology"), "{report}");
    assert!(report["topology"]["gaps"].as_array().unwrap().iter().any(|g| g["parent"] == "320506001"), "{report}");
    assert_eq!(s.handle.load().versions.get("grids"), Some(1));
    // The default refuses the hole too; accepting the findings imports it with the warning.
    let (status, answer) = put(&s.app, "/v1/layers/grids", Some("application/geo+json"), body.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(answer["error"]["details"]["report"]["rejection"].as_str().unwrap().contains("accept_findings=true"), "{answer}");
    assert_eq!(s.handle.load().versions.get("grids"), Some(1));
    let (status, answer) = put(&s.app, "/v1/layers/grids?accept_findings=true", Some("application/geo+json"), body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer["report"]["rules_problem"].as_str().unwrap().contains("320506001001"), "{answer}");
    assert!(answer["report"]["topology"]["counts"]["gaps"].as_u64().unwrap() >= 1, "{answer}");
    assert!(answer["report"]["counts"]["gap"].as_u64().unwrap() >= 1, "the gaps are warnings: {}", answer["report"]);
    assert_eq!(s.handle.load().versions.get("grids"), Some(2));
    let (status, rules) = get(&s.app, "/v1/rules").await;
    assert_eq!((status, rules["usable"].as_bool()), (StatusCode::OK, Some(false)), "{rules}");
}

#[tokio::test]
async fn a_grids_import_gets_topology_qa_and_an_overlap_is_refused_unless_accepted() {
    use geo::Scale;
    let s = server();
    let original = s.handle.load();
    let mut city = (*original.city).clone();
    // One unit grid grown by 5% around its centre: it overlaps its neighbours.
    let unit = city.hierarchy.unit_level();
    let i = city.grids.iter().position(|g| g.level as usize == unit).unwrap();
    let code = city.grids[i].code.to_string();
    city.grids[i].geometry = city.grids[i].geometry.scale(1.05);
    let body = collection(grids_features(&city, None, ""), None);
    let (status, answer) = put(&s.app, "/v1/layers/grids?strict=true", Some("application/geo+json"), body.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let report = &answer["error"]["details"]["report"];
    assert!(report["rejection"].as_str().unwrap().contains("topology"), "{report}");
    assert_eq!(versions(&s).get("grids"), Some(1), "strict stored nothing");
    // Strict wins over accept_findings.
    let (status, _) = put(&s.app, "/v1/layers/grids?strict=true&accept_findings=true", Some("application/geo+json"), body.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // The default refuses overlaps past the tolerance (none), naming the grid and where.
    let (status, answer) = put(&s.app, "/v1/layers/grids", Some("application/geo+json"), body.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let report = &answer["error"]["details"]["report"];
    assert_eq!((report["errors"].as_u64(), report["dropped"].as_u64()), (Some(0), Some(0)), "{report}");
    assert!(report["rejection"].as_str().unwrap().contains("overlaps ("), "{report}");
    let overlaps = report["issues"].as_array().unwrap().iter().filter(|i| i["kind"] == "overlap").collect::<Vec<_>>();
    assert!(!overlaps.is_empty() && overlaps.iter().all(|i| i["severity"] == "warning" && i["feature"].is_u64() && i["location"].is_array()), "{report}");
    assert_eq!(versions(&s).get("grids"), Some(1), "the default stored nothing");
    let (status, answer) = put(&s.app, "/v1/layers/grids?accept_findings=true", Some("application/geo+json"), body).await;
    assert_eq!(status, StatusCode::OK, "accepted on request: {answer}");
    let report = &answer["report"];
    let overlaps = report["topology"]["overlaps"].as_array().unwrap();
    assert!(!overlaps.is_empty());
    for o in overlaps {
        assert!(o["a"] == code.as_str() || o["b"] == code.as_str(), "every overlap involves the grown grid: {o}");
        assert!(o["area_m2"].as_f64().unwrap() > 1.0);
    }
    // Never "0 warnings" with findings: each one counts.
    let c = &report["topology"]["counts"];
    let findings: u64 = ["overlaps", "gaps", "outside_parent", "uncovered"].iter().map(|k| c[k].as_u64().unwrap()).sum();
    assert!(findings >= overlaps.len() as u64 && report["warnings"].as_u64().unwrap() >= findings, "{report}");
    assert_eq!(report["accept_findings"], true);
    assert_eq!(versions(&s).get("grids"), Some(2));
}

/// The grids layer with the unit grid `victim` replaced by a bow-tie over its box.
fn grids_with_a_bow_tie(city: &City, victim: usize) -> String {
    let mut features = grids_features(city, None, "");
    let b = geo::BoundingRect::bounding_rect(&city.grids[victim].geometry).unwrap();
    let (lo, hi) = (b.min(), b.max());
    features[victim]["geometry"] = json!({"type": "Polygon", "coordinates": [[[lo.x, lo.y], [hi.x, hi.y], [hi.x, lo.y], [lo.x, hi.y], [lo.x, lo.y]]]});
    collection(features, None)
}

#[tokio::test]
async fn a_grid_layer_that_would_cut_a_hole_is_refused_unless_its_findings_are_accepted() {
    use geo::{Contains, GeodesicArea};
    let s = server();
    let city = s.handle.load().city.clone();
    let unit = city.hierarchy.unit_level() as u8;
    let victim = city.grids.iter().position(|g| g.level == unit).unwrap();
    let code = city.grids[victim].code.to_string();
    let body = grids_with_a_bow_tie(&city, victim);
    let (status, answer) = put(&s.app, "/v1/layers/grids", Some("application/geo+json"), body.clone()).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("layer_rejected")), "{answer}");
    let report = &answer["error"]["details"]["report"];
    // The bow-tie: feature index, code, location; and the hole it would leave.
    let bad = report["issues"].as_array().unwrap().iter().find(|i| i["kind"] == "invalid_geometry").unwrap();
    assert_eq!((bad["feature"].as_u64(), bad["code"].as_str()), (Some(victim as u64), Some(code.as_str())), "{bad}");
    let at = |v: &Value| geo_types::Point::new(v[0].as_f64().unwrap(), v[1].as_f64().unwrap());
    let outline = &city.grids[victim].geometry;
    assert!(geo::Intersects::intersects(outline, &at(&bad["location"])), "{bad}");
    let rejection = report["rejection"].as_str().unwrap();
    assert!(rejection.contains(&format!("feature {victim} ({code})")) && rejection.contains("in no unit grid"), "{rejection}");
    // These components record the grid: they also refuse it, whatever the policy.
    assert!(rejection.contains("current components"), "{rejection}");
    let coverage = &report["topology"]["coverage"][0];
    let uncovered = coverage["uncovered"].as_array().unwrap();
    assert_eq!(uncovered.len(), 1, "{coverage}");
    assert!(outline.contains(&at(&uncovered[0]["location"])), "{coverage}");
    // The coverage numbers against an independent measure (geodesic areas of the outlines).
    let hole = outline.geodesic_area_unsigned();
    let district = city.grids.iter().find(|g| g.level == 0).unwrap().geometry.geodesic_area_unsigned();
    let close = |got: &Value, want: f64| (got.as_f64().unwrap() - want).abs() < 1e-4 * want;
    assert!(close(&coverage["uncovered_area_m2"], hole) && close(&uncovered[0]["area_m2"], hole), "{coverage} vs {hole}");
    assert!(close(&coverage["district_area_m2"], district), "{coverage} vs {district}");
    assert!(close(&coverage["unit_grid_area_m2"], district - hole), "{coverage} vs {}", district - hole);
    assert_unchanged(&s, "a bow-tie grid").await;

    // Components that record no grid first; then the layer is refused for the hole alone, and
    // accepted on request, with every finding counted.
    let mut components = components_features(&city, None);
    for f in &mut components {
        f["properties"]["grid"] = Value::Null;
    }
    let (status, answer) = put(&s.app, "/v1/layers/components", Some("application/geo+json"), collection(components, None)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = put(&s.app, "/v1/layers/grids", Some("application/geo+json"), body.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let rejection = answer["error"]["details"]["report"]["rejection"].as_str().unwrap();
    assert!(!rejection.contains("current components") && rejection.contains("accept_findings=true"), "{rejection}");
    assert_eq!(versions(&s).get("grids"), Some(1));
    let (status, answer) = put(&s.app, "/v1/layers/grids?accept_findings=true", Some("application/geo+json"), body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let report = &answer["report"];
    assert_eq!((report["errors"].as_u64(), report["dropped"].as_u64()), (Some(1), Some(1)), "{report}");
    assert_eq!((report["counts"]["gap"].as_u64(), report["counts"]["uncovered"].as_u64()), (Some(1), Some(1)), "{report}");
    assert!(report["warnings"].as_u64().unwrap() >= 2, "{report}");
    assert_eq!(versions(&s).get("grids"), Some(2));
    // The hole, as accepted: a lookup there is outside the coverage.
    let p = &report["topology"]["coverage"][0]["uncovered"][0]["location"];
    let (status, body) = get(&s.app, &format!("/v1/locate?lon={}&lat={}", p[0], p[1])).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("outside_coverage")), "{body}");
}

/// The features with every coordinate moved by `f` (lon, lat → lon, lat); `i` is the feature's index.
fn moved(mut features: Vec<Value>, f: impl Fn(usize, f64, f64) -> (f64, f64)) -> Vec<Value> {
    fn walk(v: &mut Value, f: &dyn Fn(f64, f64) -> (f64, f64)) {
        match v {
            Value::Array(a) if a.len() == 2 && a[0].is_f64() => {
                let (x, y) = f(a[0].as_f64().unwrap(), a[1].as_f64().unwrap());
                *v = json!([x, y]);
            }
            Value::Array(a) => a.iter_mut().for_each(|v| walk(v, f)),
            _ => {}
        }
    }
    for (i, feature) in features.iter_mut().enumerate() {
        walk(&mut feature["geometry"]["coordinates"], &|x, y| f(i, x, y));
    }
    features
}

/// The `datum_offset` issues of an answer's report.
fn datum_warnings(answer: &Value) -> Vec<Value> {
    let report = if answer["report"].is_null() { &answer["error"]["details"]["report"] } else { &answer["report"] };
    report["issues"].as_array().unwrap().iter().filter(|i| i["kind"] == "datum_offset").cloned().collect()
}

#[tokio::test]
async fn a_layer_in_gcj02_or_bd09_read_as_wgs84_is_flagged_with_the_crs_to_give() {
    use citygrid::crs::Datum;
    let s = server();
    let city = s.handle.load().city.clone();
    let features = components_features(&city, None);
    assert!(features.len() >= 20);
    let put_dry = |query: &'static str, features: Vec<Value>| {
        let app = s.app.clone();
        async move { put(&app, &format!("/v1/layers/components?dry_run=true{query}"), Some("application/geo+json"), collection(features, None)).await }
    };
    // Shifted WGS84 → GCJ-02, imported as WGS84 over the originals: one layer-wide warning.
    let gcj = moved(features.clone(), |_, x, y| Datum::Gcj02.from_wgs84(x, y));
    let (status, answer) = put_dry("", gcj.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let warnings = datum_warnings(&answer);
    assert_eq!(warnings.len(), 1, "{}", answer["report"]);
    let w = &warnings[0];
    assert_eq!((w["scope"].as_str(), w["severity"].as_str(), w["feature"].is_null()), (Some("layer"), Some("warning"), true), "{w}");
    let message = w["message"].as_str().unwrap();
    assert!(message.contains("--crs gcj02") && message.contains("crs=gcj02"), "{message}");
    assert!(message.starts_with(&format!("{n} of the {n} components", n = features.len())), "{message}");
    assert_eq!(answer["report"]["issues"][0], *w, "listed first");
    assert_eq!(answer["report"]["counts"]["datum_offset"], 1);
    // Read as GCJ-02, the same file is where the current layer is: no warning.
    let (status, answer) = put_dry("&crs=gcj02", gcj).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(datum_warnings(&answer).is_empty(), "{}", answer["report"]);
    // BD-09 likewise, naming --crs bd09.
    let (_, answer) = put_dry("", moved(features.clone(), |_, x, y| Datum::Bd09.from_wgs84(x, y))).await;
    let warnings = datum_warnings(&answer);
    assert!(warnings.len() == 1 && warnings[0]["message"].as_str().unwrap().contains("--crs bd09"), "{}", answer["report"]);
    // Unshifted: nothing to say.
    let (_, answer) = put_dry("", features.clone()).await;
    assert!(datum_warnings(&answer).is_empty(), "{}", answer["report"]);
    // Moved as far, but each its own way (100–700 m in a scattered direction), or all the
    // same way but not GCJ-02's: no warning.
    let scatter = |i: usize, x: f64, y: f64| {
        let (angle, distance) = ((i as f64 * 2.399_963).rem_euclid(std::f64::consts::TAU), 100.0 + (i * 7919 % 601) as f64);
        let per_degree = citygrid::crs::METRES_PER_DEGREE;
        (x + distance * angle.cos() / (per_degree * y.to_radians().cos()), y + distance * angle.sin() / per_degree)
    };
    let (_, answer) = put_dry("", moved(features.clone(), scatter)).await;
    assert!(datum_warnings(&answer).is_empty(), "{}", answer["report"]);
    let (_, answer) = put_dry("", moved(features, |_, x, y| (x - 0.004, y - 0.003))).await;
    assert!(datum_warnings(&answer).is_empty(), "{}", answer["report"]);
    assert_unchanged(&s, "dry runs").await;

    // A grid layer in GCJ-02, compared centroid to centroid.
    let grids = moved(grids_features(&city, None, ""), |_, x, y| Datum::Gcj02.from_wgs84(x, y));
    let (_, answer) = put(&s.app, "/v1/layers/grids?dry_run=true", Some("application/geo+json"), collection(grids, None)).await;
    let warnings = datum_warnings(&answer);
    assert_eq!(warnings.len(), 1, "{answer}");
    assert!(warnings[0]["message"].as_str().unwrap().contains(&format!("{n} of the {n} grids", n = city.grids.len())), "{}", warnings[0]);
    let (_, answer) = put(&s.app, "/v1/layers/grids?dry_run=true", Some("application/geo+json"), collection(grids_features(&city, None, ""), None)).await;
    assert!(datum_warnings(&answer).is_empty(), "{answer}");
}
