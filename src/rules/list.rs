//! The responsibility list (责任清单): parsing.
//!
//! CSV as Excel exports it: UTF-8 (a BOM is accepted), one header row, columns in any order:
//! `case_kind,case_type,case_name,scope,unit,urgency,time_limit,escalation[,condition]`.
//! - `case_kind`: `event` or `component`; `case_type`: the 4-digit subclass code.
//! - `scope`: empty = the whole city; a grid code of any level (district, street, community,
//!   unit grid) = that grid and everything inside it; `zone:<layer>` / `zone:<layer>:<id>` = a
//!   responsibility polygon (road section, river segment).
//! - `unit`: a unit name, or a role: `@maintainer`, `@owner`, `@dept` (the component's units;
//!   component rules only), `@street` (the street office of the grid), `@chief` (the grid
//!   chief), `@zone` (the unit of the zone polygon; zone scopes only).
//! - `urgency`: 一般 / 紧急 / 非常紧急 (or `normal` / `urgent` / `very_urgent`); empty = 一般.
//! - `time_limit`: `<n>wh` working hours, `<n>wd` working days, `<n>cd` calendar days.
//! - `escalation`: the unit the case goes to when the limit passes (may be empty).
//! - `condition` (optional column): a time-of-day window `HH:MM-HH:MM` in China time
//!   (`22:00-06:00` crosses midnight); the rule applies only to cases reported inside it.
//! - `scope_name` (optional column): the name of the scope's grid (or zone polygon) as the list's
//!   author knew it; when given, validation checks that the scope still names that place
//!   (`scope_name_mismatch`).
//!
//! Specificity, most specific first: `zone:<layer>:<id>` > `zone:<layer>` > a grid code (more
//! digits = more specific) > the whole city; at equal scope a rule with a condition beats one
//! without.

use std::fmt;

use chrono::NaiveTime;
use serde::Serialize;

use super::RulesError;
use super::calendar::TimeLimit;
use crate::model::{City, ClassCode, GridCode, ModelError};

/// Which class table a case type is from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CaseKind {
    Event,
    Component,
}

impl CaseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CaseKind::Event => "event",
            CaseKind::Component => "component",
        }
    }
}

/// Urgency levels (紧急程度), each with its own limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Urgency {
    /// 一般
    Normal,
    /// 紧急
    Urgent,
    /// 非常紧急
    VeryUrgent,
}

impl Urgency {
    /// Accepts 一般/紧急/非常紧急 and normal/urgent/very_urgent (any case).
    pub fn parse(s: &str) -> Option<Urgency> {
        match s.trim().to_ascii_lowercase().replace([' ', '-'], "_").as_str() {
            "一般" | "normal" | "" => Some(Urgency::Normal),
            "紧急" | "urgent" => Some(Urgency::Urgent),
            "非常紧急" | "very_urgent" => Some(Urgency::VeryUrgent),
            _ => None,
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            Urgency::Normal => "一般",
            Urgency::Urgent => "紧急",
            Urgency::VeryUrgent => "非常紧急",
        }
    }
}

impl fmt::Display for Urgency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.zh())
    }
}

impl utoipa::PartialSchema for Urgency {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .enum_values(Some(["一般", "紧急", "非常紧急"]))
            .description(Some("urgency (紧急程度): normal, urgent, very urgent"))
            .into()
    }
}
impl utoipa::ToSchema for Urgency {}

impl Serialize for Urgency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.zh())
    }
}

/// Where a rule applies.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Empty scope: the whole city.
    City,
    /// A grid of any level and everything inside it (its code is a prefix of theirs).
    Grid(GridCode),
    /// A responsibility polygon layer, or one polygon of it.
    Zone { layer: String, id: Option<String> },
}

impl Scope {
    /// Ordering key: higher is more specific.
    pub fn rank(&self) -> u32 {
        match self {
            Scope::City => 0,
            Scope::Grid(c) => c.digits() as u32,
            Scope::Zone { id: None, .. } => 100,
            Scope::Zone { id: Some(_), .. } => 200,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::City => Ok(()),
            Scope::Grid(c) => write!(f, "{c}"),
            Scope::Zone { layer, id: None } => write!(f, "zone:{layer}"),
            Scope::Zone { layer, id: Some(id) } => write!(f, "zone:{layer}:{id}"),
        }
    }
}

/// A role a rule names instead of a unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 养护单位 of the component.
    Maintainer,
    /// 权属单位 of the component.
    Owner,
    /// 主管部门 of the component.
    Dept,
    /// The street office (街道办事处 / 镇人民政府) of the grid: level 2 of the hierarchy.
    Street,
    /// The grid chief (网格长) of the unit grid (or of its nearest ancestor that has one).
    Chief,
    /// The unit attribute of the zone polygon.
    Zone,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Maintainer => "@maintainer",
            Role::Owner => "@owner",
            Role::Dept => "@dept",
            Role::Street => "@street",
            Role::Chief => "@chief",
            Role::Zone => "@zone",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "@maintainer" => Role::Maintainer,
            "@owner" => Role::Owner,
            "@dept" => Role::Dept,
            "@street" => Role::Street,
            "@chief" => Role::Chief,
            "@zone" => Role::Zone,
            _ => return None,
        })
    }
}

