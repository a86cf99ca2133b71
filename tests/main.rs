//! Ballast's integration tests, in one binary: each module starts real
//! servers (a Ballast, origin simulators) on ephemeral loopback ports.
//! `common` holds the shared helpers.
//!
//! The dashboard test needs Chromium and is ignored by a plain run;
//! `make test` runs it with `cargo test -p ballast --test integration --
//! --ignored dashboard::`.

mod common;

mod admin;
mod certificates;
mod cli;
mod client_address;
mod client_faults;
mod config;
mod connection_limits;
mod dashboard;
mod discovery;
mod docs;
mod drills;
mod fleet_budgets;
mod fleet_config;
mod fleet_overrides;
mod fleet_tls;
mod grpc;
mod hostile;
mod hostile_config;
mod http_semantics;
mod layout;
mod polls_and_schedules;
mod proxy;
mod read_write;
mod retries;
mod rewrites;
mod routing;
mod span_export;
mod upstream_tls;
mod websocket;
