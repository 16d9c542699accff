//! Components near a point, within a radius, in a box, counted by class: [`ComponentIndex`].
//!
//! Lookup by code is [`City::component_by_code`]; this index answers the spatial questions.
//! Components are returned as indices into [`City::components`] with their distance in metres
//! (haversine, [`crate::crs::haversine_m`] from the query point to the component), ordered by
//! distance and then by component code, so equal distances (components recorded at the same
//! spot) come out in a stable order.
//!
//! # Class filters
//! `classes: Option<&[ClassCode]>`: `None` or an empty slice means every class; otherwise a
//! component matches if its subclass is listed, or its major class is listed as a major class
//! (`01` = every `01xx`).
//!
//! # How
//! An R-tree (rstar) of points in a [`LocalPlane`] around the components, stored compactly as
//! f32 metres relative to the centre plus the u32 component index and the class (16 bytes; an
//! R-tree node slot is 40). Classes rarer than 1/32 of all components (up to a quarter of the
//! components in all) also get a tree of their own, so "the nearest police booth" does not
//! walk past thousands of manhole covers. A search in the plane continues past the plane's
//! distortion and f32 rounding ([`LocalPlane::search_stretch`]), and every distance is then
//! recomputed from the model's f64 location, so results equal a brute-force scan.
//! Bounding-box pages are ordered by code: a small box is searched in the tree and its codes
//! selected; a box holding a large share of the city is walked in code order instead (an
//! array of component indices sorted by code), whichever a coarse density grid says is cheaper.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};

use geo_types::{Coord, Rect};
use rstar::{AABB, Envelope, PointDistance, RTree, RTreeObject};

use crate::crs::{DistanceFrom, LocalPlane};
use crate::model::{City, ClassCode, Component, ComponentCode};

use super::grid::rtree_bytes;

/// A class gets its own tree if fewer than 1/RARE_DIVISOR of the components have it…
const RARE_DIVISOR: usize = 32;
/// …while all such trees together hold at most 1/RARE_BUDGET_DIVISOR of the components.
const RARE_BUDGET_DIVISOR: usize = 4;
/// Relative error allowance of distances computed from f32 plane coordinates.
const F32_REL: f64 = 4e-7;
/// Absolute error allowance, metres.
const ABS_SLACK_M: f64 = 1e-3;
/// Side of the density grid used to estimate how many components a box holds.
const DENSITY_SIDE: usize = 64;

/// One component in the tree: f32 plane metres, index into `City::components`, class.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Pt {
    xy: [f32; 2],
    idx: u32,
    class: ClassCode,
}

impl RTreeObject for Pt {
    type Envelope = AABB<[f32; 2]>;
    fn envelope(&self) -> Self::Envelope {
        AABB::from_point(self.xy)
    }
}

impl PointDistance for Pt {
    #[inline]
    fn distance_2(&self, p: &[f32; 2]) -> f32 {
        let (dx, dy) = (self.xy[0] - p[0], self.xy[1] - p[1]);
        dx * dx + dy * dy
    }
    fn contains_point(&self, p: &[f32; 2]) -> bool {
        self.xy == *p
    }
}

/// A result candidate, ordered by (distance, code).
#[derive(Clone, Copy, Debug)]
struct Hit {
    d: f64,
    code: ComponentCode,
    idx: u32,
}
impl PartialEq for Hit {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Hit {}
impl PartialOrd for Hit {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Hit {
    fn cmp(&self, o: &Self) -> Ordering {
        self.d.total_cmp(&o.d).then(self.code.cmp(&o.code))
    }
}

/// A parsed class filter.
struct ClassFilter {
    /// Bit per major class listed as a major class.
    majors: u128,
    subs: Vec<ClassCode>,
}

impl ClassFilter {
    /// `None` for "every class".
    fn new(classes: Option<&[ClassCode]>) -> Option<ClassFilter> {
        let classes = classes.filter(|c| !c.is_empty())?;
        let mut f = ClassFilter { majors: 0, subs: Vec::new() };
        for &c in classes {
            if c.is_major() {
                f.majors |= 1u128 << c.major();
            } else {
                f.subs.push(c);
            }
        }
        Some(f)
    }

