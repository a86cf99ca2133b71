//! Active health checks, with Pingora's own checkers
//! (`pingora_load_balancing::health_check::{HttpHealthCheck, TcpHealthCheck}`):
//! every `health.interval` each backend of a pool that configures checks is
//! probed (an HTTP `GET path` that must answer 200, or a TCP connect), all in
//! parallel, each bounded by `health.timeout`. A backend turns unhealthy after
//! `unhealthy_after` failures in a row and healthy again after
//! `healthy_after` passes; the verdict lives in its live stats, where the
//! weight engine reads it (unhealthy = share 0; recovered = slow start).
//!
//! An HTTP check of a pool with `tls` connects as requests do (the same
//! peer: server name, CAs, verification, client certificate, ALPN), so a
//! certificate the proxy would refuse fails the check too. An HTTP check of
//! an h2c pool speaks h2c. A TCP check only connects, with or without TLS.
//!
//! Passive outlier ejection, driven by real traffic, lives in the engine.

use crate::config::{HealthCheckKind, HealthPolicy, Pool};
use crate::routing::state::RoutingState;
use crate::stats::backend::BackendStats;
use crate::tls::upstream::backend_peer;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::lb::health_check::{HealthCheck, HttpHealthCheck, TcpHealthCheck};
use pingora::lb::Backend;
use pingora::protocols::ALPN;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// How often the checker wakes up to see which pools are due.
const TICK: Duration = Duration::from_millis(100);

type Checker = Arc<dyn HealthCheck + Send + Sync>;

/// A Pingora checker for one pool's policy. An HTTP check goes over the
/// pool's TLS when it has one; `backend` is the address whose IP the
/// certificate must name when the pool sets no `sni` (the checker then
/// serves that backend alone).
fn checker(policy: &HealthPolicy, pool: &Pool, backend: Option<SocketAddr>) -> Option<Checker> {
    let pool_name = pool.name.as_str();
    match &policy.kind {
        HealthCheckKind::Http { path, host } => {
            let host = host.as_deref().unwrap_or(pool_name);
            let mut check = HttpHealthCheck::new(host, false);
            let uri = match path.parse() {
                Ok(uri) => uri,
                Err(e) => {
                    tracing::error!(
                        pool = pool_name,
                        "health check path {path:?} is not a valid URI: {e}"
                    );
                    return None;
                }
            };
            check.req.set_uri(uri);
            if let (Some(tls), Some(addr)) = (&pool.tls, backend) {
                check.peer_template = backend_peer(addr, Some(tls), false);
            }
            if pool.h2c {
                check.peer_template.options.alpn = ALPN::H2;
            }
            check.peer_template.options.connection_timeout = Some(policy.timeout);
            check.peer_template.options.read_timeout = Some(policy.timeout);
            check.peer_template.options.write_timeout = Some(policy.timeout);
            Some(Arc::new(check))
        }
        HealthCheckKind::Tcp => {
            let mut check = TcpHealthCheck::new();
            check.peer_template.options.connection_timeout = Some(policy.timeout);
            let check: Box<dyn HealthCheck + Send + Sync> = check;
            Some(Arc::from(check))
        }
    }
}

/// Probe one backend; a timeout or any error is a failure.
async fn probe(check: Checker, addr: SocketAddr, timeout: Duration) -> bool {
    let Ok(backend) = Backend::new(&addr.to_string()) else {
        return false;
    };
    matches!(
        tokio::time::timeout(timeout + Duration::from_millis(100), check.check(&backend)).await,
        Ok(Ok(()))
    )
}

/// Probe every backend of `pool` once and record the results.
pub async fn check_pool(pool: &Pool, stats: &[Arc<BackendStats>]) {
    let Some(policy) = &pool.policy.health else {
        return;
    };
    // One checker serves the pool unless each backend's certificate is
    // checked against its own address.
    let per_backend = matches!(policy.kind, HealthCheckKind::Http { .. })
        && pool.tls.as_ref().is_some_and(|tls| tls.sni.is_none());
    let shared = match per_backend {
        true => None,
        false => match checker(policy, pool, pool.backends.first().map(|b| b.addr)) {
            Some(check) => Some(check),
            None => return,
        },
    };
    let mut probes = JoinSet::new();
    for (index, backend) in pool.backends.iter().enumerate() {
        let check = match &shared {
            Some(check) => check.clone(),
            None => match checker(policy, pool, Some(backend.addr)) {
                Some(check) => check,
                None => return,
            },
        };
        let (addr, timeout) = (backend.addr, policy.timeout);
        probes.spawn(async move { (index, probe(check, addr, timeout).await) });
    }
    while let Some(result) = probes.join_next().await {
        let Ok((index, passed)) = result else {
            continue;
        };
        if let Some(healthy) =
            stats[index].record_health_check(passed, policy.healthy_after, policy.unhealthy_after)
        {
            let backend = &pool.backends[index].id;
            if healthy {
                tracing::info!(pool = %pool.name, %backend, "health check passing again");
            } else {
                tracing::warn!(pool = %pool.name, %backend, "health check failing; taking the backend out");
            }
        }
    }
}

/// Runs health checks for every pool that configures them, until shutdown.
pub struct HealthLoop {
    pub routing: Arc<ArcSwap<RoutingState>>,
}

#[async_trait]
impl BackgroundService for HealthLoop {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut next_due: HashMap<String, tokio::time::Instant> = HashMap::new();
        loop {
            let routing = self.routing.load_full();
            let now = tokio::time::Instant::now();
            let mut rounds = JoinSet::new();
            for pool in &routing.snapshot.pools {
                let Some(policy) = &pool.policy.health else {
                    continue;
                };
                if next_due.get(&pool.name).is_some_and(|due| now < *due) {
                    continue;
                }
                next_due.insert(pool.name.clone(), now + policy.interval);
                let routing = routing.clone();
                let id = pool.id;
                rounds.spawn(async move {
                    check_pool(routing.snapshot.pool(id), &routing.stats.pools[id.0]).await;
                });
            }
            tokio::select! {
                _ = async { while rounds.join_next().await.is_some() {} ; tokio::time::sleep(TICK).await } => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
