//! Store tests on a small hand-built city (no dependency on the demo generator).

use geo_types::{LineString, MultiPolygon, Polygon};

use super::*;
use crate::model::{ComponentFields, GridFields, UnitId};

const COUNTY: &str = "320506";
const UNIT_NAMES: [&str; 10] = [
    "吴中区城市管理局",
    "吴中区市政工程管理处",
    "国网苏州供电公司吴中分公司",
    "苏州市吴中区水务局",
    "中国电信苏州分公司",
    "吴中区园林绿化管理所",
    "吴中区公安分局交通警察大队",
    "长桥街道办事处",
    "越溪街道办事处",
    "苏州吴中环境卫生服务有限公司",
];
const CLASSES: [&str; 4] = ["0101", "0118", "0136", "0203"];
const STATUSES: [&str; 4] = ["完好", "破损", "丢失", "占用"];

/// Deterministic pseudo-random numbers (splitmix64).
struct Mix(u64);
impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn square(x: f64, y: f64, side: f64) -> Polygon<f64> {
    Polygon::new(LineString::from(vec![(x, y), (x + side, y), (x + side, y + side), (x, y + side), (x, y)]), vec![])
}

/// A CJ/T 213 city: one district, `streets` × `communities` × `cells` unit grids, `components`
/// components spread over the unit grids.
fn build_city(streets: usize, communities: usize, cells: usize, components: usize) -> (CityMeta, City) {
    let hierarchy = Hierarchy::cjt213();
    let mut b = CityBuilder::new(hierarchy.clone(), ClassTable::builtin_components(), ClassTable::builtin_events());
    for (i, name) in UNIT_NAMES.iter().enumerate().take(7) {
        b.units_mut().insert(Unit {
            code: Some(format!("{COUNTY}{:03}", i + 1)),
            name: (*name).into(),
            phone: (i % 3 != 2).then(|| format!("0512-6{:03}{:04}", i * 37, i * 1234 % 10_000)),
        });
    }
    let (x0, y0, cell) = (120.512_345_678_9, 31.198_765_432_1, 0.001_234_567_89);
    let side = cell * (cells * communities) as f64;
    // The district: two parts, the first with a hole, to check geometry round trips exactly.
    let mut outer = square(x0, y0, side * streets as f64);
    outer.interiors_push(LineString::from(vec![(x0 + 0.1, y0 + 0.1), (x0 + 0.1, y0 + 0.11), (x0 + 0.11, y0 + 0.1), (x0 + 0.1, y0 + 0.1)]));
    let island = square(x0 - 0.05, y0 - 0.05, 0.01);
    b.add_grid(
        &GridFields { code: COUNTY, name: "吴中区", unit: UNIT_NAMES[0], valid_from: "2005-07-01", ..Default::default() },
        MultiPolygon(vec![outer, island]),
    )
    .unwrap();
    let mut unit_grids = Vec::new();
    for s in 0..streets {
        let street = format!("{COUNTY}{:03}", s + 1);
        let sx = x0 + side * s as f64;
        b.add_grid(
            &GridFields {
                code: &street, name: &format!("第{}街道", s + 1), level: Some(2), parent: COUNTY, unit: UNIT_NAMES[7 + s % 2], ..Default::default()
            },
            MultiPolygon(vec![square(sx, y0, side)]),
        )
        .unwrap();
        for c in 0..communities {
            let community = format!("{street}{:03}", c + 1);
            let cx = sx + cell * (cells * c) as f64;
            b.add_grid(
                &GridFields {
                    code: &community,
                    name: &format!("第{}社区", c + 1),
                    parent: &street,
                    valid_from: if c % 2 == 0 { "2019-01-01" } else { "" },
                    valid_to: if c == 1 { "2030-12-31" } else { "" },
                    ..Default::default()
                },
                MultiPolygon(vec![square(cx, y0, cell * cells as f64)]),
            )
            .unwrap();
            for g in 0..cells {
                let code = format!("{community}{:02}", g + 1);
                let (gx, gy) = (cx + cell * g as f64, y0);
                let n = unit_grids.len();
                b.add_grid(
                    &GridFields {
                        code: &code,
                        name: &format!("{}号网格", g + 1),
                        level: Some(4),
                        parent: &community,
                        unit: if n % 3 == 0 { "" } else { UNIT_NAMES[n % UNIT_NAMES.len()] },
                        chief_name: if n % 4 == 3 { "" } else { "张伟" },
                        chief_phone: if n % 5 == 4 { "" } else { "13800001234" },
                        valid_from: "2020-03-15",
                        valid_to: "",
                    },
                    MultiPolygon(vec![square(gx, gy, cell)]),
                )
                .unwrap();
                unit_grids.push((code, gx, gy));
            }
        }
    }
    b.reserve_components(components);
    let mut rng = Mix(42);
    let mut serials = [0u32; CLASSES.len()];
    for i in 0..components {
        let k = (rng.next() % CLASSES.len() as u64) as usize;
        serials[k] += 1;
        let code = format!("{COUNTY}{}{:06}", CLASSES[k], serials[k]);
        let (grid, gx, gy) = &unit_grids[(rng.next() % unit_grids.len() as u64) as usize];
        let unit = |r: u64| UNIT_NAMES[(r % UNIT_NAMES.len() as u64) as usize];
        let (r1, r2, r3) = (rng.next(), rng.next(), rng.next());
        let day = 1 + i % 28;
        let created = format!("20{:02}-{:02}-{day:02}", 10 + i % 14, 1 + i % 12);
        let updated = format!("2024-{:02}-{day:02}", 1 + i % 12);
        b.add_component(&ComponentFields {
            code: &code,
            class: if i % 9 == 0 { "" } else { CLASSES[k] },
            name: if i % 17 == 0 { "东门口(临时)" } else { "" },
            dept: unit(r1),
            owner: if i % 11 == 0 { "" } else { unit(r2) },
            maintainer: unit(r3),
            status: if i % 5 == 0 { STATUSES[i % 4] } else { "完好" },
            grid: if i % 13 == 0 { "" } else { grid },
            created: if i % 7 == 0 { "" } else { &created },
            updated: if i % 3 == 0 { "" } else { &updated },
            accuracy: ["A", "B", "C", ""][i % 4],
            lon: gx + rng.unit() * cell,
            lat: gy + rng.unit() * cell,
        })
        .unwrap();
    }
    let city = b.finish().unwrap();
    let meta = CityMeta { center: Some([120.631_2, 31.262_5]), ..CityMeta::new("苏州市吴中区", hierarchy) };
    (meta, city)
}

