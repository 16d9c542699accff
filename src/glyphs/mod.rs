//! Label glyphs for MapLibre clients, rendered by the server from its own fonts.
//!
//! A MapLibre style names a glyph URL (`/fonts/{fontstack}/{range}.pbf`) and, per symbol layer,
//! a font stack (`text-font`). For every range of 256 code points a client needs, it asks for
//! the stack's glyphs: signed distance fields at 24 px with a 3 px border and their metrics, in
//! the glyph protobuf ([`proto`]). This module answers such a request from TrueType / OpenType
//! fonts (`.ttf`, `.otf`, and the collections `.ttc`, `.otc`), rendering each range once and
//! keeping it in memory:
//!
//! - **The built-in font** [`BUILTIN_FONT`] (Open Sans Semibold, subset to Latin, punctuation
//!   and a few symbols; `vendor/fonts/`) is compiled into the binary, so the style's Latin
//!   letters and digits have glyphs with no font directory at all.
//! - **A font directory** ([`FontLibrary::open`]) adds every face of every font file under it,
//!   by the name `"<family> <style>"` of its name table (typographic family and subfamily when
//!   present): `Noto Sans CJK SC Regular`, `WenQuanYi Micro Hei Regular`. A subdirectory holding
//!   ready glyph PBFs (`<dir>/<font name>/0-255.pbf`, …) is a font of that name too.
//! - **Each code point** of a range comes from the first font of the requested stack that has
//!   it, then from the fallback fonts: the built-in one, then the directory's faces — simplified
//!   Chinese ones first (names holding `SC`, `CN`, `GB`, `Hans` or `WenQuanYi`), then
//!   proportional before `Mono`, regular weights first, then by name. So a client asking for a font the server lacks still gets its labels
//!   from the fonts it has, and a range no font covers is a valid, empty glyph set.
//!
//! Renderings follow FreeType's and martin's conventions (pbf_font_tools): the em is 24 px,
//! `left` and `top` are the ink's bearings in whole pixels with `top` measured from the font's
//! ascender (rounded up), `advance` the rounded advance width; the field reaches 8 px out
//! ([`RADIUS`]) and 192 is the outline ([`CUTOFF`] 0.25).

pub mod proto;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ab_glyph::{Font, FontArc, FontVec, PxScale, point};
use bytes::Bytes;
use prost::Message;
use sdf_glyph_renderer::{BitmapGlyph, clamp_to_u8};

use proto::{Fontstack, Glyph, Glyphs};

/// Name of the built-in font (what a style's `text-font` names).
pub const BUILTIN_FONT: &str = "Open Sans Semibold";
/// The built-in font file (`vendor/fonts/OpenSans-Semibold-subset.ttf`, Apache-2.0).
const BUILTIN_TTF: &[u8] = include_bytes!("../../vendor/fonts/OpenSans-Semibold-subset.ttf");
/// Pixels per em of every glyph (MapLibre's glyph size).
pub const SIZE_PX: f32 = 24.0;
/// Empty pixels around each glyph's ink in its bitmap (MapLibre expects 3).
pub const BUFFER: usize = 3;
/// How far out from the outline the distance field reaches, pixels.
pub const RADIUS: usize = 8;
/// Share of the byte range spent inside the outline: the outline is at `255 × (1 - CUTOFF)`.
pub const CUTOFF: f64 = 0.25;
/// Code points per glyph range.
pub const RANGE_LEN: u32 = 256;
/// Bound of the rendered ranges kept in memory, bytes.
const RANGE_CACHE_BYTES: u64 = 64 * 1024 * 1024;
/// Bound of the font files kept parsed in memory, bytes.
const FONT_CACHE_BYTES: u64 = 512 * 1024 * 1024;
/// Font directory levels searched.
const MAX_DEPTH: usize = 8;

/// Errors of glyph requests and font directories.
#[derive(Debug, thiserror::Error)]
pub enum GlyphError {
    /// Not a range MapLibre asks for.
    #[error("a glyph range is 256 code points from a multiple of 256, like 0-255 or 19968-20223, not {0:?}")]
    BadRange(String),
    /// A font name that cannot name a font.
    #[error("font names in a stack are not empty, do not start with '.' and hold no '/', '\\' or control characters: {0:?}")]
    BadStack(String),
}

