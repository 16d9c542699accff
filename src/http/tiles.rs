//! Vector tiles over HTTP: `GET /tiles` (catalog), `GET /tiles/{layers}` (TileJSON 3.0),
//! `GET /tiles/{layers}/{z}/{x}/{y}.mvt` (also `.pbf`, the name GDAL and mbutil use),
//! `GET /tiles/{layers}/metadata.json` (the tileset's description in the tippecanoe/mbutil
//! format GDAL's MVT driver reads: `ogrinfo MVT:http://HOST/tiles/grids,components/14`), and
//! `GET /styles/citygrid.json`.
//!
//! Encoded tiles are cached in memory, size-bounded (moka, weighed by bytes), pre-compressed.
//! The cache key and the ETag carry the grids, zones and components dataset versions, so a new
//! version of any of them (an import, a rollback) is never answered from an old entry, and a
//! client's `If-None-Match` with an old ETag gets the new tile, not a 304. The first request for
//! a tile after such a switch drops every entry of the versions no longer served.
//!
//! A miss is kept cheap, as after a switch every screen's tiles are misses at once: the tile
//! is encoded once however many requests ask for it meanwhile, and compressed with a fast gzip
//! (level 1: 5–15% larger than level 6 at a fiftieth of its time on a dense tile), layer by
//! layer: the tile's gzip member is stitched from its layers' compressed parts, and the
//! components part of a dense tile is made once per components snapshot
//! ([`crate::tiles::TileSet::encode_parts`], src/tiles/parts.rs). A client that
//! accepts gzip gets that; the brotli copy (quality 4) is made by a background thread at low
//! CPU priority and served from then on. A cached tile whose copy was never asked for is
//! compressed on the spot by the first request that accepts brotli (and gets it).

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use super::conditional::{accepts_encoding, etag_matches};
use super::error::ApiError;
use super::params::Params;
use super::{AppState, base_url};
use crate::crs::Datum;
use crate::tiles::{Layer, TileError};
use crate::world::World;

/// Default size bound of the tile cache, bytes (raw + compressed copies).
pub const DEFAULT_TILE_CACHE_BYTES: u64 = crate::config::DEFAULT_TILE_CACHE_MB * 1024 * 1024;
/// `Cache-Control` of tiles: clients and CDNs may keep a tile 5 minutes, then revalidate with
/// its ETag (cheap: a 304 from the in-memory cache).
const TILE_CACHE_CONTROL: &str = "public, max-age=300";
pub(crate) const MVT_TYPE: &str = "application/vnd.mapbox-vector-tile";
/// The MapLibre style, with `{{BASE_URL}}` where the server's own URL goes.
const STYLE_TEMPLATE: &str = include_str!("../../styles/citygrid.json");

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct TileKey {
    grids_version: Option<u64>,
    zones_version: Option<u64>,
    /// The city settings name the grid levels (`level_name`): renaming one must not be answered
    /// from the cache.
    settings_version: Option<u64>,
    components_version: Option<u64>,
    layers: Vec<Layer>,
    datum: Datum,
    z: u8,
    x: u32,
    y: u32,
}

impl TileKey {
    fn versions(&self) -> [Option<u64>; 4] {
        [self.grids_version, self.zones_version, self.settings_version, self.components_version]
    }
}

/// One encoded tile; `raw: None` is an empty tile (204).
struct CachedTile {
    raw: Option<Bytes>,
    gzip: Option<Bytes>,
    brotli: OnceLock<Bytes>,
    /// The brotli copy was handed to the background compressor.
    brotli_queued: AtomicBool,
    etag: HeaderValue,
}

/// Brotli quality and window of cached tiles (made in the background, or on the spot for a
/// cached tile whose copy was never asked for). Quality 4: a dense z16 tile (116 KB raw) takes
/// 5.8 ms and comes to 34.7 KB; quality 6 takes 24.7 ms for 32.2 KB (benches/tiles.rs).
const BROTLI_QUALITY: u32 = 4;
const BROTLI_LGWIN: u32 = 22;
/// Before a switch, the cached tiles are encoded from the new snapshot for at most this long
/// (the switch waits for it) and at most this many.
const WARM_BUDGET: std::time::Duration = std::time::Duration::from_secs(3);
const WARM_MAX_TILES: usize = 20_000;
/// Tiles waiting for their brotli copy; past this, a tile is not queued (its first brotli
/// request compresses it).
const BROTLI_QUEUE: usize = 256;

