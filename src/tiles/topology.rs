//! Topology-preserving simplification of one level's polygons.
//!
//! The rings of a level are cut into arcs at their nodes (a vertex whose neighbours differ
//! between the rings passing through it: where three grids meet, where a shared edge leaves
//! the level's outer boundary, or where a ring touches itself), equal arcs are stored once,
//! and each arc is simplified once with Douglas–Peucker, its end points fixed. Each ring is
//! then reassembled from its arcs, so two neighbours always draw the identical seam.
//!
//! Simplification is computed for every zoom at once: each vertex gets the significance at
//! which Douglas–Peucker would keep it (its own distance, capped by its ancestors' in the
//! recursion), turned into the first zoom whose tolerance is below it. Drawing at zoom z
//! takes the vertices whose first zoom is ≤ z, which is exactly Douglas–Peucker's result for
//! that zoom's tolerance.

use std::collections::HashMap;

/// One polygon given to [`Topology::build`]: exterior ring first, then holes; quantised
/// world coordinates, any winding, closing point optional.
pub struct PolygonIn {
    pub rings: Vec<Vec<[u32; 2]>>,
}

/// Arcs and the rings made of them, for all the polygons of some levels.
#[derive(Default)]
pub struct Topology {
    /// Vertices of every arc, arc after arc.
    pts: Vec<[u32; 2]>,
    /// Per vertex: first zoom that draws it (0 for arc ends, `u8::MAX` never).
    minz: Vec<u8>,
    /// Arc `a` is `pts[arc_start[a]..arc_start[a + 1]]`.
    arc_start: Vec<u32>,
    /// Ring `r` is the arcs `ring_arcs[ring_start[r]..ring_start[r + 1]]`, each `arc << 1 |
    /// reversed`.
    ring_arcs: Vec<u32>,
    ring_start: Vec<u32>,
    /// Polygon `p` is rings `poly_start[p]..poly_start[p + 1]`, the exterior first.
    poly_start: Vec<u32>,
}

/// Douglas–Peucker tolerance in tile units (1/4096 of a tile at the default extent).
pub const TOLERANCE_UNITS: f64 = 1.0;

impl Topology {
    pub fn new() -> Topology {
        Topology { arc_start: vec![0], ring_start: vec![0], poly_start: vec![0], ..Default::default() }
    }

