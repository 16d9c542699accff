//! An MVT decoder for the tile tests: protobuf by prost (the spec's messages), geometry
//! command streams decoded here, strictly (any malformed stream panics). Checked against the
//! spec's examples in `tests/tiles_encode.rs`.

use std::collections::BTreeMap;

use citygrid::tiles::vector_tile::{Tile, tile};
use prost::Message;

#[derive(Clone, Debug, PartialEq)]
pub enum Prop {
    Str(String),
    Num(f64),
    Bool(bool),
}

impl Prop {
    pub fn str(&self) -> &str {
        match self {
            Prop::Str(s) => s,
            other => panic!("not a string: {other:?}"),
        }
    }
    pub fn num(&self) -> f64 {
        match self {
            Prop::Num(n) => *n,
            other => panic!("not a number: {other:?}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Geom {
    Points(Vec<[i32; 2]>),
    Lines(Vec<Vec<[i32; 2]>>),
    /// Rings in order (no repeated closing point); exterior rings have positive area.
    Polygon(Vec<Vec<[i32; 2]>>),
}

#[derive(Clone, Debug)]
pub struct Feature {
    pub id: Option<u64>,
    pub props: BTreeMap<String, Prop>,
    pub geom: Geom,
}

impl Feature {
    pub fn get(&self, key: &str) -> &Prop {
        self.props.get(key).unwrap_or_else(|| panic!("feature has no {key}: {:?}", self.props))
    }
    pub fn is_point(&self) -> bool {
        matches!(self.geom, Geom::Points(_))
    }
    pub fn point(&self) -> [i32; 2] {
        match &self.geom {
            Geom::Points(p) if p.len() == 1 => p[0],
            g => panic!("not a single point: {g:?}"),
        }
    }
    pub fn rings(&self) -> &[Vec<[i32; 2]>] {
        match &self.geom {
            Geom::Polygon(r) => r,
            g => panic!("not a polygon: {g:?}"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct DecodedLayer {
    pub name: String,
    pub version: u32,
    pub extent: u32,
    pub keys: Vec<String>,
    pub features: Vec<Feature>,
}

/// Twice the surveyor's area of a ring in tile coordinates (y down).
pub fn area2(ring: &[[i32; 2]]) -> i64 {
    let n = ring.len();
    (0..n)
        .map(|i| {
            let (a, b) = (ring[i], ring[(i + 1) % n]);
            a[0] as i64 * b[1] as i64 - b[0] as i64 * a[1] as i64
        })
        .sum()
}

fn zigzag(v: u32) -> i32 {
    ((v >> 1) as i32) ^ -((v & 1) as i32)
}

/// Decodes one feature's geometry stream.
pub fn decode_geometry(kind: i32, g: &[u32]) -> Geom {
    let mut i = 0;
    let (mut x, mut y) = (0i32, 0i32);
    let mut parts: Vec<Vec<[i32; 2]>> = Vec::new();
    let mut closed = 0;
    while i < g.len() {
        let (cmd, count) = (g[i] & 7, g[i] >> 3);
        i += 1;
        match cmd {
            1 | 2 => {
                assert!(count > 0, "empty command");
                if cmd == 1 {
                    assert!(kind == 1 || count == 1, "MoveTo with {count} points in a non-point geometry");
                    parts.push(Vec::new());
                } else {
                    assert!(!parts.is_empty(), "LineTo before MoveTo");
                }
                for _ in 0..count {
                    assert!(i + 1 < g.len(), "truncated parameters");
                    x += zigzag(g[i]);
                    y += zigzag(g[i + 1]);
                    i += 2;
                    parts.last_mut().unwrap().push([x, y]);
                }
            }
            7 => {
                assert_eq!(count, 1, "ClosePath count");
                assert_eq!(kind, 3, "ClosePath outside a polygon");
                closed += 1;
            }
            c => panic!("unknown command {c}"),
        }
    }
    match kind {
        1 => Geom::Points(parts.into_iter().flatten().collect()),
        2 => Geom::Lines(parts),
        3 => {
            assert_eq!(closed, parts.len(), "every polygon ring ends with ClosePath");
            for r in &parts {
                assert!(r.len() >= 3, "ring with {} points", r.len());
                assert_ne!(r.first(), r.last(), "closing point repeated");
            }
            Geom::Polygon(parts)
        }
        k => panic!("geometry type {k}"),
    }
}

/// Decodes a tile into its layers by name.
pub fn decode(bytes: &[u8]) -> BTreeMap<String, DecodedLayer> {
    let tile = Tile::decode(bytes).expect("a protobuf vector tile");
    let mut out = BTreeMap::new();
    for l in tile.layers {
        let values: Vec<Prop> = l.values.iter().map(value).collect();
        let features = l
            .features
            .iter()
            .map(|f| {
                assert!(f.tags.len() % 2 == 0, "odd tag count");
                let props = f.tags.chunks(2).map(|kv| (l.keys[kv[0] as usize].clone(), values[kv[1] as usize].clone())).collect::<BTreeMap<_, _>>();
                assert_eq!(props.len(), f.tags.len() / 2, "a key repeated in one feature");
                Feature { id: f.id, props, geom: decode_geometry(f.r#type.unwrap_or(0), &f.geometry) }
            })
            .collect();
        let name = l.name.clone();
        let layer = DecodedLayer { name: l.name, version: l.version, extent: l.extent.unwrap_or(4096), keys: l.keys, features };
        assert!(out.insert(name, layer).is_none(), "layer name repeated");
    }
    out
}

fn value(v: &tile::Value) -> Prop {
    let set = [
        v.string_value.is_some(),
        v.float_value.is_some(),
        v.double_value.is_some(),
        v.int_value.is_some(),
        v.uint_value.is_some(),
        v.sint_value.is_some(),
        v.bool_value.is_some(),
    ];
    assert_eq!(set.iter().filter(|s| **s).count(), 1, "a value must have exactly one field: {v:?}");
    if let Some(s) = &v.string_value {
        Prop::Str(s.clone())
    } else if let Some(b) = v.bool_value {
        Prop::Bool(b)
    } else {
        Prop::Num(
            v.float_value
                .map(f64::from)
                .or(v.double_value)
                .or(v.int_value.map(|n| n as f64))
                .or(v.uint_value.map(|n| n as f64))
                .or(v.sint_value.map(|n| n as f64))
                .unwrap(),
        )
    }
}
