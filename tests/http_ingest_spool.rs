//! `PUT /v1/layers/{name}` spools the upload to a temp file as it arrives: a body without a
//! length (`Transfer-Encoding: chunked`) is counted as it comes and refused with 413 as soon as
//! it passes `max_upload_mb`, without reading on, storing nothing; a layer sent in many chunks
//! and without a content type is sniffed from the spooled file.

mod common;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use common::ingest::{TOKEN, assert_unchanged, server, server_with_limit};

/// A body of unknown length, as `Transfer-Encoding: chunked` delivers it: `bytes` in frames of
/// `chunk` bytes, then, if `endless`, spaces forever. `sent` counts the bytes handed out.
struct Chunked {
    bytes: Bytes,
    chunk: usize,
    endless: bool,
    sent: Arc<AtomicUsize>,
}

impl futures_core::Stream for Chunked {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let piece = if !self.bytes.is_empty() {
            let n = self.chunk.min(self.bytes.len());
            self.bytes.split_to(n)
        } else if self.endless {
            Bytes::from(vec![b' '; self.chunk])
        } else {
            return Poll::Ready(None);
        };
        self.sent.fetch_add(piece.len(), Ordering::Relaxed);
        Poll::Ready(Some(Ok(piece)))
    }
}

/// `PUT /v1/layers/components` of `body` as a chunked upload (with `content_type`, if given);
/// the answer and how many bytes the server pulled from the body.
async fn put_chunked(app: &axum::Router, content_type: Option<&str>, body: Chunked) -> (StatusCode, Value, usize) {
    let sent = body.sent.clone();
    let body = Body::from_stream(body);
    assert!(body.size_hint().upper().is_none(), "no length announced");
    let mut req = Request::builder().method("PUT").uri("/v1/layers/components").header("authorization", format!("Bearer {TOKEN}"));
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let response = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap(), sent.load(Ordering::Relaxed))
}

#[tokio::test]
async fn an_endless_chunked_upload_is_413_once_past_the_limit_and_changes_nothing() {
    let s = server_with_limit(1);
    let chunk = 64 << 10;
    let endless = Chunked { bytes: Bytes::from_static(br#"{"type": "FeatureCollection", "features": ["#), chunk, endless: true, sent: Arc::default() };
    let (status, answer, pulled) = put_chunked(&s.app, Some("application/geo+json"), endless).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")), "{answer}");
    assert_eq!(answer["error"]["details"]["limit_bytes"], 1 << 20);
    assert!(pulled > 1 << 20 && pulled <= (1 << 20) + chunk, "read no further than the chunk that passed the limit: {pulled}");
    assert_unchanged(&s, "endless chunked upload").await;
}

#[tokio::test]
async fn a_chunked_upload_without_a_content_type_is_sniffed_from_the_spooled_file() {
    let s = server();
    let count = s.handle.load().city.components.len();
    let fgb = std::fs::read(s.dir.path().join("layers/components/1.fgb")).unwrap();
    let body = Chunked { bytes: Bytes::from(fgb), chunk: 1000, endless: false, sent: Arc::default() };
    let (status, answer, _) = put_chunked(&s.app, None, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!((answer["report"]["format"].as_str(), answer["report"]["accepted"].as_u64()), (Some("flat_geobuf"), Some(count as u64)));
    assert_eq!(s.handle.load().versions.get("components"), Some(2));
}
