//! Case routing over HTTP, thin over [`crate::routing`]: `POST /v1/cases/route`,
//! `POST /v1/cases/route:batch`, `GET /v1/cases/types`, `GET /v1/rules`.
//!
//! Every decision served is appended to the audit log (when the server keeps one) before its
//! answer is sent: an answer a client has seen is on disk.

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, FixedOffset, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Dispatcher;
use super::body::{Chunks, parse_json};
use super::error::{ApiError, ErrorBody, ErrorInfo};
use super::lookup::json;
use super::metrics::{RoutingMode, RoutingOutcome};
use crate::caselog;
use crate::routing::RouteAnswer;
use crate::routing::batch::{Batch, BatchError, BatchFormat, BatchReader, MAX_BATCH_BYTES};
use crate::routing::{self, china_tz};
use crate::world::World;

/// The answer of `GET /v1/cases/types`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CaseTypes<'a> {
    /// Every event subclass, then every component subclass, in code order.
    types: Vec<routing::CaseTypeView<'a>>,
}

/// `GET /v1/cases/types` → `{"types": [{kind, code, name, name_en, major, urgencies}]}`.
#[utoipa::path(get, path = "/v1/cases/types", tag = "routing",
    summary = "the case types (event and component subclasses) and their urgency levels",
    responses((status = 200, description = "the case types", body = CaseTypes)))]
pub async fn types(State(state): State<AppState>) -> Response {
    let world = state.world.load();
    json(&CaseTypes { types: routing::case_types(&world) })
}

/// The answer of `GET /v1/rules`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RulesAnswer<'a> {
    version: Option<u64>,
    /// The list routes cases (it parsed and validated without errors).
    usable: bool,
    rules: usize,
    /// Why it is not usable.
    problem: Option<&'a str>,
    /// Lines that cannot be read: `{line, message}`.
    #[schema(value_type = Vec<Object>)]
    line_errors: &'a [routing::LineError],
    /// The validation report of the list (指向唯一).
    #[schema(value_type = Option<Object>)]
    report: Option<&'a routing::ValidationReport>,
}

/// The answer of `PUT /v1/rules`: checked only (`dry_run`), or saved and served.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum PutRulesAnswer<'a> {
    Checked(RulesChecked<'a>),
    Saved(RulesSaved<'a>),
}

/// `PUT /v1/rules?dry_run=true`: the list would be accepted.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RulesChecked<'a> {
    /// Always true.
    dry_run: bool,
    /// Always true (an invalid list is a 422).
    valid: bool,
    rules: usize,
    #[schema(value_type = Object)]
    report: &'a routing::ValidationReport,
}

/// `PUT /v1/rules`: the list saved as the next version and served.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RulesSaved<'a> {
    version: u64,
    previous: u64,
    rules: usize,
    #[schema(value_type = Object)]
    report: &'a routing::ValidationReport,
    versions: &'a crate::store::Versions,
}

/// `GET /v1/rules`: the list in use (version, rule count) and its validation report.
#[utoipa::path(get, path = "/v1/rules", tag = "rules",
    summary = "the responsibility list in use and its validation report",
    responses((status = 200, description = "the list's version, size and report", body = RulesAnswer)))]
pub async fn rules(State(state): State<AppState>) -> Response {
    let world = state.world.load();
    let r = &world.routing;
    json(&RulesAnswer {
        version: world.versions.get("rules"),
        usable: r.rules.is_ok(),
        rules: r.rules.as_ref().map(|s| s.rules.len()).unwrap_or(0),
        problem: r.rules.as_ref().err().map(String::as_str),
        line_errors: &r.line_errors,
        report: r.report.as_ref(),
    })
}

