//! Configuration files for each contender, generated for one run: the same
//! backends, weights and timeouts, written as each proxy expects them.
//!
//! How each concern is configured for each proxy is [`EQUIVALENCES`],
//! which the report quotes.

use super::contender::{BallastMode, NginxBalance};
use super::plan::ReadYourWritesPlan;
use std::fmt::Write;
use std::net::SocketAddr;
use std::path::Path;

/// The settings chosen to make the contenders comparable, as a Markdown
/// table.
pub const EQUIVALENCES: &str = "\
| concern | Ballast | nginx | HAProxy |
|---|---|---|---|
| balancing | the run's `mode` (`max_share: 0.95`, other policy defaults) | weighted round robin, or `least_conn` (weighted) | `balance leastconn` (weighted) |
| weights | `capacity` (also the round-robin weight) | capacities ÷ their gcd | the same, at most 256 |
| retries | `attempts: 2` (default): connect failures retried up to 3 times, resets and timeouts of idempotent requests once, on another backend; a 5xx answer is passed to the client, not retried | `proxy_next_upstream error timeout http_502 http_503 http_504` (idempotent requests only), `proxy_next_upstream_tries 2`: one retry, on another server | `retries 1`, `option redispatch 1` (the retry goes to another server), `retry-on conn-failure empty-response response-timeout 503 502 504` |
| passive failure handling | 5 consecutive failures (5xx included) → ejected 30 s × n (default) | `max_fails=5 fail_timeout=30s` (errors, timeouts and the 502/503/504 answers it retries, within 30 s) | `observe layer7 error-limit 5 on-error mark-down` |
| active health checks | `GET /healthz` every 2 s, 2 to fall, 2 to rise | none (not in open-source nginx) | `option httpchk GET /healthz`, `inter 2s fall 2 rise 2` |
| upstream keep-alive | default pool (128 idle) | `keepalive 128`, HTTP/1.1 | `http-reuse always` |
| timeouts | connect 1 s, read 5 s | connect 1 s, read 5 s | connect 1 s, server 5 s |
| workers | `threads: 2` | 2 worker processes | `nbthread 2` |
| standby | adaptive modes: `priority: 1` and the pool's `prewarm_share: 0.02` (round robin: an ordinary backend) | `backup` | `backup` |
| read/write split | `write: {region: …, read_your_writes: {ttl: …}}` (read-your-writes scenario) | none: writes are balanced like reads | none |
";

/// Proxy worker threads (or processes) of every contender.
pub const WORKERS: u32 = 2;
/// The largest weight HAProxy accepts.
const HAPROXY_MAX_WEIGHT: u64 = 256;

/// A backend as the proxies see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    pub addr: SocketAddr,
    pub capacity: u64,
    pub canary: bool,
    /// For Ballast: the backend's region. When backends have regions, every
    /// client is placed in the first backend's region, each region falls back
    /// to the others in backend order, and the pool spills over on latency
    /// above [`SPILL_LATENCY_ABOVE`] or reported utilization above
    /// [`SPILL_UTILIZATION_ABOVE`]. Other contenders have no regions.
    pub region: Option<&'static str>,
    /// A standby, used only when the others cannot serve: for Ballast's
    /// adaptive modes a priority-1 tier pre-warmed with [`PREWARM_PERCENT`]
    /// of the traffic (round robin has no tiers); `backup` for nginx and
    /// HAProxy.
    pub standby: bool,
}

/// The pre-warm share of Ballast's standby tier, in percent.
pub const PREWARM_PERCENT: u32 = 2;

/// Spillover thresholds of regional scenarios.
pub const SPILL_LATENCY_ABOVE: &str = "100ms";
pub const SPILL_UTILIZATION_ABOVE: f64 = 0.9;
/// Fraction moved per 500 ms recompute interval: 0.9 is reached in 2 s.
pub const SPILL_STEP: f64 = 0.25;

