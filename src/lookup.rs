//! Lookups: "which grid is this, who is its chief, who owns this cover". The answers of the
//! lookup API (`/v1/locate`, `/v1/grids/{code}`, `/v1/components…`) and of `citygrid locate`,
//! built from one [`World`] snapshot. No HTTP here: [`crate::http`] only parses and serialises.
//!
//! # Conventions of every answer
//! - Points come in any [`Datum`] (lon/lat) or a projected [`Crs`] (x/y, e.g. EPSG:4549) and
//!   are converted to WGS84 first (GCJ-02 / BD-09 with the iterative inverse); answers give
//!   locations in WGS84 and echo the input.
//! - Levels are numbered from 1 (district) to the unit-grid level, as the field does
//!   (1 区 / 2 街道 / 3 社区 / 4 网格).
//! - Distances are metres: haversine on the mean earth sphere (≤ 0.5% from the ellipsoid,
//!   see [`crate::crs::haversine_m`]).
//! - Every answer names the layer versions it was computed from (`versions`).

use chrono::NaiveDate;
use geo_types::{Coord, Rect};
use serde::Serialize;

use crate::crs::{Crs, Datum};
use crate::index::Location;
use crate::model::{Chief, ClassCode, Component, ComponentCode, Grid, GridCode, GridId, ModelError, UnitId};
use crate::store::Versions;
use crate::world::World;

/// Largest `k` of a nearest-components query.
pub const MAX_K: usize = 1000;
/// Largest page of a bounding-box query.
pub const MAX_PAGE: usize = 10_000;
/// Default page of a bounding-box query.
pub const DEFAULT_PAGE: usize = 1000;
/// Largest accuracy radius, metres: a GPS error beyond this says nothing about a grid.
pub const MAX_ACCURACY_M: f64 = 10_000.0;
/// Largest search radius of a nearest-components query, metres.
pub const MAX_DISTANCE_M: f64 = 100_000.0;

/// What is wrong with a lookup.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// A parameter has a value the lookup cannot use (out of range, not finite, too large).
    #[error("{parameter} = {value:?}: {reason}")]
    InvalidParameter { parameter: &'static str, value: String, reason: String },
    /// A code that is not well-formed.
    #[error("{0}")]
    MalformedCode(ModelError),
    /// A well-formed class code that the city's class table does not have.
    #[error("unknown component class {0}: not in the class table")]
    UnknownClass(String),
    #[error("no grid with code {0}")]
    UnknownGrid(String),
    #[error("no component with code {0}")]
    UnknownComponent(String),
    /// The point is in no unit grid; the nearest one and its distance are given.
    #[error("the point is outside every grid; the nearest grid {} is {:.1} m away", .nearest.code, .nearest.distance_m)]
    OutsideCoverage { point: PointEcho, nearest: GridNear, candidates: Vec<GridNear> },
    /// A point's `crs` that is neither a datum nor an EPSG code the engine knows.
    #[error("{reason}")]
    UnknownCrs { value: String, reason: String },
    /// Half a coordinate pair (or none where a point is required): `lon`, `lat`, `x` or `y`.
    #[error("parameter {0} is required")]
    MissingCoordinate(&'static str),
    /// The other pair than the `crs` takes: `x`/`y` with a datum, `lon`/`lat` with a projected CRS.
    #[error("{reason}")]
    WrongPair { parameter: &'static str, value: String, crs: String, reason: String },
    /// The city has no unit grids yet (a new city before its first grid import).
    #[error("the city has no grids yet: import its grid layer (`citygrid import grids FILE`, or PUT /v1/layers/grids) to answer lookups")]
    NoCoverage,
}

impl LookupError {
    fn invalid(parameter: &'static str, value: impl ToString, reason: impl Into<String>) -> LookupError {
        LookupError::InvalidParameter { parameter, value: value.to_string(), reason: reason.into() }
    }
}

/// A point as given (lon/lat, or x/y in a projected `crs`), checked and converted to WGS84.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PointEcho {
    /// As given.
    pub input: Input,
    pub crs: CrsName,
    /// WGS84, what the lookup used.
    pub wgs84: LonLat,
}

/// A point as given: `{"lon", "lat"}`, or `{"x", "y"}` (easting, northing in metres) in a
/// projected CRS.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Input {
    LonLat(LonLat),
    Xy { x: f64, y: f64 },
}

