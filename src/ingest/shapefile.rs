//! Zipped Shapefile reader: a ZIP holding `<name>.shp`, `.dbf` (required), `.prj` (optional: the
//! CRS as ESRI WKT → [`SourceLayer::declared_crs`]), `.cpg` (optional: the `.dbf`'s encoding) and
//! `.shx` (not needed: the `.shp` is read in order). Also the same files side by side on disk
//! ([`read_files`], the CLI's bare `.shp`).
//!
//! * Streaming: neither the `.shp` nor the `.dbf` is held in memory. Both are read record by
//!   record, in lockstep, each through its own reader (in a ZIP: its own inflater over the same
//!   archive, read in place — a file with positional reads, or bytes in memory); a ZIP from any
//!   other reader ([`read`]) is spooled to a temp file first.
//! * The ZIP is read with limits ([`ZipLimits`]): an entry that declares more than the per-entry
//!   cap is refused before it is read, one that expands past its declared size (a lying header)
//!   is refused as soon as it does, and the entries read together stay under a total cap — a zip
//!   bomb never gets inflated past what it declares.
//! * Geometry: the `.shp`'s records are framed here (100-byte file header, then per record an
//!   8-byte big-endian header: number, content length in 16-bit words) and each record's content
//!   is parsed by the `shapefile` crate: (multi)points (Z and M dropped) and polygons, whose rings
//!   (outer clockwise, holes counter-clockwise) are grouped by orientation and containment into a
//!   `MultiPolygon`. A null shape is a per-feature problem.
//! * Attributes: the `.dbf` is parsed here (not with `dbase`, which decodes text itself and skips
//!   deleted records, so its record *i* is not always shape *i*): character fields are decoded
//!   from their raw bytes per the `.cpg` (`UTF-8`, `GBK`/`936`/`CP936`/`GB2312`/`GB18030`, or any
//!   WHATWG label). Without a `.cpg`: the `.dbf`'s language driver byte if it says 936 (GBK),
//!   else UTF-8 when every text of the file is valid UTF-8, else GBK — what Chinese GIS exports
//!   without a `.cpg` are; to know that before the first value is decoded, the `.dbf` is read
//!   twice (a first pass over its texts only; from a ZIP, the entry is inflated a second time).
//!   A `.cpg` that says UTF-8 over GBK bytes is a whole-file error that names the field and
//!   record: never mojibake. Numbers through [`number_text`], dates `YYYY-MM-DD`, FoxPro
//!   date-times (`T`) `YYYY-MM-DD hh:mm:ss` (to the nearest second). Memo fields (`M`, whose text
//!   is in a `.dbt`/`.fpt` that is not read), general and binary fields, and dBase 7 timestamps
//!   (`@`) read as empty. Deleted `.dbf` records drop their shape.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use geo_types::{Coord, Geometry, LineString, MultiPoint, MultiPolygon, Point, Polygon};

use super::{Feature, FeatureSink, Format, IngestError, IssueKind, SourceLayer, number_text};

fn unreadable(message: impl std::fmt::Display) -> IngestError {
    IngestError::Unreadable { format: Format::Shapefile, message: message.to_string() }
}

const NEEDS_DBF: &str = "a Shapefile needs its .dbf: zip the .shp, .shx, .dbf, .prj and .cpg together";

/// The buffer of each reader of a `.shp` or `.dbf`.
const BUFFER: usize = 1 << 16;

/// The largest `.prj` or `.cpg` read (a WKT definition is a few KiB).
const MAX_SMALL_ENTRY: u64 = 1 << 20;

/// How much a ZIP may expand to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZipLimits {
    /// One entry, uncompressed.
    pub max_entry_bytes: u64,
    /// All the entries read, uncompressed, as they declare them (the `.dbf` counts once, though
    /// without a `.cpg` it is inflated twice).
    pub max_total_bytes: u64,
}

impl ZipLimits {
    /// The absolute cap on what one upload may expand to.
    pub const MAX_TOTAL_BYTES: u64 = 4 << 30;
    /// Every entry may expand to this much, however small the ZIP.
    pub const MIN_ENTRY_BYTES: u64 = 256 << 20;
    /// … and to this many times the ZIP's own size if that is more (a `.dbf` of padded text
    /// compresses well; far more than 20× is a bomb, not a survey layer).
    pub const ENTRY_RATIO: u64 = 20;

    /// The limits for a ZIP of `zip_len` bytes.
    pub fn for_zip_len(zip_len: u64) -> ZipLimits {
        let entry = zip_len.saturating_mul(Self::ENTRY_RATIO).clamp(Self::MIN_ENTRY_BYTES, Self::MAX_TOTAL_BYTES);
        ZipLimits { max_entry_bytes: entry, max_total_bytes: Self::MAX_TOTAL_BYTES }
    }
}

/// Reads a zipped Shapefile from a reader: spooled to a temp file (a ZIP needs random access),
/// then [`read_zip_file`] with the limits for its size.
pub fn read(mut reader: impl Read, sink: &mut dyn FeatureSink) -> Result<SourceLayer, IngestError> {
    let mut spool = tempfile::tempfile()?;
    let len = io::copy(&mut reader, &mut spool)?;
    read_zip_file(spool, ZipLimits::for_zip_len(len), sink)
}

/// Reads a zipped Shapefile held in memory.
pub fn read_zip(bytes: &[u8], limits: ZipLimits, sink: &mut dyn FeatureSink) -> Result<SourceLayer, IngestError> {
    read_archive(Cursor::new(bytes), limits, sink)
}

/// Reads a zipped Shapefile from a file on disk, in place (its position is not used).
pub fn read_zip_file(file: File, limits: ZipLimits, sink: &mut dyn FeatureSink) -> Result<SourceLayer, IngestError> {
    let len = file.metadata()?.len();
    read_archive(FileAt { file: &file, pos: 0, len }, limits, sink)
}

/// Reads `<name>.shp` and its siblings `<name>.dbf`, `.prj`, `.cpg` beside it (any case of the
/// extensions).
pub fn read_files(shp_path: &Path, sink: &mut dyn FeatureSink) -> Result<SourceLayer, IngestError> {
    let sibling = |ext: &str| -> Option<PathBuf> {
        [ext.to_ascii_lowercase(), ext.to_ascii_uppercase()].into_iter().map(|e| shp_path.with_extension(e)).find(|p| p.is_file())
    };
    fn failed(p: &Path) -> impl FnOnce(io::Error) -> IngestError + '_ {
        move |e| unreadable(format!("{}: {e}", p.display()))
    }
    let open = |p: &Path| -> Result<(BufReader<File>, u64), IngestError> {
        let file = File::open(p).map_err(failed(p))?;
        let len = file.metadata().map_err(failed(p))?.len();
        Ok((BufReader::with_capacity(BUFFER, file), len))
    };
    let read_small = |p: PathBuf| std::fs::read(&p).map_err(failed(&p));
    let (shp, shp_len) = open(shp_path)?;
    let dbf_path = sibling("dbf").ok_or_else(|| unreadable(format!("{} has no .dbf beside it: {NEEDS_DBF}", shp_path.display())))?;
    let (mut dbf, dbf_len) = open(&dbf_path)?;
    let prj = sibling("prj").map(read_small).transpose()?;
    let cpg = sibling("cpg").map(read_small).transpose()?;
    let header = DbfHeader::read(&mut dbf, dbf_len)?;
    let encoding = TextEncoding::choose(cpg_label(cpg).as_deref(), &header, || header.texts_are_utf8(open(&dbf_path)?.0))?;
    let layer = source_layer(prj.as_deref(), &header, &encoding)?;
    read_records(layer, &header, &encoding, ShpReader::new(shp, shp_len)?, dbf, sink)
}

