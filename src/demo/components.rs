//! Components along the roads: class mix, placement, codes and attributes.
//!
//! A component stands beside a road segment (a lattice edge, picked with probability
//! proportional to its length), between 5 % and 95 % of the way along it, offset 2–12 m from
//! the centreline into a block of the district; traffic lights and some cameras, booths and
//! signs stand near an intersection instead. Every point is checked to lie inside its block,
//! at least half a metre from the block's outline, so it lies inside that block's unit grid.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::catalog::{CLASS_MIX, CityKind, ClassMix, Placement, U, carriers, unit};
use super::geometry::{Frame, Lattice, P};
use crate::model::{CityBuilder, ComponentCode, ComponentFields, ModelError};

/// Smallest distance from a component to its block's outline, metres.
const MARGIN: f64 = 0.5;
/// Share of each road segment left free at either end (the intersection).
const END_GAP: f64 = 0.05;

/// Components per class, proportional to `weights` (largest remainder), none above
/// `cap`; the excess of a capped class goes to the others by weight. Deterministic.
pub(crate) fn allocate(total: usize, weights: &[f64], cap: usize) -> Option<Vec<usize>> {
    let mut counts = vec![0usize; weights.len()];
    let mut open: Vec<usize> = (0..weights.len()).filter(|&i| weights[i] > 0.0).collect();
    let mut left = total;
    while left > 0 {
        if open.is_empty() {
            return None;
        }
        let sum: f64 = open.iter().map(|&i| weights[i]).sum();
        let mut share: Vec<(usize, usize, f64)> = open
            .iter()
            .map(|&i| {
                let exact = left as f64 * weights[i] / sum;
                (i, exact.floor() as usize, exact - exact.floor())
            })
            .collect();
        let mut given: usize = share.iter().map(|s| s.1).sum();
        // Largest remainders first; ties by class order.
        let mut by_rest: Vec<usize> = (0..share.len()).collect();
        by_rest.sort_by(|&a, &b| share[b].2.total_cmp(&share[a].2).then(a.cmp(&b)));
        for &k in by_rest.iter().cycle().take(left.saturating_sub(given)) {
            share[k].1 += 1;
            given += 1;
        }
        debug_assert_eq!(given, left);
        left = 0;
        for (i, n, _) in share {
            let room = cap - counts[i];
            let add = n.min(room);
            counts[i] += add;
            left += n - add;
        }
        open.retain(|&i| counts[i] < cap);
    }
    Some(counts)
}

/// A road segment between two intersections with a district block on at least one side.
struct Road {
    /// Points of the polyline in `Roads::pts`.
    start: u32,
    end: u32,
    len: f64,
    /// Blocks of the district on the left and on the right (walking start → end).
    left: Option<u32>,
    right: Option<u32>,
}

/// The district's roads and blocks, prepared for placing points.
pub(crate) struct Roads<'a> {
    lattice: &'a Lattice,
    pts: Vec<P>,
    roads: Vec<Road>,
    cumulative: Vec<f64>,
    /// Intersections: a vertex and the district blocks around it.
    corners: Vec<(P, Vec<u32>)>,
    /// Outline of each block, local metres: `ring_pts[ring_at[c]..ring_at[c + 1]]`.
    ring_at: Vec<u32>,
    ring_pts: Vec<P>,
}

