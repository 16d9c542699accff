//! Coordinate reference systems of survey layers, and their reprojection to WGS84 lon/lat.
//!
//! GIS staff deliver layers in the city's own CRS: CGCS2000 Gauss-Krüger (EPSG:4491–4554),
//! UTM, Web Mercator, or a city's local Transverse Mercator given as a PROJ string. citygrid
//! works in WGS84 lon/lat (CGCS2000 ≡ WGS84, ≪ 1 cm), so every layer is reprojected once on load.
//!
//! # Engines
//! - **Built in** (always; no system library): the pure-Rust `proj4rs` crate, a transcription
//!   of PROJ's projections (tmerc is PROJ's default Poder/Engsager "exact" algorithm). It knows
//!   the EPSG codes listed in [`Crs::from_epsg`] from definitions written here (no database),
//!   any PROJ string (`+proj=…`, with `+towgs84=` 3- or 7-parameter Helmert), the datum names
//!   `wgs84` `cgcs2000` `gcj02` `bd09`, and ESRI/OGC WKT `.prj` texts of the Transverse
//!   Mercator / Gauss-Krüger and Web Mercator families.
//! - **PROJ** (cargo feature `proj`, the system libproj): every other EPSG code and any WKT the
//!   built-in reader does not understand. The built-in engine stays in charge of what it knows,
//!   so results do not depend on the feature.
//!
//! # Axis order
//! The API takes and returns (easting, northing) and (lon, lat), whatever the CRS. The EPSG
//! registry order differs: EPSG:4326 / 4490 are (lat, lon) and the CGCS2000 Gauss-Krüger CRSs
//! EPSG:4491–4554 are (X = northing, Y = easting). [`Crs::axis_order`] tells which, for readers of
//! CSV columns labelled in EPSG order, and [`Crs::to_wgs84_epsg_order`] /
//! [`Crs::from_wgs84_epsg_order`] take and give coordinates in that order. Shapefile, GeoJSON
//! and FlatGeobuf geometries are always easting-first and use [`Crs::to_wgs84`] directly.
//!
//! # Area of use
//! Every conversion checks that the point lies in the CRS's area ([`Crs::area`]): for the
//! Gauss-Krüger CRSs the zone's longitude strip widened by 1° on each side and latitudes
//! 0–56° N (China with a margin; EPSG's areas are clipped to the national border, this check is
//! meant to catch swapped axes, a wrong zone or a missing/extra zone prefix in the false
//! easting, not to police borders); for UTM the zone's strip ± 1° and its hemisphere (to 84° N /
//! 80° S); for a Transverse Mercator PROJ string or WKT the central meridian ± 4°.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, LazyLock};

use proj4rs::Proj;

use super::datum::Datum;

/// Margin added on each side of a zone's longitude strip, degrees.
pub const ZONE_MARGIN_DEG: f64 = 1.0;
/// Half width of the area assumed for a Transverse Mercator given as a PROJ string or WKT.
pub const CUSTOM_TM_HALF_WIDTH_DEG: f64 = 4.0;

/// Why a CRS could not be parsed or a point not be converted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CrsError {
    #[error(
        "{0:?} is not a coordinate reference system: expected EPSG:nnnn, a PROJ string \
         (+proj=…), a WKT .prj text, or one of wgs84, cgcs2000, gcj02, bd09"
    )]
    Unrecognized(String),
    #[error("EPSG:{0} is not known to the built-in engine; build with --features proj")]
    UnknownEpsg(u32),
    #[error(
        "EPSG:{code} ({name}) is on a legacy datum whose shift to WGS84 is not built in \
         (tens to hundreds of metres, not a constant); build with --features proj"
    )]
    LegacyDatum { code: u32, name: &'static str },
    #[error(
        "{0}: PROJ knows no datum shift to WGS84 for it other than a ballpark (zero) one, which \
         would be tens to hundreds of metres off; give the layer's CRS as a PROJ string with its \
         +towgs84=dx,dy,dz[,rx,ry,rz,ds]"
    )]
    NoDatumShift(String),
    #[error("invalid PROJ string {text:?}: {reason}")]
    InvalidProjString { text: String, reason: String },
    #[error("unsupported WKT: {0}")]
    UnsupportedWkt(String),
    #[error("point ({x}, {y}) is outside the CRS's area ({crs}: {area})")]
    OutsideArea { crs: String, x: f64, y: f64, area: Area },
    #[error("cannot convert ({x}, {y}) in {crs}: {reason}")]
    Transform { crs: String, x: f64, y: f64, reason: String },
    #[error("PROJ: {0}")]
    Proj(String),
}

