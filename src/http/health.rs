//! `GET /health`: liveness plus what is being served.

use axum::Json;
use axum::extract::State;

use super::AppState;
use crate::store::Versions;
use crate::world::WorldSummary;

/// 200 with the city name, each layer's version and feature count, grids per level.
#[utoipa::path(get, path = "/health", tag = "server",
    summary = "liveness and what is being served",
    responses((status = 200, description = "the city, its layers' versions and feature counts, grids per level", body = HealthBody)))]
pub async fn health(State(state): State<AppState>) -> Json<HealthBody> {
    let world = state.world.load();
    let (kind, generation) = match &state.datasets {
        // The snapshot's own generation: always the one of the versions shown with it.
        Some(d) if d.store_kind() == "postgres" => ("postgres", Some(world.store_generation)),
        Some(d) => (d.store_kind(), None),
        None => ("memory", None),
    };
    Json(HealthBody { status: "ok", store: StoreSummary { kind, generation }, versions: world.versions.clone(), world: world.summary() })
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct HealthBody {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: &'static str,
    /// Where the served city is stored, and which state of it is served.
    store: StoreSummary,
    /// The version served of every dataset that has one (grids, components, zones, units,
    /// rules, calendar, city): replicas of one store that agree show the same.
    versions: Versions,
    #[serde(flatten)]
    world: WorldSummary,
}

/// The store behind the served city.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct StoreSummary {
    /// `dir` (a data directory), `postgres` (a PostgreSQL store shared by replicas), or
    /// `memory` (no store: a city built in the process, nothing to switch).
    #[schema(example = "postgres")]
    kind: &'static str,
    /// With `postgres`: the store's generation this replica serves (each switch committed
    /// by any replica makes the next one). Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    generation: Option<i64>,
}
