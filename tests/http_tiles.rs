//! Tiles over HTTP through the real router: TileJSON, catalog, style, status codes, caching
//! headers, compression, ETags that follow the layer version, zone tiles that follow a zones
//! import. (The tiles' contents are tested decoded in tests/tiles_*.rs.)

mod common;

use std::io::Read;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use citygrid::crs::Datum;
use citygrid::http::{AppState, router};
use citygrid::store::Store;
use citygrid::world::{World, WorldHandle};

async fn send(app: &axum::Router, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = Request::builder().uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let (parts, body) = response.into_parts();
    (parts.status, parts.headers, body.collect().await.unwrap().to_bytes().to_vec())
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

/// The XYZ tile holding a lon/lat at zoom z.
fn tile_of(lon: f64, lat: f64, z: u8) -> (u32, u32) {
    let n = (1u64 << z) as f64;
    let x = ((lon + 180.0) / 360.0 * n).floor() as u32;
    let lat_r = lat.to_radians();
    let y = ((1.0 - (lat_r.tan() + 1.0 / lat_r.cos()).ln() / std::f64::consts::PI) / 2.0 * n).floor() as u32;
    (x, y)
}

struct Fixture {
    app: axum::Router,
    handle: WorldHandle,
    dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let handle = common::tiny_world(dir.path());
    Fixture { app: router(AppState::new(handle.clone())), handle, dir }
}

/// A component location of the tiny city and its z16 tile: a tile that surely has features.
fn busy_tile(f: &Fixture, z: u8) -> (u32, u32) {
    let world = f.handle.load();
    let c = world.city.components[world.city.components.len() / 2].location;
    tile_of(c.x, c.y, z)
}

#[tokio::test]
async fn tilejson_names_the_server_layers_bounds_and_center() {
    let f = fixture();
    let world = f.handle.load();
    let (status, headers, body) = send(&f.app, "/tiles/grids,components", &[("host", "maps.example.gov.cn:8443"), ("x-forwarded-proto", "https")]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[axum::http::header::CONTENT_TYPE].to_str().unwrap().starts_with("application/json"));
    let tj = json(&body);
    assert_eq!(tj["tilejson"], "3.0.0");
    assert_eq!(tj["scheme"], "xyz");
    assert_eq!(tj["tiles"][0], "https://maps.example.gov.cn:8443/tiles/components,grids/{z}/{x}/{y}.mvt".replace("components,grids", "grids,components"));
    let ids: Vec<&str> = tj["vector_layers"].as_array().unwrap().iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"grids") && ids.contains(&"components"), "{ids:?}");
    for layer in tj["vector_layers"].as_array().unwrap() {
        assert!(layer["fields"].is_object());
        assert!(layer["minzoom"].as_u64().unwrap() <= layer["maxzoom"].as_u64().unwrap());
    }
    let e = world.grids.extent().unwrap();
    let b: Vec<f64> = tj["bounds"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    for (got, want) in b.iter().zip([e.min().x, e.min().y, e.max().x, e.max().y]) {
        assert!((got - want).abs() < 1e-12, "{b:?}");
    }
    assert_eq!(tj["center"][0], world.center()[0]);
    assert!(tj["maxzoom"].as_u64().unwrap() >= 18);

    // The GCJ-02 variant: tiles URL carries the datum, bounds and centre are shifted.
    let (_, _, body) = send(&f.app, "/tiles/grids?datum=gcj02", &[("host", "h:1")]).await;
    let tj = json(&body);
    assert_eq!(tj["tiles"][0], "http://h:1/tiles/grids/{z}/{x}/{y}.mvt?datum=gcj02");
    let (gx, gy) = Datum::Gcj02.from_wgs84(e.min().x, e.min().y);
    assert!((tj["bounds"][0].as_f64().unwrap() - gx).abs() < 1e-9 && (tj["bounds"][1].as_f64().unwrap() - gy).abs() < 1e-9);
    assert!((gx - e.min().x).abs() > 1e-3, "the GCJ-02 offset is hundreds of metres");
}

