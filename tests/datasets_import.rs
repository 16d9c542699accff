//! Every dataset a city has is imported, versioned and rolled back the same way over HTTP:
//! zones (a layer), the unit register, the working calendar and the city settings (texts), each
//! checked before it is stored — a refused one changes nothing — and a grid layer that keeps a
//! rule's scope code for another place is flagged.

mod common;

use axum::http::StatusCode;
use citygrid::model::City;
use common::ingest::{get, put, server};
use serde_json::{Value, json};

fn multipolygon(g: &geo_types::MultiPolygon<f64>) -> Value {
    let rings = |p: &geo_types::Polygon<f64>| {
        let ring = |r: &geo_types::LineString<f64>| r.0.iter().map(|c| json!([c.x, c.y])).collect::<Vec<_>>();
        let mut all = vec![ring(p.exterior())];
        all.extend(p.interiors().iter().map(ring));
        json!(all)
    };
    json!({"type": "MultiPolygon", "coordinates": g.0.iter().map(rings).collect::<Vec<_>>()})
}

/// The city's grids as GeoJSON, with `rename` applied to the names.
fn grids_geojson(city: &City, rename: impl Fn(&str, &str) -> String) -> String {
    let features: Vec<Value> = city
        .grids
        .iter()
        .map(|g| {
            let code = g.code.to_string();
            let parent = g.parent.map(|p| city.grid(p).code.to_string()).unwrap_or_default();
            let unit = g.unit.map(|u| city.units.get(u).name.clone()).unwrap_or_default();
            json!({"type": "Feature", "properties": {"code": code, "name": rename(&code, &g.name), "level": g.level + 1, "parent": parent, "unit": unit},
                   "geometry": multipolygon(&g.geometry)})
        })
        .collect();
    json!({"type": "FeatureCollection", "features": features}).to_string()
}

fn zones_geojson(city: &City, unit: &str) -> String {
    let features: Vec<Value> = city
        .zones
        .iter()
        .map(|z| json!({"type": "Feature", "properties": {"layer": z.layer, "id": z.id, "name": z.name, "unit": unit}, "geometry": multipolygon(&z.geometry)}))
        .collect();
    json!({"type": "FeatureCollection", "features": features}).to_string()
}

#[tokio::test]
async fn zones_are_a_layer_replaced_versioned_and_rolled_back() {
    let s = server();
    let city = s.handle.load().city.clone();
    assert!(!city.zones.is_empty(), "the tiny city has road sections");
    let (status, body) = put(&s.app, "/v1/layers/zones", Some("application/geo+json"), zones_geojson(&city, "新道路养护公司")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["switched"]["current"], 2, "{body}");
    let w = s.handle.load();
    assert_eq!(w.city.zones.len(), city.zones.len());
    assert!(w.city.zones.iter().all(|z| z.unit.map(|u| w.city.units.get(u).name.as_str()) == Some("新道路养护公司")));
    // A zone that is not a polygon, strict: refused, nothing changes.
    let bad = json!({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"layer": "roads", "id": "X1"}, "geometry": {"type": "Point", "coordinates": [120.6, 31.2]}}]});
    let (status, body) = put(&s.app, "/v1/layers/zones?strict=true", Some("application/geo+json"), bad.to_string()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("layer_rejected")), "{body}");
    assert_eq!(body["error"]["details"]["report"]["counts"]["wrong_geometry_type"], 1, "{body}");
    assert_eq!(s.handle.load().versions.get("zones"), Some(2));
    let (status, body) = common_post(&s, "/v1/layers/zones/rollback", json!({"version": 1})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(s.handle.load().city.zones, city.zones, "version 1 served again");
}

