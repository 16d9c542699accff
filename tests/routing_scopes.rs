//! Rule scopes whose code now names another place: `renamed_scopes` between two cities (for a
//! grid import to flag), and the optional `scope_name` column checked by validation.

mod common;

use citygrid::model::{City, GridCode};
use citygrid::rules::{RenamedScope, RuleSet, RulesError, renamed_scopes, validate};
use citygrid::world::World;

fn world() -> (std::sync::Arc<World>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let world = common::tiny_world(dir.path()).load();
    (world, dir)
}

/// `city` with the grid `code` renamed.
fn renamed(city: &City, code: &str, name: &str) -> City {
    let mut new = city.clone();
    let (code, _) = GridCode::parse(code, &city.hierarchy).unwrap();
    let id = new.grid_by_code(code).unwrap();
    new.grids[id.0 as usize].name = name.to_owned();
    new
}

fn name_of(city: &City, code: &str) -> String {
    let (code, _) = GridCode::parse(code, &city.hierarchy).unwrap();
    city.grid(city.grid_by_code(code).unwrap()).name.clone()
}

/// The list with a `scope_name` column: `names(line)` gives the value for each rule line.
fn with_scope_names(csv: &str, names: impl Fn(usize) -> String) -> String {
    let mut out = String::new();
    for (i, line) in csv.lines().enumerate() {
        out.push_str(line);
        out.push(',');
        out.push_str(&if i == 0 { "scope_name".to_owned() } else { names(i + 1) });
        out.push('\n');
    }
    out
}

#[test]
fn a_scope_code_that_names_another_place_in_the_new_city_is_flagged_per_rule() {
    let (world, _dir) = world();
    let csv = world.rules_csv.clone().unwrap();
    let old = &world.city;
    // Line 157 is scoped to 320506001 (长桥街道), line 158 to its community 320506001001,
    // line 159 to 320506002.
    let street = name_of(old, "320506001");
    let new = renamed(old, "320506001", "长桥新区管委会");
    assert_eq!(
        renamed_scopes(&csv, old, &new).unwrap(),
        [RenamedScope { line: 157, scope: "320506001".into(), old_name: street.clone(), new_name: "长桥新区管委会".into() }]
    );
    let text = renamed_scopes(&csv, old, &new).unwrap()[0].to_string();
    assert!(text.starts_with(&format!("line 157: scope 320506001 was {street:?}, now \"长桥新区管委会\"")), "{text}");
    // Every rule of a renamed scope is listed: a second rule on 320506001 (line 163).
    let two = format!("{csv}event,0102,暴露垃圾,320506001,长桥街道环卫所,紧急,2wh,\n");
    let lines: Vec<usize> = renamed_scopes(&two, old, &new).unwrap().iter().map(|r| r.line).collect();
    assert_eq!(lines, [157, 163]);
    // The same name but for spaces, or an unchanged city: nothing to flag. A renamed grid no
    // rule is scoped to: nothing either.
    assert!(renamed_scopes(&csv, old, &renamed(old, "320506001", &format!(" {street} "))).unwrap().is_empty());
    assert!(renamed_scopes(&csv, old, old).unwrap().is_empty());
    assert!(renamed_scopes(&csv, old, &renamed(old, "32050600200101", "别处")).unwrap().is_empty());
    // The list still validates against the new city (the code exists): only this check sees it.
    assert!(RuleSet::load(&csv, &new).is_ok());
    // A list that does not read is an error, not an empty answer.
    let bad = format!("{csv}event,0102,暴露垃圾,,@street,someday,4wh,\n");
    assert!(matches!(renamed_scopes(&bad, old, &new), Err(RulesError::BadRules(_))));
}

#[test]
fn a_scope_name_column_is_checked_against_the_scope_grid_and_zone() {
    let (world, _dir) = world();
    let csv = world.rules_csv.clone().unwrap();
    let city = &world.city;
    let street = name_of(city, "320506001");
    // The first rule scoped to one zone polygon, and that polygon's name.
    let (zone_line, zone_scope) = csv
        .lines()
        .enumerate()
        .find_map(|(i, l)| l.split(',').nth(3).filter(|s| s.starts_with("zone:") && s.matches(':').count() == 2).map(|s| (i + 1, s.to_owned())))
        .expect("the demo list has a zone rule");
    let (layer, id) = zone_scope["zone:".len()..].split_once(':').unwrap();
    let zone_name = city.zones.iter().find(|z| z.layer == layer && z.id == id).unwrap().name.clone();

    // Right names (and empty elsewhere, also on city-wide rules): the list is fine.
    let names = |street_name: String, zone: String| {
        move |line: usize| match line {
            157 => street_name.clone(),
            l if l == zone_line => zone.clone(),
            _ => String::new(),
        }
    };
    let good = with_scope_names(&csv, names(format!(" {street} "), zone_name.clone()));
    let (set, report) = RuleSet::load(&good, city).unwrap();
    assert!(report.ok);
    assert_eq!(set.rules.iter().find(|r| r.line == 157).unwrap().scope_name.as_deref(), Some(street.as_str()));

    // Wrong names: one error each, with the line, the grid or the zone, and both names.
    let bad = with_scope_names(&csv, names("郭巷街道".into(), "别的路段".into()));
    let Err(RulesError::InvalidRules(report)) = RuleSet::load(&bad, city) else { panic!("must be refused") };
    let found: Vec<_> = report.with_code("scope_name_mismatch").collect();
    assert_eq!(found.len(), 2, "{:#?}", report.issues);
    assert_eq!(report.errors, 2);
    let g = found.iter().find(|i| i.lines == [157]).unwrap();
    assert_eq!(g.grid.as_deref(), Some("320506001"));
    assert!(g.message.contains(&format!("{street:?}")) && g.message.contains("\"郭巷街道\""), "{}", g.message);
    let z = found.iter().find(|i| i.lines == [zone_line]).unwrap();
    assert_eq!(z.zone.as_deref(), Some(&zone_scope["zone:".len()..]));
    assert!(z.message.contains(&format!("{zone_name:?}")) && z.message.contains("别的路段"), "{}", z.message);

    // The list written for the old city, checked against a new grid layer that renamed the
    // street: refused there, though every code still exists.
    let new = renamed(city, "320506001", "长桥新区管委会");
    let set = RuleSet::parse(&good, &new).unwrap();
    let report = validate(&set, &new);
    assert!(!report.ok);
    assert_eq!(report.with_code("scope_name_mismatch").map(|i| i.lines.clone()).collect::<Vec<_>>(), [vec![157]]);
}
