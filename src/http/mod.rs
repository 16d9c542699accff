//! HTTP: the axum router and thin handlers over the current [`World`](crate::world::World).
//! Only this module knows axum; domain errors become statuses in [`error`].

pub mod auth;
mod basemap;
mod body;
mod cases;
mod conditional;
pub mod cors;
pub mod error;
mod fonts;
mod health;
mod ingest;
mod layers;
mod lookup;
pub mod metrics;
mod ogc;
pub mod openapi;
mod params;
pub mod routing;
pub mod server;
mod spool;
pub mod staff;
pub mod staff_client;
pub mod staff_webhook;
pub mod tiles;
pub mod viewer;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderValue;
use axum::routing::{get, post, put};

use crate::world::WorldHandle;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub world: WorldHandle,
    /// Encoded, compressed tiles (keys carry the layer versions).
    pub tiles: tiles::TileCache,
    /// Who may write (rules, layers). None configured: writes are refused.
    pub admin: auth::Tokens,
    /// Who may route cases and read the case log (besides admins). None configured: anyone.
    pub dispatchers: auth::Tokens,
    /// The audit log of routing decisions (`None`: not kept, e.g. a server without a data
    /// directory in tests).
    pub audit: Option<std::sync::Arc<crate::store::audit::AuditLog>>,
    /// The data directory's versioned datasets (`None`: an in-memory server, nothing to switch).
    pub datasets: Option<std::sync::Arc<crate::datasets::Datasets>>,
    /// The fonts the style's label glyphs are rendered from (`/fonts/…`): the built-in one,
    /// plus a font directory's.
    pub glyphs: Arc<crate::glyphs::FontLibrary>,
    /// A developer's directory of viewer files served instead of the compiled-in ones
    /// (`serve --viewer-dir`); `None`: the binary's own.
    pub viewer_dir: Option<Arc<PathBuf>>,
    /// Largest layer upload accepted (`PUT /v1/layers/{name}`), bytes.
    pub max_upload_bytes: usize,
    /// Which pages of other origins may call the server.
    pub cors: cors::CorsPolicy,
    /// The path prefix the whole server answers under (`/citygrid`), or `None` for `/`.
    pub base_path: Option<Arc<str>>,
    /// The Prometheus series of `GET /metrics`.
    pub metrics: Arc<metrics::Metrics>,
    /// Field staff: register, positions, events (`/v1/staff…`).
    pub staff: Arc<crate::staff::StaffHub>,
    /// Who may read staff positions and events (besides admins). None configured: only admins.
    pub staff_readers: auth::Tokens,
    /// Who may send position reports (besides admins). None configured: only admins.
    pub position_writers: auth::Tokens,
    /// The basemap files served under `/basemaps` and drawn under the grids in the style.
    pub basemaps: Arc<crate::basemap::Basemaps>,
}

impl AppState {
    /// State over `world` with a tile cache of the default size.
    pub fn new(world: WorldHandle) -> AppState {
        AppState::with_tile_cache(world, tiles::DEFAULT_TILE_CACHE_BYTES)
    }

    /// State over `world` with a tile cache bounded to `max_bytes` of compressed tiles.
    pub fn with_tile_cache(world: WorldHandle, max_bytes: u64) -> AppState {
        let tiles = tiles::TileCache::new(max_bytes);
        tiles.follow(&world);
        let centre = world.load().center();
        AppState {
            staff: Arc::new(crate::staff::StaffHub::new(crate::staff::StaffConfig::default(), centre)),
            staff_readers: auth::Tokens::default(),
            position_writers: auth::Tokens::default(),
            world,
            tiles,
            admin: auth::Tokens::default(),
            dispatchers: auth::Tokens::default(),
            audit: None,
            datasets: None,
            glyphs: crate::glyphs::FontLibrary::builtin(),
            max_upload_bytes: DEFAULT_MAX_UPLOAD_MB << 20,
            cors: cors::CorsPolicy::default(),
            viewer_dir: None,
            base_path: None,
            metrics: Arc::new(metrics::Metrics::new()),
            basemaps: Arc::default(),
        }
    }

