//! The dispatch-centre web viewer (`web-viewer/`): `GET /viewer/` and its own files, compiled
//! into the binary so it works from any working directory, and MapLibre GL JS under
//! `GET /viewer/vendor/maplibre-gl/{file}`, read at run time from
//! `<viewer dir>/node_modules/maplibre-gl/dist/` (installed by `npm ci --prefix web-viewer`).
//! Nothing comes from the internet: without the npm install the vendor URLs answer 404 with a
//! JSON error naming the command, and the page shows that message instead of a blank map.

use std::path::{Path, PathBuf};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;

use super::AppState;
use super::error::ApiError;

/// `web-viewer/` of the source tree this binary was built from.
pub const DEFAULT_VIEWER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/web-viewer");
/// The one command that installs the viewer's JavaScript dependency.
pub const INSTALL_COMMAND: &str = "npm ci --prefix web-viewer";

/// The viewer's own files change with the binary: clients revalidate every time.
const OWN_CACHE_CONTROL: &str = "no-cache";
/// MapLibre files change only with `npm ci`; an hour, then revalidate.
const VENDOR_CACHE_CONTROL: &str = "public, max-age=3600";

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The viewer's own files: name under `/viewer/`, content type, bytes.
const FILES: &[(&str, &str, &str)] = &[
    ("index.html", HTML, include_str!("../../web-viewer/index.html")),
    ("app.js", JS, include_str!("../../web-viewer/app.js")),
    ("api.js", JS, include_str!("../../web-viewer/api.js")),
    ("style.css", CSS, include_str!("../../web-viewer/style.css")),
];

/// `GET /viewer` and `GET /`: to the viewer page, where its relative URLs resolve (temporary,
/// so browsers do not keep `/` pointing there for ever), under the server's path prefix.
pub async fn redirect(headers: axum::http::HeaderMap) -> Redirect {
    Redirect::temporary(&format!("{}/viewer/", super::path_prefix(&headers)))
}

/// `GET /viewer/`
pub async fn index() -> Response {
    own_file("index.html").expect("index.html is compiled in")
}

/// `GET /viewer/{file}`: one of the viewer's own files.
pub async fn file(UrlPath(name): UrlPath<String>) -> Result<Response, ApiError> {
    own_file(&name).ok_or_else(|| {
        ApiError::not_found(format!("no viewer file {name:?}")).with_details(json!({"path": format!("/viewer/{name}")}))
    })
}

fn own_file(name: &str) -> Option<Response> {
    let &(_, content_type, body) = FILES.iter().find(|(n, _, _)| *n == name)?;
    Some(
        (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (header::CACHE_CONTROL, HeaderValue::from_static(OWN_CACHE_CONTROL)),
            ],
            body,
        )
            .into_response(),
    )
}

/// Content type of a file of MapLibre's `dist/` that the viewer may load, by extension.
fn vendor_type(name: &str) -> Option<&'static str> {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if !plain {
        return None;
    }
    match name.rsplit_once('.')?.1 {
        "mjs" | "js" => Some(JS),
        "css" => Some(CSS),
        "map" => Some("application/json"),
        _ => None,
    }
}

/// The directory MapLibre's files are served from, under a viewer directory.
pub fn vendor_dir(viewer_dir: &Path) -> PathBuf {
    viewer_dir.join("node_modules").join("maplibre-gl").join("dist")
}

/// `GET /viewer/vendor/maplibre-gl/{file}`: MapLibre GL JS from the npm install.
pub async fn vendor(State(state): State<AppState>, UrlPath(name): UrlPath<String>) -> Result<Response, ApiError> {
    let path = format!("/viewer/vendor/maplibre-gl/{name}");
    let content_type = vendor_type(&name).ok_or_else(|| {
        ApiError::not_found(format!("no vendor file {name:?}")).with_details(json!({"path": path}))
    })?;
    let dir = vendor_dir(&state.viewer_dir);
    match tokio::fs::read(dir.join(&name)).await {
        Ok(body) => Ok((
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (header::CACHE_CONTROL, HeaderValue::from_static(VENDOR_CACHE_CONTROL)),
            ],
            body,
        )
            .into_response()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let installed = tokio::fs::metadata(&dir).await.is_ok();
            let message = if installed {
                format!("MapLibre GL JS has no file {name:?} in {}", dir.display())
            } else {
                format!(
                    "MapLibre GL JS is not installed on this server: run `{INSTALL_COMMAND}` in the citygrid source tree (looked in {})",
                    dir.display()
                )
            };
            Err(ApiError::new(StatusCode::NOT_FOUND, "viewer_vendor_missing", message).with_details(json!({
                "path": path,
                "looked_in": dir.display().to_string(),
                "install": INSTALL_COMMAND,
            })))
        }
        Err(e) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("reading {}: {e}", dir.join(&name).display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::vendor_type;

    #[test]
    fn only_plain_dist_file_names_are_served() {
        assert_eq!(vendor_type("maplibre-gl.mjs"), Some(super::JS));
        assert_eq!(vendor_type("maplibre-gl.css"), Some(super::CSS));
        assert_eq!(vendor_type("maplibre-gl-worker.mjs.map"), Some("application/json"));
        for bad in ["", "..", ".hidden.js", "../package.json", "a/b.mjs", "maplibre-gl.d.ts", "x%2e.js"] {
            assert_eq!(vendor_type(bad), None, "{bad}");
        }
    }
}
