//! Patrol coverage (巡查覆盖率) of one day: for every grid of one level, the share of its area
//! within `distance_m` of any track segment of that day (all staff), the minutes people spent
//! inside it, how many people were in it, and which grids nobody was in.
//!
//! - **Track segments**: consecutive points of one person (time order) at most
//!   [`MAX_GAP_S`] apart; a longer gap (phone off, out of coverage) is not a walk, so each side
//!   of it ends its own piece of track (a lone point still covers the disc around it). Every
//!   status counts (an inspector walking at lunch still looks at the street).
//! - **Distance**: metres on one equirectangular plane around the city's centre (the
//!   [`LocalPlane`] the position index uses): segments are straight on it, and within 50 km of
//!   the centre its lengths differ from great-circle ones by well under 1 %.
//! - **Coverage** is measured on a lattice: the grid's bounding box is cut into square cells of
//!   `step` metres, `step = max(1 m, √(box area / 10 000))` (so at most about 10 000 samples a
//!   grid: 3 m for a 300 m unit grid, 100 m for a 10 km district), and the share is the share
//!   of the cell centres inside the grid (even–odd rule, holes excluded) that lie within
//!   `distance_m` of a segment (an R-tree of segments answers each). The error is at most the
//!   area of the cells the buffer's edge crosses over the grid's area — about
//!   `step × (buffer outline inside the grid) / area`, ≤ 2 % for a track straight through a
//!   300 m unit grid, much less in practice (errors on both sides of an edge cancel). A grid too small to hold a lattice point is sampled at its interior point.
//! - **Minutes inside**: for each person, the time between two consecutive points both inside
//!   the grid (by the same point-in-grid rules as `/v1/locate`) and at most [`MAX_GAP_S`]
//!   apart, summed over people. **Visitors**: people with at least one point inside;
//!   **unvisited**: the grids with no point inside.

use std::collections::HashSet;
use std::sync::Arc;

use geo_types::{Coord, MultiPolygon};
use rstar::RTree;
use rstar::primitives::Line;
use serde::Serialize;

use super::tracks::TrackPoint;
use crate::crs::distance::LocalPlane;
use crate::index::Location;
use crate::model::{City, GridId};
use crate::world::World;

/// Longest time between two points of a person that still counts as walking from one to the
/// other (and as time spent inside a grid), seconds.
pub const MAX_GAP_S: i64 = 300;
/// Default `distance_m`.
pub const DEFAULT_DISTANCE_M: f64 = 50.0;
/// Smallest and largest `distance_m`.
pub const DISTANCE_RANGE_M: std::ops::RangeInclusive<f64> = 1.0..=500.0;
/// About how many lattice samples a grid gets at most.
pub const MAX_SAMPLES: f64 = 10_000.0;
/// Finest lattice step, metres.
pub const MIN_STEP_M: f64 = 1.0;

/// One grid's patrol figures.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct GridPatrol {
    pub code: String,
    pub name: String,
    /// Share (0..1) of the grid's area within `distance_m` of a track.
    pub coverage: f64,
    /// Minutes people spent inside (summed over people), to 0.1 min.
    pub minutes_inside: f64,
    /// Distinct people with a position inside.
    pub visitors: usize,
    /// The lattice step coverage was measured with, metres.
    pub sample_step_m: f64,
}

/// The patrol figures of a day at one level.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PatrolStats {
    /// The day (China time), YYYY-MM-DD.
    pub date: String,
    /// The level, 1 = top (district).
    pub level: usize,
    pub distance_m: f64,
    /// Gaps longer than this between two points of a person are not walked nor counted inside.
    pub max_gap_s: i64,
    /// People with a track that day.
    pub people: usize,
    /// Track points that day.
    pub points: usize,
    /// Every grid of the level, by code.
    pub grids: Vec<GridPatrol>,
    /// Codes of the grids nobody had a position in, by code.
    pub unvisited: Vec<String>,
}

/// A track segment on the plane.
type Segment = Line<[f64; 2]>;

