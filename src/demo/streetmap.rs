//! The demo city's own street map: a small vector basemap in the OpenMapTiles schema drawn
//! from the generator's road lattice, so the first screen of `serve --demo` has streets with
//! no download. The same seed gives the same roads as the city: the lattice and the district
//! are made from the same seeded streams as in [`super::generate`] (steps 1–2), so the grid
//! outlines run along these streets.
//!
//! Layers (OpenMapTiles names and classes): `transportation` (class `primary` for the two
//! main roads — 东西大道 and 南北大道, the roads of the demo's road-section zones —,
//! `secondary` every fourth lattice line, `minor` the rest), `transportation_name` (the same
//! lines with `name`), `landuse` (blocks: `residential`, `commercial`), `park`, `water`
//! (`lake`) and `building` (four footprints per built block, from z14). Blocks of a band two
//! blocks wide around the district are drawn too, so the map does not stop at its border.

use std::f64::consts::PI;
use std::path::Path;

use super::catalog::PresetInfo;
use super::geometry::{self, Frame, Lattice, P};
use super::{BLOCKS_PER_GRID, DemoError, DemoSpec, seed};
use crate::basemap::render::{Feature, MbtilesMeta, Shape, render, write_mbtiles};

/// First and last zoom of the demo street map (clients overzoom past the last).
pub const MIN_ZOOM: u8 = 10;
pub const MAX_ZOOM: u8 = 16;

/// Layers in drawing order.
const LAYERS: [&str; 6] = ["water", "landuse", "park", "building", "transportation", "transportation_name"];

/// Road name stems: a lattice line's name is a stem plus a suffix, unique per line.
const STEMS: &[&str] = &[
    "长江", "宝带", "越溪", "东吴", "友新", "塔韵", "旺山", "石湖", "苏蠡", "迎春", "南湖", "尹山", "文溪", "金枫", "独墅", "天鹅", "运河", "吴中", "龙西",
    "溪霞", "碧波", "蠡墅", "凤凰", "澄湖", "车坊", "淞江", "木林", "清树",
];
/// Suffix variants, in order: 长江路, 长江东路, 长江二路, …
const VARIANTS: &[&str] = &["", "东", "西", "南", "北", "中", "二", "三", "四", "五"];

/// The street map of a demo city: its features, bounds and centre.
pub struct StreetMap {
    pub name: String,
    pub features: Vec<Feature>,
    /// west, south, east, north.
    pub bounds: [f64; 4],
    pub center: [f64; 2],
}

/// The name of the demo city of `preset` (`吴中区 (demo)`), as its settings carry it.
pub fn demo_label(preset: super::Preset) -> &'static str {
    PresetInfo::of(preset).label
}

/// The lattice, frame and district of `spec`, exactly as [`super::generate`] makes them.
fn lattice_and_district(spec: &DemoSpec) -> (PresetInfo, Frame, Lattice, Vec<bool>) {
    let info = PresetInfo::of(spec.preset);
    let seed = seed::derive(spec.seed, &[spec.preset as u64 + 1]);
    let frame = Frame::new(info.center);
    let area = info.area_km2 * 1e6;
    let s = (area / (BLOCKS_PER_GRID * info.grids as f64)).sqrt();
    let half = (1.6 * (area / PI).sqrt() / s).ceil() as usize + 4;
    let lattice = Lattice::new(2 * half, 2 * half, s, &frame, &mut seed::rng(seed, &[seed::LATTICE]));
    let district = geometry::district_cells(&lattice, area, &mut seed::rng(seed, &[seed::DISTRICT]));
    let mut in_district = vec![false; lattice.cells()];
    for &c in &district {
        in_district[c as usize] = true;
    }
    (info, frame, lattice, in_district)
}

/// A deterministic hash of a cell (SplitMix64's finaliser).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn road_name(line: usize, horizontal: bool, main: bool) -> String {
    if main {
        return (if horizontal { "东西大道" } else { "南北大道" }).to_owned();
    }
    // East–west lines are 路, north–south lines 街; stems interleaved so neighbours differ.
    let k = line * 7 + if horizontal { 0 } else { 3 };
    let stem = STEMS[k % STEMS.len()];
    let variant = VARIANTS[(k / STEMS.len()) % VARIANTS.len()];
    format!("{stem}{variant}{}", if horizontal { "路" } else { "街" })
}

