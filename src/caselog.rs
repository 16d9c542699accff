//! The case log: what the audit log keeps of each routing decision ([`AuditRecord`]), and the
//! statistics by area and case type that find high-incidence areas (高发区域).
//!
//! # What a record holds, and why it is enough for an auditor
//! One [`AuditRecord`] per decision: *when* (`at`, +08:00), *what was asked* (`input`, the
//! request as sent: lon/lat/crs/type/urgency/reported_at), *what was decided* (`case_kind`,
//! `case_type`, `urgency`, the unit grid and its `chain` of codes from the district down,
//! the responsible `unit` with its register code and how it was found (`unit_role`), the
//! deadline `due`, the `zone` polygon whose rule applied, `warnings`, `outside_coverage`),
//! *by which rule* (`rule`: the line of the responsibility list and its scope as written)
//! and *on which data* (`versions`: the version of every dataset the answer was computed
//! from — grids, components, rules, units, calendar …).
//!
//! It does not repeat the answer's names, phones, explanation sentences and candidate lists:
//! every one of them is a function of the input, the time and those dataset versions, which
//! the data directory keeps (`GET /v1/layers/{name}/versions`, `GET /v1/rules/versions`; a
//! rollback serves them again), so the
//! full answer can be recomputed when a dispute needs it. This keeps a decision to a few
//! hundred bytes instead of ~2.7 KB.
//!
//! The record is a plain typed struct so that any store can hold it: the SQLite store
//! ([`crate::store::audit`]) maps each field to one column (see its module doc).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::routing::RouteAnswer;

/// The audit record of one routing decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Assigned by the store when appended: increasing, never reused (0 before).
    pub id: i64,
    /// When the decision was made, RFC 3339 with the +08:00 offset of China Standard Time.
    pub at: DateTime<FixedOffset>,
    /// `event` or `component`.
    pub case_kind: String,
    /// The case (sub)class code, e.g. `0102`.
    pub case_type: String,
    pub urgency: Option<String>,
    /// The unit grid's code (the last of `chain`).
    pub grid: Option<String>,
    /// Codes of the grid's ancestors and itself, district first (empty: not placed).
    pub chain: Vec<String>,
    /// The responsible unit's name.
    pub unit: String,
    /// Its code in the unit register, if it has one.
    pub unit_code: Option<String>,
    /// How it was found: `unit`, `maintainer`, `owner`, `dept`, `street`, `chief`.
    pub unit_role: Option<String>,
    /// The rule that decided (`null`: no rule, the territorial fallback 属地兜底).
    pub rule: Option<RuleRef>,
    /// `layer:id` of the responsibility polygon whose rule decided.
    pub zone: Option<String>,
    /// The deadline, RFC 3339 +08:00.
    pub due: Option<String>,
    /// Dataset → version the decision was computed from.
    pub versions: BTreeMap<String, u64>,
    /// The case as sent (the request body, or the batch item without its `id`).
    pub input: Value,
    pub warnings: Vec<String>,
    pub outside_coverage: bool,
}

/// Which line of the responsibility list decided.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleRef {
    /// Line in the rules CSV of the version in `versions.rules` (header = 1).
    pub line: u64,
    /// The rule's scope as written (empty = whole city).
    pub scope: String,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The audit record of a routing decision: `answer` for the case `input` (as sent) at `at`;
