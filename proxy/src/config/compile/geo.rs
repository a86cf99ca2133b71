//! `regions` and `geo`: fallbacks, client-region rules and residency fences,
//! compiled into one plan per client region.

use super::fields::parse_net;
use super::fields::Checker;
use crate::config::raw::*;
use crate::config::snapshot::*;
use crate::config::unknown_keys::did_you_mean;
use http::HeaderName;
use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;

fn valid_region_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Regions, client-region rules and fences. Backend regions must be declared
/// under `regions` once any region is.
pub(super) fn compile_geo(
    c: &mut Checker,
    regions: &BTreeMap<String, RawRegion>,
    geo: Option<&RawGeo>,
    (raw_pools, pools): (&BTreeMap<String, RawPool>, &[Pool]),
) -> Option<Geo> {
    check_regions(c, regions, raw_pools);
    let geo = geo?;
    if regions.is_empty() {
        c.error(
            "geo",
            "geo rules need regions: declare them under `regions`",
        );
        return None;
    }
    let rules = compile_client_rules(c, regions, geo);
    // A pool's regions are those of all its entries, named by DNS or not.
    let regions_with_backends: HashSet<&str> = pools
        .iter()
        .flat_map(|p| p.regions.iter().flatten().map(String::as_str))
        .collect();
    check_fallbacks_have_backends(c, regions, &regions_with_backends);
    let fences = compile_fences(c, regions, geo, &regions_with_backends);
    Some(Geo {
        rules,
        plans: region_plans(regions, &fences),
    })
}

/// Region names, their fallbacks, and the regions backends name.
fn check_regions(
    c: &mut Checker,
    regions: &BTreeMap<String, RawRegion>,
    pools: &BTreeMap<String, RawPool>,
) {
    for (name, region) in regions {
        let path = format!("regions.{name}");
        if !valid_region_name(name) {
            c.error(
                &path,
                format!("invalid region name \"{name}\" (use letters, digits, '-', '_', '.')"),
            );
        }
        let mut seen = HashSet::new();
        for (i, fallback) in region.fallback.iter().enumerate() {
            let fallback_path = format!("{path}.fallback[{i}]");
            if !regions.contains_key(fallback) {
                c.error(
                    fallback_path,
                    format!(
                        "unknown region \"{fallback}\"{}",
                        did_you_mean(fallback, regions.keys().map(String::as_str))
                    ),
                );
            } else if fallback == name {
                c.error(fallback_path, "a region cannot fall back to itself");
            } else if !seen.insert(fallback) {
                c.error(fallback_path, format!("\"{fallback}\" is listed twice"));
            }
        }
    }
    if regions.is_empty() {
        return;
    }
    for (name, pool) in pools {
        for (i, backend) in pool.backends.iter().enumerate() {
            if let Some(region) = &backend.region {
                if !regions.contains_key(region) {
                    c.error(
                        format!("pools.{name}.backends[{i}].region"),
                        format!(
                            "unknown region \"{region}\" (declare it under regions){}",
                            did_you_mean(region, regions.keys().map(String::as_str))
                        ),
                    );
                }
            }
        }
    }
}

/// Whether `region` is declared; reports it at `path` when not.
fn known(
    c: &mut Checker,
    regions: &BTreeMap<String, RawRegion>,
    path: String,
    region: &str,
) -> bool {
    let ok = regions.contains_key(region);
    if !ok {
        let hint = did_you_mean(region, regions.keys().map(String::as_str));
        c.error(path, format!("unknown region \"{region}\"{hint}"));
    }
    ok
}

/// `geo.client_region`: header, CIDR and default rules, in order.
fn compile_client_rules(
    c: &mut Checker,
    regions: &BTreeMap<String, RawRegion>,
    geo: &RawGeo,
) -> Vec<RegionRule> {
    let mut rules = Vec::new();
    for (i, rule) in geo.client_region.iter().enumerate() {
        let path = format!("geo.client_region[{i}]");
        if rules.iter().any(|r| matches!(r, RegionRule::Default(_))) {
            c.error(&path, "unreachable: it comes after the `default` rule");
        }
        match (&rule.header, &rule.cidr, &rule.default) {
            (Some(header), None, None) => {
                rules.extend(compile_header_rule(c, &path, header, rule));
            }
            (None, Some(table), None) => {
                rules.push(compile_cidr_rule(c, regions, &path, table, rule));
            }
            (None, None, Some(region)) => {
                if known(c, regions, format!("{path}.default"), region) {
                    rules.push(RegionRule::Default(region.clone()));
                }
            }
            _ => c.error(
                &path,
                "each rule takes exactly one of `header`, `cidr`, `default`",
            ),
        }
    }
    rules
}

