//! What differs between instances that share one configuration (a fleet
//! reading it from a store, or several processes on one host reading one
//! file): the listeners' addresses and the admin address, given on the
//! command line (`--listen`, `--admin`). They replace the configuration's
//! before it is compiled, on every load and reload alike.

use super::raw::{RawAdmin, RawConfig};
use super::ConfigError;
use std::net::SocketAddr;

/// The addresses this instance uses instead of the configuration's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceOverrides {
    /// The listeners' addresses, in the configuration's order: exactly one
    /// per listener when given.
    pub listen: Vec<SocketAddr>,
    /// The admin endpoint's address.
    pub admin: Option<SocketAddr>,
}

impl InstanceOverrides {
    /// Replace the addresses in `raw`; an error when `listen` does not name
    /// one address per listener.
    pub(super) fn apply(&self, raw: &mut RawConfig) -> Result<(), ConfigError> {
        if !self.listen.is_empty() {
            if self.listen.len() != raw.listeners.len() {
                return Err(ConfigError::new(
                    "listeners",
                    format!(
                        "--listen gave {} address(es) for {} listener(s): give one per listener, in order",
                        self.listen.len(),
                        raw.listeners.len()
                    ),
                ));
            }
            for (listener, address) in raw.listeners.iter_mut().zip(&self.listen) {
                listener.address = address.to_string();
            }
        }
        if let Some(address) = self.admin {
            match raw.admin.as_mut() {
                Some(admin) => admin.address = address.to_string(),
                None => {
                    raw.admin = Some(RawAdmin {
                        address: address.to_string(),
                        token_env: None,
                        allowed_hosts: Vec::new(),
                    })
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_LISTENERS: &str = "listeners: [{address: \"127.0.0.1:1\"}, {address: \"127.0.0.1:2\"}]\npools: {p: {backends: [{addr: \"127.0.0.1:3\"}]}}\nroutes: [{pool: p}]\n";

    #[test]
    fn the_given_addresses_replace_the_configurations() {
        let overrides = InstanceOverrides {
            listen: vec![
                "127.0.0.1:8001".parse().unwrap(),
                "[::1]:8002".parse().unwrap(),
            ],
            admin: Some("127.0.0.1:9001".parse().unwrap()),
        };
        let snapshot =
            crate::config::load_str_with(TWO_LISTENERS, ".".as_ref(), &overrides).unwrap();
        let addresses: Vec<String> = snapshot
            .listeners
            .iter()
            .map(|l| l.address.to_string())
            .collect();
        assert_eq!(addresses, ["127.0.0.1:8001", "[::1]:8002"]);
        assert_eq!(snapshot.admin.address.to_string(), "127.0.0.1:9001");
    }

    #[test]
    fn a_listen_list_of_the_wrong_length_is_an_error_beside_the_others() {
        let overrides = InstanceOverrides {
            listen: vec!["127.0.0.1:8001".parse().unwrap()],
            admin: None,
        };
        let broken = TWO_LISTENERS.replace("pool: p}", "pool: q}");
        let errors = crate::config::load_str_with(&broken, ".".as_ref(), &overrides)
            .unwrap_err()
            .lines();
        assert!(
            errors
                .iter()
                .any(|e| e.contains("--listen gave 1 address(es) for 2 listener(s)")),
            "{errors:?}"
        );
        assert!(errors.iter().any(|e| e.contains("\"q\"")), "{errors:?}");
    }
}
