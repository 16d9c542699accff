//! The clean demo cities have no finding; seeded damage gives exactly the findings expected,
//! with areas from independent oracles (the exact ellipsoidal area, by Green's theorem, of a
//! polygon built by hand, of a deleted grid) and locations inside the damaged area.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use std::time::Instant;

use geo::{Contains, GeodesicArea};
use geo_types::{Coord, LineString, MultiPolygon, Point, Polygon, polygon};

use super::*;
use crate::crs::distance::LocalPlane;
use crate::demo::{DemoCity, DemoSpec, Preset, generate};

fn quiet(_: u64, _: u64) {}

fn demo(preset: Preset, seed: u64) -> DemoCity {
    generate(&DemoSpec { preset, components: Some(0), seed }, &quiet).unwrap()
}

fn tiny() -> &'static DemoCity {
    static CITY: OnceLock<DemoCity> = OnceLock::new();
    CITY.get_or_init(|| demo(Preset::Tiny, 42))
}

fn wuzhong() -> &'static DemoCity {
    static CITY: OnceLock<DemoCity> = OnceLock::new();
    CITY.get_or_init(|| demo(Preset::Wuzhong, 7))
}

fn opts() -> TopologyOptions {
    TopologyOptions::default()
}

fn check(city: &City, records: &[GridRecord]) -> TopologyReport {
    check_grids(records, &city.hierarchy, &opts())
}

/// Asserts the exact number of findings of each kind.
#[track_caller]
fn assert_counts(r: &TopologyReport, overlaps: usize, gaps: usize, outside: usize, codes: usize, missing: usize) {
    let got = (r.overlaps.len(), r.gaps.len(), r.outside_parent.len(), r.bad_codes.len(), r.missing_levels.len());
    assert_eq!(got, (overlaps, gaps, outside, codes, missing), "{}", serde_json::to_string_pretty(r).unwrap());
    assert!(r.bad_geometry.is_empty() && r.check_failed.is_empty(), "{r:#?}");
    assert!(!r.truncated);
}

#[track_caller]
fn assert_close(got: f64, want: f64, rel: f64) {
    assert!((got - want).abs() <= rel * want.abs() + 1e-6, "got {got}, want {want} (±{rel} relative)");
}

/// The oracle for areas, independent of [`straight_edge_area_m2`]: the exact area on the WGS84
/// ellipsoid of the region bounded by straight lon/lat edges, `∬ M·N·cos φ dφ dλ`, by Green's
/// theorem as `−∮ F(φ) dλ` with `F' = M·N·cos φ` in closed form (the authalic zone function),
/// each edge integrated by 5-point Gauss–Legendre. Holes are subtracted.
fn exact_area(p: &Polygon<f64>) -> f64 {
    let a = 6_378_137.0_f64;
    let f = 1.0_f64 / 298.257223563;
    let e2 = f * (2.0 - f);
    let e = e2.sqrt();
    let zone = |phi: f64| {
        let s = phi.sin();
        a * a * (1.0 - e2) * (s / (2.0 * (1.0 - e2 * s * s)) + (e * s).atanh() / (2.0 * e))
    };
    const NODES: [(f64, f64); 5] = [
        (0.0, 0.568_888_888_888_888_9),
        (0.538_469_310_105_683_1, 0.478_628_670_499_366_5),
        (-0.538_469_310_105_683_1, 0.478_628_670_499_366_5),
        (0.906_179_845_938_664, 0.236_926_885_056_189_1),
        (-0.906_179_845_938_664, 0.236_926_885_056_189_1),
    ];
    let ring = |r: &LineString<f64>| {
        let f0 = zone(r.0[0].y.to_radians());
        let mut sum = 0.0;
        for w in r.0.windows(2) {
            let (p0, p1) = (w[0].y.to_radians(), w[1].y.to_radians());
            let mean: f64 = NODES.iter().map(|&(x, wt)| wt / 2.0 * (zone(p0 + (x + 1.0) / 2.0 * (p1 - p0)) - f0)).sum();
            sum -= (w[1].x - w[0].x).to_radians() * mean;
        }
        sum.abs()
    };
    ring(p.exterior()) - p.interiors().iter().map(ring).sum::<f64>()
}

fn exact_area_mp(mp: &MultiPolygon<f64>) -> f64 {
    mp.0.iter().map(exact_area).sum()
}

