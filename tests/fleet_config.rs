//! Fleet mode's shared configuration: three `ballast run --config-store`
//! processes on one host follow one configuration in a real etcd. A push
//! reaches all of them, a bad revision is refused by each and reported, an
//! invalid file is never written, and an etcd outage costs nothing.

use crate::common::etcd::Etcd;
use crate::common::fleet::{
    ballast, load_on, members, push, pushed, served_by, status, until, Instance, PROPAGATION_LIMIT,
};
use crate::common::{free_port, metric_value, metrics_text, origin_named, LoadOutcome};
use ballast_load_tests::origin::OriginHandle;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long etcd stays down in the outage test (the claim: 30 s under
/// load, no failed request).
const OUTAGE: Duration = Duration::from_secs(30);

/// A configuration sending everything to `backend`; its listener and admin
/// addresses are placeholders that each instance replaces.
fn config_to(backend: &OriginHandle) -> String {
    format!(
        "listeners: [{{address: \"127.0.0.1:1\"}}]\nadmin: {{address: \"127.0.0.1:2\"}}\nserver: {{drain_timeout: 1s}}\npools: {{p: {{backends: [{{addr: \"{}\"}}]}}}}\nroutes: [{{pool: p}}]\n",
        backend.addr
    )
}

/// Enough load reached `instance`, and every request of it was served.
fn all_served(outcome: LoadOutcome, instance: &Instance) {
    assert!(outcome.total() > 50, "{}: too little load", instance.name);
    assert_eq!(
        outcome.count(200),
        outcome.total(),
        "{}: failed requests: {outcome:?}; log:\n{}",
        instance.name,
        instance.logs()
    );
}

/// Wait until every instance is served by `origin`; how long it took.
async fn until_all_served_by(instances: &[Instance], origin: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    for instance in instances {
        loop {
            if served_by(instance.listen).await.as_deref() == Ok(origin) {
                break;
            }
            assert!(
                started.elapsed() < limit,
                "{} not served by {origin} after {limit:?}; its log:\n{}",
                instance.name,
                instance.logs()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_reaches_every_instance_and_a_bad_revision_none() {
    let etcd = Etcd::start().await;
    let store = etcd.url("/fleet-a");
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (origin_named("a").await, origin_named("b").await);
    pushed(&store, dir.path(), &config_to(&a));
    let mut instances = Vec::new();
    for name in ["one", "two", "three"] {
        instances.push(Instance::start(&store, name, dir.path()).await);
    }
    until_all_served_by(&instances, "a", PROPAGATION_LIMIT).await;

    // One push, three instances serving it.
    pushed(&store, dir.path(), &config_to(&b));
    let took = until_all_served_by(&instances, "b", PROPAGATION_LIMIT).await;
    eprintln!("a push served by all three instances after {took:?}");
    let stored = status(&store)["revision"]
        .as_i64()
        .expect("a stored revision");
    until(
        "every member reports the stored revision",
        PROPAGATION_LIMIT,
        async || {
            let now = status(&store);
            let list = members(&now);
            list.len() == 3 && list.iter().all(|m| m["config_revision"] == stored)
        },
    )
    .await;

    // Ten pushes under load through all three: not one failed request.
    let listens: Vec<SocketAddr> = instances.iter().map(|i| i.listen).collect();
    let load: Vec<_> = listens
        .iter()
        .map(|&listen| load_on(listen, Duration::from_secs(4)))
        .collect();
    for n in 0..10 {
        let target = if n % 2 == 0 { &a } else { &b };
        pushed(&store, dir.path(), &config_to(target));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for (task, instance) in load.into_iter().zip(&instances) {
        all_served(task.await.unwrap(), instance);
    }
    until_all_served_by(&instances, "b", PROPAGATION_LIMIT).await;

    // A revision no instance can run (written past `config push`, which
    // would refuse it): each refuses it, keeps serving, and says why.
    let bad = config_to(&a).replace("pool: p", "pool: nowhere");
    let url: ballast::fleet::store::StoreUrl = store.parse().unwrap();
    let mut writer = ballast::fleet::store::Store::connect(&url).await.unwrap();
    let bad_revision = writer.push_config(&bad).await.unwrap();
    until(
        "every member refuses the bad revision",
        PROPAGATION_LIMIT,
        async || {
            let list = members(&status(&store));
            list.len() == 3 && list.iter().all(|m| m["rejected_revision"] == bad_revision)
        },
    )
    .await;
    for member in members(&status(&store)) {
        let errors = member["errors"].to_string();
        assert!(errors.contains("nowhere"), "{member}");
    }
    for instance in &instances {
        assert_eq!(served_by(instance.listen).await.as_deref(), Ok("b"));
        let state = crate::common::admin_json(instance.admin, "/api/v1/state").await;
        assert_eq!(
            state["reload"]["rejected_revision"], bad_revision,
            "{state}"
        );
        assert_eq!(state["reload"]["source"], store.as_str(), "{state}");
    }
    let text = ballast(&["config", "status", "--store", &store]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert_eq!(text.matches("REFUSED revision").count(), 3, "{text}");

    // A good push after it clears the refusal everywhere.
    pushed(&store, dir.path(), &config_to(&a));
    until_all_served_by(&instances, "a", PROPAGATION_LIMIT).await;
    until("the refusal is cleared", PROPAGATION_LIMIT, async || {
        members(&status(&store))
            .iter()
            .all(|m| m["rejected_revision"].is_null())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_push_writes_nothing_when_the_file_is_invalid() {
    let etcd = Etcd::start().await;
    let store = etcd.url("/fleet-push");
    let dir = tempfile::tempdir().unwrap();
    let a = origin_named("a").await;
    pushed(&store, dir.path(), &config_to(&a));
    let before = status(&store)["revision"].clone();
    let out = push(
        &store,
        dir.path(),
        &config_to(&a).replace("pool: p", "pool: nowhere"),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("nothing was written") && stderr.contains("nowhere"),
        "{stderr}"
    );
    assert_eq!(status(&store)["revision"], before);
    // An unreachable store is a clear error too.
    let dead = format!("etcd://127.0.0.1:{}/x", free_port());
    let out = push(&dead, dir.path(), &config_to(&a));
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_outage_costs_no_request_and_is_caught_up_after() {
    let mut etcd = Etcd::start().await;
    let store = etcd.url("/fleet-outage");
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (origin_named("a").await, origin_named("b").await);
    pushed(&store, dir.path(), &config_to(&a));
    let instances = vec![
        Instance::start(&store, "one", dir.path()).await,
        Instance::start(&store, "two", dir.path()).await,
    ];
    until_all_served_by(&instances, "a", PROPAGATION_LIMIT).await;
    let store_up = async |instance: &Instance| {
        metric_value(
            &metrics_text(instance.admin).await,
            "ballast_config_store_up",
            &[],
        )
    };
    for instance in &instances {
        until("connected to the store", PROPAGATION_LIMIT, async || {
            store_up(instance).await == Some(1.0)
        })
        .await;
    }

    // etcd down for 30 s under load.
    etcd.kill();
    let outage = Instant::now();
    let load: Vec<_> = instances
        .iter()
        .map(|i| load_on(i.listen, OUTAGE))
        .collect();
    for instance in &instances {
        until("the outage is seen", Duration::from_secs(15), async || {
            store_up(instance).await == Some(0.0)
        })
        .await;
    }
    for (task, instance) in load.into_iter().zip(&instances) {
        all_served(task.await.unwrap(), instance);
        assert_eq!(served_by(instance.listen).await.as_deref(), Ok("a"));
    }
    tokio::time::sleep(OUTAGE.saturating_sub(outage.elapsed())).await;

    // etcd back: the instances reconnect (backoff at most 5 s) and follow
    // the next push.
    etcd.restart().await;
    for instance in &instances {
        until("reconnected", Duration::from_secs(20), async || {
            store_up(instance).await == Some(1.0)
        })
        .await;
    }
    pushed(&store, dir.path(), &config_to(&b));
    until_all_served_by(&instances, "b", PROPAGATION_LIMIT).await;
}
