//! Acceptance tests of the demo generator: exact tiling, validity, counts, determinism,
//! components inside their grids, class mix, attributes and the responsibility list.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use geo::{Area, BooleanOps, BoundingRect, Contains, GeodesicArea, Intersects, Validation, Winding, Within};

use super::*;
use crate::model::{ClassCode, GridId, Status};

fn quiet(_: u64, _: u64) {}

fn tiny() -> &'static DemoCity {
    static CITY: OnceLock<DemoCity> = OnceLock::new();
    CITY.get_or_init(|| generate(&DemoSpec { preset: Preset::Tiny, components: None, seed: 42 }, &quiet).unwrap())
}

/// Wuzhong's full grid hierarchy with fewer components, to keep debug builds fast.
fn wuzhong() -> &'static DemoCity {
    static CITY: OnceLock<DemoCity> = OnceLock::new();
    CITY.get_or_init(|| generate(&DemoSpec { preset: Preset::Wuzhong, components: Some(20_000), seed: 7 }, &quiet).unwrap())
}

fn code(city: &City, id: GridId) -> String {
    city.grid(id).code.to_string()
}

/// Every level tiles its parent: valid single-ring polygons, counter-clockwise, children
/// within the parent, siblings overlapping in no area, children's areas adding up.
fn check_tiling(city: &City) {
    for g in &city.grids {
        assert_eq!(g.geometry.0.len(), 1, "{}: one polygon", g.code);
        let poly = &g.geometry.0[0];
        assert!(poly.interiors().is_empty(), "{}: no holes", g.code);
        assert!(poly.is_valid(), "{}: {:?}", g.code, poly.validation_errors());
        assert!(g.geometry.is_valid(), "{}", g.code);
        assert!(poly.exterior().is_ccw(), "{}: exterior counter-clockwise", g.code);
    }
    let children = city.children();
    for (p, kids) in children.iter().enumerate() {
        if kids.is_empty() {
            continue;
        }
        let parent = city.grid(GridId(p as u32));
        let parent_area = parent.geometry.unsigned_area();
        let sum: f64 = kids.iter().map(|&k| city.grid(k).geometry.unsigned_area()).sum();
        assert!(((sum - parent_area) / parent_area).abs() < 1e-9, "{}: children add up to {sum}, parent has {parent_area}", parent.code);
        for &k in kids {
            let child = city.grid(k);
            assert!(child.geometry.is_within(&parent.geometry), "{} not within {}", child.code, parent.code);
        }
        let boxes: Vec<_> = kids.iter().map(|&k| city.grid(k).geometry.bounding_rect().unwrap()).collect();
        for a in 0..kids.len() {
            for b in a + 1..kids.len() {
                if !boxes[a].intersects(&boxes[b]) {
                    continue;
                }
                let (ga, gb) = (&city.grid(kids[a]).geometry, &city.grid(kids[b]).geometry);
                let overlap = ga.intersection(gb).unsigned_area();
                assert!(overlap <= 1e-12 * parent_area, "{} and {} overlap by {overlap}", code(city, kids[a]), code(city, kids[b]));
            }
        }
    }
}

fn unit_grid_areas_km2(city: &City) -> Vec<f64> {
    let unit = city.hierarchy.unit_level();
    city.grids_at(unit).map(|(_, g)| g.geometry.geodesic_area_unsigned() / 1e6).collect()
}

#[test]
fn tiny_tiles_exactly() {
    let city = &tiny().city;
    assert_eq!(city.level_counts(), [1, 3, 6, 36]);
    check_tiling(city);
    for a in unit_grid_areas_km2(city) {
        assert!((0.01..=0.5).contains(&a), "unit grid of {a} km²");
    }
}

