//! What a snapshot routes cases by, below the router itself: the responsibility list
//! (责任清单, [`list`]), its validation (指向唯一, [`validate`]) and the working calendar with
//! deadline arithmetic ([`calendar`]); [`Routing`] is one snapshot's loaded state of them.
//! No HTTP and no lookups here: `crate::routing` routes a case with them; `crate::http` maps
//! [`RulesError`] to statuses.

pub mod calendar;
pub mod list;
pub mod validate;

pub use calendar::{LimitUnit, TimeLimit, WorkCalendar, china_tz};
pub use list::{CaseKind, LineError, Role, Rule, RuleSet, Scope, UnitRef, Urgency};
pub use validate::{Issue, RenamedScope, Severity, ValidationReport, renamed_scopes, validate};

/// Why a responsibility list or a calendar cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// Lines of the responsibility list that cannot be read.
    #[error("the responsibility list has {} unreadable line(s): {}", .0.len(), .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    BadRules(Vec<LineError>),
    /// The list reads but fails validation (holes, conflicts, unknown units…).
    #[error("the responsibility list fails validation: {} error(s)", .0.errors)]
    InvalidRules(Box<ValidationReport>),
    /// A calendar file that does not read or contradicts itself.
    #[error("bad working calendar: {0}")]
    Calendar(String),
}

/// Tunables of routing.
#[derive(Clone, Debug, PartialEq)]
pub struct RoutingConfig {
    /// A component-class case snaps to the nearest component of that class within this, m.
    pub snap_distance_m: f64,
    /// Two components whose distances differ by at most this are "about equally near", m.
    pub ambiguity_m: f64,
    /// A point at most this far outside every grid goes to the nearest grid's street (with
    /// a warning); further is an error, m.
    pub max_outside_m: f64,
    /// Limit used when no rule gives one (属地兜底 of a type without rules).
    pub fallback_limit: TimeLimit,
}

impl Default for RoutingConfig {
    fn default() -> RoutingConfig {
        RoutingConfig { snap_distance_m: 30.0, ambiguity_m: 2.0, max_outside_m: 500.0, fallback_limit: TimeLimit { amount: 3, unit: LimitUnit::WorkingDays } }
    }
}

/// The routing state of one snapshot: the list (if usable), its validation report, the
/// calendar and the tunables.
#[derive(Debug)]
pub struct Routing {
    /// The list, only if it parsed and validated without errors.
    pub rules: Result<RuleSet, String>,
    /// The validation report of the stored list (`None` if it is missing or unreadable).
    pub report: Option<ValidationReport>,
    /// Unreadable lines of the stored list.
    pub line_errors: Vec<LineError>,
    pub calendar: WorkCalendar,
    pub config: RoutingConfig,
}

impl Routing {
    /// Parses and validates the stored list of a snapshot with the city's calendar
    /// (`calendar.toml` of the data directory; the built-in one when `None`) and the default
    /// config. A calendar that does not read leaves the snapshot without routing (its deadlines
    /// would be wrong), saying why.
    pub fn load(csv: Option<&str>, version: Option<u64>, city: &crate::model::City, calendar_toml: Option<&str>) -> Routing {
        let calendar = match calendar_toml.map(WorkCalendar::from_toml) {
            None => Ok(WorkCalendar::default()),
            Some(Ok(c)) => Ok(c),
            Some(Err(e)) => Err(format!("calendar.toml of the data directory: {e}")),
        };
        let mut routing = Routing {
            rules: Err("the data directory has no responsibility list".into()),
            report: None,
            line_errors: Vec::new(),
            calendar: calendar.clone().unwrap_or_default(),
            config: RoutingConfig::default(),
        };
        if let Err(problem) = calendar {
            tracing::error!(%problem, "case routing is off until the calendar is fixed");
            routing.rules = Err(problem);
            return routing;
        }
        if let Some(csv) = csv {
            match RuleSet::load(csv, city) {
                Ok((mut set, report)) => {
                    set.version = version;
                    routing.rules = Ok(set);
                    routing.report = Some(report);
                }
                Err(RulesError::InvalidRules(report)) => {
                    routing.rules = Err(format!("version {version:?} fails validation with {} error(s)", report.errors));
                    routing.report = Some(*report);
                }
                Err(RulesError::BadRules(lines)) => {
                    routing.rules = Err(format!("version {version:?} has {} unreadable line(s)", lines.len()));
                    routing.line_errors = lines;
                }
                Err(e) => routing.rules = Err(e.to_string()),
            }
        }
        routing
    }
}

impl RuleSet {
    /// Parses and validates: the list with its report (warnings only), or the errors. A list
    /// that fails here must not replace the one in use.
    pub fn load(csv: &str, city: &crate::model::City) -> Result<(RuleSet, ValidationReport), RulesError> {
        let set = RuleSet::parse(csv, city)?;
        let report = validate(&set, city);
        if report.ok { Ok((set, report)) } else { Err(RulesError::InvalidRules(Box::new(report))) }
    }
}
