//! Shared field parsing for every section: the error collector with its
//! socket address, duration and path helpers, bounded numbers, header names,
//! cookie names and CIDRs.

use crate::config::error::ConfigError;
use http::HeaderName;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// The longest duration any setting takes. The proxy adds durations to its
/// clocks (`Instant`s, and milliseconds in a `u64`); a bound keeps that
/// arithmetic far from overflow.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Collects errors while walking the configuration.
pub(super) struct Checker {
    pub(super) errors: Vec<ConfigError>,
    pub(super) base_dir: PathBuf,
}

impl Checker {
    pub(super) fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError::new(path, message));
    }

    pub(super) fn socket_addr(&mut self, path: &str, value: &str) -> Option<SocketAddr> {
        match SocketAddr::from_str(value.trim()) {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.error(
                    path,
                    format!("invalid socket address \"{value}\" (expected IP:port, e.g. \"127.0.0.1:8080\")"),
                );
                None
            }
        }
    }

    /// Parse an optional duration; zero is allowed, more than
    /// [`MAX_DURATION`] is not.
    pub(super) fn duration_or_zero(
        &mut self,
        path: &str,
        value: Option<&str>,
        default: Duration,
    ) -> Duration {
        let Some(text) = value else { return default };
        match humantime::parse_duration(text.trim()) {
            Ok(parsed) if parsed <= MAX_DURATION => parsed,
            Ok(_) => {
                self.error(path, "must be at most 365d");
                default
            }
            Err(_) => {
                self.error(
                    path,
                    format!(
                        "invalid duration \"{text}\" (expected e.g. \"250ms\", \"2s\", \"1m\")"
                    ),
                );
                default
            }
        }
    }

    /// Parse an optional duration that must be positive.
    pub(super) fn duration(
        &mut self,
        path: &str,
        value: Option<&str>,
        default: Duration,
    ) -> Duration {
        let parsed = self.duration_or_zero(path, value, default);
        if parsed.is_zero() {
            self.error(path, "must be greater than zero");
            return default;
        }
        parsed
    }

    /// A file named in the configuration: relative to the configuration's
    /// directory, made absolute so that errors show where it was looked for.
    pub(super) fn resolve(&self, file: &str) -> PathBuf {
        let joined = self.base_dir.join(file);
        std::path::absolute(&joined).unwrap_or(joined)
    }
}

/// A number that must lie in `range`.
pub(super) fn fraction(
    c: &mut Checker,
    path: String,
    value: Option<f64>,
    default: f64,
    range: RangeInclusive<f64>,
) -> f64 {
    match value {
        None => default,
        Some(v) if v.is_finite() && range.contains(&v) => v,
        Some(v) => {
            c.error(
                path,
                format!(
                    "{v} is out of range (allowed {} to {})",
                    range.start(),
                    range.end()
                ),
            );
            default
        }
    }
}

pub(super) fn header_name(
    c: &mut Checker,
    path: String,
    value: Option<&str>,
    default: &'static str,
) -> HeaderName {
    match value {
        None => HeaderName::from_static(default),
        Some(text) => HeaderName::from_str(text).unwrap_or_else(|_| {
            c.error(path, format!("invalid header name \"{text}\""));
            HeaderName::from_static(default)
        }),
    }
}

/// A cookie name is an HTTP token.
pub(super) fn valid_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

/// A CIDR, or a bare address meaning just that host.
pub(super) fn parse_net(text: &str) -> Option<ipnet::IpNet> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>().ok().or_else(|| {
        text.parse::<std::net::IpAddr>()
            .ok()
            .map(ipnet::IpNet::from)
    })
}

/// Each entry of a list of IP addresses or CIDR ranges at `path`.
pub(super) fn compile_nets(c: &mut Checker, path: &str, nets: &[String]) -> Vec<ipnet::IpNet> {
    nets.iter()
        .enumerate()
        .filter_map(|(i, net)| {
            parse_net(net).or_else(|| {
                c.error(
                    format!("{path}[{i}]"),
                    format!("invalid CIDR \"{net}\" (an IP address or a range like 10.0.0.0/8)"),
                );
                None
            })
        })
        .collect()
}
