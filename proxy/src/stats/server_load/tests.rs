//! Tests of Server-Load and ORCA report parsing and merging.

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
        "0.5 0.6", "0.5,", ",0.5", "0.5;", "util", "abc", ".", "e", "1e", "-", "+", "1.2.3", "--1",
        "1-2", "0. 5", "0,5", ",",
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
