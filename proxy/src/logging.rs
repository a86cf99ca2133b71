//! Structured logging with `tracing`: human-readable text or one JSON object
//! per line, level from `--log-level` or the `BALLAST_LOG` environment
//! variable (`RUST_LOG` syntax, e.g. `info,ballast::access=warn`). Pingora's
//! own `log` records are forwarded into the same output.

use tracing_subscriber::EnvFilter;

/// Output format for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Install the global subscriber. `level` (from the command line) wins over
/// `BALLAST_LOG`; the default is `info`.
pub fn init(format: LogFormat, level: Option<&str>) -> Result<(), String> {
    let filter = match level {
        Some(level) => {
            EnvFilter::try_new(level).map_err(|e| format!("invalid log level \"{level}\": {e}"))?
        }
        None => match std::env::var("BALLAST_LOG") {
            Ok(value) => EnvFilter::try_new(&value)
                .map_err(|e| format!("invalid BALLAST_LOG \"{value}\": {e}"))?,
            Err(_) => EnvFilter::new("info"),
        },
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| format!("cannot initialise logging: {e}"))
}
