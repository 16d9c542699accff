//! The `grids` layer: grid polygons of every level shown at the zoom, and one label point
//! per grid.

use std::sync::OnceLock;

use geo::{Area, BoundingRect};

use rstar::{AABB, RTree, primitives::GeomWithData, primitives::Rectangle};

use super::clip::{area2, clip_ring, round_ring};
use super::encoder::{LayerBuilder, str_value, uint_value};
use super::mercator::{TileFrame, dequantize, is_wgs84, shifted, source_bbox, to_quantized};
use super::topology::{PolygonIn, Topology};
use super::vector_tile::tile::GeomType;
use crate::crs::Datum;
use crate::model::City;

/// Property keys of the `grids` layer, in dictionary order.
pub const KEYS: [&str; 4] = ["code", "name", "level", "level_name"];

type Entry = GeomWithData<Rectangle<[i64; 2]>, u32>;

/// One grid as the layer draws it.
struct GridFeature {
    /// Index in `City::grids`.
    grid: u32,
    /// Its polygons in the topology.
    polys: std::ops::Range<u32>,
    /// The grid code as a number: the MVT feature id.
    id: u64,
    /// Label point (pole of inaccessibility of its largest polygon), quantised world.
    label: [u32; 2],
}

/// Grids of one hierarchy level.
struct Level {
    features: Vec<GridFeature>,
    tree: RTree<Entry>,
}

/// Every level's grids, simplified per zoom and ready to clip.
pub struct GridLayer {
    topo: Topology,
    levels: Vec<Level>,
    level_names: Vec<String>,
    /// Every arc vertex shifted to GCJ-02 / BD-09 (world coordinates), computed on the first
    /// tile asked in that datum: the shift is the costly part of drawing a vertex.
    shifted: [OnceLock<Vec<[f64; 2]>>; 2],
}

/// Reused buffers.
#[derive(Default)]
struct Scratch {
    pts: Vec<[f64; 2]>,
    clipped: Vec<[f64; 2]>,
    tmp: Vec<[f64; 2]>,
    ring: Vec<[i32; 2]>,
    rings: Vec<Vec<[i32; 2]>>,
}

impl GridLayer {
    pub fn build(city: &City, extent: u32, max_zoom: u8) -> GridLayer {
        let mut topo = Topology::new();
        let mut levels = Vec::new();
        for level in 0..city.hierarchy.levels.len() {
            let mut polys = Vec::new();
            // (grid index, first input polygon, polygon count, label)
            let mut grids: Vec<(u32, usize, usize, [u32; 2])> = Vec::new();
            for (id, g) in city.grids_at(level) {
                let first = polys.len();
                let mut best: Option<(f64, geo_types::Polygon<f64>)> = None;
                for p in &g.geometry {
                    let q = |ls: &geo_types::LineString<f64>| ls.0.iter().map(|c| to_quantized(c.x, c.y)).collect::<Vec<_>>();
                    let rings: Vec<Vec<[u32; 2]>> = std::iter::once(q(p.exterior())).chain(p.interiors().iter().map(q)).collect();
                    let ring = |r: &Vec<[u32; 2]>| -> geo_types::LineString<f64> {
                        r.iter().map(|p| geo_types::Coord { x: p[0] as f64, y: p[1] as f64 }).collect()
                    };
                    let f = geo_types::Polygon::new(ring(&rings[0]), rings[1..].iter().map(ring).collect());
                    let area = f.unsigned_area();
                    if best.as_ref().is_none_or(|b| area > b.0) && rings[0].len() >= 3 {
                        best = Some((area, f));
                    }
                    polys.push(PolygonIn { rings });
                }
                let label = match best {
                    Some((_, polygon)) => {
                        // The pole of inaccessibility (Mapbox's polylabel), to 1/200 of the
                        // polygon's size; the first vertex if the search cannot run.
                        let size = polygon.bounding_rect().map_or(0.0, |r| r.width().max(r.height()));
                        let first = polygon.exterior().0[0];
                        let p = polylabel::polylabel(&polygon, &(size / 200.0).max(1.0)).map_or(first, |p| p.0);
                        [p.x.clamp(0.0, u32::MAX as f64) as u32, p.y.clamp(0.0, u32::MAX as f64) as u32]
                    }
                    None => [0, 0],
                };
                grids.push((id.0, first, polys.len() - first, label));
            }
            let index = topo.add_level(&polys, extent, max_zoom);
            let mut features = Vec::new();
            let mut entries = Vec::new();
            for (grid, first, n, label) in grids {
                let kept: Vec<u32> = index[first..first + n].iter().flatten().copied().collect();
                let (Some(&lo), Some(&hi)) = (kept.first(), kept.last()) else { continue };
                let mut b = [i64::MAX, i64::MAX, i64::MIN, i64::MIN];
                for p in &polys[first..first + n] {
                    for pt in &p.rings[0] {
                        b = [b[0].min(pt[0] as i64), b[1].min(pt[1] as i64), b[2].max(pt[0] as i64), b[3].max(pt[1] as i64)];
                    }
                }
                let g = &city.grids[grid as usize];
                let id = g.code.to_string().parse::<u64>().unwrap_or(grid as u64);
                entries.push(GeomWithData::new(Rectangle::from_corners([b[0], b[1]], [b[2], b[3]]), features.len() as u32));
                features.push(GridFeature { grid, polys: lo..hi + 1, id, label });
            }
            levels.push(Level { features, tree: RTree::bulk_load(entries) });
        }
        let level_names = city.hierarchy.levels.iter().map(|l| l.name.clone()).collect();
        GridLayer { topo, levels, level_names, shifted: [OnceLock::new(), OnceLock::new()] }
    }

