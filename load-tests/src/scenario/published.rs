//! The shares Ballast publishes, sampled from `GET /api/v1/state` every
//! 250 ms while a run lasts.

use super::fetch::Fetcher;
use http::Uri;
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

pub const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// The published share of each backend at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// From the start of the load.
    pub at: Duration,
    /// Indexed like the scenario's backends; `None` if not listed.
    pub shares: Vec<Option<f64>>,
}

#[derive(Deserialize)]
struct State {
    pools: Vec<Pool>,
}

#[derive(Deserialize)]
struct Pool {
    backends: Vec<Backend>,
}

#[derive(Deserialize)]
struct Backend {
    addr: String,
    share: f64,
}

/// Each backend's share in a `/api/v1/state` document, in the order of
/// `addrs`.
pub fn parse_shares(json: &str, addrs: &[SocketAddr]) -> Result<Vec<Option<f64>>, String> {
    let state: State = serde_json::from_str(json).map_err(|e| format!("unexpected state: {e}"))?;
    let listed: Vec<Backend> = state.pools.into_iter().flat_map(|p| p.backends).collect();
    Ok(addrs
        .iter()
        .map(|addr| {
            let addr = addr.to_string();
            listed.iter().find(|b| b.addr == addr).map(|b| b.share)
        })
        .collect())
}

/// Reads the shares once: an error says why they cannot be read (for
/// instance a Ballast build without `/api/v1/state`).
pub async fn read_once(
    admin: SocketAddr,
    addrs: &[SocketAddr],
) -> Result<Vec<Option<f64>>, String> {
    read(
        &Fetcher::new(Duration::from_secs(2)),
        &state_uri(admin),
        addrs,
    )
    .await
}

/// Samples every [`SAMPLE_EVERY`] from `start` until `stop` turns true;
/// failed samples are skipped.
pub async fn sample(
    admin: SocketAddr,
    addrs: Vec<SocketAddr>,
    start: Instant,
    mut stop: watch::Receiver<bool>,
) -> Vec<Sample> {
    let uri = state_uri(admin);
    let fetcher = Fetcher::new(SAMPLE_EVERY);
    let mut ticks = tokio::time::interval_at(start, SAMPLE_EVERY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut samples = Vec::new();
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.wait_for(|stopped| *stopped) => return samples,
        }
        let at = start.elapsed();
        if let Ok(shares) = read(&fetcher, &uri, &addrs).await {
            samples.push(Sample { at, shares });
        }
    }
}

fn state_uri(admin: SocketAddr) -> Uri {
    format!("http://{admin}/api/v1/state")
        .parse()
        .expect("a socket address makes a valid URI")
}

async fn read(
    fetcher: &Fetcher,
    uri: &Uri,
    addrs: &[SocketAddr],
) -> Result<Vec<Option<f64>>, String> {
    match fetcher.get(uri).await? {
        (200, body) => parse_shares(&body, addrs),
        (status, body) => Err(format!(
            "GET {uri} answered {status}: {}",
            body.trim().chars().take(200).collect::<String>()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_matched_by_address() {
        let json = r#"{"pools": [{"name": "scenario", "backends": [
            {"addr": "127.0.0.1:2", "share": 0.25, "eligible": true},
            {"addr": "127.0.0.1:1", "share": 0.75}
        ]}], "reload": null}"#;
        let addrs = ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"].map(|a| a.parse().unwrap());
        assert_eq!(
            parse_shares(json, &addrs).unwrap(),
            [Some(0.75), Some(0.25), None]
        );
        assert!(parse_shares("{}", &addrs).is_err());
    }
}
