//! Cross-origin requests (CORS): which pages served from other origins a browser lets call
//! this server, and the tower layer that answers for it.

/// Cross-origin (CORS) policy: which web pages served from other origins a browser lets call
/// this server. Reads (GET, HEAD) are public by default, as tiles and lookups are; anything
/// else (case routing, which writes the audit log, and every admin write) only from the
/// configured origins — none by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    /// Any origin may read (GET, HEAD). Default: true.
    pub public_reads: bool,
    /// Origins (`https://host[:port]`) that may also send POST, PUT and DELETE.
    pub write_origins: Vec<String>,
}

impl Default for CorsPolicy {
    fn default() -> Self {
        CorsPolicy { public_reads: true, write_origins: Vec::new() }
    }
}

/// The CORS layer of `policy`: a page of another origin may read (GET, HEAD) if reads are
/// public, and send anything else only from a configured write origin. Preflights
/// (`OPTIONS` with `Access-Control-Request-Method`) are answered here; an origin that may not
/// gets no `Access-Control-Allow-Origin`, so its browser refuses the call.
pub(super) fn layer(policy: &CorsPolicy) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderValue, Method, header};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let public_reads = policy.public_reads;
    let writers: Vec<HeaderValue> = policy.write_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin: &HeaderValue, parts: &axum::http::request::Parts| {
            let method = match parts.headers.get(header::ACCESS_CONTROL_REQUEST_METHOD) {
                Some(m) if parts.method == Method::OPTIONS => Method::from_bytes(m.as_bytes()).unwrap_or(Method::POST),
                _ => parts.method.clone(),
            };
            let read = method == Method::GET || method == Method::HEAD;
            (read && public_reads) || writers.contains(origin)
        }))
        .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::IF_NONE_MATCH, header::RANGE])
        .expose_headers([header::ETAG, header::CONTENT_DISPOSITION, header::CONTENT_RANGE])
        .max_age(std::time::Duration::from_secs(600))
}
