//! The data directory: versioned layer files, a manifest, crash-safe writes.
//!
//! ```text
//! DIR/city.toml                       city name, centre [lon, lat], grid hierarchy
//! DIR/manifest.json                   every dataset's versions and which one is current
//! DIR/layers/grids/<v>.fgb            all grid levels, FlatGeobuf, EPSG:4326, packed R-tree
//! DIR/layers/components/<v>.fgb       components, FlatGeobuf points, EPSG:4326, packed R-tree
//! DIR/units/<v>.csv                   unit register: code,name,phone
//! DIR/layers/zones/<v>.fgb           responsibility polygons of every zone layer
//! DIR/rules/<v>.csv                   responsibility list (opaque here)
//! DIR/calendar/<v>.toml               the working calendar
//! DIR/city/<v>.toml                   the city settings (city.toml is a copy of the current one)
//! DIR/writer.lock                     who writes here (one writer per data directory)
//! DIR/component_classes.csv           optional local classes, merged over the built-in table
//! DIR/event_classes.csv               likewise for events
//! ```
//!
//! Every file is written as temp file → fsync → rename → fsync of the directory, and versions
//! are never overwritten. The manifest, written the same way after the data files, is the single
//! commit point: after a crash at any moment, the manifest on disk names complete files only.
//! [`Store::open`] removes temp files and version files no manifest committed.
//!
//! `city.toml` is not versioned. A save stages `city.toml.tmp` before the manifest switch and
//! renames it after; the manifest also records the city settings, so [`Store::open`] knows
//! whether a leftover `city.toml.tmp` belongs to a committed save (it finishes the rename) or
//! not (it removes it).

mod atomic;
pub mod audit;
mod dataset;
pub(crate) mod fgb;
mod layers;
mod lock;
mod manifest;
pub mod pg;
pub mod pg_audit;
mod retention;
mod versions;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::{City, CityBuilder, ClassTable, Hierarchy, ModelError, Unit, UnitTable};
pub use dataset::Dataset;
pub use lock::{LOCK_FILE, WriterLock};
pub use manifest::{FORMAT, History, Manifest, VersionInfo};
pub use retention::{DEFAULT_KEEP_DAYS, DEFAULT_KEEP_VERSIONS, Pruned, Retention};

const MANIFEST: &str = "manifest.json";
const CITY_TOML: &str = "city.toml";
/// Before calendars were a dataset: a city's own calendar at the top of the data directory,
/// still read when the calendar dataset has no version.
const LEGACY_CALENDAR_TOML: &str = "calendar.toml";
const CLASS_FILES: [&str; 2] = ["component_classes.csv", "event_classes.csv"];
/// The files of a data directory outside its versioned datasets that shape the served city:
/// the local class tables and a legacy working calendar. A PostgreSQL store holds them too
/// ([`pg`]).
pub const UNVERSIONED_FILES: [&str; 3] = [CLASS_FILES[0], CLASS_FILES[1], LEGACY_CALENDAR_TOML];

/// Everything that can go wrong with a data directory. Messages name the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: writing failed: {message}")]
    Write { path: PathBuf, message: String },
    #[error("{path}: not a valid manifest: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("{path}: not valid city settings: {message}")]
    CityToml { path: PathBuf, message: String },
    #[error("{path}: not a readable FlatGeobuf layer: {message}")]
    Layer { path: PathBuf, message: String },
    #[error("{path}, feature {feature}: {source}")]
    Feature { path: PathBuf, feature: u64, source: ModelError },
    #[error("{path}: {source}")]
    Model { path: PathBuf, source: ModelError },
    #[error("{path}: not a valid unit register: {message}")]
    Units { path: PathBuf, message: String },
    #[error(
        "data directory {0} holds no city yet: create one with `citygrid init --data {0} --name NAME`, import a city package with `citygrid import PACKAGE --data {0}`, or generate the demo city with `citygrid demo --out {0}`"
    )]
    Empty(PathBuf),
    #[error("data directory {} is being written by {holder}: stop it, or send the change to that server (PUT /v1/layers/…); one writer per data directory", dir.display())]
    Locked { dir: PathBuf, holder: String },
    #[error("cannot save: {0}")]
    Invalid(String),
    #[error("{dataset} has no version {version} (kept: {})", known.iter().map(u64::to_string).collect::<Vec<_>>().join(", "))]
    UnknownVersion { dataset: String, version: u64, known: Vec<u64> },
    /// The PostgreSQL store (`serve --store postgres://…`) failed or refused.
    #[error("PostgreSQL store {store}: {message}")]
    Postgres { store: String, message: String },
    /// Only from [`Store::save_city_with_crash`].
    #[doc(hidden)]
    #[error("simulated crash at {0:?}")]
    InjectedCrash(CrashPoint),
}