fn small() -> (CityMeta, City) {
    build_city(2, 2, 3, 48)
}

const RULES_CSV: &str = "event,unit,hours\n0101,吴中区市政工程管理处,24\n0118,国网苏州供电公司吴中分公司,48\n";

fn save(dir: &Path, meta: &CityMeta, city: &City) -> Versions {
    Store::open(dir).unwrap().save_city(meta, city, Some(RULES_CSV), "test", &|_, _| {}).unwrap()
}

fn load(dir: &Path) -> LoadedCity {
    Store::open(dir).unwrap().load_city(&|_, _| {}).unwrap()
}

fn load_error(dir: &Path) -> String {
    Store::open(dir).unwrap().load_city(&|_, _| {}).err().expect("loading must fail").to_string()
}

/// Every field of every grid and component as text, units by name and parents by code, in
/// code order.
fn fingerprint(city: &City) -> Vec<String> {
    let unit = |u: Option<UnitId>| u.map(|u| city.units.get(u).name.clone()).unwrap_or_default();
    let mut rows: Vec<String> = city
        .grids
        .iter()
        .map(|g| {
            format!(
                "grid {} {} {} {:?} {} {:?} {:?} {:?} {:?}",
                g.code,
                g.name,
                g.level,
                g.parent.map(|p| city.grid(p).code),
                unit(g.unit),
                g.chief,
                g.valid_from,
                g.valid_to,
                g.geometry
            )
        })
        .collect();
    rows.extend(city.components.iter().map(|c| {
        format!(
            "component {} ({:?}, {:?}) {} {:?} {:?} {} {} {} {} {:?} {:?} {:?}",
            c.code,
            c.location.x.to_bits(),
            c.location.y.to_bits(),
            c.class,
            c.status,
            c.accuracy,
            city.names.get(c.name),
            unit(c.dept),
            unit(c.owner),
            unit(c.maintainer),
            c.grid.map(|g| city.grid(g).code),
            c.created,
            c.updated
        )
    }));
    rows.sort();
    rows
}

