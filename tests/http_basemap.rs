//! Basemaps from local files (`serve --basemap`), through the real router: MBTiles raster
//! (the TMS row flip: a tile stored at a known row comes back at its XYZ address), MBTiles
//! vector (gzip'd MVT passed through or decoded, decoded here with the prost types), PMTiles
//! v3 with leaf directories, lazy reads of a PMTiles file with a multi-gigabyte sparse tail
//! (only header, directories and the tile are read), TileJSON with the client's URL, 304 on
//! If-None-Match, 204 for a missing tile, JSON errors, the style with the basemaps under the
//! grids (checked with MapLibre's gl-style-validate when it is installed), and bad files
//! refused with their name.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use axum::http::{HeaderMap, StatusCode, header};
use prost::Message;
use serde_json::{Value, json};

use citygrid::basemap::pmtiles::{self, Compression, WriteOptions};
use citygrid::basemap::{Basemap, Basemaps};
use citygrid::http::{AppState, router};
use citygrid::tiles::vector_tile::{Tile, tile};

async fn get(app: &axum::Router, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Vec<u8>) {
    let a = common::http::get_with(app, uri, headers).await;
    (a.status, a.headers, a.body)
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

/// A PNG-looking blob, distinct per tag.
fn png(tag: u8) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
    b.extend([tag; 40]);
    b
}

/// An MVT with one layer `transportation` holding one line feature `class=<class>`.
fn mvt(class: &str) -> Vec<u8> {
    let layer = tile::Layer {
        version: 2,
        name: "transportation".into(),
        features: vec![tile::Feature { id: Some(1), tags: vec![0, 0], r#type: Some(tile::GeomType::Linestring as i32), geometry: vec![9, 0, 0, 10, 100, 100] }],
        keys: vec!["class".into()],
        values: vec![tile::Value { string_value: Some(class.into()), ..Default::default() }],
        extent: Some(4096),
    };
    Tile { layers: vec![layer] }.encode_to_vec()
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// Writes an MBTiles file: `meta` rows and `tiles` as (z, x, TMS row, bytes).
fn mbtiles(path: &Path, meta: &[(&str, &str)], tiles: &[(u8, u32, u32, Vec<u8>)]) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(
        "CREATE TABLE metadata (name TEXT, value TEXT);
         CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB);
         CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row);",
    )
    .unwrap();
    for (k, v) in meta {
        c.execute("INSERT INTO metadata VALUES (?1, ?2)", [k, v]).unwrap();
    }
    for (z, x, row, data) in tiles {
        c.execute("INSERT INTO tiles VALUES (?1, ?2, ?3, ?4)", rusqlite::params![z, x, row, data]).unwrap();
    }
}

/// The tiny demo city with these basemap files.
fn app_with(dir: &Path, files: &[PathBuf]) -> axum::Router {
    let world = common::tiny_world(&dir.join("data"));
    router(AppState::new(world).with_basemaps(Basemaps::open(files).unwrap()))
}

/// An imagery MBTiles: z0–z2, tiles at z2 x1 TMS rows 2 and 1 (XYZ rows 1 and 2).
fn imagery(dir: &Path) -> PathBuf {
    let path = dir.join("Wuzhong Imagery 2024.mbtiles");
    mbtiles(
        &path,
        &[("name", "吴中区影像 2024"), ("format", "png"), ("minzoom", "0"), ("maxzoom", "2"), ("bounds", "120.3,31.0,120.9,31.4"), ("attribution", "测绘院")],
        &[(2, 1, 2, png(1)), (2, 1, 1, png(2))],
    );
    path
}

/// A vector MBTiles of gzip'd MVT (as planetiler writes): z14 x13 XYZ row 6 (TMS 16383-6).
fn streets(dir: &Path) -> PathBuf {
    let path = dir.join("streets.mbtiles");
    // The OpenMapTiles layers of a city extract, without landcover and waterway.
    let layers: Vec<Value> = ["water", "landuse", "park", "building", "transportation", "transportation_name", "place"]
        .iter()
        .map(|id| json!({"id": id, "fields": {"class": "String"}, "minzoom": 0, "maxzoom": 14}))
        .collect();
    let json = json!({"vector_layers": layers}).to_string();
    mbtiles(
        &path,
        &[("name", "OSM 吴中"), ("format", "pbf"), ("minzoom", "0"), ("maxzoom", "14"), ("json", &json), ("center", "120.6,31.2,13")],
        &[(14, 13, (1 << 14) - 1 - 6, gzip(&mvt("primary")))],
    );
    path
}

