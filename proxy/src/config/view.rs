//! One serializable view of a compiled [`Snapshot`]: what the admin API's
//! `GET /api/v1/config` returns and what `ballast check` summarises.
//!
//! Durations are whole milliseconds (`*_ms`), header names lower-case, a
//! subdomain host `*.example.com`; secrets are never included (the admin
//! token shows as `<redacted>`).

use super::routes::HostMatch;
use super::snapshot::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The whole running configuration.
#[derive(Debug, Serialize)]
pub struct ConfigView {
    pub listeners: Vec<ListenerView>,
    pub admin: AdminView,
    pub server: ServerView,
    pub pools: Vec<PoolView>,
    pub routes: Vec<RouteView>,
    /// Event budgets shared through Redis (`null`: per instance).
    pub fleet: Option<FleetView>,
    /// Where request spans are exported (`null`: nowhere).
    pub tracing: Option<TracingView>,
}

#[derive(Debug, Serialize)]
pub struct TracingView {
    pub otlp_endpoint: String,
    pub service_name: String,
    pub sample_ratio: f64,
    pub export_interval_ms: u64,
    pub max_batch: usize,
    pub timeout_ms: u64,
    pub ca_file: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct FleetView {
    pub budget_store: String,
    pub lease_interval_ms: u64,
    pub instances: u32,
    pub key_prefix: String,
}

#[derive(Debug, Serialize)]
pub struct ListenerView {
    pub address: String,
    pub tls: Option<TlsView>,
    /// A plain listener that also takes HTTP/2 with prior knowledge.
    pub h2c: bool,
}

#[derive(Debug, Serialize)]
pub struct TlsView {
    pub cert_files: Vec<String>,
    /// The server names certificates are chosen by.
    pub sni: Vec<String>,
    pub http2: bool,
    /// The CA bundle client certificates are checked against (mutual TLS).
    pub client_ca: Option<String>,
    /// Whether a client must present a certificate.
    pub client_cert_required: bool,
    pub min_version: &'static str,
}

#[derive(Debug, Serialize)]
pub struct AdminView {
    pub address: String,
    pub token_env: Option<String>,
    /// `<redacted>` when a token is required.
    pub token: Option<&'static str>,
    pub allowed_hosts: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ServerView {
    pub threads: usize,
    pub drain_timeout_ms: u64,
    pub keepalive_timeout_ms: u64,
    pub header_timeout_ms: u64,
    /// `None`: derived at start from the open-file limit.
    pub max_connections: Option<usize>,
    /// 0: no limit.
    pub max_client_connections: usize,
    pub h2_max_concurrent_streams: u32,
    pub upstream_keepalive_pool_size: usize,
}

#[derive(Debug, Serialize)]
pub struct PoolView {
    pub name: String,
    pub mode: &'static str,
    pub target_latency_ms: u64,
    pub min_share: f64,
    pub max_share: f64,
    pub smoothing: f64,
    pub recompute_interval_ms: u64,
    pub slow_start_ms: u64,
    pub server_load: ServerLoadView,
    pub outlier: OutlierView,
    pub health: Option<HealthView>,
    pub load_poll: Option<LoadPollView>,
    pub schedules: Vec<ScheduleView>,
    pub retries: RetriesView,
    pub overprovisioning_factor: f64,
    pub prewarm_share: f64,
    pub write: Option<WriteView>,
    pub shadow: Option<ShadowView>,
    pub timeouts_ms: TimeoutsView,
    /// The protocol spoken to the backends: `http1` or `h2c` in the clear,
    /// or the ALPN offer over TLS.
    pub protocol: &'static str,
    /// TLS to the backends; `None`: plain HTTP.
    pub tls: Option<UpstreamTlsView>,
    /// The backends written as addresses, then those resolved from `named`.
    pub backends: Vec<BackendView>,
    /// Entries that name a host or an SRV record, resolved at run time.
    pub named: Vec<NamedEntryView>,
}

/// A backend entry named by DNS; its addresses become backends like it.
#[derive(Debug, Serialize)]
pub struct NamedEntryView {
    pub name: String,
    /// `host` (A/AAAA) or `srv`.
    pub kind: &'static str,
    pub path: String,
    pub region: Option<String>,
    pub capacity: Option<u32>,
    pub weight: u32,
    pub priority: u32,
    pub canary: bool,
}

#[derive(Debug, Serialize)]
pub struct ServerLoadView {
    pub header: String,
    pub orca_header: String,
    pub strip: bool,
    pub stale_after_ms: u64,
}

#[derive(Debug, Serialize)]
pub struct OutlierView {
    pub consecutive_failures: u32,
    pub base_ejection_ms: u64,
    pub max_ejection_ms: u64,
    pub max_ejected: f64,
    /// `(threshold, min_requests)`; `None`: off.
    pub failure_rate: Option<(f64, u64)>,
}

#[derive(Debug, Serialize)]
pub struct HealthView {
    /// `http` or `tcp`.
    pub check: &'static str,
    /// The path of an `http` check.
    pub path: Option<String>,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub healthy_after: u32,
    pub unhealthy_after: u32,
}

#[derive(Debug, Serialize)]
pub struct LoadPollView {
    pub path: String,
    pub host: Option<String>,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub quiet_below: f64,
}

#[derive(Debug, Serialize)]
pub struct ScheduleView {
    pub name: String,
    /// Region → weight multiplier.
    pub regions: BTreeMap<String, f64>,
    /// Monday first.
    pub days: Option<[bool; 7]>,
    pub window_minutes: Option<(u32, u32)>,
    pub dates_days_since_epoch: Option<(i64, i64)>,
    pub utc_offset_s: i64,
}

#[derive(Debug, Serialize)]
pub struct RetriesView {
    pub attempts: u32,
    /// `connect_failure`, `reset`, `timeout`, status codes and
    /// `grpc_unavailable`.
    pub on: Vec<String>,
    pub budget_percent: f64,
    pub budget_min_concurrency: u32,
}

#[derive(Debug, Serialize)]
pub struct WriteView {
    pub region: String,
    pub methods: Vec<String>,
    pub path_prefixes: Vec<String>,
    pub header: Option<String>,
    pub read_your_writes: Option<ReadYourWritesView>,
}

#[derive(Debug, Serialize)]
pub struct ReadYourWritesView {
    pub ttl_ms: u64,
    pub cookie: Option<String>,
    pub header: Option<String>,
    /// The exact pin lifetime, for display (the JSON carries `ttl_ms`).
    #[serde(skip)]
    pub ttl: Duration,
}

#[derive(Debug, Serialize)]
pub struct ShadowView {
    pub mode: &'static str,
    pub target_latency_ms: u64,
    pub min_share: f64,
    pub max_share: f64,
    pub smoothing: f64,
    pub slow_start_ms: u64,
    pub region_max_share: f64,
    pub overprovisioning_factor: f64,
    pub prewarm_share: f64,
    pub sample: f64,
}

/// A pool's TLS to its backends, without key material.
#[derive(Debug, Serialize)]
pub struct UpstreamTlsView {
    /// The name sent and checked; `None`: the backend's IP address is checked.
    pub sni: Option<String>,
    pub verify: bool,
    pub alpn: &'static str,
    /// The CA bundle trusted; `None`: the system's roots.
    pub ca: Option<String>,
    /// Whether a client certificate is presented (mTLS), and its file.
    pub mtls: bool,
    pub client_cert: Option<String>,
}

impl UpstreamTlsView {
    fn new(tls: &UpstreamTls) -> Self {
        let display =
            |file: &Option<std::path::PathBuf>| file.as_ref().map(|f| f.display().to_string());
        Self {
            sni: tls.sni.clone(),
            verify: tls.verify,
            alpn: tls.alpn.as_str(),
            ca: display(&tls.ca_file),
            mtls: tls.client_cert.is_some(),
            client_cert: display(&tls.client_cert_file),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct TimeoutsView {
    pub connect: u64,
    pub read: u64,
    pub write: u64,
    pub idle: u64,
}

#[derive(Debug, Serialize)]
pub struct BackendView {
    pub id: String,
    pub addr: String,
    /// The named entry it was resolved from; `None`: written as an address.
    pub discovered_from: Option<String>,
    pub region: Option<String>,
    pub capacity: Option<u32>,
    pub weight: u32,
    pub priority: u32,
    pub labels: BTreeMap<String, String>,
    pub canary: Option<CanaryView>,
}

#[derive(Debug, Serialize)]
pub struct CanaryView {
    pub floor: f64,
    pub max: f64,
    pub max_error_rate: f64,
    pub min_requests: u64,
    pub cooldown_ms: u64,
}

#[derive(Debug, Serialize)]
pub struct RouteView {
    pub name: String,
    /// `None`: any host.
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    pub methods: Option<Vec<String>>,
    /// Header name → exact value, in configuration order (a JSON object).
    #[serde(serialize_with = "pairs_as_map")]
    pub headers: Vec<(String, String)>,
    /// `None` for a redirect.
    pub pool: Option<String>,
    /// A redirect route's status and `Location` template, e.g. `301 https://{host}{path}`.
    pub redirect: Option<String>,
}

fn pairs_as_map<S: serde::Serializer>(
    pairs: &[(String, String)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

impl ConfigView {
    pub fn new(snapshot: &Snapshot) -> Self {
        Self {
            listeners: snapshot.listeners.iter().map(ListenerView::new).collect(),
            admin: AdminView {
                address: snapshot.admin.address.to_string(),
                token_env: snapshot.admin.token_env.clone(),
                token: snapshot.admin.token_env.as_ref().map(|_| "<redacted>"),
                allowed_hosts: snapshot.admin.allowed_hosts.clone(),
            },
            server: ServerView {
                threads: snapshot.server.threads,
                drain_timeout_ms: ms(snapshot.server.drain_timeout),
                keepalive_timeout_ms: ms(snapshot.server.keepalive_timeout),
                header_timeout_ms: ms(snapshot.server.header_timeout),
                max_connections: snapshot.server.max_connections,
                max_client_connections: snapshot.server.max_client_connections,
                h2_max_concurrent_streams: snapshot.server.h2_max_concurrent_streams,
                upstream_keepalive_pool_size: snapshot.server.upstream_keepalive_pool_size,
            },
            pools: snapshot.pools.iter().map(PoolView::new).collect(),
            routes: snapshot
                .routes
                .routes()
                .iter()
                .map(|r| RouteView {
                    name: r.name.clone(),
                    host: r.host.as_ref().map(|h| match h {
                        HostMatch::Exact(h) => h.clone(),
                        HostMatch::Subdomain(s) => format!("*{s}"),
                    }),
                    path_prefix: r.path_prefix.clone(),
                    methods: r
                        .methods
                        .as_ref()
                        .map(|m| m.iter().map(|m| m.as_str().to_string()).collect()),
                    headers: r
                        .headers
                        .iter()
                        .map(|(n, v)| {
                            let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
                            (n.as_str().to_string(), value)
                        })
                        .collect(),
                    pool: r.pool.map(|pool| snapshot.pool(pool).name.clone()),
                    redirect: r
                        .redirect
                        .as_ref()
                        .map(|redirect| format!("{} {}", redirect.status, redirect.location.text)),
                })
                .collect(),
            fleet: snapshot.fleet.as_ref().map(|f| FleetView {
                budget_store: f.budget_store.clone(),
                lease_interval_ms: ms(f.lease_interval),
                instances: f.instances,
                key_prefix: f.key_prefix.clone(),
            }),
            tracing: snapshot.tracing.as_ref().map(|t| TracingView {
                otlp_endpoint: t.otlp_endpoint.clone(),
                service_name: t.service_name.clone(),
                sample_ratio: t.sample_ratio,
                export_interval_ms: ms(t.export_interval),
                max_batch: t.max_batch,
                timeout_ms: ms(t.timeout),
                ca_file: t.ca_file.as_ref().map(|p| p.display().to_string()),
            }),
        }
    }
}

impl ListenerView {
    fn new(l: &Listener) -> Self {
        Self {
            address: l.address.to_string(),
            tls: l.tls.as_ref().map(|tls| TlsView {
                cert_files: tls
                    .certs()
                    .map(|c| c.cert_file.display().to_string())
                    .collect(),
                sni: tls
                    .sni
                    .iter()
                    .flat_map(|c| c.server_names.iter().cloned())
                    .collect(),
                http2: tls.http2,
                client_ca: tls
                    .client_auth
                    .as_ref()
                    .map(|auth| auth.ca_file.display().to_string()),
                client_cert_required: tls.client_auth.as_ref().is_some_and(|auth| auth.required),
                min_version: tls.min_version.as_str(),
            }),
            h2c: l.h2c,
        }
    }
}

impl PoolView {
    fn new(p: &Pool) -> Self {
        let policy = &p.policy;
        Self {
            name: p.name.clone(),
            mode: policy.mode.as_str(),
            target_latency_ms: ms(policy.target_latency),
            min_share: policy.min_share,
            max_share: policy.max_share,
            smoothing: policy.smoothing,
            recompute_interval_ms: ms(policy.recompute_interval),
            slow_start_ms: ms(policy.slow_start),
            server_load: ServerLoadView {
                header: policy.server_load.header.as_str().to_string(),
                orca_header: policy.server_load.orca_header.as_str().to_string(),
                strip: policy.server_load.strip,
                stale_after_ms: ms(policy.server_load.stale_after),
            },
            outlier: OutlierView {
                consecutive_failures: policy.outlier.consecutive_failures,
                base_ejection_ms: ms(policy.outlier.base_ejection),
                max_ejection_ms: ms(policy.outlier.max_ejection),
                max_ejected: policy.outlier.max_ejected,
                failure_rate: policy
                    .outlier
                    .failure_rate
                    .map(|f| (f.threshold, f.min_requests)),
            },
            health: policy.health.as_ref().map(HealthView::new),
            load_poll: policy.load_poll.as_ref().map(|l| LoadPollView {
                path: l.path.clone(),
                host: l.host.clone(),
                interval_ms: ms(l.interval),
                timeout_ms: ms(l.timeout),
                quiet_below: l.quiet_below,
            }),
            schedules: policy.schedules.iter().map(ScheduleView::new).collect(),
            retries: RetriesView::new(&policy.retries),
            overprovisioning_factor: policy.overprovisioning_factor,
            prewarm_share: policy.prewarm_share,
            write: p.write.as_ref().map(WriteView::new),
            shadow: p.shadow.as_ref().map(ShadowView::new),
            timeouts_ms: TimeoutsView {
                connect: ms(p.timeouts.connect),
                read: ms(p.timeouts.read),
                write: ms(p.timeouts.write),
                idle: ms(p.timeouts.idle),
            },
            protocol: p.protocol(),
            tls: p.tls.as_ref().map(UpstreamTlsView::new),
            backends: p.backends.iter().map(BackendView::new).collect(),
            named: p
                .named
                .iter()
                .map(|e| NamedEntryView {
                    name: e.name.to_string(),
                    kind: e.name.kind(),
                    path: e.path.clone(),
                    region: e.template.region.clone(),
                    capacity: e.template.capacity,
                    weight: e.template.weight,
                    priority: e.template.priority,
                    canary: e.template.canary.is_some(),
                })
                .collect(),
        }
    }
}

impl RetriesView {
    fn new(retries: &RetryPolicy) -> Self {
        let on = &retries.on;
        let names = [
            (on.connect_failure, "connect_failure"),
            (on.reset, "reset"),
            (on.timeout, "timeout"),
        ];
        let named = names
            .into_iter()
            .filter(|(set, _)| *set)
            .map(|(_, name)| name.to_string());
        Self {
            attempts: retries.attempts,
            on: named
                .chain(on.statuses.iter().map(u16::to_string))
                .chain(on.grpc_unavailable.then(|| "grpc_unavailable".to_string()))
                .collect(),
            budget_percent: retries.budget.percent,
            budget_min_concurrency: retries.budget.min_concurrency,
        }
    }
}

impl HealthView {
    fn new(h: &HealthPolicy) -> Self {
        let (check, path) = match &h.kind {
            HealthCheckKind::Http { path, .. } => ("http", Some(path.clone())),
            HealthCheckKind::Tcp => ("tcp", None),
        };
        Self {
            check,
            path,
            interval_ms: ms(h.interval),
            timeout_ms: ms(h.timeout),
            healthy_after: h.healthy_after,
            unhealthy_after: h.unhealthy_after,
        }
    }
}

impl ScheduleView {
    fn new(t: &ScheduleTemplate) -> Self {
        Self {
            name: t.name.clone(),
            regions: t.multipliers.clone(),
            days: t.days,
            window_minutes: t.window,
            dates_days_since_epoch: t.dates,
            utc_offset_s: t.utc_offset_s,
        }
    }
}

impl WriteView {
    fn new(split: &WriteSplit) -> Self {
        Self {
            region: split.region.clone(),
            methods: split
                .methods
                .iter()
                .map(|m| m.as_str().to_string())
                .collect(),
            path_prefixes: split.path_prefixes.clone(),
            header: split.header.as_ref().map(|h| h.as_str().to_string()),
            read_your_writes: split.read_your_writes.as_ref().map(|ryw| {
                let (cookie, header) = match &ryw.carrier {
                    PinCarrier::Cookie(name) => (Some(name.clone()), None),
                    PinCarrier::Header(name) => (None, Some(name.as_str().to_string())),
                };
                ReadYourWritesView {
                    ttl_ms: ms(ryw.ttl),
                    cookie,
                    header,
                    ttl: ryw.ttl,
                }
            }),
        }
    }
}

impl ShadowView {
    fn new(s: &ShadowPolicy) -> Self {
        Self {
            mode: s.policy.mode.as_str(),
            target_latency_ms: ms(s.policy.target_latency),
            min_share: s.policy.min_share,
            max_share: s.policy.max_share,
            smoothing: s.policy.smoothing,
            slow_start_ms: ms(s.policy.slow_start),
            region_max_share: s.policy.region_max_share,
            overprovisioning_factor: s.policy.overprovisioning_factor,
            prewarm_share: s.policy.prewarm_share,
            sample: s.sample,
        }
    }
}

impl BackendView {
    fn new(b: &Backend) -> Self {
        Self {
            id: b.id.0.clone(),
            addr: b.addr.to_string(),
            discovered_from: b.discovered_from.as_ref().map(ToString::to_string),
            region: b.region.clone(),
            capacity: b.capacity,
            weight: b.weight,
            priority: b.priority,
            labels: b.labels.clone(),
            canary: b.canary.as_ref().map(|p| CanaryView {
                floor: p.floor,
                max: p.max,
                max_error_rate: p.max_error_rate,
                min_requests: p.min_requests,
                cooldown_ms: ms(p.cooldown),
            }),
        }
    }
}