/// `PUT /v1/rules[?dry_run=true]` (admin token): a new responsibility list as CSV (UTF-8, as
/// Excel's "CSV UTF-8" writes it). It is parsed and validated against the layers being served
/// (指向唯一); a list with errors is refused with 422 and its report, and nothing changes.
/// Otherwise it becomes the next rules version and is served at once (unless `dry_run`).
#[utoipa::path(put, path = "/v1/rules", tag = "rules",
    summary = "a new responsibility list (CSV), validated and served (admin token)",
    params(("dry_run" = Option<bool>, Query, description = "validate only, change nothing"),
        ("allow_shrink" = Option<bool>, Query, description = "accept a list under half the size of the current one")),
    request_body(content = String, content_type = "text/csv", description = "the list, UTF-8 (Excel: CSV UTF-8)"),
    security(("bearer" = [])),
    responses((status = 200, description = "checked (dry_run) or saved and served", body = PutRulesAnswer),
        (status = 400, description = "invalid_csv: not UTF-8", body = ErrorBody),
        (status = 401, description = "unauthorized: no Authorization: Bearer header", body = ErrorBody),
        (status = 403, description = "forbidden (a token that may not write) or writes_disabled (no token configured)", body = ErrorBody),
        (status = 409, description = "changed_meanwhile or data_directory_locked", body = ErrorBody),
        (status = 415, description = "unsupported_media_type: send text/csv", body = ErrorBody),
        (status = 422, description = "rules_invalid, rules_unreadable or rules_shrink: details say why; the current list stays", body = ErrorBody),
        (status = 503, description = "no_data_directory", body = ErrorBody),
        (status = 429, description = "rate_limited: too many uploads from this client (Retry-After)", body = ErrorBody)))]
pub async fn put_rules(
    _admin: super::auth::Admin,
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = super::params::Params::parse(q.as_deref())?;
    let dry_run = matches!(params.get("dry_run"), Some("true" | "1"));
    let allow_shrink = matches!(params.get("allow_shrink"), Some("true" | "1"));
    if let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if !matches!(essence.as_str(), "text/csv" | "text/plain" | "application/csv") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("send the responsibility list as text/csv, not {ct}"),
            ));
        }
    }
    let csv = std::str::from_utf8(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_csv",
            format!("the list is not UTF-8 (byte {}): save it from Excel as \"CSV UTF-8\", not as GBK \"CSV\"", e.valid_up_to()),
        )
    })?;
    let world = state.world.load();
    let (set, report) = match routing::RuleSet::load(csv, &world.city) {
        Ok(ok) => ok,
        Err(routing::RulesError::InvalidRules(report)) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "rules_invalid",
                format!("the list fails validation with {} error(s); the current list stays", report.errors),
            )
            .with_details(json!({"report": report})));
        }
        Err(routing::RulesError::BadRules(lines)) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "rules_unreadable",
                format!("{} line(s) of the list cannot be read; the current list stays", lines.len()),
            )
            .with_details(json!({"line_errors": lines})));
        }
        Err(e) => return Err(e.into()),
    };
    let rules = set.rules.len();
    let current = world.routing.rules.as_ref().ok().map(|r| r.rules.len());
    if let Some(why) = crate::datasets::rules_shrink_problem(rules, current, allow_shrink) {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "rules_shrink", format!("{why}; the current list stays"))
            .with_details(json!({"rules": rules, "current": current, "parameter": "allow_shrink"})));
    }
    if dry_run {
        return Ok(json(&PutRulesAnswer::Checked(RulesChecked { dry_run: true, valid: true, rules, report: &report })));
    }
    let datasets = super::layers::datasets(&state)?;
    let csv = csv.to_owned();
    let switched = super::error::blocking("saving the rules", move || datasets.save_rules(&csv, rules as u64, "PUT /v1/rules")).await??;
    Ok(json(&PutRulesAnswer::Saved(RulesSaved {
        version: switched.current,
        previous: switched.previous,
        rules,
        report: &report,
        versions: &switched.versions,
    })))
}

