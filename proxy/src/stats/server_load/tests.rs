//! Tests of Server-Load and ORCA report parsing and merging.

use super::*;

pub(super) fn load(value: &str) -> Result<LoadReport, ParseError> {
    parse_server_load(value.as_bytes())
}

pub(super) fn orca(value: &str) -> Result<LoadReport, ParseError> {
    parse_orca(value.as_bytes())
}

pub(super) fn utilization(value: f64) -> LoadReport {
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
