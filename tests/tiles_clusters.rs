//! Density-adaptive clusters of the `components` layer, decoded and checked against the city's
//! components (an oracle written out independently of the encoder): a component with no other
//! within two cluster radii is drawn alone at its own place; dense tiles get clusters whose
//! number is bounded by the radius (not one per cell of a lattice); every tile's clusters count
//! exactly its components; the same tile gives the same bytes.

mod common;

use std::collections::HashMap;
use std::f64::consts::PI;
use std::sync::OnceLock;

use citygrid::crs::Datum;
use citygrid::demo::{DemoSpec, Preset, generate};
use citygrid::model::City;
use citygrid::tiles::{CLUSTER_RADIUS_PER_TILE, Layer, TileConfig, TileSet};
use common::mvt::decode;

const EXTENT: f64 = 4096.0;

struct Fixture {
    city: City,
    tiles: TileSet,
}

fn make(components: usize) -> Fixture {
    let demo = generate(&DemoSpec { preset: Preset::Wuzhong, components: Some(components), seed: 1 }, &|_, _| {}).unwrap();
    let tiles = TileSet::build(&demo.city, TileConfig::default());
    Fixture { city: demo.city, tiles }
}

/// Wuzhong's grids with 20,000 components.
fn wuzhong() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| make(20_000))
}

/// Wuzhong's grids with 1,000 components: sparse.
fn sparse() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| make(1_000))
}

fn world(lon: f64, lat: f64) -> [f64; 2] {
    let phi = lat.to_radians();
    [(lon + 180.0) / 360.0, (1.0 - (phi.tan() + 1.0 / phi.cos()).ln() / PI) / 2.0]
}

/// The tile holding a point (half-open tiles in Web Mercator quantised to 2^-32) and the
/// point's position in it, in tile units.
fn place(lon: f64, lat: f64, z: u8) -> ((u32, u32), [f64; 2]) {
    let w = world(lon, lat);
    let q = |v: f64| (v * 4_294_967_296.0).floor() as u64;
    let (x, y) = ((q(w[0]) >> (32 - z)) as u32, (q(w[1]) >> (32 - z)) as u32);
    let n = (1u64 << z) as f64;
    ((x, y), [(w[0] * n - x as f64) * EXTENT, (w[1] * n - y as f64) * EXTENT])
}

/// Per tile of zoom z: the positions (tile units) of its components.
fn members(city: &City, z: u8) -> HashMap<(u32, u32), Vec<[f64; 2]>> {
    let mut m: HashMap<(u32, u32), Vec<[f64; 2]>> = HashMap::new();
    for c in &city.components {
        let (tile, p) = place(c.location.x, c.location.y, z);
        m.entry(tile).or_default().push(p);
    }
    m
}

/// The clusters of a tile: (position, point_count).
fn clusters(f: &Fixture, z: u8, x: u32, y: u32) -> Vec<([i32; 2], u64)> {
    let bytes = f.tiles.encode(&f.city, &[Layer::Components], z, x, y, Datum::Wgs84).unwrap().expect("a tile with components");
    assert_eq!(f.tiles.encode(&f.city, &[Layer::Components], z, x, y, Datum::Wgs84).unwrap().unwrap(), bytes, "z{z} {x}/{y}: deterministic");
    let d = decode(&bytes);
    d["components"].features.iter().map(|c| (c.point(), c.get("point_count").num() as u64)).collect()
}

#[test]
fn a_component_with_no_other_within_two_radii_is_drawn_alone_at_its_place() {
    let f = sparse();
    let radius = CLUSTER_RADIUS_PER_TILE * EXTENT;
    let mut alone = 0;
    for z in 10..16u8 {
        for ((x, y), points) in members(&f.city, z) {
            let drawn = clusters(f, z, x, y);
            assert_eq!(drawn.iter().map(|c| c.1).sum::<u64>(), points.len() as u64, "z{z} {x}/{y}: the clusters count the tile's components");
            // Points by buckets two radii wide: a point's neighbours within two radii are in
            // its bucket or the eight around it.
            let side = 2.0 * radius;
            let key = |p: &[f64; 2]| ((p[0] / side).floor() as i64, (p[1] / side).floor() as i64);
            let mut buckets: HashMap<(i64, i64), Vec<usize>> = HashMap::new();
            for (i, p) in points.iter().enumerate() {
                buckets.entry(key(p)).or_default().push(i);
            }
            for (i, p) in points.iter().enumerate() {
                let (bx, by) = key(p);
                let isolated = (bx - 1..=bx + 1)
                    .flat_map(|x| (by - 1..=by + 1).map(move |y| (x, y)))
                    .all(|b| buckets.get(&b).is_none_or(|js| js.iter().all(|&j| j == i || (p[0] - points[j][0]).hypot(p[1] - points[j][1]) > side)));
                if !isolated {
                    continue;
                }
                alone += 1;
                let found = drawn.iter().any(|(c, n)| *n == 1 && (c[0] as f64 - p[0]).abs() <= 1.0 && (c[1] as f64 - p[1]).abs() <= 1.0);
                assert!(found, "z{z} {x}/{y}: the isolated component at {p:?} is a cluster of 1 at its place: {drawn:?}");
            }
        }
    }
    assert!(alone > 20, "the fixture has isolated components to check: {alone}");
}

#[test]
fn dense_tiles_get_clusters_bounded_by_the_radius_not_one_per_lattice_cell() {
    let f = wuzhong();
    let radius = CLUSTER_RADIUS_PER_TILE * EXTENT;
    // Cluster seeds are more than a radius apart, so discs of half a radius around them are
    // disjoint and lie in the tile grown by half a radius: at most this many clusters a tile.
    let bound = ((EXTENT + radius).powi(2) / (PI * (radius / 2.0).powi(2))).floor() as usize;
    let mut dense = 0;
    for z in 12..16u8 {
        let tiles = members(&f.city, z);
        for ((x, y), points) in &tiles {
            let drawn = clusters(f, z, *x, *y);
            assert!(drawn.len() <= bound, "z{z} {x}/{y}: {} clusters, more than {bound}", drawn.len());
            // A 16x16 lattice of 256-unit cells would give one cluster per non-empty cell.
            let cells: std::collections::HashSet<(i64, i64)> = points.iter().map(|p| ((p[0] / 256.0) as i64, (p[1] / 256.0) as i64)).collect();
            if cells.len() > bound {
                dense += 1;
            }
        }
    }
    assert!(dense >= 3, "the fixture has tiles a lattice would fill with more than {bound} clusters: {dense}");
}
