//! Geographic datums a point can arrive in, and their conversion to WGS84.
//!
//! - WGS84 and CGCS2000 (EPSG:4326 / 4490) differ by ≪ 1 cm and are treated as one.
//! - GCJ-02 (AMap, Tencent; mainland China only) is WGS84 plus a public obfuscating offset of
//!   38–687 m; outside China's bounding box the offset is zero.
//! - BD-09 (Baidu) is GCJ-02 with a further 763–986 m shift.
//!
//! The forward formulas are the public ones (eviltransform; Krasovsky a = 6378245,
//! ee = 0.00669342162296594323). The inverses are a fixed-point iteration
//! `w ← w − (forward(w) − g)`, which converges below 1e-9 degrees (≈ 0.1 mm) in a handful of
//! steps; the common one-step inverse errs by up to 4.9 m and is not used.

use std::f64::consts::PI;
use std::fmt;
use std::str::FromStr;

const KRASOVSKY_A: f64 = 6_378_245.0;
const KRASOVSKY_EE: f64 = 0.006_693_421_622_965_943;
const BD_X_PI: f64 = PI * 3000.0 / 180.0;
/// Convergence threshold of the inverse iterations, degrees (≈ 0.01 mm).
const INVERSE_TOLERANCE_DEG: f64 = 1e-10;
const INVERSE_MAX_STEPS: usize = 40;

/// The datum of a lon/lat pair given to citygrid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Datum {
    /// WGS84 (GPS), EPSG:4326. The internal datum.
    #[default]
    Wgs84,
    /// CGCS2000, EPSG:4490: identical to WGS84 for every purpose here (≪ 1 cm).
    Cgcs2000,
    /// GCJ-02 "Mars coordinates" of AMap / Tencent / most Chinese phone map SDKs.
    Gcj02,
    /// BD-09 of Baidu maps.
    Bd09,
}

/// A datum name that is not one of the accepted ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown crs {0:?}: expected wgs84, cgcs2000, gcj02 or bd09")]
pub struct UnknownDatum(pub String);

impl FromStr for Datum {
    type Err = UnknownDatum;
    /// Accepts `wgs84`, `cgcs2000`, `gcj02`, `bd09` in any case (also `EPSG:4326`, `EPSG:4490`).
    fn from_str(s: &str) -> Result<Datum, UnknownDatum> {
        match s.trim().to_ascii_lowercase().as_str() {
            "wgs84" | "epsg:4326" => Ok(Datum::Wgs84),
            "cgcs2000" | "epsg:4490" => Ok(Datum::Cgcs2000),
            "gcj02" | "gcj-02" => Ok(Datum::Gcj02),
            "bd09" | "bd-09" => Ok(Datum::Bd09),
            _ => Err(UnknownDatum(s.to_owned())),
        }
    }
}

impl fmt::Display for Datum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Datum::Wgs84 => "wgs84",
            Datum::Cgcs2000 => "cgcs2000",
            Datum::Gcj02 => "gcj02",
            Datum::Bd09 => "bd09",
        })
    }
}

impl Datum {
    /// Converts a lon/lat in this datum to WGS84.
    pub fn to_wgs84(self, lon: f64, lat: f64) -> (f64, f64) {
        match self {
            Datum::Wgs84 | Datum::Cgcs2000 => (lon, lat),
            Datum::Gcj02 => gcj02_to_wgs84(lon, lat),
            Datum::Bd09 => {
                let (glon, glat) = bd09_to_gcj02(lon, lat);
                gcj02_to_wgs84(glon, glat)
            }
        }
    }

    /// Converts a WGS84 lon/lat to this datum (for tiles aligned with Chinese base maps).
    pub fn from_wgs84(self, lon: f64, lat: f64) -> (f64, f64) {
        match self {
            Datum::Wgs84 | Datum::Cgcs2000 => (lon, lat),
            Datum::Gcj02 => wgs84_to_gcj02(lon, lat),
            Datum::Bd09 => {
                let (glon, glat) = wgs84_to_gcj02(lon, lat);
                gcj02_to_bd09(glon, glat)
            }
        }
    }
}

