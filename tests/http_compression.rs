//! Response compression through the real router: large JSON answers come gzip- or
//! brotli-encoded when asked for and decode to the same JSON; tiles keep their own
//! pre-compressed encoding (never compressed twice); small answers and binary types pass as
//! they are; the streamed batch-routing answer is compressed and still streams.

mod common;

use std::io::{Read, Write};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use citygrid::http::{AppState, router};
use citygrid::world::WorldHandle;

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    /// Every `Content-Encoding` value (one, or none, expected).
    fn encodings(&self) -> Vec<String> {
        self.headers.get_all(header::CONTENT_ENCODING).iter().map(|v| v.to_str().unwrap().to_owned()).collect()
    }
}

async fn send(app: &axum::Router, method: &str, uri: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = app.clone().oneshot(req.body(Body::from(body)).unwrap()).await.unwrap();
    let (parts, body) = response.into_parts();
    Answer { status: parts.status, headers: parts.headers, body: body.collect().await.unwrap().to_bytes().to_vec() }
}

async fn get(app: &axum::Router, uri: &str, accept_encoding: Option<&str>) -> Answer {
    let headers: Vec<(&str, &str)> = accept_encoding.map(|a| ("accept-encoding", a)).into_iter().collect();
    send(app, "GET", uri, &headers, Vec::new()).await
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).expect("a gzip stream");
    out
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(bytes, 4096).read_to_end(&mut out).expect("a brotli stream");
    out
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes[..bytes.len().min(300)])))
}

fn fixture() -> (tempfile::TempDir, WorldHandle, axum::Router) {
    let dir = tempfile::tempdir().unwrap();
    let handle = common::tiny_world(dir.path());
    let app = router(AppState::new(handle.clone()));
    (dir, handle, app)
}

/// The whole city's box: the largest page of components.
fn city_bbox(handle: &WorldHandle) -> String {
    let world = handle.load();
    let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for c in &world.city.components {
        let (x, y) = (c.location.x, c.location.y);
        (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
    }
    format!("{x0},{y0},{x1},{y1}")
}

#[tokio::test]
async fn a_large_bbox_page_is_compressed_and_decodes_to_the_same_json() {
    let (_dir, handle, app) = fixture();
    let uri = format!("/v1/components?bbox={}&limit=1000", city_bbox(&handle));

    let plain = get(&app, &uri, None).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert!(plain.encodings().is_empty(), "no Accept-Encoding: identity, {:?}", plain.encodings());
    assert!(plain.body.len() > 100_000, "a large page: {} bytes", plain.body.len());
    let expected = json(&plain.body);

    let gz = get(&app, &uri, Some("gzip")).await;
    assert_eq!(gz.status, StatusCode::OK);
    assert_eq!(gz.encodings(), ["gzip"]);
    assert!(gz.headers[header::VARY].to_str().unwrap().to_ascii_lowercase().contains("accept-encoding"));
    assert!(gz.body.len() * 4 < plain.body.len(), "gzip {} of {} bytes", gz.body.len(), plain.body.len());
    assert_eq!(json(&gunzip(&gz.body)), expected);

    let br = get(&app, &uri, Some("gzip, deflate, br")).await;
    assert_eq!(br.encodings(), ["br"], "br is preferred when both are accepted");
    assert!(br.body.len() * 4 < plain.body.len());
    assert_eq!(json(&unbrotli(&br.body)), expected);

    // Refused codings are honoured.
    let refused = get(&app, &uri, Some("gzip;q=0, br;q=0")).await;
    assert!(refused.encodings().is_empty(), "{:?}", refused.encodings());
    assert_eq!(json(&refused.body), expected);
}

/// The z16 tile of a component of the tiny city: a tile with features.
fn busy_tile(handle: &WorldHandle) -> String {
    let world = handle.load();
    let c = world.city.components[world.city.components.len() / 2].location;
    let z = 16u8;
    let n = (1u64 << z) as f64;
    let x = ((c.x + 180.0) / 360.0 * n).floor() as u32;
    let lat = c.y.to_radians();
    let y = ((1.0 - (lat.tan() + 1.0 / lat.cos()).ln() / std::f64::consts::PI) / 2.0 * n).floor() as u32;
    format!("/tiles/grids,components/{z}/{x}/{y}.mvt")
}

#[tokio::test]
async fn a_tile_is_compressed_once_by_its_own_cache() {
    let (_dir, handle, app) = fixture();
    let uri = busy_tile(&handle);
    let raw = get(&app, &uri, None).await;
    assert_eq!(raw.status, StatusCode::OK);
    assert!(raw.encodings().is_empty());
    assert_ne!(&raw.body[..2], [0x1f, 0x8b], "an identity tile is the raw protobuf");

    let gz = get(&app, &uri, Some("gzip")).await;
    assert_eq!(gz.encodings(), ["gzip"], "one Content-Encoding, not two");
    let once = gunzip(&gz.body);
    assert_eq!(once, raw.body, "one gunzip gives the tile itself");
    assert_eq!(gz.headers[header::CONTENT_TYPE], "application/vnd.mapbox-vector-tile");

    let br = get(&app, &uri, Some("br, gzip")).await;
    assert_eq!(br.encodings(), ["br"]);
    assert_eq!(unbrotli(&br.body), raw.body, "one brotli decode gives the tile itself");
}

#[tokio::test]
async fn small_answers_and_binary_types_pass_as_they_are() {
    let (_dir, handle, _) = fixture();
    // A glyph range (protobuf): gzip-compressed once by its own handler, never again by the layer.
    let app = router(AppState::new(handle));
    let glyphs = get(&app, "/fonts/Noto%20Sans%20Regular/0-255.pbf", Some("gzip, br")).await;
    assert_eq!(glyphs.status, StatusCode::OK);
    assert_eq!(glyphs.encodings(), ["gzip"], "glyphs are compressed once");
    let plain = get(&app, "/fonts/Noto%20Sans%20Regular/0-255.pbf", None).await;
    assert!(plain.encodings().is_empty());
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&glyphs.body[..]), &mut unzipped).unwrap();
    assert_eq!(unzipped, plain.body);

    let small = get(&app, "/v1/nothing-here", Some("gzip, br")).await;
    assert_eq!(small.status, StatusCode::NOT_FOUND);
    assert!(small.body.len() < 1024, "{}", small.body.len());
    assert!(small.encodings().is_empty(), "a small answer is sent as it is: {:?}", small.encodings());
    assert!(json(&small.body)["error"]["code"].is_string());
}