impl CachedTile {
    fn weight(&self) -> u32 {
        let n = self.raw.as_ref().map_or(0, Bytes::len) + self.gzip.as_ref().map_or(0, Bytes::len);
        // Brotli copies come later; count them as about a gzip copy.
        (n + self.gzip.as_ref().map_or(0, Bytes::len) + 128).min(u32::MAX as usize) as u32
    }
}

/// The in-memory tile cache, shared by all handlers.
#[derive(Clone)]
pub struct TileCache(Arc<TileCacheInner>);

struct TileCacheInner {
    tiles: moka::sync::Cache<TileKey, Arc<CachedTile>>,
    /// The snapshot (its address) whose versions the cache was last checked against, and those
    /// versions: a switch to other grids, zones, components or settings drops the old entries.
    seen_world: AtomicUsize,
    seen_versions: Mutex<Option<[Option<u64>; 4]>>,
    /// The background brotli compressor, started on first use.
    brotli: OnceLock<Option<SyncSender<Arc<CachedTile>>>>,
    /// Whether the cache keeps tiles at all (`--tile-cache-mb 0` does not): without it a
    /// tile's brotli copy would be made for nothing.
    keeps_tiles: bool,
}

impl TileCache {
    pub fn new(max_bytes: u64) -> TileCache {
        TileCache(Arc::new(TileCacheInner {
            tiles: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_: &TileKey, t: &Arc<CachedTile>| t.weight())
                .support_invalidation_closures()
                .build(),
            seen_world: AtomicUsize::new(0),
            seen_versions: Mutex::new(None),
            brotli: OnceLock::new(),
            keeps_tiles: max_bytes > 0,
        }))
    }

    /// Bytes held (as weighed) and number of tiles, after pending evictions are applied.
    pub fn size(&self) -> (u64, u64) {
        self.0.tiles.run_pending_tasks();
        (self.0.tiles.weighted_size(), self.0.tiles.entry_count())
    }

    /// When the snapshot served now has other tile versions than the cache last saw, drops
    /// the entries of every other version: they can never be asked for again, and a full cache
    /// would otherwise keep them (its admission favours often-asked entries) and turn new tiles
    /// away. `seen_by_request` (the request's snapshot) is only the fast check; the handle's
    /// current one decides, so a request still holding the old snapshot drops nothing new.
    fn forget_old_versions(&self, seen_by_request: &Arc<World>, handle: &crate::world::WorldHandle) {
        if self.0.seen_world.load(Ordering::Relaxed) == Arc::as_ptr(seen_by_request) as usize {
            return;
        }
        let current = handle.load();
        let at = Arc::as_ptr(&current) as usize;
        if self.0.seen_world.load(Ordering::Relaxed) == at {
            return;
        }
        let versions = tile_versions(&current);
        let mut seen = self.0.seen_versions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.is_some_and(|v| v != versions) {
            // Applied by the cache's housekeeping; a lookup never sees a matching entry again.
            if self.0.tiles.invalidate_entries_if(move |k: &TileKey, _| k.versions() != versions).is_err() {
                self.0.tiles.invalidate_all();
            }
        }
        *seen = Some(versions);
        self.0.seen_world.store(at, Ordering::Relaxed);
    }

    /// Makes the cache follow `world`'s switches: before each, the tiles cached for the
    /// snapshot being replaced are encoded from the new one ([`TileCache::warm`]).
    pub fn follow(&self, world: &crate::world::WorldHandle) {
        let cache = self.clone();
        world.before_switch(move |old, new| cache.warm(old, new));
    }

    /// Encodes from `new` the tiles cached for `old` (lowest zooms first: each covers more
    /// screens), for at most [`WARM_BUDGET`] and [`WARM_MAX_TILES`], so that the tiles being
    /// looked at are hits from the first request after the switch instead of all missing at
    /// once. Runs on the switching thread, at its priority.
    fn warm(&self, old: &World, new: &World) {
        let (from, to) = (tile_versions(old), tile_versions(new));
        if from == to {
            return;
        }
        let started = std::time::Instant::now();
        // With whether a client asked for its brotli copy.
        let mut keys: Vec<(TileKey, bool)> =
            self.0.tiles.iter().filter(|(k, _)| k.versions() == from).map(|(k, t)| ((*k).clone(), t.brotli.get().is_some())).collect();
        keys.sort_by_key(|(k, _)| (k.z, k.x, k.y));
        let mut warmed = 0usize;
        for (mut key, brotli) in keys.into_iter().take(WARM_MAX_TILES) {
            if started.elapsed() > WARM_BUDGET {
                break;
            }
            [key.grids_version, key.zones_version, key.settings_version, key.components_version] = to;
            if self.0.tiles.contains_key(&key) {
                continue;
            }
            if let Ok(tile) = encode(new, &key) {
                let tile = Arc::new(tile);
                if brotli {
                    self.queue_brotli(&tile);
                }
                self.0.tiles.insert(key, tile);
                warmed += 1;
            }
        }
        tracing::info!(tiles = warmed, took_ms = started.elapsed().as_millis() as u64, "tiles of the new snapshot encoded before the switch");
    }

    /// Hands `tile` to the background brotli compressor (once; not when its queue is full, nor
    /// when the cache keeps no tiles). Whether it is (or already was) queued.
    fn queue_brotli(&self, tile: &Arc<CachedTile>) -> bool {
        if !self.0.keeps_tiles || tile.raw.is_none() || tile.brotli.get().is_some() {
            return false;
        }
        if tile.brotli_queued.swap(true, Ordering::Relaxed) {
            return true;
        }
        let sender = self.0.brotli.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Arc<CachedTile>>(BROTLI_QUEUE);
            std::thread::Builder::new()
                .name("tile-brotli".into())
                .spawn(move || {
                    crate::world::lower_thread_priority();
                    // Ends when the cache (every sender) is dropped.
                    while let Ok(tile) = rx.recv() {
                        if let Some(raw) = &tile.raw {
                            tile.brotli.get_or_init(|| brotli(raw));
                        }
                    }
                })
                .ok()
                .map(|_| tx)
        });
        let queued = match sender {
            Some(tx) => tx.try_send(tile.clone()).is_ok(),
            None => false,
        };
        if !queued {
            tile.brotli_queued.store(false, Ordering::Relaxed);
        }
        queued
    }
}

