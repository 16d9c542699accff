//! Basemaps from local files: a city's own MBTiles or PMTiles (v3) tilesets served under the
//! grids — raster imagery (影像: PNG, JPEG, WebP) or vector tiles in the OpenMapTiles schema
//! (what planetiler and tilemaker write). No HTTP here: `src/http/basemap.rs` serves them.
//!
//! A basemap is opened once at start ([`Basemaps::open`]): its description is read (MBTiles:
//! the `metadata` table; PMTiles: the 127-byte header, the root directory and the JSON
//! metadata) and checked, so a file that cannot be served stops the server with its name. Tiles
//! are then read one at a time on request, never the whole file: MBTiles through SQLite (which
//! reads the pages of its index and of the one row), PMTiles by positioned reads of the
//! directories on the tile's path (leaf directories cached) and of the tile's bytes. A
//! multi-gigabyte file costs its header and the pages touched.
//!
//! Tiles come back as stored, with the content coding they are stored in ([`Encoding`]):
//! vector tiles are usually gzip'd in both formats; the HTTP layer passes them through to a
//! client that accepts the coding and decodes them for one that does not.

mod mbtiles;
pub mod pmtiles;
pub mod render;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

/// Why a basemap could not be opened or read. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum BasemapError {
    #[error("basemap {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("basemap {path}: not a readable MBTiles file: {source}")]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    #[error("basemap {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("basemap {path}: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    #[error("basemaps {first} and {second} would both be served as {id:?} (the id is the file name without its extension): rename one")]
    DuplicateId { id: String, first: PathBuf, second: PathBuf },
}

impl BasemapError {
    fn invalid(path: &Path, reason: impl Into<String>) -> BasemapError {
        BasemapError::Invalid { path: path.to_owned(), reason: reason.into() }
    }
    fn io(path: &Path, source: std::io::Error) -> BasemapError {
        BasemapError::Io { path: path.to_owned(), source }
    }
}

/// What a basemap draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Images (aerial or satellite imagery, a rendered street map).
    Raster,
    /// Mapbox vector tiles (OpenMapTiles schema for the built-in style).
    Vector,
}

/// The format of a basemap's tiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TileFormat {
    Png,
    Jpeg,
    Webp,
    /// Mapbox vector tiles (MBTiles `format = pbf`, PMTiles tile type 1).
    Pbf,
}

impl TileFormat {
    /// From an MBTiles `format` value (`png`, `jpg`/`jpeg`, `webp`, `pbf`/`mvt`).
    pub fn from_name(name: &str) -> Option<TileFormat> {
        match name.trim().to_ascii_lowercase().as_str() {
            "png" => Some(TileFormat::Png),
            "jpg" | "jpeg" => Some(TileFormat::Jpeg),
            "webp" => Some(TileFormat::Webp),
            "pbf" | "mvt" => Some(TileFormat::Pbf),
            _ => None,
        }
    }

    /// From a tile's first bytes (an MBTiles file without `format`); gzip is taken for pbf.
    pub fn sniff(bytes: &[u8]) -> Option<TileFormat> {
        if bytes.starts_with(b"\x89PNG") {
            Some(TileFormat::Png)
        } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
            Some(TileFormat::Jpeg)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(TileFormat::Webp)
        } else if bytes.starts_with(&[0x1f, 0x8b]) || bytes.first().is_some_and(|&b| b == 0x1a) {
            // gzip, or an MVT starting with field 3 (layers), wire type 2
            Some(TileFormat::Pbf)
        } else {
            None
        }
    }

    /// The name TileJSON and MBTiles use: `png`, `jpg`, `webp`, `pbf`.
    pub fn name(self) -> &'static str {
        match self {
            TileFormat::Png => "png",
            TileFormat::Jpeg => "jpg",
            TileFormat::Webp => "webp",
            TileFormat::Pbf => "pbf",
        }
    }

    /// The media type of a tile.
    pub fn content_type(self) -> &'static str {
        match self {
            TileFormat::Png => "image/png",
            TileFormat::Jpeg => "image/jpeg",
            TileFormat::Webp => "image/webp",
            TileFormat::Pbf => "application/vnd.mapbox-vector-tile",
        }
    }

    pub fn kind(self) -> Kind {
        if self == TileFormat::Pbf { Kind::Vector } else { Kind::Raster }
    }
}

/// The content coding a tile is stored in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    Brotli,
}

