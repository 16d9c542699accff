//! Layer files as FlatGeobuf (EPSG:4326, with the packed Hilbert R-tree), with plain field
//! names GIS tools show as they are.
//!
//! grids (MultiPolygon): `code, name, level (1 = top), parent, unit, chief_name, chief_phone,
//! valid_from, valid_to`; components (Point): `code, class, name, dept, owner, maintainer,
//! status (完好/破损/丢失/占用), grid, created, updated, accuracy (A/B/C)`. Dates are FlatGeobuf
//! DateTime columns holding ISO `YYYY-MM-DD`. Empty values are left out (null).
//!
//! Writing goes feature by feature through [`FgbWriter`]; the file holds nothing but the city
//! (no timestamps), and features go in city order, so one city always gives the same bytes.
//!
//! Reading does not use flatgeobuf's property decoder: it slices the property bytes without
//! bounds checks and panics on a corrupt length. [`decode_properties`] does the same walk with
//! checks, maps file columns to fields by position (names are matched once per file, not per
//! feature) and borrows the strings from the feature buffer, so a component costs no allocation
//! here. Geometries are read straight from the feature's coordinate arrays, also checked.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufReader, Write};
use std::path::Path;

use chrono::{Datelike, NaiveDate};
use flatgeobuf::{ColumnType, FallibleStreamingIterator, FgbCrs, FgbReader, FgbWriter, FgbWriterOptions, GeometryType};
use geo_types::{Coord, LineString, MultiPolygon, Polygon};
use geozero::{ColumnValue, PropertyProcessor};

use super::StoreError;
use crate::model::{City, CityBuilder, ComponentFields, GridFields, UnitId};

/// One attribute column of a layer.
struct Col {
    name: &'static str,
    kind: ColumnType,
    description: &'static str,
}

const fn col(name: &'static str, kind: ColumnType, description: &'static str) -> Col {
    Col { name, kind, description }
}

const GRID_COLUMNS: [Col; 9] = [
    col("code", ColumnType::String, "grid code (网格编码), digits per the city's hierarchy"),
    col("name", ColumnType::String, "grid name"),
    col("level", ColumnType::Int, "level in the hierarchy, 1 = top (district)"),
    col("parent", ColumnType::String, "code of the enclosing grid one level up; null at the top"),
    col("unit", ColumnType::String, "responsible unit (责任单位), by name"),
    col("chief_name", ColumnType::String, "grid chief (网格长)"),
    col("chief_phone", ColumnType::String, "grid chief's phone"),
    col("valid_from", ColumnType::DateTime, "first day in force, YYYY-MM-DD"),
    col("valid_to", ColumnType::DateTime, "last day in force, YYYY-MM-DD"),
];

const COMPONENT_COLUMNS: [Col; 11] = [
    col("code", ColumnType::String, "component code (部件标识码), 16 digits"),
    col("class", ColumnType::String, "class code (部件分类), 4 digits"),
    col("name", ColumnType::String, "name (名称)"),
    col("dept", ColumnType::String, "competent department (主管部门), by name"),
    col("owner", ColumnType::String, "owner (权属单位), by name"),
    col("maintainer", ColumnType::String, "maintainer (养护单位), by name"),
    col("status", ColumnType::String, "status: 完好, 破损, 丢失 or 占用"),
    col("grid", ColumnType::String, "unit grid code (所在单元网格) as recorded"),
    col("created", ColumnType::DateTime, "initial date (初始日期), YYYY-MM-DD"),
    col("updated", ColumnType::DateTime, "change date (变更日期), YYYY-MM-DD"),
    col("accuracy", ColumnType::String, "positional accuracy class: A, B or C"),
];

const ZONE_COLUMNS: [Col; 4] = [
    col("layer", ColumnType::String, "zone layer, e.g. roads or rivers"),
    col("id", ColumnType::String, "zone id, unique within its layer"),
    col("name", ColumnType::String, "zone name"),
    col("unit", ColumnType::String, "the unit that looks after it, by name"),
];