/// A case to route (the body of `POST /v1/cases/route`, an item of a batch): a point and/or a
/// component, and what it is about (exactly one of `event_type`, `component_class`,
/// `component_code`). Read by [`routing::parse_case`], which gives each problem its own 400.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // the schema of what parse_case reads
pub struct CaseRequest {
    /// Longitude (with lat, in a datum crs; a point — lon/lat or x/y — is required unless
    /// component_code is given).
    lon: Option<f64>,
    lat: Option<f64>,
    /// Easting in metres (with y, in a projected crs such as EPSG:4549).
    x: Option<f64>,
    /// Northing in metres (with x).
    y: Option<f64>,
    /// The CRS of the point: a datum for lon/lat — wgs84 (default), cgcs2000, gcj02, bd09,
    /// EPSG:4326, EPSG:4490 — or a projected EPSG code for x/y (CGCS2000 Gauss-Krüger
    /// EPSG:4491–4554, UTM, EPSG:3857), as `/v1/locate` takes it.
    crs: Option<String>,
    /// GPS accuracy radius, metres.
    accuracy: Option<f64>,
    /// An event subclass code (4 digits), see GET /v1/cases/types.
    event_type: Option<String>,
    /// A component subclass code (4 digits): the case is about the nearest such component.
    component_class: Option<String>,
    /// A 16-digit component code.
    component_code: Option<String>,
    /// 一般 / 紧急 / 非常紧急 (or normal, urgent, very_urgent); default 一般.
    urgency: Option<String>,
    /// RFC 3339 with offset; default now.
    reported_at: Option<String>,
    /// `true` (3) or how many (1-20): add `suggested_staff`, the nearest available inspectors
    /// with a fresh position and their great-circle distance (needs a staff, dispatcher or admin
    /// token). Not part of the audit record.
    #[schema(value_type = Option<Object>)]
    suggest_staff: Option<serde_json::Value>,
}

/// `POST /v1/cases/route` with a JSON body (see README "Case routing").
#[utoipa::path(post, path = "/v1/cases/route", tag = "routing",
    summary = "route one case: the responsible unit, the dispatcher, the rule and the deadline",
    request_body = CaseRequest,
    security((), ("bearer" = [])),
    responses((status = 200, description = "the routing decision (also appended to the audit log)", body = RouteAnswer),
        (status = 400, description = "invalid_json, missing_parameter, invalid_parameter, unknown_case_type, unknown_crs", body = ErrorBody),
        (status = 401, description = "unauthorized: dispatcher tokens are configured and no Authorization: Bearer header was sent", body = ErrorBody),
        (status = 403, description = "forbidden: neither a dispatcher nor an admin token (suggest_staff: nor a staff token)", body = ErrorBody),
        (status = 404, description = "component_not_found", body = ErrorBody),
        (status = 413, description = "payload_too_large: one case is at most 2 MiB", body = ErrorBody),
        (status = 422, description = "outside_coverage: farther than max_outside_m from every grid", body = ErrorBody),
        (status = 500, description = "audit_failed: the decision could not be logged, so it is not given", body = ErrorBody),
        (status = 503, description = "rules_unavailable or no_grids", body = ErrorBody)))]
pub async fn route(
    _dispatcher: Dispatcher,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "one case is at most 2 MiB of JSON; send many cases to POST /v1/cases/route:batch",
        )
        .with_details(json!({"max_bytes": 2 << 20, "batch": "/v1/cases/route:batch"})),
        status => ApiError::new(status, "body_failed", format!("the body did not arrive whole: {}", e.body_text())),
    })?;
    let decided = |outcome| state.metrics.routing_decisions(RoutingMode::Single, outcome, 1);
    let mut input: Value = parse_json(&body).inspect_err(|_| decided(RoutingOutcome::Rejected))?;
    // `suggest_staff` (nearest available inspectors) is taken out: the case and its audit
    // record stay as they were; staff positions are only shown to staff, dispatcher, admin tokens.
    let suggest = super::staff::take_suggest(&mut input).inspect_err(|_| decided(RoutingOutcome::Rejected))?;
    if suggest.is_some() && !super::auth::may_see_staff(&headers, &state) {
        decided(RoutingOutcome::Rejected);
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "suggest_staff shows staff positions: send a staff, dispatcher or admin token")
            .with_details(json!({"parameter": "suggest_staff"})));
    }
    let world = state.world.load();
    let now = Utc::now().with_timezone(&china_tz());
    let routed = routing::parse_case(&input).map_err(ApiError::from).and_then(|case| Ok(routing::route(&world, &case, now)?));
    let answer = routed.inspect_err(|e| decided(RoutingOutcome::of_error(e.code, e.status.as_u16())))?;
    let outcome = outcome_of(&answer);
    let mut bytes = Vec::with_capacity(4096);
    match suggest {
        None => serde_json::to_writer(&mut bytes, &answer).expect("a route answer serializes"),
        Some(k) => {
            let at = answer.component.as_ref().map(|c| c.component.location).or(answer.point.map(|p| p.wgs84));
            let mut value = serde_json::to_value(&answer).expect("a route answer serializes");
            let staff = at.map(|at| super::staff::suggest(&state, &world, [at.lon, at.lat], k)).unwrap_or_default();
            value["suggested_staff"] = serde_json::to_value(staff).expect("staff serialize");
            serde_json::to_writer(&mut bytes, &value).expect("a route answer serializes");
        }
    }
    let record = state.audit.is_some().then(|| caselog::record_answer(now, input, &answer));
    drop(answer);
    if let (Some(log), Some(record)) = (state.audit.clone(), record) {
        let metrics = state.metrics.clone();
        super::error::blocking("the audit writer", move || {
            let started = std::time::Instant::now();
            let appended = log.append(&[record]);
            metrics.audit_appended(started.elapsed(), appended.is_ok());
            appended
        })
        .await
        .and_then(|appended| appended.map_err(audit_failed))
        .inspect_err(|_| decided(RoutingOutcome::Failed))?;
    }
    decided(outcome);
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