#[tokio::test]
async fn raster_mbtiles_tiles_come_back_at_their_xyz_address_with_etags() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with(dir.path(), &[imagery(dir.path())]);
    // Stored at TMS row 2 of z2 = XYZ row 1; TMS row 1 = XYZ row 2.
    let (status, h, body) = get(&app, "/basemaps/wuzhong-imagery-2024/2/1/1.png", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, png(1));
    assert_eq!(h[header::CONTENT_TYPE], "image/png");
    assert!(h.get(header::CONTENT_ENCODING).is_none());
    assert_eq!(h[header::CACHE_CONTROL], "public, max-age=3600");
    let etag = h[header::ETAG].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && !etag.starts_with("W/"), "a strong ETag: {etag}");
    let (_, _, body) = get(&app, "/basemaps/wuzhong-imagery-2024/2/1/2", &[]).await;
    assert_eq!(body, png(2), "without an extension too, and the other row");
    let (status, _, body) = get(&app, "/basemaps/wuzhong-imagery-2024/2/1/1.png", &[("if-none-match", &etag)]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    // A tile the file lacks: 204, nothing to draw. Past the zoom's grid: 400 JSON.
    let (status, _, body) = get(&app, "/basemaps/wuzhong-imagery-2024/2/0/0.png", &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(body.is_empty());
    let (status, _, body) = get(&app, "/basemaps/wuzhong-imagery-2024/2/4/0.png", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json_of(&body)["error"]["code"], "tile_out_of_range");
    let (status, _, body) = get(&app, "/basemaps/nope/2/1/1.png", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let e = json_of(&body);
    assert_eq!(e["error"]["code"], "unknown_basemap");
    assert_eq!(e["error"]["details"]["basemaps"], json!(["wuzhong-imagery-2024"]));
}

#[tokio::test]
async fn vector_mbtiles_pass_gzip_through_or_decode_it() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with(dir.path(), &[streets(dir.path())]);
    let uri = "/basemaps/streets/14/13/6.pbf";
    let (status, h, body) = get(&app, uri, &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h[header::CONTENT_ENCODING], "gzip");
    assert_eq!(h[header::CONTENT_TYPE], "application/vnd.mapbox-vector-tile");
    assert_eq!(body, gzip(&mvt("primary")), "the stored bytes");
    let gz_etag = h[header::ETAG].to_str().unwrap().to_owned();
    let (status, h, body) = get(&app, uri, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(h.get(header::CONTENT_ENCODING).is_none(), "decoded for a client without gzip");
    let t = Tile::decode(body.as_slice()).unwrap();
    assert_eq!(t.layers[0].name, "transportation");
    assert_eq!(t.layers[0].values[0].string_value.as_deref(), Some("primary"));
    assert_ne!(h[header::ETAG].to_str().unwrap(), gz_etag, "each representation its own strong ETag");

    let (status, h, body) = get(&app, "/basemaps/streets", &[("host", "gis.example"), ("x-forwarded-prefix", "/citygrid")]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(h.contains_key(header::ETAG));
    let tj = json_of(&body);
    assert_eq!(tj["tilejson"], "3.0.0");
    assert_eq!(tj["tiles"], json!(["http://gis.example/citygrid/basemaps/streets/{z}/{x}/{y}.pbf"]));
    assert_eq!(tj["name"], "OSM 吴中");
    assert_eq!((tj["minzoom"].as_u64(), tj["maxzoom"].as_u64()), (Some(0), Some(14)));
    assert_eq!(tj["vector_layers"][4]["id"], "transportation");
    assert_eq!(tj["center"], json!([120.6, 31.2, 13.0]));
    let (status, _, body) = get(&app, "/basemaps/none", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json_of(&body)["error"]["code"], "unknown_basemap");

    // The basemap operations are described, each with an operationId of its own (OpenAPI
    // requires them unique; the tile handlers share function names with /tiles').
    let (_, _, body) = get(&app, "/openapi.json", &[]).await;
    let doc = json_of(&body);
    let mut ids: Vec<String> = Vec::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            if let Some(id) = op.get("operationId").and_then(Value::as_str) {
                assert!(!ids.contains(&id.to_owned()), "operationId {id} twice");
                ids.push(id.to_owned());
            }
        }
    }
    for want in ["basemap_list", "basemap_tilejson", "basemap_tile"] {
        assert!(ids.iter().any(|i| i == want), "{want} in {ids:?}");
    }
}

#[tokio::test]
async fn the_list_and_the_style_carry_both_kinds_under_the_grids() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with(dir.path(), &[streets(dir.path()), imagery(dir.path())]);
    let (status, _, body) = get(&app, "/basemaps", &[("host", "h:1")]).await;
    assert_eq!(status, StatusCode::OK);
    let list = json_of(&body);
    let ids: Vec<&str> = list["basemaps"].as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["streets", "wuzhong-imagery-2024"]);
    assert_eq!(list["basemaps"][1]["kind"], "raster");
    assert_eq!(list["basemaps"][1]["tilejson"], "http://h:1/basemaps/wuzhong-imagery-2024");

    let (status, _, body) = get(&app, "/styles/citygrid.json", &[("host", "h:1")]).await;
    assert_eq!(status, StatusCode::OK);
    let style = json_of(&body);
    assert_eq!(style["sources"]["basemap-streets"], json!({"type": "vector", "url": "http://h:1/basemaps/streets"}));
    assert_eq!(style["sources"]["basemap-wuzhong-imagery-2024"]["type"], "raster");
    assert_eq!(style["sources"]["basemap-wuzhong-imagery-2024"]["tileSize"], 256);
    let layers = style["layers"].as_array().unwrap();
    let index = |pred: &dyn Fn(&Value) -> bool| layers.iter().position(pred);
    let first_grid = index(&|l| l["source"] == "citygrid").unwrap();
    let last_basemap = layers.iter().rposition(|l| l["source"].as_str().is_some_and(|s| s.starts_with("basemap-"))).unwrap();
    assert!(last_basemap < first_grid, "every basemap layer under the grids");
    assert_eq!(layers[0]["type"], "background");
    let raster = &layers[index(&|l| l["type"] == "raster").unwrap()];
    assert_eq!(raster["layout"]["visibility"], "none", "imagery hidden while a street map shows");
    let roads = &layers[index(&|l| l["id"] == "basemap-streets-road").unwrap()];
    assert_eq!((roads["source-layer"].as_str(), roads["layout"]["visibility"].as_str()), (Some("transportation"), Some("visible")));
    for want in ["water", "landuse", "park", "building", "transportation_name", "place"] {
        assert!(layers.iter().any(|l| l["source-layer"] == want), "a layer of {want}");
    }
    for absent in ["landcover", "waterway"] {
        assert!(!layers.iter().any(|l| l["source-layer"] == absent), "no layer of {absent}: the file has none (MapLibre would report it)");
    }
    let names = &layers[index(&|l| l["source-layer"] == "transportation_name").unwrap()];
    assert_eq!(names["layout"]["text-font"], style["layers"][index(&|l| l["id"] == "grid-labels").unwrap()]["layout"]["text-font"]);
    let listed = &style["metadata"]["citygrid:basemaps"];
    assert_eq!(listed[0]["kind"], "vector");
    assert_eq!(listed[1]["layers"], json!(["basemap-wuzhong-imagery-2024-raster"]));
    // The GCJ-02 style (for AMap/Tencent base maps) goes without the WGS84 basemaps.
    let (_, _, body) = get(&app, "/styles/citygrid.json?datum=gcj02", &[]).await;
    assert!(json_of(&body)["sources"].get("basemap-streets").is_none());

    // MapLibre's own validator, when installed (.ci/run installs it before the tests run, in
    // ${XDG_CACHE_HOME:-~/.cache}/citygrid-ci/node).
    let cache = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    let validator = cache.map(|c| c.join("citygrid-ci/node/node_modules/.bin/gl-style-validate")).filter(|p| p.exists()).or_else(|| which("gl-style-validate"));
    match validator {
        None => eprintln!("gl-style-validate not installed: style validation skipped"),
        Some(v) => {
            let file = dir.path().join("style.json");
            std::fs::write(&file, &body_of_style(&app).await).unwrap();
            let out = std::process::Command::new(v).arg(&file).output().unwrap();
            assert!(out.status.success(), "gl-style-validate: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        }
    }
}

async fn body_of_style(app: &axum::Router) -> Vec<u8> {
    get(app, "/styles/citygrid.json", &[("host", "h:1")]).await.2
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|f| f.is_file()))
}

