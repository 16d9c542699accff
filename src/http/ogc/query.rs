//! The query parameters of the OGC API: which ones an endpoint takes (any other is a 400, as
//! Part 1 requires), `limit`, `offset` / `cursor`, `datetime`, `f`.
//!
//! `/items` also downloads a whole collection: `limit=all` streams every matching feature as one
//! GeoJSON FeatureCollection, and `f=fgb` (or `Accept: application/flatgeobuf`) streams them as
//! one FlatGeobuf file, where `limit` defaults to all and has no maximum.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone};
use serde_json::json;

use crate::http::error::ApiError;
use crate::http::params::Params;
use crate::model::ComponentCode;

/// Largest page; a larger `limit` is served as this one (Part 1: "this SHALL NOT result in an
/// error (instead use the maximum as the parameter value)").
pub const MAX_LIMIT: usize = 10_000;
/// Page size without `limit`.
pub const DEFAULT_LIMIT: usize = 100;

/// A query string: its pairs in order (for the links) and the checked lookups of [`Params`].
pub struct Query {
    pub params: Params,
    pub pairs: Vec<(String, String)>,
}

/// The representation asked for with `f`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// JSON; GeoJSON for features (`f=json`, `geojson`, or none).
    Json,
    /// FlatGeobuf (`f=fgb`, `flatgeobuf`, `application/flatgeobuf`): features only.
    FlatGeobuf,
}

/// How many features an `/items` answer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// A page of at most this many.
    Page(usize),
    /// Every matching feature, streamed (`limit=all`, and the default of `f=fgb`).
    All,
}

impl Query {
    /// Parses the query string and refuses any parameter not in `allowed`, and one given twice;
    /// `f` may only ask for JSON.
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Query, ApiError> {
        let query = Query::parse_any_format(raw, allowed)?;
        if query.format()? != Format::Json {
            return Err(invalid("f", query.get("f").unwrap_or(""), "f must be json (the only format of this document)"));
        }
        Ok(query)
    }

    /// As [`Query::parse`], with any [`Format`] in `f` (features: `/items`).
    pub fn parse_any_format(raw: Option<&str>, allowed: &[&str]) -> Result<Query, ApiError> {
        let params = Params::parse(raw)?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or("")).unwrap_or_default();
        if let Some((name, value)) = pairs.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            return Err(ApiError::bad_request("unknown_parameter", format!("this endpoint has no parameter {name:?}; it takes {}", allowed.join(", ")))
                .with_details(json!({"parameter": name, "value": value, "accepted": allowed})));
        }
        let query = Query { params, pairs };
        query.format()?;
        Ok(query)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name)
    }

    /// `f`: JSON (GeoJSON for features) or FlatGeobuf.
    pub fn format(&self) -> Result<Format, ApiError> {
        match self.get("f").map(|f| f.trim().to_ascii_lowercase()) {
            None => Ok(Format::Json),
            Some(f) if matches!(f.as_str(), "json" | "geojson" | "application/json" | "application/geo+json") => Ok(Format::Json),
            Some(f) if matches!(f.as_str(), "fgb" | "flatgeobuf" | "application/flatgeobuf") => Ok(Format::FlatGeobuf),
            Some(_) => Err(invalid("f", self.get("f").unwrap_or(""), "f must be json (GeoJSON features) or, for the features of /items, fgb (FlatGeobuf)")),
        }
    }

    /// `limit` of `/items`: `all` or a number, as [`Query::limit`] reads it; without it, a page
    /// of [`DEFAULT_LIMIT`] in GeoJSON and every feature in FlatGeobuf, where a number has no
    /// maximum. Every feature starts at the first: not with `offset` or `cursor`.
    pub fn items_limit(&self, format: Format) -> Result<Limit, ApiError> {
        let limit = match (self.get("limit").map(str::trim), format) {
            (Some(all), _) if all.eq_ignore_ascii_case("all") => Limit::All,
            (None, Format::FlatGeobuf) => Limit::All,
            (Some(raw), Format::FlatGeobuf) => match raw.parse::<u64>() {
                Ok(n) if n > 0 => Limit::Page(usize::try_from(n).unwrap_or(usize::MAX)),
                _ => return Err(invalid("limit", raw, "limit must be all or a whole number from 1")),
            },
            (_, Format::Json) => Limit::Page(self.limit()?),
        };
        if limit == Limit::All || format == Format::FlatGeobuf {
            for name in ["offset", "cursor"] {
                if let Some(raw) = self.get(name) {
                    return Err(invalid(name, raw, &format!("{name} pages GeoJSON; limit=all and f=fgb give every matching feature from the first")));
                }
            }
        }
        Ok(limit)
    }

    /// `limit`: 1 or more; above [`MAX_LIMIT`] it is [`MAX_LIMIT`].
    pub fn limit(&self) -> Result<usize, ApiError> {
        let Some(raw) = self.get("limit") else { return Ok(DEFAULT_LIMIT) };
        let message = format!("limit must be all or a whole number from 1 (larger than {MAX_LIMIT} is served as {MAX_LIMIT})");
        let t = raw.trim();
        if !t.bytes().all(|b| b.is_ascii_digit()) || t.is_empty() {
            return Err(invalid("limit", raw, &message));
        }
        // Digits only: a huge number is just "more than the maximum".
        match t.parse::<u64>() {
            Ok(0) => Err(invalid("limit", raw, &message)),
            Ok(n) => Ok((n.min(MAX_LIMIT as u64)) as usize),
            Err(_) => Ok(MAX_LIMIT),
        }
    }

    /// Where the page starts: `offset` (any collection) or `cursor` (components: the code after
    /// which to go on, as the `next` links give it); not both.
    pub fn start(&self) -> Result<Start, ApiError> {
        match (self.get("offset"), self.get("cursor")) {
            (Some(_), Some(_)) => Err(ApiError::bad_request("invalid_parameter", "give offset or cursor, not both (a next link carries the one to use)")
                .with_details(json!({"parameter": "cursor", "offset": self.get("offset"), "cursor": self.get("cursor")}))),
            (Some(raw), None) => {
                let t = raw.trim();
                if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid("offset", raw, "offset must be a whole number from 0"));
                }
                Ok(Start::Offset(t.parse::<usize>().unwrap_or(usize::MAX)))
            }
            (None, Some(raw)) => ComponentCode::parse(raw.trim())
                .map(Start::After)
                .map_err(|_| invalid("cursor", raw, "cursor must be a component code, as a next link of this API gives it")),
            (None, None) => Ok(Start::Begin),
        }
    }

    /// `datetime`: an instant or an interval (see [`DateRange::parse`]).
    pub fn datetime(&self) -> Result<Option<DateRange>, ApiError> {
        self.get("datetime").map(DateRange::parse).transpose()
    }
}

