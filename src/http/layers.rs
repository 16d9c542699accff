//! Versions and rollback of the datasets: `GET /v1/layers`, `GET /v1/layers/{name}/versions`,
//! `GET /v1/layers/{name}/versions/{version}` (the stored file; admin token),
//! `POST /v1/layers/{name}/rollback` with `{"version": N}` (admin token), and the same for the responsibility list under
//! `/v1/rules/versions` and `/v1/rules/rollback`.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::auth::Admin;
use super::body::json_body;
use super::error::{ApiError, ErrorBody};
use crate::datasets::{DatasetHistory, Switched};
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
            DatasetError::ChangedMeanwhile { checked, now } => ApiError::new(StatusCode::CONFLICT, "changed_meanwhile", message)
                .with_details(json!({"checked_against": checked, "served": now})),
            DatasetError::Rejected { dataset, .. } => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "dataset_rejected", message)
                .with_details(json!({"name": dataset})),
            DatasetError::Package(_) => ApiError::bad_request("invalid_package", message),
            DatasetError::PackageRejected(report) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "package_rejected", message).with_details(json!({"report": report}))
            }
            DatasetError::Store(crate::store::StoreError::Locked { holder, .. }) => {
                ApiError::new(StatusCode::CONFLICT, "data_directory_locked", message).with_details(json!({"holder": holder}))
            }
            DatasetError::Store(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage_failed", message),
            DatasetError::Ingest(e) => ApiError::from(e),
        }
    }
}

/// The answer of `GET /v1/layers`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct LayerList {
    /// Every dataset (layers, units, rules, calendar, city settings).
    layers: Vec<DatasetHistory>,
}

/// `GET /v1/layers`: every dataset with its current version and history.
#[utoipa::path(get, path = "/v1/layers", tag = "datasets",
    summary = "every dataset with its current version and kept versions",
    responses((status = 200, description = "the datasets", body = LayerList), (status = 503, description = "no_data_directory: an in-memory server has nothing to version", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> Result<Response, ApiError> {
    let d = datasets(&state)?;
    let layers = blocking(move || Ok(d.list())).await?;
    Ok(axum::Json(LayerList { layers }).into_response())
}

/// `GET /v1/layers/{name}/versions`.
#[utoipa::path(get, path = "/v1/layers/{name}/versions", tag = "datasets",
    summary = "a dataset's kept versions",
    params(("name" = String, Path, description = "grids, components, zones, units, rules, calendar or city")),
    responses((status = 200, description = "the dataset's history", body = DatasetHistory),
        (status = 404, description = "unknown_layer", body = ErrorBody), (status = 503, description = "no_data_directory: an in-memory server has nothing to version", body = ErrorBody)))]
pub async fn versions(State(state): State<AppState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let d = datasets(&state)?;
    Ok(axum::Json(blocking(move || d.history(&name)).await?).into_response())
}

/// Runs `f`, which may wait for the store (held while a change is saved and switched in) or
/// build a snapshot, off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, DatasetError> + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("the data directory task failed: {e}")))?
        .map_err(ApiError::from)
}

/// `GET /v1/layers/{name}/versions/{version}` (admin token: a bulk export of every unit's and
/// grid chief's contact): the stored file of a kept version (`current`: the one served) as an
/// attachment `<name>-v<version>.<ext>` — FlatGeobuf for grids, components and zones (EPSG:4326,
/// with its packed R-tree; what `PUT` takes back), CSV for units and rules. Streamed from disk as
/// the client reads it, never held in memory.
#[utoipa::path(get, path = "/v1/layers/{name}/versions/{version}", tag = "datasets",
    summary = "the stored file of a kept version (admin token)",
    params(("name" = String, Path, description = "grids, components, zones, units, rules, calendar or city"),
        ("version" = String, Path, description = "a version number, or current")),
    security(("bearer" = [])),
    responses((status = 200, description = "the file, as an attachment <name>-v<version>.<ext>",
            content(("application/flatgeobuf"), ("text/csv"), ("application/octet-stream"))),
        (status = 400, description = "invalid_parameter: version is not a number", body = ErrorBody),
        (status = 401, description = "unauthorized: no Authorization: Bearer header", body = ErrorBody),
        (status = 403, description = "forbidden (a token that may not write) or writes_disabled (no token configured)", body = ErrorBody),
        (status = 404, description = "unknown_layer or unknown_version", body = ErrorBody), (status = 503, description = "no_data_directory: an in-memory server has nothing to version", body = ErrorBody)))]
