//! The coordinate reference systems of the OGC API (Part 2, "CRS by reference"): their URIs,
//! which ones a city offers, and coordinates in each one's own axis order.
//!
//! The axis order is the CRS definition's, as Part 2 and the OGC axis order policy want it:
//! CRS84 (the default) and GCJ-02 / BD-09 are longitude, latitude; EPSG:4326 and EPSG:4490 are
//! latitude, longitude; the CGCS2000 Gauss-Krüger CRSs EPSG:4491–4554 are northing (X),
//! easting (Y); Web Mercator EPSG:3857 is easting, northing. The same order applies to `bbox`
//! with `bbox-crs` and to the coordinates of the features with `crs`.

use geo_types::{Coord, Rect};
use serde_json::json;

use crate::crs::{AxisOrder, Crs, CrsError, Datum};
use crate::http::error::ApiError;

/// OGC's URI of WGS 84 longitude/latitude: the default of every request.
pub const CRS84: &str = "http://www.opengis.net/def/crs/OGC/1.3/CRS84";
/// Prefix of EPSG CRS URIs.
pub const EPSG_PREFIX: &str = "http://www.opengis.net/def/crs/EPSG/0/";
/// GCJ-02 (AMap, Tencent) has no official URI: this one is citygrid's own identifier (it names,
/// it does not resolve). Longitude, latitude.
pub const GCJ02: &str = "http://citygrid.local/crs/gcj02";
/// BD-09 (Baidu), likewise citygrid's own identifier. Longitude, latitude.
pub const BD09: &str = "http://citygrid.local/crs/bd09";

/// Gauss-Krüger codes of the built-in engine (CGCS2000, 6° and 3° zones, with and without the
/// zone number in the false easting).
const GAUSS_KRUGER: std::ops::RangeInclusive<u32> = 4491..=4554;

/// One CRS the API can answer in.
#[derive(Clone, Debug)]
pub struct OgcCrs {
    /// Its URI, as the `crs` lists and the `Content-Crs` header give it.
    pub uri: String,
    engine: Engine,
    /// The CRS's first axis is the northing (latitude).
    north_first: bool,
}

#[derive(Clone, Debug)]
enum Engine {
    /// Longitude/latitude in one of citygrid's datums.
    Datum(Datum),
    /// A projected CRS (easting, northing in metres).
    Projected(Crs),
}

impl PartialEq for OgcCrs {
    fn eq(&self, other: &OgcCrs) -> bool {
        self.uri == other.uri
    }
}

impl OgcCrs {
    /// WGS 84 longitude/latitude.
    pub fn crs84() -> OgcCrs {
        OgcCrs { uri: CRS84.to_owned(), engine: Engine::Datum(Datum::Wgs84), north_first: false }
    }

    /// A lon/lat datum without an EPSG code (GCJ-02, BD-09).
    pub fn datum(datum: Datum) -> Option<OgcCrs> {
        let uri = match datum {
            Datum::Gcj02 => GCJ02,
            Datum::Bd09 => BD09,
            Datum::Wgs84 | Datum::Cgcs2000 => return None,
        };
        Some(OgcCrs { uri: uri.to_owned(), engine: Engine::Datum(datum), north_first: false })
    }

    /// An EPSG CRS the built-in engine knows, in its EPSG axis order.
    pub fn epsg(code: u32) -> Result<OgcCrs, CrsError> {
        let crs = Crs::from_epsg(code)?;
        let north_first = crs.axis_order() == AxisOrder::NorthEast;
        let engine = match crs.datum_engine() {
            Some(datum) => Engine::Datum(datum),
            None if crs.is_geographic() => return Err(CrsError::UnknownEpsg(code)),
            None => Engine::Projected(crs),
        };
        Ok(OgcCrs { uri: format!("{EPSG_PREFIX}{code}"), engine, north_first })
    }

    /// The EPSG code, if the URI is an EPSG one.
    #[cfg(test)]
    pub fn epsg_code(&self) -> Option<u32> {
        self.uri.strip_prefix(EPSG_PREFIX).and_then(|c| c.parse().ok())
    }

