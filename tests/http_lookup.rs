//! The lookup API through the real router, on the tiny demo city, against brute-force oracles
//! computed here with geo on the same polygons and components.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::http::StatusCode;
use geo::coordinate_position::{CoordPos, CoordinatePosition};
use geo::{Closest, Distance, Haversine, HaversineClosestPoint, InteriorPoint};
use geo_types::{Coord, Point};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use citygrid::crs::Datum;
use citygrid::http::{AppState, router};
use citygrid::model::{City, GridId};
use citygrid::world::World;

struct Fixture {
    app: axum::Router,
    world: Arc<World>,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let handle = common::tiny_world(dir.path());
    let world = handle.load();
    Fixture { app: router(AppState::new(handle)), world, _dir: dir }
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, Value) {
    let a = common::http::get(app, uri).await;
    (a.status, a.json())
}

fn unit_grids(city: &City) -> Vec<GridId> {
    let unit = city.hierarchy.levels.len() - 1;
    (0..city.grids.len() as u32).map(GridId).filter(|&g| city.grid(g).level as usize == unit).collect()
}

fn code(city: &City, g: GridId) -> String {
    city.grid(g).code.to_string()
}

/// Brute force: the unit grids whose closed polygon contains `p`, in code order, and whether
/// `p` is on the boundary of any of them.
fn containing(city: &City, p: Coord<f64>) -> (Vec<String>, bool) {
    let mut out = Vec::new();
    let mut on_boundary = false;
    for g in unit_grids(city) {
        match city.grid(g).geometry.coordinate_position(&p) {
            CoordPos::Outside => {}
            pos => {
                on_boundary |= pos == CoordPos::OnBoundary;
                out.push(code(city, g));
            }
        }
    }
    out.sort();
    (out, on_boundary)
}

/// Brute force: metres from `p` to the nearest point of a grid's outline (geo's haversine
/// closest point on each edge).
fn edge_distance(city: &City, g: GridId, p: Coord<f64>) -> f64 {
    let mut best = f64::INFINITY;
    for poly in &city.grid(g).geometry.0 {
        for ring in std::iter::once(poly.exterior()).chain(poly.interiors()) {
            for line in ring.lines() {
                let q = match line.haversine_closest_point(&Point::from(p)) {
                    Closest::Intersection(q) | Closest::SinglePoint(q) => q,
                    Closest::Indeterminate => continue,
                };
                best = best.min(Haversine.distance(Point::from(p), q));
            }
        }
    }
    best
}

fn extent(city: &City) -> [f64; 4] {
    let mut e = [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY];
    for g in unit_grids(city) {
        for c in city.grid(g).geometry.0.iter().flat_map(|p| p.exterior().0.iter()) {
            e = [e[0].min(c.x), e[1].min(c.y), e[2].max(c.x), e[3].max(c.y)];
        }
    }
    e
}

#[tokio::test]
async fn locate_agrees_with_brute_force_point_in_polygon_and_gives_the_whole_chain() {
    let f = fixture();
    let city = &f.world.city;
    let e = extent(city);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut inside = 0;
    for _ in 0..300 {
        let p = Coord { x: rng.random_range(e[0]..e[2]), y: rng.random_range(e[1]..e[3]) };
        let (status, body) = get(&f.app, &format!("/v1/locate?lon={}&lat={}", p.x, p.y)).await;
        let (expected, on_boundary) = containing(city, p);
        if expected.is_empty() {
            assert_eq!(status, StatusCode::NOT_FOUND, "{p:?}: {body}");
            assert_eq!(body["error"]["code"], "outside_coverage");
            continue;
        }
        inside += 1;
        assert_eq!(status, StatusCode::OK, "{p:?}: {body}");
        assert_eq!(body["grid"]["code"], expected[0], "{p:?}");
        assert_eq!(body["on_boundary"], on_boundary);
        let chain = body["chain"].as_array().unwrap();
        assert_eq!(chain.len(), 4, "district › street › community › grid");
        for (i, entry) in chain.iter().enumerate() {
            assert_eq!(entry["level"], i + 1);
            assert_eq!(entry["level_name"], city.hierarchy.levels[i].name);
            if i > 0 {
                let (parent, child) = (chain[i - 1]["code"].as_str().unwrap(), entry["code"].as_str().unwrap());
                assert!(child.starts_with(parent), "{child} extends {parent}");
            }
        }
        assert_eq!(chain[3]["code"], expected[0]);
        assert_eq!(chain[3]["chief"], body["grid"]["chief"]);
        assert!(chain[3]["chief"]["phone"].as_str().is_some_and(|p| p.len() == 11), "a unit grid has a chief with a mobile number");
        assert_eq!(body["versions"]["grids"], 1);
        assert_eq!(body["point"]["crs"], "wgs84");
    }
    assert!(inside > 150, "most points of the extent are in the city: {inside}");
}

