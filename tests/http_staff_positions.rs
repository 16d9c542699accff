//! Live staff positions over Server-Sent Events (`GET /v1/staff/events?types=positions`), over
//! the real router (tiny demo city): coalesced frames with the latest fix of each person who
//! moved, bounded per frame, filtered by a box, in another datum; the default stream is as it
//! was; a reader that falls behind is dropped while the intake goes on.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Utc;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use citygrid::crs::datum::Datum;
use citygrid::http::{AppState, router};
use citygrid::staff::{Role, StaffConfig, StaffHub, StaffMember, StaffRegister};
use citygrid::world::World;

const STAFF: &str = "staff-token-0123456789abcdef";
const POSITIONS: &str = "positions-token-0123456789ab";

struct Fixture {
    app: axum::Router,
    hub: Arc<StaffHub>,
    world: Arc<World>,
    _dir: tempfile::TempDir,
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

fn fixture(n: usize, config: StaffConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let handle = common::tiny_world(dir.path());
    let world = handle.load();
    let hub = Arc::new(StaffHub::new(config, world.center()));
    hub.set_register(people(n), None);
    let state = AppState::new(handle).with_staff_tokens(vec![STAFF.into()]).with_positions_tokens(vec![POSITIONS.into()]).with_staff(hub.clone());
    Fixture { app: router(state), hub, world, _dir: dir }
}

fn fast() -> StaffConfig {
    StaffConfig { positions_interval: Duration::from_millis(100), ..Default::default() }
}

async fn post(app: &axum::Router, items: Value) -> Value {
    let req = Request::post("/v1/staff/positions").header("authorization", format!("Bearer {POSITIONS}")).header("content-type", "application/json");
    let response = app.clone().oneshot(req.body(Body::from(items.to_string())).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap()
}

async fn open(app: &axum::Router, query: &str) -> axum::response::Response {
    let req = Request::get(format!("/v1/staff/events{query}")).header("authorization", format!("Bearer {STAFF}"));
    app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
}

/// An open event stream, read frame by frame.
struct Stream {
    body: Body,
    buffer: String,
}

impl Stream {
    async fn open(app: &axum::Router, query: &str) -> Stream {
        let response = open(app, query).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Stream { body: response.into_body(), buffer: String::new() }
    }

    /// The next event (name, data) within `wait`, or `None`.
    async fn next(&mut self, wait: Duration) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let Some(event) = block.lines().find_map(|l| l.strip_prefix("event: ")) else { continue }; // keep-alive comment
                let data: String = block.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
                return Some((event.to_owned(), serde_json::from_str(&data).unwrap()));
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame()).await.ok()??.unwrap();
            if let Ok(data) = frame.into_data() {
                self.buffer.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }

    /// The next event named `kind` (others are skipped), 5 s at most.
    async fn expect(&mut self, kind: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some((k, v)) if k == kind => return v,
                Some(_) => continue,
                None => panic!("no {kind} event within 5 s"),
            }
        }
    }
}

/// A point `i` steps of ~10 cm east of the city's centre.
fn near_centre(world: &World, i: usize) -> (f64, f64) {
    let [lon, lat] = world.center();
    (lon + i as f64 * 1e-6, lat)
}

/// The unit grid of a WGS84 point as answers name it (the oracle: the grid index itself).
fn grid_of(world: &World, lon: f64, lat: f64) -> Value {
    let fix = citygrid::staff::Fix { lon, lat, time: Utc::now(), accuracy_m: None, status: citygrid::staff::Status::Available };
    citygrid::staff::unit_grid(world, &fix).map_or(Value::Null, |g| json!(g.to_string()))
}

fn by_id(event: &Value) -> std::collections::BTreeMap<String, Value> {
    event["people"].as_array().unwrap().iter().map(|p| (p["id"].as_str().unwrap().to_owned(), p.clone())).collect()
}

