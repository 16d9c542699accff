//! A small WKT reader: enough of WKT1 (ESRI and OGC) and WKT2 for the `.prj` files of the
//! Transverse Mercator / Gauss-Krüger and Web Mercator families.

use super::{Area, AxisOrder, CUSTOM_TM_HALF_WIDTH_DEG, Crs, CrsError, Engine, builtin_proj};

#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Str(String),
    Num(f64),
    Word(String),
    Node(Node),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub key: String,
    pub args: Vec<Arg>,
}

impl Node {
    fn is(&self, keys: &[&str]) -> bool {
        keys.iter().any(|k| self.key.eq_ignore_ascii_case(k))
    }
    fn children<'a>(&'a self, keys: &'a [&'a str]) -> impl Iterator<Item = &'a Node> + 'a {
        self.args.iter().filter_map(move |a| match a {
            Arg::Node(n) if n.is(keys) => Some(n),
            _ => None,
        })
    }
    fn child(&self, keys: &[&str]) -> Option<&Node> {
        self.args.iter().find_map(|a| match a {
            Arg::Node(n) if n.is(keys) => Some(n),
            _ => None,
        })
    }
    /// Depth-first search for a node.
    fn find(&self, keys: &[&str]) -> Option<&Node> {
        self.args.iter().find_map(|a| match a {
            Arg::Node(n) if n.is(keys) => Some(n),
            Arg::Node(n) => n.find(keys),
            _ => None,
        })
    }
    fn str(&self, i: usize) -> Option<&str> {
        match self.args.get(i) {
            Some(Arg::Str(s)) | Some(Arg::Word(s)) => Some(s),
            _ => None,
        }
    }
    fn num(&self, i: usize) -> Option<f64> {
        match self.args.get(i) {
            Some(Arg::Num(v)) => Some(*v),
            Some(Arg::Str(s)) => s.trim().parse().ok(),
            _ => None,
        }
    }
    fn name(&self) -> &str {
        self.str(0).unwrap_or("")
    }
}

fn unsupported(msg: impl Into<String>) -> CrsError {
    CrsError::UnsupportedWkt(msg.into())
}

pub fn parse(text: &str) -> Result<Node, CrsError> {
    let mut p = Parser { s: text.as_bytes(), i: 0, depth: 0 };
    p.ws();
    let node = p.node()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(unsupported(format!("trailing text after the WKT at byte {}", p.i)));
    }
    Ok(node)
}

/// The deepest nesting of nodes read: a real CRS nests 6 or 7 deep (PROJCRS › BASEGEOGCRS ›
/// DATUM › ELLIPSOID › LENGTHUNIT); without a bound, `A[A[A[…` in a 1 MB `.prj` would
/// overflow the stack of the thread reading it.
const MAX_DEPTH: usize = 32;

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    /// Nodes open around the one being read.
    depth: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn err(&self, what: &str) -> CrsError {
        unsupported(format!("malformed WKT: {what} at byte {}", self.i))
    }
    fn ident(&mut self) -> String {
        let start = self.i;
        while self.i < self.s.len() && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_') {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }
    fn node(&mut self) -> Result<Node, CrsError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.err(&format!("nodes nested more than {MAX_DEPTH} deep")));
        }
        self.depth += 1;
        let node = self.node_inner();
        self.depth -= 1;
        node
    }
    fn node_inner(&mut self) -> Result<Node, CrsError> {
        let key = self.ident();
        if key.is_empty() {
            return Err(self.err("expected a keyword"));
        }
        self.ws();
        let close = match self.s.get(self.i) {
            Some(b'[') => b']',
            Some(b'(') => b')',
            _ => return Err(self.err("expected [")),
        };
        self.i += 1;
        let mut args = Vec::new();
        loop {
            self.ws();
            if self.s.get(self.i) == Some(&close) && args.is_empty() {
                self.i += 1;
                break;
            }
            args.push(self.arg()?);
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(c) if *c == close => {
                    self.i += 1;
                    break;
                }
                _ => return Err(self.err("expected , or ]")),
            }
        }
        Ok(Node { key, args })
    }
    fn arg(&mut self) -> Result<Arg, CrsError> {
        match self.s.get(self.i) {
            Some(b'"') => {
                self.i += 1;
                let mut out = Vec::new();
                loop {
                    match self.s.get(self.i) {
                        None => return Err(self.err("unterminated string")),
                        Some(b'"') if self.s.get(self.i + 1) == Some(&b'"') => {
                            out.push(b'"');
                            self.i += 2;
                        }
                        Some(b'"') => {
                            self.i += 1;
                            break;
                        }
                        Some(c) => {
                            out.push(*c);
                            self.i += 1;
                        }
                    }
                }
                Ok(Arg::Str(String::from_utf8_lossy(&out).into_owned()))
            }
            Some(c) if c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.') => {
                let start = self.i;
                while self.i < self.s.len() && (self.s[self.i].is_ascii_digit() || matches!(self.s[self.i], b'-' | b'+' | b'.' | b'e' | b'E')) {
                    self.i += 1;
                }
                let t = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                t.parse().map(Arg::Num).map_err(|_| self.err("bad number"))
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let save = self.i;
                let word = self.ident();
                self.ws();
                if matches!(self.s.get(self.i), Some(b'[') | Some(b'(')) {
                    self.i = save;
                    self.node().map(Arg::Node)
                } else {
                    Ok(Arg::Word(word))
                }
            }
            _ => Err(self.err("unexpected character")),
        }
    }
}

