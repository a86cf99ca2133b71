//! `pools.<name>.schedules`: weight templates by weekday, time of day, date
//! range and UTC offset.

use super::fields::Checker;
use crate::config::days_from_civil;
use crate::config::raw::*;
use crate::config::snapshot::*;
use std::collections::HashSet;

const MAX_SCHEDULE_MULTIPLIER: f64 = 100.0;

/// A pool's weight templates; `regions` are those of its backends.
pub(super) fn compile_schedules(
    c: &mut Checker,
    path: &str,
    pool: &RawPool,
    regions: &[Option<String>],
) -> Vec<ScheduleTemplate> {
    let fixed = pool
        .mode
        .as_deref()
        .filter(|m| ["round_robin", "peak_ewma"].contains(m));
    if let (false, Some(mode)) = (pool.schedules.is_empty(), fixed) {
        c.error(
            format!("{path}.schedules"),
            format!(
                "schedules need an adaptive mode (latency or capacity); {mode} ignores weights"
            ),
        );
    }
    let mut names = HashSet::new();
    let mut templates = Vec::new();
    for (i, raw) in pool.schedules.iter().enumerate() {
        let path = format!("{path}.schedules[{i}]");
        check_name(c, &path, &raw.name, &mut names);
        check_multipliers(c, &path, raw, regions);
        let days = raw
            .days
            .as_ref()
            .map(|days| parse_days(c, &format!("{path}.days"), days));
        let window = compile_window(c, &path, raw);
        let dates = raw
            .dates
            .as_ref()
            .and_then(|range| compile_dates(c, &path, range));
        if raw.days.is_none() && raw.from.is_none() && raw.to.is_none() && raw.dates.is_none() {
            c.error(&path, "needs days, from/to or dates (when it applies)");
        }
        let utc_offset_s = raw.utc_offset.as_deref().map_or(0, |text| {
            parse_utc_offset(c, &format!("{path}.utc_offset"), text)
        });
        templates.push(ScheduleTemplate {
            name: raw.name.clone(),
            multipliers: raw.regions.clone(),
            days,
            window,
            dates,
            utc_offset_s,
        });
    }
    templates
}

/// A schedule's name: a valid name, once per pool.
fn check_name<'a>(c: &mut Checker, path: &str, name: &'a str, names: &mut HashSet<&'a str>) {
    let valid_name = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !valid_name {
        c.error(
            format!("{path}.name"),
            format!("invalid name \"{name}\" (use letters, digits, '-', '_', '.')"),
        );
    } else if !names.insert(name) {
        c.error(
            format!("{path}.name"),
            format!("duplicate schedule name \"{name}\""),
        );
    }
}

/// Each multiplier names a region of the pool and lies in (0, max].
fn check_multipliers(c: &mut Checker, path: &str, raw: &RawSchedule, regions: &[Option<String>]) {
    if raw.regions.is_empty() {
        c.error(
            format!("{path}.regions"),
            "name at least one region and its multiplier",
        );
    }
    for (region, multiplier) in &raw.regions {
        if !regions.iter().flatten().any(|r| r == region) {
            c.error(
                format!("{path}.regions.{region}"),
                format!("no backend of the pool is in region \"{region}\""),
            );
        }
        if !(multiplier.is_finite() && *multiplier > 0.0 && *multiplier <= MAX_SCHEDULE_MULTIPLIER)
        {
            c.error(
                format!("{path}.regions.{region}"),
                format!(
                    "multiplier {multiplier} must be above 0 and at most {MAX_SCHEDULE_MULTIPLIER}"
                ),
            );
        }
    }
}

/// `from`/`to` → minutes of the day `[from, to)`; both or neither.
fn compile_window(c: &mut Checker, path: &str, raw: &RawSchedule) -> Option<(u32, u32)> {
    match (&raw.from, &raw.to) {
        (None, None) => None,
        (Some(from), Some(to)) => {
            let from_minute = parse_time(c, &format!("{path}.from"), from, false);
            let to_minute = parse_time(c, &format!("{path}.to"), to, true);
            match (from_minute, to_minute) {
                (Some(f), Some(t)) if f == t % (24 * 60) => {
                    c.error(
                        format!("{path}.to"),
                        format!("\"{to}\" is the same time as from: an empty (or full-day) window; leave both out to apply all day"),
                    );
                    None
                }
                (Some(f), Some(t)) => Some((f, t % (24 * 60))),
                _ => None,
            }
        }
        _ => {
            c.error(path, "from and to go together");
            None
        }
    }
}