/// The dataset versions a tile depends on: grids, zones, city settings, components.
fn tile_versions(world: &World) -> [Option<u64>; 4] {
    let v = &world.versions;
    [v.get("grids"), v.get("zones"), v.get("city"), v.get("components")]
}

/// The layer list of a URL: `grids`, `zones`, `components`, or several comma-joined (in any
/// order; each at most once), sorted into [`Layer::ALL`]'s order.
fn parse_layers(spec: &str) -> Result<Vec<Layer>, ApiError> {
    let mut layers = Vec::new();
    for name in spec.split(',') {
        let layer = Layer::from_name(name.trim()).ok_or_else(|| {
            let known: Vec<&str> = Layer::ALL.iter().map(|l| l.name()).collect();
            ApiError::new(StatusCode::NOT_FOUND, "unknown_layer", format!("no tile layer {name:?}: the layers are {}", known.join(", ")))
                .with_details(json!({"layer": name, "layers": known}))
        })?;
        if layers.contains(&layer) {
            return Err(ApiError::bad_request("invalid_layers", format!("layer {name} is listed twice")));
        }
        layers.push(layer);
    }
    layers.sort();
    Ok(layers)
}

/// `datum`: wgs84 (default) or gcj02 (AMap / Tencent base maps).
fn tile_datum(p: &Params) -> Result<Datum, ApiError> {
    match p.get("datum").map(str::to_ascii_lowercase).as_deref() {
        None | Some("wgs84") | Some("cgcs2000") => Ok(Datum::Wgs84),
        Some("gcj02") | Some("gcj-02") => Ok(Datum::Gcj02),
        Some(other) => Err(ApiError::bad_request("unknown_datum", format!("unknown tile datum {other:?}: use wgs84 or gcj02"))
            .with_details(json!({"parameter": "datum", "value": other, "accepted": ["wgs84", "gcj02"]}))),
    }
}

fn tile_error(e: TileError) -> ApiError {
    match e {
        TileError::OutOfRange { z, x, y, max_zoom } => {
            ApiError::bad_request("tile_out_of_range", e.to_string()).with_details(json!({"z": z, "x": x, "y": y, "max_zoom": max_zoom}))
        }
    }
}

