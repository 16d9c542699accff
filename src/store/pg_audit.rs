//! The audit log shared by the replicas of a PostgreSQL store: table `citygrid_audit`, one row
//! per routing decision from any replica, the columns of the SQLite log's `decisions`
//! ([`super::audit`]) with `id` a `bigserial`, plus count tables kept in the same transactions.
//!
//! # Tables
//! - `citygrid_audit`: the decisions; indexes `(at_ms, id)` and `(unit, at_ms, id)`, which
//!   pages walk by keyset.
//! - `citygrid_audit_places (id, chain)` and `citygrid_audit_types (id, case_kind, case_type)`:
//!   dictionaries (ids never reused nor removed).
//! - `citygrid_audit_counts_day (day, place, type, n)` and `citygrid_audit_counts_month (month,
//!   place, type, n)`: decisions per China-Standard-Time day / calendar month, per place and case
//!   type (the day and month numbers of the SQLite log). Every write of decisions adds to them
//!   in its own transaction (one `INSERT … ON CONFLICT DO UPDATE SET n = n + excluded.n` per
//!   table, keys sorted so that concurrent writers lock rows in one order), so they are exact
//!   over every replica's decisions and durable with them.
//! - `citygrid_audit_counts_built`: one row once the counts hold every decision. A log written by
//!   an earlier release (rows, no counts) gets its counts built once when the store is opened,
//!   under the store's schema lock ([`migrate`]).
//!
//! # Durability and concurrency
//! [`PgAudit::append`] returns once the transaction holding its records (and their counts) is
//! committed (`synchronous_commit` as the server is configured, on by default: flushed to the
//! WAL). Each call takes a connection of its own from a small pool, so concurrent callers write
//! in parallel transactions and PostgreSQL flushes their commits together (one WAL flush covers
//! every commit before it).
//!
//! # Statistics
//! [`PgAudit::id_counts`] reads, in one repeatable-read snapshot, whole calendar months from
//! `counts_month`, the remaining whole days from `counts_day`, and groups only the decisions of
//! the partial days at the window's edges: the same split, and so the same answer, as the SQLite
//! log's. Unlike the SQLite log, retention also removes the counts of the decisions it deletes
//! (the counts always equal the rows).
//!
//! Each replica keeps the counts of closed months and days in memory ([`CLOSED_CACHE`] of
//! each): a month or day that ended more than two days ago by the replica's clock. Routing
//! writes decisions at the time they are made, so such a period only changes through a write
//! that touches it anyway — retention, a copied or bulk-loaded log, a decision written with an
//! old time — and every such write, in its own transaction, bumps `citygrid_audit_epoch` (any
//! write to a day that ended more than a day ago by the writer's clock: replicas' clocks may
//! differ by up to a day). A reader reads the epoch in the snapshot of its statistics and drops
//! what it cached when it changed; so a year's statistics read the last two days' counts and
//! the decisions of the edge days only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use postgres::types::ToSql;
use postgres::{Client, GenericClient};

use super::StoreError;
use super::audit::{COUNT_CAP, Page, PageError, PageQuery, RETENTION_BATCH, cst_day, day_start_ms, month_first_day, month_of_day};
use super::pg::PgStore;
use crate::caselog::{self, AuditRecord, CaseCount, RuleRef};

