//! Field staff (监督员 inspectors, 网格员 grid workers): the staff register, the latest position
//! of each person with a spatial index, grid enter/leave events, and bounded tracks. No HTTP
//! here: `src/http/staff.rs` is the API over [`StaffHub`].
//!
//! - [`register`]: the register dataset (CSV: id, name, role, unit, home grids).
//! - [`input`]: position batches (JSON) checked item by item, in any supported datum.
//! - [`positions`]: the latest fix per person; nearest / in a box / in a grid, stale ones left
//!   out.
//! - [`tracks`]: per-person per-day points, bounded, closed days spilled to the data directory.
//! - [`patrol`]: patrol coverage of a day per grid (share of area near a track, minutes inside).
//! - [`simulate`]: a day of patrols along the demo city's streets, and its register.
//!
//! A position whose unit grid ([`crate::index::GridIndex::locate`]) differs from the person's
//! previous one produces one [`StaffEvent`] (`grid_change`: the grid left and the grid entered,
//! each with its chain, `null` outside every unit grid). Events go to a bounded broadcast
//! channel: the intake never waits for a reader; a reader that falls behind loses the oldest
//! events (and learns how many). Sinks (webhook queues) get each event too, without blocking.
//!
//! Live positions are coalesced: while anyone listens ([`StaffHub::subscribe_positions`]), each
//! stored position marks its person as changed (the latest fix wins); every
//! `positions_interval` a ticker sends one [`PositionsFrame`] with the people changed since the
//! previous one, at most `positions_max` of them (the rest follow in the next frame). A flood of
//! reports thus gives one frame per interval of bounded size, and the intake only ever takes a
//! short lock to mark who changed.

pub mod input;
pub mod patrol;
pub mod positions;
pub mod register;
pub mod simulate;
pub mod tracks;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::broadcast;

pub use input::{BatchError, Checked, Item, ItemError};
pub use positions::{Filter, Fix, Hit, PositionStore, Status, Stored};
pub use register::{Role, StaffMember, StaffRegister};
pub use tracks::{TrackPoint, Tracks};

use crate::index::Location;
use crate::model::GridCode;
use crate::world::World;

/// Default age after which a position is stale (left out of every answer), seconds.
pub const DEFAULT_STALE_AFTER_S: u64 = 120;
/// Default capacity of the event channel: a reader this many events behind starts losing them.
pub const DEFAULT_EVENT_BUFFER: usize = 4096;
/// Default time between two coalesced `positions` frames, milliseconds.
pub const DEFAULT_POSITIONS_INTERVAL_MS: u64 = 1000;
/// Default largest number of people in one `positions` frame.
pub const DEFAULT_POSITIONS_MAX: usize = 5000;
/// Frames a positions reader may fall behind before it is dropped (`lagged`).
const POSITIONS_BUFFER: usize = 16;

/// Settings of the staff subsystem (`[staff]` of the configuration file).
#[derive(Clone, Debug, PartialEq)]
pub struct StaffConfig {
    /// A position older than this is stale.
    pub stale_after: std::time::Duration,
    /// Days of tracks kept (in memory, or closed days in `track_dir`).
    pub track_retention_days: u32,
    /// Most track points per person per day.
    pub track_max_points_per_day: usize,
    /// Capacity of the event channel.
    pub event_buffer: usize,
    /// Time between two coalesced `positions` frames.
    pub positions_interval: std::time::Duration,
    /// Most people in one `positions` frame; more changed people wait for the next frame.
    pub positions_max: usize,
    /// Where closed days of tracks are written (`DATA/staff/tracks` when serving); `None`:
    /// tracks in memory only.
    pub track_dir: Option<std::path::PathBuf>,
}

impl Default for StaffConfig {
    fn default() -> Self {
        StaffConfig {
            stale_after: std::time::Duration::from_secs(DEFAULT_STALE_AFTER_S),
            track_retention_days: tracks::DEFAULT_RETENTION_DAYS,
            track_max_points_per_day: tracks::DEFAULT_MAX_POINTS_PER_DAY,
            event_buffer: DEFAULT_EVENT_BUFFER,
            positions_interval: std::time::Duration::from_millis(DEFAULT_POSITIONS_INTERVAL_MS),
            positions_max: DEFAULT_POSITIONS_MAX,
            track_dir: None,
        }
    }
}

