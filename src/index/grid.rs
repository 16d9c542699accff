//! Point → unit grid (单元网格): [`GridIndex`].
//!
//! # What an answer means
//!
//! All points are WGS84 lon/lat (convert GCJ-02 / BD-09 input with
//! [`Datum::to_wgs84`](crate::crs::Datum::to_wgs84) first: a unit grid is often smaller than
//! the GCJ-02 offset). A unit grid's polygon is taken as a closed point set in lon/lat (edges
//! are straight in lon/lat, holes are excluded, a MultiPolygon is the union of its parts), and
//! containment is decided exactly, with robust predicates: the same answers as geo's
//! `CoordinatePosition` (winding rule) on each polygon.
//!
//! - A point inside exactly one unit grid → that grid, `on_boundary: false`.
//! - A point exactly on an edge or vertex shared by several grids → **the grid with the
//!   smallest code among the grids whose closed polygon contains the point**, with
//!   `on_boundary: true`. A point on the outer boundary of the coverage (one grid contains it)
//!   → that grid, `on_boundary: true`. (`on_boundary` is true when the point lies on the
//!   boundary of any unit grid containing it. Overlapping grids are invalid data, but still get
//!   a definite answer: the smallest code among the containing grids.)
//! - A point outside every unit grid → [`Location::Outside`] with the grid whose polygon edge is
//!   nearest and the distance in metres to that edge (haversine to the closest point of the
//!   edge, see [`crate::crs::segment_distance_m`]); equally near grids (a shared vertex) → the
//!   smallest code.
//! - With a GPS accuracy radius `r` metres ([`GridIndex::locate_within`]): every unit grid whose
//!   polygon is within `r` of the point (distance 0 for grids containing the point, otherwise
//!   the distance to the nearest edge), sorted by distance then code; ambiguous when more
//!   than one. A point on a shared edge is ambiguous even with `r = 0`.
//!
//! # How
//!
//! A uniform raster over the unit grids' bounding box (cells square in metres, sized so an
//! average grid covers ~32 cells, at most 64 cells per grid in all). Each cell is one of:
//! - *interior of grid G*: no edge of any grid touches the cell (enlarged by 1/1000 of a cell,
//!   far more than rounding) and G alone contains the cell's centre — so G contains the whole
//!   cell and nothing else touches it: answered with no polygon test;
//! - *empty*: nothing touches or covers it: outside every grid;
//! - *boundary*: a short, code-ordered candidate list (CSR arrays) of the grids touching or
//!   covering it, each tested exactly.
//!
//! Outside points and accuracy discs use an R-tree of all unit-grid edges in a
//! [`LocalPlane`] around the coverage; the plane's distortion is bounded
//! ([`LocalPlane::search_stretch`]) and searched past, and every distance is recomputed on the
//! sphere, so the results equal a brute-force scan of all edges.

use geo::Area;
use geo::kernels::{Kernel, Orientation, RobustKernel};
use geo_types::{Coord, Rect};
use rstar::primitives::{GeomWithData, Line};
use rstar::{ParentNode, RTree, RTreeNode, RTreeObject};
use serde::Serialize;

use crate::crs::{DistanceFrom, LocalPlane};
use crate::model::{City, GridId};

/// Average number of raster cells an average unit grid covers.
const TARGET_CELLS_PER_GRID: f64 = 32.0;
/// Upper bound of cells per unit grid (a sparse coverage gets coarser cells).
const MAX_CELLS_PER_GRID: usize = 64;
/// How much a cell is enlarged (in cells) when deciding that no edge touches it.
const CELL_SLACK: f64 = 1e-3;
/// Absolute slack on distances in the plane, metres (f64 rounding is ~1e-9 m here).
const PLANE_SLACK_M: f64 = 1e-6;
const EMPTY: u32 = u32::MAX;
const BOUNDARY: u32 = 1 << 31;

/// Where a point is relative to one closed polygon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pos {
    Outside,
    OnBoundary,
    Inside,
}

