//! Roles: public reads, a dispatcher for case routing and the case log, an admin for data.
//! With dispatcher tokens configured, routing and reading the log need one (or an admin
//! token); a dispatcher token never writes data; statistics and lookups stay public. Without
//! dispatcher tokens, routing stays open (the two-command demo).

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use geo::InteriorPoint;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use citygrid::http::{AppState, router};
use citygrid::model::GridCode;
use citygrid::store::audit::AuditLog;

const ADMIN: &str = "roles-admin-token-0123456789";
const DISPATCHER: &str = "roles-dispatcher-token-0123456789";

fn app(dispatchers: Vec<String>) -> (tempfile::TempDir, axum::Router, Value) {
    let dir = tempfile::tempdir().unwrap();
    let handle = common::tiny_world(dir.path());
    let world = handle.load();
    let (code, _) = GridCode::parse("32050600100101", &world.city.hierarchy).unwrap();
    let p = world.city.grid(world.city.grid_by_code(code).unwrap()).geometry.interior_point().unwrap().0;
    let state =
        AppState::new(handle.clone()).with_admin_tokens(vec![ADMIN.into()]).with_dispatcher_tokens(dispatchers).with_audit(AuditLog::open(dir.path()).unwrap());
    (dir, router(state), json!({"lon": p.x, "lat": p.y, "event_type": "0102"}))
}

async fn send(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    content_type: &str,
    body: String,
) -> (StatusCode, Value, axum::http::HeaderMap) {
    let mut req = Request::builder().method(method).uri(uri).header("content-type", content_type);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let response = app.clone().oneshot(req.body(Body::from(body)).unwrap()).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value, headers)
}

#[tokio::test]
async fn with_dispatcher_tokens_routing_and_the_case_log_need_a_dispatcher_or_an_admin() {
    let (_dir, app, case) = app(vec![DISPATCHER.into()]);
    let body = case.to_string();
    let batch = json!([case]).to_string();

    // No token: 401 with a challenge, nothing routed; a wrong token: 403.
    let (s, e, h) = send(&app, "POST", "/v1/cases/route", None, "application/json", body.clone()).await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")), "{e}");
    assert!(h["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    assert!(e["error"]["message"].as_str().unwrap().contains("dispatcher"), "{e}");
    let (s, e, _) = send(&app, "POST", "/v1/cases/route", Some("not-a-token-0123456789"), "application/json", body.clone()).await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    let (s, _, _) = send(&app, "POST", "/v1/cases/route:batch", None, "application/json", batch.clone()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = send(&app, "GET", "/v1/cases/routes", None, "application/json", String::new()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "the case log holds where every case was");

    // The dispatcher routes, singly and in batches, and reads the log; so does the admin.
    let (s, a, _) = send(&app, "POST", "/v1/cases/route", Some(DISPATCHER), "application/json", body.clone()).await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert!(a["responsible_unit"]["name"].is_string(), "{a}");
    let (s, _, _) = send(&app, "POST", "/v1/cases/route:batch", Some(DISPATCHER), "application/json", batch).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = send(&app, "POST", "/v1/cases/route", Some(ADMIN), "application/json", body).await;
    assert_eq!(s, StatusCode::OK);
    let (s, log, _) = send(&app, "GET", "/v1/cases/routes", Some(DISPATCHER), "application/json", String::new()).await;
    assert_eq!(s, StatusCode::OK, "{log}");
    assert_eq!(log["routes"].as_array().unwrap().len(), 3, "the refused calls were not decisions: {log}");
    let (s, _, _) = send(&app, "GET", "/v1/cases/routes", Some(ADMIN), "application/json", String::new()).await;
    assert_eq!(s, StatusCode::OK);

    // A dispatcher token never writes data.
    let (s, e, _) = send(&app, "PUT", "/v1/rules", Some(DISPATCHER), "text/csv", "case_kind,case_type\n".into()).await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    let (s, _, _) = send(&app, "POST", "/v1/layers/grids/rollback", Some(DISPATCHER), "application/json", json!({"version": 1}).to_string()).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Public reads stay public: statistics (counts only), lookups, tiles' metadata.
    let (s, stats, _) = send(&app, "GET", "/v1/stats/cases", None, "application/json", String::new()).await;
    assert_eq!((s, stats["total"].as_u64()), (StatusCode::OK, Some(3)), "{stats}");
    let lon = case["lon"].as_f64().unwrap();
    let lat = case["lat"].as_f64().unwrap();
    let (s, _, _) = send(&app, "GET", &format!("/v1/locate?lon={lon}&lat={lat}"), None, "application/json", String::new()).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = send(&app, "GET", "/tiles/grids", None, "application/json", String::new()).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn without_dispatcher_tokens_routing_and_the_case_log_stay_open() {
    let (_dir, app, case) = app(vec![]);
    let (s, a, _) = send(&app, "POST", "/v1/cases/route", None, "application/json", case.to_string()).await;
    assert_eq!(s, StatusCode::OK, "{a}");
    let (s, log, _) = send(&app, "GET", "/v1/cases/routes", None, "application/json", String::new()).await;
    assert_eq!((s, log["routes"].as_array().map(Vec::len)), (StatusCode::OK, Some(1)));
    // Admin writes still need the admin token.
    let (s, _, _) = send(&app, "PUT", "/v1/rules", None, "text/csv", "case_kind,case_type\n".into()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}
