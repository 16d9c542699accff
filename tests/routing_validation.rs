//! 指向唯一 on the tiny demo city: the demo list passes; seeded conflicts and holes are each
//! reported with the type and the grid code; a failing list is refused (not used).

mod common;

use citygrid::routing::RoutingError;
use citygrid::rules::{RuleSet, RulesError, Severity, validate};
use citygrid::world::World;

fn world() -> (std::sync::Arc<World>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let world = common::tiny_world(dir.path()).load();
    (world, dir)
}

/// Unit grid codes of one street (9-digit prefix), sorted.
fn unit_grids_of(world: &World, prefix: &str) -> Vec<String> {
    let unit = world.city.hierarchy.unit_level();
    let mut v: Vec<String> = world.city.grids_at(unit).map(|(_, g)| g.code.to_string()).filter(|c| c.starts_with(prefix)).collect();
    v.sort();
    v
}

#[test]
fn the_demo_list_is_unique_and_complete() {
    let (world, _dir) = world();
    let report = world.routing.report.as_ref().expect("the demo stores a list");
    let errors: Vec<_> = report.issues.iter().filter(|i| i.severity == Severity::Error).collect();
    assert!(report.ok, "{errors:#?}");
    assert!(world.routing.rules.is_ok());
    assert_eq!(report.rules, 161);
}

#[test]
fn a_seeded_conflict_is_reported_for_every_grid_of_the_street_with_type_and_code() {
    let (world, _dir) = world();
    let csv = world.rules_csv.clone().unwrap();
    // A second street-level rule for 0102 一般 in 长桥街道 (320506001), equal to line 157's scope.
    let bad = format!("{csv}event,0102,暴露垃圾,320506001,吴中区环境卫生管理处,一般,1wd,吴中区城市管理局\n");
    let Err(RulesError::InvalidRules(report)) = RuleSet::load(&bad, &world.city) else { panic!("must be refused") };
    let conflicts: Vec<_> = report.with_code("conflict").collect();
    let expected = unit_grids_of(&world, "320506001");
    assert!(!expected.is_empty());
    let mut got: Vec<String> = conflicts.iter().map(|i| i.grid.clone().unwrap()).collect();
    got.sort();
    assert_eq!(got, expected);
    for c in &conflicts {
        assert_eq!(c.case_type.as_deref(), Some("0102"));
        assert_eq!(c.lines, vec![157, 163]);
        assert!(c.message.contains("0102") && c.message.contains(c.grid.as_deref().unwrap()), "{}", c.message);
    }
    // Nothing else is wrong, and other streets are untouched.
    assert_eq!(report.errors, expected.len());
}

#[test]
fn a_seeded_hole_is_reported_per_unit_grid_of_the_streets_without_a_rule() {
    let (world, _dir) = world();
    let csv = world.rules_csv.clone().unwrap();
    // 0505 机动车乱停放: drop the city-wide row, keep it only for 郭巷街道 (320506002).
    let mut lines: Vec<String> = csv.lines().filter(|l| !l.starts_with("event,0505,")).map(str::to_owned).collect();
    lines.push("event,0505,机动车乱停放,320506002,苏州市公安局交通警察支队吴中大队,一般,2wh,吴中区城市管理局".into());
    let bad = lines.join("\n");
    let Err(RulesError::InvalidRules(report)) = RuleSet::load(&bad, &world.city) else { panic!("must be refused") };
    let mut got: Vec<String> = report.with_code("no_rule").map(|i| i.grid.clone().unwrap()).collect();
    got.sort();
    let mut expected = unit_grids_of(&world, "320506001");
    expected.extend(unit_grids_of(&world, "320506101"));
    expected.sort();
    assert_eq!(got, expected);
    assert!(report.with_code("no_rule").all(|i| i.case_type.as_deref() == Some("0505")));
    assert!(report.with_code("conflict").next().is_none());
}

