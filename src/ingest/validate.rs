//! From a streamed layer to the new city and its report: CRS and reprojection, geometry
//! checks, field mapping, the model's checks (through [`CityBuilder`]), the spatial checks
//! against the grids the layer will be served with, and the [`Policy`].
//!
//! The new city is the uploaded layer plus the other current layer: a components import keeps
//! the current grids (components are checked against them); a grids import keeps the current
//! components, which must still find their recorded unit grid in the new layer — a kept
//! component cannot be dropped, so one that does not rejects the import whatever the policy.
//!
//! One pass, feature by feature as the reader hands them over ([`FeatureSink`]): the CRS and
//! the field mapping are fixed at the first feature. A component goes straight into the new
//! city ([`CityBuilder::add_component`] takes it whole or not at all, so a dropped one leaves
//! nothing behind); what is held is the new model and the report, never the file's features.
//! A grid layer (thousands of features) keeps its features until the end: its parent links and
//! topology need all of them. There, features are checked on a scratch builder and the city is
//! built again from the accepted ones only, so a dropped grid leaves no unit it alone named.

use std::collections::{HashMap, HashSet};

use geo::orient::{Direction, Orient};
use geo::Validation;
use geo_types::{Coord, Geometry, MultiPolygon};
use serde::Serialize;

use super::fields::{COMPONENT_FIELDS, FieldMap, GRID_FIELDS};
use super::report::{Issue, IssueKind, Policy, Report, Scope};
use super::{Feature, FeatureSink, IngestError, SourceLayer, reproject};
use crate::index::{GridIndex, Location};
use crate::model::{City, CityBuilder, ComponentFields, GridCode, GridFields, ModelError};

/// The layers an upload can replace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerKind {
    Grids,
    Components,
    /// Responsibility polygons ([`super::zones`]).
    Zones,
}

impl LayerKind {
    pub fn parse(name: &str) -> Result<LayerKind, IngestError> {
        match name {
            "grids" => Ok(LayerKind::Grids),
            "components" => Ok(LayerKind::Components),
            "zones" => Ok(LayerKind::Zones),
            other => Err(IngestError::UnknownLayer(other.to_owned())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LayerKind::Grids => "grids",
            LayerKind::Components => "components",
            LayerKind::Zones => "zones",
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
    /// The city's own CRS (its settings' `crs`): used for a file that declares none and is
    /// given none.
    pub default_crs: Option<String>,
}

impl ImportOptions {
    pub fn new(layer: LayerKind) -> ImportOptions {
        ImportOptions { layer, crs: None, force_crs: false, policy: Policy::DropInvalid, allow_shrink: false, default_crs: None }
    }

    /// The CRS to read a file in besides the one it declares: the given one, else — for a file
    /// that declares none — the city's default.
    pub fn effective_crs(&self, file_declares: bool) -> Option<&str> {
        self.crs.as_deref().or(if file_declares { None } else { self.default_crs.as_deref() })
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

/// A grid feature that passed the per-feature checks: a grid layer is small (thousands of
/// features), so its accepted features are kept for the checks that need the whole layer.
struct GridCandidate {
    index: u64,
    line: Option<u64>,
    shape: MultiPolygon<f64>,
    level: Option<i64>,
    /// Our grid fields in [`GRID_FIELDS`] order ("" when absent).
    values: Vec<String>,
}

impl GridCandidate {
    fn fields(&self) -> GridFields<'_> {
        let v = |i: usize| self.values[i].as_str();
        GridFields {
            code: v(0),
            name: v(1),
            level: self.level,
            parent: v(3),
            unit: v(4),
            chief_name: v(5),
            chief_phone: v(6),
            valid_from: v(7),
            valid_to: v(8),
        }
    }
}

/// What is fixed once the first feature arrives: the CRS and the field mapping.
struct Started {
    resolved: reproject::ResolvedCrs,
    reprojector: reproject::Reprojector,
    /// The CRS text the file had declared by then (a GeoJSON `crs` member may come later).
    declared: Option<String>,
    map: FieldMap,
    /// How many of the file's columns `map` has seen (GeoJSON properties appear as read).
    mapped: usize,
}

/// The validating [`FeatureSink`]: each feature is reprojected, checked and — for components —
/// added to the new city as it is read, so that nothing but the new model and the report grows
/// with the file.
struct Checker<'a> {
    options: &'a ImportOptions,
    current: &'a City,
    current_grids: &'a GridIndex,
    fields: &'static [(&'static str, &'static [&'static str])],
    started: Option<Started>,
    report: Option<Report>,
    features: u64,
    /// Components: the new city (current units, zones and grids, plus the accepted features).
    builder: Option<CityBuilder>,
    accepted: u64,
    /// Grids: the features that passed the per-feature checks.
    grids: Vec<GridCandidate>,
    /// A GeoJSON collection in metres with no CRS known yet: the rest is read (and ignored) to
    /// see whether a `crs` member follows the features, then this error or that one is returned.
    crs_required: Option<IngestError>,
}

