//! The lookup API, thin over [`crate::lookup`]: `/v1/locate`, `/v1/grids/{code}`,
//! `/v1/components/{code}`, `/v1/components/nearest`, `/v1/components?bbox=`.

use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::params::Params;
use crate::lookup::{self, PointCrs, PointEcho, PointInput};
use crate::lookup::{ComponentCountsInBox, ComponentDetail, ComponentPage, GridDetail, Located, NearestComponents};

/// The point of a query: `lon`, `lat` (and `crs` a datum), or `x` (easting), `y` (northing)
/// with `crs` a projected CRS such as `EPSG:4549` ([`PointInput`]).
pub(crate) fn point(p: &Params) -> Result<PointEcho, ApiError> {
    let number = |name: &'static str| p.parsed::<f64>(name, "a decimal number");
    let input = PointInput { lon: number("lon")?, lat: number("lat")?, x: number("x")?, y: number("y")?, crs: p.get("crs") };
    Ok(input.require()?)
}

/// `GET /v1/locate?lon=&lat=[&crs=][&accuracy=]`
#[utoipa::path(get, path = "/v1/locate", tag = "lookup",
    summary = "the grid of a point, its chain of grids and their units and chiefs",
    params(("lon" = Option<f64>, Query, description = "longitude (with lat; a datum crs)"),
        ("lat" = Option<f64>, Query, description = "latitude"),
        ("x" = Option<f64>, Query, description = "easting, metres (with y; a projected crs such as EPSG:4549)"),
        ("y" = Option<f64>, Query, description = "northing, metres"),
        ("crs" = Option<String>, Query, description = "wgs84 (default), cgcs2000, gcj02, bd09, EPSG:4326, EPSG:4490, or a projected EPSG code (x/y)"),
        ("accuracy" = Option<f64>, Query, description = "GPS accuracy radius, metres: grids within it are candidates")),
    responses((status = 200, description = "the grid and its chain", body = Located),
        (status = 400, description = "a parameter is missing or unusable", body = ErrorBody),
        (status = 404, description = "outside_coverage: the point is in no grid (the nearest are in details)", body = ErrorBody),
        (status = 503, description = "no_grids: the city has no grid layer yet", body = ErrorBody)))]
pub async fn locate(State(state): State<AppState>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let p = Params::parse(q.as_deref())?;
    let point = point(&p)?;
    let accuracy = p.parsed::<f64>("accuracy", "metres (a decimal number)")?.unwrap_or(0.0);
    let world = state.world.load();
    Ok(json(&lookup::locate(&world, point, accuracy)?))
}

/// `GET /v1/grids/{code}`
#[utoipa::path(get, path = "/v1/grids/{code}", tag = "lookup",
    summary = "a grid of any level: its chain, units, chief, children and component counts",
    params(("code" = String, Path, description = "the grid code")),
    responses((status = 200, description = "the grid", body = GridDetail),
        (status = 400, description = "malformed_code", body = ErrorBody),
        (status = 404, description = "grid_not_found", body = ErrorBody)))]
pub async fn grid(State(state): State<AppState>, Path(code): Path<String>) -> Result<Response, ApiError> {
    let world = state.world.load();
    Ok(json(&lookup::grid_detail(&world, &code)?))
}

/// `GET /v1/components/{code}`
#[utoipa::path(get, path = "/v1/components/{code}", tag = "lookup",
    summary = "a component (部件): class, status, units, its grid and chain",
    params(("code" = String, Path, description = "the 16-digit component code")),
    responses((status = 200, description = "the component", body = ComponentDetail),
        (status = 400, description = "malformed_code", body = ErrorBody),
        (status = 404, description = "component_not_found", body = ErrorBody)))]
pub async fn component(State(state): State<AppState>, Path(code): Path<String>) -> Result<Response, ApiError> {
    let world = state.world.load();
    Ok(json(&lookup::component_detail(&world, &code)?))
}

/// `GET /v1/components/nearest?lon=&lat=[&crs=][&k=][&class=][&max_distance=]`
#[utoipa::path(get, path = "/v1/components/nearest", tag = "lookup",
    summary = "the k components nearest a point",
    params(("lon" = Option<f64>, Query, description = "longitude (with lat; a datum crs)"),
        ("lat" = Option<f64>, Query, description = "latitude"),
        ("x" = Option<f64>, Query, description = "easting, metres (with y; a projected crs such as EPSG:4549)"),
        ("y" = Option<f64>, Query, description = "northing, metres"),
        ("crs" = Option<String>, Query, description = "wgs84 (default), cgcs2000, gcj02, bd09, EPSG:4326, EPSG:4490, or a projected EPSG code (x/y)"),
        ("k" = Option<usize>, Query, description = "how many (default 10, at most 1000)"),
        ("class" = Option<String>, Query, description = "component classes, comma-separated: subclasses (0101) or major classes (01)"),
        ("max_distance" = Option<f64>, Query, description = "search radius, metres (at most 100000)")),
    responses((status = 200, description = "the components, nearest first", body = NearestComponents),
        (status = 400, description = "a parameter is missing or unusable", body = ErrorBody)))]
pub async fn nearest(State(state): State<AppState>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let p = Params::parse(q.as_deref())?;
    let point = point(&p)?;
    let k = p.parsed::<usize>("k", "a whole number")?.unwrap_or(10);
    let max_distance = p.parsed::<f64>("max_distance", "metres (a decimal number)")?;
    let world = state.world.load();
    let classes = lookup::parse_classes(&world, p.get("class").unwrap_or(""))?;
    Ok(json(&lookup::nearest_components(&world, point, k, &classes, max_distance)?))
}

