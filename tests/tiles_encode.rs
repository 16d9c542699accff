//! Vector tiles, decoded and checked against the city they come from: bounds, properties,
//! winding, identical seams between neighbouring grids, no gaps or overlaps, zones in the tiles
//! they reach into, cluster counts against brute force, every component in exactly one tile,
//! GCJ-02 shift, determinism.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::f64::consts::PI;
use std::sync::OnceLock;

use citygrid::crs::Datum;
use citygrid::demo::{DemoSpec, Preset, generate};
use citygrid::model::City;
use citygrid::tiles::{Layer, TileConfig, TileError, TileSet};
use common::mvt::{DecodedLayer, Feature, Geom, Prop, area2, decode, decode_geometry};
use geo::{Area, BooleanOps, Contains, Intersects};

const EXTENT: i32 = 4096;
const BUFFER: i32 = 64;

struct Fixture {
    city: City,
    tiles: TileSet,
}

fn make(preset: Preset, components: Option<usize>) -> Fixture {
    let demo = generate(&DemoSpec { preset, components, seed: 1 }, &|_, _| {}).unwrap();
    let tiles = TileSet::build(&demo.city, TileConfig::default());
    Fixture { city: demo.city, tiles }
}

/// The tiny demo city: 46 grids, 2,000 components.
fn tiny() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| make(Preset::Tiny, None))
}

/// Wuzhong's grids (1 + 14 + 212 + 945) with 20,000 components.
fn wuzhong() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| make(Preset::Wuzhong, Some(20_000)))
}

// ---- Web Mercator, written out independently of the encoder -------------------------------

fn world(lon: f64, lat: f64) -> [f64; 2] {
    let phi = lat.to_radians();
    [(lon + 180.0) / 360.0, (1.0 - (phi.tan() + 1.0 / phi.cos()).ln() / PI) / 2.0]
}

fn lonlat(w: [f64; 2]) -> (f64, f64) {
    (w[0] * 360.0 - 180.0, (PI * (1.0 - 2.0 * w[1])).sinh().atan().to_degrees())
}

/// The tile holding a point: tiles are half-open in Web Mercator quantised to 2^-32.
fn tile_of(lon: f64, lat: f64, z: u8) -> (u32, u32) {
    let q = |v: f64| (v * 4_294_967_296.0).floor() as u64;
    let w = world(lon, lat);
    ((q(w[0]) >> (32 - z)) as u32, (q(w[1]) >> (32 - z)) as u32)
}

/// Tile coordinates (0..4096) of a lon/lat in tile z/x/y.
fn tile_xy(lon: f64, lat: f64, z: u8, x: u32, y: u32) -> [f64; 2] {
    let w = world(lon, lat);
    let n = (1u64 << z) as f64;
    [(w[0] * n - x as f64) * EXTENT as f64, (w[1] * n - y as f64) * EXTENT as f64]
}

fn tile_lonlat(t: [f64; 2], z: u8, x: u32, y: u32) -> (f64, f64) {
    let n = (1u64 << z) as f64;
    lonlat([(t[0] / EXTENT as f64 + x as f64) / n, (t[1] / EXTENT as f64 + y as f64) / n])
}

/// Every tile at zoom z over the city's extent (in `datum`), one tile of margin around.
fn tiles_over(city: &City, z: u8, datum: Datum) -> Vec<(u32, u32)> {
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    let mut add = |lon: f64, lat: f64| {
        let (lon, lat) = datum.from_wgs84(lon, lat);
        let (x, y) = tile_of(lon, lat, z);
        (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
    };
    for g in city.grids.iter().filter(|g| g.level == 0) {
        for p in &g.geometry {
            for c in &p.exterior().0 {
                add(c.x, c.y);
            }
        }
    }
    for c in &city.components {
        add(c.location.x, c.location.y);
    }
    let max = (1u64 << z) as u32 - 1;
    let mut out = Vec::new();
    for x in x0.saturating_sub(1)..=(x1 + 1).min(max) {
        for y in y0.saturating_sub(1)..=(y1 + 1).min(max) {
            out.push((x, y));
        }
    }
    out
}

fn encode(f: &Fixture, layers: &[Layer], z: u8, x: u32, y: u32, datum: Datum) -> BTreeMap<String, DecodedLayer> {
    match f.tiles.encode(&f.city, layers, z, x, y, datum).unwrap() {
        Some(bytes) => {
            let d = decode(&bytes);
            assert!(!d.is_empty(), "a tile with no layer must be None");
            d
        }
        None => BTreeMap::new(),
    }
}

fn features<'a>(d: &'a BTreeMap<String, DecodedLayer>, layer: &str) -> &'a [Feature] {
    d.get(layer).map(|l| l.features.as_slice()).unwrap_or(&[])
}

fn code_number(s: &str) -> u64 {
    s.parse().unwrap()
}

// ---- The tests ----------------------------------------------------------------------------

