//! A city package: a folder (or a ZIP of one) holding any of a city's datasets, each file named
//! after its dataset — `city.toml`, `grids.*`, `components.*`, `zones.*`, `units.csv`,
//! `rules.csv`, `calendar.toml` — imported in one switch: all of them become current together,
//! or, if any is refused, none.
//!
//! Layers may be in any format a survey layer may come in (`grids.zip` a zipped Shapefile,
//! `grids.shp` with its siblings, `.geojson`, `.fgb`, `.gpkg`, `components.csv`…) and in any
//! CRS; a layer that declares none is read in the package's (or the city's) `crs`. They are
//! checked in the order settings, grids, components, zones, then the unit register, the
//! responsibility list and the calendar against the new layers, so a package may bring a whole
//! city into an empty data directory, or replace any part of an existing one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::DatasetError;
use super::text::{TextChecked, check_text};
use crate::index::GridIndex;
use crate::ingest::validate::LayerKind;
use crate::ingest::{CsvOptions, Format, ImportOptions, IngestError, Report};
use crate::model::{City, CityBuilder, ClassTable};
use crate::store::{CityMeta, Dataset, NewVersion};

/// A city package, opened: which file holds which dataset.
pub struct Package {
    /// The folder (for a ZIP: where it was unpacked, removed on drop).
    pub dir: PathBuf,
    pub files: BTreeMap<Dataset, PathBuf>,
    _unpacked: Option<tempfile::TempDir>,
}

impl Package {
    /// Opens the package at `path`: a folder, or a ZIP of one (its files at the top or in one
    /// folder), unpacked into a temp folder in `scratch`. A file whose name (before the
    /// extension) is not a dataset's is refused, so that a misspelt `grid.shp` is not skipped
    /// silently; `README*` and dot files are ignored.
    pub fn open(path: &Path, scratch: &Path) -> Result<Package, DatasetError> {
        let bad = |m: String| DatasetError::Package(m);
        let (dir, unpacked) = if path.is_dir() {
            (path.to_owned(), None)
        } else {
            let file = std::fs::File::open(path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
            let (dir, tmp) = unzip(file, scratch).map_err(|e| bad(format!("{}: {e}", path.display())))?;
            (dir, Some(tmp))
        };
        Package::in_folder(dir, unpacked, &path.display().to_string())
    }

    /// Opens a city package sent as a ZIP (an upload), unpacked into a temp folder in `scratch`.
    pub fn from_zip(file: std::fs::File, scratch: &Path) -> Result<Package, DatasetError> {
        let (dir, tmp) = unzip(file, scratch).map_err(DatasetError::Package)?;
        Package::in_folder(dir, Some(tmp), "the package")
    }

    fn in_folder(dir: PathBuf, unpacked: Option<tempfile::TempDir>, what: &str) -> Result<Package, DatasetError> {
        let bad = |m: String| DatasetError::Package(m);
        let mut files = BTreeMap::new();
        let entries = std::fs::read_dir(&dir).map_err(|e| bad(format!("{}: {e}", dir.display())))?;
        let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
        names.sort();
        for file in names {
            let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            let (stem, ext) = name.split_once('.').unwrap_or((name.as_str(), ""));
            let (stem, ext) = (stem.to_lowercase(), ext.to_lowercase());
            if name.starts_with('.') || stem.starts_with("readme") || stem.starts_with("expected") || ext == "py" || ext == "md" {
                continue;
            }
            // A bare Shapefile's siblings travel with its .shp.
            if ["dbf", "shx", "prj", "cpg", "qpj", "sbn", "sbx", "xml", "shp.xml"].contains(&ext.as_str()) {
                continue;
            }
            let Some(dataset) = Dataset::parse(&stem) else {
                return Err(bad(format!("{name}: not a dataset of a city package (name files {}, e.g. grids.zip, units.csv)", Dataset::names())));
            };
            if let Some(first) = files.insert(dataset, file.clone()) {
                return Err(bad(format!("two files for {dataset}: {} and {name}", first.display())));
            }
        }
        if files.is_empty() {
            return Err(bad(format!("{what}: no dataset files (name them {}, e.g. grids.zip, units.csv)", Dataset::names())));
        }
        Ok(Package { dir, files, _unpacked: unpacked })
    }

    fn text(&self, dataset: Dataset) -> Result<Option<String>, DatasetError> {
        match self.files.get(&dataset) {
            None => Ok(None),
            Some(path) => std::fs::read_to_string(path)
                .map(|t| Some(t.strip_prefix('\u{feff}').map(str::to_owned).unwrap_or(t)))
                .map_err(|e| DatasetError::Package(format!("{}: {e} (text files are UTF-8)", path.display()))),
        }
    }
}

/// How to read a package's layers.
#[derive(Clone, Debug, Default)]
pub struct PackageOptions {
    /// The template for each layer's [`ImportOptions`] (policy, CRS, shrink…; `layer` is set
    /// per file).
    pub base: Option<ImportOptions>,
}

/// What checking a package found: a report per layer, a line per text dataset.
#[derive(Clone, Debug, Serialize)]
pub struct PackageReport {
    pub layers: Vec<Report>,
    pub texts: Vec<TextChecked>,
    /// Why the package is refused (`None`: it can be imported).
    pub rejection: Option<String>,
    /// Set when the package is another city's, which replaces the current one whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces_city: Option<String>,
}

impl PackageReport {
    /// A readable rendering for the command line.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for r in &self.layers {
            s.push_str(&r.to_text());
        }
        for t in &self.texts {
            s.push_str(&format!("{}: {} rows, accepted\n", t.dataset, t.rows));
            for w in &t.warnings {
                s.push_str(&format!("  warning: {w}\n"));
            }
        }
        if let Some(r) = &self.replaces_city {
            s.push_str(&format!("note: {r}\n"));
        }
        if let Some(r) = &self.rejection {
            s.push_str(&format!("PACKAGE REJECTED: {r}\n"));
        }
        s
    }
}

