//! Server configuration: an optional TOML file, overridden by environment variables and flags.
//!
//! Precedence, highest first: command-line flag, environment variable (`CITYGRID_*`),
//! the `--config` file, built-in default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::http::cors::CorsPolicy;
use crate::http::server::{Rate, RateLimits, ServeLimits};
use crate::http::valid_prefix;
use crate::tiles::TileConfig;

/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "citygrid-data";
/// Default listen address: loopback only; put a reverse proxy in front for the LAN.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// Default size of the in-memory tile cache, in MiB of compressed tiles.
pub const DEFAULT_TILE_CACHE_MB: u64 = 256;

/// What a configuration file may hold. Every key is optional.
///
/// ```toml
/// bind = "0.0.0.0:8080"
/// data = "/var/lib/citygrid"
/// store = "postgres://citygrid@db/citygrid"  # a PostgreSQL/PostGIS store shared by replicas (CITYGRID_STORE)
/// admin_tokens = ["a-long-random-string"]   # bearer tokens for writes (and CITYGRID_ADMIN_TOKEN)
/// dispatcher_tokens = ["another-long-one"]  # if set: case routing and the case log need one (or an admin token)
/// max_upload_mb = 512                  # largest layer upload (PUT /v1/layers/{name}); larger: 413
/// cors_public_reads = true             # any web page may read (GET/HEAD) across origins
/// cors_write_origins = ["https://dispatch.example.gov.cn"]  # pages that may also write (routing, imports)
/// base_path = "/citygrid"              # answer under this path prefix (a proxy forwarding it unchanged)
/// metrics = true                       # GET /metrics for Prometheus (false: 404); CITYGRID_METRICS
/// log_format = "text"                  # or "json": one JSON object per log line; CITYGRID_LOG_FORMAT
/// fonts = "/usr/share/fonts/opentype/noto"  # fonts of the label glyphs (serve --fonts); default <data>/fonts
/// basemaps = ["/srv/maps/suzhou.pmtiles", "/srv/maps/imagery-2024.mbtiles"]  # served under the grids (serve --basemap)
///
/// [tiles]
/// cache_mb = 512                       # compressed tiles kept in memory
/// level_min_zoom = [0, 10, 12, 13]     # first zoom of each grid level, district first
/// zone_min_zoom = 12                   # first zoom of the zones (responsibility polygons)
/// component_full_zoom = 16             # one point per component from here; clusters below
/// max_zoom = 20
/// max_points_per_tile = 8000           # denser full-detail tiles are clustered instead
///
/// [retention]                          # old versions of each dataset (layers, rules, …) let go
/// keep_versions = 10                   # the newest N are kept whatever their age
/// keep_days = 30                       # and any younger than D days (0: age keeps none)
///                                      # (the current version and the one before it always stay)
///
/// [limits]
/// header_timeout_secs = 10             # a half-sent request head is closed after this
/// idle_timeout_secs = 60               # a keep-alive connection with no request is closed after this
/// body_timeout_secs = 30               # a request body that sends nothing this long: 408
/// max_connections = 4096               # more at once are answered 503 + Retry-After (capped below the file limit)
/// shutdown_grace_secs = 10             # on SIGTERM/SIGINT, requests in flight get this long
/// trusted_proxies = ["127.0.0.1"]      # peers whose X-Forwarded-For names the client (rate limits)
/// batch_per_minute = 30                # per client: POST /v1/cases/route:batch (0: unlimited)
/// batch_burst = 10
/// bbox_per_minute = 600                # per client: component/OGC item pages with limit > 1000
/// bbox_burst = 60
/// upload_per_minute = 10               # per client: PUT /v1/layers/…, /v1/city, /v1/rules
/// upload_burst = 5
///
/// [audit]
/// retention_days = 1095                # routing decisions older are deleted (0 = keep forever)
///
/// [staff]                              # field staff positions (docs/staff.md)
/// stale_after_secs = 120               # older positions are left out of every answer
/// track_retention_days = 7             # days of tracks kept (closed days in DATA/staff/tracks/)
/// track_max_points_per_day = 21600     # per person per day
/// event_buffer = 4096                  # SSE clients further behind get `lagged` and are dropped
/// positions_interval_ms = 1000         # SSE `positions`: one coalesced frame per interval at most
/// positions_max = 5000                 # people in one `positions` frame (the rest in the next)
/// webhooks = ["http://10.0.0.5:9000/staff-events"]  # grid enter/leave events POSTed (http:// only)
/// webhook_queue = 1000                 # per webhook; when full, newer events are dropped (counted)
/// webhook_retries = 5
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub bind: Option<String>,
    pub data: Option<PathBuf>,
    pub store: Option<String>,
    pub admin_tokens: Option<Vec<String>>,
    pub dispatcher_tokens: Option<Vec<String>>,
    /// Bearer tokens that may read staff positions and events (and CITYGRID_STAFF_TOKEN).
    pub staff_tokens: Option<Vec<String>>,
    /// Bearer tokens that may send position reports (and CITYGRID_POSITIONS_TOKEN).
    pub positions_tokens: Option<Vec<String>>,
    pub max_upload_mb: Option<usize>,
    pub cors_public_reads: Option<bool>,
    pub cors_write_origins: Option<Vec<String>>,
    pub base_path: Option<String>,
    pub metrics: Option<bool>,
    pub log_format: Option<LogFormat>,
    pub fonts: Option<PathBuf>,
    pub basemaps: Option<Vec<PathBuf>>,
    #[serde(default)]
    pub tiles: TilesSection,
    #[serde(default)]
    pub retention: RetentionSection,
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub audit: AuditSection,
    #[serde(default)]
    pub staff: StaffSection,
}

