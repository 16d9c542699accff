//! GeoPackage reader (OGC 12-128r18): the one feature table of a `.gpkg`, its CRS from
//! `gpkg_spatial_ref_sys` (`EPSG:nnnn`, else the WKT definition), every attribute column as
//! text, and the geometry blobs (the GeoPackage binary header, then ISO WKB; Z and M are
//! dropped) read by a bounds-checked parser of our own: a corrupt count is a per-feature
//! problem, never a huge allocation or a panic.
//!
//! A GeoPackage is an SQLite database, which needs random access: the stream is written to a
//! file in a temp directory (deleted on return) and opened read-only through the bundled SQLite.

use std::io::{Read, Seek, SeekFrom, Write};

use geo_types::{Coord, Geometry, LineString, MultiPoint, MultiPolygon, Point, Polygon};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::{Feature, FeatureSink, Format, IngestError, IssueKind, SourceLayer, number_text};

/// The first 16 bytes of every SQLite 3 database file.
pub const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

fn unreadable(message: impl std::fmt::Display) -> IngestError {
    IngestError::Unreadable { format: Format::GeoPackage, message: message.to_string() }
}

type GeometryProblem = (IssueKind, String);

fn invalid(message: impl Into<String>) -> GeometryProblem {
    (IssueKind::InvalidGeometry, message.into())
}

/// `"name"` with inner quotes doubled: an SQL identifier for any table or column name.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Reads the only feature table of a GeoPackage stream.
pub fn read(mut reader: impl Read, sink: &mut dyn FeatureSink) -> Result<SourceLayer, IngestError> {
    // A directory of our own: SQLite's side files (a journal, `-shm`), if any, go with it.
    let dir = tempfile::Builder::new().prefix("citygrid-gpkg-").tempdir()?;
    let path = dir.path().join("upload.gpkg");
    let mut file = std::fs::File::create_new(&path)?;
    let length = std::io::copy(&mut reader, &mut file)?;
    check_sqlite_header(&mut file, length)?;
    file.flush()?;
    drop(file);
    let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| unreadable(format!("SQLite could not open it: {e}")))?;
    // An uploaded file is untrusted: no functions with side effects from its schema, and
    // corrupt b-tree cells are caught early.
    conn.execute_batch("PRAGMA trusted_schema = OFF; PRAGMA cell_size_check = ON;").map_err(|e| unreadable(format!("SQLite: {e}")))?;
    // A view named as the feature table (or as gpkg_contents) can make SQLite work without end
    // on a small file: a recursive CTE that never stops, a join that multiplies rows. Its work
    // is bounded by the file's size: far more than reading every byte of real tables takes.
    let budget = length.saturating_mul(SQLITE_OPS_PER_BYTE).max(MIN_SQLITE_OPS);
    let spent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = spent.clone();
    conn.progress_handler(SQLITE_OPS_PER_CHECK as i32, Some(move || counter.fetch_add(SQLITE_OPS_PER_CHECK, std::sync::atomic::Ordering::Relaxed) >= budget))
        .map_err(|e| unreadable(format!("SQLite: {e}")))?;
    read_connection(&conn, sink).map_err(|e| {
        if spent.load(std::sync::atomic::Ordering::Relaxed) >= budget {
            unreadable(format!(
                "SQLite did more than {budget} steps of work on a file of {length} bytes: a view that never ends or multiplies \
                 rows? Export the layer as a plain table (ogr2ogr -f GPKG)"
            ))
        } else {
            e
        }
    })
}

/// SQLite's work allowed per byte of the file ([`read`]), and at least.
const SQLITE_OPS_PER_BYTE: u64 = 100;
const MIN_SQLITE_OPS: u64 = 50_000_000;
/// How often (in SQLite virtual machine steps) the budget is checked.
const SQLITE_OPS_PER_CHECK: u64 = 10_000;

