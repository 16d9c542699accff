//! Field staff over HTTP, thin over [`crate::staff`]:
//! `POST /v1/staff/positions` (a positions token), `GET /v1/staff/nearest`, `GET /v1/staff`
//! (in a box or a grid), `GET /v1/staff/events` (Server-Sent Events) — the reads need a staff
//! token (see [`super::auth`]).

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Serialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::{PositionWriter, StaffReader};
use super::error::{ApiError, ErrorBody};
use super::lookup::json;
use super::params::Params;
use crate::lookup::PointEcho;
use crate::model::GridCode;
use crate::staff::{BatchError, BatchOutcome, Filter, Hit, Role, StaffHub, Status};
use crate::world::World;

/// Largest position batch body, bytes.
pub const MAX_POSITIONS_BYTES: usize = 8 << 20;
/// Default and largest `k` of `GET /v1/staff/nearest`.
const DEFAULT_K: usize = 5;
const MAX_K: usize = 100;
/// Default and largest page of `GET /v1/staff`.
const DEFAULT_LIMIT: usize = 1000;
const MAX_LIMIT: usize = 10_000;

impl From<BatchError> for ApiError {
    fn from(e: BatchError) -> ApiError {
        let message = e.to_string();
        match e {
            BatchError::NotJson(_) => ApiError::bad_request("invalid_json", message),
            BatchError::Shape | BatchError::Empty => ApiError::bad_request("invalid_batch", message),
            BatchError::TooMany { max, got } => ApiError::bad_request("too_many_positions", message).with_details(json!({"max": max, "got": got})),
            BatchError::Crs(_) => ApiError::bad_request("invalid_batch", message).with_details(json!({"parameter": "crs"})),
        }
    }
}

/// Makes the hub use the `staff` dataset version the served snapshot names, if it does not
/// yet (after an import, a rollback, another replica's switch). A register that cannot be read
/// is logged, and the one in use stays.
pub fn follow_register(state: &AppState, world: &World) {
    let wanted = world.versions.get("staff");
    if wanted == state.staff.register_version() || wanted.is_none() {
        return;
    }
    let Some(datasets) = &state.datasets else { return };
    let read = datasets.version_file("staff", wanted).map_err(|e| e.to_string()).and_then(|(_, mut file)| {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut file, &mut text).map_err(|e| e.to_string())?;
        crate::staff::StaffRegister::from_csv(&text)
    });
    match read {
        Ok(register) => state.staff.set_register(register, wanted),
        Err(e) => tracing::warn!(version = ?wanted, error = %e, "the staff register cannot be read; the one in use stays"),
    }
}

/// A position batch (`POST /v1/staff/positions`): an array of items, or an object with a
/// default `crs` and `positions`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // the schema of what crate::staff::input reads
pub struct PositionBatch {
    /// Default datum of the items: wgs84 (default), cgcs2000, gcj02, bd09, EPSG:4326, EPSG:4490, or a projected EPSG code (items then give x, y).
    crs: Option<String>,
    positions: Vec<PositionItem>,
}

/// One position report.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct PositionItem {
    /// The person's id in the staff register.
    id: String,
    lon: Option<f64>,
    lat: Option<f64>,
    /// Easting, metres (a projected crs).
    x: Option<f64>,
    /// Northing, metres.
    y: Option<f64>,
    /// RFC 3339 with offset, or Unix milliseconds (integer); at most 300 s ahead of the server.
    #[schema(value_type = String)]
    time: Value,
    /// GPS accuracy radius, metres.
    accuracy: Option<f64>,
    /// available (default), busy, off_duty.
    status: Option<String>,
    /// This item's datum (overrides the batch's).
    crs: Option<String>,
}

/// `POST /v1/staff/positions`.
#[utoipa::path(post, path = "/v1/staff/positions", tag = "staff", operation_id = "staff_positions",
    summary = "position reports of field staff, a batch at a time (positions or admin token)",
    request_body(content = PositionBatch, description = "an object {crs, positions: [...]}, or a bare array of positions (at most 10000)"),
    security(("bearer" = [])),
    responses((status = 200, description = "what was stored; refused items each with their error", body = BatchOutcome),
        (status = 400, description = "invalid_json, invalid_batch, too_many_positions", body = ErrorBody),
        (status = 401, description = "unauthorized: no Authorization: Bearer header", body = ErrorBody),
        (status = 403, description = "forbidden, or positions_disabled (no positions token configured)", body = ErrorBody),
        (status = 413, description = "payload_too_large: a batch is at most 8 MiB", body = ErrorBody)))]
