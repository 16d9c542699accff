//! Glyphs for the style's labels, from the server itself: `GET /fonts/{fontstack}/{range}.pbf`
//! reads `<fonts dir>/<font>/<range>.pbf` (the layout of every MapLibre glyph set, e.g. one made
//! with `build_pbf_glyphs` or copied from a tile server), trying each font of a comma-separated
//! stack in turn. The style points here, so a dispatch centre's LAN never needs the internet;
//! without glyph files the answer is a 404 in the error format, and MapLibre GL JS still draws
//! Chinese labels from the browser's own fonts (the viewer sets `localIdeographFontFamily`).

use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::error::ApiError;

/// Glyph ranges only change with the files: a day, then revalidate.
const CACHE_CONTROL: &str = "public, max-age=86400";

fn is_range(r: &str) -> bool {
    r.strip_suffix(".pbf")
        .and_then(|r| r.split_once('-'))
        .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty() && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit()))
}

fn is_font_name(f: &str) -> bool {
    !f.is_empty() && !f.starts_with('.') && !f.contains(['/', '\\', '\0'])
}

/// `GET /fonts/{fontstack}/{range}.pbf`
#[utoipa::path(get, path = "/fonts/{fontstack}/{range}", tag = "tiles",
    summary = "MapLibre glyphs of the labels",
    params(("fontstack" = String, Path, description = "font names, comma-separated"),
        ("range" = String, Path, description = "a glyph range: 0-255.pbf, 256-511.pbf, …")),
    responses((status = 200, description = "the glyph PBF", content(("application/x-protobuf"))),
        (status = 400, description = "invalid_parameter", body = super::error::ErrorBody),
        (status = 404, description = "glyphs_not_found", body = super::error::ErrorBody)))]
pub async fn glyphs(State(state): State<AppState>, Path((stack, range)): Path<(String, String)>) -> Result<Response, ApiError> {
    if !is_range(&range) {
        return Err(ApiError::bad_request("invalid_parameter", "a glyph range is like 0-255.pbf").with_details(json!({"range": range})));
    }
    let fonts: Vec<&str> = stack.split(',').map(str::trim).collect();
    if !fonts.iter().all(|f| is_font_name(f)) {
        return Err(ApiError::bad_request("invalid_parameter", "a font name cannot hold / or start with .").with_details(json!({"fontstack": stack})));
    }
    let missing = || {
        ApiError::new(axum::http::StatusCode::NOT_FOUND, "glyphs_not_found", format!("no glyphs {range} for {stack}"))
            .with_details(json!({"fontstack": stack, "range": range, "hint": "put MapLibre glyph PBFs in <fonts dir>/<font name>/<range>.pbf (serve --fonts-dir; default <data>/fonts)"}))
    };
    let Some(dir) = state.fonts_dir.as_deref() else { return Err(missing()) };
    for font in fonts {
        let path = dir.join(font).join(&range);
        if let Ok(bytes) = tokio::fs::read(&path).await {
            let mut r = bytes.into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-protobuf"));
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(CACHE_CONTROL));
            return Ok(r);
        }
    }
    Err(missing())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_ranges_and_font_names_pass() {
        assert!(is_range("0-255.pbf") && is_range("65280-65535.pbf"));
        assert!(!is_range("0-255") && !is_range("../0-255.pbf") && !is_range("-255.pbf") && !is_range("a-b.pbf"));
        assert!(is_font_name("Open Sans Semibold") && is_font_name("Noto Sans CJK SC Regular"));
        assert!(!is_font_name("..") && !is_font_name("../etc") && !is_font_name("a/b") && !is_font_name(""));
    }
}
