use super::tests::Views;
use super::*;
use crate::config::PoolId;
use crate::routing::picker::{pick, RequestFacts};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::Path;

/// A latency pool of a fast backend (10 ms) and one 4× slower (40 ms),
/// with `shadow` (a YAML flow mapping, or empty for none).
fn config(shadow: &str) -> Arc<Snapshot> {
    let shadow = if shadow.is_empty() {
        String::new()
    } else {
        format!("    shadow: {shadow}\n")
    };
    let yaml = format!(
            "listeners: [{{address: \"127.0.0.1:1\"}}]\npools:\n  p:\n    recompute_interval: 100ms\n    max_share: 1.0\n    min_share: 0.0\n    slow_start: 0s\n{shadow}    backends: [{{addr: \"127.0.0.1:9000\"}}, {{addr: \"127.0.0.1:9001\"}}]\nroutes: [{{pool: p}}]\n"
        );
    Arc::new(crate::config::load_str(&yaml, Path::new(".")).unwrap())
}

fn engine(shadow: &str) -> Engine {
    Engine::new(
        config(shadow),
        Arc::new(LiveState::new()),
        Arc::new(DecisionLog::default()),
        Arc::new(Metrics::new()),
    )
}

/// One recompute interval of traffic: backend 0 answers in 10 ms, backend 1 in 40 ms.
fn step(e: &Engine, now_ms: u64) {
    let state = e.state().load_full();
    for _ in 0..20 {
        state.stats.pools[0][0].record_success(now_ms, 10_000);
        state.stats.pools[0][1].record_success(now_ms, 40_000);
    }
    e.tick(now_ms);
}

fn run(e: &Engine, from_ms: u64, steps: u64) -> u64 {
    for k in 0..steps {
        step(e, from_ms + k * 100);
    }
    from_ms + steps * 100
}

fn live_shares(e: &Engine) -> Vec<f64> {
    e.state().load().weights[0].as_ref().unwrap().shares.clone()
}

fn candidate_shares(e: &Engine) -> Vec<f64> {
    e.state().load().shadows[0]
        .as_ref()
        .expect("a candidate is published")
        .candidate
        .shares
        .clone()
}

/// `n` requests picked by the live policy with a seeded draw, each
/// compared with the candidate if there is one (with draws of its own):
/// (same, different, live picks per backend).
fn compare(e: &Engine, n: u64, seed: u64) -> (u64, u64, Vec<u64>) {
    let state = e.state().load_full();
    let live = state.weights[0].as_ref().unwrap();
    let shadow = state.shadows[0].as_ref();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut shadow_rng = StdRng::seed_from_u64(seed + 1);
    let (mut same, mut different, mut picks) = (0, 0, vec![0; 2]);
    for ticket in 0..n {
        let facts = RequestFacts {
            pool: PoolId(0),
            ticket,
            tried: &[],
            weights: Some(live),
            stats: &state.stats.pools[0],
            plan: None,
            sticky: None,
            hash_key: None,
        };
        let chosen = pick(&state.snapshot, &facts, 0, &mut rng)
            .backend()
            .unwrap();
        picks[chosen] += 1;
        match shadow.and_then(|s| s.compare(live, chosen, false, &mut shadow_rng)) {
            Some(true) => same += 1,
            Some(false) => different += 1,
            None => {}
        }
    }
    (same, different, picks)
}

#[test]
fn live_shares_are_identical_with_and_without_a_shadow() {
    let plain = engine("");
    let shadowed = engine("{mode: round_robin, smoothing: 1.0, max_share: 0.6}");
    for k in 0..30 {
        let now = 1_000 + k * 100;
        step(&plain, now);
        step(&shadowed, now);
        assert_eq!(live_shares(&plain), live_shares(&shadowed), "tick {k}");
    }
    assert!(live_shares(&plain)[0] > 0.7, "{:?}", live_shares(&plain));
    assert_eq!(candidate_shares(&shadowed), vec![0.5, 0.5]);
    let (_, _, plain_picks) = compare(&plain, 2_000, 7);
    let (_, _, shadowed_picks) = compare(&shadowed, 2_000, 7);
    assert_eq!(plain_picks, shadowed_picks, "same seed, same live picks");
}

#[test]
fn a_candidate_with_the_live_parameters_agrees() {
    let e = engine("{sample: 1.0}");
    run(&e, 1_000, 20);
    assert_eq!(candidate_shares(&e), live_shares(&e));
    let (same, different, _) = compare(&e, 5_000, 1);
    assert_eq!(same + different, 5_000);
    assert!(
        (different as f64) < 0.01 * 5_000.0,
        "{different} of 5000 differ"
    );
    let shadow = &e.inspect_shadows()[0].clone().unwrap();
    assert_eq!(shadow.prediction.moved_fraction, 0.0);
    assert_eq!(shadow.same, same);
}

