//! `pools.<name>`: one pool at a time — its policy, timeouts, TLS, backends,
//! regions, tiers, schedules, shadow and read/write split — and the checks
//! that span them.

use super::backends::compile_backends;
use super::fields::Checker;
use super::policy::compile_policy;
use super::schedules::compile_schedules;
use super::shadow::compile_shadow;
use super::upstream_tls::compile_upstream_tls;
use super::write::compile_write;
use crate::config::discovery::BackendTemplate;
use crate::config::raw::*;
use crate::config::round_robin::smooth_wrr_schedule;
use crate::config::snapshot::*;
use std::collections::BTreeMap;

pub(super) fn compile_pools(c: &mut Checker, raw: &BTreeMap<String, RawPool>) -> Vec<Pool> {
    if raw.is_empty() {
        c.error("pools", "at least one pool is required");
    }
    let mut pools = Vec::new();
    for (name, pool) in raw {
        let compiled = compile_pool(c, PoolId(pools.len()), name, pool);
        pools.push(compiled);
    }
    pools
}

/// One pool; the checks that span its sections are made here, in order.
fn compile_pool(c: &mut Checker, id: PoolId, name: &str, pool: &RawPool) -> Pool {
    let path = format!("pools.{name}");
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        c.error(
            &path,
            format!("invalid pool name \"{name}\" (use letters, digits, '-', '_', '.')"),
        );
    }
    let mut policy = compile_policy(c, &path, pool);
    let timeouts = compile_timeouts(c, &path, pool);
    let tls = pool
        .tls
        .as_ref()
        .and_then(|tls| compile_upstream_tls(c, &path, name, tls));
    let h2c = compile_protocol(c, &path, pool);
    let compiled = compile_backends(c, &path, name, pool);
    // Named entries count with what they will resolve to: the checks below
    // hold whatever addresses a name brings.
    let templates = compiled.templates();
    if !templates.is_empty() && templates.iter().all(|t| t.weight == 0) {
        c.error(
            format!("{path}.backends"),
            "every backend has weight 0; at least one must be positive",
        );
    }
    let regions = distinct_regions(templates.iter().map(|t| &t.region));
    let spread = check_regions(c, &path, pool, &policy, &regions);
    policy.schedules = compile_schedules(c, &path, pool, &regions);
    let tiers = priority_tiers(c, &path, &templates, &policy);
    let shadow = compile_pool_shadow(c, &path, pool, &policy, tiers.len(), spread);
    let canaries = templates.iter().any(|t| t.canary.is_some());
    if pool.canary_sticky.is_some() && !canaries {
        c.error(
            format!("{path}.canary_sticky"),
            "the pool has no canary backend",
        );
    }
    let write = pool
        .write
        .as_ref()
        .and_then(|w| compile_write(c, &format!("{path}.write"), w, &regions));
    if pool.consistent_hash.is_some() && pool.canary_sticky.is_some() {
        c.error(
            format!("{path}.consistent_hash"),
            "cannot be combined with canary_sticky (the ring already gives a canary its share of keys)",
        );
    }
    let weights: Vec<u32> = compiled.fixed.iter().map(|b| b.weight).collect();
    Pool {
        id,
        name: name.to_string(),
        policy,
        timeouts,
        schedule: smooth_wrr_schedule(&weights),
        regions,
        tiers,
        write,
        shadow,
        tls,
        h2c,
        backends: compiled.fixed,
        named: compiled.named,
    }
}

/// `protocol`: `http1` or `h2c` to plain backends; over TLS, `tls.alpn`
/// says it, so `h2c` beside `tls` is refused.
fn compile_protocol(c: &mut Checker, path: &str, pool: &RawPool) -> bool {
    let h2c = match pool.protocol.as_deref().map(str::trim) {
        None | Some("http1") => false,
        Some("h2c") => true,
        Some(other) => {
            c.error(
                format!("{path}.protocol"),
                format!("unknown protocol \"{other}\" (expected http1 or h2c)"),
            );
            return false;
        }
    };
    if h2c && pool.tls.is_some() {
        c.error(
            format!("{path}.protocol"),
            "h2c is HTTP/2 over plain TCP; for HTTP/2 over TLS set tls.alpn: h2",
        );
        return false;
    }
    h2c
}

