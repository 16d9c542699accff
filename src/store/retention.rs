//! Version retention: which old versions a data directory lets go, so that uploads do not fill
//! the disk (every layer version is a whole file: a city's components are tens of MB each).
//!
//! A version is **kept** if any of these holds:
//! - it is its dataset's current version;
//! - it was current just before the change being committed (the "previous" one: what a
//!   failed switch restores, and what an operator rolls back to first);
//! - it is among the newest `keep_versions` of its dataset (by number);
//! - it is younger than `keep_days` days.
//!
//! Everything else is dropped from the manifest in the same commit that makes the change, and
//! its file is removed after that commit (a crash in between leaves only a file no manifest
//! lists, which [`super::Store::open`] removes). Version numbers are never given out again:
//! the manifest remembers the highest one ([`super::History::last`]).

use chrono::{DateTime, Utc};

use super::Versions;
use super::manifest::{History, Manifest};

/// How many old versions of each dataset are kept. Default: the newest 10, and any younger
/// than 30 days (whichever keeps more).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// The newest versions of each dataset kept whatever their age (at least 1).
    pub keep_versions: usize,
    /// Versions younger than this many days are kept whatever their number (0: age keeps none).
    pub keep_days: u32,
}

/// Default of `[retention] keep_versions`.
pub const DEFAULT_KEEP_VERSIONS: usize = 10;
/// Default of `[retention] keep_days`.
pub const DEFAULT_KEEP_DAYS: u32 = 30;

impl Default for Retention {
    fn default() -> Self {
        Retention { keep_versions: DEFAULT_KEEP_VERSIONS, keep_days: DEFAULT_KEEP_DAYS }
    }
}

impl Retention {
    /// Keeps every version (tests, and `keep_versions = usize::MAX`).
    pub const KEEP_ALL: Retention = Retention { keep_versions: usize::MAX, keep_days: 0 };

    /// Checks the settings: at least one version is kept by number.
    pub fn check(&self) -> Result<(), String> {
        if self.keep_versions == 0 {
            return Err("keep_versions must be at least 1 (the current version is always kept; 1 keeps only it and the previous one)".into());
        }
        Ok(())
    }

    /// The version numbers of `history` that this retention lets go, given the version that
    /// was current before the change (`previous`, 0: none) and the time now. A version whose
    /// `created` time cannot be read counts as new (kept by age while `keep_days` > 0).
    pub fn expired(&self, history: &History, previous: u64, now: DateTime<Utc>) -> Vec<u64> {
        let mut numbers: Vec<u64> = history.versions.iter().map(|v| v.version).collect();
        numbers.sort_unstable_by(|a, b| b.cmp(a));
        let newest: Vec<u64> = numbers.iter().copied().take(self.keep_versions.max(1)).collect();
        history
            .versions
            .iter()
            .filter(|v| v.version != history.current && v.version != previous && !newest.contains(&v.version))
            .filter(|v| {
                let age_days = DateTime::parse_from_rfc3339(&v.created).map(|t| (now - t.with_timezone(&Utc)).num_seconds() as f64 / 86_400.0);
                match age_days {
                    Ok(days) => days >= f64::from(self.keep_days),
                    Err(_) => self.keep_days == 0,
                }
            })
            .map(|v| v.version)
            .collect()
    }

    /// Drops the expired versions of every dataset of `next` (the manifest about to be
    /// committed; `before`: the versions current until now). Returns the files to remove once
    /// `next` is committed, relative to the data directory, with (dataset, version) for the log.
    pub(super) fn prune(&self, next: &mut Manifest, before: &Versions, now: DateTime<Utc>) -> Vec<Pruned> {
        let mut pruned = Vec::new();
        for (name, history) in next.datasets.iter_mut() {
            let expired = self.expired(history, before.get(name).unwrap_or(0), now);
            if expired.is_empty() {
                continue;
            }
            history.last = history.latest();
            history.versions.retain(|v| {
                let gone = expired.contains(&v.version);
                if gone {
                    pruned.push(Pruned { dataset: name.clone(), version: v.version, file: v.file.clone(), bytes: v.bytes });
                }
                !gone
            });
        }
        pruned
    }
}

/// A version let go by retention.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pruned {
    pub dataset: String,
    pub version: u64,
    /// Relative to the data directory.
    pub file: String,
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::VersionInfo;

    fn history(current: u64, versions: &[(u64, &str)]) -> History {
        History {
            current,
            versions: versions
                .iter()
                .map(|&(version, created)| VersionInfo {
                    version,
                    file: format!("rules/{version}.csv"),
                    features: 1,
                    bytes: 10,
                    created: created.into(),
                    source: "test".into(),
                })
                .collect(),
            last: 0,
        }
    }

    #[test]
    fn the_newest_n_the_current_and_the_previous_are_kept_and_the_rest_expire() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T00:00:00Z").unwrap().with_timezone(&Utc);
        let old = "2026-01-01T00:00:00Z";
        let h = history(2, &[(1, old), (2, old), (3, old), (4, old), (5, old), (6, old)]);
        let r = Retention { keep_versions: 2, keep_days: 0 };
        // Newest 2: 6 and 5. Current: 2 (rolled back). Previous: 4.
        assert_eq!(r.expired(&h, 4, now), [1, 3]);
        assert_eq!(r.expired(&h, 0, now), [1, 3, 4]);
        assert!(Retention::KEEP_ALL.expired(&h, 0, now).is_empty());
    }

    #[test]
    fn young_versions_are_kept_by_age_whatever_their_number() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T00:00:00Z").unwrap().with_timezone(&Utc);
        let h = history(4, &[(1, "2026-11-01T00:00:00Z"), (2, "2026-12-01T00:00:00Z"), (3, "2026-12-06T23:00:00Z"), (4, "2026-12-07T00:00:00Z")]);
        let r = Retention { keep_versions: 1, keep_days: 7 };
        assert_eq!(r.expired(&h, 0, now), [1], "2 is 6 days old, 3 is 1 hour old: both kept by age");
        let r = Retention { keep_versions: 1, keep_days: 0 };
        assert_eq!(r.expired(&h, 3, now), [1, 2]);
        assert!(Retention { keep_versions: 0, keep_days: 1 }.check().is_err());
    }

    #[test]
    fn pruning_remembers_the_highest_number_so_it_is_never_given_again() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T00:00:00Z").unwrap().with_timezone(&Utc);
        let old = "2026-01-01T00:00:00Z";
        let mut m = Manifest::default();
        m.datasets.insert("rules".into(), history(1, &[(1, old), (2, old), (3, old)]));
        // Rolled back to 1 with keep 1: the newest (3) is kept by number, 2 goes.
        let r = Retention { keep_versions: 1, keep_days: 0 };
        let pruned = r.prune(&mut m, &Versions(Default::default()), now);
        assert_eq!(pruned.iter().map(|p| p.version).collect::<Vec<_>>(), [2]);
        assert_eq!(pruned[0].file, "rules/2.csv");
        assert_eq!(m.datasets["rules"].latest(), 3);
        assert_eq!(m.datasets["rules"].last, 3);
    }
}
