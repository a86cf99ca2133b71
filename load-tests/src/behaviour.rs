//! What an origin does with the requests it receives, as one value that can
//! be read and changed while the origin runs, and exchanged as JSON by the
//! control API.
//!
//! [`Behaviour`] is the complete state; [`BehaviourUpdate`] carries the
//! fields to change (absent or `null` fields stay as they are). An update is
//! validated as a whole before any of it applies, so a rejected update
//! changes nothing.
//!
//! `workers` and `queue` give the origin a finite capacity (see
//! [`crate::workers`]): at most `workers` requests are served at once, the
//! others wait in a FIFO queue of at most `queue` requests, and a request
//! beyond that is answered 503 at once. In an update, a number sets a limit
//! and `"unlimited"` removes it.

use crate::latency::LatencyDistribution;
use http::HeaderValue;
use serde::{Deserialize, Serialize};

/// Everything about an origin that can change at runtime.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Behaviour {
    /// Delay added before answering each request.
    pub latency: LatencyDistribution,
    /// Fraction (0 to 1) of requests answered with `error_status` instead of
    /// their normal response. Never applies to `/healthz`.
    pub error_rate: f64,
    /// The 5xx status of injected errors.
    pub error_status: u16,
    /// Whether the origin accepts, resets, stalls or serves requests.
    pub failure: FailureMode,
    /// The load report sent on every response.
    pub server_load: ServerLoadMode,
    /// What `/healthz` answers: 200 when true, 503 when false.
    pub healthy: bool,
    /// Requests served at once (each holds a worker for its delay);
    /// `None`: unlimited.
    pub workers: Option<u32>,
    /// Requests that may wait for a worker; beyond them a request is
    /// answered 503 `queue full` at once. `None`: unlimited.
    pub queue: Option<u32>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            latency: LatencyDistribution::default(),
            error_rate: 0.0,
            error_status: 503,
            failure: FailureMode::Healthy,
            server_load: ServerLoadMode::Off,
            healthy: true,
            workers: None,
            queue: None,
        }
    }
}

/// A limit set by an update: a number, or the JSON string `"unlimited"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "LimitForm")]
pub enum Limit {
    Unlimited,
    At(u32),
}

impl Limit {
    /// The limit as a behaviour holds it (`None`: unlimited).
    pub fn value(self) -> Option<u32> {
        match self {
            Self::Unlimited => None,
            Self::At(count) => Some(count),
        }
    }
}

/// The JSON forms of a [`Limit`].
#[derive(Deserialize)]
#[serde(untagged)]
enum LimitForm {
    Count(u32),
    Word(String),
}

impl TryFrom<LimitForm> for Limit {
    type Error = String;

    fn try_from(form: LimitForm) -> Result<Self, String> {
        match form {
            LimitForm::Count(count) => Ok(Self::At(count)),
            LimitForm::Word(word) if word == "unlimited" => Ok(Self::Unlimited),
            LimitForm::Word(word) => {
                Err(format!("expected a number or \"unlimited\", got {word:?}"))
            }
        }
    }
}

/// How an origin fails, if it does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureMode {
    /// Serve requests normally.
    #[default]
    Healthy,
    /// Close the listening socket and every open connection: connecting
    /// fails with "connection refused" until the mode changes again.
    Refuse,
    /// Read each request (body included), then drop its connection with a
    /// TCP reset and no response.
    Reset,
    /// Read each request and answer nothing until the mode changes (the
    /// request is then handled under the new mode) or the client leaves.
    Hang,
}

/// The load report an origin adds to its responses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServerLoadMode {
    /// No report.
    Off,
    /// `Server-Load: util=<in_flight/slots>, inflight=<n>, capacity=<c>`,
    /// from the requests in flight at the origin when it answers, for an
    /// origin that serves `slots` requests at once: `c` is the requests/s
    /// that sustains, `slots / mean latency` (at least 1).
    Honest { slots: u64 },
    /// `Server-Load: <value>`, whatever the real load: an origin that lies.
    Fixed { value: String },
    /// `endpoint-load-metrics: TEXT cpu_utilization=<in_flight/slots>,
    /// rps_fractional=<requests/s>, eps=<errors/s>`, measured by the origin.
    Orca { slots: u64 },
}

impl ServerLoadMode {
    fn validate(&self) -> Result<(), String> {
        match self {
            Self::Off => Ok(()),
            Self::Honest { slots } | Self::Orca { slots } => match *slots >= 1 {
                true => Ok(()),
                false => Err("server_load.slots must be at least 1".to_string()),
            },
            Self::Fixed { value } => match HeaderValue::from_str(value) {
                Ok(_) => Ok(()),
                Err(_) => Err(format!(
                    "server_load.value must be a valid header value (visible ASCII, spaces and tabs), got {value:?}"
                )),
            },
        }
    }
}

/// The fields of a [`Behaviour`] to change; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BehaviourUpdate {
    pub latency: Option<LatencyDistribution>,
    pub error_rate: Option<f64>,
    pub error_status: Option<u16>,
    pub failure: Option<FailureMode>,
    pub server_load: Option<ServerLoadMode>,
    pub healthy: Option<bool>,
    pub workers: Option<Limit>,
    pub queue: Option<Limit>,
}