/// A package that passed its checks: the new city and the texts to store.
pub struct CheckedPackage {
    pub report: PackageReport,
    pub meta: CityMeta,
    /// `None` when the package brings no layer (the city stays as it is).
    pub city: Option<City>,
    /// Which layers are new (and whether units changed).
    pub layers: Vec<Dataset>,
    pub units_changed: bool,
    pub texts: Vec<(Dataset, u64, String)>,
    /// Datasets made current in no version by this import (another city's package lacks them).
    pub clear: Vec<Dataset>,
}

impl CheckedPackage {
    /// The versions to write, in one switch.
    pub fn plan<'a>(&'a self, progress: &'a dyn Fn(u64, u64)) -> Vec<NewVersion<'a>> {
        let mut plan = Vec::new();
        if let Some(city) = &self.city {
            for &layer in &self.layers {
                plan.push(NewVersion::of_city(layer, city, &self.meta, progress));
            }
            if self.units_changed && !self.texts.iter().any(|(d, ..)| *d == Dataset::Units) {
                plan.push(NewVersion::of_city(Dataset::Units, city, &self.meta, progress));
            }
        }
        for (dataset, rows, text) in &self.texts {
            plan.push(NewVersion::text(*dataset, *rows, text));
        }
        plan
    }
}

/// Checks `package` against the current city (`current`, with settings `meta`; `None` for an
/// empty data directory) — every layer in turn on top of the ones before, then the texts. New
/// grids without a new responsibility list: the list in force (`current_rules`) is checked
/// against them, and what breaks or now aims at another place goes into the grids report's
/// `rules_problem` (a strict import refuses it).
pub fn check_package(
    package: &Package,
    current: Option<(&City, &CityMeta)>,
    current_rules: Option<&str>,
    options: &PackageOptions,
) -> Result<CheckedPackage, DatasetError> {
    let refuse = |report: PackageReport, why: String| Err(DatasetError::PackageRejected(Box::new(PackageReport { rejection: Some(why), ..report })));
    let mut report = PackageReport { layers: Vec::new(), texts: Vec::new(), rejection: None, replaces_city: None };
    // The settings first: they say the hierarchy and the CRS the layers are read in.
    let current_meta = current.map(|(_, m)| m);
    let meta = match (package.text(Dataset::City)?, current_meta) {
        (Some(text), _) => {
            let check = match current {
                // Without new grids, the settings must fit the current ones.
                Some((c, _)) if !package.files.contains_key(&Dataset::Grids) => check_text(Dataset::City, &text, c, current_meta, None, true),
                _ => CityMeta::from_toml(&text).map(|m| TextChecked { dataset: Dataset::City, rows: 1, warnings: Vec::new(), meta: Some(m) }),
            };
            match check {
                Ok(checked) => {
                    let meta = checked.meta.clone().expect("city settings");
                    report.texts.push(checked);
                    meta
                }
                Err(why) => return refuse(report, format!("city.toml: {why}")),
            }
        }
        (None, Some(m)) => m.clone(),
        (None, None) => {
            return refuse(
                report,
                "the data directory holds no city yet and the package has no city.toml: add one (name, code, crs, hierarchy) or run `citygrid init` first"
                    .into(),
            );
        }
    };
    // A package of another city (its county code is not the current one's) replaces the whole
    // city: what it does not bring is cleared, never left over from the city before (the demo's
    // zones routing a real city's cases).
    let another_city = match (current, &meta.code) {
        (Some((c, m)), Some(code)) if package.files.contains_key(&Dataset::City) => {
            let current_code = m.code.clone().or_else(|| c.grids.first().map(|g| g.code.to_string()));
            current_code.is_some_and(|cc| cc != *code)
        }
        _ => false,
    };
    let mut clear = Vec::new();
    if another_city {
        if !package.files.contains_key(&Dataset::Grids) {
            return refuse(report, format!("city.toml names another city (code {}): its package must bring its grids", meta.code.as_deref().unwrap_or("")));
        }
        for d in [Dataset::Components, Dataset::Zones, Dataset::Units, Dataset::Rules, Dataset::Calendar, Dataset::Staff] {
            if !package.files.contains_key(&d) {
                clear.push(d);
            }
        }
        report.replaces_city = Some(format!(
            "city.toml names another city ({} {}): it replaces {:?} whole; what the package does not bring is cleared: {}",
            meta.code.as_deref().unwrap_or(""),
            meta.name,
            current.map(|(_, m)| m.name.as_str()).unwrap_or(""),
            if clear.is_empty() { "nothing".to_owned() } else { clear.iter().map(|d| d.name()).collect::<Vec<_>>().join(", ") }
        ));
    }
    let empty = match current {
        Some((c, _)) if c.hierarchy == meta.hierarchy && !another_city => None,
        Some(_) if !package.files.contains_key(&Dataset::Grids) => {
            return refuse(report, "city.toml changes the grid hierarchy: the package must bring the grids in the new scheme too".into());
        }
        _ => Some(CityBuilder::new(meta.hierarchy.clone(), ClassTable::builtin_components(), ClassTable::builtin_events()).finish().expect("an empty city")),
    };
    let start: &City = match (&empty, current) {
        (Some(e), _) => e,
        (None, Some((c, _))) => c,
        (None, None) => unreachable!("an empty city is made when there is no current one"),
    };
    let mut city: Option<City> = None;
    let mut layers = Vec::new();
    let mut units_changed = false;
    for dataset in [Dataset::Grids, Dataset::Components, Dataset::Zones] {
        let Some(path) = package.files.get(&dataset) else { continue };
        let base = city.as_ref().unwrap_or(start);
        let grids = GridIndex::build(base);
        let mut options = options.base.clone().unwrap_or_else(|| ImportOptions::new(LayerKind::Grids));
        options.layer = LayerKind::parse(dataset.name())?;
        if options.default_crs.is_none() {
            options.default_crs = meta.crs.clone();
        }
        let prepared = crate::ingest::prepare(|sink| read_layer_file(path, sink), &options, base, &grids)
            .map_err(|e| DatasetError::Package(format!("{}: {e}", file_name(path))))?;
        report.layers.push(prepared.report);
        match prepared.city {
            Some(new) => {
                units_changed |= prepared.units_changed;
                layers.push(dataset);
                city = Some(new);
            }
            None => {
                let why = report.layers.last().and_then(|r| r.rejection.clone()).unwrap_or_default();
                return refuse(report, format!("{}: {why}", file_name(path)));
            }
        }
    }
    if let (Some(code), Some(top)) = (&meta.code, city.as_ref().and_then(|c| c.grids.first()))
        && top.code.to_string() != *code
    {
        return refuse(report, format!("city.toml says the county code is {code}, the grid layer's top level is {}", top.code));
    }
    if let Some(text) = package.text(Dataset::Units)? {
        // The register's units (with their codes and phones) are units of the new city: the
        // responsibility list may name one that no layer does (an escalation unit).
        let units = crate::store::units_from_csv(&text).map_err(|e| DatasetError::Package(format!("units.csv: {e}")))?;
        let with = city.get_or_insert_with(|| start.clone());
        for unit in units {
            with.units.insert(unit);
        }
    }
    let served = city.as_ref().unwrap_or(start);
    if let (Some(csv), true, false) = (current_rules, layers.contains(&Dataset::Grids), package.files.contains_key(&Dataset::Rules))
        && let Some(why) = super::rules_problem(csv, start, served)
    {
        let strict = options.base.as_ref().is_some_and(|o| o.policy == crate::ingest::report::Policy::Strict);
        if let Some(grids) = report.layers.iter_mut().find(|r| r.layer == "grids") {
            grids.rules_problem = Some(why.clone());
        }
        if strict {
            return refuse(report, format!("strict: the current responsibility list does not fit the new grids: {why}"));
        }
    }
    let mut texts = Vec::new();
    for dataset in [Dataset::Units, Dataset::Rules, Dataset::Calendar, Dataset::Staff] {
        let Some(text) = package.text(dataset)? else { continue };
        let allow_shrink = options.base.as_ref().is_some_and(|o| o.allow_shrink);
        match check_text(dataset, &text, served, Some(&meta), current_rules.filter(|_| dataset == Dataset::Rules && !another_city), allow_shrink) {
            Ok(checked) => {
                texts.push((dataset, checked.rows, text));
                report.texts.push(checked);
            }
            Err(why) => return refuse(report, format!("{}: {why}", dataset)),
        }
    }
    if let Some(text) = package.text(Dataset::City)? {
        texts.push((Dataset::City, 1, text));
    }
    Ok(CheckedPackage { report, meta, city, layers, units_changed, texts, clear })
}