#[tokio::test]
async fn pmtiles_with_leaf_directories_serve_every_tile() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("suzhou.pmtiles");
    // Every tile of z0–z3 (85), gzip'd MVT, 10 entries per leaf: a root of 9 leaves.
    let mut tiles = Vec::new();
    for z in 0..=3u8 {
        for x in 0..1u32 << z {
            for y in 0..1u32 << z {
                tiles.push((z, x, y, gzip(&mvt(&format!("{z}/{x}/{y}")))));
            }
        }
    }
    let meta = json!({"name": "苏州", "vector_layers": [{"id": "transportation", "fields": {"class": "String"}}]});
    let opts = WriteOptions { tile_type: 1, tile_compression: Compression::Gzip, metadata: meta, bounds: [120.0, 31.0, 121.0, 32.0], max_root_entries: 10 };
    let header = pmtiles::write(&path, &tiles, &opts).unwrap();
    assert!(header.leaf_length > 0, "leaf directories written");
    let app = app_with(dir.path(), std::slice::from_ref(&path));
    for (z, x, y, _) in &tiles {
        let (status, _, body) = get(&app, &format!("/basemaps/suzhou/{z}/{x}/{y}.mvt"), &[]).await;
        assert_eq!(status, StatusCode::OK, "{z}/{x}/{y}");
        let t = Tile::decode(body.as_slice()).unwrap();
        assert_eq!(t.layers[0].values[0].string_value.as_deref(), Some(format!("{z}/{x}/{y}").as_str()), "the tile of {z}/{x}/{y}");
    }
    let (status, _, _) = get(&app, "/basemaps/suzhou/4/0/0.mvt", &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "past the file's zooms");
    let (_, _, body) = get(&app, "/basemaps/suzhou", &[]).await;
    let tj = json_of(&body);
    assert_eq!((tj["name"].as_str(), tj["maxzoom"].as_u64()), (Some("苏州"), Some(3)));
    assert_eq!(tj["bounds"], json!([120.0, 31.0, 121.0, 32.0]));
    assert_eq!(tj["vector_layers"][0]["id"], "transportation");
}

