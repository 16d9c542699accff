//! OGC API – Features under /ogc, through the real router on the tiny demo city, against the
//! World it serves: the documents, paging over whole collections, bbox and property filters
//! against brute force, CRSs and their axis order, the 400s; and a real client: GDAL's OAPIF
//! driver (`ogrinfo`, `ogr2ogr`) against the real binary.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use geo::Intersects;
use geo_types::{Coord, Rect};
use http_body_util::BodyExt;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use tower::ServiceExt;

use citygrid::crs::{Crs, Datum};
use citygrid::http::{AppState, router};
use citygrid::model::{Component, Grid, Zone};
use citygrid::world::World;
use common::server::{Server, serve_tiny_demo};

const HOST: &str = "citygrid.test";
const BASE: &str = "http://citygrid.test/ogc";
const CRS84: &str = "http://www.opengis.net/def/crs/OGC/1.3/CRS84";
const EPSG: &str = "http://www.opengis.net/def/crs/EPSG/0/";

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

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

async fn get(app: &axum::Router, uri: &str) -> Answer {
    let request = Request::builder().uri(uri).header("host", HOST).body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{uri}: not JSON ({e}): {bytes:?}"));
    Answer { status, headers, body }
}

/// A 200 answer's body, with its content type checked.
async fn ok(app: &axum::Router, uri: &str, content_type: &str) -> Answer {
    let a = get(app, uri).await;
    assert_eq!(a.status, StatusCode::OK, "{uri}: {}", a.body);
    assert_eq!(a.headers["content-type"], content_type, "{uri}");
    a
}

/// The path and query of a link of this API.
fn local(href: &Value) -> String {
    let href = href.as_str().unwrap_or_else(|| panic!("href {href}"));
    href.strip_prefix("http://citygrid.test").unwrap_or_else(|| panic!("{href} is not on the host asked")).to_owned()
}

fn link<'a>(body: &'a Value, rel: &str) -> Option<&'a Value> {
    body["links"].as_array().unwrap().iter().find(|l| l["rel"] == rel)
}

/// Every feature of a request, following its `next` links; checks each page's counts.
async fn walk(app: &axum::Router, first: &str) -> (Vec<Value>, usize) {
    let (mut features, mut pages) = (Vec::new(), 0);
    let mut uri = Some(first.to_owned());
    let mut matched = None;
    while let Some(u) = uri {
        let page = ok(app, &u, "application/geo+json").await.body;
        assert_eq!(page["type"], "FeatureCollection");
        let here = page["features"].as_array().unwrap();
        assert_eq!(page["numberReturned"], here.len(), "{u}");
        match matched {
            None => matched = Some(page["numberMatched"].clone()),
            Some(ref m) => assert_eq!(&page["numberMatched"], m, "numberMatched is the same on every page: {u}"),
        }
        assert_eq!(local(&link(&page, "self").unwrap()["href"]).split('?').next(), u.split('?').next());
        features.extend(here.iter().cloned());
        pages += 1;
        uri = link(&page, "next").map(|l| local(&l["href"]));
        assert!(pages < 10_000, "paging ends");
    }
    assert_eq!(matched.unwrap(), features.len(), "{first}: numberMatched is what the pages hold");
    (features, pages)
}

fn ids(features: &[Value]) -> Vec<String> {
    features.iter().map(|f| f["id"].as_str().unwrap().to_owned()).collect()
}

fn set(ids: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    ids.into_iter().collect()
}

fn unit(world: &World, id: Option<citygrid::model::UnitId>) -> Value {
    id.map_or(Value::Null, |u| json!(world.city.units.get(u).name))
}

fn date(d: Option<chrono::NaiveDate>) -> Value {
    d.map_or(Value::Null, |d| json!(d.to_string()))
}

/// The properties a component's feature must have: the stored layer's fields.
fn component_properties(world: &World, c: &Component) -> Value {
    json!({
        "code": c.code.to_string(),
        "class": c.class.to_string(),
        "name": world.city.names.get(c.name),
        "dept": unit(world, c.dept),
        "owner": unit(world, c.owner),
        "maintainer": unit(world, c.maintainer),
        "status": c.status.zh(),
        "grid": c.grid.map_or(Value::Null, |g| json!(world.city.grid(g).code.to_string())),
        "created": date(c.created),
        "updated": date(c.updated),
        "accuracy": c.accuracy.map_or(Value::Null, |a| json!(a.as_str())),
    })
}

fn grid_properties(world: &World, g: &Grid) -> Value {
    let chief = |f: fn(&citygrid::model::Chief) -> &String| g.chief.as_ref().map(f).filter(|s| !s.is_empty()).map_or(Value::Null, |s| json!(s));
    json!({
        "code": g.code.to_string(),
        "name": g.name,
        "level": g.level + 1,
        "parent": g.parent.map_or(Value::Null, |p| json!(world.city.grid(p).code.to_string())),
        "unit": unit(world, g.unit),
        "chief_name": chief(|c| &c.name),
        "chief_phone": chief(|c| &c.phone),
        "valid_from": date(g.valid_from),
        "valid_to": date(g.valid_to),
    })
}

fn zone_properties(world: &World, z: &Zone) -> Value {
    json!({"layer": z.layer, "id": z.id, "name": z.name, "unit": unit(world, z.unit)})
}

