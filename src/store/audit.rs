//! The append-only audit log of routing decisions: `DIR/audit/routes-YYYY-MM-DD.jsonl`, one
//! JSON object per line, one file per UTC day.
//!
//! # Durability
//! [`AuditLog::append`] returns only after its lines are on disk (`fdatasync`). Concurrent
//! callers share one sync (group commit): whoever finds no sync running writes everything
//! queued so far and syncs once, the others wait for it. A crash can therefore tear at most
//! the last line of a file, and only of lines whose `append` had not returned. On open, a torn
//! tail (a file not ending in a newline) is cut back to the last whole line, so new lines
//! never glue onto it; readers skip any line that is not a JSON object and count it.
//!
//! Records carry their own time in the field `at` (RFC 3339); [`AuditLog::read`] filters on
//! it and on any predicate the caller gives.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use serde_json::Value;

use super::StoreError;

const FOLDER: &str = "audit";
const PREFIX: &str = "routes-";
const SUFFIX: &str = ".jsonl";

/// An append-only, crash-safe log of JSON records in a data directory.
pub struct AuditLog {
    dir: PathBuf,
    state: Mutex<State>,
    synced: Condvar,
}

struct State {
    /// Lines queued and not yet written, each ending in `\n`, with their UTC day.
    queue: Vec<(NaiveDate, Vec<u8>)>,
    /// Sequence number of the last queued batch.
    queued: u64,
    /// Sequence number up to which batches are on disk (or failed: see `failed`).
    done: u64,
    /// A sync is running.
    busy: bool,
    /// The failure of the last sync, with the sequence number it covered.
    failed: Option<(u64, String)>,
    /// The day file open for appends.
    file: Option<(NaiveDate, File)>,
}

/// Records read back, and how many lines could not be read.
#[derive(Debug, Default)]
pub struct AuditRead {
    pub records: Vec<Value>,
    /// Lines that are not a JSON object (a torn tail after a crash, or a hand edit).
    pub skipped_lines: usize,
}

impl AuditLog {
    /// Opens (creating) `dir/audit`, repairing a torn tail in every day file.
    pub fn open(data_dir: &Path) -> Result<AuditLog, StoreError> {
        let dir = data_dir.join(FOLDER);
        std::fs::create_dir_all(&dir).map_err(StoreError::io(&dir))?;
        for (_, path) in day_files(&dir)? {
            repair_tail(&path)?;
        }
        Ok(AuditLog {
            dir,
            state: Mutex::new(State { queue: Vec::new(), queued: 0, done: 0, busy: false, failed: None, file: None }),
            synced: Condvar::new(),
        })
    }

    /// The folder of the day files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends records (each with an `at` time) and returns once they are durable.
    pub fn append(&self, records: &[Value]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut lines = Vec::with_capacity(records.len());
        for r in records {
            let day = record_time(r).map_or_else(|| Utc::now().date_naive(), |t| t.with_timezone(&Utc).date_naive());
            let mut line = serde_json::to_vec(r).map_err(|e| StoreError::Invalid(format!("audit record: {e}")))?;
            line.push(b'\n');
            lines.push((day, line));
        }
        let mut st = self.state.lock().expect("audit lock");
        st.queue.extend(lines);
        st.queued += 1;
        let mine = st.queued;
        loop {
            if st.done >= mine {
                return match &st.failed {
                    Some((upto, message)) if *upto >= mine => Err(StoreError::Write { path: self.dir.clone(), message: message.clone() }),
                    _ => Ok(()),
                };
            }
            if !st.busy {
                st.busy = true;
                let batch = std::mem::take(&mut st.queue);
                let upto = st.queued;
                let mut file = st.file.take();
                drop(st);
                let result = self.write_batch(&mut file, &batch);
                st = self.state.lock().expect("audit lock");
                st.file = file;
                st.busy = false;
                st.done = upto;
                st.failed = result.err().map(|e| (upto, e.to_string()));
                self.synced.notify_all();
                continue;
            }
            st = self.synced.wait(st).expect("audit lock");
        }
    }

