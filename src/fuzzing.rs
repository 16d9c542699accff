//! The readers of untrusted input, each fed raw bytes: the entry points of the fuzz targets
//! (`fuzz/`, see docs/fuzzing.md) and of their corpus regression test (tests/fuzz_corpus.rs).
//! Not an API: every function discards the reader's answer, `Ok` or `Err` alike; what matters
//! is that it returns (no panic, no overflow, no huge allocation, no hang).

use std::io::{Cursor, Write};
use std::sync::OnceLock;

use crate::ingest::{self, CsvOptions, Feature, FeatureSink, IngestError, SourceLayer};

/// The targets, by name: the directory names under `fuzz/corpus/` and `fuzz/regressions/`.
pub const TARGETS: &[&str] =
    &["geojson", "csv_layer", "shapefile", "shapefile_zip", "gpkg", "gpkg_wkb", "fgb", "crs", "rules", "calendar", "units", "cases", "pmtiles"];

/// The largest single allocation a reader may make on the fuzz inputs (they are kilobytes).
pub const MAX_ALLOCATION: usize = 256 << 20;

/// A global allocator for the fuzz targets and tests/fuzz_corpus.rs that refuses any single
/// allocation over [`MAX_ALLOCATION`]: a reader that sizes a buffer from what a tiny input
/// claims (a `.dbf` announcing 4 billion records) then aborts with "memory allocation of N
/// bytes failed" (a crash to libFuzzer). Without a sanitizer, Linux would grant such an
/// allocation lazily and libFuzzer's RSS limit would never see it.
pub struct CappedAllocator;

// SAFETY: every call is passed to the system allocator, or refused with a null pointer (an
// allocation failure to the caller) before reaching it.
unsafe impl std::alloc::GlobalAlloc for CappedAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION { std::ptr::null_mut() } else { unsafe { std::alloc::System.alloc(layout) } }
    }
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION { std::ptr::null_mut() } else { unsafe { std::alloc::System.alloc_zeroed(layout) } }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        if new_size > MAX_ALLOCATION { std::ptr::null_mut() } else { unsafe { std::alloc::System.realloc(ptr, layout, new_size) } }
    }
}

/// Feeds `data` to target `name`'s readers; `false` if there is no such target.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "geojson" => geojson(data),
        "csv_layer" => csv_layer(data),
        "shapefile" => shapefile(data),
        "shapefile_zip" => shapefile_zip(data),
        "gpkg" => gpkg(data),
        "gpkg_wkb" => gpkg_wkb(data),
        "fgb" => fgb(data),
        "crs" => crs(data),
        "rules" => rules(data),
        "calendar" => calendar(data),
        "units" => units(data),
        "cases" => cases(data),
        "pmtiles" => pmtiles(data),
        _ => return false,
    }
    true
}

/// Takes the features of a layer as the import does: each reprojected from the CRS the file
/// declares (or assumed degrees) to WGS84.
#[derive(Default)]
struct Reproject {
    reprojector: Option<Result<ingest::reproject::Reprojector, ()>>,
}

impl FeatureSink for Reproject {
    fn feature(&mut self, layer: &SourceLayer, mut feature: Feature) -> Result<(), IngestError> {
        let reprojector = self.reprojector.get_or_insert_with(|| {
            let resolved = ingest::reproject::resolve(layer.declared_crs.as_deref(), None, false).map_err(drop)?;
            ingest::reproject::Reprojector::new(&resolved, layer).map_err(drop)
        });
        match reprojector {
            Ok(r) => r.reproject(&mut feature),
            Err(()) => Err(IngestError::Stopped),
        }
    }
}

/// A layer file through [`ingest::stream_layer`] as `format`, reprojected.
fn layer(data: &[u8], format: ingest::Format) {
    let _ = ingest::stream_layer(data, Some(format), &CsvOptions::default(), &mut Reproject::default());
}

/// A GeoJSON FeatureCollection and newline-delimited GeoJSON (the same bytes as both), and the
/// format sniffing of uploads without a type.
pub fn geojson(data: &[u8]) {
    let _ = ingest::Format::sniff(data);
    layer(data, ingest::Format::GeoJson);
    layer(data, ingest::Format::GeoJsonLines);
}

/// A CSV layer of points (coordinate columns found by name).
pub fn csv_layer(data: &[u8]) {
    layer(data, ingest::Format::Csv);
}

/// The files of a Shapefile, zipped (stored, so that the fuzzer's mutations reach the
/// readers rather than the ZIP's checksums): `data` is the `.shp`, the `.dbf`, the `.prj` and
/// the `.cpg`, in that order, separated by [`PART_SEPARATOR`]; missing parts are left out of
/// the ZIP.
pub fn shapefile(data: &[u8]) {
    let zip = shapefile_parts_zip(data);
    let _ = ingest::shapefile::read_zip(&zip, ingest::shapefile::ZipLimits::for_zip_len(zip.len() as u64), &mut Reproject::default());
}

/// Separates the parts of a [`shapefile`] input.
pub const PART_SEPARATOR: &[u8] = b"--citygrid-part--";

/// The ZIP of a [`shapefile`] input.
pub fn shapefile_parts_zip(data: &[u8]) -> Vec<u8> {
    let mut parts = Vec::new();
    let mut rest = data;
    while parts.len() < 3 {
        match rest.windows(PART_SEPARATOR.len()).position(|w| w == PART_SEPARATOR) {
            Some(at) => {
                parts.push(&rest[..at]);
                rest = &rest[at + PART_SEPARATOR.len()..];
            }
            None => break,
        }
    }
    parts.push(rest);
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (part, ext) in parts.iter().zip(["shp", "dbf", "prj", "cpg"]) {
        zip.start_file(format!("layer.{ext}"), stored).expect("writing to memory");
        zip.write_all(part).expect("writing to memory");
    }
    zip.finish().expect("writing to memory").into_inner()
}

