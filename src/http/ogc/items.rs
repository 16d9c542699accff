//! The features of the three collections: their filters, their pages and their GeoJSON.
//!
//! Grids and zones (thousands) are filtered whole and paged by `offset`. Components (up to
//! millions) are walked in code order through the component index, so a page costs what it
//! returns, not the whole layer: `next` links carry a `cursor` (the last code of the page), and
//! an `offset` is walked to.

use chrono::NaiveDate;
use geo_types::{Coord, MultiPolygon, Rect};
use serde::Serialize;
use serde_json::json;

use super::crs::{BboxFilter, OgcCrs};
use super::query::{DateRange, Query, Start, invalid};
use crate::http::error::ApiError;
use crate::lookup;
use crate::model::{ClassCode, Component, ComponentCode, Grid, GridCode, GridId, Status, UnitId, Zone, is_layer_name};
use crate::store::fgb::{FeatureChunk, StreamValue};
use crate::world::World;

/// The collections served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Collection {
    Grids,
    Components,
    Zones,
}

/// Parameters every `/items` takes.
const COMMON: [&str; 7] = ["f", "limit", "offset", "bbox", "bbox-crs", "crs", "datetime"];

impl Collection {
    pub const ALL: [Collection; 3] = [Collection::Grids, Collection::Components, Collection::Zones];

    pub fn id(self) -> &'static str {
        match self {
            Collection::Grids => "grids",
            Collection::Components => "components",
            Collection::Zones => "zones",
        }
    }

    /// The collection named `id`, or a 404 naming the ones there are.
    pub fn from_id(id: &str) -> Result<Collection, ApiError> {
        Collection::ALL.into_iter().find(|c| c.id() == id).ok_or_else(|| {
            ApiError::new(axum::http::StatusCode::NOT_FOUND, "unknown_collection", format!("no collection {id:?}"))
                .with_details(json!({"collection": id, "collections": Collection::ALL.map(Collection::id)}))
        })
    }

    /// The property filters of its `/items`.
    pub fn filters(self) -> &'static [&'static str] {
        match self {
            Collection::Grids => &["level", "parent", "code"],
            Collection::Components => &["class", "grid", "dept", "owner", "maintainer", "status"],
            Collection::Zones => &["layer"],
        }
    }

    /// Every parameter its `/items` takes.
    pub fn items_params(self) -> Vec<&'static str> {
        let mut all: Vec<&str> = COMMON.to_vec();
        if self == Collection::Components {
            all.push("cursor");
        }
        all.extend(self.filters());
        all
    }
}

/// One page of features, serialised.
pub struct Page {
    /// The features as JSON objects separated by commas (the inside of the `features` array).
    pub features: Vec<u8>,
    pub returned: usize,
    /// Features matching the request (all pages).
    pub matched: u64,
    /// Where the next page starts, if there is one.
    pub next: Option<Start>,
}

/// The selection of a request, common to all collections.
pub struct Selection<'a> {
    pub bbox: Option<&'a BboxFilter>,
    pub datetime: Option<DateRange>,
    pub crs: &'a OgcCrs,
    pub limit: usize,
    pub start: Start,
}

// ---------------------------------------------------------------- GeoJSON

#[derive(Serialize)]
#[serde(tag = "type", content = "coordinates")]
enum Geometry {
    Point([f64; 2]),
    MultiPolygon(Vec<Vec<Vec<[f64; 2]>>>),
}

#[derive(Serialize)]
struct Feature<'a, P: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    geometry: Geometry,
    properties: P,
    #[serde(skip_serializing_if = "Option::is_none")]
    links: Option<&'a serde_json::Value>,
}

/// The properties of a grid, named as the stored layer names them.
#[derive(Serialize)]
struct GridProperties<'a> {
    code: GridCode,
    name: &'a str,
    /// 1 = top level (district).
    level: usize,
    parent: Option<GridCode>,
    unit: Option<&'a str>,
    chief_name: Option<&'a str>,
    chief_phone: Option<&'a str>,
    valid_from: Option<NaiveDate>,
    valid_to: Option<NaiveDate>,
}

