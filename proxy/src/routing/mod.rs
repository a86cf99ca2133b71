//! Where a request goes: route matching (`table`), the weight engine
//! (`weights`, run by `engine`), the per-request choice (`picker`) and the
//! log of routing decisions (`decisions`); regions (`geo`, `spillover`),
//! priority tiers (`tiers`), event budgets (`budget`), request keys (`sticky`) and the consistent-hash
//! ring (`ring`).

pub mod budget;
pub mod decisions;
pub mod engine;
pub mod geo;
pub mod picker;
pub mod ring;
pub mod spillover;
pub mod sticky;
pub mod table;
pub mod tiers;
pub mod weights;
