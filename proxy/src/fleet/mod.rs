//! Fleet mode: many instances as one ingress, their shared state in etcd
//! (configuration, overrides, membership) and Redis (event budgets).
//! The keys and the client (`store`); the follower that applies each stored
//! configuration and registers the instance (`follower`); drains and pins
//! shared through the store (`overrides`); event budgets shared through
//! Redis (`budgets`); the command-line
//! side (`commands`: the first read, `ballast config push` and `status`);
//! TLS to both stores (`tls`).
//! Without `--config-store` none of this runs: the single file is the
//! default.

pub mod budgets;
pub mod commands;
pub mod follower;
pub mod overrides;
pub mod store;
pub mod tls;

/// A secret from the environment: `VAR`, or the file `VAR_FILE` names (a
/// mounted secret; a trailing newline is dropped); `None` when neither is
/// set.
fn secret_from_env(var: &str) -> Result<Option<String>, String> {
    if let Ok(secret) = std::env::var(var) {
        return Ok(Some(secret));
    }
    let file_var = format!("{var}_FILE");
    match std::env::var(&file_var) {
        Ok(file) => std::fs::read_to_string(&file)
            .map(|s| Some(s.trim_end_matches(['\r', '\n']).to_string()))
            .map_err(|e| format!("cannot read {file_var} {file}: {e}")),
        Err(_) => Ok(None),
    }
}
