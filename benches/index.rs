//! Criterion benchmarks of the spatial engine (src/index): point → unit grid (+ chain),
//! accuracy discs, points outside the coverage, and the component queries; plus, printed to
//! stdout, per-query p50/p99 from a plain `Instant` loop and the indexes' build times and memory.
//!
//! ```text
//! cargo bench --bench index                          # xicheng (1,623 grids, 610k components) + 10k-grid mesh
//! CITYGRID_BENCH_BIG=1 cargo bench --bench index     # also ~10M components, two ways (~1.8 GiB, ~8 min)
//! CITYGRID_BENCH_BIG=1 CITYGRID_BENCH_COMPONENTS=5000000 cargo bench --bench index   # another big size
//! cargo bench --bench index -- 'grid/'               # criterion filter (the printed reports still run)
//! ```
//!
//! Under `cargo test --benches` (criterion's test mode) everything runs once on small cities.
//!
//! Query points (all seeded):
//! - `inside`: uniform in the unit grids' bounding box, kept if inside a unit grid;
//! - `edge`: within 2 m of a random unit-grid edge (10% exactly on the edge up to rounding);
//! - `outside`: uniform in the bounding box enlarged by 10% on each side, kept if outside every
//!   unit grid.
//!
//! The ~10M-component cities (big mode): `10M` is the demo generator's xicheng with
//! `components = 10,000,000`, i.e. xicheng's 50.7 km² at 16× its density (~200,000 per km²);
//! `tiled9.8M` is 4 × 4 copies of xicheng's 610,440 components side by side, i.e. xicheng's
//! density (~12,000 per km²) over 16× the area.
//!
//! The 10k-grid city is a synthetic 100 × 100 mesh of jittered quads with some curved edges
//! (copied from src/index/fixtures.rs): the demo generator's presets have fixed grid counts
//! (945 and 1,623 unit grids).

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use geo_types::{Coord, LineString, MultiPolygon, Polygon, Rect};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use citygrid::crs::METRES_PER_DEGREE;
use citygrid::demo::{DemoSpec, Preset, generate};
use citygrid::index::{ComponentIndex, GridIndex, Location};
use citygrid::model::{City, CityBuilder, ClassCode, ClassTable, ComponentCode, ComponentFields, GridFields, GridId, Hierarchy};

/// Queries per scenario in the percentile loop (bench mode).
const PCT_QUERIES: usize = 100_000;
/// The percentile loop stops early (after at least 2,000 single queries and 200 batches) when
/// one of its two halves has taken this long.
const PCT_MAX_TIME: Duration = Duration::from_secs(5);
/// Distinct query points per scenario.
const POINTS: usize = 10_000;

struct Mode {
    /// `cargo bench` (not criterion's test mode).
    bench: bool,
    big: bool,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test" || a == "--list");
    let big = std::env::var("CITYGRID_BENCH_BIG").is_ok_and(|v| !v.is_empty() && v != "0");
    let mode = Mode { bench, big };
    let mut c = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(50).configure_from_args();

    if mode.bench {
        println!("== machine: {} × {}", std::thread::available_parallelism().map_or(0, |n| n.get()), cpu_model());
        println!("== timer overhead (Instant::now pair, median): {} ns", timer_overhead_ns());
    }

    // 1–3: grids, on the demo city (xicheng) and the 10k-grid mesh.
    let (preset, mesh_side) = if mode.bench { (Preset::Xicheng, 100) } else { (Preset::Tiny, 10) };
    {
        let city = demo_city(preset, None);
        grid_benches(&mut c, &mode, preset.as_str(), &city);
        component_benches(&mut c, &mode, preset.as_str(), &city, None);
    }
    {
        let t = Instant::now();
        let city = mesh_city(mesh_side, mesh_side, 7);
        println!("== mesh {mesh_side}×{mesh_side} city built in {:.2} s", t.elapsed().as_secs_f64());
        grid_benches(&mut c, &mode, &format!("mesh{}", mesh_side * mesh_side), &city);
    }

