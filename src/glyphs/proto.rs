//! The glyph protobuf of MapLibre and Mapbox GL (`glyphs.proto`, package `llmr.glyphs`, proto2),
//! written as prost messages: one `glyphs` message holding one `fontstack` with the glyphs of a
//! range of 256 code points.

/// One glyph: its code point, its signed distance field and metrics, in pixels at 24 px.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Glyph {
    /// The code point (not the font's glyph index).
    #[prost(uint32, required, tag = "1")]
    pub id: u32,
    /// The signed distance field, `(width + 6) × (height + 6)` bytes, row by row: a border of
    /// [`super::BUFFER`] pixels on every side; 192 is the outline, larger is inside.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub bitmap: Option<Vec<u8>>,
    /// Width of the glyph's ink, without the border.
    #[prost(uint32, required, tag = "3")]
    pub width: u32,
    /// Height of the glyph's ink, without the border.
    #[prost(uint32, required, tag = "4")]
    pub height: u32,
    /// From the pen position to the ink's left edge.
    #[prost(sint32, required, tag = "5")]
    pub left: i32,
    /// From the line's top (the baseline minus the font's ascender) to the ink's top edge,
    /// positive upwards (so usually negative or zero).
    #[prost(sint32, required, tag = "6")]
    pub top: i32,
    /// Horizontal advance of the pen.
    #[prost(uint32, required, tag = "7")]
    pub advance: u32,
}

/// A font stack's glyphs of one range.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Fontstack {
    /// The font stack as asked for (`Open Sans Semibold,Noto Sans CJK SC Regular`).
    #[prost(string, required, tag = "1")]
    pub name: String,
    /// The range, `start-end` (`0-255`).
    #[prost(string, required, tag = "2")]
    pub range: String,
    #[prost(message, repeated, tag = "3")]
    pub glyphs: Vec<Glyph>,
}

/// The whole answer of a glyph request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Glyphs {
    #[prost(message, repeated, tag = "1")]
    pub stacks: Vec<Fontstack>,
}
