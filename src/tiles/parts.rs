//! A tile as the concatenation of its layers' bytes, each compressed on its own, and one gzip
//! member stitched from those compressed parts.
//!
//! An MVT tile is a sequence of `layers` fields, one per layer, so its bytes are the
//! concatenation of each layer's field (key, length, message), and a layer's field depends only
//! on that layer, the tile and the datum. A [`Part`] is one such field with a raw-deflate
//! compression of it that ends on a byte boundary without closing the stream (a sync flush:
//! an empty stored block after the data), and its CRC-32. Parts concatenated, after a gzip
//! header and before an empty final block, the CRC-32 of the whole (combined from the parts')
//! and its length, are one valid gzip member — as `pigz` builds a member from blocks
//! compressed in parallel. A decoder of single members (a browser) reads it whole.
//!
//! So the expensive part of a dense tile (its components layer: thousands of points, ~116 KB
//! raw at z16) is encoded and compressed once per components snapshot ([`PartCache`],
//! size-bounded, shared by the snapshots that share the components layer and dropped with the
//! last of them), while the cheap layers are encoded and compressed per request. Compressing
//! layers apart costs a few bytes per layer (the sync flush, matches that would have reached
//! into the previous layer), not a change of the tile: the decompressed bytes are the tile's.

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;

use crate::crs::Datum;

/// Compression level of the parts (flate2's zlib-rs backend): level 1, the quick strategy —
/// 0.5 ms for a dense z16 tile (116 KB), 5–15% larger than level 6 at a fiftieth of its time.
pub const PART_LEVEL: u32 = 1;

/// One layer's field of a tile, raw and as a raw-deflate segment ended by a sync flush.
#[derive(Clone)]
pub struct Part {
    /// The layer's field bytes (key, length, message).
    pub raw: Bytes,
    /// `raw` compressed as non-final deflate blocks, byte-aligned at the end.
    pub deflate: Bytes,
    /// CRC-32 of `raw`, with its length (to combine).
    pub crc: crc32fast::Hasher,
}

impl Part {
    /// Compresses `raw` (one or more whole layer fields).
    pub fn new(raw: Vec<u8>) -> Part {
        let mut crc = crc32fast::Hasher::new();
        crc.update(&raw);
        let mut enc = flate2::write::DeflateEncoder::new(Vec::with_capacity(raw.len() / 2 + 64), flate2::Compression::new(PART_LEVEL));
        enc.write_all(&raw).expect("in-memory write");
        // A sync flush: the data so far, then an empty stored block, ending on a byte boundary;
        // the stream is left open (no final block).
        enc.flush().expect("in-memory write");
        let deflate = std::mem::take(enc.get_mut());
        // Nothing more is written: dropping the encoder would finish the stream into the
        // (now empty) vector, which is thrown away.
        drop(enc);
        Part { raw: Bytes::from(raw), deflate: Bytes::from(deflate), crc }
    }

    /// Bytes held (raw and compressed).
    pub fn weight(&self) -> usize {
        self.raw.len() + self.deflate.len() + 64
    }
}

/// The gzip header written before stitched parts: no name, no time, "unknown" OS.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// An empty final deflate block (fixed Huffman codes: BFINAL 1, BTYPE 01, end-of-block).
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

/// A tile made of parts: its raw bytes, one gzip member of them, and the raw bytes' CRC-32.
pub struct Stitched {
    pub raw: Bytes,
    pub gzip: Bytes,
    pub crc: u32,
}

/// The tile whose bytes are the parts' raw bytes in order, with one gzip member built from
/// the parts' deflate segments (no recompression). `parts` is not empty.
pub fn stitch(parts: &[Arc<Part>]) -> Stitched {
    if let [only] = parts {
        // One layer (the usual request for a single tileset layer): no copy of the raw bytes.
        return Stitched { raw: only.raw.clone(), gzip: gzip_member(parts), crc: only.crc.clone().finalize() };
    }
    let mut raw = Vec::with_capacity(parts.iter().map(|p| p.raw.len()).sum());
    let mut crc = crc32fast::Hasher::new();
    for p in parts {
        raw.extend_from_slice(&p.raw);
        crc.combine(&p.crc);
    }
    Stitched { raw: Bytes::from(raw), gzip: gzip_member(parts), crc: crc.finalize() }
}

