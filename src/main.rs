//! The `citygrid` command: serve a data directory, generate a demo city.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tracing::{info, warn};

/// The allocator of the server and the CLI: mimalloc. Every layer switch builds a new
/// snapshot of the city (hundreds of MiB in millions of allocations) on one thread while
/// requests allocate on others, then frees the old one; glibc's malloc kept much of what was
/// freed (RSS grew by ~100 MiB per switch in `benches/soak.sh`), mimalloc gives it back.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use citygrid::config::{DEFAULT_DATA_DIR, FileConfig, LogFormat, Overrides, ServerConfig};
use citygrid::demo::{DemoSpec, Preset};
use citygrid::http::{AppState, router};
use citygrid::store::{CityMeta, Store};
use citygrid::world::{World, WorldHandle};

/// citygrid: vector tiles, lookups and case routing for grid-based city management (网格化管理).
///
/// A city is cut into a hierarchy of grids (区 district › 街道 street › 社区 community › 网格 unit grid)
/// and holds its components (部件: manhole covers, lamps, cameras…). citygrid keeps them in memory
/// and answers over HTTP. Start with:
///
///   citygrid serve --demo          # generate the Wuzhong demo city into ./citygrid-data and serve it
///
///   curl http://127.0.0.1:8080/health
#[derive(Parser)]
#[command(name = "citygrid", version, verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a data directory over HTTP (health, lookups, tiles as they are built).
    Serve(ServeArgs),
    /// Generate a synthetic demo city (grids, components, zones, units, responsibility list) as a
    /// city package and import it into a data directory like any city's package (or, with
    /// --package, only write the package).
    ///
    /// Same preset and seed, same layer files, byte for byte. Writing into an existing data
    /// directory adds new versions and makes them current; older versions stay for rollback.
    Demo(DemoArgs),
    /// Which grid is this point in, and who is responsible? Prints the answer of
    /// `GET /v1/locate` as JSON (an error as `{"error": …}`, with exit status 2).
    ///
    /// Example: citygrid locate 120.6312 31.2702 --crs gcj02 --accuracy 15
    #[command(verbatim_doc_comment)]
    Locate(LocateArgs),
    /// Route a case: the one responsible unit, its deadline and why. Prints the answer of
    /// `POST /v1/cases/route` as JSON (an error as `{"error": …}`, with exit status 2).
    ///
    /// Examples: citygrid route 120.6312 31.2702 --type 0102 --urgency 紧急
    ///           citygrid route 120.6312 31.2702 --class 0101 --crs gcj02
    ///           citygrid route --component 3205060101000001
    ///           citygrid route --file cases.csv > answers.ndjson
    ///
    /// With --file (CSV with a header of the fields of POST /v1/cases/route and an optional
    /// id column, or a JSON array): one JSON line per case, as POST /v1/cases/route:batch
    /// answers, and a summary on stderr. The CLI does not write the server's audit log.
    #[command(verbatim_doc_comment)]
    Route(RouteArgs),
    /// Create a new, empty city in a data directory: its settings, no layers yet. Then import
    /// its datasets (in any order, or all at once as a city package) and serve it.
    ///
    /// Example: citygrid init --data /srv/citygrid --name 苏州市吴中区 --code 320506 --crs EPSG:4549
    #[command(verbatim_doc_comment)]
    Init(InitArgs),
    /// Import a dataset, or a whole city package, into the data directory: read, reproject to
    /// WGS84, validate against the city, store as the next version and make it current. Prints
    /// the report; exit status 0 when imported, 2 when rejected (nothing changed).
    ///
    /// Datasets: grids, components, zones (survey layers), units (CSV), rules (CSV), calendar
    /// (TOML), city (the settings, TOML), staff (the staff register, CSV). A city package is a folder or ZIP with any of
    /// city.toml, grids.*, components.*, zones.*, units.csv, rules.csv, calendar.toml: all of
    /// them become current in one switch, or none.
    ///
    /// Layer formats (by extension, else sniffed): GeoJSON (.geojson/.json), newline-delimited
    /// GeoJSON (.geojsonl/.ndjson), CSV of points (.csv), FlatGeobuf (.fgb), zipped Shapefile
    /// (.zip), or a bare .shp with its .dbf (.prj, .cpg) beside it, GeoPackage (.gpkg, one
    /// feature table).
    ///
    /// Examples: citygrid import ./city-package --data /srv/citygrid
    ///           citygrid import components survey.csv --crs EPSG:4549
    ///           citygrid import grids grids_2026.geojson --strict --dry-run
    ///           citygrid import calendar calendar-2027.toml
    #[command(verbatim_doc_comment)]
    Import(ImportArgs),
    /// Validate a layer file against the city without storing anything; prints the report
    /// (readable text, or JSON with --json). Exit status 0 if it would be imported, else 2.
    Validate(ValidateArgs),
    /// Measure the city's vector tiles against a size budget: at every zoom, the densest tiles
    /// (by components) and an even spread of the others are encoded as the server would
    /// (the [tiles] settings of --config apply). Prints a table per zoom (or JSON with
    /// --json); exit status 0 if every tile measured is within --max-kb, 2 if one is over.
    ///
    /// Examples: citygrid tile-sizes --data /srv/citygrid
    ///           citygrid tile-sizes --layers components --datum gcj02 --max-kb 300 --json
    #[command(verbatim_doc_comment)]
    TileSizes(TileSizesArgs),
    /// Move a city between a data directory and a PostgreSQL store, every version kept.
    ///
    /// Examples: citygrid store copy --from /srv/citygrid --to postgres://citygrid@db/citygrid
    ///           citygrid store copy --from postgres://citygrid@db/citygrid --to /srv/citygrid-copy
    #[command(verbatim_doc_comment, subcommand)]
    Store(StoreCommand),
    /// Replay a day of patrols of the demo staff against a running server
    /// (POST /v1/staff/positions), at a fixed rate, each position stamped with the time it is
    /// sent. Prints progress on stderr and a JSON summary on stdout.
    ///
    /// Example: CITYGRID_POSITIONS_TOKEN=… citygrid simulate-staff --url http://127.0.0.1:8080 --rate 200
    #[command(verbatim_doc_comment)]
    SimulateStaff(SimulateStaffArgs),
}

#[derive(Args)]
struct SimulateStaffArgs {
    /// The server, http://host:port (with its base path, if any).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Positions per second.
    #[arg(long, default_value_t = 100)]
    rate: u32,
    /// Positions per request.
    #[arg(long, default_value_t = 200)]
    batch: usize,
    /// Parallel connections.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Stop after this many seconds (default: when the day is replayed).
    #[arg(long)]
    duration: Option<f64>,
    /// Start the day over when it ends (until --duration).
    #[arg(long)]
    repeat: bool,
    /// The data directory of the demo city whose staff walk (its staff register and grids).
    #[arg(long, default_value = DEFAULT_DATA_DIR, conflicts_with = "patrols")]
    data: PathBuf,
    /// Replay this NDJSON file of positions (`citygrid demo --patrols`) instead.
    #[arg(long)]
    patrols: Option<PathBuf>,
    /// Seconds between two positions of one person in the generated day.
    #[arg(long, default_value_t = 10)]
    step: u32,
    /// Nearest-staff queries per second at the same time (needs CITYGRID_STAFF_TOKEN).
    #[arg(long, default_value_t = 0)]
    queries: u32,
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Copy every version of every dataset, the manifest, the city settings, the local class
    /// files and the audit log (ids kept) from a data directory into an empty PostgreSQL
    /// store, or from a store into an empty data directory.
    Copy {
        /// A data directory, or postgres://…
        #[arg(long)]
        from: String,
        /// A data directory, or postgres://…
        #[arg(long)]
        to: String,
    },
}

