//! Case routing through the real router (tower oneshot) on the tiny demo city.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use geo::InteriorPoint;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use citygrid::crs::Datum;
use citygrid::http::{AppState, router};
use citygrid::model::GridCode;

struct Fixture {
    app: axum::Router,
    /// Interior point (WGS84) of the first unit grid of 长桥街道's first community.
    a: (f64, f64),
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let handle = common::tiny_world(dir.path());
    let world = handle.load();
    let (code, _) = GridCode::parse("32050600100101", &world.city.hierarchy).unwrap();
    let p = world.city.grid(world.city.grid_by_code(code).unwrap()).geometry.interior_point().unwrap().0;
    Fixture { app: router(AppState::new(handle)), a: (p.x, p.y), _dir: dir }
}

async fn send(app: &axum::Router, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
    let request = Request::builder().method(method).uri(uri).header("content-type", "application/json").body(Body::from(body.to_owned())).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{uri}: not JSON ({e}): {bytes:?}")))
}

async fn post(app: &axum::Router, body: Value) -> (StatusCode, Value) {
    send(app, "POST", "/v1/cases/route", &body.to_string()).await
}

#[tokio::test]
async fn a_case_gets_one_unit_its_dispatcher_deadline_and_reasons() {
    let f = fixture();
    let (status, a) = post(&f.app, json!({"lon": f.a.0, "lat": f.a.1, "event_type": "0102", "reported_at": "2026-11-20T17:00:00+08:00"})).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(a["responsible_unit"]["name"], "长桥街道环卫所");
    assert!(a["responsible_unit"]["phone"].is_string());
    assert_eq!(a["dispatcher"]["name"], "任倩文");
    assert_eq!(a["grid"]["code"], "32050600100101");
    assert!(a["grid"]["name"].is_string());
    assert_eq!(a["area"]["grid"], "32050600100101");
    assert_eq!(a["rule"]["line"], 157);
    assert_eq!(a["rule"]["scope"], "320506001");
    assert!(a["rule"]["why"].as_str().unwrap().contains("line 4"), "{}", a["rule"]["why"]);
    assert_eq!(a["deadline"]["due"], "2026-11-23T12:00:00+08:00");
    assert_eq!(a["deadline"]["urgency"], "一般");
    assert_eq!(a["escalation"], "吴中区城市管理局");
    assert!(a["explanation"].as_array().unwrap().len() >= 3);
    assert_eq!(a["warnings"], json!([]));
    assert_eq!(a["chain"].as_array().unwrap().len(), 4);
    assert_eq!(a["versions"]["rules"], 1);

    // The street office is highlighted by its street code.
    let (status, a) = post(&f.app, json!({"lon": f.a.0, "lat": f.a.1, "event_type": "0101", "urgency": "normal"})).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(a["responsible_unit"]["name"], "长桥街道办事处");
    assert_eq!(a["responsible_unit"]["role"], "street");
    assert_eq!(a["area"]["grid"], "320506001");
}

#[tokio::test]
async fn gcj02_input_is_converted_and_the_wrong_datum_is_not_silently_the_same() {
    let f = fixture();
    let (x, y) = Datum::Gcj02.from_wgs84(f.a.0, f.a.1);
    let (status, a) = post(&f.app, json!({"lon": x, "lat": y, "crs": "gcj02", "event_type": "0102"})).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(a["grid"]["code"], "32050600100101");
    assert_eq!(a["point"]["crs"], "gcj02");
    // The same numbers read as WGS84 land ~470 m away: another grid or outside.
    let (_, b) = post(&f.app, json!({"lon": x, "lat": y, "event_type": "0102"})).await;
    assert_ne!(b["grid"]["code"], "32050600100101", "{b}");
}