/// `GET /v1/components?bbox=minlon,minlat,maxlon,maxlat[&crs=][&class=][&limit=][&cursor=]`.
/// With a `crs` other than WGS84 the two corners are converted (the box stays axis-aligned).
#[utoipa::path(get, path = "/v1/components", tag = "lookup",
    summary = "the components in a box, a page at a time",
    params(("bbox" = String, Query, description = "minlon,minlat,maxlon,maxlat (minx,miny,maxx,maxy in metres with a projected crs)"),
        ("crs" = Option<String>, Query, description = "the CRS of bbox: a datum (default wgs84) or a projected EPSG code"),
        ("class" = Option<String>, Query, description = "component classes, comma-separated: subclasses (0101) or major classes (01)"),
        ("limit" = Option<usize>, Query, description = "page size (default 1000, at most 10000)"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "a page of components", body = ComponentPage),
        (status = 400, description = "a parameter is missing or unusable", body = ErrorBody),
        (status = 429, description = "rate_limited: too many pages of over 1,000 components from this client (Retry-After)", body = ErrorBody)))]
pub async fn in_bbox(State(state): State<AppState>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let p = Params::parse(q.as_deref())?;
    let bbox = bbox(&p)?;
    let limit = p.parsed::<usize>("limit", "a whole number")?.unwrap_or(lookup::DEFAULT_PAGE);
    let world = state.world.load();
    let classes = lookup::parse_classes(&world, p.get("class").unwrap_or(""))?;
    Ok(json(&lookup::components_in_bbox(&world, bbox, &classes, p.get("cursor"), limit)?))
}

/// `GET /v1/components/counts?bbox=minlon,minlat,maxlon,maxlat[&crs=][&class=]`.
#[utoipa::path(get, path = "/v1/components/counts", tag = "lookup",
    summary = "component counts in a box, by class",
    params(("bbox" = String, Query, description = "minlon,minlat,maxlon,maxlat (minx,miny,maxx,maxy in metres with a projected crs)"),
        ("crs" = Option<String>, Query, description = "the CRS of bbox: a datum (default wgs84) or a projected EPSG code"),
        ("class" = Option<String>, Query, description = "component classes, comma-separated: subclasses (0101) or major classes (01)")),
    responses((status = 200, description = "the counts", body = ComponentCountsInBox),
        (status = 400, description = "a parameter is missing or unusable", body = ErrorBody)))]
pub async fn counts(State(state): State<AppState>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let p = Params::parse(q.as_deref())?;
    let bbox = bbox(&p)?;
    let world = state.world.load();
    let classes = lookup::parse_classes(&world, p.get("class").unwrap_or(""))?;
    Ok(json(&lookup::count_in_bbox(&world, bbox, &classes)?))
}

/// `bbox` (and `crs`): with a datum other than WGS84 the two corners are converted. With a
/// projected `crs` the box is minx,miny,maxx,maxy in metres (easting, northing), and the
/// lookup uses the lon/lat envelope of its four converted corners (a slightly larger box: the
/// grid of a projected CRS is turned against the meridians by up to ~1–2° in China).
pub(crate) fn bbox(p: &Params) -> Result<[f64; 4], ApiError> {
    let bbox = parse_bbox(p.required("bbox")?)?;
    let crs = PointCrs::parse(p.get("crs"))?;
    if bbox[0] > bbox[2] || bbox[1] > bbox[3] {
        return Ok(bbox); // the lookup rejects it with its own message
    }
    let bad =
        |message: String| ApiError::bad_request("invalid_parameter", message).with_details(serde_json::json!({"parameter": "bbox", "value": p.get("bbox")}));
    match crs {
        PointCrs::Datum(crs) => {
            let corner =
                |lon, lat| PointEcho::new(lon, lat, crs).map_err(|_| bad("bbox corners must be longitudes in [-180, 180] and latitudes in [-90, 90]".into()));
            let (a, b) = (corner(bbox[0], bbox[1])?, corner(bbox[2], bbox[3])?);
            Ok([a.wgs84.lon, a.wgs84.lat, b.wgs84.lon, b.wgs84.lat])
        }
        PointCrs::Projected(crs) => {
            let mut out = [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY];
            for (x, y) in [(bbox[0], bbox[1]), (bbox[2], bbox[1]), (bbox[0], bbox[3]), (bbox[2], bbox[3])] {
                let (lon, lat) = crs.to_wgs84(x, y).map_err(|e| bad(format!("bbox corner ({x}, {y}): {e}")))?;
                out = [out[0].min(lon), out[1].min(lat), out[2].max(lon), out[3].max(lat)];
            }
            Ok(out)
        }
    }
}

fn parse_bbox(raw: &str) -> Result<[f64; 4], ApiError> {
    let bad = || {
        ApiError::bad_request("invalid_parameter", "bbox must be four decimal numbers: minlon,minlat,maxlon,maxlat")
            .with_details(serde_json::json!({"parameter": "bbox", "value": raw}))
    };
    let parts: Vec<f64> = raw.split(',').map(|s| s.trim().parse::<f64>()).collect::<Result<_, _>>().map_err(|_| bad())?;
    <[f64; 4]>::try_from(parts).map_err(|_| bad())
}

/// Serialises an answer that borrows from the snapshot, into one buffer sized for a typical
/// answer (axum's `Json` starts at 128 bytes and regrows several times for a 3 KB chain).
pub(super) fn json<T: Serialize>(value: &T) -> Response {
    let mut buf = Vec::with_capacity(4096);
    match serde_json::to_writer(&mut buf, value) {
        Ok(()) => ([(header::CONTENT_TYPE, "application/json")], buf).into_response(),
        Err(e) => ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("cannot encode the answer: {e}")).into_response(),
    }
}
