//! Structured logging with `tracing`: human-readable text or one JSON object
//! per line, level from `--log-level` or the `BALLAST_LOG` environment
//! variable (`RUST_LOG` syntax, e.g. `info,ballast::access=warn`). Pingora's
//! own `log` records are forwarded into the same output.
//!
//! Lines go through a buffer ([`buffered_output`]): written out when 64 KiB
//! have gathered or every 200 ms, so a burst of access lines costs one
//! write, not one per line. The [`LogGuard`] returned by [`init`] writes out
//! what is buffered when dropped: hold it until exit.
//!
//! The access lines (target `ballast::access`) are formatted by their own
//! writer ([`access_line`]) into the same buffer, or into a file of their
//! own ([`access_file`]) through a second buffer of the same kind.
//!
//! Pingora's records of what clients did wrong (a client leaving mid-header,
//! a failed TLS or HTTP/2 handshake, a client gone before its error response)
//! are logged at ERROR by Pingora; they are demoted to debug, under the
//! target `ballast::client`, and counted ([`client_errors`]).
//!
//! Pingora's debug and trace records print whole request and response heads,
//! client credentials included (`Authorization`, `Cookie`). They are dropped
//! unless the filter names a `pingora` target explicitly, so `--log-level
//! debug` shows Ballast's own detail and never a client's secret.

use super::access_file::{self, AccessFileWriter, ReopeningFile};
use super::access_line;
use super::buffered_output::{BufferedOutput, LogOutput};
use super::client_errors::{self, ClientErrorKind};
use std::path::Path;
use std::sync::Arc;
use tracing::Level;
use tracing_log::AsLog;
use tracing_subscriber::filter::{filter_fn, EnvFilter, FilterExt, LevelFilter};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Filter, SubscriberExt};
use tracing_subscriber::{Layer, Registry};

/// Output format for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Writes out what the log outputs have buffered when dropped.
#[must_use = "dropping the guard is the last flush of the logs"]
pub struct LogGuard {
    outputs: Vec<Arc<dyn LogOutput>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        for output in &self.outputs {
            output.flush_buffered();
        }
    }
}

/// Install the global subscriber. `level` (from the command line) wins over
/// `BALLAST_LOG`; the default is `info`. With `access_file`, the access lines
/// are appended to that file instead of stderr.
pub fn init(
    format: LogFormat,
    level: Option<&str>,
    access_file: Option<&Path>,
) -> Result<LogGuard, String> {
    let (text, source) = match level {
        Some(level) => (level.to_string(), "log level"),
        None => match std::env::var("BALLAST_LOG") {
            Ok(value) => (value, "BALLAST_LOG"),
            Err(_) => ("info".to_string(), "log level"),
        },
    };
    let pingora_detail_requested = text.contains("pingora");
    let filter =
        EnvFilter::try_new(&text).map_err(|e| format!("invalid {source} \"{text}\": {e}"))?;
    // The hint leaves it to the level filter alone how much is recorded at
    // all, so Pingora's `log` calls below that level stay free.
    let keep = filter_fn(move |meta| {
        pingora_detail_requested || !is_pingora_detail(meta.target(), *meta.level())
    })
    .with_max_level_hint(LevelFilter::TRACE);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let cannot_start = |e: std::io::Error| format!("cannot start the log writer: {e}");
    let writer = BufferedOutput::start(std::io::stderr(), "ballast-log").map_err(cannot_start)?;
    let mut outputs: Vec<Arc<dyn LogOutput>> = vec![writer.clone()];
    let access_output: Arc<dyn LogOutput> = match access_file {
        None => writer.clone(),
        Some(path) => {
            let file = ReopeningFile::open(path)
                .map_err(|e| format!("cannot open the access log file {}: {e}", path.display()))?;
            let file = Arc::new(file);
            let file_writer =
                BufferedOutput::start(AccessFileWriter(file.clone()), "ballast-access-log")
                    .map_err(cannot_start)?;
            outputs.push(file_writer.clone());
            access_file::install(file);
            file_writer
        }
    };
    let stderr_layer = output(format, writer, ansi, filter.and(keep));
    let registry = tracing_subscriber::registry().with(stderr_layer);
    tracing::subscriber::set_global_default(registry)
        .map_err(|e| format!("cannot initialise logging: {e}"))?;
    access_line::install(format, access_output);
    log::set_boxed_logger(Box::new(PingoraRecords))
        .map_err(|e| format!("cannot initialise logging: {e}"))?;
    log::set_max_level(LevelFilter::current().as_log());
    Ok(LogGuard { outputs })
}