/// The `[staff]` section: positions, tracks, events of field staff. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaffSection {
    pub stale_after_secs: Option<u64>,
    pub track_retention_days: Option<u32>,
    pub track_max_points_per_day: Option<usize>,
    pub event_buffer: Option<usize>,
    pub positions_interval_ms: Option<u64>,
    pub positions_max: Option<usize>,
    pub webhooks: Option<Vec<String>>,
    pub webhook_queue: Option<usize>,
    pub webhook_retries: Option<u32>,
}

/// The `[retention]` section: which old versions of each dataset are kept
/// ([`crate::store::Retention`]). Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSection {
    pub keep_versions: Option<usize>,
    pub keep_days: Option<u32>,
}

/// The `[limits]` section: timeouts, the connection limit, the shutdown deadline and per-client
/// rate limits (see [`crate::http::server`]). Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    pub header_timeout_secs: Option<f64>,
    pub idle_timeout_secs: Option<f64>,
    pub body_timeout_secs: Option<f64>,
    pub max_connections: Option<usize>,
    pub shutdown_grace_secs: Option<f64>,
    pub trusted_proxies: Option<Vec<String>>,
    pub batch_per_minute: Option<u32>,
    pub batch_burst: Option<u32>,
    pub bbox_per_minute: Option<u32>,
    pub bbox_burst: Option<u32>,
    pub upload_per_minute: Option<u32>,
    pub upload_burst: Option<u32>,
}

impl LimitsSection {
    /// The limits, over the defaults of [`ServeLimits`].
    fn resolve(self) -> Result<ServeLimits, ConfigError> {
        let d = ServeLimits::default();
        let secs = |key: &str, v: Option<f64>, default: std::time::Duration| match v {
            None => Ok(default),
            Some(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(std::time::Duration::from_secs_f64(s)),
            Some(s) => Err(ConfigError::Limits(format!("{key} = {s}: give seconds between 0 and 86400"))),
        };
        let rate = |per_minute: Option<u32>, burst: Option<u32>, default: Rate| Rate {
            per_minute: per_minute.unwrap_or(default.per_minute),
            burst: burst.unwrap_or(default.burst).max(1),
        };
        let trusted_proxies = self
            .trusted_proxies
            .unwrap_or_default()
            .iter()
            .map(|p| p.trim().parse().map_err(|_| ConfigError::Limits(format!("trusted_proxies: {p:?} is not an IP address"))))
            .collect::<Result<_, _>>()?;
        let max_connections = self.max_connections.unwrap_or(d.max_connections);
        if max_connections == 0 {
            return Err(ConfigError::Limits("max_connections must be at least 1".into()));
        }
        Ok(ServeLimits {
            header_timeout: secs("header_timeout_secs", self.header_timeout_secs, d.header_timeout)?,
            idle_timeout: secs("idle_timeout_secs", self.idle_timeout_secs, d.idle_timeout)?,
            body_timeout: secs("body_timeout_secs", self.body_timeout_secs, d.body_timeout)?,
            max_connections,
            shutdown_grace: secs("shutdown_grace_secs", self.shutdown_grace_secs, d.shutdown_grace)?,
            rates: RateLimits {
                batch: rate(self.batch_per_minute, self.batch_burst, d.rates.batch),
                bbox: rate(self.bbox_per_minute, self.bbox_burst, d.rates.bbox),
                upload: rate(self.upload_per_minute, self.upload_burst, d.rates.upload),
                trusted_proxies,
            },
        })
    }
}

/// How log lines are written (to stderr).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, message and fields at the top level).
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<LogFormat, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("log format {other:?}: use text or json")),
        }
    }
}