fn inside(mp: &MultiPolygon<f64>, at: [f64; 2]) -> bool {
    mp.contains(&Point::new(at[0], at[1]))
}

fn unit_indices(city: &City, records: &[GridRecord]) -> Vec<usize> {
    let unit = city.hierarchy.unit_level() as u8 + 1;
    (0..records.len()).filter(|&i| records[i].level == Some(unit)).collect()
}

fn key(c: Coord<f64>) -> (u64, u64) {
    (c.x.to_bits(), c.y.to_bits())
}

/// A vertex of unit grid `a` shared with exactly one other unit grid `b`, whose two ring
/// neighbours are vertices of `b` too, so it lies inside the `a`–`b` border; `siblings` chooses
/// whether `a` and `b` have the same parent. The vertex is pushed `push_m` metres into `b`
/// (perpendicular to its neighbours' chord). Returns `(a, b, damaged records, hand-made
/// polygon of the area `a` gains)`; that polygon lies in `b` by construction and is checked to.
fn push_vertex(city: &City, siblings: bool, push_m: f64) -> (usize, usize, Vec<GridRecord>, Polygon<f64>) {
    let records = GridRecord::from_city(city);
    let units = unit_indices(city, &records);
    let mut owners: HashMap<(u64, u64), Vec<usize>> = HashMap::new();
    let mut vertices: Vec<HashSet<(u64, u64)>> = vec![HashSet::new(); records.len()];
    for &i in &units {
        for c in &records[i].geometry.0[0].exterior().0 {
            if vertices[i].insert(key(*c)) {
                owners.entry(key(*c)).or_default().push(i);
            }
        }
    }
    for &a in &units {
        let ring = &records[a].geometry.0[0].exterior().0;
        let n = ring.len() - 1; // closed ring
        for k in 0..n {
            let (prev, v, next) = (ring[(k + n - 1) % n], ring[k], ring[(k + 1) % n]);
            let o = &owners[&key(v)];
            if o.len() != 2 {
                continue;
            }
            let b = if o[0] == a { o[1] } else { o[0] };
            if !vertices[b].contains(&key(prev)) || !vertices[b].contains(&key(next)) {
                continue;
            }
            if (records[a].parent == records[b].parent) != siblings {
                continue;
            }
            // `a` is counter-clockwise, so `b` lies to the right of prev → next.
            let plane = LocalPlane::new(v);
            let (p, q, w) = (plane.to_xy(prev), plane.to_xy(next), plane.to_xy(v));
            let (dx, dy) = (q[0] - p[0], q[1] - p[1]);
            let len = dx.hypot(dy);
            if len < 20.0 {
                continue;
            }
            let moved = plane.to_lonlat([w[0] + dy / len * push_m, w[1] - dx / len * push_m]);
            // Clockwise as built (it lies right of a's counter-clockwise border): orient it.
            let gained = Polygon::new(LineString(vec![prev, v, next, moved, prev]), vec![]).orient(Direction::Default);
            let b_poly = &records[b].geometry.0[0];
            if !b_poly.contains(&Point::from(moved)) || !b_poly.contains(&gained) || exact_area(&gained) < 20.0 {
                continue;
            }
            let mut damaged = records.clone();
            let mut ring = ring.clone();
            ring[k] = moved;
            if k == 0 {
                ring[n] = moved;
            }
            damaged[a].geometry = MultiPolygon(vec![Polygon::new(LineString(ring), vec![])]);
            return (a, b, damaged, gained);
        }
    }
    panic!("no vertex to push (siblings: {siblings})");
}

#[test]
fn clean_demo_cities_have_no_finding() {
    for (name, demo) in [("tiny", tiny()), ("wuzhong", wuzhong())] {
        let r = check_city(&demo.city, &opts());
        assert!(r.is_clean(), "{name}: {}", serde_json::to_string_pretty(&r).unwrap());
        assert_eq!(r.counts.per_level, demo.city.level_counts(), "{name}");
        assert!(r.counts.pairs_tested > 0, "{name}: the R-tree found neighbours");
        // The generator shares the very same points between neighbours: not even a sliver.
        assert_eq!((r.counts.slivers_ignored, r.counts.sliver_area_m2), (0, 0.0), "{name}");
    }
    // Touching grids are tested, but far fewer than all pairs.
    let r = check_city(&wuzhong().city, &opts());
    let n = wuzhong().city.grids.len();
    assert!(r.counts.pairs_tested < n * 10, "{} pairs of {n} grids", r.counts.pairs_tested);
}

