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

use geo::MapCoords;
use geo::CoordsIter;
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
pub struct Reprojector {
    transformer: crate::crs::Transformer,
    /// CSV columns X/Y in a northing-first projected CRS: X is the northing (csv_points docs).
    swap: bool,
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
        Ok(Reprojector {
            transformer,
            swap: layer.csv_survey_xy && crs.axis_order() == AxisOrder::NorthEast && !crs.is_geographic(),
            identity: matches!(crs.datum_engine(), Some(Datum::Wgs84 | Datum::Cgcs2000)),
            assumed: resolved.source == "assumed",
            csv: layer.format == super::Format::Csv,
        })
    }

    /// Converts `feature`'s geometry to WGS84 lon/lat. A feature with a point the CRS cannot
    /// take (outside its area: swapped axes, wrong zone) loses its geometry and gets the
    /// problem. `Err` (the whole file): no CRS known and a coordinate that is not degrees.
    pub fn reproject(&self, feature: &mut Feature) -> Result<(), IngestError> {
        let Some(geometry) = feature.geometry.take() else { return Ok(()) };
        if self.assumed {
            if let Some(c) = geometry.coords_iter().find(|c| !(c.x.abs() <= 180.0 && c.y.abs() <= 90.0)) {
                return Err(IngestError::CrsRequired { x: c.x, y: c.y });
            }
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
        let reprojector = Reprojector::new(&resolved, layer)?;
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
}