/// lowercase, every run of non-alphanumerics → '_'.
fn norm(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_owned()
}

const PROJECTED: &[&str] = &["PROJCS", "PROJCRS", "PROJECTEDCRS"];
const GEOGRAPHIC: &[&str] = &["GEOGCS", "GEOGCRS", "GEODCRS", "GEOGRAPHICCRS", "GEODETICCRS"];
const BASE: &[&str] = &["GEOGCS", "BASEGEOGCRS", "BASEGEODCRS", "GEOGCRS", "GEODCRS"];

fn epsg_id(node: &Node) -> Option<u32> {
    node.children(&["AUTHORITY", "ID"])
        .find(|a| a.name().eq_ignore_ascii_case("EPSG"))
        .and_then(|a| a.num(1))
        .filter(|v| v.fract() == 0.0 && *v > 0.0)
        .map(|v| v as u32)
}

#[derive(Debug, PartialEq)]
enum DatumKind {
    Cgcs2000,
    Wgs84,
    /// Any other datum with a TOWGS84 shift.
    Shifted(String),
}

/// The datum of a GEOGCS-like node, refusing those whose shift to WGS84 is unknown.
fn datum_of(geog: &Node) -> Result<(DatumKind, Option<(f64, f64)>), CrsError> {
    let datum = geog.find(&["DATUM", "GEODETICDATUM", "TRF"]);
    let name = datum.map(|d| norm(d.name())).unwrap_or_default();
    let ellps = geog.find(&["SPHEROID", "ELLIPSOID"]).and_then(|s| Some((s.num(1)?, s.num(2)?)));
    let towgs84 = geog.find(&["TOWGS84"]).map(|t| {
        t.args
            .iter()
            .filter_map(|a| match a {
                Arg::Num(v) => Some(*v),
                _ => None,
            })
            .collect::<Vec<_>>()
    });
    if let Some(t) = towgs84 {
        let t: Vec<String> = t.iter().map(|v| v.to_string()).collect();
        if t.len() == 3 || t.len() == 7 {
            return Ok((DatumKind::Shifted(t.join(",")), ellps));
        }
    }
    let kind = if name.contains("2000") && (name.contains("china") || name.contains("cgcs")) {
        DatumKind::Cgcs2000
    } else if name.contains("wgs_1984") || name.contains("wgs84") || name.contains("world_geodetic_system_1984") {
        DatumKind::Wgs84
    } else {
        return Err(unsupported(format!(
            "datum {:?} has no TOWGS84[…] and is not CGCS2000 or WGS84: its shift to WGS84 is unknown",
            datum.map(|d| d.name()).unwrap_or("(none)")
        )));
    };
    Ok((kind, ellps))
}