    #[inline]
    fn matches(&self, c: ClassCode) -> bool {
        (self.majors >> c.major()) & 1 == 1 || self.subs.contains(&c)
    }
}

fn matches(filter: Option<&ClassFilter>, c: ClassCode) -> bool {
    filter.is_none_or(|f| f.matches(c))
}

/// Which trees a query searches.
enum Plan<'a> {
    /// No class matches: nothing to search.
    Nothing,
    /// The global tree, with an optional filter.
    Global(Option<ClassFilter>),
    /// Only these per-class trees (every matching class has one).
    Trees(Vec<&'a RTree<Pt>>),
}

/// How a bounding-box page is gathered (both give the same page).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BboxStrategy {
    /// Search the box in the tree, then select the smallest codes after the cursor.
    Spatial,
    /// Walk all components in code order from the cursor, keeping those in the box.
    CodeWalk,
}

/// Coarse component counts over the lon/lat extent, to estimate a box's population.
#[derive(Default)]
struct Density {
    x0: f64,
    y0: f64,
    dx: f64,
    dy: f64,
    counts: Vec<u32>,
}

impl Density {
    fn build(extent: Rect<f64>, comps: &[Component]) -> Density {
        let dx = (extent.width() / DENSITY_SIDE as f64).max(1e-12);
        let dy = (extent.height() / DENSITY_SIDE as f64).max(1e-12);
        let mut d = Density { x0: extent.min().x, y0: extent.min().y, dx, dy, counts: vec![0; DENSITY_SIDE * DENSITY_SIDE] };
        for c in comps {
            let i = (((c.location.x - d.x0) / dx) as usize).min(DENSITY_SIDE - 1);
            let j = (((c.location.y - d.y0) / dy) as usize).min(DENSITY_SIDE - 1);
            d.counts[j * DENSITY_SIDE + i] += 1;
        }
        d
    }

    /// Expected number of components in `bbox` (uniform within each density cell).
    fn estimate(&self, bbox: Rect<f64>) -> f64 {
        let (min, max) = (bbox.min(), bbox.max());
        let fx = |x: f64| ((x - self.x0) / self.dx).clamp(0.0, DENSITY_SIDE as f64);
        let fy = |y: f64| ((y - self.y0) / self.dy).clamp(0.0, DENSITY_SIDE as f64);
        let (x0, x1, y0, y1) = (fx(min.x), fx(max.x), fy(min.y), fy(max.y));
        let mut total = 0.0;
        for j in (y0.floor() as usize)..(y1.ceil() as usize).min(DENSITY_SIDE) {
            let oy = (y1.min(j as f64 + 1.0) - y0.max(j as f64)).max(0.0);
            for i in (x0.floor() as usize)..(x1.ceil() as usize).min(DENSITY_SIDE) {
                let ox = (x1.min(i as f64 + 1.0) - x0.max(i as f64)).max(0.0);
                total += self.counts[j * DENSITY_SIDE + i] as f64 * ox * oy;
            }
        }
        // A box on the extent's last row/column edge (points exactly on the max) still counts.
        total.max(if x1 > x0 || y1 > y0 { 0.0 } else { 1.0 })
    }
}

/// Spatial index of a city's components. Built once per snapshot.
pub struct ComponentIndex {
    /// `City::components.len()` of the city it was built from (checked in debug builds).
    n: usize,
    plane: LocalPlane,
    /// Bounding box (lon/lat) of all components.
    extent: Option<Rect<f64>>,
    /// Largest |x| + |y| of a component in the plane, metres (scales the f32 error allowance).
    max_abs_m: f64,
    global: RTree<Pt>,
    /// Own trees of rare classes, sorted by class.
    class_trees: Vec<(ClassCode, RTree<Pt>)>,
    /// Component count per subclass present, sorted by class.
    class_counts: Vec<(ClassCode, usize)>,
    /// Component indices in code order.
    by_code: Vec<u32>,
    density: Density,
}

impl ComponentIndex {
    /// Indexes every component of `city`.
    pub fn build(city: &City) -> ComponentIndex {
        let comps = &city.components;
        let n = comps.len();
        assert!(n <= u32::MAX as usize, "more than 2^32 components");
        let extent = comps.iter().map(|c| c.location).fold(None, |acc: Option<[f64; 4]>, p| {
            Some(match acc {
                None => [p.x, p.y, p.x, p.y],
                Some(a) => [a[0].min(p.x), a[1].min(p.y), a[2].max(p.x), a[3].max(p.y)],
            })
        });
        let extent = extent.map(|e| Rect::new(Coord { x: e[0], y: e[1] }, Coord { x: e[2], y: e[3] }));
        let plane = extent.map(LocalPlane::around).unwrap_or_else(|| LocalPlane::new(Coord { x: 0.0, y: 0.0 }));

        let mut max_abs_m = 0.0f64;
        let pts: Vec<Pt> = comps
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let xy = plane.to_xy(c.location);
                max_abs_m = max_abs_m.max(xy[0].abs() + xy[1].abs());
                Pt { xy: [xy[0] as f32, xy[1] as f32], idx: i as u32, class: c.class }
            })
            .collect();

