//! Tiles across a switch and on a miss, over the router: the tiles being looked at are encoded
//! from the new snapshot before it is served (hits, with the new version in their ETag), a miss
//! answers gzip at once to a browser (which takes gzip and brotli) and brotli once its copy is
//! made, and every answer decodes to the same tile.

mod common;

use std::io::Read;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use bytes::Bytes;
use http_body_util::BodyExt;
use tower::ServiceExt;

use common::ingest::{put, server};

fn tile_of(lon: f64, lat: f64, z: u8) -> (u32, u32) {
    let n = (1u64 << z) as f64;
    let phi = lat.to_radians();
    let x = ((lon + 180.0) / 360.0 * n).floor() as u32;
    let y = ((1.0 - (phi.tan() + 1.0 / phi.cos()).ln() / std::f64::consts::PI) / 2.0 * n).floor() as u32;
    (x, y)
}

async fn send(app: &axum::Router, uri: &str, accept: Option<&str>) -> (StatusCode, HeaderMap, Bytes) {
    let mut req = Request::builder().uri(uri);
    if let Some(a) = accept {
        req = req.header("accept-encoding", a);
    }
    let response = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let (parts, body) = response.into_parts();
    (parts.status, parts.headers, body.collect().await.unwrap().to_bytes())
}

/// A counter of `GET /metrics`.
async fn counter(app: &axum::Router, name: &str) -> f64 {
    let (_, _, body) = send(app, "/metrics", None).await;
    let text = String::from_utf8(body.to_vec()).unwrap();
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|rest| rest.trim().parse().ok())).unwrap_or_else(|| panic!("no {name} in /metrics"))
}

fn busy_tile_uri(s: &common::ingest::Server, z: u8) -> String {
    let world = s.handle.load();
    let c = world.city.components[world.city.components.len() / 2].location;
    let (x, y) = tile_of(c.x, c.y, z);
    format!("/tiles/grids,zones,components/{z}/{x}/{y}.mvt")
}

#[tokio::test]
async fn the_tiles_being_looked_at_are_hits_right_after_a_switch() {
    let s = server();
    let uris: Vec<String> = (12..=18).map(|z| busy_tile_uri(&s, z)).collect();
    let mut before = Vec::new();
    for uri in &uris {
        let (status, headers, raw) = send(&s.app, uri, None).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        let etag = headers["etag"].to_str().unwrap().to_owned();
        assert!(etag.contains("-c1-"), "{etag}");
        before.push(raw);
    }

    // The same components again: a new version (2), switched in.
    let fgb = std::fs::read(s.dir.path().join("layers/components/1.fgb")).unwrap();
    let (status, answer) = put(&s.app, "/v1/layers/components", Some("application/flatgeobuf"), fgb).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(s.handle.load().versions.get("components"), Some(2));

    let hits = counter(&s.app, "citygrid_tile_cache_hits_total").await;
    let misses = counter(&s.app, "citygrid_tile_cache_misses_total").await;
    for (uri, raw) in uris.iter().zip(&before) {
        let (status, headers, again) = send(&s.app, uri, None).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        let etag = headers["etag"].to_str().unwrap();
        assert!(etag.contains("-c2-"), "the new version's tile, not the old one's: {etag}");
        assert_eq!(&again, raw, "{uri}: the same components draw the same tile");
    }
    assert_eq!(counter(&s.app, "citygrid_tile_cache_misses_total").await, misses, "no tile looked at before the switch missed after it");
    assert_eq!(counter(&s.app, "citygrid_tile_cache_hits_total").await, hits + uris.len() as f64);
}

#[tokio::test]
async fn a_missed_tile_goes_out_gzipped_to_a_browser_then_brotli() {
    let s = server();
    let uri = busy_tile_uri(&s, 16);
    let browser = Some("gzip, deflate, br");
    let (status, headers, gz) = send(&s.app, &uri, browser).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-encoding"], "gzip", "a miss does not wait for brotli");
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut unzipped).unwrap();
    let (_, headers, raw) = send(&s.app, &uri, None).await;
    assert!(headers.get("content-encoding").is_none());
    assert_eq!(unzipped, raw);

    // The background copy: brotli from then on (a few milliseconds; allow a loaded machine).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (status, headers, body) = send(&s.app, &uri, browser).await;
        assert_eq!(status, StatusCode::OK);
        if headers["content-encoding"] == "br" {
            let mut unbrotli = Vec::new();
            brotli::Decompressor::new(&body[..], 4096).read_to_end(&mut unbrotli).unwrap();
            assert_eq!(unbrotli, raw.to_vec());
            break;
        }
        assert_eq!(headers["content-encoding"], "gzip");
        assert!(std::time::Instant::now() < deadline, "no brotli copy 20 s after the miss");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A dense tile's layers are compressed apart and stitched into one gzip member, its components