    // 4–5 at 10M components.
    if mode.big {
        let n: usize = std::env::var("CITYGRID_BENCH_COMPONENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000);
        {
            let city = demo_city(Preset::Xicheng, Some(n));
            component_benches(&mut c, &mode, &format!("{}M", n as f64 / 1e6), &city, None);
            // Grid answers do not depend on the component count; only the build is reported.
        }
        // The demo spreads `n` over the preset's 50.7 km² (16× xicheng's density at 10M); this
        // one keeps xicheng's density over 16× the area.
        let base = demo_city(if mode.bench { Preset::Xicheng } else { Preset::Tiny }, None);
        let (city, pts) = tiled_city(&base, 4, 4, if mode.bench { POINTS } else { 200 });
        drop(base);
        let name = format!("tiled{:.1}M", city.components.len() as f64 / 1e6);
        component_benches(&mut c, &mode, &name, &city, Some(pts));
    } else if mode.bench {
        println!("== CITYGRID_BENCH_BIG not set: skipping the 10M-component city");
    }
    c.final_summary();
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned()))
        .unwrap_or_else(|| "unknown CPU".into())
}

/// A field of /proc/self/status in MiB (VmRSS, VmHWM).
fn proc_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse::<f64>().ok())))
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn demo_city(preset: Preset, components: Option<usize>) -> City {
    let t = Instant::now();
    let demo = generate(&DemoSpec { preset, components, seed: 1 }, &|_, _| {}).expect("demo city");
    let city = demo.city;
    println!(
        "== demo {} with {} components, {} unit grids: generated in {:.2} s; process RSS {:.0} MiB, peak {:.0} MiB",
        preset.as_str(),
        city.components.len(),
        city.grids_at(city.hierarchy.unit_level()).count(),
        t.elapsed().as_secs_f64(),
        proc_mib("VmRSS:"),
        proc_mib("VmHWM:"),
    );
    city
}

// ---------------------------------------------------------------------------------------------
// Query points

struct Points {
    inside: Vec<Coord<f64>>,
    edge: Vec<Coord<f64>>,
    outside: Vec<Coord<f64>>,
}

fn unit_edges(city: &City) -> Vec<(Coord<f64>, Coord<f64>)> {
    let mut v = Vec::new();
    for (_, g) in city.grids_at(city.hierarchy.unit_level()) {
        for poly in &g.geometry.0 {
            for ring in std::iter::once(poly.exterior()).chain(poly.interiors()) {
                v.extend(ring.lines().filter(|l| l.start != l.end).map(|l| (l.start, l.end)));
            }
        }
    }
    v
}

fn query_points(city: &City, index: &GridIndex, n: usize, seed: u64) -> Points {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let e = index.extent().expect("unit grids with geometry");
    let (min, max) = (e.min(), e.max());
    let sample = |rng: &mut ChaCha8Rng, grow: f64| {
        let (w, h) = (max.x - min.x, max.y - min.y);
        Coord { x: rng.random_range(min.x - grow * w..max.x + grow * w), y: rng.random_range(min.y - grow * h..max.y + grow * h) }
    };
    let mut inside = Vec::with_capacity(n);
    let mut tried = 0usize;
    while inside.len() < n {
        let p = sample(&mut rng, 0.0);
        tried += 1;
        if matches!(index.locate(city, p), Location::Inside { .. }) {
            inside.push(p);
        }
    }
    let mut outside = Vec::with_capacity(n);
    while outside.len() < n {
        let p = sample(&mut rng, 0.1);
        if matches!(index.locate(city, p), Location::Outside { .. }) {
            outside.push(p);
        }
    }
    let edges = unit_edges(city);
    let cos = ((min.y + max.y) / 2.0).to_radians().cos();
    let edge = (0..n)
        .map(|_| {
            let (a, b) = edges[rng.random_range(0..edges.len())];
            let t: f64 = rng.random_range(0.0..1.0);
            let p = Coord { x: a.x + t * (b.x - a.x), y: a.y + t * (b.y - a.y) };
            if rng.random_bool(0.1) {
                return p;
            }
            // Offset up to 2 m along the edge's normal (in metres, then back to degrees).
            let (ex, ey) = ((b.x - a.x) * cos, b.y - a.y);
            let len = (ex * ex + ey * ey).sqrt();
            let d_m: f64 = rng.random_range(-2.0..2.0);
            let d = d_m / METRES_PER_DEGREE;
            Coord { x: p.x - ey / len * d / cos, y: p.y + ex / len * d }
        })
        .collect();
    println!("   {} of {} uniform points in the unit grids' bounding box are inside a unit grid", n, tried);
    Points { inside, edge, outside }
}

