//! From a streamed layer to the new city and its report: CRS and reprojection, geometry
//! checks, field mapping, the model's checks (through [`CityBuilder`]), the spatial checks
//! against the grids the layer will be served with, and the [`Policy`].
//!
//! The new city is the uploaded layer plus the other current layer: a components import keeps
//! the current grids (components are checked against them); a grids import keeps the current
//! components, which must still find their recorded unit grid in the new layer — a kept
//! component cannot be dropped, so one that does not rejects the import whatever the policy.
//!
//! A grid layer is held to more than its features' errors: by default (policy
//! [`Policy::DropInvalid`]) one that would drop a grid, or whose topology has findings past
//! [`FindingLimits`] — a part of a district in no unit grid (a hole: lookups there answer
//! `outside_coverage`), overlaps, gaps, parts outside the parent — is refused, each finding
//! named with its feature and location. [`ImportOptions::accept_findings`] imports it anyway
//! (dropping the grids with errors, as for components), and every finding stays a warning in
//! the report's counts. [`Policy::Strict`] refuses any error and any finding.
//!
//! The upload is also compared with the current version of its layer, in the same pass: each
//! feature that shares a code with a current one (components by code; grids by code, through
//! their centroids) adds its displacement to a [`DatumProbe`]. If most of them moved by the
//! offset WGS84 → GCJ-02 (or → BD-09) gives at their place, the layer was most likely
//! delivered in that Chinese web-map datum and read as WGS84: a layer-wide `datum_offset`
//! warning names `--crs gcj02` (`--crs bd09`).
//!
//! One pass, feature by feature as the reader hands them over ([`FeatureSink`]): the CRS and
//! the field mapping are fixed at the first feature. A component goes straight into the new
//! city ([`CityBuilder::add_component`] takes it whole or not at all, so a dropped one leaves
//! nothing behind); what is held is the new model and the report, never the file's features.
//! A grid layer (thousands of features) keeps its features until the end: its parent links and
//! topology need all of them. There, features are checked on a scratch builder and the city is
//! built again from the accepted ones only, so a dropped grid leaves no unit it alone named.

use std::collections::{HashMap, HashSet};

use geo::Validation;
use geo::orient::{Direction, Orient};
use geo_types::{Coord, Geometry, MultiPolygon};
use serde::Serialize;