/// The metrics outcome of an answer (as [`RoutingOutcome::of_answer`] reads its JSON).
fn outcome_of(answer: &RouteAnswer<'_>) -> RoutingOutcome {
    if answer.outside_coverage {
        RoutingOutcome::NearCoverage
    } else if answer.rule.is_none() {
        RoutingOutcome::NoRule
    } else {
        RoutingOutcome::Routed
    }
}

fn audit_failed(e: crate::store::StoreError) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "audit_failed", format!("the decision could not be written to the audit log, so it is not given: {e}"))
}

/// Cases routed, logged and sent per chunk of a batch.
const BATCH_CHUNK: usize = 1000;

/// One line of a batch answer: `{"index", "id", "ok": true, "answer"}` or `{"index", "id",
/// "ok": false, "status", "error"}` (`id` is `null` when the case has none; `error` as in
/// [`ErrorBody`]). Serialized straight from the typed answer.
pub struct BatchLine<'w> {
    pub index: usize,
    pub id: Value,
    pub result: Result<RouteAnswer<'w>, ApiError>,
}

impl Serialize for BatchLine<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(if self.result.is_ok() { 4 } else { 5 }))?;
        m.serialize_entry("index", &self.index)?;
        m.serialize_entry("id", &self.id)?;
        match &self.result {
            Ok(answer) => {
                m.serialize_entry("ok", &true)?;
                m.serialize_entry("answer", answer)?;
            }
            Err(e) => {
                m.serialize_entry("ok", &false)?;
                m.serialize_entry("status", &e.status.as_u16())?;
                m.serialize_entry("error", &ErrorInfo { code: e.code, message: &e.message, details: &e.details })?;
            }
        }
        m.end()
    }
}

impl BatchLine<'_> {
    /// The metrics outcome of this case.
    pub fn outcome(&self) -> RoutingOutcome {
        match &self.result {
            Ok(answer) => outcome_of(answer),
            Err(e) => RoutingOutcome::of_error(e.code, e.status.as_u16()),
        }
    }
}

/// Routes one batch item (a JSON object, perhaps with an `id`): its answer line, and the audit
/// record of the decision (none for a refused case).
pub fn batch_line(world: &World, index: usize, item: Value, now: DateTime<FixedOffset>) -> (BatchLine<'_>, Option<caselog::AuditRecord>) {
    let (id, case) = routing::input::split_id(item);
    let routed = case.map_err(ApiError::from).and_then(|case| {
        let parsed = routing::parse_case(&case)?;
        Ok((routing::route(world, &parsed, now)?, case))
    });
    match routed {
        Ok((answer, case)) => {
            let record = caselog::record_answer(now, case, &answer);
            (BatchLine { index, id, result: Ok(answer) }, Some(record))
        }
        Err(e) => (BatchLine { index, id, result: Err(e) }, None),
    }
}

/// One chunk of a batch routed: its answer lines, the audit records of its decisions and the
/// count of each outcome.
#[derive(Default)]
struct RoutedChunk {
    out: Vec<u8>,
    records: Vec<caselog::AuditRecord>,
    outcomes: Vec<(RoutingOutcome, u64)>,
    cases: u64,
}