fn out_of_range(what: &str, value: &str) -> ApiError {
    ApiError::bad_request("tile_out_of_range", format!("tile {what} {value:?} is not a valid tile coordinate"))
        .with_details(json!({"parameter": what, "value": value}))
}

/// `GET /tiles/{layers}/{z}/{x}/{y}.mvt[?datum=gcj02]` (`.pbf` alike)
#[utoipa::path(get, path = "/tiles/{layers}/{z}/{x}/{y}.mvt", tag = "tiles",
    summary = "a Mapbox vector tile",
    params(("layers" = String, Path, description = "comma-separated tile layers: grids, zones, components"),
        ("z" = u8, Path, description = "zoom"), ("x" = u32, Path, description = "column"), ("y" = u32, Path, description = "row"),
        ("datum" = Option<String>, Query, description = "wgs84 (default) or gcj02 (for AMap / Tencent base maps)")),
    responses((status = 200, description = "the tile", content(("application/vnd.mapbox-vector-tile"))),
        (status = 204, description = "an empty tile: nothing of these layers there"),
        (status = 304, description = "the client's If-None-Match names it"),
        (status = 400, description = "tile_out_of_range, invalid_layers, unknown_datum", body = super::error::ErrorBody),
        (status = 404, description = "unknown_layer, or the path does not end in .mvt", body = super::error::ErrorBody)))]
pub async fn tile(
    State(state): State<AppState>,
    Path((layers, z, x, y)): Path<(String, String, String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let layers = parse_layers(&layers)?;
    let datum = tile_datum(&Params::parse(q.as_deref())?)?;
    let y = y.strip_suffix(".mvt").or_else(|| y.strip_suffix(".pbf")).ok_or_else(|| {
        ApiError::not_found(format!("tiles end in .mvt (or .pbf): /tiles/…/{z}/{x}/{y}.mvt")).with_details(json!({"path": format!("{z}/{x}/{y}")}))
    })?;
    let z: u8 = z.parse().map_err(|_| out_of_range("z", &z))?;
    let x: u32 = x.parse().map_err(|_| out_of_range("x", &x))?;
    let y: u32 = y.parse().map_err(|_| out_of_range("y", y))?;

    let world = state.world.load();
    state.tiles.forget_old_versions(&world, &state.world);
    let [grids_version, zones_version, settings_version, components_version] = tile_versions(&world);
    let key = TileKey { grids_version, zones_version, settings_version, components_version, layers, datum, z, x, y };
    let cached = state.tiles.0.tiles.get(&key);
    state.metrics.tile_cache(cached.is_some());
    let cached = match cached {
        Some(t) => t,
        None => {
            let metrics = state.metrics.clone();
            let cache = state.tiles.clone();
            // Encoding and compressing is CPU work: keep it off the async workers. Requests for
            // the same tile meanwhile wait for this one encode instead of doing their own.
            let tile = tokio::task::spawn_blocking(move || {
                cache.0.tiles.try_get_with_by_ref(&key, || {
                    let started = std::time::Instant::now();
                    let tile = encode(&world, &key);
                    metrics.tile_encoded(started.elapsed());
                    tile.map(Arc::new)
                })
            })
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("tile encoder failed: {e}")))?
            .map_err(|e| tile_error((*e).clone()))?;
            ensure_brotli(&state.tiles, &tile, &headers, true).await?;
            return Ok(respond(&tile, &headers));
        }
    };
    ensure_brotli(&state.tiles, &cached, &headers, false).await?;
    Ok(respond(&cached, &headers))
}

/// Makes `tile`'s brotli copy when this client accepts brotli and it is not made yet — unless
/// the client also takes gzip and the tile was just encoded (`fresh`: the copy is handed to the
/// background compressor) or its copy is on its way from there: then this answer is gzip. Off
/// the async workers.
async fn ensure_brotli(cache: &TileCache, tile: &Arc<CachedTile>, headers: &HeaderMap, fresh: bool) -> Result<(), ApiError> {
    if tile.raw.is_none() || tile.brotli.get().is_some() || !accepts_encoding(headers, "br") {
        return Ok(());
    }
    if accepts_encoding(headers, "gzip") && (tile.brotli_queued.load(Ordering::Relaxed) || fresh) {
        if fresh {
            // Its queue full (a burst of misses): the first hit that asks for brotli makes it.
            cache.queue_brotli(tile);
        }
        return Ok(());
    }
    let tile = tile.clone();
    tokio::task::spawn_blocking(move || {
        if let Some(raw) = &tile.raw {
            tile.brotli.get_or_init(|| brotli(raw));
        }
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("tile compression failed: {e}")))
}

