//! The PostgreSQL/PostGIS store: the system of record shared by several replicas.
//!
//! The database holds everything a data directory holds, with the same semantics, and each
//! replica keeps a private local copy of it (a data directory of its own, [`super::Store`]) that
//! it loads its in-memory engine from: the database is the system of record, not the query path.
//!
//! # Tables
//! - `citygrid_manifest`: one row, `generation` (bumped by every commit) and `manifest`, the
//!   [`Manifest`] as JSON: every dataset's versions, which one is current, the city settings.
//!   Its commit is the commit point, as `manifest.json` is in a data directory.
//! - `citygrid_files (file, chunk, data)`: the bytes of every kept version, by the path the data
//!   directory gives it (`layers/grids/3.fgb`, `rules/2.csv`, …), in chunks of [`CHUNK`] bytes:
//!   the same FlatGeobuf, CSV and TOML payloads. A version's rows are written in the transaction
//!   that commits it, and deleted in the one whose retention lets it go.
//! - `citygrid_store`: one row, `store_id`, a random identity made when the tables are
//!   created (kept by `pg_dump`/`pg_restore`): the working copy of a replica names it
//!   ([`PgStore::adopt`]).
//! - `citygrid_unversioned_files (file, data)`: the files of a data directory that no manifest
//!   versions but that shape the served city ([`super::UNVERSIONED_FILES`]: the local class
//!   tables `component_classes.csv`, `event_classes.csv`, a legacy `calendar.toml`), one row
//!   each; written by `citygrid store copy`, copied into every replica's local copy with each
//!   generation it pulls (a file without a row is removed there).
//! - `grids`, `components`, `zones`: the current layers as PostGIS tables (EPSG:4326 geometry
//!   columns with GiST indexes), for GIS staff (QGIS, SQL). Replaced in the transaction that
//!   switches their layer, so a reader sees one version or the next, never a mix.
//! - `citygrid_staged`: one row at most, the switch a writer staged ahead of its commit
//!   (generation, manifest, stage identity); deleted by the next commit.
//! - `citygrid_audit`: the shared audit log ([`PgAudit`]).
//!
//! # One writer, one switch
//! A write takes the transaction-scoped advisory lock [`WRITER_LOCK`] (a database lock: it is
//! released when the transaction ends, however it ends, a killed replica's included), brings the
//! replica's local copy to the committed state, writes the new versions locally, and then commits
//! files, manifest and layer tables in one transaction that ends with `NOTIFY citygrid_switch`.
//! A replica killed before that commit leaves nothing in the database.
//!
//! # Build ahead
//! Before it builds its own snapshot, the writer stages the switch ([`PgWrite::stage`]): in a
//! separate transaction, committed at once while the writer lock stays held, the new version
//! files' rows, the intended manifest and a random stage identity in `citygrid_staged`, and
//! `NOTIFY citygrid_staged`. The followers copy the staged files ([`Follower::pull_staged`])
//! and build the candidate snapshot meanwhile, serving nothing from it; the commit names the
//! stage in `citygrid_manifest.stage` (only if it commits exactly the staged manifest), and a
//! follower whose candidate is of that stage swaps it in at once. A staged file is listed by no
//! manifest until that commit, so it is never served; the rows of a writer that died after
//! staging are deleted by the next commit (which deletes every file its manifest does not
//! list). Chosen over sending the files replica to replica: the database stays the one place
//! replicas read from and the single system of record.
//!
//! # Followers
//! Every replica listens on [`SWITCH_CHANNEL`] and [`STAGED_CHANNEL`] over one long-lived
//! connection ([`PgStore::follow`], reconnected when it fails), and polls the generation every
//! [`POLL`] on it (which also covers a lost connection): on a new generation it copies the committed
//! manifest and the version files it lacks into its local copy (each streamed to disk chunk by
//! chunk), all read in one repeatable-read transaction, builds the new snapshot and swaps it
//! in. A switch of the responsibility list or the calendar alone shares the served layers
//! instead of rebuilding them ([`crate::world::World::with_routing`]).
//!
//! # Working copies
//! A replica's local copy is a data directory it holds the writer lock of (one process per
//! directory), marked with the store's identity ([`PgStore::adopt`]): a private temporary
//! directory, or the lasting one `serve --data` names.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};

use super::{Manifest, StoreError, VersionInfo, atomic};
use crate::model::City;

/// The channel of switch notifications; the payload is the new generation.
pub const SWITCH_CHANNEL: &str = "citygrid_switch";
/// The channel of staged switches (built ahead by the followers, not yet committed); the
/// payload is the generation the switch will commit as.
pub const STAGED_CHANNEL: &str = "citygrid_staged";
/// The advisory lock key of the one writer (`citygrid` in ASCII).
pub const WRITER_LOCK: i64 = 0x0063_6974_7967_7269;
/// Size of one row of a version's bytes.
pub const CHUNK: usize = 4 << 20;
/// The file that marks a data directory as a replica's working copy of a store, holding
/// the store's identity ([`PgStore::adopt`]).
pub const REPLICA_OF: &str = "replica-of";
/// How often a follower checks the generation without a notification.
pub const POLL: Duration = Duration::from_secs(2);

