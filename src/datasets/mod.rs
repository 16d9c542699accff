//! Changing what is served: the versioned datasets of the data directory (`grids`,
//! `components`, `units`, `rules`) and the switch of the running server to another version.
//!
//! One change at a time (a mutex around the [`Store`]; an import reads and checks its upload
//! before taking it, under a lock of its own). A change commits the new current
//! version in the store, builds the new [`World`] from it off the request path, and swaps it
//! in with one pointer store: requests in flight finish on the old snapshot, later ones see
//! the new one, none sees a mix. If the new snapshot cannot be built, the store is set back to
//! the versions that were current, and the old snapshot stays served.

pub mod package;
pub mod text;

use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Serialize;

use crate::index::GridIndex;
use crate::ingest::report::Policy;
use crate::ingest::{FeatureSink, ImportOptions, IngestError, Report, SourceLayer};
use crate::model::City;
use crate::store::{Dataset, NewVersion, Store, StoreError, VersionInfo, Versions};
use crate::tiles::TileConfig;
use crate::world::{Reuse, World, WorldHandle};
pub use package::{CheckedPackage, Package, PackageOptions, PackageReport, check_package, write_package};
pub use text::{TextChecked, check_text, rules_shrink_problem};

/// Why a change was refused. Nothing changed when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("no dataset {0:?}: the datasets are grids, components, zones, units, rules, calendar, city, staff")]
    UnknownDataset(String),
    #[error("{dataset} refused: {message}; nothing changed")]
    Rejected { dataset: Dataset, message: String },
    #[error("city package: {0}")]
    Package(String),
    #[error("city package refused: {}; nothing changed", .0.rejection.as_deref().unwrap_or("see the report"))]
    PackageRejected(Box<PackageReport>),
    #[error("{dataset} has no version {version} (kept: {})", kept.iter().map(u64::to_string).collect::<Vec<_>>().join(", "))]
    UnknownVersion { dataset: String, version: u64, kept: Vec<u64> },
    #[error("version {version} of {dataset} cannot be served: {message}; version {previous} stays current")]
    Unloadable { dataset: String, version: u64, previous: u64, message: String },
    #[error("the served versions changed while the upload was checked (a rollback or a new responsibility list); send it again")]
    ChangedMeanwhile { checked: Versions, now: Versions },
    #[error("the data directory: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

/// A dataset's history as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct DatasetHistory {
    pub name: &'static str,
    pub current: Option<u64>,
    /// Oldest first.
    pub versions: Vec<VersionView>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct VersionView {
    #[serde(flatten)]
    pub info: VersionInfo,
    pub current: bool,
}

/// What a switch did.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Switched {
    pub dataset: &'static str,
    pub previous: u64,
    pub current: u64,
    /// Every dataset's version now served.
    pub versions: Versions,
}

/// The data directory behind a running server, and the handle it serves from.
pub struct Datasets {
    /// The data directory (also where uploads are spooled).
    dir: std::path::PathBuf,
    store: Mutex<Store>,
    /// Held for a whole import (reading, checking, saving, switching): one at a time.
    importing: Mutex<()>,
    world: WorldHandle,
    tiles: TileConfig,
    /// The PostgreSQL store this directory is the local copy of (`None`: the directory is the
    /// store itself).
    shared: Option<std::sync::Arc<crate::store::pg::PgStore>>,
    /// The store's generation the served snapshot was built from (0 without a shared store).
    served: std::sync::atomic::AtomicI64,
    /// The last generation another replica committed that this one took in, served or not
    /// (one that cannot be served here is not tried again).
    pulled: std::sync::atomic::AtomicI64,
    /// The unversioned files ([`Store::unversioned_files`]) the served snapshot was built
    /// with: while they stay the same, a switch of the responsibility list or the calendar
    /// alone reuses the served layers ([`World::with_routing`]).
    unversioned: Mutex<Vec<(&'static str, Vec<u8>)>>,
    /// The snapshot of a staged switch, built ahead of its commit and not served
    /// ([`Datasets::build_ahead`]).
    candidate: Mutex<Option<Candidate>>,
    /// Switches taken in by swapping a snapshot built ahead (`citygrid_switch_prebuilt_total`).
    prebuilt: std::sync::atomic::AtomicU64,
    /// Set while this replica stages and commits a write of its own: the staged notice it
    /// hears then is its own, not one to build ahead.
    writing: std::sync::atomic::AtomicBool,
}

/// A staged switch's snapshot, built ahead of its commit ([`Datasets::build_ahead`]).
struct Candidate {
    staged: crate::store::pg::StagedPull,
    world: World,
    /// The unversioned files it was built with.
    unversioned: Vec<(&'static str, Vec<u8>)>,
}

/// A snapshot built by [`Datasets::build`], not yet served.
struct Built {
    world: World,
    unversioned: Vec<(&'static str, Vec<u8>)>,
    routing_only: bool,
    read: std::time::Duration,
    built: std::time::Duration,
}

/// What the snapshot of the store's current versions may share with `current` (built from
/// the unversioned files `served_files`): with the same hierarchy and the same unversioned
/// files (class tables), the parts of each layer whose version is the one `current` serves.
/// The units, the settings' name, centre and CRS, the rules and the calendar enter no index
/// or tile: their switch alone shares every one.
fn reusable(current: &World, store: &Store, files: &[(&'static str, Vec<u8>)], served_files: &[(&'static str, Vec<u8>)]) -> Reuse {
    let same_ground = store.city_meta().is_some_and(|m| m.hierarchy == current.meta.hierarchy) && files == served_files;
    let (now, then) = (store.versions(), &current.versions);
    let same = |name: &str| same_ground && now.get(name) == then.get(name);
    Reuse { grids: same("grids"), components: same("components"), zones: same("zones") }
}

/// Whether `before` and `after` differ in no dataset but the responsibility list and the
/// working calendar.
fn only_routing_differs(before: &Versions, after: &Versions) -> bool {
    before.0.keys().chain(after.0.keys()).all(|name| matches!(name.as_str(), "rules" | "calendar") || before.get(name) == after.get(name))
}

impl Datasets {
    pub fn new(store: Store, world: WorldHandle, tiles: TileConfig) -> Datasets {
        // The snapshot served was loaded from this store just before.
        let unversioned = Mutex::new(store.unversioned_files().unwrap_or_default());
        Datasets {
            dir: store.dir().to_owned(),
            store: Mutex::new(store),
            importing: Mutex::new(()),
            world,
            tiles,
            shared: None,
            served: 0.into(),
            pulled: 0.into(),
            unversioned,
            candidate: Mutex::new(None),
            prebuilt: 0.into(),
            writing: false.into(),
        }
    }