#[test]
fn a_vertex_pushed_into_a_sibling_is_one_overlap() {
    for demo in [tiny(), wuzhong()] {
        vertex_pushed_into_a_sibling(&demo.city);
    }
}

fn vertex_pushed_into_a_sibling(city: &City) {
    let (a, b, damaged, gained) = push_vertex(city, true, 5.0);
    let r = check(city, &damaged);
    assert_counts(&r, 1, 0, 0, 0, 0);
    let o = &r.overlaps[0];
    assert_eq!((o.a.as_str(), o.b.as_str()), (damaged[a.min(b)].code.as_str(), damaged[a.max(b)].code.as_str()));
    assert!(o.same_parent);
    assert_eq!((o.level, o.pieces), (4, 1));
    assert_close(o.area_m2, exact_area(&gained), 1e-3);
    assert!(gained.contains(&Point::new(o.location[0], o.location[1])), "{o:?}");
    assert!(inside(&damaged[a].geometry, o.location) && inside(&damaged[b].geometry, o.location));
}

#[test]
fn a_grid_pushed_across_its_community_is_outside_and_overlaps_the_neighbour() {
    for demo in [tiny(), wuzhong()] {
        grid_pushed_across_its_community(&demo.city);
    }
}

fn grid_pushed_across_its_community(city: &City) {
    let (a, b, damaged, gained) = push_vertex(city, false, 5.0);
    let r = check(city, &damaged);
    assert_counts(&r, 1, 0, 1, 0, 0);
    let want = exact_area(&gained);
    let o = &r.overlaps[0];
    assert!(!o.same_parent);
    let mut pair = [o.a.as_str(), o.b.as_str()];
    pair.sort_unstable();
    let mut expected = [damaged[a].code.as_str(), damaged[b].code.as_str()];
    expected.sort_unstable();
    assert_eq!(pair, expected);
    assert_close(o.area_m2, want, 1e-3);
    let out = &r.outside_parent[0];
    assert_eq!(out.code, damaged[a].code);
    assert_eq!(Some(&out.parent), damaged[a].parent.as_ref());
    assert_close(out.area_m2, want, 1e-3);
    for at in [o.location, out.location] {
        assert!(gained.contains(&Point::new(at[0], at[1])), "{at:?}");
    }
}

#[test]
fn a_deleted_grid_is_one_gap_of_its_area_in_its_community() {
    for demo in [tiny(), wuzhong()] {
        let city = &demo.city;
        let mut records = GridRecord::from_city(city);
        let units = unit_indices(city, &records);
        let gone = records.remove(units[units.len() / 2]);
        let r = check(city, &records);
        assert_counts(&r, 0, 1, 0, 0, 0);
        let g = &r.gaps[0];
        assert_eq!(Some(&g.parent), gone.parent.as_ref());
        assert_eq!((g.level, g.level_name.as_str()), (3, "社区"));
        assert_close(g.area_m2, exact_area_mp(&gone.geometry), 1e-4);
        assert!(inside(&gone.geometry, g.location), "{g:?}");
    }
}

#[test]
fn a_code_not_extending_its_parent_is_one_bad_code() {
    let city = &tiny().city;
    let mut records = GridRecord::from_city(city);
    let units = unit_indices(city, &records);
    let victim = units[0];
    let other_community = records.iter().find(|r| r.level == Some(3) && Some(&r.code) != records[victim].parent.as_ref()).unwrap().code.clone();
    let new_code = format!("{other_community}99");
    assert!(records.iter().all(|r| r.code != new_code));
    records[victim].code = new_code.clone();
    let r = check(city, &records);
    assert_counts(&r, 0, 0, 0, 1, 0);
    assert_eq!(r.bad_codes[0].kind, CodeIssueKind::NotExtendingParent);
    assert_eq!(r.bad_codes[0].code, new_code);
    assert_eq!(r.bad_codes[0].parent, records[victim].parent);
}

