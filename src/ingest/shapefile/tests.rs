use crate::ingest::collect;
use std::io::Write;

use ::shapefile::{Point as ShpPoint, PolygonRing, ShapeWriter};

use geo_types::{Coord, Geometry, Point};

use super::dbf::foxpro_date_time;
use super::shp::group_rings;
use super::*;
use crate::ingest::IssueKind;

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
        d[11] = if i == names.len() - 1 && *name == b"d" {
            b'D'
        } else if name.starts_with(b"num_") {
            b'N'
        } else {
            b'C'
        };
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
    let mp =
        group_rings(vec![ccw(c(&[(0., 0.), (0., 10.), (10., 10.), (10., 0.), (0., 0.)])), c(&[(2., 2.), (8., 2.), (8., 8.), (2., 8.), (2., 2.)])]).unwrap();
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
