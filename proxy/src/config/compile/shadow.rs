//! `pools.<name>.shadow`: a candidate policy computed beside the live one.

use super::fields::fraction;
use super::fields::Checker;
use super::policy::{
    check_share_bounds, compile_mode, MAX_SHARE_RANGE, MIN_SHARE_RANGE, OVERPROVISIONING_RANGE,
    PREWARM_SHARE_RANGE, REGION_MAX_SHARE_RANGE, SMOOTHING_RANGE,
};
use crate::config::raw::*;
use crate::config::snapshot::*;
use std::ops::RangeInclusive;

const SHADOW_SAMPLE_RANGE: RangeInclusive<f64> = 0.001..=1.0;

/// The candidate policy of `pools.X.shadow`: the pool's `live` policy with
/// the parameters the shadow sets, each validated as the pool's own.
pub(super) fn compile_shadow(
    c: &mut Checker,
    path: &str,
    raw: &RawShadow,
    live: &PoolPolicy,
) -> ShadowPolicy {
    let mut policy = live.clone();
    policy.mode = compile_mode(c, path, raw.mode.as_deref(), live.mode);
    if live.mode == BalanceMode::PeakEwma || policy.mode == BalanceMode::PeakEwma {
        let at = match live.mode {
            BalanceMode::PeakEwma => path.to_string(),
            _ => format!("{path}.mode"),
        };
        c.error(
            at,
            "shadow mode compares weight policies (latency, capacity, round_robin); \
             peak_ewma chooses per request and has no weights to compare",
        );
    }
    policy.target_latency = c.duration(
        &format!("{path}.target_latency"),
        raw.target_latency.as_deref(),
        live.target_latency,
    );
    policy.min_share = fraction(
        c,
        format!("{path}.min_share"),
        raw.min_share,
        live.min_share,
        MIN_SHARE_RANGE,
    );
    policy.max_share = fraction(
        c,
        format!("{path}.max_share"),
        raw.max_share,
        live.max_share,
        MAX_SHARE_RANGE,
    );
    check_share_bounds(c, path, policy.min_share, policy.max_share);
    policy.smoothing = fraction(
        c,
        format!("{path}.smoothing"),
        raw.smoothing,
        live.smoothing,
        SMOOTHING_RANGE,
    );
    policy.slow_start = c.duration_or_zero(
        &format!("{path}.slow_start"),
        raw.slow_start.as_deref(),
        live.slow_start,
    );
    policy.region_max_share = fraction(
        c,
        format!("{path}.region_max_share"),
        raw.region_max_share,
        live.region_max_share,
        REGION_MAX_SHARE_RANGE,
    );
    policy.overprovisioning_factor = fraction(
        c,
        format!("{path}.overprovisioning_factor"),
        raw.overprovisioning_factor,
        live.overprovisioning_factor,
        OVERPROVISIONING_RANGE,
    );
    policy.prewarm_share = fraction(
        c,
        format!("{path}.prewarm_share"),
        raw.prewarm_share,
        live.prewarm_share,
        PREWARM_SHARE_RANGE,
    );
    ShadowPolicy {
        policy,
        sample: fraction(
            c,
            format!("{path}.sample"),
            raw.sample,
            1.0,
            SHADOW_SAMPLE_RANGE,
        ),
    }
}