/// The order of a CRS's axes in the EPSG registry (and in the CSV columns of GIS staff who
/// follow it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AxisOrder {
    /// Easting (or longitude) first: UTM, Web Mercator, PROJ strings, citygrid's datum names.
    EastNorth,
    /// Northing (or latitude) first: EPSG:4326, 4490, and the Gauss-Krüger EPSG:4491–4554
    /// (X = northing, Y = easting).
    NorthEast,
}

/// A lon/lat rectangle, degrees (the margin already included).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Area {
    pub west: f64,
    pub south: f64,
    pub east: f64,
    pub north: f64,
}

impl Area {
    pub const WORLD: Area = Area { west: -180.0, south: -90.0, east: 180.0, north: 90.0 };

    pub fn contains(&self, lon: f64, lat: f64) -> bool {
        (self.west..=self.east).contains(&lon) && (self.south..=self.north).contains(&lat)
    }
}

impl fmt::Display for Area {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "longitude {}..{}, latitude {}..{}", self.west, self.east, self.south, self.north)
    }
}

/// WGS84 lon/lat as the built-in engine's pivot (radians in, radians out).
static WGS84: LazyLock<Arc<Proj>> = LazyLock::new(|| Arc::new(Proj::from_proj_string("+proj=longlat +datum=WGS84 +no_defs").expect("WGS84 PROJ string")));

#[derive(Clone)]
enum Engine {
    /// lon/lat in one of citygrid's datums (EPSG:4326 / 4490 too).
    Datum(Datum),
    /// The built-in pure-Rust engine.
    Builtin(Arc<Proj>),
    /// The system PROJ: `def` is what PROJ is given ("EPSG:nnnn" or a WKT text).
    #[cfg(feature = "proj")]
    Proj { def: String, geographic: bool },
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Engine::Datum(d) => write!(f, "Datum({d})"),
            Engine::Builtin(_) => f.write_str("Builtin"),
            #[cfg(feature = "proj")]
            Engine::Proj { def, .. } => write!(f, "Proj({def:?})"),
        }
    }
}

/// A coordinate reference system a layer or a point can come in. Cheap to clone, `Send + Sync`.
#[derive(Clone, Debug)]
pub struct Crs {
    name: String,
    epsg: Option<u32>,
    axis: AxisOrder,
    area: Area,
    /// The PROJ string the built-in engine uses, if it is the built-in engine.
    definition: Option<String>,
    engine: Engine,
}

impl PartialEq for Crs {
    fn eq(&self, other: &Crs) -> bool {
        self.name == other.name
            && self.epsg == other.epsg
            && self.axis == other.axis
            && self.definition == other.definition
            && match (&self.engine, &other.engine) {
                (Engine::Datum(a), Engine::Datum(b)) => a == b,
                (Engine::Builtin(_), Engine::Builtin(_)) => true,
                #[cfg(feature = "proj")]
                (Engine::Proj { def: a, .. }, Engine::Proj { def: b, .. }) => a == b,
                _ => false,
            }
    }
}

