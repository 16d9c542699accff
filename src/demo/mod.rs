//! Synthetic demo cities, deterministic by seed: a district's grid hierarchy, its components
//! and a default responsibility list, shaped after the Wuzhong and Xicheng pilots.
//!
//! How the city is made:
//! 1. A road network: a warped quad lattice of blocks (街坊) whose edges are road polylines,
//!    each stored once so that both sides of a road use the very same points (`geometry`).
//! 2. The district: the blocks inside a seeded irregular blob of the preset's area, made
//!    one piece with no hole and no diagonal pinch.
//! 3. Streets, communities and unit grids: balanced region growing on the block adjacency
//!    graph, level by level, each child a topological disc, retried with derived seeds
//!    until every region is valid (`layout`).
//! 4. Outlines: a region's boundary edges chained into one counter-clockwise ring along the
//!    shared road polylines, so levels tile their parents exactly.
//! 5. Components along the roads in a realistic class mix, each inside the block (and so the
//!    unit grid) it records (`components`); a default responsibility list (`rules`).

mod catalog;
mod components;
mod geometry;
mod layout;
mod names;
mod rules;
mod seed;
pub mod streetmap;
#[cfg(test)]
mod tests;
mod zones;

use std::f64::consts::PI;

use crate::model::{City, CityBuilder, ClassTable, GridFields, Hierarchy, ModelError, Unit};
use catalog::{CLASS_MIX, PresetInfo, U, carriers, office, sanitation_station, unit};
use geometry::{Frame, Lattice, P};
use layout::Counts;

/// Most components the generator makes (the 6-digit serial allows ~48 million over the
/// class mix; memory is the real limit).
pub const MAX_COMPONENTS: usize = 10_000_000;

/// Blocks per unit grid on average; sets the block size.
const BLOCKS_PER_GRID: f64 = 2.5;

/// First day grids are in force.
const VALID_FROM: &str = "2023-01-01";

/// A demo city preset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// A few dozen unit grids and 2,000 components in Wuzhong; generates in milliseconds.
    Tiny,
    /// Suzhou Wuzhong pilot: 1 + 14 + 212 + 945 grids, ~231,000 components, ~52 km².
    Wuzhong,
    /// Beijing Xicheng: 1 + 15 + 263 + 1,623 grids, ~610,000 components, ~50.7 km².
    Xicheng,
}

impl Preset {
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Tiny => "tiny",
            Preset::Wuzhong => "wuzhong",
            Preset::Xicheng => "xicheng",
        }
    }
}

/// What to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoSpec {
    pub preset: Preset,
    /// Number of components; the preset's own count if `None`. At most [`MAX_COMPONENTS`].
    pub components: Option<usize>,
    /// Same seed, same city (bit for bit).
    pub seed: u64,
}

/// A generated city.
pub struct DemoCity {
    /// Grids of all levels and components, built through [`CityBuilder`].
    pub city: City,
    /// Display name, e.g. `吴中区 (demo)`.
    pub name: String,
    /// lon, lat of the district's centre.
    pub center: [f64; 2],
    /// Default responsibility list, CSV with the header
    /// `case_kind,case_type,case_name,scope,unit,urgency,time_limit,escalation`.
    pub rules_csv: String,
}

impl DemoCity {
    /// The demo city's settings: its name, county code, centre and hierarchy.
    pub fn meta(&self) -> crate::store::CityMeta {
        let code = self.city.grids.first().map(|g| g.code.to_string()).filter(|c| c.len() == 6);
        crate::store::CityMeta { code, center: Some(self.center), ..crate::store::CityMeta::new(&self.name, self.city.hierarchy.clone()) }
    }
}

