use super::*;
use crate::discovery::dns::FailureKind;

const BOUNDS: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(10));

fn key() -> NameKey {
    (
        "api".to_string(),
        DnsName::Host {
            host: "a.test".into(),
            port: 80,
        },
    )
}

fn resolved(addrs: &[&str], ttl_s: u64) -> Resolved {
    Resolved {
        addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        ttl: Duration::from_secs(ttl_s),
    }
}

fn failure() -> Failure {
    Failure {
        kind: FailureKind::NxDomain,
        message: "no such name".into(),
    }
}

#[test]
fn the_next_resolution_follows_the_ttl_within_floor_and_ceiling() {
    let now = Instant::now();
    let wall = SystemTime::now();
    let mut state = NameState::new("pools.api.backends[0]".into(), now);
    assert_eq!(state.status(&key(), now, wall).status, "pending");
    for (ttl, wait) in [(0, 1), (5, 5), (3600, 10)] {
        state.succeeded(resolved(&["10.0.0.1:80"], ttl), now, wall, BOUNDS);
        assert_eq!(state.next_due - now, Duration::from_secs(wait), "ttl {ttl}");
    }
    let status = state.status(&key(), now, wall);
    assert_eq!(status.status, "ok");
    assert_eq!(status.name, "a.test:80");
    assert_eq!(status.kind, "host");
    assert_eq!(status.next_refresh, wall + Duration::from_secs(10));
}

#[test]
fn failures_keep_the_addresses_and_back_off_to_the_ceiling() {
    let now = Instant::now();
    let wall = SystemTime::now();
    let mut state = NameState::new("pools.api.backends[0]".into(), now);
    let before = state.succeeded(
        resolved(&["10.0.0.1:80", "10.0.0.2:80"], 30),
        now,
        wall,
        BOUNDS,
    );
    assert_eq!(before, None);
    let waits: Vec<u64> = (0..6)
        .map(|_| {
            state.failed(&failure(), now, wall, BOUNDS);
            (state.next_due - now).as_secs()
        })
        .collect();
    assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
    let status = state.status(&key(), now, wall);
    assert_eq!(status.status, "failing");
    assert_eq!(status.addresses.len(), 2, "the last good set stays");
    assert_eq!(status.failures, 6);
    assert_eq!(status.last_error.as_ref().map(|e| e.1), Some("nxdomain"));

    // A success resets the backoff and returns what it replaced.
    let replaced = state.succeeded(resolved(&["10.0.0.3:80"], 2), now, wall, BOUNDS);
    assert_eq!(replaced.map(|a| a.len()), Some(2));
    assert_eq!(state.status(&key(), now, wall).status, "ok");
    assert_eq!((state.next_due - now).as_secs(), 2);
}
