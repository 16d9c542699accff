//! Topology QA of a grid layer for the import validation report (issue 5): the field's division
//! rules 不交叉、不遗漏、不跨社区 (no overlap, no gap, never crossing the parent) and the code
//! rules (a code extends its parent's and has its level's digit count).
//!
//! # What is checked on
//! [`check_grids`] works on [`GridRecord`]s, the grid rows an importer has *before*
//! [`CityBuilder`](crate::model::CityBuilder) accepts them. The builder refuses, at the first
//! error, a code of the wrong length, a declared level that disagrees with the code, a
//! duplicate code, a missing or unknown parent, a parent not one level up and a code not
//! extending its parent's, so a [`City`] can never hold those states and a report made from a
//! `City` would always say "none". On the raw records all of them are listed at once, with the
//! geometric findings. [`check_city`] is the convenience for a city that is already built
//! (its code and link lists are then empty by construction, except [`MissingLevelKind::EmptyLevel`]).
//!
//! # The rules, as decided here
//! - **Overlaps** are looked for between *any* two grids of the same level, not only siblings:
//!   two grids of different parents sharing area break 不交叉 as much as siblings do (and
//!   one of them then usually also lies outside its parent). [`Overlap::same_parent`] tells
//!   the two cases apart. Candidate pairs come from an R-tree of bounding boxes. Grids that
//!   only touch (a shared edge or corner) intersect in zero area; an intersection below
//!   [`TopologyOptions::min_area_m2`] is a sliver from rounding and is not reported. Grids of
//!   different levels are not compared (a child lies inside its parent by design).
//! - **Gaps**: for every grid with children, the grid minus the union of its children; every
//!   remaining piece of at least `min_area_m2` is a gap. A grid *without* children above the
//!   unit level is entirely a gap, unless the whole level below is empty (then only
//!   [`MissingLevelKind::EmptyLevel`] is reported, not one gap per grid). Gaps at the top level
//!   are **not defined**: the layer has no outline of the city above its districts, so space
//!   between two top-level grids is not checked.
//! - **Outside the parent**: the child minus its parent, each piece of at least `min_area_m2`.
//! - **Coverage** (不遗漏 as `/v1/locate` sees it): for every top-level grid (a district), the
//!   district minus the union of the unit grids linked below it (each link one level up);
//!   a point there is outside every unit grid of the district, and a lookup answers
//!   `outside_coverage`. [`Coverage`] gives the district's area, its unit grids' area and the
//!   uncovered area (all of it), and lists each uncovered piece of at least `min_area_m2`. The
//!   union is built bottom-up (a parent's is the union of its children's), so each step joins
//!   a few shapes. With intact links a hole is also a gap of the lowest grid that lacks a
//!   child there; coverage says how much of the district it takes. Not defined when the top
//!   level is the unit level.
//! - **Areas are measured on the edge model of the lookups**: a grid's edges are straight lines
//!   in lon/lat (that is how `/v1/locate` and the indexes test a point), so a piece is the
//!   region those straight edges bound, and its area is that region's area on the WGS84
//!   ellipsoid ([`straight_edge_area_m2`]): the piece is mapped to the affine plane
//!   `x = N·cos φ₀·Δλ`, `y = M·Δφ` (M, N the ellipsoid's radii of curvature at φ₀, the
//!   latitude of the piece's centroid), where straight lon/lat edges stay straight, and its
//!   planar area is taken there. Relative to the exact integral the error is of the order of
//!   the piece's latitude span squared (< 1e-6 for a 20 km district). A *geodesic* area
//!   (`GeodesicArea`, edges as geodesics) would measure another region: along a 1.5 km edge
//!   the geodesic leaves the straight lon/lat line by ~3 cm, so a rounding sliver along a
//!   shared edge, ~0 m² here, measured up to tens of m² geodesically.
//! - Locations are an interior point of the piece (lon, lat), so a marker put there lies
//!   inside the faulty area.
//! - A grid's level is the one its code's digit count gives; if the code is malformed, the
//!   declared level, else the level of its digit count if it is all digits; if none, the grid
//!   is only in `bad_codes` and left out of the geometric checks. Geometric checks follow a parent link only if the parent exists one level up; a
//!   broken link is reported once in `missing_levels` and its grid is not compared with that
//!   parent (its old parent then usually shows a gap where it was).
//! - Geometry is normalised first (exteriors counter-clockwise), as files come in both
//!   windings. A grid with no polygon or a non-finite coordinate is listed in `bad_geometry`
//!   and left out of the geometric checks. Ring validity (self-intersections) is not checked here.
//! - geo's boolean operations have panicked on degenerate input in earlier versions (georust/geo
//!   #867, #913, #976, #1064, #1189; geo ≥ 0.29 uses i_overlay instead). Every operation runs
//!   under `catch_unwind`; a panic becomes a [`CheckFailed`] naming the grids and the import
//!   goes on. The panic message still goes through the process's panic hook (stderr), and a
//!   build with `panic = "abort"` would lose this guard.
//! - Each kind of finding keeps at most [`TopologyOptions::max_findings_per_kind`] entries;
//!   [`Counts`] has the full numbers and `truncated` says whether anything was left out.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use geo::orient::{Direction, Orient};
use geo::{BooleanOps, BoundingRect, InteriorPoint, unary_union};
use geo_types::{MultiPolygon, Polygon, Rect};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{AABB, RTree};
use serde::Serialize;

