//! The registry of live backend state, keyed by stable [`BackendId`] so that
//! what was learned about a backend survives a configuration reload for as
//! long as the backend stays in the configuration.

use super::backend::BackendStats;
use crate::config::{BackendId, Snapshot};
use dashmap::DashMap;
use std::collections::HashSet;
use std::sync::Arc;

/// Live state of every backend the proxy knows.
#[derive(Default)]
pub struct LiveState {
    backends: DashMap<BackendId, Arc<BackendStats>>,
}

/// Each pool's backend stats, in the snapshot's order, for O(1) access on the
/// hot path: `pools[pool][backend]`.
pub struct ResolvedStats {
    pub pools: Vec<Vec<Arc<BackendStats>>>,
}

impl LiveState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stats for every backend of `snapshot`, creating fresh ones for new
    /// backends and forgetting backends that are no longer configured.
    pub fn resolve(&self, snapshot: &Snapshot) -> ResolvedStats {
        let pools: Vec<Vec<Arc<BackendStats>>> = snapshot
            .pools
            .iter()
            .map(|pool| {
                pool.backends
                    .iter()
                    .map(|b| self.backends.entry(b.id.clone()).or_default().clone())
                    .collect()
            })
            .collect();
        let configured: HashSet<&BackendId> = snapshot
            .pools
            .iter()
            .flat_map(|p| p.backends.iter().map(|b| &b.id))
            .collect();
        self.backends.retain(|id, _| configured.contains(id));
        ResolvedStats { pools }
    }

    pub fn len(&self) -> usize {
        self.backends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn snapshot(addrs: &[&str]) -> Snapshot {
        let backends: Vec<String> = addrs.iter().map(|a| format!("{{addr: \"{a}\"}}")).collect();
        let yaml = format!(
            "listeners: [{{address: \"127.0.0.1:1\"}}]\npools: {{p: {{backends: [{}]}}}}\nroutes: [{{pool: p}}]\n",
            backends.join(", ")
        );
        crate::config::load_str(&yaml, Path::new(".")).unwrap()
    }

    #[test]
    fn state_survives_for_backends_that_stay() {
        let live = LiveState::new();
        let first = live.resolve(&snapshot(&["10.0.0.1:80", "10.0.0.2:80"]));
        first.pools[0][0].record_success(1, 100);
        let second = live.resolve(&snapshot(&["10.0.0.2:80", "10.0.0.1:80", "10.0.0.3:80"]));
        assert!(Arc::ptr_eq(&first.pools[0][0], &second.pools[0][1]));
        assert_eq!(second.pools[0][1].observe(2).outcomes.total, 1);
        assert_eq!(second.pools[0][2].observe(2).outcomes.total, 0);
        assert_eq!(live.len(), 3);
        live.resolve(&snapshot(&["10.0.0.3:80"]));
        assert_eq!(live.len(), 1, "removed backends are forgotten");
    }
}
