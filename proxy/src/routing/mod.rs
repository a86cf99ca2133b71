//! Where a request goes: route matching (`table`) and backend choice (`picker`).

pub mod picker;
pub mod table;
