//! CSV of points (components): a header row, one point per row from two coordinate columns.
//!
//! Which column is which — the classic swapped-axis bug:
//! - `--x-column` / `--y-column` (HTTP `x_column` / `y_column`) name the **easting / longitude**
//!   and the **northing / latitude** column, always, whatever the CRS.
//! - Without them, columns are recognised by name (case-insensitive): `lon lng long longitude
//!   经度 easting east 东坐标` are the easting/longitude, `lat latitude 纬度 northing north
//!   北坐标` the northing/latitude.
//! - Columns named just `x` / `y` (or `X坐标` / `Y坐标`) follow the surveyor's convention of the
//!   CRS: in a northing-first CRS such as CGCS2000 Gauss-Krüger EPSG:4491–4554, **X is the
//!   northing** and Y the easting (as the EPSG registry and Chinese survey sheets have it); in
//!   every other CRS (and in degrees) x is the easting/longitude — unless the data says
//!   otherwise: in a projected CRS, the first point that lies in the CRS's area at least one
//!   way round decides. If it fits only the other way round (a CSV written by GDAL,
//!   `ogr2ogr -lco GEOMETRY=AS_XY`, has X = easting), the file is read that way and the
//!   report's `notes` say so (`csv_axes_swapped`); if it fits both ways, the convention holds
//!   (see [`super::reproject::Reprojector`]). Rows that fit neither way are reported as outside
//!   the CRS's area, never silently moved.
//! - Two candidates for one axis, or both lon/lat-style and x/y-style columns, are ambiguous:
//!   an error asks for `--x-column` / `--y-column`.

use std::io::Read;

use geo_types::{Geometry, Point};

use super::{Feature, FeatureSink, Format, IngestError, IssueKind, SourceLayer};

/// How to find the coordinate columns of a CSV.
#[derive(Clone, Debug, Default)]
pub struct CsvOptions {
    /// The easting/longitude column (header name).
    pub x_column: Option<String>,
    /// The northing/latitude column (header name).
    pub y_column: Option<String>,
}

const EAST_NAMES: &[&str] = &["lon", "lng", "long", "longitude", "经度", "easting", "east", "东坐标"];
const NORTH_NAMES: &[&str] = &["lat", "latitude", "纬度", "northing", "north", "北坐标"];
const SURVEY_X_NAMES: &[&str] = &["x", "x坐标"];
const SURVEY_Y_NAMES: &[&str] = &["y", "y坐标"];

/// Which columns hold the point, and in which order they are read.
#[derive(Debug, PartialEq, Eq)]
struct Columns {
    first: usize,
    second: usize,
    /// `first`/`second` are the surveyor's X/Y (see the module doc), not easting/northing.
    survey_xy: bool,
}

fn find_columns(headers: &[String], options: &CsvOptions) -> Result<Columns, IngestError> {
    let norm = |s: &str| s.trim().to_lowercase();
    let position = |name: &str| -> Result<usize, IngestError> {
        headers
            .iter()
            .position(|h| norm(h) == norm(name))
            .ok_or_else(|| IngestError::CsvColumns(format!("there is no column {name:?}; the columns are {}", headers.join(", "))))
    };
    match (&options.x_column, &options.y_column) {
        (Some(x), Some(y)) => return Ok(Columns { first: position(x)?, second: position(y)?, survey_xy: false }),
        (None, None) => {}
        _ => return Err(IngestError::CsvColumns("give both --x-column (easting/longitude) and --y-column (northing/latitude)".into())),
    }
    let matching = |names: &[&str]| -> Vec<usize> { headers.iter().enumerate().filter(|(_, h)| names.contains(&norm(h).as_str())).map(|(i, _)| i).collect() };
    let (east, north, sx, sy) = (matching(EAST_NAMES), matching(NORTH_NAMES), matching(SURVEY_X_NAMES), matching(SURVEY_Y_NAMES));
    let names = |idx: &[usize]| idx.iter().map(|&i| headers[i].as_str()).collect::<Vec<_>>().join(", ");
    let ambiguous =
        |what: String| IngestError::CsvColumns(format!("{what}: name the easting/longitude and northing/latitude columns with --x-column and --y-column"));
    let lonlat_style = !east.is_empty() || !north.is_empty();
    let survey_style = !sx.is_empty() || !sy.is_empty();
    if lonlat_style && survey_style {
        return Err(ambiguous(format!(
            "both {} and {} look like coordinate columns",
            names(&[east.as_slice(), north.as_slice()].concat()),
            names(&[sx.as_slice(), sy.as_slice()].concat())
        )));
    }
    let (a, b, survey_xy) = if lonlat_style { (east, north, false) } else { (sx, sy, true) };
    match (a.as_slice(), b.as_slice()) {
        ([a], [b]) => Ok(Columns { first: *a, second: *b, survey_xy }),
        ([], []) => Err(IngestError::CsvColumns(format!(
            "no coordinate columns found among {} (expected lon/lat, 经度/纬度, easting/northing or x/y); \
             name them with --x-column and --y-column",
            headers.join(", ")
        ))),
        (a, b) if a.len() > 1 || b.len() > 1 => Err(ambiguous(format!("several candidates for one axis ({})", names(&[a, b].concat())))),
        (a, b) => Err(ambiguous(format!("only one coordinate column found ({})", names(&[a, b].concat())))),
    }
}

