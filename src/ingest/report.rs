//! The validation report of an upload: per feature (index, line, code) what is wrong, counts
//! per kind, what the policy made of it. Serialised as JSON for the API; [`Report::to_text`]
//! for the command line.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::Format;

/// At most this many issues are listed one by one; the counts always cover all.
pub const MAX_LISTED_ISSUES: usize = 200;

/// What is wrong with a feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueKind {
    /// Unclosed ring, too few points, NaN, self-intersection, no geometry.
    InvalidGeometry,
    /// A line where a point or polygon belongs, a polygon in the components layer, ….
    WrongGeometryType,
    /// The coordinates lie outside the CRS's area of use (swapped axes, wrong zone, wrong CRS).
    OutsideCrsArea,
    MissingCode,
    MalformedCode,
    /// The component code's class digits disagree with its class field.
    ClassMismatch,
    /// A class not in the city's class table (add local classes with a class file).
    UnknownClass,
    /// A date, status, level, accuracy … that cannot be read.
    BadValue,
    DuplicateCode,
    /// A grid's parent is missing, at the wrong level, or its code does not extend the parent's.
    Hierarchy,
    /// A component names a grid that is not a unit grid of the layer it will be served with.
    UnknownGrid,
    /// A component lies outside every unit grid (served; routed by the nearest grid).
    OutsideGrids,
    /// A component's recorded grid differs from the grid its location is in.
    GridMismatch,
    /// Grids import, topology: two grids of one level share area (the issue is on the first).
    Overlap,
    /// Grids import, topology: part of a grid lies in none of its children.
    Gap,
    /// Grids import, topology: part of a grid lies outside its parent.
    OutsideParent,
    /// Grids import, coverage: part of a district lies in none of its unit grids, so a lookup
    /// there answers `outside_coverage` (see [`super::topology::Coverage`]).
    Uncovered,
    /// Grids import, topology: another finding (an empty level, a check that could not run).
    Topology,
    /// The layer sits at the offset a Chinese web-map datum (GCJ-02, BD-09) would give it
    /// against the current layer: probably read in the wrong CRS (scope [`Scope::Layer`]).
    DatumOffset,
}

impl IssueKind {
    /// Errors drop the feature (or, under `strict`, reject the upload); warnings drop nothing.
    /// The topology and coverage findings of a grid layer are warnings, counted in
    /// [`Report::warnings`] whatever becomes of the layer; by default they refuse it (see
    /// [`super::validate::ImportOptions::accept_findings`]).
    pub fn severity(self) -> Severity {
        match self {
            IssueKind::OutsideGrids
            | IssueKind::GridMismatch
            | IssueKind::Overlap
            | IssueKind::Gap
            | IssueKind::OutsideParent
            | IssueKind::Uncovered
            | IssueKind::Topology
            | IssueKind::DatumOffset => Severity::Warning,
            _ => Severity::Error,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
}

/// Which features an issue is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// A feature of the uploaded file.
    Upload,
    /// A component already served, checked against the uploaded grids (a grids import keeps
    /// the current components).
    CurrentComponents,
    /// The uploaded layer as a whole (no one feature).
    Layer,
}

/// One problem of one feature.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Issue {
    pub scope: Scope,
    /// 0-based feature index in the file (`None` for current components).
    pub feature: Option<u64>,
    /// 1-based line in the file (NDJSON, CSV).
    pub line: Option<u64>,
    /// The feature's code, if it has one.
    pub code: Option<String>,
    /// Where (lon, lat, WGS84): the component's point, a point inside the grid or inside the
    /// faulty piece (overlap, gap, …); `None` when the feature has no usable geometry.
    pub location: Option<[f64; 2]>,
    pub kind: IssueKind,
    pub severity: Severity,
    pub message: String,
}

/// How errors are treated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Features with errors are dropped and the rest imported; the report says how many.
    /// A **grid layer** is refused instead if that would drop a grid, or if its topology has
    /// findings past [`FindingLimits`] (a hole in a district, overlaps, …), unless the import
    /// accepts them ([`super::validate::ImportOptions::accept_findings`]).
    #[default]
    DropInvalid,
    /// Any error rejects the whole upload, and so does any topology finding of a grid layer
    /// (whatever `accept_findings` and the tolerance say).
    Strict,
}

/// When a grid layer's topology findings refuse it under the default policy.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct FindingLimits {
    /// Overlaps, gaps, parts outside the parent and uncovered pieces smaller than this (m²)
    /// are rounding slivers, not findings. Default 1 m² (a unit grid is ~10,000 m²).
    pub sliver_m2: f64,
    /// The total area (m²) each kind of finding — overlaps, gaps, parts outside the parent,
    /// uncovered parts of districts — may reach with the layer still imported. Default 0:
    /// any finding refuses the layer.
    pub tolerated_m2: f64,
}