#[tokio::test]
async fn a_shared_vertex_goes_to_the_smallest_code_and_is_ambiguous() {
    let f = fixture();
    let city = &f.world.city;
    // A vertex that two or more unit grids share.
    let mut shared = None;
    'search: for g in unit_grids(city) {
        for &c in &city.grid(g).geometry.0[0].exterior().0 {
            let (grids, _) = containing(city, c);
            if grids.len() >= 2 {
                shared = Some((c, grids));
                break 'search;
            }
        }
    }
    let (p, grids) = shared.expect("the tiny city has shared vertices");
    let (status, body) = get(&f.app, &format!("/v1/locate?lon={}&lat={}", p.x, p.y)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["grid"]["code"], grids[0], "smallest code among {grids:?}");
    assert_eq!(body["on_boundary"], true);
    assert_eq!(body["ambiguous"], true);
    let candidates: BTreeSet<String> = body["candidates"].as_array().unwrap().iter().map(|c| c["code"].as_str().unwrap().to_owned()).collect();
    assert_eq!(candidates, grids.iter().cloned().collect::<BTreeSet<_>>());
    assert!(body["candidates"].as_array().unwrap().iter().all(|c| c["distance_m"] == 0.0));
}

#[tokio::test]
async fn accuracy_discs_list_every_grid_within_the_radius() {
    let f = fixture();
    let city = &f.world.city;
    let e = extent(city);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut ambiguous = 0;
    for _ in 0..60 {
        let p = Coord { x: rng.random_range(e[0]..e[2]), y: rng.random_range(e[1]..e[3]) };
        let r = 40.0;
        let (status, body) = get(&f.app, &format!("/v1/locate?lon={}&lat={}&accuracy={r}", p.x, p.y)).await;
        let (containing, _) = containing(city, p);
        let mut expected = BTreeSet::new();
        let mut borderline = false;
        for g in unit_grids(city) {
            let d = if containing.contains(&code(city, g)) { 0.0 } else { edge_distance(city, g, p) };
            borderline |= (d - r).abs() < 0.05;
            if d <= r {
                expected.insert(code(city, g));
            }
        }
        if borderline {
            continue;
        }
        let candidates = if status == StatusCode::OK {
            ambiguous += (body["ambiguous"] == true) as usize;
            assert_eq!(body["ambiguous"], expected.len() > 1);
            assert_eq!(body["accuracy_m"], r);
            body["candidates"].clone()
        } else {
            assert_eq!(body["error"]["code"], "outside_coverage");
            body["error"]["details"]["candidates"].clone()
        };
        let got: Vec<(String, f64)> =
            candidates.as_array().unwrap().iter().map(|c| (c["code"].as_str().unwrap().to_owned(), c["distance_m"].as_f64().unwrap())).collect();
        assert_eq!(got.iter().map(|c| c.0.clone()).collect::<BTreeSet<_>>(), expected, "{p:?}");
        assert!(got.windows(2).all(|w| w[0].1 <= w[1].1), "nearest first: {got:?}");
    }
    assert!(ambiguous > 5, "a 40 m disc in ~200 m grids is often ambiguous: {ambiguous}");
}