/// The checks SQLite itself would only make late or never: the magic, the page size, and the
/// length the header announces (a truncated upload). A database in WAL mode is switched to
/// the rollback journal in the temp copy: the upload has no `-wal` file, and SQLite would
/// otherwise create `-wal` and `-shm` files beside the copy.
fn check_sqlite_header(file: &mut std::fs::File, length: u64) -> Result<(), IngestError> {
    let mut header = [0u8; 100];
    file.seek(SeekFrom::Start(0))?;
    let read = read_up_to(file, &mut header)?;
    if read < 16 || &header[..16] != SQLITE_MAGIC {
        return Err(unreadable("not an SQLite database (a GeoPackage is one: its file starts with \"SQLite format 3\")"));
    }
    if read < 100 {
        return Err(unreadable(format!("truncated: {length} bytes, shorter than the 100-byte SQLite header")));
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65536u64,
        n if n >= 512 && n.is_power_of_two() => u64::from(n),
        n => return Err(unreadable(format!("an SQLite header with an impossible page size {n}"))),
    };
    // The page count at offset 28 is valid when the "version-valid-for" number (92) equals the
    // change counter (24); older writers leave it stale, and then the length must still be
    // whole pages.
    let pages = u64::from(u32::from_be_bytes([header[28], header[29], header[30], header[31]]));
    let valid = header[92..96] == header[24..28];
    if valid && pages > 0 && length < pages * page_size {
        return Err(unreadable(format!(
            "truncated: the SQLite header announces {pages} pages of {page_size} bytes ({} bytes) but the file has {length}",
            pages * page_size
        )));
    }
    if !length.is_multiple_of(page_size) {
        return Err(unreadable(format!("truncated: {length} bytes is not a whole number of {page_size}-byte SQLite pages")));
    }
    if header[18] == 2 || header[19] == 2 {
        file.seek(SeekFrom::Start(18))?;
        file.write_all(&[1, 1])?;
    }
    Ok(())
}

fn read_up_to(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn sql(context: &str) -> impl Fn(rusqlite::Error) -> IngestError + '_ {
    move |e| unreadable(format!("{context}: {e}"))
}

fn has_table(conn: &Connection, name: &str) -> Result<bool, IngestError> {
    conn.query_row("SELECT count(*) FROM sqlite_master WHERE type IN ('table', 'view') AND lower(name) = lower(?1)", [name], |r| r.get::<_, i64>(0))
        .map(|n| n > 0)
        .map_err(sql("reading the SQLite schema"))
}

