//! The JSON side of the admin endpoint: live state, the decision log, the
//! running configuration (secrets redacted), reloads and operator overrides.

use super::{json, json_error};
use crate::config::{
    BackendId, ConfigView, PinCarrier, Pool, ScheduleTemplate, Snapshot, WriteSplit,
};
use crate::control::engine::Engine;
use crate::control::inspect::{Inspection, PoolInspection, ShadowInspection};
use crate::control::schedule;
use crate::control::shadow::PolicyOutcome;
use crate::discovery::{Discovery, NameStatus};
use crate::fleet::overrides::OverrideChange;
use crate::reload::{ReloadOutcome, Reloader};
use crate::stats::clock;
use crate::telemetry::decisions::{DecisionKind, DECISION_LOG_CAPACITY};
use http::{Method, Response, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const BACKENDS_PREFIX: &str = "/api/v1/backends/";
const DEFAULT_DECISIONS: usize = 100;
const DEFAULT_PIN: Duration = Duration::from_secs(600);
const MAX_PIN: Duration = Duration::from_secs(24 * 3600);

type Reply = Response<Vec<u8>>;

/// Decode `%XX` escapes and `+` in a query or path component.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// `key=value` pairs of a query string, decoded.
fn query_params(query: &str) -> Result<Vec<(String, String)>, String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match (percent_decode(key), percent_decode(value)) {
                (Some(k), Some(v)) => Ok((k, v)),
                _ => Err(format!("invalid percent-encoding in \"{pair}\"")),
            }
        })
        .collect()
}

fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn ms(us: f64) -> f64 {
    us / 1000.0
}

/// `GET /api/v1/state`: every pool and backend, live stats, share and why.
/// A pool's read/write split: the write region, what counts as a write and
/// the read-your-writes pin (`null` when the pool has no split).
fn write_split(split: Option<&WriteSplit>) -> Value {
    let Some(split) = split else {
        return Value::Null;
    };
    json!({
        "region": split.region,
        "methods": split.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
        "path_prefixes": split.path_prefixes,
        "header": split.header.as_ref().map(|h| h.as_str()),
        "read_your_writes": split.read_your_writes.as_ref().map(|ryw| json!({
            "ttl_ms": ryw.ttl.as_millis() as u64,
            "cookie": match &ryw.carrier { PinCarrier::Cookie(name) => Some(name.as_str()), PinCarrier::Header(_) => None },
            "header": match &ryw.carrier { PinCarrier::Header(name) => Some(name.as_str()), PinCarrier::Cookie(_) => None },
        })),
    })
}

