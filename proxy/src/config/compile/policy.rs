//! A pool's balancing policy: mode, shares, smoothing, recompute interval,
//! server load, outlier ejection, retries and the sections it nests.

use super::fields::Checker;
use super::fields::{fraction, header_name};
use super::keys::{compile_consistent_hash, compile_sticky_key};
use super::probes::{compile_health, compile_load_poll};
use super::spillover::compile_spillover;
use crate::config::raw::*;
use crate::config::snapshot::*;
use std::ops::RangeInclusive;
use std::time::Duration;

const MIN_RECOMPUTE_INTERVAL: Duration = Duration::from_millis(50);
const MAX_RECOMPUTE_INTERVAL: Duration = Duration::from_secs(10);

pub(super) const MIN_SHARE_RANGE: RangeInclusive<f64> = 0.0..=0.5;
pub(super) const MAX_SHARE_RANGE: RangeInclusive<f64> = 0.01..=1.0;
pub(super) const SMOOTHING_RANGE: RangeInclusive<f64> = 0.01..=1.0;
pub(super) const REGION_MAX_SHARE_RANGE: RangeInclusive<f64> = 0.05..=1.0;
pub(super) const OVERPROVISIONING_RANGE: RangeInclusive<f64> = 1.0..=100.0;
pub(super) const PREWARM_SHARE_RANGE: RangeInclusive<f64> = 0.0..=0.2;

const MAX_ATTEMPTS: u32 = 5;

/// A balance mode by name; `None` is `default`.
pub(super) fn compile_mode(
    c: &mut Checker,
    path: &str,
    value: Option<&str>,
    default: BalanceMode,
) -> BalanceMode {
    match value {
        None => default,
        Some("latency") => BalanceMode::Latency,
        Some("capacity") => BalanceMode::Capacity,
        Some("round_robin") => BalanceMode::RoundRobin,
        Some("peak_ewma") => BalanceMode::PeakEwma,
        Some(other) => {
            c.error(
                format!("{path}.mode"),
                format!(
                    "unknown mode \"{other}\" (supported: latency, capacity, round_robin, peak_ewma)"
                ),
            );
            default
        }
    }
}

/// `min_share` must not be above `max_share`.
pub(super) fn check_share_bounds(c: &mut Checker, path: &str, min_share: f64, max_share: f64) {
    if min_share > max_share {
        c.error(
            format!("{path}.min_share"),
            format!("{min_share} is above max_share {max_share}"),
        );
    }
}

pub(super) fn compile_policy(c: &mut Checker, path: &str, pool: &RawPool) -> PoolPolicy {
    let mode = compile_mode(c, path, pool.mode.as_deref(), BalanceMode::Latency);
    let (min_share, max_share) = compile_shares(c, path, pool);
    let recompute_interval = compile_recompute_interval(c, path, pool);
    let retries = compile_retries(c, path, pool.retries.as_ref());
    let ejection = compile_ejection(c, path, pool.outlier.as_ref());
    let mut policy = PoolPolicy {
        mode,
        target_latency: c.duration(
            &format!("{path}.target_latency"),
            pool.target_latency.as_deref(),
            DEFAULT_TARGET_LATENCY,
        ),
        min_share,
        max_share,
        smoothing: fraction(
            c,
            format!("{path}.smoothing"),
            pool.smoothing,
            DEFAULT_SMOOTHING,
            SMOOTHING_RANGE,
        ),
        recompute_interval,
        slow_start: c.duration_or_zero(
            &format!("{path}.slow_start"),
            pool.slow_start.as_deref(),
            DEFAULT_SLOW_START,
        ),
        server_load: compile_server_load(c, path, pool.server_load.as_ref()),
        outlier: OutlierPolicy {
            max_ejected: fraction(
                c,
                format!("{path}.outlier.max_ejected"),
                pool.outlier.as_ref().and_then(|o| o.max_ejected),
                DEFAULT_MAX_EJECTED,
                0.0..=1.0,
            ),
            ..ejection
        },
        health: pool
            .health
            .as_ref()
            .map(|h| compile_health(c, &format!("{path}.health"), h)),
        load_poll: None,
        retries,
        region_max_share: fraction(
            c,
            format!("{path}.region_max_share"),
            pool.region_max_share,
            1.0,
            REGION_MAX_SHARE_RANGE,
        ),
        spillover: pool
            .spillover
            .as_ref()
            .map(|s| compile_spillover(c, &format!("{path}.spillover"), s)),
        canary_sticky: pool
            .canary_sticky
            .as_ref()
            .and_then(|s| compile_sticky_key(c, &format!("{path}.canary_sticky"), s)),
        consistent_hash: pool
            .consistent_hash
            .as_ref()
            .and_then(|h| compile_consistent_hash(c, &format!("{path}.consistent_hash"), h)),
        overprovisioning_factor: fraction(
            c,
            format!("{path}.overprovisioning_factor"),
            pool.overprovisioning_factor,
            DEFAULT_OVERPROVISIONING_FACTOR,
            OVERPROVISIONING_RANGE,
        ),
        prewarm_share: fraction(
            c,
            format!("{path}.prewarm_share"),
            pool.prewarm_share,
            0.0,
            PREWARM_SHARE_RANGE,
        ),
        schedules: Vec::new(),
    };
    // Checked against `server_load.stale_after`, so compiled after it.
    policy.load_poll = pool.load_poll.as_ref().map(|raw| {
        let stale_after = policy.server_load.stale_after;
        compile_load_poll(c, &format!("{path}.load_poll"), raw, stale_after)
    });
    policy
}