#[test]
fn a_grid_skipping_a_level_is_one_missing_level_and_leaves_a_gap() {
    let city = &tiny().city;
    let mut records = GridRecord::from_city(city);
    let victim = unit_indices(city, &records)[3];
    let community = records[victim].parent.clone().unwrap();
    let street = records.iter().find(|r| r.code == community).unwrap().parent.clone().unwrap();
    records[victim].parent = Some(street.clone());
    let r = check(city, &records);
    // The grid's code still extends the street's; its community now lacks it: one gap there.
    assert_counts(&r, 0, 1, 0, 0, 1);
    let m = &r.missing_levels[0];
    assert_eq!(m.kind, MissingLevelKind::NotOneLevelUp);
    assert_eq!((m.code.as_ref(), m.parent.as_ref(), m.level), (Some(&records[victim].code), Some(&street), Some(4)));
    assert_eq!(r.gaps[0].parent, community);
    // The boolean operations leave a few rounding slivers around the hole (here 4, ~1e-5 m²).
    assert!(r.counts.sliver_area_m2 < 0.01, "{:?}", r.counts);
    assert_close(r.gaps[0].area_m2, exact_area_mp(&records[victim].geometry), 1e-4);

    // No parent at all: the same, as `no_parent`.
    records[victim].parent = None;
    let r = check(city, &records);
    assert_counts(&r, 0, 1, 0, 0, 1);
    assert_eq!(r.missing_levels[0].kind, MissingLevelKind::NoParent);
}

#[test]
fn an_empty_level_is_reported_once_not_as_one_gap_per_community() {
    let city = &tiny().city;
    let mut records = GridRecord::from_city(city);
    records.retain(|r| r.level != Some(4));
    let r = check(city, &records);
    assert_counts(&r, 0, 0, 0, 0, 1);
    assert_eq!(r.missing_levels[0].kind, MissingLevelKind::EmptyLevel);
    assert_eq!(r.missing_levels[0].level, Some(4));
    assert_eq!(r.counts.per_level, [1, 3, 6, 0]);
}

#[test]
fn findings_are_capped_but_counted() {
    let city = &tiny().city;
    let mut records = GridRecord::from_city(city);
    let units = unit_indices(city, &records);
    let (first, last) = (units[0], *units.last().unwrap());
    records.remove(last);
    records.remove(first);
    let r = check_grids(&records, &city.hierarchy, &TopologyOptions { max_findings_per_kind: 1, ..opts() });
    assert_eq!((r.gaps.len(), r.counts.gaps), (1, 2));
    assert!(r.truncated);
}

#[test]
fn clockwise_outlines_are_normalised() {
    let city = &tiny().city;
    let mut records = GridRecord::from_city(city);
    for r in &mut records {
        r.geometry = r.geometry.orient(Direction::Reversed);
    }
    assert!(check(city, &records).is_clean());
}

// A small hand-made layer: squares in lon/lat near Suzhou.

fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> MultiPolygon<f64> {
    MultiPolygon(vec![polygon![(x: x0, y: y0), (x: x1, y: y0), (x: x1, y: y1), (x: x0, y: y1), (x: x0, y: y0)]])
}

fn rec(code: &str, level: Option<u8>, parent: &str, geometry: MultiPolygon<f64>) -> GridRecord {
    GridRecord { code: code.into(), level, parent: (!parent.is_empty()).then(|| parent.into()), geometry }
}

/// District › street › community › two unit grids side by side, tiling it exactly.
fn squares() -> Vec<GridRecord> {
    let all = rect(120.60, 31.30, 120.602, 31.301);
    vec![
        rec("320506", Some(1), "", all.clone()),
        rec("320506001", Some(2), "320506", all.clone()),
        rec("320506001001", Some(3), "320506001", all),
        rec("32050600100101", Some(4), "320506001001", rect(120.600, 31.30, 120.601, 31.301)),
        rec("32050600100102", Some(4), "320506001001", rect(120.601, 31.30, 120.602, 31.301)),
    ]
}

