//! Versions and rollback of the datasets: `GET /v1/layers`, `GET /v1/layers/{name}/versions`,
//! `GET /v1/layers/{name}/versions/{version}` (the stored file; admin token),
//! `POST /v1/layers/{name}/rollback` with `{"version": N}` (admin token), and the same for the responsibility list under
//! `/v1/rules/versions` and `/v1/rules/rollback`.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::auth::Admin;
use super::body::json_body;
use super::conditional::etag_matches;
use super::error::{ApiError, ErrorBody};
use crate::datasets::{DatasetError, Datasets};
use crate::datasets::{DatasetHistory, Switched};

pub(super) fn datasets(state: &AppState) -> Result<Arc<Datasets>, ApiError> {
    state.datasets.clone().ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_data_directory", "this server has no data directory to version"))
}

impl From<DatasetError> for ApiError {
    fn from(e: DatasetError) -> ApiError {
        let message = e.to_string();
        match e {
            DatasetError::UnknownDataset(name) => ApiError::new(StatusCode::NOT_FOUND, "unknown_layer", message).with_details(json!({"name": name})),
            DatasetError::UnknownVersion { dataset, version, kept } => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_version", message).with_details(json!({"name": dataset, "version": version, "kept": kept}))
            }
            DatasetError::Unloadable { dataset, version, previous, .. } => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "version_unloadable", message)
                .with_details(json!({"name": dataset, "version": version, "current": previous})),
            DatasetError::ChangedMeanwhile { checked, now } => {
                ApiError::new(StatusCode::CONFLICT, "changed_meanwhile", message).with_details(json!({"checked_against": checked, "served": now}))
            }
            DatasetError::Rejected { dataset, .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "dataset_rejected", message).with_details(json!({"name": dataset}))
            }
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
    super::error::blocking("the data directory task", f).await?.map_err(ApiError::from)
}

/// `GET /v1/layers/{name}/versions/{version}` (admin token: a bulk export of every unit's and
/// grid chief's contact): the stored file of a kept version (`current`: the one served) as an
/// attachment `<name>-v<version>.<ext>` — FlatGeobuf for grids, components and zones (EPSG:4326,
/// with its packed R-tree; what `PUT` takes back), CSV for units and rules. Streamed from disk as
/// the client reads it, never held in memory.
///
/// A kept version's file never changes, so it has a strong `ETag` (answering `If-None-Match`
/// with 304) and `Last-Modified`. `Range: bytes=a-b`, `a-` or `-n` (one range) answers 206 with
/// that slice and `Content-Range` — what GDAL's `/vsicurl/` reads a FlatGeobuf with: the header
/// and index first, then only the features it needs — or 416 if the file has none of it; several
/// ranges, a malformed one or a stale `If-Range` get the whole file. `HEAD` answers the headers.
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
    headers: HeaderMap,
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
    let (info, mut file) = blocking(move || d.version_file(&dataset, version)).await?;
    let ext = info.file.rsplit('.').next().unwrap_or("bin").to_owned();
    let content_type = match ext.as_str() {
        "fgb" => "application/flatgeobuf",
        "csv" => "text/csv; charset=utf-8",
        _ => "application/octet-stream",
    };
    let metadata = file.metadata().ok();
    let length = metadata.as_ref().map_or(info.bytes, |m| m.len());
    let modified = metadata.and_then(|m| m.modified().ok()).map(chrono::DateTime::<chrono::Utc>::from);
    // Dataset, version and size name the bytes (a version number is never reused for others).
    let etag = format!("\"{name}-v{}-{length}\"", info.version);
    let last_modified = modified.map(|t| t.format("%a, %d %b %Y %H:%M:%S GMT").to_string());
    let mut out = HeaderMap::new();
    set(&mut out, header::ACCEPT_RANGES, "bytes");
    set(&mut out, header::ETAG, &etag);
    if let Some(lm) = &last_modified {
        set(&mut out, header::LAST_MODIFIED, lm);
    }
    set(&mut out, header::CACHE_CONTROL, "private, no-cache");

    let header_text = |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok()).map(str::trim);
    let not_modified = match header_text(header::IF_NONE_MATCH) {
        Some(_) => etag_matches(&headers, &etag),
        None => match (header_text(header::IF_MODIFIED_SINCE).and_then(http_date), modified) {
            (Some(since), Some(m)) => m.timestamp() <= since.timestamp(),
            _ => false,
        },
    };
    if not_modified {
        return Ok((StatusCode::NOT_MODIFIED, out).into_response());
    }
    set(&mut out, header::CONTENT_TYPE, content_type);
    set(&mut out, header::CONTENT_DISPOSITION, &format!("attachment; filename=\"{name}-v{}.{ext}\"", info.version));

    // If-Range: the range only of these very bytes (the ETag, or the same Last-Modified).
    let range_applies = header_text(header::IF_RANGE).is_none_or(|v| v == etag || last_modified.as_deref() == Some(v));
    let range = header_text(header::RANGE).filter(|_| range_applies).and_then(|r| byte_range(r, length));
    let (status, start, len) = match range {
        None => (StatusCode::OK, 0, length),
        Some(Ok((a, b))) => {
            set(&mut out, header::CONTENT_RANGE, &format!("bytes {a}-{b}/{length}"));
            (StatusCode::PARTIAL_CONTENT, a, b - a + 1)
        }
        Some(Err(())) => {
            let mut e = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the file has {length} bytes: the range asks for none of them"),
            )
            .with_details(json!({"range": header_text(header::RANGE), "bytes": length}))
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{length}")) {
                e.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(e);
        }
    };
    set(&mut out, header::CONTENT_LENGTH, &len.to_string());
    if start > 0 {
        use std::io::{Seek, SeekFrom};
        file.seek(SeekFrom::Start(start))
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage_failed", format!("cannot read the version file: {e}")))?;
    }
    let body = Body::from_stream(FileChunks { file: tokio::fs::File::from_std(file), buf: vec![0; 256 << 10], remaining: len });
    Ok((status, out, body).into_response())
}

