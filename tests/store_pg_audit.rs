//! The audit log of a PostgreSQL store (`citygrid_audit` and its count tables) against the
//! SQLite log of a data directory: the same decisions give byte-identical statistics (windows
//! with edges inside days, every level, a case type filter) and the same pages; retention takes
//! the counts of the decisions it deletes; a log written before the count tables gets them
//! built when the store is opened; concurrent appenders all land, with their counts.
//!
//! Needs `CITYGRID_TEST_PG=postgres://…` naming a database whose user may create databases
//! (each test makes its own, with PostGIS). Without it every test is skipped with a message,
//! unless `CITYGRID_REQUIRE_PG=1` (CI: `.ci/postgres.sh`), which makes a skip a failure.

mod common;

use std::sync::Arc;

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use common::pg::TestDb;
use serde_json::json;

use citygrid::caselog::{self, AuditRecord, StatsLevel};
use citygrid::store::audit::{AuditLog, PageQuery};
use citygrid::store::pg::PgStore;
use citygrid::store::pg_audit::PgAudit;

/// The test database's URL, or `None` (skipped, said on stderr) without one.
fn database() -> Option<String> {
    common::pg::database("PostgreSQL audit log")
}

/// The audit log's view of a test database.
trait AuditDb {
    fn log(&self) -> AuditLog;
    fn count_sums(&self) -> (i64, i64, i64, i64);
}

impl AuditDb for TestDb {
    /// The shared log of this database, as `serve --store` opens it.
    fn log(&self) -> AuditLog {
        let store = Arc::new(PgStore::connect(&self.url).unwrap());
        AuditLog::shared(PgAudit::open(store, "test-replica").unwrap())
    }

    /// Sums of the count tables and the number of rows: `(day sum, month sum, rows, zero rows)`.
    fn count_sums(&self) -> (i64, i64, i64, i64) {
        let r = self
            .client()
            .query_one(
                "SELECT (SELECT coalesce(sum(n), 0)::bigint FROM citygrid_audit_counts_day), (SELECT coalesce(sum(n), 0)::bigint FROM citygrid_audit_counts_month), \
                 (SELECT count(*) FROM citygrid_audit), \
                 (SELECT count(*) FROM citygrid_audit_counts_day WHERE n <= 0) + (SELECT count(*) FROM citygrid_audit_counts_month WHERE n <= 0)",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2), r.get(3))
    }
}

