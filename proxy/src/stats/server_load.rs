//! Backend load reports carried on response headers.
//!
//! Backends may piggyback their current load on any HTTP response, in one of
//! two headers:
//!
//! * `Server-Load`, parsed by [`parse_server_load`], in either of two forms:
//!   - bare: a single number, the utilization (`0.73`); 0 is idle, 1 is fully
//!     busy, above 1 is overloaded;
//!   - structured: a comma-separated list of `key=value` pairs, such as
//!     `util=0.73, inflight=12, capacity=400, latency_ms=35`. Any non-empty
//!     subset of those keys, in any order. Unknown keys are ignored so
//!     backends can add metrics later, but at least one known key must be
//!     present, and a known key must not appear twice.
//! * `endpoint-load-metrics`, parsed by [`parse_orca`], in the ORCA `TEXT`
//!   encoding: `TEXT cpu_utilization=0.3, rps_fractional=120, eps=0.5`. The
//!   case-sensitive word `TEXT` and one or more spaces come first, then a
//!   list with the same syntax as the structured form. Utilization is taken
//!   from `application_utilization` when present, otherwise from
//!   `cpu_utilization`, the preference Envoy has (an explicit
//!   `application_utilization=0` counts as present here, where Envoy would
//!   fall back). `rps_fractional` gives requests per second and
//!   `eps` errors per second. `mem_utilization`, `named_metrics.*` and
//!   unknown keys are ignored, so a report holding only those parses to an
//!   empty [`LoadReport`]; it still needs at least one pair. The `JSON` and
//!   `BIN` encodings are recognised but not supported
//!   ([`ParseError::Unsupported`]).
//!
//! # Syntax
//!
//! Keys and values are runs of visible ASCII other than `=` and `,`, so
//! they hold no whitespace; keys are case-sensitive. Spaces and tabs may
//! surround the whole value, keys, `=` and commas. One trailing comma is
//! tolerated; an empty element (`,,`, a leading comma) is not. Every element
//! must be exactly one `key=value`: `util=`, `=0.5`, `util==0.5` and
//! `util=0.5=1` are malformed, and so is a bare number mixed with pairs
//! (`0.5, inflight=3`).
//!
//! Decimal numbers are what [`str::parse::<f64>`] reads from digits, `.`, an
//! exponent (`e`/`E`) and signs: `0.73`, `12`, `.5`, `1e-3`, `1e+3`. A
//! leading `+` is accepted (`+0.5` is `0.5`), for decimals and integers
//! alike, as Rust's own number parsing does. `NaN`, `inf`, `infinity` (any
//! case) and hexadecimal are malformed; a decimal too large for `f64`
//! (`1e309`) is out of range. Counts (`inflight`, `capacity`) are plain
//! integers: a fraction or exponent (`12.5`, `12.0`, `1e3`) is malformed,
//! while a negative or an integer too large for `u64` is out of range. `-0`
//! is zero, for both kinds.
//!
//! # Validation
//!
//! | key                                                          | accepted range       |
//! |--------------------------------------------------------------|----------------------|
//! | bare, `util`, `cpu_utilization`, `application_utilization`   | 0 ..= 10             |
//! | `inflight`                                                   | 0 ..= 1 000 000 000  |
//! | `capacity`                                                   | 1 ..= 1 000 000 000  |
//! | `latency_ms`                                                 | 0 ..= 3 600 000      |
//! | `rps_fractional`, `eps`                                      | 0 ..= 1 000 000 000  |
//!
//! Values of ignored keys are not checked beyond the syntax. Any violation
//! rejects the whole header. A value longer than [`MAX_HEADER_LEN`] bytes is
//! refused before it is looked at; a blank one is [`ParseError::Empty`]; a
//! rejected value that is not even UTF-8 is reported as
//! [`ParseError::NotUtf8`]. The caller ignores a rejected header and counts
//! it; a backend's malformed report never reaches the client.
//!
//! # Parsing
//!
//! Parsing allocates nothing and reads the value front to back: a scan up to
//! the first `=` (none means the bare form), then one pass of a cursor over
//! the list. A known key is recognised by comparing its bytes in place,
//! without cutting a key token out first, and its number is read straight
//! from the bytes after the `=`. Only unknown keys and their values, and
//! values the fast readers pass on, are cut out as tokens.
//!
//! Numbers go through a small decimal reader that folds sign, digits, point
//! and exponent into an integer mantissa and a power of ten. When the
//! mantissa is at most 2^53 and the power within 10^±22, both are exact in
//! `f64`, and a single multiplication or division gives the correctly
//! rounded result (Clinger's fast path). Anything else (more than 19 digits,
//! a larger mantissa or power, a number that runs on into other token bytes
//! such as `0.5x`) is handed to [`str::parse::<f64>`]. Either way a number
//! comes out bit for bit as the standard library reads it, and the accepted
//! language is the one described above.