use super::fields::{COMPONENT_FIELDS, FieldMap, GRID_FIELDS};
use super::report::{FindingLimits, Issue, IssueKind, Policy, Report, Scope};
use super::{Feature, FeatureSink, IngestError, SourceLayer, reproject};
use crate::crs::{Datum, METRES_PER_DEGREE};
use crate::index::{GridIndex, Location};
use crate::model::{City, CityBuilder, ComponentCode, ComponentFields, GridCode, GridFields, ModelError};

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

    /// The dataset this layer is stored as.
    pub fn dataset(self) -> crate::store::Dataset {
        match self {
            LayerKind::Grids => crate::store::Dataset::Grids,
            LayerKind::Components => crate::store::Dataset::Components,
            LayerKind::Zones => crate::store::Dataset::Zones,
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
    /// Grids, default policy: import a layer that drops grids with errors or whose topology
    /// findings pass `findings` (holes in a district, overlaps, gaps, parts outside the
    /// parent), which is otherwise refused. The findings are warnings in the report either
    /// way. No effect under [`Policy::Strict`] (which refuses them all) nor on components.
    pub accept_findings: bool,
    /// Grids: what a topology finding is (the sliver size) and how much of it the default
    /// policy tolerates.
    pub findings: FindingLimits,
}

impl ImportOptions {
    pub fn new(layer: LayerKind) -> ImportOptions {
        ImportOptions {
            layer,
            crs: None,
            force_crs: false,
            policy: Policy::DropInvalid,
            allow_shrink: false,
            default_crs: None,
            accept_findings: false,
            findings: FindingLimits::default(),
        }
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

/// The datums whose offset from WGS84 a [`DatumProbe`] looks for: the datum, the `--crs` value
/// that reads it, its name, who uses it, and the range of offsets (m) it has in China.
const PROBED_DATUMS: [(Datum, &str, &str, &str, f64, f64); 2] =
    [(Datum::Gcj02, "gcj02", "GCJ-02", "AMap, Tencent and most Chinese web maps", 100.0, 700.0), (Datum::Bd09, "bd09", "BD-09", "Baidu", 300.0, 2000.0)];
/// A displacement within this many metres of a datum's offset at the place matches it.
const DATUM_MATCH_M: f64 = 5.0;
/// Fewer shared codes than this say nothing about a datum.
const DATUM_MIN_SHARED: u64 = 3;

/// How the features an upload shares (by code) with the current layer moved, summarised as
/// they stream by (a few counters, not the features): how many moved as reading the datums of
/// [`PROBED_DATUMS`] as WGS84 would move them — within [`DATUM_MATCH_M`] of the offset at the
/// current position, that offset being in the datum's range.
#[derive(Debug, Default)]
struct DatumProbe {
    /// Features whose code the current layer has.
    shared: u64,
    /// Per probed datum: matches, the smallest and largest offset matched (m), a few codes.
    matches: [(u64, f64, f64, Vec<String>); 2],
}

impl DatumProbe {
    /// One shared feature: where it is now (`current`) and where the upload puts it (`new`),
    /// both lon/lat as read.
    fn add(&mut self, code: &str, current: Coord<f64>, new: Coord<f64>) {
        self.shared += 1;
        let k = current.y.to_radians().cos() * METRES_PER_DEGREE;
        let metres = |to: Coord<f64>| [(to.x - current.x) * k, (to.y - current.y) * METRES_PER_DEGREE];
        let moved = metres(new);
        for (slot, &(datum, _, _, _, lo, hi)) in self.matches.iter_mut().zip(&PROBED_DATUMS) {
            let (x, y) = datum.from_wgs84(current.x, current.y);
            let offset = metres(Coord { x, y });
            let size = offset[0].hypot(offset[1]);
            if (lo..=hi).contains(&size) && (moved[0] - offset[0]).hypot(moved[1] - offset[1]) <= DATUM_MATCH_M {
                if slot.0 == 0 {
                    (slot.1, slot.2) = (size, size);
                }
                slot.0 += 1;
                (slot.1, slot.2) = (slot.1.min(size), slot.2.max(size));
                if slot.3.len() < 3 {
                    slot.3.push(code.to_owned());
                }
            }
        }
    }

    /// The layer-wide warning, if more than half of (at least [`DATUM_MIN_SHARED`]) shared
    /// features moved as one of the datums would move them.
    fn finding(&self, layer: LayerKind) -> Option<Issue> {
        if self.shared < DATUM_MIN_SHARED {
            return None;
        }
        let (i, m) = self.matches.iter().enumerate().max_by_key(|(_, m)| m.0)?;
        if m.0 * 2 <= self.shared {
            return None;
        }
        let (_, crs, name, users, _, _) = PROBED_DATUMS[i];
        let how = if layer == LayerKind::Grids { "centroids compared; " } else { "" };
        let (lo, hi) = (m.1.round(), m.2.round());
        let distance = if lo == hi { format!("{lo} m") } else { format!("{lo}–{hi} m") };
        let message = format!(
            "{} of the {} {} this upload shares (by code) with the current layer moved {distance}, each within \
             {DATUM_MATCH_M} m of the shift {name} coordinates read as WGS84 get there ({how}e.g. {}): the file is \
             probably in {name} ({users}); import it with --crs {crs} (HTTP: crs={crs})",
            m.0,
            self.shared,
            layer.name(),
            m.3.join(", ")
        );
        Some(Issue {
            scope: Scope::Layer,
            feature: None,
            line: None,
            code: None,
            location: None,
            kind: IssueKind::DatumOffset,
            severity: IssueKind::DatumOffset.severity(),
            message,
        })
    }
}

/// A point on a feature's geometry (lon, lat) for the report: the point itself, or a point
/// inside the polygon (its box's centre if none can be found); `None` if not finite.
fn representative(g: &Geometry<f64>) -> Option<[f64; 2]> {
    use geo::{BoundingRect, CoordsIter, InteriorPoint};
    if !g.coords_iter().all(|c| c.x.is_finite() && c.y.is_finite()) {
        return None;
    }
    let p = match g {
        Geometry::Point(p) => Some(p.0),
        // geo's algorithms have panicked on degenerate input before (see topology): guarded.
        other => super::topology::guarded(|| other.interior_point().map(|p| p.0)).ok().flatten().or_else(|| other.bounding_rect().map(|r| r.center())),
    }?;
    (p.x.is_finite() && p.y.is_finite()).then_some([p.x, p.y])
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
    location: Option<[f64; 2]>,
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
    /// Where the feature being checked lies, for its issues.
    location: Option<[f64; 2]>,
    /// Components: the new city (current units, zones and grids, plus the accepted features).
    builder: Option<CityBuilder>,
    accepted: u64,
    /// Grids: the features that passed the per-feature checks.
    grids: Vec<GridCandidate>,
    /// Components: how the shared codes moved (grids: probed at the end, from `grids`).
    probe: DatumProbe,
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
        Ok(Checker {
            options,
            current,
            current_grids,
            fields,
            started: None,
            report: None,
            features: 0,
            location: None,
            builder,
            accepted: 0,
            grids: Vec::new(),
            probe: DatumProbe::default(),
            crs_required: None,
        })
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
        let mut report = Report::new(self.options.layer.name(), layer.format, resolved.crs.to_string(), resolved.source, self.options.policy);
        report.accept_findings = self.options.accept_findings;
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
            location: self.location,
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
        if let Some(was) = ComponentCode::parse(values[0]).ok().and_then(|c| self.current.component_by_code(c)) {
            self.probe.add(values[0], was.location, p);
        }
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
            Location::Nowhere => self.issue(feature, values[0], IssueKind::OutsideGrids, "the city has no unit grids to place it in".into()),
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
        self.location = taken.1.as_ref().and_then(representative);
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
                        let location = self.location;
                        self.grids.push(GridCandidate { index: feature.index, line: feature.line, location, shape: mp, level, values });
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
            report.extend(checker.probe.finding(LayerKind::Components));
            let builder = checker.builder.take().expect("a components import");
            let accepted = checker.accepted;
            finish(report, accepted, builder, options, current, &HashMap::new())
        }
        LayerKind::Grids | LayerKind::Zones => {
            let grids = std::mem::take(&mut checker.grids);
            report.extend(grids_datum_probe(&grids, current).finding(LayerKind::Grids));
            prepare_grids(report, grids, options, current)
        }
    }
}

/// How the grids of the upload that share a code with a current grid moved, centroid to
/// centroid.
fn grids_datum_probe(grids: &[GridCandidate], current: &City) -> DatumProbe {
    use geo::Centroid;
    let mut probe = DatumProbe::default();
    for g in grids {
        let Some(id) = GridCode::parse(&g.values[0], &current.hierarchy).ok().and_then(|(code, _)| current.grid_by_code(code)) else {
            continue;
        };
        if let (Some(was), Some(now)) = (current.grid(id).geometry.centroid(), g.shape.centroid()) {
            probe.add(&g.values[0], was.0, now.0);
        }
    }
    probe
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
        location: c.location,
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
    let features: GridFeatures = candidates.iter().map(|c| (c.values[0].clone(), (c.index, c.line, c.location))).collect();
    for c in candidates {
        if let Err(e) = builder.add_grid(&c.fields(), c.shape.clone()) {
            report.accepted = accepted;
            report.dropped = report.features - accepted;
            return Ok(reject(report, format!("feature {}: {e}", c.index)));
        }
    }
    finish(report, accepted, builder, options, current, &features)
}

/// The accepted features of a grid layer by code: (feature index, line, location).
type GridFeatures = HashMap<String, (u64, Option<u64>, Option<[f64; 2]>)>;

/// The report rejected with `why`.
fn reject(mut report: Report, why: String) -> Prepared {
    report.sort_issues();
    report.accepted_layer = false;
    report.rejection = Some(why);
    Prepared { report, city: None, units_changed: false }
}

/// The checks on the whole new layer — the policy, an empty or shrinking layer, the city's
/// own links, and for grids the topology, the grid policy and the current components — and
/// the outcome. `grid_features` names the feature of each grid code (grids imports).
fn finish(
    mut report: Report,
    accepted: u64,
    builder: CityBuilder,
    options: &ImportOptions,
    current: &City,
    grid_features: &GridFeatures,
) -> Result<Prepared, IngestError> {
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
        // 不交叉、不遗漏、不跨社区: overlaps, gaps, children outside their parent, coverage.
        let topology_options = super::topology::TopologyOptions { min_area_m2: options.findings.sliver_m2, ..Default::default() };
        let topology = super::topology::check_city(&city, &topology_options);
        add_topology_findings(&mut report, &topology, grid_features);
        let clean = topology.is_clean();
        let c = topology.counts.clone();
        report.topology = Some(topology);
        let mut refusals = Vec::new();
        if !clean && options.policy == Policy::Strict {
            refusals.push(format!(
                "strict: the grid topology is not clean ({} overlaps, {} gaps, {} outside their parent, {} uncovered pieces, {} other)",
                c.overlaps,
                c.gaps,
                c.outside_parent,
                c.uncovered,
                c.bad_codes + c.missing_levels + c.bad_geometry + c.check_failed
            ));
        }
        let missing = check_current_components(&mut report, current, &city);
        if missing > 0 {
            refusals.push(format!(
                "{missing} current components name unit grids the new layer does not have; import components that name the new grids first, or keep those codes"
            ));
        }
        if options.policy == Policy::DropInvalid && !options.accept_findings {
            refusals.extend(grid_findings_refusal(&report, &options.findings));
        }
        if !refusals.is_empty() {
            return Ok(reject(report, format!("{}; nothing imported", refusals.join("; "))));
        }
    }
    report.sort_issues();
    report.accepted_layer = true;
    let units_changed = city.units.len() > current.units.len();
    Ok(Prepared { report, city: Some(city), units_changed })
}