#[tokio::test]
async fn catalog_and_style_point_at_this_server() {
    let f = fixture();
    let (status, _, body) = send(&f.app, "/tiles", &[("host", "10.1.2.3:8080")]).await;
    assert_eq!(status, StatusCode::OK);
    let catalog = json(&body);
    let ids: Vec<&str> = catalog["tilesets"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["grids", "zones", "components", "grids,components", "grids,zones,components"]);
    assert_eq!(catalog["tilesets"][3]["tilejson"], "http://10.1.2.3:8080/tiles/grids,components");

    let (status, _, body) = send(&f.app, "/styles/citygrid.json", &[("host", "10.1.2.3:8080")]).await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(body).unwrap();
    assert!(!text.contains("{{"), "every placeholder filled");
    let style = json(text.as_bytes());
    assert_eq!(style["version"], 8);
    assert_eq!(style["sources"]["citygrid"]["url"], "http://10.1.2.3:8080/tiles/grids,zones,components");
    let (_, _, body) = send(&f.app, "/styles/citygrid.json?datum=gcj02", &[("host", "h")]).await;
    assert_eq!(json(&body)["sources"]["citygrid"]["url"], "http://h/tiles/grids,zones,components?datum=gcj02");
    // Every source layer the style draws is one the tiles have.
    let layers: Vec<&str> = style["layers"].as_array().unwrap().iter().filter_map(|l| l["source-layer"].as_str()).collect();
    for name in ["grids", "zones", "components"] {
        assert!(layers.contains(&name), "the style draws {name}");
    }
    // Nothing from the internet: glyphs come from this server too.
    assert_eq!(style["glyphs"], "http://10.1.2.3:8080/fonts/{fontstack}/{range}.pbf");
    assert!(!text.contains("https://"), "the style names no outside host");
}

#[tokio::test]
async fn bad_tile_requests_get_the_error_format() {
    let f = fixture();
    for (uri, status, code) in [
        ("/tiles/roads/14/1/1.mvt", 404, "unknown_layer"),
        ("/tiles/roads", 404, "unknown_layer"),
        ("/tiles/grids,grids/14/1/1.mvt", 400, "invalid_layers"),
        ("/tiles/grids/25/1/1.mvt", 400, "tile_out_of_range"),
        ("/tiles/grids/3/8/1.mvt", 400, "tile_out_of_range"),
        ("/tiles/grids/3/1/8.mvt", 400, "tile_out_of_range"),
        ("/tiles/grids/-1/1/1.mvt", 400, "tile_out_of_range"),
        ("/tiles/grids/a/1/1.mvt", 400, "tile_out_of_range"),
        ("/tiles/grids/3/1/1.png", 404, "not_found"),
        ("/tiles/grids/3/1/1.mvt?datum=mars", 400, "unknown_datum"),
    ] {
        let (s, _, body) = send(&f.app, uri, &[]).await;
        let body = json(&body);
        assert_eq!((s.as_u16(), body["error"]["code"].as_str().unwrap()), (status, code), "{uri}: {body}");
    }
}

