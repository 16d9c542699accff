//! `PUT /v1/layers/{name}` (admin token): a new survey layer (`grids`, `components` or `zones`) as the
//! raw request body, validated, stored as the layer's next version and served — or rejected
//! with its report, nothing changed.
//!
//! Body types: `application/geo+json` (or `application/json`), `application/x-ndjson` /
//! `application/geo+json-seq`, `text/csv`, `application/flatgeobuf`, `application/zip` (a zipped
//! Shapefile; also `application/x-zip-compressed`, `application/x-shapefile`);
//! `application/octet-stream` (or none) is sniffed. Or `multipart/form-data` (an HTML form or
//! `curl -F file=@grids.geojson`): the first part with a file name (or named `file`) is the
//! layer, its format from the part's content type, else its file name's extension, else
//! sniffed. Query: `crs=` (the layer's CRS), `force_crs=true` (it wins over the
//! file's), `strict=true` (any error rejects all), `dry_run=true` (validate only),
//! `allow_shrink=true` (accept a layer under half the current one's size),
//! `accept_findings=true` (grids: import despite dropped grids and topology findings),
//! `x_column=` / `y_column=` (CSV easting/longitude and northing/latitude columns).
//!
//! The upload is spooled to an anonymous temp file as it arrives ([`spool`]), never held in
//! memory, and the layer is read from there.
//!
//! Answers: 200 `{report, switched, dry_run}`; 422 `layer_rejected` with `details.report` (a
//! dry run answers the same status a real run would); 400 for a file that cannot be read or a
//! CRS problem; 413 `payload_too_large` past `max_upload_mb`; 415 `unsupported_media_type`.

use axum::extract::{FromRequest, Multipart, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::auth::Admin;
use super::error::{ApiError, ErrorBody};
use super::layers::datasets;
use super::params::Params;
use super::spool::{self, Spool, SpoolError};
use crate::datasets::Switched;
use crate::store::Versions;
// The unit register, the responsibility list, the calendar and the city settings come as text
// through the same route: see `import_text`.
use crate::ingest::report::Policy;
use crate::ingest::validate::LayerKind;
use crate::ingest::{CsvOptions, Format, ImportOptions, IngestError, stream_layer_file};

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> ApiError {
        let message = e.to_string();
        match e {
            IngestError::UnsupportedFormat(_) => ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", message),
            IngestError::Unreadable { format, .. } => ApiError::bad_request("unreadable_layer", message).with_details(json!({"format": format})),
            IngestError::Io(_) => ApiError::bad_request("unreadable_layer", message),
            IngestError::CsvColumns(_) => ApiError::bad_request("csv_columns", message).with_details(json!({"parameters": ["x_column", "y_column"]})),
            IngestError::UnknownCrs { text, .. } => ApiError::bad_request("unknown_crs", message).with_details(json!({"parameter": "crs", "value": text})),
            IngestError::CrsConflict { declared, given } => {
                ApiError::bad_request("crs_conflict", message).with_details(json!({"declared": declared, "given": given}))
            }
            IngestError::CrsRequired { x, y } => ApiError::bad_request("crs_required", message).with_details(json!({"parameter": "crs", "example": [x, y]})),
            IngestError::CrsAfterFeatures { declared, read_as } => {
                ApiError::bad_request("crs_after_features", message).with_details(json!({"declared": declared, "read_as": read_as, "parameter": "crs"}))
            }
            IngestError::Fields(_) => ApiError::bad_request("unmapped_fields", message),
            IngestError::Stopped => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message),
            IngestError::UnknownLayer(name) => ApiError::new(StatusCode::NOT_FOUND, "unknown_layer", message)
                .with_details(json!({"name": name, "layers": crate::store::Dataset::ALL.map(|d| d.name())})),
        }
    }
}

/// The answer of `PUT /v1/layers/{name}`: a survey layer's report, or a text dataset's check.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ImportAnswer<'a> {
    Layer(LayerImported<'a>),
    Text(TextImported<'a>),
}

/// A survey layer imported (or checked, `dry_run`).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct LayerImported<'a> {
    /// The validation report: features read, kept, dropped and why, topology findings.
    #[schema(value_type = Object)]
    report: &'a crate::ingest::report::Report,
    /// The switch; `null` for a dry run.
    switched: Option<&'a Switched>,
    dry_run: bool,
}

