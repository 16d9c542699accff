//! A switch shares with the snapshot it replaces everything that does not depend on what it
//! changed: one of the responsibility list or the working calendar shares the whole city, its
//! indexes and tiles (only the list is parsed); one of a layer rebuilds only that layer's
//! index, tiles and counts, and takes the rest (the unchanged components too, not read again)
//! from the served snapshot — what lets a replica of a million-component city follow a switch
//! within a second — and answers exactly as a snapshot built from scratch. A change of the
//! local class files builds everything anew.

mod common;

use std::sync::Arc;

use citygrid::datasets::Datasets;
use citygrid::store::{Dataset, Store, rules_count};
use citygrid::tiles::TileConfig;
use citygrid::world::{World, WorldHandle};

fn shares_layers(a: &World, b: &World) -> bool {
    Arc::ptr_eq(&a.city, &b.city)
        && Arc::ptr_eq(&a.tiles, &b.tiles)
        && Arc::ptr_eq(&a.components, &b.components)
        && Arc::ptr_eq(&a.grids, &b.grids)
        && Arc::ptr_eq(&a.zones, &b.zones)
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

// ---- A layer switch rebuilds only what depends on the changed dataset ----

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// The status and the body bytes of `GET uri`.
async fn get_bytes(app: &axum::Router, uri: &str) -> (StatusCode, Vec<u8>) {
    let response = app.clone().oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap()).await.unwrap();
    (response.status(), response.into_body().collect().await.unwrap().to_bytes().to_vec())
}

/// XYZ tile holding lon/lat at zoom z.
fn tile_of(lon: f64, lat: f64, z: u8) -> (u32, u32) {
    let n = (1u64 << z) as f64;
    let phi = lat.to_radians();
    ((((lon + 180.0) / 360.0) * n).floor() as u32, ((1.0 - (phi.tan() + 1.0 / phi.cos()).ln() / std::f64::consts::PI) / 2.0 * n).floor() as u32)
}

/// Every answer a client sees of `served` (the snapshot built by the switch, over the server's
/// router) equals the one of a snapshot built from scratch from the same data directory
/// (over a router of its own): `/health` (but `loaded_at`), locate, nearest components,
/// counts in boxes, every grid's detail, and the tiles of every layer around probe points
/// at zooms 10–18. `what` names the switch in failures.
async fn answers_as_a_full_build(app: &axum::Router, dir: &std::path::Path, what: &str) {
    let full = WorldHandle::new(World::new(Store::open(dir).unwrap().load_city(&|_, _| {}).unwrap()));
    let oracle = citygrid::http::router(citygrid::http::AppState::new(full.clone()));
    let world = full.load();
    // Probe points: grid corners and centres, components, zone vertices, and points between.
    let mut points: Vec<(f64, f64)> = Vec::new();
    for g in world.city.grids.iter().step_by(3) {
        let r = geo::BoundingRect::bounding_rect(&g.geometry).unwrap();
        points.push((r.center().x, r.center().y));
        points.push((r.min().x + 1e-7, r.min().y + 1e-7));
    }
    points.extend(world.city.components.iter().step_by(97).map(|c| (c.location.x, c.location.y)));
    for z in world.city.zones.iter().step_by(2) {
        let c = z.geometry.0[0].exterior().0[0];
        points.push((c.x, c.y));
    }
    let mut uris = vec!["/health".to_owned()];
    for &(lon, lat) in &points {
        uris.push(format!("/v1/locate?lon={lon}&lat={lat}"));
        uris.push(format!("/v1/locate?lon={lon}&lat={lat}&accuracy=30"));
        uris.push(format!("/v1/components/nearest?lon={lon}&lat={lat}&k=5"));
        uris.push(format!("/v1/components/counts?bbox={},{},{},{}", lon - 0.002, lat - 0.002, lon + 0.002, lat + 0.002));
    }
    for &(lon, lat) in points.iter().step_by(5) {
        for z in [10, 12, 13, 14, 16, 18] {
            let (x, y) = tile_of(lon, lat, z);
            uris.push(format!("/tiles/grids,zones,components/{z}/{x}/{y}.mvt"));
        }
    }
    for g in &world.city.grids {
        uris.push(format!("/v1/grids/{}", g.code));
    }
    uris.dedup();
    let mut compared = 0;
    for uri in &uris {
        let (status, body) = get_bytes(app, uri).await;
        let (want_status, want) = get_bytes(&oracle, uri).await;
        assert_eq!(status, want_status, "{what}: {uri}");
        if uri == "/health" {
            let strip = |b: &[u8]| {
                let mut v: Value = serde_json::from_slice(b).unwrap();
                // When it was built, and the kind of store (the oracle has none).
                v.as_object_mut().unwrap().remove("loaded_at");
                v.as_object_mut().unwrap().remove("store");
                v
            };
            assert_eq!(strip(&body), strip(&want), "{what}: /health");
        } else {
            assert!(
                body == want,
                "{what}: {uri} answers differently from a full build:\n{}\n{}",
                String::from_utf8_lossy(&body),
                String::from_utf8_lossy(&want)
            );
        }
        compared += usize::from(status == StatusCode::OK);
    }
    assert!(compared > 200, "{what}: only {compared} answers compared");
}

