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
