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
mod tests {
    use super::*;

    fn load(value: &str) -> Result<LoadReport, ParseError> {
        parse_server_load(value.as_bytes())
    }

    fn orca(value: &str) -> Result<LoadReport, ParseError> {
        parse_orca(value.as_bytes())
    }

    fn utilization(value: f64) -> LoadReport {
        LoadReport {
            utilization: Some(value),
            ..LoadReport::default()
        }
    }

    // Bare form.

    #[test]
    fn bare_numbers_are_utilization() {
        assert_eq!(load("0.73"), Ok(utilization(0.73)));
        assert_eq!(load("0"), Ok(utilization(0.0)));
        assert_eq!(load("1"), Ok(utilization(1.0)));
        assert_eq!(load(".5"), Ok(utilization(0.5)));
        assert_eq!(load("5."), Ok(utilization(5.0)));
        assert_eq!(load("1e-3"), Ok(utilization(0.001)));
        assert_eq!(load("2.5E0"), Ok(utilization(2.5)));
        assert_eq!(load("1e+0"), Ok(utilization(1.0)));
        assert_eq!(load("007.5"), Ok(utilization(7.5)));
        assert_eq!(load("1.5"), Ok(utilization(1.5)));
    }

    #[test]
    fn bare_number_may_be_surrounded_by_whitespace() {
        assert_eq!(load("  0.73"), Ok(utilization(0.73)));
        assert_eq!(load("0.73\t "), Ok(utilization(0.73)));
        assert_eq!(load("\t0.73\t"), Ok(utilization(0.73)));
    }

    #[test]
    fn leading_plus_is_accepted() {
        assert_eq!(load("+0.5"), Ok(utilization(0.5)));
        assert_eq!(load("util=+0.5"), Ok(utilization(0.5)));
        assert_eq!(load("inflight=+7").unwrap().in_flight, Some(7));
        assert_eq!(orca("TEXT eps=+2").unwrap().errors_per_second, Some(2.0));
    }

    #[test]
    fn negative_zero_is_zero() {
        assert_eq!(load("-0"), Ok(utilization(0.0)));
        for text in ["-0", "-0.0", "util=-0e3"] {
            let value = load(text).unwrap().utilization.unwrap();
            assert!(value.is_sign_positive(), "{text} read as {value}");
        }
        let eps = orca("TEXT eps=-0").unwrap().errors_per_second.unwrap();
        assert!(eps.is_sign_positive());
        assert_eq!(load("inflight=-0").unwrap().in_flight, Some(0));
    }

    #[test]
    fn bare_form_rejects_anything_but_one_number() {
        for value in [
            "0.5 0.6", "0.5,", ",0.5", "0.5;", "util", "abc", ".", "e", "1e", "-", "+", "1.2.3",
            "--1", "1-2", "0. 5", "0,5", ",",
        ] {
            assert_eq!(load(value), Err(ParseError::Malformed), "{value:?}");
        }
    }

    #[test]
    fn utilization_bounds() {
        assert_eq!(load("10"), Ok(utilization(10.0)));
        assert_eq!(load("10.0"), Ok(utilization(10.0)));
        assert_eq!(load("1e1"), Ok(utilization(10.0)));
        assert_eq!(load("1e-400"), Ok(utilization(0.0)));
        for value in ["10.0000001", "11", "-0.5", "-1e-9", "1e309", "1e3"] {
            assert_eq!(load(value), Err(ParseError::OutOfRange), "{value:?}");
            assert_eq!(
                load(&format!("util={value}")),
                Err(ParseError::OutOfRange),
                "{value:?}"
            );
            assert_eq!(
                orca(&format!("TEXT cpu_utilization={value}")),
                Err(ParseError::OutOfRange),
                "{value:?}"
            );
            assert_eq!(
                orca(&format!("TEXT application_utilization={value}")),
                Err(ParseError::OutOfRange),
                "{value:?}"
            );
        }
    }