impl fmt::Display for Crs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.epsg {
            Some(code) => write!(f, "EPSG:{code} ({})", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl FromStr for Crs {
    type Err = CrsError;
    fn from_str(s: &str) -> Result<Crs, CrsError> {
        Crs::parse(s)
    }
}

/// Legacy Chinese datums: their shift to WGS84 is regional (no published constant Helmert).
#[cfg_attr(feature = "proj", allow(dead_code))]
fn legacy_datum(code: u32) -> Option<&'static str> {
    match code {
        4610 | 2327..=2399 => Some("Xian 1980"),
        4214 | 2401..=2442 | 21413..=21423 | 21453..=21463 | 21473..=21483 => Some("Beijing 1954"),
        4555 | 4568..=4589 => Some("New Beijing"),
        _ => None,
    }
}

/// The built-in catalogue: (name, PROJ string or None for geographic, axis order, area).
fn builtin(code: u32) -> Option<(String, Option<String>, AxisOrder, Area)> {
    let gk = |name: String, cm: f64, half: f64, x0: f64| {
        let def = format!("+proj=tmerc +lat_0=0 +lon_0={cm} +k=1 +x_0={x0} +y_0=0 +ellps=GRS80 +units=m +no_defs");
        let area = Area { west: cm - half - ZONE_MARGIN_DEG, south: 0.0, east: cm + half + ZONE_MARGIN_DEG, north: 56.0 };
        Some((name, Some(def), AxisOrder::NorthEast, area))
    };
    match code {
        4326 => Some(("WGS 84".into(), None, AxisOrder::NorthEast, Area::WORLD)),
        4490 => Some(("China Geodetic Coordinate System 2000".into(), None, AxisOrder::NorthEast, Area::WORLD)),
        3857 => Some((
            "WGS 84 / Pseudo-Mercator".into(),
            Some("+proj=merc +a=6378137 +b=6378137 +lat_ts=0 +lon_0=0 +x_0=0 +y_0=0 +k=1 +units=m +no_defs".into()),
            AxisOrder::EastNorth,
            Area { west: -180.0, south: -85.06, east: 180.0, north: 85.06 },
        )),
        // 6° zones 13–23 (CM 75°E–135°E), zone number prefixed to the false easting.
        4491..=4501 => {
            let zone = code - 4491 + 13;
            let cm = f64::from(zone * 6 - 3);
            gk(format!("CGCS2000 / Gauss-Kruger zone {zone}"), cm, 3.0, f64::from(zone) * 1e6 + 500_000.0)
        }
        // 6° zones by central meridian, false easting 500 000.
        4502..=4512 => {
            let cm = 75 + (code - 4502) * 6;
            gk(format!("CGCS2000 / Gauss-Kruger CM {cm}E"), f64::from(cm), 3.0, 500_000.0)
        }
        // 3° zones 25–45 (CM 75°E–135°E), zone number prefixed to the false easting.
        4513..=4533 => {
            let zone = code - 4513 + 25;
            let x0 = f64::from(zone) * 1e6 + 500_000.0;
            gk(format!("CGCS2000 / 3-degree Gauss-Kruger zone {zone}"), f64::from(zone * 3), 1.5, x0)
        }
        // 3° zones by central meridian, false easting 500 000.
        4534..=4554 => {
            let cm = 75 + (code - 4534) * 3;
            gk(format!("CGCS2000 / 3-degree Gauss-Kruger CM {cm}E"), f64::from(cm), 1.5, 500_000.0)
        }
        32601..=32660 | 32701..=32760 => {
            let south = code > 32700;
            let zone = code % 100;
            let cm = f64::from(zone * 6) - 183.0;
            let hemi = if south { "S" } else { "N" };
            let def = format!("+proj=utm +zone={zone}{} +datum=WGS84 +units=m +no_defs", if south { " +south" } else { "" });
            let (s, n) = if south { (-80.0, 0.0) } else { (0.0, 84.0) };
            let area = Area { west: cm - 3.0 - ZONE_MARGIN_DEG, south: s, east: cm + 3.0 + ZONE_MARGIN_DEG, north: n };
            Some((format!("WGS 84 / UTM zone {zone}{hemi}"), Some(def), AxisOrder::EastNorth, area))
        }
        _ => None,
    }
}

fn builtin_proj(def: &str) -> Result<Arc<Proj>, CrsError> {
    // proj4rs slices angle values at byte offsets next to a non-ASCII character (a `°`) and
    // panics there; a PROJ string is ASCII (degrees as decimals or `120d30'`).
    if let Some(c) = def.chars().find(|c| !c.is_ascii()) {
        return Err(CrsError::InvalidProjString {
            text: def.to_owned(),
            reason: format!("{c:?} is not ASCII: write angles as decimal degrees (or as 120d30')"),
        });
    }
    Proj::from_proj_string(def).map(Arc::new).map_err(|e| CrsError::InvalidProjString { text: def.to_owned(), reason: e.to_string() })
}

impl Crs {
    /// Parses user text: `EPSG:nnnn` (any case, or the bare number), a PROJ string
    /// (`+proj=…`), a WKT `.prj` text, or `wgs84` / `cgcs2000` / `gcj02` / `bd09`.
    pub fn parse(text: &str) -> Result<Crs, CrsError> {
        let t = text.trim();
        if t.starts_with('+') {
            return Crs::from_proj_string(t);
        }
        if t.contains('[') {
            return Crs::from_prj_wkt(t);
        }
        let lower = t.to_ascii_lowercase();
        let code = lower.strip_prefix("epsg:").unwrap_or(&lower);
        if !code.is_empty() && code.bytes().all(|b| b.is_ascii_digit()) {
            return match code.parse::<u32>() {
                Ok(code) => Crs::from_epsg(code),
                Err(_) => Err(CrsError::Unrecognized(text.to_owned())),
            };
        }
        match lower.parse::<Datum>() {
            Ok(d) => Ok(Crs::datum(d)),
            Err(_) => Err(CrsError::Unrecognized(text.to_owned())),
        }
    }