impl StoreError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
        move |source| StoreError::Io { path: path.to_owned(), source }
    }
}

/// The city-wide settings kept in `city.toml`: name, county code, default CRS, map centre, grid
/// levels and code lengths.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CityMeta {
    pub name: String,
    /// The 6-digit county code (GB/T 2260) of the top-level grid, if declared: a grid layer whose
    /// top level has another code is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The CRS the city's survey layers come in (`EPSG:4549`, a PROJ string…): used for a layer
    /// that declares none and is given none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crs: Option<String>,
    /// lon, lat (WGS84) of the map's centre; without one, the centre of the grids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub center: Option<[f64; 2]>,
    #[serde(default)]
    pub hierarchy: Hierarchy,
}

impl CityMeta {
    /// Settings named `name` with the default hierarchy (CJ/T 213) and nothing else declared.
    pub fn new(name: &str, hierarchy: Hierarchy) -> CityMeta {
        CityMeta { name: name.to_owned(), code: None, crs: None, center: None, hierarchy }
    }

    /// Reads settings from TOML (`city.toml`, a city package's `city.toml`) and checks them: a
    /// name, a usable hierarchy, a 6-digit county code, a centre in lon/lat range.
    pub fn from_toml(text: &str) -> Result<CityMeta, String> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let meta: CityMeta = toml::from_str(text).map_err(|e| e.to_string())?;
        meta.check()?;
        Ok(meta)
    }

    /// The checks of [`CityMeta::from_toml`].
    pub fn check(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("the city needs a name (name = \"…\")".into());
        }
        self.hierarchy.validate().map_err(|e| e.to_string())?;
        if let Some(code) = &self.code
            && (code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(format!("code {code:?} must be the 6-digit county code (GB/T 2260), e.g. \"320506\""));
        }
        if let Some([lon, lat]) = self.center
            && !(lon.is_finite() && lat.is_finite() && (-180.0..=180.0).contains(&lon) && (-90.0..=90.0).contains(&lat))
        {
            return Err(format!("center [{lon}, {lat}] must be [lon, lat] in degrees"));
        }
        if let Some(crs) = &self.crs {
            crate::crs::Crs::parse(crs).map_err(|e| format!("crs {crs:?}: {e}"))?;
        }
        Ok(())
    }

    /// The settings as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("city settings serialize")
    }
}

/// The current version of each dataset (`grids`, `components`, `units`, `rules`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Versions(pub BTreeMap<String, u64>);

impl utoipa::PartialSchema for Versions {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .description(Some("the version served of each dataset, by name (grids, components, units, rules, …)"))
            .additional_properties(Some(<u64 as utoipa::PartialSchema>::schema()))
            .into()
    }
}
impl utoipa::ToSchema for Versions {}

impl Versions {
    pub fn get(&self, dataset: &str) -> Option<u64> {
        self.0.get(dataset).copied()
    }
}

/// A city read from the data directory, with the versions it came from.
pub struct LoadedCity {
    pub city: City,
    pub meta: CityMeta,
    pub versions: Versions,
    pub rules_csv: Option<String>,
    /// `calendar.toml` of the data directory, if the city has its own working calendar.
    pub calendar_toml: Option<String>,
}

/// Where a simulated crash stops [`Store::save_city_with_crash`] (tests only).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// The first layer's temp file is written and synced, not renamed.
    BeforeLayerRename,
    /// Every new data file is in place and `city.toml.tmp` is staged; the manifest is not yet
    /// renamed.
    BeforeManifestRename,
    /// The manifest is renamed (committed); `city.toml.tmp` is not yet renamed.
    BeforeCityTomlRename,
}

/// An open data directory.
pub struct Store {
    dir: PathBuf,
    manifest: Manifest,
    /// Held from the first write on (or from [`Store::open_writer`]): one writer per directory.
    lock: Option<WriterLock>,
    /// Which old versions each commit lets go.
    retention: Retention,
    /// A view of a manifest not committed here ([`Store::candidate`]): the city settings are
    /// its own, not `city.toml`'s.
    meta_from_manifest: bool,
}