/// Reads the only feature table of an open GeoPackage.
pub fn read_connection(conn: &Connection, sink: &mut dyn FeatureSink) -> Result<SourceLayer, IngestError> {
    if !has_table(conn, "gpkg_contents")? {
        return Err(unreadable("an SQLite database but not a GeoPackage: it has no gpkg_contents table"));
    }
    let tables: Vec<String> = {
        let mut stmt = conn
            .prepare("SELECT table_name FROM gpkg_contents WHERE lower(data_type) = 'features' ORDER BY table_name")
            .map_err(sql("reading gpkg_contents"))?;
        stmt.query_map([], |r| r.get::<_, String>(0)).and_then(|rows| rows.collect::<Result<_, _>>()).map_err(sql("reading gpkg_contents"))?
    };
    let table = match tables.as_slice() {
        [] => return Err(unreadable("the GeoPackage holds no feature table (no gpkg_contents row of data_type 'features')")),
        [one] => one.clone(),
        several => {
            let names = several.iter().map(|t| format!("{t:?}")).collect::<Vec<_>>().join(", ");
            return Err(unreadable(format!(
                "the GeoPackage holds {} feature tables ({names}); a layer upload takes one: keep one with \
                 `ogr2ogr -f GPKG one.gpkg in.gpkg <table>`",
                several.len()
            )));
        }
    };
    if !has_table(conn, &table)? {
        return Err(unreadable(format!("gpkg_contents names the feature table {table:?}, which the file does not hold")));
    }
    let (geometry_column, srs_id): (String, i64) = conn
        .query_row("SELECT column_name, srs_id FROM gpkg_geometry_columns WHERE lower(table_name) = lower(?1)", [&table], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => unreadable(format!("gpkg_geometry_columns has no row for the table {table:?}")),
            e => unreadable(format!("reading gpkg_geometry_columns: {e}")),
        })?;
    let mut layer = SourceLayer::new(Format::GeoPackage);
    layer.declared_crs = declared_crs(conn, srs_id)?;

    // Columns in table order. The geometry and GDAL's integer primary key `fid` are not
    // attributes; an integer key of another name (a code, an ArcGIS OBJECTID) is kept, as an
    // extra column is harmless and a dropped code is not.
    struct Column {
        name: String,
        is_geometry: bool,
        is_attribute: bool,
        integer_key: bool,
    }
    let columns: Vec<Column> = {
        let mut stmt = conn.prepare(&format!("PRAGMA table_info({})", quoted(&table))).map_err(sql("reading the table's columns"))?;
        stmt.query_map([], |r| {
            let name: String = r.get(1)?;
            let kind: String = r.get::<_, Option<String>>(2)?.unwrap_or_default();
            let pk: i64 = r.get(5)?;
            Ok((name, kind, pk))
        })
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(sql("reading the table's columns"))?
        .into_iter()
        .map(|(name, kind, pk)| {
            let is_geometry = name.eq_ignore_ascii_case(&geometry_column);
            let integer_key = pk > 0 && kind.eq_ignore_ascii_case("INTEGER");
            let fid = integer_key && name.eq_ignore_ascii_case("fid");
            let is_attribute = !is_geometry && !fid;
            Column { is_attribute, is_geometry, integer_key, name }
        })
        .collect()
    };
    if !columns.iter().any(|c| c.is_geometry) {
        return Err(unreadable(format!("the table {table:?} has no column {geometry_column:?} (its geometry column)")));
    }
    layer.columns = columns.iter().filter(|c| c.is_attribute).map(|c| c.name.clone()).collect();
    let selected = columns.iter().filter(|c| c.is_geometry || c.is_attribute).map(|c| quoted(&c.name)).collect::<Vec<_>>();
    let key = columns.iter().find(|c| c.integer_key).map(|c| c.name.clone());
    let order = key.map(|k| format!(" ORDER BY {}", quoted(&k))).unwrap_or_default();
    let query = format!("SELECT {} FROM {}{order}", selected.join(", "), quoted(&table));
    let mut stmt = conn.prepare(&query).map_err(sql("reading the features"))?;
    let mut rows = stmt.query([]).map_err(sql("reading the features"))?;
    let mut index = 0u64;
    while let Some(row) = rows.next().map_err(|e| unreadable(format!("feature {index}: {e}")))? {
        let mut values = Vec::with_capacity(layer.columns.len());
        let mut result = Err(invalid("the feature has no geometry"));
        let selected_columns = columns.iter().filter(|c| c.is_geometry || c.is_attribute);
        for (i, column) in selected_columns.enumerate() {
            let value = row.get_ref(i).map_err(|e| unreadable(format!("feature {index}: {e}")))?;
            if column.is_geometry {
                result = match value {
                    ValueRef::Null => Err(invalid("the feature has no geometry")),
                    ValueRef::Blob(blob) => geometry(blob),
                    _ => Err(invalid("the geometry is not a GeoPackage geometry blob")),
                };
            } else {
                values.push(match value {
                    ValueRef::Null | ValueRef::Blob(_) => None,
                    ValueRef::Integer(n) => Some(n.to_string()),
                    ValueRef::Real(f) => Some(number_text(f)),
                    ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
                });
            }
        }
        let (geometry, problem) = match result {
            Ok(g) => (Some(g), None),
            Err(p) => (None, Some(p)),
        };
        sink.feature(&layer, Feature { index, line: None, geometry, problem, values })?;
        index += 1;
    }
    Ok(layer)
}