/// The demo city's street map.
pub fn street_map(spec: &DemoSpec) -> StreetMap {
    let (info, frame, lattice, in_district) = lattice_and_district(spec);
    let (nx, ny) = (lattice.nx, lattice.ny);
    // The district and two blocks around it.
    let mut near = in_district.clone();
    for _ in 0..2 {
        let grown: Vec<bool> = (0..lattice.cells()).map(|c| near[c] || lattice.neighbours(c).iter().flatten().any(|&n| near[n])).collect();
        near = grown;
    }
    let ll = |p: P| {
        let c = frame.to_ll(p);
        [c.x, c.y]
    };
    let mut features = Vec::new();
    let (mut west, mut south, mut east, mut north) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);

    // Roads: each lattice line's runs of edges touching a drawn block, one line string each.
    let horizontal = nx * (ny + 1);
    let lines = (0..=ny)
        .map(|j| (true, j, (0..nx).map(|i| j * nx + i).collect::<Vec<_>>()))
        .chain((0..=nx).map(|i| (false, i, (0..ny).map(|j| horizontal + j * (nx + 1) + i).collect::<Vec<_>>())));
    let mut ids = Vec::new();
    for (is_h, index, edges) in lines {
        let middle = if is_h { ny / 2 } else { nx / 2 };
        let main = index == middle;
        let class = if main {
            "primary"
        } else if index.abs_diff(middle) % 4 == 0 {
            "secondary"
        } else {
            "minor"
        };
        let name = road_name(index, is_h, main);
        let mut run: Vec<[f64; 2]> = Vec::new();
        let flush = |run: &mut Vec<[f64; 2]>, features: &mut Vec<Feature>| {
            if run.len() >= 2 {
                let line = std::mem::take(run);
                let (road_zoom, name_zoom) = match class {
                    "primary" => (MIN_ZOOM, 12),
                    "secondary" => (MIN_ZOOM, 13),
                    _ => (12, 14),
                };
                features.push(Feature {
                    layer: "transportation",
                    shape: Shape::Line(line.clone()),
                    props: vec![("class", class.to_owned())],
                    min_zoom: road_zoom,
                });
                features.push(Feature {
                    layer: "transportation_name",
                    shape: Shape::Line(line),
                    props: vec![("class", class.to_owned()), ("name", name.clone())],
                    min_zoom: name_zoom,
                });
            }
            run.clear();
        };
        for e in edges {
            let (l, r) = lattice.edge_sides(e);
            if !(l.is_some_and(|c| near[c]) || r.is_some_and(|c| near[c])) {
                flush(&mut run, &mut features);
                continue;
            }
            ids.clear();
            lattice.edge_points(e, &mut ids);
            for (k, &id) in ids.iter().enumerate() {
                if k == 0 && !run.is_empty() {
                    continue;
                }
                run.push(ll(lattice.pts[id as usize]));
            }
        }
        flush(&mut run, &mut features);
    }

    // Blocks: shrunk away from the roads; a few parks and ponds, the rest built up.
    let mut ring = Vec::new();
    for c in (0..lattice.cells()).filter(|&c| near[c]) {
        ring.clear();
        lattice.expand(&lattice.cell_corners(c), &mut ring);
        let centre = lattice.cell_centre[c];
        let shrink = |p: P, by: f64| [centre[0] + (p[0] - centre[0]) * by, centre[1] + (p[1] - centre[1]) * by];
        let block: Vec<[f64; 2]> = ring.iter().map(|&id| ll(shrink(lattice.pts[id as usize], 1.0 - 20.0 / lattice.s))).collect();
        for p in &block {
            west = west.min(p[0]);
            east = east.max(p[0]);
            south = south.min(p[1]);
            north = north.max(p[1]);
        }
        let h = mix(c as u64 ^ (spec.seed << 32)) % 100;
        let (layer, class, zoom) = match h {
            0..5 => ("park", "park", MIN_ZOOM),
            5..7 => ("water", "lake", MIN_ZOOM),
            7..22 => ("landuse", "commercial", 12),
            _ => ("landuse", "residential", 12),
        };
        features.push(Feature { layer, shape: Shape::Polygon(block), props: vec![("class", class.to_owned())], min_zoom: zoom });
        if layer == "landuse" {
            // Four footprints inside the block: bilinear in its shrunk corners.
            let corners = lattice.cell_corners(c).map(|v| shrink(lattice.pts[v as usize], 1.0 - 40.0 / lattice.s));
            let at = |u: f64, v: f64| {
                let [a, b, cc, d] = corners;
                let w = [(1.0 - u) * (1.0 - v), u * (1.0 - v), u * v, (1.0 - u) * v];
                ll([w[0] * a[0] + w[1] * b[0] + w[2] * cc[0] + w[3] * d[0], w[0] * a[1] + w[1] * b[1] + w[2] * cc[1] + w[3] * d[1]])
            };
            for (u0, u1) in [(0.05, 0.45), (0.55, 0.95)] {
                for (v0, v1) in [(0.05, 0.45), (0.55, 0.95)] {
                    let footprint = vec![at(u0, v0), at(u1, v0), at(u1, v1), at(u0, v1)];
                    features.push(Feature { layer: "building", shape: Shape::Polygon(footprint), props: vec![], min_zoom: 14 });
                }
            }
        }
    }
    StreetMap { name: format!("{} 街道图", info.label), features, bounds: [west, south, east, north], center: info.center }
}

