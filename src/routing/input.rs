//! A case as a client sends it — a JSON object (the body of `POST /v1/cases/route`, an item of
//! a batch, a line of `citygrid route --file`) or a row of a case CSV — read into a
//! [`CaseInput`]. Used by the HTTP handlers and the command line alike; every problem is an
//! [`InputError`] that says which field and why (HTTP answers it as a 400).
//!
//! Fields ([`FIELDS`]): the point — `lon`, `lat` in a datum `crs` (wgs84 by default), or `x`,
//! `y` (easting, northing in metres) in a projected `crs` such as `EPSG:4549`, read exactly as
//! the lookups read theirs ([`PointInput`]); required unless `component_code` is given —,
//! `accuracy` (metres), exactly one of `event_type`, `component_class`, `component_code`,
//! `urgency` (一般 by default), and `reported_at` (RFC 3339 with an offset). `null` counts as
//! absent; text is trimmed. A CSV row leaves empty cells out and reads `lon`, `lat`, `x`, `y`
//! and `accuracy` as numbers when they parse as such (so `lon=abc` is the same "must be a
//! number" error as in JSON).

use chrono::DateTime;
use serde_json::{Map, Value, json};

use super::route::{CaseInput, CaseSubject};
use super::rules::Urgency;
use crate::lookup::{LookupError, PointInput};

/// The fields a case may have (besides a batch item's `id`).
pub const FIELDS: [&str; 11] = ["lon", "lat", "x", "y", "crs", "accuracy", "event_type", "component_class", "component_code", "urgency", "reported_at"];

/// Why a case cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A problem of the case as written: a stable `code` (`invalid_json`, `invalid_csv`,
    /// `invalid_parameter`, `missing_parameter`, `unknown_crs`), a sentence, and details (the
    /// parameter, the value, the accepted values…).
    #[error("{message}")]
    Invalid { code: &'static str, message: String, details: Value },
    /// A point that is not one (longitude or latitude out of range).
    #[error(transparent)]
    Lookup(#[from] LookupError),
}

impl InputError {
    /// A problem of the case as written: its `code`, a sentence and the details.
    pub fn new(code: &'static str, message: impl Into<String>, details: Value) -> InputError {
        InputError::Invalid { code, message: message.into(), details }
    }
}

fn invalid(parameter: &str, value: &Value, message: impl Into<String>) -> InputError {
    InputError::new("invalid_parameter", message, json!({"parameter": parameter, "value": value}))
}

fn missing(parameter: &'static str) -> InputError {
    InputError::new("missing_parameter", format!("{parameter} is required"), json!({"parameter": parameter}))
}

/// A case from its JSON object (without a batch item's `id`).
pub fn parse_case(value: &Value) -> Result<CaseInput, InputError> {
    let Value::Object(map) = value else {
        return Err(InputError::new("invalid_json", "the body must be a JSON object", json!({})));
    };
    parse_fields(map)
}

fn parse_fields(map: &Map<String, Value>) -> Result<CaseInput, InputError> {
    if let Some(k) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(InputError::new(
            "invalid_parameter",
            format!("unknown field {k}; accepted: {}", FIELDS.join(", ")),
            json!({"parameter": k, "accepted": FIELDS}),
        ));
    }
    let get = |k: &str| map.get(k).filter(|v| !v.is_null());
    let number = |k: &'static str| -> Result<Option<f64>, InputError> {
        get(k).map(|v| v.as_f64().ok_or_else(|| invalid(k, v, format!("{k} must be a number")))).transpose()
    };
    let text = |k: &'static str| -> Result<Option<&str>, InputError> {
        get(k).map(|v| v.as_str().map(str::trim).ok_or_else(|| invalid(k, v, format!("{k} must be a string")))).transpose()
    };
    let point = PointInput { lon: number("lon")?, lat: number("lat")?, x: number("x")?, y: number("y")?, crs: text("crs")? }.resolve()?;
    let mut subjects: Vec<(&str, &str)> = Vec::with_capacity(1);
    for k in ["event_type", "component_class", "component_code"] {
        if let Some(v) = text(k)? {
            subjects.push((k, v));
        }
    }
    let subject = match subjects.as_slice() {
        [] => {
            return Err(InputError::new(
                "missing_parameter",
                "one of event_type, component_class, component_code is required",
                json!({"parameter": "event_type"}),
            ));
        }
        [(k, v)] => match *k {
            "event_type" => CaseSubject::Event(v.to_string()),
            "component_class" => CaseSubject::ComponentClass(v.to_string()),
            _ => CaseSubject::Component(v.to_string()),
        },
        many => {
            let names: Vec<&str> = many.iter().map(|(k, _)| *k).collect();
            return Err(InputError::new(
                "invalid_parameter",
                format!("give exactly one of event_type, component_class, component_code (got {})", names.join(", ")),
                json!({"parameter": names[1]}),
            ));
        }
    };
    if point.is_none() && !matches!(subject, CaseSubject::Component(_)) {
        return Err(missing("lon"));
    }
    let urgency = text("urgency")?
        .map(|u| Urgency::parse(u).ok_or_else(|| invalid("urgency", &json!(u), "urgency must be 一般, 紧急 or 非常紧急 (normal, urgent, very_urgent)")))
        .transpose()?;
    let reported_at = text("reported_at")?
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map_err(|_| invalid("reported_at", &json!(t), "reported_at must be an RFC 3339 time with offset, e.g. 2026-11-23T10:00:00+08:00"))
        })
        .transpose()?;
    Ok(CaseInput { point, accuracy_m: number("accuracy")?.unwrap_or(0.0), subject, urgency, reported_at })
}

