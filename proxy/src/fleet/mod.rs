//! Fleet mode: many instances as one ingress, their shared state in etcd.
//! The keys and the client (`store`); the follower that applies each stored
//! configuration and registers the instance (`follower`); drains and pins
//! shared through the store (`overrides`); the command-line
//! side (`commands`: the first read, `ballast config push` and `status`).
//! Without `--config-store` none of this runs: the single file is the
//! default.

pub mod commands;
pub mod follower;
pub mod overrides;
pub mod store;
