//! Every input of the fuzz corpus (`fuzz/corpus/<target>/`, the seeds) and every input that once
//! crashed a reader (`fuzz/regressions/<target>/`) fed to the same reader functions as the fuzz
//! targets (`citygrid::fuzzing`), without a fuzzer: each must come back (an answer or a clean
//! error), with no panic and no single allocation over 256 MiB (the allocator of this test
//! binary refuses those, which aborts it: see docs/fuzzing.md).

use std::path::{Path, PathBuf};

use citygrid::fuzzing::{self, TARGETS};

/// No single allocation over 256 MiB (`fuzzing::MAX_ALLOCATION`), as in the fuzz targets.
#[global_allocator]
static ALLOCATOR: fuzzing::CappedAllocator = fuzzing::CappedAllocator;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `fuzz/<kind>/<target>/`, sorted (none if the directory is absent).
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(fuzz_dir().join(kind).join(target)) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

/// Feeds every file of `fuzz/<kind>/*/` to its target; the names of those that panicked.
fn replay(kind: &str) -> (usize, Vec<String>) {
    let (mut count, mut panicked) = (0, Vec::new());
    for target in TARGETS {
        for file in inputs(kind, target) {
            let data = std::fs::read(&file).unwrap();
            count += 1;
            if std::panic::catch_unwind(|| fuzzing::run(target, &data)).is_err() {
                panicked.push(file.display().to_string());
            }
        }
    }
    (count, panicked)
}

#[test]
fn every_seed_of_the_fuzz_corpus_reads_without_a_panic() {
    let (count, panicked) = replay("corpus");
    assert!(panicked.is_empty(), "these seeds made a reader panic: {panicked:#?}");
    // Every target has seeds: a target without any would be fuzzed from nothing.
    for target in TARGETS {
        assert!(!inputs("corpus", target).is_empty(), "fuzz/corpus/{target}/ has no seed");
    }
    assert!(count >= TARGETS.len());
}

#[test]
fn every_input_that_once_crashed_a_reader_now_reads_without_a_panic() {
    let (_, panicked) = replay("regressions");
    assert!(panicked.is_empty(), "these inputs of fuzz/regressions/ make a reader panic again: {panicked:#?}");
}

#[test]
fn the_corpus_and_regression_directories_are_named_after_targets() {
    for kind in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(kind)) else { continue };
        for entry in entries {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(TARGETS.contains(&name.as_str()), "fuzz/{kind}/{name}/ is no fuzz target (targets: {TARGETS:?})");
        }
    }
    for target in TARGETS {
        assert!(fuzz_dir().join("fuzz_targets").join(format!("{target}.rs")).is_file(), "fuzz/fuzz_targets/{target}.rs is missing");
    }
}

#[test]
fn a_shapefile_input_is_its_parts_zipped() {
    // The `shapefile` target's framing: .shp, .dbf, .prj, .cpg separated by PART_SEPARATOR.
    let data = [b"shp".as_slice(), b"dbf", b"prj"].join(fuzzing::PART_SEPARATOR);
    let zip = fuzzing::shapefile_parts_zip(&data);
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let names: Vec<String> = (0..archive.len()).map(|i| archive.by_index(i).unwrap().name().to_owned()).collect();
    assert_eq!(names, ["layer.shp", "layer.dbf", "layer.prj"]);
    let mut dbf = String::new();
    std::io::Read::read_to_string(&mut archive.by_name("layer.dbf").unwrap(), &mut dbf).unwrap();
    assert_eq!(dbf, "dbf");
}

