//! The audit log of routing decisions: an SQLite database at `DIR/audit/audit.sqlite` holding
//! one [`AuditRecord`] per decision, with per-day and per-month counts for the statistics.
//!
//! # Durability
//! The database runs in WAL mode with `synchronous=FULL`: [`AuditLog::append`] returns only
//! after the transaction holding its records is committed and the WAL synced. Concurrent
//! callers share one transaction (group commit): whoever finds no write running takes every
//! record queued so far, commits them at once, and wakes the others. A crash (SIGKILL, power
//! loss) loses at most records whose `append` had not returned; SQLite rolls an unfinished
//! transaction back when the database is next opened.
//!
//! # Tables (the column mapping of [`AuditRecord`])
//! - `decisions`: one row per decision. `id` INTEGER PRIMARY KEY AUTOINCREMENT (never
//!   reused, also after retention deletes), `at_ms` (unix ms) + `at_offset_s` (the offset to
//!   show, +08:00), `case_kind`, `case_type`, `urgency`, `grid`, `chain` (codes joined by
//!   `/`, district first), `unit`, `unit_code`, `unit_role`, `rule_line`, `rule_scope`,
//!   `zone`, `due` (RFC 3339 text), `versions` and `input` (compact JSON), `warnings` (JSON
//!   array, NULL when none), `outside_coverage` (0/1). Indexes: `(at_ms)` and
//!   `(unit, at_ms)`; pages are read in `(at_ms, id)` order, by keyset.
//! - `places` (chain text → id) and `case_types` ((kind, type) → id): small dictionaries.
//! - `counts_day (day, place, type, n)` and `counts_month (month, place, type, n)`: decisions
//!   per day / calendar month of China Standard Time (UTC+8), per place and case type,
//!   updated in the transaction of the insert. Statistics sum whole months and whole days
//!   from them and count raw rows only for the partial days at the edges of a window.
//! - `imported`: the legacy JSON-lines day files already imported.
//!
//! # Retention
//! [`AuditLog::start_retention`] runs a background thread that deletes decisions older than
//! the retention period in batches of [`RETENTION_BATCH`] rows, each its own short write, so
//! appends wait at most for one batch. The day and month counts are kept: statistics over
//! deleted periods still answer (only a window edge inside a deleted day loses its partial
//! day).
//!
//! # Migration
//! On open, legacy day files `audit/routes-YYYY-MM-DD.jsonl` (the format of earlier releases)
//! are imported, one transaction per file recording the file in `imported`, then renamed to
//! `*.jsonl.imported`. A crash between the commit and the rename is harmless: a file already
//! in `imported` is only renamed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeZone, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};

use super::StoreError;
use crate::caselog::{self, AuditRecord, CaseCount, RuleRef};

const FOLDER: &str = "audit";
const FILE: &str = "audit.sqlite";
const LEGACY_PREFIX: &str = "routes-";
const LEGACY_SUFFIX: &str = ".jsonl";
/// Rows one retention step deletes.
pub const RETENTION_BATCH: usize = 2_000;
/// Decisions per batch of [`AuditLog::export`].
pub const EXPORT_BATCH: usize = 1_000;
/// Most matching decisions a page counts for its `total`.
pub const COUNT_CAP: u64 = 10_000;

const DAY_MS: i64 = 86_400_000;
/// China Standard Time, the day boundary of the counts.
const CST_MS: i64 = 8 * 3_600_000;

/// The audit log of a data directory.
pub struct AuditLog {
    /// The SQLite log (`None`: the log is `shared`).
    inner: Option<Arc<Inner>>,
    /// The log shared by the replicas of a PostgreSQL store (`serve --store`).
    shared: Option<Arc<super::pg_audit::PgAudit>>,
}

struct Inner {
    path: PathBuf,
    state: Mutex<State>,
    done_cv: Condvar,
    /// Idle read-only connections.
    readers: Mutex<Vec<Connection>>,
    /// Month and day counts already read (see [`CountCache`]).
    months: Mutex<CountCache>,
}

/// The `counts_month` rows of months and the `counts_day` rows of days read before, so that a
/// year of statistics sums a dozen months and a few dozen days of small vectors in memory
/// instead of stepping through hundreds of thousands of rows. A month or day is dropped when an
/// append touches it; `generation` stops a read that raced with such an append from caching
/// what it saw. At most one entry per month of the log (~50,000 × 24 bytes each) and
/// [`CountCache::MAX_DAYS`] days (the edges of the windows asked; all dropped when full).
#[derive(Default)]
struct CountCache {
    generation: u64,
    months: HashMap<i64, Arc<CountRows>>,
    days: HashMap<i64, Arc<CountRows>>,
}

/// A month (`year * 12 + month0`) or a day (CST day number) of counts.
#[derive(Clone, Copy, Debug)]
enum Period {
    Month(i64),
    Day(i64),
}

impl CountCache {
    /// Days kept (two partial months at the edges of a window are at most 60).
    const MAX_DAYS: usize = 124;

    fn get(&self, period: Period) -> Option<Arc<CountRows>> {
        match period {
            Period::Month(m) => self.months.get(&m).cloned(),
            Period::Day(d) => self.days.get(&d).cloned(),
        }
    }

    fn put(&mut self, period: Period, rows: Arc<CountRows>) {
        match period {
            Period::Month(m) => {
                self.months.insert(m, rows);
            }
            Period::Day(d) => {
                if self.days.len() >= Self::MAX_DAYS {
                    self.days.clear();
                }
                self.days.insert(d, rows);
            }
        }
    }

    /// Forgets the day (and its month) of an appended decision.
    fn touched(&mut self, day: i64) {
        self.days.remove(&day);
        self.months.remove(&month_of_day(day));
    }
}

/// `(place, type, count)` of one month or day.
type CountRows = Vec<(i64, i64, u64)>;

struct State {
    /// Records queued and not yet written.
    queue: Vec<AuditRecord>,
    /// Sequence number of the last queued batch.
    queued: u64,
    /// Sequence number up to which batches are committed (or failed: see `failed`).
    done: u64,
    /// A write is running (its writer holds `conn`).
    busy: bool,
    /// The failure of the last write, with the sequence number it covered.
    failed: Option<(u64, String)>,
    /// The write connection, `None` while a writer holds it.
    conn: Option<Writer>,
}

/// The write connection and its dictionary caches (ids of places and case types).
struct Writer {
    conn: Connection,
    places: HashMap<String, i64>,
    types: HashMap<(String, String), i64>,
}

/// Which decisions a page holds: `since ≤ at < until`, of `unit`, after the decision `after`
/// (its id, the `next` of the previous page), at most `limit`, in `(at, id)` order.
#[derive(Clone, Debug, Default)]
pub struct PageQuery {
    pub since: Option<DateTime<FixedOffset>>,
    pub until: Option<DateTime<FixedOffset>>,
    pub unit: Option<String>,
    pub after: Option<i64>,
    pub limit: usize,
}

/// One page of decisions.
#[derive(Debug)]
pub struct Page {
    pub records: Vec<AuditRecord>,
    /// The id to pass as `after` for the next page; `None` on the last page.
    pub next: Option<i64>,
    /// How many decisions match the window and unit (all pages), if at most [`COUNT_CAP`].
    pub total: Option<u64>,
}