#[tokio::test]
async fn a_flood_of_reports_comes_as_one_frame_with_the_latest_fix_of_each_person() {
    let f = fixture(5, fast());
    let mut stream = Stream::open(&f.app, "?types=positions").await;
    let ready = stream.expect("ready").await;
    assert_eq!(ready["types"], json!(["positions"]));
    assert_eq!(ready["stale_after_s"], 120);
    // 2000 reports of 5 people in one batch: each person's last one is their position.
    let t0 = Utc::now() - chrono::Duration::seconds(60);
    let items: Vec<Value> = (0..2000)
        .map(|i| {
            let (lon, lat) = near_centre(&f.world, i);
            json!({"id": format!("P{:03}", i % 5), "lon": lon, "lat": lat, "accuracy": 5 + i % 7, "status": if i % 3 == 0 { "busy" } else { "available" },
                   "time": (t0 + chrono::Duration::milliseconds(i as i64 * 10)).to_rfc3339()})
        })
        .collect();
    let outcome = post(&f.app, json!(items)).await;
    assert_eq!(outcome["accepted"], 2000);
    let frame = stream.expect("positions").await;
    let got = by_id(&frame);
    assert_eq!(got.keys().cloned().collect::<Vec<_>>(), ["P000", "P001", "P002", "P003", "P004"], "{frame}");
    for (k, item) in items.iter().enumerate().skip(1995) {
        let p = &got[item["id"].as_str().unwrap()];
        let (lon, lat) = near_centre(&f.world, k);
        assert!((p["lon"].as_f64().unwrap() - lon).abs() < 1e-9 && (p["lat"].as_f64().unwrap() - lat).abs() < 1e-9, "{p}");
        assert_eq!(p["status"], item["status"]);
        assert_eq!(p["accuracy_m"].as_f64(), item["accuracy"].as_f64());
        assert_eq!(
            chrono::DateTime::parse_from_rfc3339(p["time"].as_str().unwrap()).unwrap(),
            chrono::DateTime::parse_from_rfc3339(item["time"].as_str().unwrap()).unwrap()
        );
        assert_eq!(p["name"], format!("人员{}", &item["id"].as_str().unwrap()[1..].parse::<usize>().unwrap()));
        assert_eq!(p["grid"], grid_of(&f.world, lon, lat), "{p}");
    }
    assert_eq!(frame["more"], false);
    assert_eq!(frame["datum"], "wgs84");
    // Nobody moved since: no frame. A report older than the one held moves nobody either.
    let older = json!([{"id": "P000", "lon": 0.0, "lat": 0.0, "time": t0.to_rfc3339()}]);
    assert_eq!(post(&f.app, older).await["older"], 1);
    assert_eq!(stream.next(Duration::from_millis(600)).await.map(|e| e.0), None);
    // One person moves: a frame of one.
    let (lon, lat) = near_centre(&f.world, 3);
    post(&f.app, json!([{"id": "P003", "lon": lon, "lat": lat, "time": Utc::now().to_rfc3339()}])).await;
    let frame = stream.expect("positions").await;
    assert_eq!(by_id(&frame).keys().cloned().collect::<Vec<_>>(), ["P003"]);
}

#[tokio::test]
async fn frames_hold_at_most_positions_max_people_and_the_rest_follow() {
    let f = fixture(10, StaffConfig { positions_max: 4, ..fast() });
    let mut stream = Stream::open(&f.app, "?types=positions").await;
    stream.expect("ready").await;
    let now = Utc::now();
    let items: Vec<Value> = (0..10)
        .map(|i| {
            let (lon, lat) = near_centre(&f.world, i);
            json!({"id": format!("P{i:03}"), "lon": lon, "lat": lat, "time": now.to_rfc3339()})
        })
        .collect();
    post(&f.app, json!(items)).await;
    let mut seen = std::collections::BTreeSet::new();
    let mut sizes = Vec::new();
    let mut mores = Vec::new();
    while seen.len() < 10 {
        let frame = stream.expect("positions").await;
        sizes.push(frame["people"].as_array().unwrap().len());
        mores.push(frame["more"].as_bool().unwrap());
        for id in by_id(&frame).into_keys() {
            assert!(seen.insert(id.clone()), "{id} twice");
        }
    }
    assert_eq!((sizes, mores), (vec![4, 4, 2], vec![true, true, false]));
}