/// Writes a version file.
pub type WriteVersion<'a> = Box<dyn FnOnce(&mut dyn std::io::Write) -> Result<(), String> + 'a>;

/// A new version of one dataset, to be written by [`Store::save_versions`].
pub struct NewVersion<'a> {
    pub dataset: Dataset,
    /// Features, rows or entries it holds (for the history).
    pub features: u64,
    /// Writes the version file.
    pub write: WriteVersion<'a>,
}

impl<'a> NewVersion<'a> {
    /// A version whose file is `text` as it is (a CSV or TOML dataset).
    pub fn text(dataset: Dataset, features: u64, text: &'a str) -> NewVersion<'a> {
        NewVersion { dataset, features, write: Box::new(move |w| w.write_all(text.as_bytes()).map_err(|e| e.to_string())) }
    }

    /// A version whose file is `text` (a CSV or TOML dataset), owned.
    pub fn owned_text(dataset: Dataset, features: u64, text: String) -> NewVersion<'a> {
        NewVersion { dataset, features, write: Box::new(move |w| w.write_all(text.as_bytes()).map_err(|e| e.to_string())) }
    }

    /// The layer `dataset` (grids, components, zones) or the unit register of `city`.
    pub fn of_city(dataset: Dataset, city: &'a City, meta: &CityMeta, progress: &'a dyn Fn(u64, u64)) -> NewVersion<'a> {
        let texts = layers::LayerTexts::of(meta);
        match dataset {
            Dataset::Grids => NewVersion {
                dataset,
                features: city.grids.len() as u64,
                write: Box::new(move |w| fgb::write_grids(w, city, &fgb::LayerText { title: &texts.grids_text, description: &texts.grids_description })),
            },
            Dataset::Components => NewVersion {
                dataset,
                features: city.components.len() as u64,
                write: Box::new(move |w| {
                    let text = fgb::LayerText { title: &texts.components_text, description: &texts.components_description };
                    let total = city.components.len() as u64;
                    fgb::write_components(w, city, &text, &|done| progress(done, total))
                }),
            },
            Dataset::Zones => NewVersion { dataset, features: city.zones.len() as u64, write: Box::new(move |w| fgb::write_zones(w, city)) },
            Dataset::Units => NewVersion { dataset, features: city.units.len() as u64, write: Box::new(move |w| write_units(w, &city.units)) },
            other => panic!("{other} is not a dataset of the city model"),
        }
    }
}

