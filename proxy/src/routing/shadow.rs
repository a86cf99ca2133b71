//! Policy shadow mode, per request: a candidate weight policy
//! (`pools.X.shadow`) runs beside the live one without routing anything, so
//! an operator can see what a policy change would do before making it. The
//! control loop computes and publishes the candidate's shares
//! ([`crate::control::shadow`]).
//!
//! Per request, after the live pick, a sampled request is placed on the
//! candidate's shares by the same uniform draw: the draw that lands on the
//! chosen backend's interval of the live cumulative shares (a point drawn
//! uniformly within that interval, which is exactly how a weighted draw
//! reaches it) is read as the same fraction of the candidate's cumulative
//! shares. Identical shares therefore always agree, and the disagreement
//! rate measures the policies' difference rather than noise. The group the
//! request was chosen in (the pool, or its region and tier with a regional
//! plan) is kept.

use super::picker::PoolWeights;
use prometheus::IntCounter;
use rand::Rng;

/// A pool's published candidate, read per request.
pub struct ShadowWeights {
    pub candidate: PoolWeights,
    /// Fraction of requests compared.
    sample: f64,
    counters: ShadowCounters,
}

/// The pool's `ballast_shadow_decisions_total` series, resolved once.
#[derive(Clone)]
pub struct ShadowCounters {
    pub same: IntCounter,
    pub different: IntCounter,
}

impl ShadowWeights {
    pub fn new(candidate: PoolWeights, sample: f64, counters: ShadowCounters) -> Self {
        Self {
            candidate,
            sample,
            counters,
        }
    }

    /// After the live policy chose `chosen` (weights `live`; `regional`: the
    /// request had a regional plan), count whether the candidate would have
    /// chosen the same backend. `None` when the request is not sampled.
    pub fn compare<R: Rng + ?Sized>(
        &self,
        live: &PoolWeights,
        chosen: usize,
        regional: bool,
        rng: &mut R,
    ) -> Option<bool> {
        if self.sample < 1.0 && rng.random::<f64>() >= self.sample {
            return None;
        }
        let same =
            live.shadow_choice(&self.candidate, chosen, regional, rng.random()) == Some(chosen);
        if same {
            self.counters.same.inc();
        } else {
            self.counters.different.inc();
        }
        Some(same)
    }
}
