//! The access log's fields (which of them a line carries, fixed when the
//! configuration is compiled, so a request only tests a bit per field) and
//! its output.

use std::path::PathBuf;

/// Where access lines go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AccessOutput {
    /// With the other logs.
    #[default]
    Stderr,
    /// To this file, reopened on SIGUSR1.
    File(PathBuf),
}

/// A field the access line may carry, by its name in the configuration and
/// in the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessField {
    RequestId,
    TraceId,
    ClientAddress,
    Method,
    Host,
    Path,
    UserAgent,
    Status,
    Route,
    Pool,
    Backend,
    Attempts,
    DecisionRule,
    GrpcStatus,
    BytesReceived,
    BytesSent,
    UpstreamConnectMs,
    UpstreamFirstByteMs,
    DurationMs,
    UpgradedForMs,
    Error,
}

impl AccessField {
    pub const ALL: [AccessField; 21] = [
        Self::RequestId,
        Self::TraceId,
        Self::ClientAddress,
        Self::Method,
        Self::Host,
        Self::Path,
        Self::UserAgent,
        Self::Status,
        Self::Route,
        Self::Pool,
        Self::Backend,
        Self::Attempts,
        Self::DecisionRule,
        Self::GrpcStatus,
        Self::BytesReceived,
        Self::BytesSent,
        Self::UpstreamConnectMs,
        Self::UpstreamFirstByteMs,
        Self::DurationMs,
        Self::UpgradedForMs,
        Self::Error,
    ];

    /// The fields of a line when the configuration names none.
    pub const DEFAULT: [AccessField; 13] = [
        Self::RequestId,
        Self::TraceId,
        Self::ClientAddress,
        Self::Method,
        Self::Path,
        Self::Status,
        Self::Route,
        Self::Backend,
        Self::Attempts,
        Self::GrpcStatus,
        Self::DurationMs,
        Self::UpgradedForMs,
        Self::Error,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::RequestId => "request_id",
            Self::TraceId => "trace_id",
            Self::ClientAddress => "client_address",
            Self::Method => "method",
            Self::Host => "host",
            Self::Path => "path",
            Self::UserAgent => "user_agent",
            Self::Status => "status",
            Self::Route => "route",
            Self::Pool => "pool",
            Self::Backend => "backend",
            Self::Attempts => "attempts",
            Self::DecisionRule => "decision_rule",
            Self::GrpcStatus => "grpc_status",
            Self::BytesReceived => "bytes_received",
            Self::BytesSent => "bytes_sent",
            Self::UpstreamConnectMs => "upstream_connect_ms",
            Self::UpstreamFirstByteMs => "upstream_first_byte_ms",
            Self::DurationMs => "duration_ms",
            Self::UpgradedForMs => "upgraded_for_ms",
            Self::Error => "error",
        }
    }

    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|field| field.name() == name)
    }
}

/// A set of access line fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessFields(u32);

impl AccessFields {
    pub const fn empty() -> Self {
        Self(0)
    }

    pub fn insert(&mut self, field: AccessField) {
        self.0 |= 1 << field as u32;
    }

    pub fn has(self, field: AccessField) -> bool {
        self.0 & (1 << field as u32) != 0
    }
}

impl Default for AccessFields {
    fn default() -> Self {
        AccessField::DEFAULT.into_iter().collect()
    }
}

impl FromIterator<AccessField> for AccessFields {
    fn from_iter<I: IntoIterator<Item = AccessField>>(fields: I) -> Self {
        let mut set = Self::empty();
        for field in fields {
            set.insert(field);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_found_by_its_name_and_has_its_own_bit() {
        let mut set = AccessFields::empty();
        for field in AccessField::ALL {
            assert_eq!(AccessField::named(field.name()), Some(field));
            assert!(!set.has(field), "{}", field.name());
            set.insert(field);
            assert!(set.has(field));
        }
        assert_eq!(AccessField::named("referer"), None);
        let default = AccessFields::default();
        assert!(default.has(AccessField::TraceId));
        assert!(!default.has(AccessField::UserAgent));
    }
}
