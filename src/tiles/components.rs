//! The `components` layer: one point per component from `component_full_zoom` on, clusters
//! below it.
//!
//! Components are kept sorted by the Morton key of their quantised Web Mercator position, so
//! the components of any tile are one contiguous run found by binary search (24 bytes per
//! component: key, index, major class and status, and what a full-detail point writes — the
//! code as a number and a class index — so that a WGS84 tile's points are written from these
//! arrays read in order, without touching `City::components`, which a tile's run visits all
//! over memory).
//!
//! # Clusters
//! Below the full zoom (and in tiles the density guard clusters) a tile's components are
//! clustered greedily on their positions, density-adaptively (like supercluster, but within
//! the one tile): the tile is cut into [`CELLS`] × [`CELLS`] fine cells (16 px of a 512 px
//! tile); the non-empty cells, heaviest first (ties: Morton order), each start a cluster unless
//! already taken, and take every free cell whose mean lies within [`RADIUS_PER_TILE`] of a tile
//! side (48 px of a 512 px tile) of their own mean. A cluster is one point at the mean Web
//! Mercator position of all its components, with `point_count` and counts per major class and
//! per non-intact status. So a sparse area shows its components one by one (`point_count` 1,
//! at the component's own position: a component with no other within two radii is always
//! alone), a dense one a few heavy clusters at the centres of mass — never one bubble per
//! cell of a fixed lattice — and the cluster seeds are more than a radius apart.
//!
//! A component belongs to the one tile (and cell) that contains its position: tiles and cells
//! are half-open, `x0 ≤ x < x1`, `y0 ≤ y < y1` in Web Mercator (quantised to 2^-32 of the
//! world, ~1 cm), so a component on a tile edge belongs to the tile to its east / south.
//! Clusters never reach across a tile edge. The clusters of a tile therefore count exactly the
//! components inside it, and the clusters of all tiles of a zoom count every component once.
//! The same tile always gives the same clusters. Fine-cell aggregates are precomputed per zoom
//! at build while they stay few (at most 1/16 of the components, plus 1024); denser zooms
//! aggregate on the fly from the sorted run, which is one linear pass.

use super::encoder::{LayerBuilder, str_value, uint_value};
use super::mercator::{TileFrame, dequantize, is_wgs84, morton, shifted, source_bbox, tile_key_range, tiles_covering, to_quantized, to_world, unmorton};
use super::vector_tile::tile::GeomType;
use crate::crs::Datum;
use crate::model::{City, ClassCode, ComponentCode, Status};

/// Fine cells per tile side that clusters are built from (a power of two): 16 px of a 512 px
/// tile, a third of the cluster radius.
pub const CELLS: u32 = 32;
const CELL_BITS: u8 = 5;
/// Cluster radius as a fraction of the tile side: 3/32, i.e. 48 px of a 512 px tile (384 of
/// 4096 tile units).
pub const RADIUS_PER_TILE: f64 = 3.0 / 32.0;

/// The cell level (Morton bits per axis) of the fine cells of zoom `z`.
fn cell_level(z: u8) -> u8 {
    (z + CELL_BITS).min(32)
}

/// Property keys of component features. The name and the three units are not in the tile:
/// a popup asks `/v1/components/{code}` (this keeps a dense z16 tile ~25% smaller).
pub const KEYS: [&str; 4] = ["code", "class", "major", "status"];
/// Property keys of cluster features before the per-major counts (`count_01`, …).
pub const CLUSTER_KEYS: [&str; 4] = ["point_count", "damaged", "missing", "occupied"];

fn status_index(s: Status) -> u16 {
    match s {
        Status::Intact => 0,
        Status::Damaged => 1,
        Status::Missing => 2,
        Status::Occupied => 3,
    }
}

/// Cell aggregates of one zoom, sorted by key.
struct ClusterLevel {
    /// Smallest Morton key of the cell.
    keys: Vec<u64>,
    aggs: Vec<Agg>,
    /// Per cell, `majors` counts (stride = number of major classes).
    majors: Vec<u32>,
}

/// Aggregate of the components in one cell.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Agg {
    count: u32,
    sx: u64,
    sy: u64,
    /// Damaged, missing, occupied.
    status: [u32; 3],
}