async fn common_post(s: &common::ingest::Server, uri: &str, body: Value) -> (StatusCode, Value) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let req = axum::http::Request::builder()
        .method("POST")
        .uri(uri)
        .header("authorization", format!("Bearer {}", common::ingest::TOKEN))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap();
    let response = s.app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn units_calendar_and_settings_are_texts_checked_before_they_are_stored() {
    let s = server();
    // The unit register, with the usual Chinese header and a BOM.
    let current = s.handle.load();
    let mut units = String::from("\u{feff}单位编码,单位名称,电话\n");
    for (_, u) in current.city.units.iter().filter(|(_, u)| u.name != "吴中区环境卫生管理处") {
        units.push_str(&format!("{},{},{}\n", u.code.clone().unwrap_or_default(), u.name, u.phone.clone().unwrap_or_default()));
    }
    units.push_str("91320506MA1X000001,吴中区环境卫生管理处,0512-66000001\n,新成立的养护队,\n");
    let (status, body) = put(&s.app, "/v1/layers/units", Some("text/csv"), units).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["checked"]["rows"], current.city.units.len() + 1, "{body}");
    let w = s.handle.load();
    let id = w.city.units.find("吴中区环境卫生管理处").expect("still a unit");
    assert_eq!(w.city.units.get(id).phone.as_deref(), Some("0512-66000001"), "its phone from the new register");
    assert!(w.city.units.find("新成立的养护队").is_some());
    // A register without the units only the responsibility list names (escalation units…): refused.
    let (status, answer) = put(&s.app, "/v1/layers/units", Some("text/csv"), "name\n某单位\n").await;
    assert_eq!((status, answer["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("dataset_rejected")), "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("responsibility list in force names units"), "{answer}");
    for (what, body) in [("no name column", "code,phone\n1,2\n"), ("no units", "code,name,phone\n")] {
        let (status, answer) = put(&s.app, "/v1/layers/units", Some("text/csv"), body).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("dataset_rejected")), "{what}: {answer}");
    }
    assert_eq!(s.handle.load().versions.get("units"), Some(2), "refused registers changed nothing");

    // A calendar with 2027 (a city's own, say): deadlines into 2027 no longer warn.
    let calendar = "years = [2026, 2027]\nworking_hours = [\"08:30-12:00\", \"13:30-17:30\"]\nweekend = [\"sat\", \"sun\"]\nholidays = [\"2026-10-01\", \"2027-01-01\"]\nworkdays = []\n";
    let (status, body) = put(&s.app, "/v1/layers/calendar", Some("application/toml"), calendar).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, health) = get(&s.app, "/health").await;
    assert_eq!(health["calendar_version"], 1, "{health}");
    let (status, body) = put(&s.app, "/v1/layers/calendar", Some("application/toml"), "working_hours = [\"25:00-26:00\"]\n").await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("dataset_rejected")), "{body}");
    assert_eq!(s.handle.load().versions.get("calendar"), Some(1));

    // The city settings: renamed; a hierarchy that does not fit the grid codes is refused.
    let w = s.handle.load();
    let mut meta = w.meta.clone();
    meta.name = "苏州市吴中区".into();
    meta.crs = Some("EPSG:4549".into());
    let (status, body) = put(&s.app, "/v1/layers/city", Some("application/toml"), meta.to_toml()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, health) = get(&s.app, "/health").await;
    assert_eq!((health["city"].as_str(), health["crs"].as_str()), (Some("苏州市吴中区"), Some("EPSG:4549")), "{health}");
    assert!(std::fs::read_to_string(s.dir.path().join("city.toml")).unwrap().contains("苏州市吴中区"));
    meta.hierarchy = citygrid::model::Hierarchy::beijing_db11();
    let (status, body) = put(&s.app, "/v1/layers/city", Some("application/toml"), meta.to_toml()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("dataset_rejected")), "{body}");
    // Rolled back like any dataset: the old name, in city.toml too.
    let (status, body) = common_post(&s, "/v1/layers/city/rollback", json!({"version": 1})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(s.handle.load().meta.name, w.meta.name);
    assert!(std::fs::read_to_string(s.dir.path().join("city.toml")).unwrap().contains(&w.meta.name));
}

