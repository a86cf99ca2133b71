//! Criterion benchmarks of the routing brain's hot and warm paths:
//! one pick (adaptive, consistent-hash, round robin and peak EWMA) at 3 to 10 000 backends, parsing
//! each load-report form, and one weight recompute (and the statistics
//! reading before it) at 10 to 10 000 backends, and the engine's whole
//! periodic recompute of a pool at 10 to 1000 backends; one shadow comparison
//! (a sampled request placed on a candidate policy's shares) at 3 to
//! 10 000 backends; one step of a consistent-hash ring at 10 to 1000
//! backends.
//!
//! `cargo bench -p ballast --bench brain`

use ballast::config::{load_str, PoolId, Snapshot};
use ballast::control::engine::Engine;
use ballast::control::weights::{compute_shares, BackendInput};
use ballast::routing::picker::{pick, PoolWeights, RequestFacts};
use ballast::routing::ring::{
    dead_band, moved_fraction, rescaled_targets, step_counts, target_counts, HashRing,
};
use ballast::routing::shadow::{ShadowCounters, ShadowWeights};
use ballast::stats::backend::BackendStats;
use ballast::stats::live::LiveState;
use ballast::stats::server_load::{parse_orca, parse_server_load};
use ballast::telemetry::decisions::DecisionLog;
use ballast::telemetry::metrics::Metrics;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rand::SeedableRng;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn snapshot(mode: &str, backends: usize) -> Snapshot {
    let list: Vec<String> = (0..backends)
        .map(|i| {
            format!(
                "{{addr: \"10.{}.{}.{}:80\", weight: {}}}",
                i / 65536,
                (i / 256) % 256,
                i % 256,
                1 + i % 7
            )
        })
        .collect();
    let yaml = format!(
        "listeners: [{{address: \"127.0.0.1:1\"}}]\npools: {{p: {{mode: {mode}, backends: [{}]}}}}\nroutes: [{{pool: p}}]\n",
        list.join(", ")
    );
    load_str(&yaml, Path::new(".")).expect("benchmark config")
}

/// Shares that fall off geometrically, like a pool with fast and slow members.
fn weights(snapshot: &Snapshot, n: usize) -> PoolWeights {
    let raw: Vec<f64> = (0..n).map(|i| 1.0 / (1.0 + i as f64 % 10.0)).collect();
    let total: f64 = raw.iter().sum();
    PoolWeights::new(
        &snapshot.pools[0],
        raw.iter().map(|w| w / total).collect(),
        vec![1.0; n],
    )
}

fn bench_pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick");
    for n in [3usize, 10, 100, 1000, 10_000] {
        let stats: Vec<Arc<BackendStats>> = (0..n).map(|_| Arc::new(BackendStats::new())).collect();
        // Measured at a few loads, as a pool under traffic is.
        for (i, s) in stats.iter().enumerate() {
            for joined in 1..=4 {
                s.record_load_latency(1, joined, 1_000 * (1 + i as u64 % 10) * joined);
            }
        }
        let adaptive = snapshot("latency", n);
        let published = weights(&adaptive, n);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        group.bench_with_input(BenchmarkId::new("adaptive", n), &n, |b, _| {
            let mut ticket = 0;
            b.iter(|| {
                ticket += 1;
                let facts = RequestFacts {
                    pool: PoolId(0),
                    ticket,
                    tried: &[],
                    weights: Some(&published),
                    stats: &stats,
                    plan: None,
                    sticky: None,
                    hash_key: None,
                };
                black_box(pick(&adaptive, &facts, 1, &mut rng))
            })
        });
        let ids: Vec<&str> = adaptive.pools[0]
            .backends
            .iter()
            .map(|b| b.id.0.as_str())
            .collect();
        let counts = target_counts(&published.shares, 100);
        let hashed = published
            .clone()
            .with_ring(Arc::new(HashRing::build(&ids, &counts)));
        group.bench_with_input(BenchmarkId::new("hashed", n), &n, |b, _| {
            let mut key: u64 = 0;
            b.iter(|| {
                key = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let facts = RequestFacts {
                    pool: PoolId(0),
                    ticket: 0,
                    tried: &[],
                    weights: Some(&hashed),
                    stats: &stats,
                    plan: None,
                    sticky: None,
                    hash_key: Some(key),
                };
                black_box(pick(&adaptive, &facts, 0, &mut rng))
            })
        });
        let round_robin = snapshot("round_robin", n);
        group.bench_with_input(BenchmarkId::new("round_robin", n), &n, |b, _| {
            let mut ticket = 0;
            b.iter(|| {
                ticket += 1;
                let facts = RequestFacts {
                    pool: PoolId(0),
                    ticket,
                    tried: &[],
                    weights: None,
                    stats: &stats,
                    plan: None,
                    sticky: None,
                    hash_key: None,
                };
                black_box(pick(&round_robin, &facts, 0, &mut rng))
            })
        });
        let peak_ewma = snapshot("peak_ewma", n);
        let eligible = weights(&peak_ewma, n);
        group.bench_with_input(BenchmarkId::new("peak_ewma", n), &n, |b, _| {
            // 100 picks per millisecond: 100 000 requests/s.
            let mut picks: u64 = 0;
            b.iter(|| {
                picks += 1;
                let now_ms = picks / 100;
                let facts = RequestFacts {
                    pool: PoolId(0),
                    ticket: 0,
                    tried: &[],
                    weights: Some(&eligible),
                    stats: &stats,
                    plan: None,
                    sticky: None,
                    hash_key: None,
                };
                black_box(pick(&peak_ewma, &facts, now_ms, &mut rng))
            })
        });
    }
    group.finish();
}

