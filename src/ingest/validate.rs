//! From a read layer to the new city and its report: CRS and reprojection, geometry checks,
//! field mapping, the model's checks (through [`CityBuilder`]), the spatial checks against the
//! grids the layer will be served with, and the [`Policy`].
//!
//! The new city is the uploaded layer plus the other current layer: a components import keeps
//! the current grids (components are checked against them); a grids import keeps the current
//! components, which must still find their recorded unit grid in the new layer — a kept
//! component cannot be dropped, so one that does not rejects the import whatever the policy.
//!
//! Features are checked in a first pass on a scratch builder; the city is then built again
//! from the accepted features only, so a dropped feature leaves nothing behind (no unit it
//! alone named, no interned name).

use std::collections::{HashMap, HashSet};

use geo::orient::{Direction, Orient};
use geo::Validation;
use geo_types::{Coord, Geometry, MultiPolygon};
use serde::Serialize;

use super::fields::{COMPONENT_FIELDS, FieldMap, GRID_FIELDS};
use super::report::{Issue, IssueKind, Policy, Report, Scope};
use super::{IngestError, SourceLayer, reproject};
use crate::index::{GridIndex, Location};
use crate::model::{City, CityBuilder, ComponentFields, GridCode, GridFields, ModelError};

/// The layers an upload can replace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerKind {
    Grids,
    Components,
}

impl LayerKind {
    pub fn parse(name: &str) -> Result<LayerKind, IngestError> {
        match name {
            "grids" => Ok(LayerKind::Grids),
            "components" => Ok(LayerKind::Components),
            other => Err(IngestError::UnknownLayer(other.to_owned())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LayerKind::Grids => "grids",
            LayerKind::Components => "components",
        }
    }
}

/// What to import and how.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    pub layer: LayerKind,
    /// The layer's CRS as given by the user (`EPSG:4549`, a PROJ string, WKT, `gcj02`, …).
    pub crs: Option<String>,
    /// The given CRS wins over the one the file declares.
    pub force_crs: bool,
    pub policy: Policy,
    /// Accept a new layer with fewer than half the features of the current one (otherwise
    /// refused as a probably partial file: a survey of one street sent as the whole layer).
    pub allow_shrink: bool,
}

impl ImportOptions {
    pub fn new(layer: LayerKind) -> ImportOptions {
        ImportOptions { layer, crs: None, force_crs: false, policy: Policy::DropInvalid, allow_shrink: false }
    }
}

/// The outcome of validation: the report, and the city to store unless rejected.
pub struct Prepared {
    pub report: Report,
    /// The new layer with the other current layer; `None` when the upload is rejected.
    pub city: Option<City>,
    /// The upload names units the current register lacks: the unit register needs a new version.
    pub units_changed: bool,
}

fn kind_of(e: &ModelError, layer: LayerKind) -> IssueKind {
    match e {
        ModelError::MalformedCode { .. } => IssueKind::MalformedCode,
        ModelError::ClassMismatch { .. } => IssueKind::ClassMismatch,
        ModelError::UnknownClass { .. } => IssueKind::UnknownClass,
        ModelError::BadValue { field: "geometry", .. } => IssueKind::InvalidGeometry,
        ModelError::Duplicate { .. } => IssueKind::DuplicateCode,
        ModelError::Hierarchy(_) if layer == LayerKind::Components => IssueKind::UnknownGrid,
        ModelError::Hierarchy(_) => IssueKind::Hierarchy,
        _ => IssueKind::BadValue,
    }
}

/// A feature's geometry as the layer wants it.
enum Shape {
    Point(Coord<f64>),
    Area(MultiPolygon<f64>),
}