// ---------------------------------------------------------------------------------------------
// Percentiles from a plain loop

fn timer_overhead_ns() -> u64 {
    let mut v: Vec<u64> = (0..100_000)
        .map(|_| {
            let t = Instant::now();
            black_box(());
            t.elapsed().as_nanos() as u64
        })
        .collect();
    v.sort_unstable();
    v[v.len() / 2]
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

/// Times `queries` single calls of `f` on `points` (cycled), each with its own pair of
/// `Instant`s (timer overhead subtracted), and again in batches of 16 (per-query mean per
/// batch); either loop stops early after `PCT_MAX_TIME`. Prints p50 / p99 / p99.9 / max in µs.
fn percentiles<T>(label: &str, points: &[Coord<f64>], queries: usize, mut f: impl FnMut(Coord<f64>) -> T) {
    let warm = Instant::now();
    for &p in points.iter().cycle().take(points.len().min(queries)) {
        black_box(f(black_box(p)));
        if warm.elapsed() > Duration::from_secs(1) {
            break;
        }
    }
    let overhead = timer_overhead_ns() as f64;
    let mut single: Vec<f64> = Vec::with_capacity(queries);
    let start = Instant::now();
    for &p in points.iter().cycle().take(queries) {
        let t = Instant::now();
        black_box(f(black_box(p)));
        single.push((t.elapsed().as_nanos() as f64 - overhead).max(0.0) / 1000.0);
        if single.len().is_multiple_of(256) && single.len() >= 2000 && start.elapsed() > PCT_MAX_TIME {
            break;
        }
    }
    const B: usize = 16;
    let mut batched: Vec<f64> = Vec::with_capacity(queries / B);
    let mut it = points.iter().cycle();
    let start = Instant::now();
    for _ in 0..queries / B {
        let batch: [Coord<f64>; B] = std::array::from_fn(|_| *it.next().expect("cycle"));
        let t = Instant::now();
        for p in batch {
            black_box(f(black_box(p)));
        }
        batched.push(t.elapsed().as_nanos() as f64 / B as f64 / 1000.0);
        if batched.len() >= 200 && start.elapsed() > PCT_MAX_TIME {
            break;
        }
    }
    single.sort_unstable_by(f64::total_cmp);
    batched.sort_unstable_by(f64::total_cmp);
    let mean = single.iter().sum::<f64>() / single.len() as f64;
    println!(
        "PCT {label:<44} n={:<6} single: p50 {:>8.3} µs  p99 {:>8.3} µs  p99.9 {:>8.3} µs  max {:>9.1} µs  mean {:>8.3} µs | batch16: p50 {:>8.3} µs  p99 {:>8.3} µs",
        single.len(),
        pct(&single, 0.5),
        pct(&single, 0.99),
        pct(&single, 0.999),
        single.last().copied().unwrap_or(0.0),
        mean,
        pct(&batched, 0.5),
        pct(&batched, 0.99),
    );
}

/// Runs `f(points[i])` for the next point on each criterion iteration.
fn cycle<T>(points: &[Coord<f64>], mut f: impl FnMut(Coord<f64>) -> T) -> impl FnMut() -> T {
    let mut i = 0;
    move || {
        let p = points[i];
        i += 1;
        if i == points.len() {
            i = 0;
        }
        f(black_box(p))
    }
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed().as_secs_f64())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_unstable_by(f64::total_cmp);
    v[v.len() / 2]
}

// ---------------------------------------------------------------------------------------------
// 1–3: GridIndex

