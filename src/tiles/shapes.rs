//! What the polygon layers (`grids`, `zones`) share: polygons prepared once for every zoom on
//! shared arcs ([`Topology`]), their label points, and drawing them into one tile (vertices
//! shifted to the tile's datum, clipped to the tile plus its buffer, rounded, collapsed rings
//! dropped).

use std::ops::Range;
use std::sync::OnceLock;

use geo::{Area, BoundingRect};
use rstar::{AABB, primitives::Rectangle};

use super::clip::{area2, clip_ring, round_ring};
use super::mercator::{Q, TileFrame, dequantize, is_wgs84, shifted, source_bbox, to_quantized};
use super::topology::{PolygonIn, Topology};
use crate::crs::Datum;

/// Polygons on shared arcs, simplified per zoom, with every vertex's shifted position for the
/// GCJ-02 / BD-09 maps computed on the first tile asked in that datum (the shift is the costly
/// part of drawing a vertex).
pub struct Shapes {
    topo: Topology,
    shifted: [OnceLock<Vec<[f64; 2]>>; 2],
}

/// Reused buffers of one tile's drawing.
#[derive(Default)]
struct Scratch {
    pts: Vec<[f64; 2]>,
    clipped: Vec<[f64; 2]>,
    tmp: Vec<[f64; 2]>,
    ring: Vec<[i32; 2]>,
    rings: Vec<Vec<[i32; 2]>>,
}

impl Shapes {
    pub fn new() -> Shapes {
        Shapes { topo: Topology::new(), shifted: [OnceLock::new(), OnceLock::new()] }
    }

    /// Adds one group of polygons whose shared edges must stay shared (one grid level, or all
    /// the zones); see [`Topology::add_level`].
    pub fn add_group(&mut self, polygons: &[PolygonIn], extent: u32, max_zoom: u8) -> Vec<Option<u32>> {
        self.topo.add_level(polygons, extent, max_zoom)
    }

    /// Number of arcs and arc vertices after deduplication.
    pub fn sizes(&self) -> (usize, usize) {
        self.topo.sizes()
    }

    /// Heap bytes held (approximate).
    pub fn heap_bytes(&self) -> usize {
        self.topo.heap_bytes() + self.shifted.iter().filter_map(OnceLock::get).map(|v| v.capacity() * 16).sum::<usize>()
    }

    /// A painter of tile `frame` in `datum`, clipping to the tile plus `buffer` units.
    pub fn painter<'a>(&'a self, frame: &'a TileFrame, datum: Datum, extent: u32, buffer: u32) -> Painter<'a> {
        let moved: &[[f64; 2]] = match datum {
            Datum::Gcj02 | Datum::Bd09 => {
                let slot = &self.shifted[usize::from(datum == Datum::Bd09)];
                slot.get_or_init(|| self.topo.points().iter().map(|&p| shifted(p, datum)).collect())
            }
            Datum::Wgs84 | Datum::Cgcs2000 => &[],
        };
        Painter { topo: &self.topo, frame, moved, wgs: is_wgs84(datum), lo: -(buffer as f64), hi: extent as f64 + buffer as f64, s: Scratch::default() }
    }
}

/// Draws polygons of one [`Shapes`] into one tile.
pub struct Painter<'a> {
    topo: &'a Topology,
    frame: &'a TileFrame,
    moved: &'a [[f64; 2]],
    wgs: bool,
    lo: f64,
    hi: f64,
    s: Scratch,
}

impl Painter<'_> {
    /// The rings of polygons `polys` as drawn at the tile's zoom, in integer tile coordinates:
    /// each polygon's exterior (positive area) then its holes (negative), clipped to the tile
    /// plus the buffer. A ring that collapses is dropped, an exterior with its holes. Empty if
    /// nothing is left.
    pub fn rings(&mut self, polys: Range<u32>) -> &[Vec<[i32; 2]>] {
        let (frame, moved, wgs, lo, hi) = (self.frame, self.moved, self.wgs, self.lo, self.hi);
        let map = |i: usize, p: [u32; 2]| if wgs { frame.q_to_tile(p) } else { frame.to_tile(moved[i]) };
        let s = &mut self.s;
        s.rings.clear();
        for poly in polys {
            let rings = self.topo.polygon_rings(poly);
            for (k, r) in rings.enumerate() {
                let exterior = k == 0;
                s.pts.clear();
                self.topo.ring_at(r, frame.z, &mut s.pts, map);
                if s.pts.len() < 3 {
                    if exterior {
                        break;
                    }
                    continue;
                }
                let (mut x0, mut y0, mut x1, mut y1) = (f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY);
                for p in &s.pts {
                    x0 = x0.min(p[0]);
                    y0 = y0.min(p[1]);
                    x1 = x1.max(p[0]);
                    y1 = y1.max(p[1]);
                }
                let src = if x1 < lo || y1 < lo || x0 > hi || y0 > hi {
                    s.clipped.clear();
                    &s.clipped
                } else if x0 >= lo && y0 >= lo && x1 <= hi && y1 <= hi {
                    &s.pts
                } else {
                    clip_ring(&s.pts, lo, hi, &mut s.clipped, &mut s.tmp);
                    &s.clipped
                };
                round_ring(src, &mut s.ring);
                let a = area2(&s.ring);
                let ok = s.ring.len() >= 3 && if exterior { a > 0 } else { a < 0 };
                if !ok {
                    if exterior {
                        break; // a collapsed exterior drops its holes too
                    }
                    continue;
                }
                s.rings.push(s.ring.clone());
            }
        }
        &s.rings
    }
}

