//! Zipped Shapefile reader: a ZIP holding `<name>.shp`, `.dbf` (required), `.prj` (optional: the
//! CRS as ESRI WKT → [`SourceLayer::declared_crs`]), `.cpg` (optional: the `.dbf`'s encoding) and
//! `.shx` (not needed: the `.shp` is read in order). Also the same files side by side on disk
//! ([`read_files`], the CLI's bare `.shp`).
//!
//! * The ZIP is read with limits ([`ZipLimits`]): an entry that declares more than the per-entry
//!   cap is refused before it is read, one that expands past its declared size (a lying header)
//!   is refused as soon as it does, and the entries read together stay under a total cap — a zip
//!   bomb never gets allocated.
//! * Geometry through the `shapefile` crate's shape reader: (multi)points (Z and M dropped) and
//!   polygons, whose rings (outer clockwise, holes counter-clockwise) are grouped by orientation
//!   and containment into a `MultiPolygon`. A null shape is a per-feature problem.
//! * Attributes: the `.dbf` is parsed here (not with `dbase`, which decodes text itself and skips
//!   deleted records, so its record *i* is not always shape *i*): character fields are decoded
//!   from their raw bytes per the `.cpg` (`UTF-8`, `GBK`/`936`/`CP936`/`GB2312`/`GB18030`, or any
//!   WHATWG label). Without a `.cpg`: the `.dbf`'s language driver byte if it says 936 (GBK),
//!   else UTF-8 when every text of the file is valid UTF-8, else GBK — what Chinese GIS exports
//!   without a `.cpg` are. A `.cpg` that says UTF-8 over GBK bytes is a whole-file error that names
//!   the field and record: never mojibake. Numbers through [`number_text`], dates `YYYY-MM-DD`.
//!   Deleted `.dbf` records drop their shape.

use std::borrow::Cow;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use geo_types::{Coord, Geometry, LineString, MultiPoint, MultiPolygon, Point, Polygon};

use super::{Feature, FeatureSink, Format, IngestError, IssueKind, SourceLayer, number_text};

fn unreadable(message: impl std::fmt::Display) -> IngestError {
    IngestError::Unreadable { format: Format::Shapefile, message: message.to_string() }
}

const NEEDS_DBF: &str = "a Shapefile needs its .dbf: zip the .shp, .shx, .dbf, .prj and .cpg together";

/// How much a ZIP may expand to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZipLimits {
    /// One entry, uncompressed.
    pub max_entry_bytes: u64,
    /// All the entries read, uncompressed.
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

/// The files of one Shapefile, read into memory.
struct Parts {
    shp: Vec<u8>,
    dbf: Vec<u8>,
    prj: Option<Vec<u8>>,
    cpg: Option<Vec<u8>>,
}

/// Reads a zipped Shapefile from a reader (read whole into memory: a ZIP needs random access),
/// with the limits for its size.
pub fn read(mut reader: impl Read, sink: &mut dyn FeatureSink) -> Result<SourceLayer, IngestError> {
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes)?;
    let limits = ZipLimits::for_zip_len(bytes.len() as u64);
    read_zip(&bytes, limits, sink)
}

/// Reads a zipped Shapefile held in memory.
pub fn read_zip(bytes: &[u8], limits: ZipLimits, sink: &mut dyn FeatureSink) -> Result<SourceLayer, IngestError> {
    read_parts(unzip(bytes, limits)?, sink)
}

/// Reads a zipped Shapefile from a file on disk.
// TODO(streaming): the entries are still unzipped whole into memory; read the .shp and .dbf
// entries record by record instead.
pub fn read_zip_file(mut file: std::fs::File, limits: ZipLimits, sink: &mut dyn FeatureSink) -> Result<SourceLayer, IngestError> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    read_zip(&bytes, limits, sink)
}

