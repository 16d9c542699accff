//! Clipping rings to the buffered tile, rounding to integer tile coordinates, and the ring
//! checks that follow (collapsed rings are dropped, winding is kept).

/// Clips a closed ring (no repeated closing point) to the box `[lo, hi]²` with
/// Sutherland–Hodgman. A concave ring may come back with zero-width parts along the box
/// edge, which renderers draw correctly. An edge crossing the box is cut at a point computed
/// from its end points in a fixed order, so two rings that share the edge (in opposite
/// directions) get the bit-identical cut point.
pub fn clip_ring(ring: &[[f64; 2]], lo: f64, hi: f64, out: &mut Vec<[f64; 2]>, tmp: &mut Vec<[f64; 2]>) {
    out.clear();
    out.extend_from_slice(ring);
    for (axis, bound, keep_below) in [(0, lo, false), (0, hi, true), (1, lo, false), (1, hi, true)] {
        if out.is_empty() {
            return;
        }
        let inside = |p: &[f64; 2]| if keep_below { p[axis] <= bound } else { p[axis] >= bound };
        if out.iter().all(inside) {
            continue;
        }
        std::mem::swap(out, tmp);
        out.clear();
        let mut prev = *tmp.last().expect("non-empty");
        let mut prev_in = inside(&prev);
        for &cur in tmp.iter() {
            let cur_in = inside(&cur);
            if cur_in != prev_in {
                out.push(cut(prev, cur, axis, bound));
            }
            if cur_in {
                out.push(cur);
            }
            prev = cur;
            prev_in = cur_in;
        }
    }
}

/// The point where segment a–b crosses `p[axis] = bound`, independent of the segment's
/// direction.
fn cut(a: [f64; 2], b: [f64; 2], axis: usize, bound: f64) -> [f64; 2] {
    let (p, q) = if (a[0], a[1]) <= (b[0], b[1]) { (a, b) } else { (b, a) };
    let other = 1 - axis;
    let t = (bound - p[axis]) / (q[axis] - p[axis]);
    let mut r = [0.0; 2];
    r[axis] = bound;
    r[other] = p[other] + t * (q[other] - p[other]);
    r
}

/// Rounds a ring to integer tile coordinates, dropping repeated points (also across the
/// closing edge).
pub fn round_ring(ring: &[[f64; 2]], out: &mut Vec<[i32; 2]>) {
    out.clear();
    for p in ring {
        let q = [p[0].round() as i32, p[1].round() as i32];
        if out.last() != Some(&q) {
            out.push(q);
        }
    }
    while out.len() > 1 && out.first() == out.last() {
        out.pop();
    }
}

/// Twice the signed area by the surveyor's formula in tile coordinates (y down): positive for
/// a ring that looks clockwise on screen, which MVT 2.1 calls an exterior ring.
pub fn area2(ring: &[[i32; 2]]) -> i64 {
    if ring.len() < 3 {
        return 0;
    }
    let o = ring[0];
    let mut s = 0i64;
    for w in ring.windows(2).skip(1) {
        let (a, b) = (w[0], w[1]);
        let (ax, ay) = ((a[0] - o[0]) as i64, (a[1] - o[1]) as i64);
        let (bx, by) = ((b[0] - o[0]) as i64, (b[1] - o[1]) as i64);
        s += ax * by - bx * ay;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_to_the_box_and_keeps_inside_rings() {
        let ring = [[-10.0, -10.0], [50.0, -10.0], [50.0, 50.0], [-10.0, 50.0]];
        let (mut out, mut tmp) = (Vec::new(), Vec::new());
        clip_ring(&ring, 0.0, 20.0, &mut out, &mut tmp);
        let mut r = Vec::new();
        round_ring(&out, &mut r);
        assert_eq!(area2(&r), 2 * 400);
        assert!(r.iter().all(|p| (0..=20).contains(&p[0]) && (0..=20).contains(&p[1])));
        let inner = [[1.0, 1.0], [2.0, 1.0], [2.0, 2.0]];
        clip_ring(&inner, 0.0, 20.0, &mut out, &mut tmp);
        assert_eq!(out, inner);
        clip_ring(&inner, 5.0, 20.0, &mut out, &mut tmp);
        assert!(out.is_empty());
    }

    #[test]
    fn cut_points_do_not_depend_on_direction() {
        let (a, b) = ([-3.1, 0.7], [9.3, 12.9]);
        assert_eq!(cut(a, b, 0, 0.0).map(f64::to_bits), cut(b, a, 0, 0.0).map(f64::to_bits));
        assert_eq!(cut(a, b, 1, 4.0).map(f64::to_bits), cut(b, a, 1, 4.0).map(f64::to_bits));
    }

    #[test]
    fn screen_clockwise_is_positive() {
        assert!(area2(&[[0, 0], [10, 0], [10, 10], [0, 10]]) > 0);
        assert!(area2(&[[0, 0], [0, 10], [10, 10], [10, 0]]) < 0);
    }
}
