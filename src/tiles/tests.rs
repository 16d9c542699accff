//! Unit tests of the tile set on a small hand-made city (the demo cities are tested in
//! tests/tiles_encode.rs).

use geo_types::{LineString, MultiPolygon, Polygon};
use prost::Message;

use super::mercator::{Q, to_world};
use super::vector_tile::Tile;
use super::*;
use crate::model::{CityBuilder, ClassTable, ComponentFields, GridFields, Hierarchy};

fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> LineString<f64> {
    LineString::from(vec![(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)])
}

/// A district (with a lake), one street, one community, two unit grids (the west one holding
/// the lake as a hole) and a few components.
fn city(components: &[(&str, f64, f64)]) -> City {
    let mut b = CityBuilder::new(Hierarchy::cjt213(), ClassTable::builtin_components(), ClassTable::builtin_events());
    let lake = rect(120.605, 31.275, 120.610, 31.285);
    let whole = MultiPolygon(vec![Polygon::new(rect(120.60, 31.26, 120.64, 31.30), vec![lake.clone()])]);
    let add = |b: &mut CityBuilder, code: &str, parent: &str, g: MultiPolygon<f64>| {
        b.add_grid(&GridFields { code, name: code, parent, ..Default::default() }, g).unwrap();
    };
    add(&mut b, "320506", "", whole.clone());
    add(&mut b, "320506001", "320506", whole.clone());
    add(&mut b, "320506001001", "320506001", whole);
    add(&mut b, "32050600100101", "320506001001", MultiPolygon(vec![Polygon::new(rect(120.60, 31.26, 120.62, 31.30), vec![lake])]));
    add(&mut b, "32050600100102", "320506001001", MultiPolygon(vec![Polygon::new(rect(120.62, 31.26, 120.64, 31.30), vec![])]));
    for (code, lon, lat) in components {
        b.add_component(&ComponentFields { code, lon: *lon, lat: *lat, ..Default::default() }).unwrap();
    }
    b.finish().unwrap()
}

fn tile_of(lon: f64, lat: f64, z: u8) -> (u32, u32) {
    let w = to_world(lon, lat);
    let n = (1u64 << z) as f64;
    ((w[0] * n).floor() as u32, (w[1] * n).floor() as u32)
}

/// Layers by name → features as (properties, geometry type, rings or points).
type Decoded = Vec<(String, Vec<(Vec<(String, String)>, i32, Vec<Vec<[i32; 2]>>)>)>;