#[test]
fn wuzhong_has_the_pilot_counts_and_tiles_exactly() {
    let demo = wuzhong();
    let city = &demo.city;
    assert_eq!(city.level_counts(), [1, 14, 212, 945]);
    check_tiling(city);
    let areas = unit_grid_areas_km2(city);
    for &a in &areas {
        assert!((0.01..=0.5).contains(&a), "unit grid of {a} km²");
    }
    let district = city.grids[0].geometry.geodesic_area_unsigned() / 1e6;
    assert!((district - 52.3).abs() < 1.5, "district of {district} km²");
    let sum: f64 = areas.iter().sum();
    assert!((sum - district).abs() < 1e-6 * district, "{sum} vs {district}");
    // Both kinds of street, named to match their code.
    let streets: Vec<_> = city.grids_at(1).map(|(_, g)| g).collect();
    assert!(streets.iter().any(|g| g.name.ends_with('镇')) && streets.iter().any(|g| g.name.ends_with("街道")));
    for g in streets {
        let first = g.code.to_string().as_bytes()[6];
        assert_eq!(first == b'1', g.name.ends_with('镇'), "{} {}", g.code, g.name);
    }
    assert_eq!(demo.name, "吴中区 (demo)");
    assert!((demo.center[0] - 120.63).abs() < 0.01 && (demo.center[1] - 31.26).abs() < 0.01);
}

#[test]
fn xicheng_has_the_census_counts() {
    let demo = generate(&DemoSpec { preset: Preset::Xicheng, components: Some(0), seed: 1 }, &quiet).unwrap();
    let city = &demo.city;
    assert_eq!(city.level_counts(), [1, 15, 263, 1623]);
    assert!(city.components.is_empty());
    assert_eq!(city.grids[0].code.to_string(), "110102");
    assert!(city.grids_at(1).all(|(_, g)| g.name.ends_with("街道") && g.code.to_string().as_bytes()[6] == b'0'));
    for a in unit_grid_areas_km2(city) {
        assert!((0.01..=0.5).contains(&a), "unit grid of {a} km²");
    }
    let district = city.grids[0].geometry.geodesic_area_unsigned() / 1e6;
    assert!((district - 50.7).abs() < 1.5, "district of {district} km²");
    let c = city.grids[0].geometry.bounding_rect().unwrap().center();
    assert!((c.x - 116.36).abs() < 0.03 && (c.y - 39.91).abs() < 0.03, "{c:?}");
}

#[test]
fn same_seed_same_city_other_seed_other_city() {
    let spec = DemoSpec { preset: Preset::Tiny, components: Some(500), seed: 42 };
    let a = generate(&spec, &quiet).unwrap();
    let b = generate(&spec, &quiet).unwrap();
    assert_eq!(a.city.grids, b.city.grids);
    assert_eq!(a.city.components, b.city.components);
    assert_eq!(a.rules_csv, b.rules_csv);
    // The layout does not depend on the component count.
    assert_eq!(a.city.grids, tiny().city.grids);
    let c = generate(&DemoSpec { seed: 43, ..spec }, &quiet).unwrap();
    assert_ne!(a.city.grids[0].geometry, c.city.grids[0].geometry);
}

fn check_components_in_their_grids(demo: &DemoCity, county: u32) {
    let city = &demo.city;
    let unit = city.hierarchy.unit_level();
    for c in &city.components {
        assert_eq!(c.code.county(), county);
        assert_eq!(c.code.class(), c.class);
        assert!((1..=999_999).contains(&c.code.serial()));
        let gid = c.grid.expect("every component records its grid");
        let grid = city.grid(gid);
        assert_eq!(grid.level as usize, unit);
        let p = geo::Point(c.location);
        assert!(grid.geometry.contains(&p), "{} at {:?} is not inside {}", c.code, c.location, grid.code);
    }
}

#[test]
fn tiny_components_lie_inside_their_recorded_grid() {
    let demo = tiny();
    assert_eq!(demo.city.components.len(), 2_000);
    check_components_in_their_grids(demo, 320506);
}

