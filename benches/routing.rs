//! Case routing in process on the Wuzhong preset (945 unit grids, ~231,000 components).
//!
//! `cargo bench --bench routing` measures one `routing::route` call per case kind, over a fixed
//! rotation of 1,000 points (component locations, so every point is inside a unit grid):
//! `routing/event` (an event type: rule lookup by scope), `routing/component_class` (snap to
//! the nearest component of the class within 30 m), `routing/component_code` (an explicit
//! component), `routing/event_accuracy30` (with a 30 m accuracy disc: candidates near
//! boundaries), and `routing/batch_line` (the batch endpoint's per-case work on one core: parse,
//! route, build the audit record from the typed answer, serialize the answer line). Cases per second = 1 / time per case.
//! `routing/case_csv_row` and `routing/case_json_row` read the same case from a CSV row (under
//! its header) and from a JSON object: what a batch costs before routing, per format;
//! `routing/case_csv_row_fresh_reader` reads the row's fields with a fresh `csv::Reader`, as
//! `csv_case` did before it reused one.

use std::hint::black_box;

use chrono::DateTime;
use citygrid::crs::Datum;
use citygrid::demo::{DemoSpec, Preset, generate};
use citygrid::lookup::PointEcho;
use citygrid::routing::{CaseInput, CaseSubject, route};
use citygrid::store::{LoadedCity, Versions};
use citygrid::world::World;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

fn world() -> World {
    let demo = generate(&DemoSpec { preset: Preset::Wuzhong, components: None, seed: 1 }, &|_, _| {}).unwrap();
    let meta = demo.meta();
    let versions = Versions([("grids", 1), ("components", 1), ("units", 1), ("rules", 1)].into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
    World::new(LoadedCity { city: demo.city, meta, versions, rules_csv: Some(demo.rules_csv), calendar_toml: None })
}

fn bench(c: &mut Criterion) {
    let world = world();
    assert!(world.routing.rules.is_ok(), "the demo list routes");
    let now = DateTime::parse_from_rfc3339("2026-11-23T10:00:00+08:00").unwrap();
    let step = world.city.components.len() / 1000;
    let picks: Vec<_> = world.city.components.iter().step_by(step).take(1000).collect();
    let points: Vec<PointEcho> = picks.iter().map(|c| PointEcho::new(c.location.x, c.location.y, Datum::Wgs84).unwrap()).collect();
    let events = ["0102", "0104", "0301", "0501", "0505", "0101"];
    let case = |i: usize, subject: CaseSubject, accuracy_m: f64| CaseInput {
        point: Some(points[i % points.len()]),
        accuracy_m,
        subject,
        urgency: None,
        reported_at: Some(now),
    };
    let mut g = c.benchmark_group("routing");
    let mut i = 0;
    g.bench_function("event", |b| {
        b.iter(|| {
            i += 1;
            black_box(route(&world, &case(i, CaseSubject::Event(events[i % events.len()].into()), 0.0), now).unwrap());
        })
    });
    g.bench_function("event_accuracy30", |b| {
        b.iter(|| {
            i += 1;
            black_box(route(&world, &case(i, CaseSubject::Event(events[i % events.len()].into()), 30.0), now).unwrap());
        })
    });
    g.bench_function("component_class", |b| {
        b.iter(|| {
            i += 1;
            let class = picks[i % picks.len()].class.to_string();
            black_box(route(&world, &case(i, CaseSubject::ComponentClass(class), 0.0), now).unwrap());
        })
    });
    g.bench_function("component_code", |b| {
        b.iter(|| {
            i += 1;
            let code = picks[i % picks.len()].code.to_string();
            let c = CaseInput { point: None, accuracy_m: 0.0, subject: CaseSubject::Component(code), urgency: None, reported_at: Some(now) };
            black_box(route(&world, &c, now).unwrap());
        })
    });
    let items: Vec<serde_json::Value> =
        points.iter().enumerate().map(|(k, p)| json!({"id": k, "lon": p.coord().x, "lat": p.coord().y, "event_type": events[k % events.len()]})).collect();
    let header = citygrid::routing::input::csv_header(b"id,lon,lat,event_type").unwrap();
    let rows: Vec<(Vec<u8>, Vec<u8>)> = items
        .iter()
        .map(|v| (format!("{},{},{},{}", v["id"], v["lon"], v["lat"], v["event_type"].as_str().unwrap()).into_bytes(), serde_json::to_vec(v).unwrap()))
        .collect();
    g.bench_function("case_csv_row", |b| {
        b.iter(|| {
            i += 1;
            black_box(citygrid::routing::input::csv_case(&header, &rows[i % rows.len()].0, 2).unwrap());
        })
    });
    // The reading of a row before issue 17's change: a fresh `csv::Reader` per row (fields
    // only, so a lower bound of the old `csv_case`): the side-by-side of `case_csv_row`.
    g.bench_function("case_csv_row_fresh_reader", |b| {
        b.iter(|| {
            i += 1;
            let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(&rows[i % rows.len()].0[..]);
            black_box(reader.records().next().unwrap().unwrap());
        })
    });
    g.bench_function("case_json_row", |b| {
        b.iter(|| {
            i += 1;
            black_box(serde_json::from_slice::<serde_json::Value>(&rows[i % rows.len()].1).unwrap());
        })
    });
    g.bench_function("batch_line", |b| {
        b.iter(|| {
            i += 1;
            let (line, record) = citygrid::http::routing::batch_line(&world, i, items[i % items.len()].clone(), now);
            black_box((serde_json::to_vec(&line).unwrap(), record));
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(3)).warm_up_time(std::time::Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
