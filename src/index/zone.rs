//! Which responsibility polygons (责任区) hold a point: an R-tree of their bounding boxes, then
//! an exact test. A point on a zone's edge is in it (a road section includes its kerb line).

use geo::{BoundingRect, Intersects};
use geo_types::{Coord, Point};
use rstar::RTree;
use rstar::primitives::{GeomWithData, Rectangle};

use crate::model::City;

type Entry = GeomWithData<Rectangle<[f64; 2]>, u32>;

/// The zones of one [`City`], by bounding box.
pub struct ZoneIndex {
    tree: RTree<Entry>,
}

impl ZoneIndex {
    pub fn build(city: &City) -> ZoneIndex {
        let entries = city
            .zones
            .iter()
            .enumerate()
            .filter_map(|(i, z)| {
                let r = z.geometry.bounding_rect()?;
                Some(GeomWithData::new(Rectangle::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]), i as u32))
            })
            .collect();
        ZoneIndex { tree: RTree::bulk_load(entries) }
    }

    /// Indexes into `city.zones` of the zones holding `p` (lon/lat WGS84), ascending — that is
    /// by layer, then id.
    pub fn containing(&self, city: &City, p: Coord<f64>) -> Vec<u32> {
        let mut hits: Vec<u32> =
            self.tree.locate_all_at_point(&[p.x, p.y]).map(|e| e.data).filter(|&i| city.zones[i as usize].geometry.intersects(&Point(p))).collect();
        hits.sort_unstable();
        hits
    }
}
