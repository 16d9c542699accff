//! Distances on the earth, and the local metric plane the spatial indexes search in.
//!
//! - [`haversine_m`]: great-circle distance in metres on the sphere of the mean earth radius
//!   (IUGG R₁ = 6,371,008.8 m). Against the WGS84 ellipsoid it errs by at most ~0.5% (typically
//!   0.1–0.3% at Chinese latitudes); that is the "haversine-grade" accuracy every distance
//!   citygrid reports has.
//! - [`segment_distance_m`]: metres from a point to a straight lon/lat segment (a polygon edge).
//! - [`LocalPlane`]: an equirectangular plane around a city centre, `x = (lon − lon0)·cos(lat0)·R`,
//!   `y = (lat − lat0)·R` (radians), in metres. Indexes search in it because it is cheap, but
//!   its distances are **not** reported: its scale is exact only on the parallel `lat0`, and
//!   50 km north or south of the centre an east–west distance is already off by
//!   `tan(lat0)·Δlat ≈ 0.47%` at 31° N (more than the 0.1% that would make it acceptable).
//!   [`LocalPlane::stretch`] bounds the distortion so that a search in the plane can be made
//!   exact: every reported distance is then recomputed with haversine.

use std::f64::consts::PI;

use geo_types::{Coord, Rect};

/// Mean earth radius R₁ (IUGG), metres.
pub const EARTH_MEAN_RADIUS_M: f64 = 6_371_008.8;
/// Metres per degree of latitude on the mean sphere.
pub const METRES_PER_DEGREE: f64 = EARTH_MEAN_RADIUS_M * PI / 180.0;

/// Great-circle distance between two lon/lat points (degrees), metres (haversine, mean radius).
///
/// Equal to `DistanceFrom::new(a).metres_to(b)` bit for bit.
#[inline]
pub fn haversine_m(a: Coord<f64>, b: Coord<f64>) -> f64 {
    DistanceFrom::new(a).metres_to(b)
}

/// Metres from `p` to the straight lon/lat segment `a`–`b` (a polygon edge as the grids store
/// it). Equal to `DistanceFrom::new(p).to_segment_m(a, b)` bit for bit, and symmetric in `a`, `b`.
#[inline]
pub fn segment_distance_m(p: Coord<f64>, a: Coord<f64>, b: Coord<f64>) -> f64 {
    DistanceFrom::new(p).to_segment_m(a, b)
}

/// A query point with its trigonometry done once, for measuring many distances from it.
#[derive(Clone, Copy, Debug)]
pub struct DistanceFrom {
    p: Coord<f64>,
    lat_rad: f64,
    cos_lat: f64,
}

impl DistanceFrom {
    #[inline]
    pub fn new(p: Coord<f64>) -> DistanceFrom {
        let lat_rad = p.y.to_radians();
        DistanceFrom { p, lat_rad, cos_lat: lat_rad.cos() }
    }

    /// The point this measures from.
    pub fn point(&self) -> Coord<f64> {
        self.p
    }

    /// Haversine distance to `q`, metres.
    #[inline]
    pub fn metres_to(&self, q: Coord<f64>) -> f64 {
        let lat2 = q.y.to_radians();
        let s_lat = ((lat2 - self.lat_rad) * 0.5).sin();
        let s_lon = ((q.x - self.p.x).to_radians() * 0.5).sin();
        let h = s_lat * s_lat + self.cos_lat * lat2.cos() * s_lon * s_lon;
        2.0 * EARTH_MEAN_RADIUS_M * h.sqrt().min(1.0).asin()
    }

    /// Distance to the straight lon/lat segment `a`–`b`, metres: the closest point of the
    /// segment is found in the equirectangular plane tangent at this point (exact in the limit
    /// of short edges; the position error only enters the distance to second order), and the
    /// distance to it is haversine. The segment's ends are put in a fixed order first, so both
    /// grids sharing an edge get exactly the same distance; a closest point at an end is that
    /// end exactly, so grids sharing a vertex tie exactly too.
    #[inline]
    pub fn to_segment_m(&self, a: Coord<f64>, b: Coord<f64>) -> f64 {
        let (a, b) = if (b.x, b.y) < (a.x, a.y) { (b, a) } else { (a, b) };
        let k = self.cos_lat;
        let (ax, ay) = ((a.x - self.p.x) * k, a.y - self.p.y);
        let (bx, by) = ((b.x - self.p.x) * k, b.y - self.p.y);
        let (dx, dy) = (bx - ax, by - ay);
        let len2 = dx * dx + dy * dy;
        let t = if len2 > 0.0 { -(ax * dx + ay * dy) / len2 } else { 0.0 };
        let q = if !(t > 0.0) {
            a
        } else if t >= 1.0 {
            b
        } else {
            Coord { x: a.x + t * (b.x - a.x), y: a.y + t * (b.y - a.y) }
        };
        self.metres_to(q)
    }
}

