//! Class tables: component classes (部件分类) and event classes (事件分类).
//!
//! A table is data, not an enum: the crate ships the common CJ/T 214 classes
//! (`data/*.csv`) and a city extends or renames them with its own CSV file of the same
//! columns, `code,name,name_en` (local classes are usually major 21, e.g. `2101`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::{ClassCode, ModelError};

const BUILTIN_COMPONENT_CLASSES: &str = include_str!("../../data/component_classes.csv");
const BUILTIN_EVENT_CLASSES: &str = include_str!("../../data/event_classes.csv");

/// One class: a major class (`01`) or a subclass (`0101`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClassEntry {
    pub code: ClassCode,
    /// Chinese name as in the standard, e.g. `上水井盖`.
    pub name: String,
    /// English name, e.g. `water-supply manhole cover`.
    pub name_en: String,
}

/// Which kind of case a table classifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassKind {
    Component,
    Event,
}

/// A class table: every subclass has its major class in the table.
#[derive(Clone, Debug)]
pub struct ClassTable {
    kind: ClassKind,
    entries: BTreeMap<ClassCode, ClassEntry>,
}

#[derive(serde::Deserialize)]
struct Row {
    code: String,
    name: String,
    #[serde(default)]
    name_en: String,
}

impl ClassTable {
    /// The built-in component class table.
    pub fn builtin_components() -> ClassTable {
        Self::from_csv(ClassKind::Component, BUILTIN_COMPONENT_CLASSES.as_bytes(), "built-in component classes")
            .expect("the built-in component class table is valid")
    }

    /// The built-in event class table.
    pub fn builtin_events() -> ClassTable {
        Self::from_csv(ClassKind::Event, BUILTIN_EVENT_CLASSES.as_bytes(), "built-in event classes").expect("the built-in event class table is valid")
    }

    /// Reads a table from CSV with the header `code,name,name_en` (UTF-8; a BOM, as Excel
    /// writes it, is accepted).
    pub fn from_csv(kind: ClassKind, csv: &[u8], source: &str) -> Result<ClassTable, ModelError> {
        let mut table = ClassTable { kind, entries: BTreeMap::new() };
        table.merge_csv(csv, source)?;
        Ok(table)
    }

    /// Adds the classes of a city's own CSV file; a code already present is renamed.
    pub fn extend_from_file(&mut self, path: &Path) -> Result<(), ModelError> {
        let bytes = std::fs::read(path).map_err(|e| ModelError::ClassTable { source_name: path.display().to_string(), line: 0, reason: e.to_string() })?;
        self.merge_csv(&bytes, &path.display().to_string())
    }

    fn merge_csv(&mut self, csv: &[u8], source: &str) -> Result<(), ModelError> {
        let csv = csv.strip_prefix("\u{feff}".as_bytes()).unwrap_or(csv);
        let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(csv);
        for (i, row) in reader.deserialize::<Row>().enumerate() {
            let line = i + 2;
            let err = |reason: String| ModelError::ClassTable { source_name: source.into(), line, reason };
            let row = row.map_err(|e| err(e.to_string()))?;
            let code = ClassCode::parse(&row.code).map_err(|e| err(e.to_string()))?;
            if row.name.is_empty() {
                return Err(err(format!("class {code} has no name")));
            }
            self.entries.insert(code, ClassEntry { code, name: row.name, name_en: row.name_en });
        }
        if let Some(orphan) = self.entries.keys().find(|c| !self.entries.contains_key(&c.major_class())) {
            return Err(ModelError::ClassTable {
                source_name: source.into(),
                line: 0,
                reason: format!("subclass {orphan} has no major class {}", orphan.major_class()),
            });
        }
        Ok(())
    }

    pub fn kind(&self) -> ClassKind {
        self.kind
    }

    pub fn get(&self, code: ClassCode) -> Option<&ClassEntry> {
        self.entries.get(&code)
    }

    /// The major class entry of a code (itself if it is a major class).
    pub fn major_of(&self, code: ClassCode) -> Option<&ClassEntry> {
        self.entries.get(&code.major_class())
    }

    /// All entries, in code order (majors before their subclasses).
    pub fn iter(&self) -> impl Iterator<Item = &ClassEntry> {
        self.entries.values()
    }

    /// Subclasses only, in code order.
    pub fn subclasses(&self) -> impl Iterator<Item = &ClassEntry> {
        self.entries.values().filter(|e| !e.code.is_major())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_tables_hold_the_reference_classes() {
        let c = ClassTable::builtin_components();
        let name = |s: &str| c.get(ClassCode::parse(s).unwrap()).map(|e| e.name.as_str());
        assert_eq!(name("0101"), Some("上水井盖"));
        assert_eq!(name("0118"), Some("路灯"));
        assert_eq!(name("0136"), Some("监控电子眼"));
        assert_eq!(name("0604"), Some("水域护栏"));
        assert_eq!(c.major_of(ClassCode::parse("0402").unwrap()).unwrap().name, "园林绿化");
        let e = ClassTable::builtin_events();
        assert_eq!(e.get(ClassCode::parse("0102").unwrap()).unwrap().name, "暴露垃圾");
        assert_eq!(e.get(ClassCode::parse("0510").unwrap()).unwrap().name, "露天烧烤");
        assert!(e.subclasses().count() > 40);
    }

    #[test]
    fn a_city_file_adds_local_classes_and_renames() {
        let mut c = ClassTable::builtin_components();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("local.csv");
        std::fs::write(&path, "\u{feff}code,name,name_en\n2101,共享单车停放点,shared-bike parking\n0118,路灯(含景观灯),street lamp\n").unwrap();
        c.extend_from_file(&path).unwrap();
        assert_eq!(c.get(ClassCode::parse("2101").unwrap()).unwrap().name, "共享单车停放点");
        assert_eq!(c.get(ClassCode::parse("0118").unwrap()).unwrap().name, "路灯(含景观灯)");
    }

    #[test]
    fn bad_class_files_are_rejected_with_their_line() {
        let bad = [("code,name,name_en\n0101,上水井盖,x\n01x1,坏,y\n", 3), ("code,name,name_en\n2201,孤儿,orphan\n", 0), ("code,name,name_en\n0101,,x\n", 2)];
        for (csv, line) in bad {
            match ClassTable::from_csv(ClassKind::Component, csv.as_bytes(), "t.csv") {
                Err(ModelError::ClassTable { line: l, .. }) => assert_eq!(l, line, "{csv}"),
                other => panic!("{csv}: {other:?}"),
            }
        }
    }
}
