//! Web Mercator (EPSG:3857) in "world" units, the XYZ tile scheme, and Morton keys.
//!
//! World coordinates are the unit square: x from 0 (180°W) to 1 (180°E), y from 0 (85.05°N)
//! to 1 (85.05°S), y down like tile coordinates. Layers store them quantised to `u32`
//! (2^32 steps, 0.93 cm at the equator), so tile membership is exact integer arithmetic:
//! tile x at zoom z of a quantised x is `x >> (32 - z)`.

use std::f64::consts::PI;

use crate::crs::Datum;

/// Latitude limit of Web Mercator.
pub const MAX_LAT: f64 = 85.051_128_779_806_59;
/// 2^32: quantised world units per world.
pub const Q: f64 = 4_294_967_296.0;

/// lon/lat (degrees) → world coordinates (0..1, y down).
#[inline]
pub fn to_world(lon: f64, lat: f64) -> [f64; 2] {
    let x = (lon + 180.0) / 360.0;
    let phi = lat.clamp(-MAX_LAT, MAX_LAT).to_radians();
    let y = 0.5 - (phi.tan() + 1.0 / phi.cos()).ln() / (2.0 * PI);
    [x, y]
}

/// World coordinates → lon/lat (degrees).
#[inline]
pub fn to_lonlat(w: [f64; 2]) -> (f64, f64) {
    let lon = w[0] * 360.0 - 180.0;
    let lat = (PI * (1.0 - 2.0 * w[1])).sinh().atan().to_degrees();
    (lon, lat)
}

/// A world coordinate quantised to `u32` (floor, clamped to the world).
#[inline]
pub fn quantize(w: f64) -> u32 {
    (w * Q).floor().clamp(0.0, Q - 1.0) as u32
}

/// lon/lat → quantised world coordinates.
#[inline]
pub fn to_quantized(lon: f64, lat: f64) -> [u32; 2] {
    let w = to_world(lon, lat);
    [quantize(w[0]), quantize(w[1])]
}

/// Quantised world coordinates → world coordinates (exact).
#[inline]
pub fn dequantize(p: [u32; 2]) -> [f64; 2] {
    [p[0] as f64 / Q, p[1] as f64 / Q]
}

/// A quantised world point shifted from WGS84 to `datum`, in world coordinates.
#[inline]
pub fn shifted(p: [u32; 2], datum: Datum) -> [f64; 2] {
    let (lon, lat) = to_lonlat(dequantize(p));
    let (lon, lat) = datum.from_wgs84(lon, lat);
    to_world(lon, lat)
}

/// True if `datum` is WGS84 itself (no shift).
#[inline]
pub fn is_wgs84(datum: Datum) -> bool {
    matches!(datum, Datum::Wgs84 | Datum::Cgcs2000)
}

fn spread(v: u32) -> u64 {
    let mut x = v as u64;
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    x = (x | (x << 1)) & 0x5555_5555_5555_5555;
    x
}

fn compact(v: u64) -> u32 {
    let mut x = v & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x >> 16)) & 0x0000_0000_FFFF_FFFF;
    x as u32
}

/// Morton (Z-order) key of a quantised point: x bits at odd positions, y bits at even ones.
/// The points of one tile at any zoom form one contiguous key range ([`tile_key_range`]).
#[inline]
pub fn morton(p: [u32; 2]) -> u64 {
    (spread(p[0]) << 1) | spread(p[1])
}

/// The quantised point of a Morton key.
#[inline]
pub fn unmorton(key: u64) -> [u32; 2] {
    [compact(key >> 1), compact(key)]
}

/// Quantised units per tile side at zoom `z` (as u64: 2^32 at z0).
#[inline]
pub fn tile_span(z: u8) -> u64 {
    1u64 << (32 - z as u32)
}

/// Inclusive Morton key range of the points in tile z/x/y.
pub fn tile_key_range(z: u8, x: u32, y: u32) -> (u64, u64) {
    let span = tile_span(z);
    let (x0, y0) = (x as u64 * span, y as u64 * span);
    let lo = morton([x0 as u32, y0 as u32]);
    let hi = morton([(x0 + span - 1) as u32, (y0 + span - 1) as u32]);
    (lo, hi)
}

/// The tile at zoom z holding a quantised point (x, y).
#[cfg(test)]
pub fn tile_of(p: [u32; 2], z: u8) -> (u32, u32) {
    let shift = 32 - z as u32;
    (((p[0] as u64) >> shift) as u32, ((p[1] as u64) >> shift) as u32)
}

/// Maps world coordinates into the coordinates of one tile (0..extent, y down).
#[derive(Clone, Copy, Debug)]
pub struct TileFrame {
    pub z: u8,
    pub x: u32,
    pub y: u32,
    scale: f64,
    extent: f64,
}

impl TileFrame {
    pub fn new(z: u8, x: u32, y: u32, extent: u32) -> TileFrame {
        TileFrame { z, x, y, scale: (1u64 << z) as f64, extent: extent as f64 }
    }

    /// World → tile coordinates (not rounded).
    #[inline]
    pub fn to_tile(self, w: [f64; 2]) -> [f64; 2] {
        [(w[0] * self.scale - self.x as f64) * self.extent, (w[1] * self.scale - self.y as f64) * self.extent]
    }

    /// Quantised world → tile coordinates (not rounded).
    #[inline]
    pub fn q_to_tile(&self, p: [u32; 2]) -> [f64; 2] {
        self.to_tile(dequantize(p))
    }

