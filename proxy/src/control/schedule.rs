//! Scheduled asymmetry: per-pool weight templates that apply at certain
//! times of day, days of the week or dates (business hours in one region,
//! a sales weekend), evaluated by the engine against a wall clock.
//!
//! A template applies when every condition it sets holds, in its own UTC
//! offset (no time-zone database: `+01:00` in winter is written as such):
//! - `dates`: the local date is within `from..=to`;
//! - `days`: the local weekday is one of them;
//! - `from`/`to`: the local time is in `[from, to)`; `to` before `from`
//!   runs across midnight, and then `days` and `dates` are those of the
//!   evening the window starts (Friday 22:00–06:00 includes Saturday 03:00).
//!
//! The first template that applies wins; none: no multiplier. The active
//! template's region multipliers scale the raw weights of the region's
//! backends inside the weight formula (see [`super::weights`]), so
//! smoothing, `min_share`/`max_share`, tiers, canary bounds, the region cap
//! and pins all still hold. With client regions, where a request stays in
//! its plan's first region, the engine also turns them into a least spill
//! per region (each keeps `m / m_max` of its clients).
//!
//! A switch between templates is a decision, and
//! `ballast_schedule_active{pool,template}` shows which one is active.

use super::events::Event;
use super::spillover::Regions;
use crate::config::{Pool, ScheduleTemplate, Snapshot, DEFAULT_SPILLOVER};
use crate::routing::picker::PoolWeights;
use crate::stats::clock::WallClock;
use std::collections::HashMap;

const SECONDS_PER_DAY: i64 = 86_400;
/// How far ahead the next switch is looked for.
const LOOKAHEAD_S: i64 = 8 * SECONDS_PER_DAY;

/// Monday = 0 ... Sunday = 6, of a day number (1970-01-01 was a Thursday).
fn weekday(day: i64) -> usize {
    (day + 3).rem_euclid(7) as usize
}

/// Whether `template` applies at `unix_s`.
pub fn applies(template: &ScheduleTemplate, unix_s: i64) -> bool {
    let local = unix_s + template.utc_offset_s;
    let today = local.div_euclid(SECONDS_PER_DAY);
    let minute = (local.rem_euclid(SECONDS_PER_DAY) / 60) as u32;
    // The day the matching window started: yesterday in the small hours of
    // a window across midnight.
    let window_day = match template.window {
        None => today,
        Some((from, to)) if from < to => match (from..to).contains(&minute) {
            true => today,
            false => return false,
        },
        Some((from, to)) => {
            if minute >= from {
                today
            } else if minute < to {
                today - 1
            } else {
                return false;
            }
        }
    };
    let day_ok = template.days.is_none_or(|days| days[weekday(window_day)]);
    let date_ok = template
        .dates
        .is_none_or(|(first, last)| (first..=last).contains(&window_day));
    day_ok && date_ok
}

/// The first template that applies at `unix_s`, by index.
pub fn active(templates: &[ScheduleTemplate], unix_s: i64) -> Option<usize> {
    templates.iter().position(|t| applies(t, unix_s))
}

/// When, within the next 8 days, the active template next changes (Unix
/// seconds); every boundary falls on a whole minute.
pub fn next_switch(templates: &[ScheduleTemplate], unix_s: i64) -> Option<i64> {
    if templates.is_empty() {
        return None;
    }
    let current = active(templates, unix_s);
    let first_minute = (unix_s.div_euclid(60) + 1) * 60;
    (0..LOOKAHEAD_S / 60)
        .map(|m| first_minute + m * 60)
        .find(|&at| active(templates, at) != current)
}

/// The active template's name, by pool name.
pub type Active = HashMap<String, Option<String>>;

/// Forget the pools `snapshot` no longer has.
pub fn retain(active: &mut Active, snapshot: &Snapshot) {
    active.retain(|pool, _| snapshot.pool_by_name(pool).is_some());
}

