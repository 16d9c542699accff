//! Grid, component and class codes (网格编码 / 部件标识码 / 分类代码).
//!
//! Codes are digit strings. They are held as `u64` plus their digit count, so they are `Copy`,
//! compare fast and cost 16 bytes instead of a heap string; `Display` gives the digits back,
//! with leading zeros.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ModelError;

/// GB/T 2260 province-level prefixes: the first two digits of every county (区县) code.
const PROVINCE_PREFIXES: &[u8] =
    &[11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82];

fn parse_digits(s: &str, what: &'static str) -> Result<u64, ModelError> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ModelError::MalformedCode { what, code: s.to_owned(), reason: "must be 1 to 19 ASCII digits".into() });
    }
    Ok(s.parse().expect("checked digits"))
}

fn check_county(s: &str, what: &'static str) -> Result<(), ModelError> {
    let prefix: u8 = s[..2].parse().expect("digits");
    if PROVINCE_PREFIXES.contains(&prefix) {
        Ok(())
    } else {
        Err(ModelError::MalformedCode { what, code: s.to_owned(), reason: format!("{prefix:02} is not a GB/T 2260 province code") })
    }
}

/// A grid code at any level of the hierarchy: the county code (6 digits) at the top, each lower
/// level appending its own serial digits, so a child's code always starts with its parent's.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GridCode {
    value: u64,
    digits: u8,
}

impl GridCode {
    /// Parses `s` as a code of the given hierarchy; its digit count decides its level.
    pub fn parse(s: &str, hierarchy: &Hierarchy) -> Result<(GridCode, usize), ModelError> {
        let value = parse_digits(s, "grid code")?;
        let Some(level) = hierarchy.level_of_digits(s.len()) else {
            return Err(ModelError::MalformedCode {
                what: "grid code",
                code: s.to_owned(),
                reason: format!("has {} digits; the {} scheme has levels of {} digits", s.len(), hierarchy.scheme, hierarchy.digit_list()),
            });
        };
        check_county(s, "grid code")?;
        if level >= 1 {
            // The street/town code (digits 7-9): its first digit is the kind of township-level
            // unit; see `Hierarchy::street_code_first_digits`.
            let street_first = s.as_bytes()[6] - b'0';
            let allowed = hierarchy.street_code_first_digits.unwrap_or(DigitSet::STREET_STANDARD);
            if !allowed.contains(street_first) {
                let street = &s[6..hierarchy.levels[1].code_digits.min(s.len())];
                let reason = match hierarchy.street_code_first_digits {
                    None => format!(
                        "street/town code {street} must start with 0 (街道 street), 1 (镇 town), 2/3 (乡 township) \
                         or 4/5 (类似乡级单位: development zone, farm, scenic area…); a city whose codes use \
                         other first digits declares them in city.toml: [hierarchy] street_code_first_digits = \"0-{street_first}\""
                    ),
                    Some(declared) => format!(
                        "street/town code {street} must start with {declared} (street_code_first_digits of the {} hierarchy in city.toml)",
                        hierarchy.scheme
                    ),
                };
                return Err(ModelError::MalformedCode { what: "grid code", code: s.to_owned(), reason });
            }
        }
        Ok((GridCode { value, digits: s.len() as u8 }, level))
    }

    /// Number of digits.
    pub fn digits(self) -> usize {
        self.digits as usize
    }

    /// True if `self` is `ancestor` or extends it (a descendant's code starts with its ancestor's).
    pub fn extends(self, ancestor: GridCode) -> bool {
        if ancestor.digits > self.digits {
            return false;
        }
        self.value / 10u64.pow((self.digits - ancestor.digits) as u32) == ancestor.value
    }

    /// The code cut to its first `digits` digits (e.g. the street code of a unit grid).
    pub fn prefix(self, digits: usize) -> Option<GridCode> {
        (digits > 0 && digits <= self.digits()).then(|| GridCode { value: self.value / 10u64.pow((self.digits() - digits) as u32), digits: digits as u8 })
    }

    /// Builds a code from a number and a digit count, for generators and tests.
    pub fn from_parts(value: u64, digits: usize) -> GridCode {
        debug_assert!(value < 10u64.pow(digits as u32));
        GridCode { value, digits: digits as u8 }
    }

