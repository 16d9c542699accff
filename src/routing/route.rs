//! One case → the one responsible unit, the dispatcher, the deadline, and why.
//!
//! Precedence:
//! 1. `component_code`: that component's own units; the rule for its class (in its recorded
//!    grid) gives the role, urgency and limit. Role `@maintainer` / `@owner` / `@dept` names
//!    the unit tried first; a component without it falls through maintainer → owner → dept →
//!    the street office.
//! 2. `component_class` with a location: the nearest component of that class within
//!    [`RoutingConfig::snap_distance_m`](super::RoutingConfig) (30 m), then as 1. When the
//!    second nearest is within [`ambiguity_m`](super::RoutingConfig) (2 m) of the nearest,
//!    the answer warns and lists them, and still uses the nearest (equal distances: the lower
//!    code). None within reach → the street office of the point's grid (属地兜底).
//! 3. `event_type`: the rule of that type and urgency whose scope is the most specific for the
//!    unit grid of the point (see [`super::rules`]); no rule → the street office (属地兜底),
//!    with the fallback limit.
//!
//! The unit grid of a point is [`lookup::locate`]'s: on an edge shared by several grids, the
//! smallest code wins and the answer warns. With an accuracy radius, every grid within it is
//! listed in `candidates` with the unit it would get. A point outside every grid but within
//! [`max_outside_m`](super::RoutingConfig) (500 m) goes to the street office of the nearest
//! grid (limit from that grid's rule), with a warning; further is [`RoutingError::OutsideCoverage`].
//!
//! Urgency defaults to 一般 if the type has it, else to the type's lowest level. All times are
//! China time (UTC+08:00); `reported_at` defaults to `now`.

use chrono::{DateTime, FixedOffset};
use serde::Serialize;

use super::rules::{CaseKind, Role, Rule, RuleSet, Scope, UnitRef, Urgency};
use super::validate::applies_to_grid;
use super::{Routing, RoutingError, TimeLimit, china_tz};
use crate::lookup::{self, ChainEntry, ComponentView, LookupError, PointEcho};
use crate::model::{ClassCode, Component, ComponentCode, GridCode, GridId, UnitId, Zone};
use crate::store::Versions;
use crate::world::World;

/// What the case is about: exactly one of these.
#[derive(Clone, Debug, PartialEq)]
pub enum CaseSubject {
    /// An event subclass code, e.g. `0102` 暴露垃圾.
    Event(String),
    /// A component subclass code, snapped to the nearest component of that class.
    ComponentClass(String),
    /// A 16-digit component code.
    Component(String),
}

/// A case to route.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseInput {
    /// Where; required unless the subject is a component code.
    pub point: Option<PointEcho>,
    /// GPS accuracy radius, metres (0 = exact).
    pub accuracy_m: f64,
    pub subject: CaseSubject,
    /// `None`: 一般 if the type has it, else its lowest level.
    pub urgency: Option<Urgency>,
    /// `None`: `now`.
    pub reported_at: Option<DateTime<FixedOffset>>,
}

/// The unit a case goes to.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ResponsibleUnit<'a> {
    pub name: &'a str,
    pub code: Option<&'a str>,
    pub phone: Option<&'a str>,
    /// How it was found: `unit` (named by the rule), `maintainer`, `owner`, `dept`, `street`,
    /// `chief`.
    pub role: &'static str,
}

/// The person who dispatches in the unit grid (its grid chief, 网格长).
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Dispatcher<'a> {
    pub name: &'a str,
    pub phone: &'a str,
    /// The grid whose chief this is (the unit grid, or its nearest ancestor with a chief).
    pub grid: GridCode,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct GridRef<'a> {
    pub code: GridCode,
    pub name: &'a str,
}

