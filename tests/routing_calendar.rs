//! Deadlines and the years the working calendar covers: a deadline counting working time in a
//! year whose holidays the calendar does not know carries the warning `calendar_unknown_year`
//! and `beyond_calendar: true`; a city that adds the year gets the right deadline, silently.

mod common;

use chrono::DateTime;
use geo::InteriorPoint;
use serde_json::{Value, json};

use citygrid::routing::{CaseInput, CaseSubject, RouteAnswer, route};
use citygrid::world::World;

/// `event_type` (0101 has a 20 working-day limit, 0102 one of 4 working hours in 长桥街道)
/// reported at `at` inside unit grid 32050600100101.
fn case(world: &World, event_type: &str, at: &str) -> CaseInput {
    let (code, _) = citygrid::model::GridCode::parse("32050600100101", &world.city.hierarchy).unwrap();
    let p = world.city.grid(world.city.grid_by_code(code).unwrap()).geometry.interior_point().unwrap().0;
    CaseInput {
        point: Some(citygrid::lookup::PointEcho::new(p.x, p.y, citygrid::crs::Datum::Wgs84).unwrap()),
        accuracy_m: 0.0,
        subject: CaseSubject::Event(event_type.into()),
        urgency: None,
        reported_at: Some(DateTime::parse_from_rfc3339(at).unwrap()),
    }
}

fn routed<'a>(world: &'a World, event_type: &str, at: &str) -> RouteAnswer<'a> {
    let now = DateTime::parse_from_rfc3339("2026-12-07T10:00:00+08:00").unwrap();
    route(world, &case(world, event_type, at), now).unwrap()
}

fn unknown_year_warnings(a: &RouteAnswer<'_>) -> Vec<String> {
    a.warnings.iter().filter(|w| w.starts_with("calendar_unknown_year")).cloned().collect()
}

#[test]
fn a_deadline_running_past_the_calendar_says_so_in_the_warnings_and_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let world = common::tiny_world(dir.path()).load();
    // The case: 20 working days from Tuesday 8 Dec 2026. 1 Jan 2027 is counted as a
    // working day (2027's holidays are not published in the built-in calendar): 5 Jan.
    let a = routed(&world, "0101", "2026-12-08T10:00:00+08:00");
    assert_eq!(a.deadline.limit_code, "20wd");
    assert_eq!(a.deadline.due, "2027-01-05T17:30:00+08:00");
    assert_eq!(
        unknown_year_warnings(&a),
        ["calendar_unknown_year: the working calendar covers 2025–2026; this deadline runs into 2027, whose public holidays it \
          does not know (counted as ordinary weekdays and weekends) — add 2027 to the calendar"]
    );
    let json: Value = serde_json::to_value(&a).unwrap();
    assert_eq!(json["deadline"]["calendar_covers"], json!([2025, 2026]));
    assert_eq!(json["deadline"]["beyond_calendar"], json!(true));

    // The same case a week earlier ends in 2026: no warning.
    let a = routed(&world, "0101", "2026-11-30T10:00:00+08:00");
    assert_eq!(a.deadline.due, "2026-12-28T17:30:00+08:00");
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    let json: Value = serde_json::to_value(&a).unwrap();
    assert_eq!((json["deadline"]["beyond_calendar"].clone(), json["deadline"]["calendar_covers"].clone()), (json!(false), json!([2025, 2026])));

    // Working hours on New Year's Eve run into 2027 too; reported before 2025, the deadline
    // starts in a year the calendar does not know.
    let a = routed(&world, "0102", "2026-12-31T16:00:00+08:00");
    assert_eq!(a.deadline.due, "2027-01-01T11:00:00+08:00", "1 Jan 2027 counted as a working day");
    assert!(a.deadline.beyond_calendar);
    let a = routed(&world, "0102", "2024-12-31T10:00:00+08:00");
    assert!(unknown_year_warnings(&a)[0].contains("this deadline starts in 2024"), "{:?}", a.warnings);
    // 2025 is known now: 4 wh from 16:00 on 31 Dec 2024 skip New Year's Day 2025.
    let a = routed(&world, "0102", "2024-12-31T16:00:00+08:00");
    assert_eq!(a.deadline.due, "2025-01-02T11:00:00+08:00");
}

#[test]
fn a_city_calendar_that_adds_2027_gives_the_right_deadline_without_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    common::write_tiny(dir.path());
    // A city adds 2027's New Year's Day (the rest of 2027 is left out here for brevity; a real
    // calendar lists the whole year).
    let text = include_str!("../fixtures/routing/calendar.toml").replace("years = [2025, 2026]", "years = [2025, 2026, 2027]").replacen(
        "holidays = [",
        "holidays = [\n  \"2027-01-01\",",
        1,
    );
    std::fs::write(dir.path().join("calendar.toml"), text).unwrap();
    let world = World::new(citygrid::store::Store::open(dir.path()).unwrap().load_city(&|_, _| {}).unwrap());
    let a = routed(&world, "0101", "2026-12-08T10:00:00+08:00");
    assert_eq!(a.deadline.due, "2027-01-06T17:30:00+08:00");
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    assert_eq!((a.deadline.calendar_covers.clone(), a.deadline.beyond_calendar), (vec![2025, 2026, 2027], false));

    // A calendar claiming 2027 without its dates stops routing with the reason.
    let text = include_str!("../fixtures/routing/calendar.toml").replace("years = [2025, 2026]", "years = [2025, 2026, 2027]");
    std::fs::write(dir.path().join("calendar.toml"), text).unwrap();
    let world = World::new(citygrid::store::Store::open(dir.path()).unwrap().load_city(&|_, _| {}).unwrap());
    let now = DateTime::parse_from_rfc3339("2026-12-07T10:00:00+08:00").unwrap();
    let Err(e) = route(&world, &case(&world, "0101", "2026-12-08T10:00:00+08:00"), now) else { panic!("must not route") };
    assert!(e.to_string().contains("years lists 2027 but no holiday of 2027"), "{e}");
}