/// Encodes and compresses the tile of `key`: its layers as parts (the components part of a
/// dense tile reused from the snapshot's part cache once made), stitched into the raw tile and
/// one gzip member (src/tiles/parts.rs); the ETag's checksum is the CRC-32 of the raw tile.
fn encode(world: &World, key: &TileKey) -> Result<CachedTile, TileError> {
    let stitched = world.tiles.encode_parts(&world.city, &key.layers, key.z, key.x, key.y, key.datum)?.map(|parts| crate::tiles::parts::stitch(&parts));
    let checksum = stitched.as_ref().map_or(0, |s| s.crc);
    let etag = format!("\"g{}-c{}-z{}-{checksum:08x}\"", key.grids_version.unwrap_or(0), key.components_version.unwrap_or(0), key.zones_version.unwrap_or(0));
    let (raw, gzip) = match stitched {
        Some(s) => (Some(s.raw), Some(s.gzip)),
        None => (None, None),
    };
    Ok(CachedTile { raw, gzip, brotli: OnceLock::new(), brotli_queued: AtomicBool::new(false), etag: HeaderValue::from_str(&etag).expect("ASCII etag") })
}

fn brotli(raw: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(raw.len() / 2 + 64);
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, BROTLI_QUALITY, BROTLI_LGWIN);
        w.write_all(raw).expect("in-memory write");
    }
    Bytes::from(out)
}

/// The answer from `tile`: 304 when `If-None-Match` names it, 204 when empty, else brotli (when
/// accepted and made: [`ensure_brotli`]), gzip or identity as the client accepts.
fn respond(tile: &CachedTile, headers: &HeaderMap) -> Response {
    let not_modified = etag_matches(headers, tile.etag.to_str().unwrap_or(""));
    let common = [
        (header::ETAG, tile.etag.clone()),
        (header::CACHE_CONTROL, HeaderValue::from_static(TILE_CACHE_CONTROL)),
        (header::VARY, HeaderValue::from_static("accept-encoding")),
    ];
    if not_modified {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    let Some(raw) = &tile.raw else {
        return (StatusCode::NO_CONTENT, common).into_response();
    };
    let gzip = accepts_encoding(headers, "gzip");
    let mut response = if let Some(body) = tile.brotli.get().filter(|_| accepts_encoding(headers, "br")) {
        let body = body.clone();
        (common, [(header::CONTENT_ENCODING, HeaderValue::from_static("br"))], body).into_response()
    } else if gzip {
        let body = tile.gzip.clone().expect("gzip of a non-empty tile");
        (common, [(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"))], body).into_response()
    } else {
        (common, raw.clone()).into_response()
    };
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(MVT_TYPE));
    response
}

/// `?datum=gcj02` for GCJ-02 tiles, nothing for WGS84.
fn datum_query(datum: Datum) -> &'static str {
    if datum == Datum::Gcj02 { "?datum=gcj02" } else { "" }
}

fn tilejson(world: &World, base: &str, layers: &[Layer], datum: Datum) -> Value {
    let names: Vec<&str> = layers.iter().map(|l| l.name()).collect();
    let joined = names.join(",");
    let shift = |lon: f64, lat: f64| if datum == Datum::Gcj02 { Datum::Gcj02.from_wgs84(lon, lat) } else { (lon, lat) };
    let bounds = world.grids.extent().map(|r| {
        let (x0, y0) = shift(r.min().x, r.min().y);
        let (x1, y1) = shift(r.max().x, r.max().y);
        [x0, y0, x1, y1]
    });
    let [lon, lat] = world.center();
    let (cx, cy) = shift(lon, lat);
    let mut vector_layers = Vec::new();
    for &layer in layers {
        let info = world.tiles.layer_info(layer);
        let fields: serde_json::Map<String, Value> = info.fields.iter().map(|(k, t)| ((*k).to_owned(), Value::from(*t))).collect();
        let mut entry = json!({
            "id": info.id, "description": info.description, "fields": fields,
            "minzoom": info.minzoom, "maxzoom": info.maxzoom,
        });
        if layer == Layer::Zones {
            // Which zone layers there are (for a legend): name → number of zones.
            let present: serde_json::Map<String, Value> = world.tiles.zone_layers().iter().map(|(name, n)| (name.clone(), json!(n))).collect();
            entry["zone_layers"] = Value::Object(present);
        }
        vector_layers.push(entry);
    }
    let config = world.tiles.config();
    let versions: serde_json::Map<String, Value> = layers.iter().map(|l| (l.name().to_owned(), json!(world.versions.get(l.name())))).collect();
    json!({
        "tilejson": "3.0.0",
        "name": format!("{} — {}", world.meta.name, joined),
        "description": format!("citygrid vector tiles of {} ({})", world.meta.name, if datum == Datum::Gcj02 { "GCJ-02, for AMap/Tencent base maps" } else { "WGS84" }),
        "version": "1.0.0",
        "attribution": "citygrid",
        "scheme": "xyz",
        "tiles": [format!("{base}/tiles/{joined}/{{z}}/{{x}}/{{y}}.mvt{}", datum_query(datum))],
        "minzoom": 0,
        "maxzoom": config.max_zoom,
        "bounds": bounds.unwrap_or([-180.0, -85.051129, 180.0, 85.051129]),
        "center": [cx, cy, 13],
        "vector_layers": vector_layers,
        "versions": versions,
    })
}

/// `GET /tiles/{layers}[?datum=gcj02]`: TileJSON 3.0.
#[utoipa::path(get, path = "/tiles/{layers}", tag = "tiles",
    summary = "TileJSON 3.0 of a tileset",
    params(("layers" = String, Path, description = "comma-separated tile layers: grids, zones, components"), ("datum" = Option<String>, Query, description = "wgs84 (default) or gcj02 (for AMap / Tencent base maps)")),
    responses((status = 200, description = "the TileJSON", body = Object),
        (status = 304, description = "the client's If-None-Match names it"),
        (status = 400, description = "invalid_layers, unknown_datum", body = super::error::ErrorBody),
        (status = 404, description = "unknown_layer", body = super::error::ErrorBody)))]
