//! A human-readable summary of a compiled configuration, printed by
//! `ballast check` and at startup; written from the [`ConfigView`].

use super::snapshot::Snapshot;
use super::view::{ConfigView, ListenerView, PoolView, RouteView, UpstreamTlsView, WriteView};
use std::fmt::Write;

impl Snapshot {
    /// Listeners, admin address, pools with their backends, and routes.
    pub fn summary(&self) -> String {
        ConfigView::new(self).summary()
    }
}

/// `s` when `n` is not 1.
fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

impl ConfigView {
    /// Listeners, admin address, pools with their backends, and routes.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "listeners:");
        for l in &self.listeners {
            write_listener(&mut out, l);
        }
        let _ = writeln!(out, "admin: {}", self.admin.address);
        let _ = writeln!(out, "pools:");
        for pool in &self.pools {
            write_pool(&mut out, pool);
        }
        let _ = writeln!(out, "routes:");
        for route in &self.routes {
            write_route(&mut out, route);
        }
        out
    }
}

fn write_listener(out: &mut String, l: &ListenerView) {
    match &l.tls {
        None => {
            let h2c = if l.h2c { " h2c" } else { "" };
            let _ = writeln!(out, "  {} http{h2c}", l.address);
        }
        Some(tls) => {
            let mtls = match (&tls.client_ca, tls.client_cert_required) {
                (None, _) => "",
                (Some(_), true) => " mtls",
                (Some(_), false) => " mtls-optional",
            };
            let _ = writeln!(
                out,
                "  {} https{}{mtls} min TLS {} ({} certificate file{}, {} SNI name{})",
                l.address,
                if tls.http2 { " h2" } else { "" },
                tls.min_version,
                tls.cert_files.len(),
                plural(tls.cert_files.len()),
                tls.sni.len(),
                plural(tls.sni.len()),
            );
        }
    }
}

fn write_pool(out: &mut String, pool: &PoolView) {
    let shadow = pool
        .shadow
        .as_ref()
        .map(|s| format!(", shadow {} sample {}", s.mode, s.sample))
        .unwrap_or_default();
    let tls = pool.tls.as_ref().map(tls_summary).unwrap_or_default();
    // Over TLS the ALPN offer is in `tls`; plain HTTP/1.1 goes unsaid.
    let h2c = if pool.protocol == "h2c" { ", h2c" } else { "" };
    let named = match pool.named.len() {
        0 => String::new(),
        n => format!(", {n} named by DNS"),
    };
    let _ = writeln!(
        out,
        "  {} ({}, {} backends{named}{h2c}{shadow}{tls})",
        pool.name,
        pool.mode,
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
    for e in &pool.named {
        let _ = writeln!(
            out,
            "    {} ({}, resolved at run time) weight={}{}{}{}",
            e.name,
            if e.kind == "srv" {
                "DNS SRV"
            } else {
                "DNS A/AAAA"
            },
            e.weight,
            e.region
                .as_ref()
                .map(|r| format!(" region={r}"))
                .unwrap_or_default(),
            e.capacity
                .map(|c| format!(" capacity={c}"))
                .unwrap_or_default(),
            if e.canary { " canary" } else { "" },
        );
    }
    if let Some(split) = &pool.write {
        write_split(out, split);
    }
}

/// `, tls sni=NAME ca=FILE alpn=h2 mtls`, or `verify off` in place of the
/// name and CAs when certificates are not checked.
fn tls_summary(tls: &UpstreamTlsView) -> String {
    let checked = match (tls.verify, &tls.sni) {
        (false, _) => "verify off".to_string(),
        (true, Some(name)) => format!("sni={name}"),
        (true, None) => "name=backend IP".to_string(),
    };
    let ca = match (tls.verify, &tls.ca) {
        (true, Some(file)) => format!(" ca={file}"),
        (true, None) => " ca=system".to_string(),
        (false, _) => String::new(),
    };
    let mtls = if tls.mtls { " mtls" } else { "" };
    format!(", tls {checked}{ca} alpn={}{mtls}", tls.alpn)
}

fn write_split(out: &mut String, split: &WriteView) {
    let _ = writeln!(
        out,
        "    writes ({}{}{}) -> region {}{}",
        split.methods.join(","),
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
                let carrier = match (&ryw.cookie, &ryw.header) {
                    (Some(name), _) => format!("cookie {name}"),
                    (None, Some(name)) => format!("header {name}"),
                    (None, None) => String::new(),
                };
                format!(
                    "; reads pinned there for {:?} after a write ({carrier})",
                    ryw.ttl
                )
            })
            .unwrap_or_default(),
    );
}

fn write_route(out: &mut String, route: &RouteView) {
    let methods = route
        .methods
        .as_ref()
        .map(|m| format!(" methods={}", m.join(",")))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "  {}: host={} path={}{methods}{} -> {}",
        route.name,
        route.host.as_deref().unwrap_or("*"),
        route.path_prefix.as_deref().unwrap_or("/"),
        if route.headers.is_empty() {
            String::new()
        } else {
            format!(" headers={}", route.headers.len())
        },
        match (&route.pool, &route.redirect) {
            (Some(pool), _) => pool.clone(),
            (None, Some(redirect)) => format!("redirect {redirect}"),
            (None, None) => "-".to_string(),
        },
    );
}