use crate::model::{City, GridCode, Hierarchy};

#[cfg(test)]
mod tests;

/// Thresholds and limits of a check.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TopologyOptions {
    /// Overlaps, gaps and parts outside the parent smaller than this (m²) are rounding slivers
    /// and are ignored (counted in [`Counts::slivers_ignored`]). Default 1 m² (a unit grid is
    /// about 10,000 m²). Pieces of zero area are never findings, whatever the threshold.
    pub min_area_m2: f64,
    /// Most findings kept per kind; the counts stay exact. Default 1,000.
    pub max_findings_per_kind: usize,
}

impl Default for TopologyOptions {
    fn default() -> Self {
        TopologyOptions { min_area_m2: 1.0, max_findings_per_kind: 1000 }
    }
}

/// One grid row as an importer reads it, before any model check.
#[derive(Clone, Debug, PartialEq)]
pub struct GridRecord {
    /// The grid code as written (surrounding spaces are ignored).
    pub code: String,
    /// The declared level, **1-based as in files** (1 = top level), like
    /// [`GridFields::level`](crate::model::GridFields); `None` if the file has no level field.
    pub level: Option<u8>,
    /// The parent's code as written; `None` or blank for none.
    pub parent: Option<String>,
    /// Outline in lon/lat (WGS84 ≡ CGCS2000).
    pub geometry: MultiPolygon<f64>,
}

impl GridRecord {
    /// The grids of a built city as records (codes written out, levels 1-based).
    pub fn from_city(city: &City) -> Vec<GridRecord> {
        city.grids
            .iter()
            .map(|g| GridRecord {
                code: g.code.to_string(),
                level: Some(g.level + 1),
                parent: g.parent.map(|p| city.grid(p).code.to_string()),
                geometry: g.geometry.clone(),
            })
            .collect()
    }
}

/// Two grids of one level sharing area.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Overlap {
    /// 1-based level of both grids, and its name.
    pub level: usize,
    pub level_name: String,
    /// The two codes, `a` first in the layer's order.
    pub a: String,
    pub b: String,
    /// Whether both have the same parent (siblings) or not (cousins across a parent's border).
    pub same_parent: bool,
    /// Area of the whole intersection, m² (straight lon/lat edges, see the module doc).
    pub area_m2: f64,
    /// Number of separate pieces of the intersection.
    pub pieces: usize,
    /// A point inside the largest piece, lon/lat.
    pub location: [f64; 2],
}

/// Part of a parent grid that none of its children covers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Gap {
    pub parent: String,
    /// 1-based level of the parent, and its name.
    pub level: usize,
    pub level_name: String,
    /// Area of this piece, m² (straight lon/lat edges, see the module doc).
    pub area_m2: f64,
    /// A point inside the piece, lon/lat.
    pub location: [f64; 2],
}

