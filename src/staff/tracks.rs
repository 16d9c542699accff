//! Per-person, per-day track points: the raw material of patrol coverage (巡查覆盖率,
//! [`super::patrol`]), read through [`Tracks::track`] and [`Tracks::day`] (a day whole, each
//! person's points in time order).
//!
//! Bounds: days older than `retention_days` (counted back from the newest day seen, in China
//! time) are dropped whole; a person keeps at most `max_points_per_day` points a day in memory
//! (one every 4 s for 24 h by default), later points beyond that are counted in
//! [`Tracks::dropped_points`] and not kept.
//!
//! Spill ([`Tracks::open`], a directory, `DATA/staff/tracks/` when serving): only the *open*
//! days — the newest day seen and the day before it (late reports around midnight) — are in
//! memory. When a newer day starts, the days before the open ones are *closed*: each is written
//! to `YYYY-MM-DD.csv` in the directory (a temporary file renamed over the old one) and leaves
//! memory; a closed day is read from its file when asked. A late point of a closed day is
//! appended to its file (a line torn by a crash is skipped when read). [`Tracks::flush`]
//! writes the open days too (graceful shutdown), and [`Tracks::open`] reads the open days back,
//! so tracks survive a restart. Retention deletes day files too. Without a directory
//! ([`Tracks::new`]) every day within retention stays in memory.
//!
//! Day file: CSV with the header `id,time_ms,lon,lat,accuracy_m,status` (Unix milliseconds,
//! WGS84 degrees written to round-trip exactly, accuracy empty when unknown).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::positions::{Fix, Status};

/// Default days of tracks kept.
pub const DEFAULT_RETENTION_DAYS: u32 = 7;
/// Default cap of points per person per day (one every 4 s for a whole day).
pub const DEFAULT_MAX_POINTS_PER_DAY: usize = 21_600;
/// Days held in memory when spilling: the newest day seen and the one before it.
pub const OPEN_DAYS: i64 = 2;

const HEADER: [&str; 6] = ["id", "time_ms", "lon", "lat", "accuracy_m", "status"];

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

/// Where a day's tracks are: copied out of memory, or in a closed day's file (to be read
/// without holding the store).
pub enum DaySource {
    /// The day's tracks, by id, each in time order.
    Memory(Vec<(Arc<str>, Vec<TrackPoint>)>),
    /// A closed day: read it with [`read_day_file`].
    File(PathBuf),
    /// Nothing of that day is held.
    Nothing,
}

impl DaySource {
    /// The day's tracks (reading the file if closed), by id, each in time order.
    pub fn read(self) -> std::io::Result<Vec<(Arc<str>, Vec<TrackPoint>)>> {
        match self {
            DaySource::Memory(v) => Ok(v),
            DaySource::File(path) => read_day_file(&path),
            DaySource::Nothing => Ok(Vec::new()),
        }
    }
}

/// The bounded store of track points.
pub struct Tracks {
    retention_days: u32,
    max_points_per_day: usize,
    /// The days in memory (with a directory: the open days only).
    days: BTreeMap<NaiveDate, HashMap<Arc<str>, Vec<TrackPoint>>>,
    /// The spill directory, and the closed days with a file there.
    dir: Option<PathBuf>,
    files: std::collections::BTreeSet<NaiveDate>,
    /// The newest day seen (in memory or on disk).
    newest: Option<NaiveDate>,
    dropped: u64,
}

/// The day (China time, UTC+8) a point belongs to.
pub fn day_of(time: DateTime<Utc>) -> NaiveDate {
    time.with_timezone(&crate::routing::china_tz()).date_naive()
}

impl Tracks {
    /// Tracks in memory only (a restart forgets them).
    pub fn new(retention_days: u32, max_points_per_day: usize) -> Tracks {
        Tracks {
            retention_days: retention_days.max(1),
            max_points_per_day,
            days: BTreeMap::new(),
            dir: None,
            files: Default::default(),
            newest: None,
            dropped: 0,
        }
    }

