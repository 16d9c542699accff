//! TileJSON, the tileset catalog and the style carry an ETag and Cache-Control, answer 304 to a
//! matching If-None-Match, and change their ETag when what they describe changes (a new layer
//! version, another host).

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

async fn get(app: &axum::Router, uri: &str, headers: &[(&str, &str)]) -> axum::http::Response<Body> {
    let mut req = Request::builder().uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
}

#[tokio::test]
async fn metadata_is_revalidated_with_etags() {
    let s = common::ingest::server();
    for uri in ["/tiles/grids,components", "/tiles", "/styles/citygrid.json", "/styles/citygrid.json?datum=gcj02"] {
        let r = get(&s.app, uri, &[("host", "city.example:8080")]).await;
        assert_eq!(r.status(), StatusCode::OK, "{uri}");
        let etag = r.headers().get("etag").unwrap_or_else(|| panic!("{uri}: no etag")).to_str().unwrap().to_owned();
        assert_eq!(r.headers().get("cache-control").unwrap(), "public, max-age=60", "{uri}");
        let again = get(&s.app, uri, &[("host", "city.example:8080"), ("if-none-match", &etag)]).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{uri}");
        // The URLs inside name the host: another host, another document.
        let other = get(&s.app, uri, &[("host", "other.example"), ("if-none-match", &etag)]).await;
        assert_eq!(other.status(), StatusCode::OK, "{uri}");
    }
    // A new components version changes the TileJSON (its versions), hence its ETag.
    let r = get(&s.app, "/tiles/grids,components", &[]).await;
    let etag = r.headers().get("etag").unwrap().to_str().unwrap().to_owned();
    let city = s.handle.load().city.clone();
    let mut csv = String::from("code,class,lon,lat\n");
    for c in &city.components {
        csv.push_str(&format!("{},{},{},{}\n", c.code, c.class, c.location.x, c.location.y));
    }
    let (status, body) = common::ingest::put(&s.app, "/v1/layers/components", Some("text/csv"), csv).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let r = get(&s.app, "/tiles/grids,components", &[("if-none-match", &etag)]).await;
    assert_eq!(r.status(), StatusCode::OK, "a new version is a new TileJSON");
}