/// Writes the FlatGeobuf seeds of fuzz/corpus/fgb/ (the other binary seeds come from
/// fuzz/make_seeds.py): `cargo test --test fuzz_corpus -- --ignored write_fgb_seeds`.
#[test]
#[ignore = "writes the FlatGeobuf seeds; run by hand"]
fn write_fgb_seeds() {
    use flatgeobuf::{ColumnType, FgbCrs, FgbWriter, FgbWriterOptions, GeometryType};
    use geozero::{ColumnValue, PropertyProcessor};
    let dir = fuzz_dir().join("corpus").join("fgb");
    std::fs::create_dir_all(&dir).unwrap();
    let ring = vec![(557000.0, 3461000.0), (557100.0, 3461000.0), (557100.0, 3461100.0), (557000.0, 3461000.0)];
    let square = geo_types::Polygon::new(geo_types::LineString::from(ring), vec![]);
    for (name, index, code, geometry) in
        [("grids-gk-indexed.fgb", true, 4549, GeometryType::MultiPolygon), ("points-wgs84.fgb", false, 4326, GeometryType::Point)]
    {
        let options = FgbWriterOptions { write_index: index, crs: FgbCrs { org: Some("EPSG"), code, ..Default::default() }, ..Default::default() };
        let mut fgb = FgbWriter::create_with_options("layer", geometry, options).unwrap();
        fgb.add_column("网格编码", ColumnType::String, |_, _| {});
        fgb.add_column("层级", ColumnType::Int, |_, _| {});
        fgb.add_column("面积", ColumnType::Double, |_, _| {});
        for i in 0..3 {
            let g: geo_types::Geometry<f64> = match geometry {
                GeometryType::Point => geo_types::Point::new(120.6 + f64::from(i) * 0.01, 31.3).into(),
                _ => geo_types::MultiPolygon(vec![square.clone()]).into(),
            };
            fgb.add_feature_geom(g, |feat| {
                feat.property(0, "网格编码", &ColumnValue::String(&format!("3205090010010{i}"))).unwrap();
                feat.property(1, "层级", &ColumnValue::Int(4)).unwrap();
                feat.property(2, "面积", &ColumnValue::Double(1.5)).unwrap();
            })
            .unwrap();
        }
        let mut out = Vec::new();
        fgb.write(&mut out).unwrap();
        std::fs::write(dir.join(name), out).unwrap();
    }
}

/// The inputs of fuzz/regressions/ get the readers' clear errors, not just no panic.
#[test]
fn the_regressions_are_refused_with_clear_errors() {
    use citygrid::ingest::{Format, first_geometry, shapefile, stream_layer};
    let bytes = |target: &str, name: &str| std::fs::read(fuzz_dir().join("regressions").join(target).join(name)).unwrap();
    // Read through (every feature of these has no geometry), not collected.
    let layer_error = |target: &str, name: &str, format: Format| {
        let data = bytes(target, name);
        first_geometry(|sink| stream_layer(data.as_slice(), Some(format), &Default::default(), sink)).unwrap_err().to_string()
    };
    let crs_error = |name: &str| citygrid::crs::Crs::parse(&String::from_utf8_lossy(&bytes("crs", name))).unwrap_err().to_string();
    for (got, want) in [
        (layer_error("fgb", "feature-claims-4-gib.fgb", Format::FlatGeobuf), "4294967280 bytes long, more than the limit"),
        (layer_error("gpkg", "view-recursive-cte-never-ends.gpkg", Format::GeoPackage), "a view that never ends"),
        (layer_error("gpkg", "view-sorted-infinite-cte.gpkg", Format::GeoPackage), "a view that never ends"),
        (crs_error("wkt-nested-30000-deep.prj"), "nested more than 32 deep"),
        (crs_error("proj-string-degree-sign.txt"), "is not ASCII"),
        (crs_error("proj-string-non-ascii-in-angle.txt"), "is not ASCII"),
    ] {
        assert!(got.contains(want), "{got:?} should say {want:?}");
    }
    let zip = fuzzing::shapefile_parts_zip(&bytes("shapefile", "polygon-claims-2-billion-points.parts"));
    let limits = shapefile::ZipLimits::for_zip_len(zip.len() as u64);
    let got = citygrid::ingest::collect(|sink| shapefile::read_zip(&zip, limits, sink)).unwrap_err().to_string();
    assert!(got.contains("shape 0: its counts of parts and points need 34359738400 bytes but the record has 816"), "{got}");
}