#[tokio::test]
async fn an_empty_tile_is_204() {
    let f = fixture();
    // Far from the city (the South Atlantic).
    let (status, headers, body) = send(&f.app, "/tiles/grids,components/14/7000/9000.mvt", &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(body.is_empty());
    assert!(headers.contains_key("etag"));
}

#[tokio::test]
async fn tiles_are_compressed_cached_and_revalidated_by_etag() {
    let f = fixture();
    let (x, y) = busy_tile(&f, 16);
    let uri = format!("/tiles/grids,components/16/{x}/{y}.mvt");
    let (status, headers, raw) = send(&f.app, &uri, &[]).await;
    assert_eq!(status, StatusCode::OK, "a tile with components in it");
    assert_eq!(headers["content-type"], "application/vnd.mapbox-vector-tile");
    assert!(headers.get("content-encoding").is_none(), "identity when the client accepts nothing");
    assert!(headers["cache-control"].to_str().unwrap().contains("max-age"));
    let etag = headers["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with("\"g1-c1-"), "the ETag names the grids and components versions: {etag}");

    let (_, headers, gz) = send(&f.app, &uri, &[("accept-encoding", "gzip, deflate")]).await;
    assert_eq!(headers["content-encoding"], "gzip");
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut unzipped).unwrap();
    assert_eq!(unzipped, raw);

    let (_, headers, br) = send(&f.app, &uri, &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(headers["content-encoding"], "br");
    let mut unbrotli = Vec::new();
    brotli::Decompressor::new(&br[..], 4096).read_to_end(&mut unbrotli).unwrap();
    assert_eq!(unbrotli, raw);
    assert_eq!(headers["etag"].to_str().unwrap(), etag, "one ETag per tile content");

    let (status, _, body) = send(&f.app, &uri, &[("if-none-match", &etag)]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    let (status, _, _) = send(&f.app, &uri, &[("if-none-match", "\"g0-c0-00000000\"")]).await;
    assert_eq!(status, StatusCode::OK);

    // Same request, same bytes (from the cache or not).
    let (_, _, again) = send(&f.app, &uri, &[]).await;
    assert_eq!(again, raw);
}

#[tokio::test]
async fn a_new_layer_version_is_never_served_from_the_old_cache_entry() {
    let f = fixture();
    let (x, y) = busy_tile(&f, 16);
    let uri = format!("/tiles/components/16/{x}/{y}.mvt");
    let (status, headers, _) = send(&f.app, &uri, &[]).await;
    assert_eq!(status, StatusCode::OK);
    let old_etag = headers["etag"].to_str().unwrap().to_owned();

    // Store the same city again: every dataset gets version 2; switch it in.
    common::write_tiny(f.dir.path());
    let loaded = Store::open(f.dir.path()).unwrap().load_city(&|_, _| {}).unwrap();
    assert_eq!(loaded.versions.get("components"), Some(2));
    f.handle.replace(World::new(loaded));

    let (status, headers, _) = send(&f.app, &uri, &[("if-none-match", &old_etag)]).await;
    assert_eq!(status, StatusCode::OK, "an old ETag does not match the new version");
    let new_etag = headers["etag"].to_str().unwrap();
    assert!(new_etag.starts_with("\"g2-c2-"), "{new_etag}");
}

#[tokio::test]
async fn tilejson_lists_the_zones_layer_its_fields_and_zone_layers() {
    let f = fixture();
    let world = f.handle.load();
    let (status, _, body) = send(&f.app, "/tiles/components,zones,grids", &[("host", "h")]).await;
    assert_eq!(status, StatusCode::OK);
    let tj = json(&body);
    assert_eq!(tj["tiles"][0], "http://h/tiles/grids,zones,components/{z}/{x}/{y}.mvt");
    let ids: Vec<&str> = tj["vector_layers"].as_array().unwrap().iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["grids", "zones", "components"]);
    let zones = &tj["vector_layers"][1];
    assert_eq!(zones["fields"], serde_json::json!({"layer": "String", "id": "String", "name": "String", "unit": "String"}));
    assert_eq!(zones["minzoom"], 12);
    let roads = world.city.zones.iter().filter(|z| z.layer == "roads").count();
    assert!(roads > 0);
    assert_eq!(zones["zone_layers"], serde_json::json!({"roads": roads}), "the zone layers present, with their counts");
    assert_eq!(tj["versions"]["zones"], 1);
    let (status, _, body) = send(&f.app, "/tiles/zones", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["vector_layers"].as_array().unwrap().len(), 1);
}

