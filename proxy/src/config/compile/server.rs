//! `server`: threads, drain timeout, client keep-alive and header timeouts,
//! client connection limits, HTTP/2 stream limit, keepalive pool, upgrade
//! socket, the request size limits and the access log's fields and output.

use super::fields::Checker;
use crate::config::access_log::{AccessField, AccessFields, AccessOutput};
use crate::config::raw::*;
use crate::config::snapshot::*;
use std::path::PathBuf;

/// The most headers Pingora parses; a request with more is refused by it.
const PARSER_MAX_HEADERS: usize = 256;

/// The largest connection limit accepted (well above any open-file limit).
const MAX_CONNECTIONS_CEILING: usize = 10_000_000;

pub(super) fn compile_server(c: &mut Checker, raw: Option<&RawServer>) -> ServerSettings {
    let default_threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let Some(raw) = raw else {
        return ServerSettings {
            threads: default_threads,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            max_connections: None,
            max_client_connections: 0,
            h2_max_concurrent_streams: DEFAULT_H2_MAX_CONCURRENT_STREAMS,
            upstream_keepalive_pool_size: DEFAULT_KEEPALIVE_POOL_SIZE,
            upgrade_sock: PathBuf::from(DEFAULT_UPGRADE_SOCK),
            limits: DEFAULT_LIMITS,
            access_fields: AccessFields::default(),
            access_output: AccessOutput::Stderr,
        };
    };
    let threads = raw.threads.unwrap_or(default_threads);
    if threads == 0 || threads > 1024 {
        c.error("server.threads", "must be between 1 and 1024");
    }
    ServerSettings {
        threads,
        drain_timeout: c.duration_or_zero(
            "server.drain_timeout",
            raw.drain_timeout.as_deref(),
            DEFAULT_DRAIN_TIMEOUT,
        ),
        keepalive_timeout: compile_keepalive_timeout(c, raw.keepalive_timeout.as_deref()),
        header_timeout: compile_header_timeout(c, raw.header_timeout.as_deref()),
        max_connections: match raw.max_connections {
            Some(n) if !(1..=MAX_CONNECTIONS_CEILING).contains(&n) => {
                c.error(
                    "server.max_connections",
                    format!("{n} is out of range (allowed 1 to {MAX_CONNECTIONS_CEILING})"),
                );
                None
            }
            n => n,
        },
        max_client_connections: match raw.max_client_connections {
            Some(n) if n > MAX_CONNECTIONS_CEILING => {
                c.error(
                    "server.max_client_connections",
                    format!("{n} is out of range (allowed 0, meaning no limit, to {MAX_CONNECTIONS_CEILING})"),
                );
                0
            }
            n => n.unwrap_or(0),
        },
        h2_max_concurrent_streams: match raw.h2_max_concurrent_streams {
            None => DEFAULT_H2_MAX_CONCURRENT_STREAMS,
            Some(n) if (1..=1000).contains(&n) => n,
            Some(n) => {
                c.error(
                    "server.h2_max_concurrent_streams",
                    format!("{n} is out of range (allowed 1 to 1000)"),
                );
                DEFAULT_H2_MAX_CONCURRENT_STREAMS
            }
        },
        upstream_keepalive_pool_size: raw
            .upstream_keepalive_pool_size
            .unwrap_or(DEFAULT_KEEPALIVE_POOL_SIZE),
        upgrade_sock: match raw.upgrade_sock.as_deref() {
            None => PathBuf::from(DEFAULT_UPGRADE_SOCK),
            Some("") => {
                c.error("server.upgrade_sock", "must not be empty");
                PathBuf::from(DEFAULT_UPGRADE_SOCK)
            }
            Some(path) => c.resolve(path),
        },
        limits: compile_limits(c, raw.limits.as_ref()),
        access_fields: compile_access_fields(c, raw.access_log.as_ref()),
        access_output: match raw.access_log.as_ref().and_then(|a| a.output.as_deref()) {
            None | Some("stderr") => AccessOutput::Stderr,
            Some("") => {
                c.error(
                    "server.access_log.output",
                    "must be stderr or the path of a file",
                );
                AccessOutput::Stderr
            }
            Some(path) => AccessOutput::File(c.resolve(path)),
        },
    }
}

