//! The control loop, off the hot path: it turns what the live stats show
//! into the weights the per-request picker ([`crate::routing`]) reads, and
//! publishes them atomically with the snapshot they belong to
//! ([`crate::routing::state`]). Requests never wait for it.
//!
//! [`engine::Engine`] runs the loop. Every tick (the shortest pool's
//! `recompute_interval`) it recomputes each pool that is due, in this order:
//! 1. [`schedule`]: the weight template that applies at the wall clock's time;
//! 2. [`ejection`]: ejections that ran their course end (slow start), then
//!    backends failing in a row are ejected;
//! 3. [`health`]: active health verdicts that changed;
//! 4. [`canary`]: canary breakers open or close;
//! 5. [`backends`]: the formulas' inputs from each backend's memory (and
//!    panic mode when nothing is eligible); [`overrides`]: expired pins lift;
//! 6. [`shares`]: the share pipeline — [`tiers`] and [`weights`], canary
//!    bounds, the region cap, pins — and each share change;
//!    [`shadow`]: the same for a candidate policy, beside the live one;
//! 7. [`ring_steps`]: the consistent-hash ring steps toward the shares;
//! 8. [`tiers`]: tier loads, failover and failback;
//! 9. with client regions, [`spillover`] moves each region's spill fraction
//!    and [`schedule`] adds its least spill;
//!
//! then publishes every pool it recomputed at once, and finally [`budgets`]
//! turns the routes' budget counters into rates. Reloads
//! ([`engine::Engine::install`]) keep what each controller learned about
//! what remains; operator overrides ([`overrides`]) recompute their pool at
//! once.
//!
//! Controllers are plain functions over their own memory and the readings
//! they are given; they return [`events::Event`]s, and the one
//! [`events::EventSink`] turns those into log lines, metrics and decisions.
//! [`inspect`] is what the admin API sees, read at one moment.

pub mod backends;
pub mod budgets;
pub mod canary;
pub mod ejection;
pub mod engine;
pub mod events;
pub mod health;
pub mod inspect;
pub mod overrides;
pub mod ring_steps;
pub mod schedule;
pub mod shadow;
pub mod shares;
pub mod spillover;
pub mod tiers;
pub mod weights;