fn compile_timeouts(c: &mut Checker, path: &str, pool: &RawPool) -> UpstreamTimeouts {
    UpstreamTimeouts {
        connect: c.duration(
            &format!("{path}.connect_timeout"),
            pool.connect_timeout.as_deref(),
            DEFAULT_TIMEOUTS.connect,
        ),
        read: c.duration(
            &format!("{path}.read_timeout"),
            pool.read_timeout.as_deref(),
            DEFAULT_TIMEOUTS.read,
        ),
        write: c.duration(
            &format!("{path}.write_timeout"),
            pool.write_timeout.as_deref(),
            DEFAULT_TIMEOUTS.write,
        ),
        idle: c.duration(
            &format!("{path}.idle_timeout"),
            pool.idle_timeout.as_deref(),
            DEFAULT_TIMEOUTS.idle,
        ),
    }
}

/// How a pool's backends spread over regions, as the region checks need it.
#[derive(Clone, Copy)]
struct RegionSpread {
    /// Named regions among the backends.
    named: usize,
    /// Whether the live policy moves traffic between regions.
    moves_traffic: bool,
}

/// Spillover and region caps need two regions; `pools.X.regions` must name
/// regions the backends are in.
fn check_regions(
    c: &mut Checker,
    path: &str,
    pool: &RawPool,
    policy: &PoolPolicy,
    regions: &[Option<String>],
) -> RegionSpread {
    let named = regions.iter().flatten().count();
    let moves_traffic = policy.spillover.is_some() || policy.region_max_share < 1.0;
    if moves_traffic && named < 2 {
        c.error(
            path,
            "spillover and region_max_share need backends in at least two regions",
        );
    }
    for region in pool.regions.keys() {
        if !regions.iter().flatten().any(|r| r == region) {
            c.error(
                format!("{path}.regions.{region}"),
                format!("no backend of the pool is in region \"{region}\""),
            );
        }
    }
    RegionSpread {
        named,
        moves_traffic,
    }
}

/// The distinct backend priorities, lowest first; more than one needs an
/// adaptive mode.
fn priority_tiers(
    c: &mut Checker,
    path: &str,
    templates: &[BackendTemplate],
    policy: &PoolPolicy,
) -> Vec<u32> {
    let tiers = distinct_tiers(templates.iter().map(|t| t.priority));
    if tiers.len() > 1 && !policy.mode.is_adaptive() {
        c.error(
            format!("{path}.mode"),
            format!(
                "priority tiers need an adaptive mode (latency or capacity); {} ignores them",
                policy.mode.as_str()
            ),
        );
    }
    tiers
}

/// The shadow policy, checked against the pool's tiers and regions. What the
/// pool itself gets wrong is reported once, at its own path.
fn compile_pool_shadow(
    c: &mut Checker,
    path: &str,
    pool: &RawPool,
    policy: &PoolPolicy,
    tier_count: usize,
    spread: RegionSpread,
) -> Option<ShadowPolicy> {
    let shadow_path = format!("{path}.shadow");
    let shadow = compile_shadow(c, &shadow_path, pool.shadow.as_ref()?, policy);
    let candidate = &shadow.policy;
    let live_round_robin = policy.mode == BalanceMode::RoundRobin;
    if tier_count > 1 && candidate.mode == BalanceMode::RoundRobin && !live_round_robin {
        c.error(
            format!("{shadow_path}.mode"),
            "priority tiers need an adaptive mode (latency or capacity); round_robin ignores them",
        );
    }
    if candidate.region_max_share < 1.0 && !spread.moves_traffic && spread.named < 2 {
        c.error(
            format!("{shadow_path}.region_max_share"),
            "region_max_share needs backends in at least two regions",
        );
    }
    Some(shadow)
}

/// The distinct regions among `regions`, sorted (`None`, no region, first).
pub(in crate::config) fn distinct_regions<'a>(
    regions: impl IntoIterator<Item = &'a Option<String>>,
) -> Vec<Option<String>> {
    let mut regions: Vec<Option<String>> = regions.into_iter().cloned().collect();
    regions.sort();
    regions.dedup();
    regions
}

/// The distinct priority tiers among `priorities`, highest (0) first.
pub(in crate::config) fn distinct_tiers(priorities: impl IntoIterator<Item = u32>) -> Vec<u32> {
    let mut tiers: Vec<u32> = priorities.into_iter().collect();
    tiers.sort_unstable();
    tiers.dedup();
    tiers
}
