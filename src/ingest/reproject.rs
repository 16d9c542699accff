//! Which CRS a layer is in, and its features to WGS84 lon/lat through [`Transformer`].
//!
//! The rules ([`resolve`]):
//! - The file declares a CRS (GeoJSON `crs`, FlatGeobuf header) and none is given: the file's.
//! - One is given (`--crs`, `crs=`) and the file declares none: the given one.
//! - Both, and they are the same CRS: fine. They differ (or the file's cannot be read): an
//!   error naming both — unless forced (`--force-crs`, `force_crs=true`), then the given one
//!   wins (for files whose declaration is known to be wrong).
//! - Neither: coordinates that all look like degrees (|x| ≤ 180, |y| ≤ 90) are WGS84; anything
//!   else is an error asking for `--crs`.
//!
//! WGS84, CGCS2000, EPSG:4326 and EPSG:4490 count as the same CRS (they differ by ≪ 1 cm).

use geo::CoordsIter;
use geo::MapCoords;
use geo_types::Coord;

use super::{Feature, IngestError, IssueKind, SourceLayer};
use crate::crs::{AxisOrder, Crs, CrsError, Datum};

/// The CRS a layer's coordinates are read in, and where that came from (see [`super::Report::crs_source`]).
#[derive(Clone, Debug)]
pub struct ResolvedCrs {
    pub crs: Crs,
    pub source: &'static str,
}

fn parse(text: &str) -> Result<Crs, IngestError> {
    Crs::parse(text).map_err(|source| IngestError::UnknownCrs { text: text.to_owned(), source })
}

/// Whether two CRSs convert coordinates alike (same EPSG code, same PROJ definition, or both
/// lon/lat on WGS84 ≡ CGCS2000).
pub fn same_crs(a: &Crs, b: &Crs) -> bool {
    let wgs = |c: &Crs| matches!(c.datum_engine(), Some(Datum::Wgs84 | Datum::Cgcs2000));
    a == b
        || (a.epsg().is_some() && a.epsg() == b.epsg())
        || (a.proj_definition().is_some() && a.proj_definition() == b.proj_definition())
        || (wgs(a) && wgs(b))
}

/// Decides the layer's CRS by the rules in the module doc, from the CRS the file declares and
/// the one given. With neither, WGS84 is assumed, and [`Reprojector::reproject`] refuses the
/// file at its first coordinate that is not degrees.
pub fn resolve(declared: Option<&str>, given: Option<&str>, force: bool) -> Result<ResolvedCrs, IngestError> {
    let given = given.map(str::trim).filter(|g| !g.is_empty());
    match (given, declared) {
        (Some(g), None) => Ok(ResolvedCrs { crs: parse(g)?, source: "given" }),
        (Some(g), Some(d)) => {
            let given_crs = parse(g)?;
            match parse(d) {
                Ok(declared_crs) if same_crs(&given_crs, &declared_crs) => Ok(ResolvedCrs { crs: given_crs, source: "given" }),
                _ if force => Ok(ResolvedCrs { crs: given_crs, source: "forced" }),
                Ok(declared_crs) => Err(IngestError::CrsConflict { declared: declared_crs.to_string(), given: given_crs.to_string() }),
                Err(_) => Err(IngestError::CrsConflict { declared: d.to_owned(), given: given_crs.to_string() }),
            }
        }
        (None, Some(d)) => Ok(ResolvedCrs { crs: parse(d)?, source: "file" }),
        (None, None) => Ok(ResolvedCrs { crs: Crs::wgs84(), source: "assumed" }),
    }
}

/// Converts features' geometries from the layer's CRS to WGS84 lon/lat, one at a time.
///
/// CSV columns named just X/Y ([`SourceLayer::csv_survey_xy`]) in a projected CRS: the
/// surveyor's convention says which is the easting (in Gauss-Krüger X is the northing), but a
/// file written by GDAL (`ogr2ogr -lco GEOMETRY=AS_XY`) has X = easting. The order is decided by
/// the first point that lies in the CRS's area at least one way round: the convention if it
/// fits that way (also when it fits both ways), else the other way round, which
/// [`Reprojector::axis_note`] then reports. Points before it fit neither way and are errors in
/// either reading. Columns given explicitly (`--x-column`/`--y-column`) or named lon/lat,
/// easting/northing are never swapped.
pub struct Reprojector {
    transformer: crate::crs::Transformer,
    /// Read the first coordinate as the northing: CSV X/Y in a northing-first projected CRS
    /// (csv_points docs), unless the axis check found the data the other way round.
    swap: bool,
    /// CSV X/Y by name in a projected CRS, and no point has decided the order yet.
    axes_open: bool,
    /// The X/Y column names, for the note.
    xy_names: (String, String),
    /// Set when the axis check read X/Y against the convention.
    axis_note: Option<String>,
    /// Lon/lat on WGS84 or CGCS2000: nothing to convert.
    identity: bool,
    /// No CRS was declared or given: coordinates must be degrees.
    assumed: bool,
    csv: bool,
}