/// Title and description written into a layer's header.
pub(super) struct LayerText<'a> {
    pub title: &'a str,
    pub description: &'a str,
}

fn writer<'a>(name: &str, geometry: GeometryType, columns: &[Col], text: &LayerText<'a>) -> Result<FgbWriter<'a>, String> {
    let options = FgbWriterOptions {
        write_index: true,
        detect_type: false,
        promote_to_multi: true,
        crs: FgbCrs { org: Some("EPSG"), code: 4326, name: Some("WGS 84"), ..Default::default() },
        title: Some(text.title),
        description: Some(text.description),
        ..Default::default()
    };
    let mut fgb = FgbWriter::create_with_options(name, geometry, options).map_err(|e| e.to_string())?;
    for c in columns {
        fgb.add_column(c.name, c.kind, |fbb, args| {
            args.nullable = true;
            args.description = Some(fbb.create_string(c.description));
        });
    }
    Ok(fgb)
}

/// One property to write; empty strings and `None` are left out (null).
enum Value<'a> {
    Str(&'a str),
    Date(&'a str),
    Int(i32),
}

fn put(feat: &mut impl PropertyProcessor, columns: &[Col], values: &[Value<'_>]) -> Result<(), String> {
    for (i, (value, c)) in values.iter().zip(columns).enumerate() {
        let v = match *value {
            Value::Str("") | Value::Date("") => continue,
            Value::Str(s) => ColumnValue::String(s),
            Value::Date(s) => ColumnValue::DateTime(s),
            Value::Int(n) => ColumnValue::Int(n),
        };
        feat.property(i, c.name, &v).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Writes `YYYY-MM-DD` (or nothing) into a reused buffer.
fn put_date(buf: &mut String, d: Option<NaiveDate>) {
    buf.clear();
    if let Some(d) = d {
        write!(buf, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day()).expect("writing to a String");
    }
}

pub(super) fn write_grids(w: &mut dyn Write, city: &City, text: &LayerText<'_>) -> Result<(), String> {
    let mut fgb = writer("grids", GeometryType::MultiPolygon, &GRID_COLUMNS, text)?;
    let (mut from, mut to) = (String::new(), String::new());
    for g in &city.grids {
        let code = g.code.to_string();
        let parent = g.parent.map(|p| city.grid(p).code.to_string()).unwrap_or_default();
        let unit = g.unit.map(|u| city.units.get(u).name.as_str()).unwrap_or("");
        let (chief_name, chief_phone) = g.chief.as_ref().map_or(("", ""), |c| (c.name.as_str(), c.phone.as_str()));
        put_date(&mut from, g.valid_from);
        put_date(&mut to, g.valid_to);
        let values = [
            Value::Str(&code),
            Value::Str(&g.name),
            Value::Int(i32::from(g.level) + 1),
            Value::Str(&parent),
            Value::Str(unit),
            Value::Str(chief_name),
            Value::Str(chief_phone),
            Value::Date(&from),
            Value::Date(&to),
        ];
        let geometry = geo_types::Geometry::MultiPolygon(g.geometry.clone());
        let mut result = Ok(());
        fgb.add_feature_geom(geometry, |feat| result = put(feat, &GRID_COLUMNS, &values)).map_err(|e| format!("grid {code}: {e}"))?;
        result.map_err(|e| format!("grid {code}: {e}"))?;
    }
    fgb.write(w).map_err(|e| e.to_string())
}

/// Responsibility polygons of all zone layers, one file.
pub(super) fn write_zones(w: &mut dyn Write, city: &City) -> Result<(), String> {
    let text = LayerText {
        title: "responsibility polygons (责任区)",
        description: "citygrid zone layer: road sections, river segments... Fields: layer, id, name, unit (name).",
    };
    let mut fgb = writer("zones", GeometryType::MultiPolygon, &ZONE_COLUMNS, &text)?;
    for z in &city.zones {
        let unit = z.unit.map(|u| city.units.get(u).name.as_str()).unwrap_or("");
        let values = [Value::Str(&z.layer), Value::Str(&z.id), Value::Str(&z.name), Value::Str(unit)];
        let geometry = geo_types::Geometry::MultiPolygon(z.geometry.clone());
        let mut result = Ok(());
        fgb.add_feature_geom(geometry, |feat| result = put(feat, &ZONE_COLUMNS, &values)).map_err(|e| format!("zone {}:{}: {e}", z.layer, z.id))?;
        result.map_err(|e| format!("zone {}:{}: {e}", z.layer, z.id))?;
    }
    fgb.write(w).map_err(|e| e.to_string())
}

pub(super) fn read_zones(path: &Path, manifest_count: Option<u64>, builder: &mut CityBuilder) -> Result<(), StoreError> {
    let layer = open(path, "zone", &[GeometryType::MultiPolygon, GeometryType::Polygon], &ZONE_COLUMNS)?;
    let columns = layer.columns;
    let mut features = layer.reader.select_all_seq().map_err(|e| layer_error(path, e.to_string()))?;
    let mut n = 0u64;
    while let Some(feature) = features.next().map_err(|e| layer_error(path, format!("feature {n}: {e}")))? {
        let bad = |message: String| layer_error(path, format!("feature {n}: {message}"));
        let fbs = feature.fbs_feature();
        let mut s = [""; ZONE_COLUMNS.len()];
        if let Some(props) = fbs.properties() {
            decode_properties(props.bytes(), &columns, |slot, value| {
                if let Prop::Str(v) = value {
                    s[slot] = v;
                }
            })
            .map_err(&bad)?;
        }
        let geometry = fbs.geometry().ok_or_else(|| bad(format!("zone {}:{}: no geometry", s[0], s[1])))?;
        let geometry = multipolygon(&geometry).map_err(|e| bad(format!("zone {}:{}: {e}", s[0], s[1])))?;
        builder.add_zone(s[0], s[1], s[2], s[3], geometry).map_err(|source| StoreError::Feature { path: path.into(), feature: n, source })?;
        n += 1;
    }
    check_count(path, n, layer.count, manifest_count)
}

pub(super) fn write_components(w: &mut dyn Write, city: &City, text: &LayerText<'_>, progress: &dyn Fn(u64)) -> Result<(), String> {
    let mut fgb = writer("components", GeometryType::Point, &COMPONENT_COLUMNS, text)?;
    let unit = |u: Option<UnitId>| u.map(|u| city.units.get(u).name.as_str()).unwrap_or("");
    // Reused buffers: no allocation per component.
    let (mut code, mut class, mut grid) = (String::new(), String::new(), String::new());
    let (mut created, mut updated) = (String::new(), String::new());
    for (i, c) in city.components.iter().enumerate() {
        code.clear();
        write!(code, "{}", c.code).expect("writing to a String");
        class.clear();
        write!(class, "{}", c.class).expect("writing to a String");
        grid.clear();
        if let Some(g) = c.grid.map(|g| city.grid(g).code).or_else(|| city.recorded_grid_code(i)) {
            write!(grid, "{g}").expect("writing to a String");
        }
        put_date(&mut created, c.created);
        put_date(&mut updated, c.updated);
        let values = [
            Value::Str(&code),
            Value::Str(&class),
            Value::Str(city.names.get(c.name)),
            Value::Str(unit(c.dept)),
            Value::Str(unit(c.owner)),
            Value::Str(unit(c.maintainer)),
            Value::Str(c.status.zh()),
            Value::Str(&grid),
            Value::Date(&created),
            Value::Date(&updated),
            Value::Str(c.accuracy.map_or("", |a| a.as_str())),
        ];
        let point = geo_types::Geometry::Point(geo_types::Point(c.location));
        let mut result = Ok(());
        fgb.add_feature_geom(point, |feat| result = put(feat, &COMPONENT_COLUMNS, &values)).map_err(|e| format!("component {code}: {e}"))?;
        result.map_err(|e| format!("component {code}: {e}"))?;
        if i % 65_536 == 0 {
            progress(i as u64);
        }
    }
    fgb.write(w).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// Streaming (downloads of the OGC API)

/// The attribute columns of a streamed layer: the stored layers' columns, by the same names
/// and types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Schema {
    Grids,
    Components,
    Zones,
}

impl Schema {
    fn columns(self) -> &'static [Col] {
        match self {
            Schema::Grids => &GRID_COLUMNS,
            Schema::Components => &COMPONENT_COLUMNS,
            Schema::Zones => &ZONE_COLUMNS,
        }
    }

    fn geometry(self) -> GeometryType {
        match self {
            Schema::Components => GeometryType::Point,
            Schema::Grids | Schema::Zones => GeometryType::MultiPolygon,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Schema::Grids => "grids",
            Schema::Components => "components",
            Schema::Zones => "zones",
        }
    }
}

/// One property of a streamed feature; empty strings and dates are left out (null), as in the
/// stored layers.
pub(crate) enum StreamValue<'a> {
    Str(&'a str),
    /// `YYYY-MM-DD`, in a DateTime column.
    Date(&'a str),
    Int(i32),
}

/// The start of a FlatGeobuf written as it goes: the magic bytes and a header declaring
/// `count` features and no spatial index (`index_node_size` 0, which FlatGeobuf allows: the
/// index needs every feature before the first can be written) and no envelope (optional).
/// `crs`: an EPSG code, or `None` with a name for a CRS without one (GCJ-02, BD-09).
pub(crate) fn stream_header(schema: Schema, epsg: Option<u32>, crs_name: &str, count: u64, title: &str, description: &str) -> Vec<u8> {
    use flatgeobuf::{Column, ColumnArgs, Crs, CrsArgs, Header, HeaderArgs};
    let mut fbb = flatbuffers::FlatBufferBuilder::new();
    let columns: Vec<_> = schema
        .columns()
        .iter()
        .map(|c| {
            let args = ColumnArgs {
                name: Some(fbb.create_string(c.name)),
                type_: c.kind,
                description: Some(fbb.create_string(c.description)),
                nullable: true,
                ..Default::default()
            };
            Column::create(&mut fbb, &args)
        })
        .collect();
    let columns = fbb.create_vector(&columns);
    let crs_args = CrsArgs {
        org: epsg.map(|_| fbb.create_string("EPSG")),
        code: epsg.map_or(0, |c| c as i32),
        name: Some(fbb.create_string(crs_name)),
        ..Default::default()
    };
    let crs = Crs::create(&mut fbb, &crs_args);
    let args = HeaderArgs {
        name: Some(fbb.create_string(schema.name())),
        geometry_type: schema.geometry(),
        columns: Some(columns),
        features_count: count,
        index_node_size: 0,
        crs: Some(crs),
        title: Some(fbb.create_string(title)),
        description: Some(fbb.create_string(description)),
        ..Default::default()
    };
    let header = Header::create(&mut fbb, &args);
    fbb.finish_size_prefixed(header, None);
    let mut out = vec![b'f', b'g', b'b', flatgeobuf::VERSION, b'f', b'g', b'b', 0];
    out.extend_from_slice(fbb.finished_data());
    out
}

/// Features of a streamed FlatGeobuf, encoded by flatgeobuf's own writer a chunk at a time:
/// [`FeatureChunk::take`] gives the encoded features added since the last take, to follow
/// [`stream_header`] (the writer's own header for the chunk is cut off).
pub(crate) struct FeatureChunk {
    schema: Schema,
    fgb: Option<FgbWriter<'static>>,
}

impl FeatureChunk {
    pub fn new(schema: Schema) -> FeatureChunk {
        FeatureChunk { schema, fgb: None }
    }

    /// Adds a feature: a geometry in the output CRS (x east, y north) and its values, one per
    /// column of the schema, in order.
    pub fn add(&mut self, geometry: geo_types::Geometry<f64>, values: &[StreamValue<'_>]) -> Result<(), String> {
        let fgb = match &mut self.fgb {
            Some(fgb) => fgb,
            none => {
                let options = FgbWriterOptions { write_index: false, detect_type: false, promote_to_multi: true, ..Default::default() };
                none.insert(FgbWriter::create_with_options(self.schema.name(), self.schema.geometry(), options).map_err(|e| e.to_string())?)
            }
        };
        let columns = self.schema.columns();
        let values: Vec<Value<'_>> = values
            .iter()
            .map(|v| match *v {
                StreamValue::Str(s) => Value::Str(s),
                StreamValue::Date(s) => Value::Date(s),
                StreamValue::Int(n) => Value::Int(n),
            })
            .collect();
        let mut result = Ok(());
        fgb.add_feature_geom(geometry, |feat| result = put(feat, columns, &values)).map_err(|e| e.to_string())?;
        result
    }

    /// The features added since the last take, encoded; empty if none.
    pub fn take(&mut self) -> Result<Vec<u8>, String> {
        let Some(fgb) = self.fgb.take() else { return Ok(Vec::new()) };
        let mut file = Vec::new();
        fgb.write(&mut file).map_err(|e| e.to_string())?;
        // Magic bytes, then the size-prefixed header: the features follow.
        let size = file.get(8..12).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize).ok_or("no header")?;
        let start = 12 + size;
        if file.len() < start {
            return Err("short chunk".into());
        }
        file.drain(..start);
        Ok(file)
    }
}

// ---------------------------------------------------------------------------------------------
// Reading

/// A column of the file being read: its type and the field it fills, if any.
#[derive(Clone, Copy)]
pub(crate) struct FileColumn {
    pub kind: ColumnType,
    pub slot: Option<usize>,
}

/// A decoded property value of a wanted column.
pub(crate) enum Prop<'a> {
    Str(&'a str),
    Int(i64),
    Float(f64),
    Other,
}

fn take<'a>(bytes: &'a [u8], at: &mut usize, n: usize) -> Result<&'a [u8], String> {
    let end = at
        .checked_add(n)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| format!("property data ends early (needs {n} bytes at offset {at} of {})", bytes.len()))?;
    let s = &bytes[*at..end];
    *at = end;
    Ok(s)
}

fn take_array<const N: usize>(bytes: &[u8], at: &mut usize) -> Result<[u8; N], String> {
    Ok(take(bytes, at, N)?.try_into().expect("N bytes"))
}

/// Walks a feature's property bytes (`u16` column index, then the value) with bounds checks and
/// hands each value of a wanted column to `put(slot, value)`, borrowed from `bytes`. Also the
/// property decoder of any FlatGeobuf file imported (`crate::ingest::fgb`).
pub(crate) fn decode_properties<'a>(bytes: &'a [u8], columns: &[FileColumn], mut put: impl FnMut(usize, Prop<'a>)) -> Result<(), String> {
    let mut at = 0;
    // Like flatgeobuf's reader, tolerate one trailing byte (some writers leave one after Binary).
    while at + 1 < bytes.len() {
        let idx = u16::from_le_bytes(take_array(bytes, &mut at)?) as usize;
        let col = columns.get(idx).ok_or_else(|| format!("a property of column {idx}, but the header declares {} columns", columns.len()))?;
        let value = match col.kind {
            ColumnType::Byte => Prop::Int(i8::from_le_bytes(take_array(bytes, &mut at)?).into()),
            ColumnType::UByte | ColumnType::Bool => Prop::Int(u8::from_le_bytes(take_array(bytes, &mut at)?).into()),
            ColumnType::Short => Prop::Int(i16::from_le_bytes(take_array(bytes, &mut at)?).into()),
            ColumnType::UShort => Prop::Int(u16::from_le_bytes(take_array(bytes, &mut at)?).into()),
            ColumnType::Int => Prop::Int(i32::from_le_bytes(take_array(bytes, &mut at)?).into()),
            ColumnType::UInt => Prop::Int(u32::from_le_bytes(take_array(bytes, &mut at)?).into()),
            ColumnType::Long => Prop::Int(i64::from_le_bytes(take_array(bytes, &mut at)?)),
            ColumnType::ULong => {
                let n = u64::from_le_bytes(take_array(bytes, &mut at)?);
                i64::try_from(n).map_or(Prop::Other, Prop::Int)
            }
            ColumnType::Float => Prop::Float(f32::from_le_bytes(take_array(bytes, &mut at)?).into()),
            ColumnType::Double => Prop::Float(f64::from_le_bytes(take_array(bytes, &mut at)?)),
            ColumnType::String | ColumnType::Json | ColumnType::DateTime | ColumnType::Binary => {
                let len = u32::from_le_bytes(take_array(bytes, &mut at)?) as usize;
                let raw = take(bytes, &mut at, len)?;
                if col.slot.is_none() || col.kind == ColumnType::Binary {
                    Prop::Other
                } else {
                    Prop::Str(std::str::from_utf8(raw).map_err(|_| format!("column {idx}: text is not UTF-8"))?)
                }
            }
            other => return Err(format!("column {idx} has an unknown type {other:?}")),
        };
        if let Some(slot) = col.slot {
            put(slot, value);
        }
    }
    Ok(())
}

fn is_text(kind: ColumnType) -> bool {
    matches!(kind, ColumnType::String | ColumnType::DateTime | ColumnType::Json)
}

fn is_integer(kind: ColumnType) -> bool {
    matches!(
        kind,
        ColumnType::Byte
            | ColumnType::UByte
            | ColumnType::Short
            | ColumnType::UShort
            | ColumnType::Int
            | ColumnType::UInt
            | ColumnType::Long
            | ColumnType::ULong
    )
}

/// An open layer file: the reader, its columns mapped to our fields, its feature count.
struct Layer {
    reader: FgbReader<BufReader<File>>,
    columns: Vec<FileColumn>,
    count: u64,
}

fn layer_error(path: &Path, message: impl Into<String>) -> StoreError {
    StoreError::Layer { path: path.to_owned(), message: message.into() }
}

fn open(path: &Path, what: &str, geometry: &[GeometryType], wanted: &[Col]) -> Result<Layer, StoreError> {
    let file = File::open(path).map_err(|source| StoreError::Io { path: path.to_owned(), source })?;
    let reader = FgbReader::open(BufReader::with_capacity(1 << 20, file)).map_err(|e| layer_error(path, e.to_string()))?;
    let header = reader.header();
    if !geometry.contains(&header.geometry_type()) {
        return Err(layer_error(path, format!("a {what} layer must hold {geometry:?}, not {:?}", header.geometry_type())));
    }
    if header.has_z() || header.has_m() || header.has_t() || header.has_tm() {
        return Err(layer_error(path, "only 2D coordinates (no Z/M) are supported"));
    }
    if let Some(crs) = header.crs() {
        let epsg = crs.org().is_none_or(|o| o.eq_ignore_ascii_case("EPSG"));
        if crs.code() != 0 && !(epsg && crs.code() == 4326) {
            return Err(layer_error(path, format!("the layer is in {}:{}, not EPSG:4326", crs.org().unwrap_or("EPSG"), crs.code())));
        }
    }
    let mut columns = Vec::new();
    for c in header.columns().iter().flatten() {
        let slot = wanted.iter().position(|w| w.name == c.name());
        if let Some(slot) = slot {
            let ok = if wanted[slot].kind == ColumnType::Int { is_integer(c.type_()) } else { is_text(c.type_()) };
            if !ok {
                return Err(layer_error(path, format!("column {} has type {:?}; expected {:?}", c.name(), c.type_(), wanted[slot].kind)));
            }
        }
        columns.push(FileColumn { kind: c.type_(), slot });
    }
    if !columns.iter().any(|c| c.slot == Some(0)) {
        return Err(layer_error(path, format!("the {what} layer has no {} column", wanted[0].name)));
    }
    let count = header.features_count();
    Ok(Layer { reader, columns, count })
}

/// A feature-count check at the end: a file cut at a feature boundary reads as a shorter layer.
fn check_count(path: &Path, read: u64, layer_count: u64, manifest_count: Option<u64>) -> Result<(), StoreError> {
    if read != layer_count {
        return Err(layer_error(path, format!("the header announces {layer_count} features but the file holds {read} (truncated?)")));
    }
    if let Some(m) = manifest_count.filter(|&m| m != read) {
        return Err(layer_error(path, format!("manifest.json records {m} features but the file holds {read}")));
    }
    Ok(())
}

fn ring(xy: &[f64]) -> Result<LineString<f64>, String> {
    if xy.len() < 8 {
        return Err(format!("a polygon ring of {} points; at least 4 are needed", xy.len() / 2));
    }
    Ok(LineString(xy.chunks_exact(2).map(|p| Coord { x: p[0], y: p[1] }).collect()))
}

/// A polygon from its coordinate array and ring ends, checked.
fn polygon(g: &flatgeobuf::Geometry<'_>) -> Result<Polygon<f64>, String> {
    let xy: Vec<f64> = g.xy().ok_or("a polygon without coordinates")?.iter().collect();
    if !xy.len().is_multiple_of(2) {
        return Err("an odd number of coordinate values".into());
    }
    let n = (xy.len() / 2) as u32;
    let ends: Vec<u32> = g.ends().map_or_else(|| vec![n], |e| e.iter().collect());
    let mut rings = Vec::with_capacity(ends.len());
    let mut start = 0u32;
    for &end in &ends {
        if end <= start || end > n {
            return Err(format!("ring ends {ends:?} do not fit {n} points"));
        }
        rings.push(ring(&xy[2 * start as usize..2 * end as usize])?);
        start = end;
    }
    if start != n {
        return Err(format!("ring ends {ends:?} do not cover {n} points"));
    }
    let mut rings = rings.into_iter();
    let exterior = rings.next().ok_or("a polygon without rings")?;
    Ok(Polygon::new(exterior, rings.collect()))
}

fn multipolygon(g: &flatgeobuf::Geometry<'_>) -> Result<MultiPolygon<f64>, String> {
    match g.parts() {
        Some(parts) => parts.iter().map(|p| polygon(&p)).collect::<Result<Vec<_>, _>>().map(MultiPolygon),
        None => Ok(MultiPolygon(vec![polygon(g)?])),
    }
}

pub(super) fn read_grids(path: &Path, manifest_count: Option<u64>, builder: &mut CityBuilder) -> Result<(), StoreError> {
    let layer = open(path, "grid", &[GeometryType::MultiPolygon, GeometryType::Polygon], &GRID_COLUMNS)?;
    let columns = layer.columns;
    let mut features = layer.reader.select_all_seq().map_err(|e| layer_error(path, e.to_string()))?;
    let mut n = 0u64;
    while let Some(feature) = features.next().map_err(|e| layer_error(path, format!("feature {n}: {e}")))? {
        let bad = |message: String| layer_error(path, format!("feature {n}: {message}"));
        let fbs = feature.fbs_feature();
        let mut s = [""; GRID_COLUMNS.len()];
        let mut level = None;
        if let Some(props) = fbs.properties() {
            decode_properties(props.bytes(), &columns, |slot, value| match value {
                Prop::Str(v) => s[slot] = v,
                Prop::Int(v) => level = Some(v),
                Prop::Float(_) | Prop::Other => {}
            })
            .map_err(&bad)?;
        }
        let geometry = fbs.geometry().ok_or_else(|| bad(format!("grid {}: no geometry", s[0])))?;
        let geometry = multipolygon(&geometry).map_err(|e| bad(format!("grid {}: {e}", s[0])))?;
        let fields =
            GridFields { code: s[0], name: s[1], level, parent: s[3], unit: s[4], chief_name: s[5], chief_phone: s[6], valid_from: s[7], valid_to: s[8] };
        builder.add_grid(&fields, geometry).map_err(|source| StoreError::Feature { path: path.into(), feature: n, source })?;
        n += 1;
    }
    check_count(path, n, layer.count, manifest_count)
}

pub(super) fn read_components(path: &Path, manifest_count: Option<u64>, builder: &mut CityBuilder, progress: &dyn Fn(u64, u64)) -> Result<(), StoreError> {
    let layer = open(path, "component", &[GeometryType::Point], &COMPONENT_COLUMNS)?;
    let (columns, total) = (layer.columns, layer.count);
    builder.reserve_components(usize::try_from(total).unwrap_or(0).min(1 << 28));
    let mut features = layer.reader.select_all_seq().map_err(|e| layer_error(path, e.to_string()))?;
    let mut n = 0u64;
    progress(0, total);
    while let Some(feature) = features.next().map_err(|e| layer_error(path, format!("feature {n}: {e}")))? {
        let bad = |message: String| layer_error(path, format!("feature {n}: {message}"));
        let fbs = feature.fbs_feature();
        let mut s = [""; COMPONENT_COLUMNS.len()];
        if let Some(props) = fbs.properties() {
            decode_properties(props.bytes(), &columns, |slot, value| {
                if let Prop::Str(v) = value {
                    s[slot] = v;
                }
            })
            .map_err(&bad)?;
        }
        let xy = fbs.geometry().and_then(|g| g.xy()).ok_or_else(|| bad("no point geometry".into()))?;
        if xy.len() != 2 {
            return Err(bad(format!("a component must be one point, found {} coordinate values", xy.len())));
        }
        let fields = ComponentFields {
            code: s[0],
            class: s[1],
            name: s[2],
            dept: s[3],
            owner: s[4],
            maintainer: s[5],
            status: s[6],
            grid: s[7],
            created: s[8],
            updated: s[9],
            accuracy: s[10],
            lon: xy.get(0),
            lat: xy.get(1),
        };
        builder.add_component(&fields).map_err(|source| StoreError::Feature { path: path.into(), feature: n, source })?;
        n += 1;
        if n.is_multiple_of(65_536) {
            progress(n, total);
        }
    }
    check_count(path, n, total, manifest_count)?;
    progress(n, total);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(kinds: &[ColumnType]) -> Vec<FileColumn> {
        kinds.iter().enumerate().map(|(i, &kind)| FileColumn { kind, slot: Some(i) }).collect()
    }

    #[test]
    fn properties_decode_and_corrupt_lengths_are_errors() {
        let mut bytes = Vec::new();
        bytes.extend(0u16.to_le_bytes());
        bytes.extend(3u32.to_le_bytes());
        bytes.extend(b"abc");
        bytes.extend(1u16.to_le_bytes());
        bytes.extend(7i32.to_le_bytes());
        let columns = cols(&[ColumnType::String, ColumnType::Int]);
        let mut got = (String::new(), 0);
        decode_properties(&bytes, &columns, |slot, v| match v {
            Prop::Str(s) if slot == 0 => got.0 = s.into(),
            Prop::Int(n) if slot == 1 => got.1 = n,
            _ => panic!("unexpected"),
        })
        .unwrap();
        assert_eq!(got, ("abc".to_string(), 7));
        // Every cut inside a property and a huge string length are errors, never panics (9 is
        // the boundary after the first property; 10 leaves the one tolerated trailing byte).
        for cut in (2..9).chain(11..bytes.len()) {
            assert!(decode_properties(&bytes[..cut], &columns, |_, _| {}).is_err(), "cut at {cut}");
        }
        let mut long = bytes.clone();
        long[2..6].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_properties(&long, &columns, |_, _| {}).is_err());
        let mut unknown_column = bytes.clone();
        unknown_column[0] = 9;
        assert!(decode_properties(&unknown_column, &columns, |_, _| {}).is_err());
        let mut not_utf8 = bytes;
        not_utf8[6] = 0xff;
        assert!(decode_properties(&not_utf8, &columns, |_, _| {}).is_err());
    }
}
