//! One request's route to a backend, decided without I/O from the published
//! [`RoutingState`]: the client's regional plan (geo placement), its keys
//! (sticky canary, consistent hash), the write region for a write or a
//! pinned read, the route's event budget (admission, or a spill to a region
//! of the plan that still has budget), and the picker's choice. The proxy
//! builds the peer from the answer, explains and records it.

use super::budget::{Admission, RouteBudget};
use super::geo::plan_for;
use super::picker::{pick, Decision, RequestFacts, Unavailable};
use super::read_write::RequestKind;
use super::state::RoutingState;
use super::sticky::key_hash;
use crate::config::{OverBudget, Pool, PoolId, RegionPlan, Snapshot};
use crate::stats::clock;
use http::HeaderMap;
use std::net::IpAddr;

/// What routing reads of one request.
#[derive(Clone, Copy)]
pub struct RouteInput<'a> {
    /// The matched route (index into the snapshot's routes).
    pub route: Option<usize>,
    pub pool: PoolId,
    /// The address the connection came from: a geo header rule believes
    /// only trusted ones.
    pub peer: Option<IpAddr>,
    /// The client's address (`client_address`), for geo CIDR rules.
    pub client: Option<IpAddr>,
    pub headers: &'a HeaderMap,
    pub path: &'a str,
    /// Backends this request already tried (a retry skips them and its budget).
    pub tried: &'a [usize],
    /// What the request is to a pool with a read/write split.
    pub rw: Option<RequestKind>,
}

/// The answer of [`route_request`].
pub struct Routed<'s> {
    /// The client's region and plan, when geo rules place it.
    pub placed: Option<(&'s str, &'s RegionPlan)>,
    /// The request's kind after routing: a pinned read the write region
    /// could not serve falls back, a write it could not take is refused.
    pub rw: Option<RequestKind>,
    /// Where the request goes, or why it goes nowhere.
    pub outcome: Result<Chosen<'s>, Refused<'s>>,
}

/// Why a request goes nowhere.
pub enum Refused<'s> {
    /// A write the write region cannot take: it has no available backend,
    /// or (`fence_allows` false) the client's fence keeps the write out.
    Write {
        write_region: &'s str,
        fence_allows: bool,
    },
    /// The route's budget sheds it; counted in the budget's region `over`.
    OverBudget { route: usize, over: usize },
    /// No backend can take it.
    Unavailable(Unavailable),
}

/// The chosen backend and how it was reached.
pub struct Chosen<'s> {
    /// Index into the pool's backends.
    pub backend: usize,
    /// Passed on by a spilling region of the plan.
    pub spilled: bool,
    /// Over budget in an earlier region: the route and the budget region.
    pub over_budget: Option<(usize, usize)>,
    /// Over budget in that region: its name.
    pub over_budget_in: Option<&'s str>,
}

