//! Tile encoding on the Xicheng preset (1,902 grids, 610,440 components), uncached.
//!
//! `cargo bench --bench tiles` prints, before criterion's own lines:
//! - the TileSet build time and the heap it holds (grid geometry, component index, clusters);
//! - per zoom, over a fixed sample of tiles (the densest and an even spread of the rest):
//!   tile size max / median and encode time p50 / p99 / max over the tiles (each tile's time
//!   is the median of 7 runs);
//!
//! - where an uncached HTTP tile's time goes (`grids,zones,components`, z12–z18): the encode
//!   and each compression the tile cache may apply (`MISS_PROFILE_ONLY=1` stops after this);
//!
//! then criterion measures `tiles/build`, `tiles/components/zN` (z12–z18, one sample tile after
//! another), `tiles/components_gcj02/z16`, `tiles/grids/zN` (z0–z18) and `tiles/grids_gcj02/z13`.

use std::collections::HashMap;
use std::f64::consts::PI;
use std::hint::black_box;
use std::time::{Duration, Instant};

use citygrid::crs::Datum;
use citygrid::demo::{DemoSpec, Preset, generate};
use citygrid::model::City;
use citygrid::tiles::{Layer, TileConfig, TileSet};
use criterion::{Criterion, criterion_group, criterion_main};

fn tile_of(lon: f64, lat: f64, z: u8) -> (u32, u32) {
    let phi = lat.to_radians();
    let n = (1u64 << z) as f64;
    (((lon + 180.0) / 360.0 * n).floor() as u32, ((1.0 - (phi.tan() + 1.0 / phi.cos()).ln() / PI) / 2.0 * n).floor() as u32)
}

/// Up to 64 tiles at zoom z over the city (in `datum`'s map): the 32 with most components,
/// then an even spread.
fn sample(city: &City, z: u8, datum: Datum) -> Vec<(u32, u32)> {
    let mut count: HashMap<(u32, u32), usize> = HashMap::new();
    for c in &city.components {
        let (lon, lat) = datum.from_wgs84(c.location.x, c.location.y);
        *count.entry(tile_of(lon, lat, z)).or_default() += 1;
    }
    let mut tiles: Vec<((u32, u32), usize)> = count.into_iter().collect();
    tiles.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    if tiles.len() <= 64 {
        return tiles.into_iter().map(|t| t.0).collect();
    }
    let step = (tiles.len() - 32) / 32;
    tiles.iter().take(32).chain(tiles.iter().skip(32).step_by(step.max(1)).take(32)).map(|t| t.0).collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Sizes and encode times over the sample. Each tile is encoded 7 times and its median kept
/// (on a shared 2-core machine a single run can lose the CPU for a whole time slice); the
/// p50 / p99 / max are then over the tiles.
fn report(city: &City, set: &TileSet, layer: Layer, zooms: std::ops::RangeInclusive<u8>, datum: Datum) {
    println!("{} ({datum}): zoom | tiles | size max / median B | encode p50 / p99 / max ms (per-tile median of 7)", layer.name());
    for z in zooms {
        let tiles = sample(city, z, datum);
        let mut sizes = Vec::new();
        let mut times = Vec::new();
        for &(x, y) in &tiles {
            let mut runs = Vec::new();
            for round in 0..7 {
                let t = Instant::now();
                let b = set.encode(city, &[layer], z, x, y, datum).unwrap();
                runs.push(t.elapsed().as_secs_f64() * 1e3);
                if round == 0 {
                    sizes.push(b.map_or(0, |b| b.len()));
                }
            }
            runs.sort_by(f64::total_cmp);
            times.push(runs[runs.len() / 2]);
        }
        sizes.sort_unstable();
        times.sort_by(f64::total_cmp);
        println!(
            "  z{z:<2} | {:>3} | {:>7} / {:>7} | {:.3} / {:.3} / {:.3}",
            tiles.len(),
            sizes[sizes.len() - 1],
            sizes[sizes.len() / 2],
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            times[times.len() - 1]
        );
    }
}

/// Where an uncached HTTP tile's time goes, per zoom, for the viewer's tileset
/// (`grids,zones,components`) over the sample: the MVT encode, then each compression the tile
/// cache may apply to it (medians over the tiles of each tile's median of 5 runs), and sizes.
fn miss_profile(city: &City, set: &TileSet) {
    use std::io::Write;
    let layers = [Layer::Grids, Layer::Zones, Layer::Components];
    let time = |f: &mut dyn FnMut() -> usize| {
        let mut runs: Vec<(f64, usize)> = (0..5)
            .map(|_| {
                let t = Instant::now();
                let n = f();
                (t.elapsed().as_secs_f64() * 1e3, n)
            })
            .collect();
        runs.sort_by(|a, b| a.0.total_cmp(&b.0));
        runs[2]
    };
    let gzip = |raw: &[u8], level: u32| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        e.write_all(raw).unwrap();
        e.finish().unwrap().len()
    };
    let brotli = |raw: &[u8], quality: u32| {
        let mut out = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut out, 4096, quality, 22);
            w.write_all(raw).unwrap();
        }
        out.len()
    };
    println!(
        "uncached grids,zones,components tile (median over the sample): zoom | raw KB | encode ms | gzip-6 ms (KB) | \
         gzip-1 ms (KB) | brotli-6 ms (KB) | brotli-4 ms (KB) | brotli-1 ms (KB)"
    );
    for z in [12u8, 13, 14, 15, 16, 17, 18] {
        let mut rows: Vec<[f64; 12]> = Vec::new();
        for (x, y) in sample(city, z, Datum::Wgs84) {
            let Some(raw) = set.encode(city, &layers, z, x, y, Datum::Wgs84).unwrap() else { continue };
            let enc = time(&mut || set.encode(city, &layers, z, x, y, Datum::Wgs84).unwrap().map_or(0, |b| b.len()));
            let g6 = time(&mut || gzip(&raw, 6));
            let g1 = time(&mut || gzip(&raw, 1));
            let b6 = time(&mut || brotli(&raw, 6));
            let b4 = time(&mut || brotli(&raw, 4));
            let b1 = time(&mut || brotli(&raw, 1));
            let kb = |n: usize| n as f64 / 1024.0;
            rows.push([kb(raw.len()), enc.0, g6.0, kb(g6.1), g1.0, kb(g1.1), b6.0, kb(b6.1), b4.0, kb(b4.1), b1.0, kb(b1.1)]);
        }
        let med = |i: usize| {
            let mut v: Vec<f64> = rows.iter().map(|r| r[i]).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "  z{z:<2} | {:6.1} | {:.3} | {:.3} ({:.1}) | {:.3} ({:.1}) | {:.3} ({:.1}) | {:.3} ({:.1}) | {:.3} ({:.1})",
            med(0),
            med(1),
            med(2),
            med(3),
            med(4),
            med(5),
            med(6),
            med(7),
            med(8),
            med(9),
            med(10),
            med(11)
        );
    }
    // The stitched path of the server (issue 17 d): the tile as per-layer parts, each compressed
    // apart, the gzip member stitched. `cold` is each tile's first request (its components part
    // made: one run per tile), `warm` a later one (a dense tile's components part reused: the
    // median of 5), against encoding the whole tile and gzip-1 of it. Over a fresh tile set, so
    // no part is made before.
    let fresh = TileSet::build(city, TileConfig::default());
    println!(
        "stitched grids,zones,components tile (median over the sample): zoom | encode+gzip-1 ms | parts cold ms | parts warm ms | gzip KB whole / stitched"
    );
    for z in [12u8, 13, 14, 15, 16, 17, 18] {
        let mut rows: Vec<[f64; 5]> = Vec::new();
        for (x, y) in sample(city, z, Datum::Wgs84) {
            let Some(raw) = set.encode(city, &layers, z, x, y, Datum::Wgs84).unwrap() else { continue };
            let whole = time(&mut || gzip(&set.encode(city, &layers, z, x, y, Datum::Wgs84).unwrap().unwrap(), 1));
            let stitched = || citygrid::tiles::parts::stitch(&fresh.encode_parts(city, &layers, z, x, y, Datum::Wgs84).unwrap().unwrap());
            let t = Instant::now();
            let first = stitched();
            let cold = t.elapsed().as_secs_f64() * 1e3;
            assert_eq!(&first.raw[..], &raw[..]);
            let warm = time(&mut || stitched().gzip.len());
            rows.push([whole.0, cold, warm.0, whole.1 as f64 / 1024.0, warm.1 as f64 / 1024.0]);
        }
        let med = |i: usize| {
            let mut v: Vec<f64> = rows.iter().map(|r| r[i]).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!("  z{z:<2} | {:.3} | {:.3} | {:.3} | {:.1} / {:.1}", med(0), med(1), med(2), med(3), med(4));
    }
    let (bytes, parts) = fresh.component_parts_size();
    println!("  components parts kept: {parts}, {:.1} MiB", bytes as f64 / 1048576.0);
}

