//! PMTiles version 3 (<https://github.com/protomaps/PMTiles/blob/main/spec/v3/spec.md>): a
//! 127-byte header, a root directory, JSON metadata, leaf directories and tile data, every
//! part at an offset the header or a directory names. Tiles are numbered along a Hilbert curve
//! per zoom ([`tile_id`]); a directory lists runs of tile ids with their offset and length,
//! or (run length 0) a leaf directory covering ids from its own.
//!
//! [`Pmtiles`] reads the header, the root directory and the metadata at open; for a tile, the
//! leaf directories on its path (each read once, then cached, bounded by bytes) and the tile's
//! own bytes, all by positioned reads — the file is never read whole, however large.
//! [`parse_header`] and [`parse_directory`] take untrusted bytes (`fuzz/`: `pmtiles`).
//! [`write`] makes a small file (tests, fixtures).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{BasemapError, Encoding, Info, MAX_DECODED, Tile, TileFormat};

/// Length of the fixed header.
pub const HEADER_LEN: usize = 127;
/// A root directory must fit, with the header, in the first 16 KiB (spec).
const ROOT_LIMIT: u64 = 16_384;
/// Leaf directories of at most this many bytes (decoded) are cached, 32 MiB in all.
const CACHE_BYTES: u64 = 32 << 20;
/// Directories followed from the root to a tile at most (the spec's writers use 1 leaf level).
const MAX_DEPTH: usize = 4;
/// Largest JSON metadata read at open.
const MAX_METADATA: u64 = 16 << 20;

/// Compression of directories, metadata or tiles (header bytes 97, 98).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Unknown,
    None,
    Gzip,
    Brotli,
    Zstd,
}

impl Compression {
    fn from_byte(b: u8) -> Option<Compression> {
        Some(match b {
            0 => Compression::Unknown,
            1 => Compression::None,
            2 => Compression::Gzip,
            3 => Compression::Brotli,
            4 => Compression::Zstd,
            _ => return None,
        })
    }

    fn byte(self) -> u8 {
        match self {
            Compression::Unknown => 0,
            Compression::None => 1,
            Compression::Gzip => 2,
            Compression::Brotli => 3,
            Compression::Zstd => 4,
        }
    }

    /// The content coding, if this server can serve or decode it.
    fn encoding(self) -> Option<Encoding> {
        match self {
            Compression::None | Compression::Unknown => Some(Encoding::Identity),
            Compression::Gzip => Some(Encoding::Gzip),
            Compression::Brotli => Some(Encoding::Brotli),
            Compression::Zstd => None,
        }
    }
}

/// The fixed header.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub root_offset: u64,
    pub root_length: u64,
    pub metadata_offset: u64,
    pub metadata_length: u64,
    pub leaf_offset: u64,
    pub leaf_length: u64,
    pub data_offset: u64,
    pub data_length: u64,
    pub addressed_tiles: u64,
    pub tile_entries: u64,
    pub tile_contents: u64,
    pub clustered: bool,
    pub internal_compression: Compression,
    pub tile_compression: Compression,
    /// 0 unknown, 1 mvt, 2 png, 3 jpeg, 4 webp, 5 avif.
    pub tile_type: u8,
    pub min_zoom: u8,
    pub max_zoom: u8,
    /// west, south, east, north, degrees.
    pub bounds: [f64; 4],
    pub center_zoom: u8,
    pub center: [f64; 2],
}

