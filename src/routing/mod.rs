//! Case routing: from where a case is and what it is, the ONE responsible unit (指向唯一), its
//! deadline, and why. "Small matters do not leave the grid, big matters do not leave the
//! district."
//!
//! - [`rules`]: the responsibility list (责任清单) CSV.
//! - [`validate`]: every type, urgency and unit grid has exactly one rule.
//! - [`input`]: a case as sent (JSON object, CSV row) → [`CaseInput`].
//! - [`batch`]: many cases as they arrive (JSON array, NDJSON, CSV), bounded while read.
//! - [`calendar`]: working hours, holidays, make-up working days; deadlines in UTC+08:00.
//! - [`route`](route::route): one case → unit, dispatcher, deadline, explanation.
//!
//! No HTTP here; [`crate::http`] maps [`RoutingError`] to statuses.

pub mod batch;
pub mod input;
pub mod route;

pub use input::{InputError, parse_case};
pub use route::{CaseInput, CaseSubject, CaseTypeView, RouteAnswer, case_types, route};
// The list, its validation and the calendar live below routing, in `crate::rules` (a snapshot
// holds them without knowing how cases are routed); their names are here too, where callers
// of routing look for them.
pub use crate::rules::{
    CaseKind, Issue, LimitUnit, LineError, RenamedScope, Role, Routing, RoutingConfig, Rule, RuleSet, RulesError, Scope, Severity, TimeLimit, UnitRef, Urgency,
    ValidationReport, WorkCalendar, china_tz, renamed_scopes,
};
pub use crate::rules::{calendar, list as rules, validate};

use crate::lookup::{GridNear, LookupError};

/// What can go wrong in routing.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    /// No usable list in this snapshot.
    #[error("no usable responsibility list is loaded: {0}")]
    RulesUnavailable(String),
    #[error("{0} is required")]
    MissingParameter(&'static str),
    #[error("{parameter} = {value:?}: {reason}")]
    InvalidParameter { parameter: &'static str, value: String, reason: String },
    /// A well-formed class code that no class table (or no rule) knows.
    #[error("unknown {kind} type {code}")]
    UnknownCaseType { kind: &'static str, code: String },
    #[error("no component with code {0}")]
    ComponentNotFound(String),
    /// Further than the allowed distance outside every grid.
    #[error("the point is {:.0} m outside the city's grids (nearest grid {}); cases are routed up to {max_m:.0} m outside", .nearest.distance_m, .nearest.code)]
    OutsideCoverage { nearest: GridNear, max_m: f64 },
    /// A lookup problem (bad point, bad accuracy, malformed code).
    #[error(transparent)]
    Lookup(#[from] LookupError),
}