#[tokio::test]
async fn bad_bodies_are_400s_in_the_documented_format() {
    let f = fixture();
    for (body, code) in [("{\"lon\": 120.6,", "invalid_json"), ("not json", "invalid_json"), ("[1, 2]", "invalid_json"), ("", "invalid_json")] {
        let (status, e) = send(&f.app, "POST", "/v1/cases/route", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {e}");
        assert_eq!(e["error"]["code"], code, "{body}: {e}");
        assert!(e["error"]["message"].is_string());
    }
    let (lon, lat) = f.a;
    for (body, status, code, parameter) in [
        (json!({"lon": lon, "lat": lat, "event_type": "0188"}), 400, "unknown_case_type", None),
        (json!({"lon": lon, "lat": lat}), 400, "missing_parameter", Some("event_type")),
        (json!({"lat": lat, "event_type": "0102"}), 400, "missing_parameter", Some("lon")),
        (json!({"lon": "east", "lat": lat, "event_type": "0102"}), 400, "invalid_parameter", Some("lon")),
        (json!({"lon": lon, "lat": lat, "event_type": "0102", "component_class": "0101"}), 400, "invalid_parameter", Some("component_class")),
        (json!({"lon": lon, "lat": lat, "event_type": "0102", "urgency": "soon"}), 400, "invalid_parameter", Some("urgency")),
        (json!({"lon": lon, "lat": lat, "event_type": "0102", "reported_at": "yesterday"}), 400, "invalid_parameter", Some("reported_at")),
        (json!({"lon": lon, "lat": lat, "event_type": "0102", "evnt": 1}), 400, "invalid_parameter", Some("evnt")),
        (json!({"lon": lon, "lat": lat, "event_type": "0102", "crs": "mars"}), 400, "unknown_crs", Some("crs")),
        (json!({"lon": 999, "lat": lat, "event_type": "0102"}), 400, "invalid_parameter", Some("lon")),
        (json!({"component_code": "3205060101999999"}), 404, "component_not_found", None),
    ] {
        let (s, e) = post(&f.app, body.clone()).await;
        assert_eq!(s.as_u16(), status, "{body}: {e}");
        assert_eq!(e["error"]["code"], code, "{body}: {e}");
        if let Some(p) = parameter {
            assert_eq!(e["error"]["details"]["parameter"], p, "{body}: {e}");
        }
    }
}

#[tokio::test]
async fn far_outside_is_422_and_near_outside_goes_to_the_street_with_a_warning() {
    let f = fixture();
    let (status, e) = post(&f.app, json!({"lon": 120.5, "lat": 31.26, "event_type": "0102"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["error"]["code"], "outside_coverage");
    assert!(e["error"]["details"]["nearest"]["code"].is_string());
    // The acceptance table's O01 point: 200 m west of the westernmost vertex.
    let row = include_str!("../fixtures/routing/expected.csv").lines().find(|l| l.starts_with("O01,")).unwrap();
    let cols: Vec<&str> = row.split(',').collect();
    let (lon, lat): (f64, f64) = (cols[1].parse().unwrap(), cols[2].parse().unwrap());
    let (status, a) = post(&f.app, json!({"lon": lon, "lat": lat, "event_type": "0102"})).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(a["outside_coverage"], true);
    assert_eq!(a["responsible_unit"]["role"], "street");
    assert!(a["warnings"][0].as_str().unwrap().starts_with("outside_coverage"), "{a}");
}

#[tokio::test]
async fn types_and_rules_are_listed() {
    let f = fixture();
    let (status, t) = send(&f.app, "GET", "/v1/cases/types", "").await;
    assert_eq!(status, StatusCode::OK);
    let types = t["types"].as_array().unwrap();
    let find = |kind: &str, code: &str| types.iter().find(|x| x["kind"] == kind && x["code"] == code).unwrap().clone();
    let e = find("event", "0102");
    assert_eq!(e["name"], "暴露垃圾");
    assert_eq!(e["major"], "01");
    assert_eq!(e["urgencies"], json!(["一般", "紧急"]));
    assert_eq!(find("event", "0401")["urgencies"], json!(["紧急", "非常紧急"]));
    assert_eq!(find("component", "0101")["urgencies"], json!(["一般", "紧急"]));
    let (status, r) = send(&f.app, "GET", "/v1/rules", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(r["version"], 1);
    assert_eq!(r["usable"], true);
    assert_eq!(r["rules"], 161);
    assert_eq!(r["report"]["ok"], true);
    assert_eq!(r["report"]["errors"], 0);
    // GET on the route endpoint is a documented 405, not axum's text.
    let (status, e) = send(&f.app, "GET", "/v1/cases/route", "").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(e["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn on_a_vertex_shared_by_streets_every_candidate_grid_names_its_own_unit() {
    let f = fixture();
    // The acceptance table's B05 point: a vertex of grids in 长桥街道, 郭巷街道 and 木渎镇.
    let row = include_str!("../fixtures/routing/expected.csv").lines().find(|l| l.starts_with("B05,")).unwrap();
    let cols: Vec<&str> = row.split(',').collect();
    let (lon, lat): (f64, f64) = (cols[1].parse().unwrap(), cols[2].parse().unwrap());
    let (status, a) = post(&f.app, json!({"lon": lon, "lat": lat, "event_type": "0102"})).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(a["grid"]["code"], "32050600100201");
    let candidates = a["candidates"].as_array().unwrap();
    let unit_of = |code: &str| candidates.iter().find(|c| c["code"] == code).unwrap()["responsible_unit"].clone();
    assert_eq!(candidates.len(), 4, "{a}");
    assert!(candidates.iter().all(|c| c["distance_m"] == 0.0));
    // 长桥街道 has its own station for 0102 (line 157); the others get the district's (line 4).
    assert_eq!(unit_of("32050600100201"), "长桥街道环卫所");
    assert_eq!(unit_of("32050600200103"), "吴中区环境卫生管理处");
    assert_eq!(unit_of("32050610100206"), "吴中区环境卫生管理处");
    assert!(a["warnings"][0].as_str().unwrap().starts_with("on_boundary"), "{a}");
}

/// A case may give its point as a GIS office's x/y in the city's projected CRS, read exactly as
/// `/v1/locate` reads it: the same unit, rule and grid as the same place in lon/lat, in one case
/// and in a CSV batch row; the wrong pair for the `crs`, half a pair and an unknown `crs` are
/// refused with the codes locate uses.
#[tokio::test]
async fn a_case_in_projected_x_y_routes_as_the_same_point_in_lon_lat() {
    use citygrid::crs::Crs;
    let f = fixture();
    let (x, y) = Crs::parse("EPSG:4549").unwrap().from_wgs84(f.a.0, f.a.1).unwrap();
    let (status, by_lonlat) = post(&f.app, json!({"lon": f.a.0, "lat": f.a.1, "event_type": "0102"})).await;
    assert_eq!(status, StatusCode::OK, "{by_lonlat}");
    let (status, by_xy) = post(&f.app, json!({"x": x, "y": y, "crs": "EPSG:4549", "event_type": "0102"})).await;
    assert_eq!(status, StatusCode::OK, "{by_xy}");
    for field in ["responsible_unit", "grid", "rule", "chain", "dispatcher"] {
        assert_eq!(by_xy[field], by_lonlat[field], "{field}");
    }
    assert_eq!(by_xy["point"]["crs"], "EPSG:4549");
    assert_eq!((by_xy["point"]["input"]["x"].as_f64(), by_xy["point"]["input"]["y"].as_f64()), (Some(x), Some(y)));
    let back = &by_xy["point"]["wgs84"];
    assert!((back["lon"].as_f64().unwrap() - f.a.0).abs() < 1e-9 && (back["lat"].as_f64().unwrap() - f.a.1).abs() < 1e-9, "{back}");

    // The same two points as rows of a CSV batch: x,y with their crs, and lon,lat.
    let csv = format!("id,x,y,lon,lat,crs,event_type\nxy,{x},{y},,,EPSG:4549,0102\nll,,,{},{},,0102\n", f.a.0, f.a.1);
    let request = Request::builder().method("POST").uri("/v1/cases/route:batch").header("content-type", "text/csv").body(Body::from(csv)).unwrap();
    let response = f.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["ok"], true, "{}", lines[0]);
    assert_eq!(lines[0]["answer"]["responsible_unit"], by_lonlat["responsible_unit"]);
    assert_eq!(lines[1]["answer"]["grid"], by_lonlat["grid"], "{}", lines[1]);

    // Refusals, as /v1/locate refuses the same query.
    for (case, code, parameter) in [
        (json!({"lon": f.a.0, "lat": f.a.1, "crs": "EPSG:4549", "event_type": "0102"}), "invalid_parameter", "lon"),
        (json!({"x": x, "y": y, "event_type": "0102"}), "invalid_parameter", "x"),
        (json!({"x": x, "crs": "EPSG:4549", "event_type": "0102"}), "missing_parameter", "y"),
        (json!({"x": x, "y": y, "crs": "EPSG:99999", "event_type": "0102"}), "unknown_crs", "crs"),
        (json!({"x": y, "y": x, "crs": "EPSG:4549", "event_type": "0102"}), "invalid_parameter", "x"),
    ] {
        let (status, body) = post(&f.app, case.clone()).await;
        assert_eq!(
            (status, body["error"]["code"].as_str(), body["error"]["details"]["parameter"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code), Some(parameter)),
            "{case}: {body}"
        );
        let uri = format!(
            "/v1/locate?{}",
            case.as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| *k != "event_type")
                .map(|(k, v)| format!("{k}={}", v.to_string().trim_matches('"')))
                .collect::<Vec<_>>()
                .join("&")
        );
        let (status, same) = send(&f.app, "GET", &uri, "").await;
        assert_eq!((status, same["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some(code)), "{uri}: {same}");
    }
}
