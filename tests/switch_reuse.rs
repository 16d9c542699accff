//! A switch that changes only the responsibility list or the working calendar shares the
//! served layers, indexes and tiles with the snapshot it replaces (no rebuild: what lets a
//! replica of a million-component city follow such a switch within a second); one that changes
//! a layer, the unit register or the local class files builds them anew.

mod common;

use std::sync::Arc;

use citygrid::datasets::Datasets;
use citygrid::store::{Dataset, Store, rules_count};
use citygrid::tiles::TileConfig;
use citygrid::world::World;

fn shares_layers(a: &World, b: &World) -> bool {
    Arc::ptr_eq(&a.city, &b.city) && Arc::ptr_eq(&a.tiles, &b.tiles) && Arc::ptr_eq(&a.components, &b.components) && Arc::ptr_eq(&a.grids, &b.grids) && Arc::ptr_eq(&a.zones, &b.zones)
}

#[test]
fn a_rules_or_calendar_switch_shares_the_layers_and_other_switches_rebuild_them() {
    let dir = tempfile::tempdir().unwrap();
    let world = common::tiny_world(dir.path());
    let datasets = Datasets::new(Store::open(dir.path()).unwrap(), world.clone(), TileConfig::default());
    let first = world.load();
    let rules = first.rules_csv.clone().unwrap();

    // A new responsibility list: served, routing, layers shared.
    let switched = datasets.save_rules(&rules, rules_count(&rules), "test").unwrap();
    assert_eq!(switched.current, 2);
    let second = world.load();
    assert_eq!(second.versions.get("rules"), Some(2));
    assert_eq!(second.routing.rules.as_ref().map(|r| r.version).unwrap(), Some(2));
    assert!(shares_layers(&first, &second));
    // A rollback of it, and a new calendar: the same.
    datasets.rollback("rules", 1).unwrap();
    let third = world.load();
    assert_eq!(third.versions.get("rules"), Some(1));
    assert!(shares_layers(&first, &third));
    let calendar = include_str!("../fixtures/city-gk/calendar.toml");
    let imported = datasets.import_text(Dataset::Calendar, calendar, false, false, "test").unwrap();
    assert!(imported.switched.is_some());
    let fourth = world.load();
    assert_eq!(fourth.versions.get("calendar"), Some(1));
    assert_ne!(fourth.routing.calendar, first.routing.calendar, "the new calendar is in force");
    assert!(shares_layers(&first, &fourth));

    // A local class file changed on disk: the next switch reads it, layers built anew.
    std::fs::write(dir.path().join("event_classes.csv"), "code,name,name_en\n21,本地事件,local events\n2101,共享单车乱停放,misparked bikes\n").unwrap();
    datasets.save_rules(&rules, rules_count(&rules), "test").unwrap();
    let fifth = world.load();
    assert!(!shares_layers(&first, &fifth));
    let class = citygrid::model::ClassCode::parse("2101").unwrap();
    assert_eq!(fifth.city.event_classes.get(class).unwrap().name, "共享单车乱停放");
    assert_eq!(fifth.city.components.len(), first.city.components.len());

    // A new unit register (every unit kept, one more): built anew.
    let mut units = String::from("code,name,phone\n");
    for (_, unit) in fifth.city.units.iter() {
        units.push_str(&format!("{},{},{}\n", unit.code.clone().unwrap_or_default(), unit.name, unit.phone.clone().unwrap_or_default()));
    }
    units.push_str(",新设单位,\n");
    datasets.import_text(Dataset::Units, &units, false, false, "test").unwrap();
    let sixth = world.load();
    assert!(!Arc::ptr_eq(&fifth.city, &sixth.city));
    assert_eq!(sixth.city.units.len(), fifth.city.units.len() + 1);
}
