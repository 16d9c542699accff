//! The synthetic road network and the outlines built from it.
//!
//! Roads form a warped quad lattice: lattice vertex (i, j) sits at (i·s, j·s) plus a smooth
//! large-scale warp (a few long sine waves, so long roads curve) plus a small per-vertex jitter.
//! Each lattice edge is a road segment: a polyline with one to three slightly displaced
//! intermediate points, stored once in its canonical direction. A cell of the lattice is a
//! block (街坊). Every outline (district, street, community, unit grid) is a set of cells traced
//! along these stored polylines, so neighbouring outlines share their edges point for point
//! and areas add up exactly.

use std::collections::{HashMap, VecDeque};
use std::f64::consts::{PI, TAU};

use geo_types::{Coord, LineString, MultiPolygon, Polygon};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A point in local metres: x east, y north of the city centre.
pub(crate) type P = [f64; 2];

/// Largest displacement of a lattice vertex from its warped position, as a share of `s`.
const JITTER: f64 = 0.10;
/// Slope of one warp wave (three waves per axis); keeps the warp a smooth bijection.
const WAVE_SLOPE: f64 = 0.065;
/// Largest sideways bend of a road segment, as a share of its length.
const BEND: f64 = 0.025;
/// Extra sideways noise of each intermediate point, as a share of the segment length.
const WOBBLE: f64 = 0.01;

/// Local tangent plane at the city centre: metres east/north ↔ lon/lat degrees, with the
/// WGS84 radii of curvature at the centre's latitude (accurate to ~1e-4 over a district).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Frame {
    lon0: f64,
    lat0: f64,
    deg_per_m_x: f64,
    deg_per_m_y: f64,
}

impl Frame {
    pub fn new(center: [f64; 2]) -> Frame {
        const A: f64 = 6_378_137.0;
        const E2: f64 = 0.006_694_379_990_14;
        let phi = center[1].to_radians();
        let w = 1.0 - E2 * phi.sin().powi(2);
        let n = A / w.sqrt();
        let m = A * (1.0 - E2) / (w * w.sqrt());
        Frame { lon0: center[0], lat0: center[1], deg_per_m_x: (1.0 / (n * phi.cos())).to_degrees(), deg_per_m_y: (1.0 / m).to_degrees() }
    }

    pub fn to_ll(self, p: P) -> Coord<f64> {
        Coord { x: self.lon0 + p[0] * self.deg_per_m_x, y: self.lat0 + p[1] * self.deg_per_m_y }
    }
}

/// The road lattice: `nx × ny` cells (blocks), their corner vertices and the road polylines.
pub(crate) struct Lattice {
    pub nx: usize,
    pub ny: usize,
    /// Nominal block size in metres.
    pub s: f64,
    /// Every point in local metres: the `(nx+1)(ny+1)` lattice vertices first, then the
    /// intermediate points of every edge.
    pub pts: Vec<P>,
    /// The same points in lon/lat, each converted once so shared edges stay bit-identical.
    pub pts_ll: Vec<Coord<f64>>,
    /// Intermediate points of edge `e` are `pts[mid_start[e]..mid_start[e + 1]]`, in the
    /// edge's canonical direction (towards +x or +y).
    mid_start: Vec<u32>,
    /// Area of each cell in m².
    pub cell_area: Vec<f64>,
    /// Mean of each cell's four corners, local metres.
    pub cell_centre: Vec<P>,
}

struct Wave {
    amp: f64,
    k: [f64; 2],
    phase: f64,
}