#[test]
fn tiles_decode_within_bounds_with_their_properties_and_winding() {
    let f = tiny();
    let config = f.tiles.config().clone();
    let levels = &f.city.hierarchy.levels;
    for z in [0u8, 4, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 20] {
        let mut seen_levels = BTreeSet::new();
        for (x, y) in tiles_over(&f.city, z, Datum::Wgs84) {
            let d = encode(f, &Layer::ALL, z, x, y, Datum::Wgs84);
            for (name, layer) in &d {
                assert!(["grids", "zones", "components"].contains(&name.as_str()), "layer {name}");
                assert_eq!((layer.version, layer.extent), (2, 4096), "{name}");
                assert!(!layer.features.is_empty(), "an empty layer is left out");
                let info = f.tiles.layer_info(Layer::from_name(name).unwrap());
                let fields: HashMap<&str, &str> = info.fields.iter().copied().collect();
                for feat in &layer.features {
                    for (k, v) in &feat.props {
                        let ty = fields.get(k.as_str()).unwrap_or_else(|| panic!("{name}.{k} is not in layer_info"));
                        assert_eq!(*ty, if matches!(v, Prop::Str(_)) { "String" } else { "Number" }, "{name}.{k}");
                    }
                    match &feat.geom {
                        Geom::Points(p) => {
                            assert_eq!(p.len(), 1);
                            let p = p[0];
                            assert!((0..EXTENT).contains(&p[0]) && (0..EXTENT).contains(&p[1]), "point {p:?} outside its tile");
                        }
                        Geom::Polygon(rings) => {
                            assert!(name == "grids" || name == "zones", "polygons in {name}");
                            assert!(area2(&rings[0]) > 0, "first ring must be exterior (positive area)");
                            for r in rings {
                                assert_ne!(area2(r), 0, "collapsed ring kept");
                                for p in r {
                                    assert!(
                                        (-BUFFER..=EXTENT + BUFFER).contains(&p[0]) && (-BUFFER..=EXTENT + BUFFER).contains(&p[1]),
                                        "vertex {p:?} outside tile + buffer"
                                    );
                                }
                            }
                        }
                        g => panic!("unexpected geometry {g:?}"),
                    }
                    if name == "grids" {
                        let keys: Vec<&str> = feat.props.keys().map(String::as_str).collect();
                        assert_eq!(keys, ["code", "level", "level_name", "name"]);
                        let level = feat.get("level").num() as usize;
                        assert!((1..=levels.len()).contains(&level));
                        assert!(z >= config.min_zoom_of_level(level - 1), "level {level} at z{z}");
                        assert_eq!(feat.get("level_name").str(), levels[level - 1].name);
                        let code = feat.get("code").str();
                        assert_eq!(code.len(), levels[level - 1].code_digits);
                        assert_eq!(feat.id, Some(code_number(code)));
                        seen_levels.insert(level);
                    } else if name == "zones" {
                        assert!(z >= config.zone_min_zoom, "zones at z{z}");
                        let keys: Vec<&str> = feat.props.keys().map(String::as_str).collect();
                        assert!(keys == ["id", "layer", "name", "unit"] || keys == ["id", "layer", "name"], "{keys:?}");
                        assert!(feat.id.is_some());
                    } else if z >= config.component_full_zoom {
                        let keys: Vec<&str> = feat.props.keys().map(String::as_str).collect();
                        assert_eq!(keys, ["class", "code", "major", "status"]);
                        let (code, class, major) = (feat.get("code").str(), feat.get("class").str(), feat.get("major").str());
                        assert_eq!((code.len(), class.len(), major.len()), (16, 4, 2));
                        assert_eq!(&code[6..10], class);
                        assert_eq!(&class[..2], major);
                        assert!(["intact", "damaged", "missing", "occupied"].contains(&feat.get("status").str()));
                        assert_eq!(feat.id, None, "component points carry no id: `code` is the key");
                    } else {
                        let n = feat.get("point_count").num();
                        assert!(n >= 1.0);
                        let by_major: f64 = feat.props.iter().filter(|(k, _)| k.starts_with("count_")).map(|(_, v)| v.num()).sum();
                        assert_eq!(by_major, n, "per-major counts add up to point_count");
                        let bad = feat.get("damaged").num() + feat.get("missing").num() + feat.get("occupied").num();
                        assert!(bad <= n);
                        assert!(!feat.props.contains_key("code"));
                    }
                }
            }
        }
        // Every level that has reached its zoom shows up somewhere (as polygon or label).
        let expected: BTreeSet<usize> = (0..levels.len()).filter(|&l| z >= config.min_zoom_of_level(l)).map(|l| l + 1).collect();
        assert_eq!(seen_levels, expected, "levels at z{z}");
    }
}

#[test]
fn each_grid_has_one_label_point_per_zoom_inside_it() {
    let f = wuzhong();
    for z in [10u8, 12, 13, 15] {
        let mut labels: HashMap<String, Vec<(f64, f64)>> = HashMap::new();
        for (x, y) in tiles_over(&f.city, z, Datum::Wgs84) {
            let d = encode(f, &[Layer::Grids], z, x, y, Datum::Wgs84);
            for feat in features(&d, "grids").iter().filter(|f| f.is_point()) {
                let p = feat.point();
                let ll = tile_lonlat([p[0] as f64 + 0.5, p[1] as f64 + 0.5], z, x, y);
                labels.entry(feat.get("code").str().to_owned()).or_default().push(ll);
            }
        }
        let shown: Vec<_> = f.city.grids.iter().filter(|g| z >= f.tiles.config().min_zoom_of_level(g.level as usize)).collect();
        assert_eq!(labels.len(), shown.len(), "z{z}: one label per grid shown");
        for g in shown {
            let at = &labels[&g.code.to_string()];
            assert_eq!(at.len(), 1, "z{z}: grid {} labelled {} times", g.code, at.len());
            let p = geo::Point::new(at[0].0, at[0].1);
            assert!(g.geometry.contains(&p), "z{z}: label of {} at {p:?} is outside it", g.code);
        }
    }
}

