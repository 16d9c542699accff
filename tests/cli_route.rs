//! `citygrid route` through the real binary on the tiny demo city.

mod common;

use std::process::Command;

use serde_json::Value;

fn run(args: &[&str], data: &std::path::Path) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_citygrid")).args(args).arg("--data").arg(data).output().unwrap();
    let body = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code().unwrap(), body)
}

#[test]
fn route_prints_the_answer_and_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    common::write_tiny(dir.path());
    let row = include_str!("../fixtures/routing/expected.csv").lines().find(|l| l.starts_with("D01,")).unwrap();
    let cols: Vec<&str> = row.split(',').collect();
    let (code, a) = run(&["route", cols[1], cols[2], "--type", "0102", "--at", "2026-11-20T17:00:00+08:00"], dir.path());
    assert_eq!(code, 0, "{a}");
    assert_eq!(a["responsible_unit"]["name"], "长桥街道环卫所");
    assert_eq!(a["deadline"]["due"], "2026-11-23T12:00:00+08:00");
    // The same point as X Y in a projected CRS (EPSG:4549), for route and locate.
    let (x, y) = citygrid::crs::Crs::parse("EPSG:4549").unwrap().from_wgs84(cols[1].parse().unwrap(), cols[2].parse().unwrap()).unwrap();
    let (x, y) = (x.to_string(), y.to_string());
    let (code, gk) = run(&["route", &x, &y, "--crs", "EPSG:4549", "--type", "0102", "--at", "2026-11-20T17:00:00+08:00"], dir.path());
    assert_eq!(code, 0, "{gk}");
    assert_eq!((&gk["responsible_unit"], &gk["grid"], &gk["point"]["crs"]), (&a["responsible_unit"], &a["grid"], &Value::from("EPSG:4549")));
    let (code, by_lonlat) = run(&["locate", cols[1], cols[2]], dir.path());
    assert_eq!(code, 0, "{by_lonlat}");
    let (code, by_xy) = run(&["locate", &x, &y, "--crs", "epsg:4549"], dir.path());
    assert_eq!(code, 0, "{by_xy}");
    assert_eq!(by_xy["grid"], by_lonlat["grid"]);
    let (code, e) = run(&["locate", cols[1], cols[2], "--crs", "EPSG:4549"], dir.path());
    assert_eq!((code, e["error"]["code"].as_str()), (2, Some("invalid_parameter")), "lon/lat read as metres are far outside the zone: {e}");
    let (code, a) = run(&["route", "--component", "3205060101000001", "--urgency", "紧急"], dir.path());
    assert_eq!(code, 0, "{a}");
    assert_eq!(a["deadline"]["limit_code"], "2wh");
    for (args, error) in [
        (vec!["route", "120.5", "31.26", "--type", "0102"], "outside_coverage"),
        (vec!["route", cols[1], cols[2], "--type", "0188"], "unknown_case_type"),
        (vec!["route", cols[1], cols[2], "--type", "0102", "--urgency", "soon"], "invalid_parameter"),
        (vec!["route", cols[1], cols[2]], "missing_parameter"),
    ] {
        let (code, e) = run(&args, dir.path());
        assert_eq!(code, 2, "{args:?}: {e}");
        assert_eq!(e["error"]["code"], error, "{args:?}: {e}");
    }
}

#[test]
fn route_file_prints_one_line_per_case_like_the_batch_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    common::write_tiny(dir.path());
    let row = include_str!("../fixtures/routing/expected.csv").lines().find(|l| l.starts_with("D01,")).unwrap();
    let cols: Vec<&str> = row.split(',').collect();
    let cases = dir.path().join("cases.csv");
    std::fs::write(
        &cases,
        format!("id,lon,lat,event_type,reported_at\nA,{lon},{lat},0102,2026-11-20T17:00:00+08:00\nB,{lon},{lat},0188,\n", lon = cols[1], lat = cols[2]),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_citygrid")).args(["route", "--file"]).arg(&cases).arg("--data").arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> = String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!((lines[0]["id"].as_str(), lines[0]["ok"].as_bool()), (Some("A"), Some(true)));
    assert_eq!(lines[0]["answer"]["responsible_unit"]["name"], "长桥街道环卫所");
    assert_eq!(lines[0]["answer"]["deadline"]["due"], "2026-11-23T12:00:00+08:00");
    assert_eq!(lines[1]["error"]["code"], "unknown_case_type");
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(summary.contains("2 cases: 1 routed, 1 refused"), "{summary}");
}