/// A file read at a position of its own (positional reads, not the file's offset, which its
/// clones share), so that several readers of one ZIP can go through it at once.
#[derive(Clone)]
struct FileAt<'a> {
    file: &'a File,
    pos: u64,
    len: u64,
}

impl Read for FileAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(self.file, buf, self.pos)?;
        #[cfg(windows)]
        let n = std::os::windows::fs::FileExt::seek_read(self.file, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for FileAt<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a seek before the start of the file"))?;
        Ok(self.pos)
    }
}

/// An entry's name split into its stem (lower case, with its folder) and extension (lower case).
fn stem_and_ext(name: &str) -> Option<(String, String)> {
    let lower = name.to_lowercase();
    let dot = lower.rfind('.')?;
    if lower[dot..].contains('/') {
        return None;
    }
    Some((lower[..dot].to_owned(), lower[dot + 1..].to_owned()))
}

/// The entries of the ZIP's one Shapefile: the indexes of its `.shp`, `.dbf`, `.prj` and `.cpg`.
fn layer_entries<R: Read + Seek>(archive: &zip::ZipArchive<R>) -> Result<(usize, usize, Option<usize>, Option<usize>), IngestError> {
    // (index, name, stem, ext) of the entries that matter.
    let mut entries = Vec::new();
    for i in 0..archive.len() {
        let Some(name) = archive.name_for_index(i) else { continue };
        if name.starts_with("__MACOSX/") || name.contains("/__MACOSX/") || name.ends_with('/') {
            continue;
        }
        if let Some((stem, ext)) = stem_and_ext(name) {
            entries.push((i, name.to_owned(), stem, ext));
        }
    }
    let shps: Vec<_> = entries.iter().filter(|e| e.3 == "shp").collect();
    let shp = match shps.as_slice() {
        [one] => *one,
        [] => {
            let names: Vec<&str> = entries.iter().map(|e| e.1.as_str()).collect();
            return Err(unreadable(format!("the ZIP holds no .shp (it holds {names:?}): zip the .shp, .shx, .dbf, .prj and .cpg of one layer")));
        }
        several => {
            let names: Vec<&str> = several.iter().map(|e| e.1.as_str()).collect();
            return Err(unreadable(format!(
                "the ZIP holds {} Shapefiles ({}): upload one layer per ZIP",
                several.len(),
                names.join(", ")
            )));
        }
    };
    let sibling = |ext: &str| {
        let same_stem = entries.iter().find(|e| e.3 == ext && e.2 == shp.2);
        let all: Vec<_> = entries.iter().filter(|e| e.3 == ext).collect();
        same_stem.or(if all.len() == 1 { Some(all[0]) } else { None }).map(|e| e.0)
    };
    let (dbf, prj, cpg) = (sibling("dbf"), sibling("prj"), sibling("cpg"));
    let dbf = dbf.ok_or_else(|| unreadable(format!("{} has no .dbf in the ZIP: {NEEDS_DBF}", shp.1)))?;
    Ok((shp.0, dbf, prj, cpg))
}

fn read_archive<R: Read + Seek + Clone>(reader: R, limits: ZipLimits, sink: &mut dyn FeatureSink) -> Result<SourceLayer, IngestError> {
    let archive = zip::ZipArchive::new(reader).map_err(|e| unreadable(format!("not a readable ZIP: {e}")))?;
    let (shp, dbf, prj, cpg) = layer_entries(&archive)?;
    // The sizes the entries declare, against the limits, before any is inflated: none can
    // expand past what it declares.
    let mut total = 0u64;
    for index in [Some(shp), Some(dbf), prj, cpg].into_iter().flatten() {
        let mut archive = archive.clone();
        let entry = archive.by_index(index).map_err(|e| unreadable(format!("ZIP entry {index}: {e}")))?;
        let (name, declared) = (entry.name(), entry.size());
        let cap = limits.max_entry_bytes.min(limits.max_total_bytes.saturating_sub(total));
        if declared > cap {
            return Err(unreadable(format!(
                "ZIP entry {name} expands to {declared} bytes, more than the limit of {cap} for this upload (a zip bomb?)"
            )));
        }
        total += declared;
    }
    let read_small = |index: usize| -> Result<Vec<u8>, IngestError> {
        let mut archive = archive.clone();
        let (entry, len) = open_entry(&mut archive, index)?;
        // A .prj or .cpg is a line of text: more than MAX_SMALL_ENTRY is not one.
        if len > MAX_SMALL_ENTRY {
            return Err(unreadable(format!("ZIP entry {index} ({len} bytes) is too large for a .prj or .cpg")));
        }
        let mut data = Vec::with_capacity(len as usize);
        entry.take(MAX_SMALL_ENTRY + 1).read_to_end(&mut data).map_err(read_error(|| format!("ZIP entry {index}")))?;
        Ok(data)
    };
    let prj = prj.map(read_small).transpose()?;
    let cpg = cpg.map(read_small).transpose()?;
    let mut dbf_archive = archive.clone();
    let (mut dbf_reader, dbf_len) = open_entry(&mut dbf_archive, dbf)?;
    let header = DbfHeader::read(&mut dbf_reader, dbf_len)?;
    let encoding = TextEncoding::choose(cpg_label(cpg).as_deref(), &header, || {
        let mut archive = archive.clone();
        header.texts_are_utf8(open_entry(&mut archive, dbf)?.0)
    })?;
    let layer = source_layer(prj.as_deref(), &header, &encoding)?;
    let mut shp_archive = archive.clone();
    let (shp_reader, shp_len) = open_entry(&mut shp_archive, shp)?;
    read_records(layer, &header, &encoding, ShpReader::new(shp_reader, shp_len)?, dbf_reader, sink)
}

/// A ZIP entry being inflated, through a buffer.
type EntryReader<'a, R> = BufReader<Entry<zip::read::ZipFile<'a, R>>>;

/// Entry `index` of the archive, inflated through a buffer, and the size it declares.
fn open_entry<R: Read + Seek>(archive: &mut zip::ZipArchive<R>, index: usize) -> Result<(EntryReader<'_, R>, u64), IngestError> {
    let entry = archive.by_index(index).map_err(|e| unreadable(format!("ZIP entry {index}: {e}")))?;
    let (name, declared) = (entry.name().to_owned(), entry.size());
    Ok((BufReader::with_capacity(BUFFER, Entry { inner: entry, name, declared, read: 0 }), declared))
}

/// A ZIP entry's inflated bytes, refused (an [`EntryError`]) as soon as they run past the size
/// the entry declares, or end before it.
struct Entry<R> {
    inner: R,
    name: String,
    declared: u64,
    read: u64,
}

impl<R: Read> Read for Entry<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (name, declared) = (&self.name, self.declared);
        let n = self.inner.read(buf).map_err(|e| entry_error(format!("ZIP entry {name}: {e} (truncated or corrupt?)")))?;
        self.read += n as u64;
        if self.read > declared {
            return Err(entry_error(format!("ZIP entry {name} expands past the {declared} bytes it declares (a zip bomb?)")));
        }
        if n == 0 && !buf.is_empty() && self.read < declared {
            return Err(entry_error(format!("ZIP entry {name} holds {} of the {declared} bytes it declares (truncated?)", self.read)));
        }
        Ok(n)
    }
}

/// Why a ZIP entry could not be read: the whole message, whatever was being read from it.
#[derive(Debug)]
struct EntryError(String);

impl std::fmt::Display for EntryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EntryError {}

fn entry_error(message: String) -> io::Error {
    io::Error::other(EntryError(message))
}