/// A batch item (a JSON value) split into its `id` (`null` when it has none) and the case as
/// sent without it, which is what the audit log keeps; an item that is not an object is an
/// `invalid_json` error.
pub fn split_id(item: Value) -> (Value, Result<Value, InputError>) {
    match item {
        Value::Object(mut m) => {
            let id = m.remove("id").unwrap_or(Value::Null);
            (id, Ok(Value::Object(m)))
        }
        _ => (Value::Null, Err(InputError::new("invalid_json", "each case must be a JSON object", json!({})))),
    }
}

/// The header of a case CSV: its column names (trimmed), known ones only (`id` and
/// [`FIELDS`]).
pub fn csv_header(line: &[u8]) -> Result<Vec<String>, InputError> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(line);
    let record = reader
        .records()
        .next()
        .transpose()
        .map_err(|e| InputError::new("invalid_csv", format!("the CSV header cannot be read: {e}"), json!({})))?
        .unwrap_or_default();
    let header: Vec<String> = record.iter().map(|h| h.trim().to_owned()).collect();
    if let Some(h) = header.iter().find(|h| h.as_str() != "id" && !FIELDS.contains(&h.as_str())) {
        return Err(InputError::new("invalid_csv", format!("unknown column {h}; accepted: id, {}", FIELDS.join(", ")), json!({"column": h})));
    }
    Ok(header)
}

/// One CSV row (`bytes`, one record) under `header` as a case object: empty cells left out,
/// `lon`/`lat`/`accuracy` as numbers when they read as such, `id` as text. `line` is the row's
/// number in the file (the header is line 1). Gives the row's `id` (`null` when empty) and the
/// case; on error, the row's `id` (if readable, also empty) and why.
pub fn csv_case(header: &[String], bytes: &[u8], line: usize) -> Result<(Value, Value), Box<(Value, InputError)>> {
    ROW.with_borrow_mut(|row| csv_case_with(row, header, bytes, line))
}

thread_local! {
    /// One CSV row reader per thread, reset for each row: building a reader (its DFA and
    /// buffers) per row cost more than reading the row.
    static ROW: std::cell::RefCell<RowReader> = std::cell::RefCell::new(RowReader::new());
}

/// Reads one CSV record (RFC 4180 quoting, as the `csv` crate reads it) into reused buffers.
struct RowReader {
    core: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
}

impl RowReader {
    fn new() -> RowReader {
        RowReader { core: csv_core::Reader::new(), out: vec![0; 256], ends: vec![0; 16] }
    }