#[test]
fn a_pmtiles_file_with_a_huge_sparse_tail_is_read_lazily() {
    use pmtiles::{Entry, Header, directory_bytes, header_bytes, tile_id};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.pmtiles");
    let near = png(7);
    let far = png(9);
    let far_offset: u64 = 5 << 30; // 5 GiB into the tile data: a sparse hole, no disk used
    let mut entries = vec![
        Entry { tile_id: tile_id(12, 3423, 1763), offset: 0, length: near.len() as u32, run_length: 1 },
        Entry { tile_id: tile_id(14, 13694, 6684), offset: far_offset, length: far.len() as u32, run_length: 1 },
    ];
    entries.sort_by_key(|e| e.tile_id);
    let root = directory_bytes(&entries);
    let data_offset = 4096u64;
    let header = Header {
        root_offset: 127,
        root_length: root.len() as u64,
        metadata_offset: 127 + root.len() as u64,
        metadata_length: 0,
        leaf_offset: 127 + root.len() as u64,
        leaf_length: 0,
        data_offset,
        data_length: far_offset + far.len() as u64,
        addressed_tiles: 2,
        tile_entries: 2,
        tile_contents: 2,
        clustered: false,
        internal_compression: Compression::None,
        tile_compression: Compression::None,
        tile_type: 2,
        min_zoom: 12,
        max_zoom: 14,
        bounds: [120.0, 31.0, 121.0, 32.0],
        center_zoom: 12,
        center: [120.5, 31.5],
    };
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(&path).unwrap();
        f.write_all_at(&header_bytes(&header), 0).unwrap();
        f.write_all_at(&root, 127).unwrap();
        f.write_all_at(&near, data_offset).unwrap();
        f.set_len(data_offset + far_offset + far.len() as u64).unwrap();
        f.write_all_at(&far, data_offset + far_offset).unwrap();
    }
    assert!(std::fs::metadata(&path).unwrap().len() > 5 << 30);
    let b = Basemap::open(&path).unwrap();
    let opened = b.bytes_read();
    assert_eq!(opened, 127 + root.len() as u64, "the header and the root directory only");
    let t = b.tile(14, 13694, 6684).unwrap().expect("the tile past the hole");
    assert_eq!(&t.data[..], &far[..]);
    assert_eq!(b.bytes_read() - opened, far.len() as u64, "only the tile's bytes");
    let t = b.tile(12, 3423, 1763).unwrap().expect("the near tile");
    assert_eq!(&t.data[..], &near[..]);
    assert!(b.tile(13, 0, 0).unwrap().is_none());
    assert_eq!(b.bytes_read(), opened + (far.len() + near.len()) as u64);
}

