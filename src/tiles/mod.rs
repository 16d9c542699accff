//! Vector tiles (Mapbox Vector Tile 2.1) of the grids, zones and components of one [`City`].
//!
//! # Tiles
//! XYZ scheme (y = 0 at the north), Web Mercator (EPSG:3857), extent and buffer from
//! [`TileConfig`] (default 4096 units, buffer 64). Polygons are clipped to the tile plus the
//! buffer; exterior rings wind clockwise on screen (positive surveyor's area in tile
//! coordinates, y down), holes the other way, as MVT 2.1 requires. Points (components,
//! clusters, label points) are not repeated in the buffer: each lies in exactly one tile per
//! zoom, the one containing it. Tiles are half-open, `x0 ≤ x < x1`, `y0 ≤ y < y1` in Web
//! Mercator quantised to 2^-32 of the world (~1 cm), so a point on a tile edge belongs to
//! the tile east / south of it. The same tile always gives the same bytes.
//!
//! # Datum
//! Coordinates are WGS84 ≡ CGCS2000 ([`Datum::Wgs84`], [`Datum::Cgcs2000`]: no shift). With
//! [`Datum::Gcj02`] (AMap, Tencent) or [`Datum::Bd09`] (Baidu) tile z/x/y is a tile of that
//! map: every vertex and point is shifted with [`Datum::from_wgs84`] before projecting and
//! clipping, so the layers sit on those base maps. Clusters there are the WGS84 clusters
//! (same members and counts) placed at their shifted mean, in the tile that contains it.
//!
//! # Layer `grids` ([`Layer::Grids`])
//! Polygons of every hierarchy level from its own zoom ([`TileConfig::level_min_zoom`]) with
//! `code` (string), `name`, `level` (number, 1 = district) and `level_name` (e.g. `街道`);
//! feature id = the grid code as a number. The same layer holds one label point per grid
//! (geometry type Point, same id and properties): the pole of inaccessibility of the grid's
//! largest polygon, in the one tile containing it. Styles select polygons with
//! `["==", ["geometry-type"], "Polygon"]` and labels with `["==", ["geometry-type"], "Point"]`.
//!
//! Polygons are simplified per zoom (Douglas–Peucker, tolerance one tile unit), precomputed
//! at [`TileSet::build`] and topology-preserving: a level's rings are cut into arcs at the
//! vertices where their neighbours differ, each arc is simplified once with its ends fixed,
//! and rings are rebuilt from the shared arcs, so neighbouring grids of a level meet along
//! the identical simplified seam (no gaps, no overlaps). Rings that collapse at a zoom are
//! dropped.
//!
//! # Layer `zones` ([`Layer::Zones`])
//! From [`TileConfig::zone_min_zoom`] on: the responsibility polygons (责任区, `City::zones`)
//! with `layer` (the zone layer, e.g. `roads`), `id` (unique within its layer), `name` and
//! `unit` (the unit's name; absent when the survey gives none); feature id = 1 + the zone's
//! position in `City::zones` (the same in every tile and zoom of one zones version; across
//! versions `layer` + `id` is the key). Like the grids: one label point per zone (geometry type
//! Point, same id and properties) in the one tile containing it, and polygons simplified per
//! zoom on shared arcs, so two sections of a road that share an edge draw one seam. Zones may
//! overlap: each is drawn whole, in the order of `City::zones`.
//!
//! # Layer `components` ([`Layer::Components`])
//! From [`TileConfig::component_full_zoom`] on: one point per component with `code`,
//! `class` (4 digits), `major` (2 digits) and `status` (`intact`, `damaged`, `missing`,
//! `occupied`); no feature id (the `code` string is the key: MapLibre's `promoteId`). Names
//! and units are left to `/v1/components/{code}`.
//!
//! Below it, and in any tile holding more than [`TileConfig::max_points_per_tile`]
//! components (the density guard): clusters, density-adaptive (greedy on the positions within
//! a radius of 3/32 of a tile, 48 px of a 512 px tile; see `components.rs`), so a sparse area
//! shows single components (`point_count` 1) and a dense one a few heavy clusters, not a
//! lattice. Each is one point at the mean Web Mercator position of its components, with
//! `point_count`, `damaged`, `missing`, `occupied`, and `count_XX` per major class `XX`
//! (absent when 0). A cluster holds components of its own tile only, so a tile's clusters
//! count exactly the components in the tile, and all tiles of a zoom count each component
//! once.