    #[test]
    fn non_numbers_are_malformed() {
        for value in [
            "NaN",
            "nan",
            "NAN",
            "inf",
            "INF",
            "-inf",
            "+inf",
            "infinity",
            "Infinity",
            "-Infinity",
            "0x1",
            "0x1p-2",
            "1_000",
            "0.5%",
            "½",
        ] {
            assert_eq!(load(value), Err(ParseError::Malformed), "{value:?}");
            assert_eq!(
                load(&format!("util={value}")),
                Err(ParseError::Malformed),
                "{value:?}"
            );
            assert_eq!(
                load(&format!("latency_ms={value}")),
                Err(ParseError::Malformed),
                "{value:?}"
            );
            assert_eq!(
                orca(&format!("TEXT rps_fractional={value}")),
                Err(ParseError::Malformed),
                "{value:?}"
            );
        }
    }

    // Structured form.

    #[test]
    fn structured_with_all_keys() {
        assert_eq!(
            load("util=0.73, inflight=12, capacity=400, latency_ms=35"),
            Ok(LoadReport {
                utilization: Some(0.73),
                in_flight: Some(12),
                capacity: Some(400),
                latency_ms: Some(35.0),
                ..LoadReport::default()
            })
        );
    }

    #[test]
    fn structured_key_order_does_not_matter() {
        let expected = load("util=0.73, inflight=12, capacity=400, latency_ms=35");
        for value in [
            "latency_ms=35, capacity=400, inflight=12, util=0.73",
            "inflight=12, util=0.73, latency_ms=35, capacity=400",
            "capacity=400,latency_ms=35,util=0.73,inflight=12",
        ] {
            assert_eq!(load(value), expected, "{value:?}");
        }
    }

    #[test]
    fn structured_whitespace_variants() {
        let expected = Ok(LoadReport {
            utilization: Some(0.5),
            in_flight: Some(3),
            ..LoadReport::default()
        });
        for value in [
            "util=0.5,inflight=3",
            "util=0.5, inflight=3",
            "util = 0.5 , inflight = 3",
            "  util=0.5,inflight=3  ",
            "\tutil\t=\t0.5\t,\tinflight\t=\t3\t",
            "util   =0.5,    inflight=   3",
        ] {
            assert_eq!(load(value), expected, "{value:?}");
        }
    }

    #[test]
    fn structured_subsets() {
        assert_eq!(load("util=0.2"), Ok(utilization(0.2)));
        assert_eq!(
            load("inflight=5"),
            Ok(LoadReport {
                in_flight: Some(5),
                ..LoadReport::default()
            })
        );
        assert_eq!(
            load("capacity=9"),
            Ok(LoadReport {
                capacity: Some(9),
                ..LoadReport::default()
            })
        );
        assert_eq!(
            load("latency_ms=1.5"),
            Ok(LoadReport {
                latency_ms: Some(1.5),
                ..LoadReport::default()
            })
        );
        assert_eq!(
            load("inflight=5, capacity=10"),
            Ok(LoadReport {
                in_flight: Some(5),
                capacity: Some(10),
                ..LoadReport::default()
            })
        );
    }

    #[test]
    fn structured_ignores_unknown_keys() {
        assert_eq!(
            load("queue=7, util=0.4, region=eu-west-1, inflight=2, x.y-z=!"),
            Ok(LoadReport {
                utilization: Some(0.4),
                in_flight: Some(2),
                ..LoadReport::default()
            })
        );
        // Unknown keys may repeat; their values only have to be tokens.
        assert_eq!(load("a=1, a=2, util=0.1, b=NaN"), Ok(utilization(0.1)));
    }

    #[test]
    fn structured_keys_are_case_sensitive() {
        assert_eq!(load("UTIL=0.5, util=0.25"), Ok(utilization(0.25)));
        assert_eq!(load("Util=0.5"), Err(ParseError::Malformed));
    }

    #[test]
    fn structured_needs_a_known_key() {
        assert_eq!(load("foo=1"), Err(ParseError::Malformed));
        assert_eq!(load("foo=1, bar=2"), Err(ParseError::Malformed));
    }

    #[test]
    fn structured_rejects_duplicated_known_keys() {
        for value in [
            "util=0.5, util=0.5",
            "util=0.5, inflight=1, util=0.6",
            "inflight=1, inflight=2",
            "capacity=1, capacity=1",
            "latency_ms=1,latency_ms=2",
        ] {
            assert_eq!(load(value), Err(ParseError::Malformed), "{value:?}");
        }
    }