/// Route one request: see the module documentation. A first try (nothing
/// tried yet) is charged to the route's budget and compared with the pool's
/// shadow policy.
pub fn route_request<'s>(routing: &'s RoutingState, input: &RouteInput<'_>) -> Routed<'s> {
    let snapshot = &routing.snapshot;
    let pool = snapshot.pool(input.pool);
    let placed = placement(routing, input);
    let key = |key| key_hash(key, input.headers, input.path);
    let facts = RequestFacts {
        pool: input.pool,
        ticket: routing.next_ticket(input.pool),
        tried: input.tried,
        weights: routing.weights[input.pool.0].as_ref(),
        stats: &routing.stats.pools[input.pool.0],
        plan: placed.map(|(_, plan)| plan),
        sticky: pool.policy.canary_sticky.as_ref().and_then(key),
        hash_key: pool
            .policy
            .consistent_hash
            .as_ref()
            .and_then(|hash| key(&hash.key)),
    };
    let mut rw = input.rw;
    let routed = |rw, outcome| Routed {
        placed,
        rw,
        outcome,
    };
    let mut decision = None;
    let mut facts_used = facts;
    if let (Some(kind), Some(split)) = (rw, &pool.write) {
        if kind.writer_only() {
            let fence_allows =
                placed.is_none_or(|(_, plan)| !plan.fenced || plan.order.contains(&split.region));
            if fence_allows {
                let to_writers = RequestFacts {
                    plan: Some(&split.plan),
                    ..facts
                };
                let found = pick(snapshot, &to_writers, clock::now_ms(), &mut rand::rng());
                if found.backend().is_some() {
                    decision = Some(found);
                    facts_used = to_writers;
                }
            }
            if decision.is_none() {
                if kind == RequestKind::Write {
                    let refused = Refused::Write {
                        write_region: &split.region,
                        fence_allows,
                    };
                    return routed(Some(RequestKind::WriteRefused), Err(refused));
                }
                rw = Some(RequestKind::PinnedFallback);
            }
        }
    }
    let mut decision =
        decision.unwrap_or_else(|| pick(snapshot, &facts, clock::now_ms(), &mut rand::rng()));
    let mut over_budget = None;
    let budget = input
        .route
        .filter(|_| input.tried.is_empty())
        .and_then(|r| Some((r, routing.budgets.route(r)?)));
    if let Some((route, budget)) = budget {
        match within_budget(budget, snapshot, &facts_used, decision) {
            Ok((within, None)) => decision = within,
            Ok((within, Some(over))) => {
                over_budget = Some((route, over));
                decision = within;
            }
            Err(over) => return routed(rw, Err(Refused::OverBudget { route, over })),
        }
    }
    let backend = match decision {
        Decision::Backend(index) | Decision::Spilled(index) => index,
        Decision::Unavailable(why) => return routed(rw, Err(Refused::Unavailable(why))),
    };
    if let (Some(shadow), Some(live), true) = (
        routing.shadows[input.pool.0].as_deref(),
        facts.weights,
        input.tried.is_empty(),
    ) {
        // A policy trial beside the live one: counted, never routed. A
        // write (or pinned read) is compared within the write region.
        let scoped = facts_used.plan.is_some();
        shadow.compare(live, backend, scoped, &mut rand::rng());
    }
    let over_budget_in = over_budget.and_then(|(route, over)| {
        let budget = routing.budgets.route(route)?;
        Some(budget.regions[over].region.as_deref().unwrap_or("-"))
    });
    routed(
        rw,
        Ok(Chosen {
            backend,
            spilled: matches!(decision, Decision::Spilled(_)),
            over_budget,
            over_budget_in,
        }),
    )
}

/// The client's region and plan, when geo rules place it.
pub fn placement<'s>(
    routing: &'s RoutingState,
    input: &RouteInput<'_>,
) -> Option<(&'s str, &'s RegionPlan)> {
    let geo = routing.snapshot.geo.as_ref()?;
    plan_for(geo, input.peer, input.client, input.headers)
}

/// Charge a request to its route's budget in its backend's region. Over
/// budget there, `spill` picks again among the regions of the client's plan
/// that still have budget (and only those, so a residency fence is never
/// crossed), until one admits it; `Ok` carries the decision and, when
/// spilled, the region it left. `Err` is the region over budget: shed.
fn within_budget(
    budget: &RouteBudget,
    snapshot: &Snapshot,
    facts: &RequestFacts<'_>,
    decision: Decision,
) -> std::result::Result<(Decision, Option<usize>), usize> {
    let Some(mut backend) = decision.backend() else {
        return Ok((decision, None));
    };
    let mut first_over = None;
    let mut excluded: u64 = 0;
    loop {
        let over = match budget.admit(backend, clock::now_us()) {
            Admission::Admitted if first_over.is_none() => return Ok((decision, None)),
            Admission::Admitted => return Ok((Decision::Backend(backend), first_over)),
            Admission::Over(region) => region,
        };
        let first = *first_over.get_or_insert(over);
        if budget.policy.over == OverBudget::Shed || over >= 64 {
            return Err(first);
        }
        excluded |= 1 << over;
        let plan =
            spill_plan(budget, snapshot.pool(facts.pool), facts.plan, excluded).ok_or(first)?;
        let spilled = RequestFacts {
            plan: Some(&plan),
            ..*facts
        };
        let now_ms = clock::now_ms();
        backend = pick(snapshot, &spilled, now_ms, &mut rand::rng())
            .backend()
            .ok_or(first)?;
    }
}