/// First code point of a range written `start-end` (`0-255`): `start` a multiple of 256,
/// `end = start + 255`, within Unicode.
pub fn parse_range(text: &str) -> Result<u32, GlyphError> {
    let bad = || GlyphError::BadRange(text.to_owned());
    let (a, b) = text.split_once('-').ok_or_else(bad)?;
    let plain = |s: &str| !s.is_empty() && s.len() <= 7 && s.bytes().all(|c| c.is_ascii_digit());
    if !plain(a) || !plain(b) {
        return Err(bad());
    }
    let (start, end): (u32, u32) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if !start.is_multiple_of(RANGE_LEN) || end != start + RANGE_LEN - 1 || end > 0x10FFFF {
        return Err(bad());
    }
    Ok(start)
}

/// The font names of a comma-separated stack, trimmed.
pub fn parse_stack(stack: &str) -> Result<Vec<&str>, GlyphError> {
    let names: Vec<&str> = stack.split(',').map(str::trim).collect();
    if names.iter().any(|n| n.is_empty() || n.starts_with('.') || n.chars().any(|c| c.is_control() || c == '/' || c == '\\')) {
        return Err(GlyphError::BadStack(stack.to_owned()));
    }
    Ok(names)
}

/// Where a face's outlines are.
#[derive(Debug, Clone)]
enum FaceSource {
    Builtin,
    File { path: PathBuf, index: u32, size: u64 },
}

/// One face of a font file: its name, where it is, which ranges it has glyphs in.
#[derive(Debug)]
struct Face {
    name: String,
    source: FaceSource,
    /// Bit `r` set: the face maps some code point of range `r` (`r × 256 …`).
    coverage: Vec<u64>,
}

impl Face {
    fn covers(&self, start: u32) -> bool {
        let r = (start / RANGE_LEN) as usize;
        self.coverage.get(r / 64).is_some_and(|w| w & (1 << (r % 64)) != 0)
    }
}

/// Where one code point of a rendered range comes from.
enum Source<'a> {
    Face(usize),
    Pbf(&'a Path),
}

/// The fonts a server renders glyphs from, and the ranges it rendered.
pub struct FontLibrary {
    /// The built-in face first, then the directory's, by name.
    faces: Vec<Face>,
    /// Lower-cased name → face (the first file of a name wins).
    by_name: HashMap<String, usize>,
    /// Lower-cased name → a directory of ready glyph PBFs.
    pbf_dirs: HashMap<String, PathBuf>,
    /// Faces tried after the stack's own, in order.
    fallback: Vec<usize>,
    /// What was skipped while reading the directory, for the log.
    warnings: Vec<String>,
    /// Parsed faces with the size of their file (the parsed font holds its bytes).
    fonts: moka::sync::Cache<usize, (FontArc, u32)>,
    ranges: moka::sync::Cache<(String, u32), Arc<GlyphRange>>,
}

/// One rendered range: the glyph PBF, and its gzip copy made on first use (glyph PBFs shrink to
/// about a third: distance fields are smooth).
#[derive(Debug)]
pub struct GlyphRange {
    /// The encoded [`Glyphs`] message.
    pub pbf: Bytes,
    /// CRC-32 of `pbf` (for an ETag).
    pub crc32: u32,
    gzip: OnceLock<Bytes>,
}

impl GlyphRange {
    fn new(pbf: Bytes) -> GlyphRange {
        GlyphRange { crc32: crc32fast::hash(&pbf), pbf, gzip: OnceLock::new() }
    }

    /// The PBF gzip-compressed (made once).
    pub fn gzip(&self) -> Bytes {
        self.gzip
            .get_or_init(|| {
                use std::io::Write;
                let mut w = flate2::write::GzEncoder::new(Vec::with_capacity(self.pbf.len() / 2), flate2::Compression::default());
                w.write_all(&self.pbf).expect("writing to memory");
                Bytes::from(w.finish().expect("writing to memory"))
            })
            .clone()
    }

