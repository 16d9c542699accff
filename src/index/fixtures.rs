//! Test cities for the index tests, independent of the demo generator: a jittered quad mesh of
//! unit grids with shared vertices, axis-aligned shared edges (points on them are exactly
//! representable), curved shared edges (extra vertices), gaps, a grid with a hole filled by an
//! island grid, and a two-part grid; grouped under communities / streets / one district
//! (CJ/T 213 codes, serials shuffled so code order is not spatial order). Components at random
//! points with a skewed class mix and some duplicate locations.

use std::collections::HashSet;

use geo::CoordinatePosition;
use geo::coordinate_position::CoordPos;
use geo_types::{Coord, LineString, MultiPolygon, Polygon, Rect};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::crs::segment_distance_m;
use crate::model::{City, CityBuilder, ClassCode, ClassTable, ComponentCode, ComponentFields, GridFields, GridId, Hierarchy};

pub(crate) const LON0: f64 = 120.58;
pub(crate) const LAT0: f64 = 31.28;
/// Mesh spacing: ~105 m east–west, ~100 m north–south.
pub(crate) const DX: f64 = 0.0011;
pub(crate) const DY: f64 = 0.0009;
pub(crate) const COUNTY: u32 = 320506;

/// Component classes and their shares (0138 and 0301 are rare: they get their own trees).
pub(crate) const CLASS_MIX: &[(&str, f64)] = &[("0101", 0.40), ("0118", 0.37), ("0136", 0.10), ("0402", 0.07), ("0105", 0.03), ("0138", 0.02), ("0301", 0.01)];

pub(crate) struct Mesh {
    pub nx: usize,
    pub ny: usize,
    pub seed: u64,
    /// Leave gaps, add the hole/island and the two-part grid.
    pub features: bool,
    pub components: usize,
}

impl Mesh {
    pub fn small(seed: u64) -> Mesh {
        Mesh { nx: 12, ny: 9, seed, features: true, components: 3000 }
    }
}

/// The cell whose polygon gets a square hole, filled by its own island grid.
pub(crate) const HOLE_CELL: (usize, usize) = (4, 4);

pub(crate) fn builder() -> CityBuilder {
    CityBuilder::new(Hierarchy::cjt213(), ClassTable::builtin_components(), ClassTable::builtin_events())
}

fn rect_geometry(bb: [f64; 4]) -> MultiPolygon<f64> {
    let r = Rect::new(Coord { x: bb[0], y: bb[1] }, Coord { x: bb[2], y: bb[3] });
    MultiPolygon(vec![r.to_polygon()])
}