#[tokio::test]
async fn a_box_filters_the_positions_and_datum_converts_them() {
    let f = fixture(2, fast());
    let (lon, lat) = near_centre(&f.world, 0);
    assert!(grid_of(&f.world, lon, lat).is_string(), "the centre lies in a unit grid");
    let bbox = format!("{},{},{},{}", lon - 0.001, lat - 0.001, lon + 0.001, lat + 0.001);
    let mut stream = Stream::open(&f.app, &format!("?types=positions&bbox={bbox}&datum=gcj02")).await;
    stream.expect("ready").await;
    let now = Utc::now().to_rfc3339();
    post(
        &f.app,
        json!([
            {"id": "P000", "lon": lon, "lat": lat, "time": now},
            {"id": "P001", "lon": lon + 0.01, "lat": lat, "time": now},
        ]),
    )
    .await;
    let frame = stream.expect("positions").await;
    let got = by_id(&frame);
    assert_eq!(got.keys().cloned().collect::<Vec<_>>(), ["P000"], "P001 is 1 km east of the box: {frame}");
    let (glon, glat) = Datum::Gcj02.from_wgs84(lon, lat);
    assert!((got["P000"]["lon"].as_f64().unwrap() - glon).abs() < 1e-9 && (got["P000"]["lat"].as_f64().unwrap() - glat).abs() < 1e-9);
    assert!((glon - lon).abs() > 1e-4, "GCJ-02 is shifted by hundreds of metres");
    assert_eq!(frame["datum"], "gcj02");
    // Only the person outside the box moves: no frame for this client.
    post(&f.app, json!([{"id": "P001", "lon": lon + 0.02, "lat": lat, "time": Utc::now().to_rfc3339()}])).await;
    assert_eq!(stream.next(Duration::from_millis(600)).await.map(|e| e.0), None);
}

#[tokio::test]
async fn the_default_stream_has_grid_changes_only_and_both_can_be_asked_for() {
    let f = fixture(1, fast());
    let mut plain = Stream::open(&f.app, "").await;
    let mut both = Stream::open(&f.app, "?types=grid_change,positions").await;
    assert_eq!(plain.expect("ready").await["types"], json!(["grid_change"]));
    assert_eq!(both.expect("ready").await["types"], json!(["grid_change", "positions"]));
    let (lon, lat) = near_centre(&f.world, 0);
    post(&f.app, json!([{"id": "P000", "lon": lon, "lat": lat, "time": Utc::now().to_rfc3339()}])).await;
    let mut kinds = std::collections::BTreeSet::new();
    while kinds.len() < 2 {
        kinds.insert(both.next(Duration::from_secs(5)).await.expect("grid_change and positions").0);
    }
    assert_eq!(kinds.into_iter().collect::<Vec<_>>(), ["grid_change", "positions"]);
    assert_eq!(plain.expect("grid_change").await["staff"]["id"], "P000");
    // …and no positions event on the plain stream, though a frame went out meanwhile.
    assert_eq!(plain.next(Duration::from_millis(500)).await.map(|e| e.0), None);
}

#[tokio::test]
async fn bad_event_parameters_are_400_in_the_error_format() {
    let f = fixture(1, fast());
    for (query, parameter) in
        [("?types=positions,teleports", "types"), ("?types=,", "types"), ("?types=positions&datum=mars", "datum"), ("?types=positions&bbox=1,2,0,3", "bbox")]
    {
        let response = open(&f.app, query).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: Value = serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(body["error"]["code"], "invalid_parameter", "{query}: {body}");
        assert_eq!(body["error"]["details"]["parameter"], parameter, "{query}: {body}");
    }
    let response = f.app.clone().oneshot(Request::get("/v1/staff/events?types=positions").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_positions_reader_that_falls_behind_is_dropped_and_the_intake_goes_on() {
    // A ticker that never fires on its own: the test makes the frames.
    let f = fixture(1, StaffConfig { positions_interval: Duration::from_secs(3600), ..Default::default() });
    let mut stream = Stream::open(&f.app, "?types=positions").await;
    stream.expect("ready").await;
    let t0 = Utc::now() - chrono::Duration::seconds(300);
    let started = std::time::Instant::now();
    for i in 0..300 {
        let (lon, lat) = near_centre(&f.world, i);
        let outcome =
            post(&f.app, json!([{"id": "P000", "lon": lon, "lat": lat, "time": (t0 + chrono::Duration::milliseconds(i as i64 * 500)).to_rfc3339()}])).await;
        assert_eq!(outcome["accepted"], 1);
        assert!(f.hub.flush_positions().is_some(), "someone listens: a frame of one");
    }
    assert!(started.elapsed() < Duration::from_secs(20), "the intake never waits for the reader");
    let lagged = stream.expect("lagged").await;
    assert!(lagged["missed"].as_u64().unwrap() > 0);
    let end = tokio::time::timeout(Duration::from_secs(5), async { while let Some(Ok(_)) = stream.body.frame().await {} }).await;
    assert!(end.is_ok(), "the lagging stream ends");
}

#[tokio::test]
async fn nobody_listening_means_nothing_is_collected() {
    let f = fixture(1, fast());
    let (lon, lat) = near_centre(&f.world, 0);
    post(&f.app, json!([{"id": "P000", "lon": lon, "lat": lat, "time": Utc::now().to_rfc3339()}])).await;
    assert!(f.hub.flush_positions().is_none());
}