    /// The same datasets, with `store` as the system of record and this directory its local
    /// copy, which serves generation `generation` now: every change takes the store's writer
    /// lock, brings the local copy up to date, and commits to the store in the same switch
    /// ([`crate::store::pg`]); [`Datasets::follow`] takes in the other replicas' switches.
    pub fn with_shared(mut self, store: std::sync::Arc<crate::store::pg::PgStore>, generation: i64) -> Datasets {
        self.shared = Some(store);
        self.served = generation.into();
        self.pulled = generation.into();
        self
    }

    /// The shared store's generation the served snapshot comes from (0: none).
    pub fn served_generation(&self) -> i64 {
        self.served.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The kind of store behind the served city: `postgres` (a store shared by replicas,
    /// this directory its working copy) or `dir` (this data directory).
    pub fn store_kind(&self) -> &'static str {
        if self.shared.is_some() { "postgres" } else { "dir" }
    }

    /// How many switches were taken in by swapping a snapshot built ahead of their commit
    /// ([`Datasets::build_ahead`]).
    pub fn prebuilt_switches(&self) -> u64 {
        self.prebuilt.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Builds ahead the switch another replica staged ([`crate::store::pg::PgWrite::stage`]):
    /// copies the version files it adds into the local directory (listed by no manifest of
    /// it) and builds its snapshot, as [`Datasets::follow`] would, but serves nothing: the
    /// snapshot is kept as the candidate that [`Datasets::follow`] swaps in at once if the
    /// commit names this very stage. True if a candidate was built.
    pub fn build_ahead(&self, conn: &mut crate::store::pg::Follower<'_>) -> Result<bool, DatasetError> {
        let Some(shared) = &self.shared else { return Ok(false) };
        if self.writing.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(false);
        }
        let started = std::time::Instant::now();
        // A candidate of an older stage is of no use any more.
        *self.candidate.lock().unwrap_or_else(PoisonError::into_inner) = None;
        let view = {
            let store = self.store();
            let Some(staged) = conn.pull_staged(&self.dir, store.manifest())? else { return Ok(false) };
            if staged.generation <= self.pulled.load(std::sync::atomic::Ordering::SeqCst) {
                return Ok(false);
            }
            (store.candidate(staged.manifest.clone()), staged)
        };
        let (view, staged) = view;
        let pull_ms = started.elapsed().as_millis() as u64;
        let built = self.build(&view).map_err(|message| {
            DatasetError::Store(StoreError::Postgres {
                store: shared.shown().to_owned(),
                message: format!("the staged generation {} cannot be built here: {message}", staged.generation),
            })
        })?;
        tracing::info!(
            generation = staged.generation,
            pull_ms,
            read_ms = built.read.as_millis() as u64,
            build_ms = (built.built - built.read).as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "built the staged switch ahead of its commit"
        );
        *self.candidate.lock().unwrap_or_else(PoisonError::into_inner) = Some(Candidate { staged, world: built.world, unversioned: built.unversioned });
        Ok(true)
    }

    /// Takes in a switch another replica committed to the shared store: if the store's
    /// generation is not the one served, copies it into the local directory, and serves its
    /// snapshot (one swap, never a mix): the candidate built ahead if the commit names its
    /// stage and its manifest is the one committed, else one built now. True if it switched.
    /// Without a shared store, nothing to follow.
    pub fn follow(&self, conn: &mut crate::store::pg::Follower<'_>) -> Result<bool, DatasetError> {
        let Some(shared) = &self.shared else { return Ok(false) };
        let pulled = || self.pulled.load(std::sync::atomic::Ordering::SeqCst);
        let committed = conn.generation()?;
        if committed == pulled() {
            let mut candidate = self.candidate.lock().unwrap_or_else(PoisonError::into_inner);
            if candidate.as_ref().is_some_and(|c| c.staged.generation <= committed) {
                // Its generation was committed as something else, or by this replica.
                *candidate = None;
            }
            return Ok(false);
        }
        let mut store = self.store();
        let started = std::time::Instant::now();
        let candidate = self.candidate.lock().unwrap_or_else(PoisonError::into_inner).take();
        let ahead = candidate.as_ref().map(|c| (c.staged.stage.as_str(), c.staged.written.as_slice()));
        let got = conn.pull(&self.dir, ahead)?;
        let generation = got.generation;
        if generation == pulled() {
            return Ok(false);
        }
        store.resync()?;
        let pulled = started.elapsed();
        if let Some(c) = candidate
            && c.staged.generation == generation
            && got.stage.as_deref() == Some(c.staged.stage.as_str())
            && *store.manifest() == c.staged.manifest
            && store.unversioned_files()? == c.unversioned
        {
            self.swap(c.world, c.unversioned, Some(generation));
            self.prebuilt.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tracing::info!(
                generation,
                pull_ms = pulled.as_millis() as u64,
                total_ms = started.elapsed().as_millis() as u64,
                "followed the shared store's switch with the snapshot built ahead"
            );
            return Ok(true);
        }
        if store.is_empty() {
            self.served.store(generation, std::sync::atomic::Ordering::SeqCst);
            self.pulled.store(generation, std::sync::atomic::Ordering::SeqCst);
            return Ok(false);
        }
        self.reload_followed(&store, generation).map_err(|message| {
            DatasetError::Store(StoreError::Postgres {
                store: shared.shown().to_owned(),
                message: format!("generation {generation} cannot be served here: {message}"),
            })
        })?;
        tracing::info!(generation, pull_ms = pulled.as_millis() as u64, total_ms = started.elapsed().as_millis() as u64, "followed the shared store's switch");
        Ok(true)
    }

    /// With a shared store: takes its writer lock (waiting for another replica's write to end)
    /// and brings the local directory to what it committed.
    fn begin_shared(&self, store: &mut Store) -> Result<Option<crate::store::pg::PgWrite>, DatasetError> {
        let Some(shared) = &self.shared else { return Ok(None) };
        let mut write = shared.begin_write()?;
        write.pull(&self.dir)?;
        store.resync()?;
        Ok(Some(write))
    }

    /// The data directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The store, locked. A panic while it was held (a reader's bug) does not disable it: the
    /// store's state is its files and manifest, which are only ever replaced whole.
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn name(dataset: &str) -> Result<&'static str, DatasetError> {
        Dataset::parse(dataset).map(Dataset::name).ok_or_else(|| DatasetError::UnknownDataset(dataset.to_owned()))
    }