/// A lon/lat pair in degrees.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LonLat {
    pub lon: f64,
    pub lat: f64,
}

impl From<Coord<f64>> for LonLat {
    fn from(c: Coord<f64>) -> LonLat {
        LonLat { lon: c.x, lat: c.y }
    }
}

/// The CRS of an input point, serialised by its API name (`wgs84`, `gcj02`, …, `EPSG:4549`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CrsName {
    Datum(Datum),
    Epsg(u32),
    /// A projected CRS without an EPSG code (not reachable from the HTTP API).
    Other,
}

impl utoipa::PartialSchema for CrsName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .description(Some("the CRS of the input: wgs84, cgcs2000, gcj02, bd09 or EPSG:nnnn"))
            .examples(["wgs84", "EPSG:4549"])
            .into()
    }
}
impl utoipa::ToSchema for CrsName {}

impl Serialize for CrsName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            CrsName::Datum(d) => s.collect_str(d),
            CrsName::Epsg(code) => s.collect_str(&format_args!("EPSG:{code}")),
            CrsName::Other => s.serialize_str("other"),
        }
    }
}

impl PointEcho {
    /// Checks `lon` ∈ [-180, 180] and `lat` ∈ [-90, 90] (finite) and converts to WGS84.
    pub fn new(lon: f64, lat: f64, crs: Datum) -> Result<PointEcho, LookupError> {
        if !(lon.is_finite() && (-180.0..=180.0).contains(&lon)) {
            return Err(LookupError::invalid("lon", lon, "longitude must be a number in [-180, 180]"));
        }
        if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
            return Err(LookupError::invalid("lat", lat, "latitude must be a number in [-90, 90]"));
        }
        let (x, y) = crs.to_wgs84(lon, lat);
        Ok(PointEcho { input: Input::LonLat(LonLat { lon, lat }), crs: CrsName::Datum(crs), wgs84: LonLat { lon: x, lat: y } })
    }

    /// `x` (easting) and `y` (northing), metres, in a projected CRS (e.g. EPSG:4549) — or lon,
    /// lat in a geographic CRS that is not one of the datums (only with the `proj` feature) —
    /// converted to WGS84. A point outside the CRS's area (a wrong zone, swapped axes) is refused.
    pub fn projected(x: f64, y: f64, crs: &Crs) -> Result<PointEcho, LookupError> {
        let geographic = crs.is_geographic();
        let (xn, yn) = if geographic { ("lon", "lat") } else { ("x", "y") };
        if !x.is_finite() {
            return Err(LookupError::invalid(xn, x, format!("{xn} must be a finite number")));
        }
        if !y.is_finite() {
            return Err(LookupError::invalid(yn, y, format!("{yn} must be a finite number")));
        }
        let (lon, lat) = crs.to_wgs84(x, y).map_err(|e| LookupError::invalid(xn, format!("{x}, {y}"), e.to_string()))?;
        let name = crs.epsg().map_or(CrsName::Other, CrsName::Epsg);
        let input = if geographic { Input::LonLat(LonLat { lon: x, lat: y }) } else { Input::Xy { x, y } };
        Ok(PointEcho { input, crs: name, wgs84: LonLat { lon, lat } })
    }

    pub fn coord(&self) -> Coord<f64> {
        Coord { x: self.wgs84.lon, y: self.wgs84.lat }
    }
}

/// The CRS names a point may be given in (`crs` of a query, a case, a CSV row).
pub const POINT_CRS_ACCEPTED: [&str; 10] = [
    "wgs84",
    "cgcs2000",
    "gcj02",
    "bd09",
    "EPSG:4326",
    "EPSG:4490",
    "EPSG:3857",
    "EPSG:4491-4554 (CGCS2000 Gauss-Kruger)",
    "EPSG:32601-32660",
    "EPSG:32701-32760",
];

/// The `crs` of a point as a client names it: lon/lat in a datum, or x/y in a projected CRS.
#[derive(Clone, Debug)]
pub enum PointCrs {
    Datum(Datum),
    Projected(Crs),
}