/// The tables, created with the store's ([`PgStore::connect`], under its schema lock).
pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS citygrid_audit (
    id bigserial PRIMARY KEY,
    at_ms bigint NOT NULL,
    at_offset_s integer NOT NULL,
    case_kind text NOT NULL,
    case_type text NOT NULL,
    urgency text,
    grid text,
    chain text NOT NULL,
    unit text NOT NULL,
    unit_code text,
    unit_role text,
    rule_line bigint,
    rule_scope text,
    zone text,
    due text,
    versions text NOT NULL,
    input text NOT NULL,
    warnings text,
    outside_coverage boolean NOT NULL,
    replica text
);
CREATE INDEX IF NOT EXISTS citygrid_audit_at ON citygrid_audit (at_ms, id);
CREATE INDEX IF NOT EXISTS citygrid_audit_unit_at ON citygrid_audit (unit, at_ms, id);
CREATE TABLE IF NOT EXISTS citygrid_audit_places (id serial PRIMARY KEY, chain text NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS citygrid_audit_types (id serial PRIMARY KEY, case_kind text NOT NULL, case_type text NOT NULL, UNIQUE (case_kind, case_type));
CREATE TABLE IF NOT EXISTS citygrid_audit_counts_day (day integer NOT NULL, place integer NOT NULL, type integer NOT NULL, n bigint NOT NULL, PRIMARY KEY (day, place, type));
CREATE TABLE IF NOT EXISTS citygrid_audit_counts_month (month integer NOT NULL, place integer NOT NULL, type integer NOT NULL, n bigint NOT NULL, PRIMARY KEY (month, place, type));
CREATE TABLE IF NOT EXISTS citygrid_audit_counts_built (id integer PRIMARY KEY CHECK (id = 1));
CREATE TABLE IF NOT EXISTS citygrid_audit_epoch (id integer PRIMARY KEY CHECK (id = 1), epoch bigint NOT NULL);
INSERT INTO citygrid_audit_epoch (id, epoch) VALUES (1, 0) ON CONFLICT DO NOTHING;
"#;

/// Builds the count tables from the rows (dictionaries included), replacing what they held.
/// The counts are written in key order, so that a day's (or month's) rows lie together in the
/// table as appends leave them: statistics read the counts of the newest days from the table
/// (at 10M decisions, ~14,000 rows a day; scattered by a hash aggregate over the whole table,
/// they cost one page read each).
const REBUILD_COUNTS: &str = r#"
INSERT INTO citygrid_audit_places (chain) SELECT DISTINCT chain FROM citygrid_audit ORDER BY 1 ON CONFLICT DO NOTHING;
INSERT INTO citygrid_audit_types (case_kind, case_type) SELECT DISTINCT case_kind, case_type FROM citygrid_audit ORDER BY 1, 2 ON CONFLICT DO NOTHING;
DELETE FROM citygrid_audit_counts_day;
DELETE FROM citygrid_audit_counts_month;
INSERT INTO citygrid_audit_counts_day (day, place, type, n)
    SELECT a.day, p.id, t.id, a.n FROM (
        SELECT floor((at_ms + 28800000)::numeric / 86400000)::integer AS day, chain, case_kind, case_type, count(*) AS n
        FROM citygrid_audit GROUP BY 1, 2, 3, 4
    ) a
    JOIN citygrid_audit_places p ON p.chain = a.chain
    JOIN citygrid_audit_types t ON t.case_kind = a.case_kind AND t.case_type = a.case_type
    ORDER BY 1, 2, 3;
INSERT INTO citygrid_audit_counts_month (month, place, type, n)
    SELECT extract(year FROM d)::integer * 12 + extract(month FROM d)::integer - 1, place, type, sum(n)::bigint
    FROM (SELECT date '1970-01-01' + day AS d, place, type, n FROM citygrid_audit_counts_day) s GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
INSERT INTO citygrid_audit_counts_built (id) VALUES (1) ON CONFLICT DO NOTHING;
UPDATE citygrid_audit_epoch SET epoch = epoch + 1;
"#;

/// Builds the counts of a log that has none yet (written by a release without them); called
/// in the transaction of [`PgStore::connect`] that holds the schema lock, so once per database.
pub(super) fn migrate(tx: &mut impl GenericClient) -> Result<(), postgres::Error> {
    if tx.query_opt("SELECT 1 FROM citygrid_audit_counts_built", &[])?.is_none() {
        tx.batch_execute(REBUILD_COUNTS)?;
    }
    Ok(())
}

const COLUMNS: &str = "id, at_ms, at_offset_s, case_kind, case_type, urgency, grid, chain, unit, unit_code, unit_role, rule_line, rule_scope, zone, due, versions, input, warnings, outside_coverage";

/// Idle connections kept for the next caller.
const POOL: usize = 8;

/// The shared audit log of a PostgreSQL store.
pub struct PgAudit {
    store: Arc<PgStore>,
    /// Idle connections of this replica (a caller takes one, or connects).
    idle: Mutex<Vec<Client>>,
    /// The dictionaries as far as this replica has seen them (only committed ids).
    dict: Mutex<Dict>,
    /// Closed months' and days' counts (module doc).
    closed: Mutex<ClosedCache>,
    /// Written into each row's `replica` column: which replica decided.
    replica: String,
}

/// The place and case type dictionaries, by id and by text.
#[derive(Default)]
struct Dict {
    /// Chain text by place id (gaps: empty).
    chains: Vec<String>,
    place_id: HashMap<String, i32>,
    /// `(case_kind, case_type)` by type id (gaps: empty).
    types: Vec<(String, String)>,
    type_id: HashMap<(String, String), i32>,
}

impl Dict {
    fn add_place(&mut self, id: i32, chain: String) {
        let i = id as usize;
        if i >= self.chains.len() {
            self.chains.resize(i + 1, String::new());
        }
        self.chains[i].clone_from(&chain);
        self.place_id.insert(chain, id);
    }

    fn add_type(&mut self, id: i32, kind: String, ty: String) {
        let i = id as usize;
        if i >= self.types.len() {
            self.types.resize(i + 1, Default::default());
        }
        self.types[i] = (kind.clone(), ty.clone());
        self.type_id.insert((kind, ty), id);
    }

    fn has_place(&self, id: i32) -> bool {
        self.chains.get(id as usize).is_some_and(|c| self.place_id.get(c) == Some(&id))
    }

    fn has_type(&self, id: i32) -> bool {
        self.types.get(id as usize).is_some_and(|t| self.type_id.get(t) == Some(&id))
    }

    /// Reads the entries of the ids given (those missing here).
    fn load_ids(&mut self, c: &mut impl GenericClient, places: &[i32], types: &[i32]) -> Result<(), postgres::Error> {
        if !places.is_empty() {
            for r in c.query("SELECT id, chain FROM citygrid_audit_places WHERE id = ANY($1)", &[&places])? {
                self.add_place(r.get(0), r.get(1));
            }
        }
        if !types.is_empty() {
            for r in c.query("SELECT id, case_kind, case_type FROM citygrid_audit_types WHERE id = ANY($1)", &[&types])? {
                self.add_type(r.get(0), r.get(1), r.get(2));
            }
        }
        Ok(())
    }

    /// Reads the ids of `chains` and `types` (text), first adding those the dictionaries lack.
    fn ensure(&mut self, c: &mut impl GenericClient, chains: &[String], types: &[(String, String)]) -> Result<(), postgres::Error> {
        let mut new_chains: Vec<&String> = chains.iter().filter(|ch| !self.place_id.contains_key(*ch)).collect();
        if !new_chains.is_empty() {
            // Sorted: concurrent writers of the same new entries wait in one order.
            new_chains.sort_unstable();
            new_chains.dedup();
            c.execute("INSERT INTO citygrid_audit_places (chain) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING", &[&new_chains])?;
            for r in c.query("SELECT id, chain FROM citygrid_audit_places WHERE chain = ANY($1)", &[&new_chains])? {
                self.add_place(r.get(0), r.get(1));
            }
        }
        let mut new_types: Vec<&(String, String)> = types.iter().filter(|t| !self.type_id.contains_key(*t)).collect();
        if !new_types.is_empty() {
            new_types.sort_unstable();
            new_types.dedup();
            let kinds: Vec<&str> = new_types.iter().map(|t| t.0.as_str()).collect();
            let codes: Vec<&str> = new_types.iter().map(|t| t.1.as_str()).collect();
            c.execute(
                "INSERT INTO citygrid_audit_types (case_kind, case_type) SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
                &[&kinds, &codes],
            )?;
            for r in c.query(
                "SELECT id, case_kind, case_type FROM citygrid_audit_types WHERE (case_kind, case_type) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
                &[&kinds, &codes],
            )? {
                self.add_type(r.get(0), r.get(1), r.get(2));
            }
        }
        Ok(())
    }
}

/// Counts by (day, place id, type id): what one write adds to (or retention takes from) the
/// count tables.
type DayCounts = HashMap<(i32, i32, i32), i64>;

const DAY_MS: i64 = 86_400_000;

/// How many closed months, and how many closed days, a replica keeps in memory (the newest
/// ones read).
const CLOSED_CACHE: usize = 800;

/// A count table's period: its table, key column, and when a period ends (unix ms).
#[derive(Clone, Copy)]
enum Period {
    Month,
    Day,
}

impl Period {
    fn table(self) -> &'static str {
        match self {
            Period::Month => "citygrid_audit_counts_month",
            Period::Day => "citygrid_audit_counts_day",
        }
    }

    fn end_ms(self, key: i32) -> i64 {
        match self {
            Period::Month => day_start_ms(month_first_day(i64::from(key) + 1)),
            Period::Day => day_start_ms(i64::from(key) + 1),
        }
    }

    /// Whether a reader may cache the period's counts at `now_ms`: it ended more than two
    /// days ago.
    fn is_closed(self, key: i32, now_ms: i64) -> bool {
        self.end_ms(key) + 2 * DAY_MS < now_ms
    }
}

