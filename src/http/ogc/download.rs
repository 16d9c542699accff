//! Whole-collection downloads of `/items`: every feature a request selects in one answer,
//! written as it is sent, so memory stays bounded at any collection size.
//!
//! - `limit=all`: one GeoJSON FeatureCollection (`numberMatched` = `numberReturned` = the count,
//!   no `next` link), serialised feature by feature.
//! - `f=fgb` (or `Accept: application/flatgeobuf`): one FlatGeobuf file, its header stating the
//!   count and the CRS (CRS84 as EPSG:4326; others as their EPSG code; GCJ-02 and BD-09 by name
//!   only), then the features in the order of the pages. It has **no spatial index**: the packed
//!   R-tree goes before the features and needs all of them, and FlatGeobuf allows a file without
//!   one (`index_node_size` 0), read sequentially. The stored version files
//!   (`/v1/layers/{name}/versions/{version}`) have the index.
//!
//! A blocking task writes into a small channel (64 KiB chunks, four in flight) that the body
//! reads: a slow client holds the writer back, a client that goes away stops it. A failure
//! after the status was sent ends the body early (the client sees a truncated transfer).

use std::io::{self, Write};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

use super::crs::{EPSG_PREFIX, OgcCrs};
use super::items::{self, Collection, Download};
use super::query::Format;
use crate::http::error::ApiError;
use crate::store::fgb::{FeatureChunk, Schema, stream_header};
use crate::world::World;

const CHUNK: usize = 64 << 10;
/// Why writing stopped when the client closed the connection (not worth a warning).
const CLIENT_GONE: &str = "the client went away";
/// Features encoded per FlatGeobuf chunk.
const FGB_BATCH: usize = 1024;

/// The streamed answer. `head`: the members of the FeatureCollection before `features`
/// (a JSON object; GeoJSON only).
pub fn respond(world: Arc<World>, c: Collection, download: Download, crs: OgcCrs, format: Format, head: serde_json::Value) -> Response {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
    let out_crs = crs.clone();
    tokio::task::spawn_blocking(move || {
        let mut out = Chunks { tx, buf: Vec::with_capacity(CHUNK) };
        let written = match format {
            Format::Json => geojson(&mut out, &world, &download, &out_crs, &head),
            Format::FlatGeobuf => flatgeobuf(&mut out, &world, c, &download, &out_crs),
        };
        match written.and_then(|()| out.send().map_err(|e| e.to_string())) {
            Ok(()) => {}
            Err(message) if message == CLIENT_GONE => {
                tracing::debug!(collection = c.id(), "download of /ogc/collections/{}/items ended early: {message}", c.id());
            }
            Err(message) => {
                tracing::warn!(collection = c.id(), "download of /ogc/collections/{}/items ended early: {message}", c.id());
                // Ends the body with an error: the client sees the transfer fail.
                let _ = out.tx.blocking_send(Err(io::Error::other(message)));
            }
        }
    });
    let (media, ext) = match format {
        Format::Json => (super::GEOJSON, "geojson"),
        Format::FlatGeobuf => ("application/flatgeobuf", "fgb"),
    };
    let mut response = ([(header::CONTENT_TYPE, media)], Body::from_stream(Received(rx))).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("<{}>", crs.uri)) {
        headers.insert("content-crs", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}.{ext}\"", c.id())) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

fn api_message(e: ApiError) -> String {
    e.message
}

fn geojson(out: &mut Chunks, world: &World, d: &Download, crs: &OgcCrs, head: &serde_json::Value) -> Result<(), String> {
    let head = serde_json::to_vec(head).map_err(|e| e.to_string())?;
    let io = |e: io::Error| e.to_string();
    out.write_all(b"{\"type\":\"FeatureCollection\",").map_err(io)?;
    if head.len() > 2 {
        out.write_all(&head[1..head.len() - 1]).map_err(io)?;
        out.write_all(b",").map_err(io)?;
    }
    out.write_all(b"\"features\":[").map_err(io)?;
    let mut feature = Vec::with_capacity(4096);
    let mut n = 0u64;
    d.for_each(world, |item| {
        feature.clear();
        if n > 0 {
            feature.push(b',');
        }
        items::write_item(&mut feature, world, item, crs).map_err(api_message)?;
        n += 1;
        out.write_all(&feature).map_err(io)
    })?;
    check_count(n, d.count)?;
    out.write_all(b"]}").map_err(io)
}

fn flatgeobuf(out: &mut Chunks, world: &World, c: Collection, d: &Download, crs: &OgcCrs) -> Result<(), String> {
    let io = |e: io::Error| e.to_string();
    let schema = match c {
        Collection::Grids => Schema::Grids,
        Collection::Components => Schema::Components,
        Collection::Zones => Schema::Zones,
    };
    let (epsg, name) = header_crs(crs);
    let title = format!("citygrid {} (OGC API download)", c.id());
    let description = format!("the {} of {} selected by the request, in {}", c.id(), world.meta.name, crs.uri);
    out.write_all(&stream_header(schema, epsg, &name, d.count, &title, &description)).map_err(io)?;
    let mut chunk = FeatureChunk::new(schema);
    let (mut n, mut pending) = (0u64, 0usize);
    d.for_each(world, |item| {
        items::fgb_item(&mut chunk, world, item, crs).map_err(api_message)?;
        n += 1;
        pending += 1;
        if pending == FGB_BATCH {
            pending = 0;
            out.write_all(&chunk.take()?).map_err(io)?;
        }
        Ok::<(), String>(())
    })?;
    out.write_all(&chunk.take()?).map_err(io)?;
    check_count(n, d.count)
}

/// The CRS of a FlatGeobuf header: CRS84 is EPSG:4326 (FlatGeobuf holds x = longitude whatever
/// the EPSG axis order); an EPSG URI its code; others only a name.
fn header_crs(crs: &OgcCrs) -> (Option<u32>, String) {
    if crs.is_crs84() {
        return (Some(4326), "WGS 84".into());
    }
    match crs.uri.strip_prefix(EPSG_PREFIX).and_then(|c| c.parse::<u32>().ok()) {
        Some(code) => (Some(code), format!("EPSG:{code}")),
        None => (None, crs.uri.clone()),
    }
}

/// The count announced first must be the count written (the snapshot does not change under a
/// download, so this only catches a bug).
fn check_count(written: u64, announced: u64) -> Result<(), String> {
    if written == announced { Ok(()) } else { Err(format!("{written} features written where {announced} were announced")) }
}

/// The writing end: bytes gathered into chunks and sent to the body.
struct Chunks {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl Chunks {
    /// Sends what is gathered; an error when the client has gone.
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, CLIENT_GONE))
    }
}

impl Write for Chunks {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// The reading end, as the body's stream.
struct Received(mpsc::Receiver<io::Result<Bytes>>);

impl futures_core::Stream for Received {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}
