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

/// `GET /v1/layers`: every dataset with its current version and history.
pub async fn list(State(state): State<AppState>) -> Result<Response, ApiError> {
    let d = datasets(&state)?;
    let layers = blocking(move || Ok(d.list())).await?;
    Ok(axum::Json(json!({"layers": layers})).into_response())
}

/// `GET /v1/layers/{name}/versions`.
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
    let switched = blocking(move || d.rollback(&name, version)).await?;
    Ok(axum::Json(switched).into_response())
}

/// `POST /v1/rules/rollback` with `{"version": N}`.
pub async fn rules_rollback(admin: Admin, state: State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    rollback(admin, state, Path("rules".to_owned()), headers, body).await
}