/// A region header, believed only from `trusted_peers` (required).
fn compile_header_rule(
    c: &mut Checker,
    path: &str,
    header: &str,
    rule: &RawRegionRule,
) -> Option<RegionRule> {
    let name = HeaderName::from_str(header).ok();
    if name.is_none() {
        c.error(
            format!("{path}.header"),
            format!("invalid header name \"{header}\""),
        );
    }
    let peers: Vec<ipnet::IpNet> = match &rule.trusted_peers {
        None => {
            c.error(
                format!("{path}.trusted_peers"),
                "required with `header`: only trusted peers may name a client's region",
            );
            Vec::new()
        }
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(j, net)| {
                parse_net(net).or_else(|| {
                    c.error(
                        format!("{path}.trusted_peers[{j}]"),
                        format!("invalid CIDR \"{net}\""),
                    );
                    None
                })
            })
            .collect(),
    };
    Some(RegionRule::Header {
        name: name?,
        trusted_peers: peers,
    })
}

/// Client address ranges → regions, longest prefix first.
fn compile_cidr_rule(
    c: &mut Checker,
    regions: &BTreeMap<String, RawRegion>,
    path: &str,
    table: &BTreeMap<String, String>,
    rule: &RawRegionRule,
) -> RegionRule {
    if rule.trusted_peers.is_some() {
        c.error(
            format!("{path}.trusted_peers"),
            "only applies to a `header` rule",
        );
    }
    let mut entries = Vec::new();
    for (net, region) in table {
        let entry_path = format!("{path}.cidr.{net}");
        let parsed = parse_net(net);
        if parsed.is_none() {
            c.error(&entry_path, format!("invalid CIDR \"{net}\""));
        }
        if let (Some(net), true) = (parsed, known(c, regions, entry_path, region)) {
            entries.push((net, region.clone()));
        }
    }
    entries.sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
    RegionRule::Cidr(entries)
}

/// A fallback to a region without backends could never be taken.
fn check_fallbacks_have_backends(
    c: &mut Checker,
    regions: &BTreeMap<String, RawRegion>,
    regions_with_backends: &HashSet<&str>,
) {
    for (name, region) in regions {
        for (i, fallback) in region.fallback.iter().enumerate() {
            if regions.contains_key(fallback) && !regions_with_backends.contains(fallback.as_str())
            {
                c.error(
                    format!("regions.{name}.fallback[{i}]"),
                    format!("region \"{fallback}\" has no backends in any pool: falling back to it is impossible"),
                );
            }
        }
    }
}

/// `geo.residency`: client region → the regions allowed to serve it.
fn compile_fences<'a>(
    c: &mut Checker,
    regions: &BTreeMap<String, RawRegion>,
    geo: &'a RawGeo,
    regions_with_backends: &HashSet<&str>,
) -> BTreeMap<&'a str, &'a Vec<String>> {
    let mut fences: BTreeMap<&str, &Vec<String>> = BTreeMap::new();
    for (i, fence) in geo.residency.iter().enumerate() {
        let path = format!("geo.residency[{i}]");
        if fence.allowed.is_empty() {
            c.error(format!("{path}.allowed"), "must name at least one region");
        }
        for (j, region) in fence.allowed.iter().enumerate() {
            let region_path = format!("{path}.allowed[{j}]");
            if known(c, regions, region_path.clone(), region)
                && !regions_with_backends.contains(region.as_str())
            {
                c.error(
                    region_path,
                    format!("region \"{region}\" has no backends in any pool"),
                );
            }
        }
        for (j, client) in fence.clients.iter().enumerate() {
            let client_path = format!("{path}.clients[{j}]");
            if !known(c, regions, client_path.clone(), client) {
                continue;
            }
            if fences.insert(client.as_str(), &fence.allowed).is_some() {
                c.error(client_path, format!("\"{client}\" is fenced twice"));
            }
        }
    }
    fences
}

/// Per client region: itself, then its fallbacks; a fence keeps only the
/// allowed regions and appends the allowed ones not yet listed.
fn region_plans(
    regions: &BTreeMap<String, RawRegion>,
    fences: &BTreeMap<&str, &Vec<String>>,
) -> BTreeMap<String, RegionPlan> {
    regions
        .iter()
        .map(|(name, region)| {
            let mut order = vec![name.clone()];
            for fallback in &region.fallback {
                if !order.contains(fallback) {
                    order.push(fallback.clone());
                }
            }
            let fenced = match fences.get(name.as_str()) {
                Some(allowed) => {
                    order.retain(|r| allowed.contains(r));
                    for region in allowed.iter() {
                        if !order.contains(region) {
                            order.push(region.clone());
                        }
                    }
                    true
                }
                None => false,
            };
            (name.clone(), RegionPlan { order, fenced })
        })
        .collect()
}