use std::fmt;

/// Longest header value parsed; longer values are rejected unread.
pub const MAX_HEADER_LEN: usize = 512;

const MAX_UTILIZATION: f64 = 10.0;
const MAX_COUNT: u64 = 1_000_000_000;
const MAX_LATENCY_MS: f64 = 3_600_000.0;
const MAX_RATE: f64 = 1e9;

/// A backend's self-reported load, from one response header.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LoadReport {
    /// 0 is idle, 1 fully busy, above 1 overloaded.
    pub utilization: Option<f64>,
    /// Requests the backend is serving right now.
    pub in_flight: Option<u64>,
    /// Requests the backend can serve at once.
    pub capacity: Option<u64>,
    /// The backend's own recent latency, in milliseconds.
    pub latency_ms: Option<f64>,
    pub requests_per_second: Option<f64>,
    pub errors_per_second: Option<f64>,
    /// Fraction of the backend's recent requests that failed, 0..1 (only
    /// load polls report it).
    pub error_rate: Option<f64>,
}

/// Why a load header was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// The value is empty or only whitespace.
    Empty,
    /// The value is longer than [`MAX_HEADER_LEN`] bytes.
    TooLong,
    /// The value is not valid UTF-8.
    NotUtf8,
    /// The value does not follow the syntax.
    Malformed,
    /// A number is well-formed but outside its accepted range.
    OutOfRange,
    /// An ORCA encoding other than `TEXT`.
    Unsupported,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseError::Empty => "empty value",
            ParseError::TooLong => "value too long",
            ParseError::NotUtf8 => "value is not utf-8",
            ParseError::Malformed => "malformed value",
            ParseError::OutOfRange => "value out of range",
            ParseError::Unsupported => "unsupported encoding",
        })
    }
}

impl std::error::Error for ParseError {}

/// Parse a `Server-Load` value (bare or structured form).
pub fn parse_server_load(value: &[u8]) -> Result<LoadReport, ParseError> {
    parse_header(value, parse_server_load_text)
}

/// Parse an `endpoint-load-metrics` value (ORCA `TEXT` form).
pub fn parse_orca(value: &[u8]) -> Result<LoadReport, ParseError> {
    parse_header(value, parse_orca_text)
}

/// The checks both headers share, around `parse`, which sees the value
/// trimmed and non-empty.
fn parse_header(
    value: &[u8],
    parse: fn(&[u8]) -> Result<LoadReport, ParseError>,
) -> Result<LoadReport, ParseError> {
    if value.len() > MAX_HEADER_LEN {
        return Err(ParseError::TooLong);
    }
    let text = trim_whitespace(value);
    if text.is_empty() {
        return Err(ParseError::Empty);
    }
    // Both grammars are ASCII, so any other byte already fails the parse;
    // decoding only decides which error to report, off the common path.
    parse(text).map_err(|error| match std::str::from_utf8(value) {
        Ok(_) => error,
        Err(_) => ParseError::NotUtf8,
    })
}

fn parse_server_load_text(text: &[u8]) -> Result<LoadReport, ParseError> {
    // A byte loop rather than `contains`: the `=` of a structured value
    // comes within a few bytes, before `memchr` has even got going.
    #[allow(clippy::manual_contains)]
    let is_bare = !text.iter().any(|&byte| byte == b'=');
    if is_bare {
        return Ok(LoadReport {
            utilization: Some(parse_decimal_in(text, MAX_UTILIZATION)?),
            ..LoadReport::default()
        });
    }
    let mut report = LoadReport::default();
    for_each_pair(text, |pair| {
        if pair.eat_key(b"util")? {
            set_once(&mut report.utilization, pair.decimal_in(MAX_UTILIZATION)?)
        } else if pair.eat_key(b"inflight")? {
            set_once(&mut report.in_flight, pair.count_in(0)?)
        } else if pair.eat_key(b"capacity")? {
            set_once(&mut report.capacity, pair.count_in(1)?)
        } else if pair.eat_key(b"latency_ms")? {
            set_once(&mut report.latency_ms, pair.decimal_in(MAX_LATENCY_MS)?)
        } else {
            pair.skip_pair()
        }
    })?;
    if report == LoadReport::default() {
        return Err(ParseError::Malformed);
    }
    Ok(report)
}