impl RoutedChunk {
    fn add(&mut self, line: &BatchLine<'_>, record: Option<caselog::AuditRecord>) {
        serde_json::to_writer(&mut self.out, line).expect("JSON to memory");
        self.out.push(b'\n');
        self.records.extend(record);
        self.cases += 1;
        let outcome = line.outcome();
        match self.outcomes.iter_mut().find(|(o, _)| *o == outcome) {
            Some((_, n)) => *n += 1,
            None => self.outcomes.push((outcome, 1)),
        }
    }

    fn append(&mut self, mut other: RoutedChunk) {
        self.out.append(&mut other.out);
        self.records.append(&mut other.records);
        self.cases += other.cases;
        for (outcome, n) in other.outcomes {
            match self.outcomes.iter_mut().find(|(o, _)| *o == outcome) {
                Some((_, m)) => *m += n,
                None => self.outcomes.push((outcome, n)),
            }
        }
    }
}

/// Routes cases `range` of `batch`, split over `workers` threads; lines in input order.
fn route_range(world: &World, batch: &Batch, range: std::ops::Range<usize>, workers: usize, now: DateTime<FixedOffset>) -> RoutedChunk {
    let one = |range: std::ops::Range<usize>| {
        let mut chunk = RoutedChunk { out: Vec::with_capacity(range.len() * 1536), records: Vec::with_capacity(range.len()), ..Default::default() };
        for index in range {
            let (line, record) = match batch.case(index) {
                Ok(item) => batch_line(world, index, item, now),
                Err(err) => {
                    let (id, e) = *err;
                    (error_line(index, id, e.into()), None)
                }
            };
            chunk.add(&line, record);
        }
        chunk
    };
    let workers = workers.clamp(1, range.len().max(1));
    if workers == 1 {
        return one(range);
    }
    let step = range.len().div_ceil(workers);
    let parts: Vec<std::ops::Range<usize>> = (range.start..range.end).step_by(step).map(|start| start..(start + step).min(range.end)).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = parts[1..].iter().map(|r| s.spawn(|| one(r.clone()))).collect();
        let mut first = one(parts[0].clone());
        for h in handles {
            first.append(h.join().expect("a routing worker panicked"));
        }
        first
    })
}

/// Threads that route the cases of one chunk: the cores there are, at most 8.
fn routing_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(8)
}

/// `POST /v1/cases/route:batch`: a JSON array of cases (`application/json`), one case per line
/// (`application/x-ndjson`), or a CSV with a header of the same field names (`text/csv`; an
/// optional `id` column is echoed), up to [`MAX_BATCH`](crate::routing::batch::MAX_BATCH) cases and [`MAX_BATCH_BYTES`]. The
/// limits are enforced while the body arrives: an over-limit batch is refused (413
/// `batch_too_large`) as soon as it passes them, holding no more than the limit in memory. The
/// answer streams as newline-delimited JSON, one [`batch_line`] per case in input order; a bad
/// case (also a CSV row with the wrong number of fields) gets its error line and the others go
/// on. Each chunk of answers is in the audit log before it is sent; if the log fails, a last
/// line `{"ok": false, "error": {"code": "audit_failed"}}` ends the stream.
#[utoipa::path(post, path = "/v1/cases/route:batch", tag = "routing",
    summary = "route many cases; the answers stream as newline-delimited JSON",
    request_body(description = "a JSON array of cases (each may carry an id), one case per line, or a CSV with a header of the case fields",
        content((Vec<CaseRequest> = "application/json"), (String = "application/x-ndjson"), (String = "text/csv"))),
    security((), ("bearer" = [])),
    responses((status = 200, description = "one line per case, in input order: {index, id, ok: true, answer} or {index, id, ok: false, status, error}",
            content_type = "application/x-ndjson", body = String),
        (status = 400, description = "invalid_json, invalid_csv or empty_batch", body = ErrorBody),
        (status = 401, description = "unauthorized: dispatcher tokens are configured and no Authorization: Bearer header was sent", body = ErrorBody),
        (status = 403, description = "forbidden: neither a dispatcher nor an admin token", body = ErrorBody),
        (status = 413, description = "batch_too_large: over 100,000 cases or 64 MiB, refused as soon as the body passes either", body = ErrorBody),
        (status = 429, description = "rate_limited: too many batches from this client (Retry-After)", body = ErrorBody),
        (status = 415, description = "unsupported_media_type", body = ErrorBody)))]
