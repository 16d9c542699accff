//! Case routing over HTTP, thin over [`crate::routing`]: `POST /v1/cases/route`,
//! `POST /v1/cases/route:batch`, `GET /v1/cases/types`, `GET /v1/rules`.
//!
//! Every decision served is appended to the audit log (when the server keeps one) before its
//! answer is sent: an answer a client has seen is on disk.

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, FixedOffset, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::AppState;
use super::body::{Chunks, parse_json};
use super::error::{ApiError, ErrorBody};
use crate::routing::RouteAnswer;
use super::lookup::json;
use crate::caselog;
use crate::crs::Datum;
use crate::world::World;
use crate::lookup::PointEcho;
use crate::routing::{self, CaseInput, CaseSubject, Urgency, china_tz};

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
        (status = 503, description = "no_data_directory", body = ErrorBody)))]
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
        Err(routing::RoutingError::InvalidRules(report)) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "rules_invalid",
                format!("the list fails validation with {} error(s); the current list stays", report.errors),
            )
            .with_details(json!({"report": report})));
        }
        Err(routing::RoutingError::BadRules(lines)) => {
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
    let switched = tokio::task::spawn_blocking(move || datasets.save_rules(&csv, rules as u64, "PUT /v1/rules"))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("saving the rules failed: {e}")))??;
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
/// `component_code`). Parsed by [`parse_case`], which gives each problem its own 400.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // the schema of what parse_case reads
pub struct CaseRequest {
    /// Longitude (with lat; required unless component_code is given).
    lon: Option<f64>,
    lat: Option<f64>,
    /// The datum of lon/lat: wgs84 (default), cgcs2000, gcj02, bd09, EPSG:4326, EPSG:4490.
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
}

/// `POST /v1/cases/route` with a JSON body (see README "Case routing").
#[utoipa::path(post, path = "/v1/cases/route", tag = "routing",
    summary = "route one case: the responsible unit, the dispatcher, the rule and the deadline",
    request_body = CaseRequest,
    responses((status = 200, description = "the routing decision (also appended to the audit log)", body = RouteAnswer),
        (status = 400, description = "invalid_json, missing_parameter, invalid_parameter, unknown_case_type, unknown_crs", body = ErrorBody),
        (status = 404, description = "component_not_found", body = ErrorBody),
        (status = 422, description = "outside_coverage: farther than max_outside_m from every grid", body = ErrorBody),
        (status = 500, description = "audit_failed: the decision could not be logged, so it is not given", body = ErrorBody),
        (status = 503, description = "rules_unavailable or no_grids", body = ErrorBody)))]
pub async fn route(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let input: Value = parse_json(&body)?;
    let world = state.world.load();
    let now = Utc::now().with_timezone(&china_tz());
    let answer = route_value(&world, &input, now)?;
    if let Some(log) = state.audit.clone() {
        let record = caselog::record(now, &input, &answer);
        tokio::task::spawn_blocking(move || log.append(&[record]))
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("audit writer failed: {e}")))?
            .map_err(audit_failed)?;
    }
    Ok(json(&answer))
}

fn audit_failed(e: crate::store::StoreError) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "audit_failed",
        format!("the decision could not be written to the audit log, so it is not given: {e}"),
    )
}

/// Routes one case given as a JSON object (the body of `POST /v1/cases/route`, or one item
/// of a batch) and gives the answer as JSON. Shared by the CLI.
pub fn route_value(world: &World, input: &Value, now: DateTime<FixedOffset>) -> Result<Value, ApiError> {
    let case = parse_case(input)?;
    let answer = routing::route(world, &case, now)?;
    Ok(serde_json::to_value(&answer).expect("a route answer serializes"))
}

/// Most cases in one batch.
pub const MAX_BATCH: usize = 100_000;
/// Body limit of `POST /v1/cases/route:batch` (100,000 cases of ~300 bytes).
pub const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;
/// Cases routed, logged and sent per chunk of a batch.
const BATCH_CHUNK: usize = 1000;

/// One line of a batch answer: `{"index", "id"?, "ok": true, "answer"}` or
/// `{"index", "id"?, "ok": false, "status", "error"}`, and the audit record of an answer.
pub fn batch_line(world: &World, index: usize, item: &Value, now: DateTime<FixedOffset>) -> (Value, Option<Value>) {
    let id = item.get("id").cloned().unwrap_or(Value::Null);
    let result = match item {
        Value::Object(m) => {
            let mut case = m.clone();
            case.remove("id");
            let case = Value::Object(case);
            parse_case(&case).and_then(|c| routing::route(world, &c, now).map_err(ApiError::from)).map(|a| {
                let answer = serde_json::to_value(&a).expect("a route answer serializes");
                let record = caselog::record(now, &case, &answer);
                (answer, record)
            })
        }
        _ => Err(ApiError::bad_request("invalid_json", "each case must be a JSON object")),
    };
    match result {
        Ok((answer, record)) => (json!({"index": index, "id": id, "ok": true, "answer": answer}), Some(record)),
        Err(e) => (json!({"index": index, "id": id, "ok": false, "status": e.status.as_u16(), "error": e.body()["error"]}), None),
    }
}

