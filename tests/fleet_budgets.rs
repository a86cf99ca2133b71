//! Fleet mode's shared event budgets: three instances, each offered three
//! times a route's limit, admit the limit in total through a real Redis,
//! about the same through the local fallback once Redis is killed, and
//! the shared limit again once Redis is back.

use crate::common::etcd::Etcd;
use crate::common::fleet::{paced, pushed, until, Instance};
use crate::common::redis::Redis;
use crate::common::{admin_json, metric_value, metrics_text, origin_named};
use std::time::Duration;

/// The route's limit for the fleet, req/s.
const LIMIT: f64 = 100.0;
/// What each instance is offered, req/s.
const OFFERED: f64 = 300.0;

fn budgeted(backend: std::net::SocketAddr, redis: &str) -> String {
    format!(
        "listeners: [{{address: \"127.0.0.1:1\"}}]\nadmin: {{address: \"127.0.0.1:2\"}}\nserver: {{drain_timeout: 1s}}\npools: {{p: {{backends: [{{addr: \"{backend}\", capacity: {LIMIT}}}]}}}}\nroutes: [{{name: event, pool: p, budget: {{region_share: 1.0}}}}]\nfleet: {{budget_store: \"{redis}\", lease_interval: 100ms}}\n"
    )
}

/// Every instance offered `OFFERED` req/s for `seconds`: the fleet's
/// admitted rate from the first second to the last request sent (by when
/// requests were really sent: a loaded machine sends late), and whether
/// any answer was neither 200 nor 503.
async fn offer_to_all(instances: &[Instance], seconds: u64) -> (f64, Vec<u16>) {
    let runs: Vec<_> = instances
        .iter()
        .map(|i| tokio::spawn(paced(i.listen, OFFERED, Duration::from_secs(seconds))))
        .collect();
    let warm_up = Duration::from_secs(1);
    let mut admitted = 0usize;
    let mut last_sent = warm_up;
    let mut odd = Vec::new();
    for run in runs {
        for (sent, status) in run.await.unwrap() {
            last_sent = last_sent.max(sent);
            match status {
                200 if sent >= warm_up => admitted += 1,
                200 | 503 => {}
                other => odd.push(other),
            }
        }
    }
    let span = (last_sent - warm_up).max(Duration::from_secs(1));
    (admitted as f64 / span.as_secs_f64(), odd)
}

async fn budget_store_up(instance: &Instance) -> Option<f64> {
    metric_value(
        &metrics_text(instance.admin).await,
        "ballast_budget_store_up",
        &[],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_budget_holds_across_instances_and_falls_back_without_redis() {
    let etcd = Etcd::start().await;
    let mut redis = Redis::start().await;
    let store = etcd.url("/fleet-budgets");
    let dir = tempfile::tempdir().unwrap();
    let origin = origin_named("o").await;
    pushed(&store, dir.path(), &budgeted(origin.addr, &redis.url()));
    let mut instances = Vec::new();
    for name in ["one", "two", "three"] {
        instances.push(Instance::start(&store, name, dir.path()).await);
    }
    for instance in &instances {
        until("leasing from Redis", Duration::from_secs(10), async || {
            budget_store_up(instance).await == Some(1.0)
        })
        .await;
    }

    let (shared_rate, odd) = offer_to_all(&instances, 6).await;
    eprintln!("offered 3 x {OFFERED} req/s, limit {LIMIT}: admitted {shared_rate:.1} req/s");
    assert!(odd.is_empty(), "answers other than 200 and 503: {odd:?}");
    assert!(
        (LIMIT * 0.9..=LIMIT * 1.1).contains(&shared_rate),
        "admitted {shared_rate:.1} req/s for a fleet limit of {LIMIT}"
    );

    // Redis killed after a quiet second (the instances hold what they need
    // and lease nothing: they must notice the outage all the same); then
    // each instance admits a third (three are registered).
    tokio::time::sleep(Duration::from_secs(1)).await;
    redis.kill();
    for instance in &instances {
        until("falling back", Duration::from_secs(10), async || {
            budget_store_up(instance).await == Some(0.0)
        })
        .await;
    }
    let (fallback_rate, odd) = offer_to_all(&instances, 5).await;
    eprintln!("without Redis: admitted {fallback_rate:.1} req/s");
    assert!(odd.is_empty(), "answers other than 200 and 503: {odd:?}");
    assert!(
        (LIMIT * 0.85..=LIMIT * 1.15).contains(&fallback_rate),
        "admitted {fallback_rate:.1} req/s through the fallback"
    );
    for instance in &instances {
        let decisions = admin_json(instance.admin, "/api/v1/decisions?kind=budget").await;
        assert!(
            decisions.to_string().contains("budget store unreachable"),
            "{}: {decisions}",
            instance.name
        );
    }

    // Redis back (empty): the instances lease from it again.
    redis.restart().await;
    for instance in &instances {
        until("leasing again", Duration::from_secs(10), async || {
            budget_store_up(instance).await == Some(1.0)
        })
        .await;
    }
    let (back_rate, odd) = offer_to_all(&instances, 5).await;
    eprintln!("Redis back: admitted {back_rate:.1} req/s");
    assert!(odd.is_empty(), "answers other than 200 and 503: {odd:?}");
    assert!(
        (LIMIT * 0.9..=LIMIT * 1.1).contains(&back_rate),
        "admitted {back_rate:.1} req/s once Redis is back"
    );
    let decisions = admin_json(instances[0].admin, "/api/v1/decisions?kind=budget").await;
    assert!(
        decisions
            .to_string()
            .contains("budget store reachable again"),
        "{decisions}"
    );
}
