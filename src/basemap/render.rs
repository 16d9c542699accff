//! Making a small vector basemap: features in lon/lat cut into Mapbox vector tiles with the
//! project's own MVT encoder (`crate::tiles::encoder`, extent 4096, buffer 64) and written to
//! an MBTiles file (tiles gzip'd, as planetiler and tilemaker write them). The demo city's
//! street map is made this way (`crate::demo::street_map`).

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use super::BasemapError;
use crate::tiles::clip::{area2, clip_ring, round_ring};
use crate::tiles::encoder::{LayerBuilder, str_value};
use crate::tiles::mercator::{TileFrame, to_world};
use crate::tiles::vector_tile::tile::GeomType;

/// Tile extent and buffer (tile units) of the tiles made here.
const EXTENT: u32 = 4096;
const BUFFER: f64 = 64.0;

/// A feature's shape, lon/lat degrees (WGS84).
#[derive(Clone, Debug)]
pub enum Shape {
    Point([f64; 2]),
    Line(Vec<[f64; 2]>),
    /// One ring (no holes), either winding, without a repeated closing point.
    Polygon(Vec<[f64; 2]>),
}

/// A feature of one layer, drawn from `min_zoom` on.
#[derive(Clone, Debug)]
pub struct Feature {
    pub layer: &'static str,
    pub shape: Shape,
    /// String properties (`class`, `name`, …).
    pub props: Vec<(&'static str, String)>,
    pub min_zoom: u8,
}

/// The tiles of `features` from `minzoom` to `maxzoom`: (z, x, y, uncompressed MVT), empty
/// tiles left out, layers in the order of `layers`, sorted by z, x, y. Deterministic.
pub fn render(features: &[Feature], layers: &[&'static str], minzoom: u8, maxzoom: u8) -> Vec<(u8, u32, u32, Vec<u8>)> {
    // Per layer, the property keys in first-use order; every string interned once.
    let mut keys: Vec<Vec<&'static str>> = vec![Vec::new(); layers.len()];
    let mut strings: HashMap<&str, u64> = HashMap::new();
    for f in features {
        let li = layers.iter().position(|l| *l == f.layer).expect("a feature of a listed layer");
        for (k, v) in &f.props {
            if !keys[li].contains(k) {
                keys[li].push(k);
            }
            let n = strings.len() as u64;
            strings.entry(v.as_str()).or_insert(n);
        }
    }
    let mut out = Vec::new();
    for z in minzoom..=maxzoom {
        let mut tiles: HashMap<(u32, u32), Vec<Option<LayerBuilder>>> = HashMap::new();
        let scale = f64::from(1u32 << z);
        let (mut part, mut tmp, mut rounded) = (Vec::new(), Vec::new(), Vec::new());
        for f in features.iter().filter(|f| f.min_zoom <= z) {
            let li = layers.iter().position(|l| *l == f.layer).expect("listed");
            let world: Vec<[f64; 2]> = match &f.shape {
                Shape::Point(p) => vec![to_world(p[0], p[1])],
                Shape::Line(l) | Shape::Polygon(l) => l.iter().map(|p| to_world(p[0], p[1])).collect(),
            };
            if world.is_empty() {
                continue;
            }
            let pad = BUFFER / f64::from(EXTENT);
            let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
            for w in &world {
                x0 = x0.min(w[0] * scale);
                y0 = y0.min(w[1] * scale);
                x1 = x1.max(w[0] * scale);
                y1 = y1.max(w[1] * scale);
            }
            let max = (1u32 << z) - 1;
            let range = |a: f64, b: f64| ((a - pad).floor().max(0.0) as u32).min(max)..=((b + pad).floor().max(0.0) as u32).min(max);
            for tx in range(x0, x1) {
                for ty in range(y0, y1) {
                    let frame = TileFrame::new(z, tx, ty, EXTENT);
                    let local: Vec<[f64; 2]> = world.iter().map(|w| frame.to_tile(*w)).collect();
                    let (lo, hi) = (-BUFFER, f64::from(EXTENT) + BUFFER);
                    let mut pieces: Vec<Vec<[i32; 2]>> = Vec::new();
                    let kind = match &f.shape {
                        Shape::Point(_) => {
                            let p = local[0];
                            if !(0.0..f64::from(EXTENT)).contains(&p[0]) || !(0.0..f64::from(EXTENT)).contains(&p[1]) {
                                continue;
                            }
                            pieces.push(vec![[p[0].round() as i32, p[1].round() as i32]]);
                            GeomType::Point
                        }
                        Shape::Line(_) => {
                            for piece in clip_line(&local, lo, hi) {
                                let mut r: Vec<[i32; 2]> = Vec::with_capacity(piece.len());
                                for p in piece {
                                    let q = [p[0].round() as i32, p[1].round() as i32];
                                    if r.last() != Some(&q) {
                                        r.push(q);
                                    }
                                }
                                if r.len() >= 2 {
                                    pieces.push(r);
                                }
                            }
                            GeomType::Linestring
                        }
                        Shape::Polygon(_) => {
                            clip_ring(&local, lo, hi, &mut part, &mut tmp);
                            round_ring(&part, &mut rounded);
                            let a = area2(&rounded);
                            if rounded.len() < 3 || a == 0 {
                                continue;
                            }
                            let mut ring = rounded.clone();
                            if a < 0 {
                                // Exterior rings are clockwise on screen (positive area).
                                ring.reverse();
                            }
                            pieces.push(ring);
                            GeomType::Polygon
                        }
                    };
                    if pieces.is_empty() {
                        continue;
                    }
                    let slots = tiles.entry((tx, ty)).or_insert_with(|| (0..layers.len()).map(|_| None).collect());
                    let b = slots[li].get_or_insert_with(|| LayerBuilder::new(layers[li], EXTENT, &keys[li]));
                    let mut feat = b.begin_feature(None, kind);
                    for (k, v) in &f.props {
                        let ki = keys[li].iter().position(|x| x == k).expect("collected") as u32;
                        let vi = b.shared(0, strings[v.as_str()], || str_value(v.clone()));
                        feat.tags.extend([ki, vi]);
                    }
                    for piece in &pieces {
                        match kind {
                            GeomType::Point => b.point(&mut feat, piece[0]),
                            GeomType::Linestring => b.line(&mut feat, piece),
                            _ => b.ring(&mut feat, piece),
                        }
                    }
                    b.end_feature(feat);
                }
            }
        }
        let mut zoom: Vec<((u32, u32), Vec<u8>)> = tiles
            .into_iter()
            .map(|(xy, slots)| {
                let mut bytes = Vec::new();
                for b in slots.into_iter().flatten().filter(|b| !b.is_empty()) {
                    b.finish_into(&mut bytes);
                }
                (xy, bytes)
            })
            .collect();
        zoom.sort_by_key(|t| t.0);
        out.extend(zoom.into_iter().map(|((x, y), bytes)| (z, x, y, bytes)));
    }
    out
}

/// The parts of a polyline inside the box `[lo, hi]²` (Liang–Barsky on each segment; parts
/// that leave and come back are separate).
fn clip_line(line: &[[f64; 2]], lo: f64, hi: f64) -> Vec<Vec<[f64; 2]>> {
    let mut parts: Vec<Vec<[f64; 2]>> = Vec::new();
    let mut current: Vec<[f64; 2]> = Vec::new();
    for seg in line.windows(2) {
        let (a, b) = (seg[0], seg[1]);
        let d = [b[0] - a[0], b[1] - a[1]];
        let (mut t0, mut t1) = (0.0f64, 1.0f64);
        let mut visible = true;
        for (p, q) in [(-d[0], a[0] - lo), (d[0], hi - a[0]), (-d[1], a[1] - lo), (d[1], hi - a[1])] {
            if p == 0.0 {
                if q < 0.0 {
                    visible = false;
                }
            } else {
                let r = q / p;
                if p < 0.0 {
                    t0 = t0.max(r);
                } else {
                    t1 = t1.min(r);
                }
            }
        }
        if !visible || t0 > t1 {
            if !current.is_empty() {
                parts.push(std::mem::take(&mut current));
            }
            continue;
        }
        let at = |t: f64| [a[0] + t * d[0], a[1] + t * d[1]];
        if current.is_empty() {
            current.push(at(t0));
        }
        current.push(at(t1));
        if t1 < 1.0 {
            parts.push(std::mem::take(&mut current));
        }
    }
    if current.len() >= 2 {
        parts.push(current);
    }
    parts.retain(|p| p.len() >= 2);
    parts
}

/// The `metadata` rows of an MBTiles file written by [`write_mbtiles`].
pub struct MbtilesMeta {
    pub name: String,
    pub description: String,
    pub attribution: String,
    pub minzoom: u8,
    pub maxzoom: u8,
    pub bounds: [f64; 4],
    pub center: [f64; 3],
    /// TileJSON `vector_layers` (becomes the `json` row).
    pub vector_layers: serde_json::Value,
}

/// Writes `tiles` (uncompressed MVT) gzip'd into a new MBTiles file at `path` (format pbf,
/// TMS rows), through a temporary file renamed into place, so `path` is either absent or
/// complete.
pub fn write_mbtiles(path: &Path, tiles: &[(u8, u32, u32, Vec<u8>)], meta: &MbtilesMeta) -> Result<(), BasemapError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| BasemapError::io(path, e))?;
    let tmp = tempfile::Builder::new().prefix(".basemap-").suffix(".mbtiles").tempfile_in(dir).map_err(|e| BasemapError::io(path, e))?;
    let sql = |source| BasemapError::Sqlite { path: path.to_owned(), source };
    {
        let mut conn = rusqlite::Connection::open(tmp.path()).map_err(sql)?;
        conn.execute_batch(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA page_size = 4096;
             CREATE TABLE metadata (name TEXT, value TEXT);
             CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB);
             CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row);",
        )
        .map_err(sql)?;
        let tx = conn.transaction().map_err(sql)?;
        {
            let json = serde_json::json!({"vector_layers": meta.vector_layers});
            let b = meta.bounds;
            let c = meta.center;
            let rows = [
                ("name", meta.name.clone()),
                ("description", meta.description.clone()),
                ("attribution", meta.attribution.clone()),
                ("format", "pbf".to_owned()),
                ("type", "baselayer".to_owned()),
                ("version", "1".to_owned()),
                ("minzoom", meta.minzoom.to_string()),
                ("maxzoom", meta.maxzoom.to_string()),
                ("bounds", format!("{:.6},{:.6},{:.6},{:.6}", b[0], b[1], b[2], b[3])),
                ("center", format!("{:.6},{:.6},{}", c[0], c[1], c[2])),
                ("json", json.to_string()),
            ];
            let mut stmt = tx.prepare("INSERT INTO metadata (name, value) VALUES (?1, ?2)").map_err(sql)?;
            for (k, v) in rows {
                stmt.execute([k, v.as_str()]).map_err(sql)?;
            }
            let mut stmt = tx.prepare("INSERT INTO tiles (zoom_level, tile_column, tile_row, tile_data) VALUES (?1, ?2, ?3, ?4)").map_err(sql)?;
            for (z, x, y, raw) in tiles {
                let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(raw.len() / 2), flate2::Compression::new(6));
                enc.write_all(raw).map_err(|e| BasemapError::io(path, e))?;
                let gz = enc.finish().map_err(|e| BasemapError::io(path, e))?;
                let row = (1i64 << z) - 1 - i64::from(*y);
                stmt.execute(rusqlite::params![z, x, row, gz]).map_err(sql)?;
            }
        }
        tx.commit().map_err(sql)?;
    }
    tmp.persist(path).map_err(|e| BasemapError::io(path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiles::vector_tile;
    use prost::Message;

    #[test]
    fn lines_are_cut_at_the_box_and_split_where_they_leave_it() {
        let parts = clip_line(&[[-10.0, 5.0], [5.0, 5.0], [5.0, 20.0], [8.0, 20.0], [8.0, 5.0]], 0.0, 10.0);
        assert_eq!(parts, vec![vec![[0.0, 5.0], [5.0, 5.0], [5.0, 10.0]], vec![[8.0, 10.0], [8.0, 5.0]]]);
        assert!(clip_line(&[[20.0, 20.0], [30.0, 30.0]], 0.0, 10.0).is_empty());
    }

    #[test]
    fn a_line_across_tiles_lands_in_each_with_its_properties() {
        let f = Feature {
            layer: "transportation",
            shape: Shape::Line(vec![[120.60, 31.25], [120.64, 31.25]]),
            props: vec![("class", "primary".into()), ("name", "东西大道".into())],
            min_zoom: 0,
        };
        let tiles = render(&[f], &["transportation"], 14, 14);
        assert!(tiles.len() >= 2, "{} tiles", tiles.len());
        for (_, _, _, bytes) in &tiles {
            let t = vector_tile::Tile::decode(bytes.as_slice()).unwrap();
            assert_eq!(t.layers[0].name, "transportation");
            assert_eq!(t.layers[0].keys, ["class", "name"]);
            assert_eq!(t.layers[0].features.len(), 1);
            assert!(t.layers[0].values.iter().any(|v| v.string_value.as_deref() == Some("东西大道")));
        }
    }
}
