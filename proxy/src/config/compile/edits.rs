//! `routes[].request_headers`, `response_headers`, `rewrite` and
//! `rate_limit`: header
//! names and values, the prefix a path rewrite replaces, the regex (bounded
//! in size) and the host, all checked here so the request path never fails
//! on them.

use super::fields::Checker;
use crate::config::rate_limits::{RateKeySource, RateLimit};
use crate::config::raw::{RawHeaderEdits, RawRateLimit, RawRateLimitKey, RawRewrite};
use crate::config::route_edits::{HeaderEdits, PathRewrite, Rewrite, RouteEdits};
use http::{HeaderName, HeaderValue};
use regex::RegexBuilder;
use std::str::FromStr;

/// Longest regex pattern accepted, in characters.
const MAX_PATTERN_LEN: usize = 1024;
/// Most memory one compiled regex may take.
const MAX_REGEX_BYTES: usize = 1 << 20;

/// Headers that describe the message or the connection: Ballast and
/// Pingora own them, so no edit may touch them (`Host`: `rewrite.host`).
const PROTECTED: [&str; 9] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
];

/// The edits of the route at `path` (`routes[i]`), whose match has `prefix`.
pub(super) fn compile_edits(
    c: &mut Checker,
    path: &str,
    request_headers: Option<&RawHeaderEdits>,
    response_headers: Option<&RawHeaderEdits>,
    rewrite: Option<&RawRewrite>,
    prefix: Option<&str>,
) -> RouteEdits {
    RouteEdits {
        request_headers: request_headers
            .map(|raw| header_edits(c, &format!("{path}.request_headers"), raw))
            .unwrap_or_default(),
        response_headers: response_headers
            .map(|raw| header_edits(c, &format!("{path}.response_headers"), raw))
            .unwrap_or_default(),
        rewrite: rewrite
            .map(|raw| compile_rewrite(c, &format!("{path}.rewrite"), raw, prefix))
            .unwrap_or_default(),
    }
}

fn header_edits(c: &mut Checker, path: &str, raw: &RawHeaderEdits) -> HeaderEdits {
    let named = |c: &mut Checker, key: String, name: &str| -> Option<HeaderName> {
        let Ok(header) = HeaderName::from_str(name) else {
            c.error(key, format!("invalid header name \"{name}\""));
            return None;
        };
        if PROTECTED.contains(&header.as_str()) {
            let hint = if header == http::header::HOST {
                " (use rewrite.host)"
            } else {
                ""
            };
            c.error(
                key,
                format!(
                    "\"{name}\" cannot be edited: it describes the message or the connection{hint}"
                ),
            );
            return None;
        }
        Some(header)
    };
    let pairs = |c: &mut Checker, list: &str, map: &std::collections::BTreeMap<String, String>| {
        let mut out = Vec::new();
        for (name, value) in map {
            let key = format!("{path}.{list}.{name}");
            let Some(header) = named(c, key.clone(), name) else {
                continue;
            };
            match HeaderValue::from_str(value) {
                Ok(value) => out.push((header, value)),
                Err(_) => c.error(
                    key,
                    format!(
                        "invalid header value \"{value}\" (visible ASCII, spaces and tabs only)"
                    ),
                ),
            }
        }
        out
    };
    let set = pairs(c, "set", &raw.set);
    let add = pairs(c, "add", &raw.add);
    let remove = raw
        .remove
        .iter()
        .enumerate()
        .filter_map(|(i, name)| named(c, format!("{path}.remove[{i}]"), name))
        .collect();
    HeaderEdits { remove, set, add }
}

