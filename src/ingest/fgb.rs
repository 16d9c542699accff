//! FlatGeobuf reader for any FlatGeobuf file (not only the store's own layers): the CRS from
//! its header (`EPSG` code, else its WKT), every attribute column as text, points and
//! (multi)polygons read straight from the coordinate arrays with bounds checks. Properties go
//! through the store's checked decoder (a corrupt length is an error, never a panic).
//!
//! The `flatgeobuf` crate trusts the file's sizes, so they are checked here before it uses them:
//! an index node size of 1 (it asserts), a feature count whose index size overflows, and a
//! feature's 4-byte length (it allocates and zeroes that much at once: a 20-byte file could
//! claim 4 GiB) — the stream is watched by [`Frames`], which refuses a length over
//! [`MAX_FEATURE_BYTES`] before the crate sees it.

use std::cell::Cell;
use std::io::Read;
use std::rc::Rc;

use flatgeobuf::{FallibleStreamingIterator, FgbReader, GeometryType};
use geo_types::{Coord, Geometry, LineString, MultiPoint, MultiPolygon, Point, Polygon};

use super::{Feature, FeatureSink, Format, IngestError, IssueKind, SourceLayer, number_text};
use crate::store::fgb::{FileColumn, Prop, decode_properties};

fn unreadable(message: impl std::fmt::Display) -> IngestError {
    IngestError::Unreadable { format: Format::FlatGeobuf, message: message.to_string() }
}

type GeometryProblem = (IssueKind, String);

/// The largest feature read (a polygon of millions of vertices is a few tens of MiB).
pub const MAX_FEATURE_BYTES: u64 = 128 << 20;

/// The most features a header may announce: more would overflow the size of their index.
const MAX_FEATURES: u64 = 1 << 48;

/// What [`Frames`] and the reader share: where the features start, once known, and the
/// length refused.
#[derive(Default)]
struct FrameState {
    /// Stream offset of the first feature's length (after the header and the index).
    features_at: Cell<Option<u64>>,
    refused: Cell<Option<u64>>,
    /// Bytes passed so far.
    pos: Cell<u64>,
}

/// The stream as the crate reads it, with each feature's length prefix checked as it passes:
/// a length over [`MAX_FEATURE_BYTES`] is an error instead of bytes.
struct Frames<R> {
    inner: R,
    state: Rc<FrameState>,
    /// Offset of the next length prefix, and its bytes seen so far.
    next: Option<u64>,
    prefix: [u8; 4],
}

impl<R: Read> Read for Frames<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.state.refused.get().is_some() {
            return Err(std::io::Error::other("a feature too large"));
        }
        let n = self.inner.read(buf)?;
        let start = self.state.pos.get();
        let end = start + n as u64;
        self.state.pos.set(end);
        let mut next = self.next.or(self.state.features_at.get());
        while let Some(at) = next
            && at < end
        {
            // Length bytes at..at+4 that fall in this read.
            for i in at.max(start)..(at + 4).min(end) {
                self.prefix[(i - at) as usize] = buf[(i - start) as usize];
            }
            if at + 4 > end {
                break; // the rest of the prefix comes with the next read
            }
            let len = u64::from(u32::from_le_bytes(self.prefix));
            if len > MAX_FEATURE_BYTES {
                self.state.refused.set(Some(len));
                return Err(std::io::Error::other("a feature too large"));
            }
            next = Some(at + 4 + len);
        }
        self.next = next;
        Ok(n)
    }
}

fn invalid(message: impl Into<String>) -> GeometryProblem {
    (IssueKind::InvalidGeometry, message.into())
}

fn coords(g: &flatgeobuf::Geometry<'_>) -> Result<Vec<Coord<f64>>, GeometryProblem> {
    let xy = g.xy().ok_or_else(|| invalid("a geometry without coordinates"))?;
    if xy.len() % 2 != 0 {
        return Err(invalid("an odd number of coordinate values"));
    }
    let points: Vec<Coord<f64>> = (0..xy.len() / 2).map(|i| Coord { x: xy.get(2 * i), y: xy.get(2 * i + 1) }).collect();
    if let Some(p) = points.iter().find(|p| !(p.x.is_finite() && p.y.is_finite())) {
        return Err(invalid(format!("a coordinate is not a finite number ({}, {})", p.x, p.y)));
    }
    Ok(points)
}

fn polygon(g: &flatgeobuf::Geometry<'_>) -> Result<Polygon<f64>, GeometryProblem> {
    let points = coords(g)?;
    let n = points.len() as u32;
    let ends: Vec<u32> = g.ends().map_or_else(|| vec![n], |e| e.iter().collect());
    let mut rings = Vec::with_capacity(ends.len());
    let mut start = 0u32;
    for &end in &ends {
        if end <= start || end > n {
            return Err(invalid(format!("ring ends {ends:?} do not fit {n} points")));
        }
        let ring = &points[start as usize..end as usize];
        if ring.len() < 4 {
            return Err(invalid(format!("a polygon ring of {} points; at least 4 are needed", ring.len())));
        }
        if ring.first() != ring.last() {
            return Err(invalid("a polygon ring is not closed (its last point differs from its first)"));
        }
        rings.push(LineString(ring.to_vec()));
        start = end;
    }
    if start != n {
        return Err(invalid(format!("ring ends {ends:?} do not cover {n} points")));
    }
    let mut rings = rings.into_iter();
    let exterior = rings.next().ok_or_else(|| invalid("a polygon without rings"))?;
    Ok(Polygon::new(exterior, rings.collect()))
}