/// `id` is 0. Every field is read from the typed answer (the case's kind, code and urgency,
/// the unit grid and its chain, the unit, the rule's line and scope, the zone, the deadline,
/// the warnings, the dataset versions).
pub fn record_answer(at: DateTime<FixedOffset>, input: Value, answer: &RouteAnswer<'_>) -> AuditRecord {
    AuditRecord {
        id: 0,
        at,
        case_kind: answer.case.kind.as_str().to_owned(),
        case_type: answer.case.code.to_string(),
        urgency: Some(answer.deadline.urgency.to_string()),
        grid: Some(answer.grid.code.to_string()),
        chain: answer.chain.iter().map(|e| e.code.to_string()).collect(),
        unit: answer.responsible_unit.name.to_owned(),
        unit_code: answer.responsible_unit.code.map(str::to_owned),
        unit_role: Some(answer.responsible_unit.role.to_owned()),
        rule: answer.rule.as_ref().map(|r| RuleRef { line: r.line as u64, scope: r.scope.clone() }),
        zone: answer.area.zone.clone(),
        due: Some(answer.deadline.due.clone()),
        versions: answer.versions.0.clone(),
        input,
        warnings: answer.warnings.clone(),
        outside_coverage: answer.outside_coverage,
    }
}

/// The audit record of a routing answer given as JSON (a legacy log line's `answer`) for
/// `input` at `at`; `id` is 0. Routing itself uses [`record_answer`].
pub fn record(at: DateTime<FixedOffset>, input: &Value, answer: &Value) -> AuditRecord {
    let chain: Vec<String> = answer["chain"].as_array().map_or_else(Vec::new, |c| c.iter().filter_map(|e| text(&e["code"])).collect());
    let rule = &answer["rule"];
    AuditRecord {
        id: 0,
        at,
        case_kind: text(&answer["case"]["kind"]).or_else(|| text(&rule["case_kind"])).unwrap_or_default(),
        case_type: text(&answer["case"]["code"]).or_else(|| text(&rule["case_type"])).unwrap_or_default(),
        urgency: text(&answer["deadline"]["urgency"]).or_else(|| text(&answer["case"]["urgency"])),
        grid: text(&answer["grid"]["code"]),
        chain,
        unit: text(&answer["responsible_unit"]["name"]).unwrap_or_default(),
        unit_code: text(&answer["responsible_unit"]["code"]),
        unit_role: text(&answer["responsible_unit"]["role"]),
        rule: rule["line"].as_u64().map(|line| RuleRef { line, scope: text(&rule["scope"]).unwrap_or_default() }),
        zone: text(&answer["area"]["zone"]),
        due: text(&answer["deadline"]["due"]),
        versions: versions(&answer["versions"]),
        input: input.clone(),
        warnings: answer["warnings"].as_array().map_or_else(Vec::new, |w| w.iter().filter_map(text).collect()),
        outside_coverage: answer["outside_coverage"].as_bool().unwrap_or(false),
    }
}

fn versions(v: &Value) -> BTreeMap<String, u64> {
    v.as_object().map_or_else(BTreeMap::new, |m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_u64()?))).collect())
}

/// A record of the JSON-lines audit log of earlier releases (`{"at", "case_kind", …,
/// "input", "answer"}`), or `None` if it has no readable `at`. With its `answer` the record
/// is rebuilt from it; without, from the summary fields.
pub fn from_legacy(line: &Value) -> Option<AuditRecord> {
    let at = DateTime::parse_from_rfc3339(line.get("at")?.as_str()?).ok()?;
    let input = line.get("input").cloned().unwrap_or(Value::Null);
    if let Some(answer @ Value::Object(_)) = line.get("answer") {
        let mut r = record(at, &input, answer);
        // The summary fields were copied out of the answer when written: prefer them where the
        // answer lacks a field.
        if r.case_kind.is_empty() {
            r.case_kind = text(&line["case_kind"]).unwrap_or_default();
        }
        if r.case_type.is_empty() {
            r.case_type = text(&line["case_type"]).unwrap_or_default();
        }
        return Some(r);
    }
    Some(AuditRecord {
        id: 0,
        at,
        case_kind: text(&line["case_kind"]).unwrap_or_default(),
        case_type: text(&line["case_type"]).unwrap_or_default(),
        urgency: None,
        grid: text(&line["grid"]),
        chain: line["chain"].as_array().map_or_else(Vec::new, |c| c.iter().filter_map(text).collect()),
        unit: text(&line["unit"]).unwrap_or_default(),
        unit_code: None,
        unit_role: None,
        rule: None,
        zone: None,
        due: text(&line["due"]),
        versions: versions(&line["versions"]),
        input,
        warnings: Vec::new(),
        outside_coverage: false,
    })
}

