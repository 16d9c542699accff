//! Coordinates: datums (WGS84 ≡ CGCS2000, GCJ-02, BD-09), projected CRSs of survey layers
//! (Gauss-Krüger, UTM, local TM) and distances on the earth.

pub mod datum;
pub mod distance;
pub mod projection;

pub use datum::{Datum, UnknownDatum};
pub use distance::{DistanceFrom, EARTH_MEAN_RADIUS_M, LocalPlane, METRES_PER_DEGREE, haversine_m, segment_distance_m};
pub use projection::{Area, AxisOrder, Crs, CrsError, Transformer};