/// `dates: {from, to}` → the first and last day, inclusive.
fn compile_dates(c: &mut Checker, path: &str, range: &RawDateRange) -> Option<(i64, i64)> {
    let first = parse_date(c, &format!("{path}.dates.from"), &range.from);
    let last = parse_date(c, &format!("{path}.dates.to"), &range.to);
    match (first, last) {
        (Some(first), Some(last)) if last < first => {
            c.error(
                format!("{path}.dates.to"),
                format!("{} is before from {}", range.to, range.from),
            );
            None
        }
        (Some(first), Some(last)) => Some((first, last)),
        _ => None,
    }
}

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// `[mon, wed-fri]` → Monday-first flags.
fn parse_days(c: &mut Checker, path: &str, days: &[String]) -> [bool; 7] {
    let mut flags = [false; 7];
    if days.is_empty() {
        c.error(
            path,
            "name at least one day (or leave days out for every day)",
        );
    }
    let index = |name: &str| {
        WEEKDAYS
            .iter()
            .position(|d| d.eq_ignore_ascii_case(name.trim()))
    };
    for (i, day) in days.iter().enumerate() {
        let range = match day.split_once('-') {
            Some((first, last)) => index(first).zip(index(last)),
            None => index(day).map(|d| (d, d)),
        };
        match range {
            Some((first, last)) if first <= last => flags[first..=last].fill(true),
            _ => c.error(
                format!("{path}[{i}]"),
                format!("invalid day \"{day}\" (mon, tue, wed, thu, fri, sat, sun, or a range such as mon-fri)"),
            ),
        }
    }
    flags
}

/// `HH:MM` → minutes of the day; `24:00` only when `end_of_day_allowed`.
fn parse_time(c: &mut Checker, path: &str, text: &str, end_of_day_allowed: bool) -> Option<u32> {
    let parsed = text.split_once(':').and_then(|(h, m)| {
        let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
        (two_digits(h) && two_digits(m)).then(|| (h.parse::<u32>().ok(), m.parse::<u32>().ok()))
    });
    match parsed {
        Some((Some(h), Some(m))) if h < 24 && m < 60 => Some(h * 60 + m),
        Some((Some(24), Some(0))) if end_of_day_allowed => Some(24 * 60),
        _ => {
            c.error(
                path,
                format!(
                    "invalid time \"{text}\" (expected HH:MM, 00:00 to 23:59{})",
                    if end_of_day_allowed { " or 24:00" } else { "" }
                ),
            );
            None
        }
    }
}

/// `YYYY-MM-DD` → days since 1970-01-01.
fn parse_date(c: &mut Checker, path: &str, text: &str) -> Option<i64> {
    let parts: Vec<&str> = text.split('-').collect();
    let parsed = match parts.as_slice() {
        [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 => {
            match (y.parse::<i64>(), m.parse::<u32>(), d.parse::<u32>()) {
                (Ok(y), Ok(m), Ok(d)) => days_from_civil(y, m, d),
                _ => None,
            }
        }
        _ => None,
    };
    if parsed.is_none() {
        c.error(
            path,
            format!("invalid date \"{text}\" (expected YYYY-MM-DD)"),
        );
    }
    parsed
}

/// `+01:00` / `-05:30` → seconds; at most 14 hours either way.
fn parse_utc_offset(c: &mut Checker, path: &str, text: &str) -> i64 {
    let sign = match text.as_bytes().first() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => 0,
    };
    let minutes = text
        .get(1..)
        .filter(|_| sign != 0)
        .and_then(|rest| rest.split_once(':'))
        .and_then(|(h, m)| {
            let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
            (two_digits(h) && two_digits(m)).then(|| (h.parse::<i64>().ok(), m.parse::<i64>().ok()))
        });
    match minutes {
        Some((Some(h), Some(m))) if m < 60 && h * 60 + m <= 14 * 60 => sign * (h * 3600 + m * 60),
        _ => {
            c.error(
                path,
                format!("invalid UTC offset \"{text}\" (expected +HH:MM or -HH:MM, at most 14:00)"),
            );
            0
        }
    }
}