    fn weight(&self) -> u32 {
        u32::try_from(self.pbf.len() + self.pbf.len() / 2).unwrap_or(u32::MAX)
    }
}

impl std::fmt::Debug for FontLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FontLibrary").field("fonts", &self.names()).finish_non_exhaustive()
    }
}

impl FontLibrary {
    /// Only the built-in font (shared: built once per process).
    pub fn builtin() -> Arc<FontLibrary> {
        static BUILTIN: OnceLock<Arc<FontLibrary>> = OnceLock::new();
        BUILTIN.get_or_init(|| Arc::new(FontLibrary::with_faces(Vec::new(), HashMap::new(), Vec::new()))).clone()
    }

    /// The built-in font and every font under `dir` (searched recursively; hidden entries
    /// skipped). A missing directory is no error: its fonts are just not there, and
    /// [`warnings`](Self::warnings) says so; so are files that are not fonts.
    pub fn open(dir: &Path) -> FontLibrary {
        let mut faces = Vec::new();
        let mut pbf_dirs = HashMap::new();
        let mut warnings = Vec::new();
        if dir.is_dir() {
            scan(dir, 0, &mut faces, &mut pbf_dirs, &mut warnings);
        } else {
            warnings.push(format!("font directory {} does not exist: only the built-in font {BUILTIN_FONT:?}", dir.display()));
        }
        faces.sort_by(|a: &Face, b: &Face| a.name.cmp(&b.name).then_with(|| source_path(&a.source).cmp(&source_path(&b.source))));
        FontLibrary::with_faces(faces, pbf_dirs, warnings)
    }

    fn with_faces(dir_faces: Vec<Face>, pbf_dirs: HashMap<String, PathBuf>, warnings: Vec<String>) -> FontLibrary {
        let builtin = Face { name: BUILTIN_FONT.to_owned(), source: FaceSource::Builtin, coverage: coverage_of(BUILTIN_TTF, 0) };
        let mut faces = vec![builtin];
        faces.extend(dir_faces);
        let mut by_name = HashMap::new();
        for (i, face) in faces.iter().enumerate() {
            by_name.entry(face.name.to_lowercase()).or_insert(i);
        }
        let mut fallback: Vec<usize> = (1..faces.len()).filter(|&i| by_name.get(&faces[i].name.to_lowercase()) == Some(&i)).collect();
        fallback.sort_by_key(|&i| {
            let name = &faces[i].name;
            (!is_simplified_chinese(name), name.contains(" Mono"), !is_regular(name), name.clone())
        });
        fallback.insert(0, 0);
        FontLibrary {
            faces,
            by_name,
            pbf_dirs,
            fallback,
            warnings,
            fonts: moka::sync::Cache::builder().max_capacity(FONT_CACHE_BYTES).weigher(|_: &usize, f: &(FontArc, u32)| f.1).build(),
            ranges: moka::sync::Cache::builder().max_capacity(RANGE_CACHE_BYTES).weigher(|_: &(String, u32), r: &Arc<GlyphRange>| r.weight()).build(),
        }
    }