    /// lon/lat in one of citygrid's datums (axis order lon, lat).
    pub fn datum(datum: Datum) -> Crs {
        Crs { name: datum.to_string(), epsg: None, axis: AxisOrder::EastNorth, area: Area::WORLD, definition: None, engine: Engine::Datum(datum) }
    }

    /// WGS84 lon/lat (citygrid's internal CRS).
    pub fn wgs84() -> Crs {
        Crs::datum(Datum::Wgs84)
    }

    /// A CRS by EPSG code. Built in (no PROJ needed): 4326, 4490 (geographic), 3857 (Web
    /// Mercator), 4491–4501 (CGCS2000 6° Gauss-Krüger zones 13–23, false easting with the zone
    /// prefix), 4502–4512 (6° CM 75°E–135°E), 4513–4533 (3° zones 25–45 with the zone prefix),
    /// 4534–4554 (3° CM 75°E–135°E), 32601–32660 and 32701–32760 (WGS84 UTM north and south).
    /// Anything else needs the `proj` feature; the legacy Beijing 1954 / Xian 1980 / New
    /// Beijing CRSs are refused without it rather than converted without their datum shift.
    pub fn from_epsg(code: u32) -> Result<Crs, CrsError> {
        if let Some((name, def, axis, area)) = builtin(code) {
            let engine = match (&def, code) {
                (None, 4490) => Engine::Datum(Datum::Cgcs2000),
                (None, _) => Engine::Datum(Datum::Wgs84),
                (Some(def), _) => Engine::Builtin(builtin_proj(def)?),
            };
            return Ok(Crs { name, epsg: Some(code), axis, area, definition: def, engine });
        }
        #[cfg(feature = "proj")]
        {
            with_proj::from_epsg(code)
        }
        #[cfg(not(feature = "proj"))]
        {
            Err(match legacy_datum(code) {
                Some(name) => CrsError::LegacyDatum { code, name },
                None => CrsError::UnknownEpsg(code),
            })
        }
    }