/// The segments of a day's tracks on `plane` (see the module doc).
pub fn segments(plane: &LocalPlane, tracks: &[(Arc<str>, Vec<TrackPoint>)]) -> Vec<Segment> {
    let mut out = Vec::new();
    for (_, points) in tracks {
        for (i, p) in points.iter().enumerate() {
            let a = plane.to_xy(Coord { x: p.lon, y: p.lat });
            let joined_before = i > 0 && (p.time - points[i - 1].time).num_seconds() <= MAX_GAP_S;
            match points.get(i + 1) {
                Some(q) if (q.time - p.time).num_seconds() <= MAX_GAP_S => out.push(Line::new(a, plane.to_xy(Coord { x: q.lon, y: q.lat }))),
                _ if !joined_before => out.push(Line::new(a, a)),
                _ => {}
            }
        }
    }
    out
}

/// The share of `polygon` (plane metres) within `distance_m` of a segment of `tree`, measured
/// on a lattice (module doc), and the lattice step.
pub fn coverage(polygon: &MultiPolygon<f64>, tree: &RTree<Segment>, distance_m: f64) -> (f64, f64) {
    use geo::BoundingRect;
    let Some(bbox) = polygon.bounding_rect() else { return (0.0, MIN_STEP_M) };
    let step = (bbox.width() * bbox.height() / MAX_SAMPLES).sqrt().max(MIN_STEP_M);
    let d2 = distance_m * distance_m;
    // Neighbouring samples are mostly covered by the same segment: it is tried first.
    let last: std::cell::Cell<Option<&Segment>> = std::cell::Cell::new(None);
    let near = |p: [f64; 2]| {
        use rstar::PointDistance;
        if last.get().is_some_and(|s| s.distance_2(&p) <= d2) {
            return true;
        }
        let found = tree.locate_within_distance(p, d2).next();
        if found.is_some() {
            last.set(found);
        }
        found.is_some()
    };
    // Nothing near the box at all: no lattice needed.
    let reach = rstar::AABB::from_corners([bbox.min().x - distance_m, bbox.min().y - distance_m], [bbox.max().x + distance_m, bbox.max().y + distance_m]);
    if tree.locate_in_envelope_intersecting(&reach).next().is_none() {
        return (0.0, step);
    }
    let edges: Vec<(Coord<f64>, Coord<f64>)> =
        polygon.0.iter().flat_map(|p| std::iter::once(p.exterior()).chain(p.interiors())).flat_map(|ring| ring.lines().map(|l| (l.start, l.end))).collect();
    let (mut inside, mut covered) = (0u64, 0u64);
    let mut crossings: Vec<f64> = Vec::new();
    let rows = (bbox.height() / step).ceil().max(1.0) as usize;
    for r in 0..rows {
        let y = bbox.min().y + (r as f64 + 0.5) * step;
        crossings.clear();
        for &(a, b) in &edges {
            if (a.y <= y) != (b.y <= y) {
                crossings.push(a.x + (y - a.y) / (b.y - a.y) * (b.x - a.x));
            }
        }
        crossings.sort_by(f64::total_cmp);
        for span in crossings.chunks_exact(2) {
            // Lattice columns whose centre lies in [span[0], span[1]).
            let first = ((span[0] - bbox.min().x) / step - 0.5).ceil().max(0.0) as i64;
            let last = ((span[1] - bbox.min().x) / step - 0.5).ceil() as i64; // exclusive
            for c in first..last {
                let x = bbox.min().x + (c as f64 + 0.5) * step;
                inside += 1;
                covered += near([x, y]) as u64;
            }
        }
    }
    if inside == 0 {
        // Smaller than a lattice cell: its interior point stands for it.
        use geo::InteriorPoint;
        return match polygon.interior_point() {
            Some(p) => (if near([p.x(), p.y()]) { 1.0 } else { 0.0 }, step),
            None => (0.0, step),
        };
    }
    (covered as f64 / inside as f64, step)
}

