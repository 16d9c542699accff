//! The working calendar (工作日历) and deadline arithmetic.
//!
//! All times are China Standard Time, a fixed UTC+08:00 ([`china_tz`]; China has no daylight
//! saving time, so no time-zone database is needed).
//!
//! A working day is a weekday (Monday–Friday) that is not a public holiday, or a make-up
//! working day (调休上班日, e.g. a Saturday the State Council declares a working day). Each
//! working day has the same working periods, by default 08:30–12:00 and 13:30–17:30 (7.5 h;
//! a common civil-service timetable — configure it per city).
//!
//! Deadlines ([`WorkCalendar::due`]):
//! - `n` working hours (`wh`): the clock runs only inside working periods. A case reported
//!   outside working time starts at the next working period. A deadline that falls exactly
//!   at the end of a period is that end (not the start of the next period).
//! - `n` working days (`wd`): the day of the report is not counted (民法典 art. 201); the
//!   deadline is the end of the working time of the `n`-th working day after the day of the
//!   report (art. 203: the period ends when business stops that day).
//! - `n` calendar days (`cd`, 自然日): exactly `n × 24` hours after the report, holidays included.
//!
//! # Years covered
//! Public holidays and make-up days are published year by year (by the State Council General
//! Office, around November for the next year), so a calendar knows only the years it lists
//! ([`WorkCalendar::years`]). A deadline in working hours or working days that counts a day of
//! another year — one that runs past the last covered year, or starts before the first — is
//! still computed (that year's days counted as plain weekdays and weekends), but never
//! silently: [`WorkCalendar::deadline`] names the unknown years, and a routed case carries the
//! warning `calendar_unknown_year` and `beyond_calendar: true` in its deadline. Calendar-day
//! limits do not look at the calendar and are never beyond it.
//!
//! # The TOML file
//! ```toml
//! working_hours = ["08:30-12:00", "13:30-17:30"]   # every working day; default as shown
//! weekend = ["sat", "sun"]                          # default as shown
//! years = [2025, 2026]                              # the years whose holidays are listed
//! holidays = ["2026-10-01", "2026-10-02"]           # public holidays and the rest days around them
//! workdays = ["2026-10-10"]                         # make-up working days (调休上班)
//! ```
//! Every holiday and make-up day must lie in a year of `years`, and every year of `years`
//! must have at least one holiday (a year listed without its dates would be claimed without
//! being known). A city adding a year adds it to `years` together with its dates. Without
//! `years` (calendars written before the key existed) the covered years are those of the
//! listed dates. Unknown keys are refused. [`check_calendar_toml`] validates a text and
//! summarises it ([`CalendarSummary`]).

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveTime, TimeZone, Weekday};
use serde::{Deserialize, Serialize};

use super::RulesError;

/// UTC+08:00, China Standard Time (Asia/Shanghai has had no DST since 1991).
pub fn china_tz() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("valid offset")
}

/// The built-in calendar: 2025 and 2026 public holidays and make-up working days as published
/// by the State Council General Office (国办发明电〔2024〕12号, November 2024; 国办发明电〔2025〕7号,
/// November 2025); each date's weekday is checked by the tests. Later years must be added as
/// data (`calendar.toml`) once published.
pub const DEFAULT_CALENDAR_TOML: &str = include_str!("../../fixtures/routing/calendar.toml");

/// Largest limits accepted (about a year each): a longer one is a typo.
pub const MAX_WORKING_HOURS: u32 = 2000;
pub const MAX_WORKING_DAYS: u32 = 250;
pub const MAX_CALENDAR_DAYS: u32 = 366;

/// How a time limit is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitUnit {
    /// 工作时: hours inside working periods.
    WorkingHours,
    /// 工作日: whole working days, ending when work stops on the last one.
    WorkingDays,
    /// 自然日: days of 24 hours, around the clock.
    CalendarDays,
}

/// A time limit such as `4wh`, `1wd`, `7cd`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimeLimit {
    pub amount: u32,
    pub unit: LimitUnit,
}

