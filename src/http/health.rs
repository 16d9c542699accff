//! `GET /health`: liveness plus what is being served.

use axum::Json;
use axum::extract::State;

use super::AppState;
use crate::world::WorldSummary;

/// 200 with the city name, each layer's version and feature count, grids per level.
#[utoipa::path(get, path = "/health", tag = "server",
    summary = "liveness and what is being served",
    responses((status = 200, description = "the city, its layers' versions and feature counts, grids per level", body = HealthBody)))]
pub async fn health(State(state): State<AppState>) -> Json<HealthBody> {
    let world = state.world.load();
    Json(HealthBody { status: "ok", world: world.summary() })
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct HealthBody {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: &'static str,
    #[serde(flatten)]
    world: WorldSummary,
}
