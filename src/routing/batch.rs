//! A batch of cases as it arrives (`POST /v1/cases/route:batch`, `citygrid route --file`): a
//! JSON array, one JSON case per line (NDJSON), or a CSV with a header of the case fields.
//! [`BatchReader`] takes the bytes chunk by chunk, finds where each case is without parsing it,
//! and refuses the batch as soon as it passes [`MAX_BATCH`] cases or [`MAX_BATCH_BYTES`] (so an
//! over-limit body is never held whole). [`Batch::case`] then reads one case when it is routed:
//! a bad case is that case's error, not the batch's.

use serde_json::{Value, json};

use super::input::{self, InputError};

/// Most cases in one batch.
pub const MAX_BATCH: usize = 100_000;
/// Body limit of `POST /v1/cases/route:batch` (100,000 cases of ~300 bytes).
pub const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;
/// Why a batch as a whole is refused.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// Over [`MAX_BATCH_BYTES`]: at least `bytes` bytes.
    #[error("a batch is at most {} MiB; this one has {bytes} bytes or more: split it", MAX_BATCH_BYTES >> 20)]
    TooManyBytes { bytes: u64 },
    /// Over [`MAX_BATCH`] cases: at least `cases`.
    #[error("a batch holds at most {MAX_BATCH} cases; this one has more ({cases} read so far): split it")]
    TooManyCases { cases: usize },
    /// Not a batch of its format (`invalid_json`, `invalid_csv`), or no case in it (`empty_batch`).
    #[error(transparent)]
    Input(#[from] InputError),
}

fn invalid_json(message: impl Into<String>) -> InputError {
    InputError::new("invalid_json", message, json!({}))
}

/// How the cases of a batch are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchFormat {
    /// A JSON array of case objects.
    Json,
    /// One JSON case object per line.
    Ndjson,
    /// A header row of case fields (and an optional `id`), one case per row.
    Csv,
}

impl BatchFormat {
    /// The format of a media type's essence (`""`: JSON).
    pub fn from_media_type(essence: &str) -> Option<BatchFormat> {
        match essence {
            "application/json" | "" => Some(BatchFormat::Json),
            "application/x-ndjson" | "application/ndjson" | "application/jsonl" => Some(BatchFormat::Ndjson),
            "text/csv" => Some(BatchFormat::Csv),
            _ => None,
        }
    }
}

/// Reads a batch as it arrives: keeps its bytes, finds where each case is, and refuses it as
/// soon as it passes [`MAX_BATCH`] cases or [`MAX_BATCH_BYTES`].
pub struct BatchReader {
    format: BatchFormat,
    buf: Vec<u8>,
    /// Where the scan stopped.
    pos: usize,
    /// Byte ranges of the cases (JSON, NDJSON) or of the CSV records (the header first).
    ranges: Vec<(usize, usize)>,
    /// Start of the current item: a JSON array element, a line or a CSV record.
    item_start: Option<usize>,
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// JSON: the array opened / closed.
    opened: bool,
    closed: bool,
    /// Why the bytes are not a batch (reported at the end, or at once for JSON).
    broken: Option<String>,
}

impl BatchReader {
    /// A reader of `format`, expecting about `size_hint` bytes.
    pub fn new(format: BatchFormat, size_hint: usize) -> BatchReader {
        BatchReader {
            format,
            buf: Vec::with_capacity(size_hint.min(MAX_BATCH_BYTES)),
            pos: 0,
            ranges: Vec::new(),
            item_start: None,
            depth: 0,
            in_string: false,
            escaped: false,
            opened: false,
            closed: false,
            broken: None,
        }
    }

    fn cases(&self) -> usize {
        match self.format {
            BatchFormat::Csv => self.ranges.len().saturating_sub(1),
            _ => self.ranges.len(),
        }
    }

