//! Large downloads, through the real router on the tiny demo city: a whole collection as one
//! FlatGeobuf (`items?f=fgb`) or one GeoJSON FeatureCollection (`items?limit=all`), streamed, with
//! the GeoJSON items' attributes, the filters and the CRSs; HTTP Range, ETag and HEAD on the
//! stored version files; and a real client: GDAL's `/vsicurl_streaming/` and `/vsicurl/` against
//! the real binary.

mod common;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::process::Command;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use flatgeobuf::{FallibleStreamingIterator, FeatureProperties, FgbReader};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use citygrid::crs::Crs;
use citygrid::datasets::Datasets;
use citygrid::http::{AppState, router};
use citygrid::store::Store;
use citygrid::tiles::TileConfig;
use citygrid::world::{World, WorldHandle};
use common::server::{Server, serve_tiny_demo};

const HOST: &str = "citygrid.test";
const TOKEN: &str = "test-admin-token-0123456789";
const EPSG: &str = "http://www.opengis.net/def/crs/EPSG/0/";

struct Fixture {
    app: axum::Router,
    world: Arc<World>,
    dir: tempfile::TempDir,
}

/// The tiny city with its data directory (for the version files) and an admin token.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    common::write_tiny(dir.path());
    let store = Store::open(dir.path()).unwrap();
    let handle = WorldHandle::new(World::new(store.load_city(&|_, _| {}).unwrap()));
    let world = handle.load();
    let state = AppState::new(handle.clone()).with_admin_tokens(vec![TOKEN.into()]).with_datasets(Datasets::new(store, handle, TileConfig::default()));
    Fixture { app: router(state), world, dir }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
    /// Data frames the body came in.
    frames: usize,
}

async fn send(app: &axum::Router, method: &str, uri: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = Request::builder().method(method).uri(uri).header("host", HOST);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = app.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let mut body = response.into_body();
    let (mut bytes, mut frames) = (Vec::new(), 0);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            frames += 1;
            bytes.extend_from_slice(&data);
        }
    }
    Answer { status, headers, body: bytes, frames }
}

async fn get(app: &axum::Router, uri: &str) -> Answer {
    send(app, "GET", uri, &[]).await
}

fn json(a: &Answer) -> Value {
    serde_json::from_slice(&a.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&a.body)))
}

/// A FlatGeobuf answer, decoded: header facts and each feature's properties and coordinates.
struct Fgb {
    count: u64,
    index_node_size: u16,
    crs_code: i32,
    geometry_type: flatgeobuf::GeometryType,
    columns: Vec<(String, flatgeobuf::ColumnType)>,
    features: Vec<(BTreeMap<String, String>, Vec<f64>)>,
}

fn decode(bytes: &[u8]) -> Fgb {
    let reader = FgbReader::open(Cursor::new(bytes)).unwrap();
    let header = reader.header();
    let count = header.features_count();
    let index_node_size = header.index_node_size();
    let crs_code = header.crs().map_or(0, |c| c.code());
    let geometry_type = header.geometry_type();
    let columns = header.columns().unwrap().iter().map(|c| (c.name().to_owned(), c.type_())).collect();
    let mut iter = reader.select_all_seq().unwrap();
    let mut features = Vec::new();
    while let Some(f) = iter.next().unwrap() {
        let props: BTreeMap<String, String> = f.properties().unwrap().into_iter().collect();
        let g = f.fbs_feature().geometry().unwrap();
        let xy: Vec<f64> = match g.xy() {
            Some(xy) => xy.iter().collect(),
            // Multi-polygons: the parts' coordinates.
            None => g.parts().unwrap().iter().flat_map(|p| p.xy().unwrap().iter().collect::<Vec<_>>()).collect(),
        };
        features.push((props, xy));
    }
    Fgb { count, index_node_size, crs_code, geometry_type, columns, features }
}