/// The pool's template that applies at `clock`'s time, if any; a switch
/// from the one before is a decision, and every template's
/// `schedule_active` gauge follows.
pub fn note<'a>(
    pool: &'a Pool,
    active: &mut Active,
    clock: &WallClock,
    events: &mut Vec<Event<'a>>,
) -> Option<&'a ScheduleTemplate> {
    let templates = &pool.policy.schedules;
    let had_one = active.get(&pool.name).is_some_and(Option::is_some);
    if templates.is_empty() && !had_one {
        return None;
    }
    let template = self::active(templates, clock.now_unix_s()).map(|i| &templates[i]);
    for t in templates {
        events.push(Event::ScheduleActive {
            pool: &pool.name,
            template: &t.name,
            on: template.is_some_and(|a| a.name == t.name),
        });
    }
    let name = template.map(|t| t.name.clone());
    let before = active.insert(pool.name.clone(), name.clone()).flatten();
    if before != name {
        let describe = |n: &Option<String>| n.clone().unwrap_or_else(|| "none".into());
        let multipliers = template.map_or_else(
            || "no multipliers".to_string(),
            |t| {
                let list: Vec<String> = t
                    .multipliers
                    .iter()
                    .map(|(region, m)| format!("{region} x{m:.2}"))
                    .collect();
                list.join(", ")
            },
        );
        let reason = format!(
            "schedule {} -> {} ({multipliers})",
            describe(&before),
            describe(&name)
        );
        events.push(Event::ScheduleSwitched {
            pool: &pool.name,
            from: before,
            to: name,
            reason,
        });
    }
    template
}

