//! Query-string parsing with errors in the documented format (no framework default text):
//! a missing parameter is `400 missing_parameter`, an unusable one `400 invalid_parameter`,
//! both with `details.parameter`.

use std::str::FromStr;

use serde_json::json;

use super::error::ApiError;
use crate::crs::Datum;

/// The parameters of one query string. Unknown parameters are ignored; a parameter given twice
/// is an error (which one was meant?).
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(query: Option<&str>) -> Result<Params, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or("")).map_err(|e| {
            ApiError::bad_request("invalid_query", format!("the query string cannot be parsed: {e}"))
        })?;
        for (i, (k, _)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(k2, _)| k2 == k) {
                return Err(ApiError::bad_request("invalid_parameter", format!("parameter {k} is given more than once"))
                    .with_details(json!({"parameter": k})));
            }
        }
        Ok(Params(pairs))
    }

    /// The raw value, if present (an empty value counts as absent).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.trim().is_empty())
    }

    pub fn required(&self, name: &'static str) -> Result<&str, ApiError> {
        self.get(name).ok_or_else(|| {
            ApiError::bad_request("missing_parameter", format!("parameter {name} is required"))
                .with_details(json!({"parameter": name}))
        })
    }

    /// A number; `expected` says what kind, for the message.
    pub fn parsed<T: FromStr>(&self, name: &'static str, expected: &str) -> Result<Option<T>, ApiError> {
        self.get(name)
            .map(|v| v.trim().parse::<T>().map_err(|_| invalid(name, v, format!("{name} must be {expected}"))))
            .transpose()
    }

    pub fn required_f64(&self, name: &'static str) -> Result<f64, ApiError> {
        let v = self.required(name)?;
        v.trim().parse::<f64>().map_err(|_| invalid(name, v, format!("{name} must be a decimal number")))
    }

    /// `crs`: wgs84 (default), cgcs2000, gcj02, bd09 (also EPSG:4326 / EPSG:4490).
    pub fn datum(&self) -> Result<Datum, ApiError> {
        match self.get("crs") {
            None => Ok(Datum::Wgs84),
            Some(v) => v.parse::<Datum>().map_err(|e| {
                ApiError::bad_request("unknown_crs", e.to_string())
                    .with_details(json!({"parameter": "crs", "value": v, "accepted": ["wgs84", "cgcs2000", "gcj02", "bd09", "EPSG:4326", "EPSG:4490"]}))
            }),
        }
    }
}

fn invalid(name: &str, value: &str, message: String) -> ApiError {
    ApiError::bad_request("invalid_parameter", message).with_details(json!({"parameter": name, "value": value}))
}
