//! Several real `citygrid serve --store postgres://…` replica processes on one real
//! PostgreSQL/PostGIS database: a switch through one is served by all within a second, imports
//! through two replicas are serialized, a replica killed in the middle of its commit leaves no
//! partial version, a lost connection (or a database restart) is caught up, routing decisions
//! of every replica land in one audit log, the current layers are PostGIS tables, and a real
//! city package (fixtures/city-gk) uploaded into an empty store through one replica is served by
//! the other, `store copy` carries the local class files and the audit log both ways (same
//! statistics, same ids), and a replica given `--data` keeps its working copy there, alone.
//!
//! Needs `CITYGRID_TEST_PG=postgres://…` naming a database whose user may create databases
//! (each test makes its own, with PostGIS). Without it every test here is skipped with a
//! message, unless `CITYGRID_REQUIRE_PG=1` (CI: `.ci/postgres.sh`), which makes a skip a failure.
//! `CITYGRID_TEST_PG_RESTART`, if set, is a shell command that restarts the database server.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::pg::TestDb;

const ADMIN: &str = "0123456789abcdef-store-pg-admin";
const WRITER_LOCK: i64 = 0x0063_6974_7967_7269;

/// The test database's URL, or `None` (skipped, said on stderr) without one.
fn database() -> Option<String> {
    common::pg::database("PostgreSQL store")
}

/// A replica process (or a server on a data directory), killed when dropped.
struct Replica {
    child: Child,
    addr: String,
}

impl Replica {
    /// A replica whose working copy is a private temporary directory (no `--data`).
    fn start(db: &TestDb) -> Replica {
        Replica::start_with(db, &["--demo", "--demo-preset", "tiny"])
    }

    /// A replica with no demo: an empty store stays empty until a city is imported.
    fn start_empty(db: &TestDb) -> Replica {
        Replica::start_with(db, &[])
    }

    /// A replica whose working copy is `dir` (`--data`), kept between its runs.
    fn start_in(db: &TestDb, dir: &std::path::Path) -> Replica {
        Replica::start_with(db, &["--demo", "--demo-preset", "tiny", "--data", dir.to_str().unwrap()])
    }

    fn start_with(db: &TestDb, extra: &[&str]) -> Replica {
        Replica::spawn(&[&["--store", db.url.as_str()], extra].concat())
    }

    /// A server on the data directory `dir` (no PostgreSQL store).
    fn start_dir(dir: &std::path::Path) -> Replica {
        Replica::spawn(&["--data", dir.to_str().unwrap()])
    }

    fn spawn(args: &[&str]) -> Replica {
        let mut child = Command::new(env!("CARGO_BIN_EXE_citygrid"))
            .args(["serve", "--bind", "127.0.0.1:0"])
            .args(args)
            .env_remove("CITYGRID_DATA")
            .env("CITYGRID_ADMIN_TOKEN", ADMIN)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr = line.trim().strip_prefix("citygrid listening on http://").unwrap_or_else(|| panic!("the replica did not start: {line:?}")).to_owned();
        Replica { child, addr }
    }

    fn health(&self) -> serde_json::Value {
        let (status, body) = request(&self.addr, "GET", "/health", None);
        assert_eq!(status, 200, "{body}");
        body
    }

    fn rules_version(&self) -> u64 {
        self.health()["rules_version"].as_u64().unwrap()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

fn request(addr: &str, method: &str, path: &str, body: Option<(&str, &str)>) -> (u16, serde_json::Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    let (content_type, body) = body.unwrap_or(("application/json", ""));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0);
    let text = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, serde_json::from_str(text.trim()).unwrap_or(serde_json::Value::String(text)))
}

/// The current responsibility list as the store holds it.
fn current_rules(db: &TestDb) -> String {
    let mut c = db.client();
    let manifest: String = c.query_one("SELECT manifest::text FROM citygrid_manifest", &[]).unwrap().get(0);
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let rules = &manifest["datasets"]["rules"];
    let current = rules["current"].as_u64().unwrap();
    let file = rules["versions"].as_array().unwrap().iter().find(|v| v["version"] == current).unwrap()["file"].as_str().unwrap().to_owned();
    let rows = c.query("SELECT data FROM citygrid_files WHERE file = $1 ORDER BY chunk", &[&file]).unwrap();
    String::from_utf8(rows.iter().flat_map(|r| r.get::<_, &[u8]>(0).to_vec()).collect()).unwrap()
}

