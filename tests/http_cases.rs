//! The case log over HTTP: `/v1/cases/routes` reads the audit log back by time window and unit,
//! page by page with a `next` cursor; `/v1/stats/cases` counts by area and type. Records here
//! are written straight to the log; tests/http_routing_ops.rs checks that routing itself
//! writes them.

mod common;

use axum::http::StatusCode;
use chrono::DateTime;
use serde_json::{Value, json};

use citygrid::caselog;
use citygrid::http::{AppState, router};
use citygrid::store::audit::AuditLog;

async fn get(app: axum::Router, uri: &str) -> (StatusCode, Value) {
    let a = common::http::get(&app, uri).await;
    (a.status, a.json())
}

fn answer(ty: &str, chain: &[&str], unit: &str) -> Value {
    json!({
        "rule": {"case_kind": "event", "case_type": ty},
        "grid": {"code": chain.last()},
        "chain": chain.iter().map(|c| json!({"code": c})).collect::<Vec<_>>(),
        "responsible_unit": {"name": unit},
        "deadline": {"due": "2026-11-23T17:00:00+08:00"},
    })
}

fn app_with_log() -> (tempfile::TempDir, axum::Router) {
    let dir = tempfile::tempdir().unwrap();
    let world = common::tiny_world(&dir.path().join("data"));
    let log = AuditLog::open(&dir.path().join("data")).unwrap();
    let g1 = ["d", "s1", "s1c1", "s1c1g1"];
    let g2 = ["d", "s2", "s2c1", "s2c1g1"];
    let rows = [
        ("2026-10-31T23:59:59+08:00", "0102", &g1, "环卫所"),
        ("2026-11-01T00:00:00+08:00", "0102", &g1, "环卫所"),
        ("2026-11-15T10:00:00+08:00", "0505", &g2, "交警大队"),
        ("2026-11-30T23:59:59+08:00", "0102", &g2, "环卫所"),
        ("2026-12-01T00:00:00+08:00", "0102", &g2, "环卫所"),
    ];
    let records: Vec<caselog::AuditRecord> = rows
        .iter()
        .map(|(at, ty, chain, unit)| caselog::record(DateTime::parse_from_rfc3339(at).unwrap(), &json!({}), &answer(ty, &chain[..], unit)))
        .collect();
    log.append(&records).unwrap();
    (dir, router(AppState::new(world).with_audit(log)))
}

#[tokio::test]
async fn routes_read_back_by_month_and_by_unit() {
    let (_dir, app) = app_with_log();
    let (status, body) = get(app.clone(), "/v1/cases/routes?since=2026-11-01&until=2026-12-01").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 3, "November only, since inclusive, until exclusive: {body}");
    let ats: Vec<&str> = body["routes"].as_array().unwrap().iter().map(|r| r["at"].as_str().unwrap()).collect();
    assert_eq!(ats, ["2026-11-01T00:00:00+08:00", "2026-11-15T10:00:00+08:00", "2026-11-30T23:59:59+08:00"]);
    let (_, body) = get(app.clone(), "/v1/cases/routes?unit=%E4%BA%A4%E8%AD%A6%E5%A4%A7%E9%98%9F").await;
    assert_eq!(body["total"], 1);
    assert_eq!(body["routes"][0]["case_type"], "0505");
    let (_, body) = get(app.clone(), "/v1/cases/routes?limit=2").await;
    assert_eq!((body["total"].as_u64(), body["truncated"].as_bool(), body["routes"].as_array().unwrap().len()), (Some(5), Some(true), 2));
    let (_, body) = get(app, "/v1/cases/routes?since=2026-11-15T10:00:00%2B08:00").await;
    assert_eq!(body["total"], 3, "an RFC 3339 bound: {body}");
}