/// Why bytes are not a PMTiles header or directory.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not a PMTiles file (no \"PMTiles\" magic)")]
    Magic,
    #[error("PMTiles version {0}: only version 3 is read (convert with `pmtiles convert`)")]
    Version(u8),
    #[error("the header is {0} bytes, 127 expected")]
    Short(usize),
    #[error("unknown compression code {0}")]
    Compression(u8),
    #[error("the directory is cut short or malformed: {0}")]
    Directory(&'static str),
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn i32_at(b: &[u8], at: usize) -> f64 {
    i32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes")) as f64 / 1e7
}

/// Parses the fixed header (the first 127 bytes of the file).
pub fn parse_header(b: &[u8]) -> Result<Header, ParseError> {
    if b.len() < 7 || &b[..7] != b"PMTiles" {
        return Err(ParseError::Magic);
    }
    if b.len() > 7 && b[7] != 3 {
        return Err(ParseError::Version(b[7]));
    }
    if b.len() < HEADER_LEN {
        return Err(ParseError::Short(b.len()));
    }
    let compression = |at: usize| Compression::from_byte(b[at]).ok_or(ParseError::Compression(b[at]));
    Ok(Header {
        root_offset: u64_at(b, 8),
        root_length: u64_at(b, 16),
        metadata_offset: u64_at(b, 24),
        metadata_length: u64_at(b, 32),
        leaf_offset: u64_at(b, 40),
        leaf_length: u64_at(b, 48),
        data_offset: u64_at(b, 56),
        data_length: u64_at(b, 64),
        addressed_tiles: u64_at(b, 72),
        tile_entries: u64_at(b, 80),
        tile_contents: u64_at(b, 88),
        clustered: b[96] == 1,
        internal_compression: compression(97)?,
        tile_compression: compression(98)?,
        tile_type: b[99],
        min_zoom: b[100],
        max_zoom: b[101],
        bounds: [i32_at(b, 102), i32_at(b, 106), i32_at(b, 110), i32_at(b, 114)],
        center_zoom: b[118],
        center: [i32_at(b, 119), i32_at(b, 123)],
    })
}

/// The header's 127 bytes.
pub fn header_bytes(h: &Header) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    b[..7].copy_from_slice(b"PMTiles");
    b[7] = 3;
    for (i, v) in [
        h.root_offset,
        h.root_length,
        h.metadata_offset,
        h.metadata_length,
        h.leaf_offset,
        h.leaf_length,
        h.data_offset,
        h.data_length,
        h.addressed_tiles,
        h.tile_entries,
        h.tile_contents,
    ]
    .into_iter()
    .enumerate()
    {
        b[8 + 8 * i..16 + 8 * i].copy_from_slice(&v.to_le_bytes());
    }
    b[96] = u8::from(h.clustered);
    b[97] = h.internal_compression.byte();
    b[98] = h.tile_compression.byte();
    b[99] = h.tile_type;
    b[100] = h.min_zoom;
    b[101] = h.max_zoom;
    let e7 = |v: f64| ((v * 1e7).round() as i32).to_le_bytes();
    for (i, v) in h.bounds.into_iter().enumerate() {
        b[102 + 4 * i..106 + 4 * i].copy_from_slice(&e7(v));
    }
    b[118] = h.center_zoom;
    b[119..123].copy_from_slice(&e7(h.center[0]));
    b[123..127].copy_from_slice(&e7(h.center[1]));
    b
}

/// One directory entry: tiles `tile_id .. tile_id + run_length` share the bytes at
/// `offset, length` (relative to the tile data); run length 0: a leaf directory at `offset,
/// length` relative to the leaf directories.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub tile_id: u64,
    pub offset: u64,
    pub length: u32,
    pub run_length: u32,
}

