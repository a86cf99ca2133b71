//! Where a request goes: route matching (`table`), the weight engine
//! (`weights`, run by `engine`), the per-request choice (`picker`) and the
//! state the engine publishes for it (`state`); regions (`geo`, `spillover`),
//! priority tiers (`tiers`), scheduled region weights (`schedule`),
//! event budgets (`budget`), request keys (`sticky`), the consistent-hash
//! ring (`ring`), the read/write split (`read_write`) and shadow policies
//! (`shadow`).

pub mod budget;
pub mod engine;
pub mod geo;
pub mod picker;
pub mod read_write;
pub mod ring;
pub mod schedule;
pub mod shadow;
pub mod spillover;
pub mod state;
pub mod sticky;
pub mod table;
pub mod tiers;
pub mod weights;