/// What the map highlights.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Area {
    /// The unit grid, or the street's code when the street office is responsible.
    pub grid: GridCode,
    /// `layer:id` of the responsibility polygon whose rule decided, if one did.
    pub zone: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CaseView<'a> {
    pub kind: CaseKind,
    pub code: ClassCode,
    pub name: &'a str,
    pub urgency: Urgency,
}

/// The rule that decided, and why it won.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RuleView<'a> {
    pub case_kind: CaseKind,
    pub case_type: ClassCode,
    pub case_name: &'a str,
    /// As written (empty = whole city).
    pub scope: String,
    /// Higher wins: scope rank × 2 (+1 with a condition); rank = 0 city-wide, digits of a grid
    /// code, 100 zone layer, 200 zone polygon.
    pub specificity: u32,
    /// `city`, `district`, `street`, `community`, `grid`, `zone`.
    pub scope_level: String,
    /// Line in the CSV file (header = 1).
    pub line: usize,
    pub condition: Option<String>,
    pub why: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Deadline {
    pub urgency: Urgency,
    /// `4 working hours (4个工作时)`.
    pub limit: String,
    /// `4wh`.
    pub limit_code: String,
    /// RFC 3339, +08:00.
    pub reported_at: String,
    /// RFC 3339, +08:00.
    pub due: String,
    /// The years whose public holidays the working calendar knows, ascending.
    pub calendar_covers: Vec<i32>,
    /// The deadline counts working time in a year the calendar does not cover, whose
    /// holidays were therefore not known (see [`super::calendar`]); the answer then carries
    /// the warning `calendar_unknown_year`.
    pub beyond_calendar: bool,
}

/// A grid within the accuracy disc and the unit the case would get there.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RouteCandidate<'a> {
    pub code: GridCode,
    pub name: &'a str,
    pub distance_m: f64,
    pub responsible_unit: &'a str,
}

/// The component the case is about, with its distance when snapped.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ComponentRef<'a> {
    #[serde(flatten)]
    pub component: ComponentView<'a>,
    /// From the reported point; `null` for an explicit code.
    pub distance_m: Option<f64>,
    /// Other components about equally near (ambiguous snap).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also_near: Vec<NearComponent>,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct NearComponent {
    pub code: ComponentCode,
    pub distance_m: f64,
}

/// `POST /v1/cases/route`.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RouteAnswer<'a> {
    pub case: CaseView<'a>,
    pub responsible_unit: ResponsibleUnit<'a>,
    pub dispatcher: Option<Dispatcher<'a>>,
    /// The unit grid of the case (of the component for component cases; the nearest grid
    /// outside coverage).
    pub grid: GridRef<'a>,
    pub area: Area,
    /// District first.
    pub chain: Vec<ChainEntry<'a>>,
    /// `null` when no rule applies (属地兜底).
    pub rule: Option<RuleView<'a>>,
    pub deadline: Deadline,
    /// Unit the case escalates to when the deadline passes.
    pub escalation: Option<&'a str>,
    /// Sentences for the dispatcher.
    pub explanation: Vec<String>,
    pub warnings: Vec<String>,
    /// Grids within the accuracy radius (or sharing the edge the point is on).
    pub candidates: Vec<RouteCandidate<'a>>,
    pub component: Option<ComponentRef<'a>>,
    pub point: Option<PointEcho>,
    pub outside_coverage: bool,
    pub versions: &'a Versions,
}

/// A case type for `GET /v1/cases/types`.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CaseTypeView<'a> {
    pub kind: CaseKind,
    pub code: ClassCode,
    pub name: &'a str,
    pub name_en: &'a str,
    pub major: String,
    /// The levels the list has rules for, lowest first; `["一般"]` for a type without rules.
    pub urgencies: Vec<Urgency>,
}

