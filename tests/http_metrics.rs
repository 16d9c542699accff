//! `GET /metrics` over real requests: each test makes requests through the router, scrapes,
//! parses the exposition text and checks what the series say; and the real binary's request
//! log with `--log-format json`.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use citygrid::datasets::Datasets;
use citygrid::http::{AppState, router};
use citygrid::store::Store;
use citygrid::tiles::TileConfig;
use common::ingest::TOKEN;

/// One sample of the exposition: `name{labels} value`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the OpenMetrics / Prometheus text format (the subset a registry writes: comments,
/// `name value` and `name{k="v",…} value`, with `\"`, `\\` and `\n` escapes in values).
fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => panic!("no value: {line:?}"),
        };
        let mut labels = BTreeMap::new();
        let mut rest = rest;
        if let Some(inner) = rest.strip_prefix('{') {
            let mut chars = inner.char_indices();
            let (mut key, mut value, mut in_value) = (String::new(), String::new(), false);
            loop {
                let (i, c) = chars.next().unwrap_or_else(|| panic!("unclosed labels: {line:?}"));
                match (in_value, c) {
                    (false, '}') => {
                        rest = &inner[i + 1..];
                        break;
                    }
                    (false, ',') => {}
                    (false, '=') => {
                        assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line:?}");
                        in_value = true;
                    }
                    (false, c) => key.push(c),
                    (true, '\\') => match chars.next().map(|(_, c)| c) {
                        Some('n') => value.push('\n'),
                        Some(c) => value.push(c),
                        None => panic!("{line:?}"),
                    },
                    (true, '"') => {
                        labels.insert(std::mem::take(&mut key), std::mem::take(&mut value));
                        in_value = false;
                    }
                    (true, c) => value.push(c),
                }
            }
        }
        let value = rest.split_whitespace().next().unwrap_or_else(|| panic!("no value: {line:?}"));
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|e| panic!("{e}: {line:?}")),
        };
        samples.push(Sample { name: name.to_owned(), labels, value });
    }
    samples
}

/// The samples of a scrape.
struct Scrape(Vec<Sample>);

impl Scrape {
    /// The samples named `name` whose labels include `labels`.
    fn matching<'a>(&'a self, name: &'a str, labels: &'a [(&'a str, &'a str)]) -> impl Iterator<Item = &'a Sample> + 'a {
        self.0.iter().filter(move |s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
    }

    /// The sum of those samples (0 when there are none).
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// The one sample of `name` with `labels`.
    fn one(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = self.matching(name, labels).collect();
        assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
        found[0].value
    }
}

async fn send(app: &axum::Router, method: &str, uri: &str, token: bool, content_type: Option<&str>, body: impl Into<Body>) -> (StatusCode, Vec<u8>) {
    let mut req = Request::builder().method(method).uri(uri);
    if token {
        req = req.header("authorization", format!("Bearer {TOKEN}"));
    }
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let response = app.clone().oneshot(req.body(body.into()).unwrap()).await.unwrap();
    let status = response.status();
    (status, response.into_body().collect().await.unwrap().to_bytes().to_vec())
}

async fn get(app: &axum::Router, uri: &str) -> StatusCode {
    send(app, "GET", uri, false, None, Body::empty()).await.0
}