/// A failed read of `what` ("the .shp, shape 3"): a ZIP entry's refusal as it is, the end of the
/// data as truncation.
fn read_error(what: impl FnOnce() -> String) -> impl FnOnce(io::Error) -> IngestError {
    move |e| match e.get_ref().and_then(|inner| inner.downcast_ref::<EntryError>()) {
        Some(EntryError(message)) => unreadable(message),
        None if e.kind() == io::ErrorKind::UnexpectedEof => unreadable(format!("{}: the file ends early (truncated?)", what())),
        None => unreadable(format!("{}: {e}", what())),
    }
}

/// The `.cpg`'s label, if it has one.
fn cpg_label(cpg: Option<Vec<u8>>) -> Option<String> {
    let label = String::from_utf8_lossy(&cpg?).trim().trim_start_matches('\u{feff}').trim().to_owned();
    (!label.is_empty()).then_some(label)
}

/// The layer's header: the CRS its `.prj` declares, the names of its `.dbf`'s fields.
fn source_layer(prj: Option<&[u8]>, header: &DbfHeader, encoding: &TextEncoding) -> Result<SourceLayer, IngestError> {
    let mut layer = SourceLayer::new(Format::Shapefile);
    if let Some(prj) = prj {
        let text = String::from_utf8_lossy(prj).trim().trim_start_matches('\u{feff}').to_owned();
        if !text.is_empty() {
            layer.declared_crs = Some(text);
        }
    }
    layer.columns = header.fields.iter().map(|f| encoding.decode(&f.name, || format!("the name of field {}", f.index + 1))).collect::<Result<_, _>>()?;
    Ok(layer)
}

/// Reads the shapes and the `.dbf`'s records (`dbf` at its first record) in lockstep, handing
/// each feature to `sink`; then the rest of both (a ZIP entry's checksum is checked at its end).
fn read_records(
    layer: SourceLayer,
    header: &DbfHeader,
    encoding: &TextEncoding,
    mut shapes: ShpReader<impl Read>,
    mut dbf: impl Read,
    sink: &mut dyn FeatureSink,
) -> Result<SourceLayer, IngestError> {
    let mut record = vec![0u8; header.record_len];
    let mut index = 0usize;
    while let Some(shape) = shapes.next()? {
        if index == header.count {
            return Err(unreadable(format!(
                "the .shp holds more shapes than the .dbf's {} records (the files do not belong together?)",
                header.count
            )));
        }
        dbf.read_exact(&mut record).map_err(read_error(|| format!("the .dbf, record {index}")))?;
        let this = index;
        index += 1;
        if record[0] == b'*' {
            continue; // a deleted record
        }
        let values = header
            .fields
            .iter()
            .map(|f| value(f, &record[f.offset..f.offset + f.len], encoding, &layer.columns[f.index], this))
            .collect::<Result<Vec<_>, _>>()?;
        let (geometry, problem) = match geometry(shape) {
            Ok(g) => (Some(g), None),
            Err(p) => (None, Some(p)),
        };
        sink.feature(&layer, Feature { index: this as u64, line: None, geometry, problem, values })?;
    }
    if index != header.count {
        return Err(unreadable(format!(
            "the .shp holds {index} shapes but the .dbf {} records (truncated, or files that do not belong together?)",
            header.count
        )));
    }
    io::copy(&mut shapes.reader, &mut io::sink()).map_err(read_error(|| "the .shp".into()))?;
    io::copy(&mut dbf, &mut io::sink()).map_err(read_error(|| "the .dbf".into()))?;
    Ok(layer)
}

// ---- .dbf -----------------------------------------------------------------------------------

struct DbfField {
    index: usize,
    /// Raw bytes of the name (up to the first NUL).
    name: Vec<u8>,
    kind: u8,
    /// Offset in the record (after the deletion flag at 0) and length.
    offset: usize,
    len: usize,
}

/// What the `.dbf`'s header says: its fields and the layout of its records.
struct DbfHeader {
    fields: Vec<DbfField>,
    count: usize,
    header_len: usize,
    record_len: usize,
    /// The language driver id (byte 29): 0x4D is code page 936 (GBK).
    ldid: u8,
}

impl DbfHeader {
    /// Reads the header of a `.dbf` of `len` bytes (32 bytes, then 32-byte field descriptors up
    /// to 0x0D), leaving `reader` at the first record.
    fn read(reader: &mut impl Read, len: u64) -> Result<DbfHeader, IngestError> {
        let bad = |m: &str| unreadable(format!("the .dbf: {m}"));
        if len < 33 {
            return Err(bad("shorter than its header"));
        }
        let mut bytes = vec![0u8; 32];
        reader.read_exact(&mut bytes).map_err(read_error(|| "the .dbf's header".into()))?;
        let count = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")) as usize;
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        let record_len = u16::from_le_bytes([bytes[10], bytes[11]]) as usize;
        if header_len < 33 || header_len as u64 > len || record_len == 0 {
            return Err(bad("a corrupt header"));
        }
        bytes.resize(header_len, 0);
        reader.read_exact(&mut bytes[32..]).map_err(read_error(|| "the .dbf's header".into()))?;
        let mut fields = Vec::new();
        let mut offset = 1;
        let mut at = 32;
        while at + 32 <= header_len && bytes[at] != 0x0D {
            let d = &bytes[at..at + 32];
            let name = d[..11].split(|&b| b == 0).next().unwrap_or(&[]).to_vec();
            let len = d[16] as usize;
            fields.push(DbfField { index: fields.len(), name, kind: d[11].to_ascii_uppercase(), offset, len });
            offset += len;
            at += 32;
        }
        if offset > record_len {
            return Err(bad(&format!("fields of {offset} bytes in records of {record_len}")));
        }
        if len < header_len as u64 + count as u64 * record_len as u64 {
            return Err(bad(&format!("{count} records announced but the file is too short for them (truncated?)")));
        }
        Ok(DbfHeader { fields, count, header_len, record_len, ldid: bytes[29] })
    }

    /// Whether every text of the `.dbf` (read from its start by `reader`) is UTF-8: the field
    /// names and the character values, of deleted records too.
    fn texts_are_utf8(&self, mut reader: impl Read) -> Result<bool, IngestError> {
        if !self.fields.iter().all(|f| std::str::from_utf8(&f.name).is_ok()) {
            return Ok(false);
        }
        let texts: Vec<&DbfField> = self.fields.iter().filter(|f| f.kind == b'C').collect();
        if texts.is_empty() {
            return Ok(true);
        }
        io::copy(&mut (&mut reader).take(self.header_len as u64), &mut io::sink()).map_err(read_error(|| "the .dbf's header".into()))?;
        let mut record = vec![0u8; self.record_len];
        for i in 0..self.count {
            reader.read_exact(&mut record).map_err(read_error(|| format!("the .dbf, record {i}")))?;
            if !record.is_ascii() && texts.iter().any(|f| std::str::from_utf8(trim(&record[f.offset..f.offset + f.len])).is_err()) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.split(|&b| b == 0).next().unwrap_or(&[]);
    let start = bytes.iter().position(|&b| b != b' ').unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|&b| b != b' ').map_or(start, |e| e + 1);
    &bytes[start..end.max(start)]
}

/// How the `.dbf`'s text is decoded.
enum TextEncoding {
    /// The `.cpg` says UTF-8.
    Utf8Declared,
    /// Another encoding, declared by the `.cpg` or the language driver, or guessed (no `.cpg`).
    Other(&'static encoding_rs::Encoding),
}

impl TextEncoding {
    /// The encoding the `.cpg` label names, else the one the language driver names, else UTF-8
    /// if `texts_are_utf8` (a pass over the `.dbf`, run only then) says so, else GBK.
    fn choose(cpg: Option<&str>, header: &DbfHeader, texts_are_utf8: impl FnOnce() -> Result<bool, IngestError>) -> Result<TextEncoding, IngestError> {
        if let Some(label) = cpg {
            let upper = label.to_ascii_uppercase().replace(['-', '_', ' '], "");
            return match upper.as_str() {
                "UTF8" | "65001" => Ok(TextEncoding::Utf8Declared),
                "GBK" | "936" | "CP936" | "ANSI936" | "GB2312" | "GB18030" | "54936" | "EUCCN" => {
                    Ok(TextEncoding::Other(encoding_rs::GB18030))
                }
                "BIG5" | "950" | "CP950" => Ok(TextEncoding::Other(encoding_rs::BIG5)),
                _ => encoding_rs::Encoding::for_label(label.as_bytes())
                    .map(TextEncoding::Other)
                    .ok_or_else(|| unreadable(format!("the .cpg names an unknown encoding {label:?}: write UTF-8 or GBK in it"))),
            };
        }
        if header.ldid == 0x4D {
            return Ok(TextEncoding::Other(encoding_rs::GB18030));
        }
        // No .cpg: UTF-8 if all of the file's text is, else GBK (Chinese exports without a .cpg).
        Ok(TextEncoding::Other(if texts_are_utf8()? { encoding_rs::UTF_8 } else { encoding_rs::GB18030 }))
    }