fn parse_orca_text(text: &[u8]) -> Result<LoadReport, ParseError> {
    let Some(metrics) = text.strip_prefix(b"TEXT ") else {
        let encoding = text.split(|&byte| byte == b' ').next().unwrap_or(text);
        return Err(match encoding {
            b"JSON" | b"BIN" => ParseError::Unsupported,
            _ => ParseError::Malformed,
        });
    };
    let mut application_utilization = None;
    let mut cpu_utilization = None;
    let mut report = LoadReport::default();
    for_each_pair(metrics, |pair| {
        if pair.eat_key(b"cpu_utilization")? {
            set_once(&mut cpu_utilization, pair.decimal_in(MAX_UTILIZATION)?)
        } else if pair.eat_key(b"rps_fractional")? {
            set_once(&mut report.requests_per_second, pair.decimal_in(MAX_RATE)?)
        } else if pair.eat_key(b"eps")? {
            set_once(&mut report.errors_per_second, pair.decimal_in(MAX_RATE)?)
        } else if pair.eat_key(b"application_utilization")? {
            set_once(
                &mut application_utilization,
                pair.decimal_in(MAX_UTILIZATION)?,
            )
        } else {
            pair.skip_pair()
        }
    })?;
    report.utilization = application_utilization.or(cpu_utilization);
    Ok(report)
}

/// Strips the spaces and tabs HTTP allows around a header value.
fn trim_whitespace(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// Walks a comma-separated `key=value` list, calling `on_pair` with the
/// cursor at the start of each element, and stops at the first error.
///
/// `on_pair` consumes the whole element, from its key to the end of its
/// value; this function handles the whitespace and commas between elements.
/// One trailing comma is allowed.
fn for_each_pair(
    list: &[u8],
    mut on_pair: impl FnMut(&mut Cursor<'_>) -> Result<(), ParseError>,
) -> Result<(), ParseError> {
    let mut cursor = Cursor::new(list);
    cursor.skip_whitespace();
    loop {
        on_pair(&mut cursor)?;
        // Usually a comma follows the value at once.
        if !cursor.eat(b',') {
            cursor.skip_whitespace();
            if cursor.is_at_end() {
                return Ok(());
            }
            if !cursor.eat(b',') {
                return Err(ParseError::Malformed);
            }
        }
        cursor.skip_whitespace();
        if cursor.is_at_end() {
            return Ok(());
        }
    }
}

/// A read position in a header value.
struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, position: 0 }
    }

    fn is_at_end(&self) -> bool {
        self.position >= self.bytes.len()
    }

    /// The byte at `position`, or 0 past the end; 0 is neither whitespace,
    /// a token byte, nor any punctuation the grammar looks for.
    fn byte_at(&self, position: usize) -> u8 {
        self.bytes.get(position).copied().unwrap_or(0)
    }

    fn peek(&self) -> u8 {
        self.byte_at(self.position)
    }

    fn rest(&self) -> &'a [u8] {
        &self.bytes[self.position..]
    }

    fn skip_whitespace(&mut self) {
        while let b' ' | b'\t' = self.peek() {
            self.position += 1;
        }
    }

    /// Consumes `byte` if it comes next.
    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == byte;
        self.position += usize::from(found);
        found
    }

    /// If the next token is exactly `key`, consumes it and the `=` after it
    /// (with the whitespace around) and returns true. A key not followed by
    /// `=` is malformed.
    // Inlined so that each comparison is against a constant key: a word or
    // two compared in place rather than a call to `bcmp`.
    #[inline(always)]
    fn eat_key(&mut self, key: &[u8]) -> Result<bool, ParseError> {
        if !self.rest().starts_with(key) || is_token_byte(self.byte_at(self.position + key.len())) {
            return Ok(false);
        }
        self.position += key.len();
        self.eat_equals()?;
        Ok(true)
    }

    fn eat_equals(&mut self) -> Result<(), ParseError> {
        // Usually `=` follows the key at once.
        if !self.eat(b'=') {
            self.skip_whitespace();
            if !self.eat(b'=') {
                return Err(ParseError::Malformed);
            }
        }
        self.skip_whitespace();
        Ok(())
    }

    /// Consumes an element whose key is not one the caller reads: any key,
    /// `=`, and any value, so long as both are non-empty tokens.
    fn skip_pair(&mut self) -> Result<(), ParseError> {
        if self.take_token().is_empty() {
            return Err(ParseError::Malformed);
        }
        self.eat_equals()?;
        self.take_value().map(|_| ())
    }

    /// Consumes the longest run of key or value bytes.
    fn take_token(&mut self) -> &'a [u8] {
        let start = self.position;
        while is_token_byte(self.peek()) {
            self.position += 1;
        }
        &self.bytes[start..self.position]
    }

    /// Consumes a value token, which must not be empty.
    fn take_value(&mut self) -> Result<&'a [u8], ParseError> {
        let value = self.take_token();
        if value.is_empty() {
            return Err(ParseError::Malformed);
        }
        Ok(value)
    }

    /// Consumes a value that must be a decimal number within `0.0 ..= max`.
    // Inlined into each key's branch: the parse is a few dozen instructions,
    // so a call and a result passed through memory would cost a good share.
    #[inline(always)]
    fn decimal_in(&mut self, max: f64) -> Result<f64, ParseError> {
        let number = match read_decimal(self.rest()) {
            Some((number, len)) if !is_token_byte(self.byte_at(self.position + len)) => {
                self.position += len;
                number
            }
            _ => parse_any_decimal(self.take_value()?)?,
        };
        check_range(number, max)
    }

    /// Consumes a value that must be an integer within `min ..= MAX_COUNT`.
    #[inline(always)]
    fn count_in(&mut self, min: u64) -> Result<u64, ParseError> {
        let mut count = 0;
        let digits = read_digits(self.rest(), &mut count);
        // Signs, and digit runs that might not fit in u64, take the general
        // path, as does a number run into other token bytes (`12.5`).
        if digits == 0 || digits > 19 || is_token_byte(self.byte_at(self.position + digits)) {
            return parse_count_in(self.take_value()?, min);
        }
        self.position += digits;
        if !(min..=MAX_COUNT).contains(&count) {
            return Err(ParseError::OutOfRange);
        }
        Ok(count)
    }
}