pub mod budget;
pub(crate) mod clip;
mod components;
pub(crate) mod encoder;
mod grids;
pub(crate) mod mercator;
pub mod parts;
mod shapes;
mod topology;
pub mod vector_tile;
mod zones;

use std::sync::LazyLock;

use serde::Serialize;

use crate::crs::Datum;
use crate::model::City;

use components::ComponentLayer;
use encoder::LayerBuilder;
use grids::GridLayer;
use mercator::TileFrame;
use parts::{Part, PartCache, PartKey};
use zones::ZoneLayer;

pub use components::{CELLS as CLUSTER_CELLS, RADIUS_PER_TILE as CLUSTER_RADIUS_PER_TILE};
pub use topology::TOLERANCE_UNITS as SIMPLIFY_TOLERANCE_UNITS;

/// A tile layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    Grids,
    Zones,
    Components,
}

impl Layer {
    /// Every layer, in the order a tile and a tile URL list them (`grids,zones,components`).
    pub const ALL: [Layer; 3] = [Layer::Grids, Layer::Zones, Layer::Components];

    /// The layer's name in URLs and in the tiles.
    pub fn name(self) -> &'static str {
        match self {
            Layer::Grids => "grids",
            Layer::Zones => "zones",
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
    /// Levels past the end of the list use its last entry. The default suits the 4-level
    /// CJ/T 213 and DB11 hierarchies (district 0, street 10, community 12, unit grid 13: a
    /// ~150 m unit grid is ~15 px wide at z13), with two more levels at 15 and 16.
    pub level_min_zoom: Vec<u8>,
    /// The first zoom showing the zones (responsibility polygons). The default, 12, is where
    /// the community grids appear: a 24 m road band is then ~10 tile units (~2 px) wide.
    pub zone_min_zoom: u8,
    /// From this zoom on, components are drawn one by one; below it, clustered.
    /// At most 28.
    pub component_full_zoom: u8,
    /// Highest zoom served (at most [`MAX_ZOOM_LIMIT`]).
    pub max_zoom: u8,
    /// Density guard: a tile at or above `component_full_zoom` whose area holds more
    /// components than this is drawn as clusters (like the zooms below) instead of one point
    /// each, so that no tile passes ~500 KB however dense the city (a full-detail point costs
    /// ~45 bytes). Deterministic: the same tile is always drawn the same way.
    pub max_points_per_tile: u32,
    /// Tile extent (MVT units per tile side).
    pub extent: u32,
    /// Buffer around the tile, in MVT units.
    pub buffer: u32,
}

impl Default for TileConfig {
    fn default() -> TileConfig {
        TileConfig {
            level_min_zoom: vec![0, 10, 12, 13, 15, 16],
            zone_min_zoom: 12,
            component_full_zoom: 16,
            max_zoom: 20,
            max_points_per_tile: 8000,
            extent: 4096,
            buffer: 64,
        }
    }
}

/// Highest `max_zoom` a [`TileConfig`] may ask for (~15 cm per pixel at the equator).
pub const MAX_ZOOM_LIMIT: u8 = 24;

impl TileConfig {
    /// Checks that the rules make sense: levels appear in order, nothing starts past
    /// `max_zoom`, the guard lets at least one point through. The message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_zoom > MAX_ZOOM_LIMIT {
            return Err(format!("max_zoom = {} is above {MAX_ZOOM_LIMIT}", self.max_zoom));
        }
        if self.level_min_zoom.is_empty() {
            return Err("level_min_zoom is empty: give the first zoom of each grid level, district first".into());
        }
        if let Some(w) = self.level_min_zoom.windows(2).find(|w| w[1] < w[0]) {
            return Err(format!(
                "level_min_zoom = {:?} goes down ({} after {}): a finer level cannot appear before its parent",
                self.level_min_zoom, w[1], w[0]
            ));
        }
        if let Some(&z) = self.level_min_zoom.iter().find(|&&z| z > self.max_zoom) {
            return Err(format!("level_min_zoom has {z}, above max_zoom = {}", self.max_zoom));
        }
        if self.zone_min_zoom > self.max_zoom {
            return Err(format!("zone_min_zoom = {} is above max_zoom = {}: zones would never be drawn", self.zone_min_zoom, self.max_zoom));
        }
        if self.component_full_zoom > self.max_zoom {
            return Err(format!(
                "component_full_zoom = {} is above max_zoom = {}: components would never be drawn one by one",
                self.component_full_zoom, self.max_zoom
            ));
        }
        if self.max_points_per_tile == 0 {
            return Err("max_points_per_tile = 0 would cluster every tile; use at least 1".into());
        }
        if self.extent == 0 {
            return Err("extent = 0".into());
        }
        Ok(())
    }

    /// The first zoom showing grids of `level` (0 = district).
    pub fn min_zoom_of_level(&self, level: usize) -> u8 {
        self.level_min_zoom.get(level).or(self.level_min_zoom.last()).copied().unwrap_or(0)
    }
}

