//! Tracks and patrol coverage over real HTTP against the real binary (`serve --demo`, tiny
//! preset): two people walk through known unit grids on a past day; the track endpoint gives
//! their vertices and times back, the patrol statistics give coverage, minutes inside and
//! visitors there and list every other grid as unvisited; tokens are checked; a graceful
//! restart on the same data directory answers the same track and statistics (the days were
//! spilled to `DATA/staff/tracks/`); retention deletes an old day's file.

mod common;

use std::path::Path;
use std::process::Command;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use geo::InteriorPoint;
use serde_json::{Value, json};

use citygrid::demo::{DemoSpec, Preset, generate};
use common::http::{tcp, tcp_get};
use common::server::{Server, serve_tiny_demo};

const STAFF: &str = "staff-token-0123456789abcdef";
const POSITIONS: &str = "positions-token-0123456789ab";

/// The tiny demo served by the real binary with staff and positions tokens (no admin token).
struct Patrol(Server);

impl Patrol {
    fn start(data: &Path, config: &Path) -> Patrol {
        let mut cmd = serve_tiny_demo(data);
        cmd.arg("--config")
            .arg(config)
            .env("CITYGRID_STAFF_TOKEN", STAFF)
            .env("CITYGRID_POSITIONS_TOKEN", POSITIONS)
            .env_remove("CITYGRID_ADMIN_TOKEN")
            .env("RUST_LOG", "warn");
        Patrol(Server::start(&mut cmd))
    }

    /// SIGTERM, and wait for a clean exit (the open days are written then).
    fn stop(mut self) {
        let status = Command::new("kill").args(["-TERM", &self.0.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let exit = self.0.child.wait().unwrap();
        assert!(exit.success(), "{exit:?}");
    }

    fn text(&self, path: &str) -> String {
        let a = tcp_get(&self.0.addr, path);
        assert_eq!(a.status, 200, "{}", a.text());
        a.text()
    }

    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value) {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "application/json")];
        headers.extend(auth.as_deref().map(|a| ("Authorization", a)));
        let a = tcp(&self.0.addr, method, path, &headers, body.map(Value::to_string).unwrap_or_default().as_bytes());
        let text = a.text();
        (a.status.as_u16(), serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}")))
    }

    fn get(&self, path: &str) -> Value {
        let (status, body) = self.call("GET", path, Some(STAFF), None);
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    fn post(&self, positions: Vec<Value>) {
        let (status, body) = self.call("POST", "/v1/staff/positions", Some(POSITIONS), Some(&json!({"positions": positions})));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["rejected"], json!([]), "{body}");
    }
}

fn at(date: NaiveDate, secs: i64) -> DateTime<Utc> {
    // 09:00 China time is 01:00 UTC.
    date.and_hms_opt(1, 0, 0).unwrap().and_utc() + Duration::seconds(secs)
}

fn fix(id: &str, p: [f64; 2], time: DateTime<Utc>) -> Value {
    json!({"id": id, "lon": p[0], "lat": p[1], "time": time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true), "status": "available"})
}

fn grid<'a>(stats: &'a Value, code: &str) -> &'a Value {
    stats["grids"].as_array().unwrap().iter().find(|g| g["code"] == code).unwrap_or_else(|| panic!("{code} missing"))
}