/// The unit grid of a point. See the [module documentation](self) for the exact rules.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Location {
    /// The point is in the closed polygon of `grid` (the smallest code if several contain
    /// it). `on_boundary`: the point lies exactly on an edge or vertex of a grid containing
    /// it (a shared edge, or the outer boundary of the coverage).
    Inside { grid: GridId, on_boundary: bool },
    /// The point is outside every unit grid; `nearest` is the grid with the nearest edge
    /// (smallest code on a tie), `distance_m` the distance to that edge in metres (> 0, except
    /// that a point within ~1e-9 m of an edge may round to 0).
    Outside { nearest: GridId, distance_m: f64 },
    /// No answer is possible: the city has no unit grid geometry, or the point is not finite.
    Nowhere,
}

impl Location {
    /// The grid the point is in, if inside.
    pub fn grid(&self) -> Option<GridId> {
        match *self {
            Location::Inside { grid, .. } => Some(grid),
            _ => None,
        }
    }
}

/// A unit grid an accuracy disc touches.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Candidate {
    pub grid: GridId,
    /// 0 when the grid's closed polygon contains the point, else metres to its nearest edge.
    pub distance_m: f64,
}

/// [`GridIndex::locate_within`]'s answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LocateAnswer {
    /// The answer for the point itself, as [`GridIndex::locate`] gives it.
    pub location: Location,
    /// Every unit grid within the accuracy radius, nearest first, then by code.
    pub candidates: Vec<Candidate>,
    /// More than one candidate: the point cannot be put in one grid at this accuracy.
    pub ambiguous: bool,
}

/// Shape of the raster, for benchmarks and logs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RasterStats {
    pub unit_grids: usize,
    pub nx: usize,
    pub ny: usize,
    /// Cell size in metres (east–west, north–south).
    pub cell_m: [f64; 2],
    pub interior_cells: usize,
    pub boundary_cells: usize,
    pub empty_cells: usize,
    /// Mean candidate list length of boundary cells.
    pub mean_candidates: f64,
}

/// An edge in the plane; data: (index of its first vertex in `verts`, local grid index).
type Edge = GeomWithData<Line<[f64; 2]>, (u32, u32)>;

/// Point → unit grid index over one city. Built once per snapshot; queries never allocate
/// except for the answers of [`GridIndex::locate_within`].
pub struct GridIndex {
    /// `City::grids.len()` of the city it was built from (checked in debug builds).
    city_grids: usize,
    /// Local grid index → GridId, in code order (so the smallest local index is the smallest code).
    ids: Vec<GridId>,
    /// Per local grid: min lon, min lat, max lon, max lat.
    bboxes: Vec<[f64; 4]>,
    /// CSR: local grid → its polygons in `poly_rings`.
    grid_polys: Vec<u32>,
    /// CSR: polygon → its rings in `ring_verts`, exterior first.
    poly_rings: Vec<u32>,
    /// CSR: ring → its vertices in `verts` (closed: the last repeats the first).
    ring_verts: Vec<u32>,
    verts: Vec<Coord<f64>>,
    raster: Raster,
    edges: RTree<Edge>,
    plane: LocalPlane,
    /// Bounding box of all unit grids; `None` if there is no geometry.
    extent: Option<Rect<f64>>,
}

#[derive(Default)]
struct Raster {
    x0: f64,
    y0: f64,
    dx: f64,
    dy: f64,
    inv_dx: f64,
    inv_dy: f64,
    nx: usize,
    ny: usize,
    /// Per cell: a local grid index (interior), `EMPTY`, or `BOUNDARY | boundary cell index`.
    cells: Vec<u32>,
    /// CSR: boundary cell → its candidates in `cands`.
    cand_start: Vec<u32>,
    /// Candidate local grid indices, ascending (code order) within a cell.
    cands: Vec<u32>,
}

impl Raster {
    /// Fractional cell coordinates of a lon/lat.
    #[inline]
    fn frac(&self, c: Coord<f64>) -> (f64, f64) {
        ((c.x - self.x0) * self.inv_dx, (c.y - self.y0) * self.inv_dy)
    }

    #[inline]
    fn cell(&self, p: Coord<f64>) -> Option<usize> {
        let (fx, fy) = self.frac(p);
        // Written so NaN falls out too.
        if fx >= 0.0 && fy >= 0.0 && fx < self.nx as f64 && fy < self.ny as f64 { Some(fy as usize * self.nx + fx as usize) } else { None }
    }

