//! The World: one immutable snapshot of everything the server answers from.
//!
//! Readers take an `Arc<World>` from [`WorldHandle::load`] and keep it for the whole request,
//! so a response is wholly from one snapshot. A new snapshot (an import, a rollback) is built
//! off the request path and switched in with one atomic pointer swap.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use serde::Serialize;

use geo::{BoundingRect, GeodesicArea};

use crate::index::{ComponentIndex, GridIndex, Location, ZoneIndex};
use crate::model::{City, ClassCode};
use crate::rules::Routing;
use crate::store::{CityMeta, LoadedCity, Versions};
use crate::tiles::{Layer, TileConfig, TileSet};

/// One consistent snapshot of the city's layers, with its spatial indexes.
///
/// The layers and everything derived from them (indexes, counts, tiles) are behind `Arc`s:
/// a snapshot that changes only the responsibility list or the working calendar
/// ([`World::with_routing`]) shares them with the one it replaces instead of rebuilding them,
/// and one that changes a layer shares the parts that do not depend on it ([`World::rebuild`]).
pub struct World {
    pub city: Arc<City>,
    pub meta: CityMeta,
    /// Version of each dataset this snapshot was built from.
    pub versions: Versions,
    pub rules_csv: Option<String>,
    /// The PostgreSQL store's generation this snapshot is of (0: no shared store). Set by the
    /// switch that serves it, before the swap.
    pub store_generation: i64,
    /// The responsibility list parsed and validated once per snapshot, with the calendar.
    pub routing: Routing,
    pub loaded_at: DateTime<Utc>,
    /// Point → unit grid.
    pub grids: Arc<GridIndex>,
    /// Components near a point, in a box.
    pub components: Arc<ComponentIndex>,
    /// Point → the responsibility polygons holding it.
    pub zones: Arc<ZoneIndex>,
    /// Per grid (by `GridId`), its components counted by subclass, ascending class code.
    pub class_counts: Arc<Vec<Vec<(ClassCode, u32)>>>,
    /// Number of direct children per grid (by `GridId`).
    pub child_counts: Arc<Vec<u32>>,
    /// Per grid (by `GridId`): area on the WGS84 ellipsoid in m², and its lon/lat bounding box.
    pub grid_shapes: Arc<Vec<GridShape>>,
    /// Vector tiles of the grids and components.
    pub tiles: Arc<TileSet>,
    /// Counts this snapshot among its handle's live ones ([`WorldHandle::snapshots_alive`]).
    tracked: Tracked,
}

/// A snapshot's place in its [`WorldHandle`]'s count of live snapshots: counted from the
/// moment the handle takes it ([`WorldHandle::new`], [`WorldHandle::replace`]) until it is
/// freed. A snapshot no handle took is not counted.
#[derive(Default)]
struct Tracked(Option<Arc<AtomicUsize>>);