/// Every event subclass, then every component subclass, in code order.
pub fn case_types(world: &World) -> Vec<CaseTypeView<'_>> {
    let rules = world.routing.rules.as_ref().ok();
    let mut out = Vec::new();
    for (kind, table) in [(CaseKind::Event, &world.city.event_classes), (CaseKind::Component, &world.city.component_classes)] {
        for e in table.subclasses() {
            let mut urgencies = rules.map(|r| r.urgencies(kind, e.code)).unwrap_or_default();
            if urgencies.is_empty() {
                urgencies.push(Urgency::Normal);
            }
            out.push(CaseTypeView { kind, code: e.code, name: &e.name, name_en: &e.name_en, major: format!("{:02}", e.code.major()), urgencies });
        }
    }
    out
}

/// Who, found how; `area` is the grid the map highlights.
struct Resolved<'a> {
    unit: ResponsibleUnit<'a>,
    area: GridId,
    /// Why the role could not be used as written (fell through).
    note: Option<String>,
}

/// The rule for a type and urgency in a unit grid at a time of day: the most specific one
/// (ties: the first line, with a warning; validation forbids ties).
struct Pick<'a> {
    rule: Option<&'a Rule>,
    /// For a zone rule, the zone it matched.
    zone: Option<&'a Zone>,
    /// Other applicable rules, most specific first.
    beaten: Vec<&'a Rule>,
    tie: Vec<&'a Rule>,
}

fn pick<'a>(
    set: &'a RuleSet,
    kind: CaseKind,
    class: ClassCode,
    urgency: Urgency,
    grid: GridCode,
    zones_here: &[&'a Zone],
    at: DateTime<FixedOffset>,
) -> Pick<'a> {
    let time = at.with_timezone(&china_tz()).time();
    let mut applicable: Vec<&Rule> = set
        .of_type(kind, class)
        .filter(|r| r.urgency == urgency && (applies_to_grid(r, grid) || zone_of(r, zones_here).is_some()) && r.condition.is_none_or(|w| w.contains(time)))
        .collect();
    applicable.sort_by_key(|r| (std::cmp::Reverse(r.specificity()), r.line));
    let Some(&first) = applicable.first() else { return Pick { rule: None, zone: None, beaten: Vec::new(), tie: Vec::new() } };
    let tie = applicable[1..].iter().copied().filter(|r| r.specificity() == first.specificity()).collect();
    Pick { rule: Some(first), zone: zone_of(first, zones_here), beaten: applicable[1..].to_vec(), tie }
}

/// The first zone (by layer, then id) holding the point that a zone rule's scope names.
fn zone_of<'a>(r: &Rule, zones_here: &[&'a Zone]) -> Option<&'a Zone> {
    let Scope::Zone { layer, id } = &r.scope else { return None };
    zones_here.iter().copied().find(|z| &z.layer == layer && id.as_ref().is_none_or(|id| &z.id == id))
}

fn unit<'a>(world: &'a World, id: UnitId, role: &'static str) -> ResponsibleUnit<'a> {
    let u = world.city.units.get(id);
    ResponsibleUnit { name: &u.name, code: u.code.as_deref(), phone: u.phone.as_deref(), role }
}

/// The street-level grid (level 2) of a unit grid, or the top grid in a one-level city.
fn street_of(world: &World, grid: GridId) -> GridId {
    let chain = world.city.chain(grid);
    chain.get(1).or(chain.first()).copied().expect("non-empty chain")
}

/// 属地兜底: the street office of the grid (the street grid's unit; its name if it has none).
fn street_office(world: &World, grid: GridId) -> Resolved<'_> {
    let street = street_of(world, grid);
    let g = world.city.grid(street);
    let unit = match g.unit {
        Some(id) => unit(world, id, "street"),
        None => ResponsibleUnit { name: &g.name, code: None, phone: None, role: "street" },
    };
    Resolved { unit, area: street, note: None }
}

fn dispatcher(world: &World, grid: GridId) -> Option<Dispatcher<'_>> {
    world.city.chain(grid).into_iter().rev().find_map(|g| {
        let grid = world.city.grid(g);
        grid.chief.as_ref().map(|c| Dispatcher { name: &c.name, phone: &c.phone, grid: grid.code })
    })
}