#[tokio::test]
async fn gcj02_and_bd09_input_lands_in_the_grid_of_the_wgs84_point() {
    let f = fixture();
    let city = &f.world.city;
    for g in unit_grids(city).into_iter().step_by(5) {
        let p = city.grid(g).geometry.interior_point().unwrap().0;
        for datum in [Datum::Gcj02, Datum::Bd09] {
            let (lon, lat) = datum.from_wgs84(p.x, p.y);
            let (status, body) = get(&f.app, &format!("/v1/locate?lon={lon}&lat={lat}&crs={datum}")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["grid"]["code"], code(city, g), "{datum}");
            let back = &body["point"]["wgs84"];
            assert!((back["lon"].as_f64().unwrap() - p.x).abs() < 1e-7 && (back["lat"].as_f64().unwrap() - p.y).abs() < 1e-7);
            // The same numbers read as WGS84 are hundreds of metres away: another grid, or none.
            let (_, wrong) = get(&f.app, &format!("/v1/locate?lon={lon}&lat={lat}")).await;
            assert_ne!(wrong["grid"]["code"], code(city, g), "{datum}: the offset is larger than a unit grid");
        }
    }
}

#[tokio::test]
async fn projected_x_y_input_lands_in_the_grid_of_the_wgs84_point() {
    use citygrid::crs::Crs;
    let f = fixture();
    let city = &f.world.city;
    let zone = Crs::parse("EPSG:4549").unwrap(); // CGCS2000 3° Gauss-Krüger CM 120°E (Suzhou)
    for g in unit_grids(city).into_iter().step_by(5) {
        let p = city.grid(g).geometry.interior_point().unwrap().0;
        let (x, y) = zone.from_wgs84(p.x, p.y).unwrap();
        let (status, body) = get(&f.app, &format!("/v1/locate?x={x}&y={y}&crs=EPSG:4549")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["grid"]["code"], code(city, g));
        assert_eq!(body["point"]["crs"], "EPSG:4549");
        assert_eq!(body["point"]["input"]["x"], x);
        assert_eq!(body["point"]["input"]["y"], y);
        let back = &body["point"]["wgs84"];
        assert!((back["lon"].as_f64().unwrap() - p.x).abs() < 1e-9 && (back["lat"].as_f64().unwrap() - p.y).abs() < 1e-9);
    }
    // Nearest and bbox take x/y too.
    let zone_uri = "crs=epsg:4549";
    for c in city.components.iter().step_by(211) {
        let (x, y) = zone.from_wgs84(c.location.x, c.location.y).unwrap();
        let (status, body) = get(&f.app, &format!("/v1/components/nearest?x={x}&y={y}&{zone_uri}&k=1")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body["components"][0]["distance_m"].as_f64().unwrap() < 0.01, "{body}");
        let uri = format!("/v1/components?bbox={},{},{},{}&{zone_uri}&limit=10000", x - 20.0, y - 20.0, x + 20.0, y + 20.0);
        let (status, body) = get(&f.app, &uri).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let codes: Vec<&str> = body["components"].as_array().unwrap().iter().map(|x| x["code"].as_str().unwrap()).collect();
        assert!(codes.contains(&c.code.to_string().as_str()), "{uri}: {codes:?}");
    }
    // EPSG:4490 is CGCS2000 lon/lat (echoed by its datum name, as before).
    let g = unit_grids(city)[0];
    let p = city.grid(g).geometry.interior_point().unwrap().0;
    let (status, body) = get(&f.app, &format!("/v1/locate?lon={}&lat={}&crs=EPSG:4490", p.x, p.y)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["grid"]["code"], code(city, g));
    assert_eq!(body["point"]["crs"], "cgcs2000");
    assert_eq!(body["point"]["input"]["lon"], p.x);
}

#[tokio::test]
async fn outside_coverage_is_404_with_the_nearest_grid_and_its_true_distance() {
    let f = fixture();
    let city = &f.world.city;
    let e = extent(city);
    for p in [Coord { x: e[0] - 0.01, y: (e[1] + e[3]) / 2.0 }, Coord { x: e[2] + 0.003, y: e[3] + 0.002 }, Coord { x: (e[0] + e[2]) / 2.0, y: e[1] - 0.2 }] {
        let (status, body) = get(&f.app, &format!("/v1/locate?lon={}&lat={}", p.x, p.y)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["error"]["code"], "outside_coverage");
        let nearest = &body["error"]["details"]["nearest"];
        let (best, best_code) =
            unit_grids(city).into_iter().map(|g| (edge_distance(city, g, p), code(city, g))).min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))).unwrap();
        assert_eq!(nearest["code"], best_code);
        assert!(nearest["name"].as_str().is_some_and(|n| !n.is_empty()));
        let d = nearest["distance_m"].as_f64().unwrap();
        // Distances to an edge, not to a bounding box; haversine both, within 0.1%.
        assert!((d - best).abs() <= best * 1e-3 + 0.01, "{d} vs brute force {best}");
    }
}

