//! The server under a path prefix, through the real router: with a configured base path
//! (`/citygrid`) every route answers under it and every URL the server writes (TileJSON, style,
//! catalog, OGC API links, redirects) carries it and is fetchable; at the root behind a proxy
//! that strips the prefix, a valid `X-Forwarded-Prefix` goes into the written URLs and a bad one
//! is ignored.

mod common;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use citygrid::http::{AppState, router};
use citygrid::world::WorldHandle;

const HOST: &str = "grid.example.org";

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

async fn get(app: &axum::Router, uri: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = Request::builder().uri(uri).header(header::HOST, HOST);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let (parts, body) = response.into_parts();
    Answer { status: parts.status, headers: parts.headers, body: body.collect().await.unwrap().to_bytes().to_vec() }
}

fn fixture(base_path: Option<&str>) -> (tempfile::TempDir, WorldHandle, axum::Router) {
    let dir = tempfile::tempdir().unwrap();
    let handle = common::tiny_world(dir.path());
    let mut state = AppState::new(handle.clone());
    if let Some(p) = base_path {
        state = state.with_base_path(p);
    }
    (dir, handle, router(state))
}

/// Every string in `v` that is a URL of this server (`http://HOST…`).
fn own_urls(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s.starts_with(&format!("http://{HOST}")) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| own_urls(x, out)),
        Value::Object(o) => o.values().for_each(|x| own_urls(x, out)),
        _ => {}
    }
}

/// The server's own URLs in the documents a map client and an OGC client start from.
async fn written_urls(app: &axum::Router, prefix: &str, headers: &[(&str, &str)]) -> Vec<String> {
    let mut urls = Vec::new();
    for doc in ["/tiles", "/tiles/grids,components", "/tiles/zones?datum=gcj02", "/styles/citygrid.json", "/ogc", "/ogc/collections", "/ogc/conformance"] {
        let answer = get(app, &format!("{prefix}{doc}"), headers).await;
        assert_eq!(answer.status, StatusCode::OK, "{prefix}{doc}: {}", answer.text());
        let before = urls.len();
        own_urls(&answer.json(), &mut urls);
        assert!(urls.len() > before, "{doc} names no URL of the server");
    }
    let api = get(app, &format!("{prefix}/ogc/api"), headers).await;
    assert_eq!(api.status, StatusCode::OK);
    urls.push(api.json()["servers"][0]["url"].as_str().expect("an OpenAPI server URL").to_owned());
    urls
}

/// A URL template's placeholders filled with a tile of the city centre (z14) and a glyph range.
fn concrete(url: &str, handle: &WorldHandle) -> String {
    let [lon, lat] = handle.load().center();
    let n = (1u64 << 14) as f64;
    let x = ((lon + 180.0) / 360.0 * n).floor() as u32;
    let r = lat.to_radians();
    let y = ((1.0 - (r.tan() + 1.0 / r.cos()).ln() / std::f64::consts::PI) / 2.0 * n).floor() as u32;
    url.replace("{z}", "14").replace("{x}", &x.to_string()).replace("{y}", &y.to_string())
}

#[tokio::test]
async fn under_a_base_path_every_written_url_carries_it_and_answers_there() {
    let (_dir, handle, app) = fixture(Some("/citygrid/"));
    let root = format!("http://{HOST}/citygrid");
    let urls = written_urls(&app, "/citygrid", &[]).await;
    assert!(urls.len() > 20, "{urls:?}");
    for url in &urls {
        assert!(url == &root || url.starts_with(&format!("{root}/")), "{url} lacks the prefix");
        let path = concrete(url.strip_prefix(&format!("http://{HOST}")).unwrap(), &handle)
            .replace("{fontstack}", "Open%20Sans%20Semibold")
            .replace("{range}", "0-255");
        let answer = get(&app, &path, &[]).await;
        assert!(matches!(answer.status, StatusCode::OK | StatusCode::NO_CONTENT), "{path}: {} {}", answer.status, answer.text());
    }
    // The style's glyphs answer under the prefix, for any font stack (the built-in font).
    let glyphs = get(&app, "/citygrid/fonts/Noto%20Sans%20Regular/0-255.pbf", &[]).await;
    assert_eq!(glyphs.status, StatusCode::OK);
    assert_eq!(glyphs.headers[header::CONTENT_TYPE], "application/x-protobuf");

    // A proxy's own X-Forwarded-Prefix does not change the configured prefix.
    let other = get(&app, "/citygrid/tiles/grids", &[("x-forwarded-prefix", "/other")]).await;
    assert!(other.json()["tiles"][0].as_str().unwrap().starts_with(&format!("{root}/tiles/grids/")));

    // Nothing answers outside the prefix but a JSON 404.
    for outside in ["/health", "/tiles/grids", "/viewer/", "/citygridx/health", "/"] {
        let answer = get(&app, outside, &[]).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{outside}");
        assert_eq!(answer.json()["error"]["code"], "not_found", "{outside}");
    }
    // A 404 under the prefix names the path as sent.
    let missing = get(&app, "/citygrid/v1/nothing", &[]).await.json();
    assert_eq!(missing["error"]["details"]["path"], "/citygrid/v1/nothing");
    let health = get(&app, "/citygrid/health", &[]).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json()["status"], "ok");
}

