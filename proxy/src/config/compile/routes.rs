//! `routes`: names, pools, match conditions and event budgets.

use super::edits::{compile_edits, compile_rate_limit};
use super::fields::fraction;
use super::fields::Checker;
use crate::config::raw::*;
use crate::config::redirects::{LocationTemplate, Redirect, REDIRECT_STATUSES};
use crate::config::routes::{HostMatch, Route, RouteTable};
use crate::config::snapshot::*;
use crate::config::unknown_keys::did_you_mean;
use http::{HeaderName, HeaderValue, Method};
use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub(super) fn compile_routes(c: &mut Checker, raw: &[RawRoute], pools: &[Pool]) -> RouteTable {
    if raw.is_empty() {
        c.error("routes", "at least one route is required");
    }
    let mut names = HashSet::new();
    let mut routes = Vec::new();
    for (i, route) in raw.iter().enumerate() {
        let path = format!("routes[{i}]");
        let name = route.name.clone().unwrap_or_else(|| format!("route-{i}"));
        if !names.insert(name.clone()) {
            c.error(
                format!("{path}.name"),
                format!("duplicate route name \"{name}\""),
            );
        }
        let redirect = route
            .redirect
            .as_ref()
            .and_then(|raw| compile_redirect(c, &format!("{path}.redirect"), raw));
        let pool = match (&route.pool, &route.redirect) {
            (Some(name), _) => {
                let pool = pools.iter().find(|p| &p.name == name).map(|p| p.id);
                if pool.is_none() {
                    let known: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
                    c.error(
                        format!("{path}.pool"),
                        format!(
                            "unknown pool \"{name}\" (defined pools: {}){}",
                            known.join(", "),
                            did_you_mean(name, known.iter().copied())
                        ),
                    );
                }
                pool
            }
            (None, Some(_)) => None,
            (None, None) => {
                c.error(format!("{path}.pool"), "required (or a redirect)");
                None
            }
        };
        if route.redirect.is_some() {
            let proxying = [
                ("pool", route.pool.is_some()),
                ("budget", route.budget.is_some()),
                ("request_headers", route.request_headers.is_some()),
                ("response_headers", route.response_headers.is_some()),
                ("rewrite", route.rewrite.is_some()),
                ("max_body_bytes", route.max_body_bytes.is_some()),
            ];
            for (key, set) in proxying {
                if set {
                    c.error(
                        format!("{path}.{key}"),
                        "a route with a redirect answers by itself: it takes no pool, budget, header edits, rewrite or body limit",
                    );
                }
            }
        }
        let m = &route.matcher;
        let host = m
            .host
            .as_deref()
            .and_then(|h| compile_host(c, &format!("{path}.match.host"), h));
        if let Some(prefix) = &m.path_prefix {
            if !prefix.starts_with('/') {
                c.error(
                    format!("{path}.match.path_prefix"),
                    format!("must start with '/', got \"{prefix}\""),
                );
            }
        }
        let methods = compile_methods(c, &path, m.methods.as_deref());
        let headers = compile_headers(c, &path, &m.headers);
        let budget = match (&route.budget, pool) {
            (Some(budget), Some(pool)) => {
                compile_budget(c, &format!("{path}.budget"), budget, &pools[pool.0])
            }
            _ => None,
        };
        let edits = compile_edits(
            c,
            &path,
            route.request_headers.as_ref(),
            route.response_headers.as_ref(),
            route.rewrite.as_ref(),
            m.path_prefix.as_deref(),
        );
        if pool.is_some() || redirect.is_some() {
            routes.push(Route {
                name,
                host,
                path_prefix: m.path_prefix.clone(),
                methods,
                headers,
                pool,
                budget,
                edits,
                redirect,
                max_body_bytes: super::server::body_limit(
                    c,
                    &format!("{path}.max_body_bytes"),
                    route.max_body_bytes,
                ),
                rate_limit: route.rate_limit.as_ref().and_then(|raw| {
                    compile_rate_limit(c, &format!("{path}.rate_limit"), raw).map(Arc::new)
                }),
            });
        }
    }
    RouteTable::new(routes)
}

/// `redirect`: a status among [`REDIRECT_STATUSES`] and a `Location` template.
fn compile_redirect(c: &mut Checker, path: &str, raw: &RawRedirect) -> Option<Redirect> {
    let status = raw.status.unwrap_or(301);
    if !REDIRECT_STATUSES.contains(&status) {
        c.error(
            format!("{path}.status"),
            format!("{status} is not a redirect status (allowed: 301, 302, 303, 307, 308)"),
        );
    }
    let visible = !raw.to.is_empty() && raw.to.bytes().all(|b| b.is_ascii_graphic());
    if !visible {
        c.error(
            format!("{path}.to"),
            format!(
                "must be a URL of visible ASCII characters, got \"{}\"",
                raw.to
            ),
        );
        return None;
    }
    match LocationTemplate::parse(&raw.to) {
        Ok(location) => Some(Redirect { status, location }),
        Err(message) => {
            c.error(format!("{path}.to"), message);
            None
        }
    }
}

