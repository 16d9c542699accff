//! A real city from zero, as a GIS office brings it in on its first day, with the real binary
//! and no demo generator: an empty data directory is served (and says it has no grids), one
//! writer per directory, then `citygrid init` and `citygrid import` of a city package delivered
//! in CGCS2000 Gauss-Krüger (fixtures/city-gk: a zipped GBK Shapefile of grids with a
//! township-level 4xx street code, a CSV of components with GDAL's X = easting, zones in
//! GeoJSON, units, rules, calendar) — then every locate, route and a tile checked against the
//! package's own oracle (fixtures/city-gk/expected.csv, computed by construction with pyproj).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::server::{Server, serve};

fn request(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
    let a = common::http::tcp(addr, method, path, &[("Content-Type", "application/json")], body.unwrap_or("").as_bytes());
    let text = a.text();
    (a.status.as_u16(), serde_json::from_str(text.trim()).unwrap_or(serde_json::Value::String(text)))
}

fn citygrid(args: &[&str], data: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_citygrid")).args(args).arg("--data").arg(data).output().unwrap()
}

fn package() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/city-gk")
}

#[test]
fn an_empty_directory_is_served_and_has_one_writer() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&mut serve(&data));
    let (status, health) = request(&server.addr, "GET", "/health", None);
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["has_grids"], false, "{health}");
    assert!(health["message"].as_str().unwrap().contains("no grids yet"), "{health}");
    let (status, err) = request(&server.addr, "GET", "/v1/locate?lon=120.62&lat=31.32", None);
    assert_eq!((status, err["error"]["code"].as_str()), (503, Some("no_grids")), "{err}");
    assert!(!data.join("manifest.json").exists(), "nothing of a demo city, nothing at all, is written");

    // One writer per data directory: the CLI names the server that holds it.
    let out = citygrid(&["init", "--name", "星湖示范区"], &data);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("pid {}", server.child.id())) && err.contains("citygrid serve"), "{err}");
    drop(server);
    let out = citygrid(&["init", "--name", "星湖示范区"], &data);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = citygrid(&["init", "--name", "again"], &data);
    assert!(!out.status.success(), "a second init is refused");
}