    /// The same state answering under `prefix` (`/citygrid`, checked by
    /// [`valid_prefix`]; `""` or `/`: at the root): every route,
    /// and every URL the server writes, carries it. Panics on a prefix that is not plain.
    pub fn with_base_path(self, prefix: &str) -> AppState {
        let prefix =
            if prefix.is_empty() { String::new() } else { valid_prefix(prefix).unwrap_or_else(|| panic!("base path {prefix:?} is not a plain absolute path")) };
        AppState { base_path: (!prefix.is_empty()).then(|| Arc::from(prefix)), ..self }
    }

    /// The same state, answering `GET /metrics` or not (404); the series are kept either way.
    pub fn with_metrics_endpoint(self, exposed: bool) -> AppState {
        self.metrics.set_exposed(exposed);
        self
    }

    /// The same state rendering glyphs from the fonts under `dir` too
    /// ([`FontLibrary::open`](crate::glyphs::FontLibrary::open); reads the directory now).
    pub fn with_fonts_dir(self, dir: PathBuf) -> AppState {
        self.with_glyphs(Arc::new(crate::glyphs::FontLibrary::open(&dir)))
    }

    /// The same state rendering glyphs from `library`.
    pub fn with_glyphs(self, library: Arc<crate::glyphs::FontLibrary>) -> AppState {
        AppState { glyphs: library, ..self }
    }

    /// The same state serving these basemaps (`/basemaps`, and in the style under the grids).
    pub fn with_basemaps(self, basemaps: crate::basemap::Basemaps) -> AppState {
        AppState { basemaps: Arc::new(basemaps), ..self }
    }

    /// The same state serving the viewer's files found in `dir` instead of the compiled-in
    /// ones (a developer's working copy of `web-viewer/`).
    pub fn with_viewer_dir(self, dir: PathBuf) -> AppState {
        AppState { viewer_dir: Some(Arc::new(dir)), ..self }
    }

    /// The same state, versioning and switching the datasets of `datasets` (whose handle must
    /// be this state's `world`).
    pub fn with_datasets(mut self, datasets: crate::datasets::Datasets) -> AppState {
        self.metrics.seed_served_since(&datasets.list(), &self.world.load());
        self.datasets = Some(std::sync::Arc::new(datasets));
        self
    }

    /// The same state, appending routing decisions to `log`.
    pub fn with_audit(mut self, log: crate::store::audit::AuditLog) -> AppState {
        self.audit = Some(std::sync::Arc::new(log));
        self
    }

    /// The same state, accepting layer uploads of up to `mb` MiB.
    pub fn with_max_upload_mb(mut self, mb: usize) -> AppState {
        self.max_upload_bytes = mb.saturating_mul(1 << 20);
        self
    }

    /// The same state with this cross-origin policy.
    pub fn with_cors(self, cors: cors::CorsPolicy) -> AppState {
        AppState { cors, ..self }
    }

    /// The same state, accepting these bearer tokens for writes.
    pub fn with_admin_tokens(mut self, tokens: Vec<String>) -> AppState {
        self.admin = auth::Tokens::new(tokens);
        self
    }

    /// The same state, asking for one of these bearer tokens (or an admin's) to route cases and
    /// read the case log. Empty: both stay open to anyone.
    pub fn with_dispatcher_tokens(mut self, tokens: Vec<String>) -> AppState {
        self.dispatchers = auth::Tokens::new(tokens);
        self
    }
}

impl AppState {
    /// The same state, reading staff positions and events with one of these tokens (or an
    /// admin's). Empty: only admins.
    pub fn with_staff_tokens(mut self, tokens: Vec<String>) -> AppState {
        self.staff_readers = auth::Tokens::new(tokens);
        self
    }

    /// The same state, accepting position reports with one of these tokens (or an admin's).
    pub fn with_positions_tokens(mut self, tokens: Vec<String>) -> AppState {
        self.position_writers = auth::Tokens::new(tokens);
        self
    }

    /// The same state with this staff subsystem (its settings, a register set directly).
    pub fn with_staff(self, hub: Arc<crate::staff::StaffHub>) -> AppState {
        AppState { staff: hub, ..self }
    }
}

/// Default of `max_upload_mb`: the largest layer upload, MiB.
pub const DEFAULT_MAX_UPLOAD_MB: usize = 512;

