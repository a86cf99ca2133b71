//! `fleet`: the Redis that keeps a fleet's event budgets, how often budget
//! tokens are leased, and the fleet size to assume without Redis.

use super::fields::Checker;
use crate::config::raw::RawFleet;
use crate::config::FleetBudgets;
use std::time::Duration;

const DEFAULT_LEASE_INTERVAL: Duration = Duration::from_millis(100);
const LEASE_INTERVAL_RANGE: (Duration, Duration) =
    (Duration::from_millis(20), Duration::from_secs(1));
const DEFAULT_KEY_PREFIX: &str = "ballast";

pub(super) fn compile_fleet(c: &mut Checker, raw: &RawFleet) -> FleetBudgets {
    if let Err(e) = check_redis_url(&raw.budget_store) {
        c.error("fleet.budget_store", e);
    }
    let lease_interval = c.duration(
        "fleet.lease_interval",
        raw.lease_interval.as_deref(),
        DEFAULT_LEASE_INTERVAL,
    );
    if !(LEASE_INTERVAL_RANGE.0..=LEASE_INTERVAL_RANGE.1).contains(&lease_interval) {
        c.error(
            "fleet.lease_interval",
            format!("{lease_interval:?} is out of range (allowed 20ms to 1s)"),
        );
    }
    let instances = raw.instances.unwrap_or(1);
    if instances == 0 {
        c.error("fleet.instances", "must be at least 1");
    }
    let key_prefix = raw
        .key_prefix
        .clone()
        .unwrap_or_else(|| DEFAULT_KEY_PREFIX.to_string());
    if key_prefix.is_empty() || key_prefix.contains(char::is_whitespace) {
        c.error(
            "fleet.key_prefix",
            format!("\"{key_prefix}\" must be non-empty, without spaces"),
        );
    }
    FleetBudgets {
        budget_store: raw.budget_store.trim().to_string(),
        lease_interval,
        instances: instances.max(1),
        key_prefix,
    }
}

/// `redis://HOST:PORT[/DB]` (`rediss://` for TLS), with no credentials in it.
fn check_redis_url(url: &str) -> Result<(), String> {
    let expected = "expected redis://HOST:PORT[/DB], or rediss:// for TLS";
    let trimmed = url.trim();
    let rest = trimmed
        .strip_prefix("redis://")
        .or_else(|| trimmed.strip_prefix("rediss://"))
        .ok_or_else(|| format!("\"{url}\": {expected}"))?;
    let (authority, db) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.contains('@') {
        return Err("credentials do not belong in the configuration (the URL is not repeated here so that they are not shown); set BALLAST_REDIS_USERNAME and BALLAST_REDIS_PASSWORD (or BALLAST_REDIS_PASSWORD_FILE)".to_string());
    }
    let valid_authority = authority
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !valid_authority {
        return Err(format!(
            "\"{url}\": \"{authority}\" is not HOST:PORT ({expected})"
        ));
    }
    if !db.is_empty() && db.parse::<u32>().is_err() {
        return Err(format!("\"{url}\": the database \"{db}\" is not a number"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls_are_host_port_and_an_optional_database_without_credentials() {
        assert!(check_redis_url("redis://127.0.0.1:6379").is_ok());
        assert!(check_redis_url("redis://cache.internal:6380/2").is_ok());
        assert!(check_redis_url("rediss://cache.internal:6380").is_ok());
        for (url, expected) in [
            ("http://127.0.0.1:6379", "expected redis://"),
            ("redis://127.0.0.1", "is not HOST:PORT"),
            (
                "redis://user:secret@127.0.0.1:6379",
                "credentials do not belong",
            ),
            ("redis://127.0.0.1:6379/x", "is not a number"),
        ] {
            let error = check_redis_url(url).unwrap_err();
            assert!(error.contains(expected), "{url}: {error}");
            assert!(!error.contains("secret"), "{error}");
        }
    }
}