    /// The county (区县) code: the first six digits.
    pub fn county(self) -> u32 {
        self.prefix(6).map(|c| c.value as u32).unwrap_or(0)
    }
}

impl fmt::Display for GridCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:0width$}", self.value, width = self.digits as usize)
    }
}
impl fmt::Debug for GridCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GridCode({self})")
    }
}
impl Serialize for GridCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A set of decimal digits, 0–9: which first digits a street/town code may have
/// ([`Hierarchy::street_code_first_digits`]).
///
/// Written as text of digits and ranges separated by commas (`"0-5"`, `"0-3,6,8-9"`) or as a
/// TOML list of digits and such texts (`[0, 1, 2, 3, 6]`, `["0-3", 6]`); written back as the
/// shortest text (`"0-3,6"`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DigitSet(u16);

impl DigitSet {
    /// The first digits of the national statistical division codes (统计用区划代码) for
    /// township-level units: 0 街道 (street, 001–099), 1 镇 (town, 100–199), 2/3 乡 (township,
    /// 200–399), 4/5 类似乡级单位 (township-like units: development zones, farms, scenic areas,
    /// 400–599). The default of every hierarchy.
    pub const STREET_STANDARD: DigitSet = DigitSet(0b11_1111);
    /// No digit at all (refused by [`Hierarchy::validate`]).
    pub const EMPTY: DigitSet = DigitSet(0);

    /// The set of the given digits; `None` if one is above 9.
    pub fn from_digits(digits: impl IntoIterator<Item = u8>) -> Option<DigitSet> {
        digits.into_iter().try_fold(DigitSet::EMPTY, |set, d| (d <= 9).then_some(DigitSet(set.0 | 1 << d)))
    }

    /// Parses `"0-5"`, `"0-3,6,8-9"`, `"7"` (spaces allowed; ranges ascending; not empty).
    pub fn parse(text: &str) -> Result<DigitSet, String> {
        let bad = |why: &str| format!("{text:?} {why}: write digits and ranges such as \"0-5\" or \"0-3,6\"");
        let digit = |s: &str| match s.trim().as_bytes() {
            [d @ b'0'..=b'9'] => Ok(d - b'0'),
            _ => Err(bad("is not a list of digits 0-9")),
        };
        let mut set = DigitSet::EMPTY;
        for part in text.split(',') {
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (digit(a)?, digit(b)?),
                None => (digit(part)?, digit(part)?),
            };
            if a > b {
                return Err(bad("has a descending range"));
            }
            for d in a..=b {
                set.0 |= 1 << d;
            }
        }
        Ok(set)
    }

    /// Whether `digit` (0–9) is in the set.
    pub fn contains(self, digit: u8) -> bool {
        digit <= 9 && self.0 & (1 << digit) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for DigitSet {
    /// The shortest text: runs of three or more as ranges (`0-5`), others listed (`0,1,6`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        let mut d = 0u8;
        while d <= 9 {
            if !self.contains(d) {
                d += 1;
                continue;
            }
            let start = d;
            while d < 9 && self.contains(d + 1) {
                d += 1;
            }
            match d - start {
                0 => parts.push(format!("{start}")),
                1 => parts.push(format!("{start},{d}")),
                _ => parts.push(format!("{start}-{d}")),
            }
            d += 1;
        }
        f.write_str(&parts.join(","))
    }
}
impl fmt::Debug for DigitSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DigitSet({self})")
    }
}
impl Serialize for DigitSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
impl<'de> Deserialize<'de> for DigitSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Item {
            Digit(u8),
            Text(String),
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            List(Vec<Item>),
        }
        let raw =
            Raw::deserialize(d).map_err(|_| serde::de::Error::custom("expected digits and ranges as text (\"0-5\", \"0-3,6\") or a list ([0, 1, 2, 3, 6])"))?;
        let items = match raw {
            Raw::Text(t) => vec![Item::Text(t)],
            Raw::List(items) if items.is_empty() => return Ok(DigitSet::EMPTY), // refused by Hierarchy::validate
            Raw::List(items) => items,
        };
        let mut set = DigitSet::EMPTY;
        for item in items {
            let more = match item {
                Item::Digit(n) => DigitSet::from_digits([n]).ok_or_else(|| format!("{n} is not a digit 0-9")),
                Item::Text(t) => DigitSet::parse(&t),
            };
            set.0 |= more.map_err(serde::de::Error::custom)?.0;
        }
        Ok(set)
    }
}

