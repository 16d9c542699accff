//! The audit log shared by the replicas of a PostgreSQL store: table `citygrid_audit`, one row
//! per routing decision from any replica, the columns of the SQLite log's `decisions`
//! ([`super::audit`]) with `id` a `bigserial`.
//!
//! # Durability
//! [`PgAudit::append`] returns once the transaction holding its records is committed
//! (`synchronous_commit` as the server is configured, on by default: flushed to the WAL). The
//! records of one call (a batch routing request's) go in one multi-row insert; concurrent
//! callers of one replica take turns on its connection (no group commit across callers yet).
//!
//! # Statistics
//! [`PgAudit::case_counts`] groups the rows of the window in the database (index on `at_ms`):
//! exact over every replica's decisions. There are no per-day/per-month count tables as in the
//! SQLite log yet, so a window of years costs a scan of its rows.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use postgres::{Client, GenericClient};
use postgres::types::ToSql;

use super::StoreError;
use super::audit::{COUNT_CAP, Page, PageError, PageQuery, RETENTION_BATCH};
use super::pg::PgStore;
use crate::caselog::{self, AuditRecord, CaseCount, RuleRef};

/// The table, created with the store's ([`PgStore::connect`], under its schema lock).
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
"#;

const COLUMNS: &str = "id, at_ms, at_offset_s, case_kind, case_type, urgency, grid, chain, unit, unit_code, unit_role, rule_line, rule_scope, zone, due, versions, input, warnings, outside_coverage";

/// The shared audit log of a PostgreSQL store.
pub struct PgAudit {
    store: Arc<PgStore>,
    /// This replica's connection (reconnected when lost).
    client: Mutex<Option<Client>>,
    /// Written into each row's `replica` column: which replica decided.
    replica: String,
}

impl PgAudit {
    /// Opens the log of `store` (creating its table), writing `replica` as the decider.
    pub fn open(store: Arc<PgStore>, replica: &str) -> Result<PgAudit, StoreError> {
        let client = store.client()?;
        Ok(PgAudit { store, client: Mutex::new(Some(client)), replica: replica.to_owned() })
    }

    /// Runs `f` on the connection, connecting first if there is none or it was lost.
    fn with_client<T>(&self, f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>) -> Result<T, StoreError> {
        let mut slot = self.client.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.as_ref().is_none_or(Client::is_closed) {
            *slot = Some(self.store.client()?);
        }
        let client = slot.as_mut().expect("connected");
        let result = f(client);
        if result.is_err() && client.is_closed() {
            *slot = None;
        }
        result.map_err(|e| err(&self.store, &e))
    }

    /// Appends `records` (ids assigned by the database) and returns once they are committed.
    pub fn append(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        self.with_client(|c| {
            let mut tx = c.transaction()?;
            insert(&mut tx, records, Some(&self.replica), false)?;
            tx.commit()
        })
    }

    /// Whether the log holds no decision.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        self.with_client(|c| Ok(c.query_one("SELECT NOT EXISTS (SELECT 1 FROM citygrid_audit)", &[])?.get(0)))
    }

    /// One page of decisions, by keyset on `(at_ms, id)` like the SQLite log's.
    pub fn page(&self, q: &PageQuery) -> Result<Page, PageError> {
        let since = q.since.map_or(i64::MIN, |t| t.timestamp_millis());
        let until = q.until.map_or(i64::MAX, |t| t.timestamp_millis());
        let limit = q.limit.max(1);
        let out = self.with_client(|c| {
            let cursor = match q.after {
                None => None,
                Some(id) => match c.query_opt("SELECT at_ms FROM citygrid_audit WHERE id = $1", &[&id])? {
                    Some(r) => Some((r.get::<_, i64>(0), id)),
                    None => return Ok(Err(id)),
                },
            };
            let (from, after_id) = match cursor {
                Some((at, id)) if at >= since => (at, id),
                _ => (since, i64::MIN),
            };
            let rows = c.query(
                &format!(
                    "SELECT {COLUMNS} FROM citygrid_audit WHERE at_ms >= $1 AND at_ms < $2 AND ($4::text IS NULL OR unit = $4) \
                     AND (at_ms > $1 OR id > $3) ORDER BY at_ms, id LIMIT $5"
                ),
                &[&from, &until, &after_id, &q.unit, &((limit + 1) as i64)],
            )?;
            let mut records: Vec<AuditRecord> = rows.iter().map(record).collect();
            let next = if records.len() > limit {
                records.truncate(limit);
                records.last().map(|r| r.id)
            } else {
                None
            };
            let n: i64 = c
                .query_one(
                    "SELECT count(*) FROM (SELECT 1 FROM citygrid_audit WHERE at_ms >= $1 AND at_ms < $2 AND ($3::text IS NULL OR unit = $3) LIMIT $4) s",
                    &[&since, &until, &q.unit, &((COUNT_CAP + 1) as i64)],
                )?
                .get(0);
            let total = (n as u64 <= COUNT_CAP).then_some(n as u64);
            Ok(Ok(Page { records, next, total }))
        })?;
        out.map_err(PageError::UnknownCursor)
    }

    /// Decisions of every replica per place and case type with `since ≤ at < until`.
    pub fn case_counts(&self, since: Option<DateTime<FixedOffset>>, until: Option<DateTime<FixedOffset>>) -> Result<Vec<CaseCount>, StoreError> {
        let since = since.map_or(i64::MIN, |t| t.timestamp_millis());
        let until = until.map_or(i64::MAX, |t| t.timestamp_millis());
        self.with_client(|c| {
            let rows = c.query(
                "SELECT chain, case_kind, case_type, count(*) FROM citygrid_audit WHERE at_ms >= $1 AND at_ms < $2 GROUP BY 1, 2, 3",
                &[&since, &until],
            )?;
            Ok(rows
                .iter()
                .map(|r| CaseCount { chain: r.get(0), case_kind: r.get(1), case_type: r.get(2), count: r.get::<_, i64>(3) as u64 })
                .collect())
        })
    }

    /// Deletes decisions with `at < cutoff`, [`RETENTION_BATCH`] rows per statement.
    pub fn delete_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let cutoff = cutoff.timestamp_millis();
        let mut deleted = 0u64;
        loop {
            let n = self.with_client(|c| {
                c.execute(
                    "DELETE FROM citygrid_audit WHERE id IN (SELECT id FROM citygrid_audit WHERE at_ms < $1 ORDER BY at_ms LIMIT $2)",
                    &[&cutoff, &(RETENTION_BATCH as i64)],
                )
            })?;
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
/// own ids, `replica` NULL (decided before the store).
pub(super) fn copy_in(c: &mut impl GenericClient, records: &[AuditRecord]) -> Result<(), postgres::Error> {
    insert(c, records, None, true)
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