    /// Adds one level's polygons; returns the range of polygon indices they got (in input
    /// order; a polygon whose exterior has fewer than 3 distinct points is left out, so the
    /// returned map gives each input polygon's index or `None`).
    ///
    /// Exterior rings are oriented clockwise in tile coordinates (positive surveyor's area
    /// with y down, MVT 2.1's exterior), holes the other way.
    pub fn add_level(&mut self, polygons: &[PolygonIn], extent: u32, max_zoom: u8) -> Vec<Option<u32>> {
        // 1. Vertex ids and oriented rings.
        let mut ids: HashMap<[u32; 2], u32> = HashMap::new();
        let mut coords: Vec<[u32; 2]> = Vec::new();
        // (polygon input index, ring vertex ids)
        let mut rings: Vec<(usize, Vec<u32>)> = Vec::new();
        let mut kept = vec![false; polygons.len()];
        for (pi, poly) in polygons.iter().enumerate() {
            for (ri, ring) in poly.rings.iter().enumerate() {
                let mut r: Vec<[u32; 2]> = Vec::with_capacity(ring.len());
                for &p in ring {
                    if r.last() != Some(&p) {
                        r.push(p);
                    }
                }
                while r.len() > 1 && r.first() == r.last() {
                    r.pop();
                }
                if r.len() < 3 {
                    if ri == 0 {
                        break;
                    }
                    continue;
                }
                let a = signed_area(&r);
                if a == 0.0 {
                    if ri == 0 {
                        break;
                    }
                    continue;
                }
                if (ri == 0) != (a > 0.0) {
                    r.reverse();
                }
                let vids = r
                    .iter()
                    .map(|p| {
                        *ids.entry(*p).or_insert_with(|| {
                            coords.push(*p);
                            (coords.len() - 1) as u32
                        })
                    })
                    .collect();
                if ri == 0 {
                    kept[pi] = true;
                }
                rings.push((pi, vids));
            }
        }

        // 2. Nodes: vertices whose neighbour pairs differ between their passages.
        const UNSET: (u32, u32) = (u32::MAX, u32::MAX);
        let mut pair = vec![UNSET; coords.len()];
        let mut node = vec![false; coords.len()];
        for (_, r) in &rings {
            let n = r.len();
            for i in 0..n {
                let (p, q) = (r[(i + n - 1) % n], r[(i + 1) % n]);
                let pq = (p.min(q), p.max(q));
                let v = r[i] as usize;
                if pair[v] == UNSET {
                    pair[v] = pq;
                } else if pair[v] != pq {
                    node[v] = true;
                }
            }
        }
        // A vertex passed twice by the same ring with the same neighbours cannot happen in a
        // ring without repeated points, so the above also catches rings touching themselves
        // (their two passages have different neighbours).

        // 3. Arcs, deduplicated by their first edge in canonical direction.
        // First edge (canonical) → arcs starting with it: (arc id, vertex ids).
        type Candidates = Vec<(u32, Vec<u32>)>;
        let mut arc_of: HashMap<(u32, u32), Candidates> = HashMap::new();
        let mut poly_index = vec![None; polygons.len()];
        let mut current_poly = usize::MAX;
        for (pi, r) in &rings {
            if !kept[*pi] {
                continue;
            }
            if *pi != current_poly {
                current_poly = *pi;
                poly_index[*pi] = Some((self.poly_start.len() - 1) as u32);
                self.poly_start.push(*self.poly_start.last().expect("sentinel"));
            }
            let n = r.len();
            let nodes: Vec<usize> = (0..n).filter(|&i| node[r[i] as usize]).collect();
            let mut pieces: Vec<Vec<u32>> = Vec::new();
            if nodes.is_empty() {
                // A ring with no node: start at its smallest vertex id, so every ring with
                // these vertices makes the same (closed) arc; its direction is made canonical
                // below like any other arc's.
                let s = (0..n).min_by_key(|&i| r[i]).expect("non-empty");
                pieces.push((0..=n).map(|k| r[(s + k) % n]).collect());
            } else {
                for (k, &a) in nodes.iter().enumerate() {
                    let b = if k + 1 < nodes.len() { nodes[k + 1] } else { nodes[0] + n };
                    pieces.push((a..=b).map(|i| r[i % n]).collect());
                }
            }
            for piece in pieces {
                let last = piece.len() - 1;
                let fkey = (piece[0], piece[1]);
                let rkey = (piece[last], piece[last - 1]);
                let (key, reversed) = if rkey < fkey { (rkey, true) } else { (fkey, false) };
                let candidates = arc_of.entry(key).or_default();
                let same = |stored: &Vec<u32>| {
                    if reversed { stored.iter().eq(piece.iter().rev()) } else { *stored == piece }
                };
                let id = match candidates.iter().find(|(_, s)| same(s)) {
                    Some((id, _)) => *id,
                    None => {
                        let canon: Vec<u32> = if reversed { piece.iter().rev().copied().collect() } else { piece.clone() };
                        let id = self.push_arc(&canon, &coords, extent, max_zoom);
                        candidates.push((id, canon));
                        id
                    }
                };
                self.ring_arcs.push(id << 1 | reversed as u32);
            }
            self.ring_start.push(self.ring_arcs.len() as u32);
            *self.poly_start.last_mut().expect("sentinel") += 1;
        }
        poly_index
    }

    fn push_arc(&mut self, ids: &[u32], coords: &[[u32; 2]], extent: u32, max_zoom: u8) -> u32 {
        let pts: Vec<[u32; 2]> = ids.iter().map(|&i| coords[i as usize]).collect();
        let sig = significance(&pts);
        let q = super::mercator::Q;
        for (p, s) in pts.iter().zip(sig) {
            self.pts.push(*p);
            let mut z = 0u8;
            let minz = loop {
                if z > max_zoom {
                    break u8::MAX;
                }
                let tol = TOLERANCE_UNITS * q / (extent as f64 * (1u64 << z) as f64);
                if s > tol {
                    break z;
                }
                z += 1;
            };
            self.minz.push(minz);
        }
        self.arc_start.push(self.pts.len() as u32);
        (self.arc_start.len() - 2) as u32
    }