    /// WGS84 lon/lat itself, in lon/lat order: CRS84 (nothing to convert).
    pub fn is_crs84(&self) -> bool {
        self.uri == CRS84
    }

    /// Lon/lat on the WGS84 ≡ CGCS2000 datum (CRS84, EPSG:4326, EPSG:4490): a box in it is a
    /// lon/lat box.
    pub fn is_wgs84_lonlat(&self) -> bool {
        matches!(self.engine, Engine::Datum(Datum::Wgs84 | Datum::Cgcs2000))
    }

    /// A lon/lat CRS (degrees), as opposed to a projected one (metres).
    pub fn is_geographic(&self) -> bool {
        matches!(self.engine, Engine::Datum(_))
    }

    /// The first axis is the northing (latitude).
    pub fn north_first(&self) -> bool {
        self.north_first
    }

    /// The area where its conversions work (lon/lat, with the engine's margin).
    pub fn area(&self) -> crate::crs::Area {
        match &self.engine {
            Engine::Datum(_) => crate::crs::Area::WORLD,
            Engine::Projected(crs) => crs.area(),
        }
    }

    /// WGS84 (lon, lat) → (easting, northing), or (lon, lat) of a datum.
    pub fn east_north(&self, lon: f64, lat: f64) -> Result<(f64, f64), CrsError> {
        match &self.engine {
            Engine::Datum(d) => Ok(d.from_wgs84(lon, lat)),
            Engine::Projected(crs) => crs.from_wgs84(lon, lat),
        }
    }

    /// (easting, northing) or (lon, lat) in this CRS → WGS84 (lon, lat).
    pub fn to_wgs84(&self, east: f64, north: f64) -> Result<(f64, f64), CrsError> {
        match &self.engine {
            Engine::Datum(d) => Ok(d.to_wgs84(east, north)),
            Engine::Projected(crs) => crs.to_wgs84(east, north),
        }
    }

    /// WGS84 (lon, lat) → this CRS, in its axis order.
    pub fn position(&self, lon: f64, lat: f64) -> Result<[f64; 2], CrsError> {
        if self.is_crs84() {
            return Ok([lon, lat]);
        }
        let (e, n) = self.east_north(lon, lat)?;
        Ok(self.axis_ordered(e, n))
    }

    /// (east, north) → the CRS's axis order.
    pub fn axis_ordered(&self, east: f64, north: f64) -> [f64; 2] {
        if self.north_first { [north, east] } else { [east, north] }
    }

    /// Coordinates in the CRS's axis order → (east, north).
    pub fn east_north_of(&self, first: f64, second: f64) -> (f64, f64) {
        if self.north_first { (second, first) } else { (first, second) }
    }
}

/// The canonical URI a `crs` / `bbox-crs` value names, if it is written in a form this API reads:
/// the OGC URI (`http://www.opengis.net/def/crs/EPSG/0/4549`, also https and any case), the
/// short forms `EPSG:4549`, `urn:ogc:def:crs:EPSG::4549`, `CRS84`, `OGC:CRS84`,
/// `urn:ogc:def:crs:OGC:1.3:CRS84`, and `gcj02` / `bd09` for citygrid's own URIs. A short form
/// names the same CRS as its URI, with the same axis order.
pub fn canonical_uri(text: &str) -> Option<String> {
    let lower = text.trim().to_ascii_lowercase();
    let path = lower.strip_prefix("http://").or_else(|| lower.strip_prefix("https://"));
    let epsg = |digits: &str| -> Option<String> {
        if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(format!("{EPSG_PREFIX}{}", digits.parse::<u32>().ok()?))
    };
    if let Some(path) = path {
        let path = path.trim_end_matches('/');
        if let Some(rest) = path.strip_prefix("www.opengis.net/def/crs/") {
            if rest == "ogc/1.3/crs84" {
                return Some(CRS84.to_owned());
            }
            return rest.strip_prefix("epsg/0/").and_then(epsg);
        }
        return match path {
            "citygrid.local/crs/gcj02" => Some(GCJ02.to_owned()),
            "citygrid.local/crs/bd09" => Some(BD09.to_owned()),
            _ => None,
        };
    }
    match lower.as_str() {
        "crs84" | "ogc:crs84" | "urn:ogc:def:crs:ogc:1.3:crs84" | "urn:ogc:def:crs:ogc::crs84" => Some(CRS84.to_owned()),
        "gcj02" | "gcj-02" => Some(GCJ02.to_owned()),
        "bd09" | "bd-09" => Some(BD09.to_owned()),
        _ => {
            if let Some(code) = lower.strip_prefix("epsg:") {
                return epsg(code);
            }
            // urn:ogc:def:crs:EPSG:<version>:<code>, the version usually empty.
            let rest = lower.strip_prefix("urn:ogc:def:crs:epsg:")?;
            let (_, code) = rest.rsplit_once(':')?;
            epsg(code)
        }
    }
}

