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

/// Checks `text` as the new version of `dataset` for `city` (whose settings are `meta`).
/// `Err`: why it is refused, a sentence.
pub fn check_text(dataset: Dataset, text: &str, city: &City, meta: Option<&CityMeta>) -> Result<TextChecked, String> {
    let done = |rows: u64, warnings: Vec<String>, meta: Option<CityMeta>| Ok(TextChecked { dataset, rows, warnings, meta });
    match dataset {
        Dataset::Units => done(crate::store::check_units_csv(text)?, Vec::new(), None),
        Dataset::Rules => {
            if city.grids.is_empty() {
                return Err("the city has no grids yet: import the grids first, then the responsibility list that names them".into());
            }
            match crate::routing::RuleSet::load(text, city) {
                Ok((rules, report)) => {
                    let warnings = report.issues.iter().map(|i| i.message.clone()).take(20).collect();
                    done(rules.rules.len() as u64, warnings, None)
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
            if let (Some(code), Some(top)) = (&new.code, city.grids.first()) {
                if top.code.to_string() != *code {
                    return Err(format!("code {code} is not the county code of the current grid layer ({})", top.code));
                }
            }
            let mut warnings = Vec::new();
            if let Some(old) = meta {
                if old.name != new.name {
                    warnings.push(format!("the city is renamed from {:?} to {:?}", old.name, new.name));
                }
            }
            done(1, warnings, Some(new))
        }
        other => Err(format!("{other} is a layer, not a text dataset")),
    }
}