/// Reads `<name>.shp` and its siblings `<name>.dbf`, `.prj`, `.cpg` beside it (any case of the
/// extensions).
pub fn read_files(shp_path: &Path, sink: &mut dyn FeatureSink) -> Result<SourceLayer, IngestError> {
    let sibling = |ext: &str| -> Option<PathBuf> {
        [ext.to_ascii_lowercase(), ext.to_ascii_uppercase()].into_iter().map(|e| shp_path.with_extension(e)).find(|p| p.is_file())
    };
    let read = |p: PathBuf| std::fs::read(&p).map_err(|e| unreadable(format!("{}: {e}", p.display())));
    let shp = read(shp_path.to_path_buf())?;
    let dbf = read(sibling("dbf").ok_or_else(|| unreadable(format!("{} has no .dbf beside it: {NEEDS_DBF}", shp_path.display())))?)?;
    let prj = sibling("prj").map(read).transpose()?;
    let cpg = sibling("cpg").map(read).transpose()?;
    read_parts(Parts { shp, dbf, prj, cpg }, sink)
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

fn unzip(bytes: &[u8], limits: ZipLimits) -> Result<Parts, IngestError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| unreadable(format!("not a readable ZIP: {e}")))?;
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
    let mut total = 0u64;
    let mut take = |archive: &mut zip::ZipArchive<Cursor<&[u8]>>, index: usize| -> Result<Vec<u8>, IngestError> {
        let entry = archive.by_index(index).map_err(|e| unreadable(format!("ZIP entry {index}: {e}")))?;
        let data = read_entry(entry, limits.max_entry_bytes.min(limits.max_total_bytes.saturating_sub(total)))?;
        total += data.len() as u64;
        Ok(data)
    };
    let shp_data = take(&mut archive, shp.0)?;
    let dbf_data = take(&mut archive, dbf)?;
    let prj = prj.map(|i| take(&mut archive, i)).transpose()?;
    let cpg = cpg.map(|i| take(&mut archive, i)).transpose()?;
    Ok(Parts { shp: shp_data, dbf: dbf_data, prj, cpg })
}

/// Reads one entry, refusing it before reading if it declares more than `cap` bytes and as soon
/// as it expands past its declared size: at most `min(declared, cap) + 1` bytes are allocated.
fn read_entry(entry: zip::read::ZipFile<'_, Cursor<&[u8]>>, cap: u64) -> Result<Vec<u8>, IngestError> {
    let name = entry.name().to_owned();
    let declared = entry.size();
    if declared > cap {
        return Err(unreadable(format!(
            "ZIP entry {name} expands to {declared} bytes, more than the limit of {cap} for this upload (a zip bomb?)"
        )));
    }
    let mut data = Vec::with_capacity(declared as usize);
    entry.take(declared + 1).read_to_end(&mut data).map_err(|e| unreadable(format!("ZIP entry {name}: {e} (truncated or corrupt?)")))?;
    if data.len() as u64 > declared {
        return Err(unreadable(format!(
            "ZIP entry {name} expands past the {declared} bytes it declares (a zip bomb?)"
        )));
    }
    if (data.len() as u64) < declared {
        return Err(unreadable(format!("ZIP entry {name} holds {} of the {declared} bytes it declares (truncated?)", data.len())));
    }
    Ok(data)
}