#[test]
fn a_gauss_kruger_city_package_from_zero_answers_like_its_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = citygrid(&["init", "--name", "星湖示范区", "--code", "320509", "--crs", "EPSG:4549"], &data);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pkg = package();
    let out = citygrid(&["import", pkg.to_str().unwrap()], &data);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(report.contains("imported: the city package is current"), "{report}");
    assert!(!report.contains("error:"), "a clean package imports without errors:\n{report}");

    let server = Server::start(&mut serve(&data));
    let (_, health) = request(&server.addr, "GET", "/health", None);
    assert_eq!(health["has_grids"], true, "{health}");
    assert!(health["city"].as_str().unwrap().contains("星湖示范区"), "{health}");
    assert_eq!(health["levels"].as_array().unwrap().iter().map(|l| l["grids"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 3, 7, 44]);
    assert!(!health.to_string().contains("demo"), "nothing of the demo: {health}");

    let mut reader = csv::Reader::from_path(pkg.join("expected.csv")).unwrap();
    let headers = reader.headers().unwrap().clone();
    let (mut located, mut routed) = (0, 0);
    for row in reader.records() {
        let row = row.unwrap();
        let get = |name: &str| row.get(headers.iter().position(|h| h == name).unwrap()).unwrap().to_owned();
        let (lon, lat) = (get("lon"), get("lat"));
        match get("kind").as_str() {
            "locate" => {
                let (status, answer) = request(&server.addr, "GET", &format!("/v1/locate?lon={lon}&lat={lat}"), None);
                assert_eq!(status, 200, "{answer}");
                assert_eq!(answer["grid"]["code"], get("unit_grid"), "{lon},{lat}: {}", get("note"));
                let chain: Vec<&str> = answer["chain"].as_array().unwrap().iter().map(|g| g["code"].as_str().unwrap()).collect();
                assert_eq!(chain, ["320509", get("street").as_str(), get("community").as_str(), get("unit_grid").as_str()]);
                // The same point in the city's own CRS.
                let (x, y) = (get("easting"), get("northing"));
                let (_, same) = request(&server.addr, "GET", &format!("/v1/locate?x={x}&y={y}&crs=EPSG:4549"), None);
                assert_eq!(same["grid"]["code"], get("unit_grid"), "{x},{y}");
                located += 1;
            }
            "outside" => {
                let (status, answer) = request(&server.addr, "GET", &format!("/v1/locate?lon={lon}&lat={lat}"), None);
                assert_eq!((status, answer["error"]["code"].as_str()), (404, Some("outside_coverage")), "{answer}");
            }
            kind @ ("route_event" | "route_component") => {
                let case = if kind == "route_event" {
                    serde_json::json!({"lon": lon.parse::<f64>().unwrap(), "lat": lat.parse::<f64>().unwrap(), "event_type": get("case_type"), "urgency": get("urgency"), "reported_at": "2026-12-08T10:00:00+08:00"})
                } else {
                    serde_json::json!({"lon": lon.parse::<f64>().unwrap(), "lat": lat.parse::<f64>().unwrap(), "component_code": get("component_code"), "reported_at": "2026-12-08T10:00:00+08:00"})
                };
                let (status, answer) = request(&server.addr, "POST", "/v1/cases/route", Some(&case.to_string()));
                assert_eq!(status, 200, "{case}: {answer}");
                assert_eq!(answer["responsible_unit"]["name"], get("expected_unit"), "{case}: {}", get("note"));
                // The same case from the city's own CRS (x/y in EPSG:4549), as its GIS office has it.
                let mut in_gk = case.clone();
                let gk = in_gk.as_object_mut().unwrap();
                gk.remove("lon");
                gk.remove("lat");
                gk.insert("x".into(), get("easting").parse::<f64>().unwrap().into());
                gk.insert("y".into(), get("northing").parse::<f64>().unwrap().into());
                gk.insert("crs".into(), "EPSG:4549".into());
                let (status, same) = request(&server.addr, "POST", "/v1/cases/route", Some(&in_gk.to_string()));
                assert_eq!(status, 200, "{in_gk}: {same}");
                assert_eq!(same["responsible_unit"], answer["responsible_unit"], "{in_gk}");
                routed += 1;
            }
            other => panic!("unknown kind {other}"),
        }
    }
    assert!(located >= 60 && routed >= 20, "{located} located, {routed} routed");

    // A tile over the district: grids and components decoded from the MVT.
    let (z, x, y) = tile_of(120.62, 31.32, 14);
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    write!(stream, "GET /tiles/grids,components/{z}/{x}/{y}.mvt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(response.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&response[..split]));
    let layers = common::mvt::decode(&response[split..]);
    assert!(layers.contains_key("grids") && layers.contains_key("components"), "{:?}", layers.keys());
    assert!(layers.values().all(|l| !l.features.is_empty()), "{:?}", layers.keys());
}

fn tile_of(lon: f64, lat: f64, z: u32) -> (u32, u32, u32) {
    let n = f64::from(1u32 << z);
    let r = lat.to_radians();
    (z, ((lon + 180.0) / 360.0 * n) as u32, ((1.0 - (r.tan() + 1.0 / r.cos()).ln() / std::f64::consts::PI) / 2.0 * n) as u32)
}

#[test]
fn components_may_come_before_their_grids_and_every_dataset_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let pkg = package();
    let file = |name: &str| pkg.join(name).to_str().unwrap().to_owned();
    let out = citygrid(&["init", "--name", "星湖示范区", "--code", "320509", "--crs", "EPSG:4549"], &data);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Components first: no grids to place them in yet, their recorded grids are kept.
    let out = citygrid(&["import", "components", &file("components.csv")], &data);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("300 kept") && report.contains("no_grids_yet"), "{report}");
    {
        let server = Server::start(&mut serve(&data));
        let (_, health) = request(&server.addr, "GET", "/health", None);
        assert_eq!((health["has_grids"].as_bool(), health["layers"][1]["features"].as_u64()), (Some(false), Some(300)), "{health}");
        let (status, answer) = request(&server.addr, "GET", "/v1/components/3205090118000004", None);
        assert_eq!(status, 200, "{answer}");
    }
    // Then the grids: each component's recorded grid now resolves.
    for (dataset, name) in [("grids", "grids.zip"), ("zones", "zones.geojson"), ("units", "units.csv"), ("rules", "rules.csv"), ("calendar", "calendar.toml")] {
        let out = citygrid(&["import", dataset, &file(name)], &data);
        assert!(out.status.success(), "{dataset}: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    let server = Server::start(&mut serve(&data));
    let (_, health) = request(&server.addr, "GET", "/health", None);
    assert_eq!(health["has_grids"], true, "{health}");
    let mut reader = csv::Reader::from_path(pkg.join("components.csv")).unwrap();
    let mut checked = 0;
    for row in reader.records().take(40) {
        let row = row.unwrap();
        let (code, grid) = (row.get(0).unwrap(), row.get(7).unwrap());
        let (status, answer) = request(&server.addr, "GET", &format!("/v1/components/{code}"), None);
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["grid"].as_str(), Some(grid), "{code}: the recorded grid survived the import order: {answer}");
        assert!(answer["located_grid"].is_null(), "{code} lies in its recorded grid: {answer}");
        checked += 1;
    }
    assert_eq!(checked, 40);
    let (_, layers) = request(&server.addr, "GET", "/v1/layers", None);
    let current: Vec<(String, u64)> =
        layers["layers"].as_array().unwrap().iter().filter_map(|l| Some((l["name"].as_str()?.to_owned(), l["current"].as_u64()?))).collect();
    assert_eq!(current.len(), 7, "every dataset has a version: {current:?}");
}