    fn write_batch(&self, file: &mut Option<(NaiveDate, File)>, batch: &[(NaiveDate, Vec<u8>)]) -> Result<(), StoreError> {
        let mut i = 0;
        while i < batch.len() {
            let day = batch[i].0;
            if file.as_ref().is_none_or(|(d, _)| *d != day) {
                let path = self.day_path(day);
                let f = OpenOptions::new().create(true).append(true).open(&path).map_err(StoreError::io(&path))?;
                *file = Some((day, f));
                // A new day file must survive a crash as a directory entry too.
                super::atomic::sync_dir(&self.dir)?;
            }
            let (_, f) = file.as_mut().expect("opened");
            let mut buf = Vec::new();
            while i < batch.len() && batch[i].0 == day {
                buf.extend_from_slice(&batch[i].1);
                i += 1;
            }
            let path = self.day_path(day);
            f.write_all(&buf).map_err(StoreError::io(&path))?;
            f.sync_data().map_err(StoreError::io(&path))?;
        }
        Ok(())
    }

    fn day_path(&self, day: NaiveDate) -> PathBuf {
        self.dir.join(format!("{PREFIX}{}{SUFFIX}", day.format("%Y-%m-%d")))
    }

    /// Records with `since ≤ at < until` (either bound optional) that `keep` accepts, oldest
    /// file first and in append order within a file.
    pub fn read(
        &self,
        since: Option<DateTime<FixedOffset>>,
        until: Option<DateTime<FixedOffset>>,
        mut keep: impl FnMut(&Value) -> bool,
    ) -> Result<AuditRead, StoreError> {
        let mut out = AuditRead::default();
        let first_day = since.map(|t| t.with_timezone(&Utc).date_naive());
        let last_day = until.map(|t| t.with_timezone(&Utc).date_naive());
        for (day, path) in day_files(&self.dir)? {
            if first_day.is_some_and(|d| day < d) || last_day.is_some_and(|d| day > d) {
                continue;
            }
            let file = File::open(&path).map_err(StoreError::io(&path))?;
            for line in BufReader::new(file).split(b'\n') {
                let line = line.map_err(StoreError::io(&path))?;
                if line.is_empty() {
                    continue;
                }
                let Ok(record @ Value::Object(_)) = serde_json::from_slice::<Value>(&line) else {
                    out.skipped_lines += 1;
                    continue;
                };
                let at = record_time(&record);
                if since.is_some_and(|s| at.is_none_or(|t| t < s)) || until.is_some_and(|u| at.is_none_or(|t| t >= u)) {
                    continue;
                }
                if keep(&record) {
                    out.records.push(record);
                }
            }
        }
        Ok(out)
    }
}

fn record_time(r: &Value) -> Option<DateTime<FixedOffset>> {
    r.get("at").and_then(Value::as_str).and_then(|s| DateTime::parse_from_rfc3339(s).ok())
}

/// The day files of `dir`, oldest first.
fn day_files(dir: &Path) -> Result<Vec<(NaiveDate, PathBuf)>, StoreError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(StoreError::io(dir))? {
        let entry = entry.map_err(StoreError::io(dir))?;
        let name = entry.file_name();
        let Some(day) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|n| n.strip_suffix(SUFFIX))
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        else {
            continue;
        };
        files.push((day, entry.path()));
    }
    files.sort();
    Ok(files)
}