    /// Every font name served, the built-in one first, then the directory's by name.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.faces.iter().map(|f| f.name.as_str()).collect();
        names.dedup();
        let mut pbf: Vec<&str> = self.pbf_dirs.values().filter_map(|p| p.file_name()?.to_str()).collect();
        pbf.sort_unstable();
        names.extend(pbf);
        names
    }

    /// What was skipped while reading the font directory.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The glyph PBF of `stack` (comma-separated font names) for the range starting at `start`
    /// (a multiple of 256): every code point of the range that any font has, each from the first
    /// font of the stack, then of the fallback fonts, that has it; none may be found (an empty,
    /// valid glyph set). CPU-heavy on first use (up to ~100 ms for a range of CJK ideographs);
    /// then from memory.
    pub fn range(&self, stack: &str, start: u32) -> Result<Arc<GlyphRange>, GlyphError> {
        let names = parse_stack(stack)?;
        if !start.is_multiple_of(RANGE_LEN) || start > 0x10FF00 {
            return Err(GlyphError::BadRange(format!("{start}-{}", start.saturating_add(RANGE_LEN - 1))));
        }
        let key = (names.join(","), start);
        Ok(self.ranges.get_with(key, || Arc::new(GlyphRange::new(self.render(&names, start)))))
    }

    fn render(&self, names: &[&str], start: u32) -> Bytes {
        let mut sources: Vec<Source<'_>> = Vec::new();
        let mut used = vec![false; self.faces.len()];
        for name in names {
            let lower = name.to_lowercase();
            if let Some(dir) = self.pbf_dirs.get(&lower) {
                sources.push(Source::Pbf(dir));
            } else if let Some(&i) = self.by_name.get(&lower)
                && !used[i]
            {
                used[i] = true;
                sources.push(Source::Face(i));
            }
        }
        sources.extend(self.fallback.iter().filter(|&&i| !used[i]).map(|&i| Source::Face(i)));

        let end = start + RANGE_LEN - 1;
        // The sources that have something in this range, each loaded once.
        let mut loaded: Vec<Loaded> = Vec::new();
        for source in &sources {
            match *source {
                Source::Face(i) if self.faces[i].covers(start) => {
                    if let Some(font) = self.font(i) {
                        loaded.push(Loaded::Font(font));
                    }
                }
                Source::Face(_) => {}
                Source::Pbf(dir) => {
                    let path = dir.join(format!("{start}-{end}.pbf"));
                    let glyphs = std::fs::read(&path).ok().and_then(|b| Glyphs::decode(b.as_slice()).ok());
                    if let Some(glyphs) = glyphs {
                        let by_id = glyphs.stacks.into_iter().flat_map(|s| s.glyphs).map(|g| (g.id, g)).collect();
                        loaded.push(Loaded::Pbf(by_id));
                    }
                }
            }
        }
        let mut glyphs = Vec::new();
        for code in start..=end {
            let Some(c) = char::from_u32(code) else { continue };
            let glyph = loaded.iter().find_map(|source| match source {
                Loaded::Font(font) => render_glyph(font, c),
                Loaded::Pbf(by_id) => by_id.get(&code).cloned(),
            });
            glyphs.extend(glyph);
        }
        let message = Glyphs { stacks: vec![Fontstack { name: names.join(","), range: format!("{start}-{end}"), glyphs }] };
        Bytes::from(message.encode_to_vec())
    }

    /// Face `i`, parsed (from memory if it was recently).
    fn font(&self, i: usize) -> Option<FontArc> {
        if let Some((font, _)) = self.fonts.get(&i) {
            return Some(font);
        }
        let (font, size) = match &self.faces[i].source {
            FaceSource::Builtin => (FontArc::try_from_slice(BUILTIN_TTF).ok()?, 1),
            FaceSource::File { path, index, size } => {
                match std::fs::read(path).map_err(|e| e.to_string()).and_then(|data| FontVec::try_from_vec_and_index(data, *index).map_err(|e| e.to_string())) {
                    Ok(font) => (FontArc::new(font), u32::try_from(*size).unwrap_or(u32::MAX)),
                    Err(e) => {
                        tracing::warn!(font = %self.faces[i].name, path = %path.display(), error = %e, "font file unreadable; its glyphs are left out");
                        return None;
                    }
                }
            }
        };
        self.fonts.insert(i, (font.clone(), size));
        Some(font)
    }
}

enum Loaded {
    Font(FontArc),
    Pbf(HashMap<u32, Glyph>),
}

fn source_path(source: &FaceSource) -> (Option<&Path>, u32) {
    match source {
        FaceSource::Builtin => (None, 0),
        FaceSource::File { path, index, .. } => (Some(path), *index),
    }
}

fn is_simplified_chinese(name: &str) -> bool {
    let words: Vec<&str> = name.split([' ', '-', '_']).collect();
    words.iter().any(|w| matches!(*w, "SC" | "CN" | "GB" | "Hans")) || name.contains("WenQuanYi")
}

