//! Responsibility polygons of the demo: sections of the two main roads (the lattice row and
//! column through the district's middle), each a 24 m wide band along the road's polyline,
//! three blocks long. The east–west road is kept by the district's highway station, the
//! north–south road by its municipal engineering office; the demo list routes road collapses
//! (0401 紧急) in these sections to the section's unit, and dirty-road cases (0104) of the
//! first east–west section to the road-sweeping team.

use geo_types::{Coord, LineString, MultiPolygon, Polygon};

use super::catalog::{CityKind, U, unit};
use super::geometry::{Frame, Lattice, P};

/// Half the width of a road band, metres.
const HALF_WIDTH: f64 = 12.0;
/// Blocks per road section.
const SECTION_EDGES: usize = 3;

/// One road section as the demo writes it.
pub(crate) struct ZoneOut {
    pub layer: &'static str,
    pub id: String,
    pub name: String,
    pub unit: String,
    pub geometry: MultiPolygon<f64>,
}

/// The district's name as its units start, e.g. `吴中区`.
fn district_prefix(city: CityKind) -> &'static str {
    unit(city, U::Bureau).trim_end_matches("城市管理局")
}

/// The unit of the east–west road's sections.
pub(crate) fn highway_station(city: CityKind) -> String {
    format!("{}公路管理站", district_prefix(city))
}

/// The team that sweeps the first east–west section (a named unit of the demo list).
pub(crate) fn sweeping_team(city: CityKind) -> String {
    format!("{}道路机扫队", district_prefix(city))
}

/// The road sections of the two main roads, inside the district.
pub(crate) fn road_sections(lattice: &Lattice, in_district: &[bool], frame: &Frame, city: CityKind) -> Vec<ZoneOut> {
    let (nx, ny) = (lattice.nx, lattice.ny);
    let horizontal = nx * (ny + 1);
    let ew: Vec<usize> = (0..nx).map(|i| (ny / 2) * nx + i).collect();
    let ns: Vec<usize> = (0..ny).map(|j| horizontal + j * (nx + 1) + nx / 2).collect();
    let mut out = Vec::new();
    for (edges, prefix, road, unit_name) in [(ew, "EW", "东西大道", highway_station(city)), (ns, "NS", "南北大道", unit(city, U::Municipal).to_owned())]
    {
        // Runs of consecutive edges with the district on both sides.
        let inside = |e: usize| {
            let (l, r) = lattice.edge_sides(e);
            l.is_some_and(|c| in_district[c]) && r.is_some_and(|c| in_district[c])
        };
        let mut runs: Vec<Vec<usize>> = Vec::new();
        let mut current = Vec::new();
        for e in edges {
            if inside(e) {
                current.push(e);
            } else if !current.is_empty() {
                runs.push(std::mem::take(&mut current));
            }
        }
        if !current.is_empty() {
            runs.push(current);
        }
        let mut k = 0;
        for run in runs {
            for section in run.chunks(SECTION_EDGES) {
                k += 1;
                out.push(ZoneOut {
                    layer: "roads",
                    id: format!("{prefix}{k:02}"),
                    name: format!("{road}第{k}段"),
                    unit: unit_name.clone(),
                    geometry: band(lattice, section, frame),
                });
            }
        }
    }
    out
}

/// The band of half-width [`HALF_WIDTH`] around the polyline of consecutive edges.
fn band(lattice: &Lattice, edges: &[usize], frame: &Frame) -> MultiPolygon<f64> {
    let mut ids = Vec::new();
    for &e in edges {
        let mut pts = Vec::new();
        lattice.edge_points(e, &mut pts);
        if !ids.is_empty() {
            pts.remove(0); // the joint vertex is already there
        }
        ids.extend(pts);
    }
    let line: Vec<P> = ids.iter().map(|&v| lattice.pts[v as usize]).collect();
    let n = line.len();
    let normal = |k: usize| {
        let (a, b) = (line[k.saturating_sub(1)], line[(k + 1).min(n - 1)]);
        let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
        let len = dx.hypot(dy);
        [-dy / len, dx / len]
    };
    let side = |k: usize, sign: f64| {
        let m = normal(k);
        frame.to_ll([line[k][0] + sign * m[0] * HALF_WIDTH, line[k][1] + sign * m[1] * HALF_WIDTH])
    };
    let mut ring: Vec<Coord<f64>> = (0..n).map(|k| side(k, 1.0)).chain((0..n).rev().map(|k| side(k, -1.0))).collect();
    ring.push(ring[0]);
    let mut polygon = Polygon::new(LineString(ring), vec![]);
    // Exterior rings counter-clockwise, as GeoJSON and OGC want them.
    use geo::orient::{Direction, Orient};
    polygon = polygon.orient(Direction::Default);
    MultiPolygon(vec![polygon])
}
