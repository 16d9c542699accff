//! In-memory spatial indexes over one [`City`](crate::model::City), built once per snapshot
//! and read without locks.
//!
//! - [`GridIndex`]: a point → its unit grid (one raster lookup, exact point-in-polygon only
//!   near boundaries), the nearest grid outside the coverage, and every grid a GPS accuracy
//!   disc touches. The ancestor chain comes from [`City::chain`](crate::model::City::chain).
//! - [`ComponentIndex`]: components nearest a point, within a radius, in a bounding box (paged
//!   in code order), counted by class. Lookup by code is
//!   [`City::component_by_code`](crate::model::City::component_by_code).
//!
//! Both search in a [`LocalPlane`](crate::crs::LocalPlane) around the data and report
//! distances in metres on the sphere ([`crate::crs::haversine_m`]); the plane's distortion is
//! bounded and searched past, so results equal a brute-force scan with the same distance
//! function, ties broken by code.

mod component;
mod grid;
mod zone;

pub use component::ComponentIndex;
pub use grid::{Candidate, GridIndex, LocateAnswer, Location};
pub use zone::ZoneIndex;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests_component;
#[cfg(test)]
mod tests_grid;