impl Tracked {
    fn by(counter: &Arc<AtomicUsize>) -> Tracked {
        counter.fetch_add(1, Ordering::SeqCst);
        Tracked(Some(counter.clone()))
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(counter) = &self.0 {
            counter.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Measures of a grid's polygon, computed once per snapshot.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GridShape {
    /// Area on the WGS84 ellipsoid (geodesic), m².
    pub area_m2: f64,
    /// min lon, min lat, max lon, max lat; `None` for an empty geometry.
    pub bbox: Option<[f64; 4]>,
}

impl World {
    /// Builds the snapshot, its indexes and its tile set with the default zoom rules.
    pub fn new(loaded: LoadedCity) -> World {
        World::with_tiles(loaded, TileConfig::default())
    }

    /// Builds the snapshot, its indexes and its tile set (in parallel) with these zoom rules.
    pub fn with_tiles(loaded: LoadedCity, tile_config: TileConfig) -> World {
        World::build(loaded, None, Reuse::NOTHING, tile_config)
    }

    /// The snapshot of `loaded`, sharing with `self` every index, count and tile layer that
    /// `reuse` says does not depend on what changed, and building the others as
    /// [`World::with_tiles`] does (with `self`'s zoom rules). It answers exactly as
    /// `World::with_tiles(loaded, …)` would, in less time; the caller guarantees what each
    /// flag of [`Reuse`] states of `loaded` against the city `self` was built from.
    pub fn rebuild(&self, loaded: LoadedCity, reuse: Reuse) -> World {
        World::build(loaded, Some(self), reuse, self.tiles.config().clone())
    }

    fn build(loaded: LoadedCity, prev: Option<&World>, reuse: Reuse, tile_config: TileConfig) -> World {
        let city = loaded.city;
        let reuse = if prev.is_some() { reuse } else { Reuse::NOTHING };
        let started = std::time::Instant::now();
        // The parts that change are built in parallel (each on a thread of its own), the others
        // taken over; each built part's time is logged (None: shared).
        let ((grids, grids_t), (components, components_t), (tiles, tiles_t)) = std::thread::scope(|s| {
            let components = s.spawn(|| match prev {
                Some(p) if reuse.components => (p.components.clone(), None),
                _ => timed_build(|| Arc::new(ComponentIndex::build(&city))),
            });
            let tiles = s.spawn(|| match prev {
                Some(p) if reuse.grids && reuse.zones && reuse.components => (p.tiles.clone(), None),
                Some(p) => {
                    let mut layers = Vec::new();
                    for (layer, shared) in [(Layer::Grids, reuse.grids), (Layer::Zones, reuse.zones), (Layer::Components, reuse.components)] {
                        if !shared {
                            layers.push(layer);
                        }
                    }
                    timed_build(|| Arc::new(p.tiles.rebuild(&city, &layers)))
                }
                None => timed_build(|| Arc::new(TileSet::build(&city, tile_config.clone()))),
            });
            let grids = match prev {
                Some(p) if reuse.grids => (p.grids.clone(), None),
                _ => timed_build(|| Arc::new(GridIndex::build(&city))),
            };
            (grids, components.join().expect("component index build"), tiles.join().expect("tile set build"))
        });
        let (class_counts, counts_t) = match prev {
            Some(p) if reuse.grids && reuse.components => (p.class_counts.clone(), None),
            _ => timed_build(|| Arc::new(count_components_per_grid(&city, &grids))),
        };
        let (child_counts, grid_shapes) = match prev {
            Some(p) if reuse.grids => (p.child_counts.clone(), p.grid_shapes.clone()),
            _ => (Arc::new(child_counts(&city)), Arc::new(grid_shapes(&city))),
        };
        let (zones, zones_t) = match prev {
            Some(p) if reuse.zones => (p.zones.clone(), None),
            _ => timed_build(|| Arc::new(ZoneIndex::build(&city))),
        };
        let routing_started = std::time::Instant::now();
        let routing = Routing::load(loaded.rules_csv.as_deref(), loaded.versions.get("rules"), &city, loaded.calendar_toml.as_deref());
        let ms = |t: Option<std::time::Duration>| t.map(|t| t.as_millis() as u64);
        tracing::info!(
            grid_index_ms = ms(grids_t),
            component_index_ms = ms(components_t),
            tiles_ms = ms(tiles_t),
            class_counts_ms = ms(counts_t),
            zone_index_ms = ms(zones_t),
            routing_ms = routing_started.elapsed().as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            ?reuse,
            "snapshot built (a part's time absent: shared with the snapshot before)"
        );
        World {
            routing,
            city: Arc::new(city),
            meta: loaded.meta,
            versions: loaded.versions,
            rules_csv: loaded.rules_csv,
            store_generation: 0,
            loaded_at: Utc::now(),
            grids,
            components,
            zones,
            class_counts,
            child_counts,
            grid_shapes,
            tiles,
            tracked: Tracked::default(),
        }
    }

    /// A snapshot of the same layers (shared, not rebuilt: milliseconds however large the
    /// city) with another responsibility list and working calendar, the texts of `versions`'
    /// `rules` and `calendar`. The caller guarantees that no other dataset differs between
    /// `self.versions` and `versions`, and that the city settings are `self.meta`.
    pub fn with_routing(&self, rules_csv: Option<String>, calendar_toml: Option<&str>, versions: Versions) -> World {
        let routing = Routing::load(rules_csv.as_deref(), versions.get("rules"), &self.city, calendar_toml);
        World {
            routing,
            city: self.city.clone(),
            meta: self.meta.clone(),
            versions,
            rules_csv,
            store_generation: self.store_generation,
            loaded_at: Utc::now(),
            grids: self.grids.clone(),
            components: self.components.clone(),
            zones: self.zones.clone(),
            class_counts: self.class_counts.clone(),
            child_counts: self.child_counts.clone(),
            grid_shapes: self.grid_shapes.clone(),
            tiles: self.tiles.clone(),
            tracked: Tracked::default(),
        }
    }

    /// The map's centre (lon, lat): the city settings' own, else the centre of the grids, else
    /// the centre of the city's components (a city without grids yet), else 0, 0.
    pub fn center(&self) -> [f64; 2] {
        if let Some(c) = self.meta.center {
            return c;
        }
        if let Some(r) = self.grids.extent() {
            return [r.center().x, r.center().y];
        }
        let (mut min, mut max) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
        for c in &self.city.components {
            min = [min[0].min(c.location.x), min[1].min(c.location.y)];
            max = [max[0].max(c.location.x), max[1].max(c.location.y)];
        }
        if min[0].is_finite() { [(min[0] + max[0]) / 2.0, (min[1] + max[1]) / 2.0] } else { [0.0, 0.0] }
    }

    /// A summary for `/health`: each layer's version and feature count.
    pub fn summary(&self) -> WorldSummary {
        let version = |name: &str| self.versions.get(name);
        let levels = self
            .city
            .hierarchy
            .levels
            .iter()
            .zip(self.city.level_counts())
            .map(|(l, count)| LevelSummary { name: l.name.clone(), name_en: l.name_en.clone(), grids: count })
            .collect();
        let has_grids = !self.city.grids.is_empty();
        WorldSummary {
            city: self.meta.name.clone(),
            code: self.meta.code.clone(),
            crs: self.meta.crs.clone(),
            has_grids,
            message: (!has_grids).then(|| {
                "this city has no grids yet: lookups and routing answer 503 until its grid layer is imported \
                 (citygrid import grids FILE, PUT /v1/layers/grids, or a city package)"
                    .to_owned()
            }),
            center: self.center(),
            extent: self.grids.extent().map(|r| [r.min().x, r.min().y, r.max().x, r.max().y]),
            layers: vec![
                LayerSummary { name: "grids", version: version("grids"), features: self.city.grids.len() },
                LayerSummary { name: "components", version: version("components"), features: self.city.components.len() },
                LayerSummary { name: "zones", version: version("zones"), features: self.city.zones.len() },
                LayerSummary { name: "units", version: version("units"), features: self.city.units.len() },
            ],
            calendar_version: version("calendar"),
            settings_version: version("city"),
            rules_version: version("rules"),
            levels,
            loaded_at: self.loaded_at,
        }
    }
}

/// Components per grid and subclass. A component counts in the unit grid its record names
/// (所在单元网格) and in that grid's ancestors; a component whose record names no grid counts
/// where it lies ([`GridIndex::locate`], nowhere if outside every grid).
fn count_components_per_grid(city: &City, index: &GridIndex) -> Vec<Vec<(ClassCode, u32)>> {
    use std::collections::BTreeMap;
    let mut counts: Vec<BTreeMap<ClassCode, u32>> = vec![BTreeMap::new(); city.grids.len()];
    for c in &city.components {
        let grid = c.grid.or_else(|| match index.locate(city, c.location) {
            Location::Inside { grid, .. } => Some(grid),
            _ => None,
        });
        if let Some(g) = grid {
            *counts[g.0 as usize].entry(c.class).or_insert(0) += 1;
        }
    }
    // Grids are ordered by level, so walking backwards adds every child before its parent.
    for i in (0..city.grids.len()).rev() {
        if let Some(parent) = city.grids[i].parent {
            let child = std::mem::take(&mut counts[i]);
            for (&class, &n) in &child {
                *counts[parent.0 as usize].entry(class).or_insert(0) += n;
            }
            counts[i] = child;
        }
    }
    counts.into_iter().map(|m| m.into_iter().collect()).collect()
}

/// Number of direct children per grid (by `GridId`).
fn child_counts(city: &City) -> Vec<u32> {
    city.children().iter().map(|c| c.len() as u32).collect()
}

/// Each grid's geodesic area and bounding box (by `GridId`).
fn grid_shapes(city: &City) -> Vec<GridShape> {
    city.grids
        .iter()
        .map(|g| GridShape {
            area_m2: g.geometry.geodesic_area_unsigned(),
            bbox: g.geometry.bounding_rect().map(|r| [r.min().x, r.min().y, r.max().x, r.max().y]),
        })
        .collect()
}

/// `build()` and the time it took.
fn timed_build<T>(build: impl FnOnce() -> T) -> (T, Option<std::time::Duration>) {
    let t = std::time::Instant::now();
    let built = build();
    (built, Some(t.elapsed()))
}

/// What a new snapshot ([`World::rebuild`]) may take over from the one it replaces, because
/// the city it is built from is the same there. Each flag is a promise of the caller:
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reuse {
    /// The grids (codes, names, parents, units' names, geometry) and the hierarchy are the
    /// same: the grid index, the grids' areas, boxes and child counts and the grid tiles are
    /// shared.
    pub grids: bool,
    /// The components are the same (and in the same order): the component index and the
    /// component tiles are shared; with `grids` too, the per-grid component counts.
    pub components: bool,
    /// The zones are the same: the zone index and the zone tiles are shared.
    pub zones: bool,
}

impl Reuse {
    /// Build everything anew.
    pub const NOTHING: Reuse = Reuse { grids: false, components: false, zones: false };
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorldSummary {
    pub city: String,
    /// The county code the settings declare.
    pub code: Option<String>,
    /// The CRS the city's layers come in by default.
    pub crs: Option<String>,
    /// False for a new city that has no grid layer yet.
    pub has_grids: bool,
    /// What a city without grids needs next.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// lon, lat (WGS84) of the city centre.
    pub center: [f64; 2],
    /// min lon, min lat, max lon, max lat (WGS84) of the unit grids; `null` without grids.
    pub extent: Option<[f64; 4]>,
    pub layers: Vec<LayerSummary>,
    pub rules_version: Option<u64>,
    /// The working calendar's version (`None`: the built-in calendar).
    pub calendar_version: Option<u64>,
    /// The city settings' version.
    pub settings_version: Option<u64>,
    pub levels: Vec<LevelSummary>,
    pub loaded_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LayerSummary {
    pub name: &'static str,
    pub version: Option<u64>,
    pub features: usize,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LevelSummary {
    pub name: String,
    pub name_en: String,
    pub grids: usize,
}

/// The most heaps (arenas) glibc's allocator keeps: see [`WorldHandle::new`].
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MALLOC_ARENAS: libc::c_int = 4;

/// What runs on every switch, before readers see the new snapshot: `hook(old, new)`.
type SwitchHook = Box<dyn Fn(&World, &World) + Send + Sync>;

/// The shared, atomically swappable pointer to the current [`World`].
#[derive(Clone)]
pub struct WorldHandle(Arc<ArcSwap<World>>, Arc<std::sync::RwLock<Vec<SwitchHook>>>, Arc<AtomicUsize>);

impl WorldHandle {
    pub fn new(mut world: World) -> WorldHandle {
        // The big arrays of every later snapshot (components, indexes, tile data: ≥ 1 MiB each)
        // come from their own mappings, returned to the system when a switch frees them, not
        // from glibc's heap, whose dynamic threshold would otherwise keep up to 32 MiB arrays
        // there and let RSS grow with every import. (malloc_trim after each switch did as
        // much, but stalled every thread for ~1 s while it walked the heap: benches/soak.sh.)
        //
        // And at most MALLOC_ARENAS heaps: glibc gives a new thread a heap (arena) of its own
        // while there are fewer than 8 per core, and every import runs on new threads (the
        // import, the snapshot build's), so each switch could fill another arena with the new
        // snapshot's small allocations; freed, they stay in that arena (a heap shrinks only
        // from its top), and RSS grew by 60–90 MiB per switch without a plateau
        // (benches/soak.sh). With few arenas, the next import reuses what the last freed.
        // `MALLOC_ARENA_MAX` in the environment wins.
        //
        // The `citygrid` binary itself allocates with mimalloc (src/main.rs), which these
        // tunables do not touch: they still hold for what C code allocates there (SQLite) and
        // for a program that uses this library with the system allocator.
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only sets tunables of glibc's allocator.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
            if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
                libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
            }
        }
        let alive = Arc::new(AtomicUsize::new(0));
        world.tracked = Tracked::by(&alive);
        WorldHandle(Arc::new(ArcSwap::from_pointee(world)), Arc::default(), alive)
    }

    /// How many snapshots this handle served that are not freed yet: the one served now, plus
    /// old ones still held by a request in flight or waiting to be freed after a switch. 1 when
    /// quiet; 2 for a moment around a switch. A number that keeps growing means old snapshots
    /// are kept alive (`citygrid_snapshots_alive` in /metrics).
    pub fn snapshots_alive(&self) -> usize {
        self.2.load(Ordering::SeqCst)
    }

    /// The current snapshot; hold it for the whole request.
    pub fn load(&self) -> Arc<World> {
        self.0.load_full()
    }

    /// Runs `hook(old, new)` on every [`WorldHandle::replace`], on the switching thread (an
    /// import's, at background priority), before any reader sees `new`: e.g. to encode the
    /// most asked-for tiles of the new snapshot while the old one is still served.
    pub fn before_switch(&self, hook: impl Fn(&World, &World) + Send + Sync + 'static) {
        self.1.write().unwrap_or_else(std::sync::PoisonError::into_inner).push(Box::new(hook));
    }

    /// Switches every new reader to `world`; readers in flight finish on the old one. The old
    /// snapshot is freed by a low-priority thread of its own once its last reader is done
    /// (freeing a large city takes tens of milliseconds, which would otherwise fall on the
    /// request that happened to hold it last).
    pub fn replace(&self, mut world: World) {
        world.tracked = Tracked::by(&self.2);
        {
            let current = self.0.load_full();
            for hook in self.1.read().unwrap_or_else(std::sync::PoisonError::into_inner).iter() {
                hook(&current, &world);
            }
        }
        let old = self.0.swap(Arc::new(world));
        // No thread to be had: the old snapshot, moved into the closure, is freed right here.
        let _ = std::thread::Builder::new().name("world-free".into()).spawn(move || {
            lower_thread_priority();
            // Readers hold a snapshot for one request; a long download may hold it longer,
            // and then drops it itself.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while Arc::strong_count(&old) > 1 && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            drop(old);
        });
    }
}

/// The nice value of background work (imports, snapshot builds, freeing old snapshots, brotli
/// copies of tiles): the scheduler gives serving threads (nice 0) ~10× its share of a busy CPU.
pub const BACKGROUND_NICE: i32 = 10;

/// Lowers the calling thread's CPU priority to [`BACKGROUND_NICE`] and its disk priority to
/// the lowest of the best-effort class (Linux: per thread, and inherited by the threads it
/// starts; elsewhere nothing). BFQ then serves the writes this thread issues itself — a staged
/// layer's chunks and its fsync — after those of serving threads; mq-deadline orders only by
/// class (real-time, best-effort, idle), not by level within one. (Not the idle class: under a steady stream of routed cases it could
/// starve an import, and hold up a journal commit the audit log's fsync waits for.) Cannot be undone without
/// privileges: call it only on threads started for background work, never on a pool's.
pub fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid, setpriority and ioprio_set take no pointers; failure only leaves the
    // priority as is.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, BACKGROUND_NICE);
        // ioprio_set(IOPRIO_WHO_PROCESS, tid, IOPRIO_PRIO_VALUE(IOPRIO_CLASS_BE, 7)).
        const IOPRIO_WHO_PROCESS: libc::c_int = 1;
        const IOPRIO_CLASS_BE: libc::c_int = 2;
        const IOPRIO_CLASS_SHIFT: libc::c_int = 13;
        libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, tid as libc::c_int, (IOPRIO_CLASS_BE << IOPRIO_CLASS_SHIFT) | 7);
    }
}