#[tokio::test]
async fn a_grid_by_code_has_its_chain_children_and_component_counts() {
    let f = fixture();
    let city = &f.world.city;
    let children = city.children();
    for (i, grid) in city.grids.iter().enumerate() {
        let id = GridId(i as u32);
        let (status, body) = get(&f.app, &format!("/v1/grids/{}", grid.code)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["code"], grid.code.to_string());
        assert_eq!(body["level"], grid.level as usize + 1);
        assert_eq!(body["chain"].as_array().unwrap().len(), grid.level as usize + 1);
        assert_eq!(body["children"], children[i].len());
        // Components whose recorded unit grid lies in this grid.
        let mine: Vec<_> = city.components.iter().filter(|c| c.grid.is_some_and(|g| city.chain(g).contains(&id))).collect();
        assert_eq!(body["components"]["total"], mine.len(), "{}", grid.code);
        let by_class = body["components"]["by_class"].as_array().unwrap();
        let sum: u64 = by_class.iter().map(|c| c["count"].as_u64().unwrap()).sum();
        assert_eq!(sum, mine.len() as u64);
        for entry in by_class {
            let class = entry["class"].as_str().unwrap();
            let n = mine.iter().filter(|c| c.class.to_string() == class).count();
            assert_eq!(entry["count"], n, "{} class {class}", grid.code);
            assert!(!entry["name"].as_str().unwrap().is_empty());
        }
        let area = body["area_m2"].as_f64().unwrap();
        if grid.level as usize == city.hierarchy.levels.len() - 1 {
            assert!((10_000.0..=500_000.0).contains(&area), "unit grid area {area} m²");
        }
    }
    let (status, body) = get(&f.app, "/v1/grids/32050699900101").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "street 999 is not a valid street code");
    assert_eq!(body["error"]["code"], "malformed_code");
    let (status, body) = get(&f.app, "/v1/grids/32050610109999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "grid_not_found");
}

#[tokio::test]
async fn a_component_by_code_names_its_three_units_and_its_chain() {
    let f = fixture();
    let city = &f.world.city;
    for c in city.components.iter().step_by(97) {
        let (status, body) = get(&f.app, &format!("/v1/components/{}", c.code)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["code"], c.code.to_string());
        assert_eq!(body["class"]["code"], c.class.to_string());
        assert_eq!(body["major_class"]["code"], c.class.major_class().to_string());
        assert_eq!(body["status_zh"], c.status.zh());
        for (key, unit) in [("dept", c.dept), ("owner", c.owner), ("maintainer", c.maintainer)] {
            let unit = city.units.get(unit.expect("demo components have all three units"));
            assert_eq!(body[key]["name"], unit.name);
            assert_eq!(body[key]["code"].as_str(), unit.code.as_deref());
        }
        // (serde_json's default parser may be 1 ulp off; the server prints the shortest exact form.)
        assert!((body["location"]["lon"].as_f64().unwrap() - c.location.x).abs() < 1e-12);
        assert!((body["location"]["lat"].as_f64().unwrap() - c.location.y).abs() < 1e-12);
        let chain = body["chain"].as_array().unwrap();
        assert_eq!(chain.len(), 4);
        assert_eq!(chain[3]["code"], code(city, c.grid.unwrap()));
        assert!(body.get("located_grid").is_none(), "demo components lie in their recorded grid");
    }
    for (uri, status, code) in [
        ("/v1/components/3205060101", StatusCode::BAD_REQUEST, "malformed_code"),
        ("/v1/components/320506010100000x", StatusCode::BAD_REQUEST, "malformed_code"),
        ("/v1/components/3205060101999999", StatusCode::NOT_FOUND, "component_not_found"),
    ] {
        let (s, body) = get(&f.app, uri).await;
        assert_eq!((s, body["error"]["code"].as_str().unwrap()), (status, code), "{uri}: {body}");
    }
}