pub async fn route_batch(_dispatcher: Dispatcher, State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let format = BatchFormat::from_media_type(&essence).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send a batch as application/json (an array), application/x-ndjson or text/csv, not {essence}"),
        )
    })?;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > MAX_BATCH_BYTES as u64) {
        return Err(BatchError::TooManyBytes { bytes: n }.into());
    }
    let mut reader = BatchReader::new(format, declared.unwrap_or(0) as usize);
    let mut body = body;
    loop {
        let frame = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await;
        match frame {
            None => break,
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    reader.push(data)?;
                }
            }
            Some(Err(e)) => {
                return Err(ApiError::bad_request("body_failed", format!("the batch did not arrive whole: {e}")));
            }
        }
    }
    let batch = reader.finish()?;
    let world = state.world.load();
    let audit = state.audit.clone();
    let metrics = state.metrics.clone();
    let now = Utc::now().with_timezone(&china_tz());
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::task::spawn_blocking(move || {
        // Two stages: this thread routes chunk k+1 (over the cores) while a second thread
        // appends chunk k to the audit log and, once it is durable, sends its answers.
        let (routed_tx, routed_rx) = std::sync::mpsc::sync_channel::<RoutedChunk>(1);
        std::thread::scope(move |s| {
            s.spawn(move || {
                for chunk in routed_rx {
                    if let Some(log) = &audit {
                        let started = std::time::Instant::now();
                        let appended = log.append(&chunk.records);
                        metrics.audit_appended(started.elapsed(), appended.is_ok());
                        if let Err(e) = appended {
                            // The chunk's decisions are not given.
                            metrics.routing_decisions(RoutingMode::Batch, RoutingOutcome::Failed, chunk.cases);
                            let e = audit_failed(e);
                            let line = json!({"ok": false, "error": ErrorInfo { code: e.code, message: &e.message, details: &e.details }});
                            let _ = tx.blocking_send(Bytes::from(format!("{line}\n")));
                            return;
                        }
                    }
                    for (outcome, n) in chunk.outcomes {
                        metrics.routing_decisions(RoutingMode::Batch, outcome, n);
                    }
                    if tx.blocking_send(Bytes::from(chunk.out)).is_err() {
                        return; // the client went away
                    }
                }
            });
            let workers = routing_workers();
            let mut start = 0;
            while start < batch.len() {
                let end = (start + BATCH_CHUNK).min(batch.len());
                let chunk = route_range(&world, &batch, start..end, workers, now);
                if routed_tx.send(chunk).is_err() {
                    return; // the log failed or the client went away
                }
                start = end;
            }
            // The writer ends once it has the last chunk.
            drop(routed_tx);
        });
    });
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(Chunks(rx))).into_response())
}

