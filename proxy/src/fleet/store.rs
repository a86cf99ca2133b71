//! The etcd keys of a fleet, under the prefix the store URL names
//! (`etcd://HOST:PORT[,HOST:PORT...][/PREFIX]`, default prefix `/ballast`;
//! `etcds://` for TLS, see [`super::tls`]):
//!
//! - `PREFIX/config`: the configuration's YAML text, as a file holds it;
//! - `PREFIX/members/INSTANCE`: each running instance's registration (JSON,
//!   see [`Member`]), on a lease that lapses when the instance stops
//!   renewing it;
//! - `PREFIX/overrides/...`: drains and pins issued on any instance (see
//!   [`super::overrides`]).
//!
//! Credentials come from the environment, never from the URL or the
//! configuration: `BALLAST_ETCD_USERNAME` with `BALLAST_ETCD_PASSWORD` (or
//! `BALLAST_ETCD_PASSWORD_FILE`, a file holding it).

use super::tls;
use etcd_client::{
    Certificate, Client, ConnectOptions, GetOptions, Identity, PutOptions, TlsOptions,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The prefix of a store URL without one.
const DEFAULT_PREFIX: &str = "/ballast";

/// How long one request to etcd may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// How long connecting to an etcd endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Where a fleet keeps its shared state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreUrl {
    /// Reached over TLS (`etcds://`).
    pub tls: bool,
    /// `host:port` of each etcd endpoint.
    pub endpoints: Vec<String>,
    /// The key prefix, starting with `/`, without a trailing one.
    pub prefix: String,
}

impl FromStr for StoreUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, String> {
        let (tls, rest) = match (url.strip_prefix("etcd://"), url.strip_prefix("etcds://")) {
            (Some(rest), _) => (false, rest),
            (None, Some(rest)) => (true, rest),
            (None, None) => return Err(format!(
                "\"{url}\": a configuration store is etcd://HOST:PORT[,HOST:PORT...][/PREFIX] (etcds:// for TLS)"
            )),
        };
        let (hosts, prefix) = match rest.find('/') {
            Some(at) => (&rest[..at], rest[at..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let endpoints: Vec<String> = hosts.split(',').map(str::to_string).collect();
        for endpoint in &endpoints {
            let valid = endpoint
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !valid {
                return Err(format!(
                    "\"{url}\": \"{endpoint}\" is not HOST:PORT (etcd's client port, usually 2379)"
                ));
            }
        }
        if prefix.contains(char::is_whitespace) || prefix.contains("//") {
            return Err(format!(
                "\"{url}\": the prefix \"{prefix}\" may not hold spaces or empty segments"
            ));
        }
        let prefix = if prefix.is_empty() {
            DEFAULT_PREFIX
        } else {
            prefix
        };
        Ok(Self {
            tls,
            endpoints,
            prefix: prefix.to_string(),
        })
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "etcds" } else { "etcd" };
        write!(f, "{scheme}://{}{}", self.endpoints.join(","), self.prefix)
    }
}

impl StoreUrl {
    /// The key holding the configuration.
    pub fn config_key(&self) -> String {
        format!("{}/config", self.prefix)
    }

    /// The prefix of the members' registrations.
    pub fn members_prefix(&self) -> String {
        format!("{}/members/", self.prefix)
    }

    /// The prefix of the operator overrides (see [`super::overrides`]).
    pub fn overrides_prefix(&self) -> String {
        format!("{}/overrides/", self.prefix)
    }

    /// The key of one instance's registration.
    pub fn member_key(&self, instance: &str) -> String {
        format!("{}{instance}", self.members_prefix())
    }
}

/// An instance's registration, as stored under `members/INSTANCE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub instance: String,
    /// The instance's admin endpoint.
    pub admin: String,
    /// Ballast's version.
    pub version: String,
    /// The store revision of the configuration it runs.
    pub config_revision: Option<i64>,
    /// Set when it refused a newer configuration: that revision, and why.
    pub rejected_revision: Option<i64>,
    pub errors: Vec<String>,
    /// Unix seconds of its last report.
    pub updated: u64,
    /// Each backend's share on this instance, by backend id (`POOL/ADDR`),
    /// as of its last report.
    #[serde(default)]
    pub shares: BTreeMap<String, f64>,
}

/// The configuration text stored, and the revision that last wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredConfig {
    pub text: String,
    pub revision: i64,
}

/// A connection to the fleet's etcd.
#[derive(Clone)]
pub struct Store {
    pub url: StoreUrl,
    pub client: Client,
}

impl Store {
    /// A client for `url` (connections are made on first use).
    pub async fn connect(url: &StoreUrl) -> Result<Self, String> {
        let mut options = ConnectOptions::new()
            .with_timeout(REQUEST_TIMEOUT)
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
        if let Some((user, password)) = credentials()? {
            options = options.with_user(user, password);
        }
        if let Some(tls) = tls_options(url)? {
            options = options.with_tls(tls);
        }
        let client = Client::connect(&url.endpoints, Some(options))
            .await
            .map_err(|e| format!("cannot connect to {url}: {e}"))?;
        Ok(Self {
            url: url.clone(),
            client,
        })
    }