/// What [`write_street_map`] wrote.
#[derive(Clone, Copy, Debug)]
pub struct StreetMapStats {
    pub features: usize,
    pub tiles: usize,
    pub bytes: u64,
}

/// Writes the street map of `spec` to `path` as an MBTiles file (z10–z16, gzip'd MVT).
pub fn write_street_map(spec: &DemoSpec, path: &Path) -> Result<StreetMapStats, DemoError> {
    let map = street_map(spec);
    let tiles = render(&map.features, &LAYERS, MIN_ZOOM, MAX_ZOOM);
    let field = |pairs: &[(&str, &str)]| serde_json::Value::Object(pairs.iter().map(|(k, v)| ((*k).to_owned(), serde_json::json!(v))).collect());
    let layer = |id: &str, fields: serde_json::Value, minzoom: u8| serde_json::json!({"id": id, "fields": fields, "minzoom": minzoom, "maxzoom": MAX_ZOOM});
    let vector_layers = serde_json::json!([
        layer("water", field(&[("class", "String")]), MIN_ZOOM),
        layer("landuse", field(&[("class", "String")]), 12),
        layer("park", field(&[("class", "String")]), MIN_ZOOM),
        layer("building", field(&[]), 14),
        layer("transportation", field(&[("class", "String")]), MIN_ZOOM),
        layer("transportation_name", field(&[("class", "String"), ("name", "String")]), 12),
    ]);
    let meta = MbtilesMeta {
        name: map.name.clone(),
        description: "The demo city's streets and blocks, drawn by citygrid's demo generator (OpenMapTiles schema)".into(),
        attribution: "citygrid demo".into(),
        minzoom: MIN_ZOOM,
        maxzoom: MAX_ZOOM,
        bounds: map.bounds,
        center: [map.center[0], map.center[1], 14.0],
        vector_layers,
    };
    write_mbtiles(path, &tiles, &meta)?;
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok(StreetMapStats { features: map.features.len(), tiles: tiles.len(), bytes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::Preset;

    #[test]
    fn the_main_roads_run_through_the_demo_road_zones() {
        let spec = DemoSpec { preset: Preset::Tiny, components: None, seed: 1 };
        let city = super::super::generate(&spec, &|_, _| {}).unwrap();
        let map = street_map(&spec);
        let ew: Vec<&[f64; 2]> = map
            .features
            .iter()
            .filter(|f| f.layer == "transportation_name" && f.props.iter().any(|(k, v)| *k == "name" && v == "东西大道"))
            .flat_map(|f| match &f.shape {
                Shape::Line(l) => l.iter().collect::<Vec<_>>(),
                _ => Vec::new(),
            })
            .collect();
        assert!(!ew.is_empty());
        // Every vertex of the zone EW01's centre line is a vertex of the basemap's 东西大道:
        // some point of the road lies inside the zone band.
        let zone = city.city.zones.iter().find(|z| z.id == "EW01").expect("the demo has EW01");
        use geo::Contains;
        let inside = ew.iter().filter(|p| zone.geometry.contains(&geo_types::Point::new(p[0], p[1]))).count();
        assert!(inside >= 2, "{inside} points of 东西大道 lie in zone EW01");
        // Names are unique per line and plausible.
        assert!(map.features.iter().any(|f| f.props.iter().any(|(_, v)| v.ends_with('路'))));
        let b = map.bounds;
        assert!(b[0] < map.center[0] && map.center[0] < b[2] && b[1] < map.center[1] && map.center[1] < b[3], "{b:?}");
    }
}