pub async fn version_file(
    _admin: Admin,
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let d = datasets(&state)?;
    let version = match version.as_str() {
        "current" => None,
        v => Some(v.parse::<u64>().map_err(|_| {
            ApiError::bad_request("invalid_parameter", format!("version {v:?} is neither a version number nor \"current\""))
                .with_details(json!({"parameter": "version"}))
        })?),
    };
    let dataset = name.clone();
    let (info, file) = blocking(move || d.version_file(&dataset, version)).await?;
    let ext = info.file.rsplit('.').next().unwrap_or("bin").to_owned();
    let content_type = match ext.as_str() {
        "fgb" => "application/flatgeobuf",
        "csv" => "text/csv; charset=utf-8",
        _ => "application/octet-stream",
    };
    let length = file.metadata().map(|m| m.len()).unwrap_or(info.bytes);
    let disposition = format!("attachment; filename=\"{name}-v{}.{ext}\"", info.version);
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_LENGTH, length.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(FileChunks { file: tokio::fs::File::from_std(file), buf: vec![0; 256 << 10] }),
    )
        .into_response())
}

/// A file read as the client takes it: a stalled client holds no thread, only the open file.
struct FileChunks {
    file: tokio::fs::File,
    buf: Vec<u8>,
}

impl futures_core::Stream for FileChunks {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Self::Item>> {
        use tokio::io::AsyncRead;
        let this = &mut *self;
        let mut read = tokio::io::ReadBuf::new(&mut this.buf);
        match std::pin::Pin::new(&mut this.file).poll_read(cx, &mut read) {
            std::task::Poll::Ready(Ok(())) if read.filled().is_empty() => std::task::Poll::Ready(None),
            std::task::Poll::Ready(Ok(())) => std::task::Poll::Ready(Some(Ok(Bytes::copy_from_slice(read.filled())))),
            std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Some(Err(e))),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

/// `GET /v1/rules/versions`.
#[utoipa::path(get, path = "/v1/rules/versions", tag = "rules",
    summary = "the responsibility list's kept versions",
    responses((status = 200, description = "the list's history", body = DatasetHistory), (status = 503, description = "no_data_directory: an in-memory server has nothing to version", body = ErrorBody)))]
pub async fn rules_versions(state: State<AppState>) -> Result<Response, ApiError> {
    versions(state, Path("rules".to_owned())).await
}

/// The body of a rollback.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// The kept version to serve again.
    version: u64,
}

/// `POST /v1/layers/{name}/rollback` with `{"version": N}`: serve kept version N again.
#[utoipa::path(post, path = "/v1/layers/{name}/rollback", tag = "datasets",
    summary = "serve a kept version of a dataset again (admin token)",
    params(("name" = String, Path, description = "grids, components, zones, units, rules, calendar or city")),
    request_body = RollbackBody,
    security(("bearer" = [])),
    responses((status = 200, description = "what the switch did", body = Switched),
        (status = 400, description = "invalid_json: not the body expected", body = ErrorBody),
        (status = 401, description = "unauthorized: no Authorization: Bearer header", body = ErrorBody),
        (status = 403, description = "forbidden (a token that may not write) or writes_disabled (no token configured)", body = ErrorBody),
        (status = 404, description = "unknown_layer or unknown_version", body = ErrorBody),
        (status = 409, description = "changed_meanwhile or data_directory_locked", body = ErrorBody),
        (status = 415, description = "unsupported_media_type: send application/json", body = ErrorBody),
        (status = 422, description = "version_unloadable: the version cannot be served; the current one stays", body = ErrorBody),
        (status = 503, description = "no_data_directory: an in-memory server has nothing to version", body = ErrorBody)))]
pub async fn rollback(
    _admin: Admin,
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let d = datasets(&state)?;
    let RollbackBody { version } = json_body(&headers, &body)?;
    let switched = blocking(move || d.rollback(&name, version)).await?;
    Ok(axum::Json(switched).into_response())
}

/// `POST /v1/rules/rollback` with `{"version": N}`.
#[utoipa::path(post, path = "/v1/rules/rollback", tag = "rules",
    summary = "serve a kept version of the responsibility list again (admin token)",
    request_body = RollbackBody,
    security(("bearer" = [])),
    responses((status = 200, description = "what the switch did", body = Switched),
        (status = 400, description = "invalid_json: not the body expected", body = ErrorBody),
        (status = 401, description = "unauthorized: no Authorization: Bearer header", body = ErrorBody),
        (status = 403, description = "forbidden (a token that may not write) or writes_disabled (no token configured)", body = ErrorBody),
        (status = 404, description = "unknown_layer or unknown_version", body = ErrorBody),
        (status = 409, description = "changed_meanwhile or data_directory_locked", body = ErrorBody),
        (status = 415, description = "unsupported_media_type: send application/json", body = ErrorBody),
        (status = 422, description = "version_unloadable: the version cannot be served; the current one stays", body = ErrorBody),
        (status = 503, description = "no_data_directory: an in-memory server has nothing to version", body = ErrorBody)))]
pub async fn rules_rollback(admin: Admin, state: State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    rollback(admin, state, Path("rules".to_owned()), headers, body).await
}