/// The `[audit]` section: the audit log of routing decisions.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// Days decisions are kept (default [`DEFAULT_AUDIT_RETENTION_DAYS`]; 0 = forever).
    pub retention_days: Option<u32>,
}

/// Three years, the usual keeping period of case records.
pub const DEFAULT_AUDIT_RETENTION_DAYS: u32 = 1095;

/// The `[tiles]` section: zoom rules and the tile cache. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TilesSection {
    pub cache_mb: Option<u64>,
    pub level_min_zoom: Option<Vec<u8>>,
    pub zone_min_zoom: Option<u8>,
    pub component_full_zoom: Option<u8>,
    pub max_zoom: Option<u8>,
    pub max_points_per_tile: Option<u32>,
}

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("bad listen address {value:?}: {message} (expected e.g. 127.0.0.1:8080)")]
    Bind { value: String, message: String },
    #[error("[tiles] {0}")]
    Tiles(String),
    #[error("max_upload_mb: {0}")]
    Upload(String),
    #[error("admin_tokens / CITYGRID_ADMIN_TOKEN: {0}")]
    Token(String),
    #[error("dispatcher_tokens / CITYGRID_DISPATCHER_TOKEN: {0}")]
    DispatcherToken(String),
    #[error("staff_tokens / CITYGRID_STAFF_TOKEN: {0}")]
    StaffToken(String),
    #[error("positions_tokens / CITYGRID_POSITIONS_TOKEN: {0}")]
    PositionsToken(String),
    #[error("[staff] {0}")]
    Staff(String),
    #[error("cors_write_origins: {0}")]
    Cors(String),
    #[error("[retention] {0}")]
    Retention(String),
    #[error("base_path / --base-path / CITYGRID_BASE_PATH {0:?} is not a plain path: write it like /citygrid (letters, digits, -._~ and /; no .. segments)")]
    BasePath(String),
    #[error("[limits] {0}")]
    Limits(String),
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.to_string() })
    }
}

/// The resolved settings the server runs with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    pub data: PathBuf,
    /// A PostgreSQL store (`postgres://…`) shared by several replicas, instead of the data
    /// directory (`None`, the default). With one, `data` is not used.
    pub store: Option<String>,
    /// Zoom rules of the tiles.
    pub tiles: TileConfig,
    /// Bound of the in-memory tile cache, bytes of compressed tiles.
    pub tile_cache_bytes: u64,
    /// Bearer tokens that may write: the file's `admin_tokens` plus `CITYGRID_ADMIN_TOKEN`.
    pub admin_tokens: Vec<String>,
    /// Bearer tokens of the dispatcher role: the file's `dispatcher_tokens` plus
    /// `CITYGRID_DISPATCHER_TOKEN`. Empty: case routing and the case log are open to anyone.
    pub dispatcher_tokens: Vec<String>,
    /// Bearer tokens that read staff positions and events: `staff_tokens` plus
    /// `CITYGRID_STAFF_TOKEN`. Empty: only admins read them.
    pub staff_tokens: Vec<String>,
    /// Bearer tokens that send position reports: `positions_tokens` plus
    /// `CITYGRID_POSITIONS_TOKEN`. Empty: only admins send them.
    pub positions_tokens: Vec<String>,
    /// Staleness, track retention, event buffer (`[staff]`).
    pub staff: crate::staff::StaffConfig,
    /// Webhooks of the staff events (`[staff] webhooks`).
    pub webhooks: crate::http::staff_webhook::WebhookConfig,
    /// Largest layer upload accepted over HTTP, MiB.
    pub max_upload_mb: usize,
    /// Which web pages of other origins may call the server.
    pub cors: CorsPolicy,
    /// Which old dataset versions the data directory keeps.
    pub retention: crate::store::Retention,
    /// The path prefix every route and generated URL carries (`/citygrid`), `""` for the root.
    pub base_path: String,
    /// Timeouts, connection limit, shutdown deadline, rate limits (`[limits]`).
    pub limits: ServeLimits,
    /// `GET /metrics` answers (else 404). Default: true.
    pub metrics: bool,
    /// How log lines are written. Default: text.
    pub log_format: LogFormat,
    /// Days the audit log keeps decisions (0 = forever).
    pub audit_retention_days: u32,
    /// The file's `fonts`: the font directory of the label glyphs (the flag `--fonts` wins;
    /// neither: `<data>/fonts`).
    pub fonts: Option<PathBuf>,
    /// MBTiles/PMTiles basemap files: `--basemap` / `CITYGRID_BASEMAPS` if given, else the
    /// file's `basemaps`.
    pub basemaps: Vec<PathBuf>,
}

