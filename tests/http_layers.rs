//! Versions and rollback over HTTP: the history of each dataset, rollback behind the admin
//! token, and a switch under load where every answer is wholly from one version.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use citygrid::datasets::Datasets;
use citygrid::demo::{DemoSpec, Preset, generate};
use citygrid::http::{AppState, router};
use citygrid::store::Store;
use citygrid::tiles::TileConfig;
use citygrid::world::{World, WorldHandle};

const TOKEN: &str = "test-admin-token-0123456789";

async fn call(app: axum::Router, method: &str, uri: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value, axum::http::HeaderMap) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let response = app.oneshot(req.body(body).unwrap()).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{uri}: not JSON ({e}): {bytes:?}")), headers)
}

/// A data directory with two versions of every dataset: version 2 is the tiny city with
/// every grid renamed `<name> v2` (same codes and geometry). Version 2 is current.
fn two_versions(dir: &std::path::Path) -> (AppState, WorldHandle) {
    let demo = generate(&DemoSpec { preset: Preset::Tiny, components: None, seed: 1 }, &|_, _| {}).unwrap();
    let meta = demo.meta();
    let mut store = Store::open(dir).unwrap();
    store.save_city(&meta, &demo.city, Some(&demo.rules_csv), "v1", &|_, _| {}).unwrap();
    let mut city = demo.city;
    for g in &mut city.grids {
        g.name.push_str(" v2");
    }
    store.save_city(&meta, &city, Some(&demo.rules_csv), "v2", &|_, _| {}).unwrap();
    let loaded = store.load_city(&|_, _| {}).unwrap();
    let handle = WorldHandle::new(World::new(loaded));
    let state = AppState::new(handle.clone()).with_admin_tokens(vec![TOKEN.into()]).with_datasets(Datasets::new(store, handle.clone(), TileConfig::default()));
    (state, handle)
}

/// A point inside a unit grid of the tiny city (a component's location).
fn inner_point(handle: &WorldHandle) -> (f64, f64) {
    let w = handle.load();
    let c = w.city.components.iter().find(|c| c.grid.is_some()).unwrap();
    (c.location.x, c.location.y)
}

