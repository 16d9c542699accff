//! The staff register (人员名册): who carries a phone that reports positions. A CSV dataset,
//! versioned like the unit register (`PUT /v1/layers/staff`, `citygrid import staff …`).
//!
//! Header (UTF-8, a BOM is ignored, columns in any order, extra columns ignored):
//! `id,name,role,unit,home_grids`
//! - `id`: the phone's or person's id as positions name it (1–64 characters, unique);
//! - `name`: display name;
//! - `role`: `inspector` (监督员) or `grid_worker` (网格员);
//! - `unit`: the unit the person works for (free text, optional);
//! - `home_grids`: unit-grid codes the person is responsible for, separated by `;` (optional).

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// What a person does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 监督员: finds and verifies cases (核查).
    Inspector,
    /// 网格员: looks after the grids of a community.
    GridWorker,
}

impl Role {
    /// `inspector` / `监督员`, `grid_worker` / `网格员` (case-insensitive for the English names).
    pub fn parse(s: &str) -> Option<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "inspector" | "监督员" => Some(Role::Inspector),
            "grid_worker" | "gridworker" | "网格员" => Some(Role::GridWorker),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Inspector => "inspector",
            Role::GridWorker => "grid_worker",
        }
    }
}

/// One person of the register.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StaffMember {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// The unit the person works for (`""` if the register does not say).
    pub unit: String,
    /// Unit-grid codes the person is responsible for.
    pub home_grids: Vec<String>,
}

/// The register: people by id, in file order.
#[derive(Clone, Debug, Default)]
pub struct StaffRegister {
    members: Vec<Arc<StaffMember>>,
    by_id: HashMap<String, usize>,
}

/// Longest id accepted (register and positions).
pub const MAX_ID_LEN: usize = 64;

impl StaffRegister {
    /// Parses the register's CSV. `Err`: a sentence naming the line.
    pub fn from_csv(text: &str) -> Result<StaffRegister, String> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut reader = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(text.as_bytes());
        let header: Vec<String> = reader.headers().map_err(|e| format!("the header cannot be read: {e}"))?.iter().map(|h| h.to_ascii_lowercase()).collect();
        let col = |name: &str| header.iter().position(|h| h == name);
        let (Some(id_col), Some(name_col), Some(role_col)) = (col("id"), col("name"), col("role")) else {
            return Err(format!("the header must name the columns id, name, role (and optionally unit, home_grids); it has {}", header.join(",")));
        };
        let (unit_col, home_col) = (col("unit"), col("home_grids"));
        let mut register = StaffRegister::default();
        for (i, record) in reader.records().enumerate() {
            let line = i + 2;
            let record = record.map_err(|e| format!("line {line}: {e}"))?;
            let field = |c: Option<usize>| c.and_then(|c| record.get(c)).unwrap_or("").to_owned();
            let id = field(Some(id_col));
            if id.is_empty() || id.len() > MAX_ID_LEN || id.chars().any(char::is_control) {
                return Err(format!("line {line}: id must be 1 to {MAX_ID_LEN} bytes without control characters, got {id:?}"));
            }
            let role_text = field(Some(role_col));
            let role =
                Role::parse(&role_text).ok_or_else(|| format!("line {line}: role {role_text:?} is neither inspector (监督员) nor grid_worker (网格员)"))?;
            let home_grids = field(home_col).split(';').map(str::trim).filter(|g| !g.is_empty()).map(str::to_owned).collect();
            let member = StaffMember { name: field(Some(name_col)), role, unit: field(unit_col), home_grids, id: id.clone() };
            if register.by_id.insert(id.clone(), register.members.len()).is_some() {
                return Err(format!("line {line}: id {id:?} is listed twice"));
            }
            register.members.push(Arc::new(member));
        }
        Ok(register)
    }

    /// The register as CSV (the format [`StaffRegister::from_csv`] reads).
    pub fn to_csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(["id", "name", "role", "unit", "home_grids"]).expect("writing to memory");
        for m in &self.members {
            w.write_record([m.id.as_str(), &m.name, m.role.name(), &m.unit, &m.home_grids.join(";")]).expect("writing to memory");
        }
        String::from_utf8(w.into_inner().expect("writing to memory")).expect("UTF-8 in, UTF-8 out")
    }

    /// A register of `members` (ids must be unique; a later duplicate replaces the earlier).
    pub fn from_members(members: Vec<StaffMember>) -> StaffRegister {
        let mut register = StaffRegister::default();
        for m in members {
            match register.by_id.get(&m.id) {
                Some(&i) => register.members[i] = Arc::new(m),
                None => {
                    register.by_id.insert(m.id.clone(), register.members.len());
                    register.members.push(Arc::new(m));
                }
            }
        }
        register
    }

    pub fn get(&self, id: &str) -> Option<&Arc<StaffMember>> {
        self.by_id.get(id).map(|&i| &self.members[i])
    }

    pub fn members(&self) -> &[Arc<StaffMember>] {
        &self.members
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Home grids that are not unit grids of `city`, as `id: code` (for an import's warnings).
    pub fn unknown_home_grids(&self, city: &crate::model::City) -> Vec<String> {
        let unit = city.hierarchy.unit_level();
        let mut out = Vec::new();
        for m in &self.members {
            for g in &m.home_grids {
                let known = crate::model::GridCode::parse(g, &city.hierarchy)
                    .ok()
                    .filter(|&(_, level)| level == unit)
                    .and_then(|(code, _)| city.grid_by_code(code))
                    .is_some();
                if !known {
                    out.push(format!("{}: {g}", m.id));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trips_and_refuses_bad_lines() {
        let text = "\u{feff}id,name,role,unit,home_grids\nP001,张三,监督员,长桥街道,320506001001001;320506001001002\nP002,李四,grid_worker,,\n";
        let r = StaffRegister::from_csv(text).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r.get("P001").unwrap().role, Role::Inspector);
        assert_eq!(r.get("P001").unwrap().home_grids.len(), 2);
        assert_eq!(r.get("P002").unwrap().role, Role::GridWorker);
        let again = StaffRegister::from_csv(&r.to_csv()).unwrap();
        assert_eq!(again.members().iter().map(|m| (**m).clone()).collect::<Vec<_>>(), r.members().iter().map(|m| (**m).clone()).collect::<Vec<_>>());
        for bad in ["id,name\nP1,x\n", "id,name,role\nP1,x,boss\n", "id,name,role\nP1,x,inspector\nP1,y,inspector\n", "id,name,role\n,x,inspector\n"] {
            assert!(StaffRegister::from_csv(bad).is_err(), "{bad:?} accepted");
        }
    }
}
