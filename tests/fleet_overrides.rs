//! Fleet mode's shared overrides: a drain, undrain or pin sent to one
//! instance's admin endpoint is stored in a real etcd and applied by all
//! three instances (recorded as a decision on each), outlives an instance's
//! restart, and `/api/v1/fleet` lists every instance with its shares.

use crate::common::etcd::Etcd;
use crate::common::fleet::{pushed, served_by, until, Instance, PROPAGATION_LIMIT};
use crate::common::{admin_json, admin_request, origin_named, send};
use http::{Method, StatusCode};
use std::net::SocketAddr;
use std::time::Duration;

/// Round robin over `a` and `b`; listener and admin addresses are
/// placeholders each instance replaces.
fn two_backends(a: SocketAddr, b: SocketAddr) -> String {
    format!(
        "listeners: [{{address: \"127.0.0.1:1\"}}]\nadmin: {{address: \"127.0.0.1:2\"}}\nserver: {{drain_timeout: 1s}}\npools: {{p: {{mode: round_robin, backends: [{{addr: \"{a}\"}}, {{addr: \"{b}\"}}]}}}}\nroutes: [{{pool: p}}]\n"
    )
}

/// Whether `instances` answer `gets` GETs in a row each from `a` alone.
async fn only_a(instance: &Instance, gets: usize) -> bool {
    for _ in 0..gets {
        if served_by(instance.listen).await.as_deref() != Ok("a") {
            return false;
        }
    }
    true
}

/// Whether some of `gets` GETs through `instance` are answered by `b`.
async fn reaches_b(instance: &Instance, gets: usize) -> bool {
    for _ in 0..gets {
        if served_by(instance.listen).await.as_deref() == Ok("b") {
            return true;
        }
    }
    false
}

/// POST or DELETE `path` on `admin`: the status and the JSON answer.
async fn override_on(admin: SocketAddr, method: Method, path: &str) -> (StatusCode, String) {
    let reply = send(admin, admin_request(method, path, None)).await;
    (reply.status, reply.text())
}

/// The reasons of the override decisions `admin` recorded.
async fn override_reasons(admin: SocketAddr) -> Vec<String> {
    let decisions = admin_json(admin, "/api/v1/decisions?kind=override").await;
    decisions["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["reason"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_override_sent_to_one_instance_applies_on_all_and_outlives_a_restart() {
    let mut etcd = Etcd::start().await;
    let store = etcd.url("/fleet-overrides");
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (origin_named("a").await, origin_named("b").await);
    pushed(&store, dir.path(), &two_backends(a.addr, b.addr));
    let mut instances = Vec::new();
    for name in ["one", "two", "three"] {
        instances.push(Instance::start(&store, name, dir.path()).await);
    }
    for instance in &instances {
        until("both backends serve", PROPAGATION_LIMIT, async || {
            reaches_b(instance, 10).await
        })
        .await;
    }
    let backend_b = format!("/api/v1/backends/p/{}", b.addr);

    // Drained through instance one: no instance sends `b` new requests.
    let (status, answer) = override_on(
        instances[0].admin,
        Method::POST,
        &format!("{backend_b}/drain"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer.contains("\"stored\""), "{answer}");
    let started = std::time::Instant::now();
    for instance in &instances {
        until(
            &format!("{} stops using b", instance.name),
            PROPAGATION_LIMIT,
            async || only_a(instance, 20).await,
        )
        .await;
    }
    eprintln!(
        "a drain applied on all three instances after {:?}",
        started.elapsed()
    );
    for instance in &instances {
        let reasons = override_reasons(instance.admin).await;
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with("drained by operator on one (fleet)")),
            "{}: {reasons:?}",
            instance.name
        );
    }

    // Instance three restarts: the stored drain applies from its start.
    let restarted = instances.pop().unwrap();
    drop(restarted);
    instances.push(Instance::start(&store, "three", dir.path()).await);
    until(
        "the restarted instance keeps b drained",
        PROPAGATION_LIMIT,
        async || {
            override_reasons(instances[2].admin)
                .await
                .iter()
                .any(|r| r.starts_with("drained by operator on one"))
        },
    )
    .await;
    assert!(only_a(&instances[2], 20).await, "{}", instances[2].logs());

    // Undrained through instance two: every instance uses `b` again.
    let (status, answer) = override_on(
        instances[1].admin,
        Method::POST,
        &format!("{backend_b}/undrain"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    for instance in &instances {
        until(
            &format!("{} uses b again", instance.name),
            Duration::from_secs(10),
            async || reaches_b(instance, 20).await,
        )
        .await;
    }

    // Pinned through instance three: the pin shows on instance one.
    let (status, answer) = override_on(
        instances[2].admin,
        Method::POST,
        &format!("{backend_b}/pin?share=0.9&for=1m"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    until(
        "instance one holds the pin",
        PROPAGATION_LIMIT,
        async || {
            override_reasons(instances[0].admin)
                .await
                .iter()
                .any(|r| r.starts_with("pinned at 0.900") && r.contains("on three (fleet)"))
        },
    )
    .await;

    // The fleet as any instance lists it: three members, with shares.
    until(
        "three members with shares",
        PROPAGATION_LIMIT * 3,
        async || {
            let fleet = admin_json(instances[1].admin, "/api/v1/fleet").await;
            let members = fleet["members"].as_array().cloned().unwrap_or_default();
            members.len() == 3
                && members.iter().all(|m| {
                    m["shares"]
                        .as_object()
                        .is_some_and(|s| s.contains_key(&format!("p/{}", b.addr)))
                })
        },
    )
    .await;

    // An unknown backend is refused before anything is stored; with etcd
    // down, an override is refused and nothing changes.
    let (status, _) = override_on(
        instances[0].admin,
        Method::POST,
        "/api/v1/backends/p/127.0.0.1:9/drain",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    etcd.kill();
    let (status, answer) = override_on(
        instances[0].admin,
        Method::POST,
        &format!("{backend_b}/drain"),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert!(answer.contains("nothing changed"), "{answer}");
    assert!(reaches_b(&instances[0], 20).await);
}
