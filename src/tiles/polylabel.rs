//! Label points: the pole of inaccessibility (the interior point farthest from the outline,
//! Mapbox's "polylabel" search over a quadtree of cells), in planar (world) coordinates.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// The pole of inaccessibility of a polygon (exterior first, then holes; closed or not),
/// found to within `precision`. Falls back to the first vertex for a degenerate polygon.
pub fn polylabel(rings: &[Vec<[f64; 2]>], precision: f64) -> [f64; 2] {
    let ext = &rings[0];
    let (mut x0, mut y0, mut x1, mut y1) = (f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY);
    for p in ext {
        x0 = x0.min(p[0]);
        y0 = y0.min(p[1]);
        x1 = x1.max(p[0]);
        y1 = y1.max(p[1]);
    }
    let (w, h) = (x1 - x0, y1 - y0);
    let size = w.min(h);
    if size.is_nan() || size <= 0.0 {
        return ext[0];
    }
    let precision = precision.max(size * 1e-6);
    let mut queue = BinaryHeap::new();
    let mut h2 = size / 2.0;
    let mut x = x0;
    while x < x1 {
        let mut y = y0;
        while y < y1 {
            queue.push(Cell::new(x + h2, y + h2, h2, rings));
            y += size;
        }
        x += size;
    }
    // The centroid is a good first guess; so is the bounding box centre.
    let mut best = Cell::new(centroid(ext)[0], centroid(ext)[1], 0.0, rings);
    let bbox = Cell::new(x0 + w / 2.0, y0 + h / 2.0, 0.0, rings);
    if bbox.d > best.d {
        best = bbox;
    }
    let mut splits = 0;
    while let Some(cell) = queue.pop() {
        if cell.d > best.d {
            best = cell;
        }
        if cell.max - best.d <= precision {
            continue;
        }
        splits += 1;
        if splits > 5_000 {
            break;
        }
        h2 = cell.h / 2.0;
        for (dx, dy) in [(-h2, -h2), (h2, -h2), (-h2, h2), (h2, h2)] {
            queue.push(Cell::new(cell.x + dx, cell.y + dy, h2, rings));
        }
    }
    [best.x, best.y]
}

#[derive(Clone, Copy)]
struct Cell {
    x: f64,
    y: f64,
    h: f64,
    /// Signed distance from the centre to the outline (positive inside).
    d: f64,
    /// Upper bound of the distance within the cell.
    max: f64,
}

impl Cell {
    fn new(x: f64, y: f64, h: f64, rings: &[Vec<[f64; 2]>]) -> Cell {
        let d = signed_distance([x, y], rings);
        Cell { x, y, h, d, max: d + h * std::f64::consts::SQRT_2 }
    }
}

impl PartialEq for Cell {
    fn eq(&self, o: &Cell) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Cell {}
impl PartialOrd for Cell {
    fn partial_cmp(&self, o: &Cell) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cell {
    fn cmp(&self, o: &Cell) -> Ordering {
        self.max.total_cmp(&o.max).then(o.x.total_cmp(&self.x)).then(o.y.total_cmp(&self.y))
    }
}

fn signed_distance(p: [f64; 2], rings: &[Vec<[f64; 2]>]) -> f64 {
    let mut inside = false;
    let mut min = f64::INFINITY;
    for ring in rings {
        let n = ring.len();
        for i in 0..n {
            let (a, b) = (ring[i], ring[(i + 1) % n]);
            if (a[1] > p[1]) != (b[1] > p[1]) && p[0] < (b[0] - a[0]) * (p[1] - a[1]) / (b[1] - a[1]) + a[0] {
                inside = !inside;
            }
            min = min.min(segment_dist2(p, a, b));
        }
    }
    let d = min.sqrt();
    if inside { d } else { -d }
}

fn segment_dist2(p: [f64; 2], a: [f64; 2], b: [f64; 2]) -> f64 {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let l2 = dx * dx + dy * dy;
    let t = if l2 == 0.0 { 0.0 } else { (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / l2).clamp(0.0, 1.0) };
    let (qx, qy) = (a[0] + t * dx - p[0], a[1] + t * dy - p[1]);
    qx * qx + qy * qy
}

fn centroid(ring: &[[f64; 2]]) -> [f64; 2] {
    let o = ring[0];
    let (mut a, mut cx, mut cy) = (0.0, 0.0, 0.0);
    let n = ring.len();
    for i in 0..n {
        let (p, q) = (ring[i], ring[(i + 1) % n]);
        let (px, py, qx, qy) = (p[0] - o[0], p[1] - o[1], q[0] - o[0], q[1] - o[1]);
        let f = px * qy - qx * py;
        a += f;
        cx += (px + qx) * f;
        cy += (py + qy) * f;
    }
    if a == 0.0 {
        return o;
    }
    [o[0] + cx / (3.0 * a), o[1] + cy / (3.0 * a)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_l_shape_gets_a_point_inside_its_wide_part() {
        // An L: the centroid region is near the inner corner; the label must be inside.
        let l = vec![[0.0, 0.0], [10.0, 0.0], [10.0, 2.0], [2.0, 2.0], [2.0, 10.0], [0.0, 10.0]];
        let p = polylabel(std::slice::from_ref(&l), 0.01);
        assert!(signed_distance(p, &[l]) > 0.9, "{p:?}");
        // A square with a hole in the middle: the label avoids the hole.
        let sq = vec![[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]];
        let hole = vec![[3.0, 3.0], [7.0, 3.0], [7.0, 7.0], [3.0, 7.0]];
        let p = polylabel(&[sq.clone(), hole.clone()], 0.01);
        assert!(signed_distance(p, &[sq, hole]) > 1.0, "{p:?}");
    }
}