pub fn interpret(root: &Node) -> Result<Crs, CrsError> {
    if let Some(code) = epsg_id(root)
        && super::builtin(code).is_some()
    {
        return Crs::from_epsg(code);
    }
    if root.is(GEOGRAPHIC) {
        let (kind, _) = datum_of(root)?;
        return match kind {
            DatumKind::Cgcs2000 => Crs::from_epsg(4490),
            DatumKind::Wgs84 => Crs::from_epsg(4326),
            DatumKind::Shifted(_) => Err(unsupported("geographic CRS on a shifted datum")),
        };
    }
    if !root.is(PROJECTED) {
        return Err(unsupported(format!("{} is neither a projected nor a geographic CRS", root.key)));
    }
    let wkt_name = root.name().to_owned();
    let geog = root.child(BASE).ok_or_else(|| unsupported("no GEOGCS in the PROJCS"))?;
    let (kind, ellps) = datum_of(geog)?;
    let method = root
        .child(&["PROJECTION"])
        .or_else(|| root.child(&["CONVERSION"]).and_then(|c| c.child(&["METHOD", "PROJECTION"])))
        .map(|m| norm(m.name()))
        .ok_or_else(|| unsupported("no PROJECTION"))?;
    let conv = root.child(&["CONVERSION"]).unwrap_or(root);
    let param = |names: &[&str], default: f64| -> f64 {
        conv.children(&["PARAMETER"]).find(|p| names.contains(&norm(p.name()).as_str())).and_then(|p| p.num(1)).unwrap_or(default)
    };
    let unit =
        root.child(&["UNIT", "LENGTHUNIT"]).or_else(|| root.child(&["CS"]).and_then(|_| root.find(&["LENGTHUNIT"]))).and_then(|u| u.num(1)).unwrap_or(1.0);
    match method.as_str() {
        "mercator_auxiliary_sphere" | "popular_visualisation_pseudo_mercator" => return Crs::from_epsg(3857),
        "transverse_mercator" | "gauss_kruger" => {}
        other => {
            return Err(unsupported(format!("projection {other:?} (only Transverse Mercator / Gauss-Kruger and Web Mercator are built in)")));
        }
    }
    let lon0 = param(&["central_meridian", "longitude_of_natural_origin", "longitude_of_origin"], 0.0);
    let lat0 = param(&["latitude_of_origin", "latitude_of_natural_origin"], 0.0);
    let k = param(&["scale_factor", "scale_factor_at_natural_origin"], 1.0);
    let x0 = param(&["false_easting"], 0.0) * unit;
    let y0 = param(&["false_northing"], 0.0) * unit;

    // An EPSG code it is (same formulas, same numbers)?
    let is_int = |v: f64| v.fract() == 0.0;
    if (unit - 1.0).abs() < 1e-12 && lat0 == 0.0 && is_int(lon0) {
        let cm = lon0 as i64;
        match kind {
            DatumKind::Cgcs2000 if k == 1.0 && y0 == 0.0 => {
                let six_cm = (75..=135).contains(&cm) && (cm - 75) % 6 == 0;
                let three_cm = (75..=135).contains(&cm) && cm % 3 == 0;
                let n = norm(&wkt_name);
                let three_degree = n.contains("3_degree");
                let code = if x0 == 500_000.0 {
                    if six_cm && !three_degree {
                        Some(4502 + (cm - 75) / 6)
                    } else if three_cm {
                        Some(4534 + (cm - 75) / 3)
                    } else {
                        None
                    }
                } else if is_int((x0 - 500_000.0) / 1e6) {
                    let zone = ((x0 - 500_000.0) / 1e6) as i64;
                    if (13..=23).contains(&zone) && cm == zone * 6 - 3 {
                        Some(4491 + zone - 13)
                    } else if (25..=45).contains(&zone) && cm == zone * 3 {
                        Some(4513 + zone - 25)
                    } else {
                        None
                    }
                } else {
                    None
                };
                if let Some(code) = code {
                    return Crs::from_epsg(code as u32);
                }
            }
            DatumKind::Wgs84 if k == 0.9996 && x0 == 500_000.0 && (cm + 183) % 6 == 0 => {
                let zone = (cm + 183) / 6;
                if (1..=60).contains(&zone) {
                    if y0 == 0.0 {
                        return Crs::from_epsg(32600 + zone as u32);
                    } else if y0 == 10_000_000.0 {
                        return Crs::from_epsg(32700 + zone as u32);
                    }
                }
            }
            _ => {}
        }
    }

    // A Transverse Mercator of its own.
    let ellps = match (&kind, ellps) {
        (_, Some((a, rf))) => format!("+a={a} +rf={rf}"),
        (DatumKind::Wgs84, None) => "+ellps=WGS84".into(),
        _ => "+ellps=GRS80".into(),
    };
    let shift = match &kind {
        DatumKind::Shifted(t) => format!(" +towgs84={t}"),
        _ => String::new(),
    };
    let units = if (unit - 1.0).abs() < 1e-12 { "+units=m".to_owned() } else { format!("+to_meter={unit}") };
    let def = format!("+proj=tmerc +lat_0={lat0} +lon_0={lon0} +k={k} +x_0={} +y_0={} {ellps}{shift} {units} +no_defs", x0 / unit, y0 / unit);
    let proj = builtin_proj(&def)?;
    Ok(Crs {
        name: if wkt_name.is_empty() { def.clone() } else { wkt_name },
        epsg: None,
        axis: AxisOrder::EastNorth,
        area: Area { west: lon0 - CUSTOM_TM_HALF_WIDTH_DEG, south: -90.0, east: lon0 + CUSTOM_TM_HALF_WIDTH_DEG, north: 90.0 },
        definition: Some(def),
        engine: Engine::Builtin(proj),
    })
}
