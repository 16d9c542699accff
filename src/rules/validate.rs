//! 指向唯一: checks that a responsibility list sends every case to exactly one unit.
//!
//! For every case type with rules, every urgency level it has, and every unit grid: exactly
//! one rule without a condition must apply at the highest specificity (no hole, no tie), and
//! no two conditional rules of equal specificity may have overlapping windows. Units, scopes,
//! roles, zone layers and class codes must exist. Errors make the list unusable; warnings do
//! not (e.g. a class with no rule at all, which falls back to the street office, 属地兜底).
//!
//! Scopes are grid codes, and codes outlive names: a new grid layer may give an existing code
//! to another place. A rule with a `scope_name` is checked against the name its scope's grid
//! (or zone polygon) has now (`scope_name_mismatch`, an error); [`renamed_scopes`] compares the
//! names of the scope grids in two cities, for an import to flag.

use std::fmt;

use serde::Serialize;

use super::RulesError;
use super::list::{CaseKind, Role, Rule, RuleSet, Scope, UnitRef, Urgency};
use crate::model::{City, ClassCode, GridCode};

/// How bad an issue is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The list cannot be used.
    Error,
    /// Worth fixing; routing still works.
    Warning,
}

/// One finding, naming the type and the grid it concerns where it has them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Issue {
    pub severity: Severity,
    /// `no_rule`, `conflict`, `unknown_unit`, `unknown_scope`, `unknown_zone`,
    /// `scope_name_mismatch`, `unknown_case_type`, `role_not_applicable`, `type_without_rules`.
    pub code: &'static str,
    pub message: String,
    pub case_kind: Option<CaseKind>,
    pub case_type: Option<String>,
    pub urgency: Option<Urgency>,
    /// The unit grid (or scope grid) concerned.
    pub grid: Option<String>,
    /// The responsibility polygon concerned, `layer:id`.
    pub zone: Option<String>,
    /// CSV line numbers of the rules concerned.
    pub lines: Vec<usize>,
}

/// The result of [`validate`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ValidationReport {
    /// No errors: the list may be used.
    pub ok: bool,
    pub rules: usize,
    pub errors: usize,
    pub warnings: usize,
    pub issues: Vec<Issue>,
}

impl ValidationReport {
    /// The issues of one code.
    pub fn with_code<'a>(&'a self, code: &'a str) -> impl Iterator<Item = &'a Issue> + 'a {
        self.issues.iter().filter(move |i| i.code == code)
    }
}

fn issue(severity: Severity, code: &'static str, message: String, rule: Option<&Rule>) -> Issue {
    Issue {
        severity,
        code,
        message,
        case_kind: rule.map(|r| r.kind),
        case_type: rule.map(|r| r.case_type.to_string()),
        urgency: rule.map(|r| r.urgency),
        grid: None,
        zone: None,
        lines: rule.map(|r| vec![r.line]).unwrap_or_default(),
    }
}

/// The message of `scope_name_mismatch`: the scope is `actual` in the city, the list says `expected`.
fn name_mismatch(r: &Rule, actual: &str, expected: &str) -> String {
    format!(
        "line {}: scope {} is {actual:?} in this city, but the rule's scope_name says {expected:?}: the scope names another place \
         than the list meant (a new grid layer gave the code to another place, or scope_name is misspelt)",
        r.line, r.scope
    )
}

