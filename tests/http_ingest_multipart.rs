//! `PUT /v1/layers/{name}` with `multipart/form-data`, as an HTML form or `curl -F` sends it:
//! the file part is the layer (format from its content type, else its file name), other parts
//! are ignored; a form without a file and an over-limit part are clear 4xx that store nothing.

mod common;

use axum::http::StatusCode;
use serde_json::Value;

use common::ingest::{Server, put, server_with_limit};

const BOUNDARY: &str = "----citygrid-test-boundary";

/// A form body: (field name, file name, content type, bytes) per part.
fn form(parts: &[(&str, Option<&str>, &str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, file, ct, bytes) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match file {
            Some(f) => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n").as_bytes()),
            None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n").as_bytes()),
        }
        body.extend_from_slice(format!("Content-Type: {ct}\r\n\r\n").as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// `PUT /v1/layers/components` of a form body.
async fn put_form(app: &axum::Router, body: Vec<u8>) -> (StatusCode, Value) {
    put(app, "/v1/layers/components", Some(&format!("multipart/form-data; boundary={BOUNDARY}")), body).await
}

#[tokio::test]
async fn a_form_upload_imports_its_file_part_and_bad_forms_change_nothing() {
    let Server { app, handle, dir } = server_with_limit(1);
    let count = handle.load().city.components.len();
    let fgb = std::fs::read(dir.path().join("layers/components/1.fgb")).unwrap();
    assert!(fgb.len() < 1 << 20, "the tiny layer fits the 1 MiB limit");

    // No file part: a comment field only.
    let (status, e) = put_form(&app, form(&[("comment", None, "text/plain", "新的普查".as_bytes())])).await;
    assert_eq!((status, e["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("missing_file")), "{e}");
    // Over the limit.
    let big = vec![b'x'; (1 << 20) + 10];
    let (status, e) = put_form(&app, form(&[("file", Some("big.fgb"), "application/octet-stream", &big)])).await;
    assert_eq!((status, e["error"]["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")), "{e}");
    assert_eq!(handle.load().versions.get("components"), Some(1), "refused forms stored nothing");

    // A browser sends a generic content type: the file name's extension says FlatGeobuf.
    let (status, ok) =
        put_form(&app, form(&[("comment", None, "text/plain", b"survey 2026"), ("file", Some("survey.fgb"), "application/octet-stream", &fgb)])).await;
    assert_eq!(status, StatusCode::OK, "{ok}");
    assert_eq!(ok["report"]["format"], "flat_geobuf");
    assert_eq!(ok["report"]["accepted"], count);
    assert_eq!(handle.load().versions.get("components"), Some(2));
}