impl Reprojector {
    /// For `layer` (its format and CSV axis flag) in the CRS `resolved`.
    pub fn new(resolved: &ResolvedCrs, layer: &SourceLayer) -> Result<Reprojector, IngestError> {
        let crs = &resolved.crs;
        let transformer = crs.transformer().map_err(|source| IngestError::UnknownCrs { text: crs.to_string(), source })?;
        let identity = matches!(crs.datum_engine(), Some(Datum::Wgs84 | Datum::Cgcs2000));
        let survey_xy = layer.csv_survey_xy && !crs.is_geographic();
        Ok(Reprojector {
            transformer,
            swap: survey_xy && crs.axis_order() == AxisOrder::NorthEast,
            axes_open: survey_xy && !identity,
            xy_names: super::csv_points::survey_column_names(&layer.columns).unwrap_or_else(|| ("X".into(), "Y".into())),
            axis_note: None,
            identity,
            assumed: resolved.source == "assumed",
            csv: layer.format == super::Format::Csv,
        })
    }

    /// What the axis check decided, when it read CSV X/Y columns against the convention of the
    /// CRS (for the report); `None` when they were read by the convention or are not X/Y.
    pub fn axis_note(&self) -> Option<&str> {
        self.axis_note.as_deref()
    }

    /// The axis check (see [`Reprojector`]): the first coordinate of `geometry` in both orders.
    fn decide_axes(&mut self, geometry: &geo_types::Geometry<f64>, line: Option<u64>) {
        let Some(c) = geometry.coords_iter().next() else { return };
        let fits = |swap: bool| {
            let (x, y) = if swap { (c.y, c.x) } else { (c.x, c.y) };
            self.transformer.to_wgs84(x, y).is_ok()
        };
        match (fits(self.swap), fits(!self.swap)) {
            (true, _) => self.axes_open = false,
            (false, true) => {
                self.axes_open = false;
                self.swap = !self.swap;
                let crs = self.transformer.crs();
                let convention = match crs.axis_order() {
                    AxisOrder::NorthEast => "X = northing, the surveyor's order",
                    AxisOrder::EastNorth => "X = easting",
                };
                let (x, y) = &self.xy_names;
                let (read_x, read_y) = if self.swap { ("northing", "easting") } else { ("easting", "northing") };
                let at = line.map(|l| format!("line {l}: ")).unwrap_or_default();
                let gdal = if self.swap { "" } else { " (as GDAL writes X/Y)" };
                self.axis_note = Some(format!(
                    "csv_axes_swapped: columns {x}/{y} were read as {x} = {read_x}, {y} = {read_y}{gdal} — not by the convention \
                     of {crs} ({convention}) — because the first point ({at}{x} {}, {y} {}) lies in the CRS's area only that \
                     way round; name the columns with --x-column/--y-column to choose",
                    c.x, c.y
                ));
            }
            (false, false) => {} // an error either way; a later point decides
        }
    }