    fn decode(&self, bytes: &[u8], what: impl FnOnce() -> String) -> Result<String, IngestError> {
        match self {
            TextEncoding::Utf8Declared => match std::str::from_utf8(bytes) {
                Ok(s) => Ok(s.to_owned()),
                Err(_) => {
                    let gbk = encoding_rs::GB18030.decode_without_bom_handling_and_without_replacement(bytes).is_some();
                    Err(unreadable(if gbk {
                        format!("{}: the .cpg says UTF-8 but the attributes are GBK: fix the .cpg (GBK) or re-export as UTF-8", what())
                    } else {
                        format!("{}: the .cpg says UTF-8 but the bytes are not UTF-8: fix the .cpg or re-export as UTF-8", what())
                    }))
                }
            },
            TextEncoding::Other(e) => match e.decode_without_bom_handling_and_without_replacement(bytes) {
                Some(Cow::Borrowed(s)) => Ok(s.to_owned()),
                Some(Cow::Owned(s)) => Ok(s),
                None => Err(unreadable(format!(
                    "{}: the bytes are not {}: fix the .cpg or re-export as UTF-8",
                    what(),
                    if *e == encoding_rs::GB18030 { "GBK" } else { e.name() }
                ))),
            },
        }
    }
}

/// One attribute of one record as text.
fn value(field: &DbfField, raw: &[u8], encoding: &TextEncoding, name: &str, record: usize) -> Result<Option<String>, IngestError> {
    let what = || format!("field {name:?} of record {record}");
    let ascii = |b: &[u8]| String::from_utf8_lossy(trim(b)).into_owned();
    Ok(match field.kind {
        b'C' => Some(encoding.decode(trim(raw), what)?).filter(|s| !s.is_empty()),
        b'N' | b'F' => {
            let text = ascii(raw);
            if text.is_empty() || text.bytes().all(|b| b == b'*') {
                None
            } else {
                Some(text.parse::<f64>().ok().filter(|n| n.is_finite()).map_or(text, number_text))
            }
        }
        b'D' => {
            let text = ascii(raw);
            if text.is_empty() || text.bytes().all(|b| b == b'0') {
                None
            } else if text.len() == 8 && text.bytes().all(|b| b.is_ascii_digit()) {
                Some(format!("{}-{}-{}", &text[..4], &text[4..6], &text[6..]))
            } else {
                Some(text)
            }
        }
        b'L' => match raw.first() {
            Some(b'T' | b't' | b'Y' | b'y') => Some("true".into()),
            Some(b'F' | b'f' | b'N' | b'n') => Some("false".into()),
            _ => None,
        },
        b'I' if raw.len() == 4 => Some(i32::from_le_bytes(raw.try_into().expect("4 bytes")).to_string()),
        b'O' | b'B' if raw.len() == 8 => Some(number_text(f64::from_le_bytes(raw.try_into().expect("8 bytes")))),
        b'T' if raw.len() == 8 => foxpro_date_time(raw),
        _ => None, // memo, binary, general, dBase 7 timestamp: not attributes we read
    })
}

/// A FoxPro date-time (little-endian: the Julian day number, then the milliseconds since
/// midnight) as `YYYY-MM-DD hh:mm:ss`, to the nearest second; `None` if blank (zeros or spaces)
/// or not in the years 1–9999.
fn foxpro_date_time(raw: &[u8]) -> Option<String> {
    if raw.iter().all(|&b| b == 0 || b == b' ') {
        return None;
    }
    let julian_day = i64::from(u32::from_le_bytes(raw[..4].try_into().expect("4 bytes")));
    let seconds = (i64::from(u32::from_le_bytes(raw[4..8].try_into().expect("4 bytes"))) + 500) / 1000;
    // Julian day 1721426 is 0001-01-01, day 1 of the common era.
    let days = i32::try_from(julian_day - 1_721_425 + seconds / 86_400).ok()?;
    let time = chrono::NaiveDate::from_num_days_from_ce_opt(days)?.and_hms_opt(0, 0, 0)? + chrono::TimeDelta::seconds(seconds % 86_400);
    (1..=9999).contains(&chrono::Datelike::year(&time)).then(|| time.format("%Y-%m-%d %H:%M:%S").to_string())
}


// ---- .shp -----------------------------------------------------------------------------------

/// The shapes of a `.shp`, record by record: the 100-byte file header (file code 9994, the file's
/// length in 16-bit words at 24, big-endian), then per record an 8-byte big-endian header (record
/// number, content length in 16-bit words) and the content, parsed by the `shapefile` crate.
struct ShpReader<R> {
    reader: R,
    /// The bytes there are (a record may not run past them).
    len: u64,
    /// Where the header says the records end.
    end: u64,
    pos: u64,
    index: usize,
    content: Vec<u8>,
}

impl<R: Read> ShpReader<R> {
    /// Reads the file header of a `.shp` of `len` bytes.
    fn new(mut reader: R, len: u64) -> Result<ShpReader<R>, IngestError> {
        let mut header = [0u8; 100];
        reader.read_exact(&mut header).map_err(read_error(|| "the .shp's header".into()))?;
        let code = i32::from_be_bytes(header[..4].try_into().expect("4 bytes"));
        if code != 9994 {
            return Err(unreadable(format!("the .shp: not a .shp (its file code is {code}, not 9994)")));
        }
        let words = i32::from_be_bytes(header[24..28].try_into().expect("4 bytes"));
        if words < 50 {
            return Err(unreadable(format!("the .shp: a corrupt header (a length of {words} 16-bit words)")));
        }
        Ok(ShpReader { reader, len, end: words as u64 * 2, pos: 100, index: 0, content: Vec::new() })
    }