fn is_token_byte(byte: u8) -> bool {
    IS_TOKEN_BYTE[usize::from(byte)]
}

/// Which bytes may make up a key or a value: visible ASCII except `=` and `,`.
const IS_TOKEN_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut index = 0;
    while index < table.len() {
        let byte = index as u8;
        table[index] = byte.is_ascii_graphic() && byte != b'=' && byte != b',';
        index += 1;
    }
    table
};

/// Stores a key's value, rejecting a key seen before.
fn set_once<T>(slot: &mut Option<T>, value: T) -> Result<(), ParseError> {
    if slot.is_some() {
        return Err(ParseError::Malformed);
    }
    *slot = Some(value);
    Ok(())
}

fn check_range(number: f64, max: f64) -> Result<f64, ParseError> {
    // Overflow parses as infinity, which no range contains.
    if !(0.0..=max).contains(&number) {
        return Err(ParseError::OutOfRange);
    }
    // `-0` is in range; report it as plain zero.
    Ok(number.abs())
}

/// The whole of `text` as a decimal number within `0.0 ..= max`.
fn parse_decimal_in(text: &[u8], max: f64) -> Result<f64, ParseError> {
    let number = match parse_plain_decimal(text) {
        Some(number) => number,
        None => parse_any_decimal(text)?,
    };
    check_range(number, max)
}

/// The whole of `text` read by the fast decimal reader ([`read_decimal`]),
/// or `None` when it needs the general parser.
fn parse_plain_decimal(text: &[u8]) -> Option<f64> {
    match read_decimal(text) {
        Some((number, len)) if len == text.len() => Some(number),
        _ => None,
    }
}