/// Writes `city` as a city package in the folder `dir` (created if missing): `city.toml`,
/// `grids.fgb`, `components.fgb`, `zones.fgb` (if any), `units.csv`, and `rules.csv` /
/// `calendar.toml` if given — what [`Package::open`] reads back. The demo generator's output.
pub fn write_package(
    dir: &Path,
    meta: &CityMeta,
    city: &City,
    rules_csv: Option<&str>,
    calendar_toml: Option<&str>,
    progress: &dyn Fn(u64, u64),
) -> Result<(), DatasetError> {
    let fail = |path: &Path, e: String| DatasetError::Package(format!("writing {}: {e}", path.display()));
    std::fs::create_dir_all(dir).map_err(|e| fail(dir, e.to_string()))?;
    let settings = meta.to_toml();
    let mut plan = vec![NewVersion::text(Dataset::City, 1, &settings)];
    for dataset in [Dataset::Grids, Dataset::Components, Dataset::Zones, Dataset::Units] {
        if dataset != Dataset::Zones || !city.zones.is_empty() {
            plan.push(NewVersion::of_city(dataset, city, meta, progress));
        }
    }
    if let Some(rules) = rules_csv {
        plan.push(NewVersion::text(Dataset::Rules, 0, rules));
    }
    if let Some(calendar) = calendar_toml {
        plan.push(NewVersion::text(Dataset::Calendar, 0, calendar));
    }
    for new in plan {
        let path = dir.join(format!("{}.{}", new.dataset.name(), new.dataset.ext()));
        let file = std::fs::File::create(&path).map_err(|e| fail(&path, e.to_string()))?;
        let mut w = std::io::BufWriter::new(file);
        (new.write)(&mut w).map_err(|e| fail(&path, e))?;
        std::io::Write::flush(&mut w).map_err(|e| fail(&path, e.to_string()))?;
    }
    Ok(())
}