    /// Tile → world coordinates.
    #[inline]
    pub fn to_world(self, t: [f64; 2]) -> [f64; 2] {
        [(t[0] / self.extent + self.x as f64) / self.scale, (t[1] / self.extent + self.y as f64) / self.scale]
    }

    /// True if world point `w` lies in this tile: x0 ≤ x < x1 and y0 ≤ y < y1.
    #[inline]
    pub fn contains_world(&self, w: [f64; 2]) -> bool {
        let (tx, ty) = (w[0] * self.scale - self.x as f64, w[1] * self.scale - self.y as f64);
        (0.0..1.0).contains(&tx) && (0.0..1.0).contains(&ty)
    }
}

/// The world bounding box (min x, min y, max x, max y) of WGS84 points that a tile of the
/// `datum` map can show, with `pad` tile units around the tile. For WGS84 this is the tile's
/// own box; for a shifted datum the tile's outline is sampled, mapped back to WGS84, and
/// widened by a margin covering the offset's slow variation (and its jump at the edge of the
/// area where GCJ-02 applies).
pub fn source_bbox(frame: &TileFrame, datum: Datum, pad: f64) -> [f64; 4] {
    let e = frame.extent;
    let lo = frame.to_world([-pad, -pad]);
    let hi = frame.to_world([e + pad, e + pad]);
    if is_wgs84(datum) {
        return [lo[0], lo[1], hi[0], hi[1]];
    }
    const N: usize = 8;
    let mut b = [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY];
    let mut near_edge = false;
    for i in 0..=N {
        for j in 0..=N {
            if i != 0 && i != N && j != 0 && j != N {
                continue;
            }
            let w = [lo[0] + (hi[0] - lo[0]) * i as f64 / N as f64, lo[1] + (hi[1] - lo[1]) * j as f64 / N as f64];
            let (lon, lat) = to_lonlat(w);
            let (wlon, wlat) = datum.to_wgs84(lon, lat);
            near_edge |= near_china_edge(lon, lat);
            let p = to_world(wlon, wlat);
            b = [b[0].min(p[0]), b[1].min(p[1]), b[2].max(p[0]), b[3].max(p[1])];
        }
    }
    // The offset's gradient is below ~0.5 %: 3 % of the tile side covers its curvature
    // between samples; 1e-7 of the world (4 m) covers the iteration's residue.
    let side = (hi[0] - lo[0]).max(hi[1] - lo[1]);
    let mut m = side * 0.03 + 1e-7;
    if near_edge {
        // Outside the box the offset drops to zero: take in everything an offset could move.
        m += 3e-5; // ≈ 1.2 km at the equator (the BD-09 + GCJ-02 offset is below 2 km)
    }
    [b[0] - m, b[1] - m, b[2] + m, b[3] + m]
}

/// True within ~2 km (in degrees) of the rectangle outside which GCJ-02 has no offset.
fn near_china_edge(lon: f64, lat: f64) -> bool {
    let d = 0.03;
    let near = |v: f64, a: f64| (v - a).abs() < d;
    near(lon, 72.004) || near(lon, 137.8347) || near(lat, 0.8293) || near(lat, 55.8271)
}

/// The tiles at zoom z that intersect a world bounding box, as x and y ranges (inclusive).
pub fn tiles_covering(b: [f64; 4], z: u8) -> (std::ops::RangeInclusive<u32>, std::ops::RangeInclusive<u32>) {
    let n = (1u64 << z) as f64;
    let max = ((1u64 << z) - 1) as f64;
    let t = |v: f64| (v * n).floor().clamp(0.0, max) as u32;
    (t(b[0])..=t(b[2]), t(b[1])..=t(b[3]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn world_round_trips_and_orients() {
        let w = to_world(116.397428, 39.909230);
        let (lon, lat) = to_lonlat(w);
        assert!((lon - 116.397428).abs() < 1e-9 && (lat - 39.909230).abs() < 1e-9);
        assert!(to_world(0.0, 10.0)[1] < 0.5, "north is up: y grows southwards");
        assert_eq!(to_world(-180.0, 0.0), [0.0, 0.5]);
    }

    #[test]
    fn morton_ranges_are_tiles() {
        let p = to_quantized(116.397428, 39.909230);
        assert_eq!(unmorton(morton(p)), p);
        for z in [0u8, 1, 5, 14, 18, 24, 32] {
            let (tx, ty) = tile_of(p, z);
            let (lo, hi) = tile_key_range(z, tx, ty);
            let k = morton(p);
            assert!(lo <= k && k <= hi, "z{z}");
            // The neighbours' ranges do not hold it.
            if z > 0 && tx + 1 < (1u64 << z) as u32 {
                let (lo, _) = tile_key_range(z, tx + 1, ty);
                assert!(k < lo || k > tile_key_range(z, tx + 1, ty).1);
            }
        }
        assert_eq!(tile_key_range(0, 0, 0), (0, u64::MAX));
    }

    #[test]
    fn tile_frame_maps_the_tile_to_its_extent() {
        let f = TileFrame::new(3, 5, 2, 4096);
        let lo = f.to_tile([5.0 / 8.0, 2.0 / 8.0]);
        let hi = f.to_tile([6.0 / 8.0, 3.0 / 8.0]);
        assert_eq!((lo, hi), ([0.0, 0.0], [4096.0, 4096.0]));
        assert!(f.contains_world([5.5 / 8.0, 2.0 / 8.0]));
        assert!(!f.contains_world([6.0 / 8.0, 2.5 / 8.0]), "the right edge belongs to the next tile");
    }
}