/// A run of edges two grids of one level share: its vertices (lon, lat), in the order of
/// the first grid's ring.
struct Seam {
    a: String,
    b: String,
    level: u8,
    pts: Vec<(f64, f64)>,
}

fn seams(city: &City) -> Vec<Seam> {
    let key = |c: &geo_types::Coord<f64>| (c.x.to_bits(), c.y.to_bits());
    let mut out = Vec::new();
    for level in 0..city.hierarchy.levels.len() as u8 {
        let grids: Vec<_> = city.grids.iter().filter(|g| g.level == level).collect();
        // Undirected edge → grids having it.
        type Edge = ((u64, u64), (u64, u64));
        let mut owners: HashMap<Edge, Vec<usize>> = HashMap::new();
        for (i, g) in grids.iter().enumerate() {
            for p in &g.geometry {
                for w in p.exterior().0.windows(2) {
                    let (a, b) = (key(&w[0]), key(&w[1]));
                    owners.entry((a.min(b), a.max(b))).or_default().push(i);
                }
            }
        }
        for (i, g) in grids.iter().enumerate() {
            for p in &g.geometry {
                let ring = &p.exterior().0[..p.exterior().0.len() - 1];
                let n = ring.len();
                let other = |k: usize| {
                    let (a, b) = (key(&ring[k % n]), key(&ring[(k + 1) % n]));
                    owners[&(a.min(b), a.max(b))].iter().copied().find(|&o| o != i)
                };
                // Start after an edge that is not shared with the same neighbour as the next.
                let Some(start) = (0..n).find(|&k| other(k + n - 1) != other(k)) else { continue };
                let mut k = start;
                while k < start + n {
                    let nb = other(k);
                    let mut run = vec![ring[k % n]];
                    while k < start + n && other(k) == nb {
                        run.push(ring[(k + 1) % n]);
                        k += 1;
                    }
                    if let Some(j) = nb
                        && j > i
                        && run.len() >= 3
                    {
                        out.push(Seam { a: g.code.to_string(), b: grids[j].code.to_string(), level, pts: run.iter().map(|c| (c.x, c.y)).collect() });
                    }
                }
            }
        }
    }
    out
}

/// Within a unit of an exact tile position (the encoder rounds positions quantised to ~1 cm).
fn near(v: [i32; 2], t: [f64; 2]) -> bool {
    (v[0] as f64 - t[0]).abs() <= 1.0 && (v[1] as f64 - t[1]).abs() <= 1.0
}

/// The paths between the vertices of a ring near `p` and near `q`, both ways round.
fn paths(ring: &[[i32; 2]], p: [f64; 2], q: [f64; 2]) -> Vec<Vec<[i32; 2]>> {
    let n = ring.len();
    let mut out = Vec::new();
    for i in (0..n).filter(|&i| near(ring[i], p)) {
        for j in (0..n).filter(|&j| j != i && near(ring[j], q)) {
            out.push((0..=(j + n - i) % n).map(|k| ring[(i + k) % n]).collect());
            out.push((0..=(i + n - j) % n).map(|k| ring[(i + n - k) % n]).collect());
        }
    }
    out
}

/// For every shared run of edges between two grids that lies well inside a tile, the two
/// grids' decoded rings hold the same simplified path between the run's ends (one reversed),
/// made of the run's own vertices. Returns how many seams were checked and how many of them
/// lost vertices to simplification.
fn check_seams(f: &Fixture, z: u8, datum: Datum, min_level: u8) -> (usize, usize) {
    let mut simplified = 0;
    type Rings = Vec<Vec<[i32; 2]>>;
    let mut tiles: HashMap<(u32, u32), HashMap<String, Rings>> = HashMap::new();
    let mut checked = 0;
    let shown = |level: u8| z >= f.tiles.config().min_zoom_of_level(level as usize);
    for seam in seams(&f.city).iter().filter(|s| s.level >= min_level && shown(s.level)) {
        let pts: Vec<(f64, f64)> = seam.pts.iter().map(|&(lon, lat)| datum.from_wgs84(lon, lat)).collect();
        let (x, y) = tile_of(pts[0].0, pts[0].1, z);
        let inside = |t: [f64; 2]| t.iter().all(|v| (2.0..EXTENT as f64 - 2.0).contains(v));
        let proj: Vec<[f64; 2]> = pts.iter().map(|&(lon, lat)| tile_xy(lon, lat, z, x, y)).collect();
        if !proj.iter().all(|&t| inside(t)) {
            continue;
        }
        let ends = (proj[0], proj[proj.len() - 1]);
        if (ends.0[0] - ends.1[0]).abs().max((ends.0[1] - ends.1[1]).abs()) < 4.0 {
            continue;
        }
        let grids = tiles.entry((x, y)).or_insert_with(|| {
            let d = encode(f, &[Layer::Grids], z, x, y, datum);
            let mut m: HashMap<String, Rings> = HashMap::new();
            for feat in features(&d, "grids").iter().filter(|f| !f.is_point()) {
                m.entry(feat.get("code").str().to_owned()).or_default().extend(feat.rings().iter().cloned());
            }
            m
        });
        let on_seam = |path: &Vec<[i32; 2]>| path.iter().all(|&v| proj.iter().any(|&t| near(v, t)));
        let find = |code: &str| -> Rings {
            let rings = grids.get(code).unwrap_or_else(|| panic!("z{z}: grid {code} missing from its tile"));
            rings.iter().flat_map(|r| paths(r, ends.0, ends.1)).filter(on_seam).collect()
        };
        let (pa, pb) = (find(&seam.a), find(&seam.b));
        assert!(!pa.is_empty(), "z{z}: grid {} does not follow its seam with {}: {proj:?} {:?}", seam.a, seam.b, grids.get(&seam.a));
        assert!(pa.iter().any(|p| pb.contains(p)), "z{z} {datum}: the seam of {} and {} differs:\n{pa:?}\n{pb:?}", seam.a, seam.b);
        if pa.iter().all(|p| p.len() < proj.len()) {
            simplified += 1;
        }
        checked += 1;
    }
    (checked, simplified)
}

