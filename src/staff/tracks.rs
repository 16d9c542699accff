//! Per-person, per-day track points, bounded, in memory: the raw material of patrol coverage
//! (巡查覆盖率, a later feature), which reads them through [`Tracks::track`] and
//! [`Tracks::day`].
//!
//! Bounds: days older than `retention_days` (counted back from the newest day seen, in China
//! time) are dropped whole; a person keeps at most `max_points_per_day` points a day (one every
//! 4 s for 24 h by default), later points beyond that are counted in
//! [`Tracks::dropped_points`] and not kept.
//!
//! TODO(staff tracks, issue 18 item 4): spill closed days to disk (one FlatGeobuf or CSV per
//! day in the data directory) so tracks survive a restart and retention can be longer than
//! memory allows; the API below stays the same (a day is read whole, in time order).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::positions::{Fix, Status};

/// Default days of tracks kept.
pub const DEFAULT_RETENTION_DAYS: u32 = 7;
/// Default cap of points per person per day (one every 4 s for a whole day).
pub const DEFAULT_MAX_POINTS_PER_DAY: usize = 21_600;

/// One point of a track.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TrackPoint {
    pub time: DateTime<Utc>,
    pub lon: f64,
    pub lat: f64,
    pub accuracy_m: Option<f64>,
    pub status: Status,
}

impl From<Fix> for TrackPoint {
    fn from(f: Fix) -> TrackPoint {
        TrackPoint { time: f.time, lon: f.lon, lat: f.lat, accuracy_m: f.accuracy_m, status: f.status }
    }
}

/// The bounded store of track points.
pub struct Tracks {
    retention_days: u32,
    max_points_per_day: usize,
    days: BTreeMap<NaiveDate, HashMap<Arc<str>, Vec<TrackPoint>>>,
    dropped: u64,
}

/// The day (China time, UTC+8) a point belongs to.
pub fn day_of(time: DateTime<Utc>) -> NaiveDate {
    time.with_timezone(&crate::routing::china_tz()).date_naive()
}

impl Tracks {
    pub fn new(retention_days: u32, max_points_per_day: usize) -> Tracks {
        Tracks { retention_days: retention_days.max(1), max_points_per_day, days: BTreeMap::new(), dropped: 0 }
    }

    /// Adds a point of `id`'s track (in any order: a day is sorted when read). A point older
    /// than the retention window is not kept.
    pub fn push(&mut self, id: &str, point: TrackPoint) {
        let day = day_of(point.time);
        if let Some((&newest, _)) = self.days.last_key_value()
            && (newest - day).num_days() >= self.retention_days as i64
        {
            self.dropped += 1;
            return;
        }
        let points = match self.days.entry(day).or_default().get_mut(id) {
            Some(points) => points,
            None => self.days.get_mut(&day).expect("just made").entry(Arc::from(id)).or_default(),
        };
        if points.len() >= self.max_points_per_day {
            self.dropped += 1;
            return;
        }
        points.push(point);
        // Days beyond retention, counted back from the newest.
        while let (Some((&oldest, _)), Some((&newest, _))) = (self.days.first_key_value(), self.days.last_key_value()) {
            if (newest - oldest).num_days() < self.retention_days as i64 {
                break;
            }
            self.days.pop_first();
        }
    }

    /// `id`'s points on `day` (China time), in time order.
    pub fn track(&self, id: &str, day: NaiveDate) -> Vec<TrackPoint> {
        let mut points = self.days.get(&day).and_then(|d| d.get(id)).cloned().unwrap_or_default();
        points.sort_by_key(|p| p.time);
        points
    }

    /// Every track of `day`, each in time order, by id.
    pub fn day(&self, day: NaiveDate) -> Vec<(Arc<str>, Vec<TrackPoint>)> {
        let mut out: Vec<(Arc<str>, Vec<TrackPoint>)> = self.days.get(&day).map(|d| d.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
        for (_, points) in &mut out {
            points.sort_by_key(|p| p.time);
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The days held, oldest first.
    pub fn days(&self) -> Vec<NaiveDate> {
        self.days.keys().copied().collect()
    }

    /// Points held in all.
    pub fn points(&self) -> usize {
        self.days.values().flat_map(|d| d.values()).map(Vec::len).sum()
    }

    /// Points not kept (over the daily cap, or older than the retention window).
    pub fn dropped_points(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(day: u32, hour: u32) -> TrackPoint {
        let time = chrono::NaiveDate::from_ymd_opt(2026, 12, day).unwrap().and_hms_opt(hour, 0, 0).unwrap().and_utc();
        TrackPoint { time, lon: 120.0, lat: 31.0, accuracy_m: None, status: Status::Available }
    }

    #[test]
    fn days_and_points_are_bounded() {
        let mut t = Tracks::new(2, 3);
        for h in [5, 1, 2, 3] {
            t.push("a", point(1, h));
        }
        assert_eq!(t.track("a", day_of(point(1, 1).time)).iter().map(|p| p.time).collect::<Vec<_>>(), [1, 2, 5].map(|h| point(1, h).time));
        assert_eq!(t.dropped_points(), 1);
        t.push("a", point(2, 1));
        t.push("a", point(3, 1));
        assert_eq!(t.days().len(), 2, "{:?}", t.days());
        t.push("b", point(1, 1));
        assert_eq!(t.dropped_points(), 2, "a point older than the window is not kept");
    }
}