/// A grid enter/leave event, serialised once (SSE and webhooks send the same bytes).
#[derive(Debug)]
pub struct StaffEvent {
    /// Increasing from 1 over the server's life (the SSE `id`).
    pub seq: u64,
    /// `grid_change`.
    pub kind: &'static str,
    /// The event as JSON (see docs/staff.md).
    pub json: String,
}

/// One coalesced `positions` frame: the latest fix of each person whose position changed since
/// the previous frame, by id.
#[derive(Debug)]
pub struct PositionsFrame {
    /// When the frame was made.
    pub time: DateTime<Utc>,
    pub people: Vec<Hit>,
    /// More people changed than a frame holds: the others come in the next frame.
    pub more: bool,
}

/// What one batch did.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct BatchOutcome {
    /// Items stored as their person's current position.
    pub accepted: usize,
    /// Items older than the position already held (kept in the track only).
    pub older: usize,
    /// Items refused, with why.
    pub rejected: Vec<RejectedItem>,
    /// Grid enter/leave events produced.
    pub events: usize,
}

/// A refused item of a batch.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RejectedItem {
    /// Position in the batch, from 0.
    pub index: usize,
    pub id: Option<String>,
    pub error: ItemError,
}

/// Something that takes every event (a webhook queue); must not block.
pub type EventSink = Arc<dyn Fn(&Arc<StaffEvent>) + Send + Sync>;

/// The staff subsystem of a running server.
pub struct StaffHub {
    config: StaffConfig,
    /// The register and the `staff` dataset version it came from.
    register: RwLock<(Option<u64>, Arc<StaffRegister>)>,
    store: RwLock<PositionStore>,
    tracks: Mutex<Tracks>,
    events: broadcast::Sender<Arc<StaffEvent>>,
    seq: AtomicU64,
    sinks: RwLock<Vec<EventSink>>,
    /// Coalesced positions frames (see [`StaffHub::subscribe_positions`]).
    positions: broadcast::Sender<Arc<PositionsFrame>>,
    /// People whose position changed since the last frame, with their latest fix (only while
    /// someone listens).
    changed: Mutex<HashMap<String, Hit>>,
    /// The frame ticker runs.
    ticking: AtomicBool,
    /// Position items accepted, older, rejected (for /metrics).
    counted: [AtomicU64; 3],
}

/// Totals since the server started (for /metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StaffTotals {
    /// Position items stored as current, kept in the track only (older), refused.
    pub accepted: u64,
    pub older: u64,
    pub rejected: u64,
    /// Grid enter/leave events emitted.
    pub events: u64,
    /// Track points held in memory, and not kept (over the daily cap, beyond retention).
    pub track_points: u64,
    pub track_points_dropped: u64,
}

impl StaffHub {
    /// An empty hub (no register, no positions) indexing around `centre` (lon, lat).
    pub fn new(config: StaffConfig, centre: [f64; 2]) -> StaffHub {
        let (events, _) = broadcast::channel(config.event_buffer.max(1));
        let tracks = match &config.track_dir {
            None => Tracks::new(config.track_retention_days, config.track_max_points_per_day),
            Some(dir) => Tracks::open(dir, config.track_retention_days, config.track_max_points_per_day).unwrap_or_else(|e| {
                tracing::warn!(dir = %dir.display(), error = %e, "the tracks directory cannot be used: tracks are kept in memory only");
                Tracks::new(config.track_retention_days, config.track_max_points_per_day)
            }),
        };
        StaffHub {
            store: RwLock::new(PositionStore::new(geo_types::Coord { x: centre[0], y: centre[1] })),
            tracks: Mutex::new(tracks),
            register: RwLock::new((None, Arc::new(StaffRegister::default()))),
            events,
            seq: AtomicU64::new(0),
            sinks: RwLock::new(Vec::new()),
            positions: broadcast::channel(POSITIONS_BUFFER).0,
            changed: Mutex::new(HashMap::new()),
            ticking: AtomicBool::new(false),
            counted: Default::default(),
            config,
        }
    }