/// Who a rule sends the case to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum UnitRef {
    Named(String),
    Role(Role),
}

impl fmt::Display for UnitRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnitRef::Named(n) => f.write_str(n),
            UnitRef::Role(r) => f.write_str(r.as_str()),
        }
    }
}

/// A time-of-day window in China time, start inclusive, end exclusive; may cross midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimeWindow {
    pub from: NaiveTime,
    pub to: NaiveTime,
}

impl TimeWindow {
    pub fn parse(s: &str) -> Result<TimeWindow, String> {
        let bad = || format!("condition {s:?} must be a time-of-day window HH:MM-HH:MM");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let t = |x: &str| NaiveTime::parse_from_str(x.trim(), "%H:%M").map_err(|_| bad());
        let (from, to) = (t(a)?, t(b)?);
        if from == to {
            return Err(format!("condition {s:?} is an empty window"));
        }
        Ok(TimeWindow { from, to })
    }

    pub fn contains(&self, t: NaiveTime) -> bool {
        if self.from < self.to { self.from <= t && t < self.to } else { t >= self.from || t < self.to }
    }
}

impl fmt::Display for TimeWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.from.format("%H:%M"), self.to.format("%H:%M"))
    }
}

/// One row of the list.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// Line number in the CSV file (the header is line 1).
    pub line: usize,
    pub kind: CaseKind,
    pub case_type: ClassCode,
    pub case_name: String,
    pub scope: Scope,
    pub unit: UnitRef,
    pub urgency: Urgency,
    pub limit: TimeLimit,
    /// Empty = none.
    pub escalation: Option<String>,
    pub condition: Option<TimeWindow>,
    /// The optional `scope_name` column (trimmed; empty = none).
    pub scope_name: Option<String>,
}

impl Rule {
    /// Ordering key: higher wins (scope rank, then having a condition).
    pub fn specificity(&self) -> u32 {
        self.scope.rank() * 2 + self.condition.is_some() as u32
    }

    /// The scope in words: `city-wide`, `street 320506001`, `zone roads:R12`.
    pub fn scope_words(&self, city: &City) -> String {
        match &self.scope {
            Scope::City => "city-wide".to_owned(),
            Scope::Grid(c) => {
                let level = city.hierarchy.level_of_digits(c.digits()).map(|l| city.hierarchy.levels[l].name_en.clone());
                let name = city.grid_by_code(*c).map(|g| city.grid(g).name.clone()).unwrap_or_default();
                format!("{}-specific ({c} {name})", level.unwrap_or_else(|| "grid".into()).to_lowercase())
            }
            Scope::Zone { .. } => format!("zone-specific ({})", self.scope),
        }
    }
}

/// A parsed responsibility list.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    /// The `rules` dataset version it came from, if stored.
    pub version: Option<u64>,
}

/// A line of the list that cannot be read.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LineError {
    pub line: usize,
    pub column: Option<&'static str>,
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.column {
            Some(c) => write!(f, "line {}, column {c}: {}", self.line, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

const REQUIRED: [&str; 7] = ["case_kind", "case_type", "case_name", "scope", "unit", "urgency", "time_limit"];

impl RuleSet {
    /// Reads the CSV. Every unreadable line is reported (not just the first); grid-code scopes
    /// are checked against the city's code scheme. Whether the list is *complete and unique*
    /// is [`super::validate`]'s business.
    pub fn parse(text: &str, city: &City) -> Result<RuleSet, RulesError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(true).from_reader(text.as_bytes());
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| RulesError::BadRules(vec![LineError { line: 1, column: None, message: e.to_string() }]))?
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .collect();
        let col = |name: &str| header.iter().position(|h| h == name);
        let missing: Vec<LineError> = REQUIRED
            .iter()
            .filter(|c| col(c).is_none())
            .map(|c| LineError { line: 1, column: Some(c), message: format!("the header has no column {c}") })
            .collect();
        if !missing.is_empty() {
            return Err(RulesError::BadRules(missing));
        }
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        let mut lines = LineCounter::new(text);
        for record in reader.records() {
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    let line = e.position().map(|p| lines.line_at(p.byte() as usize)).unwrap_or(0);
                    errors.push(LineError { line, column: None, message: e.to_string() });
                    continue;
                }
            };
            // The csv crate does not count blank lines; count newlines up to the record instead.
            let line = record.position().map(|p| lines.line_at(p.byte() as usize)).unwrap_or(0);
            if record.iter().all(|f| f.is_empty()) {
                continue;
            }
            let row = Fields { header: &header, record: &record };
            match parse_row(line, &row, city) {
                Ok(rule) => rules.push(rule),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() { Ok(RuleSet { rules, version: None }) } else { Err(RulesError::BadRules(errors)) }
    }

    /// The rules for one case type, in file order.
    pub fn of_type(&self, kind: CaseKind, case_type: ClassCode) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(move |r| r.kind == kind && r.case_type == case_type)
    }

    /// The urgency levels a type has rules for, lowest first.
    pub fn urgencies(&self, kind: CaseKind, case_type: ClassCode) -> Vec<Urgency> {
        let mut u: Vec<Urgency> = self.of_type(kind, case_type).map(|r| r.urgency).collect();
        u.sort();
        u.dedup();
        u
    }
}