impl Lattice {
    /// A lattice of `nx × ny` blocks of nominal size `s` metres, centred on the frame's origin.
    pub fn new(nx: usize, ny: usize, s: f64, frame: &Frame, rng: &mut ChaCha8Rng) -> Lattice {
        let waves: Vec<Vec<Wave>> = (0..2)
            .map(|_| {
                (0..3)
                    .map(|_| {
                        let lambda = s * rng.random_range(20.0..50.0);
                        let angle: f64 = rng.random_range(0.0..TAU);
                        Wave { amp: WAVE_SLOPE * lambda / TAU, k: [angle.cos() * TAU / lambda, angle.sin() * TAU / lambda], phase: rng.random_range(0.0..TAU) }
                    })
                    .collect()
            })
            .collect();
        let nv = (nx + 1) * (ny + 1);
        let ne = nx * (ny + 1) + (nx + 1) * ny;
        let mut pts: Vec<P> = Vec::with_capacity(nv + 2 * ne);
        let (ox, oy) = (nx as f64 * s / 2.0, ny as f64 * s / 2.0);
        for j in 0..=ny {
            for i in 0..=nx {
                let b = [i as f64 * s - ox, j as f64 * s - oy];
                let mut p = b;
                for (axis, ws) in waves.iter().enumerate() {
                    for w in ws {
                        p[axis] += w.amp * (w.k[0] * b[0] + w.k[1] * b[1] + w.phase).sin();
                    }
                }
                let r = JITTER * s * rng.random::<f64>().sqrt();
                let a: f64 = rng.random_range(0.0..TAU);
                p[0] += r * a.cos();
                p[1] += r * a.sin();
                pts.push(p);
            }
        }
        let mut lattice =
            Lattice { nx, ny, s, pts: Vec::new(), pts_ll: Vec::new(), mid_start: Vec::with_capacity(ne + 1), cell_area: Vec::new(), cell_centre: Vec::new() };
        for e in 0..ne {
            lattice.mid_start.push(pts.len() as u32);
            let (a, b) = lattice.edge_ends(e);
            let (pa, pb) = (pts[a as usize], pts[b as usize]);
            let d = [pb[0] - pa[0], pb[1] - pa[1]];
            let len = d[0].hypot(d[1]);
            let n = [-d[1] / len, d[0] / len];
            let m = rng.random_range(1..=3usize);
            let bend = rng.random_range(-BEND..BEND) * len;
            for k in 0..m {
                let t0 = (k as f64 + 1.0) / (m as f64 + 1.0);
                let t = (t0 + rng.random_range(-0.06..0.06)).clamp(0.2, 0.8);
                let off = bend * (PI * t).sin() + rng.random_range(-WOBBLE..WOBBLE) * len;
                pts.push([pa[0] + d[0] * t + n[0] * off, pa[1] + d[1] * t + n[1] * off]);
            }
        }
        lattice.mid_start.push(pts.len() as u32);
        lattice.pts_ll = pts.iter().map(|&p| frame.to_ll(p)).collect();
        lattice.pts = pts;
        let mut ring = Vec::with_capacity(16);
        for c in 0..nx * ny {
            ring.clear();
            lattice.expand(&lattice.cell_corners(c), &mut ring);
            lattice.cell_area.push(lattice.ring_area(&ring));
            let corners = lattice.cell_corners(c).map(|v| lattice.pts[v as usize]);
            lattice.cell_centre.push([corners.iter().map(|p| p[0]).sum::<f64>() / 4.0, corners.iter().map(|p| p[1]).sum::<f64>() / 4.0]);
        }
        lattice
    }

    pub fn cells(&self) -> usize {
        self.nx * self.ny
    }

    fn vid(&self, i: usize, j: usize) -> u32 {
        (j * (self.nx + 1) + i) as u32
    }

    fn horizontal_edges(&self) -> usize {
        self.nx * (self.ny + 1)
    }

    /// Number of lattice edges (road segments).
    pub fn edges(&self) -> usize {
        self.horizontal_edges() + (self.nx + 1) * self.ny
    }

    /// End vertices of edge `e` in its canonical direction.
    pub fn edge_ends(&self, e: usize) -> (u32, u32) {
        let h = self.horizontal_edges();
        if e < h {
            let (i, j) = (e % self.nx, e / self.nx);
            (self.vid(i, j), self.vid(i + 1, j))
        } else {
            let e = e - h;
            let (i, j) = (e % (self.nx + 1), e / (self.nx + 1));
            (self.vid(i, j), self.vid(i, j + 1))
        }
    }

    /// The cells on the left and on the right of edge `e` walked in its canonical direction.
    pub fn edge_sides(&self, e: usize) -> (Option<usize>, Option<usize>) {
        let h = self.horizontal_edges();
        let (nx, ny) = (self.nx, self.ny);
        if e < h {
            // From (i, j) to (i+1, j): cell (i, j) lies above (left), (i, j-1) below (right).
            let (i, j) = (e % nx, e / nx);
            ((j < ny).then(|| j * nx + i), (j > 0).then(|| (j - 1) * nx + i))
        } else {
            // From (i, j) to (i, j+1): cell (i-1, j) lies left, (i, j) right.
            let e = e - h;
            let (i, j) = (e % (nx + 1), e / (nx + 1));
            ((i > 0).then(|| j * nx + i - 1), (i < nx).then(|| j * nx + i))
        }
    }

    /// The lattice edge joining two adjacent vertices, and whether `a → b` is its canonical direction.
    fn edge_of(&self, a: u32, b: u32) -> (usize, bool) {
        let w = (self.nx + 1) as u32;
        let (ai, aj, bi, bj) = (a % w, a / w, b % w, b / w);
        if aj == bj {
            debug_assert_eq!(ai.abs_diff(bi), 1);
            ((aj as usize) * self.nx + ai.min(bi) as usize, ai < bi)
        } else {
            debug_assert!(ai == bi && aj.abs_diff(bj) == 1);
            (self.horizontal_edges() + aj.min(bj) as usize * (self.nx + 1) + ai as usize, aj < bj)
        }
    }