/// One month's or day's counts: `(place, type, n)`.
type PeriodCounts = Arc<Vec<(i32, i32, u64)>>;

/// Closed months' and days' counts as read under `epoch`.
#[derive(Default)]
struct ClosedCache {
    epoch: i64,
    months: std::collections::BTreeMap<i32, PeriodCounts>,
    days: std::collections::BTreeMap<i32, PeriodCounts>,
}

impl ClosedCache {
    fn of(&mut self, period: Period) -> &mut std::collections::BTreeMap<i32, PeriodCounts> {
        match period {
            Period::Month => &mut self.months,
            Period::Day => &mut self.days,
        }
    }
}

/// `(place, type, n)` triples of `parts` summed per (place, type) (a year's cached months and
/// days repeat each pair hundreds of times), read where they lie (no copy into one vector): in
/// a dense array when the ids are small, as dictionary ids are; in a map otherwise. Ids are
/// non-negative.
fn sum_by_pair(parts: &[&[(i32, i32, u64)]]) -> Vec<(u32, u32, u64)> {
    let all = || parts.iter().flat_map(|p| p.iter());
    let places = all().map(|c| c.0 as usize + 1).max().unwrap_or(0);
    let types = all().map(|c| c.1 as usize + 1).max().unwrap_or(0);
    if places.saturating_mul(types) <= 1 << 22 {
        let mut dense = vec![0u64; places * types];
        for &(p, t, n) in all() {
            dense[p as usize * types + t as usize] += n;
        }
        dense.iter().enumerate().filter(|(_, n)| **n > 0).map(|(i, &n)| ((i / types) as u32, (i % types) as u32, n)).collect()
    } else {
        let mut map: HashMap<(u32, u32), u64> = HashMap::new();
        for &(p, t, n) in all() {
            *map.entry((p as u32, t as u32)).or_default() += n;
        }
        map.into_iter().map(|((p, t), n)| (p, t, n)).collect()
    }
}