/// Builds the mesh city.
pub(crate) fn mesh_city(m: &Mesh) -> City {
    let mut rng = ChaCha8Rng::seed_from_u64(m.seed);
    let (nx, ny) = (m.nx, m.ny);
    // Vertices: x exact on even columns, y exact on even rows (so those edges are axis-aligned).
    let fixed = |i: usize, j: usize| m.features && (HOLE_CELL.0..=HOLE_CELL.0 + 1).contains(&i) && (HOLE_CELL.1..=HOLE_CELL.1 + 1).contains(&j);
    let mut vx = vec![vec![Coord { x: 0.0, y: 0.0 }; ny + 1]; nx + 1];
    for (i, col) in vx.iter_mut().enumerate() {
        for (j, v) in col.iter_mut().enumerate() {
            let jx = if i % 2 == 1 && !fixed(i, j) { rng.random_range(-0.25..0.25) * DX } else { 0.0 };
            let jy = if j % 2 == 1 && !fixed(i, j) { rng.random_range(-0.25..0.25) * DY } else { 0.0 };
            *v = Coord { x: LON0 + i as f64 * DX + jx, y: LAT0 + j as f64 * DY + jy };
        }
    }
    // Paths of horizontal edges (i,j)→(i+1,j) and vertical edges (i,j)→(i,j+1), both ends included.
    let path = |a: Coord<f64>, b: Coord<f64>, straight: bool, rng: &mut ChaCha8Rng| -> Vec<Coord<f64>> {
        if straight {
            // A collinear extra vertex sometimes (still axis-aligned or straight).
            if rng.random_bool(0.3) { vec![a, Coord { x: (a.x + b.x) / 2.0, y: (a.y + b.y) / 2.0 }, b] } else { vec![a, b] }
        } else {
            let k = rng.random_range(1..=3);
            let (nxp, nyp) = (-(b.y - a.y) / DY * DX, (b.x - a.x) / DX * DY);
            let bulge = rng.random_range(-0.1..0.1);
            let mut v = vec![a];
            for s in 1..=k {
                let t = s as f64 / (k + 1) as f64;
                let w = bulge * (std::f64::consts::PI * t).sin();
                v.push(Coord { x: a.x + t * (b.x - a.x) + w * nxp, y: a.y + t * (b.y - a.y) + w * nyp });
            }
            v.push(b);
            v
        }
    };
    let mut hpaths = vec![vec![Vec::new(); ny + 1]; nx];
    for (i, col) in hpaths.iter_mut().enumerate() {
        for (j, p) in col.iter_mut().enumerate() {
            let straight = j % 2 == 0 || (fixed(i, j) && fixed(i + 1, j)) || rng.random_bool(0.5);
            *p = path(vx[i][j], vx[i + 1][j], straight, &mut rng);
        }
    }
    let mut vpaths = vec![vec![Vec::new(); ny]; nx + 1];
    for (i, col) in vpaths.iter_mut().enumerate() {
        for (j, p) in col.iter_mut().enumerate() {
            let straight = i % 2 == 0 || (fixed(i, j) && fixed(i, j + 1)) || rng.random_bool(0.5);
            *p = path(vx[i][j], vx[i][j + 1], straight, &mut rng);
        }
    }
    let cell_ring = |i: usize, j: usize| -> Vec<Coord<f64>> {
        let mut r: Vec<Coord<f64>> = hpaths[i][j].clone();
        r.extend(&vpaths[i + 1][j][1..]);
        r.extend(hpaths[i][j + 1].iter().rev().skip(1));
        r.extend(vpaths[i][j].iter().rev().skip(1));
        r
    };

    // Which cells are grids, and their polygons.
    let gaps: HashSet<(usize, usize)> = if m.features { [(2, 2), (nx - 3, ny - 3), (nx - 3, ny - 2)].into_iter().collect() } else { HashSet::new() };
    let mut grids: Vec<Vec<Polygon<f64>>> = Vec::new();
    let two_part = m.features.then_some([(nx - 1, 0), (0, ny - 1)]);
    for j in 0..ny {
        for i in 0..nx {
            if gaps.contains(&(i, j)) || two_part.is_some_and(|t| t[1] == (i, j)) {
                continue;
            }
            let mut polys = vec![];
            let ring = LineString::from(cell_ring(i, j));
            if m.features && (i, j) == HOLE_CELL {
                let c = Coord { x: LON0 + (i as f64 + 0.5) * DX, y: LAT0 + (j as f64 + 0.5) * DY };
                let (hx, hy) = (0.25 * DX, 0.25 * DY);
                let sq = vec![
                    Coord { x: c.x - hx, y: c.y - hy },
                    Coord { x: c.x + hx, y: c.y - hy },
                    Coord { x: c.x + hx, y: c.y + hy },
                    Coord { x: c.x - hx, y: c.y + hy },
                ];
                let mut hole = sq.clone();
                hole.reverse();
                polys.push(Polygon::new(ring, vec![LineString::from(hole)]));
                grids.push(vec![Polygon::new(LineString::from(sq), vec![])]);
            } else {
                polys.push(Polygon::new(ring, vec![]));
            }
            if let Some(t) = two_part
                && t[0] == (i, j)
            {
                polys.push(Polygon::new(LineString::from(cell_ring(t[1].0, t[1].1)), vec![]));
            }
            grids.push(polys);
        }
    }

    // Codes: 90 grids per community (serials shuffled), 20 communities per street.
    let mut b = builder();
    let n = grids.len();
    let per_community = 90;
    let communities = n.div_ceil(per_community);
    let mut bbs: Vec<[f64; 4]> = vec![[f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY]; communities];
    let mut order: Vec<usize> = (0..n).collect();
    for (c, chunk) in order.chunks_mut(per_community).enumerate() {
        let mut serials: Vec<usize> = (1..=chunk.len()).collect();
        serials.shuffle(&mut rng);
        for (k, &g) in chunk.iter().enumerate() {
            let community = format!("{COUNTY}{:03}{:03}", c / 20 + 1, c % 20 + 1);
            let code = format!("{community}{:02}", serials[k]);
            let geometry = MultiPolygon(grids[g].clone());
            for p in &geometry.0 {
                for v in &p.exterior().0 {
                    let bb = &mut bbs[c];
                    *bb = [bb[0].min(v.x), bb[1].min(v.y), bb[2].max(v.x), bb[3].max(v.y)];
                }
            }
            b.add_grid(&GridFields { code: &code, name: "网格", parent: &community, ..Default::default() }, geometry).unwrap();
        }
    }
    order.clear();
    let mut district = [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY];
    let mut streets: Vec<[f64; 4]> = vec![district; communities.div_ceil(20)];
    for (c, bb) in bbs.iter().enumerate() {
        let community = format!("{COUNTY}{:03}{:03}", c / 20 + 1, c % 20 + 1);
        let street = format!("{COUNTY}{:03}", c / 20 + 1);
        b.add_grid(&GridFields { code: &community, name: "社区", parent: &street, ..Default::default() }, rect_geometry(*bb)).unwrap();
        let s = &mut streets[c / 20];
        *s = [s[0].min(bb[0]), s[1].min(bb[1]), s[2].max(bb[2]), s[3].max(bb[3])];
    }
    for (s, bb) in streets.iter().enumerate() {
        let street = format!("{COUNTY}{:03}", s + 1);
        let parent = COUNTY.to_string();
        b.add_grid(&GridFields { code: &street, name: "街道", parent: &parent, ..Default::default() }, rect_geometry(*bb)).unwrap();
        district = [district[0].min(bb[0]), district[1].min(bb[1]), district[2].max(bb[2]), district[3].max(bb[3])];
    }
    b.add_grid(&GridFields { code: &COUNTY.to_string(), name: "区", ..Default::default() }, rect_geometry(district)).unwrap();

    // Components over the district box widened by 20%.
    let (w, h) = (district[2] - district[0], district[3] - district[1]);
    let mut serial = std::collections::HashMap::<&str, u32>::new();
    let mut locations: Vec<Coord<f64>> = Vec::with_capacity(m.components);
    b.reserve_components(m.components);
    for k in 0..m.components {
        let mut u = rng.random_range(0.0..1.0);
        let class = CLASS_MIX
            .iter()
            .find(|(_, share)| {
                u -= share;
                u < 0.0
            })
            .map_or(CLASS_MIX[0].0, |c| c.0);
        let s = serial.entry(class).or_insert(0);
        *s += 1;
        let code = ComponentCode::new(COUNTY, ClassCode::parse(class).unwrap(), *s).to_string();
        let at = if k > 10 && k % 50 == 0 {
            locations[rng.random_range(0..k)]
        } else {
            Coord { x: district[0] - 0.1 * w + rng.random_range(0.0..1.2) * w, y: district[1] - 0.1 * h + rng.random_range(0.0..1.2) * h }
        };
        locations.push(at);
        b.add_component(&ComponentFields { code: &code, class, lon: at.x, lat: at.y, ..Default::default() }).unwrap();
    }
    b.finish().unwrap()
}

