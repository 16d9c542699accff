//! The case log over HTTP: `GET /v1/cases/routes` (the audit log read back, page by page)
//! and `GET /v1/stats/cases` (counts by area and type, and the per-grid heat, summed from
//! the log's day and month counts).

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, FixedOffset, NaiveDate};
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, blocking};
use super::params::Params;
use crate::caselog::StatsLevel;
use crate::store::StoreError;
use crate::store::audit::{AuditLog, COUNT_CAP, PageError, PageQuery};

/// Most records one `GET /v1/cases/routes` returns.
pub const MAX_ROUTES: usize = 10_000;
const DEFAULT_ROUTES: usize = 1_000;

/// `since` / `until`: RFC 3339 (`2026-11-01T00:00:00+08:00`) or a date (`2026-11-01`, midnight
/// China Standard Time). `since` is inclusive, `until` exclusive.
fn time(params: &Params, name: &'static str) -> Result<Option<DateTime<FixedOffset>>, ApiError> {
    let Some(v) = params.get(name) else { return Ok(None) };
    let v = v.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(Some(t));
    }
    if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        let t = d.and_hms_opt(0, 0, 0).expect("midnight").and_local_timezone(crate::routing::china_tz()).single();
        return Ok(t);
    }
    Err(ApiError::bad_request("invalid_parameter", format!("{name} must be a date (2026-11-01) or an RFC 3339 time (2026-11-01T08:00:00+08:00)"))
        .with_details(json!({"parameter": name, "value": v})))
}

fn audit(state: &AppState) -> Result<Arc<AuditLog>, ApiError> {
    state.audit.clone().ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "audit_unavailable", "this server keeps no audit log (no data directory)"))
}

fn unreadable(e: StoreError) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "audit_unreadable", e.to_string())
}

/// `GET /v1/cases/routes?since=&until=&unit=&limit=&after=`: routing decisions in `(at, id)`
/// order, one page at a time. `next` is the `after` of the following page (`null` on the
/// last); `total` counts the matching decisions of all pages when there are at most
/// [`COUNT_CAP`] (otherwise `null`, with `total_at_least`).
#[utoipa::path(get, path = "/v1/cases/routes", tag = "cases",
    summary = "the routing decisions of the audit log in time order, one page at a time",
    params(("since" = Option<String>, Query, description = "inclusive: a date (2026-11-01, midnight +08:00) or an RFC 3339 time"),
        ("until" = Option<String>, Query, description = "exclusive: a date or an RFC 3339 time"),
        ("unit" = Option<String>, Query, description = "only the decisions for this unit"),
        ("limit" = Option<usize>, Query, description = "at most this many records (1 to 10000, default 1000)"),
        ("after" = Option<String>, Query, description = "the `next` of the previous page")),
    security((), ("bearer" = [])),
    responses((status = 200, description = "{since, until, unit, after, next, total, total_at_least, truncated, routes}", body = Object),
        (status = 400, description = "invalid_parameter", body = super::error::ErrorBody),
        (status = 401, description = "unauthorized: dispatcher tokens are configured and no Authorization: Bearer header was sent", body = super::error::ErrorBody),
        (status = 403, description = "forbidden: neither a dispatcher nor an admin token", body = super::error::ErrorBody),
        (status = 500, description = "audit_unreadable", body = super::error::ErrorBody),
        (status = 503, description = "audit_unavailable: no audit log (no data directory)", body = super::error::ErrorBody)))]
pub async fn routes(_dispatcher: super::auth::Dispatcher, State(state): State<AppState>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref())?;
    let (since, until) = (time(&params, "since")?, time(&params, "until")?);
    let unit = params.get("unit").map(str::to_owned);
    let limit = params.parsed::<usize>("limit", "a whole number")?.unwrap_or(DEFAULT_ROUTES);
    if limit == 0 || limit > MAX_ROUTES {
        return Err(
            ApiError::bad_request("invalid_parameter", format!("limit must be 1 to {MAX_ROUTES}")).with_details(json!({"parameter": "limit", "value": limit}))
        );
    }
    let after = params.parsed::<i64>("after", "a decision id (the `next` of the previous page)")?;
    let log = audit(&state)?;
    let query = PageQuery { since, until, unit: unit.clone(), after, limit };
    let page = blocking("the audit reader", move || log.page(&query)).await?.map_err(|e| match e {
        PageError::UnknownCursor(id) => ApiError::bad_request("invalid_parameter", e.to_string()).with_details(json!({"parameter": "after", "value": id})),
        PageError::Store(e) => unreadable(e),
    })?;
    let mut body = json!({
        "since": since.map(|t| t.to_rfc3339()),
        "until": until.map(|t| t.to_rfc3339()),
        "unit": unit,
        "after": after,
        "total": page.total,
        "truncated": page.next.is_some(),
        "next": page.next,
        "routes": page.records,
    });
    if page.total.is_none() {
        body["total_at_least"] = json!(COUNT_CAP + 1);
    }
    Ok(axum::Json(body).into_response())
}

/// `GET /v1/stats/cases?level=street|community|grid&since=&until=&case_type=`.
#[utoipa::path(get, path = "/v1/stats/cases", tag = "cases",
    summary = "cases counted by area and type, and per grid",
    params(("level" = Option<String>, Query, description = "street (default), community or grid"),
        ("case_type" = Option<String>, Query, description = "only cases of this type code (e.g. 0102; comma-separated for several); default all"),
        ("since" = Option<String>, Query, description = "inclusive: a date (2026-11-01, midnight +08:00) or an RFC 3339 time"),
        ("until" = Option<String>, Query, description = "exclusive: a date or an RFC 3339 time")),
    responses((status = 200, description = "{level, total, areas, by_type, by_grid, unplaced, since, until}", body = Object),
        (status = 400, description = "invalid_parameter", body = super::error::ErrorBody),
        (status = 500, description = "audit_unreadable", body = super::error::ErrorBody),
        (status = 503, description = "audit_unavailable: no audit log (no data directory)", body = super::error::ErrorBody)))]
pub async fn stats(State(state): State<AppState>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref())?;
    let level = match params.get("level") {
        None => StatsLevel::Street,
        Some(v) => StatsLevel::parse(v.trim()).ok_or_else(|| {
            ApiError::bad_request("invalid_parameter", "level must be street, community or grid").with_details(json!({"parameter": "level", "value": v}))
        })?,
    };
    let (since, until) = (time(&params, "since")?, time(&params, "until")?);
    let log = audit(&state)?;
    let types: Option<Vec<String>> = params.get("case_type").map(|v| v.split(',').map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect());
    let filter = types.clone();
    let stats = blocking("the audit reader", move || log.case_stats(since, until, level, filter.as_deref())).await?.map_err(unreadable)?;
    let mut body = serde_json::to_value(&stats).expect("stats serialize");
    if let Value::Object(m) = &mut body {
        m.insert("since".into(), json!(since.map(|t| t.to_rfc3339())));
        m.insert("until".into(), json!(until.map(|t| t.to_rfc3339())));
        m.insert("case_type".into(), json!(types));
    }
    Ok(axum::Json(body).into_response())
}