impl TimeLimit {
    /// Parses `<n>wh`, `<n>wd`, `<n>cd` (n ≥ 1; also `h`/`d` spelt out: `4 working hours` is not
    /// accepted, keep the list terse).
    pub fn parse(s: &str) -> Result<TimeLimit, String> {
        let s = s.trim().to_ascii_lowercase();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (n, unit) = s.split_at(split);
        let unit = match unit.trim() {
            "wh" => LimitUnit::WorkingHours,
            "wd" => LimitUnit::WorkingDays,
            "cd" => LimitUnit::CalendarDays,
            _ => return Err(format!("time limit {s:?} must be <n>wh (working hours), <n>wd (working days) or <n>cd (calendar days)")),
        };
        let amount: u32 = n.parse().map_err(|_| format!("time limit {s:?} must start with a whole number"))?;
        if amount == 0 {
            return Err(format!("time limit {s:?} must be positive"));
        }
        let max = match unit {
            LimitUnit::WorkingHours => MAX_WORKING_HOURS,
            LimitUnit::WorkingDays => MAX_WORKING_DAYS,
            LimitUnit::CalendarDays => MAX_CALENDAR_DAYS,
        };
        if amount > max {
            return Err(format!("time limit {s:?} is longer than the largest accepted ({max}{})", &s[split..]));
        }
        Ok(TimeLimit { amount, unit })
    }

    /// The compact form, `4wh`.
    pub fn code(&self) -> String {
        let u = match self.unit {
            LimitUnit::WorkingHours => "wh",
            LimitUnit::WorkingDays => "wd",
            LimitUnit::CalendarDays => "cd",
        };
        format!("{}{u}", self.amount)
    }
}

impl fmt::Display for TimeLimit {
    /// `4 working hours (4个工作时)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.amount;
        let s = if n == 1 { "" } else { "s" };
        match self.unit {
            LimitUnit::WorkingHours => write!(f, "{n} working hour{s} ({n}个工作时)"),
            LimitUnit::WorkingDays => write!(f, "{n} working day{s} ({n}个工作日)"),
            LimitUnit::CalendarDays => write!(f, "{n} calendar day{s} ({n}个自然日)"),
        }
    }
}

/// The calendar as written in TOML (keys in the [module documentation](self)).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarFile {
    #[serde(default = "default_hours")]
    working_hours: Vec<String>,
    #[serde(default = "default_weekend")]
    weekend: Vec<String>,
    years: Option<Vec<i32>>,
    #[serde(default)]
    holidays: Vec<NaiveDate>,
    #[serde(default)]
    workdays: Vec<NaiveDate>,
}

/// Years a calendar may list: a typo such as `206` or `20266` is refused.
const YEAR_RANGE: std::ops::RangeInclusive<i32> = 1900..=2999;

fn default_hours() -> Vec<String> {
    vec!["08:30-12:00".into(), "13:30-17:30".into()]
}
fn default_weekend() -> Vec<String> {
    vec!["sat".into(), "sun".into()]
}

/// Working periods, weekend days, holidays and make-up working days. See the
/// [module documentation](self) for how deadlines are counted.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkCalendar {
    /// Working periods of every working day, sorted, not overlapping (local time).
    pub periods: Vec<(NaiveTime, NaiveTime)>,
    pub weekend: Vec<Weekday>,
    /// Public holidays (法定节假日 and the rest days around them).
    pub holidays: BTreeSet<NaiveDate>,
    /// Make-up working days (调休上班), working even if they fall on a weekend.
    pub workdays: BTreeSet<NaiveDate>,
    /// The years whose holidays and make-up days the calendar knows (see the
    /// [module documentation](self#years-covered)).
    pub years: BTreeSet<i32>,
    /// `years` was written in the file (not taken from the dates).
    years_declared: bool,
}