pub async fn positions(
    _writer: PositionWriter,
    State(state): State<AppState>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "a position batch is at most 8 MiB: send several")
            .with_details(json!({"max_bytes": MAX_POSITIONS_BYTES})),
        status => ApiError::new(status, "body_failed", format!("the body did not arrive whole: {}", e.body_text())),
    })?;
    let world = state.world.load();
    follow_register(&state, &world);
    let items = crate::staff::input::parse_batch(&body, Utc::now())?;
    let outcome = state.staff.apply(&world, items);
    Ok(json(&outcome))
}

/// A person in an answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StaffPosition {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub unit: String,
    pub status: Status,
    /// WGS84.
    pub lon: f64,
    pub lat: f64,
    pub accuracy_m: Option<f64>,
    /// When the phone measured it.
    pub time: chrono::DateTime<Utc>,
    /// Seconds since then.
    pub age_s: f64,
    /// The unit grid the position is in (`null` outside every unit grid).
    #[schema(value_type = Option<String>)]
    pub grid: Option<String>,
    /// Great-circle metres from the query point (nearest searches only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance_m: Option<f64>,
}

impl StaffPosition {
    pub fn of(hit: &Hit, now: chrono::DateTime<Utc>, with_distance: bool) -> StaffPosition {
        let m = &hit.member;
        StaffPosition {
            id: m.id.clone(),
            name: m.name.clone(),
            role: m.role,
            unit: m.unit.clone(),
            status: hit.fix.status,
            lon: hit.fix.lon,
            lat: hit.fix.lat,
            accuracy_m: hit.fix.accuracy_m,
            time: hit.fix.time,
            age_s: (now - hit.fix.time).num_milliseconds() as f64 / 1000.0,
            grid: hit.grid.map(|g| g.to_string()),
            distance_m: with_distance.then_some(hit.distance_m),
        }
    }
}

/// The answer of `GET /v1/staff/nearest`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NearestStaff {
    pub point: PointEcho,
    /// Nearest first.
    pub staff: Vec<StaffPosition>,
    /// Positions older than this many seconds were left out.
    pub stale_after_s: u64,
}

/// The answer of `GET /v1/staff`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StaffPage {
    /// By id.
    pub staff: Vec<StaffPosition>,
    /// More matched than `limit`.
    pub truncated: bool,
    pub stale_after_s: u64,
}

/// The filters every staff read takes: `role`, `status` (default for nearest: available;
/// `any`: every status), `within` (a grid code of any level).
fn filter(p: &Params, world: &World, hub: &StaffHub, default_status: Option<Status>) -> Result<Filter, ApiError> {
    let role = match p.get("role") {
        None => None,
        Some(r) => Some(Role::parse(r).ok_or_else(|| invalid("role", r, "role must be inspector (监督员) or grid_worker (网格员)"))?),
    };
    let status = match p.get("status") {
        None => default_status,
        Some(s) if s.trim() == "any" => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| invalid("status", s, "status must be available, busy, off_duty or any"))?),
    };
    let within = p.get("within").map(|w| grid_code(world, "within", w)).transpose()?;
    Ok(Filter { role, status, within, fresh_since: hub.fresh_since(Utc::now()) })
}

fn grid_code(world: &World, parameter: &'static str, text: &str) -> Result<GridCode, ApiError> {
    let (code, _) = GridCode::parse(text.trim(), &world.city.hierarchy).map_err(|e| invalid(parameter, text, &e.to_string()))?;
    if world.city.grid_by_code(code).is_none() {
        return Err(
            ApiError::new(StatusCode::NOT_FOUND, "grid_not_found", format!("no grid {text}")).with_details(json!({"parameter": parameter, "code": text}))
        );
    }
    Ok(code)
}

fn invalid(parameter: &str, value: &str, message: &str) -> ApiError {
    ApiError::bad_request("invalid_parameter", message.to_owned()).with_details(json!({"parameter": parameter, "value": value}))
}

