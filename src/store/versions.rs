//! One dataset at a time: a new version of the responsibility list, the version history of a
//! dataset, and rollback (making an older kept version current again).
//!
//! Each change is committed by writing `manifest.json` (temp → fsync → rename → fsync dir),
//! like [`Store::save_city`]: a crash before the rename leaves the previous version current,
//! and the next [`Store::open`] removes the orphan version file.

use super::manifest::{History, Manifest, VersionInfo};
use super::{CityMeta, Dataset, NewVersion, Store, StoreError, atomic};

impl Store {
    /// The version history of a dataset (`grids`, `components`, `units`, `rules`, …).
    pub fn dataset(&self, name: &str) -> Option<&History> {
        self.manifest.dataset(name)
    }

    /// Writes `csv` as the next version of the responsibility list and makes it current.
    /// `rules` is the number of rules it holds (for the history). Returns the new version.
    pub fn save_rules(&mut self, csv: &str, rules: u64, source: &str) -> Result<u64, StoreError> {
        let versions = self.save_versions(vec![NewVersion::text(Dataset::Rules, rules, csv)], None, source, None)?;
        Ok(versions.get(Dataset::Rules.name()).expect("saved"))
    }

    /// The text of a version of the responsibility list.
    pub fn read_rules(&self, version: u64) -> Result<String, StoreError> {
        let info = self.version_info(Dataset::Rules.name(), version)?;
        let path = self.dir.join(&info.file);
        std::fs::read_to_string(&path).map_err(StoreError::io(&path))
    }

    /// Makes a kept `version` of `dataset` current again (rollback, or roll forward). For the
    /// city settings, `city.toml` is rewritten to that version.
    pub fn set_current(&mut self, dataset: &str, version: u64) -> Result<(), StoreError> {
        self.writer()?;
        let info = self.version_info(dataset, version)?.clone();
        let path = self.dir.join(&info.file);
        if !path.is_file() {
            return Err(StoreError::Invalid(format!("{dataset} version {version}: its file {} is gone", info.file)));
        }
        let mut next = self.manifest.clone();
        next.datasets.get_mut(dataset).expect("checked").current = version;
        let pruned = self.retention.prune(&mut next, &self.versions(), chrono::Utc::now());
        if dataset == Dataset::City.name() {
            let text = std::fs::read_to_string(&path).map_err(StoreError::io(&path))?;
            let meta = CityMeta::from_toml(&text).map_err(|message| StoreError::CityToml { path: path.clone(), message })?;
            let staged = super::write_city_toml(&self.dir.join(super::CITY_TOML), &meta)?;
            next.city = Some(meta);
            self.commit_manifest(next)?;
            self.remove_pruned(&pruned);
            return staged.commit().map(|_| ());
        }
        self.commit_manifest(next)?;
        self.remove_pruned(&pruned);
        Ok(())
    }

    /// Makes the versions in `before` current again, and a dataset `before` lacks current in
    /// none of its versions (they stay listed, so their numbers are never given out again):
    /// the undo of a save whose new snapshot could not be served.
    pub fn restore(&mut self, before: &super::Versions) -> Result<(), StoreError> {
        let mut next = self.manifest.clone();
        for (name, history) in next.datasets.iter_mut() {
            history.current = before.get(name).unwrap_or(0);
        }
        if before.get(Dataset::City.name()).is_none() && self.manifest.current(Dataset::City.name()).is_some() {
            // The city itself was created by the save being undone.
            next.city = None;
        } else if let (Some(v), true) = (before.get(Dataset::City.name()), before.get(Dataset::City.name()) != self.versions().get(Dataset::City.name())) {
            let info = self.version_info(Dataset::City.name(), v)?;
            let path = self.dir.join(&info.file);
            let text = std::fs::read_to_string(&path).map_err(StoreError::io(&path))?;
            next.city = Some(CityMeta::from_toml(&text).map_err(|message| StoreError::CityToml { path, message })?);
        }
        let meta = next.city.clone();
        self.commit_manifest(next)?;
        if let Some(meta) = meta {
            super::write_city_toml(&self.dir.join(super::CITY_TOML), &meta)?.commit()?;
        }
        Ok(())
    }

    fn version_info(&self, dataset: &str, version: u64) -> Result<&VersionInfo, StoreError> {
        let d = self.manifest.dataset(dataset).ok_or_else(|| StoreError::UnknownVersion { dataset: dataset.to_owned(), version, known: Vec::new() })?;
        d.versions.iter().find(|v| v.version == version).ok_or_else(|| StoreError::UnknownVersion {
            dataset: dataset.to_owned(),
            version,
            known: d.versions.iter().map(|v| v.version).collect(),
        })
    }

    /// Writes `next` as `manifest.json` (the commit point) and adopts it.
    pub(super) fn commit_manifest(&mut self, next: Manifest) -> Result<(), StoreError> {
        self.writer()?;
        let path = self.dir.join(super::MANIFEST);
        atomic::stage(&path, |w| {
            serde_json::to_writer_pretty(&mut *w, &next).map_err(|e| e.to_string())?;
            w.write_all(b"\n").map_err(|e| e.to_string())
        })?
        .commit()?;
        self.manifest = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::{DemoSpec, Preset, generate};

    fn tiny_store(dir: &std::path::Path) -> Store {
        let demo = generate(&DemoSpec { preset: Preset::Tiny, components: None, seed: 1 }, &|_, _| {}).unwrap();
        let mut store = Store::open(dir).unwrap();
        let meta = demo.meta();
        store.save_city(&meta, &demo.city, Some(&demo.rules_csv), "test", &|_, _| {}).unwrap();
        store
    }

    #[test]
    fn a_new_rules_version_becomes_current_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = tiny_store(dir.path());
        let v = store.save_rules("case_kind,case_type\n", 0, "PUT /v1/rules").unwrap();
        assert_eq!(v, 2);
        assert_eq!(store.versions().get("rules"), Some(2));
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.versions().get("rules"), Some(2));
        assert_eq!(store.read_rules(2).unwrap(), "case_kind,case_type\n");
        assert_eq!(store.load_city(&|_, _| {}).unwrap().rules_csv.as_deref(), Some("case_kind,case_type\n"));
        let history: Vec<u64> = store.dataset("rules").unwrap().versions.iter().map(|v| v.version).collect();
        assert_eq!(history, [1, 2]);
    }

    #[test]
    fn rollback_makes_an_old_version_current_and_unknown_versions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = tiny_store(dir.path());
        let first = store.read_rules(1).unwrap();
        store.save_rules("case_kind\n", 0, "test").unwrap();
        store.set_current("rules", 1).unwrap();
        let store2 = Store::open(dir.path()).unwrap();
        assert_eq!(store2.versions().get("rules"), Some(1));
        assert_eq!(store2.load_city(&|_, _| {}).unwrap().rules_csv.unwrap(), first);
        // The next save still gets a fresh number.
        assert_eq!(store.save_rules("case_kind\n", 0, "test").unwrap(), 3);
        let e = store.set_current("rules", 9).unwrap_err().to_string();
        assert!(e.contains("rules") && e.contains('9') && e.contains("1, 2, 3"), "{e}");
        assert!(store.set_current("nonsense", 1).is_err());
        // Layers roll back the same way.
        store.set_current("grids", 1).unwrap();
    }
}
