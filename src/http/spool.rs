//! Uploads spooled to disk: a request body (or a form's file part) is streamed into an anonymous
//! temp file in the data directory (on the disk that holds the layers, not a RAM-backed `/tmp`)
//! — unlinked at creation, so a crash leaves nothing behind — counting
//! bytes and refused as soon as it passes the upload limit, so a layer of hundreds of MB is never
//! held in memory. The reader then streams from the rewound file.

use std::pin::Pin;

use axum::body::{Body, HttpBody};
use axum::http::StatusCode;
use futures_core::Stream;
use serde_json::json;
use tokio::io::{AsyncSeekExt, AsyncWriteExt, BufWriter};

use super::error::ApiError;

/// Why an upload could not be spooled.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// More than `limit` bytes: `413 payload_too_large`.
    #[error("the upload is larger than the limit of {} MiB (max_upload_mb in the config file)", .limit >> 20)]
    TooLarge { limit: u64 },
    /// The client's body broke off: `400 unreadable_body`.
    #[error("the request body could not be read: {0}")]
    Body(String),
    /// The temp file could not be created or written (e.g. a full disk): `500 storage_failed`.
    #[error("the upload could not be written to a temp file: {0}")]
    Io(#[from] std::io::Error),
}

impl From<SpoolError> for ApiError {
    fn from(e: SpoolError) -> ApiError {
        let message = e.to_string();
        match e {
            SpoolError::TooLarge { limit } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message).with_details(json!({"limit_bytes": limit}))
            }
            SpoolError::Body(_) => ApiError::bad_request("unreadable_body", message),
            SpoolError::Io(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage_failed", message),
        }
    }
}

/// An upload being written to an anonymous temp file, at most `limit` bytes.
pub struct Spool {
    file: BufWriter<tokio::fs::File>,
    len: u64,
    limit: u64,
}

impl Spool {
    /// A spool in `dir` (the data directory).
    pub fn new(limit: u64, dir: &std::path::Path) -> Result<Spool, SpoolError> {
        let file = tokio::fs::File::from_std(tempfile::tempfile_in(dir)?);
        Ok(Spool { file: BufWriter::with_capacity(1 << 20, file), len: 0, limit })
    }

    /// Appends `chunk`; if it takes the upload past the limit, nothing of it is written.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), SpoolError> {
        self.len += chunk.len() as u64;
        if self.len > self.limit {
            return Err(SpoolError::TooLarge { limit: self.limit });
        }
        self.file.write_all(chunk).await?;
        Ok(())
    }

    /// The whole upload, flushed and rewound, to be read in a blocking task.
    pub async fn finish(mut self) -> Result<std::fs::File, SpoolError> {
        self.file.flush().await?;
        let mut file = self.file.into_inner();
        file.rewind().await?;
        Ok(file.into_std().await)
    }
}

/// Spools a raw request body of at most `limit` bytes. A declared length (`Content-Length`)
/// past the limit is refused before anything is read; a chunked body, once it passes it.
pub async fn body(body: Body, limit: u64, dir: &std::path::Path) -> Result<std::fs::File, SpoolError> {
    if body.size_hint().lower() > limit {
        return Err(SpoolError::TooLarge { limit });
    }
    let mut spool = Spool::new(limit, dir)?;
    let mut frames = body.into_data_stream();
    while let Some(chunk) = std::future::poll_fn(|cx| Pin::new(&mut frames).poll_next(cx)).await {
        spool.write(&chunk.map_err(|e| SpoolError::Body(e.to_string()))?).await?;
    }
    spool.finish().await
}