/// Errors of a page read that are the caller's.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("no decision has id {0} (deleted by retention, or never written): start again without `after`")]
    UnknownCursor(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn sql_error(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Write { path: path.to_owned(), message: format!("audit database: {e}") }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    at_offset_s INTEGER NOT NULL,
    case_kind TEXT NOT NULL,
    case_type TEXT NOT NULL,
    urgency TEXT,
    grid TEXT,
    chain TEXT NOT NULL,
    unit TEXT NOT NULL,
    unit_code TEXT,
    unit_role TEXT,
    rule_line INTEGER,
    rule_scope TEXT,
    zone TEXT,
    due TEXT,
    versions TEXT NOT NULL,
    input TEXT NOT NULL,
    warnings TEXT,
    outside_coverage INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_at ON decisions (at_ms);
CREATE INDEX IF NOT EXISTS decisions_unit_at ON decisions (unit, at_ms);
CREATE TABLE IF NOT EXISTS places (id INTEGER PRIMARY KEY, chain TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS case_types (id INTEGER PRIMARY KEY, case_kind TEXT NOT NULL, case_type TEXT NOT NULL, UNIQUE (case_kind, case_type));
CREATE TABLE IF NOT EXISTS counts_day (day INTEGER NOT NULL, place INTEGER NOT NULL, type INTEGER NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (day, place, type)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counts_month (month INTEGER NOT NULL, place INTEGER NOT NULL, type INTEGER NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (month, place, type)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS imported (file TEXT PRIMARY KEY, records INTEGER NOT NULL, skipped_lines INTEGER NOT NULL);
";

const COLUMNS: &str = "id, at_ms, at_offset_s, case_kind, case_type, urgency, grid, chain, unit, unit_code, unit_role, rule_line, rule_scope, zone, due, versions, input, warnings, outside_coverage";

/// The China-Standard-Time day number of a unix-ms instant (days since 1970-01-01, CST).
pub fn cst_day(at_ms: i64) -> i64 {
    (at_ms + CST_MS).div_euclid(DAY_MS)
}

/// The unix-ms instant a CST day number starts.
pub(super) fn day_start_ms(day: i64) -> i64 {
    day * DAY_MS - CST_MS
}

fn day_date(day: i64) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch") + chrono::TimeDelta::days(day)
}

/// Month number (`year * 12 + month0`) of a CST day.
pub(super) fn month_of_day(day: i64) -> i64 {
    let d = day_date(day);
    i64::from(d.year()) * 12 + i64::from(d.month0())
}

/// First CST day of a month number.
pub(super) fn month_first_day(month: i64) -> i64 {
    let d = NaiveDate::from_ymd_opt(month.div_euclid(12) as i32, month.rem_euclid(12) as u32 + 1, 1).expect("a month");
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days()
}

fn open_conn(path: &Path) -> Result<Connection, StoreError> {
    let err = sql_error(path);
    let conn = Connection::open(path).map_err(&err)?;
    conn.busy_timeout(Duration::from_secs(30)).map_err(&err)?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).map_err(&err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Write { path: path.to_owned(), message: format!("audit database: journal mode {mode}, not WAL") });
    }
    conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;").map_err(&err)?;
    Ok(conn)
}

impl AuditLog {
    /// Opens (creating) `data_dir/audit/audit.sqlite` and imports any legacy day files.
    pub fn open(data_dir: &Path) -> Result<AuditLog, StoreError> {
        let dir = data_dir.join(FOLDER);
        std::fs::create_dir_all(&dir).map_err(StoreError::io(&dir))?;
        let path = dir.join(FILE);
        let conn = open_conn(&path)?;
        conn.execute_batch(SCHEMA).map_err(sql_error(&path))?;
        let mut writer = Writer { conn, places: HashMap::new(), types: HashMap::new() };
        import_legacy(&dir, &path, &mut writer)?;
        Ok(AuditLog {
            shared: None,
            inner: Some(Arc::new(Inner {
                path,
                state: Mutex::new(State { queue: Vec::new(), queued: 0, done: 0, busy: false, failed: None, conn: Some(writer) }),
                done_cv: Condvar::new(),
                readers: Mutex::new(Vec::new()),
                months: Mutex::new(CountCache::default()),
            })),
        })
    }

    /// Whether `data_dir` has an audit log (or legacy day files) to open.
    pub fn exists_in(data_dir: &Path) -> bool {
        data_dir.join(FOLDER).is_dir()
    }

    /// The log shared by every replica of a PostgreSQL store: one table, the same records,
    /// pages and statistics over all of them ([`super::pg_audit`]).
    pub fn shared(log: super::pg_audit::PgAudit) -> AuditLog {
        AuditLog { inner: None, shared: Some(Arc::new(log)) }
    }

    /// The SQLite log; only called where `shared` was handled before.
    fn sqlite(&self) -> &Arc<Inner> {
        self.inner.as_ref().expect("an SQLite audit log")
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        if self.shared.is_some() {
            return Path::new("");
        }
        &self.sqlite().path
    }

    /// Appends records (their `id` is ignored and assigned) and returns once they are
    /// committed to disk.
    pub fn append(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        if let Some(shared) = &self.shared {
            return shared.append(records);
        }
        let inner = self.sqlite();
        let mut st = inner.state.lock().expect("audit lock");
        st.queue.extend_from_slice(records);
        st.queued += 1;
        let mine = st.queued;
        loop {
            if st.done >= mine {
                return match &st.failed {
                    Some((upto, message)) if *upto >= mine => Err(StoreError::Write { path: inner.path.clone(), message: message.clone() }),
                    _ => Ok(()),
                };
            }
            if !st.busy {
                st.busy = true;
                let batch = std::mem::take(&mut st.queue);
                let upto = st.queued;
                let mut writer = st.conn.take().expect("the writer is idle");
                drop(st);
                let result = writer.insert(&batch, &inner.path);
                {
                    let mut cache = inner.months.lock().expect("audit month cache");
                    cache.generation += 1;
                    for r in &batch {
                        cache.touched(cst_day(r.at.timestamp_millis()));
                    }
                }
                if result.is_err() {
                    writer.places.clear();
                    writer.types.clear();
                }
                st = inner.state.lock().expect("audit lock");
                st.conn = Some(writer);
                st.busy = false;
                st.done = upto;
                st.failed = result.err().map(|e| (upto, e.to_string()));
                inner.done_cv.notify_all();
                continue;
            }
            st = inner.done_cv.wait(st).expect("audit lock");
        }
    }

    /// Whether the log holds no decision (the target of `citygrid store copy` must not).
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        if let Some(shared) = &self.shared {
            return shared.is_empty();
        }
        self.with_reader(|c| c.query_row("SELECT NOT EXISTS (SELECT 1 FROM decisions)", [], |r| r.get(0)))
    }

    /// Every decision of the SQLite log in `(at, id)` order, handed to `f` in batches of
    /// [`EXPORT_BATCH`] from one read (`citygrid store copy`). Returns how many.
    pub fn export(&self, f: &mut dyn FnMut(&[AuditRecord]) -> Result<(), StoreError>) -> Result<u64, StoreError> {
        let path = self.sqlite().path.clone();
        let err = sql_error(&path);
        let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(&err)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(&err)?;
        let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM decisions ORDER BY at_ms, id")).map_err(&err)?;
        let mut batch = Vec::with_capacity(EXPORT_BATCH);
        let mut total = 0u64;
        for record in stmt.query_map([], row_record).map_err(&err)? {
            batch.push(record.map_err(&err)?);
            if batch.len() == EXPORT_BATCH {
                f(&batch)?;
                total += batch.len() as u64;
                batch.clear();
            }
        }
        if !batch.is_empty() {
            f(&batch)?;
            total += batch.len() as u64;
        }
        Ok(total)
    }

    /// Appends `records` of another log keeping their ids, with their day and month counts
    /// (`citygrid store copy`; the ids must be new here, and larger than any appended since).
    pub fn import(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        let path = self.sqlite().path.clone();
        let result = self.with_writer(|w| {
            let err = sql_error(&path);
            let tx = w.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(&err)?;
            let result = insert_records(&tx, &mut w.places, &mut w.types, records, true).and_then(|()| tx.commit());
            if result.is_err() {
                // Rolled back: ids cached meanwhile may not exist.
                w.places.clear();
                w.types.clear();
            }
            result.map_err(&err)
        });
        let mut cache = self.sqlite().months.lock().expect("audit month cache");
        cache.generation += 1;
        cache.months.clear();
        cache.days.clear();
        result
    }

    /// Runs `f` with the write connection, between group commits.
    fn with_writer<T>(&self, f: impl FnOnce(&mut Writer) -> T) -> T {
        let inner = self.sqlite();
        let mut st = inner.state.lock().expect("audit lock");
        while st.busy {
            st = inner.done_cv.wait(st).expect("audit lock");
        }
        st.busy = true;
        let mut writer = st.conn.take().expect("the writer is idle");
        drop(st);
        let out = f(&mut writer);
        let mut st = inner.state.lock().expect("audit lock");
        st.conn = Some(writer);
        st.busy = false;
        inner.done_cv.notify_all();
        out
    }

    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> Result<T, rusqlite::Error>) -> Result<T, StoreError> {
        let path = &self.sqlite().path;
        let conn = self.sqlite().readers.lock().expect("audit readers").pop();
        let conn = match conn {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(sql_error(path))?;
                c.busy_timeout(Duration::from_secs(30)).map_err(sql_error(path))?;
                c
            }
        };
        let out = f(&conn).map_err(sql_error(path));
        let mut idle = self.sqlite().readers.lock().expect("audit readers");
        if idle.len() < 8 {
            idle.push(conn);
        }
        out
    }

    /// One page of decisions, read through the indexes: its cost grows with the page, not
    /// with the log (plus at most [`COUNT_CAP`] index entries for `total`).
    pub fn page(&self, q: &PageQuery) -> Result<Page, PageError> {
        if let Some(shared) = &self.shared {
            return shared.page(q);
        }
        let since = q.since.map_or(i64::MIN, |t| t.timestamp_millis());
        let until = q.until.map_or(i64::MAX, |t| t.timestamp_millis());
        let limit = q.limit.max(1);
        let out = self.with_reader(|c| {
            let (index, unit_clause) = match q.unit {
                Some(_) => ("decisions_unit_at", "AND unit = ?4"),
                None => ("decisions_at", "AND ?4 IS NULL"),
            };
            let cursor = match q.after {
                None => None,
                Some(id) => match c.query_row("SELECT at_ms FROM decisions WHERE id = ?1", [id], |r| r.get::<_, i64>(0)).optional()? {
                    Some(at) => Some((at, id)),
                    None => return Ok(Err(id)),
                },
            };
            let (from, after_id) = match cursor {
                Some((at, id)) if at >= since => (at, id),
                _ => (since, i64::MIN),
            };
            let sql = format!(
                "SELECT {COLUMNS} FROM decisions INDEXED BY {index} WHERE at_ms >= ?1 AND at_ms < ?2 {unit_clause} \
                 AND (at_ms > ?1 OR id > ?3) ORDER BY at_ms, id LIMIT ?5"
            );
            let mut stmt = c.prepare(&sql)?;
            let mut records = stmt.query_map(params![from, until, after_id, q.unit, (limit + 1) as i64], row_record)?.collect::<Result<Vec<_>, _>>()?;
            let next = if records.len() > limit {
                records.truncate(limit);
                records.last().map(|r| r.id)
            } else {
                None
            };
            let count_sql =
                format!("SELECT count(*) FROM (SELECT 1 FROM decisions INDEXED BY {index} WHERE at_ms >= ?1 AND at_ms < ?2 {unit_clause} LIMIT ?3)");
            let n: i64 = c.prepare(&count_sql)?.query_row(params![since, until, (COUNT_CAP + 1) as i64, q.unit], |r| r.get(0))?;
            let total = (n as u64 <= COUNT_CAP).then_some(n as u64);
            Ok(Ok(Page { records, next, total }))
        })?;
        out.map_err(PageError::UnknownCursor)
    }

    /// Decisions per place and case type with `since ≤ at < until` (either open): whole
    /// months and whole days (CST) from the counts, partial days at the edges from the rows.
    pub fn case_counts(&self, since: Option<DateTime<FixedOffset>>, until: Option<DateTime<FixedOffset>>) -> Result<Vec<CaseCount>, StoreError> {
        if let Some(shared) = &self.shared {
            return shared.case_counts(since, until);
        }
        Ok(self.id_counts(since, until)?.to_case_counts())
    }

    /// The statistics of the decisions with `since ≤ at < until` at `level`, of the case type
    /// codes `case_types` only (all when `None`): the same answer as [`caselog::stats`] of
    /// [`AuditLog::case_counts`] kept by type, summed by dictionary id
    /// ([`caselog::stats_of_ids`]) so that strings are built only for the answer.
    pub fn case_stats(
        &self,
        since: Option<DateTime<FixedOffset>>,
        until: Option<DateTime<FixedOffset>>,
        level: caselog::StatsLevel,
        case_types: Option<&[String]>,
    ) -> Result<caselog::CaseStats, StoreError> {
        if let Some(shared) = &self.shared {
            return Ok(caselog::stats_of_ids(&shared.id_counts(since, until)?, level, case_types));
        }
        Ok(caselog::stats_of_ids(&self.id_counts(since, until)?, level, case_types))
    }

    /// The counts of [`AuditLog::case_counts`] by dictionary id.
    ///
    /// The counts are summed in a dense array indexed by (place id, type id) — the ids of the
    /// `places` and `case_types` dictionaries — and the rows of whole months and of whole days
    /// outside them are kept in memory once read (see [`CountCache`]), so a year sums a few
    /// hundred thousand integers in memory. The decisions of the partial days at the edges are
    /// mapped to the same ids through the dictionaries (their text columns are borrowed from
    /// SQLite, not copied), and read in rowid order when their ids are nearly contiguous.
    fn id_counts(&self, since: Option<DateTime<FixedOffset>>, until: Option<DateTime<FixedOffset>>) -> Result<caselog::IdCounts, StoreError> {
        self.with_reader(|c| {
            // Two queries: SQLite answers a lone min() or max() from the index's end.
            let first: Option<i64> = c.query_row("SELECT min(day) FROM counts_day", [], |r| r.get(0))?;
            let last: Option<i64> = c.query_row("SELECT max(day) FROM counts_day", [], |r| r.get(0))?;
            let Some((first_day, last_day)) = first.zip(last) else {
                return Ok(caselog::IdCounts::default());
            };
            let since = since.map_or(day_start_ms(first_day), |t| t.timestamp_millis().max(day_start_ms(first_day)));
            let until = until.map_or(day_start_ms(last_day + 1), |t| t.timestamp_millis().min(day_start_ms(last_day + 1)));
            // The dictionaries only grow: ids past the ones read now (appended meanwhile) go to
            // the overflow map of `Sums`, and are looked up at the end.
            let dict = Dict::read(c)?;
            let mut sums = Sums::new(dict.chains.len() as i64 - 1, dict.types.len() as i64 - 1);
            let mut raw: HashMap<(String, String, String), u64> = HashMap::new();
            if since < until {
                // Whole days: [d0, d1).
                let d0 = cst_day(since - 1) + 1;
                let d1 = cst_day(until);
                if d0 >= d1 {
                    raw_counts(c, since, until, &dict, &mut sums, &mut raw)?;
                } else {
                    raw_counts(c, since, day_start_ms(d0), &dict, &mut sums, &mut raw)?;
                    raw_counts(c, day_start_ms(d1), until, &dict, &mut sums, &mut raw)?;
                    // Whole months inside: [m0, m1).
                    let m0 = if month_first_day(month_of_day(d0)) == d0 { month_of_day(d0) } else { month_of_day(d0) + 1 };
                    let m1 = month_of_day(d1);
                    let days = if m0 < m1 {
                        for m in m0..m1 {
                            self.cached_counts(c, Period::Month(m), &mut sums)?;
                        }
                        (d0..month_first_day(m0)).chain(month_first_day(m1)..d1)
                    } else {
                        (d0..d1).chain(0..0)
                    };
                    // Only days that have counts (a window may reach far past the log).
                    for d in days.filter(|d| (first_day..=last_day).contains(d)) {
                        self.cached_counts(c, Period::Day(d), &mut sums)?;
                    }
                }
            }
            dict.into_counts(c, &sums, raw)
        })
    }

    /// Adds the counts of a month or a day to `sums`, from the cache or the table.
    fn cached_counts(&self, c: &Connection, period: Period, sums: &mut Sums) -> rusqlite::Result<()> {
        let (generation, cached) = {
            let cache = self.sqlite().months.lock().expect("audit count cache");
            (cache.generation, cache.get(period))
        };
        let rows = match cached {
            Some(rows) => rows,
            None => {
                let (sql, key) = match period {
                    Period::Month(m) => ("SELECT place, type, n FROM counts_month WHERE month = ?1", m),
                    Period::Day(d) => ("SELECT place, type, n FROM counts_day WHERE day = ?1", d),
                };
                let mut stmt = c.prepare(sql)?;
                let mut rows = stmt.query([key])?;
                let mut read: CountRows = Vec::new();
                while let Some(r) = rows.next()? {
                    read.push((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64));
                }
                let rows = Arc::new(read);
                let mut cache = self.sqlite().months.lock().expect("audit count cache");
                if cache.generation == generation {
                    cache.put(period, rows.clone());
                }
                rows
            }
        };
        for &(place, ty, n) in rows.iter() {
            sums.add(place, ty, n);
        }
        Ok(())
    }

    /// Deletes decisions with `at < cutoff`, [`RETENTION_BATCH`] rows per write, and gives how
    /// many. The counts are kept.
    pub fn delete_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        if let Some(shared) = &self.shared {
            return shared.delete_before(cutoff);
        }
        let cutoff = cutoff.timestamp_millis();
        let path = self.sqlite().path.clone();
        let mut deleted = 0u64;
        loop {
            let n = self.with_writer(|w| {
                w.conn.execute(
                    "DELETE FROM decisions WHERE id IN (SELECT id FROM decisions INDEXED BY decisions_at WHERE at_ms < ?1 ORDER BY at_ms LIMIT ?2)",
                    params![cutoff, RETENTION_BATCH as i64],
                )
            });
            let n = n.map_err(sql_error(&path))?;
            deleted += n as u64;
            if n < RETENTION_BATCH {
                return Ok(deleted);
            }
            // Let queued appends in between batches.
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Starts the background thread that deletes decisions older than `days` days, now and
    /// then every hour (`days == 0`: keeps everything, no thread). It ends with the log.
    pub fn start_retention(&self, days: u32) {
        if days == 0 {
            return;
        }
        if let Some(shared) = &self.shared {
            return super::pg_audit::PgAudit::start_retention(shared, days);
        }
        spawn_retention(Arc::downgrade(self.sqlite()), days, "audit log", |inner, cutoff| AuditLog { inner: Some(inner), shared: None }.delete_before(cutoff));
    }
}

