//! Label glyphs over HTTP through the real router: `/fonts/{fontstack}/{range}.pbf` decoded
//! with this test's own copy of MapLibre's glyph protobuf, checked against metrics read from
//! the font file with ttf-parser (an independent reader): Latin from the built-in font with no
//! font directory, any font stack answered, an empty (valid) set where no font has glyphs,
//! stack order with a directory of ready PBFs, and CJK ideographs from a font directory of
//! Chinese fonts when the machine has one (`.ci/fonts.sh` installs fonts-wqy-microhei).

mod common;

use std::path::{Path, PathBuf};

use axum::http::{StatusCode, header};
use prost::Message;

use citygrid::http::{AppState, router};

/// MapLibre's `glyphs.proto` (package llmr.glyphs), written out here so the test does not
/// decode with the server's own structs.
mod pbf {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Glyph {
        #[prost(uint32, required, tag = "1")]
        pub id: u32,
        #[prost(bytes = "vec", optional, tag = "2")]
        pub bitmap: Option<Vec<u8>>,
        #[prost(uint32, required, tag = "3")]
        pub width: u32,
        #[prost(uint32, required, tag = "4")]
        pub height: u32,
        #[prost(sint32, required, tag = "5")]
        pub left: i32,
        #[prost(sint32, required, tag = "6")]
        pub top: i32,
        #[prost(uint32, required, tag = "7")]
        pub advance: u32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Fontstack {
        #[prost(string, required, tag = "1")]
        pub name: String,
        #[prost(string, required, tag = "2")]
        pub range: String,
        #[prost(message, repeated, tag = "3")]
        pub glyphs: Vec<Glyph>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Glyphs {
        #[prost(message, repeated, tag = "1")]
        pub stacks: Vec<Fontstack>,
    }
}

/// The built-in font's file, as vendored.
const BUILTIN_TTF: &[u8] = include_bytes!("../vendor/fonts/OpenSans-Semibold-subset.ttf");
const BORDER: u32 = 3;

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    get_with(app, uri, &[]).await
}

async fn get_with(app: &axum::Router, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let a = common::http::get_with(app, uri, headers).await;
    (a.status, a.headers, a.body)
}

/// The one font stack of a 200 glyph answer.
async fn glyphs(app: &axum::Router, stack: &str, range: &str) -> pbf::Fontstack {
    let uri = format!("/fonts/{}/{range}.pbf", stack.replace(' ', "%20"));
    let (status, headers, body) = get(app, &uri).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {}", String::from_utf8_lossy(&body));
    assert_eq!(headers[header::CONTENT_TYPE], "application/x-protobuf", "{uri}");
    let mut decoded = pbf::Glyphs::decode(&body[..]).unwrap_or_else(|e| panic!("{uri}: not a glyph PBF: {e}"));
    assert_eq!(decoded.stacks.len(), 1, "{uri}");
    let stack_answer = decoded.stacks.remove(0);
    assert_eq!(stack_answer.range, range, "{uri}");
    stack_answer
}

fn glyph(set: &pbf::Fontstack, c: char) -> &pbf::Glyph {
    set.glyphs.iter().find(|g| g.id == c as u32).unwrap_or_else(|| panic!("no glyph {c:?} in {}", set.range))
}

/// The glyph's bitmap is its ink plus a 3 px border on each side, one byte a pixel.
fn assert_bitmap_size(g: &pbf::Glyph) {
    let bitmap = g.bitmap.as_ref().expect("a bitmap");
    assert_eq!(bitmap.len() as u32, (g.width + 2 * BORDER) * (g.height + 2 * BORDER), "glyph {}", g.id);
}

fn tiny_app(data: &Path) -> axum::Router {
    router(AppState::new(common::tiny_world(data)))
}

fn near(a: i64, b: i64, what: &str) {
    assert!((a - b).abs() <= 1, "{what}: {a} vs {b}");
}

#[tokio::test]
async fn latin_glyphs_come_from_the_built_in_font_with_its_metrics() {
    let data = tempfile::tempdir().unwrap();
    let app = tiny_app(data.path());
    let set = glyphs(&app, "Open Sans Semibold", "0-255").await;
    assert_eq!(set.name, "Open Sans Semibold");
    let ids: Vec<u32> = set.glyphs.iter().map(|g| g.id).collect();
    for c in (0x20..=0x7E).chain(0xA0..=0xFF) {
        assert!(ids.contains(&c), "U+{c:04X} is in the built-in font");
    }
    assert!(ids.iter().all(|&id| id >= 0x20), "no control characters: {ids:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in code point order");

    // Metrics against the font file itself, read with ttf-parser: 24 px to the em.
    let face = ttf_parser::Face::parse(BUILTIN_TTF, 0).unwrap();
    let px = 24.0 / f64::from(face.units_per_em());
    let ascender = (f64::from(face.ascender()) * px).ceil() as i64;
    for c in ['A', 'g', 'I', '7', 'é', 'W'] {
        let g = glyph(&set, c);
        let id = face.glyph_index(c).unwrap();
        let bbox = face.glyph_bounding_box(id).unwrap();
        let advance = (f64::from(face.glyph_hor_advance(id).unwrap()) * px).round() as i64;
        assert_eq!(i64::from(g.advance), advance, "{c} advance");
        let (x0, x1) = ((f64::from(bbox.x_min) * px).floor() as i64, (f64::from(bbox.x_max) * px).ceil() as i64);
        let (y0, y1) = ((f64::from(bbox.y_min) * px).floor() as i64, (f64::from(bbox.y_max) * px).ceil() as i64);
        near(i64::from(g.width), x1 - x0, &format!("{c} width"));
        near(i64::from(g.height), y1 - y0, &format!("{c} height"));
        near(i64::from(g.left), x0, &format!("{c} left"));
        near(i64::from(g.top), y1 - ascender, &format!("{c} top"));
        assert_bitmap_size(g);
    }
    // The field: inside the stem of an I above the outline value (192), the border far below it.
    let i = glyph(&set, 'I');
    let row = (i.width + 2 * BORDER) as usize;
    let bitmap = i.bitmap.as_ref().unwrap();
    let centre = bitmap[(BORDER + i.height / 2) as usize * row + (BORDER + i.width / 2) as usize];
    assert!(centre > 192, "inside the stem: {centre}");
    assert!(bitmap[0] < 150 && bitmap[bitmap.len() - 1] < 150, "outside the ink: {} {}", bitmap[0], bitmap[bitmap.len() - 1]);
    // Sent gzip-compressed to a client that accepts it (the same PBF), with an ETag: 304.
    let uri = "/fonts/Open%20Sans%20Semibold/0-255.pbf";
    let (_, plain_headers, plain) = get(&app, uri).await;
    let (status, headers, gz) = get_with(&app, uri, &[("accept-encoding", "gzip, deflate, br")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
    assert!(gz.len() * 2 < plain.len(), "{} of {}", gz.len(), plain.len());
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut unzipped).unwrap();
    assert_eq!(unzipped, plain);
    let etag = plain_headers[header::ETAG].to_str().unwrap();
    assert_eq!(headers[header::ETAG], etag);
    let (status, _, body) = get_with(&app, uri, &[("if-none-match", etag)]).await;
    assert_eq!((status, body.len()), (StatusCode::NOT_MODIFIED, 0));
    // A space has metrics and no ink.
    let space = glyph(&set, ' ');
    assert_eq!((space.width, space.height), (0, 0));
    assert!(space.advance > 3, "{}", space.advance);
    assert_bitmap_size(space);
}

#[tokio::test]
async fn any_stack_gets_labels_and_a_range_no_font_has_is_an_empty_set() {
    let data = tempfile::tempdir().unwrap();
    let app = tiny_app(data.path());
    // A font this server lacks (another client's style): the built-in font stands in.
    let other = glyphs(&app, "Arial Unicode MS Regular,Noto Sans Bold", "0-255").await;
    assert_eq!(other.name, "Arial Unicode MS Regular,Noto Sans Bold");
    assert!(glyph(&other, '0').width > 0 && glyph(&other, 'Z').width > 0);
    // Every stack of the served style gets its digits and Latin letters.
    let (_, _, style) = get(&app, "/styles/citygrid.json").await;
    let style: serde_json::Value = serde_json::from_slice(&style).unwrap();
    let stacks: std::collections::BTreeSet<String> = style["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["layout"]["text-font"].as_array())
        .map(|names| names.iter().map(|n| n.as_str().unwrap()).collect::<Vec<_>>().join(","))
        .collect();
    assert!(!stacks.is_empty());
    for stack in &stacks {
        let set = glyphs(&app, stack, "0-255").await;
        assert!("0123456789ABCxyz".chars().all(|c| glyph(&set, c).width > 0), "{stack}");
    }
    // Ideographs with no font directory: a valid, empty set, not a 404 (the viewer draws them
    // from the browser's fonts).
    let cjk = glyphs(&app, "Open Sans Semibold,Noto Sans CJK SC Regular", "19968-20223").await;
    assert!(cjk.glyphs.is_empty());
    let high = glyphs(&app, "Open Sans Semibold", "65280-65535").await;
    assert!(high.glyphs.is_empty());

    for bad in [
        "/fonts/Open%20Sans%20Semibold/0-255",
        "/fonts/Open%20Sans%20Semibold/1-256.pbf",
        "/fonts/Open%20Sans%20Semibold/0-511.pbf",
        "/fonts/..%2F..%2Fetc/0-255.pbf",
        "/fonts/.hidden/0-255.pbf",
        "/fonts/a,,b/0-255.pbf",
    ] {
        let (status, _, body) = get(&app, bad).await;
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_parameter")), "{bad}");
    }
}

#[tokio::test]
async fn a_font_directory_of_ready_pbfs_is_a_font_and_the_stack_order_wins() {
    let data = tempfile::tempdir().unwrap();
    let fonts = tempfile::tempdir().unwrap();
    let dir = fonts.path().join("Ready Glyphs");
    std::fs::create_dir_all(&dir).unwrap();
    let mark = |id: u32| pbf::Glyph { id, bitmap: Some(vec![7; 49]), width: 1, height: 1, left: 0, top: -5, advance: 99 };
    let file = pbf::Glyphs { stacks: vec![pbf::Fontstack { name: "Ready Glyphs".into(), range: "0-255".into(), glyphs: vec![mark(1), mark('A' as u32)] }] };
    std::fs::write(dir.join("0-255.pbf"), file.encode_to_vec()).unwrap();
    let app = router(AppState::new(common::tiny_world(data.path())).with_fonts_dir(fonts.path().to_owned()));

    let first = glyphs(&app, "Ready Glyphs,Open Sans Semibold", "0-255").await;
    assert_eq!(glyph(&first, 'A').advance, 99, "the stack's first font has A");
    assert_eq!(glyph(&first, '\u{1}').advance, 99, "only it has U+0001");
    assert_ne!(glyph(&first, 'B').advance, 99, "B from the next font");
    let second = glyphs(&app, "Open Sans Semibold,Ready Glyphs", "0-255").await;
    assert_ne!(glyph(&second, 'A').advance, 99, "the built-in A comes first now");
    assert_eq!(glyph(&second, '\u{1}').advance, 99);
    // Its other ranges are not there: the next fonts answer.
    assert!(glyphs(&app, "Ready Glyphs", "256-511").await.glyphs.iter().any(|g| g.id == 0x0152), "Œ from the built-in font");
}

/// A directory with a Chinese font: `CITYGRID_CJK_FONTS` or Debian's fonts-noto-cjk or
/// fonts-wqy-microhei / -zenhei.
fn cjk_font_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CITYGRID_CJK_FONTS") {
        return Some(PathBuf::from(dir));
    }
    ["/usr/share/fonts/opentype/noto", "/usr/share/fonts/truetype/wqy"].into_iter().map(PathBuf::from).find(|d| {
        std::fs::read_dir(d).is_ok_and(|mut e| {
            e.any(|f| f.is_ok_and(|f| f.file_name().to_string_lossy().to_lowercase().contains("cjk") || f.file_name().to_string_lossy().starts_with("wqy")))
        })
    })
}

#[tokio::test]
async fn ideographs_come_from_a_font_directory_with_a_chinese_font() {
    let Some(dir) = cjk_font_dir() else {
        eprintln!(
            "SKIPPED ideographs_come_from_a_font_directory_with_a_chinese_font: no Chinese font on this machine \
             (run .ci/fonts.sh, or apt-get install fonts-wqy-microhei, or set CITYGRID_CJK_FONTS=DIR)"
        );
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let app = router(AppState::new(common::tiny_world(data.path())).with_fonts_dir(dir.clone()));
    // The style's label stack: Noto Sans CJK SC if the directory has it, else its Chinese font.
    let set = glyphs(&app, "Open Sans Semibold,Noto Sans CJK SC Regular", "19968-20223").await;
    assert!(set.glyphs.len() > 200, "{} ideographs of 256 from {}", set.glyphs.len(), dir.display());
    for c in ['一', '中', '丰'] {
        let g = glyph(&set, c);
        assert_bitmap_size(g);
        assert!((20..=26).contains(&g.advance), "{c}: a full-width advance at 24 px: {}", g.advance);
        assert!((15..=24).contains(&g.width), "{c}: {}×{}", g.width, g.height);
    }
    for c in ['中', '丰'] {
        let g = glyph(&set, c);
        assert!((15..=24).contains(&g.height), "{c}: as tall as an ideograph: {}×{}", g.width, g.height);
    }
    let yi = glyph(&set, '一');
    assert!(yi.height < 6, "一 is a flat stroke: {}×{}", yi.width, yi.height);
    // Latin of the same stack still from the built-in font.
    let latin = glyphs(&app, "Open Sans Semibold,Noto Sans CJK SC Regular", "0-255").await;
    let other = tempfile::tempdir().unwrap();
    let builtin = glyphs(&tiny_app(other.path()), "Open Sans Semibold", "0-255").await;
    assert_eq!(glyph(&latin, 'A'), glyph(&builtin, 'A'));
}
