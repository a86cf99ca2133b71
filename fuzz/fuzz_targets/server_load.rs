//! Fuzzes the backend load-report parsers, `parse_server_load` and
//! `parse_orca`, with arbitrary header bytes.
//!
//! Checked on every input, for both parsers:
//! * no panic, and the same input always gives the same result;
//! * the header-level errors are exact: `TooLong` if and only if the value
//!   is longer than `MAX_HEADER_LEN`, `Empty` if and only if it is blank,
//!   `NotUtf8` if and only if it is not UTF-8 (a non-UTF-8 value is never
//!   accepted);
//! * an accepted value is ASCII and every number in the report is finite and
//!   within the range the module documents (utilization 0..=10, in-flight
//!   0..=1e9, capacity 1..=1e9, latency 0..=3.6e6 ms, rates 0..=1e9);
//! * `Server-Load` never yields ORCA rates and never an empty report; ORCA
//!   never yields counts or latency;
//! * a bare `Server-Load` number is read exactly as `str::parse::<f64>`
//!   reads it (the parser has a fast path of its own);
//! * an accepted report, written back out in the structured form, parses to
//!   the same report.
#![no_main]

use ballast::stats::server_load::{
    parse_orca, parse_server_load, LoadReport, ParseError, MAX_HEADER_LEN,
};
use libfuzzer_sys::fuzz_target;
use std::fmt::Write;

const MAX_UTILIZATION: f64 = 10.0;
const MAX_COUNT: u64 = 1_000_000_000;
const MAX_LATENCY_MS: f64 = 3_600_000.0;
const MAX_RATE: f64 = 1e9;

fuzz_target!(|value: &[u8]| {
    let server_load = parse_server_load(value);
    assert_eq!(server_load, parse_server_load(value), "not deterministic");
    check_header_errors(value, &server_load);
    if let Ok(report) = &server_load {
        check_accepted(value, report);
        assert_ne!(*report, LoadReport::default(), "empty Server-Load report");
        assert_eq!(report.requests_per_second, None);
        assert_eq!(report.errors_per_second, None);
        check_bare_number(value, report);
        let written = write_server_load(report);
        assert_eq!(
            parse_server_load(written.as_bytes()).as_ref(),
            Ok(report),
            "{written:?} does not parse back"
        );
    }

    let orca = parse_orca(value);
    assert_eq!(orca, parse_orca(value), "not deterministic");
    check_header_errors(value, &orca);
    if let Ok(report) = &orca {
        check_accepted(value, report);
        assert_eq!(report.in_flight, None);
        assert_eq!(report.capacity, None);
        assert_eq!(report.latency_ms, None);
        let written = write_orca(report);
        assert_eq!(
            parse_orca(written.as_bytes()).as_ref(),
            Ok(report),
            "{written:?} does not parse back"
        );
    }
});

/// The checks made on the whole value before either grammar is applied.
fn check_header_errors(value: &[u8], result: &Result<LoadReport, ParseError>) {
    let too_long = value.len() > MAX_HEADER_LEN;
    let blank = value.iter().all(|&byte| byte == b' ' || byte == b'\t');
    let utf8 = std::str::from_utf8(value).is_ok();
    assert_eq!(*result == Err(ParseError::TooLong), too_long, "{result:?}");
    assert_eq!(
        *result == Err(ParseError::Empty),
        !too_long && blank,
        "{result:?}"
    );
    assert_eq!(
        *result == Err(ParseError::NotUtf8),
        !too_long && !utf8,
        "{result:?}"
    );
}

fn check_accepted(value: &[u8], report: &LoadReport) {
    assert!(value.is_ascii(), "accepted a non-ASCII value");
    let in_range = |number: Option<f64>, max: f64| {
        number.is_none_or(|number| number.is_finite() && (0.0..=max).contains(&number))
    };
    assert!(in_range(report.utilization, MAX_UTILIZATION), "{report:?}");
    assert!(in_range(report.latency_ms, MAX_LATENCY_MS), "{report:?}");
    assert!(in_range(report.requests_per_second, MAX_RATE), "{report:?}");
    assert!(in_range(report.errors_per_second, MAX_RATE), "{report:?}");
    assert!(
        report.in_flight.is_none_or(|n| n <= MAX_COUNT),
        "{report:?}"
    );
    assert!(
        report.capacity.is_none_or(|n| (1..=MAX_COUNT).contains(&n)),
        "{report:?}"
    );
}

/// A bare number is the utilization, read as the standard library reads it.
fn check_bare_number(value: &[u8], report: &LoadReport) {
    let text = std::str::from_utf8(value).expect("accepted values are ASCII");
    let text = text.trim_matches([' ', '\t']);
    if text.contains('=') {
        return;
    }
    let expected: f64 = text.parse().expect("accepted bare values are numbers");
    assert_eq!(
        report.utilization.map(f64::to_bits),
        Some(expected.to_bits()),
        "{text:?}"
    );
}

/// The report in the structured `Server-Load` form. `{:e}` prints the
/// shortest digits that read back to the same `f64`.
fn write_server_load(report: &LoadReport) -> String {
    let mut text = String::new();
    if let Some(utilization) = report.utilization {
        write!(text, "util={utilization:e}, ").unwrap();
    }
    if let Some(in_flight) = report.in_flight {
        write!(text, "inflight={in_flight}, ").unwrap();
    }
    if let Some(capacity) = report.capacity {
        write!(text, "capacity={capacity}, ").unwrap();
    }
    if let Some(latency) = report.latency_ms {
        write!(text, "latency_ms={latency:e}, ").unwrap();
    }
    text
}

/// The report in the ORCA `TEXT` form; `mem_utilization` (ignored) keeps the
/// list non-empty when the report is.
fn write_orca(report: &LoadReport) -> String {
    let mut text = String::from("TEXT mem_utilization=0");
    if let Some(utilization) = report.utilization {
        write!(text, ", application_utilization={utilization:e}").unwrap();
    }
    if let Some(rate) = report.requests_per_second {
        write!(text, ", rps_fractional={rate:e}").unwrap();
    }
    if let Some(rate) = report.errors_per_second {
        write!(text, ", eps={rate:e}").unwrap();
    }
    text
}