/// Ballast's `regions`, `geo` and pool `spillover` sections for upstreams
/// with regions (empty strings without).
fn ballast_regions(upstreams: &[Upstream]) -> (String, String) {
    let mut names: Vec<&str> = Vec::new();
    for region in upstreams.iter().filter_map(|u| u.region) {
        if !names.contains(&region) {
            names.push(region);
        }
    }
    let Some(home) = names.first() else {
        return (String::new(), String::new());
    };
    let mut top = String::from("regions:\n");
    for name in &names {
        let others: Vec<&str> = names.iter().copied().filter(|n| n != name).collect();
        let _ = writeln!(top, "  {name}: {{fallback: [{}]}}", others.join(", "));
    }
    let _ = writeln!(top, "geo:\n  client_region: [{{default: {home}}}]");
    let pool = format!(
        "    spillover: {{latency_above: {SPILL_LATENCY_ABOVE}, utilization_above: {SPILL_UTILIZATION_ABOVE}, step: {SPILL_STEP}}}\n"
    );
    (top, pool)
}

/// Ballast's configuration: one pool holding every backend, one catch-all
/// route; with a read-your-writes plan, the pool's writes go to its write
/// region and pin the writer's reads there for the ttl.
pub fn ballast_yaml(
    mode: BallastMode,
    listen: SocketAddr,
    admin: SocketAddr,
    upstreams: &[Upstream],
    read_your_writes: Option<&ReadYourWritesPlan>,
) -> String {
    let tiers = mode.is_adaptive() && upstreams.iter().any(|u| u.standby);
    let mut backends = String::new();
    for upstream in upstreams {
        let region = upstream
            .region
            .map_or(String::new(), |r| format!(", region: {r}"));
        let priority = if tiers && upstream.standby {
            ", priority: 1"
        } else {
            ""
        };
        let _ = writeln!(
            backends,
            "      - {{addr: \"{}\", capacity: {}, canary: {}{region}{priority}}}",
            upstream.addr, upstream.capacity, upstream.canary
        );
    }
    let (regions, mut pool_extra) = ballast_regions(upstreams);
    if tiers {
        let _ = writeln!(
            pool_extra,
            "    prewarm_share: {}",
            f64::from(PREWARM_PERCENT) / 100.0
        );
    }
    if let Some(plan) = read_your_writes {
        let _ = writeln!(
            pool_extra,
            "    write: {{region: {}, read_your_writes: {{ttl: {}ms}}}}",
            plan.write_region,
            plan.ttl.as_millis()
        );
    }
    format!(
        r#"listeners:
  - address: "{listen}"
admin:
  address: "{admin}"
server:
  threads: {WORKERS}
  drain_timeout: 1s
{regions}pools:
  scenario:
    mode: {mode}
    max_share: 0.95
    connect_timeout: 1s
    read_timeout: 5s
    health: {{check: http, path: /healthz, interval: 2s, healthy_after: 2, unhealthy_after: 2}}
{pool_extra}    backends:
{backends}routes:
  - name: all
    match: {{}}
    pool: scenario
"#,
        mode = mode.as_config(),
    )
}

/// nginx's configuration, with every file it writes inside `dir` so that
/// it runs without root (start it with `-p dir -e dir/error.log`).
pub fn nginx_conf(
    balance: NginxBalance,
    dir: &Path,
    listen: SocketAddr,
    upstreams: &[Upstream],
) -> String {
    let dir = dir.display();
    let method = match balance {
        NginxBalance::RoundRobin => "",
        NginxBalance::LeastConn => "        least_conn;\n",
    };
    let weights = small_weights(&capacities(upstreams), u64::MAX);
    let mut servers = String::new();
    for (upstream, weight) in upstreams.iter().zip(weights) {
        let backup = if upstream.standby { " backup" } else { "" };
        let _ = writeln!(
            servers,
            "        server {} weight={weight} max_fails=5 fail_timeout=30s{backup};",
            upstream.addr
        );
    }
    format!(
        r#"worker_processes {WORKERS};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream scenario {{
{method}{servers}        keepalive 128;
    }}
    server {{
        listen {listen};
        location / {{
            proxy_pass http://scenario;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_connect_timeout 1s;
            proxy_read_timeout 5s;
            proxy_next_upstream error timeout http_502 http_503 http_504;
            proxy_next_upstream_tries 2;
        }}
    }}
}}
"#
    )
}

