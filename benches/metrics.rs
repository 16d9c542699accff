//! Cost of the metrics and request-log layer (src/http/metrics.rs), in process through tower
//! `oneshot` on one thread (no sockets: the layer's share is what is left).
//!
//! - `metrics/trivial/bare` vs `metrics/trivial/tracked`: a handler answering "ok" without and
//!   with the layer: the layer's own cost per request (labels, counters, histogram, in-flight
//!   gauge, the body wrapper), with no log subscriber installed;
//! - `metrics/trivial/tracked_logged`: the same with the JSON log subscriber writing each
//!   request's line to a sink: the formatting cost of the request log at `info`;
//! - `metrics/tile_cached` and `metrics/locate`: a hot cached tile (gzip) and a `/v1/locate`
//!   through the whole router (which carries the layer), on the tiny demo city: what the
//!   layer's cost is compared with;
//! - `metrics/scrape`: one `GET /metrics` after those.
//!
//! `cargo bench --bench metrics`

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use citygrid::demo::{DemoSpec, Preset, generate};
use citygrid::http::metrics::{Metrics, Tracking, track};
use citygrid::http::{AppState, router};
use citygrid::store::{LoadedCity, Versions};
use citygrid::world::{World, WorldHandle};
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt;
use tower::ServiceExt;

fn call(rt: &tokio::runtime::Runtime, app: &Router, uri: &str) -> usize {
    rt.block_on(async {
        let request = Request::builder().uri(uri).header("accept-encoding", "gzip").body(Body::empty()).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert!(response.status().is_success(), "{uri}: {}", response.status());
        response.into_body().collect().await.unwrap().to_bytes().len()
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let demo = generate(&DemoSpec { preset: Preset::Tiny, components: None, seed: 1 }, &|_, _| {}).unwrap();
    let (lon, lat) = (demo.city.components[0].location.x, demo.city.components[0].location.y);
    let loaded = LoadedCity { meta: demo.meta(), city: demo.city, versions: Versions(BTreeMap::new()), rules_csv: Some(demo.rules_csv), calendar_toml: None };
    let handle = WorldHandle::new(World::new(loaded));

    let trivial = Router::new().route("/x", get(|| async { "ok" }));
    let tracking = Tracking { metrics: Arc::new(Metrics::new()), world: handle.clone() };
    let tracked = trivial.clone().layer(axum::middleware::from_fn_with_state(tracking, track));
    let mut g = c.benchmark_group("metrics/trivial");
    g.bench_function("bare", |b| b.iter(|| black_box(call(&rt, &trivial, "/x"))));
    g.bench_function("tracked", |b| b.iter(|| black_box(call(&rt, &tracked, "/x"))));
    let json_log = tracing_subscriber::fmt().json().flatten_event(true).with_writer(std::io::sink).finish();
    tracing::subscriber::with_default(json_log, || {
        g.bench_function("tracked_logged", |b| b.iter(|| black_box(call(&rt, &tracked, "/x"))));
    });
    g.finish();

    let app = router(AppState::new(handle));
    let tile = "/tiles/grids,components/0/0/0.mvt";
    assert!(call(&rt, &app, tile) > 0, "the tile is warm");
    c.bench_function("metrics/tile_cached", |b| b.iter(|| black_box(call(&rt, &app, tile))));
    let locate = format!("/v1/locate?lon={lon}&lat={lat}");
    c.bench_function("metrics/locate", |b| b.iter(|| black_box(call(&rt, &app, &locate))));
    c.bench_function("metrics/scrape", |b| b.iter(|| black_box(call(&rt, &app, "/metrics"))));
}

criterion_group!(benches, bench);
criterion_main!(benches);