fn is_postgres(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

fn store_command(command: StoreCommand) -> Result<()> {
    use citygrid::store::pg::{PgStore, copy_dir_to_store, copy_store_to_dir};
    let StoreCommand::Copy { from, to } = command;
    match (is_postgres(&from), is_postgres(&to)) {
        (false, true) => {
            let store = PgStore::connect(&to)?;
            let copied = copy_dir_to_store(Path::new(&from), &store)?;
            println!("copied {from} into {} (generation {}, {} audit decisions)", store.shown(), copied.generation, copied.decisions);
        }
        (true, false) => {
            let store = PgStore::connect(&from)?;
            let copied = copy_store_to_dir(&store, Path::new(&to))?;
            println!("copied {} (generation {}, {} audit decisions) into {to}", store.shown(), copied.generation, copied.decisions);
        }
        _ => bail!("copy from a data directory to postgres://…, or from postgres://… to a data directory"),
    }
    Ok(())
}

/// How to read a layer file.
#[derive(Args)]
struct ReadArgs {
    /// The layer's CRS: EPSG:4549, a PROJ string, a WKT .prj text, wgs84, cgcs2000, gcj02,
    /// bd09. Needed when the file declares none and its coordinates are not degrees; must agree
    /// with the file's own declaration unless --force-crs.
    #[arg(long)]
    crs: Option<String>,
    /// Let --crs win over the CRS the file declares (when that declaration is wrong).
    #[arg(long, requires = "crs")]
    force_crs: bool,
    /// CSV: the easting/longitude column (whatever the CRS's axis order).
    #[arg(long, requires = "y_column")]
    x_column: Option<String>,
    /// CSV: the northing/latitude column. (Columns named X/Y in a Gauss-Krüger CRS are read
    /// as X = northing without these options.)
    #[arg(long, requires = "x_column")]
    y_column: Option<String>,
    /// Any error rejects the whole file (default: features with errors are dropped).
    #[arg(long)]
    strict: bool,
    /// Accept a layer with fewer than half the current one's features (else refused as a
    /// probably partial file).
    #[arg(long)]
    allow_shrink: bool,
    /// Grids: import a layer the default refuses for dropping grids with errors or for its
    /// topology findings (holes in a district, overlaps, gaps, parts outside the parent); the
    /// findings stay warnings in the report.
    #[arg(long)]
    accept_findings: bool,
    /// Data directory. [env: CITYGRID_DATA] [default: ./citygrid-data]
    #[arg(long, env = "CITYGRID_DATA", hide_env = true)]
    data: Option<PathBuf>,
}

#[derive(Args)]
struct InitArgs {
    /// Data directory to create the city in (must hold no city yet).
    #[arg(long, env = "CITYGRID_DATA", hide_env = true, default_value = DEFAULT_DATA_DIR)]
    data: PathBuf,
    /// The city's name, e.g. 苏州市吴中区.
    #[arg(long)]
    name: String,
    /// The 6-digit county code (GB/T 2260) of its top-level grid, e.g. 320506.
    #[arg(long)]
    code: Option<String>,
    /// The CRS its survey layers come in when a file declares none, e.g. EPSG:4549.
    #[arg(long)]
    crs: Option<String>,
    /// The map's centre as LON,LAT (default: the centre of the grids).
    #[arg(long, value_parser = parse_center)]
    center: Option<[f64; 2]>,
    /// Grid levels, top first: cjt213 (区 6 › 街道 9 › 社区 12 › 网格 14 digits, the default),
    /// db11 (Beijing: … › 网格 15), or NAME:DIGITS,… with cumulative code lengths, e.g.
    /// 区:6,街道:9,社区:12,单元:14,网格:16.
    #[arg(long, default_value = "cjt213")]
    levels: String,
}

fn parse_center(s: &str) -> Result<[f64; 2], String> {
    let parts: Vec<f64> = s.split(',').map(|p| p.trim().parse::<f64>()).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    match parts.as_slice() {
        [lon, lat] => Ok([*lon, *lat]),
        _ => Err("the centre is LON,LAT, e.g. 120.63,31.26".into()),
    }
}

/// The hierarchy named by `--levels`.
fn parse_levels(s: &str) -> Result<citygrid::model::Hierarchy> {
    use citygrid::model::{Hierarchy, LevelDef};
    let english = ["district", "street", "community", "grid", "unit", "cell", "block", "building"];
    let h = match s.trim().to_lowercase().as_str() {
        "cjt213" | "cj/t 213" => Hierarchy::cjt213(),
        "db11" | "beijing" => Hierarchy::beijing_db11(),
        _ => {
            let mut levels = Vec::new();
            for (i, part) in s.split(',').enumerate() {
                let (name, digits) = part.split_once(':').with_context(|| format!("level {part:?}: write NAME:DIGITS, e.g. 街道:9"))?;
                let digits: usize = digits.trim().parse().with_context(|| format!("level {part:?}: DIGITS is a number"))?;
                let name_en = english.get(i).copied().unwrap_or("level").to_owned();
                levels.push(LevelDef { name: name.trim().to_owned(), name_en, code_digits: digits });
            }
            Hierarchy { scheme: "custom".into(), levels, ..Hierarchy::default() }
        }
    };
    h.validate().map_err(|e| anyhow::anyhow!("--levels: {e}"))?;
    Ok(h)
}

fn init(args: InitArgs) -> Result<()> {
    let hierarchy = parse_levels(&args.levels)?;
    let meta = CityMeta { code: args.code, crs: args.crs, center: args.center, ..CityMeta::new(&args.name, hierarchy) };
    meta.check().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut store = Store::open_writer(&args.data, "citygrid init")?;
    let versions = store.init(&meta, "citygrid init")?;
    println!("created the city {:?} in {} (settings version {}); import its datasets next:", meta.name, args.data.display(), versions.get("city").unwrap_or(1));
    println!(
        "  citygrid import PACKAGE --data {}                  # a folder or ZIP: city.toml, grids.*, components.*, zones.*, units.csv, rules.csv, calendar.toml",
        args.data.display()
    );
    println!("  citygrid import grids grids.zip --data {}          # or one dataset at a time", args.data.display());
    Ok(())
}

#[derive(Args)]
struct ImportArgs {
    /// The dataset (grids, components, zones, units, rules, calendar, city, staff) — or, with no FILE,
    /// a city package (a folder or a ZIP).
    what: String,
    /// The dataset's file.
    file: Option<PathBuf>,
    #[command(flatten)]
    read: ReadArgs,
    /// Validate and report only; store nothing.
    #[arg(long)]
    dry_run: bool,
    /// The server's TOML configuration: its `[retention]` section decides which old versions
    /// this import lets go (default: keep the newest 10 and any younger than 30 days).
    /// [env: CITYGRID_CONFIG]
    #[arg(long, env = "CITYGRID_CONFIG", hide_env = true)]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct TileSizesArgs {
    /// Data directory. [env: CITYGRID_DATA] [default: ./citygrid-data]
    #[arg(long, env = "CITYGRID_DATA", hide_env = true)]
    data: Option<PathBuf>,
    /// The server's configuration file, for its [tiles] zoom settings.
    #[arg(long, env = "CITYGRID_CONFIG", hide_env = true)]
    config: Option<PathBuf>,
    /// The layers of each tile, comma-joined as in a tile URL.
    #[arg(long, default_value = "grids,zones,components")]
    layers: String,
    /// The datums to encode each tile in: wgs84, gcj02, bd09, or both (wgs84 and gcj02).
    #[arg(long, default_value = "both")]
    datum: String,
    /// The budget: the largest uncompressed tile allowed, in KB (1,024 bytes).
    #[arg(long, default_value_t = 500)]
    max_kb: usize,
    /// Print the measurements as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ValidateArgs {
    /// The layer file.
    file: PathBuf,
    /// grids or components (default: from the first geometry: polygons are grids, points components).
    #[arg(long)]
    layer: Option<String>,
    #[command(flatten)]
    read: ReadArgs,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct RouteArgs {
    /// Longitude in degrees, or easting in metres with a projected --crs (not needed with --component).
    #[arg(allow_hyphen_values = true)]
    lon: Option<f64>,
    /// Latitude in degrees, or northing in metres with a projected --crs.
    #[arg(allow_hyphen_values = true)]
    lat: Option<f64>,
    /// Event type (事件小类), e.g. 0102 暴露垃圾.
    #[arg(long = "type", group = "subject")]
    event_type: Option<String>,
    /// Component class (部件小类), e.g. 0101: snaps to the nearest such component.
    #[arg(long = "class", group = "subject")]
    component_class: Option<String>,
    /// Component code (16 digits).
    #[arg(long = "component", group = "subject")]
    component_code: Option<String>,
    /// 一般, 紧急, 非常紧急 (or normal, urgent, very_urgent); default: the type's lowest level.
    #[arg(long)]
    urgency: Option<String>,
    /// Report time, RFC 3339 (default: now), e.g. 2026-11-23T10:00:00+08:00.
    #[arg(long)]
    at: Option<String>,
    /// CRS of the point: a datum of LON LAT — wgs84, cgcs2000, gcj02 (AMap/Tencent), bd09
    /// (Baidu) — or a projected EPSG code, and then the two numbers are X Y (easting,
    /// northing in metres), e.g. --crs EPSG:4549.
    #[arg(long, default_value = "wgs84")]
    crs: String,
    /// GPS accuracy radius in metres: also list every grid within it, with its unit.
    #[arg(long, default_value_t = 0.0)]
    accuracy: f64,
    /// Route every case of this CSV (or JSON array) file instead of one.
    #[arg(long, conflicts_with_all = ["lon", "lat", "event_type", "component_class", "component_code", "urgency", "at"])]
    file: Option<PathBuf>,
    /// Data directory. [env: CITYGRID_DATA] [default: ./citygrid-data]
    #[arg(long, env = "CITYGRID_DATA", hide_env = true)]
    data: Option<PathBuf>,
}

#[derive(Args)]
struct LocateArgs {
    /// Longitude in degrees, or easting in metres with a projected --crs.
    #[arg(allow_hyphen_values = true)]
    lon: f64,
    /// Latitude in degrees, or northing in metres with a projected --crs.
    #[arg(allow_hyphen_values = true)]
    lat: f64,
    /// CRS of the point: a datum of LON LAT — wgs84, cgcs2000, gcj02 (AMap/Tencent), bd09
    /// (Baidu) — or a projected EPSG code, and then the two numbers are X Y (easting,
    /// northing in metres), e.g. --crs EPSG:4549.
    #[arg(long, default_value = "wgs84")]
    crs: String,
    /// GPS accuracy radius in metres: also list every grid within it.
    #[arg(long, default_value_t = 0.0)]
    accuracy: f64,
    /// Data directory. [env: CITYGRID_DATA] [default: ./citygrid-data]
    #[arg(long, env = "CITYGRID_DATA", hide_env = true)]
    data: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    /// Data directory (layers, manifest). [env: CITYGRID_DATA] [default: ./citygrid-data]
    #[arg(long, env = "CITYGRID_DATA", hide_env = true)]
    data: Option<PathBuf>,
    /// A PostgreSQL/PostGIS store shared by several replicas instead of the data directory:
    /// postgres://user@host:port/database (docs/deployment.md). [env: CITYGRID_STORE]
    #[arg(long, env = "CITYGRID_STORE", hide_env = true)]
    store: Option<String>,
    /// Address to listen on; use 0.0.0.0:8080 to serve the LAN. Port 0 picks a free port.
    /// [env: CITYGRID_BIND] [default: 127.0.0.1:8080]
    #[arg(long, env = "CITYGRID_BIND", hide_env = true)]
    bind: Option<String>,
    /// TOML configuration file (keys: bind, data, and a [tiles] section with zoom rules; see
    /// the README); flags and environment override it. [env: CITYGRID_CONFIG]
    #[arg(long, env = "CITYGRID_CONFIG", hide_env = true)]
    config: Option<PathBuf>,
    /// Memory for cached tiles, MiB of compressed tiles. [env: CITYGRID_TILE_CACHE_MB]
    /// [default: 256]
    #[arg(long, env = "CITYGRID_TILE_CACHE_MB", hide_env = true)]
    tile_cache_mb: Option<u64>,
    /// If the data directory is empty or missing, generate the demo city there first.
    #[arg(long)]
    demo: bool,
    /// Which demo city `--demo` generates.
    #[arg(long, value_enum, default_value = "wuzhong", requires = "demo")]
    demo_preset: Preset,
    /// For developing the viewer: serve the files of /viewer/ found in this directory (e.g.
    /// web-viewer/) instead of the copies compiled into the binary. [env: CITYGRID_VIEWER_DIR]
    #[arg(long, env = "CITYGRID_VIEWER_DIR", hide_env = true)]
    viewer_dir: Option<PathBuf>,
    /// TrueType/OpenType fonts (.ttf .otf .ttc .otc, searched recursively) the style's label
    /// glyphs are rendered from, besides the built-in Latin font; e.g.
    /// /usr/share/fonts/opentype/noto for Noto Sans CJK SC. [env: CITYGRID_FONTS_DIR]
    /// [default: the config file's `fonts`, else <data>/fonts]
    #[arg(long = "fonts", visible_alias = "fonts-dir", value_name = "DIR", env = "CITYGRID_FONTS_DIR", hide_env = true)]
    fonts_dir: Option<PathBuf>,
    /// A basemap to serve under the grids: an MBTiles or PMTiles file of raster imagery (PNG,
    /// JPEG, WebP) or of vector tiles in the OpenMapTiles schema (planetiler, tilemaker).
    /// Repeatable; its id is the file name without the extension. [env: CITYGRID_BASEMAPS,
    /// comma-separated] [default: the config file's `basemaps`]
    #[arg(long = "basemap", value_name = "FILE", env = "CITYGRID_BASEMAPS", hide_env = true, value_delimiter = ',')]
    basemaps: Vec<PathBuf>,
    /// Answer under this path prefix, e.g. /citygrid behind a reverse proxy that forwards it
    /// unchanged: /citygrid/health, /citygrid/viewer/, and every URL the server writes carries
    /// it. [env: CITYGRID_BASE_PATH] [default: none, the root]
    #[arg(long, env = "CITYGRID_BASE_PATH", hide_env = true)]
    base_path: Option<String>,
    /// Answer GET /metrics (Prometheus): true or false (404). [env: CITYGRID_METRICS]
    /// [default: the config file's `metrics`, else true]
    #[arg(long, env = "CITYGRID_METRICS", hide_env = true)]
    metrics: Option<bool>,
    /// Log lines as human text or as one JSON object per line (for log shippers).
    /// [env: CITYGRID_LOG_FORMAT] [default: the config file's `log_format`, else text]
    #[arg(long, env = "CITYGRID_LOG_FORMAT", hide_env = true, value_parser = ["text", "json"], ignore_case = true)]
    log_format: Option<String>,
}

#[derive(Args)]
struct DemoArgs {
    /// Data directory to import the demo city into (created if missing).
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    out: PathBuf,
    /// Write the demo city as a city package into this folder instead (city.toml, grids.fgb,
    /// components.fgb, zones.fgb, units.csv, rules.csv), for `citygrid import FOLDER`.
    #[arg(long, conflicts_with = "out")]
    package: Option<PathBuf>,
    /// tiny: ~30 grids, 2,000 components (tests); wuzhong: 945 unit grids, ~231,000 components
    /// (Suzhou Wuzhong pilot); xicheng: 1,623 unit grids, ~610,000 components (Beijing Xicheng).
    #[arg(long, value_enum, default_value = "wuzhong")]
    preset: Preset,
    /// Number of components instead of the preset's (up to 10,000,000, for benchmarks).
    #[arg(long)]
    components: Option<usize>,
    /// Random seed; the same seed gives the same city.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also write a day of patrols of the demo staff (NDJSON, one position a line, for
    /// `citygrid simulate-staff --patrols`) into this file.
    #[arg(long)]
    patrols: Option<PathBuf>,
    /// Seconds between two positions of one person in --patrols.
    #[arg(long, default_value_t = 10)]
    patrol_step: u32,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // A CLI whose output is cut short (`citygrid import … | head`) ends quietly, as other Unix
    // tools do, instead of panicking on the broken pipe. The server keeps ignoring SIGPIPE: a
    // client that hangs up is no reason to exit.
    #[cfg(unix)]
    if !matches!(cli.command, Command::Serve(_)) {
        // SAFETY: restoring the default disposition of one signal before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let log_format = match &cli.command {
        Command::Serve(args) => serve_log_format(args),
        _ => LogFormat::Text,
    };
    init_logging(log_format);
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Locate(args) => locate(args),
        Command::Route(args) => route(args),
        Command::Import(args) => import(args),
        Command::Init(args) => init(args),
        Command::Validate(args) => validate(args),
        Command::TileSizes(args) => tile_sizes(args),
        Command::Store(command) => store_command(command),
        Command::SimulateStaff(args) => simulate_staff(args),
        Command::Demo(args) => {
            let spec = DemoSpec { preset: args.preset, components: args.components, seed: args.seed };
            match &args.package {
                Some(dir) => write_demo_package(dir, &spec)?,
                None => generate_demo(&args.out, &spec)?,
            }
            if let Some(file) = &args.patrols {
                write_patrols(file, &spec, args.patrol_step)?;
            }
            Ok(())
        }
    }
}

/// Log lines to stderr at `info` (or as `RUST_LOG` says), as text or JSON objects.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logger = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logger.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
        // Fields at the top level beside timestamp, level and target; no span lists.
        LogFormat::Json => logger.json().flatten_event(true).with_current_span(false).with_span_list(false).init(),
    }
}

