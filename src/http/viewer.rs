//! The dispatch-centre web viewer (`web-viewer/`), entirely from the binary: `GET /viewer/` and
//! the viewer's own files, and MapLibre GL JS under `GET /viewer/vendor/maplibre-gl/{file}`
//! (vendored at a pinned version in `web-viewer/vendor/maplibre-gl/`, with its licence). All
//! are compiled in, so a binary copied or installed anywhere serves its map with no source
//! tree, no npm and no internet. Each answer has a strong ETag (a `304` to a matching
//! `If-None-Match`) and is sent gzip- or brotli-compressed when the client accepts it (each
//! compressed once, on first request).
//!
//! For development, `serve --viewer-dir DIR` serves any of these files found in `DIR` (same
//! relative paths: `DIR/app.js`, `DIR/vendor/maplibre-gl/maplibre-gl.mjs`) instead of the
//! compiled-in copy, read on every request: edit the page and reload, no rebuild.

use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use bytes::Bytes;
use serde_json::json;

use super::AppState;
use super::conditional::{accepts_encoding, etag_matches};
use super::error::ApiError;

/// The viewer's own files change with the binary: clients revalidate every time (a 304).
const OWN_CACHE_CONTROL: &str = "no-cache";
/// MapLibre changes only with a new binary: an hour, then revalidate.
const VENDOR_CACHE_CONTROL: &str = "public, max-age=3600";
/// Where MapLibre's files are, under `/viewer/`.
pub const VENDOR_PREFIX: &str = "vendor/maplibre-gl/";
/// The MapLibre GL JS version compiled in (`web-viewer/vendor/maplibre-gl/README.md`).
pub const MAPLIBRE_VERSION: &str = "6.17.0";

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// One compiled-in file.
struct Asset {
    /// Path under `/viewer/`.
    path: &'static str,
    content_type: &'static str,
    cache_control: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $type:expr, $cache:expr) => {
        Asset { path: $path, content_type: $type, cache_control: $cache, body: include_bytes!(concat!("../../web-viewer/", $path)) }
    };
}

/// Everything the viewer loads. A new file of `web-viewer/` must be listed here.
const ASSETS: &[Asset] = &[
    asset!("index.html", HTML, OWN_CACHE_CONTROL),
    asset!("app.js", JS, OWN_CACHE_CONTROL),
    asset!("api.js", JS, OWN_CACHE_CONTROL),
    asset!("staff.js", JS, OWN_CACHE_CONTROL),
    asset!("style.css", CSS, OWN_CACHE_CONTROL),
    asset!("vendor/maplibre-gl/maplibre-gl.mjs", JS, VENDOR_CACHE_CONTROL),
    asset!("vendor/maplibre-gl/maplibre-gl-worker.mjs", JS, VENDOR_CACHE_CONTROL),
    asset!("vendor/maplibre-gl/maplibre-gl.css", CSS, VENDOR_CACHE_CONTROL),
    asset!("vendor/maplibre-gl/LICENSE.txt", TEXT, VENDOR_CACHE_CONTROL),
];

/// An asset's ETag and its compressed copies, made on first use.
#[derive(Default)]
struct Prepared {
    etag: OnceLock<HeaderValue>,
    gzip: OnceLock<Bytes>,
    brotli: OnceLock<Bytes>,
}

fn prepared(i: usize) -> &'static Prepared {
    static ALL: OnceLock<Vec<Prepared>> = OnceLock::new();
    &ALL.get_or_init(|| ASSETS.iter().map(|_| Prepared::default()).collect())[i]
}

/// A strong ETag of `body`: its CRC-32 and length.
fn etag_of(body: &[u8]) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{:08x}-{:x}\"", crc32fast::hash(body), body.len())).expect("hex is a valid header")
}

/// `GET /viewer` and `GET /`: to the viewer page, where its relative URLs resolve (temporary,
/// so browsers do not keep `/` pointing there for ever), under the server's path prefix.
pub async fn redirect(headers: HeaderMap) -> Redirect {
    Redirect::temporary(&format!("{}/viewer/", super::path_prefix(&headers)))
}

/// `GET /viewer/`
pub async fn index(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    serve(&state, "index.html", &headers).await
}

/// `GET /viewer/{file}`: one of the viewer's own files.
pub async fn file(State(state): State<AppState>, UrlPath(name): UrlPath<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    serve(&state, &name, &headers).await
}

/// `GET /viewer/vendor/maplibre-gl/{file}`: MapLibre GL JS and its licence.
pub async fn vendor(State(state): State<AppState>, UrlPath(name): UrlPath<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    serve(&state, &format!("{VENDOR_PREFIX}{name}"), &headers).await
}

