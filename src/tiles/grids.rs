//! The `grids` layer: grid polygons of every level shown at the zoom, and one label point
//! per grid.

use rstar::{RTree, primitives::GeomWithData, primitives::Rectangle};

use super::encoder::{LayerBuilder, str_value, uint_value};
use super::mercator::TileFrame;
use super::shapes::{Shapes, bbox, envelope, label_in_tile, label_point, quantized};
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
    shapes: Shapes,
    levels: Vec<Level>,
    level_names: Vec<String>,
}

impl GridLayer {
    pub fn build(city: &City, extent: u32, max_zoom: u8) -> GridLayer {
        let mut shapes = Shapes::new();
        let mut levels = Vec::new();
        for level in 0..city.hierarchy.levels.len() {
            let mut polys = Vec::new();
            // (grid index, first input polygon, polygon count, label)
            let mut grids: Vec<(u32, usize, usize, [u32; 2])> = Vec::new();
            for (id, g) in city.grids_at(level) {
                let first = polys.len();
                polys.extend(g.geometry.iter().map(quantized));
                grids.push((id.0, first, polys.len() - first, label_point(&polys[first..])));
            }
            let index = shapes.add_group(&polys, extent, max_zoom);
            let mut features = Vec::new();
            let mut entries = Vec::new();
            for (grid, first, n, label) in grids {
                let kept: Vec<u32> = index[first..first + n].iter().flatten().copied().collect();
                let (Some(&lo), Some(&hi)) = (kept.first(), kept.last()) else { continue };
                let g = &city.grids[grid as usize];
                let id = g.code.to_string().parse::<u64>().unwrap_or(grid as u64);
                entries.push(GeomWithData::new(bbox(&polys[first..first + n]), features.len() as u32));
                features.push(GridFeature { grid, polys: lo..hi + 1, id, label });
            }
            levels.push(Level { features, tree: RTree::bulk_load(entries) });
        }
        let level_names = city.hierarchy.levels.iter().map(|l| l.name.clone()).collect();
        GridLayer { shapes, levels, level_names }
    }

    /// Heap bytes held (approximate).
    pub fn heap_bytes(&self) -> usize {
        self.shapes.heap_bytes() + self.levels.iter().map(|l| l.features.capacity() * std::mem::size_of::<GridFeature>() + l.features.len() * 64).sum::<usize>()
    }

    /// Number of arcs and arc vertices after deduplication.
    pub fn topology_sizes(&self) -> (usize, usize) {
        self.shapes.sizes()
    }

    /// Adds the tile's features: first the polygons of every level whose `min_zoom` has been
    /// reached (clipped to the tile plus `buffer`), then the label points that fall in the tile
    /// itself (a label belongs to exactly one tile per zoom, so it is not repeated).
    #[allow(clippy::too_many_arguments)]
    pub fn encode(&self, city: &City, frame: &TileFrame, datum: Datum, extent: u32, buffer: u32, min_zoom: impl Fn(usize) -> u8, out: &mut LayerBuilder) {
        let z = frame.z;
        let env = envelope(frame, datum, buffer);
        let mut painter = self.shapes.painter(frame, datum, extent, buffer);
        let mut shown: Vec<(usize, Vec<u32>)> = Vec::new();
        for (level, data) in self.levels.iter().enumerate() {
            if z < min_zoom(level) {
                continue;
            }
            let mut hits: Vec<u32> = data.tree.locate_in_envelope_intersecting(&env).map(|e| e.data).collect();
            hits.sort_unstable();
            for &fi in &hits {
                let f = &data.features[fi as usize];
                let rings = painter.rings(f.polys.clone());
                if rings.is_empty() {
                    continue;
                }
                let mut feat = out.begin_feature(Some(f.id), GeomType::Polygon);
                self.tags(city, level, f, out, &mut feat.tags);
                for ring in rings {
                    out.ring(&mut feat, ring);
                }
                out.end_feature(feat);
            }
            shown.push((level, hits));
        }
        for (level, hits) in shown {
            for fi in hits {
                let f = &self.levels[level].features[fi as usize];
                let Some(p) = label_in_tile(f.label, frame, datum) else { continue };
                let mut feat = out.begin_feature(Some(f.id), GeomType::Point);
                self.tags(city, level, f, out, &mut feat.tags);
                out.point(&mut feat, p);
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
