//! The access log's writer. An access line is formatted straight into a
//! per-thread buffer and copied into the log output's buffer with one lock,
//! without `tracing`'s field machinery (its per-field dispatch and, in
//! JSON, a map per line cost a tenth of the proxy's throughput). The line
//! looks as the other logs do: in text,
//! `2026-12-07T07:01:41.123456Z  INFO ballast::access: status=200 path="/a"`
//! (strings quoted and escaped, numbers bare); in JSON, one object with
//! `timestamp`, `level`, `target` and the fields. Nothing in it goes
//! through `core::fmt` on the common path: strings are checked for escapes
//! with a byte table and copied, numbers written with `itoa`, and the
//! timestamp's whole second formatted once per second per thread.
//!
//! Whether access lines are written follows the log filter (e.g.
//! `info,ballast::access=warn` turns them off), read once when logging
//! starts: [`install`] is called after the subscriber is set.

use super::buffered_output::LogOutput;
use super::logging::LogFormat;
use std::cell::RefCell;
use std::fmt::{Display, Write as _};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The target access lines are logged under (and filtered by).
pub const ACCESS_TARGET: &str = "ballast::access";

/// Where the process's access lines go, once logging has started and the
/// filter lets them through.
static ACCESS_LOG: OnceLock<AccessLog> = OnceLock::new();

thread_local! {
    /// The line being formatted, kept between lines for its capacity.
    static LINE: RefCell<String> = RefCell::new(String::with_capacity(512));
}

struct AccessLog {
    format: LogFormat,
    output: Arc<dyn LogOutput>,
}

/// Write access lines in `format` to `output` from now on, unless the log
/// filter turns them off.
pub fn install(format: LogFormat, output: Arc<dyn LogOutput>) {
    if tracing::enabled!(target: ACCESS_TARGET, tracing::Level::INFO) {
        let _ = ACCESS_LOG.set(AccessLog { format, output });
    }
}

/// Whether access lines are written.
pub fn enabled() -> bool {
    ACCESS_LOG.get().is_some()
}

/// Format one access line with `fields` and write it, if access lines are
/// written at all.
pub fn write(fields: impl FnOnce(&mut AccessLine<'_>)) {
    let Some(log) = ACCESS_LOG.get() else {
        return;
    };
    LINE.with(|line| {
        // A nested call (a panic while formatting, unwound into another
        // line) would find the buffer borrowed: that line is skipped.
        let Ok(mut line) = line.try_borrow_mut() else {
            return;
        };
        line.clear();
        let mut access = AccessLine::begin(&mut line, log.format, SystemTime::now());
        fields(&mut access);
        access.end();
        log.output.write_line(line.as_bytes());
    });
}

/// An access line being formatted: its fields are added in order.
pub struct AccessLine<'l> {
    line: &'l mut String,
    json: bool,
}

impl<'l> AccessLine<'l> {
    fn begin(line: &'l mut String, format: LogFormat, at: SystemTime) -> Self {
        let json = format == LogFormat::Json;
        if json {
            line.push_str("{\"timestamp\":\"");
            push_timestamp(line, at);
            line.push_str("\",\"level\":\"INFO\",\"target\":\"");
            line.push_str(ACCESS_TARGET);
            line.push('"');
        } else {
            push_timestamp(line, at);
            line.push_str("  INFO ");
            line.push_str(ACCESS_TARGET);
            line.push(':');
        }
        Self { line, json }
    }

    fn end(self) {
        if self.json {
            self.line.push('}');
        }
        self.line.push('\n');
    }

    fn name(&mut self, name: &str) {
        if self.json {
            self.line.push_str(",\"");
            self.line.push_str(name);
            self.line.push_str("\":");
        } else {
            self.line.push(' ');
            self.line.push_str(name);
            self.line.push('=');
        }
    }

    /// A string field, quoted and escaped.
    pub fn text(&mut self, name: &str, value: &str) {
        self.name(name);
        self.line.push('"');
        push_escaped(self.line, value);
        self.line.push('"');
    }

    /// A string field made by `Display` (formatted first, then escaped).
    pub fn display(&mut self, name: &str, value: impl Display) {
        let text = value.to_string();
        self.text(name, &text);
    }

    /// An IP address field, quoted (it never needs an escape). An IPv4
    /// address is written octet by octet (`Display` goes through
    /// `core::fmt`, which costs several times as much).
    pub fn address(&mut self, name: &str, address: IpAddr) {
        self.name(name);
        self.line.push('"');
        match address {
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        self.line.push('.');
                    }
                    self.line.push_str(itoa::Buffer::new().format(octet));
                }
            }
            // Writing to a String cannot fail.
            IpAddr::V6(v6) => {
                let _ = write!(self.line, "{v6}");
            }
        }
        self.line.push('"');
    }

    /// A number field.
    pub fn number(&mut self, name: &str, value: u64) {
        self.name(name);
        self.line.push_str(itoa::Buffer::new().format(value));
    }

    /// A duration field in milliseconds, to the microsecond.
    pub fn millis(&mut self, name: &str, micros: u64) {
        self.name(name);
        self.line
            .push_str(itoa::Buffer::new().format(micros / 1000));
        self.line.push('.');
        push_padded(self.line, micros % 1000, 3);
    }
}

/// `value` as exactly `digits` decimal digits, zero-padded (`value` has no
/// more than that).
fn push_padded(line: &mut String, value: u64, digits: usize) {
    let mut buffer = itoa::Buffer::new();
    let text = buffer.format(value);
    for _ in text.len()..digits {
        line.push('0');
    }
    line.push_str(text);
}

