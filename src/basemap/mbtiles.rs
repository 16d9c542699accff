//! MBTiles 1.3 (an SQLite database): `metadata(name, value)` and `tiles(zoom_level,
//! tile_column, tile_row, tile_data)` (a table or, in deduplicated files, a view) with rows in
//! the TMS scheme (row 0 at the south), flipped here to XYZ.
//!
//! The file is opened read-only; each tile read is one indexed `SELECT` on a connection from a
//! small pool (SQLite connections are not shared between threads), so SQLite reads only the
//! index pages and the row's pages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::{BasemapError, Encoding, Info, Tile, TileFormat};

/// Connections kept for reuse; more may be open at once under load, the extra ones are closed.
const POOL: usize = 8;

pub(super) struct Mbtiles {
    path: PathBuf,
    pool: Mutex<Vec<Connection>>,
}

fn open_connection(path: &Path) -> Result<Connection, BasemapError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|source| BasemapError::Sqlite { path: path.to_owned(), source })?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(|source| BasemapError::Sqlite { path: path.to_owned(), source })?;
    Ok(conn)
}

impl Mbtiles {
    /// Opens the file and reads its `metadata`; checks that `tiles` can be queried.
    pub(super) fn open(path: &Path, id: &str) -> Result<(Mbtiles, Info), BasemapError> {
        let sql = |source| BasemapError::Sqlite { path: path.to_owned(), source };
        let conn = open_connection(path)?;
        let has = |name: &str| -> Result<bool, BasemapError> {
            conn.query_row("SELECT count(*) FROM sqlite_master WHERE name = ?1 AND type IN ('table', 'view')", [name], |r| r.get::<_, i64>(0))
                .map(|n| n > 0)
                .map_err(sql)
        };
        if !has("tiles")? {
            return Err(BasemapError::invalid(path, "an SQLite file without a `tiles` table or view: not an MBTiles file"));
        }
        let mut meta = BTreeMap::new();
        if has("metadata")? {
            let mut stmt = conn.prepare("SELECT name, value FROM metadata").map_err(sql)?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, Option<String>>(0)?, r.get::<_, Option<String>>(1)?))).map_err(sql)?;
            for row in rows {
                if let (Some(k), Some(v)) = row.map_err(sql)? {
                    meta.insert(k, v);
                }
            }
        }
        let format = match meta.get("format") {
            Some(f) => TileFormat::from_name(f).ok_or_else(|| BasemapError::Unsupported {
                path: path.to_owned(),
                reason: format!("tile format {f:?}: served are png, jpg, webp and pbf (vector tiles)"),
            })?,
            None => {
                let first: Option<Vec<u8>> = conn.query_row("SELECT tile_data FROM tiles LIMIT 1", [], |r| r.get(0)).optional().map_err(sql)?;
                match first {
                    None => return Err(BasemapError::invalid(path, "no `format` in its metadata and no tile to tell it from")),
                    Some(t) => TileFormat::sniff(&t)
                        .ok_or_else(|| BasemapError::invalid(path, "no `format` in its metadata and the tiles are not png, jpg, webp or pbf"))?,
                }
            }
        };
        let zoom = |k: &str| meta.get(k).and_then(|v| v.trim().parse::<f64>().ok()).filter(|z| (0.0..=30.0).contains(z)).map(|z| z as u8);
        let (minzoom, maxzoom) = match (zoom("minzoom"), zoom("maxzoom")) {
            (Some(a), Some(b)) if a <= b => (a, b),
            _ => {
                let (a, b): (Option<i64>, Option<i64>) =
                    conn.query_row("SELECT min(zoom_level), max(zoom_level) FROM tiles", [], |r| Ok((r.get(0)?, r.get(1)?))).map_err(sql)?;
                match (a, b) {
                    (Some(a), Some(b)) if (0..=30).contains(&a) && (a..=30).contains(&b) => (a as u8, b as u8),
                    _ => return Err(BasemapError::invalid(path, "no tiles, and no minzoom/maxzoom in its metadata")),
                }
            }
        };
        let json: Option<serde_json::Value> = match meta.get("json") {
            None => None,
            Some(text) => Some(serde_json::from_str(text).map_err(|e| BasemapError::invalid(path, format!("metadata `json` is not JSON: {e}")))?),
        };
        let (name, description, attribution, vector_layers) = super::text_fields(&meta, json.as_ref());
        let info = Info {
            name: name.unwrap_or_else(|| id.to_owned()),
            description,
            attribution,
            format,
            minzoom,
            maxzoom,
            bounds: meta.get("bounds").and_then(|b| super::parse_bounds(b)).unwrap_or([-180.0, -85.051129, 180.0, 85.051129]),
            center: meta.get("center").and_then(|c| super::parse_center(c)),
            vector_layers,
        };
        // The query every tile runs, once now: a `tiles` that lacks a column fails here.
        conn.prepare("SELECT tile_data FROM tiles WHERE zoom_level = ?1 AND tile_column = ?2 AND tile_row = ?3").map_err(sql)?;
        Ok((Mbtiles { path: path.to_owned(), pool: Mutex::new(vec![conn]) }, info))
    }

    pub(super) fn tile(&self, z: u8, x: u32, y: u32, format: TileFormat) -> Result<Option<Tile>, BasemapError> {
        let conn = match self.pool.lock().expect("pool lock").pop() {
            Some(c) => c,
            None => open_connection(&self.path)?,
        };
        let tms_row = (1u64 << z) - 1 - u64::from(y);
        let data: Option<Vec<u8>> = conn
            .prepare("SELECT tile_data FROM tiles WHERE zoom_level = ?1 AND tile_column = ?2 AND tile_row = ?3")
            .and_then(|mut s| s.query_row(rusqlite::params![z, x, tms_row as i64], |r| r.get(0)).optional())
            .map_err(|source| BasemapError::Sqlite { path: self.path.clone(), source })?;
        {
            let mut pool = self.pool.lock().expect("pool lock");
            if pool.len() < POOL {
                pool.push(conn);
            }
        }
        Ok(data.filter(|d| !d.is_empty()).map(|d| {
            // Vector tiles in MBTiles are usually gzip'd (tippecanoe, planetiler, tilemaker);
            // the file does not say, the bytes do.
            let encoding = if format == TileFormat::Pbf && d.starts_with(&[0x1f, 0x8b]) { Encoding::Gzip } else { Encoding::Identity };
            Tile { data: d.into(), encoding }
        }))
    }
}