/// Separator of the codes of a chain in its compact text form (grid codes are digits).
pub const CHAIN_SEPARATOR: char = '/';

/// A chain's compact text: codes joined by `/`, district first (`""` for no chain).
pub fn chain_text(chain: &[String]) -> String {
    chain.join("/")
}

/// The codes of a chain's compact text.
pub fn chain_codes(text: &str) -> Vec<String> {
    if text.is_empty() { Vec::new() } else { text.split(CHAIN_SEPARATOR).map(str::to_owned).collect() }
}

/// How many decisions one place (chain) had of one case type in some window: what the
/// statistics are summed from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CaseCount {
    /// The chain's compact text ([`chain_text`]).
    pub chain: String,
    pub case_kind: String,
    pub case_type: String,
    pub count: u64,
}

/// The [`CaseCount`]s of some records (one per chain and type).
pub fn counts_of(records: &[AuditRecord]) -> Vec<CaseCount> {
    let mut m: HashMap<(String, &str, &str), u64> = HashMap::new();
    for r in records {
        *m.entry((chain_text(&r.chain), &r.case_kind, &r.case_type)).or_default() += 1;
    }
    m.into_iter().map(|((chain, k, t), count)| CaseCount { chain, case_kind: k.to_owned(), case_type: t.to_owned(), count }).collect()
}

/// Counts keyed by small indexes instead of strings: each chain and case type once, and
/// `(chain index, type index, count)` triples (a pair may repeat: the counts add up). What a
/// store sums its counts into; [`stats_of_ids`] turns it into the same [`CaseStats`] as
/// [`stats`] over the equivalent [`CaseCount`]s, building strings only for the answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IdCounts {
    /// Chain compact texts ([`chain_text`]) by index.
    pub chains: Vec<String>,
    /// `(case_kind, case_type)` by index, each pair at most once.
    pub types: Vec<(String, String)>,
    /// `(chain index, type index, count)`.
    pub counts: Vec<(u32, u32, u64)>,
}

impl IdCounts {
    /// The same counts as [`CaseCount`]s (one per triple).
    pub fn to_case_counts(&self) -> Vec<CaseCount> {
        self.counts
            .iter()
            .map(|&(p, t, count)| {
                let (kind, ty) = &self.types[t as usize];
                CaseCount { chain: self.chains[p as usize].clone(), case_kind: kind.clone(), case_type: ty.clone(), count }
            })
            .collect()
    }
}

