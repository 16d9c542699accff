//! OGC API – Features (Part 1 Core with GeoJSON and an OpenAPI 3.0 definition, Part 2 CRS by
//! reference) over the snapshot being served, under `/ogc`, so that GDAL (`OAPIF:`), QGIS and
//! other OGC clients browse and download the grids, components and zones:
//!
//! | path | answer |
//! |---|---|
//! | `/ogc` | landing page: links to the API definition, conformance, collections |
//! | `/ogc/conformance` | the conformance classes |
//! | `/ogc/api` | the OpenAPI 3.0 definition of these paths (`service-desc`) |
//! | `/ogc/collections`, `/ogc/collections/{id}` | `grids`, `components`, `zones`: extent, CRSs |
//! | `/ogc/collections/{id}/items` | a page of features (GeoJSON), with `next` / `prev` links; every feature with `limit=all` (GeoJSON) or `f=fgb` (FlatGeobuf), streamed (see [`download`]) |
//! | `/ogc/collections/{id}/items/{featureId}` | one feature: a grid or component code, `layer:id` of a zone |
//!
//! Reads need no token. Every bad or unknown parameter is a 400 in the API's JSON error format.
//! Coordinates are in the requested CRS's own axis order (see [`crs`]). Plain `serde_json`
//! writes the documents: the few OGC structures are simpler to write than to map onto a crate's
//! types, and a page of features is serialised straight from the model.

mod crs;
mod download;
mod items;
mod openapi;
mod query;

use std::sync::{Arc, Mutex, Weak};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde_json::{Value, json};

use self::crs::{BboxFilter, CRS84, OgcCrs};
use self::items::{Collection, Download, Page, Selection};
use self::query::{Format, Limit, Query, Start};
use super::AppState;
use super::error::ApiError;
use crate::world::World;

const JSON: &str = "application/json";
const GEOJSON: &str = "application/geo+json";
const FLATGEOBUF: &str = "application/flatgeobuf";
const OPENAPI: &str = "application/vnd.oai.openapi+json;version=3.0";

/// The conformance classes this API implements.
pub const CONFORMANCE: [&str; 4] = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
];

/// `GET /ogc`: the landing page.
pub async fn landing(State(state): State<AppState>, RawQuery(q): RawQuery, headers: HeaderMap) -> Result<Response, ApiError> {
    Query::parse(q.as_deref(), &["f"])?;
    let base = base_url(&headers);
    let world = state.world.load();
    let body = json!({
        "title": format!("citygrid — {}", world.meta.name),
        "description": "OGC API – Features of the city's grids (网格, every level), components (部件) and \
                        responsibility zones (责任区), from the layer versions being served",
        "links": [
            link(&base, "self", JSON, "this document"),
            link(&format!("{base}/api"), "service-desc", OPENAPI, "the API definition (OpenAPI 3.0)"),
            link(&format!("{}/docs", super::base_url(&headers)), "service-doc", "text/html", "the whole API's documentation"),
            link(&format!("{base}/conformance"), "conformance", JSON, "the conformance classes implemented"),
            link(&format!("{base}/conformance"), "http://www.opengis.net/def/rel/ogc/1.0/conformance", JSON, "the conformance classes implemented"),
            link(&format!("{base}/collections"), "data", JSON, "the feature collections"),
            link(&format!("{base}/collections"), "http://www.opengis.net/def/rel/ogc/1.0/data", JSON, "the feature collections"),
        ],
    });
    Ok(respond(&body, JSON))
}

/// `GET /ogc/conformance`.
pub async fn conformance(RawQuery(q): RawQuery, headers: HeaderMap) -> Result<Response, ApiError> {
    Query::parse(q.as_deref(), &["f"])?;
    let base = base_url(&headers);
    let body = json!({
        "conformsTo": CONFORMANCE,
        "links": [link(&format!("{base}/conformance"), "self", JSON, "this document")],
    });
    Ok(respond(&body, JSON))
}