    /// Calls `mark(i, j)` for every cell (within `i0..=i1`, `j0..=j1`) that the segment `a`–`b`
    /// touches, cells enlarged by `CELL_SLACK`. Walks the segment's major axis so interpolation
    /// never divides by a small difference.
    fn mark_segment(&self, a: Coord<f64>, b: Coord<f64>, (i0, i1, j0, j1): (usize, usize, usize, usize), mut mark: impl FnMut(usize, usize)) {
        let (fa, fb) = (self.frac(a), self.frac(b));
        if !(fa.0.is_finite() && fa.1.is_finite() && fb.0.is_finite() && fb.1.is_finite()) {
            return;
        }
        let steep = (fb.1 - fa.1).abs() > (fb.0 - fa.0).abs();
        // (u, v): u the major axis.
        let (ua, va, ub, vb) = if steep { (fa.1, fa.0, fb.1, fb.0) } else { (fa.0, fa.1, fb.0, fb.1) };
        let (u_lo_cell, u_hi_cell, v_lo_cell, v_hi_cell) = if steep { (j0, j1, i0, i1) } else { (i0, i1, j0, j1) };
        let (u_min, u_max) = (ua.min(ub), ua.max(ub));
        let (v_min, v_max) = (va.min(vb), va.max(vb));
        let floor_in = |x: f64, lo: usize, hi: usize| -> usize { (x.floor().max(lo as f64) as usize).min(hi) };
        let k0 = floor_in(u_min - CELL_SLACK, u_lo_cell, u_hi_cell);
        let k1 = floor_in(u_max + CELL_SLACK, u_lo_cell, u_hi_cell);
        for k in k0..=k1 {
            let (c0, c1) = (k as f64 - CELL_SLACK, k as f64 + 1.0 + CELL_SLACK);
            let (s0, s1) = (u_min.max(c0), u_max.min(c1));
            if s0 > s1 {
                continue;
            }
            let (lo, hi) = if ub == ua {
                (v_min, v_max)
            } else {
                let v_at = |u: f64| va + (u - ua) / (ub - ua) * (vb - va);
                let (y0, y1) = (v_at(s0), v_at(s1));
                (y0.min(y1).max(v_min), y0.max(y1).min(v_max))
            };
            let l0 = floor_in(lo - CELL_SLACK, v_lo_cell, v_hi_cell);
            let l1 = floor_in(hi + CELL_SLACK, v_lo_cell, v_hi_cell);
            for l in l0..=l1 {
                if steep { mark(l, k) } else { mark(k, l) }
            }
        }
    }

    /// Cell ranges (i0, i1, j0, j1) covering a lon/lat box, enlarged by `CELL_SLACK`.
    fn range_of(&self, bb: &[f64; 4]) -> (usize, usize, usize, usize) {
        let (fx0, fy0) = self.frac(Coord { x: bb[0], y: bb[1] });
        let (fx1, fy1) = self.frac(Coord { x: bb[2], y: bb[3] });
        let clamp = |x: f64, n: usize| -> usize { (x.floor().max(0.0) as usize).min(n - 1) };
        (clamp(fx0 - CELL_SLACK, self.nx), clamp(fx1 + CELL_SLACK, self.nx), clamp(fy0 - CELL_SLACK, self.ny), clamp(fy1 + CELL_SLACK, self.ny))
    }

    fn centre(&self, i: usize, j: usize) -> Coord<f64> {
        Coord { x: self.x0 + (i as f64 + 0.5) * self.dx, y: self.y0 + (j as f64 + 0.5) * self.dy }
    }
}

/// Position of `p` relative to one closed ring: geo's winding-number test (`coord_pos_relative_to_ring`),
/// with the same robust orientation predicate, so the answers are identical.
#[inline]
fn ring_pos(ring: &[Coord<f64>], p: Coord<f64>) -> Pos {
    match ring.len() {
        0 => return Pos::Outside,
        1 => return if ring[0] == p { Pos::OnBoundary } else { Pos::Outside },
        _ => {}
    }
    let between = |x: f64, a: f64, b: f64| if a < b { a <= x && x <= b } else { b <= x && x <= a };
    let mut winding = 0i32;
    let mut a = ring[0];
    for &b in &ring[1..] {
        if a.y <= p.y {
            if b.y >= p.y {
                let o = RobustKernel::orient2d(a, b, p);
                if o == Orientation::CounterClockwise && b.y != p.y {
                    winding += 1;
                } else if o == Orientation::Collinear && between(p.x, a.x, b.x) {
                    return Pos::OnBoundary;
                }
            }
        } else if b.y <= p.y {
            let o = RobustKernel::orient2d(a, b, p);
            if o == Orientation::Clockwise {
                winding -= 1;
            } else if o == Orientation::Collinear && between(p.x, a.x, b.x) {
                return Pos::OnBoundary;
            }
        }
        a = b;
    }
    if winding == 0 { Pos::Outside } else { Pos::Inside }
}