/// An equirectangular plane in metres around a centre: `x = (lon − lon0)·cos(lat0)·R`,
/// `y = (lat − lat0)·R`. Affine in lon/lat, so lon/lat segments and rectangles stay segments
/// and rectangles. For searching only; see the module doc for its error.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LocalPlane {
    pub lon0: f64,
    pub lat0: f64,
    cos0: f64,
    kx: f64,
}

impl LocalPlane {
    pub fn new(centre: Coord<f64>) -> LocalPlane {
        let cos0 = centre.y.to_radians().cos();
        LocalPlane { lon0: centre.x, lat0: centre.y, cos0, kx: cos0 * METRES_PER_DEGREE }
    }

    /// The plane around the centre of a lon/lat rectangle.
    pub fn around(extent: Rect<f64>) -> LocalPlane {
        LocalPlane::new(extent.center())
    }

    #[inline]
    pub fn to_xy(&self, c: Coord<f64>) -> [f64; 2] {
        [(c.x - self.lon0) * self.kx, (c.y - self.lat0) * METRES_PER_DEGREE]
    }

    #[inline]
    pub fn to_lonlat(&self, xy: [f64; 2]) -> Coord<f64> {
        Coord { x: self.lon0 + xy[0] / self.kx, y: self.lat0 + xy[1] / METRES_PER_DEGREE }
    }

    /// The largest ratio (plane length / true length on the sphere) of any path that stays
    /// within latitudes `lat_lo..=lat_hi`: `max(1, cos(lat0) / min cos(lat))`. So for two
    /// points whose great-circle path stays in the band, `plane distance ≤ stretch × true
    /// distance`. `None` if the band comes within 5° of a pole.
    pub fn stretch(&self, lat_lo: f64, lat_hi: f64) -> Option<f64> {
        let far = lat_lo.abs().max(lat_hi.abs());
        if !(far < 85.0) {
            return None;
        }
        let c_min = far.to_radians().cos();
        Some((self.cos0 / c_min).max(1.0))
    }

    /// The stretch bound for measuring from `p` to anything inside the lon/lat rectangle
    /// `extent` (the indexed data): the latitude band of `p` and `extent`, widened for the
    /// poleward bulge of great circles (≤ Δλ²/16 radians; widened by 0.01·θ² degrees with θ ≥
    /// the angular span in degrees, ~9× that), with a relative slack of 1e-9 for rounding.
    /// `None` where the plane cannot bound distances (near a pole, or more than 60° of
    /// longitude from the centre, where the short way round may cross the antimeridian): the
    /// caller then measures by brute force.
    pub fn search_stretch(&self, p: Coord<f64>, extent: Rect<f64>) -> Option<f64> {
        if !(p.x.is_finite() && p.y.is_finite()) {
            return None;
        }
        let (min, max) = (extent.min(), extent.max());
        let lon_far = (p.x - self.lon0).abs().max((min.x - self.lon0).abs()).max((max.x - self.lon0).abs());
        if !(lon_far < 60.0) {
            return None;
        }
        let dlon = (p.x - min.x).abs().max((p.x - max.x).abs());
        let dlat = (p.y - min.y).abs().max((p.y - max.y).abs());
        let theta2 = dlon * dlon + dlat * dlat;
        let w = 0.01 * theta2 + 1e-9;
        let s = self.stretch(p.y.min(min.y) - w, p.y.max(max.y) + w)?;
        Some(s * (1.0 + 1e-9))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo_types::coord;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn haversine_matches_known_distances() {
        // One degree of latitude on the mean sphere.
        let d = haversine_m(coord! {x: 120.0, y: 31.0}, coord! {x: 120.0, y: 32.0});
        assert!((d - METRES_PER_DEGREE).abs() < 1e-6, "{d}");
        // One degree of longitude at 60° is half a degree of latitude.
        let d = haversine_m(coord! {x: 10.0, y: 60.0}, coord! {x: 11.0, y: 60.0});
        assert!((d - METRES_PER_DEGREE * 0.5).abs() / d < 1e-4, "{d}");
        // Beijing Tiananmen → Shanghai People's Square: ~1,067 km (geodesic 1,068.0 km).
        let d = haversine_m(coord! {x: 116.397428, y: 39.90923}, coord! {x: 121.4737, y: 31.2304});
        assert!((d - 1_067_000.0).abs() < 3_000.0, "{d}");
        assert_eq!(haversine_m(coord! {x: 120.6, y: 31.3}, coord! {x: 120.6, y: 31.3}), 0.0);
        // Antipodes do not produce NaN.
        let d = haversine_m(coord! {x: 0.0, y: 0.0}, coord! {x: 180.0, y: 0.0});
        assert!((d - PI * EARTH_MEAN_RADIUS_M).abs() < 1e-3, "{d}");
    }

    #[test]
    fn segment_distance_is_symmetric_and_exact_at_ends() {
        let p = coord! {x: 120.6, y: 31.3};
        let a = coord! {x: 120.601, y: 31.299};
        let b = coord! {x: 120.601, y: 31.302};
        // Perpendicular foot is inside the segment: ~ 0.001° of longitude at 31.3° N.
        let d = segment_distance_m(p, a, b);
        let expect = 0.001 * METRES_PER_DEGREE * 31.3f64.to_radians().cos();
        assert!((d - expect).abs() < 1e-3, "{d} vs {expect}");
        assert_eq!(d.to_bits(), segment_distance_m(p, b, a).to_bits());
        // Closest point at an end: exactly the distance to that end.
        // (a–c points away from p, so its closest point is `a` itself.)
        let c = coord! {x: 120.602, y: 31.297};
        assert_eq!(segment_distance_m(p, a, c).to_bits(), haversine_m(p, a).to_bits());
        // Degenerate segment.
        assert_eq!(segment_distance_m(p, a, a), haversine_m(p, a));
        // On the segment.
        assert!(segment_distance_m(coord! {x: 120.601, y: 31.3}, a, b) < 1e-6);
    }

    #[test]
    fn segment_distance_agrees_with_a_dense_sampling_of_the_segment() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..500 {
            let p = coord! {x: 120.6 + rng.random_range(-0.05..0.05), y: 31.3 + rng.random_range(-0.05..0.05)};
            let a = coord! {x: 120.6 + rng.random_range(-0.05..0.05), y: 31.3 + rng.random_range(-0.05..0.05)};
            let b = coord! {x: a.x + rng.random_range(-0.003..0.003), y: a.y + rng.random_range(-0.003..0.003)};
            let d = segment_distance_m(p, a, b);
            let sampled = (0..=2000)
                .map(|i| {
                    let t = i as f64 / 2000.0;
                    haversine_m(p, coord! {x: a.x + t * (b.x - a.x), y: a.y + t * (b.y - a.y)})
                })
                .fold(f64::INFINITY, f64::min);
            // d is the distance to a point of the segment chosen in the plane tangent at p:
            // never more than 0.1 mm per km above the sampled minimum, and never
            // far below it (the sampling step is < 0.2 m).
            assert!(d <= sampled * (1.0 + 1e-7) + 1e-6, "{d} > {sampled}");
            assert!(sampled - d < 0.2, "{d} vs sampled {sampled}");
        }
    }