#[test]
fn grids_sharing_an_edge_do_not_overlap_but_overlapping_ones_do() {
    let h = Hierarchy::cjt213();
    let r = check_grids(&squares(), &h, &opts());
    assert!(r.is_clean(), "{r:#?}");
    assert_eq!(r.counts.pairs_tested, 0, "boxes that only touch are not even intersected");
    // An L and the square in its notch: boxes overlapping, outlines only touching. Not an
    // overlap even with a zero, negative or NaN threshold: touching is zero area.
    let mut notch = squares();
    notch[3].geometry = MultiPolygon(vec![polygon![
        (x: 120.600, y: 31.300), (x: 120.602, y: 31.300), (x: 120.602, y: 31.3005),
        (x: 120.601, y: 31.3005), (x: 120.601, y: 31.301), (x: 120.600, y: 31.301), (x: 120.600, y: 31.300)
    ]]);
    notch[4].geometry = rect(120.601, 31.3005, 120.602, 31.301);
    for min_area_m2 in [1.0, 0.0, -1.0, f64::NAN] {
        let r = check_grids(&notch, &h, &TopologyOptions { min_area_m2, ..opts() });
        assert!(r.is_clean(), "{min_area_m2}: {r:#?}");
        assert_eq!((r.counts.pairs_tested, r.counts.slivers_ignored), (1, 0));
    }

    // Grid 02 extended 0.0002° west into 01: the overlap is that strip.
    let mut records = squares();
    records[4].geometry = rect(120.6008, 31.30, 120.602, 31.301);
    let r = check_grids(&records, &h, &opts());
    assert_counts(&r, 1, 0, 0, 0, 0);
    let strip = rect(120.6008, 31.30, 120.601, 31.301);
    assert_close(r.overlaps[0].area_m2, exact_area_mp(&strip), 1e-6);
    assert!(inside(&strip, r.overlaps[0].location));
}

#[test]
fn code_and_link_errors_are_all_listed() {
    let h = Hierarchy::cjt213();
    let mut records = squares();
    records.push(rec("3205060010010", None, "320506001001", rect(0., 0., 1., 1.))); // 13 digits
    records.push(rec("32050600100103", Some(3), "320506001001", rect(0., 0., 1., 1.))); // level 4 declared 3
    records.push(rec("32050600100101", Some(4), "320506001001", rect(0., 0., 1., 1.))); // duplicate
    records.push(rec("320507", Some(1), "320506", rect(5., 5., 6., 6.))); // top with a parent
    records.push(rec("320506002", Some(2), "320599", rect(5., 5., 6., 6.))); // unknown parent, not extending
    records.push(rec("320506002001", Some(3), "320506", rect(5., 5., 6., 6.))); // skips a level
    records.push(rec("99050600100105", None, "320506001001", rect(120.6, 31.3, 120.6001, 31.3001))); // no province 99
    let r = check_grids(&records, &h, &opts());
    let kinds: Vec<(&str, CodeIssueKind)> = r.bad_codes.iter().map(|c| (c.code.as_str(), c.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("3205060010010", CodeIssueKind::Malformed),
            ("32050600100103", CodeIssueKind::LevelMismatch),
            ("32050600100101", CodeIssueKind::Duplicate),
            ("320506002", CodeIssueKind::NotExtendingParent),
            ("99050600100105", CodeIssueKind::Malformed),
            ("99050600100105", CodeIssueKind::NotExtendingParent),
        ]
    );
    assert!(r.bad_codes[1].message.contains("declared level 3 (社区, codes of 12 digits)"), "{}", r.bad_codes[1].message);
    let kinds: Vec<(Option<&str>, MissingLevelKind)> = r.missing_levels.iter().map(|m| (m.code.as_deref(), m.kind)).collect();
    assert_eq!(
        kinds,
        [
            (Some("320507"), MissingLevelKind::TopLevelWithParent),
            (Some("320506002"), MissingLevelKind::UnknownParent),
            (Some("320506002001"), MissingLevelKind::NotOneLevelUp),
        ]
    );
    // The far-away grids are unit grids of 320506001001 (by their parent field) outside it.
    assert_eq!(r.outside_parent.len(), 2, "{:#?}", r.outside_parent);
    // The grid of a malformed 14-digit code is still a unit grid: it overlaps 01 where it lies;
    // the two stray unit grids on the same 1° square overlap each other.
    let pairs: Vec<(&str, &str)> = r.overlaps.iter().map(|o| (o.a.as_str(), o.b.as_str())).collect();
    assert_eq!(pairs, [("32050600100101", "99050600100105"), ("32050600100103", "32050600100101")]);
}

