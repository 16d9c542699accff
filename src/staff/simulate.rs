//! Simulated field staff for the demo city: a staff register (one grid worker per three unit
//! grids of each community, two inspectors per street) and a day of patrols, each person
//! walking the streets around their grids — the demo's streets run along the grid outlines,
//! so a walk follows each home grid's outline 15 m inside it, then crosses to the next home
//! grid (which produces the enter/leave events a dispatcher sees).
//!
//! Deterministic: the same city, day and seed give the same register and the same positions.
//! Shift: 08:30–17:30 China time, lunch (off duty) 12:00–13:00, a busy spell of 10–40 minutes
//! now and then (a case being verified), GPS noise of a few metres with its accuracy.

use chrono::{DateTime, NaiveDate, Utc};
use geo::Centroid;
use geo_types::Coord;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::input::Item;
use super::positions::{Fix, Status};
use super::register::{Role, StaffMember, StaffRegister};
use crate::crs::distance::{METRES_PER_DEGREE, haversine_m};
use crate::model::{City, GridId};

const SURNAMES: [&str; 20] = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "林", "高", "沈"];
const GIVEN: [&str; 24] =
    ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀英", "华", "建国", "晓东", "海燕", "志强", "婷"];

/// The demo register of `city`: grid workers (`G…`) for every three unit grids of a community,
/// two inspectors (`I…`) per street, each with their home grids.
pub fn demo_register(city: &City, seed: u64) -> StaffRegister {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x57AF);
    let unit_level = city.hierarchy.unit_level();
    let children = city.children();
    let name = |rng: &mut ChaCha8Rng| format!("{}{}", SURNAMES[rng.random_range(0..SURNAMES.len())], GIVEN[rng.random_range(0..GIVEN.len())]);
    let unit_grids_under = |g: GridId| -> Vec<GridId> {
        let mut out = Vec::new();
        let mut stack = vec![g];
        while let Some(g) = stack.pop() {
            if city.grid(g).level as usize == unit_level {
                out.push(g);
            } else {
                stack.extend(children[g.0 as usize].iter().rev());
            }
        }
        out.sort_by_key(|&g| city.grid(g).code);
        out
    };
    let mut members = Vec::new();
    // Streets: level 1 (below the district); a two-level city has the district's units only.
    let street_level = if unit_level >= 2 { 1 } else { 0 };
    let unit_name = |g: GridId| city.grid(g).unit.map(|_| city.grid(g).name.clone()).unwrap_or_else(|| city.grid(g).name.clone());
    let (mut n_inspectors, mut n_workers) = (0, 0);
    for (street, s) in city.grids_at(street_level) {
        let grids = unit_grids_under(street);
        if grids.is_empty() {
            continue;
        }
        for half in 0..2 {
            n_inspectors += 1;
            // Each inspector covers every other unit grid of the street, from a different start.
            let home: Vec<String> = grids.iter().skip(half).step_by(2).take(12).map(|&g| city.grid(g).code.to_string()).collect();
            if home.is_empty() {
                continue;
            }
            members.push(StaffMember {
                id: format!("I{n_inspectors:04}"),
                name: name(&mut rng),
                role: Role::Inspector,
                unit: format!("{}监督中心", s.name),
                home_grids: home,
            });
        }
        if unit_level > street_level + 1 {
            for (community, _) in city.grids_at(unit_level - 1).filter(|(_, c)| c.parent == Some(street)) {
                for chunk in unit_grids_under(community).chunks(3) {
                    n_workers += 1;
                    let home = chunk.iter().map(|&g| city.grid(g).code.to_string()).collect();
                    members.push(StaffMember {
                        id: format!("G{n_workers:05}"),
                        name: name(&mut rng),
                        role: Role::GridWorker,
                        unit: unit_name(community),
                        home_grids: home,
                    });
                }
            }
        }
    }
    StaffRegister::from_members(members)
}

struct Walker {
    id: String,
    /// A closed walk, lon/lat, and the distance along it at each vertex, metres.
    path: Vec<Coord<f64>>,
    along: Vec<f64>,
    speed_mps: f64,
    start_m: f64,
    /// Busy spells: (from, to) seconds into the day.
    busy: Vec<(u32, u32)>,
    rng: ChaCha8Rng,
}

impl Walker {
    fn at(&self, walked_m: f64) -> Coord<f64> {
        let total = *self.along.last().unwrap_or(&0.0);
        if total <= 0.0 || self.path.len() < 2 {
            return self.path.first().copied().unwrap_or(Coord { x: 0.0, y: 0.0 });
        }
        let d = (self.start_m + walked_m).rem_euclid(total);
        let i = self.along.partition_point(|&a| a <= d).clamp(1, self.path.len() - 1);
        let (a, b) = (self.path[i - 1], self.path[i]);
        let seg = self.along[i] - self.along[i - 1];
        let t = if seg > 0.0 { (d - self.along[i - 1]) / seg } else { 0.0 };
        Coord { x: a.x + (b.x - a.x) * t, y: a.y + (b.y - a.y) * t }
    }
}

/// A day of patrols: every `step_s` seconds of the shift, one position of each person of
/// `register` whose home grids are in `city`, in time order.
pub struct Patrols {
    walkers: Vec<Walker>,
    day_start: DateTime<Utc>,
    /// Seconds into the day (China time) of the next round, and the end of the shift.
    t: u32,
    end: u32,
    step: u32,
    next: usize,
}

/// Shift start and end, seconds after midnight China time.
const SHIFT: (u32, u32) = (8 * 3600 + 1800, 17 * 3600 + 1800);
const LUNCH: (u32, u32) = (12 * 3600, 13 * 3600);