/// One level of the grid hierarchy. Unknown keys are refused: in `city.toml` a hierarchy key
/// written after the `[[hierarchy.levels]]` tables belongs to the last level, and would
/// otherwise be ignored without a word.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelDef {
    /// Name shown to users, e.g. `街道`.
    pub name: String,
    /// English name, e.g. `street`.
    pub name_en: String,
    /// Total digits of a code at this level (6 for the county, then cumulative).
    pub code_digits: usize,
}

/// The grid hierarchy of a city: 4 to 6 levels, top (district) first, each with its names and
/// its code length. The code scheme is data: CJ/T 213 (6+3+3+2 = 14 digits) by default,
/// Beijing DB11/T 2157 (6+3+3+3 = 15), or any city's own lengths.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hierarchy {
    /// Scheme name for messages, e.g. `CJ/T 213`.
    pub scheme: String,
    /// The digits a street/town code (the code of level 2, digits 7–9 under CJ/T 213) may start
    /// with. `None` (the key absent from `city.toml`): [`DigitSet::STREET_STANDARD`], 0–5. A
    /// city whose township-level codes use other first digits declares its own, e.g.
    /// `street_code_first_digits = "0-6"`; it replaces the default, it does not add to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street_code_first_digits: Option<DigitSet>,
    pub levels: Vec<LevelDef>,
}

impl Hierarchy {
    fn with(scheme: &str, names: &[(&str, &str, usize)]) -> Hierarchy {
        Hierarchy {
            scheme: scheme.into(),
            street_code_first_digits: None,
            levels: names.iter().map(|&(name, name_en, code_digits)| LevelDef { name: name.into(), name_en: name_en.into(), code_digits }).collect(),
        }
    }

    /// CJ/T 213-2005: 区 (6) › 街道 (+3) › 社区 (+3) › 网格 (+2) = 14 digits.
    pub fn cjt213() -> Hierarchy {
        Hierarchy::with("CJ/T 213", &[("区", "district", 6), ("街道", "street", 9), ("社区", "community", 12), ("网格", "grid", 14)])
    }

    /// Beijing DB11/T 2157-2023: 区 (6) › 街道 (+3) › 社区 (+3) › 网格 (+3) = 15 digits.
    pub fn beijing_db11() -> Hierarchy {
        Hierarchy::with("DB11/T 2157", &[("区", "district", 6), ("街道", "street", 9), ("社区", "community", 12), ("网格", "grid", 15)])
    }

    /// Checks the hierarchy is usable: 2 to 8 levels, the top one 6 digits (county),
    /// strictly increasing code lengths of at most 19 digits, non-empty names, and — if
    /// declared — at least one street-code first digit. (A `street_code_first_digits` text
    /// that does not read is already refused when `city.toml` is deserialised.)
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |reason: String| Err(ModelError::BadHierarchy(reason));
        if !(2..=8).contains(&self.levels.len()) {
            return bad(format!("{} levels; 2 to 8 are supported", self.levels.len()));
        }
        if self.levels[0].code_digits != 6 {
            return bad("the top level's codes must be the 6-digit county code".into());
        }
        for w in self.levels.windows(2) {
            if w[1].code_digits <= w[0].code_digits || w[1].code_digits > 19 {
                return bad(format!(
                    "level {:?} has {} digits after {:?} with {}: lengths must grow, up to 19",
                    w[1].name, w[1].code_digits, w[0].name, w[0].code_digits
                ));
            }
        }
        if self.levels.iter().any(|l| l.name.trim().is_empty()) {
            return bad("every level needs a name".into());
        }
        if self.street_code_first_digits.is_some_and(DigitSet::is_empty) {
            return bad("street_code_first_digits allows no digit: leave it out for the default 0-5, or list digits such as \"0-6\"".into());
        }
        Ok(())
    }

    /// Level index (0 = top) whose codes have `digits` digits.
    pub fn level_of_digits(&self, digits: usize) -> Option<usize> {
        self.levels.iter().position(|l| l.code_digits == digits)
    }

    /// Index of the lowest level: the unit grid (单元网格).
    pub fn unit_level(&self) -> usize {
        self.levels.len() - 1
    }

    fn digit_list(&self) -> String {
        self.levels.iter().map(|l| l.code_digits.to_string()).collect::<Vec<_>>().join("/")
    }
}

