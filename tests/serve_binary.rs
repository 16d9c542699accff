//! The real `citygrid` binary: `serve --demo` on an empty directory, /health over a socket,
//! a lookup over the socket and the same answer from `citygrid locate`, and graceful shutdown on SIGTERM. (An empty directory without `--demo`: tests/city_from_zero.rs.)

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

fn http_get(addr: &str, path: &str) -> (u16, String) {
    let a = common::http::tcp_get(addr, path);
    (a.status.as_u16(), a.text())
}

#[test]
fn serve_demo_generates_serves_health_and_shuts_down_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Zoom rules from the config file's [tiles] section.
    let config = dir.path().join("citygrid.toml");
    std::fs::write(&config, "[tiles]\nmax_zoom = 18\ncomponent_full_zoom = 17\ncache_mb = 16\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_citygrid"))
        .args(["serve", "--demo", "--demo-preset", "tiny", "--bind", "127.0.0.1:0", "--data"])
        .arg(&data)
        .arg("--config")
        .arg(&config)
        .arg("--viewer-dir")
        .arg(dir.path().join("no-viewer"))
        .arg("--fonts-dir")
        .arg(dir.path().join("fonts"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The server prints its address once it is listening: no sleeps needed.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("citygrid listening on http://").unwrap_or_else(|| panic!("{line:?}")).to_owned();

    let (status, body) = http_get(&addr, "/health");
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(health["status"], "ok");
    assert_eq!(health["layers"][0]["name"], "grids");
    assert_eq!(health["layers"][0]["version"], 1);
    assert!(data.join("manifest.json").exists(), "--demo wrote the data directory");

    let (status, body) = http_get(&addr, "/tiles/components");
    assert_eq!(status, 200, "{body}");
    let tilejson: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    assert_eq!(tilejson["maxzoom"], 18, "max_zoom from the config file: {tilejson}");
    // An empty viewer dir: the compiled-in MapLibre answers (glyphs: tests/viewer_binary.rs).
    let (status, body) = http_get(&addr, "/viewer/vendor/maplibre-gl/maplibre-gl.css");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(".maplibregl-map"), "{body}");
    let (status, body) = http_get(&addr, "/tiles/components/19/0/0.mvt");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("tile_out_of_range"), "{body}");

    // A lookup over the socket, and the same answer from `citygrid locate` on the same data.
    let (status, body) = http_get(&addr, "/v1/components?bbox=-180,-90,180,90&limit=1");
    assert_eq!(status, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    let at = &page["components"][0]["location"];
    let (lon, lat) = (at["lon"].to_string(), at["lat"].to_string());
    let (status, body) = http_get(&addr, &format!("/v1/locate?lon={lon}&lat={lat}"));
    assert_eq!(status, 200, "{body}");
    let over_http: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    assert_eq!(over_http["grid"]["code"], page["components"][0]["grid"], "a component lies in its recorded grid");
    let out = Command::new(env!("CARGO_BIN_EXE_citygrid")).args(["locate", &lon, &lat, "--data"]).arg(&data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let on_cli: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(on_cli["grid"], over_http["grid"]);
    assert_eq!(on_cli["chain"], over_http["chain"]);
    // Outside the city: the error JSON and exit status 2.
    let out = Command::new(env!("CARGO_BIN_EXE_citygrid")).args(["locate", "0", "0", "--data"]).arg(&data).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(err["error"]["code"], "outside_coverage");

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    assert!(exit.success(), "graceful exit on SIGTERM: {exit:?}\n{log}");
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("shut down"), "{log}");
}

#[test]
fn serve_refuses_impossible_zoom_rules_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("citygrid.toml");
    std::fs::write(&config, "[tiles]\nlevel_min_zoom = [0, 13, 12]\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_citygrid"))
        .args(["serve", "--demo", "--bind", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[tiles]") && err.contains("level_min_zoom"), "{err}");
    assert!(!dir.path().join("data").exists(), "nothing generated with a bad config");
}

#[test]
fn help_explains_the_commands() {
    let out = Command::new(env!("CARGO_BIN_EXE_citygrid")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for word in ["serve", "demo", "网格", "--demo"] {
        assert!(help.contains(word), "{word} missing from --help:\n{help}");
    }
}
