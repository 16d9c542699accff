//! HTTP: the axum router and thin handlers over the current [`World`](crate::world::World).
//! Only this module knows axum; domain errors become statuses in [`error`].

pub mod error;
mod health;
mod lookup;
mod params;
pub mod tiles;
pub mod viewer;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use tower_http::trace::TraceLayer;

use crate::world::WorldHandle;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub world: WorldHandle,
    /// Encoded, compressed tiles (keys carry the layer versions).
    pub tiles: tiles::TileCache,
    /// The web viewer's directory, whose `node_modules/` holds MapLibre GL JS.
    pub viewer_dir: Arc<PathBuf>,
}

impl AppState {
    /// State over `world` with a tile cache of the default size.
    pub fn new(world: WorldHandle) -> AppState {
        AppState {
            world,
            tiles: tiles::TileCache::new(tiles::DEFAULT_TILE_CACHE_BYTES),
            viewer_dir: Arc::new(PathBuf::from(viewer::DEFAULT_VIEWER_DIR)),
        }
    }

    /// The same state with the web viewer's files read from `dir` instead of the source tree.
    pub fn with_viewer_dir(self, dir: PathBuf) -> AppState {
        AppState { viewer_dir: Arc::new(dir), ..self }
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route("/v1/locate", get(lookup::locate))
        .route("/v1/grids/{code}", get(lookup::grid))
        .route("/v1/components", get(lookup::in_bbox))
        .route("/v1/components/nearest", get(lookup::nearest))
        .route("/v1/components/counts", get(lookup::counts))
        .route("/v1/components/{code}", get(lookup::component))
        .route("/tiles", get(tiles::catalog))
        .route("/tiles/{layers}", get(tiles::tilejson_handler))
        .route("/tiles/{layers}/{z}/{x}/{y}", get(tiles::tile))
        .route("/styles/citygrid.json", get(tiles::style))
        .route("/", get(viewer::redirect))
        .route("/viewer", get(viewer::redirect))
        .route("/viewer/", get(viewer::index))
        .route("/viewer/{file}", get(viewer::file))
        .route("/viewer/vendor/maplibre-gl/{file}", get(viewer::vendor))
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