/// Checks `set` against `city` (see the [module documentation](self)). A `zone:` scope must
/// name a zone layer (and id) of the city's responsibility polygons.
pub fn validate(set: &RuleSet, city: &City) -> ValidationReport {
    let mut issues = Vec::new();
    let unit_grids: Vec<&crate::model::Grid> = city.grids_at(city.hierarchy.unit_level()).map(|(_, g)| g).collect();

    for r in &set.rules {
        let table = match r.kind {
            CaseKind::Event => &city.event_classes,
            CaseKind::Component => &city.component_classes,
        };
        if table.get(r.case_type).is_none() {
            issues.push(issue(
                Severity::Error,
                "unknown_case_type",
                format!("line {}: {} class {} is not in the class table", r.line, r.kind.as_str(), r.case_type),
                Some(r),
            ));
        }
        match &r.scope {
            Scope::Grid(code) if city.grid_by_code(*code).is_none() => {
                let mut i = issue(Severity::Error, "unknown_scope", format!("line {}: scope {code} is not a grid of this city", r.line), Some(r));
                i.grid = Some(code.to_string());
                issues.push(i);
            }
            Scope::Grid(code) => {
                let name = &city.grid(city.grid_by_code(*code).expect("checked above")).name;
                if let Some(expected) = r.scope_name.as_deref().filter(|e| e.trim() != name.trim()) {
                    let mut i = issue(Severity::Error, "scope_name_mismatch", name_mismatch(r, name, expected), Some(r));
                    i.grid = Some(code.to_string());
                    issues.push(i);
                }
            }
            Scope::Zone { layer, id } => {
                let zone = id.as_ref().and_then(|id| city.zones.iter().find(|z| &z.layer == layer && &z.id == id));
                if let (Some(z), Some(expected)) = (zone, r.scope_name.as_deref())
                    && expected.trim() != z.name.trim()
                {
                    let mut i = issue(Severity::Error, "scope_name_mismatch", name_mismatch(r, &z.name, expected), Some(r));
                    i.zone = Some(format!("{layer}:{}", z.id));
                    issues.push(i);
                }
                let mut in_layer = city.zones.iter().filter(|z| &z.layer == layer).peekable();
                let missing = if in_layer.peek().is_none() {
                    let mut layers: Vec<&str> = city.zones.iter().map(|z| z.layer.as_str()).collect();
                    layers.dedup();
                    Some(format!(
                        "zone layer {layer:?} is not in the data directory (zone layers: {})",
                        if layers.is_empty() { "none".to_owned() } else { layers.join(", ") }
                    ))
                } else {
                    id.as_ref().filter(|id| !in_layer.any(|z| &z.id == *id)).map(|id| format!("zone layer {layer:?} has no zone {id:?}"))
                };
                if let Some(why) = missing {
                    issues.push(issue(Severity::Error, "unknown_zone", format!("line {}: {why}", r.line), Some(r)));
                }
            }
            _ => {}
        }
        let names = std::iter::once(match &r.unit {
            UnitRef::Named(n) => Some(n.as_str()),
            UnitRef::Role(_) => None,
        })
        .chain(std::iter::once(r.escalation.as_deref()))
        .flatten();
        for name in names {
            if city.units.find(name).is_none() {
                issues.push(issue(Severity::Error, "unknown_unit", format!("line {}: unit {name:?} is not in the unit register", r.line), Some(r)));
            }
        }
        if let UnitRef::Role(role) = r.unit {
            let wrong = match role {
                Role::Maintainer | Role::Owner | Role::Dept => r.kind == CaseKind::Event,
                Role::Zone => !matches!(r.scope, Scope::Zone { .. }),
                Role::Street | Role::Chief => false,
            };
            if wrong {
                issues.push(issue(
                    Severity::Error,
                    "role_not_applicable",
                    format!(
                        "line {}: role {} does not apply to a{} {} rule",
                        r.line,
                        role.as_str(),
                        if r.kind == CaseKind::Event { "n" } else { "" },
                        r.kind.as_str()
                    ),
                    Some(r),
                ));
            }
        }
    }

    // Uniqueness per (kind, type, urgency) and unit grid.
    let mut groups: Vec<(CaseKind, ClassCode, Urgency)> = set.rules.iter().map(|r| (r.kind, r.case_type, r.urgency)).collect();
    groups.sort();
    groups.dedup();
    for (kind, class, urgency) in groups {
        let group: Vec<&Rule> = set.rules.iter().filter(|r| r.kind == kind && r.case_type == class && r.urgency == urgency).collect();
        for g in &unit_grids {
            let applicable: Vec<&Rule> = group.iter().copied().filter(|r| applies_to_grid(r, g.code)).collect();
            let plain: Vec<&Rule> = applicable.iter().copied().filter(|r| r.condition.is_none()).collect();
            let name = &group[0].case_name;
            let place = format!("grid {} {}", g.code, g.name);
            let mut push = |code: &'static str, message: String, lines: Vec<usize>| {
                issues.push(Issue {
                    severity: Severity::Error,
                    code,
                    message,
                    case_kind: Some(kind),
                    case_type: Some(class.to_string()),
                    urgency: Some(urgency),
                    grid: Some(g.code.to_string()),
                    zone: None,
                    lines,
                })
            };
            match plain.iter().map(|r| r.specificity()).max() {
                None => push(
                    "no_rule",
                    format!("{} {class} {name} ({urgency}) in {place}: no rule applies (the type has rules for other areas)", kind.as_str()),
                    group.iter().map(|r| r.line).collect(),
                ),
                Some(best) => {
                    let top: Vec<usize> = plain.iter().filter(|r| r.specificity() == best).map(|r| r.line).collect();
                    if top.len() > 1 {
                        push("conflict", format!("{} {class} {name} ({urgency}) in {place}: lines {top:?} apply with equal specificity", kind.as_str()), top);
                    }
                }
            }
            let conditional: Vec<&Rule> = applicable.iter().copied().filter(|r| r.condition.is_some()).collect();
            for (i, a) in conditional.iter().enumerate() {
                for b in &conditional[i + 1..] {
                    if a.specificity() == b.specificity() && windows_overlap(a, b) {
                        push(
                            "conflict",
                            format!(
                                "{} {class} {name} ({urgency}) in {place}: lines {} and {} have overlapping conditions at equal specificity",
                                kind.as_str(),
                                a.line,
                                b.line
                            ),
                            vec![a.line, b.line],
                        );
                    }
                }
            }
        }
    }

    check_zone_ties(set, city, &mut issues);

    // Classes without any rule: routed to the street office (events) or the component's own units.
    for (kind, table) in [(CaseKind::Event, &city.event_classes), (CaseKind::Component, &city.component_classes)] {
        for e in table.subclasses() {
            if set.of_type(kind, e.code).next().is_none() {
                issues.push(Issue {
                    severity: Severity::Warning,
                    code: "type_without_rules",
                    message: format!(
                        "{} {} {} has no rule: it falls back to the street office (属地兜底) or, for a component, to its own units",
                        kind.as_str(),
                        e.code,
                        e.name
                    ),
                    case_kind: Some(kind),
                    case_type: Some(e.code.to_string()),
                    urgency: None,
                    grid: None,
                    zone: None,
                    lines: Vec::new(),
                });
            }
        }
    }

    let errors = issues.iter().filter(|i| i.severity == Severity::Error).count();
    ValidationReport { ok: errors == 0, rules: set.rules.len(), errors, warnings: issues.len() - errors, issues }
}