const SCHEMA: &str = r#"
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE TABLE IF NOT EXISTS citygrid_manifest (
    id integer PRIMARY KEY CHECK (id = 1),
    generation bigint NOT NULL,
    manifest jsonb NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE citygrid_manifest ADD COLUMN IF NOT EXISTS stage text;
CREATE TABLE IF NOT EXISTS citygrid_staged (
    id integer PRIMARY KEY CHECK (id = 1),
    generation bigint NOT NULL,
    manifest jsonb NOT NULL,
    stage text NOT NULL,
    staged_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS citygrid_files (
    file text NOT NULL,
    chunk integer NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (file, chunk)
);
CREATE TABLE IF NOT EXISTS citygrid_store (
    id integer PRIMARY KEY CHECK (id = 1),
    store_id text NOT NULL
);
INSERT INTO citygrid_store (id, store_id) VALUES (1, md5(random()::text || clock_timestamp()::text)) ON CONFLICT (id) DO NOTHING;
CREATE TABLE IF NOT EXISTS citygrid_unversioned_files (
    file text PRIMARY KEY,
    data bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS grids (
    code text PRIMARY KEY,
    name text NOT NULL,
    level integer NOT NULL,
    parent text,
    unit text,
    valid_from date,
    valid_to date,
    version bigint NOT NULL,
    geom geometry(MultiPolygon, 4326) NOT NULL
);
CREATE INDEX IF NOT EXISTS grids_geom ON grids USING gist (geom);
CREATE TABLE IF NOT EXISTS components (
    code text NOT NULL,
    class text NOT NULL,
    name text NOT NULL,
    status text NOT NULL,
    grid text,
    version bigint NOT NULL,
    geom geometry(Point, 4326) NOT NULL
);
CREATE INDEX IF NOT EXISTS components_geom ON components USING gist (geom);
CREATE INDEX IF NOT EXISTS components_code ON components (code);
CREATE TABLE IF NOT EXISTS zones (
    layer text NOT NULL,
    id text NOT NULL,
    name text NOT NULL,
    unit text,
    version bigint NOT NULL,
    geom geometry(MultiPolygon, 4326) NOT NULL,
    PRIMARY KEY (layer, id)
);
CREATE INDEX IF NOT EXISTS zones_geom ON zones USING gist (geom);
"#;

/// The advisory lock key taken while the schema is created (two replicas starting at once).
const SCHEMA_LOCK: i64 = WRITER_LOCK + 1;

/// A PostgreSQL store: where to connect. Every operation opens its own connection (a replica
/// writes rarely and polls every [`POLL`]).
pub struct PgStore {
    config: postgres::Config,
    /// The URL without its password, for messages and logs.
    shown: String,
}

/// The error of a database operation, naming the store.
fn pg_error(shown: &str) -> impl Fn(postgres::Error) -> StoreError + '_ {
    move |e| StoreError::Postgres { store: shown.to_owned(), message: error_text(&e) }
}

/// The server's message of a database error (with its detail), or the client's.
fn error_text(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_owned(),
        },
        None => e.to_string(),
    }
}

