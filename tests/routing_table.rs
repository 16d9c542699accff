//! The routing acceptance table: `fixtures/routing/expected.csv`, over the tiny demo city
//! (seed 1). Each row is a case and the unit, grid, highlighted area, rule line, deadline and
//! warning it must get, with the reason checked by hand (`why`).
//!
//! The rows were made by `generate_rows` (run with `--ignored --nocapture`), which picks
//! points from the city and computes each expectation with independent oracles — brute-force
//! point-in-polygon with geo, a brute-force nearest component, prefix matching on the raw
//! CSV lines, deadlines from a hand-computed table — never with `citygrid::routing`. The
//! file is then frozen: a change in the code that changes an answer fails here.

mod common;

use std::collections::BTreeMap;

use chrono::DateTime;
use geo::coordinate_position::{CoordPos, CoordinatePosition};
use geo::{Closest, Distance, Haversine, HaversineClosestPoint, InteriorPoint};
use geo_types::{Coord, Point};

use citygrid::crs::Datum;
use citygrid::http::error::ApiError;
use citygrid::lookup::PointEcho;
use citygrid::model::{City, Component, GridId};
use citygrid::routing::{CaseInput, CaseSubject, Urgency, route};
use citygrid::world::World;

const TABLE: &str = include_str!("../fixtures/routing/expected.csv");
const COLUMNS: [&str; 19] = [
    "id",
    "lon",
    "lat",
    "crs",
    "accuracy",
    "event_type",
    "component_class",
    "component_code",
    "urgency",
    "reported_at",
    "status",
    "error",
    "unit",
    "grid",
    "area",
    "rule_line",
    "due",
    "warning",
    "why",
];

#[test]
fn every_row_of_the_acceptance_table_routes_as_expected() {
    let dir = tempfile::tempdir().unwrap();
    let world = common::tiny_world(dir.path()).load();
    let mut reader = csv::Reader::from_reader(TABLE.as_bytes());
    assert_eq!(reader.headers().unwrap().iter().collect::<Vec<_>>(), COLUMNS);
    let now = DateTime::parse_from_rfc3339("2026-11-23T10:00:00+08:00").unwrap();
    let mut failures = Vec::new();
    let mut n = 0;
    for rec in reader.records() {
        let rec = rec.unwrap();
        let row: BTreeMap<&str, &str> = COLUMNS.iter().copied().zip(rec.iter()).collect();
        n += 1;
        let id = row["id"];
        let f = |k: &str| -> Option<f64> { Some(row[k]).filter(|v| !v.is_empty()).map(|v| v.parse().unwrap()) };
        let s = |k: &str| -> Option<String> { Some(row[k]).filter(|v| !v.is_empty()).map(str::to_owned) };
        let crs: Datum = s("crs").map(|c| c.parse().unwrap()).unwrap_or_default();
        let point = match (f("lon"), f("lat")) {
            (Some(lon), Some(lat)) => Some(PointEcho::new(lon, lat, crs).unwrap()),
            _ => None,
        };
        let subject = match (s("event_type"), s("component_class"), s("component_code")) {
            (Some(t), _, _) => CaseSubject::Event(t),
            (_, Some(c), _) => CaseSubject::ComponentClass(c),
            (_, _, Some(c)) => CaseSubject::Component(c),
            _ => panic!("{id}: no subject"),
        };
        let case = CaseInput {
            point,
            accuracy_m: f("accuracy").unwrap_or(0.0),
            subject,
            urgency: s("urgency").map(|u| Urgency::parse(&u).unwrap()),
            reported_at: s("reported_at").map(|t| DateTime::parse_from_rfc3339(&t).unwrap()),
        };
        let mut check = |what: &str, expected: &str, got: String| {
            if !expected.is_empty() && expected != got {
                failures.push(format!("{id} {what}: expected {expected:?}, got {got:?} ({})", row["why"]));
            }
        };
        match route(&world, &case, now) {
            Ok(a) => {
                check("status", row["status"], "200".into());
                check("unit", row["unit"], a.responsible_unit.name.to_owned());
                check("grid", row["grid"], a.grid.code.to_string());
                check("area", row["area"], a.area.grid.to_string());
                check("rule_line", row["rule_line"], a.rule.as_ref().map(|r| r.line.to_string()).unwrap_or("none".into()));
                check("due", row["due"], a.deadline.due.clone());
                let w = row["warning"];
                if w.is_empty() || w == "none" {
                    if w == "none" && !a.warnings.is_empty() {
                        failures.push(format!("{id}: expected no warning, got {:?}", a.warnings));
                    }
                } else if !a.warnings.iter().any(|x| x.starts_with(w)) {
                    failures.push(format!("{id}: expected a {w} warning, got {:?}", a.warnings));
                }
            }
            Err(e) => {
                let e = ApiError::from(e);
                check("status", row["status"], e.status.as_u16().to_string());
                check("error", row["error"], e.code.to_owned());
            }
        }
    }
    assert!(n >= 60, "only {n} rows");
    assert!(failures.is_empty(), "{} of {n} rows fail:\n{}", failures.len(), failures.join("\n"));
}

