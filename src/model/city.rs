//! The whole in-memory model of one city: grids of every level, components, units, classes.
//!
//! Built with [`CityBuilder`] from plain field values (as layer files hold them), which checks
//! every code and every link: a grid's level matches its code length, its parent is one level
//! up and its code extends the parent's, a component's code agrees with its class.

use std::collections::HashMap;

use chrono::NaiveDate;
use geo_types::{Coord, MultiPolygon};

use super::{Accuracy, Chief, ClassTable, Component, ComponentCode, Grid, GridCode, GridId, Hierarchy, ModelError, Status, UnitTable};

/// Index of an interned string in [`Names`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct NameId(pub u32);

/// Interned strings (component names repeat the class name for most components).
#[derive(Clone, Debug, Default)]
pub struct Names {
    strings: Vec<Box<str>>,
    ids: HashMap<Box<str>, NameId>,
}

impl Names {
    pub fn intern(&mut self, s: &str) -> NameId {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = NameId(self.strings.len() as u32);
        self.strings.push(s.into());
        self.ids.insert(s.into(), id);
        id
    }
    pub fn get(&self, id: NameId) -> &str {
        &self.strings[id.0 as usize]
    }
    pub fn len(&self) -> usize {
        self.strings.len()
    }
    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }
}

/// One city: everything the layers of a data directory say, resolved and checked.
#[derive(Clone, Debug)]
pub struct City {
    pub hierarchy: Hierarchy,
    /// Grids of all levels, ordered by level then code; `GridId` indexes this.
    pub grids: Vec<Grid>,
    pub components: Vec<Component>,
    /// Responsibility polygons of every zone layer, by layer then id.
    pub zones: Vec<super::Zone>,
    pub units: UnitTable,
    pub names: Names,
    pub component_classes: ClassTable,
    pub event_classes: ClassTable,
    grid_by_code: HashMap<GridCode, GridId>,
    component_by_code: HashMap<ComponentCode, u32>,
    /// A city without grids yet (components imported first): the unit grid each component's
    /// record names, by component index, kept as recorded until a grid layer arrives and
    /// resolves it. Empty once the city has grids.
    unresolved_grids: HashMap<u32, GridCode>,
}

impl City {
    pub fn grid(&self, id: GridId) -> &Grid {
        &self.grids[id.0 as usize]
    }

    pub fn grid_by_code(&self, code: GridCode) -> Option<GridId> {
        self.grid_by_code.get(&code).copied()
    }

    /// The unit grid the record of component `index` names (所在单元网格): resolved
    /// ([`Component::grid`]), or — in a city without grids yet — as recorded.
    pub fn recorded_grid_code(&self, index: usize) -> Option<GridCode> {
        match self.components[index].grid {
            Some(g) => Some(self.grid(g).code),
            None => self.unresolved_grids.get(&(index as u32)).copied(),
        }
    }

    pub fn component_by_code(&self, code: ComponentCode) -> Option<&Component> {
        self.component_by_code.get(&code).map(|&i| &self.components[i as usize])
    }

    /// The grid and its ancestors, top level (district) first.
    pub fn chain(&self, id: GridId) -> Vec<GridId> {
        let mut chain = vec![id];
        while let Some(parent) = self.grid(*chain.last().expect("non-empty")).parent {
            chain.push(parent);
        }
        chain.reverse();
        chain
    }

    /// Grids at one level (0 = top).
    pub fn grids_at(&self, level: usize) -> impl Iterator<Item = (GridId, &Grid)> {
        self.grids.iter().enumerate().filter(move |(_, g)| g.level as usize == level).map(|(i, g)| (GridId(i as u32), g))
    }

    /// Number of grids at each level, top first.
    pub fn level_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.hierarchy.levels.len()];
        for g in &self.grids {
            counts[g.level as usize] += 1;
        }
        counts
    }

    /// Direct children of each grid, indexed by `GridId`.
    pub fn children(&self) -> Vec<Vec<GridId>> {
        let mut children = vec![Vec::new(); self.grids.len()];
        for (i, g) in self.grids.iter().enumerate() {
            if let Some(p) = g.parent {
                children[p.0 as usize].push(GridId(i as u32));
            }
        }
        children
    }
}