impl Encoding {
    /// The `Content-Encoding` token (`None` for identity).
    pub fn token(self) -> Option<&'static str> {
        match self {
            Encoding::Identity => None,
            Encoding::Gzip => Some("gzip"),
            Encoding::Brotli => Some("br"),
        }
    }

    /// `bytes` decoded from this coding (at most `limit` bytes out: a bomb is an error).
    pub fn decode(self, bytes: &[u8], limit: u64) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        match self {
            Encoding::Identity => return Ok(bytes.to_vec()),
            Encoding::Gzip => flate2::read::MultiGzDecoder::new(bytes).take(limit + 1).read_to_end(&mut out)?,
            Encoding::Brotli => brotli::Decompressor::new(bytes, 4096).take(limit + 1).read_to_end(&mut out)?,
        };
        if out.len() as u64 > limit {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("decodes to more than {limit} bytes")));
        }
        Ok(out)
    }
}

/// Largest decoded tile or directory: 64 MiB (a real tile is well under 1 MiB).
pub const MAX_DECODED: u64 = 64 << 20;

/// One tile as stored.
#[derive(Clone, Debug)]
pub struct Tile {
    pub data: bytes::Bytes,
    pub encoding: Encoding,
}

/// The description of a basemap, from its file.
#[derive(Clone, Debug)]
pub struct Info {
    /// Display name (`name` of the metadata, else the id).
    pub name: String,
    pub description: Option<String>,
    pub attribution: Option<String>,
    pub format: TileFormat,
    pub minzoom: u8,
    pub maxzoom: u8,
    /// west, south, east, north in degrees (the world when the file says nothing).
    pub bounds: [f64; 4],
    /// lon, lat, zoom.
    pub center: Option<[f64; 3]>,
    /// The `vector_layers` of a vector tileset (TileJSON), when the file lists them.
    pub vector_layers: Option<Value>,
}

/// How tiles are read.
enum Source {
    Mbtiles(mbtiles::Mbtiles),
    Pmtiles(pmtiles::Pmtiles),
}

/// One opened basemap file.
pub struct Basemap {
    /// URL id: the file stem, sanitised ([`id_of`]).
    pub id: String,
    pub path: PathBuf,
    pub info: Info,
    source: Source,
}

impl std::fmt::Debug for Basemap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Basemap").field("id", &self.id).field("path", &self.path).field("info", &self.info).finish()
    }
}

impl Basemap {
    /// Opens `path` (`.mbtiles` or `.pmtiles`; else by its first bytes) and reads its
    /// description; no tile is read.
    pub fn open(path: &Path) -> Result<Basemap, BasemapError> {
        let id = id_of(path).ok_or_else(|| BasemapError::invalid(path, "the file name gives no usable id (letters, digits, - or _)"))?;
        let mut magic = [0u8; 16];
        let n = {
            let mut f = std::fs::File::open(path).map_err(|e| BasemapError::io(path, e))?;
            if f.metadata().map_err(|e| BasemapError::io(path, e))?.is_dir() {
                return Err(BasemapError::invalid(path, "is a directory, not an MBTiles or PMTiles file"));
            }
            read_up_to(&mut f, &mut magic).map_err(|e| BasemapError::io(path, e))?
        };
        let (source, info) = if magic[..n].starts_with(b"PMTiles") {
            let (p, info) = pmtiles::Pmtiles::open(path, &id)?;
            (Source::Pmtiles(p), info)
        } else if magic[..n].starts_with(b"SQLite format 3\0") {
            let (m, info) = mbtiles::Mbtiles::open(path, &id)?;
            (Source::Mbtiles(m), info)
        } else {
            return Err(BasemapError::invalid(path, "neither an MBTiles (SQLite) nor a PMTiles v3 file"));
        };
        Ok(Basemap { id, path: path.to_owned(), info, source })
    }

    pub fn kind(&self) -> Kind {
        self.info.format.kind()
    }

    /// Tile z/x/y in the XYZ scheme (MBTiles' TMS rows are flipped here), as stored;
    /// `Ok(None)` when the file has no such tile (also outside its zoom range). Coordinates
    /// past the zoom's grid are `None` too: the caller checks them.
    pub fn tile(&self, z: u8, x: u32, y: u32) -> Result<Option<Tile>, BasemapError> {
        if z > 30 || u64::from(x) >= 1u64 << z || u64::from(y) >= 1u64 << z {
            return Ok(None);
        }
        match &self.source {
            Source::Mbtiles(m) => m.tile(z, x, y, self.info.format),
            Source::Pmtiles(p) => p.tile(z, x, y),
        }
    }

    /// Bytes read from the file so far by tile and directory reads and the opening
    /// (PMTiles only; an MBTiles file is read by SQLite and reports 0).
    pub fn bytes_read(&self) -> u64 {
        match &self.source {
            Source::Mbtiles(_) => 0,
            Source::Pmtiles(p) => p.bytes_read(),
        }
    }
}

/// The basemaps a server offers, by id, in the order given.
#[derive(Debug, Default)]
pub struct Basemaps {
    list: Vec<Arc<Basemap>>,
}