pub async fn tilejson_handler(
    State(state): State<AppState>,
    Path(layers): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let layers = parse_layers(&layers)?;
    let datum = tile_datum(&Params::parse(q.as_deref())?)?;
    let world = state.world.load();
    Ok(validated_json(tilejson(&world, &base_url(&headers), &layers, datum).to_string(), &headers, METADATA_CACHE_CONTROL))
}

/// Cache-Control of TileJSON, the catalog and the style: short, as they name the layer versions
/// being served (revalidated with their ETag, a 304 when unchanged).
const METADATA_CACHE_CONTROL: &str = "public, max-age=60";

/// A JSON document with an `ETag` (a checksum of its bytes) and `Cache-Control`; 304 when the
/// client's `If-None-Match` already names it.
fn validated_json(body: String, headers: &HeaderMap, cache_control: &'static str) -> Response {
    let etag = format!("\"j{:08x}-{}\"", crc32fast::hash(body.as_bytes()), body.len());
    let fresh = etag_matches(headers, &etag);
    let common = [
        (header::ETAG, HeaderValue::from_str(&etag).expect("an ASCII etag")),
        (header::CACHE_CONTROL, HeaderValue::from_static(cache_control)),
        (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (common, body).into_response()
}

/// `GET /tiles`: the tilesets this server offers, each with its TileJSON URL.
#[utoipa::path(get, path = "/tiles", tag = "tiles",
    summary = "the tilesets offered, each with its TileJSON URL",
    responses((status = 200, description = "{city, tilesets: [{id, tilejson, tilejson_gcj02, tiles}], style}", body = Object),
        (status = 304, description = "the client's If-None-Match names it")))]
pub async fn catalog(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let base = base_url(&headers);
    let world = state.world.load();
    let sets: Vec<Value> = ["grids", "zones", "components", "grids,components", "grids,zones,components"]
        .iter()
        .map(|set| {
            json!({
                "id": set,
                "tilejson": format!("{base}/tiles/{set}"),
                "tilejson_gcj02": format!("{base}/tiles/{set}?datum=gcj02"),
                "tiles": format!("{base}/tiles/{set}/{{z}}/{{x}}/{{y}}.mvt"),
            })
        })
        .collect();
    let body = json!({
        "city": world.meta.name,
        "tilesets": sets,
        "style": format!("{base}/styles/citygrid.json"),
    });
    validated_json(body.to_string(), &headers, METADATA_CACHE_CONTROL)
}

