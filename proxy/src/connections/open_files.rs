//! The open-file limit: raised at start from its soft value to its hard one
//! (every client connection, upstream connection and file takes a
//! descriptor), and the default `server.max_connections` derived from it.

use rustix::process::{getrlimit, setrlimit, Resource};

/// Descriptors kept back for listeners, the admin endpoint, files, DNS and
/// health checks before the rest is split between clients and upstreams.
const RESERVED_DESCRIPTORS: u64 = 256;

/// The smallest default limit, however low the open-file limit.
const MIN_DEFAULT_MAX_CONNECTIONS: usize = 64;

/// Used when the open-file limit is unknown or unlimited.
const FALLBACK_MAX_CONNECTIONS: usize = 65_536;

/// Raise the soft open-file limit to the hard one and return the soft
/// limit in force afterwards (`None`: unknown or unlimited). Logs both.
pub fn raise_open_file_limit() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    let before = limit.current;
    let mut raised = limit;
    if limit.maximum.is_some() && limit.current < limit.maximum {
        raised.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(
                "cannot raise the open-file limit from {before:?} to {:?}: {e}",
                limit.maximum
            );
            raised.current = before;
        }
    }
    tracing::info!(
        soft_before = ?before,
        soft = ?raised.current,
        hard = ?limit.maximum,
        "open-file limit (RLIMIT_NOFILE)"
    );
    raised.current
}

/// The default `server.max_connections` for an open-file limit: half of
/// what is left after [`RESERVED_DESCRIPTORS`] (each client connection
/// may need an upstream connection too), at least
/// [`MIN_DEFAULT_MAX_CONNECTIONS`].
pub fn default_max_connections(open_file_limit: Option<u64>) -> usize {
    match open_file_limit {
        None => FALLBACK_MAX_CONNECTIONS,
        Some(limit) => {
            let half = limit.saturating_sub(RESERVED_DESCRIPTORS) / 2;
            usize::try_from(half)
                .unwrap_or(usize::MAX)
                .max(MIN_DEFAULT_MAX_CONNECTIONS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_leaves_room_for_upstreams_and_files() {
        assert_eq!(default_max_connections(Some(1024)), 384);
        assert_eq!(default_max_connections(Some(65_536)), 32_640);
        assert_eq!(default_max_connections(Some(100)), 64);
        assert_eq!(default_max_connections(None), 65_536);
    }
}