/// Part of a child grid that lies outside its parent.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OutsideParent {
    pub code: String,
    pub parent: String,
    /// Area of this piece, m² (straight lon/lat edges, see the module doc).
    pub area_m2: f64,
    /// A point inside the piece, lon/lat.
    pub location: [f64; 2],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeIssueKind {
    /// Not a grid code of the hierarchy: not digits, a digit count no level has, not a
    /// GB/T 2260 province, a street code not starting 0-3.
    Malformed,
    /// The declared level disagrees with the level of the code's digit count, or no level has it.
    LevelMismatch,
    /// The code appears more than once.
    Duplicate,
    /// The code does not start with its parent's code (or is not longer than it).
    NotExtendingParent,
}

/// Something wrong with a grid's code.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CodeIssue {
    pub code: String,
    pub parent: Option<String>,
    pub kind: CodeIssueKind,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingLevelKind {
    /// A grid below the top level with no parent.
    NoParent,
    /// A top-level grid that names a parent.
    TopLevelWithParent,
    /// The parent named is not in the layer.
    UnknownParent,
    /// The parent is not exactly one level up (a level skipped, or the same or a lower level).
    NotOneLevelUp,
    /// A level of the hierarchy with no grid at all.
    EmptyLevel,
}

/// A broken link in the hierarchy.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MissingLevel {
    pub kind: MissingLevelKind,
    /// The grid concerned; `None` for [`MissingLevelKind::EmptyLevel`].
    pub code: Option<String>,
    pub parent: Option<String>,
    /// 1-based level of the grid (or of the empty level), when known.
    pub level: Option<usize>,
    pub message: String,
}

/// How much of a top-level grid its unit grids cover (see the module doc).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Coverage {
    /// The top-level grid (district) and its level's name.
    pub code: String,
    pub level_name: String,
    /// Its area, m².
    pub district_area_m2: f64,
    /// The unit grids linked below it.
    pub unit_grids: usize,
    /// Area of their union, m² (an overlap counted once; a part outside the district too).
    pub unit_grid_area_m2: f64,
    /// Area of the district none of them covers, m²: the pieces of at least `min_area_m2`.
    pub uncovered_area_m2: f64,
    /// Area of the smaller uncovered pieces, m²: rounding slivers (the union of thousands of
    /// grids is rounded to a grid about 1e-10 of the district's size, which leaves ~1e-9 of
    /// its area in slivers of ~0.001 m² on a clean layer). Not in [`Counts::slivers_ignored`],
    /// which judges the data, not this union.
    pub sliver_area_m2: f64,
    /// The uncovered pieces of at least `min_area_m2` (at most `max_findings_per_kind` over
    /// all districts; [`Counts::uncovered`] counts them all).
    pub uncovered: Vec<Uncovered>,
}

/// A piece of a district outside every unit grid of it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Uncovered {
    /// Area of this piece, m² (straight lon/lat edges, see the module doc).
    pub area_m2: f64,
    /// A point inside the piece, lon/lat.
    pub location: [f64; 2],
}

/// A grid whose geometry cannot be checked.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BadGeometry {
    pub code: String,
    pub reason: String,
}

/// A geometric operation that panicked; the grids involved were not checked by it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckFailed {
    /// `overlap`, `gap`, `outside_parent` or `coverage`.
    pub check: &'static str,
    pub codes: Vec<String>,
    pub reason: String,
}

/// Exact totals, whatever was truncated.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Counts {
    pub grids: usize,
    /// Grids per level (top first) whose level is known.
    pub per_level: Vec<usize>,
    /// Pairs of same-level grids whose boxes overlap, so whose intersection was computed.
    pub pairs_tested: usize,
    pub overlaps: usize,
    pub gaps: usize,
    pub outside_parent: usize,
    pub bad_codes: usize,
    pub missing_levels: usize,
    pub bad_geometry: usize,
    pub check_failed: usize,
    /// Uncovered pieces of districts of at least `min_area_m2` (see [`Coverage`]), and their area.
    pub uncovered: usize,
    pub uncovered_area_m2: f64,
    /// Pieces of overlap, gap or outside-parent area below `min_area_m2`, ignored as slivers,
    /// and their total area: a clean layer has (near) zero of both. (Uncovered slivers are in
    /// [`Coverage::sliver_area_m2`].)
    pub slivers_ignored: usize,
    pub sliver_area_m2: f64,
    pub overlap_area_m2: f64,
    pub gap_area_m2: f64,
    pub outside_parent_area_m2: f64,
}

