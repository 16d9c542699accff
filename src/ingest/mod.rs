//! Survey layers from GIS staff: reading, reprojection, field mapping, validation.
//!
//! The pipeline, one step per module, no HTTP anywhere:
//! 1. [`stream_layer`] ([`geojson`], [`csv_points`], [`fgb`], [`shapefile`], [`gpkg`]): a file →
//!    its [`Feature`]s, handed one at a time to a [`FeatureSink`] as they are read — geometry in
//!    the file's own CRS, attributes as text, index (0-based) and line (NDJSON, CSV) — and its
//!    header ([`SourceLayer`]: columns, the CRS the file declares). Neither the file nor its
//!    features are held whole in memory (no JSON tree of the document; a GeoPackage, an SQLite
//!    database, is copied to a temp file). [`read_layer`] collects them, for small files and tests.
//! 2. [`reproject`]: the CRS (declared, given, or assumed for degrees) and every feature to
//!    WGS84 lon/lat through [`crate::crs::Transformer`].
//! 3. [`fields`]: attribute names → [`crate::model::GridFields`] / [`crate::model::ComponentFields`]
//!    (our own names and the common Chinese ones).
//! 4. [`validate`]: the new [`City`](crate::model::City) (the new layer + the other current
//!    layer) through [`crate::model::CityBuilder`], the spatial checks against the grids it
//!    will be served with, the [`Policy`], and the [`Report`].
//!
//! [`validate::prepare`] runs steps 2–4 as the sink of step 1. Storing and switching is
//! [`crate::datasets::Datasets::import`] (a running server) or
//! [`crate::datasets::import_offline`] (the command line).

pub mod csv_points;
pub mod fgb;
pub mod fields;
pub mod geojson;
pub mod gpkg;
pub mod report;
pub mod reproject;
pub mod shapefile;
pub mod topology;
pub mod validate;
pub mod zones;

use std::io::{BufRead, BufReader, Read};

use geo_types::Geometry;
use serde::Serialize;

use crate::crs::CrsError;

pub use csv_points::CsvOptions;
pub use report::{Issue, IssueKind, Report, Severity};
pub use validate::{ImportOptions, Prepared, prepare};

/// Why a file could not be taken at all (as opposed to per-feature problems, which go to the
/// [`Report`]).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("unsupported format: {0}")]
    UnsupportedFormat(String),
    #[error("not a readable {format} file: {message}")]
    Unreadable { format: Format, message: String },
    #[error("CSV coordinate columns: {0}")]
    CsvColumns(String),
    #[error("unknown CRS {text:?}: {source}")]
    UnknownCrs { text: String, source: CrsError },
    #[error(
        "the file says its CRS is {declared} but {given} was given; give the file's CRS, or force \
         yours with --force-crs (HTTP: force_crs=true) if the file's declaration is wrong"
    )]
    CrsConflict { declared: String, given: String },
    #[error(
        "the coordinates are not degrees (e.g. {x}, {y}) and the file declares no CRS: give the \
         layer's CRS with --crs (HTTP: crs=), e.g. EPSG:4549 for CGCS2000 3-degree Gauss-Krüger CM 120E"
    )]
    CrsRequired { x: f64, y: f64 },
    #[error(
        "the GeoJSON \"crs\" member ({declared}) comes after the features, which were read as {read_as}: put \"crs\" \
         before \"features\", or give the layer's CRS (--crs, HTTP: crs=)"
    )]
    CrsAfterFeatures { declared: String, read_as: String },
    #[error("fields: {0}")]
    Fields(String),
    #[error("{0:?} is not a dataset that can be imported: the datasets are grids, components, zones, units, rules, calendar, city, staff")]
    UnknownLayer(String),
    #[error("reading the file: {0}")]
    Io(#[from] std::io::Error),
    /// A sink ended the reading early on purpose (see [`first_geometry`]); not a fault of the file.
    #[error("reading stopped early")]
    Stopped,
}

/// The file formats read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// A GeoJSON FeatureCollection (or a single Feature).
    GeoJson,
    /// Newline-delimited GeoJSON: one Feature per line (also RFC 8142 GeoJSON text sequences).
    GeoJsonLines,
    /// CSV of points with coordinate columns (components).
    Csv,
    FlatGeobuf,
    /// A zipped Shapefile (`.shp`, `.dbf`, optional `.prj`, `.cpg`, `.shx`), or a bare `.shp`
    /// with its siblings beside it (command line).
    Shapefile,
    /// An OGC GeoPackage (an SQLite database) holding one feature table.
    GeoPackage,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::GeoJson => "GeoJSON",
            Format::GeoJsonLines => "newline-delimited GeoJSON",
            Format::Csv => "CSV",
            Format::FlatGeobuf => "FlatGeobuf",
            Format::Shapefile => "Shapefile",
            Format::GeoPackage => "GeoPackage",
        })
    }
}

