//! The audit log at a city's scale: fills a database with `AUDIT_BENCH_N` decisions (default
//! 10,000,000: ~1,000 unit grids in 10 streets × 10 communities, 50 case types with a Zipf
//! distribution, skewed grids, 365 days), once, cached under `target/tmp/`, then measures
//! pages (limit 100) at the start, middle and end with and without a unit filter, statistics
//! for a month and a year at each level, the latency of one durable append, the throughput of
//! 8 concurrent appenders, the size per decision and the memory (RSS).
//!
//! With `CITYGRID_TEST_PG=postgres://…` (a user that may create databases) the same decisions
//! are loaded with `COPY` into the PostgreSQL store's log (database `citygrid_bench_audit_N`,
//! kept for the next run: drop it when done) and measured the same way, with the plans
//! (`EXPLAIN`) of the page statements. `AUDIT_BENCH_STORES=pg` (or `sqlite`) measures one only.
//!
//! `cargo bench --bench audit` (results in BENCHMARKS.md). Not criterion: the fill alone takes
//! minutes, and each measurement is a median over repeated runs on the same file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, TimeDelta, TimeZone};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use citygrid::caselog::{self, AuditRecord, RuleRef, StatsLevel};
use citygrid::store::audit::{AuditLog, PageQuery};
use citygrid::store::pg::PgStore;
use citygrid::store::pg_audit::PgAudit;

const GRIDS: usize = 1000;
const TYPES: usize = 50;
const DAYS: i64 = 365;

fn start() -> DateTime<FixedOffset> {
    FixedOffset::east_opt(8 * 3600).unwrap().with_ymd_and_hms(2025, 12, 8, 0, 0, 0).unwrap()
}

struct Gen {
    rng: ChaCha8Rng,
    grid_cdf: Vec<f64>,
    type_cdf: Vec<f64>,
    chains: Vec<Vec<String>>,
    types: Vec<(String, String)>,
}

fn cdf(weights: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut acc = 0.0;
    let mut v: Vec<f64> = weights
        .map(|w| {
            acc += w;
            acc
        })
        .collect();
    for x in &mut v {
        *x /= acc;
    }
    v
}

impl Gen {
    fn new() -> Gen {
        let chains = (0..GRIDS)
            .map(|g| {
                let (s, c, u) = (g / 100 + 1, (g / 10) % 10 + 1, g % 10 + 1);
                let street = format!("320506{s:03}");
                let community = format!("{street}{c:03}");
                vec!["320506".to_owned(), street, community.clone(), format!("{community}{u:02}")]
            })
            .collect();
        let types = (0..TYPES)
            .map(|t| {
                if t < 40 {
                    ("event".to_owned(), format!("{:02}{:02}", t / 8 + 1, t % 8 + 1))
                } else {
                    ("component".to_owned(), format!("{:02}{:02}", 1, t - 39))
                }
            })
            .collect();
        Gen {
            rng: ChaCha8Rng::seed_from_u64(7),
            // Busy grids (markets, stations) get ~10x the quiet ones; types follow Zipf.
            grid_cdf: cdf((0..GRIDS).map(|g| 1.0 / (1.0 + (g * 7919 % GRIDS) as f64 / 100.0))),
            type_cdf: cdf((0..TYPES).map(|t| 1.0 / (t + 1) as f64)),
            chains,
            types,
        }
    }

    fn pick(&mut self, cdf: &[f64]) -> usize {
        let x: f64 = self.rng.random();
        cdf.partition_point(|&c| c < x).min(cdf.len() - 1)
    }

