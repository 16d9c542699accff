//! GeoJSON readers: a FeatureCollection (streamed feature by feature: the document is never
//! held as a JSON tree) and newline-delimited GeoJSON (one Feature per line, RFC 8142 RS
//! characters allowed).
//!
//! The `crs` member of the (2008) GeoJSON spec is honoured: `{"type": "name", "properties":
//! {"name": "urn:ogc:def:crs:EPSG::4549"}}` (or `EPSG:4549`, `…OGC:1.3:CRS84`). Coordinates are
//! easting first (lon, lat / easting, northing) whatever the CRS, as GeoJSON and GDAL write them.

use std::collections::HashMap;
use std::fmt;
use std::io::BufRead;

use geo_types::{Coord, Geometry, LineString, MultiPoint, MultiPolygon, Point, Polygon};
use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::{Feature, FeatureSink, Format, IngestError, IssueKind, SourceLayer, number_text};

/// The most different property names a file may use: a layer has a few dozen columns, and
/// each new name costs every later feature a slot.
const MAX_COLUMNS: usize = 10_000;

/// One Feature as parsed; the geometry stays a (small) JSON value until converted with checks.
#[derive(Deserialize)]
struct RawFeature {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    geometry: Option<Value>,
    #[serde(default)]
    properties: Option<serde_json::Map<String, Value>>,
}

/// Hands the features to the sink one by one, growing the layer's columns as properties are
/// first seen.
struct Collector<'s> {
    layer: SourceLayer,
    column_of: HashMap<String, usize>,
    sink: &'s mut dyn FeatureSink,
    count: u64,
    /// The sink's refusal, kept while serde unwinds with a placeholder error.
    stopped: Option<IngestError>,
}

impl<'s> Collector<'s> {
    fn new(format: Format, sink: &'s mut dyn FeatureSink) -> Collector<'s> {
        Collector { layer: SourceLayer::new(format), column_of: HashMap::new(), sink, count: 0, stopped: None }
    }

    /// The sink's refusal, if it stopped the reading, else `e` as an unreadable file.
    fn error(&mut self, e: impl fmt::Display) -> IngestError {
        self.stopped.take().unwrap_or_else(|| unreadable(self.layer.format, e))
    }

    fn push(&mut self, raw: RawFeature, line: Option<u64>) -> Result<(), IngestError> {
        let index = self.count;
        self.count += 1;
        let mut values = Vec::new();
        for (name, value) in raw.properties.into_iter().flatten() {
            let column = match self.column_of.get(&name) {
                Some(&c) => c,
                None => {
                    let c = self.layer.columns.len();
                    if c >= MAX_COLUMNS {
                        return Err(unreadable(
                            self.layer.format,
                            format!("more than {MAX_COLUMNS} different property names: not a layer of grids or components"),
                        ));
                    }
                    self.layer.columns.push(name.clone());
                    self.column_of.insert(name, c);
                    c
                }
            };
            if values.len() <= column {
                values.resize(column + 1, None);
            }
            values[column] = value_text(value);
        }
        let (geometry, problem) = match raw.geometry {
            None | Some(Value::Null) => (None, Some((IssueKind::InvalidGeometry, "the feature has no geometry".to_owned()))),
            Some(g) => match geometry(&g) {
                Ok(g) => (Some(g), None),
                Err((kind, message)) => (None, Some((kind, message))),
            },
        };
        self.sink.feature(&self.layer, Feature { index, line, geometry, problem, values })
    }

    /// [`Collector::push`] inside serde: a refusal is stashed and serde gets a placeholder.
    fn push_de<E: serde::de::Error>(&mut self, raw: RawFeature) -> Result<(), E> {
        self.push(raw, None).map_err(|e| {
            self.stopped = Some(e);
            E::custom("stopped by the sink")
        })
    }
}

fn value_text(value: Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => number_text(f),
            _ => n.to_string(),
        }),
        other => Some(other.to_string()),
    }
}