    /// Converts `feature`'s geometry to WGS84 lon/lat. A feature with a point the CRS cannot
    /// take (outside its area: swapped axes, wrong zone) loses its geometry and gets the
    /// problem. `Err` (the whole file): no CRS known and a coordinate that is not degrees.
    /// The first feature with a point fixes the order of CSV X/Y columns (see [`Reprojector`]).
    pub fn reproject(&mut self, feature: &mut Feature) -> Result<(), IngestError> {
        let Some(geometry) = feature.geometry.take() else { return Ok(()) };
        if self.assumed
            && let Some(c) = geometry.coords_iter().find(|c| !(c.x.abs() <= 180.0 && c.y.abs() <= 90.0))
        {
            return Err(IngestError::CrsRequired { x: c.x, y: c.y });
        }
        if self.axes_open {
            self.decide_axes(&geometry, feature.line);
        }
        let converted = geometry.try_map_coords(|c: Coord<f64>| -> Result<Coord<f64>, CrsError> {
            let (x, y) = if self.swap { (c.y, c.x) } else { (c.x, c.y) };
            if self.identity {
                return Ok(Coord { x, y });
            }
            self.transformer.to_wgs84(x, y).map(|(x, y)| Coord { x, y })
        });
        match converted {
            Ok(g) => feature.geometry = Some(g),
            Err(e) => {
                let kind = match e {
                    CrsError::OutsideArea { .. } => IssueKind::OutsideCrsArea,
                    _ => IssueKind::InvalidGeometry,
                };
                let hint = if kind == IssueKind::OutsideCrsArea && self.csv { " (swapped coordinate columns? see --x-column/--y-column)" } else { "" };
                feature.problem = Some((kind, format!("{e}{hint}")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{Feature, Format};
    use geo_types::{Geometry, Point};

    fn layer(points: &[(f64, f64)], declared: Option<&str>) -> SourceLayer {
        let mut l = SourceLayer::new(Format::GeoJson);
        l.declared_crs = declared.map(str::to_owned);
        l.features = points
            .iter()
            .enumerate()
            .map(|(i, &(x, y))| Feature { index: i as u64, line: None, geometry: Some(Geometry::Point(Point::new(x, y))), problem: None, values: vec![] })
            .collect();
        l
    }

    /// The CRS of `layer` and its features converted, as the import does it.
    fn convert(layer: &mut SourceLayer, given: Option<&str>, force: bool) -> Result<ResolvedCrs, IngestError> {
        let resolved = resolve(layer.declared_crs.as_deref(), given, force)?;
        let mut reprojector = Reprojector::new(&resolved, layer)?;
        let mut features = std::mem::take(&mut layer.features);
        for f in &mut features {
            reprojector.reproject(f)?;
        }
        layer.features = features;
        Ok(resolved)
    }

    #[test]
    fn the_crs_comes_from_the_file_the_caller_or_the_degrees() {
        let degrees = || layer(&[(120.6, 31.27)], None);
        assert_eq!(convert(&mut degrees(), None, false).unwrap().source, "assumed");
        let metres = || layer(&[(120.6, 31.27), (557140.955, 3461065.011)], None);
        assert!(matches!(convert(&mut metres(), None, false), Err(IngestError::CrsRequired { x: 557140.955, .. })));
        assert_eq!(convert(&mut metres(), Some("EPSG:4549"), false).unwrap().source, "given");
        let declared = || layer(&[(557140.955, 3461065.011)], Some("EPSG:4549"));
        assert_eq!(convert(&mut declared(), None, false).unwrap().crs.epsg(), Some(4549));
        assert_eq!(convert(&mut declared(), Some("epsg:4549"), false).unwrap().source, "given");
        let e = convert(&mut declared(), Some("EPSG:4548"), false).unwrap_err().to_string();
        assert!(e.contains("4549") && e.contains("4548"), "{e}");
        assert_eq!(convert(&mut declared(), Some("EPSG:4548"), true).unwrap().source, "forced");
        assert!(matches!(convert(&mut degrees(), Some("EPSG:99999"), false), Err(IngestError::UnknownCrs { .. })));
        let wgs = || layer(&[(120.6, 31.27)], Some("EPSG:4326"));
        assert_eq!(convert(&mut wgs(), Some("cgcs2000"), false).unwrap().source, "given", "WGS84 ≡ CGCS2000");
    }

    #[test]
    fn gauss_kruger_points_convert_and_swapped_ones_are_outside_the_area() {
        // domain.md test vector: 120.6, 31.27 ↔ EPSG:4549 N 3,461,065.011 E 557,140.955.
        let mut l = layer(&[(557140.955, 3461065.011), (3461065.011, 557140.955)], None);
        convert(&mut l, Some("EPSG:4549"), false).unwrap();
        let Some(Geometry::Point(p)) = l.features[0].geometry else { panic!() };
        assert!((p.x() - 120.6).abs() < 1e-8 && (p.y() - 31.27).abs() < 1e-8, "{p:?}");
        assert_eq!(l.features[1].problem.as_ref().unwrap().0, IssueKind::OutsideCrsArea);
        // CSV X/Y columns in Gauss-Krüger: X is the northing.
        let mut l = layer(&[(3461065.011, 557140.955)], None);
        l.csv_survey_xy = true;
        convert(&mut l, Some("EPSG:4549"), false).unwrap();
        assert!(l.features[0].problem.is_none(), "{:?}", l.features[0].problem);
    }

    /// A point converted to lon/lat, or the kind of its problem.
    type Converted = Result<(f64, f64), IssueKind>;

    /// CSV X/Y by name in `crs`: the points converted (or the problem) and the axis note.
    fn csv_xy(points: &[(f64, f64)], crs: &str) -> (Vec<Converted>, Option<String>) {
        let mut l = layer(points, None);
        l.format = Format::Csv;
        l.csv_survey_xy = true;
        l.columns = vec!["code".into(), "X".into(), "Y".into()];
        let resolved = resolve(None, Some(crs), false).unwrap();
        let mut reprojector = Reprojector::new(&resolved, &l).unwrap();
        let got = l
            .features
            .iter_mut()
            .map(|f| {
                reprojector.reproject(f).unwrap();
                match (&f.geometry, &f.problem) {
                    (Some(Geometry::Point(p)), None) => Ok((p.x(), p.y())),
                    (_, Some((kind, _))) => Err(*kind),
                    other => panic!("{other:?}"),
                }
            })
            .collect();
        (got, reprojector.axis_note().map(str::to_owned))
    }

    fn near(got: &Converted, lon: f64, lat: f64) -> bool {
        matches!(got, Ok((x, y)) if (x - lon).abs() < 1e-8 && (y - lat).abs() < 1e-8)
    }

    #[test]
    fn csv_x_y_in_gauss_kruger_are_read_the_way_round_the_data_fits() {
        // As GDAL writes them (ogr2ogr -lco GEOMETRY=AS_XY): X = easting, Y = northing.
        let (got, note) = csv_xy(&[(557140.955, 3461065.011), (557150.0, 3461070.0)], "EPSG:4549");
        assert!(near(&got[0], 120.6, 31.27), "{got:?}");
        assert!(got[1].is_ok(), "the order holds for the rows after the first: {got:?}");
        let note = note.expect("the swap is reported");
        assert!(note.starts_with("csv_axes_swapped: columns X/Y were read as X = easting, Y = northing"), "{note}");
        assert!(note.contains("(as GDAL writes X/Y)") && note.contains("EPSG:4549") && note.contains("557140.955"), "{note}");
        assert!(note.contains("--x-column"), "{note}");
        // The survey convention (X = northing) is still read as such, with no note.
        let (got, note) = csv_xy(&[(3461065.011, 557140.955)], "EPSG:4549");
        assert!(near(&got[0], 120.6, 31.27), "{got:?}");
        assert_eq!(note, None);
        // Fitting neither way round (a point of another zone): an error, as before, no note.
        let (got, note) = csv_xy(&[(3461065.011, 257140.955), (257140.955, 3461065.011)], "EPSG:4549");
        assert_eq!(got, vec![Err(IssueKind::OutsideCrsArea); 2]);
        assert_eq!(note, None);
        // A first row that fits neither way does not decide; the next one does, and the
        // order then holds: a later row in the convention order is outside the area.
        let (got, note) = csv_xy(&[(1.0, 2.0), (557140.955, 3461065.011), (3461065.011, 557140.955)], "EPSG:4549");
        assert_eq!(got[0], Err(IssueKind::OutsideCrsArea));
        assert!(near(&got[1], 120.6, 31.27), "{got:?}");
        assert_eq!(got[2], Err(IssueKind::OutsideCrsArea));
        assert!(note.is_some());
    }

    #[test]
    fn csv_x_y_in_an_easting_first_crs_swap_too_and_other_columns_never_do() {
        // UTM 51N (X = easting by convention): a northing-first file is read the other way round.
        let gk = Crs::parse("EPSG:32651").unwrap();
        let (e, n) = gk.from_wgs84(121.47, 31.23).unwrap();
        let (got, note) = csv_xy(&[(n, e)], "EPSG:32651");
        assert!(near(&got[0], 121.47, 31.23), "{got:?}");
        let note = note.unwrap();
        assert!(note.contains("read as X = northing, Y = easting — not") && note.contains("(X = easting)"), "{note}");
        let (got, note) = csv_xy(&[(e, n)], "EPSG:32651");
        assert!(near(&got[0], 121.47, 31.23) && note.is_none(), "{got:?}");
        // Columns given explicitly (or named easting/northing): as given, never swapped.
        let mut l = layer(&[(557140.955, 3461065.011)], None);
        l.format = Format::Csv;
        let reprojector = &mut Reprojector::new(&resolve(None, Some("EPSG:4549"), false).unwrap(), &l).unwrap();
        reprojector.reproject(&mut l.features[0]).unwrap();
        assert_eq!(l.features[0].problem.as_ref().map(|p| p.0), None, "easting first, as the columns say");
        let mut l = layer(&[(3461065.011, 557140.955)], None);
        l.format = Format::Csv;
        let reprojector = &mut Reprojector::new(&resolve(None, Some("EPSG:4549"), false).unwrap(), &l).unwrap();
        reprojector.reproject(&mut l.features[0]).unwrap();
        assert_eq!(l.features[0].problem.as_ref().map(|p| p.0), Some(IssueKind::OutsideCrsArea));
        assert!(reprojector.axis_note().is_none());
    }
}