/// Everything found; empty lists mean the layer is clean.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TopologyReport {
    pub overlaps: Vec<Overlap>,
    pub gaps: Vec<Gap>,
    pub outside_parent: Vec<OutsideParent>,
    pub bad_codes: Vec<CodeIssue>,
    pub missing_levels: Vec<MissingLevel>,
    pub bad_geometry: Vec<BadGeometry>,
    pub check_failed: Vec<CheckFailed>,
    /// One entry per top-level grid whose coverage could be measured, in the layer's order.
    pub coverage: Vec<Coverage>,
    pub counts: Counts,
    /// True if some list holds fewer entries than its count.
    pub truncated: bool,
}

impl TopologyReport {
    /// No finding of any kind.
    pub fn is_clean(&self) -> bool {
        let c = &self.counts;
        c.overlaps + c.gaps + c.outside_parent + c.uncovered + c.bad_codes + c.missing_levels + c.bad_geometry + c.check_failed == 0
    }
}

/// Checks a built city (see the module doc: only geometry and empty levels can be wrong there).
pub fn check_city(city: &City, opts: &TopologyOptions) -> TopologyReport {
    check_grids(&GridRecord::from_city(city), &city.hierarchy, opts)
}

/// A list that keeps at most `cap` entries and counts them all.
struct Capped<T> {
    items: Vec<T>,
    total: usize,
    cap: usize,
}

impl<T> Capped<T> {
    fn new(cap: usize) -> Self {
        Capped { items: Vec::new(), total: 0, cap }
    }
    fn push(&mut self, item: T) {
        self.total += 1;
        if self.items.len() < self.cap {
            self.items.push(item);
        }
    }
    fn truncated(&self) -> bool {
        self.total > self.items.len()
    }
}

/// A grid prepared for the geometric checks.
struct Prepared {
    /// Oriented geometry and its box; `None` if it cannot be checked.
    geometry: Option<(MultiPolygon<f64>, Rect<f64>)>,
    /// 0-based level, from the code or else the declared level.
    level: Option<usize>,
    /// Index of the parent record, only if it is one level up.
    parent: Option<usize>,
}

/// Runs `f`, turning a panic into its message.
pub(super) fn guarded<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|e| {
        e.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| e.downcast_ref::<String>().cloned()).unwrap_or_else(|| "panic without a message".into())
    })
}

/// WGS84 semi-major axis (m) and first eccentricity squared (f = 1/298.257223563).
const WGS84_A: f64 = 6_378_137.0;
const WGS84_E2: f64 = 0.006_694_379_990_141_317;

/// Area in m² of the region a polygon bounds when its edges are straight lines in lon/lat
/// (degrees, WGS84), as the lookups take them: the planar area in the affine plane
/// `x = N(φ₀)·cos φ₀·Δλ`, `y = M(φ₀)·Δφ` around the latitude φ₀ of the region's centroid
/// (see the module doc for why not the geodesic area, and the error). Rings may run either
/// way (the boolean operations return both); holes are subtracted. Sums are taken relative
/// to the first vertex, so a sliver a millimetre wide keeps its (tiny) area.
pub fn straight_edge_area_m2(p: &Polygon<f64>) -> f64 {
    let Some(&origin) = p.exterior().0.first() else { return 0.0 };
    // Per ring: the shoelace area and the first moment in latitude (both in degrees,
    // relative to `origin`), the sign put so that the exterior counts positive.
    let ring = |r: &geo_types::LineString<f64>| {
        let (mut a, mut m) = (0.0, 0.0);
        for w in r.0.windows(2) {
            let (x0, y0, x1, y1) = (w[0].x - origin.x, w[0].y - origin.y, w[1].x - origin.x, w[1].y - origin.y);
            let cross = x0 * y1 - x1 * y0;
            a += cross;
            m += (y0 + y1) * cross;
        }
        let sign = if a < 0.0 { -1.0 } else { 1.0 };
        (sign * a / 2.0, sign * m / 6.0)
    };
    let (mut area, mut moment) = ring(p.exterior());
    for hole in p.interiors() {
        let (a, m) = ring(hole);
        area -= a;
        moment -= m;
    }
    let area = area.abs();
    let lat0 = if area > 0.0 && (moment / area).is_finite() { origin.y + moment / area } else { p.bounding_rect().map_or(origin.y, |b| b.center().y) };
    let (sin, cos) = lat0.to_radians().sin_cos();
    let w = 1.0 - WGS84_E2 * sin * sin;
    // M·N·cos φ₀ = a²(1 − e²)·cos φ₀ / (1 − e² sin² φ₀)², per square radian.
    let per_rad2 = WGS84_A * WGS84_A * (1.0 - WGS84_E2) * cos / (w * w);
    area * (std::f64::consts::PI / 180.0).powi(2) * per_rad2
}

