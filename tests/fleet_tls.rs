//! Fleet mode over TLS: an instance follows an etcd and leases budget
//! tokens from a Redis that both require client certificates (`etcds://`,
//! `rediss://`, certificates named by `BALLAST_ETCD_*` and `BALLAST_REDIS_*`);
//! without its certificate, or with TLS files beside a plain URL, it is
//! refused with an error that says why, and nothing is written.

use crate::common::etcd::Etcd;
use crate::common::fleet::{ballast_with_env, push_with_env, served_by, until, Instance};
use crate::common::redis::Redis;
use crate::common::store_tls::StoreTlsFiles;
use crate::common::{metric_value, metrics_text, origin_named};
use std::time::Duration;

fn budgeted(backend: std::net::SocketAddr, redis: &str) -> String {
    format!(
        "listeners: [{{address: \"127.0.0.1:1\"}}]\nadmin: {{address: \"127.0.0.1:2\"}}\nserver: {{drain_timeout: 1s}}\npools: {{p: {{backends: [{{addr: \"{backend}\", capacity: 100}}]}}}}\nroutes: [{{name: event, pool: p, budget: {{region_share: 1.0}}}}]\nfleet: {{budget_store: \"{redis}\", lease_interval: 100ms}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_reaches_etcd_and_redis_over_mutual_tls() {
    let files = StoreTlsFiles::generate();
    let etcd = Etcd::start_tls(&files).await;
    let redis = Redis::start_tls(&files).await;
    let store = etcd.url("/fleet-tls");
    assert!(store.starts_with("etcds://"), "{store}");
    let dir = tempfile::tempdir().unwrap();
    let origin = origin_named("o").await;
    let config = budgeted(origin.addr, &redis.url());
    let etcd_env = files.env("BALLAST_ETCD");

    // Without a client certificate etcd refuses the push.
    let out = push_with_env(&store, dir.path(), &config, &etcd_env[..1]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("without a client certificate: {stderr}");
    assert!(!out.status.success(), "a push without a client certificate");
    assert!(stderr.contains(&store), "{stderr}");
    // TLS files beside a plain URL: refused before any connection.
    let plain = store.replacen("etcds://", "etcd://", 1);
    let out = push_with_env(&plain, dir.path(), &config, &etcd_env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("use etcds://"), "{stderr}");
    // A client certificate without its key.
    let out = push_with_env(&store, dir.path(), &config, &etcd_env[..2]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("BALLAST_ETCD_CERT_FILE is set without BALLAST_ETCD_KEY_FILE"),
        "{stderr}"
    );

    // With the certificates: pushed, followed, and budgets leased over TLS.
    let out = push_with_env(&store, dir.path(), &config, &etcd_env);
    assert!(
        out.status.success(),
        "push over TLS: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut env = etcd_env.clone();
    env.extend(files.env("BALLAST_REDIS"));
    let instance = Instance::start_with_env(&store, "one", dir.path(), &env).await;
    until(
        "leasing from Redis over TLS",
        Duration::from_secs(10),
        async || {
            let metrics = metrics_text(instance.admin).await;
            metric_value(&metrics, "ballast_budget_store_up", &[]) == Some(1.0)
        },
    )
    .await;
    assert_eq!(served_by(instance.listen).await.as_deref(), Ok("o"));
    let members = ballast_with_env(&["config", "status", "--store", &store, "--json"], &env);
    let listed: serde_json::Value = serde_json::from_slice(&members.stdout).unwrap_or_default();
    assert_eq!(
        listed["members"][0]["instance"],
        "one",
        "{listed}; {}",
        String::from_utf8_lossy(&members.stderr)
    );

    // Redis without the client certificate: unreachable, said so, and the
    // instance falls back to its local share.
    let mut etcd_only = etcd_env.clone();
    etcd_only.push((
        "BALLAST_REDIS_CA_FILE".into(),
        files.ca.display().to_string(),
    ));
    let refused = Instance::start_with_env(&store, "two", dir.path(), &etcd_only).await;
    until("refused by Redis", Duration::from_secs(10), async || {
        refused.logs().contains("budget store unreachable")
    })
    .await;
    eprintln!("Redis without a client certificate: {}", refused.logs());
    let metrics = metrics_text(refused.admin).await;
    assert_eq!(
        metric_value(&metrics, "ballast_budget_store_up", &[]),
        Some(0.0),
        "{}",
        refused.logs()
    );
}