    pub fn polygon_rings(&self, poly: u32) -> std::ops::Range<u32> {
        self.poly_start[poly as usize]..self.poly_start[poly as usize + 1]
    }

    /// Appends ring `r` as drawn at zoom `z` (closing point not repeated) to `out`, each vertex
    /// mapped through `f(vertex index in [`Topology::points`], point)`.
    pub fn ring_at<T>(&self, r: u32, z: u8, out: &mut Vec<T>, mut f: impl FnMut(usize, [u32; 2]) -> T) {
        let arcs = &self.ring_arcs[self.ring_start[r as usize] as usize..self.ring_start[r as usize + 1] as usize];
        for (k, &a) in arcs.iter().enumerate() {
            let (id, reversed) = ((a >> 1) as usize, a & 1 == 1);
            let range = self.arc_start[id] as usize..self.arc_start[id + 1] as usize;
            let base = range.start;
            let (pts, minz) = (&self.pts[range.clone()], &self.minz[range]);
            let n = pts.len();
            // The first vertex of each arc after the first repeats the previous arc's last.
            let skip = usize::from(k > 0);
            if reversed {
                for i in (0..n - skip).rev() {
                    if minz[i] <= z {
                        out.push(f(base + i, pts[i]));
                    }
                }
            } else {
                for i in skip..n {
                    if minz[i] <= z {
                        out.push(f(base + i, pts[i]));
                    }
                }
            }
        }
        // The last arc ends where the first began.
        out.pop();
    }

    /// Every arc vertex, arc after arc (quantised world coordinates).
    pub fn points(&self) -> &[[u32; 2]] {
        &self.pts
    }

    /// Number of arcs and of arc vertices (for reports).
    pub fn sizes(&self) -> (usize, usize) {
        (self.arc_start.len() - 1, self.pts.len())
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.pts.capacity() * 8
            + self.minz.capacity()
            + (self.arc_start.capacity() + self.ring_arcs.capacity() + self.ring_start.capacity() + self.poly_start.capacity()) * 4
    }
}

/// Twice the signed area in world coordinates (y down): positive = clockwise on screen.
fn signed_area(r: &[[u32; 2]]) -> f64 {
    let o = r[0];
    let d = |p: [u32; 2]| (p[0] as f64 - o[0] as f64, p[1] as f64 - o[1] as f64);
    let mut s = 0.0;
    for w in r.windows(2).skip(1) {
        let (a, b) = (d(w[0]), d(w[1]));
        s += a.0 * b.1 - b.0 * a.1;
    }
    s
}

/// Douglas–Peucker significance of each vertex of an arc, in quantised world units: the
/// largest tolerance at which the vertex is kept. The ends are kept at any tolerance; an arc
/// that closes on itself also keeps its vertex farthest from the start.
fn significance(pts: &[[u32; 2]]) -> Vec<f64> {
    let n = pts.len();
    let mut sig = vec![0.0; n];
    sig[0] = f64::INFINITY;
    sig[n - 1] = f64::INFINITY;
    let f = |i: usize| [pts[i][0] as f64, pts[i][1] as f64];
    let mut stack: Vec<(usize, usize, f64)> = Vec::new();
    if pts[0] == pts[n - 1] {
        if n > 2 {
            let o = f(0);
            let k = (1..n - 1).max_by(|&a, &b| dist2(f(a), o).total_cmp(&dist2(f(b), o)).then(b.cmp(&a))).expect("n > 2");
            sig[k] = f64::INFINITY;
            stack.push((0, k, f64::INFINITY));
            stack.push((k, n - 1, f64::INFINITY));
        }
    } else {
        stack.push((0, n - 1, f64::INFINITY));
    }
    while let Some((i, j, parent)) = stack.pop() {
        if j <= i + 1 {
            continue;
        }
        let (a, b) = (f(i), f(j));
        let mut best = (i + 1, -1.0);
        for k in i + 1..j {
            let d = segment_dist2(f(k), a, b);
            if d > best.1 {
                best = (k, d);
            }
        }
        let s = best.1.sqrt().min(parent);
        sig[best.0] = s;
        stack.push((i, best.0, s));
        stack.push((best.0, j, s));
    }
    sig
}