/// The CRSs offered for a city whose data (every layer) lies in `extent` (min lon, min lat,
/// max lon, max lat; `None` for a city without data), its configured CRS being `city_crs`:
/// CRS84, EPSG:4326, EPSG:4490, the CGCS2000 Gauss-Krüger zones the city lies in (the 3° and
/// the 6° zone whose strip holds its centre, in both numberings, if their area holds all of it,
/// and the city's own CRS), Web Mercator, GCJ-02 and BD-09.
pub fn offered(extent: Option<[f64; 4]>, city_crs: Option<&str>) -> Vec<OgcCrs> {
    let mut out = vec![OgcCrs::crs84()];
    for code in [4326, 4490] {
        out.push(OgcCrs::epsg(code).expect("built-in geographic CRS"));
    }
    let covers = |crs: &OgcCrs| {
        extent.is_none_or(|[x0, y0, x1, y1]| {
            let a = crs.area();
            a.contains(x0, y0) && a.contains(x1, y1)
        })
    };
    let own = city_crs.and_then(canonical_uri);
    for code in GAUSS_KRUGER {
        let Ok(crs) = OgcCrs::epsg(code) else { continue };
        let area = crs.area();
        let centre = (area.west + area.east) / 2.0;
        let half = (area.east - area.west) / 2.0 - crate::crs::projection::ZONE_MARGIN_DEG;
        let in_strip = extent.is_some_and(|[x0, _, x1, _]| ((x0 + x1) / 2.0 - centre).abs() <= half + 1e-9);
        if (in_strip || own.as_deref() == Some(crs.uri.as_str())) && covers(&crs) {
            out.push(crs);
        }
    }
    // The city's own projected CRS, if it is another built-in EPSG code (UTM, say).
    if let Some(own) = &own
        && let Some(code) = own.strip_prefix(EPSG_PREFIX).and_then(|c| c.parse::<u32>().ok())
        && !out.iter().any(|c| &c.uri == own)
        && let Ok(crs) = OgcCrs::epsg(code)
        && covers(&crs)
    {
        out.push(crs);
    }
    let mercator = OgcCrs::epsg(3857).expect("built-in Web Mercator");
    if covers(&mercator) {
        out.push(mercator);
    }
    out.extend([Datum::Gcj02, Datum::Bd09].into_iter().filter_map(OgcCrs::datum));
    out
}

/// The offered CRS a `crs` / `bbox-crs` value names, or a 400 `unknown_crs` listing the offered ones.
pub fn choose<'a>(offered: &'a [OgcCrs], parameter: &'static str, value: &str) -> Result<&'a OgcCrs, ApiError> {
    let uri = canonical_uri(value);
    if let Some(found) = uri.as_deref().and_then(|u| offered.iter().find(|c| c.uri == u)) {
        return Ok(found);
    }
    let message = match &uri {
        Some(uri) => format!(
            "{parameter} {uri} is not offered for this city's data: its area of use does not hold the whole city; \
             see the collection's crs list"
        ),
        None => format!(
            "{parameter} {value:?} is not a CRS this API offers: give one of the collection's crs URIs, e.g. {CRS84} \
             or {EPSG_PREFIX}4326 (short forms EPSG:4549, CRS84, gcj02 are accepted too)"
        ),
    };
    Err(ApiError::bad_request("unknown_crs", message).with_details(json!({
        "parameter": parameter,
        "value": value,
        "accepted": offered.iter().map(|c| c.uri.as_str()).collect::<Vec<_>>(),
    })))
}