#[tokio::test]
async fn nearest_components_equal_a_brute_force_scan() {
    let f = fixture();
    let city = &f.world.city;
    let e = extent(city);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for (k, class, max) in [(1, "", None), (10, "", None), (5, "0101", None), (7, "01,0402", Some(150.0)), (1000, "0118", Some(80.0))] {
        let p = Coord { x: rng.random_range(e[0]..e[2]), y: rng.random_range(e[1]..e[3]) };
        let mut uri = format!("/v1/components/nearest?lon={}&lat={}&k={k}", p.x, p.y);
        if !class.is_empty() {
            uri += &format!("&class={class}");
        }
        if let Some(m) = max {
            uri += &format!("&max_distance={m}");
        }
        let (status, body) = get(&f.app, &uri).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let classes: Vec<&str> = class.split(',').filter(|c| !c.is_empty()).collect();
        let mut expected: Vec<(f64, String)> = city
            .components
            .iter()
            .filter(|c| {
                let (sub, major) = (c.class.to_string(), c.class.major_class().to_string());
                classes.is_empty() || classes.iter().any(|&k| k == sub || k == &major[..2])
            })
            .map(|c| (Haversine.distance(Point::from(p), Point::from(c.location)), c.code.to_string()))
            .filter(|(d, _)| max.is_none_or(|m| *d <= m))
            .collect();
        expected.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        expected.truncate(k);
        let got = body["components"].as_array().unwrap();
        assert_eq!(got.len(), expected.len(), "{uri}");
        for (g, (d, code)) in got.iter().zip(&expected) {
            assert_eq!(g["code"], *code, "{uri}");
            assert!((g["distance_m"].as_f64().unwrap() - d).abs() < 0.01, "{uri}: {} vs {d}", g["distance_m"]);
        }
    }
}

#[tokio::test]
async fn nearest_and_bbox_take_gcj02_points_too() {
    let f = fixture();
    let city = &f.world.city;
    for c in city.components.iter().step_by(211) {
        let (lon, lat) = Datum::Gcj02.from_wgs84(c.location.x, c.location.y);
        let (status, body) = get(&f.app, &format!("/v1/components/nearest?lon={lon}&lat={lat}&crs=gcj02&k=1")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body["components"][0]["distance_m"].as_f64().unwrap() < 0.01, "{body}");
        let d = 0.0002;
        let uri = format!("/v1/components?bbox={},{},{},{}&crs=gcj02&limit=10000", lon - d, lat - d, lon + d, lat + d);
        let (status, body) = get(&f.app, &uri).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let codes: Vec<&str> = body["components"].as_array().unwrap().iter().map(|x| x["code"].as_str().unwrap()).collect();
        assert!(codes.contains(&c.code.to_string().as_str()), "{uri}: {codes:?}");
        // The same numbers read as WGS84 are ~470 m away: the component is not in that box.
        let (_, body) = get(&f.app, &uri.replace("&crs=gcj02", "")).await;
        assert!(!body["components"].as_array().unwrap().iter().any(|x| x["code"] == c.code.to_string()));
    }
}

#[tokio::test]
async fn bbox_pages_return_every_component_in_the_box_once_in_code_order() {
    let f = fixture();
    let city = &f.world.city;
    let e = extent(city);
    let bbox = [e[0] + 0.002, e[1] + 0.001, (e[0] + e[2]) / 2.0, (e[1] + e[3]) / 2.0];
    let inside = |c: &Coord<f64>| c.x >= bbox[0] && c.x <= bbox[2] && c.y >= bbox[1] && c.y <= bbox[3];
    for class in ["", "0101", "04"] {
        let mut expected: Vec<String> = city
            .components
            .iter()
            .filter(|c| inside(&c.location))
            .filter(|c| class.is_empty() || c.class.to_string().starts_with(class))
            .map(|c| c.code.to_string())
            .collect();
        expected.sort();
        assert!(expected.len() > 20, "{class}: {}", expected.len());
        let mut got = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut uri = format!("/v1/components?bbox={},{},{},{}&limit=37", bbox[0], bbox[1], bbox[2], bbox[3]);
            if !class.is_empty() {
                uri += &format!("&class={class}");
            }
            if let Some(c) = &cursor {
                uri += &format!("&cursor={c}");
            }
            let (status, body) = get(&f.app, &uri).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let page = body["components"].as_array().unwrap();
            assert!(page.len() <= 37);
            got.extend(page.iter().map(|c| c["code"].as_str().unwrap().to_owned()));
            pages += 1;
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
            assert!(pages < 1000);
        }
        assert_eq!(got, expected, "class {class:?}");
    }
}

