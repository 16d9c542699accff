//! The API description (`/openapi.json`, OpenAPI 3.1) and its page (`/docs`), through the real
//! router: every route the router serves is described, writes carry the bearer scheme and are
//! refused without a token, and real answers validate against the schemas the document gives.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use common::ingest::{TOKEN, server};

/// The router's source: the routes are read from it, so a route added without a description
/// fails here.
const ROUTER_SOURCE: &str = include_str!("../src/http/mod.rs");

/// Paths the description leaves out on purpose: the web viewer's pages and files.
const UNDESCRIBED: [&str; 5] = ["/", "/viewer", "/viewer/", "/viewer/{file}", "/viewer/vendor/maplibre-gl/{file}"];

/// `(path, methods)` of every `.route(...)` of the router.
fn router_routes() -> Vec<(String, Vec<&'static str>)> {
    let mut out = Vec::new();
    let parts: Vec<&str> = ROUTER_SOURCE.split(".route(").skip(1).collect();
    for part in parts {
        let part = part.split(".fallback(").next().unwrap();
        let path = part.trim_start().strip_prefix('"').and_then(|p| p.split('"').next()).expect("a literal path");
        let methods: Vec<&'static str> = ["get", "put", "post", "delete", "patch"]
            .into_iter()
            .filter(|m| {
                part.match_indices(&format!("{m}(")).any(|(i, _)| i == 0 || !part.as_bytes()[i - 1].is_ascii_alphanumeric() && part.as_bytes()[i - 1] != b'_')
            })
            .collect();
        assert!(!methods.is_empty(), "no method found for {path}");
        out.push((path.to_owned(), methods));
    }
    assert!(out.len() >= 40, "the router's routes were not read: {out:?}");
    out
}

/// Whether the router path (`{x}` segments match anything) and the described path (a segment
/// with a `{…}` template matches anything, e.g. `{y}.mvt`) name the same resource.
fn same_path(route: &str, described: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (route.split('/').collect(), described.split('/').collect());
    a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| x.starts_with('{') || y.contains('{') || x == y)
}

async fn call(app: &axum::Router, method: &str, uri: &str, token: bool, body: Option<(&str, Vec<u8>)>) -> (StatusCode, String, Vec<u8>) {
    let mut req = Request::builder().method(method).uri(uri);
    if token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
    }
    let req = match body {
        Some((ct, bytes)) => req.header(header::CONTENT_TYPE, ct).body(Body::from(bytes)).unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let ct = response.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, ct, response.into_body().collect().await.unwrap().to_bytes().to_vec())
}

async fn document(app: &axum::Router) -> Value {
    let (status, ct, bytes) = call(app, "GET", "/openapi.json", false, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(ct.starts_with("application/json"), "{ct}");
    serde_json::from_slice(&bytes).unwrap()
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                out.push((path.clone(), method.clone(), op));
            }
        }
    }
    out
}

fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v["$ref"].as_str() {
        Some(r) => doc.pointer(r.strip_prefix('#').unwrap()).unwrap_or_else(|| panic!("dangling {r}")),
        None => v,
    }
}

#[tokio::test]
async fn openapi_3_1_describes_every_route_of_the_router() {
    let s = server();
    let doc = document(&s.app).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    let described = operations(&doc);
    let mut missing = Vec::new();
    for (path, methods) in router_routes() {
        if UNDESCRIBED.contains(&path.as_str()) {
            continue;
        }
        for m in methods {
            if !described.iter().any(|(p, dm, _)| dm == m && same_path(&path, p)) {
                missing.push(format!("{} {path}", m.to_uppercase()));
            }
        }
    }
    assert!(missing.is_empty(), "routes without a description: {missing:?}");
    // And nothing is described that the router does not serve.
    let routes = router_routes();
    for (path, method, _) in &described {
        assert!(routes.iter().any(|(r, ms)| ms.contains(&method.as_str()) && same_path(r, path)), "{method} {path} is described but not routed");
    }
    // The OGC paths come from the OGC API's own definition, one per collection.
    for c in ["grids", "components", "zones"] {
        let items = &doc["paths"][format!("/ogc/collections/{c}/items")]["get"];
        assert!(items["parameters"].as_array().unwrap().len() >= 6, "{c}: {items}");
    }
    let status_filter = doc["paths"]["/ogc/collections/components/items"]["get"]["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "status");
    assert!(status_filter, "the property filters GDAL reads are in the whole description too");
}

#[tokio::test]
async fn every_operation_has_answers_and_errors_are_the_shared_schema() {
    let s = server();
    let doc = document(&s.app).await;
    let error_schema = json!({"$ref": "#/components/schemas/ErrorBody"});
    assert!(doc.pointer("/components/schemas/ErrorBody/properties/error").is_some());
    for (path, method, op) in operations(&doc) {
        let responses = op["responses"].as_object().unwrap_or_else(|| panic!("{method} {path}: no responses"));
        assert!(responses.keys().any(|k| k.starts_with('2')), "{method} {path}: no success answer");
        for (status, r) in responses {
            let r = resolve(&doc, r);
            assert!(r["description"].is_string(), "{method} {path} {status}");
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(r["content"]["application/json"]["schema"], error_schema, "{method} {path} {status}");
            }
        }
        if path != "/openapi.json" && path != "/docs" && !path.starts_with("/ogc") && op["parameters"].as_array().is_some_and(|p| !p.is_empty()) {
            assert!(responses.contains_key("400") || responses.contains_key("404"), "{method} {path}: parameters but no 400");
        }
    }
}