#[test]
fn neighbouring_grids_draw_the_identical_simplified_seam() {
    let f = wuzhong();
    for (z, min_level, at_least) in [(10u8, 1u8, 20), (12, 2, 20), (13, 2, 20), (14, 3, 20), (16, 3, 20), (18, 3, 1)] {
        let (n, simplified) = check_seams(f, z, Datum::Wgs84, min_level);
        assert!(n >= at_least, "z{z}: only {n} seams checked");
        if z <= 13 {
            assert!(simplified > 0, "z{z}: no seam was simplified, so the test proves little");
        }
    }
    assert!(check_seams(f, 14, Datum::Gcj02, 3).0 > 20);
}

#[test]
fn simplification_drops_vertices_at_low_zoom_but_not_at_high() {
    let f = wuzhong();
    let count = |z: u8| -> usize {
        tiles_over(&f.city, z, Datum::Wgs84)
            .into_iter()
            .map(|(x, y)| {
                let d = encode(f, &[Layer::Grids], z, x, y, Datum::Wgs84);
                features(&d, "grids").iter().filter(|f| !f.is_point()).map(|f| f.rings().iter().map(Vec::len).sum::<usize>()).sum::<usize>()
            })
            .sum()
    };
    let district: usize = f.city.grids.iter().filter(|g| g.level == 0).map(|g| g.geometry.0.iter().map(|p| p.exterior().0.len() - 1).sum::<usize>()).sum();
    let at8 = count(8);
    assert!(at8 < district / 2, "district at z8: {at8} of {district} vertices");
}

/// At a zoom where a level's grids cover a tile completely, their decoded polygons add up to
/// exactly the clip box: no gap, no overlap, in integer tile coordinates.
#[test]
fn a_level_tiles_the_plane_without_gaps_or_overlaps() {
    let f = wuzhong();
    let district: Vec<(f64, f64)> =
        f.city.grids.iter().filter(|g| g.level == 0).flat_map(|g| g.geometry.0.iter().flat_map(|p| p.exterior().0.iter().map(|c| (c.x, c.y)))).collect();
    let box_area = 2 * (EXTENT as i64 + 2 * BUFFER as i64).pow(2);
    let mut checked = BTreeMap::new();
    for z in [12u8, 13, 14, 16, 18] {
        for (x, y) in tiles_over(&f.city, z, Datum::Wgs84) {
            // Only tiles whose buffered box is well inside the district.
            let margin = (BUFFER + 8) as f64;
            let near = district.iter().any(|&(lon, lat)| {
                let t = tile_xy(lon, lat, z, x, y);
                t.iter().all(|v| (-margin..=EXTENT as f64 + margin).contains(v))
            });
            if near {
                continue;
            }
            let d = encode(f, &[Layer::Grids], z, x, y, Datum::Wgs84);
            let polys: Vec<&Feature> = features(&d, "grids").iter().filter(|f| !f.is_point()).collect();
            let level1: Vec<_> = polys.iter().filter(|f| f.get("level").num() == 1.0).collect();
            if level1.len() != 1 || level1[0].rings().len() != 1 || area2(&level1[0].rings()[0]) != box_area {
                continue; // the tile is outside the district
            }
            for level in 2..=4 {
                if z < f.tiles.config().min_zoom_of_level(level - 1) {
                    continue;
                }
                let sum: i64 = polys.iter().filter(|f| f.get("level").num() == level as f64).flat_map(|f| f.rings()).map(|r| area2(r)).sum();
                assert_eq!(sum, box_area, "z{z} {x}/{y}: level {level} grids cover {sum} of {box_area}");
                *checked.entry(z).or_insert(0) += 1;
            }
        }
    }
    for z in [14u8, 16, 18] {
        assert!(checked.get(&z).copied().unwrap_or(0) >= 3, "too few tiles inside the district at z{z}: {checked:?}");
    }
}