/// The named fields: known, each once, at least one.
fn compile_access_fields(c: &mut Checker, raw: Option<&RawAccessLog>) -> AccessFields {
    let Some(names) = raw.and_then(|raw| raw.fields.as_ref()) else {
        return AccessFields::default();
    };
    let path = "server.access_log.fields";
    if names.is_empty() {
        c.error(path, "must name at least one field");
        return AccessFields::default();
    }
    let mut fields = AccessFields::empty();
    for name in names {
        match AccessField::named(name) {
            Some(field) if fields.has(field) => {
                c.error(path, format!("\"{name}\" is named twice"));
            }
            Some(field) => fields.insert(field),
            None => {
                let known: Vec<&str> = AccessField::ALL.iter().map(|f| f.name()).collect();
                c.error(
                    path,
                    format!("unknown field \"{name}\" (known: {})", known.join(", ")),
                );
            }
        }
    }
    fields
}

/// At least a second, and whole seconds (Pingora counts them so): a
/// fraction is rounded up.
fn compile_keepalive_timeout(c: &mut Checker, raw: Option<&str>) -> std::time::Duration {
    let path = "server.keepalive_timeout";
    let timeout = c.duration(path, raw, DEFAULT_KEEPALIVE_TIMEOUT);
    if timeout < std::time::Duration::from_secs(1) {
        c.error(path, "must be at least 1s");
        return DEFAULT_KEEPALIVE_TIMEOUT;
    }
    std::time::Duration::from_secs(timeout.as_secs_f64().ceil() as u64)
}

/// Between 100ms and an hour: shorter cuts off any real client, longer is
/// no defence against a client that dribbles its header.
fn compile_header_timeout(c: &mut Checker, raw: Option<&str>) -> std::time::Duration {
    let path = "server.header_timeout";
    let timeout = c.duration(path, raw, DEFAULT_HEADER_TIMEOUT);
    let allowed = std::time::Duration::from_millis(100)..=std::time::Duration::from_secs(3600);
    if !allowed.contains(&timeout) {
        c.error(path, "must be between 100ms and 1h");
        return DEFAULT_HEADER_TIMEOUT;
    }
    timeout
}

/// A request body limit: 1 byte to 1 TiB.
pub(super) fn body_limit(c: &mut Checker, path: &str, value: Option<u64>) -> Option<u64> {
    match value {
        Some(bytes) if !(1..=1 << 40).contains(&bytes) => {
            c.error(
                path,
                format!("{bytes} is out of range (allowed 1 to {})", 1u64 << 40),
            );
            None
        }
        other => other,
    }
}

fn compile_limits(c: &mut Checker, raw: Option<&RawLimits>) -> RequestLimits {
    let d = DEFAULT_LIMITS;
    let Some(raw) = raw else { return d };
    let max_body_bytes = body_limit(c, "server.limits.max_body_bytes", raw.max_body_bytes);
    let mut bounded =
        |key: &str, value: Option<usize>, default: usize, min: usize, max: usize| match value {
            None => default,
            Some(v) if (min..=max).contains(&v) => v,
            Some(v) => {
                c.error(
                    format!("server.limits.{key}"),
                    format!("{v} is out of range (allowed {min} to {max})"),
                );
                default
            }
        };
    RequestLimits {
        max_body_bytes,
        max_uri_bytes: bounded(
            "max_uri_bytes",
            raw.max_uri_bytes,
            d.max_uri_bytes,
            256,
            1 << 20,
        ),
        max_headers: bounded(
            "max_headers",
            raw.max_headers,
            d.max_headers,
            8,
            PARSER_MAX_HEADERS,
        ),
        max_header_bytes: bounded(
            "max_header_bytes",
            raw.max_header_bytes,
            d.max_header_bytes,
            1024,
            1 << 20,
        ),
    }
}
