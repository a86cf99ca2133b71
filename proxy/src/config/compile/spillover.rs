//! `pools.<name>.spillover`: when a region is under pressure and how fast
//! traffic moves away from it.

use super::fields::fraction;
use super::fields::Checker;
use crate::config::raw::*;
use crate::config::snapshot::*;
use std::time::Duration;

pub(super) fn compile_spillover(
    c: &mut Checker,
    path: &str,
    raw: &RawSpillover,
) -> SpilloverPolicy {
    let d = DEFAULT_SPILLOVER;
    let latency_above = raw
        .latency_above
        .as_deref()
        .map(|text| c.duration(&format!("{path}.latency_above"), Some(text), Duration::ZERO));
    let latency_signal = match raw.latency_signal.as_deref() {
        None | Some("ewma") => LatencySignal::Ewma,
        Some("p99") => LatencySignal::P99,
        Some(other) => {
            c.error(
                format!("{path}.latency_signal"),
                format!("unknown latency signal \"{other}\" (supported: ewma, p99)"),
            );
            d.latency_signal
        }
    };
    let utilization_above = raw.utilization_above.map(|u| {
        fraction(
            c,
            format!("{path}.utilization_above"),
            Some(u),
            1.0,
            0.01..=10.0,
        )
    });
    if latency_above.is_none() && utilization_above.is_none() {
        c.error(
            path,
            "needs latency_above or utilization_above (what counts as pressure)",
        );
    }
    SpilloverPolicy {
        latency_above,
        latency_signal,
        utilization_above,
        step: fraction(c, format!("{path}.step"), raw.step, d.step, 0.01..=1.0),
        max: fraction(c, format!("{path}.max"), raw.max, d.max, 0.01..=1.0),
        hysteresis: fraction(
            c,
            format!("{path}.hysteresis"),
            raw.hysteresis,
            d.hysteresis,
            0.1..=0.99,
        ),
        hold: c.duration_or_zero(&format!("{path}.hold"), raw.hold.as_deref(), d.hold),
    }
}