/// Unit grids in code order.
pub(crate) fn unit_grids(city: &City) -> Vec<GridId> {
    let mut ids: Vec<GridId> = city.grids_at(city.hierarchy.unit_level()).map(|(id, _)| id).collect();
    ids.sort_by_key(|&id| city.grid(id).code);
    ids
}

/// Brute-force position of `p` relative to a grid's closed MultiPolygon, with geo's
/// `coordinate_position` on each part: inside any part → Inside, else on any part's boundary
/// → OnBoundary, else Outside.
pub(crate) fn oracle_pos(city: &City, g: GridId, p: Coord<f64>) -> CoordPos {
    let mut pos = CoordPos::Outside;
    for poly in &city.grid(g).geometry.0 {
        match poly.coordinate_position(&p) {
            CoordPos::Inside => return CoordPos::Inside,
            CoordPos::OnBoundary => pos = CoordPos::OnBoundary,
            CoordPos::Outside => {}
        }
    }
    pos
}

/// Brute-force distance from `p` to a grid's nearest edge.
pub(crate) fn oracle_edge_distance(city: &City, g: GridId, p: Coord<f64>) -> f64 {
    let mut best = f64::INFINITY;
    for poly in &city.grid(g).geometry.0 {
        for ring in std::iter::once(poly.exterior()).chain(poly.interiors()) {
            for l in ring.lines() {
                best = best.min(segment_distance_m(p, l.start, l.end));
            }
        }
    }
    best
}

/// Every vertex of every unit grid.
pub(crate) fn all_vertices(city: &City) -> Vec<Coord<f64>> {
    let mut v = Vec::new();
    for g in unit_grids(city) {
        for poly in &city.grid(g).geometry.0 {
            for ring in std::iter::once(poly.exterior()).chain(poly.interiors()) {
                v.extend(ring.0.iter().copied());
            }
        }
    }
    v
}

/// Points exactly on axis-aligned edges of unit grids (random positions along them).
pub(crate) fn axis_edge_points(city: &City, seed: u64) -> Vec<Coord<f64>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut v = Vec::new();
    for g in unit_grids(city) {
        for poly in &city.grid(g).geometry.0 {
            for ring in std::iter::once(poly.exterior()).chain(poly.interiors()) {
                for l in ring.lines() {
                    if l.start.y == l.end.y && l.start.x != l.end.x {
                        let (lo, hi) = (l.start.x.min(l.end.x), l.start.x.max(l.end.x));
                        v.push(Coord { x: rng.random_range(lo..=hi), y: l.start.y });
                    } else if l.start.x == l.end.x && l.start.y != l.end.y {
                        let (lo, hi) = (l.start.y.min(l.end.y), l.start.y.max(l.end.y));
                        v.push(Coord { x: l.start.x, y: rng.random_range(lo..=hi) });
                    }
                }
            }
        }
    }
    v
}