/// A zipped Shapefile upload as it arrives: the ZIP itself (entries, limits, inflating).
pub fn shapefile_zip(data: &[u8]) {
    layer(data, ingest::Format::Shapefile);
}

/// A GeoPackage upload (an SQLite database, copied to a temp file and opened read-only).
pub fn gpkg(data: &[u8]) {
    layer(data, ingest::Format::GeoPackage);
}

/// One GeoPackage geometry blob (header, envelope, WKB).
pub fn gpkg_wkb(data: &[u8]) {
    let _ = ingest::gpkg::blob_header(data);
    let _ = ingest::gpkg::geometry(data);
}

/// A FlatGeobuf file.
pub fn fgb(data: &[u8]) {
    layer(data, ingest::Format::FlatGeobuf);
}

/// CRS text as a `.prj`, a GeoJSON `crs` member or a `crs=` parameter (EPSG code, PROJ string,
/// WKT), and a few points through it both ways.
pub fn crs(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::crs::Crs::from_prj_wkt(&text);
    let _ = text.trim().parse::<crate::crs::datum::Datum>();
    if let Ok(crs) = crate::crs::Crs::parse(&text)
        && let Ok(t) = crs.transformer()
    {
        for (x, y) in [(120.6, 31.3), (500_000.0, 3_500_000.0), (40_500_000.0, 3_500_000.0), (0.0, 0.0), (1e300, -1e300)] {
            if let Ok((lon, lat)) = t.to_wgs84(x, y) {
                let _ = t.from_wgs84(lon, lat);
            }
            let _ = t.from_wgs84(x, y);
        }
    }
}

/// A responsibility list (rules CSV), parsed and validated against the tiny demo city.
pub fn rules(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = crate::routing::RuleSet::load(text, &tiny().city);
}

/// A calendar (TOML), and deadlines counted with it from a few dates.
pub fn calendar(data: &[u8]) {
    use crate::routing::{TimeLimit, WorkCalendar};
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = crate::routing::calendar::check_calendar_toml(text);
    let Ok(calendar) = WorkCalendar::from_toml(text) else { return };
    let _ = calendar.summary();
    for start in ["2026-01-05T09:30:00+08:00", "2026-10-01T23:59:59Z", "1900-02-28T12:00:00-11:00", "9999-12-30T18:00:00+08:00"] {
        let start = chrono::DateTime::parse_from_rfc3339(start).expect("a fixed time");
        for limit in ["1wh", "2000wh", "1wd", "250wd", "366cd"] {
            let _ = calendar.deadline(start, TimeLimit::parse(limit).expect("a fixed limit"));
        }
    }
}

/// A unit register (CSV).
pub fn units(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = crate::store::units_from_csv(text);
}

/// A PMTiles basemap file: the header and directory parsers on the raw bytes, then the file
/// opened as a basemap (header, root directory, metadata) and a few tiles read through its
/// leaf directories: the tile at the header's centre, the first tiles of its zooms.
pub fn pmtiles(data: &[u8]) {
    use crate::basemap::pmtiles::{parse_directory, parse_header};
    let _ = parse_header(data);
    let _ = parse_directory(data);
    let Ok(mut file) = tempfile::Builder::new().suffix(".pmtiles").tempfile() else { return };
    if file.write_all(data).is_err() {
        return;
    }
    let Ok(basemap) = crate::basemap::Basemap::open(file.path()) else { return };
    let (lo, hi) = (basemap.info.minzoom, basemap.info.maxzoom.min(basemap.info.minzoom.saturating_add(3)));
    for z in lo..=hi {
        let n = 1u32 << z.min(30);
        for (x, y) in [(0, 0), (n / 2, n / 2), (n - 1, n - 1)] {
            if let Ok(Some(tile)) = basemap.tile(z, x, y) {
                let _ = tile.encoding.decode(&tile.data, 1 << 20);
            }
        }
    }
}

/// A batch of cases (the same bytes as a JSON array, NDJSON and CSV), each case routed in the
/// tiny demo city.
pub fn cases(data: &[u8]) {
    use crate::http::routing::batch_line;
    use crate::routing::batch::{Batch, BatchFormat};
    let world = tiny();
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-23T10:00:00+08:00").expect("a fixed time");
    for format in [BatchFormat::Json, BatchFormat::Ndjson, BatchFormat::Csv] {
        let Ok(batch) = Batch::from_bytes(format, data) else { continue };
        for (i, case) in batch.cases().enumerate().take(64) {
            if let Ok(case) = case {
                let _ = batch_line(world, i, case, now);
            }
        }
    }
}

/// The world of the tiny demo city (seed 1), made once.
fn tiny() -> &'static crate::world::World {
    static TINY: OnceLock<crate::world::World> = OnceLock::new();
    TINY.get_or_init(|| {
        use crate::demo::{DemoSpec, Preset, generate};
        let demo = generate(&DemoSpec { preset: Preset::Tiny, components: None, seed: 1 }, &|_, _| {}).expect("the tiny demo");
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut store = crate::store::Store::open(dir.path()).expect("a store");
        store.save_city(&demo.meta(), &demo.city, Some(&demo.rules_csv), "fuzz", &|_, _| {}).expect("saving the tiny demo");
        let loaded = crate::store::Store::open(dir.path()).and_then(|s| s.load_city(&|_, _| {})).expect("loading the tiny demo");
        crate::world::World::new(loaded)
    })
}