fn varint(b: &[u8], pos: &mut usize) -> Result<u64, ParseError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos).ok_or(ParseError::Directory("a number runs past the end"))?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(ParseError::Directory("a number longer than 64 bits"))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Parses a decompressed directory: the number of entries, then their tile ids (deltas), run
/// lengths, lengths and offsets (0: right after the previous entry; else offset + 1), each a
/// column of varints. Tile ids must increase.
pub fn parse_directory(b: &[u8]) -> Result<Vec<Entry>, ParseError> {
    let mut pos = 0;
    let n = varint(b, &mut pos)?;
    // Each entry takes at least 4 bytes: a larger count is a lie, not an allocation.
    if n > (b.len() as u64) / 4 + 1 {
        return Err(ParseError::Directory("more entries than bytes"));
    }
    let n = n as usize;
    let mut entries = vec![Entry { tile_id: 0, offset: 0, length: 0, run_length: 0 }; n];
    let mut last = 0u64;
    for (i, e) in entries.iter_mut().enumerate() {
        let delta = varint(b, &mut pos)?;
        last = last.checked_add(delta).ok_or(ParseError::Directory("tile id overflows"))?;
        if i > 0 && delta == 0 {
            return Err(ParseError::Directory("tile ids do not increase"));
        }
        e.tile_id = last;
    }
    for e in entries.iter_mut() {
        e.run_length = u32::try_from(varint(b, &mut pos)?).map_err(|_| ParseError::Directory("run length over 2^32"))?;
    }
    for e in entries.iter_mut() {
        e.length = u32::try_from(varint(b, &mut pos)?).map_err(|_| ParseError::Directory("length over 2^32"))?;
    }
    for i in 0..n {
        let v = varint(b, &mut pos)?;
        entries[i].offset = if v == 0 && i > 0 {
            entries[i - 1].offset.checked_add(u64::from(entries[i - 1].length)).ok_or(ParseError::Directory("offset overflows"))?
        } else {
            v.checked_sub(1).ok_or(ParseError::Directory("the first entry has no offset"))?
        };
    }
    Ok(entries)
}

/// A directory's bytes (uncompressed) for `entries` (sorted by tile id).
pub fn directory_bytes(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, entries.len() as u64);
    let mut last = 0;
    for e in entries {
        put_varint(&mut out, e.tile_id - last);
        last = e.tile_id;
    }
    for e in entries {
        put_varint(&mut out, u64::from(e.run_length));
    }
    for e in entries {
        put_varint(&mut out, u64::from(e.length));
    }
    for (i, e) in entries.iter().enumerate() {
        let follows = i > 0 && e.offset == entries[i - 1].offset + u64::from(entries[i - 1].length);
        put_varint(&mut out, if follows { 0 } else { e.offset + 1 });
    }
    out
}

/// The PMTiles tile id of z/x/y: the tiles of all lower zooms, then the position of (x, y) on
/// the zoom's Hilbert curve.
pub fn tile_id(z: u8, x: u32, y: u32) -> u64 {
    let base = ((1u64 << (2 * u32::from(z))) - 1) / 3;
    let n = 1u64 << z;
    let (mut x, mut y) = (u64::from(x), u64::from(y));
    let mut d = 0u64;
    let mut s = n / 2;
    while s > 0 {
        let rx = u64::from(x & s > 0);
        let ry = u64::from(y & s > 0);
        d += s * s * ((3 * rx) ^ ry);
        if ry == 0 {
            if rx == 1 {
                x = n - 1 - x;
                y = n - 1 - y;
            }
            std::mem::swap(&mut x, &mut y);
        }
        s /= 2;
    }
    base + d
}

/// The entry of `entries` that holds `id`: the last entry at or before it, if its run covers
/// it or it is a leaf directory.
fn find(entries: &[Entry], id: u64) -> Option<Entry> {
    let i = entries.partition_point(|e| e.tile_id <= id);
    let e = *entries.get(i.checked_sub(1)?)?;
    (e.run_length == 0 || id - e.tile_id < u64::from(e.run_length)).then_some(e)
}

/// An open PMTiles file.
pub(super) struct Pmtiles {
    path: PathBuf,
    file: File,
    /// The file's length at open: nothing past it is read.
    size: u64,
    header: Header,
    root: Arc<Vec<Entry>>,
    /// Leaf directories by offset in the file.
    leaves: moka::sync::Cache<u64, Arc<Vec<Entry>>>,
    bytes_read: AtomicU64,
}