/// `GET /v1/staff/nearest?lon&lat[&crs][&k][&role][&status][&within][&max_distance]`.
#[utoipa::path(get, path = "/v1/staff/nearest", tag = "staff", operation_id = "staff_nearest",
    summary = "the k field staff nearest a point, great-circle distance (staff or admin token)",
    params(("lon" = Option<f64>, Query, description = "longitude (with lat; a datum crs)"),
        ("lat" = Option<f64>, Query, description = "latitude"),
        ("x" = Option<f64>, Query, description = "easting, metres (with y; a projected crs such as EPSG:4549)"),
        ("y" = Option<f64>, Query, description = "northing, metres"),
        ("crs" = Option<String>, Query, description = "wgs84 (default), cgcs2000, gcj02, bd09, EPSG:4326, EPSG:4490, or a projected EPSG code (x/y)"),
        ("k" = Option<usize>, Query, description = "how many (default 5, at most 100)"),
        ("role" = Option<String>, Query, description = "inspector or grid_worker (default: both)"),
        ("status" = Option<String>, Query, description = "available (default), busy, off_duty, or any"),
        ("within" = Option<String>, Query, description = "only staff whose current unit grid is this grid or lies in it (a street's or a community's code)"),
        ("max_distance" = Option<f64>, Query, description = "search radius, metres")),
    security(("bearer" = [])),
    responses((status = 200, description = "the staff, nearest first (stale positions left out)", body = NearestStaff),
        (status = 400, description = "a parameter is missing or unusable", body = ErrorBody),
        (status = 401, description = "unauthorized: no Authorization: Bearer header", body = ErrorBody),
        (status = 403, description = "forbidden: not a staff or admin token", body = ErrorBody),
        (status = 404, description = "grid_not_found: within names no grid", body = ErrorBody)))]
pub async fn nearest(_reader: StaffReader, State(state): State<AppState>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let p = Params::parse(q.as_deref())?;
    let point = super::lookup::point(&p)?;
    let k = p.parsed::<usize>("k", "a whole number")?.unwrap_or(DEFAULT_K);
    if !(1..=MAX_K).contains(&k) {
        return Err(invalid("k", &k.to_string(), &format!("k must be between 1 and {MAX_K}")));
    }
    let max_distance = p.parsed::<f64>("max_distance", "metres (a decimal number)")?;
    if let Some(d) = max_distance
        && !(d.is_finite() && d >= 0.0)
    {
        return Err(invalid("max_distance", &d.to_string(), "max_distance must be metres, a number ≥ 0"));
    }
    let world = state.world.load();
    follow_register(&state, &world);
    let filter = filter(&p, &world, &state.staff, Some(Status::Available))?;
    let now = Utc::now();
    let hits = state.staff.nearest([point.wgs84.lon, point.wgs84.lat], k, &filter, max_distance);
    Ok(json(&NearestStaff {
        point,
        staff: hits.iter().map(|h| StaffPosition::of(h, now, true)).collect(),
        stale_after_s: state.staff.config().stale_after.as_secs(),
    }))
}

/// `GET /v1/staff?bbox=…|grid=…[&crs][&role][&status][&limit]`.
#[utoipa::path(get, path = "/v1/staff", tag = "staff", operation_id = "staff_list",
    summary = "field staff in a box or a grid, by id (staff or admin token)",
    params(("bbox" = Option<String>, Query, description = "minlon,minlat,maxlon,maxlat (minx,miny,maxx,maxy in metres with a projected crs)"),
        ("grid" = Option<String>, Query, description = "a grid code of any level: staff whose current unit grid is it or lies in it"),
        ("crs" = Option<String>, Query, description = "the CRS of bbox: a datum (default wgs84) or a projected EPSG code"),
        ("role" = Option<String>, Query, description = "inspector or grid_worker (default: both)"),
        ("status" = Option<String>, Query, description = "available, busy, off_duty, or any (default)"),
        ("limit" = Option<usize>, Query, description = "at most this many (default 1000, at most 10000)")),
    security(("bearer" = [])),
    responses((status = 200, description = "the staff (stale positions left out)", body = StaffPage),
        (status = 400, description = "a parameter is unusable, or both bbox and grid given", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "forbidden: not a staff or admin token", body = ErrorBody),
        (status = 404, description = "grid_not_found", body = ErrorBody)))]