/// What is wrong with a tile request.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum TileError {
    #[error("tile {z}/{x}/{y} does not exist: x and y must be below 2^z, z at most {max_zoom}")]
    OutOfRange { z: u8, x: u32, y: u32, max_zoom: u8 },
}

/// Sizes of a built [`TileSet`], for reports and benchmarks.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TileSetStats {
    /// Heap bytes held by the grid geometry (arcs, rings, indexes).
    pub grid_bytes: usize,
    /// Heap bytes held by the zone geometry (arcs, rings, index).
    pub zone_bytes: usize,
    /// Heap bytes held by the component index and precomputed clusters.
    pub component_bytes: usize,
    /// Arcs and arc vertices of the grids after sharing seams.
    pub arcs: usize,
    pub arc_vertices: usize,
    /// Zooms whose clusters are precomputed (the others aggregate on the fly).
    pub precomputed_cluster_zooms: Vec<u8>,
}

/// A city's tiles: geometry prepared once per snapshot (simplified per zoom band), encoded
/// per request.
pub struct TileSet {
    config: TileConfig,
    // Behind `Arc`s so that a snapshot whose grids, zones or components did not change shares
    // that layer's prepared geometry with the one it replaces ([`TileSet::rebuild`]).
    grids: std::sync::Arc<GridLayer>,
    zones: std::sync::Arc<ZoneLayer>,
    components: std::sync::Arc<ComponentLayer>,
    /// The compressed components parts of dense tiles, made on request: shared, like the
    /// components layer they come from, with the snapshots that share it.
    component_parts: std::sync::Arc<PartCache>,
    levels: usize,
    grid_count: usize,
    zone_count: usize,
    component_count: usize,
}

/// `count_00` … `count_99`, the per-major-class cluster keys.
static COUNT_KEYS: LazyLock<Vec<&'static str>> = LazyLock::new(|| (0..100).map(|m| &*Box::leak(format!("count_{m:02}").into_boxed_str())).collect());

impl TileSet {
    /// Prepares `city`'s tiles: projects, indexes and simplifies once. Encoding must then be
    /// given the same city.
    pub fn build(city: &City, config: TileConfig) -> TileSet {
        let extent = config.extent.max(1);
        let max_zoom = config.max_zoom.min(32);
        let full_zoom = config.component_full_zoom.min(28);
        let (grids, zones, components) = std::thread::scope(|s| {
            let g = s.spawn(|| GridLayer::build(city, extent, max_zoom));
            let c = ComponentLayer::build(city, full_zoom);
            let z = ZoneLayer::build(city, extent, max_zoom);
            (g.join().expect("grid tiles build"), z, c)
        });
        TileSet {
            levels: city.hierarchy.levels.len(),
            grid_count: city.grids.len(),
            zone_count: city.zones.len(),
            component_count: city.components.len(),
            config,
            grids: grids.into(),
            zones: zones.into(),
            components: components.into(),
            component_parts: std::sync::Arc::new(PartCache::new(parts::PART_CACHE_BYTES)),
        }
    }

    /// The tile set of `city`, which differs from the city `self` was built from only in the
    /// layers `rebuild` names (same [`TileConfig`]): the other layers' prepared geometry is
    /// shared with `self` (not copied), the named ones are built as [`TileSet::build`] does. A
    /// layer of the grids depends on the grids and the hierarchy, of the zones on the zones,
    /// of the components on the components (names and units are read at encode time).
    pub fn rebuild(&self, city: &City, rebuild: &[Layer]) -> TileSet {
        let extent = self.config.extent.max(1);
        let max_zoom = self.config.max_zoom.min(32);
        let full_zoom = self.config.component_full_zoom.min(28);
        let wants = |l: Layer| rebuild.contains(&l);
        let (grids, zones, components) = std::thread::scope(|s| {
            let g = wants(Layer::Grids).then(|| s.spawn(|| GridLayer::build(city, extent, max_zoom)));
            let c = wants(Layer::Components).then(|| ComponentLayer::build(city, full_zoom));
            let z = wants(Layer::Zones).then(|| ZoneLayer::build(city, extent, max_zoom));
            (g.map(|g| g.join().expect("grid tiles build")), z, c)
        });
        TileSet {
            levels: city.hierarchy.levels.len(),
            grid_count: city.grids.len(),
            zone_count: city.zones.len(),
            component_count: city.components.len(),
            config: self.config.clone(),
            grids: grids.map_or_else(|| self.grids.clone(), Into::into),
            zones: zones.map_or_else(|| self.zones.clone(), Into::into),
            component_parts: if components.is_some() { std::sync::Arc::new(PartCache::new(parts::PART_CACHE_BYTES)) } else { self.component_parts.clone() },
            components: components.map_or_else(|| self.components.clone(), Into::into),
        }
    }