#[derive(Serialize)]
struct ComponentProperties<'a> {
    code: ComponentCode,
    class: ClassCode,
    name: &'a str,
    dept: Option<&'a str>,
    owner: Option<&'a str>,
    maintainer: Option<&'a str>,
    /// 完好 / 破损 / 丢失 / 占用, as the layer files store it.
    status: &'static str,
    grid: Option<GridCode>,
    created: Option<NaiveDate>,
    updated: Option<NaiveDate>,
    accuracy: Option<&'static str>,
}

#[derive(Serialize)]
struct ZoneProperties<'a> {
    layer: &'a str,
    id: &'a str,
    name: &'a str,
    unit: Option<&'a str>,
}

fn conversion_error(what: &str, e: crate::crs::CrsError) -> ApiError {
    ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("cannot convert {what}: {e}"))
}

fn point(crs: &OgcCrs, c: Coord<f64>) -> Result<[f64; 2], crate::crs::CrsError> {
    crs.position(c.x, c.y)
}

fn polygons(crs: &OgcCrs, mp: &MultiPolygon<f64>) -> Result<Geometry, crate::crs::CrsError> {
    let ring = |r: &geo_types::LineString<f64>| r.0.iter().map(|&c| point(crs, c)).collect::<Result<Vec<_>, _>>();
    let mut out = Vec::with_capacity(mp.0.len());
    for poly in &mp.0 {
        let mut rings = Vec::with_capacity(1 + poly.interiors().len());
        rings.push(ring(poly.exterior())?);
        for hole in poly.interiors() {
            rings.push(ring(hole)?);
        }
        out.push(rings);
    }
    Ok(Geometry::MultiPolygon(out))
}

fn unit_name(world: &World, unit: Option<UnitId>) -> Option<&str> {
    unit.map(|u| world.city.units.get(u).name.as_str())
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.trim().is_empty()).then_some(s)
}

/// Writes a grid as a GeoJSON Feature.
pub fn write_grid(out: &mut Vec<u8>, world: &World, id: GridId, crs: &OgcCrs, links: Option<&serde_json::Value>) -> Result<(), ApiError> {
    let g: &Grid = world.city.grid(id);
    let geometry = polygons(crs, &g.geometry).map_err(|e| conversion_error(&format!("grid {}", g.code), e))?;
    let properties = GridProperties {
        code: g.code,
        name: &g.name,
        level: g.level as usize + 1,
        parent: g.parent.map(|p| world.city.grid(p).code),
        unit: unit_name(world, g.unit),
        chief_name: g.chief.as_ref().and_then(|c| non_empty(&c.name)),
        chief_phone: g.chief.as_ref().and_then(|c| non_empty(&c.phone)),
        valid_from: g.valid_from,
        valid_to: g.valid_to,
    };
    write(out, &Feature { kind: "Feature", id: g.code.to_string(), geometry, properties, links })
}

/// Writes a component as a GeoJSON Feature.
pub fn write_component(out: &mut Vec<u8>, world: &World, c: &Component, crs: &OgcCrs, links: Option<&serde_json::Value>) -> Result<(), ApiError> {
    let at = point(crs, c.location).map_err(|e| conversion_error(&format!("component {}", c.code), e))?;
    let properties = ComponentProperties {
        code: c.code,
        class: c.class,
        name: world.city.names.get(c.name),
        dept: unit_name(world, c.dept),
        owner: unit_name(world, c.owner),
        maintainer: unit_name(world, c.maintainer),
        status: c.status.zh(),
        grid: c.grid.map(|g| world.city.grid(g).code),
        created: c.created,
        updated: c.updated,
        accuracy: c.accuracy.map(|a| a.as_str()),
    };
    write(out, &Feature { kind: "Feature", id: c.code.to_string(), geometry: Geometry::Point(at), properties, links })
}

