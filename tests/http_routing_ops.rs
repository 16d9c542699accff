//! Routing as the platform runs it: every decision lands in the audit log and reads back;
//! batches (JSON and CSV) stream one line per case; a new responsibility list goes in with
//! `PUT /v1/rules` behind the admin token, is refused with its report when it does not route
//! uniquely, and rolls back.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use geo::InteriorPoint;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use citygrid::datasets::Datasets;
use citygrid::http::{AppState, router};
use citygrid::model::GridCode;
use citygrid::store::Store;
use citygrid::store::audit::{AuditLog, PageQuery};
use citygrid::tiles::TileConfig;

const TOKEN: &str = "routing-admin-token-0123456789";

struct Fixture {
    app: axum::Router,
    /// Interior point of unit grid 32050600100101 (长桥街道, whose own 环卫所 clears 0102).
    a: (f64, f64),
    rules_v1: String,
    dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let handle = common::tiny_world(dir.path());
    let world = handle.load();
    let (code, _) = GridCode::parse("32050600100101", &world.city.hierarchy).unwrap();
    let p = world.city.grid(world.city.grid_by_code(code).unwrap()).geometry.interior_point().unwrap().0;
    let rules_v1 = world.rules_csv.clone().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let state = AppState::new(handle.clone())
        .with_admin_tokens(vec![TOKEN.into()])
        .with_audit(AuditLog::open(dir.path()).unwrap())
        .with_datasets(Datasets::new(store, handle, TileConfig::default()));
    Fixture { app: router(state), a: (p.x, p.y), rules_v1, dir }
}

async fn send(app: &axum::Router, method: &str, uri: &str, content_type: &str, token: Option<&str>, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let mut req = Request::builder().method(method).uri(uri).header("content-type", content_type);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let response = app.clone().oneshot(req.body(Body::from(body)).unwrap()).await.unwrap();
    let status = response.status();
    (status, response.into_body().collect().await.unwrap().to_bytes().to_vec())
}

async fn send_json(app: &axum::Router, method: &str, uri: &str, body: Value) -> (StatusCode, Value) {
    let (s, b) = send(app, method, uri, "application/json", None, body.to_string().into_bytes()).await;
    (s, serde_json::from_slice(&b).unwrap_or_else(|e| panic!("{uri}: not JSON ({e}): {}", String::from_utf8_lossy(&b))))
}