/// The whole HTTP surface; under the state's base path when it has one (nothing else answers
/// then, but a JSON 404).
pub fn router(state: AppState) -> Router {
    let base_path = state.base_path.clone();
    let app = routes(state);
    match base_path {
        None => app,
        Some(prefix) => {
            // Handlers write URLs from the request's headers (`base_url`): the configured prefix
            // replaces any X-Forwarded-Prefix a proxy sent.
            let value = HeaderValue::from_str(&prefix).expect("a checked prefix is a header value");
            let app = app.layer(axum::middleware::map_request(move |mut request: axum::extract::Request| {
                let value = value.clone();
                async move {
                    request.headers_mut().insert(FORWARDED_PREFIX, value);
                    request
                }
            }));
            Router::new().nest_service(&prefix, app).fallback(error::no_route).method_not_allowed_fallback(error::method_not_allowed)
        }
    }
}

/// Responses worth compressing: text (JSON, GeoJSON, NDJSON, CSV, HTML, JS) above 1 KiB, but
/// not answers that serve byte ranges (`Accept-Ranges`: the stored version files).
/// Tiles carry their own pre-compressed `Content-Encoding` (never touched twice); glyphs,
/// FlatGeobuf, archives and images are binary already dense, so they pass as they are.
fn compression_layer() -> tower_http::compression::CompressionLayer<impl tower_http::compression::Predicate> {
    use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
    use tower_http::compression::{CompressionLayer, DefaultPredicate};
    let predicate = DefaultPredicate::new()
        .and(SizeAbove::new(1024))
        .and(NotForContentType::const_new(tiles::MVT_TYPE))
        .and(NotForContentType::const_new("application/x-protobuf"))
        .and(NotForContentType::const_new("application/flatgeobuf"))
        .and(NotForContentType::const_new("application/zip"))
        .and(NotForContentType::const_new("application/octet-stream"))
        .and(NotForContentType::const_new("application/geopackage+sqlite3"))
        // Stored version files (ranges, one strong ETag for their bytes) go as stored.
        .and(|_: axum::http::StatusCode, _: axum::http::Version, headers: &axum::http::HeaderMap, _: &axum::http::Extensions| {
            !headers.contains_key(axum::http::header::ACCEPT_RANGES)
        });
    CompressionLayer::new().compress_when(predicate)
}

/// The routes at the root.
fn routes(state: AppState) -> Router {
    let upload_limit = DefaultBodyLimit::max(state.max_upload_bytes);
    let cors = cors::layer(&state.cors);
    let tracking = metrics::Tracking { metrics: state.metrics.clone(), world: state.world.clone() };
    Router::new()
        .route("/health", get(health::health))
        .route("/metrics", get(metrics::scrape))
        .route("/openapi.json", get(openapi::json))
        .route("/docs", get(openapi::page))
        .route("/v1/locate", get(lookup::locate))
        .route("/v1/grids/{code}", get(lookup::grid))
        .route("/v1/components", get(lookup::in_bbox))
        .route("/v1/components/nearest", get(lookup::nearest))
        .route("/v1/components/counts", get(lookup::counts))
        .route("/v1/components/{code}", get(lookup::component))
        .route("/v1/layers", get(layers::list))
        .route("/v1/layers/{name}", put(ingest::import).layer(upload_limit))
        .route("/v1/city", put(ingest::import_package).layer(upload_limit))
        .route("/v1/layers/{name}/versions", get(layers::versions))
        .route("/v1/layers/{name}/versions/{version}", get(layers::version_file))
        .route("/v1/layers/{name}/rollback", post(layers::rollback))
        .route("/v1/rules/versions", get(layers::rules_versions))
        .route("/v1/rules/rollback", post(layers::rules_rollback))
        .route("/v1/cases/routes", get(cases::routes))
        .route("/v1/stats/cases", get(cases::stats))
        .route("/v1/cases/route", post(routing::route))
        .route("/v1/cases/route:batch", post(routing::route_batch).layer(axum::extract::DefaultBodyLimit::max(crate::routing::batch::MAX_BATCH_BYTES)))
        .route("/v1/cases/types", get(routing::types))
        .route("/v1/rules", get(routing::rules).put(routing::put_rules))
        .route("/v1/staff", get(staff::list))
        .route("/v1/staff/nearest", get(staff::nearest))
        .route("/v1/staff/events", get(staff::events))
        .route("/v1/staff/positions", post(staff::positions).layer(DefaultBodyLimit::max(staff::MAX_POSITIONS_BYTES)))
        .route("/v1/staff/{id}", get(staff::person))
        .route("/v1/staff/{id}/track", get(staff::track))
        .route("/v1/stats/patrol", get(staff::patrol))
        .route("/tiles", get(tiles::catalog))
        .route("/tiles/{layers}", get(tiles::tilejson_handler))
        .route("/tiles/{layers}/metadata.json", get(tiles::metadata_json))
        .route("/tiles/{layers}/{z}/{x}/{y}", get(tiles::tile))
        .route("/styles/citygrid.json", get(tiles::style))
        .route("/fonts/{fontstack}/{range}", get(fonts::glyphs))
        .route("/basemaps", get(basemap::list))
        .route("/basemaps/{id}", get(basemap::tilejson_handler))
        .route("/basemaps/{id}/{z}/{x}/{y}", get(basemap::tile))
        .route("/ogc", get(ogc::landing))
        .route("/ogc/", get(ogc::landing))
        .route("/ogc/conformance", get(ogc::conformance))
        .route("/ogc/api", get(ogc::api))
        .route("/ogc/collections", get(ogc::collections))
        .route("/ogc/collections/{id}", get(ogc::collection))
        .route("/ogc/collections/{id}/items", get(ogc::items))
        .route("/ogc/collections/{id}/items/{feature_id}", get(ogc::item))
        .route("/", get(viewer::redirect))
        .route("/viewer", get(viewer::redirect))
        .route("/viewer/", get(viewer::index))
        .route("/viewer/{file}", get(viewer::file))
        .route("/viewer/vendor/maplibre-gl/{file}", get(viewer::vendor))
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::map_response(server::json_rejections))
        .layer(compression_layer())
        .layer(cors)
        // Counts, times and logs every request (once, when its body is sent): src/http/metrics.rs.
        .layer(axum::middleware::from_fn_with_state(tracking, metrics::track))
        .with_state(state)
}

