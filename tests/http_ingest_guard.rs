//! An upload replaces the whole layer: one with fewer than half the current features is refused
//! as a probably partial file unless `allow_shrink=true` says the layer really shrinks.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use citygrid::datasets::Datasets;
use citygrid::http::{AppState, router};
use citygrid::store::Store;
use citygrid::tiles::TileConfig;

const TOKEN: &str = "guard-admin-token-0123456789";

async fn put(app: &axum::Router, uri: &str, body: String) -> (StatusCode, Value) {
    let req = Request::builder()
        .method("PUT")
        .uri(uri)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/geo+json")
        .body(Body::from(body))
        .unwrap();
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn a_layer_shrinking_below_half_needs_allow_shrink() {
    let dir = tempfile::tempdir().unwrap();
    let handle = common::tiny_world(dir.path());
    let app = router(
        AppState::new(handle.clone())
            .with_admin_tokens(vec![TOKEN.into()])
            .with_datasets(Datasets::new(Store::open(dir.path()).unwrap(), handle.clone(), TileConfig::default())),
    );
    let world = handle.load();
    // One street's survey: the first 10 components only.
    let features: Vec<Value> = world.city.components[..10]
        .iter()
        .map(|c| {
            json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [c.location.x, c.location.y]},
                   "properties": {"code": c.code.to_string(), "class": c.class.to_string()}})
        })
        .collect();
    let body = json!({"type": "FeatureCollection", "features": features}).to_string();
    let (status, e) = put(&app, "/v1/layers/components", body.clone()).await;
    assert_eq!((status, e["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("layer_rejected")), "{e}");
    let why = e["error"]["details"]["report"]["rejection"].as_str().unwrap();
    assert!(why.contains("allow_shrink") && why.contains(&world.city.components.len().to_string()), "{why}");
    assert_eq!(handle.load().city.components.len(), world.city.components.len(), "nothing changed");
    let (status, ok) = put(&app, "/v1/layers/components?allow_shrink=true", body).await;
    assert_eq!(status, StatusCode::OK, "{ok}");
    assert_eq!(handle.load().city.components.len(), 10);
}
