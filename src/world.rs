//! The World: one immutable snapshot of everything the server answers from.
//!
//! Readers take an `Arc<World>` from [`WorldHandle::load`] and keep it for the whole request,
//! so a response is wholly from one snapshot. A new snapshot (an import, a rollback) is built
//! off the request path and switched in with one atomic pointer swap.

use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::City;
use crate::store::{CityMeta, LoadedCity, Versions};

/// One consistent snapshot of the city's layers.
pub struct World {
    pub city: City,
    pub meta: CityMeta,
    /// Version of each dataset this snapshot was built from.
    pub versions: Versions,
    pub rules_csv: Option<String>,
    pub loaded_at: DateTime<Utc>,
}

impl World {
    pub fn new(loaded: LoadedCity) -> World {
        World {
            city: loaded.city,
            meta: loaded.meta,
            versions: loaded.versions,
            rules_csv: loaded.rules_csv,
            loaded_at: Utc::now(),
        }
    }

    /// A summary for `/health`: each layer's version and feature count.
    pub fn summary(&self) -> WorldSummary {
        let version = |name: &str| self.versions.get(name);
        let levels = self
            .city
            .hierarchy
            .levels
            .iter()
            .zip(self.city.level_counts())
            .map(|(l, count)| LevelSummary { name: l.name.clone(), name_en: l.name_en.clone(), grids: count })
            .collect();
        WorldSummary {
            city: self.meta.name.clone(),
            layers: vec![
                LayerSummary { name: "grids", version: version("grids"), features: self.city.grids.len() },
                LayerSummary { name: "components", version: version("components"), features: self.city.components.len() },
                LayerSummary { name: "units", version: version("units"), features: self.city.units.len() },
            ],
            rules_version: version("rules"),
            levels,
            loaded_at: self.loaded_at,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct WorldSummary {
    pub city: String,
    pub layers: Vec<LayerSummary>,
    pub rules_version: Option<u64>,
    pub levels: Vec<LevelSummary>,
    pub loaded_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct LayerSummary {
    pub name: &'static str,
    pub version: Option<u64>,
    pub features: usize,
}

#[derive(Debug, Serialize)]
pub struct LevelSummary {
    pub name: String,
    pub name_en: String,
    pub grids: usize,
}

/// The shared, atomically swappable pointer to the current [`World`].
#[derive(Clone)]
pub struct WorldHandle(Arc<ArcSwap<World>>);

impl WorldHandle {
    pub fn new(world: World) -> WorldHandle {
        WorldHandle(Arc::new(ArcSwap::from_pointee(world)))
    }

    /// The current snapshot; hold it for the whole request.
    pub fn load(&self) -> Arc<World> {
        self.0.load_full()
    }

    /// Switches every new reader to `world`; readers in flight finish on the old one.
    pub fn replace(&self, world: World) {
        self.0.store(Arc::new(world));
    }
}
