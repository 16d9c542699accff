//! `GET /metrics` (Prometheus, OpenMetrics text) and the request log.
//!
//! [`Metrics`] is the server's registry, one per [`AppState`]. [`track`] is the one middleware
//! layer of the router: for every request it counts and times it by route template (axum's
//! `MatchedPath`, never the raw path; unmatched paths are `other`), method and status, keeps
//! the in-flight gauge, times imports and switches, and logs one line at `info` (target
//! `citygrid::access`) when the response body has been sent (or the client went away).
//! Values that are read rather than counted (served dataset versions and their age, the tile
//! cache's size, the process) are taken at scrape time.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use serde_json::Value;
use tracing::Instrument;

use super::AppState;
use super::error::ApiError;
use crate::store::Dataset;
use crate::world::World;

/// The `Content-Type` of the scrape: OpenMetrics 1.0 text, Prometheus' preferred format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Request latency buckets, seconds: 0.5 ms to 10 s.
const LATENCY_BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Tile encoding buckets, seconds: 0.1 ms to 2.5 s.
const ENCODE_BUCKETS: [f64; 13] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5];
/// Import and switch buckets, seconds: 10 ms to 10 min.
const IMPORT_BUCKETS: [f64; 14] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];
/// Audit append buckets, seconds: 50 µs to 1 s.
const AUDIT_BUCKETS: [f64; 13] = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    /// The route template (`/v1/layers/{name}`) or `other`.
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DatasetLabels {
    dataset: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ImportLabels {
    /// A [`Dataset`] name, `package` (`PUT /v1/city`) or `other` (an unknown name).
    dataset: &'static str,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoutingLabels {
    mode: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StaffLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Single case (`POST /v1/cases/route`) or one case of a batch (`POST /v1/cases/route:batch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoutingMode {
    Single,
    Batch,
}

/// What became of one case sent for routing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RoutingOutcome {
    /// A rule of the responsibility list named the unit.
    Routed,
    /// No rule applies: routed to the grid's own street (属地兜底).
    NoRule,
    /// A point just outside every grid, routed to the nearest grid's street with a warning.
    NearCoverage,
    /// Refused: too far outside the grids (`outside_coverage`).
    OutsideCoverage,
    /// Refused: no usable responsibility list (`rules_unavailable`).
    RulesUnavailable,
    /// Refused: a bad case (unknown type or component, bad point or field).
    Rejected,
    /// The server failed (e.g. the audit log could not be written): no decision given.
    Failed,
}

impl RoutingOutcome {
    const ALL: [RoutingOutcome; 7] = [
        RoutingOutcome::Routed,
        RoutingOutcome::NoRule,
        RoutingOutcome::NearCoverage,
        RoutingOutcome::OutsideCoverage,
        RoutingOutcome::RulesUnavailable,
        RoutingOutcome::Rejected,
        RoutingOutcome::Failed,
    ];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            RoutingOutcome::Routed => "routed",
            RoutingOutcome::NoRule => "no_rule",
            RoutingOutcome::NearCoverage => "near_coverage",
            RoutingOutcome::OutsideCoverage => "outside_coverage",
            RoutingOutcome::RulesUnavailable => "rules_unavailable",
            RoutingOutcome::Rejected => "rejected",
            RoutingOutcome::Failed => "failed",
        }
    }

    /// The outcome of a route answer from its JSON (the typed answers' outcome, `http::routing`,
    /// is checked against it).
    pub fn of_answer(answer: &Value) -> RoutingOutcome {
        if answer["outside_coverage"] == Value::Bool(true) {
            RoutingOutcome::NearCoverage
        } else if answer["rule"].is_null() {
            RoutingOutcome::NoRule
        } else {
            RoutingOutcome::Routed
        }
    }

    /// The outcome of a refused case, from its error code and status.
    pub fn of_error(code: &str, status: u16) -> RoutingOutcome {
        match code {
            "outside_coverage" => RoutingOutcome::OutsideCoverage,
            "rules_unavailable" => RoutingOutcome::RulesUnavailable,
            _ if (400..500).contains(&status) => RoutingOutcome::Rejected,
            _ => RoutingOutcome::Failed,
        }
    }
}

/// The server's metrics. Cheap to update from any thread; read by [`scrape`].
pub struct Metrics {
    registry: Registry,
    exposed: AtomicBool,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: HistogramFamily<HttpLabels>,
    in_flight: Gauge,
    tile_hits: Counter,
    tile_misses: Counter,
    tile_bytes: Gauge,
    tile_entries: Gauge,
    tile_encode: Histogram,
    dataset_version: Family<DatasetLabels, Gauge>,
    dataset_age: Family<DatasetLabels, Gauge<f64, AtomicU64>>,
    imports: Family<ImportLabels, Counter>,
    import_duration: HistogramFamily<ImportLabels>,
    routing: Family<RoutingLabels, Counter>,
    audit_append: Histogram,
    audit_failures: Counter,
    resident_memory: Gauge,
    open_fds: Gauge,
    snapshots_alive: Gauge,
    staff_positions: Family<StaffLabels, Counter>,
    staff_events: Counter,
    staff_track_points: Gauge,
    staff_track_dropped: Counter,
    switch_prebuilt: Counter,
    /// Per dataset: the version last seen served and since when it is.
    served_since: Mutex<BTreeMap<&'static str, (u64, DateTime<Utc>)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every series of the README's "Monitoring" list; `/metrics` exposed.
    pub fn new() -> Metrics {
        let mut r = Registry::default();
        let http_requests = Family::<HttpLabels, Counter>::default();
        r.register("citygrid_http_requests", "HTTP requests answered, by route template, method and status", http_requests.clone());
        let http_duration: HistogramFamily<HttpLabels> = Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS));
        r.register_with_unit(
            "citygrid_http_request_duration",
            "Time from a request's arrival to its response body sent, by route template, method and status",
            Unit::Seconds,
            http_duration.clone(),
        );
        let in_flight = Gauge::default();
        r.register("citygrid_http_requests_in_flight", "Requests being answered now", in_flight.clone());

        let tile_hits = Counter::default();
        r.register("citygrid_tile_cache_hits", "Tile requests answered from the tile cache", tile_hits.clone());
        let tile_misses = Counter::default();
        r.register("citygrid_tile_cache_misses", "Tile requests that had to encode the tile", tile_misses.clone());
        let tile_bytes = Gauge::default();
        r.register_with_unit("citygrid_tile_cache", "Bytes held by the tile cache (raw and compressed copies)", Unit::Bytes, tile_bytes.clone());
        let tile_entries = Gauge::default();
        r.register("citygrid_tile_cache_entries", "Tiles held by the tile cache", tile_entries.clone());
        let tile_encode = Histogram::new(ENCODE_BUCKETS);
        r.register_with_unit("citygrid_tile_encode_duration", "Time to encode and gzip one tile (cache misses)", Unit::Seconds, tile_encode.clone());

        let snapshots_alive = Gauge::default();
        r.register(
            "citygrid_snapshots_alive",
            "Snapshots of the city in memory: the one served, plus old ones not yet freed (2 for a moment around a switch)",
            snapshots_alive.clone(),
        );

        let dataset_version = Family::<DatasetLabels, Gauge>::default();
        r.register("citygrid_dataset_version", "Version of each dataset being served (0: none)", dataset_version.clone());
        let dataset_age = Family::<DatasetLabels, Gauge<f64, AtomicU64>>::default();
        r.register_with_unit("citygrid_dataset_age", "Seconds since the served version of each dataset became current", Unit::Seconds, dataset_age.clone());

        let imports = Family::<ImportLabels, Counter>::default();
        r.register("citygrid_imports", "Imports, dry runs and rollbacks over HTTP, by dataset, operation and outcome (ok, rejected, failed)", imports.clone());
        let import_duration: HistogramFamily<ImportLabels> = Family::new_with_constructor(|| Histogram::new(IMPORT_BUCKETS));
        r.register_with_unit(
            "citygrid_import_duration",
            "Time of imports, dry runs and rollbacks over HTTP (upload, checks, saving, switch)",
            Unit::Seconds,
            import_duration.clone(),
        );

        let routing = Family::<RoutingLabels, Counter>::default();
        // Every outcome from 0, so that a rate over the first decision of a kind is not lost.
        for mode in ["single", "batch"] {
            for outcome in RoutingOutcome::ALL {
                routing.get_or_create(&RoutingLabels { mode, outcome: outcome.name() }).inc_by(0);
            }
        }
        r.register("citygrid_routing_decisions", "Cases routed, by mode (single, batch) and outcome", routing.clone());
        let audit_append = Histogram::new(AUDIT_BUCKETS);
        r.register_with_unit("citygrid_audit_append_duration", "Time to append routing decisions to the audit log", Unit::Seconds, audit_append.clone());
        let audit_failures = Counter::default();
        r.register("citygrid_audit_append_failures", "Audit log appends that failed (their decisions were not given)", audit_failures.clone());

        let staff_positions = Family::<StaffLabels, Counter>::default();
        r.register(
            "citygrid_staff_positions",
            "Staff position items received, by outcome (accepted, older: kept in the track only, rejected)",
            staff_positions.clone(),
        );
        let staff_events = Counter::default();
        r.register("citygrid_staff_events", "Staff grid enter/leave events emitted", staff_events.clone());
        let staff_track_points = Gauge::default();
        r.register("citygrid_staff_track_points", "Staff track points held in memory (the open days)", staff_track_points.clone());
        let staff_track_dropped = Counter::default();
        r.register(
            "citygrid_staff_track_points_dropped",
            "Staff track points not kept (over the daily cap, beyond retention, unwritable)",
            staff_track_dropped.clone(),
        );

        // The process, under the names every Prometheus client uses (dashboards expect them).
        let resident_memory = Gauge::default();
        r.register_with_unit("process_resident_memory", "Resident memory size", Unit::Bytes, resident_memory.clone());
        let open_fds = Gauge::default();
        r.register("process_open_fds", "Open file descriptors", open_fds.clone());
        let start_time = Gauge::<f64, AtomicU64>::default();
        start_time.set(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()));
        r.register_with_unit("process_start_time", "Start time of the process since the Unix epoch", Unit::Seconds, start_time);
        let switch_prebuilt = Counter::default();
        r.register(
            "citygrid_switch_prebuilt",
            "Switches of another replica taken in by swapping the snapshot built ahead of their commit (PostgreSQL store)",
            switch_prebuilt.clone(),
        );
        r.register("citygrid_build", "The citygrid version serving", Info::new(BuildLabels { version: env!("CARGO_PKG_VERSION") }));

        Metrics {
            registry: r,
            exposed: AtomicBool::new(true),
            http_requests,
            http_duration,
            in_flight,
            tile_hits,
            tile_misses,
            tile_bytes,
            tile_entries,
            tile_encode,
            dataset_version,
            dataset_age,
            imports,
            import_duration,
            routing,
            audit_append,
            audit_failures,
            resident_memory,
            open_fds,
            snapshots_alive,
            staff_positions,
            staff_events,
            staff_track_points,
            staff_track_dropped,
            switch_prebuilt,
            served_since: Mutex::new(BTreeMap::new()),
        }
    }

    /// Whether `GET /metrics` answers (else 404). The series are kept either way.
    pub fn set_exposed(&self, exposed: bool) {
        self.exposed.store(exposed, Ordering::Relaxed);
    }

    /// A tile request answered from the cache (`hit`) or encoded.
    pub fn tile_cache(&self, hit: bool) {
        let counter = if hit { &self.tile_hits } else { &self.tile_misses };
        counter.inc();
    }

    /// One tile encoded (and gzipped) in `took`.
    pub fn tile_encoded(&self, took: Duration) {
        self.tile_encode.observe(took.as_secs_f64());
    }

    /// `n` cases of `mode` with this outcome.
    pub fn routing_decisions(&self, mode: RoutingMode, outcome: RoutingOutcome, n: u64) {
        let mode = match mode {
            RoutingMode::Single => "single",
            RoutingMode::Batch => "batch",
        };
        self.routing.get_or_create(&RoutingLabels { mode, outcome: outcome.name() }).inc_by(n);
    }

    /// One append to the audit log, which took `took` and succeeded or not.
    pub fn audit_appended(&self, took: Duration, ok: bool) {
        self.audit_append.observe(took.as_secs_f64());
        if !ok {
            self.audit_failures.inc();
        }
    }

    /// Remembers since when each dataset's version is current, from the data directory's
    /// history (its `created` time; a version made current again by a rollback before this
    /// server started counts from its creation). Called once as the server starts.
    pub fn seed_served_since(&self, history: &[crate::datasets::DatasetHistory], world: &World) {
        let mut since = self.served_since.lock().unwrap_or_else(PoisonError::into_inner);
        for h in history {
            let (Some(dataset), Some(current)) = (Dataset::parse(h.name), world.versions.get(h.name)) else { continue };
            let created = h.versions.iter().find(|v| v.info.version == current).and_then(|v| DateTime::parse_from_rfc3339(&v.info.created).ok());
            since.insert(dataset.name(), (current, created.map_or(world.loaded_at, |t| t.with_timezone(&Utc))));
        }
    }

    /// Notes the versions `world` serves: a version not seen before is current since the
    /// snapshot was built. Called after every switch over HTTP and at every scrape.
    pub fn observe_served(&self, world: &World) {
        let mut since = self.served_since.lock().unwrap_or_else(PoisonError::into_inner);
        for d in Dataset::ALL {
            match world.versions.get(d.name()) {
                Some(v) if since.get(d.name()).map(|(seen, _)| *seen) != Some(v) => {
                    since.insert(d.name(), (v, world.loaded_at));
                }
                Some(_) => {}
                None => {
                    since.remove(d.name());
                }
            }
        }
    }

    /// Sets the values read at scrape time and encodes every series.
    fn encode(&self, state: &AppState) -> String {
        let world = state.world.load();
        self.observe_served(&world);
        let now = Utc::now();
        let since = self.served_since.lock().unwrap_or_else(PoisonError::into_inner).clone();
        for d in Dataset::ALL {
            let labels = DatasetLabels { dataset: d.name() };
            self.dataset_version.get_or_create(&labels).set(world.versions.get(d.name()).unwrap_or(0) as i64);
            match since.get(d.name()) {
                Some((_, at)) => {
                    self.dataset_age.get_or_create(&labels).set((now - *at).num_milliseconds().max(0) as f64 / 1000.0);
                }
                None => {
                    self.dataset_age.remove(&labels);
                }
            }
        }
        let (bytes, entries) = state.tiles.size();
        self.tile_bytes.set(bytes as i64);
        self.tile_entries.set(entries as i64);
        self.snapshots_alive.set(state.world.snapshots_alive() as i64);
        if let Some(rss) = resident_memory_bytes() {
            self.resident_memory.set(rss as i64);
        }
        if let Some(fds) = open_fds() {
            self.open_fds.set(fds as i64);
        }
        // The staff hub keeps its own totals: the counters catch up with them.
        let staff = state.staff.totals();
        for (outcome, total) in [("accepted", staff.accepted), ("older", staff.older), ("rejected", staff.rejected)] {
            let c = self.staff_positions.get_or_create(&StaffLabels { outcome });
            c.inc_by(total.saturating_sub(c.get()));
        }
        self.staff_events.inc_by(staff.events.saturating_sub(self.staff_events.get()));
        self.staff_track_dropped.inc_by(staff.track_points_dropped.saturating_sub(self.staff_track_dropped.get()));
        self.staff_track_points.set(staff.track_points as i64);
        if let Some(datasets) = &state.datasets {
            self.switch_prebuilt.inc_by(datasets.prebuilt_switches().saturating_sub(self.switch_prebuilt.get()));
        }
        let mut out = String::with_capacity(32 << 10);
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("encoding to a String");
        out
    }
}

/// Resident memory of this process, bytes (`VmRSS` of /proc/self/status; `None` off Linux).
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.trim_start_matches("VmRSS:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}

/// Open file descriptors of this process (entries of /proc/self/fd, less the one listing it).
fn open_fds() -> Option<u64> {
    let n = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some(n.saturating_sub(1))
}

/// `GET /metrics`: every series in the OpenMetrics text format; 404 when configured off
/// (`metrics = false`).
#[utoipa::path(get, path = "/metrics", tag = "server",
    summary = "Prometheus metrics (OpenMetrics text): requests, tile cache, datasets, imports, routing, audit, process",
    responses((status = 200, description = "the series", content_type = "application/openmetrics-text; version=1.0.0", body = String),
        (status = 404, description = "not_found: metrics are turned off (metrics = false)", body = super::error::ErrorBody)))]
pub async fn scrape(State(state): State<AppState>, uri: axum::extract::OriginalUri) -> Response {
    if !state.metrics.exposed.load(Ordering::Relaxed) {
        return super::error::no_route(uri).await.into_response();
    }
    let metrics = state.metrics.clone();
    // Reading /proc and encoding is quick, but is file I/O: keep it off the async workers.
    match tokio::task::spawn_blocking(move || metrics.encode(&state)).await {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("metrics encoding failed: {e}")).into_response(),
    }
}

/// The label value of a method (unusual methods are `other`: bounded cardinality).
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// The import or switch a request is, if it is one: (dataset label, operation).
fn import_of(method: &Method, route: &str, path: &str, query: Option<&str>) -> Option<(&'static str, &'static str)> {
    let segment = |from_end: usize| path.trim_end_matches('/').rsplit('/').nth(from_end).unwrap_or("");
    let dataset = |name: &str| Dataset::parse(name).map_or("other", Dataset::name);
    let dry_run = query.is_some_and(|q| q.split('&').any(|p| p == "dry_run=true" || p == "dry_run=1"));
    let import = if dry_run { "dry_run" } else { "import" };
    match *method {
        Method::PUT if route.ends_with("/v1/layers/{name}") => Some((dataset(segment(0)), import)),
        Method::PUT if route.ends_with("/v1/city") => Some(("package", import)),
        Method::PUT if route.ends_with("/v1/rules") => Some(("rules", import)),
        Method::POST if route.ends_with("/v1/layers/{name}/rollback") => Some((dataset(segment(1)), "rollback")),
        Method::POST if route.ends_with("/v1/rules/rollback") => Some(("rules", "rollback")),
        _ => None,
    }
}

/// What [`track`] needs of the server: its metrics, and its world (to note a switch).
#[derive(Clone)]
pub struct Tracking {
    pub metrics: Arc<Metrics>,
    pub world: crate::world::WorldHandle,
}

/// The router's metrics and request-log layer (see the module doc).
pub async fn track(State(state): State<Tracking>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().map_or("other", MatchedPath::as_str).to_owned();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let import = import_of(&method, &route, &path, request.uri().query());
    let metrics = state.metrics.clone();
    metrics.in_flight.inc();
    let mut done = Done { state, started, route, method, path, status: 0, bytes: 0, import, finished: false };
    // The span of the handler's own log lines, at debug (off by default: near-free).
    let span = tracing::debug_span!("request", method = %done.method, route = %done.route);
    let response = next.run(request).instrument(span).await;
    done.status = response.status().as_u16();
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, Body::new(Tracked { inner: body, done }))
}

/// The status counted and logged for a request whose client went away before the answer.
const CLIENT_CLOSED_REQUEST: u16 = 499;

/// A request being answered; counted, timed and logged once, when its body is sent or dropped.
struct Done {
    state: Tracking,
    started: Instant,
    route: String,
    method: Method,
    path: String,
    status: u16,
    bytes: u64,
    import: Option<(&'static str, &'static str)>,
    finished: bool,
}

impl Done {
    fn finish(&mut self) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let took = self.started.elapsed();
        if self.status == 0 {
            self.status = CLIENT_CLOSED_REQUEST;
        }
        let m = &self.state.metrics;
        m.in_flight.dec();
        let labels = HttpLabels { route: std::mem::take(&mut self.route), method: method_label(&self.method), status: self.status };
        m.http_requests.get_or_create(&labels).inc();
        m.http_duration.get_or_create(&labels).observe(took.as_secs_f64());
        if let Some((dataset, operation)) = self.import {
            let outcome = match self.status {
                200..=299 => Some("ok"),
                401 | 403 => None, // not an import attempt: no token
                // The client went away: the import may still finish (and is seen by the next scrape).
                CLIENT_CLOSED_REQUEST => None,
                500.. => Some("failed"),
                _ => Some("rejected"),
            };
            if let Some(outcome) = outcome {
                let labels = ImportLabels { dataset, operation, outcome };
                m.imports.get_or_create(&labels).inc();
                m.import_duration.get_or_create(&labels).observe(took.as_secs_f64());
                if outcome == "ok" && operation != "dry_run" {
                    m.observe_served(&self.state.world.load());
                }
            }
        }
        tracing::info!(
            target: "citygrid::access",
            method = %self.method,
            route = %labels.route,
            path = %self.path,
            status = self.status,
            latency_ms = (took.as_secs_f64() * 1e6).round() / 1e3,
            bytes = self.bytes,
            "request"
        );
    }
}

/// A response body that tells [`Done`] its size and when it has been sent.
struct Tracked {
    inner: Body,
    done: Done,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.done.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) => this.done.finish(),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Done {
    /// The body was sent or dropped, or the handler itself was dropped (the client went away
    /// before the answer: status 499, as nginx logs it).
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_are_recognised_by_route_and_method() {
        let put = Method::PUT;
        assert_eq!(import_of(&put, "/v1/layers/{name}", "/v1/layers/grids", None), Some(("grids", "import")));
        assert_eq!(import_of(&put, "/v1/layers/{name}", "/v1/layers/units", Some("dry_run=true")), Some(("units", "dry_run")));
        assert_eq!(import_of(&put, "/v1/layers/{name}", "/v1/layers/bogus", None), Some(("other", "import")));
        assert_eq!(import_of(&put, "/v1/city", "/v1/city", None), Some(("package", "import")));
        assert_eq!(import_of(&Method::POST, "/v1/layers/{name}/rollback", "/v1/layers/zones/rollback", None), Some(("zones", "rollback")));
        assert_eq!(import_of(&Method::POST, "/v1/rules/rollback", "/v1/rules/rollback", None), Some(("rules", "rollback")));
        assert_eq!(import_of(&Method::GET, "/v1/rules", "/v1/rules", None), None);
        assert_eq!(import_of(&Method::GET, "/v1/layers/{name}", "/v1/layers/grids", None), None);
    }

    #[test]
    fn answers_and_refusals_are_classified() {
        let routed = serde_json::json!({"rule": {"id": 1}, "outside_coverage": false});
        let no_rule = serde_json::json!({"rule": null, "outside_coverage": false});
        let near = serde_json::json!({"rule": null, "outside_coverage": true});
        let answers: Vec<&str> = [routed, no_rule, near].iter().map(|a| RoutingOutcome::of_answer(a).name()).collect();
        assert_eq!(answers, ["routed", "no_rule", "near_coverage"]);
        assert_eq!(RoutingOutcome::of_error("outside_coverage", 422).name(), "outside_coverage");
        assert_eq!(RoutingOutcome::of_error("invalid_parameter", 400).name(), "rejected");
        assert_eq!(RoutingOutcome::of_error("rules_unavailable", 503).name(), "rules_unavailable");
        assert_eq!(RoutingOutcome::of_error("internal", 500).name(), "failed");
    }

    #[tokio::test]
    async fn a_request_dropped_before_its_answer_leaves_the_in_flight_gauge() {
        use tower::ServiceExt;
        let loaded = crate::datasets::empty_city(None);
        let world = crate::world::WorldHandle::new(World::new(loaded));
        let metrics = Arc::new(Metrics::new());
        let tracking = Tracking { metrics: metrics.clone(), world };
        let app = axum::Router::new()
            .route("/slow", axum::routing::get(std::future::pending::<&'static str>))
            .route("/fast", axum::routing::get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(tracking, track));
        let slow = app.clone().oneshot(Request::builder().uri("/slow").body(Body::empty()).unwrap());
        assert!(tokio::time::timeout(Duration::from_millis(20), slow).await.is_err(), "never answers");
        let response = app.oneshot(Request::builder().uri("/fast").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(metrics.in_flight.get(), 1, "the answer's body is not sent yet");
        drop(response);
        assert_eq!(metrics.in_flight.get(), 0);
        let count = |route: &str, status| metrics.http_requests.get_or_create(&HttpLabels { route: route.into(), method: "GET", status }).get();
        assert_eq!((count("/slow", 499), count("/fast", 200)), (1, 1));
    }

    #[test]
    fn the_process_is_measured_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(resident_memory_bytes().unwrap() > 1 << 20);
            assert!(open_fds().unwrap() >= 3);
        }
    }
}
