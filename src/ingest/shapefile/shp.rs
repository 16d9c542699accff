//! The `.shp` of a Shapefile: its records framed and each shape read into a geometry (see the
//! parent module for the rules).

use std::io::{Cursor, Read};

use geo_types::{Coord, Geometry, LineString, MultiPoint, MultiPolygon, Point, Polygon};

use super::{read_error, unreadable};
use crate::ingest::{IngestError, IssueKind};

/// The shapes of a `.shp`, record by record: the 100-byte file header (file code 9994, the file's
/// length in 16-bit words at 24, big-endian), then per record an 8-byte big-endian header (record
/// number, content length in 16-bit words) and the content, parsed by the `shapefile` crate.
pub(super) struct ShpReader<R> {
    pub(super) reader: R,
    /// The bytes there are (a record may not run past them).
    pub(super) len: u64,
    /// Where the header says the records end.
    pub(super) end: u64,
    pub(super) pos: u64,
    pub(super) index: usize,
    pub(super) content: Vec<u8>,
}

impl<R: Read> ShpReader<R> {
    /// Reads the file header of a `.shp` of `len` bytes.
    pub(super) fn new(mut reader: R, len: u64) -> Result<ShpReader<R>, IngestError> {
        let mut header = [0u8; 100];
        reader.read_exact(&mut header).map_err(read_error(|| "the .shp's header".into()))?;
        let code = i32::from_be_bytes(header[..4].try_into().expect("4 bytes"));
        if code != 9994 {
            return Err(unreadable(format!("the .shp: not a .shp (its file code is {code}, not 9994)")));
        }
        let words = i32::from_be_bytes(header[24..28].try_into().expect("4 bytes"));
        if words < 50 {
            return Err(unreadable(format!("the .shp: a corrupt header (a length of {words} 16-bit words)")));
        }
        Ok(ShpReader { reader, len, end: words as u64 * 2, pos: 100, index: 0, content: Vec::new() })
    }

    /// The next shape, `None` at the end the header says.
    pub(super) fn next(&mut self) -> Result<Option<::shapefile::Shape>, IngestError> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let index = self.index;
        let what = || format!("the .shp, shape {index}");
        let mut header = [0u8; 8];
        self.reader.read_exact(&mut header).map_err(read_error(what))?;
        let words = i32::from_be_bytes(header[4..8].try_into().expect("4 bytes"));
        let bytes = u64::try_from(words).unwrap_or(0) * 2;
        if bytes < 4 {
            return Err(unreadable(format!("{}: a record of {words} 16-bit words, too short for a shape type (corrupt?)", what())));
        }
        if self.pos + 8 + bytes > self.len {
            return Err(unreadable(format!("{}: a record of {bytes} bytes runs past the end of the file (truncated?)", what())));
        }
        // Grown as bytes arrive, not to what the record claims: a ZIP entry may declare (and a
        // record claim) far more than there is.
        self.content.clear();
        (&mut self.reader).take(bytes).read_to_end(&mut self.content).map_err(read_error(what))?;
        if (self.content.len() as u64) < bytes {
            return Err(unreadable(format!("{}: the record ends after {} of its {bytes} bytes (truncated?)", what(), self.content.len())));
        }
        self.pos += 8 + bytes;
        self.index += 1;
        if let Some(needed) = counted_len(&self.content)
            && needed > bytes
        {
            return Err(unreadable(format!("{}: its counts of parts and points need {needed} bytes but the record has {bytes} (corrupt?)", what())));
        }
        <::shapefile::Shape as ::shapefile::ReadableShape>::read_from(&mut Cursor::new(&self.content[..]), bytes as i32)
            .map(Some)
            .map_err(|e| unreadable(format!("{}: {e}", what())))
    }
}

/// The length a record's content needs for the numbers of parts and points it declares (shape
/// types with counts only), checked before the `shapefile` crate reads it: that crate reserves
/// room for the declared counts, so 2 billion points claimed in a 50-byte record would ask for
/// 32 GB.
pub(super) fn counted_len(content: &[u8]) -> Option<u64> {
    let int = |at: usize| content.get(at..at + 4).map(|b| u64::from(u32::from_le_bytes(b.try_into().expect("4 bytes"))));
    let shape_type = int(0)?;
    // type, bounding box (32 bytes), then the counts.
    Some(match shape_type {
        // MultiPoint, Z, M: number of points, points (16 bytes each).
        8 | 18 | 28 => 40 + 16 * int(36)?,
        // Polyline, Polygon (plain, Z, M): parts, points, part starts (4 bytes each), points.
        3 | 5 | 13 | 15 | 23 | 25 => 44 + 4 * int(36)? + 16 * int(40)?,
        // MultiPatch: part starts and part types (4 bytes each).
        31 => 44 + 8 * int(36)? + 16 * int(40)?,
        _ => return None,
    })
}

pub(super) type GeometryProblem = (IssueKind, String);

pub(super) fn invalid(message: impl Into<String>) -> GeometryProblem {
    (IssueKind::InvalidGeometry, message.into())
}

pub(super) fn coord(x: f64, y: f64) -> Result<Coord<f64>, GeometryProblem> {
    if x.is_finite() && y.is_finite() { Ok(Coord { x, y }) } else { Err(invalid(format!("a coordinate is not a finite number ({x}, {y})"))) }
}