    /// The next shape, `None` at the end the header says.
    fn next(&mut self) -> Result<Option<::shapefile::Shape>, IngestError> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let index = self.index;
        let what = || format!("the .shp, shape {index}");
        let mut header = [0u8; 8];
        self.reader.read_exact(&mut header).map_err(read_error(what))?;
        let words = i32::from_be_bytes(header[4..8].try_into().expect("4 bytes"));
        let bytes = u64::try_from(words).unwrap_or(0) * 2;
        if bytes < 4 {
            return Err(unreadable(format!("{}: a record of {words} 16-bit words, too short for a shape type (corrupt?)", what())));
        }
        if self.pos + 8 + bytes > self.len {
            return Err(unreadable(format!("{}: a record of {bytes} bytes runs past the end of the file (truncated?)", what())));
        }
        // Grown as bytes arrive, not to what the record claims: a ZIP entry may declare (and a
        // record claim) far more than there is.
        self.content.clear();
        (&mut self.reader).take(bytes).read_to_end(&mut self.content).map_err(read_error(what))?;
        if (self.content.len() as u64) < bytes {
            return Err(unreadable(format!("{}: the record ends after {} of its {bytes} bytes (truncated?)", what(), self.content.len())));
        }
        self.pos += 8 + bytes;
        self.index += 1;
        if let Some(needed) = counted_len(&self.content)
            && needed > bytes
        {
            return Err(unreadable(format!(
                "{}: its counts of parts and points need {needed} bytes but the record has {bytes} (corrupt?)",
                what()
            )));
        }
        <::shapefile::Shape as ::shapefile::ReadableShape>::read_from(&mut Cursor::new(&self.content[..]), bytes as i32)
            .map(Some)
            .map_err(|e| unreadable(format!("{}: {e}", what())))
    }
}

/// The length a record's content needs for the numbers of parts and points it declares (shape
/// types with counts only), checked before the `shapefile` crate reads it: that crate reserves
/// room for the declared counts, so 2 billion points claimed in a 50-byte record would ask for
/// 32 GB.
fn counted_len(content: &[u8]) -> Option<u64> {
    let int = |at: usize| content.get(at..at + 4).map(|b| u64::from(u32::from_le_bytes(b.try_into().expect("4 bytes"))));
    let shape_type = int(0)?;
    // type, bounding box (32 bytes), then the counts.
    Some(match shape_type {
        // MultiPoint, Z, M: number of points, points (16 bytes each).
        8 | 18 | 28 => 40 + 16 * int(36)?,
        // Polyline, Polygon (plain, Z, M): parts, points, part starts (4 bytes each), points.
        3 | 5 | 13 | 15 | 23 | 25 => 44 + 4 * int(36)? + 16 * int(40)?,
        // MultiPatch: part starts and part types (4 bytes each).
        31 => 44 + 8 * int(36)? + 16 * int(40)?,
        _ => return None,
    })
}

type GeometryProblem = (IssueKind, String);

fn invalid(message: impl Into<String>) -> GeometryProblem {
    (IssueKind::InvalidGeometry, message.into())
}

fn coord(x: f64, y: f64) -> Result<Coord<f64>, GeometryProblem> {
    if x.is_finite() && y.is_finite() {
        Ok(Coord { x, y })
    } else {
        Err(invalid(format!("a coordinate is not a finite number ({x}, {y})")))
    }
}

fn geometry(shape: ::shapefile::Shape) -> Result<Geometry<f64>, GeometryProblem> {
    use ::shapefile::Shape as S;
    let xy_rings = |rings: Vec<Vec<(f64, f64)>>| -> Result<Geometry<f64>, GeometryProblem> {
        let rings = rings
            .into_iter()
            .map(|r| r.into_iter().map(|(x, y)| coord(x, y)).collect::<Result<Vec<_>, _>>())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Geometry::MultiPolygon(group_rings(rings)?))
    };
    let points = |ps: Vec<(f64, f64)>| -> Result<Geometry<f64>, GeometryProblem> {
        Ok(Geometry::MultiPoint(MultiPoint(ps.into_iter().map(|(x, y)| coord(x, y).map(Point)).collect::<Result<_, _>>()?)))
    };
    fn rings<P>(p: ::shapefile::record::polygon::GenericPolygon<P>, xy: impl Fn(&P) -> (f64, f64)) -> Vec<Vec<(f64, f64)>> {
        p.into_inner().into_iter().map(|r| r.into_inner().iter().map(&xy).collect()).collect()
    }
    match shape {
        S::NullShape => Err(invalid("a null shape: the record has no geometry")),
        S::Point(p) => Ok(Geometry::Point(Point(coord(p.x, p.y)?))),
        S::PointM(p) => Ok(Geometry::Point(Point(coord(p.x, p.y)?))),
        S::PointZ(p) => Ok(Geometry::Point(Point(coord(p.x, p.y)?))),
        S::Multipoint(m) => points(m.into_inner().iter().map(|p| (p.x, p.y)).collect()),
        S::MultipointM(m) => points(m.into_inner().iter().map(|p| (p.x, p.y)).collect()),
        S::MultipointZ(m) => points(m.into_inner().iter().map(|p| (p.x, p.y)).collect()),
        S::Polygon(p) => xy_rings(rings(p, |q| (q.x, q.y))),
        S::PolygonM(p) => xy_rings(rings(p, |q| (q.x, q.y))),
        S::PolygonZ(p) => xy_rings(rings(p, |q| (q.x, q.y))),
        S::Polyline(_) | S::PolylineM(_) | S::PolylineZ(_) => {
            Err((IssueKind::WrongGeometryType, "a polyline: layers hold points (components) or polygons (grids)".into()))
        }
        S::Multipatch(_) => Err((IssueKind::WrongGeometryType, "a multipatch: layers hold points (components) or polygons (grids)".into())),
    }
}

/// Twice the signed area (shoelace): negative for a clockwise ring (y up).
fn signed_area2(ring: &[Coord<f64>]) -> f64 {
    ring.windows(2).map(|w| w[0].x * w[1].y - w[1].x * w[0].y).sum()
}

/// Even-odd point in ring.
fn ring_contains(ring: &[Coord<f64>], p: Coord<f64>) -> bool {
    let mut inside = false;
    for w in ring.windows(2) {
        let (a, b) = (w[0], w[1]);
        if (a.y > p.y) != (b.y > p.y) && p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x {
            inside = !inside;
        }
    }
    inside
}