fn units(city: &City) -> Vec<Unit> {
    let mut u: Vec<Unit> = city.units.iter().map(|(_, u)| u.clone()).collect();
    u.sort_by(|a, b| a.name.cmp(&b.name));
    u
}

#[test]
fn the_test_city_has_what_the_tests_need() {
    let (_, city) = small();
    assert_eq!(city.level_counts(), [1, 2, 4, 12]);
    assert_eq!(city.components.len(), 48);
    let statuses: std::collections::BTreeSet<_> = city.components.iter().map(|c| c.status).collect();
    assert_eq!(statuses.len(), 4, "all four statuses occur");
    assert!(city.components.iter().any(|c| c.grid.is_none() && c.owner.is_none() && c.created.is_none()));
    assert!(city.grids.iter().any(|g| g.chief.as_ref().is_some_and(|c| c.name.is_empty())));
    assert!(city.units.iter().any(|(_, u)| u.code.is_some() && u.phone.is_none()));
}

#[test]
fn round_trip_keeps_every_field_and_coordinate() {
    let (meta, city) = small();
    let dir = tempfile::tempdir().unwrap();
    let versions = save(dir.path(), &meta, &city);
    assert_eq!(versions.0.keys().collect::<Vec<_>>(), ["city", "components", "grids", "rules", "units"]);
    assert!(versions.0.values().all(|&v| v == 1));
    let loaded = load(dir.path());
    assert_eq!(fingerprint(&loaded.city), fingerprint(&city));
    assert_eq!(units(&loaded.city), units(&city), "unit register keeps codes and phones");
    assert_eq!(loaded.meta, meta);
    assert_eq!(loaded.versions, versions);
    assert_eq!(loaded.rules_csv.as_deref(), Some(RULES_CSV));

    let store = Store::open(dir.path()).unwrap();
    let m = store.manifest();
    let c = m.current("components").unwrap();
    assert_eq!((c.version, c.file.as_str(), c.features), (1, "layers/components/1.fgb", 48));
    assert_eq!(c.bytes, std::fs::metadata(dir.path().join(&c.file)).unwrap().len());
    assert_eq!(c.source, "test");
    assert!(chrono::DateTime::parse_from_rfc3339(&c.created).is_ok() && c.created.ends_with('Z'), "{}", c.created);
    assert_eq!(m.current("grids").unwrap().features, 19);
    assert_eq!(m.current("units").unwrap().features, city.units.len() as u64);
    assert_eq!(m.current("rules").unwrap().features, 2);
    let toml = std::fs::read_to_string(dir.path().join("city.toml")).unwrap();
    assert!(toml.contains("name = \"苏州市吴中区\"") && toml.contains("code_digits = 14"), "{toml}");
    let csv = std::fs::read_to_string(dir.path().join("units/1.csv")).unwrap();
    assert!(csv.starts_with("code,name,phone\n320506001,吴中区城市管理局,0512-6"), "{csv}");
}