#[test]
fn bad_geometry_is_reported_not_checked() {
    let h = Hierarchy::cjt213();
    let mut records = squares();
    records[3].geometry = rect(f64::NAN, 31.30, 120.601, 31.301);
    records[4].geometry = MultiPolygon(vec![]);
    let r = check_grids(&records, &h, &opts());
    let bad: Vec<&str> = r.bad_geometry.iter().map(|b| b.code.as_str()).collect();
    assert_eq!(bad, ["32050600100101", "32050600100102"]);
    // Their community is then uncovered: all of it is one gap.
    assert_eq!(r.gaps.len(), 1);
    assert!(r.check_failed.is_empty());
}

#[test]
fn a_panic_becomes_a_message() {
    assert_eq!(guarded(|| 1), Ok(1));
    assert_eq!(guarded(|| -> u8 { panic!("boom {}", 1) }), Err("boom 1".into()));
    assert_eq!(guarded(|| -> u8 { panic!("static") }), Err("static".into()));
}

/// `cargo test --release --lib ingest::topology::tests::xicheng_timing -- --ignored --nocapture`
#[test]
#[ignore]
fn xicheng_timing() {
    let demo = demo(Preset::Xicheng, 1);
    let t = Instant::now();
    let r = check_city(&demo.city, &opts());
    let dt = t.elapsed();
    println!("xicheng: {} grids, {} pairs tested, checked in {dt:?}", r.counts.grids, r.counts.pairs_tested);
    assert!(r.is_clean(), "{}", serde_json::to_string_pretty(&r).unwrap());
}

#[test]
fn the_report_serialises_with_snake_case_kinds() {
    let h = Hierarchy::cjt213();
    let mut records = squares();
    records[4].parent = None;
    let json = serde_json::to_value(check_grids(&records, &h, &opts())).unwrap();
    assert_eq!(json["missing_levels"][0]["kind"], "no_parent");
    assert_eq!(json["gaps"][0]["parent"], "320506001001");
    assert_eq!(json["gaps"][0]["location"].as_array().unwrap().len(), 2);
    assert_eq!(json["counts"]["missing_levels"], 1);
    assert_eq!(json["truncated"], false);
}

#[test]
fn a_community_without_unit_grids_is_all_gap() {
    let city = &tiny().city;
    let mut records = GridRecord::from_city(city);
    let community = records.iter().find(|r| r.level == Some(3)).unwrap().clone();
    records.retain(|r| r.parent.as_ref() != Some(&community.code));
    let r = check(city, &records);
    assert_counts(&r, 0, 1, 0, 0, 0);
    assert_eq!(r.gaps[0].parent, community.code);
    // No boolean operation here: only the model's approximation (centroid latitude) differs.
    assert_close(r.gaps[0].area_m2, exact_area_mp(&community.geometry), 1e-7);
    assert!(inside(&community.geometry, r.gaps[0].location));
}

// The area model: straight lon/lat edges, as the lookups take them.

/// A polygon from points in metres in the local plane around `centre`.
fn metric_polygon(centre: Coord<f64>, xy: &[[f64; 2]]) -> Polygon<f64> {
    let plane = LocalPlane::new(centre);
    let mut ring: Vec<Coord<f64>> = xy.iter().map(|&p| plane.to_lonlat(p)).collect();
    ring.push(ring[0]);
    Polygon::new(LineString(ring), vec![])
}