fn compile_rewrite(c: &mut Checker, path: &str, raw: &RawRewrite, prefix: Option<&str>) -> Rewrite {
    let path_rewrite = match (&raw.path_prefix, &raw.regex) {
        (Some(_), Some(_)) => {
            c.error(path, "set path_prefix or regex, not both");
            None
        }
        (Some(replacement), None) => {
            let key = format!("{path}.path_prefix");
            match prefix {
                None => {
                    c.error(
                        key,
                        "needs the route's match.path_prefix (the part it replaces)",
                    );
                    None
                }
                Some(_) if !valid_path(replacement) => {
                    c.error(key, format!("must be a path starting with '/' (no spaces, '?' or '#'), got \"{replacement}\""));
                    None
                }
                Some(matched) => Some(PathRewrite::Prefix {
                    matched: matched.to_string(),
                    replacement: replacement.clone(),
                }),
            }
        }
        (None, Some(regex)) => {
            let key = format!("{path}.regex");
            let pattern = if regex.pattern.len() > MAX_PATTERN_LEN {
                c.error(
                    format!("{key}.pattern"),
                    format!("is longer than {MAX_PATTERN_LEN} characters"),
                );
                None
            } else {
                match RegexBuilder::new(&regex.pattern)
                    .size_limit(MAX_REGEX_BYTES)
                    .build()
                {
                    Ok(pattern) => Some(pattern),
                    Err(e) => {
                        c.error(format!("{key}.pattern"), format!("invalid regex: {e}"));
                        None
                    }
                }
            };
            let literal = regex.replacement.replace(['$', '{', '}'], "");
            if !literal.is_empty() && !valid_path(&format!("/{literal}")) {
                c.error(
                    format!("{key}.replacement"),
                    format!(
                        "may hold only path characters (no spaces, '?' or '#'), got \"{}\"",
                        regex.replacement
                    ),
                );
            }
            pattern.map(|pattern| PathRewrite::Regex {
                pattern,
                replacement: regex.replacement.clone(),
            })
        }
        (None, None) => None,
    };
    let host = raw.host.as_deref().and_then(|host| {
        let valid = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b));
        match HeaderValue::from_str(host) {
            Ok(value) if valid => Some(value),
            _ => {
                c.error(format!("{path}.host"), format!("invalid host \"{host}\" (expected a name like api.internal, optionally with :port)"));
                None
            }
        }
    });
    Rewrite {
        path: path_rewrite,
        host,
    }
}

/// `rate_limit`: a positive rate, a burst of at least one, and the key.
pub(super) fn compile_rate_limit(
    c: &mut Checker,
    path: &str,
    raw: &RawRateLimit,
) -> Option<RateLimit> {
    let rate = raw.requests_per_second;
    let mut valid = true;
    if !(0.001..=1_000_000.0).contains(&rate) {
        c.error(
            format!("{path}.requests_per_second"),
            format!("{rate} is out of range (allowed 0.001 to 1000000)"),
        );
        valid = false;
    }
    let burst = raw
        .burst
        .unwrap_or(rate.ceil().clamp(1.0, 1_000_000.0) as u32);
    if !(1..=1_000_000).contains(&burst) {
        c.error(
            format!("{path}.burst"),
            format!("{burst} is out of range (allowed 1 to 1000000)"),
        );
        valid = false;
    }
    let key = match &raw.key {
        None => RateKeySource::ClientAddress,
        Some(RawRateLimitKey::Named(name)) if name == "client_address" => {
            RateKeySource::ClientAddress
        }
        Some(RawRateLimitKey::Named(other)) => {
            c.error(
                format!("{path}.key"),
                format!("unknown key \"{other}\" (use client_address or {{header: NAME}})"),
            );
            return None;
        }
        Some(RawRateLimitKey::Header(key)) => match HeaderName::from_str(&key.header) {
            Ok(name) => RateKeySource::Header(name),
            Err(_) => {
                c.error(
                    format!("{path}.key.header"),
                    format!("invalid header name \"{}\"", key.header),
                );
                return None;
            }
        },
    };
    if !valid {
        return None;
    }
    RateLimit::new(rate, burst, key)
}

/// A path a request target may carry: starts with `/`, visible ASCII
/// without `?` or `#`.
fn valid_path(text: &str) -> bool {
    text.starts_with('/')
        && text
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#')
}