    pub fn config(&self) -> &StaffConfig {
        &self.config
    }

    /// The register in use.
    pub fn register(&self) -> Arc<StaffRegister> {
        self.register.read().unwrap_or_else(PoisonError::into_inner).1.clone()
    }

    /// The `staff` dataset version the register came from (`None`: set directly, or none).
    pub fn register_version(&self) -> Option<u64> {
        self.register.read().unwrap_or_else(PoisonError::into_inner).0
    }

    /// Uses `register` (of dataset version `version`) from now on; positions held follow it.
    pub fn set_register(&self, register: StaffRegister, version: Option<u64>) {
        let register = Arc::new(register);
        self.store.write().unwrap_or_else(PoisonError::into_inner).follow_register(&register);
        *self.register.write().unwrap_or_else(PoisonError::into_inner) = (version, register);
    }

    /// A new receiver of the events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StaffEvent>> {
        self.events.subscribe()
    }

    /// A new receiver of the coalesced `positions` frames from now on. The first call starts
    /// the ticker (on the current tokio runtime) that sends a frame every `positions_interval`
    /// when someone's position changed; it stops when the hub is dropped.
    pub fn subscribe_positions(self: &Arc<Self>) -> broadcast::Receiver<Arc<PositionsFrame>> {
        let rx = self.positions.subscribe();
        if !self.ticking.swap(true, Ordering::AcqRel) {
            let hub = Arc::downgrade(self);
            let every = self.config.positions_interval.max(std::time::Duration::from_millis(10));
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(hub) = hub.upgrade() else { return };
                    hub.flush_positions();
                }
            });
        }
        rx
    }

    /// Sends a frame of the people changed since the last one (at most `positions_max`, those
    /// that waited longest first; the rest stay for the next frame) and returns it; `None` when
    /// nobody changed or nobody listens (what changed is then forgotten).
    pub fn flush_positions(&self) -> Option<Arc<PositionsFrame>> {
        let mut people: Vec<Hit> = {
            let mut changed = self.changed.lock().unwrap_or_else(PoisonError::into_inner);
            if changed.is_empty() {
                return None;
            }
            if self.positions.receiver_count() == 0 {
                changed.clear();
                return None;
            }
            if changed.len() <= self.config.positions_max.max(1) {
                std::mem::take(&mut *changed).into_values().collect()
            } else {
                let mut oldest: Vec<(DateTime<Utc>, String)> = changed.values().map(|h| (h.fix.time, h.member.id.clone())).collect();
                oldest.sort_unstable();
                oldest.truncate(self.config.positions_max.max(1));
                oldest.into_iter().filter_map(|(_, id)| changed.remove(&id)).collect()
            }
        };
        let more = !self.changed.lock().unwrap_or_else(PoisonError::into_inner).is_empty();
        people.sort_unstable_by(|a, b| a.member.id.cmp(&b.member.id));
        let frame = Arc::new(PositionsFrame { time: Utc::now(), people, more });
        let _ = self.positions.send(frame.clone());
        Some(frame)
    }

    /// Adds a sink that gets every event from now on.
    pub fn add_sink(&self, sink: EventSink) {
        self.sinks.write().unwrap_or_else(PoisonError::into_inner).push(sink);
    }

    /// The positions older than this at `now` are stale.
    pub fn fresh_since(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - chrono::Duration::from_std(self.config.stale_after).unwrap_or(chrono::Duration::MAX)
    }

    /// Stores checked items (each the person's position if newer than the one held, and a
    /// track point), locating each in `world`'s unit grids; refused items are reported by
    /// index. Events for grid changes go out before this returns, never blocking.
    pub fn apply(&self, world: &World, items: Vec<Checked>) -> BatchOutcome {
        let register = self.register();
        let mut outcome = BatchOutcome::default();
        // (who, where, grid left, grid entered)
        type Change = (Arc<StaffMember>, Fix, Option<GridCode>, Option<GridCode>);
        let mut changes: Vec<Change> = Vec::new();
        let mut track: Vec<(usize, TrackPoint)> = Vec::with_capacity(items.len());
        let mut checked: Vec<(usize, Arc<StaffMember>, Fix, Option<GridCode>)> = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            match item {
                Err((id, error)) => outcome.rejected.push(RejectedItem { index, id, error }),
                Ok(Item { id, fix }) => match register.get(&id) {
                    None => outcome.rejected.push(RejectedItem {
                        index,
                        error: ItemError { code: "unknown_staff", message: format!("{id} is not in the staff register"), parameter: Some("id".into()) },
                        id: Some(id),
                    }),
                    Some(member) => {
                        let grid = unit_grid(world, &fix);
                        checked.push((index, member.clone(), fix, grid));
                    }
                },
            }
        }
        let live = self.positions.receiver_count() > 0;
        let mut moved: Vec<Hit> = Vec::new();
        {
            let mut store = self.store.write().unwrap_or_else(PoisonError::into_inner);
            for (index, member, fix, grid) in &checked {
                match store.store(member, *fix, *grid) {
                    Stored::Updated { first, previous_grid } => {
                        outcome.accepted += 1;
                        if live {
                            moved.push(Hit { member: member.clone(), fix: *fix, grid: *grid, distance_m: 0.0 });
                        }
                        if (first && grid.is_some()) || (!first && previous_grid != *grid) {
                            changes.push((member.clone(), *fix, if first { None } else { previous_grid }, *grid));
                        }
                    }
                    Stored::Older => outcome.older += 1,
                }
                track.push((*index, TrackPoint::from(*fix)));
            }
        }
        {
            let mut tracks = self.tracks.lock().unwrap_or_else(PoisonError::into_inner);
            for ((_, member, _, _), (_, point)) in checked.iter().zip(&track) {
                tracks.push(&member.id, *point);
            }
        }
        if !moved.is_empty() {
            let mut changed = self.changed.lock().unwrap_or_else(PoisonError::into_inner);
            for hit in moved {
                changed.insert(hit.member.id.clone(), hit); // newer than any held: stored as current
            }
        }
        outcome.events = changes.len();
        for (counter, n) in self.counted.iter().zip([outcome.accepted, outcome.older, outcome.rejected.len()]) {
            counter.fetch_add(n as u64, Ordering::Relaxed);
        }
        if !changes.is_empty() {
            let sinks = self.sinks.read().unwrap_or_else(PoisonError::into_inner).clone();
            for (member, fix, left, entered) in changes {
                let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
                let event = Arc::new(StaffEvent { seq, kind: "grid_change", json: event_json(world, seq, &member, &fix, left, entered).to_string() });
                for sink in &sinks {
                    sink(&event);
                }
                // No receiver: nobody listens, nothing to do.
                let _ = self.events.send(event);
            }
        }
        outcome
    }

    /// The `k` people nearest `p` (WGS84 lon/lat) that `filter` accepts, within `max_m`.
    pub fn nearest(&self, p: [f64; 2], k: usize, filter: &Filter, max_m: Option<f64>) -> Vec<Hit> {
        self.store.read().unwrap_or_else(PoisonError::into_inner).nearest(geo_types::Coord { x: p[0], y: p[1] }, k, filter, max_m)
    }

    /// People in a lon/lat box, by id (at most `limit`; `true`: there were more).
    pub fn in_bbox(&self, bbox: [f64; 4], filter: &Filter, limit: usize) -> (Vec<Hit>, bool) {
        self.store.read().unwrap_or_else(PoisonError::into_inner).in_bbox(bbox, filter, limit)
    }

    /// People whose unit grid is `grid` or lies in it, by id.
    pub fn in_grid(&self, grid: GridCode, filter: &Filter, limit: usize) -> (Vec<Hit>, bool) {
        self.store.read().unwrap_or_else(PoisonError::into_inner).in_grid(grid, filter, limit)
    }

    /// The latest position of `id` (stale or not).
    pub fn position(&self, id: &str) -> Option<Hit> {
        self.store.read().unwrap_or_else(PoisonError::into_inner).get(id)
    }

    /// People with a position.
    pub fn people(&self) -> usize {
        self.store.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// `id`'s track on `day` (China time), in time order. A closed day is read from its file
    /// without holding the intake up (a file that cannot be read reads as nothing, logged).
    pub fn track(&self, id: &str, day: NaiveDate) -> Vec<TrackPoint> {
        let source = {
            let tracks = self.tracks.lock().unwrap_or_else(PoisonError::into_inner);
            if tracks.holds(day) {
                return tracks.track(id, day);
            }
            tracks.source(day)
        };
        match source.read() {
            Ok(day) => day.into_iter().find(|(k, _)| &**k == id).map(|(_, v)| v).unwrap_or_default(),
            Err(e) => {
                tracing::warn!(%day, error = %e, "a day of tracks could not be read");
                Vec::new()
            }
        }
    }

    /// Every track of `day`, by id, each in time order (for patrol coverage). A closed day is
    /// read from its file without holding the intake up.
    pub fn tracks_of_day(&self, day: NaiveDate) -> std::io::Result<Vec<(Arc<str>, Vec<TrackPoint>)>> {
        let source = self.tracks.lock().unwrap_or_else(PoisonError::into_inner).source(day);
        source.read()
    }

    /// Writes the open days of tracks to the tracks directory (graceful shutdown; nothing
    /// without a directory).
    pub fn flush_tracks(&self) -> std::io::Result<()> {
        self.tracks.lock().unwrap_or_else(PoisonError::into_inner).flush()
    }

    /// Totals since start: positions, events, track points (for /metrics).
    pub fn totals(&self) -> StaffTotals {
        let (held, dropped) = self.track_stats();
        let [accepted, older, rejected] = [0, 1, 2].map(|i| self.counted[i].load(Ordering::Relaxed));
        StaffTotals { accepted, older, rejected, events: self.seq.load(Ordering::Relaxed), track_points: held as u64, track_points_dropped: dropped }
    }

    /// Track points held, and points not kept (over the bounds).
    pub fn track_stats(&self) -> (usize, u64) {
        let t = self.tracks.lock().unwrap_or_else(PoisonError::into_inner);
        (t.points(), t.dropped_points())
    }
}