fn t(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

fn rec(at: DateTime<FixedOffset>, unit: &str) -> AuditRecord {
    let answer = json!({
        "case": {"kind": "event", "code": "0102"},
        "grid": {"code": "g1"},
        "chain": [{"code": "d"}, {"code": "s1"}, {"code": "c1"}, {"code": "g1"}],
        "responsible_unit": {"name": unit},
        "rule": {"line": 3, "scope": ""},
        "versions": {"grids": 1, "rules": 2},
    });
    caselog::record(at, &json!({"lon": 120.5, "event_type": "0102"}), &answer)
}

/// `n` decisions from `from`, `step_s` apart, over 3 streets, 15 communities, 11 grids and 6
/// case types of two kinds, some without a chain (outside coverage), two units.
fn make(from: &str, n: i64, step_s: i64, salt: i64) -> Vec<AuditRecord> {
    (0..n)
        .map(|i| {
            let k = i * 7 + salt;
            let mut r = rec(t(from) + TimeDelta::seconds(step_s * i), if k % 3 == 0 { "a" } else { "b" });
            r.chain = if k % 23 == 0 { Vec::new() } else { vec!["d".into(), format!("s{}", k % 3), format!("s{}c{}", k % 3, k % 5), format!("g{}", k % 11)] };
            r.case_kind = if k % 4 == 0 { "component".into() } else { "event".into() };
            r.case_type = format!("01{:02}", k % 6);
            r
        })
        .collect()
}

/// Decisions over three months (2026-09-20 … 2026-12-24), one day written in two runs far
/// apart, appended in batches of 500.
fn decisions() -> Vec<AuditRecord> {
    let mut all = make("2026-09-20T00:00:00+08:00", 2000, 3571, 0);
    all.extend(make("2026-10-03T00:00:00+08:00", 700, 59, 1));
    all.extend(make("2026-10-08T00:00:00+08:00", 1500, 17, 2));
    all.extend(make("2026-10-03T00:00:10+08:00", 700, 61, 3));
    all.extend(make("2026-11-30T20:00:00+08:00", 400, 50, 4));
    all
}

const WINDOWS: [(Option<&str>, Option<&str>); 10] = [
    (None, None),
    (Some("2026-10-01T00:00:00+08:00"), Some("2026-12-01T00:00:00+08:00")),
    (Some("2026-10-03T05:00:00+08:00"), Some("2026-10-08T13:30:00+08:00")),
    (Some("2026-10-03T05:00:00+08:00"), Some("2026-10-03T09:00:00+08:00")),
    (Some("2026-09-25T00:00:00+00:00"), Some("2026-12-20T13:00:00+08:00")),
    (Some("2026-10-08T01:00:00+08:00"), None),
    (None, Some("2026-10-03T07:00:00+08:00")),
    (Some("2025-01-01T00:00:00+08:00"), Some("2027-06-01T00:00:00+08:00")),
    (Some("2026-11-30T23:00:00+08:00"), Some("2026-12-01T01:00:00+08:00")),
    (Some("2026-12-01T00:00:00+08:00"), Some("2026-11-01T00:00:00+08:00")),
];

#[test]
fn statistics_and_pages_equal_the_sqlite_logs_byte_for_byte() {
    let Some(url) = database() else { return };
    let db = TestDb::new(&url, "a", "same");
    let pg = db.log();
    let dir = tempfile::tempdir().unwrap();
    let lite = AuditLog::open(dir.path()).unwrap();
    let all = decisions();
    for part in all.chunks(500) {
        pg.append(part).unwrap();
        lite.append(part).unwrap();
    }
    let mut compared = 0;
    for (since, until) in WINDOWS {
        let (s, u) = (since.map(t), until.map(t));
        let rows: Vec<AuditRecord> = all.iter().filter(|r| s.is_none_or(|s| r.at >= s) && u.is_none_or(|u| r.at < u)).cloned().collect();
        for level in [StatsLevel::Street, StatsLevel::Community, StatsLevel::Grid] {
            for filter in [None, Some(vec!["0102".to_owned(), "0105".to_owned()])] {
                let got = serde_json::to_vec(&pg.case_stats(s, u, level, filter.as_deref()).unwrap()).unwrap();
                let want = serde_json::to_vec(&lite.case_stats(s, u, level, filter.as_deref()).unwrap()).unwrap();
                assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want), "{since:?}..{until:?} {level:?} {filter:?}");
                compared += 1;
            }
            let brute = caselog::stats(&caselog::counts_of(&rows), level);
            assert_eq!(pg.case_stats(s, u, level, None).unwrap(), brute, "{since:?}..{until:?} {level:?}: the rows themselves");
        }
    }
    assert_eq!(compared, 60);
    assert_eq!(db.count_sums(), (all.len() as i64, all.len() as i64, all.len() as i64, 0));

    // Pages: the same decisions in the same order, the same cursors and totals (both logs
    // numbered the decisions from 1 in the order appended).
    for unit in [None, Some("a".to_owned())] {
        for since in [None, Some(t("2026-10-03T05:00:00+08:00"))] {
            let (mut a, mut b) = (None, None);
            let mut pages = 0;
            loop {
                let q = |after| PageQuery { since, until: Some(t("2026-10-09T00:00:00+08:00")), unit: unit.clone(), after, limit: 97 };
                let (p, l) = (pg.page(&q(a)).unwrap(), lite.page(&q(b)).unwrap());
                assert_eq!((p.next, p.total), (l.next, l.total));
                let key = |r: &AuditRecord| (r.id, r.at, r.unit.clone(), r.chain.clone(), r.case_type.clone(), r.input.clone());
                assert_eq!(p.records.iter().map(key).collect::<Vec<_>>(), l.records.iter().map(key).collect::<Vec<_>>());
                assert!(p.records.windows(2).all(|w| (w[0].at, w[0].id) < (w[1].at, w[1].id)));
                pages += 1;
                match p.next {
                    Some(n) => (a, b) = (Some(n), Some(n)),
                    None => break,
                }
            }
            assert!(pages > 3, "{unit:?} {since:?}: {pages} pages");
        }
    }
}

