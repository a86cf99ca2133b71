//! The control loop, off the hot path.

pub mod engine;
pub mod schedule;
pub mod spillover;
pub mod tiers;
pub mod weights;