/// The log format of `serve`: the flag (or `CITYGRID_LOG_FORMAT`), else the config file's
/// `log_format` (a file that cannot be read is reported by `serve` itself), else text.
fn serve_log_format(args: &ServeArgs) -> LogFormat {
    let flag = args.log_format.as_deref().and_then(|f| f.parse().ok());
    flag.or_else(|| args.config.as_deref().and_then(|p| FileConfig::load(p).ok()).and_then(|f| f.log_format)).unwrap_or_default()
}

fn progress_bar(message: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(0).with_message(message);
    bar.set_style(ProgressStyle::with_template("{msg:>12} [{bar:40}] {human_pos}/{human_len} ({eta})").expect("valid template").progress_chars("=> "));
    bar
}

/// Calls `bar` with (done, total) from a domain progress callback.
fn ticker(bar: &ProgressBar) -> impl Fn(u64, u64) + '_ {
    move |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    }
}

/// Generates the demo city as a city package and imports it into the data directory `out`,
/// exactly as a real city's package is imported (the demo is only a generator of packages).
fn generate_demo(out: &Path, spec: &DemoSpec) -> Result<()> {
    let started = Instant::now();
    let source = format!("citygrid demo --preset {:?} --seed {}", spec.preset, spec.seed).to_lowercase();
    let mut store = Store::open_writer(out, &source).with_context(|| format!("opening data directory {}", out.display()))?;
    let scratch = tempfile::Builder::new().prefix(".demo-package-").tempdir_in(out)?;
    write_demo_package(scratch.path(), spec)?;
    let package = citygrid::datasets::Package::open(scratch.path(), out)?;
    let bar = progress_bar("importing");
    let imported = citygrid::datasets::import_package_offline(&mut store, &package, &Default::default(), false, &source, &ticker(&bar));
    bar.finish_and_clear();
    let imported = match imported {
        Ok(i) => i,
        Err(citygrid::datasets::DatasetError::PackageRejected(report)) => bail!("the demo package was refused:\n{}", report.to_text()),
        Err(e) => return Err(e.into()),
    };
    info!(
        dir = %out.display(),
        versions = ?imported.versions,
        seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
        "demo city written"
    );
    Ok(())
}