#[test]
fn retention_takes_the_counts_of_the_deleted_decisions() {
    let Some(url) = database() else { return };
    let db = TestDb::new(&url, "a", "retention");
    let log = db.log();
    // 4,500 old decisions (more than two retention batches) over three days, then recent ones.
    let old = make("2020-01-05T10:00:00+08:00", 4500, 50, 0);
    let new = make("2026-11-20T10:00:00+08:00", 300, 600, 1);
    log.append(&old).unwrap();
    log.append(&new).unwrap();
    assert_eq!(db.count_sums(), (4800, 4800, 4800, 0));
    let deleted = log.delete_before(t("2020-01-06T00:00:00+08:00").with_timezone(&Utc)).unwrap();
    let kept_old: Vec<AuditRecord> = old.iter().filter(|r| r.at >= t("2020-01-06T00:00:00+08:00")).cloned().collect();
    assert_eq!(deleted as usize, 4500 - kept_old.len());
    assert!(deleted > 0 && !kept_old.is_empty());
    let left = 300 + kept_old.len() as i64;
    assert_eq!(db.count_sums(), (left, left, left, 0), "counts equal the rows, no zero rows left");
    let mut rows = kept_old.clone();
    rows.extend(new.iter().cloned());
    for level in [StatsLevel::Street, StatsLevel::Grid] {
        assert_eq!(log.case_stats(None, None, level, None).unwrap(), caselog::stats(&caselog::counts_of(&rows), level));
    }
    // The first (deleted) day now has no counts at all, and a window over it is empty.
    let day = log.case_stats(Some(t("2020-01-05T00:00:00+08:00")), Some(t("2020-01-06T00:00:00+08:00")), StatsLevel::Street, None).unwrap();
    assert_eq!(day.total, 0);
    let day = ((t("2020-01-05T12:00:00+08:00").timestamp() + 8 * 3600) / 86400) as i32;
    let n: i64 = db.client().query_one("SELECT count(*) FROM citygrid_audit_counts_day WHERE day = $1", &[&day]).unwrap().get(0);
    assert_eq!(n, 0);
    // Everything deleted: the counts are empty.
    log.delete_before(Utc::now()).unwrap();
    assert_eq!(db.count_sums(), (0, 0, 0, 0));
    assert_eq!(log.case_stats(None, None, StatsLevel::Grid, None).unwrap().total, 0);
}

#[test]
fn a_log_without_count_tables_gets_them_built_when_opened() {
    let Some(url) = database() else { return };
    let db = TestDb::new(&url, "a", "migrate");
    let all = decisions();
    {
        let log = db.log();
        log.append(&all).unwrap();
    }
    // What a release before the count tables left: the rows only.
    db.client()
        .batch_execute(
            "DROP TABLE citygrid_audit_counts_day, citygrid_audit_counts_month, citygrid_audit_counts_built, citygrid_audit_places, citygrid_audit_types",
        )
        .unwrap();
    let log = db.log();
    assert_eq!(db.count_sums(), (all.len() as i64, all.len() as i64, all.len() as i64, 0));
    let dir = tempfile::tempdir().unwrap();
    let lite = AuditLog::open(dir.path()).unwrap();
    lite.append(&all).unwrap();
    for (since, until) in WINDOWS {
        let (s, u) = (since.map(t), until.map(t));
        for level in [StatsLevel::Street, StatsLevel::Community, StatsLevel::Grid] {
            assert_eq!(
                serde_json::to_string(&log.case_stats(s, u, level, None).unwrap()).unwrap(),
                serde_json::to_string(&lite.case_stats(s, u, level, None).unwrap()).unwrap(),
                "{since:?}..{until:?} {level:?}"
            );
        }
    }
    // Opened again: built once, not twice.
    drop(db.log());
    assert_eq!(db.count_sums().0, all.len() as i64);
}