pub async fn list(_reader: StaffReader, State(state): State<AppState>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let p = Params::parse(q.as_deref())?;
    let limit = p.parsed::<usize>("limit", "a whole number")?.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(invalid("limit", &limit.to_string(), &format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    let world = state.world.load();
    follow_register(&state, &world);
    let filter = filter(&p, &world, &state.staff, None)?;
    let (hits, truncated) = match (p.get("bbox"), p.get("grid")) {
        (Some(_), Some(_)) => return Err(ApiError::bad_request("invalid_parameter", "give bbox or grid, not both").with_details(json!({"parameter": "grid"}))),
        (Some(_), None) => {
            let bbox = super::lookup::bbox(&p)?;
            if !(bbox[0] <= bbox[2] && bbox[1] <= bbox[3]) {
                return Err(invalid("bbox", p.get("bbox").unwrap_or(""), "bbox must be minlon,minlat,maxlon,maxlat with min ≤ max"));
            }
            state.staff.in_bbox(bbox, &filter, limit)
        }
        (None, Some(g)) => state.staff.in_grid(grid_code(&world, "grid", g)?, &filter, limit),
        (None, None) => state.staff.in_bbox([-180.0, -90.0, 180.0, 90.0], &filter, limit),
    };
    let now = Utc::now();
    Ok(json(&StaffPage {
        staff: hits.iter().map(|h| StaffPosition::of(h, now, false)).collect(),
        truncated,
        stale_after_s: state.staff.config().stale_after.as_secs(),
    }))
}

/// The SSE stream of one client: events forwarded from the hub's broadcast channel.
struct EventStream(tokio::sync::mpsc::Receiver<Event>);

impl futures_core::Stream for EventStream {
    type Item = Result<Event, Infallible>;

    fn poll_next(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|e| e.map(Ok))
    }
}

/// `GET /v1/staff/events[?types=grid_change,positions][&bbox=…[&crs=]][&datum=]`: Server-Sent Events.
#[utoipa::path(get, path = "/v1/staff/events", tag = "staff", operation_id = "staff_events",
    summary = "grid enter/leave events and live positions of field staff as Server-Sent Events (staff or admin token)",
    description = "First `event: ready` (data `{\"people\": n, \"types\": [...], \"stale_after_s\": s}`), then, of the `types` asked for (default `grid_change`): one `event: grid_change` per position that changes a person's unit grid (data: the event JSON, `id`: its sequence number), and `event: positions` at most once per `positions_interval_ms` (default 1 s): `{\"time\", \"people\": [{id, name, role, unit, status, lon, lat, accuracy_m, time, age_s, grid}], \"more\"}`, the latest position of each person whose position changed since the previous one (at most `positions_max` people; `more`: the rest come next), in `datum`, inside `bbox` if given. A client that falls behind the server's buffer gets `event: lagged` (data `{\"missed\": n}`) and the stream ends: reconnect. Comments keep the connection alive every 15 s.",
    params(("types" = Option<String>, Query, description = "comma-separated event types: grid_change (default), positions"),
        ("bbox" = Option<String>, Query, description = "positions: only people in minlon,minlat,maxlon,maxlat (in crs; grid_change events are not filtered)"),
        ("crs" = Option<String>, Query, description = "the CRS of bbox: a datum (default wgs84) or a projected EPSG code"),
        ("datum" = Option<String>, Query, description = "positions: lon/lat in wgs84 (default), cgcs2000, gcj02 or bd09")),
    security(("bearer" = [])),
    responses((status = 200, description = "the event stream", content_type = "text/event-stream", body = String),
        (status = 400, description = "invalid_parameter: an unknown type, an unusable bbox or datum", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "forbidden: not a staff or admin token", body = ErrorBody)))]