    /// The configuration stored now and the store's current revision;
    /// `None` when no configuration was pushed yet.
    pub async fn config(&mut self) -> Result<(Option<StoredConfig>, i64), String> {
        let key = self.url.config_key();
        let response = self
            .client
            .get(key.as_str(), None)
            .await
            .map_err(|e| format!("cannot read {key} from {}: {e}", self.url))?;
        let revision = response.header().map_or(0, |h| h.revision());
        let stored = match response.kvs().first() {
            None => None,
            Some(kv) => Some(StoredConfig {
                text: String::from_utf8(kv.value().to_vec())
                    .map_err(|_| format!("{key} is not UTF-8 text"))?,
                revision: kv.mod_revision(),
            }),
        };
        Ok((stored, revision))
    }

    /// Store `text` as the configuration; the revision that wrote it.
    pub async fn push_config(&mut self, text: &str) -> Result<i64, String> {
        let key = self.url.config_key();
        self.put(&key, text, None).await
    }

    /// Write `value` at `key` (attached to `lease`, when given); the
    /// revision that wrote it.
    pub async fn put(
        &mut self,
        key: &str,
        value: impl Into<Vec<u8>>,
        lease: Option<i64>,
    ) -> Result<i64, String> {
        let options = lease.map(|lease| PutOptions::new().with_lease(lease));
        let response = self
            .client
            .put(key, value, options)
            .await
            .map_err(|e| format!("cannot write {key} to {}: {e}", self.url))?;
        Ok(response.header().map_or(0, |h| h.revision()))
    }

    /// Every registered member, by instance name (an unreadable entry is
    /// reported as an error of its own).
    pub async fn members(&mut self) -> Result<Vec<Result<Member, String>>, String> {
        let prefix = self.url.members_prefix();
        let response = self
            .client
            .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
            .await
            .map_err(|e| format!("cannot list {prefix} in {}: {e}", self.url))?;
        Ok(response
            .kvs()
            .iter()
            .map(|kv| {
                serde_json::from_slice(kv.value()).map_err(|e| {
                    format!(
                        "{}: not a member registration: {e}",
                        String::from_utf8_lossy(kv.key())
                    )
                })
            })
            .collect())
    }
}

/// The TLS options of an `etcds://` URL, checked (see [`super::tls`]).
pub fn tls_options(url: &StoreUrl) -> Result<Option<TlsOptions>, String> {
    let Some(settings) = tls::from_env(tls::ETCD, url.tls)? else {
        return Ok(None);
    };
    let mut options = TlsOptions::new();
    options = match settings.ca_pem {
        Some(ca) => options.ca_certificate(Certificate::from_pem(ca)),
        None => options.with_webpki_roots(),
    };
    if let Some(client) = settings.client {
        options = options.identity(Identity::from_pem(client.cert_pem, client.key_pem));
    }
    Ok(Some(options))
}

/// The user and password from the environment, if set.
fn credentials() -> Result<Option<(String, String)>, String> {
    let Ok(user) = std::env::var("BALLAST_ETCD_USERNAME") else {
        return Ok(None);
    };
    match super::secret_from_env("BALLAST_ETCD_PASSWORD")? {
        Some(password) => Ok(Some((user, password))),
        None => Err("BALLAST_ETCD_USERNAME is set without BALLAST_ETCD_PASSWORD or BALLAST_ETCD_PASSWORD_FILE".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_name_endpoints_and_a_prefix() {
        let url: StoreUrl = "etcd://127.0.0.1:2379,10.0.0.2:2379/fleet/eu/"
            .parse()
            .unwrap();
        assert_eq!(url.endpoints, ["127.0.0.1:2379", "10.0.0.2:2379"]);
        assert_eq!(url.prefix, "/fleet/eu");
        assert_eq!(url.config_key(), "/fleet/eu/config");
        assert_eq!(url.member_key("a"), "/fleet/eu/members/a");
        assert_eq!(
            url.to_string(),
            "etcd://127.0.0.1:2379,10.0.0.2:2379/fleet/eu"
        );
        assert!(!url.tls);
        let plain: StoreUrl = "etcd://localhost:2379".parse().unwrap();
        assert_eq!(plain.prefix, "/ballast");
        let secure: StoreUrl = "etcds://etcd.internal:2379/f".parse().unwrap();
        assert!(secure.tls);
        assert_eq!(secure.endpoints, ["etcd.internal:2379"]);
        assert_eq!(secure.to_string(), "etcds://etcd.internal:2379/f");
    }

    #[test]
    fn malformed_store_urls_say_what_is_wrong() {
        for (url, expected) in [
            ("http://127.0.0.1:2379", "etcd://HOST:PORT"),
            ("etcd://127.0.0.1/x", "is not HOST:PORT"),
            ("etcd://:2379", "is not HOST:PORT"),
            ("etcd://a:1,b:x", "\"b:x\" is not HOST:PORT"),
            ("etcd://a:1/x//y", "empty segments"),
        ] {
            let error = url.parse::<StoreUrl>().unwrap_err();
            assert!(error.contains(expected), "{url}: {error}");
        }
    }
}
