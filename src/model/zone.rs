//! Responsibility polygons (责任区): road sections, river segments, plazas — areas a rule of the
//! responsibility list can name (`zone:<layer>` or `zone:<layer>:<id>`), each with the unit that
//! looks after it. They cut across the grid hierarchy: a road section runs through several
//! grids, and inside it the road's maintainer, not the grid's street, answers for the road.

use geo_types::MultiPolygon;

use super::UnitId;

/// One responsibility polygon.
#[derive(Clone, Debug, PartialEq)]
pub struct Zone {
    /// Its layer, e.g. `roads` or `rivers`: lower-case ASCII letters, digits, `_` and `-`.
    pub layer: String,
    /// Unique within its layer, e.g. `R03`.
    pub id: String,
    /// Display name, e.g. `东吴北路 (宝带西路—红庄)`.
    pub name: String,
    /// The unit that looks after it (the `@zone` role of a rule); `None` if the survey gives none.
    pub unit: Option<UnitId>,
    /// lon/lat, WGS84.
    pub geometry: MultiPolygon<f64>,
}

/// Whether `name` is a usable zone layer name.
pub fn is_layer_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}