pub fn state(engine: &Engine, discovery: &Discovery, reloader: Option<&Reloader>) -> Reply {
    let now_ms = clock::now_ms();
    // One reading: every part of the answer comes from the same recompute.
    let Inspection {
        snapshot,
        wall_now_s: wall_now,
        pools: inspected,
        budgets,
    } = engine.inspection(now_ms);
    let pools: Vec<Value> = snapshot
        .pools
        .iter()
        .zip(inspected)
        .map(|(pool, inspected)| {
            let PoolInspection {
                backends,
                regions,
                tiers,
                shadow,
            } = inspected;
            let prewarm = pool.policy.prewarm_share;
            let tiers: Vec<Value> = tiers
                .iter()
                .map(|t| {
                    json!({
                        "priority": t.priority,
                        "health": t.health,
                        "load": t.load,
                        "state": if t.serving(prewarm) { "serving" } else { "standby" },
                    })
                })
                .collect();
            let regions: Vec<Value> = regions
                .into_iter()
                .map(|r| {
                    json!({
                        "region": r.region,
                        "share": r.share,
                        "target_share": r.share,
                        "actual_share": r.actual_share,
                        "spill": r.spill,
                        "pressure": r.pressure,
                        "latency_ms": r.signals.latency_ms,
                        "utilization": r.signals.utilization,
                        "traffic_share": r.signals.traffic_share,
                    })
                })
                .collect();
            let backends: Vec<Value> = pool
                .backends
                .iter()
                .zip(backends)
                .map(|(backend, seen)| {
                    let obs = &seen.observation;
                    json!({
                        "id": backend.id.0,
                        "addr": backend.addr.to_string(),
                        "discovered_from": backend.discovered_from.as_ref().map(ToString::to_string),
                        "region": backend.region,
                        "capacity": backend.capacity,
                        "weight": backend.weight,
                        "canary": backend.canary.is_some(),
                        "priority": backend.priority,
                        "labels": backend.labels,
                        "share": seen.share,
                        "eligible": seen.eligible,
                        "healthy": seen.healthy,
                        "ejected_for_ms": seen.ejected_for_ms,
                        "times_ejected": seen.times_ejected,
                        "drained": seen.drained,
                        "canary_breaker_open_for_ms": seen.canary_breaker_open_for_ms,
                        "pinned": seen.pinned.map(|(share, remaining_ms)| json!({"share": share, "remaining_ms": remaining_ms})),
                        "slow_start_progress": seen.slow_start_progress,
                        "ring": seen.ring.map(|(vnodes, key_space)| json!({"vnodes": vnodes, "key_space": key_space})),
                        "in_flight": obs.in_flight,
                        "latency": {
                            "samples": obs.latency.count,
                            "p50_ms": ms(obs.latency.p50_us),
                            "p99_ms": ms(obs.latency.p99_us),
                            "mean_ms": ms(obs.latency.mean_us),
                            "ewma_ms": obs.ewma_us.map(ms),
                        },
                        "requests": obs.outcomes.total,
                        "errors": obs.outcomes.errors,
                        "error_rate": obs.outcomes.error_rate(),
                        "requests_per_second": obs.outcomes.per_second(),
                        "consecutive_failures": obs.consecutive_failures,
                        "report": obs.report.map(|r| json!({
                            "utilization": r.utilization,
                            "capacity": r.capacity,
                            "in_flight": r.in_flight,
                            "latency_ms": r.latency_ms,
                            "error_rate": r.error_rate,
                            "source": if r.polled { "load_poll" } else { "response" },
                            "age_ms": now_ms.saturating_sub(r.received_at_ms),
                        })),
                        "load_poll": seen.last_poll.as_ref().map(|p| json!({
                            "at": unix_seconds(p.at),
                            "age_ms": now_ms.saturating_sub(p.at_ms),
                            "result": p.result,
                            "load": p.report.and_then(|r| r.utilization),
                            "latency_ms": p.report.and_then(|r| r.latency_ms),
                            "error_rate": p.report.and_then(|r| r.error_rate),
                            "capacity": p.report.and_then(|r| r.capacity),
                            "inflight": p.report.and_then(|r| r.in_flight),
                        })),
                        "why": seen.factors.map(|f| json!({
                            "latency_ms": f.latency_ms,
                            "base": f.base,
                            "error_factor": f.error,
                            "utilization_factor": f.utilization,
                            "stale_report": f.stale,
                            "slow_start_factor": f.ramp,
                            "polled": f.polled,
                            "schedule_factor": f.schedule,
                        })),
                    })
                })
                .collect();
            json!({
                "name": pool.name,
                "mode": pool.policy.mode.as_str(),
                "min_share": pool.policy.min_share,
                "max_share": pool.policy.max_share,
                "recompute_interval_ms": pool.policy.recompute_interval.as_millis() as u64,
                "region_max_share": pool.policy.region_max_share,
                "overprovisioning_factor": pool.policy.overprovisioning_factor,
                "prewarm_share": pool.policy.prewarm_share,
                "load_poll": pool.policy.load_poll.as_ref().map(|p| json!({
                    "path": p.path,
                    "interval_ms": p.interval.as_millis() as u64,
                    "timeout_ms": p.timeout.as_millis() as u64,
                    "quiet_below": p.quiet_below,
                })),
                "schedule": schedule_state(&pool.policy.schedules, wall_now),
                "consistent_hash": pool.policy.consistent_hash.as_ref().map(|h| json!({
                    "vnodes": h.vnodes,
                    "max_key_moves": h.max_key_moves,
                })),
                "tiers": tiers,
                "protocol": pool.protocol(),
                "tls": pool.tls.as_ref().map(|t| json!({
                    "sni": t.sni,
                    "verify": t.verify,
                    "alpn": t.alpn.as_str(),
                    "ca": t.ca_file.as_ref().map(|f| f.display().to_string()),
                    "mtls": t.client_cert.is_some(),
                })),
                "write": write_split(pool.write.as_ref()),
                "regions": regions,
                "shadow": shadow.map(|s| shadow_state(pool, &s)),
                "backends": backends,
            })
        })
        .collect();
    let reload = reloader.map(|r| {
        let status = r.status();
        json!({
            "source": r.source().to_string(),
            "store_connected": r.store_connected(),
            "generation": status.generation,
            "revision": status.revision,
            "rejected_revision": status.rejected_revision,
            "last_attempt": status.last_attempt.map(unix_seconds),
            "last_trigger": status.last_trigger,
            "last_success": status.last_success.map(unix_seconds),
            "last_errors": status.last_errors,
            "last_warnings": status.last_warnings,
        })
    });
    let budgets: Vec<Value> = budgets
        .into_iter()
        .map(|b| {
            let regions: Vec<Value> = b
                .regions
                .iter()
                .map(|r| {
                    json!({
                        "region": r.region,
                        "capacity": r.capacity,
                        "limit": r.limit,
                        "rate": r.rate,
                        "usage": if r.limit > 0.0 { r.rate / r.limit } else { 0.0 },
                        "over_rate": r.over_rate,
                        "over_budget": r.over_budget,
                        "admitted": r.admitted,
                        "rejected": r.rejected,
                        "spilled": r.spilled,
                    })
                })
                .collect();
            json!({
                "route": b.route,
                "region_share": b.policy.region_share,
                "over": b.policy.over.as_str(),
                "retry_after_s": b.policy.retry_after.as_secs(),
                "regions": regions,
            })
        })
        .collect();
    json(
        StatusCode::OK,
        &json!({
            "pools": pools,
            "budgets": budgets,
            "discovery": discovery_state(&discovery.status()),
            "reload": reload,
        }),
    )
}