impl<'a> Checker<'a> {
    fn new(options: &'a ImportOptions, current: &'a City, current_grids: &'a GridIndex) -> Result<Checker<'a>, IngestError> {
        let (fields, builder): (&'static [(&str, &[&str])], _) = match options.layer {
            LayerKind::Grids | LayerKind::Zones => (&GRID_FIELDS, None),
            LayerKind::Components => {
                let mut b = new_builder(current);
                add_current_grids(&mut b, current).map_err(|e| IngestError::Fields(format!("the current grids: {e}")))?;
                // A new survey is about as large as the current layer: room for it up front
                // rather than doubling (and briefly holding both) as it grows.
                b.reserve_components(current.components.len());
                (&COMPONENT_FIELDS, Some(b))
            }
        };
        Ok(Checker { options, current, current_grids, fields, started: None, report: None, features: 0, builder, accepted: 0, grids: Vec::new(), crs_required: None })
    }

    /// Fixes the CRS and the field mapping from what the file has said by its first feature.
    fn start(&mut self, layer: &SourceLayer) -> Result<(), IngestError> {
        let given = self.options.effective_crs(layer.declared_crs.is_some());
        let resolved = reproject::resolve(layer.declared_crs.as_deref(), given, self.options.force_crs)?;
        let reprojector = reproject::Reprojector::new(&resolved, layer)?;
        let map = FieldMap::new(layer, self.fields);
        // Columns are all known up front except GeoJSON's: a missing code column is fatal now.
        if map.columns[0].is_none() && layer.format != super::Format::GeoJson && layer.format != super::Format::GeoJsonLines {
            return Err(self.no_code_column(layer));
        }
        let report =
            Report::new(self.options.layer.name(), layer.format, resolved.crs.to_string(), resolved.source, self.options.policy);
        self.report = Some(report);
        self.started = Some(Started { resolved, reprojector, declared: layer.declared_crs.clone(), map, mapped: layer.columns.len() });
        Ok(())
    }

    fn no_code_column(&self, layer: &SourceLayer) -> IngestError {
        IngestError::Fields(format!("no code column among {}: name it one of {}", layer.columns.join(", "), self.fields[0].1.join(", ")))
    }

    fn issue(&mut self, feature: &Feature, code: &str, kind: IssueKind, message: String) {
        self.report.as_mut().expect("started").add(Issue {
            scope: Scope::Upload,
            feature: Some(feature.index),
            line: feature.line,
            code: Some(code.to_owned()).filter(|c| !c.is_empty()),
            kind,
            severity: kind.severity(),
            message,
        });
    }

    /// Components: the model's checks by adding it to the new city, then where it lies among
    /// the grids it will be served with.
    fn component(&mut self, feature: &Feature, values: &[&str], p: Coord<f64>) {
        let fields = ComponentFields {
            code: values[0],
            class: values[1],
            name: values[2],
            dept: values[3],
            owner: values[4],
            maintainer: values[5],
            status: values[6],
            grid: values[7],
            created: values[8],
            updated: values[9],
            accuracy: values[10],
            lon: p.x,
            lat: p.y,
        };
        if let Err(e) = self.builder.as_mut().expect("a components import").add_component(&fields) {
            self.issue(feature, values[0], kind_of(&e, LayerKind::Components), e.to_string());
            return;
        }
        self.accepted += 1;
        let (current, recorded) = (self.current, values[7]);
        match self.current_grids.locate(current, p) {
            Location::Inside { grid, on_boundary: false } => {
                let located = current.grid(grid).code.to_string();
                if !recorded.is_empty() && recorded != located {
                    self.issue(feature, values[0], IssueKind::GridMismatch, format!("recorded in grid {recorded}, but lies in grid {located}"));
                }
            }
            Location::Inside { .. } => {}
            Location::Outside { nearest, distance_m } => self.issue(
                feature,
                values[0],
                IssueKind::OutsideGrids,
                format!("outside every unit grid, {distance_m:.1} m from grid {}", current.grid(nearest).code),
            ),
            // A city without grids yet: placed when its grid layer comes (a note in the report).
            Location::Nowhere if current.grids.is_empty() => {}
            Location::Nowhere => {
                self.issue(feature, values[0], IssueKind::OutsideGrids, "the city has no unit grids to place it in".into())
            }
        }
    }
}

impl FeatureSink for Checker<'_> {
    fn feature(&mut self, layer: &SourceLayer, mut feature: Feature) -> Result<(), IngestError> {
        if self.crs_required.is_some() {
            return Ok(());
        }
        if self.started.is_none() {
            self.start(layer)?;
        }
        self.features += 1;
        let started = self.started.as_mut().expect("started");
        if layer.columns.len() > started.mapped {
            // GeoJSON properties first seen here: the mapping is redone only if one of them is
            // a name of ours (else a file of ever-new names would cost columns² here).
            if layer.columns[started.mapped..].iter().any(|c| FieldMap::names_a_field(c, self.fields)) {
                started.map = FieldMap::new(layer, self.fields);
            }
            started.mapped = layer.columns.len();
        }
        match started.reprojector.reproject(&mut feature) {
            Err(e @ IngestError::CrsRequired { .. }) if layer.format == super::Format::GeoJson => {
                self.crs_required = Some(e);
                return Ok(());
            }
            other => other?,
        }
        let taken = (feature.problem.take(), feature.geometry.take());
        // Our fields in GRID_FIELDS / COMPONENT_FIELDS order ("" when absent).
        let mut values = [""; COMPONENT_FIELDS.len()];
        for (value, column) in values.iter_mut().zip(&started.map.columns) {
            *value = column.and_then(|c| feature.value(c)).unwrap_or("");
        }
        let layer_kind = self.options.layer;
        let result = match taken {
            (Some(p), _) => Err(p),
            (None, None) => Err((IssueKind::InvalidGeometry, "the feature has no geometry".into())),
            (None, Some(g)) => shape(layer_kind, g),
        };
        let shape = match result {
            Ok(_) if values[0].is_empty() => Err((IssueKind::MissingCode, "the feature has no code".to_owned())),
            other => other,
        };
        match shape {
            Err((kind, message)) => self.issue(&feature, values[0], kind, message),
            Ok(Shape::Point(p)) => self.component(&feature, &values, p),
            Ok(Shape::Area(mp)) => {
                let level = values[2];
                let level = if level.is_empty() { Ok(None) } else { level.parse::<i64>().map(Some) };
                match level {
                    Err(_) => {
                        let message = format!("level {:?} is not a whole number", values[2]);
                        self.issue(&feature, values[0], IssueKind::BadValue, message);
                    }
                    Ok(level) => {
                        let values = values[..GRID_FIELDS.len()].iter().map(|v| (*v).to_owned()).collect();
                        self.grids.push(GridCandidate { index: feature.index, line: feature.line, shape: mp, level, values });
                    }
                }
            }
        }
        Ok(())
    }
}