/// A layer writing the lines `filter` lets through to `writer` in `format`.
fn output<W, F>(
    format: LogFormat,
    writer: W,
    ansi: bool,
    filter: F,
) -> Box<dyn Layer<Registry> + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    F: Filter<Registry> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(writer);
    match format {
        LogFormat::Text => layer.with_filter(filter).boxed(),
        LogFormat::Json => layer.json().flatten_event(true).with_filter(filter).boxed(),
    }
}

/// Forwards `log` records (Pingora's) into `tracing`, demoting those that
/// report a client's error.
struct PingoraRecords;

impl log::Log for PingoraRecords {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if record.level() <= log::Level::Warn && record.target().starts_with("pingora") {
            let message = record.args().to_string();
            if let Some(kind) = client_error(record.target(), &message) {
                client_errors::record(kind, &message);
                return;
            }
        }
        let _ = tracing_log::format_trace(record);
    }

    fn flush(&self) {}
}

/// The kind of client error a Pingora warning or error record from `target`
/// reports, if it reports one (Pingora 0.9's wording).
fn client_error(target: &str, message: &str) -> Option<ClientErrorKind> {
    let kind_of_read = || {
        if message.contains("Timedout") || message.contains("timed out") {
            ClientErrorKind::Timeout
        } else if message.contains("InvalidHTTPHeader") || message.contains("H2Error") {
            ClientErrorKind::BadRequest
        } else {
            ClientErrorKind::Reset
        }
    };
    if target.starts_with("pingora_proxy") {
        if message.starts_with("Fail to proxy: ") && message.contains("downstream session type") {
            // The request head could not be read from the client.
            return Some(kind_of_read());
        }
        if message.starts_with("failed to send error response to downstream")
            || message.starts_with("Error finish sending body to downstream")
        {
            return Some(ClientErrorKind::Reset);
        }
    }
    if target.starts_with("pingora_core") {
        if message.starts_with("Downstream handshake") || message.starts_with("H2 handshake error")
        {
            return Some(ClientErrorKind::Handshake);
        }
        if message.starts_with("HTTP server fails to read from downstream") {
            return Some(kind_of_read());
        }
    }
    None
}

/// A Pingora record below `info`: these print whole message heads.
fn is_pingora_detail(target: &str, level: Level) -> bool {
    target.starts_with("pingora") && level > Level::INFO
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pingora_records_of_client_errors_are_recognised() {
        let proxy = "pingora_proxy";
        let cases = [
            (proxy, "Fail to proxy: Downstream ConnectionClosed context: Prematurely before response header is received, downstream session type: HTTP/1.1", Some(ClientErrorKind::Reset)),
            (proxy, "Fail to proxy: Downstream ReadTimedout, downstream session type: HTTP/1.1", Some(ClientErrorKind::Timeout)),
            (proxy, "failed to send error response to downstream: Downstream WriteError", Some(ClientErrorKind::Reset)),
            ("pingora_core::services::listening", "Downstream handshake error from 127.0.0.1:5: TLSHandshakeFailure", Some(ClientErrorKind::Handshake)),
            ("pingora_core::apps", "H2 handshake error invalid preface", Some(ClientErrorKind::Handshake)),
            (proxy, "Fail to proxy: Upstream ConnectRefused, status: 502, tries: 1", None),
            ("ballast::proxy", "Fail to proxy: x, downstream session type: HTTP/1.1", None),
        ];
        for (target, message, kind) in cases {
            assert_eq!(client_error(target, message), kind, "{message}");
        }
    }

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