#[test]
fn files_that_cannot_be_served_are_refused_with_their_name() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.mbtiles");
    std::fs::write(&text, "not a tileset").unwrap();
    let e = Basemaps::open(std::slice::from_ref(&text)).unwrap_err().to_string();
    assert!(e.contains("notes.mbtiles") && e.contains("neither an MBTiles"), "{e}");
    let missing = dir.path().join("missing.pmtiles");
    let e = Basemaps::open(&[missing]).unwrap_err().to_string();
    assert!(e.contains("missing.pmtiles"), "{e}");
    let other = dir.path().join("other.sqlite");
    rusqlite::Connection::open(&other).unwrap().execute_batch("CREATE TABLE t (a);").unwrap();
    let e = Basemaps::open(&[other]).unwrap_err().to_string();
    assert!(e.contains("other.sqlite") && e.contains("tiles"), "{e}");
    let tiff = dir.path().join("tiff.mbtiles");
    mbtiles(&tiff, &[("format", "tiff")], &[]);
    let e = Basemaps::open(&[tiff]).unwrap_err().to_string();
    assert!(e.contains("tiff.mbtiles") && e.contains("\"tiff\""), "{e}");
    // Two files with one id.
    let a = imagery(dir.path());
    let sub = dir.path().join("b");
    std::fs::create_dir(&sub).unwrap();
    let b = imagery(&sub);
    let e = Basemaps::open(&[a, b]).unwrap_err().to_string();
    assert!(e.contains("wuzhong-imagery-2024") && e.contains("rename"), "{e}");
    // A truncated PMTiles file.
    let cut = dir.path().join("cut.pmtiles");
    let opts = WriteOptions { tile_type: 2, tile_compression: Compression::None, metadata: json!({}), bounds: [0.0, 0.0, 1.0, 1.0], max_root_entries: 100 };
    pmtiles::write(&cut, &[(0, 0, 0, png(1))], &opts).unwrap();
    let len = std::fs::metadata(&cut).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&cut).unwrap().set_len(140.min(len - 1)).unwrap();
    let e = Basemaps::open(&[cut]).unwrap_err().to_string();
    assert!(e.contains("cut.pmtiles"), "{e}");
}

#[test]
fn serve_refuses_to_start_on_a_bad_basemap_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.pmtiles");
    std::fs::write(&bad, b"PMTiles\x02").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_citygrid"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .arg("--basemap")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.pmtiles") && err.contains("version 2"), "{err}");
}