/// Validates the layer that `read` streams (see [`super::stream_layer`]) as the new
/// `options.layer` of the city `current` (whose unit grids `current_grids` indexes), by the
/// rules in the module doc. `Err` only for whole-file problems (unreadable, CRS, no code
/// column); everything per feature is in the report.
pub fn prepare(
    read: impl FnOnce(&mut dyn FeatureSink) -> Result<SourceLayer, IngestError>,
    options: &ImportOptions,
    current: &City,
    current_grids: &GridIndex,
) -> Result<Prepared, IngestError> {
    if options.layer == LayerKind::Zones {
        return super::zones::prepare_zones(read, options, current);
    }
    let mut checker = Checker::new(options, current, current_grids)?;
    let header = read(&mut checker)?;
    if checker.started.is_none() {
        checker.start(&header)?; // no features: the CRS and the fields are still checked
    }
    let started = checker.started.take().expect("started");
    if let Some(e) = checker.crs_required.take() {
        return Err(match header.declared_crs {
            Some(late) => IngestError::CrsAfterFeatures { declared: late, read_as: started.resolved.crs.to_string() },
            None => e,
        });
    }
    if header.declared_crs != started.declared {
        // A GeoJSON `crs` member after the features: they were read in the CRS known then.
        let late = reproject::resolve(header.declared_crs.as_deref(), options.crs.as_deref(), options.force_crs)?;
        if !reproject::same_crs(&late.crs, &started.resolved.crs) {
            return Err(IngestError::CrsAfterFeatures { declared: late.crs.to_string(), read_as: started.resolved.crs.to_string() });
        }
    }
    let map = if header.columns[started.mapped.min(header.columns.len())..].iter().any(|c| FieldMap::names_a_field(c, checker.fields)) {
        FieldMap::new(&header, checker.fields)
    } else {
        started.map
    };
    if map.columns[0].is_none() {
        return Err(checker.no_code_column(&header));
    }
    let mut report = checker.report.take().expect("started");
    if report.crs_source == "assumed" && header.declared_crs.is_some() {
        report.crs_source = "file"; // a late `crs` member that agrees with the degrees read
    }
    report.features = checker.features;
    report.notes.extend(started.reprojector.axis_note().map(str::to_owned));
    report.fields = map.describe(&header, checker.fields);
    match options.layer {
        LayerKind::Components => {
            let builder = checker.builder.take().expect("a components import");
            let accepted = checker.accepted;
            finish(report, accepted, builder, options, current)
        }
        LayerKind::Grids | LayerKind::Zones => {
            let grids = std::mem::take(&mut checker.grids);
            prepare_grids(report, grids, options, current)
        }
    }
}