/// `POST /v1/cases/route:batch`: a JSON array of cases (`application/json`) or a CSV with a
/// header of the same field names (`text/csv`; an optional `id` column is echoed), up to
/// [`MAX_BATCH`] cases. The answer streams as newline-delimited JSON, one [`batch_line`] per
/// case in input order; a bad case gets its error line and the others go on. Each chunk of
/// answers is in the audit log before it is sent; if the log fails, a last line
/// `{"ok": false, "error": {"code": "audit_failed"}}` ends the stream.
#[utoipa::path(post, path = "/v1/cases/route:batch", tag = "routing",
    summary = "route many cases; the answers stream as newline-delimited JSON",
    request_body(description = "a JSON array of cases (each may carry an id), or a CSV with a header of the case fields",
        content((Vec<CaseRequest> = "application/json"), (String = "text/csv"))),
    responses((status = 200, description = "one line per case, in input order: {index, id, ok: true, answer} or {index, id, ok: false, status, error}",
            content_type = "application/x-ndjson", body = String),
        (status = 400, description = "invalid_json, invalid_csv or empty_batch", body = ErrorBody),
        (status = 413, description = "batch_too_large or payload_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type", body = ErrorBody)))]
pub async fn route_batch(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let items: Vec<Value> = match essence.as_str() {
        "text/csv" => cases_from_csv(&body)?,
        "application/json" | "" => match parse_json::<Value>(&body)? {
            Value::Array(items) => items,
            _ => return Err(ApiError::bad_request("invalid_json", "a batch is a JSON array of cases")),
        },
        other => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("send a batch as application/json (an array) or text/csv, not {other}"),
            ));
        }
    };
    if items.is_empty() {
        return Err(ApiError::bad_request("empty_batch", "the batch holds no case"));
    }
    if items.len() > MAX_BATCH {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!("a batch holds at most {MAX_BATCH} cases; this one has {}", items.len()),
        )
        .with_details(json!({"cases": items.len(), "max": MAX_BATCH})));
    }
    let world = state.world.load();
    let audit = state.audit.clone();
    let now = Utc::now().with_timezone(&china_tz());
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::task::spawn_blocking(move || {
        for (c, chunk) in items.chunks(BATCH_CHUNK).enumerate() {
            let mut out = Vec::with_capacity(chunk.len() * 1024);
            let mut records = Vec::with_capacity(chunk.len());
            for (j, item) in chunk.iter().enumerate() {
                let (line, record) = batch_line(&world, c * BATCH_CHUNK + j, item, now);
                serde_json::to_writer(&mut out, &line).expect("JSON to memory");
                out.push(b'\n');
                records.extend(record);
            }
            if let Some(log) = &audit
                && let Err(e) = log.append(&records) {
                    let line = json!({"ok": false, "error": audit_failed(e).body()["error"]});
                    let _ = tx.blocking_send(Bytes::from(format!("{line}\n")));
                    return;
                }
            if tx.blocking_send(Bytes::from(out)).is_err() {
                return; // the client went away
            }
        }
    });
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(Chunks(rx))).into_response())
}

/// Cases from a CSV with a header row of case fields (and an optional `id`): one JSON object
/// per row, empty cells left out, `lon`/`lat`/`accuracy` as numbers when they read as such.
pub fn cases_from_csv(body: &[u8]) -> Result<Vec<Value>, ApiError> {
    let body = body.strip_prefix("\u{feff}".as_bytes()).unwrap_or(body);
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(body);
    let bad = |e: csv::Error| ApiError::bad_request("invalid_csv", format!("the CSV cannot be read: {e}"));
    let header: Vec<String> = reader.headers().map_err(bad)?.iter().map(|h| h.trim().to_owned()).collect();
    if let Some(h) = header.iter().find(|h| h.as_str() != "id" && !FIELDS.contains(&h.as_str())) {
        return Err(ApiError::bad_request("invalid_csv", format!("unknown column {h}; accepted: id, {}", FIELDS.join(", ")))
            .with_details(json!({"column": h})));
    }
    let mut items = Vec::new();
    for row in reader.records() {
        let row = row.map_err(bad)?;
        let mut case = serde_json::Map::new();
        for (name, cell) in header.iter().zip(row.iter()) {
            let cell = cell.trim();
            if cell.is_empty() {
                continue;
            }
            let value = match name.as_str() {
                "lon" | "lat" | "accuracy" => cell.parse::<f64>().map(Value::from).unwrap_or_else(|_| Value::from(cell)),
                _ => Value::from(cell),
            };
            case.insert(name.clone(), value);
        }
        items.push(Value::Object(case));
    }
    Ok(items)
}