/// True outside the rectangle in which GCJ-02 applies its offset.
pub fn outside_china(lon: f64, lat: f64) -> bool {
    !(72.004..=137.8347).contains(&lon) || !(0.8293..=55.8271).contains(&lat)
}

fn transform_lat(x: f64, y: f64) -> f64 {
    let mut r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * x.abs().sqrt();
    r += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    r += (20.0 * (y * PI).sin() + 40.0 * (y / 3.0 * PI).sin()) * 2.0 / 3.0;
    r += (160.0 * (y / 12.0 * PI).sin() + 320.0 * (y * PI / 30.0).sin()) * 2.0 / 3.0;
    r
}

fn transform_lon(x: f64, y: f64) -> f64 {
    let mut r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * x.abs().sqrt();
    r += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    r += (20.0 * (x * PI).sin() + 40.0 * (x / 3.0 * PI).sin()) * 2.0 / 3.0;
    r += (150.0 * (x / 12.0 * PI).sin() + 300.0 * (x / 30.0 * PI).sin()) * 2.0 / 3.0;
    r
}

/// WGS84 → GCJ-02, the public forward formula. Identity outside China's bounding box.
pub fn wgs84_to_gcj02(lon: f64, lat: f64) -> (f64, f64) {
    if outside_china(lon, lat) {
        return (lon, lat);
    }
    let dlat = transform_lat(lon - 105.0, lat - 35.0);
    let dlon = transform_lon(lon - 105.0, lat - 35.0);
    let radlat = lat / 180.0 * PI;
    let magic = 1.0 - KRASOVSKY_EE * radlat.sin() * radlat.sin();
    let sqrt_magic = magic.sqrt();
    let dlat = (dlat * 180.0) / ((KRASOVSKY_A * (1.0 - KRASOVSKY_EE)) / (magic * sqrt_magic) * PI);
    let dlon = (dlon * 180.0) / (KRASOVSKY_A / sqrt_magic * radlat.cos() * PI);
    (lon + dlon, lat + dlat)
}

/// Solves `forward(w) = target` for `w` by fixed-point iteration from `w = start`.
fn invert(forward: impl Fn(f64, f64) -> (f64, f64), target: (f64, f64), start: (f64, f64)) -> (f64, f64) {
    let (mut lon, mut lat) = start;
    for _ in 0..INVERSE_MAX_STEPS {
        let (flon, flat) = forward(lon, lat);
        let (dlon, dlat) = (flon - target.0, flat - target.1);
        lon -= dlon;
        lat -= dlat;
        if dlon.abs() < INVERSE_TOLERANCE_DEG && dlat.abs() < INVERSE_TOLERANCE_DEG {
            break;
        }
    }
    (lon, lat)
}

/// GCJ-02 → WGS84 by iteration (error < 0.1 mm). Identity outside China's bounding box.
pub fn gcj02_to_wgs84(lon: f64, lat: f64) -> (f64, f64) {
    if outside_china(lon, lat) {
        return (lon, lat);
    }
    invert(wgs84_to_gcj02, (lon, lat), (lon, lat))
}

/// GCJ-02 → BD-09, Baidu's public forward formula.
pub fn gcj02_to_bd09(lon: f64, lat: f64) -> (f64, f64) {
    let z = (lon * lon + lat * lat).sqrt() + 0.00002 * (lat * BD_X_PI).sin();
    let theta = lat.atan2(lon) + 0.000003 * (lon * BD_X_PI).cos();
    (z * theta.cos() + 0.0065, z * theta.sin() + 0.006)
}