async fn serve(state: &AppState, path: &str, headers: &HeaderMap) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found(format!("no viewer file {path:?}")).with_details(json!({"path": format!("/viewer/{path}")}));
    let i = ASSETS.iter().position(|a| a.path == path).ok_or_else(not_found)?;
    let asset = &ASSETS[i];
    if let Some(dir) = state.viewer_dir.as_deref()
        && let Some(body) = read_override(dir, path).await?
    {
        let etag = etag_of(&body);
        return Ok(answer(headers, asset.content_type, OWN_CACHE_CONTROL, etag, Bytes::from(body), None));
    }
    let prep = prepared(i);
    let etag = prep.etag.get_or_init(|| etag_of(asset.body)).clone();
    let body = Bytes::from_static(asset.body);
    // Compression only pays above a few KiB; the small files go to the compression layer.
    let encoded = (asset.body.len() > 16 * 1024).then(|| encode(headers, prep, asset.body)).flatten();
    Ok(answer(headers, asset.content_type, asset.cache_control, etag, body, encoded))
}

/// The file at `path` under the developer's viewer directory, if there is one.
async fn read_override(dir: &Path, path: &str) -> Result<Option<Vec<u8>>, ApiError> {
    let file = dir.join(path);
    match tokio::fs::read(&file).await {
        Ok(body) => Ok(Some(body)),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => Ok(None),
        Err(e) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("reading {}: {e}", file.display()))),
    }
}

/// The compressed copy the client accepts (brotli, else gzip), with its encoding name.
fn encode(headers: &HeaderMap, prep: &Prepared, body: &'static [u8]) -> Option<(&'static str, Bytes)> {
    let accepts = |name: &str| accepts_encoding(headers, name);
    if accepts("br") {
        let br = prep.brotli.get_or_init(|| {
            let mut out = Vec::new();
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 64 * 1024, 9, 22);
                w.write_all(body).expect("writing to memory");
            }
            Bytes::from(out)
        });
        return Some(("br", br.clone()));
    }
    if accepts("gzip") {
        let gz = prep.gzip.get_or_init(|| {
            let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            w.write_all(body).expect("writing to memory");
            Bytes::from(w.finish().expect("writing to memory"))
        });
        return Some(("gzip", gz.clone()));
    }
    None
}

fn answer(
    headers: &HeaderMap,
    content_type: &'static str,
    cache_control: &'static str,
    etag: HeaderValue,
    body: Bytes,
    encoded: Option<(&'static str, Bytes)>,
) -> Response {
    let matches = etag_matches(headers, etag.to_str().unwrap_or_default());
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else if let Some((coding, bytes)) = encoded {
        let mut r = bytes.into_response();
        r.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
        r
    } else {
        body.into_response()
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
    h.insert(header::ETAG, etag);
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_compiled_in_and_maplibre_is_the_pinned_version() {
        for asset in ASSETS {
            assert!(!asset.body.is_empty(), "{}", asset.path);
        }
        let js = ASSETS.iter().find(|a| a.path.ends_with("maplibre-gl.mjs")).unwrap();
        let head = std::str::from_utf8(&js.body[..400]).unwrap();
        assert!(head.contains(&format!("v{MAPLIBRE_VERSION}")), "{head}");
        let package: serde_json::Value = serde_json::from_str(include_str!("../../web-viewer/package.json")).unwrap();
        assert_eq!(package["vendored"]["maplibre-gl"], MAPLIBRE_VERSION, "web-viewer/package.json names the vendored version");
        assert!(package["dependencies"].get("maplibre-gl").is_none(), "npm does not install MapLibre");
    }

    #[test]
    fn compressed_copies_decompress_to_the_file() {
        use std::io::Read;
        let i = ASSETS.iter().position(|a| a.path.ends_with("maplibre-gl.css")).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip, deflate"));
        let (coding, gz) = encode(&headers, prepared(i), ASSETS[i].body).unwrap();
        assert_eq!(coding, "gzip");
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut plain).unwrap();
        assert_eq!(plain, ASSETS[i].body);
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip;q=0, br"));
        let (coding, br) = encode(&headers, prepared(i), ASSETS[i].body).unwrap();
        assert_eq!(coding, "br");
        let mut plain = Vec::new();
        brotli::Decompressor::new(&br[..], 4096).read_to_end(&mut plain).unwrap();
        assert_eq!(plain, ASSETS[i].body);
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip;q=0"));
        assert!(encode(&headers, prepared(i), ASSETS[i].body).is_none());
    }
}