/// `GET /ogc/api`: the OpenAPI 3.0 definition of the `/ogc` paths.
pub async fn api(State(state): State<AppState>, RawQuery(q): RawQuery, headers: HeaderMap) -> Result<Response, ApiError> {
    Query::parse(q.as_deref(), &["f"])?;
    let world = state.world.load();
    Ok(respond(&api_document(&world, &base_url(&headers)), OPENAPI))
}

/// The OpenAPI 3.0 definition of the `/ogc` paths for the OGC API reached at `base` (`…/ogc`):
/// what `/ogc/api` serves, and what the whole API's description (`/openapi.json`) folds in.
pub(crate) fn api_document(world: &Arc<World>, base: &str) -> Value {
    openapi::document(base, &world.meta.name, &info(world).crs)
}

/// `GET /ogc/collections`.
pub async fn collections(State(state): State<AppState>, RawQuery(q): RawQuery, headers: HeaderMap) -> Result<Response, ApiError> {
    Query::parse(q.as_deref(), &["f"])?;
    let base = base_url(&headers);
    let world = state.world.load();
    let info = info(&world);
    let body = json!({
        "links": [link(&format!("{base}/collections"), "self", JSON, "this document")],
        "crs": info.crs.iter().map(|c| c.uri.as_str()).collect::<Vec<_>>(),
        "collections": Collection::ALL.map(|c| collection_json(&world, &info, &base, c)),
    });
    Ok(respond(&body, JSON))
}

/// `GET /ogc/collections/{id}`.
pub async fn collection(State(state): State<AppState>, Path(id): Path<String>, RawQuery(q): RawQuery, headers: HeaderMap) -> Result<Response, ApiError> {
    let c = Collection::from_id(&id)?;
    Query::parse(q.as_deref(), &["f"])?;
    let world = state.world.load();
    let info = info(&world);
    Ok(respond(&collection_json(&world, &info, &base_url(&headers), c), JSON))
}

/// `GET /ogc/collections/{id}/items`.
pub async fn items(State(state): State<AppState>, Path(id): Path<String>, RawQuery(q): RawQuery, headers: HeaderMap) -> Result<Response, ApiError> {
    let c = Collection::from_id(&id)?;
    let query = Query::parse_any_format(q.as_deref(), &c.items_params())?;
    let format = match query.get("f") {
        None if accepts_flatgeobuf(&headers) => Format::FlatGeobuf,
        _ => query.format()?,
    };
    let limit = query.items_limit(format)?;
    let world = state.world.load();
    let info = info(&world);
    let out_crs = match query.get("crs") {
        Some(v) => crs::choose(&info.crs, "crs", v)?.clone(),
        None => OgcCrs::crs84(),
    };
    let bbox_crs = match query.get("bbox-crs") {
        Some(v) => crs::choose(&info.crs, "bbox-crs", v)?.clone(),
        None => OgcCrs::crs84(),
    };
    let bbox = query.get("bbox").map(|b| BboxFilter::parse(b, &bbox_crs)).transpose()?;
    let datetime = query.datetime()?;
    if format == Format::FlatGeobuf || limit == Limit::All {
        // The whole selection (or the first `limit` features of it) in one streamed answer.
        let max = match limit {
            Limit::Page(n) => Some(n),
            Limit::All => None,
        };
        let world: Arc<World> = Arc::clone(&world);
        let pairs = query.pairs.clone();
        let (picked, world) = crate::http::error::blocking("the download task", move || (Download::new(&world, c, &query, bbox, datetime, max), world)).await?;
        let picked = picked?;
        let base = base_url(&headers);
        let head = json!({
            "numberMatched": picked.count,
            "numberReturned": picked.count,
            "timeStamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "links": [
                link(&with_query(&format!("{base}/collections/{}/items", c.id()), &pairs, None, None), "self", GEOJSON, "every matching feature"),
                link(&format!("{base}/collections/{}", c.id()), "collection", JSON, "the collection"),
            ],
        });
        return Ok(download::respond(world, c, picked, out_crs, format, head));
    }
    let Limit::Page(limit) = limit else { unreachable!("limit=all is streamed above") };
    let selection = Selection { bbox: bbox.as_ref(), datetime, crs: &out_crs, limit, start: query.start()? };
    // Only the grids have validity dates; `datetime` on the others is checked and matches all.
    let page: Page = match c {
        Collection::Grids => items::grids(&world, &query, &selection)?,
        Collection::Components => items::components(&world, &query, &selection)?,
        Collection::Zones => items::zones(&world, &query, &selection)?,
    };

    let base = base_url(&headers);
    let items_url = format!("{base}/collections/{}/items", c.id());
    let mut links = vec![link(&with_query(&items_url, &query.pairs, None, None), "self", GEOJSON, "this page")];
    if let Some(next) = page.next {
        links.push(link(&with_query(&items_url, &query.pairs, Some(next), Some(selection.limit)), "next", GEOJSON, "the next page"));
    }
    if let Start::Offset(offset) = selection.start
        && offset > 0
    {
        let prev = Start::Offset(offset.saturating_sub(selection.limit));
        links.push(link(&with_query(&items_url, &query.pairs, Some(prev), Some(selection.limit)), "prev", GEOJSON, "the previous page"));
    }
    links.push(link(&format!("{base}/collections/{}", c.id()), "collection", JSON, "the collection"));
    links.push(link(&download_url(&items_url, &query.pairs, "fgb"), "alternate", FLATGEOBUF, "every matching feature as one FlatGeobuf file"));

    let mut body = Vec::with_capacity(page.features.len() + 1024);
    body.extend_from_slice(b"{\"type\":\"FeatureCollection\",");
    let head = json!({
        "numberMatched": page.matched,
        "numberReturned": page.returned,
        "timeStamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "links": links,
    });
    let head = serde_json::to_vec(&head).expect("JSON of plain values");
    body.extend_from_slice(&head[1..head.len() - 1]);
    body.extend_from_slice(b",\"features\":[");
    body.extend_from_slice(&page.features);
    body.extend_from_slice(b"]}");
    Ok(bytes_response(body, GEOJSON, Some(&out_crs)))
}