    /// The fields of the first record in `bytes` (none for an empty row), or `None` when they
    /// are not UTF-8.
    fn fields<'a>(&'a mut self, mut bytes: &[u8]) -> Option<Vec<&'a str>> {
        use csv_core::ReadRecordResult as R;
        self.core.reset();
        let (mut nout, mut nend) = (0, 0);
        loop {
            let (res, nin, o, e) = self.core.read_record(bytes, &mut self.out[nout..], &mut self.ends[nend..]);
            bytes = &bytes[nin..];
            nout += o;
            nend += e;
            match res {
                R::InputEmpty => continue, // the next call, with no input left, ends the record
                R::OutputFull => self.out.resize(self.out.len() * 2, 0),
                R::OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
                R::Record => break,
                R::End => {
                    nend = 0;
                    break;
                }
            }
        }
        // Each field on its own: the bytes of two fields may join into a character.
        let out = &self.out[..nout];
        let mut start = 0;
        self.ends[..nend]
            .iter()
            .map(|&end| {
                // `ends` count from the start of this record's output
                let field = std::str::from_utf8(&out[start..end]).ok();
                start = end;
                field
            })
            .collect()
    }
}

fn csv_case_with(reader: &mut RowReader, header: &[String], bytes: &[u8], line: usize) -> Result<(Value, Value), Box<(Value, InputError)>> {
    let Some(row) = reader.fields(bytes) else {
        return Err(Box::new((Value::Null, InputError::new("invalid_csv", format!("row {line} cannot be read: it is not UTF-8"), json!({"line": line})))));
    };
    let id = header.iter().position(|h| h == "id").and_then(|i| row.get(i)).map(|v| Value::from(v.trim())).unwrap_or(Value::Null);
    if row.len() != header.len() {
        return Err(Box::new((
            id,
            InputError::new(
                "invalid_csv",
                format!("row {line} has {} fields; the header has {}", row.len(), header.len()),
                json!({"line": line, "fields": row.len(), "expected": header.len()}),
            ),
        )));
    }
    // An empty id cell is no id (as a JSON item without one).
    let id = if id.as_str() == Some("") { Value::Null } else { id };
    let mut case = Map::new();
    for (name, cell) in header.iter().zip(row.iter()) {
        let cell = cell.trim();
        if cell.is_empty() || name == "id" {
            continue;
        }
        let value = match name.as_str() {
            "lon" | "lat" | "x" | "y" | "accuracy" => cell.parse::<f64>().map(Value::from).unwrap_or_else(|_| Value::from(cell)),
            _ => Value::from(cell),
        };
        case.insert(name.clone(), value);
    }
    Ok((id, Value::Object(case)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(e: &InputError) -> &'static str {
        match e {
            InputError::Invalid { code, .. } => code,
            InputError::Lookup(LookupError::UnknownCrs { .. }) => "unknown_crs",
            InputError::Lookup(LookupError::MissingCoordinate(_)) => "missing_parameter",
            InputError::Lookup(LookupError::WrongPair { .. }) => "wrong_pair",
            InputError::Lookup(_) => "lookup",
        }
    }

    #[test]
    fn a_case_reads_from_json_with_each_problem_named() {
        let c = parse_case(&json!({"lon": 120.6, "lat": 31.3, "event_type": " 0102 ", "urgency": "urgent", "accuracy": null})).unwrap();
        assert_eq!(c.subject, CaseSubject::Event("0102".into()));
        assert_eq!(c.urgency, Some(Urgency::Urgent));
        assert_eq!(c.accuracy_m, 0.0);
        let cases = [
            (json!([1]), "invalid_json"),
            (json!({"lon": 1, "lat": 2, "event_type": "0102", "colour": 1}), "invalid_parameter"),
            (json!({"lon": "x", "lat": 2, "event_type": "0102"}), "invalid_parameter"),
            (json!({"lat": 2, "event_type": "0102"}), "missing_parameter"),
            (json!({"lon": 1, "lat": 2}), "missing_parameter"),
            (json!({"lon": 1, "lat": 2, "event_type": "0102", "component_class": "0101"}), "invalid_parameter"),
            (json!({"lon": 1, "lat": 2, "event_type": "0102", "crs": "EPSG:9999"}), "unknown_crs"),
            (json!({"lon": 1, "lat": 2, "event_type": "0102", "reported_at": "yesterday"}), "invalid_parameter"),
            (json!({"lon": 200, "lat": 2, "event_type": "0102"}), "lookup"),
            (json!({"x": 500000, "y": 3400000, "event_type": "0102"}), "wrong_pair"),
            (json!({"x": 500000, "crs": "EPSG:4549", "event_type": "0102"}), "missing_parameter"),
            (json!({"event_type": "0102"}), "missing_parameter"),
        ];
        for (input, expected) in cases {
            assert_eq!(code(&parse_case(&input).unwrap_err()), expected, "{input}");
        }
        assert!(parse_case(&json!({"component_code": "3205060010010001"})).is_ok(), "a component code needs no point");
    }

    /// The fields as the `csv` crate reads the row with a reader of its own (what `csv_case`
    /// did before it reused one reader): the oracle of the reused reader.
    fn fields_by_csv_crate(bytes: &[u8]) -> Option<Vec<String>> {
        let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(bytes);
        match reader.records().next() {
            Some(Ok(row)) => Some(row.iter().map(str::to_owned).collect()),
            Some(Err(_)) => None,
            None => Some(vec![]),
        }
    }

    proptest::proptest! {
        /// Quotes, doubled quotes, separators inside quotes, CR/LF, a BOM, long fields (past the
        /// reader's first buffers), invalid UTF-8: the reused reader gives the fields the `csv`
        /// crate gives, row after row (nothing carried over from the previous row).
        #[test]
        fn the_reused_row_reader_reads_as_the_csv_crate(rows in proptest::collection::vec(
            proptest::collection::vec(proptest::prop_oneof![
                proptest::strategy::Just(b'"'), proptest::strategy::Just(b','), proptest::strategy::Just(b'\r'),
                proptest::strategy::Just(b'\n'), proptest::strategy::Just(b' '), proptest::strategy::Just(0xEF),
                proptest::strategy::Just(0xBB), proptest::strategy::Just(0xBF), proptest::strategy::Just(0xFF),
                b'a'..=b'z', b'0'..=b'9',
            ], 0..600), 1..8)) {
            let mut reader = RowReader::new();
            for row in &rows {
                let ours = reader.fields(row).map(|f| f.into_iter().map(str::to_owned).collect::<Vec<_>>());
                proptest::prop_assert_eq!(ours, fields_by_csv_crate(row), "row {:?}", String::from_utf8_lossy(row));
            }
        }
    }

    #[test]
    fn a_csv_row_reads_as_the_json_object_would() {
        let header = csv_header(b"id, lon,lat,event_type,urgency").unwrap();
        let (id, case) = csv_case(&header, b"A7,120.5,31.25,0102,", 2).unwrap();
        assert_eq!(id, json!("A7"));
        assert_eq!(case, json!({"lon": 120.5, "lat": 31.25, "event_type": "0102"}), "no id, no empty cells");
        let (id, e) = *csv_case(&header, b"A8,120.5", 3).unwrap_err();
        assert_eq!((id, code(&e)), (json!("A8"), "invalid_csv"));
        assert_eq!(code(&csv_header(b"lon,lat,colour").unwrap_err()), "invalid_csv");
        let (_, case) = csv_case(&header, b"A9,abc,31,0102,", 4).unwrap();
        assert_eq!(code(&parse_case(&case).unwrap_err()), "invalid_parameter", "lon=abc: must be a number");
        let (_, case) = csv_case(&header, b" ,120.5,31.25,0102,", 5).unwrap();
        assert_eq!(case, json!({"lon": 120.5, "lat": 31.25, "event_type": "0102"}));
        let (id, case) = split_id(json!({"id": 3, "lon": 1}));
        assert_eq!((id, case.unwrap()), (json!(3), json!({"lon": 1})));
        let (id, case) = split_id(json!("x"));
        assert_eq!((id, code(&case.unwrap_err())), (Value::Null, "invalid_json"));
    }
}
