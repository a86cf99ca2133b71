//! Latency distributions an origin draws each request's delay from.
//!
//! Three shapes, written in JSON with milliseconds as numbers (fractions
//! allowed) and a `kind` tag:
//!
//! - `{"kind": "fixed", "ms": 20}`: every request waits exactly that long;
//! - `{"kind": "normal", "mean_ms": 50, "stddev_ms": 10}`: a normal
//!   (Gaussian) draw, clamped at 0 below and at [`MAX_LATENCY`] above;
//! - `{"kind": "long_tail", "base_ms": 10, "tail_ms": 500,
//!   "tail_fraction": 0.01}`: bimodal. Each request independently takes
//!   `tail_ms` with probability `tail_fraction` and `base_ms` otherwise, so
//!   the median stays at `base_ms` while every percentile above
//!   `1 - tail_fraction` sits at `tail_ms`: the slow minority that makes a
//!   p99 differ from a p50, in a form a test can predict exactly.

use rand::Rng;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The longest delay an origin adds to a request: one hour.
pub const MAX_LATENCY: Duration = Duration::from_secs(3600);

/// How long an origin waits before answering a request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LatencyDistribution {
    /// Always the same delay.
    Fixed {
        #[serde(rename = "ms", with = "millis")]
        latency: Duration,
    },
    /// A normal draw around `mean`, clamped to `0..=MAX_LATENCY`.
    Normal {
        #[serde(rename = "mean_ms", with = "millis")]
        mean: Duration,
        #[serde(rename = "stddev_ms", with = "millis")]
        stddev: Duration,
    },
    /// `tail` for a `tail_fraction` of the requests, `base` for the rest.
    LongTail {
        #[serde(rename = "base_ms", with = "millis")]
        base: Duration,
        #[serde(rename = "tail_ms", with = "millis")]
        tail: Duration,
        tail_fraction: f64,
    },
}

impl Default for LatencyDistribution {
    fn default() -> Self {
        Self::Fixed {
            latency: Duration::ZERO,
        }
    }
}

impl LatencyDistribution {
    /// Checks that every duration is at most [`MAX_LATENCY`] and that
    /// `tail_fraction` is a probability.
    pub fn validate(&self) -> Result<(), String> {
        let check = |field: &str, value: Duration| match value <= MAX_LATENCY {
            true => Ok(()),
            false => Err(format!(
                "latency.{field} must be at most {} ms",
                MAX_LATENCY.as_millis()
            )),
        };
        match *self {
            Self::Fixed { latency } => check("ms", latency),
            Self::Normal { mean, stddev } => {
                check("mean_ms", mean)?;
                check("stddev_ms", stddev)
            }
            Self::LongTail {
                base,
                tail,
                tail_fraction,
            } => {
                check("base_ms", base)?;
                check("tail_ms", tail)?;
                match (0.0..=1.0).contains(&tail_fraction) {
                    true => Ok(()),
                    false => Err(format!(
                        "latency.tail_fraction must be between 0 and 1, got {tail_fraction}"
                    )),
                }
            }
        }
    }

    /// The mean delay.
    pub fn mean(&self) -> Duration {
        match *self {
            Self::Fixed { latency } => latency,
            Self::Normal { mean, .. } => mean,
            Self::LongTail {
                base,
                tail,
                tail_fraction,
            } => base.mul_f64(1.0 - tail_fraction) + tail.mul_f64(tail_fraction),
        }
    }

    /// Draws the delay of one request.
    pub fn sample(&self, rng: &mut impl Rng) -> Duration {
        match *self {
            Self::Fixed { latency } => latency,
            Self::Normal { mean, stddev } => {
                let seconds = mean.as_secs_f64() + stddev.as_secs_f64() * standard_normal(rng);
                Duration::from_secs_f64(seconds.clamp(0.0, MAX_LATENCY.as_secs_f64()))
            }
            Self::LongTail {
                base,
                tail,
                tail_fraction,
            } => match rng.random::<f64>() < tail_fraction {
                true => tail,
                false => base,
            },
        }
    }
}