fn set(headers: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

/// One byte range of `Range` in a file of `length` bytes, inclusive: `None` to serve the whole
/// file (not a `bytes=` range, several ranges, malformed), `Err` if it holds none of the file.
fn byte_range(raw: &str, length: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = raw.strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        // -n: the last n bytes.
        (true, false) => {
            let n = number(last)?;
            Some(if n == 0 || length == 0 { Err(()) } else { Ok((length.saturating_sub(n), length - 1)) })
        }
        // a-: from a to the end.
        (false, true) => {
            let a = number(first)?;
            Some(if a >= length { Err(()) } else { Ok((a, length - 1)) })
        }
        (false, false) => {
            let (a, b) = (number(first)?, number(last)?);
            if a > b {
                return None;
            }
            Some(if a >= length { Err(()) } else { Ok((a, b.min(length - 1))) })
        }
        (true, true) => None,
    }
}

/// An HTTP date (IMF-fixdate, as `Last-Modified` gives it).
fn http_date(raw: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc2822(raw).ok()
}

/// A file read as the client takes it, up to `remaining` bytes: a stalled client holds no
/// thread, only the open file.
struct FileChunks {
    file: tokio::fs::File,
    buf: Vec<u8>,
    remaining: u64,
}

impl futures_core::Stream for FileChunks {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Self::Item>> {
        use tokio::io::AsyncRead;
        let this = &mut *self;
        if this.remaining == 0 {
            return std::task::Poll::Ready(None);
        }
        let want = this.buf.len().min(usize::try_from(this.remaining).unwrap_or(usize::MAX));
        let mut read = tokio::io::ReadBuf::new(&mut this.buf[..want]);
        match std::pin::Pin::new(&mut this.file).poll_read(cx, &mut read) {
            std::task::Poll::Ready(Ok(())) if read.filled().is_empty() => std::task::Poll::Ready(None),
            std::task::Poll::Ready(Ok(())) => {
                this.remaining -= read.filled().len() as u64;
                std::task::Poll::Ready(Some(Ok(Bytes::copy_from_slice(read.filled()))))
            }
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
pub async fn rollback(_admin: Admin, State(state): State<AppState>, Path(name): Path<String>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
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

#[cfg(test)]
mod tests {
    use super::byte_range;

    #[test]
    fn byte_ranges() {
        assert_eq!(byte_range("bytes=0-99", 1000), Some(Ok((0, 99))));
        assert_eq!(byte_range("bytes=990-2000", 1000), Some(Ok((990, 999))), "the end is clamped");
        assert_eq!(byte_range("bytes=500-", 1000), Some(Ok((500, 999))));
        assert_eq!(byte_range("bytes=-100", 1000), Some(Ok((900, 999))));
        assert_eq!(byte_range("bytes=-5000", 1000), Some(Ok((0, 999))), "more than the file: all of it");
        assert_eq!(byte_range("bytes=1000-", 1000), Some(Err(())));
        assert_eq!(byte_range("bytes=1000-1001", 1000), Some(Err(())));
        assert_eq!(byte_range("bytes=-0", 1000), Some(Err(())));
        for whole in ["bytes=0-1,5-6", "bytes=5-1", "items=0-1", "bytes=-", "bytes=a-b", "bytes=+1-2"] {
            assert_eq!(byte_range(whole, 1000), None, "{whole}");
        }
    }
}