    /// Tracks spilled to `dir` (made if missing): day files older than the retention window
    /// (counted back from the newest file) are deleted, the open days are read back into memory.
    pub fn open(dir: &Path, retention_days: u32, max_points_per_day: usize) -> std::io::Result<Tracks> {
        std::fs::create_dir_all(dir)?;
        let mut t = Tracks::new(retention_days, max_points_per_day);
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') && name.ends_with(".tmp") {
                // A spill cut short by a crash: the previous file (if any) is whole.
                let _ = std::fs::remove_file(dir.join(name));
                continue;
            }
            if let Some(day) = name.strip_suffix(".csv").and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()) {
                t.files.insert(day);
            }
        }
        t.dir = Some(dir.to_owned());
        t.newest = t.files.last().copied();
        t.expire();
        if let Some(newest) = t.newest {
            let open: Vec<NaiveDate> = t.files.iter().copied().filter(|d| (newest - *d).num_days() < OPEN_DAYS).collect();
            for day in open {
                let mut held: HashMap<Arc<str>, Vec<TrackPoint>> = HashMap::new();
                for (id, mut points) in read_day_file(&t.day_path(day))? {
                    if points.len() > t.max_points_per_day {
                        t.dropped += (points.len() - t.max_points_per_day) as u64;
                        points.truncate(t.max_points_per_day);
                    }
                    held.insert(id, points);
                }
                t.files.remove(&day);
                t.days.insert(day, held);
            }
        }
        Ok(t)
    }

    fn day_path(&self, day: NaiveDate) -> PathBuf {
        self.dir.as_deref().unwrap_or(Path::new(".")).join(format!("{day}.csv"))
    }

    /// Adds a point of `id`'s track (in any order: a day is sorted when read). A point older
    /// than the retention window is not kept; a point of a closed day goes to its file.
    pub fn push(&mut self, id: &str, point: TrackPoint) {
        let day = day_of(point.time);
        if let Some(newest) = self.newest
            && (newest - day).num_days() >= self.retention_days as i64
        {
            self.dropped += 1;
            return;
        }
        if let (Some(dir), Some(newest)) = (&self.dir, self.newest)
            && (newest - day).num_days() >= OPEN_DAYS
        {
            let path = dir.join(format!("{day}.csv"));
            match append_point(&path, id, &point) {
                Ok(()) => {
                    self.files.insert(day);
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "a late track point could not be written");
                    self.dropped += 1;
                }
            }
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
        if self.newest.is_none_or(|n| day > n) {
            self.newest = Some(day);
            self.close_days();
            self.expire();
        }
    }

    /// With a directory: writes the days before the open ones to their files and drops them
    /// from memory (a day that cannot be written stays in memory, logged).
    fn close_days(&mut self) {
        let (Some(_), Some(newest)) = (&self.dir, self.newest) else { return };
        let closing: Vec<NaiveDate> = self.days.keys().copied().filter(|d| (newest - *d).num_days() >= OPEN_DAYS).collect();
        for day in closing {
            let path = self.day_path(day);
            match write_day_file(&path, &self.days[&day]) {
                Ok(()) => {
                    self.days.remove(&day);
                    self.files.insert(day);
                }
                Err(e) => tracing::warn!(file = %path.display(), error = %e, "a closed day of tracks could not be written; it stays in memory"),
            }
        }
    }

    /// Drops (and deletes the files of) days beyond retention, counted back from the newest.
    fn expire(&mut self) {
        let Some(newest) = self.newest else { return };
        let old = |d: &NaiveDate| (newest - *d).num_days() >= self.retention_days as i64;
        self.days.retain(|d, _| !old(d));
        let expired: Vec<NaiveDate> = self.files.iter().copied().filter(old).collect();
        for day in expired {
            let path = self.day_path(day);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(file = %path.display(), error = %e, "an expired day of tracks could not be deleted"),
            }
            self.files.remove(&day);
        }
    }

    /// Writes every open day to its file (graceful shutdown); they stay in memory too.
    pub fn flush(&self) -> std::io::Result<()> {
        for (day, tracks) in &self.days {
            if self.dir.is_some() {
                write_day_file(&self.day_path(*day), tracks)?;
            }
        }
        Ok(())
    }

    /// Whether `day` is in memory (an open day).
    pub fn holds(&self, day: NaiveDate) -> bool {
        self.days.contains_key(&day)
    }

    /// Where `day`'s tracks are (a copy of an open day; the file of a closed one).
    pub fn source(&self, day: NaiveDate) -> DaySource {
        if let Some(d) = self.days.get(&day) {
            let mut out: Vec<(Arc<str>, Vec<TrackPoint>)> = d.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            sort_day(&mut out);
            DaySource::Memory(out)
        } else if self.files.contains(&day) {
            DaySource::File(self.day_path(day))
        } else {
            DaySource::Nothing
        }
    }

    /// `id`'s points on `day` (China time), in time order (read from its file if closed; an
    /// unreadable file reads as nothing, logged).
    pub fn track(&self, id: &str, day: NaiveDate) -> Vec<TrackPoint> {
        if let Some(d) = self.days.get(&day) {
            let mut points = d.get(id).cloned().unwrap_or_default();
            points.sort_by_key(|p| p.time);
            return points;
        }
        self.day(day).into_iter().find(|(k, _)| &**k == id).map(|(_, v)| v).unwrap_or_default()
    }

    /// Every track of `day`, each in time order, by id (read from its file if closed).
    pub fn day(&self, day: NaiveDate) -> Vec<(Arc<str>, Vec<TrackPoint>)> {
        self.source(day).read().unwrap_or_else(|e| {
            tracing::warn!(%day, error = %e, "a day of tracks could not be read");
            Vec::new()
        })
    }

    /// The days held (in memory or in files), oldest first.
    pub fn days(&self) -> Vec<NaiveDate> {
        let mut days: Vec<NaiveDate> = self.days.keys().chain(self.files.iter()).copied().collect();
        days.sort();
        days.dedup();
        days
    }

    /// Points held in memory.
    pub fn points(&self) -> usize {
        self.days.values().flat_map(|d| d.values()).map(Vec::len).sum()
    }

    /// Points not kept (over the daily cap, older than the retention window, or not written).
    pub fn dropped_points(&self) -> u64 {
        self.dropped
    }
}