/// Values given on the command line or in the environment (`None`: not given).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub bind: Option<String>,
    pub data: Option<PathBuf>,
    /// `--store` / `CITYGRID_STORE`.
    pub store: Option<String>,
    pub tile_cache_mb: Option<u64>,
    /// `CITYGRID_ADMIN_TOKEN` (environment only: a flag would show in `ps`).
    pub admin_token: Option<String>,
    /// `CITYGRID_DISPATCHER_TOKEN` (environment only).
    pub dispatcher_token: Option<String>,
    /// `CITYGRID_STAFF_TOKEN` (environment only).
    pub staff_token: Option<String>,
    /// `CITYGRID_POSITIONS_TOKEN` (environment only).
    pub positions_token: Option<String>,
    /// `--base-path` / `CITYGRID_BASE_PATH`.
    pub base_path: Option<String>,
    /// `--metrics` / `CITYGRID_METRICS`.
    pub metrics: Option<bool>,
    /// `--log-format` / `CITYGRID_LOG_FORMAT`.
    pub log_format: Option<LogFormat>,
    /// `--basemap` (repeatable) / `CITYGRID_BASEMAPS` (comma-separated); replaces the file's list.
    pub basemaps: Option<Vec<PathBuf>>,
}

impl ServerConfig {
    /// Resolves flag/env values (already merged by the CLI parser) over the file and defaults.
    pub fn resolve(flags: Overrides, file: Option<FileConfig>) -> Result<ServerConfig, ConfigError> {
        let file = file.unwrap_or_default();
        let bind_text = flags.bind.or(file.bind).unwrap_or_else(|| DEFAULT_BIND.to_owned());
        let bind = bind_text.parse().map_err(|e: std::net::AddrParseError| ConfigError::Bind { value: bind_text.clone(), message: e.to_string() })?;
        let data = flags.data.or(file.data).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let store = flags.store.or(file.store).filter(|s| !s.trim().is_empty());
        let t = file.tiles;
        let cache_mb = flags.tile_cache_mb.or(t.cache_mb).unwrap_or(DEFAULT_TILE_CACHE_MB);
        let mut tiles = TileConfig::default();
        if let Some(v) = t.level_min_zoom {
            tiles.level_min_zoom = v;
        }
        if let Some(v) = t.zone_min_zoom {
            tiles.zone_min_zoom = v;
        }
        if let Some(v) = t.component_full_zoom {
            tiles.component_full_zoom = v;
        }
        if let Some(v) = t.max_zoom {
            tiles.max_zoom = v;
        }
        if let Some(v) = t.max_points_per_tile {
            tiles.max_points_per_tile = v;
        }
        tiles.validate().map_err(ConfigError::Tiles)?;
        let admin_tokens = tokens(file.admin_tokens, flags.admin_token, "an admin").map_err(ConfigError::Token)?;
        let dispatcher_tokens = tokens(file.dispatcher_tokens, flags.dispatcher_token, "a dispatcher").map_err(ConfigError::DispatcherToken)?;
        let staff_tokens = tokens(file.staff_tokens, flags.staff_token, "a staff").map_err(ConfigError::StaffToken)?;
        let positions_tokens = tokens(file.positions_tokens, flags.positions_token, "a positions").map_err(ConfigError::PositionsToken)?;
        let (staff, webhooks) = file.staff.resolve()?;
        let max_upload_mb = file.max_upload_mb.unwrap_or(crate::http::DEFAULT_MAX_UPLOAD_MB);
        if max_upload_mb == 0 {
            return Err(ConfigError::Upload("must be at least 1 (MiB)".into()));
        }
        let write_origins = file.cors_write_origins.unwrap_or_default();
        if let Some(bad) = write_origins
            .iter()
            .find(|o| !(o.starts_with("http://") || o.starts_with("https://")) || o.trim_end_matches('/').matches('/').count() != 2 || *o == "*")
        {
            return Err(ConfigError::Cors(format!(
                "{bad:?} is not an origin: write it as scheme://host[:port], e.g. https://dispatch.example.gov.cn (no \"*\": writes need named origins)"
            )));
        }
        let cors = CorsPolicy {
            public_reads: file.cors_public_reads.unwrap_or(true),
            write_origins: write_origins.into_iter().map(|o| o.trim_end_matches('/').to_owned()).collect(),
        };
        let defaults = crate::store::Retention::default();
        let retention = crate::store::Retention {
            keep_versions: file.retention.keep_versions.unwrap_or(defaults.keep_versions),
            keep_days: file.retention.keep_days.unwrap_or(defaults.keep_days),
        };
        retention.check().map_err(ConfigError::Retention)?;
        let limits = file.limits.resolve()?;
        let metrics = flags.metrics.or(file.metrics).unwrap_or(true);
        let log_format = flags.log_format.or(file.log_format).unwrap_or_default();
        let base_path = flags.base_path.or(file.base_path).unwrap_or_default();
        let base_path = if base_path.is_empty() { String::new() } else { valid_prefix(&base_path).ok_or(ConfigError::BasePath(base_path))? };
        let audit_retention_days = file.audit.retention_days.unwrap_or(DEFAULT_AUDIT_RETENTION_DAYS);
        Ok(ServerConfig {
            bind,
            data,
            store,
            tiles,
            tile_cache_bytes: cache_mb.saturating_mul(1024 * 1024),
            admin_tokens,
            dispatcher_tokens,
            staff_tokens,
            positions_tokens,
            staff,
            webhooks,
            max_upload_mb,
            cors,
            base_path,
            retention,
            limits,
            metrics,
            log_format,
            audit_retention_days,
            fonts: file.fonts,
            basemaps: flags.basemaps.filter(|b| !b.is_empty()).or(file.basemaps).unwrap_or_default(),
        })
    }
}

