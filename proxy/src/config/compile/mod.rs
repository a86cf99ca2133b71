//! Validation and compilation: raw serde types in, an immutable [`Snapshot`]
//! out, or every problem found, each with its YAML path.
//!
//! Startup, `ballast check` and (later) reload all go through [`compile`], so
//! they accept and reject exactly the same files. Relative certificate paths
//! are resolved against the configuration file's directory.

mod admin;
mod backends;
mod discovery;
mod edits;
mod fields;
mod fleet;
mod geo;
mod keys;
mod listeners;
mod policy;
mod pools;
mod probes;
mod routes;
mod schedules;
mod server;
mod shadow;
mod spillover;
mod trace_export;
mod upstream_tls;
mod write;

use super::error::ConfigErrors;
use super::raw::RawConfig;
use super::snapshot::Snapshot;
use fields::Checker;
pub(super) use pools::{distinct_regions, distinct_tiers};
use std::path::Path;

/// Validate `raw` and build the runtime snapshot. `base_dir` anchors relative
/// file paths (the directory of the configuration file).
pub fn compile(raw: RawConfig, base_dir: &Path) -> Result<Snapshot, ConfigErrors> {
    let mut c = Checker {
        errors: Vec::new(),
        base_dir: base_dir.to_path_buf(),
    };
    let listeners = listeners::compile_listeners(&mut c, &raw.listeners);
    let admin = admin::compile_admin(&mut c, raw.admin.as_ref());
    let server = server::compile_server(&mut c, raw.server.as_ref());
    let pools = pools::compile_pools(&mut c, &raw.pools);
    let discovery = discovery::compile_discovery(&mut c, raw.discovery.as_ref());
    let routes = routes::compile_routes(&mut c, &raw.routes, &pools);
    let geo = geo::compile_geo(&mut c, &raw.regions, raw.geo.as_ref(), (&raw.pools, &pools));
    let explain = raw
        .explain
        .as_ref()
        .map(|e| admin::compile_explain(&mut c, e));
    let client_address = raw
        .client_address
        .as_ref()
        .map(|a| admin::compile_client_address(&mut c, a));
    let fleet = raw.fleet.as_ref().map(|f| fleet::compile_fleet(&mut c, f));
    let tracing = raw
        .tracing
        .as_ref()
        .map(|t| trace_export::compile_tracing(&mut c, t));

    if let Some(admin) = &admin {
        if let Some(listener) = listeners
            .iter()
            .find(|l| listeners::binds_overlap(l.address, admin.address))
        {
            c.error(
                "admin.address",
                format!(
                    "{} overlaps proxy listener {}",
                    admin.address, listener.address
                ),
            );
        }
    }

    match (admin, c.errors.is_empty()) {
        (Some(admin), true) => Ok(Snapshot {
            listeners,
            admin,
            server,
            routes,
            pools,
            geo,
            explain,
            discovery,
            client_address,
            fleet,
            tracing,
        }),
        _ => Err(ConfigErrors(c.errors)),
    }
}