pub async fn events(_reader: StaffReader, State(state): State<AppState>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let p = Params::parse(q.as_deref())?;
    let (grid_changes, positions) = event_types(p.get("types"))?;
    let bbox = match p.get("bbox") {
        None => None,
        Some(text) => {
            let b = super::lookup::bbox(&p)?;
            if !(b[0] <= b[2] && b[1] <= b[3]) {
                return Err(invalid("bbox", text, "bbox must be minlon,minlat,maxlon,maxlat with min ≤ max"));
            }
            Some(b)
        }
    };
    let datum = match p.get("datum") {
        None => crate::crs::datum::Datum::Wgs84,
        Some(d) => d.parse().map_err(|_| invalid("datum", d, "datum must be wgs84, cgcs2000, gcj02 or bd09"))?,
    };
    let mut rx = grid_changes.then(|| state.staff.subscribe());
    let mut frames = positions.then(|| state.staff.subscribe_positions());
    let (tx, out) = tokio::sync::mpsc::channel::<Event>(64);
    let people = state.staff.people();
    let types: Vec<&str> = [(grid_changes, "grid_change"), (positions, "positions")].into_iter().filter(|t| t.0).map(|t| t.1).collect();
    let ready = json!({"people": people, "types": types, "stale_after_s": state.staff.config().stale_after.as_secs()});
    tokio::spawn(async move {
        if tx.send(Event::default().event("ready").data(ready.to_string())).await.is_err() {
            return;
        }
        loop {
            let event = tokio::select! {
                got = recv(&mut rx) => match got {
                    Ok(e) => Event::default().event(e.kind).id(e.seq.to_string()).data(e.json.as_str()),
                    Err(end) => return lagged(&tx, end).await,
                },
                got = recv(&mut frames) => match got {
                    Ok(frame) => match positions_json(&frame, bbox, datum) {
                        Some(data) => Event::default().event("positions").data(data),
                        None => continue, // nobody in the box moved
                    },
                    Err(end) => return lagged(&tx, end).await,
                },
            };
            if tx.send(event).await.is_err() {
                return; // the client is gone
            }
        }
    });
    Ok(Sse::new(EventStream(out)).keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15))).into_response())
}

/// `types` of `GET /v1/staff/events`: (grid_change, positions); default grid_change only.
fn event_types(types: Option<&str>) -> Result<(bool, bool), ApiError> {
    let Some(text) = types else { return Ok((true, false)) };
    let (mut grid_changes, mut positions) = (false, false);
    for t in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        match t {
            "grid_change" => grid_changes = true,
            "positions" => positions = true,
            _ => return Err(invalid("types", t, "types must be grid_change and/or positions, separated by commas")),
        }
    }
    if !(grid_changes || positions) {
        return Err(invalid("types", text, "types must name grid_change and/or positions"));
    }
    Ok((grid_changes, positions))
}

/// The next item of an optional broadcast receiver (never, without one).
async fn recv<T: Clone>(rx: &mut Option<tokio::sync::broadcast::Receiver<T>>) -> Result<T, tokio::sync::broadcast::error::RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Ends a stream whose reader fell behind (`event: lagged`), or whose hub is gone.
async fn lagged(tx: &tokio::sync::mpsc::Sender<Event>, end: tokio::sync::broadcast::error::RecvError) {
    if let tokio::sync::broadcast::error::RecvError::Lagged(missed) = end {
        let _ = tx.send(Event::default().event("lagged").data(json!({"missed": missed}).to_string())).await;
    }
}

/// The data of a `positions` event: the people of `frame` in `bbox` (WGS84), in `datum`;
/// `None` when none is in the box.
fn positions_json(frame: &crate::staff::PositionsFrame, bbox: Option<[f64; 4]>, datum: crate::crs::datum::Datum) -> Option<String> {
    let inside = |h: &&Hit| bbox.is_none_or(|b| h.fix.lon >= b[0] && h.fix.lon <= b[2] && h.fix.lat >= b[1] && h.fix.lat <= b[3]);
    let now = Utc::now();
    let people: Vec<StaffPosition> = frame
        .people
        .iter()
        .filter(inside)
        .map(|h| {
            let mut p = StaffPosition::of(h, now, false);
            (p.lon, p.lat) = datum.from_wgs84(p.lon, p.lat);
            p
        })
        .collect();
    if people.is_empty() {
        return None;
    }
    let time = frame.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    Some(json!({"time": time, "datum": datum.to_string(), "people": people, "more": frame.more}).to_string())
}

/// `suggest_staff` of `POST /v1/cases/route`: `true` (3 nearest) or how many (1–20), of the
/// available inspectors with a fresh position, nearest the case's point (or component).
pub(crate) fn suggest(state: &AppState, world: &World, at: [f64; 2], k: usize) -> Vec<StaffPosition> {
    follow_register(state, world);
    let filter = Filter { role: Some(Role::Inspector), status: Some(Status::Available), within: None, fresh_since: state.staff.fresh_since(Utc::now()) };
    let now = Utc::now();
    state.staff.nearest(at, k, &filter, None).iter().map(|h| StaffPosition::of(h, now, true)).collect()
}