fn is_regular(name: &str) -> bool {
    name.ends_with(" Regular") || name.ends_with(" Book") || name.ends_with(" Normal")
}

/// Walks `dir`, adding the faces of its font files and its directories of glyph PBFs.
fn scan(dir: &Path, depth: usize, faces: &mut Vec<Face>, pbf_dirs: &mut HashMap<String, PathBuf>, warnings: &mut Vec<String>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            warnings.push(format!("{}: {e}", dir.display()));
            return;
        }
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            if path.join("0-255.pbf").is_file() {
                pbf_dirs.entry(name.to_lowercase()).or_insert_with(|| path.clone());
            } else if depth < MAX_DEPTH {
                scan(&path, depth + 1, faces, pbf_dirs, warnings);
            }
            continue;
        }
        let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
        if !matches!(ext.as_str(), "ttf" | "otf" | "ttc" | "otc") {
            continue;
        }
        let data = match std::fs::read(&path) {
            Ok(data) => data,
            Err(e) => {
                warnings.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let count = ttf_parser::fonts_in_collection(&data).unwrap_or(1);
        for index in 0..count {
            match ttf_parser::Face::parse(&data, index) {
                Ok(face) => match face_name(&face) {
                    Some(font_name) => faces.push(Face {
                        name: font_name,
                        source: FaceSource::File { path: path.clone(), index, size: data.len() as u64 },
                        coverage: coverage(&face),
                    }),
                    None => warnings.push(format!("{} (face {index}): no family name; skipped", path.display())),
                },
                Err(e) => warnings.push(format!("{} (face {index}): not a font ({e}); skipped", path.display())),
            }
        }
    }
}

/// `"<family> <style>"` from the name table: the typographic family and subfamily (IDs 16,
/// 17) when present, else the family and subfamily (1, 2); English (US) names preferred.
fn face_name(face: &ttf_parser::Face<'_>) -> Option<String> {
    use ttf_parser::name_id;
    let get = |id: u16| {
        let mut best: Option<(u8, String)> = None;
        for name in face.names() {
            if name.name_id != id {
                continue;
            }
            let Some(text) = name.to_string() else { continue };
            let rank = match (name.platform_id, name.language_id) {
                (ttf_parser::PlatformId::Windows, 0x0409) => 0,
                (ttf_parser::PlatformId::Unicode, _) => 1,
                (ttf_parser::PlatformId::Macintosh, 0) => 2,
                _ => 3,
            };
            if best.as_ref().is_none_or(|(r, _)| rank < *r) {
                best = Some((rank, text));
            }
        }
        best.map(|(_, t)| t.trim().to_owned()).filter(|t| !t.is_empty())
    };
    let family = get(name_id::TYPOGRAPHIC_FAMILY).or_else(|| get(name_id::FAMILY))?;
    let style = get(name_id::TYPOGRAPHIC_SUBFAMILY).or_else(|| get(name_id::SUBFAMILY)).unwrap_or_else(|| "Regular".to_owned());
    Some(format!("{family} {style}"))
}

fn coverage_of(data: &[u8], index: u32) -> Vec<u64> {
    ttf_parser::Face::parse(data, index).map(|f| coverage(&f)).unwrap_or_default()
}

/// Which ranges of 256 code points the face's Unicode cmap subtables map.
fn coverage(face: &ttf_parser::Face<'_>) -> Vec<u64> {
    let mut bits = vec![0u64; (0x110000 / RANGE_LEN as usize).div_ceil(64)];
    if let Some(cmap) = face.tables().cmap {
        for sub in cmap.subtables {
            if !sub.is_unicode() {
                continue;
            }
            sub.codepoints(|c| {
                if c <= 0x10FFFF && sub.glyph_index(c).is_some_and(|g| g.0 != 0) {
                    let r = (c / RANGE_LEN) as usize;
                    bits[r / 64] |= 1 << (r % 64);
                }
            });
        }
    }
    bits
}