#[test]
fn layer_headers_name_the_crs_and_the_fields() {
    let (meta, city) = small();
    let dir = tempfile::tempdir().unwrap();
    save(dir.path(), &meta, &city);
    for (file, geometry, fields) in [
        ("layers/grids/1.fgb", flatgeobuf::GeometryType::MultiPolygon, &fgb_names(&city, true)),
        ("layers/components/1.fgb", flatgeobuf::GeometryType::Point, &fgb_names(&city, false)),
    ] {
        let f = std::io::BufReader::new(std::fs::File::open(dir.path().join(file)).unwrap());
        let reader = flatgeobuf::FgbReader::open(f).unwrap();
        let h = reader.header();
        assert_eq!(h.geometry_type(), geometry);
        let crs = h.crs().unwrap();
        assert_eq!((crs.org(), crs.code()), (Some("EPSG"), 4326));
        assert!(h.title().unwrap().starts_with("苏州市吴中区: "));
        assert!(h.description().is_some());
        assert!(h.index_node_size() > 0, "{file} has its packed R-tree");
        let names: Vec<&str> = h.columns().unwrap().iter().map(|c| c.name()).collect();
        assert_eq!(&names, fields);
        let dates: Vec<&str> = h.columns().unwrap().iter().filter(|c| c.type_() == flatgeobuf::ColumnType::DateTime).map(|c| c.name()).collect();
        assert_eq!(dates.len(), 2, "{file}: {dates:?}");
    }
}

fn fgb_names(_: &City, grids: bool) -> Vec<&'static str> {
    if grids {
        vec!["code", "name", "level", "parent", "unit", "chief_name", "chief_phone", "valid_from", "valid_to"]
    } else {
        vec!["code", "class", "name", "dept", "owner", "maintainer", "status", "grid", "created", "updated", "accuracy"]
    }
}

#[test]
fn an_identical_city_gives_identical_bytes() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (meta, city) = small();
    save(a.path(), &meta, &city);
    let (meta, city) = small(); // built again, independently
    save(b.path(), &meta, &city);
    for file in ["layers/grids/1.fgb", "layers/components/1.fgb", "units/1.csv", "rules/1.csv", "city.toml"] {
        let (x, y) = (std::fs::read(a.path().join(file)).unwrap(), std::fs::read(b.path().join(file)).unwrap());
        assert!(x == y, "{file} differs between two saves of the same city");
    }
}

#[test]
fn a_second_save_is_version_two_and_keeps_version_one() {
    let (meta, city) = small();
    let dir = tempfile::tempdir().unwrap();
    save(dir.path(), &meta, &city);
    let mut store = Store::open(dir.path()).unwrap();
    let v = store.save_city(&meta, &city, None, "second", &|_, _| {}).unwrap();
    assert_eq!((v.get("grids"), v.get("components"), v.get("units")), (Some(2), Some(2), Some(2)));
    assert_eq!(v.get("rules"), Some(1), "rules not given: version 1 stays current");
    for file in ["layers/grids/1.fgb", "layers/grids/2.fgb", "layers/components/1.fgb", "layers/components/2.fgb", "units/1.csv", "units/2.csv"] {
        assert!(dir.path().join(file).exists(), "{file}");
    }
    assert!(!dir.path().join("rules/2.csv").exists());
    let store = Store::open(dir.path()).unwrap();
    let grids = store.manifest().dataset("grids").unwrap();
    assert_eq!((grids.current, grids.versions.len()), (2, 2));
    assert_eq!(grids.versions[1].source, "second");
    let loaded = store.load_city(&|_, _| {}).unwrap();
    assert_eq!(loaded.versions, v);
    assert_eq!(loaded.rules_csv.as_deref(), Some(RULES_CSV));
    assert_eq!(fingerprint(&loaded.city), fingerprint(&city));
}

#[test]
fn a_crash_before_a_rename_leaves_the_previous_version_current() {
    let (meta, city) = small();
    let dir = tempfile::tempdir().unwrap();
    save(dir.path(), &meta, &city);
    let other = CityMeta { name: "改名".into(), ..meta.clone() };
    let mut store = Store::open(dir.path()).unwrap();
    let e = store.save_city_with_crash(&other, &city, None, "t", &|_, _| {}, Some(CrashPoint::BeforeLayerRename)).unwrap_err();
    assert!(matches!(e, StoreError::InjectedCrash(_)));
    assert!(dir.path().join("layers/grids/2.fgb.tmp").exists(), "the crash left a synced temp file");
    assert!(!dir.path().join("layers/grids/2.fgb").exists());
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert!(!dir.path().join("layers/grids/2.fgb.tmp").exists(), "open removed the temp file");
    let loaded = store.load_city(&|_, _| {}).unwrap();
    assert_eq!(loaded.versions.get("grids"), Some(1));
    assert_eq!(loaded.meta, meta);
    assert_eq!(fingerprint(&loaded.city), fingerprint(&city));
}

