//! The latest position of each person, in memory, with a uniform grid of square cells in metres
//! (on the [`LocalPlane`] of the city) as spatial index: an update that stays in its cell
//! changes one slot, one that leaves it moves one entry between two small cell lists, so the
//! index never needs a rebuild at 100k updates per second.
//!
//! Nearest-neighbour searches walk rings of cells outwards and stop once no unvisited cell can
//! hold anyone nearer than the k-th found (plane distances bounded against great-circle
//! distances with [`LocalPlane::search_stretch`]); every reported distance is haversine
//! ([`crate::crs::distance`]), so answers equal a brute-force scan's.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use geo_types::{Coord, Rect};
use serde::Serialize;

use super::register::{Role, StaffMember, StaffRegister};
use crate::crs::distance::{DistanceFrom, LocalPlane};
use crate::model::GridCode;

/// Edge of an index cell, metres.
pub const CELL_M: f64 = 250.0;
/// Rings searched before a query falls back to scanning everyone (sparse staff, far query).
const MAX_RINGS: i64 = 48;

/// What a person reports being.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Free to take a task.
    Available,
    /// On a task.
    Busy,
    /// Not working (phone on, shift over).
    OffDuty,
}

impl Status {
    /// `available`, `busy`, `off_duty` (also `off-duty`, `offduty`).
    pub fn parse(s: &str) -> Option<Status> {
        match s.trim().to_ascii_lowercase().as_str() {
            "available" => Some(Status::Available),
            "busy" => Some(Status::Busy),
            "off_duty" | "off-duty" | "offduty" => Some(Status::OffDuty),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Status::Available => "available",
            Status::Busy => "busy",
            Status::OffDuty => "off_duty",
        }
    }
}

/// One position report, checked and in WGS84.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Fix {
    pub lon: f64,
    pub lat: f64,
    /// When the phone measured it.
    pub time: DateTime<Utc>,
    /// GPS accuracy radius, metres, if reported.
    pub accuracy_m: Option<f64>,
    pub status: Status,
}

impl Fix {
    pub fn coord(&self) -> Coord<f64> {
        Coord { x: self.lon, y: self.lat }
    }
}

struct Slot {
    /// `None`: the person left the register; kept out of every answer.
    member: Option<Arc<StaffMember>>,
    fix: Fix,
    cell: (i32, i32),
    /// The unit grid the last position was in (`None`: outside every unit grid).
    grid: Option<GridCode>,
}

/// Which people a query wants.
#[derive(Clone, Copy, Debug)]
pub struct Filter {
    pub role: Option<Role>,
    /// `None`: any status.
    pub status: Option<Status>,
    /// Only people whose current unit grid is this grid or lies in it (a street, a community).
    pub within: Option<GridCode>,
    /// Positions measured before this are stale and left out.
    pub fresh_since: DateTime<Utc>,
}

impl Filter {
    fn accepts(&self, slot: &Slot) -> bool {
        let Some(member) = &slot.member else { return false };
        slot.fix.time >= self.fresh_since
            && self.role.is_none_or(|r| r == member.role)
            && self.status.is_none_or(|s| s == slot.fix.status)
            && self.within.is_none_or(|w| slot.grid.is_some_and(|g| g.extends(w)))
    }
}

/// A person in an answer: who, where, since when, in which grid; `distance_m` for nearest
/// searches.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    pub member: Arc<StaffMember>,
    pub fix: Fix,
    pub grid: Option<GridCode>,
    pub distance_m: f64,
}

/// What storing one fix did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stored {
    /// The first position of this person, or a newer one. `previous_grid`: the unit grid of the
    /// position before (`None` for the first one, or outside every grid).
    Updated { first: bool, previous_grid: Option<GridCode> },
    /// Not newer than the one held (a late or repeated report): the current position stays.
    Older,
}

/// The latest fix of each person with the cell index.
pub struct PositionStore {
    plane: LocalPlane,
    slots: Vec<Slot>,
    by_id: HashMap<Arc<str>, u32>,
    cells: HashMap<(i32, i32), Vec<u32>>,
    /// lon/lat box of every position ever stored (grows only).
    extent: Option<Rect<f64>>,
    /// Cell index range ever used: min x, min y, max x, max y.
    cell_range: Option<[i32; 4]>,
}

impl PositionStore {
    /// An empty store whose index plane is centred on `centre` (the city's centre).
    pub fn new(centre: Coord<f64>) -> PositionStore {
        PositionStore { plane: LocalPlane::new(centre), slots: Vec::new(), by_id: HashMap::new(), cells: HashMap::new(), extent: None, cell_range: None }
    }