fn bench(c: &mut Criterion) {
    let t = Instant::now();
    let demo = generate(&DemoSpec { preset: Preset::Xicheng, components: None, seed: 1 }, &|_, _| {}).unwrap();
    let city = demo.city;
    println!("xicheng: {} grids, {} components, generated in {:.2?}", city.grids.len(), city.components.len(), t.elapsed());
    let t = Instant::now();
    let set = TileSet::build(&city, TileConfig::default());
    let build = t.elapsed();
    let s = set.stats();
    println!(
        "TileSet::build {build:.2?}: grids {} KB ({} arcs, {} arc vertices), components {} KB ({:.1} B/component), \
         clusters precomputed for z{:?}",
        s.grid_bytes / 1024,
        s.arcs,
        s.arc_vertices,
        s.component_bytes / 1024,
        s.component_bytes as f64 / city.components.len() as f64,
        s.precomputed_cluster_zooms
    );
    miss_profile(&city, &set);
    if std::env::var_os("MISS_PROFILE_ONLY").is_some() {
        return;
    }
    report(&city, &set, Layer::Components, 0..=18, Datum::Wgs84);
    report(&city, &set, Layer::Components, 14..=18, Datum::Gcj02);
    report(&city, &set, Layer::Grids, 0..=18, Datum::Wgs84);
    report(&city, &set, Layer::Grids, 10..=18, Datum::Gcj02);

    let mut g = c.benchmark_group("tiles");
    g.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    g.bench_function("build", |b| b.iter(|| black_box(TileSet::build(&city, TileConfig::default()))));
    let mut run = |name: String, layer: Layer, z: u8, datum: Datum| {
        let tiles = sample(&city, z, datum);
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                let (x, y) = tiles[i % tiles.len()];
                i += 1;
                black_box(set.encode(&city, &[layer], z, x, y, datum).unwrap())
            })
        });
    };
    for z in 12..=18 {
        run(format!("components/z{z}"), Layer::Components, z, Datum::Wgs84);
    }
    run("components_gcj02/z16".into(), Layer::Components, 16, Datum::Gcj02);
    for z in 0..=18 {
        run(format!("grids/z{z}"), Layer::Grids, z, Datum::Wgs84);
    }
    run("grids_gcj02/z13".into(), Layer::Grids, 13, Datum::Gcj02);
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