    /// Heap bytes held (approximate).
    pub fn heap_bytes(&self) -> usize {
        self.topo.heap_bytes()
            + self.shifted.iter().filter_map(OnceLock::get).map(|v| v.capacity() * 16).sum::<usize>()
            + self.levels.iter().map(|l| l.features.capacity() * std::mem::size_of::<GridFeature>() + l.features.len() * 64).sum::<usize>()
    }

    /// Number of arcs and arc vertices after deduplication.
    pub fn topology_sizes(&self) -> (usize, usize) {
        self.topo.sizes()
    }

    /// Adds the tile's features: first the polygons of every level whose `min_zoom` has been
    /// reached (clipped to the tile plus `buffer`), then the label points that fall in the tile
    /// itself (a label belongs to exactly one tile per zoom, so it is not repeated).
    #[allow(clippy::too_many_arguments)]
    pub fn encode(&self, city: &City, frame: &TileFrame, datum: Datum, extent: u32, buffer: u32, min_zoom: impl Fn(usize) -> u8, out: &mut LayerBuilder) {
        let z = frame.z;
        let b = source_bbox(frame, datum, buffer as f64);
        let q = |v: f64| (v * super::mercator::Q).floor() as i64;
        let env = AABB::from_corners([q(b[0]), q(b[1])], [q(b[2]) + 1, q(b[3]) + 1]);
        let (lo, hi) = (-(buffer as f64), extent as f64 + buffer as f64);
        let wgs = is_wgs84(datum);
        let moved: &[[f64; 2]] = match datum {
            Datum::Gcj02 | Datum::Bd09 => {
                let slot = &self.shifted[usize::from(datum == Datum::Bd09)];
                slot.get_or_init(|| self.topo.points().iter().map(|&p| shifted(p, datum)).collect())
            }
            Datum::Wgs84 | Datum::Cgcs2000 => &[],
        };
        let map = |i: usize, p: [u32; 2]| if wgs { frame.q_to_tile(p) } else { frame.to_tile(moved[i]) };
        let mut s = Scratch::default();
        let mut shown: Vec<(usize, Vec<u32>)> = Vec::new();
        for (level, data) in self.levels.iter().enumerate() {
            if z < min_zoom(level) {
                continue;
            }
            let mut hits: Vec<u32> = data.tree.locate_in_envelope_intersecting(&env).map(|e| e.data).collect();
            hits.sort_unstable();
            for &fi in &hits {
                let f = &data.features[fi as usize];
                s.rings.clear();
                for poly in f.polys.clone() {
                    let rings = self.topo.polygon_rings(poly);
                    for (k, r) in rings.enumerate() {
                        let exterior = k == 0;
                        s.pts.clear();
                        self.topo.ring_at(r, z, &mut s.pts, map);
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
                if s.rings.is_empty() {
                    continue;
                }
                let mut feat = out.begin_feature(Some(f.id), GeomType::Polygon);
                self.tags(city, level, f, out, &mut feat.tags);
                for ring in &s.rings {
                    out.ring(&mut feat, ring);
                }
                out.end_feature(feat);
            }
            shown.push((level, hits));
        }
        for (level, hits) in shown {
            for fi in hits {
                let f = &self.levels[level].features[fi as usize];
                let w = if wgs { dequantize(f.label) } else { shifted(f.label, datum) };
                if !frame.contains_world(w) {
                    continue;
                }
                let t = frame.to_tile(w);
                let mut feat = out.begin_feature(Some(f.id), GeomType::Point);
                self.tags(city, level, f, out, &mut feat.tags);
                out.point(&mut feat, [t[0].floor() as i32, t[1].floor() as i32]);
                out.end_feature(feat);
            }
        }
    }

    fn tags(&self, city: &City, level: usize, f: &GridFeature, out: &mut LayerBuilder, tags: &mut Vec<u32>) {
        let g = &city.grids[f.grid as usize];
        let code = out.shared(0, f.grid as u64, || str_value(g.code.to_string()));
        let name = out.shared(1, f.grid as u64, || str_value(g.name.as_str()));
        let lvl = out.shared(2, level as u64, || uint_value(level as u64 + 1));
        let lname = out.shared(3, level as u64, || str_value(self.level_names[level].as_str()));
        tags.extend_from_slice(&[0, code, 1, name, 2, lvl, 3, lname]);
    }
}