/// What a calendar holds, for an import or a status page ([`check_calendar_toml`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CalendarSummary {
    /// The years covered, ascending.
    pub years: Vec<i32>,
    /// `true`: from the file's `years`; `false`: taken from the years of its dates.
    pub years_declared: bool,
    /// Number of public holidays and of make-up working days.
    pub holidays: usize,
    pub workdays: usize,
    /// `HH:MM-HH:MM`, sorted.
    pub working_hours: Vec<String>,
    /// `sat`, `sun`, … as in the file's order.
    pub weekend: Vec<String>,
}

/// Validates a calendar TOML text as [`WorkCalendar::from_toml`] does and summarises it.
pub fn check_calendar_toml(text: &str) -> Result<CalendarSummary, RulesError> {
    WorkCalendar::from_toml(text).map(|c| c.summary())
}

/// A deadline, and whether the calendar knew every year it counted in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueDate {
    /// UTC+08:00.
    pub due: DateTime<FixedOffset>,
    /// Years the computation counted working time in that the calendar does not cover, so
    /// their holidays were not known (ascending; empty when all were known, and for
    /// calendar-day limits, which do not use the calendar).
    pub unknown_years: Vec<i32>,
}

/// `2025–2026`, `2024, 2026–2027`, `no year`.
pub fn years_text(years: &BTreeSet<i32>) -> String {
    let mut runs: Vec<(i32, i32)> = Vec::new();
    for &y in years {
        match runs.last_mut() {
            Some(r) if r.1 + 1 == y => r.1 = y,
            _ => runs.push((y, y)),
        }
    }
    if runs.is_empty() {
        return "no year".into();
    }
    runs.iter().map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}–{b}") }).collect::<Vec<_>>().join(", ")
}

impl Default for WorkCalendar {
    /// The built-in calendar ([`DEFAULT_CALENDAR_TOML`]).
    fn default() -> WorkCalendar {
        WorkCalendar::from_toml(DEFAULT_CALENDAR_TOML).expect("the built-in calendar is valid")
    }
}

impl WorkCalendar {
    /// Reads and checks a calendar from TOML (keys and rules in the
    /// [module documentation](self#the-toml-file)).
    pub fn from_toml(text: &str) -> Result<WorkCalendar, RulesError> {
        let bad = |reason: String| RulesError::Calendar(reason);
        let file: CalendarFile = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut periods = Vec::new();
        for p in &file.working_hours {
            let (a, b) = p.split_once('-').ok_or_else(|| bad(format!("working period {p:?} must be HH:MM-HH:MM")))?;
            let t = |s: &str| NaiveTime::parse_from_str(s.trim(), "%H:%M").map_err(|_| bad(format!("working period {p:?} must be HH:MM-HH:MM")));
            let (a, b) = (t(a)?, t(b)?);
            if a >= b {
                return Err(bad(format!("working period {p:?} ends before it starts")));
            }
            periods.push((a, b));
        }
        periods.sort();
        if periods.is_empty() {
            return Err(bad("working_hours is empty".into()));
        }
        if periods.windows(2).any(|w| w[0].1 > w[1].0) {
            return Err(bad("working periods overlap".into()));
        }
        let weekend = file
            .weekend
            .iter()
            .map(|d| d.parse::<Weekday>().map_err(|_| bad(format!("weekend day {d:?} is not a weekday name"))))
            .collect::<Result<Vec<_>, _>>()?;
        if [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun].iter().all(|d| weekend.contains(d)) {
            return Err(bad("every day of the week is a weekend day".into()));
        }
        let holidays: BTreeSet<NaiveDate> = file.holidays.into_iter().collect();
        let workdays: BTreeSet<NaiveDate> = file.workdays.into_iter().collect();
        if let Some(d) = holidays.intersection(&workdays).next() {
            return Err(bad(format!("{d} is both a holiday and a make-up working day")));
        }
        let dated_years: BTreeSet<i32> = holidays.iter().chain(&workdays).map(|d| d.year()).collect();
        let years_declared = file.years.is_some();
        let years: BTreeSet<i32> = match file.years {
            None => dated_years,
            Some(listed) => {
                if listed.is_empty() {
                    return Err(bad("years is empty: list the years whose holidays the calendar holds, e.g. years = [2026]".into()));
                }
                if let Some(y) = listed.iter().find(|y| !YEAR_RANGE.contains(y)) {
                    return Err(bad(format!("year {y} in years is not a year from {} to {}", YEAR_RANGE.start(), YEAR_RANGE.end())));
                }
                let years: BTreeSet<i32> = listed.into_iter().collect();
                for (what, dates) in [("holiday", &holidays), ("make-up working day", &workdays)] {
                    if let Some(d) = dates.iter().find(|d| !years.contains(&d.year())) {
                        return Err(bad(format!(
                            "{what} {d} is in {}, which years ({}) does not list: add {} to years together with all its holidays and make-up days",
                            d.year(),
                            years_text(&years),
                            d.year()
                        )));
                    }
                }
                if let Some(y) = years.iter().find(|y| !holidays.iter().any(|d| d.year() == **y)) {
                    return Err(bad(format!(
                        "years lists {y} but no holiday of {y}: add its holidays and make-up days, or leave {y} out until they are published"
                    )));
                }
                years
            }
        };
        Ok(WorkCalendar { periods, weekend, holidays, workdays, years, years_declared })
    }