/// Cuts a file that does not end in a newline back to its last whole line.
fn repair_tail(path: &Path) -> Result<(), StoreError> {
    let mut f = OpenOptions::new().read(true).write(true).open(path).map_err(StoreError::io(path))?;
    let len = f.metadata().map_err(StoreError::io(path))?.len();
    if len == 0 {
        return Ok(());
    }
    // Scan back in blocks for the last newline.
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    let mut keep = 0;
    let mut first = true;
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        f.seek(SeekFrom::Start(start)).map_err(StoreError::io(path))?;
        std::io::Read::read_exact(&mut f, &mut buf[..n]).map_err(StoreError::io(path))?;
        if first && buf[n - 1] == b'\n' {
            return Ok(());
        }
        first = false;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            keep = start + i as u64 + 1;
            break;
        }
        end = start;
    }
    tracing::warn!(file = %path.display(), cut_bytes = len - keep, "audit log: cutting a torn last line (a crash during an append)");
    f.set_len(keep).map_err(StoreError::io(path))?;
    f.sync_all().map_err(StoreError::io(path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(at: &str, unit: &str) -> Value {
        json!({"at": at, "unit": unit, "case_type": "0102"})
    }

    #[test]
    fn appended_records_read_back_in_order_filtered_by_time_and_predicate() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        log.append(&[rec("2026-11-20T23:30:00+08:00", "a"), rec("2026-11-21T09:00:00+08:00", "b")]).unwrap();
        log.append(&[rec("2026-11-22T09:00:00+08:00", "a")]).unwrap();
        // 2026-11-20T23:30+08:00 is 15:30 UTC on the 20th: three day files.
        let mut names: Vec<String> =
            std::fs::read_dir(log.dir()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["routes-2026-11-20.jsonl", "routes-2026-11-21.jsonl", "routes-2026-11-22.jsonl"]);

        let all = log.read(None, None, |_| true).unwrap();
        let units: Vec<&str> = all.records.iter().map(|r| r["unit"].as_str().unwrap()).collect();
        assert_eq!(units, ["a", "b", "a"]);
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap();
        let window = log.read(Some(t("2026-11-21T00:00:00+08:00")), Some(t("2026-11-22T09:00:00+08:00")), |_| true).unwrap();
        assert_eq!(window.records.len(), 1, "since inclusive, until exclusive");
        assert_eq!(window.records[0]["unit"], "b");
        let only_a = log.read(None, None, |r| r["unit"] == "a").unwrap();
        assert_eq!(only_a.records.len(), 2);
    }

    #[test]
    fn a_torn_last_line_is_cut_on_open_and_later_appends_stay_readable() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = AuditLog::open(dir.path()).unwrap();
            log.append(&[rec("2026-11-23T10:00:00+08:00", "a")]).unwrap();
        }
        // A crash in the middle of the next line.
        let path = dir.path().join("audit/routes-2026-11-23.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"at":"2026-11-23T10:01:00+08:00","un"#).unwrap();
        drop(f);
        let log = AuditLog::open(dir.path()).unwrap();
        log.append(&[rec("2026-11-23T10:02:00+08:00", "c")]).unwrap();
        let read = log.read(None, None, |_| true).unwrap();
        let units: Vec<&str> = read.records.iter().map(|r| r["unit"].as_str().unwrap()).collect();
        assert_eq!(units, ["a", "c"]);
        assert_eq!(read.skipped_lines, 0);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(!text.contains("\"un\n") && !text.contains("\"un{"), "the torn bytes are gone: {text}");
    }

    #[test]
    fn concurrent_appends_all_land_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = std::sync::Arc::new(AuditLog::open(dir.path()).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        log.append(&[json!({"at": "2026-11-23T10:00:00+08:00", "t": t, "i": i})]).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let read = log.read(None, None, |_| true).unwrap();
        assert_eq!(read.records.len(), 400);
        let mut seen: Vec<(i64, i64)> = read.records.iter().map(|r| (r["t"].as_i64().unwrap(), r["i"].as_i64().unwrap())).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 400);
        // Each thread's records are in its own order.
        for t in 0..8 {
            let mine: Vec<i64> = read.records.iter().filter(|r| r["t"] == t).map(|r| r["i"].as_i64().unwrap()).collect();
            assert_eq!(mine, (0..50).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_line_that_is_not_json_is_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        log.append(&[rec("2026-11-23T10:00:00+08:00", "a")]).unwrap();
        let path = dir.path().join("audit/routes-2026-11-23.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"not json\n").unwrap();
        let read = log.read(None, None, |_| true).unwrap();
        assert_eq!((read.records.len(), read.skipped_lines), (1, 1));
    }
}
