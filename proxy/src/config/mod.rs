//! Configuration: YAML text → raw serde types (`raw`) → validated, immutable
//! [`Snapshot`] (`compile`). Every entry point reports all problems at once,
//! each with its YAML path.
//!
//! Beside the snapshot live the data it is made of and needs no other part of
//! the proxy for: the route table (`routes`) with each route's edits
//! (`route_edits`), redirect (`redirects`) and rate limiter (`rate_limits`), round-robin cycles
//! (`round_robin`), certificate loading (`certs`), calendar dates
//! (`calendar`), span export (`trace_export`), reading a file's text safely (`source`) and backends named
//! by DNS (`discovery`), `${VAR}` substitution (`variables`), the
//! unknown keys of a file with their likely meaning (`unknown_keys`) and the
//! addresses an instance is given on its command line (`instance`).
//! [`ConfigView`] (`view`) is the one serializable view of a snapshot,
//! behind both the admin API's configuration and `ballast check`.

mod access_log;
mod calendar;
pub mod certs;
mod client_address;
mod compile;
mod discovery;
mod error;
mod fleet;
mod instance;
pub mod rate_limits;
pub mod raw;
mod raw_edits;
mod raw_fleet;
mod raw_tracing;
pub mod redirects;
mod retry_policy;
pub mod round_robin;
pub mod route_edits;
pub mod routes;
mod snapshot;
mod source;
mod summary;
mod trace_export;
mod unknown_keys;
mod variables;
pub mod view;

pub use access_log::{AccessField, AccessFields, AccessOutput};
pub use calendar::days_from_civil;
pub use client_address::{ClientAddressRule, DEFAULT_CLIENT_ADDRESS_HEADER};
pub use compile::compile;
pub use discovery::*;
pub use error::{ConfigError, ConfigErrors};
pub use fleet::FleetBudgets;
pub use instance::InstanceOverrides;
pub use snapshot::*;
pub use source::{read_config, MAX_CONFIG_BYTES, MAX_NESTING};
pub use trace_export::TraceExport;
pub use view::ConfigView;

use std::path::Path;

/// Parse YAML text into raw configuration, after `${VAR}` substitution
/// (`variables`). Shape errors (wrong types, bad YAML) carry the path and
/// line where they were found; unknown keys do not stop the parse: each is
/// returned beside the configuration, so the caller can report them with
/// every other problem.
pub fn parse(text: &str) -> Result<(raw::RawConfig, Vec<ConfigError>), ConfigErrors> {
    if text.trim().is_empty() {
        return Err(ConfigErrors::single("", "configuration is empty"));
    }
    source::check_nesting(text)?;
    let text = variables::substitute(text, |name| std::env::var(name).ok())?;
    let mut unknown = Vec::new();
    let deserializer = serde_yaml_ng::Deserializer::from_str(&text);
    let mut record_unknown =
        |path: serde_ignored::Path| unknown.push(unknown_keys::segments(&path));
    let tracked = serde_ignored::Deserializer::new(deserializer, &mut record_unknown);
    let raw = serde_path_to_error::deserialize(tracked).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        ConfigErrors::single(path, strip_location_prefix(&e.into_inner().to_string()))
    })?;
    let schema: serde_json::Value = match unknown.is_empty() {
        true => serde_json::Value::Null,
        false => {
            serde_json::to_value(schemars::schema_for!(raw::RawConfig)).expect("schemas serialize")
        }
    };
    let errors = unknown
        .iter()
        .map(|path| unknown_keys::unknown_key_error(&schema, path))
        .collect();
    Ok((raw, errors))
}

/// The YAML parser prefixes its messages with its own (shorter) path, as in
/// `pools.api: unknown field ...`; the full path is reported separately.
fn strip_location_prefix(message: &str) -> String {
    match message.split_once(": ") {
        Some((prefix, rest)) if !prefix.is_empty() && !prefix.contains(char::is_whitespace) => {
            rest.to_string()
        }
        _ => message.to_string(),
    }
}

/// Parse and compile YAML text; relative file paths resolve against
/// `base_dir`. Unknown keys and semantic problems are reported together.
pub fn load_str(text: &str, base_dir: &Path) -> Result<Snapshot, ConfigErrors> {
    load_str_with(text, base_dir, &InstanceOverrides::default())
}

/// [`load_str`] with this instance's addresses in place of the
/// configuration's.
pub fn load_str_with(
    text: &str,
    base_dir: &Path,
    overrides: &InstanceOverrides,
) -> Result<Snapshot, ConfigErrors> {
    let (mut raw, mut errors) = parse(text)?;
    if let Err(error) = overrides.apply(&mut raw) {
        errors.push(error);
    }
    match compile(raw, base_dir) {
        Ok(snapshot) if errors.is_empty() => Ok(snapshot),
        Ok(_) => Err(ConfigErrors(errors)),
        Err(ConfigErrors(more)) => {
            errors.extend(more);
            Err(ConfigErrors(errors))
        }
    }
}

/// Read (see [`read_config`]), parse and compile a configuration file.
pub fn load_file(path: &Path) -> Result<Snapshot, ConfigErrors> {
    let text = read_config(path)?;
    let base_dir = path.parent().unwrap_or_else(|| Path::new("."));
    load_str(&text, base_dir)
}

/// The JSON Schema of the configuration file, pretty-printed.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(raw::RawConfig);
    serde_json::to_string_pretty(&schema).expect("schemas serialize") + "\n"
}