/// Area (m², [`straight_edge_area_m2`]) and an interior point (lon/lat) of each polygon.
fn pieces(mp: &MultiPolygon<f64>) -> Vec<(f64, [f64; 2])> {
    mp.0.iter()
        .map(|p: &Polygon<f64>| {
            let area = straight_edge_area_m2(p);
            let at = p.interior_point().map(|q| [q.x(), q.y()]).or_else(|| p.exterior().0.first().map(|c| [c.x, c.y])).unwrap_or([f64::NAN, f64::NAN]);
            (area, at)
        })
        .collect()
}

fn geometry_problem(mp: &MultiPolygon<f64>) -> Option<String> {
    if mp.0.is_empty() || mp.0.iter().all(|p| p.exterior().0.is_empty()) {
        return Some("no polygon".into());
    }
    let finite = mp.0.iter().all(|p| std::iter::once(p.exterior()).chain(p.interiors()).all(|r| r.0.iter().all(|c| c.x.is_finite() && c.y.is_finite())));
    (!finite).then(|| "a coordinate is not a finite number".into())
}

fn non_blank(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Checks a grid layer's records against the hierarchy: codes, links, overlaps, gaps and
/// grids outside their parent. Never panics on bad data; see the module doc for the rules.
pub fn check_grids(records: &[GridRecord], hierarchy: &Hierarchy, opts: &TopologyOptions) -> TopologyReport {
    let cap = opts.max_findings_per_kind;
    // A piece counts if it has area and reaches the threshold (a NaN or negative one means 0).
    let min_area = if opts.min_area_m2 >= 0.0 { opts.min_area_m2 } else { 0.0 };
    let is_sliver = |area: f64| !(area > 0.0 && area >= min_area);
    let n_levels = hierarchy.levels.len();
    let level_name = |l: usize| hierarchy.levels.get(l).map(|d| d.name.clone()).unwrap_or_default();
    let mut bad_codes = Capped::new(cap);
    let mut missing = Capped::new(cap);
    let mut bad_geometry = Capped::new(cap);
    let mut failed = Capped::new(cap);
    let mut overlaps = Capped::new(cap);
    let mut gaps = Capped::new(cap);
    let mut outside = Capped::new(cap);
    let mut counts = Counts { grids: records.len(), per_level: vec![0; n_levels], ..Counts::default() };

    // Codes and levels.
    let codes: Vec<&str> = records.iter().map(|r| r.code.trim()).collect();
    let mut first_by_code: HashMap<&str, usize> = HashMap::with_capacity(records.len());
    let mut prepared: Vec<Prepared> = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let code = codes[i];
        let parent = non_blank(&r.parent).map(str::to_owned);
        let issue = |kind, message: String| CodeIssue { code: code.to_owned(), parent: parent.clone(), kind, message };
        let code_level = match GridCode::parse(code, hierarchy) {
            Ok((_, level)) => Some(level),
            Err(e) => {
                bad_codes.push(issue(CodeIssueKind::Malformed, e.to_string()));
                None
            }
        };
        let declared = match r.level {
            Some(l) if (1..=n_levels).contains(&(l as usize)) => Some(l as usize - 1),
            Some(l) => {
                bad_codes.push(issue(CodeIssueKind::LevelMismatch, format!("declared level {l}; the {} scheme has levels 1 to {n_levels}", hierarchy.scheme)));
                None
            }
            None => None,
        };
        if let (Some(c), Some(d)) = (code_level, declared)
            && c != d
        {
            bad_codes.push(issue(
                CodeIssueKind::LevelMismatch,
                format!(
                    "declared level {} ({}, codes of {} digits) but its {} digits make it level {} ({})",
                    d + 1,
                    level_name(d),
                    hierarchy.levels[d].code_digits,
                    code.len(),
                    c + 1,
                    level_name(c)
                ),
            ));
        }
        // The first record of a code is the one parents resolve to.
        if *first_by_code.entry(code).or_insert(i) != i {
            bad_codes.push(issue(CodeIssueKind::Duplicate, format!("grid code {code} appears more than once")));
        }
        // A malformed code of a level's length (say a wrong province) still places the grid.
        let digits_level = || code.bytes().all(|b| b.is_ascii_digit()).then(|| hierarchy.level_of_digits(code.len())).flatten();
        let level = code_level.or(declared).or_else(digits_level);
        if let Some(p) = parent.as_deref().filter(|_| level != Some(0))
            && !(code.len() > p.len() && code.starts_with(p))
        {
            bad_codes.push(issue(CodeIssueKind::NotExtendingParent, format!("grid code {code} does not extend its parent's code {p}")));
        }
        if let Some(l) = level {
            counts.per_level[l] += 1;
        }
        let geometry = match geometry_problem(&r.geometry) {
            Some(reason) => {
                bad_geometry.push(BadGeometry { code: code.to_owned(), reason });
                None
            }
            None => {
                let g = r.geometry.orient(Direction::Default);
                g.bounding_rect().map(|b| (g, b))
            }
        };
        prepared.push(Prepared { geometry, level, parent: None });
    }
    // Parent links.
    for (i, r) in records.iter().enumerate() {
        let code = codes[i];
        let level = prepared[i].level;
        let parent = non_blank(&r.parent);
        let link =
            |kind, message: String| MissingLevel { kind, code: Some(code.to_owned()), parent: parent.map(str::to_owned), level: level.map(|l| l + 1), message };
        match (level, parent) {
            (Some(0), Some(p)) => {
                missing.push(link(MissingLevelKind::TopLevelWithParent, format!("grid {code} is at the top level ({}) but names parent {p}", level_name(0))))
            }
            (Some(l), None) if l > 0 => missing.push(link(MissingLevelKind::NoParent, format!("grid {code} ({}) has no parent", level_name(l)))),
            (_, Some(p)) => {
                match first_by_code.get(p) {
                    None => missing.push(link(MissingLevelKind::UnknownParent, format!("grid {code} names parent {p}, which is not in the layer"))),
                    Some(&j) => match (level, prepared[j].level) {
                        (Some(l), Some(pl)) if pl + 1 == l => prepared[i].parent = Some(j),
                        (Some(l), Some(pl)) => missing.push(link(
                            MissingLevelKind::NotOneLevelUp,
                            format!("grid {code} ({}) names parent {p} at level {} ({}); it must be one level up", level_name(l), pl + 1, level_name(pl)),
                        )),
                        // A level unknown: already a bad code; the link cannot be judged.
                        _ => {}
                    },
                }
            }
            _ => {}
        }
    }
    for (l, &n) in counts.per_level.iter().enumerate() {
        if n == 0 {
            missing.push(MissingLevel {
                kind: MissingLevelKind::EmptyLevel,
                code: None,
                parent: None,
                level: Some(l + 1),
                message: format!("level {} ({}) has no grid", l + 1, level_name(l)),
            });
        }
    }

    // Overlaps: same-level pairs whose boxes share area, through an R-tree per level.
    for level in 0..n_levels {
        let members: Vec<usize> = (0..records.len()).filter(|&i| prepared[i].level == Some(level) && prepared[i].geometry.is_some()).collect();
        let boxes: Vec<GeomWithData<Rectangle<[f64; 2]>, usize>> = members
            .iter()
            .map(|&i| {
                let b = prepared[i].geometry.as_ref().expect("filtered").1;
                GeomWithData::new(Rectangle::from_corners([b.min().x, b.min().y], [b.max().x, b.max().y]), i)
            })
            .collect();
        let tree = RTree::bulk_load(boxes);
        for &i in &members {
            let (gi, bi) = prepared[i].geometry.as_ref().expect("filtered");
            let envelope = AABB::from_corners([bi.min().x, bi.min().y], [bi.max().x, bi.max().y]);
            let mut candidates: Vec<usize> = tree
                .locate_in_envelope_intersecting(&envelope)
                .map(|c| c.data)
                .filter(|&j| j > i && boxes_share_area(bi, &prepared[j].geometry.as_ref().expect("filtered").1))
                .collect();
            candidates.sort_unstable();
            for j in candidates {
                counts.pairs_tested += 1;
                let gj = &prepared[j].geometry.as_ref().expect("filtered").0;
                match guarded(|| pieces(&gi.intersection(gj))) {
                    Err(reason) => failed.push(CheckFailed { check: "overlap", codes: vec![codes[i].to_owned(), codes[j].to_owned()], reason }),
                    Ok(parts) => {
                        let area: f64 = parts.iter().map(|p| p.0).sum();
                        if is_sliver(area) {
                            counts.slivers_ignored += parts.len();
                            counts.sliver_area_m2 += area;
                        } else {
                            let largest = parts.iter().max_by(|a, b| a.0.total_cmp(&b.0)).expect("some area");
                            counts.overlap_area_m2 += area;
                            overlaps.push(Overlap {
                                level: level + 1,
                                level_name: level_name(level),
                                a: codes[i].to_owned(),
                                b: codes[j].to_owned(),
                                same_parent: non_blank(&records[i].parent) == non_blank(&records[j].parent),
                                area_m2: area,
                                pieces: parts.len(),
                                location: largest.1,
                            });
                        }
                    }
                }
            }
        }
    }

    // Gaps and children outside their parent, along the one-level-up links.
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); records.len()];
    for (i, p) in prepared.iter().enumerate() {
        if let (Some(parent), Some(_)) = (p.parent, &p.geometry) {
            children[parent].push(i);
        }
    }
    for (p, kids) in children.iter().enumerate() {
        let (Some((pg, _)), Some(level)) = (&prepared[p].geometry, prepared[p].level) else {
            continue;
        };
        if kids.is_empty() && (level + 1 >= n_levels || counts.per_level[level + 1] == 0) {
            continue; // a unit grid, or the whole level below is missing (reported as such)
        }
        let uncovered = guarded(|| {
            if kids.is_empty() {
                pieces(pg)
            } else {
                let union = unary_union(kids.iter().map(|&k| &prepared[k].geometry.as_ref().expect("linked").0));
                pieces(&pg.difference(&union))
            }
        });
        match uncovered {
            Err(reason) => {
                let mut codes_involved = vec![codes[p].to_owned()];
                codes_involved.extend(kids.iter().map(|&k| codes[k].to_owned()));
                failed.push(CheckFailed { check: "gap", codes: codes_involved, reason });
            }
            Ok(parts) => {
                for (area, location) in parts {
                    if is_sliver(area) {
                        counts.slivers_ignored += 1;
                        counts.sliver_area_m2 += area;
                        continue;
                    }
                    counts.gap_area_m2 += area;
                    gaps.push(Gap { parent: codes[p].to_owned(), level: level + 1, level_name: level_name(level), area_m2: area, location });
                }
            }
        }
        for &k in kids {
            let kg = &prepared[k].geometry.as_ref().expect("linked").0;
            match guarded(|| pieces(&kg.difference(pg))) {
                Err(reason) => failed.push(CheckFailed { check: "outside_parent", codes: vec![codes[k].to_owned(), codes[p].to_owned()], reason }),
                Ok(parts) => {
                    for (area, location) in parts {
                        if is_sliver(area) {
                            counts.slivers_ignored += 1;
                            counts.sliver_area_m2 += area;
                            continue;
                        }
                        counts.outside_parent_area_m2 += area;
                        outside.push(OutsideParent { code: codes[k].to_owned(), parent: codes[p].to_owned(), area_m2: area, location });
                    }
                }
            }
        }
    }

    // Coverage: each district minus the union of the unit grids below it, built bottom-up.
    let unit_level = n_levels.saturating_sub(1);
    let mut coverage = Vec::new();
    let mut uncovered_listed = 0;
    if unit_level > 0 {
        // Per grid above the unit level: the union of the unit grids below it and their
        // number, or the reason it could not be built.
        type Cover = Result<(MultiPolygon<f64>, usize), String>;
        let mut cover: Vec<Option<Cover>> = vec![None; records.len()];
        for level in (0..unit_level).rev() {
            for p in 0..records.len() {
                if prepared[p].level != Some(level) || prepared[p].geometry.is_none() {
                    continue;
                }
                let kids = &children[p];
                let result = if level + 1 == unit_level {
                    let shapes = kids.iter().map(|&k| &prepared[k].geometry.as_ref().expect("linked").0);
                    guarded(|| unary_union(shapes)).map(|u| (u, kids.len()))
                } else if let Some(Err(e)) = kids.iter().find_map(|&k| cover[k].as_ref().filter(|c| c.is_err())) {
                    Err(e.clone())
                } else {
                    let parts: Vec<&(MultiPolygon<f64>, usize)> = kids.iter().filter_map(|&k| cover[k].as_ref()?.as_ref().ok()).collect();
                    let n = parts.iter().map(|p| p.1).sum();
                    guarded(|| unary_union(parts.iter().map(|p| &p.0))).map(|u| (u, n))
                };
                cover[p] = Some(result);
            }
        }
        for d in 0..records.len() {
            let (Some((dg, _)), Some(0)) = (&prepared[d].geometry, prepared[d].level) else { continue };
            let measured = match cover[d].take() {
                Some(Ok((union, n))) => guarded(|| {
                    let total = |mp: &MultiPolygon<f64>| mp.0.iter().map(straight_edge_area_m2).sum::<f64>();
                    (total(dg), n, total(&union), pieces(&dg.difference(&union)))
                }),
                Some(Err(e)) => Err(e),
                None => continue,
            };
            match measured {
                Err(reason) => failed.push(CheckFailed { check: "coverage", codes: vec![codes[d].to_owned()], reason }),
                Ok((district_area_m2, unit_grids, unit_grid_area_m2, parts)) => {
                    let (mut listed, mut uncovered_area_m2, mut sliver_area_m2) = (Vec::new(), 0.0, 0.0);
                    for &(area, location) in &parts {
                        if is_sliver(area) {
                            sliver_area_m2 += area;
                            continue;
                        }
                        uncovered_area_m2 += area;
                        counts.uncovered += 1;
                        counts.uncovered_area_m2 += area;
                        if uncovered_listed < cap {
                            uncovered_listed += 1;
                            listed.push(Uncovered { area_m2: area, location });
                        }
                    }
                    coverage.push(Coverage {
                        code: codes[d].to_owned(),
                        level_name: level_name(0),
                        district_area_m2,
                        unit_grids,
                        unit_grid_area_m2,
                        uncovered_area_m2,
                        sliver_area_m2,
                        uncovered: listed,
                    });
                }
            }
        }
    }

    counts.overlaps = overlaps.total;
    counts.gaps = gaps.total;
    counts.outside_parent = outside.total;
    counts.bad_codes = bad_codes.total;
    counts.missing_levels = missing.total;
    counts.bad_geometry = bad_geometry.total;
    counts.check_failed = failed.total;
    let truncated = overlaps.truncated()
        || gaps.truncated()
        || outside.truncated()
        || bad_codes.truncated()
        || missing.truncated()
        || bad_geometry.truncated()
        || failed.truncated()
        || uncovered_listed < counts.uncovered;
    TopologyReport {
        overlaps: overlaps.items,
        gaps: gaps.items,
        outside_parent: outside.items,
        bad_codes: bad_codes.items,
        missing_levels: missing.items,
        bad_geometry: bad_geometry.items,
        check_failed: failed.items,
        coverage,
        counts,
        truncated,
    }
}

/// Whether two boxes share area (not just an edge or a corner).
fn boxes_share_area(a: &Rect<f64>, b: &Rect<f64>) -> bool {
    a.min().x < b.max().x && b.min().x < a.max().x && a.min().y < b.max().y && b.min().y < a.max().y
}