/// The CRS text of a GeoJSON `crs` member, for [`crate::crs::Crs::parse`].
fn crs_text(member: &Value) -> Option<String> {
    let props = member.get("properties")?;
    if let Some(code) = props.get("code").and_then(Value::as_u64) {
        return Some(format!("EPSG:{code}"));
    }
    let name = props.get("name")?.as_str()?.trim();
    let upper = name.to_ascii_uppercase();
    if upper.ends_with("CRS84") {
        return Some("wgs84".into());
    }
    // urn:ogc:def:crs:EPSG::4549, urn:ogc:def:crs:EPSG:9.8:4549, EPSG:4549
    if let Some(pos) = upper.find("EPSG:") {
        let code = upper[pos + 5..].rsplit(':').next().unwrap_or("");
        if !code.is_empty() && code.bytes().all(|b| b.is_ascii_digit()) {
            return Some(format!("EPSG:{code}"));
        }
    }
    Some(name.to_owned())
}

type GeometryProblem = (IssueKind, String);

fn invalid(message: impl Into<String>) -> GeometryProblem {
    (IssueKind::InvalidGeometry, message.into())
}

fn position(v: &Value) -> Result<Coord<f64>, GeometryProblem> {
    let a = v.as_array().ok_or_else(|| invalid(format!("a position must be an array of numbers, not {v}")))?;
    match (a.first().and_then(Value::as_f64), a.get(1).and_then(Value::as_f64)) {
        (Some(x), Some(y)) if x.is_finite() && y.is_finite() => Ok(Coord { x, y }),
        _ => Err(invalid(format!("a position needs two finite numbers, not {v}"))),
    }
}

fn positions(v: &Value) -> Result<Vec<Coord<f64>>, GeometryProblem> {
    v.as_array().ok_or_else(|| invalid("positions must be an array"))?.iter().map(position).collect()
}

/// A polygon ring: at least 4 positions, the last equal to the first.
fn ring(v: &Value) -> Result<LineString<f64>, GeometryProblem> {
    let points = positions(v)?;
    if points.len() < 4 {
        return Err(invalid(format!("a polygon ring of {} positions; at least 4 are needed", points.len())));
    }
    if points.first() != points.last() {
        return Err(invalid("a polygon ring is not closed (its last position differs from its first)"));
    }
    Ok(LineString(points))
}

fn polygon(v: &Value) -> Result<Polygon<f64>, GeometryProblem> {
    let rings = v.as_array().ok_or_else(|| invalid("polygon coordinates must be an array of rings"))?;
    let mut rings = rings.iter().map(ring);
    let exterior = rings.next().ok_or_else(|| invalid("a polygon without rings"))??;
    Ok(Polygon::new(exterior, rings.collect::<Result<_, _>>()?))
}

fn geometry(g: &Value) -> Result<Geometry<f64>, GeometryProblem> {
    let kind = g.get("type").and_then(Value::as_str).unwrap_or("");
    let c = g.get("coordinates").unwrap_or(&Value::Null);
    match kind {
        "Point" => Ok(Geometry::Point(Point(position(c)?))),
        "MultiPoint" => Ok(Geometry::MultiPoint(MultiPoint(positions(c)?.into_iter().map(Point).collect()))),
        "Polygon" => Ok(Geometry::Polygon(polygon(c)?)),
        "MultiPolygon" => {
            let parts = c.as_array().ok_or_else(|| invalid("multipolygon coordinates must be an array"))?;
            Ok(Geometry::MultiPolygon(MultiPolygon(parts.iter().map(polygon).collect::<Result<_, _>>()?)))
        }
        "" => Err(invalid("a geometry without a type")),
        other => Err((IssueKind::WrongGeometryType, format!("a {other}: layers hold points (components) or polygons (grids)"))),
    }
}

/// The `features` array, each element handed to the collector as it is parsed.
struct Features<'a, 's>(&'a mut Collector<'s>);

impl<'de> DeserializeSeed<'de> for Features<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Features<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of GeoJSON Features")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(raw) = seq.next_element::<RawFeature>()? {
            if raw.kind != "Feature" {
                return Err(serde::de::Error::custom(format!("a {} in features; expected a Feature", raw.kind)));
            }
            self.0.push_de(raw)?;
        }
        Ok(())
    }
}

/// The top-level object: a FeatureCollection (streamed) or a single Feature.
struct Document<'a, 's>(&'a mut Collector<'s>);