    /// People with a position.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.member.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn cell_of(&self, c: Coord<f64>) -> (i32, i32) {
        let [x, y] = self.plane.to_xy(c);
        ((x / CELL_M).floor().clamp(i32::MIN as f64, i32::MAX as f64) as i32, (y / CELL_M).floor().clamp(i32::MIN as f64, i32::MAX as f64) as i32)
    }

    /// Stores `fix` as `member`'s position if it is newer than the one held; `grid` is the unit
    /// grid it lies in.
    pub fn store(&mut self, member: &Arc<StaffMember>, fix: Fix, grid: Option<GridCode>) -> Stored {
        let cell = self.cell_of(fix.coord());
        let c = fix.coord();
        self.extent = Some(match self.extent {
            None => Rect::new(c, c),
            Some(r) => Rect::new(Coord { x: r.min().x.min(c.x), y: r.min().y.min(c.y) }, Coord { x: r.max().x.max(c.x), y: r.max().y.max(c.y) }),
        });
        self.cell_range = Some(match self.cell_range {
            None => [cell.0, cell.1, cell.0, cell.1],
            Some([a, b, x, y]) => [a.min(cell.0), b.min(cell.1), x.max(cell.0), y.max(cell.1)],
        });
        match self.by_id.get(member.id.as_str()) {
            Some(&i) => {
                let slot = &mut self.slots[i as usize];
                if slot.member.is_some() && fix.time <= slot.fix.time {
                    return Stored::Older;
                }
                let first = slot.member.is_none();
                let previous_grid = if first { None } else { slot.grid };
                let old_cell = slot.cell;
                slot.member = Some(member.clone());
                slot.fix = fix;
                slot.grid = grid;
                slot.cell = cell;
                if old_cell != cell {
                    if let Some(list) = self.cells.get_mut(&old_cell) {
                        if let Some(at) = list.iter().position(|&s| s == i) {
                            list.swap_remove(at);
                        }
                        if list.is_empty() {
                            self.cells.remove(&old_cell);
                        }
                    }
                    self.cells.entry(cell).or_default().push(i);
                }
                Stored::Updated { first, previous_grid }
            }
            None => {
                let i = self.slots.len() as u32;
                self.slots.push(Slot { member: Some(member.clone()), fix, cell, grid });
                self.by_id.insert(Arc::from(member.id.as_str()), i);
                self.cells.entry(cell).or_default().push(i);
                Stored::Updated { first: true, previous_grid: None }
            }
        }
    }

    /// Follows a new register: people keep their positions with their new name, role and
    /// unit; people no longer listed drop out of every answer.
    pub fn follow_register(&mut self, register: &StaffRegister) {
        for (id, &i) in &self.by_id {
            self.slots[i as usize].member = register.get(id).cloned();
        }
    }

    /// The current position of `id`, stale or not.
    pub fn get(&self, id: &str) -> Option<Hit> {
        let slot = &self.slots[*self.by_id.get(id)? as usize];
        Some(Hit { member: slot.member.clone()?, fix: slot.fix, grid: slot.grid, distance_m: 0.0 })
    }

    fn hit(&self, i: u32, distance_m: f64) -> Hit {
        let s = &self.slots[i as usize];
        Hit { member: s.member.clone().expect("filtered"), fix: s.fix, grid: s.grid, distance_m }
    }

    /// The `k` people nearest `p` (WGS84) that `filter` accepts, within `max_m` metres if
    /// given, nearest first (ties by id). Distances are haversine metres.
    pub fn nearest(&self, p: Coord<f64>, k: usize, filter: &Filter, max_m: Option<f64>) -> Vec<Hit> {
        if k == 0 || self.slots.is_empty() {
            return Vec::new();
        }
        let from = DistanceFrom::new(p);
        let max_m = max_m.unwrap_or(f64::INFINITY);
        // (distance, id, slot), kept sorted, at most k.
        let mut best: Vec<(f64, u32)> = Vec::with_capacity(k + 1);
        let consider = |best: &mut Vec<(f64, u32)>, i: u32| {
            let slot = &self.slots[i as usize];
            if !filter.accepts(slot) {
                return;
            }
            let d = from.metres_to(slot.fix.coord());
            if d > max_m {
                return;
            }
            let key = |&(d2, j): &(f64, u32)| (d2, self.slots[j as usize].member.as_ref().map(|m| m.id.as_str()));
            let me = (d, i);
            let at = best.partition_point(|e| key(e) < key(&me));
            if at < k {
                best.insert(at, me);
                best.truncate(k);
            }
        };
        let stretch = self.extent.and_then(|e| self.plane.search_stretch(p, e));
        let [x0, y0, x1, y1] = self.cell_range.expect("slots imply a range");
        let (cx, cy) = self.cell_of(p);
        let rings_needed =
            [(cx as i64 - x0 as i64), (x1 as i64 - cx as i64), (cy as i64 - y0 as i64), (y1 as i64 - cy as i64)].into_iter().max().unwrap_or(0).max(0);
        // Ring search while the plane bounds distances and the rings stay few; else a scan.
        let searched = match stretch {
            Some(stretch) => {
                let mut done = false;
                for r in 0..=rings_needed.min(MAX_RINGS) {
                    let lower = ((r - 1).max(0) as f64 * CELL_M) / stretch;
                    if lower > max_m || (best.len() == k && lower > best[k - 1].0) {
                        done = true;
                        break;
                    }
                    for (x, y) in ring(cx as i64, cy as i64, r) {
                        if let (Ok(x), Ok(y)) = (i32::try_from(x), i32::try_from(y))
                            && let Some(list) = self.cells.get(&(x, y))
                        {
                            for &i in list {
                                consider(&mut best, i);
                            }
                        }
                    }
                }
                done || rings_needed <= MAX_RINGS
            }
            None => false,
        };
        if !searched {
            best.clear();
            (0..self.slots.len() as u32).for_each(|i| consider(&mut best, i));
        }
        best.into_iter().map(|(d, i)| self.hit(i, d)).collect()
    }

    /// Everyone `filter` accepts whose position is in the lon/lat box `[min lon, min lat, max
    /// lon, max lat]` (edges included), by id, at most `limit`; `truncated` if there were more.
    pub fn in_bbox(&self, bbox: [f64; 4], filter: &Filter, limit: usize) -> (Vec<Hit>, bool) {
        let inside = |s: &Slot| (bbox[0]..=bbox[2]).contains(&s.fix.lon) && (bbox[1]..=bbox[3]).contains(&s.fix.lat);
        self.collect(|s| inside(s) && filter.accepts(s), limit)
    }

    /// Everyone `filter` accepts whose current unit grid is `grid` or lies in it, by id.
    pub fn in_grid(&self, grid: GridCode, filter: &Filter, limit: usize) -> (Vec<Hit>, bool) {
        self.collect(|s| s.grid.is_some_and(|g| g.extends(grid)) && filter.accepts(s), limit)
    }

    fn collect(&self, keep: impl Fn(&Slot) -> bool, limit: usize) -> (Vec<Hit>, bool) {
        let mut out: Vec<Hit> = (0..self.slots.len() as u32).filter(|&i| keep(&self.slots[i as usize])).map(|i| self.hit(i, 0.0)).collect();
        out.sort_by(|a, b| a.member.id.cmp(&b.member.id));
        let truncated = out.len() > limit;
        out.truncate(limit);
        (out, truncated)
    }
}