/// A text dataset (units, rules, calendar, city settings) imported (or checked, `dry_run`).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct TextImported<'a> {
    /// What the check found.
    #[schema(value_type = Object)]
    checked: &'a crate::datasets::TextChecked,
    /// The switch; `null` for a dry run.
    switched: Option<&'a Switched>,
    dry_run: bool,
}

/// The answer of `PUT /v1/city`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PackageImported<'a> {
    /// The report of each file of the package.
    #[schema(value_type = Object)]
    report: &'a crate::datasets::PackageReport,
    /// Every dataset's version now served; `null` for a dry run.
    versions: Option<&'a Versions>,
    dry_run: bool,
}

/// `PUT /v1/layers/{units|rules|calendar|city}`: the dataset's text (CSV or TOML, UTF-8) as the
/// body, checked against what is served, stored as its next version and served; `dry_run=true`
/// checks only. 422 `dataset_rejected` (nothing changes) with the reason.
async fn import_text(
    d: std::sync::Arc<crate::datasets::Datasets>,
    dataset: crate::store::Dataset,
    params: &Params,
    request: Request,
    limit: u64,
) -> Result<Response, ApiError> {
    let dry_run = flag(params, "dry_run")?;
    let bytes = axum::body::to_bytes(request.into_body(), limit as usize).await.map_err(|_| ApiError::from(SpoolError::TooLarge { limit }))?;
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|_| ApiError::bad_request("invalid_encoding", format!("the {dataset} file is not UTF-8: save it as UTF-8 (Excel: CSV UTF-8)")))?;
    let origin = format!("PUT /v1/layers/{dataset}");
    let allow_shrink = flag(params, "allow_shrink")?;
    let imported = in_background(move || d.import_text(dataset, &text, allow_shrink, dry_run, &origin)).await??;
    let answer = ImportAnswer::Text(TextImported { checked: &imported.checked, switched: imported.switched.as_ref(), dry_run });
    Ok(axum::Json(answer).into_response())
}

/// The import options of the query: `crs`, `force_crs`, `strict`, `allow_shrink`, `accept_findings`.
fn import_options(layer: LayerKind, params: &Params) -> Result<ImportOptions, ApiError> {
    Ok(ImportOptions {
        layer,
        crs: params.get("crs").map(str::to_owned),
        force_crs: flag(params, "force_crs")?,
        policy: if flag(params, "strict")? { Policy::Strict } else { Policy::DropInvalid },
        allow_shrink: flag(params, "allow_shrink")?,
        default_crs: None,
        accept_findings: flag(params, "accept_findings")?,
        ..ImportOptions::new(layer)
    })
}

/// `PUT /v1/city` (admin token): a whole city package as a ZIP (`city.toml`, `grids.*`,
/// `components.*`, `zones.*`, `units.csv`, `rules.csv`, `calendar.toml`; any of them), checked
/// and made current in one switch, or refused whole (422 `package_rejected` with the report of
/// each file, nothing changed). Query: `crs`, `strict`, `allow_shrink`, `accept_findings` for its
/// layers, `dry_run`. Spooled to disk like a layer upload.
#[utoipa::path(put, path = "/v1/city", tag = "datasets",
    summary = "a whole city package (ZIP), checked and switched in at once (admin token)",
    params(("crs" = Option<String>, Query, description = "the CRS of the layer(s) (EPSG:nnnn, a datum name, a PROJ string or WKT)"),
        ("strict" = Option<bool>, Query, description = "any invalid feature rejects all"),
        ("allow_shrink" = Option<bool>, Query, description = "accept a layer under half the size of the current one"),
        ("accept_findings" = Option<bool>, Query, description = "grids: import despite dropped grids and topology findings"),
        ("dry_run" = Option<bool>, Query, description = "validate only, change nothing")),
    request_body(content_type = "application/zip", description = "city.toml, grids.*, components.*, zones.*, units.csv, rules.csv, calendar.toml (any of them)"),
    security(("bearer" = [])),
    responses((status = 200, description = "the report of each file and the versions now served", body = PackageImported),
        (status = 400, description = "unreadable_layer, unknown_crs, crs_conflict, crs_required, csv_columns, invalid_multipart, missing_file, invalid_encoding, invalid_parameter…", body = ErrorBody),
        (status = 401, description = "unauthorized: no Authorization: Bearer header", body = ErrorBody),
        (status = 403, description = "forbidden (a token that may not write) or writes_disabled (no token configured)", body = ErrorBody),
        (status = 409, description = "changed_meanwhile or data_directory_locked", body = ErrorBody),
        (status = 413, description = "payload_too_large: past max_upload_mb", body = ErrorBody),
        (status = 415, description = "unsupported_media_type", body = ErrorBody),
        (status = 422, description = "package_rejected: details.report says why; nothing changed", body = ErrorBody),
        (status = 503, description = "no_data_directory: an in-memory server has nothing to version", body = ErrorBody),
        (status = 429, description = "rate_limited: too many uploads from this client (Retry-After)", body = ErrorBody)))]
