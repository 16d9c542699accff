//! citygrid: a geospatial tile and spatial-query server for grid-based city management
//! (网格化管理 / 数字城管). See README.md for the architecture.

pub mod caselog;
pub mod config;
pub mod crs;
pub mod datasets;
pub mod demo;
pub mod http;
pub mod index;
pub mod ingest;
pub mod lookup;
pub mod model;
pub mod routing;
pub mod store;
pub mod tiles;
pub mod world;