impl Default for Hierarchy {
    fn default() -> Self {
        Hierarchy::cjt213()
    }
}

/// A component or event class code: 2-digit major + 2-digit minor, e.g. `0101` 上水井盖.
/// A major class alone is `major * 100` with [`ClassCode::is_major`] true.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClassCode(u16);

impl ClassCode {
    pub fn new(major: u8, minor: u8) -> ClassCode {
        debug_assert!(major < 100 && minor < 100);
        ClassCode(major as u16 * 100 + minor as u16)
    }
    pub fn major(self) -> u8 {
        (self.0 / 100) as u8
    }
    pub fn minor(self) -> u8 {
        (self.0 % 100) as u8
    }
    /// The major class this subclass belongs to (`0118` → `0100`).
    pub fn major_class(self) -> ClassCode {
        ClassCode(self.0 / 100 * 100)
    }
    pub fn is_major(self) -> bool {
        self.minor() == 0
    }
    /// Parses `0101` (subclass) or `01` (major class).
    pub fn parse(s: &str) -> Result<ClassCode, ModelError> {
        let err = |reason: &str| ModelError::MalformedCode { what: "class code", code: s.to_owned(), reason: reason.into() };
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("must be digits"));
        }
        match s.len() {
            2 => {
                let major: u8 = s.parse().expect("digits");
                if major == 0 {
                    return Err(err("major class 00 does not exist"));
                }
                Ok(ClassCode::new(major, 0))
            }
            4 => {
                let (major, minor): (u8, u8) = (s[..2].parse().unwrap(), s[2..].parse().unwrap());
                if major == 0 || minor == 0 {
                    return Err(err("major and minor must both be 01 or more"));
                }
                Ok(ClassCode::new(major, minor))
            }
            _ => Err(err("must be 4 digits (major + minor, e.g. 0101) or 2 (major)")),
        }
    }
}

impl fmt::Display for ClassCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_major() { write!(f, "{:02}", self.major()) } else { write!(f, "{:04}", self.0) }
    }
}
impl fmt::Debug for ClassCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClassCode({self})")
    }
}
impl FromStr for ClassCode {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ClassCode::parse(s)
    }
}
impl Serialize for ClassCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A component identification code (部件标识码), CJ/T 214: 6-digit county + 2 major + 2 minor
/// + 6-digit serial = 16 digits, e.g. `3205080101000001` (姑苏区 / 上水井盖 / #1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentCode(u64);

impl ComponentCode {
    pub const DIGITS: usize = 16;
    /// Largest serial the 6-digit field holds.
    pub const MAX_SERIAL: u32 = 999_999;

    pub fn parse(s: &str) -> Result<ComponentCode, ModelError> {
        let err = |reason: String| ModelError::MalformedCode { what: "component code", code: s.to_owned(), reason };
        if s.len() != Self::DIGITS || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("must be 16 digits: 6 county + 2 major + 2 minor + 6 serial".into()));
        }
        check_county(s, "component code")?;
        ClassCode::parse(&s[6..10]).map_err(|_| err(format!("class part {} is not a subclass", &s[6..10])))?;
        if &s[10..] == "000000" {
            return Err(err("serial 000000 is not used; serials start at 000001".into()));
        }
        Ok(ComponentCode(s.parse().expect("digits")))
    }

    /// Builds a code; `county` must be a 6-digit county code and `serial` 1..=999,999.
    pub fn new(county: u32, class: ClassCode, serial: u32) -> ComponentCode {
        debug_assert!((100_000..1_000_000).contains(&county));
        debug_assert!((1..=Self::MAX_SERIAL).contains(&serial));
        ComponentCode(county as u64 * 10_000_000_000 + class.0 as u64 * 1_000_000 + serial as u64)
    }

    pub fn county(self) -> u32 {
        (self.0 / 10_000_000_000) as u32
    }
    pub fn class(self) -> ClassCode {
        ClassCode(((self.0 / 1_000_000) % 10_000) as u16)
    }
    pub fn serial(self) -> u32 {
        (self.0 % 1_000_000) as u32
    }

    /// Cross-checks the class embedded in the code against the class the record declares.
    pub fn check_class(self, declared: ClassCode) -> Result<(), ModelError> {
        if self.class() == declared { Ok(()) } else { Err(ModelError::ClassMismatch { code: self.to_string(), declared: declared.to_string() }) }
    }
}