    /// The years whose holidays and make-up days the calendar knows, ascending.
    pub fn years(&self) -> &BTreeSet<i32> {
        &self.years
    }

    /// What the calendar holds (see [`check_calendar_toml`]).
    pub fn summary(&self) -> CalendarSummary {
        CalendarSummary {
            years: self.years.iter().copied().collect(),
            years_declared: self.years_declared,
            holidays: self.holidays.len(),
            workdays: self.workdays.len(),
            working_hours: self.periods.iter().map(|(a, b)| format!("{}-{}", a.format("%H:%M"), b.format("%H:%M"))).collect(),
            weekend: self.weekend.iter().map(|d| d.to_string().to_lowercase()).collect(),
        }
    }

    /// The deadline of a case reported at `start` with `limit` ([`WorkCalendar::due`]), with
    /// the years it counted working time in that the calendar does not cover: for working
    /// hours every day from the day of the report to the deadline, for working days every day
    /// after the day of the report up to the deadline; none for calendar days.
    pub fn deadline(&self, start: DateTime<FixedOffset>, limit: TimeLimit) -> DueDate {
        let due = self.due(start, limit);
        let first = start.with_timezone(&china_tz()).date_naive();
        let counted = match limit.unit {
            LimitUnit::CalendarDays => None,
            LimitUnit::WorkingHours => Some((first, due.date_naive())),
            LimitUnit::WorkingDays => Some((first.succ_opt().expect("date in range"), due.date_naive())),
        };
        let unknown_years = match counted {
            None => Vec::new(),
            Some((a, b)) => (a.year()..=b.year()).filter(|y| !self.years.contains(y)).collect(),
        };
        DueDate { due, unknown_years }
    }

    /// Whether `d` is a working day: a make-up day, or not weekend and not a holiday.
    pub fn is_working_day(&self, d: NaiveDate) -> bool {
        self.workdays.contains(&d) || !(self.weekend.contains(&d.weekday()) || self.holidays.contains(&d))
    }

    /// Working minutes of one working day.
    pub fn minutes_per_day(&self) -> i64 {
        self.periods.iter().map(|(a, b)| (*b - *a).num_minutes()).sum()
    }

    fn at(&self, d: NaiveDate, t: NaiveTime) -> DateTime<FixedOffset> {
        china_tz().from_local_datetime(&d.and_time(t)).single().expect("fixed offset is unambiguous")
    }