/// A grid as a layer file holds it: plain text fields.
#[derive(Clone, Debug, Default)]
pub struct GridFields<'a> {
    pub code: &'a str,
    pub name: &'a str,
    /// 1-based level as written in files (1 = district), if the file has the field.
    pub level: Option<i64>,
    pub parent: &'a str,
    pub unit: &'a str,
    pub chief_name: &'a str,
    pub chief_phone: &'a str,
    pub valid_from: &'a str,
    pub valid_to: &'a str,
}

/// A component as a layer file holds it: plain text fields and a lon/lat point.
#[derive(Clone, Debug, Default)]
pub struct ComponentFields<'a> {
    pub code: &'a str,
    pub class: &'a str,
    pub name: &'a str,
    pub dept: &'a str,
    pub owner: &'a str,
    pub maintainer: &'a str,
    pub status: &'a str,
    pub grid: &'a str,
    pub created: &'a str,
    pub updated: &'a str,
    pub accuracy: &'a str,
    pub lon: f64,
    pub lat: f64,
}

fn parse_date(field: &'static str, s: &str) -> Result<Option<NaiveDate>, ModelError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let bad = || ModelError::BadValue { field, value: s.to_owned(), expected: "a date YYYY-MM-DD (or YYYY/MM/DD)" };
    // Accept a bare date or the date part of a date-time, with `-` or `/` (GDAL's CSV and
    // Excel write `2019/10/26 00:00:00`). Parsed by hand: a city loads millions of these.
    let b = s.as_bytes();
    if b.len() < 10 || !matches!(b[4], b'-' | b'/') || b[7] != b[4] || (b.len() > 10 && !matches!(b[10], b'T' | b' ')) {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> { b[r].iter().try_fold(0u32, |n, &d| d.is_ascii_digit().then(|| n * 10 + (d - b'0') as u32)) };
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return Err(bad());
    };
    NaiveDate::from_ymd_opt(y as i32, m, d).map(Some).ok_or_else(bad)
}

fn non_empty(s: &str) -> Option<&str> {
    let t = s.trim();
    (!t.is_empty()).then_some(t)
}

/// Builds a [`City`] from field values, grids first, then components.
pub struct CityBuilder {
    city: City,
    pending_parents: Vec<Option<GridCode>>,
    grids_resolved: bool,
}

impl CityBuilder {
    pub fn new(hierarchy: Hierarchy, component_classes: ClassTable, event_classes: ClassTable) -> CityBuilder {
        CityBuilder {
            city: City {
                hierarchy,
                grids: Vec::new(),
                components: Vec::new(),
                zones: Vec::new(),
                units: UnitTable::new(),
                names: Names::default(),
                component_classes,
                event_classes,
                grid_by_code: HashMap::new(),
                component_by_code: HashMap::new(),
                unresolved_grids: HashMap::new(),
            },
            pending_parents: Vec::new(),
            grids_resolved: false,
        }
    }

    /// Units known from a register, so they carry codes and phones.
    pub fn units_mut(&mut self) -> &mut UnitTable {
        &mut self.city.units
    }

