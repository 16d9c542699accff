//! The web viewer through the real router: its page, modules and MapLibre GL JS compiled in
//! (whatever the viewer directory holds), ETags and compression, a developer's viewer directory
//! overriding single files, and the redirects to /viewer/.

mod common;

use std::path::Path;

use axum::http::{StatusCode, header};

use citygrid::http::{AppState, router};

use common::http::{get, get_with};

/// A router on the tiny city whose viewer directory is `viewer_dir`.
fn app(data: &Path, viewer_dir: &Path) -> axum::Router {
    router(AppState::new(common::tiny_world(data)).with_viewer_dir(viewer_dir.to_path_buf()))
}

#[tokio::test]
async fn the_page_and_its_modules_are_served_from_the_binary() {
    let data = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let app = app(data.path(), empty.path());

    let page = get(&app, "/viewer/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.header(header::CONTENT_TYPE).unwrap(), "text/html; charset=utf-8");
    assert_eq!(page.header(header::CACHE_CONTROL).unwrap(), "no-cache");
    let html = page.text();
    assert!(html.contains("<script type=\"module\" src=\"app.js\">"), "{html}");
    assert!(html.contains("vendor/maplibre-gl/maplibre-gl.css"), "{html}");
    assert_eq!(get(&app, "/viewer/index.html").await.text(), html);

    let js = get(&app, "/viewer/app.js").await;
    assert_eq!(js.status, StatusCode::OK);
    assert_eq!(js.header(header::CONTENT_TYPE).unwrap(), "text/javascript; charset=utf-8");
    let js = js.text();
    assert!(js.contains("vendor/maplibre-gl/maplibre-gl.mjs") && js.contains("window.citygridMap"), "app.js");
    assert!(js.contains("import ") && js.contains("./api.js"), "app.js is an ES module importing api.js");
    assert_eq!(get(&app, "/viewer/api.js").await.status, StatusCode::OK);
    assert_eq!(get(&app, "/viewer/style.css").await.header(header::CONTENT_TYPE).unwrap(), "text/css; charset=utf-8");

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
async fn maplibre_is_compiled_in_with_its_licence_etag_and_compression() {
    let data = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let app = app(data.path(), empty.path());

    let js = get(&app, "/viewer/vendor/maplibre-gl/maplibre-gl.mjs").await;
    assert_eq!(js.status, StatusCode::OK);
    assert_eq!(js.header(header::CONTENT_TYPE).unwrap(), "text/javascript; charset=utf-8");
    assert_eq!(js.header(header::CACHE_CONTROL).unwrap(), "public, max-age=3600");
    let text = js.text();
    assert!(text.contains("MapLibre GL JS") && text.contains("v6.17.0"), "the pinned version");
    assert!(text.contains("maplibre-gl-worker.mjs"), "loads its worker from beside itself");
    let worker = get(&app, "/viewer/vendor/maplibre-gl/maplibre-gl-worker.mjs?v=6.17.0").await;
    assert_eq!((worker.status, worker.header(header::CONTENT_TYPE).unwrap()), (StatusCode::OK, "text/javascript; charset=utf-8"));
    let css = get(&app, "/viewer/vendor/maplibre-gl/maplibre-gl.css").await;
    assert_eq!((css.status, css.header(header::CONTENT_TYPE).unwrap()), (StatusCode::OK, "text/css; charset=utf-8"));
    assert!(css.text().contains(".maplibregl-map"));
    let licence = get(&app, "/viewer/vendor/maplibre-gl/LICENSE.txt").await;
    assert_eq!((licence.status, licence.header(header::CONTENT_TYPE).unwrap()), (StatusCode::OK, "text/plain; charset=utf-8"));
    assert!(licence.text().contains("MapLibre") && licence.text().contains("Redistribution"), "BSD-3-Clause text");

    // A strong ETag; the same one again is a 304 with no body.
    let etag = js.header(header::ETAG).unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let again = get_with(&app, "/viewer/vendor/maplibre-gl/maplibre-gl.mjs", &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    assert_eq!(again.header(header::ETAG).unwrap(), etag);
    let stale = get_with(&app, "/viewer/vendor/maplibre-gl/maplibre-gl.mjs", &[("if-none-match", "\"0-0\"")]).await;
    assert_eq!(stale.status, StatusCode::OK);

    // Compressed for a client that accepts it, and the same bytes once decompressed.
    let gz = get_with(&app, "/viewer/vendor/maplibre-gl/maplibre-gl.mjs", &[("accept-encoding", "gzip")]).await;
    assert_eq!(gz.header(header::CONTENT_ENCODING).unwrap(), "gzip");
    assert!(gz.body.len() * 2 < js.body.len(), "{} of {}", gz.body.len(), js.body.len());
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz.body[..]), &mut plain).unwrap();
    assert_eq!(plain, js.body);
    let br = get_with(&app, "/viewer/vendor/maplibre-gl/maplibre-gl.mjs", &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(br.header(header::CONTENT_ENCODING).unwrap(), "br");
    assert_eq!(br.header(header::ETAG).unwrap(), etag, "one ETag for the file, whatever the encoding");

    // Only the files the viewer loads; nothing above them.
    for uri in [
        "/viewer/vendor/maplibre-gl/maplibre-gl.d.ts",
        "/viewer/vendor/maplibre-gl/..%2F..%2F..%2FCargo.toml",
        "/viewer/vendor/maplibre-gl/README.md",
        "/viewer/vendor/maplibre-gl/absent.mjs",
        "/viewer/..%2Fsrc%2Fmain.rs",
    ] {
        let answer = get(&app, uri).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(answer.json()["error"]["code"], "not_found", "{uri}");
    }
}

#[tokio::test]
async fn a_viewer_dir_overrides_single_files_for_development() {
    let data = tempfile::tempdir().unwrap();
    let viewer = tempfile::tempdir().unwrap();
    std::fs::write(viewer.path().join("app.js"), "console.log('working copy');\n").unwrap();
    std::fs::create_dir_all(viewer.path().join("vendor/maplibre-gl")).unwrap();
    std::fs::write(viewer.path().join("vendor/maplibre-gl/maplibre-gl.css"), ".dev{}\n").unwrap();
    std::fs::write(viewer.path().join("secret.js"), "no\n").unwrap();
    let app = app(data.path(), viewer.path());

    let js = get(&app, "/viewer/app.js").await;
    assert_eq!((js.status, js.text().as_str()), (StatusCode::OK, "console.log('working copy');\n"));
    assert_eq!(js.header(header::CACHE_CONTROL).unwrap(), "no-cache");
    assert_eq!(get(&app, "/viewer/vendor/maplibre-gl/maplibre-gl.css").await.text(), ".dev{}\n");
    // What the directory lacks comes from the binary; what the viewer does not load is not served.
    assert!(get(&app, "/viewer/api.js").await.text().contains("export"));
    assert!(get(&app, "/viewer/vendor/maplibre-gl/maplibre-gl.mjs").await.text().contains("v6.17.0"));
    assert_eq!(get(&app, "/viewer/secret.js").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn viewer_and_root_redirect_to_the_page() {
    let data = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let app = app(data.path(), empty.path());
    for uri in ["/viewer", "/"] {
        let answer = get(&app, uri).await;
        assert!(answer.status.is_redirection(), "{uri}: {}", answer.status);
        assert_eq!(answer.header(header::LOCATION).unwrap(), "/viewer/", "{uri}");
    }
}