/// The distinct values of `ids`, sorted.
fn distinct(ids: impl Iterator<Item = u32>) -> Vec<u32> {
    let mut v: Vec<u32> = ids.collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Adds `counts` (negative: removes) to `counts_day` and `counts_month`, keys in sorted order
/// (no deadlock between writers), and deletes the rows that fall to zero.
fn add_counts(c: &mut impl GenericClient, counts: &DayCounts) -> Result<(), postgres::Error> {
    if counts.is_empty() {
        return Ok(());
    }
    let mut months: HashMap<(i32, i32, i32), i64> = HashMap::new();
    for (&(day, place, ty), &n) in counts {
        *months.entry((month_of_day(i64::from(day)) as i32, place, ty)).or_default() += n;
    }
    let now = Utc::now().timestamp_millis();
    if counts.keys().any(|&(day, _, _)| Period::Day.end_ms(day) < now - DAY_MS) {
        // A day (and month) some replica may hold in its cache of closed ones: see the module doc.
        c.execute("UPDATE citygrid_audit_epoch SET epoch = epoch + 1", &[])?;
    }
    for (table, key, rows) in [("citygrid_audit_counts_day", "day", counts), ("citygrid_audit_counts_month", "month", &months)] {
        let mut rows: Vec<(&(i32, i32, i32), &i64)> = rows.iter().filter(|(_, n)| **n != 0).collect();
        rows.sort_unstable();
        let k: Vec<i32> = rows.iter().map(|r| r.0.0).collect();
        let p: Vec<i32> = rows.iter().map(|r| r.0.1).collect();
        let t: Vec<i32> = rows.iter().map(|r| r.0.2).collect();
        let n: Vec<i64> = rows.iter().map(|r| *r.1).collect();
        c.execute(
            &format!(
                "INSERT INTO {table} AS c ({key}, place, type, n) SELECT * FROM unnest($1::integer[], $2::integer[], $3::integer[], $4::bigint[]) \
                 ON CONFLICT ({key}, place, type) DO UPDATE SET n = c.n + excluded.n"
            ),
            &[&k, &p, &t, &n],
        )?;
        if n.iter().any(|&x| x < 0) {
            c.execute(
                &format!("DELETE FROM {table} c USING unnest($1::integer[], $2::integer[], $3::integer[]) v(k, p, t) WHERE c.{key} = v.k AND c.place = v.p AND c.type = v.t AND c.n <= 0"),
                &[&k, &p, &t],
            )?;
        }
    }
    Ok(())
}

/// The day counts of `records`, adding the dictionary entries they need to `dict` (a copy:
/// the caller keeps it only once the transaction is committed).
fn record_counts(c: &mut impl GenericClient, dict: &mut Dict, records: &[AuditRecord]) -> Result<DayCounts, postgres::Error> {
    let mut by_text: HashMap<(i32, String, &str, &str), i64> = HashMap::new();
    for r in records {
        *by_text.entry((cst_day(r.at.timestamp_millis()) as i32, caselog::chain_text(&r.chain), &r.case_kind, &r.case_type)).or_default() += 1;
    }
    let chains: Vec<String> = by_text.keys().map(|k| k.1.clone()).collect();
    let types: Vec<(String, String)> = by_text.keys().map(|k| (k.2.to_owned(), k.3.to_owned())).collect();
    dict.ensure(c, &chains, &types)?;
    let mut out = DayCounts::new();
    for ((day, chain, kind, ty), n) in by_text {
        let place = dict.place_id[&chain];
        let t = dict.type_id[&(kind.to_owned(), ty.to_owned())];
        *out.entry((day, place, t)).or_default() += n;
    }
    Ok(out)
}

/// Inserts `records` and adds their counts, in the caller's transaction.
fn write(c: &mut impl GenericClient, dict: &mut Dict, records: &[AuditRecord], replica: Option<&str>, keep_ids: bool) -> Result<(), postgres::Error> {
    insert(c, records, replica, keep_ids)?;
    let counts = record_counts(c, dict, records)?;
    add_counts(c, &counts)
}

/// The window `[since, until)` split as the SQLite log splits it: whole months, whole days
/// outside them, and the partial days at the edges (read from the rows).
struct Split {
    /// Months `[m0, m1)`.
    months: (i64, i64),
    /// Two ranges of whole days.
    days: [(i64, i64); 2],
    /// Two ranges of unix ms read from the rows.
    raw: [(i64, i64); 2],
}

fn split(since: i64, until: i64) -> Split {
    let none = Split { months: (0, 0), days: [(0, 0), (0, 0)], raw: [(0, 0), (0, 0)] };
    if since >= until {
        return none;
    }
    let d0 = cst_day(since - 1) + 1;
    let d1 = cst_day(until);
    if d0 >= d1 {
        return Split { raw: [(since, until), (0, 0)], ..none };
    }
    let raw = [(since, day_start_ms(d0)), (day_start_ms(d1), until)];
    let m0 = if month_first_day(month_of_day(d0)) == d0 { month_of_day(d0) } else { month_of_day(d0) + 1 };
    let m1 = month_of_day(d1);
    if m0 < m1 {
        Split { months: (m0, m1), days: [(d0, month_first_day(m0)), (month_first_day(m1), d1)], raw }
    } else {
        Split { months: (0, 0), days: [(d0, d1), (0, 0)], raw }
    }
}

impl PgAudit {
    /// Opens the log of `store` (its tables were created by [`PgStore::connect`]), writing
    /// `replica` as the decider.
    pub fn open(store: Arc<PgStore>, replica: &str) -> Result<PgAudit, StoreError> {
        let client = store.client()?;
        Ok(PgAudit { store, idle: Mutex::new(vec![client]), dict: Mutex::new(Dict::default()), closed: Mutex::default(), replica: replica.to_owned() })
    }

    /// Runs `f` on a connection of the pool (connecting when none is idle), which goes back to
    /// the pool afterwards unless it was lost.
    fn with_client<T>(&self, f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>) -> Result<T, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        let mut client = match idle {
            Some(c) if !c.is_closed() => c,
            _ => self.store.client()?,
        };
        let result = f(&mut client);
        if !client.is_closed() {
            let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if idle.len() < POOL {
                idle.push(client);
            }
        }
        result.map_err(|e| err(&self.store, &e))
    }

    /// A copy of the dictionaries known so far.
    fn dict_copy(&self) -> Dict {
        let d = self.dict.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Dict { chains: d.chains.clone(), place_id: d.place_id.clone(), types: d.types.clone(), type_id: d.type_id.clone() }
    }

    /// Keeps the dictionaries of a committed transaction.
    fn keep_dict(&self, dict: Dict) {
        let mut d = self.dict.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if dict.place_id.len() >= d.place_id.len() && dict.type_id.len() >= d.type_id.len() {
            *d = dict;
        } else {
            for (chain, id) in dict.place_id {
                d.add_place(id, chain);
            }
            for (t, id) in dict.type_id {
                d.add_type(id, t.0, t.1);
            }
        }
    }

    /// Appends `records` (ids assigned by the database) with their counts and returns once
    /// they are committed.
    pub fn append(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut dict = self.dict_copy();
        self.with_client(|c| {
            let mut tx = c.transaction()?;
            write(&mut tx, &mut dict, records, Some(&self.replica), false)?;
            tx.commit()
        })?;
        self.keep_dict(dict);
        Ok(())
    }

    /// Rebuilds the count tables from the rows (what opening does once for a log written by a
    /// release without them; also after rows were loaded in bulk, e.g. with `COPY`).
    pub fn rebuild_counts(&self) -> Result<(), StoreError> {
        self.with_client(|c| {
            let mut tx = c.transaction()?;
            tx.batch_execute(REBUILD_COUNTS)?;
            tx.commit()
        })
    }

    /// Loads `batches` (called until it gives `None`) with one `COPY` and rebuilds the count
    /// tables, in one transaction: a bulk load (benchmarks, migrations), much faster than
    /// appends. Returns how many decisions were loaded.
    pub fn bulk_load(&self, batches: &mut dyn FnMut() -> Option<Vec<AuditRecord>>) -> Result<u64, StoreError> {
        use std::io::Write as _;
        let columns = COLUMNS.trim_start_matches("id, ");
        let loaded = self.with_client(|c| {
            let mut tx = c.transaction()?;
            let mut n = 0u64;
            {
                let mut w = tx.copy_in(&format!("COPY citygrid_audit ({columns}, replica) FROM STDIN"))?;
                let mut line = String::new();
                while let Some(batch) = batches() {
                    line.clear();
                    for r in &batch {
                        copy_line(r, Some(&self.replica), &mut line);
                    }
                    n += batch.len() as u64;
                    if let Err(e) = w.write_all(line.as_bytes()) {
                        // Dropped unfinished: the COPY and the transaction are aborted.
                        return Ok(Err(e.to_string()));
                    }
                }
                w.finish()?;
            }
            tx.batch_execute(REBUILD_COUNTS)?;
            tx.commit()?;
            Ok(Ok(n))
        })?;
        loaded.map_err(|message| StoreError::Postgres { store: self.store.shown().to_owned(), message: format!("audit log: COPY: {message}") })
    }

    /// Whether the log holds no decision.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        self.with_client(|c| Ok(c.query_one("SELECT NOT EXISTS (SELECT 1 FROM citygrid_audit)", &[])?.get(0)))
    }

    /// The statement of a page (`$1` from, `$2` until, `$3` after id, `$4` unit, `$5` limit):
    /// a keyset walk of the index `(at_ms, id)`, or `(unit, at_ms, id)` with a unit.
    fn page_sql(unit: bool) -> String {
        let unit_clause = if unit { "unit = $4" } else { "$4::text IS NULL" };
        format!("SELECT {COLUMNS} FROM citygrid_audit WHERE {unit_clause} AND (at_ms, id) > ($1, $3) AND at_ms < $2 ORDER BY at_ms, id LIMIT $5")
    }

    /// The cursor of a page query: `(from, after id)`, or the unknown cursor.
    fn cursor(c: &mut Client, q: &PageQuery) -> Result<Result<(i64, i64), i64>, postgres::Error> {
        let since = q.since.map_or(i64::MIN, |t| t.timestamp_millis());
        let cursor = match q.after {
            None => None,
            Some(id) => match c.query_opt("SELECT at_ms FROM citygrid_audit WHERE id = $1", &[&id])? {
                Some(r) => Some((r.get::<_, i64>(0), id)),
                None => return Ok(Err(id)),
            },
        };
        Ok(Ok(match cursor {
            Some((at, id)) if at >= since => (at, id),
            _ => (since, i64::MIN),
        }))
    }

    /// One page of decisions, by keyset on `(at_ms, id)` like the SQLite log's: its cost grows
    /// with the page, not with the log (plus at most [`COUNT_CAP`] index entries for `total`).
    pub fn page(&self, q: &PageQuery) -> Result<Page, PageError> {
        let since = q.since.map_or(i64::MIN, |t| t.timestamp_millis());
        let until = q.until.map_or(i64::MAX, |t| t.timestamp_millis());
        let limit = q.limit.max(1);
        let out = self.with_client(|c| {
            let (from, after_id) = match Self::cursor(c, q)? {
                Ok(x) => x,
                Err(id) => return Ok(Err(id)),
            };
            let rows = c.query(&Self::page_sql(q.unit.is_some()), &[&from, &until, &after_id, &q.unit, &((limit + 1) as i64)])?;
            let mut records: Vec<AuditRecord> = rows.iter().map(record).collect();
            let next = if records.len() > limit {
                records.truncate(limit);
                records.last().map(|r| r.id)
            } else {
                None
            };
            let unit_clause = if q.unit.is_some() { "unit = $3" } else { "$3::text IS NULL" };
            let n: i64 = c
                .query_one(
                    &format!("SELECT count(*) FROM (SELECT 1 FROM citygrid_audit WHERE {unit_clause} AND at_ms >= $1 AND at_ms < $2 LIMIT $4) s"),
                    &[&since, &until, &q.unit, &((COUNT_CAP + 1) as i64)],
                )?
                .get(0);
            let total = (n as u64 <= COUNT_CAP).then_some(n as u64);
            Ok(Ok(Page { records, next, total }))
        })?;
        out.map_err(PageError::UnknownCursor)
    }

    /// PostgreSQL's plan (`EXPLAIN`) of the statement that reads the page `q` (the bench prints
    /// it to show the index in use).
    pub fn page_plan(&self, q: &PageQuery) -> Result<String, StoreError> {
        let until = q.until.map_or(i64::MAX, |t| t.timestamp_millis());
        self.with_client(|c| {
            let (from, after_id) = Self::cursor(c, q)?.unwrap_or((i64::MIN, i64::MIN));
            let rows =
                c.query(&format!("EXPLAIN {}", Self::page_sql(q.unit.is_some())), &[&from, &until, &after_id, &q.unit, &((q.limit.max(1) + 1) as i64)])?;
            Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>().join("\n"))
        })
    }

    /// Decisions of every replica per place and case type with `since ≤ at < until`.
    pub fn case_counts(&self, since: Option<DateTime<FixedOffset>>, until: Option<DateTime<FixedOffset>>) -> Result<Vec<CaseCount>, StoreError> {
        Ok(self.id_counts(since, until)?.to_case_counts())
    }

    /// The counts of [`PgAudit::case_counts`] by dictionary id, read in one repeatable-read
    /// snapshot: whole months from `counts_month`, whole days from `counts_day` (summed in the
    /// database), and the decisions of the partial days at the edges grouped by text (at most
    /// two days of rows, through the index on `at_ms`).
    pub fn id_counts(&self, since: Option<DateTime<FixedOffset>>, until: Option<DateTime<FixedOffset>>) -> Result<caselog::IdCounts, StoreError> {
        let mut dict = self.dict_copy();
        let out = self.with_client(|c| {
            let mut tx = c.build_transaction().isolation_level(postgres::IsolationLevel::RepeatableRead).read_only(true).start()?;
            let (first, last): (Option<i32>, Option<i32>) = {
                let r = tx.query_one("SELECT min(day), max(day) FROM citygrid_audit_counts_day", &[])?;
                (r.get(0), r.get(1))
            };
            let Some((first_day, last_day)) = first.zip(last).map(|(a, b)| (i64::from(a), i64::from(b))) else {
                return Ok(caselog::IdCounts::default());
            };
            let since = since.map_or(day_start_ms(first_day), |t| t.timestamp_millis().max(day_start_ms(first_day)));
            let until = until.map_or(day_start_ms(last_day + 1), |t| t.timestamp_millis().min(day_start_ms(last_day + 1)));
            let s = split(since, until);
            let to_i32 = |x: i64| x.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
            // Closed months and days (a prefix of each range) from the cache, or read once
            // under this snapshot's epoch; the others are summed in the database below.
            let now = Utc::now().timestamp_millis();
            let ranges = [
                (Period::Month, to_i32(s.months.0), to_i32(s.months.1)),
                (Period::Day, to_i32(s.days[0].0), to_i32(s.days[0].1)),
                (Period::Day, to_i32(s.days[1].0), to_i32(s.days[1].1)),
            ];
            let open: Vec<(i32, i32)> = ranges.iter().map(|&(p, a, b)| ((a..b).find(|&k| !p.is_closed(k, now)).unwrap_or(b), b)).collect();
            let mut closed: Vec<PeriodCounts> = Vec::new();
            if ranges.iter().zip(&open).any(|(r, o)| o.0 > r.1) {
                let epoch: i64 = tx.query_opt("SELECT epoch FROM citygrid_audit_epoch WHERE id = 1", &[])?.map_or(-1, |r| r.get(0));
                for (&(period, a, _), &(open_from, _)) in ranges.iter().zip(&open) {
                    closed.extend(self.closed_counts(&mut tx, period, a..open_from, epoch)?);
                }
            }
            let summed = tx.query(
                "SELECT place, type, sum(n)::bigint FROM ( \
                     SELECT place, type, n FROM citygrid_audit_counts_month WHERE month >= $1 AND month < $2 \
                     UNION ALL SELECT place, type, n FROM citygrid_audit_counts_day WHERE day >= $3 AND day < $4 \
                     UNION ALL SELECT place, type, n FROM citygrid_audit_counts_day WHERE day >= $5 AND day < $6 \
                 ) s GROUP BY 1, 2",
                &[&open[0].0, &open[0].1, &open[1].0, &open[1].1, &open[2].0, &open[2].1],
            )?;
            let edges = tx.query(
                "SELECT chain, case_kind, case_type, count(*) FROM citygrid_audit \
                 WHERE (at_ms >= $1 AND at_ms < $2) OR (at_ms >= $3 AND at_ms < $4) GROUP BY 1, 2, 3",
                &[&s.raw[0].0, &s.raw[0].1, &s.raw[1].0, &s.raw[1].1],
            )?;
            let open_counts: Vec<(i32, i32, u64)> = summed.iter().map(|r| (r.get(0), r.get(1), r.get::<_, i64>(2) as u64)).collect();
            let mut parts: Vec<&[(i32, i32, u64)]> = vec![&open_counts];
            parts.extend(closed.iter().map(|p| p.as_slice()));
            // Summed first: the dictionary checks below then look at each (place, type) once
            // and each id once (not once per month and day that counts it).
            let mut counts = sum_by_pair(&parts);
            // Entries this replica has not seen yet: read them in the same snapshot.
            let places: Vec<i32> = distinct(counts.iter().map(|x| x.0)).into_iter().map(|p| p as i32).filter(|&p| !dict.has_place(p)).collect();
            let types: Vec<i32> = distinct(counts.iter().map(|x| x.1)).into_iter().map(|t| t as i32).filter(|&t| !dict.has_type(t)).collect();
            dict.load_ids(&mut tx, &places, &types)?;
            let edge: Vec<(String, (String, String), u64)> = edges.iter().map(|r| (r.get(0), (r.get(1), r.get(2)), r.get::<_, i64>(3) as u64)).collect();
            let missing_places: Vec<String> = edge.iter().filter(|e| !dict.place_id.contains_key(&e.0)).map(|e| e.0.clone()).collect();
            let missing_types: Vec<(String, String)> = edge.iter().filter(|e| !dict.type_id.contains_key(&e.1)).map(|e| e.1.clone()).collect();
            if !missing_places.is_empty() || !missing_types.is_empty() {
                for r in tx.query("SELECT id, chain FROM citygrid_audit_places WHERE chain = ANY($1)", &[&missing_places])? {
                    dict.add_place(r.get(0), r.get(1));
                }
                let kinds: Vec<&str> = missing_types.iter().map(|t| t.0.as_str()).collect();
                let codes: Vec<&str> = missing_types.iter().map(|t| t.1.as_str()).collect();
                for r in tx.query(
                    "SELECT id, case_kind, case_type FROM citygrid_audit_types WHERE (case_kind, case_type) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
                    &[&kinds, &codes],
                )? {
                    dict.add_type(r.get(0), r.get(1), r.get(2));
                }
            }
            tx.commit()?;
            // Every row of the snapshot has its dictionary entries (written in its transaction);
            // should one lack them all the same, it is counted under its text.
            let known = |n: usize, has: &dyn Fn(i32) -> bool| -> Vec<bool> { (0..n).map(|i| has(i as i32)).collect() };
            let known_places = known(dict.chains.len(), &|p| dict.has_place(p));
            let known_types = known(dict.types.len(), &|t| dict.has_type(t));
            counts.retain(|&(p, t, _)| known_places.get(p as usize) == Some(&true) && known_types.get(t as usize) == Some(&true));
            let mut out = caselog::IdCounts { chains: dict.chains.clone(), types: dict.types.clone(), counts };
            for (chain, ty, n) in edge {
                let p = match dict.place_id.get(&chain) {
                    Some(&p) => p as u32,
                    None => {
                        out.chains.push(chain);
                        (out.chains.len() - 1) as u32
                    }
                };
                let t = match dict.type_id.get(&ty) {
                    Some(&t) => t as u32,
                    None => match out.types.iter().position(|x| *x == ty) {
                        Some(i) => i as u32,
                        None => {
                            out.types.push(ty);
                            (out.types.len() - 1) as u32
                        }
                    },
                };
                out.counts.push((p, t, n));
            }
            Ok(out)
        })?;
        self.keep_dict(dict);
        Ok(out)
    }

    /// The counts of the closed `period`s `keys`, from this replica's cache when it holds them
    /// under `epoch` (read in `tx`'s snapshot), else read in `tx` and kept.
    fn closed_counts(&self, tx: &mut impl GenericClient, period: Period, keys: std::ops::Range<i32>, epoch: i64) -> Result<Vec<PeriodCounts>, postgres::Error> {
        let mut out = Vec::new();
        let mut missing = Vec::new();
        {
            let mut cache = self.closed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if cache.epoch != epoch {
                *cache = ClosedCache { epoch, ..ClosedCache::default() };
            }
            let held = cache.of(period);
            for k in keys {
                match held.get(&k) {
                    Some(v) => out.push(v.clone()),
                    None => missing.push(k),
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let (table, key) = (
            period.table(),
            match period {
                Period::Month => "month",
                Period::Day => "day",
            },
        );
        let mut read: std::collections::BTreeMap<i32, Vec<(i32, i32, u64)>> = missing.iter().map(|&k| (k, Vec::new())).collect();
        for r in tx.query(&format!("SELECT {key}, place, type, n FROM {table} WHERE {key} = ANY($1)"), &[&missing])? {
            if let Some(v) = read.get_mut(&r.get::<_, i32>(0)) {
                v.push((r.get(1), r.get(2), r.get::<_, i64>(3) as u64));
            }
        }
        let mut cache = self.closed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let keep = cache.epoch == epoch && epoch >= 0;
        let held = cache.of(period);
        for (k, v) in read {
            let v = Arc::new(v);
            out.push(v.clone());
            if keep {
                held.insert(k, v);
            }
        }
        while held.len() > CLOSED_CACHE {
            held.pop_first();
        }
        Ok(out)
    }

    /// Deletes decisions with `at < cutoff`, [`RETENTION_BATCH`] rows per transaction, taking
    /// their counts off the count tables in the same transaction; gives how many.
    pub fn delete_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let cutoff = cutoff.timestamp_millis();
        let mut deleted = 0u64;
        loop {
            let mut dict = self.dict_copy();
            let n = self.with_client(|c| {
                let mut tx = c.transaction()?;
                let rows = tx.query(
                    "WITH d AS (DELETE FROM citygrid_audit WHERE id IN (SELECT id FROM citygrid_audit WHERE at_ms < $1 ORDER BY at_ms LIMIT $2) \
                     RETURNING at_ms, chain, case_kind, case_type) \
                     SELECT floor((at_ms + 28800000)::numeric / 86400000)::integer, chain, case_kind, case_type, count(*) FROM d GROUP BY 1, 2, 3, 4",
                    &[&cutoff, &(RETENTION_BATCH as i64)],
                )?;
                let gone: Vec<(i32, String, (String, String), i64)> = rows.iter().map(|r| (r.get(0), r.get(1), (r.get(2), r.get(3)), r.get(4))).collect();
                let chains: Vec<String> = gone.iter().map(|g| g.1.clone()).collect();
                let types: Vec<(String, String)> = gone.iter().map(|g| g.2.clone()).collect();
                dict.ensure(&mut tx, &chains, &types)?;
                let mut counts = DayCounts::new();
                for (day, chain, ty, n) in &gone {
                    *counts.entry((*day, dict.place_id[chain], dict.type_id[ty])).or_default() -= n;
                }
                add_counts(&mut tx, &counts)?;
                tx.commit()?;
                Ok(gone.iter().map(|g| g.3 as u64).sum::<u64>())
            })?;
            self.keep_dict(dict);
            deleted += n;
            if n < RETENTION_BATCH as u64 {
                return Ok(deleted);
            }
        }
    }

    /// Deletes decisions older than `days` now and every hour while `log` lives (every replica
    /// does: the deletes are idempotent).
    pub fn start_retention(log: &Arc<PgAudit>, days: u32) {
        super::audit::spawn_retention(Arc::downgrade(log), days, "shared audit log", |log, cutoff| log.delete_before(cutoff));
    }
}

/// Inserts `records` as decided by `replica`, 500 rows per statement; with `keep_ids`, under
/// their own ids (a copied log: then [`end_copy`]).
fn insert(c: &mut impl GenericClient, records: &[AuditRecord], replica: Option<&str>, keep_ids: bool) -> Result<(), postgres::Error> {
    let columns = if keep_ids { COLUMNS } else { COLUMNS.trim_start_matches("id, ") };
    let width = if keep_ids { 20 } else { 19 };
    for part in records.chunks(500) {
        let rows: Vec<Row> = part.iter().map(Row::of).collect();
        let mut sql = format!("INSERT INTO citygrid_audit ({columns}, replica) VALUES ");
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(rows.len() * width);
        for (i, (row, record)) in rows.iter().zip(part).enumerate() {
            if i > 0 {
                sql.push(',');
            }
            sql.push('(');
            for k in 0..width {
                if k > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!("${}", i * width + k + 1));
            }
            sql.push(')');
            if keep_ids {
                params.push(&record.id);
            }
            params.extend(row.params());
            params.push(&replica);
        }
        c.execute(&sql, &params)?;
    }
    Ok(())
}