impl<'a> Roads<'a> {
    pub fn new(lattice: &'a Lattice, in_district: &[bool]) -> Roads<'a> {
        let mut pts = Vec::new();
        let mut roads = Vec::new();
        let mut ids = Vec::with_capacity(8);
        for e in 0..lattice.edges() {
            let (l, r) = lattice.edge_sides(e);
            let (l, r) = (l.filter(|&c| in_district[c]), r.filter(|&c| in_district[c]));
            if l.is_none() && r.is_none() {
                continue;
            }
            ids.clear();
            lattice.edge_points(e, &mut ids);
            let start = pts.len() as u32;
            pts.extend(ids.iter().map(|&i| lattice.pts[i as usize]));
            let poly = &pts[start as usize..];
            let len = poly.windows(2).map(|w| dist(w[0], w[1])).sum();
            roads.push(Road { start, end: pts.len() as u32, len, left: l.map(|c| c as u32), right: r.map(|c| c as u32) });
        }
        let mut cumulative = Vec::with_capacity(roads.len());
        let mut acc = 0.0;
        for r in &roads {
            acc += r.len;
            cumulative.push(acc);
        }
        let (nx, ny) = (lattice.nx, lattice.ny);
        let mut corners = Vec::new();
        for j in 1..ny {
            for i in 1..nx {
                let around = [(j - 1) * nx + i - 1, (j - 1) * nx + i, j * nx + i - 1, j * nx + i];
                let cells: Vec<u32> = around.iter().filter(|&&c| in_district[c]).map(|&c| c as u32).collect();
                if cells.len() >= 2 {
                    corners.push((lattice.pts[j * (nx + 1) + i], cells));
                }
            }
        }
        let mut ring_at = Vec::with_capacity(lattice.cells() + 1);
        let mut ring_pts = Vec::new();
        for (c, &inside) in in_district.iter().enumerate() {
            ring_at.push(ring_pts.len() as u32);
            if inside {
                ids.clear();
                lattice.expand(&lattice.cell_corners(c), &mut ids);
                ring_pts.extend(ids.iter().map(|&i| lattice.pts[i as usize]));
            }
        }
        ring_at.push(ring_pts.len() as u32);
        Roads { lattice, pts, roads, cumulative, corners, ring_at, ring_pts }
    }

    /// A point for a component and the block it stands in.
    pub fn place(&self, rng: &mut ChaCha8Rng, how: Placement) -> (P, u32) {
        if how.corner > 0.0 && !self.corners.is_empty() && rng.random_bool(how.corner) {
            for _ in 0..8 {
                let (v, cells) = &self.corners[rng.random_range(0..self.corners.len())];
                let cell = cells[rng.random_range(0..cells.len())];
                let centre = self.lattice.cell_centre[cell as usize];
                let d = dist(*v, centre);
                let t = rng.random_range(how.offset.0..how.offset.1) * std::f64::consts::SQRT_2 / d;
                let p = [v[0] + (centre[0] - v[0]) * t, v[1] + (centre[1] - v[1]) * t];
                if self.inside(cell, p) {
                    return (p, cell);
                }
            }
        }
        let total = *self.cumulative.last().expect("a district has roads");
        let mut cell = 0;
        for _ in 0..32 {
            let x = rng.random::<f64>() * total;
            let k = self.cumulative.partition_point(|&c| c <= x).min(self.roads.len() - 1);
            let road = &self.roads[k];
            let (side, c) = match (road.left, road.right) {
                (Some(l), Some(r)) => {
                    if rng.random_bool(0.5) {
                        (1.0, l)
                    } else {
                        (-1.0, r)
                    }
                }
                (Some(l), None) => (1.0, l),
                (None, Some(r)) => (-1.0, r),
                (None, None) => unreachable!("roads have a district block on one side"),
            };
            cell = c;
            let mut along = rng.random_range(END_GAP..1.0 - END_GAP) * road.len;
            let poly = &self.pts[road.start as usize..road.end as usize];
            let offset = rng.random_range(how.offset.0..how.offset.1);
            for w in poly.windows(2) {
                let l = dist(w[0], w[1]);
                if along <= l {
                    let (dx, dy) = ((w[1][0] - w[0][0]) / l, (w[1][1] - w[0][1]) / l);
                    let q = [w[0][0] + dx * along, w[0][1] + dy * along];
                    let p = [q[0] - dy * offset * side, q[1] + dx * offset * side];
                    if self.inside(c, p) {
                        return (p, c);
                    }
                    break;
                }
                along -= l;
            }
        }
        // Practically unreachable: the block's centre lies well inside it.
        (self.lattice.cell_centre[cell as usize], cell)
    }

    /// True if `p` lies inside block `c`, at least [`MARGIN`] from its outline.
    fn inside(&self, c: u32, p: P) -> bool {
        let ring = &self.ring_pts[self.ring_at[c as usize] as usize..self.ring_at[c as usize + 1] as usize];
        let mut crossings = false;
        for k in 0..ring.len() {
            let (a, b) = (ring[k], ring[(k + 1) % ring.len()]);
            if segment_distance2(p, a, b) < MARGIN * MARGIN {
                return false;
            }
            if (a[1] > p[1]) != (b[1] > p[1]) && p[0] < a[0] + (p[1] - a[1]) * (b[0] - a[0]) / (b[1] - a[1]) {
                crossings = !crossings;
            }
        }
        crossings
    }
}

fn dist(a: P, b: P) -> f64 {
    dist2(a, b).sqrt()
}

fn dist2(a: P, b: P) -> f64 {
    (a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1])
}

/// Squared distance from `p` to the segment `a`–`b`.
fn segment_distance2(p: P, a: P, b: P) -> f64 {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let t = (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / (dx * dx + dy * dy)).clamp(0.0, 1.0);
    dist2(p, [a[0] + t * dx, a[1] + t * dy])
}

/// Per-grid facts the component generator needs.
pub(crate) struct GridInfo<'a> {
    /// Unit grid index of each lattice cell (`u32::MAX` outside the district).
    pub cell_grid: &'a [u32],
    /// Code of each unit grid.
    pub grid_code: &'a [String],
    /// Street index of each unit grid.
    pub grid_street: &'a [usize],
    /// Office and sanitation station of each street.
    pub street_office: &'a [String],
    pub street_env: &'a [String],
}