pub(super) fn geometry(shape: ::shapefile::Shape) -> Result<Geometry<f64>, GeometryProblem> {
    use ::shapefile::Shape as S;
    let xy_rings = |rings: Vec<Vec<(f64, f64)>>| -> Result<Geometry<f64>, GeometryProblem> {
        let rings = rings.into_iter().map(|r| r.into_iter().map(|(x, y)| coord(x, y)).collect::<Result<Vec<_>, _>>()).collect::<Result<Vec<_>, _>>()?;
        Ok(Geometry::MultiPolygon(group_rings(rings)?))
    };
    let points = |ps: Vec<(f64, f64)>| -> Result<Geometry<f64>, GeometryProblem> {
        Ok(Geometry::MultiPoint(MultiPoint(ps.into_iter().map(|(x, y)| coord(x, y).map(Point)).collect::<Result<_, _>>()?)))
    };
    pub(super) fn rings<P>(p: ::shapefile::record::polygon::GenericPolygon<P>, xy: impl Fn(&P) -> (f64, f64)) -> Vec<Vec<(f64, f64)>> {
        p.into_inner().into_iter().map(|r| r.into_inner().iter().map(&xy).collect()).collect()
    }
    match shape {
        S::NullShape => Err(invalid("a null shape: the record has no geometry")),
        S::Point(p) => Ok(Geometry::Point(Point(coord(p.x, p.y)?))),
        S::PointM(p) => Ok(Geometry::Point(Point(coord(p.x, p.y)?))),
        S::PointZ(p) => Ok(Geometry::Point(Point(coord(p.x, p.y)?))),
        S::Multipoint(m) => points(m.into_inner().iter().map(|p| (p.x, p.y)).collect()),
        S::MultipointM(m) => points(m.into_inner().iter().map(|p| (p.x, p.y)).collect()),
        S::MultipointZ(m) => points(m.into_inner().iter().map(|p| (p.x, p.y)).collect()),
        S::Polygon(p) => xy_rings(rings(p, |q| (q.x, q.y))),
        S::PolygonM(p) => xy_rings(rings(p, |q| (q.x, q.y))),
        S::PolygonZ(p) => xy_rings(rings(p, |q| (q.x, q.y))),
        S::Polyline(_) | S::PolylineM(_) | S::PolylineZ(_) => {
            Err((IssueKind::WrongGeometryType, "a polyline: layers hold points (components) or polygons (grids)".into()))
        }
        S::Multipatch(_) => Err((IssueKind::WrongGeometryType, "a multipatch: layers hold points (components) or polygons (grids)".into())),
    }
}

/// Twice the signed area (shoelace): negative for a clockwise ring (y up).
pub(super) fn signed_area2(ring: &[Coord<f64>]) -> f64 {
    ring.windows(2).map(|w| w[0].x * w[1].y - w[1].x * w[0].y).sum()
}

/// Even-odd point in ring.
pub(super) fn ring_contains(ring: &[Coord<f64>], p: Coord<f64>) -> bool {
    let mut inside = false;
    for w in ring.windows(2) {
        let (a, b) = (w[0], w[1]);
        if (a.y > p.y) != (b.y > p.y) && p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x {
            inside = !inside;
        }
    }
    inside
}

/// Shapefile polygon rings → polygons: clockwise rings are outers, counter-clockwise ones holes
/// of the smallest outer that contains them (a hole in no outer becomes an outer itself; if no
/// ring is clockwise, every ring not inside another is an outer).
pub(super) fn group_rings(rings: Vec<Vec<Coord<f64>>>) -> Result<MultiPolygon<f64>, GeometryProblem> {
    if rings.is_empty() {
        return Err(invalid("a polygon without rings"));
    }
    for r in &rings {
        if r.len() < 4 {
            return Err(invalid(format!("a polygon ring of {} points; at least 4 are needed", r.len())));
        }
        if r.first() != r.last() {
            return Err(invalid("a polygon ring is not closed (its last point differs from its first)"));
        }
    }
    let areas: Vec<f64> = rings.iter().map(|r| signed_area2(r)).collect();
    let any_clockwise = areas.iter().any(|&a| a < 0.0);
    let mut is_outer: Vec<bool> = areas.iter().map(|&a| a < 0.0).collect();
    if !any_clockwise {
        // Orientation says nothing: containment decides.
        for i in 0..rings.len() {
            is_outer[i] = !(0..rings.len()).any(|j| j != i && areas[j].abs() > areas[i].abs() && ring_contains(&rings[j], rings[i][0]));
        }
    }
    let mut holes_of: Vec<Vec<usize>> = vec![Vec::new(); rings.len()];
    for i in 0..rings.len() {
        if is_outer[i] {
            continue;
        }
        let host = (0..rings.len())
            .filter(|&j| is_outer[j] && j != i && ring_contains(&rings[j], rings[i][0]))
            .min_by(|&a, &b| areas[a].abs().total_cmp(&areas[b].abs()));
        match host {
            Some(j) => holes_of[j].push(i),
            None => is_outer[i] = true,
        }
    }
    let mut rings: Vec<Option<Vec<Coord<f64>>>> = rings.into_iter().map(Some).collect();
    let mut polygons = Vec::new();
    for j in 0..rings.len() {
        if is_outer[j] {
            let exterior = LineString(rings[j].take().expect("each ring once"));
            let holes = holes_of[j].iter().map(|&h| LineString(rings[h].take().expect("each ring once"))).collect();
            polygons.push(Polygon::new(exterior, holes));
        }
    }
    Ok(MultiPolygon(polygons))
}