fn shape(layer: LayerKind, g: Geometry<f64>) -> Result<Shape, (IssueKind, String)> {
    match (layer, g) {
        (LayerKind::Components, Geometry::Point(p)) => Ok(Shape::Point(p.0)),
        (LayerKind::Components, Geometry::MultiPoint(mp)) if mp.0.len() == 1 => Ok(Shape::Point(mp.0[0].0)),
        (LayerKind::Grids, Geometry::Polygon(p)) => area(MultiPolygon(vec![p])),
        (LayerKind::Grids, Geometry::MultiPolygon(mp)) => area(mp),
        (layer, g) => {
            let want = if layer == LayerKind::Grids { "a Polygon or MultiPolygon" } else { "a Point" };
            let got = match g {
                Geometry::Point(_) => "a Point",
                Geometry::MultiPoint(_) => "a MultiPoint of several points",
                Geometry::Polygon(_) | Geometry::MultiPolygon(_) => "a polygon",
                _ => "another geometry type",
            };
            Err((IssueKind::WrongGeometryType, format!("{got}; a {} feature must be {want}", layer.name())))
        }
    }
}

/// A polygon checked with geo's validity rules (self-intersections, rings crossing, …) and
/// oriented like the model wants (exterior rings counter-clockwise).
fn area(mp: MultiPolygon<f64>) -> Result<Shape, (IssueKind, String)> {
    if mp.0.is_empty() {
        return Err((IssueKind::InvalidGeometry, "an empty multipolygon".into()));
    }
    if let Err(e) = mp.check_validation() {
        return Err((IssueKind::InvalidGeometry, format!("invalid polygon: {e}")));
    }
    Ok(Shape::Area(mp.orient(Direction::Default)))
}

/// Adds the current grids of `city` to `builder` (a components import keeps them).
fn add_current_grids(builder: &mut CityBuilder, city: &City) -> Result<(), ModelError> {
    for g in &city.grids {
        let (code, parent) = (g.code.to_string(), g.parent.map(|p| city.grid(p).code.to_string()).unwrap_or_default());
        let unit = g.unit.map(|u| city.units.get(u).name.as_str()).unwrap_or("");
        let (chief_name, chief_phone) = g.chief.as_ref().map_or(("", ""), |c| (c.name.as_str(), c.phone.as_str()));
        let date = |d: Option<chrono::NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
        let (valid_from, valid_to) = (date(g.valid_from), date(g.valid_to));
        let fields = GridFields {
            code: &code,
            name: &g.name,
            level: Some(i64::from(g.level) + 1),
            parent: &parent,
            unit,
            chief_name,
            chief_phone,
            valid_from: &valid_from,
            valid_to: &valid_to,
        };
        builder.add_grid(&fields, g.geometry.clone())?;
    }
    Ok(())
}

/// A builder with the current units and responsibility polygons: a grids or components import
/// leaves the zones dataset as it is, so the new city is checked with them (the rules that name
/// zones must still validate).
fn new_builder(current: &City) -> CityBuilder {
    let mut b = CityBuilder::new(current.hierarchy.clone(), current.component_classes.clone(), current.event_classes.clone());
    *b.units_mut() = current.units.clone();
    for z in &current.zones {
        let unit = z.unit.map(|u| current.units.get(u).name.clone()).unwrap_or_default();
        b.add_zone(&z.layer, &z.id, &z.name, &unit, z.geometry.clone()).expect("the current zones are valid");
    }
    b
}

/// A feature that passed the checks so far: its position in the layer, its shape, its level
/// as a number (grids).
struct Candidate {
    feature: usize,
    shape: Shape,
    level: Option<i64>,
}