    #[test]
    fn structured_trailing_comma_is_tolerated() {
        assert_eq!(load("util=0.5,"), Ok(utilization(0.5)));
        assert_eq!(load("util=0.5 , "), Ok(utilization(0.5)));
        assert_eq!(
            load("util=0.5, inflight=1,"),
            Ok(LoadReport {
                utilization: Some(0.5),
                in_flight: Some(1),
                ..LoadReport::default()
            })
        );
    }

    #[test]
    fn structured_rejects_broken_elements() {
        for value in [
            "util=0.5,,",
            "util=0.5,,inflight=1",
            "util=0.5, ,inflight=1",
            ",util=0.5",
            ", util=0.5",
            "util=",
            "util= ",
            "=0.5",
            " = 0.5",
            "util==0.5",
            "util=0.5=1",
            "util=0.5 inflight=1",
            "foo=a=b, util=0.5",
            "util 2=0.5",
            "ключ=1, util=0.5",
            "util=0.5, region=zürich",
            "foo=a b, util=0.5",
            "util=0 .5",
            "util=0.5 0.6",
            "0.5, inflight=3",
            "inflight=3, 0.5",
            "util=0.5, inflight",
            "util=0.5; inflight=3",
            "=",
            ",=",
        ] {
            assert_eq!(load(value), Err(ParseError::Malformed), "{value:?}");
        }
    }

    #[test]
    fn counts_are_integers() {
        for value in [
            "12.5", "12.0", "1e3", "1e9", "0x10", "12 3", "--1", "-", "+", "1+1",
        ] {
            assert_eq!(
                load(&format!("inflight={value}")),
                Err(ParseError::Malformed),
                "{value:?}"
            );
            assert_eq!(
                load(&format!("capacity={value}")),
                Err(ParseError::Malformed),
                "{value:?}"
            );
        }
    }

    #[test]
    fn in_flight_bounds() {
        assert_eq!(load("inflight=0").unwrap().in_flight, Some(0));
        assert_eq!(
            load("inflight=1000000000").unwrap().in_flight,
            Some(MAX_COUNT)
        );
        assert_eq!(load("inflight=0001").unwrap().in_flight, Some(1));
        for value in [
            "1000000001",
            "-1",
            "-5",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999999999999999",
        ] {
            assert_eq!(
                load(&format!("inflight={value}")),
                Err(ParseError::OutOfRange),
                "{value:?}"
            );
        }
    }

    #[test]
    fn capacity_bounds() {
        assert_eq!(load("capacity=1").unwrap().capacity, Some(1));
        assert_eq!(
            load("capacity=1000000000").unwrap().capacity,
            Some(MAX_COUNT)
        );
        for value in [
            "0",
            "-0",
            "00",
            "1000000001",
            "-1",
            "99999999999999999999999",
        ] {
            assert_eq!(
                load(&format!("capacity={value}")),
                Err(ParseError::OutOfRange),
                "{value:?}"
            );
        }
    }

    #[test]
    fn latency_bounds() {
        assert_eq!(load("latency_ms=0").unwrap().latency_ms, Some(0.0));
        assert_eq!(load("latency_ms=0.25").unwrap().latency_ms, Some(0.25));
        assert_eq!(load("latency_ms=3600000").unwrap().latency_ms, Some(3.6e6));
        assert_eq!(load("latency_ms=3.6e6").unwrap().latency_ms, Some(3.6e6));
        for value in ["3600000.001", "3.7e6", "-1", "-0.001", "1e309"] {
            assert_eq!(
                load(&format!("latency_ms={value}")),
                Err(ParseError::OutOfRange),
                "{value:?}"
            );
        }
    }

    #[test]
    fn first_problem_decides_the_error() {
        assert_eq!(load("util=11, inflight=x"), Err(ParseError::OutOfRange));
        assert_eq!(load("inflight=x, util=11"), Err(ParseError::Malformed));
    }

    // ORCA form.

    #[test]
    fn orca_text_form() {
        assert_eq!(
            orca("TEXT cpu_utilization=0.3, rps_fractional=120, eps=0.5"),
            Ok(LoadReport {
                utilization: Some(0.3),
                requests_per_second: Some(120.0),
                errors_per_second: Some(0.5),
                ..LoadReport::default()
            })
        );
    }

