//! Tooling to exercise Ballast: an origin simulator that serves HTTP on
//! loopback ports, used by the demo, the integration tests and load tests.
#![forbid(unsafe_code)]

pub mod origin;
