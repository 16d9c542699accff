//! The one place domain errors become HTTP statuses, in the documented format:
//! `{"error": {"code": "snake_case_code", "message": "human sentence", "details": {...}}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::lookup::LookupError;
use crate::model::ModelError;
use crate::routing::batch::{BatchError, MAX_BATCH, MAX_BATCH_BYTES};
use crate::routing::{InputError, RoutingError};
use crate::rules::RulesError;

/// An error answer: status, stable machine code, human message, optional details.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), details: Value::Object(Default::default()) }
    }

    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = details;
        self
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl From<LookupError> for ApiError {
    fn from(e: LookupError) -> ApiError {
        let message = e.to_string();
        match e {
            LookupError::InvalidParameter { parameter, value, reason } => {
                ApiError::bad_request("invalid_parameter", reason).with_details(json!({"parameter": parameter, "value": value}))
            }
            LookupError::MalformedCode(ModelError::MalformedCode { what, code, reason }) => {
                ApiError::bad_request("malformed_code", message).with_details(json!({"kind": what, "code": code, "reason": reason}))
            }
            LookupError::MalformedCode(_) => ApiError::bad_request("malformed_code", message),
            LookupError::UnknownClass(code) => ApiError::bad_request("unknown_class", message).with_details(json!({"parameter": "class", "value": code})),
            LookupError::UnknownGrid(code) => ApiError::new(StatusCode::NOT_FOUND, "grid_not_found", message).with_details(json!({"code": code})),
            LookupError::UnknownComponent(code) => ApiError::new(StatusCode::NOT_FOUND, "component_not_found", message).with_details(json!({"code": code})),
            LookupError::OutsideCoverage { point, nearest, candidates } => ApiError::new(StatusCode::NOT_FOUND, "outside_coverage", message)
                .with_details(json!({"point": point, "nearest": nearest, "candidates": candidates})),
            LookupError::UnknownCrs { value, .. } => ApiError::bad_request("unknown_crs", message)
                .with_details(json!({"parameter": "crs", "value": value, "accepted": crate::lookup::POINT_CRS_ACCEPTED})),
            LookupError::MissingCoordinate(parameter) => ApiError::bad_request("missing_parameter", message).with_details(json!({"parameter": parameter})),
            LookupError::WrongPair { parameter, value, crs, reason } => {
                ApiError::bad_request("invalid_parameter", reason).with_details(json!({"parameter": parameter, "value": value, "crs": crs}))
            }
            LookupError::NoCoverage => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_grids", message),
        }
    }
}

impl From<RoutingError> for ApiError {
    fn from(e: RoutingError) -> ApiError {
        let message = e.to_string();
        match e {
            RoutingError::MissingParameter(parameter) => ApiError::bad_request("missing_parameter", message).with_details(json!({"parameter": parameter})),
            RoutingError::InvalidParameter { parameter, value, reason } => {
                ApiError::bad_request("invalid_parameter", reason).with_details(json!({"parameter": parameter, "value": value}))
            }
            RoutingError::UnknownCaseType { kind, code } => {
                ApiError::bad_request("unknown_case_type", message).with_details(json!({"kind": kind, "code": code, "types": "/v1/cases/types"}))
            }
            RoutingError::ComponentNotFound(code) => ApiError::new(StatusCode::NOT_FOUND, "component_not_found", message).with_details(json!({"code": code})),
            RoutingError::OutsideCoverage { nearest, max_m } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "outside_coverage", message).with_details(json!({"nearest": nearest, "max_outside_m": max_m}))
            }
            RoutingError::RulesUnavailable(reason) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "rules_unavailable", message).with_details(json!({"reason": reason, "rules": "/v1/rules"}))
            }
            RoutingError::Lookup(e) => ApiError::from(e),
        }
    }
}

/// The codes are those of `PUT /v1/rules`: `rules_unreadable` (with the `line_errors`),
/// `rules_invalid` (with the validation `report`); a calendar that does not read is
/// `calendar_invalid`. All 422: the list or calendar as sent cannot be used.
impl From<RulesError> for ApiError {
    fn from(e: RulesError) -> ApiError {
        let message = e.to_string();
        match e {
            RulesError::BadRules(lines) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "rules_unreadable", message).with_details(json!({"line_errors": lines}))
            }
            RulesError::InvalidRules(report) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "rules_invalid", message).with_details(json!({"report": report}))
            }
            RulesError::Calendar(_) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "calendar_invalid", message),
        }
    }
}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> ApiError {
        match e {
            InputError::Invalid { code, message, details } => ApiError::bad_request(code, message).with_details(details),
            InputError::Lookup(e) => ApiError::from(e),
        }
    }
}

impl From<BatchError> for ApiError {
    fn from(e: BatchError) -> ApiError {
        let message = e.to_string();
        match e {
            BatchError::TooManyBytes { bytes } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "batch_too_large", message)
                .with_details(json!({"bytes": bytes, "max_bytes": MAX_BATCH_BYTES, "max": MAX_BATCH})),
            BatchError::TooManyCases { cases } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "batch_too_large", message).with_details(json!({"cases": cases, "max": MAX_BATCH}))
            }
            BatchError::Input(e) => ApiError::from(e),
        }
    }
}

/// Runs `f` on the blocking pool, off the async workers (a store read, an audit append, a
/// render): its result, or 500 `internal` "`what` failed: …" if the task panicked.
pub async fn blocking<T: Send + 'static>(what: &'static str, f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("{what} failed: {e}")))
}

/// The body of every error answer (4xx, 5xx): the shared `ErrorBody` schema of the API
/// description.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    pub error: ErrorInfo<'a>,
}

/// What went wrong.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorInfo<'a> {
    /// Stable machine code, snake_case (`invalid_parameter`, `grid_not_found`, …).
    pub code: &'a str,
    /// A human sentence.
    pub message: &'a str,
    /// Structured context: the parameter, the value, the report…; `{}` when there is none.
    #[schema(value_type = Object)]
    pub details: &'a Value,
}

impl ApiError {
    /// The JSON body: `{"error": {"code", "message", "details"}}` ([`ErrorBody`]).
    pub fn body(&self) -> Value {
        let body = ErrorBody { error: ErrorInfo { code: self.code, message: &self.message, details: &self.details } };
        serde_json::to_value(body).expect("an error body serializes")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// Answer for paths no route matches (the path as the client sent it, base path included).
pub async fn no_route(axum::extract::OriginalUri(uri): axum::extract::OriginalUri) -> ApiError {
    ApiError::not_found(format!("no resource at {}", uri.path())).with_details(json!({"path": uri.path()}))
}

/// Answer for a known path asked with a method it does not support.
pub async fn method_not_allowed(method: axum::http::Method, axum::extract::OriginalUri(uri): axum::extract::OriginalUri) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("{method} is not supported on {}", uri.path()))
}
