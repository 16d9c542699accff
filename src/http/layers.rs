//! Versions and rollback of the datasets: `GET /v1/layers`, `GET /v1/layers/{name}/versions`,
//! `POST /v1/layers/{name}/rollback` with `{"version": N}` (admin token), and the same for the
//! responsibility list under `/v1/rules/versions` and `/v1/rules/rollback`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::auth::Admin;
use super::body::json_body;
use super::error::ApiError;
use crate::datasets::{DatasetError, Datasets};

pub(super) fn datasets(state: &AppState) -> Result<Arc<Datasets>, ApiError> {
    state.datasets.clone().ok_or_else(|| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_data_directory", "this server has no data directory to version")
    })
}

impl From<DatasetError> for ApiError {
    fn from(e: DatasetError) -> ApiError {
        let message = e.to_string();
        match e {
            DatasetError::UnknownDataset(name) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_layer", message).with_details(json!({"name": name}))
            }
            DatasetError::UnknownVersion { dataset, version, kept } => ApiError::new(StatusCode::NOT_FOUND, "unknown_version", message)
                .with_details(json!({"name": dataset, "version": version, "kept": kept})),
            DatasetError::Unloadable { dataset, version, previous, .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "version_unloadable", message)
                    .with_details(json!({"name": dataset, "version": version, "current": previous}))
            }
            DatasetError::Store(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage_failed", message),
            DatasetError::Ingest(e) => ApiError::from(e),
        }
    }
}

/// `GET /v1/layers`: every dataset with its current version and history.
pub async fn list(State(state): State<AppState>) -> Result<Response, ApiError> {
    let d = datasets(&state)?;
    Ok(axum::Json(json!({"layers": d.list()})).into_response())
}

/// `GET /v1/layers/{name}/versions`.
pub async fn versions(State(state): State<AppState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    Ok(axum::Json(datasets(&state)?.history(&name)?).into_response())
}

/// `GET /v1/rules/versions`.
pub async fn rules_versions(state: State<AppState>) -> Result<Response, ApiError> {
    versions(state, Path("rules".to_owned())).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    version: u64,
}

/// `POST /v1/layers/{name}/rollback` with `{"version": N}`: serve kept version N again.
pub async fn rollback(
    _admin: Admin,
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let d = datasets(&state)?;
    let RollbackBody { version } = json_body(&headers, &body)?;
    let switched = tokio::task::spawn_blocking(move || d.rollback(&name, version))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("rollback failed: {e}")))??;
    Ok(axum::Json(switched).into_response())
}

/// `POST /v1/rules/rollback` with `{"version": N}`.
pub async fn rules_rollback(admin: Admin, state: State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    rollback(admin, state, Path("rules".to_owned()), headers, body).await
}