/// [`stats`] of `counts` restricted to the case type codes `case_types` (all when `None`),
/// summed by index: the answer is equal to `stats` of the [`IdCounts::to_case_counts`] kept
/// by the same filter, and its serialization byte-identical.
pub fn stats_of_ids(counts: &IdCounts, level: StatsLevel, case_types: Option<&[String]>) -> CaseStats {
    let keep: Vec<bool> = counts.types.iter().map(|(_, t)| case_types.is_none_or(|f| f.contains(t))).collect();
    // Area and grid codes, each once, and the area and grid of every chain.
    let mut area_ix: HashMap<&str, u32> = HashMap::new();
    let mut area_codes: Vec<&str> = Vec::new();
    let mut grid_ix: HashMap<&str, u32> = HashMap::new();
    let mut grid_codes: Vec<&str> = Vec::new();
    let mut chain_area: Vec<Option<u32>> = Vec::with_capacity(counts.chains.len());
    let mut chain_grid: Vec<Option<u32>> = Vec::with_capacity(counts.chains.len());
    for chain in &counts.chains {
        chain_area.push(level.area(chain).map(|a| {
            *area_ix.entry(a).or_insert_with(|| {
                area_codes.push(a);
                (area_codes.len() - 1) as u32
            })
        }));
        chain_grid.push(StatsLevel::Grid.area(chain).map(|g| {
            *grid_ix.entry(g).or_insert_with(|| {
                grid_codes.push(g);
                (grid_codes.len() - 1) as u32
            })
        }));
    }
    let (mut total, mut unplaced) = (0u64, 0u64);
    let mut by_type: Vec<Option<u64>> = vec![None; counts.types.len()];
    let mut by_grid: Vec<Option<u64>> = vec![None; grid_codes.len()];
    let mut cells: Vec<(u32, u32, u64)> = Vec::with_capacity(counts.counts.len());
    for &(p, t, n) in &counts.counts {
        if !keep[t as usize] {
            continue;
        }
        total += n;
        *by_type[t as usize].get_or_insert(0) += n;
        if let Some(g) = chain_grid[p as usize] {
            *by_grid[g as usize].get_or_insert(0) += n;
        }
        match chain_area[p as usize] {
            Some(a) => cells.push((a, t, n)),
            None => unplaced += n,
        }
    }
    // Type order of the answer's ties: by (kind, type) text.
    let mut order: Vec<u32> = (0..counts.types.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| counts.types[a as usize].cmp(&counts.types[b as usize]));
    let mut rank = vec![0u32; order.len()];
    for (r, &t) in order.iter().enumerate() {
        rank[t as usize] = r as u32;
    }
    let type_counts = |mut v: Vec<(u32, u64)>| -> Vec<TypeCount> {
        v.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| rank[a.0 as usize].cmp(&rank[b.0 as usize])));
        v.into_iter()
            .map(|(t, count)| {
                let (kind, ty) = &counts.types[t as usize];
                TypeCount { case_kind: kind.clone(), case_type: ty.clone(), count }
            })
            .collect()
    };
    cells.sort_unstable_by_key(|&(a, t, _)| (a, t));
    let mut areas: Vec<AreaCount> = Vec::new();
    let mut i = 0;
    while i < cells.len() {
        let area = cells[i].0;
        let mut types: Vec<(u32, u64)> = Vec::new();
        while i < cells.len() && cells[i].0 == area {
            let t = cells[i].1;
            let mut n = 0;
            while i < cells.len() && cells[i].0 == area && cells[i].1 == t {
                n += cells[i].2;
                i += 1;
            }
            types.push((t, n));
        }
        let area_total = types.iter().map(|&(_, n)| n).sum();
        areas.push(AreaCount { code: area_codes[area as usize].to_owned(), total: area_total, by_type: type_counts(types) });
    }
    areas.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.code.cmp(&b.code)));
    let by_type = type_counts(by_type.iter().enumerate().filter_map(|(t, n)| Some((t as u32, (*n)?))).collect());
    let by_grid = by_grid.iter().zip(&grid_codes).filter_map(|(n, g)| Some(((*g).to_owned(), (*n)?))).collect();
    CaseStats { level, total, areas, by_type, by_grid, unplaced }
}

/// Which level statistics group by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatsLevel {
    /// 街道 (level 2).
    Street,
    /// 社区 (level 3).
    Community,
    /// The unit grid (the last code of the chain, whatever the depth).
    Grid,
}

impl StatsLevel {
    pub fn parse(s: &str) -> Option<StatsLevel> {
        match s {
            "street" => Some(StatsLevel::Street),
            "community" => Some(StatsLevel::Community),
            "grid" => Some(StatsLevel::Grid),
            _ => None,
        }
    }

    /// The area code of a chain (compact text) at this level.
    fn area(self, chain: &str) -> Option<&str> {
        if chain.is_empty() {
            return None;
        }
        match self {
            StatsLevel::Street => chain.split(CHAIN_SEPARATOR).nth(1),
            StatsLevel::Community => chain.split(CHAIN_SEPARATOR).nth(2),
            StatsLevel::Grid => chain.rsplit(CHAIN_SEPARATOR).next(),
        }
    }
}