impl GridIndex {
    /// Indexes the unit grids (lowest level) of `city`.
    pub fn build(city: &City) -> GridIndex {
        let unit = city.hierarchy.unit_level();
        let mut ids: Vec<GridId> = city.grids_at(unit).map(|(id, _)| id).collect();
        ids.sort_by_key(|&id| city.grid(id).code);
        assert!(ids.len() < BOUNDARY as usize, "too many unit grids");

        let mut verts = Vec::new();
        let (mut grid_polys, mut poly_rings, mut ring_verts) = (vec![0u32], vec![0u32], vec![0u32]);
        let mut bboxes = Vec::with_capacity(ids.len());
        let mut area = 0.0;
        for &id in &ids {
            let geometry = &city.grid(id).geometry;
            area += geometry.unsigned_area();
            let mut bb = [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY];
            for poly in &geometry.0 {
                for ring in std::iter::once(poly.exterior()).chain(poly.interiors()) {
                    for &c in &ring.0 {
                        verts.push(c);
                        if c.x.is_finite() && c.y.is_finite() {
                            bb = [bb[0].min(c.x), bb[1].min(c.y), bb[2].max(c.x), bb[3].max(c.y)];
                        }
                    }
                    ring_verts.push(u32::try_from(verts.len()).expect("fewer than 2^32 vertices"));
                }
                poly_rings.push(ring_verts.len() as u32 - 1);
            }
            grid_polys.push(poly_rings.len() as u32 - 1);
            bboxes.push(bb);
        }
        let extent = bboxes.iter().filter(|b| b[0] <= b[2]).fold(None, |acc: Option<[f64; 4]>, b| {
            Some(match acc {
                None => *b,
                Some(a) => [a[0].min(b[0]), a[1].min(b[1]), a[2].max(b[2]), a[3].max(b[3])],
            })
        });
        let extent = extent.map(|e| Rect::new(Coord { x: e[0], y: e[1] }, Coord { x: e[2], y: e[3] }));
        let plane = extent.map(LocalPlane::around).unwrap_or_else(|| LocalPlane::new(Coord { x: 0.0, y: 0.0 }));

        let mut index = GridIndex {
            city_grids: city.grids.len(),
            ids,
            bboxes,
            grid_polys,
            poly_rings,
            ring_verts,
            verts,
            raster: Raster::default(),
            edges: RTree::new(),
            plane,
            extent,
        };
        if let Some(extent) = extent {
            index.raster = index.build_raster(extent, area);
        }
        index.edges = RTree::bulk_load(index.edge_objects());
        index
    }

    fn rings_of(&self, g: usize) -> impl Iterator<Item = &[Coord<f64>]> {
        let polys = self.grid_polys[g] as usize..self.grid_polys[g + 1] as usize;
        let rings = self.poly_rings[polys.start] as usize..self.poly_rings[polys.end] as usize;
        rings.map(|r| &self.verts[self.ring_verts[r] as usize..self.ring_verts[r + 1] as usize])
    }

    fn edge_objects(&self) -> Vec<Edge> {
        let mut edges = Vec::with_capacity(self.verts.len());
        for g in 0..self.ids.len() {
            let polys = self.grid_polys[g] as usize..self.grid_polys[g + 1] as usize;
            for r in self.poly_rings[polys.start] as usize..self.poly_rings[polys.end] as usize {
                let (start, end) = (self.ring_verts[r], self.ring_verts[r + 1]);
                for v in start..end.saturating_sub(1) {
                    let (a, b) = (self.verts[v as usize], self.verts[v as usize + 1]);
                    let line = Line::new(self.plane.to_xy(a), self.plane.to_xy(b));
                    edges.push(GeomWithData::new(line, (v, g as u32)));
                }
            }
        }
        edges
    }

