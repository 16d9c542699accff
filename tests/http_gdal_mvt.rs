//! GDAL's MVT driver reads a tileset from its URL alone (`MVT:http://HOST/tiles/{layers}/{z}`):
//! it fetches `/tiles/{layers}/metadata.json` for the layers, fields and bounds, then the tiles
//! of that zoom as `{z}/{x}/{y}.pbf`. Against the real binary on the tiny demo city, at the root
//! and under a base path (`CITYGRID_BASE_PATH`); also the metadata document itself.

mod common;

use std::process::Command;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use citygrid::http::{AppState, router};

#[tokio::test]
async fn metadata_json_is_the_tippecanoe_format_gdal_reads() {
    let dir = tempfile::tempdir().unwrap();
    let handle = common::tiny_world(dir.path());
    let app = router(AppState::new(handle.clone()));
    let get = |uri: &'static str| {
        let app = app.clone();
        async move {
            let r = app.oneshot(Request::builder().uri(uri).header("host", "h.example").body(Body::empty()).unwrap()).await.unwrap();
            let status = r.status();
            (status, r.into_body().collect().await.unwrap().to_bytes())
        }
    };
    let (status, body) = get("/tiles/components,grids/metadata.json").await;
    assert_eq!(status, StatusCode::OK);
    let m: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(m["format"], "pbf");
    for key in ["name", "minzoom", "maxzoom", "bounds", "center", "json"] {
        assert!(m[key].is_string(), "{key} is a string as in tippecanoe's metadata.json: {m}");
    }
    assert_eq!(m["minzoom"], "0");
    let bounds: Vec<f64> = m["bounds"].as_str().unwrap().split(',').map(|v| v.parse().unwrap()).collect();
    let extent = handle.load().grids.extent().unwrap();
    assert_eq!(bounds, [extent.min().x, extent.min().y, extent.max().x, extent.max().y]);
    assert_eq!(m["center"].as_str().unwrap().split(',').count(), 3);
    let inner: Value = serde_json::from_str(m["json"].as_str().unwrap()).unwrap();
    let layers = inner["vector_layers"].as_array().unwrap();
    assert_eq!(layers.iter().map(|l| l["id"].as_str().unwrap()).collect::<Vec<_>>(), ["grids", "components"]);
    for l in layers {
        assert_eq!(l["fields"]["code"], "String", "{l}");
        assert!(l["minzoom"].is_number() && l["maxzoom"].is_number(), "{l}");
    }
    assert_eq!(inner["tilestats"]["layers"][1]["geometry"], "Point");

    // Tiles also answer as .pbf, the extension GDAL asks for by default.
    let (status, _) = get("/tiles/grids/0/0/0.pbf").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = get("/tiles/grids/0/0/0.png").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{}", String::from_utf8_lossy(&body));
    let (status, _) = get("/tiles/roads/metadata.json").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The tiny demo city served by the real binary (with `env`), stopped on drop.
struct Server {
    server: common::server::Server,
    _dir: tempfile::TempDir,
}

fn serve(env: &[(&str, &str)]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let server = common::server::Server::start(common::server::serve_tiny_demo(&dir.path().join("data")).envs(env.iter().copied()));
    Server { server, _dir: dir }
}

fn ogrinfo(args: &[&str]) -> String {
    let out = Command::new("ogrinfo").args(args).env("NO_PROXY", "127.0.0.1").env("no_proxy", "127.0.0.1").output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "ogrinfo {args:?}:\n{stdout}\n{stderr}");
    stdout.into_owned()
}

/// `Layer name` → `Feature Count` of an ogrinfo listing.
fn feature_counts(text: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut layer = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("Layer name: ") {
            layer = Some(name.trim().to_owned());
        } else if let Some(n) = line.strip_prefix("Feature Count: ") {
            out.push((layer.take().expect("a layer name before its count"), n.trim().parse().unwrap()));
        }
    }
    out
}

#[test]
fn gdal_reads_the_tileset_from_its_url() {
    if Command::new("ogrinfo").arg("--version").output().is_err() {
        eprintln!("SKIPPED gdal_reads_the_tileset_from_its_url: GDAL's ogrinfo is not installed (apt-get install gdal-bin; CI installs it)");
        return;
    }
    let root = serve(&[]);
    let url = format!("MVT:http://{}/tiles/grids,components/14", root.server.addr);
    let summary = ogrinfo(&["-ro", "-al", "-so", &url]);
    let counts = feature_counts(&summary);
    assert_eq!(counts.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(), ["grids", "components"], "{summary}");
    assert!(counts.iter().all(|(_, n)| *n > 0), "{counts:?}\n{summary}");
    // The fields come from metadata.json: codes are strings, counts numbers.
    for field in ["code: String", "level_name: String", "point_count: Real"] {
        assert!(summary.contains(field), "{field} in:\n{summary}");
    }
    assert!(summary.contains("Extent: ("), "the bounds of metadata.json give the extent:\n{summary}");

    // Under a base path, unclipped, at the zoom of single components: every feature with its code.
    let prefixed = serve(&[("CITYGRID_BASE_PATH", "/citygrid")]);
    let url = format!("MVT:http://{}/citygrid/tiles/grids,components/16", prefixed.server.addr);
    let all = ogrinfo(&["-ro", "-al", "-oo", "CLIP=NO", &url]);
    let counts = feature_counts(&all);
    assert_eq!(counts.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(), ["grids", "components"], "{}", &all[..all.len().min(3000)]);
    assert!(counts.iter().all(|(_, n)| *n > 0), "{counts:?}");
    assert!(all.contains("code (String) = "), "feature codes are strings");
    assert!(all.contains("POINT (") && all.contains("POLYGON (("), "points and polygons decoded");
}