/// The 1-based line numbers of byte offsets of `text`, asked in ascending order (as the CSV
/// reader gives its records): each newline is counted once, so a list of many lines is not
/// rescanned from its start for every record (which was quadratic in the number of lines).
/// (The reader's record position may point at blank lines before the record: skip them.)
struct LineCounter<'a> {
    bytes: &'a [u8],
    /// Newlines in `bytes[..counted]`.
    newlines: usize,
    counted: usize,
}

impl<'a> LineCounter<'a> {
    fn new(text: &'a str) -> LineCounter<'a> {
        LineCounter { bytes: text.as_bytes(), newlines: 0, counted: 0 }
    }

    fn line_at(&mut self, byte: usize) -> usize {
        let bytes = self.bytes;
        let mut at = byte.min(bytes.len());
        while at < bytes.len() && (bytes[at] == b'\n' || bytes[at] == b'\r') {
            at += 1;
        }
        if at < self.counted {
            (self.newlines, self.counted) = (0, 0); // not ascending: count again from the start
        }
        self.newlines += bytes[self.counted..at].iter().filter(|&&b| b == b'\n').count();
        self.counted = at;
        self.newlines + 1
    }
}

/// One record's fields by header name.
struct Fields<'r> {
    header: &'r [String],
    record: &'r csv::StringRecord,
}

impl<'r> Fields<'r> {
    /// The field of a column, "" if the column or the field is missing.
    fn get(&self, name: &str) -> &'r str {
        self.header.iter().position(|h| h == name).and_then(|i| self.record.get(i)).unwrap_or("")
    }
}

fn parse_row(line: usize, f: &Fields<'_>, city: &City) -> Result<Rule, LineError> {
    let get = |name: &str| f.get(name);
    let err = |column: &'static str, message: String| LineError { line, column: Some(column), message };
    let kind = match get("case_kind").to_ascii_lowercase().as_str() {
        "event" | "事件" => CaseKind::Event,
        "component" | "部件" => CaseKind::Component,
        other => return Err(err("case_kind", format!("{other:?} is neither event nor component"))),
    };
    let case_type = ClassCode::parse(get("case_type")).map_err(|e| err("case_type", model_message(e)))?;
    if case_type.is_major() {
        return Err(err("case_type", format!("{case_type} is a major class; rules name subclasses (4 digits)")));
    }
    let scope_text = get("scope");
    let scope = if scope_text.is_empty() {
        Scope::City
    } else if let Some(zone) = scope_text.strip_prefix("zone:") {
        let (layer, id) = match zone.split_once(':') {
            Some((l, i)) => (l.trim(), Some(i.trim().to_owned())),
            None => (zone.trim(), None),
        };
        if layer.is_empty() || id.as_deref() == Some("") {
            return Err(err("scope", format!("{scope_text:?} must be zone:<layer> or zone:<layer>:<id>")));
        }
        Scope::Zone { layer: layer.to_owned(), id }
    } else {
        let (code, _) = GridCode::parse(scope_text, &city.hierarchy).map_err(|e| err("scope", model_message(e)))?;
        Scope::Grid(code)
    };
    let unit_text = get("unit");
    let unit = if unit_text.starts_with('@') {
        UnitRef::Role(
            Role::parse(unit_text)
                .ok_or_else(|| err("unit", format!("unknown role {unit_text:?}: use @maintainer, @owner, @dept, @street, @chief or @zone")))?,
        )
    } else if unit_text.is_empty() {
        return Err(err("unit", "no unit given".into()));
    } else {
        UnitRef::Named(unit_text.to_owned())
    };
    let urgency = Urgency::parse(get("urgency")).ok_or_else(|| err("urgency", format!("{:?} is not 一般, 紧急 or 非常紧急", get("urgency"))))?;
    let limit = TimeLimit::parse(get("time_limit")).map_err(|m| err("time_limit", m))?;
    let condition = match get("condition") {
        "" => None,
        c => Some(TimeWindow::parse(c).map_err(|m| err("condition", m))?),
    };
    let escalation = Some(get("escalation").to_owned()).filter(|e| !e.is_empty());
    let scope_name = Some(get("scope_name").to_owned()).filter(|n| !n.is_empty());
    Ok(Rule { line, kind, case_type, case_name: get("case_name").to_owned(), scope, unit, urgency, limit, escalation, condition, scope_name })
}

