//! Basemaps over HTTP (the files of `serve --basemap`, [`crate::basemap`]): `GET /basemaps`
//! (the list), `GET /basemaps/{id}` (TileJSON 3.0) and `GET /basemaps/{id}/{z}/{x}/{y}[.ext]`
//! (a tile as stored), plus the style's basemap sources and layers ([`add_to_style`]).
//!
//! A tile has a strong ETag (a CRC-32 of its stored bytes and the coding sent) and is
//! answered 304 to a matching `If-None-Match`. A tile the file lacks is 204 No Content: MapLibre
//! draws nothing there and asks no more (a 404 would be logged as a failed request for every
//! tile outside the file's area). Stored gzip (vector tiles in MBTiles, usually) passes through
//! with `Content-Encoding: gzip` to a client that takes gzip, and is decoded for one that
//! does not.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::conditional::{accepts_encoding, etag_matches};
use super::error::ApiError;
use super::{AppState, base_url};
use crate::basemap::{Basemap, BasemapError, Encoding, Kind, MAX_DECODED};

/// `Cache-Control` of basemap tiles: a basemap changes only when its file is replaced and the
/// server restarted; a client revalidates after an hour (a cheap 304).
const TILE_CACHE_CONTROL: &str = "public, max-age=3600";
/// `Cache-Control` of the list and TileJSON.
const METADATA_CACHE_CONTROL: &str = "public, max-age=60";

fn unknown(state: &AppState, id: &str) -> ApiError {
    let ids: Vec<&str> = state.basemaps.iter().map(|b| b.id.as_str()).collect();
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_basemap",
        format!("no basemap {id:?}: this server has {}", if ids.is_empty() { "none (serve --basemap FILE)".to_owned() } else { ids.join(", ") }),
    )
    .with_details(json!({"basemap": id, "basemaps": ids}))
}

/// A tile the file could not give: logged with the file's path, answered without it.
fn read_error(id: &str, e: BasemapError) -> ApiError {
    tracing::warn!(basemap = id, error = %e, "basemap tile could not be read");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "basemap_unreadable",
        format!("basemap {id:?}: the tile could not be read from its file (see the server log)"),
    )
    .with_details(json!({"basemap": id}))
}

/// The tile URL template of `b` under `base`.
fn tiles_url(base: &str, b: &Basemap) -> String {
    format!("{base}/basemaps/{}/{{z}}/{{x}}/{{y}}.{}", b.id, b.info.format.name())
}

/// TileJSON 3.0 of `b`.
fn tilejson(base: &str, b: &Basemap) -> Value {
    let i = &b.info;
    let center = i.center.unwrap_or([(i.bounds[0] + i.bounds[2]) / 2.0, (i.bounds[1] + i.bounds[3]) / 2.0, f64::from(i.minzoom)]);
    let mut tj = json!({
        "tilejson": "3.0.0",
        "name": i.name,
        "scheme": "xyz",
        "tiles": [tiles_url(base, b)],
        "minzoom": i.minzoom,
        "maxzoom": i.maxzoom,
        "bounds": i.bounds,
        "center": center,
        "format": i.format.name(),
        "kind": b.kind(),
    });
    if let Some(d) = &i.description {
        tj["description"] = json!(d);
    }
    if let Some(a) = &i.attribution {
        tj["attribution"] = json!(a);
    }
    if b.kind() == Kind::Vector {
        tj["vector_layers"] = i.vector_layers.clone().unwrap_or_else(|| json!([]));
    }
    tj
}

fn json_answer(body: String, headers: &HeaderMap) -> Response {
    let etag = format!("\"j{:08x}-{}\"", crc32fast::hash(body.as_bytes()), body.len());
    let common = [
        (header::ETAG, HeaderValue::from_str(&etag).expect("an ASCII etag")),
        (header::CACHE_CONTROL, HeaderValue::from_static(METADATA_CACHE_CONTROL)),
        (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
    ];
    if etag_matches(headers, &etag) {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (common, body).into_response()
}

/// `GET /basemaps`
#[utoipa::path(get, path = "/basemaps", tag = "tiles", operation_id = "basemap_list",
    summary = "the basemaps served (serve --basemap): id, kind, format, zooms, TileJSON URL",
    responses((status = 200, description = "{basemaps: [{id, name, kind (raster|vector), format, minzoom, maxzoom, bounds, tilejson, tiles}]}", body = Object),
        (status = 304, description = "the client's If-None-Match names it")))]
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let base = base_url(&headers);
    let list: Vec<Value> = state
        .basemaps
        .iter()
        .map(|b| {
            json!({
                "id": b.id, "name": b.info.name, "kind": b.kind(), "format": b.info.format.name(),
                "minzoom": b.info.minzoom, "maxzoom": b.info.maxzoom, "bounds": b.info.bounds,
                "tilejson": format!("{base}/basemaps/{}", b.id), "tiles": tiles_url(&base, b),
            })
        })
        .collect();
    json_answer(json!({"basemaps": list}).to_string(), &headers)
}

