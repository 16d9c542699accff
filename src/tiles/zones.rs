//! The `zones` layer: responsibility polygons (责任区) from their zoom on, and one label point
//! per zone.

use rstar::{RTree, primitives::GeomWithData, primitives::Rectangle};

use super::encoder::{LayerBuilder, str_value};
use super::mercator::TileFrame;
use super::shapes::{Shapes, bbox, envelope, label_in_tile, label_point, quantized};
use super::vector_tile::tile::GeomType;
use crate::crs::Datum;
use crate::model::City;

/// Property keys of the `zones` layer, in dictionary order.
pub const KEYS: [&str; 4] = ["layer", "id", "name", "unit"];

type Entry = GeomWithData<Rectangle<[i64; 2]>, u32>;

/// One zone as the layer draws it.
struct ZoneFeature {
    /// Index in `City::zones`; the MVT feature id is this plus one.
    zone: u32,
    /// Index of its zone layer in [`ZoneLayer::layers`].
    layer: u32,
    /// Its polygons in the shapes.
    polys: std::ops::Range<u32>,
    /// Label point (pole of inaccessibility of its largest polygon), quantised world.
    label: [u32; 2],
}

/// Every zone, simplified per zoom and ready to clip.
pub struct ZoneLayer {
    shapes: Shapes,
    features: Vec<ZoneFeature>,
    tree: RTree<Entry>,
    /// Zone layer names (`roads`, `rivers`, …), ascending, with their number of zones.
    layers: Vec<(String, u32)>,
}

impl ZoneLayer {
    /// All the zones go into one group of shared arcs: two zones that share an edge (the
    /// sections of one road) keep drawing one seam; zones that overlap are drawn each whole.
    pub fn build(city: &City, extent: u32, max_zoom: u8) -> ZoneLayer {
        let mut layers: Vec<(String, u32)> = Vec::new();
        for z in &city.zones {
            match layers.binary_search_by(|(name, _)| name.as_str().cmp(&z.layer)) {
                Ok(i) => layers[i].1 += 1,
                Err(i) => layers.insert(i, (z.layer.clone(), 1)),
            }
        }
        let mut polys = Vec::new();
        // (zone index, first input polygon, polygon count, label)
        let mut zones: Vec<(u32, usize, usize, [u32; 2])> = Vec::new();
        for (i, z) in city.zones.iter().enumerate() {
            let first = polys.len();
            polys.extend(z.geometry.iter().map(quantized));
            zones.push((i as u32, first, polys.len() - first, label_point(&polys[first..])));
        }
        let mut shapes = Shapes::new();
        let index = shapes.add_group(&polys, extent, max_zoom);
        let mut features = Vec::new();
        let mut entries = Vec::new();
        for (zone, first, n, label) in zones {
            let kept: Vec<u32> = index[first..first + n].iter().flatten().copied().collect();
            let (Some(&lo), Some(&hi)) = (kept.first(), kept.last()) else { continue };
            let name = &city.zones[zone as usize].layer;
            let layer = layers.binary_search_by(|(l, _)| l.as_str().cmp(name)).expect("counted above") as u32;
            entries.push(GeomWithData::new(bbox(&polys[first..first + n]), features.len() as u32));
            features.push(ZoneFeature { zone, layer, polys: lo..hi + 1, label });
        }
        ZoneLayer { shapes, features, tree: RTree::bulk_load(entries), layers }
    }

    /// Zone layer names, ascending, with their number of zones.
    pub fn layers(&self) -> &[(String, u32)] {
        &self.layers
    }

    /// Heap bytes held (approximate).
    pub fn heap_bytes(&self) -> usize {
        self.shapes.heap_bytes() + self.features.capacity() * (std::mem::size_of::<ZoneFeature>() + 64)
    }

    /// Adds the tile's features: the polygons of the zones that reach into the tile plus
    /// `buffer` (clipped to it), in the order of `City::zones`, then the label points that
    /// fall in the tile itself.
    pub fn encode(&self, city: &City, frame: &TileFrame, datum: Datum, extent: u32, buffer: u32, out: &mut LayerBuilder) {
        let env = envelope(frame, datum, buffer);
        let mut hits: Vec<u32> = self.tree.locate_in_envelope_intersecting(&env).map(|e| e.data).collect();
        hits.sort_unstable();
        let mut painter = self.shapes.painter(frame, datum, extent, buffer);
        for &fi in &hits {
            let f = &self.features[fi as usize];
            let rings = painter.rings(f.polys.clone());
            if rings.is_empty() {
                continue;
            }
            let mut feat = out.begin_feature(Some(f.zone as u64 + 1), GeomType::Polygon);
            self.tags(city, f, out, &mut feat.tags);
            for ring in rings {
                out.ring(&mut feat, ring);
            }
            out.end_feature(feat);
        }
        for &fi in &hits {
            let f = &self.features[fi as usize];
            let Some(p) = label_in_tile(f.label, frame, datum) else { continue };
            let mut feat = out.begin_feature(Some(f.zone as u64 + 1), GeomType::Point);
            self.tags(city, f, out, &mut feat.tags);
            out.point(&mut feat, p);
            out.end_feature(feat);
        }
    }

    /// `layer`, `id`, `name`, and `unit` (the unit's name; absent for a zone without one).
    fn tags(&self, city: &City, f: &ZoneFeature, out: &mut LayerBuilder, tags: &mut Vec<u32>) {
        let z = &city.zones[f.zone as usize];
        let layer = out.shared(0, f.layer as u64, || str_value(self.layers[f.layer as usize].0.as_str()));
        let id = out.shared(1, f.zone as u64, || str_value(z.id.as_str()));
        let name = out.shared(2, f.zone as u64, || str_value(z.name.as_str()));
        tags.extend_from_slice(&[0, layer, 1, id, 2, name]);
        if let Some(u) = z.unit {
            let unit = out.shared(3, u.0 as u64, || str_value(city.units.get(u).name.as_str()));
            tags.extend_from_slice(&[3, unit]);
        }
    }
}