#[test]
fn unknown_units_scopes_classes_roles_and_zone_layers_are_errors() {
    let (world, _dir) = world();
    let csv = world.rules_csv.clone().unwrap();
    let bad = format!(
        "{csv}event,0102,暴露垃圾,320506001001,不存在的单位,紧急,2wh,\n\
         event,0102,暴露垃圾,320506009,@street,一般,2wh,\n\
         event,0188,未知事件,,@street,一般,2wh,\n\
         event,0103,积存垃圾渣土,320506002,@maintainer,一般,1wd,\n\
         event,0104,道路不洁,zone:rivers,@zone,一般,1wd,\n\
         event,0104,道路不洁,zone:roads:XX99,@zone,一般,1wd,\n"
    );
    let Err(RulesError::InvalidRules(report)) = RuleSet::load(&bad, &world.city) else { panic!("must be refused") };
    for (code, line) in
        [("unknown_unit", 163), ("unknown_scope", 164), ("unknown_case_type", 165), ("role_not_applicable", 166), ("unknown_zone", 167), ("unknown_zone", 168)]
    {
        assert!(report.with_code(code).any(|i| i.lines == vec![line]), "{code} on line {line}: {:#?}", report.issues);
    }
}

#[test]
fn an_unreadable_list_names_its_lines_and_a_failing_list_does_not_replace_the_current_one() {
    let (world, _dir) = world();
    let csv = world.rules_csv.clone().unwrap();
    let bad = format!("{csv}event,0102,暴露垃圾,,@street,someday,4wh,\n");
    let Err(RulesError::BadRules(lines)) = RuleSet::parse(&bad, &world.city) else { panic!() };
    assert_eq!(lines.len(), 1);
    assert_eq!((lines[0].line, lines[0].column), (163, Some("urgency")));
    // The snapshot still routes with its own, valid list.
    let (good, report) = RuleSet::load(&csv, &world.city).unwrap();
    assert!(report.ok);
    assert_eq!(&good.rules, &world.routing.rules.as_ref().unwrap().rules);
    assert_eq!(validate(&good, &world.city), report);
}

/// A world over the tiny city whose stored list is `edit`ed first.
fn world_with_rules(edit: impl Fn(&str) -> String) -> (World, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    common::write_tiny(dir.path());
    let mut loaded = citygrid::store::Store::open(dir.path()).unwrap().load_city(&|_, _| {}).unwrap();
    loaded.rules_csv = loaded.rules_csv.map(|c| edit(&c));
    (World::new(loaded), dir)
}

fn case_at_street_001(world: &World, at: &str) -> citygrid::routing::CaseInput {
    use geo::InteriorPoint;
    let (code, _) = citygrid::model::GridCode::parse("32050600100101", &world.city.hierarchy).unwrap();
    let p = world.city.grid(world.city.grid_by_code(code).unwrap()).geometry.interior_point().unwrap().0;
    citygrid::routing::CaseInput {
        point: Some(citygrid::lookup::PointEcho::new(p.x, p.y, citygrid::crs::Datum::Wgs84).unwrap()),
        accuracy_m: 0.0,
        subject: citygrid::routing::CaseSubject::Event("0102".into()),
        urgency: None,
        reported_at: Some(chrono::DateTime::parse_from_rfc3339(at).unwrap()),
    }
}

#[test]
fn a_time_of_day_condition_wins_inside_its_window_only() {
    // A night rule (condition column added) for 0102 in 长桥街道: the district's night shift.
    let (world, _dir) = world_with_rules(|csv| {
        let mut out = String::new();
        for (i, line) in csv.lines().enumerate() {
            out.push_str(line);
            out.push_str(if i == 0 { ",condition\n" } else { ",\n" });
        }
        out.push_str("event,0102,暴露垃圾,320506001,吴中区环境卫生管理处,一般,2wh,吴中区城市管理局,22:00-06:00\n");
        out
    });
    assert!(world.routing.report.as_ref().unwrap().ok, "{:#?}", world.routing.report);
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-23T10:00:00+08:00").unwrap();
    let night = citygrid::routing::route(&world, &case_at_street_001(&world, "2026-11-23T23:30:00+08:00"), now).unwrap();
    assert_eq!(night.responsible_unit.name, "吴中区环境卫生管理处");
    assert_eq!(night.rule.as_ref().unwrap().line, 163);
    // 2 wh from 23:30 Monday: Tuesday 08:30 → 10:30.
    assert_eq!(night.deadline.due, "2026-11-24T10:30:00+08:00");
    let day = citygrid::routing::route(&world, &case_at_street_001(&world, "2026-11-23T10:00:00+08:00"), now).unwrap();
    assert_eq!(day.responsible_unit.name, "长桥街道环卫所");
    assert_eq!(day.rule.as_ref().unwrap().line, 157);
}