/// HAProxy's configuration (run it in the foreground with `-db`).
pub fn haproxy_cfg(listen: SocketAddr, upstreams: &[Upstream]) -> String {
    let weights = small_weights(&capacities(upstreams), HAPROXY_MAX_WEIGHT);
    let mut servers = String::new();
    for (index, (upstream, weight)) in upstreams.iter().zip(weights).enumerate() {
        let backup = if upstream.standby { " backup" } else { "" };
        let _ = writeln!(
            servers,
            "    server b{index} {} weight {weight}{backup}",
            upstream.addr
        );
    }
    format!(
        r#"global
    nbthread {WORKERS}
    maxconn 4096
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 5s
    timeout check 1s
    retries 1
    option redispatch 1
    retry-on conn-failure empty-response response-timeout 503 502 504
    http-reuse always
frontend scenario
    bind {listen}
    default_backend scenario
backend scenario
    balance leastconn
    option httpchk GET /healthz
    default-server check inter 2s fall 2 rise 2 observe layer7 error-limit 5 on-error mark-down
{servers}"#
    )
}

fn capacities(upstreams: &[Upstream]) -> Vec<u64> {
    upstreams.iter().map(|u| u.capacity).collect()
}

/// The same proportions in small integers: divided by their greatest
/// common divisor, then, if still above `max`, scaled down (at least 1).
pub fn small_weights(capacities: &[u64], max: u64) -> Vec<u64> {
    let divisor = capacities.iter().copied().fold(0, gcd).max(1);
    let reduced: Vec<u64> = capacities.iter().map(|c| c / divisor).collect();
    let largest = reduced.iter().copied().max().unwrap_or(1);
    if largest <= max {
        return reduced;
    }
    reduced
        .iter()
        .map(|&w| ((w as f64 * max as f64 / largest as f64).round() as u64).max(1))
        .collect()
}

