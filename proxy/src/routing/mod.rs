//! Where a request goes, per request: route matching (`table`), the
//! per-request choice (`picker`) and the state the control loop
//! ([`crate::control`]) publishes for it (`state`); client regions (`geo`),
//! event budget admission (`budget`), request keys (`sticky`), the
//! consistent-hash ring (`ring`), the read/write split (`read_write`) and
//! the shadow candidate's per-request comparison (`shadow`). Per request,
//! `route` puts these together (`route_request`), `retry` says whether a
//! failed request may try another backend, `retry_budget` bounds the
//! retries in flight per pool, and `explain` words the
//! decision.

pub mod budget;
pub mod explain;
pub mod geo;
pub mod picker;
pub mod read_write;
pub mod retry;
pub mod retry_budget;
pub mod ring;
pub mod route;
pub mod shadow;
pub mod state;
pub mod sticky;
pub mod table;