/// One draw from the standard normal distribution (Box-Muller transform).
fn standard_normal(rng: &mut impl Rng) -> f64 {
    // `random` is in [0, 1); flipping it to (0, 1] keeps the logarithm finite.
    let radius_draw = 1.0 - rng.random::<f64>();
    let angle_draw = rng.random::<f64>();
    (-2.0 * radius_draw.ln()).sqrt() * (std::f64::consts::TAU * angle_draw).cos()
}

/// Serde form of a [`Duration`]: a number of milliseconds.
pub(crate) mod millis {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(value.as_secs_f64() * 1000.0)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(deserializer)?;
        Duration::try_from_secs_f64(ms / 1000.0).map_err(|_| {
            D::Error::custom(format!(
                "expected a number of milliseconds, 0 or more, got {ms}"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn ms(value: u64) -> Duration {
        Duration::from_millis(value)
    }

    fn samples_ms(distribution: LatencyDistribution, count: usize) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(7);
        (0..count)
            .map(|_| distribution.sample(&mut rng).as_secs_f64() * 1000.0)
            .collect()
    }

    #[test]
    fn fixed_is_constant() {
        let fixed = LatencyDistribution::Fixed { latency: ms(20) };
        assert!(samples_ms(fixed, 100).iter().all(|&s| s == 20.0));
    }

    #[test]
    fn normal_has_the_configured_mean_and_spread() {
        let normal = LatencyDistribution::Normal {
            mean: ms(50),
            stddev: ms(10),
        };
        let samples = samples_ms(normal, 20_000);
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        let variance =
            samples.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / samples.len() as f64;
        assert!((mean - 50.0).abs() < 0.5, "mean {mean}");
        assert!(
            (variance.sqrt() - 10.0).abs() < 0.5,
            "stddev {}",
            variance.sqrt()
        );
    }

    #[test]
    fn normal_is_clamped_at_zero() {
        let wide = LatencyDistribution::Normal {
            mean: ms(1),
            stddev: ms(100),
        };
        let samples = samples_ms(wide, 1000);
        assert!(samples.iter().all(|&s| s >= 0.0));
        assert!(samples.iter().filter(|&&s| s == 0.0).count() > 300);
    }

    #[test]
    fn long_tail_sends_the_configured_fraction_to_the_tail() {
        let long_tail = LatencyDistribution::LongTail {
            base: ms(10),
            tail: ms(500),
            tail_fraction: 0.05,
        };
        let samples = samples_ms(long_tail, 20_000);
        let slow = samples.iter().filter(|&&s| s == 500.0).count();
        assert!(samples.iter().all(|&s| s == 10.0 || s == 500.0));
        assert!((800..1200).contains(&slow), "{slow} slow of 20000");
    }

    #[test]
    fn json_form_uses_milliseconds() {
        let parsed: LatencyDistribution =
            serde_json::from_str(r#"{"kind": "normal", "mean_ms": 2.5, "stddev_ms": 1}"#).unwrap();
        assert_eq!(
            parsed,
            LatencyDistribution::Normal {
                mean: Duration::from_micros(2500),
                stddev: ms(1),
            }
        );
        let fixed = LatencyDistribution::Fixed { latency: ms(20) };
        assert_eq!(
            serde_json::to_string(&fixed).unwrap(),
            r#"{"kind":"fixed","ms":20.0}"#
        );
    }

    #[test]
    fn invalid_values_are_rejected() {
        for bad in [
            r#"{"kind": "fixed", "ms": -1}"#,
            r#"{"kind": "fixed", "ms": "20"}"#,
            r#"{"kind": "fixed", "ms": 20, "jitter_ms": 1}"#,
            r#"{"kind": "gamma", "ms": 20}"#,
            r#"{"ms": 20}"#,
        ] {
            assert!(
                serde_json::from_str::<LatencyDistribution>(bad).is_err(),
                "{bad}"
            );
        }
        let too_long = LatencyDistribution::Fixed {
            latency: MAX_LATENCY + ms(1),
        };
        assert!(too_long.validate().is_err());
        let not_a_fraction = LatencyDistribution::LongTail {
            base: ms(1),
            tail: ms(2),
            tail_fraction: 1.5,
        };
        assert!(not_a_fraction.validate().is_err());
    }
}