    /// Every dataset's history.
    pub fn list(&self) -> Vec<DatasetHistory> {
        let store = self.store();
        Dataset::ALL.iter().map(|d| history(&store, d.name())).collect()
    }

    /// One dataset's history.
    pub fn history(&self, dataset: &str) -> Result<DatasetHistory, DatasetError> {
        let name = Self::name(dataset)?;
        Ok(history(&self.store(), name))
    }

    /// The stored file of a kept version of `dataset` (`None`: the current one), opened, with
    /// what the manifest says of it. Versions are never rewritten, so the file stays whole
    /// while it is read, whatever is switched meanwhile.
    pub fn version_file(&self, dataset: &str, version: Option<u64>) -> Result<(VersionInfo, std::fs::File), DatasetError> {
        let name = Self::name(dataset)?;
        let store = self.store();
        let kept = || store.dataset(name).map(|d| d.versions.iter().map(|v| v.version).collect()).unwrap_or_default();
        let Some(d) = store.dataset(name) else {
            return Err(DatasetError::UnknownVersion { dataset: name.to_owned(), version: version.unwrap_or(0), kept: Vec::new() });
        };
        let wanted = version.unwrap_or(d.current);
        let info = d.versions.iter().find(|v| v.version == wanted).cloned();
        let info = info.ok_or_else(|| DatasetError::UnknownVersion { dataset: name.to_owned(), version: wanted, kept: kept() })?;
        let file = std::fs::File::open(store.dir().join(&info.file)).map_err(|e| StoreError::Io { path: store.dir().join(&info.file), source: e })?;
        Ok((info, file))
    }