/// Writes a zone as a GeoJSON Feature; its id is `layer:id`.
pub fn write_zone(out: &mut Vec<u8>, world: &World, z: &Zone, crs: &OgcCrs, links: Option<&serde_json::Value>) -> Result<(), ApiError> {
    let geometry = polygons(crs, &z.geometry).map_err(|e| conversion_error(&format!("zone {}:{}", z.layer, z.id), e))?;
    let properties = ZoneProperties { layer: &z.layer, id: &z.id, name: &z.name, unit: unit_name(world, z.unit) };
    write(out, &Feature { kind: "Feature", id: zone_id(z), geometry, properties, links })
}

pub fn zone_id(z: &Zone) -> String {
    format!("{}:{}", z.layer, z.id)
}

fn write<T: Serialize>(out: &mut Vec<u8>, value: &T) -> Result<(), ApiError> {
    serde_json::to_writer(out, value)
        .map_err(|e| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("cannot encode a feature: {e}")))
}

// ---------------------------------------------------------------- grids

/// `level`, `parent`, `code` of the grids.
struct GridFilter {
    level: Option<u8>,
    parent: Option<GridCode>,
    code: Option<GridCode>,
}

impl GridFilter {
    fn parse(world: &World, q: &Query) -> Result<GridFilter, ApiError> {
        let levels = world.city.hierarchy.levels.len();
        let level = match q.get("level") {
            None => None,
            Some(raw) => match raw.trim().parse::<usize>() {
                Ok(l) if (1..=levels).contains(&l) => Some((l - 1) as u8),
                _ => return Err(invalid("level", raw, &format!("level must be a whole number from 1 (district) to {levels}"))),
            },
        };
        let code = |name: &'static str| -> Result<Option<GridCode>, ApiError> {
            q.get(name).map(|raw| GridCode::parse(raw.trim(), &world.city.hierarchy).map(|(c, _)| c).map_err(|e| malformed(name, raw, e))).transpose()
        };
        Ok(GridFilter { level, parent: code("parent")?, code: code("code")? })
    }

    fn matches(&self, world: &World, g: &Grid) -> bool {
        self.level.is_none_or(|l| g.level == l)
            && self.code.is_none_or(|c| g.code == c)
            && self.parent.is_none_or(|p| g.parent.is_some_and(|id| world.city.grid(id).code == p))
    }
}

fn malformed(name: &'static str, raw: &str, e: crate::model::ModelError) -> ApiError {
    ApiError::bad_request("malformed_code", e.to_string()).with_details(json!({"parameter": name, "value": raw}))
}

/// A page of grids (all levels, in level then code order).
pub fn grids(world: &World, q: &Query, s: &Selection<'_>) -> Result<Page, ApiError> {
    let selected = select_grids(world, q, s.bbox, s.datetime)?;
    offset_page(&selected, s, |out, &id| write_grid(out, world, id, s.crs, None))
}

/// The grids the filters select, in level then code order.
fn select_grids(world: &World, q: &Query, bbox: Option<&BboxFilter>, datetime: Option<DateRange>) -> Result<Vec<GridId>, ApiError> {
    let filter = GridFilter::parse(world, q)?;
    Ok(world
        .city
        .grids
        .iter()
        .enumerate()
        .filter(|(i, g)| {
            filter.matches(world, g)
                && datetime.is_none_or(|d| d.overlaps(g.valid_from, g.valid_to))
                && bbox.is_none_or(|b| b.intersects(&g.geometry, world.grid_shapes[*i].bbox))
        })
        .map(|(i, _)| GridId(i as u32))
        .collect())
}

// ---------------------------------------------------------------- zones