impl PointCrs {
    /// `crs` of a point or a box: absent = wgs84; a datum (lon/lat: wgs84, cgcs2000, gcj02,
    /// bd09, also EPSG:4326 / EPSG:4490), or a projected CRS by EPSG code (x/y; built in:
    /// Gauss-Krüger EPSG:4491–4554, UTM, 3857, see [`Crs::from_epsg`]). PROJ strings and WKT are
    /// for layer files, not points.
    pub fn parse(value: Option<&str>) -> Result<PointCrs, LookupError> {
        let Some(v) = value.filter(|v| !v.trim().is_empty()) else { return Ok(PointCrs::Datum(Datum::Wgs84)) };
        if let Ok(d) = v.parse::<Datum>() {
            return Ok(PointCrs::Datum(d));
        }
        let t = v.trim();
        let unknown = |reason: String| LookupError::UnknownCrs { value: v.to_owned(), reason };
        if t.starts_with('+') || t.contains('[') {
            return Err(unknown("crs takes a datum name or EPSG:nnnn; PROJ strings and WKT are for layer files".into()));
        }
        match Crs::parse(t) {
            Ok(crs) => Ok(crs.datum_engine().map_or(PointCrs::Projected(crs), PointCrs::Datum)),
            Err(e) => Err(unknown(e.to_string())),
        }
    }
}

/// A point as a client writes it — in a query string, a case's JSON, a row of a case CSV —
/// before it is checked: `lon`/`lat` with a datum `crs` (or a geographic one), or `x` (easting)
/// and `y` (northing) in metres with a projected `crs` such as EPSG:4549 (not EPSG's
/// northing-first axis order). Every entry point reads points through this, so they accept the
/// same CRSs and refuse the same mistakes.
#[derive(Clone, Copy, Debug, Default)]
pub struct PointInput<'a> {
    pub lon: Option<f64>,
    pub lat: Option<f64>,
    pub x: Option<f64>,
    pub y: Option<f64>,
    pub crs: Option<&'a str>,
}

impl PointInput<'_> {
    /// The point in WGS84 with what was given, or `None` when no coordinate is given at all.
    /// Refused: an unknown `crs`, the pair the `crs` does not take, half a pair, a point out of
    /// range or outside the projected CRS's area.
    pub fn resolve(&self) -> Result<Option<PointEcho>, LookupError> {
        let crs = PointCrs::parse(self.crs)?;
        let geographic = match &crs {
            PointCrs::Datum(_) => true,
            PointCrs::Projected(c) => c.is_geographic(),
        };
        let crs_name = self.crs.unwrap_or("wgs84").trim().to_owned();
        let wrong =
            |parameter: &'static str, value: f64, reason: String| LookupError::WrongPair { parameter, value: value.to_string(), crs: crs_name.clone(), reason };
        let (a, b, other) = if geographic {
            ((self.lon, "lon"), (self.lat, "lat"), [(self.x, "x"), (self.y, "y")])
        } else {
            ((self.x, "x"), (self.y, "y"), [(self.lon, "lon"), (self.lat, "lat")])
        };
        if let Some((Some(v), name)) = other.into_iter().find(|(v, _)| v.is_some()) {
            let reason = match &crs {
                PointCrs::Datum(_) => "x and y are for a projected crs (such as EPSG:4549); this crs takes lon and lat".to_owned(),
                PointCrs::Projected(c) if geographic => format!("{c} is a geographic CRS: give lon and lat, not x and y"),
                PointCrs::Projected(c) => format!("{c} is a projected CRS: give x (easting) and y (northing) in metres, not lon and lat"),
            };
            return Err(wrong(name, v, reason));
        }
        let (first, second) = match (a, b) {
            ((None, _), (None, _)) => return Ok(None),
            ((Some(first), _), (Some(second), _)) => (first, second),
            ((None, name), _) | (_, (None, name)) => return Err(LookupError::MissingCoordinate(name)),
        };
        match crs {
            PointCrs::Datum(d) => PointEcho::new(first, second, d).map(Some),
            PointCrs::Projected(c) => PointEcho::projected(first, second, &c).map(Some),
        }
    }

    /// As [`resolve`](Self::resolve), for an entry point that needs a point: none given is
    /// `MissingCoordinate` of the first coordinate the `crs` takes (`lon`, or `x`).
    pub fn require(&self) -> Result<PointEcho, LookupError> {
        match self.resolve()? {
            Some(p) => Ok(p),
            None => {
                let projected = matches!(PointCrs::parse(self.crs)?, PointCrs::Projected(ref c) if !c.is_geographic());
                Err(LookupError::MissingCoordinate(if projected { "x" } else { "lon" }))
            }
        }
    }
}