fn put_rules(replica: &Replica, csv: &str) -> (u16, serde_json::Value) {
    request(&replica.addr, "PUT", "/v1/rules", Some(("text/csv", csv)))
}

/// Polls every replica until each serves rules version `version`; the time the last took.
fn all_serve(replicas: &[&Replica], version: u64, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if replicas.iter().all(|r| r.rules_version() == version) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "not every replica serves rules version {version} after {within:?}: {:?}",
            replicas.iter().map(|r| r.rules_version()).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until a citygrid connection of `db` waits on a lock (a replica's commit queued behind
/// the writer lock or a row lock), failing with `what` after `within`.
fn wait_for_a_lock_waiter(db: &TestDb, within: Duration, what: &str) {
    let start = Instant::now();
    loop {
        let waiting: i64 = db
            .client()
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND application_name = 'citygrid'",
                &[],
            )
            .unwrap()
            .get(0);
        if waiting > 0 {
            return;
        }
        assert!(start.elapsed() < within, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn generation(db: &TestDb) -> i64 {
    db.client().query_one("SELECT generation FROM citygrid_manifest", &[]).unwrap().get(0)
}

#[test]
fn a_switch_through_one_replica_is_served_by_all_within_a_second_and_layers_are_postgis_tables() {
    let Some(url) = database() else { return };
    let db = TestDb::new(&url, "t", "switch");
    let a = Replica::start(&db);
    let b = Replica::start(&db);
    let c = Replica::start(&db);
    // The first replica filled the empty store with the demo city; the others loaded it.
    assert_eq!(generation(&db), 1);
    for r in [&a, &b, &c] {
        assert_eq!(r.rules_version(), 1);
        assert_eq!(r.health()["layers"][0]["version"], 1);
    }

    let (status, body) = put_rules(&b, &current_rules(&db));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], 2);
    let took = all_serve(&[&a, &b, &c], 2, Duration::from_secs(1));
    eprintln!("every replica served the new version {took:?} after the answer");
    assert_eq!(generation(&db), 2);
    // /health says what each serves: the store, its generation, every dataset's version.
    for r in [&a, &b, &c] {
        let health = r.health();
        assert_eq!(health["store"], serde_json::json!({"kind": "postgres", "generation": 2}), "{health}");
        assert_eq!(health["versions"]["rules"], 2, "{health}");
        assert_eq!(health["versions"]["grids"], 1, "{health}");
    }

    // A rollback through another replica switches them all back.
    let (status, body) = request(&c.addr, "POST", "/v1/rules/rollback", Some(("application/json", r#"{"version":1}"#)));
    assert_eq!(status, 200, "{body}");
    all_serve(&[&a, &b, &c], 1, Duration::from_secs(1));
    // Every replica lists the same history.
    for r in [&a, &b, &c] {
        let (_, versions) = request(&r.addr, "GET", "/v1/rules/versions", None);
        assert_eq!(versions["current"], 1, "{versions}");
        assert_eq!(versions["versions"].as_array().unwrap().len(), 2, "{versions}");
    }

    // The current layers, as PostGIS tables with their SRID and spatial indexes.
    let mut client = db.client();
    let health = a.health();
    for (i, table) in ["grids", "components", "zones"].iter().enumerate() {
        let n: i64 = client.query_one(&format!("SELECT count(*) FROM {table}"), &[]).unwrap().get(0);
        assert_eq!(n as u64, health["layers"][i]["features"].as_u64().unwrap(), "{table}");
        let srid: i32 = client.query_one("SELECT Find_SRID('public', $1, 'geom')", &[table]).unwrap().get(0);
        assert_eq!(srid, 4326, "{table}");
        let gist: i64 =
            client.query_one("SELECT count(*) FROM pg_indexes WHERE tablename = $1 AND indexdef ILIKE '%USING gist (geom)%'", &[table]).unwrap().get(0);
        assert_eq!(gist, 1, "{table} has a spatial index");
    }
    // A spatial query finds the unit grid a replica locates.
    let [lon, lat] = [health["center"][0].as_f64().unwrap(), health["center"][1].as_f64().unwrap()];
    let (status, located) = request(&a.addr, "GET", &format!("/v1/locate?lon={lon}&lat={lat}"), None);
    assert_eq!(status, 200, "{located}");
    let code: String = client
        .query_one("SELECT code FROM grids WHERE ST_Contains(geom, ST_SetSRID(ST_MakePoint($1, $2), 4326)) ORDER BY level DESC LIMIT 1", &[&lon, &lat])
        .unwrap()
        .get(0);
    assert_eq!(located["grid"]["code"], code.as_str());

    // Routing decisions of every replica go to one log; any replica's statistics count them all.
    let case = serde_json::json!({"lon": lon, "lat": lat, "event_type": "0101", "reported_at": "2026-12-08T10:00:00+08:00"}).to_string();
    for r in [&a, &b, &c, &c] {
        let (status, answer) = request(&r.addr, "POST", "/v1/cases/route", Some(("application/json", &case)));
        assert_eq!(status, 200, "{answer}");
    }
    let decided: Vec<String> = client.query("SELECT DISTINCT replica FROM citygrid_audit", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(decided.len(), 3, "{decided:?}");
    for r in [&a, &b] {
        let (status, stats) = request(&r.addr, "GET", "/v1/stats/cases?since=2026-12-01&until=2026-12-31", None);
        assert_eq!(status, 200, "{stats}");
        assert_eq!(stats["total"], 4, "{stats}");
        let (_, page) = request(&r.addr, "GET", "/v1/cases/routes?limit=10", None);
        assert_eq!(page["routes"].as_array().unwrap().len(), 4, "{page}");
    }
}

#[test]
fn concurrent_imports_through_two_replicas_are_serialized() {
    let Some(url) = database() else { return };
    let db = TestDb::new(&url, "t", "concurrent");
    let a = Replica::start(&db);
    let b = Replica::start(&db);
    let csv = current_rules(&db);
    const EACH: usize = 4;
    let answers: Vec<(u16, serde_json::Value)> = std::thread::scope(|s| {
        let threads: Vec<_> = [&a, &b]
            .into_iter()
            .map(|r| {
                let csv = &csv;
                s.spawn(move || (0..EACH).map(|_| put_rules(r, csv)).collect::<Vec<_>>())
            })
            .collect();
        threads.into_iter().flat_map(|t| t.join().unwrap()).collect()
    });
    let mut versions: Vec<u64> = Vec::new();
    for (status, body) in &answers {
        assert_eq!(*status, 200, "every import is taken, one after the other: {body}");
        versions.push(body["version"].as_u64().unwrap());
    }
    versions.sort();
    // Each import got its own version number, none lost, none twice.
    assert_eq!(versions, (2..2 + 2 * EACH as u64).collect::<Vec<_>>());
    assert_eq!(generation(&db), 1 + 2 * EACH as i64);
    let last = 1 + 2 * EACH as u64;
    all_serve(&[&a, &b], last, Duration::from_secs(1));
    let (_, history) = request(&a.addr, "GET", "/v1/rules/versions", None);
    assert_eq!(history["versions"].as_array().unwrap().len(), 1 + 2 * EACH, "{history}");
}

#[test]
fn a_replica_killed_in_the_middle_of_its_commit_leaves_no_partial_version() {
    let Some(url) = database() else { return };
    let db = TestDb::new(&url, "t", "kill");
    let mut a = Replica::start(&db);
    let b = Replica::start(&db);
    let csv = current_rules(&db);
    let files_before: i64 = db.client().query_one("SELECT count(*) FROM citygrid_files", &[]).unwrap().get(0);

    // Hold the manifest row: A's commit writes its version's bytes, then waits on the row.
    let mut blocker = db.client();
    blocker.batch_execute("BEGIN; SELECT * FROM citygrid_manifest FOR UPDATE").unwrap();
    let addr = a.addr.clone();
    let csv2 = csv.clone();
    let pending = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(&addr).unwrap();
        let _ = write!(
            stream,
            "PUT /v1/rules HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: text/csv\r\nContent-Length: {}\r\n\r\n{csv2}",
            csv2.len()
        );
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    });
    // Wait until A's transaction has written the new version's bytes and waits on the lock.
    wait_for_a_lock_waiter(&db, Duration::from_secs(10), "replica A never reached its commit");
    a.kill();
    let answer = pending.join().unwrap();
    assert!(!answer.contains("\"version\":2"), "a killed replica did not answer a commit: {answer}");
    blocker.batch_execute("ROLLBACK").unwrap();

    // Nothing of the unfinished version reached the store: same generation, same files.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(generation(&db), 1);
    // Only the row of the version it staged ahead, which no manifest lists.
    let files_after: i64 = db.client().query_one("SELECT count(*) FROM citygrid_files", &[]).unwrap().get(0);
    assert_eq!(files_after, files_before + 1);
    assert_eq!(orphan_files(&db).len(), 1);
    assert_eq!(b.rules_version(), 1);
    // The writer lock died with A: B takes the next import, under the number A never committed.
    let (status, body) = put_rules(&b, &csv);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], 2);
    assert!(orphan_files(&db).is_empty(), "the next commit deleted the orphan: {:?}", orphan_files(&db));
    // A restarted replica loads the current version.
    let a2 = Replica::start(&db);
    assert_eq!(a2.rules_version(), 2);
}

#[test]
fn a_replica_cut_off_from_the_database_catches_up_when_it_reconnects() {
    let Some(url) = database() else { return };
    let db = TestDb::new(&url, "t", "reconnect");
    let a = Replica::start(&db);
    let b = Replica::start(&db);
    let csv = current_rules(&db);
    let restart = std::env::var("CITYGRID_TEST_PG_RESTART").ok().filter(|c| !c.trim().is_empty());
    match &restart {
        // A database restart: every connection of every replica is cut.
        Some(command) => {
            let status = Command::new("sh").arg("-c").arg(command).status().unwrap();
            assert!(status.success(), "{command}");
        }
        // Otherwise: cut B's connections (its listener's among them).
        None => {
            db.client()
                .batch_execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'citygrid'")
                .unwrap();
        }
    }
    // The first write after the break may meet a connection that died with it: retried.
    let start = Instant::now();
    let (status, body) = loop {
        let (status, body) = put_rules(&a, &csv);
        if status == 200 || start.elapsed() > Duration::from_secs(10) {
            break (status, body);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status, 200, "{body}");
    // B learns of it through its reconnected listener or its poll.
    all_serve(&[&a, &b], 2, Duration::from_secs(5));
    // Nothing was lost: both versions kept.
    let (_, history) = request(&b.addr, "GET", "/v1/rules/versions", None);
    assert_eq!(history["versions"].as_array().unwrap().len(), 2, "{history}");
    let _ = WRITER_LOCK;
}

#[test]
fn store_copy_moves_every_version_from_a_data_directory_to_postgres_and_back() {
    let Some(url) = database() else { return };
    let db = TestDb::new(&url, "t", "copy");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let citygrid = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_citygrid")).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let data_s = data.to_str().unwrap();
    // Two versions of every dataset of the demo city.
    citygrid(&["demo", "--preset", "tiny", "--out", data_s]);
    citygrid(&["demo", "--preset", "tiny", "--out", data_s]);
    citygrid(&["store", "copy", "--from", data_s, "--to", &db.url]);
    // Into an empty store only.
    let again = Command::new(env!("CARGO_BIN_EXE_citygrid")).args(["store", "copy", "--from", data_s, "--to", &db.url]).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("holds a city already"), "{}", String::from_utf8_lossy(&again.stderr));

    let back = dir.path().join("back");
    citygrid(&["store", "copy", "--from", &db.url, "--to", back.to_str().unwrap()]);
    let manifest = |d: &std::path::Path| -> serde_json::Value { serde_json::from_slice(&std::fs::read(d.join("manifest.json")).unwrap()).unwrap() };
    let (original, copied) = (manifest(&data), manifest(&back));
    assert_eq!(original, copied, "the same manifest: every version of every dataset, the current ones");
    let grids = original["datasets"]["grids"]["versions"].as_array().unwrap();
    assert_eq!(grids.len(), 2);
    for dataset in original["datasets"].as_object().unwrap().values() {
        for v in dataset["versions"].as_array().unwrap() {
            let file = v["file"].as_str().unwrap();
            assert_eq!(std::fs::read(data.join(file)).unwrap(), std::fs::read(back.join(file)).unwrap(), "{file}");
        }
    }
    // A replica serves the copied store's current versions.
    let replica = Replica::start(&db);
    assert_eq!(replica.health()["layers"][0]["version"], 2);
}

/// A real city from an empty store, as a GIS office brings it in: the Gauss-Krüger package of
/// `fixtures/city-gk` (a GBK Shapefile of grids, components as CSV with X = easting, zones,
/// units, rules, calendar) uploaded as a ZIP through replica a of an empty PostgreSQL store;
/// replica b serves it within a second, every locate of the package's own oracle
/// (`expected.csv`, computed with pyproj) agrees on replica b, and the grids are a PostGIS table.
#[test]
fn a_real_city_package_uploaded_through_one_replica_of_an_empty_store_is_served_by_the_other() {
    let Some(url) = database() else { return };
    let db = TestDb::new(&url, "t", "realcity");
    let a = Replica::start_empty(&db);
    let b = Replica::start_empty(&db);
    assert_eq!(b.health()["has_grids"], false);

    let package = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/city-gk");
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for name in ["city.toml", "grids.zip", "components.csv", "zones.geojson", "units.csv", "rules.csv", "calendar.toml"] {
        zip.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(&std::fs::read(package.join(name)).unwrap()).unwrap();
    }
    let body = zip.finish().unwrap().into_inner();
    let mut stream = TcpStream::connect(&a.addr).unwrap();
    write!(
        stream,
        "PUT /v1/city HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/zip\r\nContent-Length: {}\r\n\r\n",
        a.addr,
        body.len()
    )
    .unwrap();
    stream.write_all(&body).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let start = Instant::now();
    while b.health()["has_grids"] != true {
        assert!(start.elapsed() < Duration::from_secs(1), "replica b does not serve the city a second after the upload: {}", b.health());
        std::thread::sleep(Duration::from_millis(20));
    }
    let health = b.health();
    assert_eq!(health["city"], "苏州市星湖示范区", "{health}");

    let mut checked = 0;
    let oracle = std::fs::read_to_string(package.join("expected.csv")).unwrap();
    let mut rows = oracle.lines();
    let header: Vec<&str> = rows.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    for row in rows {
        let f: Vec<&str> = row.split(',').collect();
        if f[col("kind")] != "locate" {
            continue;
        }
        let (status, located) = request(&b.addr, "GET", &format!("/v1/locate?lon={}&lat={}", f[col("lon")], f[col("lat")]), None);
        assert_eq!(status, 200, "{located}");
        assert_eq!(located["grid"]["code"], f[col("unit_grid")], "{row}");
        checked += 1;
    }
    assert!(checked >= 50, "only {checked} locate rows in the oracle");

    let grids: i64 = db.client().query_one("SELECT count(*) FROM grids", &[]).unwrap().get(0);
    let srid: i32 = db.client().query_one("SELECT Find_SRID('public', 'grids', 'geom')", &[]).unwrap().get(0);
    assert_eq!((grids, srid), (55, 4326));
}

/// `citygrid serve ARGS` that must refuse to start: its stderr.
fn refused(args: &[&str]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_citygrid"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .args(args)
        .env_remove("CITYGRID_DATA")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("citygrid serve {args:?} started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(!status.success(), "{args:?}: {stderr}");
    stderr
}

/// Routes `n` cases at points around the city centre through `server`.
fn route_cases(server: &Replica, n: usize) {
    let health = server.health();
    let [lon, lat] = [health["center"][0].as_f64().unwrap(), health["center"][1].as_f64().unwrap()];
    for i in 0..n {
        let (dx, dy) = ((i % 5) as f64 * 0.0003 - 0.0006, (i / 5) as f64 * 0.0003 - 0.0006);
        let case = serde_json::json!({"lon": lon + dx, "lat": lat + dy, "event_type": if i % 2 == 0 { "0101" } else { "0102" }, "reported_at": "2026-12-08T10:00:00+08:00"});
        let (status, answer) = request(&server.addr, "POST", "/v1/cases/route", Some(("application/json", &case.to_string())));
        assert_eq!(status, 200, "{answer}");
    }
}

/// What the audit log of `server` shows: its statistics over all time, and every decision's
/// (id, time, unit) in page order.
fn audit_view(server: &Replica) -> (serde_json::Value, Vec<(i64, String, String)>) {
    let (status, stats) = request(&server.addr, "GET", "/v1/stats/cases?since=2000-01-01&until=2100-01-01&level=grid", None);
    assert_eq!(status, 200, "{stats}");
    let (status, page) = request(&server.addr, "GET", "/v1/cases/routes?limit=1000", None);
    assert_eq!(status, 200, "{page}");
    let routes = page["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_i64().unwrap(), r["at"].as_str().unwrap().to_owned(), r["unit"].as_str().unwrap_or("").to_owned()))
        .collect();
    (stats, routes)
}

/// The served case type `code` of `kind`, by name.
fn case_type_name(server: &Replica, kind: &str, code: &str) -> Option<String> {
    let (_, types) = request(&server.addr, "GET", "/v1/cases/types", None);
    types["types"].as_array().unwrap().iter().find(|t| t["kind"] == kind && t["code"] == code).map(|t| t["name"].as_str().unwrap().to_owned())
}

/// The local class files and the audit log go with `store copy`, both ways: a replica of the
/// store serves the directory's own classes and answers the same statistics and the same
/// decisions (ids, order) as the directory's server did, new decisions are numbered after the
/// copied ones, and a copy back into a directory gives the same files, statistics and pages.
#[test]
fn store_copy_keeps_class_files_and_the_audit_log_both_ways() {
    let Some(url) = database() else { return };
    let db = TestDb::new(&url, "t", "copyextra");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let citygrid = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_citygrid")).args(args).env_remove("CITYGRID_DATA").output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let data_s = data.to_str().unwrap();
    citygrid(&["demo", "--preset", "tiny", "--out", data_s]);
    let classes = [
        ("component_classes.csv", "code,name,name_en\n21,城市家具,street furniture\n2101,共享单车停放点,bike-share parking\n"),
        ("event_classes.csv", "code,name,name_en\n21,本地事件,local events\n2101,共享单车乱停放,misparked bikes\n"),
    ];
    for (file, text) in classes {
        std::fs::write(data.join(file), text).unwrap();
    }

    // Decisions of the single server on the directory.
    let server = Replica::start_dir(&data);
    assert_eq!(server.health()["store"], serde_json::json!({"kind": "dir"}));
    assert_eq!(case_type_name(&server, "event", "2101").as_deref(), Some("共享单车乱停放"));
    route_cases(&server, 12);
    let (stats, routes) = audit_view(&server);
    assert_eq!(stats["total"], 12, "{stats}");
    assert_eq!(routes.len(), 12);
    drop(server);

    let out = citygrid(&["store", "copy", "--from", data_s, "--to", &db.url]);
    assert!(out.contains("12 audit decisions"), "{out}");
    let replica = Replica::start_with(&db, &[]);
    let health = replica.health();
    assert_eq!(health["store"], serde_json::json!({"kind": "postgres", "generation": 1}), "{health}");
    assert_eq!(case_type_name(&replica, "event", "2101").as_deref(), Some("共享单车乱停放"));
    assert_eq!(case_type_name(&replica, "component", "2101").as_deref(), Some("共享单车停放点"));
    assert_eq!(audit_view(&replica), (stats, routes.clone()), "the store's log answers as the directory's did");
    // New decisions come after the copied ones.
    route_cases(&replica, 1);
    let (stats, routes) = audit_view(&replica);
    let newest = routes.iter().map(|r| r.0).max().unwrap();
    assert!(routes.iter().filter(|r| r.0 != newest).all(|r| r.0 < newest), "{routes:?}");
    assert_eq!(stats["total"], 13);
    drop(replica);

    let back = dir.path().join("back");
    let out = citygrid(&["store", "copy", "--from", &db.url, "--to", back.to_str().unwrap()]);
    assert!(out.contains("13 audit decisions"), "{out}");
    for (file, text) in classes {
        assert_eq!(std::fs::read_to_string(back.join(file)).unwrap(), text, "{file}");
    }
    let server = Replica::start_dir(&back);
    assert_eq!(case_type_name(&server, "event", "2101").as_deref(), Some("共享单车乱停放"));
    assert_eq!(audit_view(&server), (stats, routes), "the copied-back log answers as the store's did");
    // Into an empty directory only: its log holds decisions now.
    drop(server);
    std::fs::remove_file(back.join("manifest.json")).unwrap();
    let again = Command::new(env!("CARGO_BIN_EXE_citygrid")).args(["store", "copy", "--from", &db.url, "--to", back.to_str().unwrap()]).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("holds audit decisions already"), "{}", String::from_utf8_lossy(&again.stderr));
}

/// A replica given `--data DIR` keeps its working copy there: a second replica (or any other
/// citygrid process) on the same directory is refused with the holder's name, a data directory
/// holding a city of its own is never taken as a working copy, and a replica restarted on its
/// directory serves the store's current generation.
#[test]
fn a_replica_keeps_its_working_copy_in_its_own_data_directory() {
    let Some(url) = database() else { return };
    let db = TestDb::new(&url, "t", "workdir");
    let dir = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (dir.path().join("a"), dir.path().join("b"));
    let mut a = Replica::start_in(&db, &dir_a);
    let b = Replica::start_in(&db, &dir_b);
    assert!(dir_a.join("manifest.json").is_file() && dir_a.join("replica-of").is_file());
    assert!(dir_b.join("manifest.json").is_file());

    let stderr = refused(&["--store", &db.url, "--data", dir_a.to_str().unwrap()]);
    assert!(stderr.contains("is being written by") && stderr.contains("citygrid serve"), "{stderr}");

    // A data directory of its own city is not overwritten by the store's.
    let own = dir.path().join("own");
    let out = Command::new(env!("CARGO_BIN_EXE_citygrid")).args(["demo", "--preset", "tiny", "--out", own.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success());
    let manifest = std::fs::read(own.join("manifest.json")).unwrap();
    let stderr = refused(&["--store", &db.url, "--data", own.to_str().unwrap()]);
    assert!(stderr.contains("holds a city of its own"), "{stderr}");
    assert_eq!(std::fs::read(own.join("manifest.json")).unwrap(), manifest);

    // A switch while a is down; restarted on its directory, a serves it.
    a.kill();
    let (status, body) = put_rules(&b, &current_rules(&db));
    assert_eq!(status, 200, "{body}");
    let a = Replica::start_in(&db, &dir_a);
    assert_eq!(a.rules_version(), 2);
    for r in [&a, &b] {
        let health = r.health();
        assert_eq!(health["store"], serde_json::json!({"kind": "postgres", "generation": 2}), "{health}");
        assert_eq!(health["versions"]["rules"], 2, "{health}");
    }
}

/// A request with a binary body; the status and the raw body.
fn request_bytes(addr: &str, method: &str, path: &str, body: Option<(&str, &[u8])>) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    let (content_type, body) = body.unwrap_or(("application/json", b""));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let head_end = response.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP answer") + 4;
    let head = String::from_utf8_lossy(&response[..head_end]).into_owned();
    let status = head.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0);
    let mut body = response[head_end..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..line_end]).split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[line_end + 2 + size + 2..];
    }
}