impl<'de> Visitor<'de> for Document<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a GeoJSON FeatureCollection or Feature")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (mut kind, mut geometry, mut properties, mut has_features) = (None, None, None, false);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "type" => kind = Some(map.next_value::<String>()?),
                "crs" => self.0.layer.declared_crs = crs_text(&map.next_value::<Value>()?),
                "features" => {
                    map.next_value_seed(Features(self.0))?;
                    has_features = true;
                }
                "geometry" => geometry = map.next_value::<Option<Value>>()?,
                "properties" => properties = map.next_value::<Option<serde_json::Map<String, Value>>>()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        match kind.as_deref() {
            Some("FeatureCollection") if has_features => Ok(()),
            Some("FeatureCollection") => Err(serde::de::Error::custom("a FeatureCollection without features")),
            Some("Feature") => self.0.push_de(RawFeature { kind: "Feature".into(), geometry, properties }),
            Some(other) => Err(serde::de::Error::custom(format!("a GeoJSON {other}; expected a FeatureCollection"))),
            None => Err(serde::de::Error::custom("an object without \"type\"; expected a FeatureCollection")),
        }
    }
}

fn unreadable(format: Format, message: impl fmt::Display) -> IngestError {
    IngestError::Unreadable { format, message: message.to_string() }
}

/// Reads a FeatureCollection (or one Feature), streaming the `features` array.
pub fn read_collection(reader: impl BufRead, sink: &mut dyn FeatureSink) -> Result<SourceLayer, IngestError> {
    let mut collector = Collector::new(Format::GeoJson, sink);
    let mut de = serde_json::Deserializer::from_reader(SkipBom::new(reader));
    if let Err(e) = de.deserialize_map(Document(&mut collector)) {
        return Err(collector.error(e));
    }
    de.end().map_err(|e| unreadable(Format::GeoJson, e))?;
    Ok(collector.layer)
}

/// Reads newline-delimited GeoJSON: one Feature per line; blank lines skipped. A line that is
/// not a Feature (e.g. cut short) makes the whole file unreadable.
pub fn read_lines(mut reader: impl BufRead, sink: &mut dyn FeatureSink) -> Result<SourceLayer, IngestError> {
    let format = Format::GeoJsonLines;
    let mut collector = Collector::new(format, sink);
    let mut line = String::new();
    let mut number = 0u64;
    loop {
        line.clear();
        let n = reader.read_line(&mut line).map_err(|e| unreadable(format, format!("line {}: {e}", number + 1)))?;
        if n == 0 {
            break;
        }
        number += 1;
        let text = line.trim_start_matches(['\u{feff}', '\u{1e}']).trim();
        if text.is_empty() {
            continue;
        }
        let raw: RawFeature = serde_json::from_str(text).map_err(|e| unreadable(format, format!("line {number}: {e}")))?;
        if raw.kind != "Feature" {
            return Err(unreadable(format, format!("line {number}: a {}; expected one Feature per line", raw.kind)));
        }
        collector.push(raw, Some(number))?;
    }
    Ok(collector.layer)
}

/// Skips a UTF-8 byte order mark at the start (Windows tools write one).
struct SkipBom<R> {
    inner: R,
    checked: bool,
}

impl<R: BufRead> SkipBom<R> {
    fn new(inner: R) -> SkipBom<R> {
        SkipBom { inner, checked: false }
    }
}