    /// A CRS from a PROJ string, e.g. a city's local Transverse Mercator
    /// `+proj=tmerc +lat_0=0 +lon_0=120.5 +k=1 +x_0=500000 +y_0=0 +ellps=GRS80 +units=m +no_defs`,
    /// optionally with `+towgs84=dx,dy,dz[,rx,ry,rz,ds]` (position-vector Helmert, as PROJ).
    ///
    /// Refused: an ellipsoid other than GRS80/WGS84 (a = 6 378 137 m) without `+towgs84` or a
    /// known `+datum`, because its shift to WGS84 would silently be taken as zero.
    pub fn from_proj_string(text: &str) -> Result<Crs, CrsError> {
        let t = text.trim();
        let bad = |reason: String| CrsError::InvalidProjString { text: t.to_owned(), reason };
        if !t.starts_with('+') {
            return Err(bad("a PROJ string starts with +proj=".into()));
        }
        let has = |key: &str| t.split_whitespace().any(|w| w == key || w.starts_with(&format!("{key}=")));
        if has("+init") {
            return Err(bad("+init= needs PROJ's database; write the parameters out".into()));
        }
        let proj = builtin_proj(t)?;
        if proj.is_geocent() {
            return Err(bad("geocentric CRSs are not supported".into()));
        }
        let (a, _) = proj.ellipse_parameters();
        if !has("+towgs84") && !has("+datum") && (a - 6_378_137.0).abs() > 1e-3 {
            return Err(bad(format!(
                "the ellipsoid (a = {a} m) is not GRS80/WGS84 and no +towgs84= is given: its datum \
                 shift to WGS84 is unknown (tens to hundreds of metres); add +towgs84=dx,dy,dz[,rx,ry,rz,ds]"
            )));
        }
        let area = match proj.projname() {
            "tmerc" | "etmerc" | "utm" => {
                let lon0 = proj.longitude_of_origin().to_degrees();
                Area { west: lon0 - CUSTOM_TM_HALF_WIDTH_DEG, south: -90.0, east: lon0 + CUSTOM_TM_HALF_WIDTH_DEG, north: 90.0 }
            }
            _ => Area::WORLD,
        };
        Ok(Crs { name: t.to_owned(), epsg: None, axis: AxisOrder::EastNorth, area, definition: Some(t.to_owned()), engine: Engine::Builtin(proj) })
    }

    /// A CRS from the WKT of an ESRI shapefile `.prj` (WKT1 ESRI or OGC, or WKT2).
    ///
    /// Understood without PROJ: an `AUTHORITY["EPSG", n]` / `ID["EPSG", n]` of a built-in code;
    /// geographic WGS84 / CGCS2000; Transverse Mercator and Gauss-Krüger on CGCS2000, WGS84 or a
    /// datum with `TOWGS84[…]` (matched to its EPSG code when it is one of the built-in ones,
    /// e.g. `CGCS2000_3_Degree_GK_CM_120E` → EPSG:4549); Web Mercator. Other projections and
    /// datums without a known shift are refused (with the `proj` feature they go to PROJ).
    pub fn from_prj_wkt(text: &str) -> Result<Crs, CrsError> {
        let interpreted = wkt::parse(text).and_then(|root| wkt::interpret(&root));
        match interpreted {
            Ok(crs) => Ok(crs),
            #[cfg(feature = "proj")]
            Err(CrsError::UnsupportedWkt(_)) => with_proj::from_wkt(text),
            Err(e) => Err(e),
        }
    }

    /// The EPSG code, if the CRS is one.
    pub fn epsg(&self) -> Option<u32> {
        self.epsg
    }

    /// A human name: the EPSG name, the datum name, the WKT name or the PROJ string.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The axis order of the EPSG registry (see the module doc). The conversion functions
    /// always take (easting, northing) / (lon, lat) regardless.
    pub fn axis_order(&self) -> AxisOrder {
        self.axis
    }

    /// The PROJ string the built-in engine uses for this CRS (`None` for lon/lat datums and for
    /// CRSs handled by the system PROJ).
    pub fn proj_definition(&self) -> Option<&str> {
        self.definition.as_deref()
    }

    /// The lon/lat rectangle points must lie in (margin included).
    pub fn area(&self) -> Area {
        self.area
    }

    /// The datum, if this is lon/lat in one of citygrid's datums (the names, EPSG:4326, 4490).
    pub fn datum_engine(&self) -> Option<Datum> {
        match self.engine {
            Engine::Datum(d) => Some(d),
            _ => None,
        }
    }

    /// True for lon/lat CRSs (the datums, EPSG:4326, EPSG:4490), false for projected ones.
    pub fn is_geographic(&self) -> bool {
        match &self.engine {
            Engine::Datum(_) => true,
            Engine::Builtin(p) => p.is_latlong(),
            #[cfg(feature = "proj")]
            Engine::Proj { geographic, .. } => *geographic,
        }
    }