    #[test]
    fn orca_key_order_and_whitespace() {
        let expected = orca("TEXT cpu_utilization=0.3, rps_fractional=120, eps=0.5");
        for value in [
            "TEXT eps=0.5, rps_fractional=120, cpu_utilization=0.3",
            "TEXT    cpu_utilization=0.3,rps_fractional=120,eps=0.5",
            "  TEXT cpu_utilization = 0.3 ,\teps=0.5, rps_fractional=120, ",
        ] {
            assert_eq!(orca(value), expected, "{value:?}");
        }
    }

    #[test]
    fn orca_application_utilization_takes_precedence() {
        let expected = Ok(utilization(0.9));
        assert_eq!(
            orca("TEXT cpu_utilization=0.2, application_utilization=0.9"),
            expected
        );
        assert_eq!(
            orca("TEXT application_utilization=0.9, cpu_utilization=0.2"),
            expected
        );
        assert_eq!(orca("TEXT application_utilization=0.9"), expected);
        assert_eq!(orca("TEXT cpu_utilization=0.2"), Ok(utilization(0.2)));
        assert_eq!(
            orca("TEXT application_utilization=0, cpu_utilization=0.2"),
            Ok(utilization(0.0))
        );
        // The one not used is still validated.
        assert_eq!(
            orca("TEXT application_utilization=0.9, cpu_utilization=12"),
            Err(ParseError::OutOfRange)
        );
    }

    #[test]
    fn orca_ignores_memory_named_and_unknown_metrics() {
        assert_eq!(
            orca("TEXT mem_utilization=0.8, named_metrics.queue=3, cpu_utilization=0.1, foo=bar"),
            Ok(utilization(0.1))
        );
        // Ignored values are not range-checked, and may repeat.
        assert_eq!(
            orca("TEXT mem_utilization=99, mem_utilization=-1, named_metrics.a=1e400, eps=1"),
            Ok(LoadReport {
                errors_per_second: Some(1.0),
                ..LoadReport::default()
            })
        );
        assert_eq!(orca("TEXT mem_utilization=0.5"), Ok(LoadReport::default()));
    }

    #[test]
    fn orca_rejects_duplicated_keys() {
        for value in [
            "TEXT cpu_utilization=0.1, cpu_utilization=0.1",
            "TEXT application_utilization=0.1, application_utilization=0.2",
            "TEXT eps=1, eps=2",
            "TEXT rps_fractional=1, eps=2, rps_fractional=1",
        ] {
            assert_eq!(orca(value), Err(ParseError::Malformed), "{value:?}");
        }
    }

    #[test]
    fn orca_rate_bounds() {
        assert_eq!(
            orca("TEXT rps_fractional=0, eps=1e9"),
            Ok(LoadReport {
                requests_per_second: Some(0.0),
                errors_per_second: Some(1e9),
                ..LoadReport::default()
            })
        );
        for value in ["-0.5", "1000000000.5", "1e10", "1e309"] {
            assert_eq!(
                orca(&format!("TEXT rps_fractional={value}")),
                Err(ParseError::OutOfRange),
                "{value:?}"
            );
            assert_eq!(
                orca(&format!("TEXT eps={value}")),
                Err(ParseError::OutOfRange),
                "{value:?}"
            );
        }
    }

    #[test]
    fn orca_utilization_bounds() {
        assert_eq!(orca("TEXT cpu_utilization=10"), Ok(utilization(10.0)));
        assert_eq!(orca("TEXT cpu_utilization=0"), Ok(utilization(0.0)));
        assert_eq!(
            orca("TEXT cpu_utilization=10.0000001"),
            Err(ParseError::OutOfRange)
        );
    }

    #[test]
    fn orca_prefix_variants() {
        for value in [
            "text cpu_utilization=0.3",
            "Text cpu_utilization=0.3",
            "TEXTcpu_utilization=0.3",
            "TEXT",
            "TEXT   ",
            "TEXT ,",
            "TEXT\tcpu_utilization=0.3",
            "cpu_utilization=0.3",
            "0.3",
            "TEXT 0.3",
            "TEXT cpu_utilization=0.3,,eps=1",
            "TEXT cpu_utilization",
            "TEXT =1",
            "JSON{\"cpu_utilization\":0.3}",
            "json {\"cpu_utilization\":0.3}",
        ] {
            assert_eq!(orca(value), Err(ParseError::Malformed), "{value:?}");
        }
        for value in [
            "JSON {\"cpu_utilization\":0.3}",
            "JSON",
            "BIN CgQIARAB",
            "BIN",
        ] {
            assert_eq!(orca(value), Err(ParseError::Unsupported), "{value:?}");
        }
    }