#[test]
fn wuzhong_components_lie_inside_their_grid_in_a_realistic_mix() {
    let demo = wuzhong();
    let city = &demo.city;
    assert_eq!(city.components.len(), 20_000);
    check_components_in_their_grids(demo, 320506);
    let n = city.components.len() as f64;
    let share = |f: &dyn Fn(ClassCode) -> bool| city.components.iter().filter(|c| f(c.class)).count() as f64 / n;
    let is = |code: &'static str| move |c: ClassCode| c == ClassCode::parse(code).unwrap();
    let covers = share(&|c| c.major() == 1 && (1..=12).contains(&c.minor()));
    assert!((0.44..0.56).contains(&covers), "manhole covers {covers}");
    let lamps = share(&is("0118"));
    assert!((0.15..0.21).contains(&lamps), "street lamps {lamps}");
    let cameras = share(&is("0136"));
    assert!((0.02..0.04).contains(&cameras), "cameras {cameras}");
    let booths = share(&is("0138"));
    assert!((0.002..0.009).contains(&booths), "police booths {booths}");
    let lights = share(&is("0210"));
    assert!((0.01..0.02).contains(&lights), "traffic lights {lights}");
    let classes = crate::model::ClassTable::builtin_components();
    assert!(city.components.iter().all(|c| classes.get(c.class).is_some()));
    let intact = city.components.iter().filter(|c| c.status == Status::Intact).count() as f64 / n;
    assert!((0.90..0.96).contains(&intact), "intact {intact}");
    for st in [Status::Damaged, Status::Missing, Status::Occupied] {
        assert!(city.components.iter().any(|c| c.status == st), "some {st}");
    }
    // Serials run 1..=count within each class.
    let mut per_class: HashMap<ClassCode, Vec<u32>> = HashMap::new();
    for c in &city.components {
        per_class.entry(c.class).or_default().push(c.code.serial());
    }
    for (class, mut serials) in per_class {
        serials.sort_unstable();
        assert!(serials.iter().enumerate().all(|(i, &s)| s as usize == i + 1), "serials of {class}");
    }
    // Units: a few dozen, the covers' maintainers as in Suzhou.
    assert!((20..=120).contains(&city.units.len()), "{} units", city.units.len());
    let c = city.components.iter().find(|c| c.class == ClassCode::parse("0101").unwrap()).unwrap();
    assert_eq!(city.units.get(c.maintainer.unwrap()).name, "苏州市自来水有限公司吴中分公司");
    let lamp = city.components.iter().find(|c| c.class == ClassCode::parse("0118").unwrap()).unwrap();
    assert_eq!(city.units.get(lamp.dept.unwrap()).name, "吴中区城市管理局");
    for c in &city.components {
        let (cr, up) = (c.created.unwrap(), c.updated.unwrap());
        assert!(cr <= up && cr.format("%Y").to_string().as_str() >= "2019" && up.format("%Y").to_string().as_str() <= "2025");
    }
}

#[test]
fn grids_carry_plausible_attributes() {
    let city = &tiny().city;
    let d = &city.grids[0];
    assert_eq!((d.code.to_string().as_str(), d.name.as_str()), ("320506", "吴中区"));
    assert_eq!(city.units.get(d.unit.unwrap()).name, "吴中区城市管理局");
    let from = chrono::NaiveDate::from_ymd_opt(2023, 1, 1);
    let children = city.children();
    for (i, g) in city.grids.iter().enumerate() {
        assert_eq!(g.valid_from, from);
        assert_eq!(g.valid_to, None);
        if g.level >= 1 {
            let street = city.grid(city.chain(GridId(i as u32))[1]);
            let office = &city.units.get(g.unit.unwrap()).name;
            assert!(office.starts_with(&street.name), "{}: {office} is not {}'s office", g.code, street.name);
            assert!(office.ends_with("办事处") || office.ends_with("人民政府"), "{office}");
        }
        if g.level >= 2 {
            let chief = g.chief.as_ref().expect("communities and unit grids have a chief");
            assert!((2..=3).contains(&chief.name.chars().count()), "{}", chief.name);
            assert!(chief.phone.len() == 11 && chief.phone.starts_with('1'), "{}", chief.phone);
        }
        if g.level == 2 {
            assert!(g.name.ends_with("社区"), "{}", g.name);
            // Unit grids are numbered 01, 02, … inside each community.
            let mut serials: Vec<u64> = children[i].iter().map(|&k| city.grid(k).code.to_string()[12..].parse().unwrap()).collect();
            serials.sort_unstable();
            assert_eq!(serials, (1..=serials.len() as u64).collect::<Vec<_>>());
        }
        if g.level == 3 {
            assert!(g.name.ends_with("网格") && g.name.contains("社区"), "{}", g.name);
        }
    }
}