/// Writes a day (today, China time) of patrols of the demo staff of `spec` as NDJSON.
fn write_patrols(file: &Path, spec: &DemoSpec, step: u32) -> Result<()> {
    use std::io::Write;
    let demo = citygrid::demo::generate(spec, &|_, _| {}).context("generating the demo city")?;
    let register = citygrid::staff::simulate::demo_register(&demo.city, spec.seed);
    let day = chrono::Utc::now().with_timezone(&citygrid::routing::china_tz()).date_naive();
    let mut out = std::io::BufWriter::new(std::fs::File::create(file).with_context(|| format!("creating {}", file.display()))?);
    let mut n = 0u64;
    for item in citygrid::staff::simulate::patrols(&demo.city, &register, day, step, spec.seed) {
        serde_json::to_writer(&mut out, &citygrid::staff::input::item_json(&item.id, &item.fix))?;
        out.write_all(b"\n")?;
        n += 1;
    }
    out.flush()?;
    info!(file = %file.display(), positions = n, people = register.len(), %day, "patrols written");
    Ok(())
}

/// `citygrid simulate-staff`.
fn simulate_staff(args: SimulateStaffArgs) -> Result<()> {
    use citygrid::staff::Item;
    type Day = Box<dyn Fn() -> Box<dyn Iterator<Item = Item> + Send> + Send + Sync>;
    let day: Day = match &args.patrols {
        Some(file) => {
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
            let now = chrono::Utc::now();
            let items: Vec<Item> = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .enumerate()
                .map(|(i, line)| {
                    let v: serde_json::Value = serde_json::from_str(line).with_context(|| format!("line {}", i + 1))?;
                    citygrid::staff::input::parse_item(&v, None, now).map_err(|(_, e)| anyhow::anyhow!("line {}: {}", i + 1, e.message))
                })
                .collect::<Result<_>>()?;
            let items = std::sync::Arc::new(items);
            Box::new(move || Box::new((*items).clone().into_iter()))
        }
        None => {
            let store = open_city_store(&args.data)?;
            let loaded = store.load_city(&|_, _| {})?;
            let (info, mut file) = store_staff_file(&args.data)?;
            let mut text = String::new();
            std::io::Read::read_to_string(&mut file, &mut text)?;
            let register = citygrid::staff::StaffRegister::from_csv(&text).map_err(|e| anyhow::anyhow!("the staff register (version {info}): {e}"))?;
            let city = std::sync::Arc::new(loaded.city);
            let register = std::sync::Arc::new(register);
            let day = chrono::Utc::now().with_timezone(&citygrid::routing::china_tz()).date_naive();
            let step = args.step;
            Box::new(move || Box::new(citygrid::staff::simulate::patrols(&city, &register, day, step, 1)))
        }
    };
    let options = citygrid::http::staff_client::SimulateOptions {
        url: args.url.trim_end_matches('/').to_owned(),
        rate: args.rate,
        batch: args.batch,
        connections: args.connections,
        duration: args.duration.map(std::time::Duration::from_secs_f64),
        token: std::env::var("CITYGRID_POSITIONS_TOKEN").ok().or_else(|| std::env::var("CITYGRID_ADMIN_TOKEN").ok()),
        queries: args.queries,
        staff_token: std::env::var("CITYGRID_STAFF_TOKEN").ok().or_else(|| std::env::var("CITYGRID_ADMIN_TOKEN").ok()),
        repeat: args.repeat,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let report = runtime.block_on(citygrid::http::staff_client::simulate(options, day)).map_err(|e| anyhow::anyhow!(e))?;
    info!(accepted = report.accepted, rejected = report.rejected, events = report.events, per_s = format!("{:.0}", report.positions_per_s), "replayed");
    println!("{}", serde_json::to_string(&report)?);
    if report.failed_requests > 0 && report.accepted == 0 {
        bail!("no batch was accepted ({} requests failed)", report.failed_requests);
    }
    Ok(())
}

/// The current staff register file of a data directory.
fn store_staff_file(data: &Path) -> Result<(u64, std::fs::File)> {
    let store = open_city_store(data)?;
    let dataset = store
        .dataset("staff")
        .ok_or_else(|| anyhow::anyhow!("{} has no staff register: run `citygrid demo` again, or `citygrid import staff staff.csv`", data.display()))?;
    let current = dataset.current;
    let info = dataset.versions.iter().find(|v| v.version == current).ok_or_else(|| anyhow::anyhow!("the staff register has no current version"))?;
    let path = data.join(&info.file);
    Ok((current, std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?))
}

/// The demo city's own street map (`DATA/basemaps/demo-streets.mbtiles`), written on first
/// use, when the city served is the demo city of `preset` (seed 1, as `serve --demo` makes
/// it); `None` for any other city.
fn demo_street_map(data: &Path, preset: Preset, city_name: &str) -> Result<Option<PathBuf>> {
    let spec = DemoSpec { preset, components: None, seed: 1 };
    if city_name != citygrid::demo::streetmap::demo_label(preset) {
        return Ok(None);
    }
    let path = data.join("basemaps").join("demo-streets.mbtiles");
    if !path.exists() {
        let started = Instant::now();
        let stats = citygrid::demo::streetmap::write_street_map(&spec, &path)?;
        info!(
            file = %path.display(),
            tiles = stats.tiles,
            kib = stats.bytes / 1024,
            seconds = format!("{:.2}", started.elapsed().as_secs_f64()),
            "demo street map written"
        );
    }
    Ok(Some(path))
}

/// Writes the demo city `spec` as a city package in `dir`.
fn write_demo_package(dir: &Path, spec: &DemoSpec) -> Result<()> {
    let bar = progress_bar("generating");
    let demo = citygrid::demo::generate(spec, &ticker(&bar)).context("generating the demo city")?;
    bar.finish_and_clear();
    citygrid::datasets::write_package(dir, &demo.meta(), &demo.city, Some(&demo.rules_csv), None, &|_, _| {})?;
    // The demo's field staff: their register is a dataset of the package (staff.csv).
    let staff = citygrid::staff::simulate::demo_register(&demo.city, spec.seed);
    std::fs::write(dir.join("staff.csv"), staff.to_csv()).with_context(|| format!("writing {}", dir.join("staff.csv").display()))?;
    let counts = demo.city.level_counts();
    info!(dir = %dir.display(), grids_per_level = ?counts, components = demo.city.components.len(), "demo city package {} written", demo.name);
    Ok(())
}

fn serve(args: ServeArgs) -> Result<()> {
    let file = args.config.as_deref().map(FileConfig::load).transpose()?;
    // With a PostgreSQL store, a data directory given (flag, environment or file) is the
    // replica's lasting working copy; none given, a private temporary one.
    let data_given = args.data.is_some() || file.as_ref().is_some_and(|f| f.data.is_some());
    let flags = Overrides {
        bind: args.bind,
        data: args.data,
        store: args.store,
        tile_cache_mb: args.tile_cache_mb,
        admin_token: std::env::var("CITYGRID_ADMIN_TOKEN").ok(),
        dispatcher_token: std::env::var("CITYGRID_DISPATCHER_TOKEN").ok(),
        staff_token: std::env::var("CITYGRID_STAFF_TOKEN").ok(),
        positions_token: std::env::var("CITYGRID_POSITIONS_TOKEN").ok(),
        base_path: args.base_path,
        metrics: args.metrics,
        log_format: args.log_format.as_deref().and_then(|f| f.parse().ok()),
        basemaps: Some(args.basemaps.clone()),
    };
    let config = ServerConfig::resolve(flags, file)?;
    let holder = format!("citygrid serve --bind {}", config.bind);
    // With a PostgreSQL store, this replica's own copy of it lives in a private directory.
    let shared = match &config.store {
        Some(url) => Some(std::sync::Arc::new(citygrid::store::pg::PgStore::connect(url).context("opening the PostgreSQL store")?)),
        None => None,
    };
    let replica_dir = match &shared {
        Some(_) if !data_given => Some(tempfile::Builder::new().prefix("citygrid-replica-").tempdir().context("creating the replica's local copy")?),
        _ => None,
    };
    let data_dir = replica_dir.as_ref().map_or_else(|| config.data.clone(), |d| d.path().to_owned());
    let started = Instant::now();
    // The writer lock first: one process per directory, a replica's working copy included.
    let mut store =
        Store::open_writer(&data_dir, &holder).with_context(|| format!("opening data directory {}", data_dir.display()))?.with_retention(config.retention);
    let mut generation = 0;
    if let Some(pg) = &shared {
        pg.adopt(&data_dir, store.is_empty()).context("the replica's working copy")?;
        generation = pg.pull(&data_dir).context("reading the PostgreSQL store")?;
        store.resync()?;
        info!(dir = %data_dir.display(), generation, "working copy of the PostgreSQL store");
    }
    let store = if store.is_empty() && args.demo {
        drop(store);
        let demo = DemoSpec { preset: args.demo_preset, components: None, seed: 1 };
        match &shared {
            None => {
                info!(dir = %config.data.display(), preset = ?args.demo_preset, "empty data directory: generating the demo city");
                generate_demo(&data_dir, &demo)?;
            }
            Some(pg) => {
                // The first replica to find the store empty fills it; the others wait for its lock.
                let mut write = pg.begin_write()?;
                write.pull(&data_dir)?;
                if write.is_empty() {
                    info!(store = %pg.shown(), preset = ?args.demo_preset, "empty PostgreSQL store: generating the demo city");
                    generate_demo(&data_dir, &demo)?;
                    let store = Store::open(&data_dir)?;
                    let loaded = store.load_city(&|_, _| {})?;
                    generation = write.commit(&data_dir, store.manifest(), &loaded.city)?;
                } else {
                    generation = write.generation();
                }
            }
        }
        Store::open_writer(&data_dir, &holder)?.with_retention(config.retention)
    } else {
        store
    };

    let bar = progress_bar("loading");
    let loaded = if store.is_empty() {
        info!(dir = %config.data.display(), "the data directory holds no city yet: serving an empty one; create it with `citygrid init` or import a city package (PUT /v1/layers/…)");
        citygrid::datasets::empty_city(None)
    } else {
        store.load_city(&ticker(&bar)).with_context(|| format!("loading {}", data_dir.display()))?
    };
    bar.finish_and_clear();
    let mut world = World::with_tiles(loaded, config.tiles.clone());
    world.store_generation = generation;
    info!(
        city = %world.meta.name,
        grids = world.city.grids.len(),
        components = world.city.components.len(),
        seconds = format!("{:.2}", started.elapsed().as_secs_f64()),
        "loaded"
    );
    if config.admin_tokens.is_empty() {
        info!("no admin token configured: writes (rules, layers) are refused; set CITYGRID_ADMIN_TOKEN to allow them");
    }
    if config.dispatcher_tokens.is_empty() {
        tracing::warn!(
            "no dispatcher token configured: anyone who reaches this server may route cases (each is written to the audit log) and read the case log; set dispatcher_tokens or CITYGRID_DISPATCHER_TOKEN"
        );
    }
    let audit = match &shared {
        Some(pg) => {
            // Which replica decided: host and process.
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "localhost".into());
            let replica = format!("{host} pid {}", std::process::id());
            citygrid::store::audit::AuditLog::shared(citygrid::store::pg_audit::PgAudit::open(pg.clone(), &replica)?)
        }
        None => citygrid::store::audit::AuditLog::open(&data_dir).with_context(|| format!("opening the audit log in {}", data_dir.display()))?,
    };
    audit.start_retention(config.audit_retention_days);
    let handle = WorldHandle::new(world);
    let mut datasets = citygrid::datasets::Datasets::new(store, handle.clone(), config.tiles.clone());
    if let Some(pg) = &shared {
        info!(store = %pg.shown(), generation, "serving the PostgreSQL store's generation; following its switches");
        datasets = datasets.with_shared(pg.clone(), generation);
    }
    // Closed days of tracks go to the data directory (a replica's is a private temporary copy).
    let staff_config = citygrid::staff::StaffConfig { track_dir: Some(data_dir.join("staff").join("tracks")), ..config.staff.clone() };
    let staff = std::sync::Arc::new(citygrid::staff::StaffHub::new(staff_config, handle.load().center()));
    let staff_at_exit = staff.clone();
    let mut state = AppState::with_tile_cache(handle, config.tile_cache_bytes)
        .with_admin_tokens(config.admin_tokens.clone())
        .with_dispatcher_tokens(config.dispatcher_tokens.clone())
        .with_staff(staff)
        .with_staff_tokens(config.staff_tokens.clone())
        .with_positions_tokens(config.positions_tokens.clone())
        .with_audit(audit)
        .with_max_upload_mb(config.max_upload_mb)
        .with_cors(config.cors.clone())
        .with_metrics_endpoint(config.metrics)
        .with_datasets(datasets)
        .with_base_path(&config.base_path);
    if let Some(dir) = args.viewer_dir {
        state = state.with_viewer_dir(dir);
    }
    let configured = args.fonts_dir.or_else(|| config.fonts.clone());
    let fonts_dir = configured.clone().unwrap_or_else(|| config.data.join("fonts"));
    // The default directory may well not exist: then only the built-in font, quietly.
    let glyphs = if configured.is_none() && !fonts_dir.exists() {
        citygrid::glyphs::FontLibrary::builtin()
    } else {
        std::sync::Arc::new(citygrid::glyphs::FontLibrary::open(&fonts_dir))
    };
    for warning in glyphs.warnings() {
        warn!("fonts: {warning}");
    }
    info!(dir = %fonts_dir.display(), fonts = ?glyphs.names(), "label fonts");
    state = state.with_glyphs(glyphs);
    citygrid::http::staff::follow_register(&state, &state.world.load());
    info!(people = state.staff.register().len(), version = ?state.staff.register_version(), "staff register");
    let mut basemap_files = config.basemaps.clone();
    if args.demo {
        // The demo's street map is a nicety: a data directory it cannot be written to serves
        // the demo without it.
        match demo_street_map(&data_dir, args.demo_preset, &state.world.load().meta.name) {
            Ok(Some(street_map)) => basemap_files.insert(0, street_map),
            Ok(None) => {}
            Err(e) => warn!("the demo street map could not be written, serving without it: {e:#}"),
        }
    }
    let basemaps = citygrid::basemap::Basemaps::open(&basemap_files)?;
    for b in basemaps.iter() {
        info!(id = %b.id, file = %b.path.display(), kind = ?b.kind(), format = b.info.format.name(), zooms = format!("{}-{}", b.info.minzoom, b.info.maxzoom), "basemap");
    }
    state = state.with_basemaps(basemaps);
    if let (Some(pg), Some(datasets)) = (shared.clone(), state.datasets.clone()) {
        // Other replicas' switches: LISTEN/NOTIFY, a poll, and a catch-up after a reconnect.
        std::thread::Builder::new().name("store-follow".into()).spawn(move || {
            pg.follow(&|conn, notice| match notice {
                citygrid::store::pg::Notice::Switch => match datasets.follow(conn) {
                    Ok(true) => info!(generation = datasets.served_generation(), "switched to another replica's commit"),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot follow the PostgreSQL store; retrying"),
                },
                // Nothing is served from it: a failure only means the commit is built then.
                citygrid::store::pg::Notice::Staged => {
                    if let Err(e) = datasets.build_ahead(conn) {
                        tracing::warn!(error = %e, "cannot build the staged switch ahead; it is built at its commit");
                    }
                }
            })
        })?;
    }

    let mut limits = config.limits.clone();
    // Stay below the file limit: data files, logs and the listener need descriptors too.
    if let Some(ceiling) = citygrid::http::server::connection_ceiling(256)
        && ceiling < limits.max_connections
    {
        info!(configured = limits.max_connections, ceiling, "max_connections lowered below the open-file limit");
        limits.max_connections = ceiling;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.bind).await.with_context(|| format!("cannot listen on {}", config.bind))?;
        let addr = listener.local_addr()?;
        if !config.webhooks.urls.is_empty() {
            citygrid::http::staff_webhook::start(&state.staff, &config.webhooks).map_err(|e| anyhow::anyhow!(e))?;
            info!(urls = ?config.webhooks.urls, "staff events go to webhooks");
        }
        // Tests and scripts read this line to learn the port when binding to port 0.
        println!("citygrid listening on http://{addr}");
        info!(%addr, base = %config.base_path, "listening; GET {0}/health, the web viewer at {0}/viewer/", config.base_path);
        citygrid::http::server::serve(listener, router(state), limits, shutdown_signal()).await?;
        Ok::<(), anyhow::Error>(())
    })?;
    // Blocking tasks still running (a batch being routed for a client that is gone) get a
    // moment, not a veto over the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    if let Err(e) = staff_at_exit.flush_tracks() {
        warn!(error = %e, "today's tracks could not be written to the data directory");
    }
    info!("shut down");
    Ok(())
}