fn read_parts(parts: Parts, sink: &mut dyn FeatureSink) -> Result<SourceLayer, IngestError> {
    let mut layer = SourceLayer::new(Format::Shapefile);
    if let Some(prj) = &parts.prj {
        let text = String::from_utf8_lossy(prj).trim().trim_start_matches('\u{feff}').to_owned();
        if !text.is_empty() {
            layer.declared_crs = Some(text);
        }
    }
    let cpg = parts.cpg.as_deref().map(|c| String::from_utf8_lossy(c).trim().trim_start_matches('\u{feff}').to_owned());
    let table = Dbf::parse(&parts.dbf)?;
    let encoding = TextEncoding::choose(cpg.as_deref().filter(|c| !c.is_empty()), &table)?;
    layer.columns = table.fields.iter().map(|f| encoding.decode(&f.name, || format!("the name of field {}", f.index + 1))).collect::<Result<_, _>>()?;

    let mut shapes = ::shapefile::ShapeReader::new(Cursor::new(parts.shp)).map_err(|e| unreadable(format!("the .shp: {e}")))?;
    let mut index = 0usize;
    for shape in shapes.iter_shapes() {
        let shape = shape.map_err(|e| unreadable(format!("the .shp, shape {index}: {e}")))?;
        let record = table.record(index).ok_or_else(|| {
            unreadable(format!("the .shp holds more shapes than the .dbf's {} records (the files do not belong together?)", table.count))
        })?;
        let this = index;
        index += 1;
        if record[0] == b'*' {
            continue; // a deleted record
        }
        let values = table
            .fields
            .iter()
            .map(|f| value(f, &record[f.offset..f.offset + f.len], &encoding, &layer.columns[f.index], this))
            .collect::<Result<Vec<_>, _>>()?;
        let (geometry, problem) = match geometry(shape) {
            Ok(g) => (Some(g), None),
            Err(p) => (None, Some(p)),
        };
        sink.feature(&layer, Feature { index: this as u64, line: None, geometry, problem, values })?;
    }
    if index != table.count {
        return Err(unreadable(format!(
            "the .shp holds {index} shapes but the .dbf {} records (truncated, or files that do not belong together?)",
            table.count
        )));
    }
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

struct Dbf<'a> {
    fields: Vec<DbfField>,
    count: usize,
    header_len: usize,
    record_len: usize,
    /// The language driver id (byte 29): 0x4D is code page 936 (GBK).
    ldid: u8,
    bytes: &'a [u8],
}

impl<'a> Dbf<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Dbf<'a>, IngestError> {
        let bad = |m: &str| unreadable(format!("the .dbf: {m}"));
        if bytes.len() < 33 {
            return Err(bad("shorter than its header"));
        }
        let count = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")) as usize;
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        let record_len = u16::from_le_bytes([bytes[10], bytes[11]]) as usize;
        if header_len < 33 || header_len > bytes.len() || record_len == 0 {
            return Err(bad("a corrupt header"));
        }
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
        let need = header_len as u64 + count as u64 * record_len as u64;
        if (bytes.len() as u64) < need {
            return Err(bad(&format!("{count} records announced but the file is too short for them (truncated?)")));
        }
        Ok(Dbf { fields, count, header_len, record_len, ldid: bytes[29], bytes })
    }

    fn record(&self, i: usize) -> Option<&'a [u8]> {
        (i < self.count).then(|| &self.bytes[self.header_len + i * self.record_len..][..self.record_len])
    }

    /// The raw texts of the file: field names and character values.
    fn texts(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let names = self.fields.iter().map(|f| &f.name[..]);
        let values = (0..self.count).filter_map(|i| self.record(i)).flat_map(move |r| {
            self.fields.iter().filter(|f| f.kind == b'C').map(move |f| trim(&r[f.offset..f.offset + f.len]))
        });
        names.chain(values)
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
    fn choose(cpg: Option<&str>, table: &Dbf<'_>) -> Result<TextEncoding, IngestError> {
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
        if table.ldid == 0x4D {
            return Ok(TextEncoding::Other(encoding_rs::GB18030));
        }
        // No .cpg: UTF-8 if all of the file's text is, else GBK (Chinese exports without a .cpg).
        let all_utf8 = table.texts().all(|bytes| std::str::from_utf8(bytes).is_ok());
        Ok(TextEncoding::Other(if all_utf8 { encoding_rs::UTF_8 } else { encoding_rs::GB18030 }))
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
        _ => None, // memo, binary, general: not attributes we read
    })
}

// ---- .shp -----------------------------------------------------------------------------------

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
        ];
        for (bytes, expected) in cases {
            let e = message(collect(|s| read(&bytes[..], s)).unwrap_err());
            assert!(e.contains(expected), "{expected:?} not in {e:?}");
        }
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