impl fmt::Display for ComponentCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016}", self.0)
    }
}
impl fmt::Debug for ComponentCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ComponentCode({self})")
    }
}
impl FromStr for ComponentCode {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ComponentCode::parse(s)
    }
}
impl Serialize for ComponentCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The OpenAPI description of a code: a string of digits on the wire (`schema` of the API).
macro_rules! digits_schema {
    ($ty:ty, $pattern:literal, $description:literal) => {
        impl utoipa::PartialSchema for $ty {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::String).pattern(Some($pattern)).description(Some($description)).into()
            }
        }
        impl utoipa::ToSchema for $ty {}
    };
}
digits_schema!(GridCode, "^[0-9]+$", "a grid code: the county code (6 digits), then each lower level's serial digits");
digits_schema!(ClassCode, "^[0-9]{2}([0-9]{2})?$", "a class code: major class (2 digits), or major + subclass (4 digits)");
digits_schema!(ComponentCode, "^[0-9]{16}$", "a component code (部件标识码, CJ/T 214): 16 digits");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cjt213_codes_parse_at_their_level() {
        let h = Hierarchy::cjt213();
        assert_eq!(GridCode::parse("320506", &h).unwrap().1, 0);
        assert_eq!(GridCode::parse("320506001", &h).unwrap().1, 1);
        assert_eq!(GridCode::parse("320506001002", &h).unwrap().1, 2);
        let (g, level) = GridCode::parse("22020600100109", &h).unwrap();
        assert_eq!(level, 3);
        assert_eq!(g.to_string(), "22020600100109");
        assert_eq!(g.county(), 220206);
    }

    #[test]
    fn beijing_15_digit_codes_parse() {
        let h = Hierarchy::beijing_db11();
        let (_, level) = GridCode::parse("110102001001012", &h).unwrap();
        assert_eq!(level, 3);
        assert!(GridCode::parse("11010200100101", &h).is_err(), "14 digits is not a Beijing level");
    }

    #[test]
    fn bad_grid_codes_are_rejected_with_a_reason() {
        let h = Hierarchy::cjt213();
        for bad in ["", "2202060010010", "2202060010010a", "99020600100109", "22020690100109", "-2020600100109"] {
            let e = GridCode::parse(bad, &h).unwrap_err();
            assert!(matches!(e, ModelError::MalformedCode { .. }), "{bad}: {e}");
        }
        let e = GridCode::parse("22020690100109", &h).unwrap_err().to_string();
        assert!(e.contains("街道"), "{e}");
    }

    #[test]
    fn township_like_street_codes_4xx_5xx_parse_by_default() {
        let h = Hierarchy::cjt213();
        // 320506404 开发区, 320506405 国家苏州太湖旅游度假区 (类似乡级单位 in the statistical codes).
        for code in ["320506404", "320506405", "32050640400101", "320506599001"] {
            assert!(GridCode::parse(code, &h).is_ok(), "{code}");
        }
        for code in ["320506001", "320506101", "320506201", "320506399"] {
            assert!(GridCode::parse(code, &h).is_ok(), "{code}");
        }
    }

    #[test]
    fn street_codes_6xx_and_up_are_refused_by_default_with_the_ranges_and_the_way_out() {
        let h = Hierarchy::cjt213();
        for code in ["320506601", "32050670100101", "320506999"] {
            let e = GridCode::parse(code, &h).unwrap_err().to_string();
            assert!(e.contains(&format!("street/town code {}", &code[6..9])), "{e}");
            for part in ["0 (街道", "1 (镇", "2/3 (乡", "4/5 (类似乡级单位", "street_code_first_digits"] {
                assert!(e.contains(part), "{part:?} missing from: {e}");
            }
        }
    }

    #[test]
    fn a_hierarchy_declaring_its_street_code_digits_uses_them_instead_of_the_default() {
        let mut h = Hierarchy::cjt213();
        h.street_code_first_digits = Some(DigitSet::parse("0-6").unwrap());
        assert!(h.validate().is_ok());
        assert_eq!(GridCode::parse("32050660100101", &h).unwrap().1, 3);
        let e = GridCode::parse("320506701", &h).unwrap_err().to_string();
        assert!(e.contains("must start with 0-6") && e.contains("CJ/T 213"), "{e}");
        // It replaces the default: a city of only 街道 and 镇 refuses 4xx.
        h.street_code_first_digits = Some(DigitSet::parse("0,1").unwrap());
        assert!(GridCode::parse("320506404", &h).is_err());
        assert!(GridCode::parse("320506101", &h).is_ok());
        h.street_code_first_digits = Some(DigitSet::EMPTY);
        let e = h.validate().unwrap_err().to_string();
        assert!(e.contains("street_code_first_digits"), "{e}");
    }

    #[test]
    fn digit_sets_read_text_and_lists_and_write_the_shortest_text() {
        let p = |s: &str| DigitSet::parse(s).map(|d| d.to_string());
        assert_eq!(p("0-5").unwrap(), "0-5");
        assert_eq!(p(" 0 - 3 , 6,8-9").unwrap(), "0-3,6,8,9");
        assert_eq!(p("7").unwrap(), "7");
        assert_eq!(p("0,1,2,5,6,7,9").unwrap(), "0-2,5-7,9");
        for bad in ["", "0-", "a", "10", "5-3", "0-5,", "0..5"] {
            assert!(DigitSet::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(DigitSet::from_digits([0, 1, 2, 3, 4, 5]), Some(DigitSet::STREET_STANDARD));
        assert_eq!(DigitSet::from_digits([10]), None);
        #[derive(Deserialize)]
        struct T {
            d: DigitSet,
        }
        let d = |text: &str| toml::from_str::<T>(text).map(|t| t.d.to_string()).map_err(|e| e.to_string());
        assert_eq!(d("d = \"0-6\"").unwrap(), "0-6");
        assert_eq!(d("d = [0, 1, 2, 3, 6]").unwrap(), "0-3,6");
        assert_eq!(d("d = [\"0-3\", 6]").unwrap(), "0-3,6");
        assert_eq!(d("d = []").unwrap(), "", "an empty list reads; Hierarchy::validate refuses it");
        for bad in ["d = \"0-x\"", "d = [12]", "d = 6", "d = [\"5-3\"]"] {
            assert!(d(bad).is_err(), "{bad}");
        }
    }

    /// `city.toml` as the store wrote it before the key existed.
    const OLD_CITY_TOML: &str = r#"name = "苏州市吴中区"
center = [120.63, 31.26]

[hierarchy]
scheme = "CJ/T 213"

[[hierarchy.levels]]
name = "区"
name_en = "district"
code_digits = 6

[[hierarchy.levels]]
name = "街道"
name_en = "street"
code_digits = 9

[[hierarchy.levels]]
name = "社区"
name_en = "community"
code_digits = 12

[[hierarchy.levels]]
name = "网格"
name_en = "grid"
code_digits = 14
"#;

    #[test]
    fn city_toml_without_the_key_still_loads_and_the_key_round_trips() {
        use crate::store::CityMeta;
        let old: CityMeta = toml::from_str(OLD_CITY_TOML).unwrap();
        assert_eq!(old.hierarchy, Hierarchy::cjt213());
        assert!(old.hierarchy.validate().is_ok());
        // Written back unchanged: no key for the default.
        let text = toml::to_string(&old).unwrap();
        assert!(!text.contains("street_code_first_digits"), "{text}");
        // Declared: written as text and read back the same.
        let mut meta = old.clone();
        meta.hierarchy.street_code_first_digits = Some(DigitSet::parse("0-6,9").unwrap());
        let text = toml::to_string(&meta).unwrap();
        assert!(text.contains("street_code_first_digits = \"0-6,9\""), "{text}");
        assert_eq!(toml::from_str::<CityMeta>(&text).unwrap(), meta);
        // Hand-written after the levels, as a list.
        let text = OLD_CITY_TOML.replace("scheme = \"CJ/T 213\"\n", "scheme = \"CJ/T 213\"\nstreet_code_first_digits = [0, 1, 6]\n");
        let meta: CityMeta = toml::from_str(&text).unwrap();
        assert!(GridCode::parse("320506601", &meta.hierarchy).is_ok());
        assert!(GridCode::parse("320506201", &meta.hierarchy).is_err());
        let e = toml::from_str::<CityMeta>(&OLD_CITY_TOML.replace("scheme = \"CJ/T 213\"\n", "scheme = \"CJ/T 213\"\nstreet_code_first_digits = \"six\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("street_code_first_digits = \"six\"") && e.contains("is not a list of digits"), "{e}");
        // Written after the levels it would belong to the last level: refused, not ignored.
        let e = toml::from_str::<CityMeta>(&format!("{OLD_CITY_TOML}street_code_first_digits = \"0-6\"\n")).unwrap_err().to_string();
        assert!(e.contains("unknown field `street_code_first_digits`"), "{e}");
    }

    #[test]
    fn child_code_extends_parent() {
        let h = Hierarchy::cjt213();
        let p = |s| GridCode::parse(s, &h).unwrap().0;
        let grid = p("32050600100203");
        assert!(grid.extends(p("320506001002")));
        assert!(grid.extends(p("320506001")));
        assert!(grid.extends(p("320506")));
        assert!(grid.extends(grid));
        assert!(!grid.extends(p("320506001003")));
        assert!(!grid.extends(p("320507")));
        assert!(!p("320506001").extends(grid));
        assert_eq!(grid.prefix(9), Some(p("320506001")));
    }

    #[test]
    fn component_codes_parse_and_cross_check_class() {
        let c = ComponentCode::parse("3205080101000001").unwrap();
        assert_eq!(c.county(), 320508);
        assert_eq!(c.class(), ClassCode::new(1, 1));
        assert_eq!(c.serial(), 1);
        assert_eq!(c.to_string(), "3205080101000001");
        assert!(c.check_class(ClassCode::parse("0101").unwrap()).is_ok());
        let e = c.check_class(ClassCode::parse("0118").unwrap()).unwrap_err();
        assert!(matches!(e, ModelError::ClassMismatch { .. }));
        assert_eq!(ComponentCode::new(320506, ClassCode::new(1, 18), 42).to_string(), "3205060118000042");
    }

    #[test]
    fn bad_component_codes_are_rejected() {
        for bad in [
            "320508010100000",   // 15 digits
            "32050801010000011", // 17 digits
            "3205080101000000",  // serial 0
            "3205080001000001",  // major 00
            "3205080100000001",  // minor 00
            "9905080101000001",  // no such province
            "32050801010000x1",
        ] {
            assert!(ComponentCode::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn class_codes() {
        assert_eq!(ClassCode::parse("0118").unwrap().major_class(), ClassCode::parse("01").unwrap());
        assert_eq!(ClassCode::parse("21").unwrap().to_string(), "21");
        for bad in ["0", "010", "0100", "0001", "ab01", "00"] {
            assert!(ClassCode::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hierarchy_validation() {
        assert!(Hierarchy::cjt213().validate().is_ok());
        let mut h = Hierarchy::cjt213();
        h.levels[2].code_digits = 9;
        assert!(h.validate().is_err());
        let mut h = Hierarchy::cjt213();
        h.levels[0].code_digits = 4;
        assert!(h.validate().is_err());
        let six = Hierarchy::with(
            "Xifeng",
            &[
                ("区", "district", 6),
                ("街道", "street", 9),
                ("社区", "community", 12),
                ("基础网格", "base grid", 14),
                ("物业", "property", 16),
                ("楼栋", "building", 18),
            ],
        );
        assert!(six.validate().is_ok());
        assert_eq!(GridCode::parse("520527001001010203", &six).unwrap().1, 5);
    }
}
