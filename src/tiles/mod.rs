//! Vector tiles (Mapbox Vector Tile 2.1) of the grids and components of one [`City`].
//!
//! STUB: the public API the HTTP layer builds on; the encoder is being written (issue: tiles).
//! Until then every tile is empty.

use serde::Serialize;

use crate::crs::Datum;
use crate::model::City;

/// A tile layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    Grids,
    Components,
}

impl Layer {
    pub const ALL: [Layer; 2] = [Layer::Grids, Layer::Components];

    /// The layer's name in URLs and in the tiles.
    pub fn name(self) -> &'static str {
        match self {
            Layer::Grids => "grids",
            Layer::Components => "components",
        }
    }

    pub fn from_name(name: &str) -> Option<Layer> {
        Layer::ALL.into_iter().find(|l| l.name() == name)
    }
}

/// What a layer holds, for TileJSON `vector_layers`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerInfo {
    pub id: &'static str,
    pub description: &'static str,
    /// Field name → type (`String`, `Number`, `Boolean`), as TileJSON 3.0 writes it.
    pub fields: Vec<(&'static str, &'static str)>,
    pub minzoom: u8,
    pub maxzoom: u8,
}

/// Zoom rules (configurable).
#[derive(Clone, Debug, PartialEq)]
pub struct TileConfig {
    /// Per hierarchy level (0 = district), the first zoom at which that level's grids appear.
    pub level_min_zoom: Vec<u8>,
    /// From this zoom on, components are drawn one by one; below it, thinned or clustered.
    pub component_full_zoom: u8,
    /// Highest zoom served.
    pub max_zoom: u8,
    /// Tile extent (MVT units per tile side).
    pub extent: u32,
    /// Buffer around the tile, in MVT units.
    pub buffer: u32,
}

impl Default for TileConfig {
    fn default() -> TileConfig {
        TileConfig { level_min_zoom: vec![0, 10, 12, 13, 15, 16], component_full_zoom: 16, max_zoom: 20, extent: 4096, buffer: 64 }
    }
}

/// What is wrong with a tile request.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum TileError {
    #[error("tile {z}/{x}/{y} does not exist: x and y must be below 2^z, z at most {max_zoom}")]
    OutOfRange { z: u8, x: u32, y: u32, max_zoom: u8 },
}

/// A city's tiles: geometry prepared once per snapshot (simplified per zoom band), encoded
/// per request.
pub struct TileSet {
    config: TileConfig,
}

impl TileSet {
    pub fn build(_city: &City, config: TileConfig) -> TileSet {
        TileSet { config }
    }

    pub fn config(&self) -> &TileConfig {
        &self.config
    }

    /// The layers' descriptions for TileJSON.
    pub fn layer_info(&self, layer: Layer) -> LayerInfo {
        LayerInfo { id: layer.name(), description: "", fields: Vec::new(), minzoom: 0, maxzoom: self.config.max_zoom }
    }

    /// The uncompressed MVT bytes of tile z/x/y (XYZ scheme) holding `layers`, with coordinates
    /// in `datum` (WGS84, or shifted to GCJ-02 to sit on AMap/Tencent base maps). `Ok(None)`:
    /// the tile is empty. The same inputs give the same bytes.
    pub fn encode(&self, _city: &City, _layers: &[Layer], z: u8, x: u32, y: u32, _datum: Datum) -> Result<Option<Vec<u8>>, TileError> {
        if z > self.config.max_zoom || (x as u64) >= (1u64 << z) || (y as u64) >= (1u64 << z) {
            return Err(TileError::OutOfRange { z, x, y, max_zoom: self.config.max_zoom });
        }
        Ok(None)
    }
}
