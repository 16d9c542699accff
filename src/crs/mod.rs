//! Coordinates: datums (WGS84 ≡ CGCS2000, GCJ-02, BD-09).

pub mod datum;

pub use datum::{Datum, UnknownDatum};