/// The answer line of a case that could not be read.
pub fn error_line(index: usize, id: Value, e: ApiError) -> BatchLine<'static> {
    BatchLine { index, id, result: Err(e) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::{DemoSpec, Preset, generate};
    use crate::store::{LoadedCity, Versions};

    fn world() -> World {
        let demo = generate(&DemoSpec { preset: Preset::Tiny, components: None, seed: 1 }, &|_, _| {}).unwrap();
        let meta = demo.meta();
        let versions = Versions([("grids", 2), ("components", 3), ("rules", 4)].into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
        World::new(LoadedCity { city: demo.city, meta, versions, rules_csv: Some(demo.rules_csv), calendar_toml: None })
    }

    /// The typed batch line is the JSON the answer's `serde_json::Value` gave, and the audit
    /// record read from the typed answer is the one read from its JSON.
    #[test]
    fn typed_lines_and_records_match_the_answer_as_json() {
        let world = world();
        let now = DateTime::parse_from_rfc3339("2026-11-23T10:00:00+08:00").unwrap();
        let comps: Vec<_> = world.city.components.iter().step_by(97).take(20).collect();
        let mut items = Vec::new();
        for (k, c) in comps.iter().enumerate() {
            let (lon, lat) = (c.location.x, c.location.y);
            let event = ["0102", "0104", "0301", "0501", "0505", "0101"][k % 6];
            items.push(json!({"id": k, "lon": lon, "lat": lat, "event_type": event, "accuracy": 30}));
            items.push(json!({"lon": lon, "lat": lat, "component_class": c.class.to_string(), "urgency": "紧急"}));
            items.push(json!({"id": "c", "component_code": c.code.to_string(), "reported_at": "2026-11-21T18:00:00+08:00"}));
        }
        let (lon, lat) = (comps[0].location.x, comps[0].location.y);
        items.push(json!({"id": "near", "lon": lon + 0.0, "lat": lat - 0.2, "event_type": "0102"}));
        items.push(json!({"id": "bad", "lon": lon, "lat": lat, "event_type": "9999"}));
        items.push(json!({"id": "field", "lon": lon, "lat": lat, "event_type": "0102", "colour": "red"}));
        items.push(json!(17));
        let mut answered = 0;
        for (index, item) in items.into_iter().enumerate() {
            let (line, record) = batch_line(&world, index, item.clone(), now);
            let got: Value = serde_json::from_slice(&serde_json::to_vec(&line).unwrap()).unwrap();
            let id = item.get("id").cloned().unwrap_or(Value::Null);
            let mut case = item.clone();
            if let Value::Object(m) = &mut case {
                m.remove("id");
            }
            // A batch item that is not an object says so in the words of a batch (as before).
            let parsed = match case {
                Value::Object(_) => routing::parse_case(&case).map_err(ApiError::from),
                _ => Err(ApiError::bad_request("invalid_json", "each case must be a JSON object")),
            };
            let want = match parsed.and_then(|c| Ok(routing::route(&world, &c, now)?)) {
                Ok(a) => {
                    let answer = serde_json::to_value(&a).unwrap();
                    assert_eq!(record.as_ref(), Some(&caselog::record(now, &case, &answer)), "{item}");
                    assert_eq!(line.outcome(), RoutingOutcome::of_answer(&answer));
                    answered += 1;
                    json!({"index": index, "id": id, "ok": true, "answer": answer})
                }
                Err(e) => {
                    assert!(record.is_none());
                    json!({"index": index, "id": id, "ok": false, "status": e.status.as_u16(), "error": e.body()["error"]})
                }
            };
            assert_eq!(got, want, "{item}");
        }
        assert!(answered >= 40, "most cases route: {answered}");
    }

    /// A chunk routed over several threads gives the lines of one thread, in input order.
    #[test]
    fn a_chunk_over_threads_keeps_input_order() {
        let world = world();
        let now = DateTime::parse_from_rfc3339("2026-11-23T10:00:00+08:00").unwrap();
        let mut csv = String::from("id,lon,lat,event_type\n");
        for (k, c) in world.city.components.iter().step_by(5).take(301).enumerate() {
            csv.push_str(&format!("{k},{},{},{}\n", c.location.x, c.location.y, ["0102", "0104", "9999"][k % 3]));
        }
        csv.push_str("x,1\n");
        let batch = Batch::from_bytes(BatchFormat::Csv, csv.as_bytes()).unwrap();
        let one = route_range(&world, &batch, 0..batch.len(), 1, now);
        let three = route_range(&world, &batch, 0..batch.len(), 3, now);
        assert_eq!(String::from_utf8(three.out.clone()).unwrap(), String::from_utf8(one.out.clone()).unwrap());
        assert_eq!(three.records, one.records);
        assert_eq!((three.cases, one.cases), (302, 302));
        let lines: Vec<Value> = String::from_utf8(one.out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert!(lines.iter().enumerate().all(|(i, l)| l["index"] == i), "index = position");
        assert_eq!((lines[0]["id"].clone(), lines[2]["ok"].clone(), lines[301]["error"]["code"].clone()), (json!("0"), json!(false), json!("invalid_csv")));
        let counted: u64 = three.outcomes.iter().map(|(_, n)| n).sum();
        assert_eq!(counted, 302);
    }
}