fn multipolygon(g: &geo_types::MultiPolygon<f64>) -> Value {
    let rings = |p: &geo_types::Polygon<f64>| {
        let ring = |r: &geo_types::LineString<f64>| r.0.iter().map(|c| json!([c.x, c.y])).collect::<Vec<_>>();
        let mut all = vec![ring(p.exterior())];
        all.extend(p.interiors().iter().map(ring));
        json!(all)
    };
    json!({"type": "MultiPolygon", "coordinates": g.0.iter().map(rings).collect::<Vec<_>>()})
}

/// Which parts of `after` are those of `before` (the same allocation).
#[derive(Debug, PartialEq)]
struct Shared {
    grids: bool,
    grid_tiles: bool,
    components: bool,
    component_tiles: bool,
    class_counts: bool,
    zones: bool,
    zone_tiles: bool,
}

fn shared(before: &World, after: &World) -> Shared {
    use citygrid::tiles::Layer;
    Shared {
        grids: Arc::ptr_eq(&before.grids, &after.grids)
            && Arc::ptr_eq(&before.grid_shapes, &after.grid_shapes)
            && Arc::ptr_eq(&before.child_counts, &after.child_counts),
        grid_tiles: before.tiles.shares(&after.tiles, Layer::Grids),
        components: Arc::ptr_eq(&before.components, &after.components),
        component_tiles: before.tiles.shares(&after.tiles, Layer::Components),
        class_counts: Arc::ptr_eq(&before.class_counts, &after.class_counts),
        zones: Arc::ptr_eq(&before.zones, &after.zones),
        zone_tiles: before.tiles.shares(&after.tiles, Layer::Zones),
    }
}

