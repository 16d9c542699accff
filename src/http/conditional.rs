//! Request headers that every cached answer reads the same way: `If-None-Match` against the
//! answer's ETag, and `Accept-Encoding` for the pre-compressed copies (tiles, glyphs, viewer).

use axum::http::{HeaderMap, header};

/// Whether `If-None-Match` names `etag` (weak comparison: `W/"x"` matches `"x"`) or is `*`.
/// Every `If-None-Match` header and every comma-separated tag counts.
pub(crate) fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers.get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|t| {
        let t = t.trim();
        t == "*" || t.trim_start_matches("W/") == etag
    })
}

/// Whether the client accepts the content coding `coding` (`gzip`, `br`): named (any case) or
/// `*`, and not refused with `q=0`.
pub(crate) fn accepts_encoding(headers: &HeaderMap, coding: &str) -> bool {
    headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|part| {
        let mut it = part.split(';');
        let name = it.next().unwrap_or("").trim();
        let refused = it.any(|p| p.trim().strip_prefix("q=").is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q == 0.0)));
        (name.eq_ignore_ascii_case(coding) || name == "*") && !refused
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(name: header::HeaderName, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn etags_match_weakly_in_lists_and_with_a_star() {
        assert!(etag_matches(&with(header::IF_NONE_MATCH, "\"a\", W/\"b\""), "\"b\""));
        assert!(etag_matches(&with(header::IF_NONE_MATCH, "*"), "\"b\""));
        assert!(!etag_matches(&with(header::IF_NONE_MATCH, "\"a\""), "\"b\""));
        assert!(!etag_matches(&HeaderMap::new(), "\"b\""));
    }

    #[test]
    fn encodings_are_accepted_unless_refused_with_q0() {
        assert!(accepts_encoding(&with(header::ACCEPT_ENCODING, "gzip, deflate, br"), "br"));
        assert!(accepts_encoding(&with(header::ACCEPT_ENCODING, "GZIP;q=0.5"), "gzip"));
        assert!(accepts_encoding(&with(header::ACCEPT_ENCODING, "*"), "br"));
        assert!(!accepts_encoding(&with(header::ACCEPT_ENCODING, "gzip;q=0, br"), "gzip"));
        assert!(!accepts_encoding(&with(header::ACCEPT_ENCODING, "gzip"), "br"));
        assert!(!accepts_encoding(&HeaderMap::new(), "gzip"));
    }
}
