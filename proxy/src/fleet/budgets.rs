//! Cluster-wide event budgets: every instance leases its budget tokens
//! from one Redis (`fleet.budget_store`), so a route's limit holds for the
//! fleet as a whole, without a Redis round trip per request.
//!
//! Each lease interval (100 ms by default) this service asks, for every
//! budgeted route and region, for as many tokens as requests asked for
//! one in the last interval (plus a quarter and one), and at least this
//! instance's part of one interval of the limit (the limit × the interval
//! ÷ the fleet size), less the tokens it still holds. Redis grants them from one GCRA limiter per route and region
//! (`PREFIX:budget:ROUTE:REGION`, a Lua script timed by Redis's own clock):
//! never more than the limit allows, with a tolerance of two lease
//! intervals, so the fleet admits at most `limit × t + 2 × interval ×
//! limit` in any `t`, whatever the number of instances. A request takes a
//! token with one atomic operation ([`crate::routing::budget`]). A token
//! granted and not spent stays with the instance that holds it: it was
//! counted, so it never lets the fleet overshoot; held tokens are bounded
//! by one interval's demand.
//!
//! A round that needs no token still sends Redis a PING, so that a quiet
//! instance notices an outage too.
//!
//! When Redis cannot be reached (or answers late), every instance falls
//! back to its local limiter at the limit divided by the live fleet size —
//! the members registered in the configuration store when there is one,
//! else `fleet.instances` — and says so in `ballast_budget_store_up`, in a
//! warning and in a decision per budget. It tries Redis again with backoff
//! (0.2 s doubling to 2 s) and returns to the shared limit when it answers.

use crate::config::FleetBudgets;
use crate::control::engine::Engine;
use crate::routing::budget::RouteBudget;
use crate::routing::state::RoutingState;
use crate::stats::clock;
use crate::telemetry::decisions::{DecisionKind, RoutingDecision};
use crate::telemetry::metrics::Metrics;
use async_trait::async_trait;
use pingora::services::background::BackgroundService;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Grants up to `ARGV[3]` tokens from the GCRA limiter at `KEYS[1]`: one
/// token per `ARGV[1]` µs, at most `ARGV[2]` µs ahead of Redis's clock.
/// Returns the number granted.
const GRANT_SCRIPT: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local room = math.floor((now + tolerance - tat) / interval)
local granted = math.max(0, math.min(wanted, room))
if granted > 0 then
  tat = tat + granted * interval
  redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
end
return granted
";

/// The first and the longest wait before trying Redis again.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(2));

/// How often to look again when no budget is shared.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// The number of instances registered in the configuration store (0: not
/// known), kept by the store's follower.
#[derive(Debug, Default)]
pub struct LiveMembers(AtomicUsize);

impl LiveMembers {
    pub fn set(&self, members: usize) {
        self.0.store(members, Ordering::Relaxed);
    }

    fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// The background service leasing budget tokens.
pub struct BudgetLeases {
    pub engine: Arc<Engine>,
    pub metrics: Arc<Metrics>,
    pub live_members: Arc<LiveMembers>,
}

/// A connection to the budget store.
struct Link {
    url: String,
    connection: redis::aio::MultiplexedConnection,
}

#[async_trait]
impl BackgroundService for BudgetLeases {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        let script = redis::Script::new(GRANT_SCRIPT);
        let mut link: Option<Link> = None;
        let mut falling_back = false;
        let mut retry_wait = BACKOFF.0;
        loop {
            let state = self.engine.state().load_full();
            let wait = match state.snapshot.fleet.clone() {
                None => {
                    link = None;
                    IDLE_CHECK
                }
                Some(settings) => {
                    let deadline = settings.lease_interval.max(Duration::from_millis(200));
                    let leased = tokio::time::timeout(
                        deadline,
                        self.lease(&state, &settings, &mut link, &script),
                    )
                    .await
                    .unwrap_or_else(|_| Err(format!("no answer within {deadline:?}")));
                    match leased {
                        Ok(()) => {
                            self.metrics.budget_store_up.set(1);
                            if falling_back {
                                falling_back = false;
                                tracing::info!(store = %settings.budget_store, "budget store reachable again: budgets are shared by the fleet");
                                self.record(&state, |_| {
                                    "budget store reachable again: the fleet shares the limit"
                                        .into()
                                });
                            }
                            retry_wait = BACKOFF.0;
                            settings.lease_interval
                        }
                        Err(e) => {
                            link = None;
                            self.metrics.budget_store_up.set(0);
                            self.metrics.budget_store_errors.inc();
                            let share = self.fleet_size(&settings);
                            fall_back(&state, share);
                            if !falling_back {
                                falling_back = true;
                                tracing::warn!(store = %settings.budget_store, instances = share, "budget store unreachable, each instance admits its share of every budget: {e}");
                                self.record(&state, |limit| {
                                    format!("budget store unreachable ({e}): this instance admits {:.1} req/s, the limit {limit:.0} / {share} instances", limit / share as f64)
                                });
                            }
                            let wait = retry_wait;
                            retry_wait = (retry_wait * 2).min(BACKOFF.1);
                            wait
                        }
                    }
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

impl BudgetLeases {
    /// The instances sharing the budgets while Redis cannot be reached.
    fn fleet_size(&self, settings: &FleetBudgets) -> usize {
        match self.live_members.get() {
            0 => settings.instances as usize,
            members => members,
        }
    }

    /// Lease tokens for every shared budget of `state`.
    async fn lease(
        &self,
        state: &RoutingState,
        settings: &FleetBudgets,
        link: &mut Option<Link>,
        script: &redis::Script,
    ) -> Result<(), String> {
        let connection = match link {
            Some(l) if l.url == settings.budget_store => &mut l.connection,
            _ => {
                &mut link
                    .insert(connect(&settings.budget_store).await?)
                    .connection
            }
        };
        let tolerance_us = 2 * settings.lease_interval.as_micros() as u64;
        let interval_s = settings.lease_interval.as_secs_f64();
        let fleet_size = self.fleet_size(settings) as f64;
        let mut answered = false;
        let routes = state.snapshot.routes.routes();
        for (budget, route) in state.budgets.routes.iter().zip(routes) {
            let Some(budget) = budget else { continue };
            for region in &budget.regions {
                let Some(shared) = &region.shared else {
                    continue;
                };
                let asked = shared.asked.swap(0, Ordering::Relaxed) as f64;
                let held = shared.tokens.load(Ordering::Relaxed).max(0) as f64;
                // At least this instance's part of one interval of the
                // limit, so a burst after a quiet interval finds tokens.
                let fair_part = (region.limit * interval_s / fleet_size).ceil();
                let wanted = ((asked * 1.25).ceil() + 1.0).max(fair_part) - held;
                let wanted = wanted.max(0.0) as u64;
                let granted: i64 = if wanted == 0 || region.limit <= 0.0 {
                    0
                } else {
                    let key = format!(
                        "{}:budget:{}:{}",
                        settings.key_prefix,
                        route.name,
                        region.region.as_deref().unwrap_or("-")
                    );
                    let interval_us = (1e6 / region.limit).max(1.0) as u64;
                    let granted: i64 = script
                        .key(key)
                        .arg(interval_us)
                        .arg(tolerance_us)
                        .arg(wanted)
                        .invoke_async(connection)
                        .await
                        .map_err(|e| format!("leasing budget tokens: {e}"))?;
                    answered = true;
                    granted
                };
                shared.tokens.fetch_add(granted, Ordering::Relaxed);
                if shared.local_fallback.swap(false, Ordering::Relaxed) {
                    region.limiter.set_rate(region.limit);
                }
            }
        }
        // A round that needed no tokens still asks whether Redis answers,
        // so that `budget_store_up` and the fallback follow it while the
        // routes are quiet.
        if !answered {
            redis::cmd("PING")
                .query_async::<()>(connection)
                .await
                .map_err(|e| format!("checking the budget store: {e}"))?;
        }
        Ok(())
    }

    /// Record a decision for every shared budget of `state`; `reason` is
    /// given the budget's limit.
    fn record(&self, state: &RoutingState, reason: impl Fn(f64) -> String) {
        let routes = state.snapshot.routes.routes();
        for (budget, route) in state.budgets.routes.iter().zip(routes) {
            let Some(budget) = budget else { continue };
            let pool = route
                .pool
                .map_or("-", |pool| state.snapshot.pool(pool).name.as_str());
            for region in shared_regions(budget) {
                self.engine.decisions().record(RoutingDecision {
                    at: SystemTime::now(),
                    at_ms: clock::now_ms(),
                    pool: pool.to_string(),
                    backend: format!("{}@{}", route.name, region.region.as_deref().unwrap_or("-")),
                    kind: DecisionKind::Budget,
                    old_share: 0.0,
                    new_share: 0.0,
                    reason: reason(region.limit),
                });
            }
        }
    }
}

fn shared_regions(
    budget: &RouteBudget,
) -> impl Iterator<Item = &crate::routing::budget::RegionBudget> {
    budget.regions.iter().filter(|r| r.shared.is_some())
}

/// Every shared budget of `state` decided locally, at `1 / instances` of
/// its limit.
fn fall_back(state: &RoutingState, instances: usize) {
    for budget in state.budgets.routes.iter().flatten() {
        for region in shared_regions(budget) {
            region
                .limiter
                .set_rate(region.limit / instances.max(1) as f64);
            if let Some(shared) = &region.shared {
                shared.local_fallback.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// Connect to the Redis at `url`, with the credentials and TLS settings of
/// the environment (`rediss://`: see [`super::tls`]).
async fn connect(url: &str) -> Result<Link, String> {
    let mut info: redis::ConnectionInfo =
        redis::IntoConnectionInfo::into_connection_info(url).map_err(|e| format!("{url}: {e}"))?;
    if let Some((username, password)) = credentials()? {
        info.redis.username = Some(username);
        info.redis.password = Some(password);
    }
    let tls = super::tls::from_env(super::tls::REDIS, url.starts_with("rediss://"))?;
    let client = match tls {
        None => redis::Client::open(info),
        Some(tls) => redis::Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: tls.client.map(|client| redis::ClientTlsConfig {
                    client_cert: client.cert_pem,
                    client_key: client.key_pem,
                }),
                root_cert: tls.ca_pem,
            },
        ),
    }
    .map_err(|e| format!("{url}: {e}"))?;
    let connection = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    Ok(Link {
        url: url.to_string(),
        connection,
    })
}

/// The Redis user and password from the environment, if a password is set
/// (the user defaults to Redis's `default`).
fn credentials() -> Result<Option<(String, String)>, String> {
    let Some(password) = super::secret_from_env("BALLAST_REDIS_PASSWORD")? else {
        return Ok(None);
    };
    let username = std::env::var("BALLAST_REDIS_USERNAME").unwrap_or_else(|_| "default".into());
    Ok(Some((username, password)))
}