/// `match.methods`: HTTP methods; an empty list is an error.
fn compile_methods(c: &mut Checker, path: &str, raw: Option<&[String]>) -> Option<Vec<Method>> {
    let methods = raw.map(|methods| {
        methods
            .iter()
            .enumerate()
            .filter_map(|(j, text)| {
                match Method::from_bytes(text.trim().to_ascii_uppercase().as_bytes()) {
                    Ok(method) => Some(method),
                    Err(_) => {
                        c.error(
                            format!("{path}.match.methods[{j}]"),
                            format!("invalid HTTP method \"{text}\""),
                        );
                        None
                    }
                }
            })
            .collect::<Vec<_>>()
    });
    if methods.as_ref().is_some_and(Vec::is_empty) && raw.is_some_and(<[String]>::is_empty) {
        c.error(
            format!("{path}.match.methods"),
            "must not be empty (omit it to match every method)",
        );
    }
    methods
}

/// `match.headers`: exact header values.
fn compile_headers(
    c: &mut Checker,
    path: &str,
    raw: &BTreeMap<String, String>,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = Vec::new();
    for (header, value) in raw {
        let header_path = format!("{path}.match.headers.{header}");
        match (HeaderName::from_str(header), HeaderValue::from_str(value)) {
            (Ok(n), Ok(v)) => headers.push((n, v)),
            (Err(_), _) => c.error(header_path, format!("invalid header name \"{header}\"")),
            (_, Err(_)) => c.error(header_path, format!("invalid header value \"{value}\"")),
        }
    }
    headers
}

/// An event budget; its pool's backends must all have a capacity.
fn compile_budget(
    c: &mut Checker,
    path: &str,
    raw: &RawBudget,
    pool: &Pool,
) -> Option<BudgetPolicy> {
    let region_share = fraction(
        c,
        format!("{path}.region_share"),
        Some(raw.region_share),
        1.0,
        0.01..=1.0,
    );
    let over = match raw.over.as_deref() {
        None | Some("shed") => OverBudget::Shed,
        Some("spill") => OverBudget::Spill,
        Some(other) => {
            c.error(
                format!("{path}.over"),
                format!("unknown action \"{other}\" (supported: shed, spill)"),
            );
            OverBudget::Shed
        }
    };
    let retry_after_path = format!("{path}.retry_after");
    let retry_after = c.duration(
        &retry_after_path,
        raw.retry_after.as_deref(),
        DEFAULT_RETRY_AFTER,
    );
    if retry_after.subsec_nanos() != 0 || retry_after > Duration::from_secs(3600) {
        c.error(
            retry_after_path,
            "must be whole seconds from 1s to 1h (it is sent as Retry-After)",
        );
    }
    let uncapped: Vec<&str> = pool
        .backends
        .iter()
        .filter(|b| b.capacity.is_none())
        .map(|b| b.id.0.as_str())
        .collect();
    if !uncapped.is_empty() {
        c.error(
            path,
            format!(
                "a budget is a share of capacity: give every backend of pool \"{}\" a capacity (missing: {})",
                pool.name,
                uncapped.join(", ")
            ),
        );
        return None;
    }
    if over == OverBudget::Spill && pool.regions.iter().flatten().count() < 2 {
        c.error(
            format!("{path}.over"),
            format!(
                "spill needs the pool \"{}\" to have backends in at least two regions",
                pool.name
            ),
        );
    }
    Some(BudgetPolicy {
        region_share,
        over,
        retry_after,
    })
}

fn compile_host(c: &mut Checker, path: &str, host: &str) -> Option<HostMatch> {
    let lower = host.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix('.').unwrap_or(&lower);
    let (bare, wildcard) = match lower.strip_prefix("*.") {
        Some(rest) => (rest.to_string(), true),
        None => (lower.to_string(), false),
    };
    let valid = !bare.is_empty()
        && bare
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b));
    if !valid {
        c.error(path, format!("invalid host \"{host}\" (expected a name like api.example.com or *.example.com, without port)"));
        return None;
    }
    Some(if wildcard {
        HostMatch::Subdomain(format!(".{bare}"))
    } else {
        HostMatch::Exact(bare)
    })
}