/// Each backend entry named by DNS: its last good addresses and how its
/// resolutions went.
fn discovery_state(names: &[NameStatus]) -> Value {
    names
        .iter()
        .map(|n| {
            json!({
                "pool": n.pool,
                "name": n.name,
                "kind": n.kind,
                "path": n.path,
                "status": n.status,
                "addresses": n.addresses.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "last_success": n.last_success.map(unix_seconds),
                "last_error": n.last_error.as_ref().map(|(at, result, message)| json!({
                    "at": unix_seconds(*at),
                    "result": result,
                    "message": message,
                })),
                "failures": n.failures,
                "next_refresh": unix_seconds(n.next_refresh),
            })
        })
        .collect()
}

/// A pool's schedules: the active template (the first that applies now),
/// its multipliers, when that next changes, and every template's name.
fn schedule_state(templates: &[ScheduleTemplate], unix_s: i64) -> Value {
    if templates.is_empty() {
        return Value::Null;
    }
    let active = schedule::active(templates, unix_s).map(|i| &templates[i]);
    json!({
        "active": active.map(|t| t.name.as_str()),
        "multipliers": active.map(|t| &t.multipliers),
        "next_switch": schedule::next_switch(templates, unix_s),
        "templates": templates.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
    })
}

/// A pool's shadow candidate: how often it would have chosen differently,
/// each backend's candidate and live shares, and the predicted effect.
fn shadow_state(pool: &Pool, shadow: &ShadowInspection) -> Value {
    let compared = shadow.same + shadow.different;
    let outcome = |o: PolicyOutcome| {
        json!({
            "latency_ms": o.latency_s.map(|s| s * 1000.0),
            "error_rate": o.error_rate,
        })
    };
    let p = &shadow.prediction;
    json!({
        "mode": shadow.mode.as_str(),
        "sample": shadow.sample,
        "compared": compared,
        "same": shadow.same,
        "different": shadow.different,
        "disagreement_rate": (compared > 0).then(|| shadow.different as f64 / compared as f64),
        "predicted": {
            "live": outcome(p.live),
            "candidate": outcome(p.candidate),
            "moved_fraction": p.moved_fraction,
            "moved_requests_per_second": p.moved_rps,
        },
        "backends": pool
            .backends
            .iter()
            .zip(&shadow.candidate_shares)
            .zip(&shadow.live_shares)
            .map(|((backend, candidate), live)| json!({
                "id": backend.id.0,
                "live_share": live,
                "candidate_share": candidate,
            }))
            .collect::<Vec<Value>>(),
    })
}

fn parse_kind(text: &str) -> Option<DecisionKind> {
    DecisionKind::ALL.into_iter().find(|k| k.as_str() == text)
}

