//! Position batches as phones and gateways send them (JSON), checked item by item.
//!
//! A batch is `{"crs": "gcj02", "positions": [item, …]}` or a bare array of items. An item is
//! `{"id", "lon", "lat", "time", "accuracy", "status", "crs"}`:
//! - `id`: a person of the staff register;
//! - `lon`, `lat` in the item's `crs` (else the batch's, else WGS84): a datum (`wgs84`,
//!   `cgcs2000`, `gcj02`, `bd09`, `EPSG:4326`, `EPSG:4490`) — or `x`, `y` in metres with a
//!   projected CRS (`EPSG:4549`, UTM, `EPSG:3857`), as the lookup endpoints take them;
//! - `time`: RFC 3339 with an offset, or Unix milliseconds; at most [`MAX_FUTURE_S`] ahead of
//!   the server's clock;
//! - `accuracy`: GPS accuracy radius in metres (optional, ≥ 0);
//! - `status`: `available`, `busy` or `off_duty` (also `off-duty`; default `available`).
//!
//! Unknown fields are refused (a misspelt `staus` would silently mean `available`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::positions::{Fix, Status};
use super::register::MAX_ID_LEN;
use crate::crs::{Crs, Datum};
use crate::lookup::PointEcho;

/// Most items in one batch.
pub const MAX_BATCH_ITEMS: usize = 10_000;
/// How far ahead of the server's clock a position's time may be, seconds (phone clocks drift).
pub const MAX_FUTURE_S: i64 = 300;

const FIELDS: [&str; 9] = ["id", "lon", "lat", "x", "y", "time", "accuracy", "status", "crs"];

/// Why an item (or a whole batch) is refused.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ItemError {
    /// Stable code: `invalid_item`, `missing_parameter`, `invalid_parameter`, `unknown_crs`,
    /// `time_in_future`, `unknown_staff`.
    pub code: &'static str,
    pub message: String,
    /// The field concerned, if one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
}

impl ItemError {
    fn new(code: &'static str, message: impl Into<String>, parameter: Option<&str>) -> ItemError {
        ItemError { code, message: message.into(), parameter: parameter.map(str::to_owned) }
    }
}

/// Why a batch as a whole cannot be read (answered 400).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum BatchError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("the body must be a JSON array of positions, or an object {{\"crs\", \"positions\": [...]}}")]
    Shape,
    #[error("the batch has no positions")]
    Empty,
    #[error("a batch holds at most {max} positions; this one has {got}: send several")]
    TooMany { got: usize, max: usize },
    #[error("{0}")]
    Crs(String),
}

/// A checked item: whose, and the fix in WGS84.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub id: String,
    pub fix: Fix,
}

/// One item of a batch: checked, or why not (with its id if it had a usable one).
pub type Checked = Result<Item, (Option<String>, ItemError)>;

/// The items of a batch body: each checked, or why not (in order).
pub fn parse_batch(body: &[u8], now: DateTime<Utc>) -> Result<Vec<Checked>, BatchError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| BatchError::NotJson(e.to_string()))?;
    let (crs, items) = match value {
        Value::Array(items) => (None, items),
        Value::Object(mut map) => {
            if let Some(k) = map.keys().find(|k| !["crs", "positions"].contains(&k.as_str())) {
                return Err(BatchError::Crs(format!("unknown field {k} in the batch object; it takes crs and positions")));
            }
            let crs = match map.remove("crs") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(parse_crs(&s).map_err(|e| BatchError::Crs(e.message))?),
                Some(_) => return Err(BatchError::Crs("crs must be a string such as gcj02".into())),
            };
            match map.remove("positions") {
                Some(Value::Array(items)) => (crs, items),
                _ => return Err(BatchError::Shape),
            }
        }
        _ => return Err(BatchError::Shape),
    };
    if items.is_empty() {
        return Err(BatchError::Empty);
    }
    if items.len() > MAX_BATCH_ITEMS {
        return Err(BatchError::TooMany { got: items.len(), max: MAX_BATCH_ITEMS });
    }
    Ok(items.iter().map(|item| parse_item(item, crs.as_ref(), now)).collect())
}