    #[test]
    fn orca_does_not_read_server_load_keys() {
        assert_eq!(
            orca("TEXT util=0.5, inflight=3, capacity=4, latency_ms=5"),
            Ok(LoadReport::default())
        );
        assert_eq!(
            load("cpu_utilization=0.5, rps_fractional=3, eps=1"),
            Err(ParseError::Malformed)
        );
    }

    // Header-level checks, shared by both parsers.

    #[test]
    fn empty_and_blank_values() {
        for value in ["", " ", "\t", "  \t  "] {
            assert_eq!(load(value), Err(ParseError::Empty), "{value:?}");
            assert_eq!(orca(value), Err(ParseError::Empty), "{value:?}");
        }
    }

    #[test]
    fn non_utf8_values() {
        for value in [
            &b"\xff"[..],
            b"util=0.5, foo=\xff",
            b"0.\xc3",
            b"TEXT cpu_utilization=0.5\xfe",
            b"\xed\xa0\x80",
            b"JSON {\"a\":\"\xff\"}",
            b"  \xff  ",
        ] {
            assert_eq!(parse_server_load(value), Err(ParseError::NotUtf8));
            assert_eq!(parse_orca(value), Err(ParseError::NotUtf8));
        }
    }

    #[test]
    fn valid_utf8_outside_ascii_is_malformed() {
        for value in ["ü", "0.5€", "util=0.5, zone=zürich", "TEXT eps=1, région=1"] {
            assert_eq!(load(value), Err(ParseError::Malformed), "{value:?}");
            assert_eq!(orca(value), Err(ParseError::Malformed), "{value:?}");
        }
        assert_eq!(
            orca("JSON {\"zone\":\"zürich\"}"),
            Err(ParseError::Unsupported)
        );
    }

    #[test]
    fn length_limit() {
        let mut value = [b' '; MAX_HEADER_LEN + 1];
        value[..8].copy_from_slice(b"util=0.5");
        assert_eq!(
            parse_server_load(&value[..MAX_HEADER_LEN]),
            Ok(utilization(0.5))
        );
        assert_eq!(parse_server_load(&value), Err(ParseError::TooLong));

        let mut value = [b' '; MAX_HEADER_LEN + 1];
        value[..24].copy_from_slice(b"TEXT cpu_utilization=0.5");
        assert_eq!(parse_orca(&value[..MAX_HEADER_LEN]), Ok(utilization(0.5)));
        assert_eq!(parse_orca(&value), Err(ParseError::TooLong));
    }

    #[test]
    fn ten_kilobyte_header_is_too_long_whatever_it_holds() {
        let garbage = [0xffu8; 10 * 1024];
        assert_eq!(parse_server_load(&garbage), Err(ParseError::TooLong));
        assert_eq!(parse_orca(&garbage), Err(ParseError::TooLong));
        let blank = [b' '; 10 * 1024];
        assert_eq!(parse_server_load(&blank), Err(ParseError::TooLong));
        assert_eq!(parse_orca(&blank), Err(ParseError::TooLong));
    }

    #[test]
    fn errors_display_as_short_phrases() {
        for error in [
            ParseError::Empty,
            ParseError::TooLong,
            ParseError::NotUtf8,
            ParseError::Malformed,
            ParseError::OutOfRange,
            ParseError::Unsupported,
        ] {
            let text = error.to_string();
            assert!(!text.is_empty() && text.len() < 32, "{text:?}");
            assert_eq!(text, text.to_lowercase());
            let _: &dyn std::error::Error = &error;
        }
    }

    // Fast number readers against the general path.

    /// What the parser accepted before it had a fast path, and still must:
    /// the token's characters limited to decimal ones, then
    /// [`str::parse::<f64>`].
    fn std_decimal(text: &[u8]) -> Option<f64> {
        let is_decimal = text
            .iter()
            .all(|&byte| byte.is_ascii_digit() || b".eE+-".contains(&byte));
        if !is_decimal {
            return None;
        }
        std::str::from_utf8(text).ok()?.parse().ok()
    }

