//! Where a request goes: route matching (`table`), the weight engine
//! (`weights`, run by `engine`), the per-request choice (`picker`) and the
//! state the engine publishes for it (`state`); regions (`geo`, `spillover`),
//! priority tiers (`tiers`), scheduled region weights (`schedule`),
//! event budgets (`budget`), request keys (`sticky`), the consistent-hash
//! ring (`ring`), the read/write split (`read_write`) and shadow policies
//! (`shadow`). Per request, `route` puts these together (`route_request`),
//! `retry` says whether a failed request may try another backend, and
//! `explain` words the decision.

pub mod budget;
pub mod engine;
pub mod explain;
pub mod geo;
pub mod picker;
pub mod read_write;
pub mod retry;
pub mod ring;
pub mod route;
pub mod schedule;
pub mod shadow;
pub mod spillover;
pub mod state;
pub mod sticky;
pub mod table;
pub mod tiers;
pub mod weights;