/// The header a reverse proxy that strips a path prefix names it in (`X-Forwarded-Prefix`).
const FORWARDED_PREFIX: &str = "x-forwarded-prefix";

/// The path prefix of the server's URLs as the client sees them: the configured base path, or a
/// proxy's `X-Forwarded-Prefix` when it is a [`valid_prefix`] (else ignored); `""` for none.
pub(crate) fn path_prefix(headers: &axum::http::HeaderMap) -> String {
    headers.get(FORWARDED_PREFIX).and_then(|v| v.to_str().ok()).and_then(|v| valid_prefix(v.split(',').next().unwrap_or("").trim())).unwrap_or_default()
}

/// The server's root URL as the client sees it: `X-Forwarded-Proto` / `X-Forwarded-Host` from a
/// reverse proxy (first value), else `Host`, else `http://127.0.0.1:8080`; then the
/// [`path_prefix`] (`http://host/citygrid`). Used for the URLs in TileJSON, the style and the
/// OGC API links.
pub(crate) fn base_url(headers: &axum::http::HeaderMap) -> String {
    let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok()).map(|v| v.split(',').next().unwrap_or("").trim().to_owned());
    let host = get("x-forwarded-host").or_else(|| get("host")).filter(|h| !h.is_empty()).unwrap_or_else(|| "127.0.0.1:8080".into());
    let proto = get("x-forwarded-proto").filter(|p| p == "https" || p == "http").unwrap_or_else(|| "http".into());
    format!("{proto}://{host}{}", path_prefix(headers))
}

/// `prefix` as a URL path prefix without its trailing `/` (`""` for the root), if it is a plain
/// absolute path: starts with `/`, at most 200 characters of letters, digits and `-._~/`, no
/// empty, `.` or `..` segment (so no `//host`, no scheme, no way out of the site).
pub fn valid_prefix(prefix: &str) -> Option<String> {
    let trimmed = prefix.trim_end_matches('/');
    if !prefix.starts_with('/') || prefix.len() > 200 {
        return None;
    }
    if trimmed.is_empty() {
        return Some(String::new());
    }
    let plain = trimmed[1..]
        .split('/')
        .all(|seg| !seg.is_empty() && seg != "." && seg != ".." && seg.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')));
    plain.then(|| trimmed.to_owned())
}
