//! Hierarchical partition of the district's blocks: district → streets → communities → unit
//! grids, each level tiling its parent with connected, hole-free, pinch-free sets of blocks.
//!
//! A set is split by balanced multi-source region growing on the 4-adjacency graph: seeds by
//! farthest-point sampling, then the region furthest below its target area takes its best
//! frontier block, never one that would make it touch itself diagonally. A split whose regions
//! are not all topological discs (or whose unit grids miss the area bounds) is retried with a
//! derived seed; when a street or community cannot be split, its parent is split again.

use std::collections::VecDeque;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::geometry::{Lattice, creates_pinch};
use super::seed;

/// Smallest unit grid we make, m² (tests require ≥ 0.01 km²; a little margin).
pub(crate) const MIN_GRID_AREA: f64 = 11_000.0;
/// Largest unit grid we make, m² (tests require ≤ 0.5 km²).
pub(crate) const MAX_GRID_AREA: f64 = 450_000.0;
/// Unit grids per community are capped so the average grid is at least this large, m².
const GRID_QUOTA_AREA: f64 = 14_000.0;

const DISTRICT_ATTEMPTS: u64 = 20;
const STREET_ATTEMPTS: u64 = 25;
const COMMUNITY_ATTEMPTS: u64 = 40;

/// A set of blocks with its area in m².
#[derive(Clone, Debug)]
pub(crate) struct Region {
    pub cells: Vec<u32>,
    pub area: f64,
}

pub(crate) struct Community {
    pub region: Region,
    pub grids: Vec<Region>,
}

pub(crate) struct Street {
    pub region: Region,
    pub communities: Vec<Community>,
}

pub(crate) struct Layout {
    pub district: Region,
    pub streets: Vec<Street>,
}

/// How many children each level gets in total.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Counts {
    pub streets: usize,
    pub communities: usize,
    pub grids: usize,
}

fn region(lattice: &Lattice, cells: Vec<u32>) -> Region {
    let area = cells.iter().map(|&c| lattice.cell_area[c as usize]).sum();
    Region { cells, area }
}

/// Splits the district into streets, communities and unit grids with exactly `counts`.
pub(crate) fn layout(lattice: &Lattice, district: Vec<u32>, counts: Counts, seed: u64) -> Result<Layout, String> {
    let district = region(lattice, district);
    if counts.communities < counts.streets || counts.grids < counts.communities {
        return Err("each street needs a community and each community a grid".into());
    }
    if district.cells.len() < counts.grids {
        return Err(format!("{} blocks cannot hold {} unit grids", district.cells.len(), counts.grids));
    }
    'attempt: for attempt in 0..DISTRICT_ATTEMPTS {
        let mut rng = seed::rng(seed, &[seed::STREETS, attempt]);
        let targets = random_targets(&mut rng, counts.streets, 0.6, 1.6);
        let Some(parts) = partition(lattice, &district.cells, &targets, &mut rng) else {
            continue;
        };
        let streets: Vec<Region> = parts.into_iter().map(|cells| region(lattice, cells)).collect();
        let areas: Vec<f64> = streets.iter().map(|r| r.area).collect();
        let ones = vec![1; streets.len()];
        let cells: Vec<usize> = streets.iter().map(|r| r.cells.len()).collect();
        let max_comm: Vec<usize> = cells.iter().map(|&n| n.div_ceil(2)).collect();
        let Some(n_comm) = apportion(counts.communities, &areas, &ones, &max_comm) else {
            continue;
        };
        let Some(n_grid) = apportion(counts.grids, &areas, &n_comm, &cells) else {
            continue;
        };
        let mut out = Vec::with_capacity(streets.len());
        for (k, street) in streets.into_iter().enumerate() {
            let salt = seed::derive(attempt, &[k as u64]);
            let Some(communities) = split_street(lattice, &street, n_comm[k], n_grid[k], seed, salt) else {
                continue 'attempt;
            };
            out.push(Street { region: street, communities });
        }
        return Ok(Layout { district, streets: out });
    }
    Err(format!("no valid partition into {counts:?} after {DISTRICT_ATTEMPTS} attempts"))
}

fn split_street(lattice: &Lattice, street: &Region, n_comm: usize, n_grid: usize, seed: u64, salt: u64) -> Option<Vec<Community>> {
    'attempt: for attempt in 0..STREET_ATTEMPTS {
        let mut rng = seed::rng(seed, &[seed::COMMUNITIES, salt, attempt]);
        let targets = random_targets(&mut rng, n_comm, 0.6, 1.5);
        let Some(parts) = partition(lattice, &street.cells, &targets, &mut rng) else {
            continue;
        };
        let comms: Vec<Region> = parts.into_iter().map(|cells| region(lattice, cells)).collect();
        let areas: Vec<f64> = comms.iter().map(|r| r.area).collect();
        let ones = vec![1; comms.len()];
        let max: Vec<usize> = comms.iter().map(|r| r.cells.len().min((r.area / GRID_QUOTA_AREA) as usize).clamp(1, 99)).collect();
        let Some(quota) = apportion(n_grid, &areas, &ones, &max) else {
            continue;
        };
        let mut out = Vec::with_capacity(comms.len());
        for (k, comm) in comms.into_iter().enumerate() {
            let salt = seed::derive(salt, &[attempt, k as u64]);
            let Some(grids) = split_community(lattice, &comm, quota[k], seed, salt) else {
                continue 'attempt;
            };
            out.push(Community { region: comm, grids });
        }
        return Some(out);
    }
    None
}