/// A page of zones (by layer, then id).
pub fn zones(world: &World, q: &Query, s: &Selection<'_>) -> Result<Page, ApiError> {
    let selected = select_zones(world, q, s.bbox)?;
    // Zones have no validity dates: `datetime` matches them all (Part 1).
    offset_page(&selected, s, |out, &i| write_zone(out, world, &world.city.zones[i as usize], s.crs, None))
}

/// The zones (indices) the filters select, by layer then id.
fn select_zones(world: &World, q: &Query, bbox: Option<&BboxFilter>) -> Result<Vec<u32>, ApiError> {
    let layer = q.get("layer").map(str::trim);
    if let Some(l) = layer
        && !is_layer_name(l)
    {
        return Err(invalid("layer", l, "layer is a zone layer name: lower-case letters, digits, _ and -"));
    }
    Ok(world
        .city
        .zones
        .iter()
        .enumerate()
        .filter(|(_, z)| layer.is_none_or(|l| z.layer == l) && bbox.is_none_or(|b| b.intersects(&z.geometry, bounds(&z.geometry))))
        .map(|(i, _)| i as u32)
        .collect())
}

fn bounds(mp: &MultiPolygon<f64>) -> Option<[f64; 4]> {
    use geo::BoundingRect;
    mp.bounding_rect().map(|r| [r.min().x, r.min().y, r.max().x, r.max().y])
}

/// The page of `items` the selection's `offset` and `limit` ask for.
fn offset_page<T>(items: &[T], s: &Selection<'_>, mut write_one: impl FnMut(&mut Vec<u8>, &T) -> Result<(), ApiError>) -> Result<Page, ApiError> {
    let offset = match s.start {
        Start::Offset(o) => o,
        _ => 0,
    };
    let page = items.get(offset..).unwrap_or(&[]);
    let page = &page[..page.len().min(s.limit)];
    let mut out = Vec::with_capacity(page.len() * 512);
    for (i, item) in page.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_one(&mut out, item)?;
    }
    let end = offset.saturating_add(page.len());
    Ok(Page { features: out, returned: page.len(), matched: items.len() as u64, next: (end < items.len()).then_some(Start::Offset(end)) })
}

// ---------------------------------------------------------------- components

/// `class`, `grid`, `dept` / `owner` / `maintainer`, `status` of the components.
struct ComponentFilter {
    classes: Vec<ClassCode>,
    grid: Option<GridCode>,
    dept: Option<UnitId>,
    owner: Option<UnitId>,
    maintainer: Option<UnitId>,
    status: Option<Status>,
    /// A unit name the register does not have: nothing matches.
    nothing: bool,
}

impl ComponentFilter {
    fn parse(world: &World, q: &Query) -> Result<ComponentFilter, ApiError> {
        let raw_classes = q.get("class").unwrap_or("");
        let classes = lookup::parse_classes(world, raw_classes).map_err(|e| match e {
            lookup::LookupError::MalformedCode(e) => malformed("class", raw_classes, e),
            e => ApiError::from(e),
        })?;
        let grid =
            q.get("grid").map(|raw| GridCode::parse(raw.trim(), &world.city.hierarchy).map(|(c, _)| c).map_err(|e| malformed("grid", raw, e))).transpose()?;
        let mut nothing = false;
        let mut unit = |name: &str| -> Option<UnitId> {
            let raw = q.get(name)?;
            let found = world.city.units.find(raw);
            nothing |= found.is_none();
            found
        };
        let (dept, owner, maintainer) = (unit("dept"), unit("owner"), unit("maintainer"));
        let status = q
            .get("status")
            .map(|raw| raw.parse::<Status>().map_err(|_| invalid("status", raw, "status must be 完好/破损/丢失/占用 or intact/damaged/missing/occupied")))
            .transpose()?;
        Ok(ComponentFilter { classes, grid, dept, owner, maintainer, status, nothing })
    }