/// The data directory's store, which must hold a city.
fn open_city_store(data: &Path) -> Result<Store> {
    let store = Store::open(data).with_context(|| format!("opening data directory {}", data.display()))?;
    if store.is_empty() {
        bail!("{}", citygrid::store::StoreError::Empty(data.to_owned()));
    }
    Ok(store)
}

fn load_world(data: &Path) -> Result<World> {
    let store = open_city_store(data)?;
    let bar = progress_bar("loading");
    let loaded = store.load_city(&ticker(&bar)).with_context(|| format!("loading {}", data.display()))?;
    bar.finish_and_clear();
    Ok(World::new(loaded))
}

/// The two numbers of the command line as a point in `crs`: LON LAT, or X Y (easting,
/// northing) when `crs` is projected — read as every entry point reads a point.
fn cli_point(a: f64, b: f64, crs: &str) -> Result<citygrid::lookup::PointEcho, citygrid::lookup::LookupError> {
    use citygrid::lookup::{PointCrs, PointInput};
    let projected = matches!(PointCrs::parse(Some(crs))?, PointCrs::Projected(ref c) if !c.is_geographic());
    let input = if projected {
        PointInput { x: Some(a), y: Some(b), crs: Some(crs), ..PointInput::default() }
    } else {
        PointInput { lon: Some(a), lat: Some(b), crs: Some(crs), ..PointInput::default() }
    };
    input.require()
}

