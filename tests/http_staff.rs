//! Field staff over the real router (tiny demo city): positions in any datum, nearest against
//! a brute-force oracle, stale positions left out, filters, grid enter/leave events over SSE
//! and webhooks, tokens, `suggest_staff` in case routing, the register as a dataset.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Utc;
use geo::InteriorPoint;
use http_body_util::BodyExt;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tower::ServiceExt;

use citygrid::crs::distance::haversine_m;
use citygrid::http::{AppState, router};
use citygrid::model::{City, GridId};
use citygrid::staff::{Role, StaffMember, StaffRegister};
use citygrid::world::World;

const ADMIN: &str = "admin-token-0123456789abcdef";
const STAFF: &str = "staff-token-0123456789abcdef";
const POSITIONS: &str = "positions-token-0123456789ab";
const DISPATCHER: &str = "dispatcher-token-0123456789a";

struct Fixture {
    app: axum::Router,
    state: AppState,
    world: Arc<World>,
    _dir: tempfile::TempDir,
}

fn fixture(register: StaffRegister) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let handle = common::tiny_world(dir.path());
    let world = handle.load();
    let state = AppState::new(handle).with_admin_tokens(vec![ADMIN.into()]).with_staff_tokens(vec![STAFF.into()]).with_positions_tokens(vec![POSITIONS.into()]);
    state.staff.set_register(register, None);
    Fixture { app: router(state.clone()), state, world, _dir: dir }
}

async fn call(app: &axum::Router, method: &str, uri: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let response = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{uri}: not JSON ({e}): {bytes:?}")))
}

fn unit_grids(city: &City) -> Vec<GridId> {
    let unit = city.hierarchy.unit_level();
    (0..city.grids.len() as u32).map(GridId).filter(|&g| city.grid(g).level as usize == unit).collect()
}

fn inside(city: &City, g: GridId) -> (f64, f64) {
    let p = city.grid(g).geometry.interior_point().unwrap();
    (p.x(), p.y())
}

fn people(n: usize) -> StaffRegister {
    StaffRegister::from_members(
        (0..n)
            .map(|i| StaffMember {
                id: format!("P{i:03}"),
                name: format!("人员{i}"),
                role: if i % 2 == 0 { Role::Inspector } else { Role::GridWorker },
                unit: "测试中心".into(),
                home_grids: Vec::new(),
            })
            .collect(),
    )
}

fn now() -> String {
    Utc::now().to_rfc3339()
}