impl Format {
    /// From a file name's extension; `None` if it says nothing.
    pub fn from_extension(path: &std::path::Path) -> Result<Option<Format>, IngestError> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        Ok(match ext.as_str() {
            "geojson" | "json" => Some(Format::GeoJson),
            "geojsonl" | "geojsonseq" | "ndjson" | "jsonl" | "geojsons" => Some(Format::GeoJsonLines),
            "csv" | "txt" => Some(Format::Csv),
            "fgb" => Some(Format::FlatGeobuf),
            "zip" | "shp" => Some(Format::Shapefile),
            "gpkg" => Some(Format::GeoPackage),
            _ => None,
        })
    }

    /// From a `Content-Type` (parameters ignored). `Ok(None)`: a generic type
    /// (`application/octet-stream`, none) — sniff the bytes.
    pub fn from_content_type(content_type: Option<&str>) -> Result<Option<Format>, IngestError> {
        let Some(ct) = content_type else { return Ok(None) };
        let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        Ok(match essence.as_str() {
            "application/geo+json" | "application/json" | "application/vnd.geo+json" => Some(Format::GeoJson),
            "application/x-ndjson" | "application/geo+json-seq" | "application/x-geojsonl" | "application/jsonl" | "application/json-seq" => {
                Some(Format::GeoJsonLines)
            }
            "text/csv" => Some(Format::Csv),
            "application/flatgeobuf" | "application/x-flatgeobuf" => Some(Format::FlatGeobuf),
            "application/zip" | "application/x-zip-compressed" | "application/x-shapefile" => Some(Format::Shapefile),
            "application/geopackage+sqlite3" | "application/x-sqlite3" | "application/vnd.sqlite3" => Some(Format::GeoPackage),
            "application/octet-stream" | "" => None,
            other => {
                return Err(IngestError::UnsupportedFormat(format!(
                    "{other}: send application/geo+json, application/x-ndjson, text/csv, application/flatgeobuf, \
                     application/zip (a zipped Shapefile) or application/geopackage+sqlite3"
                )));
            }
        })
    }

    /// From the first bytes of the file: FlatGeobuf's magic, SQLite's (GeoPackage), a JSON object (one Feature on the
    /// first line → NDJSON, else GeoJSON), an RS character (GeoJSON text sequence), or text with
    /// a comma-separated first line (CSV).
    pub fn sniff(head: &[u8]) -> Option<Format> {
        if head.starts_with(b"fgb\x03") {
            return Some(Format::FlatGeobuf);
        }
        if head.starts_with(b"PK\x03\x04") {
            return Some(Format::Shapefile);
        }
        if head.starts_with(gpkg::SQLITE_MAGIC) {
            return Some(Format::GeoPackage);
        }
        let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
        let start = text.iter().position(|b| !b.is_ascii_whitespace())?;
        let text = &text[start..];
        match text[0] {
            0x1e => Some(Format::GeoJsonLines),
            b'{' => {
                let first_line = text.split(|&b| b == b'\n').next().unwrap_or(text);
                match serde_json::from_slice::<serde_json::Value>(first_line) {
                    Ok(v) if v.get("type").and_then(|t| t.as_str()) == Some("Feature") => Some(Format::GeoJsonLines),
                    _ => Some(Format::GeoJson),
                }
            }
            _ => {
                let first_line = text.split(|&b| b == b'\n').next().unwrap_or(text);
                let line = std::str::from_utf8(first_line).ok()?;
                (line.contains(',') && !line.contains('\0')).then_some(Format::Csv)
            }
        }
    }
}

/// One attribute-and-geometry record of a layer file.
#[derive(Clone, Debug)]
pub struct Feature {
    /// 0-based position in the file.
    pub index: u64,
    /// 1-based line (NDJSON, CSV), if the format has lines.
    pub line: Option<u64>,
    /// In the file's CRS after reading, WGS84 lon/lat after [`reproject`]; `None` when
    /// `problem` says why there is none.
    pub geometry: Option<Geometry<f64>>,
    /// A geometry the reader or the reprojection could not take (the feature is dropped).
    pub problem: Option<(IssueKind, String)>,
    /// Attribute values as text, indexed like [`SourceLayer::columns`] (shorter: the rest absent).
    pub values: Vec<Option<String>>,
}