fn sort_day(day: &mut [(Arc<str>, Vec<TrackPoint>)]) {
    for (_, points) in day.iter_mut() {
        points.sort_by_key(|p| p.time);
    }
    day.sort_by(|a, b| a.0.cmp(&b.0));
}

fn record(id: &str, p: &TrackPoint) -> [String; 6] {
    [
        id.to_owned(),
        p.time.timestamp_millis().to_string(),
        p.lon.to_string(),
        p.lat.to_string(),
        p.accuracy_m.map(|a| a.to_string()).unwrap_or_default(),
        p.status.name().to_owned(),
    ]
}

/// Writes a whole day to `path` atomically (a temporary file, synced, renamed over it).
fn write_day_file(path: &Path, tracks: &HashMap<Arc<str>, Vec<TrackPoint>>) -> std::io::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("day.csv");
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let file = std::fs::File::create(&tmp)?;
    let mut w = csv::Writer::from_writer(std::io::BufWriter::new(file));
    w.write_record(HEADER)?;
    let mut ids: Vec<&Arc<str>> = tracks.keys().collect();
    ids.sort();
    for id in ids {
        let mut points = tracks[id].clone();
        points.sort_by_key(|p| p.time);
        for p in &points {
            w.write_record(record(id, p))?;
        }
    }
    let file = w.into_inner().map_err(|e| e.into_error())?.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Appends one point to a day file (made with its header if missing).