fn grid_benches(c: &mut Criterion, mode: &Mode, name: &str, city: &City) {
    let reps = if mode.bench { 5 } else { 1 };
    let mut builds = Vec::new();
    let mut index = None;
    for _ in 0..reps {
        let (ix, s) = timed(|| GridIndex::build(city));
        builds.push(s);
        index = Some(ix);
    }
    let index = index.expect("built");
    let st = index.stats();
    println!(
        "BUILD GridIndex {name}: {} unit grids, build median {:.1} ms (min {:.1} ms, {reps} builds), memory_bytes {:.2} MiB; raster {}×{} cells of {:.1}×{:.1} m: {} interior, {} boundary (mean {:.2} candidates), {} empty",
        st.unit_grids,
        median(builds.clone()) * 1e3,
        builds.iter().copied().fold(f64::INFINITY, f64::min) * 1e3,
        index.memory_bytes() as f64 / (1 << 20) as f64,
        st.nx,
        st.ny,
        st.cell_m[0],
        st.cell_m[1],
        st.interior_cells,
        st.boundary_cells,
        st.mean_candidates,
        st.empty_cells,
    );
    let n = if mode.bench { POINTS } else { 200 };
    let pts = query_points(city, &index, n, 42);
    let on_boundary = pts.edge.iter().filter(|&&p| matches!(index.locate(city, p), Location::Inside { on_boundary: true, .. })).count();
    let edge_out = pts.edge.iter().filter(|&&p| !matches!(index.locate(city, p), Location::Inside { .. })).count();
    let mut ambiguous = [0usize; 3];
    let mut cands = [0usize; 3];
    for (k, r) in [0.0, 10.0, 50.0].into_iter().enumerate() {
        for &p in &pts.inside {
            let a = index.locate_within(city, p, r);
            ambiguous[k] += a.ambiguous as usize;
            cands[k] += a.candidates.len();
        }
    }
    println!(
        "   edge points: {on_boundary} reported on_boundary, {edge_out} outside the coverage; locate_within on inside points, mean candidates (ambiguous share): r=0 {:.2} ({:.1}%), r=10 m {:.2} ({:.1}%), r=50 m {:.2} ({:.1}%)",
        cands[0] as f64 / n as f64,
        100.0 * ambiguous[0] as f64 / n as f64,
        cands[1] as f64 / n as f64,
        100.0 * ambiguous[1] as f64 / n as f64,
        cands[2] as f64 / n as f64,
        100.0 * ambiguous[2] as f64 / n as f64,
    );
    let mean_out = pts
        .outside
        .iter()
        .map(|&p| match index.locate(city, p) {
            Location::Outside { distance_m, .. } => distance_m,
            _ => 0.0,
        })
        .sum::<f64>()
        / n as f64;
    println!("   outside points: mean distance to the nearest grid {mean_out:.0} m");

    let locate_chain = |p: Coord<f64>| -> Option<Vec<GridId>> { index.locate(city, p).grid().map(|g| city.chain(g)) };
    let q = if mode.bench { PCT_QUERIES } else { 1000 };
    percentiles(&format!("grid/{name}/locate/inside"), &pts.inside, q, |p| index.locate(city, p));
    percentiles(&format!("grid/{name}/locate+chain/inside"), &pts.inside, q, locate_chain);
    percentiles(&format!("grid/{name}/locate+chain/edge"), &pts.edge, q, locate_chain);
    percentiles(&format!("grid/{name}/locate/outside"), &pts.outside, q, |p| index.locate(city, p));
    for r in [0.0, 10.0, 50.0] {
        percentiles(&format!("grid/{name}/locate_within/{r}m"), &pts.inside, q, |p| index.locate_within(city, p, r));
    }

    let mut g = c.benchmark_group(format!("grid/{name}"));
    g.bench_function("locate/inside", |b| b.iter(cycle(&pts.inside, |p| index.locate(city, p))));
    g.bench_function("locate+chain/inside", |b| b.iter(cycle(&pts.inside, locate_chain)));
    g.bench_function("locate+chain/edge", |b| b.iter(cycle(&pts.edge, locate_chain)));
    g.bench_function("locate/outside", |b| b.iter(cycle(&pts.outside, |p| index.locate(city, p))));
    for r in [0.0, 10.0, 50.0] {
        g.bench_function(format!("locate_within/{r}m"), |b| b.iter(cycle(&pts.inside, |p| index.locate_within(city, p, r))));
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// 4–5: ComponentIndex

/// Component benchmarks; query points are `pts` if given, else points inside the city's unit grids.
fn component_benches(c: &mut Criterion, mode: &Mode, name: &str, city: &City, pts: Option<Vec<Coord<f64>>>) {
    let n_comp = city.components.len();
    let n = if mode.bench { POINTS } else { 200 };
    let pts = pts.unwrap_or_else(|| {
        let (grid_index, grid_s) = timed(|| GridIndex::build(city));
        println!(
            "BUILD GridIndex {name} ({} components): build {:.1} ms, memory_bytes {:.2} MiB",
            n_comp,
            grid_s * 1e3,
            grid_index.memory_bytes() as f64 / (1 << 20) as f64
        );
        query_points(city, &grid_index, n, 43).inside
    });
    let reps = if !mode.bench {
        1
    } else if n_comp > 2_000_000 {
        2
    } else {
        3
    };
    let mut builds = Vec::new();
    let mut index = None;
    for _ in 0..reps {
        drop(index.take());
        let (ix, s) = timed(|| ComponentIndex::build(city));
        builds.push(s);
        index = Some(ix);
    }
    let index: ComponentIndex = index.expect("built");
    let mem = index.memory_bytes();
    println!(
        "BUILD ComponentIndex {name}: {} components, build min {:.2} s (all: {}), memory_bytes {:.1} MiB = {:.1} B/component; own trees for {:?}; process RSS {:.0} MiB, peak {:.0} MiB",
        n_comp,
        builds.iter().copied().fold(f64::INFINITY, f64::min),
        builds.iter().map(|s| format!("{s:.2} s")).collect::<Vec<_>>().join(", "),
        mem as f64 / (1 << 20) as f64,
        mem as f64 / n_comp as f64,
        index.own_tree_classes().iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        proc_mib("VmRSS:"),
        proc_mib("VmHWM:"),
    );
    let mut counts: HashMap<ClassCode, usize> = HashMap::new();
    for comp in &city.components {
        *counts.entry(comp.class).or_default() += 1;
    }
    let rare = ClassCode::parse("0138").expect("class");
    let common = ClassCode::parse("0101").expect("class");
    println!(
        "   class 0138: {} components ({:.2}%), class 0101: {} ({:.1}%)",
        counts.get(&rare).copied().unwrap_or(0),
        100.0 * counts.get(&rare).copied().unwrap_or(0) as f64 / n_comp as f64,
        counts.get(&common).copied().unwrap_or(0),
        100.0 * counts.get(&common).copied().unwrap_or(0) as f64 / n_comp as f64,
    );

    let cos = pts[0].y.to_radians().cos();
    let km_box = |p: Coord<f64>| {
        let (hx, hy) = (500.0 / METRES_PER_DEGREE / cos, 500.0 / METRES_PER_DEGREE);
        Rect::new(Coord { x: p.x - hx, y: p.y - hy }, Coord { x: p.x + hx, y: p.y + hy })
    };
    let city_box = {
        let (mut lo, mut hi) = (Coord { x: f64::INFINITY, y: f64::INFINITY }, Coord { x: f64::NEG_INFINITY, y: f64::NEG_INFINITY });
        for comp in &city.components {
            lo = Coord { x: lo.x.min(comp.location.x), y: lo.y.min(comp.location.y) };
            hi = Coord { x: hi.x.max(comp.location.x), y: hi.y.max(comp.location.y) };
        }
        Rect::new(lo, hi)
    };
    let rare_f = [rare];
    let common_f = [common];
    let sample = &pts[..pts.len().min(1000)];
    let mean = |f: &dyn Fn(Coord<f64>) -> usize| sample.iter().map(|&p| f(p)).sum::<usize>() as f64 / sample.len() as f64;
    let far = |k: usize, cl: Option<&[ClassCode]>| {
        sample.iter().map(|&p| index.nearest(city, p, k, cl, None).last().map_or(0.0, |h| h.1)).sum::<f64>() / sample.len() as f64
    };
    println!(
        "   mean answer sizes: within 10 m {:.1}, within 50 m {:.1}, within 200 m {:.1}, 1 km box {:.0} components; mean distance of the 10th nearest {:.1} m, 10th nearest 0138 {:.1} m, 10th nearest 0101 {:.1} m",
        mean(&|p| index.within(city, p, 10.0, None).len()),
        mean(&|p| index.within(city, p, 50.0, None).len()),
        mean(&|p| index.within(city, p, 200.0, None).len()),
        mean(&|p| index.count_by_class(city, km_box(p), None).values().sum()),
        far(10, None),
        far(10, Some(&rare_f)),
        far(10, Some(&common_f)),
    );

    let q = if mode.bench { PCT_QUERIES } else { 1000 };
    percentiles(&format!("comp/{name}/nearest/k1"), &pts, q, |p| index.nearest(city, p, 1, None, None));
    percentiles(&format!("comp/{name}/nearest/k10"), &pts, q, |p| index.nearest(city, p, 10, None, None));
    percentiles(&format!("comp/{name}/nearest/k10/0138"), &pts, q, |p| index.nearest(city, p, 10, Some(&rare_f), None));
    percentiles(&format!("comp/{name}/nearest/k10/0101"), &pts, q, |p| index.nearest(city, p, 10, Some(&common_f), None));
    percentiles(&format!("comp/{name}/within/10m"), &pts, q, |p| index.within(city, p, 10.0, None));
    percentiles(&format!("comp/{name}/within/50m"), &pts, q, |p| index.within(city, p, 50.0, None));
    percentiles(&format!("comp/{name}/within/200m"), &pts, q, |p| index.within(city, p, 200.0, None));
    percentiles(&format!("comp/{name}/in_bbox/1km/page1000"), &pts, q, |p| index.in_bbox(city, km_box(p), None, None, 1000));
    percentiles(&format!("comp/{name}/count_by_class/1km"), &pts, q, |p| index.count_by_class(city, km_box(p), None));

    let mut g = c.benchmark_group(format!("comp/{name}"));
    g.bench_function("nearest/k1", |b| b.iter(cycle(&pts, |p| index.nearest(city, p, 1, None, None))));
    g.bench_function("nearest/k10", |b| b.iter(cycle(&pts, |p| index.nearest(city, p, 10, None, None))));
    g.bench_function("nearest/k10/0138", |b| b.iter(cycle(&pts, |p| index.nearest(city, p, 10, Some(&rare_f), None))));
    g.bench_function("nearest/k10/0101", |b| b.iter(cycle(&pts, |p| index.nearest(city, p, 10, Some(&common_f), None))));
    g.bench_function("within/10m", |b| b.iter(cycle(&pts, |p| index.within(city, p, 10.0, None))));
    g.bench_function("within/50m", |b| b.iter(cycle(&pts, |p| index.within(city, p, 50.0, None))));
    g.bench_function("within/200m", |b| b.iter(cycle(&pts, |p| index.within(city, p, 200.0, None))));
    g.bench_function("in_bbox/1km/page1000", |b| b.iter(cycle(&pts, |p| index.in_bbox(city, km_box(p), None, None, 1000))));
    g.bench_function("in_bbox/city/page1000", |b| b.iter(|| index.in_bbox(city, black_box(city_box), None, None, 1000)));
    g.bench_function("count_by_class/1km", |b| b.iter(cycle(&pts, |p| index.count_by_class(city, km_box(p), None))));
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// The 10k-grid city: a jittered quad mesh, as in src/index/fixtures.rs (no gaps or holes, no
// components), grouped under communities of 90 grids, 20 communities per street, one district.

const LON0: f64 = 120.58;
const LAT0: f64 = 31.28;
/// Mesh spacing: ~105 m east–west, ~100 m north–south.
const DX: f64 = 0.0011;
const DY: f64 = 0.0009;
const COUNTY: u32 = 320506;

fn rect_geometry(bb: [f64; 4]) -> MultiPolygon<f64> {
    let r = Rect::new(Coord { x: bb[0], y: bb[1] }, Coord { x: bb[2], y: bb[3] });
    MultiPolygon(vec![r.to_polygon()])
}

fn mesh_city(nx: usize, ny: usize, seed: u64) -> City {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Vertices: x exact on even columns, y exact on even rows (so those edges are axis-aligned).
    let mut vx = vec![vec![Coord { x: 0.0, y: 0.0 }; ny + 1]; nx + 1];
    for (i, col) in vx.iter_mut().enumerate() {
        for (j, v) in col.iter_mut().enumerate() {
            let jx = if i % 2 == 1 { rng.random_range(-0.25..0.25) * DX } else { 0.0 };
            let jy = if j % 2 == 1 { rng.random_range(-0.25..0.25) * DY } else { 0.0 };
            *v = Coord { x: LON0 + i as f64 * DX + jx, y: LAT0 + j as f64 * DY + jy };
        }
    }
    let path = |a: Coord<f64>, b: Coord<f64>, straight: bool, rng: &mut ChaCha8Rng| -> Vec<Coord<f64>> {
        if straight {
            if rng.random_bool(0.3) { vec![a, Coord { x: (a.x + b.x) / 2.0, y: (a.y + b.y) / 2.0 }, b] } else { vec![a, b] }
        } else {
            let k = rng.random_range(1..=3);
            let (nxp, nyp) = (-(b.y - a.y) / DY * DX, (b.x - a.x) / DX * DY);
            let bulge = rng.random_range(-0.1..0.1);
            let mut v = vec![a];
            for s in 1..=k {
                let t = s as f64 / (k + 1) as f64;
                let w = bulge * (std::f64::consts::PI * t).sin();
                v.push(Coord { x: a.x + t * (b.x - a.x) + w * nxp, y: a.y + t * (b.y - a.y) + w * nyp });
            }
            v.push(b);
            v
        }
    };
    let mut hpaths = vec![vec![Vec::new(); ny + 1]; nx];
    for (i, col) in hpaths.iter_mut().enumerate() {
        for (j, p) in col.iter_mut().enumerate() {
            let straight = j % 2 == 0 || rng.random_bool(0.5);
            *p = path(vx[i][j], vx[i + 1][j], straight, &mut rng);
        }
    }
    let mut vpaths = vec![vec![Vec::new(); ny]; nx + 1];
    for (i, col) in vpaths.iter_mut().enumerate() {
        for (j, p) in col.iter_mut().enumerate() {
            let straight = i % 2 == 0 || rng.random_bool(0.5);
            *p = path(vx[i][j], vx[i][j + 1], straight, &mut rng);
        }
    }
    let cell_ring = |i: usize, j: usize| -> Vec<Coord<f64>> {
        let mut r: Vec<Coord<f64>> = hpaths[i][j].clone();
        r.extend(&vpaths[i + 1][j][1..]);
        r.extend(hpaths[i][j + 1].iter().rev().skip(1));
        r.extend(vpaths[i][j].iter().rev().skip(1));
        r
    };
    let mut grids: Vec<Polygon<f64>> = Vec::with_capacity(nx * ny);
    for j in 0..ny {
        for i in 0..nx {
            grids.push(Polygon::new(LineString::from(cell_ring(i, j)), vec![]));
        }
    }

    let mut b = CityBuilder::new(Hierarchy::cjt213(), ClassTable::builtin_components(), ClassTable::builtin_events());
    let n = grids.len();
    let per_community = 90;
    let communities = n.div_ceil(per_community);
    let mut bbs: Vec<[f64; 4]> = vec![[f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY]; communities];
    for (g, poly) in grids.into_iter().enumerate() {
        let c = g / per_community;
        let community = format!("{COUNTY}{:03}{:03}", c / 20 + 1, c % 20 + 1);
        let code = format!("{community}{:02}", g % per_community + 1);
        for v in &poly.exterior().0 {
            let bb = &mut bbs[c];
            *bb = [bb[0].min(v.x), bb[1].min(v.y), bb[2].max(v.x), bb[3].max(v.y)];
        }
        b.add_grid(&GridFields { code: &code, name: "网格", parent: &community, ..Default::default() }, MultiPolygon(vec![poly])).expect("grid");
    }
    let mut district = [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY];
    let mut streets: Vec<[f64; 4]> = vec![district; communities.div_ceil(20)];
    for (c, bb) in bbs.iter().enumerate() {
        let community = format!("{COUNTY}{:03}{:03}", c / 20 + 1, c % 20 + 1);
        let street = format!("{COUNTY}{:03}", c / 20 + 1);
        b.add_grid(&GridFields { code: &community, name: "社区", parent: &street, ..Default::default() }, rect_geometry(*bb)).expect("community");
        let s = &mut streets[c / 20];
        *s = [s[0].min(bb[0]), s[1].min(bb[1]), s[2].max(bb[2]), s[3].max(bb[3])];
    }
    for (s, bb) in streets.iter().enumerate() {
        let street = format!("{COUNTY}{:03}", s + 1);
        let parent = COUNTY.to_string();
        b.add_grid(&GridFields { code: &street, name: "街道", parent: &parent, ..Default::default() }, rect_geometry(*bb)).expect("street");
        district = [district[0].min(bb[0]), district[1].min(bb[1]), district[2].max(bb[2]), district[3].max(bb[3])];
    }
    b.add_grid(&GridFields { code: &COUNTY.to_string(), name: "区", ..Default::default() }, rect_geometry(district)).expect("district");
    b.finish().expect("mesh city")
}

// ---------------------------------------------------------------------------------------------
// ~10M components at a real city's density: `nx × ny` copies of a city's components side by side
// (each copy shifted by the components' extent, its codes under county code + copy number), no
// grids. Query points: points inside the original's unit grids, shifted into a random copy.

fn tiled_city(base: &City, nx: usize, ny: usize, n_points: usize) -> (City, Vec<Coord<f64>>) {
    let t = Instant::now();
    let (mut lo, mut hi) = (Coord { x: f64::INFINITY, y: f64::INFINITY }, Coord { x: f64::NEG_INFINITY, y: f64::NEG_INFINITY });
    for comp in &base.components {
        lo = Coord { x: lo.x.min(comp.location.x), y: lo.y.min(comp.location.y) };
        hi = Coord { x: hi.x.max(comp.location.x), y: hi.y.max(comp.location.y) };
    }
    let (w, h) = (hi.x - lo.x, hi.y - lo.y);
    let mut b = CityBuilder::new(Hierarchy::cjt213(), ClassTable::builtin_components(), ClassTable::builtin_events());
    b.reserve_components(base.components.len() * nx * ny);
    for j in 0..ny {
        for i in 0..nx {
            let copy = (j * nx + i) as u32;
            for comp in &base.components {
                let code = ComponentCode::new(comp.code.county() + copy, comp.class, comp.code.serial()).to_string();
                let class = comp.class.to_string();
                b.add_component(&ComponentFields {
                    code: &code,
                    class: &class,
                    lon: comp.location.x + i as f64 * w,
                    lat: comp.location.y + j as f64 * h,
                    ..Default::default()
                })
                .expect("component");
            }
        }
    }
    let city = b.finish().expect("tiled city");
    let grid_index = GridIndex::build(base);
    let mut rng = ChaCha8Rng::seed_from_u64(44);
    let pts = query_points(base, &grid_index, n_points, 43)
        .inside
        .into_iter()
        .map(|p| Coord { x: p.x + rng.random_range(0..nx) as f64 * w, y: p.y + rng.random_range(0..ny) as f64 * h })
        .collect();
    let cos = ((lo.y + hi.y) / 2.0).to_radians().cos();
    let km2 = (nx as f64 * w * cos * METRES_PER_DEGREE) * (ny as f64 * h * METRES_PER_DEGREE) / 1e6;
    println!(
        "== tiled city: {nx}×{ny} copies of {} components = {} components over {:.0} km² ({:.0} per km²): built in {:.2} s; process RSS {:.0} MiB, peak {:.0} MiB",
        base.components.len(),
        city.components.len(),
        km2,
        city.components.len() as f64 / km2,
        t.elapsed().as_secs_f64(),
        proc_mib("VmRSS:"),
        proc_mib("VmHWM:"),
    );
    (city, pts)
}
