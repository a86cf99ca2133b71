//! The configuration of a route's edits as written: header edits, path and
//! host rewrites, redirects, rate limits (raw serde types, like [`super::raw`], re-exported there).

use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Header edits, applied in this order: `remove`, then `set`, then `add`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawHeaderEdits {
    /// Headers to set, replacing any of the same name.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Headers to add, beside any of the same name.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    /// Header names to remove.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// How the request's path and host are rewritten on the way to the backend.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawRewrite {
    /// Replaces the part of the path the route's `match.path_prefix` matched
    /// (`/` strips it).
    pub path_prefix: Option<String>,
    /// A regex rewrite of the path: every match of `pattern` is replaced.
    pub regex: Option<RawRegexRewrite>,
    /// The `Host` the backend sees.
    pub host: Option<String>,
}

/// A per-client rate limit: a token bucket per key.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawRateLimit {
    /// Sustained rate per key, 0.001..1000000 requests a second.
    pub requests_per_second: f64,
    /// Requests a key may send at once above the rate, 1..1000000
    /// (default: the rate rounded up).
    pub burst: Option<u32>,
    /// What a request is counted under: client_address (default) or
    /// {header: NAME}.
    pub key: Option<RawRateLimitKey>,
}

/// `client_address`, or `{header: NAME}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawRateLimitKey {
    /// `client_address`.
    Named(String),
    /// A request header's value.
    Header(RawHeaderKey),
}

/// A request header whose value is the rate limit's key.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(deny_unknown_fields)]
pub struct RawHeaderKey {
    /// The header's name; requests without it share one bucket.
    pub header: String,
}

/// A redirect answered by Ballast itself.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawRedirect {
    /// The `Location`: a URL template with {scheme}, {host}, {path} and
    /// {query} filled from the request, e.g. "https://{host}{path}{query}".
    pub to: String,
    /// 301, 302, 303, 307 or 308 (default 301).
    pub status: Option<u16>,
}

/// Every match of `pattern` in the path is replaced by `replacement`.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawRegexRewrite {
    /// A regular expression (Rust `regex` syntax, at most 1024 characters).
    pub pattern: String,
    /// The replacement; `$1` or `${name}` insert a capture group.
    pub replacement: String,
}
