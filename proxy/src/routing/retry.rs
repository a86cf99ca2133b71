//! Whether a failed request may try another backend: the picker is asked
//! whether one remains that the request has not tried, under the same
//! fences and scopes its retry would be picked with (the client's residency
//! fence; the write region for a write). A fenced client whose allowed
//! backends all failed thus keeps its own 502 or 504 rather than being
//! retried into a residency 503.

use super::picker::{has_candidate, RequestFacts};
use super::read_write::RequestKind;
use super::route::{placement, RouteInput};
use super::state::RoutingState;

/// Whether a retry of `input` (with the backends it tried) would find a
/// backend: a write within the write region, a read (pinned or not) within
/// the client's plan, which holds the write region when its fence allows it.
pub fn another_backend_remains(routing: &RoutingState, input: &RouteInput<'_>) -> bool {
    let pool = routing.snapshot.pool(input.pool);
    let plan = match (input.rw, &pool.write) {
        (Some(RequestKind::WriteRefused), _) => return false,
        (Some(RequestKind::Write), Some(split)) => Some(&split.plan),
        _ => placement(routing, input).map(|(_, plan)| plan),
    };
    let facts = RequestFacts {
        pool: input.pool,
        ticket: 0,
        tried: input.tried,
        weights: routing.weights[input.pool.0].as_ref(),
        stats: &routing.stats.pools[input.pool.0],
        plan,
        sticky: None,
        hash_key: None,
    };
    has_candidate(&routing.snapshot, &facts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::route::tests::{headers_from, input, routing};

    fn remains(region: &str, rw: Option<RequestKind>, tried: &[usize]) -> bool {
        let headers = headers_from(region);
        another_backend_remains(&routing(), &input(&headers, rw, tried))
    }

    #[test]
    fn a_fenced_client_retries_only_within_its_fence() {
        assert!(!remains("eu-west", Some(RequestKind::Read), &[3]));
        assert!(remains("us-west", Some(RequestKind::Read), &[3]));
        assert!(remains("us-west", Some(RequestKind::Read), &[0, 1, 3]));
        assert!(!remains("us-west", Some(RequestKind::Read), &[0, 1, 2, 3]));
    }

    #[test]
    fn a_write_retries_only_within_the_write_region() {
        assert!(remains("us-west", Some(RequestKind::Write), &[0]));
        assert!(!remains("us-west", Some(RequestKind::Write), &[0, 1]));
        assert!(!remains("us-east", Some(RequestKind::WriteRefused), &[]));
        // A pinned read falls back to normal routing once the writers failed.
        assert!(remains("us-west", Some(RequestKind::PinnedRead), &[0, 1]));
        assert!(!remains("eu-west", Some(RequestKind::PinnedFallback), &[3]));
    }
}
