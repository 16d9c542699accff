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

use std::fs::File;
use std::io::{self, BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::{Feature, FeatureSink, Format, IngestError, SourceLayer};
use dbf::{DbfHeader, TextEncoding, value};
use shp::{ShpReader, geometry};

mod dbf;
mod shp;
#[cfg(test)]
pub(crate) mod tests;

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
            return Err(unreadable(format!("the ZIP holds {} Shapefiles ({}): upload one layer per ZIP", several.len(), names.join(", "))));
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
            return Err(unreadable(format!("ZIP entry {name} expands to {declared} bytes, more than the limit of {cap} for this upload (a zip bomb?)")));
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
            return Err(unreadable(format!("the .shp holds more shapes than the .dbf's {} records (the files do not belong together?)", header.count)));
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