fn locate(args: LocateArgs) -> Result<()> {
    let data = args.data.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let world = load_world(&data)?;
    let answer = cli_point(args.lon, args.lat, &args.crs).and_then(|p| citygrid::lookup::locate(&world, p, args.accuracy));
    match answer {
        Ok(located) => {
            println!("{}", serde_json::to_string_pretty(&located)?);
            Ok(())
        }
        Err(e) => {
            println!("{}", serde_json::to_string_pretty(&citygrid::http::error::ApiError::from(e).body())?);
            std::process::exit(2);
        }
    }
}

fn route(args: RouteArgs) -> Result<()> {
    use citygrid::http::error::ApiError;
    use citygrid::routing::{CaseInput, CaseSubject, RoutingError, Urgency};
    let data = args.data.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    if let Some(file) = &args.file {
        return route_file(file, &data);
    }
    let fail = |e: ApiError| -> Result<()> {
        println!("{}", serde_json::to_string_pretty(&e.body())?);
        std::process::exit(2);
    };
    let invalid = |parameter: &'static str, value: &str, reason: &str| {
        ApiError::from(RoutingError::InvalidParameter { parameter, value: value.to_owned(), reason: reason.to_owned() })
    };
    let subject = match (args.event_type, args.component_class, args.component_code) {
        (Some(t), _, _) => CaseSubject::Event(t),
        (_, Some(c), _) => CaseSubject::ComponentClass(c),
        (_, _, Some(c)) => CaseSubject::Component(c),
        _ => return fail(ApiError::from(RoutingError::MissingParameter("--type, --class or --component"))),
    };
    let urgency = match args.urgency.as_deref().map(|u| (u, Urgency::parse(u))) {
        None => None,
        Some((_, Some(u))) => Some(u),
        Some((u, None)) => return fail(invalid("urgency", u, "urgency must be 一般, 紧急 or 非常紧急")),
    };
    let reported_at = match args.at.as_deref().map(|t| (t, chrono::DateTime::parse_from_rfc3339(t))) {
        None => None,
        Some((_, Ok(t))) => Some(t),
        Some((t, Err(_))) => return fail(invalid("reported_at", t, "--at must be RFC 3339, e.g. 2026-11-23T10:00:00+08:00")),
    };
    let point = match (args.lon, args.lat) {
        (Some(lon), Some(lat)) => match cli_point(lon, lat, &args.crs) {
            Ok(p) => Some(p),
            Err(e) => return fail(ApiError::from(e)),
        },
        _ => None,
    };
    let world = load_world(&data)?;
    let case = CaseInput { point, accuracy_m: args.accuracy, subject, urgency, reported_at };
    let now = chrono::Utc::now().with_timezone(&citygrid::routing::china_tz());
    match citygrid::routing::route(&world, &case, now) {
        Ok(answer) => {
            println!("{}", serde_json::to_string_pretty(&answer)?);
            Ok(())
        }
        Err(e) => fail(ApiError::from(e)),
    }
}

