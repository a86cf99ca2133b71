//! Live per-backend state, kept apart from configuration: what the proxy
//! measures from traffic (in-flight, latency, outcomes) and what backends
//! report about themselves (`Server-Load`, ORCA), plus the clock they share.

pub mod backend;
pub mod clock;
pub mod live;
pub mod load_latency;
pub mod peak_ewma;
pub mod server_load;
pub mod window;
