//! The viewer from the binary alone: the release or debug `citygrid` copied into a temporary
//! directory far from the source tree, started there with that directory as its working
//! directory, serves the page, its modules, MapLibre GL JS with its worker and CSS, and the
//! style's Latin glyphs, over a real socket.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::http::tcp_get as http_get;

#[test]
fn a_copied_binary_serves_the_viewer_maplibre_and_glyphs_from_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin").join("citygrid");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_citygrid"), &bin).unwrap();
    let work = dir.path().join("elsewhere");
    std::fs::create_dir_all(&work).unwrap();
    let mut child = Command::new(&bin)
        .args(["serve", "--demo", "--demo-preset", "tiny", "--bind", "127.0.0.1:0", "--data", "data"])
        .current_dir(&work)
        .env_remove("CITYGRID_VIEWER_DIR")
        .env_remove("CITYGRID_FONTS_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("citygrid listening on http://").unwrap_or_else(|| panic!("{line:?}")).to_owned();

    let page = http_get(&addr, "/viewer/");
    assert_eq!(page.status, 200u16);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    let html = String::from_utf8(page.body.clone()).unwrap();
    assert!(html.contains("vendor/maplibre-gl/maplibre-gl.css") && html.contains("app.js"), "{html}");
    for (path, content_type, needle) in [
        ("/viewer/app.js", "text/javascript; charset=utf-8", "maplibre-gl.mjs"),
        ("/viewer/api.js", "text/javascript; charset=utf-8", "export"),
        ("/viewer/style.css", "text/css; charset=utf-8", "{"),
        ("/viewer/vendor/maplibre-gl/maplibre-gl.mjs", "text/javascript; charset=utf-8", "v6.17.0"),
        ("/viewer/vendor/maplibre-gl/maplibre-gl-worker.mjs?v=6.17.0", "text/javascript; charset=utf-8", "MapLibre GL JS"),
        ("/viewer/vendor/maplibre-gl/maplibre-gl.css", "text/css; charset=utf-8", ".maplibregl-map"),
        ("/viewer/vendor/maplibre-gl/LICENSE.txt", "text/plain; charset=utf-8", "Copyright"),
    ] {
        let answer = http_get(&addr, path);
        assert_eq!(answer.status, 200u16, "{path}");
        assert_eq!(answer.header("content-type"), Some(content_type), "{path}");
        assert!(answer.header("etag").is_some(), "{path} has an ETag");
        let text = String::from_utf8_lossy(&answer.body);
        assert!(text.contains(needle), "{path} holds {needle:?}");
    }
    let glyphs = http_get(&addr, "/fonts/Open%20Sans%20Semibold,Noto%20Sans%20CJK%20SC%20Regular/0-255.pbf");
    assert_eq!(glyphs.status, 200u16);
    assert_eq!(glyphs.header("content-type"), Some("application/x-protobuf"));
    assert!(glyphs.body.len() > 10_000, "the Latin range has glyphs: {} bytes", glyphs.body.len());
    assert!(!work.join("web-viewer").exists() && !work.join("node_modules").exists(), "nothing installed beside it");

    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    assert!(child.wait().unwrap().success(), "graceful exit");
}