/// Brute force: (tile x, tile y) → components in it.
fn brute_force(city: &City, z: u8, datum: Datum) -> HashMap<(u32, u32), Vec<usize>> {
    let mut m: HashMap<(u32, u32), Vec<usize>> = HashMap::new();
    for (i, c) in city.components.iter().enumerate() {
        let (lon, lat) = datum.from_wgs84(c.location.x, c.location.y);
        m.entry(tile_of(lon, lat, z)).or_default().push(i);
    }
    m
}

#[test]
fn cluster_counts_equal_the_components_in_each_tile_and_add_up_per_zoom() {
    let f = wuzhong();
    let city = &f.city;
    for z in 0..f.tiles.config().component_full_zoom {
        let truth = brute_force(city, z, Datum::Wgs84);
        let mut total = 0u64;
        for (x, y) in tiles_over(city, z, Datum::Wgs84) {
            let d = encode(f, &[Layer::Components], z, x, y, Datum::Wgs84);
            let mut count = 0u64;
            let mut majors: BTreeMap<String, u64> = BTreeMap::new();
            let mut damaged = 0u64;
            let mut drawn = 0usize;
            for c in features(&d, "components") {
                count += c.get("point_count").num() as u64;
                damaged += c.get("damaged").num() as u64;
                for (k, v) in c.props.iter().filter(|(k, _)| k.starts_with("count_")) {
                    *majors.entry(k[6..].to_owned()).or_default() += v.num() as u64;
                }
                assert!((0..EXTENT).contains(&c.point()[0]) && (0..EXTENT).contains(&c.point()[1]), "z{z}: a cluster lies in its tile");
                drawn += 1;
            }
            let members = truth.get(&(x, y)).map(Vec::as_slice).unwrap_or(&[]);
            assert_eq!(count, members.len() as u64, "z{z} {x}/{y}: clusters count {count}, the tile holds {}", members.len());
            let mut want: BTreeMap<String, u64> = BTreeMap::new();
            for &i in members {
                *want.entry(format!("{:02}", city.components[i].class.major())).or_default() += 1;
            }
            assert_eq!(majors, want, "z{z} {x}/{y}: per-major counts");
            let want_damaged = members.iter().filter(|&&i| city.components[i].status.en() == "damaged").count() as u64;
            assert_eq!(damaged, want_damaged);
            assert!(drawn as u64 <= count, "z{z}: no empty cluster");
            total += count;
        }
        assert_eq!(total, city.components.len() as u64, "z{z}: clusters of all tiles");
    }
}

#[test]
fn the_density_guard_clusters_full_detail_tiles_that_hold_too_many_components() {
    let f = wuzhong();
    let city = &f.city;
    let limit = 40;
    let guarded = TileSet::build(city, TileConfig { max_points_per_tile: limit, ..TileConfig::default() });
    let (mut clustered, mut detailed) = (0, 0);
    for z in [16u8, 17] {
        for ((x, y), members) in brute_force(city, z, Datum::Wgs84) {
            let bytes = guarded.encode(city, &[Layer::Components], z, x, y, Datum::Wgs84).unwrap().expect("a tile with components");
            let d = decode(&bytes);
            let feats = features(&d, "components");
            if members.len() > limit as usize {
                clustered += 1;
                let total: f64 = feats.iter().map(|c| c.get("point_count").num()).sum();
                assert_eq!(total as usize, members.len(), "z{z} {x}/{y}: the clusters count every component");
                assert!(feats.iter().all(|c| !c.props.contains_key("code")), "z{z} {x}/{y}: clusters only");
                // Deterministic: the same tile is drawn the same way again.
                assert_eq!(guarded.encode(city, &[Layer::Components], z, x, y, Datum::Wgs84).unwrap().unwrap(), bytes);
            } else {
                detailed += 1;
                assert_eq!(feats.len(), members.len(), "z{z} {x}/{y}: one point per component");
                assert!(feats.iter().all(|c| !c.props.contains_key("point_count")));
            }
        }
    }
    assert!(clustered > 5 && detailed > 5, "the fixture exercises both sides: {clustered} clustered, {detailed} detailed");
    // The default guard leaves this city (a third of Xicheng's density) in full detail at z16.
    let (x, y) = brute_force(city, 16, Datum::Wgs84).into_iter().max_by_key(|(_, m)| m.len()).unwrap().0;
    let d = encode(f, &[Layer::Components], 16, x, y, Datum::Wgs84);
    assert!(features(&d, "components").iter().all(|c| c.props.contains_key("code")));
}