    /// Exact position of `p` relative to local grid `g`'s closed MultiPolygon.
    #[inline]
    fn grid_pos(&self, g: usize, p: Coord<f64>) -> Pos {
        let bb = &self.bboxes[g];
        if !(p.x >= bb[0] && p.x <= bb[2] && p.y >= bb[1] && p.y <= bb[3]) {
            return Pos::Outside;
        }
        let mut on_boundary = false;
        let polys = self.grid_polys[g] as usize..self.grid_polys[g + 1] as usize;
        for poly in polys {
            let rings = self.poly_rings[poly] as usize..self.poly_rings[poly + 1] as usize;
            let ring = |r: usize| &self.verts[self.ring_verts[r] as usize..self.ring_verts[r + 1] as usize];
            match ring_pos(ring(rings.start), p) {
                Pos::Outside => {}
                Pos::OnBoundary => on_boundary = true,
                Pos::Inside => {
                    let mut pos = Pos::Inside;
                    for hole in rings.start + 1..rings.end {
                        match ring_pos(ring(hole), p) {
                            Pos::Outside => {}
                            Pos::OnBoundary => {
                                pos = Pos::OnBoundary;
                                break;
                            }
                            Pos::Inside => {
                                pos = Pos::Outside;
                                break;
                            }
                        }
                    }
                    match pos {
                        Pos::Inside => return Pos::Inside,
                        Pos::OnBoundary => on_boundary = true,
                        Pos::Outside => {}
                    }
                }
            }
        }
        if on_boundary { Pos::OnBoundary } else { Pos::Outside }
    }

    fn build_raster(&self, extent: Rect<f64>, area: f64) -> Raster {
        let n = self.ids.len();
        let cos0 = extent.center().y.to_radians().cos().max(0.01);
        let (w, h) = (extent.width(), extent.height());
        // Cell side in degrees of latitude; cells are square in metres.
        let mut s = (area * cos0 / n as f64 / TARGET_CELLS_PER_GRID).sqrt();
        let span = (w * cos0).max(h);
        if !(s > span * 1e-6) {
            s = (span / 64.0).max(1e-7);
        }
        let max_cells = (MAX_CELLS_PER_GRID * n).clamp(4096, 1 << 25);
        let (mut nx, mut ny);
        loop {
            nx = (w / (s / cos0)).ceil() as usize + 2;
            ny = (h / s).ceil() as usize + 2;
            if nx.saturating_mul(ny) <= max_cells {
                break;
            }
            s *= (nx as f64 * ny as f64 / max_cells as f64).sqrt() * 1.01;
        }
        let (dx, dy) = (s / cos0, s);
        let mut raster = Raster {
            x0: extent.min().x - dx,
            y0: extent.min().y - dy,
            dx,
            dy,
            inv_dx: 1.0 / dx,
            inv_dy: 1.0 / dy,
            nx,
            ny,
            cells: Vec::new(),
            cand_start: vec![0],
            cands: Vec::new(),
        };

        // (cell << 32 | grid << 1 | covers) for every cell a grid touches or covers.
        let mut pairs: Vec<u64> = Vec::new();
        let mut touched: Vec<bool> = Vec::new();
        for g in 0..n {
            let bb = self.bboxes[g];
            if !(bb[0] <= bb[2]) {
                continue;
            }
            let range @ (i0, i1, j0, j1) = raster.range_of(&bb);
            let bw = i1 - i0 + 1;
            touched.clear();
            touched.resize(bw * (j1 - j0 + 1), false);
            for ring in self.rings_of(g) {
                let mut mark = |i: usize, j: usize| touched[(j - j0) * bw + (i - i0)] = true;
                if ring.len() == 1 {
                    raster.mark_segment(ring[0], ring[0], range, &mut mark);
                }
                for e in ring.windows(2) {
                    raster.mark_segment(e[0], e[1], range, &mut mark);
                }
            }
            for j in j0..=j1 {
                for i in i0..=i1 {
                    let cell = (j * nx + i) as u64;
                    let key = cell << 32 | (g as u64) << 1;
                    if touched[(j - j0) * bw + (i - i0)] {
                        pairs.push(key);
                    } else {
                        match self.grid_pos(g, raster.centre(i, j)) {
                            Pos::Inside => pairs.push(key | 1),
                            Pos::Outside => {}
                            Pos::OnBoundary => {
                                debug_assert!(false, "an untouched cell's centre is on grid {g}'s boundary");
                                pairs.push(key);
                            }
                        }
                    }
                }
            }
        }
        pairs.sort_unstable();

        raster.cells = vec![EMPTY; nx * ny];
        let mut k = 0;
        while k < pairs.len() {
            let cell = (pairs[k] >> 32) as usize;
            let mut e = k + 1;
            while e < pairs.len() && (pairs[e] >> 32) as usize == cell {
                e += 1;
            }
            let grid_of = |key: u64| ((key & 0xffff_ffff) >> 1) as u32;
            if e - k == 1 && pairs[k] & 1 == 1 {
                raster.cells[cell] = grid_of(pairs[k]);
            } else {
                let b = raster.cand_start.len() - 1;
                assert!(b < BOUNDARY as usize - 1, "too many boundary cells");
                raster.cells[cell] = BOUNDARY | b as u32;
                raster.cands.extend(pairs[k..e].iter().map(|&key| grid_of(key)));
                raster.cand_start.push(raster.cands.len() as u32);
            }
            k = e;
        }
        raster.cands.shrink_to_fit();
        raster.cand_start.shrink_to_fit();
        raster
    }