/// A unit as answers show it: code (if the register has one), name, duty phone.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct UnitView<'a> {
    pub code: Option<&'a str>,
    pub name: &'a str,
    pub phone: Option<&'a str>,
}

/// One grid of a chain: district first, the unit grid last.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ChainEntry<'a> {
    /// 1 = top level (district).
    pub level: usize,
    pub level_name: &'a str,
    pub level_name_en: &'a str,
    pub code: GridCode,
    pub name: &'a str,
    /// The grid's own responsible unit; `null` means it falls back to its street (属地兜底).
    pub unit: Option<UnitView<'a>>,
    pub chief: Option<&'a Chief>,
}

/// A grid's own attributes.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct GridView<'a> {
    pub code: GridCode,
    pub name: &'a str,
    /// 1 = top level (district).
    pub level: usize,
    pub level_name: &'a str,
    pub level_name_en: &'a str,
    /// Code of the enclosing grid one level up (`null` at the top).
    pub parent: Option<GridCode>,
    pub unit: Option<UnitView<'a>>,
    pub chief: Option<&'a Chief>,
    pub valid_from: Option<NaiveDate>,
    pub valid_to: Option<NaiveDate>,
    /// Area on the WGS84 ellipsoid, m².
    pub area_m2: f64,
    /// min lon, min lat, max lon, max lat (WGS84).
    pub bbox: Option<[f64; 4]>,
}

/// A grid an accuracy disc touches.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CandidateView<'a> {
    pub code: GridCode,
    pub name: &'a str,
    /// 0 when the grid contains the point, else metres to its nearest edge.
    pub distance_m: f64,
}

/// A grid near a point outside the coverage (owned: it travels in [`LookupError`]).
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct GridNear {
    pub code: GridCode,
    pub name: String,
    /// Metres from the point to the grid's nearest edge.
    pub distance_m: f64,
}

/// `/v1/locate`: the unit grid of a point and its chain.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Located<'a> {
    pub point: PointEcho,
    /// The unit grid (on a shared edge or vertex: the smallest code among the grids touching it).
    pub grid: GridView<'a>,
    /// District first, the unit grid last.
    pub chain: Vec<ChainEntry<'a>>,
    /// The point is exactly on an edge or vertex of the grid.
    pub on_boundary: bool,
    /// More than one grid is within the accuracy radius (or the point is on a shared edge).
    pub ambiguous: bool,
    /// The accuracy radius used, metres.
    pub accuracy_m: f64,
    /// Every unit grid within the accuracy radius, nearest first then by code.
    pub candidates: Vec<CandidateView<'a>>,
    pub versions: &'a Versions,
}

/// Components counted by subclass.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ClassCount<'a> {
    pub class: ClassCode,
    pub name: &'a str,
    pub count: u32,
}

/// `/v1/grids/{code}`.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct GridDetail<'a> {
    #[serde(flatten)]
    pub grid: GridView<'a>,
    pub chain: Vec<ChainEntry<'a>>,
    /// Number of direct children (one level down).
    pub children: u32,
    /// Components in the grid (recorded unit grid in it), total and per subclass.
    pub components: ComponentCounts<'a>,
    pub versions: &'a Versions,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ComponentCounts<'a> {
    pub total: u64,
    pub by_class: Vec<ClassCount<'a>>,
}

/// A class named by code and names.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ClassView<'a> {
    pub code: ClassCode,
    pub name: &'a str,
    pub name_en: &'a str,
}

