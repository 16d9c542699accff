//! Bearer tokens of the two roles.
//!
//! - **admin** (data): writes — `PUT /v1/rules`, layer and package uploads, rollbacks — and the
//!   stored version files. Tokens from `admin_tokens = [...]` and `CITYGRID_ADMIN_TOKEN`. A handler
//!   takes [`Admin`]: no `Authorization: Bearer …` header → 401 `unauthorized` (with
//!   `WWW-Authenticate`); a token that is not configured → 403 `forbidden`; a server with no
//!   admin token configured at all → 403 `writes_disabled`.
//! - **dispatcher**: case routing (`POST /v1/cases/route`, `…:batch`, which write the audit
//!   log) and reading the case log (`GET /v1/cases/routes`). Tokens from `dispatcher_tokens` and
//!   `CITYGRID_DISPATCHER_TOKEN`; an admin token is accepted too. A handler takes
//!   [`Dispatcher`]: with no dispatcher token configured these stay open to anyone (the server
//!   warns at start); once one is, 401 / 403 as for the admin.
//!
//! - **staff** (privacy of field staff): reading positions, nearest staff and the grid
//!   enter/leave events (`GET /v1/staff…`). Tokens from `staff_tokens` and
//!   `CITYGRID_STAFF_TOKEN`; an admin token is accepted too. A handler takes [`StaffReader`]:
//!   never open — with no staff token configured only admins read (401 / 403 otherwise).
//! - **positions** (phones, a gateway): `POST /v1/staff/positions`. Tokens from
//!   `positions_tokens` and `CITYGRID_POSITIONS_TOKEN`; an admin token is accepted too. A
//!   handler takes [`PositionWriter`]: with no positions token configured, 403
//!   `positions_disabled` (unless an admin token is sent). A positions token reads nothing.
//!
//! Everything else is a public read: lookups, tiles, OGC API, statistics.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;

/// The tokens of one role. Empty: none configured.
#[derive(Clone, Default)]
pub struct Tokens(Arc<Vec<String>>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.0.len())
    }
}

impl Tokens {
    pub fn new(tokens: Vec<String>) -> Tokens {
        Tokens(Arc::new(tokens.into_iter().filter(|t| !t.is_empty()).collect()))
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

/// Why a request was refused: the JSON error, and whether to send a `WWW-Authenticate`
/// challenge (401 only).
pub struct Refused(ApiError, bool);

impl Refused {
    /// 401 `unauthorized` with a challenge: no `Authorization` header.
    fn unauthorized(message: &'static str) -> Refused {
        Refused(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message), true)
    }

    /// 403 with `code`: a token was sent but this role does not accept it.
    fn forbidden(code: &'static str, message: &'static str) -> Refused {
        Refused(ApiError::new(StatusCode::FORBIDDEN, code, message), false)
    }
}

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

/// The bearer token the request presents (`""` for a header that is not `Bearer …`), or 401
/// with `missing` when it has no `Authorization` header.
fn presented<'a>(parts: &'a Parts, missing: &'static str) -> Result<&'a str, Refused> {
    parts.headers.get(AUTHORIZATION).map(bearer).ok_or_else(|| Refused::unauthorized(missing))
}

/// Whether `token` is one of `roles`' tokens (an empty token never is).
fn accepted(token: &str, roles: &[&Tokens]) -> bool {
    !token.is_empty() && roles.iter().any(|t| t.accepts(token))
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Admin, Refused> {
        let token = presented(parts, "this is a write: send Authorization: Bearer <admin token>")?;
        if state.admin.is_empty() {
            return Err(Refused::forbidden(
                "writes_disabled",
                "writes are disabled on this server: set admin_tokens in the config file or CITYGRID_ADMIN_TOKEN",
            ));
        }
        if !accepted(token, &[&state.admin]) {
            return Err(Refused::forbidden("forbidden", "this token may not write"));
        }
        Ok(Admin)
    }
}

/// Proof that the request may route cases and read the case log: it carries a dispatcher or an
/// admin token, or the server has no dispatcher token configured (routing open to anyone).
pub struct Dispatcher;

impl FromRequestParts<AppState> for Dispatcher {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Dispatcher, Refused> {
        if state.dispatchers.is_empty() {
            return Ok(Dispatcher);
        }
        let token = presented(parts, "case routing and the case log need a dispatcher: send Authorization: Bearer <dispatcher token>")?;
        if !accepted(token, &[&state.dispatchers, &state.admin]) {
            return Err(Refused::forbidden("forbidden", "this token may not route cases"));
        }
        Ok(Dispatcher)
    }
}

/// Proof that the request may read field staff positions and events: a staff or an admin token.
pub struct StaffReader;

impl FromRequestParts<AppState> for StaffReader {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<StaffReader, Refused> {
        let token = presented(parts, "staff positions are private: send Authorization: Bearer <staff token>")?;
        if !accepted(token, &[&state.staff_readers, &state.admin]) {
            return Err(Refused::forbidden("forbidden", "this token may not read staff positions (a staff or admin token may)"));
        }
        Ok(StaffReader)
    }
}

/// Proof that the request may send position reports: a positions or an admin token.
pub struct PositionWriter;

impl FromRequestParts<AppState> for PositionWriter {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<PositionWriter, Refused> {
        let token = presented(parts, "position reports need Authorization: Bearer <positions token>")?;
        if accepted(token, &[&state.admin, &state.position_writers]) {
            return Ok(PositionWriter);
        }
        if state.position_writers.is_empty() {
            return Err(Refused::forbidden(
                "positions_disabled",
                "position reports are disabled on this server: set positions_tokens in the config file or CITYGRID_POSITIONS_TOKEN",
            ));
        }
        Err(Refused::forbidden("forbidden", "this token may not send positions"))
    }
}

/// Whether the request carries a token of any role that may see staff positions in a case's
/// answer: staff, dispatcher or admin (only configured tokens count: an open server gives none).
pub fn may_see_staff(headers: &axum::http::HeaderMap, state: &AppState) -> bool {
    let token = headers.get(AUTHORIZATION).map(bearer).unwrap_or("");
    accepted(token, &[&state.staff_readers, &state.dispatchers, &state.admin])
}

/// The token of an `Authorization: Bearer …` header (`""` if it is not one).
fn bearer(value: &HeaderValue) -> &str {
    value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer "))).map(str::trim).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configured_tokens_are_accepted() {
        let t = Tokens::new(vec!["s3cret-token-one".into(), String::new(), "another-token".into()]);
        assert!(t.accepts("s3cret-token-one") && t.accepts("another-token"));
        assert!(!t.accepts("") && !t.accepts("s3cret-token-onf") && !t.accepts("s3cret-token-one "));
        assert!(!Tokens::new(vec![String::new()]).accepts(""), "an empty token never counts");
        assert!(Tokens::default().is_empty());
    }
}