/// Shapefile polygon rings → polygons: clockwise rings are outers, counter-clockwise ones holes
/// of the smallest outer that contains them (a hole in no outer becomes an outer itself; if no
/// ring is clockwise, every ring not inside another is an outer).
fn group_rings(rings: Vec<Vec<Coord<f64>>>) -> Result<MultiPolygon<f64>, GeometryProblem> {
    if rings.is_empty() {
        return Err(invalid("a polygon without rings"));
    }
    for r in &rings {
        if r.len() < 4 {
            return Err(invalid(format!("a polygon ring of {} points; at least 4 are needed", r.len())));
        }
        if r.first() != r.last() {
            return Err(invalid("a polygon ring is not closed (its last point differs from its first)"));
        }
    }
    let areas: Vec<f64> = rings.iter().map(|r| signed_area2(r)).collect();
    let any_clockwise = areas.iter().any(|&a| a < 0.0);
    let mut is_outer: Vec<bool> = areas.iter().map(|&a| a < 0.0).collect();
    if !any_clockwise {
        // Orientation says nothing: containment decides.
        for i in 0..rings.len() {
            is_outer[i] = !(0..rings.len()).any(|j| j != i && areas[j].abs() > areas[i].abs() && ring_contains(&rings[j], rings[i][0]));
        }
    }
    let mut holes_of: Vec<Vec<usize>> = vec![Vec::new(); rings.len()];
    for i in 0..rings.len() {
        if is_outer[i] {
            continue;
        }
        let host = (0..rings.len())
            .filter(|&j| is_outer[j] && j != i && ring_contains(&rings[j], rings[i][0]))
            .min_by(|&a, &b| areas[a].abs().total_cmp(&areas[b].abs()));
        match host {
            Some(j) => holes_of[j].push(i),
            None => is_outer[i] = true,
        }
    }
    let mut rings: Vec<Option<Vec<Coord<f64>>>> = rings.into_iter().map(Some).collect();
    let mut polygons = Vec::new();
    for j in 0..rings.len() {
        if is_outer[j] {
            let exterior = LineString(rings[j].take().expect("each ring once"));
            let holes = holes_of[j].iter().map(|&h| LineString(rings[h].take().expect("each ring once"))).collect();
            polygons.push(Polygon::new(exterior, holes));
        }
    }
    Ok(MultiPolygon(polygons))
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::ingest::collect;
    use std::io::Write;

    use ::shapefile::{Point as ShpPoint, PolygonRing, ShapeWriter};

    use super::*;

    /// A `.dbf` of character fields (raw bytes: any encoding) and a date field `d`.
    pub(crate) fn dbf(names: &[&[u8]], rows: &[Vec<&[u8]>], ldid: u8) -> Vec<u8> {
        let width = 20usize;
        let header_len = 32 + 32 * names.len() + 1;
        let record_len = 1 + width * names.len();
        let mut out = vec![0u8; 32];
        out[0] = 3;
        out[4..8].copy_from_slice(&(rows.len() as u32).to_le_bytes());
        out[8..10].copy_from_slice(&(header_len as u16).to_le_bytes());
        out[10..12].copy_from_slice(&(record_len as u16).to_le_bytes());
        out[29] = ldid;
        for (i, name) in names.iter().enumerate() {
            let mut d = [0u8; 32];
            d[..name.len()].copy_from_slice(name);
            d[11] = if i == names.len() - 1 && *name == b"d" { b'D' } else if name.starts_with(b"num_") { b'N' } else { b'C' };
            d[16] = width as u8;
            out.extend_from_slice(&d);
        }
        out.push(0x0D);
        for row in rows {
            out.push(b' ');
            for v in row {
                let mut cell = v.to_vec();
                cell.resize(width, b' ');
                out.extend_from_slice(&cell);
            }
        }
        out.push(0x1A);
        out
    }

    fn points_shp(points: &[(f64, f64)]) -> Vec<u8> {
        let mut shp = Cursor::new(Vec::new());
        let mut w = ShapeWriter::new(&mut shp);
        for &(x, y) in points {
            w.write_shape(&ShpPoint::new(x, y)).unwrap();
        }
        w.finalize().unwrap();
        drop(w);
        shp.into_inner()
    }

    fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        let mut z = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in entries {
            z.start_file(*name, options).unwrap();
            z.write_all(data).unwrap();
        }
        z.finish().unwrap();
        out.into_inner()
    }

    fn message(e: IngestError) -> String {
        e.to_string()
    }

    #[test]
    fn points_with_gbk_attributes_and_a_prj() {
        let (gbk, _, _) = encoding_rs::GBK.encode("东城区井盖");
        let (gbk_name, _, _) = encoding_rs::GBK.encode("名称");
        let shp = points_shp(&[(500_000.5, 4_400_000.25), (1.0, 2.0)]);
        let table = dbf(&[b"code", &gbk_name, b"num_level", b"d"], &[vec![b"A1", &gbk, b"3.000", b"20240131"], vec![b"A2", b"", b"2.5", b""]], 0);
        let prj = b"PROJCS[\"CGCS2000_3_Degree_GK_CM_120E\"]";
        for cpg in [&b"GBK"[..], b"936", b"CP936", b"GB18030", b" gb2312\r\n"] {
            let z = zip(&[("layer/a.shp", &shp), ("layer/a.dbf", &table), ("layer/a.prj", prj), ("layer/a.cpg", cpg), ("__MACOSX/layer/._a.shp", b"junk")]);
            let layer = collect(|s| read(&z[..], s)).unwrap();
            assert_eq!(layer.format, Format::Shapefile);
            assert_eq!(layer.columns, ["code", "名称", "num_level", "d"]);
            assert_eq!(layer.declared_crs.as_deref(), Some("PROJCS[\"CGCS2000_3_Degree_GK_CM_120E\"]"));
            assert_eq!(layer.features.len(), 2);
            let f = &layer.features[0];
            assert_eq!(f.values, [Some("A1".into()), Some("东城区井盖".into()), Some("3".into()), Some("2024-01-31".into())]);
            assert_eq!(f.geometry, Some(Geometry::Point(Point::new(500_000.5, 4_400_000.25))));
            assert_eq!(layer.features[1].values, [Some("A2".into()), None, Some("2.5".into()), None]);
        }
        // No .cpg: not UTF-8, so GBK (what Chinese exports without a .cpg are).
        let layer = collect(|s| read_zip(&zip(&[("a.shp", &shp), ("a.dbf", &table)]), ZipLimits::for_zip_len(0), s)).unwrap();
        assert_eq!(layer.features[0].value(1), Some("东城区井盖"));
        assert_eq!(layer.declared_crs, None);
        // No .cpg and UTF-8 text: UTF-8.
        let utf8 = dbf(&[b"code", "名称".as_bytes()], &[vec![b"A1", "东城区".as_bytes()], vec![b"A2", b"x"]], 0);
        let layer = collect(|s| read(&zip(&[("a.shp", &shp), ("a.dbf", &utf8)])[..], s)).unwrap();
        assert_eq!((layer.columns[1].as_str(), layer.features[0].value(1)), ("名称", Some("东城区")));
        // A .cpg that says UTF-8 over GBK bytes: refused, naming the field and record.
        let e = message(collect(|s| read(&zip(&[("a.shp", &shp), ("a.dbf", &table), ("a.cpg", b"UTF-8")])[..], s)).unwrap_err());
        assert!(e.contains("the .cpg says UTF-8 but the attributes are GBK: fix the .cpg (GBK) or re-export as UTF-8"), "{e}");
        assert!(e.contains("field 2"), "the GBK field name comes first: {e}");
        let table2 = dbf(&[b"code", b"name"], &[vec![b"A1", b"ok"], vec![b"A2", &gbk]], 0);
        let e = message(collect(|s| read(&zip(&[("a.shp", &shp), ("a.dbf", &table2), ("a.cpg", b"utf8")])[..], s)).unwrap_err());
        assert!(e.contains("field \"name\" of record 1") && e.contains("are GBK"), "{e}");
    }

    #[test]
    fn a_deleted_record_drops_its_shape_and_keeps_the_others_aligned() {
        let shp = points_shp(&[(1.0, 1.0), (2.0, 2.0), (3.0, 3.0)]);
        let mut table = dbf(&[b"code"], &[vec![b"A"], vec![b"B"], vec![b"C"]], 0);
        let header_len = u16::from_le_bytes([table[8], table[9]]) as usize;
        table[header_len + 21] = b'*'; // the second record (1 + 20 bytes each)
        let layer = collect(|s| read(&zip(&[("a.shp", &shp), ("a.dbf", &table)])[..], s)).unwrap();
        let got: Vec<_> = layer.features.iter().map(|f| (f.index, f.value(0), f.geometry.clone())).collect();
        let point = |x: f64| Some(Geometry::Point(Point::new(x, x)));
        assert_eq!(got, [(0, Some("A"), point(1.0)), (2, Some("C"), point(3.0))]);
    }

    #[test]
    fn the_bare_shp_reads_its_siblings() {
        let dir = tempfile::tempdir().unwrap();
        let (gbk, _, _) = encoding_rs::GBK.encode("井盖");
        std::fs::write(dir.path().join("a.shp"), points_shp(&[(1.0, 2.0)])).unwrap();
        std::fs::write(dir.path().join("a.DBF"), dbf(&[b"name"], &[vec![&gbk]], 0x4D)).unwrap();
        let layer = collect(|s| read_files(&dir.path().join("a.shp"), s)).unwrap();
        assert_eq!(layer.features[0].value(0), Some("井盖"), "the language driver 0x4D says GBK");
        std::fs::remove_file(dir.path().join("a.DBF")).unwrap();
        assert!(message(collect(|s| read_files(&dir.path().join("a.shp"), s)).unwrap_err()).contains("needs its .dbf"));
    }

    #[test]
    fn polygon_rings_group_by_orientation_and_containment() {
        let ring = |pts: &[(f64, f64)]| pts.iter().map(|&(x, y)| ShpPoint::new(x, y)).collect::<Vec<_>>();
        // Two outers (clockwise), a hole (counter-clockwise) in the second, a null shape.
        let outer1 = ring(&[(0., 0.), (0., 10.), (10., 10.), (10., 0.), (0., 0.)]);
        let outer2 = ring(&[(20., 0.), (20., 10.), (30., 10.), (30., 0.), (20., 0.)]);
        let hole = ring(&[(22., 2.), (28., 2.), (28., 8.), (22., 8.), (22., 2.)]);
        let polygon = ::shapefile::Polygon::with_rings(vec![PolygonRing::Outer(outer1), PolygonRing::Inner(hole), PolygonRing::Outer(outer2)]);
        let mut shp = Cursor::new(Vec::new());
        let mut w = ShapeWriter::new(&mut shp);
        w.write_shape(&polygon).unwrap();
        w.finalize().unwrap();
        drop(w);
        let shp = shp.into_inner();
        let layer = collect(|s| read(&zip(&[("g.shp", &shp), ("g.dbf", &dbf(&[b"code"], &[vec![b"1"]], 0))])[..], s)).unwrap();
        let Some(Geometry::MultiPolygon(mp)) = &layer.features[0].geometry else { panic!("{:?}", layer.features[0]) };
        assert_eq!(mp.0.len(), 2);
        assert_eq!(mp.0[0].interiors().len(), 0);
        assert_eq!(mp.0[1].interiors().len(), 1, "the hole belongs to the outer that contains it");
        assert_eq!(geometry(::shapefile::Shape::NullShape).unwrap_err().0, IssueKind::InvalidGeometry, "a null shape");
        // Counter-clockwise everything (a wrong export): containment decides.
        let ccw = |r: Vec<Coord<f64>>| r.into_iter().rev().collect::<Vec<_>>();
        let c = |pts: &[(f64, f64)]| pts.iter().map(|&(x, y)| Coord { x, y }).collect::<Vec<_>>();
        let mp = group_rings(vec![
            ccw(c(&[(0., 0.), (0., 10.), (10., 10.), (10., 0.), (0., 0.)])),
            c(&[(2., 2.), (8., 2.), (8., 8.), (2., 8.), (2., 2.)]),
        ])
        .unwrap();
        assert_eq!((mp.0.len(), mp.0[0].interiors().len()), (1, 1));
        assert!(group_rings(vec![c(&[(0., 0.), (1., 1.), (0., 0.)])]).is_err());
    }

    #[test]
    fn bad_zips_are_clear_errors() {
        let shp = points_shp(&[(1.0, 2.0)]);
        let table = dbf(&[b"code"], &[vec![b"A1"]], 0);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not a zip at all".to_vec(), "not a readable ZIP"),
            (zip(&[("a.shp", &shp), ("a.dbf", &table)])[..60].to_vec(), "not a readable ZIP"),
            (zip(&[("a.dbf", &table)]), "no .shp"),
            (zip(&[("a.shp", &shp)]), "a Shapefile needs its .dbf: zip the .shp, .shx, .dbf, .prj and .cpg together"),
            (zip(&[("a.shp", &shp), ("b.shp", &shp), ("a.dbf", &table)]), "2 Shapefiles (a.shp, b.shp)"),
            (zip(&[("a.shp", &shp[..shp.len() - 4]), ("a.dbf", &table)]), "the .shp"),
            (zip(&[("a.shp", &shp), ("a.dbf", &dbf(&[b"code"], &[vec![b"A1"], vec![b"A2"]], 0))]), "1 shapes but the .dbf 2 records"),
            (zip(&[("a.shp", &shp), ("a.dbf", &table), ("a.cpg", b"KLINGON")]), "unknown encoding"),
            (zip(&[("a.shp", &shp), ("a.dbf", &table[..table.len() - 10])]), "1 records announced but the file is too short for them (truncated?)"),
            (zip(&[("a.shp", &shp[..50]), ("a.dbf", &table)]), "the .shp's header: the file ends early (truncated?)"),
            (zip(&[("a.shp", &[7u8; 200]), ("a.dbf", &table)]), "the .shp: not a .shp (its file code is 117901063, not 9994)"),
        ];
        for (bytes, expected) in cases {
            let e = message(collect(|s| read(&bytes[..], s)).unwrap_err());
            assert!(e.contains(expected), "{expected:?} not in {e:?}");
        }
    }

    /// A sink that stops the reading after `n` features.
    struct StopAfter(usize, Vec<Feature>);

    impl FeatureSink for StopAfter {
        fn feature(&mut self, _: &SourceLayer, feature: Feature) -> Result<(), IngestError> {
            self.1.push(feature);
            if self.1.len() >= self.0 { Err(IngestError::Stopped) } else { Ok(()) }
        }
    }

    /// Flips a bit of the CRC-32 of `data` where the ZIP holds it (local header, central directory).
    fn corrupt_crc(zip: &mut [u8], data: &[u8]) {
        let crc = crc32fast::hash(data).to_le_bytes();
        let at: Vec<usize> = (0..zip.len() - 4).filter(|&i| zip[i..i + 4] == crc).collect();
        assert_eq!(at.len(), 2, "the CRC once in the local header, once in the central directory");
        for i in at {
            zip[i] ^= 1;
        }
    }

    /// Each reader hands the first feature to the sink before it has read the rest of the .shp
    /// and the .dbf: with both entries' checksums (checked at their ends) wrong, a sink that
    /// stops after one feature gets it and `Stopped`; read to the end, the same ZIP is refused.
    #[test]
    fn the_readers_stream_the_shp_and_dbf_record_by_record() {
        let n = 30_000;
        let points: Vec<(f64, f64)> = (0..n).map(|i| (i as f64, -(i as f64))).collect();
        let codes: Vec<String> = (0..n).map(|i| format!("C{i}")).collect();
        let shp = points_shp(&points);
        let table = dbf(&[b"code"], &codes.iter().map(|c| vec![c.as_bytes()]).collect::<Vec<_>>(), 0);
        assert!(shp.len() > 10 * BUFFER && table.len() > 8 * BUFFER, "larger than the readers' buffers");
        let good = zip(&[("a.shp", &shp), ("a.dbf", &table), ("a.cpg", b"UTF-8")]);
        let mut bad = good.clone();
        corrupt_crc(&mut bad, &shp);
        corrupt_crc(&mut bad, &table);
        let limits = ZipLimits::for_zip_len(bad.len() as u64);

        let layer = collect(|s| read_zip(&good, limits, s)).unwrap();
        assert_eq!(layer.features.len(), n);
        assert_eq!((layer.features[n - 1].value(0), &layer.features[n - 1].geometry), (Some("C29999"), &Some(Geometry::Point(Point::new(29_999.0, -29_999.0)))));
        let e = message(collect(|s| read_zip(&bad, limits, s)).unwrap_err());
        assert!(e.contains("ZIP entry a.shp") && e.contains("checksum"), "{e}");

        let on_disk = || {
            let mut file = tempfile::tempfile().unwrap();
            file.write_all(&bad).unwrap(); // its offset is now at the end: the reader does not use it
            file
        };
        let e = message(collect(|s| read_zip_file(on_disk(), limits, s)).unwrap_err());
        assert!(e.contains("checksum"), "{e}");
        type Reader<'a> = Box<dyn FnOnce(&mut dyn FeatureSink) -> Result<SourceLayer, IngestError> + 'a>;
        let readers: [(&str, Reader); 3] = [
            ("read_zip", Box::new(|s| read_zip(&bad, limits, s))),
            ("read_zip_file", Box::new(|s| read_zip_file(on_disk(), limits, s))),
            ("read", Box::new(|s| read(&bad[..], s))),
        ];
        for (name, reader) in readers {
            let mut first = StopAfter(1, Vec::new());
            assert!(matches!(reader(&mut first), Err(IngestError::Stopped)), "{name}");
            let f = &first.1[0];
            assert_eq!((f.index, f.value(0), &f.geometry), (0, Some("C0"), &Some(Geometry::Point(Point::new(0.0, 0.0)))), "{name}");
        }
    }

    /// Without a .cpg, a first pass over the whole .dbf decides: one GBK text in the last record
    /// makes the file GBK, read from a ZIP and from files.
    #[test]
    fn without_a_cpg_the_texts_of_the_whole_dbf_choose_the_encoding() {
        let n = 20_000;
        let (gbk, _, _) = encoding_rs::GBK.encode("井盖");
        let codes: Vec<String> = (0..n).map(|i| format!("C{i}")).collect();
        let mut rows: Vec<Vec<&[u8]>> = codes.iter().map(|c| vec![c.as_bytes(), b"x"]).collect();
        rows[n - 1][1] = &gbk;
        let shp = points_shp(&vec![(1.0, 2.0); n]);
        let table = dbf(&[b"code", b"name"], &rows, 0);
        let check = |layer: SourceLayer| {
            assert_eq!(layer.features.len(), n);
            assert_eq!((layer.features[0].value(0), layer.features[0].value(1)), (Some("C0"), Some("x")));
            assert_eq!(layer.features[n - 1].value(1), Some("井盖"), "decoded as GBK");
        };
        check(collect(|s| read(&zip(&[("a.shp", &shp), ("a.dbf", &table)])[..], s)).unwrap());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.shp"), &shp).unwrap();
        std::fs::write(dir.path().join("a.dbf"), &table).unwrap();
        check(collect(|s| read_files(&dir.path().join("a.shp"), s)).unwrap());
        // UTF-8 everywhere: UTF-8.
        rows[n - 1][1] = "井盖".as_bytes();
        std::fs::write(dir.path().join("a.dbf"), dbf(&[b"code", b"name"], &rows, 0)).unwrap();
        check(collect(|s| read_files(&dir.path().join("a.shp"), s)).unwrap());
    }

    /// A Visual FoxPro `.dbf` (a 263-byte backlink after the field descriptors) with a date-time
    /// field: Julian day and milliseconds → `YYYY-MM-DD hh:mm:ss`, to the nearest second.
    #[test]
    fn foxpro_date_times_read_as_date_and_time() {
        let fields: [(&[u8], u8, u8); 2] = [(b"code", b'C', 4), (b"surveyed", b'T', 8)];
        let header_len = 32 + 32 * fields.len() + 1 + 263;
        let record_len = 1 + 4 + 8;
        let when = |day: u32, ms: u32| [day.to_le_bytes(), ms.to_le_bytes()].concat();
        let rows: Vec<(&[u8], Vec<u8>)> = vec![
            (b"A1", when(2_460_311, 49_530_600)), // 2024-01-01 13:45:30.6
            (b"A2", when(2_460_310, 86_399_600)), // 2023-12-31 23:59:59.6
            (b"A3", vec![0; 8]),
            (b"A4", vec![b' '; 8]),
            (b"A5", when(1_721_426, 0)), // 0001-01-01
        ];
        let mut table = vec![0u8; 32];
        table[0] = 0x30; // Visual FoxPro
        table[4..8].copy_from_slice(&(rows.len() as u32).to_le_bytes());
        table[8..10].copy_from_slice(&(header_len as u16).to_le_bytes());
        table[10..12].copy_from_slice(&(record_len as u16).to_le_bytes());
        for (name, kind, len) in fields {
            let mut d = [0u8; 32];
            d[..name.len()].copy_from_slice(name);
            d[11] = kind;
            d[16] = len;
            table.extend_from_slice(&d);
        }
        table.push(0x0D);
        table.extend_from_slice(&[0; 263]);
        for (code, t) in &rows {
            table.push(b' ');
            table.extend_from_slice(&[*code, &b"  "[..]].concat());
            table.extend_from_slice(t);
        }
        table.push(0x1A);
        let shp = points_shp(&vec![(1.0, 2.0); rows.len()]);
        let layer = collect(|s| read(&zip(&[("a.shp", &shp), ("a.dbf", &table)])[..], s)).unwrap();
        assert_eq!(layer.columns, ["code", "surveyed"]);
        let got: Vec<_> = layer.features.iter().map(|f| (f.value(0), f.value(1))).collect();
        assert_eq!(
            got,
            [
                (Some("A1"), Some("2024-01-01 13:45:31")),
                (Some("A2"), Some("2024-01-01 00:00:00")),
                (Some("A3"), None),
                (Some("A4"), None),
                (Some("A5"), Some("0001-01-01 00:00:00")),
            ]
        );
        assert_eq!(foxpro_date_time(&when(5_373_484, 0)), Some("9999-12-31 00:00:00".into()));
        assert_eq!(foxpro_date_time(&when(5_373_485, 0)), None, "year 10000");
        assert_eq!(foxpro_date_time(&when(1_721_425, 0)), None, "year 0");
    }

    /// 50 MB of zeros deflate to ~50 KB: refused by the declared size under a lowered cap, and,
    /// when the headers lie about the size, as soon as the entry expands past what it declares —
    /// at most cap + 1 bytes are ever allocated.
    #[test]
    fn a_zip_bomb_is_refused_without_expanding_it() {
        let zeros = vec![0u8; 50 << 20];
        let bomb = zip(&[("a.shp", &zeros), ("a.dbf", &dbf(&[b"code"], &[vec![b"A1"]], 0))]);
        drop(zeros);
        assert!(bomb.len() < 200 << 10, "{}", bomb.len());
        let limits = ZipLimits { max_entry_bytes: 1 << 20, max_total_bytes: 4 << 30 };
        let e = message(collect(|s| read_zip(&bomb, limits, s)).unwrap_err());
        assert!(e.contains("expands to 52428800 bytes, more than the limit of 1048576"), "{e}");
        let limits = ZipLimits { max_entry_bytes: 64 << 20, max_total_bytes: 1 << 20 };
        assert!(message(collect(|s| read_zip(&bomb, limits, s)).unwrap_err()).contains("more than the limit of 1048576"));
        // The default for a small upload: 20× its size, at least 256 MiB.
        assert_eq!(ZipLimits::for_zip_len(bomb.len() as u64).max_entry_bytes, 256 << 20);
        assert_eq!(ZipLimits::for_zip_len(100 << 20).max_entry_bytes, 2000 << 20);
        assert_eq!(ZipLimits::for_zip_len(1 << 40).max_entry_bytes, 4 << 30);
        // A lying header: the .shp entry says 1000 bytes (local header and central directory).
        let mut lying = bomb.clone();
        let size = (50u32 << 20).to_le_bytes();
        let mut patched = 0;
        for i in 0..lying.len() - 4 {
            if lying[i..i + 4] == size {
                lying[i..i + 4].copy_from_slice(&1000u32.to_le_bytes());
                patched += 1;
            }
        }
        assert!(patched >= 2, "{patched}");
        let e = message(collect(|s| read_zip(&lying, ZipLimits::for_zip_len(lying.len() as u64), s)).unwrap_err());
        assert!(e.contains("a.shp") && e.contains("past the 1000 bytes it declares"), "{e}");
    }
}