/// `GET /ogc/collections/{id}/items/{featureId}`.
pub async fn item(
    State(state): State<AppState>,
    Path((id, feature_id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let c = Collection::from_id(&id)?;
    let query = Query::parse(q.as_deref(), &["f", "crs"])?;
    let world = state.world.load();
    let info = info(&world);
    let out_crs = match query.get("crs") {
        Some(v) => crs::choose(&info.crs, "crs", v)?.clone(),
        None => OgcCrs::crs84(),
    };
    let base = base_url(&headers);
    let self_url = with_query(&format!("{base}/collections/{}/items/{feature_id}", c.id()), &query.pairs, None, None);
    let links =
        json!([link(&self_url, "self", GEOJSON, "this feature"), link(&format!("{base}/collections/{}", c.id()), "collection", JSON, "the collection"),]);
    let not_found = || {
        ApiError::new(StatusCode::NOT_FOUND, "feature_not_found", format!("collection {} has no feature {feature_id:?}", c.id()))
            .with_details(json!({"collection": c.id(), "id": feature_id}))
    };
    let mut body = Vec::with_capacity(4096);
    match c {
        Collection::Grids => {
            let code = crate::model::GridCode::parse(&feature_id, &world.city.hierarchy).map_err(|_| not_found())?.0;
            let id = world.city.grid_by_code(code).ok_or_else(not_found)?;
            items::write_grid(&mut body, &world, id, &out_crs, Some(&links))?;
        }
        Collection::Components => {
            let code = crate::model::ComponentCode::parse(&feature_id).map_err(|_| not_found())?;
            let component = world.city.component_by_code(code).ok_or_else(not_found)?;
            items::write_component(&mut body, &world, component, &out_crs, Some(&links))?;
        }
        Collection::Zones => {
            let zone = world.city.zones.iter().find(|z| items::zone_id(z) == feature_id).ok_or_else(not_found)?;
            items::write_zone(&mut body, &world, zone, &out_crs, Some(&links))?;
        }
    }
    Ok(bytes_response(body, GEOJSON, Some(&out_crs)))
}

// ---------------------------------------------------------------- collections

/// What the collection documents say of a snapshot, computed once per snapshot (a walk over
/// every component).
struct Info {
    world: Weak<World>,
    /// The CRSs offered for its data.
    crs: Vec<OgcCrs>,
    /// Lon/lat extents of the three collections.
    extents: [Option<[f64; 4]>; 3],
    /// The grids' validity: first day (`None`: some grid has no start), last day.
    grid_days: Option<(Option<NaiveDate>, Option<NaiveDate>)>,
}

static INFO: Mutex<Option<Arc<Info>>> = Mutex::new(None);

/// The [`Info`] of `world`, from the last snapshot's cache when it is that one. (The cache holds
/// a weak pointer, so a dropped snapshot's address is never taken for a new one.)
fn info(world: &Arc<World>) -> Arc<Info> {
    let mut cache = INFO.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(info) = cache.as_ref()
        && std::ptr::eq(info.world.as_ptr(), Arc::as_ptr(world))
    {
        return info.clone();
    }
    let info = Arc::new(compute_info(world));
    *cache = Some(info.clone());
    info
}

fn compute_info(world: &Arc<World>) -> Info {
    let union = |a: Option<[f64; 4]>, b: Option<[f64; 4]>| match (a, b) {
        (Some(a), Some(b)) => Some([a[0].min(b[0]), a[1].min(b[1]), a[2].max(b[2]), a[3].max(b[3])]),
        (a, b) => a.or(b),
    };
    let grids = world.grid_shapes.iter().fold(None, |acc, s| union(acc, s.bbox));
    let components = world.city.components.iter().fold(None, |acc, c| {
        let (x, y) = (c.location.x, c.location.y);
        union(acc, Some([x, y, x, y]))
    });
    let zones = world.city.zones.iter().fold(None, |acc, z| {
        use geo::BoundingRect;
        union(acc, z.geometry.bounding_rect().map(|r| [r.min().x, r.min().y, r.max().x, r.max().y]))
    });
    let all = union(union(grids, components), zones);
    let grid_days = (!world.city.grids.is_empty() && world.city.grids.iter().any(|g| g.valid_from.is_some() || g.valid_to.is_some())).then(|| {
        let from = world.city.grids.iter().map(|g| g.valid_from).try_fold(NaiveDate::MAX, |m, d| d.map(|d| m.min(d)));
        let to = world.city.grids.iter().map(|g| g.valid_to).try_fold(NaiveDate::MIN, |m, d| d.map(|d| m.max(d)));
        (from, to)
    });
    Info { world: Arc::downgrade(world), crs: crs::offered(all, world.meta.crs.as_deref()), extents: [grids, components, zones], grid_days }
}

fn collection_json(world: &World, info: &Info, base: &str, c: Collection) -> Value {
    let (title, description, count) = match c {
        Collection::Grids => (
            "网格 grids",
            format!(
                "The grid hierarchy, every level (1 = district …), one polygon each; id = the grid code. \
                 Filters: level, parent, code; datetime selects by validity (valid_from/valid_to, China days). Levels: {}",
                world.city.hierarchy.levels.iter().enumerate().map(|(i, l)| format!("{} {}", i + 1, l.name)).collect::<Vec<_>>().join(", ")
            ),
            world.city.grids.len(),
        ),
        Collection::Components => (
            "部件 components",
            "City components (manhole covers, lamps, …), one point each; id = the 16-digit component code. \
             Filters: class (subclass 0101 or major class 01, comma-separated), grid (a grid code of any level: \
             the components recorded in it or below), dept, owner, maintainer (unit names), status (完好/破损/丢失/占用)."
                .to_owned(),
            world.city.components.len(),
        ),
        Collection::Zones => (
            "责任区 zones",
            "Responsibility polygons of every zone layer (road sections, river segments…); id = layer:id. Filter: layer.".to_owned(),
            world.city.zones.len(),
        ),
    };
    let index = Collection::ALL.iter().position(|&x| x == c).expect("a collection");
    let mut extent = serde_json::Map::new();
    if let Some(bbox) = info.extents[index] {
        extent.insert("spatial".into(), json!({"bbox": [bbox], "crs": CRS84}));
    }
    if c == Collection::Grids
        && let Some((from, to)) = info.grid_days
    {
        let start = from.map(|d| format!("{d}T00:00:00+08:00"));
        let end = to.map(|d| format!("{d}T23:59:59+08:00"));
        extent.insert("temporal".into(), json!({"interval": [[start, end]], "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"}));
    }
    let url = format!("{base}/collections/{}", c.id());
    let mut body = json!({
        "id": c.id(),
        "title": title,
        // The collections are the datasets of /v1/layers by the same names.
        "description": format!("{description} {count} features in layer version {}.",
            world.versions.get(c.id()).map_or("(none)".to_owned(), |v| v.to_string())),
        "itemType": "feature",
        "crs": info.crs.iter().map(|c| c.uri.as_str()).collect::<Vec<_>>(),
        "storageCrs": CRS84,
        "links": [
            link(&url, "self", JSON, "this collection"),
            link(&format!("{url}/items"), "items", GEOJSON, &format!("the {} as GeoJSON", c.id())),
            link(&format!("{url}/items?f=fgb"), "enclosure", FLATGEOBUF, &format!("every one of the {} as one FlatGeobuf file (streamed, no spatial index)", c.id())),
            link(&format!("{url}/items?limit=all"), "enclosure", GEOJSON, &format!("every one of the {} as one GeoJSON FeatureCollection (streamed)", c.id())),
        ],
    });
    if !extent.is_empty() {
        body["extent"] = Value::Object(extent);
    }
    body
}

// ---------------------------------------------------------------- HTTP helpers

fn link(href: &str, rel: &str, media: &str, title: &str) -> Value {
    json!({"href": href, "rel": rel, "type": media, "title": title})
}

/// The API's base URL as the client reached it: `Host` (or `X-Forwarded-Host`) and
/// `X-Forwarded-Proto` (default http), then `/ogc`.
/// The OGC API's root as the client sees it.
fn base_url(headers: &HeaderMap) -> String {
    format!("{}/ogc", super::base_url(headers))
}

/// `url` with the request's parameters (empty ones dropped); with `start`, the page position
/// replaced by it and `limit` set.
fn with_query(url: &str, pairs: &[(String, String)], start: Option<Start>, limit: Option<usize>) -> String {
    let mut kept: Vec<(String, String)> =
        pairs.iter().filter(|(k, v)| !v.trim().is_empty() && (start.is_none() || !matches!(k.as_str(), "offset" | "cursor" | "limit"))).cloned().collect();
    if let Some(start) = start {
        if let Some(limit) = limit {
            kept.push(("limit".into(), limit.to_string()));
        }
        match start {
            Start::Offset(o) => kept.push(("offset".into(), o.to_string())),
            Start::After(code) => kept.push(("cursor".into(), code.to_string())),
            Start::Begin => {}
        }
    }
    if kept.is_empty() {
        return url.to_owned();
    }
    format!("{url}?{}", serde_urlencoded::to_string(&kept).unwrap_or_default())
}

/// The whole selection of an items request in format `f`: its filters, without paging.
fn download_url(items_url: &str, pairs: &[(String, String)], f: &str) -> String {
    let mut kept: Vec<(String, String)> = pairs.iter().filter(|(k, _)| !matches!(k.as_str(), "f" | "limit" | "offset" | "cursor")).cloned().collect();
    kept.push(("f".into(), f.into()));
    with_query(items_url, &kept, None, None)
}

/// `Accept` names FlatGeobuf (and the request has no `f`).
fn accepts_flatgeobuf(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|m| {
        let m = m.split(';').next().unwrap_or("").trim();
        m.eq_ignore_ascii_case(FLATGEOBUF)
    })
}

fn respond(value: &Value, content_type: &'static str) -> Response {
    bytes_response(serde_json::to_vec(value).expect("JSON of a Value"), content_type, None)
}

fn bytes_response(body: Vec<u8>, content_type: &'static str, crs: Option<&OgcCrs>) -> Response {
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    if let Some(crs) = crs
        && let Ok(value) = HeaderValue::from_str(&format!("<{}>", crs.uri))
    {
        response.headers_mut().insert("content-crs", value);
    }
    response
}