    /// The points of edge `e` from end to end in its canonical direction (both vertices included).
    pub fn edge_points(&self, e: usize, out: &mut Vec<u32>) {
        let (a, b) = self.edge_ends(e);
        out.push(a);
        out.extend(self.mid_start[e]..self.mid_start[e + 1]);
        out.push(b);
    }

    /// Corners of cell `c`, counter-clockwise from the south-west.
    pub fn cell_corners(&self, c: usize) -> [u32; 4] {
        let (i, j) = (c % self.nx, c / self.nx);
        [self.vid(i, j), self.vid(i + 1, j), self.vid(i + 1, j + 1), self.vid(i, j + 1)]
    }

    /// The four neighbours of cell `c` (south, east, north, west) where they exist.
    pub fn neighbours(&self, c: usize) -> [Option<usize>; 4] {
        let (i, j) = (c % self.nx, c / self.nx);
        [(j > 0).then(|| c - self.nx), (i + 1 < self.nx).then(|| c + 1), (j + 1 < self.ny).then(|| c + self.nx), (i > 0).then(|| c - 1)]
    }

    /// Expands a closed ring of lattice vertices into point ids along the road polylines
    /// (not repeating the first point at the end).
    pub fn expand(&self, ring: &[u32], out: &mut Vec<u32>) {
        for k in 0..ring.len() {
            let (a, b) = (ring[k], ring[(k + 1) % ring.len()]);
            out.push(a);
            let (e, forward) = self.edge_of(a, b);
            let mids = self.mid_start[e]..self.mid_start[e + 1];
            if forward {
                out.extend(mids);
            } else {
                out.extend(mids.rev());
            }
        }
    }

    /// Signed area (m², counter-clockwise positive) of a ring of point ids.
    pub fn ring_area(&self, ring: &[u32]) -> f64 {
        let o = self.pts[ring[0] as usize];
        let mut twice = 0.0;
        for k in 0..ring.len() {
            let p = self.pts[ring[k] as usize];
            let q = self.pts[ring[(k + 1) % ring.len()] as usize];
            twice += (p[0] - o[0]) * (q[1] - o[1]) - (q[0] - o[0]) * (p[1] - o[1]);
        }
        twice / 2.0
    }

    /// The outline of a set of cells as lattice vertices, counter-clockwise, if the set is a
    /// topological disc: one 4-connected piece, no hole, no vertex where it touches itself
    /// diagonally (a pinch). `None` otherwise.
    pub fn trace(&self, cells: &[u32], inside: impl Fn(usize) -> bool) -> Option<Vec<u32>> {
        let mut next: HashMap<u32, u32> = HashMap::with_capacity(cells.len() * 2 + 4);
        let mut start = u32::MAX;
        for &c in cells {
            let c = c as usize;
            let [v00, v10, v11, v01] = self.cell_corners(c);
            let [s, e, n, w] = self.neighbours(c);
            let sides = [(s, v00, v10), (e, v10, v11), (n, v11, v01), (w, v01, v00)];
            for (nb, a, b) in sides {
                if !nb.is_some_and(&inside) {
                    // A second boundary edge leaving the same vertex means a pinch.
                    if next.insert(a, b).is_some() {
                        return None;
                    }
                    start = start.min(a);
                }
            }
        }
        if next.is_empty() {
            return None;
        }
        let mut ring = Vec::with_capacity(next.len());
        let mut v = start;
        loop {
            ring.push(v);
            v = next[&v];
            if v == start {
                break;
            }
            if ring.len() > next.len() {
                return None;
            }
        }
        // Any boundary edge not on this ring belongs to a hole or another piece.
        (ring.len() == next.len()).then_some(ring)
    }

    /// A traced outline as a lon/lat polygon (exterior counter-clockwise, closed, no holes).
    pub fn polygon(&self, outline: &[u32]) -> MultiPolygon<f64> {
        let mut ids = Vec::with_capacity(outline.len() * 3 + 1);
        self.expand(outline, &mut ids);
        ids.push(ids[0]);
        let coords: Vec<Coord<f64>> = ids.iter().map(|&i| self.pts_ll[i as usize]).collect();
        MultiPolygon(vec![Polygon::new(LineString(coords), vec![])])
    }
}

