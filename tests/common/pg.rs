//! A PostgreSQL test database per test, for the tests of the PostgreSQL store.
//!
//! `CITYGRID_TEST_PG=postgres://…` names a database whose user may create databases. Without it
//! the tests skip with a message on stderr, unless `CITYGRID_REQUIRE_PG=1` (CI: `.ci/postgres.sh`),
//! which makes a skip a failure.

use std::io::Write;

use postgres::{Client, NoTls};

/// The test database's URL, or `None` (skipped, said on stderr) without one. `what` names the
/// tests in the messages, e.g. "PostgreSQL store".
pub fn database(what: &str) -> Option<String> {
    match std::env::var("CITYGRID_TEST_PG") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            if std::env::var("CITYGRID_REQUIRE_PG").is_ok_and(|v| v == "1") {
                panic!("CITYGRID_REQUIRE_PG=1 but CITYGRID_TEST_PG is not set: the {what} tests cannot be skipped here (run .ci/postgres.sh)");
            }
            // Straight to stderr: the test harness captures eprintln! of a passing test.
            let _ = writeln!(std::io::stderr(), "SKIPPED: the {what} tests need CITYGRID_TEST_PG=postgres://… (bash .ci/postgres.sh start prints one)");
            None
        }
    }
}

/// A fresh database with PostGIS for one test, dropped (with its connections) at the end.
pub struct TestDb {
    admin_url: String,
    pub name: String,
    /// The URL of the test's database: the admin URL with its database replaced.
    pub url: String,
}

impl TestDb {
    /// `citygrid_{prefix}_{test}_{pid}`, created afresh (a leftover of a killed run is dropped first).
    pub fn new(admin_url: &str, prefix: &str, test: &str) -> TestDb {
        let name = format!("citygrid_{prefix}_{test}_{}", std::process::id());
        let mut admin = Client::connect(admin_url, NoTls).unwrap();
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).unwrap();
        admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        // The same URL with the test's database in place of the last path segment.
        let base = admin_url.split('?').next().unwrap();
        let url = format!("{}/{name}", &base[..base.rfind('/').unwrap()]);
        Client::connect(&url, NoTls).unwrap().batch_execute("CREATE EXTENSION IF NOT EXISTS postgis").unwrap();
        TestDb { admin_url: admin_url.to_owned(), name, url }
    }

    pub fn client(&self) -> Client {
        Client::connect(&self.url, NoTls).unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = Client::connect(&self.admin_url, NoTls) {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}
