//! Building one MVT layer: the key and value dictionaries (in first-use order, so the bytes
//! are deterministic) and the geometry command streams (spec 4.3).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use prost::Message;

use super::vector_tile::tile::{GeomType, Value};

const MOVE_TO: u32 = 1;
const LINE_TO: u32 = 2;
const CLOSE_PATH: u32 = 7;

#[inline]
fn command(id: u32, count: u32) -> u32 {
    (id & 0x7) | (count << 3)
}

#[inline]
fn zigzag(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

/// A string property value.
pub fn str_value(s: impl Into<String>) -> Value {
    Value { string_value: Some(s.into()), ..Default::default() }
}

/// An unsigned integer property value.
pub fn uint_value(n: u64) -> Value {
    Value { uint_value: Some(n), ..Default::default() }
}

/// A fast hasher for the value dictionary's small integer keys (FxHash's mixing step); the
/// map is only looked up, never iterated, so its order cannot reach the output.
#[derive(Default, Clone, Copy)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.write_u64(n as u64);
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A feature being built: its tags and geometry commands. The vectors are the builder's,
/// handed out by [`LayerBuilder::begin_feature`] and taken back (cleared, capacity kept) by
/// [`LayerBuilder::end_feature`], so a tile of thousands of features allocates them once.
pub struct Feature {
    pub id: Option<u64>,
    kind: GeomType,
    /// Key index, value index pairs.
    pub tags: Vec<u32>,
    /// Command integers (spec 4.3).
    pub geometry: Vec<u32>,
}

/// One MVT layer being built, written straight into protobuf bytes: each feature is encoded
/// when it ends and each value when it is first used, into one buffer per field, and the
/// layer message is assembled once at [`LayerBuilder::finish`]. The bytes are those prost
/// writes for the same [`Layer`] (fields in tag order, packed repeated integers, the same
/// varints), so tiles are byte-identical to encoding the message structs
/// (`vector_tile::tile::Layer`).
pub struct LayerBuilder {
    name: String,
    extent: u32,
    keys: Vec<String>,
    /// The encoded `features` fields (tag, length, message), in order.
    features: Vec<u8>,
    feature_count: usize,
    /// The encoded `values` fields, in index order.
    values: Vec<u8>,
    value_count: u32,
    /// Value dictionary lookup: (kind tag, caller's key) → index. Callers pick keys that
    /// identify the value (an interned name id, a class code, …), which avoids hashing strings.
    value_index: HashMap<(u8, u64), u32, BuildHasherDefault<KeyHasher>>,
    cursor: [i32; 2],
    /// Spare vectors for the next feature.
    spare: (Vec<u32>, Vec<u32>),
}

/// Field keys (tag << 3 | wire type) of the messages written here.
const LAYER_NAME: u8 = 1 << 3 | 2;
const LAYER_FEATURES: u8 = 2 << 3 | 2;
const LAYER_KEYS: u8 = 3 << 3 | 2;
const LAYER_VALUES: u8 = 4 << 3 | 2;
const LAYER_EXTENT: u8 = 5 << 3;
const LAYER_VERSION: u8 = 15 << 3;
const FEATURE_ID: u8 = 1 << 3;
const FEATURE_TAGS: u8 = 2 << 3 | 2;
const FEATURE_TYPE: u8 = 3 << 3;
const FEATURE_GEOMETRY: u8 = 4 << 3 | 2;
const VALUE_STRING: u8 = 1 << 3 | 2;
/// The `layers` field of a tile.
const TILE_LAYERS: u8 = 3 << 3 | 2;

/// Bytes of `v` as a protobuf varint.
#[inline]
fn varint_len(v: u64) -> usize {
    // 1 + floor(log2(v) / 7), with 0 → 1.
    ((64 - (v | 1).leading_zeros() as usize) * 9 + 64) / 64
}

/// Appends `v` as a protobuf varint.
#[inline]
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a length-delimited field: key, length, bytes.
#[inline]
fn put_bytes(out: &mut Vec<u8>, key: u8, bytes: &[u8]) {
    out.push(key);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn packed_len(v: &[u32]) -> usize {
    v.iter().map(|&x| varint_len(x as u64)).sum()
}

impl LayerBuilder {
    /// A layer with its keys fixed up front (key index = position in `keys`).
    pub fn new(name: &str, extent: u32, keys: &[&str]) -> LayerBuilder {
        LayerBuilder {
            name: name.to_owned(),
            extent,
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            features: Vec::new(),
            feature_count: 0,
            values: Vec::new(),
            value_count: 0,
            value_index: HashMap::default(),
            cursor: [0, 0],
            spare: (Vec::new(), Vec::new()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.feature_count == 0
    }

    /// The encoded layer message (without the tile's field key and length).
    #[cfg(test)]
    pub fn finish(self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_body(&mut out);
        out
    }

    /// Appends the layer to a tile being written: the `layers` field key, the message's length
    /// and the message.
    pub fn finish_into(self, tile: &mut Vec<u8>) {
        let keys_len: usize = self.keys.iter().map(|k| 1 + varint_len(k.len() as u64) + k.len()).sum();
        let len = 1
            + varint_len(self.name.len() as u64)
            + self.name.len()
            + self.features.len()
            + keys_len
            + self.values.len()
            + 1
            + varint_len(self.extent as u64)
            + 1
            + varint_len(2);
        tile.reserve(len + 6);
        tile.push(TILE_LAYERS);
        put_varint(tile, len as u64);
        let start = tile.len();
        self.write_body(tile);
        debug_assert_eq!(tile.len() - start, len);
    }

    fn write_body(&self, out: &mut Vec<u8>) {
        put_bytes(out, LAYER_NAME, self.name.as_bytes());
        out.extend_from_slice(&self.features);
        for k in &self.keys {
            put_bytes(out, LAYER_KEYS, k.as_bytes());
        }
        out.extend_from_slice(&self.values);
        out.push(LAYER_EXTENT);
        put_varint(out, self.extent as u64);
        out.push(LAYER_VERSION);
        put_varint(out, 2);
    }

    /// Index of a value shared by many features, looked up by `(tag, key)`; `make` builds it
    /// on first use.
    pub fn shared(&mut self, tag: u8, key: u64, make: impl FnOnce() -> Value) -> u32 {
        if let Some(&i) = self.value_index.get(&(tag, key)) {
            return i;
        }
        let i = self.unique(make());
        self.value_index.insert((tag, key), i);
        i
    }

    /// Index of a value used once (e.g. a unique code): no dictionary lookup.
    pub fn unique(&mut self, v: Value) -> u32 {
        self.values.push(LAYER_VALUES);
        put_varint(&mut self.values, v.encoded_len() as u64);
        v.encode_raw(&mut self.values);
        self.value_count += 1;
        self.value_count - 1
    }

    /// Index of a string value used once, written without building a [`Value`].
    pub fn unique_str(&mut self, s: &str) -> u32 {
        self.values.push(LAYER_VALUES);
        put_varint(&mut self.values, (1 + varint_len(s.len() as u64) + s.len()) as u64);
        put_bytes(&mut self.values, VALUE_STRING, s.as_bytes());
        self.value_count += 1;
        self.value_count - 1
    }

    /// Starts a feature; add tags and geometry, then [`LayerBuilder::end_feature`].
    pub fn begin_feature(&mut self, id: Option<u64>, kind: GeomType) -> Feature {
        self.cursor = [0, 0];
        let (tags, geometry) = std::mem::take(&mut self.spare);
        Feature { id, kind, tags, geometry }
    }

    /// Ends a feature: encodes it, unless it has no geometry (then it is left out).
    pub fn end_feature(&mut self, mut f: Feature) {
        if !f.geometry.is_empty() {
            let (tags_len, geom_len) = (packed_len(&f.tags), packed_len(&f.geometry));
            let mut len = 1 + varint_len(f.kind as u64) + 1 + varint_len(geom_len as u64) + geom_len;
            if let Some(id) = f.id {
                len += 1 + varint_len(id);
            }
            if !f.tags.is_empty() {
                len += 1 + varint_len(tags_len as u64) + tags_len;
            }
            let out = &mut self.features;
            out.reserve(len + 6);
            out.push(LAYER_FEATURES);
            put_varint(out, len as u64);
            if let Some(id) = f.id {
                out.push(FEATURE_ID);
                put_varint(out, id);
            }
            if !f.tags.is_empty() {
                out.push(FEATURE_TAGS);
                put_varint(out, tags_len as u64);
                for &t in &f.tags {
                    put_varint(out, t as u64);
                }
            }
            out.push(FEATURE_TYPE);
            put_varint(out, f.kind as u64);
            out.push(FEATURE_GEOMETRY);
            put_varint(out, geom_len as u64);
            for &g in &f.geometry {
                put_varint(out, g as u64);
            }
            self.feature_count += 1;
        }
        f.tags.clear();
        f.geometry.clear();
        self.spare = (f.tags, f.geometry);
    }

    /// Appends a whole Point feature without id: `tags` and the one point `p`. The bytes are
    /// those of [`LayerBuilder::begin_feature`], [`LayerBuilder::point`] and
    /// [`LayerBuilder::end_feature`], written without the feature's vectors.
    pub fn point_feature(&mut self, tags: &[u32], p: [i32; 2]) {
        let (x, y) = (zigzag(p[0]) as u64, zigzag(p[1]) as u64);
        let geom_len = 1 + varint_len(x) + varint_len(y);
        let tags_len = packed_len(tags);
        let mut len = 1 + varint_len(GeomType::Point as u64) + 1 + varint_len(geom_len as u64) + geom_len;
        if !tags.is_empty() {
            len += 1 + varint_len(tags_len as u64) + tags_len;
        }
        let out = &mut self.features;
        out.reserve(len + 6);
        out.push(LAYER_FEATURES);
        put_varint(out, len as u64);
        if !tags.is_empty() {
            out.push(FEATURE_TAGS);
            put_varint(out, tags_len as u64);
            for &t in tags {
                put_varint(out, t as u64);
            }
        }
        out.push(FEATURE_TYPE);
        put_varint(out, GeomType::Point as u64);
        out.push(FEATURE_GEOMETRY);
        put_varint(out, geom_len as u64);
        out.push(command(MOVE_TO, 1) as u8);
        put_varint(out, x);
        put_varint(out, y);
        self.cursor = p;
        self.feature_count += 1;
    }

    /// Appends a point (MoveTo 1).
    pub fn point(&mut self, f: &mut Feature, p: [i32; 2]) {
        f.geometry.push(command(MOVE_TO, 1));
        self.delta(f, p);
    }

    /// Appends a ring (at least 3 distinct points, no repeated closing point): MoveTo,
    /// LineTo n-1, ClosePath. The caller gives exterior rings positive area (clockwise on
    /// screen) and holes negative.
    pub fn ring(&mut self, f: &mut Feature, ring: &[[i32; 2]]) {
        debug_assert!(ring.len() >= 3);
        f.geometry.reserve(ring.len() * 2 + 3);
        f.geometry.push(command(MOVE_TO, 1));
        self.delta(f, ring[0]);
        f.geometry.push(command(LINE_TO, (ring.len() - 1) as u32));
        for &p in &ring[1..] {
            self.delta(f, p);
        }
        f.geometry.push(command(CLOSE_PATH, 1));
    }

    /// Appends a line string (at least 2 points, no two consecutive equal): MoveTo 1,
    /// LineTo n-1. Several calls on one feature make a multi-line string.
    pub fn line(&mut self, f: &mut Feature, line: &[[i32; 2]]) {
        debug_assert!(line.len() >= 2);
        f.geometry.reserve(line.len() * 2 + 2);
        f.geometry.push(command(MOVE_TO, 1));
        self.delta(f, line[0]);
        f.geometry.push(command(LINE_TO, (line.len() - 1) as u32));
        for &p in &line[1..] {
            self.delta(f, p);
        }
    }

    #[inline]
    fn delta(&mut self, f: &mut Feature, p: [i32; 2]) {
        f.geometry.push(zigzag(p[0] - self.cursor[0]));
        f.geometry.push(zigzag(p[1] - self.cursor[1]));
        self.cursor = p;
    }
}

#[cfg(test)]
mod tests {
    use super::super::vector_tile::tile::Layer;
    use super::*;

    #[test]
    fn commands_follow_the_spec_examples() {
        // Spec 4.3.5: a point at (25, 17) is [9, 50, 34].
        let mut b = LayerBuilder::new("t", 4096, &[]);
        let mut f = b.begin_feature(None, GeomType::Point);
        b.point(&mut f, [25, 17]);
        assert_eq!(f.geometry, [9, 50, 34]);
        // A polygon ring (3,6) (8,12) (20,34): [9, 6, 12, 18, 10, 12, 24, 44, 15].
        let mut f = b.begin_feature(None, GeomType::Polygon);
        b.ring(&mut f, &[[3, 6], [8, 12], [20, 34]]);
        assert_eq!(f.geometry, [9, 6, 12, 18, 10, 12, 24, 44, 15]);
    }

    #[test]
    fn shared_values_are_stored_once_in_first_use_order() {
        let mut b = LayerBuilder::new("t", 4096, &["a"]);
        assert_eq!(b.shared(0, 7, || str_value("x")), 0);
        assert_eq!(b.unique(uint_value(3)), 1);
        assert_eq!(b.shared(0, 7, || str_value("other")), 0);
        assert_eq!(b.shared(1, 7, || uint_value(7)), 2);
        assert_eq!(b.unique_str("y"), 3);
        let mut f = b.begin_feature(Some(300), GeomType::Point);
        f.tags.extend_from_slice(&[0, 3]);
        b.point(&mut f, [-70, 200]);
        b.end_feature(f);
        let f = b.begin_feature(Some(1), GeomType::Point);
        b.end_feature(f);
        let bytes = b.finish();
        let layer = Layer::decode(bytes.as_slice()).unwrap();
        assert_eq!(layer.values[0].string_value.as_deref(), Some("x"));
        assert_eq!(layer.values[3].string_value.as_deref(), Some("y"));
        assert_eq!(layer.features.len(), 1, "a feature without geometry is left out");
        assert_eq!((layer.features[0].id, &layer.features[0].tags[..]), (Some(300), &[0, 3][..]));
        // The bytes prost writes for the same message.
        assert_eq!(layer.encode_to_vec(), bytes);
    }

    #[test]
    fn point_features_are_the_bytes_of_a_feature_built_point_by_point() {
        let points = [[0, 0], [25, 17], [-70, 200], [4095, 4095], [i32::MAX, i32::MIN], [-1, 1 << 20]];
        let tags: [&[u32]; 3] = [&[], &[0, 1], &[0, 300, 1, 2, 2, 70_000, 3, 4]];
        let (mut direct, mut built) = (LayerBuilder::new("t", 4096, &["a"]), LayerBuilder::new("t", 4096, &["a"]));
        for (k, &p) in points.iter().enumerate() {
            let t = tags[k % tags.len()];
            direct.point_feature(t, p);
            let mut f = built.begin_feature(None, GeomType::Point);
            f.tags.extend_from_slice(t);
            built.point(&mut f, p);
            built.end_feature(f);
        }
        assert_eq!(direct.finish(), built.finish());
    }

    #[test]
    fn varints_have_the_length_prost_gives_them() {
        for v in [0u64, 1, 127, 128, 16_383, 16_384, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v));
            assert_eq!(out.len(), prost::encoding::encoded_len_varint(v), "{v}");
        }
    }
}