// ---------------------------------------------------------------------------------------
// The generator and its independent oracles.

/// Deadlines computed by hand (calendar: 08:30–12:00, 13:30–17:30; 2026 holidays).
const DUE: &[(&str, &str, &str)] = &[
    // Monday 23 Nov 10:00.
    ("2026-11-23T10:00:00+08:00", "1wh", "2026-11-23T11:00:00+08:00"),
    ("2026-11-23T10:00:00+08:00", "2wh", "2026-11-23T12:00:00+08:00"),
    ("2026-11-23T10:00:00+08:00", "4wh", "2026-11-23T15:30:00+08:00"),
    ("2026-11-23T10:00:00+08:00", "1wd", "2026-11-24T17:30:00+08:00"),
    ("2026-11-23T10:00:00+08:00", "2wd", "2026-11-25T17:30:00+08:00"),
    ("2026-11-23T10:00:00+08:00", "3wd", "2026-11-26T17:30:00+08:00"),
    ("2026-11-23T10:00:00+08:00", "5wd", "2026-11-30T17:30:00+08:00"),
    ("2026-11-23T10:00:00+08:00", "20wd", "2026-12-21T17:30:00+08:00"),
    ("2026-11-23T10:00:00+08:00", "3cd", "2026-11-26T10:00:00+08:00"),
    ("2026-11-23T10:00:00+08:00", "7cd", "2026-11-30T10:00:00+08:00"),
    // Friday 20 Nov 17:00: half an hour left on Friday.
    ("2026-11-20T17:00:00+08:00", "4wh", "2026-11-23T12:00:00+08:00"),
    ("2026-11-20T17:00:00+08:00", "2wh", "2026-11-23T10:00:00+08:00"),
    // Wednesday 30 Sep 16:30: 1 h left, then National Day 1–7 Oct; 10 Oct is a make-up Saturday.
    ("2026-09-30T16:30:00+08:00", "4wh", "2026-10-08T11:30:00+08:00"),
    ("2026-09-30T16:30:00+08:00", "1wd", "2026-10-08T17:30:00+08:00"),
    ("2026-09-30T16:30:00+08:00", "3wd", "2026-10-10T17:30:00+08:00"),
    // Friday 9 Oct 17:00: the next day is the make-up Saturday.
    ("2026-10-09T17:00:00+08:00", "4wh", "2026-10-10T12:00:00+08:00"),
    ("2026-10-09T17:00:00+08:00", "1wd", "2026-10-10T17:30:00+08:00"),
    // Saturday 21 Nov 22:00 (weekend night): the clock starts Monday 08:30.
    ("2026-11-21T22:00:00+08:00", "4wh", "2026-11-23T14:00:00+08:00"),
    // Monday 23 Nov 06:00 (before work).
    ("2026-11-23T06:00:00+08:00", "4wh", "2026-11-23T14:00:00+08:00"),
    // Saturday 14 Feb 16:00, a make-up working day: 1.5 h, Spring Festival 15–23 Feb, Tue 24 Feb 08:30 + 2.5 h.
    ("2026-02-14T16:00:00+08:00", "4wh", "2026-02-24T11:00:00+08:00"),
    // Tuesday 8 Dec 2026 + 20 wd: 9–11, 14–18, 21–25, 28–31 Dec (17), Friday 1 Jan 2027 (18: 2027's
    // holidays are not in the calendar, so it counts as a weekday), 4 and 5 Jan.
    ("2026-12-08T10:00:00+08:00", "20wd", "2027-01-05T17:30:00+08:00"),
];