    /// Adds one grid. Its parent may come later; links are checked when components start or at
    /// [`CityBuilder::finish`].
    pub fn add_grid(&mut self, f: &GridFields<'_>, geometry: MultiPolygon<f64>) -> Result<GridId, ModelError> {
        assert!(!self.grids_resolved, "grids must be added before components");
        let (code, level) = GridCode::parse(f.code.trim(), &self.city.hierarchy)?;
        if let Some(declared) = f.level
            && declared != level as i64 + 1
        {
            return Err(ModelError::Hierarchy(format!(
                "grid {code} says level {declared} but its {} digits make it level {} ({})",
                code.digits(),
                level + 1,
                self.city.hierarchy.levels[level].name
            )));
        }
        let parent = match non_empty(f.parent) {
            Some(p) => Some(GridCode::parse(p, &self.city.hierarchy)?.0),
            None => None,
        };
        let name = non_empty(f.name).ok_or_else(|| ModelError::BadValue { field: "name", value: String::new(), expected: "a grid name" })?;
        let chief = match (non_empty(f.chief_name), non_empty(f.chief_phone)) {
            (None, None) => None,
            (n, p) => Some(Chief { name: n.unwrap_or("").into(), phone: p.unwrap_or("").into() }),
        };
        let unit = non_empty(f.unit).map(|u| self.city.units.intern(u));
        let grid = Grid {
            code,
            name: name.into(),
            level: level as u8,
            parent: None,
            unit,
            chief,
            valid_from: parse_date("valid_from", f.valid_from)?,
            valid_to: parse_date("valid_to", f.valid_to)?,
            geometry,
        };
        if let (Some(a), Some(b)) = (grid.valid_from, grid.valid_to)
            && b < a
        {
            return Err(ModelError::BadValue { field: "valid_to", value: b.to_string(), expected: "a date on or after valid_from" });
        }
        let id = GridId(self.city.grids.len() as u32);
        if self.city.grid_by_code.insert(code, id).is_some() {
            return Err(ModelError::Duplicate { what: "grid code", code: code.to_string() });
        }
        self.city.grids.push(grid);
        self.pending_parents.push(parent);
        Ok(id)
    }

    fn resolve_grids(&mut self) -> Result<(), ModelError> {
        if self.grids_resolved {
            return Ok(());
        }
        self.grids_resolved = true;
        // Order grids by (level, code) so ids are stable whatever order the file had.
        let mut order: Vec<usize> = (0..self.city.grids.len()).collect();
        order.sort_by_key(|&i| (self.city.grids[i].level, self.city.grids[i].code));
        let mut grids: Vec<Option<Grid>> = std::mem::take(&mut self.city.grids).into_iter().map(Some).collect();
        let parents = std::mem::take(&mut self.pending_parents);
        let mut sorted_parents = Vec::with_capacity(order.len());
        for &i in &order {
            self.city.grids.push(grids[i].take().expect("each once"));
            sorted_parents.push(parents[i]);
        }
        self.city.grid_by_code = self.city.grids.iter().enumerate().map(|(i, g)| (g.code, GridId(i as u32))).collect();
        for (i, parent) in sorted_parents.into_iter().enumerate() {
            let g = &self.city.grids[i];
            let h = &self.city.hierarchy;
            let parent_id = match (g.level, parent) {
                (0, None) => None,
                (0, Some(p)) => {
                    return Err(ModelError::Hierarchy(format!("grid {} is at the top level ({}) but names parent {p}", g.code, h.levels[0].name)));
                }
                (_, None) => {
                    return Err(ModelError::Hierarchy(format!("grid {} ({}) has no parent", g.code, h.levels[g.level as usize].name)));
                }
                (_, Some(p)) => {
                    let Some(&pid) = self.city.grid_by_code.get(&p) else {
                        return Err(ModelError::Hierarchy(format!("grid {} names parent {p}, which is not in the layer", g.code)));
                    };
                    let pg = &self.city.grids[pid.0 as usize];
                    if pg.level + 1 != g.level {
                        return Err(ModelError::Hierarchy(format!(
                            "grid {} ({}) names parent {p} at level {} ({}); it must be one level up",
                            g.code,
                            h.levels[g.level as usize].name,
                            pg.level + 1,
                            h.levels[pg.level as usize].name
                        )));
                    }
                    if !g.code.extends(p) {
                        return Err(ModelError::Hierarchy(format!("grid code {} does not extend its parent's code {p}", g.code)));
                    }
                    Some(pid)
                }
            };
            self.city.grids[i].parent = parent_id;
        }
        Ok(())
    }