/// `GET /styles/citygrid.json[?datum=gcj02]`: the MapLibre style with this server's URLs.
#[utoipa::path(get, path = "/styles/citygrid.json", tag = "tiles",
    summary = "the MapLibre style of the tiles",
    params(("datum" = Option<String>, Query, description = "wgs84 (default) or gcj02 (for AMap / Tencent base maps)")),
    responses((status = 200, description = "a MapLibre style (version 8)", body = Object),
        (status = 304, description = "the client's If-None-Match names it"),
        (status = 400, description = "unknown_datum", body = super::error::ErrorBody)))]
pub async fn style(State(state): State<AppState>, RawQuery(q): RawQuery, headers: HeaderMap) -> Result<Response, ApiError> {
    let datum = tile_datum(&Params::parse(q.as_deref())?)?;
    let base = base_url(&headers);
    let mut body = STYLE_TEMPLATE.replace("{{BASE_URL}}", &base).replace("{{DATUM_QUERY}}", datum_query(datum));
    if !state.basemaps.is_empty() && datum == Datum::Wgs84 {
        // The basemaps' sources and layers under the grids (src/http/basemap.rs); they are
        // WGS84, so a GCJ-02 style (for AMap/Tencent base maps) goes without them.
        let mut style: Value = serde_json::from_str(&body).expect("the built-in style is JSON");
        super::basemap::add_to_style(&mut style, &state, &base);
        body = style.to_string();
    }
    Ok(validated_json(body, &headers, METADATA_CACHE_CONTROL))
}

/// `GET /tiles/{layers}/metadata.json`: the tileset in the `metadata.json` format of tippecanoe
/// and mbutil (every value a string; the layers as a JSON text in `json`). GDAL's MVT driver
/// reads it beside the zoom level it is given (`MVT:http://HOST/tiles/{layers}/{z}`) for the
/// layers, their fields and geometry types and the bounds, then fetches `{z}/{x}/{y}.pbf`.
/// WGS84 tiles only (GDAL builds tile URLs without a query string).
#[utoipa::path(get, path = "/tiles/{layers}/metadata.json", tag = "tiles",
    summary = "the tileset as a tippecanoe metadata.json (what GDAL's MVT driver reads beside MVT:http://…/{layers}/{z})",
    params(("layers" = String, Path, description = "comma-separated tile layers: grids, zones, components")),
    responses((status = 200, description = "name, format pbf, minzoom, maxzoom, bounds, center, and json: the vector_layers", body = Object),
        (status = 400, description = "invalid_layers", body = super::error::ErrorBody),
        (status = 404, description = "unknown_layer", body = super::error::ErrorBody)))]
pub async fn metadata_json(State(state): State<AppState>, Path(layers): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let layers = parse_layers(&layers)?;
    let world = state.world.load();
    let tj = tilejson(&world, &base_url(&headers), &layers, Datum::Wgs84);
    let join = |v: &Value| v.as_array().map(|a| a.iter().map(Value::to_string).collect::<Vec<_>>().join(",")).unwrap_or_default();
    // Geometry types for GDAL: components are points (single or clusters); grids and zones
    // mix polygons with their label points, so they name none.
    let tilestats: Vec<Value> = layers
        .iter()
        .map(|&l| {
            let mut stat = json!({"layer": l.name(), "attributeCount": world.tiles.layer_info(l).fields.len()});
            if l == Layer::Components {
                stat["geometry"] = json!("Point");
            }
            stat
        })
        .collect();
    let inner = json!({
        "vector_layers": tj["vector_layers"],
        "tilestats": {"layerCount": layers.len(), "layers": tilestats},
    });
    let body = json!({
        "name": tj["name"],
        "description": tj["description"],
        "version": "2",
        "type": "overlay",
        "format": "pbf",
        "minzoom": tj["minzoom"].to_string(),
        "maxzoom": tj["maxzoom"].to_string(),
        "bounds": join(&tj["bounds"]),
        "center": join(&tj["center"]),
        "attribution": tj["attribution"],
        "tiles": tj["tiles"],
        "json": inner.to_string(),
    });
    Ok(validated_json(body.to_string(), &headers, METADATA_CACHE_CONTROL))
}