/// The city's zones as GeoJSON, renamed and given to `unit`.
fn zones_geojson(city: &citygrid::model::City, rename: impl Fn(&str) -> String, unit: &str) -> String {
    use serde_json::json;
    let features: Vec<Value> = city
        .zones
        .iter()
        .map(|z| {
            let polygons: Vec<Value> = z
                .geometry
                .0
                .iter()
                .map(|p| {
                    let ring = |r: &geo_types::LineString<f64>| r.0.iter().map(|c| json!([c.x, c.y])).collect::<Vec<_>>();
                    json!(std::iter::once(ring(p.exterior())).chain(p.interiors().iter().map(ring)).collect::<Vec<_>>())
                })
                .collect();
            json!({"type": "Feature", "properties": {"layer": z.layer, "id": z.id, "name": rename(&z.name), "unit": unit},
                   "geometry": {"type": "MultiPolygon", "coordinates": polygons}})
        })
        .collect();
    json!({"type": "FeatureCollection", "features": features}).to_string()
}

/// The zone features of a tile answer, by zone id: (name, unit).
fn zones_in(body: &[u8]) -> std::collections::BTreeMap<String, (String, Option<String>)> {
    let tile = common::mvt::decode(body);
    let layer = tile.get("zones").expect("a zones layer");
    layer.features.iter().map(|f| (f.get("id").str().to_owned(), (f.get("name").str().to_owned(), f.props.get("unit").map(|u| u.str().to_owned())))).collect()
}

#[tokio::test]
async fn a_zones_import_or_rollback_is_never_answered_from_the_old_tiles() {
    use geo::InteriorPoint;
    let s = common::ingest::server();
    let world = s.handle.load();
    let zone = world.city.zones[0].clone();
    let p = zone.geometry.interior_point().unwrap();
    let (x, y) = tile_of(p.x(), p.y(), 16);
    let uris = [format!("/tiles/zones/16/{x}/{y}.mvt"), format!("/tiles/grids,zones,components/16/{x}/{y}.mvt")];
    let mut old = Vec::new();
    for uri in &uris {
        let (status, headers, body) = send(&s.app, uri, &[]).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        let etag = headers["etag"].to_str().unwrap().to_owned();
        assert!(etag.starts_with("\"g1-c1-z1-"), "the ETag names the zones version: {etag}");
        let zones = zones_in(&body);
        let unit = zone.unit.map(|u| world.city.units.get(u).name.clone());
        assert_eq!(zones[&zone.id], (zone.name.clone(), unit), "{uri}");
        let (status, _, _) = send(&s.app, uri, &[("if-none-match", &etag)]).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        old.push((etag, body));
    }

    // A new zones version: renamed, another unit.
    let upload = zones_geojson(&world.city, |n| format!("{n}（改）"), "新道路养护公司");
    let (status, answer) = common::ingest::put(&s.app, "/v1/layers/zones", Some("application/geo+json"), upload).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(s.handle.load().versions.get("zones"), Some(2));
    for (uri, (etag, _)) in uris.iter().zip(&old) {
        let (status, headers, body) = send(&s.app, uri, &[("if-none-match", etag)]).await;
        assert_eq!(status, StatusCode::OK, "{uri}: an old ETag does not match the new zones version");
        let new_etag = headers["etag"].to_str().unwrap();
        assert!(new_etag.starts_with("\"g1-c1-z2-"), "{new_etag}");
        let zones = zones_in(&body);
        assert_eq!(zones[&zone.id], (format!("{}（改）", zone.name), Some("新道路养护公司".to_owned())), "{uri}: the new zones");
    }

    // Back to version 1: the first tiles again, with their ETags.
    let rollback = axum::http::Request::builder()
        .method("POST")
        .uri("/v1/layers/zones/rollback")
        .header("authorization", format!("Bearer {}", common::ingest::TOKEN))
        .header("content-type", "application/json")
        .body(Body::from(r#"{"version": 1}"#))
        .unwrap();
    let response = s.app.clone().oneshot(rollback).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    for (uri, (etag, body)) in uris.iter().zip(&old) {
        let (status, headers, again) = send(&s.app, uri, &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!((headers["etag"].to_str().unwrap(), &again), (etag.as_str(), body), "{uri}");
    }
}
