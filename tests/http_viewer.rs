//! The web viewer through the real router: its page and modules compiled in, MapLibre served
//! from a viewer directory's node_modules when installed, a JSON 404 naming the install command
//! when not, and the redirects to /viewer/.

mod common;

use std::path::Path;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use citygrid::http::{AppState, router};

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers.get(&name).and_then(|v| v.to_str().ok()).unwrap_or_else(|| panic!("no {name} header"))
    }
    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// A router on the tiny city whose viewer directory is `viewer_dir`.
fn app(data: &Path, viewer_dir: &Path) -> axum::Router {
    router(AppState::new(common::tiny_world(data)).with_viewer_dir(viewer_dir.to_path_buf()))
}

async fn get(app: &axum::Router, uri: &str) -> Answer {
    let response = app.clone().oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes().to_vec();
    Answer { status, headers, body }
}

#[tokio::test]
async fn the_page_and_its_modules_are_served_from_the_binary() {
    let data = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let app = app(data.path(), empty.path());

    let page = get(&app, "/viewer/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.header(header::CONTENT_TYPE), "text/html; charset=utf-8");
    assert_eq!(page.header(header::CACHE_CONTROL), "no-cache");
    let html = page.text();
    assert!(html.contains("<script type=\"module\" src=\"app.js\">"), "{html}");
    assert!(html.contains("vendor/maplibre-gl/maplibre-gl.css"), "{html}");
    assert_eq!(get(&app, "/viewer/index.html").await.text(), html);

    let js = get(&app, "/viewer/app.js").await;
    assert_eq!(js.status, StatusCode::OK);
    assert_eq!(js.header(header::CONTENT_TYPE), "text/javascript; charset=utf-8");
    let js = js.text();
    assert!(js.contains("vendor/maplibre-gl/maplibre-gl.mjs") && js.contains("window.citygridMap"), "app.js");
    assert!(js.contains("import ") && js.contains("./api.js"), "app.js is an ES module importing api.js");
    assert_eq!(get(&app, "/viewer/api.js").await.status, StatusCode::OK);
    assert_eq!(get(&app, "/viewer/style.css").await.header(header::CONTENT_TYPE), "text/css; charset=utf-8");

    // Nothing from the internet: no absolute URLs in the viewer's own files.
    for file in ["index.html", "app.js", "api.js", "style.css"] {
        let text = get(&app, &format!("/viewer/{file}")).await.text();
        assert!(!text.contains("http://") && !text.contains("https://"), "{file} names an absolute URL");
    }

    let missing = get(&app, "/viewer/nope.js").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["error"]["code"], "not_found");
}

#[tokio::test]
async fn maplibre_missing_is_a_json_404_naming_the_install_command() {
    let data = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let app = app(data.path(), empty.path());
    for file in ["maplibre-gl.mjs", "maplibre-gl.css", "maplibre-gl-worker.mjs"] {
        let answer = get(&app, &format!("/viewer/vendor/maplibre-gl/{file}")).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{file}");
        assert_eq!(answer.header(header::CONTENT_TYPE), "application/json");
        let error = &answer.json()["error"];
        assert_eq!(error["code"], "viewer_vendor_missing");
        assert!(error["message"].as_str().unwrap().contains("npm ci --prefix web-viewer"), "{error}");
        assert_eq!(error["details"]["install"], "npm ci --prefix web-viewer");
        assert_eq!(error["details"]["path"], format!("/viewer/vendor/maplibre-gl/{file}"));
    }
}

#[tokio::test]
async fn maplibre_is_served_from_node_modules_when_installed() {
    let data = tempfile::tempdir().unwrap();
    let viewer = tempfile::tempdir().unwrap();
    let dist = citygrid::http::viewer::vendor_dir(viewer.path());
    std::fs::create_dir_all(&dist).unwrap();
    std::fs::write(dist.join("maplibre-gl.mjs"), "export default {};\n").unwrap();
    std::fs::write(dist.join("maplibre-gl.css"), ".maplibregl-map{}\n").unwrap();
    std::fs::write(viewer.path().join("secret.mjs"), "no\n").unwrap();
    std::fs::write(dist.join("maplibre-gl.d.ts"), "no\n").unwrap();
    let app = app(data.path(), viewer.path());

    let js = get(&app, "/viewer/vendor/maplibre-gl/maplibre-gl.mjs").await;
    assert_eq!(js.status, StatusCode::OK);
    assert_eq!(js.header(header::CONTENT_TYPE), "text/javascript; charset=utf-8");
    assert_eq!(js.header(header::CACHE_CONTROL), "public, max-age=3600");
    assert_eq!(js.text(), "export default {};\n");
    let css = get(&app, "/viewer/vendor/maplibre-gl/maplibre-gl.css").await;
    assert_eq!((css.status, css.header(header::CONTENT_TYPE)), (StatusCode::OK, "text/css; charset=utf-8"));

    // Only plain file names of dist/ with a type the page loads; nothing above it.
    for uri in [
        "/viewer/vendor/maplibre-gl/maplibre-gl.d.ts",
        "/viewer/vendor/maplibre-gl/..%2F..%2F..%2Fsecret.mjs",
        "/viewer/vendor/maplibre-gl/.hidden.mjs",
        "/viewer/vendor/maplibre-gl/absent.mjs",
    ] {
        let answer = get(&app, uri).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(answer.json()["error"]["code"].is_string(), "{uri}");
    }
}

#[tokio::test]
async fn viewer_and_root_redirect_to_the_page() {
    let data = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let app = app(data.path(), empty.path());
    for uri in ["/viewer", "/"] {
        let answer = get(&app, uri).await;
        assert!(answer.status.is_redirection(), "{uri}: {}", answer.status);
        assert_eq!(answer.header(header::LOCATION), "/viewer/", "{uri}");
    }
}