/// `citygrid tile-sizes`: the largest and median tile of every zoom against the budget.
fn tile_sizes(args: TileSizesArgs) -> Result<()> {
    use citygrid::crs::Datum;
    use citygrid::tiles::{Layer, budget};
    let mut layers = Vec::new();
    for name in args.layers.split(',') {
        let layer = Layer::from_name(name.trim()).with_context(|| format!("no tile layer {name:?}: the layers are grids, zones, components"))?;
        if !layers.contains(&layer) {
            layers.push(layer);
        }
    }
    layers.sort();
    let datums = match args.datum.to_ascii_lowercase().as_str() {
        "both" => vec![Datum::Wgs84, Datum::Gcj02],
        other => vec![other.parse::<Datum>().map_err(|e| anyhow::anyhow!("--datum: {e}, or both"))?],
    };
    let file = args.config.as_deref().map(FileConfig::load).transpose()?;
    let config = ServerConfig::resolve(Overrides { data: args.data, ..Overrides::default() }, file)?;
    let loaded = open_city_store(&config.data)?.load_city(&|_, _| {}).with_context(|| format!("loading {}", config.data.display()))?;
    let world = World::with_tiles(loaded, config.tiles);
    let zooms = budget::measure(&world.tiles, &world.city, &layers, &datums)?;
    if zooms.is_empty() {
        bail!("{} has no grids, zones or components yet: no tile to measure (import a layer first)", config.data.display());
    }
    let budget_bytes = args.max_kb * 1024;
    let over: Vec<&budget::ZoomSizes> = zooms.iter().filter(|z| z.largest.bytes > budget_bytes).collect();
    if args.json {
        let report = serde_json::json!({"max_bytes": budget_bytes, "within_budget": over.is_empty(), "zooms": zooms});
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let names: Vec<&str> = layers.iter().map(|l| l.name()).collect();
        println!("tiles of {} ({} components), layers {}, budget {} KB", world.meta.name, world.city.components.len(), names.join(","), args.max_kb);
        println!("{:>4} {:>10} {:>9} {:>11} {:>11} {:>10}  largest tile", "zoom", "candidates", "measured", "largest KB", "median KB", "densest");
        for z in &zooms {
            let l = &z.largest;
            let mark = if l.bytes > budget_bytes { "  OVER BUDGET" } else { "" };
            println!(
                "{:>4} {:>10} {:>9} {:>11.1} {:>11.1} {:>10}  {}/{}/{} {} ({} components){mark}",
                z.zoom,
                z.candidates,
                z.measured,
                l.bytes as f64 / 1024.0,
                z.median_bytes as f64 / 1024.0,
                z.densest_components,
                l.z,
                l.x,
                l.y,
                l.datum,
                l.components
            );
        }
    }
    if !over.is_empty() {
        let list: Vec<String> = over.iter().map(|z| format!("{}/{}/{} ({} bytes)", z.largest.z, z.largest.x, z.largest.y, z.largest.bytes)).collect();
        eprintln!("over the budget of {} KB: {}", args.max_kb, list.join(", "));
        std::process::exit(2);
    }
    Ok(())
}

/// `citygrid route --file`: one answer line per case on stdout, a summary on stderr.
fn route_file(file: &Path, data: &Path) -> Result<()> {
    use citygrid::http::routing::{batch_line, error_line};
    use citygrid::routing::batch::{Batch, BatchFormat};
    use std::io::Write;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let format = match ext.as_str() {
        "json" => BatchFormat::Json,
        "ndjson" | "jsonl" => BatchFormat::Ndjson,
        _ => BatchFormat::Csv,
    };
    let batch = Batch::from_bytes(format, &bytes).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let world = load_world(data)?;
    let now = chrono::Utc::now().with_timezone(&citygrid::routing::china_tz());
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut failed = 0usize;
    for (i, case) in batch.cases().enumerate() {
        let line = match case {
            Ok(item) => {
                let (line, record) = batch_line(&world, i, item, now);
                failed += usize::from(record.is_none());
                line
            }
            Err(err) => {
                let (id, e) = *err;
                failed += 1;
                error_line(i, id, e.into())
            }
        };
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    eprintln!("{} cases: {} routed, {failed} refused (see their \"error\")", batch.len(), batch.len() - failed);
    Ok(())
}

/// Counts the bytes read into a progress bar.
struct ProgressReader<'a, R> {
    inner: R,
    bar: &'a ProgressBar,
}

impl<R: std::io::Read> std::io::Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

/// A layer file named on the command line, opened, to be streamed with a progress bar over
/// its bytes.
enum LayerFile {
    /// A bare `.shp`: its `.dbf`, `.prj` and `.cpg` sit beside it.
    BareShapefile(PathBuf),
    File {
        file: std::fs::File,
        format: Option<citygrid::ingest::Format>,
        csv: citygrid::ingest::CsvOptions,
    },
}

impl LayerFile {
    /// Opens `path`; `Ok(Err)`: the name says a format we do not read.
    fn open(path: &Path, read: &ReadArgs) -> Result<Result<LayerFile, citygrid::ingest::IngestError>> {
        use citygrid::ingest::{CsvOptions, Format};
        let format = match Format::from_extension(path) {
            Ok(f) => f,
            Err(e) => return Ok(Err(e)),
        };
        let bare_shp = path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("shp"));
        if bare_shp && format == Some(Format::Shapefile) {
            return Ok(Ok(LayerFile::BareShapefile(path.to_owned())));
        }
        let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let csv = CsvOptions { x_column: read.x_column.clone(), y_column: read.y_column.clone() };
        Ok(Ok(LayerFile::File { file, format, csv }))
    }

    /// Reads the file, handing each feature to `sink` (see `citygrid::ingest::stream_layer`).
    fn stream(self, sink: &mut dyn citygrid::ingest::FeatureSink) -> Result<citygrid::ingest::SourceLayer, citygrid::ingest::IngestError> {
        match self {
            LayerFile::BareShapefile(path) => citygrid::ingest::shapefile::read_files(&path, sink),
            // A ZIP needs random access: read in place.
            LayerFile::File { file, format: format @ Some(citygrid::ingest::Format::Shapefile), csv } => {
                citygrid::ingest::stream_layer_file(file, format, &csv, sink)
            }
            LayerFile::File { file, format, csv } => {
                let bar = ProgressBar::new(file.metadata().map(|m| m.len()).unwrap_or(0)).with_message("reading");
                bar.set_style(
                    ProgressStyle::with_template("{msg:>12} [{bar:40}] {binary_bytes}/{binary_total_bytes} ({eta})")
                        .expect("valid template")
                        .progress_chars("=> "),
                );
                let header = citygrid::ingest::stream_layer(ProgressReader { inner: file, bar: &bar }, format, &csv, sink);
                bar.finish_and_clear();
                header
            }
        }
    }
}

