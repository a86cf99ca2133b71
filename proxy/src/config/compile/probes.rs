//! `pools.<name>.health` and `pools.<name>.load_poll`: active checks and
//! load polls.

use super::fields::Checker;
use crate::config::raw::*;
use crate::config::snapshot::*;
use http::HeaderValue;
use std::str::FromStr;
use std::time::Duration;

const MAX_QUIET_BELOW: f64 = 1e6;
const MIN_LOAD_POLL_INTERVAL: Duration = Duration::from_millis(100);
const MAX_LOAD_POLL_INTERVAL: Duration = Duration::from_secs(3600);

pub(super) fn compile_load_poll(
    c: &mut Checker,
    path: &str,
    raw: &RawLoadPoll,
    stale_after: Duration,
) -> LoadPollPolicy {
    let poll_path = raw
        .path
        .clone()
        .unwrap_or_else(|| DEFAULT_LOAD_POLL_PATH.to_string());
    if !poll_path.starts_with('/') || http::uri::PathAndQuery::from_str(&poll_path).is_err() {
        c.error(
            format!("{path}.path"),
            format!("invalid path \"{poll_path}\" (must start with '/')"),
        );
    }
    if let Some(host) = &raw.host {
        if host.is_empty() || HeaderValue::from_str(host).is_err() {
            c.error(
                format!("{path}.host"),
                format!("invalid host {host:?} (not a valid header value)"),
            );
        }
    }
    let interval = c.duration(
        &format!("{path}.interval"),
        raw.interval.as_deref(),
        DEFAULT_LOAD_POLL_INTERVAL,
    );
    if !(MIN_LOAD_POLL_INTERVAL..=MAX_LOAD_POLL_INTERVAL).contains(&interval) {
        c.error(
            format!("{path}.interval"),
            format!("must be between {MIN_LOAD_POLL_INTERVAL:?} and {MAX_LOAD_POLL_INTERVAL:?}"),
        );
    } else if interval >= stale_after {
        c.error(
            format!("{path}.interval"),
            format!(
                "{interval:?} must be shorter than server_load.stale_after ({stale_after:?}), \
                 or every poll would be stale before the next one"
            ),
        );
    }
    let timeout = c.duration(
        &format!("{path}.timeout"),
        raw.timeout.as_deref(),
        DEFAULT_LOAD_POLL_TIMEOUT.min(interval),
    );
    if timeout > interval {
        c.error(
            format!("{path}.timeout"),
            format!("{timeout:?} is longer than the interval {interval:?}"),
        );
    }
    let quiet_below = match raw.quiet_below {
        None => DEFAULT_QUIET_BELOW,
        Some(rps) if rps.is_finite() && rps > 0.0 && rps <= MAX_QUIET_BELOW => rps,
        Some(rps) => {
            c.error(
                format!("{path}.quiet_below"),
                format!("{rps} must be a rate in requests per second, above 0 and at most {MAX_QUIET_BELOW}"),
            );
            DEFAULT_QUIET_BELOW
        }
    };
    LoadPollPolicy {
        path: poll_path,
        host: raw.host.clone(),
        interval,
        timeout,
        quiet_below,
    }
}

pub(super) fn compile_health(c: &mut Checker, path: &str, raw: &RawHealth) -> HealthPolicy {
    let kind = match raw.check.as_deref() {
        None | Some("http") => {
            let check_path = raw.path.clone().unwrap_or_else(|| "/".to_string());
            if !check_path.starts_with('/')
                || http::uri::PathAndQuery::from_str(&check_path).is_err()
            {
                c.error(
                    format!("{path}.path"),
                    format!("invalid path \"{check_path}\" (must start with '/')"),
                );
            }
            // Sent as the Host header of every check.
            if let Some(host) = &raw.host {
                if HeaderValue::from_str(host).is_err() {
                    c.error(
                        format!("{path}.host"),
                        format!("invalid host {host:?} (not a valid header value)"),
                    );
                }
            }
            HealthCheckKind::Http {
                path: check_path,
                host: raw.host.clone(),
            }
        }
        Some("tcp") => {
            if raw.path.is_some() || raw.host.is_some() {
                c.error(format!("{path}.check"), "a tcp check takes no path or host");
            }
            HealthCheckKind::Tcp
        }
        Some(other) => {
            c.error(
                format!("{path}.check"),
                format!("unknown check \"{other}\" (supported: http, tcp)"),
            );
            HealthCheckKind::Tcp
        }
    };
    let mut threshold = |name: &str, value: Option<u32>, default: u32| match value {
        Some(0) => {
            c.error(format!("{path}.{name}"), "must be at least 1");
            default
        }
        other => other.unwrap_or(default),
    };
    let healthy_after = threshold("healthy_after", raw.healthy_after, DEFAULT_HEALTHY_AFTER);
    let unhealthy_after = threshold(
        "unhealthy_after",
        raw.unhealthy_after,
        DEFAULT_UNHEALTHY_AFTER,
    );
    HealthPolicy {
        kind,
        interval: c.duration(
            &format!("{path}.interval"),
            raw.interval.as_deref(),
            DEFAULT_HEALTH_INTERVAL,
        ),
        timeout: c.duration(
            &format!("{path}.timeout"),
            raw.timeout.as_deref(),
            DEFAULT_HEALTH_TIMEOUT,
        ),
        healthy_after,
        unhealthy_after,
    }
}