#[test]
fn areas_are_those_of_straight_lon_lat_edges_on_the_ellipsoid() {
    let suzhou = Coord { x: 120.6, y: 31.3 };
    // A 100 m × 100 m square: the edge model does not matter at this size.
    let square = metric_polygon(suzhou, &[[-50.0, -50.0], [50.0, -50.0], [50.0, 50.0], [-50.0, 50.0]]);
    let ours = straight_edge_area_m2(&square);
    assert_close(ours, square.geodesic_area_unsigned(), 1e-3);
    assert_close(ours, exact_area(&square), 1e-9);
    assert_close(ours, 10_000.0, 5e-3); // the local plane is on the mean sphere
    // District-sized and irregular, with a hole, clockwise: within 1e-6 of the exact integral.
    let outline = metric_polygon(suzhou, &[[-9000.0, -12000.0], [11000.0, -8000.0], [7000.0, 10000.0], [-3000.0, 13000.0], [-12000.0, 2000.0]]);
    let hole = metric_polygon(suzhou, &[[0.0, 0.0], [0.0, 3000.0], [2500.0, 3000.0], [2500.0, 0.0]]);
    let district = Polygon::new(outline.exterior().clone(), vec![hole.exterior().clone()]).orient(Direction::Reversed);
    assert_close(straight_edge_area_m2(&district), exact_area(&district), 1e-6);
    assert_close(straight_edge_area_m2(&district), exact_area(&outline) - exact_area(&hole), 1e-6);
    // A sliver between a 0.05° (4.8 km) east–west edge and a vertex 1e-9° (0.1 mm) north of
    // its middle: 0.27 m² here; taken as geodesic edges, the same three points enclose the
    // ~0.27 m the geodesic bulges north of the straight edge — hundreds of m².
    let (a, b) = (Coord { x: 120.60, y: 31.30 }, Coord { x: 120.65, y: 31.30 });
    let c = Coord { x: 120.625, y: 31.30 + 1e-9 };
    let sliver = Polygon::new(LineString(vec![a, b, c, a]), vec![]);
    let ours = straight_edge_area_m2(&sliver);
    assert!(ours > 0.2 && ours < 0.3, "{ours}");
    assert_close(ours, exact_area(&sliver), 1e-3);
    assert!(sliver.geodesic_area_unsigned() > 100.0, "{}", sliver.geodesic_area_unsigned());
    // Degenerate: no area, whatever the winding.
    assert_eq!(straight_edge_area_m2(&Polygon::new(LineString(vec![a, b, a]), vec![])), 0.0);
    assert_eq!(straight_edge_area_m2(&Polygon::new(LineString(vec![]), vec![])), 0.0);
}

#[test]
fn a_rounding_sliver_along_a_straight_shared_edge_is_not_a_gap() {
    let h = Hierarchy::cjt213();
    // A community 0.05° × 0.01°; its two unit grids meet at C, the middle of its southern edge,
    // which a rounding put 1e-9° north: between that edge and A–C–B lies a 0.27 m² sliver.
    let all = rect(120.60, 31.30, 120.65, 31.31);
    let c = 31.30 + 1e-9;
    let west = MultiPolygon(vec![polygon![(x: 120.60, y: 31.30), (x: 120.625, y: c), (x: 120.625, y: 31.31), (x: 120.60, y: 31.31), (x: 120.60, y: 31.30)]]);
    let east = MultiPolygon(vec![polygon![(x: 120.625, y: c), (x: 120.65, y: 31.30), (x: 120.65, y: 31.31), (x: 120.625, y: 31.31), (x: 120.625, y: c)]]);
    let records = vec![
        rec("320506", Some(1), "", all.clone()),
        rec("320506001", Some(2), "320506", all.clone()),
        rec("320506001001", Some(3), "320506001", all),
        rec("32050600100101", Some(4), "320506001001", west),
        rec("32050600100102", Some(4), "320506001001", east),
    ];
    let r = check_grids(&records, &h, &opts());
    assert!(r.is_clean(), "{r:#?}");
    assert!(r.counts.slivers_ignored >= 1 && r.counts.sliver_area_m2 < 1.0, "{:?}", r.counts);
    // With no threshold it is a gap, of that area; geodesically the same piece is hundreds of m².
    let r = check_grids(&records, &h, &TopologyOptions { min_area_m2: 0.0, ..opts() });
    assert_eq!(r.gaps.len(), 1, "{r:#?}");
    assert!(r.gaps[0].area_m2 > 0.2 && r.gaps[0].area_m2 < 0.3, "{:?}", r.gaps[0]);
    let sliver = Polygon::new(
        LineString(vec![Coord { x: 120.60, y: 31.30 }, Coord { x: 120.65, y: 31.30 }, Coord { x: 120.625, y: c }, Coord { x: 120.60, y: 31.30 }]),
        vec![],
    );
    assert!(sliver.geodesic_area_unsigned() > 100.0);
}

// Coverage of each district by its unit grids.

