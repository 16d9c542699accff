//! Grids (网格) at every level of the hierarchy.

use chrono::NaiveDate;
use geo_types::MultiPolygon;
use serde::Serialize;

use super::{GridCode, UnitId};

/// Index of a grid in [`super::City::grids`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct GridId(pub u32);

/// The grid chief (网格长): the person who dispatches inside a grid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Chief {
    pub name: String,
    pub phone: String,
}

/// A grid polygon at some level: district, street, community, unit grid, ….
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    pub code: GridCode,
    pub name: String,
    /// 0 = top level (district); the last level is the unit grid.
    pub level: u8,
    /// The enclosing grid one level up; `None` only at the top level.
    pub parent: Option<GridId>,
    /// Responsible unit (责任单位). `None` means it falls back to its street (属地兜底).
    pub unit: Option<UnitId>,
    pub chief: Option<Chief>,
    /// 初始时间: first day the grid is in force, inclusive.
    pub valid_from: Option<NaiveDate>,
    /// 终止日期: last day the grid is in force, inclusive.
    pub valid_to: Option<NaiveDate>,
    /// Outline in lon/lat (WGS84 ≡ CGCS2000), exterior rings counter-clockwise.
    pub geometry: MultiPolygon<f64>,
}