impl Default for FindingLimits {
    fn default() -> Self {
        FindingLimits { sliver_m2: 1.0, tolerated_m2: 0.0 }
    }
}

/// One of our fields and the file column it was read from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldSource {
    pub field: String,
    pub column: Option<String>,
}

/// What came of an upload.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// `grids` or `components`.
    pub layer: &'static str,
    pub format: Format,
    /// The CRS the coordinates were read in, and where that came from.
    pub crs: String,
    /// `file` (declared by the file), `given` (--crs / crs=), `forced` (given over the file's),
    /// `assumed` (no CRS anywhere, coordinates in degrees: WGS84).
    pub crs_source: &'static str,
    pub policy: Policy,
    /// Whether the import accepts a grid layer's findings (dropped grids, holes, overlaps, …)
    /// that the default policy refuses.
    pub accept_findings: bool,
    /// Which file column each of our fields was read from (`null`: none, left empty).
    pub fields: Vec<FieldSource>,
    /// Features in the file.
    pub features: u64,
    /// Features in the new layer.
    pub accepted: u64,
    /// Features left out because of errors.
    pub dropped: u64,
    pub errors: u64,
    pub warnings: u64,
    /// Issues per kind (all of them, also past the listing cap).
    pub counts: BTreeMap<IssueKind, u64>,
    /// The issues, the first [`MAX_LISTED_ISSUES`] (and every one about the whole layer).
    pub issues: Vec<Issue>,
    pub issues_truncated: bool,
    /// Grid topology QA of a grids import (overlaps between grids of a level, gaps inside a
    /// parent, children outside their parent, the coverage of each district by its unit
    /// grids, with areas in m² and locations). Each finding is also a warning in `issues`
    /// and the counts. Any finding rejects the upload under `strict`; by default findings
    /// past [`FindingLimits`] do, unless `accept_findings`. `None` for a components import.
    pub topology: Option<super::topology::TopologyReport>,
    /// Set when the current responsibility list would not validate against the new layer:
    /// routing then answers 503 `rules_unavailable` until a fitting list is saved. Rejects the
    /// upload under `strict`; by default it is imported with this warning.
    pub rules_problem: Option<String>,
    /// What the reading decided that is worth knowing, each starting with its code:
    /// `csv_axes_swapped: …` (CSV X/Y read against the CRS's convention, see `csv_points`).
    pub notes: Vec<String>,
    /// Whether the layer is (or, on a dry run, would be) imported.
    pub accepted_layer: bool,
    /// Why not, when not.
    pub rejection: Option<String>,
}

impl Report {
    pub(super) fn new(layer: &'static str, format: Format, crs: String, crs_source: &'static str, policy: Policy) -> Report {
        Report {
            layer,
            format,
            crs,
            crs_source,
            policy,
            accept_findings: false,
            fields: Vec::new(),
            features: 0,
            accepted: 0,
            dropped: 0,
            errors: 0,
            warnings: 0,
            counts: BTreeMap::new(),
            issues: Vec::new(),
            issues_truncated: false,
            topology: None,
            rules_problem: None,
            notes: Vec::new(),
            accepted_layer: false,
            rejection: None,
        }
    }

    /// Records an issue (counted always, listed up to the cap; one about the whole layer is
    /// listed whatever the cap).
    pub(super) fn add(&mut self, issue: Issue) {
        *self.counts.entry(issue.kind).or_default() += 1;
        match issue.severity {
            Severity::Error => self.errors += 1,
            Severity::Warning => self.warnings += 1,
        }
        if self.issues.len() < MAX_LISTED_ISSUES || issue.scope == Scope::Layer {
            self.issues.push(issue);
        } else {
            self.issues_truncated = true;
        }
    }

    /// Records an issue if there is one.
    pub(super) fn extend(&mut self, issue: Option<Issue>) {
        if let Some(issue) = issue {
            self.add(issue);
        }
    }

    /// Counts `n` more issues of `kind` that are not listed (findings past the topology
    /// report's own cap).
    pub(super) fn count_unlisted(&mut self, kind: IssueKind, n: u64) {
        if n == 0 {
            return;
        }
        *self.counts.entry(kind).or_default() += n;
        match kind.severity() {
            Severity::Error => self.errors += n,
            Severity::Warning => self.warnings += n,
        }
        self.issues_truncated = true;
    }