/// The regions a request over budget may still go to, in order: those of
/// the client's plan (its region and fallbacks, within its fence), or
/// without a plan the pool's regions; minus those `excluded` (over budget).
fn spill_plan(
    budget: &RouteBudget,
    pool: &Pool,
    plan: Option<&RegionPlan>,
    excluded: u64,
) -> Option<RegionPlan> {
    let open = |name: &String| {
        budget
            .regions
            .iter()
            .position(|r| r.region.as_ref() == Some(name))
            .is_none_or(|i| i >= 64 || excluded & (1 << i) == 0)
    };
    let order: Vec<String> = match plan {
        Some(plan) => plan.order.iter().filter(|r| open(r)).cloned().collect(),
        None => pool
            .regions
            .iter()
            .flatten()
            .filter(|r| open(r))
            .cloned()
            .collect(),
    };
    (!order.is_empty()).then_some(RegionPlan {
        order,
        fenced: true,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::routing::budget::Budgets;
    use crate::stats::live::LiveState;
    use crate::telemetry::metrics::Metrics;
    use crate::telemetry::request_series::RequestSeries;
    use std::path::Path;
    use std::sync::Arc;

    /// us-east (the write region): b0, b1; us-west: b2; eu-west (fenced in,
    /// and kept out of the write region): b3. Clients are placed by header.
    pub(in crate::routing) fn routing() -> RoutingState {
        let yaml = r#"
listeners: [{address: "127.0.0.1:1"}]
regions:
  us-east: {fallback: [us-west]}
  us-west: {fallback: [us-east]}
  eu-west: {fallback: [us-east]}
geo:
  client_region: [{header: X-Client-Region, trusted_peers: ["127.0.0.1"]}, {default: us-east}]
  residency: [{clients: [eu-west], allowed: [eu-west]}]
pools:
  p:
    write: {region: us-east}
    backends:
      - {addr: "10.0.0.1:80", region: us-east}
      - {addr: "10.0.0.2:80", region: us-east}
      - {addr: "10.0.0.3:80", region: us-west}
      - {addr: "10.0.0.4:80", region: eu-west}
routes: [{pool: p}]
"#;
        let snapshot = Arc::new(crate::config::load_str(yaml, Path::new(".")).unwrap());
        RoutingState::new(
            Arc::new(LiveState::new().resolve(&snapshot)),
            Arc::new(RequestSeries::new(&Metrics::new(), &snapshot)),
            Arc::new(Budgets::new(&snapshot)),
            snapshot,
        )
    }

    /// Headers placing the client in `region`.
    pub(in crate::routing) fn headers_from(region: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-client-region", region.parse().unwrap());
        headers
    }

    /// A request to the pool from a trusted peer with `headers`.
    pub(in crate::routing) fn input<'a>(
        headers: &'a HeaderMap,
        rw: Option<RequestKind>,
        tried: &'a [usize],
    ) -> RouteInput<'a> {
        RouteInput {
            route: Some(0),
            pool: PoolId(0),
            peer: Some("127.0.0.1".parse().unwrap()),
            client: Some("127.0.0.1".parse().unwrap()),
            headers,
            path: "/",
            tried,
            rw,
        }
    }

    fn backend(routed: &Routed<'_>) -> Option<usize> {
        routed.outcome.as_ref().ok().map(|chosen| chosen.backend)
    }

    #[test]
    fn reads_stay_in_the_clients_region_and_a_fence_holds() {
        let routing = routing();
        let west = headers_from("us-west");
        let routed = route_request(&routing, &input(&west, Some(RequestKind::Read), &[]));
        assert_eq!(routed.placed.map(|(region, _)| region), Some("us-west"));
        assert_eq!(backend(&routed), Some(2));
        let eu = headers_from("eu-west");
        let routed = route_request(&routing, &input(&eu, Some(RequestKind::Read), &[]));
        assert_eq!(backend(&routed), Some(3));
        let routed = route_request(&routing, &input(&eu, Some(RequestKind::Read), &[3]));
        assert!(matches!(
            routed.outcome,
            Err(Refused::Unavailable(Unavailable::Residency))
        ));
    }

    #[test]
    fn writes_go_to_the_write_region_or_are_refused() {
        let routing = routing();
        let west = headers_from("us-west");
        let routed = route_request(&routing, &input(&west, Some(RequestKind::Write), &[]));
        assert!(matches!(backend(&routed), Some(0 | 1)));
        assert_eq!(routed.rw, Some(RequestKind::Write));
        let routed = route_request(&routing, &input(&west, Some(RequestKind::Write), &[0, 1]));
        assert_eq!(routed.rw, Some(RequestKind::WriteRefused));
        assert!(matches!(
            routed.outcome,
            Err(Refused::Write {
                write_region: "us-east",
                fence_allows: true
            })
        ));
        let eu = headers_from("eu-west");
        let routed = route_request(&routing, &input(&eu, Some(RequestKind::Write), &[]));
        assert!(matches!(
            routed.outcome,
            Err(Refused::Write {
                fence_allows: false,
                ..
            })
        ));
        // A pinned read the write region cannot serve falls back.
        let routed = route_request(
            &routing,
            &input(&west, Some(RequestKind::PinnedRead), &[0, 1]),
        );
        assert_eq!(routed.rw, Some(RequestKind::PinnedFallback));
        assert_eq!(backend(&routed), Some(2));
    }
}