    /// Filters other than the class (which the index applies).
    fn has_attributes(&self) -> bool {
        self.grid.is_some() || self.dept.is_some() || self.owner.is_some() || self.maintainer.is_some() || self.status.is_some()
    }

    fn matches(&self, world: &World, c: &Component) -> bool {
        self.status.is_none_or(|s| c.status == s)
            && self.dept.is_none_or(|u| c.dept == Some(u))
            && self.owner.is_none_or(|u| c.owner == Some(u))
            && self.maintainer.is_none_or(|u| c.maintainer == Some(u))
            && self.grid.is_none_or(|code| c.grid.is_some_and(|g| world.city.grid(g).code.extends(code)))
    }
}

fn whole_world() -> Rect<f64> {
    Rect::new(Coord { x: -180.0, y: -90.0 }, Coord { x: 180.0, y: 90.0 })
}

/// Walks the matching components in code order after `after`, calling `visit` with each one's
/// index until it returns false.
fn walk(
    world: &World,
    filter: &ComponentFilter,
    bbox: Option<&BboxFilter>,
    mut after: Option<ComponentCode>,
    chunk: usize,
    mut visit: impl FnMut(u32) -> bool,
) {
    if filter.nothing {
        return;
    }
    let rect = bbox.map_or_else(whole_world, |b| b.envelope);
    let exact = bbox.filter(|b| !b.is_lonlat_box());
    loop {
        let (indices, next) = world.components.in_bbox(&world.city, rect, Some(&filter.classes), after, chunk);
        for i in indices {
            let c = &world.city.components[i as usize];
            if exact.is_none_or(|b| b.contains(c.location)) && filter.matches(world, c) && !visit(i) {
                return;
            }
        }
        match next {
            Some(code) => after = Some(code),
            None => return,
        }
    }
}

/// A page of components in code order.
pub fn components(world: &World, q: &Query, s: &Selection<'_>) -> Result<Page, ApiError> {
    let filter = ComponentFilter::parse(world, q)?;
    let chunk = (s.limit + 1).max(4096);
    let (after, mut skip) = match s.start {
        Start::Begin => (None, 0),
        Start::After(code) => (Some(code), 0),
        Start::Offset(n) => (None, n),
    };
    let mut page: Vec<u32> = Vec::with_capacity(s.limit.min(4096));
    let mut more = false;
    walk(world, &filter, s.bbox, after, chunk, |i| {
        if skip > 0 {
            skip -= 1;
            return true;
        }
        if page.len() == s.limit {
            more = true;
            return false;
        }
        page.push(i);
        true
    });
    let mut out = Vec::with_capacity(page.len() * 400);
    for (k, &i) in page.iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        write_component(&mut out, world, &world.city.components[i as usize], s.crs, None)?;
    }
    let next = more.then(|| match s.start {
        Start::Offset(n) => Start::Offset(n.saturating_add(page.len())),
        _ => Start::After(world.city.components[*page.last().expect("a full page") as usize].code),
    });
    Ok(Page { features: out, returned: page.len(), matched: count_components(world, &filter, s.bbox), next })
}

/// Components matching the filter and box (every page's): from the index's counts when only
/// classes and a lon/lat box select, else by one pass over the candidates (in any order).
fn count_components(world: &World, filter: &ComponentFilter, bbox: Option<&BboxFilter>) -> u64 {
    if filter.nothing {
        return 0;
    }
    if !filter.has_attributes() && bbox.is_none_or(BboxFilter::is_lonlat_box) {
        let rect = bbox.map_or_else(whole_world, |b| b.envelope);
        return world.components.count_by_class(&world.city, rect, Some(&filter.classes)).values().map(|&n| n as u64).sum();
    }
    let class_ok =
        |c: &Component| filter.classes.is_empty() || filter.classes.iter().any(|&k| if k.is_major() { c.class.major_class() == k } else { c.class == k });
    let selected = |c: &Component| class_ok(c) && filter.matches(world, c);
    match bbox {
        None => world.city.components.iter().filter(|c| selected(c)).count() as u64,
        Some(b) => {
            let all = world.city.components.len().max(1);
            let (candidates, _) = world.components.in_bbox(&world.city, b.envelope, Some(&filter.classes), None, all);
            candidates.into_iter().map(|i| &world.city.components[i as usize]).filter(|c| b.contains(c.location) && selected(c)).count() as u64
        }
    }
}

