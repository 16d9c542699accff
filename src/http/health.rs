//! `GET /health`: liveness plus what is being served.

use axum::Json;
use axum::extract::State;

use super::AppState;
use crate::world::WorldSummary;

/// 200 with the city name, each layer's version and feature count, grids per level.
pub async fn health(State(state): State<AppState>) -> Json<HealthBody> {
    let world = state.world.load();
    Json(HealthBody { status: "ok", world: world.summary() })
}

#[derive(serde::Serialize)]
pub struct HealthBody {
    status: &'static str,
    #[serde(flatten)]
    world: WorldSummary,
}
