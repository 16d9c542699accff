//! Zone layers (责任区: road sections, river segments, plazas — the polygons a rule names as
//! `zone:<layer>` or `zone:<layer>:<id>`): an upload replaces every zone layer of the city at
//! once, like the other layers, and keeps the city's grids and components.
//!
//! Fields: `layer` (图层, 类型; lower-case letters, digits, `_`, `-`; a file without the column
//! is all layer `zones`), `id` (编号, 编码, 代码: unique within its layer), `name` (名称) and
//! `unit` (责任单位, 养护单位: the unit of the `@zone` role). Geometry: Polygon or
//! MultiPolygon, valid by geo's rules, in any CRS a survey layer may come in. A zone layer is
//! small (hundreds of polygons): it is read whole.

use std::collections::HashSet;

use geo::Validation;
use geo::orient::{Direction, Orient};
use geo_types::{Geometry, MultiPolygon};

use super::fields::FieldMap;
use super::report::{Issue, IssueKind, Policy, Report, Scope};
use super::validate::{ImportOptions, Prepared};
use super::{FeatureSink, IngestError, SourceLayer, reproject};
use crate::model::{City, Zone, is_layer_name};

/// Our zone fields and the column names each is read from (lower case).
pub const ZONE_FIELDS: [(&str, &[&str]); 4] = [
    ("id", &["id", "zone_id", "编号", "编码", "代码", "责任区编号"]),
    ("layer", &["layer", "图层", "类型", "zone_layer"]),
    ("name", &["name", "名称", "责任区名称"]),
    ("unit", &["unit", "责任单位", "养护单位", "管理单位"]),
];

/// Validates the zone layer that `read` streams as the city's new zones: the report, and the
/// new city (`current` with its zones replaced) unless it is rejected.
pub fn prepare_zones(
    read: impl FnOnce(&mut dyn FeatureSink) -> Result<SourceLayer, IngestError>,
    options: &ImportOptions,
    current: &City,
) -> Result<Prepared, IngestError> {
    let source = super::collect(read)?;
    let resolved = reproject::resolve(source.declared_crs.as_deref(), options.effective_crs(source.declared_crs.is_some()), options.force_crs)?;
    let mut reprojector = reproject::Reprojector::new(&resolved, &source)?;
    let map = FieldMap::new(&source, &ZONE_FIELDS);
    if map.columns[0].is_none() {
        return Err(IngestError::Fields(format!("no zone id column among {}: name it one of {}", source.columns.join(", "), ZONE_FIELDS[0].1.join(", "))));
    }
    let mut report = Report::new("zones", source.format, resolved.crs.to_string(), resolved.source, options.policy);
    report.fields = map.describe(&source, &ZONE_FIELDS);
    let mut city = current.clone();
    city.zones.clear();
    let units_before = city.units.len();
    let mut seen = HashSet::new();
    for mut feature in source.features.into_iter() {
        report.features += 1;
        reprojector.reproject(&mut feature)?;
        let taken = (feature.problem.take(), feature.geometry.take());
        let value = |i: usize| map.columns[i].and_then(|c| feature.value(c)).unwrap_or("");
        let (id, layer, name, unit) = (value(0), value(1), value(2), value(3));
        let layer = if layer.is_empty() { "zones" } else { layer };
        let mut problem = |kind: IssueKind, message: String| {
            report.add(Issue {
                scope: Scope::Upload,
                feature: Some(feature.index),
                line: feature.line,
                code: Some(format!("{layer}:{id}")),
                location: None,
                kind,
                severity: kind.severity(),
                message,
            })
        };
        let geometry = match taken {
            (Some((kind, message)), _) => Err((kind, message)),
            (None, None) => Err((IssueKind::InvalidGeometry, "the feature has no geometry".to_owned())),
            (None, Some(Geometry::Polygon(p))) => Ok(MultiPolygon(vec![p])),
            (None, Some(Geometry::MultiPolygon(mp))) => Ok(mp),
            (None, Some(_)) => Err((IssueKind::WrongGeometryType, "a zone must be a Polygon or MultiPolygon".to_owned())),
        };
        let checked = geometry.and_then(|mp| {
            if mp.0.is_empty() {
                return Err((IssueKind::InvalidGeometry, "an empty multipolygon".to_owned()));
            }
            mp.check_validation().map_err(|e| (IssueKind::InvalidGeometry, format!("invalid polygon: {e}")))?;
            Ok(mp.orient(Direction::Default))
        });
        let geometry = match checked {
            Ok(g) => g,
            Err((kind, message)) => {
                problem(kind, message);
                continue;
            }
        };
        if id.is_empty() || id.contains(':') {
            problem(IssueKind::MissingCode, format!("zone id {id:?}: every zone needs an id without ':'"));
            continue;
        }
        if !is_layer_name(layer) {
            problem(IssueKind::BadValue, format!("zone layer {layer:?}: use lower-case letters, digits, _ or - (e.g. roads, rivers)"));
            continue;
        }
        if !seen.insert((layer.to_owned(), id.to_owned())) {
            problem(IssueKind::DuplicateCode, format!("zone {layer}:{id} appears twice (the later one is dropped)"));
            continue;
        }
        let unit = (!unit.is_empty()).then(|| city.units.intern(unit));
        city.zones.push(Zone { layer: layer.to_owned(), id: id.to_owned(), name: name.to_owned(), unit, geometry });
    }
    city.zones.sort_by(|a, b| (&a.layer, &a.id).cmp(&(&b.layer, &b.id)));
    report.accepted = city.zones.len() as u64;
    report.dropped = report.features - report.accepted;
    report.sort_issues();
    let rejection = if options.policy == Policy::Strict && report.errors > 0 {
        Some(format!("strict: {} errors; nothing imported", report.errors))
    } else if city.zones.is_empty() {
        Some("no zone would remain: a zone layer is never replaced by an empty one".to_owned())
    } else if !options.allow_shrink && (city.zones.len() as u64) * 2 < current.zones.len() as u64 {
        Some(format!("{} zones would replace {}: fewer than half, probably a partial file (allow_shrink to accept)", city.zones.len(), current.zones.len()))
    } else {
        None
    };
    report.accepted_layer = rejection.is_none();
    report.rejection = rejection;
    let units_changed = city.units.len() != units_before;
    Ok(Prepared { city: report.accepted_layer.then_some(city), report, units_changed })
}
