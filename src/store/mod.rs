//! The data directory: versioned layer files, a manifest, crash-safe writes.
//!
//! ```text
//! DIR/city.toml                       city name, centre [lon, lat], grid hierarchy
//! DIR/manifest.json                   every dataset's versions and which one is current
//! DIR/layers/grids/<v>.fgb            all grid levels, FlatGeobuf, EPSG:4326, packed R-tree
//! DIR/layers/components/<v>.fgb       components, FlatGeobuf points, EPSG:4326, packed R-tree
//! DIR/units/<v>.csv                   unit register: code,name,phone
//! DIR/rules/<v>.csv                   responsibility list (opaque here)
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

pub mod audit;
mod atomic;
pub(crate) mod fgb;
mod layers;
mod manifest;
mod versions;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::{City, CityBuilder, ClassTable, Hierarchy, ModelError, Unit, UnitTable};
pub use manifest::{Dataset, FORMAT, Manifest, VersionInfo};

/// A dataset: its name in the manifest, its folder, its file extension.
struct Def {
    name: &'static str,
    folder: &'static str,
    ext: &'static str,
}

const GRIDS: Def = Def {
    name: "grids",
    folder: "layers/grids",
    ext: "fgb",
};
const COMPONENTS: Def = Def {
    name: "components",
    folder: "layers/components",
    ext: "fgb",
};
const UNITS: Def = Def {
    name: "units",
    folder: "units",
    ext: "csv",
};
const RULES: Def = Def {
    name: "rules",
    folder: "rules",
    ext: "csv",
};
const ZONES: Def = Def {
    name: "zones",
    folder: "layers/zones",
    ext: "fgb",
};
const DATASETS: [&Def; 5] = [&GRIDS, &COMPONENTS, &ZONES, &UNITS, &RULES];

const MANIFEST: &str = "manifest.json";
const CITY_TOML: &str = "city.toml";
/// Optional: the city's own working calendar for deadlines (else the built-in one).
const CALENDAR_TOML: &str = "calendar.toml";
const CLASS_FILES: [&str; 2] = ["component_classes.csv", "event_classes.csv"];

/// Everything that can go wrong with a data directory. Messages name the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: writing failed: {message}")]
    Write { path: PathBuf, message: String },
    #[error("{path}: not a valid manifest: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("{path}: not valid city settings: {message}")]
    CityToml { path: PathBuf, message: String },
    #[error("{path}: not a readable FlatGeobuf layer: {message}")]
    Layer { path: PathBuf, message: String },
    #[error("{path}, feature {feature}: {source}")]
    Feature {
        path: PathBuf,
        feature: u64,
        source: ModelError,
    },
    #[error("{path}: {source}")]
    Model { path: PathBuf, source: ModelError },
    #[error("{path}: not a valid unit register: {message}")]
    Units { path: PathBuf, message: String },
    #[error("data directory {0} holds no city yet (no grid layer)")]
    Empty(PathBuf),
    #[error("cannot save: {0}")]
    Invalid(String),
    #[error("{dataset} has no version {version} (kept: {})", known.iter().map(u64::to_string).collect::<Vec<_>>().join(", "))]
    UnknownVersion { dataset: String, version: u64, known: Vec<u64> },
    /// Only from [`Store::save_city_with_crash`].
    #[doc(hidden)]
    #[error("simulated crash at {0:?}")]
    InjectedCrash(CrashPoint),
}

impl StoreError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
        move |source| StoreError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// The city-wide settings kept in `city.toml`: name, map centre, grid levels and code lengths.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CityMeta {
    pub name: String,
    /// lon, lat (WGS84).
    pub center: [f64; 2],
    pub hierarchy: Hierarchy,
}

/// The current version of each dataset (`grids`, `components`, `units`, `rules`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Versions(pub BTreeMap<String, u64>);

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
}