#[test]
fn round_robin_against_latency_disagrees_by_the_share_difference() {
    let e = engine("{mode: round_robin}");
    run(&e, 1_000, 30);
    let live = live_shares(&e);
    // 1/10 : 1/40 → 0.8 / 0.2 once smoothed in; round robin: 0.5 / 0.5.
    assert!((live[0] - 0.8).abs() < 0.01, "{live:?}");
    let expected = (live[0] - 0.5).abs(); // ½ Σ |live − candidate|
    let (same, different, picks) = compare(&e, 4_000, 3);
    let rate = different as f64 / (same + different) as f64;
    assert!(
        (rate - expected).abs() < 0.04,
        "disagreement {rate:.3}, expected {expected:.3}"
    );
    assert!(
        picks[0] as f64 / 4_000.0 > 0.75,
        "requests follow the live policy: {picks:?}"
    );
    let shadow = e.inspect_shadows()[0].clone().unwrap();
    let p = shadow.prediction;
    let (live_s, candidate_s) = (p.live.latency_s.unwrap(), p.candidate.latency_s.unwrap());
    assert!(
        (live_s - (live[0] * 0.010 + live[1] * 0.040)).abs() < 1e-6,
        "{live_s}"
    );
    assert!((candidate_s - 0.025).abs() < 1e-6, "{candidate_s}");
    assert!((p.moved_fraction - expected).abs() < 1e-9);
    let metric = |policy: &str| {
        e.metrics
            .shadow_predicted_latency
            .with_label_values(&["p", policy])
            .get()
    };
    assert_eq!(metric("live"), live_s);
    assert_eq!(metric("candidate"), candidate_s);
    let counted = e
        .metrics
        .shadow_decisions
        .with_label_values(&["p", "different"])
        .get();
    assert_eq!(counted, different);
}

#[test]
fn sampling_compares_only_a_fraction() {
    let e = engine("{mode: round_robin, sample: 0.1}");
    run(&e, 1_000, 10);
    let (same, different, _) = compare(&e, 5_000, 5);
    let compared = same + different;
    assert!((350..=650).contains(&compared), "{compared} of 5000");
}

#[test]
fn reloads_keep_live_state_and_reset_the_candidate_when_its_parameters_change() {
    // A twin without a shadow goes through the same reloads: the live
    // shares must match it throughout.
    let e = engine("{mode: latency, smoothing: 0.1}");
    let twin = engine("");
    for engine in [&e, &twin] {
        engine.tick(900); // no measurements yet: even shares to smooth from
        run(engine, 1_000, 3);
    }
    let now = 1_300;
    // Smoothed from an even start: still well below the unsmoothed 0.8.
    assert!(candidate_shares(&e)[0] < 0.7, "{:?}", candidate_shares(&e));
    compare(&e, 100, 1);
    assert_eq!(live_shares(&e), live_shares(&twin));

    // Only the sample changes: the candidate keeps its memory and counts.
    e.install(config("{mode: latency, smoothing: 0.1, sample: 0.5}"), now);
    twin.install(config(""), now);
    assert_eq!(live_shares(&e), live_shares(&twin), "live state kept");
    let shadow = e.inspect_shadows()[0].clone().unwrap();
    assert_eq!(shadow.same + shadow.different, 100, "counts kept");
    let kept = candidate_shares(&e)[0];
    assert!(kept < 0.75, "still smoothing: {kept}");

    // Its smoothing changes: it starts again, unsmoothed at first.
    e.install(config("{mode: latency, smoothing: 0.2}"), now + 100);
    twin.install(config(""), now + 100);
    assert_eq!(live_shares(&e), live_shares(&twin), "live state kept");
    assert!(
        (candidate_shares(&e)[0] - 0.8).abs() < 1e-3,
        "{:?}",
        candidate_shares(&e)
    );
    let shadow = e.inspect_shadows()[0].clone().unwrap();
    assert_eq!((shadow.same, shadow.different), (0, 0), "counts restart");

    // Removed: nothing published, its series gone.
    e.install(config(""), now + 200);
    twin.install(config(""), now + 200);
    assert!(e.state().load().shadows[0].is_none());
    assert!(e.inspect_shadows()[0].is_none());
    assert_eq!(live_shares(&e), live_shares(&twin), "live state kept");
    let rendered = e.metrics.render();
    assert!(
        !rendered.contains("ballast_shadow_decisions_total"),
        "{rendered}"
    );
    assert!(!rendered.contains("ballast_shadow_share"), "{rendered}");
}