/// Every finding of a grid layer's topology report as a warning issue, on the feature of the
/// grid it is about (an overlap: the first of the two), with its location; findings past the
/// topology report's own cap are counted too.
fn add_topology_findings(report: &mut Report, t: &super::topology::TopologyReport, features: &GridFeatures) {
    let mut add = |code: &str, kind: IssueKind, location: Option<[f64; 2]>, message: String| {
        let feature = features.get(code);
        report.add(Issue {
            scope: Scope::Upload,
            feature: feature.map(|f| f.0),
            line: feature.and_then(|f| f.1),
            code: Some(code.to_owned()).filter(|c| !c.is_empty()),
            location: location.or_else(|| feature.and_then(|f| f.2)),
            kind,
            severity: kind.severity(),
            message,
        });
    };
    for o in &t.overlaps {
        let whose = if o.same_parent { "a sibling" } else { "a grid of another parent" };
        let pieces = if o.pieces > 1 { format!(" in {} pieces", o.pieces) } else { String::new() };
        let message = format!("overlaps grid {} ({whose}) by {:.1} m²{pieces}", o.b, o.area_m2);
        add(&o.a, IssueKind::Overlap, Some(o.location), message);
    }
    for g in &t.gaps {
        let message = format!("{:.1} m² of this {} lie in none of its children", g.area_m2, g.level_name);
        add(&g.parent, IssueKind::Gap, Some(g.location), message);
    }
    for o in &t.outside_parent {
        add(&o.code, IssueKind::OutsideParent, Some(o.location), format!("{:.1} m² lie outside its parent {}", o.area_m2, o.parent));
    }
    for c in &t.coverage {
        for u in &c.uncovered {
            let message = format!("{:.1} m² of this {} lie in none of its unit grids: a lookup there answers outside_coverage", u.area_m2, c.level_name);
            add(&c.code, IssueKind::Uncovered, Some(u.location), message);
        }
    }
    for b in &t.bad_codes {
        add(&b.code, IssueKind::Topology, None, b.message.clone());
    }
    for m in &t.missing_levels {
        add(m.code.as_deref().unwrap_or(""), IssueKind::Topology, None, m.message.clone());
    }
    for b in &t.bad_geometry {
        add(&b.code, IssueKind::Topology, None, format!("geometry not checked: {}", b.reason));
    }
    for f in &t.check_failed {
        let message = format!("the {} check of {} could not run: {}", f.check, f.codes.join(", "), f.reason);
        add(f.codes.first().map_or("", String::as_str), IssueKind::Topology, None, message);
    }
    let c = &t.counts;
    let listed = |n: usize| n as u64;
    let uncovered_listed: usize = t.coverage.iter().map(|c| c.uncovered.len()).sum();
    report.count_unlisted(IssueKind::Overlap, listed(c.overlaps - t.overlaps.len()));
    report.count_unlisted(IssueKind::Gap, listed(c.gaps - t.gaps.len()));
    report.count_unlisted(IssueKind::OutsideParent, listed(c.outside_parent - t.outside_parent.len()));
    report.count_unlisted(IssueKind::Uncovered, listed(c.uncovered - uncovered_listed));
    let others = c.bad_codes + c.missing_levels + c.bad_geometry + c.check_failed;
    let others_listed = t.bad_codes.len() + t.missing_levels.len() + t.bad_geometry.len() + t.check_failed.len();
    report.count_unlisted(IssueKind::Topology, listed(others - others_listed));
}

