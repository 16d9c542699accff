//! GridIndex against brute-force oracles on the mesh fixtures.

use std::sync::OnceLock;

use geo::coordinate_position::CoordPos;
use geo_types::{Coord, LineString, MultiPolygon, Polygon};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::fixtures::{self, DX, DY, HOLE_CELL, LAT0, LON0, Mesh};
use super::{Candidate, GridIndex, Location};
use crate::crs::Datum;
use crate::model::{City, GridFields, GridId};

struct Fixture {
    city: City,
    index: GridIndex,
    units: Vec<GridId>,
    vertices: Vec<Coord<f64>>,
    edge_points: Vec<Coord<f64>>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let city = fixtures::mesh_city(&Mesh { components: 0, ..Mesh::small(1) });
        Fixture::new(city)
    })
}

impl Fixture {
    fn new(city: City) -> Fixture {
        let index = GridIndex::build(&city);
        let units = fixtures::unit_grids(&city);
        let vertices = fixtures::all_vertices(&city);
        let edge_points = fixtures::axis_edge_points(&city, 5);
        Fixture { city, index, units, vertices, edge_points }
    }

    /// The brute-force answer: every unit grid's closed polygon tested with geo; the smallest
    /// code among containing grids; else the nearest edge over all grids (smallest code on a tie).
    fn oracle(&self, p: Coord<f64>) -> Location {
        let mut first = None;
        let mut on_boundary = false;
        for &g in &self.units {
            match fixtures::oracle_pos(&self.city, g, p) {
                CoordPos::Outside => {}
                pos => {
                    first.get_or_insert(g);
                    on_boundary |= pos == CoordPos::OnBoundary;
                }
            }
        }
        if let Some(grid) = first {
            return Location::Inside { grid, on_boundary };
        }
        let mut best = (f64::INFINITY, None);
        for &g in &self.units {
            let d = fixtures::oracle_edge_distance(&self.city, g, p);
            if d < best.0 {
                best = (d, Some(g));
            }
        }
        match best.1 {
            Some(nearest) => Location::Outside { nearest, distance_m: best.0 },
            None => Location::Nowhere,
        }
    }

    fn oracle_candidates(&self, p: Coord<f64>, r: f64) -> Vec<Candidate> {
        let r = if r > 0.0 { r } else { 0.0 };
        let mut out: Vec<Candidate> = self
            .units
            .iter()
            .filter_map(|&g| {
                let d = match fixtures::oracle_pos(&self.city, g, p) {
                    CoordPos::Outside => fixtures::oracle_edge_distance(&self.city, g, p),
                    _ => 0.0,
                };
                (d <= r).then_some(Candidate { grid: g, distance_m: d })
            })
            .collect();
        // `units` is in code order and the sort is stable: by distance, then code.
        out.sort_by(|a, b| a.distance_m.total_cmp(&b.distance_m));
        out
    }

    fn check(&self, p: Coord<f64>) -> Result<(), TestCaseError> {
        let got = self.index.locate(&self.city, p);
        prop_assert_eq!(got, self.oracle(p), "at {:?}", p);
        Ok(())
    }
}

fn code(city: &City, g: GridId) -> String {
    city.grid(g).code.to_string()
}

#[test]
fn every_vertex_and_axis_edge_point_matches_the_oracle() {
    let f = fixture();
    let mut shared = 0;
    for &p in f.vertices.iter().chain(&f.edge_points) {
        let got = f.index.locate(&f.city, p);
        assert_eq!(got, f.oracle(p), "at {p:?}");
        // Every such point is on a boundary.
        assert!(matches!(got, Location::Inside { on_boundary: true, .. }), "{p:?}: {got:?}");
        let containing = f.units.iter().filter(|&&g| fixtures::oracle_pos(&f.city, g, p) != CoordPos::Outside).count();
        if containing > 1 {
            shared += 1;
        }
    }
    // Most of them are shared by two or more grids: the smallest-code rule was exercised.
    assert!(shared > f.vertices.len() / 2, "{shared} shared of {}", f.vertices.len());
    assert!(f.edge_points.len() > 100, "{}", f.edge_points.len());
}