#[test]
fn concurrent_appenders_all_land_with_their_counts() {
    let Some(url) = database() else { return };
    let db = TestDb::new(&url, "a", "concurrent");
    let log = Arc::new(db.log());
    let threads: Vec<_> = (0..8)
        .map(|th| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..40 {
                    // Every thread writes the same few (day, place, type) counts: contended rows.
                    let mut r = make("2026-11-23T10:00:00+08:00", 3, 1, i % 2).remove(0);
                    r.input = json!({"t": th, "i": i});
                    log.append(&[r]).unwrap();
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = log.page(&PageQuery { after, limit: 50, ..Default::default() }).unwrap();
        seen.extend(page.records.iter().map(|r| (r.input["t"].as_i64().unwrap(), r.input["i"].as_i64().unwrap())));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 320);
    assert_eq!(db.count_sums(), (320, 320, 320, 0));
    assert_eq!(log.case_stats(None, None, StatsLevel::Grid, None).unwrap().total, 320);
}

/// A replica keeps closed months' counts in memory; a write by another replica that touches
/// such a month (an old-dated decision, retention) is seen by its next statistics all the same.
#[test]
fn closed_months_held_by_one_replica_follow_another_replicas_writes() {
    let Some(url) = database() else { return };
    let db = TestDb::new(&url, "a", "closed_months");
    let (a, b) = (db.log(), db.log());
    // Closed months (2026-06-03 to early September) and this month.
    let mut rows = make("2026-06-03T09:00:00+08:00", 900, 9000, 0);
    rows.extend(make(&Utc::now().with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap()).to_rfc3339(), 10, 1, 3));
    b.append(&rows).unwrap();
    let brute = |rows: &[AuditRecord], level| caselog::stats(&caselog::counts_of(rows), level);
    for level in [StatsLevel::Street, StatsLevel::Grid] {
        // Twice: the second answer comes from a's cache of the closed months.
        for _ in 0..2 {
            assert_eq!(a.case_stats(None, None, level, None).unwrap(), brute(&rows, level), "{level:?}");
        }
    }
    let epoch = |db: &TestDb| -> i64 { db.client().query_one("SELECT epoch FROM citygrid_audit_epoch", &[]).unwrap().get(0) };
    let before = epoch(&db);
    // Today's decisions do not touch a closed month: the cache stays valid.
    let today = make(&Utc::now().with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap()).to_rfc3339(), 5, 1, 5);
    b.append(&today).unwrap();
    rows.extend(today);
    assert_eq!(epoch(&db), before, "a decision of today leaves the closed months' epoch alone");
    assert_eq!(a.case_stats(None, None, StatsLevel::Grid, None).unwrap(), brute(&rows, StatsLevel::Grid));
    // A decision written by b four days ago (a closed day, whatever the month): a counts it.
    let days_ago = make(&(Utc::now() - TimeDelta::days(4)).with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap()).to_rfc3339(), 3, 60, 7);
    let at_epoch = epoch(&db);
    b.append(&days_ago).unwrap();
    rows.extend(days_ago);
    assert!(epoch(&db) > at_epoch, "a write into a closed day moves the epoch");
    assert_eq!(a.case_stats(None, None, StatsLevel::Grid, None).unwrap(), brute(&rows, StatsLevel::Grid), "after b's decisions of four days ago");
    // A decision written by b with a July time: a's next statistics count it.
    let late = make("2026-07-15T12:00:00+08:00", 7, 60, 11);
    b.append(&late).unwrap();
    rows.extend(late);
    assert!(epoch(&db) > at_epoch + 1, "a write into a closed month moves the epoch");
    for level in [StatsLevel::Street, StatsLevel::Grid] {
        assert_eq!(a.case_stats(None, None, level, None).unwrap(), brute(&rows, level), "{level:?} after b's July decisions");
    }
    let july = (Some(t("2026-07-01T00:00:00+08:00")), Some(t("2026-08-01T00:00:00+08:00")));
    let in_july: Vec<AuditRecord> = rows.iter().filter(|r| r.at >= july.0.unwrap() && r.at < july.1.unwrap()).cloned().collect();
    assert_eq!(a.case_stats(july.0, july.1, StatsLevel::Grid, None).unwrap(), brute(&in_july, StatsLevel::Grid));
    // Retention through b deletes June: a's next statistics lose it.
    b.delete_before(t("2026-07-01T00:00:00+08:00").with_timezone(&Utc)).unwrap();
    rows.retain(|r| r.at >= july.0.unwrap());
    for level in [StatsLevel::Street, StatsLevel::Grid] {
        assert_eq!(a.case_stats(None, None, level, None).unwrap(), brute(&rows, level), "{level:?} after b's retention");
    }
}