const FIELDS: [&str; 9] =
    ["lon", "lat", "crs", "accuracy", "event_type", "component_class", "component_code", "urgency", "reported_at"];

fn invalid(parameter: &str, value: &Value, message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_parameter", message).with_details(json!({"parameter": parameter, "value": value}))
}

/// A case from its JSON object; every problem is a 400 in the documented format.
fn parse_case(value: &Value) -> Result<CaseInput, ApiError> {
    let Value::Object(map) = value else {
        return Err(ApiError::bad_request("invalid_json", "the body must be a JSON object"));
    };
    if let Some(k) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ApiError::bad_request("invalid_parameter", format!("unknown field {k}; accepted: {}", FIELDS.join(", ")))
            .with_details(json!({"parameter": k, "accepted": FIELDS})));
    }
    let get = |k: &str| map.get(k).filter(|v| !v.is_null());
    let number = |k: &'static str| -> Result<Option<f64>, ApiError> {
        get(k).map(|v| v.as_f64().ok_or_else(|| invalid(k, v, format!("{k} must be a number")))).transpose()
    };
    let text = |k: &'static str| -> Result<Option<&str>, ApiError> {
        get(k).map(|v| v.as_str().map(str::trim).ok_or_else(|| invalid(k, v, format!("{k} must be a string")))).transpose()
    };
    let crs = match text("crs")? {
        None => Datum::Wgs84,
        Some(c) => c.parse::<Datum>().map_err(|e| {
            ApiError::bad_request("unknown_crs", e.to_string())
                .with_details(json!({"parameter": "crs", "value": c, "accepted": ["wgs84", "cgcs2000", "gcj02", "bd09", "EPSG:4326", "EPSG:4490"]}))
        })?,
    };
    let point = match (number("lon")?, number("lat")?) {
        (Some(lon), Some(lat)) => Some(PointEcho::new(lon, lat, crs)?),
        (None, None) => None,
        (None, Some(_)) => return Err(missing("lon")),
        (Some(_), None) => return Err(missing("lat")),
    };
    let subjects: Vec<(&str, &str)> = ["event_type", "component_class", "component_code"]
        .into_iter()
        .filter_map(|k| text(k).transpose().map(|v| v.map(|v| (k, v))))
        .collect::<Result<_, _>>()?;
    let subject = match subjects.as_slice() {
        [] => {
            return Err(ApiError::bad_request("missing_parameter", "one of event_type, component_class, component_code is required")
                .with_details(json!({"parameter": "event_type"})));
        }
        [(k, v)] => match *k {
            "event_type" => CaseSubject::Event(v.to_string()),
            "component_class" => CaseSubject::ComponentClass(v.to_string()),
            _ => CaseSubject::Component(v.to_string()),
        },
        many => {
            let names: Vec<&str> = many.iter().map(|(k, _)| *k).collect();
            return Err(ApiError::bad_request("invalid_parameter", format!("give exactly one of event_type, component_class, component_code (got {})", names.join(", ")))
                .with_details(json!({"parameter": names[1]})));
        }
    };
    if point.is_none() && !matches!(subject, CaseSubject::Component(_)) {
        return Err(missing("lon"));
    }
    let urgency = text("urgency")?
        .map(|u| {
            Urgency::parse(u).ok_or_else(|| invalid("urgency", &json!(u), "urgency must be 一般, 紧急 or 非常紧急 (normal, urgent, very_urgent)"))
        })
        .transpose()?;
    let reported_at = text("reported_at")?
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map_err(|_| invalid("reported_at", &json!(t), "reported_at must be an RFC 3339 time with offset, e.g. 2026-11-23T10:00:00+08:00"))
        })
        .transpose()?;
    Ok(CaseInput { point, accuracy_m: number("accuracy")?.unwrap_or(0.0), subject, urgency, reported_at })
}

fn missing(parameter: &'static str) -> ApiError {
    ApiError::bad_request("missing_parameter", format!("{parameter} is required")).with_details(json!({"parameter": parameter}))
}