/// `GET /basemaps/{id}`
#[utoipa::path(get, path = "/basemaps/{id}", tag = "tiles", operation_id = "basemap_tilejson",
    summary = "TileJSON 3.0 of a basemap",
    params(("id" = String, Path, description = "the basemap's id: its file name without the extension, sanitised")),
    responses((status = 200, description = "the TileJSON (vector basemaps with their vector_layers)", body = Object),
        (status = 304, description = "the client's If-None-Match names it"),
        (status = 404, description = "unknown_basemap", body = super::error::ErrorBody)))]
pub async fn tilejson_handler(State(state): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let b = state.basemaps.get(&id).ok_or_else(|| unknown(&state, &id))?;
    Ok(json_answer(tilejson(&base_url(&headers), b).to_string(), &headers))
}

fn out_of_range(what: &str, value: &str) -> ApiError {
    ApiError::bad_request("tile_out_of_range", format!("tile {what} {value:?} is not a valid tile coordinate"))
        .with_details(json!({"parameter": what, "value": value}))
}

/// `GET /basemaps/{id}/{z}/{x}/{y}[.png|.jpg|.webp|.pbf|.mvt]`
#[utoipa::path(get, path = "/basemaps/{id}/{z}/{x}/{y}", tag = "tiles", operation_id = "basemap_tile",
    summary = "a basemap tile as stored in its file (XYZ scheme)",
    params(("id" = String, Path, description = "the basemap's id"),
        ("z" = u8, Path, description = "zoom"), ("x" = u32, Path, description = "column"),
        ("y" = String, Path, description = "row, optionally with the format's extension (.png, .jpg, .webp, .pbf, .mvt)")),
    responses((status = 200, description = "the tile (image/png, image/jpeg, image/webp or application/vnd.mapbox-vector-tile; vector tiles stored gzip'd are sent with Content-Encoding: gzip when accepted)"),
        (status = 204, description = "the file has no such tile (MapLibre draws nothing there)"),
        (status = 304, description = "the client's If-None-Match names it"),
        (status = 400, description = "tile_out_of_range", body = super::error::ErrorBody),
        (status = 404, description = "unknown_basemap", body = super::error::ErrorBody),
        (status = 500, description = "basemap_unreadable: the file could not be read", body = super::error::ErrorBody)))]
pub async fn tile(
    State(state): State<AppState>,
    Path((id, z, x, y)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let b = state.basemaps.get(&id).ok_or_else(|| unknown(&state, &id))?.clone();
    let y_num = y.split_once('.').map_or(y.as_str(), |(n, _)| n);
    let z_num: u8 = z.parse().ok().filter(|z| *z <= 30).ok_or_else(|| out_of_range("z", &z))?;
    let limit = 1u64 << z_num;
    let x_num: u32 = x.parse().ok().filter(|v| u64::from(*v) < limit).ok_or_else(|| out_of_range("x", &x))?;
    let y_num: u32 = y_num.parse().ok().filter(|v| u64::from(*v) < limit).ok_or_else(|| out_of_range("y", &y))?;
    let gzip_ok = accepts_encoding(&headers, "gzip");
    let br_ok = accepts_encoding(&headers, "br");
    let answer = super::error::blocking("the basemap read", move || -> Result<Option<(bytes::Bytes, Encoding, &'static str)>, BasemapError> {
        let Some(t) = b.tile(z_num, x_num, y_num)? else { return Ok(None) };
        let passes = match t.encoding {
            Encoding::Identity => true,
            Encoding::Gzip => gzip_ok,
            Encoding::Brotli => br_ok,
        };
        if passes {
            return Ok(Some((t.data, t.encoding, b.info.format.content_type())));
        }
        let raw = t
            .encoding
            .decode(&t.data, MAX_DECODED)
            .map_err(|e| BasemapError::Invalid { path: b.path.clone(), reason: format!("tile {z_num}/{x_num}/{y_num} does not decode: {e}") })?;
        Ok(Some((raw.into(), Encoding::Identity, b.info.format.content_type())))
    })
    .await?
    .map_err(|e| read_error(&id, e))?;
    let Some((data, encoding, content_type)) = answer else {
        return Ok((StatusCode::NO_CONTENT, [(header::CACHE_CONTROL, HeaderValue::from_static(TILE_CACHE_CONTROL))]).into_response());
    };
    let etag = format!("\"b{:08x}-{}-{}\"", crc32fast::hash(&data), data.len(), encoding.token().unwrap_or("identity"));
    let common = [
        (header::ETAG, HeaderValue::from_str(&etag).expect("an ASCII etag")),
        (header::CACHE_CONTROL, HeaderValue::from_static(TILE_CACHE_CONTROL)),
        (header::VARY, HeaderValue::from_static("accept-encoding")),
    ];
    if etag_matches(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, common).into_response());
    }
    let mut response = (common, [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))], data).into_response();
    if let Some(token) = encoding.token() {
        response.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static(token));
    }
    Ok(response)
}

