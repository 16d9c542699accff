//! One layer at a time: a new version of the grid layer or of the component layer (from an
//! import), with a new unit register when the layer brings units the register lacks.
//!
//! Committed like [`Store::save_city`]: the new files are written (temp → fsync → rename →
//! fsync dir), then `manifest.json` is the single commit point; on any failure before it, the
//! new files are removed and the previous versions stay current.

use std::path::PathBuf;

use super::manifest::VersionInfo;
use super::{COMPONENTS, CityMeta, Def, GRIDS, Store, StoreError, UNITS, Versions, atomic, fgb, write_units};
use crate::model::City;

/// Title and description written into the layer files' headers.
pub(super) struct LayerTexts {
    pub grids_text: String,
    pub grids_description: String,
    pub components_text: String,
    pub components_description: String,
}

impl LayerTexts {
    pub(super) fn of(meta: &CityMeta) -> LayerTexts {
        let levels: Vec<String> = meta
            .hierarchy
            .levels
            .iter()
            .map(|l| format!("{} {} ({} digits)", l.name, l.name_en, l.code_digits))
            .collect();
        LayerTexts {
            grids_text: format!("{}: grids of all levels", meta.name),
            components_text: format!("{}: city components (部件)", meta.name),
            grids_description: format!(
                "citygrid grid layer of {}. Levels ({}): {}. Fields: code, name, level (1 = top), parent (code), \
                 unit (name), chief_name, chief_phone, valid_from, valid_to (YYYY-MM-DD).",
                meta.name,
                meta.hierarchy.scheme,
                levels.join(" > ")
            ),
            components_description: format!(
                "citygrid component layer of {}. Fields: code (16 digits), class (4 digits), name, dept, owner, \
                 maintainer (unit names), status (完好/破损/丢失/占用), grid (unit grid code), created, updated \
                 (YYYY-MM-DD), accuracy (A/B/C).",
                meta.name
            ),
        }
    }
}

impl Store {
    /// Writes `city`'s `layer` (`grids` or `components`) as that layer's next version — and,
    /// with `with_units`, `city`'s units as the next unit register — and makes them current
    /// together, or not at all. The other datasets keep their current versions. `progress`
    /// gets (components written, components) for a component layer.
    pub fn save_layer(
        &mut self,
        layer: &str,
        city: &City,
        with_units: bool,
        source: &str,
        progress: &dyn Fn(u64, u64),
    ) -> Result<Versions, StoreError> {
        let def: &Def = match layer {
            "grids" => &GRIDS,
            "components" => &COMPONENTS,
            other => return Err(StoreError::Invalid(format!("{other:?} is not a layer (grids, components)"))),
        };
        let meta = self.manifest.city.clone().ok_or_else(|| StoreError::Empty(self.dir.clone()))?;
        if meta.hierarchy != city.hierarchy {
            return Err(StoreError::Invalid("the city's hierarchy differs from the data directory's".into()));
        }
        let mut written = Vec::new();
        let result = self.save_layer_inner(def, &meta, city, with_units, source, progress, &mut written);
        if result.is_err() {
            // Nothing was committed: take back what this save put in place.
            for file in &written {
                let _ = std::fs::remove_file(file);
            }
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn save_layer_inner(
        &mut self,
        def: &Def,
        meta: &CityMeta,
        city: &City,
        with_units: bool,
        source: &str,
        progress: &dyn Fn(u64, u64),
        written: &mut Vec<PathBuf>,
    ) -> Result<Versions, StoreError> {
        let texts = LayerTexts::of(meta);
        let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut next = self.manifest.clone();
        let mut plan = vec![def];
        if with_units {
            plan.push(&UNITS);
        }
        let total = city.components.len() as u64;
        for def in plan {
            let version = self.manifest.dataset(def.name).map_or(0, |d| d.latest()) + 1;
            let rel = format!("{}/{version}.{}", def.folder, def.ext);
            let path = self.dir.join(&rel);
            atomic::create_dirs(&self.dir, def.folder)?;
            let (staged, features) = match def.name {
                "grids" => {
                    let text = fgb::LayerText { title: &texts.grids_text, description: &texts.grids_description };
                    (atomic::stage(&path, |w| fgb::write_grids(w, city, &text))?, city.grids.len() as u64)
                }
                "components" => {
                    let text = fgb::LayerText { title: &texts.components_text, description: &texts.components_description };
                    let staged = atomic::stage(&path, |w| fgb::write_components(w, city, &text, &|done| progress(done, total)))?;
                    (staged, total)
                }
                _ => (atomic::stage(&path, |w| write_units(w, &city.units))?, city.units.len() as u64),
            };
            let bytes = staged.commit()?;
            written.push(path);
            next.add_version(
                def.name,
                VersionInfo { version, file: rel, features, bytes, created: created.clone(), source: source.to_owned() },
            );
        }
        self.commit_manifest(next)?;
        written.clear();
        progress(total, total);
        Ok(self.versions())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::{DemoSpec, Preset, generate};

    #[test]
    fn one_layer_becomes_a_new_version_and_the_others_stay() {
        let dir = tempfile::tempdir().unwrap();
        let demo = generate(&DemoSpec { preset: Preset::Tiny, components: None, seed: 1 }, &|_, _| {}).unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let meta = CityMeta { name: demo.name.clone(), center: demo.center, hierarchy: demo.city.hierarchy.clone() };
        store.save_city(&meta, &demo.city, Some(&demo.rules_csv), "test", &|_, _| {}).unwrap();
        let mut city = store.load_city(&|_, _| {}).unwrap().city;
        city.components.truncate(10);
        city.units.intern("新养护单位");
        let v = store.save_layer("components", &city, true, "import", &|_, _| {}).unwrap();
        assert_eq!((v.get("grids"), v.get("components"), v.get("units"), v.get("rules")), (Some(1), Some(2), Some(2), Some(1)));
        let reopened = Store::open(dir.path()).unwrap();
        let loaded = reopened.load_city(&|_, _| {}).unwrap();
        assert_eq!(loaded.city.components.len(), 10);
        assert!(loaded.city.units.find("新养护单位").is_some());
        assert_eq!(reopened.dataset("components").unwrap().versions[1].source, "import");
        assert!(store.save_layer("rules", &city, false, "x", &|_, _| {}).is_err());
        assert_eq!(Store::open(dir.path()).unwrap().versions(), v, "a refused save changes nothing");
    }
}