/// The operations that need the admin token, by the description and by the server.
#[tokio::test]
async fn writes_carry_the_bearer_scheme_and_are_refused_without_a_token() {
    let s = server();
    let doc = document(&s.app).await;
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"],
        json!({"type": "http", "scheme": "bearer", "description": doc["components"]["securitySchemes"]["bearer"]["description"]})
    );
    // The dispatcher's operations: open unless dispatcher tokens are configured, so the token
    // is optional in the description (`{}` or `bearer`), with the 401 and 403 it may get.
    let mut dispatcher: Vec<String> = operations(&doc)
        .into_iter()
        .filter(|(_, _, op)| op["security"] == json!([{}, {"bearer": []}]))
        .map(|(p, m, op)| {
            assert!(op["responses"]["401"].is_object() && op["responses"]["403"].is_object(), "{m} {p}");
            format!("{} {p}", m.to_uppercase())
        })
        .collect();
    dispatcher.sort();
    assert_eq!(dispatcher, ["GET /v1/cases/routes", "POST /v1/cases/route", "POST /v1/cases/route:batch"]);
    let mut secured: Vec<String> = operations(&doc)
        .into_iter()
        .filter(|(_, _, op)| op.get("security").is_some() && op["security"] != json!([{}, {"bearer": []}]))
        .map(|(p, m, op)| {
            assert_eq!(op["security"], json!([{"bearer": []}]), "{m} {p}");
            assert!(op["responses"]["401"].is_object() && op["responses"]["403"].is_object(), "{m} {p}");
            format!("{} {p}", m.to_uppercase())
        })
        .collect();
    secured.sort();
    assert_eq!(
        secured,
        [
            "GET /v1/layers/{name}/versions/{version}",
            "GET /v1/staff",
            "GET /v1/staff/events",
            "GET /v1/staff/nearest",
            "GET /v1/staff/{id}",
            "GET /v1/staff/{id}/track",
            "GET /v1/stats/patrol",
            "POST /v1/layers/{name}/rollback",
            "POST /v1/rules/rollback",
            "POST /v1/staff/positions",
            "PUT /v1/city",
            "PUT /v1/layers/{name}",
            "PUT /v1/rules",
        ]
    );
    for op in &secured {
        let (method, path) = op.split_once(' ').unwrap();
        let uri = path.replace("{name}", "grids").replace("{version}", "1");
        let (status, _, body) = call(&s.app, method, &uri, false, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{op}");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "unauthorized", "{op}");
    }
    // With no dispatcher token configured (this server), routing a case is open.
    let (status, _, _) = call(&s.app, "POST", "/v1/cases/route", false, Some(("application/json", b"{}".to_vec()))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// Checks `body` against the schema the document gives for `method path` answering `status`.
fn assert_conforms(doc: &Value, method: &str, path: &str, status: StatusCode, body: &[u8]) {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not described");
    let response = resolve(doc, &op["responses"][status.as_str()]);
    let schema = response["content"]["application/json"]["schema"].clone();
    assert!(!schema.is_null(), "{method} {path}: no JSON schema for {status}");
    let mut root = schema;
    if root.get("$ref").is_some() {
        root = json!({"allOf": [root]});
    }
    root["components"] = doc["components"].clone();
    let validator = jsonschema::draft202012::new(&root).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let instance: Value = serde_json::from_slice(body).unwrap();
    let errors: Vec<String> = validator.iter_errors(&instance).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{method} {path} {status}: {errors:#?}");
}

#[tokio::test]
async fn real_answers_validate_against_their_schemas() {
    let s = server();
    let app = &s.app;
    let doc = document(app).await;
    let get = async |uri: &str| call(app, "GET", uri, false, None).await;

    let (st, _, health) = get("/health").await;
    assert_conforms(&doc, "get", "/health", st, &health);
    let health: Value = serde_json::from_slice(&health).unwrap();
    let (lon, lat) = (health["center"][0].as_f64().unwrap(), health["center"][1].as_f64().unwrap());

    let (st, _, located) = get(&format!("/v1/locate?lon={lon}&lat={lat}&accuracy=30")).await;
    assert_eq!(st, StatusCode::OK);
    assert_conforms(&doc, "get", "/v1/locate", st, &located);
    let located: Value = serde_json::from_slice(&located).unwrap();
    let grid = located["grid"]["code"].as_str().unwrap().to_owned();

    let (st, _, b) = get(&format!("/v1/grids/{grid}")).await;
    assert_eq!(st, StatusCode::OK);
    assert_conforms(&doc, "get", "/v1/grids/{code}", st, &b);

    let (st, _, b) = get(&format!("/v1/components/nearest?lon={lon}&lat={lat}&k=5")).await;
    assert_eq!(st, StatusCode::OK);
    assert_conforms(&doc, "get", "/v1/components/nearest", st, &b);
    let nearest: Value = serde_json::from_slice(&b).unwrap();
    let component = nearest["components"][0]["code"].as_str().unwrap().to_owned();

    let (st, _, b) = get(&format!("/v1/components/{component}")).await;
    assert_eq!(st, StatusCode::OK);
    assert_conforms(&doc, "get", "/v1/components/{code}", st, &b);

    let bbox = format!("{},{},{},{}", lon - 0.01, lat - 0.01, lon + 0.01, lat + 0.01);
    let (st, _, b) = get(&format!("/v1/components?bbox={bbox}&limit=3")).await;
    assert_eq!(st, StatusCode::OK);
    assert_conforms(&doc, "get", "/v1/components", st, &b);
    let (st, _, b) = get(&format!("/v1/components/counts?bbox={bbox}")).await;
    assert_eq!(st, StatusCode::OK);
    assert_conforms(&doc, "get", "/v1/components/counts", st, &b);

    for (path, uri) in [
        ("/v1/cases/types", "/v1/cases/types"),
        ("/v1/rules", "/v1/rules"),
        ("/v1/layers", "/v1/layers"),
        ("/v1/layers/{name}/versions", "/v1/layers/grids/versions"),
        ("/v1/rules/versions", "/v1/rules/versions"),
    ] {
        let (st, _, b) = get(uri).await;
        assert_eq!(st, StatusCode::OK, "{uri}");
        assert_conforms(&doc, "get", path, st, &b);
    }

    let case = json!({"lon": lon, "lat": lat, "component_class": "0101", "urgency": "紧急"});
    let (st, _, b) = call(app, "POST", "/v1/cases/route", false, Some(("application/json", case.to_string().into_bytes()))).await;
    assert_eq!(st, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    assert_conforms(&doc, "post", "/v1/cases/route", st, &b);

    // A dry run of the list being served, then the list saved: both shapes of PUT /v1/rules.
    let rules = s.handle.load().rules_csv.clone().unwrap();
    for uri in ["/v1/rules?dry_run=true", "/v1/rules"] {
        let (st, _, b) = call(app, "PUT", uri, true, Some(("text/csv", rules.clone().into_bytes()))).await;
        assert_eq!(st, StatusCode::OK, "{uri}: {}", String::from_utf8_lossy(&b));
        assert_conforms(&doc, "put", "/v1/rules", st, &b);
    }
    let (st, _, b) = call(app, "POST", "/v1/rules/rollback", true, Some(("application/json", br#"{"version": 1}"#.to_vec()))).await;
    assert_eq!(st, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    assert_conforms(&doc, "post", "/v1/rules/rollback", st, &b);

    // Errors: the shared schema.
    for (path, uri, want) in [
        ("/v1/locate", "/v1/locate?lon=abc&lat=1", StatusCode::BAD_REQUEST),
        ("/v1/locate", "/v1/locate?lon=0&lat=0", StatusCode::NOT_FOUND),
        ("/v1/grids/{code}", &format!("/v1/grids/{}099", &grid[..6]), StatusCode::NOT_FOUND),
        ("/v1/grids/{code}", "/v1/grids/12x", StatusCode::BAD_REQUEST),
        ("/v1/components", "/v1/components", StatusCode::BAD_REQUEST),
        ("/v1/cases/routes", "/v1/cases/routes", StatusCode::SERVICE_UNAVAILABLE),
        ("/v1/layers/{name}/versions", "/v1/layers/nope/versions", StatusCode::NOT_FOUND),
    ] {
        let (st, _, b) = get(uri).await;
        assert_eq!(st, want, "{uri}: {}", String::from_utf8_lossy(&b));
        assert_conforms(&doc, "get", path, st, &b);
    }

    // The schemas are not vacuous: an answer of another shape fails them.
    let result = std::panic::catch_unwind(|| assert_conforms(&doc, "get", "/health", StatusCode::OK, br#"{"status": "ok"}"#));
    assert!(result.is_err(), "a health answer without its fields must not validate");
}

#[tokio::test]
async fn the_page_lists_every_operation_without_scripts() {
    let s = server();
    let doc = document(&s.app).await;
    let (status, ct, body) = call(&s.app, "GET", "/docs", false, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(ct.starts_with("text/html"), "{ct}");
    let page = String::from_utf8(body).unwrap();
    assert!(!page.contains("<script") && !page.contains("https://"), "no scripts, nothing fetched from elsewhere");
    for (path, method, op) in operations(&doc) {
        let escaped = path.replace('&', "&amp;");
        assert!(page.contains(&format!("<code>{escaped}</code>")), "{path} is not on the page");
        assert!(page.contains(&format!("id=\"{method}")), "{method} {path}");
        if let Some(summary) = op["summary"].as_str() {
            assert!(page.contains(&summary.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")), "{summary}");
        }
    }
    assert!(page.contains("id=\"schema-ErrorBody\"") && page.contains("admin token"));
}