fn gzip_member(parts: &[Arc<Part>]) -> Bytes {
    let len: usize = parts.iter().map(|p| p.deflate.len()).sum();
    let mut out = Vec::with_capacity(GZIP_HEADER.len() + len + FINAL_BLOCK.len() + 8);
    out.extend_from_slice(&GZIP_HEADER);
    let mut crc = crc32fast::Hasher::new();
    let mut size = 0u64;
    for p in parts {
        out.extend_from_slice(&p.deflate);
        crc.combine(&p.crc);
        size += p.raw.len() as u64;
    }
    out.extend_from_slice(&FINAL_BLOCK);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    // ISIZE: the length modulo 2^32.
    out.extend_from_slice(&(size as u32).to_le_bytes());
    Bytes::from(out)
}

/// Which components part: the tile, its datum, and the rules that decide its content
/// (extent, density guard).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PartKey {
    pub z: u8,
    pub x: u32,
    pub y: u32,
    pub datum: Datum,
    pub extent: u32,
    pub max_points: u32,
}

/// Bytes (raw and compressed) a [`PartCache`] holds at most: about 200 dense z16 tiles'
/// components (~160 KB each with its deflate copy).
pub const PART_CACHE_BYTES: u64 = 32 * 1024 * 1024;
/// A components part is kept when its raw bytes reach this (a few hundred points: where the
/// encode and the compression start to cost more than a cached answer), or when the tile drew
/// on at least [`PART_MIN_COMPONENTS`] components (clusters aggregated on the fly).
pub const PART_MIN_BYTES: usize = 4 * 1024;
pub const PART_MIN_COMPONENTS: usize = 2048;

/// The compressed components parts of one components snapshot, built on first request of a
/// tile (nothing at a switch), size-bounded ([`PART_CACHE_BYTES`], least-used evicted).
pub struct PartCache {
    parts: moka::sync::Cache<PartKey, Arc<Part>>,
}

impl PartCache {
    pub fn new(max_bytes: u64) -> PartCache {
        PartCache {
            parts: moka::sync::Cache::builder().max_capacity(max_bytes).weigher(|_: &PartKey, p: &Arc<Part>| p.weight().min(u32::MAX as usize) as u32).build(),
        }
    }

    pub fn get(&self, key: &PartKey) -> Option<Arc<Part>> {
        self.parts.get(key)
    }

    pub fn insert(&self, key: PartKey, part: Arc<Part>) {
        self.parts.insert(key, part);
    }

    /// Bytes held (as weighed) and number of parts, after pending evictions are applied.
    pub fn size(&self) -> (u64, u64) {
        self.parts.run_pending_tasks();
        (self.parts.weighted_size(), self.parts.entry_count())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn parts(texts: &[&[u8]]) -> Vec<Arc<Part>> {
        texts.iter().map(|t| Arc::new(Part::new(t.to_vec()))).collect()
    }

    #[test]
    fn stitched_parts_are_one_gzip_member_of_the_concatenation() {
        let big: Vec<u8> = (0..200_000u32).flat_map(|i| (i % 977).to_le_bytes()).collect();
        let cases: Vec<Vec<&[u8]>> = vec![vec![b"only one"], vec![b"grids", &big, b"components"], vec![&big, &big], vec![b"", b"x"]];
        for case in cases {
            let whole: Vec<u8> = case.concat();
            let s = stitch(&parts(&case));
            assert_eq!(&s.raw[..], &whole[..]);
            assert_eq!(s.crc, crc32fast::hash(&whole));
            // A single-member decoder (what a browser is) and a multi-member one read it whole.
            let mut single = Vec::new();
            flate2::read::GzDecoder::new(&s.gzip[..]).read_to_end(&mut single).unwrap();
            assert_eq!(single, whole);
            let mut multi = Vec::new();
            flate2::read::MultiGzDecoder::new(&s.gzip[..]).read_to_end(&mut multi).unwrap();
            assert_eq!(multi, whole);
        }
    }
}
