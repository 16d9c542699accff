//! Responsible units (责任单位): competent departments (主管部门), owners (权属单位),
//! maintainers (养护单位), street offices.
//!
//! Units are interned: a component holds three 4-byte [`UnitId`]s, not three strings, so ten
//! million components share a few hundred unit records.

use std::collections::HashMap;

use serde::Serialize;

/// Index of a unit in its [`UnitTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct UnitId(pub u32);

/// A unit, known at least by its name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unit {
    /// The unit's code in the city's unit register, if the register has it.
    pub code: Option<String>,
    /// Full name, e.g. `吴中区市政工程管理处`; unique within a table.
    pub name: String,
    /// Duty phone, if known.
    pub phone: Option<String>,
}

/// Interned units, looked up by id or by exact name.
#[derive(Clone, Debug, Default)]
pub struct UnitTable {
    units: Vec<Unit>,
    by_name: HashMap<String, UnitId>,
}

impl UnitTable {
    pub fn new() -> UnitTable {
        UnitTable::default()
    }

    /// The id of the unit with this name (trimmed), adding a name-only unit if it is new.
    pub fn intern(&mut self, name: &str) -> UnitId {
        let name = name.trim();
        if let Some(&id) = self.by_name.get(name) {
            return id;
        }
        self.insert(Unit { code: None, name: name.to_owned(), phone: None })
    }

    /// Adds or updates a unit record from the register (matched by name).
    pub fn insert(&mut self, unit: Unit) -> UnitId {
        if let Some(&id) = self.by_name.get(&unit.name) {
            self.units[id.0 as usize] = unit;
            return id;
        }
        let id = UnitId(u32::try_from(self.units.len()).expect("fewer than 4 billion units"));
        self.by_name.insert(unit.name.clone(), id);
        self.units.push(unit);
        id
    }

    pub fn get(&self, id: UnitId) -> &Unit {
        &self.units[id.0 as usize]
    }

    pub fn find(&self, name: &str) -> Option<UnitId> {
        self.by_name.get(name.trim()).copied()
    }

    pub fn len(&self) -> usize {
        self.units.len()
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (UnitId, &Unit)> {
        self.units.iter().enumerate().map(|(i, u)| (UnitId(i as u32), u))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_returns_one_id_per_name() {
        let mut t = UnitTable::new();
        let a = t.intern("吴中区市政工程管理处");
        let b = t.intern(" 吴中区市政工程管理处 ");
        let c = t.intern("国网苏州供电公司");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(t.len(), 2);
        let a2 = t.insert(Unit { code: Some("U001".into()), name: "吴中区市政工程管理处".into(), phone: None });
        assert_eq!(a, a2);
        assert_eq!(t.get(a).code.as_deref(), Some("U001"));
    }
}