#[test]
fn a_snapshot_whose_stored_list_fails_validation_does_not_route_with_it() {
    let (world, _dir) = world_with_rules(|csv| format!("{csv}event,0102,暴露垃圾,320506001,吴中区环境卫生管理处,一般,1wd,吴中区城市管理局\n"));
    assert!(world.routing.rules.is_err());
    assert!(!world.routing.report.as_ref().unwrap().ok);
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-23T10:00:00+08:00").unwrap();
    let err = citygrid::routing::route(&world, &case_at_street_001(&world, "2026-11-23T10:00:00+08:00"), now).unwrap_err();
    assert!(matches!(err, RoutingError::RulesUnavailable(_)), "{err}");
    let api = citygrid::http::error::ApiError::from(err);
    assert_eq!((api.status.as_u16(), api.code), (503, "rules_unavailable"));
}

#[test]
fn zone_rules_must_name_real_zones_and_not_tie_inside_a_zone() {
    let (world, _dir) = world();
    assert!(world.city.zones.iter().any(|z| z.layer == "roads" && z.id == "EW01"), "the demo ships road sections");
    let csv = world.rules_csv.clone().unwrap();
    // A second layer-wide rule for 0401 紧急 on roads ties with line 161 in every section.
    let bad = format!("{csv}event,0401,路面塌陷,zone:roads,吴中区市政工程管理处,紧急,2wh,吴中区应急管理局\n");
    let Err(RulesError::InvalidRules(report)) = RuleSet::load(&bad, &world.city) else { panic!("must be refused") };
    let conflicts: Vec<_> = report.with_code("conflict").collect();
    let sections = world.city.zones.iter().filter(|z| z.layer == "roads").count();
    assert!(!conflicts.is_empty());
    assert!(conflicts.iter().all(|c| c.lines == vec![161, 163] && c.case_type.as_deref() == Some("0401")), "{conflicts:#?}");
    assert!(conflicts.iter().any(|c| c.zone.as_deref() == Some("roads:EW01")), "{conflicts:#?}");
    assert!(conflicts.len() <= sections, "one finding per tie, not per place: {}", conflicts.len());
    // An id-specific rule is more specific than the layer-wide one: no tie.
    let fine = format!("{csv}event,0401,路面塌陷,zone:roads:EW02,吴中区市政工程管理处,紧急,2wh,吴中区应急管理局\n");
    let (_, report) = RuleSet::load(&fine, &world.city).unwrap();
    assert!(report.ok);
}

#[test]
fn a_city_calendar_in_the_data_directory_sets_the_deadlines_and_a_broken_one_stops_routing() {
    let dir = tempfile::tempdir().unwrap();
    common::write_tiny(dir.path());
    let load = || World::new(citygrid::store::Store::open(dir.path()).unwrap().load_city(&|_, _| {}).unwrap());
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-23T10:00:00+08:00").unwrap();
    // Built in: Monday 23 Nov 10:00 + 4 working hours (0102 in 长桥街道) = 15:30 the same day.
    let world = load();
    let a = citygrid::routing::route(&world, &case_at_street_001(&world, "2026-11-23T10:00:00+08:00"), now).unwrap();
    assert_eq!(a.deadline.due, "2026-11-23T15:30:00+08:00");
    // The city declares 23 Nov a local holiday: the clock starts Tuesday 08:30.
    let text = include_str!("../fixtures/routing/calendar.toml").replacen("holidays = [", "holidays = [\n  \"2026-11-23\",", 1);
    std::fs::write(dir.path().join("calendar.toml"), text).unwrap();
    let world = load();
    let a = citygrid::routing::route(&world, &case_at_street_001(&world, "2026-11-23T10:00:00+08:00"), now).unwrap();
    assert_eq!(a.deadline.due, "2026-11-24T14:00:00+08:00", "4 wh from Tuesday 08:30: 08:30–12:00 is 3.5 h, then 13:30–14:00");
    // A calendar that does not read: no routing with wrong deadlines, and the reason given.
    std::fs::write(dir.path().join("calendar.toml"), "working_hours = [\"nine to five\"]\n").unwrap();
    let world = load();
    let Err(e) = citygrid::routing::route(&world, &case_at_street_001(&world, "2026-11-23T10:00:00+08:00"), now) else { panic!("must not route") };
    assert!(e.to_string().contains("calendar.toml"), "{e}");
}