#[test]
fn full_detail_tiles_hold_each_component_once_at_its_place() {
    let f = wuzhong();
    let city = &f.city;
    let by_code: HashMap<String, usize> = city.components.iter().enumerate().map(|(i, c)| (c.code.to_string(), i)).collect();
    for z in [16u8, 18] {
        let truth = brute_force(city, z, Datum::Wgs84);
        let mut seen = 0;
        for (&(x, y), members) in &truth {
            let d = encode(f, &[Layer::Components], z, x, y, Datum::Wgs84);
            let feats = features(&d, "components");
            let mut codes: Vec<&str> = feats.iter().map(|c| c.get("code").str()).collect();
            codes.sort_unstable();
            let mut want: Vec<String> = members.iter().map(|&i| city.components[i].code.to_string()).collect();
            want.sort_unstable();
            assert_eq!(codes, want, "z{z} {x}/{y}");
            for c in feats {
                let comp = &city.components[by_code[c.get("code").str()]];
                let t = tile_xy(comp.location.x, comp.location.y, z, x, y);
                let p = c.point();
                assert!((p[0] as f64 - t[0]).abs() <= 1.0 && (p[1] as f64 - t[1]).abs() <= 1.0, "{p:?} vs {t:?}");
                assert_eq!(c.get("status").str(), comp.status.en());
                assert_eq!(c.get("class").str(), comp.class.to_string());
            }
            seen += feats.len();
        }
        assert_eq!(seen, city.components.len());
    }
}

#[test]
fn gcj02_tiles_place_components_at_their_shifted_position() {
    let f = wuzhong();
    let city = &f.city;
    let by_code: HashMap<String, usize> = city.components.iter().enumerate().map(|(i, c)| (c.code.to_string(), i)).collect();
    let z = 17;
    let truth = brute_force(city, z, Datum::Gcj02);
    let mut seen = 0;
    let mut offsets = Vec::new();
    for (&(x, y), members) in truth.iter().take(400) {
        let d = encode(f, &[Layer::Components], z, x, y, Datum::Gcj02);
        let feats = features(&d, "components");
        assert_eq!(feats.len(), members.len(), "{x}/{y}");
        for c in feats {
            let comp = &city.components[by_code[c.get("code").str()]];
            let p = c.point();
            // Back from GCJ-02 tile coordinates to WGS84: within a pixel (16 units) of the
            // component; in fact within one unit.
            let (glon, glat) = tile_lonlat([p[0] as f64 + 0.5, p[1] as f64 + 0.5], z, x, y);
            let (lon, lat) = Datum::Gcj02.to_wgs84(glon, glat);
            let t = tile_xy(lon, lat, z, x, y);
            let want = tile_xy(comp.location.x, comp.location.y, z, x, y);
            assert!((t[0] - want[0]).abs() <= 1.0 && (t[1] - want[1]).abs() <= 1.0, "{t:?} vs {want:?}");
            let (wx, wy) = (comp.location.x, comp.location.y);
            offsets.push(citygrid::crs::haversine_m(geo_types::Coord { x: wx, y: wy }, geo_types::Coord { x: glon, y: glat }));
        }
        seen += feats.len();
    }
    assert!(seen > 1000);
    // Suzhou's GCJ-02 offset is ~466 m: the layer really moved.
    assert!(offsets.iter().all(|&m| (400.0..550.0).contains(&m)), "{:?}", offsets.iter().take(5).collect::<Vec<_>>());
}

#[test]
fn gcj02_tiles_hold_every_component_and_cluster_once() {
    let f = wuzhong();
    let city = &f.city;
    for z in [8u8, 13, 15, 16] {
        let mut total = 0u64;
        let mut codes = BTreeSet::new();
        for (x, y) in tiles_over(city, z, Datum::Gcj02) {
            let d = encode(f, &[Layer::Components], z, x, y, Datum::Gcj02);
            for c in features(&d, "components") {
                if z >= 16 {
                    assert!(codes.insert(c.get("code").str().to_owned()));
                    total += 1;
                } else {
                    total += c.get("point_count").num() as u64;
                }
            }
        }
        assert_eq!(total, city.components.len() as u64, "z{z}");
    }
}

#[test]
fn gcj02_grid_labels_move_by_the_datum_offset() {
    let f = wuzhong();
    let z = 15;
    let mut labels: HashMap<String, [(f64, f64); 2]> = HashMap::new();
    for (i, datum) in [Datum::Wgs84, Datum::Gcj02].into_iter().enumerate() {
        for (x, y) in tiles_over(&f.city, z, datum) {
            let d = encode(f, &[Layer::Grids], z, x, y, datum);
            for feat in features(&d, "grids").iter().filter(|f| f.is_point()) {
                let p = feat.point();
                let ll = tile_lonlat([p[0] as f64 + 0.5, p[1] as f64 + 0.5], z, x, y);
                labels.entry(feat.get("code").str().to_owned()).or_insert([(0.0, 0.0); 2])[i] = ll;
            }
        }
    }
    assert_eq!(labels.len(), f.city.grids.len());
    for (code, [w, g]) in labels {
        let shifted = Datum::Gcj02.from_wgs84(w.0, w.1);
        let (a, b) = (world(shifted.0, shifted.1), world(g.0, g.1));
        let units = ((a[0] - b[0]).abs().max((a[1] - b[1]).abs())) * (1u64 << z) as f64 * EXTENT as f64;
        assert!(units <= 2.0, "{code}: GCJ-02 label is {units} units from the shifted WGS84 one");
    }
}