#[test]
fn too_many_components_are_refused() {
    let spec = DemoSpec { preset: Preset::Tiny, components: Some(MAX_COMPONENTS + 1), seed: 1 };
    match generate(&spec, &quiet) {
        Err(DemoError::TooManyComponents { requested, max }) => {
            assert_eq!((requested, max), (MAX_COMPONENTS + 1, MAX_COMPONENTS))
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("accepted {} components", MAX_COMPONENTS + 1),
    }
}

#[test]
fn progress_is_reported_about_every_percent() {
    let calls = std::cell::RefCell::new(Vec::new());
    let spec = DemoSpec { preset: Preset::Tiny, components: Some(1_000), seed: 3 };
    generate(&spec, &|done, total| calls.borrow_mut().push((done, total))).unwrap();
    let calls = calls.into_inner();
    assert!((50..=110).contains(&calls.len()), "{} calls", calls.len());
    assert!(calls.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 == w[1].1));
    assert_eq!(calls.last(), Some(&(1_000, 1_000)));
}

#[derive(Debug, serde::Deserialize)]
struct RuleRow {
    case_kind: String,
    case_type: String,
    case_name: String,
    scope: String,
    unit: String,
    urgency: String,
    time_limit: String,
    escalation: String,
}

fn check_rules(demo: &DemoCity) {
    let city = &demo.city;
    let mut reader = csv::Reader::from_reader(demo.rules_csv.as_bytes());
    assert_eq!(reader.headers().unwrap(), &csv::StringRecord::from(rules::HEADER.to_vec()));
    let rows: Vec<RuleRow> = reader.deserialize().collect::<Result<_, _>>().unwrap();
    let mut keys = HashSet::new();
    let roles = ["@maintainer", "@owner", "@dept", "@street", "@chief", "@zone"];
    for r in &rows {
        let table = match r.case_kind.as_str() {
            "event" => &city.event_classes,
            "component" => &city.component_classes,
            other => panic!("case_kind {other}"),
        };
        let class = ClassCode::parse(&r.case_type).unwrap();
        assert!(!class.is_major());
        assert_eq!(table.get(class).unwrap().name, r.case_name);
        if let Some(zone) = r.scope.strip_prefix("zone:") {
            let (layer, id) = zone.split_once(':').map_or((zone, None), |(l, i)| (l, Some(i)));
            assert!(city.zones.iter().any(|z| z.layer == layer && id.is_none_or(|id| z.id == id)), "scope {} names a zone of the city", r.scope);
        } else if !r.scope.is_empty() {
            let (gc, level) = crate::model::GridCode::parse(&r.scope, &city.hierarchy).unwrap();
            assert!(level == 1 || level == 2, "scope {} is a street or community", r.scope);
            assert!(city.grid_by_code(gc).is_some(), "scope {} exists", r.scope);
        }
        assert!(roles.contains(&r.unit.as_str()) || city.units.find(&r.unit).is_some(), "unit {}", r.unit);
        assert!(["一般", "紧急", "非常紧急"].contains(&r.urgency.as_str()), "{}", r.urgency);
        let (n, suffix) = r.time_limit.split_at(r.time_limit.len() - 2);
        assert!(n.parse::<u32>().is_ok_and(|n| n > 0) && ["wh", "wd", "cd"].contains(&suffix), "{}", r.time_limit);
        assert!(city.units.find(&r.escalation).is_some(), "escalation {}", r.escalation);
        assert!(
            keys.insert((r.case_kind.clone(), r.case_type.clone(), r.urgency.clone(), r.scope.clone())),
            "two rules for {} {} {} {:?}",
            r.case_kind,
            r.case_type,
            r.urgency,
            r.scope
        );
    }
    let district_rule = |kind: &str, class: ClassCode| rows.iter().any(|r| r.case_kind == kind && r.case_type == class.to_string() && r.scope.is_empty());
    for e in city.event_classes.subclasses().filter(|e| e.code.major() != 21) {
        assert!(district_rule("event", e.code), "no district rule for event {}", e.code);
        let urgent = rows.iter().any(|r| r.case_type == e.code.to_string() && r.case_kind == "event" && r.urgency == "紧急");
        if e.code.major() == 4 {
            assert!(urgent, "emergency {} is urgent", e.code);
        }
    }
    let used: HashSet<ClassCode> = city.components.iter().map(|c| c.class).collect();
    for class in used {
        assert!(district_rule("component", class), "no rule for component class {class}");
    }
    assert!(rows.iter().any(|r| r.case_kind == "component" && r.unit == "@maintainer"));
    let local: Vec<&RuleRow> = rows.iter().filter(|r| !r.scope.is_empty()).collect();
    assert!(local.len() >= 3, "a few local overrides");
    assert!(local.iter().any(|r| r.case_name == "暴露垃圾" && r.unit.ends_with("环卫所") && r.scope.len() == 9));
}

