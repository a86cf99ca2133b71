//! A fleet's shared event budgets, as compiled from the `fleet` section.

use std::time::Duration;

/// Where and how a fleet shares its event budgets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetBudgets {
    /// `redis://HOST:PORT[/DB]`, as configured (no credentials).
    pub budget_store: String,
    pub lease_interval: Duration,
    /// Instances assumed when none are known and Redis is unreachable.
    pub instances: u32,
    pub key_prefix: String,
}
