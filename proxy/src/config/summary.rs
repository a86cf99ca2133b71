//! A human-readable summary of a compiled configuration, printed by
//! `ballast check` and at startup.

use super::snapshot::{PinCarrier, Snapshot};
use std::fmt::Write;

impl Snapshot {
    /// Listeners, admin address, pools with their backends, and routes.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "listeners:");
        for l in &self.listeners {
            match &l.tls {
                None => {
                    let _ = writeln!(out, "  {} http", l.address);
                }
                Some(tls) => {
                    let _ = writeln!(
                        out,
                        "  {} https{} ({} certificate file{}, {} SNI name{})",
                        l.address,
                        if tls.http2 { " h2" } else { "" },
                        tls.cert_files.len(),
                        if tls.cert_files.len() == 1 { "" } else { "s" },
                        tls.sni.len(),
                        if tls.sni.len() == 1 { "" } else { "s" },
                    );
                }
            }
        }
        let _ = writeln!(out, "admin: {}", self.admin.address);
        let _ = writeln!(out, "pools:");
        for pool in &self.pools {
            let mode = pool.policy.mode.as_str();
            let shadow = pool
                .shadow
                .as_ref()
                .map(|s| format!(", shadow {} sample {}", s.policy.mode.as_str(), s.sample))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {} ({mode}, {} backends{shadow})",
                pool.name,
                pool.backends.len()
            );
            for b in &pool.backends {
                let _ = writeln!(
                    out,
                    "    {} weight={}{}{}{}",
                    b.addr,
                    b.weight,
                    b.region
                        .as_ref()
                        .map(|r| format!(" region={r}"))
                        .unwrap_or_default(),
                    b.capacity
                        .map(|c| format!(" capacity={c}"))
                        .unwrap_or_default(),
                    if b.canary.is_some() { " canary" } else { "" },
                );
            }
            if let Some(split) = &pool.write {
                let methods: Vec<&str> = split.methods.iter().map(|m| m.as_str()).collect();
                let _ = writeln!(
                    out,
                    "    writes ({}{}{}) -> region {}{}",
                    methods.join(","),
                    if split.path_prefixes.is_empty() {
                        String::new()
                    } else {
                        format!(", under {}", split.path_prefixes.join(","))
                    },
                    split
                        .header
                        .as_ref()
                        .map(|h| format!(", with header {h}"))
                        .unwrap_or_default(),
                    split.region,
                    split
                        .read_your_writes
                        .as_ref()
                        .map(|ryw| {
                            let carrier = match &ryw.carrier {
                                PinCarrier::Cookie(name) => format!("cookie {name}"),
                                PinCarrier::Header(name) => format!("header {name}"),
                            };
                            format!(
                                "; reads pinned there for {:?} after a write ({carrier})",
                                ryw.ttl
                            )
                        })
                        .unwrap_or_default(),
                );
            }
        }
        let _ = writeln!(out, "routes:");
        for route in self.routes.routes() {
            let host = match &route.host {
                None => "*".to_string(),
                Some(super::routes::HostMatch::Exact(h)) => h.clone(),
                Some(super::routes::HostMatch::Subdomain(s)) => format!("*{s}"),
            };
            let methods = route
                .methods
                .as_ref()
                .map(|m| {
                    let names: Vec<&str> = m.iter().map(|m| m.as_str()).collect();
                    format!(" methods={}", names.join(","))
                })
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {}: host={host} path={}{methods}{} -> {}",
                route.name,
                route.path_prefix.as_deref().unwrap_or("/"),
                if route.headers.is_empty() {
                    String::new()
                } else {
                    format!(" headers={}", route.headers.len())
                },
                self.pool(route.pool).name,
            );
        }
        out
    }
}