fn geometry(kind: GeometryType, g: &flatgeobuf::Geometry<'_>) -> Result<Geometry<f64>, GeometryProblem> {
    match kind {
        GeometryType::Point => match coords(g)?.as_slice() {
            [p] => Ok(Geometry::Point(Point(*p))),
            other => Err(invalid(format!("a point of {} coordinate pairs", other.len()))),
        },
        GeometryType::MultiPoint => Ok(Geometry::MultiPoint(MultiPoint(coords(g)?.into_iter().map(Point).collect()))),
        GeometryType::Polygon => Ok(Geometry::Polygon(polygon(g)?)),
        GeometryType::MultiPolygon => match g.parts() {
            Some(parts) => Ok(Geometry::MultiPolygon(MultiPolygon(parts.iter().map(|p| polygon(&p)).collect::<Result<_, _>>()?))),
            None => Ok(Geometry::MultiPolygon(MultiPolygon(vec![polygon(g)?]))),
        },
        other => Err((IssueKind::WrongGeometryType, format!("a {other:?}: layers hold points (components) or polygons (grids)"))),
    }
}

/// Reads every feature of a FlatGeobuf stream (the spatial index, if any, is skipped).
pub fn read(reader: impl Read, sink: &mut dyn FeatureSink) -> Result<SourceLayer, IngestError> {
    let state = Rc::new(FrameState::default());
    let frames = Frames { inner: reader, state: state.clone(), next: None, prefix: [0; 4] };
    let fgb = FgbReader::open(frames).map_err(unreadable)?;
    let header = fgb.header();
    let announced = header.features_count();
    if announced > MAX_FEATURES {
        return Err(unreadable(format!("the header announces {announced} features")));
    }
    let index_size = match header.index_node_size() {
        0 => 0,
        _ if announced == 0 => 0,
        1 => return Err(unreadable("the header gives an index node size of 1 (at least 2)")),
        node_size => flatgeobuf::packed_r_tree::PackedRTree::index_size(announced as usize, node_size) as u64,
    };
    // The crate has read the magic (8 bytes), the header's length (4) and the header, no more.
    state.features_at.set(Some(state.pos.get() + index_size));
    let mut layer = SourceLayer::new(Format::FlatGeobuf);
    if let Some(crs) = header.crs() {
        let epsg = crs.org().is_none_or(|o| o.eq_ignore_ascii_case("EPSG"));
        layer.declared_crs = match (crs.code(), crs.wkt()) {
            (code, _) if code > 0 && epsg => Some(format!("EPSG:{code}")),
            (_, Some(wkt)) if !wkt.trim().is_empty() => Some(wkt.to_owned()),
            (code, _) if code > 0 => Some(format!("{}:{code}", crs.org().unwrap_or("?"))),
            _ => None,
        };
    }
    let columns: Vec<FileColumn> = header
        .columns()
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| {
            layer.columns.push(c.name().to_owned());
            FileColumn { kind: c.type_(), slot: Some(i) }
        })
        .collect();
    let header_kind = header.geometry_type();
    let mut features = fgb.select_all_seq().map_err(unreadable)?;
    let mut index = 0u64;
    while let Some(feature) = features.next().map_err(|e| unreadable(format!("feature {index}: {e}")))? {
        let fbs = feature.fbs_feature();
        let mut values = vec![None; columns.len()];
        if let Some(props) = fbs.properties() {
            decode_properties(props.bytes(), &columns, |slot, value| {
                values[slot] = match value {
                    Prop::Str(s) => Some(s.to_owned()),
                    Prop::Int(n) => Some(n.to_string()),
                    Prop::Float(f) => Some(number_text(f)),
                    Prop::Other => None,
                }
            })
            .map_err(|e| unreadable(format!("feature {index}: {e}")))?;
        }
        let result = match fbs.geometry() {
            None => Err(invalid("the feature has no geometry")),
            Some(g) => {
                let kind = if header_kind == GeometryType::Unknown { g.type_() } else { header_kind };
                geometry(kind, &g)
            }
        };
        let (geometry, problem) = match result {
            Ok(g) => (Some(g), None),
            Err(p) => (None, Some(p)),
        };
        sink.feature(&layer, Feature { index, line: None, geometry, problem, values })?;
        index += 1;
    }
    if let Some(len) = state.refused.get() {
        return Err(unreadable(format!("feature {index} is {len} bytes long, more than the limit of {MAX_FEATURE_BYTES}")));
    }
    if announced != 0 && announced != index {
        return Err(unreadable(format!("the header announces {announced} features but the file holds {index} (truncated?)")));
    }
    Ok(layer)
}