/// The `crs` of a position: a datum (lon/lat) or a projected CRS by EPSG code (x/y).
#[derive(Clone, Debug)]
pub enum ItemCrs {
    Datum(Datum),
    Projected(Crs),
}

fn parse_crs(text: &str) -> Result<ItemCrs, ItemError> {
    if let Ok(d) = text.parse::<Datum>() {
        return Ok(ItemCrs::Datum(d));
    }
    let unknown =
        |why: String| ItemError::new("unknown_crs", format!("crs {text:?}: {why}; give wgs84, cgcs2000, gcj02, bd09 or a projected EPSG:nnnn"), Some("crs"));
    if text.trim().starts_with('+') || text.contains('[') {
        return Err(unknown("PROJ strings and WKT are for layer files".into()));
    }
    match Crs::parse(text.trim()) {
        Ok(crs) => Ok(match crs.datum_engine() {
            Some(d) => ItemCrs::Datum(d),
            None => ItemCrs::Projected(crs),
        }),
        Err(e) => Err(unknown(e.to_string())),
    }
}

/// One item, checked; `Err` carries the item's id if it had a usable one.
pub fn parse_item(item: &Value, batch_crs: Option<&ItemCrs>, now: DateTime<Utc>) -> Checked {
    let Value::Object(map) = item else {
        return Err((None, ItemError::new("invalid_item", "a position must be a JSON object", None)));
    };
    let id = map.get("id").and_then(Value::as_str).map(str::to_owned);
    parse_fields(map, batch_crs, now).map_err(|e| (id, e))
}

fn parse_fields(map: &Map<String, Value>, batch_crs: Option<&ItemCrs>, now: DateTime<Utc>) -> Result<Item, ItemError> {
    if let Some(k) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ItemError::new("invalid_parameter", format!("unknown field {k}; accepted: {}", FIELDS.join(", ")), Some(k)));
    }
    let get = |k: &str| map.get(k).filter(|v| !v.is_null());
    let missing = |k: &str| ItemError::new("missing_parameter", format!("{k} is required"), Some(k));
    let number = |k: &str| -> Result<f64, ItemError> {
        let v = get(k).ok_or_else(|| missing(k))?;
        v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| ItemError::new("invalid_parameter", format!("{k} must be a finite number"), Some(k)))
    };
    let id = match get("id") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ID_LEN => s.clone(),
        Some(_) => return Err(ItemError::new("invalid_parameter", format!("id must be a string of 1 to {MAX_ID_LEN} bytes"), Some("id"))),
        None => return Err(missing("id")),
    };
    let own_crs = match get("crs") {
        None => None,
        Some(Value::String(s)) => Some(parse_crs(s)?),
        Some(_) => return Err(ItemError::new("invalid_parameter", "crs must be a string such as gcj02", Some("crs"))),
    };
    let crs = own_crs.as_ref().or(batch_crs).cloned().unwrap_or(ItemCrs::Datum(Datum::Wgs84));
    let lookup = |e: crate::lookup::LookupError| match e {
        crate::lookup::LookupError::InvalidParameter { parameter, reason, .. } => ItemError::new("invalid_parameter", reason, Some(parameter)),
        other => ItemError::new("invalid_parameter", other.to_string(), None),
    };
    let point = match &crs {
        ItemCrs::Datum(d) => {
            if get("x").is_some() || get("y").is_some() {
                return Err(ItemError::new("invalid_parameter", "x and y are for a projected crs (such as EPSG:4549); this crs takes lon and lat", Some("x")));
            }
            PointEcho::new(number("lon")?, number("lat")?, *d).map_err(lookup)?
        }
        ItemCrs::Projected(c) if c.is_geographic() => PointEcho::projected(number("lon")?, number("lat")?, c).map_err(lookup)?,
        ItemCrs::Projected(c) => {
            if get("lon").is_some() || get("lat").is_some() {
                return Err(ItemError::new("invalid_parameter", format!("{c} is a projected CRS: give x (easting) and y (northing) in metres"), Some("lon")));
            }
            PointEcho::projected(number("x")?, number("y")?, c).map_err(lookup)?
        }
    };
    let time = match get("time") {
        None => return Err(missing("time")),
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(s.trim()).map(|t| t.with_timezone(&Utc)).map_err(|_| {
            ItemError::new("invalid_parameter", "time must be RFC 3339 with an offset (2026-12-07T09:30:00+08:00) or Unix milliseconds", Some("time"))
        })?,
        Some(v) => v
            .as_i64()
            .and_then(DateTime::from_timestamp_millis)
            .ok_or_else(|| ItemError::new("invalid_parameter", "time must be RFC 3339 with an offset or Unix milliseconds (an integer)", Some("time")))?,
    };
    if (time - now).num_seconds() > MAX_FUTURE_S {
        return Err(ItemError::new(
            "time_in_future",
            format!("time {} is more than {MAX_FUTURE_S} s ahead of the server's clock ({})", time.to_rfc3339(), now.to_rfc3339()),
            Some("time"),
        ));
    }
    let accuracy_m = match get("accuracy") {
        None => None,
        Some(v) => Some(
            v.as_f64()
                .filter(|a| a.is_finite() && *a >= 0.0)
                .ok_or_else(|| ItemError::new("invalid_parameter", "accuracy must be metres, a number ≥ 0", Some("accuracy")))?,
        ),
    };
    let status = match get("status") {
        None => Status::Available,
        Some(Value::String(s)) => {
            Status::parse(s).ok_or_else(|| ItemError::new("invalid_parameter", format!("status {s:?} is not available, busy or off_duty"), Some("status")))?
        }
        Some(_) => return Err(ItemError::new("invalid_parameter", "status must be available, busy or off_duty", Some("status"))),
    };
    Ok(Item { id, fix: Fix { lon: point.wgs84.lon, lat: point.wgs84.lat, time, accuracy_m, status } })
}