    #[test]
    fn plane_round_trips_and_its_error_is_bounded_by_the_stretch() {
        let plane = LocalPlane::new(coord! {x: 120.6, y: 31.3});
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let extent = Rect::new(coord! {x: 120.1, y: 30.85}, coord! {x: 121.1, y: 31.75});
        let mut worst_rel = 0.0f64;
        for _ in 0..5000 {
            let a = coord! {x: rng.random_range(120.1..121.1), y: rng.random_range(30.85..31.75)};
            let b = coord! {x: rng.random_range(120.1..121.1), y: rng.random_range(30.85..31.75)};
            let back = plane.to_lonlat(plane.to_xy(a));
            assert!((back.x - a.x).abs() < 1e-12 && (back.y - a.y).abs() < 1e-12);
            let (pa, pb) = (plane.to_xy(a), plane.to_xy(b));
            let plane_d = ((pa[0] - pb[0]).powi(2) + (pa[1] - pb[1]).powi(2)).sqrt();
            let true_d = haversine_m(a, b);
            let s = plane.search_stretch(a, extent).unwrap();
            assert!(plane_d <= s * true_d + 1e-6, "plane {plane_d} > {s} × {true_d}");
            worst_rel = worst_rel.max((plane_d - true_d).abs() / true_d.max(1.0));
        }
        // Within ~50 km of the centre the plane alone errs by a few tenths of a percent: more
        // than 0.1%, which is why reported distances are haversine.
        assert!(worst_rel > 0.001 && worst_rel < 0.01, "{worst_rel}");
    }

    #[test]
    fn stretch_refuses_poles_and_the_far_side() {
        let plane = LocalPlane::new(coord! {x: 120.6, y: 31.3});
        let extent = Rect::new(coord! {x: 120.5, y: 31.2}, coord! {x: 120.7, y: 31.4});
        assert!(plane.search_stretch(coord! {x: 120.6, y: 89.0}, extent).is_none());
        assert!(plane.search_stretch(coord! {x: -60.0, y: 31.0}, extent).is_none());
        assert!(plane.search_stretch(coord! {x: f64::NAN, y: 31.0}, extent).is_none());
        let s = plane.search_stretch(coord! {x: 120.6, y: 31.3}, extent).unwrap();
        assert!(s > 1.0 && s < 1.01, "{s}");
    }
}