fn import_options(layer: citygrid::ingest::validate::LayerKind, read: &ReadArgs) -> citygrid::ingest::ImportOptions {
    use citygrid::ingest::report::Policy;
    citygrid::ingest::ImportOptions {
        layer,
        crs: read.crs.clone(),
        force_crs: read.force_crs,
        policy: if read.strict { Policy::Strict } else { Policy::DropInvalid },
        allow_shrink: read.allow_shrink,
        default_crs: None,
        accept_findings: read.accept_findings,
        ..citygrid::ingest::ImportOptions::new(layer)
    }
}

/// Prints a file-level refusal (unreadable file, CRS problem) and exits with status 2.
fn refuse(e: impl std::fmt::Display) -> ! {
    println!("REJECTED: {e}");
    std::process::exit(2);
}

fn import(args: ImportArgs) -> Result<()> {
    use citygrid::datasets::{DatasetError, import_offline, import_package_offline, import_text_offline};
    use citygrid::store::Dataset;
    let data = args.read.data.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let file_config = args.config.as_deref().map(FileConfig::load).transpose()?;
    let retention = ServerConfig::resolve(Overrides::default(), file_config)?.retention;
    let Some(path) = args.file.clone() else {
        // A city package.
        let package_path = PathBuf::from(&args.what);
        let origin = format!("citygrid import {}", package_path.display());
        let mut store = Store::open_writer(&data, &origin)?.with_retention(retention);
        let package = citygrid::datasets::Package::open(&package_path, &data).unwrap_or_else(|e| refuse(e));
        let options = citygrid::datasets::PackageOptions { base: Some(import_options(citygrid::ingest::validate::LayerKind::Grids, &args.read)) };
        let bar = progress_bar("checking");
        let imported = import_package_offline(&mut store, &package, &options, args.dry_run, &origin, &ticker(&bar));
        bar.finish_and_clear();
        let imported = match imported {
            Ok(i) => i,
            Err(DatasetError::PackageRejected(report)) => {
                print!("{}", report.to_text());
                std::process::exit(2);
            }
            Err(e @ (DatasetError::Ingest(_) | DatasetError::Package(_))) => refuse(e),
            Err(e) => return Err(e.into()),
        };
        print!("{}", imported.report.to_text());
        match imported.versions {
            Some(v) => println!("imported: the city package is current ({})", v.0.iter().map(|(d, n)| format!("{d} v{n}")).collect::<Vec<_>>().join(", ")),
            None => println!("dry run: the package would be imported; nothing stored"),
        }
        return Ok(());
    };
    let dataset = Dataset::parse(&args.what).unwrap_or_else(|| refuse(format!("{:?} is not a dataset: {}", args.what, Dataset::names())));
    let origin = format!("citygrid import {} {}", args.what, path.display());
    if !dataset.is_layer() {
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {} (text files are UTF-8)", path.display()))?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let mut store = Store::open_writer(&data, &origin)?.with_retention(retention);
        if store.is_empty() {
            refuse(format!("{} holds no city yet: run `citygrid init --data {} --name NAME` first", data.display(), data.display()));
        }
        let imported = match import_text_offline(&mut store, dataset, text, args.read.allow_shrink, args.dry_run, &origin) {
            Ok(i) => i,
            Err(e @ DatasetError::Rejected { .. }) => refuse(e),
            Err(e) => return Err(e.into()),
        };
        for w in &imported.checked.warnings {
            println!("warning: {w}");
        }
        match imported.switched {
            Some(s) => println!("imported: {} version {} is current (was {}), {} rows", s.dataset, s.current, s.previous, imported.checked.rows),
            None => println!("dry run: {} would be imported ({} rows); nothing stored", dataset, imported.checked.rows),
        }
        return Ok(());
    }
    let layer = citygrid::ingest::validate::LayerKind::parse(&args.what).unwrap_or_else(|e| refuse(e));
    let file = LayerFile::open(&path, &args.read)?.unwrap_or_else(|e| refuse(e));
    let mut store = Store::open_writer(&data, &origin)?.with_retention(retention);
    if store.is_empty() {
        refuse(format!("{} holds no city yet: run `citygrid init --data {} --name NAME` first, or import a city package", data.display(), data.display()));
    }
    let loading = progress_bar("loading");
    let spinner = ProgressBar::new_spinner().with_message("checking and storing");
    let read = |sink: &mut dyn citygrid::ingest::FeatureSink| {
        loading.finish_and_clear();
        let header = file.stream(sink);
        spinner.enable_steady_tick(std::time::Duration::from_millis(200));
        header
    };
    let options = import_options(layer, &args.read);
    let imported = import_offline(&mut store, read, &options, args.dry_run, &origin, &ticker(&loading));
    spinner.finish_and_clear();
    let imported = match imported {
        Ok(i) => i,
        Err(DatasetError::Ingest(e)) => refuse(e),
        Err(e) => return Err(e.into()),
    };
    print!("{}", imported.report.to_text());
    match (&imported.switched, imported.report.accepted_layer) {
        (Some(s), _) => println!("imported: {} version {} is current (was {})", s.dataset, s.current, s.previous),
        (None, true) => println!("dry run: the layer would be imported; nothing stored"),
        (None, false) => std::process::exit(2),
    }
    Ok(())
}

fn validate(args: ValidateArgs) -> Result<()> {
    use citygrid::ingest::validate::LayerKind;
    let data = args.read.data.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let open = || LayerFile::open(&args.file, &args.read).map(|f| f.unwrap_or_else(|e| refuse(e)));
    let open_file = open()?;
    let layer = match args.layer.as_deref() {
        Some(name) => LayerKind::parse(name).unwrap_or_else(|e| refuse(e)),
        // Polygons are grids, anything else components: read up to the first geometry.
        None => match citygrid::ingest::first_geometry(|sink| open_file.stream(sink)).unwrap_or_else(|e| refuse(e)) {
            Some(geo_types::Geometry::Polygon(_) | geo_types::Geometry::MultiPolygon(_)) => LayerKind::Grids,
            _ => LayerKind::Components,
        },
    };
    // Checked as `import --dry-run` would: the city's CRS for a file that names none, and the
    // responsibility list in force against the new layer. Stores nothing.
    let store = open_city_store(&data)?;
    let bar = progress_bar("loading");
    let file = open()?;
    let prepared = citygrid::datasets::check_offline(&store, |sink| file.stream(sink), &import_options(layer, &args.read), &ticker(&bar));
    bar.finish_and_clear();
    let prepared = match prepared {
        Ok(p) => p,
        Err(citygrid::datasets::DatasetError::Ingest(e)) => refuse(e),
        Err(e) => return Err(anyhow::Error::from(e).context(format!("checking against {}", data.display()))),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&prepared.report)?);
    } else {
        print!("{}", prepared.report.to_text());
    }
    if !prepared.report.accepted_layer {
        std::process::exit(2);
    }
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM; in-flight requests then finish before exit, within
/// `[limits] shutdown_grace_secs`.
async fn shutdown_signal() {
    let ctrl_c = async {
        tokio::signal::ctrl_c().await.expect("install Ctrl-C handler");
    };
    #[cfg(unix)]
    let terminate = async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("install SIGTERM handler").recv().await;
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => info!("SIGINT received, shutting down"),
        _ = terminate => info!("SIGTERM received, shutting down"),
    }
}
