//! The 500 KB budget on the Xicheng preset (1,902 grids, 610,440 components): a sample of
//! tiles at every zoom 0–18 (every tile over the city where there are few, else the densest
//! and an even spread), each layer alone and both together, WGS84 and GCJ-02.
//! Slow in debug: `cargo test --release --test tiles_xicheng -- --ignored --nocapture`.

mod common;

use std::collections::HashMap;
use std::f64::consts::PI;

use citygrid::crs::Datum;
use citygrid::demo::{DemoSpec, Preset, generate};
use citygrid::tiles::{Layer, TileConfig, TileSet};

const BUDGET: usize = 500 * 1024;

fn tile_of(lon: f64, lat: f64, z: u8) -> (u32, u32) {
    let phi = lat.to_radians();
    let w = [(lon + 180.0) / 360.0, (1.0 - (phi.tan() + 1.0 / phi.cos()).ln() / PI) / 2.0];
    let q = |v: f64| (v * 4_294_967_296.0).floor() as u64;
    ((q(w[0]) >> (32 - z)) as u32, (q(w[1]) >> (32 - z)) as u32)
}

#[test]
#[ignore = "slow: run with --release -- --ignored"]
fn every_zoom_stays_under_500_kb() {
    let demo = generate(&DemoSpec { preset: Preset::Xicheng, components: None, seed: 1 }, &|_, _| {}).unwrap();
    let city = demo.city;
    assert_eq!(city.components.len(), 610_440);
    let set = TileSet::build(&city, TileConfig::default());
    println!("zoom | tiles | components max / median B | grids max / median B | both max B | densest tile components");
    for z in 0..=18u8 {
        let mut count: HashMap<(u32, u32), usize> = HashMap::new();
        for c in &city.components {
            *count.entry(tile_of(c.location.x, c.location.y, z)).or_default() += 1;
        }
        let mut tiles: Vec<((u32, u32), usize)> = count.into_iter().collect();
        tiles.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let sample: Vec<(u32, u32)> = if tiles.len() <= 300 {
            tiles.iter().map(|t| t.0).collect()
        } else {
            let step = tiles.len() / 100;
            tiles.iter().take(100).chain(tiles.iter().skip(100).step_by(step)).map(|t| t.0).collect()
        };
        let (mut comp, mut grid, mut both) = (Vec::new(), Vec::new(), 0usize);
        for &(x, y) in &sample {
            let size = |layers: &[Layer], datum| set.encode(&city, layers, z, x, y, datum).unwrap().map_or(0, |b| b.len());
            comp.push(size(&[Layer::Components], Datum::Wgs84));
            grid.push(size(&[Layer::Grids], Datum::Wgs84));
            let all = size(&Layer::ALL, Datum::Wgs84).max(size(&Layer::ALL, Datum::Gcj02));
            both = both.max(all);
            assert!(all <= BUDGET, "z{z} {x}/{y}: {all} bytes");
        }
        // Decode the largest to be sure it is a valid tile.
        let (x, y) = tiles[0].0;
        common::mvt::decode(&set.encode(&city, &Layer::ALL, z, x, y, Datum::Wgs84).unwrap().unwrap());
        comp.sort_unstable();
        grid.sort_unstable();
        let (cn, gn) = (comp.len(), grid.len());
        println!("z{z} | {} | {} / {} | {} / {} | {} | {}", sample.len(), comp[cn - 1], comp[cn / 2], grid[gn - 1], grid[gn / 2], both, tiles[0].1);
    }
}