        let mut counts: BTreeMap<ClassCode, usize> = BTreeMap::new();
        for c in comps {
            *counts.entry(c.class).or_default() += 1;
        }
        let class_counts: Vec<(ClassCode, usize)> = counts.into_iter().collect();
        let mut rare: Vec<(ClassCode, usize)> = class_counts.iter().copied().filter(|&(_, k)| k * RARE_DIVISOR < n).collect();
        rare.sort_by_key(|&(c, k)| (k, c));
        let mut budget = n / RARE_BUDGET_DIVISOR;
        let mut class_trees: Vec<(ClassCode, RTree<Pt>)> = Vec::new();
        for (class, k) in rare {
            if k > budget {
                break;
            }
            budget -= k;
            let own: Vec<Pt> = pts.iter().copied().filter(|p| p.class == class).collect();
            class_trees.push((class, RTree::bulk_load(own)));
        }
        class_trees.sort_by_key(|t| t.0);

        let mut keyed: Vec<(ComponentCode, u32)> = comps.iter().enumerate().map(|(i, c)| (c.code, i as u32)).collect();
        if !keyed.is_sorted() {
            keyed.sort_unstable();
        }
        let by_code: Vec<u32> = keyed.into_iter().map(|(_, i)| i).collect();
        let density = extent.map(|e| Density::build(e, comps)).unwrap_or_default();