thread_local! {
    /// The last whole second formatted (`2026-12-07T07:01:41`), by Unix
    /// second: lines within one second share it.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// `at` as RFC 3339 UTC to the microsecond (`2026-12-07T07:01:41.123456Z`).
fn push_timestamp(line: &mut String, at: SystemTime) {
    let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let second = since_epoch.as_secs();
    SECOND.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.0 != second {
            let whole = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(second));
            cache.1.clear();
            // Writing to a String cannot fail.
            let _ = write!(cache.1, "{whole}");
            cache.1.pop(); // the `Z`, which follows the fraction
            cache.0 = second;
        }
        line.push_str(&cache.1);
    });
    line.push('.');
    push_padded(line, since_epoch.subsec_micros().into(), 6);
    line.push('Z');
}

/// Which bytes need an escape in a quoted string of JSON (which the text
/// format shares): quote, backslash and control characters, and 0xC2, the
/// lead byte that may start a C1 control character (U+0080–U+009F).
const NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table[0x7f] = true;
    table[0xc2] = true;
    table
};

/// Append `text` to `line`, escaped for a quoted string.
fn push_escaped(line: &mut String, text: &str) {
    // Most values need no escape: one pass over the bytes says so.
    if !text.bytes().any(|b| NEEDS_ESCAPE[usize::from(b)]) {
        line.push_str(text);
        return;
    }
    let mut plain = 0;
    for (at, c) in text.char_indices() {
        let escape = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            c if c.is_control() => "",
            _ => continue,
        };
        line.push_str(&text[plain..at]);
        if escape.is_empty() {
            // Writing to a String cannot fail.
            let _ = write!(line, "\\u{:04x}", c as u32);
        } else {
            line.push_str(escape);
        }
        plain = at + c.len_utf8();
    }
    line.push_str(&text[plain..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn line(format: LogFormat, fields: impl FnOnce(&mut AccessLine<'_>)) -> String {
        let mut line = String::new();
        let at = UNIX_EPOCH + Duration::from_micros(1_765_000_000_123_456);
        let mut access = AccessLine::begin(&mut line, format, at);
        fields(&mut access);
        access.end();
        line
    }

    fn some_fields(line: &mut AccessLine<'_>) {
        line.text("path", "/a \"b\"\\c\n\u{1}é");
        line.number("status", 200);
        line.millis("duration_ms", 12_034);
        line.millis("upstream_connect_ms", 7);
        line.address("client_address", std::net::Ipv4Addr::LOCALHOST.into());
        line.display("error", "refused: \"x\"");
    }

    #[test]
    fn a_json_line_is_one_object_with_every_field_and_value() {
        let text = line(LogFormat::Json, some_fields);
        assert!(text.ends_with("}\n"), "{text}");
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["timestamp"], "2025-12-06T05:46:40.123456Z");
        assert_eq!(value["level"], "INFO");
        assert_eq!(value["target"], ACCESS_TARGET);
        assert_eq!(value["path"], "/a \"b\"\\c\n\u{1}é");
        assert_eq!(value["status"], 200);
        assert_eq!(value["duration_ms"], 12.034);
        assert_eq!(value["upstream_connect_ms"], 0.007);
        assert_eq!(value["client_address"], "127.0.0.1");
        assert_eq!(value["error"], "refused: \"x\"");
        assert_eq!(value.as_object().unwrap().len(), 9);
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for address in [
            "0.0.0.0",
            "10.200.3.45",
            "255.255.255.255",
            "::1",
            "2001:db8::8a2e:370:7334",
        ] {
            let ip: IpAddr = address.parse().unwrap();
            let text = line(LogFormat::Text, |l| l.address("client_address", ip));
            assert!(
                text.ends_with(&format!(" client_address=\"{ip}\"\n")),
                "{text}"
            );
        }
    }

    #[test]
    fn a_text_line_quotes_strings_and_leaves_numbers_bare() {
        let text = line(LogFormat::Text, some_fields);
        assert_eq!(
            text,
            "2025-12-06T05:46:40.123456Z  INFO ballast::access: \
             path=\"/a \\\"b\\\"\\\\c\\n\\u0001é\" status=200 duration_ms=12.034 \
             upstream_connect_ms=0.007 client_address=\"127.0.0.1\" error=\"refused: \\\"x\\\"\"\n"
        );
    }

    #[test]
    fn plain_values_are_copied_and_every_control_character_escaped() {
        let escaped = |value: &str| {
            let mut out = String::new();
            push_escaped(&mut out, value);
            out
        };
        assert_eq!(escaped("/plain/path?q=é¢"), "/plain/path?q=é¢");
        assert_eq!(escaped("a\u{85}b\u{7f}c\u{a0}"), "a\\u0085b\\u007fc\u{a0}");
    }

    #[test]
    fn timestamps_are_microseconds_in_utc_across_second_boundaries() {
        let mut out = String::new();
        for micros in [
            1_765_000_000_999_999,
            1_765_000_001_000_007,
            1_765_000_001_120_000,
        ] {
            push_timestamp(&mut out, UNIX_EPOCH + Duration::from_micros(micros));
            out.push(' ');
        }
        assert_eq!(
            out,
            "2025-12-06T05:46:40.999999Z 2025-12-06T05:46:41.000007Z 2025-12-06T05:46:41.120000Z "
        );
    }
}