/// [`prepare`] for a layer already read into memory.
pub fn prepare_layer(mut source: SourceLayer, options: &ImportOptions, current: &City, current_grids: &GridIndex) -> Result<Prepared, IngestError> {
    let features = std::mem::take(&mut source.features);
    prepare(
        |sink| {
            for f in features {
                sink.feature(&source, f)?;
            }
            Ok(source.clone())
        },
        options,
        current,
        current_grids,
    )
}

/// The checks of a grid layer that need all of it — the model's checks on a scratch builder
/// (so a dropped grid leaves nothing behind), the parent links, then the new city from the
/// accepted grids only — and [`finish`].
fn prepare_grids(mut report: Report, mut candidates: Vec<GridCandidate>, options: &ImportOptions, current: &City) -> Result<Prepared, IngestError> {
    let issue = |c: &GridCandidate, kind: IssueKind, message: String| Issue {
        scope: Scope::Upload,
        feature: Some(c.index),
        line: c.line,
        code: Some(c.values[0].clone()).filter(|c| !c.is_empty()),
        kind,
        severity: kind.severity(),
        message,
    };
    let mut failed = vec![false; candidates.len()];
    let mut scratch = new_builder(current);
    for (i, c) in candidates.iter().enumerate() {
        if let Err(e) = scratch.add_grid(&c.fields(), c.shape.clone()) {
            report.add(issue(c, kind_of(&e, LayerKind::Grids), e.to_string()));
            failed[i] = true;
        }
    }
    drop(scratch);
    let mut keep = failed.iter().map(|f| !f);
    candidates.retain(|_| keep.next().expect("one per candidate"));
    let links: Vec<(usize, &str, &str)> = candidates.iter().enumerate().map(|(i, c)| (i, c.values[0].as_str(), c.values[3].as_str())).collect();
    let mut failed = vec![false; candidates.len()];
    for (i, message) in hierarchy_problems(&links, current) {
        report.add(issue(&candidates[i], IssueKind::Hierarchy, message));
        failed[i] = true;
    }
    let mut keep = failed.iter().map(|f| !f);
    candidates.retain(|_| keep.next().expect("one per candidate"));
    let mut builder = new_builder(current);
    let accepted = candidates.len() as u64;
    for c in candidates {
        if let Err(e) = builder.add_grid(&c.fields(), c.shape.clone()) {
            report.accepted = accepted;
            report.dropped = report.features - accepted;
            return Ok(reject(report, format!("feature {}: {e}", c.index)));
        }
    }
    finish(report, accepted, builder, options, current)
}