#[tokio::test]
async fn nearest_agrees_with_brute_force_and_filters_apply() {
    let f = fixture(people(300));
    let [lon0, lat0] = f.world.center();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(18);
    let statuses = ["available", "busy", "off_duty"];
    let mut truth = Vec::new();
    let mut batch = Vec::new();
    for i in 0..300 {
        let (lon, lat) = (lon0 + rng.random_range(-0.03..0.03), lat0 + rng.random_range(-0.03..0.03));
        let status = statuses[i % 3];
        // a tenth stale: measured 10 minutes ago (default staleness 120 s)
        let stale = i % 10 == 7;
        let time = if stale { (Utc::now() - chrono::Duration::minutes(10)).to_rfc3339() } else { now() };
        batch.push(json!({"id": format!("P{i:03}"), "lon": lon, "lat": lat, "time": time, "status": status, "accuracy": 5}));
        truth.push((format!("P{i:03}"), lon, lat, status, if i % 2 == 0 { "inspector" } else { "grid_worker" }, stale));
    }
    let (status, outcome) = call(&f.app, "POST", "/v1/staff/positions", Some(POSITIONS), Some(json!({"positions": batch}))).await;
    assert_eq!(status, StatusCode::OK, "{outcome}");
    assert_eq!(outcome["accepted"], 300, "{outcome}");
    for _ in 0..40 {
        let (qlon, qlat) = (lon0 + rng.random_range(-0.05..0.05), lat0 + rng.random_range(-0.05..0.05));
        for (role, st) in [(None, None), (Some("inspector"), Some("available")), (Some("grid_worker"), Some("any")), (None, Some("busy"))] {
            let mut uri = format!("/v1/staff/nearest?lon={qlon}&lat={qlat}&k=7");
            if let Some(r) = role {
                uri += &format!("&role={r}");
            }
            if let Some(s) = st {
                uri += &format!("&status={s}");
            }
            let (code, answer) = call(&f.app, "GET", &uri, Some(STAFF), None).await;
            assert_eq!(code, StatusCode::OK, "{answer}");
            let got: Vec<(String, f64)> =
                answer["staff"].as_array().unwrap().iter().map(|s| (s["id"].as_str().unwrap().to_owned(), s["distance_m"].as_f64().unwrap())).collect();
            let wanted_status = st.unwrap_or("available");
            let mut oracle: Vec<(String, f64)> = truth
                .iter()
                .filter(|t| !t.5 && role.is_none_or(|r| r == t.4) && (wanted_status == "any" || wanted_status == t.3))
                .map(|t| (t.0.clone(), haversine_m(geo_types::Coord { x: qlon, y: qlat }, geo_types::Coord { x: t.1, y: t.2 })))
                .collect();
            oracle.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
            oracle.truncate(7);
            assert_eq!(got.len(), oracle.len(), "{uri}");
            for ((gid, gd), (oid, od)) in got.iter().zip(&oracle) {
                assert_eq!(gid, oid, "{uri}");
                assert!((gd - od).abs() < 1e-6, "{uri}: {gd} vs {od}");
            }
            assert!(!got.iter().any(|(id, _)| truth.iter().any(|t| &t.0 == id && t.5)), "a stale position was answered");
        }
    }
    // In a box: everyone fresh inside, by id; `status` filters; stale ones left out.
    let bbox = [lon0 - 0.01, lat0 - 0.01, lon0 + 0.01, lat0 + 0.01];
    let (code, page) = call(&f.app, "GET", &format!("/v1/staff?bbox={},{},{},{}&status=busy", bbox[0], bbox[1], bbox[2], bbox[3]), Some(STAFF), None).await;
    assert_eq!(code, StatusCode::OK, "{page}");
    let got: Vec<&str> = page["staff"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    let oracle: Vec<&str> =
        truth.iter().filter(|t| !t.5 && t.3 == "busy" && t.1 >= bbox[0] && t.1 <= bbox[2] && t.2 >= bbox[1] && t.2 <= bbox[3]).map(|t| t.0.as_str()).collect();
    assert_eq!(got, oracle);
    // In a grid (a street: every unit grid under it), compared with each answer's own grid.
    let street = f.world.city.grids.iter().find(|g| g.level == 1).unwrap().code.to_string();
    let (code, page) = call(&f.app, "GET", &format!("/v1/staff?grid={street}"), Some(STAFF), None).await;
    assert_eq!(code, StatusCode::OK, "{page}");
    assert!(page["staff"].as_array().unwrap().iter().all(|s| s["grid"].as_str().unwrap().starts_with(&street)));
    let (code, e) = call(&f.app, "GET", "/v1/staff/nearest?lon=120&lat=31&role=boss", Some(STAFF), None).await;
    assert_eq!((code, e["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_parameter")));
}

#[tokio::test]
async fn positions_in_other_datums_are_converted_and_bad_batches_are_refused() {
    let f = fixture(people(4));
    let [lon, lat] = f.world.center();
    let (gcj_lon, gcj_lat) = citygrid::crs::Datum::Gcj02.from_wgs84(lon, lat);
    let (code, outcome) = call(
        &f.app,
        "POST",
        "/v1/staff/positions",
        Some(POSITIONS),
        Some(json!({"crs": "gcj02", "positions": [
            {"id": "P000", "lon": gcj_lon, "lat": gcj_lat, "time": now()},
            {"id": "NOBODY", "lon": lon, "lat": lat, "time": now()},
            {"id": "P001", "lon": lon, "lat": 95, "time": now()},
            {"id": "P002", "lon": lon, "lat": lat, "time": now(), "status": "asleep"},
            {"id": "P003", "lon": lon, "lat": lat},
        ]})),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{outcome}");
    assert_eq!(outcome["accepted"], 1);
    let rejected: Vec<(u64, &str, Option<&str>)> = outcome["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), r["error"]["code"].as_str().unwrap(), r["error"]["parameter"].as_str()))
        .collect();
    assert_eq!(
        rejected,
        [
            (1, "unknown_staff", Some("id")),
            (2, "invalid_parameter", Some("lat")),
            (3, "invalid_parameter", Some("status")),
            (4, "missing_parameter", Some("time"))
        ]
    );
    let (_, near) = call(&f.app, "GET", &format!("/v1/staff/nearest?lon={lon}&lat={lat}&k=1"), Some(STAFF), None).await;
    assert!(near["staff"][0]["distance_m"].as_f64().unwrap() < 1.0, "GCJ-02 converted back to WGS84: {near}");
    for (body, code) in [(json!({"positions": []}), "invalid_batch"), (json!(3), "invalid_batch"), (json!({"crs": "mars", "positions": [{}]}), "invalid_batch")]
    {
        let (status, e) = call(&f.app, "POST", "/v1/staff/positions", Some(POSITIONS), Some(body.clone())).await;
        assert_eq!((status, e["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some(code)), "{body}");
    }
    let req = Request::post("/v1/staff/positions").header("authorization", format!("Bearer {POSITIONS}")).body(Body::from("{not json")).unwrap();
    let response = f.app.clone().oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let many: Vec<Value> = (0..10_001).map(|_| json!({"id": "P000"})).collect();
    let (status, e) = call(&f.app, "POST", "/v1/staff/positions", Some(POSITIONS), Some(json!(many))).await;
    assert_eq!((status, e["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("too_many_positions")));
    // A late report does not move the person back.
    let (_, outcome) = call(
        &f.app,
        "POST",
        "/v1/staff/positions",
        Some(POSITIONS),
        Some(json!([{"id": "P000", "lon": lon + 0.01, "lat": lat, "time": (Utc::now() - chrono::Duration::seconds(60)).to_rfc3339()}])),
    )
    .await;
    assert_eq!((outcome["accepted"].as_u64(), outcome["older"].as_u64()), (Some(0), Some(1)));
}

#[tokio::test]
async fn tokens_are_enforced() {
    let f = fixture(people(2));
    let [lon, lat] = f.world.center();
    let near = format!("/v1/staff/nearest?lon={lon}&lat={lat}");
    for (uri, token, status) in [
        (near.as_str(), None, StatusCode::UNAUTHORIZED),
        (near.as_str(), Some(POSITIONS), StatusCode::FORBIDDEN),
        (near.as_str(), Some("wrong-token-0123456789abcd"), StatusCode::FORBIDDEN),
        (near.as_str(), Some(STAFF), StatusCode::OK),
        (near.as_str(), Some(ADMIN), StatusCode::OK),
        ("/v1/staff", None, StatusCode::UNAUTHORIZED),
        ("/v1/staff", Some(POSITIONS), StatusCode::FORBIDDEN),
        ("/v1/staff/events", None, StatusCode::UNAUTHORIZED),
        ("/v1/staff/events", Some(POSITIONS), StatusCode::FORBIDDEN),
    ] {
        let mut req = Request::get(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let response = f.app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), status, "{uri} with {token:?}");
    }
    let batch = json!([{"id": "P000", "lon": lon, "lat": lat, "time": now()}]);
    for (token, status) in
        [(None, StatusCode::UNAUTHORIZED), (Some(STAFF), StatusCode::FORBIDDEN), (Some(POSITIONS), StatusCode::OK), (Some(ADMIN), StatusCode::OK)]
    {
        let (code, body) = call(&f.app, "POST", "/v1/staff/positions", token, Some(batch.clone())).await;
        assert_eq!(code, status, "{token:?}: {body}");
        if code != StatusCode::OK {
            assert!(body["error"]["code"].is_string(), "{body}");
        }
    }
    // No positions token configured: only admins send positions.
    let other = tempfile::tempdir().unwrap();
    let closed = router(AppState::new(common::tiny_world(other.path())).with_admin_tokens(vec![ADMIN.into()]));
    let (code, body) = call(&closed, "POST", "/v1/staff/positions", Some(STAFF), Some(batch)).await;
    assert_eq!((code, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("positions_disabled")));
    let (code, _) = call(&closed, "GET", &near, Some(STAFF), None).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "no staff token configured: only admins read");
}

/// Reads SSE frames until one of `kind` whose data satisfies `pred` arrives (5 s at most).
async fn next_event(body: &mut Body, buffer: &mut String, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let event = block.lines().find_map(|l| l.strip_prefix("event: ")).unwrap_or("");
            let data: String = block.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
            if event == kind {
                let v: Value = serde_json::from_str(&data).unwrap();
                if pred(&v) {
                    return v;
                }
            }
        }
        let frame = tokio::time::timeout_at(deadline, body.frame()).await.unwrap_or_else(|_| panic!("no {kind} event within 5 s; buffer {buffer:?}"));
        let frame = frame.expect("stream open").unwrap();
        if let Ok(data) = frame.into_data() {
            buffer.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
}

#[tokio::test]
async fn crossing_a_grid_boundary_sends_enter_leave_events_with_both_chains() {
    let f = fixture(people(2));
    let city = &f.world.city;
    let grids = unit_grids(city);
    let (a, b) = (grids[0], grids[1]);
    let response =
        f.app.clone().oneshot(Request::get("/v1/staff/events").header("authorization", format!("Bearer {STAFF}")).body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    let mut buffer = String::new();
    next_event(&mut body, &mut buffer, "ready", |_| true).await;
    let ((alon, alat), (blon, blat)) = (inside(city, a), inside(city, b));
    let t0 = Utc::now() - chrono::Duration::seconds(10);
    let batch = json!([
        {"id": "P000", "lon": alon, "lat": alat, "time": t0.to_rfc3339()},
        {"id": "P000", "lon": alon, "lat": alat, "time": (t0 + chrono::Duration::seconds(2)).to_rfc3339()},
        {"id": "P000", "lon": blon, "lat": blat, "time": (t0 + chrono::Duration::seconds(4)).to_rfc3339()},
    ]);
    let (code, outcome) = call(&f.app, "POST", "/v1/staff/positions", Some(POSITIONS), Some(batch)).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(outcome["events"], 2, "appearing in A, then A → B; staying in A is no event: {outcome}");
    let (ca, cb) = (city.grid(a).code.to_string(), city.grid(b).code.to_string());
    let first = next_event(&mut body, &mut buffer, "grid_change", |_| true).await;
    assert_eq!((first["left"].clone(), first["entered"]["code"].as_str()), (Value::Null, Some(ca.as_str())));
    let change = next_event(&mut body, &mut buffer, "grid_change", |_| true).await;
    assert_eq!(change["staff"]["id"], "P000");
    assert_eq!(change["left"]["code"], ca.as_str());
    assert_eq!(change["entered"]["code"], cb.as_str());
    for (side, code) in [("left", &ca), ("entered", &cb)] {
        let chain = change[side]["chain"].as_array().unwrap();
        assert_eq!(chain.len(), city.hierarchy.levels.len(), "{change}");
        assert_eq!(chain.last().unwrap()["code"], code.as_str());
        assert!(code.starts_with(chain[0]["code"].as_str().unwrap()), "district first");
    }
    assert!(change["seq"].as_u64().unwrap() > first["seq"].as_u64().unwrap());
}

#[tokio::test]
async fn a_slow_sse_client_is_dropped_with_a_lagged_event() {
    let dir = tempfile::tempdir().unwrap();
    let handle = common::tiny_world(dir.path());
    let world = handle.load();
    let config = citygrid::staff::StaffConfig { event_buffer: 4, ..Default::default() };
    let hub = Arc::new(citygrid::staff::StaffHub::new(config, world.center()));
    hub.set_register(people(2), None);
    let state = AppState::new(handle).with_staff_tokens(vec![STAFF.into()]).with_positions_tokens(vec![POSITIONS.into()]).with_staff(hub);
    let app = router(state);
    let response =
        app.clone().oneshot(Request::get("/v1/staff/events").header("authorization", format!("Bearer {STAFF}")).body(Body::empty()).unwrap()).await.unwrap();
    let mut body = response.into_body();
    let mut buffer = String::new();
    next_event(&mut body, &mut buffer, "ready", |_| true).await;
    // 400 crossings while the client reads nothing: the intake does not wait for it.
    let grids = unit_grids(&world.city);
    let (a, b) = (inside(&world.city, grids[0]), inside(&world.city, grids[1]));
    let t0 = Utc::now() - chrono::Duration::seconds(100);
    let items: Vec<Value> = (0..400)
        .map(|i| {
            let p = if i % 2 == 0 { a } else { b };
            json!({"id": "P000", "lon": p.0, "lat": p.1, "time": (t0 + chrono::Duration::milliseconds(i * 100)).to_rfc3339()})
        })
        .collect();
    let started = std::time::Instant::now();
    let (code, outcome) = call(&app, "POST", "/v1/staff/positions", Some(POSITIONS), Some(json!(items))).await;
    assert_eq!((code, outcome["events"].as_u64()), (StatusCode::OK, Some(400)));
    assert!(started.elapsed() < Duration::from_secs(2));
    let lagged = next_event(&mut body, &mut buffer, "lagged", |_| true).await;
    assert!(lagged["missed"].as_u64().unwrap() > 0);
    // …and then the stream ends.
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match body.frame().await {
                None => break,
                Some(Ok(_)) => continue,
                Some(Err(_)) => break,
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the lagging stream ends");
}

#[tokio::test]
async fn route_answers_suggest_the_nearest_available_inspectors() {
    let f = fixture(people(20));
    let [lon, lat] = f.world.center();
    let mut batch = Vec::new();
    for i in 0..20 {
        let status = if i == 0 { "busy" } else { "available" };
        batch.push(json!({"id": format!("P{i:03}"), "lon": lon + 0.001 * i as f64, "lat": lat, "time": now(), "status": status}));
    }
    let (code, _) = call(&f.app, "POST", "/v1/staff/positions", Some(POSITIONS), Some(json!(batch))).await;
    assert_eq!(code, StatusCode::OK);
    let (_, types) = call(&f.app, "GET", "/v1/cases/types", None, None).await;
    let event = types["types"].as_array().unwrap().iter().find(|t| t["kind"] == "event").unwrap()["code"].as_str().unwrap().to_owned();
    let case = json!({"lon": lon, "lat": lat, "event_type": event, "suggest_staff": 2});
    let (code, e) = call(&f.app, "POST", "/v1/cases/route", None, Some(case.clone())).await;
    assert_eq!((code, e["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "positions are private");
    let (code, answer) = call(&f.app, "POST", "/v1/cases/route", Some(STAFF), Some(case)).await;
    assert_eq!(code, StatusCode::OK, "{answer}");
    let suggested = answer["suggested_staff"].as_array().unwrap();
    // P000 is busy; inspectors are the even ids: P002, P004.
    let ids: Vec<&str> = suggested.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["P002", "P004"]);
    let d = suggested[0]["distance_m"].as_f64().unwrap();
    assert!((d - haversine_m(geo_types::Coord { x: lon, y: lat }, geo_types::Coord { x: lon + 0.002, y: lat })).abs() < 1e-6);
    assert!(answer["responsible_unit"].is_object(), "the routing answer is whole");
    let (code, _) = call(&f.app, "POST", "/v1/cases/route", None, Some(json!({"lon": lon, "lat": lat, "event_type": event}))).await;
    assert_eq!(code, StatusCode::OK, "without suggest_staff, routing is as before");
    let (code, e) = call(&f.app, "POST", "/v1/cases/route", Some(STAFF), Some(json!({"lon": lon, "lat": lat, "event_type": event, "suggest_staff": 99}))).await;
    assert_eq!((code, e["error"]["details"]["parameter"].as_str()), (StatusCode::BAD_REQUEST, Some("suggest_staff")));
    // A dispatcher token may see them too.
    let state = f.state.clone().with_dispatcher_tokens(vec![DISPATCHER.into()]);
    let (code, answer) =
        call(&router(state), "POST", "/v1/cases/route", Some(DISPATCHER), Some(json!({"lon": lon, "lat": lat, "event_type": event, "suggest_staff": true})))
            .await;
    assert_eq!((code, answer["suggested_staff"].as_array().map(Vec::len)), (StatusCode::OK, Some(3)));
}

/// A webhook receiver on 127.0.0.1: answers 503 to the first `fail_first` requests, then 200,
/// and passes on each body it accepted.
async fn receiver(fail_first: usize) -> (String, tokio::sync::mpsc::UnboundedReceiver<(String, Value)>, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/staff", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut data = Vec::new();
            let mut buf = [0u8; 4096];
            let (head, body) = loop {
                let n = socket.read(&mut buf).await.unwrap();
                data.extend_from_slice(&buf[..n]);
                if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&data[..at]).to_string();
                    let len: usize =
                        head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())).unwrap_or(0);
                    while data.len() < at + 4 + len {
                        let n = socket.read(&mut buf).await.unwrap();
                        data.extend_from_slice(&buf[..n]);
                    }
                    break (head, data[at + 4..at + 4 + len].to_vec());
                }
            };
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n < fail_first {
                socket.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await.unwrap();
            } else {
                socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await.unwrap();
                tx.send((head, serde_json::from_slice(&body).unwrap())).unwrap();
            }
        }
    });
    (url, rx, seen)
}

#[tokio::test]
async fn webhooks_get_the_events_after_retries() {
    let f = fixture(people(2));
    let (url, mut rx, seen) = receiver(2).await;
    let config = citygrid::http::staff_webhook::WebhookConfig { urls: vec![url], backoff: Duration::from_millis(20), retries: 4, ..Default::default() };
    let stats = citygrid::http::staff_webhook::start(&f.state.staff, &config).unwrap();
    let grids = unit_grids(&f.world.city);
    let (a, b) = (inside(&f.world.city, grids[0]), inside(&f.world.city, grids[1]));
    let t0 = Utc::now() - chrono::Duration::seconds(10);
    let batch = json!([
        {"id": "P001", "lon": a.0, "lat": a.1, "time": t0.to_rfc3339()},
        {"id": "P001", "lon": b.0, "lat": b.1, "time": (t0 + chrono::Duration::seconds(3)).to_rfc3339()},
    ]);
    let (code, outcome) = call(&f.app, "POST", "/v1/staff/positions", Some(POSITIONS), Some(batch)).await;
    assert_eq!((code, outcome["events"].as_u64()), (StatusCode::OK, Some(2)));
    let (head, first) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("delivered").unwrap();
    assert!(head.starts_with("POST /hooks/staff HTTP/1.1"), "{head}");
    assert!(head.to_ascii_lowercase().contains("x-citygrid-event: grid_change"), "{head}");
    assert_eq!(first["entered"]["code"], f.world.city.grid(grids[0]).code.to_string());
    let (_, second) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("delivered").unwrap();
    assert_eq!(second["left"]["code"], f.world.city.grid(grids[0]).code.to_string(), "in order");
    assert_eq!(second["entered"]["code"], f.world.city.grid(grids[1]).code.to_string());
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 4, "two refused attempts, then two deliveries");
    // The receiver passes the body on as it answers; the sender counts once it reads the answer.
    let counted = tokio::time::timeout(Duration::from_secs(5), async {
        while stats.delivered.load(std::sync::atomic::Ordering::Relaxed) < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    assert!(counted.await.is_ok(), "both deliveries counted");
    assert_eq!(stats.attempts_failed.load(std::sync::atomic::Ordering::Relaxed), 2);
    assert!(citygrid::http::staff_webhook::check_url("https://example.org/hook").is_err(), "https is refused");
}

#[tokio::test]
async fn the_register_is_a_dataset_uploaded_like_the_others() {
    let dir = tempfile::tempdir().unwrap();
    common::write_tiny(dir.path());
    let store = citygrid::store::Store::open(dir.path()).unwrap();
    let loaded = store.load_city(&|_, _| {}).unwrap();
    let handle = citygrid::world::WorldHandle::new(World::new(loaded));
    let world = handle.load();
    let state = AppState::new(handle.clone())
        .with_admin_tokens(vec![ADMIN.into()])
        .with_staff_tokens(vec![STAFF.into()])
        .with_positions_tokens(vec![POSITIONS.into()])
        .with_datasets(citygrid::datasets::Datasets::new(store, handle, citygrid::tiles::TileConfig::default()));
    let app = router(state);
    let grid = world.city.grid(unit_grids(&world.city)[0]).code.to_string();
    let csv = format!("id,name,role,unit,home_grids\nW1,王芳,网格员,社区工作站,{grid}\nI1,李强,inspector,监督中心,\n");
    let put = |body: String| {
        Request::put("/v1/layers/staff").header("authorization", format!("Bearer {ADMIN}")).header("content-type", "text/csv").body(Body::from(body)).unwrap()
    };
    let response = app.clone().oneshot(put(csv)).await.unwrap();
    let status = response.status();
    let answer: Value = serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
    let response = app.clone().oneshot(put("id,name,role\nX,x,chief\n".into())).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "a bad register is refused");
    let [lon, lat] = world.center();
    let (code, outcome) = call(
        &app,
        "POST",
        "/v1/staff/positions",
        Some(POSITIONS),
        Some(json!([{"id": "W1", "lon": lon, "lat": lat, "time": now()}, {"id": "P000", "lon": lon, "lat": lat, "time": now()}])),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(outcome["accepted"], 1, "W1 is in the uploaded register, P000 is not: {outcome}");
    let (_, near) = call(&app, "GET", &format!("/v1/staff/nearest?lon={lon}&lat={lat}"), Some(STAFF), None).await;
    assert_eq!((near["staff"][0]["name"].as_str(), near["staff"][0]["role"].as_str()), (Some("王芳"), Some("grid_worker")));
    let (_, history) = call(&app, "GET", "/v1/layers/staff/versions", Some(ADMIN), None).await;
    assert_eq!(history["current"], 1, "{history}");
}

#[test]
fn the_demo_staff_walk_across_grids_and_produce_events() {
    let dir = tempfile::tempdir().unwrap();
    let handle = common::tiny_world(dir.path());
    let world = handle.load();
    let register = citygrid::staff::simulate::demo_register(&world.city, 1);
    let hub = citygrid::staff::StaffHub::new(Default::default(), world.center());
    hub.set_register(register.clone(), None);
    let day = Utc::now().with_timezone(&citygrid::routing::china_tz()).date_naive();
    let items: Vec<_> = citygrid::staff::simulate::patrols(&world.city, &register, day, 30, 1).map(Ok).collect();
    let n = items.len();
    let outcome = hub.apply(&world, items);
    assert_eq!(outcome.accepted, n);
    assert!(outcome.rejected.is_empty());
    assert!(outcome.events > register.len() * 2, "people cross grids during the day: {} events", outcome.events);
    let (points, dropped) = hub.track_stats();
    assert_eq!((points, dropped), (n, 0));
    let someone = &register.members()[0].id;
    assert!(!hub.track(someone, day).is_empty());
}

#[tokio::test]
async fn the_staff_operations_have_their_own_operation_ids() {
    let f = fixture(people(1));
    let (_, doc) = call(&f.app, "GET", "/openapi.json", None, None).await;
    let mut ids = Vec::new();
    for (_, item) in doc["paths"].as_object().unwrap() {
        for (_, op) in item.as_object().unwrap() {
            if let Some(id) = op.get("operationId").and_then(Value::as_str) {
                ids.push(id.to_owned());
            }
        }
    }
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "operationIds must be unique (openapi-spec-validator refuses duplicates)");
    assert!(ids.iter().any(|i| i == "staff_nearest"));
}