/// An item as JSON (what the simulator sends).
pub fn item_json(id: &str, fix: &Fix) -> Value {
    let mut v =
        json!({"id": id, "lon": fix.lon, "lat": fix.lat, "time": fix.time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true), "status": fix.status.name()});
    if let Some(a) = fix.accuracy_m {
        v["accuracy"] = json!(a);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_checked_one_by_one() {
        let now = Utc::now();
        let body = json!({"crs": "gcj02", "positions": [
            {"id": "P1", "lon": 120.6, "lat": 31.3, "time": now.to_rfc3339(), "status": "busy", "accuracy": 8},
            {"id": "P2", "lon": 120.6, "lat": 31.3, "time": now.timestamp_millis(), "crs": "wgs84"},
            {"id": "P3", "lon": 200, "lat": 31.3, "time": now.to_rfc3339()},
            {"id": "P4", "lon": 120.6, "lat": 31.3, "time": (now + chrono::Duration::hours(1)).to_rfc3339()},
            {"id": "P5", "lon": 120.6, "lat": 31.3, "time": now.to_rfc3339(), "staus": "busy"},
            {"id": "P6", "x": 500000.0, "y": 3_463_000.0, "time": now.to_rfc3339(), "crs": "EPSG:4549"},
            7
        ]});
        let got = parse_batch(body.to_string().as_bytes(), now).unwrap();
        let p1 = got[0].as_ref().unwrap();
        assert_eq!(p1.fix.status, Status::Busy);
        assert!((p1.fix.lon - 120.6).abs() > 1e-5, "converted from GCJ-02");
        let p2 = got[1].as_ref().unwrap();
        assert_eq!((p2.fix.lon, p2.fix.lat, p2.fix.status), (120.6, 31.3, Status::Available));
        assert_eq!(got[2].as_ref().unwrap_err().1.parameter.as_deref(), Some("lon"));
        assert_eq!(got[3].as_ref().unwrap_err().1.code, "time_in_future");
        assert_eq!(got[4].as_ref().unwrap_err().1.parameter.as_deref(), Some("staus"));
        assert!((got[5].as_ref().unwrap().fix.lon - 120.0).abs() < 0.1, "{:?}", got[5]);
        assert_eq!(got[6].as_ref().unwrap_err().1.code, "invalid_item");
        for bad in ["{", "{}", "[]", "{\"positions\": 3}", "{\"positions\": [], \"x\": 1}", "{\"crs\": \"mars\", \"positions\": [{}]}"] {
            assert!(parse_batch(bad.as_bytes(), now).is_err(), "{bad}");
        }
    }
}