    /// Whether `self` and `other` share the prepared geometry of `layer` (one was
    /// [`TileSet::rebuild`] from the other without rebuilding it).
    pub fn shares(&self, other: &TileSet, layer: Layer) -> bool {
        match layer {
            Layer::Grids => std::sync::Arc::ptr_eq(&self.grids, &other.grids),
            Layer::Zones => std::sync::Arc::ptr_eq(&self.zones, &other.zones),
            Layer::Components => std::sync::Arc::ptr_eq(&self.components, &other.components),
        }
    }

    pub fn config(&self) -> &TileConfig {
        &self.config
    }

    /// Sizes of the prepared data.
    pub fn stats(&self) -> TileSetStats {
        let (arcs, arc_vertices) = self.grids.topology_sizes();
        TileSetStats {
            grid_bytes: self.grids.heap_bytes(),
            zone_bytes: self.zones.heap_bytes(),
            component_bytes: self.components.heap_bytes(),
            arcs,
            arc_vertices,
            precomputed_cluster_zooms: self.components.precomputed_zooms(),
        }
    }

    /// The zone layers present (`roads`, `rivers`, …), ascending, with their number of zones.
    pub fn zone_layers(&self) -> &[(String, u32)] {
        self.zones.layers()
    }

    /// The layers' descriptions for TileJSON.
    pub fn layer_info(&self, layer: Layer) -> LayerInfo {
        let maxzoom = self.config.max_zoom;
        match layer {
            Layer::Grids => LayerInfo {
                id: layer.name(),
                description: "Grid polygons of every level from its own zoom (level 1 = district), and one label \
                              point per grid (geometry type Point) with the same properties",
                fields: vec![("code", "String"), ("name", "String"), ("level", "Number"), ("level_name", "String")],
                minzoom: (0..self.levels.max(1)).map(|l| self.config.min_zoom_of_level(l)).min().unwrap_or(0),
                maxzoom,
            },
            Layer::Zones => LayerInfo {
                id: layer.name(),
                description: "Responsibility polygons (zones, e.g. road sections) with their zone layer, id, name and \
                              unit (absent when none), and one label point per zone (geometry type Point) with the \
                              same properties",
                fields: vec![("layer", "String"), ("id", "String"), ("name", "String"), ("unit", "String")],
                minzoom: self.config.zone_min_zoom,
                maxzoom,
            },
            Layer::Components => {
                let mut fields = vec![
                    ("code", "String"),
                    ("class", "String"),
                    ("major", "String"),
                    ("status", "String"),
                    ("point_count", "Number"),
                    ("damaged", "Number"),
                    ("missing", "Number"),
                    ("occupied", "Number"),
                ];
                fields.extend(self.components.majors().iter().map(|&m| (COUNT_KEYS[m as usize % 100], "Number")));
                LayerInfo {
                    id: layer.name(),
                    description: "Components (code, class, major, status) from component_full_zoom on; below \
                                  it, and in tiles denser than max_points_per_tile, density-adaptive clusters (radius 3/32 \
                                  of a tile, within the tile) with point_count, damaged, missing, occupied and count_XX per major class \
                                  (absent = 0)",
                    fields,
                    minzoom: 0,
                    maxzoom,
                }
            }
        }
    }

    /// The uncompressed MVT bytes of tile z/x/y (XYZ scheme) holding `layers`, with coordinates
    /// in `datum` (WGS84, or shifted to GCJ-02 to sit on AMap/Tencent base maps, or BD-09).
    /// `Ok(None)`: the tile is empty. The same inputs give the same bytes. `city` must be the
    /// city the set was built from.
    pub fn encode(&self, city: &City, layers: &[Layer], z: u8, x: u32, y: u32, datum: Datum) -> Result<Option<Vec<u8>>, TileError> {
        let frame = self.frame(city, z, x, y)?;
        let mut tile = Vec::new();
        for layer in dedup(layers) {
            if let Some(field) = self.layer_field(city, layer, &frame, datum) {
                tile.extend_from_slice(&field);
            }
        }
        Ok((!tile.is_empty()).then_some(tile))
    }