    /// (first, second) in EPSG axis order → (easting, northing) / (lon, lat).
    pub fn epsg_order_to_east_north(&self, first: f64, second: f64) -> (f64, f64) {
        match self.axis {
            AxisOrder::EastNorth => (first, second),
            AxisOrder::NorthEast => (second, first),
        }
    }

    /// (easting, northing) / (lon, lat) → EPSG axis order.
    pub fn east_north_to_epsg_order(&self, east: f64, north: f64) -> (f64, f64) {
        self.epsg_order_to_east_north(east, north)
    }

    /// Converts (easting, northing) — or (lon, lat) for a geographic CRS — to WGS84 (lon, lat).
    pub fn to_wgs84(&self, x: f64, y: f64) -> Result<(f64, f64), CrsError> {
        match &self.engine {
            #[cfg(feature = "proj")]
            Engine::Proj { .. } => self.transformer()?.to_wgs84(x, y),
            _ => convert(self, None, x, y, true),
        }
    }

    /// Converts WGS84 (lon, lat) to (easting, northing) — or (lon, lat) — in this CRS.
    pub fn from_wgs84(&self, lon: f64, lat: f64) -> Result<(f64, f64), CrsError> {
        match &self.engine {
            #[cfg(feature = "proj")]
            Engine::Proj { .. } => self.transformer()?.from_wgs84(lon, lat),
            _ => convert(self, None, lon, lat, false),
        }
    }

    /// [`Crs::to_wgs84`] with the input in EPSG axis order (e.g. X = northing first for
    /// EPSG:4549). Returns (lon, lat).
    pub fn to_wgs84_epsg_order(&self, first: f64, second: f64) -> Result<(f64, f64), CrsError> {
        let (x, y) = self.epsg_order_to_east_north(first, second);
        self.to_wgs84(x, y)
    }

    /// [`Crs::from_wgs84`] with the output in EPSG axis order.
    pub fn from_wgs84_epsg_order(&self, lon: f64, lat: f64) -> Result<(f64, f64), CrsError> {
        let (x, y) = self.from_wgs84(lon, lat)?;
        Ok(self.east_north_to_epsg_order(x, y))
    }

    /// A converter for many points: all setup (for PROJ, creating the transformation) is done
    /// here once.
    pub fn transformer(&self) -> Result<Transformer, CrsError> {
        let inner = match &self.engine {
            #[cfg(feature = "proj")]
            Engine::Proj { def, .. } => Some(with_proj::Pair::new(def)?),
            _ => None,
        };
        #[cfg(not(feature = "proj"))]
        let _: Option<()> = inner;
        Ok(Transformer { crs: self.clone(), inner })
    }

    fn outside(&self, x: f64, y: f64) -> CrsError {
        CrsError::OutsideArea { crs: self.to_string(), x, y, area: self.area }
    }

    fn failed(&self, x: f64, y: f64, reason: impl fmt::Display) -> CrsError {
        CrsError::Transform { crs: self.to_string(), x, y, reason: reason.to_string() }
    }
}

#[cfg(feature = "proj")]
type Inner = Option<with_proj::Pair>;
#[cfg(not(feature = "proj"))]
type Inner = Option<()>;

/// Converts many points of one CRS without per-point setup. (With the `proj` feature and a
/// CRS handled by PROJ, it holds PROJ objects and is not `Send`.)
pub struct Transformer {
    crs: Crs,
    #[cfg_attr(not(feature = "proj"), allow(dead_code))]
    inner: Inner,
}

impl Transformer {
    pub fn crs(&self) -> &Crs {
        &self.crs
    }

    /// (easting, northing) → WGS84 (lon, lat); see [`Crs::to_wgs84`].
    pub fn to_wgs84(&self, x: f64, y: f64) -> Result<(f64, f64), CrsError> {
        convert(&self.crs, self.inner.as_ref(), x, y, true)
    }

    /// WGS84 (lon, lat) → (easting, northing); see [`Crs::from_wgs84`].
    pub fn from_wgs84(&self, lon: f64, lat: f64) -> Result<(f64, f64), CrsError> {
        convert(&self.crs, self.inner.as_ref(), lon, lat, false)
    }