/// Resolves a rule's unit in a grid (with the component for component roles, and the zone
/// the rule matched for `@zone`).
fn resolve<'a>(world: &'a World, unit_ref: &'a UnitRef, grid: GridId, component: Option<&Component>, zone: Option<&'a Zone>) -> Resolved<'a> {
    match unit_ref {
        UnitRef::Named(name) => match world.city.units.find(name) {
            Some(id) => Resolved { unit: unit(world, id, "unit"), area: grid, note: None },
            None => Resolved { unit: ResponsibleUnit { name, code: None, phone: None, role: "unit" }, area: grid, note: None },
        },
        UnitRef::Role(Role::Street) => street_office(world, grid),
        UnitRef::Role(Role::Chief) => match dispatcher(world, grid) {
            Some(d) => Resolved { unit: ResponsibleUnit { name: d.name, code: None, phone: Some(d.phone), role: "chief" }, area: grid, note: None },
            None => Resolved { note: Some("the grid has no chief; the street office takes it (属地兜底)".into()), ..street_office(world, grid) },
        },
        UnitRef::Role(Role::Zone) => match zone {
            Some(z) => match z.unit {
                Some(id) => Resolved { unit: unit(world, id, "zone"), area: grid, note: None },
                None => Resolved {
                    note: Some(format!("zone {}:{} {} has no unit recorded; the street office takes it (属地兜底)", z.layer, z.id, z.name)),
                    ..street_office(world, grid)
                },
            },
            None => Resolved {
                note: Some("the rule names @zone but no zone holds the point; the street office takes it (属地兜底)".into()),
                ..street_office(world, grid)
            },
        },
        UnitRef::Role(role @ (Role::Maintainer | Role::Owner | Role::Dept)) => component_units(world, *role, grid, component),
    }
}

/// The component's unit for `role`, else maintainer → owner → dept → street office.
fn component_units<'a>(world: &'a World, role: Role, grid: GridId, component: Option<&Component>) -> Resolved<'a> {
    let Some(c) = component else {
        return Resolved {
            note: Some(format!("no component to take {} from; the street office takes it (属地兜底)", role.as_str())),
            ..street_office(world, grid)
        };
    };
    let order = [(Role::Maintainer, c.maintainer, "maintainer"), (Role::Owner, c.owner, "owner"), (Role::Dept, c.dept, "dept")];
    let wanted = order.iter().find(|o| o.0 == role).expect("component role");
    if let Some(id) = wanted.1 {
        return Resolved { unit: unit(world, id, wanted.2), area: grid, note: None };
    }
    if let Some(o) = order.iter().find(|o| o.1.is_some()) {
        return Resolved {
            unit: unit(world, o.1.expect("some"), o.2),
            area: grid,
            note: Some(format!("the component has no {} unit; its {} takes it", wanted.2, o.2)),
        };
    }
    Resolved { note: Some("the component has no units recorded; the street office takes it (属地兜底)".into()), ..street_office(world, grid) }
}

/// The `calendar_unknown_year` warning of a deadline that counted working time in `unknown`,
/// years the calendar (covering `covered`) has no holidays for.
fn unknown_year_warning(covered: &std::collections::BTreeSet<i32>, unknown: &[i32]) -> String {
    let list = unknown.iter().map(|y| y.to_string()).collect::<Vec<_>>().join(", ");
    let how = match (covered.first(), covered.last()) {
        (Some(first), _) if unknown.iter().all(|y| y < first) => "starts in",
        (_, Some(last)) if unknown.iter().all(|y| y > last) => "runs into",
        _ => "counts working time in",
    };
    format!(
        "calendar_unknown_year: the working calendar covers {}; this deadline {how} {list}, whose public holidays it does not know \
         (counted as ordinary weekdays and weekends) — add {list} to the calendar",
        super::calendar::years_text(covered)
    )
}

