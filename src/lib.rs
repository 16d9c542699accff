//! citygrid: a geospatial tile and spatial-query server for grid-based city management
//! (网格化管理 / 数字城管). See README.md for the architecture.

// Guards such as `if !(radius_m >= 0.0)` are written to be true for NaN as well: the negated
// comparison is the point, not an oversight.
#![allow(clippy::neg_cmp_op_on_partial_ord, clippy::nonminimal_bool)]

pub mod basemap;
pub mod caselog;
pub mod config;
pub mod crs;
pub mod datasets;
pub mod demo;
#[doc(hidden)]
pub mod fuzzing;
pub mod glyphs;
pub mod http;
pub mod index;
pub mod ingest;
pub mod lookup;
pub mod model;
pub mod routing;
pub mod rules;
pub mod staff;
pub mod store;
pub mod tiles;
pub mod world;