fn split_community(lattice: &Lattice, comm: &Region, n: usize, seed: u64, salt: u64) -> Option<Vec<Region>> {
    for attempt in 0..COMMUNITY_ATTEMPTS {
        let mut rng = seed::rng(seed, &[seed::GRIDS, salt, attempt]);
        let targets = random_targets(&mut rng, n, 0.8, 1.25);
        let Some(parts) = partition(lattice, &comm.cells, &targets, &mut rng) else {
            continue;
        };
        let grids: Vec<Region> = parts.into_iter().map(|cells| region(lattice, cells)).collect();
        if grids.iter().all(|g| (MIN_GRID_AREA..=MAX_GRID_AREA).contains(&g.area)) {
            return Some(grids);
        }
    }
    None
}

fn random_targets(rng: &mut ChaCha8Rng, k: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..k).map(|_| rng.random_range(lo..hi)).collect()
}

/// Splits `total` into parts proportional to `weights` (Sainte-Laguë), each part within
/// `min[i]..=max[i]`. `None` if the bounds cannot be met.
pub(crate) fn apportion(total: usize, weights: &[f64], min: &[usize], max: &[usize]) -> Option<Vec<usize>> {
    let mut parts = min.to_vec();
    let given: usize = parts.iter().sum();
    if given > total || max.iter().sum::<usize>() < total || min.iter().zip(max).any(|(a, b)| a > b) {
        return None;
    }
    for _ in given..total {
        let mut best: Option<(usize, f64)> = None;
        for i in 0..parts.len() {
            if parts[i] >= max[i] {
                continue;
            }
            let q = weights[i] / (2 * parts[i] + 1) as f64;
            if best.is_none_or(|(_, bq)| q > bq) {
                best = Some((i, q));
            }
        }
        parts[best?.0] += 1;
    }
    Some(parts)
}

const OUT: i32 = -1;
const FREE: i32 = -2;

/// Splits a set of cells (a topological disc) into `targets.len()` discs whose areas follow
/// `targets`. `None` if this attempt fails.
pub(crate) fn partition(lattice: &Lattice, cells: &[u32], targets: &[f64], rng: &mut ChaCha8Rng) -> Option<Vec<Vec<u32>>> {
    let k = targets.len();
    if k == 1 {
        return Some(vec![cells.to_vec()]);
    }
    if k == 0 || k > cells.len() {
        return None;
    }
    let mut owner = vec![OUT; lattice.cells()];
    let mut noise = vec![0.0f64; lattice.cells()];
    for &c in cells {
        owner[c as usize] = FREE;
        noise[c as usize] = rng.random_range(0.7..1.3);
    }

    // Seeds: farthest-point sampling on hop distance inside the set.
    let mut dist = vec![u32::MAX; lattice.cells()];
    let mut seeds: Vec<usize> = Vec::with_capacity(k);
    let mut queue = VecDeque::new();
    let mut add_seed = |s: usize, dist: &mut Vec<u32>, seeds: &mut Vec<usize>| {
        seeds.push(s);
        dist[s] = 0;
        queue.push_back(s);
        while let Some(x) = queue.pop_front() {
            for y in lattice.neighbours(x).into_iter().flatten() {
                if owner[y] == FREE && dist[x] + 1 < dist[y] {
                    dist[y] = dist[x] + 1;
                    queue.push_back(y);
                }
            }
        }
    };
    add_seed(cells[rng.random_range(0..cells.len())] as usize, &mut dist, &mut seeds);
    while seeds.len() < k {
        let far = cells
            .iter()
            .map(|&c| c as usize)
            .max_by(|&a, &b| (dist[a] as f64 + noise[a] / 2.0).total_cmp(&(dist[b] as f64 + noise[b] / 2.0)).then(b.cmp(&a)))
            .expect("non-empty");
        if dist[far] == 0 {
            return None;
        }
        add_seed(far, &mut dist, &mut seeds);
    }

    // Balanced growth.
    let mut area = vec![0.0; k];
    let mut frontier: Vec<Vec<u32>> = vec![Vec::new(); k];
    let take = |c: usize, r: usize, owner: &mut [i32], area: &mut [f64], frontier: &mut [Vec<u32>]| {
        owner[c] = r as i32;
        area[r] += lattice.cell_area[c];
        for y in lattice.neighbours(c).into_iter().flatten() {
            if owner[y] == FREE {
                frontier[r].push(y as u32);
            }
        }
    };
    for (r, &s) in seeds.iter().enumerate() {
        take(s, r, &mut owner, &mut area, &mut frontier);
    }
    let bonus = 0.6 * lattice.s;
    let mut free = cells.len() - k;
    let mut order: Vec<usize> = (0..k).collect();
    while free > 0 {
        order.sort_by(|&a, &b| (area[a] / targets[a]).total_cmp(&(area[b] / targets[b])).then(a.cmp(&b)));
        let mut grown = false;
        for &r in &order {
            let f = &mut frontier[r];
            f.retain(|&c| owner[c as usize] == FREE);
            f.sort_unstable();
            f.dedup();
            let seed_at = lattice.cell_centre[seeds[r]];
            let mut best: Option<(usize, f64)> = None;
            for &c in f.iter() {
                let c = c as usize;
                if creates_pinch(lattice, &owner, c, r as i32) {
                    continue;
                }
                let p = lattice.cell_centre[c];
                let d = (p[0] - seed_at[0]).hypot(p[1] - seed_at[1]) * noise[c];
                let same = lattice.neighbours(c).into_iter().flatten().filter(|&y| owner[y] == r as i32).count() as f64;
                let score = bonus * same - d;
                if best.is_none_or(|(_, b)| score > b) {
                    best = Some((c, score));
                }
            }
            if let Some((c, _)) = best {
                take(c, r, &mut owner, &mut area, &mut frontier);
                free -= 1;
                grown = true;
                break;
            }
        }
        if !grown {
            return None;
        }
    }

    let mut parts: Vec<Vec<u32>> = vec![Vec::new(); k];
    for &c in cells {
        parts[owner[c as usize] as usize].push(c);
    }
    for (r, part) in parts.iter().enumerate() {
        lattice.trace(part, |c| owner[c] == r as i32)?;
    }
    smooth(lattice, cells, &mut owner, &mut parts);
    Some(parts)
}

