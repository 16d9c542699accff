//! Case routing over HTTP, thin over [`crate::routing`]: `POST /v1/cases/route`,
//! `GET /v1/cases/types`, `GET /v1/rules`.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::lookup::json;
use crate::crs::Datum;
use crate::lookup::PointEcho;
use crate::routing::{self, CaseInput, CaseSubject, Urgency, china_tz};

/// `GET /v1/cases/types` → `{"types": [{kind, code, name, name_en, major, urgencies}]}`.
pub async fn types(State(state): State<AppState>) -> Response {
    let world = state.world.load();
    json(&json!({"types": routing::case_types(&world)}))
}

/// `GET /v1/rules`: the list in use (version, rule count) and its validation report.
pub async fn rules(State(state): State<AppState>) -> Response {
    #[derive(Serialize)]
    struct RulesAnswer<'a> {
        version: Option<u64>,
        /// The list routes cases (it parsed and validated without errors).
        usable: bool,
        rules: usize,
        /// Why it is not usable.
        problem: Option<&'a str>,
        line_errors: &'a [routing::LineError],
        report: Option<&'a routing::ValidationReport>,
    }
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

/// `POST /v1/cases/route` with a JSON body (see README "Case routing").
pub async fn route(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let case = parse_case(&body)?;
    let world = state.world.load();
    let now = Utc::now().with_timezone(&china_tz());
    Ok(json(&routing::route(&world, &case, now)?))
}

const FIELDS: [&str; 9] =
    ["lon", "lat", "crs", "accuracy", "event_type", "component_class", "component_code", "urgency", "reported_at"];

fn invalid(parameter: &str, value: &Value, message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_parameter", message).with_details(json!({"parameter": parameter, "value": value}))
}

/// The body as a case; every problem is a 400 in the documented format.
fn parse_case(body: &[u8]) -> Result<CaseInput, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
            .with_details(json!({"line": e.line(), "column": e.column()}))
    })?;
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