/// A GeoJSON property as FlatGeobuf's reader gives it (null and empty: absent).
fn as_fgb_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Every feature of `uri` (GeoJSON, `limit=all`), checked as one FeatureCollection.
async fn all_geojson(app: &axum::Router, uri: &str) -> Vec<Value> {
    let a = get(app, uri).await;
    assert_eq!(a.status, StatusCode::OK, "{uri}: {}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.headers["content-type"], "application/geo+json", "{uri}");
    let body = json(&a);
    assert_eq!(body["type"], "FeatureCollection");
    let features = body["features"].as_array().unwrap().clone();
    assert_eq!(body["numberMatched"], features.len(), "{uri}");
    assert_eq!(body["numberReturned"], features.len(), "{uri}");
    assert!(body["links"].as_array().unwrap().iter().all(|l| l["rel"] != "next"), "{uri}: one answer, no next page");
    features
}

/// `numberMatched` of a one-feature page.
async fn matched(app: &axum::Router, uri: &str) -> u64 {
    let sep = if uri.contains('?') { '&' } else { '?' };
    let a = get(app, &format!("{uri}{sep}limit=1")).await;
    assert_eq!(a.status, StatusCode::OK, "{uri}");
    json(&a)["numberMatched"].as_u64().unwrap()
}

/// The FlatGeobuf of `uri`, checked as an answer.
async fn fgb(app: &axum::Router, uri: &str) -> Fgb {
    let a = get(app, uri).await;
    assert_eq!(a.status, StatusCode::OK, "{uri}: {}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.headers["content-type"], "application/flatgeobuf", "{uri}");
    let f = decode(&a.body);
    assert_eq!(f.count, f.features.len() as u64, "{uri}: the header's count is the features'");
    assert_eq!(f.index_node_size, 0, "{uri}: streamed, without a spatial index");
    f
}

// ---------------------------------------------------------------- FlatGeobuf and GeoJSON

#[tokio::test]
async fn every_collection_downloads_as_flatgeobuf_with_the_geojson_attributes() {
    let f = fixture();
    for (id, total, geometry) in [
        ("grids", f.world.city.grids.len(), flatgeobuf::GeometryType::MultiPolygon),
        ("components", f.world.city.components.len(), flatgeobuf::GeometryType::Point),
        ("zones", f.world.city.zones.len(), flatgeobuf::GeometryType::MultiPolygon),
    ] {
        let items = format!("/ogc/collections/{id}/items");
        assert!(total > 0, "{id}");
        let file = fgb(&f.app, &format!("{items}?f=fgb")).await;
        assert_eq!(file.features.len(), total, "{id}: every feature");
        assert_eq!(matched(&f.app, &items).await, total as u64, "{id}: numberMatched");
        assert_eq!(file.crs_code, 4326, "{id}: CRS84 is EPSG:4326 in FlatGeobuf");
        assert_eq!(file.geometry_type, geometry, "{id}");

        // The same features, in the same order, as the streamed GeoJSON: same properties, same
        // coordinates (lon, lat in both).
        let geojson = all_geojson(&f.app, &format!("{items}?limit=all")).await;
        assert_eq!(geojson.len(), total, "{id}");
        let mut names: Vec<&str> = file.columns.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        let first = geojson[0]["properties"].as_object().unwrap();
        assert_eq!(names, first.keys().map(String::as_str).collect::<Vec<_>>(), "{id}: the GeoJSON's properties");
        for (k, ((props, xy), feature)) in file.features.iter().zip(&geojson).enumerate() {
            let expected: BTreeMap<String, String> =
                feature["properties"].as_object().unwrap().iter().filter_map(|(k, v)| as_fgb_text(v).map(|t| (k.clone(), t))).collect();
            assert_eq!(props, &expected, "{id} feature {k}");
            let coords: Vec<f64> = match feature["geometry"]["type"].as_str().unwrap() {
                "Point" => feature["geometry"]["coordinates"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect(),
                _ => feature["geometry"]["coordinates"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|poly| poly.as_array().unwrap().iter())
                    .flat_map(|ring| ring.as_array().unwrap().iter())
                    .flat_map(|p| p.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
                    .collect(),
            };
            assert_eq!(xy, &coords, "{id} feature {k}: coordinates");
        }
    }
    // Typed columns: the grid level is an integer, dates are dates.
    let grids = fgb(&f.app, "/ogc/collections/grids/items?f=fgb").await;
    let kind = |name: &str| grids.columns.iter().find(|(n, _)| n == name).unwrap().1;
    assert_eq!(kind("level"), flatgeobuf::ColumnType::Int);
    assert_eq!(kind("valid_from"), flatgeobuf::ColumnType::DateTime);
    assert_eq!(kind("code"), flatgeobuf::ColumnType::String);
}

#[tokio::test]
async fn filters_select_the_same_features_in_both_formats() {
    let f = fixture();
    let xs: Vec<f64> = f.world.city.components.iter().map(|c| c.location.x).collect();
    let ys: Vec<f64> = f.world.city.components.iter().map(|c| c.location.y).collect();
    let (x0, x1) = (xs.iter().copied().fold(f64::MAX, f64::min), xs.iter().copied().fold(f64::MIN, f64::max));
    let (y0, y1) = (ys.iter().copied().fold(f64::MAX, f64::min), ys.iter().copied().fold(f64::MIN, f64::max));
    // The south-west quarter of the components' extent.
    let bbox = format!("{x0},{y0},{},{}", (x0 + x1) / 2.0, (y0 + y1) / 2.0);
    let inside = f.world.city.components.iter().filter(|c| c.location.x <= (x0 + x1) / 2.0 && c.location.y <= (y0 + y1) / 2.0).count();
    assert!(inside > 0 && inside < f.world.city.components.len());
    for query in [format!("bbox={bbox}"), "status=破损".to_owned(), format!("bbox={bbox}&status=完好")] {
        let items = format!("/ogc/collections/components/items?{query}");
        let n = matched(&f.app, &items).await;
        let file = fgb(&f.app, &format!("{items}&f=fgb")).await;
        let geojson = all_geojson(&f.app, &format!("{items}&limit=all")).await;
        assert_eq!(file.features.len() as u64, n, "{query}");
        assert_eq!(geojson.len() as u64, n, "{query}");
        let fgb_codes: Vec<&str> = file.features.iter().map(|(p, _)| p["code"].as_str()).collect();
        let geojson_codes: Vec<&str> = geojson.iter().map(|g| g["id"].as_str().unwrap()).collect();
        assert_eq!(fgb_codes, geojson_codes, "{query}: the same features in the same order");
    }
    let n = fgb(&f.app, &format!("/ogc/collections/components/items?f=fgb&bbox={bbox}")).await.features.len();
    assert_eq!(n, inside, "bbox");
    // Grids by level and datetime, zones by layer.
    for items in ["/ogc/collections/grids/items?level=2", "/ogc/collections/grids/items?datetime=2024-05-01", "/ogc/collections/zones/items?layer=roads"] {
        let n = matched(&f.app, items).await;
        assert!(n > 0, "{items}");
        assert_eq!(fgb(&f.app, &format!("{items}&f=fgb")).await.features.len() as u64, n, "{items}");
        assert_eq!(all_geojson(&f.app, &format!("{items}&limit=all")).await.len() as u64, n, "{items}");
    }
    // limit: the first n of the selection (no maximum for FlatGeobuf).
    let five = fgb(&f.app, "/ogc/collections/components/items?f=fgb&limit=5").await;
    assert_eq!(five.features.len(), 5);
    let page = json(&get(&f.app, "/ogc/collections/components/items?limit=5").await);
    let page_codes: Vec<&str> = page["features"].as_array().unwrap().iter().map(|g| g["id"].as_str().unwrap()).collect();
    assert_eq!(five.features.iter().map(|(p, _)| p["code"].as_str()).collect::<Vec<_>>(), page_codes);
}

#[tokio::test]
async fn flatgeobuf_in_a_projected_crs_holds_easting_northing() {
    let f = fixture();
    let file = fgb(&f.app, "/ogc/collections/components/items?f=fgb&crs=EPSG:4549").await;
    assert_eq!(file.crs_code, 4549);
    let gk = Crs::from_epsg(4549).unwrap();
    let by_code: BTreeMap<&str, &Vec<f64>> = file.features.iter().map(|(p, xy)| (p["code"].as_str(), xy)).collect();
    assert_eq!(by_code.len(), f.world.city.components.len());
    for c in f.world.city.components.iter().step_by(37) {
        let (e, n) = gk.from_wgs84(c.location.x, c.location.y).unwrap();
        let xy = by_code[c.code.to_string().as_str()];
        // x = easting (metres, ~500 km false easting), y = northing: FlatGeobuf's order, not
        // EPSG:4549's (northing first, as the GeoJSON gives it).
        assert!((xy[0] - e).abs() < 1e-6 && (xy[1] - n).abs() < 1e-6, "{}: {xy:?} vs ({e}, {n})", c.code);
        assert!(xy[0] > 100_000.0 && xy[0] < 900_000.0 && xy[1] > 3_000_000.0, "{xy:?}");
    }
    let c = &f.world.city.components[0];
    let one = json(&get(&f.app, &format!("/ogc/collections/components/items/{}?crs=EPSG:4549", c.code)).await);
    let (e, n) = gk.from_wgs84(c.location.x, c.location.y).unwrap();
    let xy = &one["geometry"]["coordinates"];
    assert!((xy[0].as_f64().unwrap() - n).abs() < 1e-6 && (xy[1].as_f64().unwrap() - e).abs() < 1e-6, "GeoJSON: northing first");
    // A bbox in the projected CRS selects the same in both formats.
    let (n0, e0) = (n - 2000.0, e - 2000.0);
    let items = format!("/ogc/collections/components/items?bbox={n0},{e0},{},{}&bbox-crs={EPSG}4549", n + 2000.0, e + 2000.0);
    let count = matched(&f.app, &items).await;
    assert!(count >= 1);
    assert_eq!(fgb(&f.app, &format!("{items}&f=fgb")).await.features.len() as u64, count);
}

#[tokio::test]
async fn limit_all_streams_one_feature_collection_in_chunks() {
    let f = fixture();
    let a = get(&f.app, "/ogc/collections/components/items?limit=all").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers["content-crs"], "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>");
    assert!(a.headers.get("content-length").is_none(), "streamed: no length known in advance");
    let body = json(&a);
    let features = body["features"].as_array().unwrap();
    assert_eq!(features.len(), f.world.city.components.len());
    let codes: std::collections::BTreeSet<&str> = features.iter().map(|g| g["id"].as_str().unwrap()).collect();
    assert_eq!(codes.len(), features.len(), "each component once");
    // Sent as it was written: in chunks of at most 64 KiB (plus one feature).
    assert!(a.body.len() > 200_000, "a body of some size: {}", a.body.len());
    assert!(a.frames >= a.body.len() / (80 << 10), "{} bytes in {} frames", a.body.len(), a.frames);
    let fgb_answer = get(&f.app, "/ogc/collections/components/items?f=fgb").await;
    assert!(fgb_answer.frames > 1, "FlatGeobuf streamed too: {} frames", fgb_answer.frames);
    assert_eq!(fgb_answer.headers["content-disposition"], "attachment; filename=\"components.fgb\"");
}

#[tokio::test]
async fn formats_are_negotiated_and_advertised() {
    let f = fixture();
    // Accept: application/flatgeobuf without f.
    let a = send(&f.app, "GET", "/ogc/collections/zones/items", &[("accept", "application/flatgeobuf")]).await;
    assert_eq!(a.headers["content-type"], "application/flatgeobuf");
    assert_eq!(decode(&a.body).features.len(), f.world.city.zones.len());
    // f wins over Accept.
    let a = send(&f.app, "GET", "/ogc/collections/zones/items?f=json", &[("accept", "application/flatgeobuf")]).await;
    assert_eq!(a.headers["content-type"], "application/geo+json");
    for (uri, parameter) in [
        ("/ogc/collections/components/items?f=fgb&offset=10", "offset"),
        ("/ogc/collections/components/items?limit=all&cursor=1101000000000001", "cursor"),
        ("/ogc/collections/components/items?f=fgb&limit=0", "limit"),
        ("/ogc/collections/components/items?f=shp", "f"),
        ("/ogc/collections/components/items?f=fgb&status=broken", "status"),
        ("/ogc/collections?f=fgb", "f"),
        ("/ogc/collections/components/items/1101000000000001?f=fgb", "f"),
    ] {
        let a = get(&f.app, uri).await;
        let e = json(&a);
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{uri}: {e}");
        assert_eq!(e["error"]["details"]["parameter"], parameter, "{uri}: {e}");
    }
    // The collection links to both downloads, and they work.
    let collection = json(&get(&f.app, "/ogc/collections/grids").await);
    let enclosures: Vec<&Value> = collection["links"].as_array().unwrap().iter().filter(|l| l["rel"] == "enclosure").collect();
    let types: Vec<&str> = enclosures.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["application/flatgeobuf", "application/geo+json"]);
    for l in enclosures {
        let href = l["href"].as_str().unwrap().strip_prefix("http://citygrid.test").unwrap();
        let a = get(&f.app, href).await;
        assert_eq!((a.status, a.headers["content-type"].to_str().unwrap()), (StatusCode::OK, l["type"].as_str().unwrap()), "{href}");
    }
    // A page links to the FlatGeobuf of its whole selection.
    let page = json(&get(&f.app, "/ogc/collections/components/items?status=破损&limit=3&offset=3").await);
    let alternate = page["links"].as_array().unwrap().iter().find(|l| l["rel"] == "alternate").unwrap();
    assert_eq!(alternate["type"], "application/flatgeobuf");
    let href = alternate["href"].as_str().unwrap().strip_prefix("http://citygrid.test").unwrap();
    assert!(!href.contains("offset") && !href.contains("limit"), "{href}");
    assert_eq!(fgb(&f.app, href).await.features.len() as u64, page["numberMatched"].as_u64().unwrap());
    // The API definition's f of the items.
    let api = json(&get(&f.app, "/ogc/api").await);
    assert_eq!(api["components"]["parameters"]["f-items"]["schema"]["enum"], serde_json::json!(["json", "geojson", "fgb"]));
    let items = &api["paths"]["/collections/components/items"]["get"];
    assert_eq!(items["parameters"][0]["$ref"], "#/components/parameters/f-items");
    assert!(items["responses"]["200"]["content"]["application/flatgeobuf"].is_object());
}

// ---------------------------------------------------------------- Range on version files

#[tokio::test]
async fn version_files_answer_ranges_head_and_validators() {
    let f = fixture();
    let uri = "/v1/layers/components/versions/1";
    let auth = format!("Bearer {TOKEN}");
    let with = |extra: &[(&'static str, String)]| {
        let mut h: Vec<(&str, String)> = vec![("authorization", auth.clone())];
        h.extend(extra.iter().cloned());
        h
    };
    let call = |method: &'static str, headers: Vec<(&'static str, String)>| {
        let app = f.app.clone();
        async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            send(&app, method, uri, &h).await
        }
    };
    let stored = std::fs::read(f.dir.path().join("layers/components/1.fgb")).unwrap();
    let len = stored.len();
    assert!(len > 10_000, "{len}");

    // No token: 401, in the API's error format.
    let a = get(&f.app, uri).await;
    assert_eq!((a.status, json(&a)["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")));
    let a = call("GET", with(&[("range", "bytes=0-99".into())])).await;
    assert_eq!(a.status, StatusCode::PARTIAL_CONTENT, "with the token");

    let full = call("GET", with(&[])).await;
    assert_eq!(full.status, StatusCode::OK);
    assert_eq!(full.body, stored);
    assert_eq!(full.headers["accept-ranges"], "bytes");
    assert_eq!(full.headers["content-length"], len.to_string().as_str());
    let etag = full.headers["etag"].to_str().unwrap().to_owned();
    let last_modified = full.headers["last-modified"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "a strong ETag: {etag}");

    for (range, a, b) in [
        ("bytes=0-99".to_owned(), 0, 99),
        (format!("bytes={}-{}", len / 2, len / 2 + 4095), len / 2, len / 2 + 4095),
        (format!("bytes={}-", len - 10), len - 10, len - 1),
        ("bytes=-300".to_owned(), len - 300, len - 1),
        (format!("bytes=100-{}", len + 1000), 100, len - 1),
    ] {
        let r = call("GET", with(&[("range", range.clone())])).await;
        assert_eq!(r.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(r.body, &stored[a..=b], "{range}: exactly the slice");
        assert_eq!(r.headers["content-range"], format!("bytes {a}-{b}/{len}").as_str(), "{range}");
        assert_eq!(r.headers["content-length"], (b - a + 1).to_string().as_str(), "{range}");
    }
    for range in [format!("bytes={len}-"), format!("bytes={}-{}", len + 5, len + 10), "bytes=-0".to_owned()] {
        let r = call("GET", with(&[("range", range.clone())])).await;
        assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(r.headers["content-range"], format!("bytes */{len}").as_str());
        assert_eq!(json(&r)["error"]["code"], "range_not_satisfiable");
    }
    // Several ranges or a malformed one: the whole file.
    for range in ["bytes=0-1,5-6", "bytes=9-3", "lines=1-2"] {
        let r = call("GET", with(&[("range", range.into())])).await;
        assert_eq!((r.status, r.body.len()), (StatusCode::OK, len), "{range}");
    }
    // HEAD: the length, no body.
    let h = call("HEAD", with(&[])).await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.headers["content-length"], len.to_string().as_str());
    assert_eq!(h.headers["accept-ranges"], "bytes");
    assert!(h.body.is_empty());
    let h = call("HEAD", with(&[("range", "bytes=0-9".into())])).await;
    assert_eq!((h.status, h.headers["content-length"].to_str().unwrap()), (StatusCode::PARTIAL_CONTENT, "10"));
    // Validators.
    let r = call("GET", with(&[("if-none-match", etag.clone())])).await;
    assert_eq!((r.status, r.body.len()), (StatusCode::NOT_MODIFIED, 0));
    assert_eq!(r.headers["etag"], etag.as_str());
    let r = call("GET", with(&[("if-modified-since", last_modified.clone())])).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    let r = call("GET", with(&[("if-none-match", "\"other\"".into())])).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call("GET", with(&[("range", "bytes=0-9".into()), ("if-range", etag.clone())])).await;
    assert_eq!((r.status, r.body.len()), (StatusCode::PARTIAL_CONTENT, 10));
    let r = call("GET", with(&[("range", "bytes=0-9".into()), ("if-range", "\"stale\"".into())])).await;
    assert_eq!((r.status, r.body.len()), (StatusCode::OK, len), "a changed file: all of it");
    // Another version has another ETag.
    let grids = send(&f.app, "GET", "/v1/layers/grids/versions/1", &[("authorization", &auth)]).await;
    assert_ne!(grids.headers["etag"], etag.as_str());

    // A text version file (the responsibility list, CSV) is sent as stored even to a client
    // that accepts gzip: one strong ETag and byte ranges always mean the same bytes.
    let rules = std::fs::read(f.dir.path().join("rules/1.csv")).unwrap();
    assert!(rules.len() > 4096, "large enough to be compressed if text were: {}", rules.len());
    let r = send(&f.app, "GET", "/v1/layers/rules/versions/1", &[("authorization", auth.as_str()), ("accept-encoding", "gzip, br")]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers.get("content-encoding").is_none(), "{:?}", r.headers);
    assert_eq!((r.headers["accept-ranges"].to_str().unwrap(), r.body.as_slice()), ("bytes", rules.as_slice()));
    let r =
        send(&f.app, "GET", "/v1/layers/rules/versions/1", &[("authorization", auth.as_str()), ("accept-encoding", "gzip"), ("range", "bytes=10-19")]).await;
    assert_eq!((r.status, r.body.as_slice()), (StatusCode::PARTIAL_CONTENT, &rules[10..20]));
}

// ---------------------------------------------------------------- a real client: GDAL

/// GDAL against the real binary: the streamed FlatGeobuf of a collection over
/// `/vsicurl_streaming/`, and a stored version file read lazily over `/vsicurl/` (HEAD for the
/// length, then Range requests) with the admin token in a header.
#[test]
fn gdal_reads_the_downloads_over_vsicurl() {
    if Command::new("ogrinfo").arg("--version").output().is_err() {
        eprintln!("SKIPPED gdal_reads_the_downloads_over_vsicurl: GDAL's ogrinfo is not installed (apt-get install gdal-bin; CI installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(serve_tiny_demo(&data).env("CITYGRID_ADMIN_TOKEN", TOKEN));
    let addr = server.addr.clone();
    let world = World::new(Store::open(&data).unwrap().load_city(&|_, _| {}).unwrap());

    let run = |args: &[&str]| -> String {
        let out = Command::new("ogrinfo").args(args).env("CPL_VSIL_CURL_NON_CACHED", "").output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "ogrinfo {args:?}:\n{stdout}\n{stderr}");
        stdout.into_owned()
    };
    let components = world.city.components.len();
    // The streamed FlatGeobuf of a collection (public, no token). A stream has no length, which
    // /vsicurl/ needs (it reads by ranges): /vsicurl_streaming/ reads it in one pass.
    let url = format!("/vsicurl_streaming/http://{addr}/ogc/collections/components/items?f=fgb");
    let summary = run(&["-ro", "-so", &url, "components"]);
    assert!(summary.contains(&format!("Feature Count: {components}")), "{summary}");
    assert!(summary.contains("code: String"), "{summary}");
    let url = format!("/vsicurl_streaming/http://{addr}/ogc/collections/components/items?f=fgb&crs=EPSG:4549&status=破损");
    let summary = run(&["-ro", "-so", &url, "components"]);
    let damaged = world.city.components.iter().filter(|c| c.status == citygrid::model::Status::Damaged).count();
    assert!(summary.contains(&format!("Feature Count: {damaged}")), "{summary}");
    assert!(summary.contains("4549") || summary.contains("CM 120E"), "the projected CRS: {summary}");

    // The stored version file: read lazily with Range requests, the token in a header.
    let url = format!("/vsicurl/http://{addr}/v1/layers/components/versions/1");
    let summary = run(&["-ro", "-so", "--config", "GDAL_HTTP_HEADERS", &format!("Authorization: Bearer {TOKEN}"), &url, "components"]);
    assert!(summary.contains(&format!("Feature Count: {components}")), "{summary}");
    // Without the token GDAL cannot open it.
    let out = Command::new("ogrinfo").args(["-ro", "-so", &url]).output().unwrap();
    assert!(!out.status.success(), "no token, no file");
    drop(server);
}
