//! The HTTP surface through the real router (tower oneshot).

mod common;

use axum::body::Body;
use axum::http::StatusCode;
use serde_json::Value;

use citygrid::http::{AppState, router};

async fn get(app: axum::Router, method: &str, uri: &str) -> (StatusCode, Value) {
    let a = common::http::send(&app, method, uri, &[], Body::empty()).await;
    (a.status, a.json())
}

#[tokio::test]
async fn health_names_each_layer_version_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let world = common::tiny_world(dir.path());
    let expected = world.load();
    let app = router(AppState::new(world.clone()));
    let (status, body) = get(app, "GET", "/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    let layer = |name: &str| body["layers"].as_array().unwrap().iter().find(|l| l["name"] == name).cloned().unwrap();
    assert_eq!(layer("grids")["version"], 1);
    assert_eq!(layer("grids")["features"], expected.city.grids.len());
    assert_eq!(layer("components")["version"], 1);
    assert_eq!(layer("components")["features"], expected.city.components.len());
    assert!(expected.city.components.len() >= 1500, "tiny has ~2,000 components");
    assert_eq!(body["rules_version"], 1);
    let levels = body["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 4);
    assert_eq!(levels[0]["name"], "区");
    assert_eq!(levels[0]["grids"], 1);
    assert_eq!(levels[3]["name_en"], "grid");
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_in_the_error_format() {
    let dir = tempfile::tempdir().unwrap();
    let app = router(AppState::new(common::tiny_world(dir.path())));
    let (status, body) = get(app.clone(), "GET", "/v1/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    assert!(body["error"]["message"].as_str().unwrap().contains("/v1/nothing-here"));
    let (status, body) = get(app, "DELETE", "/health").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"]["code"], "method_not_allowed");
}