/// `url` without a password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user = &url[scheme + 3..at];
            let user = user.split(':').next().unwrap_or("");
            format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db`, or a `host=… dbname=…` string) and
    /// creates the tables if they are missing (with the PostGIS extension, which needs the right
    /// to create it or an administrator's `CREATE EXTENSION postgis` beforehand).
    pub fn connect(url: &str) -> Result<PgStore, StoreError> {
        let shown = redact(url);
        let mut config: postgres::Config = url.parse().map_err(|e: postgres::Error| StoreError::Postgres { store: shown.clone(), message: e.to_string() })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.application_name("citygrid");
        // No NOTICE lines for every `CREATE … IF NOT EXISTS` at start.
        config.options("-c client_min_messages=warning");
        let store = PgStore { config, shown };
        let mut client = store.client()?;
        let shown = store.shown.clone();
        let e = pg_error(&shown);
        let mut tx = client.transaction().map_err(&e)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK]).map_err(&e)?;
        tx.batch_execute(SCHEMA).map_err(&e)?;
        tx.batch_execute(super::pg_audit::SCHEMA).map_err(&e)?;
        super::pg_audit::migrate(&mut tx).map_err(&e)?;
        tx.commit().map_err(&e)?;
        Ok(store)
    }

    /// A new connection.
    pub fn client(&self) -> Result<Client, StoreError> {
        self.config.connect(NoTls).map_err(pg_error(&self.shown))
    }

    /// The store's URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The generation committed last (0: nothing committed yet).
    pub fn generation(&self) -> Result<i64, StoreError> {
        let mut client = self.client()?;
        let row = client.query_opt("SELECT generation FROM citygrid_manifest WHERE id = 1", &[]).map_err(pg_error(&self.shown))?;
        Ok(row.map_or(0, |r| r.get(0)))
    }

    /// Copies the committed state into the data directory `dir` (a replica's local copy): the
    /// version files it lacks, then `manifest.json` and `city.toml`. Everything is read in one
    /// repeatable-read transaction, so the copy is of one generation, which is returned. The
    /// caller re-reads the directory ([`super::Store::resync`]), which removes version files no
    /// manifest lists.
    pub fn pull(&self, dir: &Path) -> Result<i64, StoreError> {
        let mut client = self.client()?;
        let e = pg_error(&self.shown);
        client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").map_err(&e)?;
        let result = pull_into(&mut client, &self.shown, dir, None);
        let _ = client.batch_execute("ROLLBACK");
        Ok(result?.generation)
    }

    /// Makes `dir` this store's working copy for a replica, or refuses: a directory that
    /// is another store's working copy, or that holds a city of its own (a data directory:
    /// `local_is_empty` false and no mark), is never overwritten. The mark is the file
    /// [`REPLICA_OF`] holding the store's identity. The caller holds `dir`'s writer lock, so
    /// two replicas never share one working copy.
    pub fn adopt(&self, dir: &Path, local_is_empty: bool) -> Result<(), StoreError> {
        let mut client = self.client()?;
        let id: String = client.query_one("SELECT store_id FROM citygrid_store WHERE id = 1", &[]).map_err(pg_error(&self.shown))?.get(0);
        let mark = dir.join(REPLICA_OF);
        match super::read_optional(&mark)? {
            Some(text) if String::from_utf8_lossy(&text).trim() == id => Ok(()),
            Some(_) => Err(StoreError::Invalid(format!(
                "{} is the working copy of another PostgreSQL store: give this replica a directory of its own (--data), or remove that one",
                dir.display()
            ))),
            None if !local_is_empty => Err(StoreError::Invalid(format!(
                "{} holds a city of its own (a data directory, not a replica's working copy): give the replica an empty directory (--data), or copy that city into the store with `citygrid store copy`",
                dir.display()
            ))),
            None => atomic::stage(&mark, |w| w.write_all(format!("{id}\n").as_bytes()).map_err(|e| e.to_string()))?.commit().map(|_| ()),
        }
    }

    /// Starts a write: a transaction holding the writer lock (waiting while another replica
    /// holds it). Dropped without [`PgWrite::commit`], it rolls back and changes nothing.
    pub fn begin_write(&self) -> Result<PgWrite, StoreError> {
        let mut client = self.client()?;
        let e = pg_error(&self.shown);
        client.batch_execute("BEGIN").map_err(&e)?;
        client.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITER_LOCK]).map_err(&e)?;
        let row = client.query_opt("SELECT generation, manifest::text FROM citygrid_manifest WHERE id = 1", &[]).map_err(&e)?;
        let (generation, manifest) = match row {
            Some(r) => (r.get::<_, i64>(0), Some(parse_manifest(&self.shown, r.get(1))?)),
            None => (0, None),
        };
        Ok(PgWrite { client, config: self.config.clone(), shown: self.shown.clone(), generation, manifest, staged: None, open: true })
    }

    /// Follows switches until the process ends, over one long-lived connection (reconnected
    /// when it fails) that listens, polls and pulls: calls `on` with [`Notice::Switch`] once
    /// connected (a replica that starts or reconnects catches up), on every switch
    /// notification, and every [`POLL`] without one; with [`Notice::Staged`] on a staged
    /// switch's notification (one not followed by a switch notification already). A lost
    /// connection is logged and retried every second. Runs on the calling thread: start it
    /// on its own.
    pub fn follow(&self, on: &dyn Fn(&mut Follower<'_>, Notice)) -> ! {
        loop {
            match self.client() {
                Ok(mut client) => {
                    if let Err(e) = client.batch_execute(&format!("LISTEN {SWITCH_CHANNEL}; LISTEN {STAGED_CHANNEL}")) {
                        tracing::warn!(store = %self.shown, error = %error_text(&e), "cannot listen for switches");
                    } else {
                        on(&mut Follower { client: &mut client, shown: &self.shown }, Notice::Switch);
                        loop {
                            let next = client.notifications().timeout_iter(POLL).next().map(|n| n.map(|n| n.channel() == STAGED_CHANNEL));
                            match next {
                                Ok(Some(first_staged)) => {
                                    // Several in a row: one catch-up, then the last staged
                                    // switch if none was committed after it.
                                    let (mut switch, mut staged) = (!first_staged, first_staged);
                                    while let Ok(Some(n)) = client.notifications().iter().next() {
                                        if n.channel() == STAGED_CHANNEL {
                                            staged = true;
                                        } else {
                                            switch = true;
                                            staged = false;
                                        }
                                    }
                                    if switch {
                                        on(&mut Follower { client: &mut client, shown: &self.shown }, Notice::Switch);
                                    }
                                    if staged {
                                        on(&mut Follower { client: &mut client, shown: &self.shown }, Notice::Staged);
                                    }
                                }
                                Ok(None) if client.is_closed() => break,
                                Ok(None) => on(&mut Follower { client: &mut client, shown: &self.shown }, Notice::Switch),
                                Err(e) => {
                                    tracing::warn!(store = %self.shown, error = %error_text(&e), "lost the connection that listens for switches; reconnecting");
                                    break;
                                }
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot reach the store; retrying"),
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

fn parse_manifest(shown: &str, text: &str) -> Result<Manifest, StoreError> {
    let m: Manifest = serde_json::from_str(text)
        .map_err(|e| StoreError::Postgres { store: shown.to_owned(), message: format!("citygrid_manifest is not a valid manifest: {e}") })?;
    if m.format > super::FORMAT {
        return Err(StoreError::Postgres {
            store: shown.to_owned(),
            message: format!("manifest format {} is newer than this citygrid's ({})", m.format, super::FORMAT),
        });
    }
    Ok(m)
}

/// [`PgStore::pull`] inside a transaction the caller opened. `ahead`: a stage identity and
/// the version files pulled for it ([`Follower::pull_staged`]): trusted as they are if the
/// committed generation names that stage.
fn pull_into(client: &mut Client, shown: &str, dir: &Path, ahead: Option<(&str, &[VersionInfo])>) -> Result<Pulled, StoreError> {
    let e = pg_error(shown);
    let row = client.query_opt("SELECT generation, manifest::text, stage FROM citygrid_manifest WHERE id = 1", &[]).map_err(&e)?;
    let Some(row) = row else {
        // Nothing committed yet: the local copy must be empty too.
        let local = dir.join(super::MANIFEST);
        if local.exists() {
            std::fs::remove_file(&local).map_err(StoreError::io(&local))?;
        }
        return Ok(Pulled { generation: 0, stage: None });
    };
    let generation: i64 = row.get(0);
    let manifest = parse_manifest(shown, row.get(1))?;
    let stage: Option<String> = row.get(2);
    let trusted: &[VersionInfo] = match ahead {
        Some((staged, files)) if stage.as_deref() == Some(staged) => files,
        _ => &[],
    };
    std::fs::create_dir_all(dir).map_err(StoreError::io(dir))?;
    let local: Option<Manifest> = std::fs::read(dir.join(super::MANIFEST)).ok().and_then(|b| serde_json::from_slice(&b).ok());
    for (name, history) in &manifest.datasets {
        for info in &history.versions {
            let path = dir.join(&info.file);
            // A local file is trusted only if the local manifest committed the very same version
            // (a version that a killed replica wrote locally but never committed may have its
            // number reused by the database's next commit).
            let same = local.as_ref().and_then(|m| m.dataset(name)).and_then(|h| h.versions.iter().find(|v| v.version == info.version)) == Some(info)
                || trusted.contains(info);
            if same && std::fs::metadata(&path).is_ok_and(|m| m.len() == info.bytes) {
                continue;
            }
            pull_file(client, dir, info)?;
        }
    }
    pull_unversioned(client, shown, dir)?;
    let path = dir.join(super::MANIFEST);
    atomic::stage(&path, |w| {
        serde_json::to_writer_pretty(&mut *w, &manifest).map_err(|e| e.to_string())?;
        w.write_all(b"\n").map_err(|e| e.to_string())
    })?
    .commit()?;
    if let Some(meta) = &manifest.city {
        super::write_city_toml(&dir.join(super::CITY_TOML), meta)?.commit()?;
    }
    Ok(Pulled { generation, stage })
}

/// Copies the version file `info` from the database into `dir` (streamed to disk chunk by
/// chunk, checked against its size, renamed into place whole).
fn pull_file(client: &mut Client, dir: &Path, info: &VersionInfo) -> Result<(), StoreError> {
    let path = dir.join(&info.file);
    let rel = Path::new(&info.file).parent().and_then(Path::to_str).unwrap_or("");
    atomic::create_dirs(dir, rel)?;
    let staged = atomic::stage(&path, |w| {
        let mut written = 0u64;
        // Streamed: one chunk in memory at a time, written while the next arrives.
        let mut rows = client.query_raw("SELECT data FROM citygrid_files WHERE file = $1 ORDER BY chunk", [&info.file]).map_err(|e| error_text(&e))?;
        while let Some(row) = rows.next().map_err(|e| error_text(&e))? {
            let data: &[u8] = row.get(0);
            w.write_all(data).map_err(|e| e.to_string())?;
            written += data.len() as u64;
        }
        if written != info.bytes {
            return Err(format!("the store holds {written} bytes of {}, its manifest says {}", info.file, info.bytes));
        }
        Ok(())
    })?;
    staged.commit().map(|_| ())
}

/// What a pull copied: the generation, and the stage it committed ([`PgWrite::stage`];
/// `None`: committed without one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pulled {
    pub generation: i64,
    pub stage: Option<String>,
}

/// A staged switch pulled ahead of its commit ([`Follower::pull_staged`]).
#[derive(Clone, Debug)]
pub struct StagedPull {
    /// The generation it will commit as.
    pub generation: i64,
    /// Its stage identity: its commit names it.
    pub stage: String,
    /// The manifest staged (not written anywhere).
    pub manifest: Manifest,
    /// The version files it lists that were copied into the directory for it (none of them
    /// listed by the directory's committed manifest).
    pub written: Vec<VersionInfo>,
}

/// What a follower is told ([`PgStore::follow`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A switch was committed, or may have been (connected, reconnected, a poll): catch up.
    Switch,
    /// A writer staged a switch ([`PgWrite::stage`]): build it ahead, serve nothing yet.
    Staged,
}

/// The follower's long-lived connection, lent to [`PgStore::follow`]'s callback: the same
/// one listens, polls and pulls (reconnected when it fails).
pub struct Follower<'a> {
    client: &'a mut Client,
    shown: &'a str,
}

impl Follower<'_> {
    /// The generation committed last (0: nothing committed yet).
    pub fn generation(&mut self) -> Result<i64, StoreError> {
        let row = self.client.query_opt("SELECT generation FROM citygrid_manifest WHERE id = 1", &[]).map_err(pg_error(self.shown))?;
        Ok(row.map_or(0, |r| r.get(0)))
    }

    /// [`PgStore::pull`] over this connection; `ahead` as [`pull_into`] takes it.
    pub fn pull(&mut self, dir: &Path, ahead: Option<(&str, &[VersionInfo])>) -> Result<Pulled, StoreError> {
        let e = pg_error(self.shown);
        self.client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").map_err(&e)?;
        let result = pull_into(self.client, self.shown, dir, ahead);
        let _ = self.client.batch_execute("ROLLBACK");
        result
    }

    /// The switch staged now, if it is newer than the committed generation: copies into `dir`
    /// the version files it lists that `committed` (the directory's manifest) does not, under
    /// their own names (files no manifest of the directory lists: a re-read of the directory
    /// removes them), all read in one repeatable-read transaction. Nothing is served or
    /// listed from them until the commit names this stage.
    pub fn pull_staged(&mut self, dir: &Path, committed: &Manifest) -> Result<Option<StagedPull>, StoreError> {
        let e = pg_error(self.shown);
        self.client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").map_err(&e)?;
        let result = (|| {
            let Some(row) = self.client.query_opt("SELECT s.generation, s.manifest::text, s.stage, coalesce(m.generation, 0) FROM citygrid_staged s LEFT JOIN citygrid_manifest m ON m.id = 1 WHERE s.id = 1", &[]).map_err(&e)? else {
                return Ok(None);
            };
            let (generation, stage, committed_generation): (i64, String, i64) = (row.get(0), row.get(2), row.get(3));
            if generation <= committed_generation {
                return Ok(None);
            }
            let manifest = parse_manifest(self.shown, row.get(1))?;
            let mut written = Vec::new();
            for (name, history) in &manifest.datasets {
                for info in &history.versions {
                    let local = committed.dataset(name).and_then(|h| h.versions.iter().find(|v| v.version == info.version)) == Some(info);
                    if local && std::fs::metadata(dir.join(&info.file)).is_ok_and(|m| m.len() == info.bytes) {
                        continue;
                    }
                    pull_file(self.client, dir, info)?;
                    written.push(info.clone());
                }
            }
            Ok(Some(StagedPull { generation, stage, manifest, written }))
        })();
        let _ = self.client.batch_execute("ROLLBACK");
        result
    }
}

/// Makes the unversioned files of `dir` those of the store: each one the store holds is
/// written (if it differs), each one it does not is removed.
fn pull_unversioned(client: &mut Client, shown: &str, dir: &Path) -> Result<(), StoreError> {
    let rows = client.query("SELECT file, data FROM citygrid_unversioned_files", &[]).map_err(pg_error(shown))?;
    for name in super::UNVERSIONED_FILES {
        let path = dir.join(name);
        let local = super::read_optional(&path)?;
        match rows.iter().find(|r| r.get::<_, &str>(0) == name).map(|r| r.get::<_, &[u8]>(1)) {
            Some(data) if local.as_deref() != Some(data) => {
                atomic::stage(&path, |w| w.write_all(data).map_err(|e| e.to_string()))?.commit()?;
            }
            None if local.is_some() => {
                tracing::info!(file = %path.display(), "removing a file the store does not hold");
                std::fs::remove_file(&path).map_err(StoreError::io(&path))?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// A write in progress: a transaction holding the writer lock.
pub struct PgWrite {
    client: Client,
    /// Where to connect for [`PgWrite::stage`]'s own transaction.
    config: postgres::Config,
    shown: String,
    generation: i64,
    manifest: Option<Manifest>,
    /// What [`PgWrite::stage`] committed ahead of the switch.
    staged: Option<Staged>,
    open: bool,
}

/// A switch staged ahead of its commit ([`PgWrite::stage`]).
struct Staged {
    /// Its random identity, committed with the manifest when the switch is the one staged.
    stage: String,
    /// The manifest staged, as JSON.
    manifest: String,
    /// The version files written in the staging transaction.
    files: Vec<String>,
}

/// Writes the bytes of `dir`'s version file `file` as its rows of `citygrid_files` (replacing
/// any rows of that name: an orphan a killed writer staged).
fn put_file(client: &mut impl postgres::GenericClient, shown: &str, dir: &Path, file: &str) -> Result<i32, StoreError> {
    let e = pg_error(shown);
    let path = dir.join(file);
    let mut f = std::fs::File::open(&path).map_err(StoreError::io(&path))?;
    client.execute("DELETE FROM citygrid_files WHERE file = $1", &[&file]).map_err(&e)?;
    let mut buf = vec![0u8; CHUNK];
    let mut chunk = 0i32;
    loop {
        let n = read_full(&mut f, &mut buf).map_err(StoreError::io(&path))?;
        if n == 0 && chunk > 0 {
            break;
        }
        client.execute("INSERT INTO citygrid_files (file, chunk, data) VALUES ($1, $2, $3)", &[&file, &chunk, &&buf[..n]]).map_err(&e)?;
        chunk += 1;
        if n < CHUNK {
            break;
        }
    }
    Ok(chunk)
}

impl PgWrite {
    /// The generation committed before this write.
    pub fn generation(&self) -> i64 {
        self.generation
    }

    /// Whether nothing was ever committed to the store.
    pub fn is_empty(&self) -> bool {
        self.manifest.is_none()
    }

    /// Brings the data directory `dir` to the committed state (see [`PgStore::pull`]); the
    /// writer lock guarantees nobody commits meanwhile.
    pub fn pull(&mut self, dir: &Path) -> Result<(), StoreError> {
        pull_into(&mut self.client, &self.shown, dir, None).map(|_| ())
    }

    /// Makes `files` (name, bytes: [`super::Store::unversioned_files`]) the store's
    /// unversioned files, committed with the next [`PgWrite::commit`].
    pub fn put_unversioned(&mut self, files: &[(&str, Vec<u8>)]) -> Result<(), StoreError> {
        let e = pg_error(&self.shown);
        self.client.execute("DELETE FROM citygrid_unversioned_files", &[]).map_err(&e)?;
        for (name, data) in files {
            self.client.execute("INSERT INTO citygrid_unversioned_files (file, data) VALUES ($1, $2)", &[name, data]).map_err(&e)?;
        }
        Ok(())
    }

    /// Copies every decision of `log` (a data directory's SQLite log) into the store's audit
    /// log, which must be empty, keeping ids and order; committed with the next
    /// [`PgWrite::commit`]. Returns how many.
    pub fn copy_audit(&mut self, log: &super::audit::AuditLog) -> Result<u64, StoreError> {
        let e = pg_error(&self.shown);
        if !super::pg_audit::is_empty_in(&mut self.client).map_err(&e)? {
            return Err(StoreError::Postgres {
                store: self.shown.clone(),
                message: "its audit log holds decisions already: copy into an empty database".into(),
            });
        }
        let client = &mut self.client;
        let copied = log.export(&mut |batch| super::pg_audit::copy_in(client, batch).map_err(&e))?;
        super::pg_audit::end_copy(&mut self.client).map_err(&e)?;
        Ok(copied)
    }

    /// Stages the switch to `dir`'s manifest `next` ahead of its commit, in a transaction of
    /// its own that is committed at once (the writer lock stays held by this write): the
    /// version files the database lacks, the row of `citygrid_staged` (the generation the
    /// switch will commit as, `next`, a random stage identity), and `NOTIFY citygrid_staged`.
    /// The followers pull and build it meanwhile, without serving it; [`PgWrite::commit`] of
    /// the same `next` then writes no version bytes and names the stage. Rows staged by a
    /// write that never commits are listed by no manifest (never served) and deleted by the
    /// next commit.
    pub fn stage(&mut self, dir: &Path, next: &Manifest) -> Result<(), StoreError> {
        let e = pg_error(&self.shown);
        let mut client = self.config.connect(NoTls).map_err(&e)?;
        let before = self.manifest.clone().unwrap_or_default();
        let manifest = serde_json::to_string(next).map_err(|err| StoreError::Postgres { store: self.shown.clone(), message: err.to_string() })?;
        let generation = self.generation + 1;
        let mut tx = client.transaction().map_err(&e)?;
        let mut files = Vec::new();
        for history in next.datasets.values() {
            for info in &history.versions {
                if !before.lists_file(&info.file) {
                    put_file(&mut tx, &self.shown, dir, &info.file)?;
                    files.push(info.file.clone());
                }
            }
        }
        let stage: String = tx
            .query_one(
                "INSERT INTO citygrid_staged (id, generation, manifest, stage, staged_at) VALUES (1, $1, $2::text::jsonb, md5(random()::text || clock_timestamp()::text), now()) \
                 ON CONFLICT (id) DO UPDATE SET generation = EXCLUDED.generation, manifest = EXCLUDED.manifest, stage = EXCLUDED.stage, staged_at = now() RETURNING stage",
                &[&generation, &manifest],
            )
            .map_err(&e)?
            .get(0);
        tx.execute("SELECT pg_notify($1, $2)", &[&STAGED_CHANNEL, &generation.to_string()]).map_err(&e)?;
        tx.commit().map_err(&e)?;
        tracing::info!(generation, files = files.len(), "switch staged for the other replicas");
        self.staged = Some(Staged { stage, manifest, files });
        Ok(())
    }

    /// Commits the data directory `dir`'s manifest `next` as the new generation: the version
    /// files the database lacks (but those [`PgWrite::stage`] wrote), the manifest (naming the
    /// stage if `next` is the manifest staged), the layer tables of `city` (its layers whose
    /// current version changed), the removal of every version file `next` does not list (the
    /// versions retention let go, the orphans of a write that staged and never committed), and
    /// the notification, in one transaction. Returns the new generation.
    pub fn commit(mut self, dir: &Path, next: &Manifest, city: &City) -> Result<i64, StoreError> {
        let e = pg_error(&self.shown);
        let shown = self.shown.clone();
        let before = self.manifest.take().unwrap_or_default();
        let staged = self.staged.take();
        let manifest = serde_json::to_string(next).map_err(|err| StoreError::Postgres { store: shown.clone(), message: err.to_string() })?;
        let client = &mut self.client;
        let mut listed = Vec::new();
        for (name, history) in &next.datasets {
            for info in &history.versions {
                listed.push(info.file.clone());
                if before.lists_file(&info.file) || staged.as_ref().is_some_and(|s| s.files.contains(&info.file)) {
                    continue;
                }
                let chunks = put_file(client, &shown, dir, &info.file)?;
                tracing::debug!(dataset = %name, version = info.version, chunks, "version stored in the database");
            }
        }
        client.execute("DELETE FROM citygrid_files WHERE NOT (file = ANY($1))", &[&listed]).map_err(&e)?;
        client.execute("DELETE FROM citygrid_staged", &[]).map_err(&e)?;
        let stage = staged.filter(|s| s.manifest == manifest).map(|s| s.stage);
        for layer in ["grids", "components", "zones"] {
            let old = before.current(layer).map(|v| v.version);
            let new = next.current(layer).map(|v| v.version);
            if old != new || self.generation == 0 {
                materialize(client, &shown, layer, new, city)?;
            }
        }
        let generation = self.generation + 1;
        client
            .execute(
                "INSERT INTO citygrid_manifest (id, generation, manifest, committed_at, stage) VALUES (1, $1, $2::text::jsonb, now(), $3) \
                 ON CONFLICT (id) DO UPDATE SET generation = EXCLUDED.generation, manifest = EXCLUDED.manifest, committed_at = now(), stage = EXCLUDED.stage",
                &[&generation, &manifest, &stage],
            )
            .map_err(&e)?;
        client.execute("SELECT pg_notify($1, $2)", &[&SWITCH_CHANNEL, &generation.to_string()]).map_err(&e)?;
        client.batch_execute("COMMIT").map_err(&e)?;
        self.open = false;
        Ok(generation)
    }
}

impl Drop for PgWrite {
    fn drop(&mut self) {
        if self.open {
            let _ = self.client.batch_execute("ROLLBACK");
        }
    }
}

fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Replaces the PostGIS table `layer` with `city`'s features of it (tagged `version`), or
/// empties it (`None`: the layer has no current version).
fn materialize(client: &mut Client, shown: &str, layer: &str, version: Option<u64>, city: &City) -> Result<(), StoreError> {
    let e = pg_error(shown);
    client.batch_execute(&format!("TRUNCATE {layer}")).map_err(&e)?;
    let Some(version) = version else { return Ok(()) };
    let version = version.to_string();
    let columns = match layer {
        "grids" => "code, name, level, parent, unit, valid_from, valid_to, version, geom",
        "components" => "code, class, name, status, grid, version, geom",
        _ => "layer, id, name, unit, version, geom",
    };
    let mut writer = client.copy_in(&format!("COPY {layer} ({columns}) FROM STDIN")).map_err(&e)?;
    let io = |err: std::io::Error| StoreError::Postgres { store: shown.to_owned(), message: format!("writing the {layer} table: {err}") };
    let mut line = String::new();
    let unit = |u: Option<crate::model::UnitId>| u.map(|u| city.units.get(u).name.clone());
    match layer {
        "grids" => {
            for g in &city.grids {
                line.clear();
                let parent = g.parent.map(|p| city.grid(p).code.to_string());
                let fields = [
                    Some(g.code.to_string()),
                    Some(g.name.clone()),
                    Some(g.level.to_string()),
                    parent,
                    unit(g.unit),
                    g.valid_from.map(|d| d.to_string()),
                    g.valid_to.map(|d| d.to_string()),
                    Some(version.clone()),
                ];
                push_row(&mut line, &fields, &multipolygon_ewkt(&g.geometry));
                writer.write_all(line.as_bytes()).map_err(io)?;
            }
        }
        "components" => {
            let mut out = std::io::BufWriter::with_capacity(1 << 20, &mut writer);
            for c in &city.components {
                line.clear();
                let grid = c.grid.map(|g| city.grid(g).code.to_string());
                let fields = [
                    Some(c.code.to_string()),
                    Some(c.class.to_string()),
                    Some(city.names.get(c.name).to_owned()),
                    Some(c.status.to_string()),
                    grid,
                    Some(version.clone()),
                ];
                push_row(&mut line, &fields, &format!("SRID=4326;POINT({} {})", c.location.x, c.location.y));
                out.write_all(line.as_bytes()).map_err(io)?;
            }
            out.flush().map_err(io)?;
        }
        _ => {
            for z in &city.zones {
                line.clear();
                let fields = [Some(z.layer.clone()), Some(z.id.clone()), Some(z.name.clone()), unit(z.unit), Some(version.clone())];
                push_row(&mut line, &fields, &multipolygon_ewkt(&z.geometry));
                writer.write_all(line.as_bytes()).map_err(io)?;
            }
        }
    }
    writer.finish().map_err(&e)?;
    Ok(())
}

/// One row of COPY's text format: `fields` (NULL for `None`) then the geometry.
fn push_row(line: &mut String, fields: &[Option<String>], geometry: &str) {
    for f in fields {
        match f {
            None => line.push_str("\\N"),
            Some(text) => {
                for ch in text.chars() {
                    match ch {
                        '\\' => line.push_str("\\\\"),
                        '\t' => line.push_str("\\t"),
                        '\n' => line.push_str("\\n"),
                        '\r' => line.push_str("\\r"),
                        c => line.push(c),
                    }
                }
            }
        }
        line.push('\t');
    }
    line.push_str(geometry);
    line.push('\n');
}

/// `SRID=4326;MULTIPOLYGON(…)` of a multipolygon (an empty one: `MULTIPOLYGON EMPTY`).
fn multipolygon_ewkt(mp: &geo_types::MultiPolygon<f64>) -> String {
    use std::fmt::Write as _;
    if mp.0.is_empty() {
        return "SRID=4326;MULTIPOLYGON EMPTY".into();
    }
    let mut s = String::from("SRID=4326;MULTIPOLYGON(");
    for (i, polygon) in mp.0.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push('(');
        for (j, ring) in std::iter::once(polygon.exterior()).chain(polygon.interiors()).enumerate() {
            if j > 0 {
                s.push(',');
            }
            s.push('(');
            for (k, c) in ring.0.iter().enumerate() {
                if k > 0 {
                    s.push(',');
                }
                let _ = write!(s, "{} {}", c.x, c.y);
            }
            s.push(')');
        }
        s.push(')');
    }
    s.push(')');
    s
}

/// Copies the data directory `dir` (every kept version of every dataset, the manifest, the
/// city settings, the unversioned files, the audit log with its ids) into `store`, which must
/// be empty, in one transaction; the current layers become its PostGIS tables. The copied
/// decisions keep their ids and order; the statistics of the store then count them all
/// (decisions the directory's retention deleted are no longer rows, and are not copied).
pub fn copy_dir_to_store(dir: &Path, store: &PgStore) -> Result<Copied, StoreError> {
    let local = super::Store::open(dir)?;
    if local.is_empty() {
        return Err(StoreError::Empty(dir.to_owned()));
    }
    let loaded = local.load_city(&|_, _| {})?;
    let mut write = store.begin_write()?;
    if !write.is_empty() {
        return Err(StoreError::Postgres {
            store: store.shown.clone(),
            message: format!("holds a city already (generation {}): copy into an empty database", write.generation()),
        });
    }
    write.put_unversioned(&local.unversioned_files()?)?;
    let decisions = if super::audit::AuditLog::exists_in(dir) { write.copy_audit(&super::audit::AuditLog::open(dir)?)? } else { 0 };
    let generation = write.commit(dir, local.manifest(), &loaded.city)?;
    Ok(Copied { generation, decisions })
}

/// What `citygrid store copy` copied besides the versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Copied {
    /// The store's generation copied (from a store) or created (into one: 1).
    pub generation: i64,
    /// Decisions of the audit log copied.
    pub decisions: u64,
}

/// Copies `store` (every kept version, the manifest, the city settings, the unversioned
/// files, the audit log with its ids and its day and month counts) into the data directory
/// `dir`, which must hold no city and no decision yet (it is created if missing).
pub fn copy_store_to_dir(store: &PgStore, dir: &Path) -> Result<Copied, StoreError> {
    let mut local = super::Store::open_writer(dir, "citygrid store copy")?;
    if !local.is_empty() {
        return Err(StoreError::Invalid(format!("{} holds a city already: copy into an empty data directory", dir.display())));
    }
    let log = super::audit::AuditLog::open(dir)?;
    if !log.is_empty()? {
        return Err(StoreError::Invalid(format!("{} holds audit decisions already: copy into an empty data directory", dir.display())));
    }
    let mut client = store.client()?;
    let generation = store.pull(dir)?;
    local.resync()?;
    if local.is_empty() {
        return Err(StoreError::Postgres { store: store.shown.clone(), message: "holds no city yet: nothing to copy".into() });
    }
    let decisions = super::pg_audit::export(&mut client, &store.shown, &mut |batch| log.import(batch))?;
    Ok(Copied { generation, decisions })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_password() {
        assert_eq!(redact("postgres://citygrid:secret@db:5432/city"), "postgres://citygrid@db:5432/city");
        assert_eq!(redact("postgres://db/city"), "postgres://db/city");
    }

    #[test]
    fn copy_rows_escape_text_and_write_nulls() {
        let mut line = String::new();
        push_row(&mut line, &[Some("a\tb\\c\nd".into()), None], "SRID=4326;POINT(1 2)");
        assert_eq!(line, "a\\tb\\\\c\\nd\t\\N\tSRID=4326;POINT(1 2)\n");
    }

    #[test]
    fn multipolygons_as_ewkt() {
        let mp =
            geo_types::MultiPolygon(vec![geo_types::Polygon::new(geo_types::LineString::from(vec![(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 0.0)]), vec![])]);
        assert_eq!(multipolygon_ewkt(&mp), "SRID=4326;MULTIPOLYGON(((0 0,1 0,1 1,0 0)))");
    }
}