/// A component's attributes.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ComponentView<'a> {
    pub code: ComponentCode,
    pub name: &'a str,
    pub class: ClassView<'a>,
    pub major_class: ClassView<'a>,
    /// `intact` / `damaged` / `missing` / `occupied`.
    pub status: &'static str,
    /// 完好 / 破损 / 丢失 / 占用.
    pub status_zh: &'static str,
    /// Positional accuracy class A (±0.5 m) / B (±1 m) / C (±10 m).
    pub accuracy: Option<&'static str>,
    /// WGS84.
    pub location: LonLat,
    /// 主管部门
    pub dept: Option<UnitView<'a>>,
    /// 权属单位
    pub owner: Option<UnitView<'a>>,
    /// 养护单位
    pub maintainer: Option<UnitView<'a>>,
    /// The unit grid the record names (所在单元网格).
    pub grid: Option<GridCode>,
    pub created: Option<NaiveDate>,
    pub updated: Option<NaiveDate>,
}

/// `/v1/components/{code}`.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ComponentDetail<'a> {
    #[serde(flatten)]
    pub component: ComponentView<'a>,
    /// Chain of the recorded unit grid (of the grid it lies in, if the record names none).
    pub chain: Vec<ChainEntry<'a>>,
    /// The unit grid the component lies in by its location, when that differs from the
    /// recorded one (a data error for GIS staff to fix); absent when they agree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub located_grid: Option<GridCode>,
    pub versions: &'a Versions,
}

/// A component with its distance from the query point.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ComponentHit<'a> {
    #[serde(flatten)]
    pub component: ComponentView<'a>,
    pub distance_m: f64,
}

/// `/v1/components/nearest`.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct NearestComponents<'a> {
    pub point: PointEcho,
    /// Nearest first; equal distances by code.
    pub components: Vec<ComponentHit<'a>>,
    pub versions: &'a Versions,
}

/// `/v1/components?bbox=`.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ComponentPage<'a> {
    /// The box searched, WGS84.
    pub bbox: [f64; 4],
    /// In component code order.
    pub components: Vec<ComponentView<'a>>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<ComponentCode>,
    pub versions: &'a Versions,
}

/// `/v1/components/counts?bbox=`.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ComponentCountsInBox<'a> {
    /// The box counted, WGS84.
    pub bbox: [f64; 4],
    pub total: u64,
    /// Per subclass, ascending code; classes with no component in the box are absent.
    pub by_class: Vec<ClassCount<'a>>,
    pub versions: &'a Versions,
}

/// A parsed class filter: subclasses (`0101`) and/or major classes (`01`), each known to the
/// city's class table. Empty = every class.
pub fn parse_classes(world: &World, list: &str) -> Result<Vec<ClassCode>, LookupError> {
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let code = ClassCode::parse(part).map_err(LookupError::MalformedCode)?;
        if world.city.component_classes.get(code).is_none() {
            return Err(LookupError::UnknownClass(part.to_owned()));
        }
        out.push(code);
    }
    Ok(out)
}

/// The unit grid of `point` and its chain; with `accuracy_m` > 0, every grid the error disc
/// touches. See [`crate::index::GridIndex`] for the rules on shared edges.
pub fn locate(world: &World, point: PointEcho, accuracy_m: f64) -> Result<Located<'_>, LookupError> {
    if !(accuracy_m.is_finite() && (0.0..=MAX_ACCURACY_M).contains(&accuracy_m)) {
        return Err(LookupError::invalid("accuracy", accuracy_m, format!("accuracy must be metres in [0, {MAX_ACCURACY_M}]")));
    }
    let answer = world.grids.locate_within(&world.city, point.coord(), accuracy_m);
    match answer.location {
        Location::Inside { grid, on_boundary } => Ok(Located {
            point,
            grid: grid_view(world, grid),
            chain: chain(world, grid),
            on_boundary,
            ambiguous: answer.ambiguous,
            accuracy_m,
            candidates: answer
                .candidates
                .iter()
                .map(|c| {
                    let g = world.city.grid(c.grid);
                    CandidateView { code: g.code, name: &g.name, distance_m: c.distance_m }
                })
                .collect(),
            versions: &world.versions,
        }),
        Location::Outside { nearest, distance_m } => {
            let near = |id: GridId, distance_m: f64| {
                let g = world.city.grid(id);
                GridNear { code: g.code, name: g.name.clone(), distance_m }
            };
            Err(LookupError::OutsideCoverage {
                point,
                nearest: near(nearest, distance_m),
                candidates: answer.candidates.iter().map(|c| near(c.grid, c.distance_m)).collect(),
            })
        }
        Location::Nowhere => Err(LookupError::NoCoverage),
    }
}