fn invalid(parameter: &'static str, value: impl ToString, reason: impl Into<String>) -> RoutingError {
    RoutingError::InvalidParameter { parameter, value: value.to_string(), reason: reason.into() }
}

fn scope_level(world: &World, rule: &Rule) -> String {
    match &rule.scope {
        Scope::City => "city".into(),
        Scope::Zone { .. } => "zone".into(),
        Scope::Grid(c) => {
            world.city.hierarchy.level_of_digits(c.digits()).map(|l| world.city.hierarchy.levels[l].name_en.to_lowercase()).unwrap_or_else(|| "grid".into())
        }
    }
}

/// Routes one case (see the [module documentation](self)).
pub fn route<'a>(world: &'a World, case: &CaseInput, now: DateTime<FixedOffset>) -> Result<RouteAnswer<'a>, RoutingError> {
    let routing: &Routing = &world.routing;
    let set = routing.rules.as_ref().map_err(|e| RoutingError::RulesUnavailable(e.clone()))?;
    let reported_at = case.reported_at.unwrap_or(now).with_timezone(&china_tz());
    if !(case.accuracy_m.is_finite() && (0.0..=lookup::MAX_ACCURACY_M).contains(&case.accuracy_m)) {
        return Err(invalid("accuracy", case.accuracy_m, format!("accuracy must be metres in [0, {}]", lookup::MAX_ACCURACY_M)));
    }
    let mut warnings = Vec::new();
    let mut explanation = Vec::new();

    // The case type.
    let (kind, code_text, param) = match &case.subject {
        CaseSubject::Event(c) => (CaseKind::Event, c.as_str(), "event_type"),
        CaseSubject::ComponentClass(c) => (CaseKind::Component, c.as_str(), "component_class"),
        CaseSubject::Component(c) => (CaseKind::Component, c.as_str(), "component_code"),
    };
    let mut component: Option<&'a Component> = None;
    let class = if let CaseSubject::Component(code) = &case.subject {
        let parsed = ComponentCode::parse(code).map_err(|e| invalid("component_code", code, e.to_string()))?;
        let c = world.city.component_by_code(parsed).ok_or_else(|| RoutingError::ComponentNotFound(code.clone()))?;
        component = Some(c);
        c.class
    } else {
        let class = ClassCode::parse(code_text.trim()).map_err(|e| invalid(param, code_text, e.to_string()))?;
        let table = if kind == CaseKind::Event { &world.city.event_classes } else { &world.city.component_classes };
        if class.is_major() || table.get(class).is_none() {
            return Err(RoutingError::UnknownCaseType { kind: kind.as_str(), code: code_text.to_owned() });
        }
        class
    };
    let table = if kind == CaseKind::Event { &world.city.event_classes } else { &world.city.component_classes };
    let case_name = table.get(class).map(|e| e.name.as_str()).unwrap_or("");
    let levels = set.urgencies(kind, class);
    let urgency = match case.urgency {
        Some(u) if levels.is_empty() || levels.contains(&u) => u,
        Some(u) => {
            return Err(invalid(
                "urgency",
                u,
                format!("{class} {case_name} has limits for {} only", levels.iter().map(|l| l.zh()).collect::<Vec<_>>().join(", ")),
            ));
        }
        None => {
            if levels.is_empty() || levels.contains(&Urgency::Normal) {
                Urgency::Normal
            } else {
                explanation.push(format!("{class} {case_name} has no 一般 level: routed as {} (its lowest level).", levels[0]));
                levels[0]
            }
        }
    };

    // Where: the unit grid.
    let located = match case.point {
        Some(p) => Some(match lookup::locate(world, p, case.accuracy_m) {
            Ok(l) => Ok(l),
            Err(LookupError::OutsideCoverage { nearest, candidates, .. }) => Err((nearest, candidates)),
            Err(e) => return Err(e.into()),
        }),
        None if component.is_some() => None,
        None => return Err(RoutingError::MissingParameter("lon")),
    };

    // Snap a component class to a component.
    let mut snapped: Option<(f64, Vec<NearComponent>)> = None;
    if let (CaseSubject::ComponentClass(_), Some(p)) = (&case.subject, case.point) {
        let hits = world.components.nearest(&world.city, p.coord(), 5, Some(&[class]), Some(routing.config.snap_distance_m));
        if let Some(&(i, d)) = hits.first() {
            let c = &world.city.components[i as usize];
            component = Some(c);
            let also: Vec<NearComponent> = hits[1..]
                .iter()
                .filter(|(_, d2)| d2 - d <= routing.config.ambiguity_m)
                .map(|&(j, d2)| NearComponent { code: world.city.components[j as usize].code, distance_m: d2 })
                .collect();
            if !also.is_empty() {
                let list: Vec<String> =
                    std::iter::once(format!("{} ({d:.1} m)", c.code)).chain(also.iter().map(|n| format!("{} ({:.1} m)", n.code, n.distance_m))).collect();
                warnings.push(format!(
                    "ambiguous_component: {} components of class {class} are about equally near (within {} m): {}; routed by the nearest, {} — give component_code to choose",
                    list.len(),
                    routing.config.ambiguity_m,
                    list.join(", "),
                    c.code
                ));
            }
            explanation.push(format!("部件 {class} {case_name}: snapped to component {} at {d:.1} m from the reported point.", c.code));
            snapped = Some((d, also));
        } else {
            warnings.push(format!(
                "no_component_near: no {class} {case_name} within {} m of the point; the street office takes it (属地兜底)",
                routing.config.snap_distance_m
            ));
        }
    }

    // The grid the case is in: the component's recorded grid, else the point's.
    let mut outside = false;
    let mut point_candidates = Vec::new();
    let grid: GridId = match (component, &located) {
        (Some(c), _) if c.grid.is_some() || world.grids.locate(&world.city, c.location).grid().is_some() => {
            c.grid.or_else(|| world.grids.locate(&world.city, c.location).grid()).expect("checked")
        }
        (_, Some(Ok(l))) => {
            let id = world.city.grid_by_code(l.grid.code).expect("located grid exists");
            if l.on_boundary && l.candidates.iter().filter(|c| c.distance_m == 0.0).count() > 1 {
                warnings.push(format!(
                    "on_boundary: the point is exactly on the edge shared by {}; the smallest code, {}, takes it",
                    l.candidates.iter().filter(|c| c.distance_m == 0.0).map(|c| c.code.to_string()).collect::<Vec<_>>().join(", "),
                    l.grid.code
                ));
            } else if l.on_boundary {
                warnings.push(format!("on_boundary: the point is exactly on the outer edge of grid {}", l.grid.code));
            }
            point_candidates = l.candidates.iter().map(|c| (world.city.grid_by_code(c.code).expect("exists"), c.distance_m)).collect();
            id
        }
        (_, Some(Err((nearest, _)))) => {
            if nearest.distance_m > routing.config.max_outside_m {
                return Err(RoutingError::OutsideCoverage { nearest: nearest.clone(), max_m: routing.config.max_outside_m });
            }
            outside = true;
            warnings.push(format!(
                "outside_coverage: the point is {:.0} m outside the city's grids; the nearest grid is {} {} and its street office takes it (属地兜底)",
                nearest.distance_m, nearest.code, nearest.name
            ));
            world.city.grid_by_code(nearest.code).expect("nearest grid exists")
        }
        (_, None) => return Err(RoutingError::MissingParameter("lon")),
    };
    let g = world.city.grid(grid);

    // The rule and the unit.
    // The responsibility polygons at the case: at the component when there is one, else at
    // the point.
    let at_point = component.map(|c| c.location).or_else(|| case.point.map(|p| p.coord()));
    let zones_here: Vec<&'a Zone> = match at_point {
        Some(p) if !outside => world.zones.containing(&world.city, p).into_iter().map(|i| &world.city.zones[i as usize]).collect(),
        _ => Vec::new(),
    };
    let chosen = pick(set, kind, class, urgency, g.code, &zones_here, reported_at);
    if let Some(z) = chosen.zone {
        explanation.push(format!("The case lies in responsibility zone {}:{} {}.", z.layer, z.id, z.name));
        let same_layer: Vec<&&Zone> = zones_here.iter().filter(|o| o.layer == z.layer).collect();
        if same_layer.len() > 1 {
            warnings.push(format!(
                "zone_overlap: the point lies in {} zones of layer {} ({}); the first, {}, is used",
                same_layer.len(),
                z.layer,
                same_layer.iter().map(|o| o.id.as_str()).collect::<Vec<_>>().join(", "),
                z.id
            ));
        }
    }
    if !chosen.tie.is_empty() {
        warnings.push(format!(
            "conflict: lines {} apply with equal specificity; line {} is used (the list should not pass validation)",
            std::iter::once(chosen.rule.expect("tie implies a rule").line)
                .chain(chosen.tie.iter().map(|r| r.line))
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            chosen.rule.expect("rule").line
        ));
    }
    let no_component_for_class = matches!(case.subject, CaseSubject::ComponentClass(_)) && component.is_none();
    let resolved = if outside || no_component_for_class {
        street_office(world, grid)
    } else {
        match chosen.rule {
            Some(r) => resolve(world, &r.unit, grid, component, chosen.zone),
            None if kind == CaseKind::Component => component_units(world, Role::Maintainer, grid, component),
            None => street_office(world, grid),
        }
    };
    if let Some(note) = &resolved.note {
        warnings.push(format!("fallback: {note}"));
    }
    let limit: TimeLimit = chosen.rule.map(|r| r.limit).unwrap_or(routing.config.fallback_limit);
    let due_date = routing.calendar.deadline(reported_at, limit);
    let due = due_date.due;
    if !due_date.unknown_years.is_empty() {
        warnings.push(unknown_year_warning(routing.calendar.years(), &due_date.unknown_years));
    }

    // Explanation.
    let kind_zh = if kind == CaseKind::Event { "事件" } else { "部件" };
    let place = format!("{} {}", g.code, g.name);
    let street = world.city.grid(street_of(world, grid));
    let rule_view = chosen.rule.map(|r| {
        let mut why =
            format!("{} {class} ({case_name}, {urgency}) in {} ({place}): the {} rule on line {}", kind_zh, street.name, r.scope_words(&world.city), r.line);
        if let Some(w) = r.condition {
            why.push_str(&format!(" (reported at {}, inside its window {w})", reported_at.format("%H:%M")));
        }
        match chosen.beaten.first() {
            Some(b) => why.push_str(&format!(" wins over the {} rule on line {}.", b.scope_words(&world.city), b.line)),
            None => why.push_str(" is the only rule that applies."),
        }
        if outside || no_component_for_class {
            why.push_str(" It gives the urgency and time limit only: the case goes to the street office (属地兜底).");
        }
        RuleView {
            case_kind: r.kind,
            case_type: r.case_type,
            case_name: &r.case_name,
            scope: r.scope.to_string(),
            specificity: r.specificity(),
            scope_level: scope_level(world, r),
            line: r.line,
            condition: r.condition.map(|w| w.to_string()),
            why,
        }
    });
    if let Some(c) = component
        && snapped.is_none()
    {
        explanation.push(format!("部件 {} ({case_name}) in grid {place}: a component case goes to the component's own units.", c.code));
    }
    if let Some(rv) = &rule_view {
        explanation.push(rv.why.clone());
    }
    let who = match resolved.unit.role {
        "maintainer" => "the component's maintainer (养护单位)",
        "owner" => "the component's owner (权属单位)",
        "dept" => "the component's competent department (主管部门)",
        "street" => "the street office (属地兜底 / 街道)",
        "chief" => "the grid chief (网格长)",
        _ => "the unit named by the rule",
    };
    if outside {
        explanation.push(format!("Outside the city's grids: the street office of the nearest grid ({place}) takes it (属地兜底): {}.", resolved.unit.name));
    } else if chosen.rule.is_none() && kind == CaseKind::Event {
        explanation
            .push(format!("{kind_zh} {class} {case_name} ({urgency}) has no rule for {place}: the street office takes it (属地兜底): {}.", resolved.unit.name));
    } else {
        explanation.push(format!("Responsible: {} — {who}.", resolved.unit.name));
    }
    explanation.push(format!(
        "Deadline: {limit} from {} → {} (working calendar, China time).",
        reported_at.format("%Y-%m-%d %H:%M"),
        due.format("%Y-%m-%d %H:%M")
    ));
    if chosen.rule.is_none() {
        explanation.push(format!("No rule gives a limit; the fallback limit {} is used.", limit.code()));
    }

    // Candidates in the accuracy disc.
    let candidates: Vec<RouteCandidate<'a>> = if point_candidates.len() > 1 {
        let list: Vec<RouteCandidate<'a>> = point_candidates
            .iter()
            .map(|&(id, d)| {
                let cg = world.city.grid(id);
                let name = if component.is_some() {
                    resolved.unit.name
                } else {
                    let p = pick(set, kind, class, urgency, cg.code, &zones_here, reported_at);
                    match p.rule {
                        _ if no_component_for_class => street_office(world, id).unit.name,
                        Some(r) => resolve(world, &r.unit, id, None, p.zone).unit.name,
                        None => street_office(world, id).unit.name,
                    }
                };
                RouteCandidate { code: cg.code, name: &cg.name, distance_m: d, responsible_unit: name }
            })
            .collect();
        let units: std::collections::BTreeSet<&str> = list.iter().map(|c| c.responsible_unit).collect();
        if case.accuracy_m > 0.0 {
            warnings.push(format!(
                "near_boundary: {} grids are within the {} m accuracy radius ({}); {}",
                list.len(),
                case.accuracy_m,
                list.iter().map(|c| c.code.to_string()).collect::<Vec<_>>().join(", "),
                if units.len() > 1 { "they would go to different units — check the location" } else { "all would go to the same unit" }
            ));
        }
        list
    } else {
        Vec::new()
    };

    let escalation = chosen.rule.and_then(|r| r.escalation.as_deref());
    Ok(RouteAnswer {
        case: CaseView { kind, code: class, name: case_name, urgency },
        dispatcher: dispatcher(world, grid),
        grid: GridRef { code: g.code, name: &g.name },
        area: Area { grid: world.city.grid(resolved.area).code, zone: chosen.zone.map(|z| format!("{}:{}", z.layer, z.id)) },
        chain: lookup::chain(world, grid),
        rule: rule_view,
        deadline: Deadline {
            urgency,
            limit: limit.to_string(),
            limit_code: limit.code(),
            reported_at: reported_at.to_rfc3339(),
            due: due.to_rfc3339(),
            calendar_covers: routing.calendar.years().iter().copied().collect(),
            beyond_calendar: !due_date.unknown_years.is_empty(),
        },
        escalation,
        explanation,
        warnings,
        candidates,
        component: component.map(|c| ComponentRef {
            component: lookup::component_view(world, c),
            distance_m: snapped.as_ref().map(|s| s.0),
            also_near: snapped.map(|s| s.1).unwrap_or_default(),
        }),
        point: case.point,
        outside_coverage: outside,
        responsible_unit: resolved.unit,
        versions: &world.versions,
    })
}