/// The unit grid a fix lies in (`None` outside every unit grid).
pub fn unit_grid(world: &World, fix: &Fix) -> Option<GridCode> {
    match world.grids.locate(&world.city, fix.coord()) {
        Location::Inside { grid, .. } => Some(world.city.grid(grid).code),
        _ => None,
    }
}

/// A person as answers and events show them.
pub fn member_json(m: &StaffMember) -> Value {
    json!({"id": m.id, "name": m.name, "role": m.role, "unit": m.unit})
}

/// A unit grid with its chain (district first), or `null`.
pub fn grid_json(world: &World, code: Option<GridCode>) -> Value {
    let Some(code) = code else { return Value::Null };
    match world.city.grid_by_code(code) {
        Some(id) => json!({"code": code.to_string(), "name": world.city.grid(id).name, "chain": crate::lookup::chain(world, id)}),
        None => json!({"code": code.to_string(), "name": null, "chain": []}),
    }
}

fn event_json(world: &World, seq: u64, member: &StaffMember, fix: &Fix, left: Option<GridCode>, entered: Option<GridCode>) -> Value {
    json!({
        "seq": seq,
        "type": "grid_change",
        "time": fix.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "staff": member_json(member),
        "status": fix.status,
        "position": {"lon": fix.lon, "lat": fix.lat, "accuracy_m": fix.accuracy_m},
        "left": grid_json(world, left),
        "entered": grid_json(world, entered),
    })
}