/// The CRS of `srs_id`: `EPSG:nnnn` when the organization is EPSG, else its WKT definition;
/// `None` for the GeoPackage's "undefined" systems (0 and -1).
fn declared_crs(conn: &Connection, srs_id: i64) -> Result<Option<String>, IngestError> {
    if srs_id == 0 || srs_id == -1 {
        return Ok(None);
    }
    let (organization, code, definition): (Option<String>, Option<i64>, Option<String>) = conn
        .query_row("SELECT organization, organization_coordsys_id, definition FROM gpkg_spatial_ref_sys WHERE srs_id = ?1", [srs_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .map_err(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => unreadable(format!("the geometry's srs_id {srs_id} is not in gpkg_spatial_ref_sys")),
            e => unreadable(format!("reading gpkg_spatial_ref_sys: {e}")),
        })?;
    let definition = definition.map(|d| d.trim().to_owned()).filter(|d| !d.is_empty() && !d.eq_ignore_ascii_case("undefined"));
    Ok(match (organization, code) {
        (Some(org), Some(code)) if org.eq_ignore_ascii_case("EPSG") && code > 0 => Some(format!("EPSG:{code}")),
        (org, code) => definition.or_else(|| match (org, code) {
            (Some(org), Some(code)) if code > 0 => Some(format!("{org}:{code}")),
            _ => None,
        }),
    })
}

// ---- geometry blobs -------------------------------------------------------------------------

/// The GeoPackage binary header of a geometry blob (spec §2.1.3.1.1).
#[derive(Debug, PartialEq)]
pub struct BlobHeader {
    pub version: u8,
    /// The empty-geometry flag.
    pub empty: bool,
    pub little_endian: bool,
    pub srs_id: i32,
    /// minx, maxx, miny, maxy [, minz, maxz] [, minm, maxm], as stored (NaN for an empty one).
    pub envelope: Vec<f64>,
    /// Where the WKB begins.
    pub wkb_offset: usize,
}

/// Parses the header of a GeoPackage geometry blob.
pub fn blob_header(blob: &[u8]) -> Result<BlobHeader, String> {
    if blob.len() < 8 {
        return Err(format!("a geometry blob of {} bytes, shorter than its 8-byte header", blob.len()));
    }
    if &blob[..2] != b"GP" {
        return Err("not a GeoPackage geometry blob (no \"GP\" magic)".into());
    }
    let version = blob[2];
    let flags = blob[3];
    if flags & 0b0010_0000 != 0 {
        return Err("an extended GeoPackage geometry (a vendor extension): not read".into());
    }
    let values = match (flags >> 1) & 0b111 {
        0 => 0,
        1 => 4,
        2 | 3 => 6,
        4 => 8,
        other => return Err(format!("an invalid envelope code {other} in the geometry header")),
    };
    let little_endian = flags & 1 == 1;
    let mut cursor = Cursor { bytes: blob, at: 4, little_endian };
    let srs_id = cursor.u32()? as i32;
    let envelope = (0..values).map(|_| cursor.f64()).collect::<Result<Vec<_>, _>>()?;
    Ok(BlobHeader { version, empty: flags & 0b0001_0000 != 0, little_endian, srs_id, envelope, wkb_offset: cursor.at })
}

/// A geometry blob → a point or (multi)polygon in the file's CRS (2D).
pub fn geometry(blob: &[u8]) -> Result<Geometry<f64>, GeometryProblem> {
    let header = blob_header(blob).map_err(invalid)?;
    if header.empty {
        return Err(invalid("an empty geometry"));
    }
    let mut cursor = Cursor { bytes: blob, at: header.wkb_offset, little_endian: true };
    let g = wkb(&mut cursor, 0)?;
    if cursor.at != blob.len() {
        return Err(invalid(format!("{} bytes after the geometry", blob.len() - cursor.at)));
    }
    Ok(g)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    little_endian: bool,
}

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let end = self.at.checked_add(N).filter(|&e| e <= self.bytes.len()).ok_or("the geometry blob ends early")?;
        let out = self.bytes[self.at..end].try_into().expect("N bytes");
        self.at = end;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take::<4>()?;
        Ok(if self.little_endian { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) })
    }

    fn f64(&mut self) -> Result<f64, String> {
        let b = self.take::<8>()?;
        Ok(if self.little_endian { f64::from_le_bytes(b) } else { f64::from_be_bytes(b) })
    }

    /// A count of items of at least `min_size` bytes each, checked against what is left.
    fn count(&mut self, min_size: usize) -> Result<usize, String> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_size) > self.bytes.len() - self.at {
            return Err(format!("a count of {n} that the geometry blob cannot hold"));
        }
        Ok(n)
    }
}

/// WKB type codes: ISO (1000 Z, 2000 M, 3000 ZM) and the EWKB high bits, as (base type, number
/// of ordinates).
fn wkb_type(code: u32) -> (u32, usize) {
    let z = code & 0x8000_0000 != 0;
    let m = code & 0x4000_0000 != 0;
    let code = code & 0x0FFF_FFFF;
    let (iso_z, iso_m) = match code / 1000 {
        1 => (true, false),
        2 => (false, true),
        3 => (true, true),
        _ => (false, false),
    };
    (code % 1000, 2 + usize::from(z || iso_z) + usize::from(m || iso_m))
}