fn due_of(at: &str, limit: &str) -> String {
    DUE.iter().find(|d| d.0 == at && d.1 == limit).unwrap_or_else(|| panic!("no hand-computed deadline for {at} + {limit}")).2.to_owned()
}

struct RawRule {
    line: usize,
    kind: String,
    class: String,
    scope: String,
    unit: String,
    urgency: String,
    limit: String,
}

fn raw_rules(csv: &str) -> Vec<RawRule> {
    csv.lines()
        .enumerate()
        .skip(1)
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let f: Vec<&str> = l.split(',').collect();
            RawRule { line: i + 1, kind: f[0].into(), class: f[1].into(), scope: f[3].into(), unit: f[4].into(), urgency: f[5].into(), limit: f[6].into() }
        })
        .collect()
}

/// Brute force: the unit grids whose closed polygon contains `p`, codes ascending.
fn containing(city: &City, p: Coord<f64>) -> Vec<GridId> {
    let unit = city.hierarchy.unit_level();
    let mut v: Vec<GridId> = city.grids_at(unit).filter(|(_, g)| g.geometry.coordinate_position(&p) != CoordPos::Outside).map(|(id, _)| id).collect();
    v.sort_by_key(|&g| city.grid(g).code);
    v
}

fn edge_distance(city: &City, g: GridId, p: Coord<f64>) -> f64 {
    let mut best = f64::INFINITY;
    for poly in &city.grid(g).geometry.0 {
        for line in poly.exterior().lines() {
            if let Closest::Intersection(q) | Closest::SinglePoint(q) = line.haversine_closest_point(&Point::from(p)) {
                best = best.min(Haversine.distance(Point::from(p), q));
            }
        }
    }
    best
}

struct Gen<'a> {
    world: &'a World,
    rules: Vec<RawRule>,
    rows: Vec<Vec<String>>,
}

struct Expect {
    unit: String,
    grid: GridId,
    area: String,
    line: String,
    limit: String,
    why: String,
}