    /// Adds one component; its recorded grid must be a unit grid of this city if given — or, in a
    /// city with no grids yet, a well-formed unit-grid code, kept as recorded
    /// ([`City::recorded_grid_code`]) until a grid layer resolves it. All or nothing: a component
    /// refused (bad value, duplicate code) leaves no name or unit behind.
    pub fn add_component(&mut self, f: &ComponentFields<'_>) -> Result<(), ModelError> {
        self.resolve_grids()?;
        let code = ComponentCode::parse(f.code.trim())?;
        let class = match non_empty(f.class) {
            Some(c) => {
                let c = super::ClassCode::parse(c)?;
                code.check_class(c)?;
                c
            }
            None => code.class(),
        };
        if self.city.component_classes.get(class).is_none() {
            return Err(ModelError::UnknownClass { code: class.to_string() });
        }
        if !(f.lon.is_finite() && f.lat.is_finite() && (-180.0..=180.0).contains(&f.lon) && (-90.0..=90.0).contains(&f.lat)) {
            return Err(ModelError::BadValue {
                field: "geometry",
                value: format!("{}, {}", f.lon, f.lat),
                expected: "a lon/lat point within -180..180, -90..90",
            });
        }
        let mut unresolved = None;
        let grid = match non_empty(f.grid) {
            Some(g) => {
                let (gc, level) = GridCode::parse(g, &self.city.hierarchy)?;
                if level != self.city.hierarchy.unit_level() {
                    return Err(ModelError::Hierarchy(format!("component {code} names grid {gc}, which is not a unit grid")));
                }
                if self.city.grids.is_empty() {
                    unresolved = Some(gc);
                    None
                } else {
                    Some(
                        self.city
                            .grid_by_code
                            .get(&gc)
                            .copied()
                            .ok_or_else(|| ModelError::Hierarchy(format!("component {code} names grid {gc}, which is not in the grid layer")))?,
                    )
                }
            }
            None => None,
        };
        let status = match non_empty(f.status) {
            Some(s) => s.parse::<Status>()?,
            None => Status::Intact,
        };
        let accuracy = non_empty(f.accuracy).map(str::parse::<Accuracy>).transpose()?;
        let (created, updated) = (parse_date("created", f.created)?, parse_date("updated", f.updated)?);
        let index = self.city.components.len() as u32;
        match self.city.component_by_code.entry(code) {
            std::collections::hash_map::Entry::Occupied(_) => {
                return Err(ModelError::Duplicate { what: "component code", code: code.to_string() });
            }
            std::collections::hash_map::Entry::Vacant(slot) => slot.insert(index),
        };
        // Every check passed: only now are names and units interned.
        let name = match non_empty(f.name) {
            Some(n) => self.city.names.intern(n),
            None => {
                let class_name = &self.city.component_classes.get(class).expect("checked").name;
                self.city.names.intern(class_name)
            }
        };
        let component = Component {
            code,
            location: Coord { x: f.lon, y: f.lat },
            class,
            status,
            accuracy,
            name,
            dept: non_empty(f.dept).map(|u| self.city.units.intern(u)),
            owner: non_empty(f.owner).map(|u| self.city.units.intern(u)),
            maintainer: non_empty(f.maintainer).map(|u| self.city.units.intern(u)),
            grid,
            created,
            updated,
        };
        if let Some(gc) = unresolved {
            self.city.unresolved_grids.insert(index, gc);
        }
        self.city.components.push(component);
        Ok(())
    }