const MAX_DEPTH: usize = 4;

fn wkb(c: &mut Cursor<'_>, depth: usize) -> Result<Geometry<f64>, GeometryProblem> {
    if depth > MAX_DEPTH {
        return Err(invalid("geometries nested too deep"));
    }
    let order = c.take::<1>().map_err(invalid)?[0];
    c.little_endian = match order {
        0 => false,
        1 => true,
        other => return Err(invalid(format!("an invalid WKB byte order {other}"))),
    };
    let (kind, dims) = wkb_type(c.u32().map_err(invalid)?);
    let point_size = 8 * dims;
    let coord = |c: &mut Cursor<'_>| -> Result<Coord<f64>, GeometryProblem> {
        let x = c.f64().map_err(invalid)?;
        let y = c.f64().map_err(invalid)?;
        for _ in 2..dims {
            c.f64().map_err(invalid)?;
        }
        Ok(Coord { x, y })
    };
    let finite = |p: Coord<f64>| -> Result<Coord<f64>, GeometryProblem> {
        if p.x.is_finite() && p.y.is_finite() { Ok(p) } else { Err(invalid(format!("a coordinate is not a finite number ({}, {})", p.x, p.y))) }
    };
    let polygon = |c: &mut Cursor<'_>| -> Result<Polygon<f64>, GeometryProblem> {
        let n = c.count(4).map_err(invalid)?;
        if n == 0 {
            return Err(invalid("an empty polygon"));
        }
        let mut rings = Vec::with_capacity(n);
        for _ in 0..n {
            let points = c.count(point_size).map_err(invalid)?;
            let ring = (0..points).map(|_| coord(c).and_then(finite)).collect::<Result<Vec<_>, _>>()?;
            if ring.len() < 4 {
                return Err(invalid(format!("a polygon ring of {} points; at least 4 are needed", ring.len())));
            }
            if ring.first() != ring.last() {
                return Err(invalid("a polygon ring is not closed (its last point differs from its first)"));
            }
            rings.push(LineString(ring));
        }
        let mut rings = rings.into_iter();
        let exterior = rings.next().expect("n > 0");
        Ok(Polygon::new(exterior, rings.collect()))
    };
    // Parts of a multi-geometry: each is a whole WKB geometry of the given base type.
    let part = |c: &mut Cursor<'_>, want: u32| -> Result<Geometry<f64>, GeometryProblem> {
        let g = wkb(c, depth + 1)?;
        match (want, g) {
            (1, g @ Geometry::Point(_)) | (3, g @ Geometry::Polygon(_)) => Ok(g),
            _ => Err(invalid("a multi-geometry with a part of another type")),
        }
    };
    match kind {
        1 => {
            let p = coord(c)?;
            if p.x.is_nan() && p.y.is_nan() {
                return Err(invalid("an empty point"));
            }
            Ok(Geometry::Point(Point(finite(p)?)))
        }
        3 => Ok(Geometry::Polygon(polygon(c)?)),
        4 => {
            let n = c.count(5 + 16).map_err(invalid)?;
            let points = (0..n)
                .map(|_| match part(c, 1)? {
                    Geometry::Point(p) => Ok(p),
                    _ => unreachable!("part checks the type"),
                })
                .collect::<Result<Vec<_>, _>>()?;
            if points.is_empty() {
                return Err(invalid("an empty multipoint"));
            }
            Ok(Geometry::MultiPoint(MultiPoint(points)))
        }
        6 => {
            let n = c.count(5 + 4).map_err(invalid)?;
            let polygons = (0..n)
                .map(|_| match part(c, 3)? {
                    Geometry::Polygon(p) => Ok(p),
                    _ => unreachable!("part checks the type"),
                })
                .collect::<Result<Vec<_>, _>>()?;
            if polygons.is_empty() {
                return Err(invalid("an empty multipolygon"));
            }
            Ok(Geometry::MultiPolygon(MultiPolygon(polygons)))
        }
        2 | 5 | 7 => {
            let name = ["", "", "LineString", "", "", "MultiLineString", "", "GeometryCollection"][kind as usize];
            Err((IssueKind::WrongGeometryType, format!("a {name}: layers hold points (components) or polygons (grids)")))
        }
        other => {
            Err((IssueKind::WrongGeometryType, format!("WKB geometry type {other} (curves, surfaces …): layers hold points (components) or polygons (grids)")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GeoPackage blob: header (byte order `le`, envelope code `env`, `empty`), then `wkb`.
    fn blob(le: bool, env: u8, empty: bool, envelope: &[f64], wkb: &[u8]) -> Vec<u8> {
        let mut out = b"GP\x00".to_vec();
        out.push(u8::from(le) | env << 1 | u8::from(empty) << 4);
        let put_u32 = |v: u32| if le { v.to_le_bytes() } else { v.to_be_bytes() };
        out.extend(put_u32(4549));
        for v in envelope {
            out.extend(if le { v.to_le_bytes() } else { v.to_be_bytes() });
        }
        out.extend(wkb);
        out
    }

    /// ISO WKB of type `code` with `values` (counts and coordinates in order, in byte order `le`).
    fn wkb(le: bool, code: u32, body: &[WkbValue]) -> Vec<u8> {
        let mut out = vec![u8::from(le)];
        out.extend(if le { code.to_le_bytes() } else { code.to_be_bytes() });
        for v in body {
            match v {
                WkbValue::N(n) => out.extend(if le { n.to_le_bytes() } else { n.to_be_bytes() }),
                WkbValue::F(f) => out.extend(if le { f.to_le_bytes() } else { f.to_be_bytes() }),
                WkbValue::Raw(bytes) => out.extend(bytes),
            }
        }
        out
    }

    enum WkbValue {
        N(u32),
        F(f64),
        Raw(Vec<u8>),
    }
    use WkbValue::{F, N, Raw};

    #[test]
    fn a_point_without_an_envelope_little_endian() {
        let b = blob(true, 0, false, &[], &wkb(true, 1, &[F(500_123.25), F(4_400_000.5)]));
        let h = blob_header(&b).unwrap();
        assert_eq!(h, BlobHeader { version: 0, empty: false, little_endian: true, srs_id: 4549, envelope: vec![], wkb_offset: 8 });
        assert_eq!(geometry(&b).unwrap(), Geometry::Point(Point::new(500_123.25, 4_400_000.5)));
    }

    #[test]
    fn a_polygon_with_an_xy_envelope_big_endian() {
        let ring = [(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 0.0)];
        let mut body = vec![N(1), N(4)];
        body.extend(ring.iter().flat_map(|&(x, y)| [F(x), F(y)]));
        let b = blob(false, 1, false, &[0.0, 10.0, 0.0, 10.0], &wkb(false, 3, &body));
        let h = blob_header(&b).unwrap();
        assert_eq!((h.little_endian, h.srs_id, h.envelope.clone(), h.wkb_offset), (false, 4549, vec![0.0, 10.0, 0.0, 10.0], 40));
        let Geometry::Polygon(p) = geometry(&b).unwrap() else { panic!("a polygon") };
        assert_eq!(p.exterior().0.len(), 4);
        assert_eq!(p.exterior().0[1], Coord { x: 10.0, y: 0.0 });
        // Mixed orders: a big-endian header over little-endian WKB.
        let mixed = blob(
            false,
            1,
            false,
            &[0.0, 10.0, 0.0, 10.0],
            &wkb(
                true,
                3,
                &body
                    .iter()
                    .map(|v| match v {
                        N(n) => N(*n),
                        F(f) => F(*f),
                        Raw(r) => Raw(r.clone()),
                    })
                    .collect::<Vec<_>>(),
            ),
        );
        assert_eq!(geometry(&mixed).unwrap(), Geometry::Polygon(p));
    }

    #[test]
    fn z_and_m_are_dropped() {
        // ISO PointZ with an XYZ envelope (code 2: six values).
        let b = blob(true, 2, false, &[1.0, 1.0, 2.0, 2.0, 3.0, 3.0], &wkb(true, 1001, &[F(1.0), F(2.0), F(3.0)]));
        assert_eq!(blob_header(&b).unwrap().wkb_offset, 8 + 48);
        assert_eq!(geometry(&b).unwrap(), Geometry::Point(Point::new(1.0, 2.0)));
        // ZM (3001) with an XYZM envelope (code 4: eight values), and the EWKB Z flag.
        let zm = blob(true, 4, false, &[0.0; 8], &wkb(true, 3001, &[F(1.0), F(2.0), F(3.0), F(4.0)]));
        assert_eq!(geometry(&zm).unwrap(), Geometry::Point(Point::new(1.0, 2.0)));
        let ewkb = blob(true, 0, false, &[], &wkb(true, 0x8000_0001, &[F(1.0), F(2.0), F(3.0)]));
        assert_eq!(geometry(&ewkb).unwrap(), Geometry::Point(Point::new(1.0, 2.0)));
        // A MultiPolygon Z whose parts are PolygonZ.
        let ring: Vec<WkbValue> = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 0.0)].iter().flat_map(|&(x, y)| [F(x), F(y), F(9.0)]).collect();
        let mut poly = vec![N(1), N(4)];
        poly.extend(ring);
        let multi = blob(true, 0, false, &[], &wkb(true, 1006, &[N(1), Raw(wkb(true, 1003, &poly))]));
        let Geometry::MultiPolygon(m) = geometry(&multi).unwrap() else { panic!("a multipolygon") };
        assert_eq!(m.0[0].exterior().0[2], Coord { x: 1.0, y: 1.0 });
    }

    proptest::proptest! {
        /// Any bytes after a valid header (or a mangled one) are a geometry or a problem, never
        /// a panic or a count-sized allocation.
        #[test]
        fn arbitrary_blobs_never_panic(flags in 0u8..=255, body in proptest::collection::vec(0u8..=255, 0..200), kind in 0u32..8, count in proptest::prelude::any::<u32>()) {
            let mut b = b"GP\x00".to_vec();
            b.push(flags);
            b.extend(4549u32.to_le_bytes());
            b.push(1);
            b.extend((kind + 1000 * (count % 4)).to_le_bytes());
            b.extend(count.to_le_bytes());
            b.extend(&body);
            let _ = geometry(&b);
            let _ = geometry(&b[..b.len().min(8 + body.len() / 2)]);
        }
    }

    #[test]
    fn bad_blobs_are_per_feature_problems() {
        let point = wkb(true, 1, &[F(1.0), F(2.0)]);
        let empty = blob(true, 0, true, &[], &wkb(true, 1, &[F(f64::NAN), F(f64::NAN)]));
        assert!(blob_header(&empty).unwrap().empty);
        let cases: Vec<(&str, Vec<u8>, IssueKind)> = vec![
            ("empty flag", empty, IssueKind::InvalidGeometry),
            ("NaN point", blob(true, 0, false, &[], &wkb(true, 1, &[F(f64::NAN), F(f64::NAN)])), IssueKind::InvalidGeometry),
            ("no magic", b"XX\x00\x01\x00\x00\x00\x00".to_vec(), IssueKind::InvalidGeometry),
            ("short", b"GP\x00".to_vec(), IssueKind::InvalidGeometry),
            ("envelope code 5", blob(true, 5, false, &[], &point), IssueKind::InvalidGeometry),
            ("truncated WKB", blob(true, 0, false, &[], &point[..12]), IssueKind::InvalidGeometry),
            ("huge count", blob(true, 0, false, &[], &wkb(true, 3, &[N(u32::MAX)])), IssueKind::InvalidGeometry),
            (
                "open ring",
                blob(true, 0, false, &[], &wkb(true, 3, &[N(1), N(4), F(0.0), F(0.0), F(1.0), F(0.0), F(1.0), F(1.0), F(0.5), F(0.5)])),
                IssueKind::InvalidGeometry,
            ),
            ("trailing bytes", blob(true, 0, false, &[], &[point.clone(), vec![0]].concat()), IssueKind::InvalidGeometry),
            ("line", blob(true, 0, false, &[], &wkb(true, 2, &[N(2), F(0.0), F(0.0), F(1.0), F(1.0)])), IssueKind::WrongGeometryType),
        ];
        for (what, b, kind) in cases {
            let (got, message) = geometry(&b).expect_err(what);
            assert_eq!(got, kind, "{what}: {message}");
        }
    }
}