    /// Converts every (easting, northing) to (lon, lat) in place; stops at the first failure
    /// and returns its index (the points before it are converted, the rest untouched).
    pub fn to_wgs84_in_place(&self, points: &mut [(f64, f64)]) -> Result<(), (usize, CrsError)> {
        for (i, p) in points.iter_mut().enumerate() {
            *p = self.to_wgs84(p.0, p.1).map_err(|e| (i, e))?;
        }
        Ok(())
    }

    /// Converts every point, one result each (for a validation report).
    pub fn to_wgs84_all(&self, points: &[(f64, f64)]) -> Vec<Result<(f64, f64), CrsError>> {
        points.iter().map(|p| self.to_wgs84(p.0, p.1)).collect()
    }
}

#[cfg(feature = "proj")]
type InnerRef<'a> = Option<&'a with_proj::Pair>;
#[cfg(not(feature = "proj"))]
type InnerRef<'a> = Option<&'a ()>;

/// The one conversion routine: `inverse` = CRS → WGS84.
fn convert(crs: &Crs, inner: InnerRef<'_>, x: f64, y: f64, inverse: bool) -> Result<(f64, f64), CrsError> {
    if !(x.is_finite() && y.is_finite()) {
        return Err(crs.failed(x, y, "coordinates must be finite numbers"));
    }
    match &crs.engine {
        Engine::Datum(d) => {
            if !crs.area.contains(x, y) {
                return Err(crs.outside(x, y));
            }
            Ok(if inverse { d.to_wgs84(x, y) } else { d.from_wgs84(x, y) })
        }
        Engine::Builtin(proj) => {
            if inverse {
                let mut p = (x, y, 0.0);
                // The inverse fails (or gives no number) only for points far outside the
                // projection's domain: for a GIS engineer that is "outside the area" too.
                proj4rs::transform::transform(proj, &WGS84, &mut p).map_err(|_| crs.outside(x, y))?;
                let (lon, lat) = (p.0.to_degrees(), p.1.to_degrees());
                if !(lon.is_finite() && lat.is_finite()) {
                    return Err(crs.outside(x, y));
                }
                if !crs.area.contains(lon, lat) {
                    return Err(crs.outside(x, y));
                }
                Ok((lon, lat))
            } else {
                if !crs.area.contains(x, y) {
                    return Err(crs.outside(x, y));
                }
                let mut p = (x.to_radians(), y.to_radians(), 0.0);
                proj4rs::transform::transform(&WGS84, proj, &mut p).map_err(|e| crs.failed(x, y, e))?;
                if !(p.0.is_finite() && p.1.is_finite()) {
                    return Err(crs.failed(x, y, "no result"));
                }
                Ok((p.0, p.1))
            }
        }
        #[cfg(feature = "proj")]
        Engine::Proj { def, .. } => {
            let owned;
            let pair = match inner {
                Some(p) => p,
                None => {
                    owned = with_proj::Pair::new(def)?;
                    &owned
                }
            };
            pair.convert(crs, x, y, inverse)
        }
        #[cfg(not(feature = "proj"))]
        #[allow(unreachable_patterns)]
        _ => {
            let _ = inner;
            unreachable!()
        }
    }
}

#[cfg(feature = "proj")]
impl Crs {
    /// The system PROJ's own definition of EPSG:`code` (feature `proj`), bypassing the built-in
    /// engine even for the codes it knows: what the built-in engine is checked against
    /// (tests/proj_oracle.rs). Use [`Crs::from_epsg`] to serve.
    pub fn from_epsg_via_proj(code: u32) -> Result<Crs, CrsError> {
        with_proj::from_epsg(code)
    }
}

/// A small WKT reader: enough of WKT1 (ESRI and OGC) and WKT2 for the `.prj` files of the
/// Transverse Mercator / Gauss-Krüger and Web Mercator families.
mod wkt;

/// The system PROJ (feature `proj`).
#[cfg(feature = "proj")]
mod with_proj;

#[cfg(test)]
mod tests;