/// `GET /api/v1/decisions?pool=&backend=&kind=&limit=`: newest last.
pub fn decisions(engine: &Engine, query: &str) -> Reply {
    let params = match query_params(query) {
        Ok(params) => params,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, &e),
    };
    let (mut pool, mut backend, mut kind, mut limit) = (None, None, None, DEFAULT_DECISIONS);
    for (key, value) in params {
        match key.as_str() {
            "pool" => pool = Some(value),
            "backend" => backend = Some(value),
            "kind" => match parse_kind(&value) {
                Some(k) => kind = Some(k),
                None => {
                    return json_error(
                        StatusCode::BAD_REQUEST,
                        &format!("unknown kind \"{value}\" (share, ejected, readmitted, unhealthy, healthy, override, canary_tripped, canary_readmitted, request, spill, failover, failback, schedule)"),
                    )
                }
            },
            "limit" => match value.parse::<usize>() {
                Ok(n) if (1..=DECISION_LOG_CAPACITY).contains(&n) => limit = n,
                _ => {
                    return json_error(
                        StatusCode::BAD_REQUEST,
                        &format!("limit must be between 1 and {DECISION_LOG_CAPACITY}"),
                    )
                }
            },
            other => return json_error(StatusCode::BAD_REQUEST, &format!("unknown parameter \"{other}\"")),
        }
    }
    let found = engine.decisions().recent(limit, |d| {
        pool.as_ref().is_none_or(|p| &d.pool == p)
            && backend.as_ref().is_none_or(|b| &d.backend == b)
            && kind.is_none_or(|k| d.kind == k)
    });
    let list: Vec<Value> = found
        .iter()
        .map(|d| {
            json!({
                "at": unix_seconds(d.at),
                "at_ms": d.at_ms,
                "pool": d.pool,
                "backend": d.backend,
                "kind": d.kind.as_str(),
                "old_share": d.old_share,
                "new_share": d.new_share,
                "reason": d.reason,
            })
        })
        .collect();
    json(StatusCode::OK, &json!({ "decisions": list }))
}

fn config_value(snapshot: &Snapshot) -> Value {
    serde_json::to_value(ConfigView::new(snapshot)).expect("the configuration view serializes")
}

/// `GET /api/v1/config`: the running configuration as compiled.
pub fn config(engine: &Engine) -> Reply {
    json(
        StatusCode::OK,
        &config_value(&engine.state().load().snapshot),
    )
}

/// `POST /reload`: the file is read and compiled on a blocking thread, so
/// the admin endpoint keeps answering meanwhile.
pub async fn reload(reloader: Option<Arc<Reloader>>) -> Reply {
    let Some(reloader) = reloader else {
        return json_error(
            StatusCode::CONFLICT,
            "reload is not available: started without a configuration file",
        );
    };
    let reloading = reloader.clone();
    let outcome =
        match tokio::task::spawn_blocking(move || reloading.reload("admin POST /reload")).await {
            Ok(outcome) => outcome,
            Err(e) => {
                return json_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("the reload failed: {e}"),
                )
            }
        };
    let generation = || reloader.status().generation;
    match outcome {
        ReloadOutcome::Applied { report, warnings } => json(
            StatusCode::OK,
            &json!({
                "status": "applied",
                "generation": generation(),
                "added": report.added,
                "removed": report.removed,
                "kept": report.kept,
                "warnings": warnings,
            }),
        ),
        ReloadOutcome::Unchanged => json(
            StatusCode::OK,
            &json!({"status": "unchanged", "generation": generation()}),
        ),
        ReloadOutcome::Requested => json(
            StatusCode::ACCEPTED,
            &json!({
                "status": "requested",
                "message": format!("the configuration follows {}: reading it again", reloader.source()),
                "generation": generation(),
            }),
        ),
        ReloadOutcome::Rejected(errors) => json(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({"status": "rejected", "errors": errors.lines(), "generation": generation()}),
        ),
    }
}