/// Reads `suggest_staff` from a case body (and takes it out, so the case parser and the audit
/// log see the case as before): `None` when absent or `false`.
pub(crate) fn take_suggest(input: &mut Value) -> Result<Option<usize>, ApiError> {
    let Some(map) = input.as_object_mut() else { return Ok(None) };
    match map.remove("suggest_staff") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(None),
        Some(Value::Bool(true)) => Ok(Some(3)),
        Some(v) => match v.as_u64() {
            Some(k @ 1..=20) => Ok(Some(k as usize)),
            _ => Err(ApiError::bad_request("invalid_parameter", "suggest_staff must be true, false or how many inspectors (1 to 20)")
                .with_details(json!({"parameter": "suggest_staff", "value": v}))),
        },
    }
}

/// Shared hub type of the state.
pub type Hub = Arc<StaffHub>;

// ---- One person, their track, patrol coverage (issue 18 item 4) ----

/// The `date` parameter: YYYY-MM-DD (a day in China time), default today.
fn date_param(p: &Params) -> Result<chrono::NaiveDate, ApiError> {
    match p.get("date") {
        None => Ok(crate::staff::tracks::day_of(Utc::now())),
        Some(d) => chrono::NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").map_err(|_| invalid("date", d, "date must be a day, YYYY-MM-DD (China time)")),
    }
}

/// The `crs` of an answer's coordinates: a datum (wgs84 default, cgcs2000, gcj02, bd09).
fn datum_param(p: &Params) -> Result<crate::crs::Datum, ApiError> {
    match p.get("crs") {
        None => Ok(crate::crs::Datum::Wgs84),
        Some(c) => c.parse().map_err(|e: crate::crs::datum::UnknownDatum| {
            ApiError::bad_request("unknown_crs", e.to_string()).with_details(json!({"parameter": "crs", "value": c}))
        }),
    }
}

fn staff_not_found(id: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "staff_not_found", format!("{id} is not in the staff register")).with_details(json!({"id": id}))
}

fn tracks_unreadable(e: std::io::Error) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "tracks_unreadable", format!("the day's tracks cannot be read: {e}"))
}

fn blocking_failed(e: tokio::task::JoinError) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("the computation failed: {e}"))
}

/// A GeoJSON MultiPolygon of a WGS84 shape, in `datum`.
fn multipolygon_json(shape: &geo_types::MultiPolygon<f64>, datum: crate::crs::Datum) -> Value {
    let ring = |r: &geo_types::LineString<f64>| -> Vec<[f64; 2]> {
        r.0.iter()
            .map(|c| {
                let (x, y) = datum.from_wgs84(c.x, c.y);
                [x, y]
            })
            .collect()
    };
    let polygons: Vec<Vec<Vec<[f64; 2]>>> =
        shape.0.iter().map(|p| std::iter::once(ring(p.exterior())).chain(p.interiors().iter().map(ring)).collect()).collect();
    json!({"type": "MultiPolygon", "coordinates": polygons})
}

/// A GeoJSON answer.
fn geojson(value: &Value) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/geo+json")], value.to_string()).into_response()
}

/// The answer of `GET /v1/staff/{id}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StaffPerson {
    /// The register entry.
    pub member: crate::staff::StaffMember,
    /// The latest position (stale or not), `null` when none arrived since the server started.
    pub position: Option<StaffPosition>,
    /// The position is older than `stale_after_s` (left out of nearest and lists); `null` without a position.
    pub stale: Option<bool>,
    pub stale_after_s: u64,
}

/// `GET /v1/staff/{id}`.
#[utoipa::path(get, path = "/v1/staff/{id}", tag = "staff", operation_id = "staff_person",
    summary = "one person of the staff register with their latest position (staff or admin token)",
    params(("id" = String, Path, description = "the person's id in the staff register")),
    security(("bearer" = [])),
    responses((status = 200, description = "the register entry, the latest position (or null) and whether it is stale", body = StaffPerson),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "forbidden: not a staff or admin token", body = ErrorBody),
        (status = 404, description = "staff_not_found: no such id in the register", body = ErrorBody)))]
