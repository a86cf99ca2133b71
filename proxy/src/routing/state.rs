//! The contract between the engine and the proxy: what the proxy reads per
//! request, published by the engine as one unit (`ArcSwap`) so that the
//! snapshot, the stats handles and the weights always agree.

use super::budget::Budgets;
use super::picker::PoolWeights;
use super::retry_budget::RetryBudgets;
use super::shadow::ShadowWeights;
use crate::config::{PoolId, Snapshot};
use crate::stats::live::ResolvedStats;
use crate::telemetry::request_series::RequestSeries;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What the proxy reads per request.
pub struct RoutingState {
    pub snapshot: Arc<Snapshot>,
    pub stats: Arc<ResolvedStats>,
    /// Per pool; `None` until the engine has computed it.
    pub weights: Vec<Option<PoolWeights>>,
    /// Per pool, the shadow candidate's weights when one is configured.
    pub shadows: Vec<Option<Arc<ShadowWeights>>>,
    /// Per-pool round-robin counters, kept for as long as the snapshot is.
    tickets: Arc<[AtomicU64]>,
    /// The snapshot's per-request metric series, kept as long as it is.
    pub series: Arc<RequestSeries>,
    /// The routes' event budgets, kept as long as the snapshot is.
    pub budgets: Arc<Budgets>,
    /// Per-pool retries in flight, kept as long as the snapshot is.
    pub retry_budgets: Arc<RetryBudgets>,
}

impl RoutingState {
    /// The state of a newly installed snapshot: no weights computed yet,
    /// round-robin counters at zero.
    pub fn new(
        stats: Arc<ResolvedStats>,
        series: Arc<RequestSeries>,
        budgets: Arc<Budgets>,
        snapshot: Arc<Snapshot>,
    ) -> Self {
        Self {
            stats,
            weights: vec![None; snapshot.pools.len()],
            shadows: vec![None; snapshot.pools.len()],
            tickets: snapshot.pools.iter().map(|_| AtomicU64::new(0)).collect(),
            series,
            budgets,
            retry_budgets: Arc::new(RetryBudgets::new(snapshot.pools.len())),
            snapshot,
        }
    }

    /// The same snapshot, stats, counters and budgets with new weights.
    pub fn with_weights(
        &self,
        weights: Vec<Option<PoolWeights>>,
        shadows: Vec<Option<Arc<ShadowWeights>>>,
    ) -> Self {
        Self {
            snapshot: self.snapshot.clone(),
            stats: self.stats.clone(),
            weights,
            shadows,
            tickets: self.tickets.clone(),
            series: self.series.clone(),
            budgets: self.budgets.clone(),
            retry_budgets: self.retry_budgets.clone(),
        }
    }

    /// The next round-robin ticket of a pool.
    pub fn next_ticket(&self, pool: PoolId) -> u64 {
        self.tickets[pool.0].fetch_add(1, Ordering::Relaxed)
    }
}