#[tokio::test]
async fn component_counts_in_a_box_equal_brute_force() {
    let f = fixture();
    let city = &f.world.city;
    let e = extent(city);
    let bbox = [e[0] + 0.001, e[1] + 0.002, (e[0] + e[2]) / 2.0 + 0.003, e[3] - 0.001];
    for class in ["", "01", "0118,0402"] {
        let mut uri = format!("/v1/components/counts?bbox={},{},{},{}", bbox[0], bbox[1], bbox[2], bbox[3]);
        if !class.is_empty() {
            uri += &format!("&class={class}");
        }
        let (status, body) = get(&f.app, &uri).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let wanted: Vec<&str> = class.split(',').filter(|c| !c.is_empty()).collect();
        let mut expected = std::collections::BTreeMap::<String, u64>::new();
        for c in &city.components {
            let (x, y) = (c.location.x, c.location.y);
            let code = c.class.to_string();
            if x >= bbox[0] && x <= bbox[2] && y >= bbox[1] && y <= bbox[3] && (wanted.is_empty() || wanted.iter().any(|w| code.starts_with(w))) {
                *expected.entry(code).or_default() += 1;
            }
        }
        let got: std::collections::BTreeMap<String, u64> =
            body["by_class"].as_array().unwrap().iter().map(|c| (c["class"].as_str().unwrap().to_owned(), c["count"].as_u64().unwrap())).collect();
        assert_eq!(got, expected, "{uri}");
        assert_eq!(body["total"], expected.values().sum::<u64>());
        assert!(body["total"].as_u64().unwrap() > 0);
    }
}

