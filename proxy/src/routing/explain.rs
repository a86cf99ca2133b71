//! The rule that chose a request's backend (for the access log and the
//! explanation), and the `X-Ballast-Decision` text of an explained request:
//! the client's region, the rule, the backend's share and the attempt.

use super::read_write::RequestKind;
use super::route::Chosen;
use crate::config::{Pool, RegionPlan};

/// The rule that chose the backend: `pool` (no geo), `local`,
/// `spill:A->B` (an earlier region was spilling), `fallback:A->B` (earlier
/// regions could not serve), `outside-plan:A->B`, `unregioned:A`,
/// `budget:A->B` (the route was over its event budget in region A), or with
/// a read/write split `write:A->W` / `pinned:A->W` (to the write region W;
/// `write:W` and `pinned:W` without geo).
pub fn decision_rule(
    pool: &Pool,
    routed: &Chosen<'_>,
    placed: Option<(&str, &RegionPlan)>,
    rw: Option<RequestKind>,
) -> String {
    let (spilled, over_budget_in) = (routed.spilled, routed.over_budget_in);
    let chosen = &pool.backends[routed.backend];
    let to_writer = match rw {
        Some(RequestKind::Write) => Some("write"),
        Some(RequestKind::PinnedRead) => Some("pinned"),
        _ => None,
    };
    match (to_writer, placed, chosen.region.as_deref()) {
        _ if over_budget_in.is_some() => format!(
            "budget:{}->{}",
            over_budget_in.unwrap_or("-"),
            chosen.region.as_deref().unwrap_or("-")
        ),
        (Some(kind), Some((client, _)), Some(region)) => format!("{kind}:{client}->{region}"),
        (Some(kind), _, region) => format!("{kind}:{}", region.unwrap_or("-")),
        (None, None, _) => "pool".to_string(),
        (None, Some((client, _)), Some(region)) if spilled => format!("spill:{client}->{region}"),
        (None, Some((client, _)), Some(region)) if region == client => "local".to_string(),
        (None, Some((client, plan)), Some(region)) if plan.order.iter().any(|r| r == region) => {
            format!("fallback:{client}->{region}")
        }
        (None, Some((client, _)), Some(region)) => format!("outside-plan:{client}->{region}"),
        (None, Some((client, _)), None) => format!("unregioned:{client}"),
    }
}

/// `client_region=...; rule=...; backend=...; share=...; attempt=N`, the
/// rule as [`decision_rule`] names it; a read/write split adds `; rw=KIND`
/// (see [`RequestKind::as_str`]).
pub fn explain_pick(
    pool: &Pool,
    routed: &Chosen<'_>,
    client_region: Option<&str>,
    rule: &str,
    share: Option<f64>,
    attempt: usize,
    rw: Option<RequestKind>,
) -> String {
    let chosen = &pool.backends[routed.backend];
    let client = client_region.unwrap_or("-");
    let mut text = format!(
        "client_region={client}; rule={rule}; backend={}; share={}; attempt={attempt}",
        chosen.id,
        share.map_or("-".to_string(), |s| format!("{s:.3}")),
    );
    if let Some(kind) = rw {
        text.push_str("; rw=");
        text.push_str(kind.as_str());
    }
    text
}