/// Inserts decisions of another log (`citygrid store copy` from a data directory) under their
/// own ids, `replica` NULL (decided before the store), with their counts.
pub(super) fn copy_in(c: &mut impl GenericClient, records: &[AuditRecord]) -> Result<(), postgres::Error> {
    write(c, &mut Dict::default(), records, None, true)
}

/// After [`copy_in`]: new decisions get ids after the largest copied.
pub(super) fn end_copy(c: &mut impl GenericClient) -> Result<(), postgres::Error> {
    c.execute("SELECT setval(pg_get_serial_sequence('citygrid_audit', 'id'), max(id)) FROM citygrid_audit HAVING count(*) > 0", &[])?;
    Ok(())
}

/// Whether the log of the connection's database holds no decision.
pub(super) fn is_empty_in(c: &mut impl GenericClient) -> Result<bool, postgres::Error> {
    Ok(c.query_one("SELECT NOT EXISTS (SELECT 1 FROM citygrid_audit)", &[])?.get(0))
}

/// Every decision in `(at, id)` order, streamed and handed to `f` in batches of
/// [`super::audit::EXPORT_BATCH`] (`citygrid store copy` into a data directory). Returns how
/// many.
pub(super) fn export(c: &mut Client, shown: &str, f: &mut dyn FnMut(&[AuditRecord]) -> Result<(), StoreError>) -> Result<u64, StoreError> {
    use postgres::fallible_iterator::FallibleIterator;
    let e = |e: postgres::Error| StoreError::Postgres { store: shown.to_owned(), message: format!("audit log: {e}") };
    let mut tx = c.transaction().map_err(e)?;
    let params: [&(dyn ToSql + Sync); 0] = [];
    let mut rows = tx.query_raw(&format!("SELECT {COLUMNS} FROM citygrid_audit ORDER BY at_ms, id"), params).map_err(e)?;
    let mut batch = Vec::with_capacity(super::audit::EXPORT_BATCH);
    let mut total = 0u64;
    while let Some(row) = rows.next().map_err(e)? {
        batch.push(record(&row));
        if batch.len() == super::audit::EXPORT_BATCH {
            f(&batch)?;
            total += batch.len() as u64;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        f(&batch)?;
        total += batch.len() as u64;
    }
    drop(rows);
    tx.commit().map_err(e)?;
    Ok(total)
}

/// Appends the `COPY … FROM STDIN` text line of `r` (the columns of [`COLUMNS`] without `id`,
/// then `replica`) to `out`.
fn copy_line(r: &AuditRecord, replica: Option<&str>, out: &mut String) {
    use std::fmt::Write as _;
    fn field(out: &mut String, v: Option<&str>) {
        match v {
            None => out.push_str("\\N"),
            Some(s) => {
                for ch in s.chars() {
                    match ch {
                        '\\' => out.push_str("\\\\"),
                        '\t' => out.push_str("\\t"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        c => out.push(c),
                    }
                }
            }
        }
        out.push('\t');
    }
    let row = Row::of(r);
    let _ = write!(out, "{}\t{}\t", row.at_ms, row.offset);
    field(out, Some(&row.case_kind));
    field(out, Some(&row.case_type));
    field(out, row.urgency.as_deref());
    field(out, row.grid.as_deref());
    field(out, Some(&row.chain));
    field(out, Some(&row.unit));
    field(out, row.unit_code.as_deref());
    field(out, row.unit_role.as_deref());
    match row.rule_line {
        Some(l) => {
            let _ = write!(out, "{l}\t");
        }
        None => out.push_str("\\N\t"),
    }
    field(out, row.rule_scope.as_deref());
    field(out, row.zone.as_deref());
    field(out, row.due.as_deref());
    field(out, Some(&row.versions));
    field(out, Some(&row.input));
    field(out, row.warnings.as_deref());
    out.push_str(if row.outside { "t\t" } else { "f\t" });
    field(out, replica);
    out.pop();
    out.push('\n');
}

fn err(store: &PgStore, e: &postgres::Error) -> StoreError {
    let message = match e.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => e.to_string(),
    };
    StoreError::Postgres { store: store.shown().to_owned(), message: format!("audit log: {message}") }
}

/// A record's column values, owned for the insert's parameters.
struct Row {
    at_ms: i64,
    offset: i32,
    case_kind: String,
    case_type: String,
    urgency: Option<String>,
    grid: Option<String>,
    chain: String,
    unit: String,
    unit_code: Option<String>,
    unit_role: Option<String>,
    rule_line: Option<i64>,
    rule_scope: Option<String>,
    zone: Option<String>,
    due: Option<String>,
    versions: String,
    input: String,
    warnings: Option<String>,
    outside: bool,
}

impl Row {
    fn of(r: &AuditRecord) -> Row {
        Row {
            at_ms: r.at.timestamp_millis(),
            offset: r.at.offset().local_minus_utc(),
            case_kind: r.case_kind.clone(),
            case_type: r.case_type.clone(),
            urgency: r.urgency.clone(),
            grid: r.grid.clone(),
            chain: caselog::chain_text(&r.chain),
            unit: r.unit.clone(),
            unit_code: r.unit_code.clone(),
            unit_role: r.unit_role.clone(),
            rule_line: r.rule.as_ref().map(|x| x.line as i64),
            rule_scope: r.rule.as_ref().map(|x| x.scope.clone()),
            zone: r.zone.clone(),
            due: r.due.clone(),
            versions: serde_json::to_string(&r.versions).expect("versions to JSON"),
            input: serde_json::to_string(&r.input).expect("input to JSON"),
            warnings: (!r.warnings.is_empty()).then(|| serde_json::to_string(&r.warnings).expect("warnings to JSON")),
            outside: r.outside_coverage,
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 18] {
        [
            &self.at_ms,
            &self.offset,
            &self.case_kind,
            &self.case_type,
            &self.urgency,
            &self.grid,
            &self.chain,
            &self.unit,
            &self.unit_code,
            &self.unit_role,
            &self.rule_line,
            &self.rule_scope,
            &self.zone,
            &self.due,
            &self.versions,
            &self.input,
            &self.warnings,
            &self.outside,
        ]
    }
}

fn record(r: &postgres::Row) -> AuditRecord {
    let at_ms: i64 = r.get(1);
    let offset = FixedOffset::east_opt(r.get(2)).unwrap_or_else(crate::rules::china_tz);
    let at = offset.timestamp_millis_opt(at_ms).single().unwrap_or_else(|| Utc.timestamp_millis_opt(0).unwrap().fixed_offset());
    let json = |i: usize| r.get::<_, Option<String>>(i).and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok());
    let rule_line: Option<i64> = r.get(11);
    AuditRecord {
        id: r.get(0),
        at,
        case_kind: r.get(3),
        case_type: r.get(4),
        urgency: r.get(5),
        grid: r.get(6),
        chain: caselog::chain_codes(&r.get::<_, String>(7)),
        unit: r.get(8),
        unit_code: r.get(9),
        unit_role: r.get(10),
        rule: rule_line.map(|line| RuleRef { line: line as u64, scope: r.get::<_, Option<String>>(12).unwrap_or_default() }),
        zone: r.get(13),
        due: r.get(14),
        versions: json(15).and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default(),
        input: json(16).unwrap_or(serde_json::Value::Null),
        warnings: json(17).and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default(),
        outside_coverage: r.get(18),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sum of [`sum_by_pair`] over several parts, dense (small ids) or in a map (large ids),
    /// equals a brute-force sum of the concatenated triples.
    #[test]
    fn sums_by_pair_over_parts_equal_a_brute_force_sum() {
        for scale in [1, 5000] {
            let a: Vec<(i32, i32, u64)> = (0..300).map(|i| ((i % 17) * scale, (i % 5) * scale, (i + 1) as u64)).collect();
            let b: Vec<(i32, i32, u64)> = (0..200).map(|i| ((i % 13) * scale, (i % 7) * scale, 2)).collect();
            let c: Vec<(i32, i32, u64)> = Vec::new();
            let mut got = sum_by_pair(&[&a, &c, &b]);
            got.sort_unstable();
            let mut want: std::collections::BTreeMap<(u32, u32), u64> = std::collections::BTreeMap::new();
            for &(p, t, n) in a.iter().chain(&b) {
                *want.entry((p as u32, t as u32)).or_default() += n;
            }
            let want: Vec<(u32, u32, u64)> = want.into_iter().map(|((p, t), n)| (p, t, n)).collect();
            assert_eq!(got, want, "scale {scale}");
            assert_eq!(distinct(got.iter().map(|x| x.1)), (0..7).map(|t| (t * scale) as u32).collect::<Vec<_>>());
        }
        assert!(sum_by_pair(&[]).is_empty());
    }
}