#[test]
fn the_same_tile_gives_the_same_bytes() {
    let f = tiny();
    let again = TileSet::build(&f.city, TileConfig::default());
    let regenerated = make(Preset::Tiny, None);
    for z in [3u8, 12, 14, 16, 18] {
        for (x, y) in tiles_over(&f.city, z, Datum::Wgs84) {
            for datum in [Datum::Wgs84, Datum::Gcj02] {
                let a = f.tiles.encode(&f.city, &Layer::ALL, z, x, y, datum).unwrap();
                assert_eq!(a, f.tiles.encode(&f.city, &Layer::ALL, z, x, y, datum).unwrap());
                assert_eq!(a, again.encode(&f.city, &Layer::ALL, z, x, y, datum).unwrap());
                assert_eq!(a, regenerated.tiles.encode(&regenerated.city, &Layer::ALL, z, x, y, datum).unwrap());
            }
        }
    }
}

/// The encoder writes the protobuf bytes itself: they must be exactly what prost writes for
/// the decoded message (fields in tag order, packed integers, minimal varints), at every zoom,
/// with clusters and full-detail points, polygons and labels, in WGS84 and GCJ-02.
#[test]
fn tile_bytes_are_the_canonical_protobuf_of_their_message() {
    use citygrid::tiles::vector_tile::Tile;
    use prost::Message;
    let mut checked = 0;
    for f in [tiny(), wuzhong()] {
        for z in [0u8, 8, 11, 12, 13, 14, 15, 16, 17, 18] {
            for (x, y) in tiles_over(&f.city, z, Datum::Wgs84).into_iter().take(40) {
                for datum in [Datum::Wgs84, Datum::Gcj02] {
                    for layers in [&Layer::ALL[..], &[Layer::Components], &[Layer::Zones, Layer::Grids]] {
                        let Some(bytes) = f.tiles.encode(&f.city, layers, z, x, y, datum).unwrap() else { continue };
                        let message = Tile::decode(bytes.as_slice()).unwrap();
                        assert_eq!(message.encode_to_vec(), bytes, "{z}/{x}/{y} {datum} {layers:?}");
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 500, "{checked} tiles");
}

#[test]
fn layers_come_as_asked_and_empty_tiles_are_none() {
    let f = tiny();
    let c = f.city.components[0].location;
    let (x, y) = tile_of(c.x, c.y, 16);
    let both = encode(f, &[Layer::Components, Layer::Grids], 16, x, y, Datum::Wgs84);
    assert_eq!(both.keys().collect::<Vec<_>>(), ["components", "grids"]);
    let one = encode(f, &[Layer::Components, Layer::Components], 16, x, y, Datum::Wgs84);
    assert_eq!(one.keys().collect::<Vec<_>>(), ["components"]);
    assert_eq!(f.tiles.encode(&f.city, &[], 16, x, y, Datum::Wgs84).unwrap(), None);
    // Far from the city.
    assert_eq!(f.tiles.encode(&f.city, &Layer::ALL, 12, 5, 5, Datum::Wgs84).unwrap(), None);
    assert_eq!(f.tiles.encode(&f.city, &Layer::ALL, 16, x + 40, y, Datum::Gcj02).unwrap(), None);
}

#[test]
fn tiles_out_of_range_are_refused() {
    let f = tiny();
    let max = f.tiles.config().max_zoom;
    for (z, x, y) in [(max + 1, 0, 0), (0, 1, 0), (0, 0, 1), (3, 8, 0), (3, 0, 8), (16, 65536, 0), (255, 0, 0)] {
        assert_eq!(f.tiles.encode(&f.city, &Layer::ALL, z, x, y, Datum::Wgs84), Err(TileError::OutOfRange { z, x, y, max_zoom: max }), "{z}/{x}/{y}");
    }
    assert!(f.tiles.encode(&f.city, &Layer::ALL, max, 0, 0, Datum::Wgs84).is_ok());
}

#[test]
fn bd09_tiles_are_shifted_further_than_gcj02() {
    let f = tiny();
    let c = &f.city.components[7];
    let z = 18;
    for datum in [Datum::Gcj02, Datum::Bd09, Datum::Cgcs2000] {
        let (lon, lat) = datum.from_wgs84(c.location.x, c.location.y);
        let (x, y) = tile_of(lon, lat, z);
        let d = encode(f, &[Layer::Components], z, x, y, datum);
        let code = c.code.to_string();
        let feat = features(&d, "components").iter().find(|f| f.get("code").str() == code).expect("the component");
        let t = tile_xy(lon, lat, z, x, y);
        let p = feat.point();
        assert!((p[0] as f64 - t[0]).abs() <= 1.0 && (p[1] as f64 - t[1]).abs() <= 1.0, "{datum}");
    }
}

/// The tile z/x/y plus `pad` tile units around it, as a lon/lat rectangle.
fn tile_box(z: u8, x: u32, y: u32, pad: f64) -> geo_types::Polygon<f64> {
    let (w, n) = tile_lonlat([-pad, -pad], z, x, y);
    let (e, s) = tile_lonlat([EXTENT as f64 + pad, EXTENT as f64 + pad], z, x, y);
    geo_types::Rect::new(geo_types::coord! { x: w, y: s }, geo_types::coord! { x: e, y: n }).to_polygon()
}

#[test]
fn zone_tiles_hold_the_zones_that_reach_into_them_with_their_properties() {
    let f = tiny();
    let city = &f.city;
    assert!(city.zones.len() >= 4, "the tiny city has road sections: {}", city.zones.len());
    let min = f.tiles.config().zone_min_zoom;
    let (mut present, mut absent, mut tiles_without_zones) = (0, 0, 0);
    for z in [min - 1, min, 13, 14, 16, 18] {
        let mut labels: HashMap<usize, usize> = HashMap::new();
        for (x, y) in tiles_over(city, z, Datum::Wgs84) {
            let d = encode(f, &[Layer::Grids, Layer::Zones], z, x, y, Datum::Wgs84);
            let feats = features(&d, "zones");
            if z < min {
                assert!(feats.is_empty(), "no zones below z{min}");
                continue;
            }
            if feats.is_empty() && !features(&d, "grids").is_empty() {
                tiles_without_zones += 1;
            }
            for feat in feats {
                let i = feat.id.expect("a feature id") as usize - 1;
                let zone = &city.zones[i];
                assert_eq!(
                    (feat.get("layer").str(), feat.get("id").str(), feat.get("name").str()),
                    (zone.layer.as_str(), zone.id.as_str(), zone.name.as_str())
                );
                let unit = zone.unit.map(|u| city.units.get(u).name.as_str());
                assert_eq!(feat.props.get("unit").map(Prop::str), unit, "{}", zone.id);
                match &feat.geom {
                    Geom::Points(p) => {
                        let p = p[0];
                        assert!((0..EXTENT).contains(&p[0]) && (0..EXTENT).contains(&p[1]), "label {p:?} outside its tile");
                        let (lon, lat) = tile_lonlat([p[0] as f64 + 0.5, p[1] as f64 + 0.5], z, x, y);
                        assert!(zone.geometry.contains(&geo::Point::new(lon, lat)), "z{z}: label of {} outside it", zone.id);
                        *labels.entry(i).or_default() += 1;
                    }
                    Geom::Polygon(rings) => {
                        assert!(area2(&rings[0]) > 0, "exterior first");
                        for p in rings.iter().flatten() {
                            assert!(p.iter().all(|v| (-BUFFER..=EXTENT + BUFFER).contains(v)), "z{z}: {} vertex {p:?} outside tile + buffer", zone.id);
                        }
                    }
                    g => panic!("unexpected geometry {g:?}"),
                }
            }
            // Against the zones' own geometry: a zone that reaches into the tile (by more
            // than 8 × 8 units, so that rounding cannot make it vanish) is drawn; a zone that
            // stays outside the tile and its buffer is not.
            let (tile, buffered) = (tile_box(z, x, y, 0.0), tile_box(z, x, y, BUFFER as f64));
            let unit2 = tile.unsigned_area() / (EXTENT as f64 * EXTENT as f64);
            for (i, zone) in city.zones.iter().enumerate() {
                let drawn = feats.iter().any(|f| f.id == Some(i as u64 + 1) && !f.is_point());
                if !zone.geometry.intersects(&buffered) {
                    assert!(!feats.iter().any(|f| f.id == Some(i as u64 + 1)), "z{z} {x}/{y}: {} is outside, yet in the tile", zone.id);
                    absent += 1;
                } else if zone.geometry.intersection(&geo_types::MultiPolygon(vec![tile.clone()])).unsigned_area() / unit2 > 64.0 {
                    assert!(drawn, "z{z} {x}/{y}: {} reaches into the tile, yet is not drawn", zone.id);
                    present += 1;
                }
            }
        }
        if z >= min {
            for i in 0..city.zones.len() {
                assert_eq!(labels.get(&i), Some(&1), "z{z}: {} labelled once", city.zones[i].id);
            }
        }
    }
    assert!(present > 50 && absent > 1000 && tiles_without_zones > 10, "{present} drawn, {absent} left out, {tiles_without_zones} tiles without zones");
}

/// The test decoder itself, against the examples of the MVT 2.1 specification.
#[test]
fn decodes_the_spec_examples() {
    // MVT 2.1, 4.3.5.
    assert_eq!(decode_geometry(1, &[9, 50, 34]), Geom::Points(vec![[25, 17]]));
    assert_eq!(decode_geometry(1, &[17, 10, 14, 3, 9]), Geom::Points(vec![[5, 7], [3, 2]]));
    assert_eq!(decode_geometry(2, &[9, 4, 4, 18, 0, 16, 16, 0]), Geom::Lines(vec![vec![[2, 2], [2, 10], [10, 10]]]));
    let Geom::Polygon(r) = decode_geometry(3, &[9, 6, 12, 18, 10, 12, 24, 44, 15]) else { panic!() };
    assert_eq!(r, vec![vec![[3, 6], [8, 12], [20, 34]]]);
    assert!(area2(&r[0]) > 0, "the spec's example exterior ring has positive area");
    // The multipolygon example: exterior, exterior, interior (negative area).
    let g = [9, 0, 0, 26, 20, 0, 0, 20, 19, 0, 15, 9, 22, 2, 26, 18, 0, 0, 18, 17, 0, 15, 9, 4, 13, 26, 0, 8, 8, 0, 0, 7, 15];
    let Geom::Polygon(r) = decode_geometry(3, &g) else { panic!() };
    let signs: Vec<bool> = r.iter().map(|r| area2(r) > 0).collect();
    assert_eq!(signs, [true, true, false]);
}