fn gcd(a: u64, b: u64) -> u64 {
    match b {
        0 => a,
        _ => gcd(b, a % b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn upstreams() -> Vec<Upstream> {
        vec![
            Upstream {
                addr: "127.0.0.1:9101".parse().unwrap(),
                capacity: 1000,
                canary: false,
                region: None,
                standby: false,
            },
            Upstream {
                addr: "127.0.0.1:9102".parse().unwrap(),
                capacity: 200,
                canary: true,
                region: None,
                standby: false,
            },
        ]
    }

    fn listen() -> SocketAddr {
        "127.0.0.1:8080".parse().unwrap()
    }

    #[test]
    fn weights_keep_proportions_in_small_integers() {
        assert_eq!(small_weights(&[1000, 200], 256), [5, 1]);
        assert_eq!(small_weights(&[500, 500, 100], 256), [5, 5, 1]);
        assert_eq!(small_weights(&[1000, 3], 256), [256, 1]);
        assert_eq!(small_weights(&[997, 3], u64::MAX), [997, 3]);
        assert_eq!(small_weights(&[0, 0], 256), [0, 0]);
    }

    #[test]
    fn ballast_config_lists_every_backend_in_one_pool() {
        let yaml = ballast_yaml(
            BallastMode::Capacity,
            listen(),
            "127.0.0.1:9901".parse().unwrap(),
            &upstreams(),
            None,
        );
        assert!(yaml.contains("    mode: capacity\n"));
        assert!(yaml.contains(r#"  - address: "127.0.0.1:8080""#));
        assert!(yaml.contains(r#"  address: "127.0.0.1:9901""#));
        assert!(yaml.contains(r#"      - {addr: "127.0.0.1:9101", capacity: 1000, canary: false}"#));
        assert!(yaml.contains(r#"      - {addr: "127.0.0.1:9102", capacity: 200, canary: true}"#));
        assert!(yaml.ends_with("    pool: scenario\n"));
        assert!(!yaml.contains("regions:") && !yaml.contains("spillover"));
    }

    #[test]
    fn regional_backends_get_regions_a_home_and_spillover() {
        let mut regional = upstreams();
        regional[0].region = Some("near");
        regional[1].region = Some("far");
        let yaml = ballast_yaml(
            BallastMode::Latency,
            listen(),
            "127.0.0.1:9901".parse().unwrap(),
            &regional,
            None,
        );
        assert!(yaml.contains("regions:\n  near: {fallback: [far]}\n  far: {fallback: [near]}\n"));
        assert!(yaml.contains("geo:\n  client_region: [{default: near}]\n"));
        assert!(yaml.contains(
            "    spillover: {latency_above: 100ms, utilization_above: 0.9, step: 0.25}\n"
        ));
        assert!(yaml.contains(r#"capacity: 1000, canary: false, region: near}"#));
    }

    #[test]
    fn a_standby_is_a_prewarmed_tier_for_ballast_and_a_backup_for_the_others() {
        let mut tiered = upstreams();
        tiered[1].standby = true;
        let admin = "127.0.0.1:9901".parse().unwrap();
        let yaml = ballast_yaml(BallastMode::Latency, listen(), admin, &tiered, None);
        assert!(yaml.contains("    prewarm_share: 0.02\n"), "{yaml}");
        assert!(yaml.contains(r#"capacity: 200, canary: true, priority: 1}"#));
        let plain = ballast_yaml(BallastMode::RoundRobin, listen(), admin, &tiered, None);
        assert!(!plain.contains("priority") && !plain.contains("prewarm"));
        let nginx = nginx_conf(
            NginxBalance::RoundRobin,
            Path::new("/tmp/run"),
            listen(),
            &tiered,
        );
        assert!(
            nginx.contains("server 127.0.0.1:9102 weight=1 max_fails=5 fail_timeout=30s backup;")
        );
        let haproxy = haproxy_cfg(listen(), &tiered);
        assert!(haproxy.contains("    server b1 127.0.0.1:9102 weight 1 backup\n"));
    }

    #[test]
    fn a_read_your_writes_plan_gives_the_pool_its_write_region_and_ttl() {
        let mut regional = upstreams();
        regional[0].region = Some("replica");
        regional[1].region = Some("primary");
        let plan = ReadYourWritesPlan {
            write_region: "primary",
            ttl: Duration::from_millis(1500),
            replication_lag: Duration::from_millis(500),
            users: 4,
            write_every: 10,
        };
        let admin = "127.0.0.1:9901".parse().unwrap();
        let yaml = ballast_yaml(
            BallastMode::Latency,
            listen(),
            admin,
            &regional,
            Some(&plan),
        );
        assert!(
            yaml.contains("    write: {region: primary, read_your_writes: {ttl: 1500ms}}\n"),
            "{yaml}"
        );
        assert!(yaml.contains("geo:\n  client_region: [{default: replica}]\n"));
        let without = ballast_yaml(BallastMode::Latency, listen(), admin, &regional, None);
        assert!(!without.contains("write:"));
    }

    #[test]
    fn nginx_config_keeps_every_path_in_its_directory() {
        let conf = nginx_conf(
            NginxBalance::RoundRobin,
            Path::new("/tmp/run"),
            listen(),
            &upstreams(),
        );
        assert!(!conf.contains("least_conn"));
        for line in [
            "pid /tmp/run/nginx.pid;",
            "error_log /tmp/run/error.log warn;",
            "proxy_temp_path /tmp/run/proxy;",
            "server 127.0.0.1:9101 weight=5 max_fails=5 fail_timeout=30s;",
            "server 127.0.0.1:9102 weight=1 max_fails=5 fail_timeout=30s;",
            "keepalive 128;",
            "listen 127.0.0.1:8080;",
            "proxy_set_header Connection \"\";",
            "proxy_next_upstream error timeout http_502 http_503 http_504;",
            "proxy_next_upstream_tries 2;",
        ] {
            assert!(conf.contains(line), "missing {line:?} in\n{conf}");
        }
        assert_eq!(conf.matches('{').count(), conf.matches('}').count());
    }

    #[test]
    fn nginx_least_conn_is_the_same_config_with_the_method_in_its_upstream() {
        let dir = Path::new("/tmp/run");
        let least = nginx_conf(NginxBalance::LeastConn, dir, listen(), &upstreams());
        assert!(least.contains("    upstream scenario {\n        least_conn;\n        server "));
        let plain = nginx_conf(NginxBalance::RoundRobin, dir, listen(), &upstreams());
        assert_eq!(least.replace("        least_conn;\n", ""), plain);
    }

    #[test]
    fn haproxy_config_uses_leastconn_with_checks_and_weights() {
        let cfg = haproxy_cfg(listen(), &upstreams());
        for line in [
            "    bind 127.0.0.1:8080\n",
            "    balance leastconn\n",
            "    option httpchk GET /healthz\n",
            "    retries 1\n",
            "    option redispatch 1\n",
            "    retry-on conn-failure empty-response response-timeout 503 502 504\n",
            "    server b0 127.0.0.1:9101 weight 5\n",
            "    server b1 127.0.0.1:9102 weight 1\n",
        ] {
            assert!(cfg.contains(line), "missing {line:?} in\n{cfg}");
        }
        assert!(cfg.contains("observe layer7 error-limit 5 on-error mark-down"));
    }
}