#[tokio::test]
async fn the_batch_routing_stream_is_compressed_and_still_streams() {
    let (_dir, handle, app) = fixture();
    let [lon, lat] = handle.load().center();
    let case = json!({"lon": lon, "lat": lat, "event_type": "0102", "reported_at": "2026-11-20T17:00:00+08:00"});
    let n = 6000;
    let batch = serde_json::to_vec(&vec![case; n]).unwrap();
    let headers = [("content-type", "application/json")];

    let plain = send(&app, "POST", "/v1/cases/route:batch", &headers, batch.clone()).await;
    assert_eq!(plain.status, StatusCode::OK);
    let plain_lines: Vec<Value> = plain.body.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(json).collect();
    assert_eq!(plain_lines.len(), n);

    // Frame by frame: the first whole line decodes while more of the body is still to come.
    let request = Request::builder()
        .method("POST")
        .uri("/v1/cases/route:batch")
        .header("content-type", "application/json")
        .header("accept-encoding", "gzip")
        .body(Body::from(batch))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_ENCODING], "gzip");
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/x-ndjson");
    let mut body = response.into_body();
    let mut decoder = flate2::write::GzDecoder::new(Vec::new());
    let mut frames_after_first_line = None;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.unwrap().into_data() else { continue };
        decoder.write_all(&data).unwrap();
        decoder.flush().unwrap();
        match &mut frames_after_first_line {
            None if decoder.get_ref().contains(&b'\n') => frames_after_first_line = Some(0),
            Some(k) => *k += 1,
            None => {}
        }
    }
    let decoded = decoder.finish().unwrap();
    assert!(frames_after_first_line.is_some_and(|k| k > 0), "the first line decoded before the last frame ({frames_after_first_line:?} frames after it)");
    let lines: Vec<Value> = decoded.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(json).collect();
    assert_eq!(lines.len(), n);
    for (a, b) in lines.iter().zip(&plain_lines) {
        assert_eq!((&a["index"], &a["ok"], &a["answer"]["responsible_unit"]), (&b["index"], &b["ok"], &b["answer"]["responsible_unit"]));
    }
}
