//! The datasets that are text, not layers: the unit register (CSV), the responsibility list
//! (CSV), the working calendar (TOML) and the city settings (TOML). Each is checked against the
//! city it will be served with before it is stored.

use serde::Serialize;

use crate::model::City;
use crate::store::{CityMeta, Dataset};

/// A text dataset that passed its checks, ready to store.
#[derive(Clone, Debug, Serialize)]
pub struct TextChecked {
    pub dataset: Dataset,
    /// Units, rules, holidays + make-up days, or 1 for the city settings.
    pub rows: u64,
    /// What the checks found that does not stop the import (e.g. a rule type without rules).
    pub warnings: Vec<String>,
    /// The city settings, for [`Dataset::City`].
    #[serde(skip)]
    pub meta: Option<CityMeta>,
}

/// Checks `text` as the new version of `dataset` for `city` (whose settings are `meta`, and
/// whose responsibility list in force is `rules`). `Err`: why it is refused, a sentence.
pub fn check_text(dataset: Dataset, text: &str, city: &City, meta: Option<&CityMeta>, rules: Option<&str>, allow_shrink: bool) -> Result<TextChecked, String> {
    let done = |rows: u64, warnings: Vec<String>, meta: Option<CityMeta>| Ok(TextChecked { dataset, rows, warnings, meta });
    match dataset {
        Dataset::Units => {
            let units = crate::store::units_from_csv(text)?;
            if let Some(rules) = rules {
                let dropped = units_the_rules_lose(rules, city, &units);
                if !dropped.is_empty() {
                    return Err(format!(
                        "the responsibility list in force names units that neither the new register nor any layer has: {} — keep them in the register, or change the list first",
                        dropped.join(", ")
                    ));
                }
            }
            done(units.len() as u64, Vec::new(), None)
        }
        Dataset::Rules => {
            if city.grids.is_empty() {
                return Err("the city has no grids yet: import the grids first, then the responsibility list that names them".into());
            }
            match crate::routing::RuleSet::load(text, city) {
                Ok((set, report)) => {
                    let current = rules.and_then(|csv| crate::routing::RuleSet::load(csv, city).ok()).map(|(c, _)| c.rules.len());
                    if let Some(why) = rules_shrink_problem(set.rules.len(), current, allow_shrink) {
                        return Err(why);
                    }
                    let warnings = report.issues.iter().map(|i| i.message.clone()).take(20).collect();
                    done(set.rules.len() as u64, warnings, None)
                }
                Err(e) => Err(format!("the responsibility list does not route uniquely on the current grids: {e}")),
            }
        }
        Dataset::Calendar => {
            let calendar = crate::routing::WorkCalendar::from_toml(text).map_err(|e| e.to_string())?;
            done((calendar.holidays.len() + calendar.workdays.len()) as u64, Vec::new(), None)
        }
        Dataset::City => {
            let new = CityMeta::from_toml(text)?;
            if !city.grids.is_empty() && new.hierarchy != city.hierarchy {
                return Err("the new settings' grid hierarchy differs from the codes of the current grid layer: change both in one city package".into());
            }
            if let (Some(code), Some(top)) = (&new.code, city.grids.first())
                && top.code.to_string() != *code
            {
                return Err(format!("code {code} is not the county code of the current grid layer ({})", top.code));
            }
            let mut warnings = Vec::new();
            if let Some(old) = meta
                && old.name != new.name
            {
                warnings.push(format!("the city is renamed from {:?} to {:?}", old.name, new.name));
            }
            done(1, warnings, Some(new))
        }
        Dataset::Staff => {
            let register = crate::staff::StaffRegister::from_csv(text)?;
            let unknown = register.unknown_home_grids(city);
            let mut warnings = Vec::new();
            if !unknown.is_empty() {
                warnings.push(format!(
                    "{} home grids are not unit grids of the city: {}",
                    unknown.len(),
                    unknown.iter().take(10).cloned().collect::<Vec<_>>().join(", ")
                ));
            }
            done(register.len() as u64, warnings, None)
        }
        other => Err(format!("{other} is a layer, not a text dataset")),
    }
}

/// Why a responsibility list of `new` rules must not replace one of `current`: an empty list
/// (every case would go to the street office with no rule, silently), or — unless
/// `allow_shrink` — fewer than half the rules in force (more likely a partial file than a new
/// list). `None`: it may.
pub fn rules_shrink_problem(new: usize, current: Option<usize>, allow_shrink: bool) -> Option<String> {
    if new == 0 {
        return Some("the list holds no rule: an empty responsibility list is never accepted (every case would fall to the street office with no rule)".into());
    }
    match current {
        Some(current) if !allow_shrink && new * 2 < current => Some(format!(
            "the list has {new} rules where the one in force has {current}: fewer than half, more likely a partial file; send allow_shrink=true (--allow-shrink) if the list really shrinks"
        )),
        _ => None,
    }
}

/// The unit names (`unit`, `escalation` columns; roles such as `@street` aside) of the
/// responsibility list `rules` that would be gone with the register `units`: named by no grid,
/// component or zone of `city` and absent from the register.
fn units_the_rules_lose(rules: &str, city: &City, units: &[crate::model::Unit]) -> Vec<String> {
    use std::collections::BTreeSet;
    let mut kept: BTreeSet<&str> = units.iter().map(|u| u.name.as_str()).collect();
    let name = |u: Option<crate::model::UnitId>| u.map(|u| city.units.get(u).name.as_str());
    kept.extend(city.grids.iter().filter_map(|g| name(g.unit)));
    kept.extend(city.zones.iter().filter_map(|z| name(z.unit)));
    for c in &city.components {
        kept.extend([name(c.dept), name(c.owner), name(c.maintainer)].into_iter().flatten());
    }
    let text = rules.strip_prefix('\u{feff}').unwrap_or(rules);
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
    let Ok(header) = reader.headers().cloned() else { return Vec::new() };
    let columns: Vec<usize> = header.iter().enumerate().filter(|(_, h)| matches!(h.trim(), "unit" | "escalation")).map(|(i, _)| i).collect();
    let mut lost = BTreeSet::new();
    for row in reader.records().flatten() {
        for &i in &columns {
            let unit = row.get(i).unwrap_or("").trim();
            if !unit.is_empty() && !unit.starts_with('@') && !kept.contains(unit) {
                lost.insert(unit.to_owned());
            }
        }
    }
    lost.into_iter().collect()
}
