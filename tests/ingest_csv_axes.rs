//! CSV columns named just X/Y in Gauss-Krüger: the survey convention (X = northing) unless the
//! data fits the CRS's area only the other way round (a CSV written by GDAL has X = easting),
//! which the report then says. Through the whole import check, on the tiny demo city.

mod common;

use citygrid::crs::Crs;
use citygrid::index::GridIndex;
use citygrid::ingest::validate::LayerKind;
use citygrid::ingest::{CsvOptions, Format, ImportOptions, IssueKind, Prepared, prepare, stream_layer};
use citygrid::model::City;

/// The city's components as `code,class,X,Y` in EPSG:4549, each point written by `order`
/// from (easting, northing).
fn csv_4549(city: &City, order: impl Fn(f64, f64) -> (f64, f64)) -> String {
    let gk = Crs::parse("EPSG:4549").unwrap();
    let mut out = String::from("code,class,X,Y\n");
    for c in &city.components {
        let (e, n) = gk.from_wgs84(c.location.x, c.location.y).unwrap();
        let (x, y) = order(e, n);
        out.push_str(&format!("{},{},{x},{y}\n", c.code, c.class));
    }
    out
}

fn import(city: &City, csv: &str, options: &CsvOptions) -> Prepared {
    let mut import = ImportOptions::new(LayerKind::Components);
    import.crs = Some("EPSG:4549".into());
    prepare(|sink| stream_layer(csv.as_bytes(), Some(Format::Csv), options, sink), &import, city, &GridIndex::build(city)).unwrap()
}

/// Every component of `new` lies within 1 mm of the same component of `old`.
fn assert_same_places(old: &City, new: &City) {
    assert_eq!(old.components.len(), new.components.len());
    for c in &old.components {
        let n = new.component_by_code(c.code).unwrap();
        let metres = (n.location.x - c.location.x).hypot(n.location.y - c.location.y) * 111_195.0;
        assert!(metres < 1e-3, "{}: {metres} m off", c.code);
    }
}

#[test]
fn a_gdal_written_csv_with_x_easting_is_read_that_way_and_the_report_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let world = common::tiny_world(dir.path()).load();
    let city = &world.city;
    let p = import(city, &csv_4549(city, |e, n| (e, n)), &CsvOptions::default());
    let r = &p.report;
    assert_eq!((r.errors, r.accepted, r.accepted_layer), (0, city.components.len() as u64, true), "{}", r.to_text());
    assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
    assert!(r.notes[0].starts_with("csv_axes_swapped: columns X/Y were read as X = easting, Y = northing"), "{}", r.notes[0]);
    let json = serde_json::to_value(r).unwrap();
    assert!(json["notes"][0].as_str().unwrap().starts_with("csv_axes_swapped"), "{json}");
    assert!(r.to_text().contains("note: csv_axes_swapped"), "{}", r.to_text());
    assert_same_places(city, p.city.as_ref().unwrap());
}

#[test]
fn the_survey_convention_x_northing_still_reads_without_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let world = common::tiny_world(dir.path()).load();
    let city = &world.city;
    let p = import(city, &csv_4549(city, |e, n| (n, e)), &CsvOptions::default());
    assert_eq!((p.report.errors, p.report.accepted_layer), (0, true), "{}", p.report.to_text());
    assert!(p.report.notes.is_empty(), "{:?}", p.report.notes);
    assert_eq!(serde_json::to_value(&p.report).unwrap()["notes"], serde_json::json!([]));
    assert_same_places(city, p.city.as_ref().unwrap());
}

#[test]
fn a_csv_fitting_neither_way_is_still_an_error_and_explicit_columns_are_never_swapped() {
    let dir = tempfile::tempdir().unwrap();
    let world = common::tiny_world(dir.path()).load();
    let city = &world.city;
    let n = city.components.len() as u64;
    // Eastings with a zone prefix (40 557140.955: a 3° zone number in front), as some exports
    // write them: no way round lies in zone 40's area without the prefix.
    let p = import(city, &csv_4549(city, |e, n| (e + 40_000_000.0, n)), &CsvOptions::default());
    assert_eq!(p.report.counts.get(&IssueKind::OutsideCrsArea), Some(&n), "{}", p.report.to_text());
    assert!(!p.report.accepted_layer);
    assert!(p.report.notes.is_empty());
    // The GDAL order again, but the columns named the convention's way round on purpose: the
    // caller's word wins, every row is outside the area.
    let explicit = CsvOptions { x_column: Some("Y".into()), y_column: Some("X".into()) };
    let p = import(city, &csv_4549(city, |e, n| (e, n)), &explicit);
    assert_eq!(p.report.counts.get(&IssueKind::OutsideCrsArea), Some(&n), "{}", p.report.to_text());
    assert!(p.report.notes.is_empty());
}