#[tokio::test]
async fn a_layer_switch_rebuilds_only_what_depends_on_it_and_answers_as_a_full_build() {
    use common::ingest::{put, server};
    let s = server();
    let all = |v: bool| Shared { grids: v, grid_tiles: v, components: v, component_tiles: v, class_counts: v, zones: v, zone_tiles: v };

    // Zones: every other road section, with another unit (new to the city).
    let before = s.handle.load();
    let first_components = before.city.components.len();
    let features: Vec<Value> = before.city.zones.iter().step_by(2).map(|z| json!({"type": "Feature", "properties": {"layer": z.layer, "id": z.id, "name": z.name, "unit": "新道路养护公司"}, "geometry": multipolygon(&z.geometry)})).collect();
    assert!(features.len() >= 2, "the tiny city has road sections");
    let (status, body) =
        put(&s.app, "/v1/layers/zones", Some("application/geo+json"), json!({"type": "FeatureCollection", "features": features}).to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let after = s.handle.load();
    assert_eq!(after.city.zones.len(), before.city.zones.len().div_ceil(2));
    assert_eq!(shared(&before, &after), Shared { zones: false, zone_tiles: false, ..all(true) }, "a zones switch");
    answers_as_a_full_build(&s.app, s.dir.path(), "zones switch").await;

    // Components: every component but one in ten, the rest moved 20 m east, one class changed
    // where the code allows (0101 ↔ 0101: kept), as a CSV.
    let before = s.handle.load();
    let city = &before.city;
    let mut csv = String::from("code,class,name,dept,owner,maintainer,status,grid,lon,lat\n");
    let unit = |u: Option<citygrid::model::UnitId>| u.map(|u| city.units.get(u).name.clone()).unwrap_or_default();
    for (i, c) in city.components.iter().enumerate().filter(|(i, _)| i % 10 != 3) {
        let grid = city.recorded_grid_code(i).map(|g| g.to_string()).unwrap_or_default();
        let shift = if i % 2 == 0 { 0.0002 } else { 0.0 };
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{grid},{},{}\n",
            c.code,
            c.class,
            city.names.get(c.name),
            unit(c.dept),
            unit(c.owner),
            unit(c.maintainer),
            c.status,
            c.location.x + shift,
            c.location.y
        ));
    }
    let (status, body) = put(&s.app, "/v1/layers/components", Some("text/csv"), csv).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let after = s.handle.load();
    assert_eq!(after.versions.get("components"), Some(2));
    assert!(after.city.components.len() < before.city.components.len());
    assert_eq!(shared(&before, &after), Shared { components: false, component_tiles: false, class_counts: false, ..all(true) }, "a components switch");
    answers_as_a_full_build(&s.app, s.dir.path(), "components switch").await;

    // Grids: renamed (names enter the tiles and every answer); the components' recorded grids stay.
    let before = s.handle.load();
    let city = &before.city;
    let features: Vec<Value> = city
        .grids
        .iter()
        .map(|g| {
            let parent = g.parent.map(|p| city.grid(p).code.to_string()).unwrap_or_default();
            let unit = g.unit.map(|u| city.units.get(u).name.clone()).unwrap_or_default();
            json!({"type": "Feature", "properties": {"code": g.code.to_string(), "name": format!("{}（新）", g.name), "level": g.level + 1, "parent": parent, "unit": unit}, "geometry": multipolygon(&g.geometry)})
        })
        .collect();
    let (status, body) =
        put(&s.app, "/v1/layers/grids", Some("application/geo+json"), json!({"type": "FeatureCollection", "features": features}).to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let after = s.handle.load();
    assert!(after.city.grids[0].name.ends_with("（新）"));
    assert_eq!(shared(&before, &after), Shared { grids: false, grid_tiles: false, class_counts: false, ..all(true) }, "a grids switch");
    answers_as_a_full_build(&s.app, s.dir.path(), "grids switch").await;

    // The unit register (one unit more) and the settings (renamed): no index or tile depends
    // on them.
    let before = s.handle.load();
    let mut units = String::from("code,name,phone\n");
    for (_, u) in before.city.units.iter() {
        units.push_str(&format!("{},{},{}\n", u.code.clone().unwrap_or_default(), u.name, u.phone.clone().unwrap_or_default()));
    }
    units.push_str(",新设单位,\n");
    let (status, body) = put(&s.app, "/v1/layers/units", Some("text/csv"), units).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let after = s.handle.load();
    assert_eq!(after.city.units.len(), before.city.units.len() + 1);
    assert!(!Arc::ptr_eq(&before.city, &after.city));
    assert_eq!(shared(&before, &after), all(true), "a units switch");
    answers_as_a_full_build(&s.app, s.dir.path(), "units switch").await;
    let before = after;
    let mut meta = before.meta.clone();
    meta.name = "苏州市吴中区（改名）".into();
    let (status, body) = put(&s.app, "/v1/layers/city", Some("application/toml"), meta.to_toml()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let after = s.handle.load();
    assert_eq!(after.meta.name, "苏州市吴中区（改名）");
    assert_eq!(shared(&before, &after), all(true), "a settings switch");
    answers_as_a_full_build(&s.app, s.dir.path(), "settings switch").await;

    // A rollback of the components: what depends on them is built again, the rest shared.
    let before = s.handle.load();
    let rollback = Request::builder()
        .method("POST")
        .uri("/v1/layers/components/rollback")
        .header("authorization", format!("Bearer {}", common::ingest::TOKEN))
        .header("content-type", "application/json")
        .body(Body::from(json!({"version": 1}).to_string()))
        .unwrap();
    assert_eq!(s.app.clone().oneshot(rollback).await.unwrap().status(), StatusCode::OK);
    let after = s.handle.load();
    assert_eq!(after.city.components.len(), first_components);
    assert_eq!(shared(&before, &after), Shared { components: false, component_tiles: false, class_counts: false, ..all(true) }, "a components rollback");
    answers_as_a_full_build(&s.app, s.dir.path(), "components rollback").await;
}