    /// Adds the components of `prev`, as [`CityBuilder::add_component`] would add them one by
    /// one from the layer file `prev` was read from, without parsing or checking them again:
    /// the caller guarantees that this builder has the same hierarchy and component classes as
    /// `prev`'s, and that no component was added yet. Their grids (by code), units and names
    /// (by name) are this builder's, interned in the order a file read would intern them, so
    /// the city built equals one read from that file. Refused like a read of the file: a
    /// component whose recorded grid is not a unit grid of this builder's grids.
    /// `Ok(false)`: `prev` holds components not resolved against grids (a city without grids
    /// yet): nothing added, read the file instead.
    pub fn add_components_of(&mut self, prev: &City) -> Result<bool, ModelError> {
        if !prev.unresolved_grids.is_empty() || !self.city.components.is_empty() {
            return Ok(false);
        }
        self.resolve_grids()?;
        // Old id → new id, filled on first use (the order a file read interns them).
        let grids: Vec<Option<GridId>> = prev.grids.iter().map(|g| self.city.grid_by_code.get(&g.code).copied()).collect();
        let mut units: Vec<Option<super::UnitId>> = vec![None; prev.units.len()];
        let mut names: Vec<Option<NameId>> = vec![None; prev.names.len()];
        let mut components = Vec::with_capacity(prev.components.len());
        for c in &prev.components {
            let grid =
                match c.grid {
                    Some(g) => Some(grids[g.0 as usize].ok_or_else(|| {
                        ModelError::Hierarchy(format!("component {} names grid {}, which is not in the grid layer", c.code, prev.grid(g).code))
                    })?),
                    None => None,
                };
            let name = *names[c.name.0 as usize].get_or_insert_with(|| self.city.names.intern(prev.names.get(c.name)));
            let mut unit = |u: Option<super::UnitId>| u.map(|u| *units[u.0 as usize].get_or_insert_with(|| self.city.units.intern(&prev.units.get(u).name)));
            let (dept, owner, maintainer) = (unit(c.dept), unit(c.owner), unit(c.maintainer));
            components.push(Component { grid, name, dept, owner, maintainer, ..*c });
        }
        self.city.components = components;
        self.city.component_by_code = prev.component_by_code.clone();
        Ok(true)
    }

    /// Reserves room for `n` more components.
    pub fn reserve_components(&mut self, n: usize) {
        self.city.components.reserve(n);
        self.city.component_by_code.reserve(n);
    }

    /// Adds one responsibility polygon (`unit` by name, empty for none).
    pub fn add_zone(&mut self, layer: &str, id: &str, name: &str, unit: &str, geometry: MultiPolygon<f64>) -> Result<(), ModelError> {
        let (layer, id) = (layer.trim(), id.trim());
        if !super::is_layer_name(layer) {
            return Err(ModelError::BadValue { field: "zone layer", value: layer.to_owned(), expected: "lower-case letters, digits, _ or -" });
        }
        if id.is_empty() || id.contains(':') {
            return Err(ModelError::BadValue { field: "zone id", value: id.to_owned(), expected: "a non-empty id without ':'" });
        }
        if self.city.zones.iter().any(|z| z.layer == layer && z.id == id) {
            return Err(ModelError::Duplicate { what: "zone", code: format!("{layer}:{id}") });
        }
        let unit = (!unit.trim().is_empty()).then(|| self.city.units.intern(unit));
        self.city.zones.push(super::Zone { layer: layer.to_owned(), id: id.to_owned(), name: name.trim().to_owned(), unit, geometry });
        Ok(())
    }