#[test]
fn tracks_and_patrol_coverage_survive_a_restart_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("citygrid.toml");
    std::fs::write(&config, "[staff]\ntrack_retention_days = 3\n").unwrap();
    // The same city and register the server generates.
    let demo = generate(&DemoSpec { preset: Preset::Tiny, components: None, seed: 1 }, &|_, _| {}).unwrap();
    let register = citygrid::staff::simulate::demo_register(&demo.city, 1);
    let (p, q) = (register.members()[0].id.clone(), register.members()[1].id.clone());
    let unit = demo.city.hierarchy.unit_level();
    let units: Vec<_> = demo.city.grids_at(unit).map(|(_, g)| g).collect();
    assert!(units.len() >= 4, "{}", units.len());
    let (g1, g2) = (units[0], units[units.len() - 1]);
    let inside = |g: &citygrid::model::Grid| {
        let c = g.geometry.interior_point().unwrap();
        [c.x(), c.y()]
    };
    let (c1, c2) = (inside(g1), inside(g2));
    let day = NaiveDate::from_ymd_opt(2026, 11, 2).unwrap();

    let server = Patrol::start(&data, &config);
    // p: 10 fixes 30 s apart in g1 (4.5 min), 30 s to g2, 5 fixes 60 s apart (4 min), a
    // 10-minute gap (not counted), one more minute. q: 2 fixes 60 s apart in g1 (1 min).
    let mut times = Vec::new();
    let mut batch = Vec::new();
    for i in 0..10 {
        times.push(at(day, 30 * i));
        batch.push(fix(&p, [c1[0] + 1e-6 * i as f64, c1[1]], at(day, 30 * i)));
    }
    for (i, s) in [300, 360, 420, 480, 540, 1140, 1200].into_iter().enumerate() {
        times.push(at(day, s));
        batch.push(fix(&p, [c2[0], c2[1] + 1e-6 * i as f64], at(day, s)));
    }
    batch.push(fix(&q, c1, at(day, 100)));
    batch.push(fix(&q, c1, at(day, 160)));
    server.post(batch);
    // /metrics counts them: 19 accepted, 3 grid events (p into g1, g1 → g2, q into g1), 19 points held.
    let metrics = server.text("/metrics");
    for line in [
        "citygrid_staff_positions_total{outcome=\"accepted\"} 19",
        "citygrid_staff_positions_total{outcome=\"rejected\"} 0",
        "citygrid_staff_events_total 3",
        "citygrid_staff_track_points 19",
        "citygrid_staff_track_points_dropped_total 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} not in\n{metrics}");
    }

    // Tokens: none → 401, another role's → 403.
    let paths = [format!("/v1/stats/patrol?date={day}"), format!("/v1/staff/{p}/track?date={day}"), format!("/v1/staff/{p}")];
    for path in &paths {
        let (status, body) = server.call("GET", path, None, None);
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")), "{path}: {body}");
        let (status, body) = server.call("GET", path, Some(POSITIONS), None);
        assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{path}: {body}");
    }
    let (status, body) = server.call("GET", &format!("/v1/staff/nobody/track?date={day}"), Some(STAFF), None);
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("staff_not_found")), "{body}");
    let (status, body) = server.call("GET", &format!("/v1/stats/patrol?date={day}&distance_m=600"), Some(STAFF), None);
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_parameter")), "{body}");

    // The track: the posted vertices and times, in order.
    let track = server.get(&format!("/v1/staff/{p}/track?date={day}"));
    assert_eq!(track["type"], "Feature");
    assert_eq!(track["geometry"]["type"], "LineString");
    let coords = track["geometry"]["coordinates"].as_array().unwrap();
    assert_eq!(coords.len(), 17);
    assert_eq!(coords[0], json!(c1));
    assert_eq!(coords[10], json!(c2));
    let want: Vec<String> = times.iter().map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)).collect();
    assert_eq!(track["properties"]["times"], json!(want));
    assert_eq!(track["properties"]["first"], json!(want[0]));
    assert!(track["properties"]["distance_m"].as_f64().unwrap() > 0.0);
    let person = server.get(&format!("/v1/staff/{p}"));
    assert_eq!(person["member"]["id"], json!(p));
    assert_eq!(person["position"]["lon"], json!(c2[0]), "{person}");
    assert_eq!(person["stale"], true, "a fix of a past day is stale");

    // Patrol statistics of the unit grids.
    let stats = server.get(&format!("/v1/stats/patrol?date={day}"));
    assert_eq!(stats["level"], unit + 1);
    assert_eq!(stats["grids"].as_array().unwrap().len(), units.len());
    let (s1, s2) = (grid(&stats, &g1.code.to_string()), grid(&stats, &g2.code.to_string()));
    assert_eq!(s1["minutes_inside"], 5.5, "{s1}");
    assert_eq!(s1["visitors"], 2);
    assert_eq!(s2["minutes_inside"], 5.0, "{s2}");
    assert_eq!(s2["visitors"], 1);
    assert!(s1["coverage"].as_f64().unwrap() > 0.0 && s2["coverage"].as_f64().unwrap() > 0.0);
    let mut unvisited: Vec<String> = units.iter().map(|g| g.code.to_string()).filter(|c| *c != g1.code.to_string() && *c != g2.code.to_string()).collect();
    unvisited.sort();
    assert_eq!(stats["unvisited"], json!(unvisited));
    for code in &unvisited {
        let g = grid(&stats, code);
        assert_eq!((g["minutes_inside"].as_f64(), g["visitors"].as_u64()), (Some(0.0), Some(0)), "{g}");
    }
    // A larger distance covers more of g1.
    let wider = server.get(&format!("/v1/stats/patrol?date={day}&distance_m=200"));
    assert!(grid(&wider, &g1.code.to_string())["coverage"].as_f64() > s1["coverage"].as_f64());
    // The top level: one grid holds both.
    let top = server.get(&format!("/v1/stats/patrol?date={day}&level=1"));
    let top_grid = &top["grids"][0];
    assert!(g1.code.to_string().starts_with(top_grid["code"].as_str().unwrap()), "{top}");
    assert_eq!(top_grid["visitors"], 2);
    assert_eq!(top_grid["minutes_inside"], 11.0, "10 min of p (the 30 s g1→g2 step is inside the district too) and 1 of q");

    // The map layer: the same figures on the grids' polygons.
    let layer = server.get(&format!("/v1/stats/patrol?date={day}&format=geojson"));
    assert_eq!(layer["type"], "FeatureCollection");
    let features = layer["features"].as_array().unwrap();
    assert_eq!(features.len(), units.len());
    let f1 = features.iter().find(|f| f["properties"]["code"] == g1.code.to_string()).unwrap();
    assert_eq!(f1["geometry"]["type"], "MultiPolygon");
    for key in ["code", "name", "coverage", "minutes_inside", "visitors"] {
        assert_eq!(f1["properties"][key], s1[key], "{key}");
    }
    assert_eq!(layer["unvisited"], stats["unvisited"]);

    // Two days later day 1 is closed (written out); the open day goes out at shutdown.
    let later = day + Duration::days(2);
    server.post(vec![fix(&p, c2, at(later, 0)), fix(&p, c1, at(later, 60))]);
    let day_file = data.join("staff").join("tracks").join(format!("{day}.csv"));
    assert!(day_file.exists(), "a closed day is written to {}", day_file.display());
    let later_track = server.get(&format!("/v1/staff/{p}/track?date={later}"));
    server.stop();

    let server = Patrol::start(&data, &config);
    assert_eq!(server.get(&format!("/v1/staff/{p}/track?date={day}")), track, "the same track after a restart");
    assert_eq!(server.get(&format!("/v1/stats/patrol?date={day}")), stats, "the same statistics after a restart");
    assert_eq!(server.get(&format!("/v1/staff/{p}/track?date={later}")), later_track, "the open day was written at shutdown");
    // Retention (3 days): a point three days after `day` deletes its file.
    server.post(vec![fix(&p, c1, at(day + Duration::days(3), 0))]);
    assert!(!day_file.exists(), "{} outlived retention", day_file.display());
    let gone = server.get(&format!("/v1/staff/{p}/track?date={day}"));
    assert_eq!((gone["geometry"].clone(), gone["properties"]["points"].clone()), (Value::Null, json!(0)));
    server.stop();
}