#[tokio::test]
async fn layers_list_every_dataset_with_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let (state, _) = two_versions(dir.path());
    let app = router(state);
    let (status, body, _) = call(app.clone(), "GET", "/v1/layers", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names: Vec<&str> = body["layers"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["grids", "components", "zones", "units", "rules", "calendar", "city", "staff"]);
    assert!(body["layers"].as_array().unwrap()[..5].iter().all(|l| l["current"] == 2), "{body}");
    assert_eq!(body["layers"][5]["current"], serde_json::Value::Null, "no calendar imported: the built-in one");
    let (_, body, _) = call(app.clone(), "GET", "/v1/layers/grids/versions", None, None).await;
    let versions = body["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!((versions[0]["version"].as_u64(), versions[0]["current"].as_bool(), versions[0]["source"].as_str()), (Some(1), Some(false), Some("v1")));
    assert_eq!(versions[1]["current"], true);
    assert!(versions[1]["features"].as_u64().unwrap() > 10);
    let (status, body, _) = call(app.clone(), "GET", "/v1/layers/roads/versions", None, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_layer")));
    let (_, body, _) = call(app, "GET", "/v1/rules/versions", None, None).await;
    assert_eq!(body["name"], "rules");
}

#[tokio::test]
async fn rollback_needs_the_admin_token_and_switches_what_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let (state, handle) = two_versions(dir.path());
    let (lon, lat) = inner_point(&handle);
    let app = router(state);
    let body = json!({"version": 1});
    let (status, err, headers) = call(app.clone(), "POST", "/v1/layers/grids/rollback", None, Some(body.clone())).await;
    assert_eq!((status, err["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")));
    assert!(headers.get("www-authenticate").unwrap().to_str().unwrap().starts_with("Bearer"));
    let (status, err, _) = call(app.clone(), "POST", "/v1/layers/grids/rollback", Some("wrong-token-0123456789"), Some(body.clone())).await;
    assert_eq!((status, err["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    let locate = format!("/v1/locate?lon={lon}&lat={lat}");
    let (_, before, _) = call(app.clone(), "GET", &locate, None, None).await;
    assert!(before["grid"]["name"].as_str().unwrap().ends_with(" v2"));

    let (status, done, _) = call(app.clone(), "POST", "/v1/layers/grids/rollback", Some(TOKEN), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!((done["previous"].as_u64(), done["current"].as_u64()), (Some(2), Some(1)));
    let (_, after, _) = call(app.clone(), "GET", &locate, None, None).await;
    assert_eq!(after["versions"]["grids"], 1);
    assert_eq!(after["grid"]["code"], before["grid"]["code"]);
    assert!(!after["grid"]["name"].as_str().unwrap().ends_with(" v2"), "{after}");
    // It is on disk: a restart serves version 1 too.
    assert_eq!(Store::open(dir.path()).unwrap().versions().get("grids"), Some(1));
    // Rolling back to the version already served changes nothing and rebuilds nothing.
    let served = handle.load();
    let (status, again, _) = call(app.clone(), "POST", "/v1/layers/grids/rollback", Some(TOKEN), Some(json!({"version": 1}))).await;
    assert_eq!((status, again["previous"].as_u64(), again["current"].as_u64()), (StatusCode::OK, Some(1), Some(1)), "{again}");
    assert!(std::sync::Arc::ptr_eq(&served, &handle.load()), "the same snapshot is served");

    for (uri, body, status, code) in [
        ("/v1/layers/grids/rollback", json!({"version": 7}), StatusCode::NOT_FOUND, "unknown_version"),
        ("/v1/layers/roads/rollback", json!({"version": 1}), StatusCode::NOT_FOUND, "unknown_layer"),
        ("/v1/layers/grids/rollback", json!({"v": 1}), StatusCode::BAD_REQUEST, "invalid_json"),
        ("/v1/layers/grids/rollback", json!("1"), StatusCode::BAD_REQUEST, "invalid_json"),
    ] {
        let (s, e, _) = call(app.clone(), "POST", uri, Some(TOKEN), Some(body.clone())).await;
        assert_eq!((s, e["error"]["code"].as_str()), (status, Some(code)), "{uri} {body}: {e}");
    }
    assert_eq!(handle.load().versions.get("grids"), Some(1), "failed calls changed nothing");
}

#[tokio::test]
async fn a_server_without_tokens_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (state, _) = two_versions(dir.path());
    let app = router(state.with_admin_tokens(vec![]));
    let (status, e, _) = call(app, "POST", "/v1/rules/rollback", Some(TOKEN), Some(json!({"version": 1}))).await;
    assert_eq!((status, e["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("writes_disabled")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_see_one_version_or_the_other_never_a_mix_and_never_fail() {
    let dir = tempfile::tempdir().unwrap();
    let (state, handle) = two_versions(dir.path());
    let (lon, lat) = inner_point(&handle);
    let app = router(state);
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (app, stop, seen) = (app.clone(), stop.clone(), seen.clone());
            tokio::spawn(async move {
                let uri = format!("/v1/locate?lon={lon}&lat={lat}");
                while !stop.load(Ordering::Relaxed) {
                    let (status, body, _) = call(app.clone(), "GET", &uri, None, None).await;
                    assert_eq!(status, StatusCode::OK, "{body}");
                    let v2 = body["versions"]["grids"] == 2;
                    // Every name in the answer is of the version the answer names.
                    for e in body["chain"].as_array().unwrap() {
                        assert_eq!(e["name"].as_str().unwrap().ends_with(" v2"), v2, "mixed answer: {body}");
                    }
                    seen[v2 as usize].fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for round in 0..6 {
        let version = if round % 2 == 0 { 1 } else { 2 };
        let (status, body, _) = call(app.clone(), "POST", "/v1/layers/grids/rollback", Some(TOKEN), Some(json!({"version": version}))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.expect("a reader failed");
    }
    let (v1, v2) = (seen[0].load(Ordering::Relaxed), seen[1].load(Ordering::Relaxed));
    assert!(v1 > 0 && v2 > 0, "both versions were served during the test: {v1} / {v2}");
}

/// `GET` of a path with the admin token, the raw answer.
async fn get_raw(app: axum::Router, uri: &str) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let request = Request::builder().uri(uri).header("authorization", format!("Bearer {TOKEN}"));
    let response = app.oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.into_body().collect().await.unwrap().to_bytes().to_vec())
}

#[tokio::test]
async fn a_kept_version_downloads_as_its_stored_file_and_goes_back_in_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let (state, handle) = two_versions(dir.path());
    let app = router(state);
    let name_of = |fgb: &[u8]| {
        let layer = citygrid::ingest::read_layer(fgb, None, &Default::default()).unwrap();
        assert_eq!(layer.format, citygrid::ingest::Format::FlatGeobuf);
        let name = layer.columns.iter().position(|c| c == "name").unwrap();
        (layer.features.len(), layer.features[0].value(name).unwrap().to_owned())
    };
    let grids = handle.load().city.grids.len();
    // A bulk export of every unit's and chief's contact: behind the admin token.
    let (status, err, _) = call(app.clone(), "GET", "/v1/layers/units/versions/current", None, None).await;
    assert_eq!((status, err["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")));
    // Version 1 (names without " v2") and the current one, 2, byte for byte as stored.
    let (status, headers, v1) = get_raw(app.clone(), "/v1/layers/grids/versions/1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/flatgeobuf");
    assert_eq!(headers["content-disposition"], "attachment; filename=\"grids-v1.fgb\"");
    assert_eq!(headers["content-length"], v1.len().to_string().as_str());
    assert_eq!(v1, std::fs::read(dir.path().join("layers/grids/1.fgb")).unwrap());
    let (count, name) = name_of(&v1);
    assert_eq!(count, grids);
    assert!(!name.ends_with(" v2"), "{name}");
    let (status, headers, current) = get_raw(app.clone(), "/v1/layers/grids/versions/current").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-disposition"], "attachment; filename=\"grids-v2.fgb\"");
    assert!(name_of(&current).1.ends_with(" v2"));
    // The responsibility list in force, as CSV.
    let (status, headers, rules) = get_raw(app.clone(), "/v1/layers/rules/versions/current").await;
    assert_eq!((status, headers["content-type"].to_str().unwrap()), (StatusCode::OK, "text/csv; charset=utf-8"));
    assert_eq!(String::from_utf8(rules).unwrap(), handle.load().rules_csv.clone().unwrap());
    for (uri, status, code) in [
        ("/v1/layers/grids/versions/7", StatusCode::NOT_FOUND, "unknown_version"),
        ("/v1/layers/grids/versions/latest", StatusCode::BAD_REQUEST, "invalid_parameter"),
        ("/v1/layers/roads/versions/1", StatusCode::NOT_FOUND, "unknown_layer"),
    ] {
        let (s, _, body) = get_raw(app.clone(), uri).await;
        let e: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((s, e["error"]["code"].as_str()), (status, Some(code)), "{uri}: {e}");
    }
    // What GIS staff download, they can upload again: version 1's grids become version 3.
    let put = Request::builder()
        .method("PUT")
        .uri("/v1/layers/grids")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/flatgeobuf")
        .body(Body::from(v1))
        .unwrap();
    let response = app.clone().oneshot(put).await.unwrap();
    let status = response.status();
    let body: Value = serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["report"]["accepted"].as_u64(), body["report"]["errors"].as_u64()), (Some(grids as u64), Some(0)), "{body}");
    assert_eq!(body["switched"]["current"], 3);
    let (_, _, v3) = get_raw(app, "/v1/layers/grids/versions/3").await;
    assert!(!name_of(&v3).1.ends_with(" v2"));
}

#[test]
fn listings_and_rollbacks_do_not_wait_for_an_upload_being_read_and_a_rollback_meanwhile_refuses_it() {
    use std::sync::mpsc::channel;
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let (state, handle) = two_versions(dir.path());
    let d = state.datasets.clone().unwrap();
    // An upload whose reading stops until told to go on (a slow client, a large file).
    let grids_v2 = std::fs::read(dir.path().join("layers/grids/2.fgb")).unwrap();
    let (reading, is_reading) = channel();
    let (go_on, may_go_on) = channel::<()>();
    let importer = {
        let d = d.clone();
        std::thread::spawn(move || {
            let options = citygrid::ingest::ImportOptions::new(citygrid::ingest::validate::LayerKind::Grids);
            d.import(
                |sink| {
                    reading.send(()).unwrap();
                    may_go_on.recv().unwrap();
                    citygrid::ingest::stream_layer(&grids_v2[..], None, &Default::default(), sink)
                },
                &options,
                false,
                "test",
            )
        })
    };
    is_reading.recv().unwrap();
    // While it is read: the history answers, and a rollback goes through.
    let (done, answered) = channel();
    let lister = d.clone();
    std::thread::spawn(move || {
        let listed = lister.list().len();
        let rolled = lister.rollback("grids", 1).map(|s| s.current);
        done.send((listed, rolled.ok())).unwrap();
    });
    let (listed, rolled) = answered.recv_timeout(Duration::from_secs(20)).expect("the history and rollback waited for the upload");
    assert_eq!((listed, rolled), (citygrid::store::Dataset::ALL.len(), Some(1)));
    // The upload was checked against grids version 2, which is no longer served: refused.
    go_on.send(()).unwrap();
    let e = importer.join().unwrap().expect_err("refused");
    assert!(matches!(e, citygrid::datasets::DatasetError::ChangedMeanwhile { .. }), "{e}");
    assert_eq!(handle.load().versions.get("grids"), Some(1));
    assert_eq!(Store::open(dir.path()).unwrap().versions().get("grids"), Some(1), "nothing stored");
    assert!(!dir.path().join("layers/grids/3.fgb").exists());
}