    /// Makes a kept version of `dataset` current and serves it; the version already current is
    /// left as it is (no rebuild). Blocks while the new snapshot is built (seconds for a large
    /// city): call it off the async workers.
    pub fn rollback(&self, dataset: &str, version: u64) -> Result<Switched, DatasetError> {
        let name = Self::name(dataset)?;
        let mut store = self.store();
        let shared = self.begin_shared(&mut store)?;
        let previous = store.versions().get(name).unwrap_or(0);
        if version == previous && version != 0 {
            // Already served: nothing to commit or rebuild (a rebuild takes seconds on a big city).
            return Ok(Switched { dataset: name, previous, current: version, versions: store.versions() });
        }
        store.set_current(name, version).map_err(|e| match e {
            StoreError::UnknownVersion { dataset, version, known } => DatasetError::UnknownVersion { dataset, version, kept: known },
            e => DatasetError::Store(e),
        })?;
        if let Err(message) = self.reload(&store, name == "rules", shared) {
            // Put back what was current; the old snapshot was never replaced.
            store.set_current(name, previous)?;
            return Err(DatasetError::Unloadable { dataset: name.to_owned(), version, previous, message });
        }
        Ok(Switched { dataset: name, previous, current: version, versions: store.versions() })
    }

    /// Saves `csv` as the next version of the responsibility list and serves it. The caller
    /// has validated it; it is validated again against the layers it will be served with, and
    /// refused (nothing changes) if it does not route there.
    pub fn save_rules(&self, csv: &str, rules: u64, source: &str) -> Result<Switched, DatasetError> {
        let mut store = self.store();
        let shared = self.begin_shared(&mut store)?;
        let previous = store.versions().get("rules").unwrap_or(0);
        let version = store.save_rules(csv, rules, source)?;
        if let Err(message) = self.reload(&store, true, shared) {
            store.set_current("rules", previous)?;
            return Err(DatasetError::Unloadable { dataset: "rules".into(), version, previous, message });
        }
        Ok(Switched { dataset: "rules", previous, current: version, versions: store.versions() })
    }

    /// Validates the upload that `read` streams as the new `options.layer` against what is
    /// served now and — unless `dry_run` or rejected — saves it as that layer's next version
    /// (with a new unit register if it brings new units), serves it, and says so in
    /// `Imported::switched`. All or nothing, like [`Datasets::rollback`]: if the new snapshot
    /// cannot be built, the previous versions are made current again and stay served. Blocks
    /// (reading, validation, writing, the new snapshot): call it off the async workers.
    pub fn import(
        &self,
        read: impl FnOnce(&mut dyn FeatureSink) -> Result<SourceLayer, IngestError>,
        options: &ImportOptions,
        dry_run: bool,
        origin: &str,
    ) -> Result<Imported, DatasetError> {
        // One import at a time. The store is locked only to save and switch: listings,
        // downloads and rollbacks are not held up while an upload is read and checked.
        let _one_import = self.importing.lock().unwrap_or_else(PoisonError::into_inner);
        let world = self.world.load();
        let mut options = options.clone();
        if options.default_crs.is_none() {
            options.default_crs = world.meta.crs.clone();
        }
        let options = &options;
        let prepared = check_upload(Current::of(&world), read, options)?;
        let checked_against = world.versions.clone();
        drop(world);
        let report = prepared.report;
        let (Some(city), false) = (prepared.city, dry_run) else { return Ok(Imported { report, switched: None }) };
        let mut store = self.store();
        let shared = self.begin_shared(&mut store)?;
        if store.versions() != checked_against {
            // A rollback or a new responsibility list meanwhile: the upload was checked
            // against layers no longer served.
            return Err(DatasetError::ChangedMeanwhile { checked: checked_against, now: store.versions() });
        }
        if store.is_empty() {
            // A server started on an empty directory: its first layer creates the city.
            let meta = self.world.load().meta.clone();
            store.init(&meta, origin)?;
        }
        let saved = save_upload(&mut store, &city, prepared.units_changed, options, origin)?;
        drop(city);
        if let Err(message) = self.reload(&store, false, shared) {
            return Err(saved.restore(&mut store, message));
        }
        Ok(Imported { report, switched: Some(saved.switched(&store)) })
    }