/// `POST|DELETE /api/v1/backends/{pool}/{addr}/{drain|undrain|pin}`: the
/// backend and the change asked for, or the status and message refusing
/// it (unknown backend, action or method, bad parameters).
pub fn parse_override(
    engine: &Engine,
    method: &Method,
    path: &str,
    query: &str,
) -> Result<(BackendId, OverrideChange), (StatusCode, String)> {
    let refuse = |status: StatusCode, message: &str| Err((status, message.to_string()));
    let Some(rest) = path.strip_prefix(BACKENDS_PREFIX).and_then(percent_decode) else {
        return refuse(StatusCode::BAD_REQUEST, "invalid percent-encoding in path");
    };
    let Some((id, action)) = rest.rsplit_once('/') else {
        return refuse(
            StatusCode::NOT_FOUND,
            "expected /api/v1/backends/{pool}/{addr}/{drain|undrain|pin}",
        );
    };
    let id = BackendId(id.to_string());
    let change = match (method, action) {
        (&Method::POST, "drain") => OverrideChange::Drain,
        (&Method::POST, "undrain") => OverrideChange::Undrain,
        (&Method::DELETE, "pin") => OverrideChange::Unpin,
        (&Method::POST, "pin") => match pin_params(query) {
            Ok((share, duration)) => OverrideChange::Pin { share, duration },
            Err(e) => return refuse(StatusCode::BAD_REQUEST, &e),
        },
        (_, "drain" | "undrain" | "pin") => {
            return refuse(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => {
            return refuse(
                StatusCode::NOT_FOUND,
                &format!("unknown action \"{action}\" (drain, undrain, pin)"),
            )
        }
    };
    if !engine.has_backend(&id) {
        return refuse(StatusCode::NOT_FOUND, &format!("no backend \"{id}\""));
    }
    Ok((id, change))
}

/// Apply an override to this instance alone (no fleet store).
pub fn apply_override(engine: &Engine, id: &BackendId, change: &OverrideChange) -> Reply {
    let now_ms = clock::now_ms();
    let applied = match change {
        OverrideChange::Drain => engine.set_drained(id, true, now_ms),
        OverrideChange::Undrain => engine.set_drained(id, false, now_ms),
        OverrideChange::Pin { share, duration } => {
            engine.set_pinned(id, Some((*share, *duration)), now_ms)
        }
        OverrideChange::Unpin => engine.set_pinned(id, None, now_ms),
    };
    if !applied {
        return json_error(StatusCode::NOT_FOUND, &format!("no backend \"{id}\""));
    }
    json(
        StatusCode::OK,
        &json!({"backend": id.0, "action": change.action(), "status": "applied"}),
    )
}

/// `share=` (0 < share ≤ 1) and optional `for=` (a duration, default 10m, at most 24h).
fn pin_params(query: &str) -> Result<(f64, Duration), String> {
    let mut share = None;
    let mut duration = DEFAULT_PIN;
    for (key, value) in query_params(query)? {
        match key.as_str() {
            "share" => match value.parse::<f64>() {
                Ok(s) if s > 0.0 && s <= 1.0 => share = Some(s),
                _ => return Err(format!("share must be a number in (0, 1], got \"{value}\"")),
            },
            "for" => match humantime::parse_duration(&value) {
                Ok(d) if !d.is_zero() && d <= MAX_PIN => duration = d,
                _ => {
                    return Err(format!(
                        "for must be a duration between 1ms and 24h, got \"{value}\""
                    ))
                }
            },
            other => return Err(format!("unknown parameter \"{other}\"")),
        }
    }
    share
        .map(|s| (s, duration))
        .ok_or_else(|| "share is required, e.g. ?share=0.3&for=5m".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        assert_eq!(
            percent_decode("api%2F127.0.0.1%3A80").as_deref(),
            Some("api/127.0.0.1:80")
        );
        assert_eq!(percent_decode("a+b").as_deref(), Some("a b"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(
            query_params("a=1&b=&c").unwrap(),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "".into()),
                ("c".into(), "".into())
            ]
        );
        assert!(query_params("a=%ff%fe").is_err());
    }

    #[test]
    fn pin_parameters_are_checked() {
        assert_eq!(
            pin_params("share=0.3&for=5m").unwrap(),
            (0.3, Duration::from_secs(300))
        );
        assert_eq!(pin_params("share=1").unwrap(), (1.0, DEFAULT_PIN));
        for bad in [
            "",
            "share=0",
            "share=1.5",
            "share=x",
            "share=0.2&for=never",
            "share=0.2&for=48h",
            "share=0.2&colour=red",
        ] {
            assert!(pin_params(bad).is_err(), "{bad}");
        }
    }
}
