//! Tests of the fast decimal readers against the general path (`str::parse`).

use super::tests::{load, orca, utilization};
use super::*;

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