/// Why the default policy refuses a grid layer, if it does: a grid dropped for errors, or a
/// kind of topology finding whose total area passes `limits.tolerated_m2`, or any other
/// finding (an empty level, a check that could not run).
fn grid_findings_refusal(report: &Report, limits: &FindingLimits) -> Option<String> {
    let t = report.topology.as_ref()?;
    let c = &t.counts;
    let mut found = Vec::new();
    if report.dropped > 0 {
        let named: Vec<String> = report
            .issues
            .iter()
            .filter(|i| i.scope == Scope::Upload && i.severity == super::Severity::Error)
            .take(5)
            .map(|i| format!("feature {}{}", i.feature.unwrap_or(0), i.code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default()))
            .collect();
        let more = if report.dropped > named.len() as u64 { ", …" } else { "" };
        found.push(format!("{} grids dropped for errors ({}{more})", report.dropped, named.join(", ")));
    }
    let tolerated = |area: f64| area > limits.tolerated_m2;
    if c.uncovered > 0 && tolerated(c.uncovered_area_m2) {
        let districts: Vec<&str> = t.coverage.iter().filter(|d| !d.uncovered.is_empty()).map(|d| d.code.as_str()).collect();
        found.push(format!("{:.1} m² of district {} in no unit grid (pieces: {})", c.uncovered_area_m2, districts.join(", "), c.uncovered));
    }
    if c.overlaps > 0 && tolerated(c.overlap_area_m2) {
        found.push(format!("{} overlaps ({:.1} m²)", c.overlaps, c.overlap_area_m2));
    }
    if c.gaps > 0 && tolerated(c.gap_area_m2) {
        found.push(format!("{} gaps ({:.1} m²)", c.gaps, c.gap_area_m2));
    }
    if c.outside_parent > 0 && tolerated(c.outside_parent_area_m2) {
        found.push(format!("{} parts outside their parent ({:.1} m²)", c.outside_parent, c.outside_parent_area_m2));
    }
    let others = c.bad_codes + c.missing_levels + c.bad_geometry + c.check_failed;
    if others > 0 {
        found.push(format!("{others} other topology findings"));
    }
    (!found.is_empty()).then(|| {
        format!(
            "the grid layer would cut holes or has topology findings: {} (pieces under {} m² are slivers, {} m² of a kind tolerated); \
             fix the layer, or import it anyway with --accept-findings (HTTP: accept_findings=true)",
            found.join(", "),
            limits.sliver_m2,
            limits.tolerated_m2
        )
    })
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
            location: Some([c.location.x, c.location.y]),
            kind,
            severity: kind.severity(),
            message,
        };
        if let Some(code) = recorded
            && new.grid_by_code(code).is_none_or(|g| new.grid(g).level as usize != unit_level)
        {
            report.add(issue(IssueKind::UnknownGrid, format!("records unit grid {code}, which the new grid layer does not have")));
            missing += 1;
            continue;
        }
        match index.locate(new, c.location) {
            Location::Inside { grid, on_boundary: false } => {
                let located = new.grid(grid).code;
                if recorded.is_some_and(|r| r != located) {
                    report.add(issue(IssueKind::GridMismatch, format!("recorded in grid {}, but lies in new grid {located}", recorded.expect("some"))));
                }
            }
            Location::Inside { .. } => {}
            Location::Outside { nearest, distance_m } => {
                report.add(issue(IssueKind::OutsideGrids, format!("outside every new unit grid, {distance_m:.1} m from grid {}", new.grid(nearest).code)))
            }
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
        let p = prepare_layer(
            grids_layer(&city, |code, parent| {
                if *code == street {
                    *parent = "329999".into()
                }
            }),
            &options,
            &city,
            &index,
        )
        .unwrap();
        assert_eq!(p.report.counts.get(&IssueKind::Hierarchy), Some(&(below as u64)), "{}", p.report.to_text());
        assert_eq!(p.report.dropped, below as u64);
        assert!(!p.report.accepted_layer && p.city.is_none());
        assert!(p.report.counts[&IssueKind::UnknownGrid] > 0);
        assert!(p.report.rejection.as_deref().unwrap().contains("current components"));
    }

    /// The tiny city with no components (so a grids import orphans none), its index, and
    /// its grid layer as a source layer.
    fn no_components() -> (City, GridIndex, SourceLayer) {
        let city = generate(&DemoSpec { preset: Preset::Tiny, components: Some(0), seed: 1 }, &|_, _| {}).unwrap().city;
        let index = GridIndex::build(&city);
        let layer = grids_layer(&city, |_, _| {});
        (city, index, layer)
    }

    fn unit_grids(city: &City) -> Vec<usize> {
        (0..city.grids.len()).filter(|&i| city.grids[i].level as usize == city.hierarchy.unit_level()).collect()
    }

    fn covers(mp: &MultiPolygon<f64>, at: [f64; 2]) -> bool {
        geo::Intersects::intersects(mp, &geo_types::Point::new(at[0], at[1]))
    }

    /// Every finding of the topology report is a warning of the report.
    #[track_caller]
    fn findings_are_warnings(r: &Report) {
        let c = &r.topology.as_ref().unwrap().counts;
        let findings = c.overlaps + c.gaps + c.outside_parent + c.uncovered + c.bad_codes + c.missing_levels + c.bad_geometry + c.check_failed;
        assert_eq!(r.warnings, findings as u64, "{}", r.to_text());
    }

    #[test]
    fn a_grid_dropped_for_a_bow_tie_refuses_the_layer_unless_findings_are_accepted() {
        let (city, index, mut layer) = no_components();
        let victim = unit_grids(&city)[2];
        let original = city.grids[victim].geometry.clone();
        // A bow-tie over the grid's box: the outline crosses itself.
        let b = geo::BoundingRect::bounding_rect(&original).unwrap();
        let (lo, hi) = (b.min(), b.max());
        let bow_tie = geo_types::polygon![(x: lo.x, y: lo.y), (x: hi.x, y: hi.y), (x: hi.x, y: lo.y), (x: lo.x, y: hi.y), (x: lo.x, y: lo.y)];
        layer.features[victim].geometry = Some(Geometry::Polygon(bow_tie));
        let code = city.grids[victim].code.to_string();
        let mut options = ImportOptions::new(LayerKind::Grids);
        let p = prepare_layer(layer.clone(), &options, &city, &index).unwrap();
        let r = &p.report;
        assert!(!r.accepted_layer && p.city.is_none(), "{}", r.to_text());
        assert_eq!((r.errors, r.dropped), (1, 1), "{}", r.to_text());
        // The bow-tie is named: feature index, code, location (on the grid).
        let bad = r.issues.iter().find(|i| i.kind == IssueKind::InvalidGeometry).unwrap();
        assert_eq!((bad.feature, bad.code.as_deref()), (Some(victim as u64), Some(code.as_str())));
        assert!(covers(&original, bad.location.unwrap()), "{bad:?}");
        let why = r.rejection.as_deref().unwrap();
        assert!(why.contains(&format!("feature {victim} ({code})")) && why.contains("--accept-findings"), "{why}");
        assert!(why.contains("in no unit grid"), "{why}");
        // The hole it leaves: a gap of its community and uncovered area of the district, each
        // a warning on the feature of that grid, located in the hole.
        assert_eq!((r.counts.get(&IssueKind::Gap), r.counts.get(&IssueKind::Uncovered)), (Some(&1), Some(&1)), "{}", r.to_text());
        findings_are_warnings(r);
        let district = city.grids.iter().position(|g| g.level == 0).unwrap();
        let uncovered = r.issues.iter().find(|i| i.kind == IssueKind::Uncovered).unwrap();
        assert_eq!(uncovered.feature, Some(district as u64));
        assert!(covers(&original, uncovered.location.unwrap()), "{uncovered:?}");
        let community = city.grids[victim].parent.unwrap();
        let gap = r.issues.iter().find(|i| i.kind == IssueKind::Gap).unwrap();
        assert_eq!(gap.code, Some(city.grid(community).code.to_string()));
        assert!(r.to_text().contains("uncovered"), "{}", r.to_text());

        // Accepted on request: the grid is dropped, and the warnings count the hole.
        options.accept_findings = true;
        let p = prepare_layer(layer.clone(), &options, &city, &index).unwrap();
        let r = &p.report;
        assert!(r.accepted_layer && r.accept_findings, "{}", r.to_text());
        assert_eq!((r.errors, r.warnings), (1, 2), "{}", r.to_text());
        assert!(r.summary().contains("1 errors, 2 warnings"), "{}", r.summary());
        assert_eq!(p.city.unwrap().grids.len(), city.grids.len() - 1);
        // Strict refuses it whatever accept_findings says.
        options.policy = Policy::Strict;
        let p = prepare_layer(layer, &options, &city, &index).unwrap();
        assert!(!p.report.accepted_layer && p.report.rejection.as_deref().unwrap().starts_with("strict"), "{}", p.report.to_text());
    }

    #[test]
    fn a_grid_with_a_missing_parent_refuses_the_layer() {
        let (city, index, mut layer) = no_components();
        let victim = unit_grids(&city)[5];
        let parent = city.grid(city.grids[victim].parent.unwrap()).code.to_string();
        let missing = format!("{}999", &parent[..parent.len() - 3]);
        layer.features[victim].values[2] = Some(missing.clone());
        let p = prepare_layer(layer, &ImportOptions::new(LayerKind::Grids), &city, &index).unwrap();
        let r = &p.report;
        assert!(!r.accepted_layer, "{}", r.to_text());
        let issue = r.issues.iter().find(|i| i.kind == IssueKind::Hierarchy).unwrap();
        assert_eq!(issue.feature, Some(victim as u64));
        assert!(issue.message.contains(&missing) && covers(&city.grids[victim].geometry, issue.location.unwrap()), "{issue:?}");
        assert!(r.rejection.as_deref().unwrap().contains(&format!("feature {victim}")), "{}", r.to_text());
        assert_eq!(r.counts.get(&IssueKind::Uncovered), Some(&1));
    }

    #[test]
    fn overlaps_past_the_tolerance_refuse_the_layer_and_slivers_do_not() {
        use geo::Scale;
        let (city, index, layer) = no_components();
        let victim = unit_grids(&city)[0];
        let mut grown = layer.clone();
        grown.features[victim].geometry = Some(Geometry::MultiPolygon(city.grids[victim].geometry.scale(1.05)));
        let mut options = ImportOptions::new(LayerKind::Grids);
        let p = prepare_layer(grown.clone(), &options, &city, &index).unwrap();
        let r = &p.report;
        let c = r.topology.as_ref().unwrap().counts.clone();
        assert!(!r.accepted_layer && c.overlaps > 0 && c.overlap_area_m2 > 1.0, "{}", r.to_text());
        assert!(r.rejection.as_deref().unwrap().contains(&format!("{} overlaps", c.overlaps)), "{}", r.to_text());
        assert_eq!(r.errors, 0);
        findings_are_warnings(r);
        let overlap = r.issues.iter().find(|i| i.kind == IssueKind::Overlap).unwrap();
        assert!(overlap.feature.is_some() && overlap.location.is_some(), "{overlap:?}");
        // Within a tolerance larger than every kind's total, it is imported, warnings and all.
        options.findings.tolerated_m2 = c.overlap_area_m2.max(c.outside_parent_area_m2).max(c.gap_area_m2) + 1.0;
        let p = prepare_layer(grown, &options, &city, &index).unwrap();
        assert!(p.report.accepted_layer, "{}", p.report.to_text());
        findings_are_warnings(&p.report);
        assert!(p.report.warnings > 0);

        // A shared corner moved 1e-8° (~1 mm) in one grid: slivers (< 1 m²), not findings.
        let mut nudged = layer.clone();
        let mut mp = city.grids[victim].geometry.clone();
        mp.0[0].exterior_mut(|r| r.0[1].y += 1e-8);
        nudged.features[victim].geometry = Some(Geometry::MultiPolygon(mp));
        let p = prepare_layer(nudged, &ImportOptions::new(LayerKind::Grids), &city, &index).unwrap();
        let t = p.report.topology.as_ref().unwrap();
        assert!(p.report.accepted_layer && p.report.warnings == 0, "{}", p.report.to_text());
        assert!(t.counts.slivers_ignored > 0 && t.counts.sliver_area_m2 < 1.0, "{:?}", t.counts);
    }

    #[test]
    fn a_clean_grid_layer_is_accepted_with_its_coverage() {
        let (city, index, layer) = no_components();
        let p = prepare_layer(layer, &ImportOptions::new(LayerKind::Grids), &city, &index).unwrap();
        let r = &p.report;
        assert!(r.accepted_layer && r.errors == 0 && r.warnings == 0 && r.rejection.is_none(), "{}", r.to_text());
        let t = r.topology.as_ref().unwrap();
        assert!(t.is_clean());
        let [coverage] = &t.coverage[..] else { panic!("{t:?}") };
        assert_eq!(coverage.unit_grids, unit_grids(&city).len());
        assert!(coverage.uncovered.is_empty() && coverage.uncovered_area_m2 == 0.0);
        assert!((coverage.unit_grid_area_m2 / coverage.district_area_m2 - 1.0).abs() < 1e-9, "{coverage:?}");
    }

    #[test]
    fn a_datum_offset_needs_most_of_at_least_three_shared_features() {
        let places: Vec<Coord<f64>> = (0..10).map(|i| Coord { x: 120.60 + 0.003 * i as f64, y: 31.30 + 0.002 * i as f64 }).collect();
        let gcj = |c: Coord<f64>| {
            let (x, y) = Datum::Gcj02.from_wgs84(c.x, c.y);
            Coord { x, y }
        };
        let probe = |shifted: usize, n: usize| {
            let mut p = DatumProbe::default();
            for (i, &c) in places.iter().take(n).enumerate() {
                p.add(&i.to_string(), c, if i < shifted { gcj(c) } else { c });
            }
            p.finding(LayerKind::Components)
        };
        assert!(probe(6, 10).is_some_and(|i| i.scope == Scope::Layer && i.message.starts_with("6 of the 10 components")));
        assert!(probe(5, 10).is_none(), "half is not most");
        assert!(probe(2, 2).is_none(), "too few to tell");
        // 6 m off the offset is no match; outside China there is no offset to match.
        let mut p = DatumProbe::default();
        for (i, &c) in places.iter().enumerate() {
            p.add(&i.to_string(), c, Coord { x: gcj(c).x, y: gcj(c).y + 6.0 / METRES_PER_DEGREE });
            p.add("paris", Coord { x: 2.35, y: 48.85 }, Coord { x: 2.35, y: 48.85 });
        }
        assert!(p.finding(LayerKind::Components).is_none(), "{p:?}");
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