#[test]
fn dense_random_points_match_the_oracle() {
    let f = fixture();
    let ext = f.index.extent().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (mut inside, mut outside) = (0, 0);
    for _ in 0..20_000 {
        let p = Coord {
            x: ext.min().x - 0.2 * ext.width() + rng.random_range(0.0..1.4) * ext.width(),
            y: ext.min().y - 0.2 * ext.height() + rng.random_range(0.0..1.4) * ext.height(),
        };
        let got = f.index.locate(&f.city, p);
        assert_eq!(got, f.oracle(p), "at {p:?}");
        match got {
            Location::Inside { .. } => inside += 1,
            _ => outside += 1,
        }
    }
    assert!(inside > 5000 && outside > 2000, "{inside} / {outside}");
}

/// Points exactly on a vertex or an axis-aligned edge, a hair off them, random, and far.
fn point_strategy() -> impl Strategy<Value = Coord<f64>> {
    let f = fixture();
    let ext = f.index.extent().unwrap();
    let (nv, ne) = (f.vertices.len(), f.edge_points.len());
    let (x0, y0, w, h) = (ext.min().x, ext.min().y, ext.width(), ext.height());
    prop_oneof![
        (0..nv).prop_map(move |i| fixture().vertices[i]),
        (0..ne).prop_map(move |i| fixture().edge_points[i]),
        (0..nv, -3i32..=3, -3i32..=3).prop_map(move |(i, a, b)| {
            let v = fixture().vertices[i];
            // One to three ulps away (or exactly on it for 0).
            let step = |x: f64, k: i32| (0..k.abs()).fold(x, |x, _| if k > 0 { x.next_up() } else { x.next_down() });
            Coord { x: step(v.x, a), y: step(v.y, b) }
        }),
        (-0.3..1.3f64, -0.3..1.3f64).prop_map(move |(a, b)| Coord { x: x0 + a * w, y: y0 + b * h }),
        (-2.0..2.0f64, -2.0..2.0f64).prop_map(move |(a, b)| Coord { x: x0 + a, y: y0 + b }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn locate_equals_the_brute_force_oracle(p in point_strategy()) {
        fixture().check(p)?;
    }

    #[test]
    fn accuracy_candidates_equal_brute_force(p in point_strategy(), r in prop_oneof![Just(0.0), 0.0..400.0f64, Just(-1.0)]) {
        let f = fixture();
        let got = f.index.locate_within(&f.city, p, r);
        prop_assert_eq!(got.location, f.oracle(p));
        let want = f.oracle_candidates(p, r);
        prop_assert_eq!(&got.candidates, &want, "at {:?} r {}", p, r);
        prop_assert_eq!(got.ambiguous, want.len() > 1);
    }
}

#[test]
fn shared_edges_go_to_the_smallest_code_and_discs_are_ambiguous() {
    let f = fixture();
    let mut checked = 0;
    for &p in &f.edge_points {
        let containing: Vec<GridId> = f.units.iter().copied().filter(|&g| fixtures::oracle_pos(&f.city, g, p) != CoordPos::Outside).collect();
        if containing.len() < 2 {
            continue;
        }
        let smallest = containing.iter().min_by_key(|&&g| f.city.grid(g).code).copied().unwrap();
        assert_eq!(f.index.locate(&f.city, p), Location::Inside { grid: smallest, on_boundary: true });
        let a = f.index.locate_within(&f.city, p, 0.0);
        assert!(a.ambiguous, "{p:?}");
        assert_eq!(a.candidates.iter().map(|c| c.grid).collect::<Vec<_>>().len(), containing.len());
        assert!(a.candidates.iter().all(|c| c.distance_m == 0.0));
        assert!(a.candidates.windows(2).all(|w| f.city.grid(w[0].grid).code < f.city.grid(w[1].grid).code));
        checked += 1;
    }
    assert!(checked > 50, "{checked}");
}

#[test]
fn hole_island_two_part_grid_and_gap() {
    let f = fixture();
    let centre = |i: usize, j: usize| Coord { x: LON0 + (i as f64 + 0.5) * DX, y: LAT0 + (j as f64 + 0.5) * DY };
    // The island fills the hole: its centre is the island's; the holder is around it.
    let c = centre(HOLE_CELL.0, HOLE_CELL.1);
    let Location::Inside { grid: island, on_boundary: false } = f.index.locate(&f.city, c) else { panic!() };
    let near_corner = Coord { x: c.x - 0.4 * DX, y: c.y - 0.4 * DY };
    let Location::Inside { grid: holder, on_boundary: false } = f.index.locate(&f.city, near_corner) else { panic!() };
    assert_ne!(island, holder);
    assert_eq!(f.city.grid(island).geometry.0[0].interiors().len(), 0);
    assert_eq!(f.city.grid(holder).geometry.0[0].interiors().len(), 1);
    // On the hole's ring: both contain it, the smaller code wins.
    let on_ring = Coord { x: c.x, y: c.y - 0.25 * DY };
    let smaller = if f.city.grid(island).code < f.city.grid(holder).code { island } else { holder };
    assert_eq!(f.index.locate(&f.city, on_ring), Location::Inside { grid: smaller, on_boundary: true });
    assert_eq!(f.index.locate_within(&f.city, on_ring, 0.0).candidates.len(), 2);

    // The two-part grid: both parts answer with the same grid.
    let (nx, ny) = (12, 9);
    let a = f.index.locate(&f.city, centre(nx - 1, 0)).grid().unwrap();
    let b = f.index.locate(&f.city, centre(0, ny - 1)).grid().unwrap();
    assert_eq!(a, b);
    assert_eq!(f.city.grid(a).geometry.0.len(), 2);

    // A gap inside the coverage: outside, nearest grid ~ half a cell away.
    let gap = centre(2, 2);
    match f.index.locate(&f.city, gap) {
        Location::Outside { distance_m, .. } => assert!(distance_m > 20.0 && distance_m < 80.0, "{distance_m}"),
        other => panic!("{other:?}"),
    }
    f.check(gap).unwrap();
    // The chain of a located grid runs up to the district.
    let chain = f.city.chain(island);
    assert_eq!(chain.len(), 4);
    assert_eq!(code(&f.city, chain[0]), "320506");
}

#[test]
fn the_raster_answers_most_cells_without_a_polygon_test() {
    let f = fixture();
    let s = f.index.stats();
    let cells = (s.interior_cells + s.boundary_cells) as f64 / s.unit_grids as f64;
    assert!((16.0..=64.0).contains(&cells), "{s:?}");
    assert!(s.interior_cells > s.boundary_cells / 2, "{s:?}");
    assert!(s.mean_candidates >= 1.0 && s.mean_candidates < 4.0, "{s:?}");
    assert!(s.cell_m[0] > 10.0 && s.cell_m[0] < 40.0 && (s.cell_m[0] / s.cell_m[1] - 1.0).abs() < 0.01, "{s:?}");
    assert!(f.index.memory_bytes() > 0);
}

#[test]
fn gcj02_input_converted_to_wgs84_gets_the_wgs84_answer() {
    let f = fixture();
    let ext = f.index.extent().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let (mut compared, mut raw_differs) = (0, 0);
    for _ in 0..3000 {
        let w = Coord { x: ext.min().x + rng.random_range(0.0..1.0) * ext.width(), y: ext.min().y + rng.random_range(0.0..1.0) * ext.height() };
        // Points within a centimetre of an edge could legitimately flip with the < 0.1 mm
        // round trip error; skip them.
        if f.units.iter().any(|&g| fixtures::oracle_edge_distance(&f.city, g, w) < 0.01) {
            continue;
        }
        let (glon, glat) = Datum::Gcj02.from_wgs84(w.x, w.y);
        let (lon, lat) = Datum::Gcj02.to_wgs84(glon, glat);
        let want = f.index.locate(&f.city, w);
        let got = f.index.locate(&f.city, Coord { x: lon, y: lat });
        match (got, want) {
            (Location::Outside { nearest: a, distance_m: da }, Location::Outside { nearest: b, distance_m: db }) => {
                assert_eq!(a, b, "{w:?}");
                assert!((da - db).abs() < 1e-3, "{da} vs {db}");
            }
            _ => assert_eq!(got, want, "{w:?}"),
        }
        if f.index.locate(&f.city, Coord { x: glon, y: glat }) != want {
            raw_differs += 1;
        }
        compared += 1;
    }
    assert!(compared > 2500, "{compared}");
    // Without the conversion (a ~470 m offset, several grids) nearly every answer is wrong.
    assert!(raw_differs as f64 > 0.95 * compared as f64, "{raw_differs} of {compared}");
}

#[test]
fn far_points_are_answered_by_brute_force_and_agree() {
    let f = fixture();
    for p in [Coord { x: -70.0, y: 40.0 }, Coord { x: 120.6, y: 89.5 }, Coord { x: 120.6, y: -60.0 }, Coord { x: 100.0, y: 31.3 }, Coord { x: 121.6, y: 31.3 }]
    {
        f.check(p).unwrap();
        assert!(matches!(f.index.locate(&f.city, p), Location::Outside { .. }));
    }
}

#[test]
fn no_grids_or_no_coordinates_is_nowhere() {
    let f = fixture();
    for p in [Coord { x: f64::NAN, y: 31.3 }, Coord { x: 120.6, y: f64::INFINITY }] {
        assert_eq!(f.index.locate(&f.city, p), Location::Nowhere);
        let a = f.index.locate_within(&f.city, p, 50.0);
        assert_eq!((a.location, a.candidates.len(), a.ambiguous), (Location::Nowhere, 0, false));
    }
    // A city with a district but no unit grid.
    let mut b = fixtures::builder();
    b.add_grid(&GridFields { code: "320506", name: "区", ..Default::default() }, square(120.6, 31.3, 0.01)).unwrap();
    let city = b.finish().unwrap();
    let index = GridIndex::build(&city);
    assert_eq!(index.locate(&city, Coord { x: 120.6, y: 31.3 }), Location::Nowhere);
    assert_eq!(index.unit_grids(), 0);
}

fn square(x: f64, y: f64, s: f64) -> MultiPolygon<f64> {
    MultiPolygon(vec![Polygon::new(LineString::from(vec![(x, y), (x + s, y), (x + s, y + s), (x, y + s), (x, y)]), vec![])])
}

/// Unit grids given as raw polygons under one community.
fn city_of(polys: Vec<MultiPolygon<f64>>) -> City {
    let mut b = fixtures::builder();
    b.add_grid(&GridFields { code: "320506", name: "区", ..Default::default() }, square(0.0, 0.0, 1.0)).unwrap();
    b.add_grid(&GridFields { code: "320506001", name: "街道", parent: "320506", ..Default::default() }, square(0.0, 0.0, 1.0)).unwrap();
    b.add_grid(&GridFields { code: "320506001001", name: "社区", parent: "320506001", ..Default::default() }, square(0.0, 0.0, 1.0)).unwrap();
    for (k, g) in polys.into_iter().enumerate() {
        let code = format!("320506001001{:02}", 99 - k);
        b.add_grid(&GridFields { code: &code, name: "网格", parent: "320506001001", ..Default::default() }, g).unwrap();
    }
    b.finish().unwrap()
}

#[test]
fn sparse_degenerate_and_overlapping_grids_still_match_the_oracle() {
    let sliver = MultiPolygon(vec![Polygon::new(LineString::from(vec![(120.6, 31.3), (120.601, 31.3005), (120.602, 31.301), (120.6, 31.3)]), vec![])]);
    let polys = vec![
        square(120.6, 31.3, 0.001),
        square(120.601, 31.3, 0.001),
        // 50 km away: a sparse coverage, coarse raster.
        square(121.1, 31.3, 0.001),
        // Overlaps the first two.
        square(120.6005, 31.3002, 0.001),
        // Zero area.
        sliver,
        // A bow tie (self-intersecting; the winding rule decides).
        MultiPolygon(vec![Polygon::new(LineString::from(vec![(120.62, 31.3), (120.621, 31.301), (120.621, 31.3), (120.62, 31.301), (120.62, 31.3)]), vec![])]),
        MultiPolygon(vec![]),
    ];
    let f = Fixture::new(city_of(polys));
    let s = f.index.stats();
    assert!(s.nx * s.ny <= 4096, "{s:?}");
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    let pts: Vec<Coord<f64>> = (0..20_000)
        .map(|k| {
            if k % 4 == 0 {
                Coord { x: 121.1 + rng.random_range(-0.0005..0.0015), y: 31.3 + rng.random_range(-0.0005..0.0015) }
            } else {
                Coord { x: 120.6 + rng.random_range(-0.001..0.023), y: 31.3 + rng.random_range(-0.001..0.003) }
            }
        })
        .chain(f.vertices.iter().copied())
        .chain(f.edge_points.iter().copied())
        .collect();
    for p in pts {
        f.check(p).unwrap();
        let r = 30.0;
        let got = f.index.locate_within(&f.city, p, r);
        assert_eq!(got.candidates, f.oracle_candidates(p, r), "{p:?}");
    }
}