/// A `bbox` in its `bbox-crs`: which features it selects.
#[derive(Clone, Debug)]
pub struct BboxFilter {
    /// A WGS84 lon/lat box holding the whole box (the exact box for a lon/lat CRS).
    pub envelope: Rect<f64>,
    shape: Shape,
}

#[derive(Clone, Debug)]
enum Shape {
    /// The envelope itself.
    LonLat,
    /// A lon/lat box across the antimeridian (west > east): lon ≥ west or lon ≤ east.
    Antimeridian { west: f64, east: f64 },
    /// A box in another CRS's (east, north): tested there, exactly.
    Other { crs: OgcCrs, rect: Rect<f64> },
}

impl BboxFilter {
    /// Reads `bbox` (four numbers in the axis order of `crs`) for the request. Errors are 400s
    /// naming the parameter.
    pub fn parse(raw: &str, crs: &OgcCrs) -> Result<BboxFilter, ApiError> {
        let bad =
            |message: String| ApiError::bad_request("invalid_parameter", message).with_details(json!({"parameter": "bbox", "value": raw, "bbox-crs": crs.uri}));
        let order = if !crs.is_geographic() {
            if crs.north_first() { "minNorthing,minEasting,maxNorthing,maxEasting" } else { "minEasting,minNorthing,maxEasting,maxNorthing" }
        } else if crs.north_first() {
            "minLat,minLon,maxLat,maxLon"
        } else {
            "minLon,minLat,maxLon,maxLat"
        };
        let numbers: Vec<f64> = raw
            .split(',')
            .map(|s| s.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| bad(format!("bbox must be four numbers: {order} (in the axis order of {})", crs.uri)))?;
        if numbers.len() == 6 {
            return Err(bad("bbox with heights (six numbers) is not supported: the layers are 2D; give four numbers".into()));
        }
        let Ok([a0, b0, a1, b1]) = <[f64; 4]>::try_from(numbers) else {
            return Err(bad(format!("bbox must be four numbers: {order} (in the axis order of {})", crs.uri)));
        };
        if ![a0, b0, a1, b1].iter().all(|v| v.is_finite()) {
            return Err(bad("bbox numbers must be finite".into()));
        }
        let (x0, y0) = crs.east_north_of(a0, b0);
        let (x1, y1) = crs.east_north_of(a1, b1);
        if crs.is_geographic() {
            let lon_ok = |v: f64| (-180.0..=180.0).contains(&v);
            let lat_ok = |v: f64| (-90.0..=90.0).contains(&v);
            if !(lon_ok(x0) && lon_ok(x1) && lat_ok(y0) && lat_ok(y1)) {
                return Err(bad(format!("bbox {order}: longitudes must be in [-180, 180] and latitudes in [-90, 90]")));
            }
        }
        if y0 > y1 {
            let axis = if crs.is_geographic() { "latitude" } else { "northing" };
            return Err(bad(format!("bbox ({order}): its minimum {axis} is greater than its maximum")));
        }
        if crs.is_wgs84_lonlat() {
            if x0 > x1 {
                // OGC: a box across the antimeridian has its west edge greater than its east edge.
                let envelope = Rect::new(Coord { x: -180.0, y: y0 }, Coord { x: 180.0, y: y1 });
                return Ok(BboxFilter { envelope, shape: Shape::Antimeridian { west: x0, east: x1 } });
            }
            let envelope = Rect::new(Coord { x: x0, y: y0 }, Coord { x: x1, y: y1 });
            return Ok(BboxFilter { envelope, shape: Shape::LonLat });
        }
        if x0 > x1 {
            let axis = if crs.is_geographic() { "longitude" } else { "easting" };
            return Err(bad(format!("bbox ({order}): its minimum {axis} is greater than its maximum")));
        }
        // The box's outline, densified, in WGS84: its envelope (padded a little for the bulge of
        // an edge between two samples) holds every point of the box.
        const STEPS: usize = 32;
        let mut min = [f64::INFINITY; 2];
        let mut max = [f64::NEG_INFINITY; 2];
        for i in 0..=STEPS {
            let t = i as f64 / STEPS as f64;
            let (x, y) = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t);
            for (e, n) in [(x, y0), (x, y1), (x0, y), (x1, y)] {
                let (lon, lat) = crs.to_wgs84(e, n).map_err(|err| bad(format!("bbox ({order}) reaches outside the area of {}: {err}", crs.uri)))?;
                min = [min[0].min(lon), min[1].min(lat)];
                max = [max[0].max(lon), max[1].max(lat)];
            }
        }
        let pad = 1e-5 + (max[0] - min[0]).max(max[1] - min[1]) / STEPS as f64 * 0.01;
        let envelope = Rect::new(
            Coord { x: (min[0] - pad).max(-180.0), y: (min[1] - pad).max(-90.0) },
            Coord { x: (max[0] + pad).min(180.0), y: (max[1] + pad).min(90.0) },
        );
        let rect = Rect::new(Coord { x: x0, y: y0 }, Coord { x: x1, y: y1 });
        Ok(BboxFilter { envelope, shape: Shape::Other { crs: crs.clone(), rect } })
    }

    /// Whether the WGS84 point lies in the box (edges included).
    pub fn contains(&self, p: Coord<f64>) -> bool {
        let inside = |r: &Rect<f64>, q: Coord<f64>| q.x >= r.min().x && q.x <= r.max().x && q.y >= r.min().y && q.y <= r.max().y;
        if !inside(&self.envelope, p) {
            return false;
        }
        match &self.shape {
            Shape::LonLat => true,
            Shape::Antimeridian { west, east } => p.x >= *west || p.x <= *east,
            Shape::Other { crs, rect } => match crs.east_north(p.x, p.y) {
                Ok((e, n)) => inside(rect, Coord { x: e, y: n }),
                Err(_) => false,
            },
        }
    }

    /// Whether the WGS84 polygons (with their lon/lat bounding box) intersect the box (a shared
    /// edge or corner counts).
    pub fn intersects(&self, geometry: &geo_types::MultiPolygon<f64>, bbox: Option<[f64; 4]>) -> bool {
        use geo::{Intersects, MapCoords};
        let Some([x0, y0, x1, y1]) = bbox else { return false };
        let e = self.envelope;
        if x1 < e.min().x || x0 > e.max().x || y1 < e.min().y || y0 > e.max().y {
            return false;
        }
        match &self.shape {
            Shape::LonLat => e.intersects(geometry),
            Shape::Antimeridian { west, east } => {
                let (lo, hi) = (e.min().y, e.max().y);
                Rect::new(Coord { x: *west, y: lo }, Coord { x: 180.0, y: hi }).intersects(geometry)
                    || Rect::new(Coord { x: -180.0, y: lo }, Coord { x: *east, y: hi }).intersects(geometry)
            }
            Shape::Other { crs, rect } => match geometry.try_map_coords(|c| crs.east_north(c.x, c.y).map(|(x, y)| Coord { x, y })) {
                Ok(projected) => rect.intersects(&projected),
                Err(_) => false,
            },
        }
    }

    /// The box is a plain lon/lat box (its envelope), so an index can count it exactly.
    pub fn is_lonlat_box(&self) -> bool {
        matches!(self.shape, Shape::LonLat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_and_short_forms_name_one_crs() {
        for text in [
            "http://www.opengis.net/def/crs/EPSG/0/4549",
            "https://www.opengis.net/def/crs/epsg/0/4549",
            "EPSG:4549",
            "epsg:4549",
            "urn:ogc:def:crs:EPSG::4549",
            "urn:ogc:def:crs:EPSG:9.8.15:4549",
        ] {
            assert_eq!(canonical_uri(text).as_deref(), Some("http://www.opengis.net/def/crs/EPSG/0/4549"), "{text}");
        }
        for text in ["CRS84", "OGC:CRS84", "http://www.opengis.net/def/crs/OGC/1.3/CRS84", "urn:ogc:def:crs:OGC:1.3:CRS84"] {
            assert_eq!(canonical_uri(text).as_deref(), Some(CRS84), "{text}");
        }
        assert_eq!(canonical_uri("gcj02").as_deref(), Some(GCJ02));
        assert_eq!(canonical_uri(GCJ02).as_deref(), Some(GCJ02));
        for text in ["wgs84", "EPSG:", "EPSG:abc", "http://example.com/crs/4326", "+proj=longlat", ""] {
            assert_eq!(canonical_uri(text), None, "{text}");
        }
    }

    #[test]
    fn a_city_near_suzhou_is_offered_its_zones() {
        let offered = offered(Some([120.60, 31.24, 120.66, 31.28]), None);
        let codes: Vec<Option<u32>> = offered.iter().map(|c| c.epsg_code()).collect();
        // 3° CM 120°E (4549) and zone 40 (4528); 6° CM 123°E (4510) and zone 21 (4499).
        for code in [4326, 4490, 4499, 4510, 4528, 4549, 3857] {
            assert!(codes.contains(&Some(code)), "{code}: {codes:?}");
        }
        assert!(!codes.contains(&Some(4491)), "zone 13 (75°E) is far away");
        assert!(!codes.contains(&Some(4550)), "CM 123°E 3° is the next strip");
        assert_eq!(offered[0].uri, CRS84);
        assert!(offered.iter().any(|c| c.uri == GCJ02));
        // The city's own CRS is offered even in the neighbouring strip, when its area holds the city.
        let own = super::offered(Some([120.60, 31.24, 120.66, 31.28]), Some("EPSG:4550"));
        assert!(own.iter().any(|c| c.epsg_code() == Some(4550)));
    }

    #[test]
    fn axis_order_follows_the_crs_definition() {
        let gk = OgcCrs::epsg(4549).unwrap();
        let [first, second] = gk.position(120.63, 31.26).unwrap();
        let (e, n) = Crs::from_epsg(4549).unwrap().from_wgs84(120.63, 31.26).unwrap();
        assert_eq!([first, second], [n, e], "northing first");
        assert_eq!(OgcCrs::epsg(4326).unwrap().position(120.63, 31.26).unwrap(), [31.26, 120.63]);
        assert_eq!(OgcCrs::crs84().position(120.63, 31.26).unwrap(), [120.63, 31.26]);
        let merc = OgcCrs::epsg(3857).unwrap();
        assert!(!merc.north_first());
    }

    #[test]
    fn bboxes_in_every_axis_order() {
        let b = BboxFilter::parse("31.2,120.6,31.3,120.7", &OgcCrs::epsg(4326).unwrap()).unwrap();
        assert!(b.contains(Coord { x: 120.65, y: 31.25 }));
        assert!(!b.contains(Coord { x: 31.25, y: 120.65 }));
        assert!(BboxFilter::parse("120.6,31.2,120.7,31.3", &OgcCrs::epsg(4326).unwrap()).is_err(), "latitude 120.6");
        let across = BboxFilter::parse("170,-10,-170,10", &OgcCrs::crs84()).unwrap();
        assert!(across.contains(Coord { x: 175.0, y: 0.0 }) && across.contains(Coord { x: -175.0, y: 0.0 }));
        assert!(!across.contains(Coord { x: 0.0, y: 0.0 }));
        let gk = OgcCrs::epsg(4549).unwrap();
        let (e, n) = Crs::from_epsg(4549).unwrap().from_wgs84(120.63, 31.26).unwrap();
        let b = BboxFilter::parse(&format!("{},{},{},{}", n - 10.0, e - 10.0, n + 10.0, e + 10.0), &gk).unwrap();
        assert!(b.contains(Coord { x: 120.63, y: 31.26 }));
        assert!(!b.contains(Coord { x: 120.6303, y: 31.26 }), "about 28 m east");
        assert!(BboxFilter::parse("1,2,3", &gk).is_err());
        assert!(BboxFilter::parse("3,2,1,4", &OgcCrs::crs84()).is_ok(), "west > east crosses the antimeridian");
        assert!(BboxFilter::parse("1,4,3,2", &OgcCrs::crs84()).is_err(), "south > north");
    }
}