/// Runs `delete(owner, now − days)` on a thread of its own, now and then every hour, until
/// `owner` is dropped (checked every 10 s, so the thread ends soon after the log). `what` names
/// the log in the messages. Failures are logged and retried an hour later.
pub(super) fn spawn_retention<T: Send + Sync + 'static>(
    owner: Weak<T>,
    days: u32,
    what: &'static str,
    delete: fn(Arc<T>, DateTime<Utc>) -> Result<u64, StoreError>,
) {
    let spawned = std::thread::Builder::new().name("audit-retention".into()).spawn(move || {
        loop {
            let Some(log) = owner.upgrade() else { return };
            match delete(log, Utc::now() - chrono::TimeDelta::days(i64::from(days))) {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, retention_days = days, "{what}: deleted decisions past retention"),
                Err(e) => tracing::warn!(error = %e, "{what}: retention failed; retrying in an hour"),
            }
            for _ in 0..360 {
                std::thread::sleep(Duration::from_secs(10));
                if owner.strong_count() == 0 {
                    return;
                }
            }
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "{what}: cannot start the retention thread");
    }
}

/// The `places` and `case_types` dictionaries as read at the start of a statistics query,
/// indexed by id (ids are dense from 1; gaps hold empty entries no count refers to).
struct Dict {
    chains: Vec<String>,
    types: Vec<(String, String)>,
    place_id: HashMap<String, i64>,
    /// `kind \0 type` → id.
    type_id: HashMap<String, i64>,
}

