//! Event budgets, off the hot path: the controller turns each route and
//! region's admission counters ([`crate::routing::budget`]) into rates for
//! the admin API, measured over at least a second; a route starting to go
//! over its budget in a region (shedding or spilling), or staying under it
//! for 3 s again, is a `budget` decision. The memory is forgotten on reload
//! with the budgets.

use super::events::Event;
use crate::routing::state::RoutingState;
use std::collections::HashMap;
use std::sync::atomic::Ordering;

/// Budget rates are measured over at least this long.
const BUDGET_RATE_WINDOW_MS: u64 = 1000;
/// A route over budget is back under once nothing was over for this long.
const BUDGET_CLEAR_MS: u64 = 3000;

/// The engine's memory of one route budget in one region.
#[derive(Debug, Clone, Default)]
pub struct BudgetMemory {
    /// When the counters below were read.
    at_ms: u64,
    admitted: u64,
    over: u64,
    pub rate: f64,
    pub over_rate: f64,
    pub over_budget: bool,
    last_over_ms: u64,
}

/// By (route index, region index).
pub type BudgetMemories = HashMap<(usize, usize), BudgetMemory>;

impl BudgetMemory {
    /// Memory that starts measuring from these counters.
    fn starting(now_ms: u64, admitted: u64, over: u64) -> Self {
        BudgetMemory {
            at_ms: now_ms,
            admitted,
            over,
            ..BudgetMemory::default()
        }
    }

    /// Take a reading of the counters (`admitted`, and `over`: rejected or
    /// spilled); `Some(true)` when the route starts going over its budget,
    /// `Some(false)` when it is back under.
    fn observe(&mut self, admitted: u64, over: u64, now_ms: u64) -> Option<bool> {
        let elapsed_ms = now_ms.saturating_sub(self.at_ms);
        if elapsed_ms < BUDGET_RATE_WINDOW_MS {
            return None;
        }
        let per_second = 1000.0 / elapsed_ms as f64;
        self.rate = (admitted - self.admitted) as f64 * per_second;
        self.over_rate = (over - self.over) as f64 * per_second;
        (self.at_ms, self.admitted, self.over) = (now_ms, admitted, over);
        if self.over_rate > 0.0 {
            self.last_over_ms = now_ms;
        }
        let going_over = self.over_rate > 0.0 && !self.over_budget;
        let back_under =
            self.over_budget && now_ms.saturating_sub(self.last_over_ms) >= BUDGET_CLEAR_MS;
        if !going_over && !back_under {
            return None;
        }
        self.over_budget = going_over;
        Some(going_over)
    }
}

/// Read every budget's counters and note the routes going over or back
/// under.
pub fn observe<'a>(
    current: &'a RoutingState,
    memory: &mut BudgetMemories,
    now_ms: u64,
    events: &mut Vec<Event<'a>>,
) {
    let routes = current.snapshot.routes.routes();
    for (r, budget) in current.budgets.routes.iter().enumerate() {
        let Some(budget) = budget else { continue };
        for (i, region) in budget.regions.iter().enumerate() {
            let admitted = region.admitted.load(Ordering::Relaxed);
            let over =
                region.rejected.load(Ordering::Relaxed) + region.spilled.load(Ordering::Relaxed);
            let seen = memory
                .entry((r, i))
                .or_insert_with(|| BudgetMemory::starting(now_ms, admitted, over));
            let Some(going_over) = seen.observe(admitted, over, now_ms) else {
                continue;
            };
            let limit = region.limiter.rate();
            let route = &routes[r].name;
            let region_name = region.region.as_deref().unwrap_or("-");
            let reason = if going_over {
                format!(
                    "route {route} over its budget in {region_name}: {:.0} req/s over the limit of {limit:.0} req/s ({:.0}% of {:.0} req/s capacity); {}",
                    seen.over_rate,
                    budget.policy.region_share * 100.0,
                    region.capacity,
                    budget.policy.over.as_str()
                )
            } else {
                format!(
                    "route {route} back under its budget in {region_name}: {:.0} of {limit:.0} req/s",
                    seen.rate
                )
            };
            let usage = |rate: f64| if limit > 0.0 { rate / limit } else { 0.0 };
            events.push(Event::Budget {
                // A route with a budget always has a pool.
                pool: routes[r]
                    .pool
                    .map_or("-", |pool| current.snapshot.pool(pool).name.as_str()),
                route,
                target: format!("{route}@{region_name}"),
                usage: (usage(seen.rate), usage(seen.rate + seen.over_rate)),
                reason,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn going_over_and_back_under_are_noted_once_each() {
        let mut seen = BudgetMemory::starting(0, 0, 0);
        assert_eq!(
            seen.observe(50, 0, 500),
            None,
            "under a second: no rate yet"
        );
        assert_eq!(seen.observe(100, 0, 1_000), None);
        assert_eq!(seen.rate, 100.0);
        assert_eq!(seen.observe(200, 10, 2_000), Some(true));
        assert_eq!(seen.over_rate, 10.0);
        assert_eq!(seen.observe(300, 20, 3_000), None, "still over");
        assert_eq!(seen.observe(400, 20, 4_000), None, "clear for 1 s");
        assert_eq!(seen.observe(500, 20, 6_000), Some(false), "clear for 3 s");
        assert!(!seen.over_budget);
    }
}