/// Validates `source` as the new `options.layer` of the city `current` (whose unit grids
/// `current_grids` indexes), by the rules in the module doc. `Err` only for whole-file
/// problems (CRS, no code column); everything per feature is in the report.
pub fn prepare(mut source: SourceLayer, options: &ImportOptions, current: &City, current_grids: &GridIndex) -> Result<Prepared, IngestError> {
    let layer = options.layer;
    let resolved = reproject::resolve(&source, options.crs.as_deref(), options.force_crs)?;
    reproject::to_wgs84(&mut source, &resolved.crs)?;
    let fields: &[(&str, &[&str])] = match layer {
        LayerKind::Grids => &GRID_FIELDS,
        LayerKind::Components => &COMPONENT_FIELDS,
    };
    let map = FieldMap::new(&source, fields);
    if map.columns[0].is_none() {
        return Err(IngestError::Fields(format!(
            "no code column among {}: name it one of {}",
            source.columns.join(", "),
            fields[0].1.join(", ")
        )));
    }
    // The geometries move out of the features; the attribute values stay borrowed.
    let taken: Vec<_> = source.features.iter_mut().map(|f| (f.problem.take(), f.geometry.take())).collect();
    let mut report = Report::new(layer.name(), source.format, resolved.crs.to_string(), resolved.source, options.policy);
    report.features = source.features.len() as u64;
    report.fields = map.describe(&source, fields);
    let value = |f: usize, field: usize| field_value(&source, &map, f, field);
    let issue = |f: usize, kind: IssueKind, message: String| Issue {
        scope: Scope::Upload,
        feature: Some(source.features[f].index),
        line: source.features[f].line,
        code: Some(value(f, 0).to_owned()).filter(|c| !c.is_empty()),
        kind,
        severity: kind.severity(),
        message,
    };

    // Geometry and the fields the builder does not parse itself.
    let mut candidates = Vec::with_capacity(taken.len());
    let mut failed = vec![false; taken.len()];
    for (i, taken) in taken.into_iter().enumerate() {
        let result = match taken {
            (Some(p), _) => Err(p),
            (None, None) => Err((IssueKind::InvalidGeometry, "the feature has no geometry".into())),
            (None, Some(g)) => shape(layer, g),
        };
        match result {
            Ok(shape) => candidates.push(Candidate { feature: i, shape, level: None }),
            Err((kind, message)) => {
                report.add(issue(i, kind, message));
                failed[i] = true;
            }
        }
    }
    for c in &mut candidates {
        if value(c.feature, 0).is_empty() {
            report.add(issue(c.feature, IssueKind::MissingCode, "the feature has no code".into()));
            failed[c.feature] = true;
        } else if layer == LayerKind::Grids {
            let level = value(c.feature, 2);
            if !level.is_empty() {
                match level.parse::<i64>() {
                    Ok(n) => c.level = Some(n),
                    Err(_) => {
                        report.add(issue(c.feature, IssueKind::BadValue, format!("level {level:?} is not a whole number")));
                        failed[c.feature] = true;
                    }
                }
            }
        }
    }
    candidates.retain(|c| !failed[c.feature]);

    let grid_fields = |c: &Candidate| GridFields {
        code: value(c.feature, 0),
        name: value(c.feature, 1),
        level: c.level,
        parent: value(c.feature, 3),
        unit: value(c.feature, 4),
        chief_name: value(c.feature, 5),
        chief_phone: value(c.feature, 6),
        valid_from: value(c.feature, 7),
        valid_to: value(c.feature, 8),
    };
    let component_fields = |c: &Candidate, p: Coord<f64>| ComponentFields {
        code: value(c.feature, 0),
        class: value(c.feature, 1),
        name: value(c.feature, 2),
        dept: value(c.feature, 3),
        owner: value(c.feature, 4),
        maintainer: value(c.feature, 5),
        status: value(c.feature, 6),
        grid: value(c.feature, 7),
        created: value(c.feature, 8),
        updated: value(c.feature, 9),
        accuracy: value(c.feature, 10),
        lon: p.x,
        lat: p.y,
    };

    // Pass 1: the model's checks, feature by feature, on a scratch builder.
    let mut scratch = new_builder(current);
    if layer == LayerKind::Components {
        add_current_grids(&mut scratch, current).map_err(|e| IngestError::Fields(format!("the current grids: {e}")))?;
    }
    for c in &candidates {
        let result = match &c.shape {
            Shape::Area(mp) => scratch.add_grid(&grid_fields(c), mp.clone()).map(|_| ()),
            Shape::Point(p) => scratch.add_component(&component_fields(c, *p)),
        };
        if let Err(e) = result {
            report.add(issue(c.feature, kind_of(&e, layer), e.to_string()));
            failed[c.feature] = true;
        }
    }
    drop(scratch);
    candidates.retain(|c| !failed[c.feature]);
    if layer == LayerKind::Grids {
        let links: Vec<(usize, &str, &str)> = candidates.iter().map(|c| (c.feature, value(c.feature, 0), value(c.feature, 3))).collect();
        for (f, message) in hierarchy_problems(&links, current) {
            report.add(issue(f, IssueKind::Hierarchy, message));
            failed[f] = true;
        }
        candidates.retain(|c| !failed[c.feature]);
    } else {
        // Where each component lies among the grids it will be served with.
        for c in &candidates {
            let Shape::Point(p) = c.shape else { continue };
            match current_grids.locate(current, p) {
                Location::Inside { grid, on_boundary: false } => {
                    let located = current.grid(grid).code.to_string();
                    let recorded = value(c.feature, 7);
                    if !recorded.is_empty() && recorded != located {
                        report.add(issue(c.feature, IssueKind::GridMismatch, format!("recorded in grid {recorded}, but lies in grid {located}")));
                    }
                }
                Location::Inside { .. } => {}
                Location::Outside { nearest, distance_m } => report.add(issue(
                    c.feature,
                    IssueKind::OutsideGrids,
                    format!("outside every unit grid, {distance_m:.1} m from grid {}", current.grid(nearest).code),
                )),
                Location::Nowhere => report.add(issue(c.feature, IssueKind::OutsideGrids, "the city has no unit grids to place it in".into())),
            }
        }
    }

    report.accepted = candidates.len() as u64;
    report.dropped = report.features - report.accepted;
    report.sort_issues();
    let reject = |mut report: Report, why: String| {
        report.sort_issues();
        report.accepted_layer = false;
        report.rejection = Some(why);
        Ok(Prepared { report, city: None, units_changed: false })
    };
    if options.policy == Policy::Strict && report.errors > 0 {
        let why = format!("strict: {} errors; nothing imported", report.errors);
        return reject(report, why);
    }
    if candidates.is_empty() {
        return reject(report, "no valid feature: a layer is never replaced by an empty one".into());
    }
    // An upload replaces the whole layer: one that would lose more than half of it is more
    // likely a partial file than a new survey.
    let current_count = match layer {
        LayerKind::Grids => current.grids.len(),
        LayerKind::Components => current.components.len(),
    };
    if !options.allow_shrink && candidates.len() * 2 < current_count {
        let why = format!(
            "the new layer would have {} features where the current one has {current_count}: an upload replaces the whole layer, \
             so this looks like a partial file; send allow_shrink=true (--allow-shrink) if the layer really shrinks",
            candidates.len()
        );
        return reject(report, why);
    }

    // Pass 2: the new city from the accepted features only.
    let mut builder = new_builder(current);
    if layer == LayerKind::Components {
        add_current_grids(&mut builder, current).map_err(|e| IngestError::Fields(format!("the current grids: {e}")))?;
    }
    for mut c in candidates {
        let result = match std::mem::replace(&mut c.shape, Shape::Point(Coord { x: 0.0, y: 0.0 })) {
            Shape::Area(mp) => builder.add_grid(&grid_fields(&c), mp).map(|_| ()),
            Shape::Point(p) => builder.add_component(&component_fields(&c, p)),
        };
        if let Err(e) = result {
            return reject(report, format!("feature {}: {e}", source.features[c.feature].index));
        }
    }
    let city = match builder.finish() {
        Ok(city) => city,
        Err(e) => return reject(report, e.to_string()),
    };
    if layer == LayerKind::Grids {
        // 不交叉、不遗漏、不跨社区: overlaps, gaps and children outside their parent.
        let topology = super::topology::check_city(&city, &super::topology::TopologyOptions::default());
        let clean = topology.is_clean();
        let c = topology.counts.clone();
        report.topology = Some(topology);
        if !clean && options.policy == Policy::Strict {
            return reject(
                report,
                format!(
                    "strict: the grid topology is not clean ({} overlaps, {} gaps, {} outside their parent, {} other); nothing imported",
                    c.overlaps,
                    c.gaps,
                    c.outside_parent,
                    c.bad_codes + c.missing_levels + c.bad_geometry + c.check_failed
                ),
            );
        }
        let missing = check_current_components(&mut report, current, &city);
        if missing > 0 {
            return reject(
                report,
                format!("{missing} current components name unit grids the new layer does not have; import components that name the new grids first, or keep those codes"),
            );
        }
    }
    report.sort_issues();
    report.accepted_layer = true;
    let units_changed = city.units.len() > current.units.len();
    Ok(Prepared { report, city: Some(city), units_changed })
}