pub async fn person(_reader: StaffReader, State(state): State<AppState>, axum::extract::Path(id): axum::extract::Path<String>) -> Result<Response, ApiError> {
    let world = state.world.load();
    follow_register(&state, &world);
    let register = state.staff.register();
    let member = register.get(&id).ok_or_else(|| staff_not_found(&id))?;
    let now = Utc::now();
    let hit = state.staff.position(&id);
    let fresh_since = state.staff.fresh_since(now);
    Ok(json(&StaffPerson {
        member: (**member).clone(),
        stale: hit.as_ref().map(|h| h.fix.time < fresh_since),
        position: hit.as_ref().map(|h| StaffPosition::of(h, now, false)),
        stale_after_s: state.staff.config().stale_after.as_secs(),
    }))
}

/// `GET /v1/staff/{id}/track?date=YYYY-MM-DD[&crs=]`.
#[utoipa::path(get, path = "/v1/staff/{id}/track", tag = "staff", operation_id = "staff_track",
    summary = "one person's track of a day as a GeoJSON Feature (staff or admin token)",
    description = "A Feature whose geometry is a LineString of the day's positions in time order (a Point for a single position, null for none), with `properties`: `id`, `name`, `date`, `crs`, `points`, `times` (RFC 3339, one per vertex), `status` (one per vertex), `accuracy_m` (one per vertex, null when unknown), `distance_m` (great-circle length), `first`, `last`.",
    params(("id" = String, Path, description = "the person's id in the staff register"),
        ("date" = Option<String>, Query, description = "the day, YYYY-MM-DD in China time (default today)"),
        ("crs" = Option<String>, Query, description = "datum of the coordinates: wgs84 (default), cgcs2000, gcj02, bd09")),
    security(("bearer" = [])),
    responses((status = 200, description = "the track", content_type = "application/geo+json", body = Object),
        (status = 400, description = "invalid_parameter (date), unknown_crs", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "forbidden: not a staff or admin token", body = ErrorBody),
        (status = 404, description = "staff_not_found: no such id in the register", body = ErrorBody),
        (status = 500, description = "tracks_unreadable: the day's file cannot be read", body = ErrorBody)))]
pub async fn track(
    _reader: StaffReader,
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(q.as_deref())?;
    let date = date_param(&p)?;
    let datum = datum_param(&p)?;
    let world = state.world.load();
    follow_register(&state, &world);
    let register = state.staff.register();
    let member = register.get(&id).ok_or_else(|| staff_not_found(&id))?.clone();
    let hub = state.staff.clone();
    let day = tokio::task::spawn_blocking(move || hub.tracks_of_day(date)).await.map_err(blocking_failed)?.map_err(tracks_unreadable)?;
    let points = day.into_iter().find(|(k, _)| **k == *member.id).map(|(_, v)| v).unwrap_or_default();
    let coords: Vec<[f64; 2]> = points
        .iter()
        .map(|p| {
            let (x, y) = datum.from_wgs84(p.lon, p.lat);
            [x, y]
        })
        .collect();
    let geometry = match coords.len() {
        0 => Value::Null,
        1 => json!({"type": "Point", "coordinates": coords[0]}),
        _ => json!({"type": "LineString", "coordinates": coords}),
    };
    let distance_m: f64 = points
        .windows(2)
        .map(|w| crate::crs::distance::haversine_m(geo_types::Coord { x: w[0].lon, y: w[0].lat }, geo_types::Coord { x: w[1].lon, y: w[1].lat }))
        .sum();
    let time = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    Ok(geojson(&json!({
        "type": "Feature",
        "id": member.id,
        "geometry": geometry,
        "properties": {
            "id": member.id, "name": member.name, "role": member.role, "date": date.to_string(), "crs": datum.to_string(),
            "points": points.len(),
            "times": points.iter().map(|p| time(p.time)).collect::<Vec<_>>(),
            "status": points.iter().map(|p| p.status).collect::<Vec<_>>(),
            "accuracy_m": points.iter().map(|p| p.accuracy_m).collect::<Vec<_>>(),
            "distance_m": (distance_m * 10.0).round() / 10.0,
            "first": points.first().map(|p| time(p.time)),
            "last": points.last().map(|p| time(p.time)),
        }
    })))
}