/// `min_share` and `max_share`, each in range and in order.
fn compile_shares(c: &mut Checker, path: &str, pool: &RawPool) -> (f64, f64) {
    let min_share = fraction(
        c,
        format!("{path}.min_share"),
        pool.min_share,
        DEFAULT_MIN_SHARE,
        MIN_SHARE_RANGE,
    );
    let max_share = fraction(
        c,
        format!("{path}.max_share"),
        pool.max_share,
        DEFAULT_MAX_SHARE,
        MAX_SHARE_RANGE,
    );
    check_share_bounds(c, path, min_share, max_share);
    (min_share, max_share)
}

fn compile_recompute_interval(c: &mut Checker, path: &str, pool: &RawPool) -> Duration {
    let recompute_interval = c.duration(
        &format!("{path}.recompute_interval"),
        pool.recompute_interval.as_deref(),
        DEFAULT_RECOMPUTE_INTERVAL,
    );
    if !(MIN_RECOMPUTE_INTERVAL..=MAX_RECOMPUTE_INTERVAL).contains(&recompute_interval) {
        c.error(
            format!("{path}.recompute_interval"),
            format!("must be between {MIN_RECOMPUTE_INTERVAL:?} and {MAX_RECOMPUTE_INTERVAL:?}"),
        );
    }
    recompute_interval
}

/// `retries`: how many tries, on what, within what budget.
fn compile_retries(c: &mut Checker, path: &str, retries: Option<&RawRetries>) -> RetryPolicy {
    let attempts = retries.and_then(|r| r.attempts).unwrap_or(DEFAULT_ATTEMPTS);
    if !(1..=MAX_ATTEMPTS).contains(&attempts) {
        c.error(
            format!("{path}.retries.attempts"),
            format!("must be between 1 and {MAX_ATTEMPTS}"),
        );
    }
    let on = match retries.and_then(|r| r.on.as_deref()) {
        Some(conditions) => compile_retry_on(c, &format!("{path}.retries.on"), conditions),
        None => RetryOn::default(),
    };
    let budget = retries.and_then(|r| r.budget.as_ref());
    let percent = budget
        .and_then(|b| b.percent)
        .unwrap_or(DEFAULT_RETRY_BUDGET_PERCENT);
    if !(0.0..=100.0).contains(&percent) {
        c.error(
            format!("{path}.retries.budget.percent"),
            format!("must be between 0 and 100, got {percent}"),
        );
    }
    RetryPolicy {
        attempts,
        on,
        budget: RetryBudget {
            percent,
            min_concurrency: budget
                .and_then(|b| b.min_concurrency)
                .unwrap_or(DEFAULT_RETRY_MIN_CONCURRENCY),
        },
    }
}