/// Chooses the district's cells: those whose centre lies in a seeded irregular blob sized to
/// `area` m², made 4-connected, hole-free and pinch-free. Returns the cells in index order.
pub(crate) fn district_cells(lattice: &Lattice, area: f64, rng: &mut ChaCha8Rng) -> Vec<u32> {
    let harmonics: Vec<(f64, f64, f64)> = (2..=5)
        .map(|k| {
            let amp = rng.random_range(0.03..0.09) * if k == 2 { 1.5 } else { 1.0 };
            (k as f64, amp, rng.random_range(0.0..TAU))
        })
        .collect();
    let in_blob = |c: usize, r0: f64| {
        let p = lattice.cell_centre[c];
        let theta = p[1].atan2(p[0]);
        let r = r0 * (1.0 + harmonics.iter().map(|&(k, a, ph)| a * (k * theta + ph).cos()).sum::<f64>());
        p[0].hypot(p[1]) < r
    };
    let blob_area = |r0: f64| (0..lattice.cells()).filter(|&c| in_blob(c, r0)).map(|c| lattice.cell_area[c]).sum::<f64>();
    // Bisection on the base radius: the blob's area grows with it.
    let (mut lo, mut hi) = (0.3 * (area / PI).sqrt(), 1.5 * (area / PI).sqrt());
    for _ in 0..40 {
        let mid = 0.5 * (lo + hi);
        if blob_area(mid) < area {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let r0 = if (blob_area(lo) - area).abs() <= (blob_area(hi) - area).abs() { lo } else { hi };
    let mut member: Vec<bool> = (0..lattice.cells()).map(|c| in_blob(c, r0)).collect();
    keep_largest_piece(lattice, &mut member);
    loop {
        let mut changed = fill_holes(lattice, &mut member);
        changed |= fix_pinches(lattice, &mut member);
        if !changed {
            break;
        }
    }
    (0..lattice.cells()).filter(|&c| member[c]).map(|c| c as u32).collect()
}

fn keep_largest_piece(lattice: &Lattice, member: &mut [bool]) {
    let mut piece = vec![usize::MAX; member.len()];
    let mut best = (0usize, usize::MAX);
    let mut queue = VecDeque::new();
    for c in 0..member.len() {
        if !member[c] || piece[c] != usize::MAX {
            continue;
        }
        let mut size = 0;
        piece[c] = c;
        queue.push_back(c);
        while let Some(x) = queue.pop_front() {
            size += 1;
            for y in lattice.neighbours(x).into_iter().flatten() {
                if member[y] && piece[y] == usize::MAX {
                    piece[y] = c;
                    queue.push_back(y);
                }
            }
        }
        if size > best.0 {
            best = (size, c);
        }
    }
    for c in 0..member.len() {
        member[c] = member[c] && piece[c] == best.1;
    }
}

/// Adds every non-member cell the outside cannot reach through 4-adjacent non-member cells.
fn fill_holes(lattice: &Lattice, member: &mut [bool]) -> bool {
    let (nx, ny) = (lattice.nx, lattice.ny);
    let mut outside = vec![false; member.len()];
    let mut queue = VecDeque::new();
    for c in 0..member.len() {
        let (i, j) = (c % nx, c / nx);
        if (i == 0 || j == 0 || i + 1 == nx || j + 1 == ny) && !member[c] {
            outside[c] = true;
            queue.push_back(c);
        }
    }
    while let Some(x) = queue.pop_front() {
        for y in lattice.neighbours(x).into_iter().flatten() {
            if !member[y] && !outside[y] {
                outside[y] = true;
                queue.push_back(y);
            }
        }
    }
    let mut changed = false;
    for c in 0..member.len() {
        if !member[c] && !outside[c] {
            member[c] = true;
            changed = true;
        }
    }
    changed
}

/// Where the set holds two diagonal cells around a vertex but neither of the other two,
/// adds one of the other two.
fn fix_pinches(lattice: &Lattice, member: &mut [bool]) -> bool {
    let nx = lattice.nx;
    let mut changed = false;
    for j in 1..lattice.ny {
        for i in 1..nx {
            let (sw, se, nw, ne) = ((j - 1) * nx + i - 1, (j - 1) * nx + i, j * nx + i - 1, j * nx + i);
            if member[sw] && member[ne] && !member[se] && !member[nw] {
                member[se] = true;
                changed = true;
            } else if member[se] && member[nw] && !member[sw] && !member[ne] {
                member[sw] = true;
                changed = true;
            }
        }
    }
    changed
}

/// True if giving cell `c` to region `r` would make `r` touch itself only diagonally at one of
/// `c`'s corners. `owner(x)` is the region of cell x, or a negative value.
pub(crate) fn creates_pinch(lattice: &Lattice, owner: &[i32], c: usize, r: i32) -> bool {
    let (nx, ny) = (lattice.nx as isize, lattice.ny as isize);
    let (i, j) = ((c % lattice.nx) as isize, (c / lattice.nx) as isize);
    let at = |x: isize, y: isize| {
        if x < 0 || y < 0 || x >= nx || y >= ny { -1 } else { owner[(y * nx + x) as usize] }
    };
    [(-1, -1), (1, -1), (1, 1), (-1, 1)].into_iter().any(|(dx, dy)| at(i + dx, j + dy) == r && at(i + dx, j) != r && at(i, j + dy) != r)
}