impl Pmtiles {
    pub(super) fn open(path: &Path, id: &str) -> Result<(Pmtiles, Info), BasemapError> {
        let file = File::open(path).map_err(|e| BasemapError::io(path, e))?;
        let size = file.metadata().map_err(|e| BasemapError::io(path, e))?.len();
        let mut p = Pmtiles {
            path: path.to_owned(),
            file,
            size,
            header: dummy_header(),
            root: Arc::new(Vec::new()),
            leaves: moka::sync::Cache::builder()
                .max_capacity(CACHE_BYTES)
                .weigher(|_: &u64, v: &Arc<Vec<Entry>>| u32::try_from(v.len() * std::mem::size_of::<Entry>()).unwrap_or(u32::MAX))
                .build(),
            bytes_read: AtomicU64::new(0),
        };
        let head = p.read_at(0, size.min(HEADER_LEN as u64))?;
        let header = parse_header(&head).map_err(|e| BasemapError::invalid(path, e.to_string()))?;
        let past = |off: u64, len: u64| off.checked_add(len).is_none_or(|end| end > size);
        if past(header.root_offset, header.root_length) || past(header.metadata_offset, header.metadata_length) {
            return Err(BasemapError::invalid(path, format!("the header points past the end of the file ({size} bytes): truncated?")));
        }
        if header.root_offset + header.root_length > ROOT_LIMIT {
            return Err(BasemapError::invalid(path, "the root directory does not end within the first 16 KiB"));
        }
        let unsupported = |reason: String| BasemapError::Unsupported { path: path.to_owned(), reason };
        if header.internal_compression.encoding().is_none() {
            return Err(unsupported(format!("{:?}-compressed directories: recompress with gzip (`pmtiles convert`)", header.internal_compression)));
        }
        let format = match header.tile_type {
            1 => TileFormat::Pbf,
            2 => TileFormat::Png,
            3 => TileFormat::Jpeg,
            4 => TileFormat::Webp,
            5 => return Err(unsupported("AVIF tiles: served are png, jpg, webp and mvt".into())),
            t => return Err(unsupported(format!("tile type {t} (unknown): served are png, jpg, webp and mvt"))),
        };
        if header.tile_compression.encoding().is_none() {
            return Err(unsupported("zstd-compressed tiles: recompress with gzip (`pmtiles convert`)".into()));
        }
        if header.min_zoom > header.max_zoom || header.max_zoom > 30 {
            return Err(BasemapError::invalid(path, format!("zoom range {}–{}", header.min_zoom, header.max_zoom)));
        }
        p.header = header;
        let root = p.directory(p.header.root_offset, p.header.root_length)?;
        p.root = root;
        let meta_json = if p.header.metadata_length == 0 {
            None
        } else if p.header.metadata_length > MAX_METADATA {
            return Err(BasemapError::invalid(path, "JSON metadata over 16 MiB"));
        } else {
            let raw = p.read_at(p.header.metadata_offset, p.header.metadata_length)?;
            let text = p.decode_internal(&raw)?;
            Some(serde_json::from_slice::<serde_json::Value>(&text).map_err(|e| BasemapError::invalid(path, format!("metadata is not JSON: {e}")))?)
        };
        let strings: BTreeMap<String, String> = BTreeMap::new();
        let (name, description, attribution, vector_layers) = super::text_fields(&strings, meta_json.as_ref());
        let h = &p.header;
        let b = h.bounds;
        let bounds_ok = b.iter().all(|v| v.is_finite()) && b[0] < b[2] && b[1] < b[3] && b[0] >= -180.0 && b[2] <= 180.0;
        let info = Info {
            name: name.unwrap_or_else(|| id.to_owned()),
            description,
            attribution,
            format,
            minzoom: h.min_zoom,
            maxzoom: h.max_zoom,
            bounds: if bounds_ok { b } else { [-180.0, -85.051129, 180.0, 85.051129] },
            center: (h.center[0].is_finite() && h.center[1].is_finite() && bounds_ok).then_some([h.center[0], h.center[1], f64::from(h.center_zoom)]),
            vector_layers,
        };
        Ok((p, info))
    }