/// With client regions a request stays in its plan's first region, so a
/// schedule moves clients rather than weights: region `R` keeps
/// `m_R / m_max` of its clients and sends the rest on to the next region
/// of their plan (as spillover does, never across a fence), at most
/// the spillover `max`; the larger of this and the spillover
/// controller's fraction is published.
pub fn apply_spill<'a>(
    pool: &'a Pool,
    template: Option<&ScheduleTemplate>,
    weights: &mut PoolWeights,
    regions: &mut Regions,
    events: &mut Vec<Event<'a>>,
) {
    let Some(template) = template else {
        for region in pool.regions.iter().flatten() {
            if let Some(mem) = regions.get_mut(&(pool.name.clone(), region.clone())) {
                mem.scheduled_floor = 0.0;
            }
        }
        return;
    };
    let multiplier = |region: &str| template.multipliers.get(region).copied().unwrap_or(1.0);
    let strongest = pool
        .regions
        .iter()
        .flatten()
        .map(|r| multiplier(r))
        .fold(0.0, f64::max);
    let most = pool
        .policy
        .spillover
        .as_ref()
        .map_or(DEFAULT_SPILLOVER.max, |s| s.max);
    for region in pool.regions.iter().flatten() {
        let floor = (1.0 - multiplier(region) / strongest).clamp(0.0, most);
        let mem = regions
            .entry((pool.name.clone(), region.clone()))
            .or_default();
        mem.scheduled_floor = floor;
        let spill = weights.spill(region).max(floor);
        weights.set_spill(region, spill);
        events.push(Event::RegionSpill {
            pool: &pool.name,
            region,
            spill,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::days_from_civil;
    use crate::stats::clock::WallClock;
    use std::collections::BTreeMap;

    /// Unix seconds of a UTC date and time.
    fn at(year: i64, month: u32, day: u32, hour: i64, minute: i64) -> i64 {
        days_from_civil(year, month, day).unwrap() * SECONDS_PER_DAY + hour * 3600 + minute * 60
    }

    fn template(name: &str) -> ScheduleTemplate {
        ScheduleTemplate {
            name: name.into(),
            multipliers: BTreeMap::from([("eu".to_string(), 2.0)]),
            days: None,
            window: None,
            dates: None,
            utc_offset_s: 0,
        }
    }

    fn weekdays() -> [bool; 7] {
        [true, true, true, true, true, false, false]
    }

    #[test]
    fn weekdays_of_day_numbers() {
        // 2026-11-30 is a Monday, 1970-01-01 a Thursday.
        assert_eq!(weekday(days_from_civil(2026, 11, 30).unwrap()), 0);
        assert_eq!(weekday(0), 3);
        assert_eq!(weekday(-1), 2);
    }

    #[test]
    fn a_window_applies_from_its_start_until_before_its_end() {
        let t = ScheduleTemplate {
            window: Some((8 * 60, 18 * 60)),
            ..template("business-hours")
        };
        assert!(!applies(&t, at(2026, 11, 30, 7, 59)));
        assert!(applies(&t, at(2026, 11, 30, 8, 0)));
        assert!(applies(&t, at(2026, 11, 30, 17, 59)));
        assert!(!applies(&t, at(2026, 11, 30, 18, 0)));
    }

    #[test]
    fn days_of_the_week_and_utc_offsets() {
        let t = ScheduleTemplate {
            window: Some((8 * 60, 18 * 60)),
            days: Some(weekdays()),
            utc_offset_s: 3600,
            ..template("business-hours")
        };
        // Monday 07:30 UTC is 08:30 at +01:00.
        assert!(applies(&t, at(2026, 11, 30, 7, 30)));
        assert!(!applies(&t, at(2026, 11, 30, 6, 59)));
        // Monday 17:30 UTC is 18:30 local: over.
        assert!(!applies(&t, at(2026, 11, 30, 17, 30)));
        // Saturday (2026-12-05) never.
        assert!(!applies(&t, at(2026, 12, 5, 10, 0)));
        // Sunday 23:30 UTC is Monday 00:30 at +01:00: the day, not the hour.
        let monday_all_day = ScheduleTemplate {
            days: Some([true, false, false, false, false, false, false]),
            utc_offset_s: 3600,
            ..template("monday")
        };
        assert!(applies(&monday_all_day, at(2026, 11, 29, 23, 30)));
        assert!(!applies(&monday_all_day, at(2026, 11, 29, 22, 30)));
        // A negative offset: Monday 03:00 UTC is Sunday 22:00 at -05:00.
        let negative = ScheduleTemplate {
            utc_offset_s: -5 * 3600,
            ..monday_all_day
        };
        assert!(!applies(&negative, at(2026, 11, 30, 3, 0)));
        assert!(applies(&negative, at(2026, 11, 30, 5, 0)));
    }

    #[test]
    fn a_window_across_midnight_belongs_to_the_evening_it_starts() {
        let t = ScheduleTemplate {
            window: Some((22 * 60, 6 * 60)),
            days: Some([false, false, false, false, true, false, false]), // Friday
            ..template("friday-night")
        };
        // Friday 2026-12-04 23:00, Saturday 03:00: in; Saturday 06:00: out.
        assert!(applies(&t, at(2026, 12, 4, 23, 0)));
        assert!(applies(&t, at(2026, 12, 5, 3, 0)));
        assert!(!applies(&t, at(2026, 12, 5, 6, 0)));
        // Friday 03:00 belongs to Thursday's night: out.
        assert!(!applies(&t, at(2026, 12, 4, 3, 0)));
        // Saturday 23:00 starts a Saturday night: out.
        assert!(!applies(&t, at(2026, 12, 5, 23, 0)));
        assert!(!applies(&t, at(2026, 12, 4, 21, 59)));
    }

    #[test]
    fn date_ranges_are_inclusive_local_dates() {
        let t = ScheduleTemplate {
            dates: Some((
                days_from_civil(2026, 11, 27).unwrap(),
                days_from_civil(2026, 11, 30).unwrap(),
            )),
            utc_offset_s: -5 * 3600,
            ..template("black-friday")
        };
        // 2026-11-27 00:00 at -05:00 is 05:00 UTC.
        assert!(!applies(&t, at(2026, 11, 27, 4, 59)));
        assert!(applies(&t, at(2026, 11, 27, 5, 0)));
        assert!(applies(&t, at(2026, 12, 1, 4, 59)));
        assert!(!applies(&t, at(2026, 12, 1, 5, 0)));
    }

    #[test]
    fn the_first_template_that_applies_wins_and_the_next_switch_is_found() {
        let sale = ScheduleTemplate {
            dates: Some((
                days_from_civil(2026, 11, 27).unwrap(),
                days_from_civil(2026, 11, 30).unwrap(),
            )),
            ..template("black-friday")
        };
        let office = ScheduleTemplate {
            window: Some((8 * 60, 18 * 60)),
            days: Some(weekdays()),
            ..template("business-hours")
        };
        let templates = [sale, office];
        // Monday 2026-11-30 10:00: both apply; the first listed wins.
        assert_eq!(active(&templates, at(2026, 11, 30, 10, 0)), Some(0));
        // Tuesday 10:00: only business hours.
        assert_eq!(active(&templates, at(2026, 12, 1, 10, 0)), Some(1));
        assert_eq!(active(&templates, at(2026, 12, 1, 19, 0)), None);
        // From Monday 10:00 the sale ends at Tuesday 00:00 UTC.
        assert_eq!(
            next_switch(&templates, at(2026, 11, 30, 10, 0)),
            Some(at(2026, 12, 1, 0, 0))
        );
        // From Tuesday 19:00 the next is Wednesday 08:00.
        assert_eq!(
            next_switch(&templates, at(2026, 12, 1, 19, 0)),
            Some(at(2026, 12, 2, 8, 0))
        );
        assert_eq!(next_switch(&[], 0), None);
        let clock = WallClock::fixed(at(2026, 12, 1, 10, 0));
        let shared = clock.clone();
        shared.set(at(2026, 12, 1, 19, 0));
        assert_eq!(clock.now_unix_s(), at(2026, 12, 1, 19, 0));
        assert!(WallClock::system().now_unix_s() > at(2026, 1, 1, 0, 0));
    }
}
