//! A server over the tiny demo city that takes layer uploads, and what import tests ask of it.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use citygrid::datasets::Datasets;
use citygrid::http::{AppState, router};
use citygrid::store::Store;
use citygrid::tiles::TileConfig;
use citygrid::world::WorldHandle;

pub const TOKEN: &str = "test-admin-token-0123456789";

pub struct Server {
    pub app: axum::Router,
    pub handle: WorldHandle,
    pub dir: tempfile::TempDir,
}

/// The tiny city, version 1 of everything, accepting [`TOKEN`] and uploads up to `max_upload_mb`.
pub fn server_with_limit(max_upload_mb: usize) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let handle = super::tiny_world(dir.path());
    let store = Store::open(dir.path()).unwrap();
    let state = AppState::new(handle.clone()).with_admin_tokens(vec![TOKEN.into()]).with_max_upload_mb(max_upload_mb).with_datasets(Datasets::new(
        store,
        handle.clone(),
        TileConfig::default(),
    ));
    Server { app: router(state), handle, dir }
}

pub fn server() -> Server {
    server_with_limit(512)
}

/// `PUT uri` with the admin token and the body (and a content type, if given).
pub async fn put(app: &axum::Router, uri: &str, content_type: Option<&str>, body: impl Into<Vec<u8>>) -> (StatusCode, Value) {
    let mut req = Request::builder().method("PUT").uri(uri).header("authorization", format!("Bearer {TOKEN}"));
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let response = app.clone().oneshot(req.body(Body::from(body.into())).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{uri}: not JSON ({e}): {bytes:?}")))
}

pub async fn get(app: &axum::Router, uri: &str) -> (StatusCode, Value) {
    let response = app.clone().oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

/// Metres between two lon/lat points.
pub fn metres(a: geo_types::Coord<f64>, b: geo_types::Coord<f64>) -> f64 {
    citygrid::crs::haversine_m(a, b)
}

/// The versions the data directory commits.
pub fn versions(s: &Server) -> citygrid::store::Versions {
    Store::open(s.dir.path()).unwrap().versions()
}

/// Nothing was stored and the first version is still served (a component lookup answers from
/// it), with no file left behind.
pub async fn assert_unchanged(s: &Server, what: &str) {
    let v = versions(s);
    assert_eq!((v.get("grids"), v.get("components"), v.get("units")), (Some(1), Some(1), Some(1)), "{what}: stored {v:?}");
    let w = s.handle.load();
    assert_eq!((w.versions.get("grids"), w.versions.get("components")), (Some(1), Some(1)), "{what}");
    let c = &w.city.components[0];
    let (status, body) = get(&s.app, &format!("/v1/components/{}", c.code)).await;
    assert_eq!(status, StatusCode::OK, "{what}: still served: {body}");
    assert_eq!(body["versions"]["components"], 1, "{what}: {body}");
    let files = std::fs::read_dir(s.dir.path().join("layers/components")).unwrap().count();
    assert_eq!(files, 1, "{what}: no file left behind");
}