impl Dict {
    fn read(c: &Connection) -> rusqlite::Result<Dict> {
        let mut d = Dict { chains: vec![String::new()], types: vec![Default::default()], place_id: HashMap::new(), type_id: HashMap::new() };
        let mut stmt = c.prepare("SELECT id, chain FROM places")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let (id, chain): (i64, String) = (r.get(0)?, r.get(1)?);
            if let Ok(i) = usize::try_from(id) {
                if i >= d.chains.len() {
                    d.chains.resize(i + 1, String::new());
                }
                d.chains[i].clone_from(&chain);
                d.place_id.insert(chain, id);
            }
        }
        let mut stmt = c.prepare("SELECT id, case_kind, case_type FROM case_types")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let (id, kind, ty): (i64, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
            if let Ok(i) = usize::try_from(id) {
                if i >= d.types.len() {
                    d.types.resize(i + 1, Default::default());
                }
                d.type_id.insert(type_key(&kind, &ty), id);
                d.types[i] = (kind, ty);
            }
        }
        Ok(d)
    }

    /// The sums as [`caselog::IdCounts`] (index = id for the ids read at the start), with the
    /// ids added since and the raw rows whose strings were not in the dictionaries.
    fn into_counts(mut self, c: &Connection, sums: &Sums, raw: HashMap<(String, String, String), u64>) -> rusqlite::Result<caselog::IdCounts> {
        let (known_places, known_types) = (self.chains.len(), self.types.len());
        let mut late_places: HashMap<i64, u32> = HashMap::new();
        let mut late_types: HashMap<i64, u32> = HashMap::new();
        let mut counts = Vec::with_capacity(sums.len());
        let mut failed = None;
        sums.for_each(|place, ty, n| {
            let p = match usize::try_from(place) {
                Ok(i) if i < known_places => Some(i as u32),
                _ => match late_places.get(&place) {
                    Some(&i) => Some(i),
                    None => match c.query_row("SELECT chain FROM places WHERE id = ?1", [place], |r| r.get::<_, String>(0)).optional() {
                        Ok(Some(chain)) => {
                            let i = self.chain_index(chain);
                            late_places.insert(place, i);
                            Some(i)
                        }
                        Ok(None) => None,
                        Err(e) => {
                            failed = Some(e);
                            None
                        }
                    },
                },
            };
            let t = match usize::try_from(ty) {
                Ok(i) if i < known_types => Some(i as u32),
                _ => match late_types.get(&ty) {
                    Some(&i) => Some(i),
                    None => match c
                        .query_row("SELECT case_kind, case_type FROM case_types WHERE id = ?1", [ty], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                        .optional()
                    {
                        Ok(Some((kind, t))) => {
                            let i = self.type_index(kind, t);
                            late_types.insert(ty, i);
                            Some(i)
                        }
                        Ok(None) => None,
                        Err(e) => {
                            failed = Some(e);
                            None
                        }
                    },
                },
            };
            if let (Some(p), Some(t)) = (p, t) {
                counts.push((p, t, n));
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        for ((chain, kind, ty), n) in raw {
            let p = self.chain_index(chain);
            let t = self.type_index(kind, ty);
            counts.push((p, t, n));
        }
        Ok(caselog::IdCounts { chains: self.chains, types: self.types, counts })
    }

    /// The index of a chain not among the ids read (appended since): its id if it was read
    /// meanwhile, else a new entry.
    fn chain_index(&mut self, chain: String) -> u32 {
        if let Some(&id) = self.place_id.get(&chain) {
            return id as u32;
        }
        self.chains.push(chain.clone());
        let i = self.chains.len() - 1;
        self.place_id.insert(chain, i as i64);
        i as u32
    }

    /// Like [`Dict::chain_index`] for a case type.
    fn type_index(&mut self, kind: String, ty: String) -> u32 {
        let key = type_key(&kind, &ty);
        if let Some(&id) = self.type_id.get(&key) {
            return id as u32;
        }
        self.types.push((kind, ty));
        let i = self.types.len() - 1;
        self.type_id.insert(key, i as i64);
        i as u32
    }
}

fn type_key(kind: &str, ty: &str) -> String {
    let mut k = String::with_capacity(kind.len() + ty.len() + 1);
    k.push_str(kind);
    k.push('\0');
    k.push_str(ty);
    k
}

/// Adds the decisions with `from ≤ at_ms < to` to `sums` by the ids of their place and type in
/// `dict` (a string missing there, appended since, goes to `raw`). When the rows' ids are
/// nearly contiguous (the usual case: decisions are appended in time order) they are read in
/// rowid order from the table, one pass over its pages, instead of one seek per index entry.
fn raw_counts(c: &Connection, from: i64, to: i64, dict: &Dict, sums: &mut Sums, raw: &mut HashMap<(String, String, String), u64>) -> rusqlite::Result<()> {
    if from >= to {
        return Ok(());
    }
    let (lo, hi, n): (Option<i64>, Option<i64>, i64) = c
        .prepare("SELECT min(id), max(id), count(*) FROM decisions INDEXED BY decisions_at WHERE at_ms >= ?1 AND at_ms < ?2")?
        .query_row(params![from, to], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    let (Some(lo), Some(hi)) = (lo, hi) else { return Ok(()) };
    let contiguous = hi - lo < 2 * n + 1024;
    let mut stmt = if contiguous {
        c.prepare("SELECT chain, case_kind, case_type FROM decisions NOT INDEXED WHERE id >= ?3 AND id <= ?4 AND at_ms >= ?1 AND at_ms < ?2")?
    } else {
        c.prepare("SELECT chain, case_kind, case_type FROM decisions INDEXED BY decisions_at WHERE at_ms >= ?1 AND at_ms < ?2 AND ?3 <= ?4")?
    };
    let mut rows = stmt.query(params![from, to, lo, hi])?;
    let mut key = String::new();
    while let Some(r) = rows.next()? {
        let (chain, kind, ty) = (text_ref(r, 0)?, text_ref(r, 1)?, text_ref(r, 2)?);
        key.clear();
        key.push_str(kind);
        key.push('\0');
        key.push_str(ty);
        match (dict.place_id.get(chain), dict.type_id.get(key.as_str())) {
            (Some(&p), Some(&t)) => sums.add(p, t, 1),
            _ => *raw.entry((chain.to_owned(), kind.to_owned(), ty.to_owned())).or_default() += 1,
        }
    }
    Ok(())
}

/// A text column borrowed from the row.
fn text_ref<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<&'r str> {
    r.get_ref(i)?.as_str().map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
}

/// Counts summed by (place id, type id): a dense array over the ids known when the sum
/// started, a map for ids added since.
struct Sums {
    places: usize,
    types: usize,
    dense: Vec<u64>,
    overflow: HashMap<(i64, i64), u64>,
}

impl Sums {
    /// Most cells of the dense array (32 MiB); a larger dictionary sums in the map.
    const MAX_DENSE: usize = 4 << 20;

    fn new(max_place: i64, max_type: i64) -> Sums {
        let (places, types) = (max_place.max(0) as usize + 1, max_type.max(0) as usize + 1);
        let (places, types) = if places.saturating_mul(types) <= Self::MAX_DENSE { (places, types) } else { (0, 0) };
        Sums { places, types, dense: vec![0; places * types], overflow: HashMap::new() }
    }

    fn add(&mut self, place: i64, ty: i64, n: u64) {
        match (usize::try_from(place), usize::try_from(ty)) {
            (Ok(p), Ok(t)) if p < self.places && t < self.types => self.dense[p * self.types + t] += n,
            _ => *self.overflow.entry((place, ty)).or_default() += n,
        }
    }

    /// Cells of the dense array plus entries of the map (an upper bound of `for_each`'s calls).
    fn len(&self) -> usize {
        self.dense.len().min(1 << 16) + self.overflow.len()
    }

    /// Every (place, type) with a count above zero.
    fn for_each(&self, mut f: impl FnMut(i64, i64, u64)) {
        for (i, &n) in self.dense.iter().enumerate() {
            if let (true, Some(place)) = (n > 0, i.checked_div(self.types)) {
                f(place as i64, (i % self.types) as i64, n);
            }
        }
        for (&(p, t), &n) in &self.overflow {
            f(p, t, n);
        }
    }
}

fn row_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRecord> {
    let at_ms: i64 = r.get(1)?;
    let offset = FixedOffset::east_opt(r.get(2)?).unwrap_or_else(crate::rules::china_tz);
    let at = offset.timestamp_millis_opt(at_ms).single().unwrap_or_else(|| Utc.timestamp_millis_opt(0).unwrap().fixed_offset());
    let json = |i: usize| -> rusqlite::Result<Option<serde_json::Value>> { Ok(r.get::<_, Option<String>>(i)?.and_then(|s| serde_json::from_str(&s).ok())) };
    let rule_line: Option<i64> = r.get(11)?;
    Ok(AuditRecord {
        id: r.get(0)?,
        at,
        case_kind: r.get(3)?,
        case_type: r.get(4)?,
        urgency: r.get(5)?,
        grid: r.get(6)?,
        chain: caselog::chain_codes(&r.get::<_, String>(7)?),
        unit: r.get(8)?,
        unit_code: r.get(9)?,
        unit_role: r.get(10)?,
        rule: rule_line.map(|line| RuleRef { line: line as u64, scope: r.get::<_, Option<String>>(12).ok().flatten().unwrap_or_default() }),
        zone: r.get(13)?,
        due: r.get(14)?,
        versions: json(15)?.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default(),
        input: json(16)?.unwrap_or(serde_json::Value::Null),
        warnings: json(17)?.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default(),
        outside_coverage: r.get::<_, i64>(18)? != 0,
    })
}

impl Writer {
    /// Inserts `batch` in one transaction (with its counts) and commits.
    fn insert(&mut self, batch: &[AuditRecord], path: &Path) -> Result<(), StoreError> {
        let err = sql_error(path);
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(&err)?;
        insert_records(&tx, &mut self.places, &mut self.types, batch, false).map_err(&err)?;
        tx.commit().map_err(&err)
    }
}

fn insert_records(
    tx: &Transaction<'_>,
    places: &mut HashMap<String, i64>,
    types: &mut HashMap<(String, String), i64>,
    batch: &[AuditRecord],
    keep_ids: bool,
) -> rusqlite::Result<()> {
    let mut insert = tx.prepare(&format!(
        "INSERT INTO decisions ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
        COLUMNS.trim_start_matches("id, ")
    ))?;
    // A copied log keeps its ids (`AUTOINCREMENT` then goes on after the largest).
    let mut with_id = if keep_ids {
        Some(tx.prepare(&format!(
            "INSERT INTO decisions ({COLUMNS}) VALUES (?19, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
        ))?)
    } else {
        None
    };
    // The counts of the batch, added to the tables once per (day, place, type) at the end.
    let mut counts: HashMap<(i64, i64, i64), u64> = HashMap::new();
    // Consecutive decisions mostly share their dataset versions: written once.
    let mut last_versions: Option<(&std::collections::BTreeMap<String, u64>, String)> = None;
    for r in batch {
        let chain = caselog::chain_text(&r.chain);
        let place = match places.get(&chain) {
            Some(&id) => id,
            None => {
                tx.execute("INSERT OR IGNORE INTO places (chain) VALUES (?1)", [&chain])?;
                let id: i64 = tx.query_row("SELECT id FROM places WHERE chain = ?1", [&chain], |row| row.get(0))?;
                places.insert(chain.clone(), id);
                id
            }
        };
        let tkey = (r.case_kind.clone(), r.case_type.clone());
        let ty = match types.get(&tkey) {
            Some(&id) => id,
            None => {
                tx.execute("INSERT OR IGNORE INTO case_types (case_kind, case_type) VALUES (?1, ?2)", [&tkey.0, &tkey.1])?;
                let id: i64 = tx.query_row("SELECT id FROM case_types WHERE case_kind = ?1 AND case_type = ?2", [&tkey.0, &tkey.1], |row| row.get(0))?;
                types.insert(tkey, id);
                id
            }
        };
        let at_ms = r.at.timestamp_millis();
        let versions = match &last_versions {
            Some((v, text)) if **v == r.versions => text.clone(),
            _ => {
                let text = serde_json::to_string(&r.versions).expect("versions to JSON");
                last_versions = Some((&r.versions, text.clone()));
                text
            }
        };
        let input = serde_json::to_string(&r.input).expect("input to JSON");
        let warnings = (!r.warnings.is_empty()).then(|| serde_json::to_string(&r.warnings).expect("warnings to JSON"));
        let values = params![
            at_ms,
            r.at.offset().local_minus_utc(),
            r.case_kind,
            r.case_type,
            r.urgency,
            r.grid,
            chain,
            r.unit,
            r.unit_code,
            r.unit_role,
            r.rule.as_ref().map(|x| x.line as i64),
            r.rule.as_ref().map(|x| x.scope.as_str()),
            r.zone,
            r.due,
            versions,
            input,
            warnings,
            i64::from(r.outside_coverage),
            r.id,
        ];
        match &mut with_id {
            Some(statement) => statement.execute(values)?,
            None => insert.execute(&values[..18])?,
        };
        *counts.entry((cst_day(at_ms), place, ty)).or_default() += 1;
    }
    let mut day = tx.prepare("INSERT INTO counts_day (day, place, type, n) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO UPDATE SET n = n + excluded.n")?;
    let mut months: HashMap<(i64, i64, i64), u64> = HashMap::new();
    for (&(d, place, ty), &n) in &counts {
        day.execute(params![d, place, ty, n as i64])?;
        *months.entry((month_of_day(d), place, ty)).or_default() += n;
    }
    let mut month = tx.prepare("INSERT INTO counts_month (month, place, type, n) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO UPDATE SET n = n + excluded.n")?;
    for (&(m, place, ty), &n) in &months {
        month.execute(params![m, place, ty, n as i64])?;
    }
    Ok(())
}

/// The legacy day files of `dir`, oldest first.
fn legacy_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, StoreError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(StoreError::io(dir))? {
        let entry = entry.map_err(StoreError::io(dir))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
        if name.starts_with(LEGACY_PREFIX) && name.ends_with(LEGACY_SUFFIX) {
            files.push((name, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// Imports each legacy day file once (see the module doc), streaming it in one transaction.
fn import_legacy(dir: &Path, db: &Path, w: &mut Writer) -> Result<(), StoreError> {
    let err = sql_error(db);
    for (name, path) in legacy_files(dir)? {
        let done: Option<i64> = w.conn.query_row("SELECT records FROM imported WHERE file = ?1", [&name], |r| r.get(0)).optional().map_err(&err)?;
        if done.is_none() {
            let file = std::fs::File::open(&path).map_err(StoreError::io(&path))?;
            let tx = w.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(&err)?;
            let (mut records, mut skipped) = (0i64, 0i64);
            let mut chunk = Vec::with_capacity(1024);
            for line in BufReader::new(file).split(b'\n') {
                let line = line.map_err(StoreError::io(&path))?;
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match serde_json::from_slice::<serde_json::Value>(&line).ok().as_ref().and_then(caselog::from_legacy) {
                    Some(r) => chunk.push(r),
                    None => skipped += 1,
                }
                if chunk.len() == 1024 {
                    insert_records(&tx, &mut w.places, &mut w.types, &chunk, false).map_err(&err)?;
                    records += chunk.len() as i64;
                    chunk.clear();
                }
            }
            insert_records(&tx, &mut w.places, &mut w.types, &chunk, false).map_err(&err)?;
            records += chunk.len() as i64;
            tx.execute("INSERT INTO imported (file, records, skipped_lines) VALUES (?1, ?2, ?3)", params![name, records, skipped]).map_err(&err)?;
            tx.commit().map_err(&err)?;
            tracing::info!(file = %path.display(), records, skipped_lines = skipped, "audit log: imported a legacy day file");
        }
        let mut to = path.clone().into_os_string();
        to.push(".imported");
        std::fs::rename(&path, &to).map_err(StoreError::io(&path))?;
    }
    super::atomic::sync_dir(dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    fn rec(at: &str, unit: &str) -> AuditRecord {
        let answer = json!({
            "case": {"kind": "event", "code": "0102"},
            "grid": {"code": "g1"},
            "chain": [{"code": "d"}, {"code": "s1"}, {"code": "c1"}, {"code": "g1"}],
            "responsible_unit": {"name": unit},
            "rule": {"line": 3, "scope": ""},
            "versions": {"grids": 1, "rules": 2},
        });
        caselog::record(t(at), &json!({"lon": 120.5, "event_type": "0102"}), &answer)
    }

    fn all(log: &AuditLog) -> Vec<AuditRecord> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = log.page(&PageQuery { after, limit: 7, ..Default::default() }).unwrap();
            out.extend(page.records);
            match page.next {
                Some(n) => after = Some(n),
                None => return out,
            }
        }
    }

    #[test]
    fn appended_records_read_back_by_time_unit_and_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        log.append(&[rec("2026-11-20T23:30:00+08:00", "a"), rec("2026-11-21T09:00:00+08:00", "b")]).unwrap();
        log.append(&[rec("2026-11-22T09:00:00+08:00", "a")]).unwrap();
        assert!(log.path().ends_with("audit/audit.sqlite"));
        let page = log.page(&PageQuery { limit: 10, ..Default::default() }).unwrap();
        assert_eq!(page.records.iter().map(|r| r.unit.as_str()).collect::<Vec<_>>(), ["a", "b", "a"]);
        assert_eq!((page.total, page.next), (Some(3), None));
        let r = &page.records[0];
        assert_eq!((r.at, r.chain.len(), r.rule.as_ref().map(|x| x.line)), (t("2026-11-20T23:30:00+08:00"), 4, Some(3)));
        assert_eq!(r.input["lon"], 120.5);
        assert!(page.records.windows(2).all(|w| w[0].id < w[1].id));
        let window = log
            .page(&PageQuery { since: Some(t("2026-11-21T00:00:00+08:00")), until: Some(t("2026-11-22T09:00:00+08:00")), limit: 10, ..Default::default() })
            .unwrap();
        assert_eq!(window.records.len(), 1, "since inclusive, until exclusive");
        assert_eq!(window.records[0].unit, "b");
        let only_a = log.page(&PageQuery { unit: Some("a".into()), limit: 1, ..Default::default() }).unwrap();
        assert_eq!((only_a.records.len(), only_a.total), (1, Some(2)));
        let rest = log.page(&PageQuery { unit: Some("a".into()), limit: 1, after: only_a.next, ..Default::default() }).unwrap();
        assert_eq!((rest.records[0].at, rest.next), (t("2026-11-22T09:00:00+08:00"), None));
        assert!(matches!(log.page(&PageQuery { after: Some(999), limit: 1, ..Default::default() }), Err(PageError::UnknownCursor(999))));
    }

    #[test]
    fn counts_sum_months_days_and_partial_days_like_the_rows() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        // Every 7 hours from 2026-09-20 to 2027-01-10, two units.
        let start = t("2026-09-20T00:00:00+08:00");
        let recs: Vec<AuditRecord> = (0..380)
            .map(|i| {
                let at = start + chrono::TimeDelta::hours(7 * i);
                let mut r = rec(&at.to_rfc3339(), if i % 3 == 0 { "a" } else { "b" });
                r.chain[3] = format!("g{}", i % 5);
                r.case_type = format!("01{:02}", i % 4);
                r
            })
            .collect();
        log.append(&recs).unwrap();
        for (since, until) in [
            (None, None),
            (Some("2026-10-01T00:00:00+08:00"), Some("2026-12-01T00:00:00+08:00")),
            (Some("2026-10-03T05:00:00+08:00"), Some("2026-12-20T13:00:00+08:00")),
            (Some("2026-10-03T05:00:00+08:00"), Some("2026-10-04T01:00:00+08:00")),
            (Some("2026-10-03T05:00:00+08:00"), Some("2026-10-03T06:00:00+08:00")),
            (Some("2026-09-25T00:00:00+00:00"), Some("2027-02-01T00:00:00+08:00")),
            (Some("2025-01-01T00:00:00+08:00"), None),
            (Some("2026-12-01T00:00:00+08:00"), Some("2026-11-01T00:00:00+08:00")),
        ] {
            let (s, u) = (since.map(t), until.map(t));
            let rows: Vec<AuditRecord> = recs.iter().filter(|r| s.is_none_or(|s| r.at >= s) && u.is_none_or(|u| r.at < u)).cloned().collect();
            for level in [caselog::StatsLevel::Street, caselog::StatsLevel::Grid] {
                let want = caselog::stats(&caselog::counts_of(&rows), level);
                let got = caselog::stats(&log.case_counts(s, u).unwrap(), level);
                assert_eq!(got, want, "{since:?}..{until:?}");
            }
        }
        // A month read (and cached) before an append into it counts the new decision.
        let (s, u) = (Some(t("2026-10-01T00:00:00+08:00")), Some(t("2026-12-01T00:00:00+08:00")));
        let before = caselog::stats(&log.case_counts(s, u).unwrap(), caselog::StatsLevel::Grid).total;
        log.append(&[rec("2026-10-15T12:00:00+08:00", "a")]).unwrap();
        assert_eq!(caselog::stats(&log.case_counts(s, u).unwrap(), caselog::StatsLevel::Grid).total, before + 1);
    }

    /// The statistics summed by dictionary id equal a brute-force count over the decisions
    /// (and serialize to the same bytes), for windows whose edges fall inside days, with
    /// the edge rows read in rowid order (appended in time order) and through the index
    /// (a day's decisions appended in two runs far apart), and with a case type filter.
    #[test]
    fn stats_by_id_equal_a_brute_force_count_with_edges_inside_days() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        let make = |from: &str, n: i64, step_s: i64, salt: i64| -> Vec<AuditRecord> {
            (0..n)
                .map(|i| {
                    let at = t(from) + chrono::TimeDelta::seconds(step_s * i);
                    let mut r = rec(&at.to_rfc3339(), "a");
                    let k = i * 7 + salt;
                    r.chain =
                        if k % 23 == 0 { Vec::new() } else { vec!["d".into(), format!("s{}", k % 3), format!("s{}c{}", k % 3, k % 5), format!("g{}", k % 11)] };
                    r.case_kind = if k % 4 == 0 { "component".into() } else { "event".into() };
                    r.case_type = format!("01{:02}", k % 6);
                    r
                })
                .collect()
        };
        // Day 2026-10-03 in two runs with another day's 5,000 decisions between them.
        let mut all = make("2026-10-03T00:00:00+08:00", 1500, 29, 0);
        all.extend(make("2026-10-08T00:00:00+08:00", 5000, 17, 1));
        all.extend(make("2026-10-03T00:00:10+08:00", 1500, 31, 2));
        all.extend(make("2026-10-10T00:00:00+08:00", 3000, 100, 3));
        for part in all.chunks(1000) {
            log.append(part).unwrap();
        }
        let windows = [
            (Some("2026-10-03T05:00:00+08:00"), Some("2026-10-08T13:30:00+08:00")),
            (Some("2026-10-03T05:00:00+08:00"), Some("2026-10-03T09:00:00+08:00")),
            (Some("2026-10-08T01:00:00+08:00"), Some("2026-10-11T02:00:00+08:00")),
            (Some("2026-10-08T01:00:00+08:00"), None),
            (None, Some("2026-10-03T07:00:00+08:00")),
            (None, None),
        ];
        for (since, until) in windows {
            let (s, u) = (since.map(t), until.map(t));
            let rows: Vec<AuditRecord> = all.iter().filter(|r| s.is_none_or(|s| r.at >= s) && u.is_none_or(|u| r.at < u)).cloned().collect();
            assert!(!rows.is_empty());
            for level in [caselog::StatsLevel::Street, caselog::StatsLevel::Community, caselog::StatsLevel::Grid] {
                for filter in [None, Some(vec!["0102".to_owned(), "0105".to_owned()])] {
                    let mut brute = caselog::counts_of(&rows);
                    if let Some(f) = &filter {
                        brute.retain(|c| f.contains(&c.case_type));
                    }
                    let want = caselog::stats(&brute, level);
                    let got = log.case_stats(s, u, level, filter.as_deref()).unwrap();
                    assert_eq!(got, want, "{since:?}..{until:?} {level:?} {filter:?}");
                    assert_eq!(serde_json::to_vec(&got).unwrap(), serde_json::to_vec(&want).unwrap());
                    assert_eq!(got.total, rows.iter().filter(|r| filter.as_ref().is_none_or(|f| f.contains(&r.case_type))).count() as u64);
                }
            }
        }
    }

    #[test]
    fn retention_deletes_old_decisions_in_batches_and_keeps_the_counts() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        let old: Vec<AuditRecord> = (0..RETENTION_BATCH * 2 + 5).map(|_| rec("2020-01-05T10:00:00+08:00", "a")).collect();
        log.append(&old).unwrap();
        log.append(&[rec("2026-11-20T10:00:00+08:00", "b")]).unwrap();
        let deleted = log.delete_before(t("2026-01-01T00:00:00+08:00").with_timezone(&Utc)).unwrap();
        assert_eq!(deleted, (RETENTION_BATCH * 2 + 5) as u64);
        let left = all(&log);
        assert_eq!(left.iter().map(|r| r.unit.as_str()).collect::<Vec<_>>(), ["b"]);
        let stats = caselog::stats(&log.case_counts(None, None).unwrap(), caselog::StatsLevel::Street);
        assert_eq!(stats.total, (RETENTION_BATCH * 2 + 6) as u64, "the counts of deleted days stay");
        // Ids are never reused.
        log.append(&[rec("2026-11-21T10:00:00+08:00", "c")]).unwrap();
        let ids: Vec<i64> = all(&log).iter().map(|r| r.id).collect();
        assert_eq!(ids, [(RETENTION_BATCH * 2 + 6) as i64, (RETENTION_BATCH * 2 + 7) as i64]);
    }

    #[test]
    fn legacy_day_files_are_imported_once_and_renamed() {
        let dir = tempfile::tempdir().unwrap();
        let audit = dir.path().join("audit");
        std::fs::create_dir_all(&audit).unwrap();
        let answer = json!({"case": {"kind": "event", "code": "0102"}, "grid": {"code": "g1"}, "chain": [{"code": "d"}, {"code": "s1"}, {"code": "c1"}, {"code": "g1"}],
            "responsible_unit": {"name": "环卫所", "phone": "0512"}, "rule": {"line": 9, "scope": "s1"}, "deadline": {"due": "2026-11-20T17:00:00+08:00"}, "versions": {"rules": 4}});
        let line = |at: &str| json!({"at": at, "case_kind": "event", "case_type": "0102", "unit": "环卫所", "input": {"lon": 1}, "answer": answer}).to_string();
        std::fs::write(
            audit.join("routes-2026-11-19.jsonl"),
            format!("{}\n{}\nnot json\n", line("2026-11-19T10:00:00+08:00"), line("2026-11-19T11:00:00+08:00")),
        )
        .unwrap();
        // A torn last line, as a crash of an earlier release could leave.
        std::fs::write(audit.join("routes-2026-11-20.jsonl"), format!("{}\n{{\"at\":\"2026-11-20T1", line("2026-11-20T09:00:00+08:00"))).unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        let got = all(&log);
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].unit.as_str(), got[0].rule.as_ref().unwrap().line, got[0].versions["rules"]), ("环卫所", 9, 4));
        assert_eq!(got[2].due.as_deref(), Some("2026-11-20T17:00:00+08:00"));
        let mut names: Vec<String> =
            std::fs::read_dir(&audit).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).filter(|n| n.starts_with("routes-")).collect();
        names.sort();
        assert_eq!(names, ["routes-2026-11-19.jsonl.imported", "routes-2026-11-20.jsonl.imported"]);
        assert_eq!(caselog::stats(&log.case_counts(None, None).unwrap(), caselog::StatsLevel::Grid).by_grid["g1"], 3);
        drop(log);
        // A crash after the commit but before the rename: the file is not imported twice.
        std::fs::rename(audit.join("routes-2026-11-19.jsonl.imported"), audit.join("routes-2026-11-19.jsonl")).unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        assert_eq!(all(&log).len(), 3);
        assert!(audit.join("routes-2026-11-19.jsonl.imported").exists());
    }

    #[test]
    fn concurrent_appends_all_land_once_in_order_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(AuditLog::open(dir.path()).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|th| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let mut r = rec("2026-11-23T10:00:00+08:00", "a");
                        r.input = json!({"t": th, "i": i});
                        log.append(&[r]).unwrap();
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        drop(log);
        let log = AuditLog::open(dir.path()).unwrap();
        let read = all(&log);
        assert_eq!(read.len(), 400);
        let mut seen: Vec<(i64, i64)> = read.iter().map(|r| (r.input["t"].as_i64().unwrap(), r.input["i"].as_i64().unwrap())).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 400);
        for th in 0..8 {
            let mine: Vec<i64> = read.iter().filter(|r| r.input["t"] == th).map(|r| r.input["i"].as_i64().unwrap()).collect();
            assert_eq!(mine, (0..50).collect::<Vec<_>>(), "each thread's records in its own order");
        }
    }

    #[test]
    fn cst_days_and_months() {
        let ms = t("2026-11-30T23:59:59+08:00").timestamp_millis();
        let d = cst_day(ms);
        assert_eq!(day_date(d), NaiveDate::from_ymd_opt(2026, 11, 30).unwrap());
        assert_eq!(cst_day(ms + 1000), d + 1);
        assert_eq!(day_start_ms(d + 1), ms + 1000);
        assert_eq!(month_of_day(d) + 1, month_of_day(d + 1));
        assert_eq!(month_first_day(month_of_day(d + 1)), d + 1);
    }
}