pub async fn import_package(_admin: Admin, State(state): State<AppState>, RawQuery(query): RawQuery, request: Request) -> Result<Response, ApiError> {
    let d = datasets(&state)?;
    let params = Params::parse(query.as_deref())?;
    let options = crate::datasets::PackageOptions { base: Some(import_options(LayerKind::Grids, &params)?) };
    let dry_run = flag(&params, "dry_run")?;
    let file = spool::body(request.into_body(), state.max_upload_bytes as u64, d.dir()).await?;
    let imported = in_background(move || {
        let package = crate::datasets::Package::from_zip(file, d.dir())?;
        d.import_package(&package, &options, dry_run, "PUT /v1/city")
    })
    .await??;
    let answer = PackageImported { report: &imported.report, versions: imported.versions.as_ref(), dry_run };
    Ok(axum::Json(answer).into_response())
}

/// Runs an import — reading the upload, validating it, building the new snapshot — on a thread
/// of its own at background priority ([`crate::world::lower_thread_priority`]; the threads it
/// starts inherit it), so requests keep their latency while it runs: when both want the CPU,
/// serving gets ~10× the import's share.
async fn in_background<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    let internal = |m: String| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", m);
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("import".into())
        .spawn(move || {
            crate::world::lower_thread_priority();
            let _ = tx.send(f());
        })
        .map_err(|e| internal(format!("import failed: no thread for it: {e}")))?;
    rx.await.map_err(|_| internal("import failed: the import stopped with a panic".into()))
}

fn flag(params: &Params, name: &'static str) -> Result<bool, ApiError> {
    Ok(params.parsed::<bool>(name, "true or false")?.unwrap_or(false))
}