/// The cells of the square ring at Chebyshev distance `r` around `(cx, cy)`.
fn ring(cx: i64, cy: i64, r: i64) -> impl Iterator<Item = (i64, i64)> {
    let side = if r == 0 {
        vec![(cx, cy)]
    } else {
        let mut v = Vec::with_capacity((8 * r) as usize);
        for d in -r..=r {
            v.push((cx + d, cy - r));
            v.push((cx + d, cy + r));
        }
        for d in (-r + 1)..r {
            v.push((cx - r, cy + d));
            v.push((cx + r, cy + d));
        }
        v
    };
    side.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn member(id: &str, role: Role) -> Arc<StaffMember> {
        Arc::new(StaffMember { id: id.into(), name: id.into(), role, unit: String::new(), home_grids: Vec::new() })
    }

    #[test]
    fn nearest_equals_brute_force_and_late_reports_are_ignored() {
        let centre = Coord { x: 120.6, y: 31.3 };
        let mut store = PositionStore::new(centre);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let t0 = Utc::now();
        let mut all = Vec::new();
        for n in 0..2000 {
            let m = member(&format!("P{n:04}"), if n % 3 == 0 { Role::Inspector } else { Role::GridWorker });
            // clustered and far-flung points
            let spread = if n % 10 == 0 { 0.5 } else { 0.05 };
            let fix = Fix {
                lon: centre.x + rng.random_range(-spread..spread),
                lat: centre.y + rng.random_range(-spread..spread),
                time: t0,
                accuracy_m: None,
                status: if n % 4 == 0 { Status::Busy } else { Status::Available },
            };
            assert!(matches!(store.store(&m, fix, None), Stored::Updated { first: true, .. }));
            all.push((m, fix));
        }
        let filter = Filter { role: Some(Role::Inspector), status: Some(Status::Available), within: None, fresh_since: t0 };
        for _ in 0..200 {
            let p = Coord { x: centre.x + rng.random_range(-0.7..0.7), y: centre.y + rng.random_range(-0.7..0.7) };
            let got = store.nearest(p, 7, &filter, None);
            let mut oracle: Vec<(f64, &str)> = all
                .iter()
                .filter(|(m, f)| m.role == Role::Inspector && f.status == Status::Available)
                .map(|(m, f)| (crate::crs::distance::haversine_m(p, f.coord()), m.id.as_str()))
                .collect();
            oracle.sort_by(|a, b| a.partial_cmp(b).unwrap());
            oracle.truncate(7);
            assert_eq!(got.iter().map(|h| (h.distance_m, h.member.id.as_str())).collect::<Vec<_>>(), oracle);
        }
        let (m, fix) = all[0].clone();
        let older = Fix { time: fix.time - chrono::Duration::seconds(5), lon: 0.0, ..fix };
        assert_eq!(store.store(&m, older, None), Stored::Older);
        assert_eq!(store.get(&m.id).unwrap().fix, fix);
    }
}