impl StaffSection {
    fn resolve(self) -> Result<(crate::staff::StaffConfig, crate::http::staff_webhook::WebhookConfig), ConfigError> {
        let mut staff = crate::staff::StaffConfig::default();
        if let Some(s) = self.stale_after_secs {
            if s == 0 || s > 86_400 {
                return Err(ConfigError::Staff(format!("stale_after_secs = {s}: give seconds between 1 and 86400")));
            }
            staff.stale_after = std::time::Duration::from_secs(s);
        }
        if let Some(d) = self.track_retention_days {
            if d == 0 || d > 366 {
                return Err(ConfigError::Staff(format!("track_retention_days = {d}: give days between 1 and 366")));
            }
            staff.track_retention_days = d;
        }
        if let Some(n) = self.track_max_points_per_day {
            staff.track_max_points_per_day = n;
        }
        if let Some(n) = self.event_buffer {
            if n == 0 || n > 1 << 20 {
                return Err(ConfigError::Staff(format!("event_buffer = {n}: give events between 1 and 1048576")));
            }
            staff.event_buffer = n;
        }
        if let Some(ms) = self.positions_interval_ms {
            if !(50..=60_000).contains(&ms) {
                return Err(ConfigError::Staff(format!("positions_interval_ms = {ms}: give milliseconds between 50 and 60000")));
            }
            staff.positions_interval = std::time::Duration::from_millis(ms);
        }
        if let Some(n) = self.positions_max {
            if n == 0 || n > 100_000 {
                return Err(ConfigError::Staff(format!("positions_max = {n}: give people between 1 and 100000")));
            }
            staff.positions_max = n;
        }
        let mut webhooks = crate::http::staff_webhook::WebhookConfig::default();
        for url in self.webhooks.unwrap_or_default() {
            crate::http::staff_webhook::check_url(&url).map_err(|e| ConfigError::Staff(format!("webhooks: {e}")))?;
            webhooks.urls.push(url);
        }
        if let Some(q) = self.webhook_queue {
            webhooks.queue = q.max(1);
        }
        if let Some(r) = self.webhook_retries {
            webhooks.retries = r;
        }
        Ok((staff, webhooks))
    }
}