impl Store {
    /// Opens `dir` for reading (a missing one reads as empty and is not created). If no writer
    /// holds the directory, it
    /// also cleans up after an interrupted write: removes temp files and version files the
    /// manifest does not list, and finishes or undoes a `city.toml` write (each removal is
    /// logged as a warning). The first write takes the writer lock ([`WriterLock`]).
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let mut store = Store::read(dir)?;
        // A running writer's temp files are its work in progress, not debris.
        if !dir.is_dir() {
            return Ok(store);
        }
        if let Ok(lock) = WriterLock::acquire(dir, "citygrid (recovering)") {
            store.manifest = Store::read(dir)?.manifest;
            store.recover()?;
            drop(lock);
        }
        Ok(store)
    }

    /// Opens `dir` as its one writer: takes the writer lock for `holder` (refused with
    /// [`StoreError::Locked`], naming the holder's PID, while another process holds it), then
    /// recovers like [`Store::open`]. The lock is held until the store is dropped.
    pub fn open_writer(dir: &Path, holder: &str) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(StoreError::io(dir))?;
        let lock = WriterLock::acquire(dir, holder)?;
        let mut store = Store::read(dir)?;
        store.recover()?;
        store.lock = Some(lock);
        Ok(store)
    }

    /// Takes the writer lock if this store does not hold it yet, and re-reads the manifest
    /// under it: a write never numbers a version from a manifest another writer has replaced.
    fn writer(&mut self) -> Result<(), StoreError> {
        if self.lock.is_none() {
            std::fs::create_dir_all(&self.dir).map_err(StoreError::io(&self.dir))?;
            let lock = WriterLock::acquire(&self.dir, &format!("citygrid {}", std::env::args().skip(1).take(2).collect::<Vec<_>>().join(" ")))?;
            self.manifest = Store::read(&self.dir)?.manifest;
            self.lock = Some(lock);
        }
        Ok(())
    }

    /// Reads the manifest of `dir`; a missing directory reads as an empty one (nothing is
    /// created until the first write).
    fn read(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join(MANIFEST);
        let manifest = match std::fs::read(&path) {
            Ok(bytes) => {
                let bad = |message: String| StoreError::Manifest { path: path.clone(), message };
                let m = serde_json::from_slice::<Manifest>(&bytes).map_err(|e| bad(e.to_string()))?;
                if m.format > FORMAT {
                    return Err(bad(format!("format {} is newer than this citygrid's ({FORMAT})", m.format)));
                }
                m
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Manifest::default(),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        Ok(Store { dir: dir.to_owned(), manifest, lock: None, retention: Retention::default(), meta_from_manifest: false })
    }

    /// The same store, letting old versions go by `retention` from its next commit on.
    pub fn with_retention(mut self, retention: Retention) -> Store {
        self.retention = retention;
        self
    }

    /// Which old versions each commit lets go.
    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// Removes the files of versions a commit let go. A failure is logged, not returned: the
    /// commit stands, and the next [`Store::open`] removes a file no manifest lists.
    fn remove_pruned(&self, pruned: &[Pruned]) {
        for p in pruned {
            let path = self.dir.join(&p.file);
            match std::fs::remove_file(&path) {
                Ok(()) => tracing::info!(dataset = %p.dataset, version = p.version, bytes = p.bytes, "retention: removed an old version"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(file = %path.display(), error = %e, "retention: cannot remove an old version (removed at the next start)"),
            }
        }
    }

    /// Brings the directory back to exactly what the manifest committed.
    fn recover(&self) -> Result<(), StoreError> {
        let city_toml = self.dir.join(CITY_TOML);
        let city_tmp = atomic::tmp_path(&city_toml);
        if city_tmp.is_file() {
            let staged = std::fs::read_to_string(&city_tmp).ok().and_then(|s| toml::from_str::<CityMeta>(&s).ok());
            if staged.is_some() && staged == self.manifest.city {
                tracing::warn!(file = %city_tmp.display(), "finishing the city.toml write of a committed save");
                std::fs::rename(&city_tmp, &city_toml).map_err(StoreError::io(&city_toml))?;
                atomic::sync_dir(&self.dir)?;
            }
        }
        if let (Some(meta), false) = (&self.manifest.city, city_toml.exists()) {
            tracing::warn!(file = %city_toml.display(), "city.toml is missing: writing it from manifest.json");
            write_city_toml(&city_toml, meta)?.commit()?;
        }
        atomic::remove_temp_files(&self.dir)?;
        // City packages unpacked for an import that never finished.
        for entry in std::fs::read_dir(&self.dir).map_err(StoreError::io(&self.dir))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if (name.starts_with(".package-") || name.starts_with(".demo-package-")) && entry.path().is_dir() {
                tracing::warn!(dir = %entry.path().display(), "removing a city package left by an interrupted import");
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        for dataset in Dataset::ALL {
            let folder = self.dir.join(dataset.folder());
            atomic::remove_temp_files(&folder)?;
            let Ok(entries) = std::fs::read_dir(&folder) else {
                continue;
            };
            let mut removed = false;
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                // Only `<number>.<ext>` names are ours; anything else is left alone.
                let is_version = name
                    .strip_suffix(dataset.ext())
                    .and_then(|stem| stem.strip_suffix('.'))
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
                let rel = format!("{}/{name}", dataset.folder());
                if is_version && entry.path().is_file() && !self.manifest.lists_file(&rel) {
                    let file = entry.path();
                    tracing::warn!(file = %file.display(), "removing a version file no manifest committed (interrupted write)");
                    std::fs::remove_file(&file).map_err(StoreError::io(&file))?;
                    removed = true;
                }
            }
            if removed {
                atomic::sync_dir(&folder)?;
            }
        }
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Re-reads the manifest and brings the directory back to it (see [`Store::open`]): after
    /// another process replaced `manifest.json` (a replica's local copy pulled from the
    /// PostgreSQL store, [`pg::PgStore::pull`]).
    pub fn resync(&mut self) -> Result<(), StoreError> {
        self.manifest = Store::read(&self.dir)?.manifest;
        self.recover()
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// A read-only view of this directory as `manifest` would make it (a replica's build ahead
    /// of a staged switch, [`pg`]): loads read the files `manifest` names and its city
    /// settings, without `manifest.json` or `city.toml` being written. Never written through.
    pub fn candidate(&self, manifest: Manifest) -> Store {
        Store { dir: self.dir.clone(), manifest, lock: None, retention: self.retention, meta_from_manifest: true }
    }

    /// True if no city has been created here yet (neither `citygrid init` nor any import).
    pub fn is_empty(&self) -> bool {
        self.manifest.city.is_none()
    }

    /// True if the city has a grid layer.
    pub fn has_grids(&self) -> bool {
        self.manifest.current(Dataset::Grids.name()).is_some()
    }

    /// The committed city settings, if the city exists.
    pub fn city_meta(&self) -> Option<&CityMeta> {
        self.manifest.city.as_ref()
    }

    /// Current version of each dataset.
    pub fn versions(&self) -> Versions {
        Versions(Dataset::ALL.iter().filter_map(|d| self.manifest.current(d.name()).map(|v| (d.name().to_string(), v.version))).collect())
    }

    /// Creates an empty city (no layers yet) with these settings. Refused if the directory
    /// already holds a city.
    pub fn init(&mut self, meta: &CityMeta, source: &str) -> Result<Versions, StoreError> {
        self.writer()?;
        if let Some(existing) = &self.manifest.city {
            return Err(StoreError::Invalid(format!(
                "{} already holds the city {:?}: change its settings with `citygrid import city city.toml`",
                self.dir.display(),
                existing.name
            )));
        }
        meta.check().map_err(StoreError::Invalid)?;
        let toml = meta.to_toml();
        self.save_versions(vec![NewVersion::text(Dataset::City, 1, &toml)], Some(meta), source, None)
    }

    /// Writes new versions of grids, components, zones (if any) and units (and rules if given)
    /// and the city settings, and makes them current together, or — on any failure or crash —
    /// not at all. `progress` gets (components written, components).
    pub fn save_city(
        &mut self,
        meta: &CityMeta,
        city: &City,
        rules_csv: Option<&str>,
        source: &str,
        progress: &dyn Fn(u64, u64),
    ) -> Result<Versions, StoreError> {
        self.save_city_with_crash(meta, city, rules_csv, source, progress, None)
    }

    /// [`Store::save_city`] that stops like a crash at `crash` (for tests).
    #[doc(hidden)]
    pub fn save_city_with_crash(
        &mut self,
        meta: &CityMeta,
        city: &City,
        rules_csv: Option<&str>,
        source: &str,
        progress: &dyn Fn(u64, u64),
        crash: Option<CrashPoint>,
    ) -> Result<Versions, StoreError> {
        let mut plan = vec![NewVersion::of_city(Dataset::Grids, city, meta, progress), NewVersion::of_city(Dataset::Components, city, meta, progress)];
        if !city.zones.is_empty() {
            plan.push(NewVersion::of_city(Dataset::Zones, city, meta, progress));
        }
        plan.push(NewVersion::of_city(Dataset::Units, city, meta, progress));
        if let Some(rules) = rules_csv {
            plan.push(NewVersion::text(Dataset::Rules, rules_count(rules), rules));
        }
        if self.manifest.city.as_ref() != Some(meta) {
            plan.push(NewVersion::owned_text(Dataset::City, 1, meta.to_toml()));
        }
        if meta.hierarchy != city.hierarchy {
            return Err(StoreError::Invalid("the city settings' hierarchy differs from the city's own".into()));
        }
        self.save_versions(plan, Some(meta), source, crash)
    }

    /// The one write path: writes each new version as its dataset's next version number, and the
    /// city settings `meta` if given, and makes them all current together with one manifest
    /// write — or, on any failure, none of them (the files written are removed). Takes the
    /// writer lock first. A version number is never used twice, rollbacks included.
    pub fn save_versions(
        &mut self,
        plan: Vec<NewVersion<'_>>,
        meta: Option<&CityMeta>,
        source: &str,
        crash: Option<CrashPoint>,
    ) -> Result<Versions, StoreError> {
        self.save_inner_checked(plan, &[], meta, source, crash)
    }

    /// [`Store::save_versions`] that also makes `clear`'s datasets current in no version (their
    /// versions stay kept, for rollback), in the same commit: another city's package replacing
    /// the city whole.
    pub fn save_versions_clearing(
        &mut self,
        plan: Vec<NewVersion<'_>>,
        clear: &[Dataset],
        meta: Option<&CityMeta>,
        source: &str,
    ) -> Result<Versions, StoreError> {
        self.save_inner_checked(plan, clear, meta, source, None)
    }

    fn save_inner_checked(
        &mut self,
        plan: Vec<NewVersion<'_>>,
        clear: &[Dataset],
        meta: Option<&CityMeta>,
        source: &str,
        crash: Option<CrashPoint>,
    ) -> Result<Versions, StoreError> {
        self.writer()?;
        if let Some(meta) = meta {
            meta.hierarchy.validate().map_err(|e| StoreError::Invalid(e.to_string()))?;
        }
        let mut written = Vec::new();
        let result = self.save_inner(plan, clear, meta, source, crash, &mut written);
        if let Err(e) = &result
            && !matches!(e, StoreError::InjectedCrash(_))
        {
            // Nothing was committed: take back what this save put in place.
            for file in &written {
                let _ = std::fs::remove_file(file);
            }
        }
        result
    }

    fn save_inner(
        &mut self,
        plan: Vec<NewVersion<'_>>,
        clear: &[Dataset],
        meta: Option<&CityMeta>,
        source: &str,
        crash: Option<CrashPoint>,
        written: &mut Vec<PathBuf>,
    ) -> Result<Versions, StoreError> {
        let mut next = self.manifest.clone();
        next.format = FORMAT;
        if let Some(meta) = meta {
            next.city = Some(meta.clone());
        }
        let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        for d in clear {
            if let Some(history) = next.datasets.get_mut(d.name()) {
                history.current = 0;
            }
        }
        for (i, new) in plan.into_iter().enumerate() {
            let dataset = new.dataset;
            let version = self.manifest.dataset(dataset.name()).map_or(0, |d| d.latest()) + 1;
            let rel = format!("{}/{version}.{}", dataset.folder(), dataset.ext());
            let path = self.dir.join(&rel);
            atomic::create_dirs(&self.dir, dataset.folder())?;
            let staged = atomic::stage(&path, new.write)?;
            if i == 0 && crash == Some(CrashPoint::BeforeLayerRename) {
                return Err(StoreError::InjectedCrash(CrashPoint::BeforeLayerRename));
            }
            let bytes = staged.commit()?;
            written.push(path);
            next.add_version(
                dataset.name(),
                VersionInfo { version, file: rel, features: new.features, bytes, created: created.clone(), source: source.into() },
            );
        }
        let city_staged = match &next.city {
            Some(meta) if meta_changed(&self.manifest, meta, &self.dir) => {
                let staged = write_city_toml(&self.dir.join(CITY_TOML), meta)?;
                written.push(staged.tmp.clone());
                Some(staged)
            }
            _ => None,
        };
        if crash == Some(CrashPoint::BeforeManifestRename) {
            return Err(StoreError::InjectedCrash(CrashPoint::BeforeManifestRename));
        }
        let pruned = self.retention.prune(&mut next, &self.versions(), chrono::Utc::now());

        // The commit point.
        let manifest_path = self.dir.join(MANIFEST);
        let staged = atomic::stage(&manifest_path, |w| {
            serde_json::to_writer_pretty(&mut *w, &next).map_err(|e| e.to_string())?;
            w.write_all(b"\n").map_err(|e| e.to_string())
        })?;
        written.push(staged.tmp.clone());
        std::fs::rename(&staged.tmp, &manifest_path).map_err(StoreError::io(&manifest_path))?;
        written.clear(); // committed: nothing to take back from here on
        self.manifest = next;
        atomic::sync_dir(&self.dir)?;

        if crash == Some(CrashPoint::BeforeCityTomlRename) {
            return Err(StoreError::InjectedCrash(CrashPoint::BeforeCityTomlRename));
        }
        // Committed already; if this rename fails, the next open finishes it.
        if let Some(staged) = city_staged {
            staged.commit()?;
        }
        self.remove_pruned(&pruned);
        Ok(self.versions())
    }

    /// Reads the current versions into a checked [`City`]: `city.toml`, the local class files,
    /// the unit register, then grids, then components, then zones, all through
    /// [`CityBuilder`]. A city without layers yet (`citygrid init`) loads as an empty city.
    /// `progress` gets (components read, components in the layer).
    pub fn load_city(&self, progress: &dyn Fn(u64, u64)) -> Result<LoadedCity, StoreError> {
        self.load_city_reusing(None, progress)
    }

    /// [`Store::load_city`], with the components taken from `components_of` (a city loaded
    /// from the current version of the component layer, with the same hierarchy and class
    /// files) instead of read from that version's file again: the same city, without parsing
    /// and checking a million features ([`CityBuilder::add_components_of`]).
    pub fn load_city_reusing(&self, components_of: Option<&crate::model::City>, progress: &dyn Fn(u64, u64)) -> Result<LoadedCity, StoreError> {
        if self.manifest.city.is_none() && !self.has_grids() {
            return Err(StoreError::Empty(self.dir.clone()));
        }
        let meta = self.read_city_toml()?;
        let mut component_classes = ClassTable::builtin_components();
        let mut event_classes = ClassTable::builtin_events();
        for (table, file) in [(&mut component_classes, CLASS_FILES[0]), (&mut event_classes, CLASS_FILES[1])] {
            let path = self.dir.join(file);
            if path.exists() {
                table.extend_from_file(&path).map_err(|source| StoreError::Model { path, source })?;
            }
        }
        let mut builder = CityBuilder::new(meta.hierarchy.clone(), component_classes, event_classes);
        let current = |d: Dataset| self.manifest.current(d.name()).map(|v| self.dir.join(&v.file)).zip(self.manifest.current(d.name()).map(|v| v.features));
        if let Some((path, _)) = current(Dataset::Units) {
            read_units(&path, builder.units_mut())?;
        }
        let grids_path = current(Dataset::Grids).map(|(p, _)| p).unwrap_or_else(|| self.dir.join(MANIFEST));
        if let Some((path, features)) = current(Dataset::Grids) {
            fgb::read_grids(&path, Some(features), &mut builder)?;
        }
        if let Some((path, features)) = current(Dataset::Components) {
            let taken = match components_of {
                Some(prev) => builder.add_components_of(prev).map_err(|source| StoreError::Model { path: path.clone(), source })?,
                None => false,
            };
            if !taken {
                fgb::read_components(&path, Some(features), &mut builder, progress)?;
            }
        }
        if let Some((path, features)) = current(Dataset::Zones) {
            fgb::read_zones(&path, Some(features), &mut builder)?;
        }
        let city = builder.finish().map_err(|source| StoreError::Model { path: grids_path, source })?;
        let (rules_csv, calendar_toml) = self.routing_texts()?;
        Ok(LoadedCity { calendar_toml, city, meta, versions: self.versions(), rules_csv })
    }

    /// The current responsibility list and working calendar (the calendar dataset's current
    /// version, else a legacy `calendar.toml`), as [`Store::load_city`] reads them.
    pub fn routing_texts(&self) -> Result<(Option<String>, Option<String>), StoreError> {
        let current = |d: Dataset| self.manifest.current(d.name()).map(|v| self.dir.join(&v.file));
        let read_text = |path: PathBuf| std::fs::read_to_string(&path).map_err(StoreError::io(&path));
        let rules_csv = current(Dataset::Rules).map(read_text).transpose()?;
        let calendar_toml = match current(Dataset::Calendar) {
            Some(path) => Some(read_text(path)?),
            None => read_optional(&self.dir.join(LEGACY_CALENDAR_TOML))?.map(|b| String::from_utf8_lossy(&b).into_owned()),
        };
        Ok((rules_csv, calendar_toml))
    }

    /// The files of the directory that no manifest versions (the local class files, a legacy
    /// `calendar.toml`), by name, with their bytes; absent ones are left out.
    pub fn unversioned_files(&self) -> Result<Vec<(&'static str, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for name in UNVERSIONED_FILES {
            if let Some(bytes) = read_optional(&self.dir.join(name))? {
                out.push((name, bytes));
            }
        }
        Ok(out)
    }

    fn read_city_toml(&self) -> Result<CityMeta, StoreError> {
        let path = self.dir.join(CITY_TOML);
        if self.meta_from_manifest
            && let Some(meta) = &self.manifest.city
        {
            return Ok(meta.clone());
        }
        let text = std::fs::read_to_string(&path).map_err(StoreError::io(&path))?;
        let meta: CityMeta = toml::from_str(&text).map_err(|e| StoreError::CityToml { path: path.clone(), message: e.to_string() })?;
        meta.hierarchy.validate().map_err(|source| StoreError::Model { path, source })?;
        Ok(meta)
    }
}

/// The bytes of `path`, `None` if it does not exist.
fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StoreError::Io { path: path.to_owned(), source }),
    }
}