fn lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8(bytes.to_vec()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[tokio::test]
async fn every_decision_is_in_the_audit_log_and_counts_in_the_statistics() {
    let f = fixture();
    let case = json!({"lon": f.a.0, "lat": f.a.1, "event_type": "0102", "reported_at": "2026-11-20T17:00:00+08:00"});
    let (status, answer) = send_json(&f.app, "POST", "/v1/cases/route", case.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // A refused case is not a decision.
    let (status, _) = send_json(&f.app, "POST", "/v1/cases/route", json!({"lon": f.a.0, "lat": f.a.1, "event_type": "9999"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, log) = send_json(&f.app, "GET", "/v1/cases/routes", Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{log}");
    assert_eq!(log["total"], 1, "{log}");
    let r = &log["routes"][0];
    assert_eq!(r["unit"], "长桥街道环卫所");
    assert_eq!(r["grid"], "32050600100101");
    assert_eq!(r["case_type"], "0102");
    assert_eq!(r["input"], case);
    // The record references the decision (rule line, deadline, dataset versions) instead of
    // repeating the whole answer with its names and phones.
    assert!(r.get("answer").is_none(), "{r}");
    assert_eq!(r["rule"]["line"], answer["rule"]["line"]);
    assert_eq!(r["due"], answer["deadline"]["due"]);
    assert_eq!(r["unit_role"], answer["responsible_unit"]["role"]);
    assert_eq!(r["versions"], answer["versions"]);
    assert_eq!(r["versions"]["rules"], 1);
    let (_, by_unit) = send_json(&f.app, "GET", "/v1/cases/routes?unit=%E9%95%BF%E6%A1%A5%E8%A1%97%E9%81%93%E7%8E%AF%E5%8D%AB%E6%89%80", Value::Null).await;
    assert_eq!(by_unit["total"], 1);
    let (_, stats) = send_json(&f.app, "GET", "/v1/stats/cases?level=community", Value::Null).await;
    assert_eq!(stats["areas"][0]["code"], "320506001001");
    assert_eq!(stats["by_grid"]["32050600100101"], 1);
    // On disk, in the data directory.
    let on_disk = AuditLog::open(f.dir.path()).unwrap().page(&PageQuery { limit: 10, ..Default::default() }).unwrap();
    assert_eq!(on_disk.records.len(), 1);
    assert!(f.dir.path().join("audit/audit.sqlite").exists());
}

#[tokio::test]
async fn a_json_batch_streams_one_line_per_case_in_order_with_errors_in_place() {
    let f = fixture();
    let good = json!({"id": "C-1", "lon": f.a.0, "lat": f.a.1, "event_type": "0102", "reported_at": "2026-11-20T17:00:00+08:00"});
    let batch = json!([good, {"id": "C-2", "lon": f.a.0, "lat": f.a.1, "event_type": "9999"}, {"lon": 0.0, "lat": 0.0, "event_type": "0102"}, 5, {"lon": f.a.0, "lat": f.a.1, "component_class": "0101"}]);
    let (status, body) = send(&f.app, "POST", "/v1/cases/route:batch", "application/json", None, batch.to_string().into_bytes()).await;
    assert_eq!(status, StatusCode::OK);
    let out = lines(&body);
    assert_eq!(out.len(), 5);
    assert_eq!(out.iter().map(|l| l["index"].as_u64().unwrap()).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    assert_eq!((out[0]["id"].as_str(), out[0]["ok"].as_bool()), (Some("C-1"), Some(true)));
    let (_, single) =
        send_json(&f.app, "POST", "/v1/cases/route", json!({"lon": f.a.0, "lat": f.a.1, "event_type": "0102", "reported_at": "2026-11-20T17:00:00+08:00"}))
            .await;
    assert_eq!(out[0]["answer"]["responsible_unit"], single["responsible_unit"]);
    assert_eq!(out[0]["answer"]["deadline"], single["deadline"], "a batch routes exactly as a single case");
    assert_eq!((out[1]["ok"].as_bool(), out[1]["status"].as_u64(), out[1]["error"]["code"].as_str()), (Some(false), Some(400), Some("unknown_case_type")));
    assert_eq!((out[2]["status"].as_u64(), out[2]["error"]["code"].as_str()), (Some(422), Some("outside_coverage")));
    assert_eq!(out[3]["error"]["code"], "invalid_json");
    assert_eq!(out[4]["ok"], true);
    // The two routed cases of the batch and the single one are audited, nothing else.
    let (_, log) = send_json(&f.app, "GET", "/v1/cases/routes", Value::Null).await;
    assert_eq!(log["total"], 3, "{log}");
}

#[tokio::test]
async fn a_csv_batch_as_excel_writes_it_routes_too() {
    let f = fixture();
    let csv = format!(
        "\u{feff}id,lon,lat,event_type,component_class,urgency,reported_at\nA,{lon},{lat},0102,,,2026-11-20T17:00:00+08:00\nB,{lon},{lat},,0101,,\nC,{lon},{lat},0102,,紧急,\nD,abc,{lat},0102,,,\n",
        lon = f.a.0,
        lat = f.a.1
    );
    let (status, body) = send(&f.app, "POST", "/v1/cases/route:batch", "text/csv; charset=utf-8", None, csv.into_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let out = lines(&body);
    assert_eq!(out.iter().map(|l| l["id"].as_str().unwrap()).collect::<Vec<_>>(), ["A", "B", "C", "D"]);
    assert_eq!(out[0]["answer"]["deadline"]["due"], "2026-11-23T12:00:00+08:00");
    assert_eq!(out[2]["answer"]["deadline"]["urgency"], "紧急");
    assert_eq!((out[3]["error"]["code"].as_str(), out[3]["error"]["details"]["parameter"].as_str()), (Some("invalid_parameter"), Some("lon")));
}

#[tokio::test]
async fn batches_that_cannot_be_read_are_refused_whole() {
    let f = fixture();
    let too_many = format!("[{}]", vec!["{}"; citygrid::routing::batch::MAX_BATCH + 1].join(","));
    for (ct, body, status, code) in [
        ("application/json", "[]".to_owned(), StatusCode::BAD_REQUEST, "empty_batch"),
        ("application/json", "{\"lon\": 1}".to_owned(), StatusCode::BAD_REQUEST, "invalid_json"),
        ("application/json", "[{\"lon\": 1".to_owned(), StatusCode::BAD_REQUEST, "invalid_json"),
        ("text/csv", "id,lon,lat,colour\n1,2,3,red\n".to_owned(), StatusCode::BAD_REQUEST, "invalid_csv"),
        ("application/xml", "<cases/>".to_owned(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        ("application/json", too_many, StatusCode::PAYLOAD_TOO_LARGE, "batch_too_large"),
    ] {
        let (s, b) = send(&f.app, "POST", "/v1/cases/route:batch", ct, None, body.into_bytes()).await;
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!((s, v["error"]["code"].as_str()), (status, Some(code)), "{ct}: {v}");
    }
}

#[tokio::test]
async fn a_new_responsibility_list_is_validated_switched_in_and_rolled_back() {
    let f = fixture();
    let case = json!({"lon": f.a.0, "lat": f.a.1, "event_type": "0102"});
    let unit = |a: &Value| a["responsible_unit"]["name"].as_str().unwrap().to_owned();
    let (_, before) = send_json(&f.app, "POST", "/v1/cases/route", case.clone()).await;
    assert_eq!(unit(&before), "长桥街道环卫所");
    // 长桥街道's garbage goes to the district sanitation office from now on.
    let v2 = f.rules_v1.replace("长桥街道环卫所", "吴中区环境卫生管理处");
    assert_ne!(v2, f.rules_v1);

    let (s, _) = send(&f.app, "PUT", "/v1/rules", "text/csv", None, v2.clone().into_bytes()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, b) = send(&f.app, "PUT", "/v1/rules?dry_run=true", "text/csv", Some(TOKEN), v2.clone().into_bytes()).await;
    let dry: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!((s, dry["valid"].as_bool()), (StatusCode::OK, Some(true)), "{dry}");
    let (_, same) = send_json(&f.app, "POST", "/v1/cases/route", case.clone()).await;
    assert_eq!(unit(&same), "长桥街道环卫所", "a dry run changes nothing");

    let (s, b) = send(&f.app, "PUT", "/v1/rules", "text/csv", Some(TOKEN), v2.clone().into_bytes()).await;
    let put: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!((s, put["version"].as_u64(), put["previous"].as_u64()), (StatusCode::OK, Some(2), Some(1)), "{put}");
    let (_, after) = send_json(&f.app, "POST", "/v1/cases/route", case.clone()).await;
    assert_eq!(unit(&after), "吴中区环境卫生管理处");
    assert_eq!(after["versions"]["rules"], 2);

    // A list that routes 0102 in 长桥街道 to two units at once is refused, with the type and a grid.
    let street_line = f.rules_v1.lines().find(|l| l.contains("长桥街道环卫所")).unwrap();
    let conflicting = format!("{v2}{}\n", street_line.replace("长桥街道环卫所", "吴中区城市管理局"));
    let (s, b) = send(&f.app, "PUT", "/v1/rules", "text/csv", Some(TOKEN), conflicting.into_bytes()).await;
    let refused: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!((s, refused["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("rules_invalid")), "{refused}");
    let text = refused["error"]["details"]["report"].to_string();
    assert!(text.contains("conflict") && text.contains("0102") && text.contains("32050600100101"), "{text}");
    // Excel's GBK "CSV" is refused with a hint, not read as mojibake.
    let (s, b) = send(&f.app, "PUT", "/v1/rules", "text/csv", Some(TOKEN), vec![0xb3, 0xa4, 0xc7, 0xc5, b'\n']).await;
    let gbk: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!((s, gbk["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_csv")));
    let (_, still) = send_json(&f.app, "POST", "/v1/cases/route", case.clone()).await;
    assert_eq!((unit(&still), still["versions"]["rules"].as_u64()), ("吴中区环境卫生管理处".to_owned(), Some(2)), "refused lists changed nothing");

    let (s, _) = send(&f.app, "POST", "/v1/rules/rollback", "application/json", Some(TOKEN), br#"{"version": 1}"#.to_vec()).await;
    assert_eq!(s, StatusCode::OK);
    let (_, back) = send_json(&f.app, "POST", "/v1/cases/route", case).await;
    assert_eq!((unit(&back), back["versions"]["rules"].as_u64()), ("长桥街道环卫所".to_owned(), Some(1)));
    let (_, history) = send_json(&f.app, "GET", "/v1/rules/versions", Value::Null).await;
    assert_eq!(history["versions"].as_array().unwrap().len(), 2, "refused lists are not versions: {history}");
}

#[tokio::test]
async fn a_case_in_a_road_section_names_the_zone_and_its_unit() {
    let f = fixture();
    // Row Z01 of fixtures/routing/expected.csv: 6 m off the centreline of section roads:EW01.
    let case = json!({"lon": 120.624436863, "lat": 31.258866859, "event_type": "0401", "urgency": "紧急"});
    let (status, a) = send_json(&f.app, "POST", "/v1/cases/route", case).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(a["responsible_unit"]["name"], "吴中区公路管理站");
    assert_eq!(a["responsible_unit"]["role"], "zone");
    assert_eq!(a["area"]["zone"], "roads:EW01");
    assert_eq!(a["rule"]["scope"], "zone:roads");
    assert!(a["explanation"].to_string().contains("roads:EW01"), "{}", a["explanation"]);
    let (_, layers) = send_json(&f.app, "GET", "/v1/layers/zones/versions", Value::Null).await;
    assert_eq!(layers["current"], 1, "the zones are a versioned dataset: {layers}");
}
