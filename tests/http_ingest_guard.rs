//! An upload replaces the whole layer: one with fewer than half the current features is refused
//! as a probably partial file unless `allow_shrink=true` says the layer really shrinks.

mod common;

use axum::http::StatusCode;
use serde_json::{Value, json};

use common::ingest::{Server, put, server};

#[tokio::test]
async fn a_layer_shrinking_below_half_needs_allow_shrink() {
    let Server { app, handle, dir: _dir } = server();
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
    let (status, e) = put(&app, "/v1/layers/components", Some("application/geo+json"), body.clone()).await;
    assert_eq!((status, e["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("layer_rejected")), "{e}");
    let why = e["error"]["details"]["report"]["rejection"].as_str().unwrap();
    assert!(why.contains("allow_shrink") && why.contains(&world.city.components.len().to_string()), "{why}");
    assert_eq!(handle.load().city.components.len(), world.city.components.len(), "nothing changed");
    let (status, ok) = put(&app, "/v1/layers/components?allow_shrink=true", Some("application/geo+json"), body).await;
    assert_eq!(status, StatusCode::OK, "{ok}");
    assert_eq!(handle.load().city.components.len(), 10);
}