fn extent_of(points: impl Iterator<Item = Coord<f64>>) -> [f64; 4] {
    points.fold([f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY], |e, p| [e[0].min(p.x), e[1].min(p.y), e[2].max(p.x), e[3].max(p.y)])
}

fn grid_coords(g: &Grid) -> impl Iterator<Item = Coord<f64>> + '_ {
    g.geometry.0.iter().flat_map(|p| p.exterior().0.iter().copied())
}

#[tokio::test]
async fn landing_page_conformance_and_api_definition() {
    let f = fixture();
    let landing = ok(&f.app, "/ogc", "application/json").await.body;
    assert!(landing["title"].as_str().unwrap().contains(&f.world.meta.name));
    for (rel, href, media) in [
        ("self", BASE.to_owned(), "application/json"),
        ("service-desc", format!("{BASE}/api"), "application/vnd.oai.openapi+json;version=3.0"),
        ("conformance", format!("{BASE}/conformance"), "application/json"),
        ("data", format!("{BASE}/collections"), "application/json"),
    ] {
        let l = link(&landing, rel).unwrap_or_else(|| panic!("rel {rel}: {landing}"));
        assert_eq!((l["href"].as_str().unwrap(), l["type"].as_str().unwrap()), (href.as_str(), media), "{rel}");
    }
    assert_eq!(ok(&f.app, "/ogc/", "application/json").await.body, landing, "with a trailing slash too");
    // Behind a proxy: the host and scheme the client used.
    let request = Request::builder()
        .uri("/ogc")
        .header("host", "10.0.0.5:8080")
        .header("x-forwarded-host", "gis.example.cn")
        .header("x-forwarded-proto", "https")
        .body(Body::empty())
        .unwrap();
    let response = f.app.clone().oneshot(request).await.unwrap();
    let body: Value = serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(link(&body, "data").unwrap()["href"], "https://gis.example.cn/ogc/collections");

    let conformance = ok(&f.app, "/ogc/conformance", "application/json").await.body;
    let classes: Vec<&str> = conformance["conformsTo"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    for class in ["ogcapi-features-1/1.0/conf/core", "ogcapi-features-1/1.0/conf/geojson", "ogcapi-features-1/1.0/conf/oas30", "ogcapi-features-2/1.0/conf/crs"]
    {
        assert!(classes.contains(&format!("http://www.opengis.net/spec/{class}").as_str()), "{class}: {classes:?}");
    }

    let api = ok(&f.app, "/ogc/api", "application/vnd.oai.openapi+json;version=3.0").await.body;
    assert!(api["openapi"].as_str().unwrap().starts_with("3.0"));
    assert_eq!(api["servers"][0]["url"], BASE);
    let limit = &api["components"]["parameters"]["limit"]["schema"];
    assert_eq!((limit["minimum"].as_u64(), limit["maximum"].as_u64(), limit["default"].as_u64()), (Some(1), Some(10_000), Some(100)));
    for (collection, filters) in [
        ("grids", &["level", "parent", "code"][..]),
        ("components", &["class", "grid", "dept", "owner", "maintainer", "status", "cursor"][..]),
        ("zones", &["layer"][..]),
    ] {
        let path = &api["paths"][format!("/collections/{collection}/items")]["get"];
        let names: Vec<&str> = path["parameters"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
        for filter in filters {
            assert!(names.contains(filter), "{collection}: {filter} in {names:?}");
        }
        let refs: Vec<&str> = path["parameters"].as_array().unwrap().iter().filter_map(|p| p["$ref"].as_str()).collect();
        for common in ["limit", "bbox", "bbox-crs", "crs", "datetime", "offset"] {
            assert!(refs.contains(&format!("#/components/parameters/{common}").as_str()), "{collection}: {common}");
        }
        assert!(api["paths"][format!("/collections/{collection}/items/{{featureId}}")]["get"].is_object());
    }
    // Every $ref points at something.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => m.iter().for_each(|(k, v)| if k == "$ref" { out.push(v.as_str().unwrap().to_owned()) } else { refs(v, out) }),
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&api, &mut all);
    assert!(!all.is_empty());
    for r in all {
        assert!(api.pointer(r.strip_prefix('#').unwrap()).is_some(), "{r} resolves");
    }
}

#[tokio::test]
async fn collections_give_extent_crs_list_and_links() {
    let f = fixture();
    let w = &f.world;
    let all = ok(&f.app, "/ogc/collections", "application/json").await.body;
    let collections = all["collections"].as_array().unwrap();
    assert_eq!(collections.iter().map(|c| c["id"].as_str().unwrap()).collect::<Vec<_>>(), ["grids", "components", "zones"]);
    let expected_extents = [
        extent_of(w.city.grids.iter().flat_map(grid_coords)),
        extent_of(w.city.components.iter().map(|c| c.location)),
        extent_of(w.city.zones.iter().flat_map(|z| z.geometry.0.iter().flat_map(|p| p.exterior().0.iter().copied()))),
    ];
    for (c, extent) in collections.iter().zip(expected_extents) {
        let id = c["id"].as_str().unwrap();
        assert_eq!(ok(&f.app, &format!("/ogc/collections/{id}"), "application/json").await.body, *c, "{id}: the same alone");
        assert_eq!(c["itemType"], "feature");
        assert_eq!(c["storageCrs"], CRS84);
        let crs: Vec<&str> = c["crs"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(crs[0], CRS84, "the default first");
        for uri in [format!("{EPSG}4326"), format!("{EPSG}4490"), format!("{EPSG}4549"), format!("{EPSG}4528"), "http://citygrid.local/crs/gcj02".to_owned()] {
            assert!(crs.contains(&uri.as_str()), "{id}: {uri} in {crs:?}");
        }
        assert!(!crs.contains(&format!("{EPSG}4491").as_str()), "a zone far from the city is not offered");
        assert_eq!(all["crs"], c["crs"]);
        assert_eq!(c["extent"]["spatial"]["bbox"], json!([extent]), "{id}");
        assert_eq!(c["extent"]["spatial"]["crs"], CRS84);
        let items = link(c, "items").unwrap();
        assert_eq!(items["type"], "application/geo+json");
        assert_eq!(items["href"], format!("{BASE}/collections/{id}/items"));
        assert_eq!(link(c, "self").unwrap()["href"], format!("{BASE}/collections/{id}"));
    }
    // The demo's grids are valid from 2023-01-01, open-ended.
    assert_eq!(collections[0]["extent"]["temporal"]["interval"], json!([["2023-01-01T00:00:00+08:00", null]]));

    let missing = get(&f.app, "/ogc/collections/roads").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.body["error"]["code"], "unknown_collection");
    assert_eq!(missing.body["error"]["details"]["collections"], json!(["grids", "components", "zones"]));
    assert_eq!(get(&f.app, "/ogc/collections/roads/items").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn paging_walks_every_component_exactly_once() {
    let f = fixture();
    let w = &f.world;
    // By cursor (what the next links carry), an odd page size.
    let (features, pages) = walk(&f.app, "/ogc/collections/components/items?limit=137").await;
    assert_eq!(pages, w.city.components.len().div_ceil(137));
    let got = ids(&features);
    assert!(got.windows(2).all(|p| p[0] < p[1]), "in code order, no duplicate");
    assert_eq!(set(got.clone()), set(w.city.components.iter().map(|c| c.code.to_string())));
    assert_eq!(got.len(), w.city.components.len());
    // Each feature is the component: point, properties, nothing else.
    for feature in &features {
        let c = w.city.component_by_code(feature["id"].as_str().unwrap().parse().unwrap()).unwrap();
        assert_eq!(feature["type"], "Feature");
        assert_eq!(feature["geometry"], json!({"type": "Point", "coordinates": [c.location.x, c.location.y]}));
        assert_eq!(feature["properties"], component_properties(w, c));
    }
    // By offset: the same features, with prev links.
    let (by_offset, _) = walk(&f.app, "/ogc/collections/components/items?limit=500&offset=0").await;
    assert_eq!(ids(&by_offset), got);
    let third = ok(&f.app, "/ogc/collections/components/items?limit=500&offset=1000", "application/geo+json").await.body;
    assert_eq!(local(&link(&third, "prev").unwrap()["href"]), "/ogc/collections/components/items?limit=500&offset=500");
    assert_eq!(local(&link(&third, "next").unwrap()["href"]), "/ogc/collections/components/items?limit=500&offset=1500");
    assert_eq!(ids(third["features"].as_array().unwrap()), got[1000..1500]);
    // The default page, and past the end.
    let first = ok(&f.app, "/ogc/collections/components/items", "application/geo+json").await;
    assert_eq!(first.body["numberReturned"], 100, "default limit");
    assert_eq!(first.headers["content-crs"], format!("<{CRS84}>"));
    assert_eq!(link(&first.body, "collection").unwrap()["href"], format!("{BASE}/collections/components"));
    let beyond = ok(&f.app, "/ogc/collections/components/items?offset=5000", "application/geo+json").await.body;
    assert_eq!((beyond["numberReturned"].as_u64(), beyond["numberMatched"].as_u64()), (Some(0), Some(2000)));
    assert!(link(&beyond, "next").is_none());
    // A limit above the maximum is served as the maximum (Part 1), not refused.
    let all = ok(&f.app, "/ogc/collections/components/items?limit=50000", "application/geo+json").await.body;
    assert_eq!(all["numberReturned"], 2000);
}

#[tokio::test]
async fn grids_and_zones_page_by_offset() {
    let f = fixture();
    let w = &f.world;
    let (grids, pages) = walk(&f.app, "/ogc/collections/grids/items?limit=7").await;
    assert_eq!(pages, w.city.grids.len().div_ceil(7));
    assert_eq!(ids(&grids), w.city.grids.iter().map(|g| g.code.to_string()).collect::<Vec<_>>(), "level, then code order");
    for (feature, g) in grids.iter().zip(&w.city.grids) {
        assert_eq!(feature["properties"], grid_properties(w, g));
        assert_eq!(feature["geometry"]["type"], "MultiPolygon");
        let rings = &feature["geometry"]["coordinates"];
        assert_eq!(rings.as_array().unwrap().len(), g.geometry.0.len());
        let exterior: Vec<[f64; 2]> = g.geometry.0[0].exterior().0.iter().map(|c| [c.x, c.y]).collect();
        assert_eq!(rings[0][0], json!(exterior));
    }
    let (zones, _) = walk(&f.app, "/ogc/collections/zones/items?limit=3").await;
    assert!(!w.city.zones.is_empty());
    assert_eq!(ids(&zones), w.city.zones.iter().map(|z| format!("{}:{}", z.layer, z.id)).collect::<Vec<_>>());
    for (feature, z) in zones.iter().zip(&w.city.zones) {
        assert_eq!(feature["properties"], zone_properties(w, z));
    }
    let second = ok(&f.app, "/ogc/collections/grids/items?limit=10&offset=10", "application/geo+json").await.body;
    assert_eq!(local(&link(&second, "prev").unwrap()["href"]), "/ogc/collections/grids/items?limit=10&offset=0");
}

fn in_rect(r: &Rect<f64>, p: Coord<f64>) -> bool {
    p.x >= r.min().x && p.x <= r.max().x && p.y >= r.min().y && p.y <= r.max().y
}

#[tokio::test]
async fn bbox_selects_what_brute_force_selects() {
    let f = fixture();
    let w = &f.world;
    let e = extent_of(w.city.grids.iter().flat_map(grid_coords));
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut nonempty = 0;
    for i in 0..25 {
        let (a, b) = (rng.random_range(e[0]..e[2]), rng.random_range(e[0]..e[2]));
        let (c, d) = (rng.random_range(e[1]..e[3]), rng.random_range(e[1]..e[3]));
        let r = Rect::new(Coord { x: a.min(b), y: c.min(d) }, Coord { x: a.max(b), y: c.max(d) });
        let bbox = format!("{},{},{},{}", r.min().x, r.min().y, r.max().x, r.max().y);
        let (components, _) = walk(&f.app, &format!("/ogc/collections/components/items?bbox={bbox}&limit=50")).await;
        let expected: BTreeSet<String> = w.city.components.iter().filter(|c| in_rect(&r, c.location)).map(|c| c.code.to_string()).collect();
        assert_eq!(set(ids(&components)), expected, "box {i}: {bbox}");
        nonempty += !expected.is_empty() as usize;
        let (grids, _) = walk(&f.app, &format!("/ogc/collections/grids/items?bbox={bbox}&limit=1000")).await;
        let expected: BTreeSet<String> = w.city.grids.iter().filter(|g| r.intersects(&g.geometry)).map(|g| g.code.to_string()).collect();
        assert_eq!(set(ids(&grids)), expected, "box {i}: {bbox}");
        let (zones, _) = walk(&f.app, &format!("/ogc/collections/zones/items?bbox={bbox}")).await;
        let expected: BTreeSet<String> = w.city.zones.iter().filter(|z| r.intersects(&z.geometry)).map(|z| format!("{}:{}", z.layer, z.id)).collect();
        assert_eq!(set(ids(&zones)), expected, "box {i}: {bbox}");
        // The same box in EPSG:4326 is latitude first, in EPSG:4490 too.
        for code in [4326, 4490] {
            let latlon = format!("{},{},{},{}", r.min().y, r.min().x, r.max().y, r.max().x);
            let (same, _) = walk(&f.app, &format!("/ogc/collections/components/items?bbox={latlon}&bbox-crs={EPSG}{code}&limit=1000")).await;
            assert_eq!(ids(&same), ids(&components), "EPSG:{code}");
        }
    }
    assert!(nonempty > 15, "{nonempty}");
    // A box holding nothing.
    let empty = ok(&f.app, "/ogc/collections/components/items?bbox=0,0,1,1", "application/geo+json").await.body;
    assert_eq!((empty["numberMatched"].as_u64(), empty["numberReturned"].as_u64()), (Some(0), Some(0)));
}

#[tokio::test]
async fn a_gauss_kruger_bbox_is_northing_first_and_exact() {
    let f = fixture();
    let w = &f.world;
    let gk = Crs::from_epsg(4549).unwrap();
    let en: Vec<(String, (f64, f64))> = w.city.components.iter().map(|c| (c.code.to_string(), gk.from_wgs84(c.location.x, c.location.y).unwrap())).collect();
    let [cx, cy] = w.center();
    let (ce, cn) = gk.from_wgs84(cx, cy).unwrap();
    for (half_e, half_n) in [(300.0, 200.0), (150.0, 600.0), (40.0, 40.0)] {
        let (e0, e1, n0, n1) = (ce - half_e, ce + half_e, cn - half_n, cn + half_n);
        let uri = format!("/ogc/collections/components/items?bbox={n0},{e0},{n1},{e1}&bbox-crs={EPSG}4549&limit=10000");
        let page = ok(&f.app, &uri, "application/geo+json").await.body;
        let expected: BTreeSet<String> = en.iter().filter(|(_, (e, n))| *e >= e0 && *e <= e1 && *n >= n0 && *n <= n1).map(|(code, _)| code.clone()).collect();
        assert!(!expected.is_empty());
        assert_eq!(set(ids(page["features"].as_array().unwrap())), expected, "{uri}");
        assert_eq!(page["numberMatched"], expected.len());
        // Easting first is another box (in the sea, far south): nothing, or a 400 outside the area.
        let swapped = get(&f.app, &format!("/ogc/collections/components/items?bbox={e0},{n0},{e1},{n1}&bbox-crs=EPSG:4549")).await;
        assert!(swapped.status == StatusCode::BAD_REQUEST || swapped.body["numberMatched"] == 0, "{}", swapped.body);
    }
}

#[tokio::test]
async fn property_filters_select_what_brute_force_selects() {
    let f = fixture();
    let w = &f.world;
    let city = &w.city;
    let components =
        |pred: &dyn Fn(&Component) -> bool| -> BTreeSet<String> { city.components.iter().filter(|c| pred(c)).map(|c| c.code.to_string()).collect() };
    async fn got(app: &axum::Router, query: &str) -> BTreeSet<String> {
        let (features, _) = walk(app, &format!("/ogc/collections/components/items?limit=10000&{query}")).await;
        set(ids(&features))
    }
    let c0 = &city.components[0];
    let class = c0.class;
    assert_eq!(got(&f.app, &format!("class={class}")).await, components(&|c| c.class == class));
    let major = class.major_class();
    let majors = components(&|c| c.class.major_class() == major);
    assert!(majors.len() > components(&|c| c.class == class).len());
    assert_eq!(got(&f.app, &format!("class={major}")).await, majors);
    let other = city.components.iter().find(|c| c.class.major_class() != major).unwrap().class;
    assert_eq!(got(&f.app, &format!("class={class},{other}")).await, components(&|c| c.class == class || c.class == other));
    // grid: a unit grid, or any level above it.
    let unit_grid = c0.grid.unwrap();
    assert_eq!(got(&f.app, &format!("grid={}", city.grid(unit_grid).code)).await, components(&|c| c.grid == Some(unit_grid)));
    let street = city.chain(unit_grid)[1];
    let in_street = components(&|c| c.grid.is_some_and(|g| city.chain(g).contains(&street)));
    assert!(in_street.len() > components(&|c| c.grid == Some(unit_grid)).len());
    assert_eq!(got(&f.app, &format!("grid={}", city.grid(street).code)).await, in_street);
    // The three units, by name.
    for (param, id) in [("dept", c0.dept), ("owner", c0.owner), ("maintainer", c0.maintainer)] {
        let id = id.unwrap();
        let name = &city.units.get(id).name;
        let expected = components(&|c| match param {
            "dept" => c.dept == Some(id),
            "owner" => c.owner == Some(id),
            _ => c.maintainer == Some(id),
        });
        assert!(!expected.is_empty());
        assert_eq!(got(&f.app, &format!("{param}={}", urlencode(name))).await, expected, "{param}={name}");
    }
    assert!(got(&f.app, "owner=no%20such%20unit").await.is_empty(), "an unknown unit owns nothing");
    // status, in Chinese or English.
    let damaged = components(&|c| c.status == citygrid::model::Status::Damaged);
    assert!(!damaged.is_empty());
    assert_eq!(got(&f.app, &format!("status={}", urlencode("破损"))).await, damaged);
    assert_eq!(got(&f.app, "status=damaged").await, damaged);
    // Combined with each other and with a box.
    let [cx, cy] = w.center();
    let r = Rect::new(Coord { x: cx - 0.004, y: cy - 0.004 }, Coord { x: cx + 0.004, y: cy + 0.004 });
    let query = format!("bbox={},{},{},{}&class={major}&status=intact", r.min().x, r.min().y, r.max().x, r.max().y);
    let expected = components(&|c| in_rect(&r, c.location) && c.class.major_class() == major && c.status == citygrid::model::Status::Intact);
    assert!(!expected.is_empty());
    assert_eq!(got(&f.app, &query).await, expected);
    // datetime matches every component (no validity dates).
    assert_eq!(got(&f.app, "datetime=2000-01-01").await.len(), city.components.len());

    // Grids: level, parent, code, datetime.
    async fn grid_ids(app: &axum::Router, query: &str) -> Vec<String> {
        ids(&walk(app, &format!("/ogc/collections/grids/items?limit=10000&{query}")).await.0)
    }
    let codes = |pred: &dyn Fn(&Grid) -> bool| -> Vec<String> { city.grids.iter().filter(|g| pred(g)).map(|g| g.code.to_string()).collect() };
    for level in 1..=4u8 {
        assert_eq!(grid_ids(&f.app, &format!("level={level}")).await, codes(&|g| g.level + 1 == level), "level {level}");
    }
    let community = city.chain(unit_grid)[2];
    let children = codes(&|g| g.parent == Some(community));
    assert!(children.len() > 1);
    assert_eq!(grid_ids(&f.app, &format!("parent={}", city.grid(community).code)).await, children);
    assert_eq!(grid_ids(&f.app, &format!("code={}", city.grid(street).code)).await, vec![city.grid(street).code.to_string()]);
    assert_eq!(grid_ids(&f.app, &format!("level=4&parent={}", city.grid(community).code)).await, children);
    assert!(grid_ids(&f.app, &format!("level=3&parent={}", city.grid(community).code)).await.is_empty());
    let all = city.grids.len();
    for (datetime, n) in [
        ("2022-12-31", 0),
        ("2023-01-01", all),
        ("2030-06-01T12:00:00Z", all),
        ("..%2F2022-12-31", 0),
        ("2022-06-01%2F2023-01-01", all),
        ("2022-12-31T15:59:59Z", 0),
        ("2022-12-31T16:00:00Z", all),
    ] {
        assert_eq!(grid_ids(&f.app, &format!("datetime={datetime}")).await.len(), n, "datetime={datetime}");
    }

    // Zones: layer.
    let layer = &city.zones[0].layer;
    let (zones, _) = walk(&f.app, &format!("/ogc/collections/zones/items?layer={layer}")).await;
    assert_eq!(ids(&zones).len(), city.zones.iter().filter(|z| &z.layer == layer).count());
    assert!(walk(&f.app, "/ogc/collections/zones/items?layer=rivers").await.0.is_empty());
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("v", s)]).unwrap().trim_start_matches("v=").to_owned()
}

#[tokio::test]
async fn one_feature_by_its_id() {
    let f = fixture();
    let w = &f.world;
    let c = &w.city.components[17];
    let a = ok(&f.app, &format!("/ogc/collections/components/items/{}", c.code), "application/geo+json").await;
    assert_eq!(a.body["type"], "Feature");
    assert_eq!(a.body["id"], c.code.to_string());
    assert_eq!(a.body["properties"], component_properties(w, c));
    assert_eq!(a.body["geometry"]["coordinates"], json!([c.location.x, c.location.y]));
    assert_eq!(a.headers["content-crs"], format!("<{CRS84}>"));
    assert_eq!(link(&a.body, "self").unwrap()["href"], format!("{BASE}/collections/components/items/{}", c.code));
    assert_eq!(link(&a.body, "collection").unwrap()["href"], format!("{BASE}/collections/components"));

    let g = w.city.grids.last().unwrap();
    let a = ok(&f.app, &format!("/ogc/collections/grids/items/{}", g.code), "application/geo+json").await;
    assert_eq!(a.body["properties"], grid_properties(w, g));
    let district = &w.city.grids[0];
    let a = ok(&f.app, &format!("/ogc/collections/grids/items/{}", district.code), "application/geo+json").await;
    assert_eq!(a.body["properties"]["level"], 1);

    let z = &w.city.zones[0];
    let a = ok(&f.app, &format!("/ogc/collections/zones/items/{}:{}", z.layer, z.id), "application/geo+json").await;
    assert_eq!(a.body["properties"], zone_properties(w, z));

    for (collection, id) in [
        ("components", "3205069999999999"),
        ("components", "12"),
        ("grids", "32050699999999"),
        ("grids", "abc"),
        ("zones", "roads:nope"),
        ("zones", "nope"),
        ("grids", &c.code.to_string()),
    ] {
        let a = get(&f.app, &format!("/ogc/collections/{collection}/items/{id}")).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{collection}/{id}");
        assert_eq!(a.body["error"]["code"], "feature_not_found");
        assert_eq!(a.body["error"]["details"]["id"], id);
    }
    let a = get(&f.app, &format!("/ogc/collections/components/items/{}?limit=5", c.code)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "an item takes crs and f only");
}

#[tokio::test]
async fn crs_output_is_in_the_crs_axis_order() {
    let f = fixture();
    let w = &f.world;
    let c = &w.city.components[5];
    let (lon, lat) = (c.location.x, c.location.y);
    let gk = Crs::from_epsg(4549).unwrap();
    let (e, n) = gk.from_wgs84(lon, lat).unwrap();
    let item = format!("/ogc/collections/components/items/{}", c.code);
    for (crs, expected, header) in [
        (format!("{EPSG}4549"), [n, e], format!("{EPSG}4549")),
        ("EPSG:4549".to_owned(), [n, e], format!("{EPSG}4549")),
        ("urn:ogc:def:crs:EPSG::4549".to_owned(), [n, e], format!("{EPSG}4549")),
        (format!("{EPSG}4326"), [lat, lon], format!("{EPSG}4326")),
        (format!("{EPSG}4490"), [lat, lon], format!("{EPSG}4490")),
        (CRS84.to_owned(), [lon, lat], CRS84.to_owned()),
        ("http://citygrid.local/crs/gcj02".to_owned(), <[f64; 2]>::from(Datum::Gcj02.from_wgs84(lon, lat)), "http://citygrid.local/crs/gcj02".to_owned()),
        ("gcj02".to_owned(), <[f64; 2]>::from(Datum::Gcj02.from_wgs84(lon, lat)), "http://citygrid.local/crs/gcj02".to_owned()),
        ("http://citygrid.local/crs/bd09".to_owned(), <[f64; 2]>::from(Datum::Bd09.from_wgs84(lon, lat)), "http://citygrid.local/crs/bd09".to_owned()),
    ] {
        let a = ok(&f.app, &format!("{item}?crs={}", urlencode(&crs)), "application/geo+json").await;
        assert_eq!(a.body["geometry"]["coordinates"], json!(expected), "crs={crs}");
        assert_eq!(a.headers["content-crs"], format!("<{header}>"), "crs={crs}");
    }
    let merc = Crs::from_epsg(3857).unwrap().from_wgs84(lon, lat).unwrap();
    let a = ok(&f.app, &format!("{item}?crs=EPSG:3857"), "application/geo+json").await;
    assert_eq!(a.body["geometry"]["coordinates"], json!([merc.0, merc.1]), "Web Mercator is easting first");

    // A page of grids in Gauss-Krüger: every vertex northing first.
    let page = ok(&f.app, &format!("/ogc/collections/grids/items?crs={EPSG}4549&limit=10000"), "application/geo+json").await;
    assert_eq!(page.headers["content-crs"], format!("<{EPSG}4549>"));
    for (feature, g) in page.body["features"].as_array().unwrap().iter().zip(&w.city.grids) {
        let expected: Vec<Vec<Vec<[f64; 2]>>> = g
            .geometry
            .0
            .iter()
            .map(|p| {
                std::iter::once(p.exterior())
                    .chain(p.interiors())
                    .map(|r| {
                        r.0.iter()
                            .map(|c| {
                                let (e, n) = gk.from_wgs84(c.x, c.y).unwrap();
                                [n, e]
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        assert_eq!(feature["geometry"]["coordinates"], json!(expected), "{}", g.code);
    }
    // The crs parameter survives in the next link.
    let page = ok(&f.app, "/ogc/collections/components/items?crs=EPSG:4549&limit=3", "application/geo+json").await.body;
    let next = local(&link(&page, "next").unwrap()["href"]);
    assert!(next.contains("crs=EPSG%3A4549") && next.contains("cursor="), "{next}");
    let next = ok(&f.app, &next, "application/geo+json").await;
    assert_eq!(next.headers["content-crs"], format!("<{EPSG}4549>"));
}

#[tokio::test]
async fn bad_parameters_are_400_in_the_error_format() {
    let f = fixture();
    let items = "/ogc/collections/components/items";
    for (uri, code, parameter) in [
        (format!("{items}?limit=0"), "invalid_parameter", "limit"),
        (format!("{items}?limit=-5"), "invalid_parameter", "limit"),
        (format!("{items}?limit=ten"), "invalid_parameter", "limit"),
        (format!("{items}?limit=1.5"), "invalid_parameter", "limit"),
        (format!("{items}?offset=-1"), "invalid_parameter", "offset"),
        (format!("{items}?offset=x"), "invalid_parameter", "offset"),
        (format!("{items}?cursor=123"), "invalid_parameter", "cursor"),
        (format!("{items}?cursor=3205060101000001&offset=3"), "invalid_parameter", "cursor"),
        (format!("{items}?bbox=1,2,3"), "invalid_parameter", "bbox"),
        (format!("{items}?bbox=a,b,c,d"), "invalid_parameter", "bbox"),
        (format!("{items}?bbox=1,2,3,4,5,6"), "invalid_parameter", "bbox"),
        (format!("{items}?bbox=120,32,121,31"), "invalid_parameter", "bbox"),
        (format!("{items}?bbox=120,31,121,95"), "invalid_parameter", "bbox"),
        (format!("{items}?bbox=NaN,31,121,32"), "invalid_parameter", "bbox"),
        (format!("{items}?bbox=120,31,121,32&bbox-crs=EPSG:9999"), "unknown_crs", "bbox-crs"),
        (format!("{items}?bbox=0,0,1,1&bbox-crs=EPSG:4549"), "invalid_parameter", "bbox"),
        (format!("{items}?crs=EPSG:4491"), "unknown_crs", "crs"),
        (format!("{items}?crs=wgs84"), "unknown_crs", "crs"),
        (format!("{items}?crs=http://www.opengis.net/def/crs/EPSG/0/2000000"), "unknown_crs", "crs"),
        (format!("{items}?datetime=yesterday"), "invalid_parameter", "datetime"),
        (format!("{items}?datetime=2024-02-01%2F2024-01-01"), "invalid_parameter", "datetime"),
        (format!("{items}?datetime=..%2F.."), "invalid_parameter", "datetime"),
        (format!("{items}?class=9999"), "unknown_class", "class"),
        (format!("{items}?class=1"), "malformed_code", "class"),
        (format!("{items}?grid=123"), "malformed_code", "grid"),
        (format!("{items}?status=broken"), "invalid_parameter", "status"),
        (format!("{items}?level=4"), "unknown_parameter", "level"),
        (format!("{items}?limit=5&limit=6"), "invalid_parameter", "limit"),
        (format!("{items}?f=html"), "invalid_parameter", "f"),
        (format!("{items}?foo=bar"), "unknown_parameter", "foo"),
        ("/ogc/collections/grids/items?level=0".to_owned(), "invalid_parameter", "level"),
        ("/ogc/collections/grids/items?level=9".to_owned(), "invalid_parameter", "level"),
        ("/ogc/collections/grids/items?level=x".to_owned(), "invalid_parameter", "level"),
        ("/ogc/collections/grids/items?parent=abc".to_owned(), "malformed_code", "parent"),
        ("/ogc/collections/grids/items?code=3205".to_owned(), "malformed_code", "code"),
        ("/ogc/collections/grids/items?cursor=3205060101000001".to_owned(), "unknown_parameter", "cursor"),
        ("/ogc/collections/zones/items?layer=Roads".to_owned(), "invalid_parameter", "layer"),
        ("/ogc/collections/zones/items?status=damaged".to_owned(), "unknown_parameter", "status"),
        ("/ogc?limit=3".to_owned(), "unknown_parameter", "limit"),
        ("/ogc/collections?bbox=1,2,3,4".to_owned(), "unknown_parameter", "bbox"),
        ("/ogc/conformance?f=xml".to_owned(), "invalid_parameter", "f"),
        ("/ogc/collections/grids?x=1".to_owned(), "unknown_parameter", "x"),
    ] {
        let a = get(&f.app, &uri).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{uri}: {}", a.body);
        assert_eq!(a.headers["content-type"], "application/json", "{uri}");
        assert_eq!(a.body["error"]["code"], code, "{uri}: {}", a.body);
        assert!(a.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{uri}");
        assert_eq!(a.body["error"]["details"]["parameter"], parameter, "{uri}: {}", a.body);
    }
    // An unknown CRS lists the offered ones.
    let a = get(&f.app, &format!("{items}?crs=EPSG:4491")).await;
    let accepted = a.body["error"]["details"]["accepted"].as_array().unwrap();
    assert!(accepted.contains(&json!(CRS84)) && accepted.contains(&json!(format!("{EPSG}4549"))));
    // The accepted spellings pass.
    for ok_uri in [
        format!("{items}?f=json&limit=1"),
        format!("{items}?f=geojson&limit=1"),
        format!("{items}?limit=&bbox="),
        format!("{items}?crs=CRS84&limit=1"),
        format!("{items}?bbox-crs=OGC:CRS84&bbox=120,31,121,32&limit=1"),
        "/ogc/collections?f=json".to_owned(),
    ] {
        assert_eq!(get(&f.app, &ok_uri).await.status, StatusCode::OK, "{ok_uri}");
    }
}

#[tokio::test]
async fn a_city_without_layers_has_empty_collections() {
    let handle = citygrid::world::WorldHandle::new(World::new(citygrid::datasets::empty_city(None)));
    let app = router(AppState::new(handle));
    let all = ok(&app, "/ogc/collections", "application/json").await.body;
    for c in all["collections"].as_array().unwrap() {
        assert!(c.get("extent").is_none(), "no data, no extent: {c}");
        let id = c["id"].as_str().unwrap();
        let page = ok(&app, &format!("/ogc/collections/{id}/items?bbox=120,31,121,32&crs=EPSG:4326"), "application/geo+json").await.body;
        assert_eq!((page["numberMatched"].as_u64(), page["numberReturned"].as_u64()), (Some(0), Some(0)), "{id}");
    }
    assert_eq!(get(&app, "/ogc/collections/grids/items/32050600100101").await.status, StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------- a real client: GDAL

/// `ogrinfo` and `ogr2ogr` (GDAL's OAPIF driver) against the real binary serving the tiny demo
/// city: the layer list, and a download of every component equal to what the server holds.
#[test]
fn gdal_lists_and_downloads_the_collections() {
    if Command::new("ogr2ogr").arg("--version").output().is_err() || Command::new("ogrinfo").arg("--version").output().is_err() {
        eprintln!(
            "SKIPPED gdal_lists_and_downloads_the_collections: GDAL's ogrinfo/ogr2ogr are not installed \
             (apt-get install gdal-bin; CI installs it)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&mut serve_tiny_demo(&data));
    let addr = server.addr.clone();
    let url = format!("OAPIF:http://{addr}/ogc");
    let world = World::new(citygrid::store::Store::open(&data).unwrap().load_city(&|_, _| {}).unwrap());

    let run = |cmd: &str, args: &[&str]| -> String {
        let out = Command::new(cmd).args(args).output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{cmd} {args:?}:\n{stdout}\n{stderr}");
        stdout.into_owned()
    };
    let listing = run("ogrinfo", &["-ro", "-so", &url]);
    for layer in ["1: grids (title: 网格 grids) (Multi Polygon)", "2: components (title: 部件 components) (Point)", "3: zones"] {
        assert!(listing.contains(layer), "{layer} in:\n{listing}");
    }
    let summary = run("ogrinfo", &["-ro", "-so", &url, "components"]);
    assert!(summary.contains(&format!("Feature Count: {}", world.city.components.len())), "{summary}");

    // Every component, through GDAL's own paging (its default page size, following next links).
    let out = dir.path().join("components.geojson");
    run("ogr2ogr", &["-f", "GeoJSON", out.to_str().unwrap(), &url, "components"]);
    let downloaded: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let features = downloaded["features"].as_array().unwrap();
    assert_eq!(features.len(), world.city.components.len());
    let mut seen = BTreeMap::new();
    for feature in features {
        let p = &feature["properties"];
        let code = p["code"].as_str().unwrap();
        let c = world.city.component_by_code(code.parse().unwrap()).unwrap_or_else(|| panic!("{code} is served"));
        assert!(seen.insert(code.to_owned(), ()).is_none(), "{code} once");
        let expected = component_properties(&world, c);
        for field in ["class", "name", "dept", "owner", "maintainer", "status", "grid", "created", "updated", "accuracy"] {
            // (A field GDAL leaves out of its GeoJSON reads as null.)
            assert_eq!(p[field], expected[field], "{code}.{field}");
        }
        let xy = &feature["geometry"]["coordinates"];
        let (x, y) = (xy[0].as_f64().unwrap(), xy[1].as_f64().unwrap());
        assert!((x - c.location.x).abs() < 1e-9 && (y - c.location.y).abs() < 1e-9, "{code}: ({x}, {y}) vs {:?}", c.location);
    }

    // A filter GDAL forwards (declared in /ogc/api), and a spatial filter.
    let damaged = dir.path().join("damaged.geojson");
    run("ogr2ogr", &["-f", "GeoJSON", damaged.to_str().unwrap(), &url, "components", "-where", "status = '破损'"]);
    let damaged: Value = serde_json::from_slice(&std::fs::read(&damaged).unwrap()).unwrap();
    let expected = world.city.components.iter().filter(|c| c.status == citygrid::model::Status::Damaged).count();
    assert!(expected > 0);
    assert_eq!(damaged["features"].as_array().unwrap().len(), expected);
    let grids = dir.path().join("grids.geojson");
    run("ogr2ogr", &["-f", "GeoJSON", grids.to_str().unwrap(), &url, "grids", "-where", "level = 4"]);
    let grids: Value = serde_json::from_slice(&std::fs::read(&grids).unwrap()).unwrap();
    let unit_level = world.city.hierarchy.levels.len() as u8 - 1;
    assert_eq!(grids["features"].as_array().unwrap().len(), world.city.grids.iter().filter(|g| g.level == unit_level).count());
    drop(server);
}