/// `retries.on`: named failures and 5xx statuses, each at most once.
fn compile_retry_on(c: &mut Checker, path: &str, conditions: &[RawRetryCondition]) -> RetryOn {
    let mut on = RetryOn {
        connect_failure: false,
        reset: false,
        timeout: false,
        statuses: Vec::new(),
        grpc_unavailable: false,
    };
    for (i, condition) in conditions.iter().enumerate() {
        let seen = match condition {
            RawRetryCondition::Status(status) if (500..=599).contains(status) => {
                let seen = on.statuses.contains(status);
                on.statuses.push(*status);
                seen
            }
            RawRetryCondition::Status(status) => {
                c.error(
                    format!("{path}[{i}]"),
                    format!("status {status} is not a 5xx status (500 to 599)"),
                );
                false
            }
            RawRetryCondition::Name(name) => {
                let flag = match name.as_str() {
                    "connect_failure" => &mut on.connect_failure,
                    "reset" => &mut on.reset,
                    "timeout" => &mut on.timeout,
                    "grpc_unavailable" => &mut on.grpc_unavailable,
                    other => {
                        c.error(
                            format!("{path}[{i}]"),
                            format!(
                                "unknown condition \"{other}\" (supported: connect_failure, reset, timeout, grpc_unavailable, or a status 500..599)"
                            ),
                        );
                        continue;
                    }
                };
                std::mem::replace(flag, true)
            }
        };
        if seen {
            c.error(format!("{path}[{i}]"), "listed twice");
        }
    }
    on.statuses.sort_unstable();
    on.statuses.dedup();
    on
}

/// `outlier`: when a backend is ejected and for how long. `max_ejected` is
/// left at its default here; the caller reads it later, keeping the errors in
/// the order they have always been reported.
fn compile_ejection(c: &mut Checker, path: &str, outlier: Option<&RawOutlier>) -> OutlierPolicy {
    let consecutive_failures = outlier
        .and_then(|o| o.consecutive_failures)
        .unwrap_or(DEFAULT_CONSECUTIVE_FAILURES);
    if consecutive_failures == 0 {
        c.error(
            format!("{path}.outlier.consecutive_failures"),
            "must be at least 1",
        );
    }
    let base_ejection = c.duration(
        &format!("{path}.outlier.base_ejection"),
        outlier.and_then(|o| o.base_ejection.as_deref()),
        DEFAULT_BASE_EJECTION,
    );
    let max_ejection = c.duration(
        &format!("{path}.outlier.max_ejection"),
        outlier.and_then(|o| o.max_ejection.as_deref()),
        DEFAULT_MAX_EJECTION,
    );
    if max_ejection < base_ejection {
        c.error(
            format!("{path}.outlier.max_ejection"),
            "must not be shorter than base_ejection",
        );
    }
    OutlierPolicy {
        consecutive_failures,
        base_ejection,
        max_ejection,
        max_ejected: DEFAULT_MAX_EJECTED,
        failure_rate: compile_failure_rate(c, path, outlier.and_then(|o| o.failure_rate.as_ref())),
    }
}

/// `outlier.failure_rate`: on with the defaults unless `false`.
fn compile_failure_rate(
    c: &mut Checker,
    path: &str,
    raw: Option<&RawFailureRate>,
) -> Option<FailureRateEjection> {
    let settings = match raw {
        Some(RawFailureRate::Flag(false)) => return None,
        Some(RawFailureRate::Flag(true)) | None => None,
        Some(RawFailureRate::Settings(settings)) => Some(settings),
    };
    let min_requests = settings
        .and_then(|s| s.min_requests)
        .unwrap_or(DEFAULT_FAILURE_RATE_MIN_REQUESTS);
    if min_requests == 0 {
        c.error(
            format!("{path}.outlier.failure_rate.min_requests"),
            "must be at least 1",
        );
    }
    Some(FailureRateEjection {
        threshold: fraction(
            c,
            format!("{path}.outlier.failure_rate.threshold"),
            settings.and_then(|s| s.threshold),
            DEFAULT_FAILURE_RATE_THRESHOLD,
            0.05..=1.0,
        ),
        min_requests,
    })
}

/// `server_load`: the headers backends report their load in.
fn compile_server_load(
    c: &mut Checker,
    path: &str,
    server_load: Option<&RawServerLoad>,
) -> ServerLoadPolicy {
    ServerLoadPolicy {
        header: header_name(
            c,
            format!("{path}.server_load.header"),
            server_load.and_then(|s| s.header.as_deref()),
            DEFAULT_SERVER_LOAD_HEADER,
        ),
        orca_header: header_name(
            c,
            format!("{path}.server_load.orca_header"),
            server_load.and_then(|s| s.orca_header.as_deref()),
            DEFAULT_ORCA_HEADER,
        ),
        strip: server_load.and_then(|s| s.strip).unwrap_or(true),
        stale_after: c.duration(
            &format!("{path}.server_load.stale_after"),
            server_load.and_then(|s| s.stale_after.as_deref()),
            DEFAULT_STALE_AFTER,
        ),
    }
}