// ---------------------------------------------------------------- whole collections

/// A feature of a download.
#[derive(Clone, Copy)]
pub enum Item<'w> {
    Grid(GridId),
    Component(&'w Component),
    Zone(&'w Zone),
}

/// Every feature a request selects (up to a limit), in the order of the pages, for a streamed
/// download. The filters are read when it is made, so a bad parameter is a 400 before anything
/// is sent; grids and zones are selected then (thousands of ids), components walked as they are
/// written (the index's chunks), so memory does not grow with the collection.
pub struct Download {
    plan: Plan,
    /// Features it yields (the header of a FlatGeobuf states it before the first).
    pub count: u64,
}

enum Plan {
    Grids(Vec<GridId>),
    Zones(Vec<u32>),
    Components { filter: Box<ComponentFilter>, bbox: Option<Box<BboxFilter>>, limit: usize },
}

impl Download {
    pub fn new(
        world: &World,
        c: Collection,
        q: &Query,
        bbox: Option<BboxFilter>,
        datetime: Option<DateRange>,
        limit: Option<usize>,
    ) -> Result<Download, ApiError> {
        let limit = limit.unwrap_or(usize::MAX);
        Ok(match c {
            Collection::Grids => {
                let mut ids = select_grids(world, q, bbox.as_ref(), datetime)?;
                ids.truncate(limit);
                Download { count: ids.len() as u64, plan: Plan::Grids(ids) }
            }
            Collection::Zones => {
                let mut ids = select_zones(world, q, bbox.as_ref())?;
                ids.truncate(limit);
                Download { count: ids.len() as u64, plan: Plan::Zones(ids) }
            }
            Collection::Components => {
                let filter = ComponentFilter::parse(world, q)?;
                let count = count_components(world, &filter, bbox.as_ref()).min(limit as u64);
                Download { count, plan: Plan::Components { filter: Box::new(filter), bbox: bbox.map(Box::new), limit } }
            }
        })
    }

    /// Calls `f` with each feature in order, until it fails.
    pub fn for_each<E>(&self, world: &World, mut f: impl FnMut(Item<'_>) -> Result<(), E>) -> Result<(), E> {
        match &self.plan {
            Plan::Grids(ids) => ids.iter().try_for_each(|&id| f(Item::Grid(id))),
            Plan::Zones(ids) => ids.iter().try_for_each(|&i| f(Item::Zone(&world.city.zones[i as usize]))),
            Plan::Components { filter, bbox, limit } => {
                let (mut n, mut failed) = (0usize, None);
                walk(world, filter, bbox.as_deref(), None, 4096, |i| {
                    if n == *limit {
                        return false;
                    }
                    n += 1;
                    match f(Item::Component(&world.city.components[i as usize])) {
                        Ok(()) => true,
                        Err(e) => {
                            failed = Some(e);
                            false
                        }
                    }
                });
                failed.map_or(Ok(()), Err)
            }
        }
    }
}

/// Writes a feature as a GeoJSON Feature.
pub fn write_item(out: &mut Vec<u8>, world: &World, item: Item<'_>, crs: &OgcCrs) -> Result<(), ApiError> {
    match item {
        Item::Grid(id) => write_grid(out, world, id, crs, None),
        Item::Component(c) => write_component(out, world, c, crs, None),
        Item::Zone(z) => write_zone(out, world, z, crs, None),
    }
}

/// Adds a feature to a FlatGeobuf: the properties of its GeoJSON Feature (empty ones null),
/// coordinates in `crs` as x = easting (longitude), y = northing (latitude), the order FlatGeobuf
/// files hold whatever the CRS definition's.
pub fn fgb_item(chunk: &mut FeatureChunk, world: &World, item: Item<'_>, crs: &OgcCrs) -> Result<(), ApiError> {
    let date = |d: Option<NaiveDate>| d.map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default();
    let failed =
        |what: String, e: String| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("cannot write {what} to FlatGeobuf: {e}"));
    match item {
        Item::Grid(id) => {
            let g = world.city.grid(id);
            let geometry = east_north_polygons(crs, &g.geometry).map_err(|e| conversion_error(&format!("grid {}", g.code), e))?;
            let (code, parent) = (g.code.to_string(), g.parent.map(|p| world.city.grid(p).code.to_string()).unwrap_or_default());
            let (from, to) = (date(g.valid_from), date(g.valid_to));
            let values = [
                StreamValue::Str(&code),
                StreamValue::Str(&g.name),
                StreamValue::Int(i32::from(g.level) + 1),
                StreamValue::Str(&parent),
                StreamValue::Str(unit_name(world, g.unit).unwrap_or("")),
                StreamValue::Str(g.chief.as_ref().and_then(|c| non_empty(&c.name)).unwrap_or("")),
                StreamValue::Str(g.chief.as_ref().and_then(|c| non_empty(&c.phone)).unwrap_or("")),
                StreamValue::Date(&from),
                StreamValue::Date(&to),
            ];
            chunk.add(geo_types::Geometry::MultiPolygon(geometry), &values).map_err(|e| failed(format!("grid {code}"), e))
        }
        Item::Component(c) => {
            let (x, y) = crs.east_north(c.location.x, c.location.y).map_err(|e| conversion_error(&format!("component {}", c.code), e))?;
            let (code, class) = (c.code.to_string(), c.class.to_string());
            let grid = c.grid.map(|g| world.city.grid(g).code.to_string()).unwrap_or_default();
            let (created, updated) = (date(c.created), date(c.updated));
            let values = [
                StreamValue::Str(&code),
                StreamValue::Str(&class),
                StreamValue::Str(world.city.names.get(c.name)),
                StreamValue::Str(unit_name(world, c.dept).unwrap_or("")),
                StreamValue::Str(unit_name(world, c.owner).unwrap_or("")),
                StreamValue::Str(unit_name(world, c.maintainer).unwrap_or("")),
                StreamValue::Str(c.status.zh()),
                StreamValue::Str(&grid),
                StreamValue::Date(&created),
                StreamValue::Date(&updated),
                StreamValue::Str(c.accuracy.map_or("", |a| a.as_str())),
            ];
            let point = geo_types::Geometry::Point(geo_types::Point::new(x, y));
            chunk.add(point, &values).map_err(|e| failed(format!("component {code}"), e))
        }
        Item::Zone(z) => {
            let geometry = east_north_polygons(crs, &z.geometry).map_err(|e| conversion_error(&format!("zone {}", zone_id(z)), e))?;
            let values =
                [StreamValue::Str(&z.layer), StreamValue::Str(&z.id), StreamValue::Str(&z.name), StreamValue::Str(unit_name(world, z.unit).unwrap_or(""))];
            chunk.add(geo_types::Geometry::MultiPolygon(geometry), &values).map_err(|e| failed(format!("zone {}", zone_id(z)), e))
        }
    }
}

/// `mp` (WGS84 lon/lat) in `crs`, x east and y north.
fn east_north_polygons(crs: &OgcCrs, mp: &MultiPolygon<f64>) -> Result<MultiPolygon<f64>, crate::crs::CrsError> {
    use geo::MapCoords;
    mp.try_map_coords(|c| crs.east_north(c.x, c.y).map(|(x, y)| Coord { x, y }))
}