#[test]
fn responsibility_list_is_complete_and_unambiguous() {
    check_rules(tiny());
    check_rules(wuzhong());
}

#[test]
fn frame_maps_metres_to_geodesic_metres() {
    use geo::{Distance, Geodesic, Point};
    for centre in [[120.63, 31.26], [116.36, 39.91]] {
        let f = geometry::Frame::new(centre);
        let o = Point(f.to_ll([0.0, 0.0]));
        for p in [[1000.0f64, 0.0], [0.0, 1000.0], [-3000.0, 4000.0]] {
            let want = p[0].hypot(p[1]);
            let got = Geodesic.distance(o, Point(f.to_ll(p)));
            assert!((got - want).abs() < 1e-3 * want, "{p:?}: {got} m");
        }
    }
}

/// Release-mode timings: `cargo test --release --lib demo::tests::timings -- --ignored --nocapture`.
#[test]
#[ignore]
fn timings() {
    for (preset, components) in [(Preset::Wuzhong, None), (Preset::Xicheng, None), (Preset::Wuzhong, Some(MAX_COMPONENTS))] {
        let t = std::time::Instant::now();
        let demo = generate(&DemoSpec { preset, components, seed: 1 }, &quiet).unwrap();
        println!(
            "{preset:?}: {:?} grids, {} components, {} units in {:.2?}",
            demo.city.level_counts(),
            demo.city.components.len(),
            demo.city.units.len(),
            t.elapsed()
        );
    }
}

/// Robustness over seeds (release: `cargo test --release --lib demo -- --ignored`).
#[test]
#[ignore]
fn many_seeds_stay_valid() {
    for seed in 0..60u64 {
        let d = generate(&DemoSpec { preset: Preset::Tiny, components: Some(3000), seed }, &quiet).unwrap();
        check_tiling(&d.city);
        check_components_in_their_grids(&d, 320506);
        for a in unit_grid_areas_km2(&d.city) {
            assert!((0.01..=0.5).contains(&a), "seed {seed}: {a}");
        }
        check_rules(&d);
    }
    println!("tiny ok");
    for seed in 0..6u64 {
        for preset in [Preset::Wuzhong, Preset::Xicheng] {
            let t = std::time::Instant::now();
            let d = generate(&DemoSpec { preset, components: Some(30_000), seed }, &quiet).unwrap();
            let took = t.elapsed();
            check_tiling(&d.city);
            check_components_in_their_grids(&d, if preset == Preset::Wuzhong { 320506 } else { 110102 });
            let areas = unit_grid_areas_km2(&d.city);
            for &a in &areas {
                assert!((0.01..=0.5).contains(&a), "seed {seed}: {a}");
            }
            let min = areas.iter().cloned().fold(1.0, f64::min);
            let max = areas.iter().cloned().fold(0.0, f64::max);
            let district = d.city.grids[0].geometry.geodesic_area_unsigned() / 1e6;
            check_rules(&d);
            println!("{preset:?} seed {seed}: gen {took:.2?}, district {district:.2} km², unit grids {min:.4}..{max:.4} km², total {:.2?}", t.elapsed());
        }
    }
}

#[test]
fn every_unit_has_a_unique_register_code_of_its_district() {
    let city = &wuzhong().city;
    let mut seen = HashSet::new();
    for (_, unit) in city.units.iter() {
        let code = unit.code.as_deref().unwrap_or_else(|| panic!("{} has no code", unit.name));
        assert!(code.starts_with("320506") && code.len() == 10, "{code}");
        assert!(seen.insert(code.to_owned()), "duplicate unit code {code}");
    }
    let c = &city.components[0];
    let maintainer = city.units.get(c.maintainer.expect("demo components have a maintainer"));
    assert!(maintainer.code.is_some());
}