fn decode(bytes: &[u8]) -> Decoded {
    let tile = Tile::decode(bytes).unwrap();
    tile.layers
        .into_iter()
        .map(|l| {
            let feats = l
                .features
                .iter()
                .map(|f| {
                    let props = f
                        .tags
                        .chunks(2)
                        .map(|kv| {
                            let v = &l.values[kv[1] as usize];
                            let v = v.string_value.clone().unwrap_or_else(|| v.uint_value.unwrap().to_string());
                            (l.keys[kv[0] as usize].clone(), v)
                        })
                        .collect();
                    let mut parts: Vec<Vec<[i32; 2]>> = Vec::new();
                    let (mut x, mut y, mut i) = (0, 0, 0);
                    while i < f.geometry.len() {
                        let (cmd, n) = (f.geometry[i] & 7, f.geometry[i] >> 3);
                        i += 1;
                        if cmd == 7 {
                            continue;
                        }
                        if cmd == 1 {
                            parts.push(Vec::new());
                        }
                        for _ in 0..n {
                            let zz = |v: u32| ((v >> 1) as i32) ^ -((v & 1) as i32);
                            x += zz(f.geometry[i]);
                            y += zz(f.geometry[i + 1]);
                            i += 2;
                            parts.last_mut().unwrap().push([x, y]);
                        }
                    }
                    (props, f.r#type.unwrap(), parts)
                })
                .collect();
            (l.name, feats)
        })
        .collect()
}

fn area2(r: &[[i32; 2]]) -> i64 {
    (0..r.len()).map(|i| r[i][0] as i64 * r[(i + 1) % r.len()][1] as i64 - r[(i + 1) % r.len()][0] as i64 * r[i][1] as i64).sum()
}

/// A longitude whose Web Mercator x is exactly the west edge of tile `tx` at zoom z.
fn lon_on_edge(tx: u32, z: u8) -> f64 {
    let want = tx as f64 / (1u64 << z) as f64;
    let mut lon = want * 360.0 - 180.0;
    for _ in 0..8 {
        let w = to_world(lon, 31.28)[0];
        if w == want {
            return lon;
        }
        lon = if w < want { lon.next_up() } else { lon.next_down() };
    }
    panic!("no longitude maps exactly onto the tile edge")
}

#[test]
fn a_point_on_a_tile_edge_belongs_to_the_tile_east_of_it() {
    let z = 16;
    let (tx, _) = tile_of(120.63, 31.28, z);
    let lon = lon_on_edge(tx, z);
    assert_eq!((to_world(lon, 31.28)[0] * Q) as u64, (tx as u64) << 16);
    let c = city(&[("3205060118000001", lon, 31.28)]);
    let set = TileSet::build(&c, TileConfig::default());
    let (_, ty) = tile_of(lon, 31.28, z);
    let east = set.encode(&c, &[Layer::Components], z, tx, ty, Datum::Wgs84).unwrap();
    let west = set.encode(&c, &[Layer::Components], z, tx - 1, ty, Datum::Wgs84).unwrap();
    assert!(west.is_none(), "the tile west of the edge must not hold it");
    let east = decode(&east.expect("the tile east of the edge holds it"));
    let (_, feats) = &east[0];
    assert_eq!(feats.len(), 1);
    assert_eq!(feats[0].2[0][0][0], 0, "at x = 0 of its tile");
    // Its cluster at every lower zoom is in the tile holding the edge's east side too.
    for z in 0..16u8 {
        let (x, y) = (tx >> (16 - z), ty >> (16 - z));
        let t = decode(&set.encode(&c, &[Layer::Components], z, x, y, Datum::Wgs84).unwrap().expect("cluster"));
        let count: Vec<&String> = t[0].1[0].0.iter().filter(|(k, _)| k == "point_count").map(|(_, v)| v).collect();
        assert_eq!(count, ["1"], "z{z}");
    }
}

#[test]
fn holes_wind_against_their_exterior_and_polygons_are_clipped_to_the_buffer() {
    let c = city(&[]);
    let set = TileSet::build(&c, TileConfig::default());
    for z in [12u8, 13, 14, 15, 16] {
        let (x0, y0) = tile_of(120.60, 31.30, z);
        let (x1, y1) = tile_of(120.64, 31.26, z);
        let mut holes = 0;
        for x in x0..=x1 {
            for y in y0..=y1 {
                let Some(bytes) = set.encode(&c, &[Layer::Grids], z, x, y, Datum::Wgs84).unwrap() else { continue };
                for (_, feats) in decode(&bytes) {
                    for (props, kind, rings) in feats.iter().filter(|f| f.1 == 3) {
                        let _ = (props, kind);
                        assert!(area2(&rings[0]) > 0, "z{z}: exterior first, positive");
                        for r in rings {
                            assert!(r.iter().all(|p| p.iter().all(|v| (-64..=4160).contains(v))), "z{z}: {r:?}");
                        }
                        holes += rings.iter().filter(|r| area2(r) < 0).count();
                    }
                }
            }
        }
        // The lake is a hole of the district, the street, the community and grid 01.
        assert!(holes >= 4, "z{z}: {holes} holes");
    }
}

#[test]
fn rings_that_collapse_are_dropped_but_the_label_stays() {
    let c = city(&[]);
    let config = TileConfig { level_min_zoom: vec![0], ..TileConfig::default() };
    let set = TileSet::build(&c, config);
    // At z0 the 4 km district is ~0.4 units wide: every ring collapses.
    let t = decode(&set.encode(&c, &[Layer::Grids], 0, 0, 0, Datum::Wgs84).unwrap().unwrap());
    let (name, feats) = &t[0];
    assert_eq!(name, "grids");
    assert!(feats.iter().all(|f| f.1 == 1), "only label points at z0");
    assert_eq!(feats.len(), 5, "one label per grid");
    // At z12 every grid is a polygon.
    let (x, y) = tile_of(120.62, 31.28, 12);
    let t = decode(&set.encode(&c, &[Layer::Grids], 12, x, y, Datum::Wgs84).unwrap().unwrap());
    assert_eq!(t[0].1.iter().filter(|f| f.1 == 3).count(), 5);
}

#[test]
fn levels_appear_from_their_zoom_and_the_list_extends_with_its_last_entry() {
    let config = TileConfig { level_min_zoom: vec![0, 11], ..TileConfig::default() };
    assert_eq!((0..6).map(|l| config.min_zoom_of_level(l)).collect::<Vec<_>>(), [0, 11, 11, 11, 11, 11]);
    assert_eq!(TileConfig { level_min_zoom: vec![], ..TileConfig::default() }.min_zoom_of_level(3), 0);
    let c = city(&[]);
    let set = TileSet::build(&c, config);
    let levels = |z: u8| {
        let (x, y) = tile_of(120.62, 31.28, z);
        let t = decode(&set.encode(&c, &[Layer::Grids], z, x, y, Datum::Wgs84).unwrap().unwrap());
        let mut l: Vec<String> = t[0].1.iter().map(|f| f.0.iter().find(|(k, _)| k == "level").unwrap().1.clone()).collect();
        l.sort();
        l.dedup();
        l
    };
    assert_eq!(levels(10), ["1"]);
    assert_eq!(levels(11), ["1", "2", "3", "4"]);
}

#[test]
fn layer_info_describes_every_property_and_the_majors_present() {
    let c = city(&[("3205060118000001", 120.61, 31.27), ("3205060301000001", 120.63, 31.29)]);
    let set = TileSet::build(&c, TileConfig::default());
    let info = set.layer_info(Layer::Components);
    let names: Vec<&str> = info.fields.iter().map(|f| f.0).collect();
    assert!(names.ends_with(&["count_01", "count_03"]), "{names:?}");
    assert_eq!(set.layer_info(Layer::Grids).minzoom, 0);
    assert_eq!(set.layer_info(Layer::Grids).maxzoom, 20);
    let stats = set.stats();
    assert!(stats.arcs > 0 && stats.arc_vertices > 0);
    assert_eq!(stats.precomputed_cluster_zooms, (0..16).collect::<Vec<u8>>());
}

#[test]
fn a_city_without_components_has_no_component_layer() {
    let c = city(&[]);
    let set = TileSet::build(&c, TileConfig::default());
    let (x, y) = tile_of(120.62, 31.28, 14);
    assert_eq!(set.encode(&c, &[Layer::Components], 14, x, y, Datum::Wgs84).unwrap(), None);
    assert_eq!(set.encode(&c, &[Layer::Components], 8, x >> 6, y >> 6, Datum::Gcj02).unwrap(), None);
    let t = decode(&set.encode(&c, &Layer::ALL, 14, x, y, Datum::Wgs84).unwrap().unwrap());
    assert_eq!(t.len(), 1);
}

/// The hand-made city with zones: two road sections sharing a wiggly edge near x = 120.62
/// (21 vertices, ±2 m), a river segment overlapping both, a plaza without a unit, and a zone
/// far away (near Shanghai).
fn city_with_zones() -> City {
    let mut b = CityBuilder::new(Hierarchy::cjt213(), ClassTable::builtin_components(), ClassTable::builtin_events());
    let whole = MultiPolygon(vec![Polygon::new(rect(120.60, 31.26, 120.64, 31.30), vec![])]);
    for (code, parent) in [("320506", ""), ("320506001", "320506"), ("320506001001", "320506001"), ("32050600100101", "320506001001")] {
        b.add_grid(&GridFields { code, name: code, parent, ..Default::default() }, whole.clone()).unwrap();
    }
    let zone = |x0, y0, x1, y1| MultiPolygon(vec![Polygon::new(rect(x0, y0, x1, y1), vec![])]);
    let seam = seam();
    let mut west = vec![(120.605, 31.2795)];
    west.extend(&seam);
    west.extend([(120.605, 31.2805), (120.605, 31.2795)]);
    let mut east: Vec<(f64, f64)> = vec![seam[0], (120.635, 31.2795), (120.635, 31.2805)];
    east.extend(seam.iter().rev());
    let band = |pts: Vec<(f64, f64)>| MultiPolygon(vec![Polygon::new(LineString::from(pts), vec![])]);
    b.add_zone("roads", "EW01", "东西大道第1段", "公路管理站", band(west)).unwrap();
    b.add_zone("roads", "EW02", "东西大道第2段", "公路管理站", band(east)).unwrap();
    b.add_zone("rivers", "R1", "小河", "水务站", zone(120.615, 31.27, 120.625, 31.29)).unwrap();
    b.add_zone("plazas", "P1", "广场", "", zone(120.61, 31.265, 120.612, 31.267)).unwrap();
    b.add_zone("roads", "FAR", "远处的路", "公路管理站", zone(121.40, 31.20, 121.41, 31.21)).unwrap();
    b.finish().unwrap()
}

/// The edge EW01 and EW02 share, south to north.
fn seam() -> Vec<(f64, f64)> {
    (0..=20)
        .map(|k| {
            let wiggle = if k == 0 || k == 20 { 0.0 } else { 0.00002 * (k as f64 * 1.7).sin() };
            (120.62 + wiggle, 31.2795 + 0.001 * k as f64 / 20.0)
        })
        .collect()
}

#[test]
fn zones_are_drawn_from_their_zoom_with_their_properties_and_a_label_each() {
    let c = city_with_zones();
    let set = TileSet::build(&c, TileConfig::default());
    assert_eq!(set.zone_layers(), [("plazas".to_owned(), 1), ("rivers".to_owned(), 1), ("roads".to_owned(), 3)]);
    let info = set.layer_info(Layer::Zones);
    assert_eq!((info.id, info.minzoom), ("zones", 12));
    assert_eq!(info.fields.iter().map(|f| f.0).collect::<Vec<_>>(), ["layer", "id", "name", "unit"]);
    let (x, y) = tile_of(120.62, 31.28, 11);
    assert_eq!(set.encode(&c, &[Layer::Zones], 11, x, y, Datum::Wgs84).unwrap(), None, "no zones below zone_min_zoom");
    for z in [12u8, 14, 16] {
        let (x0, y0) = tile_of(120.60, 31.30, z);
        let (x1, y1) = tile_of(120.64, 31.26, z);
        let mut labels: Vec<String> = Vec::new();
        let mut polygons = std::collections::BTreeSet::new();
        for x in x0..=x1 {
            for y in y0..=y1 {
                let Some(bytes) = set.encode(&c, &[Layer::Zones], z, x, y, Datum::Wgs84).unwrap() else { continue };
                let tile = Tile::decode(&bytes[..]).unwrap();
                assert_eq!(tile.layers.len(), 1);
                let ids: Vec<Option<u64>> = tile.layers[0].features.iter().map(|f| f.id).collect();
                for ((name, feats), id) in decode(&bytes).into_iter().flat_map(|(n, f)| f.into_iter().map(move |f| (n.clone(), f))).zip(ids) {
                    assert_eq!(name, "zones");
                    let (props, kind, rings) = feats;
                    let get = |k: &str| props.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
                    let i = id.expect("zones carry a feature id") as usize - 1;
                    let zone = &c.zones[i];
                    assert_eq!((get("layer").unwrap(), get("id").unwrap(), get("name").unwrap()), (zone.layer.clone(), zone.id.clone(), zone.name.clone()));
                    assert_eq!(get("unit"), zone.unit.map(|u| c.units.get(u).name.clone()), "{}: unit absent when none", zone.id);
                    assert_ne!(zone.id, "FAR", "z{z}: a zone far away is in no tile here");
                    if kind == 1 {
                        labels.push(zone.id.clone());
                    } else {
                        assert!(area2(&rings[0]) > 0);
                        assert!(rings.iter().flatten().all(|p| p.iter().all(|v| (-64..=4160).contains(v))), "z{z}: clipped to the buffer");
                        polygons.insert(zone.id.clone());
                    }
                }
            }
        }
        labels.sort();
        assert_eq!(labels, ["EW01", "EW02", "P1", "R1"], "z{z}: one label per zone");
        assert_eq!(polygons.into_iter().collect::<Vec<_>>(), ["EW01", "EW02", "P1", "R1"], "z{z}");
    }
}

#[test]
fn two_sections_of_a_road_draw_their_shared_edge_identically_at_every_zoom() {
    let c = city_with_zones();
    let set = TileSet::build(&c, TileConfig::default());
    let mut kept = Vec::new();
    for z in 12u8..=18 {
        let (x, y) = tile_of(120.62, 31.28, z);
        let t = decode(&set.encode(&c, &[Layer::Zones], z, x, y, Datum::Wgs84).unwrap().unwrap());
        let ring = |id: &str| t[0].1.iter().find(|f| f.1 == 3 && f.0.iter().any(|(k, v)| k == "id" && v == id)).map(|f| f.2[0].clone()).unwrap();
        // The seam's vertices: those within 10 m (0.0001°) of x = 120.62; the other corners are 1.5 km away.
        let x_seam = (to_world(120.62, 31.28)[0] * (1u64 << z) as f64 - x as f64) * 4096.0;
        let near = 0.0001 / 360.0 * (1u64 << z) as f64 * 4096.0;
        let on_seam = |r: Vec<[i32; 2]>| {
            let mut v: Vec<[i32; 2]> = r.into_iter().filter(|p| (p[0] as f64 - x_seam).abs() < near).collect();
            v.sort();
            v
        };
        let (a, b) = (on_seam(ring("EW01")), on_seam(ring("EW02")));
        assert!(a.len() >= 2, "z{z}: {a:?}");
        assert_eq!(a, b, "z{z}: both sections draw the same seam");
        kept.push(a.len());
    }
    assert!(kept[0] < kept[6], "simplified at z12, not at z18: {kept:?}");
}

#[test]
fn a_zone_layer_without_zones_is_left_out_and_zone_min_zoom_is_checked() {
    let c = city(&[]);
    let set = TileSet::build(&c, TileConfig::default());
    let (x, y) = tile_of(120.62, 31.28, 14);
    assert_eq!(set.encode(&c, &[Layer::Zones], 14, x, y, Datum::Wgs84).unwrap(), None);
    assert!(set.zone_layers().is_empty());
    let config = TileConfig { zone_min_zoom: 21, ..TileConfig::default() };
    assert!(config.validate().unwrap_err().contains("zone_min_zoom"));
    let config = TileConfig { zone_min_zoom: 15, ..TileConfig::default() };
    let c = city_with_zones();
    let set = TileSet::build(&c, config);
    assert_eq!(set.layer_info(Layer::Zones).minzoom, 15);
    assert_eq!(set.encode(&c, &[Layer::Zones], 14, x, y, Datum::Wgs84).unwrap(), None);
    let (x, y) = tile_of(120.62, 31.28, 15);
    assert!(set.encode(&c, &[Layer::Zones], 15, x, y, Datum::Wgs84).unwrap().is_some());
}

/// The components layer of tile z/x/y written the way the encoder wrote it before its
/// per-component arrays (`ComponentLayer::encode_reference`), or `None` when it is empty.
fn components_reference(set: &TileSet, city: &City, z: u8, x: u32, y: u32, datum: Datum) -> Option<Vec<u8>> {
    let frame = TileFrame::new(z, x, y, set.config.extent);
    let clustered = set.components.clustered(&frame, datum, set.config.max_points_per_tile);
    let keys = if clustered { set.components.cluster_keys() } else { components::KEYS.iter().map(|k| (*k).to_owned()).collect() };
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut b = LayerBuilder::new("components", set.config.extent, &keys);
    set.components.encode_reference(city, &frame, datum, clustered, &mut b);
    if b.is_empty() {
        return None;
    }
    let mut tile = Vec::new();
    b.finish_into(&mut tile);
    Some(tile)
}

/// The tiles at zoom z (in `datum`'s map) holding components: all of them, or an even sample of
/// `max` when there are more.
fn component_tiles(city: &City, z: u8, datum: Datum, max: usize) -> Vec<(u32, u32)> {
    let tiles: std::collections::BTreeSet<(u32, u32)> = city
        .components
        .iter()
        .map(|c| {
            let (lon, lat) = datum.from_wgs84(c.location.x, c.location.y);
            tile_of(lon, lat, z)
        })
        .collect();
    let step = tiles.len().div_ceil(max).max(1);
    tiles.into_iter().step_by(step).collect()
}

#[test]
fn component_tiles_are_byte_identical_to_the_per_feature_encoder_on_the_demo_cities() {
    use crate::demo::{DemoSpec, Preset, generate};
    for (preset, components, per_zoom) in [(Preset::Tiny, None, 400), (Preset::Wuzhong, Some(20_000), 120)] {
        let city = generate(&DemoSpec { preset, components, seed: 1 }, &|_, _| {}).unwrap().city;
        // A low density guard too, so that clustered full-detail tiles are compared as well.
        for config in [TileConfig::default(), TileConfig { max_points_per_tile: 40, ..TileConfig::default() }] {
            let set = TileSet::build(&city, config);
            let mut points = 0usize;
            for datum in [Datum::Wgs84, Datum::Gcj02] {
                for z in 0..=18u8 {
                    for (x, y) in component_tiles(&city, z, datum, per_zoom) {
                        let fast = set.encode(&city, &[Layer::Components], z, x, y, datum).unwrap();
                        let reference = components_reference(&set, &city, z, x, y, datum);
                        assert_eq!(fast, reference, "{preset:?} {datum} {z}/{x}/{y}");
                        if z >= set.config.component_full_zoom {
                            points += fast.map_or(0, |t| Tile::decode(t.as_slice()).unwrap().layers[0].features.len());
                        }
                    }
                }
            }
            assert!(points > 1000, "{preset:?}: the comparison covered {points} full-detail features");
        }
    }
}

/// The tile stitched from parts (the first time, and again with the dense tiles' components
/// parts taken from the cache) is [`TileSet::encode`]'s, and its gzip member decodes to it with
/// a single-member decoder (a browser) and a multi-member one.
#[test]
fn stitched_tiles_decompress_to_the_directly_encoded_tile_on_the_demo_cities() {
    use std::io::Read;

    use crate::demo::{DemoSpec, Preset, generate};
    let combos: [&[Layer]; 4] = [&[Layer::Components], &[Layer::Grids, Layer::Components], &Layer::ALL, &[Layer::Grids, Layer::Zones]];
    for (preset, components, per_zoom) in [(Preset::Tiny, None, 60), (Preset::Wuzhong, Some(20_000), 40)] {
        let city = generate(&DemoSpec { preset, components, seed: 1 }, &|_, _| {}).unwrap().city;
        let set = TileSet::build(&city, TileConfig::default());
        let mut compared = 0usize;
        for datum in [Datum::Wgs84, Datum::Gcj02] {
            for z in 0..=18u8 {
                for (x, y) in component_tiles(&city, z, datum, per_zoom) {
                    for layers in combos {
                        let direct = set.encode(&city, layers, z, x, y, datum).unwrap();
                        // Twice: made, then (for a dense tile) its components part reused.
                        for _ in 0..2 {
                            let parts = set.encode_parts(&city, layers, z, x, y, datum).unwrap();
                            let Some(parts) = parts else {
                                assert_eq!(direct, None, "{preset:?} {datum} {z}/{x}/{y} {layers:?}");
                                continue;
                            };
                            let direct = direct.as_deref().expect("parts of a non-empty tile");
                            let s = parts::stitch(&parts);
                            assert_eq!(&s.raw[..], direct, "{preset:?} {datum} {z}/{x}/{y} {layers:?}");
                            assert_eq!(s.crc, crc32fast::hash(direct));
                            let (mut single, mut multi) = (Vec::new(), Vec::new());
                            flate2::read::GzDecoder::new(&s.gzip[..]).read_to_end(&mut single).unwrap();
                            flate2::read::MultiGzDecoder::new(&s.gzip[..]).read_to_end(&mut multi).unwrap();
                            assert!(single == direct && multi == direct, "{preset:?} {datum} {z}/{x}/{y} {layers:?}: gzip decodes to the tile");
                            compared += 1;
                        }
                    }
                }
            }
        }
        let (bytes, kept) = set.component_parts_size();
        assert!(compared > 1000, "{preset:?}: {compared} tiles compared");
        assert!(kept > 0 && bytes <= parts::PART_CACHE_BYTES, "{preset:?}: dense tiles' components parts are reused ({kept} kept, {bytes} B)");
    }
}