impl Store {
    /// Opens `dir`, creating it if missing, and cleans up after an interrupted write: removes
    /// temp files and version files the manifest does not list, and finishes or undoes a
    /// `city.toml` write. Each removal is logged as a warning.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(StoreError::io(dir))?;
        let path = dir.join(MANIFEST);
        let manifest = match std::fs::read(&path) {
            Ok(bytes) => {
                let bad = |message: String| StoreError::Manifest {
                    path: path.clone(),
                    message,
                };
                let m =
                    serde_json::from_slice::<Manifest>(&bytes).map_err(|e| bad(e.to_string()))?;
                if m.format > FORMAT {
                    return Err(bad(format!(
                        "format {} is newer than this citygrid's ({FORMAT})",
                        m.format
                    )));
                }
                m
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Manifest::default(),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        let store = Store {
            dir: dir.to_owned(),
            manifest,
        };
        store.recover()?;
        Ok(store)
    }

    /// Brings the directory back to exactly what the manifest committed.
    fn recover(&self) -> Result<(), StoreError> {
        let city_toml = self.dir.join(CITY_TOML);
        let city_tmp = atomic::tmp_path(&city_toml);
        if city_tmp.is_file() {
            let staged = std::fs::read_to_string(&city_tmp)
                .ok()
                .and_then(|s| toml::from_str::<CityMeta>(&s).ok());
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
        for def in DATASETS {
            let folder = self.dir.join(def.folder);
            atomic::remove_temp_files(&folder)?;
            let Ok(entries) = std::fs::read_dir(&folder) else {
                continue;
            };
            let mut removed = false;
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                // Only `<number>.<ext>` names are ours; anything else is left alone.
                let is_version = name
                    .strip_suffix(def.ext)
                    .and_then(|stem| stem.strip_suffix('.'))
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
                let rel = format!("{}/{name}", def.folder);
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

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// True if no grid layer has been committed yet.
    pub fn is_empty(&self) -> bool {
        self.manifest.current(GRIDS.name).is_none()
    }

    /// Current version of each dataset.
    pub fn versions(&self) -> Versions {
        Versions(
            DATASETS
                .iter()
                .filter_map(|d| {
                    self.manifest
                        .current(d.name)
                        .map(|v| (d.name.to_string(), v.version))
                })
                .collect(),
        )
    }

    /// Writes new versions of grids, components and units (and rules if given) and `city.toml`,
    /// and makes them current together, or — on any failure or crash — not at all.
    /// `progress` gets (features written, grids + components).
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
        if meta.hierarchy != city.hierarchy {
            return Err(StoreError::Invalid(
                "the city settings' hierarchy differs from the city's own".into(),
            ));
        }
        meta.hierarchy
            .validate()
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let mut written = Vec::new();
        let result = self.save_inner(meta, city, rules_csv, source, progress, crash, &mut written);
        if let Err(e) = &result {
            if !matches!(e, StoreError::InjectedCrash(_)) {
                // Nothing was committed: take back what this save put in place.
                for file in &written {
                    let _ = std::fs::remove_file(file);
                }
            }
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn save_inner(
        &mut self,
        meta: &CityMeta,
        city: &City,
        rules_csv: Option<&str>,
        source: &str,
        progress: &dyn Fn(u64, u64),
        crash: Option<CrashPoint>,
        written: &mut Vec<PathBuf>,
    ) -> Result<Versions, StoreError> {
        let mut next = self.manifest.clone();
        next.format = FORMAT;
        next.city = Some(meta.clone());
        let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let (n_grids, n_components) = (city.grids.len() as u64, city.components.len() as u64);
        let total = n_grids + n_components;
        progress(0, total);

        let layers::LayerTexts { grids_text, grids_description, components_text, components_description } =
            layers::LayerTexts::of(meta);

        let rules_rows = rules_csv.map(|r| {
            r.lines()
                .filter(|l| !l.trim().is_empty())
                .count()
                .saturating_sub(1)
        });
        let mut plan: Vec<(&Def, u64)> = vec![(&GRIDS, n_grids), (&COMPONENTS, n_components)];
        if !city.zones.is_empty() {
            plan.push((&ZONES, city.zones.len() as u64));
        }
        plan.push((&UNITS, city.units.len() as u64));
        if let Some(rows) = rules_rows {
            plan.push((&RULES, rows as u64));
        }
        for (i, (def, features)) in plan.into_iter().enumerate() {
            let version = self.manifest.dataset(def.name).map_or(0, |d| d.latest()) + 1;
            let rel = format!("{}/{version}.{}", def.folder, def.ext);
            let path = self.dir.join(&rel);
            atomic::create_dirs(&self.dir, def.folder)?;
            let staged = match def.name {
                "grids" => atomic::stage(&path, |w| {
                    let text = fgb::LayerText {
                        title: &grids_text,
                        description: &grids_description,
                    };
                    fgb::write_grids(w, city, &text)
                })?,
                "components" => atomic::stage(&path, |w| {
                    let text = fgb::LayerText {
                        title: &components_text,
                        description: &components_description,
                    };
                    fgb::write_components(w, city, &text, &|done| progress(n_grids + done, total))
                })?,
                "zones" => atomic::stage(&path, |w| fgb::write_zones(w, city))?,
                "units" => atomic::stage(&path, |w| write_units(w, &city.units))?,
                _ => atomic::stage(&path, |w| {
                    w.write_all(rules_csv.expect("planned").as_bytes())
                        .map_err(|e| e.to_string())
                })?,
            };
            if i == 0 && crash == Some(CrashPoint::BeforeLayerRename) {
                return Err(StoreError::InjectedCrash(CrashPoint::BeforeLayerRename));
            }
            let bytes = staged.commit()?;
            written.push(path);
            next.add_version(
                def.name,
                VersionInfo {
                    version,
                    file: rel,
                    features,
                    bytes,
                    created: created.clone(),
                    source: source.into(),
                },
            );
        }
        let city_toml = self.dir.join(CITY_TOML);
        let city_staged = write_city_toml(&city_toml, meta)?;
        written.push(city_staged.tmp.clone());
        if crash == Some(CrashPoint::BeforeManifestRename) {
            return Err(StoreError::InjectedCrash(CrashPoint::BeforeManifestRename));
        }

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
        city_staged.commit()?;
        progress(total, total);
        Ok(self.versions())
    }

    /// Reads the current versions into a checked [`City`]: `city.toml`, the local class files,
    /// the unit register, then grids, then components, all through [`CityBuilder`].
    /// `progress` gets (components read, components in the layer).
    pub fn load_city(&self, progress: &dyn Fn(u64, u64)) -> Result<LoadedCity, StoreError> {
        let Some(grids) = self.manifest.current(GRIDS.name) else {
            return Err(StoreError::Empty(self.dir.clone()));
        };
        let meta = self.read_city_toml()?;
        let mut component_classes = ClassTable::builtin_components();
        let mut event_classes = ClassTable::builtin_events();
        for (table, file) in [
            (&mut component_classes, CLASS_FILES[0]),
            (&mut event_classes, CLASS_FILES[1]),
        ] {
            let path = self.dir.join(file);
            if path.exists() {
                table
                    .extend_from_file(&path)
                    .map_err(|source| StoreError::Model { path, source })?;
            }
        }
        let mut builder =
            CityBuilder::new(meta.hierarchy.clone(), component_classes, event_classes);
        if let Some(units) = self.manifest.current(UNITS.name) {
            read_units(&self.dir.join(&units.file), builder.units_mut())?;
        }
        let grids_path = self.dir.join(&grids.file);
        fgb::read_grids(&grids_path, Some(grids.features), &mut builder)?;
        if let Some(components) = self.manifest.current(COMPONENTS.name) {
            let path = self.dir.join(&components.file);
            fgb::read_components(&path, Some(components.features), &mut builder, progress)?;
        }
        if let Some(zones) = self.manifest.current(ZONES.name) {
            let path = self.dir.join(&zones.file);
            fgb::read_zones(&path, Some(zones.features), &mut builder)?;
        }
        let city = builder.finish().map_err(|source| StoreError::Model {
            path: grids_path,
            source,
        })?;
        let rules_csv = match self.manifest.current(RULES.name) {
            Some(rules) => {
                let path = self.dir.join(&rules.file);
                Some(std::fs::read_to_string(&path).map_err(StoreError::io(&path))?)
            }
            None => None,
        };
        let calendar_path = self.dir.join(CALENDAR_TOML);
        let calendar_toml = match std::fs::read_to_string(&calendar_path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(StoreError::Io { path: calendar_path, source }),
        };
        Ok(LoadedCity {
            calendar_toml,
            city,
            meta,
            versions: self.versions(),
            rules_csv,
        })
    }

    fn read_city_toml(&self) -> Result<CityMeta, StoreError> {
        let path = self.dir.join(CITY_TOML);
        let text = std::fs::read_to_string(&path).map_err(StoreError::io(&path))?;
        let meta: CityMeta = toml::from_str(&text).map_err(|e| StoreError::CityToml {
            path: path.clone(),
            message: e.to_string(),
        })?;
        meta.hierarchy
            .validate()
            .map_err(|source| StoreError::Model { path, source })?;
        Ok(meta)
    }
}

/// Stages `city.toml` (written and synced as `city.toml.tmp`, not yet renamed).
fn write_city_toml(path: &Path, meta: &CityMeta) -> Result<atomic::Staged, StoreError> {
    let text = toml::to_string(meta).map_err(|e| StoreError::Write {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
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
    code: String,
    name: String,
    phone: String,
}

fn write_units(w: &mut dyn std::io::Write, units: &UnitTable) -> Result<(), String> {
    let mut out = csv::Writer::from_writer(w);
    for (_, unit) in units.iter() {
        out.serialize(UnitRow {
            code: unit.code.clone().unwrap_or_default(),
            name: unit.name.clone(),
            phone: unit.phone.clone().unwrap_or_default(),
        })
        .map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())
}

fn read_units(path: &Path, units: &mut UnitTable) -> Result<(), StoreError> {
    let bad = |message: String| StoreError::Units {
        path: path.into(),
        message,
    };
    let file = std::fs::File::open(path).map_err(StoreError::io(path))?;
    let mut reader = csv::Reader::from_reader(std::io::BufReader::new(file));
    for (i, row) in reader.deserialize::<UnitRow>().enumerate() {
        let row = row.map_err(|e| bad(format!("row {}: {e}", i + 2)))?;
        if row.name.trim().is_empty() {
            return Err(bad(format!("row {}: a unit without a name", i + 2)));
        }
        let some = |s: String| (!s.is_empty()).then_some(s);
        units.insert(Unit {
            code: some(row.code),
            name: row.name.trim().to_owned(),
            phone: some(row.phone),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