    pub(super) fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    fn read_at(&self, offset: u64, len: u64) -> Result<Vec<u8>, BasemapError> {
        if offset.checked_add(len).is_none_or(|end| end > self.size) {
            return Err(BasemapError::invalid(
                &self.path,
                format!("a directory or tile at {offset}+{len} lies past the end of the file ({} bytes)", self.size),
            ));
        }
        let len = usize::try_from(len).map_err(|_| BasemapError::invalid(&self.path, "a length over the address space"))?;
        let mut buf = vec![0u8; len];
        read_exact_at(&self.file, &mut buf, offset).map_err(|e| BasemapError::io(&self.path, e))?;
        self.bytes_read.fetch_add(len as u64, Ordering::Relaxed);
        Ok(buf)
    }

    fn decode_internal(&self, raw: &[u8]) -> Result<Vec<u8>, BasemapError> {
        let enc = self.header.internal_compression.encoding().unwrap_or(Encoding::Identity);
        enc.decode(raw, MAX_DECODED).map_err(|e| BasemapError::invalid(&self.path, format!("a directory or the metadata does not decode: {e}")))
    }

    fn directory(&self, offset: u64, length: u64) -> Result<Arc<Vec<Entry>>, BasemapError> {
        if length > MAX_DECODED {
            return Err(BasemapError::invalid(&self.path, "a directory over 64 MiB"));
        }
        let raw = self.read_at(offset, length)?;
        let bytes = self.decode_internal(&raw)?;
        let entries = parse_directory(&bytes).map_err(|e| BasemapError::invalid(&self.path, e.to_string()))?;
        Ok(Arc::new(entries))
    }

    pub(super) fn tile(&self, z: u8, x: u32, y: u32) -> Result<Option<Tile>, BasemapError> {
        if z < self.header.min_zoom || z > self.header.max_zoom {
            return Ok(None);
        }
        let id = tile_id(z, x, y);
        let mut dir = self.root.clone();
        for _ in 0..MAX_DEPTH {
            let Some(e) = find(&dir, id) else { return Ok(None) };
            if e.run_length > 0 {
                if e.length == 0 {
                    return Ok(None);
                }
                let at = self.header.data_offset.checked_add(e.offset).ok_or_else(|| BasemapError::invalid(&self.path, "a tile offset overflows"))?;
                let data = self.read_at(at, u64::from(e.length))?;
                let encoding = self.header.tile_compression.encoding().unwrap_or(Encoding::Identity);
                return Ok(Some(Tile { data: data.into(), encoding }));
            }
            let at = self.header.leaf_offset.checked_add(e.offset).ok_or_else(|| BasemapError::invalid(&self.path, "a leaf offset overflows"))?;
            dir = match self.leaves.get(&at) {
                Some(d) => d,
                None => {
                    let d = self.directory(at, u64::from(e.length))?;
                    self.leaves.insert(at, d.clone());
                    d
                }
            };
        }
        Err(BasemapError::invalid(&self.path, "leaf directories nested deeper than 4"))
    }
}

