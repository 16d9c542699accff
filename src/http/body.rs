//! JSON request bodies with errors in the documented format: a body that is not JSON, or not
//! the JSON expected, is `400 invalid_json` with the line and column; a declared content type
//! other than JSON is `415 unsupported_media_type`.

use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::error::ApiError;

/// Parses `body` as JSON of type `T`. A missing `Content-Type` is taken as JSON.
pub fn json_body<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<T, ApiError> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("");
        let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", format!("send the body as application/json, not {ct}")));
        }
    }
    parse_json(body)
}

/// Parses `body` as JSON of type `T` whatever its declared type: `400 invalid_json` with the
/// line and column when it is not.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("the body is not the JSON expected: {e}")).with_details(json!({"line": e.line(), "column": e.column()}))
    })
}

/// The chunks of a streamed answer, as a blocking task sends them: `Body::from_stream(Chunks(rx))`.
pub struct Chunks(pub tokio::sync::mpsc::Receiver<axum::body::Bytes>);

impl futures_core::Stream for Chunks {
    type Item = Result<axum::body::Bytes, std::convert::Infallible>;

    fn poll_next(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(Ok))
    }
}
