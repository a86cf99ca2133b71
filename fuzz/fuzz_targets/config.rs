//! Fuzzes configuration loading, `config::load_str` (taken as its two steps,
//! `parse` then `compile`), with arbitrary text, seeded with the shipped
//! configurations and those of the test suite.
//!
//! Checked on every input (see `ballast_fuzz::check_config`):
//! * no panic, whatever the text: bad YAML, wrong types and bad values are
//!   errors;
//! * a failed load names at least one problem, each with a message;
//! * a loaded snapshot is consistent: at least one listener, pool and route;
//!   every route names an existing pool; pool, route, listener and backend
//!   names or addresses are unique; every pool has a backend (or a backend
//!   entry named by DNS) of positive weight and a schedule that only names
//!   such backends; validated numbers
//!   (shares, smoothing, attempts, canary bounds, threads) are in range; an
//!   HTTP health check's host is a valid header value and its path a valid
//!   URI; and every duration can be added to the proxy's clocks (an
//!   `Instant`, and milliseconds in a `u64`) without overflow.
//!
//! Relative file paths resolve against a directory that does not exist, and
//! texts naming an absolute certificate path are skipped, so the only file
//! access is a certificate read that fails.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| ballast_fuzz::check_config(text));