/// `PUT /v1/layers/{name}`: see the module doc.
#[utoipa::path(put, path = "/v1/layers/{name}", tag = "datasets",
    summary = "a new version of a dataset: a survey layer file, or the text of units, rules, calendar or city settings (admin token)",
    params(("name" = String, Path, description = "grids, components, zones (a layer file); units, rules, staff (CSV), calendar, city (TOML)"),
        ("crs" = Option<String>, Query, description = "the CRS of the layer(s) (EPSG:nnnn, a datum name, a PROJ string or WKT)"),
        ("strict" = Option<bool>, Query, description = "any invalid feature rejects all"),
        ("allow_shrink" = Option<bool>, Query, description = "accept a layer under half the size of the current one"),
        ("accept_findings" = Option<bool>, Query, description = "grids: import despite dropped grids and topology findings"),
        ("dry_run" = Option<bool>, Query, description = "validate only, change nothing"),
        ("force_crs" = Option<bool>, Query, description = "crs wins over the CRS the file declares"),
        ("x_column" = Option<String>, Query, description = "CSV: the easting / longitude column"),
        ("y_column" = Option<String>, Query, description = "CSV: the northing / latitude column")),
    request_body(description = "the file: GeoJSON, GeoJSON sequence, CSV, FlatGeobuf, zipped Shapefile, GeoPackage, or a multipart form with it; TOML or CSV text for the text datasets",
        content(("application/geo+json"), ("application/x-ndjson"), ("text/csv"), ("application/flatgeobuf"),
            ("application/zip"), ("application/toml"), ("application/octet-stream"), ("multipart/form-data"))),
    security(("bearer" = [])),
    responses((status = 200, description = "the report and the switch (a layer), or the check and the switch (a text dataset)", body = ImportAnswer),
        (status = 400, description = "unreadable_layer, unknown_crs, crs_conflict, crs_required, csv_columns, invalid_multipart, missing_file, invalid_encoding, invalid_parameter…", body = ErrorBody),
        (status = 401, description = "unauthorized: no Authorization: Bearer header", body = ErrorBody),
        (status = 403, description = "forbidden (a token that may not write) or writes_disabled (no token configured)", body = ErrorBody),
        (status = 409, description = "changed_meanwhile or data_directory_locked", body = ErrorBody),
        (status = 413, description = "payload_too_large: past max_upload_mb", body = ErrorBody),
        (status = 415, description = "unsupported_media_type", body = ErrorBody),
        (status = 404, description = "unknown_layer", body = ErrorBody),
        (status = 422, description = "layer_rejected (details.report) or dataset_rejected: nothing changed", body = ErrorBody),
        (status = 503, description = "no_data_directory: an in-memory server has nothing to version", body = ErrorBody),
        (status = 429, description = "rate_limited: too many uploads from this client (Retry-After)", body = ErrorBody)))]
pub async fn import(
    _admin: Admin,
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let d = datasets(&state)?;
    let params = Params::parse(query.as_deref())?;
    let limit = state.max_upload_bytes as u64;
    match crate::store::Dataset::parse(&name) {
        Some(dataset) if !dataset.is_layer() => return import_text(d, dataset, &params, request, limit).await,
        _ => {}
    }
    let layer = LayerKind::parse(&name)?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let multipart = content_type.is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"));
    let (file, format) = if multipart {
        let bad = |e: axum::extract::multipart::MultipartError| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::from(SpoolError::TooLarge { limit })
            } else {
                ApiError::bad_request("invalid_multipart", format!("the multipart form cannot be read: {}", e.body_text()))
            }
        };
        let mut form = Multipart::from_request(request, &state)
            .await
            .map_err(|e| ApiError::bad_request("invalid_multipart", format!("the multipart form cannot be read: {}", e.body_text())))?;
        loop {
            let Some(mut part) = form.next_field().await.map_err(bad)? else {
                return Err(ApiError::bad_request(
                    "missing_file",
                    "the form has no file part: send the layer as a part with a file name (curl -F file=@layer.geojson)",
                ));
            };
            if part.file_name().is_none() && part.name() != Some("file") {
                continue;
            }
            let by_type = Format::from_content_type(part.content_type())?;
            let by_name = match part.file_name() {
                Some(f) => Format::from_extension(std::path::Path::new(f))?,
                None => None,
            };
            let mut spool = Spool::new(limit, d.dir())?;
            while let Some(chunk) = part.chunk().await.map_err(bad)? {
                spool.write(&chunk).await?;
            }
            break (spool.finish().await?, by_type.or(by_name));
        }
    } else {
        let format = Format::from_content_type(content_type)?;
        (spool::body(request.into_body(), limit, d.dir()).await?, format)
    };
    let options = import_options(layer, &params)?;
    let dry_run = flag(&params, "dry_run")?;
    let csv = CsvOptions { x_column: params.get("x_column").map(str::to_owned), y_column: params.get("y_column").map(str::to_owned) };
    let origin = format!("PUT /v1/layers/{name}");
    let imported = in_background(move || d.import(|sink| stream_layer_file(file, format, &csv, sink), &options, dry_run, &origin)).await??;
    if !imported.report.accepted_layer {
        let message = imported.report.summary();
        return Err(
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "layer_rejected", message).with_details(json!({"report": imported.report, "dry_run": dry_run}))
        );
    }
    let answer = ImportAnswer::Layer(LayerImported { report: &imported.report, switched: imported.switched.as_ref(), dry_run });
    Ok(axum::Json(answer).into_response())
}