#[test]
fn a_crash_before_the_manifest_rename_leaves_no_partial_version() {
    let (meta, city) = small();
    let dir = tempfile::tempdir().unwrap();
    save(dir.path(), &meta, &city);
    let (_, bigger) = build_city(2, 2, 3, 60);
    let other = CityMeta { name: "改名".into(), ..meta.clone() };
    let mut store = Store::open(dir.path()).unwrap();
    store.save_city_with_crash(&other, &bigger, Some("x\n"), "t", &|_, _| {}, Some(CrashPoint::BeforeManifestRename)).unwrap_err();
    for file in ["layers/grids/2.fgb", "layers/components/2.fgb", "units/2.csv", "rules/2.csv", "city.toml.tmp"] {
        assert!(dir.path().join(file).exists(), "{file} was written before the crash");
    }
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.versions().0.values().collect::<Vec<_>>(), [&1, &1, &1, &1, &1]);
    for orphan in ["layers/grids/2.fgb", "layers/components/2.fgb", "units/2.csv", "rules/2.csv", "city.toml.tmp"] {
        assert!(!dir.path().join(orphan).exists(), "{orphan} was not removed");
    }
    let loaded = store.load_city(&|_, _| {}).unwrap();
    assert_eq!(loaded.meta, meta, "city.toml is the committed one");
    assert_eq!(fingerprint(&loaded.city), fingerprint(&city));
    // The next save takes version 2 cleanly.
    assert_eq!(save(dir.path(), &other, &bigger).get("grids"), Some(2));
    assert_eq!(load(dir.path()).city.components.len(), 60);
}

#[test]
fn a_crash_after_the_manifest_rename_is_finished_at_open() {
    let (meta, city) = small();
    let dir = tempfile::tempdir().unwrap();
    save(dir.path(), &meta, &city);
    let other = CityMeta { name: "改名".into(), center: Some([120.0, 31.0]), ..meta.clone() };
    let mut store = Store::open(dir.path()).unwrap();
    store.save_city_with_crash(&other, &city, None, "t", &|_, _| {}, Some(CrashPoint::BeforeCityTomlRename)).unwrap_err();
    assert!(dir.path().join("city.toml.tmp").exists());
    drop(store);
    let loaded = load(dir.path());
    assert_eq!(loaded.versions.get("grids"), Some(2), "the save was committed");
    assert_eq!(loaded.meta, other, "open finished the city.toml rename");
    assert!(!dir.path().join("city.toml.tmp").exists());
}

#[test]
fn a_lost_city_toml_is_restored_from_the_manifest() {
    let (meta, city) = small();
    let dir = tempfile::tempdir().unwrap();
    save(dir.path(), &meta, &city);
    std::fs::remove_file(dir.path().join("city.toml")).unwrap();
    assert_eq!(load(dir.path()).meta, meta);
}

#[test]
fn a_failed_save_leaves_nothing_behind() {
    let (meta, city) = small();
    let dir = tempfile::tempdir().unwrap();
    save(dir.path(), &meta, &city);
    // The rules folder cannot be written: a plain file is in its place.
    std::fs::rename(dir.path().join("rules"), dir.path().join("rules-away")).unwrap();
    std::fs::write(dir.path().join("rules"), b"in the way").unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let e = store.save_city(&meta, &city, Some(RULES_CSV), "t", &|_, _| {}).unwrap_err();
    assert!(e.to_string().contains("rules"), "{e}");
    assert_eq!(store.versions().get("grids"), Some(1));
    for file in ["layers/grids/2.fgb", "layers/components/2.fgb", "units/2.csv", "city.toml.tmp", "manifest.json.tmp"] {
        assert!(!dir.path().join(file).exists(), "{file} was left behind");
    }
    // A hierarchy that does not match the city is refused before anything is written.
    let wrong = CityMeta { hierarchy: Hierarchy::beijing_db11(), ..meta.clone() };
    assert!(matches!(store.save_city(&wrong, &city, None, "t", &|_, _| {}), Err(StoreError::Invalid(_))));
}