        ComponentIndex { n, plane, extent, max_abs_m, global: RTree::bulk_load(pts), class_trees, class_counts, by_code, density }
    }

    #[inline]
    fn debug_check(&self, city: &City) {
        debug_assert_eq!(self.n, city.components.len(), "ComponentIndex used with another city than it was built from");
    }

    fn plan(&self, classes: Option<&[ClassCode]>) -> Plan<'_> {
        let Some(filter) = ClassFilter::new(classes) else {
            return Plan::Global(None);
        };
        let matched: Vec<ClassCode> = self.class_counts.iter().map(|&(c, _)| c).filter(|&c| filter.matches(c)).collect();
        if matched.is_empty() {
            return Plan::Nothing;
        }
        if matched.len() == self.class_counts.len() {
            return Plan::Global(None);
        }
        let mut trees = Vec::with_capacity(matched.len());
        for c in matched {
            match self.class_trees.binary_search_by_key(&c, |t| t.0) {
                Ok(i) => trees.push(&self.class_trees[i].1),
                Err(_) => return Plan::Global(Some(filter)),
            }
        }
        Plan::Trees(trees)
    }

    /// The trees of a plan, with the filter to apply to each.
    fn trees<'a>(&'a self, plan: &'a Plan<'a>) -> Vec<(&'a RTree<Pt>, Option<&'a ClassFilter>)> {
        match plan {
            Plan::Nothing => Vec::new(),
            Plan::Global(f) => vec![(&self.global, f.as_ref())],
            Plan::Trees(t) => t.iter().map(|&t| (t, None)).collect(),
        }
    }

    /// Error allowance for a plane distance `d` (metres) from a query at plane point `q`.
    #[inline]
    fn slack(&self, q: [f64; 2], d: f64) -> f64 {
        (q[0].abs() + q[1].abs() + self.max_abs_m + d) * F32_REL + ABS_SLACK_M
    }

    /// The `k` components nearest to `p` (WGS84 lon/lat), nearest first (then by code), with
    /// their distances in metres; only those of the given classes (see the
    /// [module documentation](self)) and, if given, at most `max_distance_m` away. `k = 0`, a
    /// negative or NaN `max_distance_m` or a non-finite point give nothing.
    pub fn nearest(&self, city: &City, p: Coord<f64>, k: usize, classes: Option<&[ClassCode]>, max_distance_m: Option<f64>) -> Vec<(u32, f64)> {
        self.debug_check(city);
        let max_d = max_distance_m.unwrap_or(f64::INFINITY);
        let Some(extent) = self.extent else { return Vec::new() };
        if k == 0 || !(max_d >= 0.0) || !(p.x.is_finite() && p.y.is_finite()) {
            return Vec::new();
        }
        let plan = self.plan(classes);
        let from = DistanceFrom::new(p);
        let mut heap: BinaryHeap<Hit> = BinaryHeap::with_capacity(k + 1);
        let offer = |idx: u32, heap: &mut BinaryHeap<Hit>| {
            let c = &city.components[idx as usize];
            let d = from.metres_to(c.location);
            if d > max_d {
                return;
            }
            let hit = Hit { d, code: c.code, idx };
            if heap.len() < k {
                heap.push(hit);
            } else if hit < *heap.peek().expect("k > 0") {
                heap.pop();
                heap.push(hit);
            }
        };
        match self.plane.search_stretch(p, extent) {
            Some(stretch) => {
                let q = self.plane.to_xy(p);
                let qf = [q[0] as f32, q[1] as f32];
                for (tree, filter) in self.trees(&plan) {
                    for (pt, d2) in tree.nearest_neighbor_iter_with_distance_2(&qf) {
                        let bound = if heap.len() == k { heap.peek().expect("k > 0").d.min(max_d) } else { max_d };
                        let reach = bound * stretch;
                        // plane ≤ stretch × true ≤ stretch × haversine, up to f32 rounding.
                        if (d2 as f64).sqrt() > reach + self.slack(q, reach) {
                            break;
                        }
                        if matches(filter, pt.class) {
                            offer(pt.idx, &mut heap);
                        }
                    }
                }
            }
            None => {
                let filter = ClassFilter::new(classes);
                for (i, c) in city.components.iter().enumerate() {
                    if matches(filter.as_ref(), c.class) {
                        offer(i as u32, &mut heap);
                    }
                }
            }
        }
        heap.into_sorted_vec().into_iter().map(|h| (h.idx, h.d)).collect()
    }

    /// Every component within `radius_m` metres of `p` (of the given classes), nearest first
    /// (then by code). A negative or NaN radius or a non-finite point give nothing.
    pub fn within(&self, city: &City, p: Coord<f64>, radius_m: f64, classes: Option<&[ClassCode]>) -> Vec<(u32, f64)> {
        self.debug_check(city);
        let Some(extent) = self.extent else { return Vec::new() };
        if !(radius_m >= 0.0) || !(p.x.is_finite() && p.y.is_finite()) {
            return Vec::new();
        }
        let plan = self.plan(classes);
        let from = DistanceFrom::new(p);
        let mut hits: Vec<Hit> = Vec::new();
        let mut offer = |idx: u32| {
            let c = &city.components[idx as usize];
            let d = from.metres_to(c.location);
            if d <= radius_m {
                hits.push(Hit { d, code: c.code, idx });
            }
        };
        match self.plane.search_stretch(p, extent) {
            Some(stretch) => {
                let q = self.plane.to_xy(p);
                let qf = [q[0] as f32, q[1] as f32];
                let reach = radius_m * stretch;
                let reach = (reach + self.slack(q, reach)) as f32;
                for (tree, filter) in self.trees(&plan) {
                    for pt in tree.locate_within_distance(qf, reach * reach) {
                        if matches(filter, pt.class) {
                            offer(pt.idx);
                        }
                    }
                }
            }
            None => {
                let filter = ClassFilter::new(classes);
                for (i, c) in city.components.iter().enumerate() {
                    if matches(filter.as_ref(), c.class) {
                        offer(i as u32);
                    }
                }
            }
        }
        hits.sort_unstable();
        hits.into_iter().map(|h| (h.idx, h.d)).collect()
    }

    /// The plane envelope certainly holding every component in `bbox` (`outer`), and one
    /// holding only components certainly in it (`inner`, if not empty).
    fn plane_boxes(&self, bbox: Rect<f64>) -> (AABB<[f32; 2]>, Option<AABB<[f32; 2]>>) {
        let (a, b) = (self.plane.to_xy(bbox.min()), self.plane.to_xy(bbox.max()));
        let m = (a[0].abs().max(b[0].abs()) + a[1].abs().max(b[1].abs()) + self.max_abs_m) * F32_REL + ABS_SLACK_M;
        let outer = AABB::from_corners([(a[0] - m) as f32, (a[1] - m) as f32], [(b[0] + m) as f32, (b[1] + m) as f32]);
        let (lo, hi) = ([a[0] + m, a[1] + m], [b[0] - m, b[1] - m]);
        let inner = (lo[0] <= hi[0] && lo[1] <= hi[1]).then(|| AABB::from_corners([lo[0] as f32, lo[1] as f32], [hi[0] as f32, hi[1] as f32]));
        (outer, inner)
    }

    /// One page of the components in `bbox` (lon/lat, edges included) of the given classes,
    /// in component code order, starting after the code `after` (the cursor: the last code of
    /// the previous page; `None` for the first page). At most `limit` (at least 1) indices into
    /// `City::components`; the second value is the cursor for the next page, `None` when this
    /// page is the last. Walking the pages returns every such component exactly once, in code
    /// order.
    pub fn in_bbox(
        &self,
        city: &City,
        bbox: Rect<f64>,
        classes: Option<&[ClassCode]>,
        after: Option<ComponentCode>,
        limit: usize,
    ) -> (Vec<u32>, Option<ComponentCode>) {
        self.in_bbox_with(city, bbox, classes, after, limit, None)
    }

    pub(crate) fn in_bbox_with(
        &self,
        city: &City,
        bbox: Rect<f64>,
        classes: Option<&[ClassCode]>,
        after: Option<ComponentCode>,
        limit: usize,
        strategy: Option<BboxStrategy>,
    ) -> (Vec<u32>, Option<ComponentCode>) {
        self.debug_check(city);
        let limit = limit.max(1);
        let (min, max) = (bbox.min(), bbox.max());
        if self.n == 0 || !(min.x.is_finite() && min.y.is_finite() && max.x.is_finite() && max.y.is_finite()) {
            return (Vec::new(), None);
        }
        let in_box = |c: &Component| c.location.x >= min.x && c.location.x <= max.x && c.location.y >= min.y && c.location.y <= max.y;
        let after_cursor = |c: &Component| after.is_none_or(|a| c.code > a);
        let plan = self.plan(classes);
        let strategy = strategy.unwrap_or_else(|| {
            // Expected tree visits for the box, against expected components walked in code
            // order before `limit + 1` matches turn up (×4 for the walk's random access).
            let in_box_est = self.density.estimate(bbox);
            let share = match &plan {
                Plan::Nothing => 0.0,
                Plan::Global(None) => 1.0,
                _ => {
                    let filter = ClassFilter::new(classes);
                    let matched: usize = self.class_counts.iter().filter(|(c, _)| matches(filter.as_ref(), *c)).map(|&(_, k)| k).sum();
                    matched as f64 / self.n as f64
                }
            };
            let matches_est = in_box_est * share;
            let walk = if matches_est > 0.0 { 4.0 * (limit + 1) as f64 * self.n as f64 / matches_est } else { f64::INFINITY };
            let spatial = match &plan {
                Plan::Trees(_) => matches_est,
                _ => in_box_est,
            };
            if walk < spatial { BboxStrategy::CodeWalk } else { BboxStrategy::Spatial }
        });
        match strategy {
            BboxStrategy::CodeWalk => {
                let filter = ClassFilter::new(classes);
                let start = match after {
                    None => 0,
                    Some(a) => self.by_code.partition_point(|&i| city.components[i as usize].code <= a),
                };
                let mut page = Vec::with_capacity(limit.min(4096));
                for &i in &self.by_code[start..] {
                    let c = &city.components[i as usize];
                    if in_box(c) && matches(filter.as_ref(), c.class) {
                        if page.len() == limit {
                            let last = city.components[*page.last().expect("limit ≥ 1") as usize].code;
                            return (page, Some(last));
                        }
                        page.push(i);
                    }
                }
                (page, None)
            }
            BboxStrategy::Spatial => {
                let (outer, _) = self.plane_boxes(bbox);
                let mut hits: Vec<(ComponentCode, u32)> = Vec::new();
                for (tree, filter) in self.trees(&plan) {
                    for pt in tree.locate_in_envelope(&outer) {
                        if !matches(filter, pt.class) {
                            continue;
                        }
                        let c = &city.components[pt.idx as usize];
                        if in_box(c) && after_cursor(c) {
                            hits.push((c.code, pt.idx));
                        }
                    }
                }
                let more = hits.len() > limit;
                if more {
                    hits.select_nth_unstable(limit - 1);
                    hits.truncate(limit);
                }
                hits.sort_unstable();
                let next = if more { hits.last().map(|h| h.0) } else { None };
                (hits.into_iter().map(|h| h.1).collect(), next)
            }
        }
    }

    /// Number of components in `bbox` (lon/lat, edges included) per subclass, for the given
    /// classes (all if `None` or empty). Classes with no component in the box are absent.
    pub fn count_by_class(&self, city: &City, bbox: Rect<f64>, classes: Option<&[ClassCode]>) -> BTreeMap<ClassCode, usize> {
        self.debug_check(city);
        let filter = ClassFilter::new(classes);
        let mut out = BTreeMap::new();
        let Some(extent) = self.extent else { return out };
        let (min, max) = (bbox.min(), bbox.max());
        if min.x <= extent.min().x && min.y <= extent.min().y && max.x >= extent.max().x && max.y >= extent.max().y {
            for &(c, k) in &self.class_counts {
                if matches(filter.as_ref(), c) {
                    out.insert(c, k);
                }
            }
            return out;
        }
        if !(min.x.is_finite() && min.y.is_finite() && max.x.is_finite() && max.y.is_finite()) {
            return out;
        }
        let plan = self.plan(classes);
        let (outer, inner) = self.plane_boxes(bbox);
        for (tree, filter) in self.trees(&plan) {
            for pt in tree.locate_in_envelope(&outer) {
                if !matches(filter, pt.class) {
                    continue;
                }
                // Certainly inside, or checked on the exact f64 location near the box's edges.
                let counted = inner.is_some_and(|i| i.contains_point(&pt.xy)) || {
                    let l = city.components[pt.idx as usize].location;
                    l.x >= min.x && l.x <= max.x && l.y >= min.y && l.y <= max.y
                };
                if counted {
                    *out.entry(pt.class).or_insert(0) += 1;
                }
            }
        }
        out
    }

    /// Number of components indexed.
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The plane the trees live in (centred on the components' bounding box).
    pub fn plane(&self) -> &LocalPlane {
        &self.plane
    }

    /// Classes with a tree of their own.
    pub fn own_tree_classes(&self) -> Vec<ClassCode> {
        self.class_trees.iter().map(|t| t.0).collect()
    }

    /// Rough heap size in bytes (trees, code order, counts). Does not include the model's
    /// components or its code → component map.
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        size_of::<Self>()
            + rtree_bytes(self.global.root())
            + self.class_trees.iter().map(|t| size_of::<(ClassCode, RTree<Pt>)>() + rtree_bytes(t.1.root())).sum::<usize>()
            + self.class_counts.capacity() * size_of::<(ClassCode, usize)>()
            + self.by_code.capacity() * size_of::<u32>()
            + self.density.counts.capacity() * size_of::<u32>()
    }
}
