//! City components (部件): manhole covers, lamps, cameras, booths, signals, ….

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use geo_types::Coord;
use serde::Serialize;

use super::{ClassCode, ComponentCode, GridId, ModelError, NameId, UnitId};

/// Condition of a component (CJ/T 214 状态).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// 完好
    Intact,
    /// 破损
    Damaged,
    /// 丢失
    Missing,
    /// 占用
    Occupied,
}

impl Status {
    pub const ALL: [Status; 4] = [Status::Intact, Status::Damaged, Status::Missing, Status::Occupied];

    /// The Chinese term used in city data, which the layer files store.
    pub fn zh(self) -> &'static str {
        match self {
            Status::Intact => "完好",
            Status::Damaged => "破损",
            Status::Missing => "丢失",
            Status::Occupied => "占用",
        }
    }

    pub fn en(self) -> &'static str {
        match self {
            Status::Intact => "intact",
            Status::Damaged => "damaged",
            Status::Missing => "missing",
            Status::Occupied => "occupied",
        }
    }
}

impl FromStr for Status {
    type Err = ModelError;
    /// Accepts the Chinese term or the English word (any case).
    fn from_str(s: &str) -> Result<Status, ModelError> {
        let t = s.trim();
        Status::ALL.into_iter().find(|st| t == st.zh() || t.eq_ignore_ascii_case(st.en())).ok_or_else(|| ModelError::BadValue {
            field: "status",
            value: s.to_owned(),
            expected: "完好/破损/丢失/占用 or intact/damaged/missing/occupied",
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.zh())
    }
}

/// Positional accuracy class: A ±0.5 m, B ±1 m, C ±10 m. It grades the location, not urgency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Accuracy {
    A,
    B,
    C,
}

impl Accuracy {
    /// The class's tolerance in metres.
    pub fn metres(self) -> f64 {
        match self {
            Accuracy::A => 0.5,
            Accuracy::B => 1.0,
            Accuracy::C => 10.0,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Accuracy::A => "A",
            Accuracy::B => "B",
            Accuracy::C => "C",
        }
    }
}

impl FromStr for Accuracy {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Accuracy, ModelError> {
        match s.trim() {
            "A" | "a" => Ok(Accuracy::A),
            "B" | "b" => Ok(Accuracy::B),
            "C" | "c" => Ok(Accuracy::C),
            _ => Err(ModelError::BadValue { field: "accuracy", value: s.to_owned(), expected: "A, B or C" }),
        }
    }
}

/// A component: a point with a class and its three responsible units.
/// Kept small (strings interned) because a city holds millions of them.
#[derive(Clone, Debug, PartialEq)]
pub struct Component {
    pub code: ComponentCode,
    /// lon/lat, WGS84 ≡ CGCS2000.
    pub location: Coord<f64>,
    pub class: ClassCode,
    pub status: Status,
    pub accuracy: Option<Accuracy>,
    /// 名称, usually the class name; interned in [`super::City::names`].
    pub name: NameId,
    /// 主管部门
    pub dept: Option<UnitId>,
    /// 权属单位
    pub owner: Option<UnitId>,
    /// 养护单位
    pub maintainer: Option<UnitId>,
    /// 所在单元网格 as recorded in the data (not recomputed).
    pub grid: Option<GridId>,
    /// 初始日期
    pub created: Option<NaiveDate>,
    /// 变更日期
    pub updated: Option<NaiveDate>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_parses_chinese_and_english() {
        assert_eq!("破损".parse::<Status>().unwrap(), Status::Damaged);
        assert_eq!("Missing".parse::<Status>().unwrap(), Status::Missing);
        assert!("broken".parse::<Status>().is_err());
        assert_eq!("b".parse::<Accuracy>().unwrap(), Accuracy::B);
        assert!("D".parse::<Accuracy>().is_err());
    }

    #[test]
    fn component_stays_small() {
        // 10 million components must fit the 200 B/component budget with their index.
        assert!(std::mem::size_of::<Component>() <= 96, "{}", std::mem::size_of::<Component>());
    }
}