#[test]
fn open_removes_only_what_it_wrote() {
    let (meta, city) = small();
    let dir = tempfile::tempdir().unwrap();
    save(dir.path(), &meta, &city);
    let grids = dir.path().join("layers/grids");
    std::fs::write(grids.join("7.fgb"), b"orphan").unwrap();
    std::fs::write(grids.join("README.txt"), b"notes").unwrap();
    std::fs::write(grids.join("backup.fgb"), b"someone's copy").unwrap();
    std::fs::write(dir.path().join("manifest.json.tmp"), b"{").unwrap();
    Store::open(dir.path()).unwrap();
    assert!(!grids.join("7.fgb").exists());
    assert!(!dir.path().join("manifest.json.tmp").exists());
    assert!(grids.join("README.txt").exists() && grids.join("backup.fgb").exists());
    assert!(grids.join("1.fgb").exists());
}

#[test]
fn a_truncated_or_garbage_layer_is_a_clear_error_naming_the_file() {
    let (meta, city) = small();
    let dir = tempfile::tempdir().unwrap();
    save(dir.path(), &meta, &city);
    let path = dir.path().join("layers/components/1.fgb");
    let good = std::fs::read(&path).unwrap();
    for cut in [good.len() / 2, good.len() - 1, 20, 0] {
        std::fs::write(&path, &good[..cut]).unwrap();
        let e = load_error(dir.path());
        assert!(e.contains("layers/components/1.fgb") && e.contains("not a readable FlatGeobuf layer"), "cut {cut}: {e}");
    }
    // Cut exactly after the first feature: flatgeobuf reads this as a short layer.
    let first_feature_end = {
        let header = 12 + u32::from_le_bytes(good[8..12].try_into().unwrap()) as usize;
        let index = flatgeobuf::packed_r_tree::PackedRTree::index_size(48, 16);
        let at = header + index;
        at + 4 + u32::from_le_bytes(good[at..at + 4].try_into().unwrap()) as usize
    };
    std::fs::write(&path, &good[..first_feature_end]).unwrap();
    let e = load_error(dir.path());
    assert!(e.contains("layers/components/1.fgb") && e.contains("announces 48 features but the file holds 1"), "{e}");
    std::fs::write(&path, b"garbage").unwrap();
    let e = load_error(dir.path());
    assert!(e.contains("layers/components/1.fgb"), "{e}");
    std::fs::remove_file(&path).unwrap();
    let e = load_error(dir.path());
    assert!(e.contains("layers/components/1.fgb"), "{e}");
}

#[test]
fn a_corrupt_property_length_is_an_error_not_a_panic() {
    let (meta, city) = small();
    let dir = tempfile::tempdir().unwrap();
    save(dir.path(), &meta, &city);
    let path = dir.path().join("layers/components/1.fgb");
    let mut bytes = std::fs::read(&path).unwrap();
    // The status column (index 6) holding "完好": u16 6, u32 6, then 6 bytes of UTF-8.
    let mut needle = vec![6, 0, 6, 0, 0, 0];
    needle.extend("完好".as_bytes());
    let at = bytes.windows(needle.len()).position(|w| w == needle).expect("a status property");
    bytes[at + 2..at + 6].copy_from_slice(&0x00ff_ffffu32.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let e = load_error(dir.path());
    assert!(e.contains("layers/components/1.fgb") && e.contains("property data ends early"), "{e}");
}

#[test]
fn a_garbage_manifest_or_city_toml_is_a_clear_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("manifest.json"), b"{not json").unwrap();
    let e = Store::open(dir.path()).err().expect("must fail").to_string();
    assert!(e.contains("manifest.json") && e.contains("not a valid manifest"), "{e}");
    std::fs::write(dir.path().join("manifest.json"), br#"{"format": 99, "city": null, "datasets": {}}"#).unwrap();
    let e = Store::open(dir.path()).err().expect("must fail").to_string();
    assert!(e.contains("manifest.json") && e.contains("newer"), "{e}");

    let (meta, city) = small();
    let dir = tempfile::tempdir().unwrap();
    save(dir.path(), &meta, &city);
    std::fs::write(dir.path().join("city.toml"), b"name = [").unwrap();
    let e = load_error(dir.path());
    assert!(e.contains("city.toml") && e.contains("not valid city settings"), "{e}");
}

