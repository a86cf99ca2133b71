//! What the control loop remembers of each backend, by backend id like the
//! live stats, so it survives configuration reloads for backends that
//! remain: its last share and why, slow start, ejection, health verdict,
//! operator overrides, canary breaker, swing reference and ring vnodes.
//! Each controller keeps its own fields here up to date.
//!
//! From this memory and a reading of the live stats come the inputs of the
//! weight formulas. If nothing in a pool is eligible, the pool panics: every
//! backend (except one an operator drained) is used rather than failing
//! every request.

use super::engine::InstallReport;
use super::weights::{BackendInput, Factors};
use crate::config::{BackendId, Pool, Snapshot};
use crate::stats::backend::Observation;
use std::collections::{BTreeMap, HashMap, HashSet};

/// What the engine remembers of each backend, by id. The ids come from the
/// configuration, never from clients, so a fast hasher is safe here.
pub type BackendMemories = HashMap<BackendId, BackendMemory, foldhash::fast::RandomState>;

/// The memory of backend `id`, created empty on first use; the id is copied
/// only then.
pub fn memory_of<'m>(memories: &'m mut BackendMemories, id: &BackendId) -> &'m mut BackendMemory {
    if !memories.contains_key(id) {
        memories.insert(id.clone(), BackendMemory::default());
    }
    memories.get_mut(id).expect("inserted above")
}

/// The engine's private memory of one backend.
#[derive(Debug, Clone, Default)]
pub struct BackendMemory {
    pub share: Option<f64>,
    pub factors: Option<Factors>,
    /// Slow start runs from here.
    pub admitted_at_ms: Option<u64>,
    pub ejected_until_ms: Option<u64>,
    pub times_ejected: u32,
    /// The health verdict seen last time, to notice changes.
    pub unhealthy: bool,
    /// An operator drained the backend: no new requests.
    pub drained: bool,
    /// An operator pinned the share until a time: (share, until_ms).
    pub pinned: Option<(f64, u64)>,
    /// A canary's open breaker: no traffic until then.
    pub breaker_open_until_ms: Option<u64>,
    /// (when, share) the swing warning compares against.
    pub swing_reference: Option<(u64, f64)>,
    /// Virtual nodes on its pool's consistent-hash ring.
    pub vnodes: u32,
}

/// Every backend the snapshot configures.
pub fn configured(snapshot: &Snapshot) -> HashSet<&BackendId> {
    snapshot
        .pools
        .iter()
        .flat_map(|p| p.backends.iter().map(|b| &b.id))
        .collect()
}

/// Keep what is known of the backends `snapshot` still configures; new ones
/// start in slow start at `now_ms`; the others are forgotten.
pub fn install(memories: &mut BackendMemories, snapshot: &Snapshot, now_ms: u64) -> InstallReport {
    let configured = configured(snapshot);
    let mut report = InstallReport::default();
    for id in &configured {
        match memories.get(*id) {
            Some(_) => report.kept += 1,
            None => {
                report.added.push(id.0.clone());
                let mem = BackendMemory {
                    admitted_at_ms: Some(now_ms),
                    ..BackendMemory::default()
                };
                memories.insert((*id).clone(), mem);
            }
        }
    }
    memories.retain(|id, _| {
        let keep = configured.contains(id);
        if !keep {
            report.removed.push(id.0.clone());
        }
        keep
    });
    report.added.sort();
    report.removed.sort();
    report
}

/// The weight formulas' inputs for each backend of `pool`: eligible unless
/// weighted 0, ejected, unhealthy, drained or behind an open canary breaker
/// (all of them in panic mode, but the drained); `multipliers` are the
/// active schedule's, by region.
pub fn inputs(
    pool: &Pool,
    observations: &[Observation],
    memories: &mut BackendMemories,
    multipliers: Option<&BTreeMap<String, f64>>,
) -> Vec<BackendInput> {
    let mut inputs: Vec<BackendInput> = pool
        .backends
        .iter()
        .zip(observations)
        .map(|(backend, observation)| {
            let mem = memory_of(memories, &backend.id);
            BackendInput {
                weight: f64::from(backend.weight),
                capacity: backend.capacity.map(f64::from),
                eligible: backend.weight > 0
                    && mem.ejected_until_ms.is_none()
                    && !mem.unhealthy
                    && !mem.drained
                    && mem.breaker_open_until_ms.is_none(),
                admitted_at_ms: mem.admitted_at_ms,
                previous_share: mem.share,
                scale: multipliers
                    .zip(backend.region.as_ref())
                    .and_then(|(m, region)| m.get(region))
                    .copied()
                    .unwrap_or(1.0),
                observation: *observation,
            }
        })
        .collect();
    if !inputs.iter().any(|i| i.eligible) {
        // Panic mode: better to try everything than to fail everything
        // (except what an operator drained on purpose).
        for (input, backend) in inputs.iter_mut().zip(&pool.backends) {
            let drained = memories.get(&backend.id).is_some_and(|m| m.drained);
            input.eligible = input.weight > 0.0 && !drained;
        }
    }
    inputs
}
