//! The demo's default responsibility list (责任清单) as CSV.
//!
//! Columns: `case_kind,case_type,case_name,scope,unit,urgency,time_limit,escalation`.
//! `scope` is empty for the whole district or a grid code prefix (street or community);
//! `unit` is a unit name or a role: `@maintainer`, `@owner`, `@dept` (the component's units),
//! `@street` (the grid's street office), `@chief` (the grid chief).

use super::catalog::{CityKind, EVENT_RULES, Handler, NORMAL, U, URGENT, event_fallback, sanitation_station, unit};
use crate::model::{ClassCode, ClassTable};

pub(crate) const HEADER: [&str; 8] = ["case_kind", "case_type", "case_name", "scope", "unit", "urgency", "time_limit", "escalation"];

/// A responsibility polygon as the rules see it.
pub(crate) struct ZoneRef<'a> {
    pub layer: &'a str,
    pub id: &'a str,
}

/// A street as the rules see it.
pub(crate) struct StreetRef<'a> {
    pub code: &'a str,
    pub name: &'a str,
    pub town: bool,
    /// Code of its first community.
    pub first_community: &'a str,
}

struct Row {
    kind: &'static str,
    class: ClassCode,
    name: String,
    scope: String,
    unit: String,
    urgency: &'static str,
    limit: &'static str,
    escalation: String,
}

/// The responsibility list and the unit names it introduces (street-level units that no
/// component names), so the caller can register them.
pub(crate) fn rules(city: CityKind, streets: &[StreetRef<'_>], zones: &[ZoneRef<'_>]) -> (String, Vec<String>) {
    let bureau = unit(city, U::Bureau).to_owned();
    let emergency = unit(city, U::Emergency).to_owned();
    let events = ClassTable::builtin_events();
    let components = ClassTable::builtin_components();
    let mut rows = Vec::new();
    let handler = |h: Handler| match h {
        Handler::Unit(u) => unit(city, u).to_owned(),
        Handler::Role(r) => r.to_owned(),
    };
    for e in events.subclasses().filter(|e| e.code.major() != 21) {
        let code = e.code.to_string();
        let mut found: Vec<(Handler, &'static str, &'static str)> = EVENT_RULES.iter().filter(|r| r.0 == code).map(|r| (r.1, r.2, r.3)).collect();
        if found.is_empty() {
            found.push(event_fallback(e.code.major()));
        }
        for (h, urgency, limit) in found {
            let escalation = if e.code.major() == 4 { emergency.clone() } else { bureau.clone() };
            rows.push(Row { kind: "event", class: e.code, name: e.name.clone(), scope: String::new(), unit: handler(h), urgency, limit, escalation });
        }
    }
    for c in components.subclasses().filter(|c| c.code.major() != 21) {
        let code = c.code.to_string();
        let cover = c.code.major() == 1 && matches!(c.code.minor(), 1..=12 | 14 | 15 | 32);
        let (role, limit) = match code.as_str() {
            "0106" | "0118" => ("@maintainer", "3wd"),
            "0210" | "0214" => ("@maintainer", "1wd"),
            "0307" | "0310" => ("@owner", "5wd"),
            "0401" => ("@dept", "2wd"),
            _ if cover => ("@maintainer", "1wd"),
            _ => ("@maintainer", "5wd"),
        };
        let row = |urgency, limit| Row {
            kind: "component",
            class: c.code,
            name: c.name.clone(),
            scope: String::new(),
            unit: role.to_owned(),
            urgency,
            limit,
            escalation: bureau.clone(),
        };
        rows.push(row(NORMAL, limit));
        // A missing cover or a dark traffic light is urgent.
        if cover || code == "0210" || code == "0214" {
            rows.push(row(URGENT, "2wh"));
        }
    }

    // Local overrides.
    let mut local_units = Vec::new();
    let event = |code: &str| {
        let c = ClassCode::parse(code).expect("valid code");
        (c, events.get(c).expect("built-in event class").name.clone())
    };
    let mut local = |code: &str, scope: &str, unit: String, limit: &'static str| {
        let (class, name) = event(code);
        if !unit.starts_with('@') {
            local_units.push(unit.clone());
        }
        rows.push(Row { kind: "event", class, name, scope: scope.to_owned(), unit, urgency: NORMAL, limit, escalation: bureau.clone() });
    };
    if let Some(s) = streets.first() {
        // This street's own sanitation station clears exposed garbage.
        local("0102", s.code, sanitation_station(s.name), "4wh");
        // In its first community the grid chief sorts out parked bicycles.
        local("0506", s.first_community, "@chief".to_owned(), "4wh");
    }
    if let Some(s) = streets.get(1) {
        local("0504", s.code, format!("{}综合执法队", s.name), "4wh");
    }
    if let Some(s) = streets.iter().find(|s| s.town) {
        local("0101", s.code, format!("{}综合行政执法局", s.name), "20wd");
    } else if let Some(s) = streets.get(2) {
        local("0201", s.code, sanitation_station(s.name), "1wd");
    }

    // Responsibility polygons, last so the lines above keep their numbers: a road collapse on
    // a main-road section goes to that section's unit; the first east–west section is swept by
    // the road-sweeping team.
    if let Some(layer) = zones.first().map(|z| z.layer) {
        let (class, name) = event("0401");
        rows.push(Row {
            kind: "event",
            class,
            name,
            scope: format!("zone:{layer}"),
            unit: "@zone".to_owned(),
            urgency: URGENT,
            limit: "4wh",
            escalation: emergency.clone(),
        });
    }
    if let Some(z) = zones.iter().find(|z| z.id.starts_with("EW")) {
        let team = super::zones::sweeping_team(city);
        local_units.push(team.clone());
        let (class, name) = event("0104");
        rows.push(Row {
            kind: "event",
            class,
            name,
            scope: format!("zone:{}:{}", z.layer, z.id),
            unit: team,
            urgency: NORMAL,
            limit: "2wh",
            escalation: bureau.clone(),
        });
    }

    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(HEADER).expect("write to memory");
    for r in &rows {
        let class = r.class.to_string();
        w.write_record([r.kind, &class, &r.name, &r.scope, &r.unit, r.urgency, r.limit, &r.escalation]).expect("write to memory");
    }
    let bytes = w.into_inner().expect("flush to memory");
    let mut units: Vec<String> = rows.iter().map(|r| r.escalation.clone()).collect();
    units.extend(local_units);
    units.extend(rows.iter().filter(|r| !r.unit.starts_with('@')).map(|r| r.unit.clone()));
    let mut seen = std::collections::HashSet::new();
    units.retain(|u| seen.insert(u.clone()));
    (String::from_utf8(bytes).expect("UTF-8"), units)
}