/// The powers of ten that `f64` holds exactly.
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Reads the decimal number at the start of `bytes`, returning its value
/// and length, when that can be done exactly the fast way.
///
/// The number is `[+-] digits [. digits] [(e|E) [+-] digits]` with at least
/// one mantissa digit, as [`str::parse::<f64>`] has it. The mantissa digits,
/// read as one integer, must number at most 19 (so they fit in u64) and
/// come to at most 2^53; the exponent, less the fraction digits, must be
/// within ±22. Then mantissa and power of ten are exact in `f64` and one
/// multiplication or division rounds exactly as [`str::parse`] does.
/// Otherwise, or if there is no number, the answer is `None`. The bytes
/// after the number are not looked at.
#[inline(always)]
fn read_decimal(bytes: &[u8]) -> Option<(f64, usize)> {
    let is_negative = bytes.first() == Some(&b'-');
    let mut position = usize::from(matches!(bytes.first(), Some(b'-' | b'+')));
    let mut mantissa = 0;
    let integer_digits = read_digits(&bytes[position..], &mut mantissa);
    position += integer_digits;
    let mut fraction_digits = 0;
    if bytes.get(position) == Some(&b'.') {
        position += 1;
        fraction_digits = read_digits(&bytes[position..], &mut mantissa);
        position += fraction_digits;
    }
    let digits = integer_digits + fraction_digits;
    if digits == 0 || digits > 19 {
        return None;
    }
    let mut exponent = -(fraction_digits as i64);
    if let Some(b'e' | b'E') = bytes.get(position) {
        position += 1;
        let is_negative_exponent = bytes.get(position) == Some(&b'-');
        position += usize::from(matches!(bytes.get(position), Some(b'-' | b'+')));
        let mut magnitude = 0;
        let exponent_digits = read_digits(&bytes[position..], &mut magnitude);
        // Four digits are plenty to tell that an exponent is out of reach.
        if exponent_digits == 0 || exponent_digits > 4 {
            return None;
        }
        position += exponent_digits;
        let magnitude = magnitude as i64;
        exponent += if is_negative_exponent {
            -magnitude
        } else {
            magnitude
        };
    }
    if mantissa > 1 << 53 || exponent.unsigned_abs() > 22 {
        return None;
    }
    let power = EXACT_POWERS_OF_TEN[exponent.unsigned_abs() as usize];
    let magnitude = if exponent < 0 {
        mantissa as f64 / power
    } else {
        mantissa as f64 * power
    };
    Some((if is_negative { -magnitude } else { magnitude }, position))
}

/// Appends the ASCII digits at the start of `bytes` to `value`, returning how
/// many there were; `value` wraps if they are more than it holds.
#[inline(always)]
fn read_digits(bytes: &[u8], value: &mut u64) -> usize {
    let mut count = 0;
    for &byte in bytes {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        *value = value.wrapping_mul(10).wrapping_add(u64::from(digit));
        count += 1;
    }
    count
}

/// Any decimal [`str::parse::<f64>`] reads, limited to digits, point,
/// exponent and signs so that `NaN`, `inf` and friends stay out.
fn parse_any_decimal(text: &[u8]) -> Result<f64, ParseError> {
    let is_decimal = text
        .iter()
        .all(|&byte| byte.is_ascii_digit() || matches!(byte, b'.' | b'e' | b'E' | b'+' | b'-'));
    if !is_decimal {
        return Err(ParseError::Malformed);
    }
    let text = std::str::from_utf8(text).map_err(|_| ParseError::Malformed)?;
    text.parse().map_err(|_| ParseError::Malformed)
}

/// An integer within `min ..= MAX_COUNT`, optionally signed.
fn parse_count_in(text: &[u8], min: u64) -> Result<u64, ParseError> {
    let (is_negative, digits) = match text.strip_prefix(b"-") {
        Some(digits) => (true, digits),
        None => (false, text.strip_prefix(b"+").unwrap_or(text)),
    };
    if digits.is_empty() {
        return Err(ParseError::Malformed);
    }
    let mut magnitude = 0u64;
    for &byte in digits {
        if !byte.is_ascii_digit() {
            return Err(ParseError::Malformed);
        }
        // Saturates, so an integer too large for u64 is merely out of range.
        magnitude = magnitude
            .saturating_mul(10)
            .saturating_add(u64::from(byte - b'0'));
    }
    if (is_negative && magnitude != 0) || !(min..=MAX_COUNT).contains(&magnitude) {
        return Err(ParseError::OutOfRange);
    }
    Ok(magnitude)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod decimal_tests;