impl Feature {
    /// The value of column `column`, trimmed; `None` if absent or empty.
    pub fn value(&self, column: usize) -> Option<&str> {
        self.values.get(column)?.as_deref().map(str::trim).filter(|v| !v.is_empty())
    }
}

/// A layer file as read: its attribute names, the CRS it declares, and — when collected
/// ([`collect`], [`read_layer`]) — its features; a streaming reader returns it without them.
#[derive(Clone, Debug)]
pub struct SourceLayer {
    pub format: Format,
    /// Attribute names in first-seen order.
    pub columns: Vec<String>,
    pub features: Vec<Feature>,
    /// The CRS the file declares (GeoJSON `crs` member, FlatGeobuf header, GeoPackage `gpkg_spatial_ref_sys`), as text for
    /// [`crate::crs::Crs::parse`].
    pub declared_crs: Option<String>,
    /// CSV only: the point columns are the surveyor's X/Y, so in a northing-first CRS
    /// (Gauss-Krüger) the first is the northing (see [`csv_points`]).
    pub csv_survey_xy: bool,
}

impl SourceLayer {
    pub(crate) fn new(format: Format) -> SourceLayer {
        SourceLayer { format, columns: Vec::new(), features: Vec::new(), declared_crs: None, csv_survey_xy: false }
    }
}

/// Where a reader hands each feature as soon as it is read, so that a file of a million
/// features is never held as a million features. `layer` is what is known of the file so far:
/// its format, its columns (all of this feature's; GeoJSON properties join as first seen) and
/// the CRS it declares (a GeoJSON `crs` member after the features is seen only at the end);
/// its `features` are empty. An `Err` stops the reading, and the reader returns it.
pub trait FeatureSink {
    fn feature(&mut self, layer: &SourceLayer, feature: Feature) -> Result<(), IngestError>;
}

/// Collects the features (tests, small layers).
impl FeatureSink for Vec<Feature> {
    fn feature(&mut self, _: &SourceLayer, feature: Feature) -> Result<(), IngestError> {
        self.push(feature);
        Ok(())
    }
}

/// Runs a streaming reader (`read` hands its features to the sink and returns the layer's
/// header) and collects its features into the returned [`SourceLayer`].
pub fn collect(read: impl FnOnce(&mut dyn FeatureSink) -> Result<SourceLayer, IngestError>) -> Result<SourceLayer, IngestError> {
    let mut features = Vec::new();
    let mut layer = read(&mut features)?;
    layer.features = features;
    Ok(layer)
}

/// The first geometry of a layer (`read` as for [`collect`]), reading no further than it;
/// `None` if no feature has one.
pub fn first_geometry(read: impl FnOnce(&mut dyn FeatureSink) -> Result<SourceLayer, IngestError>) -> Result<Option<Geometry<f64>>, IngestError> {
    struct First(Option<Geometry<f64>>);
    impl FeatureSink for First {
        fn feature(&mut self, _: &SourceLayer, feature: Feature) -> Result<(), IngestError> {
            match feature.geometry {
                Some(g) => {
                    self.0 = Some(g);
                    Err(IngestError::Stopped)
                }
                None => Ok(()),
            }
        }
    }
    let mut first = First(None);
    match read(&mut first) {
        Ok(_) | Err(IngestError::Stopped) => Ok(first.0),
        Err(e) => Err(e),
    }
}

/// Reads a layer file of `format` (or, if `None`, the format sniffed from its first bytes),
/// handing each feature to `sink` as it is read; returns the file's header (columns, declared
/// CRS) with no features.
pub fn stream_layer(reader: impl Read, format: Option<Format>, csv: &CsvOptions, sink: &mut dyn FeatureSink) -> Result<SourceLayer, IngestError> {
    let mut reader = BufReader::with_capacity(1 << 16, reader);
    let format = match format {
        Some(f) => f,
        None => {
            let head = reader.fill_buf()?;
            Format::sniff(head).ok_or_else(|| {
                IngestError::UnsupportedFormat(
                    "the content is none of GeoJSON, newline-delimited GeoJSON, CSV, FlatGeobuf, a zipped Shapefile or GeoPackage".into(),
                )
            })?
        }
    };
    match format {
        Format::GeoJson => geojson::read_collection(reader, sink),
        Format::GeoJsonLines => geojson::read_lines(reader, sink),
        Format::Csv => csv_points::read(reader, csv, sink),
        Format::FlatGeobuf => fgb::read(reader, sink),
        Format::Shapefile => shapefile::read(reader, sink),
        Format::GeoPackage => gpkg::read(reader, sink),
    }
}

