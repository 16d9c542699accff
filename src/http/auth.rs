//! Bearer tokens for writes (`PUT /v1/rules`, layer uploads, rollbacks).
//!
//! Tokens come from the config file (`admin_tokens = [...]`) and the `CITYGRID_ADMIN_TOKEN`
//! environment variable. A write handler takes [`Admin`] as an extractor:
//! no `Authorization: Bearer …` header → 401 `unauthorized` (with `WWW-Authenticate`);
//! a token that is not configured → 403 `forbidden`; a server with no token configured at all
//! → 403 `writes_disabled`. Reads stay open.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;

/// The tokens that may write. Empty: writes are disabled.
#[derive(Clone, Default)]
pub struct AdminTokens(Arc<Vec<String>>);

impl std::fmt::Debug for AdminTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AdminTokens({} configured)", self.0.len())
    }
}

impl AdminTokens {
    pub fn new(tokens: Vec<String>) -> AdminTokens {
        AdminTokens(Arc::new(tokens.into_iter().filter(|t| !t.is_empty()).collect()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `given` is one of the tokens. Every token is compared in full, in time that
    /// does not depend on where the bytes differ.
    fn accepts(&self, given: &str) -> bool {
        self.0.iter().fold(false, |ok, t| ok | constant_time_eq(t.as_bytes(), given.as_bytes()))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Proof that the request carries a configured admin token.
pub struct Admin;

/// Why a write was refused.
pub struct Refused(ApiError, bool);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let challenge = self.1;
        let mut r = self.0.into_response();
        if challenge {
            r.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"citygrid\""));
        }
        r
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Admin, Refused> {
        let Some(value) = parts.headers.get(AUTHORIZATION) else {
            return Err(Refused(
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "this is a write: send Authorization: Bearer <admin token>"),
                true,
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .unwrap_or("");
        if state.admin.is_empty() {
            return Err(Refused(
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "writes_disabled",
                    "writes are disabled on this server: set admin_tokens in the config file or CITYGRID_ADMIN_TOKEN",
                ),
                false,
            ));
        }
        if token.is_empty() || !state.admin.accepts(token) {
            return Err(Refused(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "this token may not write"), false));
        }
        Ok(Admin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configured_tokens_are_accepted() {
        let t = AdminTokens::new(vec!["s3cret-token-one".into(), String::new(), "another-token".into()]);
        assert!(t.accepts("s3cret-token-one") && t.accepts("another-token"));
        assert!(!t.accepts("") && !t.accepts("s3cret-token-onf") && !t.accepts("s3cret-token-one "));
        assert!(!AdminTokens::new(vec![String::new()]).accepts(""), "an empty token never counts");
        assert!(AdminTokens::default().is_empty());
    }
}