fn dist2(a: [f64; 2], b: [f64; 2]) -> f64 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)
}

fn segment_dist2(p: [f64; 2], a: [f64; 2], b: [f64; 2]) -> f64 {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let l2 = dx * dx + dy * dy;
    if l2 == 0.0 {
        return dist2(p, a);
    }
    let t = (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / l2).clamp(0.0, 1.0);
    dist2(p, [a[0] + t * dx, a[1] + t * dy])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sq(x0: u32, y0: u32, s: u32) -> Vec<[u32; 2]> {
        vec![[x0, y0], [x0 + s, y0], [x0 + s, y0 + s], [x0, y0 + s]]
    }

    #[test]
    fn significance_matches_douglas_peucker() {
        // A zig-zag: for each tolerance the kept set equals a direct DP run.
        let pts: Vec<[u32; 2]> = (0..40u32).map(|i| [i * 100, 1000 + ((i * 7919) % 13) * 37 + (i % 3) * 5]).collect();
        let sig = significance(&pts);
        for tol in [0.0, 3.0, 10.0, 40.0, 100.0, 300.0, 1000.0] {
            let mut keep = vec![false; pts.len()];
            keep[0] = true;
            keep[pts.len() - 1] = true;
            dp(&pts, 0, pts.len() - 1, tol, &mut keep);
            let by_sig: Vec<bool> = sig.iter().map(|&s| s > tol).collect();
            assert_eq!(by_sig, keep, "tolerance {tol}");
        }
    }

    fn dp(pts: &[[u32; 2]], i: usize, j: usize, tol: f64, keep: &mut [bool]) {
        if j <= i + 1 {
            return;
        }
        let f = |k: usize| [pts[k][0] as f64, pts[k][1] as f64];
        let (k, d) = (i + 1..j).map(|k| (k, segment_dist2(f(k), f(i), f(j)).sqrt())).fold((0, -1.0), |b, c| if c.1 > b.1 { c } else { b });
        if d > tol {
            keep[k] = true;
            dp(pts, i, k, tol, keep);
            dp(pts, k, j, tol, keep);
        }
    }

    #[test]
    fn neighbours_share_arcs_and_rings_close() {
        // Two squares sharing the edge x = 10, with an extra vertex on it; a third square
        // below both.
        let a = vec![[0, 0], [10, 0], [10, 5], [10, 10], [0, 10]];
        let b = vec![[10, 0], [20, 0], [20, 10], [10, 10], [10, 5]];
        let c = vec![[0, 10], [10, 10], [20, 10], [20, 20], [0, 20]];
        let polys: Vec<PolygonIn> = [a, b, c].into_iter().map(|r| PolygonIn { rings: vec![r] }).collect();
        let mut t = Topology::new();
        let idx = t.add_level(&polys, 4096, 20);
        assert_eq!(idx, vec![Some(0), Some(1), Some(2)]);
        // Shared edges are stored once: a–b (10,0)…(10,10), a–c, b–c, plus the outer arcs.
        let (arcs, _) = t.sizes();
        assert_eq!(arcs, 6, "3 outer arcs, 3 shared ones");
        let mut ring = Vec::new();
        t.ring_at(0, 30, &mut ring, |_, p| p);
        assert_eq!(ring.len(), 4, "the collinear vertex (10,5) is dropped: {ring:?}");
        assert!(signed_area(&ring) > 0.0, "exterior clockwise on screen");
        // A lone square becomes one closed arc.
        let mut t = Topology::new();
        t.add_level(&[PolygonIn { rings: vec![sq(0, 0, 100), vec![[10, 10], [10, 20], [20, 20], [20, 10]]] }], 4096, 20);
        let mut ring = Vec::new();
        t.ring_at(0, 30, &mut ring, |_, p| p);
        assert_eq!(ring.len(), 4);
        let mut hole = Vec::new();
        t.ring_at(1, 30, &mut hole, |_, p| p);
        assert!(signed_area(&hole) < 0.0, "holes counter-clockwise on screen");
    }
}