impl<R: BufRead> std::io::Read for SkipBom<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.checked {
            self.checked = true;
            if self.inner.fill_buf()?.starts_with(b"\xEF\xBB\xBF") {
                self.inner.consume(3);
            }
        }
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::collect;

    const COLLECTION: &str = r#"{"type": "FeatureCollection",
      "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::4549"}},
      "features": [
        {"type": "Feature", "properties": {"code": 3205060118000001, "名称": "路灯", "x": 1.0, "n": null},
         "geometry": {"type": "Point", "coordinates": [557140.955, 3461065.011]}},
        {"type": "Feature", "properties": {"code": "32050600100101"},
         "geometry": {"type": "Polygon", "coordinates": [[[0,0],[1,0],[1,1],[0,0.5]]]}},
        {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [[[0,0],[1,0],[0,0]]]}},
        {"type": "Feature", "properties": {}, "geometry": {"type": "LineString", "coordinates": [[0,0],[1,0]]}},
        {"type": "Feature", "properties": {}, "geometry": null}
      ]}"#;

    #[test]
    fn a_collection_streams_with_its_crs_attributes_and_geometry_problems() {
        let layer = collect(|s| read_collection(COLLECTION.as_bytes(), s)).unwrap();
        assert_eq!(layer.declared_crs.as_deref(), Some("EPSG:4549"));
        let mut columns = layer.columns.clone();
        columns.sort();
        assert_eq!(columns, ["code", "n", "x", "名称"]);
        let col = |name: &str| layer.columns.iter().position(|c| c == name).unwrap();
        let f = &layer.features;
        assert_eq!(f.len(), 5);
        assert_eq!(
            (f[0].value(col("code")), f[0].value(col("名称")), f[0].value(col("x")), f[0].value(col("n"))),
            (Some("3205060118000001"), Some("路灯"), Some("1"), None)
        );
        assert_eq!(f[0].geometry, Some(Geometry::Point(Point::new(557140.955, 3461065.011))));
        let problem = |i: usize| f[i].problem.as_ref().map(|(k, m)| (*k, m.clone()));
        assert!(problem(1).unwrap().1.contains("not closed"), "{:?}", problem(1));
        assert!(problem(2).unwrap().1.contains("at least 4"));
        assert_eq!(problem(3).unwrap().0, IssueKind::WrongGeometryType);
        assert!(problem(4).unwrap().1.contains("no geometry"));
    }

    #[test]
    fn truncated_or_wrong_documents_are_unreadable() {
        for cut in [10, COLLECTION.len() / 2, COLLECTION.len() - 2] {
            let e = collect(|s| read_collection(&COLLECTION.as_bytes()[..cut], s)).unwrap_err();
            assert!(matches!(e, IngestError::Unreadable { .. }), "{cut}: {e}");
        }
        for text in [r#"{"type": "Topology"}"#, r#"[1, 2]"#, r#"{"type": "FeatureCollection"}"#, "{} {}"] {
            assert!(collect(|s| read_collection(text.as_bytes(), s)).is_err(), "{text}");
        }
    }

    #[test]
    fn lines_are_features_with_their_line_numbers() {
        let text = "\u{feff}{\"type\":\"Feature\",\"properties\":{\"code\":\"a\"},\"geometry\":{\"type\":\"Point\",\"coordinates\":[120.1,31.2]}}\n\n\u{1e}{\"type\":\"Feature\",\"properties\":{\"code\":\"b\"},\"geometry\":{\"type\":\"Point\",\"coordinates\":[120.2,31.3]}}\n";
        let layer = collect(|s| read_lines(text.as_bytes(), s)).unwrap();
        assert_eq!(layer.features.iter().map(|f| f.line).collect::<Vec<_>>(), [Some(1), Some(3)]);
        assert_eq!(layer.features[1].value(0), Some("b"));
        let e = collect(|s| read_lines(&text.as_bytes()[..text.len() - 10], s)).unwrap_err().to_string();
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn crs_members_in_their_usual_spellings() {
        let m = |name: &str| crs_text(&serde_json::json!({"type": "name", "properties": {"name": name}}));
        assert_eq!(m("urn:ogc:def:crs:EPSG::4549").as_deref(), Some("EPSG:4549"));
        assert_eq!(m("EPSG:4490").as_deref(), Some("EPSG:4490"));
        assert_eq!(m("urn:ogc:def:crs:OGC:1.3:CRS84").as_deref(), Some("wgs84"));
        assert_eq!(crs_text(&serde_json::json!({"type": "EPSG", "properties": {"code": 4326}})).as_deref(), Some("EPSG:4326"));
    }

    #[test]
    fn a_file_of_ever_new_property_names_is_not_a_layer() {
        let props: Vec<String> = (0..=MAX_COLUMNS).map(|i| format!("\"p{i}\": {i}")).collect();
        let text = format!(r#"{{"type": "Feature", "properties": {{{}}}, "geometry": null}}"#, props.join(", "));
        let e = collect(|s| read_lines(text.as_bytes(), s)).unwrap_err().to_string();
        assert!(e.contains("different property names"), "{e}");
    }
}