    /// Adds the next bytes of the body: `413 batch_too_large` once past a limit.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), BatchError> {
        if self.buf.len() + chunk.len() > MAX_BATCH_BYTES {
            return Err(BatchError::TooManyBytes { bytes: (self.buf.len() + chunk.len()) as u64 });
        }
        if self.buf.is_empty() {
            let chunk = chunk.strip_prefix("\u{feff}".as_bytes()).unwrap_or(chunk);
            self.buf.extend_from_slice(chunk);
        } else {
            self.buf.extend_from_slice(chunk);
        }
        self.scan()?;
        if self.cases() > MAX_BATCH {
            return Err(BatchError::TooManyCases { cases: self.cases() });
        }
        Ok(())
    }

    fn scan(&mut self) -> Result<(), InputError> {
        while self.pos < self.buf.len() {
            let i = self.pos;
            let b = self.buf[i];
            self.pos += 1;
            match self.format {
                BatchFormat::Ndjson => {
                    if b == b'\n' {
                        self.end_line(i);
                    } else if self.item_start.is_none() && !b.is_ascii_whitespace() {
                        self.item_start = Some(i);
                    }
                }
                BatchFormat::Csv => {
                    if b == b'"' {
                        self.in_string = !self.in_string;
                    }
                    if b == b'\n' && !self.in_string {
                        self.end_line(i);
                    } else if self.item_start.is_none() && !b.is_ascii_whitespace() {
                        self.item_start = Some(i);
                    }
                }
                BatchFormat::Json => self.scan_json(i, b)?,
            }
        }
        Ok(())
    }

    fn end_line(&mut self, end: usize) {
        if let Some(start) = self.item_start.take() {
            self.ranges.push((start, end));
        }
    }

    fn scan_json(&mut self, i: usize, b: u8) -> Result<(), InputError> {
        let not_array = || invalid_json("a batch is a JSON array of cases");
        if self.in_string {
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
            } else if b == b'"' {
                self.in_string = false;
            }
            return Ok(());
        }
        if b.is_ascii_whitespace() {
            return Ok(());
        }
        if self.closed {
            return Err(invalid_json(format!("the body goes on after the array's closing ] (byte {i})")));
        }
        if !self.opened {
            return if b == b'[' {
                self.opened = true;
                self.depth = 1;
                Ok(())
            } else {
                Err(not_array())
            };
        }
        if self.depth == 1 {
            match b {
                b',' => {
                    let start = self.item_start.take().unwrap_or(i);
                    self.ranges.push((start, i));
                    return Ok(());
                }
                b']' => {
                    if let Some(start) = self.item_start.take() {
                        self.ranges.push((start, i));
                    }
                    self.closed = true;
                    self.depth = 0;
                    return Ok(());
                }
                _ => {
                    if self.item_start.is_none() {
                        self.item_start = Some(i);
                    }
                }
            }
        }
        match b {
            b'"' => self.in_string = true,
            b'[' | b'{' => self.depth += 1,
            b']' | b'}' => self.depth = self.depth.saturating_sub(1).max(1),
            _ => {}
        }
        Ok(())
    }

    /// The whole body is there: the batch, or why it is not one.
    pub fn finish(mut self) -> Result<Batch, BatchError> {
        let end = self.buf.len();
        match self.format {
            BatchFormat::Json => {
                if !self.opened {
                    return Err(invalid_json("a batch is a JSON array of cases").into());
                }
                if !self.closed {
                    return Err(invalid_json("the JSON array of cases is not closed: the body ends inside it").into());
                }
            }
            BatchFormat::Ndjson | BatchFormat::Csv => self.end_line(end),
        }
        if let Some(why) = self.broken.take() {
            return Err(invalid_json(why).into());
        }
        if self.cases() > MAX_BATCH {
            return Err(BatchError::TooManyCases { cases: self.cases() });
        }
        if self.cases() == 0 {
            return Err(InputError::new("empty_batch", "the batch holds no case", json!({})).into());
        }
        let header = match self.format {
            BatchFormat::Csv => {
                let (start, stop) = self.ranges[0];
                Some(input::csv_header(&self.buf[start..stop])?)
            }
            _ => None,
        };
        Ok(Batch { format: self.format, buf: self.buf, ranges: self.ranges, header })
    }
}

/// A batch whose cases are located but not yet parsed: each is read as it is routed.
pub struct Batch {
    format: BatchFormat,
    buf: Vec<u8>,
    ranges: Vec<(usize, usize)>,
    header: Option<Vec<String>>,
}

/// One case of a batch: its JSON object, or its `id` (if readable) and why it is unreadable.
pub type BatchCase = Result<Value, Box<(Value, InputError)>>;

impl Batch {
    /// Reads a whole batch held in memory (a file of the CLI).
    pub fn from_bytes(format: BatchFormat, bytes: &[u8]) -> Result<Batch, BatchError> {
        let mut reader = BatchReader::new(format, bytes.len());
        reader.push(bytes)?;
        reader.finish()
    }

    /// Number of cases.
    pub fn len(&self) -> usize {
        match self.format {
            BatchFormat::Csv => self.ranges.len() - 1,
            _ => self.ranges.len(),
        }
    }

    /// Whether the batch holds no case (never, once read).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cases in order, each parsed when reached.
    pub fn cases(&self) -> impl Iterator<Item = BatchCase> + '_ {
        (0..self.len()).map(|n| self.case(n))
    }

    /// Case `n` (from 0): a JSON item (a CSV row as the object it stands for, its `id` as
    /// text), or its `id` and why it cannot be read.
    pub fn case(&self, n: usize) -> BatchCase {
        let skip = usize::from(self.format == BatchFormat::Csv);
        let (start, end) = self.ranges[n + skip];
        let bytes = &self.buf[start..end];
        match &self.header {
            Some(header) => match input::csv_case(header, bytes, n + 2) {
                Ok((Value::Null, case)) => Ok(case),
                Ok((id, Value::Object(mut case))) => {
                    case.insert("id".to_owned(), id);
                    Ok(Value::Object(case))
                }
                Ok((_, case)) => Ok(case),
                Err(err) => Err(err),
            },
            None => serde_json::from_slice::<Value>(bytes)
                .map_err(|e| Box::new((Value::Null, InputError::new("invalid_json", format!("this case is not JSON: {e}"), json!({"column": e.column()}))))),
        }
    }
}