/// The glyph of `c` in `font` (None: the font has none), rendered as MapLibre wants it.
pub fn render_glyph(font: &impl Font, c: char) -> Option<Glyph> {
    let id = font.glyph_id(c);
    if id.0 == 0 {
        return None;
    }
    let units_per_em = font.units_per_em()?;
    let factor = SIZE_PX / units_per_em;
    let advance = (font.h_advance_unscaled(id) * factor).round().max(0.0) as u32;
    let ascender = (font.ascent_unscaled() * factor).ceil() as i32;
    // ab_glyph scales by the font's height (ascent - descent): this makes one em SIZE_PX.
    let scale = PxScale::from(SIZE_PX * font.height_unscaled() / units_per_em);
    let (width, height, left, top, alpha) = match font.outline_glyph(id.with_scale_and_position(scale, point(0.0, 0.0))) {
        Some(outline) => {
            let bounds = outline.px_bounds();
            let (w, h) = (bounds.width() as usize, bounds.height() as usize);
            let mut alpha = vec![0u8; w * h];
            outline.draw(|x, y, coverage| {
                if let Some(px) = alpha.get_mut(y as usize * w + x as usize) {
                    *px = (coverage.clamp(0.0, 1.0) * 255.0).round() as u8;
                }
            });
            (w, h, bounds.min.x as i32, -bounds.min.y as i32, alpha)
        }
        None => (0, 0, 0, 0, Vec::new()), // a space: metrics only
    };
    let bitmap = BitmapGlyph::from_unbuffered(&alpha, width, height, BUFFER).ok()?;
    let sdf = clamp_to_u8(&bitmap.render_sdf(RADIUS), CUTOFF).ok()?;
    Some(Glyph { id: c as u32, bitmap: Some(sdf), width: width as u32, height: height as u32, left, top: top - ascender, advance })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_256_code_points_from_a_multiple_of_256() {
        assert_eq!(parse_range("0-255").unwrap(), 0);
        assert_eq!(parse_range("19968-20223").unwrap(), 19968);
        assert_eq!(parse_range("65280-65535").unwrap(), 65280);
        for bad in ["", "0-254", "1-256", "-255", "a-b", "0-255.pbf", "256-255", "1114112-1114367", "00000000-255"] {
            assert!(parse_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stacks_are_trimmed_names() {
        assert_eq!(parse_stack("Open Sans Semibold, Noto Sans CJK SC Regular").unwrap(), ["Open Sans Semibold", "Noto Sans CJK SC Regular"]);
        for bad in ["a,,b", "a\nb", "../etc", ".hidden", "a/b", "a\\b"] {
            assert!(parse_stack(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_builtin_font_has_latin_but_no_ideographs() {
        let lib = FontLibrary::builtin();
        assert_eq!(lib.names(), [BUILTIN_FONT]);
        let range = lib.range(BUILTIN_FONT, 0).unwrap();
        let latin = Glyphs::decode(range.pbf.clone()).unwrap();
        let mut unzipped = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&range.gzip()[..]), &mut unzipped).unwrap();
        assert_eq!(unzipped, range.pbf);
        let ids: Vec<u32> = latin.stacks[0].glyphs.iter().map(|g| g.id).collect();
        assert!(ids.contains(&('A' as u32)) && ids.contains(&('9' as u32)) && ids.contains(&0x20), "{ids:?}");
        assert!(!ids.contains(&0x0A), "no control characters");
        let cjk = Glyphs::decode(lib.range(BUILTIN_FONT, 0x4E00).unwrap().pbf.clone()).unwrap();
        assert_eq!((cjk.stacks.len(), cjk.stacks[0].glyphs.len(), cjk.stacks[0].range.as_str()), (1, 0, "19968-20223"));
    }

    #[test]
    fn simplified_chinese_faces_fall_back_first() {
        assert!(is_simplified_chinese("Noto Sans CJK SC Regular") && is_simplified_chinese("WenQuanYi Micro Hei Regular"));
        assert!(!is_simplified_chinese("Noto Sans CJK JP Regular") && !is_simplified_chinese("DejaVu Sans Book"));
    }
}