pub struct ComponentLayer {
    keys: Vec<u64>,
    idx: Vec<u32>,
    /// major class index << 2 | status index.
    attr: Vec<u16>,
    /// The code of each component as the number its 16 digits spell (in key order): what a
    /// full-detail point writes, without reading `City::components` (all over memory).
    number: Vec<u64>,
    /// Index in `classes` of each component's class (in key order).
    class_ix: Vec<u16>,
    /// Classes present among the components, ascending.
    classes: Vec<ClassCode>,
    /// Major class codes (`01`, `02`, …) present among the components, ascending.
    majors: Vec<u8>,
    /// Per zoom below the full zoom: precomputed cells, if few enough.
    clusters: Vec<Option<ClusterLevel>>,
    full_zoom: u8,
}

impl ComponentLayer {
    pub fn build(city: &City, full_zoom: u8) -> ComponentLayer {
        let n = city.components.len();
        let majors: Vec<u8> = city.components.iter().map(|c| c.class.major()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        let mut major_index = [0u16; 256];
        for (i, &m) in majors.iter().enumerate() {
            major_index[m as usize] = i as u16;
        }
        let mut order: Vec<(u64, u32)> =
            city.components.iter().enumerate().map(|(i, c)| (morton(to_quantized(c.location.x, c.location.y)), i as u32)).collect();
        order.sort_unstable();
        let classes: Vec<ClassCode> = city.components.iter().map(|c| c.class).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        let mut keys = Vec::with_capacity(n);
        let mut idx = Vec::with_capacity(n);
        let mut attr = Vec::with_capacity(n);
        let mut number = Vec::with_capacity(n);
        let mut class_ix = Vec::with_capacity(n);
        for (k, i) in order {
            let c = &city.components[i as usize];
            keys.push(k);
            idx.push(i);
            attr.push(major_index[c.class.major() as usize] << 2 | status_index(c.status));
            number.push(code_number(c.code));
            // At most 100 × 100 classes: fits.
            class_ix.push(classes.binary_search(&c.class).expect("a class present") as u16);
        }
        let mut layer = ComponentLayer { keys, idx, attr, number, class_ix, classes, majors, clusters: Vec::new(), full_zoom };
        layer.precompute_clusters();
        layer
    }

    /// Major class codes present, ascending.
    pub fn majors(&self) -> &[u8] {
        &self.majors
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.keys.capacity() * 8
            + self.idx.capacity() * 4
            + self.attr.capacity() * 2
            + self.number.capacity() * 8
            + self.class_ix.capacity() * 2
            + self.classes.capacity() * 2
            + self
                .clusters
                .iter()
                .flatten()
                .map(|c| c.keys.capacity() * 8 + c.aggs.capacity() * std::mem::size_of::<Agg>() + c.majors.capacity() * 4)
                .sum::<usize>()
    }

    /// Zooms whose clusters are precomputed.
    pub fn precomputed_zooms(&self) -> Vec<u8> {
        self.clusters.iter().enumerate().filter(|(_, c)| c.is_some()).map(|(z, _)| z as u8).collect()
    }

    fn precompute_clusters(&mut self) {
        let n = self.keys.len();
        self.clusters = (0..self.full_zoom).map(|_| None).collect();
        if n == 0 {
            return;
        }
        // distinct[l] = number of non-empty cells at level l (0..=32).
        let mut shared_hist = [0usize; 33];
        for w in self.keys.windows(2) {
            let common = ((w[0] ^ w[1]).leading_zeros() / 2) as usize;
            shared_hist[common.min(32)] += 1;
        }
        let mut distinct = [1usize; 33];
        let mut below = 0;
        for l in 0..=32 {
            distinct[l] = 1 + below;
            if l < 32 {
                below += shared_hist[l];
            }
        }
        let limit = n / 16 + 1024;
        let top = (0..self.full_zoom).rev().find(|&z| distinct[cell_level(z) as usize] <= limit);
        let Some(top) = top else { return };
        // Finest precomputed level from the components, coarser ones by merging.
        let m = self.majors.len();
        let mut level = self.aggregate_range(0, n, cell_level(top));
        for z in (0..=top).rev() {
            let coarser = (z > 0).then(|| merge(&level, cell_level(z - 1), m));
            self.clusters[z as usize] = Some(level);
            match coarser {
                Some(c) => level = c,
                None => break,
            }
        }
    }

    /// Cells at `cell_level` of the sorted run `keys[a..b]`.
    fn aggregate_range(&self, a: usize, b: usize, cell_level: u8) -> ClusterLevel {
        let m = self.majors.len();
        let shift = 64 - 2 * cell_level as u32;
        let mut out = ClusterLevel { keys: Vec::new(), aggs: Vec::new(), majors: Vec::new() };
        let mut current = u64::MAX;
        let mut have = false;
        for i in a..b {
            let k = self.keys[i];
            let cell = if shift == 64 { 0 } else { k >> shift };
            if !have || cell != current {
                current = cell;
                have = true;
                out.keys.push(if shift == 64 { 0 } else { cell << shift });
                out.aggs.push(Agg::default());
                out.majors.extend(std::iter::repeat_n(0, m));
            }
            let p = unmorton(k);
            let agg = out.aggs.last_mut().expect("pushed");
            agg.count += 1;
            agg.sx += p[0] as u64;
            agg.sy += p[1] as u64;
            let at = self.attr[i];
            let st = (at & 3) as usize;
            if st > 0 {
                agg.status[st - 1] += 1;
            }
            let base = out.majors.len() - m;
            out.majors[base + (at >> 2) as usize] += 1;
        }
        out
    }

    /// Adds tile z/x/y's component or cluster features.
    /// The tiles of the WGS84 map whose components can land in `frame` (just itself in
    /// WGS84), and for a shifted datum the source box to filter them by.
    fn sources(frame: &TileFrame, datum: Datum) -> (Vec<(u32, u32)>, Option<[f64; 4]>) {
        if is_wgs84(datum) {
            return (vec![(frame.x, frame.y)], None);
        }
        let b = source_bbox(frame, datum, 0.0);
        let (xs, ys) = tiles_covering(b, frame.z);
        (ys.flat_map(|ty| xs.clone().map(move |tx| (tx, ty))).collect(), Some(b))
    }

    /// Whether tile `frame` is drawn as clusters: below the full zoom always; from it on when
    /// the tile's source area holds more than `max_points` components (the density guard;
    /// in a shifted datum the area is the WGS84 tiles it draws from, so it may cluster a
    /// little earlier than the WGS84 tile).
    pub fn clustered(&self, frame: &TileFrame, datum: Datum, max_points: u32) -> bool {
        frame.z < self.full_zoom || self.load(frame, datum) > max_points as usize
    }

    /// The number of components tile `frame` draws from: those of its source area (the tile
    /// itself in WGS84, the WGS84 tiles it draws from in a shifted datum).
    pub fn load(&self, frame: &TileFrame, datum: Datum) -> usize {
        let (sources, _) = Self::sources(frame, datum);
        sources
            .iter()
            .map(|&(tx, ty)| {
                let (a, b) = self.run(frame.z, tx, ty);
                b - a
            })
            .sum()
    }

    /// Encodes the tile's components, one point each or as clusters (see [`Self::clustered`]).
    pub fn encode(&self, city: &City, frame: &TileFrame, datum: Datum, clustered: bool, out: &mut LayerBuilder) {
        let (sources, bbox) = Self::sources(frame, datum);
        let mut values = PointValues::new(self.classes.len());
        for (tx, ty) in sources {
            if clustered {
                self.encode_clusters(frame, datum, tx, ty, out);
            } else {
                self.encode_points(city, frame, datum, bbox, tx, ty, &mut values, out);
            }
        }
    }

    fn run(&self, z: u8, tx: u32, ty: u32) -> (usize, usize) {
        let (lo, hi) = tile_key_range(z, tx, ty);
        let a = self.keys.partition_point(|&k| k < lo);
        let b = a + self.keys[a..].partition_point(|&k| k <= hi);
        (a, b)
    }

    /// The full-detail points of the WGS84 tile tx/ty that lie in `frame` (all of them in
    /// WGS84; in a shifted datum those whose WGS84 position is in `bbox` and whose shifted one
    /// is in the tile). Reads only the layer's own arrays in key order, except a shifted
    /// datum's positions, which come from `city`.
    #[allow(clippy::too_many_arguments)]
    fn encode_points(
        &self,
        city: &City,
        frame: &TileFrame,
        datum: Datum,
        bbox: Option<[f64; 4]>,
        tx: u32,
        ty: u32,
        values: &mut PointValues,
        out: &mut LayerBuilder,
    ) {
        let (a, b) = self.run(frame.z, tx, ty);
        let mut digits = [b'0'; 16];
        for i in a..b {
            let q = unmorton(self.keys[i]);
            let t = match bbox {
                None => frame.q_to_tile(q),
                Some(bb) => {
                    let w = dequantize(q);
                    if !(w[0] >= bb[0] && w[0] <= bb[2] && w[1] >= bb[1] && w[1] <= bb[3]) {
                        continue;
                    }
                    let c = &city.components[self.idx[i] as usize];
                    let (lon, lat) = datum.from_wgs84(c.location.x, c.location.y);
                    let w = to_world(lon, lat);
                    if !frame.contains_world(w) {
                        continue;
                    }
                    frame.to_tile(w)
                }
            };
            // No feature id: the code string is the key (a 16-digit id would repeat it in
            // ~9 bytes that compress badly, and 17-digit codes lose precision in JavaScript).
            // Values in the order the features first use them: code, class, major, status.
            let v_code = out.unique_str(fill_digits(&mut digits, self.number[i]));
            let ci = self.class_ix[i] as usize;
            let class = self.classes[ci];
            let v_class = *values.class[ci].get_or_insert_with(|| out.unique(str_value(class.to_string())));
            let major = class.major();
            let v_major = *values.major[major as usize % 100].get_or_insert_with(|| out.unique(str_value(format!("{major:02}"))));
            let st = (self.attr[i] & 3) as usize;
            let v_status = *values.status[st].get_or_insert_with(|| out.unique(str_value(STATUS[st].en())));
            out.point_feature(&[0, v_code, 1, v_class, 2, v_major, 3, v_status], [t[0].floor() as i32, t[1].floor() as i32]);
        }
    }

    /// The components layer of a tile as the encoder wrote it before the per-component arrays
    /// (`number`, `class_ix`): every point's code, class and status read from `City::components`
    /// and its values looked up in the builder's dictionary, one feature at a time. The oracle
    /// of the tests that the fast path writes the same bytes.
    #[cfg(test)]
    pub fn encode_reference(&self, city: &City, frame: &TileFrame, datum: Datum, clustered: bool, out: &mut LayerBuilder) {
        let (sources, bbox) = Self::sources(frame, datum);
        for (tx, ty) in sources {
            if clustered {
                self.encode_clusters(frame, datum, tx, ty, out);
                continue;
            }
            let (a, b) = self.run(frame.z, tx, ty);
            for i in a..b {
                let c = &city.components[self.idx[i] as usize];
                let w = match bbox {
                    None => dequantize(unmorton(self.keys[i])),
                    Some(bb) => {
                        let q = dequantize(unmorton(self.keys[i]));
                        if !(q[0] >= bb[0] && q[0] <= bb[2] && q[1] >= bb[1] && q[1] <= bb[3]) {
                            continue;
                        }
                        let (lon, lat) = datum.from_wgs84(c.location.x, c.location.y);
                        let w = to_world(lon, lat);
                        if !frame.contains_world(w) {
                            continue;
                        }
                        w
                    }
                };
                let t = frame.to_tile(w);
                let code = c.code;
                let class = code.class();
                let number = code.county() as u64 * 10_000_000_000 + (class.major() as u64 * 100 + class.minor() as u64) * 1_000_000 + code.serial() as u64;
                let mut f = out.begin_feature(None, GeomType::Point);
                let digits = format!("{number:016}");
                let v_code = out.unique_str(&digits);
                let class = c.class;
                let v_class = out.shared(1, (class.major() as u64) * 100 + class.minor() as u64, || str_value(class.to_string()));
                let v_major = out.shared(2, class.major() as u64, || str_value(format!("{:02}", class.major())));
                let status = c.status;
                let v_status = out.shared(3, status_index(status) as u64, || str_value(status.en()));
                f.tags.extend_from_slice(&[0, v_code, 1, v_class, 2, v_major, 3, v_status]);
                out.point(&mut f, [t[0].floor() as i32, t[1].floor() as i32]);
                out.end_feature(f);
            }
        }
    }

    fn encode_clusters(&self, frame: &TileFrame, datum: Datum, tx: u32, ty: u32, out: &mut LayerBuilder) {
        let z = frame.z;
        let m = self.majors.len();
        let owned;
        let level = match self.clusters.get(z as usize).and_then(Option::as_ref) {
            Some(l) => l,
            None => {
                let (a, b) = self.run(z, tx, ty);
                owned = self.aggregate_range(a, b, cell_level(z));
                &owned
            }
        };
        let (lo, hi) = tile_key_range(z, tx, ty);
        let a = level.keys.partition_point(|&k| k < lo);
        let b = a + level.keys[a..].partition_point(|&k| k <= hi);
        let clusters = cluster_cells(level, a, b, z, tx, ty, m);
        let wgs = is_wgs84(datum);
        for (c, agg) in clusters.aggs.iter().enumerate() {
            let n = agg.count as u64;
            let mean = [((agg.sx + n / 2) / n) as u32, ((agg.sy + n / 2) / n) as u32];
            let w = if wgs { dequantize(mean) } else { shifted(mean, datum) };
            if !wgs && !frame.contains_world(w) {
                continue;
            }
            let t = frame.to_tile(w);
            let mut f = out.begin_feature(None, GeomType::Point);
            let mut tag = |f: &mut super::encoder::Feature, key: u32, v: u64| {
                let vi = out.shared(0, v, || uint_value(v));
                f.tags.extend_from_slice(&[key, vi]);
            };
            tag(&mut f, 0, n);
            for (s, &count) in agg.status.iter().enumerate() {
                tag(&mut f, 1 + s as u32, count as u64);
            }
            for (j, &count) in clusters.majors[c * m..(c + 1) * m].iter().enumerate() {
                if count > 0 {
                    tag(&mut f, (CLUSTER_KEYS.len() + j) as u32, count as u64);
                }
            }
            // The mean of points in the tile lies in the tile, so in [0, extent).
            let p = [(t[0].floor() as i32).clamp(0, i32::MAX), (t[1].floor() as i32).clamp(0, i32::MAX)];
            out.point(&mut f, p);
            out.end_feature(f);
        }
    }

    /// Keys of cluster features: [`CLUSTER_KEYS`] then `count_XX` per major class present.
    pub fn cluster_keys(&self) -> Vec<String> {
        CLUSTER_KEYS.iter().map(|k| (*k).to_owned()).chain(self.majors.iter().map(|m| format!("count_{m:02}"))).collect()
    }
}

/// The statuses by [`status_index`].
const STATUS: [Status; 4] = [Status::Intact, Status::Damaged, Status::Missing, Status::Occupied];

/// The value indexes of one tile's full-detail points (the components layer's shared values),
/// by class index, major class and status index: `None` until a point first uses it.
struct PointValues {
    class: Vec<Option<u32>>,
    major: [Option<u32>; 100],
    status: [Option<u32>; 4],
}

impl PointValues {
    fn new(classes: usize) -> PointValues {
        PointValues { class: vec![None; classes], major: [None; 100], status: [None; 4] }
    }
}

/// The number a component code's 16 digits spell (county, class, serial).
fn code_number(code: ComponentCode) -> u64 {
    let class = code.class();
    code.county() as u64 * 10_000_000_000 + (class.major() as u64 * 100 + class.minor() as u64) * 1_000_000 + code.serial() as u64
}

/// `v` as exactly 16 decimal digits (leading zeros), written into `buf`.
fn fill_digits(buf: &mut [u8; 16], v: u64) -> &str {
    let mut v = v;
    for k in (0..16).rev() {
        buf[k] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    std::str::from_utf8(buf).expect("ASCII digits")
}

/// Merges the cells of one level into their parents at `cell_level`.
fn merge(fine: &ClusterLevel, cell_level: u8, m: usize) -> ClusterLevel {
    let shift = 64 - 2 * cell_level as u32;
    let mut out = ClusterLevel { keys: Vec::new(), aggs: Vec::new(), majors: Vec::new() };
    for (i, &k) in fine.keys.iter().enumerate() {
        let parent = if shift == 64 { 0 } else { (k >> shift) << shift };
        if out.keys.last() != Some(&parent) {
            out.keys.push(parent);
            out.aggs.push(Agg::default());
            out.majors.extend(std::iter::repeat_n(0, m));
        }
        let (src, dst) = (&fine.aggs[i], out.aggs.last_mut().expect("pushed"));
        dst.count += src.count;
        dst.sx += src.sx;
        dst.sy += src.sy;
        for s in 0..3 {
            dst.status[s] += src.status[s];
        }
        let base = out.majors.len() - m;
        for j in 0..m {
            out.majors[base + j] += fine.majors[i * m + j];
        }
    }
    out
}

/// Clusters of the fine cells `level[a..b]` (the non-empty cells of tile z/tx/ty), greedy and
/// deterministic: cells by descending count (ties: ascending key) each seed a cluster unless
/// taken, and take every free cell whose mean lies within the radius of the seed's mean. A
/// spatial hash of radius-sized buckets keeps it linear in the cells. The clusters come out in
/// seed order (heaviest seed first), `keys` holding each seed's cell key.
fn cluster_cells(level: &ClusterLevel, a: usize, b: usize, z: u8, tx: u32, ty: u32, m: usize) -> ClusterLevel {
    let mut out = ClusterLevel { keys: Vec::new(), aggs: Vec::new(), majors: Vec::new() };
    let n = b - a;
    if n == 0 {
        return out;
    }
    // Positions relative to the tile's north-west corner, in 2^-32 of the world.
    let side = 1u64 << (32 - z.min(32) as u32);
    let (ox, oy) = (tx as u64 * side, ty as u64 * side);
    let radius = ((side as f64 * RADIUS_PER_TILE) as u64).max(1);
    let buckets = (side.div_ceil(radius) as usize).max(1);
    let pos: Vec<[i64; 2]> = level.aggs[a..b]
        .iter()
        .map(|g| {
            let c = g.count as u64;
            [((g.sx + c / 2) / c).saturating_sub(ox) as i64, ((g.sy + c / 2) / c).saturating_sub(oy) as i64]
        })
        .collect();
    let bucket_of =
        |p: [i64; 2]| -> (usize, usize) { (((p[0] as u64 / radius) as usize).min(buckets - 1), ((p[1] as u64 / radius) as usize).min(buckets - 1)) };
    // Counting sort of the cells into buckets.
    let mut start = vec![0u32; buckets * buckets + 1];
    for &p in &pos {
        let (bx, by) = bucket_of(p);
        start[by * buckets + bx + 1] += 1;
    }
    for i in 1..start.len() {
        start[i] += start[i - 1];
    }
    let mut fill = start.clone();
    let mut members = vec![0u32; n];
    for (i, &p) in pos.iter().enumerate() {
        let (bx, by) = bucket_of(p);
        let slot = &mut fill[by * buckets + bx];
        members[*slot as usize] = i as u32;
        *slot += 1;
    }
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(level.aggs[a + i as usize].count));
    let mut taken = vec![false; n];
    let r2 = (radius as i128) * (radius as i128);
    for &seed in &order {
        let seed = seed as usize;
        if taken[seed] {
            continue;
        }
        let p = pos[seed];
        let (bx, by) = bucket_of(p);
        out.keys.push(level.keys[a + seed]);
        out.aggs.push(Agg::default());
        out.majors.extend(std::iter::repeat_n(0, m));
        let base = out.majors.len() - m;
        let agg = out.aggs.last_mut().expect("pushed");
        for y in by.saturating_sub(1)..(by + 2).min(buckets) {
            for x in bx.saturating_sub(1)..(bx + 2).min(buckets) {
                let cell = y * buckets + x;
                for &j in &members[start[cell] as usize..start[cell + 1] as usize] {
                    let j = j as usize;
                    let q = pos[j];
                    let (dx, dy) = ((q[0] - p[0]) as i128, (q[1] - p[1]) as i128);
                    if taken[j] || dx * dx + dy * dy > r2 {
                        continue;
                    }
                    taken[j] = true;
                    let g = &level.aggs[a + j];
                    agg.count += g.count;
                    agg.sx += g.sx;
                    agg.sy += g.sy;
                    for s in 0..3 {
                        agg.status[s] += g.status[s];
                    }
                    let from = (a + j) * m;
                    for k in 0..m {
                        out.majors[base + k] += level.majors[from + k];
                    }
                }
            }
        }
    }
    out
}
