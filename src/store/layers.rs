//! One layer at a time: a new version of the grid layer or of the component layer (from an
//! import), with a new unit register when the layer brings units the register lacks.
//!
//! Committed like [`Store::save_city`]: the new files are written (temp → fsync → rename →
//! fsync dir), then `manifest.json` is the single commit point; on any failure before it, the
//! new files are removed and the previous versions stay current.

use super::{CityMeta, Dataset, NewVersion, Store, StoreError, Versions};
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
        let levels: Vec<String> = meta.hierarchy.levels.iter().map(|l| format!("{} {} ({} digits)", l.name, l.name_en, l.code_digits)).collect();
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
    /// Writes `city`'s `layer` (grids, components or zones) as that layer's next version — and,
    /// with `with_units`, `city`'s units as the next unit register — and makes them current
    /// together, or not at all. The other datasets keep their current versions. `progress`
    /// gets (components written, components) for a component layer.
    pub fn save_layer(&mut self, layer: Dataset, city: &City, with_units: bool, source: &str, progress: &dyn Fn(u64, u64)) -> Result<Versions, StoreError> {
        if !layer.is_layer() {
            return Err(StoreError::Invalid(format!("{layer} is not a layer (grids, components, zones)")));
        }
        let meta = self.manifest.city.clone().ok_or_else(|| StoreError::Empty(self.dir.clone()))?;
        if meta.hierarchy != city.hierarchy {
            return Err(StoreError::Invalid("the city's hierarchy differs from the data directory's".into()));
        }
        let mut plan = vec![NewVersion::of_city(layer, city, &meta, progress)];
        if with_units {
            plan.push(NewVersion::of_city(Dataset::Units, city, &meta, progress));
        }
        self.save_versions(plan, None, source, None)
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
        let meta = demo.meta();
        store.save_city(&meta, &demo.city, Some(&demo.rules_csv), "test", &|_, _| {}).unwrap();
        let mut city = store.load_city(&|_, _| {}).unwrap().city;
        city.components.truncate(10);
        city.units.intern("新养护单位");
        let v = store.save_layer(Dataset::Components, &city, true, "import", &|_, _| {}).unwrap();
        assert_eq!((v.get("grids"), v.get("components"), v.get("units"), v.get("rules")), (Some(1), Some(2), Some(2), Some(1)));
        let reopened = Store::open(dir.path()).unwrap();
        let loaded = reopened.load_city(&|_, _| {}).unwrap();
        assert_eq!(loaded.city.components.len(), 10);
        assert!(loaded.city.units.find("新养护单位").is_some());
        assert_eq!(reopened.dataset("components").unwrap().versions[1].source, "import");
        assert!(store.save_layer(Dataset::Rules, &city, false, "x", &|_, _| {}).is_err());
        assert_eq!(Store::open(dir.path()).unwrap().versions(), v, "a refused save changes nothing");
    }
}
