//! Where a request goes, per request: route matching (`table`), the
//! per-request choice (`picker`) and the state the control loop
//! ([`crate::control`]) publishes for it (`state`); client regions (`geo`),
//! event budget admission (`budget`), request keys (`sticky`), the
//! consistent-hash ring (`ring`), the read/write split (`read_write`) and
//! the shadow candidate's per-request comparison (`shadow`).

pub mod budget;
pub mod geo;
pub mod picker;
pub mod read_write;
pub mod ring;
pub mod shadow;
pub mod state;
pub mod sticky;
pub mod table;