    /// Asserts that the fast reader, where it answers, gives exactly the bits
    /// `str::parse` gives, and that the full decimal parse (fast path or
    /// fallback) accepts and rejects exactly what [`std_decimal`] does.
    /// Returns whether the fast path answered.
    fn assert_decimal_matches_std(text: &[u8]) -> bool {
        let expected = std_decimal(text).map(f64::to_bits);
        let fast = parse_plain_decimal(text);
        if let Some(number) = fast {
            assert_eq!(Some(number.to_bits()), expected, "fast path on {text:?}");
        }
        let max = f64::MAX;
        let full = parse_decimal_in(text, max).map(f64::to_bits);
        let reference = match std_decimal(text) {
            None => Err(ParseError::Malformed),
            // In range, with `-0` read as plain zero.
            Some(number) if (0.0..=max).contains(&number) => Ok(number.abs().to_bits()),
            Some(_) => Err(ParseError::OutOfRange),
        };
        assert_eq!(full, reference, "{:?}", String::from_utf8_lossy(text));
        fast.is_some()
    }

    #[test]
    fn fast_decimal_reader_agrees_with_std_on_edge_cases() {
        // Each case, and whether the fast path (rather than the fallback)
        // must answer it.
        let cases: &[(&str, bool)] = &[
            ("0", true),
            ("1", true),
            ("0.5", true),
            ("0.73", true),
            ("1.", true),
            (".5", true),
            ("007.5", true),
            ("1e3", true),
            ("1E3", true),
            ("1e+3", true),
            ("1e-3", true),
            ("2.5E0", true),
            ("1.e3", true),
            (".5e1", true),
            ("+0.5", true),
            ("+.5", true),
            ("-0", true),
            ("-0.0", true),
            ("-0.5", true),
            ("-1e-9", true),
            ("3600000", true),
            ("3.6e6", true),
            ("1e0005", true),
            ("1e22", true),
            ("1e-22", true),
            ("0.1", true),
            ("0.3", true),
            ("123456789.123456789", false),
            ("9007199254740992", true),
            ("9007199254740993", false),
            ("0.9007199254740993", false),
            ("1234567890123456789", false),
            ("0000000000000000001", true),
            ("00000000000000000001", false),
            ("0.00000000000000000001", false),
            ("1e23", false),
            ("1e-23", false),
            ("1e309", false),
            ("1e-400", false),
            ("1e00000", false),
            ("99999999999999999999999999999999", false),
            ("1797693134862315708145274237317043567981e269", false),
            ("", false),
            (" ", false),
            (" 1", false),
            ("1 ", false),
            (" 0.5 ", false),
            ("+", false),
            ("-", false),
            (".", false),
            ("+.", false),
            ("e", false),
            ("e5", false),
            (".e1", false),
            ("1e", false),
            ("1e+", false),
            ("1e-", false),
            ("1.2.3", false),
            ("1e2e3", false),
            ("--1", false),
            ("+-1", false),
            ("1-2", false),
            ("1_000", false),
            ("0x1", false),
            ("NaN", false),
            ("nan", false),
            ("inf", false),
            ("-inf", false),
            ("+infinity", false),
            ("Infinity", false),
            ("1.5x", false),
        ];
        for &(text, fast) in cases {
            assert_eq!(
                assert_decimal_matches_std(text.as_bytes()),
                fast,
                "{text:?} on the fast path"
            );
        }
    }

    #[test]
    fn fast_decimal_reader_agrees_with_std_on_random_decimals() {
        use rand::{Rng, SeedableRng};

        let mut rng = rand::rngs::StdRng::seed_from_u64(0xDEC1_3A15);
        let mut text = Vec::new();
        let mut fast = 0;
        const ROUNDS: usize = 100_000;
        for _ in 0..ROUNDS {
            text.clear();
            if rng.random_ratio(1, 8) {
                text.push(if rng.random() { b'-' } else { b'+' });
            }
            // Now and then more digits than the fast path takes.
            let longest = if rng.random_ratio(1, 8) { 40 } else { 12 };
            for _ in 0..rng.random_range(0..=longest) {
                text.push(rng.random_range(b'0'..=b'9'));
            }
            if rng.random_ratio(3, 4) {
                text.push(b'.');
                for _ in 0..rng.random_range(0..=12) {
                    text.push(rng.random_range(b'0'..=b'9'));
                }
            }
            if rng.random_ratio(1, 4) {
                text.push(if rng.random() { b'e' } else { b'E' });
                match rng.random_range(0..3) {
                    0 => text.push(b'-'),
                    1 => text.push(b'+'),
                    _ => {}
                }
                for _ in 0..rng.random_range(0..=3) {
                    text.push(rng.random_range(b'0'..=b'9'));
                }
            }
            if rng.random_ratio(1, 16) {
                // A stray byte anywhere, usually one the general path refuses.
                let at = rng.random_range(0..=text.len());
                text.insert(at, b".eE+-x 0"[rng.random_range(0..8)]);
            }
            fast += usize::from(assert_decimal_matches_std(&text));
        }
        // Most of these are short enough for the fast path; the rest check
        // the handover to the general one.
        assert!(fast > ROUNDS / 2, "{fast}");
        assert!(fast < ROUNDS, "{fast}");
    }