    /// Checks `text` as the next version of the text dataset `dataset` (units, rules, calendar,
    /// city settings) against what is served, and — unless `dry_run` — stores and serves it.
    /// Refused ([`DatasetError::Rejected`]): nothing changes. Blocks: call it off the async workers.
    pub fn import_text(&self, dataset: Dataset, text: &str, allow_shrink: bool, dry_run: bool, origin: &str) -> Result<TextImported, DatasetError> {
        let _one_import = self.importing.lock().unwrap_or_else(PoisonError::into_inner);
        let world = self.world.load();
        let checked = check_text(dataset, text, &world.city, Some(&world.meta), world.rules_csv.as_deref(), allow_shrink)
            .map_err(|message| DatasetError::Rejected { dataset, message })?;
        let checked_against = world.versions.clone();
        drop(world);
        if dry_run {
            return Ok(TextImported { checked, switched: None });
        }
        let mut store = self.store();
        let shared = self.begin_shared(&mut store)?;
        if shared.is_some() && store.versions() != checked_against {
            // Another replica switched meanwhile: checked against what it no longer serves.
            return Err(DatasetError::ChangedMeanwhile { checked: checked_against, now: store.versions() });
        }
        let before = store.versions();
        let meta = checked.meta.clone().or_else(|| store.is_empty().then(|| self.world.load().meta.clone()));
        store.save_versions(vec![NewVersion::text(dataset, checked.rows, text)], meta.as_ref(), origin, None)?;
        if let Err(message) = self.reload(&store, dataset == Dataset::Rules, shared) {
            store.restore(&before)?;
            let version = store.dataset(dataset.name()).map_or(0, |d| d.latest());
            return Err(DatasetError::Unloadable { dataset: dataset.name().into(), version, previous: before.get(dataset.name()).unwrap_or(0), message });
        }
        let switched = Switched {
            dataset: dataset.name(),
            previous: before.get(dataset.name()).unwrap_or(0),
            current: store.versions().get(dataset.name()).unwrap_or(0),
            versions: store.versions(),
        };
        Ok(TextImported { checked, switched: Some(switched) })
    }

    /// Checks the city package against what is served and — unless `dry_run` — stores all of
    /// its datasets as their next versions and serves them, in one switch. Blocks: call it off
    /// the async workers.
    pub fn import_package(&self, package: &Package, options: &PackageOptions, dry_run: bool, origin: &str) -> Result<PackageImported, DatasetError> {
        let _one_import = self.importing.lock().unwrap_or_else(PoisonError::into_inner);
        let world = self.world.load();
        let current = self.store().city_meta().is_some().then_some((&*world.city, &world.meta));
        let checked = check_package(package, current, world.rules_csv.as_deref(), options)?;
        let checked_against = world.versions.clone();
        drop(world);
        if dry_run {
            return Ok(PackageImported { report: checked.report, versions: None });
        }
        let mut store = self.store();
        let shared = self.begin_shared(&mut store)?;
        if store.versions() != checked_against {
            return Err(DatasetError::ChangedMeanwhile { checked: checked_against, now: store.versions() });
        }
        let before = store.versions();
        store.save_versions_clearing(checked.plan(&|_, _| {}), &checked.clear, Some(&checked.meta), origin)?;
        let CheckedPackage { report, city, .. } = checked;
        drop(city);
        if let Err(message) = self.reload(&store, false, shared) {
            store.restore(&before)?;
            return Err(DatasetError::Unloadable { dataset: "package".into(), version: 0, previous: 0, message });
        }
        Ok(PackageImported { report, versions: Some(store.versions()) })
    }

    /// Builds the snapshot of the store's current versions and swaps it in; with
    /// `need_rules`, only if its responsibility list is usable. If only the responsibility
    /// list or the calendar differ from the served snapshot's (same settings, same
    /// unversioned files), the new snapshot shares the served layers, indexes and tiles
    /// ([`World::with_routing`]) instead of reading and building them again. With `shared`, the write is
    /// committed to the shared store before the swap (its commit failing, nothing is served
    /// and the error is returned).
    fn reload(&self, store: &Store, need_rules: bool, shared: Option<crate::store::pg::PgWrite>) -> Result<(), String> {
        self.reload_as(store, need_rules, shared, None)
    }

    /// [`Datasets::reload`] of the shared store's generation `generation`, pulled into the
    /// local directory (another replica's switch).
    fn reload_followed(&self, store: &Store, generation: i64) -> Result<(), String> {
        let result = self.reload_as(store, false, None, Some(generation));
        // Taken in either way: a generation that cannot be served here is not tried again at
        // every poll (the next one is).
        self.pulled.store(generation, std::sync::atomic::Ordering::SeqCst);
        result
    }