#[tokio::test]
async fn a_grid_layer_that_keeps_a_rules_scope_code_for_another_place_is_flagged() {
    let s = server();
    let w = s.handle.load();
    // A street or community code that a rule of the list in force is scoped to.
    let csv = w.rules_csv.clone().unwrap();
    let scoped: String = csv
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(3).map(str::trim).map(str::to_owned))
        .find(|scope| !scope.is_empty() && !scope.starts_with("zone:"))
        .expect("the tiny list scopes a rule to a grid code");
    let (status, body) = put(
        &s.app,
        "/v1/layers/grids",
        Some("application/geo+json"),
        grids_geojson(&w.city, |code, name| if code == scoped { "另一个地方".into() } else { name.into() }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let problem = body["report"]["rules_problem"].as_str().unwrap_or_else(|| panic!("flagged: {body}"));
    assert!(problem.contains("scope_renamed") && problem.contains(&scoped) && problem.contains("另一个地方"), "{problem}");
    // The same layer unrenamed, over the original city: nothing to flag.
    let s = server();
    let (status, body) = put(&s.app, "/v1/layers/grids", Some("application/geo+json"), grids_geojson(&w.city, |_, name| name.into())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["report"]["rules_problem"].is_null() || !body["report"]["rules_problem"].as_str().unwrap().contains("scope_renamed"), "{body}");
}

/// `dir`'s files as a ZIP (in one folder, as a GIS office zips a folder).
fn zip_folder(dir: &std::path::Path, skip: &[&str], extra: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let mut names: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    for name in names.iter().filter(|n| !skip.contains(&n.as_str())) {
        out.start_file(format!("city-gk/{name}"), options).unwrap();
        out.write_all(&std::fs::read(dir.join(name)).unwrap()).unwrap();
    }
    for (name, bytes) in extra {
        out.start_file(format!("city-gk/{name}"), options).unwrap();
        out.write_all(bytes).unwrap();
    }
    out.finish().unwrap().into_inner()
}

#[tokio::test]
async fn a_whole_city_package_comes_over_http_into_a_server_on_an_empty_directory() {
    use citygrid::datasets::{Datasets, empty_city};
    use citygrid::http::{AppState, router};
    use citygrid::world::{World, WorldHandle};
    let dir = tempfile::tempdir().unwrap();
    let store = citygrid::store::Store::open(dir.path()).unwrap();
    let handle = WorldHandle::new(World::new(empty_city(None)));
    let state = AppState::new(handle.clone()).with_admin_tokens(vec![common::ingest::TOKEN.into()]).with_datasets(Datasets::new(
        store,
        handle.clone(),
        citygrid::tiles::TileConfig::default(),
    ));
    let app = router(state);
    let pkg = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/city-gk");

    // Refused whole, nothing stored: a misnamed file, and a list naming a unit nobody has.
    let misnamed = zip_folder(&pkg, &[], &[("grid_old.geojson", b"{}")]);
    let (status, body) = put(&app, "/v1/city", Some("application/zip"), misnamed).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_package")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("grid_old.geojson"), "{body}");
    let bad_rules = "case_kind,case_type,case_name,scope,unit,urgency,time_limit,escalation\nevent,0102,暴露垃圾,,不存在的单位,一般,4wh,\n";
    let broken = zip_folder(&pkg, &["rules.csv"], &[("rules.csv", bad_rules.as_bytes())]);
    let (status, body) = put(&app, "/v1/city", Some("application/zip"), broken).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("package_rejected")), "{body}");
    assert_eq!(body["error"]["details"]["report"]["layers"].as_array().unwrap().len(), 3, "every layer was checked: {body}");
    assert!(!dir.path().join("manifest.json").exists() || citygrid::store::Store::open(dir.path()).unwrap().versions().get("grids").is_none());
    assert!(handle.load().city.grids.is_empty(), "still the empty city");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().starts_with(".package")).collect();
    assert!(leftovers.is_empty(), "unpacked packages are removed");

    // A dry run checks only; then the package is served, every dataset current at once.
    let zipped = zip_folder(&pkg, &[], &[]);
    let (status, body) = put(&app, "/v1/city?dry_run=true", Some("application/zip"), zipped.clone()).await;
    assert_eq!((status, body["versions"].is_null()), (StatusCode::OK, true), "{body}");
    assert!(handle.load().city.grids.is_empty());
    let (status, body) = put(&app, "/v1/city", Some("application/zip"), zipped).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for dataset in ["city", "grids", "components", "zones", "units", "rules", "calendar"] {
        assert_eq!(body["versions"][dataset], 1, "{dataset}: {body}");
    }
    let w = handle.load();
    assert_eq!((w.city.grids.len(), w.city.components.len(), w.city.zones.len()), (55, 300, 4));
    assert_eq!(w.meta.code.as_deref(), Some("320509"));
    let (status, answer) = get(&app, "/v1/locate?x=558655.961&y=3467218.649&crs=EPSG:4549").await;
    assert_eq!((status, answer["grid"]["code"].as_str()), (StatusCode::OK, Some("32050900100101")), "{answer}");
}

#[tokio::test]
async fn a_responsibility_list_is_never_emptied_or_halved_by_accident() {
    let s = server();
    let current = s.handle.load().rules_csv.clone().unwrap();
    let header = current.lines().next().unwrap().to_owned();
    let n = s.handle.load().routing.rules.as_ref().unwrap().rules.len();
    // Only the header: refused on both routes, whatever allow_shrink says.
    for uri in ["/v1/rules", "/v1/rules?allow_shrink=true", "/v1/layers/rules", "/v1/layers/rules?allow_shrink=true"] {
        let (status, body) = put(&s.app, uri, Some("text/csv"), format!("{header}\n")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{uri}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("no rule") || message.contains("routes uniquely"), "{uri}: {message}");
    }
    // Whole case types, but under half of the rows: a partial file, unless allow_shrink.
    let rows: Vec<&str> = current.lines().skip(1).filter(|l| !l.trim().is_empty()).collect();
    let type_of = |l: &str| l.split(',').take(2).collect::<Vec<_>>().join(",");
    let mut kept: Vec<&str> = Vec::new();
    for t in rows.iter().map(|l| type_of(l)).collect::<std::collections::BTreeSet<_>>() {
        let group: Vec<&str> = rows.iter().copied().filter(|l| type_of(l) == t).collect();
        if (kept.len() + group.len()) * 2 < n {
            kept.extend(group);
        }
    }
    assert!(!kept.is_empty() && kept.len() * 2 < n, "{} of {n}", kept.len());
    let partial = format!("{header}\n{}\n", kept.join("\n"));
    let (status, body) = put(&s.app, "/v1/rules", Some("text/csv"), partial.clone()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("rules_shrink")), "{body}");
    assert_eq!(s.handle.load().versions.get("rules"), Some(1), "nothing changed");
    let (status, body) = put(&s.app, "/v1/layers/rules", Some("text/csv"), partial.clone()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("dataset_rejected")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("allow_shrink"), "{body}");
    let (status, body) = put(&s.app, "/v1/rules?allow_shrink=true", Some("text/csv"), partial).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