/// A grid of any level by its code, with its chain, children count and component counts.
pub fn grid_detail<'a>(world: &'a World, code: &str) -> Result<GridDetail<'a>, LookupError> {
    let (parsed, _) = GridCode::parse(code, &world.city.hierarchy).map_err(LookupError::MalformedCode)?;
    let id = world.city.grid_by_code(parsed).ok_or_else(|| LookupError::UnknownGrid(code.to_owned()))?;
    let counts = &world.class_counts[id.0 as usize];
    let by_class = counts.iter().map(|&(class, count)| ClassCount { class, name: class_name(world, class), count }).collect();
    Ok(GridDetail {
        grid: grid_view(world, id),
        chain: chain(world, id),
        children: world.child_counts[id.0 as usize],
        components: ComponentCounts { total: counts.iter().map(|&(_, n)| n as u64).sum(), by_class },
        versions: &world.versions,
    })
}

/// A component by its 16-digit code, with its units and its grid chain.
pub fn component_detail<'a>(world: &'a World, code: &str) -> Result<ComponentDetail<'a>, LookupError> {
    let parsed = ComponentCode::parse(code).map_err(LookupError::MalformedCode)?;
    let c = world.city.component_by_code(parsed).ok_or_else(|| LookupError::UnknownComponent(code.to_owned()))?;
    let located = world.grids.locate(&world.city, c.location).grid();
    let grid = c.grid.or(located);
    Ok(ComponentDetail {
        component: component_view(world, c),
        chain: grid.map(|g| chain(world, g)).unwrap_or_default(),
        located_grid: match (c.grid, located) {
            (Some(recorded), Some(l)) if recorded != l => Some(world.city.grid(l).code),
            _ => None,
        },
        versions: &world.versions,
    })
}

/// The `k` components nearest `point` (of `classes`, within `max_distance_m` if given).
pub fn nearest_components<'a>(
    world: &'a World,
    point: PointEcho,
    k: usize,
    classes: &[ClassCode],
    max_distance_m: Option<f64>,
) -> Result<NearestComponents<'a>, LookupError> {
    if !(1..=MAX_K).contains(&k) {
        return Err(LookupError::invalid("k", k, format!("k must be between 1 and {MAX_K}")));
    }
    if let Some(d) = max_distance_m
        && !(d.is_finite() && (0.0..=MAX_DISTANCE_M).contains(&d))
    {
        return Err(LookupError::invalid("max_distance", d, format!("max_distance must be metres in [0, {MAX_DISTANCE_M}]")));
    }
    let hits = world.components.nearest(&world.city, point.coord(), k, Some(classes), max_distance_m);
    Ok(NearestComponents {
        point,
        components: hits
            .into_iter()
            .map(|(i, d)| ComponentHit { component: component_view(world, &world.city.components[i as usize]), distance_m: d })
            .collect(),
        versions: &world.versions,
    })
}

/// Components in a WGS84 box (edges included) counted by subclass.
pub fn count_in_bbox<'a>(world: &'a World, bbox: [f64; 4], classes: &[ClassCode]) -> Result<ComponentCountsInBox<'a>, LookupError> {
    let rect = check_bbox(bbox)?;
    let counts = world.components.count_by_class(&world.city, rect, Some(classes));
    Ok(ComponentCountsInBox {
        bbox,
        total: counts.values().map(|&n| n as u64).sum(),
        by_class: counts.into_iter().map(|(class, n)| ClassCount { class, name: class_name(world, class), count: n as u32 }).collect(),
        versions: &world.versions,
    })
}

fn check_bbox(bbox: [f64; 4]) -> Result<Rect<f64>, LookupError> {
    let [x0, y0, x1, y1] = bbox;
    let text = || format!("{x0},{y0},{x1},{y1}");
    if !bbox.iter().all(|v| v.is_finite())
        || !(-180.0..=180.0).contains(&x0)
        || !(-180.0..=180.0).contains(&x1)
        || !(-90.0..=90.0).contains(&y0)
        || !(-90.0..=90.0).contains(&y1)
    {
        return Err(LookupError::invalid("bbox", text(), "bbox must be minlon,minlat,maxlon,maxlat in degrees"));
    }
    if x0 > x1 || y0 > y1 {
        return Err(LookupError::invalid("bbox", text(), "bbox minimum is greater than its maximum"));
    }
    Ok(Rect::new(Coord { x: x0, y: y0 }, Coord { x: x1, y: y1 }))
}