    /// The same tile as [`TileSet::encode`], as one [`Part`] per non-empty layer in tile order
    /// (each that layer's field, compressed on its own; [`parts::stitch`] makes the tile and
    /// its gzip member). The components part of a dense tile (at least
    /// [`parts::PART_MIN_BYTES`] raw, or drawn from at least [`parts::PART_MIN_COMPONENTS`]
    /// components) is kept in a size-bounded cache of the components snapshot and reused by
    /// every later request of that tile, whatever other layers it asks for. `Ok(None)`: empty.
    pub fn encode_parts(&self, city: &City, layers: &[Layer], z: u8, x: u32, y: u32, datum: Datum) -> Result<Option<Vec<std::sync::Arc<Part>>>, TileError> {
        let frame = self.frame(city, z, x, y)?;
        let mut parts = Vec::new();
        for layer in dedup(layers) {
            let part = if layer == Layer::Components {
                let key = PartKey { z, x, y, datum, extent: self.config.extent.max(1), max_points: self.config.max_points_per_tile };
                match self.component_parts.get(&key) {
                    Some(p) => Some(p),
                    None => self.layer_field(city, layer, &frame, datum).map(|field| {
                        let heavy = field.len() >= parts::PART_MIN_BYTES || self.components.load(&frame, datum) >= parts::PART_MIN_COMPONENTS;
                        let part = std::sync::Arc::new(Part::new(field));
                        if heavy {
                            self.component_parts.insert(key, part.clone());
                        }
                        part
                    }),
                }
            } else {
                self.layer_field(city, layer, &frame, datum).map(|field| std::sync::Arc::new(Part::new(field)))
            };
            parts.extend(part);
        }
        Ok((!parts.is_empty()).then_some(parts))
    }

    /// Bytes held by the cache of compressed components parts (as weighed) and their number.
    pub fn component_parts_size(&self) -> (u64, u64) {
        self.component_parts.size()
    }

    fn frame(&self, city: &City, z: u8, x: u32, y: u32) -> Result<TileFrame, TileError> {
        if z > self.config.max_zoom || z > 32 || (x as u64) >= (1u64 << z) || (y as u64) >= (1u64 << z) {
            return Err(TileError::OutOfRange { z, x, y, max_zoom: self.config.max_zoom });
        }
        assert!(
            city.grids.len() == self.grid_count && city.zones.len() == self.zone_count && city.components.len() == self.component_count,
            "TileSet::encode was given another city than the one it was built from"
        );
        Ok(TileFrame::new(z, x, y, self.config.extent.max(1)))
    }

    /// One layer's `layers` field of the tile (key, length, message), or `None` when the layer
    /// has no feature there.
    fn layer_field(&self, city: &City, layer: Layer, frame: &TileFrame, datum: Datum) -> Option<Vec<u8>> {
        let extent = self.config.extent.max(1);
        let built = match layer {
            Layer::Grids => {
                let mut b = LayerBuilder::new(layer.name(), extent, &grids::KEYS);
                self.grids.encode(city, frame, datum, extent, self.config.buffer, |l| self.config.min_zoom_of_level(l), &mut b);
                b
            }
            Layer::Zones => {
                let mut b = LayerBuilder::new(layer.name(), extent, &zones::KEYS);
                if frame.z >= self.config.zone_min_zoom {
                    self.zones.encode(city, frame, datum, extent, self.config.buffer, &mut b);
                }
                b
            }
            Layer::Components => {
                let clustered = self.components.clustered(frame, datum, self.config.max_points_per_tile);
                let mut b = if clustered {
                    let keys = self.components.cluster_keys();
                    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                    LayerBuilder::new(layer.name(), extent, &keys)
                } else {
                    LayerBuilder::new(layer.name(), extent, &components::KEYS)
                };
                self.components.encode(city, frame, datum, clustered, &mut b);
                b
            }
        };
        if built.is_empty() {
            return None;
        }
        // The `Tile` message is its layers, each a length-delimited `layers` field.
        let mut field = Vec::new();
        built.finish_into(&mut field);
        Some(field)
    }
}

/// `layers` without repeats, in the order given.
fn dedup(layers: &[Layer]) -> impl Iterator<Item = Layer> + '_ {
    let mut done = [false; Layer::ALL.len()];
    layers.iter().copied().filter(move |&l| !std::mem::replace(&mut done[l as usize], true))
}

#[cfg(test)]
mod tests;