impl Basemaps {
    /// Opens every file; a file that cannot be served, or two files with the same id, is an
    /// error naming the file(s).
    pub fn open(paths: &[PathBuf]) -> Result<Basemaps, BasemapError> {
        let mut list: Vec<Arc<Basemap>> = Vec::new();
        for path in paths {
            let b = Basemap::open(path)?;
            if let Some(first) = list.iter().find(|o| o.id == b.id) {
                return Err(BasemapError::DuplicateId { id: b.id.clone(), first: first.path.clone(), second: path.clone() });
            }
            list.push(Arc::new(b));
        }
        Ok(Basemaps { list })
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Basemap>> {
        self.list.iter().find(|b| b.id == id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Basemap>> {
        self.list.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// The id of a basemap file: its name without the extension, lower-cased, every run of
/// characters other than ASCII letters, digits, `-` and `_` replaced by one `-` (trimmed);
/// `None` if nothing is left (`影像.mbtiles`) — rename such a file.
pub fn id_of(path: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_string_lossy();
    let mut id = String::new();
    for c in stem.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            id.push(c.to_ascii_lowercase());
        } else if !id.ends_with('-') {
            id.push('-');
        }
    }
    let id = id.trim_matches('-').to_owned();
    (!id.is_empty() && id.len() <= 100).then_some(id)
}

fn read_up_to(f: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Parses `"w,s,e,n"` (MBTiles `bounds`).
fn parse_bounds(text: &str) -> Option<[f64; 4]> {
    let v: Vec<f64> = text.split(',').map(|p| p.trim().parse().ok()).collect::<Option<_>>()?;
    let b: [f64; 4] = v.try_into().ok()?;
    let ok = b.iter().all(|c| c.is_finite()) && b[0] >= -180.0 && b[2] <= 180.0 && b[1] >= -90.0 && b[3] <= 90.0 && b[0] <= b[2] && b[1] <= b[3];
    ok.then_some(b)
}

/// Parses `"lon,lat,zoom"` (MBTiles `center`).
fn parse_center(text: &str) -> Option<[f64; 3]> {
    let v: Vec<f64> = text.split(',').map(|p| p.trim().parse().ok()).collect::<Option<_>>()?;
    match v.as_slice() {
        [lon, lat, z] if lon.is_finite() && lat.is_finite() && z.is_finite() => Some([*lon, *lat, *z]),
        [lon, lat] if lon.is_finite() && lat.is_finite() => Some([*lon, *lat, 0.0]),
        _ => None,
    }
}

/// Fields common to both formats' metadata (name, description, attribution, vector_layers).
fn text_fields(meta: &BTreeMap<String, String>, json: Option<&Value>) -> (Option<String>, Option<String>, Option<String>, Option<Value>) {
    let from_json = |k: &str| json.and_then(|j| j.get(k)).and_then(Value::as_str).map(str::to_owned);
    let pick = |k: &str| meta.get(k).cloned().filter(|s| !s.trim().is_empty()).or_else(|| from_json(k));
    let layers = json.and_then(|j| j.get("vector_layers")).filter(|v| v.is_array()).cloned();
    (pick("name"), pick("description"), pick("attribution"), layers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sanitised_file_stems() {
        assert_eq!(id_of(Path::new("/x/Suzhou Imagery 2024.mbtiles")).as_deref(), Some("suzhou-imagery-2024"));
        assert_eq!(id_of(Path::new("osm_wuzhong.pmtiles")).as_deref(), Some("osm_wuzhong"));
        assert_eq!(id_of(Path::new("wz影像2024.mbtiles")).as_deref(), Some("wz-2024"));
        assert_eq!(id_of(Path::new("影像.mbtiles")), None);
    }

    #[test]
    fn formats_are_sniffed_and_named() {
        assert_eq!(TileFormat::sniff(b"\x89PNG\r\n\x1a\n"), Some(TileFormat::Png));
        assert_eq!(TileFormat::sniff(&[0xff, 0xd8, 0xff, 0xe0]), Some(TileFormat::Jpeg));
        assert_eq!(TileFormat::sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(TileFormat::Webp));
        assert_eq!(TileFormat::sniff(&[0x1f, 0x8b, 8]), Some(TileFormat::Pbf));
        assert_eq!(TileFormat::sniff(b"hello"), None);
        assert_eq!(TileFormat::from_name("JPEG"), Some(TileFormat::Jpeg));
        assert_eq!(TileFormat::Pbf.kind(), Kind::Vector);
    }

    #[test]
    fn bounds_and_centres_parse_or_are_refused() {
        assert_eq!(parse_bounds("120.5,31.0,120.8,31.3"), Some([120.5, 31.0, 120.8, 31.3]));
        assert_eq!(parse_bounds("120.8,31.0,120.5,31.3"), None);
        assert_eq!(parse_bounds("1,2,3"), None);
        assert_eq!(parse_center("120.6,31.2,13"), Some([120.6, 31.2, 13.0]));
        assert_eq!(parse_center("x"), None);
    }
}