/// A page of the components in a WGS84 box, in code order after `cursor`.
pub fn components_in_bbox<'a>(
    world: &'a World,
    bbox: [f64; 4],
    classes: &[ClassCode],
    cursor: Option<&str>,
    limit: usize,
) -> Result<ComponentPage<'a>, LookupError> {
    let rect = check_bbox(bbox)?;
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(LookupError::invalid("limit", limit, format!("limit must be between 1 and {MAX_PAGE}")));
    }
    let after = match cursor {
        None => None,
        Some(c) => Some(
            ComponentCode::parse(c).map_err(|_| LookupError::invalid("cursor", c, "cursor must be the next_cursor of a previous page (a component code)"))?,
        ),
    };
    let (indices, next) = world.components.in_bbox(&world.city, rect, Some(classes), after, limit);
    Ok(ComponentPage {
        bbox,
        components: indices.into_iter().map(|i| component_view(world, &world.city.components[i as usize])).collect(),
        next_cursor: next,
        versions: &world.versions,
    })
}

/// The chain of a grid, district first.
pub fn chain(world: &World, id: GridId) -> Vec<ChainEntry<'_>> {
    world
        .city
        .chain(id)
        .into_iter()
        .map(|g| {
            let grid = world.city.grid(g);
            let level = &world.city.hierarchy.levels[grid.level as usize];
            ChainEntry {
                level: grid.level as usize + 1,
                level_name: &level.name,
                level_name_en: &level.name_en,
                code: grid.code,
                name: &grid.name,
                unit: grid.unit.map(|u| unit_view(world, u)),
                chief: grid.chief.as_ref(),
            }
        })
        .collect()
}

pub fn grid_view(world: &World, id: GridId) -> GridView<'_> {
    let grid: &Grid = world.city.grid(id);
    let level = &world.city.hierarchy.levels[grid.level as usize];
    GridView {
        code: grid.code,
        name: &grid.name,
        level: grid.level as usize + 1,
        level_name: &level.name,
        level_name_en: &level.name_en,
        parent: grid.parent.map(|p| world.city.grid(p).code),
        unit: grid.unit.map(|u| unit_view(world, u)),
        chief: grid.chief.as_ref(),
        valid_from: grid.valid_from,
        valid_to: grid.valid_to,
        area_m2: world.grid_shapes[id.0 as usize].area_m2,
        bbox: world.grid_shapes[id.0 as usize].bbox,
    }
}

pub fn component_view<'a>(world: &'a World, c: &Component) -> ComponentView<'a> {
    let table = &world.city.component_classes;
    let class_view = |code: ClassCode| {
        let (name, name_en) = table.get(code).map(|e| (e.name.as_str(), e.name_en.as_str())).unwrap_or_default();
        ClassView { code, name, name_en }
    };
    ComponentView {
        code: c.code,
        name: world.city.names.get(c.name),
        class: class_view(c.class),
        major_class: class_view(c.class.major_class()),
        status: c.status.en(),
        status_zh: c.status.zh(),
        accuracy: c.accuracy.map(|a| a.as_str()),
        location: c.location.into(),
        dept: c.dept.map(|u| unit_view(world, u)),
        owner: c.owner.map(|u| unit_view(world, u)),
        maintainer: c.maintainer.map(|u| unit_view(world, u)),
        grid: c.grid.map(|g| world.city.grid(g).code),
        created: c.created,
        updated: c.updated,
    }
}

fn unit_view(world: &World, id: UnitId) -> UnitView<'_> {
    let u = world.city.units.get(id);
    UnitView { code: u.code.as_deref(), name: &u.name, phone: u.phone.as_deref() }
}

fn class_name(world: &World, class: ClassCode) -> &str {
    world.city.component_classes.get(class).map(|e| e.name.as_str()).unwrap_or_default()
}
