//! The `fleet` section as written (see [`super::raw`]): where a fleet keeps
//! the event budgets its instances share.

use schemars::JsonSchema;
use serde::Deserialize;

/// Cluster-wide event budgets: every instance leases its budget tokens from
/// one Redis, so the routes' limits hold for the fleet as a whole.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawFleet {
    /// The Redis keeping the budgets: `redis://HOST:PORT[/DB]` (`rediss://`
    /// for TLS, certificates from `BALLAST_REDIS_CA_FILE`, `_CERT_FILE` and
    /// `_KEY_FILE`), without
    /// credentials (they come from `BALLAST_REDIS_USERNAME` and
    /// `BALLAST_REDIS_PASSWORD` or `BALLAST_REDIS_PASSWORD_FILE`).
    pub budget_store: String,
    /// How often each instance leases tokens for the coming interval (default
    /// 100ms; 20ms to 1s).
    pub lease_interval: Option<String>,
    /// How many instances share the budgets when Redis cannot be reached and
    /// no instance registrations are known (fleet mode with `--config-store`
    /// counts them); each instance then admits its share of the limit
    /// (default 1).
    pub instances: Option<u32>,
    /// Prefix of the Redis keys (default `ballast`).
    pub key_prefix: Option<String>,
}