/// [`stream_layer`] for a file on disk (a spooled upload, a file named on the command line):
/// a zipped Shapefile is read through [`shapefile::read_zip_file`], with the limits for the
/// file's size; other formats stream from the file.
pub fn stream_layer_file(file: std::fs::File, format: Option<Format>, csv: &CsvOptions, sink: &mut dyn FeatureSink) -> Result<SourceLayer, IngestError> {
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let zipped = match format {
        Some(f) => f == Format::Shapefile,
        None => reader.fill_buf()?.starts_with(b"PK\x03\x04"),
    };
    if zipped {
        // Read in place, at its own positions: the bytes sniffed above do not matter.
        let file = reader.into_inner();
        let limits = shapefile::ZipLimits::for_zip_len(file.metadata()?.len());
        return shapefile::read_zip_file(file, limits, sink);
    }
    stream_layer(reader, format, csv, sink)
}

/// Reads a whole layer file into memory: [`stream_layer`] collected.
pub fn read_layer(reader: impl Read, format: Option<Format>, csv: &CsvOptions) -> Result<SourceLayer, IngestError> {
    collect(|sink| stream_layer(reader, format, csv, sink))
}

/// An attribute value as text: integral numbers without a fraction (`1.0` → `1`), so codes and
/// levels stored as numbers read as their digits.
pub(crate) fn number_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 { format!("{}", n as i64) } else { n.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_sniffed_from_the_first_bytes() {
        assert_eq!(Format::sniff(b"fgb\x03fgb\x00rest"), Some(Format::FlatGeobuf));
        assert_eq!(Format::sniff(b"SQLite format 3\x00\x10\x00\x01\x01"), Some(Format::GeoPackage));
        assert_eq!(Format::sniff(b"\xEF\xBB\xBF {\"type\": \"FeatureCollection\", \"features\": ["), Some(Format::GeoJson));
        assert_eq!(Format::sniff(b"{\"type\":\"Feature\",\"geometry\":null,\"properties\":{}}\n{"), Some(Format::GeoJsonLines));
        assert_eq!(Format::sniff(b"\x1e{\"type\":\"Feature\""), Some(Format::GeoJsonLines));
        assert_eq!(Format::sniff("code,经度,纬度\n1,2,3".as_bytes()), Some(Format::Csv));
        assert_eq!(Format::sniff(b"PK\x03\x04\x14\x00"), Some(Format::Shapefile));
        assert_eq!(Format::sniff(b"\x00\x01\x02garbage"), None);
        assert_eq!(Format::sniff(b""), None);
    }

    #[test]
    fn content_types_and_extensions_name_formats() {
        assert_eq!(Format::from_content_type(Some("application/geo+json; charset=utf-8")).unwrap(), Some(Format::GeoJson));
        assert_eq!(Format::from_content_type(Some("application/x-ndjson")).unwrap(), Some(Format::GeoJsonLines));
        assert_eq!(Format::from_content_type(Some("application/octet-stream")).unwrap(), None);
        assert!(Format::from_content_type(Some("image/png")).is_err());
        assert_eq!(Format::from_content_type(Some("application/zip")).unwrap(), Some(Format::Shapefile));
        assert_eq!(Format::from_content_type(Some("application/x-zip-compressed")).unwrap(), Some(Format::Shapefile));
        assert_eq!(Format::from_extension("a/B.SHP".as_ref()).unwrap(), Some(Format::Shapefile));
        assert_eq!(Format::from_extension("a/b.zip".as_ref()).unwrap(), Some(Format::Shapefile));
        assert_eq!(Format::from_extension("a/b.FGB".as_ref()).unwrap(), Some(Format::FlatGeobuf));
        assert_eq!(Format::from_extension("a/城管.GPKG".as_ref()).unwrap(), Some(Format::GeoPackage));
        assert_eq!(Format::from_content_type(Some("application/geopackage+sqlite3")).unwrap(), Some(Format::GeoPackage));
        assert_eq!(Format::from_content_type(Some("application/x-sqlite3")).unwrap(), Some(Format::GeoPackage));
    }
}