    #[test]
    fn fast_count_reader_agrees_with_general_path() {
        use rand::{Rng, SeedableRng};

        let mut rng = rand::rngs::StdRng::seed_from_u64(0xC0DE_0417);
        let mut text = String::new();
        for _ in 0..20_000 {
            text.clear();
            match rng.random_range(0..8) {
                0 => text.push('-'),
                1 => text.push('+'),
                _ => {}
            }
            for _ in 0..rng.random_range(0..=24) {
                text.push(char::from(rng.random_range(b'0'..=b'9')));
            }
            if rng.random_ratio(1, 8) {
                text.push_str([".5", "e3", "x", " 1"][rng.random_range(0..4)]);
            }
            // The value is the token at the start, up to the space if any.
            let token = text.split(' ').next().unwrap().as_bytes();
            for min in [0, 1] {
                let mut cursor = Cursor::new(text.as_bytes());
                let fast = cursor.count_in(min);
                assert_eq!(fast, parse_count_in(token, min), "{text:?}");
                if fast.is_ok() {
                    assert_eq!(cursor.position, token.len(), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn known_keys_match_whole_keys_only() {
        assert_eq!(
            load("utilization=0.9, util_x=1, util=0.2"),
            Ok(utilization(0.2))
        );
        assert_eq!(load("util.x=1, utilx=2"), Err(ParseError::Malformed));
        assert_eq!(
            load("inflights=9, capacityx=0, latency_ms_p99=1e9, inflight=2"),
            Ok(LoadReport {
                in_flight: Some(2),
                ..LoadReport::default()
            })
        );
        assert_eq!(
            orca("TEXT epsilon=-1, eps_total=x, cpu_utilization_avg=99, eps=3"),
            Ok(LoadReport {
                errors_per_second: Some(3.0),
                ..LoadReport::default()
            })
        );
    }

    #[test]
    fn numbers_run_into_other_bytes_are_malformed() {
        for value in ["0.5x", "1e3e", "0.5.", "1+1", "0.5-", "12a"] {
            assert_eq!(
                load(&format!("util={value}")),
                Err(ParseError::Malformed),
                "{value:?}"
            );
            assert_eq!(
                load(&format!("inflight={value}")),
                Err(ParseError::Malformed),
                "{value:?}"
            );
            assert_eq!(
                orca(&format!("TEXT eps={value}")),
                Err(ParseError::Malformed),
                "{value:?}"
            );
        }
        // The number ends where the token does, at whitespace or a comma.
        assert_eq!(
            load("util=0.5\t,inflight=7 ,latency_ms=1e3"),
            Ok(LoadReport {
                utilization: Some(0.5),
                in_flight: Some(7),
                latency_ms: Some(1000.0),
                ..LoadReport::default()
            })
        );
    }

    // Randomised inputs.

    /// Xorshift64: a tiny deterministic generator, enough to vary inputs.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, bound: usize) -> usize {
            (self.next() % bound as u64) as usize
        }
    }

    /// Pieces random inputs are assembled from: key names, numbers, separators,
    /// and bytes that should trip the parsers.
    const FRAGMENTS: &[&[u8]] = &[
        b"util",
        b"inflight",
        b"capacity",
        b"latency_ms",
        b"cpu_utilization",
        b"application_utilization",
        b"mem_utilization",
        b"rps_fractional",
        b"eps",
        b"named_metrics.q",
        b"TEXT ",
        b"JSON ",
        b"=",
        b"=",
        b",",
        b", ",
        b" ",
        b"\t",
        b"0",
        b"1",
        b"5",
        b"9",
        b".",
        b"e",
        b"E",
        b"+",
        b"-",
        b"10",
        b"0.5",
        b"1e9",
        b"1e309",
        b"3600000",
        b"1000000000",
        b"99999999999999999999",
        b"NaN",
        b"inf",
        b"x",
        b"u",
        b"\xff",
        b"\xc3",
    ];

    fn assert_within_ranges(report: &LoadReport) {
        if let Some(value) = report.utilization {
            assert!((0.0..=MAX_UTILIZATION).contains(&value), "{report:?}");
        }
        if let Some(value) = report.in_flight {
            assert!(value <= MAX_COUNT, "{report:?}");
        }
        if let Some(value) = report.capacity {
            assert!((1..=MAX_COUNT).contains(&value), "{report:?}");
        }
        if let Some(value) = report.latency_ms {
            assert!((0.0..=MAX_LATENCY_MS).contains(&value), "{report:?}");
        }
        for value in [report.requests_per_second, report.errors_per_second]
            .into_iter()
            .flatten()
        {
            assert!((0.0..=MAX_RATE).contains(&value), "{report:?}");
        }
    }

    #[test]
    fn plain_decimal_reading_rounds_exactly_as_std() {
        let mut rng = XorShift(0xD1B5_4A32_D192_ED03);
        let mut buffer = [0u8; 15];
        for _ in 0..100_000 {
            let len = 1 + rng.below(buffer.len());
            for byte in &mut buffer[..len] {
                *byte = b'0' + rng.below(10) as u8;
            }
            let point = rng.below(len + 1);
            if point < len {
                buffer[point] = b'.';
            }
            let text = &buffer[..len];
            let expected = std::str::from_utf8(text).unwrap().parse::<f64>().ok();
            assert_eq!(
                parse_plain_decimal(text).map(f64::to_bits),
                expected.map(f64::to_bits),
                "{text:?}"
            );
        }
    }

    #[test]
    fn random_inputs_never_panic_and_stay_in_range() {
        const ROUNDS: usize = 200_000;
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut buffer = [0u8; MAX_HEADER_LEN + 64];
        let (mut server_load_accepted, mut orca_accepted) = (0, 0);
        for round in 0..ROUNDS {
            let mut len = 0;
            if round % 2 == 0 {
                buffer[..5].copy_from_slice(b"TEXT ");
                len = 5;
            }
            for _ in 0..rng.below(12) {
                let fragment = FRAGMENTS[rng.below(FRAGMENTS.len())];
                buffer[len..len + fragment.len()].copy_from_slice(fragment);
                len += fragment.len();
            }
            let input = &buffer[..len];

            if let Ok(report) = parse_server_load(input) {
                server_load_accepted += 1;
                assert!(input.is_ascii(), "{input:?}");
                assert_within_ranges(&report);
                assert_ne!(report, LoadReport::default());
                assert_eq!(report.requests_per_second, None);
                assert_eq!(report.errors_per_second, None);
            }
            if let Ok(report) = parse_orca(input) {
                orca_accepted += 1;
                assert!(input.is_ascii(), "{input:?}");
                assert_within_ranges(&report);
                assert_eq!(report.in_flight, None);
                assert_eq!(report.capacity, None);
                assert_eq!(report.latency_ms, None);
            }
        }
        // The generator must reach the accepting paths, not only the errors.
        assert!(server_load_accepted > 1_000, "{server_load_accepted}");
        assert!(orca_accepted > 1_000, "{orca_accepted}");
    }

    #[test]
    fn random_raw_bytes_never_panic() {
        let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
        let mut buffer = [0u8; MAX_HEADER_LEN + 2];
        for _ in 0..20_000 {
            let len = rng.below(buffer.len() + 1);
            for byte in &mut buffer[..len] {
                *byte = rng.next() as u8;
            }
            let input = &buffer[..len];
            for result in [parse_server_load(input), parse_orca(input)] {
                if len > MAX_HEADER_LEN {
                    assert_eq!(result, Err(ParseError::TooLong));
                } else if let Ok(report) = result {
                    assert!(input.is_ascii(), "{input:?}");
                    assert_within_ranges(&report);
                }
            }
        }
    }
}