/// Whether `meta` must be written to `city.toml`: it is not what the manifest committed, or the
/// file is missing.
fn meta_changed(manifest: &Manifest, meta: &CityMeta, dir: &Path) -> bool {
    manifest.city.as_ref() != Some(meta) || !dir.join(CITY_TOML).exists()
}

/// Rows of a responsibility list (lines after the header that are not blank).
pub fn rules_count(csv: &str) -> u64 {
    csv.lines().filter(|l| !l.trim().is_empty()).count().saturating_sub(1) as u64
}

/// Stages `city.toml` (written and synced as `city.toml.tmp`, not yet renamed).
fn write_city_toml(path: &Path, meta: &CityMeta) -> Result<atomic::Staged, StoreError> {
    let text = toml::to_string(meta).map_err(|e| StoreError::Write { path: path.to_owned(), message: e.to_string() })?;
    atomic::stage(path, |w| {
        w.write_all(
            "# citygrid city settings, rewritten by every save. The name and centre may be edited;\n\
             # the hierarchy must match the codes in the grid layer.\n\n"
                .as_bytes(),
        )
        .and_then(|()| w.write_all(text.as_bytes()))
        .map_err(|e| e.to_string())
    })
}

#[derive(Serialize, Deserialize)]
struct UnitRow {
    #[serde(default, alias = "单位编码", alias = "编码", alias = "统一社会信用代码")]
    code: String,
    #[serde(alias = "单位名称", alias = "名称")]
    name: String,
    #[serde(default, alias = "电话", alias = "联系电话")]
    phone: String,
}