/// Zone rules: in every zone, at most one unconditional rule of a type and urgency may apply
/// at the top specificity, also where zones of two layers overlap.
fn check_zone_ties(set: &RuleSet, city: &City, issues: &mut Vec<Issue>) {
    use geo::{BoundingRect, Intersects};
    let zone_rules: Vec<&Rule> = set.rules.iter().filter(|r| matches!(r.scope, Scope::Zone { .. }) && r.condition.is_none()).collect();
    if zone_rules.is_empty() {
        return;
    }
    let matches = |r: &Rule, z: &crate::model::Zone| match &r.scope {
        Scope::Zone { layer, id } => &z.layer == layer && id.as_ref().is_none_or(|id| &z.id == id),
        _ => false,
    };
    // Places to check: each zone alone, and each overlapping pair of zones of two layers.
    let mut places: Vec<Vec<&crate::model::Zone>> = city.zones.iter().map(|z| vec![z]).collect();
    let boxes: Vec<_> = city.zones.iter().map(|z| z.geometry.bounding_rect()).collect();
    for (i, a) in city.zones.iter().enumerate() {
        for (j, b) in city.zones.iter().enumerate().skip(i + 1) {
            if a.layer != b.layer && matches!((boxes[i], boxes[j]), (Some(x), Some(y)) if x.intersects(&y)) && a.geometry.intersects(&b.geometry) {
                places.push(vec![a, b]);
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for place in places {
        let mut groups: std::collections::BTreeMap<(CaseKind, ClassCode, Urgency), Vec<&Rule>> = Default::default();
        for r in zone_rules.iter().copied().filter(|r| place.iter().any(|z| matches(r, z))) {
            groups.entry((r.kind, r.case_type, r.urgency)).or_default().push(r);
        }
        for ((kind, class, urgency), rules) in groups {
            let best = rules.iter().map(|r| r.specificity()).max().expect("non-empty");
            let top: Vec<usize> = rules.iter().filter(|r| r.specificity() == best).map(|r| r.line).collect();
            if top.len() > 1 && seen.insert(top.clone()) {
                let zones: Vec<String> = place.iter().map(|z| format!("{}:{}", z.layer, z.id)).collect();
                issues.push(Issue {
                    severity: Severity::Error,
                    code: "conflict",
                    message: format!(
                        "{} {class} {} ({urgency}) in zone {}: lines {top:?} apply with equal specificity",
                        kind.as_str(),
                        rules[0].case_name,
                        zones.join(" ∩ ")
                    ),
                    case_kind: Some(kind),
                    case_type: Some(class.to_string()),
                    urgency: Some(urgency),
                    grid: None,
                    zone: Some(zones.join(" ∩ ")),
                    lines: top,
                });
            }
        }
    }
}

/// A rule whose grid-code scope is in two cities under two names ([`renamed_scopes`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RenamedScope {
    /// Line of the rule in the CSV file (header = 1).
    pub line: usize,
    /// The scope's grid code.
    pub scope: String,
    /// The grid's name in the old city and in the new one, as stored (compared trimmed).
    pub old_name: String,
    pub new_name: String,
}

impl fmt::Display for RenamedScope {
    /// `line 158: scope 320506001 was "长桥街道", now "长桥新区" — the code names another place`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: scope {} was {:?}, now {:?} — the code names another place; check the rule still belongs there",
            self.line, self.scope, self.old_name, self.new_name
        )
    }
}