#[test]
fn an_empty_directory_is_empty_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("new")).unwrap();
    assert!(!dir.path().join("new").exists(), "opening to read creates nothing; the first write creates the directory");
    assert!(store.is_empty());
    assert_eq!(store.versions(), Versions::default());
    let e = store.load_city(&|_, _| {}).err().expect("must fail").to_string();
    assert!(e.contains("holds no city yet") && e.contains("new"), "{e}");
}

#[test]
fn local_class_files_extend_the_tables_at_load() {
    let (meta, city) = small();
    let dir = tempfile::tempdir().unwrap();
    save(dir.path(), &meta, &city);
    std::fs::write(dir.path().join("component_classes.csv"), "code,name,name_en\n21,城市家具,street furniture\n2101,共享单车停放点,bike-share parking\n")
        .unwrap();
    std::fs::write(dir.path().join("event_classes.csv"), "code,name,name_en\n21,本地事件,local events\n2101,共享单车乱停放,misparked bikes\n").unwrap();
    let city = load(dir.path()).city;
    let class = crate::model::ClassCode::parse("2101").unwrap();
    assert_eq!(city.component_classes.get(class).unwrap().name, "共享单车停放点");
    assert_eq!(city.event_classes.get(class).unwrap().name, "共享单车乱停放");
    std::fs::write(dir.path().join("component_classes.csv"), "code,name\nabcd,坏的\n").unwrap();
    let e = load_error(dir.path());
    assert!(e.contains("component_classes.csv"), "{e}");
}

/// Save and load of a generated city of `CITYGRID_BENCH_COMPONENTS` (default 1,000,000)
/// components, timed. With `CITYGRID_BENCH_DIR` set, `..._save` writes there and `..._load`
/// reads from there (run them as two processes to measure each one's peak RSS):
/// `cargo test --release --lib store::tests::bench -- --ignored --nocapture --test-threads 1`
fn bench_dir() -> (Option<tempfile::TempDir>, PathBuf) {
    match std::env::var_os("CITYGRID_BENCH_DIR") {
        Some(d) => (None, PathBuf::from(d)),
        None => {
            let t = tempfile::tempdir().unwrap();
            let p = t.path().to_owned();
            (Some(t), p)
        }
    }
}

#[test]
#[ignore = "benchmark: 1M components; run in release"]
fn bench_million_save() {
    let n: usize = std::env::var("CITYGRID_BENCH_COMPONENTS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let (_keep, dir) = bench_dir();
    let t = std::time::Instant::now();
    let (meta, city) = build_city(10, 10, 10, n);
    eprintln!("built {} components, {} grids in {:.2?}", city.components.len(), city.grids.len(), t.elapsed());
    let t = std::time::Instant::now();
    Store::open(&dir).unwrap().save_city(&meta, &city, Some(RULES_CSV), "bench", &|_, _| {}).unwrap();
    let file = Store::open(&dir).unwrap().manifest().current("components").unwrap().clone();
    eprintln!("saved in {:.2?}; {} = {} bytes ({:.0} B/component)", t.elapsed(), file.file, file.bytes, file.bytes as f64 / n as f64);
}

#[test]
#[ignore = "benchmark: 1M components; run in release"]
fn bench_million_load() {
    let (_keep, dir) = bench_dir();
    if Store::open(&dir).unwrap().is_empty() {
        let (meta, city) = build_city(10, 10, 10, 1_000_000);
        Store::open(&dir).unwrap().save_city(&meta, &city, None, "bench", &|_, _| {}).unwrap();
    }
    let t = std::time::Instant::now();
    let loaded = Store::open(&dir).unwrap().load_city(&|_, _| {}).unwrap();
    eprintln!("loaded {} components in {:.2?}", loaded.city.components.len(), t.elapsed());
}