/// The patrols of `register`'s people in `city` on `day` (China time).
pub fn patrols(city: &City, register: &StaffRegister, day: NaiveDate, step_s: u32, seed: u64) -> Patrols {
    let mut walkers = Vec::new();
    for (n, m) in register.members().iter().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9).wrapping_add(n as u64));
        let mut path = Vec::new();
        for code in &m.home_grids {
            let Some(g) = crate::model::GridCode::parse(code, &city.hierarchy).ok().and_then(|(c, _)| city.grid_by_code(c)) else { continue };
            path.extend(inner_outline(city, g, 15.0));
        }
        if path.len() < 2 {
            continue;
        }
        path.push(path[0]);
        let mut along = vec![0.0];
        for w in path.windows(2) {
            along.push(along.last().unwrap() + haversine_m(w[0], w[1]));
        }
        let speed_mps = match m.role {
            Role::Inspector => rng.random_range(2.5..4.5), // e-bike
            Role::GridWorker => rng.random_range(0.9..1.4),
        };
        let mut busy = Vec::new();
        let mut t = SHIFT.0 + rng.random_range(1800..5400);
        while t < SHIFT.1 {
            let len = rng.random_range(600..2400);
            busy.push((t, t + len));
            t += len + rng.random_range(3600..3 * 3600);
        }
        let start_m = rng.random_range(0.0..along.last().copied().unwrap_or(1.0).max(1.0));
        walkers.push(Walker { id: m.id.clone(), path, along, speed_mps, start_m, busy, rng });
    }
    let midnight =
        day.and_hms_opt(0, 0, 0).expect("midnight").and_local_timezone(crate::routing::china_tz()).single().expect("fixed offset").with_timezone(&Utc);
    Patrols { walkers, day_start: midnight, t: SHIFT.0, end: SHIFT.1, step: step_s.max(1), next: 0 }
}

impl Patrols {
    /// People walking.
    pub fn people(&self) -> usize {
        self.walkers.len()
    }

    /// Positions the whole day gives.
    pub fn total(&self) -> usize {
        self.walkers.len() * ((self.end - SHIFT.0).div_ceil(self.step)) as usize
    }
}

impl Iterator for Patrols {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        if self.walkers.is_empty() {
            return None;
        }
        if self.next == self.walkers.len() {
            self.next = 0;
            self.t += self.step;
        }
        if self.t >= self.end {
            return None;
        }
        let t = self.t;
        let w = &mut self.walkers[self.next];
        self.next += 1;
        let lunch = (LUNCH.0..LUNCH.1).contains(&t);
        let busy = w.busy.iter().any(|&(a, b)| (a..b).contains(&t));
        // Walking time: not while busy or at lunch (they stand still then).
        let still: u32 = w.busy.iter().chain(std::iter::once(&LUNCH)).map(|&(a, b)| t.min(b).saturating_sub(a.max(SHIFT.0))).sum();
        let walked = (t - SHIFT.0).saturating_sub(still) as f64 * w.speed_mps;
        let p = w.at(walked);
        let accuracy: f64 = w.rng.random_range(3.0..15.0);
        let noise = accuracy / 3.0 / METRES_PER_DEGREE;
        let lon = p.x + w.rng.random_range(-noise..noise) / p.y.to_radians().cos();
        let lat = p.y + w.rng.random_range(-noise..noise);
        let status = if lunch {
            Status::OffDuty
        } else if busy {
            Status::Busy
        } else {
            Status::Available
        };
        let time = self.day_start + chrono::Duration::seconds(t as i64);
        Some(Item { id: w.id.clone(), fix: Fix { lon, lat, time, accuracy_m: Some((accuracy * 10.0).round() / 10.0), status } })
    }
}

/// The exterior ring of grid `g`'s largest polygon, each vertex moved `inset_m` towards the
/// polygon's centroid (a walk along the streets on the grid's side).
fn inner_outline(city: &City, g: GridId, inset_m: f64) -> Vec<Coord<f64>> {
    let geometry = &city.grid(g).geometry;
    let Some(poly) = geometry.0.iter().max_by(|a, b| a.exterior().0.len().cmp(&b.exterior().0.len())) else { return Vec::new() };
    let Some(c) = poly.centroid() else { return Vec::new() };
    let c = c.0;
    poly.exterior()
        .0
        .iter()
        .map(|&p| {
            let d = haversine_m(p, c);
            let f = if d > 0.0 { (inset_m / d).min(0.5) } else { 0.0 };
            Coord { x: p.x + (c.x - p.x) * f, y: p.y + (c.y - p.y) * f }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tiny_demo_gets_staff_that_walk_across_grids() {
        let demo = crate::demo::generate(&crate::demo::DemoSpec { preset: crate::demo::Preset::Tiny, components: None, seed: 1 }, &|_, _| {}).unwrap();
        let register = demo_register(&demo.city, 1);
        assert!(register.members().iter().any(|m| m.role == Role::Inspector));
        assert!(register.members().iter().any(|m| m.role == Role::GridWorker));
        assert!(register.unknown_home_grids(&demo.city).is_empty());
        let day = NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
        let items: Vec<Item> = patrols(&demo.city, &register, day, 60, 1).collect();
        assert_eq!(items.len(), patrols(&demo.city, &register, day, 60, 1).total());
        assert!(items.windows(2).all(|w| w[0].fix.time <= w[1].fix.time));
        assert!(items.iter().any(|i| i.fix.status == Status::Busy) && items.iter().any(|i| i.fix.status == Status::OffDuty));
        let again: Vec<Item> = patrols(&demo.city, &register, day, 60, 1).collect();
        assert_eq!(items, again, "deterministic");
    }
}
