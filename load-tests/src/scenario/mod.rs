//! Load-test scenarios: each one starts simulated origins and a proxy
//! (Ballast in each routing mode, nginx and HAProxy when installed), drives
//! bounded load through it on loopback, changes the origins' behaviour at
//! scripted moments, and measures what clients saw.
//!
//! - [`plan`]: the scenarios (backends, load, scripted changes, tracked
//!   backend); [`queueing`]: those whose origins have finite capacity;
//! - [`contender`]: the proxies compared; [`configs`]: their configurations;
//! - [`runner`]: one scenario against one contender, using [`process`]
//!   (the proxy as a child process), [`load`] (the open- or closed-loop
//!   client) and
//!   [`published`] (Ballast's published shares, through [`fetch`]);
//! - [`stats`], [`timeline`], [`analysis`]: percentiles, 1-s buckets,
//!   convergence; [`consistency`]: stale reads of the read-your-writes
//!   workload;
//! - [`report`], [`chart`]: Markdown, CSV and PNG; [`checks`]: the quality
//!   assertions of the quick pace; [`targets`]: the reported targets
//!   against round robin; [`versus`]: the default against the best
//!   contenders.

pub mod analysis;
pub mod chart;
pub mod checks;
pub mod configs;
pub mod consistency;
pub mod contender;
pub mod fetch;
pub mod load;
pub mod plan;
pub mod process;
pub mod published;
pub mod queueing;
pub mod report;
pub mod runner;
pub mod stats;
pub mod targets;
pub mod timeline;
pub mod versus;
