//! Building one MVT layer: the key and value dictionaries (in first-use order, so the bytes
//! are deterministic) and the geometry command streams (spec 4.3).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::vector_tile::tile::{Feature, GeomType, Layer, Value};

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

/// One MVT layer being built.
pub struct LayerBuilder {
    layer: Layer,
    /// Value dictionary lookup: (kind tag, caller's key) → index. Callers pick keys that
    /// identify the value (an interned name id, a class code, …), which avoids hashing strings.
    value_index: HashMap<(u8, u64), u32, BuildHasherDefault<KeyHasher>>,
    cursor: [i32; 2],
}

impl LayerBuilder {
    /// A layer with its keys fixed up front (key index = position in `keys`).
    pub fn new(name: &str, extent: u32, keys: &[&str]) -> LayerBuilder {
        LayerBuilder {
            layer: Layer {
                version: 2,
                name: name.to_owned(),
                features: Vec::new(),
                keys: keys.iter().map(|k| (*k).to_owned()).collect(),
                values: Vec::new(),
                extent: Some(extent),
            },
            value_index: HashMap::default(),
            cursor: [0, 0],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.layer.features.is_empty()
    }

    pub fn finish(self) -> Layer {
        self.layer
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
        self.layer.values.push(v);
        (self.layer.values.len() - 1) as u32
    }

    /// Starts a feature; add tags and geometry, then [`LayerBuilder::end_feature`].
    pub fn begin_feature(&mut self, id: Option<u64>, kind: GeomType) -> Feature {
        self.cursor = [0, 0];
        Feature { id, tags: Vec::new(), r#type: Some(kind as i32), geometry: Vec::new() }
    }

    pub fn end_feature(&mut self, f: Feature) {
        if !f.geometry.is_empty() {
            self.layer.features.push(f);
        }
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
        assert_eq!(b.finish().values[0].string_value.as_deref(), Some("x"));
    }
}