#[tokio::test]
async fn routes_page_with_a_next_cursor_until_the_last_page() {
    let (_dir, app) = app_with_log();
    let mut ats = Vec::new();
    let mut uri = "/v1/cases/routes?limit=2&since=2026-10-01".to_owned();
    let mut pages = 0;
    loop {
        let (status, body) = get(app.clone(), &uri).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["total"], 5, "total counts every page: {body}");
        pages += 1;
        for r in body["routes"].as_array().unwrap() {
            ats.push(r["at"].as_str().unwrap().to_owned());
            assert!(r["id"].as_i64().unwrap() > 0);
            assert!(r.get("answer").is_none(), "a record is compact: {r}");
        }
        match body["next"].as_i64() {
            Some(next) => {
                assert_eq!(body["truncated"], true);
                assert_eq!(next, body["routes"].as_array().unwrap().last().unwrap()["id"].as_i64().unwrap());
                uri = format!("/v1/cases/routes?limit=2&since=2026-10-01&after={next}");
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        ats,
        ["2026-10-31T23:59:59+08:00", "2026-11-01T00:00:00+08:00", "2026-11-15T10:00:00+08:00", "2026-11-30T23:59:59+08:00", "2026-12-01T00:00:00+08:00"]
    );
    // The same through the unit index.
    let (_, first) = get(app.clone(), "/v1/cases/routes?unit=%E7%8E%AF%E5%8D%AB%E6%89%80&limit=3").await;
    assert_eq!((first["total"].as_u64(), first["routes"].as_array().unwrap().len()), (Some(4), 3));
    let next = first["next"].as_i64().unwrap();
    let (_, rest) = get(app.clone(), &format!("/v1/cases/routes?unit=%E7%8E%AF%E5%8D%AB%E6%89%80&limit=3&after={next}")).await;
    assert_eq!(rest["routes"].as_array().unwrap().len(), 1);
    assert_eq!(rest["routes"][0]["at"], "2026-12-01T00:00:00+08:00");
    assert!(rest["next"].is_null() && rest["truncated"] == false);
    let (status, body) = get(app, "/v1/cases/routes?after=999999").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["details"]["parameter"], "after");
}

#[tokio::test]
async fn stats_count_a_month_by_street_and_community_with_a_grid_heat() {
    let (_dir, app) = app_with_log();
    let (status, body) = get(app.clone(), "/v1/stats/cases?level=street&since=2026-11-01&until=2026-12-01").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 3);
    assert_eq!(body["areas"][0]["code"], "s2");
    assert_eq!(body["areas"][0]["total"], 2);
    assert_eq!(body["areas"][1]["code"], "s1");
    assert_eq!(body["by_grid"]["s2c1g1"], 2);
    assert_eq!(body["by_type"][0]["case_type"], "0102");
    assert_eq!(body["by_type"][0]["count"], 2);
    let (_, body) = get(app.clone(), "/v1/stats/cases?level=community").await;
    assert_eq!(body["total"], 5);
    assert_eq!(body["areas"][0]["code"], "s2c1");
    assert_eq!(body["areas"][0]["total"], 3);
    // Bounds inside a day: the partial days are counted from the decisions themselves.
    let (_, body) = get(app.clone(), "/v1/stats/cases?level=grid&since=2026-10-31T23:59:59%2B08:00&until=2026-11-30T23:59:59%2B08:00").await;
    assert_eq!(body["total"], 3, "{body}");
    assert_eq!(body["by_grid"]["s1c1g1"], 2);
    assert_eq!(body["by_grid"]["s2c1g1"], 1);
    let (_, body) = get(app.clone(), "/v1/stats/cases?since=2026-12-02").await;
    assert_eq!((body["total"].as_u64(), body["areas"].as_array().map(Vec::len)), (Some(0), Some(0)));
    // One case type (the viewer's hot-spot layer): only its cases, per grid.
    let (_, all) = get(app.clone(), "/v1/stats/cases?level=grid").await;
    let (status, body) = get(app.clone(), "/v1/stats/cases?level=grid&case_type=0102").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let of_type = all["by_type"].as_array().unwrap().iter().find(|t| t["case_type"] == "0102").unwrap()["count"].as_u64().unwrap();
    assert!(of_type < all["total"].as_u64().unwrap(), "the fixture has other types too");
    assert_eq!(body["total"].as_u64(), Some(of_type), "{body}");
    assert_eq!(body["by_grid"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum::<u64>(), of_type);
    assert!(body["by_type"].as_array().unwrap().iter().all(|t| t["case_type"] == "0102"), "{body}");
    assert_eq!(body["case_type"], serde_json::json!(["0102"]));
    let (_, none) = get(app, "/v1/stats/cases?level=grid&case_type=9999").await;
    assert_eq!(none["total"], 0);
}

#[tokio::test]
async fn bad_parameters_and_a_missing_log_answer_in_the_error_format() {
    let (_dir, app) = app_with_log();
    for (uri, parameter) in [
        ("/v1/stats/cases?level=city", "level"),
        ("/v1/cases/routes?since=yesterday", "since"),
        ("/v1/cases/routes?until=2026-13-01", "until"),
        ("/v1/cases/routes?limit=0", "limit"),
        ("/v1/cases/routes?limit=100000", "limit"),
        ("/v1/cases/routes?after=abc", "after"),
    ] {
        let (status, body) = get(app.clone(), uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["error"]["code"], "invalid_parameter", "{uri}");
        assert_eq!(body["error"]["details"]["parameter"], parameter, "{uri}");
    }
    let dir = tempfile::tempdir().unwrap();
    let without = router(AppState::new(common::tiny_world(dir.path())));
    let (status, body) = get(without, "/v1/cases/routes").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "audit_unavailable");
}
