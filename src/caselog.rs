//! The case log: what the audit log keeps of each routing decision, reading it back, and the
//! monthly statistics that find high-incidence areas (高发区域).
//!
//! A record is one JSON object per decision:
//! `{"at", "case_kind", "case_type", "grid", "chain": [codes from the district down],
//! "unit", "due", "versions", "input", "answer"}` — the summary fields for filters and
//! statistics, then the request and the full answer as they were. Times are RFC 3339 with
//! the +08:00 offset of China Standard Time.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset};
use serde::Serialize;
use serde_json::{Value, json};

/// The audit record of one decision. `answer` is the routing answer as served; the summary
/// fields are copied out of it (`grid.code`, `chain[].code`, `responsible_unit.name`,
/// `deadline.due`, `rule.case_kind`/`case_type`, `versions`).
pub fn record(at: DateTime<FixedOffset>, input: &Value, answer: &Value) -> Value {
    let chain: Vec<Value> = answer["chain"].as_array().map_or_else(Vec::new, |c| c.iter().map(|e| e["code"].clone()).collect());
    json!({
        "at": at.to_rfc3339(),
        "case_kind": answer["rule"]["case_kind"],
        "case_type": answer["rule"]["case_type"],
        "grid": answer["grid"]["code"],
        "chain": chain,
        "unit": answer["responsible_unit"]["name"],
        "due": answer["deadline"]["due"],
        "versions": answer["versions"],
        "input": input,
        "answer": answer,
    })
}

/// Whether a record names `unit` as the responsible unit (exact name).
pub fn is_for_unit(record: &Value, unit: &str) -> bool {
    record["unit"].as_str() == Some(unit)
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

    /// The area code of a record's chain at this level.
    fn area(self, chain: &[Value]) -> Option<&str> {
        match self {
            StatsLevel::Street => chain.get(1),
            StatsLevel::Community => chain.get(2),
            StatsLevel::Grid => chain.last(),
        }
        .and_then(Value::as_str)
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

/// Counts `records` (as [`record`] writes them) by area at `level` and by case type.
pub fn stats(records: &[Value], level: StatsLevel) -> CaseStats {
    let mut areas: BTreeMap<String, BTreeMap<(String, String), u64>> = BTreeMap::new();
    let mut types: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut by_grid: BTreeMap<String, u64> = BTreeMap::new();
    let mut unplaced = 0;
    for r in records {
        let kind = r["case_kind"].as_str().unwrap_or("").to_owned();
        let ty = r["case_type"].as_str().unwrap_or("").to_owned();
        *types.entry((kind.clone(), ty.clone())).or_default() += 1;
        let chain = r["chain"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        if let Some(grid) = StatsLevel::Grid.area(chain) {
            *by_grid.entry(grid.to_owned()).or_default() += 1;
        }
        match level.area(chain) {
            Some(area) => *areas.entry(area.to_owned()).or_default().entry((kind, ty)).or_default() += 1,
            None => unplaced += 1,
        }
    }
    let sorted = |m: BTreeMap<(String, String), u64>| {
        let mut v: Vec<TypeCount> = m.into_iter().map(|((case_kind, case_type), count)| TypeCount { case_kind, case_type, count }).collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| (&a.case_kind, &a.case_type).cmp(&(&b.case_kind, &b.case_type))));
        v
    };
    let mut areas: Vec<AreaCount> = areas
        .into_iter()
        .map(|(code, m)| {
            let by_type = sorted(m);
            AreaCount { code, total: by_type.iter().map(|t| t.count).sum(), by_type }
        })
        .collect();
    areas.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.code.cmp(&b.code)));
    CaseStats { level, total: records.len() as u64, areas, by_type: sorted(types), by_grid, unplaced }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_record_keeps_the_summary_and_the_whole_answer() {
        let at = DateTime::parse_from_rfc3339("2026-11-23T10:00:00+08:00").unwrap();
        let a = answer("event", "0102", &["320506", "320506001", "320506001001", "32050600100101"], "环卫所");
        let r = record(at, &json!({"lon": 120.6}), &a);
        assert_eq!(r["at"], "2026-11-23T10:00:00+08:00");
        assert_eq!(r["grid"], "32050600100101");
        assert_eq!(r["chain"][1], "320506001");
        assert_eq!(r["unit"], "环卫所");
        assert_eq!(r["answer"], a);
        assert!(is_for_unit(&r, "环卫所") && !is_for_unit(&r, "环卫"));
    }

    #[test]
    fn stats_count_by_area_and_type_and_give_a_per_grid_heat() {
        let at = DateTime::parse_from_rfc3339("2026-11-23T10:00:00+08:00").unwrap();
        let g1 = ["d", "d-s1", "d-s1-c1", "d-s1-c1-g1"];
        let g2 = ["d", "d-s1", "d-s1-c2", "d-s1-c2-g1"];
        let g3 = ["d", "d-s2", "d-s2-c1", "d-s2-c1-g1"];
        let recs: Vec<Value> = [
            (&g1, "0102"),
            (&g1, "0102"),
            (&g2, "0102"),
            (&g2, "0505"),
            (&g3, "0505"),
        ]
        .iter()
        .map(|(c, t)| record(at, &json!({}), &answer("event", t, &c[..], "u")))
        .chain([json!({"at": "2026-11-23T10:00:00+08:00", "case_kind": "event", "case_type": "0102", "chain": []})])
        .collect();
        let s = stats(&recs, StatsLevel::Street);
        assert_eq!(s.total, 6);
        assert_eq!(s.unplaced, 1);
        assert_eq!(s.areas.iter().map(|a| (a.code.as_str(), a.total)).collect::<Vec<_>>(), [("d-s1", 4), ("d-s2", 1)]);
        assert_eq!(s.areas[0].by_type[0], TypeCount { case_kind: "event".into(), case_type: "0102".into(), count: 3 });
        assert_eq!(s.by_type[0].count, 4, "0102 over all areas, the unplaced one included");
        assert_eq!(s.by_grid.get("d-s1-c1-g1"), Some(&2));
        assert_eq!(s.by_grid.values().sum::<u64>(), 5);
        let c = stats(&recs, StatsLevel::Community);
        assert_eq!(c.areas.len(), 3);
        assert_eq!(c.areas[0].code, "d-s1-c1", "ties broken by code: c1 and c2 both have 2");
        assert_eq!(StatsLevel::parse("grid"), Some(StatsLevel::Grid));
        assert_eq!(StatsLevel::parse("city"), None);
    }
}
