//! The OpenAPI 3.0 definition of the `/ogc` paths (the landing page's `service-desc`): every
//! path, its parameters with their ranges and the media types of its answers. Minimal on
//! purpose: response bodies are described by their media type and a short schema, not in full.
//! Clients read it for the `limit` range and the property filters of each collection (GDAL
//! forwards `-where "status = '破损'"` as `status=破损` when the parameter is declared here).

use serde_json::{Value, json};

use super::crs::OgcCrs;
use super::items::Collection;
use super::query::{DEFAULT_LIMIT, MAX_LIMIT};
use super::{GEOJSON, JSON, OPENAPI};

/// The document for a server reached at `base` (`…/ogc`).
pub fn document(base: &str, city: &str, offered: &[OgcCrs]) -> Value {
    let uris: Vec<&str> = offered.iter().map(|c| c.uri.as_str()).collect();
    let mut paths = serde_json::Map::new();
    let doc = |summary: &str, media: &str, extra: Vec<Value>| {
        let mut parameters = vec![json!({"$ref": "#/components/parameters/f"})];
        parameters.extend(extra);
        json!({"get": {
            "summary": summary,
            "parameters": parameters,
            "responses": {
                "200": {"description": summary, "content": {media: {"schema": {"type": "object"}}}},
                "400": {"$ref": "#/components/responses/BadRequest"},
            },
        }})
    };
    paths.insert("/".into(), doc("the landing page", JSON, vec![]));
    paths.insert("/conformance".into(), doc("the conformance classes implemented", JSON, vec![]));
    paths.insert("/api".into(), doc("this API definition", OPENAPI, vec![]));
    paths.insert("/collections".into(), doc("the feature collections", JSON, vec![]));
    let mut collection = doc("a feature collection", JSON, vec![json!({"$ref": "#/components/parameters/collectionId"})]);
    collection["get"]["responses"]["404"] = json!({"$ref": "#/components/responses/NotFound"});
    paths.insert("/collections/{collectionId}".into(), collection);

    for c in Collection::ALL {
        let mut parameters: Vec<Value> =
            ["limit", "offset", "bbox", "bbox-crs", "crs", "datetime"].iter().map(|p| json!({"$ref": format!("#/components/parameters/{p}")})).collect();
        if c == Collection::Components {
            parameters.push(json!({
                "name": "cursor", "in": "query", "required": false,
                "description": "the component code after which the page starts, as the next links give it",
                "schema": {"type": "string", "pattern": "^[0-9]{16}$"}, "style": "form", "explode": false,
            }));
        }
        parameters.extend(filters(c));
        let mut items = doc(&format!("the {} (GeoJSON FeatureCollection; every one with limit=all, or as FlatGeobuf with f=fgb)", c.id()), GEOJSON, parameters);
        // `f` of the features: GeoJSON or FlatGeobuf.
        items["get"]["parameters"][0] = json!({"$ref": "#/components/parameters/f-items"});
        items["get"]["responses"]["200"]["content"]["application/flatgeobuf"] = json!({"schema": {"type": "string", "format": "binary"}});
        items["get"]["responses"]["200"]["headers"] = json!({"Content-Crs": {"$ref": "#/components/headers/Content-Crs"}});
        items["get"]["responses"]["429"] = json!({"$ref": "#/components/responses/TooManyRequests"});
        paths.insert(format!("/collections/{}/items", c.id()), items);
        let id = match c {
            Collection::Grids => "the grid code (any level)",
            Collection::Components => "the 16-digit component code",
            Collection::Zones => "layer:id of the zone",
        };
        let mut item = doc(
            &format!("one of the {} (GeoJSON Feature)", c.id()),
            GEOJSON,
            vec![
                json!({"name": "featureId", "in": "path", "required": true, "description": id, "schema": {"type": "string"}}),
                json!({"$ref": "#/components/parameters/crs"}),
            ],
        );
        item["get"]["responses"]["200"]["headers"] = json!({"Content-Crs": {"$ref": "#/components/headers/Content-Crs"}});
        item["get"]["responses"]["404"] = json!({"$ref": "#/components/responses/NotFound"});
        paths.insert(format!("/collections/{}/items/{{featureId}}", c.id()), item);
    }

    let error = json!({"application/json": {"schema": {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
            "code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "object"},
        }}},
    }}});
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": format!("citygrid OGC API – Features: {city}"),
            "version": env!("CARGO_PKG_VERSION"),
            "description": "OGC API – Features Part 1 (Core, GeoJSON, OpenAPI 3.0) and Part 2 (CRS by reference) over \
                            the city's grids, components and zones. Coordinates are in the axis order of the CRS: \
                            CRS84, GCJ-02 and BD-09 lon/lat, EPSG:4326 and 4490 lat/lon, the Gauss-Krüger EPSG:4491–4554 \
                            northing/easting. GCJ-02 and BD-09 have no official URI; citygrid names them \
                            http://citygrid.local/crs/gcj02 and …/bd09.",
        },
        "servers": [{"url": base}],
        "paths": paths,
        "components": {
            "parameters": {
                "f": {"name": "f", "in": "query", "required": false, "description": "the format: json (the only one)",
                      "schema": {"type": "string", "enum": ["json"]}, "style": "form", "explode": false},
                "f-items": {"name": "f", "in": "query", "required": false,
                            "description": "the format of the features: json or geojson (GeoJSON, paged; every feature with limit=all), \
                                            fgb (one FlatGeobuf file of every matching feature, streamed without a spatial index; \
                                            limit has no maximum there, offset and cursor do not apply); also Accept: application/flatgeobuf",
                            "schema": {"type": "string", "enum": ["json", "geojson", "fgb"]}, "style": "form", "explode": false},
                "collectionId": {"name": "collectionId", "in": "path", "required": true,
                                 "schema": {"type": "string", "enum": Collection::ALL.map(Collection::id)}},
                "limit": {"name": "limit", "in": "query", "required": false,
                          "description": format!("features per page; more than {MAX_LIMIT} is served as {MAX_LIMIT}. \
                                                  The value all (not an integer, hence not in the schema) streams every matching \
                                                  feature in one FeatureCollection; with f=fgb there is no maximum"),
                          "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
                          "style": "form", "explode": false},
                "offset": {"name": "offset", "in": "query", "required": false,
                           "description": "features to skip (the next links of components use cursor instead)",
                           "schema": {"type": "integer", "minimum": 0, "default": 0}, "style": "form", "explode": false},
                "bbox": {"name": "bbox", "in": "query", "required": false,
                         "description": "lower corner, upper corner in the axis order of bbox-crs (default CRS84: minlon,minlat,maxlon,maxlat)",
                         "schema": {"type": "array", "minItems": 4, "maxItems": 4, "items": {"type": "number"}},
                         "style": "form", "explode": false},
                "bbox-crs": {"name": "bbox-crs", "in": "query", "required": false,
                             "schema": {"type": "string", "format": "uri", "enum": uris, "default": super::crs::CRS84},
                             "style": "form", "explode": false},
                "crs": {"name": "crs", "in": "query", "required": false,
                        "schema": {"type": "string", "format": "uri", "enum": uris, "default": super::crs::CRS84},
                        "style": "form", "explode": false},
                "datetime": {"name": "datetime", "in": "query", "required": false,
                             "description": "an instant or interval (RFC 3339, .. for an open end); selects grids by validity, matches every component and zone",
                             "schema": {"type": "string"}, "style": "form", "explode": false},
            },
            "headers": {
                "Content-Crs": {"description": "the CRS of the coordinates, as <URI>", "schema": {"type": "string"}},
            },
            "responses": {
                "BadRequest": {"description": "a parameter is unknown or has an unusable value", "content": error.clone()},
                "NotFound": {"description": "no such collection or feature", "content": error.clone()},
                "TooManyRequests": {"description": "rate_limited: too many whole-collection downloads or pages of over 1,000 features from this client (Retry-After)", "content": error},
            },
        },
    })
}

fn filters(c: Collection) -> Vec<Value> {
    let string = |name: &str, description: &str| {
        json!({"name": name, "in": "query", "required": false, "description": description,
               "schema": {"type": "string"}, "style": "form", "explode": false})
    };
    match c {
        Collection::Grids => vec![
            json!({"name": "level", "in": "query", "required": false, "description": "the level, 1 = district",
                   "schema": {"type": "integer", "minimum": 1}, "style": "form", "explode": false}),
            string("parent", "the code of the parent grid"),
            string("code", "the grid code"),
        ],
        Collection::Components => vec![
            string("class", "subclasses (0101) or major classes (01), comma-separated"),
            string("grid", "a grid code of any level: the components recorded in that grid or below it"),
            string("dept", "the competent department's unit name (主管部门)"),
            string("owner", "the owner's unit name (权属单位)"),
            string("maintainer", "the maintainer's unit name (养护单位)"),
            json!({"name": "status", "in": "query", "required": false,
                   "schema": {"type": "string", "enum": ["完好", "破损", "丢失", "占用", "intact", "damaged", "missing", "occupied"]},
                   "style": "form", "explode": false}),
        ],
        Collection::Zones => vec![string("layer", "the zone layer, e.g. roads")],
    }
}