    fn reload_as(&self, store: &Store, need_rules: bool, mut shared: Option<crate::store::pg::PgWrite>, followed: Option<i64>) -> Result<(), String> {
        let started = std::time::Instant::now();
        // A write of this replica's own: what it built ahead of another's is stale now.
        *self.candidate.lock().unwrap_or_else(PoisonError::into_inner) = None;
        /// Clears [`Datasets::writing`] however the write ends.
        struct Writing<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Writing<'_> {
            fn drop(&mut self) {
                self.0.store(false, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let _writing = shared.is_some().then(|| {
            self.writing.store(true, std::sync::atomic::Ordering::SeqCst);
            Writing(&self.writing)
        });
        if let Some(write) = &mut shared {
            // The other replicas build it while this one does.
            write.stage(&self.dir, store.manifest()).map_err(|e| format!("the shared store did not take the staged switch: {e}"))?;
        }
        let staged = started.elapsed();
        let Built { mut world, unversioned, routing_only, read, built } = self.build(store)?;
        let (read, built) = (read + staged, built + staged);
        if need_rules && let Err(problem) = &world.routing.rules {
            return Err(format!("its responsibility list does not route: {problem}"));
        }
        let mut generation = followed;
        if let Some(write) = shared {
            generation = Some(write.commit(&self.dir, store.manifest(), &world.city).map_err(|e| format!("the shared store did not take the switch: {e}"))?);
        }
        if let Some(generation) = generation {
            world.store_generation = generation;
        }
        tracing::info!(versions = ?world.versions, routing_only, "switching to a new snapshot");
        self.swap(world, unversioned, generation);
        tracing::info!(
            stage_ms = staged.as_millis() as u64,
            read_ms = read.as_millis() as u64,
            build_ms = (built - read).as_millis() as u64,
            commit_switch_ms = (started.elapsed() - built).as_millis() as u64,
            "snapshot switched"
        );
        Ok(())
    }

    /// Serves `world` (built with the unversioned files `unversioned`), of the shared store's
    /// generation `generation` if any: one pointer store.
    fn swap(&self, mut world: World, unversioned: Vec<(&'static str, Vec<u8>)>, generation: Option<i64>) {
        if let Some(generation) = generation {
            world.store_generation = generation;
            self.served.store(generation, std::sync::atomic::Ordering::SeqCst);
            self.pulled.store(generation, std::sync::atomic::Ordering::SeqCst);
        }
        self.world.replace(world);
        *self.unversioned.lock().unwrap_or_else(PoisonError::into_inner) = unversioned;
    }

    /// Builds the snapshot of `store`'s current versions, sharing with the one served what
    /// it can ([`reusable`], [`World::with_routing`]); serves nothing.
    fn build(&self, store: &Store) -> Result<Built, String> {
        let started = std::time::Instant::now();
        let unversioned = store.unversioned_files().map_err(|e| e.to_string())?;
        let current = self.world.load();
        let routing_only = store.city_meta() == Some(&current.meta)
            && *self.unversioned.lock().unwrap_or_else(PoisonError::into_inner) == unversioned
            && only_routing_differs(&current.versions, &store.versions());
        let (world, read) = if routing_only {
            // Same layers, settings and classes: share them, parse the new list or calendar only.
            let (rules_csv, calendar_toml) = store.routing_texts().map_err(|e| e.to_string())?;
            let read = started.elapsed();
            (current.with_routing(rules_csv, calendar_toml.as_deref(), store.versions()), read)
        } else {
            let reuse = reusable(&current, store, &unversioned, &self.unversioned.lock().unwrap_or_else(PoisonError::into_inner));
            // The components unchanged: taken from the served city, not read again.
            let loaded = store.load_city_reusing(reuse.components.then_some(&*current.city), &|_, _| {}).map_err(|e| e.to_string())?;
            let read = started.elapsed();
            let world = if current.tiles.config() == &self.tiles { current.rebuild(loaded, reuse) } else { World::with_tiles(loaded, self.tiles.clone()) };
            (world, read)
        };
        drop(current);
        let built = started.elapsed();
        Ok(Built { world, unversioned, routing_only, read, built })
    }
}

/// What an upload is checked against: the layers served now (or, offline, stored as current).
pub struct Current<'a> {
    pub city: &'a City,
    /// `city`'s unit grids.
    pub grids: &'a GridIndex,
    /// The responsibility list in force, if it routes: a new layer must not silently break it.
    pub working_rules: Option<&'a str>,
}

impl<'a> Current<'a> {
    pub fn of(world: &'a World) -> Current<'a> {
        let working_rules = world.rules_csv.as_deref().filter(|_| world.routing.rules.is_ok());
        Current { city: &world.city, grids: &world.grids, working_rules }
    }
}

/// An upload stored as its layer's current version, and what was current before.
struct Saved {
    dataset: &'static str,
    before: Versions,
    versions: Versions,
}

impl Saved {
    /// Makes the versions current before the upload current again, because the new one
    /// cannot be served (`message`); the error to return.
    fn restore(self, store: &mut Store, message: String) -> DatasetError {
        if let Err(e) = store.restore(&self.before) {
            return e.into();
        }
        let (version, previous) = (self.versions.get(self.dataset).unwrap_or(0), self.before.get(self.dataset).unwrap_or(0));
        DatasetError::Unloadable { dataset: self.dataset.to_owned(), version, previous, message }
    }

    fn switched(&self, store: &Store) -> Switched {
        Switched {
            dataset: self.dataset,
            previous: self.before.get(self.dataset).unwrap_or(0),
            current: self.versions.get(self.dataset).unwrap_or(0),
            versions: store.versions(),
        }
    }
}

/// Validates the upload `read` streams against `current`: the report, and the new city unless
/// it is rejected.
fn check_upload(
    current: Current<'_>,
    read: impl FnOnce(&mut dyn FeatureSink) -> Result<SourceLayer, IngestError>,
    options: &ImportOptions,
) -> Result<crate::ingest::Prepared, DatasetError> {
    let mut prepared = crate::ingest::prepare(read, options, current.city, current.grids)?;
    if let (Some(city), Some(csv)) = (&prepared.city, current.working_rules) {
        // A responsibility list that works now must not silently stop working.
        if let Some(why) = rules_problem(csv, current.city, city) {
            prepared.report.rules_problem = Some(why);
            if options.policy == Policy::Strict {
                prepared.report.accepted_layer = false;
                prepared.report.rejection = Some("strict: the current responsibility list would not validate against the new layer".into());
                prepared.city = None;
            }
        }
    }
    Ok(prepared)
}

/// Saves the checked city's `layer` as its next version (with its units if they changed), made
/// current in the store. The caller then serves it, or puts back what was current with
/// [`Saved::restore`].
fn save_upload(store: &mut Store, city: &City, units_changed: bool, options: &ImportOptions, origin: &str) -> Result<Saved, DatasetError> {
    let dataset = options.layer.dataset();
    let before = store.versions();
    let versions = store.save_layer(dataset, city, units_changed, origin, &|_, _| {})?;
    Ok(Saved { dataset: dataset.name(), before, versions })
}

/// Checks the upload `read` streams against the current city of `store` exactly as an import
/// would ([`import_offline`]: the city's CRS for a file that names none, the same
/// findings, the responsibility list in force checked against the new layer) and stores
/// nothing: what `citygrid validate` and `import --dry-run` report. Holds the current city and
/// its grid index only while checking. `progress` gets (done, total) while the city loads.
pub fn check_offline(
    store: &Store,
    read: impl FnOnce(&mut dyn FeatureSink) -> Result<SourceLayer, IngestError>,
    options: &ImportOptions,
    progress: &dyn Fn(u64, u64),
) -> Result<crate::ingest::Prepared, DatasetError> {
    let loaded = store.load_city(progress)?;
    let mut options = options.clone();
    if options.default_crs.is_none() {
        options.default_crs = loaded.meta.crs.clone();
    }
    let grids = GridIndex::build(&loaded.city);
    let working_rules = loaded.rules_csv.as_deref().filter(|csv| crate::routing::RuleSet::load(csv, &loaded.city).is_ok());
    check_upload(Current { city: &loaded.city, grids: &grids, working_rules }, read, &options)
}

/// [`Datasets::import`] for a data directory no server is running on (the command line): the
/// upload is checked against the stored current versions, and the new version, once saved, is
/// loaded back as a server would load it; if it cannot be, the previous versions are made
/// current again. Holds the current city only (no tiles or component index) while the new one
/// is built, and neither while the new one is loaded back. `progress` gets (done, total) while
/// the current city loads.
pub fn import_offline(
    store: &mut Store,
    read: impl FnOnce(&mut dyn FeatureSink) -> Result<SourceLayer, IngestError>,
    options: &ImportOptions,
    dry_run: bool,
    origin: &str,
    progress: &dyn Fn(u64, u64),
) -> Result<Imported, DatasetError> {
    let prepared = check_offline(store, read, options, progress)?;
    let report = prepared.report;
    let (Some(city), false) = (prepared.city, dry_run) else { return Ok(Imported { report, switched: None }) };
    let saved = save_upload(store, &city, prepared.units_changed, options, origin)?;
    drop(city);
    if let Err(e) = store.load_city(&|_, _| {}) {
        return Err(saved.restore(store, e.to_string()));
    }
    Ok(Imported { report, switched: Some(saved.switched(store)) })
}

/// What goes wrong for the responsibility list `csv`, in force over `old`, once `new` is
/// served: it would not validate (its first errors), or a rule's scope code now names another
/// place (same code, another grid name: the rule still validates but aims at the wrong area).
/// `None`: neither.
pub(crate) fn rules_problem(csv: &str, old: &City, new: &City) -> Option<String> {
    use crate::rules::{RuleSet, RulesError, Severity, renamed_scopes};
    let mut problems = Vec::new();
    match RuleSet::load(csv, new) {
        Ok(_) => {}
        Err(RulesError::InvalidRules(report)) => {
            let errors: Vec<&str> = report.issues.iter().filter(|i| i.severity == Severity::Error).map(|i| i.message.as_str()).take(3).collect();
            problems.push(format!("{} error(s), e.g. {}", report.errors, errors.join("; ")));
        }
        Err(e) => problems.push(e.to_string()),
    }
    if let Ok(renamed) = renamed_scopes(csv, old, new)
        && !renamed.is_empty()
    {
        let some: Vec<String> = renamed.iter().take(3).map(ToString::to_string).collect();
        problems.push(format!("scope_renamed: {} rule(s) name a grid code that now names another place, e.g. {}", renamed.len(), some.join("; ")));
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// A city with no layers, as a server serves a data directory that holds no city yet: named
/// by `meta`, else "unnamed city" with the default hierarchy (CJ/T 213). Its first import
/// creates it with these settings.
pub fn empty_city(meta: Option<crate::store::CityMeta>) -> crate::store::LoadedCity {
    let meta = meta.unwrap_or_else(|| crate::store::CityMeta::new("unnamed city", crate::model::Hierarchy::default()));
    let city =
        crate::model::CityBuilder::new(meta.hierarchy.clone(), crate::model::ClassTable::builtin_components(), crate::model::ClassTable::builtin_events())
            .finish()
            .expect("an empty city is valid");
    crate::store::LoadedCity { city, meta, versions: Versions::default(), rules_csv: None, calendar_toml: None }
}

/// What a text dataset import did.
#[derive(Clone, Debug, Serialize)]
pub struct TextImported {
    pub checked: TextChecked,
    /// `None`: a dry run.
    pub switched: Option<Switched>,
}

/// What a package import did.
#[derive(Clone, Debug, Serialize)]
pub struct PackageImported {
    pub report: PackageReport,
    /// Every dataset's version now served; `None`: a dry run.
    pub versions: Option<Versions>,
}

/// [`Datasets::import_text`] for a data directory no server runs on (the command line).
pub fn import_text_offline(
    store: &mut Store,
    dataset: Dataset,
    text: &str,
    allow_shrink: bool,
    dry_run: bool,
    origin: &str,
) -> Result<TextImported, DatasetError> {
    let loaded = store.load_city(&|_, _| {})?;
    let checked = check_text(dataset, text, &loaded.city, Some(&loaded.meta), loaded.rules_csv.as_deref(), allow_shrink)
        .map_err(|message| DatasetError::Rejected { dataset, message })?;
    drop(loaded);
    if dry_run {
        return Ok(TextImported { checked, switched: None });
    }
    let before = store.versions();
    store.save_versions(vec![NewVersion::text(dataset, checked.rows, text)], checked.meta.as_ref(), origin, None)?;
    if let Err(e) = store.load_city(&|_, _| {}) {
        store.restore(&before)?;
        return Err(DatasetError::Unloadable {
            dataset: dataset.name().into(),
            version: 0,
            previous: before.get(dataset.name()).unwrap_or(0),
            message: e.to_string(),
        });
    }
    let switched = Switched {
        dataset: dataset.name(),
        previous: before.get(dataset.name()).unwrap_or(0),
        current: store.versions().get(dataset.name()).unwrap_or(0),
        versions: store.versions(),
    };
    Ok(TextImported { checked, switched: Some(switched) })
}

/// [`Datasets::import_package`] for a data directory no server runs on (the command line),
/// also into an empty one.
pub fn import_package_offline(
    store: &mut Store,
    package: &Package,
    options: &PackageOptions,
    dry_run: bool,
    origin: &str,
    progress: &dyn Fn(u64, u64),
) -> Result<PackageImported, DatasetError> {
    let loaded = if store.is_empty() { None } else { Some(store.load_city(progress)?) };
    let checked = check_package(package, loaded.as_ref().map(|l| (&l.city, &l.meta)), loaded.as_ref().and_then(|l| l.rules_csv.as_deref()), options)?;
    drop(loaded);
    if dry_run {
        return Ok(PackageImported { report: checked.report, versions: None });
    }
    let before = store.versions();
    store.save_versions_clearing(checked.plan(progress), &checked.clear, Some(&checked.meta), origin)?;
    let CheckedPackage { report, city, .. } = checked;
    drop(city);
    if let Err(e) = store.load_city(&|_, _| {}) {
        store.restore(&before)?;
        return Err(DatasetError::Unloadable { dataset: "package".into(), version: 0, previous: 0, message: e.to_string() });
    }
    Ok(PackageImported { report, versions: Some(store.versions()) })
}

/// What an import did: the report, and the switch when the layer was stored and is served.
#[derive(Clone, Debug, Serialize)]
pub struct Imported {
    pub report: Report,
    /// `None`: a dry run, or rejected (see `report.rejection`).
    pub switched: Option<Switched>,
}

fn history(store: &Store, name: &'static str) -> DatasetHistory {
    match store.dataset(name) {
        None => DatasetHistory { name, current: None, versions: Vec::new() },
        Some(d) => DatasetHistory {
            name,
            current: (d.current != 0).then_some(d.current),
            versions: d.versions.iter().map(|v| VersionView { info: v.clone(), current: v.version == d.current }).collect(),
        },
    }
}
