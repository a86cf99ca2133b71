//! Ballast: an L7 reverse proxy on Pingora for backends that are not alike.
//!
//! Configuration is compiled into an immutable [`config::Snapshot`]; each
//! request is matched to a route ([`routing::table`]), a backend is chosen by
//! the pure picker ([`routing::picker`]) from the weights the control loop
//! ([`control`]) publishes, and [`proxy`] glues that into Pingora.
//! [`server`] assembles listeners, TLS and the admin endpoint;
//! [`connections`] limits client connections and bounds their idle time;
//! [`check`] is the `ballast check` report; [`fleet`] shares configuration
//! between instances through etcd.
#![forbid(unsafe_code)]

pub mod admin;
pub mod check;
pub mod config;
pub mod connections;
pub mod control;
pub mod discovery;
pub mod fleet;
pub mod probes;
pub mod proxy;
pub mod reload;
pub mod routing;
pub mod server;
pub mod stats;
pub mod telemetry;
pub mod tls;