fn bench_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("server_load_parse");
    group.bench_function("bare", |b| b.iter(|| parse_server_load(black_box(b"0.73"))));
    group.bench_function("structured", |b| {
        b.iter(|| {
            parse_server_load(black_box(
                b"util=0.73, inflight=12, capacity=400, latency_ms=35",
            ))
        })
    });
    group.bench_function("orca", |b| {
        b.iter(|| {
            parse_orca(black_box(
                b"TEXT cpu_utilization=0.3, rps_fractional=120, eps=0.5",
            ))
        })
    });
    let huge = vec![b'x'; 10 * 1024];
    group.bench_function("rejected_10kb", |b| {
        b.iter(|| parse_server_load(black_box(&huge)))
    });
    group.finish();
}

fn bench_recompute(c: &mut Criterion) {
    let now_ms = 60_000;
    let mut group = c.benchmark_group("recompute");
    for n in [10usize, 100, 1000, 10_000] {
        let snap = snapshot("latency", n);
        let policy = snap.pools[0].policy.clone();
        let inputs: Vec<BackendInput> = (0..n)
            .map(|i| {
                let stats = BackendStats::new();
                for k in 0..200u64 {
                    stats.record_success(
                        now_ms - 5_000 + k * 20,
                        1_000 + (i as u64 % 10) * 500 + k % 50,
                    );
                }
                BackendInput {
                    weight: 1.0,
                    capacity: None,
                    eligible: true,
                    admitted_at_ms: None,
                    previous_share: Some(1.0 / n as f64),
                    scale: 1.0,
                    observation: stats.observe(now_ms),
                }
            })
            .collect();
        group.bench_with_input(BenchmarkId::new("shares", n), &n, |b, _| {
            b.iter(|| compute_shares(&policy, black_box(&inputs), now_ms))
        });
        let stats: Vec<BackendStats> = (0..n).map(|_| BackendStats::new()).collect();
        for (i, s) in stats.iter().enumerate() {
            for k in 0..200u64 {
                s.record_success(now_ms - 5_000 + k * 20, 1_000 + i as u64 % 100 * 10);
            }
        }
        group.bench_with_input(BenchmarkId::new("observe", n), &n, |b, _| {
            b.iter(|| {
                for s in &stats {
                    black_box(s.observe(black_box(now_ms)));
                }
            })
        });
    }
    group.finish();
}

/// The engine's whole periodic recompute of one pool, as the background task
/// runs it: every backend's statistics read, shares computed, smoothed and
/// bounded, the weights published and their gauges set. Between two ticks
/// each backend records one more request (outside the timed part), so the
/// windows hold live samples the whole time.
fn bench_engine_tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("recompute");
    for n in [10usize, 100, 1000] {
        let engine = Engine::new(
            Arc::new(snapshot("latency", n)),
            Arc::new(LiveState::new()),
            Arc::new(DecisionLog::default()),
            Arc::new(Metrics::new()),
        );
        let stats = engine.state().load().stats.pools[0].clone();
        let interval_ms = engine.tick_interval().as_millis() as u64;
        let mut now_ms = 0;
        group.bench_with_input(BenchmarkId::new("engine_tick", n), &n, |b, _| {
            b.iter_custom(|iterations| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iterations {
                    now_ms += interval_ms;
                    for (i, backend) in stats.iter().enumerate() {
                        backend.record_success(now_ms, 1_000 + (i as u64 % 10) * 500);
                    }
                    let start = Instant::now();
                    engine.tick(black_box(now_ms));
                    elapsed += start.elapsed();
                }
                elapsed
            })
        });
    }
    group.finish();
}

fn bench_shadow(c: &mut Criterion) {
    let mut group = c.benchmark_group("shadow");
    for n in [3usize, 100, 10_000] {
        let adaptive = snapshot("latency", n);
        let live = weights(&adaptive, n);
        let even = PoolWeights::new(&adaptive.pools[0], vec![1.0 / n as f64; n], vec![1.0; n]);
        let counter = |name| prometheus::IntCounter::new(name, "benchmark").expect("counter");
        let counters = ShadowCounters {
            same: counter("same"),
            different: counter("different"),
        };
        let shadow = ShadowWeights::new(even, 1.0, counters);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        group.bench_with_input(BenchmarkId::new("compare", n), &n, |b, _| {
            let mut chosen = 0;
            b.iter(|| {
                chosen = (chosen + 7) % n;
                shadow.compare(black_box(&live), chosen, false, &mut rng)
            })
        });
    }
    group.finish();
}

/// One recompute's ring work (off the hot path): targets, the budgeted
/// step after one backend's share halves, the new ring and the exact moved
/// fraction, at 100 vnodes per backend.
fn bench_ring_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring_step");
    group.sample_size(10);
    for n in [10usize, 100, 1000] {
        let names: Vec<String> = (0..n)
            .map(|i| format!("p/10.0.{}.{}:80", i / 256, i % 256))
            .collect();
        let ids: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut shares = vec![1.0 / n as f64; n];
        let current = target_counts(&shares, 100);
        shares[0] /= 2.0;
        let total: f64 = shares.iter().sum();
        shares.iter_mut().for_each(|s| *s /= total);
        let before = HashRing::build(&ids, &current);
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let target = rescaled_targets(&shares, 100, &current);
                let step = step_counts(&ids, &current, &target, dead_band(100), 0.05);
                let after = HashRing::build(&ids, &step.counts);
                black_box(moved_fraction(&before, &after))
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_pick,
    bench_parse,
    bench_recompute,
    bench_engine_tick,
    bench_shadow,
    bench_ring_step
);
criterion_main!(benches);