/// The start of a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    Begin,
    Offset(usize),
    /// After this component code (a cursor).
    After(ComponentCode),
}

/// A `datetime` as a range of China-time calendar days (both ends inclusive; `None` = open):
/// the grids' validity (`valid_from`, `valid_to`) are days, so instants are taken by their
/// day in China time (UTC+08:00).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateRange {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

impl DateRange {
    /// `2024-05-01`, `2024-05-01T08:00:00Z` (RFC 3339), or an interval `start/end` with `..` or
    /// nothing for an open end (`2024-01-01/..`, `../2024-12-31`). A date-time without an offset
    /// is China time; partial times as GDAL writes them (`2024-05-01T`, `2024-05-01T08Z`) are read.
    pub fn parse(raw: &str) -> Result<DateRange, ApiError> {
        let bad = |why: &str| {
            invalid(
                "datetime",
                raw,
                &format!(
                    "datetime {why}: give a date or an RFC 3339 date-time (2024-05-01, 2024-05-01T08:00:00Z) \
                     or an interval start/end with .. for an open end (2024-01-01/.., ../2024-12-31)"
                ),
            )
        };
        let t = raw.trim();
        let mut parts = t.split('/');
        let (first, second) = (parts.next().unwrap_or(""), parts.next());
        if parts.next().is_some() {
            return Err(bad("has more than one /"));
        }
        let end = |s: &str| -> Result<Option<NaiveDate>, ApiError> {
            match s.trim() {
                "" | ".." => Ok(None),
                s => china_day(s).map(Some).ok_or_else(|| bad(&format!("{s:?} is not a date or date-time"))),
            }
        };
        match second {
            None => {
                let day = china_day(first.trim()).ok_or_else(|| bad(&format!("{first:?} is not a date or date-time")))?;
                Ok(DateRange { from: Some(day), to: Some(day) })
            }
            Some(second) => {
                let (from, to) = (end(first)?, end(second)?);
                if from.is_none() && to.is_none() {
                    return Err(bad("is open at both ends"));
                }
                if let (Some(a), Some(b)) = (from, to)
                    && a > b
                {
                    return Err(bad("starts after it ends"));
                }
                Ok(DateRange { from, to })
            }
        }
    }

    /// Whether a validity `[valid_from, valid_to]` (inclusive, `None` = open) overlaps it. A
    /// feature with neither date has no temporal extent and always matches (Part 1).
    pub fn overlaps(&self, valid_from: Option<NaiveDate>, valid_to: Option<NaiveDate>) -> bool {
        let starts_in_time = match (valid_from, self.to) {
            (Some(f), Some(to)) => f <= to,
            _ => true,
        };
        let ends_in_time = match (valid_to, self.from) {
            (Some(t), Some(from)) => t >= from,
            _ => true,
        };
        starts_in_time && ends_in_time
    }
}