#[tokio::test]
async fn under_a_base_path_the_viewer_and_its_files_answer_there() {
    let (_dir, _handle, app) = fixture(Some("/citygrid"));
    for from in ["/citygrid", "/citygrid/", "/citygrid/viewer"] {
        let answer = get(&app, from, &[]).await;
        assert_eq!(answer.status, StatusCode::TEMPORARY_REDIRECT, "{from}");
        assert_eq!(answer.headers[header::LOCATION], "/citygrid/viewer/", "{from}");
    }
    let page = get(&app, "/citygrid/viewer/", &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    // Every URL the page loads is relative, so it resolves under the prefix.
    let mut loaded = 0;
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            let url = &part[..part.find('"').unwrap()];
            if url.starts_with("data:") {
                continue;
            }
            assert!(!url.starts_with('/') && !url.contains("://"), "{url} is not relative");
            let answer = get(&app, &format!("/citygrid/viewer/{url}"), &[]).await;
            // MapLibre too: it is compiled into the binary.
            assert_eq!(answer.status, StatusCode::OK, "{url}: {}", answer.text());
            loaded += 1;
        }
    }
    assert!(loaded >= 3, "{html}");
    // The modules call the API relative to their own URL, never at the server's root.
    let api = get(&app, "/citygrid/viewer/api.js", &[]).await.text();
    assert!(api.contains("new URL('../', import.meta.url)"), "{api}");
    for module in ["api.js", "app.js"] {
        let js = get(&app, &format!("/citygrid/viewer/{module}"), &[]).await.text();
        for absolute in ["call('/", "fetch('/", "startsWith('/tiles/')"] {
            assert!(!js.contains(absolute), "{module} uses a root-relative URL: {absolute}");
        }
    }
}

#[tokio::test]
async fn at_the_root_a_forwarded_prefix_goes_into_the_written_urls() {
    let (_dir, handle, app) = fixture(None);
    let forwarded = [("x-forwarded-prefix", "/gis/citygrid/")];
    let root = format!("http://{HOST}/gis/citygrid");
    let urls = written_urls(&app, "", &forwarded).await;
    for url in &urls {
        assert!(url == &root || url.starts_with(&format!("{root}/")), "{url} lacks the forwarded prefix");
        // The proxy strips the prefix: the same path without it answers here.
        let path = concrete(url.strip_prefix(&root).unwrap(), &handle);
        if path.is_empty() || path.contains("{fontstack}") {
            continue;
        }
        let answer = get(&app, &path, &forwarded).await;
        assert!(matches!(answer.status, StatusCode::OK | StatusCode::NO_CONTENT), "{path}: {}", answer.status);
    }
    let redirect = get(&app, "/", &forwarded).await;
    assert_eq!(redirect.headers[header::LOCATION], "/gis/citygrid/viewer/");
    // Without the header: the root.
    let plain = get(&app, "/tiles/grids", &[]).await.json();
    assert!(plain["tiles"][0].as_str().unwrap().starts_with(&format!("http://{HOST}/tiles/grids/")));
    assert_eq!(get(&app, "/", &[]).await.headers[header::LOCATION], "/viewer/");
}

#[tokio::test]
async fn a_bad_forwarded_prefix_is_ignored() {
    let (_dir, _handle, app) = fixture(None);
    let long = format!("/{}", "a".repeat(300));
    for bad in ["citygrid", "//evil.example", "/a/../b", "/..", "http://evil.example/x", "/a b", "/a?b=1", "/a#b", "/%2e%2e", "/a//b", long.as_str()] {
        let tj = get(&app, "/tiles/grids", &[("x-forwarded-prefix", bad)]).await.json();
        let tiles = tj["tiles"][0].as_str().unwrap();
        assert!(tiles.starts_with(&format!("http://{HOST}/tiles/grids/")), "{bad:?} was used: {tiles}");
        let ogc = get(&app, "/ogc", &[("x-forwarded-prefix", bad)]).await.json();
        assert_eq!(ogc["links"][0]["href"], format!("http://{HOST}/ogc"), "{bad:?}");
        let redirect = get(&app, "/", &[("x-forwarded-prefix", bad)]).await;
        assert_eq!(redirect.headers[header::LOCATION], "/viewer/", "{bad:?}");
    }
}