/// The value of our field `field` for feature `f` ("" when absent).
fn field_value<'s>(source: &'s SourceLayer, map: &FieldMap, f: usize, field: usize) -> &'s str {
    map.columns[field].and_then(|c| source.features[f].value(c)).unwrap_or("")
}

/// Grids whose parent link cannot hold, as (feature, message): no parent below the top level,
/// a parent at the top level, a parent not in the layer (or dropped — which drops its children
/// too), a parent not one level up, a code not extending the parent's. `grids` holds
/// (feature, code, parent code) of grids whose codes the builder accepted.
fn hierarchy_problems(grids: &[(usize, &str, &str)], current: &City) -> Vec<(usize, String)> {
    let h = &current.hierarchy;
    let parsed: Vec<Option<(GridCode, usize, Option<GridCode>)>> = grids
        .iter()
        .map(|&(_, code, parent)| {
            let (g, level) = GridCode::parse(code, h).ok()?;
            let p = if parent.is_empty() { None } else { Some(GridCode::parse(parent, h).ok()?.0) };
            Some((g, level, p))
        })
        .collect();
    let mut alive: HashMap<GridCode, usize> = parsed.iter().flatten().map(|(g, level, _)| (*g, *level)).collect();
    let mut problems = Vec::new();
    let mut dropped: HashSet<usize> = HashSet::new();
    loop {
        let mut changed = false;
        for (i, entry) in parsed.iter().enumerate() {
            let Some((g, level, p)) = entry else { continue };
            if dropped.contains(&i) {
                continue;
            }
            let problem = match (level, p) {
                (0, None) => None,
                (0, Some(p)) => Some(format!("grid {g} is at the top level but names parent {p}")),
                (_, None) => Some(format!("grid {g} ({}) has no parent", h.levels[*level].name)),
                (_, Some(p)) => match alive.get(p) {
                    None => Some(format!("grid {g} names parent {p}, which is not in the layer (or was dropped)")),
                    Some(pl) if pl + 1 != *level => Some(format!("grid {g} names parent {p}, which is not one level up")),
                    Some(_) if !g.extends(*p) => Some(format!("grid code {g} does not extend its parent's code {p}")),
                    Some(_) => None,
                },
            };
            if let Some(message) = problem {
                problems.push((grids[i].0, message));
                dropped.insert(i);
                alive.remove(g);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    problems
}

/// Checks the current components against the new grids: a recorded unit grid that is gone is
/// an error (returned as a count); one that disagrees with the location, or a location outside
/// every grid, a warning.
fn check_current_components(report: &mut Report, current: &City, new: &City) -> u64 {
    let unit_level = new.hierarchy.unit_level();
    let index = GridIndex::build(new);
    let mut missing = 0;
    for c in &current.components {
        let recorded = c.grid.map(|g| current.grid(g).code);
        let issue = |kind: IssueKind, message: String| Issue {
            scope: Scope::CurrentComponents,
            feature: None,
            line: None,
            code: Some(c.code.to_string()),
            kind,
            severity: kind.severity(),
            message,
        };
        if let Some(code) = recorded {
            if new.grid_by_code(code).is_none_or(|g| new.grid(g).level as usize != unit_level) {
                report.add(issue(IssueKind::UnknownGrid, format!("records unit grid {code}, which the new grid layer does not have")));
                missing += 1;
                continue;
            }
        }
        match index.locate(new, c.location) {
            Location::Inside { grid, on_boundary: false } => {
                let located = new.grid(grid).code;
                if recorded.is_some_and(|r| r != located) {
                    report.add(issue(IssueKind::GridMismatch, format!("recorded in grid {}, but lies in new grid {located}", recorded.expect("some"))));
                }
            }
            Location::Inside { .. } => {}
            Location::Outside { nearest, distance_m } => report.add(issue(
                IssueKind::OutsideGrids,
                format!("outside every new unit grid, {distance_m:.1} m from grid {}", new.grid(nearest).code),
            )),
            Location::Nowhere => {}
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::{DemoSpec, Preset, generate};
    use crate::ingest::{Feature, Format};
    use geo_types::polygon;

    /// The city's grids as a source layer (our field names), with `edit` applied to each
    /// feature's (code, parent).
    fn grids_layer(city: &City, edit: impl Fn(&mut String, &mut String)) -> SourceLayer {
        let mut layer = SourceLayer::new(Format::GeoJson);
        layer.columns = ["code", "name", "parent"].map(String::from).to_vec();
        for (i, g) in city.grids.iter().enumerate() {
            let (mut code, mut parent) = (g.code.to_string(), g.parent.map(|p| city.grid(p).code.to_string()).unwrap_or_default());
            edit(&mut code, &mut parent);
            layer.features.push(Feature {
                index: i as u64,
                line: None,
                geometry: Some(Geometry::MultiPolygon(g.geometry.clone())),
                problem: None,
                values: vec![Some(code), Some(g.name.clone()), Some(parent)],
            });
        }
        layer
    }

    #[test]
    fn self_intersecting_polygons_and_wrong_geometry_types_are_refused() {
        let bowtie = polygon![(x: 0., y: 0.), (x: 1., y: 1.), (x: 1., y: 0.), (x: 0., y: 1.), (x: 0., y: 0.)];
        let Err((kind, message)) = shape(LayerKind::Grids, Geometry::Polygon(bowtie)) else { panic!("a bowtie passed") };
        assert_eq!(kind, IssueKind::InvalidGeometry);
        assert!(message.contains("intersect"), "{message}");
        // Clockwise input comes out counter-clockwise, as the model keeps it.
        let cw = polygon![(x: 0., y: 0.), (x: 0., y: 1.), (x: 1., y: 1.), (x: 1., y: 0.), (x: 0., y: 0.)];
        let Ok(Shape::Area(mp)) = shape(LayerKind::Grids, Geometry::Polygon(cw)) else { panic!() };
        assert!(geo::Winding::is_ccw(mp.0[0].exterior()));
        let point = Geometry::Point(geo_types::Point::new(120.0, 31.0));
        assert!(matches!(shape(LayerKind::Grids, point.clone()), Err((IssueKind::WrongGeometryType, _))));
        assert!(matches!(shape(LayerKind::Components, point), Ok(Shape::Point(_))));
    }

    #[test]
    fn a_dropped_grid_drops_its_descendants_and_orphaned_components_reject_the_import() {
        let city = generate(&DemoSpec { preset: Preset::Tiny, components: None, seed: 1 }, &|_, _| {}).unwrap().city;
        let index = GridIndex::build(&city);
        let options = ImportOptions::new(LayerKind::Grids);
        // Unchanged: accepted, nothing to report.
        let p = prepare(grids_layer(&city, |_, _| {}), &options, &city, &index).unwrap();
        assert!(p.report.accepted_layer && p.report.errors == 0 && p.report.warnings == 0, "{}", p.report.to_text());
        assert_eq!(p.city.unwrap().grids.len(), city.grids.len());
        // One street names a parent that does not exist: it, its communities and their unit
        // grids are dropped, and the components in them cannot keep their grids.
        let street = city.grids.iter().find(|g| g.level == 1).unwrap().code.to_string();
        let below = city.grids.iter().filter(|g| g.code.to_string().starts_with(&street)).count();
        let p = prepare(grids_layer(&city, |code, parent| if *code == street { *parent = "329999".into() }), &options, &city, &index).unwrap();
        assert_eq!(p.report.counts.get(&IssueKind::Hierarchy), Some(&(below as u64)), "{}", p.report.to_text());
        assert_eq!(p.report.dropped, below as u64);
        assert!(!p.report.accepted_layer && p.city.is_none());
        assert!(p.report.counts[&IssueKind::UnknownGrid] > 0);
        assert!(p.report.rejection.as_deref().unwrap().contains("current components"));
    }
}
