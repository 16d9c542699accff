//! Glyphs for the style's labels, from the server itself: `GET /fonts/{fontstack}/{range}.pbf`
//! answers MapLibre's glyph PBF for any font stack, rendered by [`crate::glyphs`] from the
//! built-in font and the font directory (`serve --fonts DIR`). Every well-formed request gets a
//! glyph set — empty for a range no font has — so a MapLibre client on a dispatch centre's LAN
//! keeps its labels without the internet.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::conditional::{accepts_encoding, etag_matches};
use super::error::ApiError;
use crate::glyphs::{self, GlyphError};

/// Glyph ranges only change with the fonts (a restart): a day, then revalidate.
const CACHE_CONTROL: &str = "public, max-age=86400";

/// `GET /fonts/{fontstack}/{range}.pbf`
#[utoipa::path(get, path = "/fonts/{fontstack}/{range}", tag = "tiles",
    summary = "MapLibre glyphs of the labels",
    description = "The SDF glyphs (24 px, MapLibre's glyph protobuf) of a range of 256 code points for a font stack. Each code point comes from the first font of the stack that has it, then from the built-in font (Open Sans Semibold, Latin) and the server's font directory; a range no font covers is an empty glyph set, never a 404.",
    params(("fontstack" = String, Path, description = "font names, comma-separated (e.g. Open Sans Semibold,Noto Sans CJK SC Regular)"),
        ("range" = String, Path, description = "a glyph range: 0-255.pbf, 256-511.pbf, …")),
    responses((status = 200, description = "the glyph PBF (gzip-encoded when accepted)", content(("application/x-protobuf"))),
        (status = 304, description = "the client's If-None-Match names it"),
        (status = 400, description = "invalid_parameter", body = super::error::ErrorBody)))]
pub async fn glyphs(State(state): State<AppState>, Path((stack, range)): Path<(String, String)>, headers: HeaderMap) -> Result<Response, ApiError> {
    let bad = |e: GlyphError, field: &str, value: &str| ApiError::bad_request("invalid_parameter", e.to_string()).with_details(json!({field: value}));
    let start =
        range.strip_suffix(".pbf").ok_or_else(|| GlyphError::BadRange(range.clone())).and_then(glyphs::parse_range).map_err(|e| bad(e, "range", &range))?;
    glyphs::parse_stack(&stack).map_err(|e| bad(e, "fontstack", &stack))?;
    let library = state.glyphs.clone();
    let rendered = super::error::blocking("rendering glyphs", move || library.range(&stack, start)).await?;
    let rendered = rendered.map_err(|e| ApiError::bad_request("invalid_parameter", e.to_string()))?;
    let etag = HeaderValue::from_str(&format!("\"{:08x}-{:x}\"", rendered.crc32, rendered.pbf.len())).expect("hex is a valid header");
    let fresh = etag_matches(&headers, etag.to_str().unwrap_or_default());
    // Glyph PBFs compress to about a third; the compression layer leaves protobuf alone, so
    // the gzip copy is made here, once per range.
    let gzip = accepts_encoding(&headers, "gzip");
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else if gzip {
        let mut r = rendered.gzip().into_response();
        r.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        rendered.pbf.clone().into_response()
    };
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-protobuf"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(CACHE_CONTROL));
    h.insert(header::ETAG, etag);
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    Ok(r)
}
