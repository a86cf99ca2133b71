//! Tooling to exercise Ballast: an origin simulator that serves HTTP on
//! loopback ports, with latency, errors, failures, load reports and finite
//! capacity (workers and a queue) that can change while it runs (in
//! process, or through a JSON control API), used by the demo, the
//! integration tests and load tests.
#![forbid(unsafe_code)]

pub mod bare_pingora;
pub mod behaviour;
pub mod control;
pub mod latency;
mod load_report;
pub mod origin;
mod reset;
pub mod scenario;
mod stats;
mod workers;