fn model_message(e: ModelError) -> String {
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CityBuilder, ClassTable, Hierarchy};

    fn city() -> City {
        CityBuilder::new(Hierarchy::cjt213(), ClassTable::builtin_components(), ClassTable::builtin_events()).finish().unwrap()
    }

    #[test]
    fn parses_the_columns_with_bom_condition_and_any_column_order() {
        let csv = "\u{feff}case_type,case_kind,case_name,scope,unit,urgency,time_limit,escalation,condition\n\
                   0102,event,暴露垃圾,,吴中区环境卫生管理处,一般,4wh,吴中区城市管理局,\n\
                   \n\
                   0102,event,暴露垃圾,320506001,长桥街道环卫所,urgent,2wh,,22:00-06:00\n\
                   0101,component,上水井盖,zone:roads:R1,@zone,非常紧急,1wd,,\n";
        let set = RuleSet::parse(csv, &city()).unwrap();
        assert_eq!(set.rules.len(), 3);
        let r = &set.rules[1];
        assert_eq!((r.line, r.urgency, r.unit.to_string()), (4, Urgency::Urgent, "长桥街道环卫所".to_owned()));
        assert_eq!(r.scope.to_string(), "320506001");
        assert!(r.condition.unwrap().contains(NaiveTime::from_hms_opt(23, 0, 0).unwrap()));
        assert!(r.condition.unwrap().contains(NaiveTime::from_hms_opt(5, 59, 0).unwrap()));
        assert!(!r.condition.unwrap().contains(NaiveTime::from_hms_opt(6, 0, 0).unwrap()));
        assert_eq!(r.escalation, None);
        assert!(set.rules[2].specificity() > r.specificity());
        assert!(r.specificity() > set.rules[0].specificity());
        assert_eq!(set.urgencies(CaseKind::Event, ClassCode::parse("0102").unwrap()), vec![Urgency::Normal, Urgency::Urgent]);
    }

    #[test]
    fn every_bad_line_is_reported_with_its_column() {
        let csv = "case_kind,case_type,case_name,scope,unit,urgency,time_limit,escalation\n\
                   incident,0102,x,,u,一般,4wh,\n\
                   event,01,x,,u,一般,4wh,\n\
                   event,0102,x,3205060,u,一般,4wh,\n\
                   event,0102,x,,@boss,一般,4wh,\n\
                   event,0102,x,,u,soon,4wh,\n\
                   event,0102,x,,u,一般,0wh,\n\
                   event,0102,x,zone:,u,一般,4wh,\n\
                   event,0102,x,,u,一般,4wh,\n";
        let Err(RulesError::BadRules(errors)) = RuleSet::parse(csv, &city()) else { panic!() };
        let got: Vec<(usize, Option<&str>)> = errors.iter().map(|e| (e.line, e.column)).collect();
        assert_eq!(
            got,
            vec![
                (2, Some("case_kind")),
                (3, Some("case_type")),
                (4, Some("scope")),
                (5, Some("unit")),
                (6, Some("urgency")),
                (7, Some("time_limit")),
                (8, Some("scope")),
            ]
        );
        let Err(RulesError::BadRules(errors)) = RuleSet::parse("case_kind,case_type\n", &city()) else { panic!() };
        assert!(errors.iter().any(|e| e.column == Some("time_limit")));
    }

    #[test]
    fn line_numbers_count_blank_lines_and_crlf_whatever_the_order_asked() {
        let text = "h\r\n\r\na\n\n\nb\r\nc";
        let mut lines = LineCounter::new(text);
        // Lines: 1 h, 2 blank, 3 a, 4 and 5 blank, 6 b, 7 c. Offsets of h, the blank line
        // before a (skipped to a), a, the blank lines before b, c; then back to the start.
        assert_eq!([0, 3, 5, 7, 12].map(|b| lines.line_at(b)), [1, 3, 3, 6, 7]);
        assert_eq!(lines.line_at(0), 1);
        assert_eq!(lines.line_at(100), 7);
        // Rows after blank lines keep their real line numbers.
        let list = "case_kind,case_type,case_name,scope,unit,urgency,time_limit\n\n\nevent,0102,x,,u,紧急,9xx\n";
        let Err(RulesError::BadRules(errors)) = RuleSet::parse(list, &city()) else { panic!("a bad limit") };
        assert_eq!(errors.iter().map(|e| e.line).collect::<Vec<_>>(), [4]);
    }
}
