//! `serve --demo` serves the demo city's own street map: the real binary on the tiny demo, the
//! style has the basemap under the grids, and the z14 tile at the city's centre decodes (prost)
//! to `transportation` lines with classes and `transportation_name` with road names. When GDAL
//! is installed (CI: gdal-bin), `ogrinfo` reads the MBTiles file the demo wrote as an
//! independent oracle.

mod common;

use std::process::Command;

use common::server::{Server, serve_tiny_demo};

use prost::Message;
use serde_json::Value;

use citygrid::tiles::vector_tile::Tile;

fn http_get(addr: &str, path: &str) -> (u16, Vec<u8>) {
    let a = common::http::tcp_get(addr, path);
    (a.status.as_u16(), a.body)
}

fn tile_at(lon: f64, lat: f64, z: u8) -> (u32, u32) {
    let n = f64::from(1u32 << z);
    let r = lat.to_radians();
    (((lon + 180.0) / 360.0 * n) as u32, ((1.0 - (r.tan() + 1.0 / r.cos()).ln() / std::f64::consts::PI) / 2.0 * n) as u32)
}

#[test]
fn serve_demo_has_streets_on_the_first_screen() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&mut serve_tiny_demo(&data));
    let addr = server.addr.clone();
    let result = std::panic::catch_unwind(|| {
        let (status, body) = http_get(&addr, "/styles/citygrid.json");
        assert_eq!(status, 200);
        let style: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(style["sources"]["basemap-demo-streets"]["type"], "vector");
        let layers = style["layers"].as_array().unwrap();
        let road = layers.iter().position(|l| l["id"] == "basemap-demo-streets-road").expect("road layer");
        let grids = layers.iter().position(|l| l["source"] == "citygrid").unwrap();
        assert!(road < grids, "streets under the grids");

        let (status, body) = http_get(&addr, "/basemaps/demo-streets");
        assert_eq!(status, 200);
        let tj: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((tj["minzoom"].as_u64(), tj["maxzoom"].as_u64()), (Some(10), Some(16)));

        let (_, body) = http_get(&addr, "/health");
        let health: Value = serde_json::from_slice(&body).unwrap();
        let (lon, lat) = (health["center"][0].as_f64().unwrap(), health["center"][1].as_f64().unwrap());
        let (x, y) = tile_at(lon, lat, 14);
        let (status, body) = http_get(&addr, &format!("/basemaps/demo-streets/14/{x}/{y}.pbf"));
        assert_eq!(status, 200);
        let tile = Tile::decode(body.as_slice()).expect("an identity MVT for a client without gzip");
        let layer = |name: &str| tile.layers.iter().find(|l| l.name == name).unwrap_or_else(|| panic!("no {name} layer"));
        let roads = layer("transportation");
        assert!(roads.features.len() >= 4, "{} roads", roads.features.len());
        let classes: Vec<&str> = roads.values.iter().filter_map(|v| v.string_value.as_deref()).collect();
        assert!(classes.contains(&"minor"), "{classes:?}");
        let names = layer("transportation_name");
        assert!(names.values.iter().filter_map(|v| v.string_value.as_deref()).any(|n| n.ends_with('路') || n.ends_with('街') || n.ends_with("大道")));
        assert!(!layer("landuse").features.is_empty());
    });
    drop(server);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }

    // GDAL's MBTiles driver reads the file the demo wrote (skipped without GDAL).
    let file = data.join("basemaps/demo-streets.mbtiles");
    assert!(file.exists());
    match Command::new("ogrinfo").args(["-ro", "-al", "-so"]).arg(&file).output() {
        Err(_) => eprintln!("ogrinfo not installed: GDAL oracle skipped"),
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
            for want in ["Layer name: transportation", "Layer name: transportation_name", "Layer name: landuse", "name: String"] {
                assert!(text.contains(want), "{want} in:\n{text}");
            }
            let count = text
                .split("Layer name: transportation\n")
                .nth(1)
                .and_then(|t| t.lines().find_map(|l| l.strip_prefix("Feature Count: ")))
                .and_then(|n| n.trim().parse::<u64>().ok())
                .unwrap_or(0);
            assert!(count > 0, "GDAL counts transportation features:\n{text}");
        }
    }
}
