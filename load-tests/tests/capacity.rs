//! Origins with finite capacity over real sockets: requests wait for one
//! of a fixed number of workers, a full queue answers 503 at once, and the
//! number of workers changes while requests are served.

mod common;

use ballast_load_tests::behaviour::{BehaviourUpdate, Limit};
use ballast_load_tests::origin::{self, OriginConfig, OriginHandle};
use common::{get, wait_until, Reply};
use http::StatusCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// An origin answering every request after `latency`, with `workers`
/// workers and a queue of at most `queue` requests.
async fn start(latency: Duration, workers: u32, queue: Option<u32>) -> Arc<OriginHandle> {
    let origin = origin::spawn("127.0.0.1:0".parse().unwrap(), OriginConfig::new("o"))
        .await
        .expect("origin starts");
    origin.set_latency(latency);
    set_capacity(
        &origin,
        Limit::At(workers),
        queue.map_or(Limit::Unlimited, Limit::At),
    )
    .await;
    Arc::new(origin)
}

async fn set_capacity(origin: &OriginHandle, workers: Limit, queue: Limit) {
    let update = BehaviourUpdate {
        workers: Some(workers),
        queue: Some(queue),
        ..BehaviourUpdate::default()
    };
    origin.update(update).await.expect("valid update");
}

/// A GET on a connection of its own, in the background; yields the reply
/// and how long it took.
fn request(origin: &OriginHandle, path: &'static str) -> JoinHandle<(Reply, Duration)> {
    let addr = origin.addr;
    tokio::spawn(async move {
        let started = Instant::now();
        let reply = get(addr, path).await.expect("answered");
        (reply, started.elapsed())
    })
}

#[tokio::test]
async fn two_workers_serve_four_requests_in_two_rounds() {
    let delay = Duration::from_millis(20);
    let origin = start(delay, 2, None).await;
    let requests: Vec<_> = (0..4).map(|_| request(&origin, "/work")).collect();
    let mut took = Vec::new();
    for request in requests {
        let (reply, elapsed) = request.await.unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        took.push(elapsed);
    }
    took.sort();
    // Two requests waited for a worker a whole round: at least two delays.
    assert!(took[0] >= delay, "{took:?}");
    assert!(took[2] >= delay * 2, "{took:?}");
    assert!(took[3] >= delay * 2, "{took:?}");
    assert_eq!((origin.busy_workers(), origin.queued()), (0, 0));
}

#[tokio::test]
async fn requests_beyond_the_queue_get_503_at_once_and_healthz_bypasses_the_workers() {
    let delay = Duration::from_millis(1500);
    let origin = start(delay, 1, Some(1)).await;
    let served = request(&origin, "/first");
    wait_until("a worker is busy", || origin.busy_workers() == 1).await;
    let queued = request(&origin, "/second");
    wait_until("a request waits", || origin.queued() == 1).await;

    let started = Instant::now();
    let refused = get(origin.addr, "/third").await.unwrap();
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.body, "queue full\n");
    assert_eq!(refused.header("x-origin"), Some("o"));
    assert!(started.elapsed() < delay, "refused without waiting");
    assert_eq!(origin.stats.queue_full(), 1);
    assert_eq!(origin.status().counters.queue_full, 1);

    let health = get(origin.addr, "/healthz").await.unwrap();
    assert_eq!(health.status, StatusCode::OK);
    // It waited its delay, not for the worker the queued request waits for.
    assert!(!queued.is_finished(), "health answered without a worker");

    let ((first, _), (second, second_took)) = (served.await.unwrap(), queued.await.unwrap());
    assert_eq!(
        (first.status, second.status),
        (StatusCode::OK, StatusCode::OK)
    );
    assert!(second_took >= delay, "{second_took:?}");
}

#[tokio::test]
async fn workers_taken_away_at_runtime_apply_to_new_requests_at_once() {
    let origin = start(Duration::from_millis(500), 3, None).await;
    let busy: Vec<_> = (0..2).map(|_| request(&origin, "/old")).collect();
    wait_until("two workers are busy", || origin.busy_workers() == 2).await;

    // One worker was idle; after the shrink to 1 none is, until both old
    // requests are done.
    set_capacity(&origin, Limit::At(1), Limit::Unlimited).await;
    let late = request(&origin, "/late");
    wait_until("the new request waits", || origin.queued() == 1).await;
    assert_eq!(origin.busy_workers(), 2);
    for request in busy {
        assert_eq!(request.await.unwrap().0.status, StatusCode::OK);
    }
    wait_until("the new request is served alone", || {
        origin.queued() == 0 && origin.busy_workers() == 1
    })
    .await;
    let second_late = request(&origin, "/later");
    wait_until("another request waits", || origin.queued() == 1).await;

    // Workers given back: the waiting request is served at once.
    set_capacity(&origin, Limit::Unlimited, Limit::Unlimited).await;
    wait_until("both are served together", || {
        origin.queued() == 0 && origin.busy_workers() == 2
    })
    .await;
    for request in [late, second_late] {
        assert_eq!(request.await.unwrap().0.status, StatusCode::OK);
    }
    assert_eq!(origin.behaviour().workers, None);
}