    fn record(&mut self, at: DateTime<FixedOffset>) -> AuditRecord {
        let g = self.pick(&self.grid_cdf.clone());
        let t = self.pick(&self.type_cdf.clone());
        let chain = self.chains[g].clone();
        let (kind, ty) = self.types[t].clone();
        let street = g / 100 + 1;
        let unit = match t % 5 {
            0 => format!("第{street}街道环境卫生管理所"),
            1 => format!("第{street}街道城市管理执法中队"),
            2 => format!("第{street}街道市政设施养护站"),
            3 => format!("区园林绿化管理处第{street}片区"),
            _ => format!("第{street}街道办事处"),
        };
        let lon = 120.55 + self.rng.random::<f64>() * 0.1;
        let lat = 31.25 + self.rng.random::<f64>() * 0.1;
        let month = (at - start()).num_days() / 30 + 1;
        AuditRecord {
            id: 0,
            at,
            urgency: Some("一般".into()),
            grid: chain.last().cloned(),
            unit_code: Some(format!("U{street:02}{:02}", t % 5)),
            unit_role: Some("unit".into()),
            rule: Some(RuleRef { line: (t * 10 + street) as u64, scope: chain[1].clone() }),
            zone: None,
            due: Some((at + TimeDelta::hours(4)).to_rfc3339()),
            versions: [("calendar", 1), ("components", 3), ("grids", 2), ("rules", month as u64), ("units", 2), ("zones", 1)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            input: json!({"lon": lon, "lat": lat, (if kind == "event" { "event_type" } else { "component_class" }): ty, "reported_at": at.to_rfc3339()}),
            warnings: Vec::new(),
            outside_coverage: false,
            case_kind: kind,
            case_type: ty,
            chain,
            unit,
        }
    }
}

fn rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |k: &str| status.lines().find(|l| l.starts_with(k)).map(|l| l[k.len()..].trim().to_owned()).unwrap_or_default();
    format!("RSS {} (peak {})", field("VmRSS:"), field("VmHWM:"))
}

fn fill(dir: &Path, n: u64) {
    let marker = dir.join("filled");
    if marker.exists() {
        println!("reusing {} ({n} decisions)", dir.display());
        return;
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let log = AuditLog::open(dir).unwrap();
    let mut g = Gen::new();
    let step_ms = (DAYS * 86_400_000) as f64 / n as f64;
    let t0 = Instant::now();
    let mut i = 0u64;
    while i < n {
        let batch: Vec<AuditRecord> = (i..(i + 100_000).min(n)).map(|k| g.record(start() + TimeDelta::milliseconds((k as f64 * step_ms) as i64))).collect();
        i += batch.len() as u64;
        log.append(&batch).unwrap();
        if i.is_multiple_of(1_000_000) {
            println!("  filled {i} in {:.0} s, {}", t0.elapsed().as_secs_f64(), rss());
        }
    }
    println!("filled {n} decisions in {:.0} s ({:.0}/s)", t0.elapsed().as_secs_f64(), n as f64 / t0.elapsed().as_secs_f64());
    std::fs::write(marker, n.to_string()).unwrap();
}

/// Median and maximum of `reps` runs after 2 warm-ups.
fn time<T>(reps: usize, mut f: impl FnMut() -> T) -> (Duration, Duration) {
    for _ in 0..2 {
        std::hint::black_box(f());
    }
    let mut v: Vec<Duration> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed()
        })
        .collect();
    v.sort();
    (v[v.len() / 2], v[v.len() - 1])
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Fills (once) and opens the PostgreSQL log: database `citygrid_bench_audit_N` next to the one
/// `admin_url` names, the decisions of [`fill`] loaded with one `COPY`.
fn pg_log(admin_url: &str, n: u64) -> (AuditLog, Arc<PgAudit>, postgres::Client) {
    let name = format!("citygrid_bench_audit_{n}");
    let mut admin = postgres::Client::connect(admin_url, postgres::NoTls).unwrap();
    if admin.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name]).unwrap().is_none() {
        admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    }
    let base = admin_url.split('?').next().unwrap();
    let url = format!("{}/{name}", &base[..base.rfind('/').unwrap()]);
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client.batch_execute("CREATE EXTENSION IF NOT EXISTS postgis").unwrap();
    let store = Arc::new(PgStore::connect(&url).unwrap());
    let open = || Arc::new(PgAudit::open(store.clone(), "bench").unwrap());
    let have: i64 = client.query_one("SELECT count(*) FROM citygrid_audit", &[]).unwrap().get(0);
    // A filled database also holds the decisions appended by earlier runs' measurements
    // (dated when they ran, after the measured year).
    if have as u64 >= n {
        println!("reusing database {name} ({have} decisions)");
    } else {
        client.batch_execute("TRUNCATE citygrid_audit, citygrid_audit_counts_day, citygrid_audit_counts_month RESTART IDENTITY").unwrap();
        let log = open();
        let mut g = Gen::new();
        let step_ms = (DAYS * 86_400_000) as f64 / n as f64;
        let t0 = Instant::now();
        let mut i = 0u64;
        let loaded = log
            .bulk_load(&mut || {
                if i >= n {
                    return None;
                }
                let batch: Vec<AuditRecord> =
                    (i..(i + 100_000).min(n)).map(|k| g.record(start() + TimeDelta::milliseconds((k as f64 * step_ms) as i64))).collect();
                i += batch.len() as u64;
                if i.is_multiple_of(1_000_000) {
                    println!("  copied {i} in {:.0} s", t0.elapsed().as_secs_f64());
                }
                Some(batch)
            })
            .unwrap();
        println!("loaded {loaded} decisions with COPY and built the counts in {:.0} s", t0.elapsed().as_secs_f64());
    }
    // Fresh statistics and visibility map for the planner (each its own statement: VACUUM
    // cannot run in a transaction block).
    for table in ["citygrid_audit", "citygrid_audit_counts_day", "citygrid_audit_counts_month"] {
        client.batch_execute(&format!("VACUUM ANALYZE {table}")).unwrap();
    }
    let log = open();
    (AuditLog::shared(PgAudit::open(store.clone(), "bench").unwrap()), log, client)
}