/// The font stack of the basemap labels: the style's own (the server renders its glyphs).
const FONT: [&str; 2] = ["Open Sans Semibold", "Noto Sans CJK SC Regular"];

/// Adds every basemap of `state` to the MapLibre `style` under its first layer after the
/// background: a vector basemap as the OpenMapTiles-schema layers (water, landuse, park,
/// building fills, roads by class, road names and places; only those of source layers its
/// `vector_layers` lists, when it lists them), a raster one as a raster layer.
/// Vector basemaps are visible, raster ones hidden when a vector one exists (the viewer's
/// switch "街道图 / 影像" shows one kind or the other). `metadata["citygrid:basemaps"]` lists
/// each basemap with its kind and layer ids.
pub(crate) fn add_to_style(style: &mut Value, state: &AppState, base: &str) {
    if state.basemaps.is_empty() {
        return;
    }
    let has_vector = state.basemaps.iter().any(|b| b.kind() == Kind::Vector);
    let mut new_layers = Vec::new();
    let mut listed = Vec::new();
    for b in state.basemaps.iter() {
        let source = format!("basemap-{}", b.id);
        let mut src = json!({"type": if b.kind() == Kind::Vector { "vector" } else { "raster" }, "url": format!("{base}/basemaps/{}", b.id)});
        if b.kind() == Kind::Raster {
            src["tileSize"] = json!(256);
        }
        if let Some(a) = &b.info.attribution {
            src["attribution"] = json!(a);
        }
        style["sources"][&source] = src;
        let layers = if b.kind() == Kind::Vector {
            // Only layers of source layers the file has, when it lists them: MapLibre reports a
            // style layer of a source layer missing from the TileJSON as an error.
            let present: Option<Vec<&str>> =
                b.info.vector_layers.as_ref().and_then(Value::as_array).map(|a| a.iter().filter_map(|l| l["id"].as_str()).collect());
            let mut layers = vector_layers(&source, true);
            if let Some(present) = present {
                layers.retain(|l| l["source-layer"].as_str().is_some_and(|id| present.contains(&id)));
            }
            layers
        } else {
            let visible = !has_vector;
            vec![json!({"id": format!("{source}-raster"), "type": "raster", "source": source,
                "layout": {"visibility": if visible { "visible" } else { "none" }}})]
        };
        let ids: Vec<Value> = layers.iter().map(|l| l["id"].clone()).collect();
        listed.push(json!({"id": b.id, "name": b.info.name, "kind": b.kind(), "layers": ids}));
        new_layers.extend(layers);
    }
    if let Some(layers) = style["layers"].as_array_mut() {
        let at = layers.iter().position(|l| l["type"] != "background").unwrap_or(layers.len());
        layers.splice(at..at, new_layers);
    }
    if !style["metadata"].is_object() {
        style["metadata"] = json!({});
    }
    style["metadata"]["citygrid:basemaps"] = Value::Array(listed);
}