/// part reused by the other layer lists of that tile: every answer, to a browser, a gzip-only
/// client and one that takes nothing, in both datums, decodes (single-member and multi-member
/// gzip alike) to the tile the tile set encodes directly.
#[tokio::test]
async fn stitched_tiles_decode_to_the_directly_encoded_tile_for_every_client() {
    use citygrid::crs::Datum;
    use citygrid::tiles::Layer;
    let s = server();
    let world = s.handle.load();
    let c = world.city.components[world.city.components.len() / 2].location;
    let mut compared = 0;
    for (datum, query) in [(Datum::Wgs84, ""), (Datum::Gcj02, "?datum=gcj02")] {
        for z in [14u8, 16, 17] {
            let (lon, lat) = datum.from_wgs84(c.x, c.y);
            let (x, y) = tile_of(lon, lat, z);
            // Components first: the later lists find its part made.
            for (names, layers) in
                [("components", &[Layer::Components][..]), ("grids,components", &[Layer::Grids, Layer::Components]), ("grids,zones,components", &Layer::ALL)]
            {
                let direct = world.tiles.encode(&world.city, layers, z, x, y, datum).unwrap().expect("a tile with components");
                let uri = format!("/tiles/{names}/{z}/{x}/{y}.mvt{query}");
                for accept in [Some("gzip, deflate, br"), Some("gzip"), None] {
                    let (status, headers, body) = send(&s.app, &uri, accept).await;
                    assert_eq!(status, StatusCode::OK, "{uri}");
                    let encoding = headers.get("content-encoding").map(|v| v.to_str().unwrap().to_owned());
                    match encoding.as_deref() {
                        Some("gzip") => {
                            let (mut single, mut multi) = (Vec::new(), Vec::new());
                            flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut single).unwrap();
                            flate2::read::MultiGzDecoder::new(&body[..]).read_to_end(&mut multi).unwrap();
                            assert_eq!(single, direct, "{uri} {accept:?}: one gzip member holds the whole tile");
                            assert_eq!(multi, direct, "{uri} {accept:?}");
                        }
                        Some("br") => {
                            let mut unbrotli = Vec::new();
                            brotli::Decompressor::new(&body[..], 4096).read_to_end(&mut unbrotli).unwrap();
                            assert_eq!(unbrotli, direct, "{uri} {accept:?}");
                        }
                        None => assert_eq!(body.to_vec(), direct, "{uri} {accept:?}"),
                        Some(other) => panic!("{uri}: unexpected encoding {other}"),
                    }
                    let checksum = format!("-{:08x}\"", crc32fast::hash(&direct));
                    assert!(headers["etag"].to_str().unwrap().ends_with(&checksum), "{uri}: the ETag's checksum is the tile's CRC-32");
                    compared += 1;
                }
            }
        }
    }
    assert_eq!(compared, 2 * 3 * 3 * 3);
    assert!(world.tiles.component_parts_size().1 > 0, "the dense tiles' components parts are kept");
}

/// The components parts belong to the components layer of a snapshot: a rebuild that keeps the
/// components (a grids or zones switch) keeps them, one that rebuilds the components starts
/// with none.
#[test]
fn a_rebuild_keeping_the_components_keeps_their_parts() {
    use citygrid::crs::Datum;
    use citygrid::tiles::Layer;
    let s = server();
    let world = s.handle.load();
    let c = world.city.components[world.city.components.len() / 2].location;
    for z in 12..=18u8 {
        let (x, y) = tile_of(c.x, c.y, z);
        world.tiles.encode_parts(&world.city, &[Layer::Components], z, x, y, Datum::Wgs84).unwrap();
    }
    let held = world.tiles.component_parts_size();
    assert!(held.1 > 0, "a dense tile's components part is kept");
    let grids_switch = world.tiles.rebuild(&world.city, &[Layer::Grids, Layer::Zones]);
    assert_eq!(grids_switch.component_parts_size(), held);
    let components_switch = world.tiles.rebuild(&world.city, &[Layer::Components]);
    assert_eq!(components_switch.component_parts_size(), (0, 0));
}
