//! `manifest.json`: the commit point of the data directory.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::CityMeta;

/// Format version of manifest.json.
pub const FORMAT: u32 = 1;

/// What the data directory holds: per dataset, its versions and which one is current.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`] of the citygrid that wrote it.
    pub format: u32,
    /// The city settings as committed with the current versions. `city.toml` is the copy that is
    /// read at load (and may be edited); this one lets [`super::Store::open`] finish or undo a
    /// `city.toml` write that a crash interrupted, and restore a lost `city.toml`.
    pub city: Option<CityMeta>,
    pub datasets: BTreeMap<String, History>,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest { format: FORMAT, city: None, datasets: BTreeMap::new() }
    }
}

/// One dataset's history (a layer, the unit register, the rules…): its current version and
/// every version kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub current: u64,
    pub versions: Vec<VersionInfo>,
    /// Highest version number ever given out, kept when retention lets that version's file go,
    /// so that a number is never used twice (0 in manifests written before retention existed:
    /// then the highest listed version is the highest ever given).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub last: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl History {
    /// Highest version number ever committed.
    pub fn latest(&self) -> u64 {
        self.versions.iter().map(|v| v.version).max().unwrap_or(0).max(self.last)
    }
}

/// One committed version of a dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VersionInfo {
    pub version: u64,
    /// Path relative to the data directory.
    pub file: String,
    pub features: u64,
    pub bytes: u64,
    /// RFC 3339, UTC.
    pub created: String,
    /// Where it came from, e.g. the command that made it.
    pub source: String,
}

impl Manifest {
    /// The history of the dataset of this name (`grids`, `components`, …), if ever saved.
    pub fn dataset(&self, name: &str) -> Option<&History> {
        self.datasets.get(name)
    }

    /// The current version of a dataset.
    pub fn current(&self, name: &str) -> Option<&VersionInfo> {
        let d = self.datasets.get(name)?;
        d.versions.iter().find(|v| v.version == d.current)
    }

    /// Whether `file` (relative to the data directory) is a committed version of any dataset.
    pub fn lists_file(&self, file: &str) -> bool {
        self.datasets.values().any(|d| d.versions.iter().any(|v| v.file == file))
    }

    /// Adds a version and makes it current.
    pub fn add_version(&mut self, name: &str, info: VersionInfo) {
        let d = self.datasets.entry(name.to_owned()).or_insert(History { current: 0, versions: Vec::new(), last: 0 });
        d.current = info.version;
        d.last = d.last.max(info.version);
        d.versions.push(info);
    }
}