/// Reads a unit register (CSV `code,name,phone`, or 单位编码/单位名称/电话; UTF-8, BOM
/// accepted) and checks it: a name column, every row with a name, no name twice, at least one
/// unit (a register is never replaced by an empty one).
pub fn units_from_csv(text: &str) -> Result<Vec<Unit>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().map_err(|e| format!("the header: {e}"))?.clone();
    if !header.iter().any(|h| ["name", "单位名称", "名称"].contains(&h.trim())) {
        return Err(format!(
            "no name column among {:?}: a unit register is a CSV with the header code,name,phone (or 单位编码,单位名称,电话)",
            header.iter().take(5).collect::<Vec<_>>()
        ));
    }
    let mut names = std::collections::HashSet::new();
    let mut units = Vec::new();
    for (i, row) in reader.deserialize::<UnitRow>().enumerate() {
        let row = row.map_err(|e| format!("row {}: {e}", i + 2))?;
        let name = row.name.trim().to_owned();
        if name.is_empty() {
            return Err(format!("row {}: a unit without a name", i + 2));
        }
        if !names.insert(name.clone()) {
            return Err(format!("row {}: unit {name:?} is listed twice", i + 2));
        }
        let some = |s: String| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        units.push(Unit { code: some(row.code), name, phone: some(row.phone) });
    }
    if units.is_empty() {
        return Err("no unit: a unit register is never replaced by an empty one".into());
    }
    Ok(units)
}

fn write_units(w: &mut dyn std::io::Write, units: &UnitTable) -> Result<(), String> {
    let mut out = csv::Writer::from_writer(w);
    for (_, unit) in units.iter() {
        out.serialize(UnitRow { code: unit.code.clone().unwrap_or_default(), name: unit.name.clone(), phone: unit.phone.clone().unwrap_or_default() })
            .map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())
}

fn read_units(path: &Path, units: &mut UnitTable) -> Result<(), StoreError> {
    let bad = |message: String| StoreError::Units { path: path.into(), message };
    let text = std::fs::read_to_string(path).map_err(StoreError::io(path))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    for (i, row) in reader.deserialize::<UnitRow>().enumerate() {
        let row = row.map_err(|e| bad(format!("row {}: {e}", i + 2)))?;
        if row.name.trim().is_empty() {
            return Err(bad(format!("row {}: a unit without a name", i + 2)));
        }
        let some = |s: String| (!s.is_empty()).then_some(s);
        units.insert(Unit { code: some(row.code), name: row.name.trim().to_owned(), phone: some(row.phone) });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