#[test]
fn a_real_citys_package_over_the_demo_replaces_it_whole() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_citygrid")).args(["demo", "--preset", "tiny", "--out"]).arg(&data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The real city's package without zones and without a responsibility list.
    let pkg = dir.path().join("pkg");
    std::fs::create_dir(&pkg).unwrap();
    for name in ["city.toml", "grids.zip", "components.csv", "units.csv", "calendar.toml"] {
        std::fs::copy(package().join(name), pkg.join(name)).unwrap();
    }
    let out = citygrid(&["import", pkg.to_str().unwrap()], &data);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("another city") && report.contains("zones, rules"), "{report}");
    let server = Server::start(&mut serve(&data));
    let (_, health) = request(&server.addr, "GET", "/health", None);
    assert!(!health.to_string().contains("demo"), "nothing of the demo is left: {health}");
    let zones = health["layers"].as_array().unwrap().iter().find(|l| l["name"] == "zones").unwrap();
    assert_eq!((zones["version"].as_u64(), zones["features"].as_u64()), (None, Some(0)), "the demo's road sections are gone: {health}");
    assert!(health["rules_version"].is_null(), "{health}");
    let case = serde_json::json!({"lon": 120.6162683612, "lat": 31.3254224106, "event_type": "0401", "urgency": "紧急"});
    let (status, answer) = request(&server.addr, "POST", "/v1/cases/route", Some(&case.to_string()));
    assert_eq!((status, answer["error"]["code"].as_str()), (503, Some("rules_unavailable")), "no demo rule routes a real case: {answer}");
    // The demo's versions are kept (history), not current.
    let (_, layers) = request(&server.addr, "GET", "/v1/layers/zones/versions", None);
    assert_eq!((layers["versions"].as_array().unwrap().len(), layers["current"].as_u64()), (1, None), "{layers}");
}

#[test]
fn read_only_commands_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("no-such-city");
    for args in [&["locate", "120.6", "31.3"][..], &["route", "120.6", "31.3", "--type", "0102"], &["validate", "x.geojson"]] {
        let out = citygrid(args, &data);
        assert!(!out.status.success(), "{args:?}");
        assert!(!data.exists(), "{args:?} created {}", data.display());
    }
    let out = citygrid(&["locate", "120.6", "31.3"], &data);
    assert!(String::from_utf8_lossy(&out.stderr).contains("citygrid init"), "{}", String::from_utf8_lossy(&out.stderr));
}
