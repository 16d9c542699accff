//! The `.dbf` of a Shapefile: its header, the encoding of its texts, and each attribute as text
//! (see the parent module for the rules).

use std::borrow::Cow;
use std::io::{self, Read};

use super::{read_error, unreadable};
use crate::ingest::{IngestError, number_text};

pub(super) struct DbfField {
    pub(super) index: usize,
    /// Raw bytes of the name (up to the first NUL).
    pub(super) name: Vec<u8>,
    pub(super) kind: u8,
    /// Offset in the record (after the deletion flag at 0) and length.
    pub(super) offset: usize,
    pub(super) len: usize,
}

/// What the `.dbf`'s header says: its fields and the layout of its records.
pub(super) struct DbfHeader {
    pub(super) fields: Vec<DbfField>,
    pub(super) count: usize,
    pub(super) header_len: usize,
    pub(super) record_len: usize,
    /// The language driver id (byte 29): 0x4D is code page 936 (GBK).
    pub(super) ldid: u8,
}

impl DbfHeader {
    /// Reads the header of a `.dbf` of `len` bytes (32 bytes, then 32-byte field descriptors up
    /// to 0x0D), leaving `reader` at the first record.
    pub(super) fn read(reader: &mut impl Read, len: u64) -> Result<DbfHeader, IngestError> {
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
    pub(super) fn texts_are_utf8(&self, mut reader: impl Read) -> Result<bool, IngestError> {
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

pub(super) fn trim(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.split(|&b| b == 0).next().unwrap_or(&[]);
    let start = bytes.iter().position(|&b| b != b' ').unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|&b| b != b' ').map_or(start, |e| e + 1);
    &bytes[start..end.max(start)]
}

/// How the `.dbf`'s text is decoded.
pub(super) enum TextEncoding {
    /// The `.cpg` says UTF-8.
    Utf8Declared,
    /// Another encoding, declared by the `.cpg` or the language driver, or guessed (no `.cpg`).
    Other(&'static encoding_rs::Encoding),
}

impl TextEncoding {
    /// The encoding the `.cpg` label names, else the one the language driver names, else UTF-8
    /// if `texts_are_utf8` (a pass over the `.dbf`, run only then) says so, else GBK.
    pub(super) fn choose(
        cpg: Option<&str>,
        header: &DbfHeader,
        texts_are_utf8: impl FnOnce() -> Result<bool, IngestError>,
    ) -> Result<TextEncoding, IngestError> {
        if let Some(label) = cpg {
            let upper = label.to_ascii_uppercase().replace(['-', '_', ' '], "");
            return match upper.as_str() {
                "UTF8" | "65001" => Ok(TextEncoding::Utf8Declared),
                "GBK" | "936" | "CP936" | "ANSI936" | "GB2312" | "GB18030" | "54936" | "EUCCN" => Ok(TextEncoding::Other(encoding_rs::GB18030)),
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

    pub(super) fn decode(&self, bytes: &[u8], what: impl FnOnce() -> String) -> Result<String, IngestError> {
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
pub(super) fn value(field: &DbfField, raw: &[u8], encoding: &TextEncoding, name: &str, record: usize) -> Result<Option<String>, IngestError> {
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
pub(super) fn foxpro_date_time(raw: &[u8]) -> Option<String> {
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