/// The rules of `rules_csv` whose scope is a grid code that exists in both `old` and `new`
/// with a different name (trimmed comparison), in file order: one entry per rule. A new grid
/// layer that reuses a code for another place leaves such a rule valid — it still names a grid
/// — but aimed at the wrong area; codes that disappeared are [`validate`]'s `unknown_scope`,
/// and are not listed here, nor are zone scopes or city-wide rules. The list is read with the
/// old city's code scheme; a list that does not read is the `Err` of [`RuleSet::parse`].
pub fn renamed_scopes(rules_csv: &str, old: &City, new: &City) -> Result<Vec<RenamedScope>, RulesError> {
    let set = RuleSet::parse(rules_csv, old)?;
    Ok(set
        .rules
        .iter()
        .filter_map(|r| {
            let Scope::Grid(code) = r.scope else { return None };
            let old_name = &old.grid(old.grid_by_code(code)?).name;
            let new_name = &new.grid(new.grid_by_code(code)?).name;
            (old_name.trim() != new_name.trim()).then(|| RenamedScope {
                line: r.line,
                scope: code.to_string(),
                old_name: old_name.clone(),
                new_name: new_name.clone(),
            })
        })
        .collect())
}

/// Whether a rule's scope covers a whole unit grid (a zone rule never does: it covers only
/// the points inside its polygons, and the grid's own rule answers elsewhere).
pub(crate) fn applies_to_grid(r: &Rule, grid: GridCode) -> bool {
    match &r.scope {
        Scope::City => true,
        Scope::Grid(code) => grid.extends(*code),
        Scope::Zone { .. } => false,
    }
}

/// Whether two conditional rules' windows share a minute (sampled per minute of the day).
fn windows_overlap(a: &Rule, b: &Rule) -> bool {
    let (Some(x), Some(y)) = (a.condition, b.condition) else { return false };
    (0..24 * 60).any(|m| {
        let t = chrono::NaiveTime::from_num_seconds_from_midnight_opt(m * 60, 0).expect("valid");
        x.contains(t) && y.contains(t)
    })
}