/// BD-09 → GCJ-02: the closed-form approximate inverse refined by iteration.
pub fn bd09_to_gcj02(lon: f64, lat: f64) -> (f64, f64) {
    let (x, y) = (lon - 0.0065, lat - 0.006);
    let z = (x * x + y * y).sqrt() - 0.00002 * (y * BD_X_PI).sin();
    let theta = y.atan2(x) - 0.000003 * (x * BD_X_PI).cos();
    invert(gcj02_to_bd09, (lon, lat), (z * theta.cos(), z * theta.sin()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Metres between two lon/lat points (haversine; fine for these small distances).
    fn metres(a: (f64, f64), b: (f64, f64)) -> f64 {
        let r = 6_371_008.8;
        let (la1, la2) = (a.1.to_radians(), b.1.to_radians());
        let dla = la2 - la1;
        let dlo = (b.0 - a.0).to_radians();
        let h = (dla / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlo / 2.0).sin().powi(2);
        2.0 * r * h.sqrt().asin()
    }

    /// (lon, lat) in WGS84, GCJ-02, BD-09, and the WGS84→GCJ-02 offset in metres.
    type Vector = ((f64, f64), (f64, f64), (f64, f64), f64);

    // WGS84 → GCJ-02 → BD-09 test vectors (the public forward formulas) and the offset.
    const VECTORS: [Vector; 3] = [
        ((116.397428, 39.909230), (116.403671626, 39.910633506), (116.410044102, 39.916972856), 555.6),
        ((121.473700, 31.230400), (121.478223059, 31.228457738), (121.484781469, 31.234310594), 481.8),
        ((120.600000, 31.270000), (120.604167375, 31.267800244), (120.610568106, 31.274151483), 466.0),
    ];

    #[test]
    fn forward_formulas_match_the_reference_vectors() {
        for (wgs, gcj, bd, offset) in VECTORS {
            let g = wgs84_to_gcj02(wgs.0, wgs.1);
            assert!((g.0 - gcj.0).abs() < 1e-9 && (g.1 - gcj.1).abs() < 1e-9, "{wgs:?} → {g:?} ≠ {gcj:?}");
            let b = gcj02_to_bd09(g.0, g.1);
            assert!((b.0 - bd.0).abs() < 1e-9 && (b.1 - bd.1).abs() < 1e-9, "{g:?} → {b:?} ≠ {bd:?}");
            // The reference offsets are ellipsoidal; haversine on a sphere differs by ~0.1%.
            assert!((metres(wgs, g) - offset).abs() < 1.0, "offset {} vs {offset}", metres(wgs, g));
        }
    }

    #[test]
    fn inverses_recover_wgs84_within_a_centimetre() {
        for (wgs, gcj, bd, _) in VECTORS {
            let w = Datum::Gcj02.to_wgs84(gcj.0, gcj.1);
            assert!(metres(w, wgs) < 0.01, "gcj02 inverse off by {} m", metres(w, wgs));
            let w = Datum::Bd09.to_wgs84(bd.0, bd.1);
            assert!(metres(w, wgs) < 0.01, "bd09 inverse off by {} m", metres(w, wgs));
        }
    }

    #[test]
    fn round_trips_over_china_stay_below_a_millimetre() {
        // A deterministic sweep over mainland China.
        let mut worst = 0.0f64;
        for i in 0..60 {
            for j in 0..40 {
                let wgs = (75.0 + i as f64 * 0.97 + 0.123, 18.0 + j as f64 * 0.83 + 0.071);
                for datum in [Datum::Gcj02, Datum::Bd09] {
                    let there = datum.from_wgs84(wgs.0, wgs.1);
                    let back = datum.to_wgs84(there.0, there.1);
                    worst = worst.max(metres(wgs, back));
                }
            }
        }
        assert!(worst < 1e-3, "worst round trip error {worst} m");
    }

    #[test]
    fn no_offset_outside_china() {
        for p in [(2.35, 48.85), (-74.0, 40.7), (139.7, 35.7), (100.0, -10.0)] {
            assert_eq!(Datum::Gcj02.from_wgs84(p.0, p.1), p);
            assert_eq!(Datum::Gcj02.to_wgs84(p.0, p.1), p);
        }
    }

    #[test]
    fn datum_names_parse() {
        assert_eq!("GCJ02".parse::<Datum>().unwrap(), Datum::Gcj02);
        assert_eq!("bd09".parse::<Datum>().unwrap(), Datum::Bd09);
        assert_eq!("EPSG:4490".parse::<Datum>().unwrap(), Datum::Cgcs2000);
        assert!("mars".parse::<Datum>().is_err());
        assert_eq!(Datum::default(), Datum::Wgs84);
    }
}