/// The tokens of a role: the file's list plus the environment's one, trimmed, each at least 16
/// characters.
fn tokens(file: Option<Vec<String>>, env: Option<String>, role: &str) -> Result<Vec<String>, String> {
    let mut tokens = file.unwrap_or_default();
    tokens.extend(env.filter(|t| !t.trim().is_empty()));
    if let Some(t) = tokens.iter().find(|t| t.trim().len() < 16) {
        return Err(format!("{role} token of {} characters is too easy to guess: use at least 16 (e.g. `openssl rand -hex 24`)", t.trim().len()));
    }
    Ok(tokens.into_iter().map(|t| t.trim().to_owned()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_file_overrides_defaults() {
        let file = FileConfig { bind: Some("0.0.0.0:9000".into()), data: Some("/srv/city".into()), ..Default::default() };
        let c = ServerConfig::resolve(Overrides::default(), Some(file)).unwrap();
        assert_eq!(c.bind.to_string(), "0.0.0.0:9000");
        assert_eq!(c.data, PathBuf::from("/srv/city"));
        assert_eq!(c.tiles, TileConfig::default());
        assert_eq!(c.tile_cache_bytes, DEFAULT_TILE_CACHE_MB * 1024 * 1024);
        assert_eq!(c.max_upload_mb, 512);
        let file: FileConfig = toml::from_str("max_upload_mb = 64\n").unwrap();
        assert_eq!(ServerConfig::resolve(Overrides::default(), Some(file)).unwrap().max_upload_mb, 64);
        let file = FileConfig { bind: Some("0.0.0.0:9000".into()), ..Default::default() };
        let flags = Overrides { bind: Some("127.0.0.1:1234".into()), ..Default::default() };
        let c = ServerConfig::resolve(flags, Some(file)).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:1234");
        assert_eq!(c.data, PathBuf::from(DEFAULT_DATA_DIR));
    }

    #[test]
    fn the_staff_section_and_tokens() {
        let file: FileConfig = toml::from_str(
            "staff_tokens = [\"0123456789abcdef-staff\"]\n[staff]\nstale_after_secs = 30\nwebhooks = [\"http://127.0.0.1:9/x\"]\nwebhook_retries = 2\n",
        )
        .unwrap();
        let flags = Overrides { positions_token: Some("0123456789abcdef-pos".into()), ..Default::default() };
        let c = ServerConfig::resolve(flags, Some(file)).unwrap();
        assert_eq!((c.staff_tokens.len(), c.positions_tokens.len()), (1, 1));
        assert_eq!(c.staff.stale_after.as_secs(), 30);
        assert_eq!((c.webhooks.urls.len(), c.webhooks.retries), (1, 2));
        for bad in ["[staff]\nstale_after_secs = 0\n", "[staff]\nwebhooks = [\"https://x.example/\"]\n", "staff_tokens = [\"short\"]\n"] {
            let file: FileConfig = toml::from_str(bad).unwrap();
            assert!(ServerConfig::resolve(Overrides::default(), Some(file)).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_tiles_section_sets_zoom_rules_and_the_cache() {
        let file: FileConfig = toml::from_str(
            "[tiles]\ncache_mb = 64\nlevel_min_zoom = [0, 11, 13, 14]\nzone_min_zoom = 14\ncomponent_full_zoom = 17\nmax_zoom = 19\nmax_points_per_tile = 500\n",
        )
        .unwrap();
        let c = ServerConfig::resolve(Overrides::default(), Some(file)).unwrap();
        assert_eq!(c.tiles.level_min_zoom, vec![0, 11, 13, 14]);
        assert_eq!(c.tiles.zone_min_zoom, 14);
        assert_eq!((c.tiles.component_full_zoom, c.tiles.max_zoom, c.tiles.max_points_per_tile), (17, 19, 500));
        assert_eq!(c.tile_cache_bytes, 64 << 20);
        // The flag (or CITYGRID_TILE_CACHE_MB) wins over the file.
        let file: FileConfig = toml::from_str("[tiles]\ncache_mb = 64\n").unwrap();
        let flags = Overrides { tile_cache_mb: Some(8), ..Default::default() };
        assert_eq!(ServerConfig::resolve(flags, Some(file)).unwrap().tile_cache_bytes, 8 << 20);
    }

    #[test]
    fn impossible_zoom_rules_are_refused() {
        for (text, needle) in [
            ("[tiles]\nlevel_min_zoom = [0, 12, 10]\n", "level_min_zoom"),
            ("[tiles]\nlevel_min_zoom = []\n", "level_min_zoom"),
            ("[tiles]\nmax_zoom = 30\n", "max_zoom"),
            ("[tiles]\ncomponent_full_zoom = 21\n", "component_full_zoom"),
            ("[tiles]\nzone_min_zoom = 21\n", "zone_min_zoom"),
            ("[tiles]\nmax_points_per_tile = 0\n", "max_points_per_tile"),
        ] {
            let file: FileConfig = toml::from_str(text).unwrap();
            let e = ServerConfig::resolve(Overrides::default(), Some(file)).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
        let e = toml::from_str::<FileConfig>("[tiles]\ncache = 5\n").unwrap_err().to_string();
        assert!(e.contains("cache"), "{e}");
    }

    #[test]
    fn admin_tokens_come_from_the_file_and_the_environment_and_must_be_long() {
        let file: FileConfig = toml::from_str("admin_tokens = [\"0123456789abcdef-file\"]\n").unwrap();
        let flags = Overrides { admin_token: Some("0123456789abcdef-env".into()), ..Default::default() };
        let c = ServerConfig::resolve(flags, Some(file)).unwrap();
        assert_eq!(c.admin_tokens, ["0123456789abcdef-file", "0123456789abcdef-env"]);
        assert!(ServerConfig::resolve(Overrides::default(), None).unwrap().admin_tokens.is_empty());
        let file: FileConfig = toml::from_str("dispatcher_tokens = [\"0123456789abcdef-disp\"]\n").unwrap();
        let flags = Overrides { dispatcher_token: Some("0123456789abcdef-denv".into()), ..Default::default() };
        assert_eq!(ServerConfig::resolve(flags, Some(file)).unwrap().dispatcher_tokens, ["0123456789abcdef-disp", "0123456789abcdef-denv"]);
        let e = ServerConfig::resolve(Overrides { dispatcher_token: Some("short".into()), ..Default::default() }, None).unwrap_err().to_string();
        assert!(e.contains("CITYGRID_DISPATCHER_TOKEN") && e.contains("16"), "{e}");
        let flags = Overrides { admin_token: Some("short".into()), ..Default::default() };
        let e = ServerConfig::resolve(flags, None).unwrap_err().to_string();
        assert!(e.contains("CITYGRID_ADMIN_TOKEN") && e.contains("16"), "{e}");
    }

    #[test]
    fn audit_retention_defaults_to_three_years_and_zero_keeps_forever() {
        let c = ServerConfig::resolve(Overrides::default(), None).unwrap();
        assert_eq!(c.audit_retention_days, 1095);
        let file: FileConfig = toml::from_str("[audit]\nretention_days = 0\n").unwrap();
        assert_eq!(ServerConfig::resolve(Overrides::default(), Some(file)).unwrap().audit_retention_days, 0);
        assert!(toml::from_str::<FileConfig>("[audit]\nretain = 3\n").is_err(), "unknown keys are refused");
    }

    #[test]
    fn cors_reads_are_public_and_writes_need_named_origins() {
        let c = ServerConfig::resolve(Overrides::default(), None).unwrap();
        assert_eq!(c.cors, CorsPolicy { public_reads: true, write_origins: vec![] });
        let file: FileConfig = toml::from_str("cors_public_reads = false\ncors_write_origins = [\"https://map.example.cn/\"]\n").unwrap();
        let c = ServerConfig::resolve(Overrides::default(), Some(file)).unwrap();
        assert_eq!(c.cors, CorsPolicy { public_reads: false, write_origins: vec!["https://map.example.cn".into()] });
        for bad in ["*", "map.example.cn", "https://map.example.cn/app"] {
            let file: FileConfig = toml::from_str(&format!("cors_write_origins = [{bad:?}]\n")).unwrap();
            let e = ServerConfig::resolve(Overrides::default(), Some(file)).unwrap_err().to_string();
            assert!(e.contains("cors_write_origins") && e.contains("scheme://host"), "{bad}: {e}");
        }
    }

    #[test]
    fn retention_keeps_ten_versions_and_thirty_days_unless_configured() {
        let c = ServerConfig::resolve(Overrides::default(), None).unwrap();
        assert_eq!(c.retention, crate::store::Retention { keep_versions: 10, keep_days: 30 });
        let file: FileConfig = toml::from_str("[retention]\nkeep_versions = 3\nkeep_days = 0\n").unwrap();
        let c = ServerConfig::resolve(Overrides::default(), Some(file)).unwrap();
        assert_eq!(c.retention, crate::store::Retention { keep_versions: 3, keep_days: 0 });
        let file: FileConfig = toml::from_str("[retention]\nkeep_versions = 0\n").unwrap();
        let e = ServerConfig::resolve(Overrides::default(), Some(file)).unwrap_err().to_string();
        assert!(e.contains("[retention]") && e.contains("keep_versions"), "{e}");
    }

    #[test]
    fn basemaps_come_from_the_flags_else_the_file() {
        assert!(ServerConfig::resolve(Overrides::default(), None).unwrap().basemaps.is_empty());
        let file = || toml::from_str::<FileConfig>("basemaps = [\"a.pmtiles\", \"b.mbtiles\"]\n").unwrap();
        let c = ServerConfig::resolve(Overrides::default(), Some(file())).unwrap();
        assert_eq!(c.basemaps, [PathBuf::from("a.pmtiles"), PathBuf::from("b.mbtiles")]);
        let flags = Overrides { basemaps: Some(vec![PathBuf::from("c.mbtiles")]), ..Default::default() };
        assert_eq!(ServerConfig::resolve(flags, Some(file())).unwrap().basemaps, [PathBuf::from("c.mbtiles")]);
        let none_given = Overrides { basemaps: Some(Vec::new()), ..Default::default() };
        assert_eq!(ServerConfig::resolve(none_given, Some(file())).unwrap().basemaps.len(), 2, "no --basemap: the file's");
    }

    #[test]
    fn the_font_directory_comes_from_the_file() {
        assert_eq!(ServerConfig::resolve(Overrides::default(), None).unwrap().fonts, None);
        let file: FileConfig = toml::from_str("fonts = \"/usr/share/fonts/opentype/noto\"\n").unwrap();
        assert_eq!(ServerConfig::resolve(Overrides::default(), Some(file)).unwrap().fonts, Some(PathBuf::from("/usr/share/fonts/opentype/noto")));
    }

    #[test]
    fn the_base_path_is_a_plain_prefix_and_the_flag_wins() {
        assert_eq!(ServerConfig::resolve(Overrides::default(), None).unwrap().base_path, "");
        let file: FileConfig = toml::from_str("base_path = \"/citygrid/\"\n").unwrap();
        assert_eq!(ServerConfig::resolve(Overrides::default(), Some(file)).unwrap().base_path, "/citygrid");
        let file: FileConfig = toml::from_str("base_path = \"/citygrid\"\n").unwrap();
        let flags = Overrides { base_path: Some("/gis/grid".into()), ..Default::default() };
        assert_eq!(ServerConfig::resolve(flags, Some(file)).unwrap().base_path, "/gis/grid");
        let flags = Overrides { base_path: Some("/".into()), ..Default::default() };
        assert_eq!(ServerConfig::resolve(flags, None).unwrap().base_path, "");
        for bad in ["citygrid", "/a/../b", "//evil.example", "http://x/y", "/a b", "/a?b"] {
            let flags = Overrides { base_path: Some(bad.into()), ..Default::default() };
            let e = ServerConfig::resolve(flags, None).unwrap_err().to_string();
            assert!(e.contains("base_path") && e.contains("/citygrid"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_limits_section_sets_timeouts_connections_and_rates() {
        let c = ServerConfig::resolve(Overrides::default(), None).unwrap();
        assert_eq!(c.limits, ServeLimits::default());
        let file: FileConfig = toml::from_str(
            "[limits]\nheader_timeout_secs = 0.5\nmax_connections = 8\nshutdown_grace_secs = 2\ntrusted_proxies = [\"10.0.0.1\"]\nbatch_per_minute = 2\nbatch_burst = 1\n",
        )
        .unwrap();
        let l = ServerConfig::resolve(Overrides::default(), Some(file)).unwrap().limits;
        assert_eq!(l.header_timeout, std::time::Duration::from_millis(500));
        assert_eq!((l.max_connections, l.shutdown_grace.as_secs()), (8, 2));
        assert_eq!(l.rates.batch, Rate { per_minute: 2, burst: 1 });
        assert_eq!(l.rates.trusted_proxies, vec!["10.0.0.1".parse::<std::net::IpAddr>().unwrap()]);
        for (text, needle) in [
            ("[limits]\nmax_connections = 0\n", "max_connections"),
            ("[limits]\nidle_timeout_secs = -1\n", "idle_timeout_secs"),
            ("[limits]\ntrusted_proxies = [\"proxy.lan\"]\n", "trusted_proxies"),
        ] {
            let file: FileConfig = toml::from_str(text).unwrap();
            let e = ServerConfig::resolve(Overrides::default(), Some(file)).unwrap_err().to_string();
            assert!(e.contains("[limits]") && e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn metrics_and_log_format_come_from_flags_over_the_file() {
        let c = ServerConfig::resolve(Overrides::default(), None).unwrap();
        assert_eq!((c.metrics, c.log_format), (true, LogFormat::Text));
        let file: FileConfig = toml::from_str("metrics = false\nlog_format = \"json\"\n").unwrap();
        let c = ServerConfig::resolve(Overrides::default(), Some(file)).unwrap();
        assert_eq!((c.metrics, c.log_format), (false, LogFormat::Json));
        let file: FileConfig = toml::from_str("metrics = false\nlog_format = \"json\"\n").unwrap();
        let flags = Overrides { metrics: Some(true), log_format: Some(LogFormat::Text), ..Default::default() };
        let c = ServerConfig::resolve(flags, Some(file)).unwrap();
        assert_eq!((c.metrics, c.log_format), (true, LogFormat::Text));
        let e = toml::from_str::<FileConfig>("log_format = \"xml\"\n").unwrap_err().to_string();
        assert!(e.contains("log_format") && e.contains("json"), "{e}");
        assert_eq!("JSON".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert!("xml".parse::<LogFormat>().unwrap_err().contains("text or json"));
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        let e = ServerConfig::resolve(Overrides { bind: Some("localhost".into()), ..Default::default() }, None).unwrap_err();
        assert!(e.to_string().contains("127.0.0.1:8080"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "bnid = \"x\"\n").unwrap();
        let e = FileConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains("c.toml") && e.contains("bnid"), "{e}");
    }
}
