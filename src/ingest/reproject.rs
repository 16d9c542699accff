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

use super::{IngestError, IssueKind, SourceLayer};
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

/// Decides the layer's CRS by the rules in the module doc.
pub fn resolve(layer: &SourceLayer, given: Option<&str>, force: bool) -> Result<ResolvedCrs, IngestError> {
    let given = given.map(str::trim).filter(|g| !g.is_empty());
    let declared = layer.declared_crs.as_deref();
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
        (None, None) => {
            let metres = layer
                .features
                .iter()
                .filter_map(|f| f.geometry.as_ref())
                .flat_map(|g| g.coords_iter())
                .find(|c| !(c.x.abs() <= 180.0 && c.y.abs() <= 90.0));
            match metres {
                Some(c) => Err(IngestError::CrsRequired { x: c.x, y: c.y }),
                None => Ok(ResolvedCrs { crs: Crs::wgs84(), source: "assumed" }),
            }
        }
    }
}

/// Converts every feature's geometry to WGS84 lon/lat. A feature with a point the CRS cannot
/// take (outside its area: swapped axes, wrong zone) loses its geometry and gets the problem.
pub fn to_wgs84(layer: &mut SourceLayer, crs: &Crs) -> Result<(), IngestError> {
    let transformer = crs.transformer().map_err(|source| IngestError::UnknownCrs { text: crs.to_string(), source })?;
    // CSV columns X/Y in a northing-first projected CRS: X is the northing (csv_points docs).
    let swap = layer.csv_survey_xy && crs.axis_order() == AxisOrder::NorthEast && !crs.is_geographic();
    let identity = matches!(crs.datum_engine(), Some(Datum::Wgs84 | Datum::Cgcs2000));
    for feature in &mut layer.features {
        let Some(geometry) = feature.geometry.take() else { continue };
        let converted = geometry.try_map_coords(|c: Coord<f64>| -> Result<Coord<f64>, CrsError> {
            let (x, y) = if swap { (c.y, c.x) } else { (c.x, c.y) };
            if identity {
                return Ok(Coord { x, y });
            }
            transformer.to_wgs84(x, y).map(|(x, y)| Coord { x, y })
        });
        match converted {
            Ok(g) => feature.geometry = Some(g),
            Err(e) => {
                let kind = match e {
                    CrsError::OutsideArea { .. } => IssueKind::OutsideCrsArea,
                    _ => IssueKind::InvalidGeometry,
                };
                let hint = if kind == IssueKind::OutsideCrsArea && layer.format == super::Format::Csv {
                    " (swapped coordinate columns? see --x-column/--y-column)"
                } else {
                    ""
                };
                feature.problem = Some((kind, format!("{e}{hint}")));
            }
        }
    }
    Ok(())
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

    #[test]
    fn the_crs_comes_from_the_file_the_caller_or_the_degrees() {
        let degrees = layer(&[(120.6, 31.27)], None);
        assert_eq!(resolve(&degrees, None, false).unwrap().source, "assumed");
        let metres = layer(&[(557140.955, 3461065.011)], None);
        assert!(matches!(resolve(&metres, None, false), Err(IngestError::CrsRequired { .. })));
        assert_eq!(resolve(&metres, Some("EPSG:4549"), false).unwrap().source, "given");
        let declared = layer(&[(557140.955, 3461065.011)], Some("EPSG:4549"));
        assert_eq!(resolve(&declared, None, false).unwrap().crs.epsg(), Some(4549));
        assert_eq!(resolve(&declared, Some("epsg:4549"), false).unwrap().source, "given");
        let e = resolve(&declared, Some("EPSG:4548"), false).unwrap_err().to_string();
        assert!(e.contains("4549") && e.contains("4548"), "{e}");
        assert_eq!(resolve(&declared, Some("EPSG:4548"), true).unwrap().source, "forced");
        assert!(matches!(resolve(&degrees, Some("EPSG:99999"), false), Err(IngestError::UnknownCrs { .. })));
        let wgs = layer(&[(120.6, 31.27)], Some("EPSG:4326"));
        assert_eq!(resolve(&wgs, Some("cgcs2000"), false).unwrap().source, "given", "WGS84 ≡ CGCS2000");
    }

    #[test]
    fn gauss_kruger_points_convert_and_swapped_ones_are_outside_the_area() {
        // domain.md test vector: 120.6, 31.27 ↔ EPSG:4549 N 3,461,065.011 E 557,140.955.
        let crs = Crs::parse("EPSG:4549").unwrap();
        let mut l = layer(&[(557140.955, 3461065.011), (3461065.011, 557140.955)], None);
        to_wgs84(&mut l, &crs).unwrap();
        let Some(Geometry::Point(p)) = l.features[0].geometry else { panic!() };
        assert!((p.x() - 120.6).abs() < 1e-8 && (p.y() - 31.27).abs() < 1e-8, "{p:?}");
        assert_eq!(l.features[1].problem.as_ref().unwrap().0, IssueKind::OutsideCrsArea);
        // CSV X/Y columns in Gauss-Krüger: X is the northing.
        let mut l = layer(&[(3461065.011, 557140.955)], None);
        l.csv_survey_xy = true;
        to_wgs84(&mut l, &crs).unwrap();
        assert!(l.features[0].problem.is_none(), "{:?}", l.features[0].problem);
    }
}