    /// The deadline of a case reported at `start` with `limit` (result in UTC+08:00).
    pub fn due(&self, start: DateTime<FixedOffset>, limit: TimeLimit) -> DateTime<FixedOffset> {
        let start = start.with_timezone(&china_tz());
        match limit.unit {
            LimitUnit::CalendarDays => start + Duration::days(limit.amount as i64),
            LimitUnit::WorkingDays => {
                let mut d = start.date_naive();
                let mut left = limit.amount;
                while left > 0 {
                    d = d.succ_opt().expect("date in range");
                    if self.is_working_day(d) {
                        left -= 1;
                    }
                }
                self.at(d, self.periods.last().expect("non-empty").1)
            }
            LimitUnit::WorkingHours => self.add_working_minutes(start, limit.amount as i64 * 60),
        }
    }

    /// `start` plus `minutes` of working time.
    fn add_working_minutes(&self, start: DateTime<FixedOffset>, minutes: i64) -> DateTime<FixedOffset> {
        let mut left = Duration::minutes(minutes);
        let mut day = start.date_naive();
        let mut from = start.time();
        // Terminates: some weekday is not weekend and the holiday list is finite.
        loop {
            if self.is_working_day(day) {
                for &(a, b) in &self.periods {
                    if from >= b {
                        continue;
                    }
                    let begin = from.max(a);
                    let span = b - begin;
                    if left <= span {
                        return self.at(day, begin) + left;
                    }
                    left -= span;
                }
            }
            day = day.succ_opt().expect("date in range");
            from = NaiveTime::MIN;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }
    fn lim(s: &str) -> TimeLimit {
        TimeLimit::parse(s).unwrap()
    }
    fn due(start: &str, limit: &str) -> String {
        WorkCalendar::default().due(t(start), lim(limit)).to_rfc3339()
    }

    #[test]
    fn limits_parse_and_reject_nonsense() {
        assert_eq!(lim("4wh"), TimeLimit { amount: 4, unit: LimitUnit::WorkingHours });
        assert_eq!(lim(" 20WD "), TimeLimit { amount: 20, unit: LimitUnit::WorkingDays });
        assert_eq!(lim("7cd").code(), "7cd");
        assert_eq!(lim("2000wh").amount, 2000);
        for bad in ["", "0wh", "4", "wh", "4wk", "-1wd", "1.5wh", "2001wh", "251wd", "367cd", "99999999999wh"] {
            assert!(TimeLimit::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(lim("1wd").to_string(), "1 working day (1个工作日)");
    }

    #[test]
    fn the_builtin_calendar_has_2026_holidays_and_make_up_days() {
        let c = WorkCalendar::default();
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(c.minutes_per_day(), 450);
        assert!(c.is_working_day(d("2026-11-23"))); // Monday
        assert!(!c.is_working_day(d("2026-11-21"))); // Saturday
        assert!(!c.is_working_day(d("2026-10-05"))); // National Day, Monday
        assert!(c.is_working_day(d("2026-10-10"))); // make-up Saturday
        assert!(c.is_working_day(d("2026-09-20"))); // make-up Sunday
        assert!(!c.is_working_day(d("2026-02-23"))); // Spring Festival, Monday
        assert!(c.is_working_day(d("2026-02-28"))); // make-up Saturday
    }

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn the_builtin_calendar_has_2025_as_published_and_every_date_on_the_right_weekday() {
        let c = WorkCalendar::default();
        assert_eq!(c.years().iter().copied().collect::<Vec<_>>(), [2025, 2026]);
        // 国办发明电〔2024〕12号, with the weekdays the notice gives.
        let holidays_2025 = [
            ("2025-01-01", "2025-01-01", Weekday::Wed),
            ("2025-01-28", "2025-02-04", Weekday::Tue),
            ("2025-04-04", "2025-04-06", Weekday::Fri),
            ("2025-05-01", "2025-05-05", Weekday::Thu),
            ("2025-05-31", "2025-06-02", Weekday::Sat),
            ("2025-10-01", "2025-10-08", Weekday::Wed),
        ];
        let mut n = 0;
        for (from, to, weekday) in holidays_2025 {
            assert_eq!(d(from).weekday(), weekday, "{from}");
            for day in d(from).iter_days().take_while(|x| *x <= d(to)) {
                assert!(c.holidays.contains(&day) && !c.is_working_day(day), "{day}");
                n += 1;
            }
        }
        assert_eq!(c.holidays.iter().filter(|h| h.year() == 2025).count(), n, "no other 2025 holiday");
        assert_eq!(n, 28);
        let workdays_2025 = [
            ("2025-01-26", Weekday::Sun),
            ("2025-02-08", Weekday::Sat),
            ("2025-04-27", Weekday::Sun),
            ("2025-09-28", Weekday::Sun),
            ("2025-10-11", Weekday::Sat),
        ];
        for (day, weekday) in workdays_2025 {
            assert_eq!(d(day).weekday(), weekday, "{day}");
            assert!(c.is_working_day(d(day)), "{day}");
        }
        assert_eq!(c.workdays.iter().filter(|w| w.year() == 2025).count(), workdays_2025.len());
        // Every make-up day of every year is a weekend day, and no holiday is one.
        for w in &c.workdays {
            assert!(matches!(w.weekday(), Weekday::Sat | Weekday::Sun), "{w} {}", w.weekday());
        }
        // Deadlines across the 2025 Spring Festival: Friday 24 Jan + 1 wd → the make-up
        // Sunday 26 Jan; + 2 wd → Monday 27 Jan; + 3 wd → Wednesday 5 Feb.
        assert_eq!(due("2025-01-24T10:00:00+08:00", "1wd"), "2025-01-26T17:30:00+08:00");
        assert_eq!(due("2025-01-24T10:00:00+08:00", "2wd"), "2025-01-27T17:30:00+08:00");
        assert_eq!(due("2025-01-24T10:00:00+08:00", "3wd"), "2025-02-05T17:30:00+08:00");
        // Tuesday 30 Sep 2025 16:30 + 4 wh: 1 h, then 1–8 Oct, Thursday 9 Oct 08:30 + 3 h.
        assert_eq!(due("2025-09-30T16:30:00+08:00", "4wh"), "2025-10-09T11:30:00+08:00");
    }

    #[test]
    fn deadlines_name_the_years_the_calendar_does_not_know() {
        let c = WorkCalendar::default();
        // The issue's case: 20 working days from Tuesday 8 Dec 2026 count Friday 1 Jan 2027
        // as a working day, because 2027's holidays are not known.
        let dd = c.deadline(t("2026-12-08T10:00:00+08:00"), lim("20wd"));
        assert_eq!(dd.due.to_rfc3339(), "2027-01-05T17:30:00+08:00");
        assert_eq!(dd.unknown_years, [2027]);
        // Inside the covered years: nothing unknown.
        let dd = c.deadline(t("2026-12-08T10:00:00+08:00"), lim("10wd"));
        assert_eq!((dd.due.to_rfc3339().as_str(), dd.unknown_years.len()), ("2026-12-22T17:30:00+08:00", 0));
        // Working hours from the last afternoon of 2026 run into 2027.
        assert_eq!(c.deadline(t("2026-12-31T17:00:00+08:00"), lim("1wh")).unknown_years, [2027]);
        assert!(c.deadline(t("2026-12-31T16:00:00+08:00"), lim("1wh")).unknown_years.is_empty());
        // Starting before the first covered year.
        assert_eq!(c.deadline(t("2024-12-30T10:00:00+08:00"), lim("4wh")).unknown_years, [2024]);
        assert_eq!(c.deadline(t("2024-12-20T10:00:00+08:00"), lim("20wd")).unknown_years, [2024]);
        // Working days do not count the day of the report: 31 Dec 2024 + 1 wd is 2 Jan 2025.
        let dd = c.deadline(t("2024-12-31T10:00:00+08:00"), lim("1wd"));
        assert_eq!((dd.due.to_rfc3339().as_str(), dd.unknown_years.len()), ("2025-01-02T17:30:00+08:00", 0));
        // Calendar days do not use the calendar.
        assert!(c.deadline(t("2026-12-30T10:00:00+08:00"), lim("7cd")).unknown_years.is_empty());
        // Both ends unknown, and the years between.
        let only_2026 = WorkCalendar::from_toml("years = [2026]\nholidays = [\"2026-10-01\"]").unwrap();
        assert_eq!(only_2026.deadline(t("2025-12-31T10:00:00+08:00"), lim("2000wh")).unknown_years, [2025, 2027]);
    }

    #[test]
    fn years_are_declared_checked_against_the_dates_and_summarised() {
        let s = check_calendar_toml(DEFAULT_CALENDAR_TOML).unwrap();
        assert_eq!(
            s,
            CalendarSummary {
                years: vec![2025, 2026],
                years_declared: true,
                holidays: 28 + 33,
                workdays: 5 + 6,
                working_hours: vec!["08:30-12:00".into(), "13:30-17:30".into()],
                weekend: vec!["sat".into(), "sun".into()],
            }
        );
        // A city adds 2027: the year and its dates.
        let with_2027 =
            DEFAULT_CALENDAR_TOML.replace("years = [2025, 2026]", "years = [2025, 2026, 2027]").replacen("holidays = [", "holidays = [\n  \"2027-01-01\",", 1);
        let c = WorkCalendar::from_toml(&with_2027).unwrap();
        let dd = c.deadline(t("2026-12-08T10:00:00+08:00"), lim("20wd"));
        assert_eq!((dd.due.to_rfc3339().as_str(), dd.unknown_years.len()), ("2027-01-06T17:30:00+08:00", 0));
        // Without `years` (older files): the years of the dates.
        let s = check_calendar_toml("holidays = [\"2026-10-01\", \"2024-10-01\"]").unwrap();
        assert_eq!((s.years, s.years_declared), (vec![2024, 2026], false));
        assert!(check_calendar_toml("weekend = [\"sun\"]").unwrap().years.is_empty());
        for (bad, needle) in [
            ("years = [2026]\nholidays = [\"2027-01-01\"]", "holiday 2027-01-01 is in 2027, which years (2026) does not list"),
            ("years = [2026]\nholidays = [\"2026-10-01\"]\nworkdays = [\"2025-09-28\"]", "make-up working day 2025-09-28"),
            ("years = []", "years is empty"),
            ("years = [2026, 2027]\nholidays = [\"2026-10-01\"]", "years lists 2027 but no holiday of 2027"),
            ("years = [206]\nholidays = [\"2026-10-01\"]", "year 206"),
            ("years = \"2026\"", "years"),
        ] {
            let e = check_calendar_toml(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad:?}: {e}");
        }
        let mut years = BTreeSet::new();
        assert_eq!(years_text(&years), "no year");
        years.extend([2024, 2026, 2027, 2029]);
        assert_eq!(years_text(&years), "2024, 2026–2027, 2029");
    }

    #[test]
    fn working_hours_inside_one_day_and_over_lunch() {
        assert_eq!(due("2026-11-23T09:00:00+08:00", "2wh"), "2026-11-23T11:00:00+08:00");
        // 11:00 + 2 h: one hour before lunch, one after 13:30.
        assert_eq!(due("2026-11-23T11:00:00+08:00", "2wh"), "2026-11-23T14:30:00+08:00");
        // Reported in the lunch break: starts at 13:30.
        assert_eq!(due("2026-11-23T12:15:00+08:00", "1wh"), "2026-11-23T14:30:00+08:00");
        // Ending exactly at the end of a period stays there.
        assert_eq!(due("2026-11-23T13:30:00+08:00", "4wh"), "2026-11-23T17:30:00+08:00");
    }

    #[test]
    fn friday_afternoon_working_hours_run_on_monday() {
        // Friday 17:00 + 4 wh: 0.5 h on Friday, 3.5 h on Monday from 08:30 → 12:00.
        assert_eq!(due("2026-11-20T17:00:00+08:00", "4wh"), "2026-11-23T12:00:00+08:00");
        // Reported on Saturday night: the clock starts Monday 08:30.
        assert_eq!(due("2026-11-21T22:00:00+08:00", "2wh"), "2026-11-23T10:30:00+08:00");
        // Reported at 06:00 (before work) on a weekday.
        assert_eq!(due("2026-11-24T06:00:00+08:00", "1wh"), "2026-11-24T09:30:00+08:00");
        // Times given in another offset are counted in China time.
        assert_eq!(due("2026-11-20T09:00:00Z", "4wh"), "2026-11-23T12:00:00+08:00");
    }

    #[test]
    fn holidays_stop_the_clock_and_make_up_days_run_it() {
        // Wednesday 30 Sep 2026, 16:30 + 4 wh: 1 h left that day; 1–7 Oct are the National
        // Day holiday; Thursday 8 Oct 08:30 + 3 h = 11:30.
        assert_eq!(due("2026-09-30T16:30:00+08:00", "4wh"), "2026-10-08T11:30:00+08:00");
        // Friday 9 Oct 17:00 + 2 wh: Saturday 10 Oct is a make-up working day.
        assert_eq!(due("2026-10-09T17:00:00+08:00", "2wh"), "2026-10-10T10:00:00+08:00");
        // Reported on the make-up Saturday itself.
        assert_eq!(due("2026-10-10T09:00:00+08:00", "1wh"), "2026-10-10T10:00:00+08:00");
        // Working days: 30 Sep + 1 wd → 8 Oct, end of work.
        assert_eq!(due("2026-09-30T10:00:00+08:00", "1wd"), "2026-10-08T17:30:00+08:00");
        // 9 Oct (Fri) + 1 wd → the make-up Saturday 10 Oct; + 2 wd → Monday 12 Oct.
        assert_eq!(due("2026-10-09T10:00:00+08:00", "1wd"), "2026-10-10T17:30:00+08:00");
        assert_eq!(due("2026-10-09T10:00:00+08:00", "2wd"), "2026-10-12T17:30:00+08:00");
    }

    #[test]
    fn working_and_calendar_days() {
        // Friday + 1 wd → Monday, end of work; the report day is not counted.
        assert_eq!(due("2026-11-20T10:00:00+08:00", "1wd"), "2026-11-23T17:30:00+08:00");
        // Reported on Sunday: Monday is the first working day after it.
        assert_eq!(due("2026-11-22T10:00:00+08:00", "1wd"), "2026-11-23T17:30:00+08:00");
        // Calendar days run through weekends and holidays.
        assert_eq!(due("2026-09-30T10:00:00+08:00", "3cd"), "2026-10-03T10:00:00+08:00");
    }

    #[test]
    fn calendars_read_from_toml_and_bad_ones_are_refused() {
        let c = WorkCalendar::from_toml("working_hours = [\"09:00-17:00\"]\nweekend = [\"sun\"]\n").unwrap();
        assert_eq!(c.minutes_per_day(), 480);
        assert!(c.is_working_day(NaiveDate::from_ymd_opt(2026, 11, 21).unwrap())); // Saturday works
        // Saturday 16:00 + 2 wh → Monday 10:00 (Sunday off).
        assert_eq!(c.due(t("2026-11-21T16:00:00+08:00"), lim("2wh")).to_rfc3339(), "2026-11-23T10:00:00+08:00");
        for bad in [
            "working_hours = []",
            "working_hours = [\"12:00-09:00\"]",
            "working_hours = [\"08:00-12:00\", \"11:00-14:00\"]",
            "weekend = [\"someday\"]",
            "weekend = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"]",
            "holidays = [\"2026-10-10\"]\nworkdays = [\"2026-10-10\"]",
            "hollidays = []",
        ] {
            assert!(WorkCalendar::from_toml(bad).is_err(), "{bad}");
        }
    }
}