enum Who {
    Fixed(&'static str),
    TelecomOwner,
    TelecomMaintainer,
    Street,
    StreetEnv,
}

fn who(city: CityKind, u: U, role: usize) -> Who {
    match u {
        U::Telecom if role == 1 => Who::TelecomOwner,
        U::Telecom => Who::TelecomMaintainer,
        U::Street => Who::Street,
        U::StreetEnv => Who::StreetEnv,
        other => Who::Fixed(unit(city, other)),
    }
}

/// Day strings from 2019-01-01 to 2025-06-30, so dates are formatted once.
fn days() -> Vec<String> {
    let first = chrono::NaiveDate::from_ymd_opt(2019, 1, 1).expect("date");
    let last = chrono::NaiveDate::from_ymd_opt(2025, 6, 30).expect("date");
    first.iter_days().take_while(|d| *d <= last).map(|d| d.format("%Y-%m-%d").to_string()).collect()
}

/// Generates `total` components into the builder.
#[allow(clippy::too_many_arguments)]
pub(crate) fn generate(
    builder: &mut CityBuilder,
    city: CityKind,
    county: u32,
    total: usize,
    roads: &Roads<'_>,
    frame: &Frame,
    grids: &GridInfo<'_>,
    rng: &mut ChaCha8Rng,
    progress: &dyn Fn(u64, u64),
) -> Result<(), ModelError> {
    let slot = match city {
        CityKind::Suzhou => 0,
        CityKind::Beijing => 1,
    };
    let weights: Vec<f64> = CLASS_MIX.iter().map(|m| m.weight[slot]).collect();
    let counts = allocate(total, &weights, ComponentCode::MAX_SERIAL as usize).expect("the class mix holds 10 million codes");
    let classes = crate::model::ClassTable::builtin_components();
    let days = days();
    let last_created = days.len() - 182; // created up to the end of 2024
    let carriers = carriers(city);
    let step = (total / 100).max(1);
    builder.reserve_components(total);
    progress(0, total as u64);
    let mut done = 0usize;
    let mut code = String::with_capacity(16);
    for (mix, &count) in CLASS_MIX.iter().zip(&counts) {
        let ClassMix { code: class, place, units, .. } = mix;
        let class_code = crate::model::ClassCode::parse(class)?;
        let name = classes.get(class_code).ok_or_else(|| ModelError::UnknownClass { code: class.to_string() })?.name.clone();
        let who: Vec<Who> = units.iter().enumerate().map(|(role, &u)| who(city, u, role)).collect();
        for serial in 1..=count {
            let (p, cell) = roads.place(rng, *place);
            let ll = frame.to_ll(p);
            let grid = grids.cell_grid[cell as usize] as usize;
            let street = grids.grid_street[grid];
            let carrier = rng.random_range(0..carriers.len());
            let resolve = |w: &Who| -> &str {
                match w {
                    Who::Fixed(s) => s,
                    Who::TelecomOwner => carriers[carrier].0,
                    Who::TelecomMaintainer => carriers[carrier].1,
                    Who::Street => &grids.street_office[street],
                    Who::StreetEnv => &grids.street_env[street],
                }
            };
            let status = match rng.random::<f64>() {
                x if x < 0.93 => "完好",
                x if x < 0.97 => "破损",
                x if x < 0.985 => "丢失",
                _ => "占用",
            };
            let accuracy = match rng.random::<f64>() {
                x if x < 0.45 => "A",
                x if x < 0.90 => "B",
                _ => "C",
            };
            let created = rng.random_range(0..last_created);
            let updated = if rng.random_bool(0.45) { created } else { rng.random_range(created..days.len()) };
            code.clear();
            use std::fmt::Write;
            write!(code, "{county:06}{class}{serial:06}").expect("write to string");
            builder.add_component(&ComponentFields {
                code: &code,
                class,
                name: &name,
                dept: resolve(&who[0]),
                owner: resolve(&who[1]),
                maintainer: resolve(&who[2]),
                status,
                grid: &grids.grid_code[grid],
                created: &days[created],
                updated: &days[updated],
                accuracy,
                lon: ll.x,
                lat: ll.y,
            })?;
            done += 1;
            if done.is_multiple_of(step) {
                progress(done as u64, total as u64);
            }
        }
    }
    if !done.is_multiple_of(step) {
        progress(done as u64, total as u64);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_caps_classes_and_keeps_the_total() {
        let weights: Vec<f64> = CLASS_MIX.iter().map(|m| m.weight[0]).collect();
        for total in [0, 1, 2_000, 231_000, 10_000_000] {
            let counts = allocate(total, &weights, 999_999).unwrap();
            assert_eq!(counts.iter().sum::<usize>(), total);
            assert!(counts.iter().all(|&n| n <= 999_999));
            for (n, w) in counts.iter().zip(&weights) {
                if *w == 0.0 {
                    assert_eq!(*n, 0);
                }
            }
        }
        let small = allocate(231_000, &weights, 999_999).unwrap();
        let lamp = CLASS_MIX.iter().position(|m| m.code == "0118").unwrap();
        let share = small[lamp] as f64 / 231_000.0;
        assert!((0.15..0.20).contains(&share), "{share}");
        let big = allocate(10_000_000, &weights, 999_999).unwrap();
        assert_eq!(big[lamp], 999_999, "the lamps hit the 6-digit serial cap");
        assert_eq!(allocate(100, &[1.0, 1.0], 10), None, "two classes of 10 cannot hold 100");
        assert_eq!(allocate(20, &[3.0, 1.0], 10), Some(vec![10, 10]));
    }
}