/// The report rejected with `why`.
fn reject(mut report: Report, why: String) -> Prepared {
    report.sort_issues();
    report.accepted_layer = false;
    report.rejection = Some(why);
    Prepared { report, city: None, units_changed: false }
}

/// The checks on the whole new layer — the policy, an empty or shrinking layer, the city's
/// own links, and for grids the topology and the current components — and the outcome.
fn finish(mut report: Report, accepted: u64, builder: CityBuilder, options: &ImportOptions, current: &City) -> Result<Prepared, IngestError> {
    let layer = options.layer;
    if layer == LayerKind::Components && current.grids.is_empty() {
        report.notes.push(
            "no_grids_yet: the city has no grid layer yet, so the components are not placed in grids; each one's recorded grid \
             (所在网格) is kept and checked when the grid layer is imported (a grid layer that lacks one is refused)"
                .into(),
        );
    }
    report.accepted = accepted;
    report.dropped = report.features - accepted;
    report.sort_issues();
    if options.policy == Policy::Strict && report.errors > 0 {
        let why = format!("strict: {} errors; nothing imported", report.errors);
        return Ok(reject(report, why));
    }
    if accepted == 0 {
        return Ok(reject(report, "no valid feature: a layer is never replaced by an empty one".into()));
    }
    // An upload replaces the whole layer: one that would lose more than half of it is more
    // likely a partial file than a new survey.
    let current_count = match layer {
        LayerKind::Grids => current.grids.len(),
        LayerKind::Components => current.components.len(),
        LayerKind::Zones => current.zones.len(),
    } as u64;
    if !options.allow_shrink && accepted * 2 < current_count {
        let why = format!(
            "the new layer would have {accepted} features where the current one has {current_count}: an upload replaces the whole layer, \
             so this looks like a partial file; send allow_shrink=true (--allow-shrink) if the layer really shrinks"
        );
        return Ok(reject(report, why));
    }
    let city = match builder.finish() {
        Ok(city) => city,
        Err(e) => return Ok(reject(report, e.to_string())),
    };
    if layer == LayerKind::Grids {
        // 不交叉、不遗漏、不跨社区: overlaps, gaps and children outside their parent.
        let topology = super::topology::check_city(&city, &super::topology::TopologyOptions::default());
        let clean = topology.is_clean();
        let c = topology.counts.clone();
        report.topology = Some(topology);
        if !clean && options.policy == Policy::Strict {
            let why = format!(
                "strict: the grid topology is not clean ({} overlaps, {} gaps, {} outside their parent, {} other); nothing imported",
                c.overlaps,
                c.gaps,
                c.outside_parent,
                c.bad_codes + c.missing_levels + c.bad_geometry + c.check_failed
            );
            return Ok(reject(report, why));
        }
        let missing = check_current_components(&mut report, current, &city);
        if missing > 0 {
            let why = format!(
                "{missing} current components name unit grids the new layer does not have; import components that name the new grids first, or keep those codes"
            );
            return Ok(reject(report, why));
        }
    }
    report.sort_issues();
    report.accepted_layer = true;
    let units_changed = city.units.len() > current.units.len();
    Ok(Prepared { report, city: Some(city), units_changed })
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
    for (i, c) in current.components.iter().enumerate() {
        let recorded = current.recorded_grid_code(i);
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
        let p = prepare_layer(grids_layer(&city, |_, _| {}), &options, &city, &index).unwrap();
        assert!(p.report.accepted_layer && p.report.errors == 0 && p.report.warnings == 0, "{}", p.report.to_text());
        assert_eq!(p.city.unwrap().grids.len(), city.grids.len());
        // One street names a parent that does not exist: it, its communities and their unit
        // grids are dropped, and the components in them cannot keep their grids.
        let street = city.grids.iter().find(|g| g.level == 1).unwrap().code.to_string();
        let below = city.grids.iter().filter(|g| g.code.to_string().starts_with(&street)).count();
        let p = prepare_layer(grids_layer(&city, |code, parent| if *code == street { *parent = "329999".into() }), &options, &city, &index).unwrap();
        assert_eq!(p.report.counts.get(&IssueKind::Hierarchy), Some(&(below as u64)), "{}", p.report.to_text());
        assert_eq!(p.report.dropped, below as u64);
        assert!(!p.report.accepted_layer && p.city.is_none());
        assert!(p.report.counts[&IssueKind::UnknownGrid] > 0);
        assert!(p.report.rejection.as_deref().unwrap().contains("current components"));
    }

    /// The city's first `n` components as a GeoJSON FeatureCollection, `crs` (a member, JSON)
    /// after the features; `edit` may change each feature's properties.
    fn components_geojson(city: &City, n: usize, crs: Option<&str>, edit: impl Fn(usize, &mut serde_json::Value)) -> String {
        let features: Vec<serde_json::Value> = city
            .components
            .iter()
            .take(n)
            .enumerate()
            .map(|(i, c)| {
                let mut props = serde_json::json!({"code": c.code.to_string(), "owner": city.units.get(c.owner.unwrap()).name});
                edit(i, &mut props);
                serde_json::json!({"type": "Feature", "properties": props,
                    "geometry": {"type": "Point", "coordinates": [c.location.x, c.location.y]}})
            })
            .collect();
        let crs = crs.map(|c| format!(r#", "crs": {c}"#)).unwrap_or_default();
        format!(r#"{{"type": "FeatureCollection", "features": {}{crs}}}"#, serde_json::Value::Array(features))
    }

    fn prepare_text(text: &str, options: &ImportOptions, city: &City, index: &GridIndex) -> Result<Prepared, IngestError> {
        prepare(|sink| crate::ingest::geojson::read_collection(text.as_bytes(), sink), options, city, index)
    }

    #[test]
    fn components_are_checked_as_they_stream_and_refused_ones_leave_no_unit_behind() {
        let city = generate(&DemoSpec { preset: Preset::Tiny, components: Some(300), seed: 1 }, &|_, _| {}).unwrap().city;
        let index = GridIndex::build(&city);
        let mut options = ImportOptions::new(LayerKind::Components);
        options.allow_shrink = true;
        // Feature 0 has no properties at all (the code column is first seen on feature 1);
        // 5 repeats 4's code and 7 has a bad date, each with an owner no one else names.
        let text = components_geojson(&city, 10, None, |i, props| match i {
            0 => *props = serde_json::json!({}),
            5 => {
                props["code"] = city.components[4].code.to_string().into();
                props["owner"] = "只在重复要素里的单位".into();
            }
            7 => {
                props["created"] = "2024-13-45".into();
                props["owner"] = "只在坏日期要素里的单位".into();
            }
            _ => {}
        });
        let p = prepare_text(&text, &options, &city, &index).unwrap();
        let r = &p.report;
        assert_eq!((r.features, r.accepted, r.dropped), (10, 7, 3), "{}", r.to_text());
        assert_eq!(r.counts[&IssueKind::MissingCode], 1);
        assert_eq!(r.counts[&IssueKind::DuplicateCode], 1);
        assert_eq!(r.counts[&IssueKind::BadValue], 1);
        assert_eq!(r.issues.iter().map(|i| i.feature.unwrap()).collect::<Vec<_>>(), [0, 5, 7], "in file order");
        let new = p.city.unwrap();
        assert_eq!(new.components.len(), 7);
        assert!(!new.units.iter().any(|u| u.1.name.starts_with("只在")), "a refused component left its unit behind");
        assert!(!p.units_changed);
    }

    #[test]
    fn a_crs_member_after_the_features_must_agree_with_how_they_were_read() {
        let city = generate(&DemoSpec { preset: Preset::Tiny, components: Some(300), seed: 1 }, &|_, _| {}).unwrap().city;
        let index = GridIndex::build(&city);
        let mut options = ImportOptions::new(LayerKind::Components);
        options.allow_shrink = true;
        let crs = |code: u32| format!(r#"{{"type": "name", "properties": {{"name": "urn:ogc:def:crs:EPSG::{code}"}}}}"#);
        // Degrees, then "EPSG:4490" (CGCS2000 lon/lat ≡ WGS84 as assumed): fine.
        let p = prepare_text(&components_geojson(&city, 20, Some(&crs(4490)), |_, _| {}), &options, &city, &index).unwrap();
        assert!(p.report.accepted_layer && p.report.accepted == 20, "{}", p.report.to_text());
        // Degrees read as WGS84, then a Gauss-Krüger CRS: refused, naming both.
        let e = prepare_text(&components_geojson(&city, 20, Some(&crs(4549)), |_, _| {}), &options, &city, &index).err().expect("refused");
        assert!(matches!(&e, IngestError::CrsAfterFeatures { declared, .. } if declared.contains("4549")), "{e}");
        // Metres, then "EPSG:4549": refused as a late member, not as a file without a CRS.
        let mut metres = components_geojson(&city, 20, Some(&crs(4549)), |_, _| {});
        for c in city.components.iter().take(20) {
            metres = metres.replace(&format!("[{},{}]", c.location.x, c.location.y), "[557140.955,3461065.011]");
        }
        let e = prepare_text(&metres, &options, &city, &index).err().expect("refused");
        assert!(matches!(&e, IngestError::CrsAfterFeatures { declared, .. } if declared.contains("4549")), "{e}");
        // A late member that agrees with the degrees is the file's CRS.
        let p = prepare_text(&components_geojson(&city, 20, Some(&crs(4490)), |_, _| {}), &options, &city, &index).unwrap();
        assert_eq!(p.report.crs_source, "file");
        // A CRS given up front is checked against the late member like against an early one.
        options.crs = Some("EPSG:4326".into());
        let p = prepare_text(&components_geojson(&city, 20, Some(&crs(4490)), |_, _| {}), &options, &city, &index).unwrap();
        assert!(p.report.accepted_layer && p.report.crs_source == "given", "{}", p.report.to_text());
        let e = prepare_text(&components_geojson(&city, 20, Some(&crs(4549)), |_, _| {}), &options, &city, &index).err().expect("refused");
        assert!(matches!(e, IngestError::CrsConflict { .. }), "{e}");
    }

    #[test]
    fn a_coordinate_in_metres_without_a_crs_stops_the_file_wherever_it_is() {
        let city = generate(&DemoSpec { preset: Preset::Tiny, components: Some(300), seed: 1 }, &|_, _| {}).unwrap().city;
        let index = GridIndex::build(&city);
        let text = components_geojson(&city, 20, None, |_, _| {});
        let ok = prepare_text(&text, &ImportOptions::new(LayerKind::Components), &city, &index);
        assert!(ok.is_ok());
        // Feature 12 in metres: the file is refused as a whole, asking for its CRS.
        let c = &city.components[12];
        let text = text.replace(&format!("[{},{}]", c.location.x, c.location.y), "[557140.955,3461065.011]");
        let e = prepare_text(&text, &ImportOptions::new(LayerKind::Components), &city, &index).err().expect("refused");
        assert!(matches!(e, IngestError::CrsRequired { x, .. } if x == 557140.955), "{e}");
    }
}