    /// Orders the listed issues: the layer's first, then the upload's by feature and kind,
    /// then the current components'.
    pub(super) fn sort_issues(&mut self) {
        self.issues.sort_by_key(|i| (i.scope != Scope::Layer, i.scope == Scope::CurrentComponents, i.feature, i.kind));
    }

    /// One line: what happened.
    pub fn summary(&self) -> String {
        let verdict = if self.accepted_layer { "accepted" } else { "REJECTED" };
        let mut s = format!(
            "{} {}: {verdict}; {} features read, {} kept, {} dropped; {} errors, {} warnings",
            self.layer, self.format, self.features, self.accepted, self.dropped, self.errors, self.warnings
        );
        if let Some(r) = &self.rejection {
            write!(s, " — {r}").expect("writing to a String");
        }
        if let Some(r) = &self.rules_problem {
            write!(s, "; WARNING: the current responsibility list does not fit the new layer: {r}").expect("writing to a String");
        }
        s
    }

    /// A readable rendering for the command line: summary, CRS, counts, issues.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let w = &mut s;
        let _ = writeln!(w, "{}", self.summary());
        let name = |v: serde_json::Result<serde_json::Value>| v.ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        let accepting = if self.accept_findings { ", grid findings accepted" } else { "" };
        let _ = writeln!(w, "CRS: {} ({}); policy: {}{accepting}", self.crs, self.crs_source, name(serde_json::to_value(self.policy)));
        let read: Vec<String> = self.fields.iter().filter_map(|f| f.column.as_ref().map(|c| format!("{} ← {c}", f.field))).collect();
        let _ = writeln!(w, "fields: {}", read.join(", "));
        for n in &self.notes {
            let _ = writeln!(w, "note: {n}");
        }
        if let Some(t) = &self.topology {
            let c = &t.counts;
            let _ = writeln!(
                w,
                "topology: {} overlaps, {} gaps, {} outside their parent, {} uncovered, {} code/level/geometry findings{}",
                c.overlaps,
                c.gaps,
                c.outside_parent,
                c.uncovered,
                c.bad_codes + c.missing_levels + c.bad_geometry + c.check_failed,
                if t.is_clean() { " — clean" } else { "" }
            );
            for o in &t.overlaps {
                let _ = writeln!(w, "  overlap {} × {}: {:.1} m² at {:.6}, {:.6}", o.a, o.b, o.area_m2, o.location[0], o.location[1]);
            }
            for g in &t.gaps {
                let _ = writeln!(w, "  gap in {}: {:.1} m² at {:.6}, {:.6}", g.parent, g.area_m2, g.location[0], g.location[1]);
            }
            for o in &t.outside_parent {
                let _ = writeln!(w, "  {} outside its parent {}: {:.1} m² at {:.6}, {:.6}", o.code, o.parent, o.area_m2, o.location[0], o.location[1]);
            }
            for c in &t.coverage {
                let _ = writeln!(
                    w,
                    "coverage of {} ({}): {:.1} m², its {} unit grids {:.1} m², uncovered {:.1} m²",
                    c.code, c.level_name, c.district_area_m2, c.unit_grids, c.unit_grid_area_m2, c.uncovered_area_m2
                );
                for u in &c.uncovered {
                    let _ = writeln!(w, "  uncovered: {:.1} m² at {:.6}, {:.6}", u.area_m2, u.location[0], u.location[1]);
                }
            }
        }
        for (kind, n) in &self.counts {
            let _ = writeln!(w, "  {:<20} {n:>8}  ({})", name(serde_json::to_value(kind)), name(serde_json::to_value(kind.severity())));
        }
        for i in &self.issues {
            let mut at = String::new();
            if i.scope == Scope::CurrentComponents {
                at.push_str("current component");
            } else if i.scope == Scope::Layer {
                at.push_str("the layer");
            } else if let Some(f) = i.feature {
                let _ = write!(at, "feature {f}");
            }
            if let Some(l) = i.line {
                let _ = write!(at, " (line {l})");
            }
            if let Some(c) = &i.code {
                let _ = write!(at, " {c}");
            }
            if let Some([x, y]) = i.location {
                let _ = write!(at, " at {x:.6}, {y:.6}");
            }
            let sev = if i.severity == Severity::Error { "error" } else { "warning" };
            let _ = writeln!(w, "{sev}: {at}: {}", i.message);
        }
        if self.issues_truncated {
            let _ = writeln!(w, "… {} more issues (counted above)", self.errors + self.warnings - self.issues.len() as u64);
        }
        s
    }
}
