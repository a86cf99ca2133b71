//! `pools.<name>.write`: the read/write split and read-your-writes pinning.

use super::fields::valid_cookie_name;
use super::fields::Checker;
use crate::config::raw::*;
use crate::config::snapshot::*;
use http::{HeaderName, Method};
use std::str::FromStr;
use std::time::Duration;

const MIN_PIN_TTL: Duration = Duration::from_millis(10);
const MAX_PIN_TTL: Duration = Duration::from_secs(3600);

/// The read/write split of a pool whose backends are in `regions`.
pub(super) fn compile_write(
    c: &mut Checker,
    path: &str,
    raw: &RawWrite,
    regions: &[Option<String>],
) -> Option<WriteSplit> {
    let known = regions.iter().flatten().any(|r| *r == raw.region);
    if !known {
        let named: Vec<&str> = regions.iter().flatten().map(String::as_str).collect();
        c.error(
            format!("{path}.region"),
            format!(
                "no backend of the pool is in region \"{}\" (the pool's regions: {})",
                raw.region,
                if named.is_empty() {
                    "none".to_string()
                } else {
                    named.join(", ")
                }
            ),
        );
    }
    let methods = compile_write_methods(c, path, raw.methods.as_deref());
    for (i, prefix) in raw.path_prefixes.iter().enumerate() {
        if !prefix.starts_with('/') {
            c.error(
                format!("{path}.path_prefixes[{i}]"),
                format!("must start with '/', got \"{prefix}\""),
            );
        }
    }
    let header = raw.header.as_deref().and_then(|name| {
        let parsed = HeaderName::from_str(name);
        if parsed.is_err() {
            c.error(
                format!("{path}.header"),
                format!("invalid header name \"{name}\""),
            );
        }
        parsed.ok()
    });
    let read_your_writes = raw
        .read_your_writes
        .as_ref()
        .and_then(|r| compile_read_your_writes(c, &format!("{path}.read_your_writes"), r));
    known.then(|| WriteSplit {
        region: raw.region.clone(),
        plan: RegionPlan {
            order: vec![raw.region.clone()],
            fenced: true,
        },
        methods,
        path_prefixes: raw.path_prefixes.clone(),
        header,
        read_your_writes,
    })
}

/// The methods that count as writes; omitted: POST, PUT, PATCH, DELETE.
fn compile_write_methods(c: &mut Checker, path: &str, methods: Option<&[String]>) -> Vec<Method> {
    match methods {
        None => DEFAULT_WRITE_METHODS.to_vec(),
        Some([]) => {
            c.error(
                format!("{path}.methods"),
                "must not be empty (omit it for POST, PUT, PATCH, DELETE)",
            );
            Vec::new()
        }
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(i, text)| {
                let method = Method::from_bytes(text.trim().to_ascii_uppercase().as_bytes());
                if method.is_err() {
                    c.error(
                        format!("{path}.methods[{i}]"),
                        format!("invalid HTTP method \"{text}\""),
                    );
                }
                method.ok()
            })
            .collect(),
    }
}

fn compile_read_your_writes(
    c: &mut Checker,
    path: &str,
    raw: &RawReadYourWrites,
) -> Option<ReadYourWrites> {
    let ttl_path = format!("{path}.ttl");
    let ttl = c.duration(&ttl_path, raw.ttl.as_deref(), DEFAULT_PIN_TTL);
    if !(MIN_PIN_TTL..=MAX_PIN_TTL).contains(&ttl) {
        c.error(ttl_path, "must be between 10ms and 1h");
    }
    let carrier = match (&raw.cookie, &raw.header) {
        (_, None) => {
            let name = raw.cookie.as_deref().unwrap_or(DEFAULT_PIN_COOKIE);
            if !valid_cookie_name(name) {
                c.error(
                    format!("{path}.cookie"),
                    format!("invalid cookie name \"{name}\""),
                );
                return None;
            }
            PinCarrier::Cookie(name.to_string())
        }
        (None, Some(name)) => match HeaderName::from_str(name) {
            Ok(name) => PinCarrier::Header(name),
            Err(_) => {
                c.error(
                    format!("{path}.header"),
                    format!("invalid header name \"{name}\""),
                );
                return None;
            }
        },
        (Some(_), Some(_)) => {
            c.error(path, "set at most one of cookie or header");
            return None;
        }
    };
    Some(ReadYourWrites { ttl, carrier })
}