fn main() {
    let n: u64 = std::env::var("AUDIT_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000);
    let stores = std::env::var("AUDIT_BENCH_STORES").unwrap_or_else(|_| "sqlite,pg".into());
    if stores.contains("sqlite") {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("audit-bench-{n}"));
        fill(&dir, n);
        let log = AuditLog::open(&dir).unwrap();
        let db = log.path().to_owned();
        let size: u64 = ["", "-wal"].iter().filter_map(|s| std::fs::metadata(format!("{}{s}", db.display())).ok()).map(|m| m.len()).sum();
        println!("\n## SQLite log\ndatabase {:.2} GB, {:.0} bytes per decision; {}", size as f64 / 1e9, size as f64 / n as f64, rss());
        measure(log);
    }
    match std::env::var("CITYGRID_TEST_PG") {
        Ok(url) if stores.contains("pg") && !url.trim().is_empty() => {
            let (log, pg, mut client) = pg_log(&url, n);
            let size: i64 = client
                .query_one(
                    "SELECT sum(pg_total_relation_size(c))::bigint FROM unnest(ARRAY['citygrid_audit', 'citygrid_audit_counts_day', 'citygrid_audit_counts_month', 'citygrid_audit_places', 'citygrid_audit_types']::regclass[]) c",
                    &[],
                )
                .unwrap()
                .get(0);
            println!(
                "\n## PostgreSQL log\ntables {:.2} GB, {:.0} bytes per decision (indexes and counts included); {} (the client; the server's memory is its own)",
                size as f64 / 1e9,
                size as f64 / n as f64,
                rss()
            );
            let day = |d: i64| Some(start() + TimeDelta::days(d));
            let unit = Some("第3街道环境卫生管理所".to_owned());
            for (name, q) in [
                ("page start", PageQuery { limit: 100, ..Default::default() }),
                ("page middle, unit", PageQuery { since: day(182), unit: unit.clone(), limit: 100, ..Default::default() }),
                (
                    "page middle (after cursor)",
                    PageQuery {
                        since: day(182),
                        after: log.page(&PageQuery { since: day(182), limit: 100, ..Default::default() }).unwrap().next,
                        limit: 100,
                        ..Default::default()
                    },
                ),
            ] {
                match pg.page_plan(&q) {
                    Ok(plan) => println!("\nEXPLAIN of {name}:\n{plan}"),
                    Err(e) => println!("\nEXPLAIN of {name} failed: {e}"),
                }
            }
            measure(log);
        }
        _ if stores.contains("pg") => println!("\n(no CITYGRID_TEST_PG: the PostgreSQL log is not measured)"),
        _ => {}
    }
}