    /// Calls `f(local grid, position)` for every unit grid whose closed polygon contains `p`,
    /// in code order.
    #[inline]
    fn for_each_containing(&self, p: Coord<f64>, mut f: impl FnMut(u32, Pos)) {
        let Some(c) = self.raster.cell(p) else { return };
        let v = self.raster.cells[c];
        if v < BOUNDARY {
            f(v, Pos::Inside);
        } else if v != EMPTY {
            let b = (v & !BOUNDARY) as usize;
            let list = &self.raster.cands[self.raster.cand_start[b] as usize..self.raster.cand_start[b + 1] as usize];
            for &g in list {
                let pos = self.grid_pos(g as usize, p);
                if pos != Pos::Outside {
                    f(g, pos);
                }
            }
        }
    }

    #[inline]
    fn debug_check(&self, city: &City) {
        debug_assert_eq!(self.city_grids, city.grids.len(), "GridIndex used with another city than it was built from");
    }

    /// The unit grid of `p` (WGS84 lon/lat). See the [module documentation](self) for the
    /// rules (shared edges → smallest code; outside → nearest edge in metres).
    pub fn locate(&self, city: &City, p: Coord<f64>) -> Location {
        self.debug_check(city);
        if !(p.x.is_finite() && p.y.is_finite()) {
            return Location::Nowhere;
        }
        let mut first = None;
        let mut on_boundary = false;
        self.for_each_containing(p, |g, pos| {
            first.get_or_insert(g);
            on_boundary |= pos == Pos::OnBoundary;
        });
        if let Some(g) = first {
            return Location::Inside { grid: self.ids[g as usize], on_boundary };
        }
        match self.nearest_edge(p) {
            Some((g, d)) => Location::Outside { nearest: self.ids[g as usize], distance_m: d },
            None => Location::Nowhere,
        }
    }

    /// The local grid with the nearest edge to `p` and that distance in metres (smallest code on
    /// a tie); by brute force where the plane cannot bound distances.
    fn nearest_edge(&self, p: Coord<f64>) -> Option<(u32, f64)> {
        let extent = self.extent?;
        let from = DistanceFrom::new(p);
        let mut best = (f64::INFINITY, u32::MAX);
        let consider = |best: &mut (f64, u32), (v, g): (u32, u32)| {
            let d = from.to_segment_m(self.verts[v as usize], self.verts[v as usize + 1]);
            if d < best.0 || (d == best.0 && g < best.1) {
                *best = (d, g);
            }
        };
        match self.plane.search_stretch(p, extent) {
            Some(stretch) => {
                let q = self.plane.to_xy(p);
                for (e, d2) in self.edges.nearest_neighbor_iter_with_distance_2(&q) {
                    // Edges come in plane order; plane ≤ stretch × true ≤ stretch × ours.
                    if d2.sqrt() > best.0 * stretch + PLANE_SLACK_M {
                        break;
                    }
                    consider(&mut best, e.data);
                }
            }
            None => self.edges.iter().for_each(|e| consider(&mut best, e.data)),
        }
        (best.1 != u32::MAX).then_some((best.1, best.0))
    }