fn append_point(path: &Path, id: &str, p: &TrackPoint) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    let fresh = file.metadata()?.len() == 0;
    let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
    if fresh {
        w.write_record(HEADER)?;
    }
    w.write_record(record(id, p))?;
    file.write_all(&w.into_inner().map_err(|e| e.into_error())?)
}

/// Reads a day file: tracks by id, each in time order. Lines that cannot be read (a line torn
/// by a crash) are skipped.
pub fn read_day_file(path: &Path) -> std::io::Result<Vec<(Arc<str>, Vec<TrackPoint>)>> {
    let file = std::fs::File::open(path)?;
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(std::io::BufReader::new(file));
    let mut by_id: HashMap<Arc<str>, Vec<TrackPoint>> = HashMap::new();
    for row in reader.records() {
        let Ok(row) = row else { continue };
        let Some(point) = parse_record(&row) else { continue };
        let id = &row[0];
        match by_id.get_mut(id) {
            Some(v) => v.push(point),
            None => {
                by_id.insert(Arc::from(id), vec![point]);
            }
        }
    }
    let mut out: Vec<(Arc<str>, Vec<TrackPoint>)> = by_id.into_iter().collect();
    sort_day(&mut out);
    Ok(out)
}

fn parse_record(row: &csv::StringRecord) -> Option<TrackPoint> {
    if row.len() != HEADER.len() || row[0].is_empty() {
        return None;
    }
    let time = DateTime::<Utc>::from_timestamp_millis(row[1].parse().ok()?)?;
    let lon: f64 = row[2].parse().ok()?;
    let lat: f64 = row[3].parse().ok()?;
    let accuracy_m = if row[4].is_empty() { None } else { Some(row[4].parse().ok()?) };
    let status = Status::parse(&row[5])?;
    (lon.is_finite() && lat.is_finite()).then_some(TrackPoint { time, lon, lat, accuracy_m, status })
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

    #[test]
    fn closed_days_spill_to_files_survive_a_reopen_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Tracks::open(dir.path(), 3, 100).unwrap();
        let day = |d: u32| day_of(point(d, 1).time);
        let odd = TrackPoint { lon: 120.123_456_789_012_3, lat: 31.000_000_000_000_4, accuracy_m: Some(7.25), status: Status::Busy, ..point(1, 2) };
        t.push("a,\"quoted\"", odd);
        t.push("a,\"quoted\"", point(1, 1));
        t.push("b", point(1, 3));
        t.push("b", point(2, 3));
        assert!(!dir.path().join(format!("{}.csv", day(1))).exists(), "day 1 is still open");
        t.push("b", point(3, 3));
        assert!(dir.path().join(format!("{}.csv", day(1))).exists(), "day 1 closed: written");
        assert_eq!(t.points(), 2, "only the open days in memory");
        assert_eq!(t.track("a,\"quoted\"", day(1)), vec![point(1, 1), odd], "read back exactly, in time order");
        // A late point of a closed day goes to its file.
        t.push("c", point(1, 4));
        assert_eq!(
            t.day(day(1)).iter().map(|(id, p)| (id.to_string(), p.len())).collect::<Vec<_>>(),
            [("a,\"quoted\"".to_string(), 2), ("b".into(), 1), ("c".into(), 1)]
        );
        t.flush().unwrap();
        let before: Vec<_> = t.days().into_iter().map(|d| (d, t.day(d))).collect();
        drop(t);
        let mut t = Tracks::open(dir.path(), 3, 100).unwrap();
        assert_eq!(t.days().into_iter().map(|d| (d, t.day(d))).collect::<Vec<_>>(), before, "a reopen reads the same days");
        assert_eq!(t.points(), 2, "the open days back in memory");
        t.push("b", point(4, 3));
        assert!(!dir.path().join(format!("{}.csv", day(1))).exists(), "day 1 beyond retention: deleted");
        assert_eq!(t.days(), [day(2), day(3), day(4)]);
        assert_eq!(t.track("b", day(2)), vec![point(2, 3)]);
    }
}