fn components_version(r: &Replica) -> u64 {
    r.health()["versions"]["components"].as_u64().unwrap_or(0)
}

/// The count of `citygrid_switch_prebuilt_total` on `r`'s /metrics.
fn prebuilt_switches(r: &Replica) -> u64 {
    let (status, body) = request_bytes(&r.addr, "GET", "/metrics", None);
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    let line = text.lines().find(|l| l.starts_with("citygrid_switch_prebuilt_total")).unwrap_or_else(|| panic!("no citygrid_switch_prebuilt_total in {text}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Polls until every replica serves components version `version`.
fn all_serve_components(replicas: &[&Replica], version: u64, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if replicas.iter().all(|r| components_version(r) == version) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "not every replica serves components version {version} after {within:?}: {:?}",
            replicas.iter().map(|r| components_version(r)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Version files the store holds that its committed manifest does not list.
fn orphan_files(db: &TestDb) -> Vec<String> {
    let mut c = db.client();
    let manifest: String = c.query_one("SELECT manifest::text FROM citygrid_manifest", &[]).unwrap().get(0);
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let listed: Vec<String> = manifest["datasets"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|d| d["versions"].as_array().unwrap().iter().map(|v| v["file"].as_str().unwrap().to_owned()))
        .collect();
    let stored: Vec<String> = c.query("SELECT DISTINCT file FROM citygrid_files ORDER BY file", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    stored.into_iter().filter(|f| !listed.contains(f)).collect()
}

#[test]
fn a_components_import_through_one_replica_is_swapped_in_prebuilt_by_the_others() {
    let Some(url) = database() else { return };
    let db = TestDb::new(&url, "t", "ahead");
    let a = Replica::start(&db);
    let b = Replica::start(&db);
    let c = Replica::start(&db);
    for r in [&b, &c] {
        assert_eq!(prebuilt_switches(r), 0);
    }
    // The current component layer, uploaded again through a: its version 2.
    let (status, fgb) = request_bytes(&a.addr, "GET", "/v1/layers/components/versions/1", None);
    assert_eq!(status, 200);
    let (status, body) = request_bytes(&a.addr, "PUT", "/v1/layers/components", Some(("application/flatgeobuf", &fgb)));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let took = all_serve_components(&[&a, &b, &c], 2, Duration::from_secs(1));
    eprintln!("every replica served components version 2 {took:?} after the answer");
    // b and c took it in by swapping the snapshot they built while a built its own.
    for r in [&b, &c] {
        assert_eq!(prebuilt_switches(r), 1, "{} swapped a prebuilt snapshot", r.addr);
        assert_eq!(r.health()["store"]["generation"], 2);
    }
    // Every replica answers the same, byte for byte.
    let health = a.health();
    let [lon, lat] = [health["center"][0].as_f64().unwrap(), health["center"][1].as_f64().unwrap()];
    for path in [
        format!("/v1/components/nearest?lon={lon}&lat={lat}&limit=20"),
        "/v1/components/counts".to_owned(),
        "/v1/layers/components/versions".to_owned(),
        "/tiles/components/14/0/0".to_owned(),
    ] {
        let answers: Vec<(u16, Vec<u8>)> = [&a, &b, &c].iter().map(|r| request_bytes(&r.addr, "GET", &path, None)).collect();
        assert!(answers.iter().all(|x| *x == answers[0]), "{path}: the replicas answer differently");
    }
    // A rollback through c: a and b swap theirs in prebuilt too.
    let (status, body) = request(&c.addr, "POST", "/v1/layers/components/rollback", Some(("application/json", r#"{"version":1}"#)));
    assert_eq!(status, 200, "{body}");
    all_serve_components(&[&a, &b, &c], 1, Duration::from_secs(1));
    assert_eq!(prebuilt_switches(&a), 1);
    assert_eq!(prebuilt_switches(&b), 2);
    assert!(orphan_files(&db).is_empty());
}

#[test]
fn a_writer_killed_after_staging_leaves_nothing_served_and_the_next_import_cleans_its_rows() {
    let Some(url) = database() else { return };
    let db = TestDb::new(&url, "t", "stagekill");
    let mut a = Replica::start(&db);
    let b = Replica::start(&db);
    let (status, fgb) = request_bytes(&a.addr, "GET", "/v1/layers/components/versions/1", None);
    assert_eq!(status, 200);

    // Hold the manifest row: a stages its switch (committed apart), then its commit waits.
    let mut blocker = db.client();
    blocker.batch_execute("BEGIN; SELECT * FROM citygrid_manifest FOR UPDATE").unwrap();
    let mut listener = db.client();
    listener.batch_execute("LISTEN citygrid_staged").unwrap();
    let addr = a.addr.clone();
    let upload = fgb.clone();
    let pending = std::thread::spawn(move || request_bytes(&addr, "PUT", "/v1/layers/components", Some(("application/flatgeobuf", &upload))));
    let staged = postgres::fallible_iterator::FallibleIterator::next(&mut listener.notifications().timeout_iter(Duration::from_secs(20)))
        .unwrap()
        .expect("a staged the switch");
    assert_eq!(staged.payload(), "2");
    wait_for_a_lock_waiter(&db, Duration::from_secs(20), "replica a never reached its commit");
    // The staged version is in the database, listed by no manifest.
    let orphans = orphan_files(&db);
    assert_eq!(orphans.len(), 1, "{orphans:?}");
    assert!(orphans[0].starts_with("layers/components/"), "{orphans:?}");
    // Give b the time to build it ahead; then a dies before its commit.
    std::thread::sleep(Duration::from_millis(1500));
    a.kill();
    let (status, _) = pending.join().unwrap_or((0, Vec::new()));
    assert_ne!(status, 200, "a killed replica did not answer a commit");
    blocker.batch_execute("ROLLBACK").unwrap();

    // Nobody serves the staged version: b stays on generation 1, components version 1.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(generation(&db), 1);
    assert_eq!(components_version(&b), 1);
    assert_eq!(b.health()["store"]["generation"], 1);
    let (_, versions) = request(&b.addr, "GET", "/v1/layers/components/versions", None);
    assert_eq!(versions["versions"].as_array().unwrap().len(), 1, "b lists no staged version: {versions}");
    assert_eq!(prebuilt_switches(&b), 0);
    // A replica started now serves the committed generation.
    let a2 = Replica::start(&db);
    assert_eq!(components_version(&a2), 1);

    // The next import, through b, reuses the number and leaves no orphan; a2 serves it.
    let (status, body) = request_bytes(&b.addr, "PUT", "/v1/layers/components", Some(("application/flatgeobuf", &fgb)));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    all_serve_components(&[&b, &a2], 2, Duration::from_secs(2));
    assert!(orphan_files(&db).is_empty(), "{:?}", orphan_files(&db));
    assert_eq!(db.client().query_one("SELECT count(*) FROM citygrid_staged", &[]).unwrap().get::<_, i64>(0), 0);
    assert_eq!(prebuilt_switches(&a2), 1);
}