    /// [`GridIndex::locate`] plus every unit grid within `accuracy_m` metres of `p` (a GPS
    /// accuracy disc): distance 0 for grids whose closed polygon contains `p`, else the
    /// distance to the grid's nearest edge; sorted by distance, then code. `ambiguous` when
    /// more than one grid is a candidate. A negative or NaN accuracy counts as 0 (the grids
    /// containing the point, and any whose distance rounds to 0); an infinite one takes every
    /// grid.
    pub fn locate_within(&self, city: &City, p: Coord<f64>, accuracy_m: f64) -> LocateAnswer {
        let location = self.locate(city, p);
        if location == Location::Nowhere {
            return LocateAnswer { location, candidates: Vec::new(), ambiguous: false };
        }
        let r = if accuracy_m > 0.0 { accuracy_m } else { 0.0 };
        let mut found: Vec<(u32, f64)> = Vec::new();
        self.for_each_containing(p, |g, _| found.push((g, 0.0)));
        let containing = found.len();
        // Also for r = 0: a point a few ulps off a grid's edge is outside it by the exact
        // predicate, yet its distance rounds to 0, so that grid is a candidate too.
        {
            let from = DistanceFrom::new(p);
            let mut consider = |(v, g): (u32, u32)| {
                if found[..containing].iter().any(|&(c, _)| c == g) {
                    return;
                }
                let d = from.to_segment_m(self.verts[v as usize], self.verts[v as usize + 1]);
                if d <= r {
                    found.push((g, d));
                }
            };
            let extent = self.extent.expect("grids with geometry");
            match self.plane.search_stretch(p, extent) {
                Some(stretch) => {
                    let reach = r * stretch + PLANE_SLACK_M;
                    for e in self.edges.locate_within_distance(self.plane.to_xy(p), reach * reach) {
                        consider(e.data);
                    }
                }
                None => self.edges.iter().for_each(|e| consider(e.data)),
            }
        }
        // Per grid its least distance, then nearest first and by code.
        found.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        found.dedup_by_key(|c| c.0);
        found.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        let candidates: Vec<Candidate> = found.into_iter().map(|(g, d)| Candidate { grid: self.ids[g as usize], distance_m: d }).collect();
        LocateAnswer { location, ambiguous: candidates.len() > 1, candidates }
    }

    /// Number of unit grids indexed.
    pub fn unit_grids(&self) -> usize {
        self.ids.len()
    }

    /// The plane the edge R-tree lives in (centred on the unit grids' bounding box).
    pub fn plane(&self) -> &LocalPlane {
        &self.plane
    }

    /// Bounding box (lon/lat) of all unit grids.
    pub fn extent(&self) -> Option<Rect<f64>> {
        self.extent
    }

    /// Raster shape and cell classes.
    pub fn stats(&self) -> RasterStats {
        let r = &self.raster;
        let boundary = r.cand_start.len() - 1;
        let empty = r.cells.iter().filter(|&&c| c == EMPTY).count();
        RasterStats {
            unit_grids: self.ids.len(),
            nx: r.nx,
            ny: r.ny,
            cell_m: [r.dx * self.plane.to_xy(Coord { x: self.plane.lon0 + 1.0, y: self.plane.lat0 })[0], r.dy * crate::crs::METRES_PER_DEGREE],
            interior_cells: r.cells.len() - boundary - empty,
            boundary_cells: boundary,
            empty_cells: empty,
            mean_candidates: if boundary == 0 { 0.0 } else { r.cands.len() as f64 / boundary as f64 },
        }
    }

    /// Rough heap size in bytes (raster, geometry copy, edge R-tree).
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        size_of::<Self>()
            + self.ids.capacity() * size_of::<GridId>()
            + self.bboxes.capacity() * size_of::<[f64; 4]>()
            + (self.grid_polys.capacity() + self.poly_rings.capacity() + self.ring_verts.capacity()) * 4
            + self.verts.capacity() * size_of::<Coord<f64>>()
            + (self.raster.cells.capacity() + self.raster.cand_start.capacity() + self.raster.cands.capacity()) * 4
            + rtree_bytes(self.edges.root())
    }
}

/// Heap bytes of an R-tree below `node`.
pub(crate) fn rtree_bytes<T: RTreeObject>(node: &ParentNode<T>) -> usize {
    let children = node.children();
    std::mem::size_of_val(children)
        + children
            .iter()
            .map(|c| match c {
                RTreeNode::Parent(p) => rtree_bytes(p),
                RTreeNode::Leaf(_) => 0,
            })
            .sum::<usize>()
}