/// Smooths the borders between valid regions: a block that touches another region on more
/// sides than its own (and on at least two) moves over, if both regions stay discs. Each move
/// strictly adds to the number of block sides shared within regions, so this ends.
fn smooth(lattice: &Lattice, cells: &[u32], owner: &mut [i32], parts: &mut [Vec<u32>]) {
    for _pass in 0..4 {
        let mut moved = false;
        for &c in cells {
            let c = c as usize;
            let a = owner[c];
            if parts[a as usize].len() == 1 {
                continue;
            }
            let mut count = [(0i32, 0u32); 4];
            let mut n = 0;
            for y in lattice.neighbours(c).into_iter().flatten() {
                let o = owner[y];
                if o < 0 {
                    continue;
                }
                match count[..n].iter_mut().find(|e| e.0 == o) {
                    Some(e) => e.1 += 1,
                    None => {
                        count[n] = (o, 1);
                        n += 1;
                    }
                }
            }
            let own = count[..n].iter().find(|e| e.0 == a).map_or(0, |e| e.1);
            let Some(&(b, nb)) = count[..n].iter().filter(|e| e.0 != a).max_by_key(|e| (e.1, -e.0)) else {
                continue;
            };
            if nb < 2 || nb <= own || creates_pinch(lattice, owner, c, b) {
                continue;
            }
            owner[c] = b;
            let (ai, bi) = (a as usize, b as usize);
            let a_ok = {
                let rest: Vec<u32> = parts[ai].iter().copied().filter(|&x| x as usize != c).collect();
                lattice.trace(&rest, |x| owner[x] == a).is_some()
            };
            let b_ok = a_ok && {
                let mut more = parts[bi].clone();
                more.push(c as u32);
                lattice.trace(&more, |x| owner[x] == b).is_some()
            };
            if b_ok {
                parts[ai].retain(|&x| x as usize != c);
                let at = parts[bi].partition_point(|&x| (x as usize) < c);
                parts[bi].insert(at, c as u32);
                moved = true;
            } else {
                owner[c] = a;
            }
        }
        if !moved {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apportion_is_proportional_and_bounded() {
        assert_eq!(apportion(10, &[1.0, 1.0], &[0, 0], &[10, 10]), Some(vec![5, 5]));
        let p = apportion(10, &[3.0, 1.0], &[1, 1], &[10, 10]).unwrap();
        assert!(p == [7, 3] || p == [8, 2], "{p:?}");
        assert_eq!(apportion(10, &[9.0, 1.0], &[1, 1], &[6, 10]), Some(vec![6, 4]));
        assert_eq!(apportion(3, &[1.0, 1.0], &[2, 2], &[5, 5]), None);
        assert_eq!(apportion(11, &[1.0, 1.0], &[0, 0], &[5, 5]), None);
        let p = apportion(945, &[3.0, 2.0, 5.0], &[1, 1, 1], &[1000, 1000, 1000]).unwrap();
        assert_eq!(p.iter().sum::<usize>(), 945);
        assert!(p[2] > p[0] && p[0] > p[1], "{p:?}");
    }
}