/// `GET /v1/stats/patrol?date=YYYY-MM-DD[&level=N][&distance_m=50][&format=geojson][&crs=]`.
#[utoipa::path(get, path = "/v1/stats/patrol", tag = "staff", operation_id = "stats_patrol",
    summary = "patrol coverage of a day per grid: share of area near a track, minutes inside, visitors, unvisited grids (staff or admin token)",
    description = "JSON: `{date, level, distance_m, max_gap_s, people, points, grids: [{code, name, coverage, minutes_inside, visitors, sample_step_m}], unvisited: [code]}`. With `format=geojson` (or `Accept: application/geo+json`): a FeatureCollection of the grids' polygons with `properties: {code, name, coverage, minutes_inside, visitors, sample_step_m}` and the top-level `unvisited`, for a map layer. See docs/staff.md for how coverage is measured.",
    params(("date" = Option<String>, Query, description = "the day, YYYY-MM-DD in China time (default today)"),
        ("level" = Option<usize>, Query, description = "grid level, 1 = district … the unit-grid level (default)"),
        ("distance_m" = Option<f64>, Query, description = "how near a track a place counts as patrolled, metres (default 50, 1 to 500)"),
        ("format" = Option<String>, Query, description = "json (default) or geojson"),
        ("crs" = Option<String>, Query, description = "datum of the GeoJSON polygons: wgs84 (default), cgcs2000, gcj02, bd09")),
    security(("bearer" = [])),
    responses((status = 200, description = "the figures per grid (JSON), or the grids as a GeoJSON FeatureCollection",
            content((crate::staff::patrol::PatrolStats = "application/json"), (Object = "application/geo+json"))),
        (status = 400, description = "invalid_parameter (date, level, distance_m, format), unknown_crs", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "forbidden: not a staff or admin token", body = ErrorBody),
        (status = 500, description = "tracks_unreadable: the day's file cannot be read", body = ErrorBody)))]
pub async fn patrol(_reader: StaffReader, State(state): State<AppState>, headers: axum::http::HeaderMap, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    use crate::staff::patrol;
    let p = Params::parse(q.as_deref())?;
    let date = date_param(&p)?;
    let datum = datum_param(&p)?;
    let world = state.world.load();
    let levels = world.city.hierarchy.levels.len();
    let level = p.parsed::<usize>("level", "a whole number")?.unwrap_or(levels);
    if !(1..=levels.max(1)).contains(&level) {
        return Err(invalid("level", &level.to_string(), &format!("level must be between 1 (top) and {levels} (unit grids)")));
    }
    let distance_m = p.parsed::<f64>("distance_m", "metres (a decimal number)")?.unwrap_or(patrol::DEFAULT_DISTANCE_M);
    if !patrol::DISTANCE_RANGE_M.contains(&distance_m) {
        return Err(invalid("distance_m", &distance_m.to_string(), "distance_m must be between 1 and 500 metres"));
    }
    let accept_geojson = headers.get(axum::http::header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("application/geo+json"));
    let geo = match p.get("format").map(str::trim) {
        None => accept_geojson,
        Some("geojson") => true,
        Some("json") => false,
        Some(f) => return Err(invalid("format", f, "format must be json or geojson")),
    };
    let hub = state.staff.clone();
    tokio::task::spawn_blocking(move || -> Result<Response, ApiError> {
        let day = hub.tracks_of_day(date).map_err(tracks_unreadable)?;
        let stats = patrol::patrol_stats(&world, date, &day, level, distance_m);
        if !geo {
            return Ok(json(&stats));
        }
        let index: std::collections::HashMap<String, GridCode> = world.city.grids_at(level - 1).map(|(_, g)| (g.code.to_string(), g.code)).collect();
        let features: Vec<Value> = stats
            .grids
            .iter()
            .map(|g| {
                let geometry = index.get(&g.code).and_then(|c| world.city.grid_by_code(*c)).map(|id| multipolygon_json(&world.city.grid(id).geometry, datum));
                json!({"type": "Feature", "id": g.code, "geometry": geometry, "properties": g})
            })
            .collect();
        Ok(geojson(&json!({
            "type": "FeatureCollection",
            "features": features,
            "date": stats.date, "level": stats.level, "distance_m": stats.distance_m, "max_gap_s": stats.max_gap_s,
            "people": stats.people, "points": stats.points, "crs": datum.to_string(),
            "unvisited": stats.unvisited,
        })))
    })
    .await
    .map_err(blocking_failed)?
}