async fn scrape(app: &axum::Router) -> Scrape {
    let response = app.clone().oneshot(Request::builder().uri("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let ct = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("application/openmetrics-text; version=1.0.0"), "{ct}");
    let text = String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    Scrape(parse(&text))
}

/// The tiny city with a data directory, the admin token and an audit log.
fn server() -> (axum::Router, citygrid::world::WorldHandle, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let handle = common::tiny_world(dir.path());
    let store = Store::open(dir.path()).unwrap();
    let state = AppState::new(handle.clone())
        .with_admin_tokens(vec![TOKEN.into()])
        .with_audit(citygrid::store::audit::AuditLog::open(dir.path()).unwrap())
        .with_datasets(Datasets::new(store, handle.clone(), TileConfig::default()));
    (router(state), handle, dir)
}

/// A point inside the city (its first component).
fn inside(handle: &citygrid::world::WorldHandle) -> (f64, f64) {
    let c = handle.load().city.components[0].location;
    (c.x, c.y)
}

#[tokio::test]
async fn requests_are_counted_by_route_template_method_and_status() {
    let (app, handle, _dir) = server();
    let (lon, lat) = inside(&handle);
    let before = scrape(&app).await;
    let locate = [("route", "/v1/locate"), ("method", "GET"), ("status", "200")];
    let bad = [("route", "/v1/locate"), ("method", "GET"), ("status", "400")];
    for i in 0..7 {
        assert_eq!(get(&app, &format!("/v1/locate?lon={}&lat={lat}", lon + i as f64 * 1e-7)).await, StatusCode::OK);
    }
    for _ in 0..3 {
        assert_eq!(get(&app, "/v1/locate?lon=east&lat=31").await, StatusCode::BAD_REQUEST);
    }
    let after = scrape(&app).await;
    let grew = |name: &str, labels: &[(&str, &str)]| after.sum(name, labels) - before.sum(name, labels);
    assert_eq!(grew("citygrid_http_requests_total", &locate), 7.0);
    assert_eq!(grew("citygrid_http_requests_total", &bad), 3.0);
    assert_eq!(grew("citygrid_http_request_duration_seconds_count", &locate), 7.0);
    assert!(grew("citygrid_http_request_duration_seconds_sum", &locate) > 0.0);
    let le_inf = [("route", "/v1/locate"), ("method", "GET"), ("status", "200"), ("le", "+Inf")];
    assert_eq!(after.one("citygrid_http_request_duration_seconds_bucket", &le_inf), 7.0);
    // The first scrape was counted too, under its own route; the one being answered is in flight.
    assert_eq!(after.one("citygrid_http_requests_total", &[("route", "/metrics"), ("status", "200")]), 1.0);
    assert_eq!(after.one("citygrid_http_requests_in_flight", &[]), 1.0);
    // Never the raw path or query.
    assert!(after.0.iter().all(|s| s.labels.get("route").is_none_or(|r| !r.contains('?') && !r.contains("lon"))));
}

#[tokio::test]
async fn a_hundred_bogus_paths_do_not_make_a_hundred_series() {
    let (app, handle, _dir) = server();
    let before = scrape(&app).await;
    let code = handle.load().city.grids[0].code.to_string();
    for i in 0..100 {
        assert_eq!(get(&app, &format!("/no/such/thing/{i}")).await, StatusCode::NOT_FOUND);
        // Distinct paths of one route are one route.
        let status = get(&app, &format!("/v1/grids/{code}{i}")).await;
        assert!(status.is_client_error(), "{status}");
    }
    let after = scrape(&app).await;
    let series = |s: &Scrape| s.matching("citygrid_http_requests_total", &[]).count();
    assert!(series(&after) <= series(&before) + 4, "{} series before, {} after", series(&before), series(&after));
    assert_eq!(after.one("citygrid_http_requests_total", &[("route", "other"), ("method", "GET")]), 100.0);
    assert_eq!(after.sum("citygrid_http_requests_total", &[("route", "/v1/grids/{code}")]), 100.0);
    let histograms = after.matching("citygrid_http_request_duration_seconds_count", &[]).count();
    assert!(histograms <= series(&after), "one histogram per counter series");
}

#[tokio::test]
async fn a_tile_miss_then_a_hit_show_in_the_cache_series() {
    let (app, _handle, _dir) = server();
    let before = scrape(&app).await;
    assert_eq!(before.one("citygrid_tile_cache_entries", &[]), 0.0);
    for _ in 0..2 {
        let (status, body) = send(&app, "GET", "/tiles/grids/0/0/0.mvt", false, None, Body::empty()).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    }
    let after = scrape(&app).await;
    assert_eq!(after.one("citygrid_tile_cache_misses_total", &[]) - before.one("citygrid_tile_cache_misses_total", &[]), 1.0);
    assert_eq!(after.one("citygrid_tile_cache_hits_total", &[]) - before.one("citygrid_tile_cache_hits_total", &[]), 1.0);
    assert_eq!(after.one("citygrid_tile_encode_duration_seconds_count", &[]), 1.0);
    assert_eq!(after.one("citygrid_tile_cache_entries", &[]), 1.0);
    assert!(after.one("citygrid_tile_cache_bytes", &[]) > 0.0);
    // A tile request that never reaches the cache (a bad layer) is neither.
    assert_eq!(get(&app, "/tiles/roads/0/0/0.mvt").await, StatusCode::NOT_FOUND);
    let last = scrape(&app).await;
    assert_eq!(last.one("citygrid_tile_cache_misses_total", &[]) + last.one("citygrid_tile_cache_hits_total", &[]), 2.0);
}

const CALENDAR: &str = "years = [2026, 2027]\nworking_hours = [\"08:30-12:00\", \"13:30-17:30\"]\nweekend = [\"sat\", \"sun\"]\nholidays = [\"2026-10-01\", \"2027-01-01\"]\nworkdays = []\n";

#[tokio::test]
async fn imports_count_by_outcome_and_move_the_served_version() {
    let (app, _handle, _dir) = server();
    let before = scrape(&app).await;
    // Every dataset has its version gauge; the tiny city has no calendar of its own.
    for d in citygrid::store::Dataset::ALL {
        before.one("citygrid_dataset_version", &[("dataset", d.name())]);
    }
    assert_eq!(before.one("citygrid_dataset_version", &[("dataset", "grids")]), 1.0);
    assert_eq!(before.one("citygrid_dataset_version", &[("dataset", "calendar")]), 0.0);
    assert_eq!(before.matching("citygrid_dataset_age_seconds", &[("dataset", "calendar")]).count(), 0);
    let grids_age = before.one("citygrid_dataset_age_seconds", &[("dataset", "grids")]);
    assert!((0.0..600.0).contains(&grids_age), "grids v1 was created moments ago: {grids_age}");

    let ok = [("dataset", "calendar"), ("operation", "import"), ("outcome", "ok")];
    let rejected = [("dataset", "calendar"), ("operation", "import"), ("outcome", "rejected")];
    // Without the token it is no import attempt at all.
    let (status, _) = send(&app, "PUT", "/v1/layers/calendar", false, Some("application/toml"), CALENDAR).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = send(&app, "PUT", "/v1/layers/calendar?dry_run=true", true, Some("application/toml"), CALENDAR).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let s = scrape(&app).await;
    assert_eq!(s.sum("citygrid_imports_total", &[("dataset", "calendar")]), 1.0);
    assert_eq!(s.one("citygrid_imports_total", &[("dataset", "calendar"), ("operation", "dry_run"), ("outcome", "ok")]), 1.0);
    assert_eq!(s.one("citygrid_dataset_version", &[("dataset", "calendar")]), 0.0, "a dry run switches nothing");

    let (status, body) = send(&app, "PUT", "/v1/layers/calendar", true, Some("application/toml"), CALENDAR).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let s = scrape(&app).await;
    assert_eq!(s.one("citygrid_imports_total", &ok), 1.0);
    assert_eq!(s.one("citygrid_import_duration_seconds_count", &ok), 1.0);
    assert_eq!(s.one("citygrid_dataset_version", &[("dataset", "calendar")]), 1.0);
    let age = s.one("citygrid_dataset_age_seconds", &[("dataset", "calendar")]);
    assert!((0.0..60.0).contains(&age), "current since the import: {age}");

    let (status, _) = send(&app, "PUT", "/v1/layers/calendar", true, Some("application/toml"), "working_hours = [\"25:00-26:00\"]\n").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = send(&app, "PUT", "/v1/rules", true, Some("text/csv"), "not,a,list\n").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let s = scrape(&app).await;
    assert_eq!(s.one("citygrid_imports_total", &rejected), 1.0);
    assert_eq!(s.one("citygrid_imports_total", &ok), 1.0);
    assert_eq!(s.one("citygrid_imports_total", &[("dataset", "rules"), ("operation", "import"), ("outcome", "rejected")]), 1.0);
    assert_eq!(s.one("citygrid_dataset_version", &[("dataset", "calendar")]), 1.0, "a rejected import switches nothing");

    // A rollback to a version that is not kept is a rejected switch.
    let (status, _) = send(&app, "POST", "/v1/layers/grids/rollback", true, Some("application/json"), json!({"version": 9}).to_string()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let s = scrape(&app).await;
    assert_eq!(s.one("citygrid_imports_total", &[("dataset", "grids"), ("operation", "rollback"), ("outcome", "rejected")]), 1.0);
}

/// `citygrid_snapshots_alive` until it is `want`, for up to 5 s (an old snapshot is freed by a
/// background thread once its last reader is done); the last value seen.
async fn snapshots_alive_settles_at(app: &axum::Router, want: f64) -> f64 {
    let mut seen = f64::NAN;
    for _ in 0..100 {
        seen = scrape(app).await.one("citygrid_snapshots_alive", &[]);
        if seen == want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    seen
}

#[tokio::test]
async fn snapshots_alive_counts_an_old_snapshot_until_its_last_reader_is_done() {
    let (app, handle, _dir) = server();
    assert_eq!(scrape(&app).await.one("citygrid_snapshots_alive", &[]), 1.0, "one snapshot when quiet");
    // A request in flight keeps the snapshot it started on (here the test holds it).
    let held = handle.load();
    let (status, body) = send(&app, "PUT", "/v1/layers/calendar", true, Some("application/toml"), CALENDAR).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let s = scrape(&app).await;
    assert_eq!(s.one("citygrid_dataset_version", &[("dataset", "calendar")]), 1.0, "switched");
    assert_eq!(s.one("citygrid_snapshots_alive", &[]), 2.0, "the old snapshot is alive while it is read");
    drop(held);
    assert_eq!(snapshots_alive_settles_at(&app, 1.0).await, 1.0, "freed after its last reader");
    // Switch after switch (a new calendar, rollbacks of it), nothing keeps old snapshots.
    for i in 0..6 {
        let (status, body) = if i % 2 == 0 {
            send(&app, "PUT", "/v1/layers/calendar", true, Some("application/toml"), CALENDAR).await
        } else {
            send(&app, "POST", "/v1/layers/calendar/rollback", true, Some("application/json"), json!({"version": 1}).to_string()).await
        };
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    }
    let s = scrape(&app).await;
    assert_eq!(s.one("citygrid_imports_total", &[("dataset", "calendar"), ("operation", "import"), ("outcome", "ok")]), 4.0);
    assert_eq!(s.one("citygrid_imports_total", &[("dataset", "calendar"), ("operation", "rollback"), ("outcome", "ok")]), 3.0);
    assert_eq!(s.one("citygrid_dataset_version", &[("dataset", "calendar")]), 1.0, "rolled back last");
    assert_eq!(snapshots_alive_settles_at(&app, 1.0).await, 1.0, "no old snapshot left after seven switches");
}

#[tokio::test]
async fn routing_decisions_are_counted_by_outcome_and_audit_appends_are_timed() {
    let (app, handle, _dir) = server();
    let (lon, lat) = inside(&handle);
    let inside_case = json!({"lon": lon, "lat": lat, "event_type": "0102"});
    let far_case = json!({"lon": 100.0, "lat": 20.0, "event_type": "0102"});
    let bad_case = json!({"lon": lon, "lat": lat, "event_type": "0188"});
    let mut statuses = Vec::new();
    let mut answer = Value::Null;
    for case in [&inside_case, &far_case, &bad_case] {
        let (status, body) = send(&app, "POST", "/v1/cases/route", false, Some("application/json"), case.to_string()).await;
        statuses.push(status.as_u16());
        if status == StatusCode::OK {
            answer = serde_json::from_slice(&body).unwrap();
        }
    }
    assert_eq!(statuses, [200, 422, 400]);
    let given = if answer["rule"].is_null() { "no_rule" } else { "routed" };
    let batch = json!([inside_case, inside_case, far_case, bad_case, bad_case, bad_case]).to_string();
    let (status, body) = send(&app, "POST", "/v1/cases/route:batch", false, Some("application/json"), batch).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(String::from_utf8(body).unwrap().lines().count(), 6);

    let s = scrape(&app).await;
    let n = |mode: &str, outcome: &str| s.one("citygrid_routing_decisions_total", &[("mode", mode), ("outcome", outcome)]);
    assert_eq!(n("single", "failed"), 0.0, "every outcome is there from the start");
    assert_eq!((n("single", given), n("single", "outside_coverage"), n("single", "rejected")), (1.0, 1.0, 1.0));
    assert_eq!((n("batch", given), n("batch", "outside_coverage"), n("batch", "rejected")), (2.0, 1.0, 3.0));
    assert_eq!(s.sum("citygrid_routing_decisions_total", &[]), 9.0);
    // One append for the single decision given, one for the batch's chunk.
    assert_eq!(s.one("citygrid_audit_append_duration_seconds_count", &[]), 2.0);
    assert_eq!(s.one("citygrid_audit_append_failures_total", &[]), 0.0);
}

#[tokio::test]
async fn the_process_and_the_build_are_described() {
    let (app, _handle, _dir) = server();
    let s = scrape(&app).await;
    if cfg!(target_os = "linux") {
        assert!(s.one("process_resident_memory_bytes", &[]) > 1e6);
        assert!(s.one("process_open_fds", &[]) >= 3.0);
    }
    let started = s.one("process_start_time_seconds", &[]);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(started > 1.7e9 && started <= now, "{started}");
    assert_eq!(s.one("citygrid_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);
}

#[tokio::test]
async fn metrics_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let app = router(AppState::new(common::tiny_world(dir.path())).with_metrics_endpoint(false));
    let (status, body) = send(&app, "GET", "/metrics", false, None, Body::empty()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "not_found", "{body}");
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    let a = common::http::tcp_get(addr, path);
    (a.status.as_u16(), a.text())
}

#[test]
fn the_binary_logs_each_request_once_as_a_json_object() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_citygrid"))
        .args(["serve", "--demo", "--demo-preset", "tiny", "--bind", "127.0.0.1:0", "--log-format", "json", "--data"])
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "info")
        .env("CITYGRID_METRICS", "false")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A failed assertion below must not leave the server running.
    struct KillOnDrop(Option<u32>);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            if let Some(pid) = self.0 {
                let _ = Command::new("kill").arg(pid.to_string()).status();
            }
        }
    }
    let mut guard = KillOnDrop(Some(child.id()));
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("citygrid listening on http://").unwrap_or_else(|| panic!("{line:?}")).to_owned();
    assert_eq!(http_get(&addr, "/health").0, 200);
    let (grid_status, _) = http_get(&addr, "/v1/grids/000000000000000");
    assert_eq!(grid_status, 400, "a malformed code");
    // CITYGRID_METRICS=false: no metrics here.
    assert_eq!(http_get(&addr, "/metrics").0, 404);

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    guard.0 = None; // exited and reaped: its pid is no longer ours
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    assert!(exit.success(), "{exit:?}\n{log}");
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l:?}")))
        .collect();
    assert!(lines.iter().all(Value::is_object), "{log}");
    assert!(lines.iter().any(|l| l["message"] == "shut down"), "{log}");
    let requests: Vec<&Value> = lines.iter().filter(|l| l["target"] == "citygrid::access").collect();
    assert_eq!(requests.len(), 3, "each request logged once: {log}");
    let health = requests.iter().find(|l| l["path"] == "/health").unwrap_or_else(|| panic!("{log}"));
    assert_eq!((health["level"].as_str(), health["method"].as_str(), health["route"].as_str()), (Some("INFO"), Some("GET"), Some("/health")));
    assert_eq!(health["status"], 200);
    assert!(health["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{health}");
    assert!(health["bytes"].as_u64().is_some_and(|b| b > 0), "{health}");
    let grid = requests.iter().find(|l| l["route"] == "/v1/grids/{code}").unwrap_or_else(|| panic!("{log}"));
    assert_eq!((grid["status"].as_u64(), grid["path"].as_str()), (Some(400), Some("/v1/grids/000000000000000")));
}
