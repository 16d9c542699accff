//! Field staff positions in process, on the Wuzhong preset (945 unit grids) with its demo staff
//! register and patrols (`citygrid::staff::simulate`).
//!
//! `cargo bench --bench staff`:
//! - `staff/apply_500`: one batch of 500 checked positions through `StaffHub::apply` (locate in
//!   the unit grids, store with the cell index, track point, grid-change events). Positions per
//!   second = 500 / time per batch.
//! - `staff/apply_500_with_lookups`: the same while another thread asks nearest queries
//!   without pause (the read lock shared with the intake).
//! - `staff/parse_500`: parsing and checking a batch body of 500 positions (JSON).
//! - `staff/nearest_k5`: `nearest` of 5 available inspectors around a patrol point.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{NaiveDate, Utc};
use citygrid::demo::{DemoSpec, Preset, generate};
use citygrid::staff::simulate::{demo_register, patrols};
use citygrid::staff::{Filter, Item, Role, StaffConfig, StaffHub, Status};
use citygrid::store::{LoadedCity, Versions};
use citygrid::world::World;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let demo = generate(&DemoSpec { preset: Preset::Wuzhong, components: Some(1000), seed: 1 }, &|_, _| {}).unwrap();
    let meta = demo.meta();
    let register = demo_register(&demo.city, 1);
    let world = Arc::new(World::new(LoadedCity { city: demo.city, meta, versions: Versions::default(), rules_csv: None, calendar_toml: None }));
    let day = NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
    let items: Vec<Item> = patrols(&world.city, &register, day, 10, 1).take(200_000).collect();
    eprintln!("{} people, {} positions", register.len(), items.len());
    let config = StaffConfig { stale_after: std::time::Duration::from_secs(u64::MAX / 4), ..Default::default() };
    let hub = Arc::new(StaffHub::new(config, world.center()));
    hub.set_register(register.clone(), None);
    // Positions of a run of 500 consecutive items, later each time (so every one is newer).
    let mut round = 0i64;
    let next_batch = |round: &mut i64| {
        *round += 1;
        let start = (*round as usize * 500) % (items.len() - 500);
        let shift = chrono::Duration::days(*round);
        items[start..start + 500]
            .iter()
            .map(|i| Ok(Item { id: i.id.clone(), fix: citygrid::staff::Fix { time: i.fix.time + shift, ..i.fix } }))
            .collect::<Vec<_>>()
    };
    let mut g = c.benchmark_group("staff");
    g.throughput(Throughput::Elements(500));
    g.bench_function("apply_500", |b| b.iter_batched(|| next_batch(&mut round), |batch| black_box(hub.apply(&world, batch)), BatchSize::SmallInput));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (hub, stop, points) = (hub.clone(), stop.clone(), items.iter().step_by(997).map(|i| [i.fix.lon, i.fix.lat]).collect::<Vec<_>>());
        std::thread::spawn(move || {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let filter = Filter {
                    role: Some(Role::Inspector),
                    status: Some(Status::Available),
                    within: None,
                    fresh_since: Utc::now() - chrono::Duration::days(100_000),
                };
                black_box(hub.nearest(points[n % points.len()], 5, &filter, None));
                n += 1;
            }
            n
        })
    };
    g.bench_function("apply_500_with_lookups", |b| {
        b.iter_batched(|| next_batch(&mut round), |batch| black_box(hub.apply(&world, batch)), BatchSize::SmallInput)
    });
    stop.store(true, Ordering::Relaxed);
    let lookups = reader.join().unwrap();
    eprintln!("{lookups} nearest queries ran beside apply_500_with_lookups");
    let now = Utc::now();
    let body = serde_json::to_vec(&serde_json::json!({"positions": items[..500].iter().map(|i| citygrid::staff::input::item_json(&i.id, &citygrid::staff::Fix { time: now, ..i.fix })).collect::<Vec<_>>()})).unwrap();
    g.bench_function("parse_500", |b| b.iter(|| black_box(citygrid::staff::input::parse_batch(&body, now).unwrap())));
    g.throughput(Throughput::Elements(1));
    let points: Vec<[f64; 2]> = items.iter().step_by(101).map(|i| [i.fix.lon, i.fix.lat]).collect();
    let filter = Filter { role: Some(Role::Inspector), status: Some(Status::Available), within: None, fresh_since: now - chrono::Duration::days(100_000) };
    let mut n = 0;
    g.bench_function("nearest_k5", |b| {
        b.iter(|| {
            n += 1;
            black_box(hub.nearest(points[n % points.len()], 5, &filter, None))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