fn china() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+08:00")
}

/// The China-time day of a date or date-time.
fn china_day(s: &str) -> Option<NaiveDate> {
    if s.len() < 10 || !s.is_char_boundary(10) {
        return None;
    }
    let (date, rest) = s.split_at(10);
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    let Some(rest) = rest.strip_prefix(['T', 't', ' ']) else {
        return rest.is_empty().then_some(date);
    };
    // The zone: Z, or ±hh:mm at the end; none = China time.
    let (time, offset) = if let Some(time) = rest.strip_suffix(['Z', 'z']) {
        (time, Some(FixedOffset::east_opt(0)?))
    } else if rest.len() >= 6 && matches!(rest.as_bytes()[rest.len() - 6], b'+' | b'-') && rest.as_bytes()[rest.len() - 3] == b':' {
        let (time, zone) = rest.split_at(rest.len() - 6);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let hours: i32 = zone[1..3].parse().ok()?;
        let minutes: i32 = zone[4..6].parse().ok()?;
        if hours > 23 || minutes > 59 {
            return None;
        }
        (time, Some(FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))?))
    } else {
        (rest, None)
    };
    let time = match time {
        "" => NaiveTime::MIN,
        t if t.len() == 2 => NaiveTime::parse_from_str(&format!("{t}:00:00"), "%H:%M:%S").ok()?,
        t if t.len() == 5 => NaiveTime::parse_from_str(&format!("{t}:00"), "%H:%M:%S").ok()?,
        t => NaiveTime::parse_from_str(t, "%H:%M:%S%.f").ok()?,
    };
    let local = date.and_time(time);
    let instant: DateTime<FixedOffset> = match offset {
        Some(o) => o.from_local_datetime(&local).single()?,
        None => china().from_local_datetime(&local).single()?,
    };
    Some(instant.with_timezone(&china()).date_naive())
}

pub fn invalid(name: &str, value: &str, message: &str) -> ApiError {
    ApiError::bad_request("invalid_parameter", message.to_owned()).with_details(json!({"parameter": name, "value": value}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn instants_are_china_days() {
        assert_eq!(china_day("2024-05-01"), Some(day("2024-05-01")));
        assert_eq!(china_day("2024-05-01T15:59:59Z"), Some(day("2024-05-01")));
        assert_eq!(china_day("2024-05-01T16:00:00Z"), Some(day("2024-05-02")), "midnight in China");
        assert_eq!(china_day("2024-05-01T23:00:00+08:00"), Some(day("2024-05-01")));
        assert_eq!(china_day("2024-05-01T01:00:00.250-05:00"), Some(day("2024-05-01")));
        assert_eq!(china_day("2024-05-01T"), Some(day("2024-05-01")), "GDAL's date-only filter");
        assert_eq!(china_day("2024-05-01T20Z"), Some(day("2024-05-02")), "GDAL's hour-only date-time");
        assert_eq!(china_day("2024-05-01T23:30"), Some(day("2024-05-01")), "no offset: China time");
        for bad in ["2024-13-01", "2024-05-01T25:00:00Z", "yesterday", "2024-05-01x", "2024-05-01T10:00:00+25:00", "2024-5-1"] {
            assert_eq!(china_day(bad), None, "{bad}");
        }
    }

    #[test]
    fn intervals_overlap_validity() {
        let r = DateRange::parse("2024-01-01/..").unwrap();
        assert_eq!(r, DateRange { from: Some(day("2024-01-01")), to: None });
        assert!(r.overlaps(Some(day("2023-01-01")), None));
        assert!(!r.overlaps(Some(day("2020-01-01")), Some(day("2023-12-31"))));
        assert!(r.overlaps(Some(day("2020-01-01")), Some(day("2024-01-01"))), "inclusive end day");
        let r = DateRange::parse("../2022-12-31").unwrap();
        assert!(!r.overlaps(Some(day("2023-01-01")), None));
        assert!(r.overlaps(None, None), "no temporal extent: always");
        let r = DateRange::parse("2023-06-01").unwrap();
        assert!(r.overlaps(Some(day("2023-06-01")), Some(day("2023-06-01"))));
        assert!(DateRange::parse("/2024-01-01").is_ok());
        for bad in ["../..", "/", "2024-02-01/2024-01-01", "a/b/c", "2024-01-01/2024-02-01/2024-03-01", "soon"] {
            assert!(DateRange::parse(bad).is_err(), "{bad}");
        }
    }
}
