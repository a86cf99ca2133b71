//! Structured logging with `tracing`: human-readable text or one JSON object
//! per line, level from `--log-level` or the `BALLAST_LOG` environment
//! variable (`RUST_LOG` syntax, e.g. `info,ballast::access=warn`). Pingora's
//! own `log` records are forwarded into the same output.
//!
//! Pingora's debug and trace records print whole request and response heads,
//! client credentials included (`Authorization`, `Cookie`). They are dropped
//! unless the filter names a `pingora` target explicitly, so `--log-level
//! debug` shows Ballast's own detail and never a client's secret.

use tracing::Level;
use tracing_subscriber::filter::{filter_fn, EnvFilter, FilterExt, LevelFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Output format for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Install the global subscriber. `level` (from the command line) wins over
/// `BALLAST_LOG`; the default is `info`.
pub fn init(format: LogFormat, level: Option<&str>) -> Result<(), String> {
    let (text, source) = match level {
        Some(level) => (level.to_string(), "log level"),
        None => match std::env::var("BALLAST_LOG") {
            Ok(value) => (value, "BALLAST_LOG"),
            Err(_) => ("info".to_string(), "log level"),
        },
    };
    let filter =
        EnvFilter::try_new(&text).map_err(|e| format!("invalid {source} \"{text}\": {e}"))?;
    let pingora_detail_requested = text.contains("pingora");
    // The hint leaves it to the level filter alone how much is recorded at
    // all, so Pingora's `log` calls below that level stay free.
    let keep = filter_fn(move |meta| {
        pingora_detail_requested || !is_pingora_detail(meta.target(), *meta.level())
    })
    .with_max_level_hint(LevelFilter::TRACE);
    let filter = filter.and(keep);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let output = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry();
    let result = match format {
        LogFormat::Text => registry.with(output.with_filter(filter)).try_init(),
        LogFormat::Json => registry
            .with(output.json().flatten_event(true).with_filter(filter))
            .try_init(),
    };
    result.map_err(|e| format!("cannot initialise logging: {e}"))
}

/// A Pingora record below `info`: these print whole message heads.
fn is_pingora_detail(target: &str, level: Level) -> bool {
    target.starts_with("pingora") && level > Level::INFO
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pingora_records_below_info_are_detail() {
        let proxy = "pingora_proxy::proxy_h1";
        assert!(is_pingora_detail(proxy, Level::DEBUG));
        assert!(is_pingora_detail(proxy, Level::TRACE));
        assert!(!is_pingora_detail(proxy, Level::INFO));
        assert!(!is_pingora_detail(proxy, Level::WARN));
        assert!(!is_pingora_detail("ballast::proxy", Level::DEBUG));
    }
}