/// `grid`'s ancestor (or itself) at `level` (0 = top).
fn at_level(city: &City, mut grid: GridId, level: usize) -> Option<GridId> {
    loop {
        let g = city.grid(grid);
        if g.level as usize == level {
            return Some(grid);
        }
        if (g.level as usize) < level {
            return None;
        }
        grid = g.parent?;
    }
}

/// The patrol figures of `date`'s tracks (every person's, each in time order) for the grids of
/// `level` (1 = top) of `world`. `level` must be a level of the city's hierarchy.
pub fn patrol_stats(world: &World, date: chrono::NaiveDate, tracks: &[(Arc<str>, Vec<TrackPoint>)], level: usize, distance_m: f64) -> PatrolStats {
    let city = &world.city;
    let index = level.saturating_sub(1);
    let centre = world.center();
    let plane = LocalPlane::new(Coord { x: centre[0], y: centre[1] });
    let grids: Vec<(GridId, &crate::model::Grid)> = city.grids_at(index).collect();
    let slot: std::collections::HashMap<GridId, usize> = grids.iter().enumerate().map(|(i, (id, _))| (*id, i)).collect();
    let mut seconds = vec![0i64; grids.len()];
    let mut visitors: Vec<HashSet<&str>> = vec![HashSet::new(); grids.len()];
    let mut points = 0;
    for (id, track) in tracks {
        points += track.len();
        let mut previous: Option<(chrono::DateTime<chrono::Utc>, Option<usize>)> = None;
        for p in track {
            let here = match world.grids.locate(city, Coord { x: p.lon, y: p.lat }) {
                Location::Inside { grid, .. } => at_level(city, grid, index).and_then(|g| slot.get(&g).copied()),
                _ => None,
            };
            if let Some(i) = here {
                visitors[i].insert(id);
                if let Some((t, Some(j))) = previous
                    && j == i
                {
                    let gap = (p.time - t).num_seconds();
                    if gap <= MAX_GAP_S {
                        seconds[i] += gap.max(0);
                    }
                }
            }
            previous = Some((p.time, here));
        }
    }
    let tree = RTree::bulk_load(segments(&plane, tracks));
    let mut out = Vec::with_capacity(grids.len());
    let mut unvisited = Vec::new();
    for (i, (_, g)) in grids.iter().enumerate() {
        let projected: MultiPolygon<f64> = geo::MapCoords::map_coords(&g.geometry, |c| {
            let [x, y] = plane.to_xy(c);
            Coord { x, y }
        });
        let (coverage, step) = coverage(&projected, &tree, distance_m);
        if visitors[i].is_empty() {
            unvisited.push(g.code.to_string());
        }
        out.push(GridPatrol {
            code: g.code.to_string(),
            name: g.name.clone(),
            coverage,
            minutes_inside: (seconds[i] as f64 / 6.0).round() / 10.0,
            visitors: visitors[i].len(),
            sample_step_m: (step * 100.0).round() / 100.0,
        });
    }
    out.sort_by(|a, b| a.code.cmp(&b.code));
    unvisited.sort();
    PatrolStats {
        date: date.to_string(),
        level,
        distance_m,
        max_gap_s: MAX_GAP_S,
        people: tracks.iter().filter(|(_, t)| !t.is_empty()).count(),
        points,
        grids: out,
        unvisited,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::staff::Status;
    use geo::{Contains, Distance, Euclidean};
    use geo_types::{LineString, Point, Polygon, polygon};
    use rand::{Rng, SeedableRng};

    fn tree(lines: &[([f64; 2], [f64; 2])]) -> RTree<Segment> {
        RTree::bulk_load(lines.iter().map(|&(a, b)| Line::new(a, b)).collect())
    }

    #[test]
    fn a_straight_track_through_a_rectangle_covers_two_d_l_over_area() {
        // 400 m × 300 m, a track along y = 150 from x = -100 to 500 (through the whole width).
        let rect = MultiPolygon(vec![polygon![(x: 0.0, y: 0.0), (x: 400.0, y: 0.0), (x: 400.0, y: 300.0), (x: 0.0, y: 300.0)]]);
        for d in [10.0, 50.0, 120.0] {
            let (c, step) = coverage(&rect, &tree(&[([-100.0, 150.0], [500.0, 150.0])]), d);
            let exact = 2.0 * d * 400.0 / (400.0 * 300.0);
            assert!((c - exact).abs() <= step / 300.0 + 1e-9, "d {d}: {c} vs {exact} (step {step})");
        }
        // Far away: nothing; the whole box covered: everything.
        assert_eq!(coverage(&rect, &tree(&[([-1000.0, 150.0], [-900.0, 150.0])]), 50.0).0, 0.0);
        assert_eq!(coverage(&rect, &tree(&[([200.0, 150.0], [200.0, 151.0])]), 500.0).0, 1.0);
    }

    /// The lattice estimate against a Monte-Carlo oracle: uniform random points in the box,
    /// inside by geo's `contains`, near by the exact Euclidean distance to every segment.
    #[test]
    fn coverage_matches_a_brute_force_oracle() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(18);
        for case in 0..20 {
            // A star-ish polygon with a hole, 200–600 m across.
            let r0: f64 = rng.random_range(100.0..300.0);
            let n = rng.random_range(5..12);
            let ring: Vec<(f64, f64)> = (0..n)
                .map(|i| {
                    let a = i as f64 / n as f64 * std::f64::consts::TAU;
                    let r = r0 * rng.random_range(0.6..1.0);
                    (r * a.cos(), r * a.sin())
                })
                .collect();
            let hole: Vec<(f64, f64)> = (0..4)
                .map(|i| {
                    let a = i as f64 / 4.0 * std::f64::consts::TAU;
                    (0.2 * r0 * a.cos(), 0.2 * r0 * a.sin())
                })
                .collect();
            let poly = Polygon::new(LineString::from(ring), vec![LineString::from(hole)]);
            let mp = MultiPolygon(vec![poly.clone()]);
            let mut lines = Vec::new();
            let mut at = [rng.random_range(-r0..r0), rng.random_range(-r0..r0)];
            for _ in 0..rng.random_range(1..30) {
                let next = [at[0] + rng.random_range(-150.0..150.0), at[1] + rng.random_range(-150.0..150.0)];
                lines.push((at, next));
                at = next;
            }
            let d = rng.random_range(5.0..80.0);
            let (got, _) = coverage(&mp, &tree(&lines), d);
            let segs: Vec<geo_types::Line<f64>> =
                lines.iter().map(|&(a, b)| geo_types::Line::new(Coord { x: a[0], y: a[1] }, Coord { x: b[0], y: b[1] })).collect();
            let (mut inside, mut near) = (0, 0);
            while inside < 40_000 {
                let p = Point::new(rng.random_range(-r0..r0), rng.random_range(-r0..r0));
                if !poly.contains(&p) {
                    continue;
                }
                inside += 1;
                near += segs.iter().any(|s| Euclidean.distance(&p, s) <= d) as usize;
            }
            let oracle = near as f64 / inside as f64;
            // Monte-Carlo σ ≤ 0.0025; lattice error ~1 %.
            assert!((got - oracle).abs() < 0.02, "case {case}: lattice {got} vs oracle {oracle} (d {d})");
        }
    }

    #[test]
    fn gaps_split_segments_and_lone_points_count() {
        let plane = LocalPlane::new(Coord { x: 120.0, y: 31.0 });
        let t0 = chrono::DateTime::from_timestamp(1_796_600_000, 0).unwrap();
        let p = |s: i64, lon: f64| TrackPoint { time: t0 + chrono::Duration::seconds(s), lon, lat: 31.0, accuracy_m: None, status: Status::Available };
        let tracks = vec![(Arc::from("a"), vec![p(0, 120.0), p(10, 120.001), p(1000, 120.002), p(5000, 120.003), p(5010, 120.004)])];
        let segs = segments(&plane, &tracks);
        assert_eq!(segs.len(), 3, "two walked segments and the lone point between the gaps: {segs:?}");
        assert_eq!(segs[1].from, segs[1].to);
    }
}