/// Cases counted by area and by type.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CaseStats {
    pub level: StatsLevel,
    pub total: u64,
    /// Areas, most cases first (ties by code), each with its counts by case type.
    pub areas: Vec<AreaCount>,
    /// Per case type over all areas, most first.
    pub by_type: Vec<TypeCount>,
    /// Per unit grid: the heat a map draws (every grid with at least one case).
    pub by_grid: BTreeMap<String, u64>,
    /// Records without a usable chain (e.g. routed outside coverage).
    pub unplaced: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AreaCount {
    pub code: String,
    pub total: u64,
    pub by_type: Vec<TypeCount>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TypeCount {
    pub case_kind: String,
    pub case_type: String,
    pub count: u64,
}

/// Sums `counts` by area at `level` and by case type (a place and type may appear more than
/// once: the counts add up).
pub fn stats(counts: &[CaseCount], level: StatsLevel) -> CaseStats {
    let mut areas: HashMap<&str, HashMap<(&str, &str), u64>> = HashMap::new();
    let mut types: HashMap<(&str, &str), u64> = HashMap::new();
    let mut by_grid: BTreeMap<String, u64> = BTreeMap::new();
    let mut unplaced = 0;
    let mut total = 0;
    for c in counts {
        let key = (c.case_kind.as_str(), c.case_type.as_str());
        total += c.count;
        *types.entry(key).or_default() += c.count;
        if let Some(grid) = StatsLevel::Grid.area(&c.chain) {
            *by_grid.entry(grid.to_owned()).or_default() += c.count;
        }
        match level.area(&c.chain) {
            Some(area) => *areas.entry(area).or_default().entry(key).or_default() += c.count,
            None => unplaced += c.count,
        }
    }
    let sorted = |m: HashMap<(&str, &str), u64>| {
        let mut v: Vec<TypeCount> = m.into_iter().map(|((k, t), count)| TypeCount { case_kind: k.to_owned(), case_type: t.to_owned(), count }).collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| (&a.case_kind, &a.case_type).cmp(&(&b.case_kind, &b.case_type))));
        v
    };
    let mut areas: Vec<AreaCount> = areas
        .into_iter()
        .map(|(code, m)| {
            let by_type = sorted(m);
            AreaCount { code: code.to_owned(), total: by_type.iter().map(|t| t.count).sum(), by_type }
        })
        .collect();
    areas.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.code.cmp(&b.code)));
    CaseStats { level, total, areas, by_type: sorted(types), by_grid, unplaced }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(kind: &str, ty: &str, chain: &[&str], unit: &str) -> Value {
        json!({
            "rule": {"case_kind": kind, "case_type": ty},
            "grid": {"code": chain.last()},
            "chain": chain.iter().map(|c| json!({"code": c, "name": "x"})).collect::<Vec<_>>(),
            "responsible_unit": {"name": unit},
            "deadline": {"due": "2026-11-23T13:00:00+08:00"},
            "versions": {"grids": 1},
        })
    }

    fn at() -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339("2026-11-23T10:00:00+08:00").unwrap()
    }

    #[test]
    fn a_record_keeps_the_decision_and_references_not_the_whole_answer() {
        let a = json!({
            "case": {"kind": "event", "code": "0102", "name": "暴露垃圾", "urgency": "一般"},
            "responsible_unit": {"name": "环卫所", "code": "U01", "phone": "0512-1", "role": "unit"},
            "dispatcher": {"name": "张三", "phone": "138"},
            "grid": {"code": "32050600100101", "name": "一号网格"},
            "area": {"grid": "32050600100101", "zone": "zones:7"},
            "chain": [{"code": "320506", "name": "区"}, {"code": "320506001", "name": "街道"}, {"code": "320506001001"}, {"code": "32050600100101"}],
            "rule": {"case_kind": "event", "case_type": "0102", "case_name": "暴露垃圾", "scope": "320506001", "line": 12, "why": "…"},
            "deadline": {"urgency": "一般", "due": "2026-11-23T13:00:00+08:00"},
            "explanation": ["long sentence"],
            "warnings": ["calendar_unknown_year"],
            "candidates": [],
            "outside_coverage": false,
            "versions": {"grids": 3, "rules": 5},
        });
        let r = record(at(), &json!({"lon": 120.6}), &a);
        assert_eq!((r.case_kind.as_str(), r.case_type.as_str(), r.urgency.as_deref()), ("event", "0102", Some("一般")));
        assert_eq!(r.grid.as_deref(), Some("32050600100101"));
        assert_eq!(r.chain[1], "320506001");
        assert_eq!((r.unit.as_str(), r.unit_code.as_deref(), r.unit_role.as_deref()), ("环卫所", Some("U01"), Some("unit")));
        assert_eq!(r.rule, Some(RuleRef { line: 12, scope: "320506001".into() }));
        assert_eq!(r.zone.as_deref(), Some("zones:7"));
        assert_eq!(r.versions.get("rules"), Some(&5));
        assert_eq!(r.warnings, ["calendar_unknown_year"]);
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains("张三") && !json.contains("long sentence") && !json.contains("0512-1"), "no contact details, no prose: {json}");
        assert!(json.contains("\"at\":\"2026-11-23T10:00:00+08:00\""), "{json}");
        // A legacy line with its answer reads back as the same record.
        let legacy = json!({"at": "2026-11-23T10:00:00+08:00", "case_kind": "event", "input": {"lon": 120.6}, "answer": a});
        assert_eq!(from_legacy(&legacy), Some(r));
        assert_eq!(from_legacy(&json!({"unit": "x"})), None, "no time, no record");
    }

    #[test]
    fn stats_count_by_area_and_type_and_give_a_per_grid_heat() {
        let g1 = ["d", "d-s1", "d-s1-c1", "d-s1-c1-g1"];
        let g2 = ["d", "d-s1", "d-s1-c2", "d-s1-c2-g1"];
        let g3 = ["d", "d-s2", "d-s2-c1", "d-s2-c1-g1"];
        let mut recs: Vec<AuditRecord> = [(&g1, "0102"), (&g1, "0102"), (&g2, "0102"), (&g2, "0505"), (&g3, "0505")]
            .iter()
            .map(|(c, t)| record(at(), &json!({}), &answer("event", t, &c[..], "u")))
            .collect();
        recs.push(record(at(), &json!({}), &answer("event", "0102", &[], "u")));
        let s = stats(&counts_of(&recs), StatsLevel::Street);
        assert_eq!(s.total, 6);
        assert_eq!(s.unplaced, 1);
        assert_eq!(s.areas.iter().map(|a| (a.code.as_str(), a.total)).collect::<Vec<_>>(), [("d-s1", 4), ("d-s2", 1)]);
        assert_eq!(s.areas[0].by_type[0], TypeCount { case_kind: "event".into(), case_type: "0102".into(), count: 3 });
        assert_eq!(s.by_type[0].count, 4, "0102 over all areas, the unplaced one included");
        assert_eq!(s.by_grid.get("d-s1-c1-g1"), Some(&2));
        assert_eq!(s.by_grid.values().sum::<u64>(), 5);
        let c = stats(&counts_of(&recs), StatsLevel::Community);
        assert_eq!(c.areas.len(), 3);
        assert_eq!(c.areas[0].code, "d-s1-c1", "ties broken by code: c1 and c2 both have 2");
        // Split counts of the same place and type add up (aggregates plus raw edges).
        let mut split = counts_of(&recs);
        split.extend(counts_of(&recs[..1]));
        assert_eq!(stats(&split, StatsLevel::Grid).by_grid.get("d-s1-c1-g1"), Some(&3));
        assert_eq!(StatsLevel::parse("grid"), Some(StatsLevel::Grid));
        assert_eq!(StatsLevel::parse("city"), None);
    }
}