/// Unpacks a ZIP into a new temp folder in `scratch`: the folder with the package's files (the
/// ZIP's top, or its one folder) and the temp folder that owns it. A ZIP that expands past 16 GiB
/// or past 100 times its size is refused as a zip bomb before anything is written.
fn unzip(file: std::fs::File, scratch: &Path) -> Result<(PathBuf, tempfile::TempDir), String> {
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut zip = zip::ZipArchive::new(file).map_err(|e| format!("not a folder or a ZIP: {e}"))?;
    let total: u64 = (0..zip.len()).filter_map(|i| zip.by_index_raw(i).ok().map(|f| f.size())).sum();
    if total > 16 << 30 || total > size.saturating_mul(100).max(1 << 30) {
        return Err(format!("the ZIP expands to {total} bytes from {size}: refused as a zip bomb"));
    }
    let tmp = tempfile::Builder::new().prefix(".package-").tempdir_in(scratch).map_err(|e| e.to_string())?;
    zip.extract(tmp.path()).map_err(|e| e.to_string())?;
    let mut dir = tmp.path().to_owned();
    let entries: Vec<_> =
        std::fs::read_dir(&dir).map_err(|e| e.to_string())?.flatten().filter(|e| !e.file_name().to_string_lossy().starts_with("__MACOSX")).collect();
    if let [only] = entries.as_slice()
        && only.path().is_dir()
    {
        dir = only.path();
    }
    Ok((dir, tmp))
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Streams a layer file of a package to `sink`, its format from its extension (else sniffed).
pub fn read_layer_file(path: &Path, sink: &mut dyn crate::ingest::FeatureSink) -> Result<crate::ingest::SourceLayer, IngestError> {
    let format = Format::from_extension(path)?;
    let bare_shp = path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("shp"));
    if bare_shp {
        return crate::ingest::shapefile::read_files(path, sink);
    }
    let file = std::fs::File::open(path)?;
    crate::ingest::stream_layer_file(file, format, &CsvOptions::default(), sink)
}
