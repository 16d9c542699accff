//! Cross-origin calls from MapLibre pages and tools on other origins: reads are public by
//! default, writes only from configured origins, preflights answered, nothing for a page that
//! may not.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use citygrid::http::cors::CorsPolicy;
use citygrid::http::{AppState, router};
use tower::ServiceExt;

async fn call(app: &axum::Router, method: &str, uri: &str, headers: &[(&str, &str)]) -> axum::http::Response<Body> {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
}

fn allowed(r: &axum::http::Response<Body>) -> Option<String> {
    r.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn reads_are_public_writes_need_a_configured_origin() {
    let dir = tempfile::tempdir().unwrap();
    let handle = common::tiny_world(dir.path());
    let page = "https://map.other.example";
    let app = router(AppState::new(handle.clone()));
    // A read from any page.
    let r = call(&app, "GET", "/health", &[("origin", page)]).await;
    assert_eq!((r.status(), allowed(&r).as_deref()), (StatusCode::OK, Some(page)));
    assert!(r.headers().get("vary").is_some_and(|v| v.to_str().unwrap().to_lowercase().contains("origin")), "caches keep origins apart");
    let r = call(&app, "OPTIONS", "/tiles/grids/14/13703/6671.mvt", &[("origin", page), ("access-control-request-method", "GET")]).await;
    assert_eq!((r.status(), allowed(&r).as_deref()), (StatusCode::OK, Some(page)));
    // A write (and case routing, which writes the audit log) from a page nobody configured: no.
    for method in ["PUT", "POST"] {
        let r = call(&app, "OPTIONS", "/v1/layers/grids", &[("origin", page), ("access-control-request-method", method)]).await;
        assert_eq!(allowed(&r), None, "{method}");
    }
    // OPTIONS without an origin: answered (no more 405), and allows no one.
    let r = call(&app, "OPTIONS", "/v1/locate", &[]).await;
    assert_eq!((r.status(), allowed(&r)), (StatusCode::OK, None));

    // The dispatch centre's own page may write; reads can be closed to the rest.
    let ours = "https://dispatch.example.gov.cn";
    let app = router(AppState::new(handle).with_cors(CorsPolicy { public_reads: false, write_origins: vec![ours.into()] }));
    let r = call(
        &app,
        "OPTIONS",
        "/v1/cases/route",
        &[("origin", ours), ("access-control-request-method", "POST"), ("access-control-request-headers", "content-type,authorization")],
    )
    .await;
    assert_eq!((r.status(), allowed(&r).as_deref()), (StatusCode::OK, Some(ours)));
    let methods = r.headers().get("access-control-allow-methods").unwrap().to_str().unwrap().to_owned();
    assert!(methods.contains("POST") && methods.contains("PUT"), "{methods}");
    let r = call(&app, "GET", "/health", &[("origin", page)]).await;
    assert_eq!((r.status(), allowed(&r)), (StatusCode::OK, None), "reads closed to other pages");
    let r = call(&app, "GET", "/health", &[("origin", ours)]).await;
    assert_eq!(allowed(&r).as_deref(), Some(ours));
}