    /// Checks the remaining links and returns the city.
    pub fn finish(mut self) -> Result<City, ModelError> {
        self.resolve_grids()?;
        self.city.zones.sort_by(|a, b| (&a.layer, &a.id).cmp(&(&b.layer, &b.id)));
        Ok(self.city)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo_types::polygon;

    fn square() -> MultiPolygon<f64> {
        MultiPolygon(vec![polygon![(x: 0., y: 0.), (x: 1., y: 0.), (x: 1., y: 1.), (x: 0., y: 1.), (x: 0., y: 0.)]])
    }

    fn builder() -> CityBuilder {
        CityBuilder::new(Hierarchy::cjt213(), ClassTable::builtin_components(), ClassTable::builtin_events())
    }

    fn grid<'a>(code: &'a str, parent: &'a str) -> GridFields<'a> {
        GridFields { code, name: "x", parent, ..Default::default() }
    }

    #[test]
    fn builds_a_chain_whatever_the_file_order() {
        let mut b = builder();
        b.add_grid(&grid("32050600100101", "320506001001"), square()).unwrap();
        b.add_grid(&grid("320506001001", "320506001"), square()).unwrap();
        b.add_grid(&grid("320506", ""), square()).unwrap();
        b.add_grid(&grid("320506001", "320506"), square()).unwrap();
        b.add_component(&ComponentFields {
            code: "3205060118000001",
            class: "0118",
            grid: "32050600100101",
            status: "破损",
            lon: 0.5,
            lat: 0.5,
            ..Default::default()
        })
        .unwrap();
        let city = b.finish().unwrap();
        let leaf = city.grid_by_code(GridCode::from_parts(32050600100101, 14)).unwrap();
        let chain: Vec<String> = city.chain(leaf).iter().map(|&g| city.grid(g).code.to_string()).collect();
        assert_eq!(chain, ["320506", "320506001", "320506001001", "32050600100101"]);
        let c = &city.components[0];
        assert_eq!(city.names.get(c.name), "路灯", "name defaults to the class name");
        assert_eq!(c.status, Status::Damaged);
        assert_eq!(c.grid, Some(leaf));
    }

    #[test]
    fn broken_links_are_refused() {
        let cases: &[&[(&str, &str)]] = &[
            &[("320506", ""), ("320506001", "")],                       // no parent
            &[("320506", ""), ("320506001", "320507")],                 // unknown parent
            &[("320506", ""), ("320506001001", "320506")],              // skips a level
            &[("320506", ""), ("320507", ""), ("320506001", "320507")], // code does not extend parent
            &[("320506", "320506")],                                    // top level with a parent
            &[("320506", ""), ("320506", "")],                          // duplicate
        ];
        for case in cases {
            let mut b = builder();
            let r = case.iter().try_for_each(|(c, p)| b.add_grid(&grid(c, p), square()).map(|_| ()));
            let r = r.and_then(|_| b.finish().map(|_| ()));
            assert!(matches!(r, Err(ModelError::Hierarchy(_) | ModelError::Duplicate { .. })), "{case:?}: {r:?}");
        }
    }

    #[test]
    fn dates_parse_as_dates_or_date_times() {
        let d = |s| parse_date("d", s);
        assert_eq!(d("2024-02-29").unwrap(), NaiveDate::from_ymd_opt(2024, 2, 29));
        assert_eq!(d(" 2024-02-29T08:00:00Z ").unwrap(), NaiveDate::from_ymd_opt(2024, 2, 29));
        assert_eq!(d("").unwrap(), None);
        // As GDAL's CSV driver and Excel write them.
        assert_eq!(d("2019/10/26 00:00:00").unwrap(), NaiveDate::from_ymd_opt(2019, 10, 26));
        assert_eq!(d("2019/10/26").unwrap(), NaiveDate::from_ymd_opt(2019, 10, 26));
        for bad in ["2023-02-29", "24-02-29", "2024-2-29", "2024-02-29x", "abcd-ef-gh", "2024/02-29", "2024.02.29"] {
            assert!(d(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_components_are_refused() {
        let base = ComponentFields { code: "3205060118000001", class: "0118", lon: 120.6, lat: 31.3, ..Default::default() };
        let bad = [
            ComponentFields { class: "0101", ..base.clone() },                           // class mismatch
            ComponentFields { code: "3205062199000001", class: "2199", ..base.clone() }, // unknown class
            ComponentFields { lon: f64::NAN, ..base.clone() },
            ComponentFields { lat: 91.0, ..base.clone() },
            ComponentFields { status: "坏了", ..base.clone() },
            ComponentFields { updated: "2024-13-01", ..base.clone() },
            ComponentFields { updated: "2024-02-30", ..base.clone() },
            ComponentFields { created: "2024.01.01", ..base.clone() },
            ComponentFields { created: "2024-01-01x", ..base.clone() },
            ComponentFields { grid: "32050600100199", ..base.clone() }, // unknown grid
        ];
        for f in bad {
            let mut b = builder();
            b.add_grid(&grid("320506", ""), square()).unwrap();
            assert!(b.add_component(&f).is_err(), "{f:?}");
        }
        let mut b = builder();
        b.add_component(&base).unwrap();
        assert!(matches!(b.add_component(&base), Err(ModelError::Duplicate { .. })));
    }
}
