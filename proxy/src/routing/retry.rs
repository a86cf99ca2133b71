//! Whether a failed request may try another backend: one it has not tried
//! must remain among those it may go to.

use super::read_write::RequestKind;
use super::state::RoutingState;
use crate::config::PoolId;

/// Whether a backend of `pool` that is eligible and not in `tried` remains;
/// a write stays within the write region.
pub fn another_backend_remains(
    routing: &RoutingState,
    pool: PoolId,
    rw: Option<RequestKind>,
    tried: &[usize],
) -> bool {
    let pool_config = routing.snapshot.pool(pool);
    let writer_region = match (rw, &pool_config.write) {
        (Some(RequestKind::Write), Some(split)) => Some(split.region.as_str()),
        _ => None,
    };
    let eligible = |b: usize| {
        let in_scope = writer_region
            .is_none_or(|region| pool_config.backends[b].region.as_deref() == Some(region));
        in_scope
            && match &routing.weights[pool.0] {
                Some(weights) => weights.shares[b] > 0.0,
                None => true,
            }
    };
    (0..pool_config.backends.len()).any(|b| eligible(b) && !tried.contains(&b))
}