/// The header names of the X and Y columns when the point columns are the surveyor's X/Y found
/// by name (what [`read`] sets [`SourceLayer::csv_survey_xy`] for), for messages.
pub(super) fn survey_column_names(headers: &[String]) -> Option<(String, String)> {
    let c = find_columns(headers, &CsvOptions::default()).ok().filter(|c| c.survey_xy)?;
    Some((headers[c.first].clone(), headers[c.second].clone()))
}

/// Reads a CSV of points (UTF-8, a BOM is fine). A row whose coordinates are not two finite
/// numbers is a feature with a geometry problem.
pub fn read(reader: impl Read, options: &CsvOptions, sink: &mut dyn FeatureSink) -> Result<SourceLayer, IngestError> {
    let format = Format::Csv;
    let bad = |message: String| IngestError::Unreadable { format, message };
    let mut csv = ::csv::ReaderBuilder::new().flexible(true).from_reader(reader);
    let headers: Vec<String> = csv
        .headers()
        .map_err(|e| bad(format!("the header row: {e} (save the file as UTF-8)")))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').trim().to_owned())
        .collect();
    let columns = find_columns(&headers, options)?;
    let mut layer = SourceLayer::new(format);
    layer.columns = headers;
    layer.csv_survey_xy = columns.survey_xy;
    let mut record = ::csv::StringRecord::new();
    let mut index = 0u64;
    loop {
        let more = csv.read_record(&mut record).map_err(|e| bad(format!("{e} (save the file as UTF-8)")))?;
        if !more {
            break;
        }
        if record.iter().all(|v| v.trim().is_empty()) {
            continue;
        }
        let line = record.position().map(|p| p.line());
        let number = |i: usize| -> Result<f64, String> {
            let v = record.get(i).unwrap_or("").trim();
            match v.parse::<f64>() {
                Ok(n) if n.is_finite() => Ok(n),
                _ => Err(format!("column {}: {v:?} is not a finite number", layer.columns[i])),
            }
        };
        let (geometry, problem) = match (number(columns.first), number(columns.second)) {
            (Ok(a), Ok(b)) => (Some(Geometry::Point(Point::new(a, b))), None),
            (Err(e), _) | (_, Err(e)) => (None, Some((IssueKind::InvalidGeometry, e))),
        };
        let values = record.iter().map(|v| Some(v.to_owned())).collect();
        sink.feature(&layer, Feature { index, line, geometry, problem, values })?;
        index += 1;
    }
    Ok(layer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(names: &[&str], options: &CsvOptions) -> Result<Columns, IngestError> {
        find_columns(&names.iter().map(|s| s.to_string()).collect::<Vec<_>>(), options)
    }

    #[test]
    fn coordinate_columns_are_found_by_name_or_given() {
        let none = CsvOptions::default();
        assert_eq!(cols(&["code", "经度", "纬度"], &none).unwrap(), Columns { first: 1, second: 2, survey_xy: false });
        assert_eq!(cols(&["Latitude", "Longitude"], &none).unwrap(), Columns { first: 1, second: 0, survey_xy: false });
        assert_eq!(cols(&["X", "Y", "code"], &none).unwrap(), Columns { first: 0, second: 1, survey_xy: true });
        let given = CsvOptions { x_column: Some("E".into()), y_column: Some("N".into()) };
        assert_eq!(cols(&["N", "E"], &given).unwrap(), Columns { first: 1, second: 0, survey_xy: false });
        for (names, needle) in [
            (&["lon", "lat", "x", "y"][..], "--x-column"),
            (&["lon", "lng", "lat"][..], "several"),
            (&["code", "name"][..], "no coordinate columns"),
            (&["lon", "code"][..], "only one"),
        ] {
            let e = cols(names, &none).unwrap_err().to_string();
            assert!(e.contains(needle), "{names:?}: {e}");
        }
        assert!(cols(&["a", "b"], &given).unwrap_err().to_string().contains("\"E\""));
    }

    #[test]
    fn rows_become_points_and_bad_numbers_are_feature_problems() {
        let text = "\u{feff}code,lat,lon\n1,31.2,120.5\n,,\n2,NaN,120.6\n3,,120.7\n";
        let layer = crate::ingest::collect(|s| read(text.as_bytes(), &CsvOptions::default(), s)).unwrap();
        assert_eq!(layer.columns, ["code", "lat", "lon"]);
        assert_eq!(layer.features.len(), 3);
        assert_eq!(layer.features[0].geometry, Some(Geometry::Point(Point::new(120.5, 31.2))));
        assert_eq!((layer.features[1].line, layer.features[1].value(0)), (Some(4), Some("2")));
        assert!(layer.features[1].problem.as_ref().unwrap().1.contains("NaN"));
        assert!(layer.features[2].geometry.is_none());
    }
}