impl BehaviourUpdate {
    /// Checks every field on its own; a valid update can apply to any
    /// behaviour.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(latency) = &self.latency {
            latency.validate()?;
        }
        if let Some(rate) = self.error_rate {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("error_rate must be between 0 and 1, got {rate}"));
            }
        }
        if let Some(status) = self.error_status {
            if !(500..=599).contains(&status) {
                return Err(format!(
                    "error_status must be a 5xx status (500 to 599), got {status}"
                ));
            }
        }
        if let Some(server_load) = &self.server_load {
            server_load.validate()?;
        }
        if self.workers == Some(Limit::At(0)) {
            return Err("workers must be at least 1 (or \"unlimited\")".to_string());
        }
        Ok(())
    }
}

impl Behaviour {
    /// Applies a validated update.
    pub(crate) fn apply(&mut self, update: &BehaviourUpdate) {
        if let Some(latency) = update.latency {
            self.latency = latency;
        }
        if let Some(rate) = update.error_rate {
            self.error_rate = rate;
        }
        if let Some(status) = update.error_status {
            self.error_status = status;
        }
        if let Some(failure) = update.failure {
            self.failure = failure;
        }
        if let Some(server_load) = &update.server_load {
            self.server_load = server_load.clone();
        }
        if let Some(healthy) = update.healthy {
            self.healthy = healthy;
        }
        if let Some(workers) = update.workers {
            self.workers = workers.value();
        }
        if let Some(queue) = update.queue {
            self.queue = queue.value();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parse(json: &str) -> Result<BehaviourUpdate, String> {
        let update: BehaviourUpdate = serde_json::from_str(json).map_err(|e| e.to_string())?;
        update.validate()?;
        Ok(update)
    }

    #[test]
    fn a_full_update_parses_and_applies() {
        let update = parse(
            r#"{
                "latency": {"kind": "long_tail", "base_ms": 5, "tail_ms": 300, "tail_fraction": 0.01},
                "error_rate": 0.25,
                "error_status": 502,
                "failure": "hang",
                "server_load": {"mode": "honest", "slots": 8},
                "healthy": false,
                "workers": 4,
                "queue": 16
            }"#,
        )
        .unwrap();
        let mut behaviour = Behaviour::default();
        behaviour.apply(&update);
        assert_eq!(
            behaviour,
            Behaviour {
                latency: LatencyDistribution::LongTail {
                    base: Duration::from_millis(5),
                    tail: Duration::from_millis(300),
                    tail_fraction: 0.01,
                },
                error_rate: 0.25,
                error_status: 502,
                failure: FailureMode::Hang,
                server_load: ServerLoadMode::Honest { slots: 8 },
                healthy: false,
                workers: Some(4),
                queue: Some(16),
            }
        );
        behaviour.apply(&parse(r#"{"workers": "unlimited", "queue": 0}"#).unwrap());
        assert_eq!((behaviour.workers, behaviour.queue), (None, Some(0)));
    }

    #[test]
    fn absent_and_null_fields_keep_their_value() {
        let mut behaviour = Behaviour {
            error_rate: 0.5,
            ..Behaviour::default()
        };
        behaviour.apply(&parse(r#"{"error_rate": null, "healthy": false}"#).unwrap());
        assert_eq!(behaviour.error_rate, 0.5);
        assert!(!behaviour.healthy);
        behaviour.apply(&parse("{}").unwrap());
        assert_eq!(behaviour.error_rate, 0.5);
    }

    #[test]
    fn invalid_updates_say_what_is_wrong() {
        for (json, expected) in [
            (
                r#"{"error_rate": 1.5}"#,
                "error_rate must be between 0 and 1",
            ),
            (
                r#"{"error_rate": -0.1}"#,
                "error_rate must be between 0 and 1",
            ),
            (r#"{"error_status": 404}"#, "error_status must be a 5xx"),
            (r#"{"error_status": 70000}"#, "invalid value"),
            (r#"{"failure": "explode"}"#, "unknown variant `explode`"),
            (r#"{"colour": "red"}"#, "unknown field `colour`"),
            (
                r#"{"server_load": {"mode": "honest", "slots": 0}}"#,
                "slots must be at least 1",
            ),
            (
                r#"{"server_load": {"mode": "fixed", "value": "a\nb"}}"#,
                "valid header value",
            ),
            (
                r#"{"server_load": {"mode": "fixed"}}"#,
                "missing field `value`",
            ),
            (
                r#"{"latency": {"kind": "long_tail", "base_ms": 1, "tail_ms": 2, "tail_fraction": 2}}"#,
                "tail_fraction must be between 0 and 1",
            ),
            (r#"{"latency": {"kind": "fixed", "ms": -5}}"#, "0 or more"),
            ("42", "invalid type: integer"),
            (r#"{"workers": 0}"#, "workers must be at least 1"),
            (r#"{"workers": "many"}"#, "expected a number or"),
            (r#"{"queue": -1}"#, "did not match any variant"),
        ] {
            let error = parse(json).unwrap_err();
            assert!(error.contains(expected), "{json}: {error}");
        }
    }

    #[test]
    fn behaviour_serializes_with_snake_case_tags() {
        let json = serde_json::to_value(Behaviour {
            server_load: ServerLoadMode::Fixed {
                value: "0.9".into(),
            },
            ..Behaviour::default()
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "latency": {"kind": "fixed", "ms": 0.0},
                "error_rate": 0.0,
                "error_status": 503,
                "failure": "healthy",
                "server_load": {"mode": "fixed", "value": "0.9"},
                "healthy": true,
                "workers": null,
                "queue": null
            })
        );
    }
}