/// Pages, statistics, appends and memory of one log.
fn measure(log: AuditLog) {
    let unit = Some("第3街道环境卫生管理所".to_owned());
    let day = |d: i64| Some(start() + TimeDelta::days(d));
    let q = |since, unit: &Option<String>, after| PageQuery { since, until: None, unit: unit.clone(), after, limit: 100 };
    let mid = log.page(&q(day(182), &None, None)).unwrap().next;
    let mid_unit = log.page(&q(day(182), &unit, None)).unwrap().next;
    let cases: Vec<(&str, PageQuery)> = vec![
        ("page start", q(None, &None, None)),
        ("page middle (since day 182)", q(day(182), &None, None)),
        ("page middle (after cursor)", q(day(182), &None, mid)),
        ("page end (since last day)", q(day(DAYS - 1), &None, None)),
        ("page start, unit", q(None, &unit, None)),
        ("page middle, unit (since day 182)", q(day(182), &unit, None)),
        ("page middle, unit (after cursor)", q(day(182), &unit, mid_unit)),
        ("page end, unit (since last day)", q(day(DAYS - 1), &unit, None)),
    ];
    println!("\n| query | median | max | rows | total |\n|---|---|---|---|---|");
    for (name, query) in &cases {
        let page = log.page(query).unwrap();
        let (med, max) = time(20, || log.page(query).unwrap());
        println!("| {name} | {} | {} | {} | {:?} |", ms(med), ms(max), page.records.len(), page.total);
    }
    let month = (
        Some(FixedOffset::east_opt(8 * 3600).unwrap().with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap()),
        Some(FixedOffset::east_opt(8 * 3600).unwrap().with_ymd_and_hms(2026, 7, 1, 0, 0, 0).unwrap()),
    );
    let year = (day(0), day(DAYS));
    let edges = (Some(start() + TimeDelta::hours(10)), Some(start() + TimeDelta::days(DAYS - 1) + TimeDelta::hours(15)));
    println!("\n| statistics | level | first call | median | max | total |\n|---|---|---|---|---|---|");
    for (name, (since, until)) in [("month (2026-06)", month), ("year (365 whole days)", year), ("year, edges inside days", edges)] {
        for level in [StatsLevel::Street, StatsLevel::Community, StatsLevel::Grid] {
            let cold = Instant::now();
            // What `GET /v1/stats/cases` does: sums by dictionary id, strings for the answer only.
            let s = log.case_stats(since, until, level, None).unwrap();
            let cold = cold.elapsed();
            assert_eq!(s, caselog::stats(&log.case_counts(since, until).unwrap(), level), "the same answer as the CaseCount path");
            let (med, max) = time(10, || {
                let stats = log.case_stats(since, until, level, None).unwrap();
                serde_json::to_vec(&stats).unwrap()
            });
            println!("| {name} | {level:?} | {} | {} | {} | {} |", ms(cold), ms(med), ms(max), s.total);
        }
    }
    println!("\nafter the queries: {}", rss());

    let mut g = Gen::new();
    let now = chrono::Utc::now().with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap());
    let (med, max) = time(200, || log.append(&[g.record(now)]).unwrap());
    println!("\none durable append: median {}, max {}", ms(med), ms(max));
    let log = Arc::new(log);
    let per_thread = 300;
    let t0 = Instant::now();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let log = log.clone();
            let mut g = Gen::new();
            std::thread::spawn(move || {
                let mut lat = Vec::with_capacity(per_thread);
                for _ in 0..per_thread {
                    let r = g.record(now);
                    let t = Instant::now();
                    log.append(&[r]).unwrap();
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat: Vec<Duration> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let secs = t0.elapsed().as_secs_f64();
    lat.sort();
    println!(
        "8 concurrent appenders: {:.0} decisions/s, latency median {}, p99 {}",
        (8 * per_thread) as f64 / secs,
        ms(lat[lat.len() / 2]),
        ms(lat[lat.len() * 99 / 100])
    );
    println!("end: {}", rss());
}