/// An all-zero header (replaced by the file's before any read that needs it).
fn dummy_header() -> Header {
    Header {
        root_offset: 0,
        root_length: 0,
        metadata_offset: 0,
        metadata_length: 0,
        leaf_offset: 0,
        leaf_length: 0,
        data_offset: 0,
        data_length: 0,
        addressed_tiles: 0,
        tile_entries: 0,
        tile_contents: 0,
        clustered: false,
        internal_compression: Compression::None,
        tile_compression: Compression::None,
        tile_type: 0,
        min_zoom: 0,
        max_zoom: 0,
        bounds: [0.0; 4],
        center_zoom: 0,
        center: [0.0; 2],
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

/// What [`write`] puts in a file.
pub struct WriteOptions {
    /// 1 mvt, 2 png, 3 jpeg, 4 webp.
    pub tile_type: u8,
    /// How the given tile bytes are already compressed (written into the header as is).
    pub tile_compression: Compression,
    /// JSON metadata (written gzip'd, as are the directories).
    pub metadata: serde_json::Value,
    pub bounds: [f64; 4],
    /// At most this many entries in the root directory; more go into leaf directories.
    pub max_root_entries: usize,
}

/// Writes a PMTiles v3 file of `tiles` (z, x, y, bytes) to `path`: clustered (tile data in id
/// order), directories and metadata gzip'd, one level of leaf directories when there are more
/// than `max_root_entries` tiles. Returns the header written. For tests and fixtures; a real
/// basemap comes from planetiler, tilemaker or `pmtiles convert`.
pub fn write(path: &Path, tiles: &[(u8, u32, u32, Vec<u8>)], opts: &WriteOptions) -> std::io::Result<Header> {
    use std::io::Write;
    let gzip = |b: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b).expect("in-memory write");
        e.finish().expect("in-memory write")
    };
    let mut sorted: Vec<(u64, &[u8], u8)> = tiles.iter().map(|(z, x, y, d)| (tile_id(*z, *x, *y), d.as_slice(), *z)).collect();
    sorted.sort_by_key(|t| t.0);
    let mut data = Vec::new();
    let mut entries = Vec::new();
    for (id, bytes, _) in &sorted {
        entries.push(Entry { tile_id: *id, offset: data.len() as u64, length: bytes.len() as u32, run_length: 1 });
        data.extend_from_slice(bytes);
    }
    let per_leaf = opts.max_root_entries.max(1);
    let (root, leaves) = if entries.len() <= per_leaf {
        (gzip(&directory_bytes(&entries)), Vec::new())
    } else {
        let mut leaves = Vec::new();
        let mut root_entries = Vec::new();
        for chunk in entries.chunks(per_leaf) {
            let leaf = gzip(&directory_bytes(chunk));
            root_entries.push(Entry { tile_id: chunk[0].tile_id, offset: leaves.len() as u64, length: leaf.len() as u32, run_length: 0 });
            leaves.extend_from_slice(&leaf);
        }
        (gzip(&directory_bytes(&root_entries)), leaves)
    };
    let meta = gzip(opts.metadata.to_string().as_bytes());
    let root_offset = HEADER_LEN as u64;
    let metadata_offset = root_offset + root.len() as u64;
    let leaf_offset = metadata_offset + meta.len() as u64;
    let data_offset = leaf_offset + leaves.len() as u64;
    let zooms = sorted.iter().map(|t| t.2);
    let b = opts.bounds;
    let header = Header {
        root_offset,
        root_length: root.len() as u64,
        metadata_offset,
        metadata_length: meta.len() as u64,
        leaf_offset,
        leaf_length: leaves.len() as u64,
        data_offset,
        data_length: data.len() as u64,
        addressed_tiles: entries.len() as u64,
        tile_entries: entries.len() as u64,
        tile_contents: entries.len() as u64,
        clustered: true,
        internal_compression: Compression::Gzip,
        tile_compression: opts.tile_compression,
        tile_type: opts.tile_type,
        min_zoom: zooms.clone().min().unwrap_or(0),
        max_zoom: zooms.max().unwrap_or(0),
        bounds: b,
        center_zoom: sorted.first().map_or(0, |t| t.2),
        center: [(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0],
    };
    let mut f = std::io::BufWriter::new(File::create(path)?);
    f.write_all(&header_bytes(&header))?;
    f.write_all(&root)?;
    f.write_all(&meta)?;
    f.write_all(&leaves)?;
    f.write_all(&data)?;
    f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_ids_follow_the_spec_hilbert_curve() {
        // The spec's and the reference implementations' values.
        assert_eq!(tile_id(0, 0, 0), 0);
        assert_eq!(tile_id(1, 0, 0), 1);
        assert_eq!(tile_id(1, 0, 1), 2);
        assert_eq!(tile_id(1, 1, 1), 3);
        assert_eq!(tile_id(1, 1, 0), 4);
        assert_eq!(tile_id(2, 0, 0), 5);
        assert_eq!(tile_id(2, 1, 3), 11);
        assert_eq!(tile_id(3, 3, 0), 26);
        assert_eq!(tile_id(12, 3423, 1763), 19_078_479);
        // Every tile of a zoom gets its own id within the zoom's block.
        let mut ids: Vec<u64> = (0..8).flat_map(|x| (0..8).map(move |y| tile_id(3, x, y))).collect();
        ids.sort_unstable();
        assert_eq!(ids, (21..85).collect::<Vec<_>>());
    }

    #[test]
    fn directories_round_trip_with_implicit_offsets() {
        let entries = vec![
            Entry { tile_id: 5, offset: 0, length: 10, run_length: 1 },
            Entry { tile_id: 6, offset: 10, length: 3, run_length: 2 },
            Entry { tile_id: 9, offset: 1_000_000_000_000, length: 7, run_length: 0 },
        ];
        let bytes = directory_bytes(&entries);
        assert_eq!(parse_directory(&bytes).unwrap(), entries);
        assert!(parse_directory(&bytes[..bytes.len() - 1]).is_err());
        assert_eq!(find(&entries, 7).map(|e| e.tile_id), Some(6));
        assert_eq!(find(&entries, 8), None, "past the run of 6");
        assert_eq!(find(&entries, 4), None);
        assert_eq!(find(&entries, 1 << 40).map(|e| e.tile_id), Some(9), "a leaf covers what follows");
    }

    #[test]
    fn mutated_files_are_refused_or_read_never_panic() {
        // A file with leaf directories, then single-byte mutations of its header and
        // directories (a deterministic stand-in for the `pmtiles` fuzz target).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seed.pmtiles");
        let tiles: Vec<(u8, u32, u32, Vec<u8>)> = (0..4u32).flat_map(|x| (0..4u32).map(move |y| (2, x, y, vec![x as u8; 5]))).collect();
        let opts = WriteOptions {
            tile_type: 2,
            tile_compression: Compression::None,
            metadata: serde_json::json!({"name": "m"}),
            bounds: [0.0, 0.0, 1.0, 1.0],
            max_root_entries: 3,
        };
        let header = write(&path, &tiles, &opts).unwrap();
        let seed = std::fs::read(&path).unwrap();
        let b = crate::basemap::Basemap::open(&path).unwrap();
        assert_eq!(&b.tile(2, 3, 1).unwrap().unwrap().data[..], &[3u8; 5]);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let end = header.data_offset as usize;
        for _ in 0..1500 {
            let mut bytes = seed.clone();
            for _ in 0..1 + next() % 3 {
                let at = (next() % end as u64) as usize;
                bytes[at] = next() as u8;
            }
            std::fs::write(&path, &bytes).unwrap();
            if let Ok(b) = crate::basemap::Basemap::open(&path) {
                for (z, x, y) in [(0, 0, 0), (2, 0, 0), (2, 3, 3), (2, 1, 2)] {
                    let _ = b.tile(z, x, y);
                }
            }
        }
    }

    #[test]
    fn headers_round_trip_and_bad_ones_are_refused() {
        let mut h = dummy_header();
        h.root_offset = 127;
        h.tile_type = 1;
        h.internal_compression = Compression::Gzip;
        h.bounds = [120.5, 31.0, 120.75, 31.25];
        h.center = [120.625, 31.125];
        let b = header_bytes(&h);
        assert_eq!(parse_header(&b).unwrap(), h);
        assert_eq!(parse_header(&b[..100]), Err(ParseError::Short(100)));
        let mut v2 = b;
        v2[7] = 2;
        assert_eq!(parse_header(&v2), Err(ParseError::Version(2)));
        assert_eq!(parse_header(b"SQLite format 3"), Err(ParseError::Magic));
    }
}
