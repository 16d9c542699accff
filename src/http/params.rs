//! Query-string parsing with errors in the documented format (no framework default text):
//! a missing parameter is `400 missing_parameter`, an unusable one `400 invalid_parameter`,
//! both with `details.parameter`.

use std::str::FromStr;

use serde_json::json;

use super::error::ApiError;

/// Parameters whose value is a comma-separated list.
const LIST_PARAMETERS: [&str; 1] = ["class"];

/// The parameters of one query string. Unknown parameters are ignored; a parameter given twice
/// is an error (which one was meant?).
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Refused: a `%` escape that is not `%` and two hex digits, or a list parameter (`class`)
    /// with an empty item (`class=01,,`), as `400 invalid_parameter` naming the parameter.
    pub fn parse(query: Option<&str>) -> Result<Params, ApiError> {
        for pair in query.unwrap_or("").split('&') {
            let bytes = pair.as_bytes();
            if let Some(at) = bytes
                .iter()
                .enumerate()
                .position(|(i, &b)| b == b'%' && !(bytes.len() > i + 2 && bytes[i + 1].is_ascii_hexdigit() && bytes[i + 2].is_ascii_hexdigit()))
            {
                let name = pair.split('=').next().unwrap_or("");
                let escape: String = pair[at..].chars().take(3).collect();
                return Err(ApiError::bad_request(
                    "invalid_parameter",
                    format!("{escape:?} in parameter {name} is not a percent escape (% and two hex digits); write a literal % as %25"),
                )
                .with_details(json!({"parameter": name, "value": pair.split_once('=').map_or("", |(_, v)| v)})));
            }
        }
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
            .map_err(|e| ApiError::bad_request("invalid_query", format!("the query string cannot be parsed: {e}")))?;
        for (i, (k, _)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(k2, _)| k2 == k) {
                return Err(ApiError::bad_request("invalid_parameter", format!("parameter {k} is given more than once")).with_details(json!({"parameter": k})));
            }
        }
        for (k, v) in &pairs {
            if LIST_PARAMETERS.contains(&k.as_str()) && !v.trim().is_empty() && v.split(',').any(|item| item.trim().is_empty()) {
                return Err(invalid(k, v, format!("{k} is a comma-separated list without empty items, e.g. {k}=0101,0118")));
            }
        }
        Ok(Params(pairs))
    }

    /// The raw value, if present (an empty value counts as absent).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.trim().is_empty())
    }

    pub fn required(&self, name: &'static str) -> Result<&str, ApiError> {
        self.get(name)
            .ok_or_else(|| ApiError::bad_request("missing_parameter", format!("parameter {name} is required")).with_details(json!({"parameter": name})))
    }

    /// A number; `expected` says what kind, for the message.
    pub fn parsed<T: FromStr>(&self, name: &'static str, expected: &str) -> Result<Option<T>, ApiError> {
        self.get(name).map(|v| v.trim().parse::<T>().map_err(|_| invalid(name, v, format!("{name} must be {expected}")))).transpose()
    }
}

fn invalid(name: &str, value: &str, message: String) -> ApiError {
    ApiError::bad_request("invalid_parameter", message).with_details(json!({"parameter": name, "value": value}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_escapes_and_empty_list_items_are_refused() {
        for q in ["bbox=1,2,3,4&class=%ZZ", "class=%4", "x=100%"] {
            let e = Params::parse(Some(q)).err().unwrap_or_else(|| panic!("{q} accepted"));
            assert_eq!(e.code, "invalid_parameter", "{q}");
        }
        for q in ["class=01,,", "class=,0101", "class=01, ,02"] {
            let e = Params::parse(Some(q)).err().unwrap_or_else(|| panic!("{q} accepted"));
            assert_eq!((e.code, &e.details["parameter"]), ("invalid_parameter", &json!("class")), "{q}");
        }
        let p = Params::parse(Some("class=0101%2C0118&name=%E4%B8%AD")).unwrap();
        assert_eq!(p.get("class"), Some("0101,0118"));
        assert_eq!(p.get("name"), Some("中"));
        assert!(Params::parse(Some("class=")).is_ok(), "an empty value is an absent one");
    }
}