/// The R-tree envelope (quantised world) of the WGS84 points tile `frame` of the `datum` map
/// shows, with `buffer` tile units around it.
pub fn envelope(frame: &TileFrame, datum: Datum, buffer: u32) -> AABB<[i64; 2]> {
    let b = source_bbox(frame, datum, buffer as f64);
    let q = |v: f64| (v * Q).floor() as i64;
    AABB::from_corners([q(b[0]), q(b[1])], [q(b[2]) + 1, q(b[3]) + 1])
}

/// A polygon's rings quantised (exterior first), as [`Topology`] takes them.
pub fn quantized(p: &geo_types::Polygon<f64>) -> PolygonIn {
    let q = |ls: &geo_types::LineString<f64>| ls.0.iter().map(|c| to_quantized(c.x, c.y)).collect::<Vec<_>>();
    PolygonIn { rings: std::iter::once(q(p.exterior())).chain(p.interiors().iter().map(q)).collect() }
}

/// The bounding box of the exterior rings of `polys` (quantised world), for an R-tree.
pub fn bbox(polys: &[PolygonIn]) -> Rectangle<[i64; 2]> {
    let mut b = [i64::MAX, i64::MAX, i64::MIN, i64::MIN];
    for p in polys {
        for pt in &p.rings[0] {
            b = [b[0].min(pt[0] as i64), b[1].min(pt[1] as i64), b[2].max(pt[0] as i64), b[3].max(pt[1] as i64)];
        }
    }
    Rectangle::from_corners([b[0], b[1]], [b[2], b[3]])
}

/// The label point of a feature made of `polys` (quantised world): the pole of inaccessibility
/// (Mapbox's polylabel) of its largest polygon, to 1/200 of that polygon's size; its first
/// vertex if the search cannot run; `[0, 0]` without a polygon.
pub fn label_point(polys: &[PolygonIn]) -> [u32; 2] {
    let mut best: Option<(f64, geo_types::Polygon<f64>)> = None;
    for p in polys {
        let ring = |r: &Vec<[u32; 2]>| -> geo_types::LineString<f64> { r.iter().map(|p| geo_types::Coord { x: p[0] as f64, y: p[1] as f64 }).collect() };
        let f = geo_types::Polygon::new(ring(&p.rings[0]), p.rings[1..].iter().map(ring).collect());
        let area = f.unsigned_area();
        if best.as_ref().is_none_or(|b| area > b.0) && p.rings[0].len() >= 3 {
            best = Some((area, f));
        }
    }
    match best {
        Some((_, polygon)) => {
            let size = polygon.bounding_rect().map_or(0.0, |r| r.width().max(r.height()));
            let first = polygon.exterior().0[0];
            let p = polylabel::polylabel(&polygon, &(size / 200.0).max(1.0)).map_or(first, |p| p.0);
            [p.x.clamp(0.0, u32::MAX as f64) as u32, p.y.clamp(0.0, u32::MAX as f64) as u32]
        }
        None => [0, 0],
    }
}

/// A label point (quantised WGS84 world) in tile coordinates, if it lies in tile `frame` of the
/// `datum` map: a label belongs to exactly one tile per zoom, so it is not repeated in the
/// buffer of its neighbours.
pub fn label_in_tile(label: [u32; 2], frame: &TileFrame, datum: Datum) -> Option<[i32; 2]> {
    let w = if is_wgs84(datum) { dequantize(label) } else { shifted(label, datum) };
    if !frame.contains_world(w) {
        return None;
    }
    let t = frame.to_tile(w);
    Some([t[0].floor() as i32, t[1].floor() as i32])
}