/// The OpenMapTiles-schema layers of a vector basemap `source`.
fn vector_layers(source: &str, visible: bool) -> Vec<Value> {
    let vis = if visible { "visible" } else { "none" };
    let layer = |suffix: &str, kind: &str, source_layer: &str, extra: Value| {
        let mut l = json!({"id": format!("{source}-{suffix}"), "type": kind, "source": source, "source-layer": source_layer, "layout": {"visibility": vis}});
        for (k, v) in extra.as_object().expect("an object") {
            if k == "layout" {
                for (lk, lv) in v.as_object().expect("layout object") {
                    l["layout"][lk] = lv.clone();
                }
            } else {
                l[k] = v.clone();
            }
        }
        l
    };
    // motorway/trunk, primary/secondary/tertiary, the rest (minor, service, track…)
    let by_class = |major: Value, middle: Value, other: Value| {
        json!(["match", ["get", "class"], ["motorway", "trunk"], major, ["primary", "secondary", "tertiary"], middle, other])
    };
    let width = |extra: f64| {
        json!([
            "interpolate",
            ["exponential", 1.5],
            ["zoom"],
            10,
            by_class(json!(1.6 + extra / 4.0), json!(1.2 + extra / 4.0), json!(0.4)),
            16,
            by_class(json!(14.0 + extra), json!(11.0 + extra), json!(6.0 + extra)),
            18,
            by_class(json!(36.0 + extra), json!(30.0 + extra), json!(16.0 + extra))
        ])
    };
    let name = json!(["coalesce", ["get", "name:zh"], ["get", "name"], ["get", "name:latin"]]);
    vec![
        layer(
            "landcover",
            "fill",
            "landcover",
            json!({"filter": ["match", ["get", "class"], ["grass", "wood", "farmland"], true, false],
            "paint": {"fill-color": "#e3ecd5", "fill-opacity": 0.7}}),
        ),
        layer(
            "landuse",
            "fill",
            "landuse",
            json!({"paint": {"fill-color": ["match", ["get", "class"],
            "residential", "#ece8e1", "commercial", "#f1e3dd", "retail", "#f1e3dd", "industrial", "#e8e3ee", "cemetery", "#dde6d4",
            ["school", "university", "college", "hospital"], "#efe7d6", "#ebe8e2"], "fill-opacity": 0.8}}),
        ),
        layer("park", "fill", "park", json!({"paint": {"fill-color": "#d3e8c6", "fill-opacity": 0.9}})),
        layer("water", "fill", "water", json!({"paint": {"fill-color": "#b5d3ea"}})),
        layer("waterway", "line", "waterway", json!({"paint": {"line-color": "#b5d3ea", "line-width": ["interpolate", ["linear"], ["zoom"], 10, 0.5, 16, 3]}})),
        layer("building", "fill", "building", json!({"minzoom": 14, "paint": {"fill-color": "#ddd7ce", "fill-outline-color": "#cbc3b8"}})),
        layer(
            "road-casing",
            "line",
            "transportation",
            json!({
            "filter": ["all", ["==", ["geometry-type"], "LineString"], ["!", ["match", ["get", "class"], ["rail", "transit", "ferry", "path"], true, false]]],
            "layout": {"line-cap": "round", "line-join": "round"},
            "paint": {"line-color": "#d2cbbf", "line-width": width(2.0)}}),
        ),
        layer(
            "road",
            "line",
            "transportation",
            json!({
            "filter": ["all", ["==", ["geometry-type"], "LineString"], ["!", ["match", ["get", "class"], ["rail", "transit", "ferry", "path"], true, false]]],
            "layout": {"line-cap": "round", "line-join": "round"},
            "paint": {"line-color": by_class(json!("#f5c26b"), json!("#fbe0a0"), json!("#ffffff")), "line-width": width(0.0)}}),
        ),
        layer(
            "rail",
            "line",
            "transportation",
            json!({"filter": ["match", ["get", "class"], ["rail", "transit"], true, false],
            "paint": {"line-color": "#a9a9a9", "line-width": 1.2, "line-dasharray": [3, 2]}}),
        ),
        layer(
            "road-names",
            "symbol",
            "transportation_name",
            json!({"minzoom": 12,
            "layout": {"symbol-placement": "line", "text-field": name.clone(), "text-font": FONT, "text-size": ["interpolate", ["linear"], ["zoom"], 12, 10, 17, 14]},
            "paint": {"text-color": "#5c5346", "text-halo-color": "#ffffff", "text-halo-width": 1.5}}),
        ),
        layer(
            "places",
            "symbol",
            "place",
            json!({"filter": ["match", ["get", "class"], ["city", "town", "suburb", "quarter", "neighbourhood", "village"], true, false],
            "layout": {"text-field": name, "text-font": FONT, "text-size": ["match", ["get", "class"], ["city", "town"], 16, 12]},
            "paint": {"text-color": "#3f3a33", "text-halo-color": "#ffffff", "text-halo-width": 1.5}}),
        ),
    ]
}