#[tokio::test]
async fn bad_input_gets_400_in_the_error_format_and_unknown_codes_404() {
    let f = fixture();
    let cases: &[(&str, u16, &str)] = &[
        ("/v1/locate?lat=31.27", 400, "missing_parameter"),
        ("/v1/locate?lon=120.6", 400, "missing_parameter"),
        ("/v1/locate", 400, "missing_parameter"),
        ("/v1/locate?lon=abc&lat=31.27", 400, "invalid_parameter"),
        ("/v1/locate?lon=NaN&lat=31.27", 400, "invalid_parameter"),
        ("/v1/locate?lon=inf&lat=31.27", 400, "invalid_parameter"),
        ("/v1/locate?lon=120.6&lat=91", 400, "invalid_parameter"),
        ("/v1/locate?lon=181&lat=31.27", 400, "invalid_parameter"),
        ("/v1/locate?lon=120.6&lat=31.27&lon=120.7", 400, "invalid_parameter"),
        ("/v1/locate?lon=120.6&lat=31.27&crs=mars", 400, "unknown_crs"),
        ("/v1/locate?lon=120.6&lat=31.27&crs=EPSG:999999", 400, "unknown_crs"),
        ("/v1/locate?lon=120.6&lat=31.27&crs=%2Bproj%3Dtmerc", 400, "unknown_crs"),
        ("/v1/locate?lon=120.6&lat=31.27&crs=EPSG:4549", 400, "invalid_parameter"),
        ("/v1/locate?x=557140.955&lat=31.27&crs=EPSG:4549", 400, "invalid_parameter"),
        ("/v1/locate?x=557140.955&y=3461065.011", 400, "invalid_parameter"),
        ("/v1/locate?x=557140.955&crs=EPSG:4549", 400, "missing_parameter"),
        ("/v1/locate?x=557140.955&y=abc&crs=EPSG:4549", 400, "invalid_parameter"),
        ("/v1/locate?x=3461065.011&y=557140.955&crs=EPSG:4549", 400, "invalid_parameter"),
        ("/v1/locate?x=557140.955&y=3461065.011&crs=EPSG:4527", 400, "invalid_parameter"),
        ("/v1/components?bbox=3461065,557140,3461165,557240&crs=EPSG:4549", 400, "invalid_parameter"),
        ("/v1/locate?lon=120.6&lat=31.27&accuracy=-5", 400, "invalid_parameter"),
        ("/v1/locate?lon=120.6&lat=31.27&accuracy=1e9", 400, "invalid_parameter"),
        ("/v1/locate?lon=120.6&lat=31.27&accuracy=ten", 400, "invalid_parameter"),
        ("/v1/components/nearest?lon=120.6&lat=31.27&k=0", 400, "invalid_parameter"),
        ("/v1/components/nearest?lon=120.6&lat=31.27&k=100000", 400, "invalid_parameter"),
        ("/v1/components/nearest?lon=120.6&lat=31.27&k=-1", 400, "invalid_parameter"),
        ("/v1/components/nearest?lon=120.6&lat=31.27&max_distance=-1", 400, "invalid_parameter"),
        ("/v1/components/nearest?lon=120.6&lat=31.27&class=01x1", 400, "malformed_code"),
        ("/v1/components/nearest?lon=120.6&lat=31.27&class=0199", 400, "unknown_class"),
        ("/v1/components/nearest?lat=31.27", 400, "missing_parameter"),
        ("/v1/components", 400, "missing_parameter"),
        ("/v1/components?bbox=120.7,31.2,120.6,31.3", 400, "invalid_parameter"),
        ("/v1/components?bbox=120.6,31.3,120.7,31.2", 400, "invalid_parameter"),
        ("/v1/components?bbox=120.6,31.2,120.7", 400, "invalid_parameter"),
        ("/v1/components?bbox=a,b,c,d", 400, "invalid_parameter"),
        ("/v1/components?bbox=120.6,31.2,120.7,95", 400, "invalid_parameter"),
        ("/v1/components?bbox=120.6,31.2,120.7,31.3&limit=0", 400, "invalid_parameter"),
        ("/v1/components?bbox=120.6,31.2,120.7,31.3&limit=1000000", 400, "invalid_parameter"),
        ("/v1/components?bbox=120.6,31.2,120.7,31.3&cursor=garbage", 400, "invalid_parameter"),
        ("/v1/components/counts?bbox=120.7,31.2,120.6,31.3", 400, "invalid_parameter"),
        ("/v1/components/counts", 400, "missing_parameter"),
        ("/v1/components?bbox=120.6,31.2,120.7,31.3&crs=gcj02&limit=x", 400, "invalid_parameter"),
        ("/v1/grids/abc", 400, "malformed_code"),
        ("/v1/grids/32050610109999", 404, "grid_not_found"),
        ("/v1/components/3205060101999999", 404, "component_not_found"),
        ("/v1/locate?lon=0&lat=0", 404, "outside_coverage"),
    ];
    for &(uri, status, code) in cases {
        let (s, body) = get(&f.app, uri).await;
        assert_eq!(s.as_u16(), status, "{uri}: {body}");
        assert_eq!(body["error"]["code"], code, "{uri}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.len() > 10 && !message.contains("Failed to deserialize"), "{uri}: a human sentence: {message}");
        assert!(body["error"]["details"].is_object(), "{uri}");
    }
}

/// With the `proj` feature, other EPSG codes reach the API too: ETRS89 geographic takes lon/lat.
#[cfg(feature = "proj")]
#[tokio::test]
async fn other_geographic_codes_take_lon_lat_with_the_proj_feature() {
    let f = fixture();
    let city = &f.world.city;
    let g = unit_grids(city)[0];
    let p = city.grid(g).geometry.interior_point().unwrap().0;
    let (status, body) = get(&f.app, &format!("/v1/locate?lon={}&lat={}&crs=EPSG:4258", p.x, p.y)).await;
    // ETRS89's area is Europe: a Chinese point is refused, with the reason.
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("outside the CRS's area"), "{body}");
    let (status, body) = get(&f.app, "/v1/locate?x=1&y=2&crs=EPSG:4258").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}