#[test]
fn a_clean_layer_covers_its_districts() {
    for (name, demo) in [("tiny", tiny()), ("wuzhong", wuzhong())] {
        let city = &demo.city;
        let r = check_city(city, &opts());
        let districts: Vec<&crate::model::Grid> = city.grids.iter().filter(|g| g.level == 0).collect();
        assert_eq!(r.coverage.len(), districts.len(), "{name}");
        for (c, d) in r.coverage.iter().zip(&districts) {
            assert_eq!(c.code, d.code.to_string());
            let units: Vec<&crate::model::Grid> = city
                .grids
                .iter()
                .filter(|g| {
                    g.level as usize == city.hierarchy.unit_level() && city.chain(city.grid_by_code(g.code).unwrap())[0] == city.grid_by_code(d.code).unwrap()
                })
                .collect();
            assert_eq!(c.unit_grids, units.len(), "{name}");
            assert_close(c.district_area_m2, exact_area_mp(&d.geometry), 1e-6);
            // The unit grids tile the district: their union is the sum of their areas.
            assert_close(c.unit_grid_area_m2, units.iter().map(|g| exact_area_mp(&g.geometry)).sum(), 1e-6);
            assert!(c.uncovered.is_empty() && c.uncovered_area_m2 == 0.0, "{name}: {c:?}");
            // The union's rounding slivers: ~1e-9 of the district (0.06 m² of Wuzhong's 52 km²).
            assert!(c.sliver_area_m2 < 1e-8 * c.district_area_m2, "{name}: {c:?}");
        }
    }
}

#[test]
fn a_hole_in_the_unit_grids_is_uncovered_area_of_its_district() {
    let city = &tiny().city;
    let mut records = GridRecord::from_city(city);
    let units = unit_indices(city, &records);
    let gone = records.remove(units[units.len() / 3]);
    let r = check(city, &records);
    // The hole is a gap of its community and uncovered area of its district.
    assert_eq!((r.counts.gaps, r.counts.uncovered), (1, 1), "{r:#?}");
    assert!(!r.is_clean());
    let district = records.iter().find(|g| g.level == Some(1)).unwrap();
    let c = &r.coverage[0];
    assert_eq!(c.code, district.code);
    let remaining: f64 = records.iter().filter(|g| g.level == Some(4)).map(|g| exact_area_mp(&g.geometry)).sum();
    let hole = exact_area_mp(&gone.geometry);
    assert_eq!(c.unit_grids, units.len() - 1);
    assert_close(c.district_area_m2, exact_area_mp(&district.geometry), 1e-6);
    assert_close(c.unit_grid_area_m2, remaining, 1e-6);
    assert_close(c.uncovered_area_m2, hole, 1e-4);
    assert_close(c.district_area_m2 - c.unit_grid_area_m2, hole, 1e-4);
    assert_eq!(c.uncovered.len(), 1);
    assert_close(c.uncovered[0].area_m2, hole, 1e-4);
    assert_close(r.counts.uncovered_area_m2, hole, 1e-4);
    assert!(inside(&gone.geometry, c.uncovered[0].location), "{c:?}");
    // A whole community gone, unit grids and all: one piece, its area.
    let mut records = GridRecord::from_city(city);
    let community = records.iter().find(|g| g.level == Some(3)).unwrap().clone();
    records.retain(|g| g.code != community.code && g.parent.as_ref() != Some(&community.code));
    let r = check(city, &records);
    assert_eq!(r.coverage[0].uncovered.len(), 1, "{r:#?}");
    assert_close(r.coverage[0].uncovered_area_m2, exact_area_mp(&community.geometry), 1e-4);
    assert!(inside(&community.geometry, r.coverage[0].uncovered[0].location));
}

#[test]
fn unit_grids_cover_only_the_district_they_are_linked_to() {
    // Two districts side by side; the unit grids of the first cover both, the second has none.
    let h = Hierarchy::cjt213();
    let mut records = squares();
    let other = rect(120.602, 31.30, 120.604, 31.301);
    records.push(rec("320507", Some(1), "", other.clone()));
    records.push(rec("320507001", Some(2), "320507", other.clone()));
    records.push(rec("320507001001", Some(3), "320507001", other.clone()));
    records[4].geometry = rect(120.601, 31.30, 120.604, 31.301);
    let r = check_grids(&records, &h, &opts());
    let [first, second] = &r.coverage[..] else { panic!("{r:#?}") };
    assert_eq!((first.code.as_str(), first.unit_grids, first.uncovered.len()), ("320506", 2, 0));
    assert!(first.unit_grid_area_m2 > first.district_area_m2 * 1.4, "{first:?}");
    assert_eq!((second.code.as_str(), second.unit_grids), ("320507", 0));
    assert_close(second.uncovered_area_m2, exact_area_mp(&other), 1e-6);
    assert_eq!(r.counts.uncovered, 1);
}