/// Why a demo city could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{requested} components requested; the demo generator makes at most {max}")]
    TooManyComponents { requested: usize, max: usize },
    #[error("could not lay out the {preset} demo city with seed {seed}: {reason}")]
    Layout { preset: &'static str, seed: u64, reason: String },
    #[error("the generated city failed the model's checks: {0}")]
    Model(#[from] ModelError),
    #[error("the demo street map could not be written: {0}")]
    Basemap(#[from] crate::basemap::BasemapError),
}

/// A street after naming: its layout index, code, name and its communities.
struct StreetOut {
    layout: usize,
    code: String,
    name: &'static str,
    town: bool,
    office: String,
    communities: Vec<CommunityOut>,
}

struct CommunityOut {
    layout: usize,
    code: String,
    name: String,
    /// (layout index, code) of each unit grid, in code order.
    grids: Vec<(usize, String)>,
}

/// Generates the city described by `spec`. `progress(done, total)` is called about every
/// 1 % of the components.
pub fn generate(spec: &DemoSpec, progress: &dyn Fn(u64, u64)) -> Result<DemoCity, DemoError> {
    let info = PresetInfo::of(spec.preset);
    let total = spec.components.unwrap_or(info.components);
    if total > MAX_COMPONENTS {
        return Err(DemoError::TooManyComponents { requested: total, max: MAX_COMPONENTS });
    }
    let layout_error = |reason: String| DemoError::Layout { preset: spec.preset.as_str(), seed: spec.seed, reason };

    // Each preset draws its own streams, so equal seeds give unrelated presets.
    let seed = seed::derive(spec.seed, &[spec.preset as u64 + 1]);

    // 1–3: roads, district, hierarchy.
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
    if lattice.trace(&district, |c| in_district[c]).is_none() {
        return Err(layout_error("the district outline is not a simple polygon".into()));
    }
    let counts = Counts { streets: info.streets.len(), communities: info.communities, grids: info.grids };
    let layout = layout::layout(&lattice, district, counts, seed).map_err(layout_error)?;

    // Names and codes.
    let streets = name_streets(&lattice, &layout, &info, seed);
    let n_comm: usize = streets.iter().map(|s| s.communities.len()).sum();
    let n_grid: usize = streets.iter().flat_map(|s| &s.communities).map(|c| c.grids.len()).sum();
    debug_assert_eq!((streets.len(), n_comm, n_grid), (counts.streets, counts.communities, counts.grids));

    // The responsibility list, which may name street-level units of its own.
    let refs: Vec<rules::StreetRef<'_>> =
        streets.iter().map(|s| rules::StreetRef { code: &s.code, name: s.name, town: s.town, first_community: &s.communities[0].code }).collect();
    let road_zones = zones::road_sections(&lattice, &in_district, &frame, info.city);
    let road_refs: Vec<rules::ZoneRef<'_>> = road_zones.iter().map(|z| rules::ZoneRef { layer: z.layer, id: &z.id }).collect();
    let (rules_csv, mut rule_units) = rules::rules(info.city, &refs, &road_refs);
    rule_units.extend(road_zones.iter().map(|z| z.unit.clone()));

    let mut builder = CityBuilder::new(Hierarchy::cjt213(), ClassTable::builtin_components(), ClassTable::builtin_events());
    register_units(&mut builder, &info, &streets, &rule_units, seed);

    // 4: outlines, top level first.
    let bureau = unit(info.city, U::Bureau);
    let county = info.county.to_string();
    let outline = |cells: &[u32], inside: &dyn Fn(usize) -> bool| {
        lattice.trace(cells, inside).map(|ring| lattice.polygon(&ring)).ok_or_else(|| layout_error("a region lost its outline".into()))
    };
    let geometry = outline(&layout.district.cells, &|c| in_district[c])?;
    builder
        .add_grid(&GridFields { code: &county, name: info.district, level: Some(1), unit: bureau, valid_from: VALID_FROM, ..Default::default() }, geometry)?;
    let mut people = seed::rng(seed, &[seed::PEOPLE]);
    let mut street_of = vec![u32::MAX; lattice.cells()];
    let mut comm_of = vec![u32::MAX; lattice.cells()];
    let mut grid_of = vec![u32::MAX; lattice.cells()];
    let mut grid_code: Vec<String> = Vec::with_capacity(n_grid);
    let mut grid_street: Vec<usize> = Vec::with_capacity(n_grid);
    let mut n_comm_seen = 0u32;
    for (si, st) in streets.iter().enumerate() {
        let region = &layout.streets[st.layout];
        for &c in &region.region.cells {
            street_of[c as usize] = si as u32;
        }
        let geometry = outline(&region.region.cells, &|c| street_of[c] == si as u32)?;
        builder.add_grid(
            &GridFields { code: &st.code, name: st.name, level: Some(2), parent: &county, unit: &st.office, valid_from: VALID_FROM, ..Default::default() },
            geometry,
        )?;
        for co in &st.communities {
            let comm = &region.communities[co.layout];
            let ci = n_comm_seen;
            n_comm_seen += 1;
            for &c in &comm.region.cells {
                comm_of[c as usize] = ci;
            }
            let geometry = outline(&comm.region.cells, &|c| comm_of[c] == ci)?;
            let (chief, phone) = (names::person(&mut people), names::mobile(&mut people));
            builder.add_grid(
                &GridFields {
                    code: &co.code,
                    name: &co.name,
                    level: Some(3),
                    parent: &st.code,
                    unit: &st.office,
                    chief_name: &chief,
                    chief_phone: &phone,
                    valid_from: VALID_FROM,
                    ..Default::default()
                },
                geometry,
            )?;
            for (serial, (gl, code)) in co.grids.iter().enumerate() {
                let gi = grid_code.len() as u32;
                let cells = &comm.grids[*gl].cells;
                for &c in cells {
                    grid_of[c as usize] = gi;
                }
                let geometry = outline(cells, &|c| grid_of[c] == gi)?;
                let name = format!("{}{:02}网格", co.name, serial + 1);
                let (chief, phone) = (names::person(&mut people), names::mobile(&mut people));
                builder.add_grid(
                    &GridFields {
                        code,
                        name: &name,
                        level: Some(4),
                        parent: &co.code,
                        unit: &st.office,
                        chief_name: &chief,
                        chief_phone: &phone,
                        valid_from: VALID_FROM,
                        ..Default::default()
                    },
                    geometry,
                )?;
                grid_code.push(code.clone());
                grid_street.push(si);
            }
        }
    }

    // 5: components.
    let roads = components::Roads::new(&lattice, &in_district);
    let street_office: Vec<String> = streets.iter().map(|s| s.office.clone()).collect();
    let street_env: Vec<String> = streets.iter().map(|s| sanitation_station(s.name)).collect();
    let grids =
        components::GridInfo { cell_grid: &grid_of, grid_code: &grid_code, grid_street: &grid_street, street_office: &street_office, street_env: &street_env };
    components::generate(&mut builder, info.city, info.county, total, &roads, &frame, &grids, &mut seed::rng(seed, &[seed::COMPONENTS]), progress)?;

    for z in road_zones {
        builder.add_zone(z.layer, &z.id, &z.name, &z.unit, z.geometry)?;
    }

    Ok(DemoCity { city: builder.finish()?, name: info.label.to_owned(), center: info.center, rules_csv })
}

/// Area-weighted centre of a set of blocks.
fn centroid(lattice: &Lattice, cells: &[u32]) -> P {
    let (mut x, mut y, mut a) = (0.0, 0.0, 0.0);
    for &c in cells {
        let (p, w) = (lattice.cell_centre[c as usize], lattice.cell_area[c as usize]);
        x += p[0] * w;
        y += p[1] * w;
        a += w;
    }
    [x / a, y / a]
}

/// Reading order: rows of height `band` from north to south, west to east within a row.
fn reading_order(centres: &[P], band: f64) -> Vec<usize> {
    let top = centres.iter().map(|p| p[1]).fold(f64::NEG_INFINITY, f64::max) + band / 2.0;
    let mut order: Vec<usize> = (0..centres.len()).collect();
    order.sort_by(|&a, &b| {
        let row = |i: usize| ((top - centres[i][1]) / band).floor() as i64;
        row(a).cmp(&row(b)).then(centres[a][0].total_cmp(&centres[b][0])).then(a.cmp(&b))
    });
    order
}

/// Gives streets, communities and unit grids their names and codes. Towns (镇) are the
/// largest streets; 街道 are numbered 001…, towns 101…, each in reading order.
fn name_streets(lattice: &Lattice, layout: &layout::Layout, info: &PresetInfo, seed: u64) -> Vec<StreetOut> {
    let n = layout.streets.len();
    let n_towns = info.streets.iter().filter(|s| s.1).count();
    let mut by_area: Vec<usize> = (0..n).collect();
    by_area.sort_by(|&a, &b| layout.streets[b].region.area.total_cmp(&layout.streets[a].region.area).then(a.cmp(&b)));
    let mut town = vec![false; n];
    for &i in by_area.iter().take(n_towns) {
        town[i] = true;
    }
    let centres: Vec<P> = layout.streets.iter().map(|s| centroid(lattice, &s.region.cells)).collect();
    let band = (layout.district.area / n as f64).sqrt();
    let order = reading_order(&centres, band);
    let mut names_of_kind = [
        info.streets.iter().filter(|s| !s.1).map(|s| s.0).collect::<Vec<_>>().into_iter(),
        info.streets.iter().filter(|s| s.1).map(|s| s.0).collect::<Vec<_>>().into_iter(),
    ];
    let mut serial = [0usize, 100];
    let mut streets = Vec::with_capacity(n);
    for kind in [false, true] {
        for &i in order.iter().filter(|&&i| town[i] == kind) {
            serial[kind as usize] += 1;
            let name = names_of_kind[kind as usize].next().expect("one name per street");
            streets.push(StreetOut {
                layout: i,
                code: format!("{:06}{:03}", info.county, serial[kind as usize]),
                name,
                town: kind,
                office: office(name, kind),
                communities: Vec::new(),
            });
        }
    }
    let total: usize = layout.streets.iter().map(|s| s.communities.len()).sum();
    let mut comm_names = names::communities(info.city, total, &mut seed::rng(seed, &[seed::NAMES])).into_iter();
    for st in &mut streets {
        let street = &layout.streets[st.layout];
        let centres: Vec<P> = street.communities.iter().map(|c| centroid(lattice, &c.region.cells)).collect();
        let band = (street.region.area / centres.len() as f64).sqrt();
        for (k, &ci) in reading_order(&centres, band).iter().enumerate() {
            let comm = &street.communities[ci];
            let code = format!("{}{:03}", st.code, k + 1);
            let centres: Vec<P> = comm.grids.iter().map(|g| centroid(lattice, &g.cells)).collect();
            let band = (comm.region.area / centres.len() as f64).sqrt();
            let grids = reading_order(&centres, band).into_iter().enumerate().map(|(g, gi)| (gi, format!("{code}{:02}", g + 1))).collect();
            st.communities.push(CommunityOut { layout: ci, code, name: comm_names.next().expect("one name per community"), grids });
        }
    }
    streets
}

/// Registers every unit the city names, with a register code (county code + 4-digit serial,
/// e.g. `3205060001`) and a duty phone, in a fixed order.
fn register_units(builder: &mut CityBuilder, info: &PresetInfo, streets: &[StreetOut], rule_units: &[String], seed: u64) {
    let mut rng = seed::rng(seed, &[seed::UNITS]);
    let mut names: Vec<String> = vec![unit(info.city, U::Bureau).to_owned()];
    for s in streets {
        names.push(s.office.clone());
        names.push(sanitation_station(s.name));
    }
    names.extend(rule_units.iter().cloned());
    for mix in CLASS_MIX {
        for &u in &mix.units {
            if !matches!(u, U::Telecom | U::Street | U::StreetEnv) {
                names.push(unit(info.city, u).to_owned());
            }
        }
    }
    for (owner, maintainer) in carriers(info.city) {
        names.push(owner.to_owned());
        names.push(maintainer.to_owned());
    }
    let units = builder.units_mut();
    for name in names {
        if units.find(&name).is_none() {
            let phone = names::office_phone(info.city, &mut rng);
            let code = format!("{}{:04}", info.county, units.len() + 1);
            units.insert(Unit { code: Some(code), name, phone: Some(phone) });
        }
    }
}
