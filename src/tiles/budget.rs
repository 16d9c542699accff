//! Tile sizes of a city against a budget (`citygrid tile-sizes`): at every zoom, the densest
//! tiles and an even spread of the others are encoded and measured, so that a GIS office can
//! see before it serves a city whether a map client will get a tile over the budget (MapLibre
//! and most CDNs are comfortable up to ~500 KB of uncompressed MVT).
//!
//! Which tiles: a tile's weight is the number of components whose location (WGS84) falls in
//! it; tiles that hold a grid's or a zone's bounding-box centre but no component weigh 0 but
//! are still candidates, so a city of grids (or zones) only is measured too. At a zoom with at most
//! [`ALL_TILES_UP_TO`] candidates every one is encoded; above that the
//! [`DENSEST`] heaviest (ties by x, then y) and an even spread of about as many of the rest.
//! Sizes are of the uncompressed tile bytes, as encoded for the datums asked (a GCJ-02 tile
//! of the same x/y holds shifted geometry, so both datums are measured when asked).

use std::collections::HashMap;

use serde::Serialize;

use super::{Layer, TileError, TileSet, mercator};
use crate::crs::Datum;
use crate::model::City;

/// Zooms with at most this many candidate tiles encode every one of them.
pub const ALL_TILES_UP_TO: usize = 300;
/// Above [`ALL_TILES_UP_TO`], the number of densest tiles measured (plus an even spread of
/// about as many of the rest).
pub const DENSEST: usize = 100;

/// One tile measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TileSize {
    pub z: u8,
    pub x: u32,
    pub y: u32,
    /// `wgs84` or `gcj02`: the datum of the largest encoding of this tile.
    pub datum: &'static str,
    /// Uncompressed MVT bytes (0: the tile is empty).
    pub bytes: usize,
    /// Components located in the tile.
    pub components: usize,
}

/// The tiles measured at one zoom.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ZoomSizes {
    pub zoom: u8,
    /// Candidate tiles at this zoom (holding a component, or a grid's or a zone's centre).
    pub candidates: usize,
    /// Tiles encoded.
    pub measured: usize,
    /// The largest tile measured.
    pub largest: TileSize,
    /// Median size of the tiles measured, bytes.
    pub median_bytes: usize,
    /// Components in the densest tile of the zoom.
    pub densest_components: usize,
}

/// Every zoom `0..=max_zoom` of `set`, measured for `layers` in each of `datums`.
///
/// `set` must have been built from `city`. A city with no grids, zones or components gives no zooms.
pub fn measure(set: &TileSet, city: &City, layers: &[Layer], datums: &[Datum]) -> Result<Vec<ZoomSizes>, TileError> {
    let quantized: Vec<[u32; 2]> = city.components.iter().map(|c| mercator::to_quantized(c.location.x, c.location.y)).collect();
    let outlines = city.grids.iter().map(|g| &g.geometry).chain(city.zones.iter().map(|z| &z.geometry));
    let centres: Vec<[u32; 2]> = outlines.filter_map(geo::BoundingRect::bounding_rect).map(|r| mercator::to_quantized(r.center().x, r.center().y)).collect();
    let mut zooms = Vec::new();
    for z in 0..=set.config().max_zoom {
        let tile = |p: &[u32; 2]| ((u64::from(p[0]) >> (32 - u32::from(z))) as u32, (u64::from(p[1]) >> (32 - u32::from(z))) as u32);
        let mut weight: HashMap<(u32, u32), usize> = HashMap::new();
        for p in &quantized {
            *weight.entry(tile(p)).or_default() += 1;
        }
        for p in &centres {
            weight.entry(tile(p)).or_default();
        }
        if weight.is_empty() {
            continue;
        }
        let mut tiles: Vec<((u32, u32), usize)> = weight.into_iter().collect();
        tiles.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let sample: Vec<&((u32, u32), usize)> = if tiles.len() <= ALL_TILES_UP_TO {
            tiles.iter().collect()
        } else {
            let step = (tiles.len() - DENSEST).div_ceil(DENSEST).max(1);
            tiles.iter().take(DENSEST).chain(tiles.iter().skip(DENSEST).step_by(step)).collect()
        };
        let mut sizes = Vec::with_capacity(sample.len());
        for &&((x, y), components) in &sample {
            let mut best = TileSize { z, x, y, datum: datum_name(datums.first().copied().unwrap_or(Datum::Wgs84)), bytes: 0, components };
            for &datum in datums {
                let bytes = set.encode(city, layers, z, x, y, datum)?.map_or(0, |b| b.len());
                if bytes > best.bytes {
                    best.bytes = bytes;
                    best.datum = datum_name(datum);
                }
            }
            sizes.push(best);
        }
        let mut by_size: Vec<usize> = sizes.iter().map(|s| s.bytes).collect();
        by_size.sort_unstable();
        let largest = sizes
            .iter()
            .max_by(|a, b| a.bytes.cmp(&b.bytes).then(b.x.cmp(&a.x)).then(b.y.cmp(&a.y)))
            .cloned()
            .expect("a zoom with candidates measures at least one tile");
        zooms.push(ZoomSizes {
            zoom: z,
            candidates: tiles.len(),
            measured: sizes.len(),
            median_bytes: by_size[by_size.len() / 2],
            densest_components: tiles[0].1,
            largest,
        });
    }
    Ok(zooms)
}

fn datum_name(datum: Datum) -> &'static str {
    match datum {
        Datum::Wgs84 => "wgs84",
        Datum::Cgcs2000 => "cgcs2000",
        Datum::Gcj02 => "gcj02",
        Datum::Bd09 => "bd09",
    }
}