impl Gen<'_> {
    fn city(&self) -> &City {
        &self.world.city
    }
    fn street(&self, g: GridId) -> GridId {
        self.city().chain(g)[1]
    }
    fn street_office(&self, g: GridId) -> String {
        let s = self.street(g);
        self.city().units.get(self.city().grid(s).unit.unwrap()).name.clone()
    }
    fn unit_name(&self, id: Option<citygrid::model::UnitId>) -> Option<String> {
        id.map(|u| self.city().units.get(u).name.clone())
    }
    fn levels(&self, kind: &str, class: &str) -> Vec<String> {
        let mut v: Vec<String> = self.rules.iter().filter(|r| r.kind == kind && r.class == class).map(|r| r.urgency.clone()).collect();
        v.sort_by_key(|u| ["一般", "紧急", "非常紧急"].iter().position(|x| x == u));
        v.dedup();
        v
    }
    /// The oracle: most specific raw rule by scope prefix length; its unit resolved.
    fn expect(&self, kind: &str, class: &str, urgency: Option<&str>, g: GridId, component: Option<&Component>) -> Expect {
        let levels = self.levels(kind, class);
        let urgency = urgency.map(str::to_owned).unwrap_or_else(|| levels[0].clone());
        let code = self.city().grid(g).code.to_string();
        let mut applicable: Vec<&RawRule> =
            self.rules.iter().filter(|r| r.kind == kind && r.class == class && r.urgency == urgency && code.starts_with(&r.scope)).collect();
        applicable.sort_by_key(|r| std::cmp::Reverse(r.scope.len()));
        let r = applicable[0];
        if applicable.len() > 1 {
            assert_ne!(applicable[1].scope.len(), r.scope.len(), "tie");
        }
        let street_code = self.city().grid(self.street(g)).code.to_string();
        let (unit, area, who) = match r.unit.as_str() {
            "@street" => (self.street_office(g), street_code, "the street office".to_owned()),
            "@chief" => (self.city().grid(g).chief.as_ref().unwrap().name.clone(), code.clone(), "the unit grid's chief".to_owned()),
            "@maintainer" | "@owner" | "@dept" if component.is_none() => (String::new(), code.clone(), "(no component)".to_owned()),
            "@maintainer" | "@owner" | "@dept" => {
                let c = component.unwrap();
                let (name, role) = match r.unit.as_str() {
                    "@maintainer" => (self.unit_name(c.maintainer), "maintainer"),
                    "@owner" => (self.unit_name(c.owner), "owner"),
                    _ => (self.unit_name(c.dept), "dept"),
                };
                (name.expect("the demo records all three units"), code.clone(), format!("the component's {role}"))
            }
            named => (named.to_owned(), code.clone(), "the named unit".to_owned()),
        };
        let beaten = applicable.get(1).map(|b| format!(", beats line {} (scope {:?})", b.line, b.scope)).unwrap_or_default();
        let scope = if r.scope.is_empty() { "city-wide".to_owned() } else { format!("scope {}", r.scope) };
        Expect {
            unit,
            grid: g,
            area,
            line: r.line.to_string(),
            limit: r.limit.clone(),
            why: format!("{kind} {class} {urgency} in {code}: line {} ({scope}{beaten}) → {who}", r.line),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        id: &str,
        p: Option<(f64, f64)>,
        crs: &str,
        accuracy: &str,
        subject: (&str, &str),
        urgency: &str,
        at: &str,
        e: Result<(&Expect, &str), (&str, &str)>,
        why: &str,
    ) {
        let (lon, lat) = p.map(|(x, y)| (format!("{x}"), format!("{y}"))).unwrap_or_default(); // shortest round-trip: vertices stay exact
        let mut row = vec![id.to_owned(), lon, lat, crs.into(), accuracy.into()];
        for k in ["event_type", "component_class", "component_code"] {
            row.push(if subject.0 == k { subject.1.to_owned() } else { String::new() });
        }
        row.extend([urgency.to_owned(), at.to_owned()]);
        match e {
            Ok((x, warning)) => row.extend([
                "200".into(),
                String::new(),
                x.unit.clone(),
                self.city().grid(x.grid).code.to_string(),
                x.area.clone(),
                x.line.clone(),
                due_of(at, &x.limit),
                warning.to_owned(),
                format!("{}{}", x.why, if why.is_empty() { String::new() } else { format!("; {why}") }),
            ]),
            Err((status, code)) => row.extend([
                status.into(),
                code.into(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                why.to_owned(),
            ]),
        }
        self.rows.push(row);
    }
}

fn interior(city: &City, g: GridId) -> (f64, f64) {
    let p = city.grid(g).geometry.interior_point().unwrap().0;
    (p.x, p.y)
}

#[test]
#[ignore = "generator: prints the rows of fixtures/routing/expected.csv"]
fn generate_rows() {
    let dir = tempfile::tempdir().unwrap();
    let world = common::tiny_world(dir.path()).load();
    let city = &world.city;
    let mut g = Gen { world: &world, rules: raw_rules(world.rules_csv.as_deref().unwrap()), rows: Vec::new() };
    let unit = city.hierarchy.unit_level();
    let grids: Vec<GridId> = {
        let mut v: Vec<GridId> = city.grids_at(unit).map(|(id, _)| id).collect();
        v.sort_by_key(|&id| city.grid(id).code);
        v
    };
    let first_in = |prefix: &str| *grids.iter().find(|&&id| city.grid(id).code.to_string().starts_with(prefix)).unwrap();
    let a = first_in("320506001001"); // 长桥街道, its first community (0506 → @chief there)
    let b = first_in("320506001002"); // 长桥街道, another community
    let c = first_in("320506002"); // 郭巷街道
    let d = first_in("320506101"); // 木渎镇
    let t1 = "2026-11-23T10:00:00+08:00";

    // Event cases at interior points.
    let ev: &[(&str, &str, GridId, &str)] = &[
        ("0102", "", a, "street override"),
        ("0102", "", b, "street override, other community"),
        ("0102", "", c, "no override in 郭巷"),
        ("0102", "", d, "no override in 木渎"),
        ("0102", "紧急", a, "the override is for 一般 only"),
        ("0102", "紧急", c, ""),
        ("0506", "", a, "community override → the grid chief"),
        ("0506", "", b, "outside the community → street office"),
        ("0506", "", c, ""),
        ("0506", "", d, ""),
        ("0504", "", c, "郭巷 override"),
        ("0504", "", a, ""),
        ("0504", "", d, ""),
        ("0101", "", d, "木渎镇 (a town) override"),
        ("0101", "", a, "city-wide @street"),
        ("0101", "", c, "city-wide @street"),
        ("0101", "紧急", d, "the town override is for 一般 only"),
        ("0401", "", c, "0401 has no 一般: default urgency is 紧急"),
        ("0401", "非常紧急", c, ""),
        ("0107", "", c, "calendar days"),
        ("0110", "", b, "calendar days"),
        ("0199", "", d, "other events → street office"),
        ("0305", "", b, ""),
        ("0508", "", d, ""),
    ];
    for (i, &(t, u, grid, why)) in ev.iter().enumerate() {
        let x = g.expect("event", t, Some(u).filter(|u| !u.is_empty()), grid, None);
        g.push(&format!("E{:02}", i + 1), Some(interior(city, grid)), "", "", ("event_type", t), u, t1, Ok((&x, "none")), why);
    }
    g.push("E90", Some(interior(city, c)), "", "", ("event_type", "0401"), "一般", t1, Err(("400", "invalid_parameter")), "0401 has no 一般 limit");
    g.push("E91", Some(interior(city, c)), "", "", ("event_type", "0188"), "", t1, Err(("400", "unknown_case_type")), "0188 is not in the event table");
    g.push("E92", Some(interior(city, c)), "", "", ("event_type", "01x2"), "", t1, Err(("400", "invalid_parameter")), "malformed type code");

    // Deadlines.
    let dl: &[(&str, &str, GridId, &str, &str)] = &[
        ("0102", "", a, "2026-11-20T17:00:00+08:00", "Friday 17:00 + 4 wh → Monday 12:00"),
        ("0102", "紧急", c, "2026-11-20T17:00:00+08:00", "Friday 17:00 + 2 wh → Monday 10:00"),
        ("0102", "", a, "2026-09-30T16:30:00+08:00", "across National Day"),
        ("0103", "", c, "2026-09-30T16:30:00+08:00", "1 wd across National Day"),
        ("0199", "", d, "2026-09-30T16:30:00+08:00", "3 wd: 8, 9 and the make-up Saturday 10 Oct"),
        ("0102", "", b, "2026-10-09T17:00:00+08:00", "into the make-up Saturday"),
        ("0103", "", c, "2026-10-09T17:00:00+08:00", "1 wd = the make-up Saturday"),
        ("0102", "", a, "2026-11-21T22:00:00+08:00", "reported on a weekend night"),
        ("0102", "", a, "2026-11-23T06:00:00+08:00", "reported before work"),
        ("0102", "", a, "2026-02-14T16:00:00+08:00", "reported on the make-up Saturday before the Spring Festival"),
        ("0101", "", d, t1, "20 working days"),
    ];
    for (i, &(t, u, grid, at, why)) in dl.iter().enumerate() {
        let x = g.expect("event", t, Some(u).filter(|u| !u.is_empty()), grid, None);
        g.push(&format!("D{:02}", i + 1), Some(interior(city, grid)), "", "", ("event_type", t), u, at, Ok((&x, "none")), why);
    }
    // Past the calendar's last year (2026): computed, but with a warning.
    let x = g.expect("event", "0101", None, d, None);
    let why = "20 working days into 2027, whose holidays the calendar does not know";
    g.push("D12", Some(interior(city, d)), "", "", ("event_type", "0101"), "", "2026-12-08T10:00:00+08:00", Ok((&x, "calendar_unknown_year")), why);

    // GCJ-02 inputs: the interior point shifted into GCJ-02.
    for (i, &(t, grid)) in [("0102", a), ("0102", c), ("0102", d), ("0506", a), ("0506", b)].iter().enumerate() {
        let (x, y) = interior(city, grid);
        let gcj = Datum::Gcj02.from_wgs84(x, y);
        let e = g.expect("event", t, None, grid, None);
        g.push(
            &format!("G{:02}", i + 1),
            Some(gcj),
            "gcj02",
            "",
            ("event_type", t),
            "",
            t1,
            Ok((&e, "none")),
            "GCJ-02 input converted back to the grid's interior point",
        );
    }

    // Explicit components: the first component of several classes.
    let classes = ["0101", "0118", "0307", "0401", "0210", "0136", "0305", "0402"];
    let mut k = 0;
    for class in classes {
        let Some(comp) = city.components.iter().filter(|c| c.class.to_string() == class).min_by_key(|c| c.code) else { continue };
        let gid = comp.grid.unwrap();
        k += 1;
        let x = g.expect("component", class, None, gid, Some(comp));
        g.push(
            &format!("C{k:02}"),
            None,
            "",
            "",
            ("component_code", &comp.code.to_string()),
            "",
            t1,
            Ok((&x, "none")),
            "explicit component; its recorded grid",
        );
        if class == "0101" || class == "0210" {
            k += 1;
            let x = g.expect("component", class, Some("紧急"), gid, Some(comp));
            g.push(&format!("C{k:02}"), None, "", "", ("component_code", &comp.code.to_string()), "紧急", t1, Ok((&x, "none")), "urgent component limit");
        }
    }
    g.push("C90", None, "", "", ("component_code", "3205060101999999"), "", t1, Err(("404", "component_not_found")), "well-formed code, no such component");
    g.push("C91", None, "", "", ("component_code", "3205060101"), "", t1, Err(("400", "invalid_parameter")), "malformed component code");

    // Component classes snapped from a point: 3 m north of a component.
    let nearest = |p: Coord<f64>, class: &str| -> Vec<(f64, &Component)> {
        let mut v: Vec<(f64, &Component)> =
            city.components.iter().filter(|c| c.class.to_string() == class).map(|c| (Haversine.distance(Point::from(p), Point::from(c.location)), c)).collect();
        v.sort_by(|x, y| x.0.partial_cmp(&y.0).unwrap().then(x.1.code.cmp(&y.1.code)));
        v
    };
    let mut k = 0;
    for class in ["0101", "0118", "0305", "0402", "0136", "0307"] {
        for comp in city.components.iter().filter(|c| c.class.to_string() == class).take(3) {
            let p = Coord { x: comp.location.x, y: comp.location.y + 3.0 / 111_195.0 };
            let near = nearest(p, class);
            let ambiguous = near.len() > 1 && near[1].0 - near[0].0 <= 2.0;
            if ambiguous || near[0].1.code != comp.code {
                continue;
            }
            let chosen = near[0].1;
            let x = g.expect("component", class, None, chosen.grid.unwrap(), Some(chosen));
            k += 1;
            g.push(
                &format!("S{k:02}"),
                Some((p.x, p.y)),
                "",
                "",
                ("component_class", class),
                "",
                t1,
                Ok((&x, "none")),
                &format!("snaps to {} at ~3 m", chosen.code),
            );
            break;
        }
    }
    // Ambiguous: the midpoint of two components of one class less than 20 m apart.
    let mut k = 0;
    'pairs: for class in ["0101", "0118", "0402", "0103"] {
        let comps: Vec<&Component> = city.components.iter().filter(|c| c.class.to_string() == class).collect();
        for (i, c1) in comps.iter().enumerate() {
            for c2 in &comps[i + 1..] {
                let dist = Haversine.distance(Point::from(c1.location), Point::from(c2.location));
                if dist < 20.0 && dist > 4.0 {
                    let p = Coord { x: (c1.location.x + c2.location.x) / 2.0, y: (c1.location.y + c2.location.y) / 2.0 };
                    let near = nearest(p, class);
                    if near[1].0 - near[0].0 > 2.0 {
                        continue;
                    }
                    let chosen = near[0].1;
                    let x = g.expect("component", class, None, chosen.grid.unwrap(), Some(chosen));
                    k += 1;
                    g.push(
                        &format!("A{k:02}"),
                        Some((p.x, p.y)),
                        "",
                        "",
                        ("component_class", class),
                        "",
                        t1,
                        Ok((&x, "ambiguous_component")),
                        &format!("midpoint of {} and {} ({dist:.1} m apart): the nearer (then lower code) {}", c1.code, c2.code, chosen.code),
                    );
                    if k >= 3 {
                        break 'pairs;
                    }
                    continue 'pairs;
                }
            }
        }
    }
    // No component of the class within 30 m: the street office of the point's grid.
    let mut k = 0;
    for class in ["0138", "0126", "0205"] {
        for &grid in &grids {
            let p = interior(city, grid);
            let near = nearest(Coord { x: p.0, y: p.1 }, class);
            if near.first().is_none_or(|n| n.0 > 40.0) {
                let e = g.expect("component", class, None, grid, None);
                let x = Expect {
                    unit: g.street_office(grid),
                    area: city.grid(g.street(grid)).code.to_string(),
                    why: format!(
                        "no {class} within 30 m (nearest {:.0} m) → street office of {}",
                        near.first().map(|n| n.0).unwrap_or(f64::INFINITY),
                        city.grid(grid).code
                    ),
                    ..e
                };
                k += 1;
                g.push(&format!("N{k:02}"), Some(p), "", "", ("component_class", class), "", t1, Ok((&x, "no_component_near")), "");
                break;
            }
        }
    }

    // Shared vertices of unit grids in different streets: the smallest code wins.
    let mut seen = 0;
    let mut k = 0;
    'verts: for &g1 in &grids {
        for poly in &city.grid(g1).geometry.0 {
            for v in poly.exterior().0.iter() {
                let inside = containing(city, *v);
                let streets: std::collections::BTreeSet<_> = inside.iter().map(|&x| g.street(x)).collect();
                if inside.len() >= 2 && inside[0] == g1 && (streets.len() >= 2 || seen < 1) {
                    seen += 1;
                    for t in ["0102", "0504"] {
                        let x = g.expect("event", t, None, inside[0], None);
                        k += 1;
                        let codes: Vec<String> = inside.iter().map(|&i| city.grid(i).code.to_string()).collect();
                        g.push(
                            &format!("B{k:02}"),
                            Some((v.x, v.y)),
                            "",
                            "",
                            ("event_type", t),
                            "",
                            t1,
                            Ok((&x, "on_boundary")),
                            &format!("vertex shared by {codes:?}: smallest code"),
                        );
                    }
                    if seen >= 3 {
                        break 'verts;
                    }
                    continue 'verts;
                }
            }
        }
    }

    // Accuracy discs reaching a neighbour.
    for (i, &grid) in [a, c].iter().enumerate() {
        let (x, y) = interior(city, grid);
        let p = Coord { x, y };
        let r = edge_distance(city, grid, p) + 1.0;
        let e = g.expect("event", "0102", None, grid, None);
        g.push(
            &format!("R{:02}", i + 1),
            Some((x, y)),
            "",
            &format!("{r:.1}"),
            ("event_type", "0102"),
            "",
            t1,
            Ok((&e, "near_boundary")),
            "the accuracy disc crosses the grid's nearest edge",
        );
    }

    // Outside coverage: west of the westernmost vertex.
    let (wx, wy) = grids
        .iter()
        .flat_map(|&id| city.grid(id).geometry.0.iter().flat_map(|p| p.exterior().0.clone()))
        .map(|c| (c.x, c.y))
        .fold((f64::INFINITY, 0.0), |m, c| if c.0 < m.0 { c } else { m });
    let deg_per_m = 1.0 / (111_195.0 * wy.to_radians().cos());
    for (i, metres) in [200.0, 450.0].iter().enumerate() {
        let p = Coord { x: wx - metres * deg_per_m, y: wy };
        let (near, dist) = grids
            .iter()
            .map(|&id| (id, edge_distance(city, id, p)))
            .min_by(|x, y| x.1.partial_cmp(&y.1).unwrap().then(city.grid(x.0).code.cmp(&city.grid(y.0).code)))
            .unwrap();
        let e = g.expect("event", "0102", None, near, None);
        let x = Expect {
            unit: g.street_office(near),
            area: city.grid(g.street(near)).code.to_string(),
            why: format!("{dist:.0} m outside; nearest grid {} → its street office", city.grid(near).code),
            ..e
        };
        g.push(&format!("O{:02}", i + 1), Some((p.x, p.y)), "", "", ("event_type", "0102"), "", t1, Ok((&x, "outside_coverage")), "");
    }
    for (i, metres) in [2000.0, 800.0].iter().enumerate() {
        let p = (wx - metres * deg_per_m, wy);
        g.push(
            &format!("O{:02}", i + 3),
            Some(p),
            "",
            "",
            ("event_type", "0102"),
            "",
            t1,
            Err(("422", "outside_coverage")),
            &format!("{metres} m outside > 500 m"),
        );
    }

    let mut w = csv::Writer::from_writer(std::io::stdout());
    w.write_record(COLUMNS).unwrap();
    for r in &g.rows {
        w.write_record(r).unwrap();
    }
    w.flush().unwrap();
    eprintln!("{} rows", g.rows.len());
}
